namespace PageLab.Emulator.Cpu;

// String instructions. With a REP prefix every iteration is architecturally complete (RCX, RSI and
// RDI updated), so a fault in the middle restarts the instruction where it stopped, as on hardware.
public sealed unsafe partial class Cpu
{
    const int Rcx = 1, Rsi = 6, Rdi = 7;

    ExecResult StringOperation(ref DecodedInstruction d)
    {
        int size = d.Size;
        ulong step = (flags & CpuFlags.Direction) != 0 ? (ulong)(-size) : (ulong)size;
        bool repeatWhileNotEqual = d.Instruction.HasRepnePrefix;
        bool repeat = d.Instruction.HasRepePrefix || repeatWhileNotEqual;
        if (!repeat) return StringStep(ref d, size, step);
        bool compares = d.Op is Op.Cmps or Op.Scas;
        while (G(Rcx) != 0)
        {
            var result = StringStep(ref d, size, step);
            if (result != ExecResult.Continue) return result;
            G(Rcx)--;
            // REPE stops at the first difference, REPNE at the first match; the flags are from a CMP (lazy Sub).
            if (compares && (lazyResult == 0) == repeatWhileNotEqual) break;
        }
        return ExecResult.Continue;
    }

    ExecResult StringStep(ref DecodedInstruction d, int size, ulong step)
    {
        switch (d.Op)
        {
            case Op.Movs:
                {
                    if (!TryRead(G(Rsi), size, out ulong value) || !TryWrite(G(Rdi), size, value)) return ExecResult.Fault;
                    G(Rsi) += step;
                    G(Rdi) += step;
                    return ExecResult.Continue;
                }
            case Op.Stos:
                if (!TryWrite(G(Rdi), size, G(0))) return ExecResult.Fault;
                G(Rdi) += step;
                return ExecResult.Continue;
            case Op.Lods:
                {
                    if (!TryRead(G(Rsi), size, out ulong value)) return ExecResult.Fault;
                    WriteRegister(0, size, value);
                    G(Rsi) += step;
                    return ExecResult.Continue;
                }
            case Op.Cmps:
                {
                    if (!TryRead(G(Rsi), size, out ulong source) || !TryRead(G(Rdi), size, out ulong destination)) return ExecResult.Fault;
                    SetLazy(LazyFlags.Sub, size, source, destination, (source - destination) & SizeMask(size));
                    G(Rsi) += step;
                    G(Rdi) += step;
                    return ExecResult.Continue;
                }
            default: // Scas
                {
                    if (!TryRead(G(Rdi), size, out ulong value)) return ExecResult.Fault;
                    ulong accumulator = G(0) & SizeMask(size);
                    SetLazy(LazyFlags.Sub, size, accumulator, value, (accumulator - value) & SizeMask(size));
                    G(Rdi) += step;
                    return ExecResult.Continue;
                }
        }
    }
}
