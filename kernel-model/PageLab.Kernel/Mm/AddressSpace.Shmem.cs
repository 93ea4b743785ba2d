using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The huge-page side of shmem VMAs (MAP_SHARED|MAP_ANONYMOUS): a 2 MiB folio of the shmem object is
/// mapped by a PMD where the VMA covers its whole region at a matching alignment (do_set_pmd), a huge
/// folio is allocated at fault time where shmem_enabled allows it, and a huge folio that must be mapped
/// by PTEs is split in the object first (Linux maps its subpages by PTEs instead).
/// </summary>
public sealed partial class AddressSpace
{
    /// <summary>
    /// Can the 2 MiB region at <paramref name="region"/> of a shmem VMA be mapped by one PMD: inside the
    /// VMA, its file offset 2 MiB-aligned (thp_vma_suitable_order) and inside the object's size?
    /// </summary>
    internal static bool ShmemPmdSuitable(Vma vma, ulong region)
    {
        if (region < vma.Start || vma.End - region < PagingConstants.LargePageSize)
            return false;
        long offset = vma.FileOffsetOf(region);
        return (offset & (long)PagingConstants.LargePageMask) == 0 && offset + (long)PagingConstants.LargePageSize <= vma.File!.Length;
    }

    /// <summary>May a shmem VMA have huge pages: sysfs shmem_enabled (or a forced collapse), prctl, VM_NOHUGEPAGE.</summary>
    internal bool ShmemHugeAllowed(Vma vma, bool forcedCollapse) =>
        !ThpDisabled && (vma.Flags & VmaFlags.NoHugePage) == 0
        && Thp.Settings.ShmemHugeAllowed((vma.Flags & VmaFlags.HugePage) != 0, withinSize: true, forcedCollapse);

    /// <summary>
    /// The PMD-level part of a fault in a shmem VMA: a fault inside a huge PMD, a huge folio of the object
    /// to map by a PMD (or to split), or a new huge folio. Null means "handle it with 4 KiB pages".
    /// </summary>
    FaultOutcome? FaultShmemHuge(Vma vma, ulong address, AccessKind access)
    {
        ulong region = address & ~PagingConstants.LargePageMask;
        var file = vma.File!;
        long index = vma.FileOffsetOf(address) >> PagingConstants.PageBits;
        if (!Tables.TryGetPmdAddress(region, allocate: true, out ulong pmdAddress))
            return FaultOutcome.OutOfMemory;
        var pmd = Tables.Read(pmdAddress);
        if (IsHugeLeaf(pmd))
        {
            if (access != AccessKind.Write || pmd.IsWritable)
                return FaultOutcome.Spurious;
            // wp_huge_pmd on a shared mapping made writable again: write to the same folio.
            Tables.Write(pmdAddress, pmd.With(PageTableEntry.WritableBit | PageTableEntry.DirtyBit | PageTableEntry.AccessedBit));
            return FaultOutcome.WriteReused;
        }
        bool hugeFolio = memory.PageCache.TryGetHugeFolio(file, index, out ulong head);
        if (!hugeFolio && !ShmemHugeAllowed(vma, forcedCollapse: false))
            return null;
        bool suitable = ShmemPmdSuitable(vma, region) && (pmd.Raw == 0 || IsEmptyTable(pmd.FrameNumber));
        if (hugeFolio)
        {
            if (suitable)
                return MapShmemPmd(vma, region, pmdAddress, head) ? FaultOutcome.SharedPageMapped : FaultOutcome.OutOfMemory;
            memory.PageCache.SplitHugeFolio(file, index);
            return null;
        }
        if (!suitable)
            return null;
        long first = index & ~(long)(ThpSettings.PtesPerPmd - 1);
        var effort = Thp.Settings.FaultMayStall((vma.Flags & VmaFlags.HugePage) != 0)
            ? AllocationEffort.DirectReclaimAndCompaction
            : AllocationEffort.FreeListsOnly;
        if (!memory.TryAllocateBlock(HugeOrder, node: 0, effort, FrameUse.Shmem, out head, out _))
        {
            Thp.Counters.FileFallback++;
            return null;
        }
        if (!memory.TryCharge(head, HugeOrder, effort, CostSink) || !memory.PageCache.TryAddHugeFolio(file, first, head))
        {
            memory.FreeBlock(head, HugeOrder);
            return null;
        }
        memory.ZeroBlock(head, HugeOrder);
        Thp.Counters.FileAlloc++;
        return MapShmemPmd(vma, region, pmdAddress, head) ? FaultOutcome.HugePageAllocated : FaultOutcome.OutOfMemory;
    }

