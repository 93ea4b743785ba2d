using System.Text;
using CsCheck;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>
/// Property tests: the fast <see cref="Mmu"/> (TLBs, paging-structure caches, vector tag compare) against the
/// deliberately simple <see cref="ReferenceWalker"/> on random page-table states, access kinds, privilege levels,
/// control bits, EFLAGS.AC and PKRU. Cases come from fixed seeds, so every run checks the same states.
/// </summary>
public sealed class MmuPropertyTests
{
    const int SingleAccessCases = 2000;
    const int SequenceCases = 1000;

    sealed record Access(int Choice, ulong Offset, AccessKind Kind, bool UserMode, bool AlignmentCheck, uint Pkru, bool NonCanonical)
    {
        public static Access Random(RandomBits bits, int choices) => new(
            bits.Below(choices), bits.Take(12), (AccessKind)bits.Below(3), bits.Chance(50), bits.Chance(30),
            bits.Chance(50) ? 0 : (uint)bits.Take(32), bits.Chance(3));

        public ulong Linear(RandomPagingState state)
        {
            ulong linear = state.Linear(Choice, Offset);
            return NonCanonical ? linear ^ (1UL << 62) : linear;
        }
    }

    static void Apply(Mmu mmu, Access access)
    {
        mmu.UserMode = access.UserMode;
        mmu.AlignmentCheck = access.AlignmentCheck;
        mmu.Pkru = access.Pkru;
    }

    static string Compare(ReferenceResult expected, TranslationFault actual, ulong actualPhysical)
    {
        if (expected.Kind != actual.Kind) return $"kind {actual.Kind}, reference {expected.Kind}";
        if (expected.Kind == TranslationFaultKind.PageFault && expected.ErrorCode != actual.ErrorCode)
            return $"error code {actual.ErrorCode}, reference {expected.ErrorCode}";
        if (expected.IsFault && expected.Linear != actual.LinearAddress) return $"CR2 0x{actual.LinearAddress:x}, reference 0x{expected.Linear:x}";
        if (!expected.IsFault && expected.Physical != actualPhysical) return $"physical 0x{actualPhysical:x}, reference 0x{expected.Physical:x}";
        return "";
    }

    static ulong[] Snapshot(PhysicalMemory memory, RandomPagingState state)
    {
        var values = new ulong[state.Entries.Length];
        for (int slot = 0; slot < values.Length; slot++) memory.TryRead64(state.SlotAddress(slot), out values[slot]);
        return values;
    }

    static void ApplyAccessedDirty(PhysicalMemory memory, ReferenceResult result, AccessKind kind)
    {
        foreach (var (address, setBits) in ReferenceWalker.AccessedDirtyUpdates(result, kind))
        {
            memory.TryRead64(address, out ulong raw);
            memory.TryWrite64(address, raw | setBits);
        }
    }

    /// <summary>
    /// access.c's check, on random states: for each access (the first ones fill the TLB, as its AC_ACCESS_TWICE does),
    /// fault or not, the fault kind, error code, CR2, the physical address and the A/D bits left in every entry agree.
    /// The tables do not change between the accesses, so a TLB hit must give what a walk gives.
    /// </summary>
    [Fact]
    public void Translate_AgreesWithReferenceWalker_OnRandomPageTableStates()
    {
        SeededCases.ForEach(RandomPagingState.Words, SingleAccessCases, words =>
        {
            var bits = new RandomBits(words);
            var state = new RandomPagingState(bits);
            int root = bits.Below(RandomPagingState.TableCount);
            ulong cr3 = RandomPagingState.TableAddress(root) | ((state.Flags & ControlFlags.PcidEnable) != 0 ? bits.Take(12) : 0);
            var accesses = Enumerable.Range(0, 1 + bits.Below(4)).Select(_ => Access.Random(bits, state.AddressChoices)).ToArray();

            using var mmuMemory = state.Build();
            using var referenceMemory = state.Build();
            var mmu = new Mmu(mmuMemory, state.Tlb, state.MaxPhysicalAddressBits, state.Flags);
            mmu.WriteCr3(cr3);
            var trace = new StringBuilder();
            foreach (var access in accesses)
            {
                ulong linear = access.Linear(state);
                Apply(mmu, access);
                var expected = ReferenceWalker.Translate(referenceMemory, state.Cpu(access.UserMode, access.AlignmentCheck, access.Pkru), cr3, linear, access.Kind);
                ApplyAccessedDirty(referenceMemory, expected, access.Kind);
                var actual = mmu.Translate(linear, access.Kind, out ulong physical);
                trace.Append($"{access} at 0x{linear:x}: mmu {actual} 0x{physical:x}; reference {expected}\n");

                string mismatch = Compare(expected, actual, physical);
                if (mismatch.Length == 0 && !Snapshot(mmuMemory, state).SequenceEqual(Snapshot(referenceMemory, state)))
                    mismatch = "A/D bits differ";
                if (mismatch.Length != 0)
                    throw new InvalidOperationException($"{mismatch}\ncr3 0x{cr3:x}\n{trace}mmu memory:\n{state.Describe(mmuMemory)}reference memory:\n{state.Describe(referenceMemory)}");
            }
        });
    }

