using System.Runtime.InteropServices;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

// The x87 unit: the guest's x87 state is an FXSAVE image, and each x87 instruction runs on the
// host's x87 unit against it (HostX87), which gives exact extended-precision results.
public sealed unsafe partial class Cpu : IDisposable
{
    /// <summary>x87 control word after FNINIT: all exceptions masked, 64-bit precision, round to nearest.</summary>
    public const ushort DefaultX87ControlWord = 0x037F;

    // FXSAVE image layout (Intel SDM Vol. 1, 10.5.1).
    const int FcwOffset = 0, FswOffset = 2, FopOffset = 6, FipOffset = 8, FdpOffset = 16, MxcsrOffset = 24;
    const ushort ExceptionMasks = 0x3F;

    /// <summary>Three 512-byte areas: the guest's FXSAVE image, a working copy, and the memory-operand buffer.</summary>
    readonly byte* x87Image;
    HostX87? hostX87;
    bool disposed;

    byte* X87Work => x87Image + HostX87.ImageSize;
    byte* X87Operand => x87Image + 2 * HostX87.ImageSize;

    /// <summary>The x87 control word (glibc's fegetround reads it with FNSTCW).</summary>
    public ushort X87ControlWord
    {
        get => *(ushort*)(x87Image + FcwOffset);
        set => *(ushort*)(x87Image + FcwOffset) = value;
    }

    /// <summary>The x87 status word (condition codes, TOP, exception flags).</summary>
    public ushort X87StatusWord => *(ushort*)(x87Image + FswOffset);

    /// <summary>The x87 state of a new process (FNINIT).</summary>
    void ResetX87()
    {
        NativeMemory.Clear(x87Image, HostX87.ImageSize);
        X87ControlWord = DefaultX87ControlWord;
        *(uint*)(x87Image + MxcsrOffset) = DefaultMxcsr; // FXRSTOR needs a valid MXCSR; the guest's lives in Mxcsr
    }

    ExecResult ExecuteX87(ref DecodedInstruction d)
    {
        if (d.Instruction.Mnemonic == Mnemonic.Fnstsw && d.Kind0 == OperandKind.Register)
        {
            WriteRegister(0, 2, X87StatusWord); // FNSTSW AX
            return ExecResult.Continue;
        }
        hostX87 ??= new HostX87();
        if (d.X87Routine == 0) d.X87Routine = hostX87.Compile(d.Instruction);
        if (d.X87Routine == 0) return ExecResult.Invalid;
        var routine = hostX87[d.X87Routine];

        ulong address = 0;
        var operand = new Span<byte>(X87Operand, routine.MemorySize);
        if (routine.MemorySize > 0)
        {
            address = EffectiveAddress(ref d);
            if (routine.ReadsMemory)
            {
                LeaveDataPages();
                if (!CrossingResult(mmu.ReadBytes(address, operand))) return ExecResult.Fault;
            }
        }

        // Run on a copy with every exception masked (an unmasked one would trap in the host), then keep
        // the guest's masks unless the instruction loaded a new control word itself.
        byte* work = X87Work;
        new ReadOnlySpan<byte>(x87Image, HostX87.ImageSize).CopyTo(new Span<byte>(work, HostX87.ImageSize));
        ushort guestControl = X87ControlWord;
        *(ushort*)(work + FcwOffset) |= ExceptionMasks;
        ulong hostFlags = HostX87.Run(routine, work, X87Operand);

        if (routine.WritesMemory)
        {
            LeaveDataPages();
            if (!CrossingResult(mmu.WriteBytes(address, operand))) return ExecResult.Fault;
        }
        if (!LoadsControlWord(d.Instruction.Mnemonic)) *(ushort*)(work + FcwOffset) = guestControl;
        // The host's instruction and operand pointers would leak host addresses into the guest: keep them zero.
        *(ushort*)(work + FopOffset) = 0;
        *(ulong*)(work + FipOffset) = 0;
        *(ulong*)(work + FdpOffset) = 0;
        new ReadOnlySpan<byte>(work, HostX87.ImageSize).CopyTo(new Span<byte>(x87Image, HostX87.ImageSize));
        if (routine.SetsFlags) SetStatusFlags(hostFlags & (CpuFlags.Zero | CpuFlags.Parity | CpuFlags.Carry));
        return ExecResult.Continue;
    }

    static bool LoadsControlWord(Mnemonic mnemonic) =>
        mnemonic is Mnemonic.Fldcw or Mnemonic.Fldenv or Mnemonic.Frstor or Mnemonic.Fninit;

    /// <summary>Releases the x87 state and the host routines' executable memory.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        hostX87?.Dispose();
        NativeMemory.AlignedFree(x87Image);
        GC.SuppressFinalize(this);
    }

    ~Cpu()
    {
        hostX87?.Dispose();
        NativeMemory.AlignedFree(x87Image);
    }
}
