using System.Text;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm.Physical;

namespace PageLab.Kernel.Mm;

/// <summary>What the page-fault handler did; the process charges virtual time by outcome.</summary>
public enum FaultOutcome : byte
{
    /// <summary>The PTE already allowed the access (a stale TLB entry): nothing to do.</summary>
    Spurious,
    /// <summary>Read of untouched anonymous memory: the shared zero page was mapped read-only.</summary>
    ZeroPageMapped,
    /// <summary>Write to untouched anonymous memory: a zeroed frame was mapped.</summary>
    AnonymousZeroFilled,
    /// <summary>Write to an untouched 2 MiB region eligible for THP: a zeroed huge page was mapped by the PMD.</summary>
    HugePageAllocated,
    /// <summary>A page the shmem object (MAP_SHARED|MAP_ANONYMOUS) already held was mapped.</summary>
    SharedPageMapped,
    /// <summary>First touch of a shmem page: a zeroed frame joined the object and was mapped.</summary>
    ShmemPageAllocated,
    /// <summary>Read of a file-backed page: the page-cache frame was mapped read-only.</summary>
    FilePageMapped,
    /// <summary>Write to a read-only shared frame (zero page, page cache): copied into a private frame.</summary>
    CopiedOnWrite,
    /// <summary>Write to an exclusively owned read-only page: made writable in place.</summary>
    WriteReused,
    /// <summary>The PTE held a swap entry: the page was read back from swap into a new frame.</summary>
    SwappedIn,
    /// <summary>No VMA covers the address: SIGSEGV with SEGV_MAPERR.</summary>
    SegvMapError,
    /// <summary>A VMA covers the address but forbids the access: SIGSEGV with SEGV_ACCERR.</summary>
    SegvAccessError,
    /// <summary>A file-backed page past the end of the file: SIGBUS with BUS_ADRERR.</summary>
    BusError,
    /// <summary>No frame could be allocated (the OOM killer's SIGKILL).</summary>
    OutOfMemory,
}

/// <summary>Helpers on <see cref="FaultOutcome"/>.</summary>
public static class FaultOutcomeExtensions
{
    /// <summary>True when the faulting access can be retried.</summary>
    public static bool IsResolved(this FaultOutcome outcome) => outcome <= FaultOutcome.SwappedIn;
}

/// <summary>
/// A process's memory: its VMAs, its page tables and its brk, with Linux's rules for mmap address
/// selection, munmap/mprotect splitting, stack growth and page faults. TLB invalidation follows
/// Linux x86: INVLPG per page for up to <see cref="TlbSingleFlushCeiling"/> pages, a full non-global
/// flush above, after a present PTE changes in a way <see cref="NeedsFlush"/> says the TLB must see (clearing it,
/// removing write, and changing the no-execute bit in either direction).
/// </summary>
public sealed partial class AddressSpace
{
    /// <summary>TASK_SIZE_MAX on x86-64 with 4-level paging: 2^47 minus one guard page.</summary>
    public const ulong TaskSize = (1UL << 47) - PagingConstants.PageSize;

    /// <summary>STACK_TOP without randomization: the stack ends at the top of user space.</summary>
    public const ulong StackTop = TaskSize;

    /// <summary>mmap_base without randomization: the stack gap is clamped to at least 128 MiB.</summary>
    public const ulong MmapBase = TaskSize - (128UL << 20);

    /// <summary>vm.mmap_min_addr default: nothing may be mapped below 64 KiB.</summary>
    public const ulong MmapMinAddress = 64 << 10;

    /// <summary>stack_guard_gap default: 256 pages kept free below a growing stack.</summary>
    public const ulong StackGuardGap = 256 * PagingConstants.PageSize;

    /// <summary>RLIMIT_STACK default soft limit (8 MiB).</summary>
    public const ulong StackLimit = 8UL << 20;

    /// <summary>tlb_single_page_flush_ceiling: above this many pages Linux flushes the whole TLB.</summary>
    public const int TlbSingleFlushCeiling = 33;

    /// <summary>
    /// Linux's _PAGE_PROTNONE: a PROT_NONE mapping keeps its frame in a PTE with P clear and bit 8
    /// (the global bit's position, ignored by hardware when P is clear) set.
    /// </summary>
    public const ulong ProtNoneBit = PageTableEntry.GlobalBit;

    readonly List<Vma> vmas = [];
    readonly KernelMemory memory;

