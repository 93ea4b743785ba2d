namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// A memory cgroup (v2): a page limit (memory.max), the pages charged to it and its failure count.
/// Charges go through <see cref="BuddyAllocator.TryCharge"/>, which reclaims within the group before
/// giving up; freeing a charged block uncharges it.
/// </summary>
public sealed class MemoryCgroup
{
    internal MemoryCgroup(ushort id, string name, ulong limitPages)
    {
        Id = id;
        Name = name;
        LimitPages = limitPages;
    }

    /// <summary>Index stored in the page descriptors of charged blocks.</summary>
    public ushort Id { get; }

    public string Name { get; }

    /// <summary>memory.max in pages; <see cref="ulong.MaxValue"/> means "max".</summary>
    public ulong LimitPages { get; set; }

    /// <summary>memory.current in pages.</summary>
    public ulong UsagePages { get; internal set; }

    /// <summary>memory.peak in pages.</summary>
    public ulong PeakPages { get; internal set; }

    /// <summary>Charges that failed even after reclaim (memory.events "max" counts attempts; this counts failures).</summary>
    public ulong FailedCharges { get; internal set; }
}
