/* A malloc-heavy workload: seeded random malloc/calloc/realloc/free of sizes from 1 byte to
 * 1 MiB (crossing the libc's mmap threshold, so brk, mmap, munmap and mremap all run), every
 * block filled with a tag and verified when it is reallocated or freed.
 * Usage: malloc_heavy [operations]   (default 12000) */
#include "guest.h"

#define SLOTS 1024

struct slot {
    unsigned char *p;
    size_t size;
    unsigned char tag;
};

/* Mostly small sizes, some medium, a few above the mmap threshold. */
static size_t random_size(uint64_t *seed)
{
    uint64_t r = rng_next(seed);
    switch (r % 64) {
    case 0: return 1 + (r >> 8) % 1048576;
    case 1:
    case 2:
    case 3: return 1 + (r >> 8) % 65536;
    default: return 1 + (r >> 8) % 512;
    }
}

/* The tagged bytes of a block: all of its first and last 256 bytes, and one byte in every 1021
 * between them, so that every page of a large block is written and checked without the
 * workload becoming a memset benchmark. */
#define EDGE 256
static size_t next_tagged(size_t i, size_t size)
{
    if (i + 1 < EDGE || i + EDGE + 1 >= size)
        return i + 1;
    size_t next = i + 1021;
    return next + EDGE < size ? next : size - EDGE;
}

/* Writes the block's tag at its tagged positions from byte `from` on. */
static void tag_block(const struct slot *s, size_t from)
{
    for (size_t i = from; i < s->size; i = next_tagged(i, s->size))
        s->p[i] = s->tag;
}

/* Verifies a block still holds its tag at the tagged positions below `size`, using the
 * positions of the block as it was tagged; returns 1 if intact. */
static int verify_block(const struct slot *s, const unsigned char *p, size_t size)
{
    for (size_t i = 0; i < size; i = next_tagged(i, s->size))
        if (p[i] != s->tag)
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    size_t operations = argc > 1 ? strtoul(argv[1], NULL, 10) : 12000;
    static struct slot slots[SLOTS];
    uint64_t seed = 42;
    size_t counts[4] = { 0 }, live = 0, peak = 0, corrupt = 0, calloc_nonzero = 0;
    uint64_t checksum = HASH_INIT;

    for (size_t op = 0; op < operations; op++) {
        struct slot *s = &slots[rng_next(&seed) % SLOTS];
        uint64_t choice = rng_next(&seed) % 3;
        if (s->p == NULL) {
            size_t size = random_size(&seed);
            if (choice == 0) {
                s->p = calloc(size, 1);
                if (s->p)
                    for (size_t i = 0; i < size; i += 509)
                        calloc_nonzero += s->p[i] != 0;
                counts[1]++;
            } else {
                s->p = malloc(size);
                counts[0]++;
            }
            if (!s->p)
                die("malloc");
            s->size = size;
            s->tag = (unsigned char)(op * 7 + 1);
            tag_block(s, 0);
            live += size;
        } else if (choice == 0) {
            size_t size = random_size(&seed);
            corrupt += !verify_block(s, s->p, s->size < size ? s->size : size);
            unsigned char *p = realloc(s->p, size);
            if (!p)
                die("realloc");
            corrupt += !verify_block(s, p, s->size < size ? s->size : size);
            live = live - s->size + size;
            /* Grown blocks get the new size's tag layout; tagging all of it keeps it simple. */
            s->p = p;
            s->size = size;
            tag_block(s, 0);
            counts[2]++;
        } else {
            corrupt += !verify_block(s, s->p, s->size);
            checksum = hash_bytes(checksum, s->p, s->size < 64 ? s->size : 64);
            free(s->p);
            live -= s->size;
            s->p = NULL;
            counts[3]++;
        }
        if (live > peak)
            peak = live;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            corrupt += !verify_block(&slots[i], slots[i].p, slots[i].size);
            checksum = hash_bytes(checksum, slots[i].p, slots[i].size < 64 ? slots[i].size : 64);
            free(slots[i].p);
        }
    }
    printf("operations: %zu malloc=%zu calloc=%zu realloc=%zu free=%zu\n", operations, counts[0], counts[1],
           counts[2], counts[3]);
    printf("bytes: peak live=%zu final live=%zu\n", peak, live);
    printf("corrupt blocks: %zu calloc nonzero: %zu\n", corrupt, calloc_nonzero);
    printf("checksum: %016llx\n", (unsigned long long)checksum);
    return corrupt != 0;
}
