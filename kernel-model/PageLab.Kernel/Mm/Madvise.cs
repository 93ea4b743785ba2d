using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Thp;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Mm;

/// <summary>madvise(2) advice values (include/uapi/asm-generic/mman-common.h), plus the MADV_TRY_COLLAPSE proposal.</summary>
public static class MadviseAdvice
{
    public const int Normal = 0;
    public const int Random = 1;
    public const int Sequential = 2;
    public const int WillNeed = 3;
    public const int DontNeed = 4;
    public const int Free = 8;
    /// <summary>Punch a hole in the backing shmem object (tmpfs: fallocate PUNCH_HOLE).</summary>
    public const int Remove = 9;
    public const int HugePage = 14;
    public const int NoHugePage = 15;
    public const int Cold = 20;
    public const int PageOut = 21;
    public const int PopulateRead = 22;
    public const int PopulateWrite = 23;
    public const int Collapse = 25;
    /// <summary>The proposal: a collapse that never reclaims or compacts and stops at the first allocation or charge failure.</summary>
    public const int TryCollapse = 26;
}

/// <summary>The outcome of one madvise over a range: 0 or an errno, and the modeled time the caller spent.</summary>
public readonly record struct MadviseResult(Errno? Error, ulong Nanoseconds)
{
    public static MadviseResult Success(ulong nanoseconds) => new(null, nanoseconds);
}

/// <summary>
/// madvise(2) as mm/madvise.c does it: argument checks, then the range split at VMA boundaries,
/// each piece handled on its own; the first failing piece ends the walk with its error; holes are
/// skipped and make an otherwise successful call return ENOMEM.
/// </summary>
public static class Madvise
{
    /// <summary>True when the kernel knows <paramref name="advice"/> (madvise_behavior_valid).</summary>
    public static bool IsSupported(int advice, KernelAbi abi) => advice switch
    {
        MadviseAdvice.Normal or MadviseAdvice.Random or MadviseAdvice.Sequential or MadviseAdvice.WillNeed
            or MadviseAdvice.DontNeed or MadviseAdvice.Free or MadviseAdvice.Remove or MadviseAdvice.HugePage or MadviseAdvice.NoHugePage
            or MadviseAdvice.Cold or MadviseAdvice.PageOut or MadviseAdvice.PopulateRead or MadviseAdvice.PopulateWrite
            or MadviseAdvice.Collapse => true,
        MadviseAdvice.TryCollapse => abi == KernelAbi.Proposal,
        _ => false,
    };

    /// <summary>madvise(start, lengthIn, advice) on <paramref name="mm"/>.</summary>
    public static MadviseResult Apply(AddressSpace mm, ulong start, ulong lengthIn, int advice, KernelAbi abi)
    {
        if (!IsSupported(advice, abi) || (start & PagingConstants.PageMask) != 0)
            return new(Errno.EINVAL, 0);
        ulong length = (lengthIn + PagingConstants.PageMask) & ~PagingConstants.PageMask;
        if (lengthIn != 0 && length == 0)
            return new(Errno.EINVAL, 0);
        ulong end = start + length;
        if (end < start)
            return new(Errno.EINVAL, 0);
        if (end == start)
            return MadviseResult.Success(0);
        if (advice is MadviseAdvice.PopulateRead or MadviseAdvice.PopulateWrite)
            return Populate(mm, start, end, advice == MadviseAdvice.PopulateWrite);

        Errno? unmapped = null;
        ulong nanoseconds = 0;
        ulong cursor = start;
        while (cursor < end)
        {
            var vma = mm.FindVmaAtOrAbove(cursor);
            if (vma is null || vma.Start >= end)
                return new(Errno.ENOMEM, nanoseconds);
            if (cursor < vma.Start)
            {
                unmapped = Errno.ENOMEM;
                cursor = vma.Start;
            }
            ulong pieceEnd = Math.Min(vma.End, end);
            var piece = ApplyToVma(mm, vma, cursor, pieceEnd, advice);
            nanoseconds += piece.Nanoseconds;
            if (piece.Error is { } error)
                return new(error, nanoseconds);
            cursor = pieceEnd;
        }
        return new(unmapped, nanoseconds);
    }

    static MadviseResult ApplyToVma(AddressSpace mm, Vma vma, ulong start, ulong end, int advice)
    {
        switch (advice)
        {
            case MadviseAdvice.DontNeed:
                mm.ZapPages(start, end); // a shmem VMA's pages stay in its object
                return MadviseResult.Success(0);
            case MadviseAdvice.Free:
                // madvise_free_single_vma: only private anonymous memory (shmem and files: EINVAL).
                if (!vma.IsAnonymous || (vma.Flags & VmaFlags.Shared) != 0)
                    return new(Errno.EINVAL, 0);
                mm.FreeLazily(start, end);
                return MadviseResult.Success(0);
            case MadviseAdvice.Remove:
                // madvise_remove: a file is needed (anonymous: EINVAL), one mapped shared and writable
                // (EACCES: the model's guest files are read-only), whose filesystem can punch holes (shmem).
                if (vma.IsAnonymous)
                    return new(Errno.EINVAL, 0);
                if (!vma.IsShmem)
                    return new(Errno.EACCES, 0);
                mm.RemovePages(vma, start, end);
                return MadviseResult.Success(0);
            case MadviseAdvice.Cold or MadviseAdvice.PageOut:
                mm.Deactivate(start, end, pageOut: advice == MadviseAdvice.PageOut);
                return MadviseResult.Success(0);
            case MadviseAdvice.WillNeed:
                mm.ReadAhead(vma, start, end);
                return MadviseResult.Success(0);
            case MadviseAdvice.HugePage:
                if (!mm.UpdateVmaFlags(start, end, flags => (flags | VmaFlags.HugePage) & ~VmaFlags.NoHugePage))
                    return new(Errno.ENOMEM, 0);
                mm.Thp.Khugepaged.Register(mm); // khugepaged_enter_vma
                return MadviseResult.Success(0);
            case MadviseAdvice.NoHugePage:
                return mm.UpdateVmaFlags(start, end, flags => (flags | VmaFlags.NoHugePage) & ~VmaFlags.HugePage)
                    ? MadviseResult.Success(0)
                    : new(Errno.ENOMEM, 0);
            case MadviseAdvice.Collapse:
                return Collapse(mm, vma, start, end, CollapsePolicy.MadviseCollapse);
            case MadviseAdvice.TryCollapse:
                return Collapse(mm, vma, start, end, CollapsePolicy.TryCollapse);
            default:
                // NORMAL, RANDOM, SEQUENTIAL: read-ahead policy hints with no effect in the model.
                return MadviseResult.Success(0);
        }
    }

