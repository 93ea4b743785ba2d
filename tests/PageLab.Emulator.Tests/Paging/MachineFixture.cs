using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>A small machine: 64 MiB of memory, tables in the first 4 MiB, an MMU over them.</summary>
internal sealed class MachineFixture : IDisposable
{
    public const ulong User = PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit;
    public const ulong UserReadOnly = PageTableEntry.PresentBit | PageTableEntry.UserBit;
    public const ulong Supervisor = PageTableEntry.PresentBit | PageTableEntry.WritableBit;

    public MachineFixture(TlbConfig? tlb = null, ControlFlags flags = ControlFlags.LinuxDefault, bool fiveLevel = false)
    {
        Memory = new PhysicalMemory(64UL << 20);
        if (fiveLevel) flags |= ControlFlags.La57;
        Tables = new PageTableBuilder(Memory, 0, 4UL << 20, fiveLevel);
        Mmu = new Mmu(Memory, tlb ?? TlbConfig.Tiny, flags: flags);
        Mmu.WriteCr3(Tables.Root);
        Mmu.UserMode = true;
    }

    public PhysicalMemory Memory { get; }
    public PageTableBuilder Tables { get; }
    public Mmu Mmu { get; }

    public ulong Translate(ulong linear, AccessKind kind = AccessKind.Read)
    {
        var fault = Mmu.Translate(linear, kind, out ulong physical);
        Assert.False(fault.IsFault, $"unexpected {fault}");
        return physical;
    }

    public TranslationFault Fault(ulong linear, AccessKind kind)
    {
        var fault = Mmu.Translate(linear, kind, out _);
        Assert.True(fault.IsFault, $"expected a fault at 0x{linear:x} for {kind}");
        return fault;
    }

    public void Dispose() => Memory.Dispose();
}
