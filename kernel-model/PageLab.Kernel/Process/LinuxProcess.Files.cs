using System.Buffers.Binary;
using PageLab.Kernel.Fs;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Process;

/// <summary>File system calls: descriptors, reads and writes, paths, metadata.</summary>
public sealed partial class LinuxProcess
{
    const int AtFdCwd = -100;
    const int AtSymlinkNoFollow = 0x100;
    const int AtEmptyPath = 0x1000;
    const int AtEaccess = 0x200;
    const int OCloexec = 0x80000;

    /// <summary>MAX_RW_COUNT: one read or write moves at most INT_MAX rounded down to a page.</summary>
    const long MaxReadWrite = int.MaxValue & ~0xfffL;

    /// <summary>The kernel moves data in chunks of this size between the file and user memory.</summary>
    const int TransferChunk = 1 << 20;

    /// <summary>UIO_MAXIOV.</summary>
    const int MaxIovecs = 1024;

    OpenFile? Lookup(int fd) => (uint)fd < MaxFileDescriptors ? files[fd] : null;

    /// <summary>
    /// Points descriptor <paramref name="fd"/> at <paramref name="file"/> (or closes it with null): the
    /// open file it referred to before is closed when no descriptor of any process refers to it any more.
    /// </summary>
    void SetDescriptor(int fd, OpenFile? file)
    {
        if (file is not null)
            file.DescriptorCount++;
        var old = files[fd];
        files[fd] = file;
        if (old is not null && --old.DescriptorCount == 0)
            old.Close();
    }

    /// <summary>Closes every descriptor (exit, in descriptor order).</summary>
    void CloseAllDescriptors()
    {
        for (int fd = 0; fd < MaxFileDescriptors; fd++)
        {
            if (files[fd] is not null)
                SetDescriptor(fd, null);
        }
    }

    /// <summary>The open file behind a descriptor, for the CLI's standard streams and tests.</summary>
    public OpenFile? FileDescriptor(int fd) => Lookup(fd);

    int Install(OpenFile file, int lowest = 0)
    {
        for (int fd = Math.Max(lowest, 0); fd < MaxFileDescriptors; fd++)
        {
            if (files[fd] is null)
            {
                SetDescriptor(fd, file);
                return fd;
            }
        }
        return -(int)Errno.EMFILE;
    }

