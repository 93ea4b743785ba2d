using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

namespace PageLab.Kernel.Mm;

/// <summary>The page-level work of MADV_FREE, MADV_COLD, MADV_PAGEOUT and MADV_WILLNEED on one VMA piece.</summary>
public sealed partial class AddressSpace
{
    /// <summary>
    /// MADV_FREE (madvise_free_pte_range): swapped-out pages are dropped with their slots; each page
    /// mapped only here gets a clean, old PTE (flushed, so the next write sets D again) and becomes
    /// lazily freed: reclaim discards it unless it is written first. Huge PMDs partly covered are split.
    /// </summary>
    public void FreeLazily(ulong start, ulong end)
    {
        SplitHugePmdsPartlyIn(start, end);
        var flush = new FlushGather();
        Tables.VisitPtes(start, end, (linear, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (pte.Raw == 0)
                return;
            if (!MapsFrame(pte))
            {
                Tables.Write(pteAddress, default);
                ReleaseSwapEntry(new SwapPte(pte.Raw));
                return;
            }
            if (pte.FrameNumber == memory.ZeroFrame || !SplitFolioMappedAlone(pte.FrameNumber, linear))
                return;
            ref var page = ref memory.Page(pte.FrameNumber);
            if (page.Use != FrameUse.Anonymous || page.MapCount != 1)
                return;
            Tables.Write(pteAddress, pte.Without(PageTableEntry.DirtyBit | PageTableEntry.AccessedBit));
            if (pte.IsPresent)
                flush.Add(linear);
            if ((page.Flags & PageFlags.LazyFree) == 0)
                memory.Frames.Counters.LazyFree++;
            page.Flags |= PageFlags.LazyFree;
            memory.Frames.Deactivate(pte.FrameNumber);
        });
        Flush(flush);
    }

    /// <summary>
    /// MADV_COLD and MADV_PAGEOUT (madvise_cold_or_pageout_pte_range): every page mapped only here
    /// moves to the old end of its inactive list, COLD also making its PTE old (flushed); with <paramref name="pageOut"/>
    /// it is reclaimed at once (page cache dropped, anonymous and shmem memory swapped if there is swap;
    /// without swap a shmem page is still unmapped, as Linux unmaps before it writes), at the caller's
    /// cost. An anonymous THP the range covers whole and that only this mapping maps is handled as one
    /// folio (the huge-PMD branch of madvise_cold_or_pageout_pte_range): COLD clears the PMD's accessed
    /// bit (flushing its range) and deactivates it, PAGEOUT reclaims it whole, into one swap cluster or
    /// split when there is none; one shared with a relative is left alone. PAGEOUT splits the other huge
    /// PMDs in the range first.
    /// </summary>
    /// <returns>Pages reclaimed (512 for a THP).</returns>
    public int Deactivate(ulong start, ulong end, bool pageOut)
    {
        int reclaimed = 0;
        foreach (var (region, pmdAddress) in HugePmdsIn(start, end))
        {
            ulong head = Tables.Read(pmdAddress).FrameNumber;
            bool whole = region >= start && region + PagingConstants.LargePageSize <= end;
            if (whole && memory.Page(head).Use == FrameUse.Anonymous)
            {
                if (memory.FolioMapCount(head) == 1)
                    reclaimed += DeactivateHugePmd(region, pmdAddress, head, pageOut);
            }
            else if (pageOut)
            {
                SplitHugePmd(region, pmdAddress);
            }
        }
        var frames = new List<ulong>();
        var flush = new FlushGather();
        Tables.VisitPtes(start, end, (linear, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (!pte.IsPresent || pte.FrameNumber == memory.ZeroFrame || !SplitFolioMappedAlone(pte.FrameNumber, linear))
                return;
            ref var page = ref memory.Page(pte.FrameNumber);
            if (page.MapCount != 1 || page.State != PageState.Head || page.Order != 0)
                return;
            // COLD makes a young PTE old and removes its TLB entry (tlb_remove_tlb_entries), so the next
            // access sets A again; PAGEOUT reclaims the page whatever its references and leaves the PTE alone.
            if (!pageOut && pte.IsAccessed)
            {
                Tables.Write(pteAddress, pte.Without(PageTableEntry.AccessedBit));
                flush.Add(linear);
            }
            memory.Frames.Deactivate(pte.FrameNumber);
            frames.Add(pte.FrameNumber);
        });
        Flush(flush);
        if (pageOut)
        {
            foreach (ulong frame in frames)
            {
                if (memory.Frames.TryReclaimNow(frame, CostSink))
                    reclaimed++;
                else if (memory.Page(frame).Use == FrameUse.Shmem && !memory.Page(frame).IsBusy && memory.Frames.Swap is not { HasFreeSlot: true })
                    memory.PageCache.UnmapPage(frame); // shrink_folio_list unmaps it, then shmem_writeout finds no swap: it stays in the object
            }
        }
        return reclaimed;
    }

