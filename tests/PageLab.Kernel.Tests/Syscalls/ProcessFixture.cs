using System.Text;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Process;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Tests.Syscalls;

/// <summary>A fixed clock for tests: time moves only when the kernel model charges it.</summary>
sealed class FakeTime : IVirtualTime
{
    public ulong Nanoseconds { get; set; }
    public void Advance(ulong nanoseconds) => Nanoseconds += nanoseconds;
}

/// <summary>The FS and GS bases of a thread that exists only in a test.</summary>
sealed class FakeThread : IThreadContext
{
    public ulong FsBase { get; set; }
    public ulong GsBase { get; set; }
}

/// <summary>A standard stream that records what the guest writes and serves fixed input.</summary>
sealed class CapturedStream(string path, byte[]? input = null) : OpenFile
{
    readonly MemoryStream written = new();
    int inputPosition;

    public override string Path => path;
    public string Text => Encoding.UTF8.GetString(written.ToArray());

    public override long Write(ReadOnlySpan<byte> buffer)
    {
        written.Write(buffer);
        return buffer.Length;
    }

    public override long Read(Span<byte> buffer)
    {
        var remaining = (input ?? []).AsSpan(inputPosition);
        int n = Math.Min(remaining.Length, buffer.Length);
        remaining[..n].CopyTo(buffer);
        inputPosition += n;
        return n;
    }

    public override int Stat(Span<byte> statBuffer)
    {
        statBuffer.Clear();
        return 0;
    }
}

/// <summary>A pipe whose reader has gone: every write fails with EPIPE.</summary>
sealed class BrokenPipe() : OpenFile
{
    public override string Path => "pipe:[1]";
    public override long Write(ReadOnlySpan<byte> buffer) => -(long)Errno.EPIPE;
    public override int Stat(Span<byte> statBuffer)
    {
        statBuffer.Clear();
        return 0;
    }
}

/// <summary>A process with a scratch RW mapping at <see cref="Scratch"/> for syscall arguments.</summary>
sealed class ProcessFixture : IDisposable
{
    public const ulong Scratch = 0x1000_0000;
    public const ulong ScratchSize = 0x10_0000;

    readonly TestMachine machine;
    readonly StringWriter strace = new();

    public ProcessFixture(IReadOnlyList<string>? allowedPaths = null, ulong seed = 1, bool trace = false, byte[]? stdin = null, OpenFile? stdout = null)
    {
        machine = new TestMachine();
        Stdout = new CapturedStream("/dev/stdout");
        Stderr = new CapturedStream("/dev/stderr");
        Process = new LinuxProcess(machine.Memory, new ProcessSettings
        {
            AllowedPaths = allowedPaths ?? [],
            Seed = seed,
            Strace = trace ? strace : null,
            StandardStreams = [new CapturedStream("/dev/stdin", stdin), stdout ?? Stdout, Stderr],
        }, Time, "/usr/local/bin/prog");
        Process.Space.Map(Scratch, Scratch + ScratchSize, Protection.Read | Protection.Write, VmaFlags.None, null, 0);
    }

    public LinuxProcess Process { get; }
    public FakeTime Time { get; } = new() { Nanoseconds = 5_000_000_123 };
    public FakeThread Thread { get; } = new();
    public CapturedStream Stdout { get; }
    public CapturedStream Stderr { get; }
    public string Strace => strace.ToString();
    public TestMachine Machine => machine;

    public long Call(SyscallNumber number, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0) =>
        Process.HandleSyscall(new SyscallArguments((long)number, a0, a1, a2, a3, a4, a5), Thread);

    /// <summary>Places a NUL-terminated string in guest memory at Scratch + offset and returns its address.</summary>
    public ulong PutString(string value, ulong offset = 0)
    {
        Assert.True(Process.User.TryWrite(Scratch + offset, Encoding.UTF8.GetBytes(value + "\0")));
        return Scratch + offset;
    }

    public byte[] ReadBytes(ulong address, int count)
    {
        var bytes = new byte[count];
        Assert.True(Process.User.TryRead(address, bytes));
        return bytes;
    }

    public ulong Read64(ulong address)
    {
        Assert.True(Process.User.TryReadUInt64(address, out ulong value));
        return value;
    }

    public string ReadText(ulong address, int count) => Encoding.UTF8.GetString(ReadBytes(address, count));

    public void Dispose() => machine.Dispose();
}
