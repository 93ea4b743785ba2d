using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Benchmarks;

/// <summary>
/// The translated 8-byte read (<see cref="Mmu.Read"/>) on each path of the MMU, against a plain host read, on the
/// Intel Golden Cove preset. Each benchmark does <see cref="Accesses"/> reads per invocation and cycles through a set
/// of pages chosen so that every read takes the intended path; <see cref="GlobalSetup"/> checks that with the
/// MMU's counters, so a changed TLB shape cannot silently turn a miss benchmark into a hit benchmark.
/// </summary>
[MemoryDiagnoser, MinColumn, MedianColumn, Config(typeof(ThreadCpuTimeConfig))]
public unsafe class PagingBenchmarks
{
    const int Accesses = 64;
    const ulong DataFrame = 64UL << 20;

    PhysicalMemory memory = null!;
    Mmu mmu = null!;
    byte* host;
    ulong[] l2HitPages = null!;
    ulong[] coldWalkPages = null!;
    ulong[] warmWalkPages = null!;

    const ulong L1HitPage = 0x0000_7000_0000_0000;

    [GlobalSetup]
    public void GlobalSetup()
    {
        host = (byte*)NativeMemory.AlignedAlloc(4096, 64);
        NativeMemory.Clear(host, 4096);
        memory = new PhysicalMemory(128UL << 20);
        var tables = new PageTableBuilder(memory, 0, 32UL << 20);
        mmu = new Mmu(memory, TlbConfig.IntelGoldenCove);
        mmu.WriteCr3(tables.Root);
        mmu.UserMode = true;
        const ulong user = PageTableEntry.PresentBit | PageTableEntry.WritableBit | PageTableEntry.UserBit;

        tables.Map(L1HitPage, DataFrame, PageSize.Size4K, user);

        // L1 DTLB (4K): 16 sets x 6 ways; L2: 128 sets x 16 ways. Sixty-four pages 16 pages apart share one L1 set and
        // spread over L2 sets: each read misses L1 and hits L2.
        l2HitPages = [.. Enumerable.Range(0, 64).Select(i => 0x0000_7100_0000_0000 + (ulong)i * 16 * 4096)];
        // 64 pages, each under its own PML4 entry, share one TLB set everywhere and overflow every paging-structure
        // cache (4 PML4E, 8 PDPTE, 32 PDE entries): each read misses everything and walks all four levels.
        coldWalkPages = [.. Enumerable.Range(0, 64).Select(i => (ulong)(i + 1) << 39)];
        // 32 consecutive 2 MiB regions (the PDE cache holds 32), four pages in each 128 pages apart: all 128 share
        // one TLB set and miss, but the PDE cache hits, so each walk reads only the PTE.
        warmWalkPages = [.. Enumerable.Range(0, 128).Select(i => 0x0000_7200_0000_0000 + (ulong)(i % 32) * (2UL << 20) + (ulong)(i / 32) * 128 * 4096)];
        if (new[] { l2HitPages, coldWalkPages, warmWalkPages }.Any(pages => !BitOperations.IsPow2(pages.Length)))
            throw new InvalidOperationException("ReadCycling needs page lists a power of two long");
        foreach (ulong page in l2HitPages.Concat(coldWalkPages).Concat(warmWalkPages))
            tables.Map(page, DataFrame, PageSize.Size4K, user);

        CheckPath(nameof(TranslatedReadL1Hit), TranslatedReadL1Hit, level: 1, walks: false);
        CheckPath(nameof(TranslatedReadL2Hit), TranslatedReadL2Hit, level: 2, walks: false);
        CheckPath(nameof(TranslatedReadColdWalk), TranslatedReadColdWalk, level: 0, walks: true, memoryReferencesPerWalk: 4);
        CheckPath(nameof(TranslatedReadWarmWalk), TranslatedReadWarmWalk, level: 0, walks: true, memoryReferencesPerWalk: 1);
    }

    /// <summary>Runs a benchmark twice (the first pass warms up) and checks the second pass took the intended path.</summary>
    void CheckPath(string name, Func<ulong> benchmark, int level, bool walks, int memoryReferencesPerWalk = 0)
    {
        benchmark();
        var c = mmu.Counters;
        long l1Hits = c.Levels[1].Hits, l2Hits = c.Levels[2].Hits, walkCount = c.Walks, references = c.WalkMemoryReferences;
        benchmark();
        long newL1 = c.Levels[1].Hits - l1Hits, newL2 = c.Levels[2].Hits - l2Hits, newWalks = c.Walks - walkCount;
        // Tree-PLRU is not exact LRU: a cyclic pattern may still hit now and then. Allow a few reads off the path.
        const int onPath = Accesses - Accesses / 16;
        bool ok = level switch
        {
            1 => newL1 == Accesses,
            2 => newL2 >= onPath && newWalks == 0,
            _ => newWalks >= onPath && c.WalkMemoryReferences - references <= newWalks * memoryReferencesPerWalk
                && c.WalkMemoryReferences - references >= onPath * memoryReferencesPerWalk,
        };
        if (!ok || (walks && newL1 + newL2 > Accesses - onPath))
            throw new InvalidOperationException($"{name} does not take its path: L1 hits {newL1}, L2 hits {newL2}, walks {newWalks}, refs {c.WalkMemoryReferences - references}");
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        NativeMemory.AlignedFree(host);
        memory.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    public ulong HostRead()
    {
        ulong sum = 0;
        for (int i = 0; i < Accesses; i++)
            sum += Unsafe.ReadUnaligned<ulong>(host + ((i * 8) & 4095));
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public ulong TranslatedReadL1Hit()
    {
        ulong sum = 0;
        for (int i = 0; i < Accesses; i++)
        {
            mmu.Read(L1HitPage + (ulong)((i * 8) & 4095), 8, out ulong value);
            sum += value;
        }
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public ulong TranslatedReadL2Hit() => ReadCycling(l2HitPages);

    [Benchmark(OperationsPerInvoke = Accesses)]
    public ulong TranslatedReadColdWalk() => ReadCycling(coldWalkPages);

    [Benchmark(OperationsPerInvoke = Accesses)]
    public ulong TranslatedReadWarmWalk() => ReadCycling(warmWalkPages);

    /// <summary>Reads the pages in turn. The page lists are a power of two long, so the turn is a mask, not a division
    /// (an integer division per read would be measured as part of the translation).</summary>
    ulong ReadCycling(ulong[] pages)
    {
        ulong sum = 0;
        int last = pages.Length - 1;
        for (int i = 0; i < Accesses; i++)
        {
            mmu.Read(pages[i & last] + 8, 8, out ulong value);
            sum += value;
        }
        return sum;
    }
}
