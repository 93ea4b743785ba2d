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
        if ((tableRegion & PagingConstants.PageMask) != 0 || !memory.Contains(tableRegion, tableRegionSize))
            throw new ArgumentException($"the table region 0x{tableRegion:x}+0x{tableRegionSize:x} must be 4 KiB aligned and inside physical memory");
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
        // An unaligned frame would put address bits into the entry's flags (bit 12 of a large page is PAT).
        if ((physical & (size.Bytes() - 1)) != 0)
            throw new ArgumentException($"physical address 0x{physical:x} is not aligned to its {size} page", nameof(physical));
        ulong entryAddress = EntryAddress(linear, size switch
        {
            PageSize.Size4K => PagingLevel.PageTable,
            PageSize.Size2M => PagingLevel.PageDirectory,
            _ => PagingLevel.Pdpt,
        });
        ulong raw = (physical & PageTableEntry.AddressMask52) | leafBits;
        if (size != PageSize.Size4K) raw |= PageTableEntry.PageSizeBit;
        Write(entryAddress, new PageTableEntry(raw));
        return entryAddress;
    }

    /// <summary>Physical address of the entry at <paramref name="level"/> for <paramref name="linear"/>, creating the tables above it.</summary>
    public ulong EntryAddress(ulong linear, PagingLevel level)
    {
        var rootLevel = FiveLevel ? PagingLevel.Pml5 : PagingLevel.Pml4;
        if (level < PagingLevel.PageTable || level > rootLevel)
            throw new ArgumentOutOfRangeException(nameof(level), level, $"a {(FiveLevel ? 5 : 4)}-level table has no such level");
        ulong table = Root;
        for (var current = rootLevel; ; current--)
        {
            int shift = PagingConstants.PageBits + ((int)current - 1) * PagingConstants.LevelBits;
            ulong entryAddress = table + ((linear >> shift) & (PagingConstants.EntriesPerTable - 1)) * PagingConstants.EntrySize;
            if (current == level) return entryAddress;
            var entry = Read(entryAddress);
            if (!entry.IsPresent || entry.IsLargePage)
            {
                entry = new PageTableEntry(AllocateTable() | IntermediateBits);
                Write(entryAddress, entry);
            }
            table = entry.Address;
        }
    }

    /// <summary>The entry at <paramref name="entryAddress"/>; an address beyond memory (an entry pointing outside it) is an error.</summary>
    public PageTableEntry Read(ulong entryAddress)
    {
        if (memory.TryRead64(entryAddress, out ulong raw) != PhysicalAccessStatus.Ok) throw BeyondMemory(entryAddress);
        return new PageTableEntry(raw);
    }

    public void Write(ulong entryAddress, PageTableEntry entry)
    {
        if (memory.TryWrite64(entryAddress, entry.Raw) != PhysicalAccessStatus.Ok) throw BeyondMemory(entryAddress);
    }

    static InvalidOperationException BeyondMemory(ulong entryAddress) =>
        new($"page-table entry at 0x{entryAddress:x} lies beyond physical memory");
}
