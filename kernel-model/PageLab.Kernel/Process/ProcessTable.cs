namespace PageLab.Kernel.Process;

/// <summary>
/// The processes of one machine, live and zombie, in creation order (the scheduler's round-robin
/// order), and the pid allocator: pids are handed out in sequence after the first process's, as on
/// a quiet Linux system, so runs are reproducible.
/// </summary>
public sealed class ProcessTable
{
    readonly List<LinuxProcess> processes = [];
    int lastPid = LinuxProcess.ProcessId;
    ulong lastPipeInode = 0x1000;

    /// <summary>Processes not yet reaped, in creation order.</summary>
    public IReadOnlyList<LinuxProcess> Processes => processes;

    /// <summary>The process with this pid (live or zombie), or null.</summary>
    public LinuxProcess? Find(int pid) => processes.Find(process => process.Pid == pid);

    /// <summary>Position of <paramref name="process"/> in creation order, or -1 once it was reaped.</summary>
    public int IndexOf(LinuxProcess process) => processes.IndexOf(process);

    internal int AllocatePid() => ++lastPid;

    /// <summary>Inode numbers of pipes, in creation order (pipefs numbers its inodes from a counter too).</summary>
    internal ulong AllocatePipeInode() => ++lastPipeInode;

    internal void Add(LinuxProcess process) => processes.Add(process);

    internal void Remove(LinuxProcess process) => processes.Remove(process);
}
