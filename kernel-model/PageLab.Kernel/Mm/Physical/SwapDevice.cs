using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// A swap area of 4 KiB slots with a use count per slot (Linux's swap_map: fork shares an entry,
/// each PTE holding it counts once). Slot 0 holds the swap header in Linux and is never handed out,
/// so offsets start at 1 as they do there. Contents live in host memory, allocated per slot on first use.
/// Slots are grouped in aligned clusters of <see cref="ClusterSlots"/> (Linux's SWAPFILE_CLUSTER, which is
/// HPAGE_PMD_NR with THP_SWAP), so that a whole THP can be written to one free cluster
/// (<see cref="TryStoreCluster"/>). Single pages fill partly used clusters before they break into a free
/// one, as the 6.18 allocator takes order-0 slots from its nonfull cluster lists first; without that, single
/// pages spread over every cluster and no THP could be swapped whole.
/// </summary>
public sealed class SwapDevice
{
    const int SlotSize = (int)PagingConstants.PageSize;

    /// <summary>Slots per cluster: 512, one PMD-sized THP.</summary>
    public const int ClusterSlots = 1 << (PagingConstants.LargePageBits - PagingConstants.PageBits);

    readonly byte[] useCounts;
    readonly byte[]?[] contents;
    /// <summary>Slots in use per cluster (the header counts in cluster 0, which is therefore never free).</summary>
    readonly ushort[] clusterUsage;
    /// <summary>The cluster single pages are taken from while it has room (Linux's per-CPU cluster), and the next-fit cursor in it.</summary>
    int currentCluster;
    ulong cursor = 1;

