using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using PageLab.Kernel;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Benchmarks.Thp;

/// <summary>
/// Host wall time of one MADV_COLLAPSE of a fully populated 2 MiB region: emulated (the whole engine:
/// scan, allocate, flush, isolate, 512 SIMD page copies, install) and the host kernel's own, measured
/// natively in the same run on a region populated the same way (512 written 4 KiB pages).
/// Each iteration starts from a freshly populated region (IterationSetup, not measured), so each
/// iteration is one call: tiered compilation is switched off, or the whole run would finish before
/// the engine's hot loops are promoted from tier 0 and measure the JIT's warm-up instead.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(SingleCallConfig))]
public unsafe partial class CollapseBenchmarks
{
    sealed class SingleCallConfig : ManualConfig
    {
        public SingleCallConfig() => AddJob(Job.Default
            .WithEnvironmentVariable("DOTNET_TieredCompilation", "0")
            .WithInvocationCount(1).WithUnrollFactor(1)
            .WithWarmupCount(10).WithIterationCount(40));
    }

    const ulong Region = 0x4000_0000;
    const int MadvCollapse = 25;
    const int ProtRead = 1, ProtWrite = 2, MapPrivate = 0x02, MapAnonymous = 0x20;

    PhysicalMemory physical = null!;
    Mmu mmu = null!;
    AddressSpace space = null!;
    nint nativeMapping;
    byte* nativeRegion;

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint address, nuint length, int advice);

    [GlobalSetup]
    public void Setup()
    {
        physical = new PhysicalMemory(256UL << 20);
        mmu = new Mmu(physical, TlbConfig.IntelGoldenCove);
        var memory = new KernelMemory(physical, new BuddyAllocator(physical), new MmuGuestMemory(mmu));
        space = new AddressSpace(memory);
        memory.Guest.SwitchAddressSpace(space.Tables.Cr3);
        mmu.UserMode = true;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        physical.Dispose();
        if (nativeMapping != 0) munmap(nativeMapping, 4 << 20);
    }

    [IterationSetup(Target = nameof(EmulatedCollapse))]
    public void PopulateEmulated()
    {
        space.Unmap(Region, Region + PagingConstants.LargePageSize);
        space.Map(Region, Region + PagingConstants.LargePageSize, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
        for (ulong page = Region; page < Region + PagingConstants.LargePageSize; page += PagingConstants.PageSize)
        {
            while (mmu.Write(page, 8, page) is { IsFault: true } fault)
                space.HandleFault(fault.LinearAddress, AccessKind.Write, (fault.ErrorCode & PageFaultErrorCode.Present) != 0);
        }
    }

    /// <summary>The emulated MADV_COLLAPSE of 512 populated pages (returns the errno, 0 for success).</summary>
    [Benchmark]
    public int EmulatedCollapse() =>
        (int)(Madvise.Apply(space, Region, PagingConstants.LargePageSize, MadviseAdvice.Collapse, KernelAbi.Proposal).Error ?? 0);

    [IterationSetup(Target = nameof(HostKernelCollapse))]
    public void PopulateNative()
    {
        if (nativeMapping != 0) munmap(nativeMapping, 4 << 20);
        nativeMapping = mmap(0, 4 << 20, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        nativeRegion = (byte*)(((ulong)nativeMapping + PagingConstants.LargePageMask) & ~PagingConstants.LargePageMask);
        for (ulong offset = 0; offset < PagingConstants.LargePageSize; offset += PagingConstants.PageSize)
            *(ulong*)(nativeRegion + offset) = offset;
    }

    /// <summary>The host kernel's MADV_COLLAPSE of the same populated region (returns madvise's result).</summary>
    [Benchmark(Baseline = true)]
    public int HostKernelCollapse() => madvise((nint)nativeRegion, (nuint)PagingConstants.LargePageSize, MadvCollapse);
}
