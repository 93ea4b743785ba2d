using Iced.Intel;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Process;
using PageLab.Kernel.Syscalls;
using PageLab.Kernel.Tests.Syscalls;
using static Iced.Intel.AssemblerRegisters;

namespace PageLab.Kernel.Tests.Runs;

/// <summary>Several processes on one machine: fork, wait4 statuses, scheduling, pipes, assembled guests run end to end.</summary>
public class ProcessTests
{
    const ulong Data = 0x60_0000;
    const int Fork = 57, Wait4 = 61, Exit = 60, ExitGroup = 231, Getpid = 39, Getppid = 110, Read = 0, Write = 1, Close = 3, Pipe2 = 293;

    static void Syscall(Assembler a, int number)
    {
        a.mov(eax, number);
        a.syscall();
    }

    /// <summary>wait4(pid, Data + statusOffset, options, NULL), the result stored at Data + resultOffset.</summary>
    static void WaitFor(Assembler a, long pid, int statusOffset, int options, int resultOffset)
    {
        a.mov(rdi, pid);
        a.mov(rsi, Data + (ulong)statusOffset);
        a.mov(edx, options);
        a.xor(r10d, r10d);
        Syscall(a, Wait4);
        a.mov(__qword_ptr[Data + (ulong)resultOffset], rax);
    }

    static ulong Read64(MachineTests.Run run, ulong address)
    {
        Assert.True(run.Machine.Process.User.TryReadUInt64(address, out ulong value));
        return value;
    }

    [Fact]
    public void ForkedChild_WritesItsOwnCopy_AndWait4ReportsItsExitCode()
    {
        using var run = new MachineTests.Run(a =>
        {
            var parent = a.CreateLabel();
            var badParent = a.CreateLabel();
            a.mov(__byte_ptr[Data], (byte)'P');
            Syscall(a, Fork);
            a.test(rax, rax);
            a.jnz(parent);
            // Child: overwrite the byte, check getppid and getpid, exit with the byte it sees.
            a.mov(__byte_ptr[Data], (byte)'C');
            Syscall(a, Getppid);
            a.cmp(rax, LinuxProcess.ProcessId);
            a.jne(badParent);
            Syscall(a, Getpid);
            a.cmp(rax, LinuxProcess.ProcessId + 1);
            a.jne(badParent);
            a.movzx(edi, __byte_ptr[Data]);
            Syscall(a, Exit);
            a.Label(ref badParent);
            a.mov(edi, 1);
            Syscall(a, Exit);
            // Parent: reap the child, then ask again (ECHILD), and exit with the byte it sees.
            a.Label(ref parent);
            a.mov(__qword_ptr[Data + 0x20], rax);
            WaitFor(a, -1, 0x30, 0, 0x40);
            WaitFor(a, -1, 0x38, 0, 0x48);
            a.movzx(edi, __byte_ptr[Data]);
            Syscall(a, ExitGroup);
        });

        Assert.Equal(new RunOutcome('P', null, null), run.Outcome);
        Assert.Equal(4243UL, Read64(run, Data + 0x20));
        Assert.Equal(4243UL, Read64(run, Data + 0x40));
        Assert.Equal((ulong)('C' << 8), Read64(run, Data + 0x30) & 0xffff_ffff);
        Assert.Equal(-(long)Errno.ECHILD, (long)Read64(run, Data + 0x48));
        Assert.Single(run.Machine.Process.Table.Processes);
    }

    [Fact]
    public void Wait4_WithWnohangOnALiveChild_IsZero_ThenBlocksUntilTheChildIsKilled()
    {
        using var run = new MachineTests.Run(a =>
        {
            var parent = a.CreateLabel();
            Syscall(a, Fork);
            a.test(rax, rax);
            a.jnz(parent);
            a.mov(rax, __qword_ptr[0]); // SIGSEGV
            a.Label(ref parent);
            a.mov(__qword_ptr[Data + 0x20], rax);
            WaitFor(a, -1, 0x30, 1 /* WNOHANG */, 0x40);
            a.mov(rdi, __qword_ptr[Data + 0x20]);
            a.mov(rsi, Data + 0x38);
            a.xor(edx, edx);
            a.xor(r10d, r10d);
            Syscall(a, Wait4);
            a.mov(__qword_ptr[Data + 0x48], rax);
            a.mov(edi, 0);
            Syscall(a, ExitGroup);
        });

        Assert.Equal(new RunOutcome(0, null, null), run.Outcome);
        Assert.Equal(0UL, Read64(run, Data + 0x40));
        Assert.Equal(4243UL, Read64(run, Data + 0x48));
        Assert.Equal(11UL, Read64(run, Data + 0x38) & 0xffff_ffff);
        Assert.True(run.Machine.ContextSwitches >= 2);
    }

