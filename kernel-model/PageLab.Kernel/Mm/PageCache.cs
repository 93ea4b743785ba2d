using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>What a page cache holds at one index of a file.</summary>
public enum CachedPage : byte
{
    /// <summary>Nothing: a hole (zeroes for shmem).</summary>
    None,
    /// <summary>A 4 KiB page in a frame.</summary>
    Present,
    /// <summary>A shmem page written to swap; the cache holds its slot.</summary>
    Swapped,
    /// <summary>A page of a 2 MiB folio.</summary>
    InHugeFolio,
}

/// <summary>
/// The page cache: one frame per cached file page, holding one reference of its own, owned (for
/// compaction and reclaim) through Linux's file reverse map: every VMA of every address space that
/// maps the file at that offset (the i_mmap walk). Pages of guest files are clean (they are read-only),
/// so reclaim drops them and the next fault reads the file again. Pages of a <see cref="ShmemFile"/>
/// are swap-backed, as shmem's are: reclaim writes them to swap and keeps the slot here, in the
/// page's place (Linux keeps the swap entry in the mapping's xarray, not in a PTE), and the next
/// lookup reads them back (shmem_swapin_folio). A shmem object may also hold 2 MiB folios (a
/// collapse or a huge fault made them): one order-9 block for 512 aligned indices, mapped by PMDs only
/// (the model splits such a folio before mapping it by PTEs), on the LRU, split when reclaim takes it,
/// never migrated.
/// </summary>
public sealed class PageCache : IPageOwner
{
    readonly KernelMemory memory;
    readonly Dictionary<(IMappableFile File, long PageIndex), ulong> frames = [];
    readonly Dictionary<ulong, (IMappableFile File, long PageIndex)> keys = [];
    readonly Dictionary<(IMappableFile File, long PageIndex), ulong> swapSlots = [];
    readonly Dictionary<(IMappableFile File, long PageIndex), ulong> hugeFolios = []; // by first index, 512-aligned
    readonly int ownerId;

    internal PageCache(KernelMemory memory)
    {
        this.memory = memory;
        ownerId = memory.Frames.Owners.Register(this);
    }

    /// <summary>
    /// Stands for the files of the rest of the system (other programs' libraries and data) whose clean
    /// pages the fragmentation setup scatters over memory: cached, never mapped by the guest.
    /// </summary>
    static readonly InMemoryFile SystemFiles = new("[system page cache]", []);

    /// <summary>Frames holding cached file pages.</summary>
    public int Pages => frames.Count;

    /// <summary>Shmem pages held in swap slots rather than frames.</summary>
    public int SwappedPages => swapSlots.Count;

    /// <summary>
    /// The frame holding page <paramref name="pageIndex"/> of <paramref name="file"/>: read from the
    /// file on first use (bytes past the end of file are zero), or from swap for a shmem page swapped
    /// out (the read charged to <paramref name="cost"/>).
    /// </summary>
    public bool TryGetFrame(IMappableFile file, long pageIndex, out ulong frameNumber, ICostSink? cost)
    {
        var key = (file, pageIndex);
        if (frames.TryGetValue(key, out frameNumber))
            return true;
        if (TryGetHugeFolio(file, pageIndex, out ulong head))
        {
            frameNumber = head + (ulong)(pageIndex & IndexInFolioMask);
            return true;
        }
        var use = file is ShmemFile ? FrameUse.Shmem : FrameUse.PageCache;
        if (swapSlots.TryGetValue(key, out ulong slot))
        {
            if (!memory.TryAllocateCharged(use, cost, out frameNumber))
                return false;
            memory.Frames.SwapIn(SwapPte.Create(memory.Frames.Swap!.Type, slot), frameNumber, cost);
            memory.Guest.FrameWritten(frameNumber);
            swapSlots.Remove(key);
        }
        else
        {
            if (!memory.TryAllocateZeroed(use, out frameNumber, cost))
                return false;
            file.ReadAt(pageIndex << PagingConstants.PageBits, memory.FrameSpan(frameNumber));
        }
        frames.Add(key, frameNumber);
        keys.Add(frameNumber, key);
        memory.Frames.SetOwner(frameNumber, ownerId, 0);
        memory.Frames.AddToLru(frameNumber);
        return true;
    }

