namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// The object that can find every mapping of a movable frame (Linux's anon_vma or address_space, the
/// target of its reverse map): the address-space code implements it so that compaction can move the
/// frame and reclaim can evict it while the guest keeps running correctly.
/// The allocator identifies the frame by the key the owner gave it (<see cref="PageDescriptor.OwnerIndex"/>).
/// </summary>
public interface IPageOwner
{
    /// <summary>
    /// Compaction has copied <paramref name="oldFrame"/> into <paramref name="newFrame"/> (the
    /// descriptor moved with it). Point every PTE that maps the old frame at the new one with the same
    /// bits, then invalidate the stale TLB entries (INVLPG, or a flush as Linux does for a range).
    /// Return false to refuse (the page is busy after all); the allocator then frees the copy and the
    /// old frame stays.
    /// </summary>
    bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame);

    /// <summary>
    /// Reclaim is taking <paramref name="frame"/> away. For a page-cache page, <paramref name="swapPte"/>
    /// is <see cref="SwapPte.None"/>: clear every PTE that maps it and drop it from the cache. For an
    /// anonymous page the contents are already in swap: replace every mapping PTE by
    /// <paramref name="swapPte"/>'s raw value. Invalidate the TLB entries in both cases. Return false to
    /// refuse; on true the allocator frees the frame, which the owner must not free again.
    /// </summary>
    bool TryEvict(ulong index, ulong frame, SwapPte swapPte);
}

/// <summary>Owners by index, so that a frame's descriptor holds an int, not a reference; slots are reused.</summary>
public sealed class PageOwnerTable
{
    readonly List<IPageOwner?> owners = [null];
    readonly Stack<int> freeSlots = new();

    /// <summary>Registers an owner and returns its index (never 0, which means "no owner").</summary>
    public int Register(IPageOwner owner)
    {
        ArgumentNullException.ThrowIfNull(owner);
        if (freeSlots.TryPop(out int slot))
        {
            owners[slot] = owner;
            return slot;
        }
        owners.Add(owner);
        return owners.Count - 1;
    }

    /// <summary>Forgets an owner (its frames must have been freed or given another owner first).</summary>
    public void Unregister(int index)
    {
        if (index <= 0 || index >= owners.Count || owners[index] is null)
            throw new ArgumentOutOfRangeException(nameof(index), index, "no owner registered at this index");
        owners[index] = null;
        freeSlots.Push(index);
    }

    /// <summary>The owner at <paramref name="index"/>, or null.</summary>
    public IPageOwner? this[int index] => (uint)index < (uint)owners.Count ? owners[index] : null;
}
