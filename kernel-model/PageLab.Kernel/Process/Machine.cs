using System.Text;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>What a machine is built with.</summary>
public sealed record MachineSettings
{
    /// <summary>Emulated physical memory in bytes (a multiple of 2 MiB).</summary>
    public ulong MemoryBytes { get; init; } = 4UL << 30;

    public TlbConfig Tlb { get; init; } = TlbConfig.IntelGoldenCove;

    /// <summary>Stop the guest after this many instructions (SIGXCPU, as for an exceeded CPU-time limit); 0 = no limit.</summary>
    public long MaxInstructions { get; init; }

    public ProcessSettings Process { get; init; } = new();

    /// <summary>NUMA nodes the physical memory is split into (equal ranges of whole 4 MiB blocks).</summary>
    public int NumaNodes { get; init; } = 1;

    /// <summary>memory.max of the memory cgroup the guest's processes are charged to, in bytes; 0 = no limit.</summary>
    public ulong MemcgLimitBytes { get; init; }

    /// <summary>Size of the swap device reclaim writes anonymous pages to, in bytes; 0 = no swap.</summary>
    public ulong SwapBytes { get; init; }

    /// <summary>Fragment physical memory at boot (seeded), as a long-running machine is; null: a fresh machine.</summary>
    public FragmentationOptions? Fragmentation { get; init; }

    /// <summary>THP knobs set at boot, as (sysfs name, value): ("enabled", "always"), ("khugepaged/scan_sleep_millisecs", "100").</summary>
    public IReadOnlyList<(string Name, string Value)> ThpKnobs { get; init; } = [];
}

/// <summary>How a guest run ended.</summary>
/// <param name="ExitStatus">The status a shell sees: the guest's exit code, or 128 + the signal that killed it.</param>
/// <param name="Signal">The fatal signal, if any.</param>
/// <param name="Report">For a fatal signal: what happened, where, and the page-table path; null otherwise.</param>
public sealed record RunOutcome(int ExitStatus, int? Signal, string? Report);

/// <summary>
/// One emulated machine running one Linux process: physical memory, the MMU and TLBs, the CPU and
/// its virtual clock, and the kernel model serving the CPU's system calls and page faults.
/// </summary>
public sealed class Machine : ICpuHost, IDisposable
{
    const int SigIll = 4, SigBus = 7, SigFpe = 8, SigKill = 9, SigSegv = 11, SigXcpu = 24;

    /// <summary>Guest instructions between two chances for kernel threads (khugepaged) to run: ~0.3 ms of virtual time.</summary>
    const long KernelThreadSlice = 1_000_000;

    readonly PhysicalMemory physical;
    readonly CpuThread thread;
    string? report;
    /// <summary>The process on the CPU.</summary>
    LinuxProcess current;

    public Machine(MachineSettings settings, string executablePath)
    {
        Settings = settings;
        physical = new PhysicalMemory(settings.MemoryBytes);
        Mmu = new Mmu(physical, settings.Tlb);
        Clock = new VirtualClock();
        // The buddy allocator never hands out frame 0, as on Linux: a zero frame number always means "none".
        var frames = new BuddyAllocator(physical, settings.NumaNodes);
        if (settings.SwapBytes != 0)
            frames.Swap = new SwapDevice(0, settings.SwapBytes);
        Memory = new KernelMemory(physical, frames, new MmuGuestMemory(Mmu));
        if (settings.MemcgLimitBytes != 0)
            Memory.Memcg = frames.CreateCgroup("pagelab", settings.MemcgLimitBytes >> PagingConstants.PageBits);
        if (settings.Fragmentation is { } fragmentation)
            Memory.PageCache.Fragment(fragmentation);
        foreach (var (name, value) in settings.ThpKnobs)
        {
            if (Mm.Thp.ThpSysfs.Set(Memory.Thp, name, value) is { } error)
                throw new ArgumentException($"cannot set {Mm.Thp.ThpSysfs.Directory}{name} to '{value}': {error}");
        }
        Cpu = new Cpu(Mmu, this, Clock);
        thread = new CpuThread(Cpu);
        Process = new LinuxProcess(Memory, settings.Process, new ClockTime(Clock), executablePath);
        Process.Forked = OnForked;
        current = Process;
    }

