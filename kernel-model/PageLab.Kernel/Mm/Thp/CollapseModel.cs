using PageLab.Emulator.Paging;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>The phases of a collapse, in the order Linux's collapse_huge_page runs them (DESIGN.md point 5).</summary>
public enum CollapsePhase : byte
{
    /// <summary>Read the PMD and the 512 PTEs; count empty, swapped, shared and referenced pages.</summary>
    Scan,
    /// <summary>Allocate the 2 MiB frame on the chosen node and charge it to the memcg.</summary>
    AllocateAndCharge,
    /// <summary>Fault swapped-out PTEs back in.</summary>
    SwapIn,
    /// <summary>Clear the PMD and flush the TLB for the 2 MiB range: from here the guest cannot reach the old pages.</summary>
    ClearPmdAndFlush,
    /// <summary>Take the old pages off the LRU, re-checking that none is locked or pinned.</summary>
    Isolate,
    /// <summary>Copy each present page into the huge frame; zero the rest; free the old pages.</summary>
    Copy,
    /// <summary>Deposit the old (now empty) PTE table and install the huge PMD.</summary>
    InstallPmd,
    Done,
    RolledBack,
}

/// <summary>What a region's collapse came to: Linux's scan_result values that the model produces.</summary>
public enum CollapseResult : byte
{
    /// <summary>SCAN_SUCCEED.</summary>
    Succeeded,
    /// <summary>SCAN_PMD_MAPPED: already a huge PMD; counts as success.</summary>
    PmdMapped,
    /// <summary>
    /// SCAN_PMD_NULL: no page directory covers the region (mm_find_pmd finds no PMD to look at: nothing in the
    /// region's 1 GiB was ever touched). madvise_collapse goes on with the next region.
    /// </summary>
    PmdNull,
    /// <summary>SCAN_PMD_NONE: the page directory exists but the region's PMD is empty (never touched); stops madvise_collapse.</summary>
    PmdNone,
    /// <summary>SCAN_VMA_CHECK: the VMA cannot hold this huge page.</summary>
    VmaCheck,
    /// <summary>SCAN_EXCEED_NONE_PTE: more empty PTEs than max_ptes_none (khugepaged).</summary>
    ExceedNonePte,
    /// <summary>SCAN_EXCEED_SWAP_PTE.</summary>
    ExceedSwapPte,
    /// <summary>SCAN_EXCEED_SHARED_PTE.</summary>
    ExceedSharedPte,
    /// <summary>
    /// Every PTE is empty or maps the zero page. Linux 6.18 answers EINVAL here (observed on the host by
    /// guest-programs/collapse_basic: a region of zero-page PTEs, or emptied by MADV_DONTNEED, does not
    /// collapse, while one written page among them does). Treated as a whitelisted failure.
    /// </summary>
    NoPresentPage,
    /// <summary>SCAN_PAGE_ANON: a present page that is not anonymous.</summary>
    PageNotAnonymous,
    /// <summary>SCAN_PAGE_LOCK: a page is locked.</summary>
    PageLocked,
    /// <summary>SCAN_PAGE_COUNT: a page has references beyond its mappings (pinned).</summary>
    PageCount,
    /// <summary>SCAN_LACK_REFERENCED_PAGE: khugepaged found no recently used page.</summary>
    LackReferencedPage,
    /// <summary>SCAN_ALLOC_HUGE_PAGE_FAIL.</summary>
    AllocationFailed,
    /// <summary>SCAN_CGROUP_CHARGE_FAIL.</summary>
    ChargeFailed,
    /// <summary>SCAN_FAIL during swap-in.</summary>
    SwapInFailed,
    /// <summary>SCAN_PTE_NON_PRESENT: at isolation a PTE holds a swap entry (reclaim took the page after the scan).</summary>
    PteNonPresent,
}

/// <summary>Linux's handling of each result in madvise_collapse (mm/khugepaged.c).</summary>
public static class CollapseResultRules
{
    /// <summary>The region is huge afterwards.</summary>
    public static bool IsSuccess(this CollapseResult result) => result is CollapseResult.Succeeded or CollapseResult.PmdMapped;

    /// <summary>madvise_collapse's whitelist: failures after which the remaining regions of the VMA are still tried.</summary>
    public static bool ContinuesWithNextRegion(this CollapseResult result) => result is
        CollapseResult.PmdNull or CollapseResult.PteNonPresent or CollapseResult.PageLocked or CollapseResult.PageCount
        or CollapseResult.LackReferencedPage or CollapseResult.NoPresentPage;

    /// <summary>madvise_collapse_errno.</summary>
    public static Errno ToErrno(this CollapseResult result) => result switch
    {
        CollapseResult.AllocationFailed => Errno.ENOMEM,
        CollapseResult.ChargeFailed or CollapseResult.ExceedNonePte => Errno.EBUSY,
        CollapseResult.PageLocked or CollapseResult.PageCount => Errno.EAGAIN,
        _ => Errno.EINVAL,
    };

