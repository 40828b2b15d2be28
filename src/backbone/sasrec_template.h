/* SASRec layers, forward and backward, generic over REAL. Instantiated by
 * sasrec_f32.c and tests/f64/sasrec_f64.c (math/real_f32.h, real_f64.h).
 * Template macros needed: REAL, SFX, GEMM, EXP, SQRT, XENT_ROWS, GELU_FWD,
 * GELU_BWD. No include guard on purpose.
 *
 * The encoder follows the post-norm transformer of the PyTorch reference
 * (bench/torch_sasrec.py): x0 = drop(LN(E[item] + P[pos])); per block
 * x1 = LN1(x + drop(MHA(x))), x' = LN2(x1 + drop(W2 drop(act(W1 x1)))).
 * With shape.pre_ln (IADSR_MODEL_F_PRE_LN) blocks are pre-norm as in the
 * original SASRec: x1 = x + drop(MHA(LN1(x))), x' = x1 + drop(FFN(LN2(x1))),
 * and the output is LNf(x[L]).
 * Only real (non-padding) positions are stored and computed: padding keys
 * are masked out of attention anyway, so padding rows never influence a
 * real row, and skipping them removes most of the work on short sequences.
 *
 * SPDX-License-Identifier: MIT
 */

#include "math/arena.h"

#include <math.h>
#include <string.h>

IADSR__FAMILY_BIND(sasrec)
{
    /* in the order of sasrec_layout() (sasrec_f32.c) */
    const iadsr__tensor *t = l->t;
    memset(w, 0, sizeof *w);
    w->item_emb = base + (t++)->offset;
    w->pos_emb = base + (t++)->offset;
    w->eln_g = base + (t++)->offset;
    w->eln_b = base + (t++)->offset;
    for (int b = 0; b < s->n_layers; b++) {
        SFX(iadsr__sasrec_blk_w) *dst = &w->blk[b];
        IADSR__SASREC_BLOCK(IADSR__W_BIND)
    }
    if (s->pre_ln) {
        w->fln_g = base + (t++)->offset;
        w->fln_b = base + (t++)->offset;
    }
}

/* ---- workspace ---------------------------------------------------------- */

/* The buffers, in iadsr__arena_alloc()'s two passes. */
static void SFX(sasrec_ws_carve)(void *p, iadsr__arena *a)
{
    SFX(iadsr__sasrec_ws) *ws = p;
    const iadsr__shape *s = &ws->shape;
    size_t R = (size_t)ws->max_rows, d = (size_t)s->d, f = (size_t)s->f;
    /* attention probabilities: training keeps every (sequence, head) block
     * for the backward pass; inference reuses one L x L block */
    size_t L = (size_t)ws->max_len;
    size_t A = ws->training ? R * L * (size_t)s->n_heads : L * L;
    int tr = ws->training;
    ws->e = IADSR__TAKE_R(a, R * d);
    ws->xhat0 = IADSR__TAKE_R(a, R * d);
    ws->rstd0 = IADSR__TAKE_R(a, R);
    ws->m0 = tr ? IADSR__TAKE_R(a, R * d) : NULL;
    if (!tr) {
        /* Inference keeps no activations for a backward pass: all blocks
         * share one set of buffers and x[] alternates between two. */
        REAL *x0 = IADSR__TAKE_R(a, R * d);
        REAL *x1 = IADSR__TAKE_R(a, R * d);
        for (int l = 0; l <= s->n_layers; l++)
            ws->x[l] = (l % 2) ? x1 : x0;
    } else {
        for (int l = 0; l <= s->n_layers; l++)
            ws->x[l] = IADSR__TAKE_R(a, R * d);
    }
    for (int l = 0; l < s->n_layers; l++) {
        if (!tr && l > 0) {
            ws->b[l] = ws->b[0];
            continue;
        }
        ws->b[l].qkv = IADSR__TAKE_R(a, R * 3 * d);
        ws->b[l].p = IADSR__TAKE_R(a, A);
        ws->b[l].pm = tr ? IADSR__TAKE_R(a, A) : NULL;
        ws->b[l].ctx = IADSR__TAKE_R(a, R * d);
        ws->b[l].ma = tr ? IADSR__TAKE_R(a, R * d) : NULL;
        ws->b[l].y1hat = IADSR__TAKE_R(a, R * d);
        ws->b[l].rstd1 = IADSR__TAKE_R(a, R);
        ws->b[l].x1 = IADSR__TAKE_R(a, R * d);
        ws->b[l].h1 = IADSR__TAKE_R(a, R * f);
        ws->b[l].g = IADSR__TAKE_R(a, R * f);
        ws->b[l].mf = tr ? IADSR__TAKE_R(a, R * f) : NULL;
        ws->b[l].gd = tr ? IADSR__TAKE_R(a, R * f) : NULL;
        ws->b[l].mo = tr ? IADSR__TAKE_R(a, R * d) : NULL;
        ws->b[l].y2hat = IADSR__TAKE_R(a, R * d);
        ws->b[l].rstd2 = IADSR__TAKE_R(a, R);
        ws->b[l].a1 = s->pre_ln ? IADSR__TAKE_R(a, R * d) : NULL;
        ws->b[l].a2 = s->pre_ln ? IADSR__TAKE_R(a, R * d) : NULL;
    }
    if (s->pre_ln) {
        ws->xhatf = IADSR__TAKE_R(a, R * d);
        ws->rstdf = IADSR__TAKE_R(a, R);
        ws->out = IADSR__TAKE_R(a, R * d);
    } else {
        ws->xhatf = ws->rstdf = NULL;
        ws->out = ws->x[s->n_layers];
    }
    if (tr) {
        ws->dx = IADSR__TAKE_R(a, R * d);
        ws->dx1 = IADSR__TAKE_R(a, R * d);
        ws->dqkv = IADSR__TAKE_R(a, R * 3 * d);
        ws->dctx = IADSR__TAKE_R(a, R * d);
        ws->dh = IADSR__TAKE_R(a, R * f);
        ws->tmp = IADSR__TAKE_R(a, R * (f > 3 * d ? f : 3 * d));
        ws->wt = IADSR__TAKE_R(a, d * (f > 3 * d ? f : 3 * d));
    } else {
        ws->dx = ws->dx1 = ws->dqkv = ws->dctx = ws->dh = ws->tmp = NULL;
        ws->wt = NULL;
    }
}

