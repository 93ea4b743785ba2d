using PageLab.Emulator.Paging;
using static PageLab.Emulator.Tests.Paging.MachineFixture;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>Unit tests named after the Intel SDM Vol. 3A ch. 4 rule they check.</summary>
public sealed class SdmRuleTests
{
    const ulong Va = 0x0000_7f12_3456_7000;
    const ulong FrameA = 0x0100_0000;
    const ulong FrameB = 0x0180_0000;

    [Fact]
    public void StaleTranslation_IsUsedUntilInvlpg()
    {
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        Assert.Equal(FrameA + 0x10, m.Translate(Va + 0x10));

        m.Tables.Write(pte, new PageTableEntry(FrameB | User));
        Assert.Equal(FrameA + 0x10, m.Translate(Va + 0x10)); // the TLB still holds the old translation

        m.Mmu.Invlpg(Va);
        Assert.Equal(FrameB + 0x10, m.Translate(Va + 0x10));
    }

    [Fact]
    public void PageSizeChange_4KTo2M_BothTranslationsUsableUntilInvalidated()
    {
        using var m = new MachineFixture();
        const ulong region = 0x0000_7f00_0020_0000;
        m.Tables.Map(region, FrameA, PageSize.Size4K, User);
        m.Tables.Map(region + 0x1000, FrameA + 0x5000, PageSize.Size4K, User);
        Assert.Equal(FrameA + 0x5008, m.Translate(region + 0x1008)); // cached as a 4K translation

        // Replace the PTE table by a 2 MiB leaf without invalidating.
        ulong pde = m.Tables.EntryAddress(region, PagingLevel.PageDirectory);
        m.Tables.Write(pde, new PageTableEntry(FrameB | User | PageTableEntry.PageSizeBit));
        // A new address may still walk through the stale PDE-cache entry into the old PTE table (not
        // present there); delivering that #PF drops the cached PDE, and the retry finds the 2M leaf.
        m.Fault(region + 0x3008, AccessKind.Read);
        Assert.Equal(FrameB + 0x3008, m.Translate(region + 0x3008));
        Assert.Equal(FrameA + 0x5008, m.Translate(region + 0x1008)); // the stale 4K one is still used

        m.Mmu.Invlpg(region + 0x1000);
        Assert.Equal(FrameB + 0x1008, m.Translate(region + 0x1008));
    }

    [Fact]
    public void Invlpg_DropsPagingStructureCachesOfCurrentPcid()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Translate(Va);
        Assert.True(m.Mmu.PagingStructureCacheCount(PagingLevel.PageDirectory) > 0);

