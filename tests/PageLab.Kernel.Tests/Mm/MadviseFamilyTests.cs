using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>MADV_FREE, COLD, PAGEOUT, POPULATE_READ/WRITE and WILLNEED with Linux's semantics and errno.</summary>
public class MadviseFamilyTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static MadviseResult Advise(TestMachine m, ulong start, ulong length, int advice) =>
        Madvise.Apply(m.Space, start, length, advice, KernelAbi.Proposal);

    static void Fill(TestMachine m, ulong start, ulong pages)
    {
        for (ulong i = 0; i < pages; i++)
            Assert.True(m.GuestWrite64(start + i * Page, start + i * Page + 1));
    }

    [Fact]
    public void Free_CleanPagesAreDiscardedByReclaimWithoutSwap_RewrittenOnesKeepTheirData()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 8 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, 8);

        Assert.Null(Advise(m, Base, 8 * Page, MadviseAdvice.Free).Error);
        Assert.Equal(8 * Page, m.Space.Usage(m.Space.Vmas[0]).LazyFree);
        Assert.False(m.Space.Tables.ReadPte(Base).IsDirty);
        Assert.True(m.GuestWrite64(Base + 3 * Page + 8, 42)); // redirties page 3 through the MMU

        Assert.Equal(7UL, m.ReclaimPages(8));

        Assert.Equal(7UL, m.Allocator.Counters.LazyFreed);
        Assert.Equal(1, m.Space.ResidentPages);
        Assert.Equal(Base + 3 * Page + 1, m.GuestRead64(Base + 3 * Page));
        Assert.Equal(0UL, m.GuestRead64(Base));
    }

    [Fact]
    public void Free_OnAFileOrSharedMapping_IsEinval()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, Protection.Read, VmaFlags.None, new InMemoryFile("/f", new byte[Page]), 0);
        m.Space.Map(Base + Page, Base + 2 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.Equal(Errno.EINVAL, Advise(m, Base, Page, MadviseAdvice.Free).Error);
        Assert.Equal(Errno.EINVAL, Advise(m, Base + Page, Page, MadviseAdvice.Free).Error);
    }

    [Fact]
    public void PageOut_SwapsThePagesOutNow_AndTheyComeBackOnAccess()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 16 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, 16);

        Assert.Null(Advise(m, Base + 4 * Page, 8 * Page, MadviseAdvice.PageOut).Error);

        Assert.Equal(8, m.Space.SwappedPages);
        Assert.Equal(8 * Page, m.Space.Usage(m.Space.Vmas[0]).Swap);
        for (ulong i = 0; i < 16; i++)
            Assert.Equal(Base + i * Page + 1, m.GuestRead64(Base + i * Page));
        Assert.Equal(0, m.Space.SwappedPages);
    }

    [Fact]
    public void PageOut_WithoutSwap_LeavesAnonymousPagesResident()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, 4);
        Assert.Null(Advise(m, Base, 4 * Page, MadviseAdvice.PageOut).Error);
        Assert.Equal(4, m.Space.ResidentPages);
    }

    [Fact]
    public void Cold_MovesThePagesToTheOldEndOfTheLru_SoReclaimTakesThemFirst()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 16 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, 16);

        Assert.Null(Advise(m, Base + 12 * Page, 4 * Page, MadviseAdvice.Cold).Error);
        Assert.False(m.Space.Tables.ReadPte(Base + 12 * Page).IsAccessed);
        Assert.Equal(4UL, m.ReclaimPages(4));

        for (ulong i = 0; i < 16; i++)
            Assert.Equal(i >= 12, SwapPte.IsSwapEntry(m.Space.Tables.ReadPte(Base + i * Page).Raw));
    }

    [Fact]
    public void PopulateWrite_AllocatesEveryPage_PopulateRead_MapsTheZeroPage()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 8 * Page, ReadWrite, VmaFlags.None, null, 0);

        Assert.Null(Advise(m, Base, 4 * Page, MadviseAdvice.PopulateRead).Error);
        Assert.Equal(0, m.Space.ResidentPages);
        Assert.Equal(m.Memory.ZeroFrame, m.Space.Tables.ReadPte(Base).FrameNumber);

        Assert.Null(Advise(m, Base, 8 * Page, MadviseAdvice.PopulateWrite).Error);
        Assert.Equal(8, m.Space.ResidentPages);
        Assert.True(m.Space.Tables.ReadPte(Base).IsWritable);
    }

    [Fact]
    public void Populate_StopsAtTheFirstProblem_EinvalForPermissions_EnomemForAHole()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.None, null, 0);
        m.Space.Map(Base + 4 * Page, Base + 8 * Page, Protection.Read, VmaFlags.None, null, 0);
        m.Space.Map(Base + 8 * Page, Base + 12 * Page, Protection.None, VmaFlags.None, null, 0);

        Assert.Equal(Errno.EINVAL, Advise(m, Base, 8 * Page, MadviseAdvice.PopulateWrite).Error);
        Assert.Equal(4, m.Space.ResidentPages); // the writable piece before was populated
        Assert.Null(Advise(m, Base + 4 * Page, 4 * Page, MadviseAdvice.PopulateRead).Error);
        Assert.Equal(Errno.EINVAL, Advise(m, Base + 8 * Page, 4 * Page, MadviseAdvice.PopulateRead).Error);
        Assert.Equal(Errno.ENOMEM, Advise(m, Base + 12 * Page, 2 * Page, MadviseAdvice.PopulateRead).Error);
    }

    [Fact]
    public void WillNeed_OnAFileMapping_ReadsItIntoThePageCacheWithoutMappingIt()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, Protection.Read, VmaFlags.None, new InMemoryFile("/f", new byte[3 * Page]), 0);
        Assert.Null(Advise(m, Base, 4 * Page, MadviseAdvice.WillNeed).Error);
        Assert.Equal(3, m.Memory.PageCache.Pages);
        Assert.Equal(0, m.Space.ResidentPages);
    }
}
