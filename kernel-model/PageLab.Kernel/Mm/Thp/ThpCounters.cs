namespace PageLab.Kernel.Mm.Thp;

/// <summary>The thp_* lines of /proc/vmstat that the model maintains, with Linux's names.</summary>
public sealed class ThpCounters
{
    public long FaultAlloc;
    public long FaultFallback;
    public long CollapseAlloc;
    public long CollapseAllocFailed;
    public long SplitPmd;

    /// <summary>(name, value) in /proc/vmstat order.</summary>
    public IEnumerable<(string Name, long Value)> VmstatLines()
    {
        yield return ("thp_fault_alloc", FaultAlloc);
        yield return ("thp_fault_fallback", FaultFallback);
        yield return ("thp_collapse_alloc", CollapseAlloc);
        yield return ("thp_collapse_alloc_failed", CollapseAllocFailed);
        yield return ("thp_split_pmd", SplitPmd);
    }
}
