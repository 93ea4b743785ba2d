using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace PageLab.Emulator.Paging;

/// <summary>What one TLB entry translates to, besides its tag.</summary>
public struct TlbEntryData
{
    /// <summary>Physical address of the first byte of the (possibly fractured) page.</summary>
    public ulong PhysicalBase;
    /// <summary>Host address of <see cref="PhysicalBase"/> when the page lies in one host chunk (pages up to 2 MiB); 0 otherwise.</summary>
    public nint HostBase;
    public TranslationAttributes Attributes;
    public byte ProtectionKey;
    /// <summary>The page size the paging structures map; larger than the entry's own size when the level fractured the page.</summary>
    public PageSize MappedSize;
}

/// <summary>
/// One set-associative array of translations. Tags are packed into one ulong per way so that a set is
/// searched with vector compares (no data-dependent branch per way):
/// bit 0 valid, bit 1 global, bits 2-3 page size, bits 4-15 PCID (0 for global entries), bits 16-63 page number.
/// </summary>
internal sealed class TlbArray
{
    const ulong ValidBit = 1;
    const ulong GlobalBit = 2;
    const int SizeShift = 2;
    const int PcidShift = 4;
    const int PageNumberShift = 16;
    const ulong PcidMask = 0xFFFUL << PcidShift;
    /// <summary>Canonical addresses repeat bit 56 (or 47) above it, so the low 57 bits identify a page.</summary>
    const ulong LinearMask = (1UL << PagingConstants.LinearBits5Level) - 1;

    readonly ulong[] tags;
    readonly TlbEntryData[] data;
    readonly ulong[] lastUse;   // LRU: the array's use counter when each way was last touched
    readonly ulong[] plruBits;  // tree-PLRU: one word of node bits per set
    readonly int stride;        // ways rounded up to 4 or a multiple of 8 (one vector of tags); padding tags stay 0 (invalid)
    readonly int setMask;
    readonly TlbReplacement replacement;
    ulong useCounter;
    ulong randomState;
    int lastTouched = -1;       // touching the most recently used entry again changes no policy state: skip it

    public TlbArray(TlbArrayConfig config, TlbReplacement replacement, ulong seed)
    {
        if (config.Sets <= 0 || !BitOperations.IsPow2(config.Sets) || config.Ways <= 0 || config.Ways > 128 || config.Sizes.Length == 0)
            throw new ArgumentException($"TLB array needs a power-of-two set count, 1..128 ways and at least one page size: {config}");
        Config = config;
        Ways = config.Ways;
        stride = config.Ways <= 4 ? 4 : (config.Ways + 7) & ~7;
        setMask = config.Sets - 1;
        this.replacement = replacement;
        tags = new ulong[config.Sets * stride];
        data = new TlbEntryData[config.Sets * stride];
        lastUse = new ulong[config.Sets * stride];
        plruBits = new ulong[config.Sets * 2];
        randomState = seed | 1;
        foreach (var size in config.Sizes) HeldSizes |= 1 << (int)size;
    }

    public TlbArrayConfig Config { get; }
    public int Ways { get; }

    /// <summary>Bit per <see cref="PageSize"/> this array holds.</summary>
    public int HeldSizes { get; }

