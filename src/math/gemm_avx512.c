/* Register-tiled AVX-512 SGEMM for the shapes of the transformer layers:
 * C (+)= op(A) B with B row-major and N a multiple of 16 (N = 64 .. 256,
 * K = 64 .. 256, M = rows of a mini-batch). These products are too small for
 * a general BLAS to amortise its packing and threading, and a BLAS that
 * does not recognise the CPU falls back to SSE kernels; this code is used
 * instead when the CPU has AVX-512 (checked at run time).
 *
 * A tile of MR rows x (16 * NV) columns lives in registers while the K loop
 * streams one row of B (contiguous) and broadcasts MR elements of A. The A
 * element (row i, step k) is at a[i * sa_i + k * sa_k], which covers both
 * op(A) = A (sa_i = lda, sa_k = 1) and op(A) = A^T (sa_i = 1, sa_k = lda).
 * SPDX-License-Identifier: MIT
 */
#include "math/gemm_avx512.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(IADSR_NO_AVX512)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

#define DEFINE_TILE(MRV, NV)                                                   \
    AVX512 static void tile_##MRV##x##NV(                                      \
        int k, const float *a, size_t sa_i, size_t sa_k, const float *b,       \
        size_t ldb, float *c, size_t ldc, int accumulate)                      \
    {                                                                          \
        __m512 acc[MRV][NV];                                                   \
        for (int i = 0; i < (MRV); i++)                                        \
            for (int v = 0; v < (NV); v++)                                     \
                acc[i][v] = accumulate                                         \
                                ? _mm512_loadu_ps(c + (size_t)i * ldc + 16 * v)\
                                : _mm512_setzero_ps();                         \
        for (int p = 0; p < k; p++) {                                          \
            __m512 bv[NV];                                                     \
            for (int v = 0; v < (NV); v++)                                     \
                bv[v] = _mm512_loadu_ps(b + (size_t)p * ldb + 16 * v);         \
            const float *ap = a + (size_t)p * sa_k;                            \
            for (int i = 0; i < (MRV); i++) {                                  \
                __m512 av = _mm512_set1_ps(ap[(size_t)i * sa_i]);              \
                for (int v = 0; v < (NV); v++)                                 \
                    acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);         \
            }                                                                  \
        }                                                                      \
        for (int i = 0; i < (MRV); i++)                                        \
            for (int v = 0; v < (NV); v++)                                     \
                _mm512_storeu_ps(c + (size_t)i * ldc + 16 * v, acc[i][v]);     \
    }

DEFINE_TILE(8, 2)
DEFINE_TILE(4, 2)
DEFINE_TILE(2, 2)
DEFINE_TILE(1, 2)
DEFINE_TILE(8, 1)
DEFINE_TILE(4, 1)
DEFINE_TILE(2, 1)
DEFINE_TILE(1, 1)

typedef void (*tile_fn)(int, const float *, size_t, size_t, const float *,
                        size_t, float *, size_t, int);

/* B's panels are copied into a contiguous buffer, KC rows x 32 columns (32
 * KiB, the size of L1), before every tile of A's rows streams over them:
 * read in place, a panel's rows sit ldb floats apart, and strides such as
 * 256 or 1024 floats map them onto a few L1 sets that evict one another on
 * every pass (a 256-wide product ran at two thirds of a 192-wide one, a
 * 1024-wide one at 0.6). A long K goes in blocks of KC rows, each block's
 * sums stored into C and loaded again by the next: every element's chain
 * of fused multiply-adds runs over k in the same order from the same start,
 * and its float accumulator is stored and reloaded unchanged, so the
 * results are bit for bit those of one pass. */
#define KC 256

static _Thread_local float panel[KC * 32] __attribute__((aligned(64)));

AVX512 static void pack_panel(const float *b, size_t ldb, int kc, int w,
                              float *dst)
{
    for (int p = 0; p < kc; p++) {
        const float *src = b + (size_t)p * ldb;
        for (int v = 0; v < w; v += 16)
            _mm512_store_ps(dst + (size_t)p * (size_t)w + v,
                            _mm512_loadu_ps(src + v));
    }
}

static void run(int m, int n, int k, const float *a, size_t sa_i, size_t sa_k,
                const float *b, size_t ldb, float *c, size_t ldc, int acc)
{
    static const tile_fn t2[4] = {tile_8x2, tile_4x2, tile_2x2, tile_1x2};
    static const tile_fn t1[4] = {tile_8x1, tile_4x1, tile_2x1, tile_1x1};
    static const int rows[4] = {8, 4, 2, 1};
    for (int j = 0; j < n;) {
        int wide = n - j >= 32, w = wide ? 32 : 16;
        const tile_fn *t = wide ? t2 : t1;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kc = k - p0 < KC ? k - p0 : KC;
            pack_panel(b + (size_t)p0 * ldb + j, ldb, kc, w, panel);
            int accum = acc || p0 > 0;
            const float *ap = a + (size_t)p0 * sa_k;
            int i = 0;
            for (int s = 0; s < 4; s++)
                for (; i + rows[s] <= m; i += rows[s])
                    t[s](kc, ap + (size_t)i * sa_i, sa_i, sa_k, panel,
                         (size_t)w, c + (size_t)i * ldc + j, ldc, accum);
        }
        j += w;
    }
}

int iadsr__gemm_avx512_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}

int iadsr__gemm_avx512(int trans_a, int m, int n, int k, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c,
                       int ldc)
{
    if (n % 16 != 0 || (beta != 0.0f && beta != 1.0f) || m <= 0 || n <= 0 ||
        k <= 0)
        return 0;
    if (trans_a)
        run(m, n, k, a, 1, (size_t)lda, b, (size_t)ldb, c, (size_t)ldc,
            beta != 0.0f);
    else
        run(m, n, k, a, (size_t)lda, 1, b, (size_t)ldb, c, (size_t)ldc,
            beta != 0.0f);
    return 1;
}

#else

int iadsr__gemm_avx512_ok(void) { return 0; }

int iadsr__gemm_avx512(int trans_a, int m, int n, int k, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c,
                       int ldc)
{
    (void)trans_a, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b;
    (void)ldb, (void)beta, (void)c, (void)ldc;
    return 0;
}

#endif
