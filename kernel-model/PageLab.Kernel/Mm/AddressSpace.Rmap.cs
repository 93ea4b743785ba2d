using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

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
    /// or none when a lazily freed page is discarded. A THP's huge PMD becomes a table of 512 swap PTEs.
    /// </summary>
    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        ref var page = ref memory.Page(frame);
        ulong linear = index << PagingConstants.PageBits;
        if (page.Order == HugeOrder)
            return swapPte != SwapPte.None && page.EntireMapCount == 1 && page.RefCount == 1 && memory.FolioMapCount(frame) == 1
                && UnmapEvictedHugeFrame(linear, frame, swapPte);
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

    /// <summary>
    /// try_to_unmap of a swapped THP (TTU_SPLIT_HUGE_PMD): the huge PMD is cleared and its range flushed,
    /// the deposited table receives one swap entry per 4 KiB page, consecutive slots from
    /// <paramref name="firstSwapPte"/>'s, and the PMD points at it. Each page then faults back in on its
    /// own: Linux 6.18 swaps anonymous memory in per 4 KiB page unless mTHP swap-in is enabled for a
    /// size, which PageLab does not model.
    /// </summary>
    bool UnmapEvictedHugeFrame(ulong region, ulong head, SwapPte firstSwapPte)
    {
        if (!Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress))
            return false;
        var pmd = Tables.Read(pmdAddress);
        if (!IsHugeLeaf(pmd) || pmd.FrameNumber != head || !depositedTables.Remove(region, out ulong table))
            return false;
        Tables.Write(pmdAddress, default);
        FlushRange(region, region + PagingConstants.LargePageSize);
        for (ulong i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            var entry = SwapPte.Create(firstSwapPte.Type, firstSwapPte.Offset + i);
            Tables.Write((table << PagingConstants.PageBits) + i * PagingConstants.EntrySize, new PageTableEntry(entry.Raw));
        }
        Tables.Write(pmdAddress, PageTableEntry.Table(table << PagingConstants.PageBits));
        Thp.Counters.SplitPmd++;
        ref var page = ref memory.Page(head);
        page.EntireMapCount--;
        page.RefCount--;
        ResidentPages -= ThpSettings.PtesPerPmd;
        SwappedPages += ThpSettings.PtesPerPmd;
        return true;
    }

    /// <summary>
    /// folio_referenced for one of our anonymous pages. A page shared copy-on-write after fork is also
    /// mapped by relatives at the same address (fork keeps addresses; Linux finds them through the
    /// anon_vma chain), so every address space is asked then; a relative that moved its copy with mremap is
    /// missed, which can only make the page look colder, and reclaim does not evict shared pages anyway.
    /// </summary>
    public PageReferences TestAndClearYoung(ulong index, ulong frame)
    {
        ulong linear = index << PagingConstants.PageBits;
        ref var page = ref memory.Page(frame);
        bool huge = page.Order == HugeOrder;
        if (huge ? memory.FolioMapCount(frame) == 1 : page.MapCount <= 1)
            return huge ? TestAndClearYoungFolio(linear, frame) : TestAndClearYoungPte(linear, frame);
        var references = default(PageReferences);
        foreach (var space in memory.AddressSpaces)
            references += huge ? space.TestAndClearYoungFolio(linear, frame) : space.TestAndClearYoungPte(linear, frame);
        return references;
    }

    /// <summary>
    /// The mappings of a THP in this address space: its huge PMD, or, once the PMD was split (the folio
    /// stays whole), the PTEs that map its pages.
    /// </summary>
    internal PageReferences TestAndClearYoungFolio(ulong region, ulong head)
    {
        if (!Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress))
            return default;
        var pmd = Tables.Read(pmdAddress);
        if (IsHugeLeaf(pmd))
            return pmd.FrameNumber == head ? TestAndClearYoung(pmdAddress, region, head, huge: true) : default;
        var references = default(PageReferences);
        for (ulong i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            if (memory.Page(head + i).MapCount > 0)
                references += TestAndClearYoungPte(region + (i << PagingConstants.PageBits), head + i);
        }
        return references;
    }

    /// <summary>
    /// ptep_clear_flush_young on x86 (arch/x86/mm/pgtable.c, unchanged in 6.18): clears A in the PTE and
    /// deliberately does not flush the TLB. Linux argues that a stale entry only costs aging accuracy (a
    /// hot page whose translation stays cached does not set A again and may be reclaimed by mistake) and
    /// that a context switch or another flush drops it soon enough. The model does the same, so the
    /// effect is observable here: until that flush, accesses through the cached entry leave A clear.
    /// </summary>
    internal PageReferences TestAndClearYoungPte(ulong linear, ulong frame)
    {
        bool mapped = Tables.TryGetPteAddress(linear, allocate: false, out ulong pteAddress);
        return mapped ? TestAndClearYoung(pteAddress, linear, frame, huge: false) : default;
    }

    /// <summary>
    /// The test-and-clear of one leaf entry mapping <paramref name="frame"/>. For a huge PMD it is x86's
    /// pmdp_clear_flush_young: unlike the PTE case, the 2 MiB range is flushed when A was set
    /// (flush_tlb_range), so the next access walks and sets A again.
    /// </summary>
    PageReferences TestAndClearYoung(ulong entryAddress, ulong linear, ulong frame, bool huge)
    {
        var entry = Tables.Read(entryAddress);
        if (!(huge ? IsHugeLeaf(entry) : MapsFrame(entry)) || entry.FrameNumber != frame)
            return default;
        if (!entry.IsAccessed)
            return new PageReferences(1, 0, false);
        Tables.Write(entryAddress, entry.Without(PageTableEntry.AccessedBit));
        if (huge)
            FlushRange(linear, linear + PagingConstants.LargePageSize);
        return new PageReferences(1, 1, IsExecutableAt(linear));
    }

    bool IsExecutableAt(ulong linear) => FindVma(linear) is { } vma && (vma.Protection & Protection.Exec) != 0;

    /// <summary>
    /// Reclaim splits one of our THPs before swapping its pages (no free swap cluster, or its PMD was split
    /// already): split_huge_page through <see cref="KernelMemory.TrySplitFolio"/>, which splits every PMD
    /// mapping it and puts the mapped pages on the LRU; false when the folio has other references.
    /// </summary>
    public bool TrySplitHuge(ulong index, ulong headFrame) => memory.TrySplitFolio(headFrame);

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
