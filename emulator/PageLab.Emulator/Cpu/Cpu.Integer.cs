using System.Buffers.Binary;
using System.Numerics;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

// The integer instruction set: semantics from the Intel SDM Vol. 2. Flags an instruction leaves
// undefined are set the way the differential tests observe on the host where that is cheap, and
// are masked by those tests otherwise.
public sealed unsafe partial class Cpu
{
    ExecResult Execute(ref DecodedInstruction d)
    {
        switch (d.Op)
        {
            case Op.Nop: return ExecResult.Continue;
            case Op.Mov: return Mov(ref d);
            case Op.Add:
            case Op.Or:
            case Op.Adc:
            case Op.Sbb:
            case Op.And:
            case Op.Sub:
            case Op.Xor: return Arithmetic(ref d);
            case Op.Cmp:
            case Op.Test: return Compare(ref d);
            case Op.Jcc:
                if (Condition(d.Condition)) nextRip += d.Immediate;
                return ExecResult.Continue;
            case Op.Jmp:
                nextRip += d.Immediate;
                return ExecResult.Continue;
            case Op.Lea: return Lea(ref d);
            case Op.Movzx:
            case Op.Movsx: return MoveExtend(ref d);
            case Op.Push: return Push(ref d);
            case Op.Pop: return Pop(ref d);
            case Op.Call: return Call(ref d);
            case Op.CallIndirect: return CallIndirect(ref d);
            case Op.Ret: return Ret(ref d);
            case Op.JmpIndirect: return JmpIndirect(ref d);
            case Op.Inc:
            case Op.Dec:
            case Op.Neg:
            case Op.Not: return Unary(ref d);
            case Op.Setcc: return Setcc(ref d);
            case Op.Cmovcc: return Cmovcc(ref d);
            case Op.Shl:
            case Op.Shr:
            case Op.Sar:
            case Op.Rol:
            case Op.Ror:
            case Op.Rcl:
            case Op.Rcr: return Shift(ref d);
            case Op.Shld:
            case Op.Shrd: return DoubleShift(ref d);
            case Op.Mul:
            case Op.ImulOneOperand: return MultiplyWide(ref d);
            case Op.Imul: return Imul(ref d);
            case Op.Div:
            case Op.Idiv: return Divide(ref d);
            case Op.Xchg: return Xchg(ref d);
            case Op.Cmpxchg: return Cmpxchg(ref d);
            case Op.Cmpxchg16b: return Cmpxchg16b(ref d);
            case Op.Xadd: return Xadd(ref d);
            case Op.Bswap: return Bswap(ref d);
            case Op.Bt:
            case Op.Bts:
            case Op.Btr:
            case Op.Btc: return BitTest(ref d);
            case Op.Bsf:
            case Op.Bsr:
            case Op.Lzcnt:
            case Op.Popcnt: return BitScan(ref d);
            case Op.Jrcxz:
            case Op.Leave:
            case Op.Enter:
            case Op.Pushf:
            case Op.Popf:
            case Op.Lahf:
            case Op.Sahf:
            case Op.SignExtendAccumulator:
            case Op.SignExtendIntoRdx:
            case Op.Clc:
            case Op.Stc:
            case Op.Cmc:
            case Op.Cld:
            case Op.Std: return ExecuteRare(ref d);
            case Op.Movs:
            case Op.Stos:
            case Op.Lods:
            case Op.Cmps:
            case Op.Scas: return StringOperation(ref d);
            case Op.Syscall: return Syscall();
            case Op.Vector: return ExecuteVector(ref d);
            case Op.X87: return ExecuteX87(ref d);
            case Op.System: return ExecuteSystem(ref d);
            default: return ExecResult.Invalid;
        }
    }

