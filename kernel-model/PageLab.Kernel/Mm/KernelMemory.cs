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
        if (!Frames.TryAllocate(0, use, AllocationEffort.DirectReclaimAndCompaction, out frameNumber))
            return false;
        FrameSpan(frameNumber).Clear();
        Guest.FrameWritten(frameNumber);
        FrameTable[frameNumber] = new FrameInfo { RefCount = 1, Use = use };
        return true;
    }

    /// <summary>Allocates one frame holding a copy of <paramref name="sourceFrame"/> and takes the first reference.</summary>
    public bool TryAllocateCopy(ulong sourceFrame, FrameUse use, out ulong frameNumber)
    {
        if (!Frames.TryAllocate(0, use, AllocationEffort.DirectReclaimAndCompaction, out frameNumber))
            return false;
        FrameSpan(sourceFrame).CopyTo(FrameSpan(frameNumber));
        Guest.FrameWritten(frameNumber);
        FrameTable[frameNumber] = new FrameInfo { RefCount = 1, Use = use };
        return true;
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
