using CsCheck;

namespace PageLab.Emulator.Tests.Paging;

/// <summary>Property-test cases drawn from fixed seeds, so every run checks the same values.</summary>
internal static class SeededCases
{
    /// <summary>Runs <paramref name="check"/> on <paramref name="count"/> values drawn from fixed seeds; a failure names its case.</summary>
    public static void ForEach<T>(Gen<T> gen, int count, Action<T> check)
    {
        for (uint i = 0; i < count; i++)
        {
            var pcg = new PCG(i, 0x9A6E_1AB0UL);
            string seed = pcg.ToString();
            var value = gen.Generate(pcg, null, out _);
            try
            {
                check(value);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"case {i} (CsCheck seed {seed}) failed: {e.Message}", e);
            }
        }
    }
}
