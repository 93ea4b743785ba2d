using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace PageLab.Emulator.Memory;

/// <summary>The vector width a page copy or zeroing runs with.</summary>
public enum PageCopyPath : byte
{
    /// <summary>8-byte general-purpose moves: the path when the JIT has no hardware intrinsics.</summary>
    Scalar,
    /// <summary>16-byte vectors (SSE2 / AdvSimd).</summary>
    Vector128,
    /// <summary>32-byte vectors (AVX2).</summary>
    Vector256,
    /// <summary>64-byte vectors (AVX-512).</summary>
    Vector512,
}

/// <summary>
/// Copies and zeroes guest frames (4 KiB, 2 MiB, or any length) with the widest vector the host
/// accelerates, chosen once at startup (DESIGN.md point 4). Every path can also be called explicitly
/// so that tests check each one, whatever the host supports: a path the host does not accelerate
/// still runs correctly, in software.
/// Source and destination must not overlap (frames never do): the last block of an odd length is
/// written with one overlapping vector, which would be wrong for a memmove.
/// </summary>
public static unsafe class PageCopy
{
    /// <summary>The widest path this process's JIT accelerates; honours DOTNET_EnableAVX512=0 and friends.</summary>
    public static readonly PageCopyPath BestPath =
        Vector512.IsHardwareAccelerated ? PageCopyPath.Vector512 :
        Vector256.IsHardwareAccelerated ? PageCopyPath.Vector256 :
        Vector128.IsHardwareAccelerated ? PageCopyPath.Vector128 :
        PageCopyPath.Scalar;

