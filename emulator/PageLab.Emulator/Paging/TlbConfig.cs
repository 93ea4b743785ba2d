namespace PageLab.Emulator.Paging;

/// <summary>How a set picks its victim.</summary>
public enum TlbReplacement : byte
{
    /// <summary>True least-recently-used.</summary>
    Lru,
    /// <summary>Tree pseudo-LRU: one bit per internal node of a binary tree over the ways; a way count that is not a power
    /// of two takes the next power of two's tree, pruned of the missing leaves.</summary>
    TreePlru,
    /// <summary>Random from a seeded generator: deterministic for a given seed.</summary>
    Random,
}

/// <summary>Which accesses a TLB level serves.</summary>
public enum TlbLevelKind : byte
{
    Instruction,
    Data,
    Unified,
}

/// <summary>
/// One set-associative array of a TLB level. A fully associative array has one set.
/// A level may have several arrays, e.g. separate 4K and 2M arrays as Intel's L1 DTLB has.
/// </summary>
public sealed record TlbArrayConfig(int Sets, int Ways, params PageSize[] Sizes)
{
    public int Entries => Sets * Ways;
}

/// <summary>One TLB level (e.g. L1 DTLB) made of one or more arrays.</summary>
/// <remarks>A translation whose size no array of the level holds is "fractured": the level caches the
/// largest size it holds that is smaller, covering the accessed address (how a 1G page lands in a
/// level without 1G entries).</remarks>
public sealed record TlbLevelConfig(string Name, TlbLevelKind Kind, TlbReplacement Replacement, params TlbArrayConfig[] Arrays);

/// <summary>Entries of each paging-structure cache (Intel SDM 4.10.3); 0 disables one.</summary>
public sealed record PagingStructureCacheConfig(int Pml5Entries, int Pml4Entries, int PdptEntries, int PdEntries);

/// <summary>
/// The shape of the translation caches: TLB levels in lookup order (an access searches the levels
/// of its kind, first to last) and the paging-structure caches.
/// </summary>
public sealed record TlbConfig(string Name, IReadOnlyList<TlbLevelConfig> Levels, PagingStructureCacheConfig PagingStructureCaches, ulong Seed = 1)
{
    /// <summary>
    /// Intel Golden Cove (Alder Lake / Sapphire Rapids P-core), from Intel's Optimization Reference
    /// Manual (Golden Cove microarchitecture): ITLB 256 x 4K 8-way and 32 x 2M fully associative;
    /// DTLB 96 x 4K 6-way, 32 x 2M 4-way, 8 x 1G fully associative; STLB 2048 x 4K/2M 16-way and
    /// 1024 x 1G 8-way. Paging-structure cache sizes are not published: 32 PDE, 8 PDPTE,
    /// 4 PML4E entries are the figures reverse-engineered for recent Intel cores.
    /// </summary>
    public static TlbConfig IntelGoldenCove { get; } = new("intel-golden-cove",
    [
        new("L1i", TlbLevelKind.Instruction, TlbReplacement.TreePlru,
            new TlbArrayConfig(32, 8, PageSize.Size4K), new TlbArrayConfig(1, 32, PageSize.Size2M)),
        new("L1d", TlbLevelKind.Data, TlbReplacement.TreePlru,
            new TlbArrayConfig(16, 6, PageSize.Size4K), new TlbArrayConfig(8, 4, PageSize.Size2M), new TlbArrayConfig(1, 8, PageSize.Size1G)),
        new("L2", TlbLevelKind.Unified, TlbReplacement.TreePlru,
            new TlbArrayConfig(128, 16, PageSize.Size4K, PageSize.Size2M), new TlbArrayConfig(128, 8, PageSize.Size1G)),
    ], new PagingStructureCacheConfig(Pml5Entries: 2, Pml4Entries: 4, PdptEntries: 8, PdEntries: 32));

    /// <summary>
    /// AMD Zen 4, from AMD's Software Optimization Guide for Family 19h (Zen 4): L1 ITLB 64 entries and
    /// L1 DTLB 72 entries, fully associative, all page sizes; L2 ITLB 512 entries 8-way (4K, 2M; 1G
    /// pages are held as 2M); L2 DTLB 3072 entries 24-way (4K, 2M, 1G). AMD's page-walk cache
    /// (PWC) sizes are not published; the same small figures as the Intel preset are used.
    /// </summary>
    public static TlbConfig AmdZen4 { get; } = new("amd-zen4",
    [
        new("L1i", TlbLevelKind.Instruction, TlbReplacement.Lru,
            new TlbArrayConfig(1, 64, PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)),
        new("L1d", TlbLevelKind.Data, TlbReplacement.Lru,
            new TlbArrayConfig(1, 72, PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)),
        new("L2i", TlbLevelKind.Instruction, TlbReplacement.TreePlru,
            new TlbArrayConfig(64, 8, PageSize.Size4K, PageSize.Size2M)),
        new("L2d", TlbLevelKind.Data, TlbReplacement.TreePlru,
            new TlbArrayConfig(128, 24, PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)),
    ], new PagingStructureCacheConfig(Pml5Entries: 2, Pml4Entries: 4, PdptEntries: 8, PdEntries: 32));

    /// <summary>A tiny hierarchy for tests, where evictions are easy to provoke: 4-entry L1s, an 8-entry L2, 2-entry paging-structure caches.</summary>
    public static TlbConfig Tiny { get; } = new("tiny",
    [
        new("L1i", TlbLevelKind.Instruction, TlbReplacement.Lru, new TlbArrayConfig(1, 4, PageSize.Size4K, PageSize.Size2M)),
        new("L1d", TlbLevelKind.Data, TlbReplacement.Lru, new TlbArrayConfig(2, 2, PageSize.Size4K, PageSize.Size2M)),
        new("L2", TlbLevelKind.Unified, TlbReplacement.Lru, new TlbArrayConfig(2, 4, PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)),
    ], new PagingStructureCacheConfig(Pml5Entries: 2, Pml4Entries: 2, PdptEntries: 2, PdEntries: 2));

    /// <summary>Every preset by its name, for the CLI's --tlb option.</summary>
    public static IReadOnlyDictionary<string, TlbConfig> Presets { get; } = new Dictionary<string, TlbConfig>(StringComparer.OrdinalIgnoreCase)
    {
        [IntelGoldenCove.Name] = IntelGoldenCove,
        [AmdZen4.Name] = AmdZen4,
        [Tiny.Name] = Tiny,
    };
}
