using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>MADV_COLLAPSE / MADV_TRY_COLLAPSE through the one collapse engine (SEMANTICS.md).</summary>
public class CollapseTests
{
    const ulong Base = 0x4000_0000; // 2 MiB aligned
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    /// <summary>Records the phases a collapse reports.</summary>
    internal sealed class PhaseRecorder : ICollapseObserver
    {
        public readonly List<CollapsePhase> Phases = [];
        public Action<CollapseState>? OnEach;
        public void OnPhase(CollapseState state)
        {
            Phases.Add(state.Phase);
            OnEach?.Invoke(state);
        }
    }

    static TestMachine NewMachine(ulong memory = 64UL << 20)
    {
        var m = new TestMachine(memory);

        return m;
    }

    /// <summary>Writes a distinct value into every page of [start, end) through the MMU, as the guest would.</summary>
    static void Fill(TestMachine m, ulong start, ulong end, ulong step = Page)
    {
        for (ulong a = start; a < end; a += step)
            Assert.True(m.GuestWrite64(a + 16, a ^ 0x5a5a_5a5a));
    }

    static void AssertFilled(TestMachine m, ulong start, ulong end, ulong step = Page)
    {
        for (ulong a = start; a < end; a += step)
            Assert.Equal(a ^ 0x5a5a_5a5a, m.GuestRead64(a + 16));
    }

    static MadviseResult Advise(TestMachine m, ulong start, ulong length, int advice, KernelAbi abi = KernelAbi.Proposal) =>
        Madvise.Apply(m.Space, start, length, advice, abi);

