using PageLab.Emulator.Memory;

namespace PageLab.Kernel.Mm.Physical;

public sealed partial class BuddyAllocator
{
    /// <summary>
    /// Free blocks the compaction free scanner has isolated and not used yet (head marked
    /// <see cref="PageState.Isolated"/>); split only as targets are needed, so that giving back the
    /// unused rest is one merge per block, not one per frame. Reused across runs.
    /// </summary>
    readonly Stack<(ulong Frame, int Order)> isolatedFree = new();

    /// <summary>Where the free scanner stands: the pageblock it is in and the next frame to examine there (its end when done).</summary>
    struct FreeScanner
    {
        public ulong Pageblock;
        public ulong Next;
    }

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
        ulong top = node.EndFrame & ~(PageblockFrames - 1);
        // Starts as if the pageblock above the node's end had been scanned to its end.
        var freeScanner = new FreeScanner { Pageblock = top, Next = top + PageblockFrames };
        bool success = HasFreeBlock(node, order);
        for (ulong block = AlignUp(node.StartFrame); !success && block + PageblockFrames <= freeScanner.Pageblock; block += PageblockFrames)
        {
            if (PageblockType(block) != MigrateType.Movable || !CanEmptyPageblock(block, ref migrateScanned))
                continue;
            for (ulong frame = block; frame < block + PageblockFrames;)
            {
                ref var page = ref pages[frame];
                ulong size = page.State == PageState.FreeHead ? 1UL << page.Order : 1;
                if (page.State == PageState.Head)
                {
                    if (!TryTakeMigrationTarget(node, block + PageblockFrames, order, ref freeScanner, ref freeScanned, out ulong target))
                        goto scannersMet;
                    if (TryMigrate(frame, target))
                        migrated++;
                }
                frame += size;
            }
            success = HasFreeBlock(node, order);
        }
    scannersMet:
        while (isolatedFree.TryPop(out var unused))
            ReleaseBlock(unused.Frame, unused.Order);
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
    /// The free scanner: hands out an isolated free frame, isolating the next free block when it has
    /// none left, walking each pageblock up and the pageblocks down from the node's end (movable ones
    /// only, Linux's suitable_migration_target); false when it would reach <paramref name="migrateEnd"/>.
    /// Free blocks of the order being compacted for are left alone: they are the goal, not raw material.
    /// </summary>
    bool TryTakeMigrationTarget(NumaNode node, ulong migrateEnd, int order, ref FreeScanner scanner, ref ulong scanned, out ulong target)
    {
        (ulong Frame, int Order) block;
        while (!isolatedFree.TryPop(out block))
        {
            if (scanner.Next == scanner.Pageblock + PageblockFrames)
            {
                do
                {
                    if (scanner.Pageblock < migrateEnd + PageblockFrames)
                    {
                        target = 0;
                        return false;
                    }
                    scanner.Pageblock -= PageblockFrames;
                }
                while (PageblockType(scanner.Pageblock) != MigrateType.Movable);
                scanner.Next = scanner.Pageblock;
            }
            for (ulong end = scanner.Pageblock + PageblockFrames; scanner.Next < end;)
            {
                ulong frame = scanner.Next;
                ref var page = ref pages[frame];
                scanned++;
                int blockOrder = page.State is PageState.FreeHead or PageState.Head ? page.Order : 0;
                scanner.Next += 1UL << blockOrder;
                if (page.State == PageState.FreeHead && blockOrder < order)
                {
                    RemoveFreeBlock(node, frame);
                    page.State = PageState.Isolated;
                    isolatedFree.Push((frame, blockOrder));
                    break;
                }
            }
        }
        // Split off the lowest frame, keeping the upper halves isolated for the next targets.
        while (block.Order > 0)
        {
            block.Order--;
            ulong upper = block.Frame + (1UL << block.Order);
            pages[upper].State = PageState.Isolated;
            isolatedFree.Push((upper, block.Order));
        }
        target = block.Frame;
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
            isolatedFree.Push((target, 0));
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
