/* The Adam update. The plain loop does not vectorise: sqrtf may set errno,
 * so the compiler keeps it scalar (a square root and a division per
 * parameter, about 3% of a training epoch). Where the CPU has AVX-512 the
 * same operations run 16 at a time: IEEE square root, division, products
 * and sums are correctly rounded whatever the vector width, so the results
 * are bit for bit the scalar loop's.
 * SPDX-License-Identifier: MIT
 */
#include "math/adam.h"

#include <math.h>

#include "math/gemm_avx512.h"

static void adam_scalar(float *w, const float *g, float *m, float *v,
                        size_t n, const iadsr__adam_coef *c)
{
    float b1 = c->b1, b2 = c->b2, lr = c->lr, rc2 = c->rc2, eps = c->eps;
    float wd = c->wd, a1 = 1.0f - b1, a2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + a1 * gi;
        v[i] = b2 * v[i] + a2 * gi * gi;
        w[i] -= lr * m[i] / (sqrtf(v[i]) * rc2 + eps);
    }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(IADSR_NO_AVX512)
#include <immintrin.h>

/* The scalar loop's operations in its order, 16 lanes at a time (separate
 * multiplies and adds: this project compiles without FP contraction). */
__attribute__((target("avx512f"))) static size_t
adam_avx512(float *w, const float *g, float *m, float *v, size_t n,
            const iadsr__adam_coef *c)
{
    __m512 b1 = _mm512_set1_ps(c->b1), b2 = _mm512_set1_ps(c->b2);
    __m512 a1 = _mm512_set1_ps(1.0f - c->b1), a2 = _mm512_set1_ps(1.0f - c->b2);
    __m512 lr = _mm512_set1_ps(c->lr), rc2 = _mm512_set1_ps(c->rc2);
    __m512 eps = _mm512_set1_ps(c->eps), wd = _mm512_set1_ps(c->wd);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wi = _mm512_loadu_ps(w + i);
        __m512 gi = _mm512_add_ps(_mm512_loadu_ps(g + i), _mm512_mul_ps(wd, wi));
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                  _mm512_mul_ps(a1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(a2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), rc2), eps);
        __m512 step = _mm512_div_ps(_mm512_mul_ps(lr, mi), den);
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        _mm512_storeu_ps(w + i, _mm512_sub_ps(wi, step));
    }
    return i;
}
#define HAVE_ADAM_AVX512 1
#endif

void iadsr__adam(float *w, const float *g, float *m, float *v, size_t n,
                 const iadsr__adam_coef *c)
{
    size_t i = 0;
#ifdef HAVE_ADAM_AVX512
    if (iadsr__gemm_avx512_ok())
        i = adam_avx512(w, g, m, v, n, c);
#endif
    adam_scalar(w + i, g + i, m + i, v + i, n - i, c);
}