    /// <summary>
    /// A TLB hit is checked against the control bits of the moment (CR0.WP, CR4.SMEP, SMAP and PKE, CPL, EFLAGS.AC,
    /// PKRU), not against those of the walk that filled it. None of these changes requires an invalidation (setting SMEP
    /// does one). Random sequences of such changes and of accesses to four pages with random U/S, R/W, XD and protection
    /// keys; every access is compared with a fresh reference walk under the bits of the moment.
    /// </summary>
    [Fact]
    public void TlbHits_AreCheckedAgainstTheCurrentControlBits()
    {
        SeededCases.ForEach(Gen.ULong.Array[48], 500, words =>
        {
            var bits = new RandomBits(words);
            using var m = new MachineFixture(TlbConfig.IntelGoldenCove);
            var pages = new ulong[4];
            for (int i = 0; i < pages.Length; i++)
            {
                pages[i] = 0x0000_7f00_0000_0000 + (ulong)i * PagingConstants.PageSize;
                ulong leaf = PageTableEntry.PresentBit | (bits.Take(2) << 1) // R/W and U/S
                    | (bits.Chance(30) ? PageTableEntry.ExecuteDisableBit : 0) | (bits.Take(4) << PageTableEntry.ProtectionKeyShift);
                m.Tables.Map(pages[i], 0x0100_0000 + (ulong)i * PagingConstants.PageSize, PageSize.Size4K, leaf);
            }
            var flags = m.Mmu.Flags;
            var trace = new StringBuilder();
            for (int step = 0; step < 30; step++)
            {
                switch (bits.Below(3))
                {
                    case 0:
                        flags ^= RandomFlagChange(bits);
                        Assert.True(m.Mmu.SetFlags(flags));
                        trace.Append($"flags {flags}\n");
                        break;
                    case 1:
                        m.Mmu.UserMode = bits.Chance(50);
                        m.Mmu.AlignmentCheck = bits.Chance(50);
                        m.Mmu.Pkru = (uint)bits.Take(32);
                        trace.Append($"user {m.Mmu.UserMode} AC {m.Mmu.AlignmentCheck} PKRU 0x{m.Mmu.Pkru:x}\n");
                        break;
                    default:
                        ulong linear = pages[bits.Below(pages.Length)] + 8;
                        var kind = (AccessKind)bits.Below(3);
                        var cpu = new ReferenceCpu(flags, m.Mmu.UserMode, m.Mmu.AlignmentCheck, m.Mmu.Pkru, m.Mmu.MaxPhysicalAddressBits);
                        var expected = ReferenceWalker.Translate(m.Memory, cpu, m.Mmu.Cr3, linear, kind);
                        var actual = m.Mmu.Translate(linear, kind, out ulong physical);
                        trace.Append($"{kind} 0x{linear:x}: mmu {actual} 0x{physical:x}; reference {expected}\n");
                        string mismatch = Compare(expected, actual, physical);
                        if (mismatch.Length != 0) throw new InvalidOperationException($"{mismatch}\n{trace}");
                        break;
                }
            }
        });
    }

    /// <summary>Some of the control bits whose change requires no invalidation (setting SMEP does one).</summary>
    static ControlFlags RandomFlagChange(RandomBits bits)
    {
        var change = ControlFlags.None;
        foreach (var flag in new[] { ControlFlags.WriteProtect, ControlFlags.Smep, ControlFlags.Smap, ControlFlags.ProtectionKeys })
            if (bits.Chance(40)) change |= flag;
        return change;
    }

    abstract record Operation;
    sealed record AccessOperation(Access Access) : Operation;
    sealed record RewriteEntry(int Slot, ulong Raw) : Operation;
    sealed record InvlpgOperation(int Choice, ulong Offset) : Operation;
    sealed record InvpcidOperation(InvpcidType Type, ushort Pcid, int Choice) : Operation;
    sealed record Cr3Write(int Root, ushort Pcid, bool NoFlush) : Operation;

