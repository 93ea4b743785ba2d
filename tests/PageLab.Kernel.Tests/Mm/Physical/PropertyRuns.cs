using CsCheck;

namespace PageLab.Kernel.Tests.Mm.Physical;

/// <summary>
/// Runs a CsCheck generator over a fixed ladder of PCG streams, so that every run checks the same
/// cases (CsCheck's own Sample seeds only its first iteration and draws the rest at random).
/// A failure names the stream, which reproduces it alone.
/// </summary>
internal static class PropertyRuns
{
    const ulong LadderSeed = 0x5EED_0F_B0DD1E5UL;

    public static void ForEach<T>(Gen<T> gen, int count, Action<T> check)
    {
        for (uint stream = 0; stream < count; stream++)
        {
            var value = gen.Generate(new PCG(stream, LadderSeed), null, out _);
            try
            {
                check(value);
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"property failed for PCG stream {stream}: {e.Message}", e);
            }
        }
    }
}
