/* libiadsr - xoshiro256** random numbers (rng.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_RNG_H
#define IADSR_RNG_H

#include <stdint.h>

typedef struct iadsr__rng {
    uint64_t s[4];
} iadsr__rng;

void iadsr__rng_seed(iadsr__rng *r, uint64_t seed);
uint64_t iadsr__rng_u64(iadsr__rng *r);
/* Uniform in [0, n), n >= 1, unbiased. */
uint64_t iadsr__rng_below(iadsr__rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float iadsr__rng_float(iadsr__rng *r);
/* Standard normal (Box-Muller, double precision). */
double iadsr__rng_normal(iadsr__rng *r);

/* The id in 1..n whose count range holds x: the smallest i with cum[i] >
 * x, for running sums cum[0..n] of counts (cum[0] = 0) and 0 <= x <
 * cum[n]. With x uniform below cum[n], ids come in proportion to their
 * counts. */
static inline int32_t iadsr__cum_pick(const int64_t *cum, int32_t n,
                                      int64_t x)
{
    int32_t lo = 1, hi = n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

#endif /* IADSR_RNG_H */