    [Fact]
    public void PipeRead_BlocksUntilTheChildWrites_AndSeesEndOfFileOnceEveryWriterIsClosed()
    {
        using var run = new MachineTests.Run(a =>
        {
            var parent = a.CreateLabel();
            var message = a.CreateLabel();
            a.mov(edi, (uint)Data);
            a.xor(esi, esi);
            Syscall(a, Pipe2);
            Syscall(a, Fork);
            a.test(rax, rax);
            a.jnz(parent);
            // Child: write "hello" into the pipe and exit (its descriptors close).
            a.mov(edi, __dword_ptr[Data + 4]);
            a.lea(rsi, __[message]);
            a.mov(edx, 5);
            Syscall(a, Write);
            a.xor(edi, edi);
            Syscall(a, Exit);
            // Parent: close its write end, read (blocks until the child wrote), read again (EOF).
            a.Label(ref parent);
            a.mov(edi, __dword_ptr[Data + 4]);
            Syscall(a, Close);
            a.mov(edi, __dword_ptr[Data]);
            a.mov(esi, (uint)Data + 0x100);
            a.mov(edx, 64);
            Syscall(a, Read);
            a.mov(__qword_ptr[Data + 0x40], rax);
            a.mov(edi, __dword_ptr[Data]);
            a.mov(esi, (uint)Data + 0x100);
            a.mov(edx, 64);
            Syscall(a, Read);
            a.mov(__qword_ptr[Data + 0x48], rax);
            a.xor(edi, edi);
            Syscall(a, ExitGroup);
            a.Label(ref message);
            a.db("hello"u8.ToArray());
        });

        Assert.Equal(new RunOutcome(0, null, null), run.Outcome);
        Assert.Equal(5UL, Read64(run, Data + 0x40));
        Assert.Equal(0UL, Read64(run, Data + 0x48));
        var bytes = new byte[5];
        Assert.True(run.Machine.Process.User.TryRead(Data + 0x100, bytes));
        Assert.Equal("hello"u8.ToArray(), bytes);
    }

    /// <summary>Both processes run a loop longer than a time slice, so the CPU switches between them mid-loop.</summary>
    [Fact]
    public void TimeSliceSwitches_PreserveEachProcesssRegisters()
    {
        static void SpinAndCheck(Assembler a, uint value, int resultOffset)
        {
            var loop = a.CreateLabel();
            a.mov(r12d, value);
            a.movq(xmm3, r12);
            a.mov(ecx, 2_500_000);
            a.Label(ref loop);
            a.add(r13, 1);
            a.dec(ecx);
            a.jnz(loop);
            a.xor(eax, eax);
            a.movq(rdx, xmm3);
            a.cmp(rdx, (int)value);
            a.setne(al);
            a.cmp(r12, (int)value);
            a.setne(dl);
            a.or(al, dl);
            a.cmp(r13, 2_500_000);
            a.setne(dl);
            a.or(al, dl);
            a.mov(__qword_ptr[Data + (ulong)resultOffset], rax);
        }
        using var run = new MachineTests.Run(a =>
        {
            var parent = a.CreateLabel();
            a.xor(r13d, r13d);
            Syscall(a, Fork);
            a.test(rax, rax);
            a.jnz(parent);
            SpinAndCheck(a, 0x2222, 0x10);
            a.mov(edi, __dword_ptr[Data + 0x10]);
            Syscall(a, Exit);
            a.Label(ref parent);
            SpinAndCheck(a, 0x1111, 0x18);
            WaitFor(a, -1, 0x30, 0, 0x40);
            a.mov(edi, __dword_ptr[Data + 0x18]);
            Syscall(a, ExitGroup);
        }, maxInstructions: 100_000_000);

        Assert.Equal(new RunOutcome(0, null, null), run.Outcome);
        Assert.Equal(0UL, Read64(run, Data + 0x30) & 0xffff_ffff); // the child's checks passed too
        Assert.True(run.Machine.ContextSwitches >= 4, $"{run.Machine.ContextSwitches} switches");
    }

    [Fact]
    public void FirstProcessExit_EndsTheRun_AndKillsLiveChildren()
    {
        using var run = new MachineTests.Run(a =>
        {
            var parent = a.CreateLabel();
            var spin = a.CreateLabel();
            Syscall(a, Fork);
            a.test(rax, rax);
            a.jnz(parent);
            a.Label(ref spin);
            a.jmp(spin);
            a.Label(ref parent);
            // Let the child spin through a few time slices first.
            a.mov(ecx, 3_000_000);
            var loop = a.CreateLabel();
            a.Label(ref loop);
            a.dec(ecx);
            a.jnz(loop);
            a.mov(edi, 9);
            Syscall(a, ExitGroup);
        }, maxInstructions: 50_000_000);

        Assert.Equal(new RunOutcome(9, null, null), run.Outcome);
        Assert.True(run.Machine.ContextSwitches >= 2);
        Assert.Single(run.Machine.Process.Table.Processes);
    }
}