IADSR__BACKBONE_WS_DEFINE(sasrec, "encoder");

/* ---- elementary layers ---------------------------------------------------- */

/* The row sums run in column order (the rounding every checkpoint was made
 * with); a single sum is a chain of dependent adds, so rows go LN_G at a
 * time: LN_G independent chains, each in its own row's unchanged order. */
#define LN_G 4

/* Normalise rows r0 .. r0 + g - 1 (g <= LN_G). In place (y == x) is safe:
 * every statistic is read before its row is written. */
static inline void SFX(layernorm_rows)(const REAL *x, int r0, int g, int d,
                                       const REAL *gam, const REAL *bias,
                                       REAL *y, REAL *xhat, REAL *rstd)
{
    const REAL *xr[LN_G];
    REAL mean[LN_G], var[LN_G];
    for (int l = 0; l < g; l++) {
        xr[l] = x + (size_t)(r0 + l) * (size_t)d;
        mean[l] = 0;
        var[l] = 0;
    }
    for (int c = 0; c < d; c++)
        for (int l = 0; l < g; l++)
            mean[l] += xr[l][c];
    for (int l = 0; l < g; l++)
        mean[l] /= (REAL)d;
    for (int c = 0; c < d; c++)
        for (int l = 0; l < g; l++) {
            REAL t = xr[l][c] - mean[l];
            var[l] += t * t;
        }
    for (int l = 0; l < g; l++) {
        REAL v = var[l] / (REAL)d;
        REAL rs = (REAL)1 / SQRT(v + (REAL)IADSR__LN_EPS);
        rstd[r0 + l] = rs;
        REAL *hr = xhat + (size_t)(r0 + l) * (size_t)d;
        REAL *yr = y + (size_t)(r0 + l) * (size_t)d;
        for (int c = 0; c < d; c++) {
            REAL h = (xr[l][c] - mean[l]) * rs;
            hr[c] = h;
            yr[c] = h * gam[c] + bias[c];
        }
    }
}

IADSR_CLONES
void SFX(iadsr__layernorm_fwd)(const REAL *x, int n, int d, const REAL *g,
                               const REAL *bias, REAL *y, REAL *xhat,
                               REAL *rstd)
{
    int r = 0;
    for (; r + LN_G <= n; r += LN_G)
        SFX(layernorm_rows)(x, r, LN_G, d, g, bias, y, xhat, rstd);
    if (r < n)
        SFX(layernorm_rows)(x, r, n - r, d, g, bias, y, xhat, rstd);
}

/* dg and dbias take the rows in increasing order, as one row at a time did;
 * s1 and s2 are LN_G independent chains (see layernorm_rows). */
