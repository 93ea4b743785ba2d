using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>/proc/self/pagemap: one 64-bit entry per virtual page (fs/proc/task_mmu.c).</summary>
public sealed partial class AddressSpace
{
    /// <summary>Bits 0-54: the PFN of a present page, or swap type (bits 0-4) and offset (above) of a swapped one.</summary>
    public const ulong PagemapFrameMask = (1UL << 55) - 1;
    public const ulong PagemapSoftDirty = 1UL << 55;
    public const ulong PagemapExclusive = 1UL << 56;
    public const ulong PagemapFileOrShared = 1UL << 61;
    public const ulong PagemapSwapped = 1UL << 62;
    public const ulong PagemapPresent = 1UL << 63;

    /// <summary>
    /// The pagemap entry of the page at <paramref name="linear"/>, as pte_to_pagemap_entry and
    /// pagemap_pmd_range build it: present (PROT_NONE pages too), the PFN when the reader may see
    /// it, file-backed for page-cache frames, exclusive when mapped once, swapped with its swap
    /// entry; soft-dirty everywhere inside a VMA (new VMAs carry VM_SOFTDIRTY until clear_refs,
    /// which is not modeled); 0 outside every VMA. The shared zero page is present and nothing else.
    /// </summary>
    public ulong PagemapEntry(ulong linear, bool showFrame)
    {
        if (FindVma(linear) is null)
            return 0;
        ulong entry = PagemapSoftDirty;
        var steps = Tables.Walk(linear);
        var leaf = steps[^1];
        bool huge = leaf.Level == PagingLevel.PageDirectory && IsHugeLeaf(leaf.Entry);
        if (leaf.Level != PagingLevel.PageTable && !huge)
            return entry;
        var pte = leaf.Entry;
        if (MapsFrame(pte))
        {
            ulong head = pte.FrameNumber;
            ulong frame = huge ? head + ((linear >> PagingConstants.PageBits) & (PagingConstants.EntriesPerTable - 1)) : head;
            entry |= PagemapPresent | (showFrame ? frame & PagemapFrameMask : 0);
            if (head == memory.ZeroFrame)
                return entry;
            ref var page = ref memory.Page(head);
            if (page.Use == FrameUse.PageCache)
                entry |= PagemapFileOrShared;
            if (page.MapCount == 1)
                entry |= PagemapExclusive;
            return entry;
        }
        if (SwapPte.IsSwapEntry(pte.Raw))
        {
            var swap = new SwapPte(pte.Raw);
            entry |= PagemapSwapped | (showFrame ? ((uint)swap.Type | (swap.Offset << SwapPte.TypeBits)) & PagemapFrameMask : 0);
        }
        return entry;
    }
}
