using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>Memory system calls: mmap, munmap, mprotect, madvise (brk is a one-liner in the dispatcher).</summary>
public sealed partial class LinuxProcess
{
    const int MapShared = 0x01, MapPrivate = 0x02, MapSharedValidate = 0x03, MapTypeMask = 0x0f;
    const int MapFixed = 0x10, MapAnonymous = 0x20, MapGrowsDown = 0x100, MapDenyWrite = 0x800, MapExecutable = 0x1000;
    const int MapLocked = 0x2000, MapNoReserve = 0x4000, MapPopulate = 0x8000, MapNonBlock = 0x10000, MapStack = 0x20000;
    const int MapHugeTlb = 0x40000, MapSync = 0x80000, MapFixedNoReplace = 0x100000;
    const int ProtMask = 7;
    const int ProtGrowsDown = 0x01000000, ProtGrowsUp = 0x02000000;

    /// <summary>Flags mmap accepts for MAP_SHARED/MAP_PRIVATE (LEGACY_MAP_MASK and the newer ones); unknown bits are ignored as Linux does.</summary>
    const int KnownMapFlags = MapFixed | MapAnonymous | MapGrowsDown | MapDenyWrite | MapExecutable | MapLocked | MapNoReserve |
                              MapPopulate | MapNonBlock | MapStack | MapHugeTlb | MapSync | MapFixedNoReplace;

    long Mmap(ulong address, ulong length, int prot, int flags, int fd, long offset)
    {
        int type = flags & MapTypeMask;
        if (type is not (MapShared or MapPrivate or MapSharedValidate)) return Fail(Errno.EINVAL);
        if (type == MapSharedValidate && (flags & ~(KnownMapFlags | MapTypeMask)) != 0) return Fail(Errno.EOPNOTSUPP);
        if ((prot & ~(ProtMask | ProtGrowsDown | ProtGrowsUp)) != 0 || (prot & (ProtGrowsDown | ProtGrowsUp)) != 0) return Fail(Errno.EINVAL);
        if (length == 0) return Fail(Errno.EINVAL);
        if ((offset & (long)PagingConstants.PageMask) != 0) return Fail(Errno.EINVAL);
        ulong size = AddressSpace.PageAlignUp(length);
        if (size == 0 || size < length || size > AddressSpace.TaskSize) return Fail(Errno.ENOMEM);
        if (offset < 0 || (ulong)offset > long.MaxValue - size) return Fail(Errno.EOVERFLOW);
        if ((flags & MapHugeTlb) != 0) return Fail(Errno.ENOMEM);

        bool anonymous = (flags & MapAnonymous) != 0;
        IMappableFile? backing = null;
        if (!anonymous)
        {
            if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
            if (file.Mappable is not { } mappable) return Fail(Errno.ENODEV);
            // Every guest file is read-only: a shared writable mapping would write through to it.
            if (type != MapPrivate && (prot & (int)Protection.Write) != 0) return Fail(Errno.EACCES);
            backing = mappable;
        }

        bool fixedAddress = (flags & (MapFixed | MapFixedNoReplace)) != 0;
        ulong start;
        if (fixedAddress)
        {
            if ((address & PagingConstants.PageMask) != 0) return Fail(Errno.EINVAL);
            if (address > AddressSpace.TaskSize - size) return Fail(Errno.ENOMEM);
            if (address < AddressSpace.MmapMinAddress) return Fail(Errno.EPERM);
            if ((flags & MapFixed) == 0 && Space.Vmas.Any(v => v.Start < address + size && v.End > address)) return Fail(Errno.EEXIST);
            start = address;
        }
        else if (!Space.TryFindFreeRange(size, address, out start))
        {
            return Fail(Errno.ENOMEM);
        }

        var vmaFlags = (type == MapPrivate ? VmaFlags.None : VmaFlags.Shared) | ((flags & MapGrowsDown) != 0 ? VmaFlags.GrowsDown : VmaFlags.None);
        // accountable_mapping: private writable memory is charged unless MAP_NORESERVE says not to.
        if ((flags & MapNoReserve) != 0)
            vmaFlags |= VmaFlags.NoReserve;
        else if (type == MapPrivate && (prot & (int)Protection.Write) != 0)
            vmaFlags |= VmaFlags.Account;
        if (Space.MapCountExceeded || (fixedAddress && !Space.CanSplitAt(start, start + size))) return Fail(Errno.ENOMEM);
        Space.Map(start, start + size, (Protection)(prot & ProtMask), vmaFlags, backing, anonymous ? 0 : offset);
        if ((flags & MapPopulate) != 0)
            Populate(start, start + size, (prot & (int)Protection.Write) != 0);
        return (long)start;
    }

    /// <summary>MAP_POPULATE: fault every page in now, with write faults for a writable mapping (as populate_vma_page_range does).</summary>
    void Populate(ulong start, ulong end, bool write)
    {
        for (ulong page = start; page < end; page += PagingConstants.PageSize)
        {
            if (!Space.HandleFault(page, write ? AccessKind.Write : AccessKind.Read, present: false).IsResolved())
                return;
        }
    }