static inline void SFX(layernorm_bwd_rows)(const REAL *dy, const REAL *xhat,
                                           const REAL *rstd, int r0, int g,
                                           int d, const REAL *gam, REAL *dg,
                                           REAL *dbias, REAL *dx)
{
    const REAL *dyr[LN_G], *hr[LN_G];
    REAL s1[LN_G], s2[LN_G];
    for (int l = 0; l < g; l++) {
        dyr[l] = dy + (size_t)(r0 + l) * (size_t)d;
        hr[l] = xhat + (size_t)(r0 + l) * (size_t)d;
        s1[l] = 0;
        s2[l] = 0;
    }
    for (int c = 0; c < d; c++)
        for (int l = 0; l < g; l++) {
            REAL dh = dyr[l][c] * gam[c];
            dg[c] += dyr[l][c] * hr[l][c];
            dbias[c] += dyr[l][c];
            s1[l] += dh;
            s2[l] += dh * hr[l][c];
        }
    for (int l = 0; l < g; l++) {
        REAL a = s1[l] / (REAL)d, b = s2[l] / (REAL)d, rs = rstd[r0 + l];
        REAL *dxr = dx + (size_t)(r0 + l) * (size_t)d;
        for (int c = 0; c < d; c++)
            dxr[c] = rs * (dyr[l][c] * gam[c] - a - hr[l][c] * b);
    }
}

IADSR_CLONES
void SFX(iadsr__layernorm_bwd)(const REAL *dy, const REAL *xhat,
                               const REAL *rstd, int n, int d, const REAL *g,
                               REAL *dg, REAL *dbias, REAL *dx)
{
    int r = 0;
    for (; r + LN_G <= n; r += LN_G)
        SFX(layernorm_bwd_rows)(dy, xhat, rstd, r, LN_G, d, g, dg, dbias, dx);
    if (r < n)
        SFX(layernorm_bwd_rows)(dy, xhat, rstd, r, n - r, d, g, dg, dbias,
                                dx);
}

void SFX(iadsr__act_fwd)(int act, const REAL *x, size_t n, REAL *y)
{
    if (act == IADSR_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0 ? x[i] : (REAL)0;
    } else { /* exact (erf) GELU, as PyTorch's default */
        GELU_FWD(x, n, y);
    }
}

void SFX(iadsr__act_bwd)(int act, const REAL *x, const REAL *dy, size_t n,
                         REAL *dx)
{
    if (act == IADSR_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            dx[i] = x[i] > 0 ? dy[i] : (REAL)0;
    } else {
        GELU_BWD(x, dy, n, dx);
    }
}

/* ---- attention -------------------------------------------------------------- */

/* s[l] = a . b_l for the g <= 4 vectors b_l = b + l * ldb of length n, each
 * sum in index order as one dot at a time: four at once are four
 * independent chains of adds instead of one chain four times as long. */
static inline void SFX(dots4)(const REAL *a, const REAL *b, size_t ldb, int g,
                              int n, REAL *s)
{
    if (g == 4) {
        const REAL *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb,
                   *b3 = b + 3 * ldb;
        REAL s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int c = 0; c < n; c++) {
            s0 += a[c] * b0[c];
            s1 += a[c] * b1[c];
            s2 += a[c] * b2[c];
            s3 += a[c] * b3[c];
        }
        s[0] = s0;
        s[1] = s1;
        s[2] = s2;
        s[3] = s3;
        return;
    }
    for (int l = 0; l < g; l++) {
        const REAL *bl = b + (size_t)l * ldb;
        REAL t = 0;
        for (int c = 0; c < n; c++)
            t += a[c] * bl[c];
        s[l] = t;
    }
}

void SFX(iadsr__attention_fwd)(const iadsr__batch *b, int d, int n_heads,
                               const REAL *qkv, REAL *p, const REAL *pm,
                               REAL *ctx, int reuse_p)
{
    int dh = d / n_heads;
    REAL scale = (REAL)1 / SQRT((REAL)dh);
    size_t ld = 3 * (size_t)d;
    size_t att = 0;
    for (int s = 0; s < b->n_seq; s++) {
        int r0 = b->row_off[s], n = b->row_off[s + 1] - r0;
        for (int h = 0; h < n_heads; h++) {
            REAL *P = reuse_p ? p : p + att;
            const REAL *PM = pm ? pm + att : NULL;
            att += (size_t)n * (size_t)n;
            for (int i = 0; i < n; i++) {
                const REAL *q = qkv + (size_t)(r0 + i) * ld + (size_t)h * dh;
                REAL *Pi = P + (size_t)i * (size_t)n;
                REAL mx = (REAL)-INFINITY;
                for (int j0 = 0; j0 <= i; j0 += 4) {
                    int g = i + 1 - j0 < 4 ? i + 1 - j0 : 4;
                    REAL sd[4];
                    SFX(dots4)(q, qkv + (size_t)(r0 + j0) * ld + (size_t)d +
                                      (size_t)h * dh,
                               ld, g, dh, sd);
                    for (int l = 0; l < g; l++) {
                        REAL sdot = sd[l] * scale;
                        Pi[j0 + l] = sdot;
                        if (sdot > mx)
                            mx = sdot;
                    }
                }
                REAL sum = 0;
                for (int j = 0; j <= i; j++) {
                    Pi[j] = EXP(Pi[j] - mx);
                    sum += Pi[j];
                }
                REAL inv = (REAL)1 / sum;
                for (int j = 0; j <= i; j++)
                    Pi[j] *= inv;
                for (int j = i + 1; j < n; j++)
                    Pi[j] = 0; /* causal mask */
                REAL *out = ctx + (size_t)(r0 + i) * (size_t)d + (size_t)h * dh;
                for (int c = 0; c < dh; c++)
                    out[c] = 0;
                for (int j = 0; j <= i; j++) {
                    REAL pij = PM ? Pi[j] * PM[(size_t)i * (size_t)n + j] : Pi[j];
                    const REAL *v = qkv + (size_t)(r0 + j) * ld +
                                    2 * (size_t)d + (size_t)h * dh;
                    for (int c = 0; c < dh; c++)
                        out[c] += pij * v[c];
                }
            }
        }
    }
}

