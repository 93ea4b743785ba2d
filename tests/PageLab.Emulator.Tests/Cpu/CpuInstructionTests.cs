using System.Runtime.Intrinsics;
using Iced.Intel;
using PageLab.Emulator.Cpu;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

public sealed class CpuInstructionTests : IDisposable
{
    readonly TestMachine machine = new();

    public void Dispose() => machine.Dispose();

    ulong Rax => machine.Cpu.Gpr(0);
    ulong Rflags => machine.Cpu.Rflags;

    CpuStopReason RunCode(Action<Assembler> build)
    {
        machine.Load(a =>
        {
            build(a);
            a.syscall();
        });
        return machine.Run();
    }

    [Fact]
    public void Add_SetsCarryZeroParityAdjustAndKeepsRegistersOfOtherSizes()
    {
        Assert.Equal(CpuStopReason.StopRequested, RunCode(a =>
        {
            a.mov(rax, 0x1234_5678_9ABC_DEFFUL);
            a.add(al, 1);
        }));
        Assert.Equal(0x1234_5678_9ABC_DE00UL, Rax);
        ulong f = Rflags;
        Assert.True((f & CpuFlags.Carry) != 0);
        Assert.True((f & CpuFlags.Zero) != 0);
        Assert.True((f & CpuFlags.Parity) != 0);
        Assert.True((f & CpuFlags.Adjust) != 0);
        Assert.True((f & CpuFlags.Overflow) == 0);
    }

    [Fact]
    public void Write32_ZeroExtendsWhileNarrowerWritesMerge()
    {
        RunCode(a =>
        {
            a.mov(rax, ulong.MaxValue);
            a.mov(eax, 5);
            a.mov(rbx, ulong.MaxValue);
            a.mov(bh, 0x12);
            a.mov(rdx, ulong.MaxValue);
            a.mov(dx, 0x3456);
        });
        Assert.Equal(5UL, Rax);
        Assert.Equal(0xFFFF_FFFF_FFFF_12FFUL, machine.Cpu.Gpr(3)); // 8-bit writes merge (AH..BH included)
        Assert.Equal(0xFFFF_FFFF_FFFF_3456UL, machine.Cpu.Gpr(2)); // and so do 16-bit writes
    }

    [Fact]
    public void SignedAndUnsignedConditions_FollowCmp()
    {
        RunCode(a =>
        {
            a.mov(rax, unchecked((ulong)-5L));
            a.cmp(rax, 3);
            a.setl(bl);   // -5 < 3 signed
            a.setb(cl);   // 0xFFF..FB < 3 unsigned: false
            a.setg(dl);
            a.seta(sil);
            a.mov(r8, rcx); // keep CL before SYSCALL overwrites RCX
        });
        Assert.Equal(1UL, machine.Cpu.Gpr(3) & 0xFF);
        Assert.Equal(0UL, machine.Cpu.Gpr(8) & 0xFF);
        Assert.Equal(0UL, machine.Cpu.Gpr(2) & 0xFF);
        Assert.Equal(1UL, machine.Cpu.Gpr(6) & 0xFF);
    }

    [Fact]
    public void Inc_KeepsCarryFlag()
    {
        RunCode(a =>
        {
            a.stc();
            a.mov(eax, 0x7FFF_FFFF);
            a.inc(eax);
        });
        Assert.Equal(0x8000_0000UL, Rax);
        Assert.True((Rflags & CpuFlags.Carry) != 0);
        Assert.True((Rflags & CpuFlags.Overflow) != 0);
        Assert.True((Rflags & CpuFlags.Sign) != 0);
    }

    [Fact]
    public void Div_ByZero_StopsWithDivideErrorAtTheInstruction()
    {
        machine.Load(a =>
        {
            a.mov(eax, 10);
            a.xor(ecx, ecx);
            a.div(rcx);
            a.syscall();
        });
        ulong divAddress = TestMachine.CodeAddress + 5 + 2;
        Assert.Equal(CpuStopReason.DivideError, machine.Run());
        Assert.Equal(divAddress, machine.Cpu.Rip);
        Assert.Equal(10UL, Rax);
    }

