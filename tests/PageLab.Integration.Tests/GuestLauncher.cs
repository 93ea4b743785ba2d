namespace PageLab.Integration.Tests;

/// <summary>
/// Runs a guest case's static binary natively or under <c>pagelab run</c>.
/// </summary>
internal static class GuestLauncher
{
    /// <summary>
    /// The instruction limit of every PageLab run: several times what the largest case needs,
    /// so an emulator hang or loop ends in seconds as a failed run instead of stalling CI.
    /// </summary>
    public const long MaxInstructions = 2_000_000_000;

    /// <summary>Backstop when even the instruction limit does not end a run.</summary>
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Environment variable naming a <c>pagelab</c> executable to use instead of the built
    /// pagelab.dll (for example an installed or a differently built one).
    /// </summary>
    public const string PageLabOverrideVariable = "PAGELAB_CLI";

    public static ProcessResult RunNative(GuestCase guestCase, string libc)
    {
        string binary = Binary(guestCase, libc);
        return GuestProcess.Run(binary, guestCase.Arguments, Path.GetDirectoryName(binary)!, s_timeout);
    }

    /// <summary>
    /// Runs the case under <c>pagelab run</c> with the instruction limit, read access to the
    /// binary's directory, the case's own options and any <paramref name="extraOptions"/>.
    /// </summary>
    public static ProcessResult RunPageLab(GuestCase guestCase, string libc, params string[] extraOptions)
    {
        string binary = Binary(guestCase, libc);
        string directory = Path.GetDirectoryName(binary)!;
        (string fileName, string[] prefix) = PageLabCommand();
        string[] arguments =
        [
            .. prefix, "run",
            "--max-instructions", MaxInstructions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--allow-path", directory,
            .. guestCase.PageLabOptions, .. extraOptions,
            binary, .. guestCase.Arguments,
        ];
        return GuestProcess.Run(fileName, arguments, directory, s_timeout);
    }

    /// <summary>
    /// Runs <c>pagelab</c> with <paramref name="arguments"/> from a bash that first runs <paramref name="shellPrologue"/>
    /// (a ulimit, an export): how a test puts the CLI under host limits without changing its own process.
    /// </summary>
    public static ProcessResult RunPageLabAfter(string shellPrologue, params string[] arguments)
    {
        (string fileName, string[] prefix) = PageLabCommand();
        return GuestProcess.Run("bash", ["-c", shellPrologue + "; exec \"$@\"", "bash", fileName, .. prefix, .. arguments],
            RepositoryLayout.Root, s_timeout);
    }

    /// <summary>The binary of a case, failing the test with the fix when it was not built.</summary>
    public static string Binary(GuestCase guestCase, string libc)
    {
        string binary = Path.Combine(RepositoryLayout.BinaryDirectory(libc), guestCase.Program);
        Assert.True(File.Exists(binary),
            $"Guest binary {binary} is missing: run `bash guest-programs/build.sh` "
            + "(after `bash guest-programs/install-deps.sh` for the musl builds and busybox); tests/run-all.sh does both.");
        return binary;
    }

    /// <summary>
    /// How to start pagelab: $PAGELAB_CLI if set; else `dotnet pagelab.dll` from beside this
    /// test assembly (the project reference copies it there) or, failing that, the newest
    /// build under tools/PageLab.Cli/bin.
    /// </summary>
    private static (string FileName, string[] Prefix) PageLabCommand()
    {
        string? overridden = Environment.GetEnvironmentVariable(PageLabOverrideVariable);
        if (!string.IsNullOrEmpty(overridden))
        {
            return (overridden, []);
        }

        string beside = Path.Combine(AppContext.BaseDirectory, "pagelab.dll");
        if (File.Exists(beside))
        {
            return ("dotnet", [beside]);
        }

        string cliBin = Path.Combine(RepositoryLayout.Root, "tools", "PageLab.Cli", "bin");
        string? built = Directory.Exists(cliBin)
            ? Directory.EnumerateFiles(cliBin, "pagelab.dll", SearchOption.AllDirectories)
                .OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            : null;
        Assert.True(built is not null, $"pagelab.dll not found beside the tests nor under {cliBin}: build tools/PageLab.Cli.");
        return ("dotnet", [built!]);
    }
}
