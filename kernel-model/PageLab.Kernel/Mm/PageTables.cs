using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Kernel.Mm;

/// <summary>One level of a walk: the entry that translated (or failed to translate) an address.</summary>
/// <param name="Level">Paging level of the table the entry lives in.</param>
/// <param name="EntryAddress">Physical address of the 8-byte entry.</param>
/// <param name="Entry">The entry read from physical memory.</param>
public readonly record struct PageTablePathStep(PagingLevel Level, ulong EntryAddress, PageTableEntry Entry)
{
    public override string ToString() => $"{LevelName(Level)}[0x{EntryAddress:x}] = 0x{Entry.Raw:x16} ({Entry})";

    static string LevelName(PagingLevel level) => level switch
    {
        PagingLevel.Pml4 => "PML4E",
        PagingLevel.Pdpt => "PDPTE",
        PagingLevel.PageDirectory => "PDE",
        _ => "PTE",
    };
}

/// <summary>
/// A process's 4-level page tables, written by the kernel model as real 8-byte entries into
/// emulated physical memory (DESIGN.md point 1). Table frames come from the frame allocator as
/// <see cref="FrameUse.PageTable"/>. This class only reads and writes entries: the TLB
/// invalidation that must follow a change is the caller's (the address space's) decision.
/// </summary>
public sealed class PageTables
{
    const int LevelCount = 4;
    readonly KernelMemory memory;

    /// <summary>Allocates an empty PML4.</summary>
    /// <exception cref="InvalidOperationException">No frame is left for the root table.</exception>
    public PageTables(KernelMemory memory)
    {
        this.memory = memory;
        if (!memory.TryAllocateZeroed(FrameUse.PageTable, out ulong root))
            throw new InvalidOperationException("no frame for a PML4");
        RootFrame = root;
        TableFrames = 1;
    }

    /// <summary>Frame number of the PML4.</summary>
    public ulong RootFrame { get; }

    /// <summary>The CR3 value that selects these tables (PCID 0).</summary>
    public ulong Cr3 => RootFrame << PagingConstants.PageBits;

    /// <summary>Frames used by tables at all levels.</summary>
    public int TableFrames { get; private set; }

    static int IndexAt(ulong linear, int level) =>
        (int)((linear >> (PagingConstants.PageBits + (level - 1) * PagingConstants.LevelBits)) & (PagingConstants.EntriesPerTable - 1));

    /// <summary>
    /// Finds the physical address of the entry at <paramref name="targetLevel"/> for <paramref name="linear"/>.
    /// With <paramref name="allocate"/>, missing tables above it are allocated (zeroed) and linked; otherwise a
    /// missing table yields false. A huge (PS) entry above the target level also yields false: there is no
    /// table below it. False with allocate set means the frame allocator ran dry.
    /// </summary>
    public bool TryGetEntryAddress(ulong linear, PagingLevel targetLevel, bool allocate, out ulong entryAddress)
    {
        ulong table = Cr3;
        for (int level = LevelCount; level > (int)targetLevel; level--)
        {
            ulong address = table + (ulong)IndexAt(linear, level) * PagingConstants.EntrySize;
            var entry = Read(address);
            if (entry.Raw != 0 && (entry.IsLargePage || !entry.IsPresent))
            {
                // A huge leaf (present or PROT_NONE) has no table below it.
                entryAddress = 0;
                return false;
            }
            if (entry.Raw == 0)
            {
                if (!allocate || !TryAllocateTable(out ulong frame))
                {
                    entryAddress = 0;
                    return false;
                }
                entry = PageTableEntry.Table(frame << PagingConstants.PageBits);
                Write(address, entry);
            }
            table = entry.Address;
        }
        entryAddress = table + (ulong)IndexAt(linear, (int)targetLevel) * PagingConstants.EntrySize;
        return true;
    }

    /// <summary>The PTE address of <paramref name="linear"/>; see <see cref="TryGetEntryAddress"/> (a huge PMD has no PTEs).</summary>
    public bool TryGetPteAddress(ulong linear, bool allocate, out ulong pteAddress) =>
        TryGetEntryAddress(linear, PagingLevel.PageTable, allocate, out pteAddress);

    /// <summary>The PMD (PDE) address of <paramref name="linear"/>, allocating the PML4E/PDPTE levels when asked.</summary>
    public bool TryGetPmdAddress(ulong linear, bool allocate, out ulong pmdAddress) =>
        TryGetEntryAddress(linear, PagingLevel.PageDirectory, allocate, out pmdAddress);

