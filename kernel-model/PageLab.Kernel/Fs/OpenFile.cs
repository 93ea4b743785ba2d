using System.Buffers.Binary;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Fs;

/// <summary>
/// An open file description as the system calls see it. Every operation returns a count or
/// -errno; the defaults are what Linux answers for a file that does not support the operation.
/// </summary>
public abstract class OpenFile
{
    protected const int SeekSet = 0, SeekCur = 1, SeekEnd = 2;

    /// <summary>The path it was opened by (for /proc/self/maps and reports).</summary>
    public abstract string Path { get; }

    /// <summary>The open flags (O_ACCMODE bits and status flags), as fcntl(F_GETFL) reports them; F_SETFL changes some.</summary>
    public int StatusFlags { get; set; }

    public virtual long Read(Span<byte> buffer) => -(long)Errno.EBADF;
    public virtual long Write(ReadOnlySpan<byte> buffer) => -(long)Errno.EBADF;
    public virtual long ReadAt(Span<byte> buffer, long offset) => -(long)Errno.ESPIPE;
    public virtual long Seek(long offset, int whence) => -(long)Errno.ESPIPE;
    public virtual long GetDirectoryEntries(Span<byte> buffer) => -(long)Errno.ENOTDIR;
    public virtual int Ioctl(ulong request, Span<byte> argument) => -(int)Errno.ENOTTY;

    /// <summary>Fills a struct stat (144 bytes); 0 or -errno.</summary>
    public abstract int Stat(Span<byte> statBuffer);

    /// <summary>The file's pages for mmap, or null when it cannot be mapped (ENODEV).</summary>
    public virtual IMappableFile? Mappable => null;

    public virtual void Close()
    {
    }

    /// <summary>Descriptors referring to this open file, in every process (dup and fork add one each).</summary>
    internal int DescriptorCount { get; set; }
}

/// <summary>
/// A host file descriptor passed through: the guest's standard streams, and host files and
/// directories the guest opened read-only inside the allowed paths.
/// </summary>
public sealed class HostFile : OpenFile, IMappableFile
{
    readonly int fd;
    readonly bool owned;
    readonly bool writable;
    bool mapped;

    /// <param name="fd">The host descriptor.</param>
    /// <param name="path">The path shown to the guest.</param>
    /// <param name="owned">Close the host descriptor when the guest closes it (false for the standard streams).</param>
    /// <param name="writable">Writes pass through (only the standard output streams).</param>
    public HostFile(int fd, string path, bool owned, bool writable)
    {
        this.fd = fd;
        this.owned = owned;
        this.writable = writable;
        Path = path;
    }

    public override string Path { get; }

    /// <summary>Opens a host file read-only (the program to run): 0 and the file, or -errno.</summary>
    public static int OpenReadOnly(string path, out HostFile? file)
    {
        file = null;
        int fd = HostInterop.Open(path, HostInterop.O_RDONLY | HostInterop.O_CLOEXEC);
        if (fd < 0)
            return fd;
        file = new HostFile(fd, path, owned: true, writable: false);
        return 0;
    }

    public override long Read(Span<byte> buffer) => HostInterop.Read(fd, buffer);

    public override long Write(ReadOnlySpan<byte> buffer) => writable ? HostInterop.Write(fd, buffer) : -(long)Errno.EBADF;

    public override long ReadAt(Span<byte> buffer, long offset) => HostInterop.Pread(fd, buffer, offset);

    public override long Seek(long offset, int whence) => HostInterop.Lseek(fd, offset, whence);

    public override long GetDirectoryEntries(Span<byte> buffer) => HostInterop.GetDents64(fd, buffer);

    /// <summary>TCGETS and TIOCGWINSZ pass through (they answer ENOTTY for anything but a terminal); nothing else is allowed.</summary>
    public override int Ioctl(ulong request, Span<byte> argument) =>
        request is Ioctls.TCGETS or Ioctls.TIOCGWINSZ ? HostInterop.Ioctl(fd, request, argument) : -(int)Errno.ENOTTY;

    public override int Stat(Span<byte> statBuffer) => HostInterop.Fstat(fd, statBuffer);

    const uint FileTypeMask = 0xf000, RegularFile = 0x8000;

    public override IMappableFile? Mappable
    {
        get
        {
            Span<byte> stat = stackalloc byte[HostInterop.StatSize];
            if (HostInterop.Fstat(fd, stat) != 0 || (BinaryPrimitives.ReadUInt32LittleEndian(stat[24..]) & FileTypeMask) != RegularFile)
                return null;
            // A mapping keeps the file: the descriptor stays open after the guest closes it.
            mapped = true;
            return this;
        }
    }

    long IMappableFile.Length
    {
        get
        {
            Span<byte> stat = stackalloc byte[HostInterop.StatSize];
            return HostInterop.Fstat(fd, stat) == 0 ? BinaryPrimitives.ReadInt64LittleEndian(stat[48..]) : 0;
        }
    }

    (ulong Device, ulong Inode) IMappableFile.Identity
    {
        get
        {
            Span<byte> stat = stackalloc byte[HostInterop.StatSize];
            return HostInterop.Fstat(fd, stat) == 0
                ? (BinaryPrimitives.ReadUInt64LittleEndian(stat), BinaryPrimitives.ReadUInt64LittleEndian(stat[8..]))
                : (0, 0);
        }
    }

    int IMappableFile.ReadAt(long offset, Span<byte> destination)
    {
        long total = 0;
        while (total < destination.Length)
        {
            long n = HostInterop.Pread(fd, destination[(int)total..], offset + total);
            if (n <= 0) break;
            total += n;
        }
        return (int)total;
    }

