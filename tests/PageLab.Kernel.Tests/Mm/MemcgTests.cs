using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>The guest's memory cgroup: charging on fault and collapse, reclaim inside the limit, failure.</summary>
public class MemcgTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static TestMachine Limited(ulong limitPages, bool swap)
    {
        var m = new TestMachine();
        if (swap)
            m.Allocator.Swap = new SwapDevice(0, 16UL << 20);
        m.Memory.Memcg = m.Allocator.CreateCgroup("guest", limitPages);
        return m;
    }

    [Fact]
    public void OverTheLimit_FaultsReclaimInsideTheGroup_SwappingItsOwnPages_DataIntact()
    {
        using var m = Limited(64, swap: true);
        m.Space.Map(Base, Base + 200 * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + 200 * Page; a += Page)
            Assert.True(m.GuestWrite64(a, a ^ 0xfeed));

        Assert.True(m.Memory.Memcg!.UsagePages <= 64);
        Assert.Equal(64UL, m.Memory.Memcg.PeakPages);
        Assert.True(m.Space.SwappedPages >= 200 - 64);
        for (ulong a = Base; a < Base + 200 * Page; a += Page)
            Assert.Equal(a ^ 0xfeed, m.GuestRead64(a));
        Assert.Equal(0UL, m.Memory.Memcg.FailedCharges);
    }

    [Fact]
    public void OverTheLimit_WithNothingToReclaim_TheFaultIsOutOfMemory()
    {
        using var m = Limited(16, swap: false);
        m.Space.Map(Base, Base + 32 * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < 16; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i));

        Assert.Equal(FaultOutcome.OutOfMemory, m.Space.HandleFault(Base + 16 * Page, AccessKind.Write, present: false));
        Assert.Equal(16UL, m.Memory.Memcg!.UsagePages);
        Assert.Equal(1UL, m.Memory.Memcg.FailedCharges);
    }

    [Fact]
    public void Collapse_WhoseChargeExceedsTheLimit_IsEbusy_AndLeavesThePagesAsTheyWere()
    {
        using var m = Limited(700, swap: false);
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page)
            Assert.True(m.GuestWrite64(a, a));

        var result = Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal);

        Assert.Equal(Errno.EBUSY, result.Error);
        Assert.Equal(0, m.Space.HugeMappings);
        Assert.Equal(512UL, m.Memory.Memcg!.UsagePages);
        for (ulong a = Base; a < Base + Huge; a += Page)
            Assert.Equal(a, m.GuestRead64(a));
    }

    [Fact]
    public void FreeingChargedPages_Uncharges_ThpsAsWhole_AndSplitPiecesOneByOne()
    {
        using var m = Limited(4096, swap: false);
        m.Space.Thp.Settings.Enabled = Kernel.Mm.Thp.ThpEnabled.Always;
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 1));
        Assert.Equal(1, m.Space.HugeMappings);
        Assert.Equal(512UL, m.Memory.Memcg!.UsagePages);

        // Half unmapped, the THP stays whole (charged whole) until memcg reclaim's deferred split frees the half.
        m.Space.Unmap(Base, Base + Huge / 2);
        Assert.Equal(512UL, m.Memory.Memcg.UsagePages);
        Assert.Equal(256UL, m.Allocator.Reclaim(null, 1, m.Memory.Memcg, null));
        Assert.Equal(256UL, m.Memory.Memcg.UsagePages);
        m.Space.Unmap(Base, Base + Huge);
        Assert.Equal(0UL, m.Memory.Memcg.UsagePages);
    }
}
