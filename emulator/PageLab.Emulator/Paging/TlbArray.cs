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
    /// <summary>Host address of <see cref="PhysicalBase"/> for pages up to 2 MiB (one counted chunk of physical memory); 0 otherwise.</summary>
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
/// without huge pages probes only the 4 KiB entries). Everything a lookup or a fill touches lives in pinned memory and
/// is reached through a <see cref="TlbArrayState"/>, so the MMU's miss path follows raw pointers, not object references
/// with their null and bounds checks.
/// </summary>
internal sealed unsafe class TlbArray
{
    // The pinned storage behind the state's pointers; kept here so that it lives as long as the array.
    readonly ulong[] tags;
    readonly TlbEntryData[] data;
    readonly ulong[] perSet;        // validWays and plruBits
    readonly ulong[] perWay;        // lastUse
    readonly ulong[] plruMasks;
    readonly TlbArrayState[] stateStorage;

    public TlbArray(TlbArrayConfig config, TlbReplacement replacement, ulong seed)
    {
        if (config.Sets <= 0 || !BitOperations.IsPow2(config.Sets) || config.Ways <= 0 || config.Ways > 128 || config.Sizes.Length == 0)
            throw new ArgumentException($"TLB array needs a power-of-two set count, 1..128 ways and at least one page size: {config}");
        if ((long)config.Sets * BitOperations.RoundUpToPowerOf2((uint)config.Ways) > MaxEntries)
            throw new ArgumentException($"TLB array of more than {MaxEntries} entries (ways rounded up to a power of two): {config}");
        Config = config;
        Ways = config.Ways;
        int leaves = (int)BitOperations.RoundUpToPowerOf2((uint)Ways);
        int stride = Math.Max(4, leaves);
        int entries = config.Sets * stride;
        tags = GC.AllocateArray<ulong>(entries, pinned: true);
        data = GC.AllocateArray<TlbEntryData>(entries, pinned: true);
        perSet = GC.AllocateArray<ulong>(config.Sets * 4, pinned: true);
        perWay = GC.AllocateArray<ulong>(entries, pinned: true);
        for (int i = 0; i < entries; i++)
            if ((i & (stride - 1)) >= Ways) perWay[i] = ulong.MaxValue; // padding ways are never the least recently used
        plruMasks = TlbArrayState.PlruTouchMasks(leaves);
        stateStorage = GC.AllocateArray<TlbArrayState>(1, pinned: true);
        State = (TlbArrayState*)Unsafe.AsPointer(ref stateStorage[0]);
        *State = new TlbArrayState
        {
            Tags = Pin(tags),
            Data = (TlbEntryData*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(data)),
            ValidWays = Pin(perSet),
            PlruBits = Pin(perSet) + config.Sets * 2,
            PlruTouchSet = Pin(plruMasks),
            PlruTouchClear = Pin(plruMasks) + leaves * 2,
            LastUse = Pin(perWay),
            SetMask = config.Sets - 1,
            StrideBits = BitOperations.Log2((uint)stride),
            Ways = Ways,
            PlruLeaves = leaves,
            PlruReadNodesLow = TlbArrayState.PlruNodesWithRealWaysOnTheRight(leaves, Ways, word: 0),
            PlruReadNodesHigh = TlbArrayState.PlruNodesWithRealWaysOnTheRight(leaves, Ways, word: 1),
            WaysMaskLow = Ways >= 64 ? ulong.MaxValue : (1UL << Ways) - 1,
            WaysMaskHigh = Ways <= 64 ? 0 : Ways == 128 ? ulong.MaxValue : (1UL << (Ways - 64)) - 1,
            Replacement = replacement,
            RandomState = seed | 1,
            LastTouched = -1,
        };
        foreach (var size in config.Sizes) HeldSizes |= 1 << (int)size;
    }

    static ulong* Pin(ulong[] pinned) => (ulong*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(pinned));

    /// <summary>Entries an array may have, padding ways included: far beyond any real TLB, and its storage stays addressable by int.</summary>
    public const int MaxEntries = 1 << 20;

    public TlbArrayConfig Config { get; }
    public int Ways { get; }

    /// <summary>The array's lookup and replacement state, in pinned memory.</summary>
    public TlbArrayState* State { get; }

    /// <summary>Bit per <see cref="PageSize"/> this array holds.</summary>
    public int HeldSizes { get; }

