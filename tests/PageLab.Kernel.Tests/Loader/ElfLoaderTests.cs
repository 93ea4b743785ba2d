using System.Buffers.Binary;
using System.Text;
using CsCheck;
using PageLab.Kernel.Loader;
using PageLab.Kernel.Mm;

namespace PageLab.Kernel.Tests.Loader;

public class ElfLoaderTests
{
    static readonly byte[] Random16 = [.. Enumerable.Range(100, 16).Select(i => (byte)i)];

    static ExecParameters Parameters(params string[] args) => new()
    {
        ExecFileName = "./prog",
        Arguments = args.Length == 0 ? ["./prog", "a1"] : args,
        Environment = ["HOME=/root", "LANG=C"],
        RandomBytes = Random16,
        Credentials = new Credentials(1000, 1001, 100, 101),
        HardwareCapabilities = 0x178bfbff,
    };

    static LoadedProgram Load(TestMachine m, byte[] elf, ExecParameters? parameters = null)
    {
        var file = new InMemoryFile("/bin/prog", elf);
        return ElfLoader.Load(m.User, file, ElfImage.Parse(file), parameters ?? Parameters());
    }

    ulong Read64(TestMachine m, ulong address) => m.GuestRead64(address) ?? throw new InvalidOperationException($"unmapped 0x{address:x}");

    string ReadString(TestMachine m, ulong address)
    {
        Assert.Equal(0, m.User.TryReadString(address, 4096, out string value));
        return value;
    }

    [Fact]
    public void StaticExecutable_SegmentsBecomePrivateFileMappingsWithTheirProtection_AndBssIsAnonymous()
    {
        using var m = new TestMachine();
        var loaded = Load(m, ElfBuilder.Minimal().Build());
        var vmas = m.Space.Vmas.Where(v => v.Start < 0x1000_0000).ToArray();
        Assert.Equal(3, vmas.Length);
        Assert.Equal((0x40_0000UL, 0x40_2000UL, Protection.Read | Protection.Exec, false), (vmas[0].Start, vmas[0].End, vmas[0].Protection, vmas[0].IsAnonymous));
        Assert.Equal((0x40_3000UL, 0x40_4000UL, Protection.Read | Protection.Write, false), (vmas[1].Start, vmas[1].End, vmas[1].Protection, vmas[1].IsAnonymous));
        Assert.Equal((0x40_4000UL, 0x40_6000UL, Protection.Read | Protection.Write, true), (vmas[2].Start, vmas[2].End, vmas[2].Protection, vmas[2].IsAnonymous));
        Assert.Equal(0x40_1000UL, loaded.Entry);
        Assert.Equal(0x40_6000UL, m.Space.StartBrk);
        Assert.Equal(0x40_3000UL, loaded.Tls!.Value.VirtualAddress);
    }

    [Fact]
    public void PartialBssPage_IsZeroedPastFileSize()
    {
        using var m = new TestMachine();
        Load(m, ElfBuilder.Minimal().Build());
        // The file page of the data segment continues with the TLS bytes 1,2,3,4: they must read as zero.
        Assert.Equal(0x0807060504030201UL, Read64(m, 0x40_3000));
        Assert.Equal(0UL, Read64(m, 0x40_3008));
        Assert.Equal(0UL, Read64(m, 0x40_50f8));
    }

