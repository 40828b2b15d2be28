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

/* The generators wrap modulo 2^64 on purpose (clang -fsanitize=integer). */
#if defined(__clang__)
#define IADSR__RNG_WRAPS __attribute__((no_sanitize("integer")))
#else
#define IADSR__RNG_WRAPS
#endif

/* One xoshiro256** step on the state s: the next draw. */
IADSR__RNG_WRAPS static inline uint64_t iadsr__rng_step(uint64_t s[4])
{
    uint64_t x = s[1] * 5;
    const uint64_t result = ((x << 7) | (x >> 57)) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* n draws into out, the same stream as n calls of iadsr__rng_u64(r): on a
 * local copy of the state, which stays in registers for the whole block
 * instead of going through memory once per draw (dropout masks take tens
 * of millions per epoch). */
static inline void iadsr__rng_fill(iadsr__rng *r, uint64_t *out, size_t n)
{
    uint64_t s[4] = {r->s[0], r->s[1], r->s[2], r->s[3]};
    for (size_t i = 0; i < n; i++)
        out[i] = iadsr__rng_step(s);
    for (int i = 0; i < 4; i++)
        r->s[i] = s[i];
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
