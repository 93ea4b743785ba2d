using System.Numerics;
using Iced.Intel;

namespace PageLab.Emulator.Cpu;

/// <summary>Outcome of decoding the bytes at one address.</summary>
internal enum DecodeStatus : byte
{
    Ok,
    /// <summary>The bytes given ran out before the instruction ended: it continues on the next page.</summary>
    NeedMoreBytes,
}

/// <summary>
/// Turns instruction bytes into <see cref="DecodedInstruction"/>s with Iced, choosing the handler
/// and pre-digesting the operands. One instance is reused for every decode (Iced's decoder and
/// its reader are allocated once).
/// </summary>
internal sealed class InstructionDecoder
{
    /// <summary>The architectural maximum instruction length.</summary>
    public const int MaxInstructionLength = 15;

    sealed class BufferReader : CodeReader
    {
        public readonly byte[] Bytes = new byte[MaxInstructionLength];
        public int Length;
        public int Position;

        public override int ReadByte() => Position < Length ? Bytes[Position++] : -1;
    }

    readonly BufferReader reader = new();
    readonly Decoder decoder;

    public InstructionDecoder() => decoder = Decoder.Create(64, reader, DecoderOptions.None);

    /// <summary>Decodes the instruction starting at the first of <paramref name="bytes"/>, located at linear address <paramref name="ip"/>.</summary>
    public DecodeStatus Decode(ReadOnlySpan<byte> bytes, ulong ip, out DecodedInstruction decoded)
    {
        int length = Math.Min(bytes.Length, MaxInstructionLength);
        bytes[..length].CopyTo(reader.Bytes);
        reader.Length = length;
        reader.Position = 0;
        decoder.IP = ip;
        decoder.Decode(out var instruction);
        if (decoder.LastError == DecoderError.NoMoreBytes && length < MaxInstructionLength)
        {
            decoded = default;
            return DecodeStatus.NeedMoreBytes;
        }
        decoded = Prepare(instruction);
        return DecodeStatus.Ok;
    }

    static DecodedInstruction Prepare(in Instruction instruction)
    {
        var d = new DecodedInstruction
        {
            Instruction = instruction,
            Length = (byte)Math.Max(instruction.Length, 1),
            Op = Classify(instruction),
            Condition = instruction.ConditionCode,
            MemoryBase = Cpu.NoRegister,
            MemoryIndex = Cpu.NoRegister,
        };
        if (d.Op == Op.Invalid) return d;
        ulong nextIp = instruction.NextIP;
        bool immediateSeen = false;
        int count = Math.Min(instruction.OpCount, 3);
        for (int op = 0; op < count; op++)
        {
            OperandKind kind;
            byte register = 0;
            int size = 0;
            switch (instruction.GetOpKind(op))
            {
                case Iced.Intel.OpKind.Register:
                    kind = OperandKind.Register;
                    var reg = instruction.GetOpRegister(op);
                    register = RegisterCode(reg);
                    size = reg.GetSize();
                    break;
                case Iced.Intel.OpKind.Memory:
                    kind = OperandKind.Memory;
                    size = instruction.MemorySize.GetSize();
                    PrepareMemory(ref d, instruction, nextIp);
                    break;
                case Iced.Intel.OpKind.NearBranch16:
                case Iced.Intel.OpKind.NearBranch32:
                case Iced.Intel.OpKind.NearBranch64:
                    kind = OperandKind.Immediate;
                    d.Immediate = instruction.NearBranchTarget - nextIp;
                    immediateSeen = true;
                    break;
                case Iced.Intel.OpKind.Immediate8:
                case Iced.Intel.OpKind.Immediate8_2nd:
                case Iced.Intel.OpKind.Immediate16:
                case Iced.Intel.OpKind.Immediate32:
                case Iced.Intel.OpKind.Immediate64:
                case Iced.Intel.OpKind.Immediate8to16:
                case Iced.Intel.OpKind.Immediate8to32:
                case Iced.Intel.OpKind.Immediate8to64:
                case Iced.Intel.OpKind.Immediate32to64:
                    kind = OperandKind.Immediate;
                    if (immediateSeen) d.Immediate2 = (byte)instruction.GetImmediate(op);
                    else d.Immediate = instruction.GetImmediate(op);
                    immediateSeen = true;
                    break;
                default:
                    // String operands ([rsi], [rdi]) are implied by the handler.
                    kind = OperandKind.None;
                    size = instruction.MemorySize.GetSize();
                    break;
            }
            switch (op)
            {
                case 0: d.Kind0 = kind; d.Reg0 = register; d.Size = (byte)size; break;
                case 1: d.Kind1 = kind; d.Reg1 = register; d.SourceSize = (byte)size; break;
                default: d.Kind2 = kind; d.Reg2 = register; break;
            }
        }
        // Operands without an explicit size take the first operand's (immediates, lea's memory).
        if (d.SourceSize == 0) d.SourceSize = d.Size;
        if (d.Size == 0) d.Size = d.SourceSize;
        return d;
    }

