namespace PageLab.Kernel.Mm;

/// <summary>What a frame will hold; decides its migrate type (movable or not) in the buddy allocator.</summary>
public enum FrameUse : byte
{
    /// <summary>Anonymous user memory: movable, swappable.</summary>
    Anonymous,
    /// <summary>Page cache of a file: movable, droppable when clean.</summary>
    PageCache,
    /// <summary>
    /// A page of a shmem object (the page cache of MAP_SHARED|MAP_ANONYMOUS memory): movable and, as
    /// Linux's swap-backed folios, on the anonymous LRU and written to swap by reclaim.
    /// </summary>
    Shmem,
    /// <summary>A page table or other kernel memory: unmovable.</summary>
    PageTable,
    /// <summary>Other unmovable kernel memory.</summary>
    Kernel,
}

/// <summary>How hard an allocation may try (the gfp flags that matter to THP).</summary>
public enum AllocationEffort : byte
{
    /// <summary>Take only what the free lists hold now: no direct reclaim, no direct compaction.</summary>
    FreeListsOnly,
    /// <summary>May enter direct reclaim and direct compaction, charged to the caller.</summary>
    DirectReclaimAndCompaction,
}

/// <summary>
/// Physical frame allocation for the kernel model. Frame numbers are physical addresses >> 12;
/// an order-n block is 2^n contiguous, naturally aligned frames.
/// </summary>
public interface IFrameAllocator
{
    /// <summary>Allocates an uninitialised block of 2^order frames; false when none can be had at this effort.</summary>
    bool TryAllocate(int order, FrameUse use, AllocationEffort effort, out ulong frameNumber);

    /// <summary>
    /// Allocates as the overload without a node does, on the caller's
    /// preferred NUMA node, charging any direct reclaim or compaction to <paramref name="cost"/>.
    /// </summary>
    bool TryAllocate(int order, FrameUse use, AllocationEffort effort, int preferredNode, ICostSink? cost, out ulong frameNumber);

    /// <summary>Returns a block obtained from a TryAllocate overload, with the same order.</summary>
    void Free(ulong frameNumber, int order);

    /// <summary>Free frames, all orders together.</summary>
    ulong FreeFrames { get; }
}