    /// <summary>HPAGE_PMD_NR - 1: a page's index inside its 2 MiB folio.</summary>
    const long IndexInFolioMask = Thp.ThpSettings.PtesPerPmd - 1;

    /// <summary>The head frame of the 2 MiB folio holding page <paramref name="pageIndex"/> of <paramref name="file"/>, if it is in one.</summary>
    public bool TryGetHugeFolio(IMappableFile file, long pageIndex, out ulong head) =>
        hugeFolios.TryGetValue((file, pageIndex & ~IndexInFolioMask), out head);

    /// <summary>What the cache holds for one page of a file (the collapse scan's view of the xarray).</summary>
    public CachedPage Find(IMappableFile file, long pageIndex, out ulong frameNumber)
    {
        frameNumber = 0;
        if (frames.TryGetValue((file, pageIndex), out frameNumber))
            return CachedPage.Present;
        if (TryGetHugeFolio(file, pageIndex, out ulong head))
        {
            frameNumber = head + (ulong)(pageIndex & IndexInFolioMask);
            return CachedPage.InHugeFolio;
        }
        return swapSlots.ContainsKey((file, pageIndex)) ? CachedPage.Swapped : CachedPage.None;
    }

    /// <summary>
    /// unmap_mapping_range: clears every mapping of pages [<paramref name="first"/>, <paramref name="end"/>) of
    /// <paramref name="file"/> in every address space (PTEs and huge PMDs, flushed); the cache keeps the pages.
    /// </summary>
    public void UnmapRange(IMappableFile file, long first, long end)
    {
        foreach (var space in memory.AddressSpaces)
        {
            foreach (var vma in space.Vmas.Where(v => v.File == file).ToList())
            {
                long vmaFirst = vma.FileOffset >> PagingConstants.PageBits, vmaEnd = vmaFirst + (long)(vma.Length >> PagingConstants.PageBits);
                long from = Math.Max(first, vmaFirst), to = Math.Min(end, vmaEnd);
                if (from < to)
                    space.ZapPages(vma.Start + ((ulong)(from - vmaFirst) << PagingConstants.PageBits), vma.Start + ((ulong)(to - vmaFirst) << PagingConstants.PageBits));
            }
        }
    }

    /// <summary>
    /// The last step of collapse_file: the 512 pages from <paramref name="first"/> (already copied into
    /// the block at <paramref name="head"/>, unmapped everywhere) leave the cache and free their frames;
    /// the huge folio takes their place, holding the cache's reference.
    /// </summary>
    public void ReplaceWithHugeFolio(IMappableFile file, long first, ulong head)
    {
        for (long index = first; index < first + Thp.ThpSettings.PtesPerPmd; index++)
        {
            if (!frames.Remove((file, index), out ulong frame))
                continue;
            keys.Remove(frame);
            memory.Frames.SetOwner(frame, 0, 0);
            memory.Release(frame);
        }
        AddHugeFolio(file, first, head);
    }

    void AddHugeFolio(IMappableFile file, long first, ulong head)
    {
        hugeFolios.Add((file, first), head);
        keys.Add(head, (file, first));
        memory.Frames.SetOwner(head, ownerId, 0);
        memory.Frames.AddToLru(head);
    }

    /// <summary>
    /// Adds a new zeroed 2 MiB folio for the 512 pages from <paramref name="first"/> (a huge fault); false
    /// when the cache already holds one of them (shmem_alloc_and_add_folio's -EEXIST: fall back to 4 KiB).
    /// </summary>
    public bool TryAddHugeFolio(IMappableFile file, long first, ulong head)
    {
        for (long index = first; index < first + Thp.ThpSettings.PtesPerPmd; index++)
        {
            if (Find(file, index, out _) != CachedPage.None)
                return false;
        }
        AddHugeFolio(file, first, head);
        return true;
    }