    public bool Holds(PageSize size) => (HeldSizes & (1 << (int)size)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong PageNumber(ulong linear, PageSize size) => (linear & LinearMask) >> size.Bits();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong TagFor(ulong linear, PageSize size) =>
        (PageNumber(linear, size) << PageNumberShift) | ((ulong)size << SizeShift) | ValidBit;

    /// <summary>
    /// Finds the entry translating <paramref name="linear"/> at <paramref name="size"/> for <paramref name="pcid"/> (or global);
    /// -1 when absent. A set of up to 4 ways (8 with AVX-512) is one vector compare: no branch per way to mispredict.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Find(ulong linear, PageSize size, ushort pcid)
    {
        ulong pageNumber = PageNumber(linear, size);
        ulong tag = (pageNumber << PageNumberShift) | ((ulong)size << SizeShift) | ValidBit;
        ulong own = tag | ((ulong)pcid << PcidShift), global = tag | GlobalBit;
        int start = ((int)pageNumber & setMask) * stride;
        ref ulong set = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(tags), start);
        ulong hits;
        if (stride == 4)
            hits = Matches256(ref set, own, global);
        else if (stride == 8 && Vector512.IsHardwareAccelerated)
            hits = Matches512(ref set, own, global);
        else
            return FindInWideSet(ref set, start, own, global);
        return hits == 0 ? -1 : start + BitOperations.TrailingZeroCount(hits);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Matches256(ref ulong ways, ulong own, ulong global)
    {
        var tags = Vector256.LoadUnsafe(ref ways);
        return (Vector256.Equals(tags, Vector256.Create(own)) | Vector256.Equals(tags, Vector256.Create(global))).ExtractMostSignificantBits();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong Matches512(ref ulong ways, ulong own, ulong global)
    {
        var tags = Vector512.LoadUnsafe(ref ways);
        return (Vector512.Equals(tags, Vector512.Create(own)) | Vector512.Equals(tags, Vector512.Create(global))).ExtractMostSignificantBits();
    }

    /// <summary>Sets of more than 8 ways: compare up to 64 ways per block, branching once per block rather than per vector.</summary>
    int FindInWideSet(ref ulong set, int start, ulong own, ulong global)
    {
        for (int block = 0; block < stride; block += 64)
        {
            int end = Math.Min(stride, block + 64);
            ulong hits = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (int i = block; i < end; i += 8) hits |= Matches512(ref Unsafe.Add(ref set, i), own, global) << (i - block);
            }
            else
            {
                for (int i = block; i < end; i += 4) hits |= Matches256(ref Unsafe.Add(ref set, i), own, global) << (i - block);
            }
            if (hits != 0) return start + block + BitOperations.TrailingZeroCount(hits);
        }
        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref TlbEntryData Data(int index) => ref data[index];

    /// <summary>Records a use of the entry for the replacement policy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Touch(int index)
    {
        if (index == lastTouched) return;
        lastTouched = index;
        if (replacement == TlbReplacement.Lru) lastUse[index] = ++useCounter;
        else if (replacement == TlbReplacement.TreePlru) TouchPlru(index);
    }

    /// <summary>Inserts a translation, replacing an existing entry for the same page or the policy's victim.</summary>
    public void Insert(ulong linear, PageSize size, ushort pcid, in TlbEntryData entry)
    {
        bool isGlobal = (entry.Attributes & TranslationAttributes.Global) != 0;
        int index = Find(linear, size, pcid);
        if (index < 0)
        {
            int set = (int)PageNumber(linear, size) & setMask;
            index = set * stride + Victim(set);
        }
        tags[index] = TagFor(linear, size) | (isGlobal ? GlobalBit : (ulong)pcid << PcidShift);
        data[index] = entry;
        Touch(index);
    }

    int Victim(int set)
    {
        int start = set * stride;
        for (int way = 0; way < Ways; way++)
            if (tags[start + way] == 0) return way;
        switch (replacement)
        {
            case TlbReplacement.Lru:
                int oldest = 0;
                for (int way = 1; way < Ways; way++)
                    if (lastUse[start + way] < lastUse[start + oldest]) oldest = way;
                return oldest;
            case TlbReplacement.TreePlru:
                return PlruVictim(set);
            default:
                randomState ^= randomState << 13;
                randomState ^= randomState >> 7;
                randomState ^= randomState << 17;
                return (int)(randomState % (ulong)Ways);
        }
    }

    // Tree-PLRU over the ways rounded up to a power of two: node n has children 2n+1 and 2n+2; a node bit
    // of 0 means "the victim is on the left". Touching a way points every node on its path away from it.
    // Up to 128 ways need 127 node bits: two words per set.
    int PlruLeaves => (int)BitOperations.RoundUpToPowerOf2((uint)Ways);

    void TouchPlru(int index)
    {
        int set = index / stride, way = index - set * stride;
        int leaves = PlruLeaves, node = 0, low = 0, span = leaves;
        while (span > 1)
        {
            span >>= 1;
            bool right = way >= low + span;
            SetPlruBit(set, node, !right); // point away from the touched half
            if (right) low += span;
            node = 2 * node + (right ? 2 : 1);
        }
    }

    int PlruVictim(int set)
    {
        int node = 0, low = 0, span = PlruLeaves;
        while (span > 1)
        {
            span >>= 1;
            bool right = GetPlruBit(set, node);
            if (right) low += span;
            node = 2 * node + (right ? 2 : 1);
        }
        return Math.Min(low, Ways - 1); // leaves beyond the real ways fold onto the last way
    }

    bool GetPlruBit(int set, int node) => (plruBits[set * 2 + (node >> 6)] & (1UL << node)) != 0;

    void SetPlruBit(int set, int node, bool value)
    {
        ref ulong word = ref plruBits[set * 2 + (node >> 6)];
        word = value ? word | (1UL << node) : word & ~(1UL << node);
    }

    /// <summary>
    /// Invalidates entries for the page containing <paramref name="linear"/> that match the filter. A fractured entry
    /// goes when any address of the page the paging structures map is named, not only its own piece (SDM 4.10.2.3).
    /// </summary>
    public int InvalidateAddress(ulong linear, ushort pcid, bool includeGlobal)
    {
        int dropped = 0;
        for (int i = 0; i < tags.Length; i++)
        {
            ulong tag = tags[i];
            if (tag == 0) continue;
            int storedBits = ((PageSize)((tag >> SizeShift) & 3)).Bits();
            int mappedBits = data[i].MappedSize.Bits();
            if (((tag >> PageNumberShift) << storedBits) >> mappedBits != PageNumber(linear, data[i].MappedSize)) continue;
            if (!Matches(tag, pcid, allPcids: false, includeGlobal)) continue;
            tags[i] = 0;
            dropped++;
        }
        return dropped;
    }

    /// <summary>Invalidates every entry of one PCID (or all PCIDs), with or without global entries.</summary>
    public int InvalidateAll(ushort pcid, bool allPcids, bool includeGlobal)
    {
        int dropped = 0;
        for (int i = 0; i < tags.Length; i++)
        {
            ulong tag = tags[i];
            if (tag == 0 || !Matches(tag, pcid, allPcids, includeGlobal)) continue;
            tags[i] = 0;
            dropped++;
        }
        return dropped;
    }

    static bool Matches(ulong tag, ushort pcid, bool allPcids, bool includeGlobal)
    {
        if ((tag & GlobalBit) != 0) return includeGlobal;
        return allPcids || (ushort)((tag & PcidMask) >> PcidShift) == pcid;
    }

    /// <summary>Valid entries, for inspection (`info tlb`).</summary>
    public IEnumerable<(ulong Linear, PageSize Size, ushort Pcid, bool Global, TlbEntryData Data)> Entries()
    {
        for (int i = 0; i < tags.Length; i++)
        {
            ulong tag = tags[i];
            if (tag == 0) continue;
            var size = (PageSize)((tag >> SizeShift) & 3);
            ulong linear = (tag >> PageNumberShift) << size.Bits();
            if ((linear & (1UL << (PagingConstants.LinearBits5Level - 1))) != 0) linear |= ~LinearMask; // sign-extend
            yield return (linear, size, (ushort)((tag & PcidMask) >> PcidShift), (tag & GlobalBit) != 0, data[i]);
        }
    }
}
