using System.Runtime.CompilerServices;
using PageLab.Emulator.Memory;

namespace PageLab.Emulator.Paging;

/// <summary>
/// The memory-management unit: every guest access is looked up in the modeled TLB hierarchy and, on a
/// miss, translated by walking the 4- or 5-level page tables held as bytes in <see cref="PhysicalMemory"/>
/// (Intel SDM Vol. 3A ch. 4). It sets A/D bits in those bytes, fills the TLBs and paging-structure
/// caches, and keeps stale translations until software invalidates them, as hardware does.
/// Faults are returned as values.
/// </summary>
[SkipLocalsInit] // struct locals (walk records, entries) are assigned before use: zeroing them cost every lookup
public sealed unsafe class Mmu
{
    const ulong Cr3NoFlushBit = 1UL << 63;
    const ulong PcidMask = 0xFFF;

    readonly TlbLevel[] levels;
    readonly TlbLevelCounters[] levelCounters;
    // The levels an instruction fetch and a data access look up, in order, with each level's probes and fill
    // targets: pinned, so that a lookup reaches them without object loads.
    readonly ChainLevel* fetchChain;
    readonly ChainLevel* dataChain;
    readonly int fetchChainLength;
    readonly int dataChainLength;
    readonly ChainLevel[] chainStorage;
    // Indexed by PagingLevel of the cached entry: [2] PDE cache ... [5] PML5E cache; their states, pinned, for the walk.
    readonly PagingStructureCache[] structureCaches = new PagingStructureCache[6];
    readonly nint[] structureCacheStateStorage = GC.AllocateArray<nint>(6, pinned: true);
    readonly PagingStructureCacheState** structureCacheStates;
    readonly ulong[] codeFrames;
    // Per level (x2: without / with PS) the entry bits that must be 0: bits 51:MAXPHYADDR, bit 63 without NXE, and
    // the level's own. Recomputed when NXE changes.
    readonly ulong[] reservedBitsStorage = GC.AllocateArray<ulong>(12, pinned: true);
    readonly ulong* reservedBits;
    readonly ulong addressMask; // bits MAXPHYADDR-1:12
    AccessContext context;
    ushort pcid;
    // Bit (kind * 8 + (attributes & 7)) is 1 when the R/W, U/S, XD attributes allow that access kind in the current
    // context, protection keys aside: the TLB-hit check is one shift. Recomputed when the context changes.
    uint allowedAccesses;
    bool protectionKeysOn;
    // What a walk produced, for the lookup to return by reference like a TLB entry.
    TlbEntryData walked;
    LastHits lastHits;

    /// <summary>
    /// The last first-level TLB hit of one access kind, so that the next access to the same 4 KiB page skips the
    /// search. It is that same TLB entry: the hit is counted and the entry touched exactly as a search would. Anything
    /// that changes a TLB level, the PCID, the control bits or the privilege context forgets it (<see cref="ForgetLastHits"/>).
    /// </summary>
    struct LastHit
    {
        public const ulong NoPage = ulong.MaxValue;
        public ulong Page;  // linear >> 12, NoPage when empty
        public byte* Host;  // host address of that 4 KiB page
        public ulong Frame; // its physical frame number, for code-frame write notification
        public bool FirstLevel; // the lookup that filled this hit found the entry in the first level
        public TlbArrayState* Array;
        public int Index;
        public TlbLevelCounters? Counters;
        public int Size;
    }

    /// <summary>One level of a lookup chain: the level's index and its probes.</summary>
    struct ChainLevel
    {
        public int Level;
        public TlbProbe* Probes;
        public int ProbeCount;
        public FillTargets Fills;

        /// <summary>Where this level caches a translation of each page size (null: not at all) and the size it stores.</summary>
        public struct FillTargets
        {
            public TlbArrayState* Array4K, Array2M, Array1G;
            public PageSize StoredAs4K, StoredAs2M, StoredAs1G;
        }

        public readonly TlbArrayState* FillTarget(PageSize size, out PageSize storedAs)
        {
            switch (size)
            {
                case PageSize.Size4K: storedAs = Fills.StoredAs4K; return Fills.Array4K;
                case PageSize.Size2M: storedAs = Fills.StoredAs2M; return Fills.Array2M;
                default: storedAs = Fills.StoredAs1G; return Fills.Array1G;
            }
        }
    }

    [InlineArray(3)]
    struct LastHits
    {
        LastHit first;
    }

    void ForgetLastHits()
    {
        lastHits[0].Page = LastHit.NoPage;
        lastHits[1].Page = LastHit.NoPage;
        lastHits[2].Page = LastHit.NoPage;
    }