    /// <summary>
    /// split_folio for a shmem folio: unmaps it everywhere (a huge folio is only PMD-mapped), then its 512
    /// frames become 4 KiB cache pages on the LRU, each with the cache's reference.
    /// </summary>
    public void SplitHugeFolio(IMappableFile file, long pageIndex)
    {
        long first = pageIndex & ~IndexInFolioMask;
        if (!hugeFolios.TryGetValue((file, first), out ulong head))
            return;
        UnmapRange(file, first, first + Thp.ThpSettings.PtesPerPmd);
        hugeFolios.Remove((file, first));
        keys.Remove(head);
        memory.Frames.SplitBlock(head);
        for (long i = 0; i < Thp.ThpSettings.PtesPerPmd; i++)
        {
            ulong frame = head + (ulong)i;
            if (i > 0)
                memory.Page(frame).RefCount = 1; // the head kept the cache's reference; each other page gets its own
            frames.Add((file, first + i), frame);
            keys.Add(frame, (file, first + i));
            memory.Frames.AddToLru(frame);
        }
    }

    /// <summary>
    /// MADV_REMOVE (shmem_fallocate's hole punch): unmaps pages [<paramref name="first"/>, <paramref name="end"/>)
    /// everywhere and drops them and their swap slots; a huge folio partly inside is split first. The next
    /// touch reads zeroes.
    /// </summary>
    public void PunchHole(ShmemFile file, long first, long end)
    {
        foreach (long folio in (ReadOnlySpan<long>)[first & ~IndexInFolioMask, (end - 1) & ~IndexInFolioMask])
        {
            if (hugeFolios.ContainsKey((file, folio)) && (folio < first || folio + Thp.ThpSettings.PtesPerPmd > end))
                SplitHugeFolio(file, folio);
        }
        UnmapRange(file, first, end);
        Drop(file, key => key >= first && key < end);
    }

    /// <summary>Drops the pages, huge folios and swap slots of <paramref name="file"/> whose index <paramref name="selected"/> picks (they must be unmapped).</summary>
    void Drop(IMappableFile file, Func<long, bool> selected)
    {
        foreach (var key in frames.Keys.Where(key => key.File == file && selected(key.PageIndex)).ToList())
        {
            frames.Remove(key, out ulong frame);
            keys.Remove(frame);
            memory.Frames.SetOwner(frame, 0, 0);
            memory.Release(frame);
        }
        foreach (var key in hugeFolios.Keys.Where(key => key.File == file && selected(key.PageIndex)).ToList())
        {
            hugeFolios.Remove(key, out ulong head);
            keys.Remove(head);
            memory.Frames.SetOwner(head, 0, 0);
            if (--memory.Page(head).RefCount == 0)
                memory.FreeBlock(head, BuddyAllocator.PageblockOrder);
        }
        foreach (var key in swapSlots.Keys.Where(key => key.File == file && selected(key.PageIndex)).ToList())
        {
            swapSlots.Remove(key, out ulong slot);
            memory.Frames.Swap!.Release(slot);
        }
    }

    /// <summary>Pages of <paramref name="file"/> in [<paramref name="first"/>, <paramref name="end"/>) held in swap (smaps' Swap of a shmem VMA).</summary>
    public long SwappedPagesOf(IMappableFile file, long first, long end) =>
        swapSlots.Keys.Count(key => key.File == file && key.PageIndex >= first && key.PageIndex < end);

    /// <summary>
    /// Frees every page and swap slot of a shmem object once no VMA maps it any more (the last fput of
    /// the shmem file: shmem_evict_inode truncating it). Nothing happens while a mapping remains.
    /// </summary>
    public void ReleaseIfUnmapped(ShmemFile file)
    {
        foreach (var space in memory.AddressSpaces)
        {
            if (space.Vmas.Any(vma => vma.File == file))
                return;
        }
        Drop(file, _ => true);
    }

    /// <summary>
    /// Fragments free memory as <see cref="Fragmentation.Apply"/> does and takes the clean page-cache
    /// pages it scatters into the cache, so that compaction can move them and reclaim can drop them.
    /// </summary>
    public FragmentationResult Fragment(FragmentationOptions options)
    {
        var result = Fragmentation.Apply(memory.Frames, options, ownerId);
        foreach (ulong frame in result.PageCacheFrames)
        {
            var key = (SystemFiles, (long)memory.Page(frame).OwnerIndex);
            frames.Add(key, frame);
            keys.Add(frame, key);
        }
        return result;
    }

