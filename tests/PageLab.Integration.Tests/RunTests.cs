namespace PageLab.Integration.Tests;

/// <summary>
/// Issue 3: ordinary static programs (stdio, printf, string functions, qsort, malloc, the
/// benchmarks) print the same natively and under PageLab, glibc and musl builds.
/// </summary>
public sealed class RunTests
{
    public static TheoryData<string, string> Cases => GuestCatalog.Cases("run");

    [Theory]
    [MemberData(nameof(Cases))]
    public void NativeRun_MatchesExpectedFile(string guestCase, string libc) => Differential.NativeMatchesExpected(guestCase, libc);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PageLabRun_MatchesNativeRun(string guestCase, string libc) => Differential.PageLabMatchesNative(guestCase, libc);
}
