using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>The thp_* lines of /proc/vmstat that the model maintains, with Linux's names.</summary>
public sealed class ThpCounters
{
    public long FaultAlloc;
    public long FaultFallback;
    public long CollapseAlloc;
    public long CollapseAllocFailed;
    /// <summary>Huge shmem folios allocated at fault time (thp_file_alloc).</summary>
    public long FileAlloc;
    /// <summary>Huge shmem faults that fell back to 4 KiB pages because no block could be had (thp_file_fallback).</summary>
    public long FileFallback;
    /// <summary>Huge file folios mapped by a PMD (thp_file_mapped).</summary>
    public long FileMapped;

    /// <summary>Large folios split into pages (split_huge_page succeeded).</summary>
    public long SplitPage;

    /// <summary>split_huge_page refused: the folio had references beyond its mappings, or was pinned or locked.</summary>
    public long SplitPageFailed;

    /// <summary>Large folios queued for a deferred split because they were left partly mapped.</summary>
    public long DeferredSplitPage;

    /// <summary>Huge PMDs split into PTE tables (the folio itself stays whole).</summary>
    public long SplitPmd;

    /// <summary>
    /// (name, value) in /proc/vmstat order, with the THP events that reclaim counts in the physical model's
    /// <paramref name="reclaim"/> counters (thp_swpout, thp_swpout_fallback) in their places.
    /// </summary>
    public IEnumerable<(string Name, long Value)> VmstatLines(MmCounters reclaim)
    {
        yield return ("thp_fault_alloc", FaultAlloc);
        yield return ("thp_fault_fallback", FaultFallback);
        yield return ("thp_collapse_alloc", CollapseAlloc);
        yield return ("thp_collapse_alloc_failed", CollapseAllocFailed);
        yield return ("thp_file_alloc", FileAlloc);
        yield return ("thp_file_fallback", FileFallback);
        yield return ("thp_file_mapped", FileMapped);
        yield return ("thp_split_page", SplitPage);
        yield return ("thp_split_page_failed", SplitPageFailed);
        yield return ("thp_deferred_split_page", DeferredSplitPage);
        yield return ("thp_split_pmd", SplitPmd);
        yield return ("thp_swpout", (long)reclaim.ThpSwapOut);
        yield return ("thp_swpout_fallback", (long)reclaim.ThpSwapOutFallback);
    }
}
