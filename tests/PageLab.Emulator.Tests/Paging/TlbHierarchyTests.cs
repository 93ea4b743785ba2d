using PageLab.Emulator.Paging;
using static PageLab.Emulator.Tests.Paging.MachineFixture;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>
/// How the levels of the TLB hierarchy fill one another, what the observer is told of a lookup, and the shapes and
/// operand sizes the MMU refuses (with an exception, before anything is looked up or allocated).
/// </summary>
public sealed class TlbHierarchyTests
{
    sealed class LookupRecorder : IPagingObserver
    {
        public List<(int Level, AccessKind Kind, bool Hit)> Lookups { get; } = [];
        public void OnTlbLookup(int level, ulong linear, AccessKind kind, bool hit, PageSize size) => Lookups.Add((level, kind, hit));
        public void OnWalk(in WalkRecord walk) { }
        public void OnInvalidation(InvalidationKind kind, ulong linear, ushort pcid) { }
    }

    [Fact]
    public void HitInALaterLevel_FillsAnEarlierLevelWithTheWholePage_WhereTheLaterLevelHoldsAPiece()
    {
        // Zen 4: the L1 ITLB holds 1G pages, the L2 ITLB only 2M pieces of them.
        using var m = new MachineFixture(TlbConfig.AmdZen4);
        const ulong giant = 0x0000_0040_0000_0000;
        m.Tables.Map(giant, 0, PageSize.Size1G, User);
        const ulong others = 0x0000_7f00_0000_0000;
        for (int i = 0; i < 64; i++) m.Tables.Map(others + (ulong)i * 0x1000, 0x0100_0000, PageSize.Size4K, User);
        m.Translate(giant, AccessKind.Fetch);
        for (int i = 0; i < 64; i++) m.Translate(others + (ulong)i * 0x1000, AccessKind.Fetch); // evicts it from the L1 ITLB (LRU)

        m.Translate(giant, AccessKind.Fetch); // L1 misses, L2 hits its 2M piece
        long walks = m.Mmu.Counters.Walks;
        var l1 = m.Mmu.Counters.Levels[0];
        long oneGigabyteHits = l1.HitsBySize[(int)PageSize.Size1G];
        Assert.Equal(0x0040_0000UL, m.Translate(giant + 0x0040_0000, AccessKind.Fetch)); // another 2M region of the page

        Assert.Equal(walks, m.Mmu.Counters.Walks);
        Assert.Equal(oneGigabyteHits + 1, l1.HitsBySize[(int)PageSize.Size1G]);
    }

    [Fact]
    public void WriteThroughACleanEntry_IsReportedAsTheMissItIsCounted()
    {
        using var m = new MachineFixture();
        m.Tables.Map(0x0000_7f12_3456_7000, 0x0100_0000, PageSize.Size4K, User);
        m.Translate(0x0000_7f12_3456_7000, AccessKind.Read);
        var recorder = new LookupRecorder();
        m.Mmu.Observer = recorder;
        long misses = m.Mmu.Counters.Levels[1].Misses;

        m.Translate(0x0000_7f12_3456_7000, AccessKind.Write);
        Assert.Equal(misses + 1, m.Mmu.Counters.Levels[1].Misses);
        Assert.Equal((1, AccessKind.Write, false), recorder.Lookups[0]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(-1)]
    public void ReadAndWrite_RefuseOperandSizesOtherThan1248_BeforeAnyLookup(int size)
    {
        using var m = new MachineFixture();
        const ulong lastBytesOfAPage = 0x0000_7f12_3456_7ffc; // a 16-byte access here would cross into the next page
        m.Tables.Map(lastBytesOfAPage & ~0xFFFUL, 0x0100_0000, PageSize.Size4K, User);
        m.Tables.Map((lastBytesOfAPage & ~0xFFFUL) + 0x1000, 0x0100_1000, PageSize.Size4K, User);

        Assert.Throws<ArgumentOutOfRangeException>(() => m.Mmu.Read(lastBytesOfAPage, size, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Mmu.Write(lastBytesOfAPage, size, 0x1122334455667788));
        Assert.Equal(0, m.Mmu.Counters.Walks);
        Assert.Equal(0, m.Mmu.Counters.Levels[1].Lookups);
    }

    [Fact]
    public void AbsurdShapes_AreRefusedWhenTheMmuIsBuilt()
    {
        using var memory = new PageLab.Emulator.Memory.PhysicalMemory(16UL << 20);
        var tiny = TlbConfig.Tiny;
        Assert.Throws<ArgumentOutOfRangeException>(() => new Mmu(memory, tiny with { PagingStructureCaches = new PagingStructureCacheConfig(2, 2, 2, -3) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Mmu(memory, tiny with { PagingStructureCaches = new PagingStructureCacheConfig(2, 2, 2, 1 << 30) }));
        var huge = new TlbLevelConfig("L1d", TlbLevelKind.Data, TlbReplacement.Lru, new TlbArrayConfig(1 << 25, 128, PageSize.Size4K));
        Assert.Throws<ArgumentException>(() => new Mmu(memory, tiny with { Levels = [tiny.Levels[0], huge, tiny.Levels[2]] }));
    }

    [Fact]
    public void Probe_ReachesNoChunkOfPhysicalMemory()
    {
        using var m = new MachineFixture();
        const ulong linear = 0x0000_7f12_3456_7000;
        m.Tables.Map(linear, 40UL << 20, PageSize.Size4K, User); // a frame in a chunk nothing has touched
        ulong backed = m.Memory.BackedBytes;

        var walk = m.Mmu.Probe(linear + 8);
        Assert.False(walk.Fault.IsFault);
        Assert.Equal((40UL << 20) + 8, walk.Physical);
        Assert.Equal(backed, m.Memory.BackedBytes);
    }

    [Fact]
    public void CrossingReadThatFaultsOnItsSecondPage_GivesNoPartOfTheValue()
    {
        using var m = new MachineFixture();
        const ulong lastBytesOfAPage = 0x0000_7f12_3456_7ffc; // the next page is not mapped
        m.Tables.Map(lastBytesOfAPage & ~0xFFFUL, 0x0100_0000, PageSize.Size4K, User);
        m.Memory.TryWrite64(0x0100_0ff8, 0xdeadbeef_00000000);

        var fault = m.Mmu.Read(lastBytesOfAPage, 8, out ulong value);
        Assert.True(fault.IsFault);
        Assert.Equal(0UL, value);
    }
}
