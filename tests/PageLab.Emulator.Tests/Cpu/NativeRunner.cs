using System.Runtime.InteropServices;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

/// <summary>Register state exchanged with the native harness: 16 GPRs in encoding order, RFLAGS, then XMM0..XMM3.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeState
{
    public const int FlagsIndex = 16;
    public const int XmmCount = 4;
    public const int XmmOffset = 17 * 8;
    public fixed ulong Values[17 + 2 * XmmCount];
}

/// <summary>
/// Runs an instruction sequence on the host CPU: assembles a harness around it into executable
/// memory (mmap RWX) that loads the registers and RFLAGS from a <see cref="NativeState"/>, runs the
/// sequence, and stores them back. The sequence must not touch RSP or fault.
/// </summary>
internal sealed unsafe partial class NativeRunner : IDisposable
{
    const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
    const int Size = 64 * 1024;

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc")]
    private static partial int munmap(nint address, nuint length);

    readonly nint code;

    public NativeRunner()
    {
        code = mmap(0, Size, ProtRead | ProtWrite | ProtExec, MapPrivate | MapAnonymous, -1, 0);
        if (code == -1) throw new InvalidOperationException($"mmap failed: errno {Marshal.GetLastPInvokeError()}");
    }

    static readonly AssemblerRegisterXMM[] Xmms = [xmm0, xmm1, xmm2, xmm3];
    static readonly AssemblerRegister64[] Registers = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15];

    public void Run(Action<Assembler> sequence, ref NativeState state)
    {
        var a = new Assembler(64);
        foreach (var saved in new[] { rbx, rbp, r12, r13, r14, r15 }) a.push(saved);
        a.push(rdi);
        a.mov(rax, __qword_ptr[rdi + NativeState.FlagsIndex * 8]);
        a.push(rax);
        a.popfq();
        for (int i = 0; i < NativeState.XmmCount; i++) a.movdqu(Xmms[i], __xmmword_ptr[rdi + NativeState.XmmOffset + 16 * i]);
        for (int i = 0; i < 16; i++)
        {
            if (i is 4 or 7) continue; // RSP stays the harness's; RDI (the state pointer) last
            a.mov(Registers[i], __qword_ptr[rdi + i * 8]);
        }
        a.mov(rdi, __qword_ptr[rdi + 7 * 8]);
        sequence(a);
        a.push(rdi);
        a.mov(rdi, __qword_ptr[rsp + 8]);
        for (int i = 0; i < 16; i++)
        {
            if (i is 4 or 7) continue;
            a.mov(__qword_ptr[rdi + i * 8], Registers[i]);
        }
        for (int i = 0; i < NativeState.XmmCount; i++) a.movdqu(__xmmword_ptr[rdi + NativeState.XmmOffset + 16 * i], Xmms[i]);
        a.pushfq();
        a.pop(rax);
        a.mov(__qword_ptr[rdi + NativeState.FlagsIndex * 8], rax);
        a.pop(rax);
        a.mov(__qword_ptr[rdi + 7 * 8], rax);
        a.pop(rdi);
        foreach (var saved in new[] { r15, r14, r13, r12, rbp, rbx }) a.pop(saved);
        a.ret();
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), (ulong)code);
        if (stream.Length > Size) throw new InvalidOperationException("sequence too long");
        stream.ToArray().CopyTo(new Span<byte>((void*)code, Size));
        fixed (NativeState* pointer = &state)
            ((delegate* unmanaged<NativeState*, void>)code)(pointer);
    }

    public void Dispose() => munmap(code, Size);
}
