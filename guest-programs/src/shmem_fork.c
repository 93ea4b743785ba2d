/* MAP_SHARED|MAP_ANONYMOUS memory is one shmem object shared by fork: a child's writes to pages
 * the parent never touched are seen by the parent; MADV_DONTNEED only unmaps (the data stays in
 * the object); MADV_REMOVE punches a hole; mremap keeps the object; MADV_COLLAPSE depends on
 * shmem_enabled (printed first). Prints smaps Rss/Swap/ShmemPmdMapped of the region and status
 * RssShmem (the program maps no other shmem). Children print nothing: they report through
 * their exit status, so the output never depends on scheduling. */
#include "guest.h"
#include <sys/wait.h>

#define REGION (4 * MiB)
#define PAGES 64

static char *shared;

static void show(const char *label)
{
    struct smaps_totals t = smaps_region(shared, REGION);
    unsigned long rss_shmem = 0;
    const char *text = read_text_file("/proc/self/status");
    char line[256];
    while (next_line(&text, line, sizeof line))
        sscanf(line, "RssShmem: %lu kB", &rss_shmem);
    printf("%s: Rss=%lu Anonymous=%lu Swap=%lu ShmemPmdMapped=%lu THPeligible=%lu RssShmem=%lu\n", label, t.rss,
           t.anonymous, t.swap, t.shmem_pmd, t.thp_eligible, rss_shmem);
}

static void print_shmem_setting(void)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%.127s", read_text_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled"));
    char *open = strchr(buf, '['), *close = open ? strchr(open, ']') : NULL;
    if (open && close)
        *close = 0;
    printf("shmem-enabled: %s\n", open && close ? open + 1 : "unreadable");
}

static int wait_child(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Child 1: checks the parent's pages, writes pages 16..31 (never touched by the parent) and
 * overwrites page 0. Exit status: one bit per failed check. */
static int child_writes(void)
{
    int status = 0;
    if (check_pattern(shared, 4 * PAGE_SIZE_4K, 1) >= 0)
        status |= 1;
    if (check_zero(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K) >= 0)
        status |= 2;
    fill_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2);
    memset(shared, 'C', 64);
    return status;
}

int main(void)
{
    print_shmem_setting();
    char *base = map_region(2 * REGION, HUGE_SIZE_2M, PROT_NONE);
    shared = mmap(base, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (shared == MAP_FAILED)
        die("mmap shared");
    show("fresh 4 MiB");
    fill_pattern(shared, 4 * PAGE_SIZE_4K, 1);
    volatile char sink = shared[8 * PAGE_SIZE_4K];
    show("4 pages written, 1 read");

    pid_t pid = fork_or_die();
    if (pid == 0)
        _exit(child_writes());
    printf("child 1 (reads the parent's pages, writes 16 new ones): status %d\n", wait_child(pid));
    show("parent after the child wrote");
    print_check("pages written by the child, seen by the parent", check_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2));
    printf("page 0 starts with: %.4s\n", shared);
    show("parent after reading them");

    madvise_print("madvise(0, 4 MiB, DONTNEED)", shared, REGION, MADV_DONTNEED);
    show("after DONTNEED");
    print_check("child's pages after DONTNEED", check_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2));
    print_check("parent's pages 1..3 after DONTNEED", check_pattern_from(shared + PAGE_SIZE_4K, 3 * PAGE_SIZE_4K, 1, 1));
    show("after reading them again");

    pid = fork_or_die();
    if (pid == 0)
        _exit(madvise(shared, REGION, MADV_DONTNEED) == 0 ? 0 : 1);
    printf("child 2 (DONTNEED of its own mapping): status %d\n", wait_child(pid));
    print_check("parent's data after the child's DONTNEED", check_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2));

    madvise_print("madvise(+64 KiB, 64 KiB, PAGEOUT)", shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, MADV_PAGEOUT);
    show("after PAGEOUT (no swap: the pages stay)");

    madvise_print("madvise(0, 2 MiB, COLLAPSE)", shared, HUGE_SIZE_2M, MADV_COLLAPSE);
    show("after COLLAPSE");
    madvise_print("madvise(0, 2 MiB, DONTNEED)", shared, HUGE_SIZE_2M, MADV_DONTNEED);
    show("after DONTNEED of the huge page");
    print_check("child's pages after collapse and DONTNEED", check_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2));
    show("after reading them (one fault maps the huge page)");
    pid = fork_or_die();
    if (pid == 0)
        _exit(check_pattern(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 2) >= 0 || shared[0] != 'C');
    printf("child 3 (reads the collapsed pages): status %d\n", wait_child(pid));
    madvise_print("madvise(+4 KiB, 4 KiB, DONTNEED) inside the huge page", shared + PAGE_SIZE_4K, PAGE_SIZE_4K, MADV_DONTNEED);
    show("after DONTNEED of one page of it");
    printf("page 0 starts with: %.4s\n", shared);
    show("after reading page 0");

    errno = 0;
    print_result("mprotect(0, 4 MiB, READ)", mprotect(shared, REGION, PROT_READ), errno);
    errno = 0;
    print_result("mprotect(0, 4 MiB, READ|WRITE)", mprotect(shared, REGION, PROT_READ | PROT_WRITE), errno);
    shared[1] = 'W';
    printf("page 0 starts with: %.4s\n", shared);
    show("after mprotect and a write");

    madvise_print("madvise(+64 KiB, 8 KiB, REMOVE)", shared + 16 * PAGE_SIZE_4K, 2 * PAGE_SIZE_4K, MADV_REMOVE);
    show("after REMOVE");
    print_check("removed pages read as zero", check_zero(shared + 16 * PAGE_SIZE_4K, 2 * PAGE_SIZE_4K));
    print_check("the rest kept", check_pattern_from(shared + 18 * PAGE_SIZE_4K, 14 * PAGE_SIZE_4K, 2, 2));

    char *moved = mremap(shared + 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, 16 * PAGE_SIZE_4K, MREMAP_MAYMOVE | MREMAP_FIXED,
                         base + REGION + HUGE_SIZE_2M);
    if (moved == MAP_FAILED)
        die("mremap");
    print_maps("maps after moving 64 KiB of it", base, 2 * REGION);
    print_check("moved pages", check_pattern_from(moved + 2 * PAGE_SIZE_4K, 14 * PAGE_SIZE_4K, 2, 2));
    munmap(shared, REGION);
    munmap(moved, 16 * PAGE_SIZE_4K);
    (void)sink;
    return 0;
}
