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

    ulong nextTable = TableArea;
    readonly ulong pml4;

    public TestMachine(TlbConfig? tlb = null)
    {
        Memory = new PhysicalMemory(16UL << 20);
        Mmu = new Mmu(Memory, tlb ?? TlbConfig.Tiny);
        pml4 = AllocateTable();
        Mmu.WriteCr3(pml4);
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

    ulong AllocateTable()
    {
        ulong table = nextTable;
        nextTable += PagingConstants.PageSize;
        Memory.Span(table, (int)PagingConstants.PageSize).Clear();
        return table;
    }

    /// <summary>Physical address of the PTE mapping <paramref name="linear"/>, creating the tables above it.</summary>
    public ulong PteAddress(ulong linear)
    {
        ulong table = pml4;
        for (int level = 4; level > 1; level--)
        {
            int shift = PagingConstants.PageBits + (level - 1) * PagingConstants.LevelBits;
            ulong entryAddress = table + ((linear >> shift) & 511) * 8;
            Memory.TryRead64(entryAddress, out ulong raw);
            var entry = new PageTableEntry(raw);
            if (!entry.IsPresent)
            {
                entry = PageTableEntry.Table(AllocateTable());
                Memory.TryWrite64(entryAddress, entry.Raw);
            }
            table = entry.Address;
        }
        return table + ((linear >> PagingConstants.PageBits) & 511) * 8;
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

    public void SetPte(ulong page, bool present, bool writable = true)
    {
        ulong raw = page | PageTableEntry.UserBit | (writable ? PageTableEntry.WritableBit : 0) | (present ? PageTableEntry.PresentBit : 0);
        Memory.TryWrite64(PteAddress(page), raw);
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
        Cpu.Rip = address;
    }

    /// <summary>Runs the loaded code until its SYSCALL (or another stop) and returns why it stopped.</summary>
    public CpuStopReason Run(long maxInstructions = 1_000_000) => Cpu.Run(maxInstructions);

    public ulong ReadData(ulong address, int size)
    {
        Memory.TryRead(address, size, out ulong value);
        return value;
    }

    public void Dispose() => Memory.Dispose();
}
