using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Iced.Intel;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Cpu;

/// <summary>General registers in the encoding's order: RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15.</summary>
[InlineArray(16)]
internal struct GeneralRegisterFile
{
    ulong element0;
}

/// <summary>XMM0..XMM15.</summary>
[InlineArray(16)]
internal struct XmmRegisterFile
{
    Vector128<byte> element0;
}

/// <summary>How one instruction ended; anything but <see cref="Continue"/> leaves the fast loop.</summary>
internal enum ExecResult : byte
{
    Continue,
    /// <summary>A memory access faulted; the fault is in <c>pendingFault</c> and no architectural state changed.</summary>
    Fault,
    Invalid,
    DivideError,
    GeneralProtection,
    /// <summary>SYSCALL retired: the host must run.</summary>
    Syscall,
}

/// <summary>
/// A user-mode x86-64 CPU: an interpreter over instructions decoded once by Iced and cached per
/// guest physical page. Every fetch goes through the instruction TLB and every data access through
/// the data TLB of the <see cref="Paging.Mmu"/>; faults are values handed to the <see cref="ICpuHost"/>.
/// </summary>
[DebuggerDisplay("rip={Rip,h} rsp={Gpr(4),h} retired={InstructionsRetired}")]
[SkipLocalsInit] // the hot methods' struct locals are always assigned before use; zeroing them costs on every instruction
public sealed unsafe partial class Cpu
{
    /// <summary>Register code of AH (CH, DH, BH follow): 16 + the index of the full register.</summary>
    internal const byte HighByteRegister = 16;
    /// <summary>Memory operand without a base or index register.</summary>
    internal const byte NoRegister = 0xFF;
    /// <summary>Memory operand relative to the next instruction's address.</summary>
    internal const byte RipRegister = 0xFE;

    const ulong PageSize = PagingConstants.PageSize;
    const ulong PageMask = PagingConstants.PageMask;

    /// <summary>RSP's index in <see cref="Gpr"/>.</summary>
    public const int Rsp = 4;

    readonly Mmu mmu;
    readonly ICpuHost host;
    readonly InstructionDecoder decoder = new();

    GeneralRegisterFile gpr;
    XmmRegisterFile xmm;
    ulong rip;
    /// <summary>Address of the instruction after the executing one; branches overwrite it.</summary>
    ulong nextRip;
    bool stopRequested;
    /// <summary>Instructions retired in the current <see cref="Run"/>.</summary>
    long retiredThisRun;
    /// <summary>How many of <see cref="retiredThisRun"/> are already added to <see cref="InstructionsRetired"/> and the clock.</summary>
    long retiredPublished;
    TranslationFault pendingFault;

    // Decoded-instruction cache, per physical frame.
    readonly Dictionary<ulong, DecodedPage> decodedPages = [];
    // The page instructions are being fetched from: while RIP stays in it, the ITLB entry that
    // translated it is still the most recently used one, so fetches hit without a lookup.
    DecodedPage? fetchPage;
    ulong fetchLinearBase = ulong.MaxValue;
    byte* fetchHost;
    /// <summary>Fetches served by the current page's translation since it was looked up (ITLB hits not yet reported).</summary>
    long pendingFetchHits;
    // An instruction crossing a page boundary is decoded on every execution and never cached: its
    // second page may be remapped independently of the first.
    readonly DecodedInstruction[] crossPageInstruction = new DecodedInstruction[1];

    /// <summary>A data page whose first-level DTLB entry is known to be present (see TryDataPointer).</summary>
    struct DataPage
    {
        public ulong Linear;
        public byte* Host;
        public ulong Frame;
        public bool Writable;
        /// <summary>Accesses served since the MMU last counted this page.</summary>
        public long PendingHits;
        public long LastUse;
    }

    [InlineArray(DataPageSlots)]
    struct DataPageSet
    {
        DataPage element0;
    }

    /// <summary>Data pages remembered at once: a loop typically touches its stack, one or two arrays and a table.</summary>
    const int DataPageSlots = 4;
    DataPageSet dataPages;
    long dataPageClock;
    /// <summary>Counters of the first data TLB level: a miss there (a fill) may evict remembered pages.</summary>
    readonly TlbLevelCounters? firstDataLevel;

