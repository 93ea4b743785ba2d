using System.Text;
using CsCheck;
using PageLab.Emulator.Memory;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>Reads small random fields out of a stream of generated 64-bit words, so CsCheck shrinks toward simple states.</summary>
internal sealed class RandomBits(ulong[] words)
{
    int word;
    int bit;

    public ulong Take(int bits)
    {
        if (bit + bits > 64) { word++; bit = 0; }
        ulong w = word < words.Length ? words[word] : 0;
        ulong value = (w >> bit) & ((1UL << bits) - 1);
        bit += bits;
        return value;
    }

    /// <summary>True with roughly <paramref name="percent"/> % probability (0 words give false).</summary>
    public bool Chance(int percent) => (int)(Take(7) % 100) >= 100 - percent;

    public int Below(int limit) => (int)(Take(16) % (ulong)limit);
}

/// <summary>
/// A random page-table state in the spirit of kvm-unit-tests' x86/access.c, but with every level randomised: a pool
/// of tables (any of which may be the root, and which entries may reference from any level, so tables alias and
/// recurse), two "interesting" slots per table holding random entries (present or not, R/W, U/S, A, D, G, PS, XD,
/// protection key, ignored bits, reserved bits such as bit 51 or bits above MAXPHYADDR or bit 13 of a large page,
/// addresses of tables, of data frames of each size, or beyond memory), random control bits and MAXPHYADDR.
/// Linear addresses are formed from the interesting slot indices at every level.
/// </summary>
internal sealed class RandomPagingState
{
    public const int TableCount = 6;
    public const int SlotsPerTable = 2;
    public const ulong MemorySize = 2UL << 20;
    const ulong FirstTable = 0x1000;

    public static readonly Gen<ulong[]> Words = Gen.ULong.Array[16, 128];

    public RandomPagingState(RandomBits bits)
    {
        FiveLevel = bits.Chance(30);
        MaxPhysicalAddressBits = 36 + bits.Below(17);
        var flags = ControlFlags.None;
        if (bits.Chance(60)) flags |= ControlFlags.WriteProtect;
        if (bits.Chance(70)) flags |= ControlFlags.NoExecuteEnable;
        if (bits.Chance(50)) flags |= ControlFlags.PageGlobalEnable;
        if (bits.Chance(50)) flags |= ControlFlags.PcidEnable;
        if (bits.Chance(40)) flags |= ControlFlags.Smep;
        if (bits.Chance(40)) flags |= ControlFlags.Smap;
        if (bits.Chance(40)) flags |= ControlFlags.ProtectionKeys;
        if (FiveLevel) flags |= ControlFlags.La57;
        Flags = flags;
        Tlb = bits.Chance(25) ? TlbConfig.IntelGoldenCove : TlbConfig.Tiny;
        SlotIndices = [bits.Below(512), bits.Below(512)];
        Entries = new ulong[TableCount * SlotsPerTable];
        for (int i = 0; i < Entries.Length; i++) Entries[i] = RandomEntry(bits);
    }

    public bool FiveLevel { get; }
    public int MaxPhysicalAddressBits { get; }
    public ControlFlags Flags { get; }
    public TlbConfig Tlb { get; }
    public int[] SlotIndices { get; }
    /// <summary>Entry values, table by table, slot by slot.</summary>
    public ulong[] Entries { get; }
    public int Levels => FiveLevel ? 5 : 4;

    public static ulong TableAddress(int table) => FirstTable + (ulong)table * PagingConstants.PageSize;

    public ulong SlotAddress(int slot) => TableAddress(slot / SlotsPerTable) + (ulong)SlotIndices[slot % SlotsPerTable] * 8;

    /// <summary>A random entry: not present, a table reference, or a leaf; sometimes with a reserved bit set.</summary>
    public static ulong RandomEntry(RandomBits bits)
    {
        ulong raw = bits.Take(12) & ~(PageTableEntry.PageSizeBit | PageTableEntry.PresentBit); // W, U, PWT, PCD, A, D, G, ignored 9-11
        if (bits.Chance(20)) raw |= PageTableEntry.ExecuteDisableBit;
        raw |= bits.Take(4) << PageTableEntry.ProtectionKeyShift;
        if (bits.Chance(10)) raw |= bits.Take(7) << 52; // ignored bits 58:52
        if (!bits.Chance(6)) raw |= PageTableEntry.PresentBit;
        int role = bits.Below(100);
        if (role < 65)
        {
            raw |= TableAddress(bits.Below(TableCount));
        }
        else if (role < 92)
        {
            raw |= PageTableEntry.PageSizeBit;
            var size = (PageSize)bits.Below(3);
            raw |= (bits.Take(24) << 12) & ((1UL << 36) - 1) & ~(size.Bytes() - 1);
        }
        else
        {
            raw |= MemorySize + (bits.Take(8) << 12); // beyond physical memory
        }
        if (bits.Chance(8))
        {
            raw |= bits.Below(3) switch
            {
                0 => 1UL << 51,
                1 => 1UL << (36 + bits.Below(16)),   // reserved when at or above MAXPHYADDR
                _ => 1UL << (13 + bits.Below(8)),    // reserved in a 2M / 1G leaf
            };
        }
        return raw;
    }

    /// <summary>Linear address number <paramref name="choice"/>: one bit per level picks a slot index.</summary>
    public ulong Linear(int choice, ulong offset)
    {
        ulong linear = offset & PagingConstants.PageMask;
        for (int level = 1; level <= Levels; level++)
            linear |= (ulong)SlotIndices[(choice >> (level - 1)) & 1] << (PagingConstants.PageBits + (level - 1) * PagingConstants.LevelBits);
        int bits = FiveLevel ? PagingConstants.LinearBits5Level : PagingConstants.LinearBits4Level;
        return (ulong)((long)(linear << (64 - bits)) >> (64 - bits));
    }

    public int AddressChoices => 1 << Levels;

    /// <summary>Writes the tables into a fresh physical memory.</summary>
    public PhysicalMemory Build()
    {
        var memory = new PhysicalMemory(MemorySize);
        for (int slot = 0; slot < Entries.Length; slot++) memory.TryWrite64(SlotAddress(slot), Entries[slot]);
        return memory;
    }

    public ReferenceCpu Cpu(bool userMode, bool alignmentCheck, uint pkru) => new(Flags, userMode, alignmentCheck, pkru, MaxPhysicalAddressBits);

    /// <summary>The current slot values of <paramref name="memory"/>, for failure messages.</summary>
    public string Describe(PhysicalMemory memory)
    {
        var text = new StringBuilder($"{Levels}-level, MAXPHYADDR {MaxPhysicalAddressBits}, flags {Flags}, tlb {Tlb.Name}, slot indices {SlotIndices[0]} {SlotIndices[1]}\n");
        for (int slot = 0; slot < Entries.Length; slot++)
        {
            memory.TryRead64(SlotAddress(slot), out ulong raw);
            text.Append($"  table {slot / SlotsPerTable} [{SlotIndices[slot % SlotsPerTable]}] @0x{SlotAddress(slot):x}: 0x{raw:x16} {new PageTableEntry(raw)}\n");
        }
        return text.ToString();
    }
}
