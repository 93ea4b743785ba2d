using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>
/// MAP_SHARED|MAP_ANONYMOUS memory keeps its contents when MADV_DONTNEED unmaps its pages: Linux keeps
/// them in the shmem file behind the mapping and the next touch maps the same page again. The model has
/// no shmem file yet, so a discarded page of a shared anonymous VMA is retained here instead (unmapped,
/// unowned, so compaction and reclaim leave it alone) and the next fault at that address maps it again;
/// munmap releases it. Pages faulted after a fork in one process are still not seen by the other.
/// </summary>
public sealed partial class AddressSpace
{
    readonly Dictionary<ulong, ulong> retainedSharedPages = [];

    static bool IsSharedAnonymous(Vma vma) => vma.File is null && (vma.Flags & VmaFlags.Shared) != 0;

    /// <summary>MADV_DONTNEED's zap: private pages are freed; pages of shared anonymous VMAs are retained.</summary>
    public void DiscardPages(ulong start, ulong end)
    {
        foreach (var vma in vmas.Where(v => v.Start < end && v.End > start && IsSharedAnonymous(v)).ToList())
        {
            ulong from = Math.Max(start, vma.Start), to = Math.Min(end, vma.End);
            var flush = new FlushGather();
            Tables.VisitPtes(from, to, (linear, pteAddress) =>
            {
                var pte = Tables.Read(pteAddress);
                if (!pte.IsPresent || pte.FrameNumber == memory.ZeroFrame)
                    return;
                Tables.Write(pteAddress, default);
                flush.Add(linear);
                ref var page = ref memory.Page(pte.FrameNumber);
                page.MapCount--;
                if (page.Owner == OwnerId)
                    memory.Frames.SetOwner(pte.FrameNumber, 0, 0);
                ResidentPages--;
                retainedSharedPages[linear] = pte.FrameNumber; // keeps the mapping's reference
            });
            Flush(flush);
        }
        ZapPages(start, end);
    }

    /// <summary>A fault on a retained shared page maps it again; null when there is none.</summary>
    FaultOutcome? MapRetainedSharedPage(Vma vma, ulong page, ulong pteAddress)
    {
        if (!IsSharedAnonymous(vma) || !retainedSharedPages.Remove(page, out ulong frame))
            return null;
        memory.Page(frame).MapCount++;
        ResidentPages++;
        // Still on the LRU: only the owner changes back (a page of a THP has no owner of its own).
        if (memory.FolioOf(frame) == frame && memory.Page(frame).Order == 0)
            memory.Frames.SetOwner(frame, OwnerId, page >> PagingConstants.PageBits);
        Tables.Write(pteAddress, LeafEntry(frame, vma, writable: (vma.Protection & Protection.Write) != 0));
        return FaultOutcome.SharedPageMapped;
    }

    /// <summary>munmap: retained shared pages in the range go with the mapping.</summary>
    void ReleaseRetainedSharedPages(ulong start, ulong end)
    {
        foreach (ulong linear in retainedSharedPages.Keys.Where(a => a >= start && a < end).ToList())
        {
            retainedSharedPages.Remove(linear, out ulong frame);
            memory.Release(frame);
        }
    }
}
