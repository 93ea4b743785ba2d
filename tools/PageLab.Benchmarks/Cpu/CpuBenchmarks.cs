using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Iced.Intel;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using static Iced.Intel.AssemblerRegisters;
using CpuCore = PageLab.Emulator.Cpu.Cpu;

namespace PageLab.Benchmarks.Cpu;

/// <summary>
/// Interpreter speed on CPU-bound guest loops with the full TLB model on (Golden Cove preset):
/// every fetch and data access is counted by the modeled TLBs. Each benchmark retires
/// <see cref="Instructions"/> guest instructions; MIPS = Instructions / mean time / 10^6.
/// The native benchmark runs the same CRC-32 loop on the host, for the baseline. On this shared
/// machine read the ThreadCpuTime job (timed by the benchmark thread's CPU time).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ThreadCpuTimeConfig))]
public unsafe partial class CpuBenchmarks : ICpuHost
{
    /// <summary>Guest instructions per benchmark invocation.</summary>
    public const long Instructions = 20_000_000;
    const ulong CodeAddress = 0x40_0000, TableAddress = 0x60_0000, DataAddress = 0x61_0000;
    const int DataBytes = 4096;
    /// <summary>Instructions per byte of the CRC-32 inner loop.</summary>
    const int CrcLoopInstructions = 8;

    CpuCore registerLoop = null!;
    CpuCore crcLoop = null!;
    nint native;

    public void OnSyscall(CpuCore cpu) => cpu.RequestStop();

    public bool OnFault(CpuCore cpu, in TranslationFault fault) => false;

    [GlobalSetup]
    public void Setup()
    {
        registerLoop = CreateCpu(RegisterLoop);
        crcLoop = CreateCpu(CrcLoop);
        native = NativeCode.Allocate(Assemble(a =>
        {
            // rdi = table, rsi = data, rdx = outer iterations; the same inner loop, then return.
            var outer = a.CreateLabel();
            a.mov(rcx, rdx);
            a.xor(eax, eax);
            a.Label(ref outer);
            CrcInnerLoop(a);
            a.dec(rcx);
            a.jnz(outer);
            a.ret();
        }, 0));
    }

    /// <summary>A machine of its own (16 MiB, identity-mapped code and data pages) running <paramref name="program"/>.</summary>
    CpuCore CreateCpu(Action<Assembler> program)
    {
        var memory = new PhysicalMemory(16UL << 20);
        var tables = new PageTableBuilder(memory, 0x10_0000, 1UL << 20);
        const ulong bits = PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit;
        for (ulong page = CodeAddress; page < DataAddress + 0x2000; page += PagingConstants.PageSize)
            tables.Map(page, page, PageSize.Size4K, bits);
        var mmu = new Mmu(memory, TlbConfig.IntelGoldenCove);
        mmu.WriteCr3(tables.Root);
        var cpu = new CpuCore(mmu, this, new VirtualClock());
        byte[] code = Assemble(program, CodeAddress);
        memory.Write(CodeAddress, code);
        for (int i = 0; i < 256; i++) memory.TryWrite(TableAddress + (ulong)i * 4, 4, (ulong)i * 0x9E37_79B9u);
        for (int i = 0; i < DataBytes; i++) memory.TryWrite(DataAddress + (ulong)i, 1, (ulong)(i * 7));
        return cpu;
    }

    static byte[] Assemble(Action<Assembler> build, ulong address)
    {
        var assembler = new Assembler(64);
        build(assembler);
        var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        return stream.ToArray();
    }

    /// <summary>ALU and branch only: six instructions per iteration.</summary>
    static void RegisterLoop(Assembler a)
    {
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.add(rax, rcx);
        a.xor(rdx, rax);
        a.rol(rdx, 7);
        a.inc(rcx);
        a.cmp(rcx, rbx);
        a.jne(loop);
    }

    /// <summary>Table-driven CRC-32 over a 4 KiB buffer, forever: two loads per byte.</summary>
    static void CrcLoop(Assembler a)
    {
        var outer = a.CreateLabel();
        a.mov(rdi, TableAddress);
        a.mov(rsi, DataAddress);
        a.xor(eax, eax);
        a.Label(ref outer);
        CrcInnerLoop(a);
        a.jmp(outer);
    }

    static void CrcInnerLoop(Assembler a)
    {
        var inner = a.CreateLabel();
        a.xor(edx, edx);
        a.Label(ref inner);
        a.movzx(r8d, __byte_ptr[rsi + rdx]);
        a.xor(r8d, eax);
        a.movzx(r8d, r8b);
        a.shr(eax, 8);
        a.xor(eax, __dword_ptr[rdi + r8 * 4]);
        a.inc(rdx);
        a.cmp(rdx, DataBytes);
        a.jne(inner);
    }

    static CpuStopReason RunFrom(CpuCore cpu)
    {
        cpu.Rip = CodeAddress;
        cpu.Gpr(3) = ulong.MaxValue; // the register loop's bound: never reached
        return cpu.Run(Instructions);
    }

    [Benchmark]
    public CpuStopReason RegisterLoopInterpreted() => RunFrom(registerLoop);

    [Benchmark]
    public CpuStopReason Crc32LoopInterpreted() => RunFrom(crcLoop);

    /// <summary>The CRC-32 loop natively for about as many instructions: the host's speed.</summary>
    [Benchmark(Baseline = true)]
    public void Crc32LoopNative()
    {
        var memory = crcLoop.Mmu.Memory;
        var table = memory.PointerTo(TableAddress);
        var data = memory.PointerTo(DataAddress);
        ((delegate* unmanaged<byte*, byte*, long, void>)native)(table, data, Instructions / (CrcLoopInstructions * DataBytes));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeCode.Free(native);
        registerLoop.Mmu.Memory.Dispose();
        crcLoop.Mmu.Memory.Dispose();
    }

    /// <summary>Executable host memory for the native baseline.</summary>
    static partial class NativeCode
    {
        const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
        const int Size = 4096;

        [LibraryImport("libc")]
        private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

        [LibraryImport("libc")]
        private static partial int munmap(nint address, nuint length);

        public static nint Allocate(byte[] code)
        {
            nint pointer = mmap(0, Size, ProtRead | ProtWrite | ProtExec, MapPrivate | MapAnonymous, -1, 0);
            if (pointer == -1) throw new InvalidOperationException("mmap failed");
            code.CopyTo(new Span<byte>((void*)pointer, Size));
            return pointer;
        }

        public static void Free(nint pointer) => munmap(pointer, Size);
    }
}
