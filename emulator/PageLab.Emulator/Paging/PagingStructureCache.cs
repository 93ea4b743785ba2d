using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace PageLab.Emulator.Paging;

/// <summary>
/// One paging-structure cache (Intel SDM 4.10.3): it maps the upper bits of a linear address to the
/// physical address of the next paging structure, with the rights accumulated so far. E.g. the PDE
/// cache maps linear[56:21] to a page table, so a walk that hits it reads only the PTE.
/// Entries are tagged with the PCID; fully associative, LRU. The keys (valid bit, linear bits, PCID packed in one
/// ulong) are searched with vector compares, as every walk probes every cache; recency is a doubly linked list over
/// the entries, so a hit and a replacement cost a few stores whatever the capacity.
/// </summary>
internal sealed unsafe class PagingStructureCache
{
    const ulong ValidBit = 1UL << 63;
    const int PcidBits = 12;
    const int None = -1;

    // Pinned storage, used through the pointers below: every walk probes every cache, and a walk that misses inserts
    // into each, so these paths run without bounds checks.
    readonly ulong[] keyStorage;
    readonly ulong[] valueStorage;
    readonly int[] listStorage;
    readonly ulong* keys;            // capacity rounded up to 8; 0 = empty (padding stays empty)
    readonly ulong* nextTables;
    readonly ulong* rightsOf;        // the TranslationAttributes accumulated above each entry
    readonly int* newer;             // the recency list: for each entry in use, the next more and less recently used one
    readonly int* older;
    readonly int* free;              // a stack of empty entries
    readonly int paddedCapacity;
    int freeCount;
    int newest = None, oldest = None;

    /// <param name="level">The level whose entries are cached: PDE cache = PageDirectory, and so on.</param>
    /// <param name="capacity">Entries; 0 disables the cache.</param>
    public PagingStructureCache(PagingLevel level, int capacity)
    {
        Level = level;
        Capacity = capacity;
        paddedCapacity = (capacity + 7) & ~7;
        keyStorage = GC.AllocateArray<ulong>(paddedCapacity + 8, pinned: true);
        valueStorage = GC.AllocateArray<ulong>(capacity * 2 + 1, pinned: true);
        listStorage = GC.AllocateArray<int>(capacity * 3 + 1, pinned: true);
        // Keys start on a 64-byte boundary, so a vector of eight is one cache line.
        ulong* keyBase = (ulong*)Unsafe.AsPointer(ref keyStorage[0]);
        keys = (ulong*)(((nuint)keyBase + 63) & ~(nuint)63);
        nextTables = (ulong*)Unsafe.AsPointer(ref valueStorage[0]);
        rightsOf = nextTables + capacity;
        newer = (int*)Unsafe.AsPointer(ref listStorage[0]);
        older = newer + capacity;
        free = older + capacity;
        new Span<int>(newer, capacity * 2).Fill(None);
        for (int i = capacity - 1; i >= 0; i--) free[freeCount++] = i;
        CoveredBits = PagingConstants.PageBits + ((int)level - 1) * PagingConstants.LevelBits;
    }

    public PagingLevel Level { get; }

    /// <summary>An entry covers 2^CoveredBits bytes of linear space: 21 for PDEs, 30 for PDPTEs, 39 for PML4Es, 48 for PML5Es.</summary>
    public int CoveredBits { get; }

    public int Capacity { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong KeyFor(ulong linear, ushort pcid) =>
        ValidBit | (((linear & ((1UL << PagingConstants.LinearBits5Level) - 1)) >> CoveredBits) << PcidBits) | pcid;

    /// <summary>Index of the entry with <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    int Find(ulong key)
    {
        for (int i = 0; i < paddedCapacity; i += 8)
        {
            ulong hits;
            if (Vector512.IsHardwareAccelerated)
            {
                hits = Vector512.Equals(Vector512.LoadAligned(keys + i), Vector512.Create(key)).ExtractMostSignificantBits();
            }
            else
            {
                var target = Vector256.Create(key);
                hits = Vector256.Equals(Vector256.LoadAligned(keys + i), target).ExtractMostSignificantBits()
                    | (Vector256.Equals(Vector256.LoadAligned(keys + i + 4), target).ExtractMostSignificantBits() << 4);
            }
            if (hits != 0) return i + BitOperations.TrailingZeroCount(hits);
        }
        return -1;
    }

    public bool TryGet(ulong linear, ushort pcid, out ulong nextTable, out TranslationAttributes rights)
    {
        int i = Find(KeyFor(linear, pcid));
        if (i < 0)
        {
            nextTable = 0;
            rights = default;
            return false;
        }
        MakeNewest(i);
        nextTable = nextTables[i];
        rights = (TranslationAttributes)rightsOf[i];
        return true;
    }

    /// <summary>Caches an entry the caller knows is not cached (its <see cref="TryGet"/> just missed): no search.</summary>
    public void InsertAbsent(ulong linear, ushort pcid, ulong nextTable, TranslationAttributes rights)
    {
        if (Capacity == 0) return;
        // An empty entry if there is one, else the least recently used.
        int entry = freeCount > 0 ? free[--freeCount] : oldest;
        keys[entry] = KeyFor(linear, pcid);
        nextTables[entry] = nextTable;
        rightsOf[entry] = (ulong)rights;
        MakeNewest(entry);
    }

    /// <summary>Moves an entry (in the list or just taken from the free stack) to the most recently used end.</summary>
    void MakeNewest(int entry)
    {
        if (entry == newest) return;
        if (newer[entry] != None) Unlink(entry); // in the list (not at the newest end, handled above)
        older[entry] = newest;
        newer[entry] = None;
        if (newest != None) newer[newest] = entry;
        newest = entry;
        if (oldest == None) oldest = entry;
    }

    void Unlink(int entry)
    {
        int n = newer[entry], o = older[entry];
        if (n != None) older[n] = o; else newest = o;
        if (o != None) newer[o] = n; else oldest = n;
        newer[entry] = older[entry] = None;
    }

    /// <summary>Drops every entry of one PCID, or of all PCIDs.</summary>
    public void Invalidate(ushort pcid, bool allPcids)
    {
        for (int i = 0; i < Capacity; i++)
            if (keys[i] != 0 && (allPcids || (keys[i] & ((1UL << PcidBits) - 1)) == pcid)) Drop(i);
    }

    /// <summary>Drops the entry of one PCID that covers <paramref name="linear"/>.</summary>
    public void InvalidateAddress(ulong linear, ushort pcid)
    {
        int i = Find(KeyFor(linear, pcid));
        if (i >= 0) Drop(i);
    }

    void Drop(int i)
    {
        keys[i] = 0;
        Unlink(i);
        free[freeCount++] = i;
    }

    public int Count
    {
        get
        {
            int count = 0;
            for (int i = 0; i < Capacity; i++) if (keys[i] != 0) count++;
            return count;
        }
    }
}
