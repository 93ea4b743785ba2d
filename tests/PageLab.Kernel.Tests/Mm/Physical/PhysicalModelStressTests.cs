using CsCheck;
using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

/// <summary>
/// Seeded random workloads on a small, fragmented, two-node machine with a memcg limit and swap, so
/// that compaction, reclaim and swap run many times: every page keeps its data wherever it moves,
/// frame and memcg accounting balance after every step, and tearing everything down leaves only the
/// unmovable setup pages and no swap slot in use.
/// </summary>
public sealed class PhysicalModelStressTests
{
    enum Step { Anonymous, PageCache, Release, SwapIn, HugeAllocate, HugeFree, Compact, Reclaim }

    [Fact]
    public void RandomWorkloads_KeepEveryPagesDataAndBalanceAccounting()
    {
        var steps = Gen.Select(Gen.Enum<Step>(), Gen.Int[0, 1 << 20]).Array[100, 400];
        var total = new MmCounters();
        PropertyRuns.ForEach(Gen.Select(steps, Gen.Int[0, 1000]), 12, test =>
        {
            var counters = Run(test.Item1, test.Item2);
            total.SwapOut += counters.SwapOut;
            total.PageMigrateSuccess += counters.PageMigrateSuccess;
            total.PageStealDirect += counters.PageStealDirect;
            total.CompactSuccess += counters.CompactSuccess;
            total.AllocStall += counters.AllocStall;
        });
        // The workloads must have exercised what they claim to test.
        Assert.True(total.SwapOut > 0 && total.PageMigrateSuccess > 0 && total.PageStealDirect > total.SwapOut && total.CompactSuccess > 0 && total.AllocStall > 0,
            $"swapout {total.SwapOut}, migrated {total.PageMigrateSuccess}, reclaimed {total.PageStealDirect}, compactions {total.CompactSuccess}, stalls {total.AllocStall}");
    }

    static MmCounters Run((Step Step, int Pick)[] steps, int seed)
    {
        const ulong MiB = 1024 * 1024;
        using var memory = new PhysicalMemory(16 * MiB);
        var allocator = new BuddyAllocator(memory, numaNodes: 2) { Swap = new SwapDevice(0, 2 * MiB) };
        var process = new FakeAddressSpace(allocator, memory);
        var files = new FakeAddressSpace(allocator, memory);
        var fragmentation = Fragmentation.Apply(allocator, new FragmentationOptions { Seed = seed }, files.Id);
        for (int i = 0; i < fragmentation.PageCacheFrames.Count; i++)
            files.Adopt((ulong)i, fragmentation.PageCacheFrames[i]);
        var cgroup = allocator.CreateCgroup("guest", limitPages: 1500);
        var huge = new List<ulong>();
        ulong nextIndex = (ulong)fragmentation.PageCacheFrames.Count;
        var cost = new CostLedger();

        foreach (var (step, pick) in steps)
        {
            switch (step)
            {
                case Step.Anonymous:
                case Step.PageCache:
                    // A burst of pages, as a fault-around or a readahead would bring.
                    var owner = step == Step.Anonymous ? process : files;
                    for (int i = 0; i < 1 + pick % 64; i++)
                    {
                        ulong index = nextIndex++;
                        if (!owner.TryPopulate(index, step == Step.Anonymous ? FrameUse.Anonymous : FrameUse.PageCache, AllocationEffort.DirectReclaimAndCompaction, pick % 2, cost))
                            break;
                        if (!allocator.TryCharge(cgroup, owner.FrameOf[index], 0, cost))
                        {
                            owner.Release(index);
                            break;
                        }
                    }
                    break;
                case Step.Release when process.FrameOf.Count > 0:
                    process.Release(process.FrameOf.Keys.ElementAt(pick % process.FrameOf.Count));
                    break;
                case Step.SwapIn when process.SwapPteOf.Count > 0:
                    ulong swapped = process.SwapPteOf.Keys.ElementAt(pick % process.SwapPteOf.Count);
                    if (process.TrySwapIn(swapped, AllocationEffort.DirectReclaimAndCompaction, cost))
                        Assert.True(process.HoldsItsData(swapped, process.FrameOf[swapped]), $"page {swapped} came back from swap corrupted");
                    break;
                case Step.HugeAllocate:
                    if (allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.DirectReclaimAndCompaction, pick % 2, cost, out ulong block))
                        huge.Add(block);
                    break;
                case Step.HugeFree when huge.Count > 0:
                    allocator.Free(huge[pick % huge.Count], 9);
                    huge.RemoveAt(pick % huge.Count);
                    break;
                case Step.Compact:
                    allocator.Compact(pick % 2, 9, cost);
                    break;
                case Step.Reclaim:
                    allocator.Reclaim(null, (ulong)(pick % 200), cgroup, cost);
                    break;
            }

            ulong live = fragmentation.UnmovablePages + (ulong)(process.FrameOf.Count + files.FrameOf.Count) + (ulong)huge.Count * 512;
            Assert.Equal(allocator.FrameCount - 1, allocator.FreeFrames + live);
            Assert.Equal((ulong)process.SwapPteOf.Count, allocator.Swap!.UsedSlots);
            Assert.True(cgroup.UsagePages <= cgroup.LimitPages);
        }

        foreach (var space in (FakeAddressSpace[])[process, files])
        {
            foreach (var (index, frame) in space.FrameOf)
                Assert.True(space.HoldsItsData(index, frame), $"page {index} lost its data at frame 0x{frame:x}");
        }
        foreach (ulong swapped in process.SwapPteOf.Keys.ToList())
        {
            Assert.True(process.TrySwapIn(swapped, AllocationEffort.FreeListsOnly, cost));
            Assert.True(process.HoldsItsData(swapped, process.FrameOf[swapped]));
        }
        foreach (var space in (FakeAddressSpace[])[process, files])
        {
            foreach (ulong index in space.FrameOf.Keys.ToList())
                space.Release(index);
        }
        foreach (ulong block in huge)
            allocator.Free(block, 9);
        Assert.Equal(allocator.FrameCount - 1 - fragmentation.UnmovablePages, allocator.FreeFrames);
        Assert.Equal(0UL, allocator.Swap!.UsedSlots);
        Assert.Equal(0UL, cgroup.UsagePages);
        return allocator.Counters;
    }
}
