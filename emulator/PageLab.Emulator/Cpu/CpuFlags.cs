namespace PageLab.Emulator.Cpu;

/// <summary>RFLAGS bits (Intel SDM Vol. 1, 3.4.3).</summary>
public static class CpuFlags
{
    public const ulong Carry = 1UL << 0;
    /// <summary>Bit 1 always reads as 1.</summary>
    public const ulong Reserved1 = 1UL << 1;
    public const ulong Parity = 1UL << 2;
    public const ulong Adjust = 1UL << 4;
    public const ulong Zero = 1UL << 6;
    public const ulong Sign = 1UL << 7;
    public const ulong Trap = 1UL << 8;
    public const ulong Interrupt = 1UL << 9;
    public const ulong Direction = 1UL << 10;
    public const ulong Overflow = 1UL << 11;
    public const ulong AlignmentCheck = 1UL << 18;
    /// <summary>ID: software can toggle it when CPUID exists.</summary>
    public const ulong Id = 1UL << 21;

    /// <summary>The six arithmetic status flags.</summary>
    public const ulong Status = Carry | Parity | Adjust | Zero | Sign | Overflow;

    /// <summary>The bits user mode can change with POPF (IF and IOPL are kept at CPL 3).</summary>
    public const ulong UserWritable = Status | Trap | Direction | AlignmentCheck | Id;

    /// <summary>RFLAGS of a new user thread: IF set, bit 1 set.</summary>
    public const ulong InitialUser = Reserved1 | Interrupt;
}
