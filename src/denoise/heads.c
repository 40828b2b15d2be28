/* libiadsr - IADSR Stage 2 on packed batches: noise scores, alignment and
 * reconstruction losses, and their backward pass (see heads.h).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/heads.h"
#include "math/kernels.h"
#include "common/error.h"
#include "math/blas.h"
#include "common/rng.h"

#include <math.h>
#include <string.h>

#define PROJ_CHUNK 128    /* semantic rows gathered per projection GEMM */

static float *falloc(size_t n)
{
    return iadsr__aligned_alloc(n ? n : 1, sizeof(float));
}

void iadsr__heads_ws_free(iadsr__heads_ws *w)
{
    float **f[] = {&w->xs,    &w->s,     &w->lsem,  &w->l,    &w->hbar,
                   &w->lexp,  &w->hexp,  &w->c1,    &w->c2,   &w->c3,
                   &w->score, &w->u,     &w->y,     &w->m,    &w->mh,
                   &w->res,   &w->tmp,   &w->ds,    &w->dl,   &w->dhbar,
                   &w->dlexp, &w->dhexp, &w->dc,    &w->dscore, &w->dm,
                   &w->nce.an, &w->nce.bn, &w->nce.bt, &w->nce.dan,
                   &w->nce.dbn, &w->nce.p,
                   &w->u2,    &w->hbar2, &w->hprev, &w->c4,   &w->c5,
                   &w->c6,    &w->c7,    &w->c8,    &w->c9,    &w->tsum,
                   &w->feat,  &w->zl,
                   &w->dlogit, &w->du};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        iadsr__aligned_free(*f[i]);
        *f[i] = NULL;
    }
    iadsr__free(w->arg);
    w->arg = NULL;
    iadsr__free(w->nxt);
    w->nxt = NULL;
}

int iadsr__heads_ws_alloc(iadsr__heads_ws *w, int max_rows, int max_seq,
                           int d, int D, int training)
{
    memset(w, 0, sizeof *w);
    w->max_rows = max_rows;
    w->max_seq = max_seq;
    size_t R = (size_t)max_rows, S = (size_t)max_seq, sd = (size_t)d;
    size_t nb = (size_t)(max_rows > max_seq ? max_rows : max_seq);
    if (nb > IADSR__NCE_BLOCK)
        nb = IADSR__NCE_BLOCK;
    size_t nc = nb < IADSR__NCE_CHUNK ? nb : IADSR__NCE_CHUNK;
    int ok = (w->xs = falloc((size_t)PROJ_CHUNK * (size_t)D)) &&
             (w->s = falloc(R * sd)) && (w->lsem = falloc(S * (size_t)D)) &&
             (w->l = falloc(S * sd)) && (w->hbar = falloc(S * sd)) &&
             (w->arg = iadsr__malloc((S * sd > 0 ? S * sd : 1) *
                                     sizeof(int32_t))) &&
             (w->lexp = falloc(R * sd)) && (w->hexp = falloc(R * sd)) &&
             (w->c1 = falloc(R)) && (w->c2 = falloc(R)) &&
             (w->c3 = falloc(R)) && (w->score = falloc(R)) &&
             (w->u2 = falloc(R * sd)) && (w->hbar2 = falloc(S * sd)) &&
             (w->hprev = falloc(R * sd)) && (w->c4 = falloc(R)) &&
             (w->c5 = falloc(R)) && (w->c6 = falloc(R)) &&
             (w->c7 = falloc(R)) && (w->c8 = falloc(R)) &&
             (w->c9 = falloc(R)) && (w->tsum = falloc((size_t)D)) &&
             (w->nxt = iadsr__malloc((R > 0 ? R : 1) * sizeof(int32_t))) &&
             (w->feat = falloc(R * IADSR__DET_FEATURES));
    if (ok && training)
        ok = (w->u = falloc(R)) && (w->y = falloc(R)) && (w->m = falloc(R)) &&
             (w->mh = falloc(R * sd)) && (w->res = falloc(R * sd)) &&
             (w->tmp = falloc(R * sd)) && (w->ds = falloc(R * sd)) &&
             (w->dl = falloc(S * sd)) && (w->dhbar = falloc(S * sd)) &&
             (w->dlexp = falloc(R * sd)) && (w->dhexp = falloc(R * sd)) &&
             (w->dc = falloc(R)) && (w->dscore = falloc(R)) &&
             (w->dm = falloc(R)) && (w->nce.an = falloc(nb * sd)) &&
             (w->nce.bn = falloc(nb * sd)) &&
             (w->nce.dan = falloc(nb * sd)) &&
             (w->nce.dbn = falloc(nb * sd)) &&
             (w->nce.bt = falloc(nb * sd)) && (w->nce.p = falloc(nc * nb)) &&
             (w->dlogit = falloc(R)) && (w->du = falloc(R * sd));
    if (!ok) {
        iadsr__heads_ws_free(w);
        return iadsr__err(IADSR_ERR_NOMEM, "stage 2: out of memory");
    }
    return IADSR_OK;
}

/* Rows of full-catalogue logits the context likelihood computes at once:
 * about 1 Mi floats, at least one row, at most 64. */
