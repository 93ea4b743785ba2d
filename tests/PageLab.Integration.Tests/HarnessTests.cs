namespace PageLab.Integration.Tests;

/// <summary>The comparison rule and the case list format the differential tests rely on.</summary>
public sealed class HarnessTests
{
    private static ProcessResult Run(string stdout, int exitCode = 0) => new(exitCode, stdout, "");

    [Fact]
    public void Transcript_IgnoresTimingLines_ComparesEverythingElse()
    {
        var native = GuestTranscript.FromRun(Run("result: 3 huge pages\ntiming: p50=812 ns\n"));
        var emulated = GuestTranscript.FromRun(Run("result: 3 huge pages\ntiming: p50=95000 ns\n"));
        Assert.Null(GuestTranscript.Difference("native", native, "pagelab", emulated));
    }

    [Fact]
    public void Transcript_ReportsFirstDifferingLine()
    {
        var native = GuestTranscript.FromRun(Run("a\nb\nc\n"));
        var emulated = GuestTranscript.FromRun(Run("a\nB\nc\n"));
        string? difference = GuestTranscript.Difference("native", native, "pagelab", emulated);
        Assert.NotNull(difference);
        Assert.StartsWith("Outputs differ at line 2.", difference);
    }

    [Fact]
    public void Transcript_ExitCodeIsCompared()
    {
        var native = GuestTranscript.FromRun(Run("same\n", exitCode: 7));
        var emulated = GuestTranscript.FromRun(Run("same\n", exitCode: 0));
        Assert.Contains("[exit 7]", GuestTranscript.Difference("native", native, "pagelab", emulated));
    }

    [Fact]
    public void Transcript_MissingTrailingLinesAreADifference()
    {
        var native = GuestTranscript.FromRun(Run("a\nb\n"));
        var emulated = GuestTranscript.FromRun(Run("a\n"));
        Assert.NotNull(GuestTranscript.Difference("native", native, "pagelab", emulated));
    }

    [Fact]
    public void CaseList_SeparatesPageLabOptionsFromTheCommand()
    {
        var cases = GuestCatalog.Parse(
        [
            "# comment",
            "",
            "run  cpu_bench  cpu_bench 10",
            "collapse try_618 --kernel-abi=6.18 -- collapse_try 4",
        ]);
        Assert.Equal(2, cases.Count);
        Assert.Equal(("run", "cpu_bench", "cpu_bench"), (cases[0].Suite, cases[0].Name, cases[0].Program));
        Assert.Equal(["10"], cases[0].Arguments);
        Assert.Empty(cases[0].PageLabOptions);
        Assert.Equal(["--kernel-abi=6.18"], cases[1].PageLabOptions);
        Assert.Equal("collapse_try", cases[1].Program);
        Assert.Equal(["4"], cases[1].Arguments);
    }

    [Fact]
    public void CaseList_EveryCaseHasAnExpectedOutputFile()
    {
        var cases = GuestCatalog.Parse(File.ReadAllLines(RepositoryLayout.CaseList));
        Assert.NotEmpty(cases);
        Assert.All(cases, c => Assert.True(File.Exists(RepositoryLayout.ExpectedOutput(c.Name, "glibc")), $"no expected output for {c.Name}"));
    }
}