    /// <summary>
    /// Whether same-page fetches and data accesses may be counted as first-level TLB hits without a
    /// search: only when the first fetch level serves only fetches and the first data level only data
    /// (so nothing else can evict the entry), and no observer wants every lookup as it happens.
    /// </summary>
    bool fastTranslations;
    /// <summary>The TLB configuration has separate first-level instruction and data TLBs.</summary>
    readonly bool firstLevelsAreSplit;
    readonly byte[] crossPageBytes = new byte[InstructionDecoder.MaxInstructionLength];

    /// <summary>Creates a CPU in 64-bit user mode with all registers zero and RFLAGS = 0x202.</summary>
    public Cpu(Mmu mmu, ICpuHost host, VirtualClock clock)
    {
        ArgumentNullException.ThrowIfNull(mmu);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(clock);
        this.mmu = mmu;
        this.host = host;
        Clock = clock;
        mmu.UserMode = true;
        mmu.CodeFrameWritten = OnCodeFrameWritten;
        firstLevelsAreSplit = FirstLevelsAreSplit(mmu.Config);
        int firstData = mmu.FirstLevelFor(AccessKind.Read);
        firstDataLevel = firstData < 0 ? null : mmu.Counters.Levels[firstData];
        LeaveTranslations();
        flags = CpuFlags.InitialUser;
        Mxcsr = DefaultMxcsr;
        x87Image = (byte*)NativeMemory.AlignedAlloc(HostX87.ImageSize * 3, 64);
        ResetX87();
    }

    /// <summary>The MMU every access goes through.</summary>
    public Mmu Mmu => mmu;

    /// <summary>Modeled time; the CPU adds its retired instructions and RDTSC reads it.</summary>
    public VirtualClock Clock { get; }

    /// <summary>The address of the next instruction to execute.</summary>
    public ulong Rip
    {
        get => rip;
        set => rip = value;
    }

    /// <summary>FS segment base (arch_prctl(ARCH_SET_FS): glibc's and musl's thread pointer).</summary>
    public ulong FsBase { get; set; }

    /// <summary>GS segment base.</summary>
    public ulong GsBase { get; set; }

    /// <summary>Instructions retired since the CPU was created.</summary>
    public long InstructionsRetired { get; private set; }

    /// <summary>The fault that stopped the CPU, or the one last handed to the host.</summary>
    public TranslationFault LastFault { get; private set; }