#define CTX_FLOATS (1 << 20)

int iadsr__heads_ws_ctx(iadsr__heads_ws *w, int n_items)
{
    if (n_items < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "stage 2: %d items",
                          n_items);
    int rows = CTX_FLOATS / n_items;
    rows = rows < 1 ? 1 : rows > 64 ? 64 : rows;
    iadsr__aligned_free(w->zl);
    w->zl = falloc((size_t)rows * (size_t)n_items);
    if (!w->zl) {
        w->zl_rows = w->zl_items = 0;
        return iadsr__err(IADSR_ERR_NOMEM, "stage 2: out of memory");
    }
    w->zl_rows = rows;
    w->zl_items = n_items;
    return IADSR_OK;
}

/* ---- projections of semantic rows ---------------------------------------- */

static void gather(const iadsr_semantic *sem, const int32_t *items, int n,
                   int D, float *xs)
{
    for (int i = 0; i < n; i++)
        memcpy(xs + (size_t)i * (size_t)D, iadsr__semantic_row(sem, items[i]),
               (size_t)D * sizeof(float));
}

/* out (n x d) = S[items] W */
static void proj_fwd(const iadsr__heads *st, float *xs, const int32_t *items,
                     int n, const float *W, float *out)
{
    for (int r = 0; r < n; r += PROJ_CHUNK) {
        int k = n - r < PROJ_CHUNK ? n - r : PROJ_CHUNK;
        gather(st->sem, items + r, k, st->D, xs);
        iadsr__sgemm(0, 0, k, st->d, st->D, 1.0f, xs, st->D, W, st->d, 0.0f,
                     out + (size_t)r * (size_t)st->d, st->d);
    }
}

/* dW += S[items]^T dout */
static void proj_bwd(const iadsr__heads *st, float *xs, const int32_t *items,
                     int n, const float *dout, float *dW)
{
    for (int r = 0; r < n; r += PROJ_CHUNK) {
        int k = n - r < PROJ_CHUNK ? n - r : PROJ_CHUNK;
        gather(st->sem, items + r, k, st->D, xs);
        iadsr__sgemm(1, 0, st->D, st->d, k, 1.0f, xs, st->D,
                     dout + (size_t)r * (size_t)st->d, st->d, 1.0f, dW,
                     st->d);
    }
}

/* ---- scores ---------------------------------------------------------------- */

/* The long-term semantic inputs of every sequence into w->lsem (the mean
 * of its item rows, or the host's user vector). */
static void long_term_inputs(const iadsr__heads *st, iadsr__heads_ws *w,
                             const iadsr__batch *b, const float *const *uvec)
{
    int D = st->D;
    const int32_t *off = b->row_off;
    for (int q = 0; q < b->n_seq; q++) {
        float *ls = w->lsem + (size_t)q * (size_t)D;
        if (uvec && uvec[q]) {
            memcpy(ls, uvec[q], (size_t)D * sizeof(float));
            continue;
        }
        memset(ls, 0, (size_t)D * sizeof(float));
        int n = off[q + 1] - off[q];
        for (int r = off[q]; r < off[q + 1]; r++) {
            const float *x = iadsr__semantic_row(st->sem, b->items[r]);
            for (int c = 0; c < D; c++)
                ls[c] += x[c];
        }
        if (n > 0)
            for (int c = 0; c < D; c++)
                ls[c] /= (float)n;
    }
}

void iadsr__heads_scores(const iadsr__heads *st, iadsr__heads_ws *w,
                          const float *h, const iadsr__batch *b,
                          const float *const *uvec, float *score)
{
    int d = st->d, D = st->D, R = b->n_rows, S = b->n_seq;
    const int32_t *off = b->row_off;
    iadsr__maxpool_fwd_f32(h, d, off, S, w->hbar, w->arg);
    iadsr__seq_expand_f32(w->hbar, d, off, S, w->hexp);
    if (st->flags & IADSR_DENOISE_F_COLLAB_ONLY) {
        iadsr__cos_rows_fwd_f32(w->hexp, h, R, d, w->c1);
        for (int r = 0; r < R; r++)
            score[r] = 3.0f * w->c1[r];
        return;
    }
    proj_fwd(st, w->xs, b->items, R, st->w1, w->s);
    long_term_inputs(st, w, b, uvec);
    if (S > 0)
        iadsr__sgemm(0, 0, S, d, D, 1.0f, w->lsem, D, st->w2, d, 0.0f, w->l,
                     d);
    iadsr__seq_expand_f32(w->l, d, off, S, w->lexp);
    /* cos(l, h), cos(hbar, s), cos(h, s) */
    const float *v[4] = {w->lexp, h, w->hexp, w->s};
    static const int pa[3] = {0, 2, 1}, pb[3] = {1, 3, 3};
    float *const c[3] = {w->c1, w->c2, w->c3};
    iadsr__cos_pairs_fwd_f32(v, 4, pa, pb, 3, R, d, c);
    for (int r = 0; r < R; r++)
        score[r] = w->c1[r] + w->c2[r] + w->c3[r];
}

