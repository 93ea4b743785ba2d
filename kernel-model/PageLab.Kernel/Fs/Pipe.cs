using System.Buffers.Binary;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Fs;

/// <summary>
/// A pipe's kernel buffer as Linux 6.18 keeps it (fs/pipe.c): a ring of 16 page-sized buffers (the
/// default pipe size, 64 KiB) shared by the read and write ends. The ring fills by pages, not bytes: a
/// write first appends its sub-page remainder (length mod 4096) to the last buffer when that fits
/// there whole, then fills fresh pages, so a write of up to PIPE_BUF bytes is never split, and small
/// writes that do not fit the last page's room start a new page. A read drains buffers in order and
/// frees each one it empties. An operation that cannot proceed answers EAGAIN (a write that moved
/// some bytes returns their count), and the process blocks on it unless the end is O_NONBLOCK.
/// </summary>
public sealed class Pipe
{
    /// <summary>Buffers in the ring (pipe_max_size's default of 16 pages).</summary>
    public const int Slots = 16;

    /// <summary>Bytes one buffer holds: a page.</summary>
    public const int SlotSize = 4096;

    /// <summary>The default capacity: 16 pages.</summary>
    public const int Capacity = Slots * SlotSize;

    /// <summary>PIPE_BUF: writes up to this size are never interleaved with others.</summary>
    public const int AtomicWriteSize = 4096;

    /// <summary>One pipe_buffer: <see cref="Length"/> unread bytes at <see cref="Offset"/> in its page.</summary>
    struct Slot
    {
        public int Offset, Length;
    }

    readonly byte[] pages = new byte[Capacity];
    readonly Slot[] slots = new Slot[Slots];
    // Ring positions as Linux keeps them: free-running counters (wrapping), slot index = counter mod Slots.
    uint head, tail;

    /// <summary>Bytes waiting to be read.</summary>
    public int Count { get; private set; }

    /// <summary>Buffers in use (a partly read or partly filled page counts whole).</summary>
    public int UsedSlots => (int)(head - tail);

    /// <summary>Open read ends (descriptors of every process pointing at one count once per open file).</summary>
    public int Readers { get; internal set; }

    /// <summary>Open write ends.</summary>
    public int Writers { get; internal set; }

    /// <summary>A read would not block: data is waiting, or no writer is left (end of file).</summary>
    public bool CanRead => Count > 0 || Writers == 0;

    /// <summary>A write would not block (pipe_writable): a buffer is free, or no reader is left (EPIPE).</summary>
    public bool CanWrite => Readers == 0 || UsedSlots < Slots;

    Span<byte> Page(uint position) => pages.AsSpan((int)(position % Slots) * SlotSize, SlotSize);

    internal long Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        if (Count == 0) return Writers == 0 ? 0 : -(long)Errno.EAGAIN;
        int taken = 0;
        while (taken < buffer.Length && tail != head)
        {
            ref var slot = ref slots[tail % Slots];
            int chunk = Math.Min(buffer.Length - taken, slot.Length);
            Page(tail).Slice(slot.Offset, chunk).CopyTo(buffer[taken..]);
            slot.Offset += chunk;
            slot.Length -= chunk;
            taken += chunk;
            if (slot.Length == 0)
                tail++;
        }
        Count -= taken;
        return taken;
    }

    internal long Write(ReadOnlySpan<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        if (Readers == 0) return -(long)Errno.EPIPE;
        int written = 0;
        // pipe_write: the sub-page remainder merges into the last buffer only if it fits there whole.
        int remainder = buffer.Length % SlotSize;
        if (remainder != 0 && head != tail)
        {
            ref var last = ref slots[(head - 1) % Slots];
            int end = last.Offset + last.Length;
            if (end + remainder <= SlotSize)
            {
                buffer[..remainder].CopyTo(Page(head - 1)[end..]);
                last.Length += remainder;
                written = remainder;
            }
        }
        while (written < buffer.Length && UsedSlots < Slots)
        {
            int chunk = Math.Min(buffer.Length - written, SlotSize);
            buffer.Slice(written, chunk).CopyTo(Page(head));
            slots[head % Slots] = new Slot { Offset = 0, Length = chunk };
            head++;
            written += chunk;
        }
        Count += written;
        return written > 0 ? written : -(long)Errno.EAGAIN;
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
