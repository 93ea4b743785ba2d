using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>khugepaged: asynchronous collapse on the virtual clock, charged to itself.</summary>
public class KhugepagedTests
{
    const ulong Base = 0x4000_0000;
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong Page = PagingConstants.PageSize;

    [Fact]
    public void Khugepaged_CollapsesAfterScanSleep_WithinItsLimits_OnItsOwnTime()
    {
        using var m = new TestMachine();
        var thp = m.Memory.Thp;
        thp.Settings.ScanSleepMilliseconds = 100;
        thp.Settings.MaxPtesNone = 256;
        thp.Khugepaged.RunUntil(0); // boot: the thread starts sleeping
        m.Space.Map(Base, Base + 3 * Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page) Assert.True(m.GuestWrite64(a, a));            // region 0: full
        for (ulong a = Base + Huge; a < Base + Huge + 300 * Page; a += Page) Assert.True(m.GuestWrite64(a, a)); // region 1: 212 empty
        for (ulong a = Base + 2 * Huge; a < Base + 2 * Huge + 8 * Page; a += Page) Assert.True(m.GuestWrite64(a, a)); // region 2: 504 empty
        Assert.Null(Madvise.Apply(m.Space, Base, 3 * Huge, MadviseAdvice.HugePage, KernelAbi.Proposal).Error);

        thp.Khugepaged.RunUntil(99_000_000);
        Assert.Equal(0, thp.Khugepaged.Passes);
        thp.Khugepaged.RunUntil(100_000_000);
        Assert.Equal(1, thp.Khugepaged.Passes);

        Assert.Equal(2, m.Space.HugeMappings);       // regions 0 and 1; region 2 exceeds max_ptes_none
        Assert.Equal(2, thp.Khugepaged.PagesCollapsed);
        Assert.True(thp.Khugepaged.CpuNanoseconds > 0);
        for (ulong a = Base; a < Base + Huge; a += 37 * Page) Assert.Equal(a, m.GuestRead64(a));
        Assert.Equal(CollapseResult.ExceedNonePte, thp.Engine.Last.Result);
    }

    [Fact]
    public void Khugepaged_IgnoresVmasWithoutMadvHugepage_UnderEnabledMadvise()
    {
        using var m = new TestMachine();
        var thp = m.Memory.Thp;
        thp.Settings.ScanSleepMilliseconds = 1;
        thp.Khugepaged.RunUntil(0);
        m.Space.Map(Base, Base + Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page) Assert.True(m.GuestWrite64(a, a));
        thp.Khugepaged.Register(m.Space);
        thp.Khugepaged.RunUntil(10_000_000);
        Assert.Equal(0, m.Space.HugeMappings);
        thp.Settings.Enabled = ThpEnabled.Always;
        thp.Khugepaged.RunUntil(20_000_000);
        Assert.Equal(1, m.Space.HugeMappings);
    }
}
