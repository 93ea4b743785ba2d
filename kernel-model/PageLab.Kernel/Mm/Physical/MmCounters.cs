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
    /// <summary>pgactivate, pgdeactivate: pages moved to the active list, and back to the inactive list.</summary>
    public ulong PageActivate, PageDeactivate;
    /// <summary>pgrefill: pages scanned on the active lists (shrink_active_list).</summary>
    public ulong PageRefill;
    /// <summary>thp_swpout, thp_swpout_fallback: THPs swapped out whole, and THPs split first because no cluster was free.</summary>
    public ulong ThpSwapOut, ThpSwapOutFallback;
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
        ("pgactivate", PageActivate),
        ("pgdeactivate", PageDeactivate),
        ("pglazyfree", LazyFree),
        ("pgfault", PageFaults),
        ("pglazyfreed", LazyFreed),
        ("pgrefill", PageRefill),
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
