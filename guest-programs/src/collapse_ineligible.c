/* MADV_COLLAPSE eligibility: a MADV_NOHUGEPAGE region (EINVAL), read-only and PROT_NONE VMAs
 * holding data, shared anonymous memory (shmem), a MADV_HUGEPAGE region (the advice is not
 * needed, but allowed), and last a process with THP disabled by prctl(PR_SET_THP_DISABLE). */
#include "guest.h"
#include <sys/prctl.h>

#define H HUGE_SIZE_2M

static char *populated(const char *title, int flags)
{
    printf("## %s\n", title);
    char *r;
    if (flags & MAP_SHARED) {
        /* map_region makes private mappings: put a shared one over its aligned start. */
        r = map_region(H, H, PROT_NONE);
        if (mmap(r, H, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            die("mmap shared");
    } else {
        r = map_region(H, H, PROT_READ | PROT_WRITE);
    }
    fill_pattern(r, H, 9);
    return r;
}

static void after(const char *r)
{
    print_huge("after", r, H);
    print_check("data", check_pattern(r, H, 9));
}

int main(void)
{
    print_thp_setting();

    char *r = populated("MADV_NOHUGEPAGE region", MAP_PRIVATE);
    madvise_print("madvise(NOHUGEPAGE)", r, H, MADV_NOHUGEPAGE);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    after(r);
    madvise_print("madvise(HUGEPAGE) clears NOHUGEPAGE", r, H, MADV_HUGEPAGE);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    after(r);

    r = populated("read-only VMA holding data", MAP_PRIVATE);
    if (mprotect(r, H, PROT_READ) != 0)
        die("mprotect");
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    after(r);
    print_maps("maps", r, H);

    r = populated("PROT_NONE VMA holding data", MAP_PRIVATE);
    if (mprotect(r, H, PROT_NONE) != 0)
        die("mprotect");
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    print_huge("after", r, H);
    mprotect(r, H, PROT_READ);
    print_check("data", check_pattern(r, H, 9));

    r = populated("shared anonymous memory (shmem)", MAP_SHARED);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    struct smaps_totals t = smaps_region(r, H);
    printf("after: ShmemPmdMapped=%lu kB AnonHugePages=%lu kB Rss=%lu kB\n", t.shmem_pmd, t.anon_huge, t.rss);
    print_check("data", check_pattern(r, H, 9));

    r = populated("MADV_HUGEPAGE region populated with 4 KiB pages (advised after the faults)", MAP_PRIVATE);
    madvise_print("madvise(HUGEPAGE)", r, H, MADV_HUGEPAGE);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    after(r);

    puts("## prctl(PR_SET_THP_DISABLE)");
    errno = 0;
    print_result("prctl(PR_GET_THP_DISABLE)", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), errno);
    char *before = populated("populated before the prctl", MAP_PRIVATE);
    errno = 0;
    print_result("prctl(PR_SET_THP_DISABLE, 1)", prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), errno);
    errno = 0;
    print_result("prctl(PR_GET_THP_DISABLE)", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), errno);
    madvise_print("madvise(COLLAPSE) of a region mapped before", before, H, MADV_COLLAPSE);
    after(before);
    r = populated("populated after the prctl", MAP_PRIVATE);
    madvise_print("madvise(HUGEPAGE)", r, H, MADV_HUGEPAGE);
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    after(r);
    errno = 0;
    print_result("prctl(PR_SET_THP_DISABLE, 0)", prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0), errno);
    madvise_print("madvise(COLLAPSE) once re-enabled", r, H, MADV_COLLAPSE);
    after(r);
    return 0;
}
