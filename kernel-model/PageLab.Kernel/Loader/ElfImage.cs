using System.Buffers.Binary;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Loader;

/// <summary>
/// A binary the loader refuses, with the reason a user can act on. execve would fail with
/// ENOEXEC (or ELIBBAD, EINVAL); the CLI reports it and exits as a shell does (126).
/// </summary>
public sealed class ElfLoadException(string message) : Exception(message);

/// <summary>One program header (Elf64_Phdr).</summary>
public readonly record struct ElfSegment(uint Type, uint Flags, ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize, ulong Align)
{
    public const uint PtLoad = 1;
    public const uint PtInterp = 3;
    public const uint PtPhdr = 6;
    public const uint PtTls = 7;
    public const uint PtGnuStack = 0x6474e551;

    public const uint FlagExecute = 1;
    public const uint FlagWrite = 2;
    public const uint FlagRead = 4;

    /// <summary>The PROT_* bits of PF_R/PF_W/PF_X.</summary>
    public Protection Protection =>
        ((Flags & FlagRead) != 0 ? Protection.Read : 0) |
        ((Flags & FlagWrite) != 0 ? Protection.Write : 0) |
        ((Flags & FlagExecute) != 0 ? Protection.Exec : 0);
}

/// <summary>
/// The ELF64 header and program headers of an x86-64 executable, validated as Linux's
/// load_elf_binary does before it maps anything. Headers are read by hand rather than with
/// ELFSharp: the loader needs only the ELF header and program headers, must reject every
/// malformed field with a message (ELFSharp throws assorted host exceptions and parses sections
/// the loader never uses), and must check offsets and sizes without overflow.
/// </summary>
public sealed class ElfImage
{
    public const int HeaderSize = 64;
    public const int ProgramHeaderSize = 56;
    public const ushort TypeExecutable = 2;
    public const ushort TypeSharedObject = 3;
    public const ushort MachineX86_64 = 62;

    /// <summary>Linux refuses program header tables larger than ELF_MIN_ALIGN (one 4 KiB page).</summary>
    const int MaxProgramHeaderBytes = 4096;

    ElfImage(ushort type, ulong entry, ulong programHeaderOffset, ElfSegment[] segments, string? interpreter)
    {
        Type = type;
        Entry = entry;
        ProgramHeaderOffset = programHeaderOffset;
        Segments = segments;
        Interpreter = interpreter;
    }

    /// <summary>ET_EXEC or ET_DYN.</summary>
    public ushort Type { get; }

    /// <summary>True for a position-independent executable (ET_DYN), loaded at a chosen base.</summary>
    public bool IsPositionIndependent => Type == TypeSharedObject;

    public ulong Entry { get; }
    public ulong ProgramHeaderOffset { get; }
    public IReadOnlyList<ElfSegment> Segments { get; }

    /// <summary>The PT_INTERP path of a dynamically linked binary (refused by <see cref="Parse"/>, kept for the message).</summary>
    public string? Interpreter { get; }

    public IEnumerable<ElfSegment> LoadSegments => Segments.Where(s => s.Type == ElfSegment.PtLoad);

    /// <summary>PT_TLS, the initial thread-local image that libc copies for each thread.</summary>
    public ElfSegment? Tls => Segments.Where(s => s.Type == ElfSegment.PtTls).Select(s => (ElfSegment?)s).FirstOrDefault();

    /// <summary>PT_GNU_STACK with PF_X asks for an executable stack; without the header x86-64 Linux keeps it non-executable.</summary>
    public bool ExecutableStack => Segments.Any(s => s.Type == ElfSegment.PtGnuStack && (s.Flags & ElfSegment.FlagExecute) != 0);

