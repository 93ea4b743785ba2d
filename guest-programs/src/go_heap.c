/* The motivating workload, modeled on the Go runtime's page heap (Go issue 63334): a large
 * arena managed in 4 MiB chunks. Each round, a seeded allocator sets every chunk's occupancy;
 * chunks left empty are returned to the OS with MADV_DONTNEED (the scavenger), and dense
 * chunks are re-hugified with MADV_COLLAPSE or MADV_TRY_COLLAPSE, each call timed with
 * clock_gettime(CLOCK_MONOTONIC). Then a random-access phase reads the live pages (the
 * TLB-bound part the huge pages are for).
 * Usage: go_heap collapse|try [chunks] [rounds] [accesses] [as-collapse]
 *   chunks    4 MiB chunks in the arena (default 16)
 *   rounds    allocation rounds (default 4)
 *   accesses  random reads per round (default 200000)
 *   as-collapse  in try mode, issue MADV_COLLAPSE instead (prints what the proposal should
 *             print when free memory is plentiful; see guest-programs/README.md)
 * Output: "result:" lines are deterministic and compared; "timing:" lines (latencies of the
 * calls) are not. */
#include "guest.h"
#include <time.h>

#define CHUNK (4 * MiB)
#define CHUNK_PAGES (CHUNK / PAGE_SIZE_4K)
#define DENSE_PERCENT 60
#define MAX_CALLS 4096

static const unsigned occupancy_percent[] = { 0, 0, 25, 60, 85, 100, 100 };

