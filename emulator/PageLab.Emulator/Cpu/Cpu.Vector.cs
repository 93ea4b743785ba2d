using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

/// <summary>The SSE/SSE2 subset the interpreter implements.</summary>
internal static class VectorInstructions
{
    public static bool IsImplemented(in Instruction instruction)
    {
        for (int op = 0; op < instruction.OpCount; op++)
        {
            if (instruction.GetOpKind(op) == OpKind.Register && instruction.GetOpRegister(op).IsMM())
                return false; // MMX forms are not implemented
        }
        if (instruction.Encoding != EncodingKind.Legacy) return false; // VEX/EVEX: AVX is not advertised
        return instruction.Mnemonic switch
        {
            Mnemonic.Movdqa or Mnemonic.Movdqu or Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movapd or Mnemonic.Movupd
                or Mnemonic.Movntdq or Mnemonic.Movntps or Mnemonic.Movntpd
                or Mnemonic.Movd or Mnemonic.Movq or Mnemonic.Movss
                or Mnemonic.Movlps or Mnemonic.Movlpd or Mnemonic.Movhps or Mnemonic.Movhpd or Mnemonic.Movhlps or Mnemonic.Movlhps
                or Mnemonic.Pmovmskb or Mnemonic.Movmskps or Mnemonic.Movmskpd or Mnemonic.Pextrw or Mnemonic.Pinsrw
                or Mnemonic.Pand or Mnemonic.Pandn or Mnemonic.Por or Mnemonic.Pxor
                or Mnemonic.Andps or Mnemonic.Andpd or Mnemonic.Andnps or Mnemonic.Andnpd or Mnemonic.Orps or Mnemonic.Orpd
                or Mnemonic.Xorps or Mnemonic.Xorpd
                or Mnemonic.Paddb or Mnemonic.Paddw or Mnemonic.Paddd or Mnemonic.Paddq
                or Mnemonic.Psubb or Mnemonic.Psubw or Mnemonic.Psubd or Mnemonic.Psubq
                or Mnemonic.Paddsb or Mnemonic.Paddsw or Mnemonic.Paddusb or Mnemonic.Paddusw
                or Mnemonic.Psubsb or Mnemonic.Psubsw or Mnemonic.Psubusb or Mnemonic.Psubusw
                or Mnemonic.Pmullw or Mnemonic.Pmulhw or Mnemonic.Pmulhuw or Mnemonic.Pmuludq or Mnemonic.Pmaddwd
                or Mnemonic.Psadbw or Mnemonic.Pavgb or Mnemonic.Pavgw
                or Mnemonic.Pminub or Mnemonic.Pmaxub or Mnemonic.Pminsw or Mnemonic.Pmaxsw
                or Mnemonic.Pcmpeqb or Mnemonic.Pcmpeqw or Mnemonic.Pcmpeqd or Mnemonic.Pcmpgtb or Mnemonic.Pcmpgtw or Mnemonic.Pcmpgtd
                or Mnemonic.Punpcklbw or Mnemonic.Punpcklwd or Mnemonic.Punpckldq or Mnemonic.Punpcklqdq
                or Mnemonic.Punpckhbw or Mnemonic.Punpckhwd or Mnemonic.Punpckhdq or Mnemonic.Punpckhqdq
                or Mnemonic.Packsswb or Mnemonic.Packssdw or Mnemonic.Packuswb
                or Mnemonic.Pshufd or Mnemonic.Pshuflw or Mnemonic.Pshufhw or Mnemonic.Shufps or Mnemonic.Shufpd
                or Mnemonic.Unpcklps or Mnemonic.Unpckhps or Mnemonic.Unpcklpd or Mnemonic.Unpckhpd
                or Mnemonic.Psllw or Mnemonic.Pslld or Mnemonic.Psllq or Mnemonic.Psrlw or Mnemonic.Psrld or Mnemonic.Psrlq
                or Mnemonic.Psraw or Mnemonic.Psrad or Mnemonic.Pslldq or Mnemonic.Psrldq
                or Mnemonic.Addss or Mnemonic.Addsd or Mnemonic.Subss or Mnemonic.Subsd or Mnemonic.Mulss or Mnemonic.Mulsd
                or Mnemonic.Divss or Mnemonic.Divsd or Mnemonic.Sqrtss or Mnemonic.Sqrtsd
                or Mnemonic.Minss or Mnemonic.Minsd or Mnemonic.Maxss or Mnemonic.Maxsd
                or Mnemonic.Addps or Mnemonic.Addpd or Mnemonic.Subps or Mnemonic.Subpd or Mnemonic.Mulps or Mnemonic.Mulpd
                or Mnemonic.Divps or Mnemonic.Divpd or Mnemonic.Sqrtps or Mnemonic.Sqrtpd
                or Mnemonic.Minps or Mnemonic.Minpd or Mnemonic.Maxps or Mnemonic.Maxpd
                or Mnemonic.Cmpss or Mnemonic.Cmpps or Mnemonic.Cmppd
                or Mnemonic.Ucomiss or Mnemonic.Ucomisd or Mnemonic.Comiss or Mnemonic.Comisd
                or Mnemonic.Cvtsi2ss or Mnemonic.Cvtsi2sd or Mnemonic.Cvttss2si or Mnemonic.Cvttsd2si
                or Mnemonic.Cvtss2si or Mnemonic.Cvtsd2si or Mnemonic.Cvtss2sd or Mnemonic.Cvtsd2ss
                or Mnemonic.Cvtdq2ps or Mnemonic.Cvtdq2pd or Mnemonic.Cvtps2dq or Mnemonic.Cvttps2dq
                or Mnemonic.Cvtpd2dq or Mnemonic.Cvttpd2dq or Mnemonic.Cvtps2pd or Mnemonic.Cvtpd2ps
                or Mnemonic.Ldmxcsr or Mnemonic.Stmxcsr => true,
            // MOVSD and CMPSD name both a string instruction and an SSE2 one.
            Mnemonic.Movsd => instruction.Code != Code.Movsd_m32_m32,
            Mnemonic.Cmpsd => instruction.Code != Code.Cmpsd_m32_m32,
            _ => false,
        };
    }
}

