using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Thp;

/// <summary>Fault-time THP under the `defrag` modes: who may stall in reclaim/compaction, who falls back to 4 KiB.</summary>
public class FaultDefragTests
{
    const ulong Base = 0x4000_0000;
    const ulong Huge = PagingConstants.LargePageSize;

    static TestMachine FragmentedMachine(ThpDefrag defrag)
    {
        var m = new TestMachine(128UL << 20);
        m.Memory.PageCache.Fragment(new PageLab.Kernel.Mm.Physical.FragmentationOptions { Seed = 3 });
        m.Memory.Thp.Settings.Defrag = defrag;
        m.Space.Map(Base, Base + Huge, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        Assert.Null(Madvise.Apply(m.Space, Base, Huge, MadviseAdvice.HugePage, KernelAbi.Proposal).Error);
        return m;
    }

    [Theory]
    [InlineData(ThpDefrag.Always, true)]
    [InlineData(ThpDefrag.Madvise, true)]
    [InlineData(ThpDefrag.DeferMadvise, true)]
    [InlineData(ThpDefrag.Defer, false)]
    [InlineData(ThpDefrag.Never, false)]
    public void HugeFaultOnAFragmentedMachine_StallsOnlyWhereDefragAllows(ThpDefrag defrag, bool getsHugePage)
    {
        using var m = FragmentedMachine(defrag);
        Assert.True(m.GuestWrite64(Base + 8, 42));
        Assert.Equal(getsHugePage ? 1 : 0, m.Space.HugeMappings);
        Assert.Equal(getsHugePage ? 1 : 0, m.Memory.Thp.Counters.FaultAlloc);
        Assert.Equal(getsHugePage ? 0 : 1, m.Memory.Thp.Counters.FaultFallback);
        Assert.Equal(getsHugePage, m.Space.LastHugeFaultNanoseconds > CollapseCosts.AllocateFromFreeLists + 512 * CollapseCosts.ZeroPerPage);
        Assert.Equal(42UL, m.GuestRead64(Base + 8));
    }
}
