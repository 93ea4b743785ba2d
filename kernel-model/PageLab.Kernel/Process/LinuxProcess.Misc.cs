using System.Buffers.Binary;
using System.Text;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>Time, identity, limits, signals (recorded, not delivered), randomness and thread setup.</summary>
public sealed partial class LinuxProcess
{
    /// <summary>CLOCK_REALTIME at virtual time zero: 2026-01-01T00:00:00Z, fixed so runs are reproducible.</summary>
    public const long RealtimeEpochSeconds = 1_767_225_600;

    const int SignalCount = 64;
    const int SigKill = 9, SigStop = 19;
    const int SigsetSize = 8;
    const int KernelSigactionSize = 32;
    const ulong SigDefault = 0, SigIgnore = 1;

    readonly byte[][] signalActions = Enumerable.Range(0, SignalCount + 1).Select(_ => new byte[KernelSigactionSize]).ToArray();
    ulong signalMask;
    ulong clearChildTid;
    ulong robustList;
    (ulong Address, uint Length, uint Signature) rseq;

    static readonly (ulong Current, ulong Max)[] DefaultLimits =
    [
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_CPU
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_FSIZE
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_DATA
        (Mm.AddressSpace.StackLimit, ulong.MaxValue), // RLIMIT_STACK
        (0, ulong.MaxValue),                          // RLIMIT_CORE
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_RSS
        (63_704, 63_704),                             // RLIMIT_NPROC
        (MaxFileDescriptors, 524_288),                // RLIMIT_NOFILE
        (8UL << 20, 8UL << 20),                       // RLIMIT_MEMLOCK
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_AS
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_LOCKS
        (63_704, 63_704),                             // RLIMIT_SIGPENDING
        (819_200, 819_200),                           // RLIMIT_MSGQUEUE
        (0, 0),                                       // RLIMIT_NICE
        (0, 0),                                       // RLIMIT_RTPRIO
        (ulong.MaxValue, ulong.MaxValue),             // RLIMIT_RTTIME
    ];

    readonly (ulong Current, ulong Max)[] limits = [.. DefaultLimits];

    /// <summary>The signal action recorded for <paramref name="signal"/>: handler address (0 = SIG_DFL, 1 = SIG_IGN).</summary>
    public ulong SignalHandler(int signal) => BinaryPrimitives.ReadUInt64LittleEndian(signalActions[signal]);

    /// <summary>The blocked-signal mask as rt_sigprocmask set it.</summary>
    public ulong SignalMask => signalMask;

    /// <summary>The address set_tid_address registered (cleared and woken at thread exit).</summary>
    public ulong ClearChildTid => clearChildTid;

    long RtSigaction(int signal, ulong action, ulong oldAction, ulong sigsetSize)
    {
        if (sigsetSize != SigsetSize) return Fail(Errno.EINVAL);
        if (signal < 1 || signal > SignalCount || (action != 0 && signal is SigKill or SigStop)) return Fail(Errno.EINVAL);
        Span<byte> incoming = stackalloc byte[KernelSigactionSize];
        if (action != 0 && !User.TryRead(action, incoming)) return Fail(Errno.EFAULT);
        if (oldAction != 0 && !User.TryWrite(oldAction, signalActions[signal])) return Fail(Errno.EFAULT);
        if (action != 0) incoming.CopyTo(signalActions[signal]);
        return 0;
    }

    long RtSigprocmask(int how, ulong set, ulong oldSet, ulong sigsetSize)
    {
        const int Block = 0, Unblock = 1, SetMask = 2;
        const ulong Unblockable = (1UL << (SigKill - 1)) | (1UL << (SigStop - 1));
        if (sigsetSize != SigsetSize) return Fail(Errno.EINVAL);
        ulong requested = 0;
        if (set != 0)
        {
            if (how is not (Block or Unblock or SetMask)) return Fail(Errno.EINVAL);
            if (!User.TryReadUInt64(set, out requested)) return Fail(Errno.EFAULT);
        }
        if (oldSet != 0 && !User.TryWriteUInt64(oldSet, signalMask)) return Fail(Errno.EFAULT);
        if (set != 0)
        {
            signalMask = how switch
            {
                Block => signalMask | requested,
                Unblock => signalMask & ~requested,
                _ => requested,
            } & ~Unblockable;
        }
        return 0;
    }

