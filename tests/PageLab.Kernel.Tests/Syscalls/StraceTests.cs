using PageLab.Kernel.Syscalls;
using static PageLab.Kernel.Tests.Syscalls.ProcessFixture;

namespace PageLab.Kernel.Tests.Syscalls;

public class StraceTests
{
    [Fact]
    public void FailedOpenat_IsFormattedAsStraceDoes()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/nonexistent/x"), 0x80000);
        Assert.Equal("openat(AT_FDCWD, \"/nonexistent/x\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n", p.Strace);
    }

    [Fact]
    public void Write_ShowsEscapedBuffer_PaddedToResultColumn()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.Write, 1, p.PutString("hi\n\u0001"), 4);
        Assert.Equal("write(1, \"hi\\n\\1\", 4)                   = 4\n", p.Strace);
    }

    [Fact]
    public void LongBuffers_AreCutAt32Characters()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.Write, 1, p.PutString(new string('a', 40)), 40);
        Assert.Equal($"write(1, \"{new string('a', 32)}\"..., 40) = 40\n", p.Strace);
    }

    [Fact]
    public void Mmap_ShowsFlagNamesAndHexResult()
    {
        using var p = new ProcessFixture(trace: true);
        long address = p.Call(SyscallNumber.Mmap, 0, 8192, 3, 0x22, unchecked((ulong)-1), 0);
        Assert.Equal($"mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x{address:x}\n", p.Strace);
    }

    [Fact]
    public void ExitGroup_HasUnknownResultAndExitLine()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.ExitGroup, 3);
        Assert.Equal("exit_group(3)                           = ?\n+++ exited with 3 +++\n", p.Strace);
    }

    [Fact]
    public void UnknownSyscall_ShowsNumberAndEnosys()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call((SyscallNumber)500, 1, 2);
        Assert.Equal("syscall_0x1f4(0x1, 0x2, 0, 0, 0, 0)     = -1 ENOSYS (Function not implemented)\n", p.Strace);
    }

    [Fact]
    public void Prlimit64_ShowsTheRlimitStructAsStraceDoes()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.Prlimit64, 0, 3, 0, Scratch);
        Assert.Equal("prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0\n", p.Strace);
    }

    [Fact]
    public void Getrandom_ShowsBytesInHex()
    {
        using var p = new ProcessFixture(trace: true);
        p.Call(SyscallNumber.Getrandom, Scratch, 2, 1);
        var bytes = p.ReadBytes(Scratch, 2);
        Assert.Equal($"getrandom(\"\\x{bytes[0]:x2}\\x{bytes[1]:x2}\", 2, GRND_NONBLOCK) = 2\n", p.Strace);
    }

    [Fact]
    public void Fstat_ShowsModeAndSize()
    {
        using var p = new ProcessFixture(trace: true);
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/maps"), 0);
        p.Call(SyscallNumber.Fstat, (ulong)fd, Scratch + 512);
        Assert.EndsWith("fstat(3, {st_mode=S_IFREG|0444, st_size=0, ...}) = 0\n", p.Strace, StringComparison.Ordinal);
    }
}
