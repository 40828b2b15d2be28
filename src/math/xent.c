/* Full-softmax next-item cross-entropy for training, the dominant cost of
 * an epoch (three GEMMs against the whole item table per position).
 *
 * Rows are processed in chunks small enough for the logits to stay in the
 * cache: logits = H E^T, softmax + loss + gradient in place, then
 * dH += dZ E and dE += dZ^T H. With AVX-512 and d a multiple of 16 up to 64
 * the three products run in register-tiled kernels written for exactly these
 * shapes (K = d is small, N = n_items is large); otherwise, and for checking,
 * they go through the BLAS wrapper. The fast path keeps the item table
 * transposed and packed in tiles of 32 items (see iadsr__xent_transpose). Rows are split across n_threads threads;
 * each thread accumulates dE in a private buffer and the buffers are summed
 * in thread order, so results depend only on the thread count.
 * SPDX-License-Identifier: MIT
 */
#include "math/xent.h"

#include "math/blas.h"
#include "math/kernels.h"
#include "common/fork_join.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define XENT_HAVE_AVX512_BUILD 1
#else
#define XENT_HAVE_AVX512_BUILD 0
#endif

#define MR 8       /* rows per logits tile */
#define NR 32      /* items per logits tile (two zmm) */
#define JBLOCK 512 /* items per dH block (E block stays in L2) */
#define SUB 32     /* rows per logits + softmax step (a multiple of MR) */
#if NR != 32
#error "the packed layout assumes 32 items per tile"
#endif

int iadsr__xent_fast_ok(int d)
{
#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
    if (d % 16 != 0 || d > 64)
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
#else
    (void)d;
    return 0;
#endif
}

int iadsr__xent_ldt(int n_items) { return (n_items + NR - 1) / NR * NR; }

/* Packed layout: tile jt (items 32*jt ..) holds d rows of 32 floats, so a
 * logits tile reads one contiguous 32*d block. */
/* Tiles [jt0, jt1) of the packed table, one element at a time. */
static void transpose_tiles_any(const float *e1, int n_items, int d,
                                float *et, int jt0, int jt1)
{
    for (int jt = jt0; jt < jt1; jt++) {
        float *tile = et + (size_t)jt * (size_t)NR * (size_t)d;
        for (int jj = 0; jj < NR; jj++) {
            int j = jt * NR + jj;
            if (j < n_items) {
                const float *src = e1 + (size_t)j * (size_t)d;
                for (int k = 0; k < d; k++)
                    tile[(size_t)k * NR + (size_t)jj] = src[k];
            } else {
                for (int k = 0; k < d; k++)
                    tile[(size_t)k * NR + (size_t)jj] = 0.0f;
            }
        }
    }
}

#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
/* The same for d a multiple of 16: every full tile as 16 x 16 blocks
 * transposed in registers (the element-wise loop stores one float per
 * cycle at a 128-byte stride, and it ran before every training step on
 * one thread while the others waited); the last, partial tile as above. */
__attribute__((target("avx512f"))) static void
transpose_tiles_avx512(const float *e1, int n_items, int d, float *et,
                       int jt0, int jt1)
{
    int full = n_items / NR; /* tiles with NR real items */
    int jte = jt1 < full ? jt1 : full;
    for (int jt = jt0; jt < jte; jt++) {
        float *tile = et + (size_t)jt * (size_t)NR * (size_t)d;
        for (int h = 0; h < NR; h += 16) {
            const float *src = e1 + ((size_t)jt * NR + (size_t)h) * (size_t)d;
            for (int k0 = 0; k0 < d; k0 += 16) {
                __m512 r[16], t[16];
                for (int i = 0; i < 16; i++)
                    r[i] = _mm512_loadu_ps(src + (size_t)i * (size_t)d + k0);
                /* pairs of rows interleaved, then quads: u[4g + c] holds
                 * columns c, c + 4, c + 8, c + 12 of rows 4g .. 4g + 3, one
                 * column per 128-bit lane */
                for (int i = 0; i < 16; i += 2) {
                    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
                }
                for (int g = 0; g < 4; g++) {
                    __m512d a = _mm512_castps_pd(t[4 * g]);
                    __m512d b = _mm512_castps_pd(t[4 * g + 1]);
                    __m512d c = _mm512_castps_pd(t[4 * g + 2]);
                    __m512d e = _mm512_castps_pd(t[4 * g + 3]);
                    r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
                    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
                    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
                    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
                }
                /* column c + 4L gathers lane L of the four groups */
                for (int c = 0; c < 4; c++) {
                    __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44);
                    __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
                    __m512 w0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
                    __m512 w1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
                    float *o = tile + (size_t)(k0 + c) * NR + (size_t)h;
                    _mm512_storeu_ps(o, _mm512_shuffle_f32x4(v0, w0, 0x88));
                    _mm512_storeu_ps(o + 4 * NR, _mm512_shuffle_f32x4(v0, w0, 0xDD));
                    _mm512_storeu_ps(o + 8 * NR, _mm512_shuffle_f32x4(v1, w1, 0x88));
                    _mm512_storeu_ps(o + 12 * NR, _mm512_shuffle_f32x4(v1, w1, 0xDD));
                }
            }
        }
    }
    if (jte < jt0)
        jte = jt0;
    transpose_tiles_any(e1, n_items, d, et, jte, jt1);
}
#endif

