using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// The one collapse engine behind MADV_COLLAPSE, MADV_TRY_COLLAPSE, process_madvise and khugepaged:
/// it turns the 512 PTEs of a 2 MiB anonymous region into one huge PMD, phase by phase, in
/// collapse_huge_page's order, rolling back on failure. Every phase's modeled cost is added to
/// <see cref="CollapseState.TotalNanoseconds"/>; the caller charges it to whoever the policy names.
/// </summary>
public sealed class CollapseEngine
{
    readonly CollapseState state = new();
    readonly int[] nodeLoad = new int[64];

    public CollapseEngine(ThpCounters counters) => Counters = counters;

    public ThpCounters Counters { get; }

    /// <summary>Always-on totals by policy, result and phase.</summary>
    public CollapseStatistics Statistics { get; } = new();

    /// <summary>
    /// Fault injection for the debugger's "what if" view and its test: skip the TLB flush after clearing
    /// the PMD, so that a stale 4 KiB translation to a freed frame stays usable. Never set in normal runs.
    /// </summary>
    public bool SkipTlbFlush { get; set; }

    /// <summary>Receives every phase; null costs nothing.</summary>
    public ICollapseObserver? Observer { get; set; }

    /// <summary>The state of the last collapse (read it after <see cref="CollapseRegion"/>).</summary>
    public CollapseState Last => state;

    /// <summary>Collapses the 2 MiB region at <paramref name="region"/> of <paramref name="vma"/>.</summary>
    public CollapseResult CollapseRegion(AddressSpace mm, Vma vma, ulong region, CollapsePolicy policy)
    {
        state.Reset(mm, region, policy);
        if (region < vma.Start || region + PagingConstants.LargePageSize > vma.End || !vma.IsAnonymous)
            return Finish(CollapseResult.VmaCheck);

        var result = Scan(mm, out ulong cost);
        EndPhase(CollapsePhase.Scan, cost);
        if (result != CollapseResult.Succeeded)
            return Finish(result);

        result = AllocateAndCharge(mm, policy, out cost);
        EndPhase(CollapsePhase.AllocateAndCharge, cost);
        if (result != CollapseResult.Succeeded)
        {
            if (result == CollapseResult.AllocationFailed) Counters.CollapseAllocFailed++;
            return Finish(result);
        }

        if (state.Swapped > 0)
        {
            bool swappedIn = SwapIn(mm, out cost);
            EndPhase(CollapsePhase.SwapIn, cost);
            if (!swappedIn)
                return RollBack(mm, CollapseResult.SwapInFailed, restorePmd: false);
        }

        EndPhase(CollapsePhase.ClearPmdAndFlush, ClearPmdAndFlush(mm));

        result = Isolate(mm, out cost);
        EndPhase(CollapsePhase.Isolate, cost);
        if (result != CollapseResult.Succeeded)
            return RollBack(mm, result, restorePmd: true);

        EndPhase(CollapsePhase.Copy, Copy(mm));
        EndPhase(CollapsePhase.InstallPmd, InstallPmd(mm, vma));
        Counters.CollapseAlloc++;
        return Finish(CollapseResult.Succeeded);
    }

    void EndPhase(CollapsePhase phase, ulong nanoseconds)
    {
        state.Phase = phase;
        state.PhaseNanoseconds = nanoseconds;
        state.TotalNanoseconds += nanoseconds;
        Statistics.RecordPhase(phase, nanoseconds);
        Observer?.OnPhase(state);
    }

    CollapseResult Finish(CollapseResult result)
    {
        state.Result = result;
        Statistics.RecordEnd(state);
        EndPhase(result == CollapseResult.Succeeded ? CollapsePhase.Done : CollapsePhase.RolledBack, 0);
        return result;
    }

