using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>
/// Which translations the SDM lets the MMU use for an address, given the history since the last invalidation
/// (SDM 4.10.2-4.10.4): a walk of the current tables; a translation some earlier walk produced that nothing has
/// invalidated since (a TLB entry, stale or not); or a walk that starts from an upper-level entry some earlier walk
/// used and nothing has invalidated (a paging-structure-cache entry). Evictions are not modelled: the model allows
/// a superset of what the MMU can hold, never less.
/// </summary>
internal sealed class LegalTranslations(PhysicalMemory memory)
{
    readonly record struct CachedTranslation(ushort Pcid, ReferenceLeaf Leaf);

    /// <summary>An upper-level entry (level 2..5) a walk used: the table below it and the rights above it.</summary>
    readonly record struct CachedUpperEntry(ushort Pcid, int Level, ulong Prefix, ulong NextTable, ReferenceRights Rights);

    readonly HashSet<CachedTranslation> translations = [];
    readonly HashSet<CachedUpperEntry> upperEntries = [];

    static ulong Prefix(ulong linear, int level) =>
        (linear & ((1UL << PagingConstants.LinearBits5Level) - 1)) >> (PagingConstants.PageBits + (level - 1) * PagingConstants.LevelBits);

    bool Applies(CachedTranslation t, ulong linear, ushort pcid) => (t.Leaf.Global || t.Pcid == pcid) && t.Leaf.Covers(linear);

    /// <summary>
    /// Every outcome the MMU may legally produce for this access, the fresh walk first. <paramref name="exact"/> is
    /// true when the fresh walk is the only source, so the A/D bits it sets must match too.
    /// </summary>
    public List<ReferenceResult> Outcomes(ReferenceCpu cpu, ulong cr3, ushort pcid, ulong linear, AccessKind kind, out bool exact)
    {
        var outcomes = new List<ReferenceResult> { ReferenceWalker.Translate(memory, cpu, cr3, linear, kind) };
        exact = true;
        if (outcomes[0].Kind == TranslationFaultKind.GeneralProtection) return outcomes;
        foreach (var upper in upperEntries)
        {
            if (upper.Pcid != pcid || upper.Prefix != Prefix(linear, upper.Level)) continue;
            outcomes.Add(ReferenceWalker.TranslateFrom(memory, cpu, upper.Level - 1, upper.NextTable, upper.Rights, linear, kind));
            exact = false;
        }
        foreach (var t in translations)
        {
            if (!Applies(t, linear, pcid)) continue;
            var leaf = t.Leaf;
            var violation = ReferenceWalker.Violation(cpu, leaf.Rights, leaf.ProtectionKey, kind);
            exact = false;
            if (violation != PageFaultErrorCode.None)
                outcomes.Add(new ReferenceResult(TranslationFaultKind.PageFault, violation | ReferenceWalker.AccessBits(cpu, kind), linear, 0, [], null));
            else if (kind != AccessKind.Write || leaf.Dirty) // a write through a clean entry must walk (SDM 4.8)
                outcomes.Add(new ReferenceResult(TranslationFaultKind.None, PageFaultErrorCode.None, linear, leaf.PhysicalPage + (linear & (leaf.Size.Bytes() - 1)), [], leaf));
        }
        return outcomes;
    }

    /// <summary>Records what the MMU may have cached after producing <paramref name="actual"/>: the walks that agree with it.</summary>
    public void Observe(IEnumerable<ReferenceResult> candidates, TranslationFault actual, ulong actualPhysical, ushort pcid)
    {
        if (actual.Kind == TranslationFaultKind.PageFault)
        {
            // Delivering a #PF invalidates the faulting address's TLB and paging-structure-cache entries (SDM 4.10.4.1).
            translations.RemoveWhere(t => Applies(t, actual.LinearAddress, pcid));
            upperEntries.RemoveWhere(u => u.Pcid == pcid && u.Prefix == Prefix(actual.LinearAddress, u.Level));
            return;
        }
        if (actual.IsFault) return;
        foreach (var walk in candidates)
        {
            if (walk.IsFault || walk.Steps.Count == 0 || walk.Physical != actualPhysical) continue;
            translations.Add(new CachedTranslation(walk.Leaf!.Global ? (ushort)0 : pcid, walk.Leaf));
            foreach (var step in walk.Steps)
            {
                if (step.Level < 2 || step == walk.Steps[^1]) continue;
                ulong next = step.Raw & ((1UL << 52) - 1) & ~PagingConstants.PageMask;
                upperEntries.Add(new CachedUpperEntry(pcid, step.Level, Prefix(walk.Linear, step.Level), next, step.RightsAfter));
            }
        }
    }

    /// <summary>INVLPG: the address's translations of the current PCID and global ones, and every upper entry of the PCID.</summary>
    public void Invlpg(ulong linear, ushort pcid)
    {
        translations.RemoveWhere(t => Applies(t, linear, pcid));
        upperEntries.RemoveWhere(u => u.Pcid == pcid);
    }

    /// <summary>INVPCID (SDM Vol. 2): type 0 one address of one PCID, 1 one PCID, 2 everything, 3 everything but globals.</summary>
    public void Invpcid(InvpcidType type, ushort target, ulong linear)
    {
        switch (type)
        {
            case InvpcidType.IndividualAddress:
                translations.RemoveWhere(t => !t.Leaf.Global && t.Pcid == target && t.Leaf.Covers(linear));
                upperEntries.RemoveWhere(u => u.Pcid == target && u.Prefix == Prefix(linear, u.Level));
                break;
            case InvpcidType.SingleContext:
                translations.RemoveWhere(t => !t.Leaf.Global && t.Pcid == target);
                upperEntries.RemoveWhere(u => u.Pcid == target);
                break;
            case InvpcidType.AllContextsIncludingGlobal:
                translations.Clear();
                upperEntries.Clear();
                break;
            default:
                translations.RemoveWhere(t => !t.Leaf.Global);
                upperEntries.Clear();
                break;
        }
    }

    /// <summary>MOV to CR3 without the no-flush bit: the new PCID's non-global translations and upper entries (SDM 4.10.4.1).</summary>
    public void Cr3Write(ushort newPcid) => Invpcid(InvpcidType.SingleContext, newPcid, 0);
}
