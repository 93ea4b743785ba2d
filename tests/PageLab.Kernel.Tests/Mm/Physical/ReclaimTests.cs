using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

public sealed class ReclaimTests : IDisposable
{
    const ulong MiB = 1024 * 1024;
    readonly PhysicalMemory memory = new(16 * MiB);
    readonly BuddyAllocator allocator;
    readonly FakeAddressSpace files;
    readonly FakeAddressSpace process;

    public ReclaimTests()
    {
        allocator = new BuddyAllocator(memory) { Swap = new SwapDevice(type: 1, sizeBytes: 4 * MiB) };
        files = new FakeAddressSpace(allocator, memory);
        process = new FakeAddressSpace(allocator, memory);
    }

    public void Dispose() => memory.Dispose();

    /// <summary>Anonymous pages first, page cache after, so that the cache is the younger of the two.</summary>
    void Populate(int anonymous, int pageCache)
    {
        for (int i = 0; i < anonymous; i++)
            Assert.True(process.TryPopulate((ulong)i, FrameUse.Anonymous));
        for (int i = 0; i < pageCache; i++)
            Assert.True(files.TryPopulate((ulong)i, FrameUse.PageCache));
    }

    [Fact]
    public void Reclaim_DropsCleanPageCacheBeforeSwappingAnonymousPages()
    {
        Populate(anonymous: 50, pageCache: 40);
        var cost = new CostLedger();

        Assert.Equal(40UL, allocator.Reclaim(null, 40, null, cost));

        Assert.Empty(files.FrameOf);
        Assert.Equal(50, process.FrameOf.Count);
        Assert.Equal(0UL, allocator.Counters.SwapOut);
        Assert.Equal(40 * MmCosts.DropCleanPagePerPageNs, cost[MmCostKind.ReclaimDrop]);
        Assert.Equal(40 * MmCosts.ReclaimScanPerPageNs, cost[MmCostKind.ReclaimScan]);
    }