    /// <param name="memory">Physical memory holding page tables and data.</param>
    /// <param name="tlb">Shape of the TLB hierarchy and paging-structure caches.</param>
    /// <param name="maxPhysicalAddressBits">MAXPHYADDR: entry bits from here to 51 are reserved.</param>
    /// <param name="flags">Initial control bits; CR0.PG and long mode are implied.</param>
    public Mmu(PhysicalMemory memory, TlbConfig tlb, int maxPhysicalAddressBits = 46, ControlFlags flags = ControlFlags.LinuxDefault)
    {
        if (maxPhysicalAddressBits is < 32 or > PagingConstants.MaxPhysicalAddressBitsLimit)
            throw new ArgumentOutOfRangeException(nameof(maxPhysicalAddressBits), "MAXPHYADDR must be 32..52");
        if (memory.Size > 1UL << maxPhysicalAddressBits)
            throw new ArgumentException($"{memory.Size} bytes of memory do not fit in MAXPHYADDR {maxPhysicalAddressBits}");
        Memory = memory;
        Config = tlb;
        MaxPhysicalAddressBits = maxPhysicalAddressBits;
        addressMask = ((1UL << maxPhysicalAddressBits) - 1) & ~PagingConstants.PageMask;
        levels = tlb.Levels.Select((l, i) => new TlbLevel(l, tlb.Seed * 1000 + (ulong)i * 16)).ToArray();
        int[] fetchLevels = LevelsServing(TlbLevelKind.Instruction), dataLevels = LevelsServing(TlbLevelKind.Data);
        chainStorage = GC.AllocateArray<ChainLevel>(fetchLevels.Length + dataLevels.Length, pinned: true);
        int n = 0;
        foreach (int li in fetchLevels.Concat(dataLevels))
        {
            var level = levels[li];
            var fills = new ChainLevel.FillTargets
            {
                Array4K = level.FillTarget(PageSize.Size4K, out var as4K),
                Array2M = level.FillTarget(PageSize.Size2M, out var as2M),
                Array1G = level.FillTarget(PageSize.Size1G, out var as1G),
                StoredAs4K = as4K,
                StoredAs2M = as2M,
                StoredAs1G = as1G,
            };
            chainStorage[n++] = new ChainLevel { Level = li, Probes = level.Probes, ProbeCount = level.ProbeCount, Fills = fills };
        }
        fetchChain = (ChainLevel*)Unsafe.AsPointer(ref chainStorage[0]);
        fetchChainLength = fetchLevels.Length;
        dataChain = fetchChain + fetchLevels.Length;
        dataChainLength = dataLevels.Length;
        var psc = tlb.PagingStructureCaches;
        structureCaches[2] = new PagingStructureCache(PagingLevel.PageDirectory, psc.PdEntries);
        structureCaches[3] = new PagingStructureCache(PagingLevel.Pdpt, psc.PdptEntries);
        structureCaches[4] = new PagingStructureCache(PagingLevel.Pml4, psc.Pml4Entries);
        structureCaches[5] = new PagingStructureCache(PagingLevel.Pml5, psc.Pml5Entries);
        structureCacheStates = (PagingStructureCacheState**)Unsafe.AsPointer(ref structureCacheStateStorage[0]);
        for (int i = 2; i < structureCaches.Length; i++) structureCacheStates[i] = structureCaches[i].State;
        Counters = new MmuCounters(tlb.Levels.Select(l => l.Name));
        levelCounters = Counters.Levels;
        codeFrames = new ulong[((memory.Size >> PagingConstants.PageBits) + 63) / 64];
        reservedBits = (ulong*)Unsafe.AsPointer(ref reservedBitsStorage[0]);
        ApplyFlags(flags);
    }

    int[] LevelsServing(TlbLevelKind kind) =>
        levels.Select((l, i) => (l, i)).Where(x => x.l.Kind == kind || x.l.Kind == TlbLevelKind.Unified).Select(x => x.i).ToArray();

    public PhysicalMemory Memory { get; }
    public TlbConfig Config { get; }
    public MmuCounters Counters { get; }
    public int MaxPhysicalAddressBits { get; }

    /// <summary>Receives TLB, walk and invalidation events; null (the default) costs nothing.</summary>
    /// <remarks>With an observer attached every access searches the TLB, so that each lookup is reported.</remarks>
    public IPagingObserver? Observer
    {
        get => observer;
        set
        {
            observer = value;
            ForgetLastHits();
        }
    }

    IPagingObserver? observer;

    /// <summary>Called with a frame number when a write reaches a frame the CPU marked as holding decoded code.</summary>
    public Action<ulong>? CodeFrameWritten { get; set; }

    public ulong Cr3 { get; private set; }

    /// <summary>The current PCID: CR3[11:0] with CR4.PCIDE = 1, else 0.</summary>
    public ushort Pcid => pcid;

    public ControlFlags Flags => context.Flags;

    /// <summary>CPL == 3: accesses are user-mode accesses.</summary>
    public bool UserMode
    {
        get => context.UserMode;
        set => SetContext(context with { UserMode = value });
    }

    /// <summary>EFLAGS.AC, which lets supervisor code reach user pages under SMAP.</summary>
    public bool AlignmentCheck
    {
        get => context.AlignmentCheck;
        set => SetContext(context with { AlignmentCheck = value });
    }

    /// <summary>The PKRU register: access-disable and write-disable bits per protection key.</summary>
    public uint Pkru
    {
        get => context.Pkru;
        set => SetContext(context with { Pkru = value });
    }

    /// <summary>The physical address of the root table (PML4 or PML5) named by CR3.</summary>
    public ulong RootTable => Cr3 & addressMask;

    /// <summary>
    /// MOV to CR3. With PCIDE = 1 and bit 63 set, no translation is invalidated; otherwise every
    /// non-global TLB entry and every paging-structure-cache entry of the new PCID is (SDM 4.10.4.1).
    /// </summary>
    public void WriteCr3(ulong value)
    {
        bool pcidEnabled = (context.Flags & ControlFlags.PcidEnable) != 0;
        bool noFlush = pcidEnabled && (value & Cr3NoFlushBit) != 0;
        ForgetLastHits(); // the PCID may change
        Cr3 = value & ~Cr3NoFlushBit;
        pcid = pcidEnabled ? (ushort)(Cr3 & PcidMask) : (ushort)0;
        Counters.Cr3Writes++;
        if (noFlush) return;
        InvalidateTranslations(pcid, allPcids: false, includeGlobal: false);
        observer?.OnInvalidation(InvalidationKind.Cr3Write, 0, pcid);
    }

    /// <summary>
    /// MOV to CR0/CR4/EFER for the paging bits. Returns false, changing nothing, where the CPU raises
    /// #GP: setting PCIDE while CR3[11:0] != 0, and changing LA57 (only possible with paging off, which this MMU never
    /// is: Linux leaves long mode to switch between 4- and 5-level paging). Changing PGE or clearing PCIDE flushes
    /// every TLB entry (globals too) and every paging-structure cache; setting SMEP flushes the TLB entries and
    /// paging-structure caches of the current PCID (SDM 4.10.4.1), globals included: the SDM says "all TLB entries",
    /// and invalidating more than required is always allowed.
    /// </summary>
    public bool SetFlags(ControlFlags value)
    {
        var old = context.Flags;
        if ((value & ControlFlags.PcidEnable) != 0 && (old & ControlFlags.PcidEnable) == 0 && (Cr3 & PcidMask) != 0)
            return false;
        if (((value ^ old) & ControlFlags.La57) != 0)
            return false;
        ApplyFlags(value);
        var changed = old ^ value;
        bool pcidCleared = (old & ControlFlags.PcidEnable) != 0 && (value & ControlFlags.PcidEnable) == 0;
        if ((changed & ControlFlags.PageGlobalEnable) != 0 || pcidCleared)
        {
            FlushEverything();
            observer?.OnInvalidation(InvalidationKind.ControlFlagsChange, 0, pcid);
        }
        else if ((changed & value & ControlFlags.Smep) != 0)
        {
            InvalidateTranslations(pcid, allPcids: false, includeGlobal: true);
            observer?.OnInvalidation(InvalidationKind.ControlFlagsChange, 0, pcid);
        }
        return true;
    }

