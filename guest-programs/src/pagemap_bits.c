/* /proc/self/pagemap flag bits of the program's own pages: present (63), swapped (62),
 * file-page or shared-anon (61), exclusively mapped (56). PFNs (bits 0-54) are printed only as
 * a property that is deterministic: whether they are visible at all (they read 0 without
 * CAP_SYS_ADMIN), and for a huge page whether its 512 PFNs are consecutive and 2 MiB aligned.
 * One character per page: '.' when no flag is set, otherwise a hex digit
 * present*8 + swapped*4 + file*2 + exclusive. */
#include "guest.h"
#include <sys/wait.h>

#define PRESENT (1ULL << 63)
#define SWAPPED (1ULL << 62)
#define FILE_OR_SHARED (1ULL << 61)
#define EXCLUSIVE (1ULL << 56)
#define PFN_MASK ((1ULL << 55) - 1)

static int pagemap_fd;

static void read_entries(const char *start, size_t pages, uint64_t *entries)
{
    off_t offset = (off_t)((uintptr_t)start / PAGE_SIZE_4K * sizeof(uint64_t));
    ssize_t n = pread(pagemap_fd, entries, pages * sizeof(uint64_t), offset);
    if (n != (ssize_t)(pages * sizeof(uint64_t)))
        die("pread /proc/self/pagemap");
}

static void show(const char *label, const char *start, size_t pages)
{
    static uint64_t entries[512];
    read_entries(start, pages, entries);
    printf("%-44s ", label);
    for (size_t i = 0; i < pages; i++) {
        uint64_t e = entries[i];
        int code = (e & PRESENT ? 8 : 0) | (e & SWAPPED ? 4 : 0) | (e & FILE_OR_SHARED ? 2 : 0) | (e & EXCLUSIVE ? 1 : 0);
        putchar(code ? "0123456789abcdef"[code] : '.');
    }
    putchar('\n');
}

int main(void)
{
    print_thp_setting();
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    if (pagemap_fd < 0)
        die("open /proc/self/pagemap");

    char *r = map_region(16 * PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_READ | PROT_WRITE);
    show("untouched", r, 16);
    r[0] = r[2 * PAGE_SIZE_4K] = r[5 * PAGE_SIZE_4K] = 1;
    volatile char sink = r[7 * PAGE_SIZE_4K];
    show("written 0 2 5, read 7 (zero page)", r, 16);

    uint64_t entry;
    read_entries(r, 1, &entry);
    printf("pfn visible: %s\n", entry & PFN_MASK ? "yes" : "no");

    madvise(r + 2 * PAGE_SIZE_4K, PAGE_SIZE_4K, MADV_DONTNEED);
    show("after DONTNEED of page 2", r, 16);

    /* While a forked child is alive, the pages are mapped twice: not exclusive. */
    int to_child[2], to_parent[2];
    if (pipe(to_child) != 0 || pipe(to_parent) != 0)
        die("pipe");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        char c;
        _exit(read(to_child[0], &c, 1) == 1 ? 0 : 1);
    }
    show("parent, child alive", r, 16);
    r[5 * PAGE_SIZE_4K] = 2;
    show("parent, child alive, page 5 rewritten (COW)", r, 16);
    if (write(to_child[1], "x", 1) != 1)
        die("write pipe");
    int status;
    waitpid(pid, &status, 0);
    show("parent, child exited", r, 16);

    char *s = mmap(NULL, 4 * PAGE_SIZE_4K, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        die("mmap shared");
    s[PAGE_SIZE_4K] = 1;
    show("shared anonymous, page 1 written", s, 4);

    char *h = map_region(HUGE_SIZE_2M, HUGE_SIZE_2M, PROT_READ | PROT_WRITE);
    madvise(h, HUGE_SIZE_2M, MADV_HUGEPAGE);
    h[0] = 1;
    static uint64_t entries[512];
    read_entries(h, 512, entries);
    int all_present = 1, consecutive = 1;
    for (size_t i = 0; i < 512; i++) {
        all_present &= (entries[i] & PRESENT) != 0;
        consecutive &= (entries[i] & PFN_MASK) == (entries[0] & PFN_MASK) + i;
    }
    show("huge page, first 16 of 512 entries", h, 16);
    printf("huge page: all 512 present=%s", all_present ? "yes" : "no");
    if (entries[0] & PFN_MASK)
        printf(" consecutive pfns=%s aligned=%s\n", consecutive ? "yes" : "no",
               (entries[0] & PFN_MASK) % 512 == 0 ? "yes" : "no");
    else
        printf(" pfns hidden\n");
    (void)sink;
    return 0;
}
