using System.Buffers.Binary;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Fs;

/// <summary>
/// A pipe's kernel buffer: 64 KiB (16 pages, Linux's default pipe size) shared by its read and write
/// ends. Writes of up to PIPE_BUF bytes are atomic; reads return what is there. An operation that
/// cannot proceed answers EAGAIN, and the process blocks on it unless the end is O_NONBLOCK.
/// </summary>
public sealed class Pipe
{
    /// <summary>The default capacity: 16 pages.</summary>
    public const int Capacity = 16 * 4096;

    /// <summary>PIPE_BUF: writes up to this size are never interleaved with others.</summary>
    public const int AtomicWriteSize = 4096;

    readonly byte[] ring = new byte[Capacity];
    int head;

    /// <summary>Bytes waiting to be read.</summary>
    public int Count { get; private set; }

    /// <summary>Open read ends (descriptors of every process pointing at one count once per open file).</summary>
    public int Readers { get; internal set; }

    /// <summary>Open write ends.</summary>
    public int Writers { get; internal set; }

    /// <summary>A read would not block: data is waiting, or no writer is left (end of file).</summary>
    public bool CanRead => Count > 0 || Writers == 0;

    /// <summary>A write of <paramref name="length"/> bytes would not block: room for it (for an atomic one, whole), or no reader is left (EPIPE).</summary>
    public bool CanWrite(int length) => Readers == 0 || Capacity - Count >= Math.Min(Math.Max(length, 1), AtomicWriteSize);

    internal long Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        if (Count == 0) return Writers == 0 ? 0 : -(long)Errno.EAGAIN;
        int taken = Math.Min(buffer.Length, Count);
        int first = Math.Min(taken, Capacity - head);
        ring.AsSpan(head, first).CopyTo(buffer);
        ring.AsSpan(0, taken - first).CopyTo(buffer[first..]);
        head = (head + taken) % Capacity;
        Count -= taken;
        return taken;
    }

    internal long Write(ReadOnlySpan<byte> buffer)
    {
        if (Readers == 0) return -(long)Errno.EPIPE;
        if (buffer.IsEmpty) return 0;
        if (!CanWrite(buffer.Length)) return -(long)Errno.EAGAIN;
        int written = Math.Min(buffer.Length, Capacity - Count);
        int tail = (head + Count) % Capacity;
        int first = Math.Min(written, Capacity - tail);
        buffer[..first].CopyTo(ring.AsSpan(tail));
        buffer[first..written].CopyTo(ring);
        Count += written;
        return written;
    }
}

/// <summary>One end of a <see cref="Pipe"/>: "pipe:[inode]" in /proc/self/fd, a FIFO to fstat.</summary>
public sealed class PipeEnd : OpenFile
{
    const int ONonblock = 0x800;
    bool closed;

    /// <param name="pipe">The shared buffer.</param>
    /// <param name="isWriteEnd">The write end (else the read end).</param>
    /// <param name="inode">The pipe's inode number, shared by both ends.</param>
    public PipeEnd(Pipe pipe, bool isWriteEnd, ulong inode)
    {
        Pipe = pipe;
        IsWriteEnd = isWriteEnd;
        Inode = inode;
        if (isWriteEnd) pipe.Writers++;
        else pipe.Readers++;
    }

    public Pipe Pipe { get; }
    public bool IsWriteEnd { get; }
    public ulong Inode { get; }

    /// <summary>Opened without O_NONBLOCK: a call that cannot proceed waits.</summary>
    public bool IsBlocking => (StatusFlags & ONonblock) == 0;

    public override string Path => $"pipe:[{Inode}]";

    public override long Read(Span<byte> buffer) => IsWriteEnd ? -(long)Errno.EBADF : Pipe.Read(buffer);

    public override long Write(ReadOnlySpan<byte> buffer) => IsWriteEnd ? Pipe.Write(buffer) : -(long)Errno.EBADF;

    public override int Stat(Span<byte> statBuffer)
    {
        const uint Fifo = 0x1000, UserReadWrite = 0x180;
        statBuffer[..HostInterop.StatSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer[8..], Inode);
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer[16..], 1); // st_nlink
        BinaryPrimitives.WriteUInt32LittleEndian(statBuffer[24..], Fifo | UserReadWrite);
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer[56..], 4096); // st_blksize
        return 0;
    }

    public override void Close()
    {
        if (closed) return;
        closed = true;
        if (IsWriteEnd) Pipe.Writers--;
        else Pipe.Readers--;
    }
}
