namespace PageLab.Kernel.Mm.Thp;

/// <summary>
/// Modeled virtual-time costs of collapse work, in nanoseconds, charged to whoever the policy says
/// pays. Figures are typical of a current x86-64 server; each line says where it comes from.
/// </summary>
public static class CollapseCosts
{
    /// <summary>Reading one PTE and its struct page in the scan: about one L2 hit plus bookkeeping.</summary>
    public const ulong ScanPerPte = 5;

    /// <summary>An order-9 allocation that the free lists satisfy (buddy split and page prep, no zeroing).</summary>
    public const ulong AllocateFromFreeLists = 2_000;

    /// <summary>Charging 512 pages to a memcg (page_counter_try_charge up the hierarchy).</summary>
    public const ulong MemcgCharge = 500;

    /// <summary>Swapping one 4 KiB page in from an NVMe SSD: 20-80 µs read latency; 25 µs taken.</summary>
    public const ulong SwapInPerPage = 25_000;

    /// <summary>Taking mmap_lock for writing, uncontended.</summary>
    public const ulong MmapWriteLock = 200;

    /// <summary>Clearing the PMD and flushing 512 pages: above tlb_single_page_flush_ceiling (33) x86 flushes the whole local TLB.</summary>
    public const ulong ClearPmdAndFlush = 1_500;

    /// <summary>Locking and isolating one old page from the LRU.</summary>
    public const ulong IsolatePerPage = 60;

    /// <summary>Copying 4 KiB at ~16 GB/s (copy_mc_user_highpage).</summary>
    public const ulong CopyPerPage = 250;

    /// <summary>Zeroing 4 KiB at ~32 GB/s (clear_user_highpage).</summary>
    public const ulong ZeroPerPage = 120;

    /// <summary>Depositing the PTE table and writing the PMD.</summary>
    public const ulong InstallPmd = 300;

    /// <summary>Freeing one old page back to the allocator.</summary>
    public const ulong FreePerPage = 40;
}
