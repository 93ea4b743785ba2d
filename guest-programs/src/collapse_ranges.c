/* MADV_COLLAPSE over ranges that are not whole 2 MiB regions of one VMA: unaligned and
 * sub-2 MiB ranges (the two clamping cases: a range that reaches no 2 MiB boundary inside it
 * is EINVAL, one whose rounded start equals its rounded end succeeds doing nothing), a VMA too
 * small to hold an aligned 2 MiB region, VMA boundaries inside a 2 MiB region, and a range
 * spanning several VMAs and holes (ENOMEM after collapsing the rest). */
#include "guest.h"

#define H HUGE_SIZE_2M
#define P PAGE_SIZE_4K

static char *populated(const char *title, size_t len)
{
    printf("## %s\n", title);
    char *r = map_region(len, H, PROT_READ | PROT_WRITE);
    fill_pattern(r, len, len);
    return r;
}

int main(void)
{
    print_thp_setting();

    char *r = populated("sub-2 MiB range inside one region: no boundary inside (EINVAL)", 2 * H);
    madvise_print("madvise(+4 KiB, 8 KiB, COLLAPSE)", r + P, 2 * P, MADV_COLLAPSE);
    madvise_print("madvise(+4 KiB, 2 MiB - 8 KiB, COLLAPSE)", r + P, H - 2 * P, MADV_COLLAPSE);
    print_huge("after", r, 2 * H);

    puts("## ranges whose rounded start equals the rounded end (success, nothing done)");
    madvise_print("madvise(+0, 4 KiB, COLLAPSE)", r, P, MADV_COLLAPSE);
    madvise_print("madvise(+0, 2 MiB - 4 KiB, COLLAPSE)", r, H - P, MADV_COLLAPSE);
    madvise_print("madvise(+1 MiB, 1 MiB, COLLAPSE) (ends on the boundary)", r + MiB, MiB, MADV_COLLAPSE);
    madvise_print("madvise(+1 MiB, 2 MiB, COLLAPSE) (crosses the boundary)", r + MiB, H, MADV_COLLAPSE);
    madvise_print("madvise(+2 MiB - 4 KiB, 8 KiB, COLLAPSE)", r + H - P, 2 * P, MADV_COLLAPSE);
    print_huge("after", r, 2 * H);

    puts("## unaligned range covering one whole region: only that region");
    madvise_print("madvise(+1 MiB, 3 MiB, COLLAPSE) (clamped to +2 MiB..+4 MiB)", r + MiB, 3 * MiB, MADV_COLLAPSE);
    print_huge("after", r, 2 * H);
    madvise_print("madvise(+3, 4 MiB, COLLAPSE) (address not page aligned)", r + 3, 2 * H, MADV_COLLAPSE);
    madvise_print("madvise(+0, 4 MiB - 1, COLLAPSE) (len rounded up to pages)", r, 2 * H - 1, MADV_COLLAPSE);
    print_huge("after", r, 2 * H);
    print_check("data", check_pattern(r, 2 * H, 2 * H));

    r = populated("a 1 MiB VMA cannot hold an aligned 2 MiB region", MiB);
    madvise_print("madvise(1 MiB VMA, COLLAPSE)", r, MiB, MADV_COLLAPSE);
    print_huge("after", r, MiB);

    r = populated("a 3 MiB VMA starting on a 2 MiB boundary", 3 * MiB);
    madvise_print("madvise(3 MiB, COLLAPSE)", r, 3 * MiB, MADV_COLLAPSE);
    print_huge("after", r, 3 * MiB);
    print_check("data", check_pattern(r, 3 * MiB, 3 * MiB));

    /* Two VMAs meeting 1 MiB into a 2 MiB region: neither piece holds that region. */
    r = populated("VMA boundary inside a region (+3 MiB), 3 regions", 3 * H);
    madvise_print("split the VMA: madvise(+3 MiB, 3 MiB, NOHUGEPAGE)", r + 3 * MiB, 3 * MiB, MADV_NOHUGEPAGE);
    madvise_print("madvise(+0, 3 MiB, COLLAPSE)", r, 3 * MiB, MADV_COLLAPSE);
    print_huge("first VMA (0..3 MiB)", r, 3 * MiB);
    print_huge("second VMA (3..6 MiB)", r + 3 * MiB, 3 * MiB);
    print_check("data", check_pattern(r, 3 * H, 3 * H));

    /* [A: 4 MiB][hole 2 MiB][B: 2 MiB, read-write][C: 2 MiB, untouched] */
    r = populated("several VMAs and a hole", 5 * H);
    munmap(r + 2 * H, H);
    mprotect(r + 3 * H, H, PROT_READ | PROT_WRITE | PROT_EXEC);
    madvise_print("madvise(A, hole, B, COLLAPSE)", r, 4 * H, MADV_COLLAPSE);
    print_huge("A", r, 2 * H);
    print_huge("B", r + 3 * H, H);
    print_check("data A", check_pattern(r, 2 * H, 5 * H));
    print_check("data B", check_pattern_from(r + 3 * H, H, 5 * H, 3 * H / P));
    madvise_print("again: A and B already huge, hole", r, 4 * H, MADV_COLLAPSE);
    madvise(r + 4 * H, H, MADV_DONTNEED);
    madvise_print("madvise(hole, B, C emptied, COLLAPSE)", r + 2 * H, 3 * H, MADV_COLLAPSE);
    madvise_print("madvise(only the hole, COLLAPSE)", r + 2 * H, H, MADV_COLLAPSE);
    return 0;
}
