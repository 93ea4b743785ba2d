using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Cli;

/// <summary>
/// <c>pagelab demo</c>: the motivating scenario. A Go-heap-like allocator (guest-programs/src/go_heap.c)
/// re-hugifies its dense 4 MiB chunks with MADV_COLLAPSE or with the proposed MADV_TRY_COLLAPSE, on a
/// machine with plenty of free memory and on a fragmented one, and the table compares what each call
/// cost the program (virtual time, as its own clock_gettime saw it), how many huge pages it got, and
/// how the TLB fared. Deterministic: the same seed prints the same table.
/// </summary>
public static class DemoCommand
{
    public const string Usage = """
        usage: pagelab demo [options]

        Runs guest-programs/out/glibc/go_heap (a model of Go's page heap) four times: MADV_COLLAPSE
        and MADV_TRY_COLLAPSE, on a fresh machine and on a fragmented one, and prints the comparison.

        options:
          --seed N          fragmentation and guest seed (default 1)
          --memory SIZE     emulated physical memory (default 512M)
          --chunks N        4 MiB chunks in the guest's heap (default 16)
          --rounds N        allocation rounds (default 4)
          --program PATH    the go_heap binary (default guest-programs/out/glibc/go_heap)
        """;

    /// <summary>Free 2 MiB blocks the fragmented machine keeps: a few huge pages are there for the taking without compaction.</summary>
    const int FreeBlocksLeft = 6;

    /// <summary>One row of the table.</summary>
    public sealed record Row(string Machine, string Advice, int ExitStatus, long Calls, long Ok, long Enomem, long HugePages,
        ulong P50, ulong P99, ulong Max, ulong StallNanoseconds, ulong CallerNanoseconds, ulong KhugepagedNanoseconds,
        long Walks, long L2Misses, long DataLookups);

    public static int Execute(IReadOnlyList<string> words, TextWriter output, TextWriter error)
    {
        int seed = 1, chunks = 16, rounds = 4;
        ulong memory = 512UL << 20;
        string? program = null;
        for (int i = 0; i < words.Count; i++)
        {
            string Value() => i + 1 < words.Count ? words[++i] : throw new UsageException($"option {words[i]} needs a value");
            switch (words[i])
            {
                case "--seed": seed = ParseInt(words[i], Value()); break;
                case "--memory": memory = CommandLine.ParseSize(words[i], Value()); break;
                case "--chunks": chunks = ParseInt(words[i], Value(), min: 1); break;
                case "--rounds": rounds = ParseInt(words[i], Value(), min: 1); break;
                case "--program": program = Value(); break;
                case "-h" or "--help": output.WriteLine(Usage); return 0;
                default: throw new UsageException($"unknown demo option '{words[i]}'");
            }
        }
        program ??= Path.Combine(RepositoryRoot(), "guest-programs", "out", "glibc", "go_heap");
        if (!File.Exists(program))
        {
            error.WriteLine($"pagelab demo: {program} not found: build the guest programs first (bash guest-programs/build.sh), or use tools/pagelab demo");
            return 1;
        }

        var rows = new List<Row>();
        foreach (bool fragmented in new[] { false, true })
        {
            foreach (string mode in new[] { "collapse", "try" })
            {
                var settings = new RunSettings
                {
                    Program = program,
                    // A fixed argv[0] and environment: the table must not depend on where the repository is or who runs it.
                    ArgumentZero = "go_heap",
                    Environment = ["LANG=C"],
                    MemoryBytes = memory,
                    Seed = (ulong)seed,
                    FragmentationSeed = fragmented ? seed : null,
                    FragmentationFreeBlocks = FreeBlocksLeft,
                    MaxInstructions = 20_000_000_000,
                };
                settings.Arguments.AddRange([mode, chunks.ToString(CultureInfo.InvariantCulture), rounds.ToString(CultureInfo.InvariantCulture)]);
                var captured = new CapturedOutput();
                var run = RunCommand.RunGuest(settings, error, captured);
                using var machine = run.Machine;
                if (machine is null)
                    return run.ExitStatus;
                rows.Add(Summarize(fragmented ? "fragmented" : "fresh", mode == "try" ? "MADV_TRY_COLLAPSE" : "MADV_COLLAPSE",
                    run.ExitStatus, captured.Text, machine));
            }
        }
        output.Write(Format(rows, chunks, rounds, memory));
        return rows.All(r => r.ExitStatus == 0) ? 0 : 1;
    }

    static int ParseInt(string option, string text, int min = 0) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value >= min
            ? value
            : throw new UsageException($"option {option} needs an integer >= {min}, not '{text}'");

