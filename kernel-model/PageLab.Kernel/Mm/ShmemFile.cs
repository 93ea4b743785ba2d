namespace PageLab.Kernel.Mm;

/// <summary>
/// The shmem object behind one MAP_SHARED|MAP_ANONYMOUS mmap (Linux's shmem_zero_setup: an unlinked
/// shmem file named "dev/zero" of the mapping's size). Its pages live in the page cache as
/// <see cref="FrameUse.Shmem"/> frames, swap-backed, found by every VMA that maps the object (the
/// parent's and its forked children's), whenever they were first touched. The object lives as long as
/// a VMA maps it; the last munmap frees its pages and swap slots.
/// </summary>
public sealed class ShmemFile : IMappableFile
{
    /// <param name="length">i_size: the mmap length; an access beyond it (after mremap grew the VMA) is SIGBUS.</param>
    public ShmemFile(long length) => Length = length;

    /// <summary>How /proc/self/maps names the unlinked file.</summary>
    public string Path => "/dev/zero (deleted)";

    public long Length { get; }

    /// <summary>shmem's anonymous device 00:01; the model keeps no inode numbers, so the inode column is 0.</summary>
    public (ulong Device, ulong Inode) Identity => (1, 0);

    /// <summary>A page the object never held is a cleared page: nothing to read into it.</summary>
    public int ReadAt(long offset, Span<byte> destination) => 0;
}
