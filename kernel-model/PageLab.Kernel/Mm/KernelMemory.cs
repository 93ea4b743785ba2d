using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The machine-wide memory state of the kernel model: physical memory, the frame allocator,
/// per-frame metadata, the shared zero page and the page cache. Address spaces draw from it.
/// </summary>
public sealed class KernelMemory
{
    readonly Dictionary<(IMappableFile File, long PageIndex), ulong> pageCache = [];

    /// <param name="physical">Emulated physical memory.</param>
    /// <param name="frames">Frame allocator (the simple one now, the buddy model later).</param>
    /// <param name="guest">The MMU side: user copies and invalidation.</param>
    public KernelMemory(PhysicalMemory physical, IFrameAllocator frames, IGuestMemory guest)
    {
        Physical = physical;
        Frames = frames;
        Guest = guest;
        FrameTable = new FrameTable(physical.Size >> PagingConstants.PageBits);
        if (!TryAllocateZeroed(FrameUse.Kernel, out ulong zero))
            throw new InvalidOperationException("no frame for the zero page: physical memory is exhausted before the first process");
        ZeroFrame = zero;
    }

    public PhysicalMemory Physical { get; }
    public IFrameAllocator Frames { get; }
    public IGuestMemory Guest { get; }
    public FrameTable FrameTable { get; }

    /// <summary>The shared zero page (Linux's ZERO_PAGE): mapped read-only on read faults of anonymous memory, never refcounted.</summary>
    public ulong ZeroFrame { get; }

    /// <summary>Frames holding page-cache copies of file pages.</summary>
    public int PageCachePages => pageCache.Count;

    /// <summary>Allocates one frame, zeroes it and takes the first reference.</summary>
    public bool TryAllocateZeroed(FrameUse use, out ulong frameNumber)
    {
        if (!TryAllocateCharged(use, out frameNumber))
            return false;
        FrameSpan(frameNumber).Clear();
        Guest.FrameWritten(frameNumber);
        FrameTable[frameNumber] = new FrameInfo { RefCount = 1, Use = use };
        return true;
    }

    /// <summary>Allocates one frame holding a copy of <paramref name="sourceFrame"/> and takes the first reference.</summary>
    public bool TryAllocateCopy(ulong sourceFrame, FrameUse use, out ulong frameNumber)
    {
        if (!TryAllocateCharged(use, out frameNumber))
            return false;
        FrameSpan(sourceFrame).CopyTo(FrameSpan(frameNumber));
        Guest.FrameWritten(frameNumber);
        FrameTable[frameNumber] = new FrameInfo { RefCount = 1, Use = use };
        return true;
    }

    /// <summary>User memory (anonymous and page cache) is charged to the memcg, one page per frame.</summary>
    static bool IsCharged(FrameUse use) => use is FrameUse.Anonymous or FrameUse.PageCache;

    bool TryAllocateCharged(FrameUse use, out ulong frameNumber)
    {
        if (!Frames.TryAllocate(0, use, AllocationEffort.DirectReclaimAndCompaction, out frameNumber))
            return false;
        if (IsCharged(use) && !TryChargeMemcg(1))
        {
            Frames.Free(frameNumber, 0);
            return false;
        }
        return true;
    }

    /// <summary>The memory cgroup charged for user pages; null means no limit.</summary>
    public IMemoryCgroup? Memcg { get; set; }

    /// <summary>NUMA node of a frame (one node until the buddy model's topology is attached).</summary>
    public int NodeOf(ulong frameNumber) => 0;

    /// <summary>
    /// Allocates a block of 2^order frames for user memory (a THP) at the given effort. <paramref name="stallNanoseconds"/>
    /// is the modeled time spent in direct reclaim/compaction to get it.
    /// </summary>
    public bool TryAllocateBlock(int order, int node, AllocationEffort effort, out ulong frameNumber, out ulong stallNanoseconds)
    {
        var stall = new Physical.CostLedger();
        bool allocated = Frames.TryAllocate(order, FrameUse.Anonymous, effort, node, stall, out frameNumber);
        stallNanoseconds = stall.TotalNs;
        return allocated;
    }

    /// <summary>Returns a block from <see cref="TryAllocateBlock"/> (nothing references it any more).</summary>
    public void FreeBlock(ulong frameNumber, int order)
    {
        for (ulong i = 0; i < 1UL << order; i++) FrameTable[frameNumber + i] = default;
        Frames.Free(frameNumber, order);
    }

    public bool TryChargeMemcg(long pages) => Memcg?.TryCharge(pages) ?? true;

    public void UnchargeMemcg(long pages) => Memcg?.Uncharge(pages);

    /// <summary>Copies one 4 KiB frame into another (collapse, COW, migration).</summary>
    public void CopyFrame(ulong source, ulong destination)
    {
        FrameSpan(source).CopyTo(FrameSpan(destination));
        Guest.FrameWritten(destination);
    }

    /// <summary>Zero-fills one 4 KiB frame.</summary>
    public void ZeroFrame4K(ulong frameNumber)
    {
        FrameSpan(frameNumber).Clear();
        Guest.FrameWritten(frameNumber);
    }

    /// <summary>The host bytes of a 4 KiB frame.</summary>
    public Span<byte> FrameSpan(ulong frameNumber) =>
        Physical.Span(frameNumber << PagingConstants.PageBits, (int)PagingConstants.PageSize);

    /// <summary>Drops a reference; the frame returns to the allocator when the last one goes.</summary>
    public void Release(ulong frameNumber)
    {
        ref FrameInfo info = ref FrameTable[frameNumber];
        if (--info.RefCount == 0)
        {
            if (IsCharged(info.Use))
                UnchargeMemcg(1);
            info = default;
            Frames.Free(frameNumber, 0);
        }
    }

    /// <summary>
    /// The page-cache frame holding page <paramref name="pageIndex"/> of <paramref name="file"/>, read
    /// from the file on first use (bytes past the end of file are zero). The cache keeps one reference.
    /// </summary>
    public bool TryGetPageCacheFrame(IMappableFile file, long pageIndex, out ulong frameNumber)
    {
        if (pageCache.TryGetValue((file, pageIndex), out frameNumber))
            return true;
        if (!TryAllocateZeroed(FrameUse.PageCache, out frameNumber))
            return false;
        file.ReadAt(pageIndex << PagingConstants.PageBits, FrameSpan(frameNumber));
        pageCache.Add((file, pageIndex), frameNumber);
        return true;
    }
}
