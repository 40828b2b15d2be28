/* Top-K selection over next-item scores.
 *
 * iadsr__topk() selects from a score row already in memory. The fused scans
 * score the packed item table (iadsr__xent_transpose's tiles of 32 items)
 * and select in the same pass: a tile's scores stay in registers and are
 * compared with each user's current k-th best, so almost none of them is
 * ever stored, and the batch's n_users x n_items score matrix (12 MB for
 * 256 Beauty users) is never written and read back. Scores are computed in
 * the same order of fused multiply-adds as iadsr__xent_logits(), and
 * candidates enter the heap in increasing id order with the same strict
 * comparison, so the results are identical to scoring then selecting.
 *
 * The reduced scans read a half-size (fp16) or quarter-size (int8, one
 * scale per item: x~ = s_j q) copy of the table and prove which items
 * could be in the fp32 top k. With h in fp32 and x~ = fp16(x), for every
 * item j the approximate score s~_j (fp32 arithmetic over x~) and the fp32
 * path's score s_j satisfy
 *     |s~_j - s_j| <= B = ||h||_1 (max_err + 2 gamma_d max_abs) + tiny,
 * where max_err = max |x~ - x|, max_abs = max(|x|, |x~|) over the table,
 * gamma_d = d u / (1 - d u), u = 2^-24 (the rounding of a d-term chain of
 * fused multiply-adds, both paths), and tiny covers underflow. If t is the
 * k-th best approximate score, the k items achieving it have fp32 scores
 * >= t - B, so the fp32 k-th best is >= t - B and every item of the fp32
 * top k (ties included) has s~_j >= t - 2B. Those candidates are re-scored
 * exactly as the fp32 path scores them and selected in id order: the
 * answer is the fp32 answer, bit for bit. Items below t - 2B have fp32
 * scores strictly below the k-th best, so no tie is lost. For int8 the
 * approximate score is fl(fl-chain(h . q_j) * s_j): one more rounding,
 * covered by using 2 gamma_d + 2u in B (docs/PERFORMANCE.md).
 * SPDX-License-Identifier: MIT
 */
#include "score/scan.h"

#include "math/kernels.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(IADSR_NO_AVX512)
#include <immintrin.h>
#define SCAN_AVX512_BUILD 1
#define AVX512 __attribute__((target("avx512f")))
#else
#define SCAN_AVX512_BUILD 0
#endif

#define NR 32   /* items per packed tile */
#define MR 8    /* users per batch tile */
#define JB 2048 /* items per block of the batch scan (the block stays in L2) */
#define WB (JB / 64)

/* ---- the heap ------------------------------------------------------------- */

/* Min-heap of (score, id) in the caller's arrays; ties broken towards the
 * smaller id so results are deterministic. */
static int worse(float sa, int32_t ia, float sb, int32_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

static void swap_entry(float *s, int32_t *id, int a, int b)
{
    float ts = s[a];
    s[a] = s[b];
    s[b] = ts;
    int32_t ti = id[a];
    id[a] = id[b];
    id[b] = ti;
}

static void sift_down(float *s, int32_t *id, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(s[l], id[l], s[m], id[m]))
            m = l;
        if (r < n && worse(s[r], id[r], s[m], id[m]))
            m = r;
        if (m == i)
            return;
        swap_entry(s, id, i, m);
        i = m;
    }
}

static void heap_push(float *s, int32_t *id, int32_t *n, float v, int32_t j)
{
    int i = (*n)++;
    s[i] = v;
    id[i] = j;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!worse(s[i], id[i], s[p], id[p]))
            break;
        swap_entry(s, id, i, p);
        i = p;
    }
}

/* Item j (ids arrive in increasing order) with score v: while the heap is
 * not full every rankable score enters (-inf and NaN never rank); after
 * that only a score strictly above the worst, so a tie never displaces the
 * smaller id. Returns 1 when the kept set changed.
 *
 * For k <= SMALL_K the kept items are a sorted array instead (best first,
 * worst at k - 1), which is cheaper than the heap at these sizes. Both
 * keep the same set under the same rule, and both end in the same order. */