    long Munmap(ulong address, ulong length)
    {
        if ((address & PagingConstants.PageMask) != 0 || length == 0) return Fail(Errno.EINVAL);
        ulong size = AddressSpace.PageAlignUp(length);
        if (address > AddressSpace.TaskSize || size > AddressSpace.TaskSize - address) return Fail(Errno.EINVAL);
        if (!Space.CanSplitAt(address, address + size)) return Fail(Errno.ENOMEM);
        Space.Unmap(address, address + size);
        return 0;
    }

    long Mprotect(ulong address, ulong length, int prot)
    {
        if ((address & PagingConstants.PageMask) != 0) return Fail(Errno.EINVAL);
        if ((prot & ~(ProtMask | ProtGrowsDown | ProtGrowsUp)) != 0 || (prot & ProtGrowsDown) != 0 && (prot & ProtGrowsUp) != 0) return Fail(Errno.EINVAL);
        if (length == 0) return 0;
        ulong size = AddressSpace.PageAlignUp(length);
        if (size < length || address > ulong.MaxValue - size) return Fail(Errno.ENOMEM);
        var vmas = Space.Vmas.Where(v => v.Start < address + size && v.End > address);
        if ((prot & (int)Protection.Write) != 0 && vmas.Any(v => (v.Flags & VmaFlags.Shared) != 0 && v.File is not null && !v.IsShmem)) return Fail(Errno.EACCES);
        return Space.Protect(address, address + size, (Protection)(prot & ProtMask)) ? 0 : Fail(Errno.ENOMEM);
    }

    /// <summary>
    /// mremap(old, oldLength, newLength, flags, newAddress): shrink in place, grow in place when the
    /// following range is free, else move with MREMAP_MAYMOVE (to newAddress with MREMAP_FIXED).
    /// </summary>
    long Mremap(ulong oldAddress, ulong oldLength, ulong newLength, int flags, ulong newAddress)
    {
        const int MayMove = 1, Fixed = 2, DontUnmap = 4;
        if ((flags & ~(MayMove | Fixed | DontUnmap)) != 0 || (flags & (Fixed | DontUnmap)) != 0 && (flags & MayMove) == 0) return Fail(Errno.EINVAL);
        if ((oldAddress & PagingConstants.PageMask) != 0) return Fail(Errno.EINVAL);
        ulong oldSize = AddressSpace.PageAlignUp(oldLength), newSize = AddressSpace.PageAlignUp(newLength);
        if (newSize == 0 || newSize < newLength || oldSize < oldLength) return Fail(Errno.EINVAL);
        // Duplicating a mapping (old size 0) works only for shared mappings; moving without unmapping is not modeled.
        if (oldSize == 0 || (flags & DontUnmap) != 0) return Fail(Errno.EINVAL);
        // Sizes are compared before they are subtracted from TaskSize: a size above it would wrap the bound around.
        if (oldSize > AddressSpace.TaskSize || oldAddress > AddressSpace.TaskSize - oldSize) return Fail(Errno.EFAULT);
        // As Linux, the old address must lie in a mapping before anything, a shrink included, is done.
        if (Space.FindVma(oldAddress) is null) return Fail(Errno.EFAULT);

        if ((flags & Fixed) != 0)
        {
            if ((newAddress & PagingConstants.PageMask) != 0 || newSize > AddressSpace.TaskSize || newAddress > AddressSpace.TaskSize - newSize)
                return Fail(Errno.EINVAL);
            if (newAddress < oldAddress + oldSize && oldAddress < newAddress + newSize) return Fail(Errno.EINVAL);
            if (newAddress < AddressSpace.MmapMinAddress) return Fail(Errno.EPERM);
            if (Space.FindVma(oldAddress) is not { } source || source.End < oldAddress + oldSize) return Fail(Errno.EFAULT);
            Space.Unmap(newAddress, newAddress + newSize);
            if (oldSize > newSize)
            {
                Space.Unmap(oldAddress + newSize, oldAddress + oldSize);
                oldSize = newSize;
            }
            Space.Move(oldAddress, oldSize, newAddress, newSize);
            return (long)newAddress;
        }

        if (newSize <= oldSize)
        {
            Space.Unmap(oldAddress + newSize, oldAddress + oldSize);
            return (long)oldAddress;
        }
        if (Space.FindVma(oldAddress) is not { } vma || vma.End < oldAddress + oldSize) return Fail(Errno.EFAULT);
        if (vma.End == oldAddress + oldSize && Space.TryExpandInPlace(oldAddress + oldSize, oldAddress + newSize))
            return (long)oldAddress;
        if ((flags & MayMove) == 0) return Fail(Errno.ENOMEM);
        if (!Space.TryFindFreeRange(newSize, 0, out ulong target)) return Fail(Errno.ENOMEM);
        Space.Move(oldAddress, oldSize, target, newSize);
        return (long)target;
    }

    /// <summary>madvise(2): the walk and every advice are the memory manager's (Mm.Madvise); its cost is charged to the caller.</summary>
    long Madvise(ulong address, ulong length, int advice)
    {
        var result = Mm.Madvise.Apply(Space, address, length, advice, settings.KernelAbi);
        time.Advance(result.Nanoseconds);
        return result.Error is { } errno ? Fail(errno) : 0;
    }
}