    public MachineSettings Settings { get; }
    public Mmu Mmu { get; }
    public Cpu Cpu { get; }
    public VirtualClock Clock { get; }
    public KernelMemory Memory { get; }
    /// <summary>The first process (pid 4242): its exit ends the run and gives its status.</summary>
    public LinuxProcess Process { get; }

    /// <summary>The process the CPU is running (or ran last).</summary>
    public LinuxProcess Current => current;

    /// <summary>Context switches made (round robin at time slices, blocking calls and exits).</summary>
    public long ContextSwitches { get; private set; }

    /// <summary>AT_HWCAP: CPUID.1:EDX of the emulated CPU, as Linux reports it.</summary>
    public ulong HardwareCapabilities => CpuidModel.Query(1, 0, Mmu.MaxPhysicalAddressBits).Edx;

    /// <summary>execve: loads the program and sets up the registers as Linux's start_thread does.</summary>
    /// <exception cref="ElfLoadException">The binary cannot be run.</exception>
    public LoadedProgram Load(IMappableFile executable, ExecParameters parameters)
    {
        var loaded = Process.Exec(executable, parameters with { HardwareCapabilities = HardwareCapabilities });
        for (int i = 0; i < 16; i++)
            Cpu.Gpr(i) = 0;
        Cpu.Gpr(Cpu.Rsp) = loaded.StackPointer;
        Cpu.Rip = loaded.Entry;
        // argc, argv[0..argc-1], NULL, then envp.
        ulong environment = loaded.StackPointer + 8 * (ulong)(parameters.Arguments.Count + 2);
        Process.Settings.Strace?.Write(StraceFormatter.Execve(parameters.ExecFileName, parameters.Arguments, environment, parameters.Environment.Count));
        return loaded;
    }

    /// <summary>
    /// Runs the guest until the first process exits, is killed, or reaches the instruction limit. Its
    /// processes share the CPU round robin on the virtual clock: a switch happens every
    /// <see cref="KernelThreadSlice"/> instructions, when a system call blocks, and when a process exits.
    /// The processes still alive when the first one ends are killed (SIGKILL) and torn down.
    /// </summary>
    public RunOutcome Run()
    {
        long limit = Settings.MaxInstructions > 0 ? Settings.MaxInstructions : long.MaxValue;
        while (!Process.HasExited)
        {
            long budget = limit - Cpu.InstructionsRetired;
            if (budget <= 0)
            {
                report = $"instruction limit of {limit} reached at rip 0x{Cpu.Rip:x}";
                Process.Kill(SigXcpu);
                break;
            }
            var reason = Cpu.Run(Math.Min(budget, KernelThreadSlice));
            // Kernel threads run between slices of guest execution, on the same virtual clock.
            Memory.Thp.Khugepaged.RunUntil(Clock.Nanoseconds);
            switch (reason)
            {
                case CpuStopReason.StopRequested or CpuStopReason.InstructionLimit:
                    break;
                case CpuStopReason.UnhandledFault:
                    // OnFault has chosen the signal and written the report.
                    current.Kill(SigSegv);
                    break;
                case CpuStopReason.InvalidInstruction:
                    report = $"invalid or unimplemented instruction (SIGILL, ILL_ILLOPN)\n  at rip 0x{Cpu.Rip:x}: {Cpu.FormatInstruction(Cpu.Rip)}";
                    current.Kill(SigIll);
                    break;
                case CpuStopReason.DivideError:
                    report = $"divide error (SIGFPE, FPE_INTDIV)\n  at rip 0x{Cpu.Rip:x}: {Cpu.FormatInstruction(Cpu.Rip)}";
                    current.Kill(SigFpe);
                    break;
                case CpuStopReason.GeneralProtection:
                    report = $"general-protection exception (SIGSEGV, SI_KERNEL)\n  at rip 0x{Cpu.Rip:x}: {Cpu.FormatInstruction(Cpu.Rip)}";
                    current.Kill(SigSegv);
                    break;
            }
            if (Process.HasExited)
                break;
            ReleaseExitedChildren();
            ScheduleNext();
        }
        KillOthers();
        if (Process.TerminatingSignal is { } signal)
        {
            string name = StraceFormatter.SignalName(signal);
            Process.Settings.Strace?.Write($"+++ killed by {name} +++\n");
            return new RunOutcome(128 + signal, signal, $"pagelab: guest killed by {name}: {report ?? Process.KillReason}");
        }
        return new RunOutcome(Process.ExitStatus ?? 0, null, null);
    }

