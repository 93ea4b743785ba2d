using Iced.Intel;

namespace PageLab.Emulator.Cpu;

// Rare instructions that touch machine state outside the register file.
public sealed unsafe partial class Cpu
{
    /// <summary>The time-stamp counter ticks at 3 GHz of virtual time.</summary>
    public const ulong TscTicksPerNanosecond = 3;

    ExecResult ExecuteSystem(ref DecodedInstruction d)
    {
        switch (d.Instruction.Mnemonic)
        {
            case Mnemonic.Cpuid:
                var result = CpuidModel.Query((uint)G(0), (uint)G(1), mmu.MaxPhysicalAddressBits);
                G(0) = result.Eax;
                G(3) = result.Ebx;
                G(1) = result.Ecx;
                G(2) = result.Edx;
                return ExecResult.Continue;
            case Mnemonic.Rdtsc:
                // The clock has not yet seen this run's instructions: count them in.
                ulong nanoseconds = Clock.Nanoseconds + (ulong)(retiredThisRun - retiredPublished) * Clock.PicosecondsPerInstruction / 1000;
                ulong tsc = nanoseconds * TscTicksPerNanosecond;
                G(0) = (uint)tsc;
                G(2) = tsc >> 32;
                return ExecResult.Continue;
            default:
                // HLT, INT n, INT1 at CPL 3: #GP (Linux delivers SIGSEGV).
                return ExecResult.GeneralProtection;
        }
    }
}
