using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>The kernel model's view of the emulated MMU: user-mode copies and Linux's invalidation primitives.</summary>
public sealed class MmuGuestMemory : IGuestMemory
{
    readonly Mmu mmu;

    /// <param name="mmu">The MMU; switched to user mode, since the kernel model copies with user permissions.</param>
    public MmuGuestMemory(Mmu mmu)
    {
        this.mmu = mmu;
        mmu.UserMode = true;
    }

    public TranslationFault ReadBytes(ulong linear, Span<byte> destination) => mmu.ReadBytes(linear, destination);

    public TranslationFault WriteBytes(ulong linear, ReadOnlySpan<byte> source) => mmu.WriteBytes(linear, source);

    public void InvalidatePage(ulong linear) => mmu.Invlpg(linear);

    /// <summary>native_flush_tlb_local: rewrite CR3 with its own value (no PCID no-flush bit).</summary>
    public void FlushNonGlobal() => mmu.WriteCr3(mmu.Cr3 & ~(1UL << 63));

    public void SwitchAddressSpace(ulong cr3) => mmu.WriteCr3(cr3);

    public void FrameWritten(ulong frameNumber) => mmu.NotifyFrameWritten(frameNumber);
}
