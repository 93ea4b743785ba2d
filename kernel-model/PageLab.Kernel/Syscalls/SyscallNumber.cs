namespace PageLab.Kernel.Syscalls;

/// <summary>Linux x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) PageLab knows by name.</summary>
public enum SyscallNumber
{
    Read = 0,
    Write = 1,
    Open = 2,
    Close = 3,
    Stat = 4,
    Fstat = 5,
    Lstat = 6,
    Lseek = 8,
    Mmap = 9,
    Mprotect = 10,
    Munmap = 11,
    Brk = 12,
    RtSigaction = 13,
    RtSigprocmask = 14,
    Ioctl = 16,
    Pread64 = 17,
    Readv = 19,
    Writev = 20,
    Access = 21,
    SchedYield = 24,
    Mremap = 25,
    Madvise = 28,
    Dup = 32,
    Dup2 = 33,
    Nanosleep = 35,
    Getpid = 39,
    Exit = 60,
    Kill = 62,
    Uname = 63,
    Fcntl = 72,
    Getcwd = 79,
    Readlink = 89,
    Gettimeofday = 96,
    Getrlimit = 97,
    Sysinfo = 99,
    Getuid = 102,
    Getgid = 104,
    Geteuid = 107,
    Getegid = 108,
    Getppid = 110,
    Sigaltstack = 131,
    Prctl = 157,
    ArchPrctl = 158,
    Gettid = 186,
    Time = 201,
    Futex = 202,
    SchedGetaffinity = 204,
    Getdents64 = 217,
    SetTidAddress = 218,
    ClockGettime = 228,
    ClockGetres = 229,
    ClockNanosleep = 230,
    ExitGroup = 231,
    Tgkill = 234,
    Openat = 257,
    Newfstatat = 262,
    Readlinkat = 267,
    Faccessat = 269,
    SetRobustList = 273,
    Dup3 = 292,
    Prlimit64 = 302,
    Getrandom = 318,
    Rseq = 334,
    PidfdOpen = 434,
    Faccessat2 = 439,
    ProcessMadvise = 440,
}

/// <summary>The six argument registers of a system call (RDI, RSI, RDX, R10, R8, R9) and its number (RAX).</summary>
public readonly record struct SyscallArguments(long Number, ulong A0, ulong A1, ulong A2, ulong A3, ulong A4, ulong A5)
{
    public ulong this[int index] => index switch
    {
        0 => A0,
        1 => A1,
        2 => A2,
        3 => A3,
        4 => A4,
        _ => A5,
    };

    /// <summary>An int argument: the kernel reads only the low 32 bits of the register.</summary>
    public int Int(int index) => (int)this[index];
}