/// <summary>The pipe buffer's rules, without processes.</summary>
public class PipeTests
{
    [Fact]
    public void Pipe_HoldsSixteenPages_AndAWriteThatFindsNoFreePageIsEagainOrPartial()
    {
        var pipe = new Pipe();
        var reader = new PipeEnd(pipe, isWriteEnd: false, inode: 1);
        var writer = new PipeEnd(pipe, isWriteEnd: true, inode: 1);
        Assert.Equal(Pipe.Capacity - 10, writer.Write(new byte[Pipe.Capacity - 10]));
        Assert.Equal(Pipe.Slots, pipe.UsedSlots);
        // The last page has 10 bytes of room: a remainder that fits merges, one that does not finds no page.
        Assert.Equal(-(long)Errno.EAGAIN, writer.Write(new byte[100]));
        Assert.Equal(-(long)Errno.EAGAIN, writer.Write(new byte[5000]));
        Assert.Equal(10, writer.Write(new byte[10]));
        Assert.False(pipe.CanWrite);
        Assert.Equal(4096, reader.Read(new byte[4096]));
        Assert.True(pipe.CanWrite);
        // 5000 = 904 + 4096: the 904 cannot merge (the last page is full), the next page takes 4096, then the ring is full.
        Assert.Equal(4096, writer.Write(new byte[5000]));
        Assert.Equal(Pipe.Capacity, pipe.Count);
    }

    [Fact]
    public void Pipe_SmallWritesShareAPageOnlyWhileTheyFitWhole()
    {
        var pipe = new Pipe();
        var writer = new PipeEnd(pipe, isWriteEnd: true, inode: 1);
        _ = new PipeEnd(pipe, isWriteEnd: false, inode: 1);
        long total = 0;
        for (long written; (written = writer.Write(new byte[1000])) > 0;)
            total += written;
        // Four 1000-byte writes per page (a fifth would straddle it), sixteen pages: 64000, not 65536.
        Assert.Equal(64_000, total);
        Assert.Equal(-(long)Errno.EAGAIN, writer.Write(new byte[1000]));
        Assert.Equal(96, writer.Write(new byte[96]));
    }

    [Fact]
    public void Pipe_ReadsInOrderAcrossTheRingsEnd_AndGivesEofOrEpipeWhenTheOtherSideIsGone()
    {
        var pipe = new Pipe();
        var reader = new PipeEnd(pipe, isWriteEnd: false, inode: 1);
        var writer = new PipeEnd(pipe, isWriteEnd: true, inode: 1);
        var chunk = new byte[40_000];
        Assert.Equal(chunk.Length, writer.Write(chunk));
        Assert.Equal(chunk.Length, reader.Read(new byte[chunk.Length]));
        var pattern = Enumerable.Range(0, 50_000).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(pattern.Length, writer.Write(pattern));
        var back = new byte[pattern.Length];
        Assert.Equal(pattern.Length, reader.Read(back));
        Assert.Equal(pattern, back);
        Assert.Equal(-(long)Errno.EAGAIN, reader.Read(new byte[1]));
        writer.Close();
        Assert.Equal(0, reader.Read(new byte[1]));
        reader.Close();
        Assert.Equal(-(long)Errno.EPIPE, new PipeEnd(pipe, isWriteEnd: true, inode: 1).Write(new byte[1]));
    }
}

/// <summary>pipe and pipe2 as system calls of one process.</summary>
public class PipeSyscallTests
{
    const ulong Scratch = ProcessFixture.Scratch;

    static (int Read, int Write) Fds(ProcessFixture p)
    {
        var bytes = p.ReadBytes(Scratch, 8);
        return (BitConverter.ToInt32(bytes, 0), BitConverter.ToInt32(bytes, 4));
    }