    /// <summary>hpage_collapse_scan_pmd: the PMD state, then each PTE against the policy's limits.</summary>
    CollapseResult Scan(AddressSpace mm, out ulong cost)
    {
        cost = CollapseCosts.ScanPerPte * ThpSettings.PtesPerPmd;
        var tables = mm.Tables;
        if (!tables.TryGetPmdAddress(state.Region, allocate: false, out ulong pmdAddress))
        {
            // Either no PDPT/PD exists (never touched) or a 1 GiB leaf covers it (the model never makes one).
            return CollapseResult.PmdNone;
        }
        state.PmdAddress = pmdAddress;
        var pmd = tables.Read(pmdAddress);
        state.OldPmd = pmd;
        if (pmd.Raw == 0)
            return CollapseResult.PmdNone;
        if (AddressSpace.IsHugeLeaf(pmd))
            return CollapseResult.PmdMapped;

        var policy = state.Policy;
        var frames = mm.Memory.Frames;
        Array.Clear(nodeLoad);
        ulong table = pmd.Address;
        var result = CollapseResult.Succeeded;
        for (int i = 0; i < ThpSettings.PtesPerPmd && result == CollapseResult.Succeeded; i++)
        {
            var pte = tables.Read(table + (ulong)i * PagingConstants.EntrySize);
            state.OldPtes[i] = pte.Raw;
            if (pte.Raw == 0 || (pte.IsPresent && pte.FrameNumber == mm.Memory.ZeroFrame))
            {
                if (++state.NoneOrZero > policy.MaxPtesNone) result = CollapseResult.ExceedNonePte;
                continue;
            }
            if (!AddressSpace.MapsFrame(pte))
            {
                if (++state.Swapped > policy.MaxPtesSwap) result = CollapseResult.ExceedSwapPte;
                continue;
            }
            state.Present++;
            var memory = mm.Memory;
            if (frames[pte.FrameNumber].Use != FrameUse.Anonymous) { result = CollapseResult.PageNotAnonymous; continue; }
            if (memory.PageMapCount(pte.FrameNumber) > 1 && ++state.Shared > policy.MaxPtesShared) { result = CollapseResult.ExceedSharedPte; continue; }
            if ((memory.Folio(pte.FrameNumber).Flags & PageFlags.Locked) != 0) { result = CollapseResult.PageLocked; continue; }
            if (!RefCountSuitable(memory, pte.FrameNumber)) { result = CollapseResult.PageCount; continue; }
            nodeLoad[mm.Memory.NodeOf(pte.FrameNumber) & 63]++;
            if (pte.IsAccessed) state.Referenced++;
        }
        if (result == CollapseResult.Succeeded && state.Present == 0 && state.Swapped == 0)
            result = CollapseResult.NoPresentPage;
        if (result == CollapseResult.Succeeded && policy.RequireReferencedPage
            && (state.Referenced == 0 || (state.Swapped > 0 && state.Referenced < ThpSettings.PtesPerPmd / 2)))
            result = CollapseResult.LackReferencedPage;
        return result;
    }

    /// <summary>The PTE holds a frame with contents to carry over: present or PROT_NONE, and not the shared zero page.</summary>
    static bool MapsRealPage(AddressSpace mm, PageTableEntry pte) =>
        AddressSpace.MapsFrame(pte) && pte.FrameNumber != mm.Memory.ZeroFrame;

    /// <summary>is_refcount_suitable: every reference to the page's folio is a mapping, and no long-term pin.</summary>
    static bool RefCountSuitable(KernelMemory memory, ulong frame)
    {
        ref var folio = ref memory.Folio(frame);
        return (folio.Flags & PageFlags.Pinned) == 0 && folio.RefCount == memory.FolioMapCount(memory.FolioOf(frame));
    }

    /// <summary>alloc_charge_folio: the node holding most of the region's pages, then the memcg charge.</summary>
    CollapseResult AllocateAndCharge(AddressSpace mm, CollapsePolicy policy, out ulong cost)
    {
        int node = 0;
        for (int i = 1; i < nodeLoad.Length; i++)
            if (nodeLoad[i] > nodeLoad[node]) node = i;
        state.Node = node;
        var memory = mm.Memory;
        bool allocated = memory.TryAllocateBlock(HugeOrder, node, policy.Effort, out ulong frame, out ulong stall);
        state.StallNanoseconds = stall;
        cost = CollapseCosts.AllocateFromFreeLists + stall;
        if (!allocated)
            return CollapseResult.AllocationFailed;
        // Reclaim inside the memcg charge is part of the stall, paid by whoever the policy names.
        var chargeStall = new Physical.CostLedger();
        bool charged = memory.TryCharge(frame, HugeOrder, policy.Effort, chargeStall);
        state.StallNanoseconds += chargeStall.TotalNs;
        cost += CollapseCosts.MemcgCharge + chargeStall.TotalNs;
        if (!charged)
        {
            memory.FreeBlock(frame, HugeOrder);
            return CollapseResult.ChargeFailed;
        }
        state.HugeFrame = frame;
        return CollapseResult.Succeeded;
    }

    /// <summary>Order of a PMD-sized block: 21 - 12 = 9.</summary>
    const int HugeOrder = PagingConstants.LargePageBits - PagingConstants.PageBits;