/* ---- the detector ------------------------------------------------------------ */

/* The cosine features (1)-(6) as pairs of {l_-t, h, hbar_-t, s, h_{t-1}}:
 * (l_-t, h), (hbar_-t, s), (h, s), (h_{t-1}, s), (l_-t, s), (hbar_-t, h). */
static const int det_pa[6] = {0, 2, 1, 4, 0, 2};
static const int det_pb[6] = {1, 3, 3, 3, 3, 1};

/* Leave-one-out views of every row into w->lexp (semantic, l without
 * item t) and w->hexp (max-pool of the other rows), and h_{t-1} into
 * w->hprev. A view with nothing left is zero (its cosine is 0). */
static void loo_views(const iadsr__heads *st, iadsr__heads_ws *w,
                      const float *h, const iadsr__batch *b,
                      const float *const *uvec, int collab)
{
    int d = st->d;
    size_t sd = (size_t)d;
    const int32_t *off = b->row_off;
    iadsr__maxpool_fwd_f32(h, d, off, b->n_seq, w->hbar, w->arg);
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = off[q], r1 = off[q + 1], n = r1 - r0;
        const float *hb = w->hbar + (size_t)q * sd;
        const int32_t *ag = w->arg + (size_t)q * sd;
        float *h2 = w->hbar2 + (size_t)q * sd;
        /* the runner-up of each dimension: the max without its argmax
         * (row by row, so the inner loop over dimensions vectorises; each
         * dimension still sees its rows in order) */
        for (int c = 0; c < d; c++)
            h2[c] = -HUGE_VALF;
        for (int r = r0; r < r1; r++) {
            const float *hr = h + (size_t)r * sd;
            for (int c = 0; c < d; c++)
                h2[c] = r != ag[c] && hr[c] > h2[c] ? hr[c] : h2[c];
        }
        for (int r = r0; r < r1; r++) {
            float *he = w->hexp + (size_t)r * sd;
            float *hp = w->hprev + (size_t)r * sd;
            for (int c = 0; c < d; c++)
                he[c] = n < 2 ? 0.0f : (ag[c] == r ? h2[c] : hb[c]);
            if (r == r0)
                memset(hp, 0, sd * sizeof(float));
            else
                memcpy(hp, h + (size_t)(r - 1) * sd, sd * sizeof(float));
            if (collab)
                continue;
            float *le = w->lexp + (size_t)r * sd;
            const float *l = w->l + (size_t)q * sd;
            const float *u = w->u2 + (size_t)r * sd;
            if (uvec && uvec[q]) {
                memcpy(le, l, sd * sizeof(float));
            } else if (n < 2) {
                memset(le, 0, sd * sizeof(float));
            } else {
                /* W2 of the mean without x_t: (n l - W2 S[x_t]) / (n - 1) */
                float a = (float)n / (float)(n - 1), k = 1.0f / (float)(n - 1);
                for (int c = 0; c < d; c++)
                    le[c] = a * l[c] - k * u[c];
            }
        }
    }
}

/* Features (7) and (8): lp7[t] = log p(x_t | h_{t-1}) under the
 * backbone's full-catalogue softmax, and lp8[t] = log p(x_{t+1} | h_t) -
 * log p(x_{t+1} | h_{t-1}), what seeing x_t adds to predicting the next
 * item (both read off the one row of logits of h_{t-1}); 0 where
 * undefined (lp7 on a sequence's first row, lp8 on its first and last).
 * A few rows of logits at a time. */
