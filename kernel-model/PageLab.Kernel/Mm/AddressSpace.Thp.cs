using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The huge-PMD side of an address space: fault-time THP, splitting and zapping huge PMDs when a
/// range is unmapped or re-protected, and the bookkeeping a collapse needs (the deposited PTE table).
/// </summary>
public sealed partial class AddressSpace
{
    /// <summary>The PTE table kept for each huge PMD (Linux's pgtable_trans_huge_deposit), by region start.</summary>
    readonly Dictionary<ulong, ulong> depositedTables = [];

    /// <summary>Order of a PMD-sized page: 21 - 12 = 9.</summary>
    const int HugeOrder = PagingConstants.LargePageBits - PagingConstants.PageBits;

    /// <summary>The machine-wide THP state (settings, counters, the collapse engine, khugepaged).</summary>
    public TransparentHugePages Thp => memory.Thp;

    /// <summary>prctl(PR_SET_THP_DISABLE): no THP for this process, at fault time or by collapse.</summary>
    public bool ThpDisabled { get; set; }

    /// <summary>Modeled nanoseconds of the last huge-page fault (allocation, stall and zeroing).</summary>
    public ulong LastHugeFaultNanoseconds { get; private set; }

    /// <summary>Regions currently mapped by a huge PMD.</summary>
    public int HugeMappings => depositedTables.Count;

    /// <summary>A THP leaf PDE: user, accessed, dirty, PS, with the VMA's rights (PROT_NONE keeps the frame with P clear).</summary>
    internal static PageTableEntry HugeLeafEntry(ulong headFrame, Vma vma) =>
        WithProtection(new PageTableEntry((headFrame << PagingConstants.PageBits) | PageTableEntry.PresentBit | PageTableEntry.UserBit | PageTableEntry.WritableBit
            | PageTableEntry.AccessedBit | PageTableEntry.DirtyBit | PageTableEntry.PageSizeBit), vma.Protection);

    /// <summary>
    /// Does the entry hold a frame? Present, or PROT_NONE (P clear, Linux's _PAGE_PROTNONE set), which
    /// Linux's pte_present() also counts; any other non-zero non-present entry is a swap entry.
    /// </summary>
    internal static bool MapsFrame(PageTableEntry entry) => entry.IsPresent || (entry.Raw & ProtNoneBit) != 0;

    /// <summary>A PMD mapping a huge page (present or PROT_NONE), as opposed to none or a table pointer.</summary>
    internal static bool IsHugeLeaf(PageTableEntry pmd) => pmd.IsLargePage && MapsFrame(pmd);

    internal void DepositTable(ulong region, ulong tableFrame) => depositedTables[region] = tableFrame;

    /// <summary>Records a new huge mapping of the block starting at <paramref name="headFrame"/>, which joins the LRU as one folio.</summary>
    internal void AccountHugeMapping(ulong headFrame, ulong region)
    {
        memory.Page(headFrame).EntireMapCount = 1;
        memory.Frames.SetOwner(headFrame, OwnerId, region >> PagingConstants.PageBits);
        memory.Frames.AddToLru(headFrame);
        ResidentPages += ThpSettings.PtesPerPmd;
    }

    /// <summary>Flushes the TLB for [start, end) as flush_tlb_mm_range does (per page up to the ceiling, else all).</summary>
    internal void FlushRange(ulong start, ulong end)
    {
        var gather = new FlushGather();
        gather.AddRange(start, end);
        Flush(gather);
    }

    /// <summary>
    /// Does sysfs `enabled` allow THP in this VMA (always; madvise with VM_HUGEPAGE), absent prctl and
    /// VM_NOHUGEPAGE? For a shmem VMA, shmem_enabled decides.
    /// </summary>
    bool ThpEnabledFor(Vma vma)
    {
        if (vma.IsShmem)
            return ShmemHugeAllowed(vma, forcedCollapse: false);
        if (ThpDisabled || !vma.IsAnonymous || (vma.Flags & VmaFlags.NoHugePage) != 0)
            return false;
        return Thp.Settings.Enabled == ThpEnabled.Always
            || (Thp.Settings.Enabled == ThpEnabled.Madvise && (vma.Flags & VmaFlags.HugePage) != 0);
    }

    /// <summary>May khugepaged collapse in <paramref name="vma"/>? The same rules as the fault path.</summary>
    public bool KhugepagedAllowed(Vma vma) => ThpEnabledFor(vma);

    /// <summary>
    /// May a fault in <paramref name="vma"/> map the 2 MiB region at <paramref name="region"/> with a THP?
    /// (thp_vma_allowable_order for the fault path: sysfs enabled, VM_HUGEPAGE/VM_NOHUGEPAGE, prctl, fit.)
    /// </summary>
    public bool FaultThpAllowed(Vma vma, ulong region)
    {
        return ThpEnabledFor(vma) && vma.End >= PagingConstants.LargePageSize
            && region >= vma.Start && region <= vma.End - PagingConstants.LargePageSize;
    }

