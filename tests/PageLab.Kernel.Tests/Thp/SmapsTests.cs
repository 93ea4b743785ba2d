using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>/proc/self/smaps as a program reads it after faults and collapses.</summary>
public class SmapsTests
{
    [Fact]
    public void Smaps_ReportsAnonHugePagesAfterCollapse_AndThpEligibleStaysZeroUnderMadvise()
    {
        using var m = new TestMachine();

        const ulong Base = 0x4000_0000;
        m.Space.Map(Base, Base + PagingConstants.LargePageSize, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + PagingConstants.LargePageSize; a += PagingConstants.PageSize) Assert.True(m.GuestWrite64(a, 1));
        Assert.Contains("AnonHugePages:         0 kB\n", m.Space.FormatSmaps());
        Assert.Contains("Rss:                2048 kB\n", m.Space.FormatSmaps());

        Assert.Null(Madvise.Apply(m.Space, Base, PagingConstants.LargePageSize, MadviseAdvice.Collapse, KernelAbi.Proposal).Error);
        string smaps = m.Space.FormatSmaps();
        Assert.Contains("40000000-40200000 rw-p 00000000 00:00 0 \nSize:               2048 kB\n", smaps);
        Assert.Contains("AnonHugePages:      2048 kB\n", smaps);
        Assert.Contains("Rss:                2048 kB\n", smaps);
        Assert.Contains("THPeligible:    0\n", smaps);
        Assert.Contains("VmFlags: rd wr mr mw me ac sd \n", smaps);
        Assert.Contains("AnonHugePages:      2048 kB\n", m.Space.FormatSmapsRollup());
    }
}
