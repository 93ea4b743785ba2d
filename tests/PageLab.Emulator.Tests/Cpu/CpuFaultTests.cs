using Iced.Intel;
using PageLab.Emulator.Cpu;
using PageLab.Emulator.Paging;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Emulator.Tests.Cpu;

public sealed class CpuFaultTests : IDisposable
{
    const ulong PageSize = PagingConstants.PageSize;
    readonly TestMachine machine = new();

    public void Dispose() => machine.Dispose();

    [Fact]
    public void PageFault_ResolvedByHost_RestartsTheInstructionWithNoStateChanged()
    {
        ulong missing = TestMachine.DataAddress + 0x20_000;
        machine.Memory.TryWrite64(missing, 77);
        machine.Map(missing, 1, present: false);
        machine.OnFaultHandler = fault =>
        {
            machine.SetPte(fault.LinearAddress & ~PagingConstants.PageMask, present: true);
            return true;
        };
        machine.Load(a =>
        {
            a.mov(rdi, missing);
            a.mov(eax, 5);
            a.add(rax, __qword_ptr[rdi]);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.StopRequested, machine.Run());
        var fault = Assert.Single(machine.Faults);
        Assert.Equal(TranslationFaultKind.PageFault, fault.Kind);
        Assert.Equal(missing, fault.LinearAddress);
        Assert.Equal(PageFaultErrorCode.User, fault.ErrorCode); // not present, read, user
        Assert.Equal(82UL, machine.Cpu.Gpr(0));
        Assert.Equal(4, machine.Cpu.InstructionsRetired); // the faulting add retired once, after the restart
    }

    [Fact]
    public void PageFault_OnReadModifyWrite_LeavesFlagsAndRegistersUntouched()
    {
        ulong readOnly = TestMachine.DataAddress + 0x21_000;
        machine.Map(readOnly, 1, writable: false);
        machine.Load(a =>
        {
            a.mov(rdi, readOnly);
            a.xor(eax, eax);   // ZF = 1
            a.mov(ecx, 7);
            a.add(__qword_ptr[rdi], rcx);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.UnhandledFault, machine.Run());
        ulong addAddress = TestMachine.CodeAddress + 10 + 2 + 5;
        Assert.Equal(addAddress, machine.Cpu.Rip);
        Assert.Equal(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User, machine.Cpu.LastFault.ErrorCode);
        Assert.True((machine.Cpu.Rflags & CpuFlags.Zero) != 0);
        Assert.Equal(0UL, machine.ReadData(readOnly, 8));
        Assert.Equal("add %rcx,(%rdi)", machine.Cpu.FormatInstruction(addAddress)); // AT&T syntax, as gdb and objdump print it
    }

    [Fact]
    public void FormatInstruction_OfAPageWhoseFrameIsBeyondMemory_ReportsAMachineCheck()
    {
        const ulong page = 0x7000_0000;
        machine.MapFrame(page, 100UL << 20); // the machine has 16 MiB
        string text = machine.Cpu.FormatInstruction(page);
        Assert.StartsWith("(unreadable:", text);
        Assert.Contains("machine check", text);
    }

    [Theory]
    [InlineData(0x7000_0000UL, TranslationFaultKind.PageFault)]             // nothing mapped there
    [InlineData(0x8000_0000_0000_0000UL, TranslationFaultKind.GeneralProtection)] // non-canonical
    public void UnhandledFault_StopsAtTheInstructionWithTheFault(ulong address, TranslationFaultKind kind)
    {
        machine.Load(a =>
        {
            a.mov(rax, address);
            a.mov(rbx, __qword_ptr[rax]);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.UnhandledFault, machine.Run());
        Assert.Equal(kind, machine.Cpu.LastFault.Kind);
        Assert.Equal(address, machine.Cpu.LastFault.LinearAddress);
        Assert.Equal(TestMachine.CodeAddress + 10, machine.Cpu.Rip);
    }

    [Fact]
    public void SelfModifyingCode_RunsTheNewBytes()
    {
        // The loop body "mov eax, imm32" is executed (and cached), then its immediate is overwritten
        // by the program itself; the second pass must see the new value.
        machine.Load(a =>
        {
            var body = a.CreateLabel();
            var patch = a.CreateLabel();
            a.xor(ebx, ebx);
            a.Label(ref body);
            a.mov(eax, 1);          // B8 imm32: the immediate is at body + 1
            a.add(ebx, eax);
            a.cmp(eax, 2);
            a.je(patch);            // after the patched pass, stop
            a.lea(rdi, __[body]);
            a.mov(__dword_ptr[rdi + 1], 2);
            a.jmp(body);
            a.Label(ref patch);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.StopRequested, machine.Run());
        Assert.Equal(3UL, machine.Cpu.Gpr(3)); // 1 from the original instruction + 2 from the patched one
    }

    [Fact]
    public void KernelWriteToCodeFrame_DropsTheDecodedPage()
    {
        machine.Load(a =>
        {
            a.mov(eax, 1);
            a.syscall();
            a.syscall();
        });
        // After the first SYSCALL, the "kernel" rewrites the immediate directly in physical memory and says so.
        machine.OnSyscallHandler = cpu =>
        {
            if (machine.Syscalls == 1)
            {
                machine.Memory.TryWrite(TestMachine.CodeAddress + 1, 4, 9);
                machine.Mmu.NotifyFrameWritten(TestMachine.CodeAddress >> PagingConstants.PageBits);
                cpu.Rip = TestMachine.CodeAddress;
            }
            else
            {
                cpu.RequestStop();
            }
        };
        machine.Run();
        Assert.Equal(9UL, machine.Cpu.Gpr(0));
    }

    [Fact]
    public void InstructionCrossingPageBoundary_Executes()
    {
        // mov rax, imm64 (10 bytes) starting 3 bytes before a page boundary.
        ulong start = TestMachine.CodeAddress + PageSize - 3;
        machine.Load(a =>
        {
            a.mov(rax, 0x1122_3344_5566_7788UL);
            a.syscall();
        }, start);
        Assert.Equal(CpuStopReason.StopRequested, machine.Run());
        Assert.Equal(0x1122_3344_5566_7788UL, machine.Cpu.Gpr(0));
    }

    [Fact]
    public void InstructionCrossingIntoMissingPage_FaultsOnTheSecondPageAndRestarts()
    {
        ulong start = TestMachine.CodeAddress + PageSize - 3;
        ulong secondPage = TestMachine.CodeAddress + PageSize;
        machine.Load(a =>
        {
            a.mov(rax, 0x1122_3344_5566_7788UL);
            a.syscall();
        }, start);
        machine.SetPte(secondPage, present: false);
        machine.OnFaultHandler = fault =>
        {
            machine.SetPte(fault.LinearAddress & ~PagingConstants.PageMask, present: true);
            return true;
        };
        Assert.Equal(CpuStopReason.StopRequested, machine.Run());
        var fault = Assert.Single(machine.Faults);
        Assert.Equal(secondPage, fault.LinearAddress);
        Assert.True((fault.ErrorCode & PageFaultErrorCode.Present) == 0);
        Assert.Equal(0x1122_3344_5566_7788UL, machine.Cpu.Gpr(0));
    }

    [Fact]
    public void FetchFromMissingPage_ReportsAnInstructionFetchFault()
    {
        machine.Load(a =>
        {
            a.mov(rax, 0x50_0000UL);
            a.jmp(rax);
        });
        Assert.Equal(CpuStopReason.UnhandledFault, machine.Run());
        Assert.Equal(0x50_0000UL, machine.Cpu.LastFault.LinearAddress);
        Assert.Equal(0x50_0000UL, machine.Cpu.Rip);
    }

    [Fact]
    public void DataAccessCrossingIntoMissingPage_FaultsWithoutWritingTheFirstPage()
    {
        ulong boundary = TestMachine.DataAddress + 0x22_000;
        machine.Map(boundary - PageSize, 1);
        machine.Map(boundary, 1, present: false);
        machine.Load(a =>
        {
            a.mov(rdi, boundary - 4);
            a.mov(rax, ulong.MaxValue);
            a.mov(__qword_ptr[rdi], rax);
            a.syscall();
        });
        Assert.Equal(CpuStopReason.UnhandledFault, machine.Run());
        Assert.Equal(boundary, machine.Cpu.LastFault.LinearAddress);
        Assert.Equal(0UL, machine.ReadData(boundary - 4, 4));
    }

    [Fact]
    public void SameSpaceFetches_CountAsInstructionTlbHits()
    {
        machine.Load(a =>
        {
            for (int i = 0; i < 99; i++) a.nop();
            a.syscall();
        });
        var instructionLevel = machine.Mmu.Counters.Levels[0];
        long before = instructionLevel.Lookups;
        machine.Run();
        // One lookup per instruction fetched: 99 NOPs and the SYSCALL, all on one page.
        Assert.Equal(100, instructionLevel.Lookups - before);
        Assert.Equal(99, instructionLevel.Hits);
    }
}
