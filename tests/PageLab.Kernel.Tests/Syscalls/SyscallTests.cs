using System.Buffers.Binary;
using System.Text;
using PageLab.Kernel.Mm;
using PageLab.Kernel.Syscalls;
using static PageLab.Kernel.Tests.Syscalls.ProcessFixture;

namespace PageLab.Kernel.Tests.Syscalls;

public class SyscallTests
{
    static long Err(Errno errno) => -(long)errno;

    [Fact]
    public void Write_CopiesGuestBufferToTheStream()
    {
        using var p = new ProcessFixture();
        ulong text = p.PutString("hello\n");
        Assert.Equal(6, p.Call(SyscallNumber.Write, 1, text, 6));
        Assert.Equal("hello\n", p.Stdout.Text);
    }

    [Fact]
    public void Write_WithBadPointer_IsEfault_AndBadFd_IsEbadf()
    {
        using var p = new ProcessFixture();
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Write, 1, 0x10, 6));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Write, 1, ulong.MaxValue - 2, 6));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Write, 77, Scratch, 1));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Write, unchecked((ulong)-1), Scratch, 1));
        Assert.Equal(0, p.Call(SyscallNumber.Write, 1, 0x10, 0));
        Assert.Equal("", p.Stdout.Text);
    }

    [Fact]
    public void WriteToBrokenPipe_IsEpipe_AndSigpipeKillsUnlessIgnored()
    {
        using (var p = new ProcessFixture(stdout: new BrokenPipe()))
        {
            Assert.Equal(Err(Errno.EPIPE), p.Call(SyscallNumber.Write, 1, p.PutString("x"), 1));
            Assert.Equal(13, p.Process.TerminatingSignal);
            Assert.Equal("write to a pipe with no reader", p.Process.KillReason);
        }
        using (var p = new ProcessFixture(stdout: new BrokenPipe()))
        {
            Assert.True(p.Process.User.TryWriteUInt64(Scratch + 64, 1));
            Assert.Equal(0, p.Call(SyscallNumber.RtSigaction, 13, Scratch + 64, 0, 8));
            Assert.Equal(Err(Errno.EPIPE), p.Call(SyscallNumber.Write, 1, p.PutString("x"), 1));
            Assert.False(p.Process.HasExited);
        }
    }

    [Fact]
    public void Read_FillsGuestBufferFromStdin()
    {
        using var p = new ProcessFixture(stdin: Encoding.ASCII.GetBytes("abc"));
        Assert.Equal(3, p.Call(SyscallNumber.Read, 0, Scratch + 100, 64));
        Assert.Equal("abc", p.ReadText(Scratch + 100, 3));
        Assert.Equal(0, p.Call(SyscallNumber.Read, 0, Scratch + 100, 64));
    }

    [Fact]
    public void Writev_GathersSegmentsInOrder_AndRejectsBadCounts()
    {
        using var p = new ProcessFixture();
        ulong a = p.PutString("ab", 0), b = p.PutString("cde", 16);
        var iov = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(iov, a);
        BinaryPrimitives.WriteUInt64LittleEndian(iov.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt64LittleEndian(iov.AsSpan(16), b);
        BinaryPrimitives.WriteUInt64LittleEndian(iov.AsSpan(24), 3);
        Assert.True(p.Process.User.TryWrite(Scratch + 256, iov));
        Assert.Equal(5, p.Call(SyscallNumber.Writev, 1, Scratch + 256, 2));
        Assert.Equal("abcde", p.Stdout.Text);
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Writev, 1, Scratch + 256, 1025));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Writev, 1, 0x20, 1));
    }

    [Fact]
    public void Openat_ReadsAllowedHostFiles_ReadOnly()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Join(dir.Path, "data.txt"), "content!");
        using var p = new ProcessFixture([dir.Path]);
        ulong path = p.PutString(Path.Join(dir.Path, "data.txt"));
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), path, 0);
        Assert.Equal(3, fd);
        Assert.Equal(8, p.Call(SyscallNumber.Read, (ulong)fd, Scratch + 512, 100));
        Assert.Equal("content!", p.ReadText(Scratch + 512, 8));
        Assert.Equal(4, p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 512, 4, 4));
        Assert.Equal("ent!", p.ReadText(Scratch + 512, 4));
        Assert.Equal(2, p.Call(SyscallNumber.Lseek, (ulong)fd, 2, 0));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Write, (ulong)fd, Scratch, 1));
        Assert.Equal(0, p.Call(SyscallNumber.Close, (ulong)fd));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Close, (ulong)fd));

        Assert.Equal(Err(Errno.EROFS), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), path, 2));
        Assert.Equal(Err(Errno.EROFS), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(Path.Join(dir.Path, "new"), 1024), 0x41));
        Assert.Equal(Err(Errno.ENOENT), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(Path.Join(dir.Path, "missing"), 1024), 0));
        Assert.Equal(Err(Errno.EEXIST), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), path, 0xC0)); // O_CREAT|O_EXCL, read-only
        Assert.Equal(Err(Errno.EEXIST), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), path, 0xC2)); // and read-write
    }

    [Fact]
    public void Openat_OutsideAllowedPaths_IsEacces_EvenThroughSymlinks()
    {
        using var allowed = new TempDirectory();
        using var secret = new TempDirectory();
        File.WriteAllText(Path.Join(secret.Path, "secret"), "x");
        File.CreateSymbolicLink(Path.Join(allowed.Path, "link"), Path.Join(secret.Path, "secret"));
        using var p = new ProcessFixture([allowed.Path]);
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(Path.Join(secret.Path, "secret")), 0));
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(Path.Join(allowed.Path, "link")), 0));
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(allowed.Path + "/../" + Path.GetFileName(secret.Path) + "/secret"), 0));
        Assert.Equal(Err(Errno.ENOENT), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/nonexistent/file"), 0));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), 0x30, 0));
    }

    [Fact]
    public void ProcSelfMaps_IsTheAddressSpaceInLinuxFormat()
    {
        using var p = new ProcessFixture();
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/maps"), 0);
        Assert.True(fd >= 3);
        long n = p.Call(SyscallNumber.Read, (ulong)fd, Scratch + 4096, 4096);
        Assert.Equal(p.Process.Space.FormatMaps(), p.ReadText(Scratch + 4096, (int)n));
        Assert.StartsWith("10000000-10100000 rw-p 00000000 00:00 0", p.ReadText(Scratch + 4096, (int)n), StringComparison.Ordinal);
        Assert.Equal(Err(Errno.ENOENT), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/environ"), 0));
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/maps"), 1));
    }

    [Fact]
    public void ProcSelfPagemap_ReportsPresentExclusiveZeroPageAndFrames()
    {
        using var p = new ProcessFixture();
        ulong region = (ulong)p.Call(SyscallNumber.Mmap, 0, 4 * 4096, 3, 0x22, unchecked((ulong)-1), 0);
        Assert.True(p.Process.User.TryWriteUInt64(region, 1));
        Assert.True(p.Process.User.TryReadUInt64(region + 2 * 4096, out _));
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/pagemap"), 0);
        Assert.True(fd >= 3);
        Assert.Equal(32, p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 4096, 32, region / 4096 * 8));
        ulong written = p.Read64(Scratch + 4096), untouched = p.Read64(Scratch + 4096 + 8), zero = p.Read64(Scratch + 4096 + 16);
        Assert.Equal(AddressSpace.PagemapPresent | AddressSpace.PagemapExclusive | AddressSpace.PagemapSoftDirty,
            written & ~AddressSpace.PagemapFrameMask);
        Assert.Equal(p.Process.Space.Tables.ReadPte(region).FrameNumber, written & AddressSpace.PagemapFrameMask);
        Assert.Equal(AddressSpace.PagemapSoftDirty, untouched);
        Assert.Equal(AddressSpace.PagemapPresent | AddressSpace.PagemapSoftDirty, zero & ~AddressSpace.PagemapFrameMask);
        Assert.Equal(16, p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 4096, 16, 0x4000 / 4096 * 8));
        Assert.Equal(0UL, p.Read64(Scratch + 4096));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 4096, 12, 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 4096, 8, 4));
        Assert.Equal(0, p.Call(SyscallNumber.Pread64, (ulong)fd, Scratch + 4096, 8, (long)(AddressSpace.TaskSize / 4096 * 8)));
    }

    [Fact]
    public void TransparentHugepageSysfsFiles_ReadLikeLinux()
    {
        using var p = new ProcessFixture();
        string ReadAll(string path)
        {
            long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(path), 0);
            Assert.True(fd >= 0);
            long n = p.Call(SyscallNumber.Read, (ulong)fd, Scratch + 4096, 100);
            p.Call(SyscallNumber.Close, (ulong)fd);
            return p.ReadText(Scratch + 4096, (int)n);
        }
        Assert.Equal("always [madvise] never\n", ReadAll("/sys/kernel/mm/transparent_hugepage/enabled"));
        Assert.Equal("2097152\n", ReadAll("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"));
    }

    [Fact]
    public void ReadlinkProcSelfExe_GivesProgramPath_Truncated_WithoutNul()
    {
        using var p = new ProcessFixture();
        ulong path = p.PutString("/proc/self/exe");
        Assert.Equal(19, p.Call(SyscallNumber.Readlink, path, Scratch + 512, 100));
        Assert.Equal("/usr/local/bin/prog", p.ReadText(Scratch + 512, 19));
        Assert.Equal(4, p.Call(SyscallNumber.Readlink, path, Scratch + 512, 4));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Readlink, path, Scratch + 512, 0));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Readlink, path, 0x40, 100));
        Assert.Equal(19, p.Call(SyscallNumber.Readlink, p.PutString($"/proc/{Process.LinuxProcess.ProcessId}/exe", 200), Scratch + 512, 100));
    }

    [Fact]
    public void Readlink_OfHostLinks_IsConfinedLikeOpen()
    {
        using var allowed = new TempDirectory();
        using var other = new TempDirectory();
        File.WriteAllText(Path.Join(allowed.Path, "plain"), "x");
        File.CreateSymbolicLink(Path.Join(allowed.Path, "link"), "../elsewhere/target");
        File.CreateSymbolicLink(Path.Join(other.Path, "link"), "t");
        using var p = new ProcessFixture([allowed.Path]);
        Assert.Equal(19, p.Call(SyscallNumber.Readlink, p.PutString(Path.Join(allowed.Path, "link")), Scratch + 512, 100));
        Assert.Equal("../elsewhere/target", p.ReadText(Scratch + 512, 19));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Readlink, p.PutString(Path.Join(allowed.Path, "plain")), Scratch + 512, 100));
        Assert.Equal(Err(Errno.ENOENT), p.Call(SyscallNumber.Readlink, p.PutString(Path.Join(allowed.Path, "none")), Scratch + 512, 100));
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Readlink, p.PutString(Path.Join(other.Path, "link")), Scratch + 512, 100));
    }

    [Fact]
    public void Fstat_OfStdoutAndVirtualFiles_AndNewfstatatEmptyPath()
    {
        using var p = new ProcessFixture();
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString("/proc/self/maps"), 0);
        Assert.Equal(0, p.Call(SyscallNumber.Fstat, (ulong)fd, Scratch + 1024));
        Assert.Equal(0x8124u, BinaryPrimitives.ReadUInt32LittleEndian(p.ReadBytes(Scratch + 1024 + 24, 4)));
        Assert.Equal(0, p.Call(SyscallNumber.Newfstatat, (ulong)fd, p.PutString(""), Scratch + 2048, 0x1000));
        Assert.Equal(Err(Errno.ENOENT), p.Call(SyscallNumber.Newfstatat, (ulong)fd, p.PutString(""), Scratch + 2048, 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Newfstatat, (ulong)fd, p.PutString(""), Scratch + 2048, 0x4));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Fstat, (ulong)fd, 0x50));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Fstat, 99, Scratch));
    }

    [Fact]
    public void Getdents64_ListsAllowedDirectory()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Join(dir.Path, "one"), "");
        File.WriteAllText(Path.Join(dir.Path, "two"), "");
        using var p = new ProcessFixture([dir.Path]);
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(dir.Path), 0x10000);
        Assert.True(fd >= 3);
        long n = p.Call(SyscallNumber.Getdents64, (ulong)fd, Scratch + 4096, 4096);
        var names = new List<string>();
        var buffer = p.ReadBytes(Scratch + 4096, (int)n);
        for (int offset = 0; offset < n;)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(offset + 16));
            names.Add(Encoding.UTF8.GetString(buffer, offset + 19, Array.IndexOf(buffer, (byte)0, offset + 19) - offset - 19));
            offset += length;
        }
        Assert.Equal([".", "..", "one", "two"], names.Order(StringComparer.Ordinal));
        Assert.Equal(0, p.Call(SyscallNumber.Getdents64, (ulong)fd, Scratch + 4096, 4096));
    }

    [Fact]
    public void Ioctl_TcgetsOnRegularFile_IsEnotty()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Join(dir.Path, "f"), "x");
        using var p = new ProcessFixture([dir.Path]);
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(Path.Join(dir.Path, "f")), 0);
        Assert.Equal(Err(Errno.ENOTTY), p.Call(SyscallNumber.Ioctl, (ulong)fd, 0x5401, Scratch));
        Assert.Equal(Err(Errno.ENOTTY), p.Call(SyscallNumber.Ioctl, (ulong)fd, 0x5413, Scratch));
        Assert.Equal(Err(Errno.ENOTTY), p.Call(SyscallNumber.Ioctl, (ulong)fd, 0x1234, Scratch));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Ioctl, 55, 0x5401, Scratch));
    }

    [Fact]
    public void Mmap_Anonymous_IsTopDown_AndValidatesArguments()
    {
        using var p = new ProcessFixture();
        const ulong PrivateAnon = 0x22, ReadWrite = 3;
        long address = p.Call(SyscallNumber.Mmap, 0, 8192, ReadWrite, PrivateAnon, unchecked((ulong)-1), 0);
        Assert.Equal((long)(AddressSpace.MmapBase - 8192), address);
        Assert.Equal(0UL, p.Read64((ulong)address + 4096));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mmap, 0, 0, ReadWrite, PrivateAnon, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mmap, 0, 4096, ReadWrite, 0x20, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mmap, 0, 4096, ReadWrite, PrivateAnon, unchecked((ulong)-1), 100));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mmap, 0, 4096, 0x10, PrivateAnon, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.ENOMEM), p.Call(SyscallNumber.Mmap, 0, ulong.MaxValue - 100, ReadWrite, PrivateAnon, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EPERM), p.Call(SyscallNumber.Mmap, 0x1000, 4096, ReadWrite, PrivateAnon | 0x10, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mmap, Scratch + 1, 4096, ReadWrite, PrivateAnon | 0x10, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EEXIST), p.Call(SyscallNumber.Mmap, Scratch, 4096, ReadWrite, PrivateAnon | 0x100000, unchecked((ulong)-1), 0));
        Assert.Equal(Err(Errno.EBADF), p.Call(SyscallNumber.Mmap, 0, 4096, 1, 2, 40, 0));
        Assert.Equal((long)Scratch, p.Call(SyscallNumber.Mmap, Scratch, 4096, 1, PrivateAnon | 0x10, unchecked((ulong)-1), 0));
    }

    [Fact]
    public void Mmap_PrivateFile_ShowsFileContent_AndCopiesOnWrite()
    {
        using var dir = new TempDirectory();
        string file = Path.Join(dir.Path, "f");
        File.WriteAllBytes(file, [.. Enumerable.Range(0, 5000).Select(i => (byte)i)]);
        using var p = new ProcessFixture([dir.Path]);
        long fd = p.Call(SyscallNumber.Openat, unchecked((ulong)-100), p.PutString(file), 0);
        long address = p.Call(SyscallNumber.Mmap, 0, 8192, 3, 2, (ulong)fd, 4096);
        Assert.True(address > 0);
        Assert.Equal((byte)(4096 % 256), p.ReadBytes((ulong)address, 1)[0]);
        Assert.True(p.Process.User.TryWrite((ulong)address, [0xee]));
        Assert.Equal(0xee, p.ReadBytes((ulong)address, 1)[0]);
        Assert.Equal(0, File.ReadAllBytes(file)[4096]);
        Assert.Equal(Err(Errno.EACCES), p.Call(SyscallNumber.Mmap, 0, 4096, 3, 1, (ulong)fd, 0));
        Assert.Contains(file, p.Process.Space.FormatMaps(), StringComparison.Ordinal);
        Assert.Equal(0, p.Call(SyscallNumber.Close, (ulong)fd));
        Assert.Equal((byte)(4097 % 256), p.ReadBytes((ulong)address + 1, 1)[0]);
    }

    [Fact]
    public void MunmapAndMprotect_ValidateLikeLinux()
    {
        using var p = new ProcessFixture(stdin: [1, 2, 3]);
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Munmap, Scratch + 1, 4096));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Munmap, Scratch, 0));
        Assert.Equal(0, p.Call(SyscallNumber.Munmap, Scratch + ScratchSize - 4096, 4096));
        Assert.Equal(Err(Errno.ENOMEM), p.Call(SyscallNumber.Mprotect, Scratch, ScratchSize, 1));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mprotect, Scratch + 2, 4096, 1));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mprotect, Scratch, 4096, 0x100));
        Assert.Equal(0, p.Call(SyscallNumber.Mprotect, Scratch, 4096, 1));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Read, 0, Scratch, 10));
    }

    [Fact]
    public void Mremap_ShrinksGrowsInPlaceOrMoves_LikeLinux()
    {
        using var p = new ProcessFixture();
        const ulong MayMove = 1, Fixed = 2;
        long a = p.Call(SyscallNumber.Mmap, 0, 4 * 4096, 3, 0x22, unchecked((ulong)-1), 0);
        Assert.True(p.Process.User.TryWriteUInt64((ulong)a, 99));
        Assert.Equal(a, p.Call(SyscallNumber.Mremap, (ulong)a, 4 * 4096, 2 * 4096, 0, 0));
        Assert.Equal(a, p.Call(SyscallNumber.Mremap, (ulong)a, 2 * 4096, 3 * 4096, 0, 0));
        long b = p.Call(SyscallNumber.Mmap, (ulong)a + 3 * 4096, 4096, 3, 0x32, unchecked((ulong)-1), 0);
        Assert.Equal(a + 3 * 4096, b);
        Assert.Equal(Err(Errno.ENOMEM), p.Call(SyscallNumber.Mremap, (ulong)a, 3 * 4096, 8 * 4096, 0, 0));
        long moved = p.Call(SyscallNumber.Mremap, (ulong)a, 3 * 4096, 8 * 4096, MayMove, 0);
        Assert.NotEqual(a, moved);
        Assert.Equal(99UL, p.Read64((ulong)moved));
        Assert.Equal((long)Scratch + 0x8000, p.Call(SyscallNumber.Mremap, (ulong)moved, 8 * 4096, 4096, MayMove | Fixed, Scratch + 0x8000));
        Assert.Equal(99UL, p.Read64(Scratch + 0x8000));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mremap, Scratch + 1, 4096, 4096, 0, 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mremap, Scratch, 4096, 4096, Fixed, Scratch + 0x10000));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mremap, Scratch, 4096, 4096, 8, 0));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Mremap, 0x2000_0000, 4096, 8192, MayMove, 0));
        // Linux 6.18, measured: sizes beyond the user range and shrinks of unmapped ranges fail, and unmap nothing.
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Mremap, Scratch, 4096, 1UL << 63, MayMove | Fixed, Scratch + 0x40_0000));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Mremap, 0x2000_0000, 1UL << 47, 4097, MayMove, 0));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Mremap, 0x2000_0000, 4096, 1, 0, 0));
        Assert.Equal(0UL, p.Read64(Scratch));
    }

    [Fact]
    public void Brk_ReturnsCurrentBreak_AndGrowsTheHeap()
    {
        using var p = new ProcessFixture();
        p.Process.Space.StartBrk = p.Process.Space.Brk = 0x60_0000;
        Assert.Equal(0x60_0000, p.Call(SyscallNumber.Brk, 0));
        Assert.Equal(0x62_1000, p.Call(SyscallNumber.Brk, 0x62_1000));
        Assert.Equal(0UL, p.Read64(0x62_0ff8));
    }

    [Fact]
    public void ArchPrctl_SetsAndGetsFsBase()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.ArchPrctl, 0x1002, 0x7000_1234));
        Assert.Equal(0x7000_1234UL, p.Thread.FsBase);
        Assert.Equal(0, p.Call(SyscallNumber.ArchPrctl, 0x1003, Scratch));
        Assert.Equal(0x7000_1234UL, p.Read64(Scratch));
        Assert.Equal(Err(Errno.EPERM), p.Call(SyscallNumber.ArchPrctl, 0x1002, 0xffff_8000_0000_0000));
        Assert.Equal(Err(Errno.EPERM), p.Call(SyscallNumber.ArchPrctl, 0x1002, 0x7fff_ffff_f000)); // the guard page, as Linux 6.18
        Assert.Equal(0, p.Call(SyscallNumber.ArchPrctl, 0x1002, 0x7fff_ffff_efff));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.ArchPrctl, 0x9999, 0));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.ArchPrctl, 0x1003, 0x10));
    }

    [Fact]
    public void ClockGettime_ReadsVirtualTime()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.ClockGettime, 1, Scratch));
        ulong seconds = p.Read64(Scratch), nanoseconds = p.Read64(Scratch + 8);
        Assert.Equal(5UL, seconds);
        Assert.InRange(nanoseconds, 123UL, 100_000UL);
        Assert.Equal(0, p.Call(SyscallNumber.ClockGettime, 0, Scratch));
        Assert.Equal((ulong)Process.LinuxProcess.RealtimeEpochSeconds + 5, p.Read64(Scratch));
        Assert.Equal(Process.LinuxProcess.RealtimeEpochSeconds + 5, p.Call(SyscallNumber.Time, 0));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.ClockGettime, 99, Scratch));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.ClockGettime, 1, 8));
    }

    [Fact]
    public void Nanosleep_AdvancesVirtualTime()
    {
        using var p = new ProcessFixture();
        Assert.True(p.Process.User.TryWriteUInt64(Scratch, 2) && p.Process.User.TryWriteUInt64(Scratch + 8, 500));
        ulong before = p.Time.Nanoseconds;
        Assert.Equal(0, p.Call(SyscallNumber.Nanosleep, Scratch, 0));
        Assert.True(p.Time.Nanoseconds - before >= 2_000_000_500UL);
        Assert.True(p.Process.User.TryWriteUInt64(Scratch + 8, 1_000_000_000));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Nanosleep, Scratch, 0));
    }

    [Fact]
    public void Getrandom_IsDeterministicPerSeed()
    {
        byte[] Draw(ulong seed)
        {
            using var p = new ProcessFixture(seed: seed);
            Assert.Equal(32, p.Call(SyscallNumber.Getrandom, Scratch, 32, 0));
            return p.ReadBytes(Scratch, 32);
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
        using var q = new ProcessFixture();
        Assert.Equal(Err(Errno.EINVAL), q.Call(SyscallNumber.Getrandom, Scratch, 8, 0x6));
        Assert.Equal(Err(Errno.EFAULT), q.Call(SyscallNumber.Getrandom, 0x20, 8, 0));
    }

    [Fact]
    public void Uname_ReportsLinuxX86_64()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Uname, Scratch));
        Assert.Equal("Linux", p.ReadText(Scratch, 5));
        Assert.Equal("x86_64", p.ReadText(Scratch + 4 * 65, 6));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.Uname, 0x20));
    }

    [Fact]
    public void Identity_IsFixedPidAndConfiguredCredentials()
    {
        using var p = new ProcessFixture();
        Assert.Equal(Process.LinuxProcess.ProcessId, p.Call(SyscallNumber.Getpid));
        Assert.Equal(Process.LinuxProcess.ProcessId, p.Call(SyscallNumber.Gettid));
        Assert.Equal(Process.LinuxProcess.ParentProcessId, p.Call(SyscallNumber.Getppid));
        Assert.Equal(Process.LinuxProcess.ProcessId, p.Call(SyscallNumber.SetTidAddress, Scratch));
        Assert.Equal(Scratch, p.Process.ClearChildTid);
    }

    [Fact]
    public void RtSigaction_RecordsHandlers_AndRejectsSigkill()
    {
        using var p = new ProcessFixture();
        Assert.True(p.Process.User.TryWriteUInt64(Scratch, 0x40_1234));
        Assert.Equal(0, p.Call(SyscallNumber.RtSigaction, 10, Scratch, 0, 8));
        Assert.Equal(0x40_1234UL, p.Process.SignalHandler(10));
        Assert.Equal(0, p.Call(SyscallNumber.RtSigaction, 10, 0, Scratch + 64, 8));
        Assert.Equal(0x40_1234UL, p.Read64(Scratch + 64));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.RtSigaction, 9, Scratch, 0, 8));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.RtSigaction, 10, Scratch, 0, 4));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.RtSigaction, 65, 0, 0, 8));
        Assert.Equal(Err(Errno.EFAULT), p.Call(SyscallNumber.RtSigaction, 10, 0x10, 0, 8));
    }

    [Fact]
    public void RtSigprocmask_BlocksAndReportsOldMask_NeverSigkill()
    {
        using var p = new ProcessFixture();
        Assert.True(p.Process.User.TryWriteUInt64(Scratch, ulong.MaxValue));
        Assert.Equal(0, p.Call(SyscallNumber.RtSigprocmask, 0, Scratch, Scratch + 8, 8));
        Assert.Equal(0UL, p.Read64(Scratch + 8));
        Assert.Equal(ulong.MaxValue & ~((1UL << 8) | (1UL << 18)), p.Process.SignalMask);
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.RtSigprocmask, 7, Scratch, 0, 8));
    }

    [Fact]
    public void Tgkill_SigabrtWithDefaultAction_KillsTheProcess()
    {
        using var p = new ProcessFixture();
        Assert.Equal(Err(Errno.ESRCH), p.Call(SyscallNumber.Tgkill, 1, 1, 6));
        Assert.False(p.Process.HasExited);
        Assert.Equal(0, p.Call(SyscallNumber.Tgkill, (ulong)Process.LinuxProcess.ProcessId, (ulong)Process.LinuxProcess.ProcessId, 6));
        Assert.Equal(6, p.Process.TerminatingSignal);
    }

    [Fact]
    public void ExitGroup_RecordsLowByteOfStatus()
    {
        using var p = new ProcessFixture();
        p.Call(SyscallNumber.ExitGroup, 0x1_03);
        Assert.Equal(3, p.Process.ExitStatus);
        Assert.True(p.Process.HasExited);
    }

    [Fact]
    public void UnknownSyscall_IsEnosys()
    {
        using var p = new ProcessFixture();
        Assert.Equal(Err(Errno.ENOSYS), p.Call((SyscallNumber)999));
        Assert.Equal(Err(Errno.ENOSYS), p.Call((SyscallNumber)153 /* vhangup */));
    }

    [Fact]
    public void Prlimit64_ReportsDefaultStackLimit_AndValidates()
    {
        using var p = new ProcessFixture();
        Assert.Equal(0, p.Call(SyscallNumber.Prlimit64, 0, 3, 0, Scratch));
        Assert.Equal(8UL << 20, p.Read64(Scratch));
        Assert.Equal(ulong.MaxValue, p.Read64(Scratch + 8));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Prlimit64, 0, 99, 0, Scratch));
        Assert.Equal(Err(Errno.ESRCH), p.Call(SyscallNumber.Prlimit64, 1, 3, 0, Scratch));
        Assert.True(p.Process.User.TryWriteUInt64(Scratch + 64, 10) && p.Process.User.TryWriteUInt64(Scratch + 72, 5));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Prlimit64, 0, 3, Scratch + 64, 0));
    }

    [Fact]
    public void SchedGetaffinity_ReportsOneCpu()
    {
        using var p = new ProcessFixture();
        Assert.Equal(8, p.Call(SyscallNumber.SchedGetaffinity, 0, 128, Scratch));
        Assert.Equal(1UL, p.Read64(Scratch));
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.SchedGetaffinity, 0, 4, Scratch));
    }

    [Fact]
    public void Rseq_RegistersOnce_AndUnregistersWithSameSignature()
    {
        using var p = new ProcessFixture();
        const ulong Signature = 0x53053053;
        Assert.Equal(Err(Errno.EINVAL), p.Call(SyscallNumber.Rseq, Scratch + 8, 32, 0, Signature));
        Assert.Equal(0, p.Call(SyscallNumber.Rseq, Scratch + 64, 32, 0, Signature));
        Assert.Equal(Err(Errno.EBUSY), p.Call(SyscallNumber.Rseq, Scratch + 64, 32, 0, Signature));
        Assert.Equal(Err(Errno.EPERM), p.Call(SyscallNumber.Rseq, Scratch + 64, 32, 1, 1));
        Assert.Equal(0, p.Call(SyscallNumber.Rseq, Scratch + 64, 32, 1, Signature));
    }

    [Fact]
    public void Syscalls_ChargeVirtualTime_AndAreCounted()
    {
        using var p = new ProcessFixture();
        ulong before = p.Time.Nanoseconds;
        p.Call(SyscallNumber.Getpid);
        p.Call(SyscallNumber.Getpid);
        Assert.Equal(2 * Process.KernelCosts.SyscallEntry, p.Time.Nanoseconds - before);
        Assert.Equal(2, p.Process.SyscallCount);
        Assert.Equal(2, p.Process.SyscallCounts[(long)SyscallNumber.Getpid]);
    }
}

/// <summary>A temporary host directory removed at the end of a test.</summary>
sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Path = Directory.CreateTempSubdirectory("pagelab-test-").FullName;
    public string Path { get; }
    public void Dispose() => Directory.Delete(Path, recursive: true);
}
