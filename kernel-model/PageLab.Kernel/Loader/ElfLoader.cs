using System.Text;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Loader;

/// <summary>User and group ids a process runs with (AT_UID..AT_EGID, getuid...).</summary>
public readonly record struct Credentials(uint Uid, uint Euid, uint Gid, uint Egid);

/// <summary>What execve is given and what the kernel adds to the auxiliary vector.</summary>
public sealed record ExecParameters
{
    /// <summary>The path passed to execve: AT_EXECFN, and the string at the top of the stack.</summary>
    public required string ExecFileName { get; init; }
    public required IReadOnlyList<string> Arguments { get; init; }
    public required IReadOnlyList<string> Environment { get; init; }

    /// <summary>The 16 bytes AT_RANDOM points to (seeded, so runs are reproducible).</summary>
    public required byte[] RandomBytes { get; init; }

    public Credentials Credentials { get; init; }

    /// <summary>AT_HWCAP: CPUID.1:EDX of the emulated CPU.</summary>
    public ulong HardwareCapabilities { get; init; }

    /// <summary>AT_HWCAP2 (bit 1: FSGSBASE usable from user mode).</summary>
    public ulong HardwareCapabilities2 { get; init; }

    /// <summary>AT_MINSIGSTKSZ: the signal frame size of the emulated CPU's register state.</summary>
    public ulong MinSignalStackSize { get; init; } = DefaultMinSignalStackSize;

    /// <summary>
    /// get_sigframe_size() for a CPU without XSAVE, whose signal frame carries the 512-byte FXSAVE area:
    /// sizeof(struct rt_sigframe) 440 + frame padding 15 + FXSAVE 512 + xsave padding 63, rounded up to 16.
    /// </summary>
    public const ulong DefaultMinSignalStackSize = 1040;
}

/// <summary>Where a loaded program starts, and what the loader decided.</summary>
public sealed record LoadedProgram(ulong Entry, ulong StackPointer, ulong LoadBias, ulong ProgramHeaderAddress, ElfSegment? Tls, ulong AuxvAddress);

/// <summary>
/// Linux's load_elf_binary for static executables: maps the PT_LOAD segments as private file
/// mappings with bss, sets the brk, builds the stack VMA and the initial stack exactly as
/// create_elf_tables lays it out (strings at the top, then platform, AT_RANDOM bytes, auxv,
/// envp, argv, argc at a 16-byte aligned stack pointer).
/// </summary>
public static class ElfLoader
{
    /// <summary>ELF_ET_DYN_BASE on x86-64: two thirds of the 47-bit user window (0x555555554aaa before page alignment).</summary>
    public const ulong EtDynBase = (AddressSpace.TaskSize / 3 * 2) & ~PagingConstants.PageMask;

    /// <summary>setup_arg_pages grows the new stack by 128 KiB below the argument pages.</summary>
    const ulong StackExpansion = 128 << 10;

    /// <summary>MAX_ARG_STRLEN: one argument or environment string may be at most 32 pages.</summary>
    const int MaxArgumentLength = 32 * 4096;

    const string Platform = "x86_64";

    /// <summary>auxv tags (include/uapi/linux/auxvec.h, arch/x86/include/uapi/asm/auxvec.h).</summary>
    public enum AuxTag : ulong
    {
        Null = 0,
        Phdr = 3,
        Phent = 4,
        Phnum = 5,
        Pagesz = 6,
        Base = 7,
        Flags = 8,
        Entry = 9,
        Uid = 11,
        Euid = 12,
        Gid = 13,
        Egid = 14,
        Platform = 15,
        Hwcap = 16,
        Clktck = 17,
        Secure = 23,
        Random = 25,
        Hwcap2 = 26,
        RseqFeatureSize = 27,
        RseqAlign = 28,
        Execfn = 31,
        MinSigStkSz = 51,
    }

    /// <summary>offsetof(struct rseq, end): the rseq fields this kernel fills in.</summary>
    public const ulong RseqFeatureSize = 28;

    /// <summary>__alignof__(struct rseq).</summary>
    public const ulong RseqAlign = 32;

