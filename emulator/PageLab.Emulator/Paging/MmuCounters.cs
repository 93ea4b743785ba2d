namespace PageLab.Emulator.Paging;

/// <summary>Exact counters of one TLB level: every lookup is counted, none sampled.</summary>
public sealed class TlbLevelCounters(string name)
{
    public string Name { get; } = name;
    public long Lookups;
    public long Misses;
    /// <summary>Hits by the page size of the entry that hit, indexed by <see cref="PageSize"/>.</summary>
    public readonly long[] HitsBySize = new long[3];
    /// <summary>Fills by page size (after a walk or a hit in a later level).</summary>
    public readonly long[] FillsBySize = new long[3];
    public long Hits => HitsBySize[0] + HitsBySize[1] + HitsBySize[2];
}

/// <summary>Exact counters of the MMU: TLB levels, page walks, paging-structure caches, faults, invalidations.</summary>
public sealed class MmuCounters
{
    internal MmuCounters(IEnumerable<string> levelNames) =>
        Levels = levelNames.Select(n => new TlbLevelCounters(n)).ToArray();

    /// <summary>One entry per configured TLB level, in configuration order.</summary>
    public TlbLevelCounters[] Levels { get; }

    /// <summary>Translations that missed every TLB level and walked the page tables (including dirty-bit re-walks).</summary>
    public long Walks;
    /// <summary>Paging-structure entries read by walks (each an 8-byte memory reference).</summary>
    public long WalkMemoryReferences;
    /// <summary>Completed walks by the page size of the leaf, indexed by <see cref="PageSize"/>.</summary>
    public readonly long[] WalksBySize = new long[3];
    /// <summary>Walks that began below the root thanks to a paging-structure cache hit, indexed by <see cref="PagingLevel"/> of the cached entry.</summary>
    public readonly long[] PagingStructureCacheHits = new long[6];
    /// <summary>Walks forced by a write through a TLB entry whose D bit was clear.</summary>
    public long DirtyBitWalks;
    public long AccessedBitsSet;
    public long DirtyBitsSet;
    public long PageFaults;
    public long GeneralProtectionFaults;
    public long MachineChecks;
    public long Invlpg;
    public long Invpcid;
    public long Cr3Writes;
    public long FullFlushes;
}