    public bool Holds(PageSize size) => (HeldSizes & (1 << (int)size)) != 0;

    /// <summary>The search of this array at <paramref name="size"/>; <paramref name="arrayIndex"/> is the array's index in its level.</summary>
    public TlbProbe ProbeFor(PageSize size, int arrayIndex) => new()
    {
        Array = State,
        Tags = State->Tags,
        ValidCount = &State->ValidBySize[(int)size],
        SetMask = State->SetMask,
        StrideBits = State->StrideBits,
        Size = size,
        ArrayIndex = arrayIndex,
    };

    /// <summary>
    /// Invalidates entries for the page containing <paramref name="linear"/> that match the filter. A fractured entry
    /// goes when any address of the page the paging structures map is named, not only its own piece (SDM 4.10.2.3).
    /// Every page fault and INVLPG comes here: unless the array holds fractured pieces (which may sit in any set), only
    /// the set the address selects at each page size can hold a matching entry, so only those sets are looked at.
    /// </summary>
    public int InvalidateAddress(ulong linear, ushort pcid, bool includeGlobal)
    {
        if (State->FracturedEntries != 0)
            return InvalidateAddressIn(0, tags.Length, linear, pcid, includeGlobal);
        int dropped = 0;
        for (var size = PageSize.Size4K; size <= PageSize.Size1G; size++)
        {
            if (State->ValidBySize[(int)size] == 0) continue;
            int start = ((int)TlbTag.PageNumber(linear, size) & State->SetMask) << State->StrideBits;
            dropped += InvalidateAddressIn(start, start + Ways, linear, pcid, includeGlobal);
        }
        return dropped;
    }

