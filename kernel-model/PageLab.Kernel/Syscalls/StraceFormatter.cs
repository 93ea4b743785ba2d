using System.Text;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Syscalls;

/// <summary>How strace shows one argument.</summary>
enum ArgKind : byte
{
    Dec,
    Hex,
    Pointer,
    Fd,
    DirFd,
    Path,
    OpenFlags,
    Octal,
    Prot,
    MapFlags,
    /// <summary>A buffer the call reads, its length in the next argument (write).</summary>
    InBuffer,
    /// <summary>A buffer the call fills, its length in the next argument; shown with the result's byte count (read).</summary>
    OutBuffer,
    /// <summary>A string the call fills (readlink), length = result.</summary>
    OutString,
    Iovec,
    Whence,
    IoctlRequest,
    Signal,
    SigHow,
    ArchPrctlCode,
    ClockId,
    AtFlags,
    AccessMode,
    Resource,
    Advice,
    /// <summary>A buffer the call fills, shown entirely in \x escapes (getrandom).</summary>
    OutBufferHex,
    GetrandomFlags,
    /// <summary>A struct rlimit the call reads.</summary>
    RlimitIn,
    /// <summary>A struct rlimit the call fills.</summary>
    RlimitOut,
    /// <summary>A struct stat the call fills, abbreviated as strace does.</summary>
    StatOut,
    MremapFlags,
}

/// <summary>
/// Formats system calls as strace does: <c>name(arguments) = result</c>, the result column at 40,
/// strings quoted with C escapes and cut at 32 characters, flags by name, errors as
/// <c>-1 ENOENT (No such file or directory)</c>. Structures are shown by address.
/// </summary>
sealed class StraceFormatter
{
    const int ResultColumn = 40;
    const int MaxStringLength = 32;