    static void PrepareMemory(ref DecodedInstruction d, in Instruction instruction, ulong nextIp)
    {
        var baseRegister = instruction.MemoryBase;
        d.AddressSize32 = baseRegister.IsGPR32() || instruction.MemoryIndex.IsGPR32() || baseRegister == Register.EIP;
        if (baseRegister == Register.RIP || baseRegister == Register.EIP)
        {
            d.MemoryBase = Cpu.RipRegister;
            d.Displacement = (long)(instruction.MemoryDisplacement64 - nextIp);
        }
        else
        {
            d.MemoryBase = baseRegister == Register.None ? Cpu.NoRegister : RegisterCode(baseRegister);
            d.Displacement = (long)instruction.MemoryDisplacement64;
        }
        d.MemoryIndex = instruction.MemoryIndex == Register.None ? Cpu.NoRegister : RegisterCode(instruction.MemoryIndex);
        d.MemoryScaleShift = (byte)BitOperations.Log2((uint)Math.Max(instruction.MemoryIndexScale, 1));
        d.MemorySegment = instruction.MemorySegment switch
        {
            Register.FS => 1,
            Register.GS => 2,
            _ => 0,
        };
    }

    /// <summary>GPR index (0 = RAX .. 15 = R15), 16..19 for AH, CH, DH, BH; XMM index for vector registers.</summary>
    static byte RegisterCode(Register register)
    {
        if (register >= Register.AH && register <= Register.BH) return (byte)(Cpu.HighByteRegister + (register - Register.AH));
        if (register.IsGPR()) return (byte)(register.GetFullRegister() - Register.RAX);
        if (register.IsXMM()) return (byte)(register - Register.XMM0);
        return (byte)register.GetNumber();
    }

    static bool OnlyGeneralRegisters(in Instruction instruction)
    {
        for (int op = 0; op < instruction.OpCount; op++)
        {
            if (instruction.GetOpKind(op) == Iced.Intel.OpKind.Register && !instruction.GetOpRegister(op).IsGPR())
                return false;
        }
        return true;
    }

    /// <summary>String instructions are implemented with 64-bit addresses and no segment override (what compilers emit).</summary>
    static bool IsPlainStringOperation(in Instruction instruction)
    {
        if (instruction.SegmentPrefix is Register.FS or Register.GS) return false;
        for (int op = 0; op < instruction.OpCount; op++)
        {
            if (instruction.GetOpKind(op) is Iced.Intel.OpKind.MemorySegESI or Iced.Intel.OpKind.MemorySegEDI or Iced.Intel.OpKind.MemoryESEDI
                or Iced.Intel.OpKind.MemorySegSI or Iced.Intel.OpKind.MemorySegDI or Iced.Intel.OpKind.MemoryESDI)
                return false;
        }
        return true;
    }

