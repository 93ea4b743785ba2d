using System.Diagnostics;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// Migrate types of pageblocks, in Linux's order and with its names as /proc/pagetypeinfo prints them
/// (a 6.18 x86-64 kernel without CMA). The allocator hands out only <see cref="Unmovable"/> and
/// <see cref="Movable"/>; the others exist so the views list every type Linux lists.
/// </summary>
public enum MigrateType : byte
{
    Unmovable,
    Movable,
    Reclaimable,
    HighAtomic,
    Isolate,
}

/// <summary>Page flags the frame's user sets (Linux's PG_dirty, PG_locked, and a long-term GUP pin).</summary>
[Flags]
public enum PageFlags : byte
{
    None = 0,
    /// <summary>Contents differ from the backing store: a dirty page-cache page cannot be dropped without writeback.</summary>
    Dirty = 1 << 0,
    /// <summary>Locked for I/O or by a collapse in progress: neither migrated nor reclaimed.</summary>
    Locked = 1 << 1,
    /// <summary>Pinned by get_user_pages(FOLL_PIN) (e.g. for DMA): neither migrated nor reclaimed.</summary>
    Pinned = 1 << 2,
    /// <summary>
    /// An anonymous page given up by MADV_FREE (Linux clears PG_swapbacked): reclaim discards it without
    /// swap unless the guest wrote to it since (its PTE is dirty again).
    /// </summary>
    LazyFree = 1 << 3,
}

/// <summary>Where a frame is in the allocator's life cycle; only the allocator changes it.</summary>
public enum PageState : byte
{
    /// <summary>Inside a free block, not its first frame.</summary>
    FreeTail,
    /// <summary>First frame of a free buddy block (Linux's PageBuddy); <see cref="PageDescriptor.Order"/> is the block's order.</summary>
    FreeHead,
    /// <summary>First frame of an allocated block; <see cref="PageDescriptor.Order"/> is the block's order (0 for a single page).</summary>
    Head,
    /// <summary>Another frame of an allocated block of order &gt; 0 (a compound page's tail).</summary>
    Tail,
    /// <summary>Never handed out (frame 0, as Linux keeps the first page back).</summary>
    Reserved,
    /// <summary>Taken off the free lists by the compaction free scanner, about to receive a migrated page.</summary>
    Isolated,
}

/// <summary>
/// Per-frame metadata, Linux's struct page reduced to what PageLab models, in one array keyed by frame
/// number. The owner is an index into the allocator's owner table plus the owner's key for the frame
/// (Linux's page->mapping and page->index), not a reference per frame.
/// </summary>
/// <remarks>
/// A block of order &gt; 0 holding user memory is a large folio (a THP). Its head carries the folio's
/// <see cref="RefCount"/>, its <see cref="EntireMapCount"/> (PMD mappings of the whole folio), its flags
/// and owner; every frame of it, head and tails, carries its own <see cref="MapCount"/> of PTE mappings,
/// so that a folio mapped by a huge PMD in one process and by PTEs in another (after fork and a PMD
/// split) is accounted exactly: a subpage is mapped <c>EntireMapCount + MapCount</c> times.
/// </remarks>
[DebuggerDisplay("{State} o{Order} {Use} ref={RefCount} map={MapCount} entire={EntireMapCount} {Flags} owner={Owner}:{OwnerIndex}")]
public struct PageDescriptor
{
    /// <summary>References held (on a large folio, on its head only); the allocator sets 1 on allocation, the kernel model counts the rest.</summary>
    public int RefCount;

    /// <summary>How many PTEs map this frame (the kernel model maintains it; tails of a large folio count their own).</summary>
    public int MapCount;

    /// <summary>On the head of a large folio: how many huge PMDs map the whole folio (Linux's entire mapcount).</summary>
    public int EntireMapCount;

    /// <summary>Dirty, locked, pinned.</summary>
    public PageFlags Flags;

    /// <summary>What the frame holds; decides whether it is movable and which LRU list it joins.</summary>
    public FrameUse Use { readonly get; internal set; }

    /// <summary>Allocation state.</summary>
    public PageState State { readonly get; internal set; }

    /// <summary>Order of the block this frame heads (free or allocated); 0 for other frames.</summary>
    public byte Order { readonly get; internal set; }

    /// <summary>NUMA node of the frame.</summary>
    public byte Node { readonly get; internal set; }

    /// <summary>On an LRU list, so direct reclaim may find it.</summary>
    public bool OnLru { readonly get; internal set; }

    /// <summary>
    /// PG_active: on (or, while isolated, belonging to) the active list of its type. Kept when the page
    /// is taken off the list, so it goes back to the same list; a split THP's pieces inherit it.
    /// </summary>
    public bool IsActive { readonly get; internal set; }

    /// <summary>
    /// PG_referenced: reclaim found a young PTE the last time it looked; a second young look activates
    /// the page (folio_check_references' "look twice").
    /// </summary>
    public bool IsReferenced { readonly get; internal set; }

    /// <summary>Memory cgroup charged for the block this frame heads (an index; 0 = none).</summary>
    public ushort Memcg { readonly get; internal set; }

    /// <summary>Index into the owner table of the object that maps this frame (0 = none); see <see cref="IPageOwner"/>.</summary>
    public int Owner { readonly get; internal set; }

    /// <summary>The owner's key for the frame: a virtual page number, a file page offset, as the owner chooses.</summary>
    public ulong OwnerIndex { readonly get; internal set; }

    /// <summary>Free-list or LRU links (a frame is never on both, as Linux's page->lru), frame numbers; -1 = none.</summary>
    internal int Next, Prev;

    /// <summary>Anonymous, page-cache and shmem pages can be migrated (Linux's __GFP_MOVABLE users).</summary>
    public readonly bool IsMovable => Use is FrameUse.Anonymous or FrameUse.PageCache or FrameUse.Shmem;

    /// <summary>Pinned or locked: compaction and reclaim must leave it where it is.</summary>
    public readonly bool IsBusy => (Flags & (PageFlags.Locked | PageFlags.Pinned)) != 0;

    /// <summary>An order-0 allocated movable page with an owner that is free to move or evict.</summary>
    internal readonly bool IsMigratable => State == PageState.Head && Order == 0 && IsMovable && Owner != 0 && !IsBusy;
}
