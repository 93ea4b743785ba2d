using System.Text;
using PageLab.Kernel.Syscalls;

namespace PageLab.Kernel.Fs;

/// <summary>
/// The file system a guest sees: host files read-only, confined to the paths the user allowed
/// (with symbolic links resolved before the check), plus the virtual procfs and sysfs files
/// PageLab models. An existing host path outside the allowed set answers EACCES, a missing one
/// ENOENT (as natively); an unmodelled /proc or /sys path answers ENOENT; opening anything for
/// writing answers EROFS.
/// </summary>
public sealed class GuestFileSystem
{
    const int O_ACCMODE = 3, O_CREAT = 0x40, O_EXCL = 0x80, O_TRUNC = 0x200, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000;
    const uint RegularReadOnly = 0x8000 | 0x124;   // S_IFREG | 0444
    const uint RegularReadWrite = 0x8000 | 0x1a4;  // S_IFREG | 0644

    readonly string[] allowedPaths;
    readonly Dictionary<string, Func<OpenFile>> specialFiles = new(StringComparer.Ordinal);
    readonly Dictionary<string, (Func<string> Content, uint Mode, Func<string, Errno?>? Write)> virtualFiles;
    readonly Dictionary<string, Func<Span<byte>, long, long>> generatedFiles = new(StringComparer.Ordinal);

    /// <param name="allowedPaths">Host paths (files or directory trees) the guest may open read-only.</param>
    /// <param name="executablePath">The program's canonical path: /proc/self/exe.</param>
    /// <param name="processId">The guest's pid, so /proc/&lt;pid&gt;/ works like /proc/self/.</param>
    /// <param name="maps">Produces the current /proc/self/maps text.</param>
    public GuestFileSystem(IEnumerable<string> allowedPaths, string executablePath, int processId, Func<string> maps)
    {
        // The program's own file is always readable (the user chose to run it; a guest may map itself), its directory is not.
        this.allowedPaths = [.. allowedPaths.Append(executablePath).Select(p => HostInterop.RealPath(p, out string real) == 0 ? real : Path.GetFullPath(p)).Distinct()];
        ExecutablePath = executablePath;
        ProcessId = processId;
        virtualFiles = new Dictionary<string, (Func<string>, uint, Func<string, Errno?>?)>(StringComparer.Ordinal)
        {
            ["/proc/self/maps"] = (maps, RegularReadOnly, null),
            ["/sys/devices/system/cpu/online"] = (() => "0\n", RegularReadOnly, null),
            ["/sys/devices/system/cpu/possible"] = (() => "0\n", RegularReadOnly, null),
        };
    }

    /// <summary>
    /// Adds a procfs/sysfs file whose text is produced at open; with <paramref name="write"/>, the guest may
    /// also write it (each write() is one value, as sysfs takes it; the writer returns an errno or null).
    /// </summary>
    public void AddVirtualFile(string path, Func<string> content, Func<string, Errno?>? write = null) =>
        virtualFiles[path] = (content, write is null ? RegularReadOnly : RegularReadWrite, write);

    /// <summary>Adds a procfs file whose open file is built by <paramref name="open"/> (binary or computed per read, like pagemap).</summary>
    public void AddSpecialFile(string path, Func<OpenFile> open) => specialFiles[path] = open;

    /// <summary>
    /// Adds a read-only procfs file whose bytes are computed at each read (/proc/self/pagemap):
    /// <paramref name="readAt"/>(buffer, offset) returns the bytes read or -errno.
    /// </summary>
    public void AddGeneratedFile(string path, Func<Span<byte>, long, long> readAt) => generatedFiles[path] = readAt;

    public string ExecutablePath { get; }
    public int ProcessId { get; }

    /// <summary>Host paths the guest may read, canonical.</summary>
    public IReadOnlyList<string> AllowedPaths => allowedPaths;

    /// <summary>Joins a guest path with the directory it is relative to and normalises it lexically.</summary>
    public static string Combine(string? baseDirectory, string path) =>
        Path.GetFullPath(path.StartsWith('/') ? path : Path.Combine(baseDirectory ?? Environment.CurrentDirectory, path));

    /// <summary>/proc/self/x and /proc/&lt;pid&gt;/x and /proc/thread-self/x all name the process's own files.</summary>
    string? VirtualKey(string fullPath)
    {
        foreach (string prefix in (string[])[$"/proc/{ProcessId}/", "/proc/thread-self/"])
        {
            if (fullPath.StartsWith(prefix, StringComparison.Ordinal))
                return "/proc/self/" + fullPath[prefix.Length..];
        }
        return fullPath;
    }

    static bool IsVirtualTree(string fullPath) =>
        fullPath == "/proc" || fullPath == "/sys" || fullPath.StartsWith("/proc/", StringComparison.Ordinal) || fullPath.StartsWith("/sys/", StringComparison.Ordinal);

    bool IsAllowed(string canonical) =>
        allowedPaths.Any(a => canonical == a || a == "/" || canonical.StartsWith(a + "/", StringComparison.Ordinal));

