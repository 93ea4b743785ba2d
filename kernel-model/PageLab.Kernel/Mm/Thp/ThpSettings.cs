namespace PageLab.Kernel.Mm.Thp;

/// <summary>/sys/kernel/mm/transparent_hugepage/enabled.</summary>
public enum ThpEnabled : byte
{
    Always,
    Madvise,
    Never,
}

/// <summary>/sys/kernel/mm/transparent_hugepage/defrag: may a THP fault stall in direct reclaim/compaction?</summary>
public enum ThpDefrag : byte
{
    /// <summary>Every THP fault may stall.</summary>
    Always,
    /// <summary>Never stall; wake kswapd/kcompactd instead (modeled: no stall, no background work).</summary>
    Defer,
    /// <summary>MADV_HUGEPAGE regions stall, others defer.</summary>
    DeferMadvise,
    /// <summary>Only MADV_HUGEPAGE regions stall (the default).</summary>
    Madvise,
    /// <summary>Never stall.</summary>
    Never,
}

/// <summary>
/// The THP knobs under /sys/kernel/mm/transparent_hugepage/, machine-wide, with Linux's defaults
/// and its text formats ("always [madvise] never").
/// </summary>
public sealed class ThpSettings
{
    /// <summary>HPAGE_PMD_NR: 512 PTEs per PMD on x86-64.</summary>
    public const int PtesPerPmd = 512;

    public ThpEnabled Enabled { get; set; } = ThpEnabled.Madvise;
    public ThpDefrag Defrag { get; set; } = ThpDefrag.Madvise;

    /// <summary>khugepaged/pages_to_scan: PTEs scanned per wake-up (default 8 * 512).</summary>
    public int PagesToScan { get; set; } = 8 * PtesPerPmd;
    /// <summary>khugepaged/scan_sleep_millisecs (default 10000).</summary>
    public int ScanSleepMilliseconds { get; set; } = 10_000;
    /// <summary>khugepaged/alloc_sleep_millisecs: sleep after a failed huge allocation (default 60000).</summary>
    public int AllocSleepMilliseconds { get; set; } = 60_000;
    /// <summary>khugepaged/max_ptes_none (default 511).</summary>
    public int MaxPtesNone { get; set; } = PtesPerPmd - 1;
    /// <summary>khugepaged/max_ptes_swap (default 64).</summary>
    public int MaxPtesSwap { get; set; } = PtesPerPmd / 8;
    /// <summary>khugepaged/max_ptes_shared (default 256).</summary>
    public int MaxPtesShared { get; set; } = PtesPerPmd / 2;
    /// <summary>khugepaged/defrag: may khugepaged's allocation reclaim/compact (default 1).</summary>
    public bool KhugepagedDefrag { get; set; } = true;

    static readonly string[] EnabledNames = ["always", "madvise", "never"];
    static readonly string[] DefragNames = ["always", "defer", "defer+madvise", "madvise", "never"];

    /// <summary>The file's text: every choice, the current one in brackets.</summary>
    public static string FormatChoice(string[] names, int current) =>
        string.Join(' ', names.Select((n, i) => i == current ? $"[{n}]" : n)) + "\n";

    public string EnabledText => FormatChoice(EnabledNames, (int)Enabled);
    public string DefragText => FormatChoice(DefragNames, (int)Defrag);

    public bool TrySetEnabled(string text)
    {
        int index = Array.IndexOf(EnabledNames, text.Trim());
        if (index < 0) return false;
        Enabled = (ThpEnabled)index;
        return true;
    }

    public bool TrySetDefrag(string text)
    {
        int index = Array.IndexOf(DefragNames, text.Trim());
        if (index < 0) return false;
        Defrag = (ThpDefrag)index;
        return true;
    }

    /// <summary>May a THP fault in a VMA with (or without) VM_HUGEPAGE enter direct reclaim and compaction?</summary>
    public bool FaultMayStall(bool vmaHugePage) => Defrag switch
    {
        ThpDefrag.Always => true,
        ThpDefrag.Madvise or ThpDefrag.DeferMadvise => vmaHugePage,
        _ => false,
    };
}