    void SetContext(AccessContext value)
    {
        ForgetLastHits();
        context = value;
        protectionKeysOn = (value.Flags & ControlFlags.ProtectionKeys) != 0;
        var withoutKeys = value with { Flags = value.Flags & ~ControlFlags.ProtectionKeys };
        uint allowed = 0;
        for (var kind = AccessKind.Read; kind <= AccessKind.Fetch; kind++)
            for (int rights = 0; rights < 8; rights++)
                if (AccessRights.Check((TranslationAttributes)rights, 0, kind, withoutKeys) == PageFaultErrorCode.None)
                    allowed |= 1u << ((int)kind * 8 + rights);
        allowedAccesses = allowed;
    }

    /// <summary>The access check of a TLB hit: the precomputed bit, and the full rules only for keys or a refusal.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    PageFaultErrorCode CheckAccess(TranslationAttributes attributes, byte protectionKey, AccessKind kind)
    {
        int rights = (int)attributes & 7;
        if (((allowedAccesses >> ((int)kind * 8 + rights)) & 1) != 0 && !(protectionKeysOn && (attributes & TranslationAttributes.User) != 0))
            return PageFaultErrorCode.None;
        return AccessRights.Check(attributes, protectionKey, kind, context);
    }

    void ApplyFlags(ControlFlags value)
    {
        SetContext(context with { Flags = value });
        pcid = (value & ControlFlags.PcidEnable) != 0 ? (ushort)(Cr3 & PcidMask) : (ushort)0;
        ulong reservedAlways = PageTableEntry.AddressMask52 & ~((1UL << MaxPhysicalAddressBits) - 1);
        if ((value & ControlFlags.NoExecuteEnable) == 0) reservedAlways |= PageTableEntry.ExecuteDisableBit;
        ComputeReservedBits(reservedAlways);
    }

    /// <summary>True when <paramref name="linear"/> is canonical for the current paging mode (48 or 57 bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsCanonical(ulong linear)
    {
        int unused = 64 - ((context.Flags & ControlFlags.La57) != 0 ? PagingConstants.LinearBits5Level : PagingConstants.LinearBits4Level);
        return (ulong)(((long)linear << unused) >> unused) == linear;
    }

    /// <summary>Translates one access; on success <paramref name="physical"/> is the physical address.</summary>
    public TranslationFault Translate(ulong linear, AccessKind kind, out ulong physical)
    {
        ref LastHit last = ref lastHits[(int)kind];
        if ((linear >> PagingConstants.PageBits) == last.Page)
        {
            CountLastHit(ref last);
            physical = (last.Frame << PagingConstants.PageBits) + (linear & PagingConstants.PageMask);
            return TranslationFault.None;
        }
        ref readonly var entry = ref Lookup(linear, kind, out ulong offsetMask, out var fault, ref last);
        if (fault.IsFault) { physical = 0; return fault; }
        physical = entry.PhysicalBase + (linear & offsetMask);
        Remember(ref last, linear, entry, linear & offsetMask);
        return fault;
    }

    /// <summary>Counts and touches a remembered first-level hit as the search would have.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void CountLastHit(ref LastHit last)
    {
        last.Counters!.Lookups++;
        last.Counters.HitsBySize[last.Size]++;
        last.Array->Touch(last.Index);
    }

    /// <summary>Remembers the first-level hit <see cref="Lookup"/> described, for pages with a host address (up to 2 MiB).</summary>
    void Remember(ref LastHit last, ulong linear, in TlbEntryData entry, ulong offset)
    {
        if (!last.FirstLevel || entry.HostBase == 0 || observer is not null) return;
        last.Page = linear >> PagingConstants.PageBits;
        last.Host = (byte*)entry.HostBase + (offset & ~PagingConstants.PageMask);
        last.Frame = (entry.PhysicalBase + offset) >> PagingConstants.PageBits;
    }

    /// <summary>
    /// Translates one access to a host pointer, valid up to the end of <paramref name="linear"/>'s 4 KiB page.
    /// A write to a frame holding decoded code notifies <see cref="CodeFrameWritten"/> first.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TranslationFault TranslateToHost(ulong linear, AccessKind kind, out byte* host)
    {
        ref LastHit last = ref lastHits[(int)kind];
        if ((linear >> PagingConstants.PageBits) != last.Page)
            return SearchAndTranslateToHost(linear, kind, out host);
        CountLastHit(ref last);
        host = last.Host + (linear & PagingConstants.PageMask);
        if (kind == AccessKind.Write) NotifyFrameWritten(last.Frame);
        return TranslationFault.None;
    }

    TranslationFault SearchAndTranslateToHost(ulong linear, AccessKind kind, out byte* host)
    {
        ref LastHit last = ref lastHits[(int)kind];
        ref readonly var entry = ref Lookup(linear, kind, out ulong offsetMask, out var fault, ref last);
        if (fault.IsFault) { host = null; return fault; }
        ulong offset = linear & offsetMask;
        Remember(ref last, linear, entry, offset);
        if (entry.HostBase != 0)
        {
            host = (byte*)entry.HostBase + offset;
        }
        else
        {
            ulong physical = entry.PhysicalBase + offset;
            if (!Memory.Contains(physical & ~PagingConstants.PageMask, PagingConstants.PageSize))
            {
                host = null;
                Counters.MachineChecks++;
                return new TranslationFault(TranslationFaultKind.MachineCheck, linear, PageFaultErrorCode.None);
            }
            host = Memory.PointerTo(physical);
        }
        if (kind == AccessKind.Write) NotifyFrameWritten((entry.PhysicalBase + offset) >> PagingConstants.PageBits);
        return TranslationFault.None;
    }