#define SMALL_K 32

static inline int offer(float *s, int32_t *id, int32_t *n, int32_t k, float v,
                        int32_t j)
{
    if (k <= SMALL_K) {
        int32_t pos;
        if (*n < k) {
            if (!(v > -INFINITY))
                return 0;
            pos = (*n)++;
        } else {
            if (!(v > s[k - 1]))
                return 0;
            pos = k - 1;
        }
        /* equal scores stay ahead: they have smaller ids */
        while (pos > 0 && s[pos - 1] < v) {
            s[pos] = s[pos - 1];
            id[pos] = id[pos - 1];
            pos--;
        }
        s[pos] = v;
        id[pos] = j;
        return 1;
    }
    if (*n < k) {
        if (!(v > -INFINITY))
            return 0;
        heap_push(s, id, n, v, j);
        return 1;
    }
    if (!(v > s[0]))
        return 0;
    s[0] = v;
    id[0] = j;
    sift_down(s, id, *n, 0);
    return 1;
}

/* The score an item must beat once n == k items are kept. */
static inline float worst_kept(const float *s, int32_t k)
{
    return k <= SMALL_K ? s[k - 1] : s[0];
}

/* Heap sort (best first), then -1 / -inf padding up to k. */
static void heap_finish(float *s, int32_t *id, int32_t n, int32_t k)
{
    for (int end = n - 1; end > 0 && k > SMALL_K; end--) {
        swap_entry(s, id, 0, end);
        sift_down(s, id, end, 0);
    }
    for (int32_t i = n; i < k; i++) {
        id[i] = -1;
        s[i] = -INFINITY;
    }
}

void iadsr__topk(const float *s0, int32_t n_items, int32_t k,
                 int32_t *ids_out, float *s_out)
{
    int32_t n = 0;
    int32_t j = 1;
    for (; j <= n_items && n < k; j++)
        offer(s_out, ids_out, &n, k, s0[j - 1], j);
    /* Then only items strictly above the heap's worst can enter. Blocks of
     * 16 are screened with one vectorised comparison; most blocks have no
     * candidate. */
    while (j <= n_items) {
        int32_t end = j + 16 <= n_items + 1 ? j + 16 : n_items + 1;
        if (end - j == 16 && !iadsr__any_greater16(s0 + (j - 1), worst_kept(s_out, k))) {
            j = end;
            continue;
        }
        for (; j < end; j++)
            offer(s_out, ids_out, &n, k, s0[j - 1], j);
    }
    heap_finish(s_out, ids_out, n, k);
}

/* ---- fused scans ----------------------------------------------------------- */

#if SCAN_AVX512_BUILD

int iadsr__scan_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}

/* Columns j .. j + 31 that are items (the last tile is zero padding). */
static uint32_t live_mask(int32_t n_items, int j)
{
    int32_t left = n_items - j;
    return left >= NR ? 0xffffffffu : (1u << left) - 1u;
}

/* Bits of columns j .. j + 31 in a column-indexed bitmap (j % 32 == 0). */
static uint32_t bits32(const uint64_t *bm, int j)
{
    return bm ? (uint32_t)(bm[j / 64] >> (j & 63)) : 0u;
}

/* Users r .. r + nr - 1 (nr <= MR) against columns [jb, je). bits holds
 * MR rows of WB words: the excluded columns of the block, relative to jb. */
