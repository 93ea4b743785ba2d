using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// The physical memory model (DESIGN.md point 7): a binary buddy allocator per NUMA node, orders
/// 0..<see cref="MaxOrder"/>, with pageblocks of order <see cref="PageblockOrder"/> typed movable or
/// unmovable so that unmovable allocations stay grouped, as Linux's page allocator does; per-frame
/// metadata; direct compaction and direct reclaim (partial files) with modeled costs charged to the
/// requester; a swap device; memory cgroups.
/// Free blocks sit on the free list of their first pageblock's migrate type. Allocation and free do
/// O(<see cref="MaxOrder"/>) list work plus one descriptor write per frame of the block (as Linux
/// prepares each struct page of a compound page); claiming a pageblock and compaction walk pageblocks.
/// </summary>
public sealed partial class BuddyAllocator : IFrameAllocator
{
    /// <summary>Linux's MAX_PAGE_ORDER on x86-64: blocks up to 2^10 frames (4 MiB).</summary>
    public const int MaxOrder = 10;

    /// <summary>pageblock_order = HPAGE_PMD_ORDER = 9: a pageblock is one 2 MiB huge page.</summary>
    public const int PageblockOrder = PagingConstants.LargePageBits - PagingConstants.PageBits;
    public const ulong PageblockFrames = 1UL << PageblockOrder;

    /// <summary>PAGE_ALLOC_COSTLY_ORDER: from this order on, the slow path compacts before it reclaims.</summary>
    public const int CostlyOrder = 3;

    /// <summary>MAX_RECLAIM_RETRIES: rounds of reclaim an allocation or a memcg charge tries before it fails.</summary>
    public const int MaxReclaimRetries = 16;

    /// <summary>SWAP_CLUSTER_MAX: direct reclaim frees at least this many pages per attempt.</summary>
    public const ulong SwapClusterMax = 32;

    const ulong MaxOrderFrames = 1UL << MaxOrder;
    const int NoFrame = -1;

    readonly PhysicalMemory memory;
    readonly PageDescriptor[] pages;
    readonly MigrateType[] pageblockTypes;
    readonly NumaNode[] nodes;
    readonly List<MemoryCgroup?> cgroups = [null];

    /// <param name="memory">The emulated physical memory the frames live in; compaction and swap move their bytes.</param>
    /// <param name="numaNodes">Nodes; memory is split into equal ranges of whole 4 MiB blocks, the last node takes the rest.</param>
    public BuddyAllocator(PhysicalMemory memory, int numaNodes = 1)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ulong frameCount = memory.Size >> PagingConstants.PageBits;
        ulong framesPerNode = frameCount / (ulong)Math.Max(numaNodes, 1) & ~(MaxOrderFrames - 1);
        if (numaNodes < 1 || numaNodes > byte.MaxValue || framesPerNode == 0 || frameCount > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(numaNodes), numaNodes, $"need 1..255 nodes of at least 4 MiB each and under 8 TiB in all; memory is {memory.Size} bytes");

