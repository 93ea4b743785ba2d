using Iced.Intel;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using CpuCore = PageLab.Emulator.Cpu.Cpu;

namespace PageLab.Emulator.Tests.Cpu;

/// <summary>
/// A small machine for CPU tests: 16 MiB of physical memory, 4-level page tables identity-mapping
/// the regions a test asks for, and a host that stops at the first SYSCALL and records faults.
/// </summary>
internal sealed class TestMachine : ICpuHost, IDisposable
{
    public const ulong CodeAddress = 0x40_0000;
    public const ulong DataAddress = 0x60_0000;
    public const ulong StackTop = 0x80_0000;
    const ulong TableArea = 0xE0_0000;

    readonly PageTableBuilder tables;

    public TestMachine(TlbConfig? tlb = null)
    {
        Memory = new PhysicalMemory(16UL << 20);
        Mmu = new Mmu(Memory, tlb ?? TlbConfig.Tiny);
        tables = new PageTableBuilder(Memory, TableArea, 1UL << 20);
        Mmu.WriteCr3(tables.Root);
        Clock = new VirtualClock();
        Cpu = new CpuCore(Mmu, this, Clock);
        Map(DataAddress, 16);
        Map(StackTop - 16 * PagingConstants.PageSize, 16);
        Cpu.Gpr(CpuCore.Rsp) = StackTop - 0x100;
    }

    public PhysicalMemory Memory { get; }
    public Mmu Mmu { get; }
    public VirtualClock Clock { get; }
    public CpuCore Cpu { get; }
    public List<TranslationFault> Faults { get; } = [];
    public int Syscalls { get; private set; }

    /// <summary>Decides whether a fault is resolved; default: not resolved.</summary>
    public Func<TranslationFault, bool>? OnFaultHandler { get; set; }

    /// <summary>Called on SYSCALL; default: stop the CPU.</summary>
    public Action<CpuCore>? OnSyscallHandler { get; set; }

    public void OnSyscall(CpuCore cpu)
    {
        Syscalls++;
        if (OnSyscallHandler != null) OnSyscallHandler(cpu);
        else cpu.RequestStop();
    }

    public bool OnFault(CpuCore cpu, in TranslationFault fault)
    {
        Faults.Add(fault);
        return OnFaultHandler?.Invoke(fault) ?? false;
    }

    /// <summary>Identity-maps <paramref name="pages"/> 4 KiB pages at <paramref name="linear"/>: present, writable, user.</summary>
    public void Map(ulong linear, int pages, bool present = true, bool writable = true)
    {
        for (int i = 0; i < pages; i++)
        {
            ulong page = linear + (ulong)i * PagingConstants.PageSize;
            SetPte(page, present, writable);
        }
    }

    /// <summary>Maps one user page to <paramref name="frame"/>, which may lie beyond memory.</summary>
    public void MapFrame(ulong page, ulong frame)
    {
        tables.Map(page, frame, PageSize.Size4K, PageTableEntry.PresentBit | PageTableEntry.UserBit);
        Mmu.Invlpg(page);
    }

    public void SetPte(ulong page, bool present, bool writable = true, bool executable = true)
    {
        ulong bits = PageTableEntry.UserBit | (writable ? PageTableEntry.WritableBit : 0) | (present ? PageTableEntry.PresentBit : 0)
            | (executable ? 0 : PageTableEntry.ExecuteDisableBit);
        tables.Map(page, page, PageSize.Size4K, bits);
        Mmu.Invlpg(page);
    }

    /// <summary>Assembles <paramref name="build"/> at <paramref name="address"/>, maps and loads it, and points RIP at it.</summary>
    public byte[] Load(Action<Assembler> build, ulong address = CodeAddress)
    {
        var assembler = new Assembler(64);
        build(assembler);
        var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        byte[] code = stream.ToArray();
        LoadBytes(code, address);
        return code;
    }

    public void LoadBytes(ReadOnlySpan<byte> code, ulong address = CodeAddress)
    {
        ulong first = address & ~PagingConstants.PageMask;
        ulong last = (address + (ulong)code.Length + 16) & ~PagingConstants.PageMask;
        Map(first, (int)((last - first) / PagingConstants.PageSize) + 1);
        Memory.Write(address, code);
        for (ulong page = first; page <= last; page += PagingConstants.PageSize)
            Mmu.NotifyFrameWritten(page >> PagingConstants.PageBits); // identity-mapped: the frame number is the page number
        Cpu.Rip = address;
    }

    /// <summary>Runs the loaded code until its SYSCALL (or another stop) and returns why it stopped.</summary>
    public CpuStopReason Run(long maxInstructions = 1_000_000) => Cpu.Run(maxInstructions);

    public ulong ReadData(ulong address, int size)
    {
        Memory.TryRead(address, size, out ulong value);
        return value;
    }

    public void Dispose()
    {
        Cpu.Dispose();
        Memory.Dispose();
    }
}
