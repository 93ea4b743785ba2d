using PageLab.Emulator.Memory;

namespace PageLab.Emulator.Tests.Memory;

public class PhysicalMemoryTests
{
    const ulong MiB = 1UL << 20;
    const ulong GiB = 1UL << 30;

    [Fact]
    public void SixtyFourGiB_CostNothingUntilReached_AndUntouchedMemoryReadsZero()
    {
        using var memory = new PhysicalMemory(64 * GiB);
        Assert.Equal(0UL, memory.BackedBytes);
        Assert.Equal(PhysicalAccessStatus.Ok, memory.TryRead64(40 * GiB, out ulong untouched));
        Assert.Equal(0UL, untouched);
        Assert.Equal(0UL, memory.BackedBytes); // a read reaches nothing

        Assert.Equal(PhysicalAccessStatus.Ok, memory.TryWrite64(64 * GiB - 8, 0x1122_3344_5566_7788));
        Assert.Equal(PhysicalAccessStatus.Ok, memory.TryRead64(64 * GiB - 8, out ulong last));
        Assert.Equal(0x1122_3344_5566_7788UL, last);
        Assert.Equal(PhysicalMemory.ChunkSize, memory.BackedBytes);

        memory.Span(3 * GiB, 4096)[17] = 5; // a frame handed out is reached too
        Assert.Equal(2 * PhysicalMemory.ChunkSize, memory.BackedBytes);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public void UnalignedAccesses_OfEverySize_AcrossAChunkBoundary_AreLittleEndian(int size)
    {
        using var memory = new PhysicalMemory(4 * MiB);
        ulong mask = size == 8 ? ulong.MaxValue : (1UL << (8 * size)) - 1;
        var bytes = new byte[size];
        for (ulong address = PhysicalMemory.ChunkSize - 9; address <= PhysicalMemory.ChunkSize + 1; address++)
        {
            ulong value = 0x0807_0605_0403_0201UL * (address & 0xFF | 1);
            Assert.Equal(PhysicalAccessStatus.Ok, memory.TryWrite(address, size, value));
            Assert.Equal(PhysicalAccessStatus.Ok, memory.TryRead(address, size, out ulong read));
            Assert.Equal(value & mask, read);
            Assert.Equal(PhysicalAccessStatus.Ok, memory.Read(address, bytes));
            for (int i = 0; i < size; i++) Assert.Equal((byte)(value >> (8 * i)), bytes[i]);
        }
        Assert.Equal(PhysicalAccessStatus.Ok, memory.TryWrite64(PhysicalMemory.ChunkSize - 3, 0xA1A2_A3A4_A5A6_A7A8));
        Assert.Equal(PhysicalAccessStatus.Ok, memory.TryRead64(PhysicalMemory.ChunkSize - 3, out ulong crossing));
        Assert.Equal(0xA1A2_A3A4_A5A6_A7A8UL, crossing);
        Assert.Equal(2 * PhysicalMemory.ChunkSize, memory.BackedBytes); // both chunks a crossing write touches
    }

    [Theory]
    [InlineData(8 * MiB - 4)]
    [InlineData(8 * MiB)]
    [InlineData(ulong.MaxValue - 3)]
    public void AccessesBeyondMemory_AreReportedAsValues_AndChangeNothing(ulong address)
    {
        using var memory = new PhysicalMemory(8 * MiB);
        Assert.Equal(PhysicalAccessStatus.OutOfRange, memory.TryRead64(address, out ulong value));
        Assert.Equal(0UL, value);
        Assert.Equal(PhysicalAccessStatus.OutOfRange, memory.TryWrite64(address, 1));
        Assert.Equal(PhysicalAccessStatus.OutOfRange, memory.TryRead(address, 8, out _));
        Assert.Equal(PhysicalAccessStatus.OutOfRange, memory.TryWrite(address, 8, 1));
        Assert.Equal(PhysicalAccessStatus.OutOfRange, memory.Write(address, new byte[16]));
        Assert.False(memory.Contains(address, 8));
        Assert.Equal(0UL, memory.BackedBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Span(address, 8));
    }

    [Fact]
    public void SpansAndCopies_CrossChunksWhereAllowed()
    {
        using var memory = new PhysicalMemory(6 * MiB);
        var pattern = Enumerable.Range(0, 4 * (int)MiB).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(PhysicalAccessStatus.Ok, memory.Write(MiB, pattern)); // spans all three chunks
        var back = new byte[pattern.Length];
        Assert.Equal(PhysicalAccessStatus.Ok, memory.Read(MiB, back));
        Assert.Equal(pattern, back);
        Assert.Equal(3 * PhysicalMemory.ChunkSize, memory.BackedBytes);
        // A span is one frame's host memory: it may not cross a 2 MiB chunk.
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.Span(PhysicalMemory.ChunkSize - 4096, 8192));
        Assert.Equal(pattern[4096], memory.Span(MiB + 4096, 4096)[0]);
    }

    [Theory]
    [InlineData(0UL)]
    [InlineData(3 * MiB)]
    [InlineData((1UL << 40) + 2 * MiB)]
    public void ImpossibleSizes_AreRefused(ulong size) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new PhysicalMemory(size));

    [Fact]
    public void Dispose_CanBeCalledTwice()
    {
        var memory = new PhysicalMemory(2 * MiB);
        memory.TryWrite64(0, 1);
        memory.Dispose();
        memory.Dispose();
    }
}
