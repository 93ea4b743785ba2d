using System.Globalization;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// The files under /sys/kernel/mm/transparent_hugepage/, each with Linux's text and its store rules
/// (an invalid value is EINVAL and changes nothing). The guest reads and writes them through procfs;
/// the CLI's --thp NAME=VALUE goes through the same writers.
/// </summary>
public static class ThpSysfs
{
    public const string Directory = "/sys/kernel/mm/transparent_hugepage/";

    /// <summary>One sysfs file: path relative to <see cref="Directory"/>, its text, and its writer (null: read-only).</summary>
    public sealed record File(string Name, Func<string> Read, Func<string, Errno?>? Write);

    public static IReadOnlyList<File> Files(TransparentHugePages thp)
    {
        var s = thp.Settings;
        var k = thp.Khugepaged;
        return
        [
            new("enabled", () => s.EnabledText, v => s.TrySetEnabled(v) ? null : Errno.EINVAL),
            new("defrag", () => s.DefragText, v => s.TrySetDefrag(v) ? null : Errno.EINVAL),
            new("shmem_enabled", () => s.ShmemEnabledText, v => s.TrySetShmemEnabled(v) ? null : Errno.EINVAL),
            new("hugepages-2048kB/shmem_enabled", () => s.ShmemPmdEnabledText, v => s.TrySetShmemPmdEnabled(v) ? null : Errno.EINVAL),
            new("hpage_pmd_size", () => Line((long)PageLab.Emulator.Paging.PagingConstants.LargePageSize), null),
            // The model maps no huge zero page: read faults take 4 KiB zero pages (see AddressSpace.Thp.cs).
            new("use_zero_page", () => "0\n", null),
            new("khugepaged/pages_to_scan", () => Line(s.PagesToScan), Number(1, int.MaxValue, v => s.PagesToScan = v)),
            new("khugepaged/scan_sleep_millisecs", () => Line(s.ScanSleepMilliseconds), Number(0, int.MaxValue, v => s.ScanSleepMilliseconds = v)),
            new("khugepaged/alloc_sleep_millisecs", () => Line(s.AllocSleepMilliseconds), Number(0, int.MaxValue, v => s.AllocSleepMilliseconds = v)),
            new("khugepaged/max_ptes_none", () => Line(s.MaxPtesNone), Number(0, ThpSettings.PtesPerPmd - 1, v => s.MaxPtesNone = v)),
            new("khugepaged/max_ptes_swap", () => Line(s.MaxPtesSwap), Number(0, ThpSettings.PtesPerPmd - 1, v => s.MaxPtesSwap = v)),
            new("khugepaged/max_ptes_shared", () => Line(s.MaxPtesShared), Number(0, ThpSettings.PtesPerPmd - 1, v => s.MaxPtesShared = v)),
            new("khugepaged/defrag", () => Line(s.KhugepagedDefrag ? 1 : 0), Number(0, 1, v => s.KhugepagedDefrag = v == 1)),
            new("khugepaged/pages_collapsed", () => Line(k.PagesCollapsed), null),
            new("khugepaged/full_scans", () => Line(k.FullScans), null),
        ];
    }

    /// <summary>Writes one knob by its name (e.g. "enabled", "khugepaged/max_ptes_none"), as `echo value > file` does.</summary>
    public static Errno? Set(TransparentHugePages thp, string name, string value)
    {
        var file = Files(thp).FirstOrDefault(f => f.Name == name);
        return file?.Write is { } write ? write(value) : Errno.ENOENT;
    }

    static string Line(long value) => value.ToString(CultureInfo.InvariantCulture) + "\n";

    /// <summary>kstrtouint with a range check, as the khugepaged knobs store them.</summary>
    static Func<string, Errno?> Number(int min, int max, Action<int> set) => text =>
    {
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            return Errno.EINVAL;
        set(value);
        return null;
    };
}
