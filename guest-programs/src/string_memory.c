/* String and memory functions over many lengths and alignments (libc picks SIMD variants by
 * CPUID, so this exercises the vector paths the emulator advertises), plus strings that end
 * exactly at a page boundary followed by an inaccessible page, where the library's wide reads
 * must stay inside the page. Prints one checksum line per function. */
#include "guest.h"

#define BUF 9000
#define ALIGNS 16

static unsigned char src_buf[BUF + 128], dst_buf[BUF + 128], ref_buf[BUF + 128];

static const size_t lengths[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 63,
                                  64, 65, 95, 96, 127, 128, 129, 191, 255, 256, 257, 511, 512, 513, 1000,
                                  1023, 1024, 1025, 2047, 2049, 4095, 4096, 4097 };
#define NLENGTHS (sizeof lengths / sizeof lengths[0])

static int sign(int v) { return (v > 0) - (v < 0); }

/* Lowercase letters, eight from each random number. */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            r = rng_next(&seed);
        p[i] = (unsigned char)('a' + (r & 0xff) % 26);
        r >>= 8;
    }
}

static void check_memcpy_memmove_memset(void)
{
    uint64_t h_cpy = HASH_INIT, h_set = HASH_INIT, h_move = HASH_INIT;
    int bad = 0;
    fill(src_buf, sizeof src_buf, 1);
    for (size_t li = 0; li < NLENGTHS; li++) {
        /* The mask tells the compiler n is small (it cannot see the table's maximum). */
        size_t n = lengths[li] & 0x3fff;
        for (size_t sa = 0; sa < ALIGNS; sa += 5) {
            for (size_t da = 0; da < ALIGNS; da++) {
                memset(dst_buf, 0x5a, n + 64);
                memcpy(dst_buf + da, src_buf + sa, n);
                bad += memcmp(dst_buf + da, src_buf + sa, n) != 0 || dst_buf[da + n] != 0x5a ||
                       (da > 0 && dst_buf[da - 1] != 0x5a);
                h_cpy = hash_bytes(h_cpy, dst_buf, n + 32);
                memset(dst_buf + da, (int)(n + sa), n);
                h_set = hash_bytes(h_set, dst_buf, n + 32);
            }
            /* Overlapping moves in both directions. */
            memcpy(ref_buf, src_buf, n + 64);
            memmove(ref_buf + sa + 7, ref_buf + sa, n);
            h_move = hash_bytes(h_move, ref_buf, n + 64);
            memmove(ref_buf + sa, ref_buf + sa + 5, n);
            h_move = hash_bytes(h_move, ref_buf, n + 64);
        }
    }
    printf("memcpy: checksum=%016llx bad=%d\n", (unsigned long long)h_cpy, bad);
    printf("memset: checksum=%016llx\n", (unsigned long long)h_set);
    printf("memmove: checksum=%016llx\n", (unsigned long long)h_move);
}

static void check_compare(void)
{
    uint64_t h_memcmp = HASH_INIT, h_strcmp = HASH_INIT, h_strncmp = HASH_INIT;
    for (size_t li = 0; li < NLENGTHS; li++) {
        size_t n = lengths[li];
        for (size_t sa = 0; sa < ALIGNS; sa += 5) {
            for (size_t da = 0; da < ALIGNS; da += 2) {
                fill(src_buf + sa, n, n);
                memcpy(dst_buf + da, src_buf + sa, n);
                src_buf[sa + n] = 0;
                dst_buf[da + n] = 0;
                /* Equal, then differing at the last byte, then at the middle byte. */
                int r[6];
                r[0] = sign(memcmp(src_buf + sa, dst_buf + da, n));
                r[1] = sign(strcmp((char *)src_buf + sa, (char *)dst_buf + da));
                if (n > 0) {
                    dst_buf[da + n - 1] ^= 0x20;
                    r[2] = sign(memcmp(src_buf + sa, dst_buf + da, n));
                    r[3] = sign(strcmp((char *)src_buf + sa, (char *)dst_buf + da));
                    dst_buf[da + n - 1] ^= 0x20;
                    dst_buf[da + n / 2] = 0x80;
                    r[4] = sign(memcmp(src_buf + sa, dst_buf + da, n));
                    r[5] = sign(strncmp((char *)src_buf + sa, (char *)dst_buf + da, n / 2 + 1));
                } else {
                    r[2] = r[3] = r[4] = r[5] = 9;
                }
                h_memcmp = hash_bytes(h_memcmp, (int[]){ r[0], r[2], r[4] }, 3 * sizeof(int));
                h_strcmp = hash_bytes(h_strcmp, (int[]){ r[1], r[3] }, 2 * sizeof(int));
                h_strncmp = hash_bytes(h_strncmp, &r[5], sizeof(int));
            }
        }
    }
    printf("memcmp: checksum=%016llx\n", (unsigned long long)h_memcmp);
    printf("strcmp: checksum=%016llx\n", (unsigned long long)h_strcmp);
    printf("strncmp: checksum=%016llx\n", (unsigned long long)h_strncmp);
}