    /// <summary>Loads <paramref name="image"/> from <paramref name="file"/> into an empty address space.</summary>
    /// <exception cref="ElfLoadException">The image cannot be placed, or the arguments are too large.</exception>
    public static LoadedProgram Load(UserMemory user, IMappableFile file, ElfImage image, ExecParameters parameters)
    {
        var space = user.Space;
        var loads = image.LoadSegments.ToArray();
        ulong loadBias = 0;
        if (image.IsPositionIndependent)
        {
            ulong alignment = loads.Select(s => s.Align).Where(a => a > PagingConstants.PageSize && (a & (a - 1)) == 0).DefaultIfEmpty(PagingConstants.PageSize).Max();
            loadBias = (EtDynBase - (loads[0].VirtualAddress & ~PagingConstants.PageMask)) & ~(alignment - 1);
        }

        ulong highestEnd = 0;
        foreach (var segment in loads)
        {
            MapSegment(user, file, segment, loadBias);
            highestEnd = Math.Max(highestEnd, segment.VirtualAddress + loadBias + segment.MemorySize);
        }
        space.StartBrk = space.Brk = AddressSpace.PageAlignUp(highestEnd);

        ulong phdrAddress = 0;
        foreach (var segment in loads)
        {
            if (segment.Offset <= image.ProgramHeaderOffset && image.ProgramHeaderOffset < segment.Offset + segment.FileSize)
                phdrAddress = image.ProgramHeaderOffset - segment.Offset + segment.VirtualAddress + loadBias;
        }

        ulong entry = image.Entry + loadBias;
        var (stackPointer, auxvAddress) = BuildStack(user, image, parameters, entry, phdrAddress);
        var tls = image.Tls is { } t ? t with { VirtualAddress = t.VirtualAddress + loadBias } : (ElfSegment?)null;
        return new LoadedProgram(entry, stackPointer, loadBias, phdrAddress, tls, auxvAddress);
    }

    /// <summary>elf_load: the file part as a private mapping, the partial page after p_filesz zeroed, the rest anonymous.</summary>
    static void MapSegment(UserMemory user, IMappableFile file, ElfSegment segment, ulong loadBias)
    {
        var space = user.Space;
        ulong address = segment.VirtualAddress + loadBias;
        ulong pageOffset = address & PagingConstants.PageMask;
        ulong start = address - pageOffset;
        var protection = segment.Protection;
        ulong zeroStart = start;
        if (segment.FileSize > 0)
        {
            ulong fileEnd = AddressSpace.PageAlignUp(address + segment.FileSize);
            var flags = (protection & Protection.Write) != 0 ? VmaFlags.Account : VmaFlags.None;
            space.Map(start, fileEnd, protection, flags, file, (long)(segment.Offset - pageOffset));
            zeroStart = address + segment.FileSize;
            if (segment.MemorySize > segment.FileSize && (zeroStart & PagingConstants.PageMask) != 0)
            {
                // padzero: clear the tail of the last file page; a failure matters only for a writable segment.
                var zeros = new byte[PagingConstants.PageSize - (zeroStart & PagingConstants.PageMask)];
                if (!user.TryWrite(zeroStart, zeros) && (protection & Protection.Write) != 0)
                    throw new ElfLoadException($"cannot clear the bss start at 0x{zeroStart:x}");
            }
        }
        ulong anonymousStart = AddressSpace.PageAlignUp(zeroStart);
        ulong anonymousEnd = AddressSpace.PageAlignUp(address + segment.MemorySize);
        if (anonymousEnd > anonymousStart)
        {
            // vm_brk_flags: bss beyond the file is anonymous read-write memory (executable if the segment is).
            space.Map(anonymousStart, anonymousEnd, Protection.Read | Protection.Write | (protection & Protection.Exec), VmaFlags.Account, null, 0);
        }
    }

