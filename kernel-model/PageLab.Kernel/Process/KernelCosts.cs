namespace PageLab.Kernel.Process;

/// <summary>The modeled virtual time of kernel work (DESIGN.md point 6), in nanoseconds.</summary>
public static class KernelCosts
{
    /// <summary>SYSCALL, entry work, SYSRET: about 100 ns on a current core with mitigations.</summary>
    public const ulong SyscallEntry = 100;

    /// <summary>Exception entry, VMA lookup and return for a page fault, before the page work.</summary>
    public const ulong PageFaultEntry = 400;

    /// <summary>Clearing a 4 KiB frame at about 16 GB/s.</summary>
    public const ulong ZeroPage = 250;

    /// <summary>Copying a 4 KiB frame (copy-on-write, page-cache fill from cached file data).</summary>
    public const ulong CopyPage = 300;

    /// <summary>copy_to_user / copy_from_user: 1 ns per 16 bytes.</summary>
    public static ulong CopyBytes(long bytes) => (ulong)Math.Max(bytes, 0) / 16;
}

/// <summary>The machine's modeled clock as the kernel model uses it (the CPU's VirtualClock in a run).</summary>
public interface IVirtualTime
{
    /// <summary>Modeled nanoseconds since boot.</summary>
    ulong Nanoseconds { get; }

    /// <summary>Charges kernel work to the clock.</summary>
    void Advance(ulong nanoseconds);
}

/// <summary>Charges memory-management work (reclaim, compaction, swap-in) done for a process to its clock.</summary>
public sealed class VirtualTimeCostSink(IVirtualTime time) : Mm.ICostSink
{
    /// <inheritdoc/>
    public void Charge(Mm.MmCostKind kind, ulong nanoseconds) => time.Advance(nanoseconds);
}
