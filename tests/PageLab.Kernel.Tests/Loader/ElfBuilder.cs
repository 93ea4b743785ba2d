using System.Buffers.Binary;
using PageLab.Kernel.Loader;

namespace PageLab.Kernel.Tests.Loader;

/// <summary>Builds small x86-64 ELF executables in memory: the header, program headers, and segment bytes at page-congruent offsets.</summary>
sealed class ElfBuilder
{
    readonly List<(uint Type, uint Flags, ulong Address, byte[] Data, ulong MemorySize)> segments = [];

    public ushort Type { get; set; } = ElfImage.TypeExecutable;
    public ushort Machine { get; set; } = ElfImage.MachineX86_64;
    public ulong Entry { get; set; } = 0x40_1000;

    public ElfBuilder Segment(uint type, uint flags, ulong address, byte[] data, ulong memorySize)
    {
        segments.Add((type, flags, address, data, memorySize));
        return this;
    }

    /// <summary>The two segments a minimal static binary has: headers + text, then data + bss.</summary>
    public static ElfBuilder Minimal(ulong baseAddress = 0x40_0000) => new ElfBuilder { Entry = baseAddress + 0x1000 }
        .Segment(ElfSegment.PtLoad, ElfSegment.FlagRead | ElfSegment.FlagExecute, baseAddress, new byte[0x1010], 0x1010)
        .Segment(ElfSegment.PtLoad, ElfSegment.FlagRead | ElfSegment.FlagWrite, baseAddress + 0x3000, [1, 2, 3, 4, 5, 6, 7, 8], 0x2100)
        .Segment(ElfSegment.PtTls, ElfSegment.FlagRead, baseAddress + 0x3000, [1, 2, 3, 4], 0x10)
        .Segment(ElfSegment.PtGnuStack, ElfSegment.FlagRead | ElfSegment.FlagWrite, 0, [], 0);

    public byte[] Build()
    {
        int phoff = ElfImage.HeaderSize;
        int dataStart = phoff + segments.Count * ElfImage.ProgramHeaderSize;
        var offsets = new long[segments.Count];
        long cursor = dataStart;
        for (int i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            if (s.Type == ElfSegment.PtLoad && i == 0 && (s.Address & 0xfff) == 0)
            {
                offsets[i] = 0;
                cursor = Math.Max(cursor, s.Data.Length);
                continue;
            }
            long misalign = (long)(s.Address & 0xfff);
            long page = (cursor + 0xfff) & ~0xfffL;
            offsets[i] = s.Type == ElfSegment.PtLoad ? page + misalign : cursor;
            cursor = offsets[i] + s.Data.Length;
        }
        var file = new byte[Math.Max(cursor, dataStart)];
        for (int i = 0; i < segments.Count; i++)
            segments[i].Data.CopyTo(file, offsets[i]);
        file[0] = 0x7f; file[1] = (byte)'E'; file[2] = (byte)'L'; file[3] = (byte)'F';
        file[4] = 2; file[5] = 1; file[6] = 1;
        var h = file.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], Machine);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], Entry);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], (ulong)phoff);
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], ElfImage.HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], ElfImage.ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], (ushort)segments.Count);
        for (int i = 0; i < segments.Count; i++)
        {
            var s = segments[i];
            var p = h.Slice(phoff + i * ElfImage.ProgramHeaderSize);
            BinaryPrimitives.WriteUInt32LittleEndian(p, s.Type);
            BinaryPrimitives.WriteUInt32LittleEndian(p[4..], s.Flags);
            BinaryPrimitives.WriteUInt64LittleEndian(p[8..], (ulong)offsets[i]);
            BinaryPrimitives.WriteUInt64LittleEndian(p[16..], s.Address);
            BinaryPrimitives.WriteUInt64LittleEndian(p[24..], s.Address);
            BinaryPrimitives.WriteUInt64LittleEndian(p[32..], (ulong)s.Data.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(p[40..], s.MemorySize);
            BinaryPrimitives.WriteUInt64LittleEndian(p[48..], s.Type == ElfSegment.PtLoad ? 0x1000UL : 8);
        }
        return file;
    }
}