    /// <summary>__collapse_huge_page_swapin: fault each swapped PTE in, as do_swap_page would.</summary>
    bool SwapIn(AddressSpace mm, out ulong cost)
    {
        cost = 0;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            var pte = new PageTableEntry(state.OldPtes[i]);
            if (pte.Raw == 0 || AddressSpace.MapsFrame(pte)) continue;
            ulong linear = state.Region + ((ulong)i << PagingConstants.PageBits);
            cost += CollapseCosts.SwapInPerPage;
            if (!mm.HandleFault(linear, AccessKind.Read, present: false).IsResolved())
                return false;
            state.OldPtes[i] = mm.Tables.Read(state.OldPmd.Address + (ulong)i * PagingConstants.EntrySize).Raw;
        }
        return true;
    }

    /// <summary>pmdp_collapse_flush: clear the PMD, then flush the 2 MiB range (a full local flush on x86).</summary>
    ulong ClearPmdAndFlush(AddressSpace mm)
    {
        mm.Tables.Write(state.PmdAddress, default);
        if (!SkipTlbFlush)
            mm.FlushRange(state.Region, state.Region + PagingConstants.LargePageSize);
        return CollapseCosts.MmapWriteLock + CollapseCosts.ClearPmdAndFlush;
    }

    /// <summary>
    /// __collapse_huge_page_isolate: re-read every PTE now that none can be used (the allocation and the
    /// swap-in may have reclaimed or migrated pages since the scan) and re-check every present page.
    /// </summary>
    CollapseResult Isolate(AddressSpace mm, out ulong cost)
    {
        var frames = mm.Memory.Frames;
        cost = 0;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            var pte = mm.Tables.Read(state.OldPmd.Address + (ulong)i * PagingConstants.EntrySize);
            state.OldPtes[i] = pte.Raw;
            if (pte.Raw != 0 && !AddressSpace.MapsFrame(pte)) return CollapseResult.PteNonPresent;
            if (!MapsRealPage(mm, pte)) continue;
            cost += CollapseCosts.IsolatePerPage;
            if ((mm.Memory.Folio(pte.FrameNumber).Flags & PageFlags.Locked) != 0) return CollapseResult.PageLocked;
            if (!RefCountSuitable(mm.Memory, pte.FrameNumber)) return CollapseResult.PageCount;
        }
        return CollapseResult.Succeeded;
    }

    /// <summary>__collapse_huge_page_copy: copy present pages, zero the rest, then free the old pages
    /// and clear the old table (it is deposited empty).</summary>
    ulong Copy(AddressSpace mm)
    {
        var memory = mm.Memory;
        ulong cost = 0;
        int freed = 0;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            var pte = new PageTableEntry(state.OldPtes[i]);
            ulong target = state.HugeFrame + (ulong)i;
            if (MapsRealPage(mm, pte))
            {
                memory.CopyFrame(pte.FrameNumber, target);
                cost += CollapseCosts.CopyPerPage;
            }
            else
            {
                memory.ZeroFrame4K(target);
                cost += CollapseCosts.ZeroPerPage;
            }
        }
        ulong table = state.OldPmd.Address;
        var unmappedFolios = new HashSet<ulong>();
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            var pte = new PageTableEntry(state.OldPtes[i]);
            mm.Tables.Write(table + (ulong)i * PagingConstants.EntrySize, default);
            if (!MapsRealPage(mm, pte)) continue;
            mm.ReleaseMappedFrame(pte.FrameNumber, unmappedFolios);
            freed++;
        }
        foreach (ulong head in unmappedFolios)
            memory.CheckPartlyMapped(head);
        return cost + (ulong)freed * CollapseCosts.FreePerPage;
    }

    /// <summary>Deposit the old table, write the huge PMD (writable iff the VMA is, dirty, accessed).</summary>
    ulong InstallPmd(AddressSpace mm, Vma vma)
    {
        var pmd = AddressSpace.HugeLeafEntry(state.HugeFrame, vma);
        mm.DepositTable(state.Region, state.OldPmd.FrameNumber);
        mm.Tables.Write(state.PmdAddress, pmd);
        mm.AccountHugeMapping(state.HugeFrame, state.Region);
        state.NewPmd = pmd;
        return CollapseCosts.InstallPmd;
    }

    /// <summary>Undo: put the PTE table back (when it was unhooked), uncharge and free the huge frame.</summary>
    CollapseResult RollBack(AddressSpace mm, CollapseResult result, bool restorePmd)
    {
        if (restorePmd)
            mm.Tables.Write(state.PmdAddress, state.OldPmd);
        mm.Memory.FreeBlock(state.HugeFrame, HugeOrder);
        state.HugeFrame = 0;
        return Finish(result);
    }
}
