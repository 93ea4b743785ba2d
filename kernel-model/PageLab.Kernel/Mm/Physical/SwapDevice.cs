using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// A swap area of 4 KiB slots with a use count per slot (Linux's swap_map: fork shares an entry,
/// each PTE holding it counts once). Slot 0 holds the swap header in Linux and is never handed out,
/// so offsets start at 1 as they do there. Contents live in host memory, allocated per slot on first use.
/// </summary>
public sealed class SwapDevice
{
    const int SlotSize = (int)PagingConstants.PageSize;

    readonly byte[] useCounts;
    readonly byte[]?[] contents;
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
    }

    /// <summary>Swap type in the PTEs.</summary>
    public int Type { get; }

    /// <summary>Usable slots (the header slot excluded), as /proc/swaps counts pages.</summary>
    public ulong TotalSlots => (ulong)useCounts.Length - 1;

    /// <summary>Slots in use.</summary>
    public ulong UsedSlots { get; private set; }

    /// <summary>True when at least one slot is free.</summary>
    public bool HasFreeSlot => UsedSlots < TotalSlots;

    /// <summary>Writes one page to a free slot (use count 1); false when the device is full.</summary>
    public bool TryStore(ReadOnlySpan<byte> page, out ulong offset)
    {
        if (page.Length != SlotSize)
            throw new ArgumentException("a swap slot holds exactly one 4 KiB page", nameof(page));
        offset = 0;
        if (!HasFreeSlot) return false;
        // Next fit from the last slot handed out, as Linux's scan_swap_map walks forward from a cluster cursor.
        ulong slots = (ulong)useCounts.Length;
        while (useCounts[cursor] != 0)
            cursor = cursor + 1 == slots ? 1 : cursor + 1;
        offset = cursor;
        useCounts[offset] = 1;
        UsedSlots++;
        page.CopyTo(contents[offset] ??= GC.AllocateUninitializedArray<byte>(SlotSize));
        return true;
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
            UsedSlots--;
    }

    /// <summary>PTEs holding the entry at <paramref name="offset"/> (0 when free).</summary>
    public int UseCount(ulong offset) => offset == 0 || offset >= (ulong)useCounts.Length ? 0 : useCounts[offset];

    void CheckInUse(ulong offset)
    {
        if (UseCount(offset) == 0)
            throw new InvalidOperationException($"swap slot {offset} of type {Type} is not in use");
    }
}
