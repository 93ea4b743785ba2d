using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The anonymous reverse map of an address space (Linux's anon_vma, reduced to one mm): the
/// address space owns every anonymous frame it maps, keyed by virtual page number, so that
/// compaction can move the frame (rewrite the PTE, invalidate the TLB) and reclaim can swap it out
/// (the PTE becomes a swap entry) while the guest keeps running; the page-fault handler swaps it
/// back in.
/// </summary>
public sealed partial class AddressSpace : IPageOwner
{
    /// <summary>This address space's index in the allocator's owner table.</summary>
    public int OwnerId { get; }

    /// <summary>Pages of this address space whose PTE holds a swap entry (VmSwap).</summary>
    public long SwappedPages { get; private set; }

    /// <summary>Makes a freshly mapped order-0 anonymous frame findable by compaction and reclaim (page_add_new_anon_rmap + LRU add).</summary>
    void AdoptAnonymous(ulong frame, ulong page)
    {
        memory.Frames.SetOwner(frame, OwnerId, page >> PagingConstants.PageBits);
        memory.Frames.AddToLru(frame);
    }

    /// <summary>
    /// Migration of one of our anonymous pages (try_to_migrate + remove_migration_ptes): refused when
    /// the page has references beyond its mapping (a fault or a collapse is using it, as Linux's
    /// refcount check in folio_migrate_mapping refuses).
    /// </summary>
    public bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame)
    {
        ref var page = ref memory.Page(newFrame);
        // A frame shared copy-on-write with a forked relative is mapped by PTEs this map does not know.
        if (page.MapCount != 1 || page.RefCount != page.MapCount || !RemapFrame(index << PagingConstants.PageBits, oldFrame, newFrame))
            return false;
        memory.Guest.FrameWritten(newFrame);
        return true;
    }

    /// <summary>
    /// Reclaim of one of our anonymous pages: the PTE becomes <paramref name="swapPte"/> (try_to_unmap),
    /// or none when a lazily freed page is discarded.
    /// </summary>
    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        ref var page = ref memory.Page(frame);
        ulong linear = index << PagingConstants.PageBits;
        // Without a swap entry this is a lazily freed page: written to since MADV_FREE, it must stay.
        if (swapPte == SwapPte.None && IsDirtyAt(linear))
            return false;
        return page.MapCount == 1 && page.RefCount == page.MapCount && UnmapEvictedFrame(linear, frame, swapPte);
    }

    /// <summary>
    /// Points the PTE of <paramref name="linear"/> from <paramref name="oldFrame"/> to
    /// <paramref name="newFrame"/>, keeping its bits: the PTE is cleared and flushed first, as the
    /// migration entry Linux installs makes every access wait until the new PTE is in place.
    /// </summary>
    internal bool RemapFrame(ulong linear, ulong oldFrame, ulong newFrame)
    {
        if (!Tables.TryGetPteAddress(linear, allocate: false, out ulong pteAddress))
            return false;
        var pte = Tables.Read(pteAddress);
        if (!MapsFrame(pte) || pte.FrameNumber != oldFrame)
            return false;
        Tables.Write(pteAddress, default);
        if (pte.IsPresent)
            memory.Guest.InvalidatePage(linear);
        Tables.Write(pteAddress, pte.WithAddress(newFrame << PagingConstants.PageBits));
        return true;
    }

    /// <summary>
    /// Removes the mapping of an evicted frame at <paramref name="linear"/>: the PTE becomes
    /// <paramref name="swapPte"/> (none for page cache), the TLB entry is invalidated, and the mapping's
    /// reference goes (the allocator frees the frame itself).
    /// </summary>
    internal bool UnmapEvictedFrame(ulong linear, ulong frame, SwapPte swapPte)
    {
        if (!Tables.TryGetPteAddress(linear, allocate: false, out ulong pteAddress))
            return false;
        var pte = Tables.Read(pteAddress);
        if (!MapsFrame(pte) || pte.FrameNumber != frame)
            return false;
        Tables.Write(pteAddress, new PageTableEntry(swapPte.Raw));
        if (pte.IsPresent)
            memory.Guest.InvalidatePage(linear);
        ref var page = ref memory.Page(frame);
        page.MapCount--;
        page.RefCount--;
        ResidentPages--;
        if (swapPte != SwapPte.None)
            SwappedPages++;
        return true;
    }

    /// <summary>do_swap_page: reads the page back into a new frame and maps it, writable if the VMA is.</summary>
    FaultOutcome FaultSwapIn(Vma vma, ulong page, ulong pteAddress, SwapPte entry, AccessKind access)
    {
        var swap = memory.Frames.Swap;
        if (swap is null || entry.Type != swap.Type || swap.UseCount(entry.Offset) == 0)
            return FaultOutcome.BusError; // a corrupt swap entry: Linux's VM_FAULT_SIGBUS
        if (!memory.TryAllocateCharged(FrameUse.Anonymous, CostSink, out ulong frame))
            return FaultOutcome.OutOfMemory;
        memory.Frames.SwapIn(entry, frame, CostSink);
        memory.Guest.FrameWritten(frame);
        SwappedPages--;
        memory.Page(frame).MapCount++;
        ResidentPages++;
        AdoptAnonymous(frame, page);
        var pte = LeafEntry(frame, vma, writable: access == AccessKind.Write);
        // The page is exclusive to us: a read fault maps it writable but clean, as do_swap_page does.
        if ((vma.Protection & Protection.Write) != 0)
            pte = pte.With(PageTableEntry.WritableBit);
        Tables.Write(pteAddress, pte);
        return FaultOutcome.SwappedIn;
    }

    /// <summary>Drops the swap slot a zapped PTE held (free_swap_and_cache).</summary>
    void ReleaseSwapEntry(SwapPte entry)
    {
        var swap = memory.Frames.Swap;
        if (swap is not null && entry.Type == swap.Type && swap.UseCount(entry.Offset) > 0)
            swap.Release(entry.Offset);
        SwappedPages--;
    }
}