    /// <summary>References beyond the cache's own and the mappings' (a fault copying from it): the page must stay put.</summary>
    bool IsInUse(ulong frame)
    {
        ref var page = ref memory.Page(frame);
        return page.RefCount != page.MapCount + 1;
    }

    /// <inheritdoc/>
    public bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame)
    {
        if (IsInUse(newFrame) || !keys.Remove(oldFrame, out var key))
            return false;
        foreach (var (space, page) in Mappings(key))
            space.RemapFrame(page, oldFrame, newFrame);
        keys.Add(newFrame, key);
        frames[key] = newFrame;
        memory.Guest.FrameWritten(newFrame);
        return true;
    }

    /// <summary>
    /// Reclaim of a cached page: a guest file's page is dropped (<paramref name="swapPte"/> is none), a
    /// shmem page's contents are already in <paramref name="swapPte"/>'s slot, which the cache keeps.
    /// Either way every mapping PTE is cleared: the next fault finds the page through the cache.
    /// </summary>
    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        if (IsInUse(frame) || !keys.TryGetValue(frame, out var key) || (key.File is ShmemFile) == (swapPte == SwapPte.None))
            return false;
        keys.Remove(frame);
        foreach (var (space, page) in Mappings(key))
            space.UnmapEvictedFrame(page, frame, SwapPte.None);
        frames.Remove(key);
        if (swapPte != SwapPte.None)
            swapSlots.Add(key, swapPte.Offset);
        return true;
    }

    /// <summary>
    /// folio_referenced for a cached page: the accessed bits of every PTE (or, for a huge shmem folio,
    /// every PMD) that maps it, through the file's reverse map.
    /// </summary>
    public PageReferences TestAndClearYoung(ulong index, ulong frame)
    {
        var references = default(PageReferences);
        ref var page = ref memory.Page(frame);
        if ((page.MapCount == 0 && page.EntireMapCount == 0) || !keys.TryGetValue(frame, out var key))
            return references;
        bool huge = page.Order != 0;
        foreach (var (space, linear) in Mappings(key))
            references += huge ? space.TestAndClearYoungFolio(linear, frame) : space.TestAndClearYoungPte(linear, frame);
        return references;
    }

    /// <summary>Reclaim takes a huge shmem folio: split it (unmapped everywhere first) so its pages can go to swap one by one.</summary>
    public bool TrySplitHuge(ulong index, ulong headFrame)
    {
        if (!keys.TryGetValue(headFrame, out var key) || !hugeFolios.ContainsKey(key))
            return false;
        SplitHugeFolio(key.File, key.PageIndex);
        return true;
    }

    /// <summary>
    /// Clears every PTE mapping the cached page in <paramref name="frame"/> (try_to_unmap); the page stays
    /// cached. Reclaim of a shmem page does this before writing it to swap, so it happens even when the
    /// write cannot be done.
    /// </summary>
    public void UnmapPage(ulong frame)
    {
        if (!keys.TryGetValue(frame, out var key))
            return;
        foreach (var (space, page) in Mappings(key))
            space.UnmapEvictedFrame(page, frame, SwapPte.None);
    }

    /// <summary>Every (address space, page) whose VMA maps <paramref name="key"/>'s file page (vma_interval_tree_foreach).</summary>
    IEnumerable<(AddressSpace Space, ulong Page)> Mappings((IMappableFile File, long PageIndex) key)
    {
        long offset = key.PageIndex << PagingConstants.PageBits;
        foreach (var space in memory.AddressSpaces)
        {
            foreach (var vma in space.Vmas)
            {
                if (vma.File != key.File || offset < vma.FileOffset || offset - vma.FileOffset >= (long)vma.Length)
                    continue;
                yield return (space, vma.Start + (ulong)(offset - vma.FileOffset));
            }
        }
    }
}
