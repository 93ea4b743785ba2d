using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>dup_mmap: the child's copy of the address space, copy-on-write, and the frame accounting around it.</summary>
public class ForkTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;
    const int Pages = 16;

    static void Switch(TestMachine m, AddressSpace space) => m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);

    [Fact]
    public void Fork_WriteProtectsPrivatePagesInBoth_AndSharesTheFrames()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i));

        var child = m.Space.Fork()!;

        Assert.Equal(m.Space.FormatMaps(), child.FormatMaps());
        for (ulong i = 0; i < Pages; i++)
        {
            var parentPte = m.Space.Tables.ReadPte(Base + i * Page);
            var childPte = child.Tables.ReadPte(Base + i * Page);
            Assert.False(parentPte.IsWritable);
            Assert.False(childPte.IsWritable);
            Assert.Equal(parentPte.FrameNumber, childPte.FrameNumber);
            ref var page = ref m.Memory.Page(parentPte.FrameNumber);
            Assert.Equal((2, 2), (page.RefCount, page.MapCount));
        }
        Assert.Equal(m.Space.ResidentPages, child.ResidentPages);
    }

    [Fact]
    public void ParentAndChildWrites_AreIsolated_AndEachSideSeesItsOwnData()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, 0x1000 + i));
        var child = m.Space.Fork()!;

        // Parent writes even pages, child writes odd pages and page 0.
        for (ulong i = 0; i < Pages; i += 2)
            Assert.True(m.GuestWrite64(Base + i * Page, 0xAAAA_0000 + i));
        Switch(m, child);
        for (ulong i = 1; i < Pages; i += 2)
            Assert.True(m.GuestWrite64(Base + i * Page, 0xCCCC_0000 + i, child));
        Assert.True(m.GuestWrite64(Base, 0xCCCC_FFFF, child));

        for (ulong i = 0; i < Pages; i++)
            Assert.Equal(i == 0 ? 0xCCCC_FFFF : i % 2 == 1 ? 0xCCCC_0000 + i : 0x1000 + i, m.GuestRead64(Base + i * Page, child));
        Switch(m, m.Space);
        for (ulong i = 0; i < Pages; i++)
            Assert.Equal(i % 2 == 0 ? 0xAAAA_0000 + i : 0x1000 + i, m.GuestRead64(Base + i * Page));
        // Every frame is now mapped once: each side either copied or reused the original.
        for (ulong i = 0; i < Pages; i++)
        {
            ref var page = ref m.Memory.Page(m.Space.Tables.ReadPte(Base + i * Page).FrameNumber);
            Assert.Equal((1, 1), (page.RefCount, page.MapCount));
        }
    }

    [Fact]
    public void ForkThenBothExit_ReturnsEveryFrame()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + 4 * Huge, ReadWrite, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + 4 * Huge; a += 3 * Page)
            Assert.True(m.GuestWrite64(a, a, parent));
        var child = parent.Fork()!;
        Switch(m, child);
        for (ulong a = Base; a < Base + 4 * Huge; a += 5 * Page)
            Assert.True(m.GuestWrite64(a, ~a, child));

        Switch(m, m.Space);
        child.Destroy();
        parent.Destroy();

        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
    }

    [Fact]
    public void Fork_DuplicatesSwapEntries_AndEachSideSwapsInItsOwnCopy()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 16UL << 20);
        m.Space.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, 0x5000 + i));
        Assert.Equal((ulong)Pages, m.ReclaimPages(Pages));

        var child = m.Space.Fork()!;

        Assert.Equal(Pages, child.SwappedPages);
        Assert.Equal((ulong)Pages, m.Allocator.Swap.UsedSlots);
        Assert.True(m.GuestWrite64(Base, 0xAAAA));
        Switch(m, child);
        Assert.Equal(0x5000UL, m.GuestRead64(Base, child));
        Assert.Equal(0x5001UL, m.GuestRead64(Base + Page, child));
        child.Destroy();
        Switch(m, m.Space);
        Assert.Equal(0xAAAAUL, m.GuestRead64(Base));
        Assert.Equal(0x5001UL, m.GuestRead64(Base + Page));
        m.Space.Unmap(Base, Base + Pages * Page);
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
    }

    [Fact]
    public void SharedFrames_AreNeitherMigratedNorEvicted()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 16UL << 20);
        m.Space.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i));
        var child = m.Space.Fork()!;

        // The reverse map knows only one of the two PTEs: moving or evicting the frame would strand the other.
        Assert.Equal(0UL, m.ReclaimPages(Pages));
        Switch(m, child);
        for (ulong i = 0; i < Pages; i++)
            Assert.Equal(i, m.GuestRead64(Base + i * Page, child));
        child.Destroy();
        Switch(m, m.Space);
        // The survivor owns its frames again once it writes them: now they can be swapped.
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i + 1));
        Assert.Equal((ulong)Pages, m.ReclaimPages(Pages));
    }
}
