using System.Globalization;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Syscalls;
using static PageLab.Kernel.Tests.Syscalls.ProcessFixture;

namespace PageLab.Kernel.Tests.Syscalls;

/// <summary>What a guest reads in /proc/meminfo and /proc/vmstat about the LRU lists and reclaim, through open and read.</summary>
public class ProcLruViewTests
{
    const ulong Page = 4096;

    static string ReadProcFile(ProcessFixture p, string path)
    {
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(path), 0);
        Assert.True(fd >= 3, $"open {path}: {fd}");
        long n = p.Call(SyscallNumber.Read, (ulong)fd, Scratch + 8192, 16384);
        Assert.True(n > 0);
        Assert.Equal(0, p.Call(SyscallNumber.Close, (ulong)fd));
        return p.ReadText(Scratch + 8192, (int)n);
    }

    static ulong MeminfoKb(string meminfo, string name)
    {
        string line = meminfo.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        return ulong.Parse(line[(name.Length + 1)..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture);
    }

    static ulong Vmstat(string vmstat, string name)
    {
        string line = vmstat.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return ulong.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
    }

    [Fact]
    public void MeminfoAndVmstat_ShowTheActiveAndInactiveLists_AndTheReclaimEvents()
    {
        using var dir = new TempDirectory();
        string file = Path.Join(dir.Path, "code");
        File.WriteAllBytes(file, new byte[2 * Page]);
        using var p = new ProcessFixture([dir.Path]);
        var allocator = p.Machine.Allocator;
        allocator.Swap = new SwapDevice(0, 8UL << 20);
        // Executable page cache, read by the guest: activated on its first young look.
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(file), 0);
        long code = p.Call(SyscallNumber.Mmap, 0, 2 * Page, 1 | 4, 2, (ulong)fd, 0); // PROT_READ|PROT_EXEC, MAP_PRIVATE
        Assert.True(code > 0);
        Assert.Equal(0, p.ReadBytes((ulong)code, 1)[0]);
        // Anonymous memory written, then made cold: old PTEs at the old end of the inactive list.
        long data = p.Call(SyscallNumber.Mmap, 0, 64 * Page, 3, 0x22, unchecked((ulong)-1), 0);
        for (ulong i = 0; i < 64; i++)
            Assert.True(p.Process.User.TryWriteUInt64((ulong)data + i * Page, i + 1));
        Assert.Equal(0, p.Call(SyscallNumber.Madvise, (ulong)data, 64 * Page, 20)); // MADV_COLD

        // Enough wanted that the last pass (priority 0) reaches the one-page file list too.
        Assert.True(allocator.Reclaim(null, 64, null, null) >= 64);

        // A first read faults the path and buffer pages in (changing the lists); the second one is a stable snapshot.
        ReadProcFile(p, "/proc/meminfo");
        ReadProcFile(p, "/proc/vmstat");
        string meminfo = ReadProcFile(p, "/proc/meminfo");
        string vmstat = ReadProcFile(p, "/proc/vmstat");
        ulong activeAnon = allocator.LruPages(LruList.ActiveAnon), inactiveAnon = allocator.LruPages(LruList.InactiveAnon);
        ulong activeFile = allocator.LruPages(LruList.ActiveFile), inactiveFile = allocator.LruPages(LruList.InactiveFile);
        Assert.Equal(1UL, activeFile);
        Assert.True(inactiveAnon > 0); // the process's other pages: young, kept with PG_referenced
        Assert.Equal(activeAnon * 4, MeminfoKb(meminfo, "Active(anon)"));
        Assert.Equal(inactiveAnon * 4, MeminfoKb(meminfo, "Inactive(anon)"));
        Assert.Equal(activeFile * 4, MeminfoKb(meminfo, "Active(file)"));
        Assert.Equal(inactiveFile * 4, MeminfoKb(meminfo, "Inactive(file)"));
        Assert.Equal((activeAnon + activeFile) * 4, MeminfoKb(meminfo, "Active"));
        Assert.Equal((inactiveAnon + inactiveFile) * 4, MeminfoKb(meminfo, "Inactive"));
        Assert.Equal(inactiveAnon, Vmstat(vmstat, "nr_inactive_anon"));
        Assert.Equal(activeAnon, Vmstat(vmstat, "nr_active_anon"));
        Assert.Equal(inactiveFile, Vmstat(vmstat, "nr_inactive_file"));
        Assert.Equal(activeFile, Vmstat(vmstat, "nr_active_file"));

        var counters = allocator.Counters;
        Assert.True(counters.PageActivate >= 1);
        Assert.Equal(counters.PageActivate, Vmstat(vmstat, "pgactivate"));
        Assert.Equal(counters.PageDeactivate, Vmstat(vmstat, "pgdeactivate"));
        Assert.Equal(counters.PageRefill, Vmstat(vmstat, "pgrefill"));
        Assert.Equal(counters.PageScanDirect, Vmstat(vmstat, "pgscan_direct"));
        Assert.Equal(counters.PageStealDirect, Vmstat(vmstat, "pgsteal_direct"));
        Assert.True(Vmstat(vmstat, "pgsteal_direct") >= 64);
        Assert.Equal(Vmstat(vmstat, "pswpout"), Vmstat(vmstat, "pgsteal_direct"));
        foreach (string thp in (string[])["thp_split_page", "thp_swpout", "thp_swpout_fallback"])
            Assert.Equal(0UL, Vmstat(vmstat, thp));
        // Every swapped page reads back.
        for (ulong i = 0; i < 64; i++)
        {
            Assert.True(p.Process.User.TryReadUInt64((ulong)data + i * Page, out ulong value));
            Assert.Equal(i + 1, value);
        }
    }
}
