using PageLab.Emulator.Paging;

namespace PageLab.Cli;

/// <summary>
/// Every option of <c>pagelab run</c>, with its meaning. Options come before the program; every
/// word after the program belongs to the guest. Values may follow as the next word or after '='.
/// </summary>
public sealed class RunSettings
{
    /// <summary>The program to run (a static x86-64 ELF executable) as given on the command line: also argv[0] and AT_EXECFN.</summary>
    public string Program { get; set; } = "";

    /// <summary>argv[0] and AT_EXECFN when they should differ from <see cref="Program"/> (the demo passes a fixed name so that
    /// where the repository lives does not change the guest's stack); null: the program as given.</summary>
    public string? ArgumentZero { get; set; }

    /// <summary>The guest's environment; null: the host's, in its own order (as `pagelab run` passes it).</summary>
    public IReadOnlyList<string>? Environment { get; set; }

    /// <summary>Arguments after the program (argv[1..]).</summary>
    public List<string> Arguments { get; } = [];

    /// <summary>--stats: print guest instructions, wall time, guest MIPS, TLB and walk counters, faults, syscalls and virtual time to stderr after the run.</summary>
    public bool Stats { get; set; }

    /// <summary>--stats-json FILE: write the same statistics as JSON (format documented in StatsReport) to FILE.</summary>
    public string? StatsJsonPath { get; set; }

    /// <summary>--tlb PRESET: the TLB model (intel-golden-cove, amd-zen4, tiny). Default intel-golden-cove.</summary>
    public TlbConfig Tlb { get; set; } = TlbConfig.IntelGoldenCove;

    /// <summary>--max-instructions N: stop the guest after N instructions with SIGXCPU (exit status 152). Default: no limit.</summary>
    public long MaxInstructions { get; set; }

    /// <summary>--allow-path PATH (repeatable): host files or directory trees the guest may open read-only. The program file itself is always readable; its directory is not implied.</summary>
    public List<string> AllowedPaths { get; } = [];

    /// <summary>--seed N: seed of AT_RANDOM and getrandom. Default 0. The same seed, program and arguments give the same run.</summary>
    public ulong Seed { get; set; }

    /// <summary>--memory SIZE: emulated physical memory, bytes or with a K/M/G/T suffix, rounded up to 2 MiB. Default 4G.</summary>
    public ulong MemoryBytes { get; set; } = 4UL << 30;

    /// <summary>--numa-nodes N: split physical memory into N NUMA nodes. Default 1.</summary>
    public int NumaNodes { get; set; } = 1;

    /// <summary>--memcg-limit SIZE: memory.max of the cgroup the guest is charged to; over it, reclaim inside the group, then OOM. Default: no limit.</summary>
    public ulong MemcgLimitBytes { get; set; }

    /// <summary>--swap SIZE: a swap device of SIZE, where reclaim writes anonymous pages. Default: no swap.</summary>
    public ulong SwapBytes { get; set; }

    /// <summary>--strace: print every system call in strace's format to stderr.</summary>
    public bool Strace { get; set; }

    /// <summary>--kernel-abi proposal|6.18: with 6.18, MADV_TRY_COLLAPSE and MADV_F_COLLAPSE_LIGHT answer EINVAL, as Linux 6.18 does. Default proposal.</summary>
    public PageLab.Kernel.KernelAbi KernelAbi { get; set; }

    /// <summary>--fragment SEED: fragment physical memory at boot with this seed (no free order-9 block left; compaction or reclaim needed for huge pages). Default: a fresh machine.</summary>
    public int? FragmentationSeed { get; set; }

    /// <summary>With --fragment: free 2 MiB blocks left untouched (few rather than none). Default 0; the demo leaves a few.</summary>
    public int FragmentationFreeBlocks { get; set; }

    /// <summary>--thp NAME=VALUE (repeatable): THP sysfs knobs set at boot, e.g. enabled=always, khugepaged/scan_sleep_millisecs=100.</summary>
    public List<(string Name, string Value)> ThpKnobs { get; } = [];
}
