/* MADV_COLLAPSE of anonymous regions in their basic states: fully populated (several regions
 * at once), already huge, a PTE table that exists but is empty, a single PTE, many empty PTEs,
 * only zero-page PTEs, never touched, and a range mixing populated and untouched regions.
 * Each case prints the return value and errno, smaps AnonHugePages of its region, and a data
 * check (populated pages keep their data, the rest reads zero). */
#include "guest.h"

#define H HUGE_SIZE_2M
#define P PAGE_SIZE_4K

/* Writes the pattern into every `stride`-th page of [r, r + len); other pages stay untouched. */
static void touch_every(char *r, size_t len, size_t stride, uint64_t seed)
{
    for (size_t page = 0; page < len / P; page += stride)
        fill_pattern(r + page * P, P, seed ^ page);
}

/* Checks pages written by touch_every and that all the others read zero. */
static void check_every(const char *label, const char *r, size_t len, size_t stride, uint64_t seed)
{
    long bad = -1;
    for (size_t page = 0; page < len / P && bad < 0; page++) {
        long result = page % stride == 0 ? check_pattern(r + page * P, P, seed ^ page) : check_zero(r + page * P, P);
        if (result >= 0)
            bad = (long)page;
    }
    print_check(label, bad);
}

/* Read-faults every page of one region: each PTE then maps the shared zero page. */
static void read_fault_all(const char *r)
{
    volatile char sink = 0;
    for (size_t off = 0; off < H; off += P)
        sink += r[off];
    (void)sink;
}

/* Writes page `page` of one region, collapses the region, and checks that page's data and
 * that every other page reads zero. */
static void collapse_one_written_page(char *r, size_t page, uint64_t seed)
{
    touch_every(r + page * P, P, 1, seed);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);
    char label[32];
    snprintf(label, sizeof label, "data of page %zu", page);
    print_check(label, check_pattern(r + page * P, P, seed));
    long other = check_zero(r, page * P) < 0 && check_zero(r + (page + 1) * P, H - (page + 1) * P) < 0 ? -1 : 0;
    print_check("other pages zero", other);
}

static char *collapse_case(const char *title, size_t regions)
{
    printf("## %s\n", title);
    return map_region(regions * H, H, PROT_READ | PROT_WRITE);
}

int main(void)
{
    print_thp_setting();

    char *r = collapse_case("three fully populated regions in one call", 3);
    touch_every(r, 3 * H, 1, 1);
    print_huge("before", r, 3 * H);
    madvise_print("madvise(3 regions, COLLAPSE)", r, 3 * H, MADV_COLLAPSE);
    print_huge("after", r, 3 * H);
    check_every("data", r, 3 * H, 1, 1);
    madvise_print("again: already huge", r, 3 * H, MADV_COLLAPSE);
    print_huge("after again", r, 3 * H);
    check_every("data", r, 3 * H, 1, 1);

    r = collapse_case("PTE table exists but is empty (touched, then DONTNEED)", 1);
    r[0] = 1;
    madvise_print("madvise(DONTNEED)", r, H, MADV_DONTNEED);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);
    print_check("data (all zero)", check_zero(r, H));

    r = collapse_case("single PTE", 1);
    collapse_one_written_page(r, 77, 3);

    r = collapse_case("many empty PTEs (every 7th page populated)", 1);
    touch_every(r, H, 7, 4);
    print_huge("before", r, H);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);
    check_every("data", r, H, 7, 4);

    r = collapse_case("only zero-page PTEs (read faults)", 1);
    read_fault_all(r);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);
    print_check("data (all zero)", check_zero(r, H));

    r = collapse_case("zero-page PTEs and one written page", 1);
    read_fault_all(r);
    collapse_one_written_page(r, 300, 8);

    r = collapse_case("never touched", 1);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);

    r = collapse_case("populated, untouched, populated regions in one call", 3);
    touch_every(r, H, 1, 5);
    touch_every(r + 2 * H, H, 3, 6);
    madvise_print("madvise(3 regions, COLLAPSE)", r, 3 * H, MADV_COLLAPSE);
    /* smaps counts per VMA: the total tells how many of the three regions became huge. */
    print_huge("whole VMA", r, 3 * H);
    check_every("data region 0", r, H, 1, 5);
    print_check("region 1 zero", check_zero(r + H, H));
    check_every("data region 2", r + 2 * H, H, 3, 6);

    r = collapse_case("untouched, then populated region in one call", 2);
    touch_every(r + H, H, 1, 7);
    madvise_print("madvise(2 regions, COLLAPSE)", r, 2 * H, MADV_COLLAPSE);
    print_huge("whole VMA", r, 2 * H);
    check_every("data region 1", r + H, H, 1, 7);
    return 0;
}
