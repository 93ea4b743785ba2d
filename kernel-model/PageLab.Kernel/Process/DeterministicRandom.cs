namespace PageLab.Kernel.Process;

/// <summary>
/// The kernel model's entropy source: xoshiro256** seeded through SplitMix64, so AT_RANDOM and
/// getrandom give the same bytes for the same seed on every machine and .NET version.
/// </summary>
public sealed class DeterministicRandom
{
    ulong s0, s1, s2, s3;

    public DeterministicRandom(ulong seed)
    {
        s0 = SplitMix(ref seed);
        s1 = SplitMix(ref seed);
        s2 = SplitMix(ref seed);
        s3 = SplitMix(ref seed);
    }

    static ulong SplitMix(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = ulong.RotateLeft(s3, 45);
        return result;
    }

    public void Fill(Span<byte> destination)
    {
        while (destination.Length >= 8)
        {
            BitConverter.TryWriteBytes(destination, NextUInt64());
            destination = destination[8..];
        }
        if (!destination.IsEmpty)
        {
            Span<byte> last = stackalloc byte[8];
            BitConverter.TryWriteBytes(last, NextUInt64());
            last[..destination.Length].CopyTo(destination);
        }
    }
}
