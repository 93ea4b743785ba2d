using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using Xunit.Abstractions;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>
/// A guest-like workload through the MMU on a squeezed machine (small, fragmented, a memcg limit
/// below the working set, swap): compaction, reclaim, swap-out and swap-in run many times under it,
/// yet every byte it wrote reads back, and frame, memcg and swap accounting balance. The shared variant
/// runs it over MAP_SHARED|MAP_ANONYMOUS memory, mapped by a forked child too after a while: the shmem
/// object's pages are swapped into the object and back, migrated under both mappings, kept by DONTNEED.
/// </summary>
public class GuestMemoryStressTests(ITestOutputHelper output)
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;
    const ulong Huge = PagingConstants.LargePageSize;
    const ulong RegionPages = 6144; // 24 MiB: twice the memcg limit
    const int WordsPerPage = 4;

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, false)]
    [InlineData(4, true)]
    [InlineData(5, true)]
    public void SqueezedMachine_KeepsEveryByte_AndBalancesItsFrames(int seed, bool shared)
    {
        using var m = new TestMachine(24UL << 20);
        m.Allocator.Swap = new SwapDevice(0, 32UL << 20);
        ulong foreignSlots = FragmentSwap(m.Allocator.Swap, wholeClustersLeft: 1);
        m.Memory.PageCache.Fragment(new FragmentationOptions { Seed = seed });
        m.Memory.Memcg = m.Allocator.CreateCgroup("guest", 3072);
        ulong freeBefore = m.Allocator.FreeFrames;
        int foreignCache = m.Memory.PageCache.Pages; // other programs' clean page cache, which reclaim may drop
        var space = new AddressSpace(m.Memory) { CostSink = new CostLedger() };
        m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);
        var user = new UserMemory(space);
        space.Map(Base, Base + RegionPages * Page, Protection.Read | Protection.Write, shared ? VmaFlags.Shared : VmaFlags.None, null, 0);
        // The first half takes THPs at fault time (MADV_HUGEPAGE under the default `madvise` setting), so
        // reclaim meets whole THPs: swapped into a free swap cluster, or split when none is left.
        // (Shared memory takes none: shmem_enabled is `never`.)
        Assert.True(space.UpdateVmaFlags(Base, Base + RegionPages / 2 * Page, flags => flags | VmaFlags.HugePage));
        AddressSpace? child = null;

        // What the guest wrote: word slot -> value (absent: never written or discarded, reads 0).
        var shadow = new Dictionary<ulong, ulong>();
        var random = new Random(seed);
        for (int round = 0; round < 40_000; round++)
        {
            ulong address = Base + (ulong)random.NextInt64((long)RegionPages) * Page + (ulong)random.Next(WordsPerPage) * 1024;
            ulong value = (ulong)random.NextInt64() | 1;
            Assert.True(user.TryWriteUInt64(address, value), $"write at 0x{address:x} failed in round {round}");
            shadow[address] = value;
            if (round % 499 == 0)
                Disturb(m, space, shadow, random, shared);
            if (shared && round == 10_000)
            {
                child = space.Fork()!;
                m.Memory.Guest.SwitchAddressSpace(child.Tables.Cr3);
                AssertReadsBack(new UserMemory(child), shadow); // the child maps every page: shmem pages now have two mappers
                m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);
            }
        }

        AssertReadsBack(user, shadow);
        if (child is not null)
        {
            m.Memory.Guest.SwitchAddressSpace(child.Tables.Cr3);
            AssertReadsBack(new UserMemory(child), shadow);
            child.Destroy();
            m.Memory.Guest.SwitchAddressSpace(space.Tables.Cr3);
        }
        var counters = m.Allocator.Counters;
        string figures = $"pswpout {counters.SwapOut}, pswpin {counters.SwapIn}, migrated {counters.PageMigrateSuccess}, compactions {counters.CompactStall}, "
            + $"thp_fault_alloc {m.Memory.Thp.Counters.FaultAlloc}, thp_swpout {counters.ThpSwapOut}, thp_swpout_fallback {counters.ThpSwapOutFallback}, "
            + $"thp_collapse_alloc {m.Memory.Thp.Counters.CollapseAlloc}, pgactivate {counters.PageActivate}, pgdeactivate {counters.PageDeactivate}, pgscan {counters.PageScanDirect}, pgsteal {counters.PageStealDirect}";
        Assert.True(counters.SwapOut > 1000 && counters.SwapIn > 1000 && counters.PageMigrateSuccess > 5 && counters.CompactStall > 10, figures);
        Assert.True((shared || (counters.ThpSwapOut > 0 && counters.ThpSwapOutFallback > 0)) && counters.PageActivate > 0 && counters.PageDeactivate > 0, figures);
        Assert.True(!shared || m.Memory.Thp.Counters.CollapseAlloc > 0, figures); // huge shmem folios were built, then split by reclaim
        output.WriteLine(figures);
        AssertFramesBalance(m.Allocator);
        Assert.True(m.Memory.Memcg.UsagePages <= m.Memory.Memcg.LimitPages);

        m.Memory.Guest.SwitchAddressSpace(m.Space.Tables.Cr3);
        space.Destroy();
        Assert.Equal(freeBefore + (ulong)(foreignCache - m.Memory.PageCache.Pages), m.Allocator.FreeFrames);
        Assert.Equal(foreignSlots, m.Allocator.Swap.UsedSlots);
        Assert.Equal(0UL, m.Memory.Memcg.UsagePages);
        AssertFramesBalance(m.Allocator);
    }

    /// <summary>
    /// Swap as a long-running system leaves it: one slot of most clusters holds some other process's page,
    /// so only <paramref name="wholeClustersLeft"/> clusters can take a THP whole and later THPs are split.
    /// Returns the slots left in use.
    /// </summary>
    static ulong FragmentSwap(SwapDevice swap, int wholeClustersLeft)
    {
        var page = new byte[Page];
        var slots = new List<ulong>();
        while (swap.TryStore(page, out ulong slot))
            slots.Add(slot);
        foreach (ulong slot in slots)
        {
            ulong cluster = slot / SwapDevice.ClusterSlots;
            if (cluster <= (ulong)wholeClustersLeft || slot % SwapDevice.ClusterSlots != 1)
                swap.Release(slot);
        }
        Assert.Equal(wholeClustersLeft, swap.FreeClusters);
        return swap.UsedSlots;
    }

    static void AssertReadsBack(UserMemory user, Dictionary<ulong, ulong> shadow)
    {
        foreach (var (address, value) in shadow)
        {
            Assert.True(user.TryReadUInt64(address, out ulong read));
            Assert.Equal(value, read);
        }
    }

    /// <summary>
    /// What else happens to the guest's memory meanwhile: collapses (which compact), page-outs, discards,
    /// compaction. In shared memory a collapse builds a huge folio in the shmem object, which reclaim
    /// splits to swap it; DONTNEED keeps its data.
    /// </summary>
    static void Disturb(TestMachine m, AddressSpace space, Dictionary<ulong, ulong> shadow, Random random, bool shared)
    {
        ulong region = Base + (ulong)random.NextInt64((long)(RegionPages * Page / Huge)) * Huge;
        switch (random.Next(4))
        {
            case 0:
                // A collapse needs a free 2 MiB block on a fragmented machine: it compacts. The THP stays for
                // reclaim to swap (whole or split) when the memcg is full.
                Madvise.Apply(space, region, Huge, MadviseAdvice.Collapse, KernelAbi.Proposal);
                break;
            case 1:
                Madvise.Apply(space, region, Huge / 4, MadviseAdvice.PageOut, KernelAbi.Proposal);
                break;
            case 2:
                ulong start = region + (ulong)random.Next(500) * Page;
                Assert.Null(Madvise.Apply(space, start, 8 * Page, MadviseAdvice.DontNeed, KernelAbi.Proposal).Error);
                if (shared)
                    break;
                foreach (ulong key in shadow.Keys.Where(a => a >= start && a < start + 8 * Page).ToList())
                    shadow.Remove(key);
                break;
            default:
                m.Allocator.Compact(0, BuddyAllocator.PageblockOrder, null);
                break;
        }
    }

    /// <summary>Every frame is free, allocated (a block head or tail) or the reserved frame 0: free + allocated == total.</summary>
    static void AssertFramesBalance(BuddyAllocator allocator)
    {
        ulong allocated = 0, reserved = 0;
        for (ulong frame = 0; frame < allocator.FrameCount; frame++)
        {
            var state = allocator[frame].State;
            if (state is PageState.Head or PageState.Tail) allocated++;
            else if (state == PageState.Reserved) reserved++;
            else Assert.True(state is PageState.FreeHead or PageState.FreeTail, $"frame 0x{frame:x} is {state} outside compaction");
        }
        Assert.Equal(allocator.FrameCount, allocator.FreeFrames + allocated + reserved);
    }
}
