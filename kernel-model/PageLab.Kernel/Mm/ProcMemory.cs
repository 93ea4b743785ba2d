using System.Globalization;
using System.Text;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>/proc/meminfo and the memory lines of /proc/self/status, with Linux 6.18's names and layout.</summary>
public static class ProcMemory
{
    /// <summary>
    /// /proc/meminfo (meminfo_proc_show): totals from the buddy allocator's descriptors, the page cache
    /// and the swap device. Counters of machinery PageLab does not model (slab, vmalloc, hugetlb) are 0.
    /// </summary>
    public static string MemInfo(KernelMemory memory)
    {
        var frames = memory.Frames;
        ulong anonymous = 0, anonHuge = 0, pageCache = 0, mapped = 0, pageTables = 0;
        ulong shmem = 0, shmemHuge = 0, shmemPmdMapped = 0;
        for (ulong frame = 0; frame < frames.FrameCount; frame++)
        {
            ref var page = ref frames[frame];
            if (page.State != PageState.Head)
                continue;
            ulong size = 1UL << page.Order;
            switch (page.Use)
            {
                case FrameUse.Anonymous when page.Order > 0:
                    // NR_ANON_THPS counts THPs some PMD maps whole; NR_ANON_MAPPED the pages mapped at all.
                    if (page.EntireMapCount > 0)
                    {
                        anonHuge += size;
                        anonymous += size;
                    }
                    else
                    {
                        for (ulong i = 0; i < size; i++)
                            anonymous += frames[frame + i].MapCount > 0 ? 1UL : 0;
                    }
                    break;
                case FrameUse.Anonymous:
                    anonymous += size;
                    break;
                case FrameUse.PageCache or FrameUse.Shmem:
                    pageCache += size; // Cached includes shmem, as NR_FILE_PAGES does
                    if (page.MapCount > 0 || page.EntireMapCount > 0) mapped += size;
                    if (page.Use == FrameUse.Shmem) shmem += size;
                    if (page.Use == FrameUse.Shmem && page.Order == BuddyAllocator.PageblockOrder)
                    {
                        shmemHuge += size;
                        if (page.EntireMapCount > 0) shmemPmdMapped += size; // a huge shmem page is only ever mapped by PMDs
                    }
                    break;
                case FrameUse.PageTable:
                    pageTables += size;
                    break;
            }
        }
        ulong inactiveAnon = frames.LruPages(LruList.InactiveAnon), activeAnon = frames.LruPages(LruList.ActiveAnon);
        ulong inactiveFile = frames.LruPages(LruList.InactiveFile), activeFile = frames.LruPages(LruList.ActiveFile);
        ulong swapTotal = frames.Swap?.TotalSlots ?? 0, swapFree = swapTotal - (frames.Swap?.UsedSlots ?? 0);
        ulong total = frames.FrameCount - 1; // frame 0 is reserved, as Linux keeps pages back from MemTotal
        var text = new StringBuilder();
        void Pages(string name, ulong pages) => Line(text, name, pages << (PagingConstants.PageBits - 10));
        Pages("MemTotal", total);
        Pages("MemFree", frames.FreeFrames);
        Pages("MemAvailable", frames.FreeFrames + inactiveFile + activeFile);
        Pages("Buffers", 0);
        Pages("Cached", pageCache);
        Pages("SwapCached", 0);
        Pages("Active", activeAnon + activeFile);
        Pages("Inactive", inactiveAnon + inactiveFile);
        Pages("Active(anon)", activeAnon);
        Pages("Inactive(anon)", inactiveAnon);
        Pages("Active(file)", activeFile);
        Pages("Inactive(file)", inactiveFile);
        Pages("Unevictable", 0);
        Pages("Mlocked", 0);
        Pages("SwapTotal", swapTotal);
        Pages("SwapFree", swapFree);
        Pages("Zswap", 0);
        Pages("Zswapped", 0);
        Pages("Dirty", 0);
        Pages("Writeback", 0);
        Pages("AnonPages", anonymous);
        Pages("Mapped", mapped);
        Pages("Shmem", shmem);
        Pages("KReclaimable", 0);
        Pages("Slab", 0);
        Pages("SReclaimable", 0);
        Pages("SUnreclaim", 0);
        Pages("KernelStack", 0);
        Pages("PageTables", pageTables);
        Pages("SecPageTables", 0);
        Pages("NFS_Unstable", 0);
        Pages("Bounce", 0);
        Pages("WritebackTmp", 0);
        Pages("CommitLimit", total / 2 + swapTotal);
        Pages("Committed_AS", anonymous + pageCache);
        Line(text, "VmallocTotal", 34359738367);
        Pages("VmallocUsed", 0);
        Pages("VmallocChunk", 0);
        Pages("Percpu", 0);
        Pages("HardwareCorrupted", 0);
        Pages("AnonHugePages", anonHuge);
        Pages("ShmemHugePages", shmemHuge);
        Pages("ShmemPmdMapped", shmemPmdMapped);
        Pages("FileHugePages", 0);
        Pages("FilePmdMapped", 0);
        foreach (string name in (string[])["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"])
            text.Append((name + ":").PadRight(16)).Append("0".PadLeft(8)).Append('\n');
        Line(text, "Hugepagesize", PagingConstants.LargePageSize >> 10);
        Pages("Hugetlb", 0);
        return text.ToString();
    }

