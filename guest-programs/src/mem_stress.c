/* A memory stress guest for squeezed configurations (small memory, fragmentation, a memcg
 * limit: compaction, reclaim and swap must keep every byte): passes over a large anonymous
 * region writing every 8-byte word with a seeded value in a scattered page order, zapping a
 * seeded eighth of the pages with MADV_DONTNEED, and, every other pass, forking a child that
 * verifies everything and overwrites its copy while the parent's copy must stay intact.
 * Every word is verified after every pass.
 * Usage: mem_stress [MiB] [passes] [seed]   (default 16 MiB, 3 passes, seed 1) */
#include "guest.h"
#include <sys/wait.h>

#define WORDS_PER_PAGE (PAGE_SIZE_4K / sizeof(uint64_t))

/* A cheap multiplicative mix (this runs for every word): distinct for every seed, pass and
 * word, and never zero in practice, so a zeroed or stale word shows. */
static uint64_t word_value(uint64_t seed, unsigned pass, size_t word)
{
    uint64_t x = (seed << 40) ^ ((uint64_t)pass << 32) ^ word;
    x *= 0x9E3779B97F4A7C15ULL;
    return x ^ (x >> 29) ^ 0x0123456789ABCDEFULL;
}

/* Counts the words of [0, pages) that do not hold their value (or zero, for zapped pages). */
static size_t verify(const uint64_t *words, size_t pages, const unsigned char *zapped, uint64_t seed, unsigned pass)
{
    size_t bad = 0;
    for (size_t page = 0; page < pages; page++)
        for (size_t i = page * WORDS_PER_PAGE; i < (page + 1) * WORDS_PER_PAGE; i++)
            bad += words[i] != (zapped[page] ? 0 : word_value(seed, pass, i));
    return bad;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
    unsigned passes = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 3;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    size_t pages = mib * MiB / PAGE_SIZE_4K;
    if (pages == 0)
        die("size argument");
    uint64_t *words = (uint64_t *)map_region(pages * PAGE_SIZE_4K, HUGE_SIZE_2M, PROT_READ | PROT_WRITE);
    unsigned char *zapped = calloc(pages, 1);
    if (!zapped)
        die("calloc");
    /* An odd stride visits every page of a power-of-two count once, far from sequentially. */
    size_t stride = (pages / 3) | 1;
    while (pages % 2 == 0 && stride % 2 == 0)
        stride++;
    size_t total_bad = 0;
    printf("mem_stress MiB=%zu passes=%u seed=%llu\n", mib, passes, (unsigned long long)seed);

    for (unsigned pass = 1; pass <= passes; pass++) {
        for (size_t n = 0, page = 0; n < pages; n++, page = (page + stride) % pages)
            for (size_t i = page * WORDS_PER_PAGE; i < (page + 1) * WORDS_PER_PAGE; i++)
                words[i] = word_value(seed, pass, i);
        memset(zapped, 0, pages);
        uint64_t state = seed * 1000 + pass;
        size_t zapped_count = 0;
        for (size_t page = 0; page < pages; page++) {
            if (rng_next(&state) % 8 == 0) {
                if (madvise((char *)words + page * PAGE_SIZE_4K, PAGE_SIZE_4K, MADV_DONTNEED) != 0)
                    die("madvise(MADV_DONTNEED)");
                zapped[page] = 1;
                zapped_count++;
            }
        }
        int child_status = -1;
        if (pass % 2 == 0) {
            pid_t pid = fork_or_die();
            if (pid == 0) {
                size_t bad = verify(words, pages, zapped, seed, pass);
                for (size_t i = 0; i < pages * WORDS_PER_PAGE; i++)
                    words[i] = ~word_value(seed, pass, i);
                _exit(bad == 0 ? 0 : 1);
            }
            int status;
            if (waitpid(pid, &status, 0) != pid)
                die("waitpid");
            child_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        size_t bad = verify(words, pages, zapped, seed, pass);
        total_bad += bad;
        printf("pass %u: pages=%zu zapped=%zu bad words=%zu", pass, pages, zapped_count, bad);
        if (child_status >= 0)
            printf(" child verified and overwrote its copy: exit %d", child_status);
        putchar('\n');
    }
    printf("result: %s\n", total_bad == 0 ? "every word verified" : "CORRUPTION");
    return total_bad != 0;
}
