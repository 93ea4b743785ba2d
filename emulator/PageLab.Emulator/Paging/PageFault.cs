namespace PageLab.Emulator.Paging;

/// <summary>#PF error code bits (Intel SDM Vol. 3A, 4.7).</summary>
[Flags]
public enum PageFaultErrorCode : uint
{
    None = 0,
    /// <summary>P: 0 = the page was not present; 1 = a protection violation.</summary>
    Present = 1 << 0,
    /// <summary>W/R: the access was a write.</summary>
    Write = 1 << 1,
    /// <summary>U/S: the access was a user-mode access.</summary>
    User = 1 << 2,
    /// <summary>RSVD: a reserved bit was set in some paging-structure entry.</summary>
    ReservedBit = 1 << 3,
    /// <summary>I/D: the access was an instruction fetch (reported when NXE or SMEP is on).</summary>
    InstructionFetch = 1 << 4,
    /// <summary>PK: a protection-key violation.</summary>
    ProtectionKey = 1 << 5,
}

/// <summary>Which exception a translation raised; faults are values on the hot path, never host exceptions.</summary>
public enum TranslationFaultKind : byte
{
    None = 0,
    /// <summary>#PF: error code and CR2 (the faulting linear address) are in the fault.</summary>
    PageFault,
    /// <summary>#GP(0): a non-canonical linear address. Paging is not consulted.</summary>
    GeneralProtection,
    /// <summary>A paging-structure entry or the data lies beyond physical memory (machine-check style).</summary>
    MachineCheck,
}

/// <summary>A translation fault: what a real CPU would deliver, with CR2 and the error code.</summary>
public readonly record struct TranslationFault(TranslationFaultKind Kind, ulong LinearAddress, PageFaultErrorCode ErrorCode)
{
    public static readonly TranslationFault None = default;
    public bool IsFault => Kind != TranslationFaultKind.None;

    public override string ToString() => Kind switch
    {
        TranslationFaultKind.None => "no fault",
        TranslationFaultKind.PageFault => $"#PF cr2=0x{LinearAddress:x} error={(uint)ErrorCode:x} ({ErrorCode})",
        TranslationFaultKind.GeneralProtection => $"#GP(0) non-canonical address 0x{LinearAddress:x}",
        _ => $"machine check at 0x{LinearAddress:x}",
    };
}
