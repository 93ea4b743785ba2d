using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>
/// Large folios (THPs) once they are shared or partly mapped: references and map counts across
/// processes, split_huge_page, and the deferred split queue that frees the unmapped parts of partly
/// unmapped THPs under memory pressure (mm/huge_memory.c).
/// </summary>
public sealed partial class KernelMemory
{
    /// <summary>Partly unmapped anonymous large folios waiting for a split (Linux's deferred split queue), oldest first.</summary>
    readonly List<ulong> deferredSplit = [];
    readonly HashSet<ulong> deferredSplitMembers = [];

    /// <summary>Heads of the folios on the deferred split queue, oldest first.</summary>
    public IReadOnlyList<ulong> DeferredSplitQueue => deferredSplit;

    /// <summary>The head frame of the folio holding <paramref name="frameNumber"/> (the frame itself unless it is a tail).</summary>
    public ulong FolioOf(ulong frameNumber) => Frames.HeadOf(frameNumber);

    /// <summary>The descriptor of the folio holding <paramref name="frameNumber"/>: its references, entire map count, flags and owner.</summary>
    public ref PageDescriptor Folio(ulong frameNumber) => ref Frames[Frames.HeadOf(frameNumber)];

    /// <summary>Takes a reference to the frame's folio (folio_get).</summary>
    public void GetFolio(ulong frameNumber) => Folio(frameNumber).RefCount++;

    /// <summary>How many times the 4 KiB page is mapped: by PTEs, and by every huge PMD mapping its whole folio.</summary>
    public int PageMapCount(ulong frameNumber) => Frames[frameNumber].MapCount + Folio(frameNumber).EntireMapCount;

    /// <summary>folio_mapcount: every mapping of the folio, PMDs and PTEs (a folio's references beyond it are pins or transient users).</summary>
    public int FolioMapCount(ulong head)
    {
        ref var folio = ref Frames[head];
        int count = folio.EntireMapCount;
        for (ulong i = 0; i < 1UL << folio.Order; i++)
            count += Frames[head + i].MapCount;
        return count;
    }

    /// <summary>
    /// A large folio that no huge PMD maps whole and whose pages are mapped only in part: split, it would
    /// free its unmapped pages. (A folio mapped by PTEs alone after a PMD split, every page of it, is not.)
    /// </summary>
    public bool IsPartlyMapped(ulong head)
    {
        ref var folio = ref Frames[head];
        if (folio.State != PageState.Head || folio.Order == 0 || folio.EntireMapCount != 0)
            return false;
        bool anyMapped = false, anyUnmapped = false;
        for (ulong i = 0; i < 1UL << folio.Order && !(anyMapped && anyUnmapped); i++)
        {
            if (Frames[head + i].MapCount > 0) anyMapped = true;
            else anyUnmapped = true;
        }
        return anyMapped && anyUnmapped;
    }

    /// <summary>
    /// After a batch of mappings of a large folio went (a zap, a COW): deferred_split_folio queues it when
    /// it is left partly mapped, counting thp_deferred_split_page the first time.
    /// </summary>
    internal void CheckPartlyMapped(ulong head)
    {
        if (Frames[head].Use != FrameUse.Anonymous || deferredSplitMembers.Contains(head) || !IsPartlyMapped(head))
            return;
        deferredSplit.Add(head);
        deferredSplitMembers.Add(head);
        Thp.Counters.DeferredSplitPage++;
    }

    void ForgetDeferredSplit(ulong head)
    {
        if (deferredSplitMembers.Remove(head))
            deferredSplit.Remove(head);
    }

    /// <summary>
    /// split_huge_page for an anonymous large folio, whoever maps it: every huge PMD mapping it, in every
    /// address space, is split first (unmap_folio's TTU_SPLIT_HUGE_PMD), then the folio is split when no
    /// reference but its mappings holds it (can_split_folio) and it is neither pinned nor locked. Each
    /// page becomes an order-0 frame with one reference per mapping; pages nobody maps are freed, the
    /// others join the LRU, owned by the folio's owner where it maps them (else unowned, as any page
    /// shared with a forked relative). Counts thp_split_page, or thp_split_page_failed.
    /// </summary>
    /// <returns>True when the folio was split.</returns>
    public bool TrySplitFolio(ulong head)
    {
        ref var folio = ref Frames[head];
        if (folio.State != PageState.Head || folio.Order == 0 || folio.Use != FrameUse.Anonymous)
            return false;
        foreach (var space in addressSpaces)
            space.SplitHugePmdsMapping(head);
        if (folio.IsBusy || folio.RefCount != FolioMapCount(head))
        {
            Thp.Counters.SplitPageFailed++;
            return false;
        }
        ForgetDeferredSplit(head);
        var owner = Frames.Owners[folio.Owner] as AddressSpace;
        ulong ownerPage = folio.OwnerIndex;
        ulong pages = 1UL << folio.Order;
        Frames.SplitBlock(head);
        for (ulong i = 0; i < pages; i++)
        {
            ulong frame = head + i;
            ref var page = ref Frames[frame];
            page.RefCount = page.MapCount;
            if (page.MapCount == 0)
            {
                page.RefCount = 1;
                Release(frame);
                continue;
            }
            if (owner is null || !owner.MapsFrameAt((ownerPage + i) << PagingConstants.PageBits, frame))
                Frames.SetOwner(frame, 0, 0);
            Frames.AddToLru(frame);
        }
        Thp.Counters.SplitPage++;
        return true;
    }

    /// <summary>
    /// deferred_split_scan, the shrinker direct reclaim runs: splits queued folios that are still partly
    /// mapped (only those charged to <paramref name="cgroup"/>, for memcg reclaim), oldest first, until
    /// <paramref name="target"/> frames were freed. Folios mapped whole again leave the queue.
    /// </summary>
    /// <returns>Frames freed.</returns>
    ulong ShrinkDeferredSplit(MemoryCgroup? cgroup, ulong target)
    {
        ulong freed = 0;
        for (int i = 0; i < deferredSplit.Count && freed < target;)
        {
            ulong head = deferredSplit[i];
            if (cgroup is not null && Frames[head].Memcg != cgroup.Id)
            {
                i++;
                continue;
            }
            if (!IsPartlyMapped(head))
            {
                ForgetDeferredSplit(head);
                continue;
            }
            ulong freeBefore = Frames.FreeFrames;
            if (TrySplitFolio(head))
                freed += Frames.FreeFrames - freeBefore;
            else
                i++;
        }
        return freed;
    }
}