    [Fact]
    public void Idiv_MostNegativeByMinusOne_IsDivideError()
    {
        Assert.Equal(CpuStopReason.DivideError, RunCode(a =>
        {
            a.mov(rax, 0x8000_0000_0000_0000UL);
            a.cqo();
            a.mov(rcx, ulong.MaxValue);
            a.idiv(rcx);
        }));
    }

    [Fact]
    public void Idiv_Of2To127NegatedByMinusOne_IsDivideError_NotAHostOverflow()
    {
        Assert.Equal(CpuStopReason.DivideError, RunCode(a =>
        {
            a.mov(rdx, 0x8000_0000_0000_0000UL); // rdx:rax = -2^127, the most negative 128-bit dividend
            a.xor(eax, eax);
            a.mov(rcx, ulong.MaxValue);
            a.idiv(rcx);
        }));
    }

    [Fact]
    public void Div_128By64_GivesQuotientAndRemainder()
    {
        RunCode(a =>
        {
            a.mov(rdx, 3);
            a.mov(rax, 7);
            a.mov(rcx, 0x10);
            a.div(rcx);
        });
        // (3 * 2^64 + 7) / 16 = 3 * 2^60 rest 7
        Assert.Equal(3UL << 60, Rax);
        Assert.Equal(7UL, machine.Cpu.Gpr(2));
    }

    [Fact]
    public void Mul64_WritesHighHalfAndSetsCarry()
    {
        RunCode(a =>
        {
            a.mov(rax, ulong.MaxValue);
            a.mov(rbx, 2);
            a.mul(rbx);
        });
        Assert.Equal(ulong.MaxValue - 1, Rax);
        Assert.Equal(1UL, machine.Cpu.Gpr(2));
        Assert.True((Rflags & (CpuFlags.Carry | CpuFlags.Overflow)) == (CpuFlags.Carry | CpuFlags.Overflow));
    }

    [Fact]
    public void ShiftByZero_ChangesNeitherOperandNorFlags()
    {
        RunCode(a =>
        {
            a.stc();
            a.mov(rax, 0x8000_0000_0000_0001UL);
            a.xor(ecx, ecx);
            a.stc();
            a.shl(rax, cl);
        });
        Assert.Equal(0x8000_0000_0000_0001UL, Rax);
        Assert.True((Rflags & CpuFlags.Carry) != 0);
    }

    [Fact]
    public void CallAndRet_UseTheStack()
    {
        RunCode(a =>
        {
            var function = a.CreateLabel();
            var done = a.CreateLabel();
            a.mov(eax, 1);
            a.call(function);
            a.add(eax, 100);
            a.jmp(done);
            a.Label(ref function);
            a.push(rbx);
            a.mov(ebx, 41);
            a.add(eax, ebx);
            a.pop(rbx);
            a.ret();
            a.Label(ref done);
        });
        Assert.Equal(142UL, Rax);
        Assert.Equal(TestMachine.StackTop - 0x100, machine.Cpu.Gpr(4));
    }

    [Fact]
    public void RepMovsbAndRepneScasb_CopyAndFindTheTerminator()
    {
        machine.Memory.Write(TestMachine.DataAddress, "hello, world\0"u8);
        RunCode(a =>
        {
            a.mov(rsi, TestMachine.DataAddress);
            a.mov(rdi, TestMachine.DataAddress + 0x100);
            a.mov(ecx, 13);
            a.rep.movsb();
            a.mov(rdi, TestMachine.DataAddress + 0x100);
            a.xor(eax, eax);
            a.mov(rcx, ulong.MaxValue);
            a.repne.scasb();
            a.not(rcx);
            a.dec(rcx);
            a.mov(rax, rcx);
        });
        Assert.Equal(12UL, Rax); // strlen
        Span<byte> copy = stackalloc byte[13];
        machine.Memory.Read(TestMachine.DataAddress + 0x100, copy);
        Assert.Equal("hello, world\0"u8.ToArray(), copy.ToArray());
    }

