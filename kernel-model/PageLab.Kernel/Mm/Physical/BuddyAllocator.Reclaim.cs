namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// Direct reclaim over the classic two-list LRU of Linux 6.18 (mm/vmscan.c with CONFIG_LRU_GEN off or
/// lru_gen disabled): per node, an inactive and an active list for anonymous memory and for page cache.
/// We model the two-list LRU and not MGLRU, although many distributions enable MGLRU, because it is the
/// documented model (Documentation/mm/page_reclaim, the active/inactive fields of /proc/meminfo), every
/// kernel still builds it, and its decisions follow from one page's own history (the accessed bits its
/// mappings showed at the last two looks), which a user of PageLab can predict and check; MGLRU's
/// generations, page-table walks and tiers would add much state for the same effect at this scale.
/// </summary>
public sealed partial class BuddyAllocator
{
    /// <summary>DEF_PRIORITY: the first pass scans 1/4096 of each list, each later pass twice as much.</summary>
    const int DefaultPriority = 12;

    /// <summary>What folio_check_references (plus the outcome of trying) decided for one folio.</summary>
    enum FolioVerdict : byte
    {
        /// <summary>Freed: dropped, discarded or written to swap.</summary>
        Reclaimed,
        /// <summary>Back to the young end of the inactive list (FOLIOREF_KEEP, or busy).</summary>
        Keep,
        /// <summary>Moved to the active list (FOLIOREF_ACTIVATE, or could not be reclaimed: activate_locked).</summary>
        Activate,
    }

    /// <summary>One reclaim request's state (Linux's struct scan_control, reduced).</summary>
    sealed class ScanControl(ulong target, MemoryCgroup? cgroup, ICostSink? cost)
    {
        public readonly ulong Target = target;
        public readonly MemoryCgroup? Cgroup = cgroup;
        public readonly ICostSink? Cost = cost;
        public ulong Reclaimed;
        public bool Done => Reclaimed >= Target;
    }

    /// <summary>
    /// The kernel's shrinkers that direct reclaim runs (in PageLab: the THP deferred split queue):
    /// given the cgroup being reclaimed (null for all) and the frames wanted, frees what it can and
    /// returns how many frames it freed.
    /// </summary>
    public Func<MemoryCgroup?, ulong, ulong>? Shrinker { get; set; }

    /// <summary>
    /// Direct reclaim (do_try_to_free_pages, shrink_node): runs the <see cref="Shrinker"/> first (Linux
    /// runs shrink_slab after the LRU lists in each pass; splitting partly unmapped THPs frees memory
    /// without any I/O, so the model takes it first), then frees at least <paramref name="target"/> pages if
    /// it can, in passes of rising priority: pass p scans list size &gt;&gt; p pages of each list, p from
    /// <see cref="DefaultPriority"/> down to 0. In each pass the file lists come first; the anonymous lists
    /// are scanned only when the inactive file list is too small for this pass (get_scan_count's
    /// cache_trim_mode: with enough inactive page cache, the anonymous working set is left alone; the
    /// swappiness-weighted split between the two is not modeled) and there is swap to write to (else only
    /// lazily freed pages are taken). A list's inactive part is refilled from its active part when it has
    /// become the smaller one (inactive_is_low, ratio 1 below 1 GiB). Pinned, locked and ownerless pages
    /// stay. With a <paramref name="cgroup"/>, only pages charged to it are looked at (memcg reclaim).
    /// Costs: every folio scanned, every reverse-map visit of a mapping, every list move, every page
    /// dropped or written to swap.
    /// </summary>
    /// <param name="nodeId">The node to reclaim from, or null for all nodes.</param>
    /// <param name="target">Pages wanted.</param>
    /// <param name="cgroup">Reclaim only pages charged to this group; null for all.</param>
    /// <param name="cost">Who pays the modeled time.</param>
    /// <returns>Pages freed (a THP counts 512, so the result may exceed the target).</returns>
    public ulong Reclaim(int? nodeId, ulong target, MemoryCgroup? cgroup, ICostSink? cost)
    {
        var scan = new ScanControl(target, cgroup, cost) { Reclaimed = Shrinker?.Invoke(cgroup, target) ?? 0 };
        for (int priority = DefaultPriority; priority >= 0 && !scan.Done; priority--)
        {
            for (int i = 0; i < nodes.Length && !scan.Done; i++)
            {
                if (nodeId is null || nodeId == i)
                    ShrinkNode(nodes[i], priority, scan);
            }
        }
        return scan.Reclaimed;
    }

