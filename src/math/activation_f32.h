/* libiadsr - float gate activations (sigmoid, tanh) for the recurrent
 * layers: inline and exact to about 2e-7 relative.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ACTIVATION_F32_H
#define IADSR_ACTIVATION_F32_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The gate activations, inline and branch-free so that the gate loop
 * vectorises (a libm call per element would dominate the forward pass).
 * GCC does not if-convert floating-point compares under -ftrapping-math,
 * so every select below works on the bits.
 *
 * iadsr__exp_le0f(x) = e^x for x <= 0: x is clamped to [-87, 0] (an integer
 * min on the bits of -x, which also maps -inf there), k = round(x / ln 2)
 * (added and subtracted 1.5 * 2^23), f = x - k ln 2 in [-0.35, 0.35] (ln 2
 * split so that k * ln2_hi is exact), e^f by its Taylor polynomial to
 * degree 7 (relative truncation error < 4e-9), 2^k from the bits of the
 * rounding sum. */
static inline float iadsr__exp_le0f(float x)
{
    float a = -x;
    int32_t ia;
    memcpy(&ia, &a, sizeof ia);
    ia = ia < 0x42AE0000 ? ia : 0x42AE0000; /* 87.0f */
    memcpy(&a, &ia, sizeof a);
    x = -a;
    float t = x * 1.44269504f + 12582912.0f;
    float k = t - 12582912.0f;
    float f = x - k * 0.693145752f; /* ln 2 to 15 bits: exact product */
    f = f - k * 1.42860682e-6f;     /* the rest of ln 2 */
    float p = 1.0f / 5040.0f;
    p = p * f + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23; /* 2^k, k in -126..0 */
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return p * two_k;
}

/* y, or x itself where x is NaN (so that a NaN pre-activation stays
 * visible to the trainer's finiteness checks). */
static inline float iadsr__keep_nanf(float x, float y)
{
    uint32_t ux, uy;
    memcpy(&ux, &x, sizeof ux);
    memcpy(&uy, &y, sizeof uy);
    uint32_t m = (int32_t)(ux & 0x7fffffffu) > 0x7f800000 ? 0xffffffffu : 0u;
    uint32_t r = (uy & ~m) | (ux & m);
    float out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with
 * e = e^-|x| (no overflow; full relative precision on both sides, max
 * relative error ~2e-7); the side is picked with the sign bit. */
static inline float iadsr__sigmoidf(float x)
{
    float e = iadsr__exp_le0f(-fabsf(x));
    float sp = 1.0f / (1.0f + e), sn = e * sp;
    uint32_t up, un, ux;
    memcpy(&up, &sp, sizeof up);
    memcpy(&un, &sn, sizeof un);
    memcpy(&ux, &x, sizeof ux);
    uint32_t m = 0u - (ux >> 31); /* all ones if x < 0 */
    uint32_t r = (up & ~m) | (un & m);
    float y;
    memcpy(&y, &r, sizeof y);
    return iadsr__keep_nanf(x, y);
}

/* tanh(x) = sign(x) (1 - e) / (1 + e), e = e^-2|x|: saturates to exactly
 * +-1, absolute error < 1e-7 (the relative error grows near 0, which a
 * float GRU does not notice next to the rounding of its GEMMs). */
static inline float iadsr__tanhf(float x)
{
    float e = iadsr__exp_le0f(-2.0f * fabsf(x));
    return iadsr__keep_nanf(x, copysignf((1.0f - e) / (1.0f + e), x));
}

#endif /* IADSR_ACTIVATION_F32_H */
