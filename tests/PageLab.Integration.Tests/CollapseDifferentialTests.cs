namespace PageLab.Integration.Tests;

/// <summary>
/// Issue 5: MADV_COLLAPSE as Linux 6.18 does it (regions in every state, clamping, VMAs and
/// holes, eligibility, fork, process_madvise), the proposed MADV_TRY_COLLAPSE ABI under
/// <c>--kernel-abi=6.18</c> (EINVAL, as the host) and the Go-heap-like workload, each printed by
/// a guest program natively and under PageLab.
/// </summary>
public sealed class CollapseDifferentialTests
{
    public static TheoryData<string, string> Cases => GuestCatalog.Cases("collapse");

    /// <summary>Cases where PageLab's default ABI deliberately differs from Linux 6.18.</summary>
    public static TheoryData<string, string> ProposalCases => GuestCatalog.Cases("proposal");

    [Theory]
    [MemberData(nameof(Cases))]
    public void NativeRun_MatchesExpectedFile(string guestCase, string libc) => Differential.NativeMatchesExpected(guestCase, libc);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PageLabRun_MatchesNativeRun(string guestCase, string libc) => Differential.PageLabMatchesNative(guestCase, libc);

    /// <summary>
    /// Without <c>--kernel-abi=6.18</c>, MADV_TRY_COLLAPSE and MADV_F_COLLAPSE_LIGHT work: with
    /// plenty of free memory they print what MADV_COLLAPSE prints natively (the expected file
    /// is the native run of the same program with <c>as-collapse</c>).
    /// </summary>
    [Theory]
    [MemberData(nameof(ProposalCases))]
    public void PageLabRun_ProposedAbi_CollapsesLikeMadvCollapse(string guestCase, string libc) =>
        Differential.PageLabMatchesExpected(guestCase, libc);
}
