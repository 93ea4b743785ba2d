using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>
/// Huge pages of shmem (MAP_SHARED|MAP_ANONYMOUS): the collapse builds the huge folio in the object
/// (collapse_file) and maps it in the caller; shmem_enabled governs faults, khugepaged and (in part) collapse.
/// </summary>
public class ShmemCollapseTests
{
    const ulong Base = 0x4000_0000;
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static void Switch(TestMachine m, AddressSpace space) => m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);

    static MadviseResult Advise(AddressSpace space, ulong start, ulong length, int advice) =>
        Madvise.Apply(space, start, length, advice, KernelAbi.Proposal);

    [Fact]
    public void Collapse_BuildsTheHugeFolioInTheObject_SharedByAForkedChild_AndDontNeedKeepsTheData()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 100; i++)
            Assert.True(m.GuestWrite64(Base + i * 3 * Page, i + 1, parent));
        var child = parent.Fork()!;
        Switch(m, child);
        Assert.Equal(1UL, m.GuestRead64(Base, child)); // the child maps some of the old pages
        Switch(m, parent);
        var recorder = new CollapseTests.PhaseRecorder();
        m.Memory.Thp.Engine.Observer = recorder;

        Assert.Null(Advise(parent, Base, Huge, MadviseAdvice.Collapse).Error); // shmem_enabled=never: a forced collapse still may

        Assert.Equal(
            [CollapsePhase.Scan, CollapsePhase.AllocateAndCharge, CollapsePhase.ClearPmdAndFlush, CollapsePhase.Isolate,
             CollapsePhase.Copy, CollapsePhase.InstallPmd, CollapsePhase.Done],
            recorder.Phases);
        Assert.Equal(1, parent.HugeMappings);
        Assert.Equal(Huge, parent.Usage(parent.Vmas[0]).ShmemPmdMapped);
        Assert.Equal(0UL, parent.Usage(parent.Vmas[0]).AnonHugePages);
        Assert.Equal(0, child.ResidentPages); // the collapse unmapped the old pages everywhere
        Assert.Equal(2048UL, m.MemInfoKb("ShmemHugePages"));
        Assert.Equal(2048UL, m.MemInfoKb("ShmemPmdMapped"));

        Switch(m, child);
        Assert.Equal(1UL, m.GuestRead64(Base, child));   // one fault maps the folio by the child's PMD
        Assert.Equal(1, child.HugeMappings);
        Assert.True(m.GuestWrite64(Base + 8, 0xC0FFEE, child));
        Switch(m, parent);
        Assert.Equal(0xC0FFEEUL, m.GuestRead64(Base + 8, parent));

        Assert.Null(Advise(parent, Base, Huge, MadviseAdvice.DontNeed).Error);
        Assert.Equal(0, parent.HugeMappings);
        Assert.Equal(2048UL, m.MemInfoKb("ShmemHugePages")); // the folio stays in the object
        for (ulong i = 0; i < 100; i++)
            Assert.Equal(i + 1, m.GuestRead64(Base + i * 3 * Page, parent));
        Assert.Equal(0xC0FFEEUL, m.GuestRead64(Base + 8, parent));
        Assert.Equal(0UL, m.GuestRead64(Base + 2 * Page, parent)); // a hole the collapse filled with zeroes

        Switch(m, m.Space);
        parent.Destroy();
        child.Destroy();
        Assert.Equal(0UL, m.MemInfoKb("Shmem"));
        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
    }

    [Fact]
    public void Collapse_SwapsTheObjectsSwappedPagesBackIn_First()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 8; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, 0x77 + i));
        Assert.Equal(8UL, m.ReclaimPages(8));
        var recorder = new CollapseTests.PhaseRecorder();
        m.Memory.Thp.Engine.Observer = recorder;

        Assert.Null(Advise(m.Space, Base, Huge, MadviseAdvice.Collapse).Error);

        Assert.Contains(CollapsePhase.SwapIn, recorder.Phases);
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
        Assert.Equal(0UL, m.Space.Usage(m.Space.Vmas[0]).Swap);
        for (ulong i = 0; i < 8; i++)
            Assert.Equal(0x77 + i, m.GuestRead64(Base + i * Page));
    }

    [Fact]
    public void Reclaim_SplitsAHugeShmemFolio_AndSwapsItsPages_DataIntact()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong a = Base; a < Base + Huge; a += 8 * Page)
            Assert.True(m.GuestWrite64(a, a));
        Assert.Null(Advise(m.Space, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(2048UL, m.MemInfoKb("ShmemHugePages"));

        ulong reclaimed = m.Allocator.Reclaim(null, 512, null, null);

        Assert.True(reclaimed >= 512, $"reclaimed {reclaimed}"); // the mapped folio is unmapped, split, and each page written to swap
        Assert.Equal(512UL, m.Allocator.Counters.SwapOut);
        Assert.Equal(0UL, m.MemInfoKb("ShmemHugePages"));
        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Equal(Huge, m.Space.Usage(m.Space.Vmas[0]).Swap);
        for (ulong a = Base; a < Base + Huge; a += 8 * Page)
            Assert.Equal(a, m.GuestRead64(a));
    }

    [Fact]
    public void Collapse_UnderShmemEnabledDeny_OrAMisalignedObject_IsEinval()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Huge, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.True(m.GuestWrite64(Base, 1));
        Assert.Null(ThpSysfs.Set(m.Memory.Thp, "shmem_enabled", "deny"));
        Assert.Equal(Errno.EINVAL, Advise(m.Space, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Null(ThpSysfs.Set(m.Memory.Thp, "shmem_enabled", "never"));
        Assert.Null(ThpSysfs.Set(m.Memory.Thp, "hugepages-2048kB/shmem_enabled", "never"));
        Assert.Equal(Errno.EINVAL, Advise(m.Space, Base, Huge, MadviseAdvice.Collapse).Error);
        Assert.Null(ThpSysfs.Set(m.Memory.Thp, "hugepages-2048kB/shmem_enabled", "inherit"));

        // An object mapped from an offset that is not 2 MiB-aligned can never be PMD-mapped (thp_vma_suitable_order).
        m.Space.Map(Base + 4 * Huge - Page, Base + 7 * Huge - Page, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.True(m.GuestWrite64(Base + 4 * Huge, 1));
        Assert.Equal(Errno.EINVAL, Advise(m.Space, Base + 4 * Huge, Huge, MadviseAdvice.Collapse).Error);
        Assert.Equal(0, m.Space.HugeMappings);
    }

    [Fact]
    public void Fault_UnderShmemEnabledAlways_MapsAHugeFolio_AndAPartialMprotectSplitsIt_DataIntact()
    {
        using var m = new TestMachine();
        Assert.Null(ThpSysfs.Set(m.Memory.Thp, "shmem_enabled", "always"));
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.Contains("THPeligible:    1", m.Space.FormatSmaps(), StringComparison.Ordinal);

        Assert.Equal(FaultOutcome.HugePageAllocated, m.Space.HandleFault(Base + 5 * Page, AccessKind.Read, present: false));
        Assert.Equal(1L, m.Memory.Thp.Counters.FileAlloc);
        Assert.Equal(Huge, m.Space.Usage(m.Space.Vmas[0]).ShmemPmdMapped);
        for (ulong a = Base; a < Base + Huge; a += 61 * Page)
            Assert.True(m.GuestWrite64(a, a));

        Assert.True(m.Space.Protect(Base, Base + Page, Protection.Read)); // the VMA splits: no PMD fits any more

        Assert.Equal(0, m.Space.HugeMappings);
        for (ulong a = Base; a < Base + Huge; a += 61 * Page)
            Assert.Equal(a, m.GuestRead64(a));                                 // 4 KiB faults: the folio was split
        Assert.Equal(0UL, m.MemInfoKb("ShmemHugePages"));
        Assert.Equal(2048UL, m.MemInfoKb("Shmem"));
        Assert.False(m.GuestWrite64(Base, 1));
    }

    [Fact]
    public void Khugepaged_CollapsesShmem_OnlyWhereShmemEnabledAllows()
    {
        using var m = new TestMachine();
        var thp = m.Memory.Thp;
        thp.Settings.ScanSleepMilliseconds = 1;
        thp.Khugepaged.RunUntil(0);
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong a = Base; a < Base + Huge; a += 2 * Page)
            Assert.True(m.GuestWrite64(a, a));
        Assert.Null(Advise(m.Space, Base, Huge, MadviseAdvice.HugePage).Error);

        thp.Khugepaged.RunUntil(10_000_000);
        Assert.Equal(0, m.Space.HugeMappings); // shmem_enabled=never
        Assert.Null(ThpSysfs.Set(thp, "shmem_enabled", "advise"));
        thp.Khugepaged.RunUntil(20_000_000);

        Assert.Equal(1, thp.Khugepaged.PagesCollapsed);
        Assert.Equal(0, m.Space.HugeMappings); // khugepaged builds the folio in the object; a fault maps it
        Assert.Equal(0, m.Space.ResidentPages);
        for (ulong a = Base; a < Base + Huge; a += 2 * Page)
            Assert.Equal(a, m.GuestRead64(a));
        Assert.Equal(1, m.Space.HugeMappings);
    }

    [Fact]
    public void Remove_PunchesAHoleThroughEveryMapping_SplittingAHugeFolio()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page)
            Assert.True(m.GuestWrite64(a, a));
        Assert.Null(Advise(m.Space, Base, Huge, MadviseAdvice.Collapse).Error);

        Assert.Null(Advise(m.Space, Base + 4 * Page, 2 * Page, MadviseAdvice.Remove).Error);

        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Equal(2048UL - 8, m.MemInfoKb("Shmem"));
        Assert.Equal(0UL, m.GuestRead64(Base + 4 * Page));
        Assert.Equal(0UL, m.GuestRead64(Base + 5 * Page));
        Assert.Equal(Base + 6 * Page, m.GuestRead64(Base + 6 * Page));
        m.Space.Map(Base + 2 * Huge, Base + 3 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Assert.Equal(Errno.EINVAL, Advise(m.Space, Base + 2 * Huge, Page, MadviseAdvice.Remove).Error); // private anonymous
    }
}
