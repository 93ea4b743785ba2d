namespace PageLab.Integration.Tests;

/// <summary>
/// The checks every differential test class makes for its cases: the native run against the
/// stored expected output (catches host drift and unrebuilt expectations), and PageLab's run
/// against the native run (the emulator against the real kernel).
/// </summary>
internal static class Differential
{
    /// <summary>The native run prints what guest-programs/expected holds for this host.</summary>
    public static void NativeMatchesExpected(string caseName, string libc)
    {
        var guestCase = GuestCatalog.Get(caseName);
        string expectedPath = RepositoryLayout.ExpectedOutput(caseName, libc);
        Assert.True(File.Exists(expectedPath), $"{expectedPath} is missing: run guest-programs/update-expected.sh.");
        var native = GuestLauncher.RunNative(guestCase, libc);
        AssertSame(
            $"{expectedPath} (stored native output)", GuestTranscript.FromExpectedFile(expectedPath),
            $"native {libc} run now (host drift? see guest-programs/README.md)", native);
    }

    /// <summary>PageLab prints what the native run prints, line by line, with the same exit code.</summary>
    public static void PageLabMatchesNative(string caseName, string libc)
    {
        var guestCase = GuestCatalog.Get(caseName);
        var native = GuestLauncher.RunNative(guestCase, libc);
        var emulated = GuestLauncher.RunPageLab(guestCase, libc);
        AssertSame($"native {libc} run", GuestTranscript.FromRun(native), $"pagelab run ({libc})", emulated);
    }

    /// <summary>
    /// PageLab prints the stored expected output of a case where it deliberately differs from
    /// Linux 6.18 (the proposed MADV_TRY_COLLAPSE ABI; see guest-programs/cases.txt).
    /// </summary>
    public static void PageLabMatchesExpected(string caseName, string libc)
    {
        var guestCase = GuestCatalog.Get(caseName);
        string expectedPath = RepositoryLayout.ExpectedOutput(caseName, libc);
        Assert.True(File.Exists(expectedPath), $"{expectedPath} is missing: run guest-programs/update-expected.sh.");
        var emulated = GuestLauncher.RunPageLab(guestCase, libc);
        AssertSame($"{expectedPath} (proposed behaviour)", GuestTranscript.FromExpectedFile(expectedPath),
            $"pagelab run ({libc})", emulated);
    }

    private static void AssertSame(string expectedLabel, GuestTranscript expected, string actualLabel, ProcessResult actual)
    {
        string? difference = GuestTranscript.Difference(expectedLabel, expected, actualLabel, GuestTranscript.FromRun(actual));
        if (difference is not null)
        {
            Assert.Fail($"{difference}\nstderr of the {actualLabel}:\n{GuestProcess.Tail(actual.Stderr)}");
        }
    }
}
