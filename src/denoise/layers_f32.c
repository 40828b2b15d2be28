/* Float instantiation of the IADSR Stage 2 layers (production path).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/layers.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(IADSR_NO_AVX512)
#include <immintrin.h>

#include "math/gemm_avx512.h"

/* The detector's norms and products (dots_multi) for 8 rows at once, one
 * row per lane of 8 doubles: the scalar loop runs one chain after another
 * with a load, a conversion and a dependent add per element, which made it
 * about 2% of a joint epoch. Each lane keeps its row's order over the
 * columns and the scalar operations (a product, then a sum: the build
 * does not contract them), so every value is dots_multi's, bit for bit. */
__attribute__((target("avx512f"))) static void
dots8_f32(const float *const *r, int nv, const int *pa, const int *pb, int np,
          int d, double *sq8, double *pr8)
{
    __m512d s[IADSR__COS_MAX_V], p[IADSR__COS_MAX_P], x[IADSR__COS_MAX_V];
    const __m256i idx = _mm256_setr_epi32(0, d, 2 * d, 3 * d, 4 * d, 5 * d,
                                          6 * d, 7 * d);
    for (int k = 0; k < nv; k++)
        s[k] = _mm512_setzero_pd();
    for (int k = 0; k < np; k++)
        p[k] = _mm512_setzero_pd();
    for (int c = 0; c < d; c++) {
        for (int k = 0; k < nv; k++) {
            x[k] = _mm512_cvtps_pd(_mm256_i32gather_ps(r[k] + c, idx, 4));
            s[k] = _mm512_add_pd(s[k], _mm512_mul_pd(x[k], x[k]));
        }
        for (int k = 0; k < np; k++)
            p[k] = _mm512_add_pd(p[k], _mm512_mul_pd(x[pa[k]], x[pb[k]]));
    }
    for (int k = 0; k < nv; k++)
        _mm512_storeu_pd(sq8 + 8 * k, s[k]);
    for (int k = 0; k < np; k++)
        _mm512_storeu_pd(pr8 + 8 * k, p[k]);
}
#define LAYERS_DOTS8 dots8_f32
#define LAYERS_DOTS8_OK iadsr__gemm_avx512_ok
#endif

#include "math/real_f32.h"
#include "denoise/layers_template.h"
#include "math/real_undef.h"
