using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>The CPU state one translation depends on, as the reference walker reads it.</summary>
internal readonly record struct ReferenceCpu(ControlFlags Flags, bool UserMode, bool AlignmentCheck, uint Pkru, int MaxPhysicalAddressBits)
{
    public bool Has(ControlFlags flag) => (Flags & flag) != 0;
}

/// <summary>The rights a walk has accumulated so far: R/W and U/S are ANDed over the levels, XD is ORed.</summary>
internal readonly record struct ReferenceRights(bool Writable, bool User, bool ExecuteDisable)
{
    public static readonly ReferenceRights Root = new(Writable: true, User: true, ExecuteDisable: false);
}

/// <summary>One paging-structure entry a walk read: its level (5 = PML5E ... 1 = PTE), where it lies and its value.</summary>
internal readonly record struct ReferenceStep(int Level, ulong EntryAddress, ulong Raw, ReferenceRights RightsAfter);

/// <summary>A successful translation: what a TLB entry for it may hold.</summary>
internal sealed record ReferenceLeaf(ulong LinearPage, PageSize Size, ulong PhysicalPage, ReferenceRights Rights, bool Dirty, bool Global, int ProtectionKey)
{
    public bool Covers(ulong linear) => (linear & ~(Size.Bytes() - 1)) == LinearPage;
}

/// <summary>What the reference says one access does: the fault (or none), the physical address, and the entries it read.</summary>
internal sealed record ReferenceResult(TranslationFaultKind Kind, PageFaultErrorCode ErrorCode, ulong Linear, ulong Physical, IReadOnlyList<ReferenceStep> Steps, ReferenceLeaf? Leaf)
{
    public bool IsFault => Kind != TranslationFaultKind.None;

    public override string ToString() => IsFault ? $"{Kind} error={ErrorCode} cr2=0x{Linear:x}" : $"ok phys=0x{Physical:x} ({Leaf?.Size.Name()})";
}

/// <summary>
/// A deliberately simple model of IA-32e paging, written from the text of Intel SDM Vol. 3A ch. 4 and nothing else:
/// one recursive step per level, no caches, no shortcuts. Property tests hold the fast <see cref="Mmu"/> to it.
/// It never writes memory: <see cref="AccessedDirtyUpdates"/> says what a translation writes back.
/// </summary>
internal static class ReferenceWalker
{
    const ulong P = 1UL << 0, RW = 1UL << 1, US = 1UL << 2, A = 1UL << 5, D = 1UL << 6, PS = 1UL << 7, G = 1UL << 8, XD = 1UL << 63;

    /// <summary>Translates <paramref name="linear"/> starting from the root table named by CR3.</summary>
    public static ReferenceResult Translate(PhysicalMemory memory, ReferenceCpu cpu, ulong cr3, ulong linear, AccessKind kind)
    {
        int levels = cpu.Has(ControlFlags.La57) ? 5 : 4;
        if (!IsCanonical(linear, 12 + 9 * levels))
            return new ReferenceResult(TranslationFaultKind.GeneralProtection, PageFaultErrorCode.None, linear, 0, [], null);
        return TranslateFrom(memory, cpu, levels, cr3 & AddressBits(cpu), ReferenceRights.Root, linear, kind);
    }

    /// <summary>
    /// Continues a walk at <paramref name="level"/> in <paramref name="table"/> with the rights gathered above it: what a
    /// walk does after a paging-structure-cache hit (SDM 4.10.3.2).
    /// </summary>
    public static ReferenceResult TranslateFrom(PhysicalMemory memory, ReferenceCpu cpu, int level, ulong table, ReferenceRights rights, ulong linear, AccessKind kind)
    {
        var steps = new List<ReferenceStep>();
        return Step(memory, cpu, level, table, rights, linear, kind, steps);
    }

