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
/// Guest physical memory, backed lazily in 2 MiB-aligned host chunks so that a 2 MiB guest frame
/// is one contiguous host span and every 4 KiB frame is a span inside one chunk (DESIGN.md point 4).
/// Untouched chunks cost nothing; a chunk is allocated zeroed on its first access.
/// </summary>
public sealed unsafe class PhysicalMemory : IDisposable
{
    /// <summary>log2 of the host backing chunk: one chunk per 2 MiB huge frame.</summary>
    public const int ChunkBits = 21;
    public const ulong ChunkSize = 1UL << ChunkBits;
    const ulong ChunkOffsetMask = ChunkSize - 1;

    readonly byte*[] chunks;
    bool disposed;

    /// <param name="size">Bytes of physical memory; a multiple of 2 MiB, at most 1 TiB.</param>
    public PhysicalMemory(ulong size)
    {
        if (size == 0 || (size & ChunkOffsetMask) != 0 || size > (1UL << 40))
            throw new ArgumentOutOfRangeException(nameof(size), size, "physical memory must be a non-zero multiple of 2 MiB, at most 1 TiB");
        Size = size;
        chunks = new byte*[size >> ChunkBits];
    }

    /// <summary>Configured size in bytes. Physical addresses [0, Size) are valid.</summary>
    public ulong Size { get; }

    /// <summary>Host bytes currently backing guest memory (chunks touched so far).</summary>
    public ulong BackedBytes { get; private set; }

    /// <summary>True when [address, address + length) lies inside physical memory; written so it cannot overflow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Contains(ulong address, ulong length) => address < Size && length <= Size - address;

    /// <summary>
    /// Host pointer to the byte at <paramref name="address"/>; valid for the rest of its 2 MiB chunk.
    /// The caller has checked <see cref="Contains"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* PointerTo(ulong address)
    {
        byte* chunk = chunks[address >> ChunkBits];
        if (chunk == null)
            chunk = Allocate(address >> ChunkBits);
        return chunk + (address & ChunkOffsetMask);
    }

    /// <summary>A host span of <paramref name="length"/> bytes that must not cross a 2 MiB chunk (a frame of any size qualifies).</summary>
    public Span<byte> Span(ulong address, int length)
    {
        if (!Contains(address, (ulong)length) || (address & ChunkOffsetMask) + (ulong)length > ChunkSize)
            throw new ArgumentOutOfRangeException(nameof(address), $"span 0x{address:x}+0x{length:x} is outside memory or crosses a 2 MiB chunk");
        return new Span<byte>(PointerTo(address), length);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    byte* Allocate(ulong chunkIndex)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var chunk = (byte*)NativeMemory.AlignedAlloc((nuint)ChunkSize, 4096);
        NativeMemory.Clear(chunk, (nuint)ChunkSize);
        chunks[chunkIndex] = chunk;
        BackedBytes += ChunkSize;
        return chunk;
    }

    /// <summary>Reads an aligned or unaligned 8-byte little-endian value; page-table entries are read this way.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PhysicalAccessStatus TryRead64(ulong address, out ulong value)
    {
        if (!Contains(address, 8)) { value = 0; return PhysicalAccessStatus.OutOfRange; }
        if ((address & ChunkOffsetMask) <= ChunkSize - 8)
        {
            value = Unsafe.ReadUnaligned<ulong>(PointerTo(address));
            return PhysicalAccessStatus.Ok;
        }
        value = ReadAcrossChunks64(address);
        return PhysicalAccessStatus.Ok;
    }

    // Kept out of line: the walker inlines TryRead64 for every entry it reads, and only unaligned reads get here.
    [MethodImpl(MethodImplOptions.NoInlining)]
    ulong ReadAcrossChunks64(ulong address)
    {
        Span<byte> bytes = stackalloc byte[8];
        Read(address, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>Writes an aligned or unaligned 8-byte little-endian value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PhysicalAccessStatus TryWrite64(ulong address, ulong value)
    {
        if (!Contains(address, 8)) return PhysicalAccessStatus.OutOfRange;
        if ((address & ChunkOffsetMask) <= ChunkSize - 8)
            Unsafe.WriteUnaligned(PointerTo(address), value);
        else
            WriteAcrossChunks64(address, value);
        return PhysicalAccessStatus.Ok;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    void WriteAcrossChunks64(ulong address, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Write(address, bytes);
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
        if (disposed) return;
        disposed = true;
        for (int i = 0; i < chunks.Length; i++)
        {
            if (chunks[i] != null)
            {
                NativeMemory.AlignedFree(chunks[i]);
                chunks[i] = null;
            }
        }
        GC.SuppressFinalize(this);
    }

    ~PhysicalMemory() => Dispose();
}