static void transpose_tiles(const float *e1, int n_items, int d, float *et,
                            int jt0, int jt1)
{
#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
    if (d % 16 == 0 && iadsr__xent_fast_ok(16)) {
        transpose_tiles_avx512(e1, n_items, d, et, jt0, jt1);
        return;
    }
#endif
    transpose_tiles_any(e1, n_items, d, et, jt0, jt1);
}

void iadsr__xent_transpose(const float *e1, int n_items, int d, float *et,
                           int ldt)
{
    transpose_tiles(e1, n_items, d, et, 0, ldt / NR);
}

typedef struct {
    const float *e1;
    float *et;
    int n_items, d, jt0, jt1;
} transpose_part;

static void transpose_run(void *arg)
{
    const transpose_part *q = arg;
    transpose_tiles(q->e1, q->n_items, q->d, q->et, q->jt0, q->jt1);
}

void iadsr__xent_transpose_mt(const float *e1, int n_items, int d, float *et,
                              int ldt, int n_threads)
{
    transpose_part q[64];
    int nt = ldt / NR;
    int W = n_threads < 64 ? n_threads : 64;
    if (W > nt)
        W = nt;
    if (W <= 1) {
        iadsr__xent_transpose(e1, n_items, d, et, ldt);
        return;
    }
    for (int i = 0; i < W; i++)
        q[i] = (transpose_part){e1, et, n_items, d, (int)((int64_t)nt * i / W),
                                (int)((int64_t)nt * (i + 1) / W)};
    iadsr__fork_join(W, transpose_run, q, sizeof q[0]);
}

/* e1 (n x d) += unpacked packed-transposed accumulator. */
static void add_packed(const float *pk, int n_items, int d, float *e1)
{
    for (int j = 0; j < n_items; j++) {
        const float *tile = pk + (size_t)(j / NR) * (size_t)NR * (size_t)d;
        int jj = j % NR;
        float *dst = e1 + (size_t)j * (size_t)d;
        for (int k = 0; k < d; k++)
            dst[k] += tile[(size_t)k * NR + (size_t)jj];
    }
}

#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
#define AVX512 __attribute__((target("avx512f")))

/* The first v of 16 lanes (none for v <= 0, all for v >= 16). */
static __mmask16 lanes_below(int v)
{
    return v <= 0 ? 0 : v >= 16 ? 0xFFFF : (__mmask16)((1u << v) - 1u);
}

/* z (rows x ldt) = h (rows x d) . et (packed d x ldt); rows % MR == 0.
 * Item tiles outermost: a 32*d tile of et stays in L1 for all rows.
 * With lanes (rows x 16 floats, not NULL), each row's maximum over its
 * first n logits is also taken while the tile is in registers, into
 * lanes: the softmax then skips its own pass over the row for it (see
 * lanes_max). */
AVX512 static void k_logits(const float *h, int rows, int d, const float *et,
                            int ldt, float *z, int n, float *lanes)
{
    if (lanes)
        for (size_t i = 0; i < (size_t)rows * 16; i++)
            lanes[i] = -INFINITY;
    for (int j = 0; j < ldt; j += NR) {
        /* the items of this tile below n: padding columns are not logits */
        __mmask16 k0 = lanes_below(n - j), k1 = lanes_below(n - j - 16);
        const float *b = et + (size_t)j * (size_t)d;
        for (int r = 0; r < rows; r += MR) {
            __m512 acc[MR][2];
            for (int i = 0; i < MR; i++)
                acc[i][0] = acc[i][1] = _mm512_setzero_ps();
            const float *hr = h + (size_t)r * (size_t)d;
            for (int k = 0; k < d; k++) {
                __m512 b0 = _mm512_loadu_ps(b + (size_t)k * NR);
                __m512 b1 = _mm512_loadu_ps(b + (size_t)k * NR + 16);
                for (int i = 0; i < MR; i++) {
                    __m512 a = _mm512_set1_ps(hr[(size_t)i * (size_t)d + (size_t)k]);
                    acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
                    acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
                }
            }
            float *zr = z + (size_t)r * (size_t)ldt + j;
            for (int i = 0; i < MR; i++) {
                _mm512_storeu_ps(zr + (size_t)i * (size_t)ldt, acc[i][0]);
                _mm512_storeu_ps(zr + (size_t)i * (size_t)ldt + 16, acc[i][1]);
            }
            if (lanes) {
                /* max(a, m) keeps m where a is NaN, as row_max's a > m ? a : m */
                for (int i = 0; i < MR; i++) {
                    float *li = lanes + (size_t)(r + i) * 16;
                    __m512 m = _mm512_loadu_ps(li);
                    m = _mm512_mask_max_ps(m, k0, acc[i][0], m);
                    m = _mm512_mask_max_ps(m, k1, acc[i][1], m);
                    _mm512_storeu_ps(li, m);
                }
            }
        }
    }
}

