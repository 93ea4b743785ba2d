namespace PageLab.Kernel.Mm.Physical;

/// <summary>How to fragment physical memory on purpose, the way a long-running machine ends up.</summary>
public sealed record FragmentationOptions
{
    /// <summary>Seed of the placement: the same seed gives the same layout.</summary>
    public int Seed { get; init; }

    /// <summary>Share of pageblocks (0..1) that receive unmovable kernel pages and become unmovable pageblocks.</summary>
    public double UnmovablePageblockShare { get; init; } = 0.25;

    /// <summary>Most unmovable pages put in one such pageblock (at least one, at random positions).</summary>
    public int MaxUnmovablePagesPerPageblock { get; init; } = 8;

    /// <summary>Most clean page-cache pages scattered in each other pageblock (at least one).</summary>
    public int MaxPageCachePagesPerPageblock { get; init; } = 16;

    /// <summary>Completely free pageblocks left untouched, so that "few" rather than "no" order-9 blocks remain.</summary>
    public int FreePageblocksLeft { get; init; }
}

/// <summary>What <see cref="Fragmentation.Apply"/> placed.</summary>
/// <param name="UnmovablePages">Unmovable kernel frames (no owner, never freed by the model).</param>
/// <param name="PageCacheFrames">Clean page-cache frames, in placement order; their owner index is their position here.</param>
public sealed record FragmentationResult(ulong UnmovablePages, IReadOnlyList<ulong> PageCacheFrames);

/// <summary>
/// Seeded fragmentation setup: every completely free pageblock (but <see cref="FragmentationOptions.FreePageblocksLeft"/>)
/// gets either a few unmovable kernel pages, which retypes it unmovable as Linux's fallback stealing
/// would, or a few clean page-cache pages at random positions. No order-9 block is then free, yet most
/// memory still is: a huge-page allocation must compact (move the page cache) or reclaim (drop it).
/// </summary>
public static class Fragmentation
{
    /// <param name="allocator">A freshly booted allocator (or one whose free pageblocks should be fragmented).</param>
    /// <param name="options">Placement parameters.</param>
    /// <param name="pageCacheOwner">Registered owner of the page-cache pages (a file's address space in the kernel model).</param>
    public static FragmentationResult Apply(BuddyAllocator allocator, FragmentationOptions options, int pageCacheOwner)
    {
        ArgumentNullException.ThrowIfNull(allocator);
        ArgumentNullException.ThrowIfNull(options);
        var random = new Random(options.Seed);
        var freeBlocks = new List<ulong>();
        foreach (var node in allocator.Nodes)
        {
            for (ulong block = node.StartFrame; block + BuddyAllocator.PageblockFrames <= node.EndFrame; block += BuddyAllocator.PageblockFrames)
            {
                ref var head = ref allocator[block];
                if (head.State != PageState.FreeHead || head.Order < BuddyAllocator.PageblockOrder)
                    continue;
                for (ulong inside = 0; inside < 1UL << head.Order; inside += BuddyAllocator.PageblockFrames)
                    freeBlocks.Add(block + inside);
                block += (1UL << head.Order) - BuddyAllocator.PageblockFrames;
            }
        }
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(freeBlocks));

        ulong unmovable = 0;
        var pageCache = new List<ulong>();
        for (int i = Math.Min(options.FreePageblocksLeft, freeBlocks.Count); i < freeBlocks.Count; i++)
        {
            ulong block = freeBlocks[i];
            if (random.NextDouble() < options.UnmovablePageblockShare)
            {
                allocator.SetPageblockType(allocator.Nodes[allocator[block].Node], block, MigrateType.Unmovable);
                foreach (ulong frame in RandomFrames(random, block, options.MaxUnmovablePagesPerPageblock))
                {
                    if (allocator.TryAllocateAt(frame, FrameUse.Kernel))
                        unmovable++;
                }
            }
            else
            {
                foreach (ulong frame in RandomFrames(random, block, options.MaxPageCachePagesPerPageblock))
                {
                    if (!allocator.TryAllocateAt(frame, FrameUse.PageCache))
                        continue;
                    allocator.SetOwner(frame, pageCacheOwner, (ulong)pageCache.Count);
                    allocator.AddToLru(frame);
                    pageCache.Add(frame);
                }
            }
        }
        return new FragmentationResult(unmovable, pageCache);
    }

    /// <summary>1..<paramref name="max"/> distinct random frames of a pageblock (duplicates are simply skipped by the caller).</summary>
    static IEnumerable<ulong> RandomFrames(Random random, ulong block, int max)
    {
        int count = random.Next(1, Math.Max(max, 1) + 1);
        for (int i = 0; i < count; i++)
            yield return block + (ulong)random.Next((int)BuddyAllocator.PageblockFrames);
    }
}