    static readonly Dictionary<long, (string Name, ArgKind[] Args)> Signatures = new()
    {
        [0] = ("read", [ArgKind.Fd, ArgKind.OutBuffer, ArgKind.Dec]),
        [1] = ("write", [ArgKind.Fd, ArgKind.InBuffer, ArgKind.Dec]),
        [2] = ("open", [ArgKind.Path, ArgKind.OpenFlags]),
        [3] = ("close", [ArgKind.Fd]),
        [4] = ("stat", [ArgKind.Path, ArgKind.StatOut]),
        [5] = ("fstat", [ArgKind.Fd, ArgKind.StatOut]),
        [6] = ("lstat", [ArgKind.Path, ArgKind.StatOut]),
        [8] = ("lseek", [ArgKind.Fd, ArgKind.Dec, ArgKind.Whence]),
        [9] = ("mmap", [ArgKind.Pointer, ArgKind.Dec, ArgKind.Prot, ArgKind.MapFlags, ArgKind.Fd, ArgKind.Hex]),
        [10] = ("mprotect", [ArgKind.Pointer, ArgKind.Dec, ArgKind.Prot]),
        [11] = ("munmap", [ArgKind.Pointer, ArgKind.Dec]),
        [12] = ("brk", [ArgKind.Pointer]),
        [13] = ("rt_sigaction", [ArgKind.Signal, ArgKind.Pointer, ArgKind.Pointer, ArgKind.Dec]),
        [14] = ("rt_sigprocmask", [ArgKind.SigHow, ArgKind.Pointer, ArgKind.Pointer, ArgKind.Dec]),
        [16] = ("ioctl", [ArgKind.Fd, ArgKind.IoctlRequest, ArgKind.Pointer]),
        [17] = ("pread64", [ArgKind.Fd, ArgKind.OutBuffer, ArgKind.Dec, ArgKind.Dec]),
        [19] = ("readv", [ArgKind.Fd, ArgKind.Pointer, ArgKind.Dec]),
        [20] = ("writev", [ArgKind.Fd, ArgKind.Iovec, ArgKind.Dec]),
        [21] = ("access", [ArgKind.Path, ArgKind.AccessMode]),
        [25] = ("mremap", [ArgKind.Pointer, ArgKind.Dec, ArgKind.Dec, ArgKind.MremapFlags, ArgKind.Pointer]),
        [24] = ("sched_yield", []),
        [28] = ("madvise", [ArgKind.Pointer, ArgKind.Dec, ArgKind.Advice]),
        [32] = ("dup", [ArgKind.Fd]),
        [33] = ("dup2", [ArgKind.Fd, ArgKind.Fd]),
        [35] = ("nanosleep", [ArgKind.Pointer, ArgKind.Pointer]),
        [39] = ("getpid", []),
        [56] = ("clone", [ArgKind.Hex, ArgKind.Pointer, ArgKind.Pointer, ArgKind.Pointer, ArgKind.Hex]),
        [57] = ("fork", []),
        [59] = ("execve", [ArgKind.Path, ArgKind.Pointer, ArgKind.Pointer]),
        [60] = ("exit", [ArgKind.Dec]),
        [61] = ("wait4", [ArgKind.Dec, ArgKind.Pointer, ArgKind.Hex, ArgKind.Pointer]),
        [62] = ("kill", [ArgKind.Dec, ArgKind.Signal]),
        [63] = ("uname", [ArgKind.Pointer]),
        [72] = ("fcntl", [ArgKind.Fd, ArgKind.Dec, ArgKind.Hex]),
        [79] = ("getcwd", [ArgKind.Pointer, ArgKind.Dec]),
        [89] = ("readlink", [ArgKind.Path, ArgKind.OutString, ArgKind.Dec]),
        [96] = ("gettimeofday", [ArgKind.Pointer, ArgKind.Pointer]),
        [97] = ("getrlimit", [ArgKind.Resource, ArgKind.RlimitOut]),
        [99] = ("sysinfo", [ArgKind.Pointer]),
        [102] = ("getuid", []),
        [104] = ("getgid", []),
        [107] = ("geteuid", []),
        [108] = ("getegid", []),
        [110] = ("getppid", []),
        [131] = ("sigaltstack", [ArgKind.Pointer, ArgKind.Pointer]),
        [158] = ("arch_prctl", [ArgKind.ArchPrctlCode, ArgKind.Hex]),
        [186] = ("gettid", []),
        [201] = ("time", [ArgKind.Pointer]),
        [202] = ("futex", [ArgKind.Pointer, ArgKind.Dec, ArgKind.Dec, ArgKind.Pointer, ArgKind.Pointer, ArgKind.Dec]),
        [204] = ("sched_getaffinity", [ArgKind.Dec, ArgKind.Dec, ArgKind.Pointer]),
        [217] = ("getdents64", [ArgKind.Fd, ArgKind.Pointer, ArgKind.Dec]),
        [218] = ("set_tid_address", [ArgKind.Pointer]),
        [228] = ("clock_gettime", [ArgKind.ClockId, ArgKind.Pointer]),
        [229] = ("clock_getres", [ArgKind.ClockId, ArgKind.Pointer]),
        [230] = ("clock_nanosleep", [ArgKind.ClockId, ArgKind.Dec, ArgKind.Pointer, ArgKind.Pointer]),
        [231] = ("exit_group", [ArgKind.Dec]),
        [234] = ("tgkill", [ArgKind.Dec, ArgKind.Dec, ArgKind.Signal]),
        [257] = ("openat", [ArgKind.DirFd, ArgKind.Path, ArgKind.OpenFlags]),
        [262] = ("newfstatat", [ArgKind.DirFd, ArgKind.Path, ArgKind.StatOut, ArgKind.AtFlags]),
        [267] = ("readlinkat", [ArgKind.DirFd, ArgKind.Path, ArgKind.OutString, ArgKind.Dec]),
        [269] = ("faccessat", [ArgKind.DirFd, ArgKind.Path, ArgKind.AccessMode]),
        [273] = ("set_robust_list", [ArgKind.Pointer, ArgKind.Dec]),
        [292] = ("dup3", [ArgKind.Fd, ArgKind.Fd, ArgKind.OpenFlags]),
        [302] = ("prlimit64", [ArgKind.Dec, ArgKind.Resource, ArgKind.RlimitIn, ArgKind.RlimitOut]),
        [318] = ("getrandom", [ArgKind.OutBufferHex, ArgKind.Dec, ArgKind.GetrandomFlags]),
        [334] = ("rseq", [ArgKind.Pointer, ArgKind.Hex, ArgKind.Dec, ArgKind.Hex]),
        [439] = ("faccessat2", [ArgKind.DirFd, ArgKind.Path, ArgKind.AccessMode, ArgKind.AtFlags]),
    };

    readonly SyscallArguments call;
    readonly UserMemory user;
    readonly string?[] inputs = new string?[6];

    StraceFormatter(SyscallArguments call, UserMemory user)
    {
        this.call = call;
        this.user = user;
    }

