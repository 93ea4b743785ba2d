using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>
/// Reclaim on the real page tables and TLB: the accessed bits of the guest's PTEs and huge PMDs decide
/// which pages get a second chance, as folio_referenced and folio_check_references decide in Linux 6.18,
/// and unreferenced THPs are swapped whole into one swap cluster or split and swapped page by page.
/// </summary>
public class ReclaimAgingTests
{
    const ulong Base = 0x4000_0000; // 2 MiB aligned
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;
    const int HugePages = (int)(Huge / Page);
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static ulong Pattern(ulong address) => address * 0x9E37_79B9_7F4A_7C15UL ^ 0x5A5A;

    static TestMachine WithSwap(ulong swapBytes = 16UL << 20)
    {
        var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, swapBytes);
        return m;
    }

    static PageTableEntry Pmd(TestMachine m, ulong region)
    {
        Assert.True(m.Space.Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress));
        return m.Space.Tables.Read(pmdAddress);
    }

    /// <summary>Faults in a THP at <see cref="Base"/> (a MADV_HUGEPAGE VMA under the default `madvise` setting) and fills every page.</summary>
    static ulong FaultThp(TestMachine m)
    {
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.HugePage, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page)
        {
            Assert.True(m.GuestWrite64(a, Pattern(a)));
            Assert.True(m.GuestWrite64(a + Page - 8, ~Pattern(a)));
        }
        var pmd = Pmd(m, Base);
        Assert.True(pmd.IsLargePage);
        return pmd.FrameNumber;
    }

    static void AssertThpDataIntact(TestMachine m)
    {
        for (ulong a = Base; a < Base + Huge; a += Page)
        {
            Assert.Equal(Pattern(a), m.GuestRead64(a));
            Assert.Equal(~Pattern(a), m.GuestRead64(a + Page - 8));
        }
    }

    [Fact]
    public void PageAccessedSinceTheLastScan_SurvivesReclaim_WhileAnUnaccessedOneIsEvicted_AndIsActivatedOnTheNextAccess()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + 2 * Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 1));
        Assert.True(m.GuestWrite64(Base + Page, 2));
        // MADV_COLD: both PTEs old and flushed, both pages at the old end of the inactive list (the second one last).
        Assert.Null(Madvise.Apply(m.Space, Base, 2 * Page, MadviseAdvice.Cold, KernelAbi.Proposal).Error);
        Assert.False(m.Space.Tables.ReadPte(Base).IsAccessed);
        // The guest touches the first page: its translation was flushed, so the access walks and sets A.
        Assert.Equal(1UL, m.GuestRead64(Base));
        Assert.True(m.Space.Tables.ReadPte(Base).IsAccessed);

        // The pass looks at both pages and wants both, but takes only the one not accessed.
        Assert.Equal(1UL, m.Allocator.Reclaim(null, 2, null, null));

        Assert.True(SwapPte.IsSwapEntry(m.Space.Tables.ReadPte(Base + Page).Raw));
        var hot = m.Space.Tables.ReadPte(Base);
        Assert.True(hot.IsPresent);
        Assert.False(hot.IsAccessed);
        Assert.True(m.Memory.Page(hot.FrameNumber).IsReferenced);
        Assert.False(m.Memory.Page(hot.FrameNumber).IsActive);

        // Accessed again before the next look: referenced twice, it is activated instead of evicted.
        m.Memory.Guest.FlushNonGlobal();
        Assert.Equal(1UL, m.GuestRead64(Base));
        Assert.Equal(0UL, m.Allocator.Reclaim(null, 1, null, null));
        Assert.True(m.Memory.Page(hot.FrameNumber).IsActive);
        Assert.Equal(1UL, m.Allocator.Counters.PageActivate);
        Assert.Equal(1UL, m.Allocator.LruPages(LruList.ActiveAnon));
        Assert.Equal(2UL, m.GuestRead64(Base + Page));
    }

    [Fact]
    public void ReferenceCheck_ClearsTheAccessedBitInThePte_WithoutFlushingTheTlb_AsX86LinuxDoes()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 7));
        ulong frame = m.Space.Tables.ReadPte(Base).FrameNumber;
        long invlpgBefore = m.Mmu.Counters.Invlpg;

        Assert.Equal(new PageReferences(Mappings: 1, Young: 1, Executable: false), m.Space.TestAndClearYoung(Base / Page, frame));

        Assert.False(m.Space.Tables.ReadPte(Base).IsAccessed);
        Assert.True(m.Space.Tables.ReadPte(Base).IsDirty);
        Assert.Equal(invlpgBefore, m.Mmu.Counters.Invlpg);
        // The translation is still cached: the access hits the TLB and does not set A again (Linux accepts this).
        long walks = m.Mmu.Counters.Walks;
        Assert.Equal(7UL, m.GuestRead64(Base));
        Assert.Equal(walks, m.Mmu.Counters.Walks);
        Assert.Equal(new PageReferences(1, 0, false), m.Space.TestAndClearYoung(Base / Page, frame));
        // After a context switch the next access walks and sets A: the page shows as referenced again.
        m.Memory.Guest.FlushNonGlobal();
        Assert.Equal(7UL, m.GuestRead64(Base));
        Assert.True(m.Space.Tables.ReadPte(Base).IsAccessed);
    }

    [Fact]
    public void ReferenceCheck_OnAHugePmd_ClearsAccessed_AndFlushesTheRange_SoTheNextAccessSetsItAgain()
    {
        using var m = WithSwap();
        ulong head = FaultThp(m);
        Assert.True(Pmd(m, Base).IsAccessed);

        Assert.Equal(new PageReferences(1, 1, false), m.Space.TestAndClearYoung(Base / Page, head));

        Assert.False(Pmd(m, Base).IsAccessed);
        Assert.Equal(Pattern(Base + 5 * Page), m.GuestRead64(Base + 5 * Page));
        Assert.True(Pmd(m, Base).IsAccessed, "pmdp_clear_flush_young flushed the range: the read walked and set A");
    }

    [Fact]
    public void ReclaimLook_AtAYoungThp_CountsItsPagesScanned_KeepsIt_AndChargesOneMappingVisit()
    {
        using var m = WithSwap();
        ulong head = FaultThp(m);
        // Another 512 pages of page cache would be scanned first; with none, the first pass that scans
        // at least one page (priority 9: 512 >> 9) looks at the THP alone.
        var cost = new CostLedger();
        Assert.Equal((ulong)HugePages, m.Allocator.Reclaim(null, 1, null, cost));
        // Looked at twice in the call: young (kept, A cleared, PG_referenced), then unreferenced: swapped.
        Assert.Equal(2 * (ulong)HugePages, m.Allocator.Counters.PageScanDirect);
        Assert.Equal(2 * MmCosts.ReferenceCheckPerMappingNs, cost[MmCostKind.ReclaimReferenceCheck]);
        Assert.Equal(PageState.FreeHead, m.Allocator[head].State);
    }

    [Fact]
    public void UnreferencedThp_IsSwappedWholeIntoOneFreeCluster_AndComesBackPageByPage()
    {
        using var m = WithSwap();
        ulong freeBefore = m.Allocator.FreeFrames;
        int tablesBefore = m.Space.Tables.TableFrames;
        ulong head = FaultThp(m);
        Assert.Equal((ulong)HugePages, m.Allocator.LruPages(LruList.InactiveAnon));
        var cost = new CostLedger();

        // The passes of one call look at it twice: young (kept, A cleared), then unreferenced: swapped.
        Assert.Equal((ulong)HugePages, m.Allocator.Reclaim(null, 1, null, cost));

        var counters = m.Allocator.Counters;
        Assert.Equal(1UL, counters.ThpSwapOut);
        Assert.Equal(0UL, counters.ThpSwapOutFallback);
        Assert.Equal((ulong)HugePages, counters.SwapOut);
        Assert.Equal(MmCosts.SwapOutClusterNs, cost[MmCostKind.SwapOut]);
        // The THP is free again; only the page tables remain (the PTE table is the deposited one, now full of swap entries).
        Assert.Equal(freeBefore - (ulong)(m.Space.Tables.TableFrames - tablesBefore), m.Allocator.FreeFrames);
        Assert.Equal(PageState.FreeHead, m.Allocator[head].State);
        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Equal(HugePages, m.Space.SwappedPages);
        Assert.Equal(0, m.Space.ResidentPages);
        // One swap entry per 4 KiB page, consecutive slots of one aligned cluster.
        ulong first = new SwapPte(m.Space.Tables.ReadPte(Base).Raw).Offset;
        Assert.Equal(0UL, first % SwapDevice.ClusterSlots);
        for (int i = 0; i < HugePages; i++)
        {
            var pte = m.Space.Tables.ReadPte(Base + (ulong)i * Page);
            Assert.True(SwapPte.IsSwapEntry(pte.Raw));
            Assert.Equal(first + (ulong)i, new SwapPte(pte.Raw).Offset);
        }

        AssertThpDataIntact(m);
        Assert.Equal((ulong)HugePages, counters.SwapIn); // Linux 6.18 swaps anonymous memory in per 4 KiB page here
        Assert.Equal(0UL, m.Allocator.Swap!.UsedSlots);
        Assert.Equal(HugePages, m.Space.ResidentPages);
        m.Space.Unmap(Base, Base + Huge);
        Assert.Equal(freeBefore - (ulong)(m.Space.Tables.TableFrames - tablesBefore), m.Allocator.FreeFrames);
    }

    [Fact]
    public void UnreferencedThp_WithoutAFreeCluster_IsSplit_AndItsPagesSwappedOneByOne()
    {
        // 768 slots: cluster 0 holds the header, cluster 1 has only 256 slots: room for 512 pages but no free cluster.
        using var m = WithSwap(swapBytes: 3UL << 20);
        Assert.Equal(0, m.Allocator.Swap!.FreeClusters);
        ulong freeBefore = m.Allocator.FreeFrames;
        int tablesBefore = m.Space.Tables.TableFrames;
        FaultThp(m);
        var cost = new CostLedger();

        Assert.Equal((ulong)HugePages, m.Allocator.Reclaim(null, 1, null, cost));

        var counters = m.Allocator.Counters;
        Assert.Equal(0UL, counters.ThpSwapOut);
        Assert.Equal(1UL, counters.ThpSwapOutFallback);
        Assert.Equal(1, m.Memory.Thp.Counters.SplitPage);
        Assert.Equal((ulong)HugePages, counters.SwapOut);
        Assert.Equal(HugePages * MmCosts.SwapOutPerPageNs, cost[MmCostKind.SwapOut]);
        Assert.Equal(HugePages, m.Space.SwappedPages);
        Assert.Equal(freeBefore - (ulong)(m.Space.Tables.TableFrames - tablesBefore), m.Allocator.FreeFrames);

        AssertThpDataIntact(m);
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
        m.Space.Unmap(Base, Base + Huge);
        Assert.Equal(freeBefore - (ulong)(m.Space.Tables.TableFrames - tablesBefore), m.Allocator.FreeFrames);
    }

    [Fact]
    public void Thp_SharedWithAForkedChild_IsNotReclaimed_AndBothSidesKeepTheirData()
    {
        // Until THPs shared at fork are split correctly (the forkthp work), reclaim must leave them mapped.
        using var m = WithSwap();
        FaultThp(m);
        var child = m.Space.Fork()!;

        Assert.Equal(0UL, m.ReclaimPages(HugePages));

        Assert.Equal(0UL, m.Allocator.Counters.ThpSwapOut + m.Allocator.Counters.ThpSwapOutFallback);
        AssertThpDataIntact(m);
        m.Memory.Guest.SwitchAddressSpace(child.Tables.Cr3);
        for (ulong a = Base; a < Base + Huge; a += 64 * Page)
            Assert.Equal(Pattern(a), m.GuestRead64(a, child));
        m.Memory.Guest.SwitchAddressSpace(m.Space.Tables.Cr3);
        child.Destroy();
    }

    [Fact]
    public void PageOut_OfAWholeThp_SwapsItIntoOneCluster_WithoutSplittingIt()
    {
        using var m = WithSwap();
        FaultThp(m);
        var cost = new CostLedger();
        m.Space.CostSink = cost;

        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.PageOut, KernelAbi.Proposal).Error);

        Assert.Equal(1UL, m.Allocator.Counters.ThpSwapOut);
        Assert.Equal(0, m.Memory.Thp.Counters.SplitPage);
        Assert.Equal(MmCosts.SwapOutClusterNs, cost[MmCostKind.SwapOut]);
        Assert.Equal(HugePages, m.Space.SwappedPages);
        AssertThpDataIntact(m);
    }

    [Fact]
    public void Cold_OfAWholeThp_ClearsThePmdAccessedBit_AndPutsTheFolioAtTheOldEndOfTheInactiveList()
    {
        using var m = WithSwap();
        ulong head = FaultThp(m);
        m.Space.Map(Base + Huge, Base + Huge + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base + Huge, 1)); // a younger page: the THP is not the oldest entry by itself

        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Cold, KernelAbi.Proposal).Error);

        Assert.False(Pmd(m, Base).IsAccessed);
        Assert.False(m.Memory.Page(head).IsReferenced);
        // The old end is reclaimed first: the THP goes before the younger 4 KiB page is even looked at.
        Assert.Equal((ulong)HugePages, m.Allocator.Reclaim(null, 1, null, null));
        Assert.Equal(1UL, m.Allocator.Counters.ThpSwapOut);
        Assert.True(m.Space.Tables.ReadPte(Base + Huge).IsPresent);
        AssertThpDataIntact(m);
    }

    [Fact]
    public void Reclaim_OfAThpWhosePmdWasSplit_SplitsTheFolio_AndSwapsItsPages()
    {
        using var m = WithSwap();
        FaultThp(m);
        // A partial mprotect splits the PMD; the THP stays one folio, mapped by 512 PTEs.
        Assert.True(m.Space.Protect(Base, Base + Page, Protection.Read));
        Assert.False(Pmd(m, Base).IsLargePage);
        Assert.Equal(BuddyAllocator.PageblockOrder, m.Allocator[m.Space.Tables.ReadPte(Base).FrameNumber].Order);

        Assert.True(m.ReclaimPages(HugePages) >= (ulong)HugePages);

        Assert.Equal(1, m.Memory.Thp.Counters.SplitPage);
        Assert.Equal(0UL, m.Allocator.Counters.ThpSwapOut + m.Allocator.Counters.ThpSwapOutFallback);
        Assert.Equal(HugePages, m.Space.SwappedPages);
        AssertThpDataIntact(m);
    }

    [Fact]
    public void Fork_LeavesTheChildsPtesOld_SoAReferenceCheckSeesOnlyTheAccessesMadeSince()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 5));
        ulong frame = m.Space.Tables.ReadPte(Base).FrameNumber;

        var child = m.Space.Fork()!;

        Assert.False(child.Tables.ReadPte(Base).IsAccessed);
        Assert.Equal(new PageReferences(Mappings: 2, Young: 1, Executable: false), m.Space.TestAndClearYoung(Base / Page, frame));
        // The child reads it: now the child's mapping is the young one.
        m.Memory.Guest.SwitchAddressSpace(child.Tables.Cr3);
        Assert.Equal(5UL, m.GuestRead64(Base, child));
        Assert.Equal(new PageReferences(2, 1, false), m.Space.TestAndClearYoung(Base / Page, frame));
        m.Memory.Guest.SwitchAddressSpace(m.Space.Tables.Cr3);
        child.Destroy();
    }
}
