/* madvise return values and errno on good and bad arguments, following the syscall-level rules
 * (SEMANTICS.md "madvise(addr, len, advice)"): alignment, rounding of len, wrapping, len 0,
 * unknown advice, ranges split at VMA boundaries, holes (ENOMEM after doing the rest), and
 * the first failing piece stopping the walk. Effects are observed through data and smaps. */
#include "guest.h"

#define P PAGE_SIZE_4K
#define REGION (64 * P)

static char *base;

static void fixed(size_t page, size_t pages, int prot, int flags)
{
    if (mmap(base + page * P, pages * P, prot, flags | MAP_FIXED, -1, 0) == MAP_FAILED)
        die("mmap MAP_FIXED");
}

/* Prints which of the given pages still hold their pattern byte (1) or read zero (0). */
static void show_pages(const char *label, size_t first, size_t count)
{
    printf("%s: ", label);
    for (size_t page = first; page < first + count; page++)
        putchar(base[page * P] != 0 ? '1' : '0');
    putchar('\n');
}

static void touch(size_t first, size_t count)
{
    for (size_t page = first; page < first + count; page++)
        base[page * P] = (char)(page + 1);
}

static void show_rss(const char *label, size_t first, size_t count)
{
    struct smaps_totals t = smaps_region(base + first * P, count * P);
    printf("%s: vmas=%lu Rss=%lu kB\n", label, t.vmas, t.rss);
}