        m.Mmu.Invlpg(0x1000); // an unrelated address: every PSC entry of the PCID goes anyway
        Assert.Equal(0, m.Mmu.PagingStructureCacheCount(PagingLevel.PageDirectory));
        Assert.Equal(0, m.Mmu.PagingStructureCacheCount(PagingLevel.Pdpt));
        Assert.Equal(0, m.Mmu.PagingStructureCacheCount(PagingLevel.Pml4));
        Assert.Equal(FrameA, m.Translate(Va)); // but the TLB entry of Va survives
        Assert.Equal(1, m.Mmu.Counters.Walks);
    }

    [Fact]
    public void PagingStructureCacheHit_ShortensTheWalk()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Tables.Map(Va + 0x1000, FrameB, PageSize.Size4K, User);
        m.Translate(Va);
        long refs = m.Mmu.Counters.WalkMemoryReferences;
        Assert.Equal(4, refs);
        m.Translate(Va + 0x1000);
        Assert.Equal(refs + 1, m.Mmu.Counters.WalkMemoryReferences); // PDE cache hit: only the PTE is read
        Assert.Equal(1, m.Mmu.Counters.PagingStructureCacheHits[(int)PagingLevel.PageDirectory]);
    }

    [Fact]
    public void GlobalEntries_SurviveCr3Write()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User | PageTableEntry.GlobalBit);
        m.Tables.Map(Va + 0x1000, FrameB, PageSize.Size4K, User);
        m.Translate(Va);
        m.Translate(Va + 0x1000);

        var other = new PageTableBuilder(m.Memory, 8UL << 20, 1UL << 20);
        m.Mmu.WriteCr3(other.Root); // empty tables: only the TLB can translate now
        Assert.Equal(FrameA, m.Translate(Va));
        Assert.Equal(TranslationFaultKind.PageFault, m.Fault(Va + 0x1000, AccessKind.Read).Kind);
    }

    [Fact]
    public void GlobalBit_IgnoredWithoutCr4Pge()
    {
        using var m = new MachineFixture(flags: ControlFlags.LinuxDefault & ~ControlFlags.PageGlobalEnable);
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User | PageTableEntry.GlobalBit);
        m.Translate(Va);
        m.Mmu.WriteCr3(new PageTableBuilder(m.Memory, 8UL << 20, 1UL << 20).Root);
        m.Fault(Va, AccessKind.Read);
    }

    [Fact]
    public void Cr3WriteWithNoFlushBit_KeepsThePcidsEntries()
    {
        using var m = new MachineFixture();
        m.Mmu.WriteCr3(m.Tables.Root | 5);
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Translate(Va);
        var empty = new PageTableBuilder(m.Memory, 8UL << 20, 1UL << 20);

        m.Mmu.WriteCr3(empty.Root | 9);                   // switch to PCID 9
        m.Fault(Va, AccessKind.Read);                       // PCID 5's entry is not used for PCID 9
        m.Mmu.WriteCr3(empty.Root | 5 | (1UL << 63));     // back to PCID 5, no flush
        Assert.Equal(FrameA, m.Translate(Va));              // translated by the kept TLB entry: tables are empty
        m.Mmu.WriteCr3(empty.Root | 5);                   // without bit 63: PCID 5 is flushed
        m.Fault(Va, AccessKind.Read);
    }

    [Fact]
    public void FirstWriteThroughReadFilledEntry_WalksAgainAndSetsDirty()
    {
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Translate(Va, AccessKind.Read);
        Assert.True(m.Tables.Read(pte).IsAccessed);
        Assert.False(m.Tables.Read(pte).IsDirty);
        long walks = m.Mmu.Counters.Walks;

        m.Translate(Va, AccessKind.Write);
        Assert.Equal(walks + 1, m.Mmu.Counters.Walks);
        Assert.Equal(1, m.Mmu.Counters.DirtyBitWalks);
        Assert.True(m.Tables.Read(pte).IsDirty);

        m.Translate(Va, AccessKind.Write); // now the entry is dirty: a plain hit
        Assert.Equal(walks + 1, m.Mmu.Counters.Walks);
    }

    [Fact]
    public void FirstWriteThroughReadFilledEntry_IsTheOnlyWriteThatWalks_AfterAPageSizeChange()
    {
        // The clean 4K entry sends the first write to a walk, which finds the new 2M leaf. The dirty 2M translation
        // must then serve the writes: the clean 4K entry, searched first, must not send each of them to a walk again.
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Translate(Va, AccessKind.Read);
        ulong pde = m.Tables.EntryAddress(Va, PagingLevel.PageDirectory);
        m.Tables.Write(pde, new PageTableEntry(FrameB | User | PageTableEntry.PageSizeBit));
        m.Mmu.Invlpg(0x1000); // an unrelated page: only the paging-structure caches go
        long walks = m.Mmu.Counters.Walks;

        for (int i = 0; i < 4; i++)
            Assert.Equal(FrameB + (Va & ((2UL << 20) - 1)), m.Translate(Va, AccessKind.Write));
        Assert.Equal(walks + 1, m.Mmu.Counters.Walks);
        Assert.Equal(1, m.Mmu.Counters.DirtyBitWalks);
        Assert.True(m.Tables.Read(pde).IsDirty);
    }

    [Fact]
    public void Smap_FaultsSupervisorAccessToUserPage_UnlessAlignmentCheck()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Mmu.UserMode = false;
        var fault = m.Fault(Va, AccessKind.Read);
        Assert.Equal(PageFaultErrorCode.Present, fault.ErrorCode);
        m.Mmu.AlignmentCheck = true;
        Assert.Equal(FrameA, m.Translate(Va));
        Assert.Equal(FrameA, m.Translate(Va, AccessKind.Write));
    }

    [Fact]
    public void Smep_FaultsSupervisorFetchFromUserPage()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Mmu.UserMode = false;
        m.Mmu.AlignmentCheck = true; // SMAP does not apply to fetches; AC does not help SMEP
        var fault = m.Fault(Va, AccessKind.Fetch);
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.InstructionFetch, fault.ErrorCode);
    }

    [Fact]
    public void SettingSmep_InvalidatesTheTranslationsOfTheCurrentPcid()
    {
        // SDM 4.10.4.1: MOV to CR4 that changes SMEP from 0 to 1 invalidates all TLB entries and paging-structure-cache
        // entries for the current PCID.
        var withoutSmep = ControlFlags.LinuxDefault & ~ControlFlags.Smep;
        using var m = new MachineFixture(flags: withoutSmep);
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        Assert.Equal(FrameA, m.Translate(Va));
        m.Tables.Write(pte, new PageTableEntry(FrameB | User));
        Assert.Equal(FrameA, m.Translate(Va)); // stale until something invalidates it

        Assert.True(m.Mmu.SetFlags(withoutSmep | ControlFlags.Smep));
        Assert.Equal(0, m.Mmu.PagingStructureCacheCount(PagingLevel.PageDirectory));
        Assert.Equal(FrameB, m.Translate(Va));
    }

    [Fact]
    public void ProtectionKey_OfATranslationCachedWhilePkeWasClear_AppliesOncePkeIsSet()
    {
        // SDM 4.6.2: with CR4.PKE = 1 every linear address has the key of the entry that mapped its page; setting PKE
        // invalidates nothing, so a translation cached before must carry that key, not 0.
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User | (5UL << PageTableEntry.ProtectionKeyShift));
        Assert.Equal(FrameA, m.Translate(Va)); // cached while PKE = 0

        Assert.True(m.Mmu.SetFlags(ControlFlags.LinuxDefault | ControlFlags.ProtectionKeys));
        m.Mmu.Pkru = 0b01; // key 0: access-disable, which does not concern the page
        Assert.Equal(FrameA, m.Translate(Va));
        m.Mmu.Pkru = 0b01 << 10; // key 5: access-disable
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.ProtectionKey, m.Fault(Va, AccessKind.Read).ErrorCode);
    }

    [Fact]
    public void NonCanonicalAddress_GivesGeneralProtection_NotPageFault()
    {
        using var m = new MachineFixture();
        var fault = m.Fault(0x0000_8000_0000_0000, AccessKind.Read);
        Assert.Equal(TranslationFaultKind.GeneralProtection, fault.Kind);
        Assert.Equal(0, m.Mmu.Counters.PageFaults);
    }

    [Fact]
    public void La57_Makes57BitAddressesCanonical_AndWalksFiveLevels()
    {
        using var m = new MachineFixture(fiveLevel: true);
        const ulong high = 0x00ff_8000_0000_1000;
        m.Tables.Map(high, FrameA, PageSize.Size4K, User);
        Assert.Equal(FrameA, m.Translate(high));
        Assert.Equal(5, m.Mmu.Counters.WalkMemoryReferences);
        Assert.Equal(TranslationFaultKind.GeneralProtection, m.Fault(0x0100_0000_0000_0000, AccessKind.Read).Kind);
    }

    [Fact]
    public void NotPresent_ErrorCodeHasPClear_AndCr2IsTheAddress()
    {
        using var m = new MachineFixture();
        var fault = m.Fault(Va + 0x123, AccessKind.Write);
        Assert.Equal(TranslationFaultKind.PageFault, fault.Kind);
        Assert.Equal(Va + 0x123, fault.LinearAddress);
        Assert.Equal(PageFaultErrorCode.Write | PageFaultErrorCode.User, fault.ErrorCode);
    }

    [Fact]
    public void UserWriteToReadOnlyPage_IsProtectionViolation()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, UserReadOnly);
        var fault = m.Fault(Va, AccessKind.Write);
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User, fault.ErrorCode);
    }

    [Fact]
    public void ReadWriteIsTheAndOfAllLevels()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        ulong pde = m.Tables.EntryAddress(Va, PagingLevel.PageDirectory);
        m.Tables.Write(pde, m.Tables.Read(pde).Without(PageTableEntry.WritableBit));
        m.Fault(Va, AccessKind.Write);
    }

    [Fact]
    public void Cr0Wp_GovernsSupervisorWritesToReadOnlyPages()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, PageTableEntry.PresentBit);
        m.Mmu.UserMode = false;
        m.Fault(Va, AccessKind.Write);
        m.Mmu.SetFlags(m.Mmu.Flags & ~ControlFlags.WriteProtect);
        Assert.Equal(FrameA, m.Translate(Va, AccessKind.Write));
    }

    [Fact]
    public void ExecuteDisable_FaultsFetch_OnlyWithNxe()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User | PageTableEntry.ExecuteDisableBit);
        var fault = m.Fault(Va, AccessKind.Fetch);
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.InstructionFetch, fault.ErrorCode);
        m.Mmu.SetFlags(m.Mmu.Flags & ~ControlFlags.NoExecuteEnable);
        m.Mmu.FlushAll();
        // Without NXE, bit 63 is reserved.
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.ReservedBit, m.Fault(Va, AccessKind.Read).ErrorCode);
    }

    [Fact]
    public void ReservedBits_AboveMaxPhyAddr_AndLowBitsOfLargePage_GiveRsvdFault()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA | (1UL << 47), PageSize.Size4K, User); // MAXPHYADDR is 46
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.ReservedBit, m.Fault(Va, AccessKind.Read).ErrorCode);

        const ulong large = 0x0000_7f00_0040_0000;
        ulong pde = m.Tables.Map(large, FrameB, PageSize.Size2M, User);
        m.Tables.Write(pde, m.Tables.Read(pde).With(1UL << 13)); // bit 13 is reserved in a 2M PDE
        Assert.True(m.Fault(large, AccessKind.Read).ErrorCode.HasFlag(PageFaultErrorCode.ReservedBit));
    }

    [Fact]
    public void PsBitInPml4e_IsReserved()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        ulong pml4e = m.Tables.EntryAddress(Va, PagingLevel.Pml4);
        m.Tables.Write(pml4e, m.Tables.Read(pml4e).With(PageTableEntry.PageSizeBit));
        Assert.True(m.Fault(Va, AccessKind.Read).ErrorCode.HasFlag(PageFaultErrorCode.ReservedBit));
    }

    [Fact]
    public void ProtectionKeys_AccessDisableAndWriteDisable()
    {
        using var m = new MachineFixture(flags: ControlFlags.LinuxDefault | ControlFlags.ProtectionKeys);
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User | (3UL << PageTableEntry.ProtectionKeyShift));
        m.Mmu.Pkru = 0b10 << 6; // key 3: write-disable
        Assert.Equal(FrameA, m.Translate(Va));
        var fault = m.Fault(Va, AccessKind.Write);
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User | PageFaultErrorCode.ProtectionKey, fault.ErrorCode);
        m.Mmu.Pkru = 0b01 << 6; // key 3: access-disable
        Assert.True(m.Fault(Va, AccessKind.Read).ErrorCode.HasFlag(PageFaultErrorCode.ProtectionKey));
        Assert.Equal(FrameA, m.Translate(Va, AccessKind.Fetch)); // keys do not govern fetches
    }

    [Fact]
    public void ProtectionKeyFlag_IsReportedAlongsideOtherViolations()
    {
        // SDM 4.7: PK = 1 whenever the key forbids a data access to a user-mode address, even if SMAP or R/W forbid it too.
        using var m = new MachineFixture(flags: ControlFlags.LinuxDefault | ControlFlags.ProtectionKeys);
        m.Tables.Map(Va, FrameA, PageSize.Size4K, UserReadOnly | (2UL << PageTableEntry.ProtectionKeyShift));
        m.Mmu.Pkru = 0b11 << 4; // key 2: access-disable and write-disable
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User | PageFaultErrorCode.ProtectionKey,
            m.Fault(Va, AccessKind.Write).ErrorCode);
        m.Mmu.UserMode = false; // SMAP forbids this read as well
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.ProtectionKey, m.Fault(Va, AccessKind.Read).ErrorCode);
    }

    [Fact]
    public void AccessedAndDirtyBits_SetOnSuccess_LeftAloneOnFault()
    {
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, UserReadOnly);
        ulong pde = m.Tables.EntryAddress(Va, PagingLevel.PageDirectory);
        m.Fault(Va, AccessKind.Write);
        Assert.False(m.Tables.Read(pte).IsAccessed);
        Assert.False(m.Tables.Read(pde).IsAccessed);
        m.Translate(Va);
        Assert.True(m.Tables.Read(pte).IsAccessed);
        Assert.True(m.Tables.Read(pde).IsAccessed);
        Assert.False(m.Tables.Read(pte).IsDirty);
    }

    [Fact]
    public void PageFaultDelivery_InvalidatesTheFaultingAddress_SoAFixedPteNeedsNoInvlpg()
    {
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, UserReadOnly);
        m.Translate(Va);
        m.Fault(Va, AccessKind.Write);                                 // protection fault on a TLB hit
        m.Tables.Write(pte, new PageTableEntry(FrameB | User));         // the handler's COW fix, no INVLPG
        Assert.Equal(FrameB, m.Translate(Va, AccessKind.Write));
    }

    [Fact]
    public void OneGigabytePage_TranslatesAndFracturesIntoLevelsWithout1G()
    {
        using var m = new MachineFixture(TlbConfig.Tiny);
        const ulong gig = 0x0000_0040_0000_0000;
        m.Tables.Map(gig, 0, PageSize.Size1G, User);
        Assert.Equal(0x0123_4567UL, m.Translate(gig + 0x0123_4567));
        // Tiny's L1d holds 4K/2M only: the 1G page was cached there as the 2M piece containing the access.
        Assert.Equal(1, m.Mmu.Counters.Levels[1].FillsBySize[(int)PageSize.Size2M]);
        Assert.Equal(1, m.Mmu.Counters.Levels[2].FillsBySize[(int)PageSize.Size1G]);
    }

    [Fact]
    public void Invlpg_DropsEveryFracturedPieceOfALargePage()
    {
        // SDM 4.10.2.3: a large page may be cached as several smaller-page entries; INVLPG of any address in the page
        // must drop all of them, as it would drop the single entry for the page.
        using var m = new MachineFixture(TlbConfig.Tiny); // Tiny's L1d holds a 1G page as 2M pieces
        const ulong gig = 0x0000_0040_0000_0000;
        ulong pdpte = m.Tables.Map(gig, 0, PageSize.Size1G, User);
        Assert.Equal(0x0020_0000UL, m.Translate(gig + 0x0020_0000));
        m.Tables.Write(pdpte, new PageTableEntry(0x4000_0000 | User | PageTableEntry.PageSizeBit));

        m.Mmu.Invlpg(gig + 0x0060_0000); // another 2M piece of the same 1G page
        Assert.Equal(0x4020_0000UL, m.Translate(gig + 0x0020_0000));
    }

    [Fact]
    public void PcidEnable_RequiresCr3PcidZero()
    {
        using var m = new MachineFixture(flags: ControlFlags.LinuxDefault & ~ControlFlags.PcidEnable);
        m.Mmu.WriteCr3(m.Tables.Root | 3);
        Assert.False(m.Mmu.SetFlags(m.Mmu.Flags | ControlFlags.PcidEnable));
        m.Mmu.WriteCr3(m.Tables.Root);
        Assert.True(m.Mmu.SetFlags(m.Mmu.Flags | ControlFlags.PcidEnable));
    }

    [Fact]
    public void ClearingPcide_FlushesGlobalEntriesOfEveryPcid()
    {
        // SDM 4.10.4.1: MOV to CR4 that clears PCIDE invalidates all TLB entries, globals included, of all PCIDs.
        using var m = new MachineFixture();
        m.Mmu.WriteCr3(m.Tables.Root | 5);
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User | PageTableEntry.GlobalBit);
        Assert.Equal(FrameA, m.Translate(Va));
        m.Tables.Write(pte, new PageTableEntry(FrameB | User | PageTableEntry.GlobalBit));
        m.Mmu.WriteCr3(m.Tables.Root | 6);
        Assert.Equal(FrameA, m.Translate(Va)); // a global entry survives the CR3 write and serves PCID 6 too

        Assert.True(m.Mmu.SetFlags(m.Mmu.Flags & ~ControlFlags.PcidEnable));
        Assert.Equal(FrameB, m.Translate(Va));
    }

    [Fact]
    public void GlobalBitOfANonLeafEntry_DoesNotMakeTheTranslationGlobal()
    {
        // SDM 4.10.2.2: a TLB entry is global only when the G flag of the entry that maps the page is 1.
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        ulong pde = m.Tables.EntryAddress(Va, PagingLevel.PageDirectory);
        m.Tables.Write(pde, m.Tables.Read(pde).With(PageTableEntry.GlobalBit));
        Assert.Equal(FrameA, m.Translate(Va));
        m.Tables.Write(pte, new PageTableEntry(FrameB | User));

        m.Mmu.WriteCr3(m.Tables.Root);
        Assert.Equal(FrameB, m.Translate(Va));
    }

    [Fact]
    public void InvpcidIndividualAddress_ForAnotherPcid_LeavesTheCurrentPcidsEntry()
    {
        using var m = new MachineFixture();
        m.Mmu.WriteCr3(m.Tables.Root | 1);
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        Assert.Equal(FrameA, m.Translate(Va));                  // cached for PCID 1
        m.Mmu.WriteCr3(m.Tables.Root | 2 | (1UL << 63));
        Assert.Equal(FrameA, m.Translate(Va));                  // and for PCID 2
        m.Tables.Write(pte, new PageTableEntry(FrameB | User));

        m.Mmu.Invpcid(InvpcidType.IndividualAddress, 1, Va);
        Assert.Equal(FrameA, m.Translate(Va));                  // PCID 2's entry stays
        m.Mmu.WriteCr3(m.Tables.Root | 1 | (1UL << 63));
        Assert.Equal(FrameB, m.Translate(Va));                  // PCID 1's went
    }

    [Fact]
    public void La57_CannotChangeWhilePagingIsOn()
    {
        using var four = new MachineFixture();
        Assert.False(four.Mmu.SetFlags(four.Mmu.Flags | ControlFlags.La57));
        Assert.Equal(ControlFlags.LinuxDefault, four.Mmu.Flags);
        using var five = new MachineFixture(fiveLevel: true);
        Assert.False(five.Mmu.SetFlags(five.Mmu.Flags & ~ControlFlags.La57));
        Assert.True(five.Mmu.Flags.HasFlag(ControlFlags.La57));
    }

    [Fact]
    public void ClearingPge_FlushesGlobalEntries()
    {
        using var m = new MachineFixture();
        ulong pte = m.Tables.Map(Va, FrameA, PageSize.Size4K, User | PageTableEntry.GlobalBit);
        m.Translate(Va);
        m.Tables.Write(pte, new PageTableEntry(FrameB | User));
        m.Mmu.WriteCr3(m.Tables.Root);
        Assert.Equal(FrameA, m.Translate(Va));
        m.Mmu.SetFlags(m.Mmu.Flags & ~ControlFlags.PageGlobalEnable);
        Assert.Equal(FrameB, m.Translate(Va));
    }

    [Theory]
    [InlineData(InvpcidType.IndividualAddress, false, true)]
    [InlineData(InvpcidType.SingleContext, false, true)]
    [InlineData(InvpcidType.AllContextsExceptGlobal, false, true)]
    [InlineData(InvpcidType.AllContextsIncludingGlobal, true, true)]
    public void Invpcid_DropsWhatItsTypeSays(InvpcidType type, bool dropsGlobal, bool dropsOwn)
    {
        using var m = new MachineFixture();
        m.Mmu.WriteCr3(m.Tables.Root | 7);
        ulong own = m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        ulong global = m.Tables.Map(Va + 0x1000, FrameA + 0x1000, PageSize.Size4K, User | PageTableEntry.GlobalBit);
        m.Translate(Va);
        m.Translate(Va + 0x1000);
        m.Tables.Write(own, new PageTableEntry(FrameB | User));
        m.Tables.Write(global, new PageTableEntry(FrameB + 0x1000 | User | PageTableEntry.GlobalBit));

        m.Mmu.Invpcid(type, 7, Va);
        Assert.Equal(dropsOwn ? FrameB : FrameA, m.Translate(Va));
        m.Mmu.Invpcid(type, 7, Va + 0x1000);
        Assert.Equal(dropsGlobal ? FrameB + 0x1000 : FrameA + 0x1000, m.Translate(Va + 0x1000));
    }

    [Fact]
    public void AccessBeyondPhysicalMemory_IsMachineCheck_NotHostException()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, 1UL << 40, PageSize.Size4K, User);
        Assert.Equal(TranslationFaultKind.MachineCheck, m.Mmu.Read(Va, 8, out _).Kind);
    }

    [Fact]
    public void ReadAndWrite_CrossingAPage_CheckBothPagesBeforeWriting()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        m.Tables.Map(Va + 0x1000, FrameB, PageSize.Size4K, UserReadOnly);
        var fault = m.Mmu.Write(Va + 0xffc, 8, 0x1122334455667788);
        Assert.Equal(Va + 0x1000, fault.LinearAddress);
        m.Memory.TryRead(FrameA + 0xffc, 4, out ulong untouched);
        Assert.Equal(0UL, untouched);

        m.Tables.Write(m.Tables.EntryAddress(Va + 0x1000, PagingLevel.PageTable), new PageTableEntry(FrameB | User));
        Assert.False(m.Mmu.Write(Va + 0xffc, 8, 0x1122334455667788).IsFault);
        Assert.False(m.Mmu.Read(Va + 0xffc, 8, out ulong value).IsFault);
        Assert.Equal(0x1122334455667788UL, value);
    }

    [Fact]
    public void RepeatedAccessesToOnePage_CountEveryLookupAsAFirstLevelHit()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        for (int i = 0; i < 10; i++) Assert.False(m.Mmu.Read(Va + (ulong)i * 8, 8, out _).IsFault);
        var l1d = m.Mmu.Counters.Levels[1];
        Assert.Equal(10, l1d.Lookups);
        Assert.Equal(9, l1d.Hits);
        Assert.Equal(1, m.Mmu.Counters.Walks);
    }

    [Fact]
    public void RememberedFirstLevelHit_StillTouchesTheEntryForReplacement()
    {
        // Tiny's L1d: 2 sets x 2 ways, LRU. A, B and C share a set.
        using var m = new MachineFixture();
        const ulong a = Va, b = Va + 0x2000, c = Va + 0x4000;
        foreach (ulong page in new[] { a, b, c }) m.Tables.Map(page, FrameA, PageSize.Size4K, User);
        m.Translate(a);
        m.Translate(b, AccessKind.Write);
        m.Translate(a);                    // searched hit
        m.Translate(b, AccessKind.Write);  // searched hit: B is the most recently used
        m.Translate(a);                    // the same page again: A must become the most recently used
        m.Translate(c);                    // fills the set: evicts the least recently used, B
        long l1Hits = m.Mmu.Counters.Levels[1].Hits;
        m.Translate(a);
        Assert.Equal(l1Hits + 1, m.Mmu.Counters.Levels[1].Hits);
    }

    [Fact]
    public void WriteToMarkedCodeFrame_NotifiesOnce()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        var written = new List<ulong>();
        m.Mmu.CodeFrameWritten = written.Add;
        m.Mmu.MarkCodeFrame(FrameA >> 12);
        m.Mmu.Write(Va, 1, 0x90);
        m.Mmu.Write(Va + 1, 1, 0x90);
        Assert.Equal([FrameA >> 12], written);
    }

    sealed class WalkRecorder : IPagingObserver
    {
        public List<WalkRecord> Walks { get; } = [];
        public void OnTlbLookup(int level, ulong linear, AccessKind kind, bool hit, PageSize size) { }
        public void OnWalk(in WalkRecord walk) => Walks.Add(walk);
        public void OnInvalidation(InvalidationKind kind, ulong linear, ushort pcid) { }
    }

    [Fact]
    public void ObservedWalk_ReportsPcidLevelsEntriesAndResult()
    {
        using var m = new MachineFixture();
        m.Tables.Map(Va, FrameA, PageSize.Size4K, User);
        var recorder = new WalkRecorder();
        m.Mmu.Observer = recorder;
        m.Mmu.WriteCr3(m.Tables.Root | 5);
        m.Translate(Va + 0x18);
        var walk = Assert.Single(recorder.Walks);
        Assert.Equal((ushort)5, walk.Pcid);
        Assert.Equal(AccessKind.Read, walk.Kind);
        Assert.False(walk.Fault.IsFault);
        Assert.Equal(PagingLevel.Pml4, walk.StartLevel);
        Assert.Equal(4, walk.StepCount);
        Assert.Equal(PagingLevel.PageTable, walk.Steps[3].Level);
        Assert.Equal(FrameA, walk.Steps[3].Entry.Address);
        Assert.Equal(PageSize.Size4K, walk.Size);
        Assert.Equal(FrameA + 0x18, walk.Physical);
    }
}
