namespace PageLab.Kernel.Mm.Physical;

public sealed partial class BuddyAllocator
{
    /// <summary>
    /// The kernel's shrinkers that direct reclaim runs (in PageLab: the THP deferred split queue):
    /// given the cgroup being reclaimed (null for all) and the frames wanted, frees what it can and
    /// returns how many frames it freed.
    /// </summary>
    public Func<MemoryCgroup?, ulong, ulong>? Shrinker { get; set; }

    /// <summary>
    /// Direct reclaim (shrink_node, simplified): runs the <see cref="Shrinker"/> first (Linux runs
    /// shrink_slab after the LRU lists in each pass; splitting partly unmapped THPs frees memory without
    /// any I/O, so the model takes it first), then frees up to <paramref name="target"/> pages, oldest
    /// first, from the file LRU (clean page cache is dropped; dirty pages would need writeback and are
    /// skipped) and only then, if that was not enough and a swap device has room, from the anonymous
    /// LRU (written to swap). Linux balances the two lists by swappiness and the referenced bits; PageLab
    /// prefers page cache outright because dropping it costs no I/O. Pinned, locked and ownerless pages
    /// stay. With a <paramref name="cgroup"/>, only pages charged to it are taken (memcg reclaim).
    /// Costs: every page scanned, every page dropped or written to swap.
    /// </summary>
    /// <param name="nodeId">The node to reclaim from, or null for all nodes.</param>
    /// <param name="target">Pages wanted.</param>
    /// <param name="cgroup">Reclaim only pages charged to this group; null for all.</param>
    /// <param name="cost">Who pays the modeled time.</param>
    /// <returns>Pages freed.</returns>
    public ulong Reclaim(int? nodeId, ulong target, MemoryCgroup? cgroup, ICostSink? cost)
    {
        ulong reclaimed = Shrinker?.Invoke(cgroup, target) ?? 0;
        foreach (int lru in (ReadOnlySpan<int>)[NumaNode.FileLru, NumaNode.AnonLru])
        {
            for (int i = 0; i < nodes.Length && reclaimed < target; i++)
            {
                if (nodeId is null || nodeId == i)
                    reclaimed += ShrinkLru(nodes[i], lru, target - reclaimed, cgroup, cost);
            }
        }
        return reclaimed;
    }

    ulong ShrinkLru(NumaNode node, int lru, ulong target, MemoryCgroup? cgroup, ICostSink? cost)
    {
        ulong scanned = 0, reclaimed = 0;
        // Oldest at the tail; each pass looks at every page once at most.
        ulong limit = node.Lru[lru].Count;
        for (int frame = node.Lru[lru].Last; frame != NoFrame && scanned < limit && reclaimed < target;)
        {
            int younger = pages[frame].Prev;
            scanned++;
            if (TryReclaimPage((ulong)frame, cgroup, cost))
                reclaimed++;
            frame = younger;
        }
        Counters.PageScanDirect += scanned;
        Counters.PageStealDirect += reclaimed;
        cost?.Charge(MmCostKind.ReclaimScan, scanned * MmCosts.ReclaimScanPerPageNs);
        return reclaimed;
    }

    bool TryReclaimPage(ulong frame, MemoryCgroup? cgroup, ICostSink? cost)
    {
        ref var page = ref pages[frame];
        if ((cgroup is not null && page.Memcg != cgroup.Id) || !page.IsMigratable)
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
    /// Reclaims one page now (MADV_PAGEOUT's reclaim_pages): page cache is dropped, a lazily freed page
    /// discarded, an anonymous page written to swap; false when the page stays (busy, shared, no swap).
    /// </summary>
    public bool TryReclaimNow(ulong frame, ICostSink? cost)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frame, FrameCount);
        cost?.Charge(MmCostKind.ReclaimScan, MmCosts.ReclaimScanPerPageNs);
        return TryReclaimPage(frame, null, cost);
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
