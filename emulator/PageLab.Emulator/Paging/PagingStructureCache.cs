using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace PageLab.Emulator.Paging;

/// <summary>
/// One paging-structure cache (Intel SDM 4.10.3): it maps the upper bits of a linear address to the
/// physical address of the next paging structure, with the rights accumulated so far. E.g. the PDE
/// cache maps linear[56:21] to a page table, so a walk that hits it reads only the PTE.
/// Entries are tagged with the PCID; fully associative, LRU. This class owns the pinned storage; the walker works
/// through its <see cref="State"/> (raw pointers, no bounds checks: every walk probes every cache and a walk that
/// misses inserts into each).
/// </summary>
internal sealed unsafe class PagingStructureCache
{
    readonly ulong[] storage;
    readonly PagingStructureCacheState[] stateStorage = GC.AllocateArray<PagingStructureCacheState>(1, pinned: true);

    /// <param name="level">The level whose entries are cached: PDE cache = PageDirectory, and so on.</param>
    /// <param name="capacity">Entries; 0 disables the cache.</param>
    public PagingStructureCache(PagingLevel level, int capacity)
    {
        if (capacity is < 0 or > MaxCapacity)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"a paging-structure cache has 0..{MaxCapacity} entries");
        Level = level;
        int padded = (capacity + 7) & ~7;
        // Keys, then next tables, rights and the recency ring (two ints per entry: newer, older); 8 spare words so the
        // keys can start on a 64-byte boundary (a vector of eight is then one cache line).
        storage = GC.AllocateArray<ulong>(padded * 3 + capacity + 8, pinned: true);
        ulong* first = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(storage));
        ulong* keys = (ulong*)(((nuint)first + 63) & ~(nuint)63);
        State = (PagingStructureCacheState*)Unsafe.AsPointer(ref stateStorage[0]);
        *State = new PagingStructureCacheState
        {
            Keys = keys,
            NextTables = keys + padded,
            Rights = keys + padded * 2,
            Newer = (int*)(keys + padded * 3),
            Older = (int*)(keys + padded * 3) + capacity,
            Capacity = capacity,
            PaddedCapacity = padded,
            CoveredBits = PagingConstants.PageBits + ((int)level - 1) * PagingConstants.LevelBits,
        };
        // Every entry starts empty, in a ring in index order; which empty entry is taken first does not matter.
        for (int i = 0; i < capacity; i++)
        {
            State->Older[i] = (i + capacity - 1) % capacity;
            State->Newer[i] = (i + 1) % capacity;
        }
    }

    /// <summary>Entries a cache may have: every walk searches all of them, and real ones have a few dozen.</summary>
    public const int MaxCapacity = 4096;

    public PagingLevel Level { get; }

    /// <summary>The cache's entries and recency, in pinned memory.</summary>
    public PagingStructureCacheState* State { get; }

    /// <summary>Drops every entry of one PCID, or of all PCIDs.</summary>
    public void Invalidate(ushort pcid, bool allPcids)
    {
        for (int i = 0; i < State->Capacity; i++)
        {
            ulong key = State->Keys[i];
            if (key != 0 && (allPcids || (key & PagingStructureCacheState.PcidMask) == pcid)) State->Drop(i);
        }
    }

    /// <summary>Drops the entry of one PCID that covers <paramref name="linear"/>.</summary>
    public void InvalidateAddress(ulong linear, ushort pcid)
    {
        int i = State->Find(State->KeyFor(linear, pcid));
        if (i >= 0) State->Drop(i);
    }

    public int Count
    {
        get
        {
            int count = 0;
            for (int i = 0; i < State->Capacity; i++) if (State->Keys[i] != 0) count++;
            return count;
        }
    }
}

/// <summary>
/// The entries of one <see cref="PagingStructureCache"/> in pinned memory. Keys pack the valid bit, the linear bits
/// the entry covers and the PCID into one ulong (0 = empty), searched with vector compares. Recency is a ring of
/// every entry, empty ones included, doubly linked from the most recently used (<see cref="Newest"/>) to the least,
/// whose next-older link closes the ring back to the newest; empty entries sit at the old end. The entry to replace
/// is then always the one just past the newest (an empty one if any, else the least recently used), and filling it
/// makes it the newest without relinking anything: the ring's order already says so, only <see cref="Newest"/> moves.
/// </summary>
internal unsafe struct PagingStructureCacheState
{
    public const ulong PcidMask = (1UL << PcidBits) - 1;
    const ulong ValidBit = 1UL << 63;
    const int PcidBits = 12;

    public ulong* Keys;       // PaddedCapacity of them; padding keys stay 0
    public ulong* NextTables;
    public ulong* Rights;     // the TranslationAttributes accumulated above each entry
    public int* Newer;        // the recency ring: for each entry the next more and less recently used one
    public int* Older;
    public int Newest;
    public int Capacity;
    public int PaddedCapacity;
    public int CoveredBits;   // an entry covers 2^CoveredBits bytes: 21 for PDEs, 30 for PDPTEs, 39 for PML4Es, 48 for PML5Es

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong KeyFor(ulong linear, ushort pcid) =>
        ValidBit | (((linear & ((1UL << PagingConstants.LinearBits5Level) - 1)) >> CoveredBits) << PcidBits) | pcid;

    /// <summary>Index of the entry with <paramref name="key"/>, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Find(ulong key)
    {
        for (int i = 0; i < PaddedCapacity; i += 8)
        {
            ulong hits;
            if (Vector512.IsHardwareAccelerated)
            {
                hits = Vector512.Equals(Vector512.LoadAligned(Keys + i), Vector512.Create(key)).ExtractMostSignificantBits();
            }
            else
            {
                var target = Vector256.Create(key);
                hits = Vector256.Equals(Vector256.LoadAligned(Keys + i), target).ExtractMostSignificantBits()
                    | (Vector256.Equals(Vector256.LoadAligned(Keys + i + 4), target).ExtractMostSignificantBits() << 4);
            }
            if (hits != 0) return i + BitOperations.TrailingZeroCount(hits);
        }
        return -1;
    }

    /// <summary>Caches an entry the caller knows is not cached (its search just missed): no search.</summary>
    public void InsertAbsent(ulong key, ulong nextTable, TranslationAttributes rights)
    {
        if (Capacity == 0) return;
        // The oldest end of the ring: an empty entry if there is one, else the least recently used.
        int entry = Newer[Newest];
        Keys[entry] = key;
        NextTables[entry] = nextTable;
        Rights[entry] = (ulong)rights;
        Newest = entry;
    }

    /// <summary>Empties one entry: it moves to the oldest end of the ring, to be filled first.</summary>
    public void Drop(int entry)
    {
        Keys[entry] = 0;
        if (entry == Newest) Newest = Older[entry];
        MoveAfterNewest(entry);
    }

    /// <summary>Records a use of an entry (a walk started from it): it becomes the newest.</summary>
    public void Touch(int entry)
    {
        if (entry == Newest) return;
        MoveAfterNewest(entry);
        Newest = entry;
    }

    /// <summary>Takes an entry out of the ring and puts it back between the newest and the oldest.</summary>
    void MoveAfterNewest(int entry)
    {
        int newer = Newer[entry], older = Older[entry];
        Older[newer] = older;
        Newer[older] = newer;
        int oldest = Newer[Newest];
        Older[entry] = Newest;
        Newer[entry] = oldest;
        Newer[Newest] = entry;
        Older[oldest] = entry;
    }
}
