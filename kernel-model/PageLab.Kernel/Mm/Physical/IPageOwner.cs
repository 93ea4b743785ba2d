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
    /// <paramref name="swapPte"/>'s raw value. For an anonymous THP (an order-9 head mapped by a huge PMD)
    /// <paramref name="swapPte"/> names the first of 512 consecutive slots holding its pages: split the PMD
    /// into a PTE table whose entry i holds the entry of slot offset + i (try_to_unmap with
    /// TTU_SPLIT_HUGE_PMD). Invalidate the TLB entries in every case. Return false to refuse; on true the
    /// allocator frees the frame (or block), which the owner must not free again.
    /// </summary>
    bool TryEvict(ulong index, ulong frame, SwapPte swapPte);

    /// <summary>
    /// folio_referenced: visits every PTE (or huge PMD) mapping <paramref name="frame"/>, tests and clears
    /// its accessed bit, and says how many mappings it visited, how many were young, and whether a young
    /// one is in an executable VMA. The TLB is treated as x86 Linux 6.18 does: a PTE's A bit is cleared
    /// without a flush (ptep_clear_flush_young), a huge PMD's is cleared and the 2 MiB range flushed when it
    /// was young (pmdp_clear_flush_young).
    /// </summary>
    PageReferences TestAndClearYoung(ulong index, ulong frame);

    /// <summary>
    /// Reclaim could not swap the THP headed by <paramref name="headFrame"/> whole (split_folio_to_list):
    /// map it by 512 PTEs and split the block into order-0 frames that join the LRU. False to refuse.
    /// </summary>
    bool TrySplitHuge(ulong index, ulong headFrame);
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

/// <summary>What a reverse-map walk over a page's mappings found (folio_referenced's result and vm_flags).</summary>
/// <param name="Mappings">PTEs or PMDs that map the page and were visited (each costs a page_vma_mapped_walk).</param>
/// <param name="Young">Of those, the ones whose accessed bit was set (and is now clear).</param>
/// <param name="Executable">A young mapping lies in a VM_EXEC VMA.</param>
public readonly record struct PageReferences(int Mappings, int Young, bool Executable)
{
    /// <summary>The findings of two walks together.</summary>
    public static PageReferences operator +(PageReferences a, PageReferences b) =>
        new(a.Mappings + b.Mappings, a.Young + b.Young, a.Executable | b.Executable);
}
