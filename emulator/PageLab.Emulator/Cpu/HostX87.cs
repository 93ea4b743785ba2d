using System.Runtime.InteropServices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Cpu;

/// <summary>How a compiled x87 instruction touches memory and flags.</summary>
internal readonly record struct X87Thunk(nint Code, int MemorySize, bool ReadsMemory, bool WritesMemory, bool SetsFlags);

/// <summary>
/// Runs guest x87 instructions on the host's x87 unit, which gives their exact 80-bit results
/// (writing a correctly rounded extended-precision float unit would be a project of its own).
/// Each distinct instruction is compiled once into a small host routine: load the guest's x87
/// state image (FXRSTOR), run the instruction with its memory operand redirected to a scratch
/// buffer, capture RFLAGS (FCOMI and friends set them), save the image (FXSAVE), and restore the
/// host's x87 and SSE control state. The routines live in executable memory mapped for them.
/// </summary>
internal sealed unsafe partial class HostX87 : IDisposable
{
    /// <summary>Size of the FXSAVE image and of the scratch buffer (FNSAVE stores 108 bytes).</summary>
    public const int ImageSize = 512;
    const int RegionSize = 256 * 1024;
    const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;

    [LibraryImport("libc")]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc")]
    private static partial int munmap(nint address, nuint length);

    readonly List<nint> regions = [];
    int used = RegionSize;
    readonly Dictionary<UInt128, int> handles = [];
    readonly List<X87Thunk> thunks = [];
    readonly InstructionInfoFactory infoFactory = new();

    /// <summary>The instructions this unit runs: legacy-encoded x87 instructions (CPUID FPU), nothing that touches SSE state.</summary>
    public static bool IsX87(in Instruction instruction)
    {
        if (instruction.Encoding != EncodingKind.Legacy) return false;
        var features = instruction.CpuidFeatures;
        if (features.Length == 0) return false;
        foreach (var feature in features)
        {
            if (feature is not (CpuidFeature.FPU or CpuidFeature.FPU287 or CpuidFeature.FPU387 or CpuidFeature.CMOV)) return false;
        }
        return features.Contains(CpuidFeature.FPU) || features.Contains(CpuidFeature.FPU387) || features.Contains(CpuidFeature.FPU287);
    }

    /// <summary>The routine behind a handle from <see cref="Compile"/>.</summary>
    public X87Thunk this[int handle] => thunks[handle - 1];

    /// <summary>
    /// A handle (1 or more) to the host routine for <paramref name="instruction"/>, compiled on first use;
    /// 0 when the host cannot provide executable memory (the instruction then raises #UD in the guest).
    /// </summary>
    public int Compile(in Instruction instruction)
    {
        var rewritten = instruction;
        int memoryOperand = -1;
        for (int op = 0; op < instruction.OpCount; op++)
        {
            if (instruction.GetOpKind(op) == OpKind.Memory) memoryOperand = op;
        }
        if (memoryOperand >= 0)
        {
            // The guest operand is copied to and from a scratch buffer that RSI points to.
            rewritten.MemoryBase = Register.RSI;
            rewritten.MemoryIndex = Register.None;
            rewritten.MemoryIndexScale = 1;
            rewritten.MemoryDisplacement64 = 0;
            rewritten.MemoryDisplSize = 0;
            rewritten.SegmentPrefix = Register.None;
        }
        byte[] encoded = Encode(a => a.AddInstruction(rewritten));
        var key = Key(encoded);
        if (handles.TryGetValue(key, out int handle)) return handle;

        int size = 0;
        bool reads = false, writes = false;
        if (memoryOperand >= 0)
        {
            size = instruction.MemorySize.GetSize();
            var access = infoFactory.GetInfo(instruction).GetOpAccess(memoryOperand);
            reads = access is OpAccess.Read or OpAccess.CondRead or OpAccess.ReadWrite or OpAccess.ReadCondWrite;
            writes = access is OpAccess.Write or OpAccess.CondWrite or OpAccess.ReadWrite or OpAccess.ReadCondWrite;
        }
        bool setsFlags = instruction.Mnemonic is Mnemonic.Fcomi or Mnemonic.Fcomip or Mnemonic.Fucomi or Mnemonic.Fucomip;
        byte[] code = Encode(a =>
        {
            // rdi = state image, rsi = memory operand buffer, rdx = 8 bytes to keep the host's MXCSR and FCW.
            a.stmxcsr(__dword_ptr[rdx]);
            a.fnstcw(__word_ptr[rdx + 4]);
            a.fxrstor64(__[rdi]);
            a.AddInstruction(rewritten);
            a.pushfq();
            a.pop(rax);
            a.fxsave64(__[rdi]);
            a.fninit();
            a.fldcw(__word_ptr[rdx + 4]);
            a.ldmxcsr(__dword_ptr[rdx]);
            a.ret();
        });
        nint placed = Place(code);
        if (placed == 0) return 0;
        thunks.Add(new X87Thunk(placed, size, reads, writes, setsFlags));
        handles.Add(key, thunks.Count);
        return thunks.Count;
    }

    static UInt128 Key(byte[] encoded)
    {
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        encoded.CopyTo(bytes);
        bytes[15] = (byte)encoded.Length;
        return MemoryMarshal.Read<UInt128>(bytes);
    }

    static byte[] Encode(Action<Assembler> build)
    {
        var assembler = new Assembler(64);
        build(assembler);
        var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), 0);
        return stream.ToArray();
    }

    /// <summary>Copies a routine into executable memory; 0 when none can be mapped.</summary>
    nint Place(byte[] code)
    {
        if (used + code.Length > RegionSize)
        {
            nint region;
            try
            {
                region = mmap(0, RegionSize, ProtRead | ProtWrite | ProtExec, MapPrivate | MapAnonymous, -1, 0);
            }
            catch (DllNotFoundException)
            {
                return 0; // not a Linux host
            }
            if (region == -1) return 0;
            regions.Add(region);
            used = 0;
        }
        nint at = regions[^1] + used;
        code.CopyTo(new Span<byte>((void*)at, code.Length));
        used += (code.Length + 15) & ~15;
        return at;
    }

    /// <summary>Runs a routine on <paramref name="image"/> (16-byte aligned) with <paramref name="operand"/> as its memory operand; returns RFLAGS after the instruction.</summary>
    public static ulong Run(in X87Thunk thunk, byte* image, byte* operand)
    {
        ulong saved = 0;
        return ((delegate* unmanaged<byte*, byte*, ulong*, ulong>)thunk.Code)(image, operand, &saved);
    }

    public void Dispose()
    {
        foreach (var region in regions) munmap(region, RegionSize);
        regions.Clear();
    }
}
