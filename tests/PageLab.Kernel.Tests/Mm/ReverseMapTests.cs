using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>The address space as the owner compaction and reclaim call back: migration, swap-out, swap-in.</summary>
public class ReverseMapTests
{
    const ulong Base = 0x4000_0000; // 2 MiB aligned
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;
    const Protection ReadWrite = Protection.Read | Protection.Write;

    static ulong Pattern(ulong address, ulong round) => address * 0x9E37_79B9_7F4A_7C15UL ^ round;

    static void Fill(TestMachine m, ulong start, ulong end, ulong round = 0)
    {
        for (ulong a = start; a < end; a += Page)
        {
            Assert.True(m.GuestWrite64(a, Pattern(a, round)));
            Assert.True(m.GuestWrite64(a + Page - 8, ~Pattern(a, round)));
        }
    }

    static void AssertFilled(TestMachine m, ulong start, ulong end, ulong round = 0)
    {
        for (ulong a = start; a < end; a += Page)
        {
            Assert.Equal(Pattern(a, round), m.GuestRead64(a));
            Assert.Equal(~Pattern(a, round), m.GuestRead64(a + Page - 8));
        }
    }

    static TestMachine WithSwap(ulong memory = 64UL << 20)
    {
        var m = new TestMachine(memory);
        m.Allocator.Swap = new SwapDevice(0, 16UL << 20);
        return m;
    }

    [Fact]
    public void Compaction_MigratesGuestPages_RewritesPtesAndInvalidatesTheTlb_DataIntact()
    {
        using var m = new TestMachine(32UL << 20);
        m.Memory.PageCache.Fragment(new FragmentationOptions { Seed = 7, UnmovablePageblockShare = 0 });
        m.Space.Map(Base, Base + 4 * Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 4 * Huge);
        var framesBefore = new Dictionary<ulong, ulong>();
        for (ulong a = Base; a < Base + 4 * Huge; a += Page)
            framesBefore[a] = m.Space.Tables.ReadPte(a).FrameNumber;

        var cost = new CostLedger();
        Assert.True(m.Allocator.Compact(0, BuddyAllocator.PageblockOrder, cost));

        int moved = framesBefore.Count(p => m.Space.Tables.ReadPte(p.Key).FrameNumber != p.Value);
        Assert.True(moved > 0, "compaction moved none of the guest's pages");
        Assert.True(cost[MmCostKind.CompactionMigrate] > 0);
        AssertFilled(m, Base, Base + 4 * Huge);
        // Writes after the move must land in the frame the PTE names: a stale TLB entry would send them to the freed frame.
        Fill(m, Base, Base + 4 * Huge, round: 1);
        for (ulong a = Base; a < Base + 4 * Huge; a += Page)
        {
            var pte = m.Space.Tables.ReadPte(a);
            Assert.Equal(Pattern(a, 1), BitConverter.ToUInt64(m.Memory.FrameSpan(pte.FrameNumber)));
            Assert.Equal(1, m.Memory.Page(pte.FrameNumber).MapCount);
            Assert.Equal(m.Space.OwnerId, m.Memory.Page(pte.FrameNumber).Owner);
        }
    }

    [Fact]
    public void Reclaim_SwapsAnonymousPagesOut_AsSwapPtes_AndFaultsSwapThemBackIn_ChargingSwapIn()
    {
        using var m = WithSwap();
        var cost = new CostLedger();
        m.Space.CostSink = cost;
        m.Space.Map(Base, Base + 256 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 256 * Page);
        long resident = m.Space.ResidentPages;

        Assert.Equal(100UL, m.ReclaimPages(100));

        Assert.Equal(100, m.Space.SwappedPages);
        Assert.Equal(resident - 100, m.Space.ResidentPages);
        Assert.Equal(100UL, m.Allocator.Swap!.UsedSlots);
        // The oldest pages (faulted first) went first; their PTEs hold Linux's swap entries.
        var pte = m.Space.Tables.ReadPte(Base);
        Assert.True(SwapPte.IsSwapEntry(pte.Raw));
        Assert.Equal(1, m.Allocator.Swap.UseCount(new SwapPte(pte.Raw).Offset));
        Assert.Equal(100 * 4UL << 10, m.Space.Usage(m.Space.Vmas[0]).Swap);

        AssertFilled(m, Base, Base + 256 * Page);

        Assert.Equal(0, m.Space.SwappedPages);
        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
        Assert.Equal(100UL, m.Allocator.Counters.SwapIn);
        Assert.Equal(100 * MmCosts.SwapInPerPageNs, cost[MmCostKind.SwapIn]);
        Assert.Equal(resident, m.Space.ResidentPages);
    }