/* rmax[i] = the maximum of row i's 16 lanes (an exact reduction: the same
 * value as a pass over the row). */
AVX512 static void lanes_max(const float *lanes, int rows, float *rmax)
{
    for (int i = 0; i < rows; i++) {
        const float *li = lanes + (size_t)i * 16;
        float mx = -INFINITY;
        for (int l = 0; l < 16; l++)
            mx = li[l] > mx ? li[l] : mx;
        rmax[i] = mx;
    }
}

/* The gradient of rows [r, r + rg) of dz over columns [j0, j1), finished
 * in place while the block is in L1 (fin: the rows' factors, targets and
 * the two constants of iadsr__xent_row_finish; the same operations in the
 * same order, so the same bits as finishing whole rows beforehand). */
typedef struct {
    const float *a;      /* per row: scale / sum */
    const int32_t *tg;   /* per row: the target (1-based) */
    float shift, target; /* iadsr__xent_grad_shift / _target */
} finish;

AVX512 static void finish_block(float *dz, int r, int rg, int ldt, int j0,
                                int j1, const finish *f)
{
    const __m512 b = _mm512_set1_ps(f->shift);
    for (int i = r; i < r + rg; i++) {
        float *zr = dz + (size_t)i * (size_t)ldt;
        const __m512 a = _mm512_set1_ps(f->a[i]);
        for (int j = j0; j < j1; j += 16) {
            __mmask16 k = lanes_below(j1 - j);
            __m512 v = _mm512_maskz_loadu_ps(k, zr + j);
            /* multiply, then add: no fused rounding, as iadsr__affine */
            _mm512_mask_storeu_ps(zr + j, k,
                                  _mm512_add_ps(_mm512_mul_ps(v, a), b));
        }
        int32_t t = f->tg[i];
        if (t - 1 >= j0 && t - 1 < j1)
            zr[t - 1] -= f->target;
    }
}

/* dh rows [rb, re) += dz (those rows, ldt apart; columns [jlo, jhi)) . e1
 * (those rows of n x d), in blocks of JBLOCK items from jlo (a multiple of
 * JBLOCK; the sums are the same whether the range is taken in one call or
 * block by block), RG rows at a time (re - rb a multiple of RG; each row's
 * sum runs over j in order whatever RG is, so the grouping does not change
 * a bit); with fin (not NULL) every row has a target and holds exp(z - max),
 * finished block by block (finish_block) before use. DV = d / 16 and RG
 * are compile-time constants in each instance so the RG x DV accumulators
 * stay in registers. */