    /// <summary>A PTE table none of whose entries is in use (Linux would have retracted it, leaving the PMD none).</summary>
    bool IsEmptyTable(ulong tableFrame)
    {
        ulong table = tableFrame << PagingConstants.PageBits;
        for (ulong i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            if (Tables.Read(table + i * PagingConstants.EntrySize).Raw != 0)
                return false;
        }
        return true;
    }

    /// <summary>
    /// do_set_pmd: maps the object's huge folio at <paramref name="head"/> by the PMD of <paramref name="region"/>,
    /// depositing the empty PTE table that was there (or a new one); the mapping takes a reference. A table
    /// pointer is cleared and the 2 MiB flushed before the leaf goes in (as retract_page_tables'
    /// pmdp_collapse_flush), so no paging-structure cache keeps walking the old table.
    /// </summary>
    internal bool MapShmemPmd(Vma vma, ulong region, ulong pmdAddress, ulong head)
    {
        var pmd = Tables.Read(pmdAddress);
        ulong table = pmd.FrameNumber;
        if (pmd.Raw == 0 && !Tables.TryAllocateTable(out table))
            return false;
        if (pmd.Raw != 0)
        {
            Tables.Write(pmdAddress, default);
            FlushRange(region, region + PagingConstants.LargePageSize);
        }
        DepositTable(region, table);
        Tables.Write(pmdAddress, HugeLeafEntry(head, vma));
        Thp.Counters.FileMapped++;
        ref var folio = ref memory.Page(head);
        folio.RefCount++;
        folio.EntireMapCount++;
        ResidentPages += ThpSettings.PtesPerPmd;
        return true;
    }

    /// <summary>Clears a huge PMD and drops its mapping (zap_huge_pmd); the folio stays where its other references keep it.</summary>
    void UnmapHugePmd(ulong region, ulong pmdAddress, FlushGather flush)
    {
        var pmd = Tables.Read(pmdAddress);
        Tables.Write(pmdAddress, default);
        flush.AddRange(region, region + PagingConstants.LargePageSize);
        depositedTables.Remove(region, out ulong table);
        Tables.FreeTable(table);
        ReleaseHugeFrame(pmd.FrameNumber);
    }

    /// <summary>fault_around_bytes default: 64 KiB, 16 pages.</summary>
    const int FaultAroundPages = 16;

    /// <summary>
    /// do_fault_around + filemap_map_pages after a read fault at <paramref name="page"/> of a shmem VMA:
    /// the object's 4 KiB pages already in memory are mapped too (young, clean, writable if the VMA is)
    /// where their PTE is none, over 16 pages from the 64 KiB-aligned start of the window (or from the
    /// VMA's start, if later), within the VMA and the PTE table. (The model does this for shmem only;
    /// Linux also does it for private file mappings.)
    /// </summary>
    void FaultAround(Vma vma, ulong page)
    {
        const ulong Window = FaultAroundPages * PagingConstants.PageSize;
        ulong from = Math.Max(page & ~(Window - 1), vma.Start);
        ulong tableEnd = (page & ~PagingConstants.LargePageMask) + PagingConstants.LargePageSize;
        ulong to = Math.Min(Math.Min(from + Window, tableEnd), vma.End);
        var cache = memory.PageCache;
        for (ulong linear = from; linear < to; linear += PagingConstants.PageSize)
        {
            long index = vma.FileOffsetOf(linear) >> PagingConstants.PageBits;
            if (linear == page || !Tables.TryGetPteAddress(linear, allocate: false, out ulong pteAddress) || Tables.Read(pteAddress).Raw != 0
                || cache.Find(vma.File!, index, out ulong frame) != CachedPage.Present)
                continue;
            ref var info = ref memory.Page(frame);
            info.RefCount++;
            info.MapCount++;
            ResidentPages++;
            var pte = LeafEntry(frame, vma, writable: false).With(PageTableEntry.AccessedBit);
            Tables.Write(pteAddress, (vma.Protection & Protection.Write) != 0 ? pte.With(PageTableEntry.WritableBit) : pte);
        }
    }

    /// <summary>MADV_REMOVE on a shmem VMA piece: punch the hole in the object (every mapping loses the pages).</summary>
    public void RemovePages(Vma vma, ulong start, ulong end)
    {
        long first = vma.FileOffsetOf(start) >> PagingConstants.PageBits;
        memory.PageCache.PunchHole((ShmemFile)vma.File!, first, first + (long)((end - start) >> PagingConstants.PageBits));
    }
}
