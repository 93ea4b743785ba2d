using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Cpu;

/// <summary>
/// What the CPU asks of the software that owns it (the kernel model): the machine knows nothing
/// of Linux, so system calls and faults leave the interpreter through this interface.
/// </summary>
public interface ICpuHost
{
    /// <summary>
    /// A SYSCALL instruction retired: RIP already points after it, RCX holds the return RIP and
    /// R11 the RFLAGS, as the hardware sets them. The host reads arguments from the registers,
    /// writes RAX, and may call <see cref="Cpu.RequestStop"/> (exit, signal).
    /// </summary>
    void OnSyscall(Cpu cpu);

    /// <summary>
    /// An access faulted (#PF, #GP or machine check). Return true when the host resolved it (the
    /// faulting instruction restarts from its first byte, with no architectural state changed);
    /// false to stop the CPU with <see cref="CpuStopReason.UnhandledFault"/>.
    /// </summary>
    bool OnFault(Cpu cpu, in TranslationFault fault);
}

/// <summary>Why <see cref="Cpu.Run"/> returned.</summary>
public enum CpuStopReason : byte
{
    /// <summary>The host called <see cref="Cpu.RequestStop"/> (exit_group, a fatal signal).</summary>
    StopRequested,
    /// <summary>The instruction budget given to Run is used up.</summary>
    InstructionLimit,
    /// <summary>A fault the host did not resolve; see <see cref="Cpu.LastFault"/>.</summary>
    UnhandledFault,
    /// <summary>An undefined or unimplemented instruction (#UD); see <see cref="Cpu.LastFault"/> and RIP.</summary>
    InvalidInstruction,
    /// <summary>Divide error (#DE).</summary>
    DivideError,
    /// <summary>A general-protection exception other than a translation fault (e.g. misaligned SSE operand).</summary>
    GeneralProtection,
}
