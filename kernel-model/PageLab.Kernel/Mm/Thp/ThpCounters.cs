using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>The thp_* lines of /proc/vmstat that the model maintains, with Linux's names.</summary>
public sealed class ThpCounters
{
    public long FaultAlloc;
    public long FaultFallback;
    public long CollapseAlloc;
    public long CollapseAllocFailed;
    public long SplitPmd;

    /// <summary>
    /// (name, value) in /proc/vmstat order, with the THP events that reclaim counts in the physical model's
    /// <paramref name="reclaim"/> counters (thp_split_page, thp_swpout, thp_swpout_fallback) in their places.
    /// </summary>
    public IEnumerable<(string Name, long Value)> VmstatLines(MmCounters reclaim)
    {
        yield return ("thp_fault_alloc", FaultAlloc);
        yield return ("thp_fault_fallback", FaultFallback);
        yield return ("thp_collapse_alloc", CollapseAlloc);
        yield return ("thp_collapse_alloc_failed", CollapseAllocFailed);
        yield return ("thp_split_page", (long)reclaim.ThpSplitPage);
        yield return ("thp_split_pmd", SplitPmd);
        yield return ("thp_swpout", (long)reclaim.ThpSwapOut);
        yield return ("thp_swpout_fallback", (long)reclaim.ThpSwapOutFallback);
    }
}
