namespace PageLab.Integration.Tests;

/// <summary>
/// Issue 4: the modeled mm against the host kernel: mmap/munmap/mprotect/mremap layouts in
/// /proc/self/maps, madvise return values and errno, fork and copy-on-write, smaps counters and
/// pagemap bits, each printed by a guest program natively and under PageLab.
/// </summary>
public sealed class MmDifferentialTests
{
    public static TheoryData<string, string> Cases => GuestCatalog.Cases("mm");

    [Theory]
    [MemberData(nameof(Cases))]
    public void NativeRun_MatchesExpectedFile(string guestCase, string libc) => Differential.NativeMatchesExpected(guestCase, libc);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PageLabRun_MatchesNativeRun(string guestCase, string libc) => Differential.PageLabMatchesNative(guestCase, libc);
}
