using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>The table builder behind tests, benchmarks and inspection refuses what would build wrong tables silently.</summary>
public sealed class PageTableBuilderTests
{
    const ulong User = PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit;

    [Fact]
    public void TableRegion_MustBeAlignedAndInsideMemory()
    {
        using var memory = new PhysicalMemory(16UL << 20);
        Assert.Throws<ArgumentException>(() => new PageTableBuilder(memory, (8UL << 20) + 0x800, 1UL << 20));
        Assert.Throws<ArgumentException>(() => new PageTableBuilder(memory, 15UL << 20, 2UL << 20));
    }

    [Fact]
    public void Map_RefusesAFrameNotAlignedToItsPageSize()
    {
        using var memory = new PhysicalMemory(16UL << 20);
        var tables = new PageTableBuilder(memory, 0, 1UL << 20);
        Assert.Throws<ArgumentException>(() => tables.Map(0x4000_0000, 0x40_1000, PageSize.Size2M, User)); // bit 12 would be PAT
        Assert.Throws<ArgumentException>(() => tables.Map(0x4000_0000, 0x10_0123, PageSize.Size4K, User));
    }

    [Fact]
    public void EntryAddress_RefusesALevelTheTablesDoNotHave()
    {
        using var memory = new PhysicalMemory(16UL << 20);
        var tables = new PageTableBuilder(memory, 0, 1UL << 20);
        Assert.Throws<ArgumentOutOfRangeException>(() => tables.EntryAddress(0x4000_0000, PagingLevel.Pml5));
    }

    [Fact]
    public void AnEntryPointingBeyondMemory_IsAnError_NotASilentNoOp()
    {
        using var memory = new PhysicalMemory(16UL << 20);
        var tables = new PageTableBuilder(memory, 0, 1UL << 20);
        ulong pml4e = tables.EntryAddress(0x4000_0000, PagingLevel.Pml4);
        tables.Write(pml4e, new PageTableEntry((8UL << 30) | User)); // a PDPT at 8 GiB
        Assert.Throws<InvalidOperationException>(() => tables.Map(0x4000_0000, 0x10_0000, PageSize.Size4K, User));
    }
}
