using System.Buffers.Binary;
using System.Text;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>The huge-page side of a process: prctl THP controls, process_madvise, pidfds, and the THP files it can read.</summary>
public sealed partial class LinuxProcess
{
    const int PrSetThpDisable = 41, PrGetThpDisable = 42;
    const int PidfdSelfThread = -10000, PidfdSelfThreadGroup = -10001;
    const uint PidfdNonblock = 0x800;
    /// <summary>The proposal's process_madvise flag: collapse without direct reclaim/compaction (MADV_TRY_COLLAPSE).</summary>
    const uint MadvFCollapseLight = 0x1;

    /// <summary>Finds a live process by pid, for pidfd_open; the machine sets it. Null: only this process exists.</summary>
    public Func<int, LinuxProcess?>? FindProcess { get; set; }

    void AddMemoryFiles(KernelMemory memory)
    {
        FileSystem.AddVirtualFile("/proc/self/smaps", Space.FormatSmaps);
        FileSystem.AddVirtualFile("/proc/self/smaps_rollup", Space.FormatSmapsRollup);
        FileSystem.AddVirtualFile("/proc/vmstat", () => FormatVmstat(memory));
        FileSystem.AddVirtualFile("/proc/sys/vm/max_map_count", () => Space.MaxMapCount.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n",
            text => int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int limit)
                ? SetMaxMapCount(limit) : Errno.EINVAL);
        FileSystem.AddVirtualFile("/proc/meminfo", () => ProcMemory.MemInfo(memory));
        // PFNs only for CAP_SYS_ADMIN, which the model grants to euid 0.
        FileSystem.AddGeneratedFile("/proc/self/pagemap", (buffer, offset) => Space.ReadPagemap(buffer, offset, showFrames: Credentials.Euid == 0));
        FileSystem.AddVirtualFile("/proc/buddyinfo", () => Mm.Physical.ProcViews.BuddyInfo(memory.Frames));
        FileSystem.AddVirtualFile("/proc/pagetypeinfo", () => Mm.Physical.ProcViews.PageTypeInfo(memory.Frames));
        FileSystem.AddVirtualFile("/proc/self/status", () => ProcMemory.Status(Space, CommandName(FileSystem.ExecutablePath), Pid, ParentPid));
        foreach (var file in ThpSysfs.Files(memory.Thp))
            FileSystem.AddVirtualFile(ThpSysfs.Directory + file.Name, file.Read, file.Write);
        memory.Thp.Khugepaged.Register(Space);
    }

    /// <summary>The task's comm: the executable's file name, cut to TASK_COMM_LEN - 1 = 15 bytes.</summary>
    static string CommandName(string executablePath)
    {
        string name = Path.GetFileName(executablePath);
        return name.Length > 15 ? name[..15] : name;
    }

    Errno? SetMaxMapCount(int limit)
    {
        Space.MaxMapCount = limit;
        return null;
    }

    /// <summary>
    /// /proc/vmstat: the counters the model keeps, in Linux's "name value" lines and order: the LRU list
    /// sizes (node statistics) first, then the events, thp_* last.
    /// </summary>
    static string FormatVmstat(KernelMemory memory)
    {
        var text = new StringBuilder();
        foreach (var (name, list) in (ReadOnlySpan<(string, LruList)>)[("nr_inactive_anon", LruList.InactiveAnon), ("nr_active_anon", LruList.ActiveAnon),
            ("nr_inactive_file", LruList.InactiveFile), ("nr_active_file", LruList.ActiveFile)])
            text.Append(name).Append(' ').Append(memory.Frames.LruPages(list)).Append('\n');
        foreach (var (name, value) in memory.Frames.Counters.VmstatFields())
            text.Append(name).Append(' ').Append(value).Append('\n');
        foreach (var (name, value) in memory.Thp.Counters.VmstatLines(memory.Frames.Counters))
            text.Append(name).Append(' ').Append(value).Append('\n');
        return text.ToString();
    }

    /// <summary>prctl: the THP controls (PR_SET_THP_DISABLE, PR_GET_THP_DISABLE); other options EINVAL.</summary>
    long Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5)
    {
        switch (option)
        {
            case PrSetThpDisable:
                if (arg3 != 0 || arg4 != 0 || arg5 != 0) return Fail(Errno.EINVAL);
                Space.ThpDisabled = arg2 != 0;
                return 0;
            case PrGetThpDisable:
                if (arg2 != 0 || arg3 != 0 || arg4 != 0 || arg5 != 0) return Fail(Errno.EINVAL);
                return Space.ThpDisabled ? 1 : 0;
            default:
                return Fail(Errno.EINVAL);
        }
    }

    /// <summary>pidfd_open(pid, flags): a descriptor naming a live process.</summary>
    long PidfdOpen(int pid, uint flags)
    {
        if ((flags & ~PidfdNonblock) != 0 || pid <= 0) return Fail(Errno.EINVAL);
        var target = pid == Pid ? this : FindProcess?.Invoke(pid);
        if (target is null) return Fail(Errno.ESRCH);
        return Install(new PidFile(target));
    }

    /// <summary>
    /// process_madvise(pidfd, iovec, vlen, advice, flags): madvise each range in order; stop at the first
    /// failure and return the bytes advised before it, or -errno when the first range fails. On another
    /// process only COLD, PAGEOUT, WILLNEED and COLLAPSE are allowed; the proposal's MADV_F_COLLAPSE_LIGHT
    /// turns MADV_COLLAPSE into MADV_TRY_COLLAPSE. The work is charged to the caller.
    /// </summary>
    long ProcessMadvise(int pidfd, ulong iov, ulong vlen, int advice, uint flags)
    {
        bool light = flags == MadvFCollapseLight && settings.KernelAbi == KernelAbi.Proposal && advice == MadviseAdvice.Collapse;
        if (flags != 0 && !light) return Fail(Errno.EINVAL);
        if (vlen > MaxIovecs) return Fail(Errno.EINVAL);
        LinuxProcess? target = pidfd is PidfdSelfThread or PidfdSelfThreadGroup ? this : (Lookup(pidfd) as PidFile)?.Process;
        if (target is null) return Fail(Errno.EBADF);
        if (target.HasExited) return Fail(Errno.ESRCH);
        bool remoteAllowed = advice is MadviseAdvice.Cold or MadviseAdvice.PageOut or MadviseAdvice.WillNeed or MadviseAdvice.Collapse;
        if (target != this && !remoteAllowed) return Fail(Errno.EINVAL);
        if (!Mm.Madvise.IsSupported(advice, settings.KernelAbi)) return Fail(Errno.EINVAL);

        var raw = new byte[(int)vlen * 16];
        if (!User.TryRead(iov, raw)) return Fail(Errno.EFAULT);
        int effective = light ? MadviseAdvice.TryCollapse : advice;
        long done = 0;
        for (int i = 0; i < (int)vlen; i++)
        {
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 16));
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 16 + 8));
            var result = Mm.Madvise.Apply(target.Space, start, length, effective, KernelAbi.Proposal);
            time.Advance(result.Nanoseconds);
            if (result.Error is { } error)
                return done > 0 ? done : Fail(error);
            done += (long)length;
        }
        return done;
    }
}

/// <summary>A pidfd: names a process for process_madvise (and, later, waitid/pidfd_send_signal).</summary>
public sealed class PidFile(LinuxProcess process) : OpenFile
{
    public LinuxProcess Process { get; } = process;

    public override string Path => "anon_inode:[pidfd]";

    public override int Stat(Span<byte> statBuffer)
    {
        statBuffer[..HostInterop.StatSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(statBuffer[24..], 0x8000 | 0x180); // S_IFREG | 0600, as anon inodes report
        return 0;
    }
}