AVX512 static void batch_tile(const iadsr__scan_batch *s, int r, int nr,
                              int jb, int je, const uint64_t *bits)
{
    const int d = s->d;
    const int32_t k = s->k;
    const float *hr = s->h + (size_t)r * (size_t)d;
    for (int j = jb; j < je; j += NR) {
        const float *b = s->et + (size_t)j * (size_t)d;
        __m512 acc[MR][2];
        for (int i = 0; i < MR; i++)
            acc[i][0] = acc[i][1] = _mm512_setzero_ps();
        for (int kk = 0; kk < d; kk++) {
            __m512 b0 = _mm512_loadu_ps(b + (size_t)kk * NR);
            __m512 b1 = _mm512_loadu_ps(b + (size_t)kk * NR + 16);
            for (int i = 0; i < MR; i++) {
                __m512 a = _mm512_set1_ps(hr[(size_t)i * (size_t)d + (size_t)kk]);
                acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
            }
        }
        uint32_t live = live_mask(s->n_items, j);
        for (int i = 0; i < MR; i++) {
            if (i >= nr)
                break;
            int u = r + i;
            float *keys = s->keys + (size_t)u * (size_t)k;
            int32_t *ids = s->ids + (size_t)u * (size_t)k;
            __m512 t = _mm512_set1_ps(s->fill[u] < k ? -INFINITY
                                                       : worst_kept(keys, k));
            uint32_t m =
                (uint32_t)_mm512_cmp_ps_mask(acc[i][0], t, _CMP_GT_OQ) |
                (uint32_t)_mm512_cmp_ps_mask(acc[i][1], t, _CMP_GT_OQ) << 16;
            m &= live & ~bits32(bits + (size_t)i * WB, j - jb);
            if (!m)
                continue;
            float v[NR];
            _mm512_storeu_ps(v, acc[i][0]);
            _mm512_storeu_ps(v + 16, acc[i][1]);
            while (m) {
                int l = __builtin_ctz(m);
                m &= m - 1;
                offer(keys, ids, &s->fill[u], k, v[l], j + l + 1);
            }
        }
    }
}

void iadsr__scan_topk_batch(const iadsr__scan_batch *s)
{
    uint64_t bits[MR * WB];
    for (int u = 0; u < s->n_users; u++)
        s->fill[u] = 0;
    for (int jb = 0; jb < s->ldt; jb += JB) {
        int je = jb + JB < s->ldt ? jb + JB : s->ldt;
        for (int r = 0; r < s->n_users; r += MR) {
            int nr = s->n_users - r < MR ? s->n_users - r : MR;
            memset(bits, 0, (size_t)nr * WB * sizeof(uint64_t));
            for (int i = 0; s->hist && i < nr; i++)
                for (int64_t p = s->hoff[r + i]; p < s->hoff[r + i + 1]; p++) {
                    int64_t col = (int64_t)s->hist[p] - 1 - jb;
                    if (s->hist[p] >= 1 && s->hist[p] <= s->n_items &&
                        col >= 0 && col < je - jb)
                        bits[(size_t)i * WB + (size_t)col / 64] |=
                            1ull << (col & 63);
                }
            batch_tile(s, r, nr, jb, je, bits);
        }
    }
    for (int u = 0; u < s->n_users; u++)
        heap_finish(s->keys + (size_t)u * (size_t)s->k,
                    s->ids + (size_t)u * (size_t)s->k, s->fill[u], s->k);
}

/* One user, four tiles per step so the loads of the table overlap. The
 * tail runs tile by tile; both orders of multiply-adds are the batch's. */
