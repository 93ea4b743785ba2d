/* smaps of the program's own regions: Rss, Anonymous, Swap, AnonHugePages and THPeligible
 * after touching, zapping, populating and read faults (the zero page is not counted), and
 * fault-time THP in a MADV_HUGEPAGE region (huge zero page on a read fault, a huge page on a
 * write fault). Depends on the THP setting, printed first. */
#include "guest.h"

static void show(const char *label, const char *region, size_t len)
{
    struct smaps_totals t = smaps_region(region, len);
    printf("%s: vmas=%lu Size=%lu Rss=%lu Anonymous=%lu AnonHugePages=%lu Swap=%lu THPeligible=%lu\n", label,
           t.vmas, t.size, t.rss, t.anonymous, t.anon_huge, t.swap, t.thp_eligible);
}

int main(void)
{
    print_thp_setting();
    size_t len = 4 * HUGE_SIZE_2M;
    char *r = map_region(len, HUGE_SIZE_2M, PROT_READ | PROT_WRITE);
    show("fresh 8 MiB", r, len);
    r[0] = 1;
    r[5 * PAGE_SIZE_4K] = 1;
    r[HUGE_SIZE_2M + 17] = 1;
    show("3 pages written", r, len);
    memset(r, 7, HUGE_SIZE_2M);
    show("first 2 MiB written", r, len);
    madvise_print("madvise(+1 MiB, 1 MiB, DONTNEED)", r + MiB, MiB, MADV_DONTNEED);
    show("after DONTNEED of the second half of the first 2 MiB", r, len);
    volatile char sink = 0;
    for (size_t off = 0; off < MiB; off += PAGE_SIZE_4K)
        sink += r[MiB + off];
    show("after read faults on the zapped 1 MiB (zero page)", r, len);
    madvise_print("madvise(+2 MiB, 2 MiB, POPULATE_WRITE)", r + HUGE_SIZE_2M, HUGE_SIZE_2M, MADV_POPULATE_WRITE);
    show("after POPULATE_WRITE of the second 2 MiB", r, len);
    print_check("first 1 MiB kept its data", memcmp(r, r + 1, MiB - 1) == 0 && r[0] == 7 ? -1 : 0);

    char *h = r + 2 * HUGE_SIZE_2M;
    madvise_print("madvise(+4 MiB, 4 MiB, HUGEPAGE)", h, 2 * HUGE_SIZE_2M, MADV_HUGEPAGE);
    show("HUGEPAGE half, untouched", h, 2 * HUGE_SIZE_2M);
    sink += h[123];
    show("after one read fault (huge zero page)", h, 2 * HUGE_SIZE_2M);
    h[HUGE_SIZE_2M + 99] = 1;
    show("after one write fault in the second 2 MiB (huge page)", h, 2 * HUGE_SIZE_2M);
    show("whole region", r, len);
    madvise_print("madvise(+6 MiB + 4 KiB, 4 KiB, DONTNEED) splits the huge page", h + HUGE_SIZE_2M + PAGE_SIZE_4K,
                  PAGE_SIZE_4K, MADV_DONTNEED);
    show("after DONTNEED of one 4 KiB page of it", h, 2 * HUGE_SIZE_2M);
    print_check("huge page data", h[HUGE_SIZE_2M + 99] == 1 && h[HUGE_SIZE_2M + PAGE_SIZE_4K] == 0 ? -1 : 0);
    (void)sink;
    return 0;
}