    /// <summary>Allocates a zeroed frame for a page table and counts it.</summary>
    public bool TryAllocateTable(out ulong frameNumber)
    {
        if (!memory.TryAllocateZeroed(FrameUse.PageTable, out frameNumber))
            return false;
        TableFrames++;
        return true;
    }

    /// <summary>Frees a page-table frame that no entry references any more.</summary>
    public void FreeTable(ulong frameNumber)
    {
        TableFrames--;
        memory.Release(frameNumber);
    }

    /// <summary>
    /// Frees every table, the PML4 included (free_pgtables at exit, after every mapping was zapped):
    /// the tables must no longer be in use by the MMU.
    /// </summary>
    public void FreeAll() => FreeTableTree(RootFrame, LevelCount);

    void FreeTableTree(ulong frame, int level)
    {
        if (level > 1)
        {
            for (int i = 0; i < PagingConstants.EntriesPerTable; i++)
            {
                var entry = Read((frame << PagingConstants.PageBits) + (ulong)i * PagingConstants.EntrySize);
                if (entry.IsPresent && !entry.IsLargePage)
                    FreeTableTree(entry.FrameNumber, level - 1);
            }
        }
        FreeTable(frame);
    }

    /// <summary>
    /// Calls <paramref name="visit"/>(linear, pteAddress) for every PTE slot of [start, end) that lies in
    /// an existing page table; ranges whose tables were never allocated, and huge (PMD-mapped) ranges, are skipped whole.
    /// </summary>
    public void VisitPtes(ulong start, ulong end, Action<ulong, ulong> visit)
    {
        ulong linear = start;
        while (linear < end && linear >= start)
        {
            ulong table = Cr3;
            int level = LevelCount;
            for (; level > 1; level--)
            {
                var entry = Read(table + (ulong)IndexAt(linear, level) * PagingConstants.EntrySize);
                if (!entry.IsPresent || entry.IsLargePage)
                    break; // a huge PMD has no PTEs: the caller deals with huge mappings first
                table = entry.Address;
            }
            // An absent entry at `level` covers 2^(12 + 9 * (level - 1)) bytes; a page table covers 2 MiB.
            int coveredBits = PagingConstants.PageBits + Math.Max(level - 1, 1) * PagingConstants.LevelBits;
            ulong covered = 1UL << coveredBits;
            ulong regionEnd = (linear & ~(covered - 1)) + covered;
            if (level == 1)
            {
                for (ulong page = linear; page < end && page < regionEnd; page += PagingConstants.PageSize)
                    visit(page, table + (ulong)IndexAt(page, 1) * PagingConstants.EntrySize);
            }
            linear = regionEnd;
        }
    }

    /// <summary>The PTE of <paramref name="linear"/>, or an empty entry when no page table covers it.</summary>
    public PageTableEntry ReadPte(ulong linear) =>
        TryGetPteAddress(linear, allocate: false, out ulong address) ? Read(address) : default;

    /// <summary>Reads the entry at a physical address.</summary>
    public PageTableEntry Read(ulong entryAddress)
    {
        var status = memory.Physical.TryRead64(entryAddress, out ulong raw);
        return status == PhysicalAccessStatus.Ok ? new PageTableEntry(raw) : default;
    }

    /// <summary>Writes the entry at a physical address (tables always lie inside physical memory).</summary>
    public void Write(ulong entryAddress, PageTableEntry entry) => memory.Physical.TryWrite64(entryAddress, entry.Raw);

    /// <summary>The entries a walk of <paramref name="linear"/> reads, from the PML4 down to the first non-present or leaf entry.</summary>
    public PageTablePathStep[] Walk(ulong linear)
    {
        var steps = new List<PageTablePathStep>(LevelCount);
        ulong table = Cr3;
        for (int level = LevelCount; level >= 1; level--)
        {
            ulong entryAddress = table + (ulong)IndexAt(linear, level) * PagingConstants.EntrySize;
            var entry = Read(entryAddress);
            steps.Add(new PageTablePathStep((PagingLevel)level, entryAddress, entry));
            if (!entry.IsPresent || (level is 2 or 3 && entry.IsLargePage))
                break;
            table = entry.Address;
        }
        return [.. steps];
    }
}