    /// <summary>Reads 1, 2, 4 or 8 bytes at any alignment; an access crossing a page translates both pages first.</summary>
    public TranslationFault Read(ulong linear, int size, out ulong value)
    {
        CheckOperandSize(size);
        if ((linear & PagingConstants.PageMask) <= PagingConstants.PageSize - (ulong)size)
        {
            var fault = TranslateToHost(linear, AccessKind.Read, out byte* p);
            value = fault.IsFault ? 0 : LoadLittleEndian(p, size);
            return fault;
        }
        ulong buffer = 0;
        var crossing = ReadBytes(linear, new Span<byte>(&buffer, size));
        value = crossing.IsFault ? 0 : buffer; // as a fault on one page gives: nothing of a partly read value
        return crossing;
    }

    /// <summary>Writes the low 1, 2, 4 or 8 bytes of <paramref name="value"/>; both pages of a crossing write are checked before any byte is written.</summary>
    public TranslationFault Write(ulong linear, int size, ulong value)
    {
        CheckOperandSize(size);
        if ((linear & PagingConstants.PageMask) <= PagingConstants.PageSize - (ulong)size)
        {
            var fault = TranslateToHost(linear, AccessKind.Write, out byte* p);
            if (!fault.IsFault) StoreLittleEndian(p, size, value);
            return fault;
        }
        return WriteBytes(linear, new ReadOnlySpan<byte>(&value, size));
    }

