using System.Diagnostics;

namespace PageLab.Emulator.Paging;

/// <summary>
/// One 8-byte IA-32e paging-structure entry (PML5E, PML4E, PDPTE, PDE or PTE), read from or
/// written to emulated physical memory. Bit positions follow Intel SDM Vol. 3A, tables 4-15..4-20.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly struct PageTableEntry : IEquatable<PageTableEntry>
{
    public const ulong PresentBit = 1UL << 0;
    public const ulong WritableBit = 1UL << 1;
    public const ulong UserBit = 1UL << 2;
    public const ulong WriteThroughBit = 1UL << 3;
    public const ulong CacheDisableBit = 1UL << 4;
    public const ulong AccessedBit = 1UL << 5;
    public const ulong DirtyBit = 1UL << 6;
    /// <summary>PS in a PDPTE/PDE (maps a page); PAT in a PTE.</summary>
    public const ulong PageSizeBit = 1UL << 7;
    public const ulong GlobalBit = 1UL << 8;
    /// <summary>PAT bit of a 2 MiB / 1 GiB leaf.</summary>
    public const ulong LargePatBit = 1UL << 12;
    public const int ProtectionKeyShift = 59;
    public const ulong ProtectionKeyMask = 0xFUL << ProtectionKeyShift;
    public const ulong ExecuteDisableBit = 1UL << 63;
    /// <summary>Bits 51:12 can hold a physical address (MAXPHYADDR is at most 52).</summary>
    public const ulong AddressMask52 = 0x000F_FFFF_FFFF_F000UL;

    public PageTableEntry(ulong raw) => Raw = raw;

    public ulong Raw { get; }

    public bool IsPresent => (Raw & PresentBit) != 0;
    public bool IsWritable => (Raw & WritableBit) != 0;
    public bool IsUser => (Raw & UserBit) != 0;
    public bool IsAccessed => (Raw & AccessedBit) != 0;
    public bool IsDirty => (Raw & DirtyBit) != 0;
    /// <summary>PS: in a PDPTE or PDE the entry maps a 1 GiB / 2 MiB page instead of referencing a table.</summary>
    public bool IsLargePage => (Raw & PageSizeBit) != 0;
    public bool IsGlobal => (Raw & GlobalBit) != 0;
    public bool IsExecuteDisable => (Raw & ExecuteDisableBit) != 0;
    public int ProtectionKey => (int)((Raw & ProtectionKeyMask) >> ProtectionKeyShift);

    /// <summary>Physical address held in bits 51:12 (of a table, or of a 4 KiB page).</summary>
    public ulong Address => Raw & AddressMask52;

    /// <summary>Physical frame number held in bits 51:12.</summary>
    public ulong FrameNumber => Address >> PagingConstants.PageBits;

    public PageTableEntry With(ulong bits) => new(Raw | bits);
    public PageTableEntry Without(ulong bits) => new(Raw & ~bits);
    public PageTableEntry WithAddress(ulong physicalAddress) => new((Raw & ~AddressMask52) | (physicalAddress & AddressMask52));

    /// <summary>An entry that references the next table: present, writable, user; permissions are decided at the leaf.</summary>
    public static PageTableEntry Table(ulong tablePhysicalAddress) =>
        new((tablePhysicalAddress & AddressMask52) | PresentBit | WritableBit | UserBit);

    public bool Equals(PageTableEntry other) => Raw == other.Raw;
    public override bool Equals(object? obj) => obj is PageTableEntry e && Equals(e);
    public override int GetHashCode() => Raw.GetHashCode();
    public static bool operator ==(PageTableEntry a, PageTableEntry b) => a.Raw == b.Raw;
    public static bool operator !=(PageTableEntry a, PageTableEntry b) => a.Raw != b.Raw;

    /// <summary>Bochs-style flag string, upper case when set: e.g. "0x1234000 XD pk0 G PS D A pcd pwt U W P".</summary>
    public override string ToString()
    {
        if (Raw == 0) return "0x0 (none)";
        static string F(bool on, string name) => on ? name.ToUpperInvariant() : name.ToLowerInvariant();
        return $"0x{Address:x} {F(IsExecuteDisable, "xd")} pk{ProtectionKey} {F(IsGlobal, "g")} {F(IsLargePage, "ps")} " +
               $"{F(IsDirty, "d")} {F(IsAccessed, "a")} {F((Raw & CacheDisableBit) != 0, "pcd")} {F((Raw & WriteThroughBit) != 0, "pwt")} " +
               $"{F(IsUser, "u")} {F(IsWritable, "w")} {F(IsPresent, "p")}";
    }
}