    /// <summary>
    /// The PMD-level part of the fault handler: a fault inside a huge PMD, or a write fault on a
    /// region that may get a THP. Null means "handle it with 4 KiB pages".
    /// Read faults on untouched regions take the 4 KiB path: the model has no huge zero page.
    /// A write to a write-protected huge PMD (do_huge_pmd_wp_page) reuses the THP when this PMD holds
    /// its only reference; a THP shared with a forked relative is not copied whole (Linux stopped
    /// doing that in 5.8): the PMD is split and the 4 KiB path copies just the page written.
    /// </summary>
    FaultOutcome? HandleHugePmdFault(Vma vma, ulong address, AccessKind access)
    {
        ulong region = address & ~PagingConstants.LargePageMask;
        if (Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress))
        {
            var pmd = Tables.Read(pmdAddress);
            if (IsHugeLeaf(pmd))
            {
                if (access != AccessKind.Write || pmd.IsWritable)
                    return FaultOutcome.Spurious;
                if (memory.Page(pmd.FrameNumber).RefCount == 1)
                {
                    // The relative that shared it is gone: the THP is ours again.
                    memory.Frames.SetOwner(pmd.FrameNumber, OwnerId, region >> PagingConstants.PageBits);
                    Tables.Write(pmdAddress, pmd.With(PageTableEntry.WritableBit | PageTableEntry.DirtyBit | PageTableEntry.AccessedBit));
                    return FaultOutcome.WriteReused;
                }
                SplitHugePmd(region, pmdAddress);
                return null;
            }
            if (pmd.Raw != 0)
                return null;
        }
        if (access != AccessKind.Write || !FaultThpAllowed(vma, region))
            return null;
        return TryFaultHugePage(vma, region);
    }

    /// <summary>do_huge_pmd_anonymous_page: allocate (stalling as defrag allows), zero, deposit a table, map.</summary>
    FaultOutcome? TryFaultHugePage(Vma vma, ulong region)
    {
        var thp = Thp;
        if (!Tables.TryGetPmdAddress(region, allocate: true, out ulong pmdAddress) || !Tables.TryAllocateTable(out ulong deposit))
            return null;
        var effort = thp.Settings.FaultMayStall((vma.Flags & VmaFlags.HugePage) != 0)
            ? AllocationEffort.DirectReclaimAndCompaction
            : AllocationEffort.FreeListsOnly;
        bool allocated = memory.TryAllocateBlock(HugeOrder, node: 0, effort, FrameUse.Anonymous, out ulong head, out ulong stall);
        if (allocated && !memory.TryCharge(head, HugeOrder, effort, CostSink))
        {
            memory.FreeBlock(head, HugeOrder);
            allocated = false;
        }
        if (!allocated)
        {
            Tables.FreeTable(deposit);
            thp.Counters.FaultFallback++;
            LastHugeFaultNanoseconds = stall;
            return null;
        }
        memory.ZeroBlock(head, HugeOrder);
        DepositTable(region, deposit);
        Tables.Write(pmdAddress, HugeLeafEntry(head, vma));
        AccountHugeMapping(head, region);
        thp.Counters.FaultAlloc++;
        LastHugeFaultNanoseconds = CollapseCosts.AllocateFromFreeLists + stall + ThpSettings.PtesPerPmd * CollapseCosts.ZeroPerPage;
        return FaultOutcome.HugePageAllocated;
    }

    /// <summary>
    /// __split_huge_pmd: invalidate the PMD (clear, flush), refill the deposited table with 512 PTEs
    /// mapping the THP's pages with the PMD's rights and A/D bits, then point the PMD at it. Only the
    /// mapping is split: the THP stays one large folio, now mapped page by page (its PMD mapping and
    /// reference become 512 PTE mappings and references), so other processes mapping it are not
    /// affected; splitting the folio itself is <see cref="KernelMemory.TrySplitFolio"/>'s job.
    /// </summary>
    internal void SplitHugePmd(ulong region, ulong pmdAddress)
    {
        var pmd = Tables.Read(pmdAddress);
        ulong head = pmd.FrameNumber;
        if (memory.Page(head).Use == FrameUse.Shmem)
        {
            // A file PMD is split by unmapping it (__split_huge_pmd_locked); the folio stays in its object
            // and the next fault maps it again, by a PMD or, after splitting the folio, by PTEs.
            var flush = new FlushGather();
            UnmapHugePmd(region, pmdAddress, flush);
            Flush(flush);
            Thp.Counters.SplitPmd++;
            return;
        }
        if (!depositedTables.Remove(region, out ulong table) && !Tables.TryAllocateTable(out table))
            throw new InvalidOperationException("no deposited table for a huge PMD: the model lost track of it");
        Tables.Write(pmdAddress, default);
        FlushRange(region, region + PagingConstants.LargePageSize);
        ulong flags = pmd.Raw & (PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit
            | PageTableEntry.AccessedBit | PageTableEntry.DirtyBit | PageTableEntry.ExecuteDisableBit | ProtNoneBit);
        ref var folio = ref memory.Page(head);
        folio.EntireMapCount--;
        folio.RefCount += ThpSettings.PtesPerPmd - 1;
        for (ulong i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            memory.Page(head + i).MapCount++;
            Tables.Write((table << PagingConstants.PageBits) + i * PagingConstants.EntrySize, new PageTableEntry(((head + i) << PagingConstants.PageBits) | flags));
        }
        Tables.Write(pmdAddress, PageTableEntry.Table(table << PagingConstants.PageBits));
        Thp.Counters.SplitPmd++;
    }

    /// <summary>Splits every huge PMD of this address space that maps the THP at <paramref name="head"/> (split_huge_page's unmap step).</summary>
    internal void SplitHugePmdsMapping(ulong head)
    {
        foreach (var (region, pmdAddress) in HugePmdsIn(0, TaskSize))
        {
            if (Tables.Read(pmdAddress).FrameNumber == head)
                SplitHugePmd(region, pmdAddress);
        }
    }

    /// <summary>Does a PTE of this address space map <paramref name="frame"/> at <paramref name="linear"/>?</summary>
    internal bool MapsFrameAt(ulong linear, ulong frame)
    {
        var pte = Tables.ReadPte(linear);
        return MapsFrame(pte) && pte.FrameNumber == frame;
    }

    /// <summary>Unmap's PMD pass: huge PMDs wholly inside [start, end) are zapped, partly covered ones split (a shmem one unmapped).</summary>
    void ZapOrSplitHugePmds(ulong start, ulong end, FlushGather flush)
    {
        foreach (var (region, pmdAddress) in HugePmdsIn(start, end))
        {
            if (region < start || region + PagingConstants.LargePageSize > end)
            {
                SplitHugePmd(region, pmdAddress);
                continue;
            }
            UnmapHugePmd(region, pmdAddress, flush);
        }
    }

    /// <summary>Drops a huge PMD mapping of the THP at <paramref name="head"/>; a THP left partly mapped by others queues for a deferred split.</summary>
    void ReleaseHugeFrame(ulong head)
    {
        memory.Page(head).EntireMapCount--;
        ResidentPages -= ThpSettings.PtesPerPmd;
        memory.CheckPartlyMapped(head);
        memory.Release(head);
    }

    /// <summary>mprotect's PMD pass: huge PMDs wholly inside get the new rights in place, partly covered ones split.</summary>
    void ProtectOrSplitHugePmds(ulong start, ulong end, Protection protection, FlushGather flush)
    {
        foreach (var (region, pmdAddress) in HugePmdsIn(start, end))
        {
            if (region < start || region + PagingConstants.LargePageSize > end)
            {
                SplitHugePmd(region, pmdAddress);
                continue;
            }
            var old = Tables.Read(pmdAddress);
            var updated = WithProtection(old, protection);
            Tables.Write(pmdAddress, updated);
            if (NeedsFlush(old, updated))
                flush.AddRange(region, region + PagingConstants.LargePageSize);
        }
    }

    /// <summary>The huge PMDs overlapping [start, end), as (region, PMD address); a snapshot, safe to modify while iterating.</summary>
    List<(ulong Region, ulong PmdAddress)> HugePmdsIn(ulong start, ulong end)
    {
        var found = new List<(ulong, ulong)>();
        foreach (ulong region in depositedTables.Keys)
        {
            if (region + PagingConstants.LargePageSize <= start || region >= end) continue;
            if (Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress))
                found.Add((region, pmdAddress));
        }
        found.Sort();
        return found;
    }

    /// <summary>The first VMA ending above <paramref name="address"/> (Linux's find_vma), or null.</summary>
    public Vma? FindVmaAtOrAbove(ulong address)
    {
        int index = FindIndex(address);
        return index < vmas.Count ? vmas[index] : null;
    }

    /// <summary>
    /// Changes the flags of the VMAs covering [start, end), splitting at the ends and merging
    /// afterwards as madvise_update_vma does (MADV_HUGEPAGE, MADV_NOHUGEPAGE); false (nothing changed)
    /// when a split would exceed vm.max_map_count.
    /// </summary>
    public bool UpdateVmaFlags(ulong start, ulong end, Func<VmaFlags, VmaFlags> change)
    {
        if (!CanSplitAt(start, end))
            return false;
        SplitAt(start);
        SplitAt(end);
        for (int i = FindIndex(start); i < vmas.Count && vmas[i].Start < end; i++)
            vmas[i].Flags = change(vmas[i].Flags);
        MergeVmasIn(start, end);
        return true;
    }
}
