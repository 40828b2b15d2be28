/* libiadsr - xoshiro256** random numbers (rng.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_RNG_H
#define IADSR_RNG_H

#include <stddef.h>
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

/* n draws into out, the same stream as n calls of iadsr__rng_u64(r): the
 * state stays in registers for the whole block instead of going through
 * memory once per draw (dropout masks take tens of millions per epoch). */
#if defined(__clang__)
__attribute__((no_sanitize("integer")))
#endif
static inline void iadsr__rng_fill(iadsr__rng *r, uint64_t *out, size_t n)
{
    uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
    for (size_t i = 0; i < n; i++) {
        uint64_t x = s1 * 5;
        out[i] = ((x << 7) | (x >> 57)) * 9;
        uint64_t t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 45) | (s3 >> 19);
    }
    r->s[0] = s0;
    r->s[1] = s1;
    r->s[2] = s2;
    r->s[3] = s3;
}

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
