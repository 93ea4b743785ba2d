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

/// <summary>/sys/kernel/mm/transparent_hugepage/shmem_enabled: huge pages for shmem (here: MAP_SHARED|MAP_ANONYMOUS).</summary>
public enum ShmemHuge : byte
{
    Always,
    WithinSize,
    Advise,
    /// <summary>The default.</summary>
    Never,
    /// <summary>Emergency off: not even MADV_COLLAPSE.</summary>
    Deny,
    /// <summary>Huge pages wherever the size allows (testing).</summary>
    Force,
}

/// <summary>/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled: the PMD size's own setting.</summary>
public enum ShmemHugeOrder : byte
{
    Always,
    /// <summary>Follow the top-level shmem_enabled (the default for the PMD size).</summary>
    Inherit,
    WithinSize,
    Advise,
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
    public ShmemHuge ShmemEnabled { get; set; } = ShmemHuge.Never;
    public ShmemHugeOrder ShmemPmdEnabled { get; set; } = ShmemHugeOrder.Inherit;

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
    static readonly string[] ShmemNames = ["always", "within_size", "advise", "never", "deny", "force"];
    static readonly string[] ShmemOrderNames = ["always", "inherit", "within_size", "advise", "never"];

    /// <summary>The file's text: every choice, the current one in brackets.</summary>
    public static string FormatChoice(string[] names, int current) =>
        string.Join(' ', names.Select((n, i) => i == current ? $"[{n}]" : n)) + "\n";

    public string EnabledText => FormatChoice(EnabledNames, (int)Enabled);
    public string DefragText => FormatChoice(DefragNames, (int)Defrag);
    public string ShmemEnabledText => FormatChoice(ShmemNames, (int)ShmemEnabled);
    public string ShmemPmdEnabledText => FormatChoice(ShmemOrderNames, (int)ShmemPmdEnabled);

    public bool TrySetShmemEnabled(string text)
    {
        if (!TryParseChoice(ShmemNames, text, out ShmemHuge value)) return false;
        ShmemEnabled = value;
        return true;
    }

    public bool TrySetShmemPmdEnabled(string text)
    {
        if (!TryParseChoice(ShmemOrderNames, text, out ShmemHugeOrder value)) return false;
        ShmemPmdEnabled = value;
        return true;
    }

    /// <summary>The choice <paramref name="text"/> names (surrounding whitespace ignored, as sysfs stores strip the newline).</summary>
    static bool TryParseChoice<T>(string[] names, string text, out T value) where T : struct, Enum
    {
        int index = Array.IndexOf(names, text.Trim());
        value = (T)Enum.ToObject(typeof(T), Math.Max(index, 0));
        return index >= 0;
    }

    /// <summary>
    /// May a huge page back the 2 MiB of anonymous shmem at a VMA with (or without) VM_HUGEPAGE?
    /// shmem_allowable_huge_orders of Linux 6.18 for the PMD order: "deny" refuses everything; the
    /// PMD size's own setting decides (always; advise with VM_HUGEPAGE; within_size: the 2 MiB lie
    /// inside the object, which <paramref name="withinSize"/> says); "inherit" follows the top level,
    /// which MADV_COLLAPSE (<paramref name="forcedCollapse"/>) overrides, except "deny" (and "never" on
    /// this kernel: the host collapses anonymous shmem under shmem_enabled=never).
    /// </summary>
    public bool ShmemHugeAllowed(bool vmaHugePage, bool withinSize, bool forcedCollapse)
    {
        if (ShmemEnabled == ShmemHuge.Deny)
            return false;
        bool global = forcedCollapse || ShmemEnabled switch
        {
            ShmemHuge.Always or ShmemHuge.Force => true,
            ShmemHuge.WithinSize => withinSize,
            ShmemHuge.Advise => vmaHugePage,
            _ => false,
        };
        return ShmemPmdEnabled switch
        {
            ShmemHugeOrder.Always => true,
            ShmemHugeOrder.WithinSize => withinSize,
            ShmemHugeOrder.Advise => vmaHugePage,
            ShmemHugeOrder.Inherit => global,
            _ => false,
        };
    }

    public bool TrySetEnabled(string text)
    {
        if (!TryParseChoice(EnabledNames, text, out ThpEnabled value)) return false;
        Enabled = value;
        return true;
    }

    public bool TrySetDefrag(string text)
    {
        if (!TryParseChoice(DefragNames, text, out ThpDefrag value)) return false;
        Defrag = value;
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
