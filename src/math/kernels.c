/* Hot float32 element-wise kernels: softmax cross-entropy rows and GELU.
 *
 * They are compiled for several instruction sets (GCC/Clang target_clones,
 * chosen once at load time through ifunc), so one portable binary uses
 * AVX-512 or AVX2 where the CPU has them. The loops are branch-free and use
 * an in-house exp() so that the compiler vectorises them without
 * -ffast-math (which this project never uses: it deletes isfinite checks).
 * SPDX-License-Identifier: MIT
 */
#include "math/kernels.h"

#include <math.h>
#include <string.h>


/* Cody-Waite range reduction and the Cephes degree-6 polynomial, ~2 ulp on
 * [-87, 88]; inputs below -87 give exp(-87) ~ 1.6e-38 (softmax needs no
 * more), above 88 saturate. */
#define EXP_LO (-87.0f)
#define EXP_HI 88.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float k_expf(float x)
{
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    float t = x * EXP_LOG2E + EXP_MAGIC; /* round(x/ln2) */
    float n = t - EXP_MAGIC;
    float r = x - n * EXP_LN2_HI;
    r = r - n * EXP_LN2_LO;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * r * r + r + 1.0f;
    /* 2^n from the bits of t (= 1.5 * 2^23 + n): unsigned arithmetic stays
     * defined for every input; a NaN input gives a NaN p and result. */
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    uint32_t e = (u - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* erf: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7 in exact
 * arithmetic) for |x| >= 1; below, where its final 1 - y cancels, the
 * Maclaurin series to x^21 (truncation < 2e-9 there). Both are computed and one
 * selected so that the loops calling this still vectorise. */
static inline float k_erff(float x)
{
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.061405429f;
    y = y * t - 1.453152027f;
    y = y * t + 1.421413741f;
    y = y * t - 0.284496736f;
    y = y * t + 0.254829592f;
    y = 1.0f - y * t * k_expf(-ax * ax);
    float x2 = x * x;
    /* 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), n = 0..10 */
    float p = 1.3122532e-8f;
    p = p * x2 - 1.4503200e-7f;
    p = p * x2 + 1.4589169e-6f;
    p = p * x2 - 1.3227513e-5f;
    p = p * x2 + 1.0683761e-4f;
    p = p * x2 - 7.5757576e-4f;
    p = p * x2 + 4.6296296e-3f;
    p = p * x2 - 2.3809524e-2f;
    p = p * x2 + 0.1f;
    p = p * x2 - 0.33333333f;
    p = p * x2 + 1.0f;
    float small = 1.1283791671f * x * p;
    return ax < 1.0f ? small : copysignf(y, x);
}

float iadsr__expf(float x) { return k_expf(x); }
float iadsr__erff(float x) { return k_erff(x); }

#define LANES 16

IADSR_CLONES
static float row_max(const float *z, int n)
{
    float m[LANES];
    for (int l = 0; l < LANES; l++)
        m[l] = -INFINITY;
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            m[l] = z[j + l] > m[l] ? z[j + l] : m[l];
    float mx = -INFINITY;
    for (int l = 0; l < LANES; l++)
        mx = m[l] > mx ? m[l] : mx;
    for (; j < n; j++)
        mx = z[j] > mx ? z[j] : mx;
    return mx;
}

/* The end of a row's exp pass: the elements from j on one at a time into
 * their lanes' sums, then the 16 sums added in lane order. */
static inline float exp_sum_finish(float *z, int j, int n, float mx,
                                   float *s)
{
    for (; j < n; j++) {
        float e = k_expf(z[j] - mx);
        z[j] = e;
        s[j % LANES] += e;
    }
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += s[l];
    return sum;
}

IADSR_CLONES
static float row_exp_sum_any(float *z, int n, float mx)
{
    /* fixed lane partition: the sum does not depend on the ISA chosen */
    float s[LANES];
    for (int l = 0; l < LANES; l++)
        s[l] = 0.0f;
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = k_expf(z[j + l] - mx);
            z[j + l] = e;
            s[l] += e;
        }
    return exp_sum_finish(z, j, n, mx, s);
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(IADSR_NO_AVX512)
#include <immintrin.h>

#include "math/gemm_avx512.h"

/* row_exp_sum_any's arithmetic written out for AVX-512, with fewer
 * instructions than the compiler finds for it (the pass is about 9% of a
 * training epoch): the clamps as max/min (operands ordered so that a NaN
 * passes through, as in `x < lo ? lo : x`), and 2^n applied by vscalefps,
 * which rounds p 2^n once, as the product by the exact power of two does
 * (n is in [-126, 127] after the clamps). Every value, the lane sums and
 * their final order are the generic loop's, bit for bit. */
__attribute__((target("avx512f"))) static float
row_exp_sum_avx512(float *z, int n, float mx)
{
    const __m512 vmx = _mm512_set1_ps(mx);
    const __m512 lo = _mm512_set1_ps(EXP_LO), hi = _mm512_set1_ps(EXP_HI);
    const __m512 log2e = _mm512_set1_ps(EXP_LOG2E);
    const __m512 magic = _mm512_set1_ps(EXP_MAGIC);
    const __m512 c1 = _mm512_set1_ps(EXP_LN2_HI);
    const __m512 c2 = _mm512_set1_ps(EXP_LN2_LO);
    const __m512 p0 = _mm512_set1_ps(EXP_P0), p1 = _mm512_set1_ps(EXP_P1);
    const __m512 p2 = _mm512_set1_ps(EXP_P2), p3 = _mm512_set1_ps(EXP_P3);
    const __m512 p4 = _mm512_set1_ps(EXP_P4), p5 = _mm512_set1_ps(EXP_P5);
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 acc = _mm512_setzero_ps();
    int j = 0;
    for (; j + LANES <= n; j += LANES) {
        __m512 x = _mm512_sub_ps(_mm512_loadu_ps(z + j), vmx);
        x = _mm512_max_ps(lo, x);
        x = _mm512_min_ps(hi, x);
        __m512 t = _mm512_add_ps(_mm512_mul_ps(x, log2e), magic);
        __m512 nn = _mm512_sub_ps(t, magic);
        __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(nn, c1));
        r = _mm512_sub_ps(r, _mm512_mul_ps(nn, c2));
        __m512 p = _mm512_add_ps(_mm512_mul_ps(p0, r), p1);
        p = _mm512_add_ps(_mm512_mul_ps(p, r), p2);
        p = _mm512_add_ps(_mm512_mul_ps(p, r), p3);
        p = _mm512_add_ps(_mm512_mul_ps(p, r), p4);
        p = _mm512_add_ps(_mm512_mul_ps(p, r), p5);
        p = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), one);
        __m512 e = _mm512_scalef_ps(p, nn);
        _mm512_storeu_ps(z + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    float s[LANES];
    _mm512_storeu_ps(s, acc);
    return exp_sum_finish(z, j, n, mx, s);
}
#define HAVE_EXP_SUM_AVX512 1
#endif