    /// <summary>Captures what must be read before the call runs (paths, written buffers).</summary>
    public static StraceFormatter Begin(in SyscallArguments call, UserMemory user)
    {
        var formatter = new StraceFormatter(call, user);
        if (Signatures.TryGetValue(call.Number, out var signature))
        {
            for (int i = 0; i < signature.Args.Length; i++)
            {
                formatter.inputs[i] = signature.Args[i] switch
                {
                    ArgKind.Path => formatter.QuotedPath(call[i]),
                    ArgKind.InBuffer => formatter.QuotedBuffer(call[i], (long)call[i + 1]),
                    ArgKind.Iovec => formatter.Iovecs(call[i], (int)call[i + 1]),
                    ArgKind.RlimitIn => formatter.Rlimit(call[i]),
                    _ => null,
                };
            }
        }
        return formatter;
    }

    /// <summary>The complete line (with newline, and the exit line when the call ended the process).</summary>
    public string Finish(long result, bool exited, int? exitStatus)
    {
        var line = new StringBuilder();
        bool known = Signatures.TryGetValue(call.Number, out var signature);
        line.Append(known ? signature.Name : $"syscall_0x{call.Number:x}").Append('(');
        int count = known ? signature.Args.Length : 6;
        for (int i = 0; i < count; i++)
        {
            if (i > 0) line.Append(", ");
            line.Append(known ? FormatArgument(signature.Args[i], i, result) : Hex(call[i]));
        }
        if (known && signature.Name is "openat" or "open" && ((int)call[count - 1] & 0x40) != 0)
            line.Append(", 0").Append(Convert.ToString((long)call[count] & 0xfff, 8));
        line.Append(')');

        if (exited)
        {
            Pad(line);
            line.Append("= ?\n");
            if (exitStatus is { } status) line.Append($"+++ exited with {status} +++\n");
            return line.ToString();
        }
        Pad(line);
        line.Append("= ");
        if (result < 0 && result >= -4095)
        {
            var errno = (Errno)(-result);
            line.Append($"-1 {(Enum.IsDefined(errno) ? errno.ToString() : $"E{-result}")} ({ErrnoText.Describe(errno)})");
        }
        else if (call.Number is 9 or 12)
        {
            line.Append($"0x{result:x}");
        }
        else
        {
            line.Append(result);
        }
        return line.Append('\n').ToString();
    }

    static void Pad(StringBuilder line)
    {
        if (line.Length < ResultColumn) line.Append(' ', ResultColumn - line.Length);
        else line.Append(' ');
    }