void SFX(iadsr__attention_bwd)(const iadsr__batch *b, int d, int n_heads,
                               const REAL *qkv, const REAL *p,
                               const REAL *pm, const REAL *dctx, REAL *dqkv)
{
    int dh = d / n_heads;
    REAL scale = (REAL)1 / SQRT((REAL)dh);
    size_t ld = 3 * (size_t)d;
    size_t att = 0;
    memset(dqkv, 0, (size_t)b->n_rows * ld * sizeof(REAL));
    REAL ds[4096]; /* one row of dS; max_seq_len <= 4096 */
    for (int s = 0; s < b->n_seq; s++) {
        int r0 = b->row_off[s], n = b->row_off[s + 1] - r0;
        for (int h = 0; h < n_heads; h++) {
            const REAL *P = p + att;
            const REAL *PM = pm ? pm + att : NULL;
            att += (size_t)n * (size_t)n;
            for (int i = 0; i < n; i++) {
                const REAL *Pi = P + (size_t)i * (size_t)n;
                const REAL *dout =
                    dctx + (size_t)(r0 + i) * (size_t)d + (size_t)h * dh;
                REAL dot = 0;
                for (int j0 = 0; j0 <= i; j0 += 4) {
                    int g = i + 1 - j0 < 4 ? i + 1 - j0 : 4;
                    REAL sd[4];
                    SFX(dots4)(dout, qkv + (size_t)(r0 + j0) * ld +
                                         2 * (size_t)d + (size_t)h * dh,
                               ld, g, dh, sd);
                    for (int l = 0; l < g; l++) {
                        int j = j0 + l;
                        REAL *dv = dqkv + (size_t)(r0 + j) * ld +
                                   2 * (size_t)d + (size_t)h * dh;
                        REAL m = PM ? PM[(size_t)i * (size_t)n + j] : (REAL)1;
                        REAL pd = Pi[j] * m;
                        for (int c = 0; c < dh; c++)
                            dv[c] += pd * dout[c];
                        ds[j] = sd[l] * m; /* dP */
                        dot += Pi[j] * ds[j];
                    }
                }
                const REAL *q = qkv + (size_t)(r0 + i) * ld + (size_t)h * dh;
                REAL *dq = dqkv + (size_t)(r0 + i) * ld + (size_t)h * dh;
                for (int j = 0; j <= i; j++) {
                    REAL g = Pi[j] * (ds[j] - dot) * scale;
                    const REAL *k = qkv + (size_t)(r0 + j) * ld + (size_t)d +
                                    (size_t)h * dh;
                    REAL *dk = dqkv + (size_t)(r0 + j) * ld + (size_t)d +
                               (size_t)h * dh;
                    for (int c = 0; c < dh; c++) {
                        dq[c] += g * k[c];
                        dk[c] += g * q[c];
                    }
                }
            }
        }
    }
}

/* ---- dropout ------------------------------------------------------------------ */

#include "math/dropout_template.h"

/* ---- encoder ------------------------------------------------------------------ */

/* Attention of the LAST query of every sequence only (inference): the
 * final block needs no other row. ctx receives n_seq rows. */