    public override void Close()
    {
        if (owned && !mapped)
            HostInterop.Close(fd);
    }
}

/// <summary>
/// A procfs or sysfs file: its bytes come from <paramref name="readAt"/> (text generated at open, or a
/// view such as /proc/self/pagemap computed per read), <paramref name="length"/> bytes long for SEEK_END;
/// writable when opened for writing a file that has a writer.
/// </summary>
public sealed class VirtualFile(string path, Func<Span<byte>, long, long> readAt, long length, uint mode, ulong inode, Func<string, Errno?>? writer = null) : OpenFile
{
    /// <summary>A file whose whole content is <paramref name="content"/>.</summary>
    public VirtualFile(string path, byte[] content, uint mode, ulong inode, Func<string, Errno?>? writer = null)
        : this(path, (buffer, offset) => CopyOut(content, buffer, offset), content.Length, mode, inode, writer)
    {
    }

    static long CopyOut(byte[] content, Span<byte> buffer, long offset)
    {
        if (offset >= content.Length) return 0;
        int count = (int)Math.Min(buffer.Length, content.Length - offset);
        content.AsSpan((int)offset, count).CopyTo(buffer);
        return count;
    }

    long position;

    /// <summary>Device number of the procfs and sysfs files (an anonymous device, as on Linux).</summary>
    public const ulong VirtualDevice = 0x16;

    public override string Path => path;

    public override long Read(Span<byte> buffer)
    {
        long n = ReadAt(buffer, position);
        if (n > 0) position += n;
        return n;
    }

    /// <summary>sysfs store: the whole buffer is one value; an invalid value is EINVAL and changes nothing.</summary>
    public override long Write(ReadOnlySpan<byte> buffer)
    {
        if (writer is null) return -(long)Errno.EBADF;
        return writer(System.Text.Encoding.UTF8.GetString(buffer)) is { } error ? -(long)error : buffer.Length;
    }

    public override long ReadAt(Span<byte> buffer, long offset) => offset < 0 ? -(long)Errno.EINVAL : readAt(buffer, offset);

    public override long Seek(long offset, int whence)
    {
        long target = whence switch
        {
            SeekSet => offset,
            SeekCur => position + offset,
            SeekEnd => length + offset,
            _ => -1,
        };
        if (whence is < SeekSet or > SeekEnd || target < 0) return -(long)Errno.EINVAL;
        return position = target;
    }

    public override int Stat(Span<byte> statBuffer) => FillStat(statBuffer, path, mode, inode);

    /// <summary>A procfs or sysfs struct stat: size 0 (sysfs: 4096), the mode given, one link, owner root.</summary>
    public static int FillStat(Span<byte> statBuffer, string path, uint mode, ulong inode)
    {
        statBuffer[..HostInterop.StatSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer, VirtualDevice);
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer[8..], inode);
        BinaryPrimitives.WriteUInt64LittleEndian(statBuffer[16..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(statBuffer[24..], mode);
        BinaryPrimitives.WriteInt64LittleEndian(statBuffer[48..], path.StartsWith("/sys/", StringComparison.Ordinal) ? 4096 : 0);
        BinaryPrimitives.WriteInt64LittleEndian(statBuffer[56..], 4096);
        return 0;
    }
}

/// <summary>ioctl request numbers the kernel model knows.</summary>
public static class Ioctls
{
    /// <summary>Get the terminal attributes (struct termios, 36 bytes).</summary>
    public const ulong TCGETS = 0x5401;

    /// <summary>Get the window size (struct winsize, 8 bytes).</summary>
    public const ulong TIOCGWINSZ = 0x5413;

    /// <summary>Bytes the argument of a request occupies in user memory.</summary>
    public static int ArgumentSize(ulong request) => request == TCGETS ? 36 : request == TIOCGWINSZ ? 8 : 0;
}

/// <summary>
/// /proc/self/pagemap: 8 bytes per virtual page, computed when read. Reads must start and end on
/// an entry boundary (EINVAL otherwise); reading past the user address space returns end of file.
/// </summary>
public sealed class PagemapFile(Mm.AddressSpace space, bool showFrames) : OpenFile
{
    const int EntrySize = 8;
    long position;

    public override string Path => "/proc/self/pagemap";

    public override long Read(Span<byte> buffer)
    {
        long n = ReadAt(buffer, position);
        if (n > 0) position += n;
        return n;
    }

    public override long ReadAt(Span<byte> buffer, long offset)
    {
        if (offset < 0 || offset % EntrySize != 0 || buffer.Length % EntrySize != 0)
            return -(long)Errno.EINVAL;
        ulong end = Mm.AddressSpace.TaskSize >> Emulator.Paging.PagingConstants.PageBits;
        ulong first = (ulong)offset / EntrySize;
        int count = (int)Math.Min((ulong)(buffer.Length / EntrySize), first < end ? end - first : 0);
        for (int i = 0; i < count; i++)
        {
            ulong linear = (first + (ulong)i) << Emulator.Paging.PagingConstants.PageBits;
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[(i * EntrySize)..], space.PagemapEntry(linear, showFrames));
        }
        return count * EntrySize;
    }

    /// <summary>mem_lseek: SEEK_SET and SEEK_CUR only.</summary>
    public override long Seek(long offset, int whence)
    {
        long target = whence == SeekSet ? offset : whence == SeekCur ? position + offset : -1;
        if (whence is not (SeekSet or SeekCur) || target < 0) return -(long)Errno.EINVAL;
        return position = target;
    }

    /// <summary>S_IFREG | 0400, size 0, as procfs shows it.</summary>
    public override int Stat(Span<byte> statBuffer) => VirtualFile.FillStat(statBuffer, Path, 0x8000 | 0x100, 0x7061_6765);
}