    long Read(int fd, ulong buffer, ulong count)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        return BlockOnEmptyPipe(file, Transfer(buffer, count, toUser: true, chunk => file.Read(chunk)));
    }

    /// <summary>
    /// A read of a blocking pipe end that found it empty waits until it has data or no writer; any other
    /// result, and EAGAIN on an O_NONBLOCK end, goes to the caller.
    /// </summary>
    long BlockOnEmptyPipe(OpenFile file, long result)
    {
        if (result != -(long)Errno.EAGAIN || file is not PipeEnd { IsBlocking: true, IsWriteEnd: false } end)
            return result;
        return Block(() => end.Pipe.CanRead);
    }

    /// <summary>
    /// Bytes a blocking pipe write has written while it waits for room for the rest: the machine restarts
    /// the waiting call, which goes on from here.
    /// </summary>
    long pipeWriteDone;

    /// <summary>
    /// pipe_write of <paramref name="total"/> bytes, <paramref name="writeFrom"/> writing the data from a
    /// byte offset on. With O_NONBLOCK it takes what fits now (EAGAIN when nothing does); without, it
    /// writes what fits and waits for room until everything is written. No reader: SIGPIPE, and EPIPE
    /// unless some bytes went in (their count is returned).
    /// </summary>
    long WriteToPipe(PipeEnd end, long total, Func<long, long> writeFrom)
    {
        long done = pipeWriteDone;
        pipeWriteDone = 0;
        long result = writeFrom(done);
        if (result > 0)
            done += result;
        if (result == -(long)Errno.EPIPE)
            RaiseSigpipeOnEpipe(result);
        else if (end.IsBlocking && done < total && (result > 0 || result == -(long)Errno.EAGAIN))
        {
            pipeWriteDone = done;
            return Block(() => end.Pipe.CanWrite);
        }
        return done > 0 ? done : result;
    }

    /// <summary>pipe2(fds, flags): a pipe's read end in fds[0], its write end in fds[1] (O_CLOEXEC, O_NONBLOCK, O_DIRECT accepted).</summary>
    long Pipe2(ulong fdsPointer, int flags)
    {
        const int ONonblock = 0x800, ODirect = 0x4000;
        if ((flags & ~(OCloexec | ONonblock | ODirect)) != 0) return Fail(Errno.EINVAL);
        var pipe = new Pipe();
        ulong inode = Table.AllocatePipeInode();
        const int ORdonly = 0, OWronly = 1;
        var readEnd = new PipeEnd(pipe, isWriteEnd: false, inode) { StatusFlags = flags | ORdonly };
        var writeEnd = new PipeEnd(pipe, isWriteEnd: true, inode) { StatusFlags = flags | OWronly };
        int readFd = Install(readEnd);
        if (readFd < 0)
        {
            readEnd.Close();
            writeEnd.Close();
            return readFd;
        }
        int writeFd = Install(writeEnd);
        if (writeFd < 0)
        {
            SetDescriptor(readFd, null);
            writeEnd.Close();
            return writeFd;
        }
        Span<byte> pair = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(pair, readFd);
        BinaryPrimitives.WriteInt32LittleEndian(pair[4..], writeFd);
        if (User.TryWrite(fdsPointer, pair)) return 0;
        SetDescriptor(readFd, null);
        SetDescriptor(writeFd, null);
        return Fail(Errno.EFAULT);
    }

    long Pread(int fd, ulong buffer, ulong count, long offset)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        if (offset < 0) return Fail(Errno.EINVAL);
        return Transfer(buffer, count, toUser: true, chunk => file.ReadAt(chunk, offset));
    }

    long Write(int fd, ulong buffer, ulong count)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        if (file is PipeEnd { IsWriteEnd: true } end)
            return WriteToPipe(end, (long)Math.Min(count, (ulong)MaxReadWrite), done => Transfer(buffer + (ulong)done, count - (ulong)done, toUser: false, chunk => end.Write(chunk)));
        return RaiseSigpipeOnEpipe(Transfer(buffer, count, toUser: false, chunk => file.Write(chunk)));
    }

    /// <summary>Writing to a pipe nobody reads also sends SIGPIPE (fatal unless caught, ignored or blocked).</summary>
    long RaiseSigpipeOnEpipe(long result)
    {
        const int SigPipe = 13;
        if (result == -(long)Errno.EPIPE)
            SendSignal(toSelf: true, SigPipe, "write to a pipe with no reader");
        return result;
    }

    /// <summary>One read or write of up to <see cref="TransferChunk"/> bytes through a kernel buffer.</summary>
    long Transfer(ulong buffer, ulong count, bool toUser, KernelBufferOperation operation)
    {
        if (count == 0) return 0;
        if (buffer >= AddressSpace.TaskSize || count > AddressSpace.TaskSize - buffer) return Fail(Errno.EFAULT);
        var kernel = new byte[(int)Math.Min(Math.Min(count, (ulong)MaxReadWrite), TransferChunk)];
        if (!toUser && !User.TryRead(buffer, kernel)) return Fail(Errno.EFAULT);
        long result = operation(kernel);
        if (toUser && result > 0 && !User.TryWrite(buffer, kernel.AsSpan(0, (int)result))) return Fail(Errno.EFAULT);
        time.Advance(KernelCosts.CopyBytes(result));
        return result;
    }

    /// <summary>Reads an iovec array: the segments, or -errno (EINVAL for a bad count or an overflowing total, EFAULT).</summary>
    long ReadIovecs(ulong iov, int count, out (ulong Base, ulong Length)[] segments)
    {
        segments = [];
        if (count < 0 || count > MaxIovecs) return Fail(Errno.EINVAL);
        var raw = new byte[count * 16];
        if (!User.TryRead(iov, raw)) return Fail(Errno.EFAULT);
        segments = new (ulong, ulong)[count];
        ulong total = 0;
        for (int i = 0; i < count; i++)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 16 + 8));
            if (length > MaxReadWrite || total + length > MaxReadWrite) return Fail(Errno.EINVAL);
            segments[i] = (BinaryPrimitives.ReadUInt64LittleEndian(raw.AsSpan(i * 16)), length);
            total += length;
        }
        return (long)total;
    }

    long Writev(int fd, ulong iov, int count)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        long total = ReadIovecs(iov, count, out var segments);
        if (total <= 0) return total;
        // Gathered into one buffer so the write reaches the file in one piece, as a pipe would see it.
        var gathered = new byte[Math.Min(total, TransferChunk)];
        int filled = 0;
        foreach (var (address, length) in segments)
        {
            int take = (int)Math.Min(length, (ulong)(gathered.Length - filled));
            if (!User.TryRead(address, gathered.AsSpan(filled, take))) return Fail(Errno.EFAULT);
            filled += take;
        }
        long WriteFrom(long done)
        {
            long result = file.Write(gathered.AsSpan((int)done, filled - (int)done));
            time.Advance(KernelCosts.CopyBytes(result));
            return result;
        }
        return file is PipeEnd { IsWriteEnd: true } end ? WriteToPipe(end, filled, WriteFrom) : RaiseSigpipeOnEpipe(WriteFrom(0));
    }

    long Readv(int fd, ulong iov, int count)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        long total = ReadIovecs(iov, count, out var segments);
        if (total <= 0) return total;
        var kernel = new byte[Math.Min(total, TransferChunk)];
        long result = file.Read(kernel);
        if (result <= 0) return BlockOnEmptyPipe(file, result);
        long scattered = 0;
        foreach (var (address, length) in segments)
        {
            int take = (int)Math.Min((long)length, result - scattered);
            if (take <= 0) break;
            if (!User.TryWrite(address, kernel.AsSpan((int)scattered, take))) return Fail(Errno.EFAULT);
            scattered += take;
        }
        time.Advance(KernelCosts.CopyBytes(result));
        return result;
    }

    delegate long KernelBufferOperation(Span<byte> kernelBuffer);

    /// <summary>Resolves the directory a relative path starts from: null for AT_FDCWD, or -errno.</summary>
    int BaseDirectory(int dirfd, string path, out string? directory)
    {
        directory = null;
        if (path.StartsWith('/') || dirfd == AtFdCwd) return 0;
        if (Lookup(dirfd) is not { } file) return -(int)Errno.EBADF;
        Span<byte> stat = stackalloc byte[HostInterop.StatSize];
        if (file.Stat(stat) != 0 || (BinaryPrimitives.ReadUInt32LittleEndian(stat[24..]) & 0xf000) != 0x4000)
            return -(int)Errno.ENOTDIR;
        directory = file.Path;
        return 0;
    }

    /// <summary>Reads a path argument and its base directory: 0, or -errno.</summary>
    int ReadPath(int dirfd, ulong pathPointer, out string path, out string? directory)
    {
        directory = null;
        int status = User.TryReadString(pathPointer, UserMemory.PathMax, out path);
        if (status == 0 && path.Length == 0) return -(int)Errno.ENOENT;
        return status != 0 ? status : BaseDirectory(dirfd, path, out directory);
    }

    long OpenAt(int dirfd, ulong pathPointer, int flags)
    {
        int status = ReadPath(dirfd, pathPointer, out string path, out string? directory);
        if (status != 0) return status;
        status = FileSystem.Open(directory, path, flags, out var file);
        if (status != 0) return status;
        int fd = Install(file!);
        if (fd < 0) file!.Close();
        return fd;
    }

    long Close(int fd)
    {
        if (Lookup(fd) is null) return Fail(Errno.EBADF);
        SetDescriptor(fd, null);
        return 0;
    }

    long Dup(int fd, int target, bool exact)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        if (!exact) return Install(file, target);
        if ((uint)target >= MaxFileDescriptors) return Fail(Errno.EBADF);
        SetDescriptor(target, file);
        return target;
    }

    long Fcntl(int fd, int command, ulong argument)
    {
        const int FDupfd = 0, FGetfd = 1, FSetfd = 2, FGetfl = 3, FSetfl = 4, FDupfdCloexec = 1030;
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        return command switch
        {
            FDupfd or FDupfdCloexec => (int)argument >= MaxFileDescriptors || (int)argument < 0 ? Fail(Errno.EINVAL) : Install(file, (int)argument),
            FGetfd => (file.StatusFlags & OCloexec) != 0 ? 1 : 0,
            FSetfd => 0,
            FGetfl => file.StatusFlags & ~OCloexec,
            FSetfl => SetStatusFlags(file, (int)argument),
            _ => Fail(Errno.EINVAL),
        };
    }

    /// <summary>
    /// fcntl(F_SETFL): setfl changes only O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME and O_ASYNC of the open
    /// file description (shared by dup'd and inherited descriptors); the access mode and other bits are ignored.
    /// </summary>
    static long SetStatusFlags(OpenFile file, int flags)
    {
        const int OAppend = 0x400, ONonblock = 0x800, OAsync = 0x2000, ODirect = 0x4000, ONoatime = 0x40000;
        const int Changeable = OAppend | ONonblock | OAsync | ODirect | ONoatime;
        file.StatusFlags = (file.StatusFlags & ~Changeable) | (flags & Changeable);
        return 0;
    }

    long Lseek(int fd, long offset, int whence)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        if ((uint)whence > 4) return Fail(Errno.EINVAL);
        return file.Seek(offset, whence);
    }

    long Fstat(int fd, ulong statPointer)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        Span<byte> stat = stackalloc byte[HostInterop.StatSize];
        int status = file.Stat(stat);
        if (status != 0) return status;
        return User.TryWrite(statPointer, stat) ? 0 : Fail(Errno.EFAULT);
    }

    long StatPath(int dirfd, ulong pathPointer, ulong statPointer, int flags)
    {
        if ((flags & ~(AtSymlinkNoFollow | AtEmptyPath | 0x800 /* AT_NO_AUTOMOUNT */)) != 0) return Fail(Errno.EINVAL);
        int status = User.TryReadString(pathPointer, UserMemory.PathMax, out string path);
        if (status != 0) return status;
        if (path.Length == 0)
        {
            if ((flags & AtEmptyPath) == 0) return Fail(Errno.ENOENT);
            return dirfd == AtFdCwd ? StatCurrentDirectory(statPointer) : Fstat(dirfd, statPointer);
        }
        status = BaseDirectory(dirfd, path, out string? directory);
        if (status != 0) return status;
        Span<byte> stat = stackalloc byte[HostInterop.StatSize];
        status = FileSystem.Stat(directory, path, (flags & AtSymlinkNoFollow) == 0, stat);
        if (status != 0) return status;
        return User.TryWrite(statPointer, stat) ? 0 : Fail(Errno.EFAULT);
    }

    long StatCurrentDirectory(ulong statPointer)
    {
        Span<byte> stat = stackalloc byte[HostInterop.StatSize];
        int status = FileSystem.Stat(null, ".", followLinks: true, stat);
        if (status != 0) return status;
        return User.TryWrite(statPointer, stat) ? 0 : Fail(Errno.EFAULT);
    }

    long Faccessat(int dirfd, ulong pathPointer, int mode, int flags)
    {
        const int WriteOk = 2;
        if ((mode & ~7) != 0 || (flags & ~(AtSymlinkNoFollow | AtEmptyPath | AtEaccess)) != 0) return Fail(Errno.EINVAL);
        int status = ReadPath(dirfd, pathPointer, out string path, out string? directory);
        if (status != 0) return status;
        Span<byte> stat = stackalloc byte[HostInterop.StatSize];
        status = FileSystem.Stat(directory, path, (flags & AtSymlinkNoFollow) == 0, stat);
        if (status != 0) return status;
        return (mode & WriteOk) != 0 ? Fail(Errno.EROFS) : 0;
    }

    long Getdents64(int fd, ulong buffer, ulong count)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        return Transfer(buffer, count, toUser: true, chunk => file.GetDirectoryEntries(chunk));
    }

    long Ioctl(int fd, uint request, ulong argument)
    {
        if (Lookup(fd) is not { } file) return Fail(Errno.EBADF);
        int size = Ioctls.ArgumentSize(request);
        if (size == 0) return Fail(Errno.ENOTTY);
        Span<byte> data = stackalloc byte[size];
        int status = file.Ioctl(request, data);
        if (status < 0) return status;
        return User.TryWrite(argument, data) ? status : Fail(Errno.EFAULT);
    }

    long ReadlinkAt(int dirfd, ulong pathPointer, ulong buffer, long size)
    {
        if (size <= 0) return Fail(Errno.EINVAL);
        int status = ReadPath(dirfd, pathPointer, out string path, out string? directory);
        if (status != 0) return status;
        status = FileSystem.ReadLink(directory, path, out string target);
        if (status != 0) return status;
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(target);
        int length = (int)Math.Min(bytes.Length, size);
        return User.TryWrite(buffer, bytes.AsSpan(0, length)) ? length : Fail(Errno.EFAULT);
    }

    long Getcwd(ulong buffer, ulong size)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(Environment.CurrentDirectory + "\0");
        if (size < (ulong)bytes.Length) return Fail(Errno.ERANGE);
        return User.TryWrite(buffer, bytes) ? bytes.Length : Fail(Errno.EFAULT);
    }
}
