using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PageLab.Emulator.Memory;

/// <summary>Outcome of a physical access: real hardware raises a machine check for addresses no DIMM decodes.</summary>
public enum PhysicalAccessStatus : byte
{
    Ok,
    /// <summary>The access reaches beyond the configured physical memory (machine-check style).</summary>
    OutOfRange,
}

/// <summary>
/// Guest physical memory: one host address range reserved for all of it (an anonymous mmap with MAP_NORESERVE), which
/// the host kernel backs with zeroed pages on first touch, so untouched memory costs nothing and a frame of any size is
/// one contiguous host span (DESIGN.md point 4). Being contiguous, a physical address becomes a host address by one
/// addition: a page walk reads each entry without first loading the pointer of the chunk that holds it, which would
/// put a second dependent load on every step of the walk. The 2 MiB chunks the emulator has reached are still counted
/// (<see cref="BackedBytes"/>), in the same deterministic way whatever the host does with the pages.
/// </summary>
public sealed unsafe partial class PhysicalMemory : IDisposable
{
    /// <summary>log2 of the accounting chunk: one chunk per 2 MiB huge frame.</summary>
    public const int ChunkBits = 21;
    public const ulong ChunkSize = 1UL << ChunkBits;
    const ulong ChunkOffsetMask = ChunkSize - 1;

    readonly byte* host;
    readonly ulong[] reachedChunks; // bit per chunk a host pointer was handed out into
    bool disposed;

    /// <param name="size">Bytes of physical memory; a multiple of 2 MiB, at most 1 TiB.</param>
    /// <exception cref="OutOfMemoryException">The host refused to reserve the address range.</exception>
    public PhysicalMemory(ulong size)
    {
        if (size == 0 || (size & ChunkOffsetMask) != 0 || size > (1UL << 40))
            throw new ArgumentOutOfRangeException(nameof(size), size, "physical memory must be a non-zero multiple of 2 MiB, at most 1 TiB");
        Size = size;
        reachedChunks = new ulong[((size >> ChunkBits) + 63) / 64];
        nint mapped = Mmap(0, (nuint)size, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        if (mapped == MapFailed)
            throw new OutOfMemoryException($"the host refused to reserve {size} bytes of address space for guest physical memory (errno {Marshal.GetLastPInvokeError()})");
        host = (byte*)mapped;
    }

    const int ProtRead = 1, ProtWrite = 2;
    const int MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    const nint MapFailed = -1;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);

    /// <summary>Configured size in bytes. Physical addresses [0, Size) are valid.</summary>
    public ulong Size { get; }

    /// <summary>Guest memory reached so far, in whole 2 MiB chunks: what backing the guest's use has called for.</summary>
    public ulong BackedBytes { get; private set; }

    /// <summary>True when [address, address + length) lies inside physical memory; written so it cannot overflow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(ulong address, ulong length) => address < Size && length <= Size - address;

    /// <summary>
    /// Host pointer to the byte at <paramref name="address"/>; memory is contiguous, but a caller that may use it beyond
    /// the address's 2 MiB chunk says so through <see cref="Span"/>, <see cref="Read"/> or <see cref="Write"/>, which
    /// count every chunk they reach. The caller has checked <see cref="Contains"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* PointerTo(ulong address)
    {
        ulong chunk = address >> ChunkBits;
        // The test is a predicted branch, not a link in the address's dependency chain.
        if ((reachedChunks[chunk >> 6] & (1UL << (int)(chunk & 63))) == 0)
            Reach(chunk);
        return host + address;
    }

