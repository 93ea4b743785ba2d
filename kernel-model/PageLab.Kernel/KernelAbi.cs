namespace PageLab.Kernel;

/// <summary>Which kernel's system-call interface the model presents (the CLI's --kernel-abi).</summary>
public enum KernelAbi : byte
{
    /// <summary>Linux 6.18 plus the MADV_TRY_COLLAPSE / MADV_F_COLLAPSE_LIGHT proposal (the default).</summary>
    Proposal,
    /// <summary>Exactly Linux 6.18: advice 26 and process_madvise flags other than 0 are EINVAL.</summary>
    Linux618,
}
