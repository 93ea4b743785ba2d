using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>mremap's two ways of changing a mapping's size: growing in place, and moving (mm/mremap.c).</summary>
public sealed partial class AddressSpace
{
    /// <summary>
    /// vma_expandable + vma_expand: grows the VMA that ends at <paramref name="oldEnd"/> to
    /// <paramref name="newEnd"/> when nothing (and no stack guard gap) lies in between; false otherwise.
    /// </summary>
    public bool TryExpandInPlace(ulong oldEnd, ulong newEnd)
    {
        int index = FindIndex(oldEnd - 1);
        if (index >= vmas.Count || vmas[index].End != oldEnd || newEnd > TaskSize)
            return false;
        if (index + 1 < vmas.Count && GapBelow(vmas[index + 1]) < newEnd)
            return false;
        vmas[index].End = newEnd;
        MergeAround(index);
        return true;
    }

    /// <summary>
    /// move_vma: the part [oldStart, oldStart + oldLength) of one VMA moves to newStart (a free
    /// range the caller chose), becoming newLength long. Page-table entries move with their
    /// frames, as move_page_tables does (huge PMDs are split first); the old range is flushed.
    /// </summary>
    public void Move(ulong oldStart, ulong oldLength, ulong newStart, ulong newLength)
    {
        ulong oldEnd = oldStart + oldLength;
        foreach (var (region, pmdAddress) in HugePmdsIn(oldStart, oldEnd))
            SplitHugePmd(region, pmdAddress);

        var moved = new List<(ulong Address, PageTableEntry Entry)>();
        var flush = new FlushGather();
        Tables.VisitPtes(oldStart, oldEnd, (linear, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (pte.Raw == 0)
                return;
            Tables.Write(pteAddress, default);
            if (pte.IsPresent)
                flush.Add(linear);
            moved.Add((linear - oldStart + newStart, pte));
        });
        Flush(flush);

        SplitAt(oldStart);
        SplitAt(oldEnd);
        int index = FindIndex(oldStart);
        var vma = vmas[index];
        vmas.RemoveAt(index);
        var target = vma.Slice(oldStart, oldEnd);
        target.Start = newStart;
        target.End = newStart + newLength;
        int at = FindIndex(newStart);
        vmas.Insert(at, target);
        MergeAround(at);

        foreach (var (address, entry) in moved)
        {
            if (Tables.TryGetPteAddress(address, allocate: true, out ulong pteAddress))
                Tables.Write(pteAddress, entry);
            else if (MapsFrame(entry))
                ReleaseMappedFrame(entry.FrameNumber);
        }
    }
}