static void SFX(attention_last_fwd)(const iadsr__batch *b, int d, int n_heads,
                                    const REAL *qkv, REAL *p, REAL *ctx)
{
    int dh = d / n_heads;
    REAL scale = (REAL)1 / SQRT((REAL)dh);
    size_t ld = 3 * (size_t)d;
    for (int s = 0; s < b->n_seq; s++) {
        int r0 = b->row_off[s], n = b->row_off[s + 1] - r0;
        for (int h = 0; h < n_heads; h++) {
            const REAL *q = qkv + (size_t)(r0 + n - 1) * ld + (size_t)h * dh;
            REAL mx = (REAL)-INFINITY, sum = 0;
            for (int j0 = 0; j0 < n; j0 += 4) {
                int g = n - j0 < 4 ? n - j0 : 4;
                REAL sd[4];
                SFX(dots4)(q, qkv + (size_t)(r0 + j0) * ld + (size_t)d +
                                  (size_t)h * dh,
                           ld, g, dh, sd);
                for (int l = 0; l < g; l++) {
                    p[j0 + l] = sd[l] * scale;
                    mx = p[j0 + l] > mx ? p[j0 + l] : mx;
                }
            }
            for (int j = 0; j < n; j++) {
                p[j] = EXP(p[j] - mx);
                sum += p[j];
            }
            REAL *out = ctx + (size_t)s * (size_t)d + (size_t)h * dh;
            for (int c = 0; c < dh; c++)
                out[c] = 0;
            for (int j = 0; j < n; j++) {
                REAL pj = p[j] / sum;
                const REAL *v = qkv + (size_t)(r0 + j) * ld + 2 * (size_t)d +
                                (size_t)h * dh;
                for (int c = 0; c < dh; c++)
                    out[c] += pj * v[c];
            }
        }
    }
}

/* The end of a block half: out = drop(out) + res over n values, the mask
 * m drawn (and kept for backward) only when rng is non-NULL. */
static void SFX(drop_residual)(REAL *out, REAL *m, size_t n, double p,
                               iadsr__rng *rng, const REAL *res)
{
    if (rng) {
        SFX(dropout_mask)(m, n, p, rng);
        SFX(mul)(out, out, m, n);
    }
    for (size_t i = 0; i < n; i++)
        out[i] += res[i];
}

/* Attention half of block l: out = x[l] + drop(Wo MHA(qin Wqkv + bqkv) + bo),
 * qin = x[l] (post-norm) or LN1(x[l]) (pre-norm), over all rows. With
 * last_only (inference) only the last query of every sequence is attended
 * and out holds n_seq rows: the last block needs no other row. Masks as
 * drop_residual. */
static void SFX(attn_fwd)(SFX(iadsr__sasrec_ws) *ws,
                          const SFX(iadsr__sasrec_w) *w, const iadsr__batch *b,
                          int l, const REAL *qin, iadsr__rng *rng, size_t att,
                          int last_only, REAL *out)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, S = b->n_seq, d = s->d;
    size_t Rd = (size_t)R * (size_t)d;
    const REAL *xin = ws->x[l];
    SFX(iadsr__linear_fwd)(qin, R, d, w->blk[l].wqkv, w->blk[l].bqkv, 3 * d,
                           ws->b[l].qkv);
    if (last_only) {
        SFX(attention_last_fwd)(b, d, s->n_heads, ws->b[l].qkv, ws->b[l].p,
                                ws->b[l].ctx);
        SFX(iadsr__linear_fwd)(ws->b[l].ctx, S, d, w->blk[l].wo,
                               w->blk[l].bo, d, out);
        for (int q = 0; q < S; q++) {
            const REAL *xr = xin + (size_t)(b->row_off[q + 1] - 1) * (size_t)d;
            REAL *o = out + (size_t)q * (size_t)d;
            for (int c = 0; c < d; c++)
                o[c] += xr[c];
        }
        return;
    }
    if (rng)
        SFX(dropout_mask)(ws->b[l].pm, att, s->dropout, rng);
    SFX(iadsr__attention_fwd)(b, d, s->n_heads, ws->b[l].qkv, ws->b[l].p,
                              rng ? ws->b[l].pm : NULL, ws->b[l].ctx,
                              !ws->training);
    SFX(iadsr__linear_fwd)(ws->b[l].ctx, R, d, w->blk[l].wo, w->blk[l].bo, d,
                           out);
    SFX(drop_residual)(out, ws->b[l].ma, Rd, s->dropout, rng, xin);
}

/* FFN half of block l on n rows: out = x1 + drop(W2 drop(act(W1 in + b1))
 * + b2), in = x1 (post-norm) or LN2(x1) (pre-norm). Masks as attn_fwd. */
