/* mprotect that adds PROT_EXEC to memory the program just used as data: the JIT pattern. The CPU may
 * still cache the old no-execute translation (a read or write through it a moment before puts it in
 * the TLB); Linux flushes when the no-execute bit changes in either direction, so the call that
 * follows must run the code, whether the page is a 4 KiB page or part of a 2 MiB THP. */
#include "guest.h"

/* mov eax, 42; ret */
static const unsigned char code[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 };

static void run(const char *label, char *page, int middle_prot, int touch)
{
    memcpy(page, code, sizeof code);
    if (middle_prot >= 0 && mprotect(page, PAGE_SIZE_4K, middle_prot) != 0)
        die("mprotect (data)");
    volatile char *p = page;
    if (touch == 'r')
        (void)p[64];
    else if (touch == 'w')
        p[64] = 1; /* the translation is now cached writable and no-execute */
    if (mprotect(page, PAGE_SIZE_4K, PROT_READ | PROT_EXEC | (middle_prot == PROT_READ ? 0 : PROT_WRITE)) != 0)
        die("mprotect (exec)");
    int (*function)(void) = (int (*)(void))(void *)page;
    printf("%s: call returned %d\n", label, function());
}

int main(void)
{
    run("4k read-only, read, then read+exec", map_region(PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_READ | PROT_WRITE), PROT_READ, 'r');
    run("4k read+write, written, then read+write+exec", map_region(PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_READ | PROT_WRITE), -1, 'w');
    run("4k read-only, untouched, then read+exec", map_region(PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_READ | PROT_WRITE), PROT_READ, 0);

    /* A whole 2 MiB THP changes rights in place (one huge PMD), without a split. */
    char *huge = map_region(HUGE_SIZE_2M, HUGE_SIZE_2M, PROT_READ | PROT_WRITE);
    if (madvise(huge, HUGE_SIZE_2M, MADV_HUGEPAGE) != 0)
        die("madvise(MADV_HUGEPAGE)");
    memset(huge, 0, HUGE_SIZE_2M);
    memcpy(huge, code, sizeof code);
    if (mprotect(huge, HUGE_SIZE_2M, PROT_READ) != 0)
        die("mprotect (huge data)");
    volatile char *h = huge;
    (void)h[64];
    if (mprotect(huge, HUGE_SIZE_2M, PROT_READ | PROT_EXEC) != 0)
        die("mprotect (huge exec)");
    int (*function)(void) = (int (*)(void))(void *)huge;
    printf("2m read-only, read, then read+exec: call returned %d\n", function());
    return 0;
}