AVX512 void iadsr__scan_topk1(const float *h, int d, const float *et, int ldt,
                              int32_t n_items, int32_t k, const uint64_t *excl,
                              int32_t *ids, float *keys)
{
    int32_t n = 0;
    int j = 0;
    for (; j < ldt; j += NR) {
        int tiles = j + 4 * NR <= ldt ? 4 : 1;
        __m512 acc[8];
        for (int v = 0; v < 8; v++)
            acc[v] = _mm512_setzero_ps();
        const float *b = et + (size_t)j * (size_t)d;
        if (tiles == 4) {
            for (int kk = 0; kk < d; kk++) {
                __m512 a = _mm512_set1_ps(h[kk]);
                for (int t = 0; t < 4; t++) {
                    const float *bt = b + (size_t)t * NR * (size_t)d + (size_t)kk * NR;
                    acc[2 * t] = _mm512_fmadd_ps(a, _mm512_loadu_ps(bt), acc[2 * t]);
                    acc[2 * t + 1] =
                        _mm512_fmadd_ps(a, _mm512_loadu_ps(bt + 16), acc[2 * t + 1]);
                }
            }
        } else {
            for (int kk = 0; kk < d; kk++) {
                __m512 a = _mm512_set1_ps(h[kk]);
                acc[0] = _mm512_fmadd_ps(a, _mm512_loadu_ps(b + (size_t)kk * NR), acc[0]);
                acc[1] = _mm512_fmadd_ps(a, _mm512_loadu_ps(b + (size_t)kk * NR + 16), acc[1]);
            }
        }
        for (int t = 0; t < tiles; t++) {
            int jt = j + t * NR;
            __m512 thr = _mm512_set1_ps(n < k ? -INFINITY : worst_kept(keys, k));
            uint32_t m =
                (uint32_t)_mm512_cmp_ps_mask(acc[2 * t], thr, _CMP_GT_OQ) |
                (uint32_t)_mm512_cmp_ps_mask(acc[2 * t + 1], thr, _CMP_GT_OQ) << 16;
            m &= live_mask(n_items, jt) & ~bits32(excl, jt);
            if (!m)
                continue;
            float v[NR];
            _mm512_storeu_ps(v, acc[2 * t]);
            _mm512_storeu_ps(v + 16, acc[2 * t + 1]);
            while (m) {
                int l = __builtin_ctz(m);
                m &= m - 1;
                offer(keys, ids, &n, k, v[l], jt + l + 1);
            }
        }
        j += (tiles - 1) * NR;
    }
    heap_finish(keys, ids, n, k);
}

/* The reduced tables' bound inputs: running maxima of |x~ - x| and of
 * max(|x|, |x~|), in double (exact for these operands), then rounded up to
 * float (the bound may only grow). */
static void track(double x, double xt, double *err, double *big)
{
    double e = fabs(xt - x), a = fabs(x) > fabs(xt) ? fabs(x) : fabs(xt);
    if (e > *err)
        *err = e;
    if (a > *big)
        *big = a;
}

static float float_above(double x)
{
    float f = (float)x;
    if ((double)f < x)
        f = nextafterf(f, INFINITY);
    return f;
}

AVX512 int iadsr__table_f16(const float *et, int d, int ldt, uint16_t *t16,
                            float *max_err, float *max_abs)
{
    size_t n = (size_t)d * (size_t)ldt; /* a multiple of 16 (ldt % 32 == 0) */
    double err = 0.0, big = 0.0;
    for (size_t i = 0; i < n; i += 16) {
        __m512 x = _mm512_loadu_ps(et + i);
        __m256i hx = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256((__m256i *)(void *)(t16 + i), hx);
        float back[16];
        _mm512_storeu_ps(back, _mm512_cvtph_ps(hx));
        for (int l = 0; l < 16; l++) {
            float v = et[i + (size_t)l];
            if (!(fabsf(v) <= 65504.0f) || !isfinite(back[l]))
                return -1;
            track((double)v, (double)back[l], &err, &big);
        }
    }
    *max_err = float_above(err);
    *max_abs = float_above(big);
    return 0;
}

