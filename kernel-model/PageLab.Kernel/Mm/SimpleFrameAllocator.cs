namespace PageLab.Kernel.Mm;

/// <summary>
/// A deliberately simple frame allocator used until the buddy model (issue 4) replaces it: a bump
/// pointer over a frame range plus one free list per order. Blocks are naturally aligned; frames
/// skipped to align a block go to the order-0 list. Allocation order is deterministic.
/// </summary>
public sealed class SimpleFrameAllocator : IFrameAllocator
{
    /// <summary>Largest order served, as in the buddy allocator (MAX_PAGE_ORDER = 10: 4 MiB blocks).</summary>
    public const int MaxOrder = 10;

    readonly Stack<ulong>[] freeLists = new Stack<ulong>[MaxOrder + 1];
    readonly ulong endFrame;
    ulong nextFrame;

    /// <param name="firstFrame">First frame handed out (frame 0 is usually kept back, as Linux does).</param>
    /// <param name="endFrame">One past the last frame.</param>
    public SimpleFrameAllocator(ulong firstFrame, ulong endFrame)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstFrame, endFrame);
        nextFrame = firstFrame;
        this.endFrame = endFrame;
        for (int i = 0; i < freeLists.Length; i++)
            freeLists[i] = new Stack<ulong>();
    }

    /// <inheritdoc/>
    public ulong FreeFrames
    {
        get
        {
            ulong free = endFrame - nextFrame;
            for (int order = 0; order <= MaxOrder; order++)
                free += (ulong)freeLists[order].Count << order;
            return free;
        }
    }

    /// <inheritdoc/>
    public bool TryAllocate(int order, FrameUse use, AllocationEffort effort, out ulong frameNumber)
    {
        if ((uint)order > MaxOrder)
        {
            frameNumber = 0;
            return false;
        }
        if (freeLists[order].TryPop(out frameNumber))
            return true;

        ulong blockFrames = 1UL << order;
        ulong aligned = (nextFrame + blockFrames - 1) & ~(blockFrames - 1);
        if (aligned > endFrame || endFrame - aligned < blockFrames)
        {
            frameNumber = 0;
            return false;
        }
        for (ulong skipped = nextFrame; skipped < aligned; skipped++)
            freeLists[0].Push(skipped);
        frameNumber = aligned;
        nextFrame = aligned + blockFrames;
        return true;
    }

    /// <inheritdoc/>
    public void Free(ulong frameNumber, int order)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)order, (uint)MaxOrder);
        freeLists[order].Push(frameNumber);
    }
}