    int InvalidateAddressIn(int from, int to, ulong linear, ushort pcid, bool includeGlobal)
    {
        int dropped = 0;
        for (int i = from; i < to; i++)
        {
            ulong tag = tags[i];
            if (tag == 0) continue;
            int storedBits = TlbTag.SizeOf(tag).Bits();
            int mappedBits = data[i].MappedSize.Bits();
            if (((tag >> TlbTag.PageNumberShift) << storedBits) >> mappedBits != TlbTag.PageNumber(linear, data[i].MappedSize)) continue;
            if (!Matches(tag, pcid, allPcids: false, includeGlobal)) continue;
            State->Drop(i);
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
            State->Drop(i);
            dropped++;
        }
        return dropped;
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

/// <summary>
/// The hot state of one <see cref="TlbArray"/>, in pinned memory: pointers to its tags, entries and replacement state,
/// its shape, and the operations a lookup and a fill perform. Reached by pointer from the MMU's probes.
/// </summary>
internal unsafe struct TlbArrayState
{
    public ulong* Tags;
    public TlbEntryData* Data;
    public ulong* ValidWays;        // per set, two words: bit per way holding a valid entry (way w: bit w % 64 of word w / 64)
    public ulong* PlruBits;         // tree-PLRU: two words of node bits per set
    public ulong* PlruTouchSet;     // tree-PLRU: per way, two words each: the node bits a touch of that way sets...
    public ulong* PlruTouchClear;   // ...and the ones it clears
    public ulong* LastUse;          // LRU: the use counter when each way was last touched; padding ways ulong.MaxValue
    public int SetMask;
    public int StrideBits;          // log2 of the ways per set including padding: at least 4 ways (one 256-bit vector)
    public int Ways;
    public int PlruLeaves;          // the ways rounded up to a power of two
    public ulong PlruReadNodesLow, PlruReadNodesHigh; // tree-PLRU: the nodes whose bit a descent reads (see PlruVictim)
    public ulong WaysMaskLow, WaysMaskHigh; // the bits of the real ways in a set's two valid-way words
    public TlbReplacement Replacement;
    public ulong UseCounter;
    public ulong RandomState;
    public int LastTouched;         // touching the most recently used entry again changes no policy state: skip it
    public ValidCounts ValidBySize; // valid entries of each page size
    public int FracturedEntries;    // valid entries holding a piece of a larger page

    [InlineArray(3)]
    public struct ValidCounts
    {
        int first;
    }

    readonly int Stride => 1 << StrideBits;

    /// <summary>The entry translating <paramref name="linear"/> at <paramref name="size"/> for <paramref name="pcid"/> (or global); -1 when absent.</summary>
    public readonly int Find(ulong linear, PageSize size, ushort pcid) => TlbProbe.Find(Tags, SetMask, StrideBits, linear, size, pcid);

    /// <summary>Records a use of the entry for the replacement policy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Touch(int index)
    {
        if (index == LastTouched) return;
        LastTouched = index;
        if (Replacement == TlbReplacement.TreePlru) TouchPlru(index);
        else if (Replacement == TlbReplacement.Lru) LastUse[index] = ++UseCounter;
    }

    /// <summary>
    /// Stores a translation at <paramref name="index"/> (an entry for the same page), or, when it is -1, in the
    /// policy's victim of the page's set.
    /// </summary>
    public void Insert(int index, ulong linear, PageSize size, ushort pcid, in TlbEntryData entry)
    {
        // The shape is read into locals once: stores through the array pointers below could alias this struct, so the
        // JIT would otherwise reload every field after each of them.
        int strideBits = StrideBits;
        int set, way;
        ulong plruAfterTouch = 0; // the set's tree-PLRU bits once the victim is touched, when the descent gave them
        if (index < 0)
        {
            set = (int)TlbTag.PageNumber(linear, size) & SetMask;
            way = Victim(set, strideBits, ref plruAfterTouch);
            index = (set << strideBits) + way;
        }
        else
        {
            set = index >> strideBits;
            way = index & ((1 << strideBits) - 1);
        }
        TlbEntryData* slot = Data + index;
        ulong old = Tags[index];
        // Counts change only where sizes differ: a read-modify-write of a counter picked by a loaded value, followed by
        // one of the counter the new size picks, makes the CPU wait to learn whether the two are the same.
        if (old == 0)
        {
            ValidBySize[(int)size]++;
            ValidWays[set * 2 + (way >> 6)] |= 1UL << (way & 63);
            if (entry.MappedSize != size) FracturedEntries++;
        }
        else
        {
            var oldSize = TlbTag.SizeOf(old);
            if (oldSize != size)
            {
                ValidBySize[(int)oldSize]--;
                ValidBySize[(int)size]++;
            }
            int fractured = (entry.MappedSize != size ? 1 : 0) - (slot->MappedSize != oldSize ? 1 : 0);
            if (fractured != 0) FracturedEntries += fractured;
        }
        bool isGlobal = (entry.Attributes & TranslationAttributes.Global) != 0;
        Tags[index] = TlbTag.For(linear, size) | (isGlobal ? TlbTag.GlobalBit : TlbTag.Pcid(pcid));
        *slot = entry;
        if (plruAfterTouch != 0)
        {
            PlruBits[set * 2] = plruAfterTouch;
            LastTouched = index;
        }
        else
        {
            Touch(index);
        }
    }

    /// <summary>Invalidates one entry.</summary>
    public void Drop(int index)
    {
        Forget(index, Tags[index]);
        ValidWays[ValidWayWord(index)] &= ~ValidWayBit(index);
        Tags[index] = 0;
    }

    /// <summary>Takes a valid entry out of the counts, before it is dropped or replaced.</summary>
    void Forget(int index, ulong tag)
    {
        var size = TlbTag.SizeOf(tag);
        ValidBySize[(int)size]--;
        if (Data[index].MappedSize != size) FracturedEntries--;
    }

    readonly int ValidWayWord(int index) => (index >> StrideBits) * 2 + ((index & (Stride - 1)) >> 6);

    readonly ulong ValidWayBit(int index) => 1UL << (index & (Stride - 1) & 63);

    /// <summary>
    /// The way to replace in <paramref name="set"/>: the first empty way, else the policy's choice. A tree-PLRU descent
    /// that ends on a real way also gives the set's bits after that way is touched (<paramref name="plruAfterTouch"/>,
    /// else left 0): the fill then stores them instead of touching the way again.
    /// </summary>
    int Victim(int set, int strideBits, ref ulong plruAfterTouch)
    {
        ulong empty = ~ValidWays[set * 2] & WaysMaskLow;
        if (empty != 0) return BitOperations.TrailingZeroCount(empty);
        empty = ~ValidWays[set * 2 + 1] & WaysMaskHigh;
        if (empty != 0) return 64 + BitOperations.TrailingZeroCount(empty);
        switch (Replacement)
        {
            case TlbReplacement.TreePlru:
                return PlruVictim(set, ref plruAfterTouch);
            case TlbReplacement.Lru:
                return LeastRecentlyUsed(set << strideBits);
            default:
                RandomState ^= RandomState << 13;
                RandomState ^= RandomState >> 7;
                RandomState ^= RandomState << 17;
                return (int)(RandomState % (ulong)Ways);
        }
    }

    /// <summary>The first way with the smallest use count (padding ways hold ulong.MaxValue and never win).</summary>
    readonly int LeastRecentlyUsed(int start)
    {
        var uses = new ReadOnlySpan<ulong>(LastUse + start, Stride);
        var min = Vector256.Create(ulong.MaxValue);
        for (int i = 0; i < uses.Length; i += 4) min = Vector256.Min(min, Vector256.Create(uses.Slice(i, 4)));
        return uses.IndexOf(Math.Min(Math.Min(min[0], min[1]), Math.Min(min[2], min[3])));
    }

    // Tree-PLRU over the ways rounded up to a power of two: node n has children 2n+1 and 2n+2; a node bit of 0 means
    // "the victim is on the left". With a way count that is not a power of two, the tree is pruned of the missing
    // leaves: a node with no real way on its right always leads left (see PlruVictim). Folding such descents onto the
    // last real way instead would let every touch on that side point the node at the missing ways for good, and the
    // real ways between would never be evicted again (ways 16-22 of a full 24-way set, way 4 of a 6-way one).
    // Touching a way points every node on its path away from it; which bits that sets and clears depends only on the
    // way, so it is computed once per way: the masks of every way to set (first leaves * 2 words) and to clear (next
    // leaves * 2). Up to 128 ways need 127 node bits: two words per set.
    public static ulong[] PlruTouchMasks(int leaves)
    {
        var masks = GC.AllocateArray<ulong>(leaves * 4, pinned: true);
        for (int way = 0; way < leaves; way++)
        {
            int node = 0, low = 0, span = leaves;
            while (span > 1)
            {
                span >>= 1;
                bool right = way >= low + span;
                masks[(right ? leaves * 2 : 0) + way * 2 + (node >> 6)] |= 1UL << node; // point away from the touched half
                if (right) low += span;
                node = 2 * node + (right ? 2 : 1);
            }
        }
        return masks;
    }

    /// <summary>
    /// One word (0: nodes 0-63, 1: nodes 64-126) of the mask of tree nodes whose right side holds at least one of the
    /// <paramref name="ways"/> real ways: the nodes whose bit a descent reads. The others always lead left.
    /// </summary>
    public static ulong PlruNodesWithRealWaysOnTheRight(int leaves, int ways, int word)
    {
        ulong mask = 0;
        for (int node = word * 64; node < Math.Min(leaves - 1, word * 64 + 64); node++)
        {
            int depth = BitOperations.Log2((uint)node + 1), span = leaves >> depth;
            int first = (node + 1 - (1 << depth)) * span; // the first leaf under the node
            if (first + span / 2 < ways) mask |= 1UL << (node & 63);
        }
        return mask;
    }

    readonly void TouchPlru(int index)
    {
        int set = index >> StrideBits, way = index & (Stride - 1);
        ulong* bits = PlruBits + set * 2;
        bits[0] = (bits[0] & ~PlruTouchClear[way * 2]) | PlruTouchSet[way * 2];
        if (PlruLeaves > 64) bits[1] = (bits[1] & ~PlruTouchClear[way * 2 + 1]) | PlruTouchSet[way * 2 + 1];
    }

    readonly int PlruVictim(int set, ref ulong plruAfterTouch)
    {
        // Branch-free descent: which way each node points is as good as random, so a branch on it would mispredict.
        // A node whose right side holds no real way leads left whatever its bit: the mask clears those bits first.
        ulong low64 = PlruBits[set * 2], high64 = PlruBits[set * 2 + 1] & PlruReadNodesHigh;
        ulong read64 = low64 & PlruReadNodesLow;
        int node = 0, way = 0;
        ulong path = 0; // the nodes visited below 64
        for (int span = PlruLeaves >> 1; span > 0; span >>= 1)
        {
            ulong word = node < 64 ? read64 : high64;
            int right = (int)(word >> node) & 1;
            path |= node < 64 ? 1UL << node : 0;
            way += span & -right;
            node = 2 * node + 1 + right;
        }
        // Every node on the path points towards the victim, and touching the victim points each away: flipping the
        // path's bits does that. (At a node the mask made lead left, what the flip leaves does not matter: it is never read.)
        if (PlruLeaves <= 64) plruAfterTouch = low64 ^ path;
        return way;
    }
}