    /// <param name="type">Swap type (device index) written into swap PTEs, 0..31.</param>
    /// <param name="sizeBytes">Size of the area; a multiple of 4 KiB, at least two slots (header + one).</param>
    public SwapDevice(int type, ulong sizeBytes)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)type, (uint)SwapPte.MaxType, nameof(type));
        ulong slots = sizeBytes / PagingConstants.PageSize;
        if (slots < 2 || slots > int.MaxValue || sizeBytes % PagingConstants.PageSize != 0)
            throw new ArgumentOutOfRangeException(nameof(sizeBytes), sizeBytes, "swap size must be a multiple of 4 KiB with at least two slots");
        Type = type;
        useCounts = new byte[slots];
        contents = new byte[]?[slots];
        useCounts[0] = byte.MaxValue; // the header
        clusterUsage = new ushort[(slots + ClusterSlots - 1) / ClusterSlots];
        clusterUsage[0] = 1;
    }

    /// <summary>Swap type in the PTEs.</summary>
    public int Type { get; }

    /// <summary>Usable slots (the header slot excluded), as /proc/swaps counts pages.</summary>
    public ulong TotalSlots => (ulong)useCounts.Length - 1;

    /// <summary>Slots in use.</summary>
    public ulong UsedSlots { get; private set; }

    /// <summary>True when at least one slot is free.</summary>
    public bool HasFreeSlot => UsedSlots < TotalSlots;

    /// <summary>
    /// Writes one page to a free slot (use count 1); false when the device is full. The slot comes from the
    /// cluster of the last one handed out while it has room, else from the first partly used cluster, else
    /// from the first free one (Linux's per-CPU cluster, then its nonfull list, then its free list).
    /// </summary>
    public bool TryStore(ReadOnlySpan<byte> page, out ulong offset)
    {
        if (page.Length != SlotSize)
            throw new ArgumentException("a swap slot holds exactly one 4 KiB page", nameof(page));
        offset = 0;
        if (!HasFreeSlot) return false;
        if (!HasRoom(currentCluster))
            currentCluster = FirstPartlyUsedCluster() ?? FirstFreeCluster(whole: false)!.Value;
        // Next fit inside the cluster: from the cursor when it points into it, wrapping to the cluster's start.
        ulong first = (ulong)currentCluster * ClusterSlots, end = Math.Min(first + ClusterSlots, (ulong)useCounts.Length);
        ulong slot = cursor >= first && cursor < end ? cursor : first;
        while (useCounts[slot] != 0)
            slot = slot + 1 == end ? first : slot + 1;
        offset = slot;
        cursor = slot + 1;
        Take(offset, page);
        return true;
    }

    /// <summary>
    /// Writes a whole THP (<see cref="ClusterSlots"/> pages) to the first free cluster, slot i holding page
    /// i (Linux's THP_SWAP: one swap entry per 4 KiB page, all in one cluster); false when no cluster is
    /// wholly free, and the caller splits the THP and swaps its pages one by one.
    /// </summary>
    public bool TryStoreCluster(ReadOnlySpan<byte> pages, out ulong firstOffset)
    {
        if (pages.Length != SlotSize * ClusterSlots)
            throw new ArgumentException("a swap cluster holds exactly one 2 MiB THP", nameof(pages));
        firstOffset = 0;
        if (FirstFreeCluster(whole: true) is not { } cluster)
            return false;
        firstOffset = (ulong)cluster * ClusterSlots;
        for (int i = 0; i < ClusterSlots; i++)
            Take(firstOffset + (ulong)i, pages.Slice(i * SlotSize, SlotSize));
        return true;
    }

    /// <summary>Clusters with every slot free (a THP can be swapped whole while this is not 0).</summary>
    public int FreeClusters
    {
        get
        {
            int free = 0;
            for (int cluster = 0; cluster < clusterUsage.Length; cluster++)
            {
                if (clusterUsage[cluster] == 0 && IsWholeCluster(cluster))
                    free++;
            }
            return free;
        }
    }

    bool IsWholeCluster(int cluster) => (ulong)(cluster + 1) * ClusterSlots <= (ulong)useCounts.Length;

    bool HasRoom(int cluster) =>
        clusterUsage[cluster] < Math.Min(ClusterSlots, useCounts.Length - cluster * ClusterSlots);

    /// <summary>The first cluster that is partly used and still has a free slot.</summary>
    int? FirstPartlyUsedCluster()
    {
        for (int cluster = 0; cluster < clusterUsage.Length; cluster++)
        {
            if (clusterUsage[cluster] != 0 && HasRoom(cluster))
                return cluster;
        }
        return null;
    }

    /// <summary>The first cluster with no slot in use; with <paramref name="whole"/>, only one of the full 512 slots.</summary>
    int? FirstFreeCluster(bool whole)
    {
        for (int cluster = 0; cluster < clusterUsage.Length; cluster++)
        {
            if (clusterUsage[cluster] == 0 && (!whole || IsWholeCluster(cluster)))
                return cluster;
        }
        return null;
    }

    void Take(ulong offset, ReadOnlySpan<byte> page)
    {
        useCounts[offset] = 1;
        clusterUsage[offset / ClusterSlots]++;
        UsedSlots++;
        page.CopyTo(contents[offset] ??= GC.AllocateUninitializedArray<byte>(SlotSize));
    }

    /// <summary>Reads the page stored at <paramref name="offset"/> (a swap-in).</summary>
    public void Load(ulong offset, Span<byte> page)
    {
        CheckInUse(offset);
        contents[offset].AsSpan().CopyTo(page);
    }

    /// <summary>One more PTE holds the entry (fork copying a swap PTE: swap_duplicate).</summary>
    public void Duplicate(ulong offset)
    {
        CheckInUse(offset);
        if (useCounts[offset] == byte.MaxValue - 1)
            throw new InvalidOperationException($"swap slot {offset} is shared by too many PTEs");
        useCounts[offset]++;
    }

    /// <summary>A PTE stopped holding the entry; the slot is free when the last one goes (swap_free).</summary>
    public void Release(ulong offset)
    {
        CheckInUse(offset);
        if (--useCounts[offset] == 0)
        {
            UsedSlots--;
            clusterUsage[offset / ClusterSlots]--;
        }
    }

    /// <summary>PTEs holding the entry at <paramref name="offset"/> (0 when free).</summary>
    public int UseCount(ulong offset) => offset == 0 || offset >= (ulong)useCounts.Length ? 0 : useCounts[offset];

    void CheckInUse(ulong offset)
    {
        if (UseCount(offset) == 0)
            throw new InvalidOperationException($"swap slot {offset} of type {Type} is not in use");
    }
}
