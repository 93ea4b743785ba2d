/* mmap, munmap, mprotect and mremap layouts as /proc/self/maps shows them: VMA splits and
 * merges, holes, moves, shared and file mappings, and the errors of bad arguments. Layouts are
 * printed relative to a PROT_NONE reservation the program made (see print_maps). */
#include "guest.h"

#define P PAGE_SIZE_4K
#define REGION (64 * P)

static char *base;

static void *fixed(size_t page, size_t pages, int prot, int flags)
{
    void *p = mmap(base + page * P, pages * P, prot, flags | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        die("mmap MAP_FIXED");
    return p;
}

static void show(const char *label) { print_maps(label, base, REGION); }

static void report(const char *label, long ret)
{
    print_result(label, ret, errno);
}

int main(int argc, char **argv)
{
    (void)argc;
    base = map_region(REGION, HUGE_SIZE_2M, PROT_NONE);
    show("reserved 64 pages PROT_NONE");

    /* Two adjacent anonymous mappings with the same flags merge into one VMA. */
    fixed(0, 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fixed(16, 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    show("mapped pages 0-15 and 16-31 rw");
    fill_pattern(base, 32 * P, 1);

    errno = 0;
    report("mprotect(+4 pages, 4 pages, PROT_READ)", mprotect(base + 4 * P, 4 * P, PROT_READ));
    show("after mprotect read-only in the middle");
    errno = 0;
    report("mprotect(+4 pages, 4 pages, PROT_READ|PROT_WRITE)", mprotect(base + 4 * P, 4 * P, PROT_READ | PROT_WRITE));
    show("after mprotect back to rw (merged again)");
    errno = 0;
    report("mprotect(+30 pages, 4 pages, PROT_EXEC) across two VMAs",
           mprotect(base + 30 * P, 4 * P, PROT_READ | PROT_EXEC));
    show("after mprotect across the rw/none boundary");

    errno = 0;
    report("munmap(+10 pages, 2 pages)", munmap(base + 10 * P, 2 * P));
    show("after munmap of a hole");
    errno = 0;
    report("mprotect(+8 pages, 6 pages) over the hole", mprotect(base + 8 * P, 6 * P, PROT_READ));
    show("after mprotect over the hole (the part before it changed)");

    errno = 0;
    void *moved = mremap(base, 8 * P, 4 * P, 0);
    report("mremap(+0, 8 pages -> 4 pages) shrink", moved == MAP_FAILED ? -1 : (long)((char *)moved - base));
    show("after mremap shrink");
    errno = 0;
    moved = mremap(base + 16 * P, 14 * P, 20 * P, 0);
    report("mremap(+16, 14 -> 20 pages) grow in place, no room", moved == MAP_FAILED ? -1 : (long)((char *)moved - base));
    errno = 0;
    moved = mremap(base + 16 * P, 14 * P, 12 * P, MREMAP_MAYMOVE | MREMAP_FIXED, base + 40 * P);
    report("mremap(+16, 14 -> 12 pages, MAYMOVE|FIXED to +40) offset", moved == MAP_FAILED ? -1 : (long)((char *)moved - base) / (long)P);
    show("after mremap move");
    /* fill_pattern seeded each page by its index from base: page 16 is now at 40. */
    long bad = check_pattern_from(base + 40 * P, 12 * P, 1, 16);
    print_check("moved data", bad);

    fixed(56, 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    show("after a shared anonymous mapping at +56");

    errno = 0;
    void *p = mmap(base + 56 * P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    report("mmap(+56, MAP_FIXED_NOREPLACE) over a mapping", p == MAP_FAILED ? -1 : 0);
    errno = 0;
    report("munmap(+1 byte)", munmap(base + 1, P));
    errno = 0;
    report("munmap(len 0)", munmap(base, 0));
    errno = 0;
    report("mprotect(+1 byte)", mprotect(base + 1, P, PROT_READ));
    errno = 0;
    report("mprotect(bad prot bits)", mprotect(base, P, 0x100));
    errno = 0;
    p = mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    report("mmap(len 0)", p == MAP_FAILED ? -1 : 0);
    errno = 0;
    p = mmap(NULL, P, PROT_READ, MAP_ANONYMOUS, -1, 0);
    report("mmap(neither private nor shared)", p == MAP_FAILED ? -1 : 0);
    errno = 0;
    moved = mremap(base + 1, P, 2 * P, MREMAP_MAYMOVE);
    report("mremap(+1 byte)", moved == MAP_FAILED ? -1 : 0);

    /* A private file mapping of this program's own binary: offset and name are shown. */
    int fd = open(argv[0], O_RDONLY);
    if (fd < 0)
        die("open argv[0]");
    p = mmap(base + 60 * P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, P);
    report("mmap(+60, 2 pages of argv[0] at file offset 4096)", p == MAP_FAILED ? -1 : 0);
    errno = 0;
    p = mmap(base + 62 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 1);
    report("mmap(file offset 1)", p == MAP_FAILED ? -1 : 0);
    close(fd);
    show("final layout");
    return 0;
}