// SSE/SSE2 semantics run on the host's SSE2 unit (System.Runtime.Intrinsics.X86), which gives the
// exact results, NaN propagation and integer-indefinite conversions the SDM specifies, under the
// host's default MXCSR (round to nearest, no flush-to-zero).
public sealed unsafe partial class Cpu
{
    /// <summary>MXCSR after reset: all exceptions masked, round to nearest.</summary>
    public const uint DefaultMxcsr = 0x1F80;
    /// <summary>MXCSR as the guest last loaded it. The arithmetic always rounds to nearest (see the report of unsupported modes).</summary>
    public uint Mxcsr { get; set; }

    /// <summary>Reads operand 1 of a vector instruction (an XMM register or memory of its size, aligned when the instruction demands).</summary>
    ExecResult TryVectorSource(ref DecodedInstruction d, out Vector128<byte> value)
    {
        switch (d.Kind1)
        {
            case OperandKind.Register:
                value = X(d.Reg1);
                return ExecResult.Continue;
            case OperandKind.Memory:
                return TryVectorMemory(ref d, d.SourceSize, out value);
            default:
                value = default; // an immediate count (PSLLDQ, PSRLW xmm, imm8...): the handler reads it
                return ExecResult.Continue;
        }
    }

    ExecResult TryVectorMemory(ref DecodedInstruction d, int size, out Vector128<byte> value)
    {
        ulong address = EffectiveAddress(ref d);
        if (size == 16)
        {
            if (RequiresAlignment(ref d) && (address & 15) != 0)
            {
                value = default;
                return ExecResult.GeneralProtection;
            }
            return TryRead128(address, out value) ? ExecResult.Continue : ExecResult.Fault;
        }
        bool ok = TryRead(address, size, out ulong scalar);
        value = Vector128.CreateScalar(scalar).AsByte();
        return ok ? ExecResult.Continue : ExecResult.Fault;
    }

    /// <summary>Legacy SSE 16-byte memory operands must be aligned, except for the explicitly unaligned moves.</summary>
    static bool RequiresAlignment(ref DecodedInstruction d) =>
        d.Instruction.Mnemonic is not (Mnemonic.Movdqu or Mnemonic.Movups or Mnemonic.Movupd);