int main(void)
{
    base = map_region(REGION, HUGE_SIZE_2M, PROT_NONE);
    fixed(0, 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(0, 16);

    puts("# argument checks");
    madvise_print("madvise(+1 byte, 1 page, DONTNEED)", base + 1, P, MADV_DONTNEED);
    madvise_print("madvise(+1 byte, len 0, DONTNEED)", base + 1, 0, MADV_DONTNEED);
    madvise_print("madvise(+0, len 0, DONTNEED)", base, 0, MADV_DONTNEED);
    madvise_print("madvise(+0, len 0, advice 12345)", base, 0, 12345);
    madvise_print("madvise(+0, 1 page, advice 12345)", base, P, 12345);
    madvise_print("madvise(+0, 1 page, advice 5 (unassigned))", base, P, 5);
    madvise_print("madvise(+0, len -4096 (wraps), DONTNEED)", base, (size_t)-4096, MADV_DONTNEED);
    madvise_print("madvise(+0, len -1 (rounds to 0), DONTNEED)", base, (size_t)-1, MADV_DONTNEED);
    madvise_print("madvise(+0, len 1 page + 1, WILLNEED)", base, P + 1, MADV_WILLNEED);
    show_pages("pages 0-3 after the argument checks", 0, 4);

    puts("# len is rounded up to whole pages");
    madvise_print("madvise(+0, len 1, DONTNEED)", base, 1, MADV_DONTNEED);
    madvise_print("madvise(+2 pages, len 4097, DONTNEED)", base + 2 * P, P + 1, MADV_DONTNEED);
    show_pages("pages 0-5", 0, 6);

    puts("# holes are skipped, the rest is done, then ENOMEM");
    touch(0, 16);
    munmap(base + 6 * P, 2 * P);
    madvise_print("madvise(+4, 6 pages over the hole at 6-7, DONTNEED)", base + 4 * P, 6 * P, MADV_DONTNEED);
    show_pages("pages 3-5 (4-5 advised)", 3, 3);
    show_pages("pages 8-10 (8-9 advised)", 8, 3);
    madvise_print("madvise(+6, 2 pages, only the hole, DONTNEED)", base + 6 * P, 2 * P, MADV_DONTNEED);
    madvise_print("madvise(+6, 2 pages, only the hole, WILLNEED)", base + 6 * P, 2 * P, MADV_WILLNEED);
    madvise_print("madvise(+6, 2 pages, only the hole, advice 12345)", base + 6 * P, 2 * P, 12345);
    madvise_print("madvise(+16, 4 pages, PROT_NONE reservation, DONTNEED)", base + 16 * P, 4 * P, MADV_DONTNEED);
    madvise_print("madvise(+14, 4 pages, end in PROT_NONE, WILLNEED)", base + 14 * P, 4 * P, MADV_WILLNEED);

    puts("# the first failing piece stops the walk and its error wins over holes");
    /* [private 20-23][shared 24-27][private 28-31]: MADV_FREE needs private anonymous memory. */
    fixed(20, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fixed(24, 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    fixed(28, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    touch(20, 12);
    /* MADV_FREE's effect (LazyFree in smaps) shows only once the kernel drains a per-CPU
     * batch, so only return values are printed here; the populate cases below show the
     * stop through Rss. */
    madvise_print("madvise(+20, 12 pages, private|shared|private, FREE)", base + 20 * P, 12 * P, MADV_FREE);
    madvise_print("madvise(+24, 8 pages, shared|private, FREE)", base + 24 * P, 8 * P, MADV_FREE);
    madvise_print("madvise(+28, 4 pages, private, FREE)", base + 28 * P, 4 * P, MADV_FREE);
    madvise_print("madvise(+4, 24 pages, hole then shared, FREE)", base + 4 * P, 24 * P, MADV_FREE);
    madvise_print("madvise(+20, 12 pages, DONTNEED works on all three)", base + 20 * P, 12 * P, MADV_DONTNEED);
    show_pages("pages 20-31 (shared memory keeps its data)", 20, 12);

    puts("# populate: a read-only piece stops POPULATE_WRITE");
    fixed(32, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fixed(36, 4, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    fixed(40, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    madvise_print("madvise(+32, 12 pages, rw|r|rw, POPULATE_WRITE)", base + 32 * P, 12 * P, MADV_POPULATE_WRITE);
    show_rss("  rw 32-35", 32, 4);
    show_rss("  r 36-39", 36, 4);
    show_rss("  rw 40-43", 40, 4);
    madvise_print("madvise(+36, 4 pages, r, POPULATE_READ)", base + 36 * P, 4 * P, MADV_POPULATE_READ);
    show_rss("  r 36-39 (zero page is not counted)", 36, 4);
    madvise_print("madvise(+44, 4 pages, PROT_NONE, POPULATE_READ)", base + 44 * P, 4 * P, MADV_POPULATE_READ);
    madvise_print("madvise(+40, 8 pages, rw then PROT_NONE, POPULATE_WRITE)", base + 40 * P, 8 * P, MADV_POPULATE_WRITE);
    madvise_print("madvise(+6, 2 pages, only the hole, POPULATE_READ)", base + 6 * P, 2 * P, MADV_POPULATE_READ);

    puts("# other advice on private anonymous memory");
    touch(32, 4);
    madvise_print("madvise(+32, 4 pages, COLD)", base + 32 * P, 4 * P, MADV_COLD);
    madvise_print("madvise(+32, 4 pages, PAGEOUT)", base + 32 * P, 4 * P, MADV_PAGEOUT);
    show_rss("  32-35 after PAGEOUT (no swap: stays resident)", 32, 4);
    show_pages("  pages 32-35", 32, 4);
    madvise_print("madvise(+32, 4 pages, WILLNEED)", base + 32 * P, 4 * P, MADV_WILLNEED);
    madvise_print("madvise(+32, 4 pages, NORMAL)", base + 32 * P, 4 * P, MADV_NORMAL);
    madvise_print("madvise(+32, 4 pages, RANDOM)", base + 32 * P, 4 * P, MADV_RANDOM);
    madvise_print("madvise(+32, 4 pages, SEQUENTIAL)", base + 32 * P, 4 * P, MADV_SEQUENTIAL);
    madvise_print("madvise(+33, 1 page, HUGEPAGE)", base + 33 * P, P, MADV_HUGEPAGE);
    madvise_print("madvise(+34, 1 page, NOHUGEPAGE)", base + 34 * P, P, MADV_NOHUGEPAGE);
    print_maps("maps of 32-35 after HUGEPAGE/NOHUGEPAGE on single pages", base + 32 * P, 4 * P);
    madvise_print("madvise(+32, 4 pages, NOHUGEPAGE)", base + 32 * P, 4 * P, MADV_NOHUGEPAGE);
    print_maps("maps of 32-35 after NOHUGEPAGE on all", base + 32 * P, 4 * P);
    madvise_print("madvise(+32, 4 pages, HUGEPAGE)", base + 32 * P, 4 * P, MADV_HUGEPAGE);
    madvise_print("madvise(+32, 4 pages, FREE)", base + 32 * P, 4 * P, MADV_FREE);
    madvise_print("madvise(+24, 4 pages, shared, WILLNEED)", base + 24 * P, 4 * P, MADV_WILLNEED);
    madvise_print("madvise(+24, 4 pages, shared, HUGEPAGE)", base + 24 * P, 4 * P, MADV_HUGEPAGE);
    madvise_print("madvise(+24, 4 pages, shared, COLLAPSE)", base + 24 * P, 4 * P, MADV_COLLAPSE);
    return 0;
}
