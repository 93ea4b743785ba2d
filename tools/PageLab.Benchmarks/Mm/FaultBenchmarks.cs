using BenchmarkDotNet.Attributes;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Benchmarks.Mm;

/// <summary>
/// Host cost of a demand-zero fault end to end, through the MMU and the kernel model: the guest
/// write misses the TLB, the walk faults, the handler allocates from the buddy allocator, charges the
/// memcg, zeroes the frame, puts it on the LRU, writes the PTE, and the write is retried.
/// Compare with Memcpy4K of <see cref="FrameAllocatorBenchmarks"/> in the same run.
/// </summary>
[MemoryDiagnoser]
[InvocationCount(1)]
public class FaultBenchmarks
{
    const ulong Base = 0x4000_0000;
    const int Pages = 4096;

    PhysicalMemory memory = null!;
    Mmu mmu = null!;
    KernelMemory kernel = null!;
    AddressSpace space = null!;

    [GlobalSetup]
    public void Setup()
    {
        memory = new PhysicalMemory(256UL << 20);
        mmu = new Mmu(memory, TlbConfig.IntelGoldenCove);
        var frames = new BuddyAllocator(memory);
        kernel = new KernelMemory(memory, frames, new MmuGuestMemory(mmu));
        kernel.Memcg = frames.CreateCgroup("bench", ulong.MaxValue);
        space = new AddressSpace(kernel);
        kernel.Guest.SwitchAddressSpace(space.Tables.Cr3);
        space.Map(Base, Base + Pages * PagingConstants.PageSize, Protection.Read | Protection.Write, VmaFlags.NoHugePage, null, 0);
    }

    [IterationSetup]
    public void Discard() => space.ZapPages(Base, Base + Pages * PagingConstants.PageSize);

    [GlobalCleanup]
    public void Cleanup() => memory.Dispose();

    [Benchmark(OperationsPerInvoke = Pages)]
    public ulong DemandZeroFault()
    {
        ulong faults = 0;
        for (ulong page = 0; page < Pages; page++)
        {
            ulong address = Base + page * PagingConstants.PageSize;
            var fault = mmu.Write(address, 8, page);
            if (fault.IsFault)
            {
                faults++;
                space.HandleFault(fault.LinearAddress, AccessKind.Write, present: false);
                mmu.Write(address, 8, page);
            }
        }
        if (faults != Pages)
            throw new InvalidOperationException($"{faults} faults, expected {Pages}");
        return faults;
    }
}
