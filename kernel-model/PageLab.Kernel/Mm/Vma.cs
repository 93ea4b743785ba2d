using System.Diagnostics;

namespace PageLab.Kernel.Mm;

/// <summary>Access a mapping allows: the values of Linux's PROT_* constants.</summary>
[Flags]
public enum Protection
{
    None = 0,
    Read = 1,
    Write = 2,
    Exec = 4,
}

/// <summary>Properties of a VMA beyond its protection (a subset of Linux's vm_flags).</summary>
[Flags]
public enum VmaFlags
{
    None = 0,
    /// <summary>MAP_SHARED: shown as 's' in /proc/self/maps.</summary>
    Shared = 1 << 0,
    /// <summary>VM_GROWSDOWN: the stack, which extends downwards on faults below its start.</summary>
    GrowsDown = 1 << 1,
    /// <summary>VM_HUGEPAGE: set by MADV_HUGEPAGE; fault-time THP under enabled=madvise, khugepaged candidate.</summary>
    HugePage = 1 << 2,
    /// <summary>VM_NOHUGEPAGE: set by MADV_NOHUGEPAGE; no THP at fault time, by khugepaged or by MADV_COLLAPSE.</summary>
    NoHugePage = 1 << 3,
    /// <summary>VM_NORESERVE: MAP_NORESERVE, no commit charge.</summary>
    NoReserve = 1 << 4,
    /// <summary>VM_ACCOUNT: a private writable mapping charged against the commit limit.</summary>
    Account = 1 << 5,
}

/// <summary>
/// A virtual memory area: a page-aligned range [Start, End) with one protection, anonymous or
/// backed by a file from <see cref="FileOffset"/>. Ordered and non-overlapping inside an address space.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
public sealed class Vma
{
    public Vma(ulong start, ulong end, Protection protection, VmaFlags flags, IMappableFile? file, long fileOffset)
    {
        Start = start;
        End = end;
        Protection = protection;
        Flags = flags;
        File = file;
        FileOffset = fileOffset;
    }

    public ulong Start { get; internal set; }
    public ulong End { get; internal set; }
    public Protection Protection { get; internal set; }
    public VmaFlags Flags { get; internal set; }

    /// <summary>The backing file; null for anonymous memory.</summary>
    public IMappableFile? File { get; }

    /// <summary>File offset of <see cref="Start"/> (page-aligned); meaningless for anonymous memory.</summary>
    public long FileOffset { get; internal set; }

    public ulong Length => End - Start;
    public bool IsAnonymous => File is null;

    /// <summary>Backed by a shmem object (MAP_SHARED|MAP_ANONYMOUS): Linux's vma_is_anon_shmem.</summary>
    public bool IsShmem => File is ShmemFile;
    public bool Contains(ulong address) => address >= Start && address < End;

    /// <summary>File offset of the page holding <paramref name="address"/>.</summary>
    public long FileOffsetOf(ulong address) => FileOffset + (long)(address - Start);

    /// <summary>A copy of this VMA restricted to [start, end), with the file offset moved accordingly.</summary>
    internal Vma Slice(ulong start, ulong end) =>
        new(start, end, Protection, Flags, File, File is null ? 0 : FileOffsetOf(start));

    /// <summary>True when <paramref name="next"/> continues this VMA exactly (Linux's vma_merge conditions).</summary>
    internal bool CanMergeWith(Vma next) =>
        End == next.Start && Protection == next.Protection && Flags == next.Flags && File == next.File &&
        (File is null || FileOffsetOf(End) == next.FileOffset);

    public override string ToString() => $"{Start:x}-{End:x} {Protection} {Flags} {File?.Path}";
}
