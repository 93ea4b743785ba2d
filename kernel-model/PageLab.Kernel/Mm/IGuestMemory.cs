using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>
/// What the kernel model needs from the machine's MMU: copies to and from user memory with user
/// permissions (faults come back as values), and the TLB invalidations Linux issues. The
/// production implementation forwards to the emulator's Mmu; tests may use a reference walker.
/// </summary>
public interface IGuestMemory
{
    /// <summary>Reads user memory through the page tables; a fault is returned, nothing partial is promised.</summary>
    TranslationFault ReadBytes(ulong linear, Span<byte> destination);

    /// <summary>Writes user memory through the page tables; all pages are checked before any byte is written.</summary>
    TranslationFault WriteBytes(ulong linear, ReadOnlySpan<byte> source);

    /// <summary>INVLPG: drops the translation of one page (and the paging-structure caches for it).</summary>
    void InvalidatePage(ulong linear);

    /// <summary>Reloads CR3 without PCID no-flush: drops every non-global translation (Linux's flush_tlb_local).</summary>
    void FlushNonGlobal();

    /// <summary>Loads CR3 with the root of an address space (a context switch or exec).</summary>
    void SwitchAddressSpace(ulong cr3);

    /// <summary>The kernel wrote a frame directly (zeroing, copying): decoded code from it must be dropped.</summary>
    void FrameWritten(ulong frameNumber);
}