    long Sigaltstack(ulong stack, ulong oldStack)
    {
        const int SsDisable = 2;
        Span<byte> disabled = stackalloc byte[24];
        disabled.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(disabled[8..], SsDisable);
        if (oldStack != 0 && !User.TryWrite(oldStack, disabled)) return Fail(Errno.EFAULT);
        if (stack != 0 && !User.TryRead(stack, disabled)) return Fail(Errno.EFAULT);
        return 0;
    }

    /// <summary>
    /// kill/tgkill to the process itself. Signals are not delivered to handlers (no signal frames
    /// yet): a caught or ignored signal is dropped, a default-fatal one ends the process.
    /// </summary>
    long SendSignal(bool toSelf, int signal, string? reason = null)
    {
        if (signal < 0 || signal > SignalCount) return Fail(Errno.EINVAL);
        if (!toSelf) return Fail(Errno.ESRCH);
        if (signal == 0) return 0;
        ulong handler = SignalHandler(signal);
        bool ignoredByDefault = signal is 17 /* SIGCHLD */ or 18 /* SIGCONT */ or 23 /* SIGURG */ or 28 /* SIGWINCH */;
        bool blocked = (signalMask & (1UL << (signal - 1))) != 0 && signal is not (SigKill or SigStop);
        if (signal == SigKill || (handler == SigDefault && !ignoredByDefault && !blocked && signal != SigStop))
            Kill(signal, reason ?? $"{StraceFormatter.SignalName(signal)} sent by the guest to itself (kill/tgkill), default action");
        return 0;
    }

    /// <summary>kill(pid, signal): to itself (pid 0 or its own), or to another process of the machine, where only the default action applies.</summary>
    long KillProcess(int pid, int signal)
    {
        if (pid == 0 || pid == Pid) return SendSignal(toSelf: true, signal);
        if (signal < 0 || signal > SignalCount) return Fail(Errno.EINVAL);
        if (pid < 0 || Table.Find(pid) is not { IsZombie: false } target) return Fail(Errno.ESRCH);
        return signal == 0 ? 0 : target.SendSignal(toSelf: true, signal, $"{StraceFormatter.SignalName(signal)} sent by pid {Pid}");
    }

    long ArchPrctl(IThreadContext thread, int code, ulong address)
    {
        const int SetGs = 0x1001, SetFs = 0x1002, GetFs = 0x1003, GetGs = 0x1004, GetCpuid = 0x1011, SetCpuid = 0x1012;
        switch (code)
        {
            case SetFs or SetGs:
                if (address >= Mm.AddressSpace.TaskSize) return Fail(Errno.EPERM); // TASK_SIZE_MAX: the last user page is the guard page
                if (code == SetFs) thread.FsBase = address;
                else thread.GsBase = address;
                return 0;
            case GetFs or GetGs:
                return User.TryWriteUInt64(address, code == GetFs ? thread.FsBase : thread.GsBase) ? 0 : Fail(Errno.EFAULT);
            case GetCpuid:
                return 1;
            case SetCpuid:
                return Fail(Errno.ENODEV);
            default:
                return Fail(Errno.EINVAL);
        }
    }

    long SetTidAddress(ulong address)
    {
        clearChildTid = address;
        return Pid;
    }

    long SetRobustList(ulong head, ulong length)
    {
        const ulong RobustListHeadSize = 24;
        if (length != RobustListHeadSize) return Fail(Errno.EINVAL);
        robustList = head;
        return 0;
    }

    /// <summary>The robust futex list head set_robust_list registered.</summary>
    public ulong RobustList => robustList;

