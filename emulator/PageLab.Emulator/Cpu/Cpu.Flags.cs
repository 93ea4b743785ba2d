using System.Numerics;
using System.Runtime.CompilerServices;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

/// <summary>How the status flags follow from the last flag-setting instruction's operands and result.</summary>
internal enum LazyFlags : byte
{
    /// <summary>The status flags are materialized in <c>flags</c>.</summary>
    None,
    Add,
    Sub,
    /// <summary>ADC: like Add with a carry in.</summary>
    AddWithCarry,
    /// <summary>SBB: like Sub with a borrow in.</summary>
    SubWithBorrow,
    /// <summary>AND/OR/XOR/TEST: CF = OF = 0.</summary>
    Logic,
    /// <summary>INC: like Add of 1, but CF is kept (in the carry-in field).</summary>
    Increment,
    /// <summary>DEC: like Sub of 1, CF kept.</summary>
    Decrement,
}

// Status flags are evaluated lazily: an ALU instruction records its operands and result, and the
// flags are computed only when something reads them. Most results are only tested by the next
// jcc, which the fast paths in Condition answer straight from the operands.
public sealed unsafe partial class Cpu
{
    /// <summary>RFLAGS; its status bits are stale while <see cref="lazyKind"/> is not None.</summary>
    ulong flags;
    LazyFlags lazyKind;
    byte lazySize;
    bool lazyCarryIn;
    ulong lazyA, lazyB, lazyResult;

    /// <summary>Bits 0..21 except the reserved 1, 3, 5 and 15; the rest of RFLAGS reads as 0 (bit 1 as 1).</summary>
    const ulong DefinedBits = 0x3F_FFFFUL & ~0x802AUL;

