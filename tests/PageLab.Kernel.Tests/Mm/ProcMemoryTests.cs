using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm;

/// <summary>/proc/meminfo and /proc/self/status report what the model holds, in Linux's layout.</summary>
public class ProcMemoryTests
{
    const ulong Base = 0x4000_0000;
    const ulong Page = PagingConstants.PageSize;

    static string Line(string text, string name) => text.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal));

    [Fact]
    public void StatusAndMeminfo_CountResidentAndSwappedPages()
    {
        using var m = new TestMachine();
        m.Allocator.Swap = new SwapDevice(0, 4UL << 20);
        m.Space.Map(Base, Base + 100 * Page, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong i = 0; i < 100; i++) Assert.True(m.GuestWrite64(Base + i * Page, i));
        Assert.Equal(30UL, m.ReclaimPages(30));

        string status = ProcMemory.Status(m.Space, "prog", 4242, 4241);
        Assert.Equal("VmSize:\t     400 kB", Line(status, "VmSize"));
        Assert.Equal("VmRSS:\t     280 kB", Line(status, "VmRSS"));
        Assert.Equal("RssAnon:\t     280 kB", Line(status, "RssAnon"));
        Assert.Equal("VmSwap:\t     120 kB", Line(status, "VmSwap"));

        string meminfo = ProcMemory.MemInfo(m.Memory);
        Assert.Equal("MemTotal:          65532 kB", Line(meminfo, "MemTotal"));
        Assert.Equal($"MemFree:        {m.Allocator.FreeFrames * 4,8} kB", Line(meminfo, "MemFree"));
        Assert.Equal("AnonPages:           280 kB", Line(meminfo, "AnonPages"));
        Assert.Equal("SwapTotal:          4092 kB", Line(meminfo, "SwapTotal"));
        Assert.Equal("SwapFree:           3972 kB", Line(meminfo, "SwapFree"));
        Assert.Equal("HugePages_Total:       0", Line(meminfo, "HugePages_Total"));
    }
}
