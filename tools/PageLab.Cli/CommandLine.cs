using System.Globalization;
using PageLab.Emulator.Paging;

namespace PageLab.Cli;

/// <summary>A command-line mistake: the message is printed with the usage, and pagelab exits with status 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// A small hand-written parser for <c>pagelab run [options] prog [args...]</c>. Chosen over
/// System.CommandLine: the grammar is one verb with flat options that must stop at the first
/// non-option word (everything after the program is the guest's, even words that look like
/// options), which takes ~100 lines here and no dependency, with exact error messages.
/// </summary>
public static class CommandLine
{
    public const string Usage = """
        usage: pagelab run [options] prog [args...]
               pagelab demo [options]      (see pagelab demo --help)

        Runs a static x86-64 Linux binary on the emulated machine. Guest stdin, stdout and stderr
        are passed through; the exit status is the guest's (128 + signal when a signal killed it).

        options:
          --stats                 print instructions, wall time, MIPS, TLB/walk counters, faults,
                                  syscalls and virtual time to stderr after the run
          --stats-json FILE       write the statistics as JSON to FILE
          --tlb PRESET            TLB model: intel-golden-cove (default), amd-zen4, tiny
          --max-instructions N    stop the guest after N instructions (SIGXCPU)
          --allow-path PATH       host file or directory tree the guest may open read-only
                                  (repeatable; the program file is, its directory is not implied)
          --seed N                seed of AT_RANDOM and getrandom (default 0)
          --memory SIZE           emulated physical memory, e.g. 512M, 4G (default 4G)
          --numa-nodes N          split physical memory into N NUMA nodes of at least 4M (default 1)
          --memcg-limit SIZE      memory.max of the guest's memory cgroup (default: no limit)
          --swap SIZE             a swap device of SIZE for reclaim to write to (default: none)
          --strace                print system calls in strace's format to stderr
          --kernel-abi ABI        proposal (default: Linux 6.18 plus MADV_TRY_COLLAPSE and
                                  MADV_F_COLLAPSE_LIGHT) or 6.18 (both answer EINVAL, as 6.18 does)
          --fragment SEED         fragment physical memory at boot (seeded): unmovable pages and clean
                                  page cache scattered so no free 2 MiB block is left
          --thp NAME=VALUE        set /sys/kernel/mm/transparent_hugepage/NAME at boot (repeatable),
                                  e.g. --thp enabled=always --thp khugepaged/scan_sleep_millisecs=100
          -h, --help              show this help
        """;