    /// <summary>Parses and validates; every defect is an <see cref="ElfLoadException"/> naming the field.</summary>
    public static ElfImage Parse(IMappableFile file)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        int read = file.ReadAt(0, header);
        if (read < 4 || header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
            throw new ElfLoadException("not an ELF file (bad magic)");
        if (read < HeaderSize)
            throw new ElfLoadException($"truncated ELF header: the file has {file.Length} bytes, the header needs {HeaderSize}");
        if (header[4] != 2)
            throw new ElfLoadException(header[4] == 1 ? "wrong ELF class: 32-bit (ELFCLASS32); PageLab runs x86-64 binaries" : $"invalid ELF class {header[4]}");
        if (header[5] != 1)
            throw new ElfLoadException("wrong byte order: not little-endian (ELFDATA2LSB)");
        if (header[6] != 1)
            throw new ElfLoadException($"unsupported ELF version {header[6]}");

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(header[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(header[18..]);
        ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(header[24..]);
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(header[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(header[54..]);
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(header[56..]);

        if (type is not (TypeExecutable or TypeSharedObject))
            throw new ElfLoadException($"ELF type {type} is not an executable (ET_EXEC) or position-independent executable (ET_DYN)");
        if (machine != MachineX86_64)
            throw new ElfLoadException($"wrong machine {machine}: PageLab runs x86-64 (EM_X86_64 = 62) binaries");
        if (phentsize != ProgramHeaderSize)
            throw new ElfLoadException($"program header entry size {phentsize}, expected {ProgramHeaderSize}");
        int tableBytes = phnum * ProgramHeaderSize;
        if (phnum == 0 || tableBytes > MaxProgramHeaderBytes)
            throw new ElfLoadException($"{phnum} program headers: Linux accepts 1 to {MaxProgramHeaderBytes / ProgramHeaderSize}");
        if (phoff > (ulong)file.Length || (ulong)tableBytes > (ulong)file.Length - phoff)
            throw new ElfLoadException($"program headers at offset 0x{phoff:x} (+{tableBytes} bytes) lie beyond the end of the file ({file.Length} bytes)");

        var table = new byte[tableBytes];
        file.ReadAt((long)phoff, table);
        var segments = new ElfSegment[phnum];
        for (int i = 0; i < phnum; i++)
        {
            var raw = table.AsSpan(i * ProgramHeaderSize, ProgramHeaderSize);
            segments[i] = new ElfSegment(
                Type: BinaryPrimitives.ReadUInt32LittleEndian(raw),
                Flags: BinaryPrimitives.ReadUInt32LittleEndian(raw[4..]),
                Offset: BinaryPrimitives.ReadUInt64LittleEndian(raw[8..]),
                VirtualAddress: BinaryPrimitives.ReadUInt64LittleEndian(raw[16..]),
                FileSize: BinaryPrimitives.ReadUInt64LittleEndian(raw[32..]),
                MemorySize: BinaryPrimitives.ReadUInt64LittleEndian(raw[40..]),
                Align: BinaryPrimitives.ReadUInt64LittleEndian(raw[48..]));
        }

        string? interpreter = null;
        foreach (var segment in segments)
        {
            if (segment.Type == ElfSegment.PtInterp)
                interpreter = ReadInterpreter(file, segment);
            else if (segment.Type == ElfSegment.PtLoad)
                ValidateLoad(file, segment, type == TypeExecutable);
        }
        if (interpreter is not null)
            throw new ElfLoadException($"dynamically linked: the binary needs the interpreter {interpreter}; PageLab runs static binaries (link with -static or -static-pie)");
        if (!segments.Any(s => s.Type == ElfSegment.PtLoad))
            throw new ElfLoadException("no loadable segment (PT_LOAD)");
        return new ElfImage(type, entry, phoff, segments, interpreter);
    }

    static string ReadInterpreter(IMappableFile file, ElfSegment segment)
    {
        const int PathMax = 4096;
        if (segment.FileSize is 0 or > PathMax || segment.Offset > (ulong)file.Length || segment.FileSize > (ulong)file.Length - segment.Offset)
            throw new ElfLoadException("invalid PT_INTERP (dynamically linked binary with a corrupt interpreter path)");
        var bytes = new byte[segment.FileSize];
        file.ReadAt((long)segment.Offset, bytes);
        int end = Array.IndexOf(bytes, (byte)0);
        return System.Text.Encoding.UTF8.GetString(bytes, 0, end < 0 ? bytes.Length : end);
    }

    static void ValidateLoad(IMappableFile file, ElfSegment segment, bool fixedAddress)
    {
        const ulong PageMask = 4095;
        string where = $"PT_LOAD at 0x{segment.VirtualAddress:x}";
        if (segment.FileSize > segment.MemorySize)
            throw new ElfLoadException($"{where}: file size 0x{segment.FileSize:x} exceeds memory size 0x{segment.MemorySize:x}");
        if (segment.Offset > (ulong)file.Length || segment.FileSize > (ulong)file.Length - segment.Offset)
            throw new ElfLoadException($"{where}: file range 0x{segment.Offset:x}+0x{segment.FileSize:x} lies beyond the end of the file ({file.Length} bytes)");
        if ((segment.Offset & PageMask) != (segment.VirtualAddress & PageMask))
            throw new ElfLoadException($"{where}: offset 0x{segment.Offset:x} and address are not congruent modulo the page size");
        if (segment.VirtualAddress >= Mm.AddressSpace.TaskSize || segment.MemorySize > Mm.AddressSpace.TaskSize - segment.VirtualAddress)
            throw new ElfLoadException($"{where}: memory size 0x{segment.MemorySize:x} reaches beyond user space");
        if (fixedAddress && segment.MemorySize > 0 && segment.VirtualAddress < Mm.AddressSpace.MmapMinAddress)
            throw new ElfLoadException($"{where}: below vm.mmap_min_addr (0x{Mm.AddressSpace.MmapMinAddress:x}); the kernel refuses to map it (EPERM)");
    }
}
