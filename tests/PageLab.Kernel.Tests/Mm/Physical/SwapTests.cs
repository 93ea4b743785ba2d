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

    [Fact]
    public void SwapDevice_StoresAThpInOneAlignedFreeCluster_PageIBeingSlotI()
    {
        const int Slots = SwapDevice.ClusterSlots;
        var device = new SwapDevice(0, 3UL * Slots * 4096);
        Assert.Equal(2, device.FreeClusters); // cluster 0 holds the header
        var thp = new byte[Slots * 4096];
        for (int i = 0; i < Slots; i++)
            thp[i * 4096] = (byte)(i + 1);

        Assert.True(device.TryStoreCluster(thp, out ulong first));

        Assert.Equal((ulong)Slots, first);
        Assert.Equal(1, device.FreeClusters);
        var page = new byte[4096];
        for (int i = 0; i < Slots; i++)
        {
            device.Load(first + (ulong)i, page);
            Assert.Equal((byte)(i + 1), page[0]);
        }
    }

    [Fact]
    public void SwapDevice_SinglePagesFillPartlyUsedClustersFirst_AndAThpFindsNoClusterOnceEachHasOneSlotTaken()
    {
        const int Slots = SwapDevice.ClusterSlots;
        var device = new SwapDevice(0, 3UL * Slots * 4096);
        var page = new byte[4096];
        // Single pages go to cluster 0 (partly used by the header) until it is full, leaving the others whole.
        for (int i = 1; i < Slots; i++)
        {
            Assert.True(device.TryStore(page, out ulong slot));
            Assert.True(slot < Slots);
        }
        Assert.Equal(2, device.FreeClusters);
        device.Release(5);
        Assert.True(device.TryStore(page, out ulong refill));
        Assert.Equal(5UL, refill);
        // Cluster 0 full: the next page breaks into cluster 1, the one after stays in it.
        Assert.True(device.TryStore(page, out ulong breaking));
        Assert.True(device.TryStore(page, out ulong following));
        Assert.Equal((ulong)Slots, breaking & ~(ulong)(Slots - 1));
        Assert.Equal((ulong)Slots, following & ~(ulong)(Slots - 1));
        Assert.Equal(1, device.FreeClusters);
        Assert.True(device.TryStoreCluster(new byte[Slots * 4096], out ulong thp));
        Assert.Equal(2UL * Slots, thp);

        Assert.Equal(0, device.FreeClusters);
        Assert.False(device.TryStoreCluster(new byte[Slots * 4096], out _));
        Assert.True(device.HasFreeSlot); // room for single pages, no cluster for a THP: reclaim splits it
    }
}
