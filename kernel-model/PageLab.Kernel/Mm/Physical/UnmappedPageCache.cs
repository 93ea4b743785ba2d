namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// Clean page cache of files no process maps (what a long-running machine accumulates): the owner of
/// the page-cache pages <see cref="Fragmentation.Apply"/> scatters. With no PTE to rewrite, compaction
/// may always move such a page (the allocator copies it) and reclaim may always drop it.
/// </summary>
public sealed class UnmappedPageCache : IPageOwner
{
    /// <summary>Pages dropped by reclaim so far.</summary>
    public long Dropped { get; private set; }

    /// <summary>Pages moved by compaction so far.</summary>
    public long Migrated { get; private set; }

    public bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame)
    {
        Migrated++;
        return true;
    }

    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        Dropped++;
        return true;
    }
}
