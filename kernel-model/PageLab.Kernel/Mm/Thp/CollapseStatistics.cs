namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// Always-on totals of the collapse engine for `pagelab run --stats`: attempts and results per
/// policy, modeled time per phase, stall time in reclaim/compaction, and who paid.
/// </summary>
public sealed class CollapseStatistics
{
    static readonly int PhaseCount = Enum.GetValues<CollapsePhase>().Length;
    static readonly int ResultCount = Enum.GetValues<CollapseResult>().Length;

    readonly Dictionary<string, long[]> resultsByPolicy = [];

    /// <summary>Modeled nanoseconds spent in each phase, indexed by <see cref="CollapsePhase"/>.</summary>
    public ulong[] NanosecondsByPhase { get; } = new ulong[PhaseCount];

    /// <summary>Nanoseconds of direct reclaim/compaction inside huge-page allocations.</summary>
    public ulong StallNanoseconds { get; private set; }

    /// <summary>Nanoseconds charged to the calling processes (madvise, process_madvise).</summary>
    public ulong CallerNanoseconds { get; private set; }

    /// <summary>Nanoseconds charged to khugepaged.</summary>
    public ulong KhugepagedNanoseconds { get; private set; }

    /// <summary>Regions attempted, by policy name (MADV_COLLAPSE, MADV_TRY_COLLAPSE, khugepaged).</summary>
    public IEnumerable<(string Policy, long Attempts, IReadOnlyList<(CollapseResult Result, long Count)> Results)> ByPolicy() =>
        resultsByPolicy.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (
            p.Key,
            p.Value.Sum(),
            (IReadOnlyList<(CollapseResult, long)>)p.Value.Select((count, result) => ((CollapseResult)result, count)).Where(x => x.count > 0).ToList()));

    internal void RecordPhase(CollapsePhase phase, ulong nanoseconds) => NanosecondsByPhase[(int)phase] += nanoseconds;

    internal void RecordEnd(CollapseState state)
    {
        if (!resultsByPolicy.TryGetValue(state.Policy.Name, out var results))
            resultsByPolicy[state.Policy.Name] = results = new long[ResultCount];
        results[(int)state.Result]++;
        StallNanoseconds += state.StallNanoseconds;
        if (state.Policy.Initiator == CollapseInitiator.Khugepaged) KhugepagedNanoseconds += state.TotalNanoseconds;
        else CallerNanoseconds += state.TotalNanoseconds;
    }
}