static void context_likelihood(const iadsr__heads *st, iadsr__heads_ws *w,
                               const iadsr__batch *b, float *lp7, float *lp8)
{
    int d = st->d, R = b->n_rows, n = st->n_items;
    size_t sd = (size_t)d;
    memset(lp7, 0, (size_t)R * sizeof(float));
    memset(lp8, 0, (size_t)R * sizeof(float));
    if (!st->e1 || n < 1 || (!st->lse && (!w->zl || w->zl_items != n)))
        return;
    /* per row, the next item of its sequence (0 on a last row) */
    for (int q = 0; q < b->n_seq; q++)
        for (int r = b->row_off[q]; r < b->row_off[q + 1]; r++)
            w->nxt[r] = r + 1 < b->row_off[q + 1] ? b->items[r + 1] : 0;
    if (st->lse) {
        /* the log-sum-exp of h_{t-1} is given: two dot products a row */
        for (int q = 0; q < b->n_seq; q++)
            for (int r = b->row_off[q] + 1; r < b->row_off[q + 1]; r++) {
                const float *hp = w->hprev + (size_t)r * sd;
                const float *et = st->e1 + (size_t)(b->items[r] - 1) * sd;
                float zt = 0, zn = 0;
                for (int c = 0; c < d; c++)
                    zt += hp[c] * et[c];
                lp7[r] = zt - st->lse[r - 1];
                if (w->nxt[r] > 0) {
                    const float *en = st->e1 + (size_t)(w->nxt[r] - 1) * sd;
                    for (int c = 0; c < d; c++)
                        zn += hp[c] * en[c];
                    lp8[r] = zn - st->lse[r - 1];
                }
            }
    }
    /* otherwise from the rows' own logits */
    int step = w->zl_rows;
    for (int r0 = 0; r0 < R && !st->lse; r0 += step) {
        int k = R - r0 < step ? R - r0 : step;
        /* zl = hprev[r0..r0+k) E1^T; first rows have hprev = 0: harmless */
        iadsr__sgemm(0, 1, k, n, d, 1.0f, w->hprev + (size_t)r0 * (size_t)d,
                     d, st->e1, d, 0.0f, w->zl, n);
        /* -log p of each row's item: the scoring kernels' vectorised
         * softmax cross-entropy, one row at a time; the log-sum-exp is the
         * item's logit plus that loss */
        for (int i = 0; i < k; i++) {
            const float *z = w->zl + (size_t)i * (size_t)n;
            int32_t it = b->items[r0 + i], nx = w->nxt[r0 + i];
            float zt = z[it - 1], zn = nx > 0 ? z[nx - 1] : 0.0f;
            float loss = (float)iadsr__xent_rows(w->zl + (size_t)i * (size_t)n,
                                                 1, n, &it, 1.0f, 0.0f, 0);
            lp7[r0 + i] = -loss;
            /* for now log p(x_{t+1} | h_{t-1}); lp7[t+1] is added below */
            lp8[r0 + i] = nx > 0 ? zn - (zt + loss) : 0.0f;
        }
    }
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], r1 = b->row_off[q + 1];
        if (r0 == r1)
            continue;
        lp7[r0] = 0.0f;
        lp8[r0] = 0.0f;
        for (int r = r0 + 1; r < r1 - 1; r++)
            lp8[r] = lp7[r + 1] - lp8[r];
        lp8[r1 - 1] = 0.0f;
    }
}

/* Feature (9), IADSR_DENOISE_F_TEXT: how well each row's item fits its
 * sequence in the semantic space itself (no projection to learn, so
 * nothing the backbone fitted can hide it): the cosine of its row with the
 * mean of the sequence's other rows, every row normalised first (no item
 * weighs more for a longer vector), or with the host's user vector. 0
 * where nothing is left to compare (one row, zero rows). Each row's norm
 * once (kept in c9 until its cosine replaces it), one D-wide sum a
 * sequence and one dot product a row. */
static void text_consistency(const iadsr__heads *st, iadsr__heads_ws *w,
                             const iadsr__batch *b, const float *const *uvec,
                             float *c9)
{
    int D = st->D;
    float *sum = w->tsum;
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], r1 = b->row_off[q + 1];
        const float *u = uvec ? uvec[q] : NULL;
        double ss = 0;
        for (int r = r0; r < r1; r++) { /* 1 / |x|, 0 for a zero row */
            const float *x = iadsr__semantic_row(st->sem, b->items[r]);
            double n2 = 0;
            for (int c = 0; c < D; c++)
                n2 += (double)x[c] * (double)x[c];
            c9[r] = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        }
        if (u) {
            memcpy(sum, u, (size_t)D * sizeof(float));
        } else {
            memset(sum, 0, (size_t)D * sizeof(float));
            for (int r = r0; r < r1; r++) {
                const float *x = iadsr__semantic_row(st->sem, b->items[r]);
                for (int c = 0; c < D; c++)
                    sum[c] += c9[r] * x[c];
            }
        }
        for (int c = 0; c < D; c++)
            ss += (double)sum[c] * (double)sum[c];
        for (int r = r0; r < r1; r++) {
            const float *x = iadsr__semantic_row(st->sem, b->items[r]);
            double inv = (double)c9[r], a = 0;
            c9[r] = 0.0f;
            if (inv == 0)
                continue;
            for (int c = 0; c < D; c++)
                a += (double)x[c] * (double)sum[c];
            a *= inv; /* <x / |x|, sum> */
            /* the rest: sum itself for a user vector, else sum - x / |x| */
            double dot = u ? a : a - 1.0, rr = u ? ss : ss - 2.0 * a + 1.0;
            if (rr > 1e-12 * (ss > 1.0 ? ss : 1.0))
                c9[r] = (float)(dot / sqrt(rr));
        }
    }
}

/* The rows [a, e) of a sequence [r0, r1) where feature k has a value:
 * the context features (4), (7) none on the first row, (8) none on the
 * first or the last. */
static void feature_rows(int k, int r0, int r1, int *a, int *e)
{
    *a = k == 3 || k == 6 || k == 7 ? r0 + 1 : r0;
    *e = k == 7 ? r1 - 1 : r1;
    if (*e < *a)
        *e = *a;
}

