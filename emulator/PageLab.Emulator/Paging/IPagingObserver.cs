using System.Runtime.CompilerServices;

namespace PageLab.Emulator.Paging;

/// <summary>One paging-structure entry read by a walk.</summary>
public readonly record struct WalkStep(PagingLevel Level, ulong EntryAddress, PageTableEntry Entry);

/// <summary>Up to five steps of a walk (PML5E..PTE), stored inline so a walk allocates nothing.</summary>
[InlineArray(5)]
public struct WalkSteps
{
    WalkStep first;
}

/// <summary>A completed or faulting page walk, as the observer sees it.</summary>
public struct WalkRecord
{
    public ulong Linear;
    public AccessKind Kind;
    public ushort Pcid;
    /// <summary>The level the walk started at: below the root when a paging-structure cache hit.</summary>
    public PagingLevel StartLevel;
    public int StepCount;
    public WalkSteps Steps;
    public PageSize Size;
    public ulong Physical;
    public TranslationFault Fault;
}

/// <summary>What invalidated translations.</summary>
public enum InvalidationKind : byte
{
    Invlpg,
    Invpcid,
    Cr3Write,
    ControlFlagsChange,
    FullFlush,
    /// <summary>Delivering a #PF drops the faulting address's translations (Intel SDM 4.10.4.1).</summary>
    PageFault,
}

/// <summary>
/// Receives MMU events. Counters are always on; an observer costs nothing when none is attached,
/// so detailed streams (profiler, debugger, tests) are opt-in.
/// </summary>
public interface IPagingObserver
{
    /// <summary>A lookup in TLB level <paramref name="level"/> (index into the configuration's levels).</summary>
    void OnTlbLookup(int level, ulong linear, AccessKind kind, bool hit, PageSize size);

    void OnWalk(in WalkRecord walk);

    void OnInvalidation(InvalidationKind kind, ulong linear, ushort pcid);
}