    /// <summary>Picks the handler; anything not listed here (AVX, SSE3+, x87 arithmetic, privileged...) is #UD.</summary>
    internal static Op Classify(in Instruction instruction)
    {
        if (instruction.IsInvalid) return Op.Invalid;
        if (instruction.IsJccShortOrNear) return Op.Jcc;
        var integer = IntegerOp(instruction);
        if (integer is Op.Movs or Op.Cmps or Op.Stos or Op.Lods or Op.Scas && !IsPlainStringOperation(instruction)) return Op.Invalid;
        if (integer != Op.Invalid) return OnlyGeneralRegisters(instruction) ? integer : Op.Invalid;
        if (VectorInstructions.IsImplemented(instruction)) return Op.Vector;
        if (HostX87.IsX87(instruction)) return Op.X87;
        return instruction.Mnemonic switch
        {
            Mnemonic.Cpuid or Mnemonic.Rdtsc or Mnemonic.Hlt or Mnemonic.Int3 or Mnemonic.Int or Mnemonic.Int1 => Op.System,
            _ => Op.Invalid,
        };
    }

    static Op IntegerOp(in Instruction instruction) => instruction.Mnemonic switch
    {
        Mnemonic.Nop or Mnemonic.Endbr64 or Mnemonic.Pause or Mnemonic.Lfence or Mnemonic.Mfence or Mnemonic.Sfence
            or Mnemonic.Prefetchnta or Mnemonic.Prefetcht0 or Mnemonic.Prefetcht1 or Mnemonic.Prefetcht2
            // FWAIT: x87 exceptions are always masked while the host unit runs guest instructions, so none is ever pending.
            or Mnemonic.Wait => Op.Nop,
        Mnemonic.Mov or Mnemonic.Movnti => Op.Mov,
        Mnemonic.Movzx => Op.Movzx,
        Mnemonic.Movsx or Mnemonic.Movsxd => Op.Movsx,
        Mnemonic.Lea => Op.Lea,
        Mnemonic.Xchg => Op.Xchg,
        Mnemonic.Cmpxchg => Op.Cmpxchg,
        Mnemonic.Cmpxchg16b => Op.Cmpxchg16b,
        Mnemonic.Xadd => Op.Xadd,
        Mnemonic.Bswap => Op.Bswap,
        Mnemonic.Add => Op.Add,
        Mnemonic.Or => Op.Or,
        Mnemonic.Adc => Op.Adc,
        Mnemonic.Sbb => Op.Sbb,
        Mnemonic.And => Op.And,
        Mnemonic.Sub => Op.Sub,
        Mnemonic.Xor => Op.Xor,
        Mnemonic.Cmp => Op.Cmp,
        Mnemonic.Test => Op.Test,
        Mnemonic.Inc => Op.Inc,
        Mnemonic.Dec => Op.Dec,
        Mnemonic.Neg => Op.Neg,
        Mnemonic.Not => Op.Not,
        Mnemonic.Shl or Mnemonic.Sal => Op.Shl,
        Mnemonic.Shr => Op.Shr,
        Mnemonic.Sar => Op.Sar,
        Mnemonic.Rol => Op.Rol,
        Mnemonic.Ror => Op.Ror,
        Mnemonic.Rcl => Op.Rcl,
        Mnemonic.Rcr => Op.Rcr,
        Mnemonic.Shld => Op.Shld,
        Mnemonic.Shrd => Op.Shrd,
        Mnemonic.Mul => Op.Mul,
        Mnemonic.Imul => instruction.OpCount == 1 ? Op.ImulOneOperand : Op.Imul,
        Mnemonic.Div => Op.Div,
        Mnemonic.Idiv => Op.Idiv,
        Mnemonic.Bt => Op.Bt,
        Mnemonic.Bts => Op.Bts,
        Mnemonic.Btr => Op.Btr,
        Mnemonic.Btc => Op.Btc,
        // CPUID does not advertise BMI1; the SDM says such processors execute F3 0F BC (TZCNT) as BSF.
        Mnemonic.Bsf or Mnemonic.Tzcnt => Op.Bsf,
        Mnemonic.Bsr => Op.Bsr,
        Mnemonic.Lzcnt => Op.Lzcnt,
        Mnemonic.Popcnt => Op.Popcnt,
        Mnemonic.Seto or Mnemonic.Setno or Mnemonic.Setb or Mnemonic.Setae or Mnemonic.Sete or Mnemonic.Setne
            or Mnemonic.Setbe or Mnemonic.Seta or Mnemonic.Sets or Mnemonic.Setns or Mnemonic.Setp or Mnemonic.Setnp
            or Mnemonic.Setl or Mnemonic.Setge or Mnemonic.Setle or Mnemonic.Setg => Op.Setcc,
        Mnemonic.Cmovo or Mnemonic.Cmovno or Mnemonic.Cmovb or Mnemonic.Cmovae or Mnemonic.Cmove or Mnemonic.Cmovne
            or Mnemonic.Cmovbe or Mnemonic.Cmova or Mnemonic.Cmovs or Mnemonic.Cmovns or Mnemonic.Cmovp or Mnemonic.Cmovnp
            or Mnemonic.Cmovl or Mnemonic.Cmovge or Mnemonic.Cmovle or Mnemonic.Cmovg => Op.Cmovcc,
        Mnemonic.Jrcxz or Mnemonic.Jecxz => Op.Jrcxz,
        Mnemonic.Jmp when instruction.Code is Code.Jmp_rel8_64 or Code.Jmp_rel32_64 => Op.Jmp,
        Mnemonic.Jmp when instruction.Code is Code.Jmp_rm64 => Op.JmpIndirect,
        Mnemonic.Call when instruction.Code is Code.Call_rel32_64 => Op.Call,
        Mnemonic.Call when instruction.Code is Code.Call_rm64 => Op.CallIndirect,
        Mnemonic.Ret when instruction.Code is Code.Retnq or Code.Retnq_imm16 => Op.Ret,
        Mnemonic.Push when instruction.Code is Code.Push_r64 or Code.Push_rm64 or Code.Pushq_imm8 or Code.Pushq_imm32 => Op.Push,
        Mnemonic.Pop when instruction.Code is Code.Pop_r64 or Code.Pop_rm64 => Op.Pop,
        Mnemonic.Leave when instruction.Code is Code.Leaveq => Op.Leave,
        Mnemonic.Enter when instruction.Code is Code.Enterq_imm16_imm8 => Op.Enter,
        Mnemonic.Pushfq => Op.Pushf,
        Mnemonic.Popfq => Op.Popf,
        Mnemonic.Lahf => Op.Lahf,
        Mnemonic.Sahf => Op.Sahf,
        Mnemonic.Cbw or Mnemonic.Cwde or Mnemonic.Cdqe => Op.SignExtendAccumulator,
        Mnemonic.Cwd or Mnemonic.Cdq or Mnemonic.Cqo => Op.SignExtendIntoRdx,
        Mnemonic.Clc => Op.Clc,
        Mnemonic.Stc => Op.Stc,
        Mnemonic.Cmc => Op.Cmc,
        Mnemonic.Cld => Op.Cld,
        Mnemonic.Std => Op.Std,
        Mnemonic.Movsb or Mnemonic.Movsw or Mnemonic.Movsq => Op.Movs,
        Mnemonic.Movsd when instruction.Code == Code.Movsd_m32_m32 => Op.Movs,
        Mnemonic.Cmpsb or Mnemonic.Cmpsw or Mnemonic.Cmpsq => Op.Cmps,
        Mnemonic.Cmpsd when instruction.Code == Code.Cmpsd_m32_m32 => Op.Cmps,
        Mnemonic.Stosb or Mnemonic.Stosw or Mnemonic.Stosd or Mnemonic.Stosq => Op.Stos,
        Mnemonic.Lodsb or Mnemonic.Lodsw or Mnemonic.Lodsd or Mnemonic.Lodsq => Op.Lods,
        Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq => Op.Scas,
        Mnemonic.Syscall => Op.Syscall,
        _ => Op.Invalid,
    };
}