/* exp(z_j - mx) in place over a row, and their sum (fixed lane partition:
 * the same on every path). */
static float row_exp_sum(float *z, int n, float mx)
{
#ifdef HAVE_EXP_SUM_AVX512
    if (iadsr__gemm_avx512_ok())
        return row_exp_sum_avx512(z, n, mx);
#endif
    return row_exp_sum_any(z, n, mx);
}

/* Sum with the same fixed lane partition as row_exp_sum (vectorised, and
 * independent of the ISA chosen). */
IADSR_CLONES
static float row_sum(const float *z, int n)
{
    float s[LANES];
    for (int l = 0; l < LANES; l++)
        s[l] = 0.0f;
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            s[l] += z[j + l];
    for (; j < n; j++)
        s[j % LANES] += z[j];
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += s[l];
    return sum;
}

IADSR_CLONES
void iadsr__affine(float *z, size_t n, float a, float b)
{
    for (size_t j = 0; j < n; j++)
        z[j] = z[j] * a + b;
}

double iadsr__xent_rows(float *z, int rows, int n, const int32_t *targets,
                        float scale, float smooth, int want_grad)
{
    return iadsr__xent_rows_ld(z, rows, n, n, targets, scale, smooth,
                               want_grad);
}

double iadsr__xent_rows_ld(float *z, int rows, int n, int ld,
                           const int32_t *targets, float scale, float smooth,
                           int want_grad)
{
    return iadsr__xent_rows_lse_ld(z, rows, n, ld, targets, scale, smooth,
                                   want_grad, NULL);
}

