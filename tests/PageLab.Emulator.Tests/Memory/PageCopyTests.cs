using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using PageLab.Emulator.Memory;

namespace PageLab.Emulator.Tests.Memory;

/// <summary>
/// Every copy/zero path against Span.CopyTo / Span.Clear. tests/run-all.sh runs this class a second
/// time with DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0 and DOTNET_EnableHWIntrinsic=0, so the
/// software fallbacks of each path and the startup choice are checked too.
/// </summary>
public sealed unsafe class PageCopyTests
{
    const int TwoMiB = 2 * 1024 * 1024;
    // Room for the largest length plus the largest offset, plus guard bytes on both sides.
    const int Guard = 128;

    static readonly int[] Lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 255, 257, 4095, 4096, 4097, TwoMiB - 1, TwoMiB];

    public static TheoryData<PageCopyPath, int, int, int> CopyCases()
    {
        var data = new TheoryData<PageCopyPath, int, int, int>();
        (int Source, int Destination)[] offsets = [(0, 0), (1, 0), (0, 3), (7, 13), (33, 63)];
        foreach (var path in Enum.GetValues<PageCopyPath>())
            foreach (int length in Lengths)
                foreach (var (source, destination) in offsets)
                    data.Add(path, length, source, destination);
        return data;
    }

    public static TheoryData<PageCopyPath, int, int> ZeroCases()
    {
        var data = new TheoryData<PageCopyPath, int, int>();
        foreach (var path in Enum.GetValues<PageCopyPath>())
            foreach (int length in Lengths)
                foreach (int offset in (int[])[0, 1, 13, 63])
                    data.Add(path, length, offset);
        return data;
    }

    [Theory]
    [MemberData(nameof(CopyCases))]
    public void Copy_EveryPathMatchesSpanCopyTo(PageCopyPath path, int length, int sourceOffset, int destinationOffset)
    {
        using var buffers = new AlignedBuffers(length + 2 * Guard);
        var random = new Random(length ^ (sourceOffset << 24) ^ (destinationOffset << 16));
        random.NextBytes(buffers.Source);
        random.NextBytes(buffers.Destination);
        byte[] expected = buffers.Destination.ToArray();
        buffers.Source.Slice(Guard + sourceOffset, length).CopyTo(expected.AsSpan(Guard + destinationOffset));

        PageCopy.Copy(path, buffers.Source.Slice(Guard + sourceOffset, length), buffers.Destination[(Guard + destinationOffset)..]);

        AssertSame(expected, buffers.Destination);
    }

    [Theory]
    [MemberData(nameof(ZeroCases))]
    public void Zero_EveryPathMatchesSpanClear(PageCopyPath path, int length, int destinationOffset)
    {
        using var buffers = new AlignedBuffers(length + 2 * Guard);
        new Random(length + destinationOffset).NextBytes(buffers.Destination);
        buffers.Destination.Replace((byte)0, (byte)0xA5); // so a zero in the guard bytes would be a bug
        byte[] expected = buffers.Destination.ToArray();
        expected.AsSpan(Guard + destinationOffset, length).Clear();

        PageCopy.Zero(path, buffers.Destination.Slice(Guard + destinationOffset, length));

        AssertSame(expected, buffers.Destination);
    }

    [Theory]
    [MemberData(nameof(CopyCases))]
    public void CopyNonTemporal_EveryPathMatchesSpanCopyTo(PageCopyPath path, int length, int sourceOffset, int destinationOffset)
    {
        using var buffers = new AlignedBuffers(length + 2 * Guard);
        var random = new Random(~length);
        random.NextBytes(buffers.Source);
        random.NextBytes(buffers.Destination);
        byte[] expected = buffers.Destination.ToArray();
        buffers.Source.Slice(Guard + sourceOffset, length).CopyTo(expected.AsSpan(Guard + destinationOffset));

        PageCopy.CopyNonTemporal(path, buffers.DestinationPointer + Guard + destinationOffset, buffers.SourcePointer + Guard + sourceOffset, (nuint)length);

        AssertSame(expected, buffers.Destination);
    }

    [Fact]
    public void BestPath_IsTheWidestAcceleratedVector()
    {
        var expected = Vector512.IsHardwareAccelerated ? PageCopyPath.Vector512
            : Vector256.IsHardwareAccelerated ? PageCopyPath.Vector256
            : Vector128.IsHardwareAccelerated ? PageCopyPath.Vector128
            : PageCopyPath.Scalar;
        Assert.Equal(expected, PageCopy.BestPath);
        Assert.True(PageCopy.IsAccelerated(PageCopy.BestPath));
    }

    [Fact]
    public void BestPath_HonoursDisabledIntrinsics()
    {
        // Meaningful in the tests/run-all.sh passes that switch instruction sets off; each switch
        // also turns off everything that depends on it (AVX-512 needs AVX2, all need HWIntrinsic).
        if (Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0")
            Assert.Equal(PageCopyPath.Scalar, PageCopy.BestPath);
        else if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX2") == "0")
            Assert.True(PageCopy.BestPath <= PageCopyPath.Vector128, $"best path {PageCopy.BestPath} with AVX2 off");
        else if (Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0")
            Assert.True(PageCopy.BestPath <= PageCopyPath.Vector256, $"best path {PageCopy.BestPath} with AVX-512 off");
        else
            Assert.Equal(Vector512.IsHardwareAccelerated, PageCopy.BestPath == PageCopyPath.Vector512);
    }

    [Fact]
    public void Copy_OfAFrameInPhysicalMemory_UsesTheDefaultPath()
    {
        using var memory = new PhysicalMemory(2 * PhysicalMemory.ChunkSize);
        var source = memory.Span(0x1000, 4096);
        new Random(5).NextBytes(source);
        // The destination frame is in the other 2 MiB chunk: a different host allocation.
        PageCopy.Copy(source, memory.Span(PhysicalMemory.ChunkSize + 0x3000, 4096));
        Assert.True(source.SequenceEqual(memory.Span(PhysicalMemory.ChunkSize + 0x3000, 4096)));
        PageCopy.Zero(memory.Span(0x1000, 4096));
        Assert.True(memory.Span(0x1000, 4096).IndexOfAnyExcept((byte)0) < 0);
    }

    static void AssertSame(byte[] expected, Span<byte> actual)
    {
        int mismatch = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(mismatch == expected.Length, $"first difference at byte {mismatch} of {expected.Length}");
    }

    /// <summary>Two 64-byte-aligned native buffers, so offsets in the cases are offsets from a cache line.</summary>
    sealed class AlignedBuffers : IDisposable
    {
        public AlignedBuffers(int length)
        {
            Length = length;
            SourcePointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 64);
            DestinationPointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 64);
        }

        public int Length { get; }
        public byte* SourcePointer { get; }
        public byte* DestinationPointer { get; }
        public Span<byte> Source => new(SourcePointer, Length);
        public Span<byte> Destination => new(DestinationPointer, Length);

        public void Dispose()
        {
            NativeMemory.AlignedFree(SourcePointer);
            NativeMemory.AlignedFree(DestinationPointer);
        }
    }
}
