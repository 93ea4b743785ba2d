/* Helpers shared by the guest programs. Everything a program prints must be the same on every
 * run (natively and under PageLab), so these helpers print offsets relative to a region the
 * program mapped itself, errno names instead of strerror text (which differs between libcs),
 * and checksums instead of addresses. */
#ifndef GUEST_H
#define GUEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB 1024UL
#define MiB (1024UL * KiB)
#define PAGE_SIZE_4K 4096UL
#define HUGE_SIZE_2M (2 * MiB)

/* Advice values from Linux's uapi, for libc headers (musl's) that lack the newer ones. */
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
/* The proposed least-effort collapse; Linux 6.18 answers EINVAL. */
#define MADV_TRY_COLLAPSE 26
/* The proposed process_madvise flag meaning the same as MADV_TRY_COLLAPSE. */
#define MADV_F_COLLAPSE_LIGHT 1

/* Seeded pseudo-random numbers (splitmix64): identical sequences everywhere. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* An FNV-style hash taking 8 bytes per step (then a byte tail), for printing checksums of
 * memory contents cheaply: guest instructions are expensive under an emulator. */
static inline uint64_t hash_bytes(uint64_t hash, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        hash = (hash ^ word) * 0x100000001B3ULL;
        hash ^= hash >> 29;
    }
    for (; len > 0; p++, len--)
        hash = (hash ^ *p) * 0x100000001B3ULL;
    return hash;
}
#define HASH_INIT 0xCBF29CE484222325ULL

/* The errno's symbolic name: strerror's text differs between glibc and musl. */
static inline const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EHWPOISON: return "EHWPOISON";
    default: return "E?";
    }
}

/* Prints "label = ret" or "label = -1 ENAME", strace style, for a call that set errno. */
static inline void print_result(const char *label, long ret, int err)
{
    if (ret < 0)
        printf("%s = %ld %s\n", label, ret, errno_name(err));
    else
        printf("%s = %ld\n", label, ret);
}

/* A MADV_COLLAPSE failing with EAGAIN is retried a few times. EAGAIN is Linux's transient outcome (a page locked,
 * isolated or pinned by someone else for a moment: khugepaged scanning the same range, a migration, a per-CPU LRU
 * batch), and retrying is what madvise(2) tells a caller to do. Without this, a native run's output would depend on
 * what else the host did at that instant; a persistent EAGAIN still shows. Each retry is noted on stderr, which the
 * differential tests do not compare. Returns true (having noted it and yielded the CPU) when the call that returned
 * ret should be made again; *retries counts them. */
static inline int retry_transient_collapse(const char *call, int advice, long ret, int *retries)
{
    enum { COLLAPSE_RETRIES = 8 };
    if (ret >= 0 || errno != EAGAIN || advice != MADV_COLLAPSE || *retries >= COLLAPSE_RETRIES)
        return 0;
    ++*retries;
    fprintf(stderr, "note: %s(COLLAPSE): EAGAIN, retry %d\n", call, *retries);
    sched_yield();
    return 1;
}

/* madvise, with a transient MADV_COLLAPSE failure retried (see above). */
static inline int madvise_settled(void *addr, size_t len, int advice)
{
    int retries = 0;
    int ret = madvise(addr, len, advice);
    while (retry_transient_collapse("madvise", advice, ret, &retries))
        ret = madvise(addr, len, advice);
    return ret;
}

/* Calls madvise (settled, see above) and prints its result under the given label; returns the
 * result. */
static inline int madvise_print(const char *label, void *addr, size_t len, int advice)
{
    errno = 0;
    int ret = madvise_settled(addr, len, advice);
    print_result(label, ret, errno);
    return ret;
}

static inline void die(const char *what)
{
    printf("fatal: %s failed: %s\n", what, errno_name(errno));
    exit(2);
}

/* fork() with stdout flushed first, so that buffered output is not printed twice. */
static inline pid_t fork_or_die(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    return pid;
}

/* A region of size bytes whose start is aligned to align, with PROT_NONE guard mappings on
 * both sides so that its VMAs never merge with mappings the program did not make. The guard
 * reservation is what makes /proc/self/maps output relative to base deterministic. */