    /// <summary>General register by encoding index: RAX = 0, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 = 15.</summary>
    public ref ulong Gpr(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)index, 15u, nameof(index));
        return ref G(index);
    }

    /// <summary>XMM register 0..15.</summary>
    public ref Vector128<byte> Xmm(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)index, 15u, nameof(index));
        return ref X(index);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ref ulong G(int index) => ref Unsafe.Add(ref Unsafe.As<GeneralRegisterFile, ulong>(ref gpr), index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ref Vector128<byte> X(int index) => ref Unsafe.Add(ref Unsafe.As<XmmRegisterFile, Vector128<byte>>(ref xmm), index);

    /// <summary>Asks <see cref="Run"/> to return after the current instruction (the host calls it from a callback).</summary>
    public void RequestStop() => stopRequested = true;

    /// <summary>
    /// Runs until <paramref name="maxInstructions"/> more instructions retired, the host requests a
    /// stop, or an exception the host does not resolve. On a stop for an exception, RIP is the
    /// address of the instruction that raised it and no state it would have changed has changed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public CpuStopReason Run(long maxInstructions)
    {
        stopRequested = false;
        retiredThisRun = 0;
        retiredPublished = 0;
        // Mappings may have changed since the last run: the next fetch looks the page up again.
        LeaveTranslations();
        CpuStopReason reason;
        while (true)
        {
            if (retiredThisRun >= maxInstructions) { reason = CpuStopReason.InstructionLimit; break; }
            if (stopRequested) { reason = CpuStopReason.StopRequested; break; }

            // Fast path: RIP on the current fetch page, instruction already decoded. The slot table has
            // one entry per byte of the page and holds valid indices only, so no bounds checks are needed.
            ref DecodedInstruction d = ref Unsafe.NullRef<DecodedInstruction>();
            ulong offset = rip - fetchLinearBase;
            DecodedPage? page = fetchPage;
            int slot = 0;
            if (offset < PageSize && page != null)
                slot = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(page.Slots), (nint)offset);
            if (slot != 0)
            {
                d = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(page!.Entries), slot - 1);
                pendingFetchHits++;
            }
            else if (FetchSlow(out var entries, out int index))
            {
                d = ref entries[index];
            }
            else
            {
                if (HandleFault()) continue;
                reason = CpuStopReason.UnhandledFault;
                break;
            }

            nextRip = rip + d.Length;
            var result = Execute(ref d);
            if (result == ExecResult.Continue)
            {
                rip = nextRip;
                retiredThisRun++;
                continue;
            }
            if (result == ExecResult.Syscall)
            {
                rip = nextRip;
                retiredThisRun++;
                Retire();
                host.OnSyscall(this);
                LeaveTranslations();
                continue;
            }
            if (result == ExecResult.Fault)
            {
                if (HandleFault()) continue;
                reason = CpuStopReason.UnhandledFault;
                break;
            }
            reason = result switch
            {
                ExecResult.DivideError => CpuStopReason.DivideError,
                ExecResult.GeneralProtection => CpuStopReason.GeneralProtection,
                _ => CpuStopReason.InvalidInstruction,
            };
            break;
        }
        Retire();
        return reason;
    }

    /// <summary>Hands the pending fault to the host; true when it resolved it and the instruction restarts.</summary>
    bool HandleFault()
    {
        LastFault = pendingFault;
        Retire();
        bool resolved = host.OnFault(this, pendingFault);
        LeaveTranslations();
        return resolved;
    }

    /// <summary>Publishes retired instructions and pending ITLB hits before the host looks at the machine.</summary>
    void Retire()
    {
        long fresh = retiredThisRun - retiredPublished;
        InstructionsRetired += fresh;
        Clock.RetireInstructions((ulong)fresh);
        retiredPublished = retiredThisRun;
        ReportPendingHits();
    }

    /// <summary>
    /// Forgets the fetch and data pages (the host may have changed mappings, flushed TLBs or attached
    /// an observer): the next accesses look their pages up again.
    /// </summary>
    void LeaveTranslations()
    {
        LeaveFetchPage();
        LeaveDataPages();
        fastTranslations = mmu.Observer == null && firstLevelsAreSplit;
    }

    static bool FirstLevelsAreSplit(TlbConfig config)
    {
        var first = config.Levels.FirstOrDefault(l => l.Kind != TlbLevelKind.Data);
        var firstData = config.Levels.FirstOrDefault(l => l.Kind != TlbLevelKind.Instruction);
        return first?.Kind == TlbLevelKind.Instruction && firstData?.Kind == TlbLevelKind.Data;
    }

    /// <summary>Forgets the current fetch page: the next fetch translates through the ITLB again.</summary>
    void LeaveFetchPage()
    {
        ReportPendingHits();
        fetchPage = null;
        fetchLinearBase = ulong.MaxValue;
        fetchHost = null;
    }

    void OnCodeFrameWritten(ulong frameNumber)
    {
        if (decodedPages.Remove(frameNumber, out var page) && page == fetchPage)
            LeaveFetchPage();
    }

    /// <summary>
    /// Fetch when the fast path cannot: RIP left the current page (translate through the ITLB),
    /// or the instruction is not decoded yet (decode it; it may continue on the next page).
    /// </summary>
    bool FetchSlow(out DecodedInstruction[] entries, out int index)
    {
        entries = crossPageInstruction;
        index = 0;
        ulong linearBase = rip & ~PageMask;
        if (fetchPage == null || linearBase != fetchLinearBase)
        {
            LeaveFetchPage();
            var fault = TranslateToFrame(rip, AccessKind.Fetch, out ulong physical, out byte* host);
            if (fault.IsFault) { pendingFault = fault; return false; }
            ulong frame = physical >> PagingConstants.PageBits;
            if (!decodedPages.TryGetValue(frame, out var page))
            {
                page = new DecodedPage(frame);
                decodedPages.Add(frame, page);
                mmu.MarkCodeFrame(frame);
            }
            fetchPage = page;
            fetchLinearBase = linearBase;
            fetchHost = host - (rip & PageMask);
        }
        else
        {
            pendingFetchHits++;
        }

        var current = fetchPage;
        int offset = (int)(rip & PageMask);
        int slot = current.Slots[offset] - 1;
        var inPage = new ReadOnlySpan<byte>(fetchHost + offset, (int)PageSize - offset);
        if (slot < 0 && decoder.Decode(inPage, rip, out var decoded) == DecodeStatus.Ok)
            slot = current.Add(offset, decoded);
        if (slot >= 0)
        {
            entries = current.Entries;
            index = slot;
            if (!fastTranslations) LeaveFetchPage(); // every fetch then looks its page up
            return true;
        }

        // The instruction continues on the next page: fetching its rest is an ITLB lookup of that page,
        // which may fault. That lookup may evict the current page's entry, so the fast path ends here.
        inPage.CopyTo(crossPageBytes);
        LeaveFetchPage();
        var nextFault = TranslateToFrame(linearBase + PageSize, AccessKind.Fetch, out _, out byte* nextHost);
        if (nextFault.IsFault) { pendingFault = nextFault; return false; }
        int rest = crossPageBytes.Length - inPage.Length;
        new ReadOnlySpan<byte>(nextHost, rest).CopyTo(crossPageBytes.AsSpan(inPage.Length));
        decoder.Decode(crossPageBytes, rip, out crossPageInstruction[0]);
        return true;
    }

    /// <summary>
    /// Formats the instruction at <paramref name="address"/> with Iced (for crash reports: "ud2").
    /// Reads the bytes through the MMU as a fetch would; an unreadable address gives a description of the fault.
    /// </summary>
    public string FormatInstruction(ulong address)
    {
        Span<byte> bytes = stackalloc byte[InstructionDecoder.MaxInstructionLength];
        int available = 0;
        TranslationFault fault = default;
        while (available < bytes.Length)
        {
            fault = mmu.Translate(address + (ulong)available, AccessKind.Fetch, out ulong physical);
            if (fault.IsFault) break;
            if (!mmu.Memory.Contains(physical & ~PageMask, PageSize))
            {
                fault = new TranslationFault(TranslationFaultKind.MachineCheck, address + (ulong)available, PageFaultErrorCode.None);
                break;
            }
            int chunk = (int)Math.Min((ulong)(bytes.Length - available), PageSize - (physical & PageMask));
            new ReadOnlySpan<byte>(mmu.Memory.PointerTo(physical), chunk).CopyTo(bytes[available..]);
            available += chunk;
        }
        var reader = new ByteArrayCodeReader(bytes[..available].ToArray());
        var icedDecoder = Iced.Intel.Decoder.Create(64, reader, address);
        icedDecoder.Decode(out var instruction);
        if (icedDecoder.LastError == DecoderError.NoMoreBytes)
            return available == 0 ? $"(unreadable: {fault})" : $"(truncated: {fault})";
        var formatter = new GasFormatter();
        var output = new StringOutput();
        formatter.Format(instruction, output);
        return output.ToStringAndReset();
    }

    /// <summary>Decoded instructions of one physical frame, indexed by their offset in it.</summary>
    sealed class DecodedPage(ulong frameNumber)
    {
        public readonly ulong FrameNumber = frameNumber;
        /// <summary>Per byte offset: 1 + index into <see cref="Entries"/>, or 0 when not decoded.</summary>
        public readonly ushort[] Slots = new ushort[PageSize];
        public DecodedInstruction[] Entries = new DecodedInstruction[16];
        int count;

        public int Add(int offset, in DecodedInstruction instruction)
        {
            if (count == Entries.Length) Array.Resize(ref Entries, count * 2);
            Entries[count] = instruction;
            Slots[offset] = (ushort)(count + 1);
            return count++;
        }
    }
}
