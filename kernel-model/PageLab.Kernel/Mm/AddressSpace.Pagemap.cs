using System.Buffers.Binary;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>/proc/self/pagemap: one 64-bit entry per 4 KiB virtual page (Documentation/admin-guide/mm/pagemap.rst).</summary>
public sealed partial class AddressSpace
{
    /// <summary>Bits 0-54: the PFN (or, for a swap entry, type in bits 0-4 and offset above).</summary>
    public const ulong PagemapFrameMask = (1UL << 55) - 1;
    public const ulong PagemapSoftDirty = 1UL << 55;
    public const ulong PagemapExclusive = 1UL << 56;
    public const ulong PagemapFileOrShared = 1UL << 61;
    public const ulong PagemapSwapped = 1UL << 62;
    public const ulong PagemapPresent = 1UL << 63;

    const int PagemapEntryBytes = 8;

    /// <summary>
    /// pagemap_read: fills <paramref name="buffer"/> with the entries from byte <paramref name="offset"/>
    /// (offset and length must be multiples of 8: EINVAL otherwise); 0 past the end of user space.
    /// PFNs are shown only to a reader with CAP_SYS_ADMIN (<paramref name="showFrames"/>).
    /// </summary>
    public long ReadPagemap(Span<byte> buffer, long offset, bool showFrames)
    {
        if (offset % PagemapEntryBytes != 0 || buffer.Length % PagemapEntryBytes != 0)
            return -(long)Syscalls.Errno.EINVAL;
        ulong firstPage = (ulong)offset / PagemapEntryBytes;
        ulong endPage = TaskSize >> PagingConstants.PageBits;
        if (firstPage >= endPage)
            return 0;
        int count = (int)Math.Min((ulong)(buffer.Length / PagemapEntryBytes), endPage - firstPage);
        for (int i = 0; i < count; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i * PagemapEntryBytes)..], PagemapEntry((firstPage + (ulong)i) << PagingConstants.PageBits, showFrames));
        return count * PagemapEntryBytes;
    }

    /// <summary>
    /// The entry of one page: present (a frame, the zero page or a huge page's piece; PROT_NONE pages
    /// too, as pte_present counts them), swapped, file-or-shared (not anonymous memory of this
    /// process alone), exclusively mapped (map count 1); soft-dirty everywhere inside a VMA, as every
    /// VMA carries VM_SOFTDIRTY until clear_refs, which PageLab does not model.
    /// </summary>
    public ulong PagemapEntry(ulong linear, bool showFrames)
    {
        var vma = FindVma(linear);
        if (vma is null)
            return 0;
        ulong flags = PagemapSoftDirty;
        bool shared = (vma.Flags & VmaFlags.Shared) != 0 || vma.File is not null;
        ulong region = linear & ~PagingConstants.LargePageMask;
        if (Tables.TryGetPmdAddress(region, allocate: false, out ulong pmdAddress) && IsHugeLeaf(Tables.Read(pmdAddress)))
        {
            ulong head = Tables.Read(pmdAddress).FrameNumber;
            ulong frame = head + ((linear - region) >> PagingConstants.PageBits);
            return flags | PagemapPresent | (shared ? PagemapFileOrShared : 0)
                | (memory.PageMapCount(frame) == 1 ? PagemapExclusive : 0) | (showFrames ? frame : 0);
        }
        var pte = Tables.ReadPte(linear);
        if (pte.Raw == 0)
            return flags;
        if (!MapsFrame(pte))
        {
            var entry = new SwapPte(pte.Raw);
            ulong swapFrame = (uint)entry.Type | (entry.Offset << SwapPte.TypeBits);
            return flags | PagemapSwapped | (showFrames ? swapFrame & PagemapFrameMask : 0);
        }
        flags |= PagemapPresent | (showFrames ? pte.FrameNumber : 0);
        if (pte.FrameNumber == memory.ZeroFrame)
            return flags; // vm_normal_page skips the zero page: neither file nor exclusive
        ref var page = ref memory.Page(pte.FrameNumber);
        if (shared || page.Use != FrameUse.Anonymous)
            flags |= PagemapFileOrShared;
        return memory.PageMapCount(pte.FrameNumber) == 1 ? flags | PagemapExclusive : flags;
    }
}
