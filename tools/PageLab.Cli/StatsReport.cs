using System.Globalization;
using System.Text;
using System.Text.Json;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Process;
using PageLab.Kernel.Syscalls;

namespace PageLab.Cli;

/// <summary>
/// The statistics of one run, as printed by --stats and written by --stats-json.
/// <para>JSON format (schemaVersion 1; fields are only ever added, never renamed or removed):</para>
/// <code>
/// {
///   "schemaVersion": 1,
///   "program": "./hello", "exitStatus": 0, "signal": null,
///   "instructions": 123456,            // guest instructions retired
///   "wallSeconds": 0.52,               // host time of the run (the only non-deterministic field, with guestMips)
///   "guestMips": 0.24,                 // instructions / wallSeconds / 1e6
///   "virtualNanoseconds": 41000,       // the machine's modeled clock at exit
///   "syscalls": { "total": 12, "byName": { "write": 1, ... } },
///   "faults": { "total": 9, "byOutcome": { "zeroPageMapped": 2, "anonymousZeroFilled": 5, "filePageMapped": 1,
///               "copiedOnWrite": 1, "writeReused": 0, "spurious": 0, ... } },
///   "tlb": { "preset": "intel-golden-cove",
///            "levels": [ { "name": "L1d", "lookups": 10, "hits": 9, "misses": 1,
///                          "hitsBySize": { "4K": 9, "2M": 0, "1G": 0 }, "fillsBySize": { "4K": 1, "2M": 0, "1G": 0 } }, ... ] },
///   "walks": { "total": 3, "memoryReferences": 12, "bySize": { "4K": 3, "2M": 0, "1G": 0 },
///              "pagingStructureCacheHits": { "pml5": 0, "pml4": 0, "pdpt": 1, "pd": 2 }, "dirtyBitWalks": 0 },
///   "invalidations": { "invlpg": 1, "invpcid": 0, "cr3Writes": 2, "fullFlushes": 0 },
///   "memory": { "residentPages": 40, "pageTableFrames": 6, "physicalBytes": 4294967296, "hostBackedBytes": 4194304 },
///   "hugePages": { "mapped": 3, "faultAlloc": 1, "faultFallback": 0, "splitPmd": 0,
///                  "collapses": [ { "policy": "MADV_COLLAPSE", "attempts": 4, "results": { "SCAN_SUCCEED": 3, "SCAN_ALLOC_HUGE_PAGE_FAIL": 1 } } ],
///                  "phaseNanoseconds": { "Scan": 10240, "AllocateAndCharge": 8000, ... },
///                  "stallNanoseconds": 0, "callerNanoseconds": 1200000, "khugepagedNanoseconds": 0 }
/// }
/// </code>
/// </summary>
public sealed record RunStatistics(
    int SchemaVersion,
    string Program,
    int ExitStatus,
    int? Signal,
    long Instructions,
    double WallSeconds,
    double GuestMips,
    ulong VirtualNanoseconds,
    SyscallStatistics Syscalls,
    FaultStatistics Faults,
    TlbStatistics Tlb,
    WalkStatistics Walks,
    InvalidationStatistics Invalidations,
    MemoryStatistics Memory,
    HugePageStatistics HugePages)
{
    static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
    };

    /// <summary>Collects the statistics of a finished run.</summary>
    public static RunStatistics Collect(Machine machine, string program, RunOutcome outcome, TimeSpan wall)
    {
        var counters = machine.Mmu.Counters;
        var process = machine.Process;
        double seconds = wall.TotalSeconds;
        return new RunStatistics(
            SchemaVersion: 1,
            Program: program,
            ExitStatus: outcome.ExitStatus,
            Signal: outcome.Signal,
            Instructions: machine.Cpu.InstructionsRetired,
            WallSeconds: Math.Round(seconds, 6),
            GuestMips: seconds > 0 ? Math.Round(machine.Cpu.InstructionsRetired / seconds / 1e6, 3) : 0,
            VirtualNanoseconds: machine.Clock.Nanoseconds,
            Syscalls: new SyscallStatistics(process.SyscallCount, process.SyscallCounts
                .OrderBy(p => p.Key)
                .ToDictionary(p => Enum.IsDefined((SyscallNumber)p.Key) ? SyscallName((SyscallNumber)p.Key) : $"syscall_{p.Key}", p => p.Value)),
            Faults: new FaultStatistics(
                Enum.GetValues<FaultOutcome>().Sum(o => process.FaultCount(o)),
                Enum.GetValues<FaultOutcome>().ToDictionary(o => JsonNamingPolicy.CamelCase.ConvertName(o.ToString()), process.FaultCount)),
            Tlb: new TlbStatistics(machine.Settings.Tlb.Name, [.. counters.Levels.Select(l =>
                new TlbLevelStatistics(l.Name, l.Lookups, l.Hits, l.Misses, BySize(l.HitsBySize), BySize(l.FillsBySize)))]),
            Walks: new WalkStatistics(counters.Walks, counters.WalkMemoryReferences, BySize(counters.WalksBySize),
                new Dictionary<string, long>
                {
                    ["pml5"] = counters.PagingStructureCacheHits[(int)PagingLevel.Pml5],
                    ["pml4"] = counters.PagingStructureCacheHits[(int)PagingLevel.Pml4],
                    ["pdpt"] = counters.PagingStructureCacheHits[(int)PagingLevel.Pdpt],
                    ["pd"] = counters.PagingStructureCacheHits[(int)PagingLevel.PageDirectory],
                }, counters.DirtyBitWalks),
            Invalidations: new InvalidationStatistics(counters.Invlpg, counters.Invpcid, counters.Cr3Writes, counters.FullFlushes),
            Memory: new MemoryStatistics(process.Space.ResidentPages, process.Space.Tables.TableFrames, machine.Memory.Physical.Size, machine.Memory.Physical.BackedBytes),
            HugePages: HugePageStatistics.Collect(machine));
    }

    static Dictionary<string, long> BySize(long[] values) => new()
    {
        [PageSize.Size4K.Name()] = values[(int)PageSize.Size4K],
        [PageSize.Size2M.Name()] = values[(int)PageSize.Size2M],
        [PageSize.Size1G.Name()] = values[(int)PageSize.Size1G],
    };

    /// <summary>The Linux name of a syscall (snake case, as in syscall_64.tbl).</summary>
    static string SyscallName(SyscallNumber number) => JsonNamingPolicy.SnakeCaseLower.ConvertName(number.ToString());

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>The human-readable form printed by --stats.</summary>
    public string ToText()
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        void Line(string name, string value) => text.Append(c, $"  {name,-22} {value}\n");
        text.Append("pagelab statistics\n");
        Line("guest instructions", Instructions.ToString("N0", c));
        Line("wall time", WallSeconds.ToString("F3", c) + " s");
        Line("guest MIPS", GuestMips.ToString("F1", c));
        Line("virtual time", (VirtualNanoseconds / 1e9).ToString("F6", c) + " s");
        Line("system calls", Syscalls.Total.ToString(c));
        Line("page faults", $"{Faults.Total} ({string.Join(", ", Faults.ByOutcome.Where(p => p.Value > 0).Select(p => $"{p.Key} {p.Value}"))})");
        text.Append(c, $"  TLB ({Tlb.Preset}):\n");
        foreach (var level in Tlb.Levels)
        {
            double missRate = level.Lookups > 0 ? 100.0 * level.Misses / level.Lookups : 0;
            text.Append(c, $"    {level.Name,-8} lookups {level.Lookups,14:N0}  misses {level.Misses,12:N0} ({missRate:F2}%)  hits 4K {level.HitsBySize["4K"]:N0} 2M {level.HitsBySize["2M"]:N0} 1G {level.HitsBySize["1G"]:N0}\n");
        }
        Line("page walks", $"{Walks.Total:N0} ({Walks.MemoryReferences:N0} entry reads; 4K {Walks.BySize["4K"]:N0} 2M {Walks.BySize["2M"]:N0} 1G {Walks.BySize["1G"]:N0})");
        Line("walk cache hits", string.Join(" ", Walks.PagingStructureCacheHits.Select(p => $"{p.Key} {p.Value:N0}")));
        Line("invalidations", $"invlpg {Invalidations.Invlpg} invpcid {Invalidations.Invpcid} cr3 writes {Invalidations.Cr3Writes} full flushes {Invalidations.FullFlushes}");
        Line("resident pages", $"{Memory.ResidentPages} (+{Memory.PageTableFrames} page-table frames)");
        Line("huge pages mapped", $"{HugePages.Mapped} (fault alloc {HugePages.FaultAlloc}, fallback {HugePages.FaultFallback}, PMD splits {HugePages.SplitPmd})");
        foreach (var collapse in HugePages.Collapses)
            Line($"collapses {collapse.Policy}", $"{collapse.Attempts} regions: {string.Join(", ", collapse.Results.Select(r => $"{r.Key} {r.Value}"))}");
        if (HugePages.Collapses.Length > 0)
        {
            Line("collapse time", $"caller {HugePages.CallerNanoseconds / 1e3:F1} us, khugepaged {HugePages.KhugepagedNanoseconds / 1e3:F1} us, of which reclaim/compaction stall {HugePages.StallNanoseconds / 1e3:F1} us");
            Line("collapse phases", string.Join(" ", HugePages.PhaseNanoseconds.Where(p => p.Value > 0).Select(p => $"{p.Key} {p.Value / 1e3:F1}us")));
        }
        return text.ToString();
    }
}

