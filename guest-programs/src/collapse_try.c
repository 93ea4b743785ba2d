/* The proposed least-effort collapse: madvise(MADV_TRY_COLLAPSE = 26) and
 * process_madvise(..., MADV_COLLAPSE, MADV_F_COLLAPSE_LIGHT = 1). Linux 6.18 answers EINVAL
 * to both (and PageLab with --kernel-abi=6.18 must too); PageLab's default ABI implements the
 * proposal, which with plenty of free memory does what MADV_COLLAPSE does.
 * Usage: collapse_try [as-collapse]
 *   as-collapse  issue MADV_COLLAPSE (flags 0) wherever the proposed ABI is used, printing the
 *                same labels: natively, this prints what the proposal must print. */
#include "guest.h"
#include <sys/syscall.h>
#include <sys/uio.h>

#define H HUGE_SIZE_2M

static int try_advice = MADV_TRY_COLLAPSE;
static unsigned light_flag = MADV_F_COLLAPSE_LIGHT;

static char *populated(const char *title)
{
    printf("## %s\n", title);
    char *r = map_region(H, H, PROT_READ | PROT_WRITE);
    fill_pattern(r, H, 17);
    return r;
}

static void after(const char *r)
{
    print_huge("after", r, H);
    print_check("data", check_pattern(r, H, 17));
}

static void print_pm(const char *label, const struct iovec *iov, size_t vlen, unsigned flags)
{
    errno = 0;
    long ret = syscall(440, -10001, iov, vlen, MADV_COLLAPSE, flags);
    print_result(label, ret, errno);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "as-collapse") == 0) {
        try_advice = MADV_COLLAPSE;
        light_flag = 0;
    }
    print_thp_setting();

    char *r = populated("populated region");
    madvise_print("madvise(TRY_COLLAPSE)", r, H, try_advice);
    after(r);

    r = populated("already huge (collapsed by MADV_COLLAPSE first)");
    madvise_print("madvise(COLLAPSE)", r, H, MADV_COLLAPSE);
    madvise_print("madvise(TRY_COLLAPSE)", r, H, try_advice);
    after(r);

    puts("## never touched");
    r = map_region(H, H, PROT_READ | PROT_WRITE);
    madvise_print("madvise(TRY_COLLAPSE)", r, H, try_advice);
    print_huge("after", r, H);

    r = populated("sub-2 MiB range with no boundary inside");
    madvise_print("madvise(+4 KiB, 8 KiB, TRY_COLLAPSE)", r + PAGE_SIZE_4K, 2 * PAGE_SIZE_4K, try_advice);
    madvise_print("madvise(+1 byte, TRY_COLLAPSE)", r + 1, H, try_advice);
    after(r);

    r = populated("process_madvise(PIDFD_SELF, COLLAPSE, MADV_F_COLLAPSE_LIGHT)");
    struct iovec iov = { r, H };
    print_pm("process_madvise(flags COLLAPSE_LIGHT)", &iov, 1, light_flag);
    after(r);
    print_pm("process_madvise(flags 2, unknown)", &iov, 1, 2);
    return 0;
}
