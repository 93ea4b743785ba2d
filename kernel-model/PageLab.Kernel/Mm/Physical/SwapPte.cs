using System.Diagnostics;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// A non-present x86-64 PTE holding a swap entry, in the format of Linux since its L1TF mitigation
/// (arch/x86/include/asm/pgtable_64.h, kernel 4.18 and later, unchanged in 6.18):
/// <code>
///   bit   63..59   58..9      8   7   6   5   4   3   2   1   0
///         TYPE     ~OFFSET    0   0   x   x   x   E   F   SD  0(P)
/// </code>
/// The offset is stored inverted, so a small offset sets the high address bits: a CPU that speculates
/// through the non-present entry (L1 Terminal Fault) would see an address above MAXPHYADDR, not a real
/// frame. We chose this format, and not the pre-4.18 one (type in bits 13..9, offset above it, not
/// inverted), because it is what the 6.18 reference kernel writes and what a debugger user compares with.
/// Bits 8 (PROT_NONE marker) and 7 (PSE, which pmd_present also tests) stay 0 so the entry never looks
/// present; A and D (5, 6) are avoided because of an erratum that lets hardware set them on
/// non-present entries. Bits 1..3 carry soft-dirty, uffd-wp and anon-exclusive.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
public readonly struct SwapPte : IEquatable<SwapPte>
{
    /// <summary>Swap types (devices) fit in 5 bits: MAX_SWAPFILES_SHIFT.</summary>
    public const int TypeBits = 5;
    /// <summary>The type is in the top bits: 64 - 5 = 59.</summary>
    public const int TypeShift = 64 - TypeBits;
    /// <summary>The offset starts above the PROT_NONE bit (G, bit 8).</summary>
    public const int OffsetFirstBit = 9;
    /// <summary>The offset is encoded by shifting it all the way up and back down: 9 + 5 = 14.</summary>
    const int OffsetShift = OffsetFirstBit + TypeBits;
    /// <summary>59 - 9 = 50 offset bits.</summary>
    public const int OffsetBits = TypeShift - OffsetFirstBit;
    public const ulong MaxOffset = (1UL << OffsetBits) - 1;
    public const int MaxType = (1 << TypeBits) - 1;

    /// <summary>_PAGE_SWP_SOFT_DIRTY is _PAGE_RW (bit 1).</summary>
    public const ulong SoftDirtyBit = 1UL << 1;
    /// <summary>_PAGE_SWP_UFFD_WP is _PAGE_USER (bit 2).</summary>
    public const ulong UffdWriteProtectBit = 1UL << 2;
    /// <summary>_PAGE_SWP_EXCLUSIVE is _PAGE_PWT (bit 3): the anonymous page was exclusive to this mm.</summary>
    public const ulong ExclusiveBit = 1UL << 3;

    const ulong PresentBit = 1UL << 0;
    const ulong ProtNoneBit = 1UL << 8;

    /// <summary>No swap entry (raw value 0, which is also pte_none).</summary>
    public static SwapPte None => default;

    public SwapPte(ulong raw) => Raw = raw;

    /// <summary>The 8-byte PTE value.</summary>
    public ulong Raw { get; }

    /// <summary>Swap device index (bits 63..59).</summary>
    public int Type => (int)(Raw >> TypeShift);

    /// <summary>Slot within the device, decoded from the inverted bits 58..9.</summary>
    public ulong Offset => ~Raw << TypeBits >> OffsetShift;

    public bool IsSoftDirty => (Raw & SoftDirtyBit) != 0;
    public bool IsExclusive => (Raw & ExclusiveBit) != 0;

    /// <summary>Encodes a swap entry as Linux's __swp_entry followed by __swp_entry_to_pte does.</summary>
    public static SwapPte Create(int type, ulong offset, bool exclusive = false, bool softDirty = false)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)type, (uint)MaxType, nameof(type));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, MaxOffset);
        ulong raw = ((ulong)type << TypeShift) | (~offset << OffsetShift >> TypeBits);
        if (exclusive) raw |= ExclusiveBit;
        if (softDirty) raw |= SoftDirtyBit;
        return new SwapPte(raw);
    }

    /// <summary>
    /// True when a raw PTE holds a swap entry: not none (0) and not present, where present means P or
    /// the PROT_NONE marker (Linux's is_swap_pte: !pte_none &amp;&amp; !pte_present).
    /// </summary>
    public static bool IsSwapEntry(ulong rawPte) => rawPte != 0 && (rawPte & (PresentBit | ProtNoneBit)) == 0;

    public bool Equals(SwapPte other) => Raw == other.Raw;
    public override bool Equals(object? obj) => obj is SwapPte other && Equals(other);
    public override int GetHashCode() => Raw.GetHashCode();
    public static bool operator ==(SwapPte a, SwapPte b) => a.Raw == b.Raw;
    public static bool operator !=(SwapPte a, SwapPte b) => a.Raw != b.Raw;

    public override string ToString() => Raw == 0 ? "swp none" : $"swp type {Type} offset 0x{Offset:x}{(IsExclusive ? " excl" : "")}{(IsSoftDirty ? " sd" : "")} (0x{Raw:x16})";
}