    /// <summary>
    /// MADV_POPULATE_READ / MADV_POPULATE_WRITE (madvise_populate, not the VMA walk): faults every page
    /// in as a read or write access would, in address order, and stops at the first problem: a hole
    /// (ENOMEM), a VMA that does not allow the access (EINVAL, what Linux 6.18 answers for incompatible
    /// permissions), a fault that would signal (EFAULT) or find no memory (ENOMEM). The pages done before
    /// stay populated.
    /// </summary>
    static MadviseResult Populate(AddressSpace mm, ulong start, ulong end, bool write)
    {
        for (ulong cursor = start; cursor < end;)
        {
            var vma = mm.FindVma(cursor);
            if (vma is null)
                return new(Errno.ENOMEM, 0);
            if ((vma.Protection & (write ? Protection.Write : Protection.Read)) == 0)
                return new(Errno.EINVAL, 0);
            ulong pieceEnd = Math.Min(vma.End, end);
            for (; cursor < pieceEnd; cursor += PagingConstants.PageSize)
            {
                var outcome = mm.Populate(cursor, write);
                if (!outcome.IsResolved())
                    return new(outcome == FaultOutcome.OutOfMemory ? Errno.ENOMEM : Errno.EFAULT, 0);
            }
        }
        return MadviseResult.Success(0);
    }

    /// <summary>
    /// madvise_collapse for one VMA piece: eligibility, clamping to whole 2 MiB regions, then each
    /// region through the engine, continuing or stopping as Linux's whitelist says. Returns 0 when
    /// every region is huge afterwards, else the errno of the last failure.
    /// </summary>
    public static MadviseResult Collapse(AddressSpace mm, Vma vma, ulong start, ulong end, CollapsePolicy policy)
    {
        if (!CollapseEligible(mm, vma))
            return new(Errno.EINVAL, 0);
        ulong first = (start + PagingConstants.LargePageMask) & ~PagingConstants.LargePageMask;
        ulong last = end & ~PagingConstants.LargePageMask;
        if (first == last)
            return MadviseResult.Success(0);
        if (last < first)
            return new(Errno.EINVAL, 0);

        var engine = mm.Thp.Engine;
        ulong nanoseconds = 0;
        ulong regions = (last - first) >> PagingConstants.LargePageBits, huge = 0;
        var lastFailure = CollapseResult.VmaCheck;
        for (ulong region = first; region < last; region += PagingConstants.LargePageSize)
        {
            var result = engine.CollapseRegion(mm, vma, region, policy);
            nanoseconds += engine.Last.TotalNanoseconds;
            if (result.IsSuccess())
            {
                huge++;
                continue;
            }
            lastFailure = result;
            bool allocationFailure = result is CollapseResult.AllocationFailed or CollapseResult.ChargeFailed;
            if (!result.ContinuesWithNextRegion() || (allocationFailure && policy.StopAtAllocationOrChargeFailure))
                break;
        }
        return huge == regions ? MadviseResult.Success(nanoseconds) : new(lastFailure.ToErrno(), nanoseconds);
    }

    /// <summary>
    /// thp_vma_allowable_order for a forced collapse: independent of sysfs `enabled` for anonymous memory;
    /// for shmem, shmem_enabled as a forced collapse reads it, and the VMA's last 2 MiB must be mappable by
    /// a PMD (virtual address and file offset congruent modulo 2 MiB).
    /// </summary>
    static bool CollapseEligible(AddressSpace mm, Vma vma)
    {
        if (mm.ThpDisabled || (vma.Flags & VmaFlags.NoHugePage) != 0 || !(vma.IsAnonymous || vma.IsShmem))
            return false;
        if (vma.IsShmem)
            return mm.ShmemHugeAllowed(vma, forcedCollapse: true) && vma.Length >= PagingConstants.LargePageSize
                && AddressSpace.ShmemPmdSuitable(vma, (vma.End - PagingConstants.LargePageSize) & ~PagingConstants.LargePageMask);
        ulong firstRegion = (vma.Start + PagingConstants.LargePageMask) & ~PagingConstants.LargePageMask;
        return firstRegion >= vma.Start && firstRegion <= vma.End && vma.End - firstRegion >= PagingConstants.LargePageSize;
    }
}
