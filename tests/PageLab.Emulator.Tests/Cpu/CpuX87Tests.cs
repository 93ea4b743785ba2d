using Iced.Intel;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Paging;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

public sealed class CpuX87Tests : IDisposable
{
    readonly TestMachine machine = new();

    public void Dispose() => machine.Dispose();

    [Fact]
    public void LongDoubleDivision_IsRoundedToExtendedPrecision()
    {
        machine.Load(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.mov(__dword_ptr[rdi], 3);
            a.fld1();
            a.fild(__dword_ptr[rdi]);
            a.fdivp(st1, st0);               // 1 / 3
            a.fstp(__tword_ptr[rdi + 16]);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.StopRequested, machine.Run());
        // 1/3 = 0x3FFD:AAAAAAAAAAAAAAAB (64-bit significand, rounded to nearest).
        Assert.Equal(0xAAAA_AAAA_AAAA_AAABUL, machine.ReadData(TestMachine.DataAddress + 16, 8));
        Assert.Equal(0x3FFDUL, machine.ReadData(TestMachine.DataAddress + 24, 2));
    }

    [Fact]
    public void Fucomip_SetsCarryWhenLess_AndPops()
    {
        machine.Load(a =>
        {
            a.fld1();                          // st1 = 1
            a.fldz();                          // st0 = 0
            a.fucomip(st0, st1);               // 0 < 1: CF = 1, ZF = 0
            a.setb(bl);
            a.fstp(st0);
            a.fnstsw(ax);                      // TOP back to 0 after both pops
            a.syscall();
        });
        machine.Run();
        Assert.Equal(1UL, machine.Cpu.Gpr(3) & 0xFF);
        Assert.Equal(0UL, machine.Cpu.Gpr(0) & 0x3800);
    }

    [Fact]
    public void Fistp_UsesTheGuestRoundingControl()
    {
        machine.Load(a =>
        {
            a.mov(rdi, TestMachine.DataAddress);
            a.mov(rax, BitConverter.DoubleToUInt64Bits(2.5));
            a.mov(__qword_ptr[rdi], rax);
            a.fld(__qword_ptr[rdi]);
            a.fistp(__dword_ptr[rdi + 8]);     // round to nearest even: 2
            a.fld(__qword_ptr[rdi]);
            a.fnstcw(__word_ptr[rdi + 16]);
            a.mov(__word_ptr[rdi + 18], 0x0F7F); // round toward zero
            a.fldcw(__word_ptr[rdi + 18]);
            a.fchs();
            a.fistp(__dword_ptr[rdi + 12]);    // -2.5 truncated: -2
            a.fldcw(__word_ptr[rdi + 16]);
            a.syscall();
        });
        machine.Run();
        Assert.Equal(2UL, machine.ReadData(TestMachine.DataAddress + 8, 4));
        Assert.Equal(0xFFFF_FFFEUL, machine.ReadData(TestMachine.DataAddress + 12, 4));
        Assert.Equal(PageLab.Emulator.Cpu.Cpu.DefaultX87ControlWord, machine.Cpu.X87ControlWord);
    }

    [Fact]
    public void StoreToReadOnlyPage_FaultsWithoutPoppingTheStack()
    {
        ulong readOnly = TestMachine.DataAddress + 0x21_000;
        machine.Map(readOnly, 1, writable: false);
        machine.Load(a =>
        {
            a.mov(rdi, readOnly);
            a.fld1();
            a.fstp(__qword_ptr[rdi]);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.UnhandledFault, machine.Run());
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User, machine.Cpu.LastFault.ErrorCode);
        Assert.Equal(7, (machine.Cpu.X87StatusWord >> 11) & 7); // TOP still 7: FLD1 pushed, FSTP did not pop
    }
}