    /// <summary>
    /// Resolves a host path: 0 and the canonical path, or realpath's errno (a missing file answers
    /// ENOENT as it would natively), or -EACCES for an existing path outside the allowed set.
    /// </summary>
    int ResolveHost(string fullPath, out string canonical)
    {
        int status = HostInterop.RealPath(fullPath, out canonical);
        if (status != 0)
            return status;
        return IsAllowed(canonical) ? 0 : -(int)Errno.EACCES;
    }

    /// <summary>openat: 0 and the open file, or -errno.</summary>
    public int Open(string? baseDirectory, string path, int flags, out OpenFile? file)
    {
        file = null;
        if (path.Length == 0)
            return -(int)Errno.ENOENT;
        string full = Combine(baseDirectory, path);
        bool write = (flags & O_ACCMODE) != 0 || (flags & O_TRUNC) != 0;
        if (IsVirtualTree(full))
        {
            string key = VirtualKey(full)!;
            if (key == "/proc/self/exe")
                return OpenHost(ExecutablePath, flags, write, out file, checkAllowed: false);
            if (specialFiles.TryGetValue(key, out var open))
            {
                if ((flags & O_DIRECTORY) != 0)
                    return -(int)Errno.ENOTDIR;
                if (write)
                    return -(int)Errno.EACCES;
                file = open();
                return 0;
            }
            ulong inode = (ulong)(uint)key.GetHashCode(StringComparison.Ordinal);
            if (generatedFiles.TryGetValue(key, out var readAt))
            {
                if (write)
                    return -(int)Errno.EACCES;
                file = new VirtualFile(full, readAt, 0, RegularReadOnly, inode) { StatusFlags = flags };
                return 0;
            }
            if (!virtualFiles.TryGetValue(key, out var entry))
                return -(int)Errno.ENOENT;
            if ((flags & O_DIRECTORY) != 0)
                return -(int)Errno.ENOTDIR;
            if (write && entry.Write is null)
                return -(int)Errno.EACCES;
            file = new VirtualFile(full, Encoding.UTF8.GetBytes(entry.Content()), entry.Mode, inode, write ? entry.Write : null)
            {
                StatusFlags = flags,
            };
            return 0;
        }
        return OpenHost(full, flags, write, out file, checkAllowed: true);
    }

    int OpenHost(string full, int flags, bool write, out OpenFile? file, bool checkAllowed)
    {
        file = null;
        string canonical = full;
        int status = checkAllowed ? ResolveHost(full, out canonical) : 0;
        if (status == -(int)Errno.ENOENT && (flags & O_CREAT) != 0)
            return -(int)Errno.EROFS;
        if (status != 0)
            return status;
        // O_CREAT|O_EXCL promises the caller a file it created (lock files rely on it): an existing one is EEXIST,
        // which Linux reports before it would find the file system read-only.
        if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
            return -(int)Errno.EEXIST;
        if (write)
            return -(int)Errno.EROFS;
        int fd = HostInterop.Open(canonical, HostInterop.O_RDONLY | HostInterop.O_CLOEXEC | (flags & (O_DIRECTORY | O_NOFOLLOW)));
        if (fd < 0)
            return fd;
        file = new HostFile(fd, canonical, owned: true, writable: false) { StatusFlags = flags };
        return 0;
    }

    /// <summary>stat/lstat of a path: 0 or -errno; fills a struct stat.</summary>
    public int Stat(string? baseDirectory, string path, bool followLinks, Span<byte> statBuffer)
    {
        if (path.Length == 0)
            return -(int)Errno.ENOENT;
        string full = Combine(baseDirectory, path);
        if (IsVirtualTree(full))
        {
            int status = Open(baseDirectory, path, 0, out var file);
            if (status != 0)
                return status;
            status = file!.Stat(statBuffer);
            file.Close();
            return status;
        }
        if (!followLinks)
        {
            // lstat must not follow the last component: confine by its directory.
            string directory = Path.GetDirectoryName(full) ?? "/";
            int dirStatus = ResolveHost(directory, out string canonicalDirectory);
            if (dirStatus != 0)
                return dirStatus;
            return HostInterop.Stat(Path.Join(canonicalDirectory, Path.GetFileName(full)), followLinks: false, statBuffer);
        }
        int resolved = ResolveHost(full, out string canonical);
        return resolved != 0 ? resolved : HostInterop.Stat(canonical, followLinks: true, statBuffer);
    }

    /// <summary>readlink: 0 and the target, or -errno (EINVAL when the path is not a symbolic link).</summary>
    public int ReadLink(string? baseDirectory, string path, out string target)
    {
        target = "";
        if (path.Length == 0)
            return -(int)Errno.ENOENT;
        string full = Combine(baseDirectory, path);
        if (IsVirtualTree(full))
        {
            if (VirtualKey(full) == "/proc/self/exe")
            {
                target = ExecutablePath;
                return 0;
            }
            string key = VirtualKey(full)!;
            return virtualFiles.ContainsKey(key) || specialFiles.ContainsKey(key) ? -(int)Errno.EINVAL : -(int)Errno.ENOENT;
        }
        string directory = Path.GetDirectoryName(full) ?? "/";
        int status = ResolveHost(directory, out string canonicalDirectory);
        if (status != 0)
            return status;
        return HostInterop.ReadLink(Path.Join(canonicalDirectory, Path.GetFileName(full)), out target);
    }
}
