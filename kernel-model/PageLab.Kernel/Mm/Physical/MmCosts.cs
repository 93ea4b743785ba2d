namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// Modeled virtual-time costs of memory-management work, per 4 KiB page. They are order-of-magnitude
/// figures for a current x86-64 server with an NVMe swap device, not measurements of this host; each
/// says where it comes from. What matters for PageLab is their ratio: scanning is cheap, migrating
/// costs microseconds, writing to swap costs tens of microseconds, so a stall grows with the work done.
/// </summary>
public static class MmCosts
{
    /// <summary>
    /// Examining one struct page in a compaction scanner: a 64-byte descriptor per frame, so about one
    /// cache miss per page with hardware prefetch hiding most of it (~20-50 ns).
    /// </summary>
    public const ulong CompactionScanPerPageNs = 40;

    /// <summary>
    /// Migrating one 4 KiB page: unmap through the reverse map, TLB flush, copy, remap. Linux's
    /// move_pages(2) moves 4 KiB pages at roughly 1-2 GB/s per thread, i.e. about 2-4 us per page.
    /// </summary>
    public const ulong MigratePerPageNs = 2_500;

    /// <summary>
    /// Examining one page on an LRU list in shrink_folio_list: isolation plus a reverse-map walk for the
    /// referenced bit, a few hundred ns.
    /// </summary>
    public const ulong ReclaimScanPerPageNs = 200;

    /// <summary>
    /// folio_referenced per mapping: take the anon_vma or i_mmap lock, find the VMA, walk to the PTE
    /// (page_vma_mapped_walk: a few dependent loads, mostly cache misses) and test-and-clear A (~150 ns).
    /// </summary>
    public const ulong ReferenceCheckPerMappingNs = 150;

    /// <summary>Moving a folio between LRU lists under the lru_lock (activation, deactivation, rotation): ~50 ns.</summary>
    public const ulong ListMovePerFolioNs = 50;

    /// <summary>
    /// Writing a whole THP to one swap cluster: one 2 MiB sequential write, about 1 ms on an NVMe SSD at
    /// ~2 GB/s, against 512 x <see cref="SwapOutPerPageNs"/> (~10 ms) when the THP is split and its pages
    /// written one by one: the reason THP_SWAP exists.
    /// </summary>
    public const ulong SwapOutClusterNs = 1_000_000;

    /// <summary>Dropping a clean page-cache page: unmap, delete from the mapping's xarray, free (~0.5 us).</summary>
    public const ulong DropCleanPagePerPageNs = 500;

    /// <summary>
    /// Writing one anonymous page to swap and waiting for it: a 4 KiB write to an NVMe SSD takes about
    /// 10-30 us of device latency; direct reclaim under pressure ends up waiting for it.
    /// </summary>
    public const ulong SwapOutPerPageNs = 20_000;

    /// <summary>Reading one page back from an NVMe SSD on a fault: a 4 KiB random read, about 10-20 us plus the fault.</summary>
    public const ulong SwapInPerPageNs = 15_000;
}

/// <summary>An <see cref="ICostSink"/> that keeps totals per kind: for tests, statistics and benchmarks.</summary>
public sealed class CostLedger : ICostSink
{
    readonly ulong[] byKind = new ulong[Enum.GetValues<MmCostKind>().Length];

    /// <summary>All charged nanoseconds.</summary>
    public ulong TotalNs { get; private set; }

    /// <summary>Nanoseconds charged for one kind of work.</summary>
    public ulong this[MmCostKind kind] => byKind[(int)kind];

    /// <inheritdoc/>
    public void Charge(MmCostKind kind, ulong nanoseconds)
    {
        byKind[(int)kind] += nanoseconds;
        TotalNs += nanoseconds;
    }
}