    void ShrinkNode(NumaNode node, int priority, ScanControl scan)
    {
        ulong before = scan.Reclaimed;
        ShrinkLruvecType(node, LruList.InactiveFile, priority, scan);
        // cache_trim_mode holds while the inactive file list is large for this pass and trimming it works.
        if (!scan.Done && (node.LruPages(LruList.InactiveFile) >> priority == 0 || scan.Reclaimed == before))
            ShrinkLruvecType(node, LruList.InactiveAnon, priority, scan);
    }

    /// <summary>
    /// One type's two lists for one pass: the inactive list, then the active list if the inactive one was
    /// low. Both amounts are fixed before either list is touched, as get_scan_count and the may_deactivate
    /// decision of prepare_scan_control are, so pages activated in this pass are not deactivated in it.
    /// </summary>
    void ShrinkLruvecType(NumaNode node, LruList inactive, int priority, ScanControl scan)
    {
        var active = inactive == LruList.InactiveAnon ? LruList.ActiveAnon : LruList.ActiveFile;
        ulong activeToScan = InactiveIsLow(node, inactive, active) ? node.LruPages(active) >> priority : 0;
        ShrinkInactiveList(node, inactive, node.LruPages(inactive) >> priority, scan);
        if (activeToScan != 0)
            ShrinkActiveList(node, active, activeToScan, scan);
    }

    /// <summary>
    /// inactive_is_low: the inactive list should hold at least 1/ratio of the type's pages, where ratio is
    /// int_sqrt(10 * GiB of the type) and 1 below 1 GiB.
    /// </summary>
    static bool InactiveIsLow(NumaNode node, LruList inactive, LruList active)
    {
        ulong inactivePages = node.LruPages(inactive), activePages = node.LruPages(active);
        ulong gigabytes = (inactivePages + activePages) >> (30 - Emulator.Paging.PagingConstants.PageBits);
        ulong ratio = gigabytes == 0 ? 1 : (ulong)Math.Sqrt(10.0 * gigabytes);
        return inactivePages * ratio < activePages;
    }

    /// <summary>
    /// shrink_inactive_list + shrink_folio_list: takes folios from the old end until
    /// <paramref name="pagesToScan"/> pages were scanned (a THP counts 512; pgscan_direct) and decides each
    /// by its references. Every folio is looked at once at most per call.
    /// </summary>
    void ShrinkInactiveList(NumaNode node, LruList list, ulong pagesToScan, ScanControl scan)
    {
        ulong scannedPages = 0, scannedFolios = 0, reclaimedBefore = scan.Reclaimed;
        ulong limit = node.Lru[(int)list].Count;
        bool anonymous = list == LruList.InactiveAnon;
        bool swapHasRoom = Swap is { HasFreeSlot: true };
        for (int frame = node.Lru[(int)list].Last, visited = 0; frame != NoFrame && (ulong)visited < limit && scannedPages < pagesToScan && !scan.Done; visited++)
        {
            int younger = pages[frame].Prev;
            ref var page = ref pages[frame];
            // Another group's pages sit on another memcg's lruvec in Linux; without swap only lazily freed anonymous pages can go.
            bool candidate = (scan.Cgroup is null || page.Memcg == scan.Cgroup.Id)
                && (!anonymous || swapHasRoom || (page.Flags & PageFlags.LazyFree) != 0);
            if (candidate)
            {
                scannedPages += 1UL << page.Order;
                scannedFolios++;
                scan.Reclaimed += ShrinkFolio((ulong)frame, scan);
            }
            frame = younger;
        }
        Counters.PageScanDirect += scannedPages;
        Counters.PageStealDirect += scan.Reclaimed - reclaimedBefore;
        scan.Cost?.Charge(MmCostKind.ReclaimScan, scannedFolios * MmCosts.ReclaimScanPerPageNs);
    }

