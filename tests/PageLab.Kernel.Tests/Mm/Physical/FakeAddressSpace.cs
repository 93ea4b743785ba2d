using PageLab.Emulator.Memory;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Tests.Mm.Physical;

/// <summary>
/// A test double of the address-space code: it "maps" page indexes to frames (its PTEs), fills each
/// page with bytes derived from its index, and checks what the allocator tells it: that a migration
/// names the frame it maps and arrives with the data already copied, that an eviction names the right
/// frame and, for anonymous pages, a swap entry whose slot holds the data.
/// </summary>
internal sealed class FakeAddressSpace : IPageOwner
{
    readonly BuddyAllocator allocator;
    readonly PhysicalMemory memory;

    public FakeAddressSpace(BuddyAllocator allocator, PhysicalMemory memory)
    {
        this.allocator = allocator;
        this.memory = memory;
        Id = allocator.Owners.Register(this);
    }

    public int Id { get; }
    public Dictionary<ulong, ulong> FrameOf { get; } = [];
    public Dictionary<ulong, SwapPte> SwapPteOf { get; } = [];
    public List<(ulong Index, ulong OldFrame, ulong NewFrame)> Migrations { get; } = [];
    public List<ulong> Evictions { get; } = [];
    public bool RefuseMigration { get; set; }

    /// <summary>Allocates, owns, fills and puts on the LRU one order-0 page; false when memory is full.</summary>
    public bool TryPopulate(ulong index, FrameUse use, AllocationEffort effort = AllocationEffort.FreeListsOnly, int node = 0, ICostSink? cost = null)
    {
        if (!allocator.TryAllocate(0, use, effort, node, cost, out ulong frame))
            return false;
        Adopt(index, frame);
        return true;
    }

    /// <summary>Takes over an allocated frame (e.g. one the fragmentation setup placed) and fills it.</summary>
    public void Adopt(ulong index, ulong frame)
    {
        if (allocator[frame].Owner != Id)
            allocator.SetOwner(frame, Id, index);
        if (!allocator[frame].OnLru)
            allocator.AddToLru(frame);
        FrameOf[index] = frame;
        Page(frame).Fill(0);
        BitConverter.TryWriteBytes(Page(frame), index * 0x9E37_79B9_7F4A_7C15UL);
        Page(frame)[4095] = (byte)(index + 1);
    }

    /// <summary>Swap-in, as the fault handler will do it: a new frame, the data from swap, the mapping back.</summary>
    public bool TrySwapIn(ulong index, AllocationEffort effort, ICostSink? cost)
    {
        if (!allocator.TryAllocate(0, FrameUse.Anonymous, effort, 0, cost, out ulong frame))
            return false;
        allocator.SwapIn(SwapPteOf[index], frame, cost);
        SwapPteOf.Remove(index);
        allocator.SetOwner(frame, Id, index);
        allocator.AddToLru(frame);
        FrameOf[index] = frame;
        return true;
    }

    /// <summary>Unmaps a resident page and frees its frame (munmap of the last mapping).</summary>
    public void Release(ulong index)
    {
        allocator.Free(FrameOf[index], 0);
        FrameOf.Remove(index);
    }

    public bool HoldsItsData(ulong index, ulong frame) =>
        BitConverter.ToUInt64(Page(frame)) == index * 0x9E37_79B9_7F4A_7C15UL && Page(frame)[4095] == (byte)(index + 1);

    Span<byte> Page(ulong frame) => memory.Span(frame << 12, 4096);

    public bool TryMigrate(ulong index, ulong oldFrame, ulong newFrame)
    {
        Assert.Equal(FrameOf[index], oldFrame);
        Assert.True(HoldsItsData(index, newFrame), $"page {index} was not copied to frame 0x{newFrame:x} before the remap");
        Assert.Equal(Id, allocator[newFrame].Owner);
        if (RefuseMigration)
            return false;
        FrameOf[index] = newFrame;
        Migrations.Add((index, oldFrame, newFrame));
        return true;
    }

    public bool TryEvict(ulong index, ulong frame, SwapPte swapPte)
    {
        Assert.Equal(FrameOf[index], frame);
        bool anonymous = allocator[frame].Use == FrameUse.Anonymous;
        Assert.Equal(anonymous, swapPte != SwapPte.None);
        FrameOf.Remove(index);
        if (anonymous)
            SwapPteOf[index] = swapPte;
        Evictions.Add(index);
        return true;
    }

    /// <summary>Pages the pretend guest keeps touching: every reference check finds their PTE young again.</summary>
    public HashSet<ulong> Hot { get; } = [];

    public PageReferences TestAndClearYoung(ulong index, ulong frame) =>
        new(Mappings: 1, Young: Hot.Contains(index) ? 1 : 0, Executable: false);

    public bool TrySplitHuge(ulong index, ulong headFrame) => false;
}
