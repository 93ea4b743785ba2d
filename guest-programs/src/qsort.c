/* qsort of seeded pseudo-random arrays (integers, doubles, records with duplicate keys sorted
 * by a total order), then bsearch. Prints sortedness checks and checksums.
 * Usage: qsort [count]   (default 10000 elements) */
#include "guest.h"

struct record {
    uint32_t key;
    uint32_t id;
};

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Keys repeat often; the id breaks ties so the sorted order is unique whatever algorithm
 * the libc uses (glibc and musl differ, and neither is stable). */
static int compare_records(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->id > y->id) - (x->id < y->id);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    uint64_t seed = 20261125;
    int *ints = malloc(n * sizeof *ints);
    double *doubles = malloc(n * sizeof *doubles);
    struct record *records = malloc(n * sizeof *records);
    if (!ints || !doubles || !records)
        die("malloc");
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next(&seed);
        ints[i] = (int)(uint32_t)r;
        doubles[i] = (double)(int64_t)r / 1e9;
        records[i] = (struct record){ (uint32_t)(r >> 40) % 1000, (uint32_t)i };
    }

    qsort(ints, n, sizeof *ints, compare_ints);
    qsort(doubles, n, sizeof *doubles, compare_doubles);
    qsort(records, n, sizeof *records, compare_records);

    size_t unsorted = 0;
    for (size_t i = 1; i < n; i++) {
        unsorted += ints[i - 1] > ints[i];
        unsorted += doubles[i - 1] > doubles[i];
        unsorted += compare_records(&records[i - 1], &records[i]) > 0;
    }
    printf("count: %zu\n", n);
    printf("out of order: %zu\n", unsorted);
    if (n > 0) {
        printf("ints: min=%d median=%d max=%d checksum=%016llx\n", ints[0], ints[n / 2], ints[n - 1],
               (unsigned long long)hash_bytes(HASH_INIT, ints, n * sizeof *ints));
        printf("doubles: min=%.17g median=%.17g max=%.17g checksum=%016llx\n", doubles[0], doubles[n / 2],
               doubles[n - 1], (unsigned long long)hash_bytes(HASH_INIT, doubles, n * sizeof *doubles));
        printf("records: first=%u/%u last=%u/%u checksum=%016llx\n", records[0].key, records[0].id,
               records[n - 1].key, records[n - 1].id,
               (unsigned long long)hash_bytes(HASH_INIT, records, n * sizeof *records));
        /* bsearch for every 97th element and for values that are absent. */
        size_t found = 0, absent = 0;
        for (size_t i = 0; i < n; i += 97) {
            int key = ints[i];
            found += bsearch(&key, ints, n, sizeof *ints, compare_ints) != NULL;
            int missing = key == ints[n - 1] ? key : key + 1;
            if (missing != key && (i + 1 >= n || ints[i + 1] != missing))
                absent += bsearch(&missing, ints, n, sizeof *ints, compare_ints) == NULL;
        }
        printf("bsearch: found=%zu absent=%zu\n", found, absent);
    }
    free(ints);
    free(doubles);
    free(records);
    return 0;
}