    /// <summary>Reads the guest's own report lines ("result: ... calls=... ok=...", "timing: ... p50=...") and the machine's counters.</summary>
    static Row Summarize(string machineName, string advice, int exitStatus, string guestOutput, Kernel.Process.Machine machine)
    {
        var lines = guestOutput.Split('\n');
        string? Find(string prefix) => lines.LastOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        long Field(string? line, string name)
        {
            if (line is null) return 0;
            int at = line.IndexOf(" " + name + "=", StringComparison.Ordinal);
            if (at < 0) return 0;
            string rest = line[(at + name.Length + 2)..];
            int end = rest.IndexOf(' ', StringComparison.Ordinal);
            return long.TryParse(end < 0 ? rest : rest[..end], NumberStyles.None, CultureInfo.InvariantCulture, out long value) ? value : 0;
        }
        string? calls = Find($"result: {advice} ");
        string? timing = Find("timing: collapse latency");
        string? lastRound = Find("result: round ");
        var statistics = machine.Memory.Thp.Engine.Statistics;
        var counters = machine.Mmu.Counters;
        var l2 = counters.Levels.Where(l => l.Name.StartsWith("L2", StringComparison.Ordinal)).ToArray();
        return new Row(machineName, advice, exitStatus, Field(calls, "calls"), Field(calls, "ok"), Field(calls, "ENOMEM"),
            Field(lastRound, "huge pages"), (ulong)Field(timing, "p50"), (ulong)Field(timing, "p99"), (ulong)Field(timing, "max"),
            statistics.StallNanoseconds, statistics.CallerNanoseconds, statistics.KhugepagedNanoseconds,
            counters.Walks, l2.Sum(l => l.Misses), counters.Levels.Where(l => l.Name.Contains('d', StringComparison.Ordinal) && l.Name.StartsWith("L1", StringComparison.Ordinal)).Sum(l => l.Lookups));
    }

    static string Format(List<Row> rows, int chunks, int rounds, ulong memory)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.Append(c, $"PageLab demo: a Go-like heap ({chunks} x 4 MiB chunks, {rounds} rounds) re-hugifies dense chunks; {memory >> 20} MiB machine.\n");
        text.Append(c, $"The fragmented machine has unmovable pages and clean page cache in every 2 MiB block but {FreeBlocksLeft}.\n");
        text.Append("Latencies are the guest's own clock_gettime around each call, in virtual time. \"huge\" = huge pages mapped at the end.\n\n");
        text.Append(c, $"{"machine",-11} {"advice",-18} {"calls",5} {"ok",4} {"ENOMEM",6} {"huge",4} {"p50 us",8} {"p99 us",8} {"max us",8} {"stall us",9} {"caller ms",9} {"khugepaged ms",13} {"page walks",10} {"walks/1k loads",14}\n");
        foreach (var r in rows)
        {
            if (r.ExitStatus != 0)
            {
                text.Append(c, $"{r.Machine,-11} {r.Advice,-18} the guest failed (exit status {r.ExitStatus}; its report is above)\n");
                continue;
            }
            double walksPerThousand = r.DataLookups > 0 ? 1000.0 * r.Walks / r.DataLookups : 0;
            text.Append(c, $"{r.Machine,-11} {r.Advice,-18} {r.Calls,5} {r.Ok,4} {r.Enomem,6} {r.HugePages,4} {r.P50 / 1e3,8:F1} {r.P99 / 1e3,8:F1} {r.Max / 1e3,8:F1} {r.StallNanoseconds / 1e3,9:F1} {r.CallerNanoseconds / 1e6,9:F3} {r.KhugepagedNanoseconds / 1e6,13:F3} {r.Walks,10:N0} {walksPerThousand,14:F2}\n");
        }
        var collapse = rows.Single(r => r.Machine == "fragmented" && r.Advice == "MADV_COLLAPSE");
        var attempt = rows.Single(r => r.Machine == "fragmented" && r.Advice == "MADV_TRY_COLLAPSE");
        text.Append(c, $"\nOn the fragmented machine, MADV_COLLAPSE's slowest call took {collapse.Max / 1e3:F1} us ({collapse.StallNanoseconds / 1e3:F1} us of all calls stalled in reclaim/compaction) for {collapse.HugePages} huge pages;\n");
        text.Append(c, $"MADV_TRY_COLLAPSE's slowest took {attempt.Max / 1e3:F1} us, never stalling ({attempt.StallNanoseconds / 1e3:F1} us), for {attempt.HugePages} huge pages.\n");
        return text.ToString();
    }

    /// <summary>The repository root: the nearest directory above the CLI (or the working directory) holding PageLab.slnx.</summary>
    static string RepositoryRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "PageLab.slnx")))
                    return dir.FullName;
        }
        return Environment.CurrentDirectory;
    }

    /// <summary>The guest's stdout, kept in memory (a pipe, as fstat tells the guest).</summary>
    sealed class CapturedOutput : OpenFile
    {
        readonly MemoryStream buffer = new();

        public string Text => Encoding.UTF8.GetString(buffer.ToArray());

        public override string Path => "pipe:[demo]";

        public override long Write(ReadOnlySpan<byte> data)
        {
            buffer.Write(data);
            return data.Length;
        }

        public override int Stat(Span<byte> statBuffer)
        {
            const int StatSize = 144; // sizeof(struct stat) on x86-64
            statBuffer[..StatSize].Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(statBuffer[24..], 0x1000 | 0x180); // st_mode = S_IFIFO | 0600
            return 0;
        }
    }
}
