using PageLab.Kernel.Fs;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>The registers of the calling thread a system call may change (arch_prctl).</summary>
public interface IThreadContext
{
    ulong FsBase { get; set; }
    ulong GsBase { get; set; }
}

/// <summary>How a process is set up: who runs it, what it may read, how it is seeded and traced.</summary>
public sealed record ProcessSettings
{
    /// <summary>Host paths the guest may open read-only (files or directory trees).</summary>
    public IReadOnlyList<string> AllowedPaths { get; init; } = [];

    /// <summary>Seed of every random value the guest sees (AT_RANDOM, getrandom).</summary>
    public ulong Seed { get; init; }

    public Credentials Credentials { get; init; }

    /// <summary>Which kernel's system-call interface the guest sees (the MADV_TRY_COLLAPSE proposal or plain 6.18).</summary>
    public KernelAbi KernelAbi { get; init; }

    /// <summary>Where --strace lines go; null when tracing is off.</summary>
    public TextWriter? Strace { get; init; }

    /// <summary>The guest's descriptors 0, 1 and 2.</summary>
    public IReadOnlyList<OpenFile> StandardStreams { get; init; } =
    [
        new HostFile(0, "/dev/stdin", owned: false, writable: false),
        new HostFile(1, "/dev/stdout", owned: false, writable: true),
        new HostFile(2, "/dev/stderr", owned: false, writable: true),
    ];
}

/// <summary>
/// A modeled Linux process with one thread: its address space, descriptors, signal dispositions
/// and identity, and the system calls it makes (Linux x86-64 numbers; results and -errno in RAX).
/// Every guest pointer is copied through the MMU with user permissions: a bad one gives EFAULT.
/// </summary>
public sealed partial class LinuxProcess
{
    /// <summary>The first process's pid and tid (one thread); fixed so runs are reproducible.</summary>
    public const int ProcessId = 4242;

    /// <summary>The first process's parent's pid as the guest sees it.</summary>
    public const int ParentProcessId = 4241;

    /// <summary>RLIMIT_NOFILE soft limit: descriptors 0..1023.</summary>
    public const int MaxFileDescriptors = 1024;

    readonly OpenFile?[] files = new OpenFile?[MaxFileDescriptors];
    readonly IVirtualTime time;
    readonly ProcessSettings settings;
    readonly Dictionary<long, long> syscallCounts = [];
    readonly long[] faultCounts = new long[Enum.GetValues<FaultOutcome>().Length];

    public LinuxProcess(KernelMemory memory, ProcessSettings settings, IVirtualTime time, string executablePath)
        : this(memory, settings, time, executablePath, new AddressSpace(memory), new ProcessTable(), ProcessId)
    {
        for (int fd = 0; fd < settings.StandardStreams.Count; fd++)
            SetDescriptor(fd, settings.StandardStreams[fd]);
        memory.Guest.SwitchAddressSpace(Space.Tables.Cr3);
    }

    /// <summary>A process with the given address space and pid, in <paramref name="table"/> (the first one, or a forked child).</summary>
    LinuxProcess(KernelMemory memory, ProcessSettings settings, IVirtualTime time, string executablePath, AddressSpace space, ProcessTable table, int pid)
    {
        this.settings = settings;
        this.time = time;
        Pid = pid;
        Table = table;
        Space = space;
        Space.FaultHandled = OnFaultHandled;
        Space.CostSink = new VirtualTimeCostSink(time);
        User = new UserMemory(Space);
        FileSystem = new GuestFileSystem(settings.AllowedPaths, executablePath, pid, Space.FormatMaps);
        // The PFNs show only to a reader with CAP_SYS_ADMIN: here, root.
        FileSystem.AddSpecialFile("/proc/self/pagemap", () => new PagemapFile(Space, showFrames: settings.Credentials.Euid == 0));
        AddMemoryFiles(memory);
        // Each process draws its own random stream; the first one's is the run's seed itself.
        Random = new DeterministicRandom(settings.Seed + (ulong)(pid - ProcessId) * 0x9E37_79B9_7F4A_7C15UL);
        FindProcess = table.Find;
        table.Add(this);
    }

    public ProcessSettings Settings => settings;
    public AddressSpace Space { get; }
    public UserMemory User { get; }
    public GuestFileSystem FileSystem { get; }
    public DeterministicRandom Random { get; }
    public Credentials Credentials => settings.Credentials;

    /// <summary>The exit status once the process exited (exit_group), or null.</summary>
    public int? ExitStatus { get; private set; }

    /// <summary>The signal that killed the process, or null.</summary>
    public int? TerminatingSignal { get; private set; }

    public bool HasExited => ExitStatus is not null || TerminatingSignal is not null;

    /// <summary>System calls made, all numbers together.</summary>
    public long SyscallCount { get; private set; }

    /// <summary>System calls made, per number.</summary>
    public IReadOnlyDictionary<long, long> SyscallCounts => syscallCounts;

    /// <summary>Page faults serviced, per outcome.</summary>
    public long FaultCount(FaultOutcome outcome) => faultCounts[(int)outcome];