    /// <summary>True when <paramref name="path"/> runs on hardware vectors here (false: emulated in software).</summary>
    public static bool IsAccelerated(PageCopyPath path) => path switch
    {
        PageCopyPath.Vector512 => Vector512.IsHardwareAccelerated,
        PageCopyPath.Vector256 => Vector256.IsHardwareAccelerated,
        PageCopyPath.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    /// <summary>Copies <paramref name="length"/> bytes with <see cref="BestPath"/>.</summary>
    public static void Copy(byte* destination, byte* source, nuint length) => Copy(BestPath, destination, source, length);

    /// <summary>Zeroes <paramref name="length"/> bytes with <see cref="BestPath"/>.</summary>
    public static void Zero(byte* destination, nuint length) => Zero(BestPath, destination, length);

    /// <summary>Copies <paramref name="source"/> into the start of <paramref name="destination"/> with <see cref="BestPath"/>.</summary>
    public static void Copy(ReadOnlySpan<byte> source, Span<byte> destination) => Copy(BestPath, source, destination);

    /// <summary>Zeroes <paramref name="destination"/> with <see cref="BestPath"/>.</summary>
    public static void Zero(Span<byte> destination) => Zero(BestPath, destination);

    /// <summary>Copies <paramref name="source"/> into the start of <paramref name="destination"/> with an explicit path.</summary>
    public static void Copy(PageCopyPath path, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (source.Length > destination.Length)
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        fixed (byte* s = source)
        fixed (byte* d = destination)
            Copy(path, d, s, (nuint)source.Length);
    }

    /// <summary>Zeroes <paramref name="destination"/> with an explicit path.</summary>
    public static void Zero(PageCopyPath path, Span<byte> destination)
    {
        fixed (byte* d = destination)
            Zero(path, d, (nuint)destination.Length);
    }

    /// <summary>Copies <paramref name="length"/> bytes with an explicit path.</summary>
    public static void Copy(PageCopyPath path, byte* destination, byte* source, nuint length)
    {
        switch (path)
        {
            case PageCopyPath.Vector512: Run<Copy512>(destination, source, length); break;
            case PageCopyPath.Vector256: Run<Copy256>(destination, source, length); break;
            case PageCopyPath.Vector128: Run<Copy128>(destination, source, length); break;
            default: Run<Copy64>(destination, source, length); break;
        }
    }

    /// <summary>Zeroes <paramref name="length"/> bytes with an explicit path.</summary>
    public static void Zero(PageCopyPath path, byte* destination, nuint length)
    {
        switch (path)
        {
            case PageCopyPath.Vector512: Run<Zero512>(destination, null, length); break;
            case PageCopyPath.Vector256: Run<Zero256>(destination, null, length); break;
            case PageCopyPath.Vector128: Run<Zero128>(destination, null, length); break;
            default: Run<Zero64>(destination, null, length); break;
        }
    }

    /// <summary>
    /// Copies with non-temporal (cache-bypassing) stores, for a destination that will not be read soon.
    /// Needs a destination aligned to the path's width and an x86 host with that store; otherwise it
    /// is an ordinary <see cref="Copy(PageCopyPath, byte*, byte*, nuint)"/>. Ends with SFENCE, because
    /// non-temporal stores are weakly ordered.
    /// </summary>
    public static void CopyNonTemporal(PageCopyPath path, byte* destination, byte* source, nuint length)
    {
        if (path == PageCopyPath.Vector512 && Avx512F.IsSupported && IsAligned(destination, 64))
            Run<CopyNonTemporal512>(destination, source, length);
        else if (path == PageCopyPath.Vector256 && Avx.IsSupported && IsAligned(destination, 32))
            Run<CopyNonTemporal256>(destination, source, length);
        else if (path == PageCopyPath.Vector128 && Sse2.IsSupported && IsAligned(destination, 16))
            Run<CopyNonTemporal128>(destination, source, length);
        else
        {
            Copy(path, destination, source, length);
            return;
        }
        Sse.StoreFence();
    }

    static bool IsAligned(byte* pointer, nuint alignment) => ((nuint)pointer & (alignment - 1)) == 0;

    /// <summary>
    /// The one loop every path shares: four blocks per iteration (enough independent loads and stores
    /// to keep two store ports busy), then single blocks, then one last block ending exactly at the
    /// end (it overlaps bytes already written, which is harmless for non-overlapping buffers).
    /// Lengths below one block go to the kernel's smaller fallback.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Run<TKernel>(byte* destination, byte* source, nuint length) where TKernel : struct, IBlockKernel<TKernel>
    {
        nuint width = TKernel.Width;
        if (length < width)
        {
            TKernel.Short(destination, source, length);
            return;
        }
        nuint offset = 0;
        for (; length - offset >= 4 * width; offset += 4 * width)
        {
            TKernel.Block(destination, source, offset);
            TKernel.Block(destination, source, offset + width);
            TKernel.Block(destination, source, offset + 2 * width);
            TKernel.Block(destination, source, offset + 3 * width);
        }
        for (; length - offset >= width; offset += width)
            TKernel.Block(destination, source, offset);
        if (offset != length)
            TKernel.Last(destination, source, length - width);
    }

    /// <summary>One block operation of a fixed width; structs so that each <see cref="Run"/> is specialised.</summary>
    interface IBlockKernel<TSelf> where TSelf : IBlockKernel<TSelf>
    {
        static abstract nuint Width { get; }
        static abstract void Block(byte* destination, byte* source, nuint offset);
        /// <summary>The final, possibly overlapping and so possibly unaligned block.</summary>
        static virtual void Last(byte* destination, byte* source, nuint offset) => TSelf.Block(destination, source, offset);
        /// <summary>A whole operation shorter than <see cref="Width"/>.</summary>
        static abstract void Short(byte* destination, byte* source, nuint length);
    }

    readonly struct Copy512 : IBlockKernel<Copy512>
    {
        public static nuint Width => 64;
        public static void Block(byte* d, byte* s, nuint o) => Vector512.Store(Vector512.Load(s + o), d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }

    readonly struct Copy256 : IBlockKernel<Copy256>
    {
        public static nuint Width => 32;
        public static void Block(byte* d, byte* s, nuint o) => Vector256.Store(Vector256.Load(s + o), d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }

    readonly struct Copy128 : IBlockKernel<Copy128>
    {
        public static nuint Width => 16;
        public static void Block(byte* d, byte* s, nuint o) => Vector128.Store(Vector128.Load(s + o), d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }

    /// <summary>The scalar path: 8-byte moves, bytes below that.</summary>
    readonly struct Copy64 : IBlockKernel<Copy64>
    {
        public static nuint Width => 8;
        public static void Block(byte* d, byte* s, nuint o) => Unsafe.WriteUnaligned(d + o, Unsafe.ReadUnaligned<ulong>(s + o));
        public static void Short(byte* d, byte* s, nuint n)
        {
            for (nuint i = 0; i < n; i++)
                d[i] = s[i];
        }
    }

    readonly struct Zero512 : IBlockKernel<Zero512>
    {
        public static nuint Width => 64;
        public static void Block(byte* d, byte* s, nuint o) => Vector512.Store(Vector512<byte>.Zero, d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Zero64>(d, s, n);
    }

    readonly struct Zero256 : IBlockKernel<Zero256>
    {
        public static nuint Width => 32;
        public static void Block(byte* d, byte* s, nuint o) => Vector256.Store(Vector256<byte>.Zero, d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Zero64>(d, s, n);
    }

    readonly struct Zero128 : IBlockKernel<Zero128>
    {
        public static nuint Width => 16;
        public static void Block(byte* d, byte* s, nuint o) => Vector128.Store(Vector128<byte>.Zero, d + o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Zero64>(d, s, n);
    }

    readonly struct Zero64 : IBlockKernel<Zero64>
    {
        public static nuint Width => 8;
        public static void Block(byte* d, byte* s, nuint o) => Unsafe.WriteUnaligned(d + o, 0UL);
        public static void Short(byte* d, byte* s, nuint n)
        {
            for (nuint i = 0; i < n; i++)
                d[i] = 0;
        }
    }

    // Non-temporal kernels: aligned streaming stores for whole blocks; the overlapping last block is
    // unaligned, so it takes an ordinary store.

    readonly struct CopyNonTemporal512 : IBlockKernel<CopyNonTemporal512>
    {
        public static nuint Width => 64;
        public static void Block(byte* d, byte* s, nuint o) => Avx512F.StoreAlignedNonTemporal(d + o, Vector512.Load(s + o));
        public static void Last(byte* d, byte* s, nuint o) => Copy512.Block(d, s, o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }

    readonly struct CopyNonTemporal256 : IBlockKernel<CopyNonTemporal256>
    {
        public static nuint Width => 32;
        public static void Block(byte* d, byte* s, nuint o) => Avx.StoreAlignedNonTemporal(d + o, Vector256.Load(s + o));
        public static void Last(byte* d, byte* s, nuint o) => Copy256.Block(d, s, o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }

    readonly struct CopyNonTemporal128 : IBlockKernel<CopyNonTemporal128>
    {
        public static nuint Width => 16;
        public static void Block(byte* d, byte* s, nuint o) => Sse2.StoreAlignedNonTemporal(d + o, Vector128.Load(s + o));
        public static void Last(byte* d, byte* s, nuint o) => Copy128.Block(d, s, o);
        public static void Short(byte* d, byte* s, nuint n) => Run<Copy64>(d, s, n);
    }
}
