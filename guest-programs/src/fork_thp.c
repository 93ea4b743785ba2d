/* fork with a transparent huge page (Linux 6.18's copy_huge_pmd and do_huge_pmd_wp_page): the
 * child shares the parent's THP write-protected; a write by one side while the other still maps
 * it splits only the writer's PMD and copies one 4 KiB page (the other side keeps its huge
 * mapping); a write once the other side has exited reuses the huge page. Each side prints the
 * AnonHugePages, Rss, Pss and shared/private dirty sizes of the region from its own smaps and a
 * checksum of the region's data.
 * thp_split_pmd in /proc/vmstat is machine-wide (other processes change it too), so only
 * "went up" is printed, after a write that must split. Parent and child take turns printing,
 * each flushing before handing over, so the output order is fixed. */
#include "guest.h"

#define H HUGE_SIZE_2M

static char *region;

static long vmstat(const char *name)
{
    const char *text = read_text_file("/proc/vmstat");
    char line[256];
    size_t length = strlen(name);
    while (next_line(&text, line, sizeof line)) {
        if (strncmp(line, name, length) == 0 && line[length] == ' ')
            return atol(line + length + 1);
    }
    return -1;
}

/* The region as smaps shows it to this process: the huge mapping, and each 4 KiB page counted as
 * shared or private by how many processes map it (a THP's pages one by one). */
static void print_side(const char *label)
{
    struct smaps_totals t = smaps_region(region, H);
    printf("%s region: AnonHugePages=%lu kB Rss=%lu kB Pss=%lu kB Shared_Dirty=%lu kB Private_Dirty=%lu kB\n", label,
           t.anon_huge, t.rss, t.pss, t.shared_dirty, t.private_dirty);
    printf("%s checksum: %016llx\n", label, (unsigned long long)hash_bytes(HASH_INIT, region, H));
}

int main(void)
{
    print_thp_setting();
    region = map_region(H, H, PROT_READ | PROT_WRITE);
    madvise_print("madvise(region, HUGEPAGE)", region, H, MADV_HUGEPAGE);
    fill_pattern(region, H, 41);
    print_side("parent before fork");

    puts("## 1: the child writes one byte while the parent maps the THP");
    long splits = vmstat("thp_split_pmd");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        print_side("child before writing");
        region[5 * PAGE_SIZE_4K + 100] ^= 1;
        printf("thp_split_pmd went up: %s\n", vmstat("thp_split_pmd") > splits ? "yes" : "no");
        print_side("child after writing");
        region[5 * PAGE_SIZE_4K + 100] ^= 1;
        print_check("child data (the byte written back)", check_pattern(region, H, 41));
        fflush(stdout);
        _exit(0);
    }
    wait_and_report(pid);
    print_side("parent");
    print_check("parent data", check_pattern(region, H, 41));

    puts("## 2: the parent writes after the child exited (reuses the huge page)");
    pid = fork_or_die();
    if (pid == 0)
        _exit(0);
    wait_and_report(pid);
    region[7 * PAGE_SIZE_4K] ^= 1;
    print_side("parent after writing");
    region[7 * PAGE_SIZE_4K] ^= 1;

    puts("## 3: the parent writes while the child maps the THP");
    int go;
    pid = fork_held_child(&go);
    if (pid == 0) {
        print_side("child");
        print_check("child data", check_pattern(region, H, 41));
        fflush(stdout);
        _exit(0);
    }
    splits = vmstat("thp_split_pmd");
    fill_pattern(region + 9 * PAGE_SIZE_4K, PAGE_SIZE_4K, 99);
    printf("thp_split_pmd went up: %s\n", vmstat("thp_split_pmd") > splits ? "yes" : "no");
    print_side("parent after writing");
    print_check("parent page 9 (rewritten)", check_pattern(region + 9 * PAGE_SIZE_4K, PAGE_SIZE_4K, 99));
    release_child(go);
    wait_and_report(pid);
    print_side("parent after the child exited");
    return 0;
}
