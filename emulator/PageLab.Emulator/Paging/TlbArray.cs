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
/// One set-associative array of translations. Tags (<see cref="TlbTag"/>) are packed into one ulong per way so that a
/// set is searched with vector compares (no data-dependent branch per way). Sets are laid out a power of two of ways
/// apart (padding tags stay 0, invalid), so an index splits into set and way with a shift and a mask. The array counts
/// its valid entries of each page size, so that a level skips probing for a size the array holds none of (a guest
/// without huge pages probes only the 4 KiB entries). Tags, entries and counts live in pinned arrays, searched
/// through <see cref="TlbProbe"/>s.
/// </summary>
internal sealed unsafe class TlbArray
{
    readonly ulong[] tags;
    readonly TlbEntryData[] data;
    readonly int[] validBySize;
    readonly ulong[] validWays;     // per set, two words: bit per way holding a valid entry
    readonly ulong waysMaskLow, waysMaskHigh; // the bits of the real ways in those two words
    readonly ulong[] lastUse;       // LRU: the array's use counter when each way was last touched; padding ways ulong.MaxValue
    readonly ulong[] plruBits;      // tree-PLRU: two words of node bits per set
    readonly ulong[] plruTouchSet;  // tree-PLRU: per way, two words each: the node bits a touch of that way sets...
    readonly ulong[] plruTouchClear; // ...and the ones it clears
    readonly int strideBits;        // log2 of the ways per set including padding: at least 4 ways (one 256-bit vector)
    readonly int stride;
    readonly int setMask;
    readonly int plruLeaves;        // the ways rounded up to a power of two
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
        plruLeaves = (int)BitOperations.RoundUpToPowerOf2((uint)Ways);
        stride = Math.Max(4, plruLeaves);
        strideBits = BitOperations.Log2((uint)stride);
        setMask = config.Sets - 1;
        this.replacement = replacement;
        tags = GC.AllocateArray<ulong>(config.Sets * stride, pinned: true);
        data = GC.AllocateArray<TlbEntryData>(config.Sets * stride, pinned: true);
        validBySize = GC.AllocateArray<int>(3, pinned: true);
        validWays = new ulong[config.Sets * 2];
        waysMaskLow = Ways >= 64 ? ulong.MaxValue : (1UL << Ways) - 1;
        waysMaskHigh = Ways <= 64 ? 0 : Ways == 128 ? ulong.MaxValue : (1UL << (Ways - 64)) - 1;
        lastUse = new ulong[config.Sets * stride];
        for (int i = 0; i < lastUse.Length; i++)
            if ((i & (stride - 1)) >= Ways) lastUse[i] = ulong.MaxValue; // never the least recently used
        plruBits = new ulong[config.Sets * 2];
        (plruTouchSet, plruTouchClear) = PlruTouchMasks(plruLeaves);
        randomState = seed | 1;
        foreach (var size in config.Sizes) HeldSizes |= 1 << (int)size;
    }

    public TlbArrayConfig Config { get; }
    public int Ways { get; }

    /// <summary>Bit per <see cref="PageSize"/> this array holds.</summary>
    public int HeldSizes { get; }

    public bool Holds(PageSize size) => (HeldSizes & (1 << (int)size)) != 0;

    /// <summary>The search of this array at <paramref name="size"/>; <paramref name="arrayIndex"/> is the array's index in its level.</summary>
    public TlbProbe ProbeFor(PageSize size, int arrayIndex) => new()
    {
        Tags = (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(tags)),
        Data = (TlbEntryData*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(data)),
        ValidCount = (int*)Unsafe.AsPointer(ref validBySize[(int)size]),
        SetMask = setMask,
        StrideBits = strideBits,
        Size = size,
        Array = arrayIndex,
    };

    int SetStart(ulong linear, PageSize size) => ((int)TlbTag.PageNumber(linear, size) & setMask) << strideBits;

    /// <summary>The entry translating <paramref name="linear"/> at <paramref name="size"/> for <paramref name="pcid"/> (or global); -1 when absent.</summary>
    public int Find(ulong linear, PageSize size, ushort pcid) => ProbeFor(size, 0).Find(linear, pcid);

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

    /// <summary>
    /// Inserts a translation, replacing an existing entry for the same page or the policy's victim.
    /// <paramref name="knownAbsent"/> says the caller's search of this array just missed, so the search is not repeated.
    /// </summary>
    public void Insert(ulong linear, PageSize size, ushort pcid, in TlbEntryData entry, bool knownAbsent)
    {
        bool isGlobal = (entry.Attributes & TranslationAttributes.Global) != 0;
        int index = knownAbsent ? -1 : Find(linear, size, pcid);
        if (index < 0)
        {
            int start = SetStart(linear, size);
            index = start + Victim(start);
        }
        ulong old = tags[index];
        if (old != 0) validBySize[(int)TlbTag.SizeOf(old)]--;
        validBySize[(int)size]++;
        ValidWayWord(index) |= ValidWayBit(index);
        tags[index] = TlbTag.For(linear, size) | (isGlobal ? TlbTag.GlobalBit : TlbTag.Pcid(pcid));
        data[index] = entry;
        Touch(index);
    }

    /// <summary>The word of <see cref="validWays"/> holding the entry's bit, and the bit: way w of a set is bit w % 64 of word w / 64.</summary>
    ref ulong ValidWayWord(int index) => ref validWays[(index >> strideBits) * 2 + ((index & (stride - 1)) >> 6)];

    ulong ValidWayBit(int index) => 1UL << (index & (stride - 1) & 63);

    /// <summary>The way to replace in the set at <paramref name="start"/>: the first empty way, else the policy's choice.</summary>
    int Victim(int start)
    {
        int set = start >> strideBits;
        ulong empty = ~validWays[set * 2] & waysMaskLow;
        if (empty != 0) return BitOperations.TrailingZeroCount(empty);
        empty = ~validWays[set * 2 + 1] & waysMaskHigh;
        if (empty != 0) return 64 + BitOperations.TrailingZeroCount(empty);
        switch (replacement)
        {
            case TlbReplacement.Lru:
                return LeastRecentlyUsed(start);
            case TlbReplacement.TreePlru:
                return PlruVictim(start >> strideBits);
            default:
                randomState ^= randomState << 13;
                randomState ^= randomState >> 7;
                randomState ^= randomState << 17;
                return (int)(randomState % (ulong)Ways);
        }
    }

    /// <summary>The first way with the smallest use count (padding ways hold ulong.MaxValue and never win).</summary>
    int LeastRecentlyUsed(int start)
    {
        var uses = new ReadOnlySpan<ulong>(lastUse, start, stride);
        var min = Vector256.Create(ulong.MaxValue);
        for (int i = 0; i < stride; i += 4) min = Vector256.Min(min, Vector256.Create(uses.Slice(i, 4)));
        return uses.IndexOf(Math.Min(Math.Min(min[0], min[1]), Math.Min(min[2], min[3])));
    }

    // Tree-PLRU over the ways rounded up to a power of two: node n has children 2n+1 and 2n+2; a node bit of 0 means
    // "the victim is on the left". Touching a way points every node on its path away from it; which bits that sets
    // and clears depends only on the way, so it is computed once per way here. Up to 128 ways need 127 node bits:
    // two words per set.
    static (ulong[] Set, ulong[] Clear) PlruTouchMasks(int leaves)
    {
        var set = new ulong[leaves * 2];
        var clear = new ulong[leaves * 2];
        for (int way = 0; way < leaves; way++)
        {
            int node = 0, low = 0, span = leaves;
            while (span > 1)
            {
                span >>= 1;
                bool right = way >= low + span;
                ref ulong word = ref (right ? clear : set)[way * 2 + (node >> 6)];
                word |= 1UL << node; // point away from the touched half
                if (right) low += span;
                node = 2 * node + (right ? 2 : 1);
            }
        }
        return (set, clear);
    }

    void TouchPlru(int index)
    {
        int set = index >> strideBits, way = index & (stride - 1);
        ref ulong bits = ref plruBits[set * 2];
        bits = (bits & ~plruTouchClear[way * 2]) | plruTouchSet[way * 2];
        if (plruLeaves > 64)
        {
            ref ulong high = ref plruBits[set * 2 + 1];
            high = (high & ~plruTouchClear[way * 2 + 1]) | plruTouchSet[way * 2 + 1];
        }
    }

    int PlruVictim(int set)
    {
        // Branch-free descent: which way each node points is as good as random, so a branch on it would mispredict.
        // Up to 64 leaves every node bit lies in the set's first word.
        ulong low64 = plruBits[set * 2], high64 = plruBits[set * 2 + 1];
        int node = 0, way = 0;
        for (int span = plruLeaves >> 1; span > 0; span >>= 1)
        {
            ulong word = node < 64 ? low64 : high64;
            int right = (int)(word >> node) & 1;
            way += span & -right;
            node = 2 * node + 1 + right;
        }
        return Math.Min(way, Ways - 1); // leaves beyond the real ways fold onto the last way
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
            int storedBits = TlbTag.SizeOf(tag).Bits();
            int mappedBits = data[i].MappedSize.Bits();
            if (((tag >> TlbTag.PageNumberShift) << storedBits) >> mappedBits != TlbTag.PageNumber(linear, data[i].MappedSize)) continue;
            if (!Matches(tag, pcid, allPcids: false, includeGlobal)) continue;
            Drop(i);
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
            Drop(i);
            dropped++;
        }
        return dropped;
    }

    void Drop(int index)
    {
        validBySize[(int)TlbTag.SizeOf(tags[index])]--;
        ValidWayWord(index) &= ~ValidWayBit(index);
        tags[index] = 0;
    }

    static bool Matches(ulong tag, ushort pcid, bool allPcids, bool includeGlobal)
    {
        if ((tag & TlbTag.GlobalBit) != 0) return includeGlobal;
        return allPcids || TlbTag.PcidOf(tag) == pcid;
    }

    /// <summary>Valid entries, for inspection (`info tlb`).</summary>
    public IEnumerable<(ulong Linear, PageSize Size, ushort Pcid, bool Global, TlbEntryData Data)> Entries()
    {
        for (int i = 0; i < tags.Length; i++)
        {
            ulong tag = tags[i];
            if (tag == 0) continue;
            var size = TlbTag.SizeOf(tag);
            ulong linear = (tag >> TlbTag.PageNumberShift) << size.Bits();
            if ((linear & (1UL << (PagingConstants.LinearBits5Level - 1))) != 0) linear |= ~TlbTag.LinearMask; // sign-extend
            yield return (linear, size, TlbTag.PcidOf(tag), (tag & TlbTag.GlobalBit) != 0, data[i]);
        }
    }
}