    string FormatArgument(ArgKind kind, int index, long result)
    {
        ulong value = call[index];
        return kind switch
        {
            ArgKind.Dec => ((long)value).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ArgKind.Hex => Hex(value),
            ArgKind.Pointer => Pointer(value),
            ArgKind.Fd => ((int)value).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ArgKind.DirFd => (int)value == -100 ? "AT_FDCWD" : ((int)value).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ArgKind.Path or ArgKind.InBuffer or ArgKind.Iovec or ArgKind.RlimitIn => inputs[index] ?? Pointer(value),
            ArgKind.RlimitOut => result == 0 ? Rlimit(value) : Pointer(value),
            ArgKind.StatOut => result == 0 ? Stat(value) : Pointer(value),
            ArgKind.OutBufferHex => result >= 0 ? QuotedBuffer(value, result, hex: true) : $"0x{value:x}",
            ArgKind.GetrandomFlags => Flags((int)value, "0", [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]),
            ArgKind.MremapFlags => Flags((int)value, "0", [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")]),
            ArgKind.OutBuffer => result >= 0 ? QuotedBuffer(value, result) : $"0x{value:x}",
            ArgKind.OutString => result >= 0 ? QuotedBuffer(value, result, limit: false) : $"0x{value:x}",
            ArgKind.OpenFlags => OpenFlags((int)value),
            ArgKind.Octal => "0" + Convert.ToString((long)value & 0xfff, 8),
            ArgKind.Prot => Flags((int)value, "PROT_NONE", [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]),
            ArgKind.MapFlags => MapFlags((int)value),
            ArgKind.Whence => Named((int)value, ["SEEK_SET", "SEEK_CUR", "SEEK_END", "SEEK_DATA", "SEEK_HOLE"]),
            ArgKind.IoctlRequest => value switch { 0x5401 => "TCGETS", 0x5413 => "TIOCGWINSZ", _ => $"0x{value:x}" },
            ArgKind.Signal => SignalName((int)value),
            ArgKind.SigHow => Named((int)value, ["SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK"]),
            ArgKind.ArchPrctlCode => (int)value switch
            {
                0x1001 => "ARCH_SET_GS",
                0x1002 => "ARCH_SET_FS",
                0x1003 => "ARCH_GET_FS",
                0x1004 => "ARCH_GET_GS",
                0x1011 => "ARCH_GET_CPUID",
                0x1012 => "ARCH_SET_CPUID",
                _ => $"0x{value:x}",
            },
            ArgKind.ClockId => Named((int)value, ["CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID", "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME"]),
            ArgKind.AtFlags => Flags((int)value, "0", [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_EACCESS"), (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")]),
            ArgKind.AccessMode => Flags((int)value, "F_OK", [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]),
            ArgKind.Resource => Named((int)value, ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]),
            ArgKind.Advice => (int)value switch
            {
                0 => "MADV_NORMAL",
                1 => "MADV_RANDOM",
                2 => "MADV_SEQUENTIAL",
                3 => "MADV_WILLNEED",
                4 => "MADV_DONTNEED",
                8 => "MADV_FREE",
                14 => "MADV_HUGEPAGE",
                15 => "MADV_NOHUGEPAGE",
                25 => "MADV_COLLAPSE",
                _ => ((int)value).ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
            _ => $"0x{value:x}",
        };
    }

    /// <summary>C's %#lx, as strace prints raw values: "0" for zero, "0x..." otherwise.</summary>
    static string Hex(ulong value) => value == 0 ? "0" : $"0x{value:x}";

    static string Named(int value, string[] names) =>
        (uint)value < (uint)names.Length ? names[value] : value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    static string Flags(int value, string zero, (int Bit, string Name)[] names)
    {
        if (value == 0) return zero;
        var parts = new List<string>();
        foreach (var (bit, name) in names)
        {
            if ((value & bit) != 0)
            {
                parts.Add(name);
                value &= ~bit;
            }
        }
        if (value != 0) parts.Add($"0x{value:x}");
        return string.Join('|', parts);
    }

    static string OpenFlags(int value)
    {
        string access = (value & 3) switch { 0 => "O_RDONLY", 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_ACCMODE" };
        string rest = Flags(value & ~3, "", [
            (0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"), (0x800, "O_NONBLOCK"),
            (0x1000, "O_DSYNC"), (0x2000, "O_ASYNC"), (0x4000, "O_DIRECT"), (0x8000, "O_LARGEFILE"), (0x10000, "O_DIRECTORY"),
            (0x20000, "O_NOFOLLOW"), (0x40000, "O_NOATIME"), (0x80000, "O_CLOEXEC"), (0x200000, "O_PATH")]);
        return rest.Length == 0 ? access : access + "|" + rest;
    }

    static string MapFlags(int value)
    {
        string type = (value & 0xf) switch { 1 => "MAP_SHARED", 2 => "MAP_PRIVATE", 3 => "MAP_SHARED_VALIDATE", int t => $"0x{t:x}" };
        string rest = Flags(value & ~0xf, "", [
            (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
            (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"),
            (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE")]);
        return rest.Length == 0 ? type : type + "|" + rest;
    }

    static readonly string[] SignalNames =
    [
        "0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
        "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU",
        "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    ];

    /// <summary>The signal's name (SIGSEGV), SIGRTMIN+n for real-time signals.</summary>
    public static string SignalName(int signal) =>
        (uint)signal < (uint)SignalNames.Length ? SignalNames[signal] : signal is >= 32 and <= 64 ? $"SIGRT_{signal - 32}" : signal.ToString(System.Globalization.CultureInfo.InvariantCulture);

    static string Pointer(ulong value) => value == 0 ? "NULL" : $"0x{value:x}";

    /// <summary>strace's struct rlimit: RLIM64_INFINITY, multiples of 1024 as N*1024, else decimal.</summary>
    string Rlimit(ulong address)
    {
        if (address == 0) return "NULL";
        if (!user.TryReadUInt64(address, out ulong current) || !user.TryReadUInt64(address + 8, out ulong max)) return Pointer(address);
        static string Limit(ulong v) => v == ulong.MaxValue ? "RLIM64_INFINITY" : v != 0 && v % 1024 == 0 ? $"{v / 1024}*1024" : v.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return $"{{rlim_cur={Limit(current)}, rlim_max={Limit(max)}}}";
    }

    /// <summary>strace's abbreviated struct stat: the type and mode, then st_rdev for devices or st_size otherwise.</summary>
    string Stat(ulong address)
    {
        var stat = new byte[144];
        if (!user.TryRead(address, stat)) return Pointer(address);
        uint mode = BitConverter.ToUInt32(stat, 24);
        string type = (mode & 0xf000) switch
        {
            0x1000 => "S_IFIFO",
            0x2000 => "S_IFCHR",
            0x4000 => "S_IFDIR",
            0x6000 => "S_IFBLK",
            0x8000 => "S_IFREG",
            0xa000 => "S_IFLNK",
            0xc000 => "S_IFSOCK",
            _ => "0",
        };
        string permissions = "0" + Convert.ToString(mode & 0xfff, 8).PadLeft(3, '0');
        if ((mode & 0xf000) is 0x2000 or 0x6000)
        {
            ulong rdev = BitConverter.ToUInt64(stat, 40);
            ulong major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfffUL), minor = (rdev & 0xff) | ((rdev >> 12) & ~0xffUL);
            return $"{{st_mode={type}|{permissions}, st_rdev=makedev(0x{major:x}, 0x{minor:x}), ...}}";
        }
        return $"{{st_mode={type}|{permissions}, st_size={BitConverter.ToInt64(stat, 48)}, ...}}";
    }

    /// <summary>The line strace prints for the execve that started the process.</summary>
    public static string Execve(string path, IReadOnlyList<string> arguments, ulong environment, int environmentCount)
    {
        var line = new StringBuilder("execve(");
        line.Append(Quote(Encoding.UTF8.GetBytes(path), truncated: false, hex: false)).Append(", [");
        line.AppendJoin(", ", arguments.Select(a => Quote(Encoding.UTF8.GetBytes(a), truncated: false, hex: false)));
        line.Append($"], 0x{environment:x} /* {environmentCount} vars */)");
        Pad(line);
        return line.Append("= 0\n").ToString();
    }

    string QuotedPath(ulong address) =>
        user.TryReadString(address, UserMemory.PathMax, out string path) == 0 ? Quote(Encoding.UTF8.GetBytes(path), truncated: false, hex: false) : $"0x{address:x}";

    string QuotedBuffer(ulong address, long length, bool limit = true, bool hex = false)
    {
        int shown = (int)Math.Min(Math.Max(length, 0), limit ? MaxStringLength : UserMemory.PathMax);
        var bytes = new byte[shown];
        return user.TryRead(address, bytes) ? Quote(bytes, truncated: length > shown, hex) : $"0x{address:x}";
    }

    string Iovecs(ulong address, int count)
    {
        if (count is < 0 or > 1024) return $"0x{address:x}";
        var parts = new List<string>();
        for (int i = 0; i < count; i++)
        {
            if (!user.TryReadUInt64(address + (ulong)i * 16, out ulong iovBase) || !user.TryReadUInt64(address + (ulong)i * 16 + 8, out ulong iovLength))
                return $"0x{address:x}";
            parts.Add($"{{iov_base={QuotedBuffer(iovBase, (long)iovLength)}, iov_len={iovLength}}}");
        }
        return "[" + string.Join(", ", parts) + "]";
    }

    /// <summary>
    /// strace's string quoting: C escapes, other unprintable bytes in octal, "..." after a cut
    /// string; with <paramref name="hex"/> every byte as \xNN (QUOTE_FORCE_HEX).
    /// </summary>
    static string Quote(ReadOnlySpan<byte> bytes, bool truncated, bool hex)
    {
        var text = new StringBuilder("\"");
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            if (hex)
            {
                text.Append($"\\x{b:x2}");
                continue;
            }
            switch (b)
            {
                case (byte)'"': text.Append("\\\""); break;
                case (byte)'\\': text.Append("\\\\"); break;
                case (byte)'\n': text.Append("\\n"); break;
                case (byte)'\t': text.Append("\\t"); break;
                case (byte)'\r': text.Append("\\r"); break;
                case (byte)'\f': text.Append("\\f"); break;
                case (byte)'\v': text.Append("\\v"); break;
                default:
                    if (b is >= 0x20 and < 0x7f)
                    {
                        text.Append((char)b);
                    }
                    else
                    {
                        bool nextIsOctalDigit = i + 1 < bytes.Length && bytes[i + 1] is >= (byte)'0' and <= (byte)'7';
                        text.Append('\\').Append(nextIsOctalDigit ? Convert.ToString(b, 8).PadLeft(3, '0') : Convert.ToString(b, 8));
                    }
                    break;
            }
        }
        text.Append('"');
        if (truncated) text.Append("...");
        return text.ToString();
    }
}