    /// <summary>Instructions compilers emit rarely, kept out of <see cref="Execute"/> so that its dispatch stays small.</summary>
    ExecResult ExecuteRare(ref DecodedInstruction d)
    {
        switch (d.Op)
        {
            case Op.Jrcxz:
                if ((d.Instruction.Mnemonic == Mnemonic.Jecxz ? (uint)G(1) : G(1)) == 0) nextRip += d.Immediate;
                return ExecResult.Continue;
            case Op.Leave: return Leave();
            case Op.Enter: return Enter(ref d);
            case Op.Pushf:
                return TryPush(Rflags & ~0x3_0000UL) ? ExecResult.Continue : ExecResult.Fault; // RF and VM read as 0
            case Op.Popf: return Popf();
            case Op.Lahf:
                WriteRegister(HighByteRegister, 1, (Rflags & 0xD5) | CpuFlags.Reserved1);
                return ExecResult.Continue;
            case Op.Sahf:
                SetSomeStatusFlags(CpuFlags.Status & ~CpuFlags.Overflow, (G(0) >> 8) & 0xD5);
                return ExecResult.Continue;
            case Op.SignExtendAccumulator: return SignExtendAccumulator(ref d);
            case Op.SignExtendIntoRdx: return SignExtendIntoRdx(ref d);
            case Op.Clc: SetSomeStatusFlags(CpuFlags.Carry, 0); return ExecResult.Continue;
            case Op.Stc: SetSomeStatusFlags(CpuFlags.Carry, CpuFlags.Carry); return ExecResult.Continue;
            case Op.Cmc: SetSomeStatusFlags(CpuFlags.Carry, ~StatusFlags()); return ExecResult.Continue;
            case Op.Cld: flags &= ~CpuFlags.Direction; return ExecResult.Continue;
            case Op.Std: flags |= CpuFlags.Direction; return ExecResult.Continue;
            default: return ExecResult.Invalid;
        }
    }

    ExecResult Syscall()
    {
        G(1) = nextRip;
        G(11) = Rflags & ~0x1_0000UL; // RF cleared
        return ExecResult.Syscall;
    }

    ExecResult Mov(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (d.Kind0 == OperandKind.Register)
        {
            if (!TryReadSource(ref d, size, out ulong value)) return ExecResult.Fault;
            WriteRegister(d.Reg0, size, value);
            return ExecResult.Continue;
        }
        ulong stored = d.Kind1 == OperandKind.Register ? ReadRegister(d.Reg1, size) : d.Immediate;
        return TryWrite(EffectiveAddress(ref d), size, stored) ? ExecResult.Continue : ExecResult.Fault;
    }

