/* A TLB-bound benchmark: random reads and writes over a large anonymous mapping, so nearly
 * every access misses the TLB when the mapping uses 4 KiB pages.
 * Usage: tlb_bench [MiB] [accesses] [small|huge]
 *   MiB       size of the mapping (default 64; hundreds for real measurements)
 *   accesses  random accesses (default 1000000)
 *   huge      madvise(MADV_HUGEPAGE) the mapping before touching it (default small: no advice)
 * The printed result depends only on the arguments, not on the page size. */
#include "guest.h"

#define LINE 64

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    size_t accesses = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    int huge = argc > 3 && strcmp(argv[3], "huge") == 0;
    size_t size = mib * MiB, words = size / sizeof(uint64_t);
    if (words == 0)
        die("size argument");
    uint64_t *data = (uint64_t *)map_region(size, HUGE_SIZE_2M, PROT_READ | PROT_WRITE);
    if (huge && madvise(data, size, MADV_HUGEPAGE) != 0)
        die("madvise(MADV_HUGEPAGE)");

    /* One word per cache line, so every page is touched but initialisation stays cheap. */
    for (size_t i = 0; i < words; i += LINE / sizeof(uint64_t))
        data[i] = i * 0x9E3779B97F4A7C15ULL;

    /* Random accesses: the next index depends on the value read, so accesses cannot overlap. */
    uint64_t seed = 99, sum = 0, index = 0;
    size_t lines = size / LINE;
    for (size_t n = 0; n < accesses; n++) {
        index = (rng_next(&seed) ^ sum) % lines * (LINE / sizeof(uint64_t));
        uint64_t v = data[index];
        sum += v;
        data[index] = v + n;
    }
    printf("tlb_bench MiB=%zu accesses=%zu result=%016llx\n", mib, accesses, (unsigned long long)sum);
    return 0;
}
