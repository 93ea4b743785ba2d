using System.Diagnostics;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The kernel's bookkeeping for one physical frame (Linux's struct page, the parts PageLab needs).
/// The hardware never sees it (DESIGN.md point 1).
/// </summary>
[DebuggerDisplay("ref={RefCount} map={MapCount} {Use}")]
public struct FrameInfo
{
    /// <summary>References held (page tables mapping it, the page cache, the kernel); 0 = free.</summary>
    public int RefCount;

    /// <summary>How many user PTEs map this frame.</summary>
    public int MapCount;

    /// <summary>What the frame holds.</summary>
    public FrameUse Use;

    /// <summary>Compound order on the head frame of a block mapped as one page: 9 for a THP, 0 otherwise.</summary>
    public byte Order;

    /// <summary>Locked (Linux's PG_locked, e.g. under I/O): collapse must not take it (EAGAIN).</summary>
    public bool Locked;

    /// <summary>Long-term pins (pin_user_pages, e.g. RDMA or vfio): the frame cannot move, collapse fails with EAGAIN.</summary>
    public int PinCount;
}

/// <summary>
/// Per-frame metadata keyed by frame number, kept in lazily created segments so that a large
/// physical memory costs nothing until its frames are used.
/// </summary>
public sealed class FrameTable
{
    const int SegmentBits = 12;
    const int SegmentSize = 1 << SegmentBits;

    readonly FrameInfo[]?[] segments;

    /// <param name="frameCount">Frames of physical memory.</param>
    public FrameTable(ulong frameCount)
    {
        FrameCount = frameCount;
        segments = new FrameInfo[]?[(frameCount + SegmentSize - 1) >> SegmentBits];
    }

    /// <summary>Frames covered.</summary>
    public ulong FrameCount { get; }

    /// <summary>The metadata of <paramref name="frameNumber"/>, which must be below <see cref="FrameCount"/>.</summary>
    public ref FrameInfo this[ulong frameNumber]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frameNumber, FrameCount);
            ref FrameInfo[]? segment = ref segments[frameNumber >> SegmentBits];
            segment ??= new FrameInfo[SegmentSize];
            return ref segment[frameNumber & (SegmentSize - 1)];
        }
    }
}
