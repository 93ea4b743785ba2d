using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// The one collapse engine behind MADV_COLLAPSE, MADV_TRY_COLLAPSE, process_madvise and khugepaged:
/// it turns the 512 PTEs of a 2 MiB anonymous region into one huge PMD, phase by phase, in
/// collapse_huge_page's order, rolling back on failure. Every phase's modeled cost is added to
/// <see cref="CollapseState.TotalNanoseconds"/>; the caller charges it to whoever the policy names.
/// A region of a shmem VMA goes through the same phases as collapse_file does them: the scan reads the
/// shmem object rather than the PTEs, the old pages are unmapped from every address space rather than
/// by clearing one PMD, the copy builds the huge folio in the object (replacing its 512 entries), and
/// the calling address space then maps it by a PMD (madvise_collapse's collapse_pte_mapped_thp).
/// </summary>
public sealed class CollapseEngine
{
    readonly CollapseState state = new();
    readonly int[] nodeLoad = new int[64];
    /// <summary>For a shmem region: the object's frame at each of the 512 indices (0 for a hole or a swapped page).</summary>
    readonly ulong[] filePages = new ulong[ThpSettings.PtesPerPmd];

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
        bool file = vma.IsShmem;
        if (region < vma.Start || region + PagingConstants.LargePageSize > vma.End || !(vma.IsAnonymous || file)
            || (file && !AddressSpace.ShmemPmdSuitable(vma, region)))
            return Finish(CollapseResult.VmaCheck);

        var result = file ? ScanFile(mm, vma, out ulong cost) : Scan(mm, out cost);
        EndPhase(CollapsePhase.Scan, cost);
        if (result != CollapseResult.Succeeded)
            return Finish(result == CollapseResult.PmdMapped && file ? MapExistingFolio(mm, vma) : result);

        result = AllocateAndCharge(mm, policy, file ? FrameUse.Shmem : FrameUse.Anonymous, out cost);
        EndPhase(CollapsePhase.AllocateAndCharge, cost);
        if (result != CollapseResult.Succeeded)
        {
            if (result == CollapseResult.AllocationFailed) Counters.CollapseAllocFailed++;
            return Finish(result);
        }

        if (state.Swapped > 0)
        {
            bool swappedIn = file ? SwapInFile(mm, vma, out cost) : SwapIn(mm, out cost);
            EndPhase(CollapsePhase.SwapIn, cost);
            if (!swappedIn)
                return RollBack(mm, CollapseResult.SwapInFailed, restorePmd: false);
        }

        EndPhase(CollapsePhase.ClearPmdAndFlush, file ? UnmapFilePages(mm, vma) : ClearPmdAndFlush(mm));

        result = file ? IsolateFile(mm, vma, out cost) : Isolate(mm, out cost);
        EndPhase(CollapsePhase.Isolate, cost);
        if (result != CollapseResult.Succeeded)
            return RollBack(mm, result, restorePmd: !file); // unmapped shmem pages stay in the object: faults map them again

        EndPhase(CollapsePhase.Copy, file ? CopyFile(mm, vma) : Copy(mm));
        EndPhase(CollapsePhase.InstallPmd, file ? InstallFilePmd(mm, vma) : InstallPmd(mm, vma));
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
            // No PDPT entry or page directory exists (nothing in this 1 GiB was touched), or a 1 GiB leaf covers it
            // (the model never makes one): mm_find_pmd returns NULL.
            return CollapseResult.PmdNull;
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
    CollapseResult AllocateAndCharge(AddressSpace mm, CollapsePolicy policy, FrameUse use, out ulong cost)
    {
        int node = 0;
        for (int i = 1; i < nodeLoad.Length; i++)
            if (nodeLoad[i] > nodeLoad[node]) node = i;
        state.Node = node;
        var memory = mm.Memory;
        bool allocated = memory.TryAllocateBlock(HugeOrder, node, policy.Effort, use, out ulong frame, out ulong stall);
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

    /// <summary>First page index of the region in the VMA's shmem object.</summary>
    static long FirstIndex(Vma vma, ulong region) => vma.FileOffsetOf(region) >> PagingConstants.PageBits;

    /// <summary>
    /// hpage_collapse_scan_file: the calling address space's PMD (already huge: done), then the object's
    /// 512 entries against the policy's limits: holes (max_ptes_none), swapped pages (max_ptes_swap),
    /// and each present page's lock and references (the cache's, plus one per mapping). PmdMapped when
    /// the object already holds a huge folio there.
    /// </summary>
    CollapseResult ScanFile(AddressSpace mm, Vma vma, out ulong cost)
    {
        cost = CollapseCosts.ScanPerPte * ThpSettings.PtesPerPmd;
        if (mm.Tables.TryGetPmdAddress(state.Region, allocate: false, out ulong pmdAddress))
        {
            state.PmdAddress = pmdAddress;
            state.OldPmd = mm.Tables.Read(pmdAddress);
            if (AddressSpace.IsHugeLeaf(state.OldPmd))
                return CollapseResult.PmdMapped;
            // For the observers' before/after view: the caller's PTEs over the region, if it has a table.
            for (int i = 0; i < ThpSettings.PtesPerPmd && state.OldPmd.Raw != 0; i++)
                state.OldPtes[i] = mm.Tables.Read(state.OldPmd.Address + (ulong)i * PagingConstants.EntrySize).Raw;
        }
        var cache = mm.Memory.PageCache;
        var frames = mm.Memory.Frames;
        long first = FirstIndex(vma, state.Region);
        if (cache.TryGetHugeFolio(vma.File!, first, out _))
            return CollapseResult.PmdMapped;
        Array.Clear(nodeLoad);
        Array.Clear(filePages);
        var policy = state.Policy;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            switch (cache.Find(vma.File!, first + i, out ulong frame))
            {
                case CachedPage.None:
                    if (++state.NoneOrZero > policy.MaxPtesNone) return CollapseResult.ExceedNonePte;
                    continue;
                case CachedPage.Swapped:
                    if (++state.Swapped > policy.MaxPtesSwap) return CollapseResult.ExceedSwapPte;
                    continue;
            }
            state.Present++;
            filePages[i] = frame;
            ref var info = ref frames[frame];
            if ((info.Flags & PageFlags.Locked) != 0) return CollapseResult.PageLocked;
            if ((info.Flags & PageFlags.Pinned) != 0 || info.RefCount != info.MapCount + 1) return CollapseResult.PageCount;
            nodeLoad[mm.Memory.NodeOf(frame) & 63]++;
        }
        return CollapseResult.Succeeded;
    }

