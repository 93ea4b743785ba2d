/* process_madvise(pidfd, iov, vlen, MADV_COLLAPSE, 0) on the calling process (a pidfd from
 * pidfd_open(getpid()), and the PIDFD_SELF value) and on a child: the return value is the
 * number of bytes advised, entries are applied in order and the first failing entry stops the
 * call (partial success), or -1 with errno when the first entry fails. */
#include "guest.h"
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define H HUGE_SIZE_2M
#define PIDFD_SELF_PROCESS (-10001)

static long process_madvise_call(int pidfd, const struct iovec *iov, size_t vlen, int advice, unsigned flags)
{
    return syscall(440, pidfd, iov, vlen, advice, flags);
}

static void print_pm(const char *label, int pidfd, const struct iovec *iov, size_t vlen, int advice)
{
    errno = 0;
    long ret = process_madvise_call(pidfd, iov, vlen, advice, 0);
    int retries = 0; /* a transient EAGAIN before anything was advised is retried, as madvise_settled does */
    while (retry_transient_collapse("process_madvise", advice, ret, &retries))
        ret = process_madvise_call(pidfd, iov, vlen, advice, 0);
    print_result(label, ret, errno);
}

/* Three 2 MiB regions in separate VMAs; regions whose bit is set in `populate` are written. */
static void make_regions(char **regions, unsigned populate, uint64_t seed)
{
    for (int i = 0; i < 3; i++) {
        regions[i] = map_region(H, H, PROT_READ | PROT_WRITE);
        if (populate & (1u << i))
            fill_pattern(regions[i], H, seed + (uint64_t)i);
    }
}

static void show_regions(const char *who, char **regions, unsigned populated, uint64_t seed)
{
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s region %d", who, i);
        print_huge(label, regions[i], H);
        long bad = populated & (1u << i) ? check_pattern(regions[i], H, seed + (uint64_t)i) : check_zero(regions[i], H);
        snprintf(label, sizeof label, "%s region %d data", who, i);
        print_check(label, bad);
    }
}

int main(void)
{
    print_thp_setting();
    errno = 0;
    int self = (int)syscall(434, getpid(), 0);
    print_result("pidfd_open(getpid()) (0: got a pidfd)", self < 0 ? -1 : 0, errno);

    puts("## self: two populated regions");
    char *a[3];
    make_regions(a, 0x3, 100);
    struct iovec iov[3] = { { a[0], H }, { a[1], H }, { a[2], H } };
    print_pm("process_madvise(self, [r0, r1], COLLAPSE)", self, iov, 2, MADV_COLLAPSE);
    show_regions("self", a, 0x3, 100);

    puts("## self: populated, untouched, populated (stops at the failing entry)");
    char *b[3];
    make_regions(b, 0x5, 200);
    struct iovec partial[3] = { { b[0], H }, { b[1], H }, { b[2], H } };
    print_pm("process_madvise(self, [r0, r1, r2], COLLAPSE)", self, partial, 3, MADV_COLLAPSE);
    show_regions("self", b, 0x5, 200);
    print_pm("process_madvise(self, [r1, r2], COLLAPSE) (first entry fails)", self, partial + 1, 2, MADV_COLLAPSE);
    print_huge("self region 2 after", b[2], H);

    puts("## self: argument errors");
    char *c[3];
    make_regions(c, 0x7, 300);
    struct iovec whole[3] = { { c[0], H }, { c[1], H }, { c[2], H } };
    print_pm("process_madvise(PIDFD_SELF, [r0], COLLAPSE)", PIDFD_SELF_PROCESS, whole, 1, MADV_COLLAPSE);
    print_pm("process_madvise(self, vlen 0, COLLAPSE)", self, whole, 0, MADV_COLLAPSE);
    print_pm("process_madvise(self, vlen 1025, COLLAPSE)", self, whole, 1025, MADV_COLLAPSE);
    print_pm("process_madvise(fd 9999, [r1], COLLAPSE)", 9999, whole + 1, 1, MADV_COLLAPSE);
    print_pm("process_madvise(stdout, [r1], COLLAPSE)", 1, whole + 1, 1, MADV_COLLAPSE);
    print_pm("process_madvise(self, [r1], advice 12345)", self, whole + 1, 1, 12345);
    struct iovec unaligned = { c[2] + 1, H };
    print_pm("process_madvise(self, [r2 + 1 byte], COLLAPSE)", self, &unaligned, 1, MADV_COLLAPSE);
    show_regions("self", c, 0x7, 300);

    puts("## a child: populated, untouched, populated");
    char *d[3];
    make_regions(d, 0, 400);
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        die("pipe");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        fill_pattern(d[0], H, 400);
        fill_pattern(d[2], H, 402);
        char ch = 'r';
        if (write(ready[1], &ch, 1) != 1 || read(go[0], &ch, 1) != 1)
            _exit(1);
        show_regions("child", d, 0x5, 400);
        fflush(stdout);
        _exit(0);
    }
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        die("read pipe");
    errno = 0;
    int child = (int)syscall(434, pid, 0);
    print_result("pidfd_open(child) (0: got a pidfd)", child < 0 ? -1 : 0, errno);
    struct iovec remote[3] = { { d[0], H }, { d[1], H }, { d[2], H } };
    print_pm("process_madvise(child, [r0, r1, r2], COLLAPSE)", child, remote, 3, MADV_COLLAPSE);
    print_pm("process_madvise(child, [r2], DONTNEED) (not allowed remotely)", child, remote + 2, 1, MADV_DONTNEED);
    print_huge("parent's own region 0 (never touched)", d[0], H);
    fflush(stdout);
    if (write(go[1], "g", 1) != 1)
        die("write pipe");
    int status = 0;
    waitpid(pid, &status, 0);
    printf("child exit status: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