#define DEFINE_K_DH(DV, RG)                                                    \
    AVX512 static void k_dh##DV##x##RG(float *dz, int rb, int re, int ldt,     \
                                       const float *e1, int jlo, int jhi,      \
                                       float *dh, const finish *fin)           \
    {                                                                          \
        const int d = 16 * (DV);                                               \
        for (int j0 = jlo; j0 < jhi; j0 += JBLOCK) {                           \
            int j1 = j0 + JBLOCK < jhi ? j0 + JBLOCK : jhi;                    \
            for (int r = rb; r < re; r += (RG)) {                              \
                if (fin)                                                       \
                    finish_block(dz, r, (RG), ldt, j0, j1, fin);               \
                __m512 acc[RG][DV];                                            \
                for (int i = 0; i < (RG); i++)                                 \
                    for (int v = 0; v < (DV); v++)                             \
                        acc[i][v] = _mm512_setzero_ps();                       \
                const float *z0 = dz + (size_t)r * (size_t)ldt;                \
                for (int j = j0; j < j1; j++) {                                \
                    const float *ej = e1 + (size_t)j * (size_t)d;              \
                    __m512 e[DV];                                              \
                    for (int v = 0; v < (DV); v++)                             \
                        e[v] = _mm512_loadu_ps(ej + 16 * v);                   \
                    for (int i = 0; i < (RG); i++) {                           \
                        __m512 a =                                             \
                            _mm512_set1_ps(z0[(size_t)i * (size_t)ldt + j]);   \
                        for (int v = 0; v < (DV); v++)                         \
                            acc[i][v] = _mm512_fmadd_ps(a, e[v], acc[i][v]);   \
                    }                                                          \
                }                                                              \
                for (int i = 0; i < (RG); i++) {                               \
                    float *o = dh + (size_t)(r + i) * (size_t)d;               \
                    for (int v = 0; v < (DV); v++)                             \
                        _mm512_storeu_ps(                                      \
                            o + 16 * v,                                        \
                            _mm512_add_ps(_mm512_loadu_ps(o + 16 * v),         \
                                          acc[i][v]));                         \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }
DEFINE_K_DH(1, 4)
DEFINE_K_DH(2, 4)
DEFINE_K_DH(3, 4)
DEFINE_K_DH(4, 4)
DEFINE_K_DH(4, 6)
DEFINE_K_DH(1, 1)
DEFINE_K_DH(2, 1)
DEFINE_K_DH(3, 1)
DEFINE_K_DH(4, 1)

/* Rows [rb, re) one at a time (already finished rows: no fin), for the
 * few target rows after the last group of 4. */
static void k_dh_rows(float *dz, int rb, int re, int ldt, const float *e1,
                      int jlo, int jhi, int d, float *dh)
{
    switch (d / 16) {
    case 1: k_dh1x1(dz, rb, re, ldt, e1, jlo, jhi, dh, NULL); break;
    case 2: k_dh2x1(dz, rb, re, ldt, e1, jlo, jhi, dh, NULL); break;
    case 3: k_dh3x1(dz, rb, re, ldt, e1, jlo, jhi, dh, NULL); break;
    default: k_dh4x1(dz, rb, re, ldt, e1, jlo, jhi, dh, NULL); break;
    }
}

/* rows is a multiple of 4. At d = 64, rows go 6 at a time (24
 * accumulators, 4 for a row of E) as far as that leaves a multiple of 4:
 * each 512-item block of E, read from L2, then serves 6 rows instead of
 * 4. */
static void k_dh(float *dz, int rows, int ldt, const float *e1, int jlo,
                 int jhi, int d, float *dh, const finish *fin)
{
    switch (d / 16) {
    case 1: k_dh1x4(dz, 0, rows, ldt, e1, jlo, jhi, dh, fin); break;
    case 2: k_dh2x4(dz, 0, rows, ldt, e1, jlo, jhi, dh, fin); break;
    case 3: k_dh3x4(dz, 0, rows, ldt, e1, jlo, jhi, dh, fin); break;
    default: {
        int r6 = rows / 12 * 12; /* rows - r6 is then 0, 4 or 8 */
        if (r6 > 0)
            k_dh4x6(dz, 0, r6, ldt, e1, jlo, jhi, dh, fin);
        if (r6 < rows)
            k_dh4x4(dz, r6, rows, ldt, e1, jlo, jhi, dh, fin);
        break;
    }
    }
}

/* det (packed d x ldt) += h^T (d x rows) . dz (rows x ldt), the item
 * tiles of columns [jlo, jhi) (multiples of NR): for each item tile, 8
 * dimensions at a time, two zmm of items per dimension (tiles are
 * independent: any split of the range gives the same sums). */
AVX512 static void k_de(const float *dz, int rows, int ldt, const float *h,
                        int d, float *det, int jlo, int jhi)
{
    for (int j = jlo; j < jhi; j += NR) {
        float *o = det + (size_t)j * (size_t)d;
        for (int k0 = 0; k0 < d; k0 += 8) {
            __m512 acc[8][2];
            for (int i = 0; i < 8; i++)
                acc[i][0] = acc[i][1] = _mm512_setzero_ps();
            for (int r = 0; r < rows; r++) {
                const float *zr = dz + (size_t)r * (size_t)ldt + j;
                __m512 z0 = _mm512_loadu_ps(zr);
                __m512 z1 = _mm512_loadu_ps(zr + 16);
                const float *hr = h + (size_t)r * (size_t)d + k0;
                for (int i = 0; i < 8; i++) {
                    __m512 a = _mm512_set1_ps(hr[i]);
                    acc[i][0] = _mm512_fmadd_ps(a, z0, acc[i][0]);
                    acc[i][1] = _mm512_fmadd_ps(a, z1, acc[i][1]);
                }
            }
            for (int i = 0; i < 8; i++) {
                float *oi = o + (size_t)(k0 + i) * NR;
                _mm512_storeu_ps(oi, _mm512_add_ps(_mm512_loadu_ps(oi), acc[i][0]));
                _mm512_storeu_ps(oi + 16,
                                 _mm512_add_ps(_mm512_loadu_ps(oi + 16), acc[i][1]));
            }
        }
    }
}
#endif

#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
/* One row (single-user scoring): four item tiles at a time give eight
 * independent FMA chains, so the loop runs at the speed of streaming the
 * packed table rather than at FMA latency. */
AVX512 static void k_logits1(const float *h, int d, const float *et, int ldt,
                             float *z)
{
    int j = 0;
    for (; j + 4 * NR <= ldt; j += 4 * NR) {
        __m512 acc[8];
        for (int v = 0; v < 8; v++)
            acc[v] = _mm512_setzero_ps();
        const float *b = et + (size_t)j * (size_t)d;
        for (int k = 0; k < d; k++) {
            __m512 a = _mm512_set1_ps(h[k]);
            for (int t = 0; t < 4; t++) {
                const float *bt = b + (size_t)t * NR * (size_t)d + (size_t)k * NR;
                acc[2 * t] = _mm512_fmadd_ps(a, _mm512_loadu_ps(bt), acc[2 * t]);
                acc[2 * t + 1] =
                    _mm512_fmadd_ps(a, _mm512_loadu_ps(bt + 16), acc[2 * t + 1]);
            }
        }
        for (int v = 0; v < 8; v++)
            _mm512_storeu_ps(z + j + 16 * v, acc[v]);
    }
    for (; j < ldt; j += NR) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        const float *b = et + (size_t)j * (size_t)d;
        for (int k = 0; k < d; k++) {
            __m512 a = _mm512_set1_ps(h[k]);
            a0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(b + (size_t)k * NR), a0);
            a1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(b + (size_t)k * NR + 16), a1);
        }
        _mm512_storeu_ps(z + j, a0);
        _mm512_storeu_ps(z + j + 16, a1);
    }
}
#endif

