namespace PageLab.Kernel.Mm;

/// <summary>The memory cgroup the guest's processes are charged to: a page counter with a limit.</summary>
public interface IMemoryCgroup
{
    /// <summary>Charges <paramref name="pages"/>; false (nothing charged) when the limit would be exceeded
    /// and reclaim inside the group cannot make room.</summary>
    bool TryCharge(long pages);

    void Uncharge(long pages);
}
