/* A CPU-bound benchmark: integer work on data that fits in the L1 cache (Collatz lengths with
 * divisions and branches, a table-driven CRC-32, a sieve of Eratosthenes), so its speed is the
 * interpreter's, not the TLB's. Each work unit is about 2 million instructions natively; the
 * default of 100 units is about 200 million.
 * Usage: cpu_bench [units]   Prints one deterministic result line. */
#include "guest.h"

#define SIEVE_LIMIT 32768
#define CRC_BYTES 4096

static uint32_t crc_table[256];
static unsigned char sieve[SIEVE_LIMIT];
static unsigned char crc_data[CRC_BYTES];

static void init_crc_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Sum of Collatz sequence lengths for `count` starting values from `start`. */
static uint64_t collatz(uint64_t start, uint64_t count)
{
    uint64_t total = 0;
    for (uint64_t n = start; n < start + count; n++) {
        uint64_t x = n, steps = 0;
        while (x != 1) {
            x = x % 2 ? 3 * x + 1 : x / 2;
            steps++;
        }
        total += steps;
    }
    return total;
}

static unsigned sieve_primes(unsigned limit)
{
    memset(sieve, 1, limit);
    sieve[0] = sieve[1] = 0;
    for (unsigned i = 2; i * i < limit; i++)
        if (sieve[i])
            for (unsigned j = i * i; j < limit; j += i)
                sieve[j] = 0;
    unsigned count = 0;
    for (unsigned i = 0; i < limit; i++)
        count += sieve[i];
    return count;
}

/* Modular exponentiation with 64-bit divisions. */
static uint64_t power_mod(uint64_t base, uint64_t exp, uint64_t mod)
{
    uint64_t result = 1;
    base %= mod;
    while (exp) {
        if (exp & 1)
            result = (unsigned __int128)result * base % mod;
        base = (unsigned __int128)base * base % mod;
        exp >>= 1;
    }
    return result;
}

int main(int argc, char **argv)
{
    unsigned long units = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    uint64_t seed = 7, result = 0;
    init_crc_table();
    for (size_t i = 0; i < CRC_BYTES; i++)
        crc_data[i] = (unsigned char)rng_next(&seed);
    for (unsigned long unit = 0; unit < units; unit++) {
        result = result * 31 + collatz(1 + unit * 2000, 2000);
        crc_data[unit % CRC_BYTES] ^= (unsigned char)result;
        result = result * 31 + crc32((uint32_t)unit, crc_data, CRC_BYTES);
        result = result * 31 + sieve_primes(SIEVE_LIMIT - (unsigned)(unit % 1000));
        result = result * 31 + power_mod(result | 1, 0xFFFFFFFFFFFFull + unit, 1000000007ull);
    }
    printf("cpu_bench units=%lu result=%016llx\n", units, (unsigned long long)result);
    return 0;
}
