/* libiadsr - xoshiro256** random numbers seeded through splitmix64.
 * SPDX-License-Identifier: MIT
 *
 * Algorithms by D. Blackman and S. Vigna (public domain reference
 * descriptions); written from the published definitions.
 */
#include "iadsr.h"
#include "common/rng.h"

#include <math.h>

IADSR__RNG_WRAPS static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void iadsr__rng_seed(iadsr__rng *r, uint64_t seed)
{
    uint64_t x = seed;
    if (!r)
        return;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    /* splitmix64 is a bijection of distinct counters, so the four words
     * cannot all be zero; keep the guard anyway. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 0x9e3779b97f4a7c15ull;
}

uint64_t iadsr__rng_u64(iadsr__rng *r) { return iadsr__rng_step(r->s); }

IADSR__RNG_WRAPS uint64_t iadsr__rng_below(iadsr__rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Reject the lowest (2^64 mod n) values so that every residue is equally
     * likely. */
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = iadsr__rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

float iadsr__rng_float(iadsr__rng *r)
{
    /* Top 24 bits: exactly representable, so the result is < 1. */
    return (float)(iadsr__rng_u64(r) >> 40) * 0x1.0p-24f;
}

double iadsr__rng_normal(iadsr__rng *r)
{
    static const double two_pi = 6.283185307179586476925286766559;
    /* u1 in (0, 1] so log(u1) is finite; u2 in [0, 1). */
    double u1 = (double)((iadsr__rng_u64(r) >> 11) + 1) * 0x1.0p-53;
    double u2 = (double)(iadsr__rng_u64(r) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
}