    [Fact]
    public void InitialStack_HasArgcArgvEnvpAuxvLikeLinux()
    {
        using var m = new TestMachine();
        var loaded = Load(m, ElfBuilder.Minimal().Build());
        ulong sp = loaded.StackPointer;
        Assert.Equal(0UL, sp % 16);
        Assert.Equal(2UL, Read64(m, sp));
        Assert.Equal("./prog", ReadString(m, Read64(m, sp + 8)));
        Assert.Equal("a1", ReadString(m, Read64(m, sp + 16)));
        Assert.Equal(0UL, Read64(m, sp + 24));
        Assert.Equal("HOME=/root", ReadString(m, Read64(m, sp + 32)));
        Assert.Equal("LANG=C", ReadString(m, Read64(m, sp + 40)));
        Assert.Equal(0UL, Read64(m, sp + 48));
        Assert.Equal(sp + 56, loaded.AuxvAddress);

        var auxv = new Dictionary<ElfLoader.AuxTag, ulong>();
        var order = new List<ElfLoader.AuxTag>();
        for (ulong p = loaded.AuxvAddress; ; p += 16)
        {
            var tag = (ElfLoader.AuxTag)Read64(m, p);
            order.Add(tag);
            if (tag == ElfLoader.AuxTag.Null) break;
            auxv[tag] = Read64(m, p + 8);
        }
        Assert.Equal(ElfLoader.AuxTag.MinSigStkSz, order[0]);
        Assert.Equal(ElfLoader.AuxTag.Hwcap, order[1]);
        Assert.Equal(22, order.Count);
        Assert.Equal(0x40_0040UL, auxv[ElfLoader.AuxTag.Phdr]);
        Assert.Equal(56UL, auxv[ElfLoader.AuxTag.Phent]);
        Assert.Equal(4UL, auxv[ElfLoader.AuxTag.Phnum]);
        Assert.Equal(4096UL, auxv[ElfLoader.AuxTag.Pagesz]);
        Assert.Equal(0x40_1000UL, auxv[ElfLoader.AuxTag.Entry]);
        Assert.Equal(0UL, auxv[ElfLoader.AuxTag.Base]);
        Assert.Equal((1000UL, 1001UL, 100UL, 101UL), (auxv[ElfLoader.AuxTag.Uid], auxv[ElfLoader.AuxTag.Euid], auxv[ElfLoader.AuxTag.Gid], auxv[ElfLoader.AuxTag.Egid]));
        Assert.Equal(100UL, auxv[ElfLoader.AuxTag.Clktck]);
        Assert.Equal(0x178bfbffUL, auxv[ElfLoader.AuxTag.Hwcap]);
        Assert.Equal("x86_64", ReadString(m, auxv[ElfLoader.AuxTag.Platform]));
        Assert.Equal("./prog", ReadString(m, auxv[ElfLoader.AuxTag.Execfn]));
        Assert.Equal(AddressSpace.StackTop - 8 - 7, auxv[ElfLoader.AuxTag.Execfn]);
        var random = new byte[16];
        Assert.True(m.User.TryRead(auxv[ElfLoader.AuxTag.Random], random));
        Assert.Equal(Random16, random);
    }

    [Fact]
    public void StackVma_IsArgumentPagesPlus128KiB_NonExecutable_GrowsDown()
    {
        using var m = new TestMachine();
        Load(m, ElfBuilder.Minimal().Build());
        var stack = m.Space.Vmas[^1];
        Assert.Equal(AddressSpace.StackTop, stack.End);
        Assert.Equal(AddressSpace.StackTop - 0x21000, stack.Start);
        Assert.Equal(Protection.Read | Protection.Write, stack.Protection);
        Assert.Equal(VmaFlags.GrowsDown | VmaFlags.Account, stack.Flags);
        Assert.Contains("[stack]", m.Space.FormatMaps(), StringComparison.Ordinal);
    }

    [Fact]
    public void ExecutableGnuStack_MakesStackExecutable()
    {
        using var m = new TestMachine();
        var builder = ElfBuilder.Minimal().Segment(ElfSegment.PtGnuStack, ElfSegment.FlagRead | ElfSegment.FlagWrite | ElfSegment.FlagExecute, 0, [], 0);
        Load(m, builder.Build());
        Assert.Equal(Protection.Read | Protection.Write | Protection.Exec, m.Space.Vmas[^1].Protection);
    }

    [Fact]
    public void StaticPie_IsLoadedAtEtDynBase()
    {
        using var m = new TestMachine();
        var builder = ElfBuilder.Minimal(baseAddress: 0);
        builder.Type = ElfImage.TypeSharedObject;
        var loaded = Load(m, builder.Build());
        Assert.Equal(0x5555_5555_4000UL, ElfLoader.EtDynBase);
        Assert.Equal(ElfLoader.EtDynBase, loaded.LoadBias);
        Assert.Equal(ElfLoader.EtDynBase + 0x1000, loaded.Entry);
        Assert.Equal(ElfLoader.EtDynBase, m.Space.Vmas[0].Start);
        Assert.Equal(ElfLoader.EtDynBase + 0x40, loaded.ProgramHeaderAddress);
    }

