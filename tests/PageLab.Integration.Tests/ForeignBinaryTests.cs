namespace PageLab.Integration.Tests;

/// <summary>
/// Issue 3: static binaries we did not write (Debian's busybox-static: echo, printf, awk,
/// sha256sum, md5sum, sort, wc, expr, sh, false) print the same natively and under PageLab.
/// </summary>
public sealed class ForeignBinaryTests
{
    public static TheoryData<string, string> Cases => GuestCatalog.Cases(GuestCatalog.ForeignSuite);

    [Theory]
    [MemberData(nameof(Cases))]
    public void NativeRun_MatchesExpectedFile(string guestCase, string build) => Differential.NativeMatchesExpected(guestCase, build);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PageLabRun_MatchesNativeRun(string guestCase, string build) => Differential.PageLabMatchesNative(guestCase, build);
}
