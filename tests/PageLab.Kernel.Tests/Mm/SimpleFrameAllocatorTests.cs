using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Tests.Mm;

public class SimpleFrameAllocatorTests
{
    [Fact]
    public void Allocate_ReturnsNaturallyAlignedBlocks()
    {
        var allocator = new SimpleFrameAllocator(1, 4096);
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong single));
        Assert.True(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong huge));
        Assert.Equal(1UL, single);
        Assert.Equal(0UL, huge % 512);
    }

    [Fact]
    public void FreeFrames_CountsSkippedAndFreedFrames()
    {
        var allocator = new SimpleFrameAllocator(1, 2048);
        ulong before = allocator.FreeFrames;
        Assert.True(allocator.TryAllocate(9, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong block));
        Assert.Equal(before - 512, allocator.FreeFrames);
        allocator.Free(block, 9);
        Assert.Equal(before, allocator.FreeFrames);
    }

    [Fact]
    public void Allocate_FailsWhenExhausted_AndReusesFreedFrames()
    {
        var allocator = new SimpleFrameAllocator(10, 12);
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong a));
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _));
        Assert.False(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _));
        allocator.Free(a, 0);
        Assert.True(allocator.TryAllocate(0, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out ulong again));
        Assert.Equal(a, again);
        Assert.False(allocator.TryAllocate(11, FrameUse.Anonymous, AllocationEffort.FreeListsOnly, out _));
    }
}