void iadsr__xent_logits1(const float *h, int d, const float *et, int ldt,
                         float *z)
{
#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
    k_logits1(h, d, et, ldt, z);
#else
    (void)h, (void)d, (void)et, (void)ldt, (void)z;
#endif
}

void iadsr__xent_logits(const float *h, int rows, int d, const float *et,
                        int ldt, float *z)
{
#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
    k_logits(h, rows, d, et, ldt, z, ldt, NULL);
#else
    (void)h, (void)rows, (void)d, (void)et, (void)ldt, (void)z;
#endif
}

/* One thread's share: rows [r0, r1). */
typedef struct {
    const iadsr__xent_args *a;
    int r0, r1;
    float *zbuf;  /* chunk x ldt */
    float *hpad;  /* chunk x d */
    int32_t *tpad;/* chunk */
    float *de1;   /* n x d private accumulator, or NULL */
    int32_t *seen;/* history penalty: n stamps (row + 1 that saw the item) */
    int32_t *hc;  /* history penalty: hist_cap distinct items of a row */
    float *hp;    /* ... and their p_c */
    int32_t *perm;/* fast path with gradient: chunk row order (fast_chunk) */
    float *ltmp;  /* ... its log-sum-exps in that order (chunk) */
    float *dtmp;  /* ... dH rows of the head's target rows (chunk x d) */
    float *lanes; /* ... each row's running maximum, 16 lanes ((chunk + MR) x 16) */
    float *rmax;  /* ... and the row's maximum (chunk + MR) */
    float *ascale;/* ... and its gradient factor scale / sum (chunk + MR) */
    double loss;
} part;

/* History penalty on rows [r0, r0 + c), whose logit rows zb (ld apart)
 * already hold scale * (p - q), q the (smoothed) target distribution, so
 * p_j = zb_j / scale + q_j. For the distinct history items c of a row
 * (target excluded) the loss gains w * -log(1 - p_c), whose gradient with
 * respect to the logits is sum_c a_c (e_c - p), a_c = w p_c / (1 - p_c).
 * perm (NULL = identity) maps logit row i to row r0 + perm[i].
 * Returns the added loss. */
