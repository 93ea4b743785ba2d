namespace PageLab.Kernel.Mm;

/// <summary>A file whose content is held in memory (virtual files, and ELF images built by tests).</summary>
public sealed class InMemoryFile : IMappableFile
{
    readonly byte[] content;

    public InMemoryFile(string path, byte[] content, ulong device = 0, ulong inode = 0)
    {
        Path = path;
        this.content = content;
        Identity = (device, inode);
    }

    public string Path { get; }
    public long Length => content.Length;
    public (ulong Device, ulong Inode) Identity { get; }

    public int ReadAt(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset >= content.Length)
            return 0;
        int count = (int)Math.Min(destination.Length, content.Length - offset);
        content.AsSpan((int)offset, count).CopyTo(destination);
        return count;
    }
}
