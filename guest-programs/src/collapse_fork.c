/* MADV_COLLAPSE and fork: a child collapses memory it shares copy-on-write with its parent
 * (the child gets a huge page with the data, the parent keeps its small pages and its data),
 * and a parent collapses while a child still shares the pages (the child keeps its data).
 * Parent and child take turns printing (each flushes before handing over), so the output
 * order is fixed. */
#include "guest.h"

#define H HUGE_SIZE_2M

int main(void)
{
    print_thp_setting();
    /* Two regions in separate VMAs, so that smaps (per VMA) shows each on its own. */
    char *r0 = map_region(H, H, PROT_READ | PROT_WRITE), *r1 = map_region(H, H, PROT_READ | PROT_WRITE);
    fill_pattern(r0, H, 13);
    fill_pattern(r1, H, 23);

    puts("## the child collapses region 0, shared with the parent");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        madvise_print("child: madvise(region 0, COLLAPSE)", r0, H, MADV_COLLAPSE);
        print_huge("child region 0", r0, H);
        print_check("child data", check_pattern(r0, H, 13));
        fill_pattern(r0, H, 14);
        print_check("child data after rewriting region 0", check_pattern(r0, H, 14));
        fflush(stdout);
        _exit(0);
    }
    wait_and_report(pid);
    print_huge("parent region 0", r0, H);
    print_check("parent data", check_pattern(r0, H, 13));

    puts("## the parent collapses region 1 while a child shares it");
    int go;
    pid = fork_held_child(&go);
    if (pid == 0) {
        print_huge("child region 1", r1, H);
        print_check("child data", check_pattern(r1, H, 23));
        fflush(stdout);
        _exit(0);
    }
    madvise_print("parent: madvise(region 1, COLLAPSE)", r1, H, MADV_COLLAPSE);
    print_huge("parent region 1", r1, H);
    print_check("parent data", check_pattern(r1, H, 23));
    fill_pattern(r1, H, 15);
    print_check("parent data after rewriting region 1", check_pattern(r1, H, 15));
    release_child(go);
    wait_and_report(pid);
    return 0;
}