    /// <summary>A host span of <paramref name="length"/> bytes that must not cross a 2 MiB chunk (a frame of any size qualifies).</summary>
    public Span<byte> Span(ulong address, int length)
    {
        if (!Contains(address, (ulong)length) || (address & ChunkOffsetMask) + (ulong)length > ChunkSize)
            throw new ArgumentOutOfRangeException(nameof(address), $"span 0x{address:x}+0x{length:x} is outside memory or crosses a 2 MiB chunk");
        return new Span<byte>(PointerTo(address), length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    void Reach(ulong chunk)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        reachedChunks[chunk >> 6] |= 1UL << (int)(chunk & 63);
        BackedBytes += ChunkSize;
    }

    /// <summary>
    /// Reads an aligned or unaligned 8-byte little-endian value; page-table entries are read this way. A read reaches no
    /// chunk: memory nobody has written reads as zeros either way, and the walker's reads stay one load each.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PhysicalAccessStatus TryRead64(ulong address, out ulong value)
    {
        if (!Contains(address, 8)) { value = 0; return PhysicalAccessStatus.OutOfRange; }
        value = Unsafe.ReadUnaligned<ulong>(host + address);
        return PhysicalAccessStatus.Ok;
    }

    /// <summary>Writes an aligned or unaligned 8-byte little-endian value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PhysicalAccessStatus TryWrite64(ulong address, ulong value)
    {
        if (!Contains(address, 8)) return PhysicalAccessStatus.OutOfRange;
        if ((address & ChunkOffsetMask) > ChunkSize - 8) PointerTo(address + 7); // the value's last bytes are in the next chunk
        Unsafe.WriteUnaligned(PointerTo(address), value);
        return PhysicalAccessStatus.Ok;
    }

    /// <summary>Reads 1..8 bytes (little-endian, zero-extended) at any alignment.</summary>
    public PhysicalAccessStatus TryRead(ulong address, int size, out ulong value)
    {
        value = 0;
        if ((uint)(size - 1) > 7) throw new ArgumentOutOfRangeException(nameof(size));
        if (!Contains(address, (ulong)size)) return PhysicalAccessStatus.OutOfRange;
        Span<byte> bytes = stackalloc byte[8];
        bytes.Clear();
        Read(address, bytes[..size]);
        value = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return PhysicalAccessStatus.Ok;
    }

    /// <summary>Writes the low 1..8 bytes of <paramref name="value"/> at any alignment.</summary>
    public PhysicalAccessStatus TryWrite(ulong address, int size, ulong value)
    {
        if ((uint)(size - 1) > 7) throw new ArgumentOutOfRangeException(nameof(size));
        if (!Contains(address, (ulong)size)) return PhysicalAccessStatus.OutOfRange;
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Write(address, bytes[..size]);
        return PhysicalAccessStatus.Ok;
    }

    /// <summary>Copies physical memory into <paramref name="destination"/>, across chunk boundaries.</summary>
    public PhysicalAccessStatus Read(ulong address, Span<byte> destination)
    {
        if (!Contains(address, (ulong)destination.Length)) return PhysicalAccessStatus.OutOfRange;
        while (!destination.IsEmpty)
        {
            int n = (int)Math.Min((ulong)destination.Length, ChunkSize - (address & ChunkOffsetMask));
            new ReadOnlySpan<byte>(PointerTo(address), n).CopyTo(destination);
            destination = destination[n..];
            address += (ulong)n;
        }
        return PhysicalAccessStatus.Ok;
    }

    /// <summary>Copies <paramref name="source"/> into physical memory, across chunk boundaries.</summary>
    public PhysicalAccessStatus Write(ulong address, ReadOnlySpan<byte> source)
    {
        if (!Contains(address, (ulong)source.Length)) return PhysicalAccessStatus.OutOfRange;
        while (!source.IsEmpty)
        {
            int n = (int)Math.Min((ulong)source.Length, ChunkSize - (address & ChunkOffsetMask));
            source[..n].CopyTo(new Span<byte>(PointerTo(address), n));
            source = source[n..];
            address += (ulong)n;
        }
        return PhysicalAccessStatus.Ok;
    }

    public void Dispose()
    {
        if (disposed || host == null) return; // null: the constructor failed to reserve the range, nothing to unmap
        disposed = true;
        Munmap((nint)host, (nuint)Size);
        GC.SuppressFinalize(this);
    }

    ~PhysicalMemory() => Dispose();
}