double iadsr__xent_rows_lse_ld(float *z, int rows, int n, int ld,
                               const int32_t *targets, float scale,
                               float smooth, int want_grad, float *lse)
{
    return iadsr__xent_rows_lse_max_ld(z, rows, n, ld, targets, scale, smooth,
                                       want_grad, lse, NULL, NULL, 0.0);
}

float iadsr__xent_grad_shift(float scale, float smooth, int n)
{
    return -scale * smooth / (float)n;
}

float iadsr__xent_grad_target(float scale, float smooth)
{
    return scale * (1.0f - smooth);
}

void iadsr__xent_row_finish(float *zr, int n, int32_t t, float a, float scale,
                            float smooth)
{
    iadsr__affine(zr, (size_t)n, a, iadsr__xent_grad_shift(scale, smooth, n));
    zr[t - 1] -= iadsr__xent_grad_target(scale, smooth);
}

double iadsr__xent_rows_lse_max_ld(float *z, int rows, int n, int ld,
                                   const int32_t *targets, float scale,
                                   float smooth, int want_grad, float *lse,
                                   const float *rmax, float *ascale,
                                   double total)
{
    for (int i = 0; i < rows; i++) {
        float *zr = z + (size_t)i * (size_t)ld;
        int32_t t = targets[i];
        if (t <= 0 || t > n) {
            if (lse) {
                float mx = rmax ? rmax[i] : row_max(zr, n);
                lse[i] = logf(row_exp_sum(zr, n, mx)) + mx;
            }
            memset(zr, 0, (size_t)n * sizeof(float));
            continue;
        }
        float zt = zr[t - 1];
        /* smoothing: the loss against the uniform part is lse - mean(z) */
        double zmean =
            smooth > 0.0f ? (double)row_sum(zr, n) / (double)n : 0.0;
        float mx = rmax ? rmax[i] : row_max(zr, n);
        float sum = row_exp_sum(zr, n, mx);
        if (lse)
            lse[i] = logf(sum) + mx;
        total += (double)logf(sum) + (double)mx -
                 (1.0 - (double)smooth) * (double)zt - (double)smooth * zmean;
        if (want_grad) {
            if (ascale) /* the caller finishes the row (its factor) */
                ascale[i] = scale / sum;
            else
                iadsr__xent_row_finish(zr, n, t, scale / sum, scale, smooth);
        }
    }
    return total;
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

IADSR_CLONES
void iadsr__gelu_fwd(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + k_erff(x[i] * INV_SQRT2));
}

IADSR_CLONES
void iadsr__gelu_bwd(const float *x, const float *dy, size_t n, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + k_erff(x[i] * INV_SQRT2));
        float pdf = INV_SQRT_2PI * k_expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

IADSR_CLONES
int iadsr__any_greater16(const float *x, float thr)
{
    int m = 0;
    for (int l = 0; l < 16; l++)
        m |= x[l] > thr;
    return m;
}

int iadsr__all_finite(const float *x, size_t n)
{
    /* accumulate a flag instead of branching so the loop vectorises */
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !isfinite(x[i]);
    return !bad;
}
