using CsCheck;
using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

public sealed class BuddyAllocatorTests
{
    const ulong MiB = 1024 * 1024;

    [Fact]
    public void Boot_LeavesEveryFrameButFrameZeroFreeInMaximalBlocks()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);

        Assert.Equal(2047UL, allocator.FreeFrames);
        // Frames 1..2047: one block of each order 0..10 (1, 2-3, 4-7, ..., 1024-2047).
        for (int order = 0; order <= BuddyAllocator.MaxOrder; order++)
            Assert.Equal(1UL, allocator.Nodes[0].FreeBlocks(order));
        Assert.Equal(PageState.Reserved, allocator[0].State);
    }

    [Fact]
    public void TryAllocate_ReturnsNaturallyAlignedBlocksWithOneReference()
    {
        using var memory = new PhysicalMemory(16 * MiB);
        var allocator = new BuddyAllocator(memory);
        for (int order = 0; order <= BuddyAllocator.MaxOrder; order++)
        {
            Assert.True(allocator.TryAllocate(order, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame));
            Assert.Equal(0UL, frame & ((1UL << order) - 1));
            Assert.Equal(PageState.Head, allocator[frame].State);
            Assert.Equal(order, allocator[frame].Order);
            Assert.Equal(1, allocator[frame].RefCount);
            if (order > 0)
                Assert.Equal(PageState.Tail, allocator[frame + (1UL << order) - 1].State);
        }
    }

    [Fact]
    public void SplitBlock_MakesEachFrameAnOrder0Page_FreedAloneAndMergedBackWhenAllAreFree()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);
        var cgroup = allocator.CreateCgroup("guest", ulong.MaxValue);
        var blocksAtBoot = Enumerable.Range(0, BuddyAllocator.MaxOrder + 1).Select(order => allocator.Nodes[0].FreeBlocks(order)).ToArray();
        Assert.True(allocator.TryAllocate(BuddyAllocator.PageblockOrder, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong head));
        Assert.True(allocator.TryCharge(cgroup, head, BuddyAllocator.PageblockOrder, null, AllocationEffort.FreeListsOnly));
        allocator[head].EntireMapCount = 1;
        allocator[head + 3].MapCount = 2;

        allocator.SplitBlock(head);

        for (ulong i = 0; i < BuddyAllocator.PageblockFrames; i++)
        {
            Assert.Equal(PageState.Head, allocator[head + i].State);
            Assert.Equal(0, allocator[head + i].Order);
            Assert.Equal(0, allocator[head + i].EntireMapCount);
            // Each piece keeps its own map count; the head keeps the references, the caller hands them out.
            Assert.Equal(i == 3 ? 2 : 0, allocator[head + i].MapCount);
            Assert.Equal(i == 0 ? 1 : 0, allocator[head + i].RefCount);
            allocator[head + i].RefCount = 1;
        }
        Assert.Equal(BuddyAllocator.PageblockFrames, cgroup.UsagePages);
        Assert.Throws<InvalidOperationException>(() => allocator.Free(head, BuddyAllocator.PageblockOrder));
        // Free in an order that makes every merge wait for the last frame.
        for (ulong i = BuddyAllocator.PageblockFrames; i-- > 0;)
            allocator.Free(head + i, 0);
        Assert.Equal(0UL, cgroup.UsagePages);
        Assert.Equal(blocksAtBoot, Enumerable.Range(0, BuddyAllocator.MaxOrder + 1).Select(order => allocator.Nodes[0].FreeBlocks(order)));
    }

    [Fact]
    public void Free_OfABlockNotAllocatedWithThatOrder_Throws()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);
        Assert.True(allocator.TryAllocate(2, FrameUse.Kernel, AllocationEffort.FreeListsOnly, out ulong frame));
        Assert.Throws<InvalidOperationException>(() => allocator.Free(frame, 1));
        allocator.Free(frame, 2);
        Assert.Throws<InvalidOperationException>(() => allocator.Free(frame, 2));
    }

    [Fact]
    public void TryAllocate_FailsWhenMemoryIsExhausted_AndSucceedsAgainAfterAFree()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);
        var frames = new List<ulong>();
        while (allocator.TryAllocate(0, FrameUse.Kernel, AllocationEffort.DirectReclaimAndCompaction, out ulong frame))
            frames.Add(frame);
        Assert.Equal(2047, frames.Count);
        Assert.Equal(0UL, allocator.FreeFrames);
        allocator.Free(frames[100], 0);
        Assert.True(allocator.TryAllocate(0, FrameUse.Kernel, AllocationEffort.FreeListsOnly, out ulong again));
        Assert.Equal(frames[100], again);
    }

    /// <summary>
    /// Random allocation and free sequences: the free count balances, no two live blocks overlap,
    /// every block is aligned and of its order, and freeing everything merges the buddies back to the
    /// boot-time free lists.
    /// </summary>
    [Fact]
    public void RandomAllocFree_KeepsAccountingAndMergesBackToBoot()
    {
        var operation = Gen.Select(Gen.Int[0, BuddyAllocator.MaxOrder], Gen.Enum<FrameUse>(), Gen.Bool, Gen.Int[0, 1000]);
        var cases = Gen.Select(operation.Array[1, 200], Gen.Int[1, 2]);
        PropertyRuns.ForEach(cases, 150, test =>
        {
            using var memory = new PhysicalMemory(32 * MiB);
            var allocator = new BuddyAllocator(memory, test.Item2);
            string boot = ProcViews.BuddyInfo(allocator);
            ulong total = allocator.FreeFrames;
            var live = new List<(ulong Frame, int Order)>();
            var used = new bool[allocator.FrameCount];
            ulong liveFrames = 0;
            foreach (var (order, use, free, pick) in test.Item1)
            {
                if (free && live.Count > 0)
                {
                    var (frame, blockOrder) = live[pick % live.Count];
                    live.Remove((frame, blockOrder));
                    allocator.Free(frame, blockOrder);
                    for (ulong f = frame; f < frame + (1UL << blockOrder); f++)
                        used[f] = false;
                    liveFrames -= 1UL << blockOrder;
                }
                else if (allocator.TryAllocate(order, use, AllocationEffort.FreeListsOnly, pick % test.Item2, null, out ulong frame))
                {
                    Assert.Equal(0UL, frame & ((1UL << order) - 1));
                    for (ulong f = frame; f < frame + (1UL << order); f++)
                    {
                        Assert.False(used[f], $"frame 0x{f:x} handed out twice");
                        used[f] = true;
                    }
                    live.Add((frame, order));
                    liveFrames += 1UL << order;
                }
                Assert.Equal(total, allocator.FreeFrames + liveFrames);
            }
            foreach (var (frame, order) in live)
                allocator.Free(frame, order);
            Assert.Equal(total, allocator.FreeFrames);
            Assert.Equal(boot, ProcViews.BuddyInfo(allocator));
        });
    }

    [Fact]
    public void UnmovableAllocations_StayGroupedInFewPageblocks()
    {
        using var memory = new PhysicalMemory(64 * MiB);
        var allocator = new BuddyAllocator(memory);
        var unmovable = new List<ulong>();
        for (int i = 0; i < 600; i++)
        {
            Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _));
            Assert.True(allocator.TryAllocate(0, FrameUse.PageTable, AllocationEffort.FreeListsOnly, out ulong table));
            unmovable.Add(table);
        }
        // 600 page tables need two pageblocks of 512; interleaving with movable pages must not spread them.
        var blocks = unmovable.Select(f => f >> BuddyAllocator.PageblockOrder).Distinct().ToList();
        Assert.Equal(2, blocks.Count);
        Assert.All(blocks, b => Assert.Equal(MigrateType.Unmovable, allocator.PageblockType(b << BuddyAllocator.PageblockOrder)));
    }

    [Fact]
    public void TryAllocate_PrefersTheRequestedNode_ThenFallsBackToAnother()
    {
        using var memory = new PhysicalMemory(16 * MiB);
        var allocator = new BuddyAllocator(memory, numaNodes: 2);
        var node1 = allocator.Nodes[1];
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 1, null, out ulong frame));
        Assert.InRange(frame, node1.StartFrame, node1.EndFrame - 1);
        Assert.Equal(1, allocator[frame].Node);

        while (node1.FreeFrames > 0)
            Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 1, null, out _));
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 1, null, out ulong fallback));
        Assert.Equal(0, allocator[fallback].Node);
    }

    [Fact]
    public void FreeFrames_OfTheInterface_MatchesTheNodes()
    {
        using var memory = new PhysicalMemory(16 * MiB);
        IFrameAllocator allocator = new BuddyAllocator(memory, numaNodes: 2);
        Assert.True(allocator.TryAllocate(3, FrameUse.Kernel, AllocationEffort.FreeListsOnly, 1, null, out _));
        Assert.Equal(4096UL - 1 - 8, allocator.FreeFrames);
    }
}