    /// <summary>Loads a static executable and builds its initial stack (execve's effect on a fresh process).</summary>
    /// <exception cref="ElfLoadException">The binary is malformed or cannot be placed.</exception>
    public LoadedProgram Exec(IMappableFile executable, ExecParameters parameters) =>
        ElfLoader.Load(User, executable, ElfImage.Parse(executable), parameters);

    /// <summary>Ends the process by a signal (a fatal fault, abort): the exit status seen by a shell is 128 + signal.</summary>
    /// <param name="signal">The fatal signal.</param>
    /// <param name="reason">Why, for the report (the machine describes faults itself).</param>
    public void Kill(int signal, string? reason = null)
    {
        if (TerminatingSignal is not null)
            return;
        TerminatingSignal = signal;
        KillReason = reason;
    }

    /// <summary>Why the kernel model killed the process (a signal it raised), when the machine did not report a fault.</summary>
    public string? KillReason { get; private set; }

    void OnFaultHandled(FaultOutcome outcome)
    {
        faultCounts[(int)outcome]++;
        time.Advance(KernelCosts.PageFaultEntry + outcome switch
        {
            FaultOutcome.AnonymousZeroFilled or FaultOutcome.ShmemPageAllocated => KernelCosts.ZeroPage,
            FaultOutcome.CopiedOnWrite => KernelCosts.CopyPage,
            _ => 0UL,
        });
    }

    /// <summary>Runs one system call and returns the value for RAX.</summary>
    public long HandleSyscall(in SyscallArguments call, IThreadContext thread)
    {
        SyscallCount++;
        syscallCounts[call.Number] = syscallCounts.GetValueOrDefault(call.Number) + 1;
        time.Advance(KernelCosts.SyscallEntry);
        var trace = settings.Strace is null ? null : StraceFormatter.Begin(call, User);
        long result = Dispatch(call, thread);
        if (IsBlocked)
        {
            // Not done yet: the machine restarts the call when it can proceed; it is counted and traced then.
            SyscallCount--;
            syscallCounts[call.Number]--;
            return result;
        }
        if (trace is not null)
            settings.Strace!.Write(WithPidPrefix(trace.Finish(result, HasExited, ExitStatus)));
        return result;
    }