    /// <summary>Children that exited or were killed become zombies; their deaths are their parents' business (wait4), not the run's report.</summary>
    void ReleaseExitedChildren()
    {
        foreach (var process in Process.Table.Processes.ToArray())
        {
            if (process != Process && process.HasExited && !process.IsZombie)
            {
                if (process.TerminatingSignal is { } signal)
                    process.Settings.Strace?.Write(process.WithPidPrefix($"+++ killed by {StraceFormatter.SignalName(signal)} +++\n"));
                process.Release();
                report = null;
            }
        }
    }

    /// <summary>
    /// Round robin: the next process after the current one, in creation order, that can run (a blocked
    /// one whose call can now proceed counts). When none can, not even the current one, the processes
    /// wait for each other forever: the first process is killed (SIGKILL) with a report, as no wall clock moves on.
    /// </summary>
    void ScheduleNext()
    {
        var processes = Process.Table.Processes;
        int start = Process.Table.IndexOf(current);
        for (int step = 1; step <= processes.Count; step++)
        {
            var candidate = processes[(start + step) % processes.Count];
            if (candidate.TryWake())
            {
                SwitchTo(candidate);
                return;
            }
        }
        report = "every process is blocked (wait4 or a pipe) and none can wake the others: deadlock";
        Process.Kill(SigKill);
    }

    /// <summary>A context switch: save the outgoing registers, load the incoming ones, and load its page tables (CR3 write: a full non-global TLB flush, no PCID).</summary>
    void SwitchTo(LinuxProcess next)
    {
        if (next == current)
            return;
        Cpu.SaveContext(current.Registers);
        Cpu.LoadContext(next.Registers);
        Memory.Guest.SwitchAddressSpace(next.Space.Tables.Cr3);
        current = next;
        ContextSwitches++;
        next.OnFirstRun();
    }

    /// <summary>fork: the child starts with the parent's registers, 0 in RAX, and its own stack and TLS when clone gave them.</summary>
    void OnForked(LinuxProcess child, ulong childStack, ulong? tls)
    {
        Cpu.SaveContext(child.Registers);
        child.Registers.Register(0) = 0;
        if (childStack != 0)
            child.Registers.Register(Cpu.Rsp) = childStack;
        if (tls is { } threadPointer)
            child.Registers.FsBase = threadPointer;
        child.Forked = OnForked;
    }

    /// <summary>The first process has ended: the others die with it (SIGKILL) and are torn down, the CPU back on the first one's tables.</summary>
    void KillOthers()
    {
        if (current != Process)
        {
            Cpu.SaveContext(current.Registers);
            Cpu.LoadContext(Process.Registers);
            Memory.Guest.SwitchAddressSpace(Process.Space.Tables.Cr3);
            current = Process;
        }
        foreach (var process in Process.Table.Processes.ToArray())
        {
            if (process == Process || process.IsZombie)
                continue;
            process.Kill(SigKill);
            process.Release();
        }
    }

    void ICpuHost.OnSyscall(Cpu cpu)
    {
        var call = new SyscallArguments((long)cpu.Gpr(0), cpu.Gpr(7), cpu.Gpr(6), cpu.Gpr(2), cpu.Gpr(10), cpu.Gpr(8), cpu.Gpr(9));
        long result = current.HandleSyscall(call, thread);
        if (current.IsBlocked)
        {
            // Restart the SYSCALL instruction (2 bytes) with its number when the process is woken.
            cpu.Gpr(0) = (ulong)call.Number;
            cpu.Rip -= 2;
            cpu.RequestStop();
            return;
        }
        cpu.Gpr(0) = (ulong)result;
        if (current.HasExited)
            cpu.RequestStop();
    }

