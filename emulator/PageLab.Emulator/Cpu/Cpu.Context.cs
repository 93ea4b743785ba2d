namespace PageLab.Emulator.Cpu;

/// <summary>
/// The user-visible register state of one thread, as a kernel saves it on a context switch: general
/// registers, RIP, RFLAGS, the FS and GS bases, the XMM registers, MXCSR and the x87 FXSAVE image.
/// </summary>
public sealed class CpuContext
{
    internal GeneralRegisterFile Gpr;
    internal XmmRegisterFile Xmm;
    internal ulong Rflags;
    internal uint Mxcsr;

    /// <summary>The saved instruction pointer.</summary>
    public ulong Rip { get; set; }

    /// <summary>The saved FS base (the thread pointer).</summary>
    public ulong FsBase { get; set; }

    /// <summary>The saved GS base.</summary>
    public ulong GsBase { get; set; }
    internal readonly byte[] X87 = new byte[HostX87.ImageSize];

    /// <summary>A copy of this state (fork: the child starts with the parent's registers).</summary>
    public CpuContext Clone()
    {
        var copy = new CpuContext { Gpr = Gpr, Xmm = Xmm, Rip = Rip, Rflags = Rflags, FsBase = FsBase, GsBase = GsBase, Mxcsr = Mxcsr };
        X87.CopyTo(copy.X87, 0);
        return copy;
    }

    /// <summary>General register by encoding index (RAX = 0 .. R15 = 15) of the saved state.</summary>
    public ref ulong Register(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)index, 15u, nameof(index));
        return ref System.Runtime.CompilerServices.Unsafe.Add(ref System.Runtime.CompilerServices.Unsafe.As<GeneralRegisterFile, ulong>(ref Gpr), index);
    }
}

public sealed unsafe partial class Cpu
{
    /// <summary>Saves the register state into <paramref name="context"/> (the outgoing thread of a context switch).</summary>
    public void SaveContext(CpuContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Gpr = gpr;
        context.Xmm = xmm;
        context.Rip = rip;
        context.Rflags = Rflags;
        context.FsBase = FsBase;
        context.GsBase = GsBase;
        context.Mxcsr = Mxcsr;
        new ReadOnlySpan<byte>(x87Image, HostX87.ImageSize).CopyTo(context.X87);
    }

    /// <summary>Loads the register state from <paramref name="context"/> (the incoming thread of a context switch).</summary>
    public void LoadContext(CpuContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        gpr = context.Gpr;
        xmm = context.Xmm;
        rip = context.Rip;
        Rflags = context.Rflags;
        FsBase = context.FsBase;
        GsBase = context.GsBase;
        Mxcsr = context.Mxcsr;
        context.X87.CopyTo(new Span<byte>(x87Image, HostX87.ImageSize));
    }
}