public sealed record SyscallStatistics(long Total, Dictionary<string, long> ByName);
public sealed record FaultStatistics(long Total, Dictionary<string, long> ByOutcome);
public sealed record TlbStatistics(string Preset, TlbLevelStatistics[] Levels);
public sealed record TlbLevelStatistics(string Name, long Lookups, long Hits, long Misses, Dictionary<string, long> HitsBySize, Dictionary<string, long> FillsBySize);
public sealed record WalkStatistics(long Total, long MemoryReferences, Dictionary<string, long> BySize, Dictionary<string, long> PagingStructureCacheHits, long DirtyBitWalks);
public sealed record InvalidationStatistics(long Invlpg, long Invpcid, long Cr3Writes, long FullFlushes);
public sealed record CollapseStatisticsEntry(string Policy, long Attempts, Dictionary<string, long> Results);

/// <summary>THP activity of a run: huge mappings, fault-time THP, collapses by policy and result, modeled time.</summary>
public sealed record HugePageStatistics(
    int Mapped, long FaultAlloc, long FaultFallback, long SplitPmd, CollapseStatisticsEntry[] Collapses,
    Dictionary<string, ulong> PhaseNanoseconds, ulong StallNanoseconds, ulong CallerNanoseconds, ulong KhugepagedNanoseconds)
{
    public static HugePageStatistics Collect(Machine machine)
    {
        var thp = machine.Memory.Thp;
        var statistics = thp.Engine.Statistics;
        return new HugePageStatistics(
            machine.Process.Space.HugeMappings, thp.Counters.FaultAlloc, thp.Counters.FaultFallback, thp.Counters.SplitPmd,
            [.. statistics.ByPolicy().Select(p => new CollapseStatisticsEntry(p.Policy, p.Attempts,
                p.Results.ToDictionary(r => PageLab.Kernel.Mm.Thp.CollapseResultRules.LinuxName(r.Result), r => r.Count)))],
            Enum.GetValues<PageLab.Kernel.Mm.Thp.CollapsePhase>().ToDictionary(p => p.ToString(), p => statistics.NanosecondsByPhase[(int)p]),
            statistics.StallNanoseconds, statistics.CallerNanoseconds, statistics.KhugepagedNanoseconds);
    }
}

public sealed record MemoryStatistics(long ResidentPages, int PageTableFrames, ulong PhysicalBytes, ulong HostBackedBytes);