    /// <summary>RFLAGS as the guest sees it (PUSHF).</summary>
    public ulong Rflags
    {
        get => (flags & ~CpuFlags.Status) | StatusFlags() | CpuFlags.Reserved1;
        set
        {
            flags = (value & DefinedBits) | CpuFlags.Reserved1;
            lazyKind = LazyFlags.None;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong SizeMask(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong SignBit(int size) => 1UL << (size * 8 - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void SetLazy(LazyFlags kind, int size, ulong a, ulong b, ulong result)
    {
        lazyKind = kind;
        lazySize = (byte)size;
        lazyA = a;
        lazyB = b;
        lazyResult = result;
    }

    /// <summary>Replaces the six status flags with <paramref name="status"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void SetStatusFlags(ulong status)
    {
        flags = (flags & ~CpuFlags.Status) | status;
        lazyKind = LazyFlags.None;
    }

    /// <summary>Replaces the status flags in <paramref name="mask"/>, keeping the others as they are now.</summary>
    void SetSomeStatusFlags(ulong mask, ulong status)
    {
        ulong current = StatusFlags();
        SetStatusFlags((current & ~mask) | (status & mask));
    }

    /// <summary>PF: set when the low byte of the result has an even number of one bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong ParityFlag(ulong result) => (ulong)(~BitOperations.PopCount(result & 0xFF) & 1) << 2;

    /// <summary>ZF, SF and PF of a result of <paramref name="size"/> bytes (already masked).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong ResultFlags(ulong result, int size) =>
        (result == 0 ? CpuFlags.Zero : 0) | ((result & SignBit(size)) != 0 ? CpuFlags.Sign : 0) | ParityFlag(result);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool CarryFlag() => lazyKind == LazyFlags.None ? (flags & CpuFlags.Carry) != 0 : (StatusFlags() & CpuFlags.Carry) != 0;

    /// <summary>Computes the six status flags from the lazy state.</summary>
    ulong StatusFlags()
    {
        if (lazyKind == LazyFlags.None) return flags & CpuFlags.Status;
        ulong a = lazyA, b = lazyB, r = lazyResult, sign = SignBit(lazySize);
        bool carry, overflow;
        ulong adjust = (a ^ b ^ r) & CpuFlags.Adjust;
        switch (lazyKind)
        {
            case LazyFlags.Add:
                carry = r < a;
                overflow = ((a ^ r) & (b ^ r) & sign) != 0;
                break;
            case LazyFlags.AddWithCarry:
                carry = lazyCarryIn ? r <= a : r < a;
                overflow = ((a ^ r) & (b ^ r) & sign) != 0;
                break;
            case LazyFlags.Sub:
                carry = a < b;
                overflow = ((a ^ b) & (a ^ r) & sign) != 0;
                break;
            case LazyFlags.SubWithBorrow:
                carry = lazyCarryIn ? a <= b : a < b;
                overflow = ((a ^ b) & (a ^ r) & sign) != 0;
                break;
            case LazyFlags.Increment:
                carry = lazyCarryIn;
                overflow = r == sign;
                break;
            case LazyFlags.Decrement:
                carry = lazyCarryIn;
                overflow = r == sign - 1;
                break;
            default: // Logic
                carry = false;
                overflow = false;
                adjust = 0;
                break;
        }
        return (carry ? CpuFlags.Carry : 0) | (overflow ? CpuFlags.Overflow : 0) | adjust | ResultFlags(r, lazySize);
    }

    /// <summary>Evaluates a condition code (jcc, setcc, cmovcc).</summary>
    bool Condition(ConditionCode condition)
    {
        if (lazyKind != LazyFlags.None)
        {
            // ZF and SF come from the result for every lazy kind.
            bool negative = (lazyResult & SignBit(lazySize)) != 0;
            switch (condition)
            {
                case ConditionCode.e: return lazyResult == 0;
                case ConditionCode.ne: return lazyResult != 0;
                case ConditionCode.s: return negative;
                case ConditionCode.ns: return !negative;
            }
            if (lazyKind == LazyFlags.Sub)
            {
                // Straight from the comparison's operands; shifting left puts the operand's sign bit at bit 63.
                int shift = 64 - lazySize * 8;
                switch (condition)
                {
                    case ConditionCode.b: return lazyA < lazyB;
                    case ConditionCode.ae: return lazyA >= lazyB;
                    case ConditionCode.be: return lazyA <= lazyB;
                    case ConditionCode.a: return lazyA > lazyB;
                    case ConditionCode.l: return (long)(lazyA << shift) < (long)(lazyB << shift);
                    case ConditionCode.ge: return (long)(lazyA << shift) >= (long)(lazyB << shift);
                    case ConditionCode.le: return (long)(lazyA << shift) <= (long)(lazyB << shift);
                    case ConditionCode.g: return (long)(lazyA << shift) > (long)(lazyB << shift);
                }
            }
            else if (lazyKind == LazyFlags.Logic)
            {
                // CF = OF = 0.
                switch (condition)
                {
                    case ConditionCode.b: return false;
                    case ConditionCode.ae: return true;
                    case ConditionCode.be: return lazyResult == 0;
                    case ConditionCode.a: return lazyResult != 0;
                    case ConditionCode.l: return negative;
                    case ConditionCode.ge: return !negative;
                    case ConditionCode.le: return lazyResult == 0 || negative;
                    case ConditionCode.g: return lazyResult != 0 && !negative;
                }
            }
        }
        return ConditionFromFlags(condition, StatusFlags());
    }

    static bool ConditionFromFlags(ConditionCode condition, ulong f)
    {
        bool cf = (f & CpuFlags.Carry) != 0, zf = (f & CpuFlags.Zero) != 0, sf = (f & CpuFlags.Sign) != 0;
        bool of = (f & CpuFlags.Overflow) != 0, pf = (f & CpuFlags.Parity) != 0;
        return condition switch
        {
            ConditionCode.o => of,
            ConditionCode.no => !of,
            ConditionCode.b => cf,
            ConditionCode.ae => !cf,
            ConditionCode.e => zf,
            ConditionCode.ne => !zf,
            ConditionCode.be => cf || zf,
            ConditionCode.a => !cf && !zf,
            ConditionCode.s => sf,
            ConditionCode.ns => !sf,
            ConditionCode.p => pf,
            ConditionCode.np => !pf,
            ConditionCode.l => sf != of,
            ConditionCode.ge => sf == of,
            ConditionCode.le => zf || sf != of,
            ConditionCode.g => !zf && sf == of,
            _ => true,
        };
    }
}
