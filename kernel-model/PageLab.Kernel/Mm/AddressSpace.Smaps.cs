using System.Text;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Kernel.Mm;

/// <summary>/proc/self/smaps and smaps_rollup, with Linux 6.18's field names and layout.</summary>
public sealed partial class AddressSpace
{
    /// <summary>What smaps counts for one VMA (or all, for the rollup), in bytes.</summary>
    public struct MemoryUsage
    {
        public ulong Rss, PssTimes1K, PssDirtyTimes1K, PssAnonTimes1K, PssShmemTimes1K, SharedClean, SharedDirty, PrivateClean, PrivateDirty;
        public ulong Referenced, Anonymous, LazyFree, AnonHugePages, ShmemPmdMapped, Swap;

        public void Add(in MemoryUsage other)
        {
            Rss += other.Rss; PssTimes1K += other.PssTimes1K; PssDirtyTimes1K += other.PssDirtyTimes1K; PssAnonTimes1K += other.PssAnonTimes1K; PssShmemTimes1K += other.PssShmemTimes1K;
            SharedClean += other.SharedClean; SharedDirty += other.SharedDirty;
            PrivateClean += other.PrivateClean; PrivateDirty += other.PrivateDirty;
            Referenced += other.Referenced; Anonymous += other.Anonymous; LazyFree += other.LazyFree; AnonHugePages += other.AnonHugePages; ShmemPmdMapped += other.ShmemPmdMapped; Swap += other.Swap;
        }
    }

    /// <summary>
    /// smaps_account over the pages mapped in <paramref name="vma"/> (the zero page is not counted, as
    /// vm_normal_page skips it). Pages of a shmem VMA (MAP_SHARED|MAP_ANONYMOUS) are not Anonymous, a
    /// huge one counts as ShmemPmdMapped, and its Swap is the object's pages in swap over the VMA's
    /// range (shmem_swap_usage), as no PTE holds their swap entries. Each 4 KiB page counts as shared
    /// or private, and divides its Pss, by how many times it is mapped (folio_precise_page_mapcount),
    /// also inside a huge PMD: a THP shared with a forked child whose PMD was split is shared except
    /// for the pages the child copied.
    /// </summary>
    public MemoryUsage Usage(Vma vma)
    {
        var usage = new MemoryUsage();
        bool shmem = vma.IsShmem;
        if (shmem)
        {
            long first = vma.FileOffset >> PagingConstants.PageBits;
            usage.Swap += (ulong)memory.PageCache.SwappedPagesOf(vma.File!, first, first + (long)(vma.Length >> PagingConstants.PageBits)) << PagingConstants.PageBits;
        }
        foreach (var (region, pmdAddress) in HugePmdsIn(vma.Start, vma.End))
        {
            var pmd = Tables.Read(pmdAddress);
            for (ulong i = 0; i < ThpSettings.PtesPerPmd; i++)
                Account(ref usage, pmd.FrameNumber + i, pmd, anonymous: !shmem);
            if (shmem) usage.ShmemPmdMapped += PagingConstants.LargePageSize;
            else usage.AnonHugePages += PagingConstants.LargePageSize;
        }
        Tables.VisitPtes(vma.Start, vma.End, (_, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (pte.Raw == 0)
                return;
            if (!MapsFrame(pte))
            {
                usage.Swap += PagingConstants.PageSize;
                return;
            }
            if (pte.FrameNumber == memory.ZeroFrame)
                return;
            Account(ref usage, pte.FrameNumber, pte, anonymous: memory.Page(pte.FrameNumber).Use == FrameUse.Anonymous && !shmem);
        });
        return usage;
    }

    /// <summary>smaps_page_accumulate for one 4 KiB page mapped by <paramref name="entry"/> (a PTE, or the huge PMD holding it).</summary>
    void Account(ref MemoryUsage usage, ulong frame, PageTableEntry entry, bool anonymous)
    {
        const ulong size = PagingConstants.PageSize;
        var info = memory.Folio(frame);
        bool dirty = entry.IsDirty;
        int mappers = Math.Max(1, memory.PageMapCount(frame));
        usage.Rss += size;
        usage.PssTimes1K += size * 1024 / (ulong)mappers;
        if (dirty) usage.PssDirtyTimes1K += size * 1024 / (ulong)mappers;
        if (mappers > 1)
        {
            if (dirty) usage.SharedDirty += size; else usage.SharedClean += size;
        }
        else
        {
            if (dirty) usage.PrivateDirty += size; else usage.PrivateClean += size;
        }
        if (entry.IsAccessed) usage.Referenced += size;
        if (info.Use == FrameUse.Shmem) usage.PssShmemTimes1K += size * 1024 / (ulong)mappers;
        if (anonymous)
        {
            usage.Anonymous += size;
            usage.PssAnonTimes1K += size * 1024 / (ulong)mappers;
            if ((info.Flags & PageFlags.LazyFree) != 0 && !dirty)
                usage.LazyFree += size;
        }
    }