static void check_strings(void)
{
    uint64_t h_len = HASH_INIT, h_cpy = HASH_INIT, h_chr = HASH_INIT, h_str = HASH_INIT, h_rchr = HASH_INIT;
    for (size_t li = 0; li < NLENGTHS; li++) {
        size_t n = lengths[li];
        for (size_t a = 0; a < ALIGNS; a++) {
            char *s = (char *)src_buf + a;
            fill((unsigned char *)s, n, n * 31 + a);
            s[n] = 0;
            size_t len = strlen(s);
            h_len = hash_bytes(h_len, &len, sizeof len);
            char *d = (char *)dst_buf + (ALIGNS - 1 - a);
            memset(dst_buf, 0x77, n + 64);
            char *end = strcpy(d, s);
            h_cpy = hash_bytes(h_cpy, dst_buf, n + 32);
            h_cpy = hash_bytes(h_cpy, &(long){ end - d }, sizeof(long));
            /* strchr: a character near the end, the terminator, and a missing one. */
            long found[4];
            char *p = strchr(s, n > 0 ? s[n - 1] : 'q');
            found[0] = p ? p - s : -1;
            p = strchr(s, 0);
            found[1] = p ? p - s : -1;
            p = strchr(s, 'A');
            found[2] = p ? p - s : -1;
            p = strrchr(s, 'e');
            found[3] = p ? p - s : -1;
            h_chr = hash_bytes(h_chr, found, 3 * sizeof(long));
            h_rchr = hash_bytes(h_rchr, &found[3], sizeof(long));
            /* strstr: a needle taken from the tail of the haystack, and one that is absent. */
            size_t nl = n < 9 ? n : 9;
            char needle[16];
            memcpy(needle, s + n - nl, nl);
            needle[nl] = 0;
            p = strstr(s, needle);
            long pos[2] = { p ? p - s : -1, 0 };
            p = strstr(s, "zzzzq");
            pos[1] = p ? p - s : -1;
            h_str = hash_bytes(h_str, pos, sizeof pos);
        }
    }
    printf("strlen: checksum=%016llx\n", (unsigned long long)h_len);
    printf("strcpy: checksum=%016llx\n", (unsigned long long)h_cpy);
    printf("strchr: checksum=%016llx\n", (unsigned long long)h_chr);
    printf("strrchr: checksum=%016llx\n", (unsigned long long)h_rchr);
    printf("strstr: checksum=%016llx\n", (unsigned long long)h_str);
    printf("sample: strstr(\"the quick brown fox\", \"brown\") at %ld\n",
           (long)(strstr("the quick brown fox", "brown") - "the quick brown fox"));
}

/* Strings whose terminator is the last byte of a page followed by a PROT_NONE page. */
static void check_page_end(void)
{
    char *pages = mmap(NULL, 2 * PAGE_SIZE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED || mprotect(pages + PAGE_SIZE_4K, PAGE_SIZE_4K, PROT_NONE) != 0)
        die("mmap guard page");
    uint64_t h = HASH_INIT;
    for (size_t n = 0; n < 200; n++) {
        char *s = pages + PAGE_SIZE_4K - 1 - n;
        memset(s, 'x', n);
        s[n] = 0;
        long r[5];
        r[0] = (long)strlen(s);
        r[1] = strchr(s, 'y') ? 1 : 0;
        r[2] = memchr(s, 0, n + 1) ? (long)((char *)memchr(s, 0, n + 1) - s) : -1;
        r[3] = sign(strcmp(s, s));
        r[4] = (long)strnlen(s, 4096);
        h = hash_bytes(h, r, sizeof r);
    }
    printf("page-end: checksum=%016llx\n", (unsigned long long)h);
    munmap(pages, 2 * PAGE_SIZE_4K);
}

int main(void)
{
    check_memcpy_memmove_memset();
    check_compare();
    check_strings();
    check_page_end();
    return 0;
}