AVX512 int iadsr__table_i8(const float *et, int d, int ldt, int8_t *t8,
                           float *scale, float *max_err, float *max_abs)
{
    double err = 0.0, big = 0.0;
    for (int jt = 0; jt < ldt / NR; jt++) {
        const float *tile = et + (size_t)jt * NR * (size_t)d;
        int8_t *q8 = t8 + (size_t)jt * NR * (size_t)d;
        for (int jj = 0; jj < NR; jj++) {
            float mx = 0.0f;
            for (int kk = 0; kk < d; kk++) {
                float v = tile[(size_t)kk * NR + (size_t)jj];
                if (!isfinite(v))
                    return -1;
                if (fabsf(v) > mx)
                    mx = fabsf(v);
            }
            float sc = mx / 127.0f;
            scale[jt * NR + jj] = sc;
            for (int kk = 0; kk < d; kk++) {
                float v = tile[(size_t)kk * NR + (size_t)jj];
                long q = sc > 0.0f ? lrintf(v / sc) : 0;
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                q8[(size_t)kk * NR + (size_t)jj] = (int8_t)q;
                /* sc * q is exact in double */
                track((double)v, (double)sc * (double)q, &err, &big);
            }
        }
    }
    *max_err = float_above(err);
    *max_abs = float_above(big);
    return 0;
}

/* A float no greater than x (x finite or -inf). */
static float float_below(double x)
{
    float f = (float)x;
    if ((double)f > x)
        f = nextafterf(f, -INFINITY);
    return f;
}

/* The fp32 path's score of item id: the same chain of multiply-adds, in
 * the same order, as the packed kernels, over the row-major table (the same
 * values as the packed one, four cache lines per item). */
static float exact_score(const float *h, int d, const float *e1, int32_t id)
{
    const float *e = e1 + (size_t)(id - 1) * (size_t)d;
    float acc = 0.0f;
    for (int kk = 0; kk < d; kk++)
        acc = fmaf(h[kk], e[kk], acc);
    return acc;
}

