namespace PageLab.Kernel.Mm.Thp;

/// <summary>The machine-wide THP state: sysfs knobs, /proc/vmstat counters and the collapse engine.</summary>
public sealed class TransparentHugePages
{
    public TransparentHugePages(ThpSettings? settings = null)
    {
        Settings = settings ?? new ThpSettings();
        Engine = new CollapseEngine(Counters);
        Khugepaged = new Khugepaged(this);
    }

    public ThpSettings Settings { get; }
    public ThpCounters Counters { get; } = new();
    public CollapseEngine Engine { get; }
    public Khugepaged Khugepaged { get; }
}