    [Fact]
    public void Pipe2_NonBlocking_EmptyReadIsEagain_AndWrittenBytesComeBack()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Pipe2, Scratch, 0x800 | 0x80000));
        var (readFd, writeFd) = Fds(p);
        Assert.Equal((3, 4), (readFd, writeFd));
        Assert.Equal(-(long)Errno.EAGAIN, p.Call(SyscallNumber.Read, (ulong)readFd, Scratch + 64, 16));
        Assert.False(p.Process.IsBlocked);
        ulong text = p.PutString("pipe!", 128);
        Assert.Equal(5, p.Call(SyscallNumber.Write, (ulong)writeFd, text, 5));
        Assert.Equal(5, p.Call(SyscallNumber.Read, (ulong)readFd, Scratch + 64, 16));
        Assert.Equal("pipe!", p.ReadText(Scratch + 64, 5));
        Assert.Equal(1, p.Call(SyscallNumber.Fcntl, (ulong)readFd, 1 /* F_GETFD */));
        Assert.Equal(-(long)Errno.EINVAL, p.Call(SyscallNumber.Pipe2, Scratch, 0x1));
    }

    [Fact]
    public void WriteToAPipeWithoutReaders_IsEpipe_AndSigpipeKillsTheProcess()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Pipe, Scratch));
        var (readFd, writeFd) = Fds(p);
        Assert.Equal(0, p.Call(SyscallNumber.Close, (ulong)readFd));
        Assert.Equal(-(long)Errno.EPIPE, p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch, 1));
        Assert.Equal(13, p.Process.TerminatingSignal);
    }

    [Fact]
    public void FcntlSetflNonblock_MakesEmptyReadsAndFullWritesEagain_AndGetflReportsIt()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Pipe, Scratch));
        var (readFd, writeFd) = Fds(p);
        const ulong FGetfl = 3, FSetfl = 4, ONonblock = 0x800;
        Assert.Equal(0, p.Call(SyscallNumber.Fcntl, (ulong)readFd, FGetfl));
        Assert.Equal(1, p.Call(SyscallNumber.Fcntl, (ulong)writeFd, FGetfl));
        // O_WRONLY in the argument is ignored: the access mode never changes.
        Assert.Equal(0, p.Call(SyscallNumber.Fcntl, (ulong)readFd, FSetfl, ONonblock | 1));
        Assert.Equal(0, p.Call(SyscallNumber.Fcntl, (ulong)writeFd, FSetfl, ONonblock));
        Assert.Equal((long)ONonblock, p.Call(SyscallNumber.Fcntl, (ulong)readFd, FGetfl));
        Assert.Equal((long)(ONonblock | 1), p.Call(SyscallNumber.Fcntl, (ulong)writeFd, FGetfl));
        Assert.Equal(-(long)Errno.EAGAIN, p.Call(SyscallNumber.Read, (ulong)readFd, Scratch + 64, 16));
        Assert.False(p.Process.IsBlocked);

        Assert.Equal(Pipe.Capacity, p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch, 2 * Pipe.Capacity));
        Assert.Equal(-(long)Errno.EAGAIN, p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch, 1));
        Assert.False(p.Process.IsBlocked);

        // Cleared again, a write to the full pipe waits for the reader.
        Assert.Equal(0, p.Call(SyscallNumber.Fcntl, (ulong)writeFd, FSetfl, 0));
        Assert.Equal(1, p.Call(SyscallNumber.Fcntl, (ulong)writeFd, FGetfl));
        p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch, 1);
        Assert.True(p.Process.IsBlocked);
    }

    [Fact]
    public void BlockingWriteLargerThanThePipe_WaitsForRoom_AndReturnsOnlyWhenAllIsWritten()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Pipe, Scratch));
        var (readFd, writeFd) = Fds(p);
        var reader = (PipeEnd)p.Process.FileDescriptor(readFd)!;
        const int Total = 100_000;
        var pattern = Enumerable.Range(0, Total).Select(i => (byte)(i * 13 + (i >> 9))).ToArray();
        Assert.True(p.Process.User.TryWrite(Scratch + 4096, pattern));

        p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch + 4096, Total);
        Assert.True(p.Process.IsBlocked);
        Assert.Equal(Pipe.Capacity, reader.Pipe.Count);
        var back = new byte[Total];
        Assert.Equal(40_000, reader.Read(back.AsSpan(0, 40_000)));
        Assert.True(p.Process.TryWake());

        // The machine restarts the call: it goes on with the rest and returns the whole count.
        Assert.Equal(Total, p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch + 4096, Total));
        Assert.False(p.Process.IsBlocked);
        Assert.Equal(Total - 40_000, reader.Read(back.AsSpan(40_000)));
        Assert.Equal(pattern, back);
    }

    [Fact]
    public void BlockingReadOfAnEmptyPipe_WaitsWhileAWriterIsOpen()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Pipe, Scratch));
        var (readFd, writeFd) = Fds(p);
        p.Call(SyscallNumber.Read, (ulong)readFd, Scratch + 64, 16);
        Assert.True(p.Process.IsBlocked);
        Assert.False(p.Process.TryWake());
        Assert.Equal(1, p.Call(SyscallNumber.Write, (ulong)writeFd, Scratch, 1));
        Assert.True(p.Process.TryWake());
    }
}