    /// <summary>
    /// rseq registration (kernel/rseq.c rules). On registration and on every return to user space
    /// Linux writes cpu_id_start, cpu_id, node_id and mm_cid: CPU 0, node 0 here. A pointer that
    /// cannot be written is answered as Linux does at the return to user mode: SIGSEGV.
    /// </summary>
    long Rseq(ulong address, uint length, int flags, uint signature)
    {
        const int Unregister = 1;
        const uint OriginalSize = 32;
        if ((flags & ~Unregister) != 0) return Fail(Errno.EINVAL);
        if ((flags & Unregister) != 0)
        {
            if (rseq.Address != address || rseq.Address == 0) return Fail(Errno.EINVAL);
            if (rseq.Length != length) return Fail(Errno.EINVAL);
            if (rseq.Signature != signature) return Fail(Errno.EPERM);
            rseq = default;
            return 0;
        }
        if (rseq.Address != 0)
        {
            if (rseq.Address != address || rseq.Length != length) return Fail(Errno.EINVAL);
            return rseq.Signature != signature ? Fail(Errno.EPERM) : Fail(Errno.EBUSY);
        }
        if (address % ElfLoader.RseqAlign != 0 || length < OriginalSize || (length != OriginalSize && length < ElfLoader.RseqFeatureSize))
            return Fail(Errno.EINVAL);
        if (address >= Mm.AddressSpace.TaskSize || length > Mm.AddressSpace.TaskSize - address) return Fail(Errno.EFAULT);
        rseq = (address, length, signature);
        bool written = User.TryWriteUInt64(address, 0) && User.TryWriteUInt64(address + 20, 0);
        if (!written) Kill(11, $"the rseq area at 0x{address:x} cannot be written");
        return 0;
    }

    long Prlimit(int pid, int resource, ulong newLimit, ulong oldLimit)
    {
        if (pid != 0 && pid != Pid) return Fail(Errno.ESRCH);
        if ((uint)resource >= (uint)limits.Length) return Fail(Errno.EINVAL);
        (ulong Current, ulong Max) requested = default;
        if (newLimit != 0)
        {
            if (!User.TryReadUInt64(newLimit, out requested.Current) || !User.TryReadUInt64(newLimit + 8, out requested.Max)) return Fail(Errno.EFAULT);
            if (requested.Current > requested.Max) return Fail(Errno.EINVAL);
            if (requested.Max > limits[resource].Max) return Fail(Errno.EPERM);
        }
        if (oldLimit != 0 && !(User.TryWriteUInt64(oldLimit, limits[resource].Current) && User.TryWriteUInt64(oldLimit + 8, limits[resource].Max)))
            return Fail(Errno.EFAULT);
        if (newLimit != 0) limits[resource] = requested;
        return 0;
    }

    long Getrandom(ulong buffer, ulong length, int flags)
    {
        const int NonBlock = 1, RandomPool = 2, Insecure = 4;
        if ((flags & ~(NonBlock | RandomPool | Insecure)) != 0 || (flags & (RandomPool | Insecure)) == (RandomPool | Insecure)) return Fail(Errno.EINVAL);
        int count = (int)Math.Min(length, (ulong)MaxReadWrite);
        if (count == 0) return 0;
        var bytes = new byte[Math.Min(count, TransferChunk)];
        Random.Fill(bytes);
        return User.TryWrite(buffer, bytes) ? bytes.Length : Fail(Errno.EFAULT);
    }

    long Uname(ulong buffer)
    {
        const int FieldSize = 65;
        string[] fields = ["Linux", "pagelab", "6.18.0-pagelab", "#1 SMP PREEMPT_DYNAMIC PageLab", "x86_64", "(none)"];
        var bytes = new byte[fields.Length * FieldSize];
        for (int i = 0; i < fields.Length; i++)
            Encoding.ASCII.GetBytes(fields[i], bytes.AsSpan(i * FieldSize));
        return User.TryWrite(buffer, bytes) ? 0 : Fail(Errno.EFAULT);
    }

