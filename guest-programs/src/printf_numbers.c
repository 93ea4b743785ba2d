/* printf with integers and doubles: conversions, widths, flags, precision, negative values,
 * limits, NaN and infinities. Exits with status 7 (through exit(), so stdio is flushed at
 * exit) to check that the exit code is passed through. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void integers(void)
{
    static const long long values[] = { 0, 1, -1, 7, -42, 255, 4096, 65535, -65536, 123456789,
                                        INT_MAX, INT_MIN, UINT_MAX, LLONG_MAX, LLONG_MIN };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        long long v = values[i];
        printf("d=%d u=%u x=%x X=%X o=%o ld=%ld lld=%lld llx=%llx\n", (int)v, (unsigned)v, (unsigned)v,
               (unsigned)v, (unsigned)v, (long)v, v, (unsigned long long)v);
        printf("  [%8d] [%-8d] [%08d] [%+d] [% d] [%.5d] [%#x] [%#o] [%12lld] [%-20lld|]\n", (int)v, (int)v,
               (int)v, (int)v, (int)v, (int)v, (unsigned)v, (unsigned)v, v, v);
    }
    printf("hh=%hhd hhu=%hhu h=%hd hu=%hu zu=%zu zd=%zd jd=%jd\n", (signed char)-3, (unsigned char)250,
           (short)-30000, (unsigned short)60000, (size_t)SIZE_MAX, (ssize_t)-5, (intmax_t)INTMAX_MIN);
    printf("star: [%*d] [%-*d] [%.*d]\n", 6, 42, 6, 42, 4, 42);
    printf("chars: [%c] [%5c] [%-3c] [%s] [%10s] [%-10s] [%.3s] [%%]\n", 'A', 'b', 'c', "str", "right", "left",
           "truncated");
}

static void doubles(void)
{
    static const double values[] = { 0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 2.5, 3.5, 1.0 / 3.0, -2.0 / 3.0,
                                     3.141592653589793, 2.718281828459045, 1e-5, 123456.789, 1e15, 1e16,
                                     1e21, 1e22, 1e100, 1e-100, 1e300, 5e-324, DBL_MIN, DBL_MAX,
                                     0.000123456, 9.999999, 999999.5, 1.5e-7 };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        double v = values[i];
        printf("f=%f e=%e g=%g .17g=%.17g\n", v, v, v, v);
        printf("  [%12.3f] [%-12.3f] [%012.3f] [%+.2e] [%.0f] [%.0e] [%#.0f] [%.10g] [%G] [%E]\n", v, v, v, v,
               v, v, v, v, v, v);
    }
    double specials[] = { NAN, -NAN, INFINITY, -INFINITY };
    for (size_t i = 0; i < 4; i++) {
        double v = specials[i];
        printf("special: f=%f e=%e g=%g F=%F [%8f] [%-8e|] [%+g]\n", v, v, v, v, v, v,
               v);
    }
    /* Rounding of halfway cases in decimal conversion: round-half-even on the binary value. */
    static const double halves[] = { 0.125, 0.375, 2.675, 1.005, 1.115, 0.045 };
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++)
        printf("round: %.2f %.1f %.0f\n", halves[i], halves[i], halves[i]);
    float fv = 1.1f;
    printf("float promoted: %f %.17g\n", fv, fv);
}

static void arithmetic(void)
{
    /* Values computed at run time so that the program exercises the FPU/SSE code, not just
     * constants folded by the compiler. */
    volatile double x = 1.0;
    double sum = 0.0, product = 1.0;
    for (int i = 1; i <= 30; i++) {
        sum += x / i;
        product *= 1.0 + x / (i * i);
    }
    printf("harmonic(30)=%.17g product=%.17g sqrt2=%.17g\n", sum, product, sqrt(2.0 * x));
    printf("conversions: %d %ld %.17g %.17g\n", (int)(-7.9 * x), (long)(1e18 * x), (double)(INT64_MAX / 3),
           (double)(float)(0.1 * x));
}

int main(void)
{
    integers();
    doubles();
    arithmetic();
    exit(7);
}