    /// <summary>Refuses any size but 1, 2, 4 and 8 before anything is looked up: a crossing access copies through an 8-byte value.</summary>
    static void CheckOperandSize(int size)
    {
        if (size is not (1 or 2 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(size), size, "an operand is 1, 2, 4 or 8 bytes");
    }

    static ulong LoadLittleEndian(byte* p, int size) => size switch
    {
        1 => *p,
        2 => Unsafe.ReadUnaligned<ushort>(p),
        4 => Unsafe.ReadUnaligned<uint>(p),
        8 => Unsafe.ReadUnaligned<ulong>(p),
        _ => throw new ArgumentOutOfRangeException(nameof(size)),
    };

    static void StoreLittleEndian(byte* p, int size, ulong value)
    {
        switch (size)
        {
            case 1: *p = (byte)value; break;
            case 2: Unsafe.WriteUnaligned(p, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned(p, (uint)value); break;
            case 8: Unsafe.WriteUnaligned(p, value); break;
            default: throw new ArgumentOutOfRangeException(nameof(size));
        }
    }

    /// <summary>Copies guest memory out, page by page. On a fault, the bytes before the faulting page have been copied.</summary>
    public TranslationFault ReadBytes(ulong linear, Span<byte> destination, AccessKind kind = AccessKind.Read)
    {
        while (!destination.IsEmpty)
        {
            int n = (int)Math.Min((ulong)destination.Length, PagingConstants.PageSize - (linear & PagingConstants.PageMask));
            var fault = TranslateToHost(linear, kind, out byte* p);
            if (fault.IsFault) return fault;
            new ReadOnlySpan<byte>(p, n).CopyTo(destination);
            destination = destination[n..];
            linear += (ulong)n;
        }
        return TranslationFault.None;
    }

    /// <summary>Operand-sized writes (up to this many bytes) check every page before writing, as one instruction does.</summary>
    const int AtomicWriteLimit = 64;

    /// <summary>
    /// Copies into guest memory. Writes of up to 64 bytes (instruction operands) are all-or-nothing; longer
    /// ones (kernel copies) go page by page and leave the bytes before a faulting page written, like copy_to_user.
    /// </summary>
    public TranslationFault WriteBytes(ulong linear, ReadOnlySpan<byte> source)
    {
        ulong offset = linear & PagingConstants.PageMask;
        if (source.Length <= AtomicWriteLimit && offset + (ulong)source.Length > PagingConstants.PageSize)
        {
            int first = (int)(PagingConstants.PageSize - offset);
            var fault = TranslateToHost(linear, AccessKind.Write, out byte* low);
            if (fault.IsFault) return fault;
            fault = TranslateToHost(linear + (ulong)first, AccessKind.Write, out byte* high);
            if (fault.IsFault) return fault;
            source[..first].CopyTo(new Span<byte>(low, first));
            source[first..].CopyTo(new Span<byte>(high, source.Length - first));
            return TranslationFault.None;
        }
        while (!source.IsEmpty)
        {
            int n = (int)Math.Min((ulong)source.Length, PagingConstants.PageSize - (linear & PagingConstants.PageMask));
            var fault = TranslateToHost(linear, AccessKind.Write, out byte* p);
            if (fault.IsFault) return fault;
            source[..n].CopyTo(new Span<byte>(p, n));
            source = source[n..];
            linear += (ulong)n;
        }
        return TranslationFault.None;
    }

    /// <summary>
    /// The TLB lookup, then a walk on a miss: the entry used (a TLB entry, or the walk's result) and the offset mask of
    /// its stored page size. On a fault the returned entry is meaningless. A hit in the first level is described in
    /// <paramref name="hit"/> (its Array is null otherwise), for the caller to remember.
    /// </summary>
    ref readonly TlbEntryData Lookup(ulong linear, AccessKind kind, out ulong offsetMask, out TranslationFault fault, ref LastHit hit)
    {
        offsetMask = 0;
        hit.Page = LastHit.NoPage;
        hit.FirstLevel = false;
        if (!IsCanonical(linear))
        {
            Counters.GeneralProtectionFaults++;
            fault = new TranslationFault(TranslationFaultKind.GeneralProtection, linear, PageFaultErrorCode.None);
            return ref walked;
        }
        ChainLevel* chain = ChainFor(kind, out int chainLength);
        int searchedAndMissed = 0;
        for (int i = 0; i < chainLength; i++)
        {
            int li = chain[i].Level;
            var counters = levelCounters[li];
            counters.Lookups++;
            TlbProbe* probes = chain[i].Probes;
            int probe = TlbLevel.Search(probes, chain[i].ProbeCount, linear, pcid, out int index);
            if (probe >= 0)
            {
                var size = probes[probe].Size;
                TlbArrayState* array = probes[probe].Array;
                ref readonly var entry = ref array->Data[index];
                var error = CheckAccess(entry.Attributes, entry.ProtectionKey, kind);
                // The SDM requires D to be set in the paging structure before a write uses a translation: a clean
                // entry (filled by a read) sends the write to a walk, and the lookup counts as a miss.
                bool clean = error == PageFaultErrorCode.None && kind == AccessKind.Write && (entry.Attributes & TranslationAttributes.Dirty) == 0;
                observer?.OnTlbLookup(li, linear, kind, !clean, clean ? default : size);
                if (error != PageFaultErrorCode.None)
                {
                    counters.HitsBySize[(int)size]++;
                    fault = PageFault(linear, error);
                    return ref walked;
                }
                if (clean)
                {
                    counters.Misses++;
                    Counters.DirtyBitWalks++;
                    // The walk's dirty translation replaces the clean entry. Were it left in place, a fill at another
                    // size (the page's size changed, or the entry is a fractured piece) would not overwrite it, and
                    // as the smaller size it would be found first and send every later write to a walk.
                    array->Drop(index);
                    ForgetLastHits();
                    break;
                }
                counters.HitsBySize[(int)size]++;
                array->Touch(index);
                if (i == 0)
                {
                    hit.FirstLevel = true;
                    hit.Array = array;
                    hit.Index = index;
                    hit.Size = (int)size;
                    // A reference store pays a GC write barrier: skip it when the same level hits again.
                    if (hit.Counters != counters) hit.Counters = counters;
                }
                if (i > 0) FillEarlierLevels(chain, i, linear, size, entry);
                offsetMask = size.Bytes() - 1;
                fault = TranslationFault.None;
                return ref entry;
            }
            counters.Misses++;
            observer?.OnTlbLookup(li, linear, kind, false, default);
            searchedAndMissed++;
        }
        fault = Walk(linear, kind, out walked, out var walkedSize, commit: true, out _);
        if (fault.IsFault) return ref walked;
        // Levels searched without a hit need no second search before the fill; a level whose entry lacked D (the
        // dirty-bit walk) and the levels after it, never searched, do.
        for (int i = 0; i < chainLength; i++) FillLevel(chain + i, linear, walkedSize, walked, knownAbsent: i < searchedAndMissed);
        offsetMask = walkedSize.Bytes() - 1;
        return ref walked;
    }

    /// <summary>
    /// Fills the levels before the one that hit with the page the paging structures map: a level that holds the page's
    /// size stores the whole page even when the entry that hit is a fractured piece of it.
    /// </summary>
    void FillEarlierLevels(ChainLevel* chain, int count, ulong linear, PageSize stored, in TlbEntryData entry)
    {
        if (entry.MappedSize == stored)
        {
            for (int j = 0; j < count; j++) FillLevel(chain + j, linear, stored, entry, knownAbsent: true);
            return;
        }
        var page = entry;
        page.PhysicalBase -= linear & (entry.MappedSize.Bytes() - 1) & ~(stored.Bytes() - 1);
        page.HostBase = PageHostBase(entry.MappedSize, page.PhysicalBase);
        for (int j = 0; j < count; j++) FillLevel(chain + j, linear, entry.MappedSize, page, knownAbsent: true);
    }

    /// <summary>The levels an access of <paramref name="kind"/> looks up, first level first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ChainLevel* ChainFor(AccessKind kind, out int length)
    {
        bool fetch = kind == AccessKind.Fetch;
        length = fetch ? fetchChainLength : dataChainLength;
        return fetch ? fetchChain : dataChain;
    }

    void FillLevel(ChainLevel* level, ulong linear, PageSize size, in TlbEntryData entry, bool knownAbsent)
    {
        ForgetLastHits(); // the fill may evict a remembered entry
        TlbArrayState* array = level->FillTarget(size, out var stored);
        if (array == null) return;
        int index = knownAbsent ? -1 : array->Find(linear, stored, pcid);
        if (stored == size)
        {
            array->Insert(index, linear, stored, pcid, entry);
        }
        else
        {
            // Fractured: the entry holds the piece of the page that contains the address.
            var piece = entry;
            piece.PhysicalBase += linear & (size.Bytes() - 1) & ~(stored.Bytes() - 1);
            piece.HostBase = HostAddressOf(piece.PhysicalBase);
            array->Insert(index, linear, stored, pcid, piece);
        }
        levelCounters[level->Level].FillsBySize[(int)stored]++;
    }

    /// <summary>Host address of a page base for a TLB entry; 0 when beyond memory (the access then reports a machine check).
    /// Only pages up to 2 MiB are given one: <see cref="PhysicalMemory.PointerTo"/> counts the one 2 MiB chunk it hands a
    /// pointer into, and a 1 GiB page spans 512 of them.</summary>
    nint HostAddressOf(ulong physical) => Memory.Contains(physical, 1) ? (nint)Memory.PointerTo(physical) : 0;

    /// <summary>The host address a TLB entry for a whole page of <paramref name="size"/> carries (none for 1 GiB pages).</summary>
    nint PageHostBase(PageSize size, ulong pageBase) => size == PageSize.Size1G ? 0 : HostAddressOf(pageBase);

    /// <summary>
    /// The entries a walk read, kept on the stack while it runs: the A/D pass, the paging-structure-cache fills and, when
    /// someone looks, the <see cref="WalkRecord"/> are made from it.
    /// </summary>
    struct WalkTrail
    {
        public EntryWords Addresses;
        public EntryWords Entries;
        public RightsByStep Rights;     // the rights accumulated down to each step
        public PagingLevel StartLevel;
        public int Steps;

        [InlineArray(5)]
        public struct EntryWords
        {
            ulong first;
        }

        [InlineArray(5)]
        public struct RightsByStep
        {
            TranslationAttributes first;
        }

        public readonly PagingLevel LevelOf(int step) => (PagingLevel)((int)StartLevel - step);
    }

    /// <summary>
    /// Walks the page tables (IA-32e, SDM 4.5), starting below the root when a paging-structure cache
    /// holds an upper entry. With <paramref name="commit"/>, A/D bits are set and the paging-structure
    /// caches filled on success, the counters and the observer told; without it the walk only reads (inspection).
    /// A/D bits are set only when the translation succeeds, at every level, as KVM's walker does. For the leaf that is
    /// what kvm-unit-tests' access.c requires after a fault. For the entries above it, the SDM's #PF description says a
    /// protection fault sets the PDE's A bit, and access.c accepts the bit set or left clear; one rule for every level
    /// keeps the fault path free of writes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // into the lookup: one frame for the whole miss
    TranslationFault Walk(ulong linear, AccessKind kind, out TlbEntryData entry, out PageSize size, bool commit, out WalkTrail trail)
    {
        Unsafe.SkipInit(out entry); // written only on success; callers read it only then
        Unsafe.SkipInit(out trail); // only the steps counted below are ever read
        size = PageSize.Size4K;
        // What the loop reads lives in locals: its stores into the trail could alias any field, so the JIT would
        // reload fields after each of them.
        ulong* reserved = reservedBits;
        ulong tableMask = addressMask;
        var memory = Memory;
        int level = (context.Flags & ControlFlags.La57) != 0 ? 5 : 4;
        ulong table = RootTable;
        // R/W and U/S are ANDed down the levels, XD ORed; kept as the entries' own bits (1, 2 and 63).
        ulong allowed = PageTableEntry.WritableBit | PageTableEntry.UserBit, executeDisable = 0;
        if (commit)
        {
            Counters.Walks++;
            for (int cached = 2; cached <= level; cached++)
            {
                PagingStructureCacheState* cache = structureCacheStates[cached];
                int hit = cache->Find(cache->KeyFor(linear, pcid));
                if (hit < 0) continue;
                cache->Touch(hit);
                Counters.PagingStructureCacheHits[cached]++;
                table = cache->NextTables[hit];
                var cachedRights = (TranslationAttributes)cache->Rights[hit];
                allowed = (ulong)(cachedRights & (TranslationAttributes.Writable | TranslationAttributes.User)) << 1;
                executeDisable = (cachedRights & TranslationAttributes.ExecuteDisable) != 0 ? PageTableEntry.ExecuteDisableBit : 0;
                level = cached - 1;
                break;
            }
        }
        trail.StartLevel = (PagingLevel)level;
        ref ulong addresses = ref trail.Addresses[0];
        ref ulong entries = ref trail.Entries[0];
        ref TranslationAttributes rightsByStep = ref trail.Rights[0];
        int steps = 0;
        ulong entriesAnded = ulong.MaxValue;
        var fault = TranslationFault.None;
        ulong raw;
        while (true)
        {
            // The entry index is linear bits 12 + 9 * (level - 1) up; shifting 3 less leaves it multiplied by the entry size.
            ulong address = table + ((linear >> (PagingConstants.LevelBits * level)) & ((PagingConstants.EntriesPerTable - 1) * PagingConstants.EntrySize));
            if (memory.TryRead64(address, out raw) != PhysicalAccessStatus.Ok)
            {
                fault = new TranslationFault(TranslationFaultKind.MachineCheck, linear, PageFaultErrorCode.None);
                break;
            }
            Unsafe.Add(ref addresses, steps) = address;
            Unsafe.Add(ref entries, steps) = raw;
            steps++;
            if ((raw & PageTableEntry.PresentBit) == 0)
            {
                fault = new TranslationFault(TranslationFaultKind.PageFault, linear, AccessRights.BaseErrorCode(kind, context));
                break;
            }
            bool pageSize = (raw & PageTableEntry.PageSizeBit) != 0;
            if ((raw & reserved[level * 2 + (pageSize ? 1 : 0)]) != 0)
            {
                fault = new TranslationFault(TranslationFaultKind.PageFault, linear,
                    AccessRights.BaseErrorCode(kind, context) | PageFaultErrorCode.Present | PageFaultErrorCode.ReservedBit);
                break;
            }
            allowed &= raw;
            entriesAnded &= raw;
            executeDisable |= raw & PageTableEntry.ExecuteDisableBit;
            Unsafe.Add(ref rightsByStep, steps - 1) = RightsOf(allowed, executeDisable);
            if (level == 1 || (pageSize && level <= 3))
                break;
            table = raw & tableMask;
            level--;
        }
        trail.Steps = steps;
        if (!fault.IsFault)
        {
            size = (PageSize)(level - 1);
            var rights = RightsOf(allowed, executeDisable);
            // The key is cached even while CR4.PKE = 0 (when the checks ignore it): setting PKE flushes nothing, and a
            // translation cached before must then carry the key of the entry that mapped it (SDM 4.6.2).
            byte key = (byte)((raw & PageTableEntry.ProtectionKeyMask) >> PageTableEntry.ProtectionKeyShift);
            var error = CheckAccess(rights, key, kind);
            if (error != PageFaultErrorCode.None)
            {
                fault = new TranslationFault(TranslationFaultKind.PageFault, linear, error);
            }
            else
            {
                ulong pageBase = raw & tableMask & ~(size.Bytes() - 1);
                if (commit) CommitWalk(linear, kind, size, ref trail, entriesAnded);
                if ((raw & PageTableEntry.DirtyBit) != 0 || kind == AccessKind.Write) rights |= TranslationAttributes.Dirty;
                if ((raw & PageTableEntry.GlobalBit) != 0 && (context.Flags & ControlFlags.PageGlobalEnable) != 0) rights |= TranslationAttributes.Global;
                entry = new TlbEntryData
                {
                    PhysicalBase = pageBase,
                    HostBase = commit ? PageHostBase(size, pageBase) : 0, // an inspection hands out no pointer: no chunk is reached
                    Attributes = rights,
                    ProtectionKey = key,
                    MappedSize = size,
                };
            }
        }
        if (commit)
        {
            Counters.WalkMemoryReferences += steps;
            if (fault.Kind == TranslationFaultKind.MachineCheck) Counters.MachineChecks++;
            else if (fault.IsFault) PageFault(linear, fault.ErrorCode);
            if (observer is not null) observer.OnWalk(RecordOf(linear, kind, fault, size, fault.IsFault ? 0 : entry.PhysicalBase, trail));
        }
        return fault;
    }

    /// <summary>The rights a TLB entry carries, from the entries' ANDed R/W and U/S bits and ORed XD bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TranslationAttributes RightsOf(ulong allowed, ulong executeDisable) =>
        (TranslationAttributes)(((allowed >> 1) & 3) | ((executeDisable >> 61) & 4));

    /// <summary>
    /// A successful walk's side effects: A on every entry used and D on the leaf of a write, paging-structure-cache
    /// fills. <paramref name="entriesAnded"/> is the entries read, ANDed: when every A bit is set and a write finds D
    /// set, no entry is written (the common case, checked without a pass over the entries).
    /// </summary>
    void CommitWalk(ulong linear, AccessKind kind, PageSize size, ref WalkTrail trail, ulong entriesAnded)
    {
        int leaf = trail.Steps - 1;
        ref ulong entries = ref trail.Entries[0];
        ref TranslationAttributes rightsByStep = ref trail.Rights[0];
        bool bitsToSet = (entriesAnded & PageTableEntry.AccessedBit) == 0
            || (kind == AccessKind.Write && (Unsafe.Add(ref entries, leaf) & PageTableEntry.DirtyBit) == 0);
        for (int i = 0; bitsToSet && i <= leaf; i++)
        {
            ulong raw = Unsafe.Add(ref entries, i);
            ulong wanted = raw | PageTableEntry.AccessedBit;
            if (i == leaf && kind == AccessKind.Write) wanted |= PageTableEntry.DirtyBit;
            if (wanted == raw) continue;
            if ((raw & PageTableEntry.AccessedBit) == 0) Counters.AccessedBitsSet++;
            if (wanted != (raw | PageTableEntry.AccessedBit)) Counters.DirtyBitsSet++;
            Memory.TryWrite64(trail.Addresses[i], wanted);
        }
        // Cache the non-leaf entries just used (all now have A = 1, as the SDM requires of cached entries; a non-leaf
        // entry is at level 2 or above). The walk started below the first cache that hit, and every cache below that
        // one was searched and missed.
        int level = (int)trail.StartLevel;
        for (int i = 0; i < leaf; i++, level--)
        {
            PagingStructureCacheState* cache = structureCacheStates[level];
            cache->InsertAbsent(cache->KeyFor(linear, pcid), Unsafe.Add(ref entries, i) & addressMask, Unsafe.Add(ref rightsByStep, i));
        }
        Counters.WalksBySize[(int)size]++;
    }

    /// <summary>What an observer or an inspection sees of a walk.</summary>
    WalkRecord RecordOf(ulong linear, AccessKind kind, TranslationFault fault, PageSize size, ulong pageBase, in WalkTrail trail)
    {
        var record = new WalkRecord { Linear = linear, Kind = kind, Pcid = pcid, Fault = fault, StartLevel = trail.StartLevel, StepCount = trail.Steps };
        for (int i = 0; i < trail.Steps; i++)
            record.Steps[i] = new WalkStep(trail.LevelOf(i), trail.Addresses[i], new PageTableEntry(trail.Entries[i]));
        if (!fault.IsFault)
        {
            record.Size = size;
            record.Physical = pageBase + (linear & (size.Bytes() - 1));
        }
        return record;
    }

    /// <summary>Fills <see cref="reservedBits"/>: per level the bits that must be 0 (SDM 4.5, tables 4-15..4-20).</summary>
    void ComputeReservedBits(ulong reservedAlways)
    {
        for (var level = PagingLevel.PageTable; level <= PagingLevel.Pml5; level++)
        {
            for (int pageSize = 0; pageSize < 2; pageSize++)
            {
                ulong reserved = reservedAlways;
                if (level >= PagingLevel.Pml4) reserved |= PageTableEntry.PageSizeBit;
                else if (pageSize == 1 && level == PagingLevel.Pdpt) reserved |= ((1UL << PagingConstants.HugePageBits) - 1) & ~((1UL << 13) - 1);
                else if (pageSize == 1 && level == PagingLevel.PageDirectory) reserved |= ((1UL << PagingConstants.LargePageBits) - 1) & ~((1UL << 13) - 1);
                reservedBits[(int)level * 2 + pageSize] = reserved;
            }
        }
    }

    /// <summary>
    /// Delivering a #PF invalidates the TLB and paging-structure-cache entries the faulting address
    /// would use (SDM 4.10.4.1), so that a handler that fixes the PTE needs no INVLPG before the restart.
    /// </summary>
    TranslationFault PageFault(ulong linear, PageFaultErrorCode error)
    {
        Counters.PageFaults++;
        ForgetLastHits();
        foreach (var level in levels) level.InvalidateAddress(linear, pcid, includeGlobal: true);
        for (int i = 2; i < structureCaches.Length; i++) structureCaches[i].InvalidateAddress(linear, pcid);
        observer?.OnInvalidation(InvalidationKind.PageFault, linear, pcid);
        return new TranslationFault(TranslationFaultKind.PageFault, linear, error);
    }

    /// <summary>
    /// Reads the walk for <paramref name="linear"/> without touching A/D bits, TLBs, caches or counters:
    /// what `info tlb`-style inspection and crash reports print.
    /// </summary>
    public WalkRecord Probe(ulong linear, AccessKind kind = AccessKind.Read)
    {
        if (!IsCanonical(linear))
            return new WalkRecord { Linear = linear, Kind = kind, Fault = new TranslationFault(TranslationFaultKind.GeneralProtection, linear, PageFaultErrorCode.None) };
        var fault = Walk(linear, kind, out var entry, out var size, commit: false, out var trail);
        return RecordOf(linear, kind, fault, size, entry.PhysicalBase, trail);
    }

    /// <summary>INVLPG: drops the address's translations of the current PCID and global ones, and every
    /// paging-structure-cache entry of the current PCID. A non-canonical address is a no-op.</summary>
    public void Invlpg(ulong linear)
    {
        Counters.Invlpg++;
        ForgetLastHits();
        if (!IsCanonical(linear)) return;
        foreach (var level in levels) level.InvalidateAddress(linear, pcid, includeGlobal: true);
        InvalidateStructureCaches(pcid, allPcids: false);
        observer?.OnInvalidation(InvalidationKind.Invlpg, linear, pcid);
    }

    /// <summary>INVPCID with the semantics of each type (SDM Vol. 2). The caller has checked the descriptor.</summary>
    public void Invpcid(InvpcidType type, ushort targetPcid, ulong linear)
    {
        Counters.Invpcid++;
        ForgetLastHits();
        switch (type)
        {
            case InvpcidType.IndividualAddress:
                foreach (var level in levels) level.InvalidateAddress(linear, targetPcid, includeGlobal: false);
                InvalidateStructureCaches(targetPcid, allPcids: false);
                break;
            case InvpcidType.SingleContext:
                InvalidateTranslations(targetPcid, allPcids: false, includeGlobal: false);
                break;
            case InvpcidType.AllContextsIncludingGlobal:
                InvalidateTranslations(0, allPcids: true, includeGlobal: true);
                break;
            case InvpcidType.AllContextsExceptGlobal:
                InvalidateTranslations(0, allPcids: true, includeGlobal: false);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
        observer?.OnInvalidation(InvalidationKind.Invpcid, linear, targetPcid);
    }

    /// <summary>Drops every translation of every PCID, global ones too, and every paging-structure-cache entry.</summary>
    public void FlushAll()
    {
        FlushEverything();
        observer?.OnInvalidation(InvalidationKind.FullFlush, 0, pcid);
    }

    void FlushEverything()
    {
        Counters.FullFlushes++;
        ForgetLastHits();
        InvalidateTranslations(0, allPcids: true, includeGlobal: true);
    }

    /// <summary>Drops the TLB entries of one PCID (or all), globals too when asked, and the paging-structure-cache entries of the same PCIDs.</summary>
    void InvalidateTranslations(ushort targetPcid, bool allPcids, bool includeGlobal)
    {
        foreach (var level in levels) level.InvalidateAll(targetPcid, allPcids, includeGlobal);
        InvalidateStructureCaches(targetPcid, allPcids);
    }

    void InvalidateStructureCaches(ushort targetPcid, bool allPcids)
    {
        for (int i = 2; i < structureCaches.Length; i++) structureCaches[i].Invalidate(targetPcid, allPcids);
    }

    /// <summary>
    /// Counts <paramref name="count"/> more accesses of <paramref name="kind"/> to the page of <paramref name="linear"/>
    /// as hits in the first TLB level serving that kind, without searching it once per access, and touches the entry
    /// for the replacement policy. The CPU reports accesses to pages whose entries it knows are still in that level:
    /// when the level serves only that kind (separate L1 ITLB and DTLB) and no lookup of that kind missed it since,
    /// nothing can have evicted them, so a real TLB would have hit each time. Reporting several pages in the order of
    /// their last use leaves the replacement state as the individual lookups would have.
    /// </summary>
    public void RecordRepeatedHits(ulong linear, AccessKind kind, long count)
    {
        ChainLevel* chain = ChainFor(kind, out int length);
        if (count <= 0 || length == 0) return;
        int probe = TlbLevel.Search(chain->Probes, chain->ProbeCount, linear, pcid, out int index);
        if (probe < 0) return;
        chain->Probes[probe].Array->Touch(index);
        var counters = levelCounters[chain->Level];
        counters.Lookups += count;
        counters.HitsBySize[(int)chain->Probes[probe].Size] += count;
    }

    /// <summary>Index in <see cref="MmuCounters.Levels"/> of the first level an access of <paramref name="kind"/> looks up, or -1.</summary>
    public int FirstLevelFor(AccessKind kind)
    {
        ChainLevel* chain = ChainFor(kind, out int length);
        return length == 0 ? -1 : chain->Level;
    }

    /// <summary>Marks a frame as holding instructions the CPU has decoded and cached.</summary>
    public void MarkCodeFrame(ulong frameNumber)
    {
        if (frameNumber < (ulong)codeFrames.Length * 64)
            codeFrames[frameNumber >> 6] |= 1UL << (int)(frameNumber & 63);
    }

    /// <summary>Tells the CPU (once) that a frame holding decoded code was written; the kernel calls this
    /// when it writes frames directly (zeroing, copying, migration).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void NotifyFrameWritten(ulong frameNumber)
    {
        if (frameNumber >= (ulong)codeFrames.Length * 64) return;
        ref ulong word = ref codeFrames[frameNumber >> 6];
        ulong bit = 1UL << (int)(frameNumber & 63);
        if ((word & bit) == 0) return;
        word &= ~bit;
        CodeFrameWritten?.Invoke(frameNumber);
    }

    /// <summary>The TLB levels' valid entries, for inspection (QEMU's `info tlb`).</summary>
    public IEnumerable<(string Level, ulong Linear, PageSize Size, ushort Pcid, bool Global, ulong Physical, TranslationAttributes Attributes)> TlbEntries() =>
        levels.SelectMany(l => l.Arrays.SelectMany(a => a.Entries().Select(e => (l.Config.Name, e.Linear, e.Size, e.Pcid, e.Global, e.Data.PhysicalBase, e.Data.Attributes))));

    /// <summary>Valid entries in each paging-structure cache, indexed by <see cref="PagingLevel"/>.</summary>
    public int PagingStructureCacheCount(PagingLevel level) => structureCaches[(int)level].Count;
}