    public AddressSpace(KernelMemory memory)
    {
        this.memory = memory;
        Tables = new PageTables(memory);
        OwnerId = memory.Frames.Owners.Register(this);
        memory.Register(this);
    }

    /// <summary>
    /// Tears the address space down (exit_mmap): every mapping is removed, frames and swap slots are
    /// released, the page tables are freed, and the reverse maps forget it.
    /// </summary>
    public void Destroy()
    {
        Unmap(0, TaskSize);
        Tables.FreeAll();
        memory.Unregister(this);
        memory.Frames.Owners.Unregister(OwnerId);
    }

    public PageTables Tables { get; }
    public KernelMemory Memory => memory;

    /// <summary>The VMAs in address order.</summary>
    public IReadOnlyList<Vma> Vmas => vmas;

    /// <summary>Start of the brk heap (page-aligned end of the loaded image).</summary>
    public ulong StartBrk { get; set; }

    /// <summary>Current program break as last set (not page-aligned).</summary>
    public ulong Brk { get; set; }

    /// <summary>Initial stack pointer's page region start, for naming [stack] in /proc/self/maps.</summary>
    public ulong StartStack { get; set; }

    /// <summary>
    /// Who pays for memory work done on this process's behalf (direct reclaim and compaction in its
    /// faults, memcg reclaim, swap-in): its virtual clock; null leaves the work uncharged.
    /// </summary>
    public ICostSink? CostSink { get; set; }

    /// <summary>Called after every page fault the handler services, with what it did (statistics, virtual time).</summary>
    public Action<FaultOutcome>? FaultHandled { get; set; }

    /// <summary>Frames mapped by user PTEs (resident set), zero page excluded.</summary>
    public long ResidentPages { get; private set; }

