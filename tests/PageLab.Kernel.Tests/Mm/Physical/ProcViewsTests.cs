using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

public sealed class ProcViewsTests
{
    const ulong MiB = 1024 * 1024;

    [Fact]
    public void BuddyInfo_HasLinuxsFormat_OneLinePerNode()
    {
        using var memory = new PhysicalMemory(16 * MiB);
        var allocator = new BuddyAllocator(memory, numaNodes: 2);
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, 1, null, out _));

        // Node 0: frames 1..2047 (frame 0 reserved); node 1: 2048..4095 less the page just taken.
        Assert.Equal(
            "Node 0, zone   Normal      1      1      1      1      1      1      1      1      1      1      1 \n" +
            "Node 1, zone   Normal      1      1      1      1      1      1      1      1      1      1      1 \n",
            ProcViews.BuddyInfo(allocator));
    }

    [Fact]
    public void PageTypeInfo_HasLinuxsFormat_WithFreeListsAndPageblocksPerType()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);
        // A page table claims a pageblock from the movable order-10 block: it becomes two unmovable pageblocks.
        Assert.True(allocator.TryAllocate(0, FrameUse.PageTable, AllocationEffort.FreeListsOnly, out ulong table));
        Assert.Equal(MigrateType.Unmovable, allocator.PageblockType(table));

        string expected =
            "Page block order: 9\n" +
            "Pages per block:  512\n" +
            "\n" +
            "Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 \n" +
            "Node    0, zone   Normal, type    Unmovable      1      1      1      1      1      1      1      1      1      1      0 \n" +
            "Node    0, zone   Normal, type      Movable      1      1      1      1      1      1      1      1      1      1      0 \n" +
            "Node    0, zone   Normal, type  Reclaimable      0      0      0      0      0      0      0      0      0      0      0 \n" +
            "Node    0, zone   Normal, type   HighAtomic      0      0      0      0      0      0      0      0      0      0      0 \n" +
            "Node    0, zone   Normal, type      Isolate      0      0      0      0      0      0      0      0      0      0      0 \n" +
            "\n" +
            "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n" +
            "Node 0, zone   Normal            2            2            0            0            0 \n";
        Assert.Equal(expected, ProcViews.PageTypeInfo(allocator));
    }

    [Fact]
    public void PageTypeInfo_CapsAFreeListAt100000_ButBuddyInfoCountsItAll()
    {
        using var memory = new PhysicalMemory(1024 * MiB);
        var allocator = new BuddyAllocator(memory);
        var frames = new List<ulong>();
        while (allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong frame))
            frames.Add(frame);
        // Freeing every other frame (2, 4, ...; frame 0 is reserved) leaves 131071 order-0 blocks that cannot merge.
        foreach (ulong frame in frames.Where(f => f % 2 == 0))
            allocator.Free(frame, 0);

        string movable = ProcViews.PageTypeInfo(allocator).Split('\n').Single(line => line.Contains("type      Movable", StringComparison.Ordinal));
        Assert.StartsWith("Node    0, zone   Normal, type      Movable >100000      0 ", movable, StringComparison.Ordinal);
        Assert.StartsWith("Node 0, zone   Normal 131071      0 ", ProcViews.BuddyInfo(allocator), StringComparison.Ordinal);
    }

    [Fact]
    public void VmstatFields_UseLinuxNamesInTheHostsOrder_WithTheCountedValues()
    {
        using var memory = new PhysicalMemory(8 * MiB);
        var allocator = new BuddyAllocator(memory);
        allocator.Compact(0, 9, null);
        var fields = allocator.Counters.VmstatFields();
        // Linux 6.18 /proc/vmstat lists these in this order (others in between are not modeled here).
        Assert.Equal(
            ["pswpin", "pswpout", "allocstall_normal", "pgactivate", "pgdeactivate", "pglazyfree", "pgfault", "pglazyfreed", "pgrefill", "pgsteal_direct", "pgscan_direct", "pgmigrate_success", "pgmigrate_fail",
             "compact_migrate_scanned", "compact_free_scanned", "compact_stall", "compact_fail", "compact_success"],
            fields.Select(f => f.Name));
        Assert.Equal(1UL, fields.Single(f => f.Name == "compact_stall").Value);
        Assert.Equal(1UL, fields.Single(f => f.Name == "compact_success").Value); // an order-9 block was already free
    }
}
