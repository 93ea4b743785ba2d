using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>/proc/self/pagemap entries: PFN bits 0-54, soft-dirty 55, exclusive 56, file/shared 61, swapped 62, present 63.</summary>
public class PagemapTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;

    [Fact]
    public void Entries_ShowPresentExclusiveZeroPageSwappedAndFilePages()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 4 * Page, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        m.Space.Map(Base + 4 * Page, Base + 5 * Page, Protection.Read, VmaFlags.None, new InMemoryFile("/f", new byte[Page]), 0);
        Assert.True(m.GuestWrite64(Base, 1));
        Assert.True(m.GuestWrite64(Base + Page, 2));
        Assert.Equal(0UL, m.GuestRead64(Base + 2 * Page));
        Assert.Equal(0UL, m.GuestRead64(Base + 4 * Page));
        Assert.True(m.Allocator.TryReclaimNow(m.Space.Tables.ReadPte(Base + 4 * Page).FrameNumber, null)); // the file page is dropped
        Assert.Equal(0UL, m.GuestRead64(Base + 4 * Page));
        Assert.True(m.Allocator.TryReclaimNow(m.Space.Tables.ReadPte(Base + Page).FrameNumber, null));

        var entries = new byte[6 * 8];
        Assert.Equal(entries.Length, m.Space.ReadPagemap(entries, (long)(Base / Page * 8), showFrames: true));
        ulong Entry(int i) => BitConverter.ToUInt64(entries, i * 8);

        const ulong Present = AddressSpace.PagemapPresent, Exclusive = AddressSpace.PagemapExclusive, SoftDirty = AddressSpace.PagemapSoftDirty;
        Assert.Equal(Present | Exclusive | SoftDirty | m.Space.Tables.ReadPte(Base).FrameNumber, Entry(0));
        Assert.Equal(AddressSpace.PagemapSwapped | SoftDirty, Entry(1) & ~AddressSpace.PagemapFrameMask);
        Assert.Equal(Present | SoftDirty | m.Memory.ZeroFrame, Entry(2));
        Assert.Equal(SoftDirty, Entry(3));
        Assert.Equal(Present | AddressSpace.PagemapFileOrShared | Exclusive | SoftDirty, Entry(4) & ~AddressSpace.PagemapFrameMask);
        Assert.Equal(0UL, Entry(5)); // no VMA
        Assert.Equal(-22, m.Space.ReadPagemap(entries, 4, showFrames: true));
        var hidden = new byte[8];
        m.Space.ReadPagemap(hidden, (long)(Base / Page * 8), showFrames: false);
        Assert.Equal(0UL, BitConverter.ToUInt64(hidden) & AddressSpace.PagemapFrameMask);
    }

    [Fact]
    public void AfterACollapse_TheRegionShows512ConsecutiveAlignedPfns()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + Huge; a += 64 * Page) Assert.True(m.GuestWrite64(a, a));
        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal).Error);

        var entries = new byte[512 * 8];
        m.Space.ReadPagemap(entries, (long)(Base / Page * 8), showFrames: true);
        ulong first = BitConverter.ToUInt64(entries) & AddressSpace.PagemapFrameMask;
        Assert.Equal(0UL, first % 512);
        for (int i = 0; i < 512; i++)
            Assert.Equal(AddressSpace.PagemapPresent | AddressSpace.PagemapExclusive | AddressSpace.PagemapSoftDirty | (first + (ulong)i), BitConverter.ToUInt64(entries, i * 8));
    }
}