        this.memory = memory;
        pages = new PageDescriptor[frameCount];
        pageblockTypes = new MigrateType[(frameCount + PageblockFrames - 1) >> PageblockOrder];
        // Linux marks every pageblock movable at boot; unmovable ones appear as allocations claim them.
        Array.Fill(pageblockTypes, MigrateType.Movable);
        nodes = new NumaNode[numaNodes];
        // Frame 0 stays reserved, as Linux keeps the first page back.
        pages[0].State = PageState.Reserved;
        for (int id = 0; id < numaNodes; id++)
        {
            ulong start = (ulong)id * framesPerNode;
            ulong end = id == numaNodes - 1 ? frameCount : start + framesPerNode;
            var node = nodes[id] = new NumaNode(id, start, end);
            for (ulong frame = start; frame < end; frame++)
                pages[frame].Node = (byte)id;
            AddFreeRange(node, Math.Max(start, 1), end);
        }
    }

    /// <summary>Frames of physical memory (free or not).</summary>
    public ulong FrameCount => (ulong)pages.Length;

    /// <summary>The NUMA nodes, by id.</summary>
    public IReadOnlyList<NumaNode> Nodes => nodes;

    /// <summary>Owners that compaction and reclaim call back; <see cref="PageDescriptor.Owner"/> indexes it.</summary>
    public PageOwnerTable Owners { get; } = new();

    /// <summary>The swap device reclaim writes anonymous pages to; null: no swap, anonymous pages stay.</summary>
    public SwapDevice? Swap { get; set; }

    /// <summary>/proc/vmstat-style event counters.</summary>
    public MmCounters Counters { get; } = new();

    /// <inheritdoc/>
    public ulong FreeFrames
    {
        get
        {
            ulong free = 0;
            foreach (var node in nodes)
                free += node.FreeFrames;
            return free;
        }
    }

    /// <summary>
    /// The metadata of a frame. Callers change <see cref="PageDescriptor.RefCount"/>,
    /// <see cref="PageDescriptor.MapCount"/> and <see cref="PageDescriptor.Flags"/>; the rest belongs to
    /// the allocator (never assign the whole descriptor).
    /// </summary>
    public ref PageDescriptor this[ulong frameNumber]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frameNumber, FrameCount);
            return ref pages[frameNumber];
        }
    }

    /// <summary>The migrate type of the pageblock holding <paramref name="frameNumber"/>.</summary>
    public MigrateType PageblockType(ulong frameNumber) => pageblockTypes[frameNumber >> PageblockOrder];

    /// <summary>Allocations of these uses are movable (__GFP_MOVABLE) and go to movable pageblocks.</summary>
    public static MigrateType MigrateTypeOf(FrameUse use) =>
        use is FrameUse.Anonymous or FrameUse.PageCache or FrameUse.Shmem ? MigrateType.Movable : MigrateType.Unmovable;

    /// <inheritdoc/>
    public bool TryAllocate(int order, FrameUse use, AllocationEffort effort, out ulong frameNumber) =>
        TryAllocate(order, use, effort, preferredNode: 0, cost: null, out frameNumber);

    /// <summary>
    /// Allocates 2^<paramref name="order"/> frames: first from the free lists of the preferred node, then
    /// of the others (Linux's zonelist fallback). With <see cref="AllocationEffort.DirectReclaimAndCompaction"/>
    /// a failure enters the slow path on the preferred node as __alloc_pages_slowpath does: compaction
    /// first for costly orders, then direct reclaim, then compaction again, each retried allocation
    /// charged to <paramref name="cost"/>. The head frame gets a reference count of 1.
    /// </summary>
    public bool TryAllocate(int order, FrameUse use, AllocationEffort effort, int preferredNode, ICostSink? cost, out ulong frameNumber)
    {
        frameNumber = 0;
        if ((uint)order > MaxOrder)
            return false;
        var type = MigrateTypeOf(use);
        if ((uint)preferredNode >= (uint)nodes.Length)
            preferredNode = 0;

        bool found = TryTakeFromAnyNode(order, type, preferredNode, out frameNumber);
        if (!found && effort == AllocationEffort.DirectReclaimAndCompaction)
        {
            Counters.AllocStall++;
            found = (order >= CostlyOrder && Compact(preferredNode, order, cost) && TryTakeFromAnyNode(order, type, preferredNode, out frameNumber))
                || ReclaimAndRetake(order, type, preferredNode, cost, out frameNumber)
                || (order > 0 && Compact(preferredNode, order, cost) && TryTakeFromAnyNode(order, type, preferredNode, out frameNumber));
        }
        if (found)
            MarkAllocated(frameNumber, order, use);
        return found;
    }

    /// <summary>
    /// The slow path's reclaim loop (__alloc_pages_direct_reclaim + should_reclaim_retry): reclaim, then try
    /// the free lists again, up to <see cref="MaxReclaimRetries"/> rounds for orders up to
    /// <see cref="CostlyOrder"/> and once for costly ones (which Linux does not retry without
    /// __GFP_RETRY_MAYFAIL). Retrying matters with second-chance aging: the first round may only clear the
    /// accessed bits of pages touched since the last look, and the next one then takes them.
    /// </summary>
    bool ReclaimAndRetake(int order, MigrateType type, int preferredNode, ICostSink? cost, out ulong frameNumber)
    {
        int rounds = order > CostlyOrder ? 1 : MaxReclaimRetries;
        for (int round = 0; round < rounds; round++)
        {
            Reclaim(preferredNode, Math.Max(SwapClusterMax, 1UL << order), null, cost);
            if (TryTakeFromAnyNode(order, type, preferredNode, out frameNumber))
                return true;
        }
        frameNumber = 0;
        return false;
    }

    /// <inheritdoc/>
    public void Free(ulong frameNumber, int order)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frameNumber, FrameCount);
        ref var page = ref pages[frameNumber];
        if (page.State != PageState.Head || page.Order != order)
            throw new InvalidOperationException($"frame 0x{frameNumber:x} is not an allocated order-{order} block (state {page.State}, order {page.Order}): a double free or a wrong order");
        if (page.OnLru)
            RemoveFromLru(frameNumber);
        if (page.Memcg != 0)
            Uncharge(cgroups[page.Memcg]!, 1UL << order);
        ReleaseBlock(frameNumber, order);
    }

    /// <summary>
    /// The last step of split_huge_page: turns an allocated block of order &gt; 0 into 2^order independent
    /// order-0 frames, so that each can be freed on its own. Every piece inherits the head's flags, use,
    /// memcg, owner (its owner index advanced by its position) and LRU state (PG_active, PG_referenced: the
    /// caller puts the pieces on the head's list, as lru_add_split_folio does) and keeps its own map count; the
    /// head keeps its reference count and the other pieces start at 0: the caller hands references out.
    /// A memcg charge of 2^order pages becomes one page per piece, so the group's usage does not change.
    /// </summary>
    public void SplitBlock(ulong frameNumber)
    {
        ref var head = ref AllocatedHead(frameNumber);
        int order = head.Order;
        if (head.OnLru)
            RemoveFromLru(frameNumber);
        head.Order = 0;
        head.EntireMapCount = 0;
        for (ulong i = 1; i < 1UL << order; i++)
        {
            ref var piece = ref pages[frameNumber + i];
            piece = new PageDescriptor
            {
                State = PageState.Head,
                MapCount = piece.MapCount,
                Flags = head.Flags,
                IsActive = head.IsActive,
                IsReferenced = head.IsReferenced,
                Use = head.Use,
                Node = head.Node,
                Memcg = head.Memcg,
                Owner = head.Owner,
                OwnerIndex = head.OwnerIndex + i,
                Next = NoFrame,
                Prev = NoFrame,
            };
        }
    }

    /// <summary>
    /// The head of the allocated block holding <paramref name="frameNumber"/> (Linux's compound_head):
    /// the frame itself unless it is a tail. Blocks are naturally aligned, so the head is the first
    /// allocated head at an alignment boundary below it whose order covers it.
    /// </summary>
    public ulong HeadOf(ulong frameNumber)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frameNumber, FrameCount);
        if (pages[frameNumber].State != PageState.Tail)
            return frameNumber;
        for (int order = 1; order <= MaxOrder; order++)
        {
            ulong head = frameNumber & ~((1UL << order) - 1);
            if (pages[head].State == PageState.Head && pages[head].Order >= order)
                return head;
        }
        throw new InvalidOperationException($"tail frame 0x{frameNumber:x} has no head: the descriptors are corrupt");
    }

    /// <summary>Records who maps an allocated frame, so compaction and reclaim can call it back.</summary>
    public void SetOwner(ulong frameNumber, int owner, ulong index)
    {
        ref var page = ref AllocatedHead(frameNumber);
        if (owner != 0 && Owners[owner] is null)
            throw new ArgumentOutOfRangeException(nameof(owner), owner, "no owner registered at this index");
        page.Owner = owner;
        page.OwnerIndex = index;
    }

    /// <summary>
    /// Puts an allocated anonymous or page-cache page on its node's LRU, as the youngest entry: an order-0
    /// page, or an anonymous THP (order 9) as one entry counting 512 pages, as Linux keeps a folio. A new
    /// page joins the inactive list of its type (Linux does so for anonymous pages since 5.9, workingset
    /// protection: a page must be referenced twice to be activated); a page carrying PG_active (the
    /// pieces of a split THP that was active) joins the active list.
    /// </summary>
    public void AddToLru(ulong frameNumber)
    {
        ref var page = ref AllocatedHead(frameNumber);
        bool fits = page.Order == 0 ? page.IsMovable : page.Order == PageblockOrder && page.Use is FrameUse.Anonymous or FrameUse.Shmem;
        if (page.OnLru || !fits)
            throw new InvalidOperationException($"frame 0x{frameNumber:x} cannot join an LRU list (on LRU {page.OnLru}, order {page.Order}, use {page.Use})");
        LinkLru(frameNumber, youngest: true);
    }

    /// <summary>
    /// MADV_COLD's and MADV_FREE's deactivation: the page leaves the active list (counted in pgdeactivate)
    /// and loses PG_referenced, and goes to the old end of the inactive list so that reclaim takes it
    /// first; a page not on an LRU list is left alone.
    /// </summary>
    public void Deactivate(ulong frameNumber)
    {
        ref var page = ref AllocatedHead(frameNumber);
        if (!page.OnLru)
            return;
        UnlinkLru(frameNumber);
        if (page.IsActive)
            Counters.PageDeactivate += 1UL << page.Order;
        page.IsActive = false;
        page.IsReferenced = false;
        LinkLru(frameNumber, youngest: false);
    }

    /// <summary>Takes a frame off its LRU list (Linux's isolation, e.g. before a collapse copies it); PG_active stays.</summary>
    public void RemoveFromLru(ulong frameNumber)
    {
        ref var page = ref AllocatedHead(frameNumber);
        if (!page.OnLru)
            throw new InvalidOperationException($"frame 0x{frameNumber:x} is not on an LRU list");
        UnlinkLru(frameNumber);
    }

    /// <summary>Pages (4 KiB) on one kind of LRU list, all nodes together.</summary>
    public ulong LruPages(LruList list)
    {
        ulong total = 0;
        foreach (var node in nodes)
            total += node.LruPages(list);
        return total;
    }

    /// <summary>
    /// The list a page belongs on (Linux's folio_lru_list): swap-backed pages (anonymous, shmem) on the
    /// anonymous lists, page cache on the file lists (folio_is_file_lru); inactive, or active with PG_active.
    /// </summary>
    static LruList ListOf(in PageDescriptor page) => page.Use is FrameUse.Anonymous or FrameUse.Shmem
        ? (page.IsActive ? LruList.ActiveAnon : LruList.InactiveAnon)
        : (page.IsActive ? LruList.ActiveFile : LruList.InactiveFile);

    /// <summary>Links a page into the list <see cref="ListOf"/> names, at the young (head) or old (tail) end.</summary>
    void LinkLru(ulong frameNumber, bool youngest)
    {
        ref var page = ref pages[frameNumber];
        var node = nodes[page.Node];
        var list = ListOf(page);
        ref var lru = ref node.Lru[(int)list];
        if (youngest)
            PushFront(ref lru, frameNumber);
        else
            PushBack(ref lru, frameNumber);
        node.LruPageCounts[(int)list] += 1UL << page.Order;
        page.OnLru = true;
    }

    void UnlinkLru(ulong frameNumber)
    {
        ref var page = ref pages[frameNumber];
        var node = nodes[page.Node];
        var list = ListOf(page);
        Unlink(ref node.Lru[(int)list], frameNumber);
        node.LruPageCounts[(int)list] -= 1UL << page.Order;
        page.OnLru = false;
    }

    ref PageDescriptor AllocatedHead(ulong frameNumber)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(frameNumber, FrameCount);
        ref var page = ref pages[frameNumber];
        if (page.State != PageState.Head)
            throw new InvalidOperationException($"frame 0x{frameNumber:x} is not the head of an allocated block (state {page.State})");
        return ref page;
    }

    ref FrameList LruOf(ulong frameNumber)
    {
        ref var page = ref pages[frameNumber];
        return ref nodes[page.Node].Lru[(int)ListOf(page)];
    }

    /// <summary>A host span over one 4 KiB frame.</summary>
    Span<byte> FrameBytes(ulong frameNumber) =>
        memory.Span(frameNumber << PagingConstants.PageBits, (int)PagingConstants.PageSize);

    bool TryTakeFromAnyNode(int order, MigrateType type, int preferredNode, out ulong frameNumber)
    {
        for (int i = 0; i < nodes.Length; i++)
        {
            if (TryTakeFromFreeLists(nodes[(preferredNode + i) % nodes.Length], order, type, out frameNumber))
                return true;
        }
        frameNumber = 0;
        return false;
    }

    /// <summary>__rmqueue: the smallest block of the right type that fits, split down; else a fallback steal.</summary>
    bool TryTakeFromFreeLists(NumaNode node, int order, MigrateType type, out ulong frameNumber)
    {
        for (int have = order; have <= MaxOrder; have++)
        {
            ref var list = ref FreeList(node, have, type);
            if (list.Count != 0)
            {
                frameNumber = (ulong)list.First;
                RemoveFreeBlock(node, frameNumber);
                SplitFreeBlock(node, frameNumber, have, order);
                return true;
            }
        }
        return TryStealFallback(node, order, type, out frameNumber);
    }

    /// <summary>
    /// __rmqueue_fallback: take the largest block of the other type (so that mixing touches as few
    /// pageblocks as possible), claiming its pageblock for the requested type when the block is large,
    /// the request is unmovable, or most of the pageblock is free or already of the requested type.
    /// </summary>
    bool TryStealFallback(NumaNode node, int order, MigrateType type, out ulong frameNumber)
    {
        var other = type == MigrateType.Movable ? MigrateType.Unmovable : MigrateType.Movable;
        for (int have = MaxOrder; have >= order; have--)
        {
            ref var list = ref FreeList(node, have, other);
            if (list.Count == 0)
                continue;
            frameNumber = (ulong)list.First;
            if (have >= PageblockOrder)
            {
                for (ulong block = frameNumber; block < frameNumber + (1UL << have); block += PageblockFrames)
                    SetPageblockType(node, block, type);
            }
            else if (have >= PageblockOrder / 2 || type == MigrateType.Unmovable)
                TryClaimPageblock(node, frameNumber, type);
            RemoveFreeBlock(node, frameNumber);
            SplitFreeBlock(node, frameNumber, have, order);
            return true;
        }
        frameNumber = 0;
        return false;
    }

    /// <summary>try_to_claim_block: retype the pageblock if at least half of it is free or already compatible.</summary>
    void TryClaimPageblock(NumaNode node, ulong frameNumber, MigrateType type)
    {
        ulong start = frameNumber & ~(PageblockFrames - 1);
        ulong freeOrAlike = 0;
        for (ulong frame = start; frame < start + PageblockFrames;)
        {
            ref var page = ref pages[frame];
            ulong size = page.State is PageState.FreeHead or PageState.Head ? 1UL << page.Order : 1;
            if (page.State == PageState.FreeHead || (page.State == PageState.Head && MigrateTypeOf(page.Use) == type))
                freeOrAlike += size;
            frame += size;
        }
        if (freeOrAlike >= PageblockFrames / 2)
            SetPageblockType(node, start, type);
    }

    /// <summary>Retypes a pageblock and moves the free blocks it heads to the new type's lists (move_freepages_block).</summary>
    internal void SetPageblockType(NumaNode node, ulong frameNumber, MigrateType type)
    {
        ulong start = frameNumber & ~(PageblockFrames - 1);
        var old = PageblockType(start);
        if (old == type)
            return;
        for (ulong frame = start; frame < start + PageblockFrames && frame < node.EndFrame;)
        {
            ref var page = ref pages[frame];
            if (page.State == PageState.FreeHead)
            {
                Unlink(ref FreeList(node, page.Order, old), frame);
                PushFront(ref FreeList(node, page.Order, type), frame);
            }
            frame += page.State is PageState.FreeHead or PageState.Head ? 1UL << page.Order : 1;
        }
        pageblockTypes[start >> PageblockOrder] = type;
    }

    void MarkAllocated(ulong frameNumber, int order, FrameUse use)
    {
        byte node = pages[frameNumber].Node;
        ulong end = frameNumber + (1UL << order);
        for (ulong frame = frameNumber + 1; frame < end; frame++)
            pages[frame] = new PageDescriptor { State = PageState.Tail, Use = use, Node = node };
        pages[frameNumber] = new PageDescriptor { State = PageState.Head, Order = (byte)order, Use = use, Node = node, RefCount = 1 };
    }

    /// <summary>Clears the descriptors of an allocated (or isolated) block and gives it back to the buddy lists.</summary>
    void ReleaseBlock(ulong frameNumber, int order)
    {
        byte nodeId = pages[frameNumber].Node;
        ulong end = frameNumber + (1UL << order);
        for (ulong frame = frameNumber; frame < end; frame++)
            pages[frame] = new PageDescriptor { Node = nodeId };
        FreeAndMerge(nodes[nodeId], frameNumber, order);
    }

    /// <summary>__free_one_page: merge with the buddy while it is a free block of the same order.</summary>
    void FreeAndMerge(NumaNode node, ulong frameNumber, int order)
    {
        while (order < MaxOrder)
        {
            ulong buddy = frameNumber ^ (1UL << order);
            if (buddy < node.StartFrame || buddy >= node.EndFrame)
                break;
            ref var buddyPage = ref pages[buddy];
            if (buddyPage.State != PageState.FreeHead || buddyPage.Order != order)
                break;
            RemoveFreeBlock(node, buddy);
            frameNumber &= ~(1UL << order);
            order++;
        }
        AddFreeBlock(node, frameNumber, order);
    }

    /// <summary>Adds [start, end) as the largest naturally aligned blocks that fit (boot-time memblock release).</summary>
    void AddFreeRange(NumaNode node, ulong start, ulong end)
    {
        for (ulong frame = start; frame < end;)
        {
            int order = MaxOrder;
            while ((frame & ((1UL << order) - 1)) != 0 || frame + (1UL << order) > end)
                order--;
            AddFreeBlock(node, frame, order);
            frame += 1UL << order;
        }
    }

    /// <summary>expand(): halve a block down to <paramref name="low"/>, returning the upper halves to the free lists.</summary>
    void SplitFreeBlock(NumaNode node, ulong frameNumber, int high, int low)
    {
        while (high > low)
        {
            high--;
            AddFreeBlock(node, frameNumber + (1UL << high), high);
        }
    }

    /// <summary>
    /// Takes one specific free frame out of the buddy lists and allocates it (Linux's take_page_off_buddy);
    /// the fragmentation setup places pages with it. False when the frame is not free.
    /// </summary>
    internal bool TryAllocateAt(ulong frameNumber, FrameUse use)
    {
        var node = nodes[pages[frameNumber].Node];
        for (int order = 0; order <= MaxOrder; order++)
        {
            ulong head = frameNumber & ~((1UL << order) - 1);
            if (head < node.StartFrame)
                break;
            ref var page = ref pages[head];
            if (page.State != PageState.FreeHead || page.Order != order)
                continue;
            RemoveFreeBlock(node, head);
            while (order > 0)
            {
                order--;
                ulong upper = head + (1UL << order);
                if (frameNumber >= upper)
                {
                    AddFreeBlock(node, head, order);
                    head = upper;
                }
                else
                {
                    AddFreeBlock(node, upper, order);
                }
            }
            MarkAllocated(frameNumber, 0, use);
            return true;
        }
        return false;
    }

    ref FrameList FreeList(NumaNode node, int order, MigrateType type) =>
        ref node.FreeLists[order * NumaNode.FreeListTypes + (int)type];

    void AddFreeBlock(NumaNode node, ulong head, int order)
    {
        ref var page = ref pages[head];
        page.State = PageState.FreeHead;
        page.Order = (byte)order;
        PushFront(ref FreeList(node, order, PageblockType(head)), head);
        node.FreeFrames += 1UL << order;
    }

    void RemoveFreeBlock(NumaNode node, ulong head)
    {
        ref var page = ref pages[head];
        int order = page.Order;
        Unlink(ref FreeList(node, order, PageblockType(head)), head);
        page.State = PageState.FreeTail;
        page.Order = 0;
        node.FreeFrames -= 1UL << order;
    }

    void PushFront(ref FrameList list, ulong frameNumber)
    {
        int frame = (int)frameNumber;
        ref var page = ref pages[frame];
        page.Prev = NoFrame;
        page.Next = list.First;
        if (list.First != NoFrame)
            pages[list.First].Prev = frame;
        else
            list.Last = frame;
        list.First = frame;
        list.Count++;
    }

    void PushBack(ref FrameList list, ulong frameNumber)
    {
        int frame = (int)frameNumber;
        ref var page = ref pages[frame];
        page.Next = NoFrame;
        page.Prev = list.Last;
        if (list.Last != NoFrame)
            pages[list.Last].Next = frame;
        else
            list.First = frame;
        list.Last = frame;
        list.Count++;
    }

    void Unlink(ref FrameList list, ulong frameNumber)
    {
        ref var page = ref pages[frameNumber];
        if (page.Prev != NoFrame)
            pages[page.Prev].Next = page.Next;
        else
            list.First = page.Next;
        if (page.Next != NoFrame)
            pages[page.Next].Prev = page.Prev;
        else
            list.Last = page.Prev;
        page.Next = page.Prev = NoFrame;
        list.Count--;
    }

    /// <summary>Points the neighbours (or the list ends) of a frame whose links were copied from another frame at it.</summary>
    void TakeListPlace(ref FrameList list, ulong frameNumber)
    {
        ref var page = ref pages[frameNumber];
        int frame = (int)frameNumber;
        if (page.Prev != NoFrame) pages[page.Prev].Next = frame; else list.First = frame;
        if (page.Next != NoFrame) pages[page.Next].Prev = frame; else list.Last = frame;
    }

    // Memory cgroups.

    /// <summary>Creates a memory cgroup with a limit in pages (<see cref="ulong.MaxValue"/>: no limit).</summary>
    public MemoryCgroup CreateCgroup(string name, ulong limitPages)
    {
        if (cgroups.Count > ushort.MaxValue)
            throw new InvalidOperationException("too many memory cgroups");
        var cgroup = new MemoryCgroup((ushort)cgroups.Count, name, limitPages);
        cgroups.Add(cgroup);
        return cgroup;
    }

    /// <summary>
    /// Charges an allocated block to <paramref name="cgroup"/> (try_charge_memcg). Over the limit, and
    /// if <paramref name="effort"/> allows direct reclaim (the default: user pages' GFP_HIGHUSER_MOVABLE may block), reclaims pages charged to the same group, on
    /// any node, with the cost charged to <paramref name="cost"/>; gives up, counting a failure, at once
    /// when it may not reclaim (Linux's !gfpflags_allow_blocking) or after <see cref="MaxReclaimRetries"/>
    /// rounds (a round without progress is retried too, as try_charge_memcg does: second-chance aging may
    /// only have cleared accessed bits in it). A caller such as a collapse turns the failure into EBUSY.
    /// </summary>
    public bool TryCharge(MemoryCgroup cgroup, ulong frameNumber, int order, ICostSink? cost, AllocationEffort effort = AllocationEffort.DirectReclaimAndCompaction)
    {
        ArgumentNullException.ThrowIfNull(cgroup);
        ref var page = ref AllocatedHead(frameNumber);
        if (page.Order != order || page.Memcg != 0)
            throw new InvalidOperationException($"frame 0x{frameNumber:x} is not an uncharged order-{order} block");
        ulong need = 1UL << order;
        for (int attempt = 0; cgroup.UsagePages + need > cgroup.LimitPages; attempt++)
        {
            ulong over = cgroup.UsagePages + need - cgroup.LimitPages;
            if (effort == AllocationEffort.FreeListsOnly || attempt == MaxReclaimRetries || need > cgroup.LimitPages)
            {
                cgroup.FailedCharges++;
                return false;
            }
            Reclaim(null, Math.Max(over, SwapClusterMax), cgroup, cost);
        }
        cgroup.UsagePages += need;
        cgroup.PeakPages = Math.Max(cgroup.PeakPages, cgroup.UsagePages);
        page.Memcg = cgroup.Id;
        return true;
    }

    static void Uncharge(MemoryCgroup cgroup, ulong pages) => cgroup.UsagePages -= pages;
}
