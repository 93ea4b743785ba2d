namespace PageLab.Emulator.Paging;

/// <summary>Architecture constants of IA-32e paging (Intel SDM Vol. 3A, 4.5), each derived from the one before.</summary>
public static class PagingConstants
{
    /// <summary>A 4 KiB page: the offset within it is 12 bits.</summary>
    public const int PageBits = 12;
    public const ulong PageSize = 1UL << PageBits;
    public const ulong PageMask = PageSize - 1;

    /// <summary>A table holds 512 eight-byte entries: each level translates 9 bits.</summary>
    public const int LevelBits = 9;
    public const int EntriesPerTable = 1 << LevelBits;
    public const int EntrySize = 8;

    /// <summary>A PDE leaf maps 12 + 9 = 21 bits: 2 MiB.</summary>
    public const int LargePageBits = PageBits + LevelBits;
    public const ulong LargePageSize = 1UL << LargePageBits;
    public const ulong LargePageMask = LargePageSize - 1;

    /// <summary>A PDPTE leaf maps 12 + 2 * 9 = 30 bits: 1 GiB.</summary>
    public const int HugePageBits = PageBits + 2 * LevelBits;
    public const ulong HugePageSize = 1UL << HugePageBits;
    public const ulong HugePageMask = HugePageSize - 1;

    /// <summary>4 levels * 9 + 12 = 48-bit linear addresses; 5 levels (CR4.LA57) give 57.</summary>
    public const int LinearBits4Level = 4 * LevelBits + PageBits;
    public const int LinearBits5Level = 5 * LevelBits + PageBits;

    /// <summary>The architectural maximum of MAXPHYADDR.</summary>
    public const int MaxPhysicalAddressBitsLimit = 52;
}

/// <summary>Sizes a leaf entry can map.</summary>
public enum PageSize : byte
{
    Size4K = 0,
    Size2M = 1,
    Size1G = 2,
}

/// <summary>Helpers on <see cref="PageSize"/>.</summary>
public static class PageSizeExtensions
{
    /// <summary>12, 21 or 30: each size up adds one level of 9 bits (computed, not switched: it is on the TLB lookup path).</summary>
    public static int Bits(this PageSize size) => PagingConstants.PageBits + (int)size * PagingConstants.LevelBits;

    public static ulong Bytes(this PageSize size) => 1UL << size.Bits();

    public static string Name(this PageSize size) => size switch
    {
        PageSize.Size4K => "4K",
        PageSize.Size2M => "2M",
        _ => "1G",
    };
}

/// <summary>The paging-structure levels, leaf level first, as the SDM numbers them.</summary>
public enum PagingLevel : byte
{
    /// <summary>Page table: PTEs map 4 KiB pages.</summary>
    PageTable = 1,
    /// <summary>Page directory: PDEs reference a page table or map 2 MiB.</summary>
    PageDirectory = 2,
    /// <summary>Page-directory-pointer table: PDPTEs reference a directory or map 1 GiB.</summary>
    Pdpt = 3,
    /// <summary>PML4 table.</summary>
    Pml4 = 4,
    /// <summary>PML5 table (CR4.LA57).</summary>
    Pml5 = 5,
}

/// <summary>The kind of a linear-address access.</summary>
public enum AccessKind : byte
{
    Read = 0,
    Write = 1,
    Fetch = 2,
}