    /// <summary>
    /// /proc/self/status (proc_pid_status): identity, then task_mem's memory lines (VmSize, VmRSS,
    /// RssAnon, RssFile, RssShmem, VmData, VmStk, VmPTE, VmSwap) and THP_enabled. Peaks (VmPeak, VmHWM)
    /// are not tracked and not printed.
    /// </summary>
    public static string Status(AddressSpace space, string name, int pid, int parentPid)
    {
        var usage = new AddressSpace.MemoryUsage();
        ulong size = 0, data = 0, stack = 0, shmem = 0;
        foreach (var vma in space.Vmas)
        {
            var vmaUsage = space.Usage(vma);
            usage.Add(vmaUsage);
            size += vma.Length;
            if ((vma.Flags & VmaFlags.GrowsDown) != 0)
                stack += vma.Length;
            else if ((vma.Flags & VmaFlags.Shared) == 0 && (vma.Protection & Protection.Write) != 0)
                data += vma.Length;
            if (vma.IsShmem)
                shmem += vmaUsage.Rss;
        }
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Name:\t{name}\nUmask:\t0022\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{parentPid}\nTracerPid:\t0\n");
        void Kb(string field, ulong bytes) =>
            text.Append(field).Append(":\t").Append((bytes >> 10).ToString(CultureInfo.InvariantCulture).PadLeft(8)).Append(" kB\n");
        Kb("VmSize", size);
        Kb("VmLck", 0);
        Kb("VmPin", 0);
        Kb("VmRSS", usage.Rss);
        Kb("RssAnon", usage.Anonymous);
        Kb("RssFile", usage.Rss - usage.Anonymous - shmem);
        Kb("RssShmem", shmem);
        Kb("VmData", data);
        Kb("VmStk", stack);
        Kb("VmPTE", (ulong)space.Tables.TableFrames << PagingConstants.PageBits);
        Kb("VmSwap", (ulong)space.SwappedPages << PagingConstants.PageBits); // MM_SWAPENTS: swap PTEs, not shmem's slots
        Kb("HugetlbPages", 0);
        text.Append(CultureInfo.InvariantCulture, $"CoreDumping:\t0\nTHP_enabled:\t{(space.ThpDisabled ? 0 : 1)}\nThreads:\t1\n");
        return text.ToString();
    }

    /// <summary>show_val_kb: the name and colon padded to 16 columns, the value right-aligned in 8, then " kB".</summary>
    static void Line(StringBuilder text, string name, ulong kilobytes) =>
        text.Append((name + ":").PadRight(16)).Append(kilobytes.ToString(CultureInfo.InvariantCulture).PadLeft(8)).Append(" kB\n");
}
