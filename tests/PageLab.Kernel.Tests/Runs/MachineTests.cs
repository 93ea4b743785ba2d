using System.Text;
using Iced.Intel;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Process;
using PageLab.Kernel.Tests.Loader;
using PageLab.Kernel.Tests.Syscalls;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Kernel.Tests.Runs;

/// <summary>End-to-end runs of tiny static binaries assembled with Iced: CPU, MMU, loader and kernel model together.</summary>
public class MachineTests
{
    const ulong Text = 0x40_1000;

    internal sealed class Run : IDisposable
    {
        public Run(Action<Assembler> program, long maxInstructions = 0, TextWriter? strace = null)
        {
            var assembler = new Assembler(64);
            program(assembler);
            using var stream = new MemoryStream();
            assembler.Assemble(new StreamCodeWriter(stream), Text);
            var segment = new byte[0x1000 + stream.Length];
            stream.ToArray().CopyTo(segment, 0x1000);
            var elf = new ElfBuilder { Entry = Text }
                .Segment(ElfSegment.PtLoad, ElfSegment.FlagRead | ElfSegment.FlagExecute, 0x40_0000, segment, (ulong)segment.Length)
                .Segment(ElfSegment.PtLoad, ElfSegment.FlagRead | ElfSegment.FlagWrite, 0x60_0000, new byte[16], 0x2000)
                .Build();
            Stdout = new CapturedStream("/dev/stdout");
            Machine = new Machine(new MachineSettings
            {
                MemoryBytes = 64UL << 20,
                Tlb = TlbConfig.Tiny,
                MaxInstructions = maxInstructions,
                Process = new ProcessSettings { Strace = strace, StandardStreams = [new CapturedStream("/dev/stdin"), Stdout, new CapturedStream("/dev/stderr")] },
            }, "/test/prog");
            Machine.Load(new InMemoryFile("/test/prog", elf), new ExecParameters
            {
                ExecFileName = "/test/prog",
                Arguments = ["/test/prog"],
                Environment = [],
                RandomBytes = new byte[16],
            });
            Outcome = Machine.Run();
        }

        public Machine Machine { get; }
        public CapturedStream Stdout { get; }
        public RunOutcome Outcome { get; }
        public void Dispose() => Machine.Dispose();
    }

    static void Exit(Assembler a, int status)
    {
        a.mov(eax, 231);
        a.mov(edi, status);
        a.syscall();
    }

    [Fact]
    public void WriteSyscall_ReachesStdout_AndExitGroupStatusIsTheExitCode()
    {
        using var run = new Run(a =>
        {
            var message = a.CreateLabel();
            a.mov(eax, 1);
            a.mov(edi, 1);
            a.lea(rsi, __[message]);
            a.mov(edx, 6);
            a.syscall();
            Exit(a, 7);
            a.Label(ref message);
            a.db(Encoding.ASCII.GetBytes("hello\n"));
        });
        Assert.Equal("hello\n", run.Stdout.Text);
        Assert.Equal(new RunOutcome(7, null, null), run.Outcome);
        Assert.Equal(2, run.Machine.Process.SyscallCount);
    }

    [Fact]
    public void NullPointerWrite_KillsWithSigsegv_AndReportNamesAddressAccessInstructionAndWalk()
    {
        using var run = new Run(a =>
        {
            a.xor(eax, eax);
            a.mov(__qword_ptr[rax], 1);
            Exit(a, 0);
        });
        Assert.Equal(128 + 11, run.Outcome.ExitStatus);
        Assert.Equal(11, run.Outcome.Signal);
        string report = run.Outcome.Report!;
        Assert.Contains("SIGSEGV", report, StringComparison.Ordinal);
        Assert.Contains("write to 0x0 (SEGV_MAPERR", report, StringComparison.Ordinal);
        Assert.Contains("at rip 0x401002: movq $1,(%rax)", report, StringComparison.Ordinal);
        Assert.Contains("PML4E[0x", report, StringComparison.Ordinal);
    }