    long Dispatch(in SyscallArguments a, IThreadContext thread) => (SyscallNumber)a.Number switch
    {
        SyscallNumber.Read => Read(a.Int(0), a.A1, a.A2),
        SyscallNumber.Write => Write(a.Int(0), a.A1, a.A2),
        SyscallNumber.Open => OpenAt(AtFdCwd, a.A0, a.Int(1)),
        SyscallNumber.Close => Close(a.Int(0)),
        SyscallNumber.Stat => StatPath(AtFdCwd, a.A0, a.A1, 0),
        SyscallNumber.Fstat => Fstat(a.Int(0), a.A1),
        SyscallNumber.Lstat => StatPath(AtFdCwd, a.A0, a.A1, AtSymlinkNoFollow),
        SyscallNumber.Lseek => Lseek(a.Int(0), (long)a.A1, a.Int(2)),
        SyscallNumber.Mmap => Mmap(a.A0, a.A1, a.Int(2), a.Int(3), a.Int(4), (long)a.A5),
        SyscallNumber.Mprotect => Mprotect(a.A0, a.A1, a.Int(2)),
        SyscallNumber.Munmap => Munmap(a.A0, a.A1),
        SyscallNumber.Brk => (long)Space.SetBrk(a.A0),
        SyscallNumber.RtSigaction => RtSigaction(a.Int(0), a.A1, a.A2, a.A3),
        SyscallNumber.RtSigprocmask => RtSigprocmask(a.Int(0), a.A1, a.A2, a.A3),
        SyscallNumber.Ioctl => Ioctl(a.Int(0), (uint)a.A1, a.A2),
        SyscallNumber.Pread64 => Pread(a.Int(0), a.A1, a.A2, (long)a.A3),
        SyscallNumber.Readv => Readv(a.Int(0), a.A1, a.Int(2)),
        SyscallNumber.Writev => Writev(a.Int(0), a.A1, a.Int(2)),
        SyscallNumber.Access => Faccessat(AtFdCwd, a.A0, a.Int(1), 0),
        SyscallNumber.SchedYield => 0,
        SyscallNumber.Madvise => Madvise(a.A0, a.A1, a.Int(2)),
        SyscallNumber.Mremap => Mremap(a.A0, a.A1, a.A2, a.Int(3), a.A4),
        SyscallNumber.Dup => Dup(a.Int(0), 0, exact: false),
        SyscallNumber.Dup2 => a.Int(0) == a.Int(1) ? (Lookup(a.Int(0)) is null ? Fail(Errno.EBADF) : a.Int(1)) : Dup(a.Int(0), a.Int(1), exact: true),
        SyscallNumber.Dup3 => a.Int(0) == a.Int(1) || (a.Int(2) & ~OCloexec) != 0 ? Fail(Errno.EINVAL) : Dup(a.Int(0), a.Int(1), exact: true),
        SyscallNumber.Nanosleep => Nanosleep(a.A0),
        SyscallNumber.Getpid or SyscallNumber.Gettid => Pid,
        SyscallNumber.Getppid => ParentPid,
        SyscallNumber.Clone => Clone(a.A0, a.A1, a.A2, a.A3, a.A4),
        SyscallNumber.Fork => Clone(SigChld, 0, 0, 0, 0),
        SyscallNumber.Vfork => Clone(CloneVm | CloneVfork | SigChld, 0, 0, 0, 0),
        SyscallNumber.Wait4 => Wait4(a.Int(0), a.A1, a.Int(2), a.A3),
        SyscallNumber.Pipe => Pipe2(a.A0, 0),
        SyscallNumber.Pipe2 => Pipe2(a.A0, a.Int(1)),
        SyscallNumber.Getuid => Credentials.Uid,
        SyscallNumber.Geteuid => Credentials.Euid,
        SyscallNumber.Getgid => Credentials.Gid,
        SyscallNumber.Getegid => Credentials.Egid,
        SyscallNumber.Exit or SyscallNumber.ExitGroup => ExitGroup(a.Int(0)),
        SyscallNumber.Kill => KillProcess(a.Int(0), a.Int(1)),
        SyscallNumber.Tgkill => SendSignal(a.Int(0) == Pid && a.Int(1) == Pid, a.Int(2)),
        SyscallNumber.Uname => Uname(a.A0),
        SyscallNumber.Fcntl => Fcntl(a.Int(0), a.Int(1), a.A2),
        SyscallNumber.Getcwd => Getcwd(a.A0, a.A1),
        SyscallNumber.Readlink => ReadlinkAt(AtFdCwd, a.A0, a.A1, (long)a.A2),
        SyscallNumber.Readlinkat => ReadlinkAt(a.Int(0), a.A1, a.A2, (long)a.A3),
        SyscallNumber.Gettimeofday => Gettimeofday(a.A0, a.A1),
        SyscallNumber.Getrlimit => Prlimit(0, a.Int(0), 0, a.A1),
        SyscallNumber.Prlimit64 => Prlimit(a.Int(0), a.Int(1), a.A2, a.A3),
        SyscallNumber.Sysinfo => Sysinfo(a.A0),
        SyscallNumber.Sigaltstack => Sigaltstack(a.A0, a.A1),
        SyscallNumber.ArchPrctl => ArchPrctl(thread, a.Int(0), a.A1),
        SyscallNumber.Prctl => Prctl(a.Int(0), a.A1, a.A2, a.A3, a.A4),
        SyscallNumber.PidfdOpen => PidfdOpen(a.Int(0), (uint)a.A1),
        SyscallNumber.ProcessMadvise => ProcessMadvise(a.Int(0), a.A1, a.A2, a.Int(3), (uint)a.A4),
        SyscallNumber.Time => Time(a.A0),
        SyscallNumber.Futex => Futex(a.Int(1)),
        SyscallNumber.SchedGetaffinity => SchedGetaffinity(a.Int(0), a.A1, a.A2),
        SyscallNumber.Getdents64 => Getdents64(a.Int(0), a.A1, a.A2),
        SyscallNumber.SetTidAddress => SetTidAddress(a.A0),
        SyscallNumber.ClockGettime => ClockGettime(a.Int(0), a.A1),
        SyscallNumber.ClockGetres => ClockGetres(a.Int(0), a.A1),
        SyscallNumber.ClockNanosleep => ClockNanosleep(a.Int(0), a.Int(1), a.A2),
        SyscallNumber.Openat => OpenAt(a.Int(0), a.A1, a.Int(2)),
        SyscallNumber.Newfstatat => StatPath(a.Int(0), a.A1, a.A2, a.Int(3)),
        SyscallNumber.Faccessat => Faccessat(a.Int(0), a.A1, a.Int(2), 0),
        SyscallNumber.Faccessat2 => Faccessat(a.Int(0), a.A1, a.Int(2), a.Int(3)),
        SyscallNumber.SetRobustList => SetRobustList(a.A0, a.A1),
        SyscallNumber.Getrandom => Getrandom(a.A0, a.A1, a.Int(2)),
        SyscallNumber.Rseq => Rseq(a.A0, (uint)a.A1, a.Int(2), (uint)a.A3),
        _ => Fail(Errno.ENOSYS),
    };

    static long Fail(Errno errno) => -(long)errno;

    /// <summary>strace -f marks the lines of every process but the first with "[pid N] ".</summary>
    internal string WithPidPrefix(string traceLines)
    {
        if (Pid == ProcessId || traceLines.Length == 0)
            return traceLines;
        string prefix = $"[pid {Pid}] ";
        bool endsWithNewline = traceLines.EndsWith('\n');
        string body = (endsWithNewline ? traceLines[..^1] : traceLines).Replace("\n", "\n" + prefix, StringComparison.Ordinal);
        return prefix + body + (endsWithNewline ? "\n" : "");
    }

    long ExitGroup(int status)
    {
        ExitStatus ??= status & 0xff;
        return 0;
    }
}
