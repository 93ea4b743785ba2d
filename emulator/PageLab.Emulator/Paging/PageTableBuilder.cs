using PageLab.Emulator.Memory;

namespace PageLab.Emulator.Paging;

/// <summary>
/// Builds page-table states directly in physical memory, taking table frames from a bump region:
/// the machine-level tool behind tests, benchmarks and the inspection commands (the kernel model
/// has its own, allocator-backed page-table code). Writes entries only; invalidation is the caller's.
/// </summary>
public sealed class PageTableBuilder
{
    readonly PhysicalMemory memory;
    ulong nextFrame;
    readonly ulong frameLimit;

    /// <param name="memory">Where the tables live.</param>
    /// <param name="tableRegion">First physical address tables may be allocated at (4 KiB aligned).</param>
    /// <param name="tableRegionSize">Bytes available for tables.</param>
    /// <param name="fiveLevel">Build a PML5 root (CR4.LA57).</param>
    public PageTableBuilder(PhysicalMemory memory, ulong tableRegion, ulong tableRegionSize, bool fiveLevel = false)
    {
        this.memory = memory;
        nextFrame = tableRegion;
        frameLimit = tableRegion + tableRegionSize;
        FiveLevel = fiveLevel;
        Root = AllocateTable();
    }

    public bool FiveLevel { get; }

    /// <summary>Physical address of the root table, to be written to CR3.</summary>
    public ulong Root { get; }

    /// <summary>Table entries given to intermediate levels: present, writable, user, accessed (rights decided at the leaf).</summary>
    public ulong IntermediateBits { get; set; } = PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit;

    public ulong AllocateTable()
    {
        if (nextFrame + PagingConstants.PageSize > frameLimit)
            throw new InvalidOperationException("page-table region exhausted");
        ulong frame = nextFrame;
        nextFrame += PagingConstants.PageSize;
        memory.Span(frame, (int)PagingConstants.PageSize).Clear();
        return frame;
    }

    /// <summary>Maps one page of <paramref name="size"/>; <paramref name="leafBits"/> are the leaf's flag bits
    /// (Present, Writable, User, ...; PS is added for 2M/1G). Intermediate tables are created as needed.</summary>
    public ulong Map(ulong linear, ulong physical, PageSize size, ulong leafBits)
    {
        ulong entryAddress = EntryAddress(linear, size switch
        {
            PageSize.Size4K => PagingLevel.PageTable,
            PageSize.Size2M => PagingLevel.PageDirectory,
            _ => PagingLevel.Pdpt,
        });
        ulong raw = (physical & PageTableEntry.AddressMask52) | leafBits;
        if (size != PageSize.Size4K) raw |= PageTableEntry.PageSizeBit;
        memory.TryWrite64(entryAddress, raw);
        return entryAddress;
    }

    /// <summary>Physical address of the entry at <paramref name="level"/> for <paramref name="linear"/>, creating the tables above it.</summary>
    public ulong EntryAddress(ulong linear, PagingLevel level)
    {
        ulong table = Root;
        for (var current = FiveLevel ? PagingLevel.Pml5 : PagingLevel.Pml4; ; current--)
        {
            int shift = PagingConstants.PageBits + ((int)current - 1) * PagingConstants.LevelBits;
            ulong entryAddress = table + ((linear >> shift) & (PagingConstants.EntriesPerTable - 1)) * PagingConstants.EntrySize;
            if (current == level) return entryAddress;
            memory.TryRead64(entryAddress, out ulong raw);
            var entry = new PageTableEntry(raw);
            if (!entry.IsPresent || entry.IsLargePage)
            {
                ulong next = AllocateTable();
                entry = new PageTableEntry(next | IntermediateBits);
                memory.TryWrite64(entryAddress, entry.Raw);
            }
            table = entry.Address;
        }
    }

    public PageTableEntry Read(ulong entryAddress)
    {
        memory.TryRead64(entryAddress, out ulong raw);
        return new PageTableEntry(raw);
    }

    public void Write(ulong entryAddress, PageTableEntry entry) => memory.TryWrite64(entryAddress, entry.Raw);
}