struct call_stats {
    size_t calls, ok, einval, enomem, eagain, ebusy, other;
    uint64_t latency_ns[MAX_CALLS];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void record(struct call_stats *s, int ret, int err, uint64_t ns)
{
    if (s->calls < MAX_CALLS)
        s->latency_ns[s->calls] = ns;
    s->calls++;
    if (ret == 0)
        s->ok++;
    else if (err == EINVAL)
        s->einval++;
    else if (err == ENOMEM)
        s->enomem++;
    else if (err == EAGAIN)
        s->eagain++;
    else if (err == EBUSY)
        s->ebusy++;
    else
        s->other++;
}

/* The value stored in word 0 of a live page: depends on chunk, page and the round it was
 * allocated in, so stale or lost data shows. */
static uint64_t page_tag(size_t chunk, size_t page, unsigned round)
{
    return ((uint64_t)round << 48) ^ ((uint64_t)chunk << 24) ^ page ^ 0x5A5A000000000000ULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "collapse") != 0 && strcmp(argv[1], "try") != 0)) {
        printf("usage: go_heap collapse|try [chunks] [rounds] [accesses] [as-collapse]\n");
        return 2;
    }
    int try_mode = strcmp(argv[1], "try") == 0;
    size_t numbers[3] = { 16, 4, 200000 }, given = 0;
    int as_collapse = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "as-collapse") == 0)
            as_collapse = 1;
        else if (given < 3)
            numbers[given++] = strtoul(argv[i], NULL, 10);
    }
    size_t chunks = numbers[0], rounds = numbers[1], accesses = numbers[2];
    int advice = try_mode && !as_collapse ? MADV_TRY_COLLAPSE : MADV_COLLAPSE;

    char *arena = map_region(chunks * CHUNK, CHUNK, PROT_READ | PROT_WRITE);
    unsigned char *live = calloc(chunks * CHUNK_PAGES, 1);      /* page in use? */
    unsigned *allocated_in = calloc(chunks * CHUNK_PAGES, sizeof *allocated_in);
    static struct call_stats collapse_stats, release_stats;
    if (!live || !allocated_in)
        die("calloc");
    uint64_t seed = 63334, read_sum = 0;
    size_t bad_pages = 0;

    printf("result: mode=%s chunks=%zu rounds=%zu accesses=%zu\n", argv[1], chunks, rounds, accesses);
    for (unsigned round = 1; round <= rounds; round++) {
        size_t dense = 0, released = 0, live_pages = 0;
        for (size_t c = 0; c < chunks; c++) {
            unsigned percent = occupancy_percent[rng_next(&seed) % (sizeof occupancy_percent / sizeof occupancy_percent[0])];
            size_t target = CHUNK_PAGES * percent / 100, in_use = 0;
            /* Frees and allocations: each page is kept, freed or allocated by a seeded coin
             * weighted towards the chunk's target occupancy. */
            for (size_t p = 0; p < CHUNK_PAGES; p++) {
                size_t i = c * CHUNK_PAGES + p;
                int want = rng_next(&seed) % CHUNK_PAGES < target;
                if (want && !live[i]) {
                    allocated_in[i] = round;
                    *(uint64_t *)(arena + c * CHUNK + p * PAGE_SIZE_4K) = page_tag(c, p, round);
                }
                live[i] = (unsigned char)want;
                in_use += want;
            }
            live_pages += in_use;
            char *chunk = arena + c * CHUNK;
            if (in_use == 0) {
                uint64_t start = now_ns();
                int ret = madvise(chunk, CHUNK, MADV_DONTNEED);
                record(&release_stats, ret, errno, now_ns() - start);
                released++;
            } else if (in_use * 100 >= CHUNK_PAGES * DENSE_PERCENT) {
                errno = 0;
                uint64_t start = now_ns();
                int ret = madvise_settled(chunk, CHUNK, advice);
                int err = errno;
                record(&collapse_stats, ret, err, now_ns() - start);
                dense++;
            }
        }
        /* The mutator: random reads of live pages, checking each page's tag. */
        for (size_t n = 0; n < accesses && live_pages > 0; n++) {
            size_t i = rng_next(&seed) % (chunks * CHUNK_PAGES);
            if (!live[i])
                continue;
            uint64_t v = *(uint64_t *)(arena + i * PAGE_SIZE_4K);
            bad_pages += v != page_tag(i / CHUNK_PAGES, i % CHUNK_PAGES, allocated_in[i]);
            read_sum += v;
        }
        struct smaps_totals t = smaps_region(arena, chunks * CHUNK);
        printf("result: round %u live pages=%zu dense chunks=%zu released chunks=%zu huge pages=%lu rss=%lu kB\n", round,
               live_pages, dense, released, t.anon_huge / 2048, t.rss);
    }
    /* Every live page keeps its tag; released and never-allocated pages read zero. */
    for (size_t i = 0; i < chunks * CHUNK_PAGES; i++) {
        uint64_t v = *(uint64_t *)(arena + i * PAGE_SIZE_4K);
        if (live[i] ? v != page_tag(i / CHUNK_PAGES, i % CHUNK_PAGES, allocated_in[i]) : 0)
            bad_pages++;
    }
    printf("result: %s calls=%zu ok=%zu EINVAL=%zu ENOMEM=%zu EAGAIN=%zu EBUSY=%zu other=%zu\n",
           try_mode ? "MADV_TRY_COLLAPSE" : "MADV_COLLAPSE", collapse_stats.calls,
           collapse_stats.ok, collapse_stats.einval, collapse_stats.enomem, collapse_stats.eagain, collapse_stats.ebusy,
           collapse_stats.other);
    printf("result: MADV_DONTNEED calls=%zu ok=%zu\n", release_stats.calls, release_stats.ok);
    printf("result: data %s (bad pages %zu) read checksum=%016llx\n", bad_pages ? "BAD" : "ok", bad_pages,
           (unsigned long long)read_sum);

    size_t n = collapse_stats.calls < MAX_CALLS ? collapse_stats.calls : MAX_CALLS;
    qsort(collapse_stats.latency_ns, n, sizeof(uint64_t), compare_u64);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += collapse_stats.latency_ns[i];
    if (n > 0)
        printf("timing: collapse latency ns p50=%llu p99=%llu max=%llu total=%llu\n",
               (unsigned long long)collapse_stats.latency_ns[n / 2],
               (unsigned long long)collapse_stats.latency_ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1],
               (unsigned long long)collapse_stats.latency_ns[n - 1], (unsigned long long)total);
    return bad_pages != 0;
}
