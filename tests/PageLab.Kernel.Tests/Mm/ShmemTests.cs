using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>
/// MAP_SHARED|MAP_ANONYMOUS memory is backed by one shmem object per mmap: shared by fork, kept across
/// MADV_DONTNEED, swapped out into the object, freed with the last mapping.
/// </summary>
public class ShmemTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static void Switch(TestMachine m, AddressSpace space) => m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);

    [Fact]
    public void SharedAnonymousMmap_IsBackedByAShmemObject_NamedAsLinuxNamesIt()
    {
        using var m = new TestMachine();
        var vma = m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        m.Space.Map(Base + 4 * Page, Base + 8 * Page, ReadWrite, VmaFlags.Shared, null, 0);

        Assert.True(vma.IsShmem);
        Assert.Equal(2, m.Space.Vmas.Count); // two objects: adjacent mappings do not merge
        Assert.StartsWith("40000000-40004000 rw-s 00000000 00:01 0 ", m.Space.FormatMaps(), StringComparison.Ordinal);
        Assert.EndsWith(" /dev/zero (deleted)\n", m.Space.FormatMaps().Split('\n')[0] + "\n", StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFault_AllocatesTheObjectsPage_MappedWritableButClean()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);

        Assert.Equal(FaultOutcome.ShmemPageAllocated, m.Space.HandleFault(Base, AccessKind.Read, present: false));

        var pte = m.Space.Tables.ReadPte(Base);
        Assert.True(pte.IsWritable);
        Assert.False(pte.IsDirty);
        Assert.NotEqual(m.Memory.ZeroFrame, pte.FrameNumber);
        Assert.Equal(FrameUse.Shmem, m.Memory.Page(pte.FrameNumber).Use);
        Assert.True(m.GuestWrite64(Base, 7)); // no second fault needed: the write goes to the object's page
        Assert.Equal(4UL, m.MemInfoKb("Shmem"));
        Assert.Contains("RssShmem:\t       4 kB", ProcMemory.Status(m.Space, "t", 1, 0), StringComparison.Ordinal);
        Assert.Contains("Pss_Shmem:             4 kB", m.Space.FormatSmapsRollup(), StringComparison.Ordinal);
        Assert.Contains("Pss_File:              0 kB", m.Space.FormatSmapsRollup(), StringComparison.Ordinal);
        m.Space.ZapPages(Base, Base + Page);
        Assert.Equal(FaultOutcome.SharedPageMapped, m.Space.HandleFault(Base, AccessKind.Read, present: false)); // the object's page, no zeroing
        Assert.Equal(7UL, m.GuestRead64(Base));
    }

    [Fact]
    public void Fork_SharesTheObject_PagesFirstTouchedAfterTheForkAreSeenByBoth()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + 8 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.True(m.GuestWrite64(Base, 0x100, parent));

        var child = parent.Fork()!;
        Assert.Equal(0, child.ResidentPages); // shared VMAs are not copied: the child faults from the object
        Switch(m, child);
        Assert.Equal(0x100UL, m.GuestRead64(Base, child));
        Assert.True(m.GuestWrite64(Base + 3 * Page, 0xC3, child)); // never touched by the parent
        Assert.True(m.GuestWrite64(Base, 0xC0, child));
        Switch(m, parent);
        Assert.Equal(0xC3UL, m.GuestRead64(Base + 3 * Page, parent));
        Assert.Equal(0xC0UL, m.GuestRead64(Base, parent));
        Assert.True(m.GuestWrite64(Base + 5 * Page, 0x105, parent));
        Switch(m, child);
        Assert.Equal(0x105UL, m.GuestRead64(Base + 5 * Page, child));

        // One frame per object page, however many mappings.
        Assert.Equal(3 * 4UL, m.MemInfoKb("Shmem"));
        Switch(m, m.Space);
        parent.Destroy();
        Assert.Equal(3 * 4UL, m.MemInfoKb("Shmem")); // the child still maps the object
        child.Destroy();
        Assert.Equal(0UL, m.MemInfoKb("Shmem"));
        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
    }

    [Fact]
    public void DontNeed_ZapsOnlyThePtes_TheObjectKeepsTheData_PrivateMemoryLosesIt()
    {
        using var m = new TestMachine();
        ulong freeAtStart = m.Allocator.FreeFrames;
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        m.Space.Map(Base + 8 * Page, Base + 12 * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < 4; i++)
        {
            Assert.True(m.GuestWrite64(Base + i * Page, 100 + i));
            Assert.True(m.GuestWrite64(Base + (8 + i) * Page, 200 + i));
        }

        // The hole between the two mappings makes the call ENOMEM, after both pieces were handled.
        Assert.Equal(Errno.ENOMEM, Madvise.Apply(m.Space, Base, 12 * Page, MadviseAdvice.DontNeed, KernelAbi.Proposal).Error);
        Assert.Equal(0, m.Space.ResidentPages);
        Assert.Equal(16UL, m.MemInfoKb("Shmem"));
        for (ulong i = 0; i < 4; i++)
        {
            Assert.Equal(100 + i, m.GuestRead64(Base + i * Page));   // shared: the object's page comes back
            Assert.Equal(0UL, m.GuestRead64(Base + (8 + i) * Page)); // private: a fresh zero page
        }

        m.Space.Unmap(Base, Base + 12 * Page);
        Assert.Equal(0UL, m.MemInfoKb("Shmem"));
        // Every data frame is back; only the page tables built for the range remain (empty tables are kept).
        Assert.Equal(freeAtStart, m.Allocator.FreeFrames + (ulong)m.Space.Tables.TableFrames - 1);
    }

    [Fact]
    public void PartialMunmap_KeepsTheObject_TheLastMappingFreesIt()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 4; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i + 1));

        m.Space.Unmap(Base, Base + 2 * Page);

        Assert.Equal(16UL, m.MemInfoKb("Shmem")); // Linux frees a shmem file's pages on its last fput, not per munmap
        Assert.Equal(4UL, m.GuestRead64(Base + 3 * Page));
        m.Space.Unmap(Base + 2 * Page, Base + 4 * Page);
        Assert.Equal(0UL, m.MemInfoKb("Shmem"));
    }

    [Fact]
    public void Reclaim_SwapsShmemPagesIntoTheObject_AndAFaultReadsThemBack()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + 8 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 8; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, 0x5000 + i, parent));
        var child = parent.Fork()!;
        Switch(m, child);
        Assert.Equal(0x5002UL, m.GuestRead64(Base + 2 * Page, child)); // mapped twice: still swappable (rmap walks both)

        // Pages touched since the last look survive it (a second young mapping activates them); the retries take them.
        Assert.Equal(8UL, m.ReclaimPages(8));

        Assert.Equal(8UL, m.Allocator.Swap.UsedSlots);
        Assert.Equal(0, parent.ResidentPages);
        Assert.Equal(0, child.ResidentPages);
        Assert.Equal(0UL, parent.Tables.ReadPte(Base).Raw); // the slot lives in the object, not in a PTE
        Assert.Equal(0, parent.SwappedPages);
        Assert.Equal(8 * Page, parent.Usage(parent.Vmas[0]).Swap);
        Assert.Equal(0UL, m.MemInfoKb("Shmem"));

        Assert.Equal(0x5002UL, m.GuestRead64(Base + 2 * Page, child));
        Switch(m, parent);
        Assert.Equal(0x5002UL, m.GuestRead64(Base + 2 * Page, parent)); // the same page, read from swap once
        Assert.Equal(1UL, m.Allocator.Counters.SwapIn);
        Assert.Equal(7 * Page, parent.Usage(parent.Vmas[0]).Swap);
        for (ulong i = 0; i < 8; i++)
            Assert.Equal(0x5000 + i, m.GuestRead64(Base + i * Page, parent));
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);

        // Pages swapped out when the last mapping goes give their slots back.
        Assert.Equal(8UL, m.ReclaimPages(8));
        Switch(m, m.Space);
        parent.Destroy();
        child.Destroy();
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
    }

    [Fact]
    public void WillNeed_ReadsSwappedShmemPagesBack_ButLeavesHolesAlone()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 8 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 2; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i + 1));
        Assert.Equal(2UL, m.ReclaimPages(2));

        Assert.Null(Madvise.Apply(m.Space, Base, 8 * Page, MadviseAdvice.WillNeed, KernelAbi.Proposal).Error);

        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
        Assert.Equal(8UL, m.MemInfoKb("Shmem")); // the two swapped pages, not the six holes
        Assert.Equal(0, m.Space.ResidentPages);   // read back into the object, not mapped
        Assert.Equal(2UL, m.GuestRead64(Base + Page));
    }

    [Fact]
    public void PageOut_OnShmem_SwapsTheObjectsPage()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 4; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i + 9));

        Assert.Null(Madvise.Apply(m.Space, Base, 2 * Page, MadviseAdvice.PageOut, KernelAbi.Proposal).Error);

        Assert.Equal(2 * Page, m.Space.Usage(m.Space.Vmas[0]).Swap);
        Assert.Equal(FaultOutcome.SwappedIn, m.Space.HandleFault(Base, AccessKind.Read, present: false));
        Assert.Equal(9UL, m.GuestRead64(Base));
        Assert.Equal(10UL, m.GuestRead64(Base + Page));
    }

    [Fact]
    public void PageOut_WithoutSwap_UnmapsShmemPages_TheObjectKeepsThem()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 4; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i + 3));

        Assert.Null(Madvise.Apply(m.Space, Base, 2 * Page, MadviseAdvice.PageOut, KernelAbi.Proposal).Error);

        Assert.Equal(2, m.Space.ResidentPages);   // unmapped before the write to swap, which finds no swap
        Assert.Equal(16UL, m.MemInfoKb("Shmem"));
        Assert.Equal(3UL, m.GuestRead64(Base));
    }

    [Fact]
    public void Compaction_MovesShmemPages_UnderEveryMapping_DataIntact()
    {
        using var m = new TestMachine(32UL << 20);
        m.Memory.PageCache.Fragment(new FragmentationOptions { Seed = 7, UnmovablePageblockShare = 0 });
        const ulong Pages = 4 * 512;
        var parent = new AddressSpace(m.Memory);
        Switch(m, parent);
        parent.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i * 3, parent));
        var child = parent.Fork()!;
        Switch(m, child);
        for (ulong i = 0; i < Pages; i++)
            Assert.Equal(i * 3, m.GuestRead64(Base + i * Page, child));
        var framesBefore = Enumerable.Range(0, (int)Pages).Select(i => parent.Tables.ReadPte(Base + (ulong)i * Page).FrameNumber).ToArray();

        Assert.True(m.Allocator.Compact(0, BuddyAllocator.PageblockOrder, null));

        int moved = 0;
        for (ulong i = 0; i < Pages; i++)
        {
            ulong frame = parent.Tables.ReadPte(Base + i * Page).FrameNumber;
            moved += frame != framesBefore[i] ? 1 : 0;
            Assert.Equal(frame, child.Tables.ReadPte(Base + i * Page).FrameNumber); // both PTEs follow the page
        }
        Assert.True(moved > 0, "compaction moved none of the shmem pages");
        Assert.True(m.GuestWrite64(Base + 5 * Page, 0xF00D, child));
        Switch(m, parent);
        Assert.Equal(0xF00DUL, m.GuestRead64(Base + 5 * Page, parent));
        Switch(m, m.Space);
        parent.Destroy();
        child.Destroy();
    }

    [Fact]
    public void MremapMove_KeepsTheObjectAndItsOffset()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 4 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        for (ulong i = 0; i < 4; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, 40 + i));
        var file = m.Space.Vmas[0].File;

        m.Space.Move(Base + 2 * Page, 2 * Page, Base + 64 * Page, 2 * Page);
        m.Space.ZapPages(Base + 64 * Page, Base + 66 * Page);

        var moved = m.Space.FindVma(Base + 64 * Page)!;
        Assert.Same(file, moved.File);
        Assert.Equal(2 * (long)Page, moved.FileOffset);
        Assert.Equal(42UL, m.GuestRead64(Base + 64 * Page));
        Assert.Equal(43UL, m.GuestRead64(Base + 65 * Page));
    }

    [Fact]
    public void GrowingInPlace_PastTheObjectsSize_IsABusError()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Page, ReadWrite, VmaFlags.Shared, null, 0);
        Assert.True(m.Space.TryExpandInPlace(Base + 2 * Page, Base + 4 * Page));

        Assert.Equal(FaultOutcome.ShmemPageAllocated, m.Space.HandleFault(Base + Page, AccessKind.Write, present: false));
        Assert.Equal(FaultOutcome.BusError, m.Space.HandleFault(Base + 2 * Page, AccessKind.Write, present: false));
    }
}