AVX512 int iadsr__scan_topk1_q(const iadsr__scan_q *s)
{
    const int d = s->d, ldt = s->ldt;
    const int32_t k = s->k;
    double h1 = 0.0;
    for (int kk = 0; kk < d; kk++)
        h1 += fabs((double)s->h[kk]);
    /* int8: the chain over q, then one product by the item's scale (one
     * more rounding, 2u covers it with the fp32 path's chain); fp16 needs
     * less and gets the same */
    const double u = 0x1p-24, gamma = d * u / (1.0 - d * u);
    double bound = h1 * ((double)s->max_err + (2.0 * gamma + 2.0 * u) * (double)s->max_abs) +
                   (2.0 * d + 2.0) * 0x1p-149;
    bound *= 1.0 + 0x1p-40; /* the double arithmetic above, rounded up */
    /* the approximate scores must stay finite for the comparisons to hold */
    if (!isfinite(bound) || !(h1 * (double)s->max_abs * d < 1e37))
        return -1;
    int32_t n = 0, nc = 0;
    float lo = -INFINITY; /* candidates: approximate score >= lo */
    for (int j = 0; j < ldt; j += NR) {
        int tiles = j + 4 * NR <= ldt ? 4 : 1;
        __m512 acc[8];
        for (int v = 0; v < 8; v++)
            acc[v] = _mm512_setzero_ps();
        if (s->t16) {
            const uint16_t *b = s->t16 + (size_t)j * (size_t)d;
            for (int kk = 0; kk < d; kk++) {
                __m512 a = _mm512_set1_ps(s->h[kk]);
                for (int t = 0; t < tiles; t++) {
                    const uint16_t *bt = b + (size_t)t * NR * (size_t)d + (size_t)kk * NR;
                    __m512 b0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)bt));
                    __m512 b1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(bt + 16)));
                    acc[2 * t] = _mm512_fmadd_ps(a, b0, acc[2 * t]);
                    acc[2 * t + 1] = _mm512_fmadd_ps(a, b1, acc[2 * t + 1]);
                }
            }
        } else {
            const int8_t *b = s->t8 + (size_t)j * (size_t)d;
            for (int kk = 0; kk < d; kk++) {
                __m512 a = _mm512_set1_ps(s->h[kk]);
                for (int t = 0; t < tiles; t++) {
                    const int8_t *bt = b + (size_t)t * NR * (size_t)d + (size_t)kk * NR;
                    __m512 b0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                        _mm_loadu_si128((const __m128i *)(const void *)bt)));
                    __m512 b1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                        _mm_loadu_si128((const __m128i *)(const void *)(bt + 16))));
                    acc[2 * t] = _mm512_fmadd_ps(a, b0, acc[2 * t]);
                    acc[2 * t + 1] = _mm512_fmadd_ps(a, b1, acc[2 * t + 1]);
                }
            }
            for (int t = 0; t < tiles; t++) {
                const float *sc = s->scale + j + t * NR;
                acc[2 * t] = _mm512_mul_ps(acc[2 * t], _mm512_loadu_ps(sc));
                acc[2 * t + 1] = _mm512_mul_ps(acc[2 * t + 1], _mm512_loadu_ps(sc + 16));
            }
        }
        for (int t = 0; t < tiles; t++) {
            int jt = j + t * NR;
            __m512 vlo = _mm512_set1_ps(lo);
            uint32_t m =
                (uint32_t)_mm512_cmp_ps_mask(acc[2 * t], vlo, _CMP_GE_OQ) |
                (uint32_t)_mm512_cmp_ps_mask(acc[2 * t + 1], vlo, _CMP_GE_OQ) << 16;
            m &= live_mask(s->n_items, jt) & ~bits32(s->excl, jt);
            if (!m)
                continue;
            float v[NR];
            _mm512_storeu_ps(v, acc[2 * t]);
            _mm512_storeu_ps(v + 16, acc[2 * t + 1]);
            while (m) {
                int l = __builtin_ctz(m);
                m &= m - 1;
                if (!(v[l] >= lo))
                    continue; /* lo rose within this tile */
                s->cand_ids[nc] = jt + l + 1;
                s->cand_s[nc++] = v[l];
                if (offer(s->keys, s->ids, &n, k, v[l], jt + l + 1) && n == k)
                    lo = float_below((double)worst_kept(s->keys, k) - 2.0 * bound);
            }
        }
        j += (tiles - 1) * NR;
    }
    /* every item of the fp32 top k is among the candidates still >= lo;
     * re-score them as the fp32 path does and select in id order */
    n = 0;
    for (int32_t c = 0; c < nc; c++)
        if (s->cand_s[c] >= lo) {
            int32_t id = s->cand_ids[c];
            offer(s->keys, s->ids, &n, k, exact_score(s->h, d, s->e1, id), id);
        }
    heap_finish(s->keys, s->ids, n, k);
    return 0;
}

#else /* no AVX-512 build: the callers keep to iadsr__topk() */

int iadsr__scan_ok(void) { return 0; }

void iadsr__scan_topk_batch(const iadsr__scan_batch *s) { (void)s; }

void iadsr__scan_topk1(const float *h, int d, const float *et, int ldt,
                       int32_t n_items, int32_t k, const uint64_t *excl,
                       int32_t *ids, float *keys)
{
    (void)h, (void)d, (void)et, (void)ldt, (void)n_items, (void)k, (void)excl,
        (void)ids, (void)keys;
}

int iadsr__table_f16(const float *et, int d, int ldt, uint16_t *t16,
                     float *max_err, float *max_abs)
{
    (void)et, (void)d, (void)ldt, (void)t16, (void)max_err, (void)max_abs;
    return -1;
}

int iadsr__table_i8(const float *et, int d, int ldt, int8_t *t8, float *scale,
                    float *max_err, float *max_abs)
{
    (void)et, (void)d, (void)ldt, (void)t8, (void)scale, (void)max_err,
        (void)max_abs;
    return -1;
}

int iadsr__scan_topk1_q(const iadsr__scan_q *s)
{
    (void)s;
    return -1;
}

#endif
