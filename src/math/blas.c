/* The only file that talks to BLAS. Row-major GEMM wrappers with a reference
 * fallback (BLAS=none) used by sanitizer and fuzz builds. (The double
 * precision GEMM of the gradient checks lives in tests/f64/dgemm.c.)
 * SPDX-License-Identifier: MIT
 */
#include "iadsr.h"
#include "math/blas.h"

#include "math/gemm_avx512.h"

#include <stdio.h>
#include <string.h>

#if defined(IADSR_BLAS_OPENBLAS) || defined(IADSR_BLAS_CBLAS)
#include <cblas.h>
#define IADSR_HAVE_CBLAS 1
#else
#define IADSR_HAVE_CBLAS 0
#endif

/* Reference kernel, written generically for float and double. The i-p-j
 * loop order streams rows of B and C, which is fast enough for tests. */
#define REF_GEMM(NAME, T)                                                      \
    static void NAME(int ta, int tb, int m, int n, int k, T alpha,             \
                     const T *a, int lda, const T *b, int ldb, T beta, T *c,   \
                     int ldc)                                                  \
    {                                                                          \
        for (int i = 0; i < m; i++) {                                          \
            T *ci = c + (size_t)i * (size_t)ldc;                               \
            if (beta == (T)0)                                                  \
                for (int j = 0; j < n; j++)                                    \
                    ci[j] = (T)0;                                              \
            else if (beta != (T)1)                                             \
                for (int j = 0; j < n; j++)                                    \
                    ci[j] *= beta;                                             \
            for (int p = 0; p < k; p++) {                                      \
                T aip = ta ? a[(size_t)p * (size_t)lda + (size_t)i]            \
                           : a[(size_t)i * (size_t)lda + (size_t)p];           \
                aip *= alpha;                                                  \
                if (aip == (T)0)                                               \
                    continue;                                                  \
                if (!tb) {                                                     \
                    const T *bp = b + (size_t)p * (size_t)ldb;                 \
                    for (int j = 0; j < n; j++)                                \
                        ci[j] += aip * bp[j];                                  \
                } else {                                                       \
                    for (int j = 0; j < n; j++)                                \
                        ci[j] += aip * b[(size_t)j * (size_t)ldb + (size_t)p]; \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }

#if !IADSR_HAVE_CBLAS
REF_GEMM(ref_sgemm, float)
#endif

/* Columns j0..n-1 of C = op(A) B + beta C (B untransposed, beta 0 or 1),
 * accumulated in float like the tiles. */
static void tail_columns(int trans_a, int m, int j0, int n, int k,
                         const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * (size_t)ldc;
        float acc[16];
        for (int j = j0; j < n; j++)
            acc[j - j0] = beta == 0.0f ? 0.0f : ci[j];
        for (int p = 0; p < k; p++) {
            float aip = trans_a ? a[(size_t)p * (size_t)lda + (size_t)i]
                                : a[(size_t)i * (size_t)lda + (size_t)p];
            const float *bp = b + (size_t)p * (size_t)ldb;
            for (int j = j0; j < n; j++)
                acc[j - j0] += aip * bp[j];
        }
        for (int j = j0; j < n; j++)
            ci[j] = acc[j - j0];
    }
}

void iadsr__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    /* Small transformer shapes: our own AVX-512 tiles beat a general BLAS
     * (and one that mis-detects the CPU by a wide margin). */
    if (alpha == 1.0f && !trans_b && k > 0 && iadsr__gemm_avx512_ok()) {
        if (iadsr__gemm_avx512(trans_a, m, n, k, a, lda, b, ldb, beta, c,
                               ldc))
            return;
        /* A width off the 16-column tiles (the InfoNCE's n x n logits):
         * the tiles take the leading multiple of 16, a plain loop the few
         * columns left. Handing the whole product to a threaded BLAS
         * instead wakes its threads, which then spin on the cores the
         * caller's own workers need. */
        int n16 = n / 16 * 16;
        if (n16 > 0 && n - n16 < 16 && (beta == 0.0f || beta == 1.0f) &&
            iadsr__gemm_avx512(trans_a, m, n16, k, a, lda, b, ldb, beta, c,
                               ldc)) {
            tail_columns(trans_a, m, n16, n, k, a, lda, b, ldb, beta, c, ldc);
            return;
        }
    }
    if (beta == 0.0f) {
        /* Never let a BLAS read garbage (possibly NaN) from C. */
        for (int i = 0; i < m; i++)
            memset(c + (size_t)i * (size_t)ldc, 0, (size_t)n * sizeof(float));
    }
    if (k <= 0) {
        if (beta != 0.0f && beta != 1.0f)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c[(size_t)i * (size_t)ldc + (size_t)j] *= beta;
        return;
    }
#if IADSR_HAVE_CBLAS
    if (m == 1 && !trans_a) {
        /* One row: a GEMV is markedly faster (single-user scoring). */
        if (trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a,
                        1, beta, c, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, 1,
                        beta, c, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
                ldb, beta, c, ldc);
#else
    ref_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

const char *iadsr__blas_info(void)
{
#if defined(IADSR_BLAS_OPENBLAS)
    /* openblas_get_config() returns a static string. */
    return openblas_get_config();
#elif defined(IADSR_BLAS_CBLAS)
    return "CBLAS (external)";
#else
    return "none (reference kernels)";
#endif
}
