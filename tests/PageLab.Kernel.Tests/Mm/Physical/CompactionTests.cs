using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

public sealed class CompactionTests : IDisposable
{
    const ulong MiB = 1024 * 1024;
    readonly PhysicalMemory memory = new(64 * MiB);
    readonly BuddyAllocator allocator;
    readonly FakeAddressSpace pageCache;

    public CompactionTests()
    {
        allocator = new BuddyAllocator(memory);
        pageCache = new FakeAddressSpace(allocator, memory);
    }

    public void Dispose() => memory.Dispose();

    FragmentationResult Fragment(int seed = 42, int freePageblocksLeft = 0)
    {
        var result = Fragmentation.Apply(allocator, new FragmentationOptions { Seed = seed, FreePageblocksLeft = freePageblocksLeft }, pageCache.Id);
        for (int i = 0; i < result.PageCacheFrames.Count; i++)
            pageCache.Adopt((ulong)i, result.PageCacheFrames[i]);
        return result;
    }

    static ulong FreeHugeBlocks(BuddyAllocator allocator) =>
        allocator.Nodes[0].FreeBlocks(9) + allocator.Nodes[0].FreeBlocks(10);

    [Fact]
    public void Fragmentation_LeavesNoFreeOrder9Block_ThoughMostMemoryIsFree()
    {
        var result = Fragment();

        Assert.Equal(0UL, FreeHugeBlocks(allocator));
        Assert.True(allocator.FreeFrames > allocator.FrameCount * 9 / 10, $"{allocator.FreeFrames} of {allocator.FrameCount} free");
        Assert.NotEmpty(result.PageCacheFrames);
        Assert.True(result.UnmovablePages > 0);
        Assert.False(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _));
    }

    [Fact]
    public void Fragmentation_IsTheSameForTheSameSeed_AndDiffersForAnother()
    {
        Fragment(seed: 7);
        using var otherMemory = new PhysicalMemory(64 * MiB);
        var same = new BuddyAllocator(otherMemory);
        Fragmentation.Apply(same, new FragmentationOptions { Seed = 7 }, same.Owners.Register(new FakeAddressSpace(same, otherMemory)));
        using var thirdMemory = new PhysicalMemory(64 * MiB);
        var different = new BuddyAllocator(thirdMemory);
        Fragmentation.Apply(different, new FragmentationOptions { Seed = 8 }, different.Owners.Register(new FakeAddressSpace(different, thirdMemory)));

        Assert.Equal(ProcViews.PageTypeInfo(allocator), ProcViews.PageTypeInfo(same));
        Assert.NotEqual(ProcViews.PageTypeInfo(allocator), ProcViews.PageTypeInfo(different));
    }

    [Fact]
    public void Fragmentation_LeavesTheRequestedFreePageblocks()
    {
        Fragment(freePageblocksLeft: 3);
        Assert.Equal(3UL, allocator.Nodes[0].FreeBlocks(9) + 2 * allocator.Nodes[0].FreeBlocks(10));
    }

    [Fact]
    public void Compact_FreesAnOrder9Block_MovingPageCacheWithItsData()
    {
        Fragment();
        var cost = new CostLedger();

        Assert.True(allocator.Compact(0, 9, cost));

        Assert.True(FreeHugeBlocks(allocator) >= 1);
        Assert.NotEmpty(pageCache.Migrations);
        foreach (var (index, frame) in pageCache.FrameOf)
        {
            Assert.True(pageCache.HoldsItsData(index, frame), $"page {index} lost its data");
            Assert.Equal(pageCache.Id, allocator[frame].Owner);
            Assert.Equal(index, allocator[frame].OwnerIndex);
            Assert.True(allocator[frame].OnLru);
        }
        ulong migrated = (ulong)pageCache.Migrations.Count;
        Assert.Equal(migrated, allocator.Counters.PageMigrateSuccess);
        Assert.Equal(migrated * MmCosts.MigratePerPageNs, cost[MmCostKind.CompactionMigrate]);
        Assert.Equal((allocator.Counters.CompactMigrateScanned + allocator.Counters.CompactFreeScanned) * MmCosts.CompactionScanPerPageNs, cost[MmCostKind.CompactionScan]);
        Assert.Equal(1UL, allocator.Counters.CompactSuccess);
    }

    [Fact]
    public void Compact_MovesPagesUpward_FromTheMigrateScannerToTheFreeScanner()
    {
        Fragment();
        Assert.True(allocator.Compact(0, 9, null));
        Assert.All(pageCache.Migrations, m => Assert.True(m.NewFrame > m.OldFrame, $"0x{m.OldFrame:x} moved down to 0x{m.NewFrame:x}"));
    }

    [Fact]
    public void Allocate_Order9_FailsOnFreeListsOnly_ButCompactsWhenAllowed_ChargingTheCaller()
    {
        Fragment();
        var cost = new CostLedger();

        Assert.False(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 0, cost, out _));
        Assert.Equal(0UL, cost.TotalNs);

        Assert.True(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.DirectReclaimAndCompaction, 0, cost, out ulong huge));
        Assert.Equal(0UL, huge & 511);
        Assert.True(cost[MmCostKind.CompactionMigrate] > 0);
        Assert.Equal(1UL, allocator.Counters.AllocStall);
        Assert.All(pageCache.FrameOf, p => Assert.True(p.Value < huge || p.Value >= huge + 512));
    }

    [Fact]
    public void Compact_LeavesPinnedAndLockedPages_AndFailsWhenEveryPageblockHasOne()
    {
        Fragment();
        foreach (var (index, frame) in pageCache.FrameOf)
            allocator[frame].Flags |= index % 2 == 0 ? PageFlags.Pinned : PageFlags.Locked;

        Assert.False(allocator.Compact(0, 9, null));
        Assert.Empty(pageCache.Migrations);
        Assert.Equal(1UL, allocator.Counters.CompactFail);
    }

    [Fact]
    public void Compact_WhenTheOwnerRefuses_KeepsThePageWhereItWas()
    {
        Fragment();
        pageCache.RefuseMigration = true;
        var before = new Dictionary<ulong, ulong>(pageCache.FrameOf);
        ulong free = allocator.FreeFrames;

        Assert.False(allocator.Compact(0, 9, null));

        Assert.Equal(before, pageCache.FrameOf);
        Assert.Equal(free, allocator.FreeFrames);
        Assert.True(allocator.Counters.PageMigrateFail > 0);
        foreach (var (index, frame) in before)
        {
            Assert.Equal(pageCache.Id, allocator[frame].Owner);
            Assert.True(pageCache.HoldsItsData(index, frame));
        }
    }

    [Fact]
    public void Compact_ThenFreeingEverything_BalancesFrameAccounting()
    {
        var result = Fragment();
        Assert.True(allocator.Compact(0, 9, null));
        ulong live = (ulong)pageCache.FrameOf.Count + result.UnmovablePages;
        Assert.Equal(allocator.FrameCount - 1, allocator.FreeFrames + live);
        foreach (ulong frame in pageCache.FrameOf.Values)
            allocator.Free(frame, 0);
        Assert.Equal(allocator.FrameCount - 1 - result.UnmovablePages, allocator.FreeFrames);
    }

    [Fact]
    public void Compact_FailsWhenTheScannersMeet_AndKeepsEveryPageAndFrame()
    {
        using var small = new PhysicalMemory(8 * MiB); // pageblocks 0..3
        var allocator = new BuddyAllocator(small);
        var owner = new FakeAddressSpace(allocator, small);
        ulong index = 0;
        void Place(ulong frame, FrameUse use)
        {
            Assert.True(allocator.TryAllocateAt(frame, use));
            if (use == FrameUse.PageCache)
                owner.Adopt(index++, frame);
        }
        // Pageblock 1: ten pages to move. Pageblock 2: movable, all used but five frames.
        // Pageblock 3: unmovable kernel memory, no target for the free scanner.
        for (ulong i = 0; i < 10; i++)
            Place(512 + i * 7, FrameUse.PageCache);
        for (ulong frame = 1024; frame < 1536; frame++)
        {
            if (frame % 100 != 0)
                Place(frame, FrameUse.PageCache);
        }
        allocator.SetPageblockType(allocator.Nodes[0], 1536, MigrateType.Unmovable);
        for (ulong frame = 1536; frame < 2048; frame++)
            Place(frame, FrameUse.Kernel);
        ulong free = allocator.FreeFrames;

        Assert.False(allocator.Compact(0, 9, null));

        Assert.Equal(5, owner.Migrations.Count);
        Assert.Equal(free, allocator.FreeFrames);
        Assert.All(owner.Migrations, m => Assert.InRange(m.NewFrame, 1024UL, 1535UL));
        foreach (var (page, frame) in owner.FrameOf)
            Assert.True(owner.HoldsItsData(page, frame));
    }
}
