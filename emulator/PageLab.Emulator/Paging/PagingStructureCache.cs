namespace PageLab.Emulator.Paging;

/// <summary>
/// One paging-structure cache (Intel SDM 4.10.3): it maps the upper bits of a linear address to the
/// physical address of the next paging structure, with the rights accumulated so far. E.g. the PDE
/// cache maps linear[56:21] to a page table, so a walk that hits it reads only the PTE.
/// Entries are tagged with the PCID; fully associative, LRU.
/// </summary>
internal sealed class PagingStructureCache
{
    struct Entry
    {
        public ulong Key;          // linear >> CoveredBits, plus 1 so that 0 means empty
        public ushort Pcid;
        public ulong NextTable;
        public TranslationAttributes Attributes;
        public ulong LastUse;
    }

    readonly Entry[] entries;
    ulong useCounter;

    /// <param name="level">The level whose entries are cached: PDE cache = PageDirectory, and so on.</param>
    /// <param name="capacity">Entries; 0 disables the cache.</param>
    public PagingStructureCache(PagingLevel level, int capacity)
    {
        Level = level;
        entries = new Entry[capacity];
        CoveredBits = PagingConstants.PageBits + ((int)level - 1) * PagingConstants.LevelBits;
    }

    public PagingLevel Level { get; }

    /// <summary>An entry covers 2^CoveredBits bytes of linear space: 21 for PDEs, 30 for PDPTEs, 39 for PML4Es, 48 for PML5Es.</summary>
    public int CoveredBits { get; }

    public int Capacity => entries.Length;

    ulong KeyFor(ulong linear) => ((linear & ((1UL << PagingConstants.LinearBits5Level) - 1)) >> CoveredBits) + 1;

    public bool TryGet(ulong linear, ushort pcid, out ulong nextTable, out TranslationAttributes attributes)
    {
        ulong key = KeyFor(linear);
        for (int i = 0; i < entries.Length; i++)
        {
            ref Entry e = ref entries[i];
            if (e.Key == key && e.Pcid == pcid)
            {
                e.LastUse = ++useCounter;
                nextTable = e.NextTable;
                attributes = e.Attributes;
                return true;
            }
        }
        nextTable = 0;
        attributes = default;
        return false;
    }

    public void Insert(ulong linear, ushort pcid, ulong nextTable, TranslationAttributes attributes)
    {
        if (entries.Length == 0) return;
        ulong key = KeyFor(linear);
        int victim = 0;
        for (int i = 0; i < entries.Length; i++)
        {
            ref Entry e = ref entries[i];
            if (e.Key == key && e.Pcid == pcid) { victim = i; break; }
            if (e.Key == 0) { victim = i; break; }
            if (e.LastUse < entries[victim].LastUse) victim = i;
        }
        entries[victim] = new Entry { Key = key, Pcid = pcid, NextTable = nextTable, Attributes = attributes, LastUse = ++useCounter };
    }

    /// <summary>Drops every entry of one PCID, or of all PCIDs.</summary>
    public void Invalidate(ushort pcid, bool allPcids)
    {
        for (int i = 0; i < entries.Length; i++)
            if (allPcids || entries[i].Pcid == pcid) entries[i] = default;
    }

    /// <summary>Drops the entry of one PCID that covers <paramref name="linear"/>.</summary>
    public void InvalidateAddress(ulong linear, ushort pcid)
    {
        ulong key = KeyFor(linear);
        for (int i = 0; i < entries.Length; i++)
            if (entries[i].Key == key && entries[i].Pcid == pcid) entries[i] = default;
    }

    public int Count => entries.Count(e => e.Key != 0);
}