static double history_penalty(part *pt, float *zb, int ld, int r0, int c,
                              const int32_t *perm)
{
    const iadsr__xent_args *a = pt->a;
    int n = a->n_items;
    float sc = a->scale, w = a->hist_weight;
    float qu = a->smooth / (float)n; /* q_j off the target */
    double loss = 0.0;
    for (int i = 0; i < c; i++) {
        int r = r0 + (perm ? perm[i] : i);
        int32_t t = a->targets[r];
        if (t <= 0 || t > n)
            continue;
        float *zr = zb + (size_t)i * (size_t)ld;
        int nc = 0;
        double S = 0.0;
        int q0 = a->hist_first[r];
        if (r - q0 + 1 > a->hist_cap)
            q0 = r - a->hist_cap + 1;
        for (int q = q0; q <= r; q++) {
            int32_t it = a->hist_items[q];
            if (it <= 0 || it > n || it == t || pt->seen[it - 1] == r + 1)
                continue;
            pt->seen[it - 1] = r + 1;
            float p = zr[it - 1] / sc + qu;
            /* p_c -> 1 would make the term infinite; the clamp keeps the
             * step finite where the model is confidently wrong */
            if (p > 0.999999f)
                p = 0.999999f;
            if (p < 0.0f)
                p = 0.0f;
            loss -= (double)w * log1p(-(double)p);
            S += (double)w * (double)p / (1.0 - (double)p);
            pt->hc[nc] = it;
            pt->hp[nc] = p;
            nc++;
        }
        if (nc == 0)
            continue;
        /* zr <- zr - S * scale * p, then + scale * a_c at each c */
        float Sf = (float)S;
        iadsr__affine(zr, (size_t)n, 1.0f - Sf, -Sf * sc * qu);
        zr[t - 1] -= Sf * sc * (1.0f - a->smooth);
        for (int u = 0; u < nc; u++) {
            float p = pt->hp[u];
            zr[pt->hc[u] - 1] += sc * w * p / (1.0f - p);
        }
    }
    return loss;
}

#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
/* One chunk of rows [r0, r0 + c) on the AVX-512 kernels. Every row's
 * logits are computed (the log-sum-exps serve rows without a target too),
 * but a row without a target has a zero gradient, so with the gradient the
 * two gradient products skip such rows (the detector's inserted items,
 * about one row in seven of a joint step). The result is bit for bit the
 * one of running them over every row: each row's logits and dH are
 * computed on their own by the same kernel as before (k_dh for the head,
 * rows [0, c4); the BLAS for the tail, the last c % 4 rows), and dE sums
 * the non-zero rows in their original order (a zero row adds exactly 0).
 * So the chunk is laid out as: the head's rows with a target (in order),
 * the tail, then the head's rows without one. */
static int has_target(int32_t t, int n) { return t > 0 && t <= n; }