static inline char *map_region(size_t size, size_t align, int prot)
{
    /* The region never crosses a 1 GiB boundary (room for moving it past one is reserved): whether the page
     * directory above an untouched part exists decides some outcomes (MADV_COLLAPSE reports SCAN_PMD_NULL and goes
     * on, or SCAN_PMD_NONE and stops), and under ASLR a region would otherwise straddle two page directories now
     * and then. */
    const uintptr_t gib = 1UL << 30;
    size_t reserve = 2 * size + 3 * align;
    char *res = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        die("mmap reservation");
    uintptr_t base = (((uintptr_t)res + align - 1) & ~(uintptr_t)(align - 1)) + align;
    uintptr_t next_gib = (base + gib) & ~(gib - 1);
    if (size <= gib && base + size > next_gib)
        base = next_gib;
    char *region = mmap((void *)base, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (region == MAP_FAILED)
        die("mmap region");
    return region;
}

/* Fills [p, p + len) page by page with a pattern derived from seed and the page index. */
static inline void fill_pattern(char *p, size_t len, uint64_t seed)
{
    for (size_t off = 0; off < len; off += PAGE_SIZE_4K) {
        uint64_t state = seed ^ (off / PAGE_SIZE_4K);
        uint64_t *words = (uint64_t *)(p + off);
        for (size_t i = 0; i < PAGE_SIZE_4K / 8; i += 64)
            words[i] = rng_next(&state);
    }
}

/* Checks [p, p + len) against the pattern fill_pattern wrote with this seed, p being page
 * first_index of the filled buffer; returns the first bad page (counted from p) or -1. */
static inline long check_pattern_from(const char *p, size_t len, uint64_t seed, size_t first_index)
{
    for (size_t off = 0; off < len; off += PAGE_SIZE_4K) {
        uint64_t state = seed ^ (first_index + off / PAGE_SIZE_4K);
        const uint64_t *words = (const uint64_t *)(p + off);
        for (size_t i = 0; i < PAGE_SIZE_4K / 8; i += 64)
            if (words[i] != rng_next(&state))
                return (long)(off / PAGE_SIZE_4K);
    }
    return -1;
}

/* Checks a whole buffer written by fill_pattern; returns the first bad page index or -1. */
static inline long check_pattern(const char *p, size_t len, uint64_t seed)
{
    return check_pattern_from(p, len, seed, 0);
}

/* Checks that [p, p + len) reads as zeroes; returns the first nonzero page index or -1. */
static inline long check_zero(const char *p, size_t len)
{
    for (size_t off = 0; off < len; off += sizeof(uint64_t))
        if (*(const uint64_t *)(p + off) != 0)
            return (long)(off / PAGE_SIZE_4K);
    return -1;
}

static inline void print_check(const char *label, long bad_page)
{
    if (bad_page < 0)
        printf("%s: ok\n", label);
    else
        printf("%s: BAD at page %ld\n", label, bad_page);
}

/* Reads a whole (proc) file into a static buffer without touching the heap: a malloc here
 * (fopen's) could mmap and land inside a hole the program is observing. Returns the text,
 * NUL-terminated; later calls reuse the buffer. */
static inline const char *read_text_file(const char *path)
{
    static char buffer[1 << 20];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + used, sizeof buffer - 1 - used);
        if (n < 0)
            die(path);
        if (n == 0 || used + (size_t)n >= sizeof buffer - 1) {
            used += (size_t)(n > 0 ? n : 0);
            break;
        }
        used += (size_t)n;
    }
    close(fd);
    buffer[used] = 0;
    return buffer;
}

/* Copies the line at *text into line (truncated to size) and advances *text past it;
 * returns 0 at the end of the text. */
static inline int next_line(const char **text, char *line, size_t size)
{
    if (**text == 0)
        return 0;
    const char *end = strchr(*text, '\n');
    size_t len = end ? (size_t)(end - *text) : strlen(*text);
    size_t copy = len < size - 1 ? len : size - 1;
    memcpy(line, *text, copy);
    line[copy] = 0;
    *text += len + (end != NULL);
    return 1;
}

/* Per-region totals from /proc/self/smaps, in kB, summed over the VMAs that overlap
 * [start, start + len). */
struct smaps_totals {
    unsigned long vmas, size, rss, pss, shared_dirty, private_dirty, anonymous, anon_huge, shmem_pmd, swap, thp_eligible;
};