    [Fact]
    public void RepStosq_FillsAndAdvances()
    {
        RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.mov(rax, 0x0102_0304_0506_0708UL);
            a.mov(ecx, 4);
            a.rep.stosq();
            a.mov(rbx, rdi);
        });
        for (int i = 0; i < 4; i++) Assert.Equal(0x0102_0304_0506_0708UL, machine.ReadData(TestMachine.DataAddress + (ulong)i * 8, 8));
        Assert.Equal(TestMachine.DataAddress + 32, machine.Cpu.Gpr(3));
    }

    [Fact]
    public void LockCmpxchgAndXadd_FollowTheSdm()
    {
        RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.mov(__qword_ptr[rdi], 5);
            a.mov(eax, 5);
            a.mov(ebx, 9);
            a.@lock.cmpxchg(__qword_ptr[rdi], rbx); // equal: [rdi] = 9, ZF = 1
            a.setz(r8b);
            a.mov(eax, 1);
            a.@lock.cmpxchg(__qword_ptr[rdi], rbx); // not equal: rax = 9, ZF = 0
            a.setz(r9b);
            a.mov(edx, 3);
            a.@lock.xadd(__qword_ptr[rdi], rdx); // [rdi] = 12, rdx = 9
        });
        Assert.Equal(1UL, machine.Cpu.Gpr(8) & 0xFF);
        Assert.Equal(0UL, machine.Cpu.Gpr(9) & 0xFF);
        Assert.Equal(9UL, Rax);
        Assert.Equal(9UL, machine.Cpu.Gpr(2));
        Assert.Equal(12UL, machine.ReadData(TestMachine.DataAddress, 8));
    }

    [Fact]
    public void Cmpxchg16b_SwapsWhenBothHalvesMatch()
    {
        machine.Memory.TryWrite64(TestMachine.DataAddress, 1);
        machine.Memory.TryWrite64(TestMachine.DataAddress + 8, 2);
        RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.mov(eax, 1);
            a.mov(edx, 2);
            a.mov(ebx, 3);
            a.mov(ecx, 4);
            a.@lock.cmpxchg16b(__[rdi]);
            a.setz(r8b);
        });
        Assert.Equal(1UL, machine.Cpu.Gpr(8) & 0xFF);
        Assert.Equal(3UL, machine.ReadData(TestMachine.DataAddress, 8));
        Assert.Equal(4UL, machine.ReadData(TestMachine.DataAddress + 8, 8));
    }

    [Fact]
    public void FsOverride_AddsFsBase()
    {
        machine.Memory.TryWrite64(TestMachine.DataAddress + 0x28, 0xC0FFEE);
        machine.Cpu.FsBase = TestMachine.DataAddress;
        RunCode(a => a.mov(rax, __qword_ptr.fs[0x28]));
        Assert.Equal(0xC0FFEEUL, Rax);
    }

    [Fact]
    public void Cpuid_AdvertisesSse2AndNothingItCannotRun()
    {
        RunCode(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(r8, rcx);
            a.mov(r9, rdx);
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.mov(r10, rbx);
        });
        ulong leaf1Ecx = machine.Cpu.Gpr(8), leaf1Edx = machine.Cpu.Gpr(9), leaf7Ebx = machine.Cpu.Gpr(10);
        Assert.True((leaf1Edx & (1UL << 26)) != 0, "SSE2");
        Assert.True((leaf1Ecx & (1UL << 0)) == 0, "no SSE3");
        Assert.True((leaf1Ecx & (1UL << 9)) == 0, "no SSSE3");
        Assert.True((leaf1Ecx & (1UL << 27)) == 0, "no OSXSAVE");
        Assert.True((leaf1Ecx & (1UL << 28)) == 0, "no AVX");
        Assert.True((leaf1Ecx & (1UL << 23)) != 0, "POPCNT");
        Assert.Equal(0UL, leaf7Ebx); // no BMI, AVX2, ERMS
    }

    [Fact]
    public void Rdtsc_ReadsTheVirtualClock()
    {
        machine.Clock.Advance(1000);
        RunCode(a =>
        {
            a.rdtsc();
            a.shl(rdx, 32);
            a.or(rax, rdx);
        });
        // 1000 ns added, plus the first instruction's 0.333 ns, rounded down: 1000 ns = 3000 ticks.
        Assert.Equal(3000UL, Rax);
    }

    [Fact]
    public void Ud2_StopsWithInvalidInstructionAndFormatsIt()
    {
        machine.Load(a => a.ud2());
        Assert.Equal(CpuStopReason.InvalidInstruction, machine.Run());
        Assert.Equal(TestMachine.CodeAddress, machine.Cpu.Rip);
        Assert.Equal("ud2", machine.Cpu.FormatInstruction(machine.Cpu.Rip));
    }

    [Fact]
    public void AvxInstruction_IsInvalidBecauseCpuidDoesNotAdvertiseIt()
    {
        machine.Load(a => a.vaddps(ymm0, ymm1, ymm2));
        Assert.Equal(CpuStopReason.InvalidInstruction, machine.Run());
    }

    [Fact]
    public void Sse2_StrlenIdiomFindsTheZeroByte()
    {
        machine.Memory.Write(TestMachine.DataAddress, "0123456789\0abcdef"u8);
        RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.pxor(xmm0, xmm0);
            a.movdqu(xmm1, __xmmword_ptr[rdi]);
            a.pcmpeqb(xmm1, xmm0);
            a.pmovmskb(eax, xmm1);
            a.bsf(eax, eax);
        });
        Assert.Equal(10UL, Rax);
    }

    [Fact]
    public void ScalarDouble_ArithmeticAndConversions()
    {
        RunCode(a =>
        {
            a.mov(eax, 7);
            a.cvtsi2sd(xmm0, rax);
            a.mov(eax, 2);
            a.cvtsi2sd(xmm1, eax);
            a.divsd(xmm0, xmm1);        // 3.5
            a.mulsd(xmm0, xmm0);        // 12.25
            a.sqrtsd(xmm2, xmm0);       // 3.5
            a.cvttsd2si(rbx, xmm0);     // 12
            a.cvtsd2si(rdx, xmm2);      // 4 (round to nearest even of 3.5)
            a.ucomisd(xmm2, xmm1);      // 3.5 > 2: ZF=PF=CF=0
            a.seta(r8b);
        });
        Assert.Equal(12UL, machine.Cpu.Gpr(3));
        Assert.Equal(4UL, machine.Cpu.Gpr(2));
        Assert.Equal(1UL, machine.Cpu.Gpr(8) & 0xFF);
        Assert.Equal(3.5, machine.Cpu.Xmm(2).AsDouble().ToScalar());
    }

    [Fact]
    public void Ucomisd_WithNaN_SetsZfPfCf()
    {
        RunCode(a =>
        {
            a.mov(rax, BitConverter.DoubleToUInt64Bits(double.NaN));
            a.movq(xmm0, rax);
            a.ucomisd(xmm0, xmm0);
        });
        ulong status = Rflags & CpuFlags.Status;
        Assert.Equal(CpuFlags.Zero | CpuFlags.Parity | CpuFlags.Carry, status);
    }

    [Fact]
    public void Movdqa_Misaligned_IsGeneralProtection()
    {
        Assert.Equal(CpuStopReason.GeneralProtection, RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress + 8);
            a.movdqa(xmm0, __xmmword_ptr[rdi]);
        }));
    }

    [Fact]
    public void Fnstcw_ReportsRoundToNearest()
    {
        RunCode(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.fnstcw(__word_ptr[rdi]);
            a.stmxcsr(__dword_ptr[rdi + 4]);
        });
        Assert.Equal(0x037FUL, machine.ReadData(TestMachine.DataAddress, 2));
        Assert.Equal(0x1F80UL, machine.ReadData(TestMachine.DataAddress + 4, 4));
    }

    [Fact]
    public void InstructionLimit_StopsAfterExactlyThatMany()
    {
        machine.Load(a =>
        {
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.inc(rax);
            a.jmp(loop);
        });
        Assert.Equal(CpuStopReason.InstructionLimit, machine.Run(1001));
        Assert.Equal(501UL, Rax);
        Assert.Equal(1001, machine.Cpu.InstructionsRetired);
        Assert.Equal(1001UL, machine.Clock.Instructions);
    }
}