    [Fact]
    public void SwappedInAfterARead_IsWritableWithoutAnotherFault()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Page);
        Assert.Equal(1UL, m.ReclaimPages(1));
        Assert.Equal(FaultOutcome.SwappedIn, m.Space.HandleFault(Base, AccessKind.Read, present: false));
        var pte = m.Space.Tables.ReadPte(Base);
        Assert.True(pte.IsPresent && pte.IsWritable && !pte.IsDirty);
    }

    [Fact]
    public void UnmapOfSwappedPages_FreesTheirSwapSlots()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + 64 * Page, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + 64 * Page);
        ulong freeBefore = m.Allocator.FreeFrames;
        Assert.Equal(64UL, m.ReclaimPages(64));
        Assert.Equal(64UL, m.Allocator.Swap!.UsedSlots);

        m.Space.Unmap(Base, Base + 64 * Page);

        Assert.Equal(0UL, m.Allocator.Swap.UsedSlots);
        Assert.Equal(0, m.Space.SwappedPages);
        Assert.Equal(freeBefore + 64, m.Allocator.FreeFrames);
    }

    [Fact]
    public void Reclaim_DropsMappedPageCache_ClearingThePtes_AndTheNextReadRefetchesTheFile()
    {
        using var m = new TestMachine();
        var content = new byte[8 * Page];
        for (int i = 0; i < content.Length; i += 8) BitConverter.TryWriteBytes(content.AsSpan(i), (ulong)i * 31);
        m.Space.Map(Base, Base + 8 * Page, Protection.Read, VmaFlags.None, new InMemoryFile("/f", content), 0);
        for (ulong i = 0; i < 8; i++) Assert.Equal(i * Page * 31, m.GuestRead64(Base + i * Page));
        Assert.Equal(8, m.Memory.PageCache.Pages);

        Assert.Equal(8UL, m.ReclaimPages(8));

        Assert.Equal(0, m.Memory.PageCache.Pages);
        Assert.Equal(0UL, m.Space.Tables.ReadPte(Base).Raw);
        Assert.Equal(0, m.Space.ResidentPages);
        for (ulong i = 0; i < 8; i++) Assert.Equal(i * Page * 31 + 8 * 31, m.GuestRead64(Base + i * Page + 8));
        Assert.Equal(8, m.Memory.PageCache.Pages);
    }

    [Fact]
    public void Collapse_SwapsInSwappedPtes_DataIntact_AndSmapsSwapIsZeroAfter()
    {
        using var m = WithSwap();
        m.Space.Map(Base, Base + Huge, ReadWrite, VmaFlags.None, null, 0);
        Fill(m, Base, Base + Huge);
        Assert.Equal(100UL, m.ReclaimPages(100));
        Assert.Equal(100UL << 12, m.Space.Usage(m.Space.Vmas[0]).Swap);

        var result = Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal);

        Assert.Null(result.Error);
        Assert.Equal(1, m.Space.HugeMappings);
        var usage = m.Space.Usage(m.Space.Vmas[0]);
        Assert.Equal(0UL, usage.Swap);
        Assert.Equal(Huge, usage.AnonHugePages);
        Assert.Equal(0UL, m.Allocator.Swap!.UsedSlots);
        AssertFilled(m, Base, Base + Huge);
    }

    [Fact]
    public void Destroy_ReturnsEveryFrameAndSwapSlot()
    {
        using var m = WithSwap();
        ulong freeAtStart = m.Allocator.FreeFrames;
        var space = new AddressSpace(m.Memory);
        m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);
        var user = new UserMemory(space);
        space.Map(Base, Base + 32 * Page, ReadWrite, VmaFlags.None, null, 0);
        for (ulong a = Base; a < Base + 32 * Page; a += Page) Assert.True(user.TryWriteUInt64(a, a));
        Assert.Equal(16UL, m.ReclaimPages(16));

        m.Memory.Guest.SwitchAddressSpace(m.Space.Tables.Cr3);
        space.Destroy();

        Assert.Equal(freeAtStart, m.Allocator.FreeFrames);
        Assert.Equal(0UL, m.Allocator.Swap!.UsedSlots);
        Assert.DoesNotContain(space, m.Memory.AddressSpaces);
    }
}