    /// <summary>The name Linux's tracepoints give the result.</summary>
    public static string LinuxName(this CollapseResult result) => result switch
    {
        CollapseResult.Succeeded => "SCAN_SUCCEED",
        CollapseResult.PmdMapped => "SCAN_PMD_MAPPED",
        CollapseResult.PmdNull => "SCAN_PMD_NULL",
        CollapseResult.PmdNone => "SCAN_PMD_NONE",
        CollapseResult.VmaCheck => "SCAN_VMA_CHECK",
        CollapseResult.ExceedNonePte => "SCAN_EXCEED_NONE_PTE",
        CollapseResult.ExceedSwapPte => "SCAN_EXCEED_SWAP_PTE",
        CollapseResult.ExceedSharedPte => "SCAN_EXCEED_SHARED_PTE",
        CollapseResult.PageNotAnonymous => "SCAN_PAGE_ANON",
        CollapseResult.NoPresentPage => "SCAN_PAGE_NULL",
        CollapseResult.PageLocked => "SCAN_PAGE_LOCK",
        CollapseResult.PageCount => "SCAN_PAGE_COUNT",
        CollapseResult.LackReferencedPage => "SCAN_LACK_REFERENCED_PAGE",
        CollapseResult.AllocationFailed => "SCAN_ALLOC_HUGE_PAGE_FAIL",
        CollapseResult.ChargeFailed => "SCAN_CGROUP_CHARGE_FAIL",
        CollapseResult.PteNonPresent => "SCAN_PTE_NON_PRESENT",
        _ => "SCAN_FAIL",
    };
}

/// <summary>Who asked for a collapse, and so whose virtual time pays for it.</summary>
public enum CollapseInitiator : byte
{
    /// <summary>madvise / process_madvise: the calling process pays.</summary>
    Caller,
    /// <summary>The khugepaged kernel thread pays, in its own CPU time.</summary>
    Khugepaged,
}

/// <summary>
/// The policy value that is the only difference between MADV_COLLAPSE, MADV_TRY_COLLAPSE and
/// khugepaged (DESIGN.md point 5): one engine, several policies.
/// </summary>
public sealed record CollapsePolicy(
    string Name,
    CollapseInitiator Initiator,
    AllocationEffort Effort,
    bool StopAtAllocationOrChargeFailure,
    int MaxPtesNone,
    int MaxPtesSwap,
    int MaxPtesShared,
    bool RequireReferencedPage)
{
    /// <summary>MADV_COLLAPSE: may reclaim and compact; the max_ptes_* limits do not apply.</summary>
    public static CollapsePolicy MadviseCollapse { get; } = new("MADV_COLLAPSE", CollapseInitiator.Caller,
        AllocationEffort.DirectReclaimAndCompaction, StopAtAllocationOrChargeFailure: false,
        ThpSettings.PtesPerPmd, ThpSettings.PtesPerPmd, ThpSettings.PtesPerPmd, RequireReferencedPage: false);

    /// <summary>MADV_TRY_COLLAPSE (and process_madvise with MADV_F_COLLAPSE_LIGHT): free lists only; the
    /// first allocation or charge failure ends the whole call.</summary>
    public static CollapsePolicy TryCollapse { get; } = MadviseCollapse with
    {
        Name = "MADV_TRY_COLLAPSE",
        Effort = AllocationEffort.FreeListsOnly,
        StopAtAllocationOrChargeFailure = true,
    };

    /// <summary>khugepaged with the current sysfs knobs.</summary>
    public static CollapsePolicy Khugepaged(ThpSettings settings) => new("khugepaged", CollapseInitiator.Khugepaged,
        settings.KhugepagedDefrag ? AllocationEffort.DirectReclaimAndCompaction : AllocationEffort.FreeListsOnly,
        StopAtAllocationOrChargeFailure: false, settings.MaxPtesNone, settings.MaxPtesSwap, settings.MaxPtesShared,
        RequireReferencedPage: true);
}

/// <summary>
/// The live state of one region's collapse, updated phase by phase and handed to observers at
/// each phase: the debugger shows it before/after, the profiler times phases from it. One instance
/// is reused per engine, so observing costs nothing when nobody observes.
/// </summary>
public sealed class CollapseState
{
    public CollapsePolicy Policy { get; internal set; } = CollapsePolicy.MadviseCollapse;
    public AddressSpace? AddressSpace { get; internal set; }
    public ulong Region { get; internal set; }
    public CollapsePhase Phase { get; internal set; }
    public CollapseResult Result { get; internal set; }

    /// <summary>Physical address of the PMD entry of the region.</summary>
    public ulong PmdAddress { get; internal set; }
    public PageTableEntry OldPmd { get; internal set; }
    public PageTableEntry NewPmd { get; internal set; }

    /// <summary>The 512 PTEs as the scan read them (after swap-in, as re-read).</summary>
    public ulong[] OldPtes { get; } = new ulong[ThpSettings.PtesPerPmd];

    /// <summary>First frame of the new 2 MiB frame; 0 before allocation.</summary>
    public ulong HugeFrame { get; internal set; }
    public int Node { get; internal set; }

    public int NoneOrZero { get; internal set; }
    public int Swapped { get; internal set; }
    public int Shared { get; internal set; }
    public int Referenced { get; internal set; }
    public int Present { get; internal set; }

    /// <summary>Modeled nanoseconds of the phase just finished.</summary>
    public ulong PhaseNanoseconds { get; internal set; }
    /// <summary>Of that, time stalled in direct reclaim/compaction (allocation phase).</summary>
    public ulong StallNanoseconds { get; internal set; }
    public ulong TotalNanoseconds { get; internal set; }

    internal void Reset(AddressSpace mm, ulong region, CollapsePolicy policy)
    {
        AddressSpace = mm;
        Region = region;
        Policy = policy;
        Phase = CollapsePhase.Scan;
        Result = CollapseResult.Succeeded;
        PmdAddress = 0;
        OldPmd = NewPmd = default;
        Array.Clear(OldPtes);
        HugeFrame = 0;
        Node = 0;
        NoneOrZero = Swapped = Shared = Referenced = Present = 0;
        PhaseNanoseconds = StallNanoseconds = TotalNanoseconds = 0;
    }
}

/// <summary>Receives each collapse phase as it ends (and the final Done/RolledBack).</summary>
public interface ICollapseObserver
{
    void OnPhase(CollapseState state);
}