    static ReferenceResult Step(PhysicalMemory memory, ReferenceCpu cpu, int level, ulong table, ReferenceRights rights, ulong linear, AccessKind kind, List<ReferenceStep> steps)
    {
        int shift = 12 + 9 * (level - 1);
        ulong entryAddress = table + ((linear >> shift) & 511) * 8;
        if (memory.TryRead64(entryAddress, out ulong entry) != PhysicalAccessStatus.Ok)
            return new ReferenceResult(TranslationFaultKind.MachineCheck, PageFaultErrorCode.None, linear, 0, steps, null);

        // SDM 4.7: P = 0 in any entry is a not-present fault.
        if ((entry & P) == 0)
            return PageFault(cpu, kind, linear, steps, PageFaultErrorCode.None);

        bool isLeaf = level == 1 || ((level == 2 || level == 3) && (entry & PS) != 0);
        if (HasReservedBitSet(cpu, level, isLeaf, entry))
            return PageFault(cpu, kind, linear, steps, PageFaultErrorCode.Present | PageFaultErrorCode.ReservedBit);

        // SDM 4.6.1: a linear address is writable / user-mode only if every entry says so; XD in any entry (with NXE) forbids fetches.
        rights = new ReferenceRights(
            rights.Writable && (entry & RW) != 0,
            rights.User && (entry & US) != 0,
            rights.ExecuteDisable || (cpu.Has(ControlFlags.NoExecuteEnable) && (entry & XD) != 0));
        steps.Add(new ReferenceStep(level, entryAddress, entry, rights));

        if (!isLeaf)
            return Step(memory, cpu, level - 1, entry & AddressBits(cpu), rights, linear, kind, steps);

        var size = level switch { 1 => PageSize.Size4K, 2 => PageSize.Size2M, _ => PageSize.Size1G };
        ulong pageMask = size.Bytes() - 1;
        int key = cpu.Has(ControlFlags.ProtectionKeys) ? (int)((entry >> 59) & 0xF) : 0;
        var violation = Violation(cpu, rights, key, kind);
        if (violation != PageFaultErrorCode.None)
            return PageFault(cpu, kind, linear, steps, violation);

        ulong physicalPage = entry & AddressBits(cpu) & ~pageMask;
        var leaf = new ReferenceLeaf(linear & ~pageMask, size, physicalPage, rights,
            Dirty: (entry & D) != 0 || kind == AccessKind.Write,
            Global: (entry & G) != 0 && cpu.Has(ControlFlags.PageGlobalEnable),
            ProtectionKey: key);
        return new ReferenceResult(TranslationFaultKind.None, PageFaultErrorCode.None, linear, physicalPage | (linear & pageMask), steps, leaf);
    }

    /// <summary>Reserved bits of SDM tables 4-14..4-20: bits 51:MAXPHYADDR everywhere, XD without NXE, PS in a PML5E/PML4E,
    /// and the bits between the PAT bit and the page address of a 1 GiB / 2 MiB leaf.</summary>
    static bool HasReservedBitSet(ReferenceCpu cpu, int level, bool isLeaf, ulong entry)
    {
        for (int bit = cpu.MaxPhysicalAddressBits; bit <= 51; bit++)
            if ((entry & (1UL << bit)) != 0) return true;
        if (!cpu.Has(ControlFlags.NoExecuteEnable) && (entry & XD) != 0) return true;
        if (level >= 4 && (entry & PS) != 0) return true;
        int lowestAddressBit = !isLeaf ? 12 : level switch { 3 => 30, 2 => 21, _ => 12 };
        for (int bit = 13; bit < lowestAddressBit; bit++)
            if ((entry & (1UL << bit)) != 0) return true;
        return false;
    }

