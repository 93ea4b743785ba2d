using PageLab.Emulator.Memory;

namespace PageLab.Kernel.Mm.Physical;

public sealed partial class BuddyAllocator
{
    /// <summary>Free frames the compaction free scanner has isolated and not used yet; reused across runs.</summary>
    readonly Stack<ulong> isolatedFree = new();

    /// <summary>
    /// Direct compaction of one node until it holds a free block of <paramref name="order"/> (compact_zone).
    /// The migrate scanner walks movable pageblocks up from the node's start; a pageblock whose used
    /// frames are all migratable order-0 pages is emptied by moving each page to a free frame the free
    /// scanner isolates from movable pageblocks coming down from the node's end; the scanners stop
    /// where they meet. Moving a page copies its bytes, moves its descriptor and asks its owner to
    /// rewrite the PTEs and invalidate the TLB. Pageblocks that cannot be emptied entirely (an unmovable,
    /// pinned, locked, compound or ownerless page) are skipped without moving anything, where Linux
    /// would move their movable pages anyway: the result for the requested order is the same and no
    /// useless work is charged. Costs: every page examined by either scanner and every page migrated.
    /// </summary>
    /// <returns>True when a free block of at least <paramref name="order"/> exists on the node afterwards.</returns>
    public bool Compact(int nodeId, int order, ICostSink? cost)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)order, (uint)MaxOrder, nameof(order));
        var node = nodes[nodeId];
        Counters.CompactStall++;
        ulong migrateScanned = 0, freeScanned = 0, migrated = 0;
        ulong freeCursor = node.EndFrame & ~(PageblockFrames - 1);
        bool success = HasFreeBlock(node, order);
        for (ulong block = AlignUp(node.StartFrame); !success && block + PageblockFrames <= freeCursor; block += PageblockFrames)
        {
            if (PageblockType(block) != MigrateType.Movable || !CanEmptyPageblock(block, ref migrateScanned))
                continue;
            for (ulong frame = block; frame < block + PageblockFrames;)
            {
                ref var page = ref pages[frame];
                ulong size = page.State == PageState.FreeHead ? 1UL << page.Order : 1;
                if (page.State == PageState.Head)
                {
                    if (!TryTakeMigrationTarget(node, block + PageblockFrames, order, ref freeCursor, ref freeScanned, out ulong target))
                        goto scannersMet;
                    if (TryMigrate(frame, target))
                        migrated++;
                }
                frame += size;
            }
            success = HasFreeBlock(node, order);
        }
    scannersMet:
        while (isolatedFree.TryPop(out ulong unused))
            ReleaseBlock(unused, 0);
        success = success || HasFreeBlock(node, order);

        Counters.CompactMigrateScanned += migrateScanned;
        Counters.CompactFreeScanned += freeScanned;
        if (success) Counters.CompactSuccess++; else Counters.CompactFail++;
        cost?.Charge(MmCostKind.CompactionScan, (migrateScanned + freeScanned) * MmCosts.CompactionScanPerPageNs);
        cost?.Charge(MmCostKind.CompactionMigrate, migrated * MmCosts.MigratePerPageNs);
        return success;
    }

    static ulong AlignUp(ulong frame) => (frame + PageblockFrames - 1) & ~(PageblockFrames - 1);

    /// <summary>True when a free block of <paramref name="order"/> or larger is on any of the node's free lists.</summary>
    static bool HasFreeBlock(NumaNode node, int order)
    {
        for (int have = order; have <= MaxOrder; have++)
        {
            if (node.FreeBlocks(have) != 0)
                return true;
        }
        return false;
    }

    /// <summary>The migrate scanner's check: every used frame of the pageblock can move.</summary>
    bool CanEmptyPageblock(ulong block, ref ulong scanned)
    {
        for (ulong frame = block; frame < block + PageblockFrames;)
        {
            ref var page = ref pages[frame];
            scanned++;
            if (page.State == PageState.FreeHead)
                frame += 1UL << page.Order;
            else if (page.IsMigratable)
                frame++;
            else
                return false;
        }
        return true;
    }

    /// <summary>
    /// The free scanner: hands out isolated free frames, isolating more from the next movable pageblock
    /// down when it runs out; false when it would cross into <paramref name="migrateEnd"/>. Free blocks
    /// of the order being compacted for are left alone: they are the goal, not raw material.
    /// </summary>
    bool TryTakeMigrationTarget(NumaNode node, ulong migrateEnd, int order, ref ulong freeCursor, ref ulong scanned, out ulong target)
    {
        while (!isolatedFree.TryPop(out target))
        {
            if (freeCursor < migrateEnd + PageblockFrames)
                return false;
            freeCursor -= PageblockFrames;
            if (PageblockType(freeCursor) != MigrateType.Movable)
                continue;
            for (ulong frame = freeCursor; frame < freeCursor + PageblockFrames;)
            {
                ref var page = ref pages[frame];
                scanned++;
                if (page.State is not (PageState.FreeHead or PageState.Head))
                {
                    frame++;
                    continue;
                }
                int blockOrder = page.Order;
                if (page.State == PageState.FreeHead && blockOrder < order)
                {
                    RemoveFreeBlock(node, frame);
                    // Pushed high frame first so that targets are handed out in ascending order.
                    for (ulong piece = frame + (1UL << blockOrder); piece-- > frame;)
                    {
                        pages[piece].State = PageState.Isolated;
                        isolatedFree.Push(piece);
                    }
                }
                frame += 1UL << blockOrder;
            }
        }
        return true;
    }

    /// <summary>Moves one order-0 page: bytes, descriptor and LRU position; the owner remaps it or refuses.</summary>
    bool TryMigrate(ulong frame, ulong target)
    {
        PageCopy.Copy(FrameBytes(frame), FrameBytes(target));
        MoveDescriptor(frame, target);
        ref var moved = ref pages[target];
        var owner = Owners[moved.Owner]!;
        if (!owner.TryMigrate(moved.OwnerIndex, frame, target))
        {
            MoveDescriptor(target, frame);
            pages[target].State = PageState.Isolated;
            isolatedFree.Push(target);
            Counters.PageMigrateFail++;
            return false;
        }
        // The memcg charge and the LRU position moved with the descriptor: release without uncharging.
        ReleaseBlock(frame, 0);
        Counters.PageMigrateSuccess++;
        return true;
    }

    /// <summary>Moves an order-0 descriptor, LRU position included, to another frame of the same node; the source becomes isolated.</summary>
    void MoveDescriptor(ulong from, ulong to)
    {
        ref var source = ref pages[from];
        ref var destination = ref pages[to];
        byte node = destination.Node;
        destination = source;
        destination.Node = node;
        if (destination.OnLru)
            TakeListPlace(ref LruOf(to), to);
        source = new PageDescriptor { State = PageState.Isolated, Node = source.Node };
    }
}
