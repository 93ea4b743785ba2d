namespace PageLab.Kernel.Mm.Physical;

/// <summary>A doubly linked list threaded through the page descriptors (Linux's list_head in struct page).</summary>
internal struct FrameList
{
    public int First;
    public int Last;
    public ulong Count;

    public static FrameList Empty => new() { First = -1, Last = -1 };
}

/// <summary>
/// One NUMA node with its single zone ("Normal"): a contiguous frame range, its buddy free lists per
/// order and migrate type, and its LRU lists.
/// </summary>
public sealed class NumaNode
{
    /// <summary>Free lists exist for the two migrate types the allocator hands out: Unmovable and Movable.</summary>
    internal const int FreeListTypes = 2;
    internal const int AnonLru = 0;
    internal const int FileLru = 1;

    internal readonly FrameList[] FreeLists;
    internal readonly FrameList[] Lru = [FrameList.Empty, FrameList.Empty];

    internal NumaNode(int id, ulong startFrame, ulong endFrame)
    {
        Id = id;
        StartFrame = startFrame;
        EndFrame = endFrame;
        FreeLists = new FrameList[(BuddyAllocator.MaxOrder + 1) * FreeListTypes];
        Array.Fill(FreeLists, FrameList.Empty);
    }

    public int Id { get; }

    /// <summary>First frame of the node.</summary>
    public ulong StartFrame { get; }

    /// <summary>One past the node's last frame.</summary>
    public ulong EndFrame { get; }

    /// <summary>Free frames on the node, all orders together.</summary>
    public ulong FreeFrames { get; internal set; }

    /// <summary>Free blocks of exactly <paramref name="order"/> on the free list of <paramref name="type"/> (pagetypeinfo's numbers).</summary>
    public ulong FreeBlocks(int order, MigrateType type) =>
        (int)type < FreeListTypes ? FreeLists[order * FreeListTypes + (int)type].Count : 0;

    /// <summary>Free blocks of exactly <paramref name="order"/>, all types (buddyinfo's numbers).</summary>
    public ulong FreeBlocks(int order) => FreeBlocks(order, MigrateType.Unmovable) + FreeBlocks(order, MigrateType.Movable);

    /// <summary>Pages on the LRU list that frames of <paramref name="use"/> join (anonymous or file).</summary>
    public ulong LruPages(FrameUse use) => Lru[LruOf(use)].Count;

    /// <summary>The LRU list of a frame: swap-backed pages (anonymous, shmem) on the anonymous one, as Linux's folio_is_file_lru.</summary>
    internal static int LruOf(FrameUse use) => use is FrameUse.Anonymous or FrameUse.Shmem ? AnonLru : FileLru;
}
