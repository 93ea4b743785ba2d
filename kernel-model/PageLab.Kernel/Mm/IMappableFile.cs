namespace PageLab.Kernel.Mm;

/// <summary>A file whose pages can back a private file mapping (the ELF image, a host file the guest opened).</summary>
public interface IMappableFile
{
    /// <summary>Path shown in /proc/self/maps.</summary>
    string Path { get; }

    /// <summary>Size in bytes.</summary>
    long Length { get; }

    /// <summary>Device and inode numbers shown in /proc/self/maps.</summary>
    (ulong Device, ulong Inode) Identity { get; }

    /// <summary>Reads up to destination.Length bytes at <paramref name="offset"/>; returns the count read (0 at or past the end).</summary>
    int ReadAt(long offset, Span<byte> destination);
}