void iadsr__heads_detect(const iadsr__heads *st, iadsr__heads_ws *w,
                         const float *h, const iadsr__batch *b,
                         const float *const *uvec, const float *det,
                         float *logit)
{
    int d = st->d, R = b->n_rows, S = b->n_seq;
    int collab = (st->flags & IADSR_DENOISE_F_COLLAB_ONLY) != 0;
    const int32_t *off = b->row_off;
    const int K = IADSR__DET_FEATURES;
    if (!collab && (st->flags & IADSR_DENOISE_F_TEXT))
        text_consistency(st, w, b, uvec, w->c9);
    else
        memset(w->c9, 0, (size_t)R * sizeof(float));
    if (!collab) {
        proj_fwd(st, w->xs, b->items, R, st->w1, w->s);
        proj_fwd(st, w->xs, b->items, R, st->w2, w->u2);
        long_term_inputs(st, w, b, uvec);
        if (S > 0)
            iadsr__sgemm(0, 0, S, d, st->D, 1.0f, w->lsem, st->D, st->w2, d,
                         0.0f, w->l, d);
    }
    loo_views(st, w, h, b, uvec, collab);
    if (collab) {
        /* (1) cos(hbar_-t, h), (4) cos(h_{t-1}, h) */
        const float *v[3] = {w->hexp, h, w->hprev};
        static const int pa[2] = {0, 2}, pb[2] = {1, 1};
        float *const c[2] = {w->c1, w->c4};
        iadsr__cos_pairs_fwd_f32(v, 3, pa, pb, 2, R, d, c);
        memset(w->c2, 0, (size_t)R * sizeof(float));
        memset(w->c3, 0, (size_t)R * sizeof(float));
        memset(w->c5, 0, (size_t)R * sizeof(float));
        memset(w->c6, 0, (size_t)R * sizeof(float));
    } else {
        /* features (1)-(6) over l_-t, h, hbar_-t, s, h_{t-1} */
        const float *v[5] = {w->lexp, h, w->hexp, w->s, w->hprev};
        float *const c[6] = {w->c1, w->c2, w->c3, w->c4, w->c5, w->c6};
        iadsr__cos_pairs_fwd_f32(v, 5, det_pa, det_pb, 6, R, d, c);
    }
    context_likelihood(st, w, b, w->c7, w->c8);
    const float *c[IADSR__DET_FEATURES] = {w->c1, w->c2, w->c3,
                                           w->c4, w->c5, w->c6,
                                           w->c7, w->c8, w->c9};
    for (int q = 0; q < S; q++) {
        int r0 = off[q], r1 = off[q + 1];
        for (int k = 0; k < K; k++) {
            int a, e;
            feature_rows(k, r0, r1, &a, &e);
            double m = 0;
            for (int r = a; r < e; r++)
                m += (double)c[k][r];
            float mean = e > a ? (float)(m / (double)(e - a)) : 0.0f;
            for (int r = r0; r < r1; r++)
                w->feat[(size_t)r * K + (size_t)k] =
                    r < a || r >= e ? 0.0f : c[k][r] - mean;
        }
        for (int r = r0; r < r1; r++) {
            float z = det[IADSR__DET_BIAS];
            for (int k = 0; k < K; k++)
                z += det[iadsr__det_w(k)] * w->feat[(size_t)r * K + (size_t)k];
            logit[r] = z;
        }
    }
}

double iadsr__heads_detect_loss(const float *logit, const float *noise,
                                int n_rows, int batch_rows, float *dlogit)
{
    double loss = 0, wt = 1.0 / (double)batch_rows;
    for (int r = 0; r < n_rows; r++) {
        /* logistic loss of keep = 1 - noise: softplus(z) - keep z */
        double z = (double)logit[r], keep = 1.0 - (double)noise[r];
        double sp = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
        loss += wt * (sp - keep * z);
        double p = 1.0 / (1.0 + exp(-z));
        dlogit[r] = (float)(wt * (p - keep));
    }
    return loss;
}

double iadsr__heads_detect_train(const iadsr__heads *st, iadsr__heads_ws *w,
                                 const float *h, const iadsr__batch *b,
                                 const float *const *uvec, const float *det,
                                 const float *noise, int batch_rows,
                                 float *ddet, float *dw1, float *dw2)
{
    if (b->n_rows == 0)
        return 0.0;
    iadsr__heads_detect(st, w, h, b, uvec, det, w->score);
    double loss = iadsr__heads_detect_loss(w->score, noise, b->n_rows,
                                           batch_rows, w->dlogit);
    iadsr__heads_detect_backward(st, w, h, b, uvec, det, ddet, dw1, dw2);
    return loss;
}