static void SFX(ffn_fwd)(SFX(iadsr__sasrec_ws) *ws,
                         const SFX(iadsr__sasrec_w) *w, int l, int n,
                         const REAL *in, iadsr__rng *rng, REAL *out)
{
    const iadsr__shape *s = &ws->shape;
    int d = s->d, f = s->f;
    size_t nd = (size_t)n * (size_t)d, nf = (size_t)n * (size_t)f;
    SFX(iadsr__linear_fwd)(in, n, d, w->blk[l].w1, w->blk[l].b1, f,
                           ws->b[l].h1);
    SFX(iadsr__act_fwd)(s->act, ws->b[l].h1, nf, ws->b[l].g);
    const REAL *gin = ws->b[l].g;
    if (rng) {
        SFX(dropout_mask)(ws->b[l].mf, nf, s->dropout, rng);
        SFX(mul)(ws->b[l].gd, ws->b[l].g, ws->b[l].mf, nf);
        gin = ws->b[l].gd;
    }
    SFX(iadsr__linear_fwd)(gin, n, f, w->blk[l].w2, w->blk[l].b2, d, out);
    SFX(drop_residual)(out, ws->b[l].mo, nd, s->dropout, rng, ws->b[l].x1);
}

/* Block l: x[l] -> x[l + 1], over all rows, or with last_only (inference)
 * from the attention on for the last row of every sequence only. */
static void SFX(block_fwd)(SFX(iadsr__sasrec_ws) *ws,
                           const SFX(iadsr__sasrec_w) *w,
                           const iadsr__batch *b, int l, iadsr__rng *rng,
                           size_t att, int last_only)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, n = last_only ? b->n_seq : R, d = s->d;
    REAL *x1 = ws->b[l].x1, *out = ws->x[l + 1];
    if (s->pre_ln) {
        /* keys and values need LN1 of every row */
        SFX(iadsr__layernorm_fwd)(ws->x[l], R, d, w->blk[l].ln1_g,
                                  w->blk[l].ln1_b, ws->b[l].a1,
                                  ws->b[l].y1hat, ws->b[l].rstd1);
        SFX(attn_fwd)(ws, w, b, l, ws->b[l].a1, rng, att, last_only, x1);
        SFX(iadsr__layernorm_fwd)(x1, n, d, w->blk[l].ln2_g, w->blk[l].ln2_b,
                                  ws->b[l].a2, ws->b[l].y2hat,
                                  ws->b[l].rstd2);
        SFX(ffn_fwd)(ws, w, l, n, ws->b[l].a2, rng, out);
        return;
    }
    /* out is scratch until the block output is written */
    SFX(attn_fwd)(ws, w, b, l, ws->x[l], rng, att, last_only, out);
    SFX(iadsr__layernorm_fwd)(out, n, d, w->blk[l].ln1_g, w->blk[l].ln1_b, x1,
                              ws->b[l].y1hat, ws->b[l].rstd1);
    SFX(ffn_fwd)(ws, w, l, n, x1, rng, out);
    /* LayerNorm in place: xhat/rstd are computed before y is written. */
    SFX(iadsr__layernorm_fwd)(out, n, d, w->blk[l].ln2_g, w->blk[l].ln2_b,
                              out, ws->b[l].y2hat, ws->b[l].rstd2);
}

static void SFX(forward_impl)(SFX(iadsr__sasrec_ws) *ws,
                              const SFX(iadsr__sasrec_w) *w,
                              const iadsr__batch *b, iadsr__rng *rng,
                              int last_only)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d;
    size_t Rd = (size_t)R * (size_t)d;
    int drop = ws->training && rng != NULL && s->dropout > 0;
    ws->drew_masks = drop; /* backward applies exactly the masks drawn here */
    size_t att = 0;
    for (int q = 0; q < b->n_seq; q++) {
        size_t n = (size_t)(b->row_off[q + 1] - b->row_off[q]);
        att += n * n * (size_t)s->n_heads;
    }

    for (int r = 0; r < R; r++) {
        const REAL *ei = w->item_emb + (size_t)b->items[r] * (size_t)d;
        const REAL *pi = w->pos_emb + (size_t)b->pos[r] * (size_t)d;
        REAL *er = ws->e + (size_t)r * (size_t)d;
        REAL sc = b->scale ? (REAL)b->scale[r] : (REAL)1;
        for (int c = 0; c < d; c++)
            er[c] = sc * ei[c] + pi[c];
    }
    SFX(iadsr__layernorm_fwd)(ws->e, R, d, w->eln_g, w->eln_b, ws->x[0],
                              ws->xhat0, ws->rstd0);
    if (drop) {
        SFX(dropout_mask)(ws->m0, Rd, s->dropout, rng);
        SFX(mul)(ws->x[0], ws->x[0], ws->m0, Rd);
    }
    for (int l = 0; l < s->n_layers; l++)
        SFX(block_fwd)(ws, w, b, l, drop ? rng : NULL, att,
                       last_only && l == s->n_layers - 1);
    if (s->pre_ln) {
        int n = last_only ? b->n_seq : R;
        SFX(iadsr__layernorm_fwd)(ws->x[s->n_layers], n, d, w->fln_g,
                                  w->fln_b, ws->out, ws->xhatf, ws->rstdf);
    }
}