    static (ulong StackPointer, ulong AuxvAddress) BuildStack(UserMemory user, ElfImage image, ExecParameters parameters, ulong entry, ulong phdrAddress)
    {
        var space = user.Space;
        byte[] execFn = CString(parameters.ExecFileName);
        var arguments = parameters.Arguments.Select(CString).ToArray();
        var environment = parameters.Environment.Select(CString).ToArray();
        long stringBytes = execFn.Length + arguments.Sum(a => (long)a.Length) + environment.Sum(e => (long)e.Length);
        if (arguments.Concat(environment).Any(s => s.Length > MaxArgumentLength) || stringBytes > (long)(AddressSpace.StackLimit / 4))
            throw new ElfLoadException("argument list too long (E2BIG)");

        // bprm->p starts one pointer below the top; execfn, then envp and argv strings (last first) go downwards.
        ulong p = AddressSpace.StackTop - 8;
        ulong execFnAddress = p -= (ulong)execFn.Length;
        var environmentAddresses = new ulong[environment.Length];
        for (int i = environment.Length - 1; i >= 0; i--)
            environmentAddresses[i] = p -= (ulong)environment[i].Length;
        var argumentAddresses = new ulong[arguments.Length];
        for (int i = arguments.Length - 1; i >= 0; i--)
            argumentAddresses[i] = p -= (ulong)arguments[i].Length;

        ulong stackStart = (p & ~PagingConstants.PageMask) - StackExpansion;
        var stackProtection = Protection.Read | Protection.Write | (image.ExecutableStack ? Protection.Exec : 0);
        space.Map(stackStart, AddressSpace.StackTop, stackProtection, VmaFlags.GrowsDown | VmaFlags.Account, null, 0);

        bool ok = user.TryWrite(execFnAddress, execFn);
        for (int i = 0; i < environment.Length; i++)
            ok &= user.TryWrite(environmentAddresses[i], environment[i]);
        for (int i = 0; i < arguments.Length; i++)
            ok &= user.TryWrite(argumentAddresses[i], arguments[i]);

        // create_elf_tables
        p &= ~0xfUL;
        byte[] platform = CString(Platform);
        ulong platformAddress = p -= (ulong)platform.Length;
        ok &= user.TryWrite(platformAddress, platform);
        ulong randomAddress = p -= 16;
        ok &= user.TryWrite(randomAddress, parameters.RandomBytes.AsSpan(0, 16));

        var credentials = parameters.Credentials;
        var auxv = new (AuxTag Tag, ulong Value)[]
        {
            (AuxTag.MinSigStkSz, parameters.MinSignalStackSize),
            (AuxTag.Hwcap, parameters.HardwareCapabilities),
            (AuxTag.Pagesz, PagingConstants.PageSize),
            (AuxTag.Clktck, 100),
            (AuxTag.Phdr, phdrAddress),
            (AuxTag.Phent, ElfImage.ProgramHeaderSize),
            (AuxTag.Phnum, (ulong)image.Segments.Count),
            (AuxTag.Base, 0),
            (AuxTag.Flags, 0),
            (AuxTag.Entry, entry),
            (AuxTag.Uid, credentials.Uid),
            (AuxTag.Euid, credentials.Euid),
            (AuxTag.Gid, credentials.Gid),
            (AuxTag.Egid, credentials.Egid),
            (AuxTag.Secure, 0),
            (AuxTag.Random, randomAddress),
            (AuxTag.Hwcap2, parameters.HardwareCapabilities2),
            (AuxTag.Execfn, execFnAddress),
            (AuxTag.Platform, platformAddress),
            (AuxTag.RseqFeatureSize, RseqFeatureSize),
            (AuxTag.RseqAlign, RseqAlign),
            (AuxTag.Null, 0),
        };
        ulong items = (ulong)(arguments.Length + 1 + environment.Length + 1 + 1);
        ulong sp = (p - (ulong)auxv.Length * 16 - items * 8) & ~0xfUL;

        var table = new List<ulong>((int)items + auxv.Length * 2) { (ulong)arguments.Length };
        table.AddRange(argumentAddresses);
        table.Add(0);
        table.AddRange(environmentAddresses);
        table.Add(0);
        ulong auxvAddress = sp + (ulong)table.Count * 8;
        foreach (var (tag, value) in auxv)
        {
            table.Add((ulong)tag);
            table.Add(value);
        }
        var bytes = new byte[table.Count * 8];
        for (int i = 0; i < table.Count; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), table[i]);
        ok &= user.TryWrite(sp, bytes);
        if (!ok)
            throw new ElfLoadException("out of memory while building the initial stack");
        space.StartStack = sp;
        return (sp, auxvAddress);
    }

    static byte[] CString(string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        var bytes = new byte[length + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        return bytes;
    }
}