    /// <summary>
    /// The object already holds a huge folio here (SCAN_PTE_MAPPED_HUGEPAGE): madvise_collapse maps it by the
    /// calling address space's PMD; khugepaged leaves that to the next fault (install_pmd false).
    /// </summary>
    CollapseResult MapExistingFolio(AddressSpace mm, Vma vma)
    {
        if (AddressSpace.IsHugeLeaf(state.OldPmd) || state.Policy.Initiator != CollapseInitiator.Caller)
            return CollapseResult.PmdMapped;
        long first = FirstIndex(vma, state.Region);
        mm.Memory.PageCache.TryGetHugeFolio(vma.File!, first, out ulong head);
        if (!mm.Tables.TryGetPmdAddress(state.Region, allocate: true, out ulong pmdAddress) || !mm.MapShmemPmd(vma, state.Region, pmdAddress, head))
            return CollapseResult.PmdNone;
        state.NewPmd = mm.Tables.Read(pmdAddress);
        return CollapseResult.PmdMapped;
    }

    /// <summary>shmem_get_folio for the swapped entries: read each back into the object.</summary>
    bool SwapInFile(AddressSpace mm, Vma vma, out ulong cost)
    {
        cost = 0;
        long first = FirstIndex(vma, state.Region);
        var cache = mm.Memory.PageCache;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            if (cache.Find(vma.File!, first + i, out _) != CachedPage.Swapped) continue;
            cost += CollapseCosts.SwapInPerPage;
            if (!cache.TryGetFrame(vma.File!, first + i, out filePages[i], mm.CostSink))
                return false;
        }
        return true;
    }

    /// <summary>collapse_file's try_to_unmap of every old page: no address space can reach them any more.</summary>
    ulong UnmapFilePages(AddressSpace mm, Vma vma)
    {
        long first = FirstIndex(vma, state.Region);
        mm.Memory.PageCache.UnmapRange(vma.File!, first, first + ThpSettings.PtesPerPmd);
        return CollapseCosts.MmapWriteLock + CollapseCosts.ClearPmdAndFlush;
    }

    /// <summary>
    /// collapse_file's per-page isolation, after the allocation may have reclaimed: each page must still be
    /// the object's, unlocked, and held by the cache alone now that it is unmapped.
    /// </summary>
    CollapseResult IsolateFile(AddressSpace mm, Vma vma, out ulong cost)
    {
        cost = 0;
        long first = FirstIndex(vma, state.Region);
        var frames = mm.Memory.Frames;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            if (filePages[i] == 0) continue;
            if (mm.Memory.PageCache.Find(vma.File!, first + i, out ulong frame) != CachedPage.Present || frame != filePages[i])
                return CollapseResult.PteNonPresent;
            cost += CollapseCosts.IsolatePerPage;
            ref var info = ref frames[frame];
            if ((info.Flags & PageFlags.Locked) != 0) return CollapseResult.PageLocked;
            if (info.RefCount != 1) return CollapseResult.PageCount;
        }
        return CollapseResult.Succeeded;
    }

    /// <summary>collapse_file's copy: present pages into the huge folio, holes zeroed; the folio replaces them in the object.</summary>
    ulong CopyFile(AddressSpace mm, Vma vma)
    {
        var memory = mm.Memory;
        ulong cost = 0;
        for (int i = 0; i < ThpSettings.PtesPerPmd; i++)
        {
            ulong target = state.HugeFrame + (ulong)i;
            if (filePages[i] != 0)
            {
                memory.CopyFrame(filePages[i], target);
                cost += CollapseCosts.CopyPerPage + CollapseCosts.FreePerPage;
            }
            else
            {
                memory.ZeroFrame4K(target);
                cost += CollapseCosts.ZeroPerPage;
            }
        }
        memory.PageCache.ReplaceWithHugeFolio(vma.File!, FirstIndex(vma, state.Region), state.HugeFrame);
        return cost;
    }

    /// <summary>
    /// madvise_collapse's collapse_pte_mapped_thp with install_pmd: the calling address space maps the new
    /// folio by its PMD (the emptied table deposited). khugepaged installs nothing: every address space maps
    /// the folio on its next fault (its emptied table counts as none then, as if retracted).
    /// </summary>
    ulong InstallFilePmd(AddressSpace mm, Vma vma)
    {
        if (state.Policy.Initiator == CollapseInitiator.Caller
            && mm.Tables.TryGetPmdAddress(state.Region, allocate: true, out ulong pmdAddress) && mm.MapShmemPmd(vma, state.Region, pmdAddress, state.HugeFrame))
        {
            state.PmdAddress = pmdAddress;
            state.NewPmd = mm.Tables.Read(pmdAddress);
        }
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