static inline struct smaps_totals smaps_region(const void *start, size_t len)
{
    struct smaps_totals t = { 0 };
    const char *text = read_text_file("/proc/self/smaps");
    char line[512];
    int inside = 0;
    uintptr_t s = (uintptr_t)start, e = s + len;
    while (next_line(&text, line, sizeof line)) {
        unsigned long lo, hi, kb;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = lo < e && hi > s;
            t.vmas += inside;
        } else if (!inside) {
            continue;
        } else if (sscanf(line, "Size: %lu kB", &kb) == 1) {
            t.size += kb;
        } else if (sscanf(line, "Rss: %lu kB", &kb) == 1) {
            t.rss += kb;
        } else if (sscanf(line, "Pss: %lu kB", &kb) == 1) {
            t.pss += kb;
        } else if (sscanf(line, "Shared_Dirty: %lu kB", &kb) == 1) {
            t.shared_dirty += kb;
        } else if (sscanf(line, "Private_Dirty: %lu kB", &kb) == 1) {
            t.private_dirty += kb;
        } else if (sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
            t.anonymous += kb;
        } else if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) {
            t.anon_huge += kb;
        } else if (sscanf(line, "ShmemPmdMapped: %lu kB", &kb) == 1) {
            t.shmem_pmd += kb;
        } else if (sscanf(line, "Swap: %lu kB", &kb) == 1) {
            t.swap += kb;
        } else if (sscanf(line, "THPeligible: %lu", &kb) == 1) {
            t.thp_eligible += kb;
        }
    }
    return t;
}

/* Prints "label: AnonHugePages=N kB Rss=N kB", the line every collapse case ends with. */
static inline unsigned long print_huge(const char *label, const void *start, size_t len)
{
    struct smaps_totals t = smaps_region(start, len);
    printf("%s: AnonHugePages=%lu kB Rss=%lu kB\n", label, t.anon_huge, t.rss);
    return t.anon_huge;
}

/* Prints the VMAs of /proc/self/maps overlapping [base, base + len), clipped to it, as offsets
 * from base with permissions, size and the mapping's name (file names reduced to their last
 * component): everything in a maps line that does not depend on where the kernel put things. */
static inline void print_maps(const char *label, const void *base, size_t len)
{
    const char *text = read_text_file("/proc/self/maps");
    char line[512];
    uintptr_t s = (uintptr_t)base, e = s + len;
    printf("%s:\n", label);
    while (next_line(&text, line, sizeof line)) {
        unsigned long lo, hi, offset;
        char perms[8], name[256] = "";
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %255[^\n]", &lo, &hi, perms, &offset, name) < 4)
            continue;
        if (lo >= e || hi <= s)
            continue;
        uintptr_t clo = lo < s ? s : lo, chi = hi > e ? e : hi;
        const char *shown = strrchr(name, '/');
        shown = (shown && name[0] == '/') ? shown + 1 : name;
        printf("  +%#lx..+%#lx %s %lu kB off=%#lx%s%s\n", (unsigned long)(clo - s), (unsigned long)(chi - s),
               perms, (unsigned long)(chi - clo) / 1024, offset, shown[0] ? " " : "", shown);
    }
}

/* Waits for the child and prints its exit status (128 + the signal for a death by signal). */
static inline void wait_and_report(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    printf("child exit status: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* Forks a child that first waits until the parent calls release_child(*go): returns 0 in the
 * child once released (it exits with 100 if the parent dies first), the child's pid in the
 * parent, which gets the pipe's write end in *go. */
static inline pid_t fork_held_child(int *go)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        char c;
        close(fds[1]);
        if (read(fds[0], &c, 1) != 1)
            _exit(100);
        close(fds[0]);
        return 0;
    }
    close(fds[0]);
    *go = fds[1];
    return pid;
}

/* Lets a child from fork_held_child run (after flushing what the parent printed). */
static inline void release_child(int go)
{
    fflush(stdout);
    if (write(go, "g", 1) != 1)
        die("write pipe");
    close(go);
}

/* Reads the THP `enabled` setting ("madvise" etc.), printed first by programs whose output
 * depends on it, so host drift shows on line 1 of a diff. */
static inline void print_thp_setting(void)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%.127s", read_text_file("/sys/kernel/mm/transparent_hugepage/enabled"));
    char *open = strchr(buf, '['), *close = open ? strchr(open, ']') : NULL;
    if (open && close) {
        *close = 0;
        printf("thp-enabled: %s\n", open + 1);
    } else {
        printf("thp-enabled: unreadable\n");
    }
}

#endif