    /// <summary>Index of the first VMA whose end is above <paramref name="address"/> (Linux's find_vma).</summary>
    int FindIndex(ulong address)
    {
        int low = 0, high = vmas.Count;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (vmas[mid].End <= address) low = mid + 1;
            else high = mid;
        }
        return low;
    }

    /// <summary>The VMA containing <paramref name="address"/>, or null.</summary>
    public Vma? FindVma(ulong address)
    {
        int index = FindIndex(address);
        return index < vmas.Count && vmas[index].Start <= address ? vmas[index] : null;
    }

    static ulong GapBelow(Vma vma) => (vma.Flags & VmaFlags.GrowsDown) != 0 && vma.Start > StackGuardGap ? vma.Start - StackGuardGap : vma.Start;

    /// <summary>
    /// Chooses where a non-fixed mapping of <paramref name="length"/> bytes goes: the hint when that
    /// range is free, otherwise the highest free gap below <see cref="MmapBase"/> (top-down, as x86-64 Linux).
    /// </summary>
    public bool TryFindFreeRange(ulong length, ulong hint, out ulong start)
    {
        start = 0;
        if (length == 0 || length > TaskSize - MmapMinAddress)
            return false;
        if (hint != 0)
        {
            hint = (hint + PagingConstants.PageMask) & ~PagingConstants.PageMask;
            if (hint >= MmapMinAddress && hint <= TaskSize - length && IsFree(hint, hint + length))
            {
                start = hint;
                return true;
            }
        }
        // Gaps from the top down: the one below vmas[i + 1] (minus its stack guard gap) and above vmas[i].
        for (int i = vmas.Count - 1; i >= -1; i--)
        {
            ulong lower = i >= 0 ? Math.Max(vmas[i].End, MmapMinAddress) : MmapMinAddress;
            ulong upper = i + 1 < vmas.Count ? Math.Min(MmapBase, GapBelow(vmas[i + 1])) : MmapBase;
            if (upper > lower && upper - lower >= length)
            {
                start = upper - length;
                return true;
            }
        }
        return false;
    }

    bool IsFree(ulong start, ulong end)
    {
        int index = FindIndex(start);
        return index >= vmas.Count || GapBelow(vmas[index]) >= end;
    }

    /// <summary>
    /// Creates a mapping at [start, end) (both page-aligned), replacing whatever was there as MAP_FIXED
    /// does, and merges it with compatible neighbours. A shared mapping without a file gets a new shmem
    /// object of its size, mapped from offset 0 (shmem_zero_setup; do_mmap ignores the offset there).
    /// </summary>
    public Vma Map(ulong start, ulong end, Protection protection, VmaFlags flags, IMappableFile? file, long fileOffset)
    {
        Unmap(start, end);
        if (file is null && (flags & VmaFlags.Shared) != 0)
            (file, fileOffset) = (new ShmemFile((long)(end - start)), 0);
        var vma = new Vma(start, end, protection, flags, file, file is null ? 0 : fileOffset);
        int index = FindIndex(start);
        vmas.Insert(index, vma);
        return MergeAround(index);
    }

    /// <summary>Merges vmas[index] with its neighbours where Linux would; returns the resulting VMA.</summary>
    Vma MergeAround(int index)
    {
        if (index + 1 < vmas.Count && vmas[index].CanMergeWith(vmas[index + 1]))
        {
            vmas[index].End = vmas[index + 1].End;
            vmas.RemoveAt(index + 1);
        }
        if (index > 0 && vmas[index - 1].CanMergeWith(vmas[index]))
        {
            vmas[index - 1].End = vmas[index].End;
            vmas.RemoveAt(index);
            index--;
        }
        return vmas[index];
    }

    /// <summary>vm.max_map_count's default: USHRT_MAX minus the core-dump margin of 5.</summary>
    public const int DefaultMaxMapCount = 65530;

    /// <summary>vm.max_map_count (/proc/sys/vm/max_map_count): most VMAs an address space may have.</summary>
    public int MaxMapCount { get; set; } = DefaultMaxMapCount;

    /// <summary>do_mmap's check: a new mapping is refused (ENOMEM) once map_count is above the limit.</summary>
    public bool MapCountExceeded => vmas.Count > MaxMapCount;

    /// <summary>
    /// __split_vma's check: splitting a VMA at <paramref name="start"/> or <paramref name="end"/> (munmap, mprotect,
    /// madvise of part of a VMA) fails with ENOMEM when map_count is already at the limit.
    /// </summary>
    public bool CanSplitAt(ulong start, ulong end)
    {
        if (vmas.Count < MaxMapCount)
            return true;
        bool SplitsOne(ulong address) => FindVma(address) is { } vma && vma.Start < address;
        return !SplitsOne(start) && !SplitsOne(end);
    }

    /// <summary>Merges every VMA starting in [start, end) with its neighbours where Linux would (after a change of rights or flags).</summary>
    void MergeVmasIn(ulong start, ulong end)
    {
        for (int i = FindIndex(start); i < vmas.Count && vmas[i].Start < end;)
        {
            var merged = MergeAround(i);
            i = FindIndex(merged.End);
        }
    }

    /// <summary>Splits the VMA containing <paramref name="address"/> so that a VMA boundary falls there.</summary>
    void SplitAt(ulong address)
    {
        int index = FindIndex(address);
        if (index >= vmas.Count || vmas[index].Start >= address)
            return;
        var vma = vmas[index];
        var upper = vma.Slice(address, vma.End);
        vma.End = address;
        vmas.Insert(index + 1, upper);
    }

    /// <summary>Removes every mapping in [start, end): VMAs are split and trimmed, PTEs cleared, frames released, TLB flushed.</summary>
    public void Unmap(ulong start, ulong end)
    {
        if (start >= end)
            return;
        SplitAt(start);
        SplitAt(end);
        int first = FindIndex(start);
        int last = first;
        while (last < vmas.Count && vmas[last].End <= end)
            last++;
        if (last == first)
            return;
        var removed = vmas.GetRange(first, last - first);
        vmas.RemoveRange(first, last - first);
        ZapPages(start, end);
        foreach (var shmem in removed.Select(vma => vma.File).OfType<ShmemFile>().Distinct())
            memory.PageCache.ReleaseIfUnmapped(shmem);
    }

    /// <summary>
    /// Clears every mapping in [start, end) and releases the frames, leaving the VMAs in place
    /// (zap_page_range_single: munmap's second half, and MADV_DONTNEED).
    /// </summary>
    public void ZapPages(ulong start, ulong end)
    {
        var flush = new FlushGather();
        ZapOrSplitHugePmds(start, end, flush);
        Tables.VisitPtes(start, end, (linear, pteAddress) =>
        {
            var pte = Tables.Read(pteAddress);
            if (pte.Raw == 0)
                return;
            Tables.Write(pteAddress, default);
            if (!MapsFrame(pte))
            {
                ReleaseSwapEntry(new SwapPte(pte.Raw));
                return;
            }
            if (pte.IsPresent)
                flush.Add(linear);
            ReleaseMappedFrame(pte.FrameNumber, flush.UnmappedFolios ??= []);
        });
        Flush(flush);
    }

    /// <summary>
    /// Drops one PTE mapping of a frame (folio_remove_rmap_pte + folio_put). A large folio's page is
    /// unmapped alone while the folio lives on; whether the folio is left partly mapped (and queues for
    /// a deferred split) is judged once the whole batch is done, by the caller for the folios collected
    /// in <paramref name="unmappedFolios"/> when given (a zap removes a whole folio's PTEs together, as
    /// zap_present_ptes batches them), else now.
    /// </summary>
    internal void ReleaseMappedFrame(ulong frameNumber, HashSet<ulong>? unmappedFolios = null)
    {
        if (frameNumber == memory.ZeroFrame)
            return;
        ref var page = ref memory.Page(frameNumber);
        ulong head = memory.FolioOf(frameNumber);
        ResidentPages--;
        if (head != frameNumber || page.Order > 0)
        {
            page.MapCount--;
            if (unmappedFolios is not null)
                unmappedFolios.Add(head);
            else
                memory.CheckPartlyMapped(head);
            memory.Release(head);
            return;
        }
        // A frame still mapped by a forked relative stops being ours: unowned, compaction and reclaim
        // leave it alone until the remaining mapper writes to it and adopts it (see FaultWriteProtected).
        if (--page.MapCount > 0 && page.Use == FrameUse.Anonymous && page.Owner == OwnerId)
            memory.Frames.SetOwner(frameNumber, 0, 0);
        memory.Release(frameNumber);
    }

    /// <summary>
    /// mprotect on page-aligned [start, end): fails with ENOMEM (returns false, nothing changed) when
    /// part of the range is unmapped. Present PTEs are downgraded at once (and flushed); write
    /// permission is never added to a PTE here: the next write faults and is resolved then.
    /// </summary>
    public bool Protect(ulong start, ulong end, Protection protection)
    {
        if (!CanSplitAt(start, end))
            return false;
        // do_mprotect_pkey: an unmapped start changes nothing; otherwise VMAs are changed in order
        // up to the first hole, and the hole makes the call fail with ENOMEM.
        if (FindVma(start) is null)
            return false;
        ulong reached = start;
        while (reached < end && FindVma(reached) is { } next)
            reached = next.End;
        bool complete = reached >= end;
        end = Math.Min(end, reached);
        SplitAt(start);
        SplitAt(end);
        for (int i = FindIndex(start); i < vmas.Count && vmas[i].Start < end; i++)
        {
            vmas[i].Flags = AccountedFlags(vmas[i], protection);
            vmas[i].Protection = protection;
        }

        var flush = new FlushGather();
        ProtectOrSplitHugePmds(start, end, protection, flush);
        Tables.VisitPtes(start, end, (linear, pteAddress) =>
        {
            var old = Tables.Read(pteAddress);
            if (!old.IsPresent && (old.Raw & ProtNoneBit) == 0)
                return;
            var updated = WithProtection(old, protection);
            if (updated == old)
                return;
            Tables.Write(pteAddress, updated);
            if (NeedsFlush(old, updated))
                flush.Add(linear);
        });
        Flush(flush);
        MergeVmasIn(start, end);
        return complete;
    }

    /// <summary>
    /// mprotect_fixup's accounting: a private mapping that becomes writable is charged (VM_ACCOUNT)
    /// unless it is VM_NORESERVE or already charged; an anonymous one that stops being writable
    /// before any page was faulted in is uncharged. VMAs differing in these flags do not merge.
    /// </summary>
    VmaFlags AccountedFlags(Vma vma, Protection protection)
    {
        var flags = vma.Flags;
        bool writable = (protection & Protection.Write) != 0, wasWritable = (vma.Protection & Protection.Write) != 0;
        if (writable && !wasWritable && (flags & (VmaFlags.Account | VmaFlags.NoReserve | VmaFlags.Shared)) == 0)
            return flags | VmaFlags.Account;
        if (!writable && (flags & VmaFlags.Account) != 0 && vma.IsAnonymous && !HasAnonymousPages(vma))
            return flags & ~VmaFlags.Account;
        return flags;
    }

    /// <summary>True when a private page was faulted into the VMA (Linux: the VMA has an anon_vma).</summary>
    bool HasAnonymousPages(Vma vma)
    {
        bool found = false;
        Tables.VisitPtes(vma.Start, vma.End, (_, pteAddress) =>
        {
            var entry = Tables.Read(pteAddress);
            found |= MapsFrame(entry) && entry.FrameNumber != memory.ZeroFrame;
        });
        return found || HugePmdsIn(vma.Start, vma.End).Count > 0;
    }

    /// <summary>
    /// Linux x86's rule for a changed entry (pte_needs_flush, the accessed bit ignored): none when it was not present;
    /// otherwise a flush when the frame changes, when Present or Dirty is cleared, and when R/W, U/S, XD, G or the
    /// protection key changes in either direction. Adding execute permission needs one too: the CPU may still fault on
    /// its cached no-execute translation, and a fetch fault on a present page is an error (SIGSEGV), not a spurious
    /// fault to retry.
    /// </summary>
    static bool NeedsFlush(PageTableEntry old, PageTableEntry updated)
    {
        if (!old.IsPresent) return false;
        const ulong flushOnClear = PageTableEntry.PresentBit | PageTableEntry.DirtyBit;
        const ulong flushOnChange = PageTableEntry.WritableBit | PageTableEntry.UserBit | PageTableEntry.ExecuteDisableBit
            | PageTableEntry.GlobalBit | PageTableEntry.ProtectionKeyMask;
        ulong changed = old.Raw ^ updated.Raw;
        return old.Address != updated.Address || (changed & old.Raw & flushOnClear) != 0 || (changed & flushOnChange) != 0;
    }

    static PageTableEntry WithProtection(PageTableEntry entry, Protection protection)
    {
        if (protection == Protection.None)
            return entry.Without(PageTableEntry.PresentBit).With(ProtNoneBit);
        entry = entry.Without(ProtNoneBit).With(PageTableEntry.PresentBit | PageTableEntry.UserBit);
        if ((protection & Protection.Write) == 0)
            entry = entry.Without(PageTableEntry.WritableBit);
        return (protection & Protection.Exec) != 0 ? entry.Without(PageTableEntry.ExecuteDisableBit) : entry.With(PageTableEntry.ExecuteDisableBit);
    }

    /// <summary>A leaf entry mapping <paramref name="frameNumber"/> with the VMA's permissions, minus write unless <paramref name="writable"/>.</summary>
    static PageTableEntry LeafEntry(ulong frameNumber, Vma vma, bool writable)
    {
        ulong raw = (frameNumber << PagingConstants.PageBits) | PageTableEntry.PresentBit | PageTableEntry.UserBit;
        if (writable)
            raw |= PageTableEntry.WritableBit | PageTableEntry.DirtyBit;
        if ((vma.Protection & Protection.Exec) == 0)
            raw |= PageTableEntry.ExecuteDisableBit;
        return new PageTableEntry(raw);
    }

    /// <summary>
    /// The page-fault handler (Linux's do_user_addr_fault + handle_mm_fault for 4 KiB pages).
    /// <paramref name="present"/> is the P bit of the error code: the page was mapped but the access was not allowed.
    /// </summary>
    public FaultOutcome HandleFault(ulong address, AccessKind access, bool present)
    {
        memory.Frames.Counters.PageFaults++;
        var outcome = ServiceFault(address, access, present);
        FaultHandled?.Invoke(outcome);
        return outcome;
    }

    FaultOutcome ServiceFault(ulong address, AccessKind access, bool present)
    {
        if (address >= TaskSize)
            return FaultOutcome.SegvMapError;
        int index = FindIndex(address);
        if (index >= vmas.Count)
            return FaultOutcome.SegvMapError;
        var vma = vmas[index];
        if (vma.Start > address && !TryExpandStack(index, address))
            return FaultOutcome.SegvMapError;

        if (access == AccessKind.Write ? (vma.Protection & Protection.Write) == 0
                                       : present || vma.Protection == Protection.None)
            return FaultOutcome.SegvAccessError;

        if (vma.IsAnonymous && HandleHugePmdFault(vma, address, access) is { } hugeOutcome)
            return hugeOutcome;
        if (vma.IsShmem && FaultShmemHuge(vma, address, access) is { } shmemOutcome)
            return shmemOutcome;

        ulong page = address & ~PagingConstants.PageMask;
        if (!Tables.TryGetPteAddress(page, allocate: true, out ulong pteAddress))
            return FaultOutcome.OutOfMemory;
        var pte = Tables.Read(pteAddress);
        if (SwapPte.IsSwapEntry(pte.Raw))
            return FaultSwapIn(vma, page, pteAddress, new SwapPte(pte.Raw), access);
        if (!pte.IsPresent)
            return FaultMissingPage(vma, page, pteAddress, access);
        if (access == AccessKind.Write && !pte.IsWritable)
            return FaultWriteProtected(vma, page, pteAddress, pte);
        return FaultOutcome.Spurious;
    }

    FaultOutcome FaultMissingPage(Vma vma, ulong page, ulong pteAddress, AccessKind access)
    {
        bool write = access == AccessKind.Write;
        // A shared mapping maps the cached page itself, writable if the VMA is (no write-notify: shmem
        // needs no dirty tracking); a private one maps it read-only and copies it on write.
        bool shared = (vma.Flags & VmaFlags.Shared) != 0;
        ulong frame;
        FaultOutcome outcome;
        if (vma.File is null)
        {
            if (!write)
            {
                Tables.Write(pteAddress, LeafEntry(memory.ZeroFrame, vma, writable: false));
                return FaultOutcome.ZeroPageMapped;
            }
            if (!memory.TryAllocateZeroed(FrameUse.Anonymous, out frame, CostSink))
                return FaultOutcome.OutOfMemory;
            outcome = FaultOutcome.AnonymousZeroFilled;
        }
        else
        {
            long offset = vma.FileOffsetOf(page);
            if (offset >= vma.File.Length)
                return FaultOutcome.BusError;
            long index = offset >> PagingConstants.PageBits;
            // What the shmem object held decides the outcome: a page already there, one read back from swap, or a new zeroed one.
            var held = vma.IsShmem ? memory.PageCache.Find(vma.File, index, out _) : CachedPage.Present;
            if (!memory.PageCache.TryGetFrame(vma.File, index, out ulong cached, CostSink))
                return FaultOutcome.OutOfMemory;
            if (write && !shared)
            {
                if (!TryCopyPage(cached, out frame))
                    return FaultOutcome.OutOfMemory;
                outcome = FaultOutcome.CopiedOnWrite;
            }
            else
            {
                frame = cached;
                memory.Page(frame).RefCount++;
                outcome = !vma.IsShmem ? FaultOutcome.FilePageMapped : held switch
                {
                    CachedPage.None => FaultOutcome.ShmemPageAllocated,
                    CachedPage.Swapped => FaultOutcome.SwappedIn,
                    _ => FaultOutcome.SharedPageMapped,
                };
            }
        }
        memory.Page(frame).MapCount++;
        ResidentPages++;
        if (outcome is FaultOutcome.AnonymousZeroFilled or FaultOutcome.CopiedOnWrite)
            AdoptAnonymous(frame, page);
        var pte = LeafEntry(frame, vma, write);
        if (shared && (vma.Protection & Protection.Write) != 0)
            pte = pte.With(PageTableEntry.WritableBit); // writable but clean until written, as do_read_fault maps it
        Tables.Write(pteAddress, pte);
        if (vma.IsShmem && !write)
            FaultAround(vma, page);
        return outcome;
    }

    FaultOutcome FaultWriteProtected(Vma vma, ulong page, ulong pteAddress, PageTableEntry pte)
    {
        // wp_page_shared: a shared mapping made writable again (mprotect) writes to the same page.
        if ((vma.Flags & VmaFlags.Shared) != 0)
        {
            Tables.Write(pteAddress, pte.With(PageTableEntry.WritableBit | PageTableEntry.DirtyBit | PageTableEntry.AccessedBit));
            return FaultOutcome.WriteReused;
        }
        ulong old = pte.FrameNumber;
        if (old != memory.ZeroFrame && CanReuseAnonymous(old, page))
        {
            // wp_page_reuse: adding permission needs no flush; a stale read-only entry just faults again.
            // The frame may have been shared with a forked relative that let it go: it is ours now.
            ulong head = memory.FolioOf(old);
            memory.Frames.SetOwner(head, OwnerId, (page >> PagingConstants.PageBits) - (old - head));
            Tables.Write(pteAddress, pte.With(PageTableEntry.WritableBit | PageTableEntry.DirtyBit | PageTableEntry.AccessedBit));
            return FaultOutcome.WriteReused;
        }
        ulong frame;
        bool allocated = old == memory.ZeroFrame
            ? memory.TryAllocateZeroed(FrameUse.Anonymous, out frame, CostSink)
            : TryCopyPage(old, out frame);
        if (!allocated)
            return FaultOutcome.OutOfMemory;
        // wp_page_copy: ptep_clear_flush, then install the private copy.
        Tables.Write(pteAddress, default);
        memory.Guest.InvalidatePage(page);
        memory.Page(frame).MapCount++;
        ResidentPages++;
        AdoptAnonymous(frame, page);
        Tables.Write(pteAddress, LeafEntry(frame, vma, writable: true));
        ReleaseMappedFrame(old);
        return FaultOutcome.CopiedOnWrite;
    }

    /// <summary>
    /// May a write fault make the read-only PTE of anonymous <paramref name="frame"/> at
    /// <paramref name="page"/> writable instead of copying (wp_can_reuse_anon_folio)? An order-0 page: when
    /// this PTE is its only mapping and reference. A page of a large folio (a THP whose PMD was split):
    /// when every mapping of the folio is a PTE of this address space in the same 2 MiB table, there is
    /// more than one, and no reference beyond them is held (__wp_can_reuse_large_anon_folio: a folio
    /// with a single page left mapped is rather copied out and freed).
    /// </summary>
    bool CanReuseAnonymous(ulong frame, ulong page)
    {
        ref var info = ref memory.Page(frame);
        if (info.Use != FrameUse.Anonymous)
            return false;
        ulong head = memory.FolioOf(frame);
        if (head == frame && info.Order == 0)
            return info.RefCount == 1 && info.MapCount == 1;
        int mappings = memory.FolioMapCount(head);
        return mappings > 1 && memory.Page(head).RefCount == mappings && MapsFolioAlone(head, page);
    }

    /// <summary>
    /// Is every mapping of the large folio at <paramref name="head"/> a PTE of this address space in the
    /// 2 MiB page table holding <paramref name="linear"/> (so no other process, nor a PMD, maps any of it)?
    /// </summary>
    bool MapsFolioAlone(ulong head, ulong linear)
    {
        ref var folio = ref memory.Page(head);
        if (folio.EntireMapCount != 0)
            return false;
        ulong end = head + (1UL << folio.Order);
        ulong region = linear & ~PagingConstants.LargePageMask;
        int ours = 0;
        Tables.VisitPtes(region, region + PagingConstants.LargePageSize, (_, pteAddress) =>
        {
            var entry = Tables.Read(pteAddress);
            if (MapsFrame(entry) && entry.FrameNumber >= head && entry.FrameNumber < end)
                ours++;
        });
        return ours == memory.FolioMapCount(head);
    }

    /// <summary>
    /// Allocates a private anonymous copy of <paramref name="source"/>, holding a reference on the
    /// source's folio meanwhile (get_page): reclaim and compaction refuse a page with references beyond
    /// its mappings, so the source can neither move nor go while the allocation reclaims or compacts.
    /// </summary>
    bool TryCopyPage(ulong source, out ulong frame)
    {
        memory.GetFolio(source);
        bool allocated = memory.TryAllocateCopy(source, FrameUse.Anonymous, out frame, CostSink);
        memory.Release(source);
        return allocated;
    }

    /// <summary>Linux's expand_downwards: grow vmas[index] (a GrowsDown VMA) down to the page of <paramref name="address"/>.</summary>
    bool TryExpandStack(int index, ulong address)
    {
        var vma = vmas[index];
        if ((vma.Flags & VmaFlags.GrowsDown) == 0)
            return false;
        ulong page = address & ~PagingConstants.PageMask;
        if (page < MmapMinAddress || vma.End - page > StackLimit)
            return false;
        if (index > 0)
        {
            var below = vmas[index - 1];
            if ((below.Flags & VmaFlags.GrowsDown) == 0 && below.Protection != Protection.None && page - below.End < StackGuardGap)
                return false;
            if (below.End > page)
                return false;
        }
        vma.Start = page;
        return true;
    }

    /// <summary>
    /// brk(2): returns the new break, or the old one when the request is refused (below the heap
    /// start, or colliding with the next mapping and its guard gap).
    /// </summary>
    public ulong SetBrk(ulong requested)
    {
        if (requested < StartBrk)
            return Brk;
        ulong newEnd = PageAlignUp(requested);
        ulong oldEnd = PageAlignUp(Brk);
        if (newEnd < oldEnd)
        {
            Unmap(newEnd, oldEnd);
        }
        else if (newEnd > oldEnd)
        {
            int next = FindIndex(oldEnd);
            if (newEnd > TaskSize || (next < vmas.Count && newEnd + PagingConstants.PageSize > GapBelow(vmas[next])))
                return Brk;
            Map(oldEnd, newEnd, Protection.Read | Protection.Write, VmaFlags.Account, null, 0);
        }
        Brk = requested;
        return Brk;
    }

    /// <summary>Rounds up to a page boundary (saturating at the top of the address space).</summary>
    public static ulong PageAlignUp(ulong value) =>
        value > ulong.MaxValue - PagingConstants.PageMask ? ulong.MaxValue & ~PagingConstants.PageMask : (value + PagingConstants.PageMask) & ~PagingConstants.PageMask;

    /// <summary>The text of /proc/self/maps, in Linux's exact format.</summary>
    public string FormatMaps()
    {
        var text = new StringBuilder();
        foreach (var vma in vmas)
            AppendMapsLine(text, vma);
        return text.ToString();
    }

    /// <summary>One /proc/self/maps line (also the header of each /proc/self/smaps entry).</summary>
    void AppendMapsLine(StringBuilder text, Vma vma)
    {
        int lineStart = text.Length;
        var (device, inode) = vma.File?.Identity ?? (0UL, 0UL);
        text.Append($"{vma.Start:x8}-{vma.End:x8} ");
        text.Append((vma.Protection & Protection.Read) != 0 ? 'r' : '-');
        text.Append((vma.Protection & Protection.Write) != 0 ? 'w' : '-');
        text.Append((vma.Protection & Protection.Exec) != 0 ? 'x' : '-');
        text.Append((vma.Flags & VmaFlags.Shared) != 0 ? 's' : 'p');
        text.Append($" {(vma.File is null ? 0 : vma.FileOffset):x8} {DeviceMajor(device):x2}:{DeviceMinor(device):x2} {inode} ");
        string? name = vma.File?.Path
            ?? (vma.Start <= Brk && vma.End >= StartBrk && StartBrk != 0 ? "[heap]"
            : vma.Start <= StartStack && vma.End >= StartStack ? "[stack]" : null);
        if (name is not null)
        {
            // seq_pad: the header is padded to 25 + 6 * sizeof(void *) - 1 = 72 columns, then one space.
            text.Append(' ', Math.Max(0, 72 - (text.Length - lineStart)));
            text.Append(' ').Append(name);
        }
        text.Append('\n');
    }

    /// <summary>glibc's gnu_dev_major: the major number of an encoded dev_t.</summary>
    static ulong DeviceMajor(ulong device) => ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfffUL);

    /// <summary>glibc's gnu_dev_minor.</summary>
    static ulong DeviceMinor(ulong device) => (device & 0xff) | ((device >> 12) & ~0xffUL);

    /// <summary>
    /// The pages whose PTEs were cleared or downgraded (Linux's mmu_gather range), flushed as
    /// flush_tlb_mm_range does: INVLPG per page up to the ceiling, a full flush above it.
    /// </summary>
    sealed class FlushGather
    {
        public ulong Start = ulong.MaxValue;
        public ulong End;

        /// <summary>Large folios that lost PTE mappings in the batch: checked for a deferred split at the flush.</summary>
        public HashSet<ulong>? UnmappedFolios;

        public void Add(ulong linear)
        {
            Start = Math.Min(Start, linear);
            End = Math.Max(End, linear + PagingConstants.PageSize);
        }

        /// <summary>Adds every page of [start, end), e.g. a whole huge mapping.</summary>
        public void AddRange(ulong start, ulong end)
        {
            Add(start);
            Add(end - PagingConstants.PageSize);
        }
    }

    void Flush(FlushGather gather)
    {
        foreach (ulong head in gather.UnmappedFolios ?? [])
            memory.CheckPartlyMapped(head);
        if (gather.End == 0)
            return;
        ulong pages = (gather.End - gather.Start) >> PagingConstants.PageBits;
        if (pages > TlbSingleFlushCeiling)
        {
            memory.Guest.FlushNonGlobal();
            return;
        }
        for (ulong page = gather.Start; page < gather.End; page += PagingConstants.PageSize)
            memory.Guest.InvalidatePage(page);
    }
}
