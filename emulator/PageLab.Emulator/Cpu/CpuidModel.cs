namespace PageLab.Emulator.Cpu;

/// <summary>One CPUID answer.</summary>
public readonly record struct CpuidResult(uint Eax, uint Ebx, uint Ecx, uint Edx);

/// <summary>
/// What CPUID reports. It advertises exactly the instruction set the interpreter implements, so
/// that glibc's and musl's run-time selection (ifuncs, init_cpu_features) picks code PageLab runs:
/// the x86-64 baseline (SSE, SSE2, CMOV, CX8, x87; FXSR and MMX too, because glibc refuses to start
/// below the baseline ISA level, although FXSAVE and MMX instructions are #UD here: compilers never
/// emit them for user code),
/// CMPXCHG16B, POPCNT, LZCNT, LAHF/SAHF in 64-bit mode, SYSCALL, NX; no SSE3 and above, no AVX, no
/// OSXSAVE (so XGETBV is never needed), no BMI, no ERMS. Cache geometry comes through leaf 4 (leaf 2
/// answers "see leaf 4"), and leaf 0xB describes a single logical processor.
/// </summary>
public static class CpuidModel
{
    const uint MaxBasicLeaf = 0xB;
    const uint MaxExtendedLeaf = 0x8000_0008;

    // Leaf 1 EDX.
    const uint Fpu = 1u << 0, Tsc = 1u << 4, Cx8 = 1u << 8, Cmov = 1u << 15, Clflush = 1u << 19, Mmx = 1u << 23, Fxsr = 1u << 24, Sse = 1u << 25, Sse2 = 1u << 26;
    // Leaf 1 ECX.
    const uint Cx16 = 1u << 13, Popcnt = 1u << 23;
    // Leaf 0x80000001 ECX / EDX.
    const uint LahfSahf = 1u << 0, Lzcnt = 1u << 5;
    const uint Syscall = 1u << 11, NoExecute = 1u << 20, LongMode = 1u << 29;

    /// <summary>Family 6 model 0x3A stepping 9 (an Ivy Bridge signature; its tuning flags only select SSE2 code here).</summary>
    const uint Signature = (0x3u << 16) | (6u << 8) | (0xAu << 4) | 9;

    static readonly string Brand = "PageLab virtual x86-64 CPU";

    /// <summary>The answer for <paramref name="leaf"/> (EAX) and <paramref name="subleaf"/> (ECX).</summary>
    public static CpuidResult Query(uint leaf, uint subleaf, int physicalAddressBits)
    {
        switch (leaf)
        {
            case 0: return new(MaxBasicLeaf, 0x756E_6547, 0x6C65_746E, 0x4965_6E69); // "GenuineIntel"
            case 1:
                // EBX: CLFLUSH line 8 * 8 = 64 bytes, one logical processor, APIC id 0.
                return new(Signature, (1u << 16) | (8u << 8), Cx16 | Popcnt, Fpu | Tsc | Cx8 | Cmov | Clflush | Mmx | Fxsr | Sse | Sse2);
            case 2: return new(0x0000_FF01, 0, 0, 0); // one iteration; descriptor 0xFF: use leaf 4
            case 4: return CacheParameters(subleaf);
            case 0xB: return Topology(subleaf);
            case 0x8000_0000: return new(MaxExtendedLeaf, 0, 0, 0);
            case 0x8000_0001: return new(0, 0, LahfSahf | Lzcnt, Syscall | NoExecute | LongMode);
            case 0x8000_0002:
            case 0x8000_0003:
            case 0x8000_0004: return BrandPart((int)(leaf - 0x8000_0002));
            case 0x8000_0006: return new(0, 0, (1024u << 16) | (0x6u << 12) | 64, 0); // L2: 1 MiB, 16-way, 64-byte lines
            case 0x8000_0008: return new((uint)physicalAddressBits | (48u << 8), 0, 0, 0);
            default: return default;
        }
    }

    /// <summary>Leaf 4: deterministic cache parameters (32 KiB L1d and L1i, 1 MiB L2, 8 MiB L3, 64-byte lines).</summary>
    static CpuidResult CacheParameters(uint index)
    {
        (uint type, uint level, uint ways, uint sets) = index switch
        {
            0 => (1u, 1u, 8u, 64u),
            1 => (2u, 1u, 8u, 64u),
            2 => (3u, 2u, 16u, 1024u),
            3 => (3u, 3u, 16u, 8192u),
            _ => (0u, 0u, 0u, 0u),
        };
        if (type == 0) return default;
        const uint SelfInitializing = 1u << 8;
        uint eax = type | (level << 5) | SelfInitializing; // one thread shares it, one core per package
        uint ebx = (63u) | (0u << 12) | ((ways - 1) << 22);
        return new(eax, ebx, sets - 1, 0);
    }

    /// <summary>Leaf 0xB: one thread per core, one core.</summary>
    static CpuidResult Topology(uint level) => level switch
    {
        0 => new(0, 1, (1u << 8) | 0, 0), // SMT level
        1 => new(0, 1, (2u << 8) | 1, 0), // core level
        _ => new(0, 0, level, 0),
    };

    static CpuidResult BrandPart(int part)
    {
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        for (int i = 0; i < 16; i++)
        {
            int at = part * 16 + i;
            if (at < Brand.Length) bytes[i] = (byte)Brand[at];
        }
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(bytes);
        return new(words[0], words[1], words[2], words[3]);
    }
}