void iadsr__heads_detect_backward(const iadsr__heads *st, iadsr__heads_ws *w,
                                  const float *h, const iadsr__batch *b,
                                  const float *const *uvec, const float *det,
                                  float *ddet, float *dw1, float *dw2)
{
    int d = st->d, R = b->n_rows, S = b->n_seq;
    int collab = (st->flags & IADSR_DENOISE_F_COLLAB_ONLY) != 0;
    const int32_t *off = b->row_off;
    const int K = IADSR__DET_FEATURES;
    size_t sd = (size_t)d;
    if (R == 0)
        return;
    /* the weights, then the features (centring is linear: subtract the
     * mean of the feature gradients over the same rows) */
    float *dc[IADSR__DET_FEATURES] = {w->c1, w->c2, w->c3, w->c4, w->c5,
                                      w->c6, w->c7, w->c8, w->c9};
    for (int q = 0; q < S; q++) {
        int r0 = off[q], r1 = off[q + 1];
        for (int r = r0; r < r1; r++) {
            for (int k = 0; k < K; k++)
                ddet[iadsr__det_w(k)] +=
                    w->dlogit[r] * w->feat[(size_t)r * K + (size_t)k];
            ddet[IADSR__DET_BIAS] += w->dlogit[r];
        }
        for (int k = 0; k < K; k++) {
            int a, e;
            feature_rows(k, r0, r1, &a, &e);
            double m = 0;
            for (int r = a; r < e; r++)
                m += (double)w->dlogit[r];
            float mean = e > a ? (float)(m / (double)(e - a)) : 0.0f;
            for (int r = r0; r < r1; r++)
                dc[k][r] = r < a || r >= e
                               ? 0.0f
                               : det[iadsr__det_w(k)] * (w->dlogit[r] - mean);
        }
    }
    if (collab)
        return; /* the features are the backbone's alone */
    memset(w->ds, 0, (size_t)R * sd * sizeof(float));
    memset(w->dlexp, 0, (size_t)R * sd * sizeof(float));
    {
        /* (1)-(5) into l_-t and s */
        const float *v[5] = {w->lexp, h, w->hexp, w->s, w->hprev};
        const float *const dcs[5] = {w->c1, w->c2, w->c3, w->c4, w->c5};
        float *const dv[5] = {w->dlexp, NULL, NULL, w->ds, NULL};
        iadsr__cos_pairs_bwd_f32(v, 5, det_pa, det_pb, 5, R, d, dcs, dv);
    }
    /* (6) compares backbone states only, (7) and (8) are the backbone's
     * own predictions: nothing to train through them */
    if (dw1)
        proj_bwd(st, w->xs, b->items, R, w->ds, dw1);
    if (!dw2)
        return;
    /* l_{-t} = a l - k u_t: dl gets a dl_{-t}, du_t = -k dl_{-t} */
    memset(w->dl, 0, (size_t)S * sd * sizeof(float));
    memset(w->du, 0, (size_t)R * sd * sizeof(float));
    for (int q = 0; q < S; q++) {
        int r0 = off[q], r1 = off[q + 1], n = r1 - r0;
        float *dl = w->dl + (size_t)q * sd;
        int as_is = uvec && uvec[q];
        if (!as_is && n < 2)
            continue;
        float a = as_is ? 1.0f : (float)n / (float)(n - 1);
        float k = as_is ? 0.0f : 1.0f / (float)(n - 1);
        for (int r = r0; r < r1; r++) {
            const float *g = w->dlexp + (size_t)r * sd;
            float *du = w->du + (size_t)r * sd;
            for (int c = 0; c < d; c++) {
                dl[c] += a * g[c];
                du[c] = -k * g[c];
            }
        }
    }
    if (S > 0)
        iadsr__sgemm(1, 0, st->D, d, S, 1.0f, w->lsem, st->D, w->dl, d, 1.0f,
                     dw2, d);
    proj_bwd(st, w->xs, b->items, R, w->du, dw2);
}

/* ---- InfoNCE through GEMMs ------------------------------------------------- */

/* an = a / |a| row-wise (zero rows stay zero) */
static void normalise(const float *a, int n, int d, float *an)
{
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * (size_t)d;
        float *o = an + (size_t)i * (size_t)d;
        double ss = 0;
        for (int c = 0; c < d; c++)
            ss += (double)ai[c] * (double)ai[c];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int c = 0; c < d; c++)
            o[c] = ai[c] * inv;
    }
}

/* da_i += (dan_i - an_i <an_i, dan_i>) / |a_i| */
static void unnormalise_bwd(const float *a, const float *an, const float *dan,
                            int n, int d, float *da)
{
    for (int i = 0; i < n; i++) {
        const float *ai = a + (size_t)i * (size_t)d;
        const float *ui = an + (size_t)i * (size_t)d;
        const float *gi = dan + (size_t)i * (size_t)d;
        double ss = 0, dot = 0;
        for (int c = 0; c < d; c++) {
            ss += (double)ai[c] * (double)ai[c];
            dot += (double)ui[c] * (double)gi[c];
        }
        if (!(ss > 0))
            continue; /* cosine defined as 0: no gradient */
        float inv = (float)(1.0 / sqrt(ss)), dt = (float)dot;
        float *o = da + (size_t)i * (size_t)d;
        for (int c = 0; c < d; c++)
            o[c] += inv * (gi[c] - ui[c] * dt);
    }
}

/* One side's gradient from its product G with the other side's normalised
 * rows yn: g = k (G - yn), then back through x's normalisation into dx. */
static void nce_side_bwd(const float *x, const float *xn, const float *yn,
                         float k, int n, int d, float *g, float *dx)
{
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++)
        g[i] = k * (g[i] - yn[i]);
    unnormalise_bwd(x, xn, g, n, d, dx);
}

