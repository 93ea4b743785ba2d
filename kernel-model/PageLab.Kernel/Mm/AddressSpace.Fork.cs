using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>fork's side of an address space: dup_mmap with copy-on-write.</summary>
public sealed partial class AddressSpace
{
    /// <summary>
    /// dup_mmap: a new address space with the same VMAs, brk and THP setting, whose page tables map
    /// the same frames. Private writable pages become copy-on-write: the PTE loses its write bit in
    /// both parent and child (the parent's TLB is flushed whole, as flush_tlb_mm after copy_page_range),
    /// and each shared frame gains a reference and a mapping. Swap entries are duplicated (the slot's
    /// use count goes up). Shared mappings are not copied (vma_needs_copy: they have no anon_vma): the
    /// child maps the file's or shmem object's pages on its own faults, and so sees every page of it,
    /// touched before or after the fork. Huge PMDs are split in the parent first, so sharing is tracked per 4 KiB
    /// frame (Linux shares the PMD read-only instead; the model's THP accounting is per mapping).
    /// Null when a page table could not be allocated (fork's ENOMEM); nothing leaks then.
    /// </summary>
    public AddressSpace? Fork()
    {
        var child = new AddressSpace(memory)
        {
            StartBrk = StartBrk,
            Brk = Brk,
            StartStack = StartStack,
            ThpDisabled = ThpDisabled,
        };
        foreach (var (region, pmdAddress) in HugePmdsIn(0, TaskSize))
        {
            if (memory.Page(Tables.Read(pmdAddress).FrameNumber).Use != FrameUse.Shmem) // shared VMAs are not copied
                SplitHugePmd(region, pmdAddress);
        }
        bool complete = true;
        foreach (var vma in vmas)
        {
            child.vmas.Add(vma.Slice(vma.Start, vma.End));
            if (complete && (vma.Flags & VmaFlags.Shared) == 0)
                complete = CopyPageRange(child, vma);
        }
        memory.Guest.FlushNonGlobal();
        if (complete)
            return child;
        child.Destroy();
        return null;
    }

    /// <summary>copy_page_range for one private VMA; false when the child's page tables ran out of frames.</summary>
    bool CopyPageRange(AddressSpace child, Vma vma)
    {
        bool complete = true;
        Tables.VisitPtes(vma.Start, vma.End, (linear, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (pte.Raw == 0 || !complete)
                return;
            if (!child.Tables.TryGetPteAddress(linear, allocate: true, out ulong childPteAddress))
            {
                complete = false;
                return;
            }
            if (!MapsFrame(pte))
            {
                var entry = new SwapPte(pte.Raw);
                var swap = memory.Frames.Swap;
                if (swap is not null && entry.Type == swap.Type && swap.UseCount(entry.Offset) > 0)
                    swap.Duplicate(entry.Offset);
                // Both copies now share the slot: neither is exclusive any more.
                child.Tables.Write(childPteAddress, new PageTableEntry(pte.Raw & ~SwapPte.ExclusiveBit));
                Tables.Write(pteAddress, new PageTableEntry(pte.Raw & ~SwapPte.ExclusiveBit));
                child.SwappedPages++;
                return;
            }
            if (pte.IsWritable)
            {
                pte = pte.Without(PageTableEntry.WritableBit);
                Tables.Write(pteAddress, pte);
            }
            ulong frame = pte.FrameNumber;
            if (frame != memory.ZeroFrame)
            {
                ref var page = ref memory.Page(frame);
                page.RefCount++;
                page.MapCount++;
                child.ResidentPages++;
            }
            child.Tables.Write(childPteAddress, pte);
        });
        return complete;
    }
}
