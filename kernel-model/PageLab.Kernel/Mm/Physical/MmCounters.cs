namespace PageLab.Kernel.Mm.Physical;

/// <summary>Event counters of the physical memory model, named after their /proc/vmstat fields.</summary>
public sealed class MmCounters
{
    /// <summary>allocstall: allocations that entered the slow path (direct reclaim or compaction).</summary>
    public ulong AllocStall;
    /// <summary>compact_stall, compact_success, compact_fail: direct compaction runs and outcomes.</summary>
    public ulong CompactStall, CompactSuccess, CompactFail;
    /// <summary>compact_migrate_scanned, compact_free_scanned: pages examined by the two scanners.</summary>
    public ulong CompactMigrateScanned, CompactFreeScanned;
    /// <summary>pgmigrate_success, pgmigrate_fail.</summary>
    public ulong PageMigrateSuccess, PageMigrateFail;
    /// <summary>pgscan_direct, pgsteal_direct: pages scanned and reclaimed by direct reclaim.</summary>
    public ulong PageScanDirect, PageStealDirect;
    /// <summary>pswpout, pswpin: pages written to and read from swap.</summary>
    public ulong SwapOut, SwapIn;
}