    ExecResult TryVectorStore(ref DecodedInstruction d, Vector128<byte> value, int size)
    {
        ulong address = EffectiveAddress(ref d);
        if (size == 16)
        {
            if (RequiresAlignment(ref d) && (address & 15) != 0) return ExecResult.GeneralProtection;
            return TryWrite128(address, value) ? ExecResult.Continue : ExecResult.Fault;
        }
        return TryWrite(address, size, value.AsUInt64().ToScalar()) ? ExecResult.Continue : ExecResult.Fault;
    }

    ExecResult ExecuteVector(ref DecodedInstruction d)
    {
        var mnemonic = d.Instruction.Mnemonic;
        switch (mnemonic)
        {
            case Mnemonic.Movdqa or Mnemonic.Movdqu or Mnemonic.Movaps or Mnemonic.Movups or Mnemonic.Movapd or Mnemonic.Movupd
                or Mnemonic.Movntdq or Mnemonic.Movntps or Mnemonic.Movntpd:
                return MoveVector(ref d);
            case Mnemonic.Movd or Mnemonic.Movq: return MoveScalarInteger(ref d);
            case Mnemonic.Movss: return MoveScalarFloat(ref d, 4);
            case Mnemonic.Movsd: return MoveScalarFloat(ref d, 8);
            case Mnemonic.Movlps or Mnemonic.Movlpd or Mnemonic.Movhps or Mnemonic.Movhpd or Mnemonic.Movhlps or Mnemonic.Movlhps:
                return MoveHalf(ref d);
            case Mnemonic.Pmovmskb:
                WriteRegister(d.Reg0, 4, (uint)Sse2.MoveMask(X(d.Reg1)));
                return ExecResult.Continue;
            case Mnemonic.Movmskps:
                WriteRegister(d.Reg0, 4, (uint)Sse.MoveMask(X(d.Reg1).AsSingle()));
                return ExecResult.Continue;
            case Mnemonic.Movmskpd:
                WriteRegister(d.Reg0, 4, (uint)Sse2.MoveMask(X(d.Reg1).AsDouble()));
                return ExecResult.Continue;
            case Mnemonic.Pextrw:
                WriteRegister(d.Reg0, 4, X(d.Reg1).AsUInt16().GetElement((int)(d.Immediate & 7)));
                return ExecResult.Continue;
            case Mnemonic.Pinsrw:
                {
                    ulong word;
                    if (d.Kind1 == OperandKind.Register) word = G(d.Reg1);
                    else if (!TryRead(EffectiveAddress(ref d), 2, out word)) return ExecResult.Fault;
                    X(d.Reg0) = X(d.Reg0).AsUInt16().WithElement((int)(d.Immediate & 7), (ushort)word).AsByte();
                    return ExecResult.Continue;
                }
            case Mnemonic.Ldmxcsr:
                {
                    if (!TryRead(EffectiveAddress(ref d), 4, out ulong value)) return ExecResult.Fault;
                    if ((value & 0xFFFF_0000) != 0) return ExecResult.GeneralProtection; // reserved bits
                    Mxcsr = (uint)value;
                    return ExecResult.Continue;
                }
            case Mnemonic.Stmxcsr:
                return TryWrite(EffectiveAddress(ref d), 4, Mxcsr) ? ExecResult.Continue : ExecResult.Fault;
            case Mnemonic.Cvtsi2ss or Mnemonic.Cvtsi2sd: return ConvertFromInteger(ref d);
            case Mnemonic.Cvttss2si or Mnemonic.Cvttsd2si or Mnemonic.Cvtss2si or Mnemonic.Cvtsd2si: return ConvertToInteger(ref d);
            case Mnemonic.Ucomiss or Mnemonic.Ucomisd or Mnemonic.Comiss or Mnemonic.Comisd: return CompareOrdered(ref d);
        }

        var result = TryVectorSource(ref d, out var b);
        if (result != ExecResult.Continue) return result;
        ref var destination = ref X(d.Reg0);
        var a = destination;
        byte imm = (byte)d.Immediate;
        Vector128<byte> r;
        switch (mnemonic)
        {
            case Mnemonic.Pand or Mnemonic.Andps or Mnemonic.Andpd: r = a & b; break;
            case Mnemonic.Pandn or Mnemonic.Andnps or Mnemonic.Andnpd: r = ~a & b; break;
            case Mnemonic.Por or Mnemonic.Orps or Mnemonic.Orpd: r = a | b; break;
            case Mnemonic.Pxor or Mnemonic.Xorps or Mnemonic.Xorpd: r = a ^ b; break;
            case Mnemonic.Paddb: r = Sse2.Add(a, b); break;
            case Mnemonic.Paddw: r = Sse2.Add(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Paddd: r = Sse2.Add(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Paddq: r = Sse2.Add(a.AsUInt64(), b.AsUInt64()).AsByte(); break;
            case Mnemonic.Psubb: r = Sse2.Subtract(a, b); break;
            case Mnemonic.Psubw: r = Sse2.Subtract(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Psubd: r = Sse2.Subtract(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Psubq: r = Sse2.Subtract(a.AsUInt64(), b.AsUInt64()).AsByte(); break;
            case Mnemonic.Paddsb: r = Sse2.AddSaturate(a.AsSByte(), b.AsSByte()).AsByte(); break;
            case Mnemonic.Paddsw: r = Sse2.AddSaturate(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Paddusb: r = Sse2.AddSaturate(a, b); break;
            case Mnemonic.Paddusw: r = Sse2.AddSaturate(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Psubsb: r = Sse2.SubtractSaturate(a.AsSByte(), b.AsSByte()).AsByte(); break;
            case Mnemonic.Psubsw: r = Sse2.SubtractSaturate(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Psubusb: r = Sse2.SubtractSaturate(a, b); break;
            case Mnemonic.Psubusw: r = Sse2.SubtractSaturate(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Pmullw: r = Sse2.MultiplyLow(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Pmulhw: r = Sse2.MultiplyHigh(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Pmulhuw: r = Sse2.MultiplyHigh(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Pmuludq: r = Sse2.Multiply(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Pmaddwd: r = Sse2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Psadbw: r = Sse2.SumAbsoluteDifferences(a, b).AsByte(); break;
            case Mnemonic.Pavgb: r = Sse2.Average(a, b); break;
            case Mnemonic.Pavgw: r = Sse2.Average(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Pminub: r = Sse2.Min(a, b); break;
            case Mnemonic.Pmaxub: r = Sse2.Max(a, b); break;
            case Mnemonic.Pminsw: r = Sse2.Min(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Pmaxsw: r = Sse2.Max(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Pcmpeqb: r = Sse2.CompareEqual(a, b); break;
            case Mnemonic.Pcmpeqw: r = Sse2.CompareEqual(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Pcmpeqd: r = Sse2.CompareEqual(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Pcmpgtb: r = Sse2.CompareGreaterThan(a.AsSByte(), b.AsSByte()).AsByte(); break;
            case Mnemonic.Pcmpgtw: r = Sse2.CompareGreaterThan(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Pcmpgtd: r = Sse2.CompareGreaterThan(a.AsInt32(), b.AsInt32()).AsByte(); break;
            case Mnemonic.Punpcklbw: r = Sse2.UnpackLow(a, b); break;
            case Mnemonic.Punpcklwd: r = Sse2.UnpackLow(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Punpckldq or Mnemonic.Unpcklps: r = Sse2.UnpackLow(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Punpcklqdq or Mnemonic.Unpcklpd: r = Sse2.UnpackLow(a.AsUInt64(), b.AsUInt64()).AsByte(); break;
            case Mnemonic.Punpckhbw: r = Sse2.UnpackHigh(a, b); break;
            case Mnemonic.Punpckhwd: r = Sse2.UnpackHigh(a.AsUInt16(), b.AsUInt16()).AsByte(); break;
            case Mnemonic.Punpckhdq or Mnemonic.Unpckhps: r = Sse2.UnpackHigh(a.AsUInt32(), b.AsUInt32()).AsByte(); break;
            case Mnemonic.Punpckhqdq or Mnemonic.Unpckhpd: r = Sse2.UnpackHigh(a.AsUInt64(), b.AsUInt64()).AsByte(); break;
            case Mnemonic.Packsswb: r = Sse2.PackSignedSaturate(a.AsInt16(), b.AsInt16()).AsByte(); break;
            case Mnemonic.Packssdw: r = Sse2.PackSignedSaturate(a.AsInt32(), b.AsInt32()).AsByte(); break;
            case Mnemonic.Packuswb: r = Sse2.PackUnsignedSaturate(a.AsInt16(), b.AsInt16()); break;
            case Mnemonic.Pshufd: r = ShuffleDwords(b, b, imm); break;
            case Mnemonic.Shufps: r = ShuffleDwords(a, b, imm); break;
            case Mnemonic.Shufpd:
                r = Vector128.Create(a.AsUInt64().GetElement(imm & 1), b.AsUInt64().GetElement((imm >> 1) & 1)).AsByte();
                break;
            case Mnemonic.Pshuflw: r = ShuffleWords(b, imm, high: false); break;
            case Mnemonic.Pshufhw: r = ShuffleWords(b, imm, high: true); break;
            case Mnemonic.Psllw or Mnemonic.Pslld or Mnemonic.Psllq or Mnemonic.Psrlw or Mnemonic.Psrld or Mnemonic.Psrlq
                or Mnemonic.Psraw or Mnemonic.Psrad:
                r = ShiftLanes(mnemonic, a, d.Kind1 == OperandKind.Immediate ? Vector128.CreateScalar((ulong)imm).AsByte() : b);
                break;
            case Mnemonic.Pslldq: r = ShiftBytes(a, -imm); break;
            case Mnemonic.Psrldq: r = ShiftBytes(a, imm); break;
            case Mnemonic.Addss: r = Sse.AddScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Addsd: r = Sse2.AddScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Subss: r = Sse.SubtractScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Subsd: r = Sse2.SubtractScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Mulss: r = Sse.MultiplyScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Mulsd: r = Sse2.MultiplyScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Divss: r = Sse.DivideScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Divsd: r = Sse2.DivideScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Sqrtss: r = Sse.SqrtScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Sqrtsd: r = Sse2.SqrtScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Minss: r = Sse.MinScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Minsd: r = Sse2.MinScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Maxss: r = Sse.MaxScalar(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Maxsd: r = Sse2.MaxScalar(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Addps: r = Sse.Add(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Addpd: r = Sse2.Add(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Subps: r = Sse.Subtract(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Subpd: r = Sse2.Subtract(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Mulps: r = Sse.Multiply(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Mulpd: r = Sse2.Multiply(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Divps: r = Sse.Divide(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Divpd: r = Sse2.Divide(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Sqrtps: r = Sse.Sqrt(b.AsSingle()).AsByte(); break;
            case Mnemonic.Sqrtpd: r = Sse2.Sqrt(b.AsDouble()).AsByte(); break;
            case Mnemonic.Minps: r = Sse.Min(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Minpd: r = Sse2.Min(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Maxps: r = Sse.Max(a.AsSingle(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Maxpd: r = Sse2.Max(a.AsDouble(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Cmpss or Mnemonic.Cmpsd or Mnemonic.Cmpps or Mnemonic.Cmppd:
                r = CompareFloat(mnemonic, a, b, imm);
                break;
            case Mnemonic.Cvtss2sd: r = Sse2.ConvertScalarToVector128Double(a.AsDouble(), b.AsSingle()).AsByte(); break;
            case Mnemonic.Cvtsd2ss: r = Sse2.ConvertScalarToVector128Single(a.AsSingle(), b.AsDouble()).AsByte(); break;
            case Mnemonic.Cvtdq2ps: r = Sse2.ConvertToVector128Single(b.AsInt32()).AsByte(); break;
            case Mnemonic.Cvtdq2pd: r = Sse2.ConvertToVector128Double(b.AsInt32()).AsByte(); break;
            case Mnemonic.Cvtps2dq: r = Sse2.ConvertToVector128Int32(b.AsSingle()).AsByte(); break;
            case Mnemonic.Cvttps2dq: r = Sse2.ConvertToVector128Int32WithTruncation(b.AsSingle()).AsByte(); break;
            case Mnemonic.Cvtpd2dq: r = Sse2.ConvertToVector128Int32(b.AsDouble()).AsByte(); break;
            case Mnemonic.Cvttpd2dq: r = Sse2.ConvertToVector128Int32WithTruncation(b.AsDouble()).AsByte(); break;
            case Mnemonic.Cvtps2pd: r = Sse2.ConvertToVector128Double(b.AsSingle()).AsByte(); break;
            case Mnemonic.Cvtpd2ps: r = Sse2.ConvertToVector128Single(b.AsDouble()).AsByte(); break;
            default: return ExecResult.Invalid;
        }
        destination = r;
        return ExecResult.Continue;
    }

    ExecResult MoveVector(ref DecodedInstruction d)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            var result = TryVectorSource(ref d, out var value);
            if (result == ExecResult.Continue) X(d.Reg0) = value;
            return result;
        }
        return TryVectorStore(ref d, X(d.Reg1), 16);
    }

    /// <summary>MOVD/MOVQ between XMM registers, general registers and memory; loads zero the rest of the XMM register.</summary>
    ExecResult MoveScalarInteger(ref DecodedInstruction d)
    {
        int size = d.Instruction.Mnemonic == Mnemonic.Movd ? 4 : 8;
        bool toXmm = d.Instruction.Op0Register.IsXMM();
        if (!toXmm)
        {
            ulong low = X(d.Reg1).AsUInt64().ToScalar() & SizeMask(size);
            if (d.Kind0 == OperandKind.Register)
            {
                WriteRegister(d.Reg0, size, low);
                return ExecResult.Continue;
            }
            return TryWrite(EffectiveAddress(ref d), size, low) ? ExecResult.Continue : ExecResult.Fault;
        }
        ulong value;
        if (d.Kind1 == OperandKind.Memory)
        {
            if (!TryRead(EffectiveAddress(ref d), size, out value)) return ExecResult.Fault;
        }
        else if (d.Instruction.Op1Register.IsXMM())
        {
            value = X(d.Reg1).AsUInt64().ToScalar();
        }
        else
        {
            value = G(d.Reg1) & SizeMask(size);
        }
        X(d.Reg0) = Vector128.CreateScalar(value).AsByte();
        return ExecResult.Continue;
    }

    /// <summary>MOVSS/MOVSD: a load zeroes the rest of the register, a register move merges the low element.</summary>
    ExecResult MoveScalarFloat(ref DecodedInstruction d, int size)
    {
        if (d.Kind0 == OperandKind.Memory)
            return TryWrite(EffectiveAddress(ref d), size, X(d.Reg1).AsUInt64().ToScalar() & SizeMask(size)) ? ExecResult.Continue : ExecResult.Fault;
        if (d.Kind1 == OperandKind.Memory)
        {
            if (!TryRead(EffectiveAddress(ref d), size, out ulong value)) return ExecResult.Fault;
            X(d.Reg0) = Vector128.CreateScalar(value).AsByte();
            return ExecResult.Continue;
        }
        X(d.Reg0) = size == 4
            ? Sse.MoveScalar(X(d.Reg0).AsSingle(), X(d.Reg1).AsSingle()).AsByte()
            : Sse2.MoveScalar(X(d.Reg0).AsDouble(), X(d.Reg1).AsDouble()).AsByte();
        return ExecResult.Continue;
    }

    /// <summary>MOVLPS/MOVLPD/MOVHPS/MOVHPD/MOVHLPS/MOVLHPS: move one 64-bit half.</summary>
    ExecResult MoveHalf(ref DecodedInstruction d)
    {
        var mnemonic = d.Instruction.Mnemonic;
        bool high = mnemonic is Mnemonic.Movhps or Mnemonic.Movhpd;
        if (d.Kind0 == OperandKind.Memory)
        {
            ulong half = X(d.Reg1).AsUInt64().GetElement(high ? 1 : 0);
            return TryWrite(EffectiveAddress(ref d), 8, half) ? ExecResult.Continue : ExecResult.Fault;
        }
        ulong value;
        if (d.Kind1 == OperandKind.Memory)
        {
            if (!TryRead(EffectiveAddress(ref d), 8, out value)) return ExecResult.Fault;
        }
        else
        {
            // MOVHLPS takes the source's high half into the low half; MOVLHPS the source's low half into the high half.
            value = X(d.Reg1).AsUInt64().GetElement(mnemonic == Mnemonic.Movhlps ? 1 : 0);
            high = mnemonic == Mnemonic.Movlhps;
        }
        X(d.Reg0) = X(d.Reg0).AsUInt64().WithElement(high ? 1 : 0, value).AsByte();
        return ExecResult.Continue;
    }

    static Vector128<byte> ShuffleDwords(Vector128<byte> low, Vector128<byte> high, byte imm)
    {
        var l = low.AsUInt32();
        var h = high.AsUInt32();
        return Vector128.Create(l.GetElement(imm & 3), l.GetElement((imm >> 2) & 3), h.GetElement((imm >> 4) & 3), h.GetElement((imm >> 6) & 3)).AsByte();
    }

    static Vector128<byte> ShuffleWords(Vector128<byte> source, byte imm, bool high)
    {
        var words = source.AsUInt16();
        int start = high ? 4 : 0;
        var result = words;
        for (int i = 0; i < 4; i++) result = result.WithElement(start + i, words.GetElement(start + ((imm >> (2 * i)) & 3)));
        return result.AsByte();
    }

    /// <summary>Shifts the whole register by bytes: positive = right (PSRLDQ), negative = left (PSLLDQ); counts above 15 clear it.</summary>
    static Vector128<byte> ShiftBytes(Vector128<byte> value, int bytes)
    {
        Span<byte> indices = stackalloc byte[16];
        for (int i = 0; i < 16; i++)
        {
            int from = i + bytes;
            indices[i] = from is >= 0 and < 16 ? (byte)from : (byte)0xFF; // out-of-range indices select zero
        }
        return Vector128.Shuffle(value, Vector128.Create((ReadOnlySpan<byte>)indices));
    }

    /// <summary>PSLL/PSRL/PSRA with the count in the low quadword of <paramref name="count"/> (counts past the lane width clear or fill it, as the SDM says).</summary>
    static Vector128<byte> ShiftLanes(Mnemonic mnemonic, Vector128<byte> a, Vector128<byte> count) => mnemonic switch
    {
        Mnemonic.Psllw => Sse2.ShiftLeftLogical(a.AsUInt16(), count.AsUInt16()).AsByte(),
        Mnemonic.Pslld => Sse2.ShiftLeftLogical(a.AsUInt32(), count.AsUInt32()).AsByte(),
        Mnemonic.Psllq => Sse2.ShiftLeftLogical(a.AsUInt64(), count.AsUInt64()).AsByte(),
        Mnemonic.Psrlw => Sse2.ShiftRightLogical(a.AsUInt16(), count.AsUInt16()).AsByte(),
        Mnemonic.Psrld => Sse2.ShiftRightLogical(a.AsUInt32(), count.AsUInt32()).AsByte(),
        Mnemonic.Psrlq => Sse2.ShiftRightLogical(a.AsUInt64(), count.AsUInt64()).AsByte(),
        Mnemonic.Psraw => Sse2.ShiftRightArithmetic(a.AsInt16(), count.AsInt16()).AsByte(),
        _ => Sse2.ShiftRightArithmetic(a.AsInt32(), count.AsInt32()).AsByte(),
    };

    /// <summary>CMPSS/CMPSD/CMPPS/CMPPD with predicates 0..7 (EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD).</summary>
    static Vector128<byte> CompareFloat(Mnemonic mnemonic, Vector128<byte> a, Vector128<byte> b, byte predicate)
    {
        bool isDouble = mnemonic is Mnemonic.Cmpsd or Mnemonic.Cmppd;
        bool scalar = mnemonic is Mnemonic.Cmpss or Mnemonic.Cmpsd;
        var result = a;
        int lanes = scalar ? 1 : isDouble ? 2 : 4;
        for (int i = 0; i < lanes; i++)
        {
            double x = isDouble ? a.AsDouble().GetElement(i) : a.AsSingle().GetElement(i);
            double y = isDouble ? b.AsDouble().GetElement(i) : b.AsSingle().GetElement(i);
            bool unordered = double.IsNaN(x) || double.IsNaN(y);
            bool match = (predicate & 7) switch
            {
                0 => x == y,
                1 => x < y,
                2 => x <= y,
                3 => unordered,
                4 => !(x == y),
                5 => !(x < y),
                6 => !(x <= y),
                _ => !unordered,
            };
            result = isDouble
                ? result.AsUInt64().WithElement(i, match ? ulong.MaxValue : 0).AsByte()
                : result.AsUInt32().WithElement(i, match ? uint.MaxValue : 0).AsByte();
        }
        return result;
    }

    ExecResult ConvertFromInteger(ref DecodedInstruction d)
    {
        int size = d.SourceSize;
        ulong value;
        if (d.Kind1 == OperandKind.Register) value = ReadRegister(d.Reg1, size);
        else if (!TryRead(EffectiveAddress(ref d), size, out value)) return ExecResult.Fault;
        ref var destination = ref X(d.Reg0);
        if (d.Instruction.Mnemonic == Mnemonic.Cvtsi2sd)
        {
            destination = size == 8
                ? Sse2.X64.ConvertScalarToVector128Double(destination.AsDouble(), (long)value).AsByte()
                : Sse2.ConvertScalarToVector128Double(destination.AsDouble(), (int)value).AsByte();
        }
        else
        {
            destination = size == 8
                ? Sse.X64.ConvertScalarToVector128Single(destination.AsSingle(), (long)value).AsByte()
                : Sse.ConvertScalarToVector128Single(destination.AsSingle(), (int)value).AsByte();
        }
        return ExecResult.Continue;
    }

    ExecResult ConvertToInteger(ref DecodedInstruction d)
    {
        var mnemonic = d.Instruction.Mnemonic;
        bool fromDouble = mnemonic is Mnemonic.Cvttsd2si or Mnemonic.Cvtsd2si;
        Vector128<byte> source;
        if (d.Kind1 == OperandKind.Register)
        {
            source = X(d.Reg1);
        }
        else
        {
            var result = TryVectorMemory(ref d, fromDouble ? 8 : 4, out source);
            if (result != ExecResult.Continue) return result;
        }
        bool truncate = mnemonic is Mnemonic.Cvttsd2si or Mnemonic.Cvttss2si;
        int size = d.Size;
        ulong value = (fromDouble, truncate, size) switch
        {
            (true, true, 8) => (ulong)Sse2.X64.ConvertToInt64WithTruncation(source.AsDouble()),
            (true, true, _) => (uint)Sse2.ConvertToInt32WithTruncation(source.AsDouble()),
            (true, false, 8) => (ulong)Sse2.X64.ConvertToInt64(source.AsDouble()),
            (true, false, _) => (uint)Sse2.ConvertToInt32(source.AsDouble()),
            (false, true, 8) => (ulong)Sse.X64.ConvertToInt64WithTruncation(source.AsSingle()),
            (false, true, _) => (uint)Sse.ConvertToInt32WithTruncation(source.AsSingle()),
            (false, false, 8) => (ulong)Sse.X64.ConvertToInt64(source.AsSingle()),
            _ => (uint)Sse.ConvertToInt32(source.AsSingle()),
        };
        WriteRegister(d.Reg0, size, value);
        return ExecResult.Continue;
    }

    /// <summary>UCOMISS/UCOMISD/COMISS/COMISD: ZF, PF, CF = 111 unordered, 000 greater, 001 less, 100 equal; OF, SF, AF cleared.</summary>
    ExecResult CompareOrdered(ref DecodedInstruction d)
    {
        bool isDouble = d.Instruction.Mnemonic is Mnemonic.Ucomisd or Mnemonic.Comisd;
        Vector128<byte> b;
        if (d.Kind1 == OperandKind.Register)
        {
            b = X(d.Reg1);
        }
        else
        {
            var result = TryVectorMemory(ref d, isDouble ? 8 : 4, out b);
            if (result != ExecResult.Continue) return result;
        }
        var a = X(d.Reg0);
        double x = isDouble ? a.AsDouble().ToScalar() : a.AsSingle().ToScalar();
        double y = isDouble ? b.AsDouble().ToScalar() : b.AsSingle().ToScalar();
        ulong status;
        if (double.IsNaN(x) || double.IsNaN(y)) status = CpuFlags.Zero | CpuFlags.Parity | CpuFlags.Carry;
        else if (x < y) status = CpuFlags.Carry;
        else if (x == y) status = CpuFlags.Zero;
        else status = 0;
        SetStatusFlags(status);
        return ExecResult.Continue;
    }
}