IADSR__FAMILY_FORWARD(sasrec)
{
    SFX(forward_impl)(ws, w, b, rng, 0);
}

IADSR__FAMILY_FORWARD_LAST(sasrec)
{
    SFX(forward_impl)(ws, w, b, NULL, 1);
}

/* Backward of attn_fwd over all rows: dy = dL/dout. Adds the gradients of
 * Wqkv, bqkv, Wo and bo to g; dx = dL/dqin, or dx += it with acc (dx may
 * be dy: dy is read first). Scratch: tmp, dctx, dqkv, wt. */
static void SFX(attn_bwd)(SFX(iadsr__sasrec_ws) *ws,
                          const SFX(iadsr__sasrec_w) *w,
                          SFX(iadsr__sasrec_w) *g, const iadsr__batch *b,
                          int l, const REAL *dy, const REAL *qin, int acc,
                          REAL *dx)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d;
    size_t Rd = (size_t)R * (size_t)d;
    int drop = ws->drew_masks; /* masks were drawn in forward */
    REAL *da = ws->tmp;
    if (drop)
        SFX(mul)(da, dy, ws->b[l].ma, Rd);
    else
        memcpy(da, dy, Rd * sizeof(REAL));
    SFX(iadsr__linear_bwd_wt)(ws->b[l].ctx, da, R, d, w->blk[l].wo, d,
                              g->blk[l].wo, g->blk[l].bo, ws->dctx, 0, ws->wt);
    SFX(iadsr__attention_bwd)(b, d, s->n_heads, ws->b[l].qkv, ws->b[l].p,
                              drop ? ws->b[l].pm : NULL, ws->dctx, ws->dqkv);
    SFX(iadsr__linear_bwd_wt)(qin, ws->dqkv, R, d, w->blk[l].wqkv, 3 * d,
                              g->blk[l].wqkv, g->blk[l].bqkv, dx, acc, ws->wt);
}

/* Backward of ffn_fwd over all R rows, likewise: dx = dL/din (or +=).
 * Scratch: tmp, dh, wt. */
static void SFX(ffn_bwd)(SFX(iadsr__sasrec_ws) *ws,
                         const SFX(iadsr__sasrec_w) *w,
                         SFX(iadsr__sasrec_w) *g, int l, int R,
                         const REAL *dy, const REAL *in, int acc, REAL *dx)
{
    const iadsr__shape *s = &ws->shape;
    int d = s->d, f = s->f;
    size_t Rd = (size_t)R * (size_t)d, Rf = (size_t)R * (size_t)f;
    int drop = ws->drew_masks;
    REAL *dfo = ws->tmp;
    if (drop)
        SFX(mul)(dfo, dy, ws->b[l].mo, Rd);
    else
        memcpy(dfo, dy, Rd * sizeof(REAL));
    const REAL *gin = drop ? ws->b[l].gd : ws->b[l].g;
    SFX(iadsr__linear_bwd_wt)(gin, dfo, R, f, w->blk[l].w2, d, g->blk[l].w2,
                              g->blk[l].b2, ws->dh, 0, ws->wt);
    if (drop)
        SFX(mul)(ws->dh, ws->dh, ws->b[l].mf, Rf);
    SFX(iadsr__act_bwd)(s->act, ws->b[l].h1, ws->dh, Rf, ws->dh);
    SFX(iadsr__linear_bwd_wt)(in, ws->dh, R, d, w->blk[l].w1, f, g->blk[l].w1,
                              g->blk[l].b1, dx, acc, ws->wt);
}