    /// <summary>
    /// shrink_active_list: takes <paramref name="pagesToScan"/> pages' worth of folios from the old end of an
    /// active list (pgrefill), clears their accessed bits through the reverse map, and moves them to the
    /// young end of the inactive list (pgdeactivate), where they must be referenced again to come back.
    /// Only executable page cache that was referenced gets another trip around the active list: Linux
    /// ignores anonymous references here, so that a large anonymous working set still ages.
    /// </summary>
    void ShrinkActiveList(NumaNode node, LruList list, ulong pagesToScan, ScanControl scan)
    {
        ulong scannedPages = 0, scannedFolios = 0, limit = node.Lru[(int)list].Count;
        for (int frame = node.Lru[(int)list].Last, visited = 0; frame != NoFrame && (ulong)visited < limit && scannedPages < pagesToScan; visited++)
        {
            int younger = pages[frame].Prev;
            ref var page = ref pages[frame];
            if (scan.Cgroup is null || page.Memcg == scan.Cgroup.Id)
            {
                ulong size = 1UL << page.Order;
                scannedPages += size;
                scannedFolios++;
                var references = Referenced((ulong)frame, scan.Cost);
                bool keepActive = references.Young > 0 && references.Executable && list == LruList.ActiveFile;
                UnlinkLru((ulong)frame);
                if (!keepActive)
                {
                    page.IsActive = false;
                    Counters.PageDeactivate += size;
                }
                LinkLru((ulong)frame, youngest: true);
                scan.Cost?.Charge(MmCostKind.ReclaimListMove, MmCosts.ListMovePerFolioNs);
            }
            frame = younger;
        }
        Counters.PageRefill += scannedPages;
        scan.Cost?.Charge(MmCostKind.ReclaimScan, scannedFolios * MmCosts.ReclaimScanPerPageNs);
    }

    /// <summary>
    /// One folio through shrink_folio_list: folio_check_references decides from the young mappings found
    /// now and from PG_referenced (set by the previous look); an unreferenced folio is reclaimed, a THP
    /// swapped whole or split first. Returns the pages freed.
    /// </summary>
    ulong ShrinkFolio(ulong frame, ScanControl scan)
    {
        ref var page = ref pages[frame];
        if (page.Owner == 0 || page.IsBusy)
        {
            // folio_trylock failed or a long-term pin: keep_locked, back to the young end.
            Putback(frame, FolioVerdict.Keep, scan.Cost);
            return 0;
        }
        var verdict = CheckReferences(frame, scan.Cost);
        if (verdict != FolioVerdict.Reclaimed)
        {
            Putback(frame, verdict, scan.Cost);
            return 0;
        }
        if (page.Order == PageblockOrder)
            return ReclaimHugePage(frame, scan);
        if (TryReclaimPage(frame, scan.Cost))
            return 1;
        // A swap-backed page that could not be written (swap full, unmap refused) is activated
        // (activate_locked); a dirty page-cache page waits for writeback on the inactive list (keep).
        Putback(frame, page.Use is FrameUse.Anonymous or FrameUse.Shmem ? FolioVerdict.Activate : FolioVerdict.Keep, scan.Cost);
        return 0;
    }

    /// <summary>
    /// folio_check_references for the two-list LRU. Every mapped page starts with a young PTE from the
    /// fault that created it, so one young look only sets PG_referenced and keeps the page inactive; a
    /// second young look (or two young mappings, or a young executable file mapping) activates it. A page
    /// with no young mapping is reclaimed, whatever PG_referenced says (for clean page cache that is
    /// FOLIOREF_RECLAIM_CLEAN, the same here since dirty page cache is never reclaimed).
    /// </summary>
    FolioVerdict CheckReferences(ulong frame, ICostSink? cost)
    {
        ref var page = ref pages[frame];
        var references = Referenced(frame, cost);
        bool wasReferenced = page.IsReferenced;
        page.IsReferenced = false;
        if (references.Young == 0)
            return FolioVerdict.Reclaimed;
        page.IsReferenced = true;
        if (wasReferenced || references.Young > 1 || (references.Executable && page.Use == FrameUse.PageCache))
            return FolioVerdict.Activate;
        return FolioVerdict.Keep;
    }

