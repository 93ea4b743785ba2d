using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The machine-wide memory state of the kernel model: physical memory, the buddy allocator (whose
/// page descriptors are the only per-frame metadata), the memory cgroup of the guest's processes,
/// the shared zero page and the page cache. Address spaces draw from it.
/// </summary>
public sealed partial class KernelMemory
{
    readonly List<AddressSpace> addressSpaces = [];

    /// <param name="physical">Emulated physical memory.</param>
    /// <param name="frames">The buddy allocator over <paramref name="physical"/>.</param>
    /// <param name="guest">The MMU side: user copies and invalidation.</param>
    public KernelMemory(PhysicalMemory physical, BuddyAllocator frames, IGuestMemory guest)
    {
        Physical = physical;
        Frames = frames;
        Guest = guest;
        if (!TryAllocateZeroed(FrameUse.Kernel, out ulong zero))
            throw new InvalidOperationException("no frame for the zero page: physical memory is exhausted before the first process");
        ZeroFrame = zero;
        PageCache = new PageCache(this);
        frames.Shrinker = ShrinkDeferredSplit;
    }

    public PhysicalMemory Physical { get; }
    public BuddyAllocator Frames { get; }
    public IGuestMemory Guest { get; }

    /// <summary>The shared zero page (Linux's ZERO_PAGE): mapped read-only on read faults of anonymous memory, never refcounted.</summary>
    public ulong ZeroFrame { get; }

    /// <summary>Cached file pages.</summary>
    public PageCache PageCache { get; }

    /// <summary>Live address spaces, which the page cache's reverse map walks.</summary>
    public IReadOnlyList<AddressSpace> AddressSpaces => addressSpaces;

    internal void Register(AddressSpace space) => addressSpaces.Add(space);

    internal void Unregister(AddressSpace space) => addressSpaces.Remove(space);

    /// <summary>The memory cgroup charged for user pages (anonymous, page cache, THPs); null means no limit.</summary>
    public MemoryCgroup? Memcg { get; set; }

    /// <summary>The descriptor of a frame (Linux's struct page): reference and map counts, flags, use, order.</summary>
    public ref PageDescriptor Page(ulong frameNumber) => ref Frames[frameNumber];

    /// <summary>
    /// Allocates one frame, zeroes it and takes the first reference. Direct reclaim and compaction, and
    /// the memcg's reclaim for user pages, are charged to <paramref name="cost"/>.
    /// </summary>
    public bool TryAllocateZeroed(FrameUse use, out ulong frameNumber, ICostSink? cost = null)
    {
        if (!TryAllocateCharged(use, cost, out frameNumber))
            return false;
        ZeroFrame4K(frameNumber);
        return true;
    }

    /// <summary>Allocates one frame holding a copy of <paramref name="sourceFrame"/> and takes the first reference.</summary>
    public bool TryAllocateCopy(ulong sourceFrame, FrameUse use, out ulong frameNumber, ICostSink? cost = null)
    {
        if (!TryAllocateCharged(use, cost, out frameNumber))
            return false;
        CopyFrame(sourceFrame, frameNumber);
        return true;
    }

    /// <summary>User memory (anonymous, page cache, shmem) is charged to the memcg.</summary>
    static bool IsCharged(FrameUse use) => use is FrameUse.Anonymous or FrameUse.PageCache or FrameUse.Shmem;

    /// <summary>Allocates one frame (contents undefined) and charges it to the memcg if it holds user memory.</summary>
    internal bool TryAllocateCharged(FrameUse use, ICostSink? cost, out ulong frameNumber)
    {
        if (!Frames.TryAllocate(0, use, AllocationEffort.DirectReclaimAndCompaction, preferredNode: 0, cost, out frameNumber))
            return false;
        if (IsCharged(use) && !TryCharge(frameNumber, 0, AllocationEffort.DirectReclaimAndCompaction, cost))
        {
            Frames.Free(frameNumber, 0);
            return false;
        }
        return true;
    }

    /// <summary>Machine-wide transparent-huge-page state: sysfs knobs, vmstat counters, the collapse engine, khugepaged.</summary>
    public Thp.TransparentHugePages Thp { get; } = new();

    /// <summary>
    /// Charges an allocated block to <see cref="Memcg"/> (reclaiming inside the group when over its
    /// limit, when <paramref name="effort"/> allows, at <paramref name="cost"/>); false when the group cannot
    /// make room. Freeing uncharges.
    /// </summary>
    public bool TryCharge(ulong frameNumber, int order, AllocationEffort effort, ICostSink? cost) =>
        Memcg is null || Frames.TryCharge(Memcg, frameNumber, order, cost, effort);

    /// <summary>NUMA node of a frame.</summary>
    public int NodeOf(ulong frameNumber) => Frames[frameNumber].Node;

    /// <summary>
    /// Allocates a block of 2^order frames for user memory (a THP: <see cref="FrameUse.Anonymous"/> or
    /// <see cref="FrameUse.Shmem"/>) at the given effort. <paramref name="stallNanoseconds"/> is the modeled
    /// time spent in direct reclaim/compaction to get it. The block is not charged yet.
    /// </summary>
    public bool TryAllocateBlock(int order, int node, AllocationEffort effort, FrameUse use, out ulong frameNumber, out ulong stallNanoseconds)
    {
        var stall = new CostLedger();
        bool allocated = Frames.TryAllocate(order, use, effort, node, stall, out frameNumber);
        stallNanoseconds = stall.TotalNs;
        return allocated;
    }

    /// <summary>Returns a block from <see cref="TryAllocateBlock"/> (nothing references it any more); its charge goes with it.</summary>
    public void FreeBlock(ulong frameNumber, int order) => Frames.Free(frameNumber, order);

    /// <summary>Copies one 4 KiB frame into another (collapse, COW, migration).</summary>
    public void CopyFrame(ulong source, ulong destination)
    {
        PageLab.Emulator.Memory.PageCopy.Copy(FrameSpan(source), FrameSpan(destination));
        Guest.FrameWritten(destination);
    }

    /// <summary>Zero-fills one 4 KiB frame.</summary>
    public void ZeroFrame4K(ulong frameNumber)
    {
        PageLab.Emulator.Memory.PageCopy.Zero(FrameSpan(frameNumber));
        Guest.FrameWritten(frameNumber);
    }

    /// <summary>Zero-fills a whole block (a THP at fault time): one SIMD pass over its contiguous host span.</summary>
    public void ZeroBlock(ulong frameNumber, int order)
    {
        PageLab.Emulator.Memory.PageCopy.Zero(Physical.Span(frameNumber << PagingConstants.PageBits, (int)(PagingConstants.PageSize << order)));
        for (ulong i = 0; i < 1UL << order; i++)
            Guest.FrameWritten(frameNumber + i);
    }

    /// <summary>The host bytes of a 4 KiB frame.</summary>
    public Span<byte> FrameSpan(ulong frameNumber) =>
        Physical.Span(frameNumber << PagingConstants.PageBits, (int)PagingConstants.PageSize);

    /// <summary>
    /// Drops a reference to the frame's folio (folio_put: a subpage's reference is its large folio's); the
    /// folio returns to the allocator (and is uncharged) when the last one goes.
    /// </summary>
    public void Release(ulong frameNumber)
    {
        ulong head = Frames.HeadOf(frameNumber);
        ref var folio = ref Frames[head];
        if (--folio.RefCount != 0)
            return;
        if (folio.Order > 0)
            ForgetDeferredSplit(head);
        Frames.Free(head, folio.Order);
    }
}