    bool ICpuHost.OnFault(Cpu cpu, in TranslationFault fault)
    {
        if (fault.Kind != TranslationFaultKind.PageFault)
        {
            report = fault.Kind == TranslationFaultKind.GeneralProtection
                ? $"general-protection exception: non-canonical address 0x{fault.LinearAddress:x} (SIGSEGV, SI_KERNEL)\n  at rip 0x{cpu.Rip:x}: {cpu.FormatInstruction(cpu.Rip)}"
                : $"machine check: physical address beyond memory while translating 0x{fault.LinearAddress:x} (SIGBUS)\n  at rip 0x{cpu.Rip:x}";
            current.Kill(fault.Kind == TranslationFaultKind.GeneralProtection ? SigSegv : SigBus);
            return false;
        }
        var access = (fault.ErrorCode & PageFaultErrorCode.InstructionFetch) != 0 ? AccessKind.Fetch
            : (fault.ErrorCode & PageFaultErrorCode.Write) != 0 ? AccessKind.Write : AccessKind.Read;
        var outcome = current.Space.HandleFault(fault.LinearAddress, access, (fault.ErrorCode & PageFaultErrorCode.Present) != 0);
        if (outcome.IsResolved())
            return true;
        var (signal, code) = outcome switch
        {
            FaultOutcome.SegvMapError => (SigSegv, "SEGV_MAPERR: no mapping"),
            FaultOutcome.SegvAccessError => (SigSegv, "SEGV_ACCERR: the mapping forbids it"),
            FaultOutcome.BusError => (SigBus, "BUS_ADRERR: past the end of the mapped file"),
            _ => (SigKill, "out of memory: no free frame"),
        };
        report = FaultReport(cpu, fault, access, code);
        if (signal != SigKill && current.Settings.Strace is { } strace)
        {
            string name = StraceFormatter.SignalName(signal);
            string address = fault.LinearAddress == 0 ? "NULL" : $"0x{fault.LinearAddress:x}";
            strace.Write(current.WithPidPrefix($"--- {name} {{si_signo={name}, si_code={code[..code.IndexOf(':', StringComparison.Ordinal)]}, si_addr={address}}} ---\n"));
        }
        current.Kill(signal);
        return false;
    }

    string FaultReport(Cpu cpu, in TranslationFault fault, AccessKind access, string code)
    {
        var text = new StringBuilder();
        string verb = access switch { AccessKind.Write => "write to", AccessKind.Fetch => "instruction fetch from", _ => "read of" };
        text.Append($"{verb} 0x{fault.LinearAddress:x} ({code}; {fault})\n");
        text.Append($"  at rip 0x{cpu.Rip:x}: {cpu.FormatInstruction(cpu.Rip)}\n");
        var vma = current.Space.FindVma(fault.LinearAddress);
        text.Append(vma is null ? "  no VMA covers the address\n" : $"  VMA {vma.Start:x}-{vma.End:x} {vma.Protection} {vma.File?.Path}\n");
        text.Append($"  page-table walk (CR3 0x{Mmu.Cr3:x}):\n");
        foreach (var step in current.Space.Tables.Walk(fault.LinearAddress))
            text.Append("    ").Append(step).Append('\n');
        return text.ToString().TrimEnd('\n');
    }

    public void Dispose() => physical.Dispose();

    /// <summary>arch_prctl's view of the CPU's segment bases.</summary>
    sealed class CpuThread(Cpu cpu) : IThreadContext
    {
        public ulong FsBase { get => cpu.FsBase; set => cpu.FsBase = value; }
        public ulong GsBase { get => cpu.GsBase; set => cpu.GsBase = value; }
    }

    /// <summary>The kernel model's clock: the CPU's virtual clock.</summary>
    sealed class ClockTime(VirtualClock clock) : IVirtualTime
    {
        public ulong Nanoseconds => clock.Nanoseconds;
        public void Advance(ulong nanoseconds) => clock.Advance(nanoseconds);
    }
}