    /// <summary>folio_referenced through the owner's reverse map, charging one visit per mapping.</summary>
    PageReferences Referenced(ulong frame, ICostSink? cost)
    {
        ref var page = ref pages[frame];
        if (Owners[page.Owner] is not { } owner)
            return default;
        var references = owner.TestAndClearYoung(page.OwnerIndex, frame);
        cost?.Charge(MmCostKind.ReclaimReferenceCheck, (ulong)references.Mappings * MmCosts.ReferenceCheckPerMappingNs);
        return references;
    }

    /// <summary>Puts a folio that stays back on its list: the young end of the inactive list, or the active list (pgactivate).</summary>
    void Putback(ulong frame, FolioVerdict verdict, ICostSink? cost)
    {
        ref var page = ref pages[frame];
        if (!page.OnLru)
            return;
        UnlinkLru(frame);
        if (verdict == FolioVerdict.Activate)
        {
            page.IsActive = true;
            Counters.PageActivate += 1UL << page.Order;
        }
        LinkLru(frame, youngest: true);
        cost?.Charge(MmCostKind.ReclaimListMove, MmCosts.ListMovePerFolioNs);
    }

    /// <summary>
    /// An unreferenced anonymous THP. Mapped by one huge PMD only, it is written whole to a free swap
    /// cluster and its PMD becomes 512 swap PTEs (THP_SWAP: thp_swpout, 512 x pswpout); without a free
    /// cluster it is split (thp_swpout_fallback; thp_split_page) and its pages go through reclaim one by
    /// one, as the split folios join shrink_folio_list's list in Linux. A THP whose PMD was split already
    /// (mapped by PTEs, perhaps in part) is split first as well: Linux does that for partly mapped ones
    /// and would still swap a wholly PTE-mapped one to a cluster, which the model does not. A THP mapped
    /// more than once (shared with a forked relative) is activated and stays whole: the model evicts no
    /// page that several PTEs map, so splitting it would gain nothing.
    /// </summary>
    ulong ReclaimHugePage(ulong head, ScanControl scan)
    {
        ref var page = ref pages[head];
        var owner = Owners[page.Owner]!;
        const ulong HugeFrames = 1UL << PageblockOrder;
        int pteMappings = 0;
        bool mappedOnce = page.EntireMapCount <= 1;
        for (ulong i = 0; i < HugeFrames && mappedOnce; i++)
        {
            pteMappings += pages[head + i].MapCount;
            mappedOnce = pages[head + i].MapCount <= 1 && (page.EntireMapCount == 0 || pteMappings == 0);
        }
        // A huge shmem folio is split for reclaim, wherever it is mapped (its owner unmaps it everywhere
        // first), and its pages are swapped one by one; the model writes no shmem folio whole.
        bool shmem = page.Use == FrameUse.Shmem;
        if (Swap is null || (!shmem && (page.Use != FrameUse.Anonymous || !mappedOnce || page.RefCount != page.EntireMapCount + pteMappings)))
        {
            Putback(head, FolioVerdict.Activate, scan.Cost);
            return 0;
        }
        bool noCluster = false;
        if (!shmem && page.EntireMapCount == 1)
        {
            var bytes = memory.Span(head << Emulator.Paging.PagingConstants.PageBits, (int)(HugeFrames << Emulator.Paging.PagingConstants.PageBits));
            if (Swap.TryStoreCluster(bytes, out ulong firstSlot))
            {
                if (owner.TryEvict(page.OwnerIndex, head, SwapPte.Create(Swap.Type, firstSlot)))
                {
                    Counters.ThpSwapOut++;
                    Counters.SwapOut += HugeFrames;
                    scan.Cost?.Charge(MmCostKind.SwapOut, MmCosts.SwapOutClusterNs);
                    Free(head, PageblockOrder);
                    return HugeFrames;
                }
                for (ulong i = 0; i < HugeFrames; i++)
                    Swap.Release(firstSlot + i);
                Putback(head, FolioVerdict.Activate, scan.Cost);
                return 0;
            }
            noCluster = true;
        }
        ulong freeBefore = FreeFrames;
        if (!owner.TrySplitHuge(page.OwnerIndex, head))
        {
            Putback(head, FolioVerdict.Activate, scan.Cost);
            return 0;
        }
        if (noCluster)
            Counters.ThpSwapOutFallback++;
        // Pages nobody mapped were freed by the split; the mapped ones are order-0 pages on the LRU now.
        ulong reclaimed = FreeFrames - freeBefore;
        for (ulong piece = head; piece < head + HugeFrames; piece++)
        {
            if (pages[piece].OnLru)
                reclaimed += ShrinkFolio(piece, scan);
        }
        return reclaimed;
    }

