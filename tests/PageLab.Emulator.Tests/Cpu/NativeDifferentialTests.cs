using System.Runtime.Intrinsics;
using Iced.Intel;
using PageLab.Emulator.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

/// <summary>
/// The interpreter against the host CPU: the same instruction, from the same random registers and
/// flags, run natively and under PageLab; registers, defined flags and memory must agree. Flags the
/// SDM leaves undefined for an instruction are masked (they differ between Intel and AMD parts).
/// </summary>
public sealed unsafe class NativeDifferentialTests : IDisposable
{
    const ulong Cf = CpuFlags.Carry, Pf = CpuFlags.Parity, Af = CpuFlags.Adjust, Zf = CpuFlags.Zero, Sf = CpuFlags.Sign, Of = CpuFlags.Overflow;
    /// <summary>R15 addresses the memory buffer in memory forms; RSP is the stack.</summary>
    static readonly int[] UsableRegisters = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    const int BufferSize = 256;

    readonly TestMachine machine = new();
    readonly NativeRunner native = new();
    readonly byte* nativeBuffer = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(BufferSize);

    public void Dispose()
    {
        native.Dispose();
        machine.Dispose();
        System.Runtime.InteropServices.NativeMemory.Free(nativeBuffer);
    }

    /// <summary>One instruction to compare, and the flags the SDM leaves undefined after it.</summary>
    sealed record Case(Instruction Instruction, ulong UndefinedFlags);

    static Register Gpr(int index, int size) => size switch
    {
        8 => Register.RAX + index,
        4 => Register.EAX + index,
        2 => Register.AX + index,
        _ => index < 4 ? Register.AL + index : index < 8 ? Register.SPL + (index - 4) : Register.R8L + (index - 8),
    };

    static Code CodeOf(string name) => Enum.Parse<Code>(name);

