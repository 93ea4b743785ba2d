using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>Cases where Linux 6.18's behaviour was read off the host (guest-programs/expected/collapse_*.txt).</summary>
public class CollapseHostBehaviourTests
{
    const ulong Base = 0x4000_0000;
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong Page = PagingConstants.PageSize;

    static TestMachine NewMachine()
    {
        var m = new TestMachine();

        return m;
    }

    [Fact]
    public void OnlyZeroPagePtes_IsEinval()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page) Assert.Equal(0UL, m.GuestRead64(a));
        Assert.Equal(Errno.EINVAL, Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal).Error);
        Assert.True(m.GuestWrite64(Base + 300 * Page, 9));
        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal).Error);
        Assert.Equal(9UL, m.GuestRead64(Base + 300 * Page));
    }

    [Fact]
    public void ProtNoneVmaHoldingData_CollapsesIntoAProtNoneHugePmd_DataBackAfterMprotect()
    {
        using var m = NewMachine();
        m.Space.Map(Base, Base + Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += Page) Assert.True(m.GuestWrite64(a, a));
        Assert.True(m.Space.Protect(Base, Base + Huge, Protection.None));
        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal).Error);
        Assert.Equal(1, m.Space.HugeMappings);
        Assert.Null(m.GuestRead64(Base));                       // PROT_NONE: SIGSEGV
        Assert.True(m.Space.Protect(Base, Base + Huge, Protection.Read));
        for (ulong a = Base; a < Base + Huge; a += 31 * Page) Assert.Equal(a, m.GuestRead64(a));
        Assert.False(m.GuestWrite64(Base, 1));                  // read-only now
    }
}
