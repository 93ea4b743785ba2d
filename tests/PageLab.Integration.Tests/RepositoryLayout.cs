namespace PageLab.Integration.Tests;

/// <summary>
/// Where the integration tests find the repository's guest programs and expected outputs:
/// walking up from the test assembly to the directory holding PageLab.slnx.
/// </summary>
internal static class RepositoryLayout
{
    /// <summary>The repository root (the directory of PageLab.slnx).</summary>
    public static string Root { get; } = FindRoot();

    public static string GuestPrograms => Path.Combine(Root, "guest-programs");

    public static string CaseList => Path.Combine(GuestPrograms, "cases.txt");

    /// <summary>The directory of one build's static binaries ("glibc", "musl" or "foreign").</summary>
    public static string BinaryDirectory(string libc) => Path.Combine(GuestPrograms, "out", libc);

    /// <summary>
    /// The expected native output of a case: expected/&lt;case&gt;.&lt;libc&gt;.txt when that libc
    /// prints something else than glibc, otherwise expected/&lt;case&gt;.txt.
    /// </summary>
    public static string ExpectedOutput(string caseName, string libc)
    {
        string specific = Path.Combine(GuestPrograms, "expected", $"{caseName}.{libc}.txt");
        return File.Exists(specific) ? specific : Path.Combine(GuestPrograms, "expected", $"{caseName}.txt");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PageLab.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No PageLab.slnx above {AppContext.BaseDirectory}.");
    }
}
