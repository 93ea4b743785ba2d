using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Benchmarks.Mm;

/// <summary>
/// Host cost of the buddy allocator's fast path (order 0 and order 9, allocation plus free, on a
/// half-used 256 MiB node), next to a host 4 KiB memcpy for scale.
/// </summary>
[MemoryDiagnoser]
public unsafe class FrameAllocatorBenchmarks
{
    const int PageSize = 4096;
    PhysicalMemory memory = null!;
    BuddyAllocator allocator = null!;
    byte* source;
    byte* destination;

    [GlobalSetup]
    public void Setup()
    {
        memory = new PhysicalMemory(256UL << 20);
        allocator = new BuddyAllocator(memory);
        // Use half of memory in mixed orders so that the free lists are not trivially one block deep.
        for (int i = 0; allocator.FreeFrames > allocator.FrameCount / 2; i++)
            allocator.TryAllocate(i % 4, (i & 1) == 0 ? FrameUse.Anonymous : FrameUse.PageCache, AllocationEffort.FreeListsOnly, out _);
        source = (byte*)NativeMemory.AlignedAlloc(PageSize, 64);
        destination = (byte*)NativeMemory.AlignedAlloc(PageSize, 64);
        new Span<byte>(source, PageSize).Fill(0x5A);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        memory.Dispose();
        NativeMemory.AlignedFree(source);
        NativeMemory.AlignedFree(destination);
    }

    [Benchmark(Baseline = true)]
    public byte Memcpy4K()
    {
        Buffer.MemoryCopy(source, destination, PageSize, PageSize);
        return destination[PageSize - 1];
    }

    [Benchmark]
    public ulong AllocFree_Order0() => AllocateAndFree(0);

    [Benchmark]
    public ulong AllocFree_Order9() => AllocateAndFree(9);

    ulong AllocateAndFree(int order)
    {
        allocator.TryAllocate(order, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame);
        allocator.Free(frame, order);
        return frame;
    }
}

/// <summary>
/// Host cost of direct compaction per migrated page: each invocation compacts 15 pageblocks of 32
/// page-cache pages each (480 migrations, every one a 4 KiB copy, a descriptor move, an owner
/// callback), taking each freed 2 MiB block before compacting the next. Compare with Memcpy4K of
/// <see cref="FrameAllocatorBenchmarks"/> in the same run.
/// </summary>
[MemoryDiagnoser]
[InvocationCount(1)]
public class CompactionBenchmarks
{
    const int CompactedPageblocks = 15;
    const int PagesPerPageblock = 32;
    const int MigratedPages = CompactedPageblocks * PagesPerPageblock;

    readonly PhysicalMemory memory = new(64UL << 20);
    BuddyAllocator allocator = null!;

    [IterationSetup]
    public void Fragment()
    {
        allocator = new BuddyAllocator(memory);
        int owner = allocator.Owners.Register(new AcceptingOwner());
        ulong blocks = allocator.FrameCount / BuddyAllocator.PageblockFrames;
        for (ulong block = 1; block < blocks; block++)
        {
            // Pageblocks 1..15 get 32 pages to move; the upper half one page each, so none is free.
            int pages = block <= CompactedPageblocks ? PagesPerPageblock : 1;
            for (int i = 0; i < pages; i++)
            {
                ulong frame = block * BuddyAllocator.PageblockFrames + (ulong)i * 16;
                allocator.TryAllocateAt(frame, FrameUse.PageCache);
                allocator.SetOwner(frame, owner, frame);
                allocator.AddToLru(frame);
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup() => memory.Dispose();

    [Benchmark(OperationsPerInvoke = MigratedPages)]
    public ulong CompactionPerMigratedPage()
    {
        for (int i = 0; i < CompactedPageblocks; i++)
        {
            if (!allocator.Compact(0, BuddyAllocator.PageblockOrder, null)
                || !allocator.TryAllocate(BuddyAllocator.PageblockOrder, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _))
                throw new InvalidOperationException("the benchmark layout no longer compacts as designed");
        }
        if (allocator.Counters.PageMigrateSuccess != MigratedPages)
            throw new InvalidOperationException($"migrated {allocator.Counters.PageMigrateSuccess} pages, expected {MigratedPages}");
        return allocator.Counters.PageMigrateSuccess;
    }

    /// <summary>An owner whose PTE rewrite costs nothing, so the figure is the allocator's own work.</summary>
    sealed class AcceptingOwner : IPageOwner
    {
        public bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame) => true;
        public bool TryEvict(ulong index, ulong frame, SwapPte swapPte) => true;
        public PageReferences TestAndClearYoung(ulong index, ulong frame) => default;
        public bool TrySplitHuge(ulong index, ulong headFrame) => false;
    }
}
