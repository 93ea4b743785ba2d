using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>MAP_SHARED|MAP_ANONYMOUS keeps its data across MADV_DONTNEED (shmem semantics), private memory does not.</summary>
public class SharedAnonymousTests
{
    const ulong Base = 0x1000_0000;
    const ulong Page = PagingConstants.PageSize;

    [Fact]
    public void DontNeed_OnSharedAnonymousMemory_KeepsTheData_AndMunmapFreesIt()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        m.Space.Map(Base, Base + 4 * Page, Protection.Read | Protection.Write, VmaFlags.Shared, null, 0);
        m.Space.Map(Base + 8 * Page, Base + 12 * Page, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong i = 0; i < 4; i++)
        {
            Assert.True(m.GuestWrite64(Base + i * Page, 100 + i));
            Assert.True(m.GuestWrite64(Base + (8 + i) * Page, 200 + i));
        }

        // The hole between the two mappings makes the call ENOMEM, after both pieces were handled.
        Assert.Equal(PageLab.Kernel.Syscalls.Errno.ENOMEM, Madvise.Apply(m.Space, Base, 12 * Page, MadviseAdvice.DontNeed, KernelAbi.Proposal).Error);
        Assert.Equal(0, m.Space.ResidentPages);
        for (ulong i = 0; i < 4; i++)
        {
            Assert.Equal(100 + i, m.GuestRead64(Base + i * Page));   // shared: the same page comes back
            Assert.Equal(0UL, m.GuestRead64(Base + (8 + i) * Page)); // private: a fresh zero page
        }

        Assert.Null(Madvise.Apply(m.Space, Base, 4 * Page, MadviseAdvice.DontNeed, KernelAbi.Proposal).Error);
        m.Space.Unmap(Base, Base + 12 * Page);
        // Every data frame is back; only the page tables built for the range remain (empty tables are kept).
        Assert.Equal(freeAtStart, m.Allocator.FreeFrames + (ulong)m.Space.Tables.TableFrames - 1);
    }
}

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
