using PageLab.Emulator.Cpu;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>Process life cycle: fork/clone, exit into a zombie, wait4, and blocking system calls.</summary>
public sealed partial class LinuxProcess
{
    const int SigChld = 17;
    const ulong CloneSignalMask = 0xff;
    const ulong CloneVm = 0x100, CloneVfork = 0x4000, CloneSetTls = 0x80000, CloneParentSetTid = 0x100000,
        CloneChildClearTid = 0x200000, CloneChildSetTid = 0x1000000;

    readonly List<LinuxProcess> children = [];
    /// <summary>What a blocked system call waits for; null when the process is runnable.</summary>
    Func<bool>? wakeCondition;
    /// <summary>CLONE_CHILD_SETTID: where the child stores its tid when it first runs (schedule_tail).</summary>
    ulong setChildTid;
    ulong pendingSignals;

    /// <summary>This process's pid (and tid: one thread per process).</summary>
    public int Pid { get; }

    /// <summary>The parent's pid (getppid): the first process's parent is outside the machine.</summary>
    public int ParentPid => Parent?.Pid ?? ParentProcessId;

    /// <summary>The parent inside the machine; null for the first process, or once the parent is gone.</summary>
    public LinuxProcess? Parent { get; private set; }

    /// <summary>The machine's processes (shared by a process and everything it forks).</summary>
    public ProcessTable Table { get; }

    /// <summary>The registers while the process is not on the CPU (the machine saves and loads them on a switch).</summary>
    public CpuContext Registers { get; } = new();

    /// <summary>Exited and released, waiting for the parent's wait4.</summary>
    public bool IsZombie { get; private set; }

    /// <summary>Signals sent to the process and not delivered (SIGCHLD from exiting children), as a bit mask (bit signal - 1).</summary>
    public ulong PendingSignals => pendingSignals;

    /// <summary>A system call of this process is waiting (wait4 on a live child, an empty or full pipe).</summary>
    public bool IsBlocked => wakeCondition is not null;

    /// <summary>Called after fork created a child: the machine copies the registers and queues it (child, child stack, TLS or 0).</summary>
    public Action<LinuxProcess, ulong, ulong?>? Forked { get; set; }

    /// <summary>The wait status wait4 reports: exit code &lt;&lt; 8, or the killing signal.</summary>
    public int WaitStatus => TerminatingSignal is { } signal ? signal & 0x7f : (ExitStatus ?? 0) << 8;

    /// <summary>For the scheduler: true when the process may run now (a blocked call's condition is met: it is retried).</summary>
    public bool TryWake()
    {
        if (HasExited)
            return false;
        if (wakeCondition is null)
            return true;
        if (!wakeCondition())
            return false;
        wakeCondition = null;
        return true;
    }

    /// <summary>Makes the current system call wait for <paramref name="condition"/>; the machine restarts it then.</summary>
    long Block(Func<bool> condition)
    {
        wakeCondition = condition;
        return 0;
    }

    /// <summary>Runs when the process first gets the CPU after fork (schedule_tail: CLONE_CHILD_SETTID).</summary>
    public void OnFirstRun()
    {
        if (setChildTid != 0)
            User.TryWriteUInt32(setChildTid, (uint)Pid);
        setChildTid = 0;
    }

    /// <summary>
    /// fork, vfork and clone without CLONE_VM (a new process, not a thread): the child gets a
    /// copy-on-write copy of the address space, the descriptors, signal dispositions and mask, and limits.
    /// vfork is served as fork (the parent does not wait for the child's exec or exit).
    /// </summary>
    long Clone(ulong flags, ulong childStack, ulong parentTid, ulong childTid, ulong tls)
    {
        if ((flags & CloneVfork) != 0)
            flags &= ~(CloneVm | CloneVfork);
        const ulong Supported = CloneSignalMask | CloneSetTls | CloneParentSetTid | CloneChildClearTid | CloneChildSetTid;
        if ((flags & ~Supported) != 0) return Fail(Errno.EINVAL);
        if ((flags & CloneParentSetTid) != 0 && !User.TryWriteUInt32(parentTid, 0)) return Fail(Errno.EFAULT);
        var space = Space.Fork();
        if (space is null) return Fail(Errno.ENOMEM);
        var child = new LinuxProcess(Space.Memory, settings, time, FileSystem.ExecutablePath, space, Table, Table.AllocatePid()) { Parent = this };
        for (int fd = 0; fd < MaxFileDescriptors; fd++)
        {
            if (files[fd] is { } file)
                child.SetDescriptor(fd, file);
        }
        for (int signal = 0; signal <= SignalCount; signal++)
            signalActions[signal].CopyTo(child.signalActions[signal], 0);
        child.signalMask = signalMask;
        limits.CopyTo(child.limits, 0);
        child.clearChildTid = (flags & CloneChildClearTid) != 0 ? childTid : 0;
        child.setChildTid = (flags & CloneChildSetTid) != 0 ? childTid : 0;
        children.Add(child);
        if ((flags & CloneParentSetTid) != 0)
            User.TryWriteUInt32(parentTid, (uint)child.Pid);
        Forked?.Invoke(child, childStack, (flags & CloneSetTls) != 0 ? tls : null);
        return child.Pid;
    }

    /// <summary>
    /// Called by the machine once the process has exited or was killed (do_exit): descriptors are
    /// closed, the address space is torn down, children are orphaned (a zombie orphan is reaped at
    /// once), and the process becomes a zombie for its parent, which gets SIGCHLD; without a parent it is reaped.
    /// </summary>
    public void Release()
    {
        if (IsZombie || !HasExited)
            return;
        wakeCondition = null;
        CloseAllDescriptors();
        Space.Memory.Thp.Khugepaged.Unregister(Space);
        Space.Destroy();
        foreach (var child in children)
        {
            child.Parent = null;
            if (child.IsZombie)
                Table.Remove(child);
        }
        children.Clear();
        IsZombie = true;
        if (Parent is { IsZombie: false } parent)
            parent.pendingSignals |= 1UL << (SigChld - 1);
        else if (Pid != ProcessId)
            Table.Remove(this);
    }

    /// <summary>wait4(pid, wstatus, options, rusage): reaps a zombie child (pid -1, 0 or &lt; -1: any child, one process group).</summary>
    long Wait4(int pid, ulong statusPointer, int options, ulong rusage)
    {
        const int WNohang = 1, WUntraced = 2, WContinued = 8, WNoThread = 0x20000000, WAll = 0x40000000, WClone = unchecked((int)0x80000000);
        const int RusageSize = 144;
        if ((options & ~(WNohang | WUntraced | WContinued | WNoThread | WAll | WClone)) != 0) return Fail(Errno.EINVAL);
        if (pid == int.MinValue) return Fail(Errno.ESRCH);
        bool Matches(LinuxProcess child) => pid <= 0 || child.Pid == pid;
        if (!children.Exists(Matches)) return Fail(Errno.ECHILD);
        var zombie = children.Find(child => Matches(child) && child.IsZombie);
        if (zombie is null)
            return (options & WNohang) != 0 ? 0 : Block(() => children.Exists(child => Matches(child) && child.IsZombie));
        if (statusPointer != 0 && !User.TryWriteUInt32(statusPointer, (uint)zombie.WaitStatus)) return Fail(Errno.EFAULT);
        if (rusage != 0 && !User.TryWrite(rusage, new byte[RusageSize])) return Fail(Errno.EFAULT);
        children.Remove(zombie);
        Table.Remove(zombie);
        pendingSignals &= ~(1UL << (SigChld - 1));
        return zombie.Pid;
    }
}