    [Fact]
    public void FatalFault_IsTracedAsStraceShowsIt()
    {
        var strace = new StringWriter();
        using var run = new Run(a =>
        {
            a.mov(eax, 16);
            a.mov(__dword_ptr[rax], 1);
        }, strace: strace);
        Assert.EndsWith("--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---\n+++ killed by SIGSEGV +++\n", strace.ToString(), StringComparison.Ordinal);
        Assert.StartsWith("execve(\"/test/prog\", [\"/test/prog\"], 0x", strace.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void WriteToReadOnlyText_IsSegvAccessError()
    {
        using var run = new Run(a =>
        {
            a.mov(eax, (int)Text);
            a.mov(__byte_ptr[rax], 0x90);
            Exit(a, 0);
        });
        Assert.Equal(139, run.Outcome.ExitStatus);
        Assert.Contains("SEGV_ACCERR", run.Outcome.Report!, StringComparison.Ordinal);
        Assert.Contains("PTE[0x", run.Outcome.Report!, StringComparison.Ordinal);
    }

    [Fact]
    public void UndefinedInstruction_KillsWithSigill_NamingIt()
    {
        using var run = new Run(a => a.ud2());
        Assert.Equal(128 + 4, run.Outcome.ExitStatus);
        Assert.Contains("ud2", run.Outcome.Report!, StringComparison.Ordinal);
    }

    [Fact]
    public void EndlessLoop_StopsAtInstructionLimit_WithSigxcpu()
    {
        using var run = new Run(a =>
        {
            var top = a.CreateLabel();
            a.Label(ref top);
            a.jmp(top);
        }, maxInstructions: 10_000);
        Assert.Equal(128 + 24, run.Outcome.ExitStatus);
        Assert.Equal(10_000, run.Machine.Cpu.InstructionsRetired);
        Assert.Contains("instruction limit", run.Outcome.Report!, StringComparison.Ordinal);
    }

    [Fact]
    public void BssAndStackGrowth_AreDemandPaged()
    {
        using var run = new Run(a =>
        {
            a.mov(eax, 0x60_1ff8);
            a.mov(__qword_ptr[rax], 5);
            a.sub(rsp, 0x10_0000);
            a.mov(__qword_ptr[rsp], 6);
            a.mov(rdi, __qword_ptr[rsp]);
            a.add(rdi, __qword_ptr[rax]);
            a.mov(eax, 231);
            a.syscall();
        });
        Assert.Equal(11, run.Outcome.ExitStatus);
        Assert.True(run.Machine.Process.FaultCount(FaultOutcome.AnonymousZeroFilled) >= 2);
        Assert.True(run.Machine.Process.Space.Vmas[^1].Start < AddressSpace.StackTop - 0x10_0000);
    }

    [Fact]
    public void ArchPrctlSetFs_MakesFsRelativeLoadsUseTheBase()
    {
        using var run = new Run(a =>
        {
            a.mov(eax, 0x60_0000);
            a.mov(__qword_ptr[rax + 8], 42);
            a.mov(eax, 158);
            a.mov(edi, 0x1002);
            a.mov(esi, 0x60_0000);
            a.syscall();
            a.mov(rdi, __qword_ptr.fs[8]);
            a.mov(eax, 231);
            a.syscall();
        });
        Assert.Equal(42, run.Outcome.ExitStatus);
        Assert.Equal(0x60_0000UL, run.Machine.Cpu.FsBase);
    }

    [Fact]
    public void AbortBySignalToSelf_EndsWith128PlusSignal()
    {
        using var run = new Run(a =>
        {
            a.mov(eax, 234);
            a.mov(edi, LinuxProcess.ProcessId);
            a.mov(esi, LinuxProcess.ProcessId);
            a.mov(edx, 6);
            a.syscall();
            Exit(a, 0);
        });
        Assert.Equal(134, run.Outcome.ExitStatus);
        Assert.Equal(6, run.Outcome.Signal);
    }

    [Fact]
    public void SameProgramTwice_GivesIdenticalCountersAndClock()
    {
        static (long, ulong, long) Measure()
        {
            using var run = new Run(a =>
            {
                a.mov(ecx, 1000);
                var loop = a.CreateLabel();
                a.Label(ref loop);
                a.mov(__qword_ptr[rsp - 8], rcx);
                a.dec(ecx);
                a.jnz(loop);
                Exit(a, 0);
            });
            return (run.Machine.Cpu.InstructionsRetired, run.Machine.Clock.Nanoseconds, run.Machine.Mmu.Counters.Levels[0].Lookups);
        }
        Assert.Equal(Measure(), Measure());
    }
}
