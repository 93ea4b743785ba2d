using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>vm.max_map_count: new mappings and splits fail with ENOMEM at the limit, as do_mmap and __split_vma do.</summary>
public class MaxMapCountTests
{
    const ulong Base = 0x1000_0000;
    const ulong Page = PagingConstants.PageSize;

    [Fact]
    public void AtTheLimit_SplitsFail_ButWholeVmaOperationsStillWork()
    {
        using var m = new TestMachine();
        m.Space.MaxMapCount = 3;
        for (ulong i = 0; i < 3; i++) // three VMAs that cannot merge (gaps between them)
            m.Space.Map(Base + i * 4 * Page, Base + (i * 4 + 2) * Page, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        Assert.Equal(3, m.Space.Vmas.Count);
        Assert.False(m.Space.MapCountExceeded);               // do_mmap refuses only above the limit
        Assert.False(m.Space.CanSplitAt(Base + Page, Base + 2 * Page));
        Assert.False(m.Space.Protect(Base, Base + Page, Protection.Read)); // would split the first VMA
        Assert.Equal(PageLab.Kernel.Syscalls.Errno.ENOMEM,
            Madvise.Apply(m.Space, Base, Page, MadviseAdvice.HugePage, KernelAbi.Proposal).Error);
        Assert.True(m.Space.Protect(Base, Base + 2 * Page, Protection.Read)); // the whole VMA: no split
        m.Space.MaxMapCount = 4;
        Assert.True(m.Space.CanSplitAt(Base + Page, Base + 2 * Page));
    }
}