float iadsr__infonce_gemm(const float *a, const float *b, int n, int d,
                          float tau, const int32_t *keys, float dloss,
                          const iadsr__nce_scratch *s, float *da, float *db)
{
    if (n <= 0)
        return 0.0f;
    float *an = s->an, *bn = s->bn, *bt = s->bt, *pc = s->p;
    float *dan = s->dan, *dbn = s->dbn;
    normalise(a, n, d, an);
    normalise(b, n, d, bn);
    /* Z = an bn^T / tau as an untransposed product with unit alpha, the
     * shape the AVX-512 tiles serve (OpenBLAS's generic kernels on this
     * CPU are several times slower) */
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++)
            bt[(size_t)c * (size_t)n + (size_t)i] =
                bn[(size_t)i * (size_t)d + (size_t)c];
    float itau = 1.0f / tau;
    /* G = (P - I) dloss / (n tau); the products take P with unit alpha
     * and are scaled afterwards */
    float k = dloss / ((float)n * tau);
    double total = 0;
    /* IADSR__NCE_CHUNK rows of Z at a time, forward and backward, while they
     * are in L2: the n x n matrix never exists. Every element is computed
     * as in one pass over the block: the rows of Z, P and P bn are
     * independent, and P^T an sums the chunks in row order into the same
     * float accumulators (the tiles store and reload them unchanged). */
    for (int i0 = 0; i0 < n; i0 += IADSR__NCE_CHUNK) {
        int kc = n - i0 < IADSR__NCE_CHUNK ? n - i0 : IADSR__NCE_CHUNK;
        const float *ac = an + (size_t)i0 * (size_t)d;
        iadsr__sgemm(0, 0, kc, n, d, 1.0f, ac, d, bt, n, 0.0f, pc, n);
        if (keys)
            /* the same item as the positive is no negative: a logit far
             * below any cosine / tau leaves it a probability below 1e-37
             * (a select over the whole row, which vectorises, then the
             * positive's logit put back) */
            for (int i = 0; i < kc; i++) {
                float *pi = pc + (size_t)i * (size_t)n;
                int32_t ki = keys[i0 + i];
                float pos = pi[i0 + i] * itau;
                for (int j = 0; j < n; j++)
                    pi[j] = keys[j] == ki ? -1e30f : pi[j] * itau;
                pi[i0 + i] = pos;
            }
        else
            for (size_t i = 0; i < (size_t)kc * (size_t)n; i++)
                pc[i] *= itau;
        /* the vectorised softmax cross-entropy of the scoring kernels with
         * targets on the diagonal: rows become softmax - onehot, and
         * adding the identity back leaves the probabilities */
        int32_t tgt[IADSR__NCE_CHUNK];
        for (int i = 0; i < kc; i++)
            tgt[i] = i0 + i + 1;
        total += iadsr__xent_rows(pc, kc, n, tgt, 1.0f, 0.0f, 1);
        for (int i = 0; i < kc; i++)
            pc[(size_t)i * (size_t)n + (size_t)(i0 + i)] += 1.0f;
        if (da) /* rows of P bn */
            iadsr__sgemm(0, 0, kc, d, n, 1.0f, pc, n, bn, d, 0.0f,
                         dan + (size_t)i0 * (size_t)d, d);
        if (db) /* P^T an, summed over the chunks in order */
            iadsr__sgemm(1, 0, n, d, kc, 1.0f, pc, n, ac, d,
                         i0 > 0 ? 1.0f : 0.0f, dbn, d);
    }
    if (da) /* dan = k (P bn - bn) */
        nce_side_bwd(a, an, bn, k, n, d, dan, da);
    if (db) /* dbn = k (P^T an - an) */
        nce_side_bwd(b, bn, an, k, n, d, dbn, db);
    return (float)(total / (double)n);
}

/* Blocked InfoNCE over n rows with weight wt per row (loss of a block is
 * its mean, weighted by its row count times wt). */
static double nce_blocked(iadsr__heads_ws *w, const float *a, const float *b,
                          const int32_t *keys, int n, int d, float tau,
                          double wt, float *da, float *db)
{
    double total = 0;
    for (int r0 = 0; r0 < n; r0 += IADSR__NCE_BLOCK) {
        int k = n - r0 < IADSR__NCE_BLOCK ? n - r0 : IADSR__NCE_BLOCK;
        size_t o = (size_t)r0 * (size_t)d;
        double scale = wt * (double)k;
        float loss = iadsr__infonce_gemm(a + o, b + o, k, d, tau,
                                         keys ? keys + r0 : NULL,
                                         (float)scale, &w->nce,
                                         da ? da + o : NULL,
                                         db ? db + o : NULL);
        total += scale * (double)loss;
    }
    return total;
}

/* ---- training ----------------------------------------------------------------- */