    /// <summary>Frees one order-0 page that reclaim decided to take: discard, drop or swap; false when it must stay.</summary>
    bool TryReclaimPage(ulong frame, ICostSink? cost)
    {
        ref var page = ref pages[frame];
        if (!page.IsMigratable)
            return false;
        var owner = Owners[page.Owner]!;
        if ((page.Flags & PageFlags.LazyFree) != 0)
        {
            // A clean MADV_FREE page is dropped like clean page cache; a redirtied one is anonymous again.
            if (owner.TryEvict(page.OwnerIndex, frame, SwapPte.None))
            {
                Counters.LazyFreed++;
                cost?.Charge(MmCostKind.ReclaimDrop, MmCosts.DropCleanPagePerPageNs);
                Free(frame, 0);
                return true;
            }
            page.Flags &= ~PageFlags.LazyFree;
        }
        if (page.Use == FrameUse.PageCache)
        {
            if ((page.Flags & PageFlags.Dirty) != 0 || !owner.TryEvict(page.OwnerIndex, frame, SwapPte.None))
                return false;
            cost?.Charge(MmCostKind.ReclaimDrop, MmCosts.DropCleanPagePerPageNs);
        }
        else
        {
            if (Swap is null || !Swap.TryStore(FrameBytes(frame), out ulong slot))
                return false;
            if (!owner.TryEvict(page.OwnerIndex, frame, SwapPte.Create(Swap.Type, slot)))
            {
                Swap.Release(slot);
                return false;
            }
            Counters.SwapOut++;
            cost?.Charge(MmCostKind.SwapOut, MmCosts.SwapOutPerPageNs);
        }
        Free(frame, 0);
        return true;
    }

    /// <summary>
    /// Reclaims one folio now, whatever its references say (MADV_PAGEOUT's reclaim_pages): page cache is
    /// dropped, a lazily freed page discarded, an anonymous page written to swap, an anonymous THP on the
    /// LRU swapped whole or split as direct reclaim does it; false when it stays (busy, shared, no swap).
    /// </summary>
    public bool TryReclaimNow(ulong frame, ICostSink? cost)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frame, FrameCount);
        cost?.Charge(MmCostKind.ReclaimScan, MmCosts.ReclaimScanPerPageNs);
        ref var page = ref pages[frame];
        if (page.State == PageState.Head && page.Order == PageblockOrder)
            return page.OnLru && page.Owner != 0 && !page.IsBusy && ReclaimHugePage(frame, new ScanControl(1, null, cost)) > 0;
        return TryReclaimPage(frame, cost);
    }

    /// <summary>
    /// Swap-in for the fault handler: reads the page <paramref name="entry"/> names into
    /// <paramref name="frame"/> (allocated by the caller), drops that PTE's use of the slot and charges
    /// the read to <paramref name="cost"/>. The caller then installs a present PTE.
    /// </summary>
    public void SwapIn(SwapPte entry, ulong frame, ICostSink? cost)
    {
        if (Swap is null || entry.Type != Swap.Type)
            throw new InvalidOperationException($"{entry} names no swap device here");
        Swap.Load(entry.Offset, FrameBytes(frame));
        Swap.Release(entry.Offset);
        Counters.SwapIn++;
        cost?.Charge(MmCostKind.SwapIn, MmCosts.SwapInPerPageNs);
    }
}
