namespace PageLab.Integration.Tests;

/// <summary>One line of guest-programs/cases.txt: a guest program with its arguments.</summary>
/// <param name="Suite">Which test class runs it: run, foreign, mm, collapse, or proposal.</param>
/// <param name="Name">The case name, also the name of its expected output file.</param>
/// <param name="PageLabOptions">Extra <c>pagelab run</c> options for this case.</param>
/// <param name="Program">The program's file name under guest-programs/out/&lt;build&gt;/.</param>
/// <param name="Arguments">The program's arguments.</param>
internal sealed record GuestCase(
    string Suite, string Name, IReadOnlyList<string> PageLabOptions, string Program, IReadOnlyList<string> Arguments);

/// <summary>
/// The guest-program cases (guest-programs/cases.txt, shared with update-expected.sh) and the
/// builds to run them with: a build is a directory under guest-programs/out ("glibc" and
/// "musl" for our programs, "foreign" for static binaries we did not write).
/// </summary>
internal static class GuestCatalog
{
    private static readonly Lazy<IReadOnlyList<GuestCase>> s_cases = new(() => Parse(File.ReadAllLines(RepositoryLayout.CaseList)));

    /// <summary>
    /// The libc builds: glibc always, musl when musl-gcc is installed (build.sh builds musl
    /// binaries exactly then; install-deps.sh installs it).
    /// </summary>
    public static IReadOnlyList<string> Libcs { get; } = IsOnPath("musl-gcc") ? ["glibc", "musl"] : ["glibc"];

    public static GuestCase Get(string name) =>
        s_cases.Value.SingleOrDefault(c => c.Name == name)
        ?? throw new ArgumentException($"No case '{name}' in {RepositoryLayout.CaseList}.", nameof(name));

    /// <summary>The build of the suite that runs binaries we did not write.</summary>
    public const string ForeignSuite = "foreign";

    /// <summary>Every (case, build) pair of a suite, as xunit theory data.</summary>
    public static TheoryData<string, string> Cases(string suite)
    {
        var data = new TheoryData<string, string>();
        IReadOnlyList<string> builds = suite == ForeignSuite ? [ForeignSuite] : Libcs;
        foreach (var guestCase in s_cases.Value.Where(c => c.Suite == suite))
        {
            foreach (string libc in builds)
            {
                data.Add(guestCase.Name, libc);
            }
        }

        return data;
    }

    internal static IReadOnlyList<GuestCase> Parse(IEnumerable<string> lines)
    {
        var cases = new List<GuestCase>();
        foreach (string line in lines)
        {
            string[] words = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0 || words[0].StartsWith('#'))
            {
                continue;
            }

            if (words.Length < 3)
            {
                throw new FormatException($"Case line needs suite, case and program: '{line}'.");
            }

            int separator = Array.IndexOf(words, "--");
            string[] options = separator < 0 ? [] : words[2..separator];
            string[] command = separator < 0 ? words[2..] : words[(separator + 1)..];
            if (command.Length == 0)
            {
                throw new FormatException($"Case line has no program after '--': '{line}'.");
            }

            cases.Add(new GuestCase(words[0], words[1], options, command[0], command[1..]));
        }

        return cases;
    }

    private static bool IsOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, command)));
}
