using System.Runtime.InteropServices;

namespace PageLab.Kernel.Fs;

/// <summary>
/// The host's libc, for the read-only file access PageLab passes through (the host is x86-64
/// Linux, so struct stat, struct termios and linux_dirent64 have the guest's layout byte for
/// byte). Each call returns the result or -errno, as a system call does.
/// </summary>
static unsafe partial class HostInterop
{
    const string Libc = "libc";

    public const int O_RDONLY = 0;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>sizeof(struct stat) on x86-64.</summary>
    public const int StatSize = 144;

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    private static partial nint ReadNative(int fd, byte* buffer, nint count);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    private static partial nint WriteNative(int fd, byte* buffer, nint count);

    [LibraryImport(Libc, EntryPoint = "pread64", SetLastError = true)]
    private static partial nint PreadNative(int fd, byte* buffer, nint count, long offset);

    [LibraryImport(Libc, EntryPoint = "lseek64", SetLastError = true)]
    private static partial long LseekNative(int fd, long offset, int whence);

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenNative(string path, int flags);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    [LibraryImport(Libc, EntryPoint = "fstat", SetLastError = true)]
    private static partial int FstatNative(int fd, byte* buffer);

    [LibraryImport(Libc, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatNative(string path, byte* buffer);

    [LibraryImport(Libc, EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LstatNative(string path, byte* buffer);

    [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlNative(int fd, ulong request, byte* argument);

    [LibraryImport(Libc, EntryPoint = "getdents64", SetLastError = true)]
    private static partial nint GetDents64Native(int fd, byte* buffer, nint count);

    [LibraryImport(Libc, EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPathNative(string path, byte* resolved);

    [LibraryImport(Libc, EntryPoint = "readlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint ReadLinkNative(string path, byte* buffer, nint size);

    [LibraryImport(Libc, EntryPoint = "getuid")] public static partial uint GetUid();
    [LibraryImport(Libc, EntryPoint = "geteuid")] public static partial uint GetEuid();
    [LibraryImport(Libc, EntryPoint = "getgid")] public static partial uint GetGid();
    [LibraryImport(Libc, EntryPoint = "getegid")] public static partial uint GetEgid();

    static long Result(long value) => value < 0 ? -Marshal.GetLastPInvokeError() : value;

    public static long Read(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer) return Result(ReadNative(fd, p, buffer.Length));
    }

    public static long Write(int fd, ReadOnlySpan<byte> buffer)
    {
        fixed (byte* p = buffer) return Result(WriteNative(fd, p, buffer.Length));
    }

    public static long Pread(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer) return Result(PreadNative(fd, p, buffer.Length, offset));
    }

    public static long Lseek(int fd, long offset, int whence) => Result(LseekNative(fd, offset, whence));

    public static int Open(string path, int flags) => (int)Result(OpenNative(path, flags));

    public static void Close(int fd) => CloseNative(fd);

    public static int Fstat(int fd, Span<byte> statBuffer)
    {
        fixed (byte* p = statBuffer) return (int)Result(FstatNative(fd, p));
    }

    public static int Stat(string path, bool followLinks, Span<byte> statBuffer)
    {
        fixed (byte* p = statBuffer) return (int)Result(followLinks ? StatNative(path, p) : LstatNative(path, p));
    }

    public static int Ioctl(int fd, ulong request, Span<byte> argument)
    {
        fixed (byte* p = argument) return (int)Result(IoctlNative(fd, request, p));
    }

    public static long GetDents64(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer) return Result(GetDents64Native(fd, p, buffer.Length));
    }

    /// <summary>readlink(2): the target of a symbolic link, or -errno (EINVAL when the path is not a link).</summary>
    public static int ReadLink(string path, out string target)
    {
        const int PathMax = 4096;
        byte* buffer = stackalloc byte[PathMax];
        nint length = ReadLinkNative(path, buffer, PathMax);
        target = length < 0 ? "" : System.Text.Encoding.UTF8.GetString(buffer, (int)length);
        return length < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>realpath(3): the canonical absolute path with every symbolic link resolved, or -errno.</summary>
    public static int RealPath(string path, out string resolved)
    {
        const int PathMax = 4096;
        byte* buffer = stackalloc byte[PathMax];
        resolved = "";
        if (RealPathNative(path, buffer) == 0)
            return -Marshal.GetLastPInvokeError();
        resolved = Marshal.PtrToStringUTF8((nint)buffer) ?? "";
        return 0;
    }
}
