using CsCheck;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

public sealed class SwapTests
{
    [Fact]
    public void SwapPte_EncodesLikeLinuxAfterL1tf_TypeOnTopAndTheOffsetInverted()
    {
        // __swp_entry(0, 1): ~1 << 14 >> 5 sets bits 10..58; bit 9 (offset bit 0) is the inverted 1.
        Assert.Equal(0x07FF_FFFF_FFFF_FC00UL, SwapPte.Create(0, 1).Raw);
        // Offset 0 inverts to all ones in bits 9..58, under type 3 in bits 63..59.
        Assert.Equal(0x1FFF_FFFF_FFFF_FE00UL, SwapPte.Create(3, 0).Raw);
        Assert.Equal(1UL << 59, SwapPte.Create(1, SwapPte.MaxOffset).Raw);
    }

    [Fact]
    public void SwapPte_RoundTripsEveryTypeAndOffset()
    {
        PropertyRuns.ForEach(Gen.Select(Gen.Int[0, SwapPte.MaxType], Gen.ULong[0, SwapPte.MaxOffset], Gen.Bool, Gen.Bool), 500, test =>
        {
            var (type, offset, exclusive, softDirty) = test;
            var pte = SwapPte.Create(type, offset, exclusive, softDirty);
            Assert.Equal(type, pte.Type);
            Assert.Equal(offset, pte.Offset);
            Assert.Equal(exclusive, pte.IsExclusive);
            Assert.Equal(softDirty, pte.IsSoftDirty);
            Assert.True(SwapPte.IsSwapEntry(pte.Raw) || pte.Raw == 0);
            var entry = new PageTableEntry(pte.Raw);
            Assert.False(entry.IsPresent);
            Assert.False(entry.IsLargePage);
            Assert.False(entry.IsGlobal);
            Assert.False(entry.IsAccessed);
            Assert.False(entry.IsDirty);
        });
    }

    [Fact]
    public void SwapPte_WithASmallOffset_PointsAboveAnyRealPhysicalAddress()
    {
        // The L1TF point of the inversion: a speculated "frame" lies beyond MAXPHYADDR (46 bits on the affected parts).
        var entry = new PageTableEntry(SwapPte.Create(0, 12345).Raw);
        Assert.True(entry.Address >= 1UL << 46, $"0x{entry.Address:x}");
    }

    [Theory]
    [InlineData(0UL, false)]                          // pte_none
    [InlineData(0x1234_5067UL, false)]                // present
    [InlineData(0x1234_5100UL, false)]                // PROT_NONE: not present to hardware, present to Linux
    [InlineData(0x07FF_FFFF_FFFF_FC00UL, true)]
    public void IsSwapEntry_IsNotNoneAndNotPresent(ulong raw, bool expected) => Assert.Equal(expected, SwapPte.IsSwapEntry(raw));

    [Fact]
    public void SwapDevice_NeverHandsOutTheHeaderSlot_AndFillsUp()
    {
        var device = new SwapDevice(0, 4 * 4096);
        var page = new byte[4096];
        var offsets = new List<ulong>();
        while (device.TryStore(page, out ulong offset))
            offsets.Add(offset);
        Assert.Equal([1UL, 2UL, 3UL], offsets);
        Assert.False(device.HasFreeSlot);
        device.Release(2);
        Assert.True(device.TryStore(page, out ulong reused));
        Assert.Equal(2UL, reused);
    }

    [Fact]
    public void SwapDevice_SlotSharedByForkIsFreedByItsLastUser()
    {
        var device = new SwapDevice(0, 8 * 4096);
        var page = new byte[4096];
        page[17] = 0x5A;
        Assert.True(device.TryStore(page, out ulong offset));
        device.Duplicate(offset);
        Assert.Equal(2, device.UseCount(offset));

        device.Release(offset);
        var back = new byte[4096];
        device.Load(offset, back);
        Assert.Equal(0x5A, back[17]);
        device.Release(offset);

        Assert.Equal(0UL, device.UsedSlots);
        Assert.Throws<InvalidOperationException>(() => device.Load(offset, back));
    }
}