    /// <summary>MADV_COLD or MADV_PAGEOUT of a whole THP mapped only here; returns the pages reclaimed.</summary>
    int DeactivateHugePmd(ulong region, ulong pmdAddress, ulong head, bool pageOut)
    {
        var pmd = Tables.Read(pmdAddress);
        if (!pageOut && pmd.IsAccessed)
        {
            Tables.Write(pmdAddress, pmd.Without(PageTableEntry.AccessedBit));
            FlushRange(region, region + PagingConstants.LargePageSize);
        }
        memory.Frames.Deactivate(head);
        return pageOut && memory.Frames.TryReclaimNow(head, CostSink) ? ThpSettings.PtesPerPmd : 0;
    }

    /// <summary>
    /// MADV_WILLNEED on a file mapping (madvise_willneed's readahead): reads the range's file pages into the
    /// page cache, unmapped. For shmem only pages in swap are read back (shmem_swapin_range): holes stay holes.
    /// </summary>
    public void ReadAhead(Vma vma, ulong start, ulong end)
    {
        if (vma.File is null)
            return;
        for (ulong page = start; page < end; page += PagingConstants.PageSize)
        {
            long offset = vma.FileOffsetOf(page);
            if (vma.IsShmem && memory.PageCache.Find(vma.File, offset >> PagingConstants.PageBits, out _) != CachedPage.Swapped)
                continue;
            if (offset >= vma.File.Length || !memory.PageCache.TryGetFrame(vma.File, offset >> PagingConstants.PageBits, out _, CostSink))
                return;
        }
    }

    /// <summary>
    /// Faults one page in for MADV_POPULATE_*: nothing when the walk already allows the access, else the
    /// fault the access would take (a write to a read-only present PTE is a write-protect fault).
    /// </summary>
    public FaultOutcome Populate(ulong page, bool write)
    {
        var leaf = Tables.Walk(page)[^1].Entry;
        if (leaf.IsPresent && (!write || leaf.IsWritable))
            return FaultOutcome.Spurious;
        return HandleFault(page, write ? AccessKind.Write : AccessKind.Read, leaf.IsPresent);
    }

    /// <summary>Splits the huge PMDs that [start, end) covers only in part.</summary>
    void SplitHugePmdsPartlyIn(ulong start, ulong end)
    {
        foreach (var (region, pmdAddress) in HugePmdsIn(start, end))
        {
            if (region < start || region + PagingConstants.LargePageSize > end)
                SplitHugePmd(region, pmdAddress);
        }
    }

    /// <summary>
    /// How madvise meets a page of a large folio (a THP whose PMD was split) in its PTE walk: a folio
    /// mapped only here is split (split_folio) so its pages can be handled one by one; one shared with
    /// another process is left alone (folio_maybe_mapped_shared). True when <paramref name="frame"/>
    /// is, or has just become, an order-0 page.
    /// </summary>
    bool SplitFolioMappedAlone(ulong frame, ulong linear)
    {
        ulong head = memory.FolioOf(frame);
        if (head == frame && memory.Page(frame).Order == 0)
            return true;
        return MapsFolioAlone(head, linear) && memory.TrySplitFolio(head);
    }

    /// <summary>Is the PTE of <paramref name="linear"/> dirty (written since it was last cleaned)?</summary>
    bool IsDirtyAt(ulong linear) => Tables.ReadPte(linear).IsDirty;
}
