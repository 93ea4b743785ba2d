using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PageLab.Emulator.Paging;

/// <summary>One TLB level: its arrays, and for each page size which array caches it at which size.</summary>
internal sealed unsafe class TlbLevel
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
        var probes = new List<TlbProbe>();
        for (int i = 0; i < Arrays.Length; i++)
            for (var size = PageSize.Size4K; size <= PageSize.Size1G; size++)
                if (Arrays[i].Holds(size)) probes.Add(Arrays[i].ProbeFor(size, i));
        probeStorage = GC.AllocateArray<TlbProbe>(probes.Count, pinned: true);
        probes.CopyTo(probeStorage);
        Probes = (TlbProbe*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(probeStorage));
    }

    readonly TlbProbe[] probeStorage;

    public TlbLevelConfig Config { get; }
    public TlbArray[] Arrays { get; }
    public TlbLevelKind Kind => Config.Kind;

    /// <summary>The searches a lookup makes: every array at every size it holds, smallest size first (pinned).</summary>
    public TlbProbe* Probes { get; }

    public int ProbeCount => probeStorage.Length;

    /// <summary>
    /// Searches every array at every size it holds, smallest first: after a page-size change both translations may be
    /// cached, and the SDM allows either to be used. Sizes an array holds no entry of are skipped: that search could
    /// not hit. Returns the probe that hit (-1 for none) and the entry's index in that probe's array.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Search(TlbProbe* probes, int count, ulong linear, ushort pcid, out int index)
    {
        for (int p = 0; p < count; p++)
        {
            if (*probes[p].ValidCount == 0) continue;
            index = probes[p].Find(linear, pcid);
            if (index >= 0) return p;
        }
        index = -1;
        return -1;
    }

    /// <summary>
    /// Where a translation of <paramref name="size"/> is cached: the array (null when this level holds no suitable
    /// size) and the size it is stored at (smaller when the level fractures the page).
    /// </summary>
    public TlbArrayState* FillTarget(PageSize size, out PageSize storedAs)
    {
        var (array, stored) = placement[(int)size];
        storedAs = stored;
        return array < 0 ? null : Arrays[array].State;
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
