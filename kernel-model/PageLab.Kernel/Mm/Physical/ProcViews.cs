using System.Globalization;
using System.Text;

namespace PageLab.Kernel.Mm.Physical;

/// <summary>
/// The text of /proc/buddyinfo and /proc/pagetypeinfo for the modeled memory, byte for byte in the
/// format of Linux 6.18's mm/vmstat.c (each node has one zone, "Normal"). procfs serves these strings.
/// </summary>
public static class ProcViews
{
    const string ZoneName = "Normal";

    /// <summary>/proc/buddyinfo: free blocks per order, one line per node and zone.</summary>
    public static string BuddyInfo(BuddyAllocator allocator)
    {
        var text = new StringBuilder();
        foreach (var node in allocator.Nodes)
        {
            text.Append(CultureInfo.InvariantCulture, $"Node {node.Id}, zone {ZoneName,8} ");
            for (int order = 0; order <= BuddyAllocator.MaxOrder; order++)
                text.Append(CultureInfo.InvariantCulture, $"{node.FreeBlocks(order),6} ");
            text.Append('\n');
        }
        return text.ToString();
    }

    /// <summary>/proc/pagetypeinfo: free blocks per migrate type and order, then pageblocks per type.</summary>
    public static string PageTypeInfo(BuddyAllocator allocator)
    {
        const int FreeCountCap = 100_000; // Linux stops counting a list when it reaches this and prints ">100000"
        var types = Enum.GetValues<MigrateType>();
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Page block order: {BuddyAllocator.PageblockOrder}\n");
        text.Append(CultureInfo.InvariantCulture, $"Pages per block:  {BuddyAllocator.PageblockFrames}\n\n");
        text.Append(CultureInfo.InvariantCulture, $"{"Free pages count per migrate type at order",-43} ");
        for (int order = 0; order <= BuddyAllocator.MaxOrder; order++)
            text.Append(CultureInfo.InvariantCulture, $"{order,6} ");
        text.Append('\n');
        foreach (var node in allocator.Nodes)
        {
            foreach (var type in types)
            {
                text.Append(CultureInfo.InvariantCulture, $"Node {node.Id,4}, zone {ZoneName,8}, type {type,12} ");
                for (int order = 0; order <= BuddyAllocator.MaxOrder; order++)
                {
                    ulong count = node.FreeBlocks(order, type);
                    text.Append(count >= FreeCountCap ? $">{FreeCountCap,6} " : string.Create(CultureInfo.InvariantCulture, $"{count,6} "));
                }
                text.Append('\n');
            }
        }

        text.Append(CultureInfo.InvariantCulture, $"\n{"Number of blocks type ",-23}");
        foreach (var type in types)
            text.Append(CultureInfo.InvariantCulture, $"{type,12} ");
        text.Append('\n');
        var blocks = new ulong[types.Length];
        foreach (var node in allocator.Nodes)
        {
            Array.Clear(blocks);
            for (ulong block = node.StartFrame; block < node.EndFrame; block += BuddyAllocator.PageblockFrames)
                blocks[(int)allocator.PageblockType(block)]++;
            text.Append(CultureInfo.InvariantCulture, $"Node {node.Id}, zone {ZoneName,8} ");
            foreach (ulong count in blocks)
                text.Append(CultureInfo.InvariantCulture, $"{count,12} ");
            text.Append('\n');
        }
        return text.ToString();
    }
}