    long Sysinfo(ulong buffer)
    {
        var info = new byte[112];
        var span = info.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span, (long)(time.Nanoseconds / 1_000_000_000));
        BinaryPrimitives.WriteUInt64LittleEndian(span[32..], Space.Memory.Physical.Size);
        BinaryPrimitives.WriteUInt64LittleEndian(span[40..], Space.Memory.Frames.FreeFrames << Emulator.Paging.PagingConstants.PageBits);
        BinaryPrimitives.WriteUInt16LittleEndian(span[80..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(span[104..], 1);
        return User.TryWrite(buffer, info) ? 0 : Fail(Errno.EFAULT);
    }

    long SchedGetaffinity(int pid, ulong length, ulong mask)
    {
        const int CpuMaskBytes = 8;
        if (pid != 0 && pid != Pid) return Fail(Errno.ESRCH);
        if (length < CpuMaskBytes || (length & 7) != 0) return Fail(Errno.EINVAL);
        return User.TryWriteUInt64(mask, 1) ? CpuMaskBytes : Fail(Errno.EFAULT);
    }

    long Futex(int operation)
    {
        const int Wake = 1, CommandMask = 0x7f & ~0x80;
        // One thread: nobody waits, so a wake wakes nobody; waiting would wait forever.
        return (operation & CommandMask) == Wake ? 0 : Fail(Errno.ENOSYS);
    }

    /// <summary>The clock a clockid reads, in nanoseconds; false for an unknown id.</summary>
    bool TryReadClock(int clockId, out ulong nanoseconds)
    {
        const int Realtime = 0, Monotonic = 1, ProcessCpu = 2, ThreadCpu = 3, MonotonicRaw = 4, RealtimeCoarse = 5, MonotonicCoarse = 6, Boottime = 7;
        ulong now = time.Nanoseconds;
        nanoseconds = clockId switch
        {
            Realtime or RealtimeCoarse => now + (ulong)RealtimeEpochSeconds * 1_000_000_000,
            _ => now,
        };
        return clockId is Realtime or Monotonic or ProcessCpu or ThreadCpu or MonotonicRaw or RealtimeCoarse or MonotonicCoarse or Boottime;
    }

    bool WriteTimespec(ulong address, ulong nanoseconds) =>
        User.TryWriteUInt64(address, nanoseconds / 1_000_000_000) && User.TryWriteUInt64(address + 8, nanoseconds % 1_000_000_000);

    long ClockGettime(int clockId, ulong timespec)
    {
        if (!TryReadClock(clockId, out ulong now)) return Fail(Errno.EINVAL);
        return WriteTimespec(timespec, now) ? 0 : Fail(Errno.EFAULT);
    }

    long ClockGetres(int clockId, ulong timespec)
    {
        const int RealtimeCoarse = 5, MonotonicCoarse = 6;
        if (!TryReadClock(clockId, out _)) return Fail(Errno.EINVAL);
        // hrtimers resolve 1 ns; the coarse clocks tick with jiffies (CONFIG_HZ=250: 4 ms).
        ulong resolution = clockId is RealtimeCoarse or MonotonicCoarse ? 4_000_000UL : 1UL;
        return timespec == 0 || WriteTimespec(timespec, resolution) ? 0 : Fail(Errno.EFAULT);
    }

    long Gettimeofday(ulong timeval, ulong timezone)
    {
        TryReadClock(0, out ulong now);
        if (timeval != 0 && !(User.TryWriteUInt64(timeval, now / 1_000_000_000) && User.TryWriteUInt64(timeval + 8, now % 1_000_000_000 / 1000)))
            return Fail(Errno.EFAULT);
        if (timezone != 0 && !User.TryWriteUInt64(timezone, 0)) return Fail(Errno.EFAULT);
        return 0;
    }

    long Time(ulong pointer)
    {
        TryReadClock(0, out ulong now);
        long seconds = (long)(now / 1_000_000_000);
        if (pointer != 0 && !User.TryWriteUInt64(pointer, (ulong)seconds)) return Fail(Errno.EFAULT);
        return seconds;
    }

    /// <summary>Reads a struct timespec: its nanoseconds, or -errno (EFAULT; EINVAL when out of range).</summary>
    long ReadTimespec(ulong address)
    {
        if (!User.TryReadUInt64(address, out ulong seconds) || !User.TryReadUInt64(address + 8, out ulong nanoseconds)) return Fail(Errno.EFAULT);
        if ((long)seconds < 0 || nanoseconds >= 1_000_000_000) return Fail(Errno.EINVAL);
        return (long)Math.Min(seconds, long.MaxValue / 2_000_000_000) * 1_000_000_000 + (long)nanoseconds;
    }

    /// <summary>Sleeping passes virtual time: the clock jumps by the requested duration.</summary>
    long Nanosleep(ulong request)
    {
        long duration = ReadTimespec(request);
        if (duration < 0) return duration;
        time.Advance((ulong)duration);
        return 0;
    }

    long ClockNanosleep(int clockId, int flags, ulong request)
    {
        const int AbsoluteTime = 1;
        if (!TryReadClock(clockId, out ulong now) || clockId is 2 or 3) return Fail(Errno.EINVAL);
        long value = ReadTimespec(request);
        if (value < 0) return value;
        ulong duration = (flags & AbsoluteTime) != 0 ? ((ulong)value > now ? (ulong)value - now : 0) : (ulong)value;
        time.Advance(duration);
        return 0;
    }
}
