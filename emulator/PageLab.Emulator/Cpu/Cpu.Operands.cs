using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using PageLab.Emulator.Paging;

namespace PageLab.Emulator.Cpu;

// Operand access. Reads that fault record the fault and return false before any state changes;
// handlers do every access that can fault before they write registers or flags.
public sealed unsafe partial class Cpu
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong ReadRegister(byte code, int size)
    {
        if (size == 8) return G(code);
        if (code >= HighByteRegister) return (byte)(G(code - HighByteRegister) >> 8);
        return G(code) & SizeMask(size);
    }

    /// <summary>Writes a register as the hardware does: 32-bit writes zero the upper half, 8/16-bit writes merge.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void WriteRegister(byte code, int size, ulong value)
    {
        switch (size)
        {
            case 8: G(code) = value; break;
            case 4: G(code) = (uint)value; break;
            case 2:
                ref ulong word = ref G(code);
                word = (word & ~0xFFFFUL) | (ushort)value;
                break;
            default:
                if (code >= HighByteRegister)
                {
                    ref ulong high = ref G(code - HighByteRegister);
                    high = (high & ~0xFF00UL) | ((ulong)(byte)value << 8);
                }
                else
                {
                    ref ulong low = ref G(code);
                    low = (low & ~0xFFUL) | (byte)value;
                }
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ulong EffectiveAddress(ref DecodedInstruction d)
    {
        ulong address = (ulong)d.Displacement;
        if (d.MemoryBase != NoRegister) address += d.MemoryBase == RipRegister ? nextRip : G(d.MemoryBase);
        if (d.MemoryIndex != NoRegister) address += G(d.MemoryIndex) << d.MemoryScaleShift;
        if (d.AddressSize32) address = (uint)address;
        if (d.MemorySegment != 0) address += d.MemorySegment == 1 ? FsBase : GsBase;
        return address;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool InOnePage(ulong address, int size) => (address & PageMask) <= PageSize - (ulong)size;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ulong LoadHost(byte* host, int size) => size switch
    {
        1 => *host,
        2 => Unsafe.ReadUnaligned<ushort>(host),
        4 => Unsafe.ReadUnaligned<uint>(host),
        _ => Unsafe.ReadUnaligned<ulong>(host),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreHost(byte* host, int size, ulong value)
    {
        switch (size)
        {
            case 1: *host = (byte)value; break;
            case 2: Unsafe.WriteUnaligned(host, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned(host, (uint)value); break;
            default: Unsafe.WriteUnaligned(host, value); break;
        }
    }

    /// <summary>
    /// Host pointer for an access inside one page. The CPU remembers the last few data pages it
    /// translated; while their L1 DTLB entries cannot have been evicted (only data accesses use that
    /// level, and no data lookup has missed it since), an access to one of them is counted as the
    /// hit a real DTLB would have, without searching it again. A write takes the fast path only on a
    /// page a write translated (its entry is then writable and dirty).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool TryDataPointer(ulong address, AccessKind kind, out byte* host)
    {
        ulong page = address & ~PageMask;
        for (int i = 0; i < DataPageSlots; i++)
        {
            ref var entry = ref dataPages[i];
            if (entry.Linear != page) continue;
            if (kind == AccessKind.Write && !entry.Writable) break;
            entry.PendingHits++;
            entry.LastUse = ++dataPageClock;
            if (kind == AccessKind.Write) mmu.NotifyFrameWritten(entry.Frame);
            host = entry.Host + (address & PageMask);
            return true;
        }
        return TryDataPointerSlow(address, kind, out host);
    }

    bool TryDataPointerSlow(ulong address, AccessKind kind, out byte* host)
    {
        ReportPendingHits();
        long missesBefore = firstDataLevel?.Misses ?? 0;
        var fault = TranslateToFrame(address, kind, out ulong physical, out host);
        if (fault.IsFault)
        {
            LeaveDataPages();
            pendingFault = fault;
            return false;
        }
        ulong frame = physical >> PagingConstants.PageBits;
        if (kind == AccessKind.Write) mmu.NotifyFrameWritten(frame);
        if (!fastTranslations) return true;
        // A miss filled the level and may have evicted any remembered page.
        if (firstDataLevel!.Misses != missesBefore) LeaveDataPages();
        ulong page = address & ~PageMask;
        int slot = 0;
        for (int i = 0; i < DataPageSlots; i++)
        {
            if (dataPages[i].Linear == page) { slot = i; break; }
            if (dataPages[i].LastUse < dataPages[slot].LastUse) slot = i;
        }
        dataPages[slot] = new DataPage
        {
            Linear = page,
            Host = host - (address & PageMask),
            Frame = frame,
            Writable = kind == AccessKind.Write,
            LastUse = ++dataPageClock,
        };
        return true;
    }

    /// <summary>
    /// Reports the fetch and data hits counted without a lookup to the MMU. Done before every lookup the CPU makes, of
    /// either kind: a lookup may fault, and delivering the #PF invalidates the faulting address in every level, the other
    /// kind's first level included, so hits reported after it would find their entry gone and be lost.
    /// </summary>
    void ReportPendingHits()
    {
        if (pendingFetchHits != 0)
        {
            mmu.RecordRepeatedHits(fetchLinearBase, AccessKind.Fetch, pendingFetchHits);
            pendingFetchHits = 0;
        }
        ReportDataHits();
    }

    /// <summary>Reports the remembered pages' hits to the MMU, in the order of their last use (before any other data lookup).</summary>
    void ReportDataHits()
    {
        while (true)
        {
            int oldest = -1;
            for (int i = 0; i < DataPageSlots; i++)
            {
                if (dataPages[i].PendingHits != 0 && (oldest < 0 || dataPages[i].LastUse < dataPages[oldest].LastUse)) oldest = i;
            }
            if (oldest < 0) return;
            ref var entry = ref dataPages[oldest];
            mmu.RecordRepeatedHits(entry.Linear, AccessKind.Read, entry.PendingHits);
            entry.PendingHits = 0;
        }
    }

    /// <summary>Reports and forgets every remembered data page.</summary>
    void LeaveDataPages()
    {
        ReportPendingHits();
        for (int i = 0; i < DataPageSlots; i++) dataPages[i] = new DataPage { Linear = ulong.MaxValue };
    }

    /// <summary>Translates through the TLBs and returns the frame's host pointer; physical addresses beyond memory are a machine check.</summary>
    TranslationFault TranslateToFrame(ulong linear, AccessKind kind, out ulong physical, out byte* host)
    {
        host = null;
        var fault = mmu.Translate(linear, kind, out physical);
        if (fault.IsFault) return fault;
        if (!mmu.Memory.Contains(physical & ~PageMask, PageSize))
        {
            mmu.Counters.MachineChecks++;
            return new TranslationFault(TranslationFaultKind.MachineCheck, linear, PageFaultErrorCode.None);
        }
        host = mmu.Memory.PointerTo(physical);
        return TranslationFault.None;
    }

    /// <summary>Records the fault of an access that crossed a page (through the MMU's multi-page paths).</summary>
    bool CrossingResult(TranslationFault fault)
    {
        if (!fault.IsFault) return true;
        pendingFault = fault;
        return false;
    }

    /// <summary>Reads 1, 2, 4 or 8 bytes through the data TLB.</summary>
    bool TryRead(ulong address, int size, out ulong value)
    {
        if (InOnePage(address, size))
        {
            bool ok = TryDataPointer(address, AccessKind.Read, out byte* host);
            value = ok ? LoadHost(host, size) : 0;
            return ok;
        }
        LeaveDataPages();
        return CrossingResult(mmu.Read(address, size, out value));
    }

    /// <summary>Writes 1, 2, 4 or 8 bytes; nothing is written unless every page accepts the write.</summary>
    bool TryWrite(ulong address, int size, ulong value)
    {
        if (InOnePage(address, size))
        {
            if (!TryDataPointer(address, AccessKind.Write, out byte* host)) return false;
            StoreHost(host, size, value);
            return true;
        }
        LeaveDataPages();
        return CrossingResult(mmu.Write(address, size, value));
    }

    /// <summary>
    /// First half of a read-modify-write: one lookup with write intent, as the hardware does for a
    /// locked or RMW access. <paramref name="host"/> is null when the operand crosses a page, and
    /// <see cref="TryWriteBack"/> then writes through the MMU (which checks both pages first).
    /// </summary>
    bool TryReadForWrite(ulong address, int size, out ulong value, out byte* host)
    {
        if (InOnePage(address, size))
        {
            bool ok = TryDataPointer(address, AccessKind.Write, out host);
            value = ok ? LoadHost(host, size) : 0;
            return ok;
        }
        host = null;
        LeaveDataPages();
        return CrossingResult(mmu.Read(address, size, out value));
    }

    bool TryWriteBack(byte* host, ulong address, int size, ulong value)
    {
        if (host != null)
        {
            StoreHost(host, size, value);
            return true;
        }
        return TryWrite(address, size, value);
    }

    bool TryRead128(ulong address, out Vector128<byte> value)
    {
        if (InOnePage(address, 16))
        {
            bool ok = TryDataPointer(address, AccessKind.Read, out byte* host);
            value = ok ? Vector128.Load(host) : default;
            return ok;
        }
        LeaveDataPages();
        Vector128<byte> buffer = default;
        bool read = CrossingResult(mmu.ReadBytes(address, new Span<byte>(&buffer, 16)));
        value = buffer;
        return read;
    }

    bool TryWrite128(ulong address, Vector128<byte> value)
    {
        if (InOnePage(address, 16))
        {
            if (!TryDataPointer(address, AccessKind.Write, out byte* host)) return false;
            value.Store(host);
            return true;
        }
        LeaveDataPages();
        return CrossingResult(mmu.WriteBytes(address, new ReadOnlySpan<byte>(&value, 16)));
    }

    /// <summary>Reads the source operand (operand 1) of an integer instruction at <paramref name="size"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool TryReadSource(ref DecodedInstruction d, int size, out ulong value)
    {
        switch (d.Kind1)
        {
            case OperandKind.Register:
                value = ReadRegister(d.Reg1, size);
                return true;
            case OperandKind.Immediate:
                value = d.Immediate & SizeMask(size);
                return true;
            default:
                return TryRead(EffectiveAddress(ref d), size, out value);
        }
    }

    /// <summary>Reads operand 0 (a register or memory) of <paramref name="size"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool TryReadDestination(ref DecodedInstruction d, int size, out ulong value)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            value = ReadRegister(d.Reg0, size);
            return true;
        }
        return TryRead(EffectiveAddress(ref d), size, out value);
    }

    /// <summary>Writes operand 0 (a register or memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool TryWriteDestination(ref DecodedInstruction d, int size, ulong value)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            WriteRegister(d.Reg0, size, value);
            return true;
        }
        return TryWrite(EffectiveAddress(ref d), size, value);
    }

    /// <summary>Reads operand 0 of a read-modify-write instruction (a register, or memory looked up with write intent).</summary>
    bool TryReadModifyDestination(ref DecodedInstruction d, int size, out ulong value, out ulong address, out byte* host)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            value = ReadRegister(d.Reg0, size);
            address = 0;
            host = null;
            return true;
        }
        address = EffectiveAddress(ref d);
        return TryReadForWrite(address, size, out value, out host);
    }

    /// <summary>Writes back operand 0 read by <see cref="TryReadModifyDestination"/>.</summary>
    bool TryWriteModifiedDestination(ref DecodedInstruction d, int size, ulong address, byte* host, ulong value)
    {
        if (d.Kind0 == OperandKind.Register)
        {
            WriteRegister(d.Reg0, size, value);
            return true;
        }
        return TryWriteBack(host, address, size, value);
    }

    bool TryPush(ulong value)
    {
        ulong address = G(Rsp) - 8;
        if (!TryWrite(address, 8, value)) return false;
        G(Rsp) = address;
        return true;
    }
}
