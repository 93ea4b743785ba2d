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
    /// <summary>pglazyfree, pglazyfreed: pages given up by MADV_FREE, and those reclaim then discarded.</summary>
    public ulong LazyFree, LazyFreed;
    /// <summary>pgfault: page faults the handler serviced, all processes together.</summary>
    public ulong PageFaults;

    /// <summary>
    /// The counters as /proc/vmstat names them, in the order Linux 6.18 prints them (stalls count in
    /// zone Normal, the only zone modeled); the procfs view merges them with the rest of vmstat.
    /// </summary>
    public (string Name, ulong Value)[] VmstatFields() =>
    [
        ("pswpin", SwapIn),
        ("pswpout", SwapOut),
        ("allocstall_normal", AllocStall),
        ("pglazyfree", LazyFree),
        ("pgfault", PageFaults),
        ("pglazyfreed", LazyFreed),
        ("pgsteal_direct", PageStealDirect),
        ("pgscan_direct", PageScanDirect),
        ("pgmigrate_success", PageMigrateSuccess),
        ("pgmigrate_fail", PageMigrateFail),
        ("compact_migrate_scanned", CompactMigrateScanned),
        ("compact_free_scanned", CompactFreeScanned),
        ("compact_stall", CompactStall),
        ("compact_fail", CompactFail),
        ("compact_success", CompactSuccess),
    ];
}