    static Operation RandomOperation(RandomBits bits, RandomPagingState state)
    {
        bool pcids = (state.Flags & ControlFlags.PcidEnable) != 0;
        int kind = bits.Below(100);
        return kind switch
        {
            < 55 => new AccessOperation(Access.Random(bits, state.AddressChoices) with { NonCanonical = false }),
            < 75 => new RewriteEntry(bits.Below(state.Entries.Length), RandomPagingState.RandomEntry(bits)),
            < 87 => new InvlpgOperation(bits.Below(state.AddressChoices), bits.Take(12)),
            < 93 => new InvpcidOperation((InvpcidType)bits.Below(4), (ushort)bits.Below(3), bits.Below(state.AddressChoices)),
            _ => new Cr3Write(bits.Below(RandomPagingState.TableCount), pcids ? (ushort)bits.Below(3) : (ushort)0, pcids && bits.Chance(50)),
        };
    }

    /// <summary>
    /// Random interleavings of accesses, entry rewrites (no invalidation), INVLPG, INVPCID and CR3 writes. Each access
    /// must produce an outcome the SDM allows given what was invalidated since (<see cref="LegalTranslations"/>); where
    /// only a fresh walk is allowed (e.g. right after INVLPG of the address) the outcome and the A/D bits must be exactly
    /// the reference walker's.
    /// </summary>
    [Fact]
    public void Translate_UsesOnlyLegalTranslations_AcrossRewritesAndInvalidations()
    {
        SeededCases.ForEach(RandomPagingState.Words, SequenceCases, words =>
        {
            var bits = new RandomBits(words);
            var state = new RandomPagingState(bits);
            using var memory = state.Build();
            var mmu = new Mmu(memory, state.Tlb, state.MaxPhysicalAddressBits, state.Flags);
            var legal = new LegalTranslations(memory);
            ulong cr3 = RandomPagingState.TableAddress(0);
            mmu.WriteCr3(cr3);
            ushort pcid = 0;
            var trace = new StringBuilder();
            int count = 10 + bits.Below(40);
            for (int n = 0; n < count; n++)
            {
                var operation = RandomOperation(bits, state);
                trace.Append(operation).Append('\n');
                switch (operation)
                {
                    case AccessOperation { Access: var access }:
                        ulong linear = access.Linear(state);
                        var cpu = state.Cpu(access.UserMode, access.AlignmentCheck, access.Pkru);
                        var outcomes = legal.Outcomes(cpu, cr3, pcid, linear, access.Kind, out bool exact);
                        var before = Snapshot(memory, state);
                        Apply(mmu, access);
                        var actual = mmu.Translate(linear, access.Kind, out ulong physical);
                        trace.Append($"  at 0x{linear:x}: mmu {actual} 0x{physical:x}; legal: {string.Join(" | ", outcomes)}{(exact ? " (exact)" : "")}\n");
                        if (!outcomes.Any(o => Compare(o, actual, physical).Length == 0))
                            throw new InvalidOperationException($"illegal outcome: {Compare(outcomes[0], actual, physical)}\n{trace}{state.Describe(memory)}");
                        if (exact)
                        {
                            foreach (var (entry, setBits) in ReferenceWalker.AccessedDirtyUpdates(outcomes[0], access.Kind))
                                for (int slot = 0; slot < before.Length; slot++)
                                    if (state.SlotAddress(slot) == entry) before[slot] |= setBits;
                            if (!Snapshot(memory, state).SequenceEqual(before))
                                throw new InvalidOperationException($"A/D bits differ from the reference walk: expected {string.Join(" ", before.Select(v => v.ToString("x")))}\n{trace}{state.Describe(memory)}");
                        }
                        legal.Observe(outcomes, actual, physical, pcid);
                        break;
                    case RewriteEntry rewrite:
                        memory.TryWrite64(state.SlotAddress(rewrite.Slot), rewrite.Raw);
                        break;
                    case InvlpgOperation invlpg:
                        ulong address = state.Linear(invlpg.Choice, invlpg.Offset);
                        mmu.Invlpg(address);
                        legal.Invlpg(address, pcid);
                        break;
                    case InvpcidOperation invpcid:
                        ulong target = state.Linear(invpcid.Choice, 0);
                        mmu.Invpcid(invpcid.Type, invpcid.Pcid, target);
                        legal.Invpcid(invpcid.Type, invpcid.Pcid, target);
                        break;
                    case Cr3Write write:
                        cr3 = RandomPagingState.TableAddress(write.Root) | write.Pcid;
                        pcid = write.Pcid;
                        mmu.WriteCr3(cr3 | (write.NoFlush ? 1UL << 63 : 0));
                        if (!write.NoFlush) legal.Cr3Write(pcid);
                        break;
                }
            }
        });
    }
}