static void fast_chunk(part *p, int r0, int c, int grad)
{
    const iadsr__xent_args *a = p->a;
    int d = a->d, n = a->n_items, ldt = a->ldt;
    int cp = (c + MR - 1) / MR * MR; /* k_logits takes MR rows at a time */
    int c4 = c / 4 * 4;
    const int32_t *tg = a->targets + r0;
    const float *hc = a->h + (size_t)r0 * (size_t)d;
    int m = 0; /* the head's rows with a target */
    for (int i = 0; i < c4; i++)
        m += has_target(tg[i], n);
    int permute = grad && m < c4;
    if (permute) {
        int q = 0;
        for (int i = 0; i < c4; i++)
            if (has_target(tg[i], n))
                p->perm[q++] = i;
        for (int i = c4; i < c; i++)
            p->perm[q++] = i;
        for (int i = 0; i < c4; i++)
            if (!has_target(tg[i], n))
                p->perm[q++] = i;
        for (int i = 0; i < c; i++) {
            memcpy(p->hpad + (size_t)i * (size_t)d,
                   hc + (size_t)p->perm[i] * (size_t)d, (size_t)d * sizeof(float));
            p->tpad[i] = tg[p->perm[i]];
        }
    } else {
        memcpy(p->hpad, hc, (size_t)c * (size_t)d * sizeof(float));
        memcpy(p->tpad, tg, (size_t)c * sizeof(int32_t));
    }
    /* pad to a multiple of MR rows (zero rows, no target) */
    memset(p->hpad + (size_t)c * (size_t)d, 0,
           (size_t)(cp - c) * (size_t)d * sizeof(float));
    for (int i = c; i < cp; i++)
        p->tpad[i] = 0;
    float *lse = a->lse ? (permute ? p->ltmp : a->lse + r0) : NULL;
    /* The gradient rows are finished (x scale / sum, the smoothing shift,
     * the target) inside k_dh, block by block while in L1, instead of in
     * a pass of their own over the chunk; the history penalty reads the
     * finished rows, so it keeps the pass. */
    int defer = grad && !(a->hist_weight > 0.0f);
    /* Logits and softmax SUB rows at a time: the exp pass then reads the
     * rows' logits from L2 (SUB x n floats) just after the kernel wrote
     * them, instead of the whole chunk from L3 (each value, maximum and
     * sum is the same: only the order of independent rows changes).
     * Rows without a target add no loss, so the sum is the same in either
     * row order. */
    double total = 0.0;
    for (int rs = 0; rs < cp; rs += SUB) {
        int rn = cp - rs < SUB ? cp - rs : SUB; /* a multiple of MR */
        k_logits(p->hpad + (size_t)rs * (size_t)d, rn, d, a->et, ldt,
                 p->zbuf + (size_t)rs * (size_t)ldt, n,
                 p->lanes + (size_t)rs * 16);
        /* the real rows among them (at least one: cp - c < MR) */
        int re = rs + rn < c ? rs + rn : c;
        lanes_max(p->lanes + (size_t)rs * 16, re - rs, p->rmax + rs);
        total = iadsr__xent_rows_lse_max_ld(
            p->zbuf + (size_t)rs * (size_t)ldt, re - rs, n, ldt, p->tpad + rs,
            a->scale, a->smooth, grad, lse ? lse + rs : NULL, p->rmax + rs,
            defer ? p->ascale + rs : NULL, total);
    }
    p->loss += total;
    if (permute && a->lse)
        for (int i = 0; i < c; i++)
            a->lse[r0 + p->perm[i]] = p->ltmp[i];
    if (!grad)
        return;
    if (a->hist_weight > 0.0f)
        p->loss += history_penalty(p, p->zbuf, ldt, r0, c,
                                   permute ? p->perm : NULL);
    /* the head's target rows (all of the head when nothing moved): k_dh
     * in groups of 4 and the last m % 4 one by one, into dH itself or,
     * when rows moved, into their gathered dH rows; padding columns of
     * zbuf are zero, as et's are */
    float *dhc = a->dh + (size_t)r0 * (size_t)d;
    float *dst = permute ? p->dtmp : dhc;
    int m4 = m / 4 * 4;
    finish fin = {p->ascale, p->tpad,
                  iadsr__xent_grad_shift(a->scale, a->smooth, n),
                  iadsr__xent_grad_target(a->scale, a->smooth)};
    /* the rows k_dh does not take (the last m - m4 target rows, the
     * tail's) are finished whole, before their products */
    if (defer)
        for (int i = m4; i < c; i++)
            if (has_target(p->tpad[i], n))
                iadsr__xent_row_finish(p->zbuf + (size_t)i * (size_t)ldt, n,
                                       p->tpad[i], p->ascale[i], a->scale,
                                       a->smooth);
    if (permute)
        for (int i = 0; i < m; i++)
            memcpy(p->dtmp + (size_t)i * (size_t)d,
                   dhc + (size_t)p->perm[i] * (size_t)d, (size_t)d * sizeof(float));
    /* dH and dE block by block of JBLOCK items: dE reads each block just
     * after dH's kernel has (finished and) read it, from L2 instead of a
     * second pass over the whole chunk from L3. dE covers the head's
     * target rows and the tail, in their order. */
    for (int jb = 0; jb < ldt; jb += JBLOCK) {
        int je = jb + JBLOCK < ldt ? jb + JBLOCK : ldt;
        if (m4 > 0 && jb < n)
            k_dh(p->zbuf, m4, ldt, a->e1, jb, je < n ? je : n, d, dst,
                 defer ? &fin : NULL);
        /* the last m - m4 target rows (only when rows moved: m == c4
         * otherwise) one by one, while the block is in L2: each row's
         * sums are those of any grouping */
        if (m4 < m && jb < n)
            k_dh_rows(p->zbuf, m4, m, ldt, a->e1, jb, je < n ? je : n, d, dst);
        k_de(p->zbuf, m + (c - c4), ldt, p->hpad, d, p->de1, jb, je);
    }
    if (permute)
        for (int i = 0; i < m; i++)
            memcpy(dhc + (size_t)p->perm[i] * (size_t)d,
                   p->dtmp + (size_t)i * (size_t)d, (size_t)d * sizeof(float));
    /* the tail, in place in dH, by the BLAS */
    if (c4 < c)
        iadsr__sgemm(0, 0, c - c4, d, n, 1.0f,
                     p->zbuf + (size_t)m * (size_t)ldt, ldt, a->e1, d, 1.0f,
                     dhc + (size_t)c4 * (size_t)d, d);
}
#endif

