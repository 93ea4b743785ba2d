using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace PageLab.Emulator.Paging;

/// <summary>
/// What a search of one TLB array at one page size needs, as raw pointers into the array's pinned storage: a lookup
/// reads this struct and then the set's tags, with no chain of object references to follow (on a TLB miss the
/// lookups of every level run back to back, and each dependent load would add its latency to the miss).
/// </summary>
internal unsafe struct TlbProbe
{
    /// <summary>The ways compared per block: one bit of a ulong match mask each.</summary>
    public const int BlockWays = 64;

    /// <summary>The array searched: its entries, replacement state and fill operation.</summary>
    public TlbArrayState* Array;
    public ulong* Tags;
    /// <summary>How many valid entries of <see cref="Size"/> the array holds: a search for a size with none cannot hit.</summary>
    public int* ValidCount;
    public int SetMask;
    /// <summary>log2 of the ways per set including padding ways (whose tags stay 0, never valid).</summary>
    public int StrideBits;
    public PageSize Size;
    /// <summary>The array's index in its level.</summary>
    public int ArrayIndex;

    /// <summary>
    /// The index of the entry translating <paramref name="linear"/> for <paramref name="pcid"/> (or a global entry), or -1.
    /// All ways of a set are compared at once, so no branch depends on which way holds the page.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Find(ulong linear, ushort pcid) => Find(Tags, SetMask, StrideBits, linear, Size, pcid);

    /// <summary>The search itself, for a probe or an array's own lookup.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Find(ulong* tags, int setMask, int strideBits, ulong linear, PageSize size, ushort pcid)
    {
        ulong tag = TlbTag.For(linear, size);
        int start = ((int)TlbTag.PageNumber(linear, size) & setMask) << strideBits;
        int stride = 1 << strideBits;
        int block = 0;
        do
        {
            ulong hits = BlockMatches(tags + start + block, Math.Min(stride, BlockWays), tag | TlbTag.Pcid(pcid), tag | TlbTag.GlobalBit);
            if (hits != 0) return start + block + BitOperations.TrailingZeroCount(hits);
            block += BlockWays;
        }
        while (block < stride);
        return -1;
    }

    /// <summary>Bit i set when way i of the block (<paramref name="ways"/>: 4 or a multiple of 8, at most 64) equals <paramref name="a"/> or <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong BlockMatches(ulong* block, int ways, ulong a, ulong b)
    {
        if (ways == 4)
        {
            var four = Vector256.Load(block);
            return (Vector256.Equals(four, Vector256.Create(a)) | Vector256.Equals(four, Vector256.Create(b))).ExtractMostSignificantBits();
        }
        ulong hits = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (int i = 0; i < ways; i += 8)
            {
                var eight = Vector512.Load(block + i);
                hits |= (Vector512.Equals(eight, Vector512.Create(a)) | Vector512.Equals(eight, Vector512.Create(b))).ExtractMostSignificantBits() << i;
            }
        }
        else
        {
            for (int i = 0; i < ways; i += 4)
            {
                var four = Vector256.Load(block + i);
                hits |= (Vector256.Equals(four, Vector256.Create(a)) | Vector256.Equals(four, Vector256.Create(b))).ExtractMostSignificantBits() << i;
            }
        }
        return hits;
    }
}

/// <summary>
/// The packed tag of a TLB entry, one ulong per way: bit 0 valid, bit 1 global, bits 2-3 page size, bits 4-15 PCID
/// (0 for global entries), bits 16-63 page number.
/// </summary>
internal static class TlbTag
{
    public const ulong ValidBit = 1;
    public const ulong GlobalBit = 2;
    public const int SizeShift = 2;
    public const int PcidShift = 4;
    public const int PageNumberShift = 16;
    public const ulong PcidMask = 0xFFFUL << PcidShift;
    /// <summary>Canonical addresses repeat bit 56 (or 47) above it, so the low 57 bits identify a page.</summary>
    public const ulong LinearMask = (1UL << PagingConstants.LinearBits5Level) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PageNumber(ulong linear, PageSize size) => (linear & LinearMask) >> size.Bits();

    /// <summary>The valid tag of <paramref name="linear"/>'s page at <paramref name="size"/>, without PCID or global bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong For(ulong linear, PageSize size) =>
        (PageNumber(linear, size) << PageNumberShift) | ((ulong)size << SizeShift) | ValidBit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pcid(ushort pcid) => (ulong)pcid << PcidShift;

    public static PageSize SizeOf(ulong tag) => (PageSize)((tag >> SizeShift) & 3);

    public static ushort PcidOf(ulong tag) => (ushort)((tag & PcidMask) >> PcidShift);
}