    /// <summary>Parses the words after <c>run</c>; null when help was asked for.</summary>
    /// <exception cref="UsageException">An unknown option, a missing or malformed value, or no program.</exception>
    public static RunSettings? ParseRun(IReadOnlyList<string> words)
    {
        var settings = new RunSettings();
        int i = 0;
        for (; i < words.Count; i++)
        {
            string word = words[i];
            if (word == "--")
            {
                i++;
                break;
            }
            if (!word.StartsWith('-') || word == "-")
                break;
            string name = word, inlineValue = "";
            bool hasInlineValue = false;
            int equals = word.IndexOf('=', StringComparison.Ordinal);
            if (word.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                name = word[..equals];
                inlineValue = word[(equals + 1)..];
                hasInlineValue = true;
            }
            string Value()
            {
                if (hasInlineValue) return inlineValue;
                if (i + 1 >= words.Count) throw new UsageException($"option {name} needs a value");
                return words[++i];
            }
            void NoValue()
            {
                if (hasInlineValue) throw new UsageException($"option {name} takes no value");
            }
            switch (name)
            {
                case "-h" or "--help": return null;
                case "--stats": NoValue(); settings.Stats = true; break;
                case "--strace": NoValue(); settings.Strace = true; break;
                case "--stats-json": settings.StatsJsonPath = Value(); break;
                case "--tlb":
                    string preset = Value();
                    settings.Tlb = TlbConfig.Presets.TryGetValue(preset, out var tlb) ? tlb
                        : throw new UsageException($"unknown TLB preset '{preset}' (known: {string.Join(", ", TlbConfig.Presets.Keys)})");
                    break;
                case "--max-instructions": settings.MaxInstructions = ParseCount(name, Value()); break;
                case "--allow-path": settings.AllowedPaths.Add(Value()); break;
                case "--seed": settings.Seed = (ulong)ParseCount(name, Value(), allowZero: true); break;
                case "--memory": settings.MemoryBytes = ParseSize(name, Value()); break;
                case "--numa-nodes": settings.NumaNodes = (int)Math.Min(ParseCount(name, Value()), 255); break;
                case "--memcg-limit": settings.MemcgLimitBytes = ParseSize(name, Value()); break;
                case "--swap": settings.SwapBytes = ParseSize(name, Value()); break;
                case "--kernel-abi":
                    settings.KernelAbi = Value() switch
                    {
                        "6.18" => PageLab.Kernel.KernelAbi.Linux618,
                        "proposal" => PageLab.Kernel.KernelAbi.Proposal,
                        var other => throw new UsageException($"option --kernel-abi takes 6.18 or proposal, not '{other}'"),
                    };
                    break;
                case "--thp": settings.ThpKnobs.Add(ParseThpKnob(Value())); break;
                case "--fragment": settings.FragmentationSeed = (int)Math.Min(int.MaxValue, ParseCount(name, Value(), allowZero: true)); break;
                default: throw new UsageException($"unknown option '{word}'");
            }
        }
        if (i >= words.Count)
            throw new UsageException("no program given");
        if (settings.MemoryBytes / (ulong)settings.NumaNodes < 4UL << 20)
            throw new UsageException($"each of the {settings.NumaNodes} NUMA nodes needs at least 4M of --memory");
        settings.Program = words[i];
        settings.Arguments.AddRange(words.Skip(i + 1));
        return settings;
    }

    /// <summary>NAME=VALUE for a THP sysfs knob, checked against the same store rules the guest's writes meet.</summary>
    static (string Name, string Value) ParseThpKnob(string text)
    {
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
            throw new UsageException($"option --thp needs NAME=VALUE (e.g. enabled=always), not '{text}'");
        var (name, value) = (text[..equals], text[(equals + 1)..]);
        if (PageLab.Kernel.Mm.Thp.ThpSysfs.Set(new PageLab.Kernel.Mm.Thp.TransparentHugePages(), name, value) is { } error)
            throw new UsageException(error == PageLab.Kernel.Syscalls.Errno.ENOENT
                ? $"option --thp: no writable knob '{name}' under {PageLab.Kernel.Mm.Thp.ThpSysfs.Directory}"
                : $"option --thp: '{value}' is not a valid value for {name}");
        return (name, value);
    }

    static long ParseCount(string option, string text, bool allowZero = false)
    {
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || (value == 0 && !allowZero))
            throw new UsageException($"option {option} needs a {(allowZero ? "non-negative" : "positive")} integer, not '{text}'");
        return value;
    }

    /// <summary>A size in bytes with an optional K, M, G or T suffix (powers of 1024), rounded up to 2 MiB; 2 MiB to 1 TiB.</summary>
    public static ulong ParseSize(string name, string text)
    {
        const ulong Chunk = 2UL << 20;
        int shift = text.Length == 0 ? 0 : char.ToUpperInvariant(text[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        string digits = shift == 0 ? text : text[..^1];
        if (!ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) || value == 0 || value > (1UL << 40) >> shift)
            throw new UsageException($"option {name} needs a size between 2M and 1T (e.g. 512M, 4G), not '{text}'");
        ulong bytes = value << shift;
        bytes = (bytes + Chunk - 1) / Chunk * Chunk;
        if (bytes > 1UL << 40)
            throw new UsageException($"option {name} needs a size between 2M and 1T, not '{text}'");
        return bytes;
    }
}