    static readonly string[] Binary = ["Add", "Or", "Adc", "Sbb", "And", "Sub", "Xor", "Cmp", "Test"];
    static readonly string[] Unary = ["Inc", "Dec", "Neg", "Not"];
    static readonly string[] Shifts = ["Shl", "Shr", "Sar", "Rol", "Ror", "Rcl", "Rcr"];
    static readonly string[] Conditions = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];
    static readonly int[] Sizes = [1, 2, 4, 8];
    static readonly int[] ShiftCounts = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63];

    static Case RandomCase(Random random)
    {
        int size = Sizes[random.Next(Sizes.Length)];
        int bits = size * 8;
        Register Reg(int s) => Gpr(UsableRegisters[random.Next(UsableRegisters.Length)], s);
        var memory = new MemoryOperand(Register.R15, random.Next(0, BufferSize - 16));
        int family = random.Next(16);
        switch (family)
        {
            case 0:
                {
                    string op = Binary[random.Next(Binary.Length)];
                    ulong undefined = op is "And" or "Or" or "Xor" or "Test" ? Af : 0;
                    return random.Next(3) switch
                    {
                        0 => new(Instruction.Create(CodeOf($"{op}_rm{bits}_r{bits}"), Reg(size), Reg(size)), undefined),
                        1 => new(Instruction.Create(CodeOf($"{op}_rm{bits}_r{bits}"), memory, Reg(size)), undefined),
                        _ => new(Instruction.Create(CodeOf($"{op}_rm{bits}_imm{Math.Min(bits, 32)}"), Reg(size),
                            size == 1 ? random.Next(-128, 128) : size == 2 ? random.Next(-32768, 32768) : random.Next()), undefined),
                    };
                }
            case 1:
                return new(Instruction.Create(CodeOf($"{Unary[random.Next(Unary.Length)]}_rm{bits}"), Reg(size)), 0);
            case 2:
                {
                    string op = Shifts[random.Next(Shifts.Length)];
                    int count = ShiftCounts[random.Next(ShiftCounts.Length)];
                    int masked = count & (size == 8 ? 63 : 31);
                    ulong undefined = masked == 0 ? 0 : (masked == 1 ? 0 : Of) | (op is "Shl" or "Shr" or "Sar" ? Af : 0);
                    if (op is "Shl" or "Shr" && masked >= bits) undefined |= Cf;
                    if (op is "Rcl" or "Rcr" && size <= 2 && masked > bits) undefined |= Of; // counts reduced modulo 9 or 17
                    return new(Instruction.Create(CodeOf($"{op}_rm{bits}_imm8"), Reg(size), count), undefined);
                }
            case 3:
                {
                    int wide = random.Next(2) == 0 ? 4 : 8;
                    string op = random.Next(2) == 0 ? "Shld" : "Shrd";
                    int count = ShiftCounts[random.Next(ShiftCounts.Length)];
                    int masked = count & (wide == 8 ? 63 : 31);
                    ulong undefined = masked == 0 ? 0 : Af | (masked == 1 ? 0 : Of);
                    return new(Instruction.Create(CodeOf($"{op}_rm{wide * 8}_r{wide * 8}_imm8"), Reg(wide), Reg(wide), count), undefined);
                }
            case 4:
                {
                    int wide = Sizes[1 + random.Next(3)];
                    const ulong mulUndefined = Sf | Zf | Af | Pf;
                    return random.Next(4) switch
                    {
                        0 => new(Instruction.Create(CodeOf($"Imul_r{wide * 8}_rm{wide * 8}"), Gpr(UsableRegisters[random.Next(UsableRegisters.Length)], wide), Reg(wide)), mulUndefined),
                        1 => new(Instruction.Create(CodeOf($"Imul_r{wide * 8}_rm{wide * 8}_imm8"), Reg(wide), Reg(wide), random.Next(-128, 128)), mulUndefined),
                        2 => new(Instruction.Create(CodeOf($"Mul_rm{bits}"), Reg(size)), mulUndefined),
                        _ => new(Instruction.Create(CodeOf($"Imul_rm{bits}"), Reg(size)), mulUndefined),
                    };
                }
            case 5:
                {
                    int wide = Sizes[1 + random.Next(3)];
                    string op = new[] { "Bt", "Bts", "Btr", "Btc" }[random.Next(4)];
                    return random.Next(2) == 0
                        ? new(Instruction.Create(CodeOf($"{op}_rm{wide * 8}_r{wide * 8}"), Reg(wide), Reg(wide)), Of | Sf | Af | Pf)
                        : new(Instruction.Create(CodeOf($"{op}_rm{wide * 8}_imm8"), Reg(wide), random.Next(0, 256)), Of | Sf | Af | Pf);
                }
            case 6:
                {
                    int wide = Sizes[1 + random.Next(3)];
                    return random.Next(4) switch
                    {
                        0 => new(Instruction.Create(CodeOf($"Bsf_r{wide * 8}_rm{wide * 8}"), Reg(wide), Reg(wide)), Cf | Of | Sf | Af | Pf),
                        1 => new(Instruction.Create(CodeOf($"Bsr_r{wide * 8}_rm{wide * 8}"), Reg(wide), Reg(wide)), Cf | Of | Sf | Af | Pf),
                        2 => new(Instruction.Create(CodeOf($"Lzcnt_r{wide * 8}_rm{wide * 8}"), Reg(wide), Reg(wide)), Of | Sf | Af | Pf),
                        _ => new(Instruction.Create(CodeOf($"Popcnt_r{wide * 8}_rm{wide * 8}"), Reg(wide), Reg(wide)), 0),
                    };
                }
            case 7:
                {
                    int wide = Sizes[1 + random.Next(3)];
                    string condition = Conditions[random.Next(Conditions.Length)];
                    return random.Next(2) == 0
                        ? new(Instruction.Create(CodeOf($"Cmov{condition}_r{wide * 8}_rm{wide * 8}"), Reg(wide), Reg(wide)), 0)
                        : new(Instruction.Create(CodeOf($"Set{condition}_rm8"), Reg(1)), 0);
                }
            case 8:
                return random.Next(6) switch
                {
                    0 => new(Instruction.Create(Code.Bswap_r64, Reg(8)), 0),
                    1 => new(Instruction.Create(Code.Bswap_r32, Reg(4)), 0),
                    2 => new(Instruction.Create(Code.Movzx_r64_rm8, Reg(8), Reg(1)), 0),
                    3 => new(Instruction.Create(Code.Movsx_r64_rm8, Reg(8), Reg(1)), 0),
                    4 => new(Instruction.Create(Code.Movsx_r32_rm16, Reg(4), Reg(2)), 0),
                    _ => new(Instruction.Create(Code.Movsxd_r64_rm32, Reg(8), Reg(4)), 0),
                };
            case 9:
                {
                    string op = new[] { "Xadd", "Xchg", "Cmpxchg" }[random.Next(3)];
                    return random.Next(2) == 0
                        ? new(Instruction.Create(CodeOf($"{op}_rm{bits}_r{bits}"), Reg(size), Reg(size)), 0)
                        : new(Instruction.Create(CodeOf($"{op}_rm{bits}_r{bits}"), memory, Reg(size)), 0);
                }
            case 10:
                if (random.Next(4) == 0) return new(Instruction.Create(Code.Movzx_r32_rm16, Reg(4), Reg(2)), 0);
                return new(Instruction.Create(new[] { Code.Cbw, Code.Cwde, Code.Cdqe, Code.Cwd, Code.Cdq, Code.Cqo, Code.Lahf, Code.Sahf, Code.Clc, Code.Stc, Code.Cmc }[random.Next(11)]), 0);
            case 11:
                {
                    // LEA with every addressing form.
                    var index = Gpr(UsableRegisters[random.Next(UsableRegisters.Length)], 8);
                    var address = new MemoryOperand(Reg(8), index, 1 << random.Next(4), random.Next(int.MinValue, int.MaxValue), 8);
                    int wide = Sizes[1 + random.Next(3)];
                    return new(Instruction.Create(CodeOf($"Lea_r{wide * 8}_m"), Reg(wide), address), 0);
                }
            case 12:
                {
                    string op = Binary[random.Next(Binary.Length - 1)];
                    ulong undefined = op is "And" or "Or" or "Xor" ? Af : 0;
                    return new(Instruction.Create(CodeOf($"{op}_r{bits}_rm{bits}"), Reg(size), memory), undefined);
                }
            case 13:
                return random.Next(3) switch
                {
                    0 => new(Instruction.Create(CodeOf($"Mov_rm{bits}_r{bits}"), memory, Reg(size)), 0),
                    1 => new(Instruction.Create(CodeOf($"Mov_r{bits}_rm{bits}"), Reg(size), memory), 0),
                    _ => new(Instruction.Create(CodeOf($"{Unary[random.Next(Unary.Length)]}_rm{bits}"), memory), 0),
                };
            case 14:
                {
                    string op = Shifts[random.Next(Shifts.Length)];
                    ulong undefined = Of | (op is "Shl" or "Shr" or "Sar" ? Af : 0);
                    if (op is "Shl" or "Shr") undefined |= Cf; // CL may reach the operand width
                    if (op is "Rcl" or "Rcr") undefined |= Cf;
                    return new(Instruction.Create(CodeOf($"{op}_rm{bits}_CL"), Reg(size), Register.CL), undefined);
                }
            default:
                {
                    string op = Binary[random.Next(Binary.Length - 1)]; // TEST has no sign-extended imm8 form
                    ulong undefined = op is "And" or "Or" or "Xor" ? Af : 0;
                    int imm = random.Next(-128, 128);
                    return new(Instruction.Create(CodeOf(size == 1 ? $"{op}_rm8_imm8" : $"{op}_rm{bits}_imm8"), memory, imm), undefined);
                }
        }
    }

    static ulong RandomValue(Random random) => random.Next(6) switch
    {
        0 => 0,
        1 => ulong.MaxValue,
        2 => (ulong)random.Next(0, 300),
        3 => 0x8000_0000_0000_0000UL >> (random.Next(4) * 8 + 32 * random.Next(2)),
        _ => (ulong)random.NextInt64() ^ ((ulong)random.Next() << 33),
    };

    [Theory]
    [InlineData(20261125)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomInstructions_MatchTheHostCpu(int seed) => AssertRandomCasesMatchTheHost(seed, RandomCase, randomVectorRegisters: false);

    /// <summary>
    /// Runs 3000 seeded random cases natively and under PageLab, each from random registers (and XMM lanes when
    /// asked), random status flags and random memory; fails with the first ten mismatches.
    /// </summary>
    void AssertRandomCasesMatchTheHost(int seed, Func<Random, Case> nextCase, bool randomVectorRegisters)
    {
        var random = new Random(seed);
        var failures = new List<string>();
        for (int n = 0; n < 3000 && failures.Count < 10; n++)
        {
            var test = nextCase(random);
            var state = new NativeState();
            for (int i = 0; i < 16; i++) state.Values[i] = RandomValue(random);
            if (randomVectorRegisters)
                for (int i = 17; i < 17 + 2 * NativeState.XmmCount; i++) state.Values[i] = RandomLane(random);
            state.Values[NativeState.FlagsIndex] = ((ulong)random.Next() & CpuFlags.Status) | CpuFlags.InitialUser;
            var bytes = new byte[BufferSize];
            random.NextBytes(bytes);
            string failure = Compare(test, state, bytes);
            if (failure.Length > 0) failures.Add(failure);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    string Compare(Case test, NativeState initial, byte[] memory)
    {
        // Native run.
        var nativeState = initial;
        nativeState.Values[15] = (ulong)nativeBuffer;
        memory.CopyTo(new Span<byte>(nativeBuffer, BufferSize));
        native.Run(a => a.AddInstruction(test.Instruction), ref nativeState);

        // PageLab run of the same instruction.
        var cpu = machine.Cpu;
        machine.LoadBytes(Encode(test.Instruction));
        for (int i = 0; i < 16; i++)
        {
            if (i != 4) cpu.Gpr(i) = initial.Values[i];
        }
        cpu.Gpr(15) = TestMachine.DataAddress;
        cpu.Rflags = initial.Values[NativeState.FlagsIndex];
        for (int i = 0; i < NativeState.XmmCount; i++)
            cpu.Xmm(i) = Vector128.Create(initial.Values[17 + 2 * i], initial.Values[18 + 2 * i]).AsByte();
        machine.Memory.Write(TestMachine.DataAddress, memory);
        var stop = cpu.Run(1);

        string text = machine.Cpu.FormatInstruction(TestMachine.CodeAddress);
        if (stop != CpuStopReason.InstructionLimit) return $"{text}: stopped with {stop}";
        var problems = new List<string>();
        for (int i = 0; i < 15; i++)
        {
            if (i != 4 && cpu.Gpr(i) != nativeState.Values[i])
                problems.Add($"r{i}: host 0x{nativeState.Values[i]:x} pagelab 0x{cpu.Gpr(i):x}");
        }
        for (int i = 0; i < NativeState.XmmCount; i++)
        {
            var host = Vector128.Create(nativeState.Values[17 + 2 * i], nativeState.Values[18 + 2 * i]);
            if (cpu.Xmm(i).AsUInt64() != host) problems.Add($"xmm{i}: host {host} pagelab {cpu.Xmm(i).AsUInt64()}");
        }
        ulong mask = CpuFlags.Status & ~test.UndefinedFlags;
        ulong hostFlags = nativeState.Values[NativeState.FlagsIndex] & mask, ourFlags = cpu.Rflags & mask;
        if (hostFlags != ourFlags) problems.Add($"flags: host 0x{hostFlags:x} pagelab 0x{ourFlags:x} (mask 0x{mask:x})");
        var guestBytes = new byte[BufferSize];
        machine.Memory.Read(TestMachine.DataAddress, guestBytes);
        if (!guestBytes.AsSpan().SequenceEqual(new ReadOnlySpan<byte>(nativeBuffer, BufferSize))) problems.Add("memory differs");
        if (problems.Count == 0) return "";
        var inputs = new System.Text.StringBuilder();
        for (int i = 0; i < 16; i++) inputs.Append($"r{i}=0x{initial.Values[i]:x} ");
        return $"{text}: {string.Join("; ", problems)} [in: {inputs} flags=0x{initial.Values[NativeState.FlagsIndex]:x}]";
    }

    static byte[] Encode(Instruction instruction)
    {
        var a = new Assembler(64);
        a.AddInstruction(instruction);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), TestMachine.CodeAddress);
        return stream.ToArray();
    }

    static readonly string[] VectorBinary =
    [
        "Paddb", "Paddw", "Paddd", "Paddq", "Psubb", "Psubw", "Psubd", "Psubq", "Paddsb", "Paddsw", "Paddusb", "Paddusw",
        "Psubsb", "Psubsw", "Psubusb", "Psubusw", "Pmullw", "Pmulhw", "Pmulhuw", "Pmuludq", "Pmaddwd", "Psadbw", "Pavgb", "Pavgw",
        "Pminub", "Pmaxub", "Pminsw", "Pmaxsw", "Pcmpeqb", "Pcmpeqw", "Pcmpeqd", "Pcmpgtb", "Pcmpgtw", "Pcmpgtd",
        "Punpcklbw", "Punpcklwd", "Punpckldq", "Punpcklqdq", "Punpckhbw", "Punpckhwd", "Punpckhdq", "Punpckhqdq",
        "Packsswb", "Packssdw", "Packuswb", "Pand", "Pandn", "Por", "Pxor", "Andps", "Andnpd", "Orpd", "Xorps",
        "Unpcklps", "Unpckhps", "Unpcklpd", "Unpckhpd", "Psllw", "Pslld", "Psllq", "Psrlw", "Psrld", "Psrlq", "Psraw", "Psrad",
        "Addps", "Addpd", "Subps", "Subpd", "Mulps", "Mulpd", "Divps", "Divpd", "Minps", "Minpd", "Maxps", "Maxpd", "Sqrtps", "Sqrtpd",
        "Cvtdq2ps", "Cvtps2dq", "Cvttps2dq", "Cvtpd2dq", "Cvttpd2dq", "Cvtpd2ps", "Movdqa", "Movdqu", "Movaps", "Movupd",
    ];
    static readonly string[] VectorScalar64 = ["Addsd", "Subsd", "Mulsd", "Divsd", "Sqrtsd", "Minsd", "Maxsd", "Cvtsd2ss", "Movsd", "Movq", "Cvtdq2pd", "Cvtps2pd"];
    static readonly string[] VectorScalar32 = ["Addss", "Subss", "Mulss", "Divss", "Sqrtss", "Minss", "Maxss", "Cvtss2sd", "Movss"];
    static readonly string[] VectorImmediate = ["Pshufd", "Pshuflw", "Pshufhw", "Shufps", "Shufpd", "Cmpps", "Cmppd"];

    static Case RandomVectorCase(Random random)
    {
        Register X() => Register.XMM0 + random.Next(NativeState.XmmCount);
        Register G(int size) => Gpr(UsableRegisters[random.Next(UsableRegisters.Length)], size);
        var memory = new MemoryOperand(Register.R15, random.Next(0, (BufferSize - 16) / 16) * 16);
        var memory8 = new MemoryOperand(Register.R15, random.Next(0, BufferSize - 8));
        int imm = random.Next(256);
        const ulong compareUndefined = 0;
        switch (random.Next(9))
        {
            case 0:
                {
                    string op = VectorBinary[random.Next(VectorBinary.Length)];
                    return random.Next(3) == 0
                        ? new(Instruction.Create(CodeOf($"{op}_xmm_xmmm128"), X(), memory), 0)
                        : new(Instruction.Create(CodeOf($"{op}_xmm_xmmm128"), X(), X()), 0);
                }
            case 1:
                {
                    string op = VectorScalar64[random.Next(VectorScalar64.Length)];
                    return random.Next(3) == 0
                        ? new(Instruction.Create(CodeOf($"{op}_xmm_xmmm64"), X(), memory8), 0)
                        : new(Instruction.Create(CodeOf($"{op}_xmm_xmmm64"), X(), X()), 0);
                }
            case 2:
                {
                    string op = VectorScalar32[random.Next(VectorScalar32.Length)];
                    return random.Next(3) == 0
                        ? new(Instruction.Create(CodeOf($"{op}_xmm_xmmm32"), X(), memory8), 0)
                        : new(Instruction.Create(CodeOf($"{op}_xmm_xmmm32"), X(), X()), 0);
                }
            case 3:
                {
                    string op = VectorImmediate[random.Next(VectorImmediate.Length)];
                    int predicate = op.StartsWith("Cmp", StringComparison.Ordinal) ? imm & 7 : imm;
                    return new(Instruction.Create(CodeOf($"{op}_xmm_xmmm128_imm8"), X(), X(), predicate), 0);
                }
            case 4:
                {
                    string op = new[] { "Psllw", "Pslld", "Psllq", "Psrlw", "Psrld", "Psrlq", "Psraw", "Psrad", "Pslldq", "Psrldq" }[random.Next(10)];
                    return new(Instruction.Create(CodeOf($"{op}_xmm_imm8"), X(), random.Next(0, 70)), 0);
                }
            case 5:
                return random.Next(8) switch
                {
                    0 => new(Instruction.Create(Code.Movd_xmm_rm32, X(), G(4)), 0),
                    1 => new(Instruction.Create(Code.Movq_xmm_rm64, X(), G(8)), 0),
                    2 => new(Instruction.Create(Code.Movd_rm32_xmm, G(4), X()), 0),
                    3 => new(Instruction.Create(Code.Movq_rm64_xmm, G(8), X()), 0),
                    4 => new(Instruction.Create(Code.Pmovmskb_r32_xmm, G(4), X()), 0),
                    5 => new(Instruction.Create(Code.Movmskpd_r32_xmm, G(4), X()), 0),
                    6 => new(Instruction.Create(Code.Pextrw_r32_xmm_imm8, G(4), X(), imm), 0),
                    _ => new(Instruction.Create(Code.Pinsrw_xmm_r32m16_imm8, X(), G(4), imm), 0),
                };
            case 6:
                return random.Next(8) switch
                {
                    0 => new(Instruction.Create(Code.Cvtsi2sd_xmm_rm64, X(), G(8)), 0),
                    1 => new(Instruction.Create(Code.Cvtsi2sd_xmm_rm32, X(), G(4)), 0),
                    2 => new(Instruction.Create(Code.Cvtsi2ss_xmm_rm32, X(), G(4)), 0),
                    3 => new(Instruction.Create(Code.Cvttsd2si_r64_xmmm64, G(8), X()), 0),
                    4 => new(Instruction.Create(Code.Cvttsd2si_r32_xmmm64, G(4), X()), 0),
                    5 => new(Instruction.Create(Code.Cvtsd2si_r64_xmmm64, G(8), X()), 0),
                    6 => new(Instruction.Create(Code.Cvttss2si_r32_xmmm32, G(4), X()), 0),
                    _ => new(Instruction.Create(Code.Cmpsd_xmm_xmmm64_imm8, X(), X(), imm & 7), 0),
                };
            case 7:
                return random.Next(6) switch
                {
                    0 => new(Instruction.Create(Code.Ucomisd_xmm_xmmm64, X(), X()), compareUndefined),
                    1 => new(Instruction.Create(Code.Comisd_xmm_xmmm64, X(), X()), compareUndefined),
                    2 => new(Instruction.Create(Code.Ucomiss_xmm_xmmm32, X(), X()), compareUndefined),
                    3 => new(Instruction.Create(Code.Movhlps_xmm_xmm, X(), X()), 0),
                    4 => new(Instruction.Create(Code.Movlhps_xmm_xmm, X(), X()), 0),
                    _ => new(Instruction.Create(Code.Cmpss_xmm_xmmm32_imm8, X(), X(), imm & 7), 0),
                };
            default:
                return random.Next(7) switch
                {
                    0 => new(Instruction.Create(Code.Movlpd_xmm_m64, X(), memory8), 0),
                    1 => new(Instruction.Create(Code.Movhpd_xmm_m64, X(), memory8), 0),
                    2 => new(Instruction.Create(Code.Movlpd_m64_xmm, memory8, X()), 0),
                    3 => new(Instruction.Create(Code.Movhpd_m64_xmm, memory8, X()), 0),
                    4 => new(Instruction.Create(Code.Movdqu_xmmm128_xmm, memory8, X()), 0),
                    5 => new(Instruction.Create(Code.Movsd_xmmm64_xmm, memory8, X()), 0),
                    _ => new(Instruction.Create(Code.Movq_xmmm64_xmm, memory8, X()), 0),
                };
        }
    }

    /// <summary>Lanes as integers, small numbers, and doubles and floats with NaNs, infinities, zeros and denormals among them.</summary>
    static ulong RandomLane(Random random) => random.Next(8) switch
    {
        0 => BitConverter.DoubleToUInt64Bits(random.NextDouble() * 1e6 - 5e5),
        1 => BitConverter.DoubleToUInt64Bits(new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0, double.Epsilon, 1e300, -2.5 }[random.Next(8)]),
        2 => ((ulong)BitConverter.SingleToUInt32Bits((float)(random.NextDouble() * 1000 - 500)) << 32) | BitConverter.SingleToUInt32Bits(float.NaN),
        3 => ((ulong)BitConverter.SingleToUInt32Bits(random.NextSingle()) << 32) | BitConverter.SingleToUInt32Bits(-random.NextSingle() * 1e5f),
        _ => RandomValue(random),
    };

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    public void RandomSseInstructions_MatchTheHostCpu(int seed) => AssertRandomCasesMatchTheHost(seed, RandomVectorCase, randomVectorRegisters: true);

    [Fact]
    public void DivisionEdgeCases_MatchTheHostCpu()
    {
        // Inputs chosen so the host never raises #DE (which would kill the test process).
        (ulong rdx, ulong rax, ulong divisor, Code code)[] cases =
        [
            (0, 100, 7, Code.Div_rm64),
            (6, ulong.MaxValue, 7, Code.Div_rm64),
            (0, 0xFEFF, 0xFF, Code.Div_rm8),
            (0x1234, 0x5678, 0x1235, Code.Div_rm16),
            (0, 0xFFFF_FFFF, 3, Code.Div_rm32),
            (ulong.MaxValue, unchecked((ulong)-100L), 7, Code.Idiv_rm64),
            (ulong.MaxValue, 0x8000_0000_0000_0000UL, 0xFFFF_FFFF_FFFF_FFFFUL ^ 1, Code.Idiv_rm64),
            (0, 0x7F, 0xFF, Code.Idiv_rm8),
            (0, 0xFFFF_FF85, 0xFFFF_FFF9, Code.Idiv_rm32),
            (0xFFFF, 0x8000, 2, Code.Idiv_rm16),
        ];
        var failures = new List<string>();
        foreach (var (rdx, rax, divisor, code) in cases)
        {
            var state = new NativeState();
            state.Values[0] = rax;
            state.Values[2] = rdx;
            state.Values[3] = divisor;
            state.Values[NativeState.FlagsIndex] = CpuFlags.InitialUser;
            var register = code switch
            {
                Code.Div_rm8 or Code.Idiv_rm8 => Register.BL,
                Code.Div_rm16 or Code.Idiv_rm16 => Register.BX,
                Code.Div_rm32 or Code.Idiv_rm32 => Register.EBX,
                _ => Register.RBX,
            };
            // All flags are undefined after DIV and IDIV.
            string failure = Compare(new Case(Instruction.Create(code, register), CpuFlags.Status), state, new byte[BufferSize]);
            if (failure.Length > 0) failures.Add(failure);
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