    public static TheoryData<string, string> CorruptBinaries() => new()
    {
        { "truncated-header", "truncated ELF header" },
        { "bad-magic", "not an ELF file" },
        { "32-bit", "32-bit" },
        { "big-endian", "byte order" },
        { "arm64", "wrong machine 183" },
        { "relocatable", "ELF type 1" },
        { "no-program-headers", "0 program headers" },
        { "too-many-program-headers", "program headers" },
        { "phoff-beyond-file", "beyond the end of the file" },
        { "phoff-overflow", "beyond the end of the file" },
        { "segment-beyond-file", "beyond the end of the file" },
        { "filesz-over-memsz", "exceeds memory size" },
        { "absurd-memsz", "beyond user space" },
        { "misaligned-offset", "not congruent" },
        { "below-mmap-min-addr", "mmap_min_addr" },
        { "dynamic", "needs the interpreter /lib64/ld-linux-x86-64.so.2" },
    };

    [Theory]
    [MemberData(nameof(CorruptBinaries))]
    public void CorruptBinary_IsRefusedWithClearError(string corruption, string expectedMessage)
    {
        byte[] elf = Corrupt(corruption);
        var ex = Assert.Throws<ElfLoadException>(() => ElfImage.Parse(new InMemoryFile("/x", elf)));
        Assert.Contains(expectedMessage, ex.Message, StringComparison.Ordinal);
    }

    static byte[] Corrupt(string corruption)
    {
        byte[] elf = ElfBuilder.Minimal().Build();
        const int Ph = ElfImage.HeaderSize;
        const int Ph1 = Ph + ElfImage.ProgramHeaderSize;
        switch (corruption)
        {
            case "truncated-header": return elf[..40];
            case "bad-magic": elf[1] = (byte)'X'; break;
            case "32-bit": elf[4] = 1; break;
            case "big-endian": elf[5] = 2; break;
            case "arm64": BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(18), 183); break;
            case "relocatable": BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(16), 1); break;
            case "no-program-headers": BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(56), 0); break;
            case "too-many-program-headers": BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(56), 0xffff); break;
            case "phoff-beyond-file": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(32), (ulong)elf.Length - 10); break;
            case "phoff-overflow": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(32), ulong.MaxValue - 8); break;
            case "segment-beyond-file": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph1 + 32), 0x10_0000); BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph1 + 40), 0x10_0000); break;
            case "filesz-over-memsz": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph + 40), 0x10); break;
            case "absurd-memsz": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph1 + 40), ulong.MaxValue - 0x1000); break;
            case "below-mmap-min-addr": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph + 16), 0x1000); break;
            case "misaligned-offset": BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(Ph1 + 8), 0x2001); break;
            case "dynamic":
                byte[] interp = Encoding.ASCII.GetBytes("/lib64/ld-linux-x86-64.so.2\0");
                var builder = ElfBuilder.Minimal().Segment(ElfSegment.PtInterp, ElfSegment.FlagRead, 0, interp, (ulong)interp.Length);
                return builder.Build();
        }
        return elf;
    }

    [Fact]
    public void RandomlyCorruptedBinaries_LoadOrFailWithElfLoadException_NeverAHostException()
    {
        byte[] valid = ElfBuilder.Minimal().Build();
        Gen.Select(Gen.Int[0, 64 + 4 * 56 - 1].Array[1, 6], Gen.Byte.Array[6], Gen.Int[0, valid.Length]).Sample((positions, values, length) =>
        {
            var elf = (byte[])valid.Clone();
            for (int i = 0; i < positions.Length; i++) elf[positions[i]] = values[i];
            elf = elf[..Math.Max(length, 1)];
            using var m = new TestMachine(16UL << 20);
            try
            {
                Load(m, elf);
            }
            catch (ElfLoadException)
            {
            }
        }, iter: 300, seed: "0N0XIzNsQ0O2");
    }
}
