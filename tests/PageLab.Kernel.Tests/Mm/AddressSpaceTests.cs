using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Tests.Mm;

public class AddressSpaceTests
{
    const ulong Base = 0x1000_0000;
    const ulong Page = PagingConstants.PageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    [Fact]
    public void DemandZeroWrite_WritesRealPteIntoPhysicalMemory()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base + 8, 0x1122334455667788));

        Assert.True(m.Space.Tables.TryGetPteAddress(Base, allocate: false, out ulong pteAddress));
        Assert.Equal(PageLab.Emulator.Memory.PhysicalAccessStatus.Ok, m.Physical.TryRead64(pteAddress, out ulong raw));
        var pte = new PageTableEntry(raw);
        Assert.True(pte.IsPresent && pte.IsWritable && pte.IsUser && pte.IsExecuteDisable);
        Assert.Equal(PageLab.Emulator.Memory.PhysicalAccessStatus.Ok, m.Physical.TryRead64(pte.Address + 8, out ulong data));
        Assert.Equal(0x1122334455667788UL, data);
        Assert.Equal(1, m.Memory.Page(pte.FrameNumber).MapCount);
        Assert.Equal(FrameUse.Anonymous, m.Memory.Page(pte.FrameNumber).Use);
        Assert.Equal(4, m.Space.Tables.TableFrames);
    }

    [Fact]
    public void ReadFault_MapsSharedZeroPageReadOnly_ThenWriteCopiesIt()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.Equal(0UL, m.GuestRead64(Base));
        Assert.Equal(0UL, m.GuestRead64(Base + Page));
        Assert.Equal(m.Memory.ZeroFrame, m.Space.Tables.ReadPte(Base).FrameNumber);
        Assert.Equal(m.Memory.ZeroFrame, m.Space.Tables.ReadPte(Base + Page).FrameNumber);
        Assert.False(m.Space.Tables.ReadPte(Base).IsWritable);

        long invlpgBefore = m.Mmu.Counters.Invlpg;
        Assert.True(m.GuestWrite64(Base, 7));
        var pte = m.Space.Tables.ReadPte(Base);
        Assert.NotEqual(m.Memory.ZeroFrame, pte.FrameNumber);
        Assert.True(pte.IsWritable);
        Assert.Equal(invlpgBefore + 1, m.Mmu.Counters.Invlpg);
        Assert.Equal(0UL, m.GuestRead64(Base + Page));
        Assert.Equal(7UL, m.GuestRead64(Base));
    }

    [Fact]
    public void PrivateFileMapping_ReadSharesPageCache_WriteCopiesAndLeavesFileIntact()
    {
        using var m = new TestMachine();
        var content = new byte[2 * Page];
        content[Page + 3] = 0xab;
        var file = new InMemoryFile("/f", content);
        m.Space.Map(Base, Base + 2 * Page, ReadWrite, VmaFlags.None, file, 0);
        m.Space.Map(Base + 0x10_0000, Base + 0x10_0000 + Page, Protection.Read, VmaFlags.None, file, (long)Page);

        Assert.Equal(0xabUL << 24, m.GuestRead64(Base + Page));
        Assert.Equal(0xabUL << 24, m.GuestRead64(Base + 0x10_0000));
        ulong cached = m.Space.Tables.ReadPte(Base + Page).FrameNumber;
        Assert.Equal(cached, m.Space.Tables.ReadPte(Base + 0x10_0000).FrameNumber);
        Assert.Equal(2, m.Memory.Page(cached).MapCount);

        Assert.True(m.GuestWrite64(Base + Page, 1));
        Assert.NotEqual(cached, m.Space.Tables.ReadPte(Base + Page).FrameNumber);
        Assert.Equal(1UL, m.GuestRead64(Base + Page));
        Assert.Equal(0xabUL << 24, m.GuestRead64(Base + 0x10_0000));
        Assert.Equal(1, m.Memory.Page(cached).MapCount);
    }

    [Fact]
    public void FileMappingPastEndOfFile_IsBusError()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Page, Protection.Read, VmaFlags.None, new InMemoryFile("/f", new byte[100]), 0);
        Assert.Equal(FaultOutcome.FilePageMapped, m.Space.HandleFault(Base + 99, AccessKind.Read, present: false));
        Assert.Equal(FaultOutcome.BusError, m.Space.HandleFault(Base + Page, AccessKind.Read, present: false));
    }

    [Fact]
    public void AccessWithoutVma_IsMapError_AndForbiddenAccess_IsAccessError()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, Protection.Read, VmaFlags.None, null, 0);
        m.Space.Map(Base + Page, Base + 2 * Page, Protection.None, VmaFlags.None, null, 0);
        Assert.Equal(FaultOutcome.SegvMapError, m.Space.HandleFault(Base - 1, AccessKind.Read, present: false));
        Assert.Equal(FaultOutcome.SegvAccessError, m.Space.HandleFault(Base, AccessKind.Write, present: false));
        Assert.Equal(FaultOutcome.SegvAccessError, m.Space.HandleFault(Base + Page, AccessKind.Read, present: false));
        Assert.Equal(FaultOutcome.SegvMapError, m.Space.HandleFault(AddressSpace.TaskSize, AccessKind.Read, present: false));
        Assert.Null(m.GuestRead64(Base + Page));
    }

    [Fact]
    public void FetchFromNonExecutableVma_MapsPageWithXd_ThenFaultsAsAccessError()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        var first = m.Mmu.Translate(Base, AccessKind.Fetch, out _);
        Assert.True(m.Space.HandleFault(first.LinearAddress, AccessKind.Fetch, present: false).IsResolved());
        var second = m.Mmu.Translate(Base, AccessKind.Fetch, out _);
        Assert.True((second.ErrorCode & PageFaultErrorCode.Present) != 0);
        Assert.Equal(FaultOutcome.SegvAccessError, m.Space.HandleFault(Base, AccessKind.Fetch, present: true));
    }

    [Fact]
    public void Munmap_ClearsPte_InvalidatesStaleTranslation_AndFreesFrame()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 5));
        ulong free = m.Allocator.FreeFrames;
        long invlpg = m.Mmu.Counters.Invlpg;

        m.Space.Unmap(Base, Base + Page);

        Assert.Equal(invlpg + 1, m.Mmu.Counters.Invlpg);
        Assert.Equal(0UL, m.Space.Tables.ReadPte(Base).Raw);
        Assert.Equal(free + 1, m.Allocator.FreeFrames);
        Assert.True(m.Mmu.Read(Base, 8, out _).IsFault);
        Assert.Null(m.GuestRead64(Base));
        Assert.Empty(m.Space.Vmas);
    }

    [Fact]
    public void Munmap_AboveFlushCeiling_ReloadsCr3InsteadOfInvlpg()
    {
        using var m = new TestMachine();
        const int Pages = AddressSpace.TlbSingleFlushCeiling + 1;
        m.Space.Map(Base, Base + Pages * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong i = 0; i < Pages; i++)
            Assert.True(m.GuestWrite64(Base + i * Page, i));
        long invlpg = m.Mmu.Counters.Invlpg, cr3Writes = m.Mmu.Counters.Cr3Writes;

        m.Space.Unmap(Base, Base + Pages * Page);

        Assert.Equal(invlpg, m.Mmu.Counters.Invlpg);
        Assert.Equal(cr3Writes + 1, m.Mmu.Counters.Cr3Writes);
        Assert.True(m.Mmu.Read(Base, 8, out _).IsFault);
    }

    [Fact]
    public void Munmap_OfMiddle_SplitsVma()
    {
        using var m = new TestMachine();
        var file = new InMemoryFile("/f", new byte[4 * Page]);
        m.Space.Map(Base, Base + 4 * Page, Protection.Read, VmaFlags.None, file, 0);
        m.Space.Unmap(Base + Page, Base + 2 * Page);
        Assert.Collection(m.Space.Vmas,
            low => Assert.Equal((Base, Base + Page, 0L), (low.Start, low.End, low.FileOffset)),
            high => Assert.Equal((Base + 2 * Page, Base + 4 * Page, (long)(2 * Page)), (high.Start, high.End, high.FileOffset)));
    }

    [Fact]
    public void MprotectReadOnly_DowngradesPresentPte_WithFlush_ThenRestoreReusesFrame()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 9));
        ulong frame = m.Space.Tables.ReadPte(Base).FrameNumber;
        long invlpg = m.Mmu.Counters.Invlpg;

        Assert.True(m.Space.Protect(Base, Base + Page, Protection.Read));
        Assert.Equal(invlpg + 1, m.Mmu.Counters.Invlpg);
        Assert.False(m.Space.Tables.ReadPte(Base).IsWritable);
        Assert.False(m.GuestWrite64(Base, 10));

        Assert.True(m.Space.Protect(Base, Base + Page, ReadWrite));
        Assert.Equal(invlpg + 1, m.Mmu.Counters.Invlpg);
        Assert.Equal(FaultOutcome.WriteReused, m.Space.HandleFault(Base, AccessKind.Write, present: true));
        Assert.Equal(frame, m.Space.Tables.ReadPte(Base).FrameNumber);
        Assert.Equal(9UL, m.GuestRead64(Base));
    }

    [Fact]
    public void MprotectNone_KeepsFrameInNonPresentPte_AndRestoresContent()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 42));
        Assert.True(m.Space.Protect(Base, Base + Page, Protection.None));
        var pte = m.Space.Tables.ReadPte(Base);
        Assert.False(pte.IsPresent);
        Assert.NotEqual(0UL, pte.Raw & AddressSpace.ProtNoneBit);
        Assert.Null(m.GuestRead64(Base));
        Assert.True(m.Space.Protect(Base, Base + Page, Protection.Read));
        Assert.Equal(42UL, m.GuestRead64(Base));
    }

    [Fact]
    public void Mprotect_OverUnmappedHole_ChangesThePartBeforeItAndFails()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        m.Space.Map(Base + 2 * Page, Base + 3 * Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.False(m.Space.Protect(Base, Base + 3 * Page, Protection.Read));
        Assert.Equal([Protection.Read, ReadWrite], m.Space.Vmas.Select(v => v.Protection));
        Assert.False(m.Space.Protect(Base + Page, Base + 3 * Page, Protection.Read));
        Assert.Equal([Protection.Read, ReadWrite], m.Space.Vmas.Select(v => v.Protection));
    }

    [Fact]
    public void AdjacentCompatibleMappings_Merge()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.Account, null, 0);
        m.Space.Map(Base + Page, Base + 2 * Page, ReadWrite, VmaFlags.Account, null, 0);
        m.Space.Map(Base + 2 * Page, Base + 3 * Page, Protection.Read, VmaFlags.None, null, 0);
        Assert.Equal(2, m.Space.Vmas.Count);
        Assert.True(m.Space.Protect(Base + 2 * Page, Base + 3 * Page, ReadWrite));
        Assert.Single(m.Space.Vmas);
    }

    [Fact]
    public void MprotectWritable_ChargesPrivateMappings_SoTheyNoLongerMergeWithNoreserveOnes()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Page, Protection.None, VmaFlags.None, null, 0);
        m.Space.Map(Base + 2 * Page, Base + 4 * Page, Protection.None, VmaFlags.NoReserve, null, 0);
        Assert.True(m.Space.Protect(Base, Base + 4 * Page, ReadWrite));
        Assert.Equal([VmaFlags.Account, VmaFlags.NoReserve], m.Space.Vmas.Select(v => v.Flags));
        Assert.True(m.Space.Protect(Base, Base + 2 * Page, Protection.None));
        Assert.Equal(VmaFlags.None, m.Space.Vmas[0].Flags);
    }

    [Fact]
    public void Move_CarriesPagesToTheNewAddress_AndLeavesTheOldRangeUnmapped()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + 2 * Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base + Page, 77));
        ulong frame = m.Space.Tables.ReadPte(Base + Page).FrameNumber;
        m.Space.Move(Base, 2 * Page, Base + 0x10_0000, 4 * Page);
        Assert.Equal(77UL, m.GuestRead64(Base + 0x10_0000 + Page));
        Assert.Equal(frame, m.Space.Tables.ReadPte(Base + 0x10_0000 + Page).FrameNumber);
        Assert.Null(m.GuestRead64(Base + Page));
        Assert.Equal((Base + 0x10_0000, Base + 0x10_0000 + 4 * Page), (m.Space.Vmas[0].Start, m.Space.Vmas[0].End));
    }

    [Fact]
    public void StackGrowsDownOnFault_WithinRlimit()
    {
        using var m = new TestMachine();
        ulong top = AddressSpace.StackTop;
        m.Space.Map(top - 32 * Page, top, ReadWrite, VmaFlags.GrowsDown, null, 0);
        Assert.True(m.GuestWrite64(top - (1UL << 20), 1));
        Assert.Equal(top - (1UL << 20), m.Space.Vmas[^1].Start);
        Assert.Equal(FaultOutcome.SegvMapError, m.Space.HandleFault(top - AddressSpace.StackLimit - Page, AccessKind.Write, present: false));
    }

    [Fact]
    public void StackDoesNotGrowIntoGuardGapOfMappingBelow()
    {
        using var m = new TestMachine();
        ulong top = AddressSpace.StackTop;
        ulong stackStart = top - 32 * Page;
        m.Space.Map(stackStart - 2 * AddressSpace.StackGuardGap, stackStart - 2 * AddressSpace.StackGuardGap + Page, ReadWrite, VmaFlags.None, null, 0);
        m.Space.Map(stackStart, top, ReadWrite, VmaFlags.GrowsDown, null, 0);
        ulong belowLimit = stackStart - 2 * AddressSpace.StackGuardGap + Page + AddressSpace.StackGuardGap;
        Assert.Equal(FaultOutcome.SegvMapError, m.Space.HandleFault(belowLimit - Page, AccessKind.Write, present: false));
        Assert.Equal(FaultOutcome.AnonymousZeroFilled, m.Space.HandleFault(belowLimit, AccessKind.Write, present: false));
    }

    [Fact]
    public void FreeRange_IsTopDownFromMmapBase_AndHonoursHint()
    {
        using var m = new TestMachine();
        Assert.True(m.Space.TryFindFreeRange(2 * Page, 0, out ulong first));
        Assert.Equal(AddressSpace.MmapBase - 2 * Page, first);
        m.Space.Map(first, first + 2 * Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.Space.TryFindFreeRange(Page, 0, out ulong second));
        Assert.Equal(first - Page, second);
        Assert.True(m.Space.TryFindFreeRange(Page, 0x4000_0000, out ulong hinted));
        Assert.Equal(0x4000_0000UL, hinted);
        Assert.True(m.Space.TryFindFreeRange(Page, first, out ulong clash));
        Assert.Equal(first - Page, clash);
    }

    [Fact]
    public void Brk_GrowsAndShrinks_AndRefusesBelowStart()
    {
        using var m = new TestMachine();
        m.Space.StartBrk = m.Space.Brk = 0x60_0000;
        Assert.Equal(0x60_0000UL, m.Space.SetBrk(0x10));
        Assert.Equal(0x60_2010UL, m.Space.SetBrk(0x60_2010));
        Assert.Equal((0x60_0000UL, 0x60_3000UL), (m.Space.Vmas[0].Start, m.Space.Vmas[0].End));
        Assert.True(m.GuestWrite64(0x60_2008, 3));
        Assert.Equal(0x60_0800UL, m.Space.SetBrk(0x60_0800));
        Assert.Equal(0x60_1000UL, m.Space.Vmas[0].End);
        Assert.Null(m.GuestRead64(0x60_2008));
    }

    [Fact]
    public void Brk_RefusesToGrowIntoNextMapping()
    {
        using var m = new TestMachine();
        m.Space.StartBrk = m.Space.Brk = 0x60_0000;
        m.Space.Map(0x60_4000, 0x60_5000, ReadWrite, VmaFlags.None, null, 0);
        Assert.Equal(0x60_3000UL, m.Space.SetBrk(0x60_3000));
        Assert.Equal(0x60_3000UL, m.Space.SetBrk(0x60_4000));
    }

    [Fact]
    public void ProcMaps_UsesLinuxFormat()
    {
        using var m = new TestMachine();
        var file = new InMemoryFile("/bin/prog", new byte[Page], device: 0xfe00, inode: 247270);
        m.Space.Map(0x40_0000, 0x40_1000, Protection.Read | Protection.Exec, VmaFlags.None, file, 0);
        m.Space.StartBrk = m.Space.Brk = 0x50_0000;
        m.Space.SetBrk(0x50_1000);
        m.Space.Map(0x7fff_f7ff_e000, 0x7fff_f7ff_f000, ReadWrite, VmaFlags.None, null, 0);
        string expected =
            "00400000-00401000 r-xp 00000000 fe:00 247270                             /bin/prog\n" +
            "00500000-00501000 rw-p 00000000 00:00 0                                  [heap]\n" +
            "7ffff7ffe000-7ffff7fff000 rw-p 00000000 00:00 0 \n";
        Assert.Equal(expected, m.Space.FormatMaps());
    }

    [Fact]
    public void Walk_ReportsEachLevelEntry()
    {
        using var m = new TestMachine();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Assert.True(m.GuestWrite64(Base, 1));
        var path = m.Space.Tables.Walk(Base);
        Assert.Equal([PagingLevel.Pml4, PagingLevel.Pdpt, PagingLevel.PageDirectory, PagingLevel.PageTable], path.Select(s => s.Level));
        Assert.All(path, s => Assert.True(s.Entry.IsPresent));
        Assert.StartsWith("PML4E[0x", path[0].ToString(), StringComparison.Ordinal);
        Assert.Single(m.Space.Tables.Walk(0x7000_0000_0000));
    }
}
