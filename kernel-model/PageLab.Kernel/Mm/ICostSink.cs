namespace PageLab.Kernel.Mm;

/// <summary>What a modeled memory-management cost was spent on; /proc/vmstat-style stall accounting groups by it.</summary>
public enum MmCostKind : byte
{
    /// <summary>Direct compaction: pages examined by the migrate and free scanners.</summary>
    CompactionScan,
    /// <summary>Direct compaction: pages migrated (copy, PTE rewrite, TLB invalidation).</summary>
    CompactionMigrate,
    /// <summary>Direct reclaim: pages examined on the LRU lists.</summary>
    ReclaimScan,
    /// <summary>Direct reclaim: reverse-map walks testing and clearing the accessed bits of a page's mappings.</summary>
    ReclaimReferenceCheck,
    /// <summary>Direct reclaim: pages moved between the active and inactive lists.</summary>
    ReclaimListMove,
    /// <summary>Direct reclaim: clean page-cache pages dropped.</summary>
    ReclaimDrop,
    /// <summary>Direct reclaim: anonymous pages written to swap.</summary>
    SwapOut,
    /// <summary>A swapped-out page read back in.</summary>
    SwapIn,
}

/// <summary>
/// Receives the modeled cost of memory-management work, in virtual nanoseconds, on behalf of whoever
/// asked for it (a faulting thread, a collapsing process, khugepaged). The kernel model implements it
/// over its virtual clock; tests use <see cref="Physical.CostLedger"/>.
/// </summary>
public interface ICostSink
{
    /// <summary>Adds <paramref name="nanoseconds"/> of work of the given kind to the requester's time.</summary>
    void Charge(MmCostKind kind, ulong nanoseconds);
}