IADSR__FAMILY_BACKWARD(sasrec)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d;
    size_t Rd = (size_t)R * (size_t)d;
    int drop = ws->drew_masks; /* masks were drawn in forward */
    REAL *dx = dh; /* gradient w.r.t. the current block output */

    if (s->pre_ln) {
        /* output = LNf(x[L]) */
        SFX(iadsr__layernorm_bwd)(dh, ws->xhatf, ws->rstdf, R, d, w->fln_g,
                                  g->fln_g, g->fln_b, ws->dx);
        memcpy(dx, ws->dx, Rd * sizeof(REAL));
    }
    for (int l = s->n_layers - 1; l >= 0; l--) {
        if (s->pre_ln) {
            /* x' = x1 + drop(FFN(a2)), a2 = LN2(x1) */
            SFX(ffn_bwd)(ws, w, g, l, R, dx, ws->b[l].a2, 0, ws->dx1);
            SFX(iadsr__layernorm_bwd)(ws->dx1, ws->b[l].y2hat, ws->b[l].rstd2,
                                      R, d, w->blk[l].ln2_g, g->blk[l].ln2_g,
                                      g->blk[l].ln2_b, ws->dx);
            for (size_t i = 0; i < Rd; i++)
                ws->dx[i] += dx[i]; /* + the residual: ws->dx = dL/dx1 */
            /* x1 = x + drop(MHA(a1)), a1 = LN1(x) */
            SFX(attn_bwd)(ws, w, g, b, l, ws->dx, ws->b[l].a1, 0, ws->dx1);
            SFX(iadsr__layernorm_bwd)(ws->dx1, ws->b[l].y1hat, ws->b[l].rstd1,
                                      R, d, w->blk[l].ln1_g, g->blk[l].ln1_g,
                                      g->blk[l].ln1_b, dx);
            for (size_t i = 0; i < Rd; i++)
                dx[i] += ws->dx[i]; /* dx = dL/dx[l] */
            continue;
        }
        /* x' = LN2(y2), y2 = x1 + drop(FFN(x1)): dx1 holds dy2, and the
         * FFN adds its part (the residual is dy2 itself) */
        SFX(iadsr__layernorm_bwd)(dx, ws->b[l].y2hat, ws->b[l].rstd2, R, d,
                                  w->blk[l].ln2_g, g->blk[l].ln2_g,
                                  g->blk[l].ln2_b, ws->dx1);
        SFX(ffn_bwd)(ws, w, g, l, R, ws->dx1, ws->b[l].x1, 1, ws->dx1);
        /* x1 = LN1(y1), y1 = xin + drop(MHA(xin)): ws->dx is dy1 = the
         * residual part of dxin */
        SFX(iadsr__layernorm_bwd)(ws->dx1, ws->b[l].y1hat, ws->b[l].rstd1, R, d,
                                  w->blk[l].ln1_g, g->blk[l].ln1_g,
                                  g->blk[l].ln1_b, ws->dx);
        SFX(attn_bwd)(ws, w, g, b, l, ws->dx, ws->x[l], 1, ws->dx);
        /* ws->dx is now dL/dx[l]; move it into dx for the next block down */
        memcpy(dx, ws->dx, Rd * sizeof(REAL));
    }
    /* x0 = drop(LN(e)) */
    if (drop)
        SFX(mul)(dx, dx, ws->m0, Rd);
    SFX(iadsr__layernorm_bwd)(dx, ws->xhat0, ws->rstd0, R, d, w->eln_g,
                              g->eln_g, g->eln_b, ws->dx);
    for (int r = 0; r < R; r++) {
        const REAL *de = ws->dx + (size_t)r * (size_t)d;
        REAL *ge = g->item_emb + (size_t)b->items[r] * (size_t)d;
        REAL *gp = g->pos_emb + (size_t)b->pos[r] * (size_t)d;
        REAL sc = b->scale ? (REAL)b->scale[r] : (REAL)1;
        for (int c = 0; c < d; c++) {
            ge[c] += sc * de[c];
            gp[c] += de[c];
        }
        if (b->dscale) {
            const REAL *ei = w->item_emb + (size_t)b->items[r] * (size_t)d;
            REAL ds = 0;
            for (int c = 0; c < d; c++)
                ds += de[c] * ei[c];
            b->dscale[r] = (double)ds;
        }
    }
}

/* ---- loss ---------------------------------------------------------------------- */

double SFX(iadsr__ce_loss)(const REAL *h, int n_rows, int d,
                           const int32_t *targets, const REAL *emb,
                           int n_items, REAL scale, REAL *dh, REAL *demb,
                           REAL *zbuf, int chunk)
{
    const REAL *E1 = emb + d; /* rows for items 1..n_items */
    REAL *dE1 = demb ? demb + d : NULL;
    double total = 0;
    for (int r0 = 0; r0 < n_rows; r0 += chunk) {
        int c = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        const REAL *hc = h + (size_t)r0 * (size_t)d;
        GEMM(0, 1, c, n_items, d, (REAL)1, hc, d, E1, d, (REAL)0, zbuf,
             n_items);
        total += XENT_ROWS(zbuf, c, n_items, targets + r0, scale,
                           dh != NULL || demb != NULL);
        if (dh)
            GEMM(0, 0, c, d, n_items, (REAL)1, zbuf, n_items, E1, d, (REAL)1,
                 dh + (size_t)r0 * (size_t)d, d);
        if (dE1)
            GEMM(1, 0, n_items, d, c, (REAL)1, zbuf, n_items, hc, d, (REAL)1,
                 dE1, d);
    }
    return total;
}
