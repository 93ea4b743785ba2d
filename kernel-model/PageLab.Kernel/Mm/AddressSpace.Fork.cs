using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;
using PageLab.Kernel.Mm.Thp;

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
    /// touched before or after the fork. Huge PMDs of private VMAs are shared whole (copy_huge_pmd), write-protected.
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
        bool complete = true;
        foreach (var vma in vmas)
        {
            child.vmas.Add(vma.Slice(vma.Start, vma.End));
            if (complete && (vma.Flags & VmaFlags.Shared) == 0)
                complete = CopyHugePmds(child, vma) && CopyPageRange(child, vma);
        }
        memory.Guest.FlushNonGlobal();
        if (complete)
            return child;
        child.Destroy();
        return null;
    }

    /// <summary>
    /// copy_huge_pmd for the huge PMDs of one private VMA: the child maps the same THP with its own
    /// deposited PTE table; both PMDs lose write permission (the first write faults, see
    /// HandleHugePmdFault) and the child's is old (A clear), as pmd_mkold. The THP gains a reference and
    /// an entire mapping: it is shared, not copied. A pinned THP (page_try_dup_anon_rmap refuses) is
    /// PMD-split in the parent instead and its pages are copied with the PTEs. False when the child's
    /// tables ran out of frames.
    /// </summary>
    bool CopyHugePmds(AddressSpace child, Vma vma)
    {
        foreach (var (region, pmdAddress) in HugePmdsIn(vma.Start, vma.End))
        {
            var pmd = Tables.Read(pmdAddress);
            ref var folio = ref memory.Page(pmd.FrameNumber);
            if ((folio.Flags & PageFlags.Pinned) != 0)
            {
                SplitHugePmd(region, pmdAddress);
                continue;
            }
            if (!child.Tables.TryGetPmdAddress(region, allocate: true, out ulong childPmdAddress) || !child.Tables.TryAllocateTable(out ulong deposit))
                return false;
            if (pmd.IsWritable)
            {
                pmd = pmd.Without(PageTableEntry.WritableBit);
                Tables.Write(pmdAddress, pmd);
            }
            child.DepositTable(region, deposit);
            child.Tables.Write(childPmdAddress, pmd.Without(PageTableEntry.AccessedBit));
            folio.EntireMapCount++;
            folio.RefCount++;
            child.ResidentPages += ThpSettings.PtesPerPmd;
        }
        return true;
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
                memory.Page(frame).MapCount++;
                memory.GetFolio(frame);
                child.ResidentPages++;
            }
            // copy_present_pte: the child's PTE is old (pte_mkold), so reclaim's reference check sees
            // only the accesses each process makes after the fork, not the parent's history twice.
            child.Tables.Write(childPteAddress, pte.Without(PageTableEntry.AccessedBit));
        });
        return complete;
    }
}
