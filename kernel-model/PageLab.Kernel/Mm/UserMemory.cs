using System.Buffers.Binary;
using System.Text;
using PageLab.Emulator.Paging;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Mm;

/// <summary>
/// copy_from_user / copy_to_user: the kernel model's access to a process's memory. Every copy goes
/// through the MMU with user permissions; a page fault is handled as the hardware would deliver it
/// (demand paging, copy-on-write, stack growth) and the copy retried; an unresolvable fault makes
/// the copy fail, which system calls report as EFAULT.
/// </summary>
public sealed class UserMemory(AddressSpace space)
{
    /// <summary>PATH_MAX: longest path string, NUL included.</summary>
    public const int PathMax = 4096;

    readonly IGuestMemory guest = space.Memory.Guest;

    public AddressSpace Space => space;

    /// <summary>Reads <paramref name="destination"/>.Length bytes at <paramref name="address"/>; false on a bad address.</summary>
    public bool TryRead(ulong address, Span<byte> destination)
    {
        for (int attempt = FaultBudget(address, destination.Length); attempt > 0; attempt--)
        {
            var fault = guest.ReadBytes(address, destination);
            if (!fault.IsFault)
                return true;
            if (!TryResolve(fault, AccessKind.Read))
                return false;
        }
        return false;
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="address"/>; false on a bad address.</summary>
    public bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        for (int attempt = FaultBudget(address, source.Length); attempt > 0; attempt--)
        {
            var fault = guest.WriteBytes(address, source);
            if (!fault.IsFault)
                return true;
            if (!TryResolve(fault, AccessKind.Write))
                return false;
        }
        return false;
    }

    /// <summary>
    /// How many attempts a copy may take: each resolves at most one fault, and a page may need two
    /// (zero page, then copy-on-write). Zero for a range that wraps around the address space.
    /// </summary>
    static int FaultBudget(ulong address, int length)
    {
        if (address > ulong.MaxValue - (ulong)length)
            return 0;
        ulong pages = (((address & PagingConstants.PageMask) + (ulong)length) >> PagingConstants.PageBits) + 1;
        return (int)Math.Min(2 * pages + 1, int.MaxValue);
    }

    bool TryResolve(in TranslationFault fault, AccessKind kind) =>
        fault.Kind == TranslationFaultKind.PageFault &&
        space.HandleFault(fault.LinearAddress, kind, (fault.ErrorCode & PageFaultErrorCode.Present) != 0).IsResolved();

    public bool TryReadUInt64(ulong address, out ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        bool ok = TryRead(address, bytes);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(bytes) : 0;
        return ok;
    }

    public bool TryWriteUInt64(ulong address, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return TryWrite(address, bytes);
    }

    public bool TryWriteUInt32(ulong address, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return TryWrite(address, bytes);
    }

    /// <summary>
    /// strncpy_from_user for a NUL-terminated string of at most <paramref name="maxLength"/> bytes
    /// including the NUL: 0 on success, -EFAULT for a bad pointer, -ENAMETOOLONG when no NUL is found in time.
    /// </summary>
    public int TryReadString(ulong address, int maxLength, out string value)
    {
        value = "";
        var bytes = new List<byte>();
        Span<byte> chunk = stackalloc byte[256];
        while (bytes.Count < maxLength)
        {
            // Never read across a page boundary in one piece: the next page may be unmapped after the NUL.
            int inPage = (int)(PagingConstants.PageSize - (address & PagingConstants.PageMask));
            int take = Math.Min(Math.Min(chunk.Length, inPage), maxLength - bytes.Count);
            if (!TryRead(address, chunk[..take]))
                return -(int)Errno.EFAULT;
            int nul = chunk[..take].IndexOf((byte)0);
            if (nul >= 0)
            {
                foreach (byte b in chunk[..nul]) bytes.Add(b);
                value = Encoding.UTF8.GetString([.. bytes]);
                return 0;
            }
            foreach (byte b in chunk[..take]) bytes.Add(b);
            address += (ulong)take;
        }
        return -(int)Errno.ENAMETOOLONG;
    }
}
