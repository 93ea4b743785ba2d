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
/// The LRU lists of a node, in the order of Linux's enum lru_list (the unevictable list is not
/// modeled): an inactive and an active list for anonymous memory and for page cache.
/// </summary>
public enum LruList : byte
{
    InactiveAnon,
    ActiveAnon,
    InactiveFile,
    ActiveFile,
}

/// <summary>
/// One NUMA node with its single zone ("Normal"): a contiguous frame range, its buddy free lists per
/// order and migrate type, and its four LRU lists (the node's lruvec).
/// </summary>
public sealed class NumaNode
{
    /// <summary>Free lists exist for the two migrate types the allocator hands out: Unmovable and Movable.</summary>
    internal const int FreeListTypes = 2;
    internal const int LruLists = 4;

    internal readonly FrameList[] FreeLists;

    /// <summary>The LRU lists by <see cref="LruList"/>; their Count is in folios (a THP is one entry).</summary>
    internal readonly FrameList[] Lru = [FrameList.Empty, FrameList.Empty, FrameList.Empty, FrameList.Empty];

    /// <summary>Pages (4 KiB) on each LRU list, a THP counting 512, as Linux's lru_zone_size.</summary>
    internal readonly ulong[] LruPageCounts = new ulong[LruLists];

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

    /// <summary>Pages (4 KiB) on one LRU list, a THP counting 512 (the nr_active_anon, ... of /proc/vmstat).</summary>
    public ulong LruPages(LruList list) => LruPageCounts[(int)list];
}