double iadsr__heads_train(const iadsr__heads *st, iadsr__heads_ws *w,
                           const float *h, const iadsr__batch *b,
                           const float *const *uvec, const float *emb,
                           iadsr__rng *rng, int batch_rows, int batch_seqs,
                           const iadsr__heads_grads *g, float *mask_out)
{
    int d = st->d, R = b->n_rows, S = b->n_seq;
    size_t Rd = (size_t)R * (size_t)d, Sd = (size_t)S * (size_t)d;
    const int32_t *off = b->row_off;
    int collab = (st->flags & IADSR_DENOISE_F_COLLAB_ONLY) != 0;
    if (R == 0)
        return 0.0;
    iadsr__heads_scores(st, w, h, b, uvec, w->score);
    double loss = 0;

    memset(w->ds, 0, Rd * sizeof(float));
    memset(w->dl, 0, Sd * sizeof(float));
    memset(w->dhbar, 0, Sd * sizeof(float));
    memset(w->dlexp, 0, Rd * sizeof(float));
    memset(w->dhexp, 0, Rd * sizeof(float));
    memset(w->dscore, 0, (size_t)R * sizeof(float));
    memset(w->dm, 0, (size_t)R * sizeof(float));

    /* gate and reconstruction: the mask reaches the losses only here */
    for (int r = 0; r < R; r++)
        w->u[r] = iadsr__rng_float(rng);
    iadsr__gumbel_gate_fwd_f32(w->score, w->u, R, st->tau_gumbel, w->y, w->m);
    if (mask_out)
        memcpy(mask_out, w->m, (size_t)R * sizeof(float));
    if (st->lambda_recon > 0 && st->paper) {
        double wt = (double)st->lambda_recon * (double)S / (double)batch_seqs;
        float lr = iadsr__recon_fwd_f32(h, w->m, d, st->wd, st->bd, emb,
                                        b->items, off, S, w->mh, w->res);
        loss += wt * (double)lr;
        iadsr__recon_bwd_f32(h, w->m, d, st->wd, b->items, off, S, (float)wt,
                             w->mh, w->res, w->tmp, g->dh, w->dm, g->dwd,
                             g->dbd, g->demb);
        iadsr__gumbel_gate_bwd_f32(w->dm, w->y, R, st->tau_gumbel, w->dscore);
        if (collab) {
            for (int r = 0; r < R; r++)
                w->dc[r] = 3.0f * w->dscore[r];
            iadsr__cos_rows_bwd_f32(w->hexp, h, R, d, w->dc, w->dhexp, g->dh);
        } else {
            iadsr__cos_rows_bwd_f32(w->lexp, h, R, d, w->dscore, w->dlexp,
                                    g->dh);
            iadsr__cos_rows_bwd_f32(w->hexp, w->s, R, d, w->dscore, w->dhexp,
                                    w->ds);
            iadsr__cos_rows_bwd_f32(h, w->s, R, d, w->dscore, g->dh, w->ds);
        }
    } else if (st->lambda_recon > 0) {
        /* the decoder learns to reconstruct, nothing else does: with the
         * tied output table, a gradient into h pulls h_t toward the item
         * just seen (the one it should not predict), and through the gate
         * it only ever teaches keeping. Per element, so the weight means
         * the same for every d. */
        double wt = (double)st->lambda_recon * (double)S /
                    ((double)batch_seqs * (double)d);
        float lr = iadsr__recon_fwd_f32(h, w->m, d, st->wd, st->bd, emb,
                                        b->items, off, S, w->mh, w->res);
        loss += wt * (double)lr;
        iadsr__recon_bwd_f32(h, w->m, d, st->wd, b->items, off, S, (float)wt,
                             w->mh, w->res, w->tmp, NULL, NULL, g->dwd,
                             g->dbd, NULL);
    }

    /* alignment, collaborative -> semantic */
    if (st->lambda_align > 0) {
        if (collab) {
            /* the score did not need the semantic side: compute s and l
             * now (the full scores land in c3, unused) */
            iadsr__heads full = *st;
            full.flags &= ~IADSR_DENOISE_F_COLLAB_ONLY;
            iadsr__heads_scores(&full, w, h, b, uvec, w->c3);
        }
        loss += nce_blocked(w, h, w->s, st->paper ? NULL : b->items, R, d,
                            st->tau_align,
                            (double)st->lambda_align / (double)batch_rows,
                            g->dh, w->ds);
        /* the user's long-term pair counts as one more position: as a
         * mean over users its gradient, which the max-pool sends to a few
         * rows, grows with the history length and collapses the backbone
         * on long sequences (docs/RESULTS-HISTORY.md, "Joint training on data of
         * another shape") */
        double wu = st->paper ? 1.0 / (double)batch_seqs
                              : 1.0 / (double)batch_rows;
        loss += nce_blocked(w, w->hbar, w->l, NULL, S, d, st->tau_align,
                            (double)st->lambda_align * wu, w->dhbar, w->dl);
    }

    /* back through the pooled and projected views */
    iadsr__seq_expand_bwd_f32(w->dhexp, d, off, S, w->dhbar);
    iadsr__maxpool_bwd_f32(w->dhbar, d, w->arg, S, g->dh);
    if (!collab || st->lambda_align > 0) {
        iadsr__seq_expand_bwd_f32(w->dlexp, d, off, S, w->dl);
        if (g->dw2 && S > 0)
            iadsr__sgemm(1, 0, st->D, d, S, 1.0f, w->lsem, st->D, w->dl, d,
                         1.0f, g->dw2, d);
        if (g->dw1)
            proj_bwd(st, w->xs, b->items, R, w->ds, g->dw1);
    }
    return loss;
}
