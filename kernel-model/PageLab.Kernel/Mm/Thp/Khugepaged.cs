using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// The khugepaged kernel thread: every scan_sleep_millisecs of virtual time it scans up to
/// pages_to_scan PTEs of the address spaces registered with it (those that have had an eligible
/// VMA), collapsing regions with the khugepaged policy (max_ptes_* limits, a referenced page
/// required). Its work is charged to its own CPU time, never to the processes it collapses for;
/// after a failed huge allocation it sleeps alloc_sleep_millisecs.
/// </summary>
public sealed class Khugepaged
{
    const ulong NanosecondsPerMillisecond = 1_000_000;

    readonly TransparentHugePages thp;
    readonly List<AddressSpace> spaces = [];
    int cursorSpace;
    ulong cursorAddress;

    public Khugepaged(TransparentHugePages thp) => this.thp = thp;

    /// <summary>Virtual time (machine clock, ns) of the next pass; null until the thread first runs.</summary>
    public ulong? NextWake { get; private set; }

    /// <summary>khugepaged's own CPU time: scanning and collapsing, in virtual ns.</summary>
    public ulong CpuNanoseconds { get; private set; }

    /// <summary>/sys/kernel/mm/transparent_hugepage/khugepaged/pages_collapsed.</summary>
    public long PagesCollapsed { get; private set; }

    /// <summary>/sys/kernel/mm/transparent_hugepage/khugepaged/full_scans: passes that went round every address space.</summary>
    public long FullScans { get; private set; }

    /// <summary>Passes run so far.</summary>
    public long Passes { get; private set; }

    /// <summary>khugepaged_enter_vma: remember an address space that has (had) a VMA khugepaged may collapse.</summary>
    public void Register(AddressSpace mm)
    {
        if (!spaces.Contains(mm)) spaces.Add(mm);
    }

    /// <summary>khugepaged_exit: the address space is gone.</summary>
    public void Unregister(AddressSpace mm)
    {
        int index = spaces.IndexOf(mm);
        if (index < 0) return;
        spaces.RemoveAt(index);
        if (cursorSpace > index || cursorSpace >= spaces.Count)
        {
            cursorSpace = Math.Max(0, cursorSpace - 1);
            cursorAddress = 0;
        }
    }

    /// <summary>Runs every pass due by virtual time <paramref name="now"/>.</summary>
    /// <remarks>The thread starts sleeping at the first call (the machine's boot); it then wakes every
    /// scan_sleep_millisecs, as khugepaged_wait_work does, or alloc_sleep_millisecs after an allocation failure.</remarks>
    public void RunUntil(ulong now)
    {
        NextWake ??= now + Sleep(thp.Settings.ScanSleepMilliseconds);
        while (NextWake <= now)
        {
            bool allocationFailed = spaces.Count > 0 && Pass();
            NextWake += Sleep(allocationFailed ? thp.Settings.AllocSleepMilliseconds : thp.Settings.ScanSleepMilliseconds);
        }
    }

    static ulong Sleep(int milliseconds) => (ulong)Math.Max(1, milliseconds) * NanosecondsPerMillisecond;

    /// <summary>One wake-up: scan up to pages_to_scan PTEs from the cursor; true when a huge allocation failed.</summary>
    bool Pass()
    {
        Passes++;
        long budget = thp.Settings.PagesToScan;
        var policy = CollapsePolicy.Khugepaged(thp.Settings);
        int visitedSpaces = 0;
        while (budget > 0 && visitedSpaces <= spaces.Count)
        {
            var mm = spaces[cursorSpace];
            if (NextRegion(mm, cursorAddress) is { } next)
            {
                var (vma, region) = next;
                cursorAddress = region + PagingConstants.LargePageSize;
                budget -= ThpSettings.PtesPerPmd;
                var result = thp.Engine.CollapseRegion(mm, vma, region, policy);
                CpuNanoseconds += thp.Engine.Last.TotalNanoseconds;
                if (result == CollapseResult.Succeeded) PagesCollapsed++;
                if (result == CollapseResult.AllocationFailed) return true;
                continue;
            }
            // This address space is done: move to the next; a wrap to the first is a full scan.
            cursorAddress = 0;
            visitedSpaces++;
            if (++cursorSpace >= spaces.Count)
            {
                cursorSpace = 0;
                FullScans++;
            }
        }
        return false;
    }

    /// <summary>The first 2 MiB region at or above <paramref name="from"/> in a VMA khugepaged may collapse.</summary>
    (Vma Vma, ulong Region)? NextRegion(AddressSpace mm, ulong from)
    {
        foreach (var vma in mm.Vmas)
        {
            if (vma.End <= from || !mm.KhugepagedAllowed(vma)) continue;
            ulong region = (Math.Max(from, vma.Start) + PagingConstants.LargePageMask) & ~PagingConstants.LargePageMask;
            if (region >= vma.Start && region <= vma.End - PagingConstants.LargePageSize && vma.End >= PagingConstants.LargePageSize)
                return (vma, region);
        }
        return null;
    }
}