    /// <summary>
    /// SDM 4.6.1 (access rights) and 4.6.2 (protection keys) for a completed translation. Returns the P, PK and
    /// nothing else of the error code, or None when the access is allowed. The PK bit is reported whenever the
    /// protection key forbids the access, even when the ordinary rights forbid it as well (SDM 4.7).
    /// </summary>
    public static PageFaultErrorCode Violation(ReferenceCpu cpu, ReferenceRights rights, int key, AccessKind kind)
    {
        bool userAddress = rights.User;
        bool supervisorMayWriteReadOnly = !cpu.Has(ControlFlags.WriteProtect);
        bool smapBlocks = cpu.Has(ControlFlags.Smap) && !cpu.AlignmentCheck;
        bool forbidden;
        if (kind == AccessKind.Fetch)
        {
            if (cpu.UserMode)
                forbidden = !userAddress || rights.ExecuteDisable;
            else
                forbidden = (userAddress && cpu.Has(ControlFlags.Smep)) || rights.ExecuteDisable;
        }
        else if (kind == AccessKind.Read)
        {
            forbidden = cpu.UserMode ? !userAddress : userAddress && smapBlocks;
        }
        else if (cpu.UserMode)
        {
            forbidden = !userAddress || !rights.Writable;
        }
        else
        {
            forbidden = (userAddress && smapBlocks) || (!rights.Writable && !supervisorMayWriteReadOnly);
        }

        bool keyForbids = false;
        if (kind != AccessKind.Fetch && userAddress && cpu.Has(ControlFlags.ProtectionKeys))
        {
            bool accessDisabled = ((cpu.Pkru >> (2 * key)) & 1) != 0;
            bool writeDisabled = ((cpu.Pkru >> (2 * key + 1)) & 1) != 0;
            keyForbids = accessDisabled
                || (kind == AccessKind.Write && writeDisabled && (cpu.UserMode || cpu.Has(ControlFlags.WriteProtect)));
        }
        if (!forbidden && !keyForbids) return PageFaultErrorCode.None;
        return PageFaultErrorCode.Present | (keyForbids ? PageFaultErrorCode.ProtectionKey : PageFaultErrorCode.None);
    }

    /// <summary>The #PF for <paramref name="linear"/>: the given bits plus W/R, U/S and I/D (SDM 4.7).</summary>
    static ReferenceResult PageFault(ReferenceCpu cpu, AccessKind kind, ulong linear, List<ReferenceStep> steps, PageFaultErrorCode bits) =>
        new(TranslationFaultKind.PageFault, bits | AccessBits(cpu, kind), linear, 0, steps, null);

    /// <summary>The error-code bits that describe the access itself.</summary>
    public static PageFaultErrorCode AccessBits(ReferenceCpu cpu, AccessKind kind)
    {
        var bits = PageFaultErrorCode.None;
        if (kind == AccessKind.Write) bits |= PageFaultErrorCode.Write;
        if (cpu.UserMode) bits |= PageFaultErrorCode.User;
        if (kind == AccessKind.Fetch && (cpu.Has(ControlFlags.NoExecuteEnable) || cpu.Has(ControlFlags.Smep)))
            bits |= PageFaultErrorCode.InstructionFetch;
        return bits;
    }

    /// <summary>
    /// The entry values a translation leaves in memory: A set in every entry it used, D in the leaf of a write (SDM 4.8).
    /// A faulting access leaves the entries as they were (the SDM permits either; this is the choice PageLab makes).
    /// Entries are applied in walk order, so an entry used at two levels ends with every bit either use set.
    /// </summary>
    public static IEnumerable<(ulong Address, ulong SetBits)> AccessedDirtyUpdates(ReferenceResult result, AccessKind kind)
    {
        if (result.IsFault) yield break;
        for (int i = 0; i < result.Steps.Count; i++)
        {
            bool leaf = i == result.Steps.Count - 1;
            yield return (result.Steps[i].EntryAddress, leaf && kind == AccessKind.Write ? A | D : A);
        }
    }

    static ulong AddressBits(ReferenceCpu cpu) => ((1UL << cpu.MaxPhysicalAddressBits) - 1) & ~0xFFFUL;

    static bool IsCanonical(ulong linear, int bits)
    {
        ulong upper = linear >> (bits - 1);
        return upper == 0 || upper == (ulong.MaxValue >> (bits - 1));
    }
}
