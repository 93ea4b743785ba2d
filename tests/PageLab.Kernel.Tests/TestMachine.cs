using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests;

/// <summary>A small machine for kernel-model tests: 64 MiB of physical memory, the tiny TLB, one address space loaded in CR3.</summary>
sealed class TestMachine : IDisposable
{
    public TestMachine(ulong memoryBytes = 64UL << 20)
    {
        Physical = new PhysicalMemory(memoryBytes);
        Mmu = new Mmu(Physical, TlbConfig.Tiny);
        Allocator = new BuddyAllocator(Physical);
        Memory = new KernelMemory(Physical, Allocator, new MmuGuestMemory(Mmu));
        Space = new AddressSpace(Memory);
        Memory.Guest.SwitchAddressSpace(Space.Tables.Cr3);
        User = new UserMemory(Space);
    }

    public PhysicalMemory Physical { get; }
    public Mmu Mmu { get; }
    public BuddyAllocator Allocator { get; }
    public KernelMemory Memory { get; }
    public AddressSpace Space { get; }
    public UserMemory User { get; }

    /// <summary>
    /// Reads 8 bytes as the guest would, resolving faults like the CPU host does (in <paramref name="space"/>,
    /// which must be loaded in CR3; <see cref="Space"/> by default); null when the access would SIGSEGV.
    /// </summary>
    public ulong? GuestRead64(ulong address, AddressSpace? space = null)
    {
        for (int attempt = 0; attempt < 4; attempt++)
        {
            var fault = Mmu.Read(address, 8, out ulong value);
            if (!fault.IsFault) return value;
            if (!(space ?? Space).HandleFault(fault.LinearAddress, AccessKind.Read, (fault.ErrorCode & PageFaultErrorCode.Present) != 0).IsResolved())
                return null;
        }
        return null;
    }

    /// <summary>Writes 8 bytes as the guest would (in <paramref name="space"/>, by default <see cref="Space"/>); false when the access would SIGSEGV.</summary>
    public bool GuestWrite64(ulong address, ulong value, AddressSpace? space = null)
    {
        for (int attempt = 0; attempt < 4; attempt++)
        {
            var fault = Mmu.Write(address, 8, value);
            if (!fault.IsFault) return true;
            if (!(space ?? Space).HandleFault(fault.LinearAddress, AccessKind.Write, (fault.ErrorCode & PageFaultErrorCode.Present) != 0).IsResolved())
                return false;
        }
        return false;
    }

    /// <summary>
    /// Direct reclaim until <paramref name="target"/> pages are freed, as an allocation's retry loop does:
    /// a page touched since the last look survives one round (its accessed bit is cleared), so a test
    /// that only wants pages evicted calls reclaim again. Stops after three rounds that free nothing.
    /// </summary>
    public ulong ReclaimPages(ulong target, MemoryCgroup? cgroup = null)
    {
        ulong reclaimed = 0;
        for (int idle = 0; reclaimed < target && idle < 3;)
        {
            ulong round = Allocator.Reclaim(null, target - reclaimed, cgroup, null);
            reclaimed += round;
            idle = round == 0 ? idle + 1 : 0;
        }
        return reclaimed;
    }

    /// <summary>A /proc/meminfo field, in kB.</summary>
    public ulong MemInfoKb(string field)
    {
        string line = ProcMemory.MemInfo(Memory).Split('\n').Single(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return ulong.Parse(line[(field.Length + 1)..^3].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose() => Physical.Dispose();
}