static void run_part(void *arg)
{
    part *p = arg;
    const iadsr__xent_args *a = p->a;
    int d = a->d, n = a->n_items, ldt = a->ldt, C = a->chunk;
    int grad = a->dh != NULL;
    p->loss = 0.0;
    for (int r0 = p->r0; r0 < p->r1; r0 += C) {
        int c = p->r1 - r0 < C ? p->r1 - r0 : C;
        const float *hc = a->h + (size_t)r0 * (size_t)d;
#if XENT_HAVE_AVX512_BUILD && !defined(IADSR_NO_AVX512)
        if (a->fast) {
            fast_chunk(p, r0, c, grad);
            continue;
        }
#endif
        iadsr__sgemm(0, 1, c, n, d, 1.0f, hc, d, a->e1, d, 0.0f, p->zbuf, ldt);
        p->loss += iadsr__xent_rows_lse_ld(p->zbuf, c, n, ldt, a->targets + r0,
                                           a->scale, a->smooth, grad,
                                           a->lse ? a->lse + r0 : NULL);
        if (grad && a->hist_weight > 0.0f)
            p->loss += history_penalty(p, p->zbuf, ldt, r0, c, NULL);
        if (grad) {
            iadsr__sgemm(0, 0, c, d, n, 1.0f, p->zbuf, ldt, a->e1, d, 1.0f,
                         a->dh + (size_t)r0 * (size_t)d, d);
            iadsr__sgemm(1, 0, n, d, c, 1.0f, p->zbuf, ldt, hc, d, 1.0f,
                         p->de1, d);
        }
    }
}

size_t iadsr__xent_scratch_floats(int chunk, int ldt, int d, int n_items,
                                  int hist_cap)
{
    /* per thread: zbuf + hpad + tpad + private dE (ldt >= n_items rows),
     * then for the history penalty n stamps and hist_cap items + p_c, then
     * the fast path's row order: perm, ltmp (chunk each), dtmp
     * (chunk x d), and its row maxima: lanes
     * ((chunk + MR) x 16), rmax and ascale (chunk + MR each) */
    size_t hist = hist_cap > 0 ? (size_t)n_items + 2 * (size_t)hist_cap : 0;
    size_t order = 2 * (size_t)chunk + (size_t)chunk * (size_t)d +
                   18 * ((size_t)chunk + MR);
    return (size_t)chunk * (size_t)ldt + (size_t)chunk * (size_t)d +
           (size_t)chunk + (size_t)ldt * (size_t)d + hist + order + 64;
}

double iadsr__xent(const iadsr__xent_args *a, float *scratch, int n_threads)
{
    part parts[IADSR__XENT_MAX_THREADS];
    memset(parts, 0, sizeof parts);
    int T = n_threads < 1 ? 1 : n_threads;
    if (T > IADSR__XENT_MAX_THREADS)
        T = IADSR__XENT_MAX_THREADS;
    if (T > a->n_rows)
        T = a->n_rows > 0 ? a->n_rows : 1;
    int hist_cap = a->hist_weight > 0.0f ? a->hist_cap : 0;
    size_t per = iadsr__xent_scratch_floats(a->chunk, a->ldt, a->d, a->n_items,
                                            hist_cap);
    size_t nde = (size_t)a->ldt * (size_t)a->d;
    for (int t = 0; t < T; t++) {
        float *s = scratch + per * (size_t)t;
        parts[t].a = a;
        parts[t].r0 = (int)((int64_t)a->n_rows * t / T);
        parts[t].r1 = (int)((int64_t)a->n_rows * (t + 1) / T);
        parts[t].zbuf = s;
        parts[t].hpad = s + (size_t)a->chunk * (size_t)a->ldt;
        parts[t].tpad = (int32_t *)(void *)(parts[t].hpad +
                                            (size_t)a->chunk * (size_t)a->d);
        parts[t].de1 = parts[t].hpad + (size_t)a->chunk * (size_t)a->d +
                       (size_t)a->chunk;
        if (a->de1)
            memset(parts[t].de1, 0, nde * sizeof(float));
        size_t hist = 0;
        if (hist_cap > 0) {
            parts[t].seen = (int32_t *)(void *)(parts[t].de1 + nde);
            parts[t].hc = parts[t].seen + a->n_items;
            parts[t].hp = (float *)(void *)(parts[t].hc + hist_cap);
            memset(parts[t].seen, 0, (size_t)a->n_items * sizeof(int32_t));
            hist = (size_t)a->n_items + 2 * (size_t)hist_cap;
        }
        float *o = parts[t].de1 + nde + hist;
        parts[t].perm = (int32_t *)(void *)o;
        parts[t].ltmp = o + a->chunk;
        parts[t].dtmp = o + 2 * (size_t)a->chunk;
        parts[t].lanes = parts[t].dtmp + (size_t)a->chunk * (size_t)a->d;
        parts[t].rmax = parts[t].lanes + 16 * ((size_t)a->chunk + MR);
        parts[t].ascale = parts[t].rmax + (size_t)a->chunk + MR;
    }
    iadsr__fork_join(T, run_part, parts, sizeof parts[0]);
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        loss += parts[t].loss;
        if (a->de1) {
            const float *src = parts[t].de1;
            if (a->fast) {
                add_packed(src, a->n_items, a->d, a->de1);
            } else {
                for (size_t i = 0; i < (size_t)a->n_items * (size_t)a->d; i++)
                    a->de1[i] += src[i];
            }
        }
    }
    return loss;
}