    [Fact]
    public void Collapse_FullRegion_InstallsHugePmd_With512ConsecutiveFrames_AndKeepsData()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 2 * Huge);
        long resident = m.Space.ResidentPages;

        var result = Advise(m, Base, 2 * Huge, MadviseAdvice.Collapse);

        Assert.Null(result.Error);
        Assert.True(result.Nanoseconds > 0);
        foreach (ulong region in new[] { Base, Base + Huge })
        {
            var path = m.Space.Tables.Walk(region);
            var pmd = path[^1].Entry;
            Assert.Equal(PagingLevel.PageDirectory, path[^1].Level);
            Assert.True(pmd.IsLargePage && pmd.IsPresent && pmd.IsWritable && pmd.IsDirty && pmd.IsAccessed);
            Assert.Equal(0UL, pmd.FrameNumber % 512);
            for (ulong i = 0; i < 512; i += 97)
            {
                Assert.False(m.Mmu.Translate(region + i * Page, AccessKind.Read, out ulong physical).IsFault);
                Assert.Equal(pmd.FrameNumber + i, physical >> PagingConstants.PageBits);
            }
        }
        AssertFilled(m, Base, Base + 2 * Huge);
        Assert.Equal(resident, m.Space.ResidentPages);
        Assert.Equal(2, m.Space.Thp.Counters.CollapseAlloc);
        Assert.Equal(2, m.Space.HugeMappings);
        var stats = m.Space.Thp.Engine.Statistics;
        var collapse = Assert.Single(stats.ByPolicy());
        Assert.Equal(("MADV_COLLAPSE", 2L), (collapse.Policy, collapse.Attempts));
        Assert.Equal([(CollapseResult.Succeeded, 2L)], collapse.Results);
        Assert.Equal(result.Nanoseconds, stats.CallerNanoseconds);
        Assert.Equal(2 * 512 * CollapseCosts.CopyPerPage, stats.NanosecondsByPhase[(int)CollapsePhase.Copy] - 2 * 512 * CollapseCosts.FreePerPage);
    }

    [Fact]
    public void Collapse_RunsThePhasesInLinuxOrder()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 64 * Page);
        var recorder = new PhaseRecorder();
        m.Space.Thp.Engine.Observer = recorder;

        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(
            [CollapsePhase.Scan, CollapsePhase.AllocateAndCharge, CollapsePhase.ClearPmdAndFlush, CollapsePhase.Isolate,
             CollapsePhase.Copy, CollapsePhase.InstallPmd, CollapsePhase.Done],
            recorder.Phases);
    }

    [Fact]
    public void Collapse_SkippingTheFlush_WouldLeaveAStaleTranslationToTheFreedFrame()
    {
        // The bug the ClearPmdAndFlush phase prevents: a 4K TLB entry surviving the collapse keeps
        // pointing at the old frame, which the collapse has just freed.
        foreach (bool skipFlush in new[] { false, true })
        {
            using var m = NewMachine();
            m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
            Fill(m, Base, Base + Huge);
            ulong probe = Base + 5 * Page;
            ulong oldFrame = m.Space.Tables.ReadPte(probe).FrameNumber;
            Assert.Equal(probe ^ 0x5a5a_5a5a, m.GuestRead64(probe + 16)); // the 4K translation is now in the TLB
            m.Space.Thp.Engine.SkipTlbFlush = skipFlush;

            Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
            ulong hugeFrame = m.Space.Tables.Walk(Base)[^1].Entry.FrameNumber;
            Assert.False(m.Mmu.Translate(probe, AccessKind.Read, out ulong physical).IsFault);
            ulong used = physical >> PagingConstants.PageBits;
            if (skipFlush)
            {
                Assert.Equal(oldFrame, used);
                Assert.Equal(0, m.Memory.Page(oldFrame).RefCount); // freed: a use-after-free through the TLB
            }
            else
            {
                Assert.Equal(hugeFrame + 5, used);
            }
        }
    }

    [Fact]
    public void Collapse_UntouchedRegionWithNoPageDirectory_IsEinval_PmdNull()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Assert.Equal(Errno.EINVAL, Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(CollapseResult.PmdNull, m.Space.Thp.Engine.Last.Result);
    }

    // madvise_collapse tells an untouched region under no page directory (SCAN_PMD_NULL: go on with the next region)
    // from one whose page directory exists with an empty PMD (SCAN_PMD_NONE: stop). Natively, which one a program
    // meets depends on where its mapping lands relative to a 1 GiB boundary.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Collapse_UntouchedFirstRegion_GoesOnOnlyWhenNoPageDirectoryCoversIt(bool acrossAGibBoundary)
    {
        using var m = NewMachine();
        ulong start = acrossAGibBoundary ? (1UL << 30) * 3 - Huge : (1UL << 30) * 3;
        m.Space.Map(start, start + 2 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, start + Huge, start + 2 * Huge, Page);
        Assert.Equal(Errno.EINVAL, Advise(m, start, 2 * Huge, MadviseAdvice.Collapse).Error);
        var path = m.Space.Tables.Walk(start + Huge);
        Assert.Equal(acrossAGibBoundary, path[^1].Level == PagingLevel.PageDirectory && path[^1].Entry.IsLargePage);
        AssertFilled(m, start + Huge, start + 2 * Huge, Page);
    }

    [Fact]
    public void Collapse_AlreadyHugeRegion_ReturnsZero()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 128 * Page);
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        long collapses = m.Space.Thp.Counters.CollapseAlloc;
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(CollapseResult.PmdMapped, m.Space.Thp.Engine.Last.Result);
        Assert.Equal(collapses, m.Space.Thp.Counters.CollapseAlloc);
    }

    [Fact]
    public void Collapse_SinglePteRegion_ZeroFillsTheRest()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base + 300 * Page, 42));
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(42UL, m.GuestRead64(Base + 300 * Page));
        Assert.Equal(0UL, m.GuestRead64(Base + 301 * Page));
        Assert.Equal(512, m.Space.ResidentPages);
    }

    [Fact]
    public void Collapse_Clamping_WholeRegionsOnly()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 2 * Huge, 64 * Page);
        // Inside one region, touching neither boundary: last < first.
        Assert.Equal(Errno.EINVAL, Advise(m, Base + Page, 16 * Page, MadviseAdvice.Collapse).Error);
        // Unaligned start, crossing no whole region: first == last, nothing to do.
        Assert.Null(Advise(m, Base + Page, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(0, m.Space.HugeMappings);
        // Unaligned start covering the second region wholly: only it collapses.
        Assert.Null(Advise(m, Base + Page, 2 * Huge - Page, MadviseAdvice.Collapse).Error);
        Assert.Equal(1, m.Space.HugeMappings);
        AssertFilled(m, Base, Base + 2 * Huge, 64 * Page);
    }

    [Fact]
    public void Collapse_NoHugePageVma_OrThpDisabledProcess_IsEinval()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 64 * Page);
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.NoHugePage).Error);
        Assert.Equal(Errno.EINVAL, Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.HugePage).Error);
        m.Space.ThpDisabled = true;
        Assert.Equal(Errno.EINVAL, Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        m.Space.ThpDisabled = false;
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
    }

    [Fact]
    public void Collapse_PinnedPage_IsEagain_AndTheNextRegionIsStillTried()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 2 * Huge, 64 * Page);
        m.Memory.Page(m.Space.Tables.ReadPte(Base + 64 * Page).FrameNumber).Flags |= PageFlags.Pinned;

        Assert.Equal(Errno.EAGAIN, Advise(m, Base, 2 * Huge, MadviseAdvice.Collapse).Error);
        Assert.False(m.Space.Tables.Walk(Base)[^2].Entry.IsLargePage);
        Assert.True(m.Space.Tables.Walk(Base + Huge)[^1].Entry.IsLargePage);
        AssertFilled(m, Base, Base + 2 * Huge, 64 * Page);
    }

    [Fact]
    public void Collapse_PageLockedAfterScan_RollsBack_RestoringThePteTable()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 8 * Page);
        ulong victim = m.Space.Tables.ReadPte(Base + 8 * Page).FrameNumber;
        ulong freeBefore = m.Allocator.FreeFrames;
        var recorder = new PhaseRecorder
        {
            OnEach = s => { if (s.Phase == CollapsePhase.AllocateAndCharge) m.Memory.Page(victim).Flags |= PageFlags.Locked; },
        };
        m.Space.Thp.Engine.Observer = recorder;

        Assert.Equal(Errno.EAGAIN, Advise(m, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(CollapsePhase.RolledBack, recorder.Phases[^1]);
        Assert.Contains(CollapsePhase.ClearPmdAndFlush, recorder.Phases);
        Assert.Equal(freeBefore, m.Allocator.FreeFrames);
        m.Memory.Page(victim).Flags &= ~PageFlags.Locked;
        AssertFilled(m, Base, Base + Huge, 8 * Page);
    }

    [Fact]
    public void TryCollapse_FailsFastWithEnomem_WithoutReclaim_AndKernelAbi618RejectsIt()
    {
        using var m = NewMachine(8UL << 20); // 2048 frames: too fragmented for a second order-9 block after filling
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge);
        while (m.Allocator.TryAllocate(9, FrameUse.Kernel, AllocationEffort.FreeListsOnly, out _)) { }

        Assert.Equal(Errno.ENOMEM, Advise(m, Base, Huge, MadviseAdvice.TryCollapse).Error);
        Assert.Equal(CollapseResult.AllocationFailed, m.Space.Thp.Engine.Last.Result);
        Assert.Equal(AllocationEffort.FreeListsOnly, m.Space.Thp.Engine.Last.Policy.Effort);
        Assert.Equal(1, m.Space.Thp.Counters.CollapseAllocFailed);
        AssertFilled(m, Base, Base + Huge);

        Assert.Equal(Errno.EINVAL, Advise(m, Base, Huge, MadviseAdvice.TryCollapse, KernelAbi.Linux618).Error);
    }

    [Fact]
    public void Madvise_HolesAreSkipped_ButTheCallReturnsEnomem()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        m.Space.Map(Base + 2 * Huge, Base + 3 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 64 * Page);
        Fill(m, Base + 2 * Huge, Base + 3 * Huge, 64 * Page);
        Assert.Equal(Errno.ENOMEM, Advise(m, Base, 3 * Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(2, m.Space.HugeMappings);
        Assert.Equal(Errno.EINVAL, Advise(m, Base + 1, Page, MadviseAdvice.Collapse).Error);
        Assert.Null(Advise(m, Base, 0, MadviseAdvice.Collapse).Error);
    }

    [Fact]
    public void FaultTimeThp_FollowsEnabledAndMadvHugepage()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 1));                          // enabled=madvise, no MADV_HUGEPAGE: 4K
        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Null(Advise(m, Base + Huge, Huge, MadviseAdvice.HugePage).Error);
        Assert.True(m.GuestWrite64(Base + Huge + 8, 2));               // VM_HUGEPAGE: a THP at fault time
        Assert.Equal(1, m.Space.HugeMappings);
        Assert.Equal(1, m.Space.Thp.Counters.FaultAlloc);
        Assert.Equal(2UL, m.GuestRead64(Base + Huge + 8));
        Assert.Equal(0UL, m.GuestRead64(Base + Huge + 4096 * 100));
        Assert.Equal(2, m.Space.Vmas.Count); // MADV_HUGEPAGE split the VMA
    }

    [Fact]
    public void MunmapOfHalfAHugePage_SplitsThePmd_KeepsTheOtherHalf_AndLeavesTheFolioSplitToReclaim()
    {
        using var m = NewMachine();
        m.Space.Thp.Settings.Enabled = ThpEnabled.Always;
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 16 * Page);
        Assert.Equal(1, m.Space.HugeMappings);
        ulong freeBefore = m.Allocator.FreeFrames;

        m.Space.Unmap(Base + Huge / 2, Base + Huge);
        ulong head = m.Space.Tables.ReadPte(Base).FrameNumber;
        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Equal(1, m.Space.Thp.Counters.SplitPmd);
        Assert.Equal(256, m.Space.ResidentPages);
        // The THP stays whole, partly mapped, on the deferred split queue: nothing is freed yet.
        Assert.Equal(freeBefore, m.Allocator.FreeFrames);
        Assert.Equal([head], m.Memory.DeferredSplitQueue);
        Assert.Equal((1, 0), (m.Space.Thp.Counters.DeferredSplitPage, m.Space.Thp.Counters.SplitPage));
        AssertFilled(m, Base, Base + Huge / 2, 16 * Page);
        Assert.Null(m.GuestRead64(Base + Huge / 2));

        // Reclaim runs the deferred split shrinker: the unmapped half goes back, the mapped half stays.
        Assert.Equal(256UL, m.Allocator.Reclaim(null, 1, null, null));
        Assert.Equal(freeBefore + 256, m.Allocator.FreeFrames);
        Assert.Equal(1, m.Space.Thp.Counters.SplitPage);
        Assert.Empty(m.Memory.DeferredSplitQueue);
        AssertFilled(m, Base, Base + Huge / 2, 16 * Page);

        // The split block's frames are order-0 pages now: the rest go back one by one and merge.
        m.Space.Unmap(Base, Base + Huge / 2);
        Assert.Equal(freeBefore + 512, m.Allocator.FreeFrames);
        Assert.Equal(0, m.Space.ResidentPages);
    }

    [Fact]
    public void DontNeedOnAHugeRegion_FreesItAllAndRefaultsZero()
    {
        using var m = NewMachine();
        m.Space.Thp.Settings.Enabled = ThpEnabled.Always;
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge, 16 * Page);
        ulong freeBefore = m.Allocator.FreeFrames;
        Assert.Null(Advise(m, Base, Huge, MadviseAdvice.DontNeed).Error);
        Assert.Equal(freeBefore + 513, m.Allocator.FreeFrames); // the huge frame and its deposited table
        Assert.Equal(0UL, m.GuestRead64(Base + 16));
    }
}
