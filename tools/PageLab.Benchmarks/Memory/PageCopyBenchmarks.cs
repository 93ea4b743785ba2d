using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using PageLab.Emulator.Memory;

namespace PageLab.Benchmarks.Memory;

/// <summary>Where the 2 MiB buffers live when a benchmark touches them.</summary>
public enum WorkingSet
{
    /// <summary>One source and one destination: 4 MiB in all, inside the last-level cache.</summary>
    Hot,
    /// <summary>Rotates over 64 source and 64 destination frames (256 MiB), far beyond any host's LLC.</summary>
    Cold,
}

/// <summary>
/// 2 MiB frame copy and zeroing per vector path (DESIGN.md point 4: close to the host's memcpy),
/// with Buffer.MemoryCopy and NativeMemory.Clear as the baselines of the same run.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public unsafe class PageCopyBenchmarks
{
    const int FrameSize = 2 * 1024 * 1024;
    const int ColdFrames = 64;

    byte*[] sources = [];
    byte*[] destinations = [];
    int next;

    [Params(WorkingSet.Hot, WorkingSet.Cold)]
    public WorkingSet Set { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        int count = Set == WorkingSet.Hot ? 1 : ColdFrames;
        sources = new byte*[count];
        destinations = new byte*[count];
        for (int i = 0; i < count; i++)
        {
            sources[i] = (byte*)NativeMemory.AlignedAlloc(FrameSize, 64);
            destinations[i] = (byte*)NativeMemory.AlignedAlloc(FrameSize, 64);
            // Touch every page so that no benchmark pays the host's first-touch faults.
            new Span<byte>(sources[i], FrameSize).Fill((byte)(i + 1));
            new Span<byte>(destinations[i], FrameSize).Clear();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        for (int i = 0; i < sources.Length; i++)
        {
            NativeMemory.AlignedFree(sources[i]);
            NativeMemory.AlignedFree(destinations[i]);
        }
    }

    /// <summary>The next buffer pair: always the same one when hot, the least recently used one when cold.</summary>
    int Next()
    {
        int i = next;
        next = i + 1 == sources.Length ? 0 : i + 1;
        return i;
    }

    byte Copy(PageCopyPath path)
    {
        int i = Next();
        PageCopy.Copy(path, destinations[i], sources[i], FrameSize);
        return destinations[i][FrameSize - 1];
    }

    byte CopyNonTemporal(PageCopyPath path)
    {
        int i = Next();
        PageCopy.CopyNonTemporal(path, destinations[i], sources[i], FrameSize);
        return destinations[i][FrameSize - 1];
    }

    byte Zero(PageCopyPath path)
    {
        int i = Next();
        PageCopy.Zero(path, destinations[i], FrameSize);
        return destinations[i][FrameSize - 1];
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Copy")]
    public byte Copy_BufferMemoryCopy()
    {
        int i = Next();
        Buffer.MemoryCopy(sources[i], destinations[i], FrameSize, FrameSize);
        return destinations[i][FrameSize - 1];
    }

    [Benchmark, BenchmarkCategory("Copy")] public byte Copy_Vector512() => Copy(PageCopyPath.Vector512);
    [Benchmark, BenchmarkCategory("Copy")] public byte Copy_Vector256() => Copy(PageCopyPath.Vector256);
    [Benchmark, BenchmarkCategory("Copy")] public byte Copy_Vector128() => Copy(PageCopyPath.Vector128);
    [Benchmark, BenchmarkCategory("Copy")] public byte Copy_Scalar() => Copy(PageCopyPath.Scalar);
    [Benchmark, BenchmarkCategory("Copy")] public byte Copy_BestPath() => Copy(PageCopy.BestPath);
    [Benchmark, BenchmarkCategory("Copy")] public byte CopyNonTemporal_Vector512() => CopyNonTemporal(PageCopyPath.Vector512);
    [Benchmark, BenchmarkCategory("Copy")] public byte CopyNonTemporal_Vector256() => CopyNonTemporal(PageCopyPath.Vector256);

    [Benchmark(Baseline = true), BenchmarkCategory("Zero")]
    public byte Zero_NativeMemoryClear()
    {
        int i = Next();
        NativeMemory.Clear(destinations[i], FrameSize);
        return destinations[i][FrameSize - 1];
    }

    [Benchmark, BenchmarkCategory("Zero")] public byte Zero_Vector512() => Zero(PageCopyPath.Vector512);
    [Benchmark, BenchmarkCategory("Zero")] public byte Zero_Vector256() => Zero(PageCopyPath.Vector256);
    [Benchmark, BenchmarkCategory("Zero")] public byte Zero_Vector128() => Zero(PageCopyPath.Vector128);
    [Benchmark, BenchmarkCategory("Zero")] public byte Zero_Scalar() => Zero(PageCopyPath.Scalar);
}
