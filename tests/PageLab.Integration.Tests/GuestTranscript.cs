namespace PageLab.Integration.Tests;

/// <summary>
/// The comparable part of a guest run: its stdout lines, except those starting with
/// "timing:" (host-dependent measurements such as latencies, never compared), followed by a
/// last line "[exit N]". Expected files in guest-programs/expected hold exactly this.
/// </summary>
internal sealed class GuestTranscript
{
    /// <summary>Lines starting with this prefix are printed for people, not compared.</summary>
    public const string UncomparedPrefix = "timing:";

    private GuestTranscript(IReadOnlyList<string> lines) => Lines = lines;

    public IReadOnlyList<string> Lines { get; }

    public static GuestTranscript FromRun(ProcessResult run) =>
        new([.. ComparedLines(run.Stdout), $"[exit {run.ExitCode}]"]);

    public static GuestTranscript FromExpectedFile(string path) => new([.. ComparedLines(File.ReadAllText(path))]);

    /// <summary>
    /// Null when both transcripts are equal, otherwise a message naming the first differing
    /// line, with a few lines of context from both sides.
    /// </summary>
    public static string? Difference(string expectedLabel, GuestTranscript expected, string actualLabel, GuestTranscript actual)
    {
        int common = Math.Min(expected.Lines.Count, actual.Lines.Count);
        int first = 0;
        while (first < common && expected.Lines[first] == actual.Lines[first])
        {
            first++;
        }

        if (first == common && expected.Lines.Count == actual.Lines.Count)
        {
            return null;
        }

        const int Context = 3;
        return $"Outputs differ at line {first + 1}.\n"
            + $"--- {expectedLabel}\n{Excerpt(expected.Lines, first, Context)}\n"
            + $"+++ {actualLabel}\n{Excerpt(actual.Lines, first, Context)}";
    }

    private static IEnumerable<string> ComparedLines(string text)
    {
        string[] lines = text.Split('\n');
        int count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        return lines.Take(count).Where(line => !line.StartsWith(UncomparedPrefix, StringComparison.Ordinal));
    }

    private static string Excerpt(IReadOnlyList<string> lines, int at, int context)
    {
        int from = Math.Max(0, at - context);
        int to = Math.Min(lines.Count, at + context + 1);
        var excerpt = Enumerable.Range(from, to - from).Select(i => $"{(i == at ? '>' : ' ')}{i + 1,5}: {lines[i]}");
        string text = string.Join('\n', excerpt);
        return at >= lines.Count ? text + $"\n>{at + 1,5}: <end of output>" : text;
    }
}
