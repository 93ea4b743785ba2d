namespace PageLab.Emulator.Paging;

/// <summary>One TLB level: its arrays, and for each page size which array caches it at which size.</summary>
internal sealed class TlbLevel
{
    // For each PageSize: the array that caches translations of that size and the size it stores them
    // at (smaller when the level fractures, e.g. a 1G page held as 2M entries); array -1 = not cached.
    readonly (int Array, PageSize StoredAs)[] placement = new (int, PageSize)[3];

    public TlbLevel(TlbLevelConfig config, ulong seed)
    {
        Config = config;
        Arrays = config.Arrays.Select((a, i) => new TlbArray(a, config.Replacement, seed + (ulong)i)).ToArray();
        for (var size = PageSize.Size4K; size <= PageSize.Size1G; size++)
        {
            placement[(int)size] = (-1, size);
            for (var stored = size; stored >= PageSize.Size4K && placement[(int)size].Array < 0; stored--)
            {
                int array = Array.FindIndex(Arrays, a => a.Holds(stored));
                if (array >= 0) placement[(int)size] = (array, stored);
            }
        }
        var order = new List<(int Array, PageSize Size)>();
        for (int i = 0; i < Arrays.Length; i++)
            for (var size = PageSize.Size4K; size <= PageSize.Size1G; size++)
                if (Arrays[i].Holds(size)) order.Add((i, size));
        searchArrays = [.. order.Select(o => o.Array)];
        searchSizes = [.. order.Select(o => o.Size)];
    }

    // The (array, size) pairs a lookup probes, in order, as two plain arrays: the lookup runs on every access.
    readonly int[] searchArrays;
    readonly PageSize[] searchSizes;

    public TlbLevelConfig Config { get; }
    public TlbArray[] Arrays { get; }
    public TlbLevelKind Kind => Config.Kind;

    /// <summary>Searches every array at every size it holds, smallest first: after a page-size change
    /// both translations may be cached, and the SDM allows either to be used.</summary>
    public bool Lookup(ulong linear, ushort pcid, out int array, out int index, out PageSize size)
    {
        int[] arrays = searchArrays;
        PageSize[] sizes = searchSizes;
        for (int i = 0; i < arrays.Length && i < sizes.Length; i++)
        {
            int found = Arrays[arrays[i]].Find(linear, sizes[i], pcid);
            if (found >= 0)
            {
                array = arrays[i];
                index = found;
                size = sizes[i];
                return true;
            }
        }
        array = index = -1;
        size = default;
        return false;
    }

    /// <summary>Caches a translation of <paramref name="size"/>; returns the size stored, or null when this level holds no suitable size.</summary>
    public PageSize? Fill(ulong linear, PageSize size, ushort pcid, TlbEntryData entry, Func<ulong, nint> hostAddress)
    {
        var (array, stored) = placement[(int)size];
        if (array < 0) return null;
        if (stored != size)
        {
            ulong offset = linear & (size.Bytes() - 1) & ~(stored.Bytes() - 1);
            entry.PhysicalBase += offset;
            entry.HostBase = hostAddress(entry.PhysicalBase);
        }
        Arrays[array].Insert(linear, stored, pcid, entry);
        return stored;
    }

    public void InvalidateAddress(ulong linear, ushort pcid, bool includeGlobal)
    {
        foreach (var a in Arrays) a.InvalidateAddress(linear, pcid, includeGlobal);
    }

    public void InvalidateAll(ushort pcid, bool allPcids, bool includeGlobal)
    {
        foreach (var a in Arrays) a.InvalidateAll(pcid, allPcids, includeGlobal);
    }
}