    [Fact]
    public void Reclaim_SwapsOutAnonymousPagesOldestFirst_WhenPageCacheIsNotEnough()
    {
        Populate(anonymous: 50, pageCache: 10);
        var cost = new CostLedger();

        Assert.Equal(30UL, allocator.Reclaim(null, 30, null, cost));

        Assert.Empty(files.FrameOf);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (ulong)i), process.SwapPteOf.Keys.Order());
        Assert.Equal(20UL, allocator.Counters.SwapOut);
        Assert.Equal(20UL, allocator.Swap!.UsedSlots);
        Assert.Equal(20 * MmCosts.SwapOutPerPageNs, cost[MmCostKind.SwapOut]);
    }

    [Fact]
    public void Reclaim_GivesAReferencedPageASecondChance_AndActivatesItOnTheSecondYoungLook()
    {
        Populate(anonymous: 4, pageCache: 0);
        process.Hot.Add(0); // the oldest page, so the first one reclaim looks at
        var cost = new CostLedger();

        Assert.Equal(3UL, allocator.Reclaim(null, 3, null, cost));

        Assert.Equal([0UL], process.FrameOf.Keys);
        var survivor = allocator[process.FrameOf[0]];
        Assert.True(survivor.IsReferenced);
        Assert.False(survivor.IsActive);
        Assert.Equal(4 * MmCosts.ReferenceCheckPerMappingNs, cost[MmCostKind.ReclaimReferenceCheck]);

        Assert.Equal(0UL, allocator.Reclaim(null, 1, null, cost));

        Assert.True(allocator[process.FrameOf[0]].IsActive);
        Assert.Equal(1UL, allocator.Counters.PageActivate);
        Assert.Equal(1UL, allocator.LruPages(LruList.ActiveAnon));
        Assert.Equal(0UL, allocator.LruPages(LruList.InactiveAnon));
    }

    [Fact]
    public void Reclaim_RefillsTheInactiveListFromTheActiveOne_WhenItIsLow_AndTakesDeactivatedPagesOnceCold()
    {
        Populate(anonymous: 8, pageCache: 0);
        foreach (ulong index in process.FrameOf.Keys)
            process.Hot.Add(index);

        // Passes of rising priority look at the hot pages twice: all but the last one looked at are activated.
        Assert.Equal(0UL, allocator.Reclaim(null, 8, null, null));

        var counters = allocator.Counters;
        Assert.Equal(7UL, counters.PageActivate);
        Assert.Equal(7UL, allocator.LruPages(LruList.ActiveAnon));
        Assert.Equal(0UL, counters.PageRefill);

        // Cold now. The inactive list is low, so shrink_active_list deactivates the active pages (pgrefill,
        // pgdeactivate) and the passes after it reclaim them.
        process.Hot.Clear();
        // A pass deactivates after it shrank the inactive list, so the pages come in over a few calls (an allocation's retries).
        ulong reclaimed = allocator.Reclaim(null, 8, null, null);
        Assert.True(reclaimed is > 0 and < 8, $"the first cold call reclaimed {reclaimed}");
        for (int call = 0; call < 3 && reclaimed < 8; call++)
            reclaimed += allocator.Reclaim(null, 8 - reclaimed, null, null);
        Assert.Equal(8UL, reclaimed);

        Assert.Empty(process.FrameOf);
        Assert.True(counters.PageRefill >= 7);
        Assert.Equal(7UL, counters.PageDeactivate);
        Assert.Equal(8UL, counters.PageStealDirect);
        Assert.Equal(0UL, allocator.LruPages(LruList.InactiveAnon) + allocator.LruPages(LruList.ActiveAnon));
    }

    [Fact]
    public void SwappedOutPage_ComesBackWithItsDataThroughItsSwapPte()
    {
        Populate(anonymous: 5, pageCache: 0);
        Assert.Equal(5UL, allocator.Reclaim(null, 5, null, null));
        var pte = process.SwapPteOf[3];
        Assert.True(SwapPte.IsSwapEntry(pte.Raw));
        Assert.Equal(1, pte.Type);
        var cost = new CostLedger();

        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame));
        allocator.SwapIn(pte, frame, cost);

        Assert.True(process.HoldsItsData(3, frame));
        Assert.Equal(0, allocator.Swap!.UseCount(pte.Offset));
        Assert.Equal(MmCosts.SwapInPerPageNs, cost[MmCostKind.SwapIn]);
        Assert.Equal(1UL, allocator.Counters.SwapIn);
    }

    [Fact]
    public void Reclaim_LeavesDirtyPinnedAndLockedPages()
    {
        Populate(anonymous: 3, pageCache: 3);
        allocator[files.FrameOf[0]].Flags |= PageFlags.Dirty;
        allocator[files.FrameOf[1]].Flags |= PageFlags.Pinned;
        allocator[files.FrameOf[2]].Flags |= PageFlags.Locked;
        allocator[process.FrameOf[0]].Flags |= PageFlags.Pinned;
        allocator[process.FrameOf[1]].Flags |= PageFlags.Locked;

        Assert.Equal(1UL, allocator.Reclaim(null, 100, null, null));
        Assert.Equal([2UL], process.SwapPteOf.Keys);
        Assert.Equal(3, files.FrameOf.Count);
    }

    [Fact]
    public void Reclaim_WithoutSwap_KeepsAnonymousPages()
    {
        allocator.Swap = null;
        Populate(anonymous: 10, pageCache: 2);
        Assert.Equal(2UL, allocator.Reclaim(null, 10, null, null));
        Assert.Equal(10, process.FrameOf.Count);
    }

    [Fact]
    public void Allocate_WhenMemoryIsFull_ReclaimsPageCacheForTheCaller()
    {
        Populate(anonymous: 0, pageCache: 100);
        while (allocator.TryAllocate(0, FrameUse.Kernel, AllocationEffort.FreeListsOnly, out _))
        {
        }
        var cost = new CostLedger();

        Assert.False(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 0, cost, out _));
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.DirectReclaimAndCompaction, 0, cost, out _));

        Assert.Equal((int)(100 - BuddyAllocator.SwapClusterMax), files.FrameOf.Count);
        Assert.Equal(BuddyAllocator.SwapClusterMax * MmCosts.DropCleanPagePerPageNs, cost[MmCostKind.ReclaimDrop]);
    }

    [Fact]
    public void Memcg_ChargeWithinTheLimit_Succeeds_AndFreeUncharges()
    {
        var group = allocator.CreateCgroup("job", limitPages: 8);
        Assert.True(allocator.TryAllocate(3, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong block));
        Assert.True(allocator.TryCharge(group, block, 3, null));
        Assert.Equal(8UL, group.UsagePages);

        allocator.Free(block, 3);
        Assert.Equal(0UL, group.UsagePages);
        Assert.Equal(8UL, group.PeakPages);
    }

    [Fact]
    public void Memcg_OverTheLimit_ReclaimsOnlyItsOwnPages_ThenCharges()
    {
        var group = allocator.CreateCgroup("job", limitPages: 40);
        Populate(anonymous: 0, pageCache: 60);
        for (ulong i = 0; i < 40; i++)
            Assert.True(allocator.TryCharge(group, files.FrameOf[i], 0, null));
        var cost = new CostLedger();

        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame));
        Assert.True(allocator.TryCharge(group, frame, 0, cost));

        // Like try_to_free_mem_cgroup_pages, one round reclaims at least SWAP_CLUSTER_MAX pages.
        Assert.Equal(40 - BuddyAllocator.SwapClusterMax + 1, group.UsagePages);
        Assert.Equal(60 - (int)BuddyAllocator.SwapClusterMax, files.FrameOf.Count);
        Assert.Equal(BuddyAllocator.SwapClusterMax * MmCosts.DropCleanPagePerPageNs, cost[MmCostKind.ReclaimDrop]);
        // Pages 40..59 belong to no group and must still be cached.
        Assert.All(Enumerable.Range(40, 20), i => Assert.True(files.FrameOf.ContainsKey((ulong)i)));
    }

    [Fact]
    public void Memcg_ChargeFails_WhenNothingInTheGroupCanBeReclaimed()
    {
        var group = allocator.CreateCgroup("job", limitPages: 4);
        Populate(anonymous: 0, pageCache: 4);
        foreach (ulong frame in files.FrameOf.Values)
        {
            Assert.True(allocator.TryCharge(group, frame, 0, null));
            allocator[frame].Flags |= PageFlags.Dirty;
        }

        Assert.True(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong huge));
        Assert.False(allocator.TryCharge(group, huge, 9, null));
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong small));
        Assert.False(allocator.TryCharge(group, small, 0, null));

        Assert.Equal(4UL, group.UsagePages);
        Assert.Equal(2UL, group.FailedCharges);
        Assert.Equal(4, files.FrameOf.Count);
    }

    [Fact]
    public void Memcg_ChargeWithoutReclaim_FailsAtOnceOverTheLimit_LeavingThePageCache()
    {
        var group = allocator.CreateCgroup("job", limitPages: 10);
        Populate(anonymous: 0, pageCache: 10);
        foreach (ulong frame in files.FrameOf.Values)
            Assert.True(allocator.TryCharge(group, frame, 0, null, AllocationEffort.FreeListsOnly));
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame11));
        var cost = new CostLedger();

        Assert.False(allocator.TryCharge(group, frame11, 0, cost, AllocationEffort.FreeListsOnly));

        Assert.Equal(10, files.FrameOf.Count);
        Assert.Equal(0UL, cost.TotalNs);
        Assert.Equal(1UL, group.FailedCharges);
        Assert.True(allocator.TryCharge(group, frame11, 0, cost));
        Assert.True(cost[MmCostKind.ReclaimDrop] > 0);
    }
}