    ExecResult Arithmetic(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadSource(ref d, size, out ulong b)) return ExecResult.Fault;
        if (!TryReadModifyDestination(ref d, size, out ulong a, out ulong address, out byte* host)) return ExecResult.Fault;
        bool carryIn = (d.Op == Op.Adc || d.Op == Op.Sbb) && CarryFlag();
        ulong carry = carryIn ? 1UL : 0;
        (ulong result, LazyFlags kind) = d.Op switch
        {
            Op.Add => (a + b, LazyFlags.Add),
            Op.Sub => (a - b, LazyFlags.Sub),
            Op.And => (a & b, LazyFlags.Logic),
            Op.Or => (a | b, LazyFlags.Logic),
            Op.Xor => (a ^ b, LazyFlags.Logic),
            Op.Adc => (a + b + carry, LazyFlags.AddWithCarry),
            _ => (a - b - carry, LazyFlags.SubWithBorrow),
        };
        result &= SizeMask(size);
        if (!TryWriteModifiedDestination(ref d, size, address, host, result)) return ExecResult.Fault;
        lazyCarryIn = carryIn;
        SetLazy(kind, size, a, b, result);
        return ExecResult.Continue;
    }

    ExecResult Compare(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadSource(ref d, size, out ulong b)) return ExecResult.Fault;
        if (!TryReadDestination(ref d, size, out ulong a)) return ExecResult.Fault;
        if (d.Op == Op.Cmp) SetLazy(LazyFlags.Sub, size, a, b, (a - b) & SizeMask(size));
        else SetLazy(LazyFlags.Logic, size, a, b, a & b);
        return ExecResult.Continue;
    }

    ExecResult Lea(ref DecodedInstruction d)
    {
        WriteRegister(d.Reg0, d.Size, EffectiveAddress(ref d));
        return ExecResult.Continue;
    }

    ExecResult MoveExtend(ref DecodedInstruction d)
    {
        int from = d.SourceSize;
        if (!TryReadSource(ref d, from, out ulong value)) return ExecResult.Fault;
        if (d.Op == Op.Movsx && from < 8)
        {
            int shift = 64 - from * 8;
            value = (ulong)((long)(value << shift) >> shift);
        }
        WriteRegister(d.Reg0, d.Size, value & SizeMask(d.Size));
        return ExecResult.Continue;
    }

    ExecResult Push(ref DecodedInstruction d)
    {
        ulong value;
        switch (d.Kind0)
        {
            case OperandKind.Register: value = G(d.Reg0); break;
            case OperandKind.Immediate: value = d.Immediate; break;
            default:
                if (!TryRead(EffectiveAddress(ref d), 8, out value)) return ExecResult.Fault;
                break;
        }
        return TryPush(value) ? ExecResult.Continue : ExecResult.Fault;
    }

    ExecResult Pop(ref DecodedInstruction d)
    {
        ulong rsp = G(Rsp);
        if (!TryRead(rsp, 8, out ulong value)) return ExecResult.Fault;
        if (d.Kind0 == OperandKind.Register)
        {
            G(Rsp) = rsp + 8;
            G(d.Reg0) = value; // POP RSP loads the popped value
            return ExecResult.Continue;
        }
        // A memory destination addressed through RSP uses RSP after the increment (SDM, POP).
        G(Rsp) = rsp + 8;
        ulong address = EffectiveAddress(ref d);
        G(Rsp) = rsp;
        if (!TryWrite(address, 8, value)) return ExecResult.Fault;
        G(Rsp) = rsp + 8;
        return ExecResult.Continue;
    }

    ExecResult Call(ref DecodedInstruction d)
    {
        if (!TryPush(nextRip)) return ExecResult.Fault;
        nextRip += d.Immediate;
        return ExecResult.Continue;
    }

    bool TryReadBranchTarget(ref DecodedInstruction d, out ulong target)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            target = G(d.Reg0);
            return true;
        }
        return TryRead(EffectiveAddress(ref d), 8, out target);
    }

    ExecResult CallIndirect(ref DecodedInstruction d)
    {
        if (!TryReadBranchTarget(ref d, out ulong target) || !TryPush(nextRip)) return ExecResult.Fault;
        nextRip = target;
        return ExecResult.Continue;
    }

    ExecResult JmpIndirect(ref DecodedInstruction d)
    {
        if (!TryReadBranchTarget(ref d, out ulong target)) return ExecResult.Fault;
        nextRip = target;
        return ExecResult.Continue;
    }

    ExecResult Ret(ref DecodedInstruction d)
    {
        ulong rsp = G(Rsp);
        if (!TryRead(rsp, 8, out ulong target)) return ExecResult.Fault;
        G(Rsp) = rsp + 8 + (ushort)d.Immediate;
        nextRip = target;
        return ExecResult.Continue;
    }

    ExecResult Leave()
    {
        ulong frame = G(5);
        if (!TryRead(frame, 8, out ulong savedFrame)) return ExecResult.Fault;
        G(Rsp) = frame + 8;
        G(5) = savedFrame;
        return ExecResult.Continue;
    }

    ExecResult Enter(ref DecodedInstruction d)
    {
        // Nested frames (level > 0) copy display pointers; compilers never emit them.
        if (d.Immediate2 != 0) return ExecResult.Invalid;
        ulong frame = G(Rsp) - 8;
        if (!TryWrite(frame, 8, G(5))) return ExecResult.Fault;
        G(5) = frame;
        G(Rsp) = frame - (ushort)d.Immediate;
        return ExecResult.Continue;
    }

    ExecResult Popf()
    {
        ulong rsp = G(Rsp);
        if (!TryRead(rsp, 8, out ulong value)) return ExecResult.Fault;
        G(Rsp) = rsp + 8;
        Rflags = (Rflags & ~CpuFlags.UserWritable) | (value & CpuFlags.UserWritable);
        mmu.AlignmentCheck = (flags & CpuFlags.AlignmentCheck) != 0;
        return ExecResult.Continue;
    }

    ExecResult Unary(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadModifyDestination(ref d, size, out ulong a, out ulong address, out byte* host)) return ExecResult.Fault;
        ulong result = d.Op switch
        {
            Op.Inc => a + 1,
            Op.Dec => a - 1,
            Op.Neg => 0 - a,
            _ => ~a,
        } & SizeMask(size);
        if (!TryWriteModifiedDestination(ref d, size, address, host, result)) return ExecResult.Fault;
        switch (d.Op)
        {
            case Op.Inc:
                lazyCarryIn = CarryFlag();
                SetLazy(LazyFlags.Increment, size, a, 1, result);
                break;
            case Op.Dec:
                lazyCarryIn = CarryFlag();
                SetLazy(LazyFlags.Decrement, size, a, 1, result);
                break;
            case Op.Neg:
                SetLazy(LazyFlags.Sub, size, 0, a, result);
                break;
        }
        return ExecResult.Continue;
    }

    ExecResult Setcc(ref DecodedInstruction d) =>
        TryWriteDestination(ref d, 1, Condition(d.Condition) ? 1UL : 0) ? ExecResult.Continue : ExecResult.Fault;

    ExecResult Cmovcc(ref DecodedInstruction d)
    {
        int size = d.Size;
        // The source is read (and can fault) whatever the condition.
        if (!TryReadSource(ref d, size, out ulong value)) return ExecResult.Fault;
        if (Condition(d.Condition)) WriteRegister(d.Reg0, size, value);
        else if (size == 4) G(d.Reg0) = (uint)G(d.Reg0); // a 32-bit destination is written even when not moved
        return ExecResult.Continue;
    }

    ExecResult Shift(ref DecodedInstruction d)
    {
        int size = d.Size, bits = size * 8;
        ulong count = (d.Kind1 == OperandKind.Register ? G(1) : d.Immediate) & (size == 8 ? 63UL : 31UL);
        if (count == 0) return ZeroCountShift(ref d);
        if (!TryReadModifyDestination(ref d, size, out ulong a, out ulong address, out byte* host)) return ExecResult.Fault;
        ulong mask = SizeMask(size), sign = SignBit(size), result;
        bool cf, of;
        bool rotate = false;
        int c = (int)count;
        switch (d.Op)
        {
            case Op.Shl:
                result = (a << c) & mask;
                cf = c <= bits && ((a >> (bits - c)) & 1) != 0;
                of = ((result & sign) != 0) ^ cf;
                break;
            case Op.Shr:
                result = c >= 64 ? 0 : a >> c;
                cf = ((a >> (c - 1)) & 1) != 0;
                of = (a & sign) != 0;
                break;
            case Op.Sar:
                long signed = (long)(a << (64 - bits)) >> (64 - bits);
                result = (ulong)(signed >> c) & mask;
                cf = ((signed >> (c - 1)) & 1) != 0;
                of = false;
                break;
            case Op.Rol:
                {
                    rotate = true;
                    int r = c % bits;
                    result = r == 0 ? a : ((a << r) | (a >> (bits - r))) & mask;
                    cf = (result & 1) != 0;
                    of = ((result & sign) != 0) ^ cf;
                    break;
                }
            case Op.Ror:
                {
                    rotate = true;
                    int r = c % bits;
                    result = r == 0 ? a : ((a >> r) | (a << (bits - r))) & mask;
                    cf = (result & sign) != 0;
                    of = cf ^ ((result & (sign >> 1)) != 0);
                    break;
                }
            case Op.Rcl:
                {
                    rotate = true;
                    int r = size <= 2 ? c % (bits + 1) : c;
                    cf = CarryFlag();
                    result = a;
                    for (int i = 0; i < r; i++)
                    {
                        bool outBit = (result & sign) != 0;
                        result = ((result << 1) | (cf ? 1UL : 0)) & mask;
                        cf = outBit;
                    }
                    of = ((result & sign) != 0) ^ cf;
                    break;
                }
            default: // Rcr
                {
                    rotate = true;
                    int r = size <= 2 ? c % (bits + 1) : c;
                    cf = CarryFlag();
                    of = ((a & sign) != 0) ^ cf;
                    result = a;
                    for (int i = 0; i < r; i++)
                    {
                        bool outBit = (result & 1) != 0;
                        result = (result >> 1) | (cf ? sign : 0);
                        cf = outBit;
                    }
                    break;
                }
        }
        if (!TryWriteModifiedDestination(ref d, size, address, host, result)) return ExecResult.Fault;
        ulong status = (cf ? CpuFlags.Carry : 0) | (of ? CpuFlags.Overflow : 0);
        if (rotate) SetSomeStatusFlags(CpuFlags.Carry | CpuFlags.Overflow, status);
        else SetStatusFlags(status | ResultFlags(result, size));
        return ExecResult.Continue;
    }

    /// <summary>A shift by zero changes no flags and no memory, but a 32-bit register destination is still written (zero-extended).</summary>
    ExecResult ZeroCountShift(ref DecodedInstruction d)
    {
        if (d.Size == 4 && d.Kind0 == OperandKind.Register) G(d.Reg0) = (uint)G(d.Reg0);
        return ExecResult.Continue;
    }

    ExecResult DoubleShift(ref DecodedInstruction d)
    {
        int size = d.Size, bits = size * 8;
        int c = (int)((d.Kind2 == OperandKind.Register ? G(1) : d.Immediate) & (size == 8 ? 63UL : 31UL));
        if (c == 0) return ZeroCountShift(ref d);
        ulong b = ReadRegister(d.Reg1, size);
        if (!TryReadModifyDestination(ref d, size, out ulong a, out ulong address, out byte* host)) return ExecResult.Fault;
        ulong mask = SizeMask(size), result;
        bool cf;
        if (size == 8)
        {
            result = d.Op == Op.Shld ? (a << c) | (b >> (64 - c)) : (a >> c) | (b << (64 - c));
            cf = d.Op == Op.Shld ? ((a >> (64 - c)) & 1) != 0 : ((a >> (c - 1)) & 1) != 0;
        }
        else if (d.Op == Op.Shld)
        {
            // Both operands side by side in 64 bits. (A 16-bit count above 16 is undefined.)
            ulong pair = (a << bits) | b;
            result = ((pair << c) >> bits) & mask;
            cf = ((pair >> (2 * bits - c)) & 1) != 0;
        }
        else
        {
            ulong pair = (b << bits) | a;
            result = (pair >> c) & mask;
            cf = ((pair >> (c - 1)) & 1) != 0;
        }
        if (!TryWriteModifiedDestination(ref d, size, address, host, result)) return ExecResult.Fault;
        bool of = ((result ^ a) & SignBit(size)) != 0;
        SetStatusFlags((cf ? CpuFlags.Carry : 0) | (of ? CpuFlags.Overflow : 0) | ResultFlags(result, size));
        return ExecResult.Continue;
    }

    /// <summary>MUL and one-operand IMUL: rDX:rAX = rAX * source.</summary>
    ExecResult MultiplyWide(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadDestination(ref d, size, out ulong source)) return ExecResult.Fault;
        bool signed = d.Op == Op.ImulOneOperand;
        ulong accumulator = G(0) & SizeMask(size);
        ulong low, high;
        bool overflow;
        if (size == 8)
        {
            if (signed)
            {
                high = (ulong)Math.BigMul((long)accumulator, (long)source, out long signedLow);
                low = (ulong)signedLow;
                overflow = high != (ulong)(signedLow >> 63);
            }
            else
            {
                high = Math.BigMul(accumulator, source, out low);
                overflow = high != 0;
            }
        }
        else
        {
            int bits = size * 8, shift = 64 - bits;
            ulong product = signed
                ? (ulong)(((long)(accumulator << shift) >> shift) * ((long)(source << shift) >> shift))
                : accumulator * source;
            low = product & SizeMask(size);
            high = (product >> bits) & SizeMask(size);
            overflow = signed ? (long)product != (long)(product << shift) >> shift : high != 0;
        }
        if (size == 1)
        {
            WriteRegister(0, 2, (high << 8) | low);
        }
        else
        {
            WriteRegister(0, size, low);
            WriteRegister(2, size, high);
        }
        ulong of = overflow ? CpuFlags.Carry | CpuFlags.Overflow : 0;
        SetStatusFlags(of | ResultFlags(low, size));
        return ExecResult.Continue;
    }

    /// <summary>Two- and three-operand IMUL: the product truncated to the destination's size.</summary>
    ExecResult Imul(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadSource(ref d, size, out ulong b)) return ExecResult.Fault;
        ulong a = d.Kind2 == OperandKind.Immediate ? d.Immediate : ReadRegister(d.Reg0, size);
        ulong result;
        bool overflow;
        if (size == 8)
        {
            long high = Math.BigMul((long)a, (long)b, out long low);
            result = (ulong)low;
            overflow = high != low >> 63;
        }
        else
        {
            int shift = 64 - size * 8;
            long product = ((long)(a << shift) >> shift) * ((long)(b << shift) >> shift);
            result = (ulong)product & SizeMask(size);
            overflow = product != (long)((ulong)product << shift) >> shift;
        }
        WriteRegister(d.Reg0, size, result);
        SetStatusFlags((overflow ? CpuFlags.Carry | CpuFlags.Overflow : 0) | ResultFlags(result, size));
        return ExecResult.Continue;
    }

    ExecResult Divide(ref DecodedInstruction d)
    {
        int size = d.Size;
        if (!TryReadDestination(ref d, size, out ulong divisor)) return ExecResult.Fault;
        if (divisor == 0) return ExecResult.DivideError;
        ulong mask = SizeMask(size);
        ulong low = size == 1 ? G(0) & 0xFF : G(0) & mask;
        ulong high = size == 1 ? (G(0) >> 8) & 0xFF : G(2) & mask;
        ulong quotient, remainder;
        if (d.Op == Op.Div)
        {
            if (high >= divisor) return ExecResult.DivideError; // the quotient would not fit
            if (size == 8)
            {
                var dividend = ((UInt128)high << 64) | low;
                quotient = (ulong)(dividend / divisor);
                remainder = (ulong)(dividend % divisor);
            }
            else
            {
                ulong dividend = (high << (size * 8)) | low;
                quotient = dividend / divisor;
                remainder = dividend % divisor;
            }
        }
        else
        {
            int bits = size * 8;
            Int128 dividend = size == 8
                ? (Int128)(((UInt128)high << 64) | low)
                : (Int128)((long)(((high << bits) | low) << (64 - 2 * bits)) >> (64 - 2 * bits));
            long signedDivisor = (long)(divisor << (64 - bits)) >> (64 - bits);
            // -2^127 / -1 is the one quotient Int128 cannot hold (the host would throw); its 64-bit one overflows anyway.
            if (dividend == Int128.MinValue && signedDivisor == -1) return ExecResult.DivideError;
            Int128 q = dividend / signedDivisor;
            Int128 limit = (Int128)1 << (bits - 1);
            if (q >= limit || q < -limit) return ExecResult.DivideError;
            quotient = (ulong)(long)q & mask;
            remainder = (ulong)(long)(dividend - q * signedDivisor) & mask;
        }
        if (size == 1)
        {
            WriteRegister(0, 2, (remainder << 8) | quotient);
        }
        else
        {
            WriteRegister(0, size, quotient);
            WriteRegister(2, size, remainder);
        }
        return ExecResult.Continue;
    }

    ExecResult Xchg(ref DecodedInstruction d)
    {
        int size = d.Size;
        ulong b = ReadRegister(d.Reg1, size);
        if (d.Kind0 == OperandKind.Register)
        {
            ulong a = ReadRegister(d.Reg0, size);
            WriteRegister(d.Reg0, size, b);
            WriteRegister(d.Reg1, size, a);
            return ExecResult.Continue;
        }
        ulong address = EffectiveAddress(ref d);
        if (!TryReadForWrite(address, size, out ulong old, out byte* host) || !TryWriteBack(host, address, size, b))
            return ExecResult.Fault;
        WriteRegister(d.Reg1, size, old);
        return ExecResult.Continue;
    }

    ExecResult Cmpxchg(ref DecodedInstruction d)
    {
        int size = d.Size;
        ulong source = ReadRegister(d.Reg1, size);
        ulong expected = G(0) & SizeMask(size);
        if (!TryReadModifyDestination(ref d, size, out ulong current, out ulong address, out byte* host)) return ExecResult.Fault;
        bool equal = current == expected;
        if (d.Kind0 == OperandKind.Register)
        {
            if (equal) WriteRegister(d.Reg0, size, source);
        }
        else if (!TryWriteBack(host, address, size, equal ? source : current))
        {
            // The locked cycle always writes: the old value goes back when the comparison fails.
            return ExecResult.Fault;
        }
        if (!equal) WriteRegister(0, size, current);
        SetLazy(LazyFlags.Sub, size, expected, current, (expected - current) & SizeMask(size));
        return ExecResult.Continue;
    }

    ExecResult Cmpxchg16b(ref DecodedInstruction d)
    {
        ulong address = EffectiveAddress(ref d);
        if ((address & 15) != 0) return ExecResult.GeneralProtection;
        if (!TryReadForWrite(address, 8, out ulong low, out byte* host)) return ExecResult.Fault;
        // Aligned to 16 bytes: the high half is on the same page, just after the low half.
        ulong high = LoadHost(host + 8, 8);
        bool equal = low == G(0) && high == G(2);
        if (equal)
        {
            StoreHost(host, 8, G(3));
            StoreHost(host + 8, 8, G(1));
        }
        else
        {
            G(0) = low;
            G(2) = high;
        }
        SetSomeStatusFlags(CpuFlags.Zero, equal ? CpuFlags.Zero : 0);
        return ExecResult.Continue;
    }

    ExecResult Xadd(ref DecodedInstruction d)
    {
        int size = d.Size;
        ulong b = ReadRegister(d.Reg1, size);
        if (!TryReadModifyDestination(ref d, size, out ulong a, out ulong address, out byte* host)) return ExecResult.Fault;
        ulong sum = (a + b) & SizeMask(size);
        if (d.Kind0 == OperandKind.Register)
        {
            WriteRegister(d.Reg1, size, a);
            WriteRegister(d.Reg0, size, sum);
        }
        else
        {
            if (!TryWriteBack(host, address, size, sum)) return ExecResult.Fault;
            WriteRegister(d.Reg1, size, a);
        }
        SetLazy(LazyFlags.Add, size, a, b, sum);
        return ExecResult.Continue;
    }

    ExecResult Bswap(ref DecodedInstruction d)
    {
        ref ulong register = ref G(d.Reg0);
        register = d.Size == 8 ? BinaryPrimitives.ReverseEndianness(register) : BinaryPrimitives.ReverseEndianness((uint)register);
        return ExecResult.Continue;
    }

    ExecResult BitTest(ref DecodedInstruction d)
    {
        int size = d.Size, bits = size * 8;
        ulong offset = d.Kind1 == OperandKind.Register ? ReadRegister(d.Reg1, size) : d.Immediate;
        ulong a, address = 0;
        byte* host = null;
        int bit;
        if (d.Kind0 == OperandKind.Register)
        {
            a = ReadRegister(d.Reg0, size);
            bit = (int)(offset & (ulong)(bits - 1));
        }
        else
        {
            address = EffectiveAddress(ref d);
            if (d.Kind1 == OperandKind.Register)
            {
                // A register bit offset is signed and may reach outside the addressed operand.
                int shift = 64 - bits;
                long signedOffset = (long)(offset << shift) >> shift;
                address += (ulong)((signedOffset >> BitOperations.Log2((uint)bits)) * size);
            }
            bit = (int)(offset & (ulong)(bits - 1));
            bool ok = d.Op == Op.Bt
                ? TryRead(address, size, out a)
                : TryReadForWrite(address, size, out a, out host);
            if (!ok) return ExecResult.Fault;
        }
        ulong mask = 1UL << bit;
        bool set = (a & mask) != 0;
        if (d.Op != Op.Bt)
        {
            ulong result = d.Op switch
            {
                Op.Bts => a | mask,
                Op.Btr => a & ~mask,
                _ => a ^ mask,
            };
            if (d.Kind0 == OperandKind.Register) WriteRegister(d.Reg0, size, result);
            else if (!TryWriteBack(host, address, size, result)) return ExecResult.Fault;
        }
        SetSomeStatusFlags(CpuFlags.Carry, set ? CpuFlags.Carry : 0);
        return ExecResult.Continue;
    }

    ExecResult BitScan(ref DecodedInstruction d)
    {
        int size = d.Size, bits = size * 8;
        if (!TryReadSource(ref d, size, out ulong source)) return ExecResult.Fault;
        switch (d.Op)
        {
            case Op.Bsf:
            case Op.Bsr:
                if (source == 0)
                {
                    // The destination keeps its value (what Intel and AMD processors do).
                    SetSomeStatusFlags(CpuFlags.Zero, CpuFlags.Zero);
                    return ExecResult.Continue;
                }
                ulong index = d.Op == Op.Bsf ? (ulong)BitOperations.TrailingZeroCount(source) : (ulong)BitOperations.Log2(source);
                WriteRegister(d.Reg0, size, index);
                SetSomeStatusFlags(CpuFlags.Zero, 0);
                return ExecResult.Continue;
            case Op.Lzcnt:
                ulong count = (ulong)(BitOperations.LeadingZeroCount(source) - (64 - bits));
                WriteRegister(d.Reg0, size, count);
                SetSomeStatusFlags(CpuFlags.Carry | CpuFlags.Zero,
                    (source == 0 ? CpuFlags.Carry : 0) | (count == 0 ? CpuFlags.Zero : 0));
                return ExecResult.Continue;
            default: // Popcnt
                WriteRegister(d.Reg0, size, (ulong)BitOperations.PopCount(source));
                SetStatusFlags(source == 0 ? CpuFlags.Zero : 0);
                return ExecResult.Continue;
        }
    }

    ExecResult SignExtendAccumulator(ref DecodedInstruction d)
    {
        ulong rax = G(0);
        switch (d.Instruction.Mnemonic)
        {
            case Mnemonic.Cbw: WriteRegister(0, 2, (ulong)(sbyte)rax); break;
            case Mnemonic.Cwde: WriteRegister(0, 4, (ulong)(short)rax); break;
            default: G(0) = (ulong)(int)rax; break;
        }
        return ExecResult.Continue;
    }

    ExecResult SignExtendIntoRdx(ref DecodedInstruction d)
    {
        ulong rax = G(0);
        switch (d.Instruction.Mnemonic)
        {
            case Mnemonic.Cwd: WriteRegister(2, 2, (short)rax < 0 ? 0xFFFFUL : 0); break;
            case Mnemonic.Cdq: WriteRegister(2, 4, (int)rax < 0 ? 0xFFFF_FFFFUL : 0); break;
            default: G(2) = (long)rax < 0 ? ulong.MaxValue : 0; break;
        }
        return ExecResult.Continue;
    }
}
