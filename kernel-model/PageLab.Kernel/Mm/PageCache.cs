using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>
/// The page cache: one frame per cached file page, holding one reference of its own, owned (for
/// compaction and reclaim) through Linux's file reverse map: every VMA of every address space that
/// maps the file at that offset (the i_mmap walk). Pages are clean (the model has no writable shared
/// file mappings), so reclaim drops them; the next fault reads the file again.
/// </summary>
public sealed class PageCache : IPageOwner
{
    readonly KernelMemory memory;
    readonly Dictionary<(IMappableFile File, long PageIndex), ulong> frames = [];
    readonly Dictionary<ulong, (IMappableFile File, long PageIndex)> keys = [];
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

    /// <summary>
    /// The frame holding page <paramref name="pageIndex"/> of <paramref name="file"/>, read from the
    /// file on first use (bytes past the end of file are zero).
    /// </summary>
    public bool TryGetFrame(IMappableFile file, long pageIndex, out ulong frameNumber, ICostSink? cost)
    {
        if (frames.TryGetValue((file, pageIndex), out frameNumber))
            return true;
        if (!memory.TryAllocateZeroed(FrameUse.PageCache, out frameNumber, cost))
            return false;
        file.ReadAt(pageIndex << PagingConstants.PageBits, memory.FrameSpan(frameNumber));
        frames.Add((file, pageIndex), frameNumber);
        keys.Add(frameNumber, (file, pageIndex));
        memory.Frames.SetOwner(frameNumber, ownerId, 0);
        memory.Frames.AddToLru(frameNumber);
        return true;
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

    /// <inheritdoc/>
    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        if (IsInUse(frame) || !keys.Remove(frame, out var key))
            return false;
        foreach (var (space, page) in Mappings(key))
            space.UnmapEvictedFrame(page, frame, swapPte);
        frames.Remove(key);
        return true;
    }

    /// <summary>folio_referenced for a cached page: the accessed bits of every PTE that maps it, through the file's reverse map.</summary>
    public PageReferences TestAndClearYoung(ulong index, ulong frame)
    {
        var references = default(PageReferences);
        if (memory.Page(frame).MapCount == 0 || !keys.TryGetValue(frame, out var key))
            return references;
        foreach (var (space, page) in Mappings(key))
            references += space.TestAndClearYoungPte(page, frame);
        return references;
    }

    /// <summary>The page cache holds no huge pages.</summary>
    public bool TrySplitHuge(ulong index, ulong headFrame) => false;

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