    /// <summary>THPeligible: would the fault path use a THP here (sysfs enabled, VMA flags, prctl, room for one)?</summary>
    public bool ThpEligible(Vma vma)
    {
        if (vma.IsShmem)
            return vma.Length >= PagingConstants.LargePageSize && ThpEnabledFor(vma)
                && ShmemPmdSuitable(vma, (vma.End - PagingConstants.LargePageSize) & ~PagingConstants.LargePageMask);
        ulong first = (vma.Start + PagingConstants.LargePageMask) & ~PagingConstants.LargePageMask;
        return first >= vma.Start && vma.End >= first && vma.End - first >= PagingConstants.LargePageSize && FaultThpAllowed(vma, first);
    }

    /// <summary>The text of /proc/self/smaps.</summary>
    public string FormatSmaps()
    {
        var text = new StringBuilder();
        foreach (var vma in vmas)
        {
            AppendMapsLine(text, vma);
            Field(text, "Size", vma.Length);
            Field(text, "KernelPageSize", PagingConstants.PageSize);
            Field(text, "MMUPageSize", PagingConstants.PageSize);
            AppendUsage(text, Usage(vma), rollup: false);
            text.Append($"THPeligible:    {(ThpEligible(vma) ? 1 : 0)}\n");
            text.Append("VmFlags: ").Append(VmFlagNames(vma)).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>The text of /proc/self/smaps_rollup: every VMA's usage summed under one [rollup] header.</summary>
    public string FormatSmapsRollup()
    {
        var total = new MemoryUsage();
        foreach (var vma in vmas)
            total.Add(Usage(vma));
        var text = new StringBuilder();
        ulong start = vmas.Count > 0 ? vmas[0].Start : 0, end = vmas.Count > 0 ? vmas[^1].End : 0;
        string header = $"{start:x8}-{end:x8} ---p 00000000 00:00 0 ";
        text.Append(header).Append(' ', Math.Max(0, 72 - header.Length)).Append(" [rollup]\n");
        AppendUsage(text, total, rollup: true);
        return text.ToString();
    }

    static void AppendUsage(StringBuilder text, in MemoryUsage usage, bool rollup)
    {
        Field(text, "Rss", usage.Rss);
        Field(text, "Pss", usage.PssTimes1K / 1024);
        Field(text, "Pss_Dirty", usage.PssDirtyTimes1K / 1024);
        if (rollup)
        {
            Field(text, "Pss_Anon", usage.PssAnonTimes1K / 1024);
            Field(text, "Pss_File", (usage.PssTimes1K - usage.PssAnonTimes1K - usage.PssShmemTimes1K) / 1024);
            Field(text, "Pss_Shmem", usage.PssShmemTimes1K / 1024);
        }
        Field(text, "Shared_Clean", usage.SharedClean);
        Field(text, "Shared_Dirty", usage.SharedDirty);
        Field(text, "Private_Clean", usage.PrivateClean);
        Field(text, "Private_Dirty", usage.PrivateDirty);
        Field(text, "Referenced", usage.Referenced);
        Field(text, "Anonymous", usage.Anonymous);
        Field(text, "KSM", 0);
        Field(text, "LazyFree", usage.LazyFree);
        Field(text, "AnonHugePages", usage.AnonHugePages);
        Field(text, "ShmemPmdMapped", usage.ShmemPmdMapped);
        Field(text, "FilePmdMapped", 0);
        Field(text, "Shared_Hugetlb", 0);
        Field(text, "Private_Hugetlb", 0);
        Field(text, "Swap", usage.Swap);
        Field(text, "SwapPss", usage.Swap);
        Field(text, "Locked", 0);
    }

    /// <summary>SEQ_PUT_DEC: the name and colon padded to 16 columns, the kB value right-aligned in 8.</summary>
    static void Field(StringBuilder text, string name, ulong bytes) =>
        text.Append((name + ":").PadRight(16)).Append((bytes >> 10).ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(8)).Append(" kB\n");

    /// <summary>show_smap_vma_flags: two-letter names of the VMA's vm_flags, each followed by a space.</summary>
    static string VmFlagNames(Vma vma)
    {
        var names = new StringBuilder();
        void Flag(bool on, string name) { if (on) names.Append(name).Append(' '); }
        Flag((vma.Protection & Protection.Read) != 0, "rd");
        Flag((vma.Protection & Protection.Write) != 0, "wr");
        Flag((vma.Protection & Protection.Exec) != 0, "ex");
        Flag((vma.Flags & VmaFlags.Shared) != 0, "sh");
        names.Append("mr ");
        Flag(true, (vma.Flags & VmaFlags.Shared) != 0 ? "ms" : "mw");
        names.Append("me ");
        Flag((vma.Flags & VmaFlags.GrowsDown) != 0, "gd");
        Flag((vma.Flags & VmaFlags.Shared) == 0 && (vma.Protection & Protection.Write) != 0, "ac");
        Flag((vma.Flags & VmaFlags.HugePage) != 0, "hg");
        Flag((vma.Flags & VmaFlags.NoHugePage) != 0, "nh");
        names.Append("sd ");
        return names.ToString();
    }
}
