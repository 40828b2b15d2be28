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

#endif /* IADSR_RNG_H */
