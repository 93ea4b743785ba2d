namespace PageLab.Emulator.Paging;

/// <summary>The control-register bits that change how IA-32e paging translates (CR0, CR4, EFER).</summary>
[Flags]
public enum ControlFlags : uint
{
    None = 0,
    /// <summary>CR0.WP: supervisor writes honour R/W = 0.</summary>
    WriteProtect = 1 << 0,
    /// <summary>IA32_EFER.NXE: bit 63 of entries is XD instead of reserved.</summary>
    NoExecuteEnable = 1 << 1,
    /// <summary>CR4.PGE: the G bit of leaf entries makes a translation global.</summary>
    PageGlobalEnable = 1 << 2,
    /// <summary>CR4.PCIDE: CR3[11:0] is the current PCID and tags TLB entries.</summary>
    PcidEnable = 1 << 3,
    /// <summary>CR4.SMEP: supervisor instruction fetches from user pages fault.</summary>
    Smep = 1 << 4,
    /// <summary>CR4.SMAP: supervisor data accesses to user pages fault unless EFLAGS.AC = 1.</summary>
    Smap = 1 << 5,
    /// <summary>CR4.PKE: protection keys for user pages, checked against PKRU.</summary>
    ProtectionKeys = 1 << 6,
    /// <summary>CR4.LA57: 5-level paging, 57-bit linear addresses.</summary>
    La57 = 1 << 7,

    /// <summary>What a Linux x86-64 kernel runs with on a current CPU (no LA57, no PKE by default).</summary>
    LinuxDefault = WriteProtect | NoExecuteEnable | PageGlobalEnable | PcidEnable | Smep | Smap,
}

/// <summary>INVPCID invalidation types (Intel SDM Vol. 2, INVPCID).</summary>
public enum InvpcidType : byte
{
    /// <summary>Type 0: one linear address in one PCID, global translations excepted.</summary>
    IndividualAddress = 0,
    /// <summary>Type 1: every non-global translation of one PCID.</summary>
    SingleContext = 1,
    /// <summary>Type 2: everything, global translations included, all PCIDs.</summary>
    AllContextsIncludingGlobal = 2,
    /// <summary>Type 3: every non-global translation of all PCIDs.</summary>
    AllContextsExceptGlobal = 3,
}
