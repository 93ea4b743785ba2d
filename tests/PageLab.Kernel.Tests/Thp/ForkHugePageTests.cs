using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>
/// fork with anonymous THPs as Linux 6.18 does it: copy_huge_pmd shares the THP write-protected,
/// do_huge_pmd_wp_page reuses it when exclusive and otherwise splits only the faulting PMD so that
/// one 4 KiB page is copied; split_huge_page and the deferred split queue deal with several mappers.
/// </summary>
public class ForkHugePageTests
{
    const ulong Base = 0x4000_0000; // 2 MiB aligned
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static void Switch(TestMachine m, AddressSpace space) => m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);

    /// <summary>A parent with <paramref name="regions"/> MADV_HUGEPAGE regions, each a THP with a distinct value in every page.</summary>
    static AddressSpace ParentWithThps(TestMachine m, int regions)
    {
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + (ulong)regions * Huge, ReadWrite, VmaFlags.HugePage, null, 0);
        for (ulong a = Base; a < Base + (ulong)regions * Huge; a += Page)
            Assert.True(m.GuestWrite64(a, Original(a), parent));
        Assert.Equal(regions, parent.HugeMappings);
        return parent;
    }

    static ulong Original(ulong address) => address ^ 0x0123_4567;

    static PageTableEntry Pmd(AddressSpace space, ulong region)
    {
        Assert.True(space.Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress));
        return space.Tables.Read(pmdAddress);
    }

    static string AnonHugePagesLine(AddressSpace space) =>
        space.FormatSmaps().Split('\n').Single(line => line.StartsWith("AnonHugePages:", StringComparison.Ordinal));

    [Fact]
    public void Fork_SharesTheThp_WriteProtectedInBoth_AndBothSmapsShowIt()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        ulong freeBeforeFork = m.Allocator.FreeFrames;

        var child = parent.Fork()!;

        var parentPmd = Pmd(parent, Base);
        var childPmd = Pmd(child, Base);
        Assert.True(AddressSpace.IsHugeLeaf(parentPmd) && AddressSpace.IsHugeLeaf(childPmd));
        Assert.Equal(parentPmd.FrameNumber, childPmd.FrameNumber);
        Assert.False(parentPmd.IsWritable);
        Assert.False(childPmd.IsWritable);
        Assert.False(childPmd.IsAccessed); // pmd_mkold
        ref var folio = ref m.Memory.Page(parentPmd.FrameNumber);
        Assert.Equal((2, 2), (folio.RefCount, folio.EntireMapCount));
        Assert.Equal(0, parent.Thp.Counters.SplitPmd);
        Assert.Equal(512, child.ResidentPages);
        // Only page tables were allocated: the child's PML4/PDPT/PD and its deposited PTE table.
        Assert.True(freeBeforeFork - m.Allocator.FreeFrames <= 4);
        Assert.Equal("AnonHugePages:      2048 kB", AnonHugePagesLine(parent));
        Assert.Equal("AnonHugePages:      2048 kB", AnonHugePagesLine(child));
        Assert.Contains("Shared_Dirty:       2048 kB", child.FormatSmaps(), StringComparison.Ordinal);
        Assert.Contains("AnonHugePages:      2048 kB", ProcMemory.MemInfo(m.Memory), StringComparison.Ordinal);
        Switch(m, child);
        Assert.Equal(Original(Base + 77 * Page), m.GuestRead64(Base + 77 * Page, child));
    }

    [Fact]
    public void ChildWrite_SplitsOnlyTheChildsPmd_AndCopiesOnePage()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        var child = parent.Fork()!;
        ulong head = Pmd(parent, Base).FrameNumber;
        ulong freeBeforeWrite = m.Allocator.FreeFrames;

        Switch(m, child);
        Assert.True(m.GuestWrite64(Base + 5 * Page, 0xC41D, child));

        Assert.Equal(1, parent.Thp.Counters.SplitPmd);
        Assert.Equal((1, 0), (parent.HugeMappings, child.HugeMappings));
        Assert.True(AddressSpace.IsHugeLeaf(Pmd(parent, Base)));
        var copied = child.Tables.ReadPte(Base + 5 * Page);
        Assert.True(copied.IsWritable);
        Assert.True(copied.FrameNumber < head || copied.FrameNumber >= head + 512);
        var shared = child.Tables.ReadPte(Base + 6 * Page);
        Assert.Equal((head + 6, false), (shared.FrameNumber, shared.IsWritable));
        Assert.Equal(freeBeforeWrite - 1, m.Allocator.FreeFrames); // the one copied page; the PTE table was deposited
        // The THP stays one folio: the parent's PMD and 511 of the child's PTEs map it.
        Assert.Equal((512, 1), (m.Memory.Page(head).RefCount, m.Memory.Page(head).EntireMapCount));
        Assert.Equal(1, m.Memory.PageMapCount(head + 5));
        Assert.Equal(2, m.Memory.PageMapCount(head + 6));
        Assert.Equal((0L, 0L), (parent.Thp.Counters.SplitPage, parent.Thp.Counters.DeferredSplitPage));
        Assert.Equal("AnonHugePages:         0 kB", AnonHugePagesLine(child));
        Assert.Equal("AnonHugePages:      2048 kB", AnonHugePagesLine(parent));
        Assert.Equal(512, child.ResidentPages);

        Assert.Equal(0xC41DUL, m.GuestRead64(Base + 5 * Page, child));
        Assert.Equal(Original(Base + 6 * Page), m.GuestRead64(Base + 6 * Page, child));
        Switch(m, parent);
        Assert.Equal(Original(Base + 5 * Page), m.GuestRead64(Base + 5 * Page, parent));
    }

    [Fact]
    public void WriteAfterTheChildExited_ReusesTheHugePage()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        var child = parent.Fork()!;
        ulong head = Pmd(parent, Base).FrameNumber;
        child.Destroy();
        Assert.Equal((1, 1), (m.Memory.Page(head).RefCount, m.Memory.Page(head).EntireMapCount));
        ulong freeBeforeWrite = m.Allocator.FreeFrames;

        Assert.Equal(FaultOutcome.WriteReused, parent.HandleFault(Base + 9 * Page, AccessKind.Write, present: true));

        var pmd = Pmd(parent, Base);
        Assert.True(AddressSpace.IsHugeLeaf(pmd));
        Assert.True(pmd.IsWritable);
        Assert.Equal(head, pmd.FrameNumber);
        Assert.Equal(freeBeforeWrite, m.Allocator.FreeFrames);
        Assert.Equal(0, parent.Thp.Counters.SplitPmd);
    }

    [Fact]
    public void ParentWriteWhileTheChildMapsPages_SplitsTheParentsPmdToo_AndEachSideKeepsItsData()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        var child = parent.Fork()!;
        ulong head = Pmd(parent, Base).FrameNumber;
        Switch(m, child);
        Assert.True(m.GuestWrite64(Base, 0xC0, child));
        Switch(m, parent);
        Assert.True(m.GuestWrite64(Base + Page, 0xB0, parent));

        Assert.Equal(2, parent.Thp.Counters.SplitPmd);
        Assert.Equal((0, 0), (parent.HugeMappings, child.HugeMappings));
        // Each side copied one page; 510 pages are still shared, the two copied-out pages mapped once.
        Assert.Equal((1, 1, 2), (m.Memory.PageMapCount(head), m.Memory.PageMapCount(head + 1), m.Memory.PageMapCount(head + 2)));
        Assert.Equal(1022, m.Memory.Page(head).RefCount);
        Assert.Equal(0xB0UL, m.GuestRead64(Base + Page, parent));
        Assert.Equal(Original(Base), m.GuestRead64(Base, parent));
        Switch(m, child);
        Assert.Equal(0xC0UL, m.GuestRead64(Base, child));
        Assert.Equal(Original(Base + Page), m.GuestRead64(Base + Page, child));
    }

    [Fact]
    public void SplitOfASharedThp_SplitsEveryPmdMappingIt_AndGivesEachPageItsMappersReferences()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        var child = parent.Fork()!;
        ulong head = Pmd(parent, Base).FrameNumber;
        Switch(m, child);
        Assert.True(m.GuestWrite64(Base + 3 * Page, 0xC3, child));

        Assert.True(m.Memory.TrySplitFolio(head));

        Assert.Equal((2L, 1L), (parent.Thp.Counters.SplitPmd, parent.Thp.Counters.SplitPage));
        Assert.Equal(0, parent.HugeMappings);
        for (ulong i = 0; i < 512; i++)
        {
            ref var page = ref m.Memory.Page(head + i);
            Assert.Equal(0, page.Order);
            int mappers = i == 3 ? 1 : 2;
            Assert.Equal((mappers, mappers), (page.MapCount, page.RefCount));
        }
        Assert.Equal(0xC3UL, m.GuestRead64(Base + 3 * Page, child));
        Switch(m, parent);
        Assert.Equal(Original(Base + 3 * Page), m.GuestRead64(Base + 3 * Page, parent));
        // The parent is the only mapper of page 3 now: its write reuses it.
        Assert.Equal(FaultOutcome.WriteReused, parent.HandleFault(Base + 3 * Page, AccessKind.Write, present: true));
    }

    [Fact]
    public void ThpLeftPartlyMappedByAForkedChild_IsQueued_AndReclaimFreesItsUnmappedHalf()
    {
        using var m = new TestMachine();
        var parent = ParentWithThps(m, 1);
        var child = parent.Fork()!;
        ulong head = Pmd(parent, Base).FrameNumber;
        Switch(m, child);
        Assert.True(m.GuestWrite64(Base, 0xC0, child)); // the child's PMD is split: it maps the pages by PTEs
        child.Unmap(Base + Huge / 2, Base + Huge);
        // Still mapped whole by the parent's PMD: not partly mapped.
        Assert.Empty(m.Memory.DeferredSplitQueue);

        Switch(m, parent);
        parent.Unmap(Base, Base + Huge);
        Assert.Equal([head], m.Memory.DeferredSplitQueue);
        Assert.Equal(1, parent.Thp.Counters.DeferredSplitPage);
        ulong freeBeforeReclaim = m.Allocator.FreeFrames;

        // The child maps pages 1..255 (page 0 was copied): splitting frees page 0 and the upper half.
        Assert.Equal(257UL, m.Allocator.Reclaim(null, 1, null, null));
        Assert.Equal(freeBeforeReclaim + 257, m.Allocator.FreeFrames);
        Assert.Equal(1, parent.Thp.Counters.SplitPage);
        Switch(m, child);
        Assert.Equal(0xC0UL, m.GuestRead64(Base, child));
        Assert.Equal(Original(Base + 100 * Page), m.GuestRead64(Base + 100 * Page, child));
    }

    [Fact]
    public void ForkWithThps_WritesInBoth_BothExit_ReturnsEveryFrame()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var parent = ParentWithThps(m, 4);
        var child = parent.Fork()!;

        // The child writes into regions 0 and 1 and drops half of region 3; the parent writes into 1 and 2.
        Switch(m, child);
        for (ulong a = Base; a < Base + 2 * Huge; a += 7 * Page)
            Assert.True(m.GuestWrite64(a, ~a, child));
        child.Unmap(Base + 3 * Huge, Base + 3 * Huge + Huge / 2);
        Switch(m, parent);
        for (ulong a = Base + Huge; a < Base + 3 * Huge; a += 5 * Page)
            Assert.True(m.GuestWrite64(a, a + 1, parent));

        for (ulong a = Base; a < Base + 4 * Huge; a += Page)
            Assert.Equal(a >= Base + Huge && a < Base + 3 * Huge && (a - Base - Huge) % (5 * Page) == 0 ? a + 1 : Original(a), m.GuestRead64(a, parent));
        Switch(m, child);
        for (ulong a = Base; a < Base + 3 * Huge; a += Page)
            Assert.Equal(a < Base + 2 * Huge && (a - Base) % (7 * Page) == 0 ? ~a : Original(a), m.GuestRead64(a, child));

        Switch(m, m.Space);
        child.Destroy();
        parent.Destroy();

        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
        Assert.Empty(m.Memory.DeferredSplitQueue);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomForksWritesZapsAndSplits_KeepEveryFolioCountedAndEverySideItsData(int seed)
    {
        const int Regions = 3;
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var random = new Random(seed);
        var spaces = new List<AddressSpace> { ParentWithThps(m, Regions) };
        // What each address space must read at the start of each page: Original(a), 0 once zapped, or its own writes.
        var expected = new List<Dictionary<ulong, ulong>> { new() };
        ulong Expect(int who, ulong page) => expected[who].TryGetValue(page, out ulong value) ? value : Original(page);
        ulong RandomPage() => Base + (ulong)random.Next(Regions * 512) * Page;

        for (int step = 0; step < 300; step++)
        {
            int who = random.Next(spaces.Count);
            var space = spaces[who];
            Switch(m, space);
            switch (random.Next(10))
            {
                case < 5:
                    ulong page = RandomPage(), value = ((ulong)step << 20) + (ulong)who;
                    Assert.True(m.GuestWrite64(page, value, space));
                    expected[who][page] = value;
                    break;
                case 5 when spaces.Count < 4:
                    spaces.Add(space.Fork()!);
                    expected.Add(new Dictionary<ulong, ulong>(expected[who]));
                    break;
                case 6:
                    ulong start = RandomPage(), end = Math.Min(start + (ulong)random.Next(1, 64) * Page, Base + Regions * Huge);
                    space.ZapPages(start, end);
                    for (ulong a = start; a < end; a += Page)
                        expected[who][a] = 0;
                    break;
                case 7:
                    ulong from = RandomPage();
                    Assert.True(space.Protect(from, from + 8 * Page, Protection.Read));
                    Assert.True(space.Protect(from, from + 8 * Page, ReadWrite));
                    break;
                case 8 when spaces.Count > 1:
                    space.Destroy();
                    spaces.RemoveAt(who);
                    expected.RemoveAt(who);
                    break;
                default:
                    m.Allocator.Reclaim(null, 64, null, null);
                    break;
            }
            AssertEveryFolioCounted(m);
        }

        for (int who = 0; who < spaces.Count; who++)
        {
            Switch(m, spaces[who]);
            for (ulong page = Base; page < Base + Regions * Huge; page += Page)
                Assert.Equal(Expect(who, page), m.GuestRead64(page, spaces[who]));
        }
        // The walk went through every path: PMD splits, partly unmapped THPs queued and split.
        var counters = m.Space.Thp.Counters;
        Assert.True(counters.SplitPmd > 0 && counters.DeferredSplitPage > 0 && counters.SplitPage > 0, $"{counters.SplitPmd} {counters.DeferredSplitPage} {counters.SplitPage}");
        Switch(m, m.Space);
        foreach (var space in spaces)
            space.Destroy();
        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
        Assert.Empty(m.Memory.DeferredSplitQueue);
    }

    /// <summary>Between operations every reference to an anonymous folio is a mapping: refcount equals mapcount.</summary>
    static void AssertEveryFolioCounted(TestMachine m)
    {
        for (ulong frame = 1; frame < m.Allocator.FrameCount; frame++)
        {
            ref var page = ref m.Allocator[frame];
            if (page.State == PageState.Head && page.Use == FrameUse.Anonymous)
                Assert.Equal(m.Memory.FolioMapCount(frame), page.RefCount);
        }
    }
}
