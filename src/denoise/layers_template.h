/* IADSR Stage 2 layers, forward and backward, generic over REAL.
 * Instantiated by layers_f32.c and tests/f64/denoise_layers_f64.c
 * (math/real_f32.h, real_f64.h). Template macros needed: REAL, SFX. No
 * include guard on purpose.
 *
 * Sums are accumulated in double and special functions (exp, log, sqrt)
 * are evaluated in double in both instantiations: the layers are small
 * (O(rows * d) except InfoNCE, O(n^2 d)) and this keeps float and double
 * results close.
 * SPDX-License-Identifier: MIT
 */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static double SFX(dotd)(const REAL *a, const REAL *b, int d)
{
    double s = 0;
    for (int c = 0; c < d; c++)
        s += (double)a[c] * (double)b[c];
    return s;
}

/* Gradient of cos(a, b) scaled by g, added to da / db (either may be
 * NULL); na, nb are the norms (> 0) and ab = <a, b>. */
static void SFX(cos_grad)(const REAL *a, const REAL *b, int d, double na,
                          double nb, double ab, double g, REAL *da, REAL *db)
{
    double inv = 1.0 / (na * nb), c = ab * inv;
    double ka = c / (na * na), kb = c / (nb * nb);
    for (int k = 0; k < d; k++) {
        double ak = (double)a[k], bk = (double)b[k];
        if (da)
            da[k] += (REAL)(g * (bk * inv - ka * ak));
        if (db)
            db[k] += (REAL)(g * (ak * inv - kb * bk));
    }
}

/* The squared norms of nv rows and the products of np pairs of them,
 * each a dotd chain, all in one loop. */
static void SFX(dots_multi)(const REAL *const *r, int nv, const int *pa,
                            const int *pb, int np, int d, double *sq,
                            double *pr)
{
    double x[IADSR__COS_MAX_V];
    for (int k = 0; k < nv; k++)
        sq[k] = 0;
    for (int k = 0; k < np; k++)
        pr[k] = 0;
    for (int c = 0; c < d; c++) {
        for (int k = 0; k < nv; k++) {
            x[k] = (double)r[k][c];
            sq[k] += x[k] * x[k];
        }
        for (int k = 0; k < np; k++)
            pr[k] += x[pa[k]] * x[pb[k]];
    }
}

/* One row's cosines from its norms and products. */
static void SFX(cos_pairs_row_fwd)(const int *pa, const int *pb, int np,
                                   const double *sq, const double *pr,
                                   REAL *const *c, int i)
{
    for (int k = 0; k < np; k++) {
        double na = sqrt(sq[pa[k]]), nb = sqrt(sq[pb[k]]);
        c[k][i] = (na > 0 && nb > 0) ? (REAL)(pr[k] / (na * nb)) : (REAL)0;
    }
}

/* One row's gradients, added in pair order; r[k] points at the row. */
static void SFX(cos_pairs_row_bwd)(const REAL *const *r, const int *pa,
                                   const int *pb, int np, int d,
                                   const double *sq, const double *pr,
                                   const REAL *const *dc, REAL *const *dv,
                                   int i)
{
    size_t o = (size_t)i * (size_t)d;
    for (int k = 0; k < np; k++) {
        double na = sqrt(sq[pa[k]]), nb = sqrt(sq[pb[k]]);
        if (!(na > 0 && nb > 0))
            continue;
        REAL *da = dv[pa[k]], *db = dv[pb[k]];
        SFX(cos_grad)(r[pa[k]], r[pb[k]], d, na, nb, pr[k], (double)dc[k][i],
                      da ? da + o : NULL, db ? db + o : NULL);
    }
}

/* LAYERS_DOTS8(r, nv, pa, pb, np, d, sq8, pr8), where an instantiation
 * defines it: dots_multi of the 8 rows from r[k] on at once, lane l of
 * sq8[k * 8 + l] and pr8[k * 8 + l] being row l's value, bit for bit the
 * one dots_multi gives; LAYERS_DOTS8_OK() says whether this CPU runs it. */
#ifdef LAYERS_DOTS8
#define SFX_DOTS8_BLOCKS(BODY)                                                 \
    if (LAYERS_DOTS8_OK()) {                                                   \
        double sq8[IADSR__COS_MAX_V * 8], pr8[IADSR__COS_MAX_P * 8];           \
        for (; i + 8 <= n; i += 8) {                                           \
            for (int k = 0; k < nv; k++)                                       \
                r[k] = v[k] + (size_t)i * (size_t)d;                           \
            LAYERS_DOTS8(r, nv, pa, pb, np, d, sq8, pr8);                      \
            for (int l = 0; l < 8; l++) {                                      \
                for (int k = 0; k < nv; k++)                                   \
                    sq[k] = sq8[k * 8 + l];                                    \
                for (int k = 0; k < np; k++)                                   \
                    pr[k] = pr8[k * 8 + l];                                    \
                BODY;                                                          \
                for (int k = 0; k < nv; k++)                                   \
                    r[k] += d;                                                 \
            }                                                                  \
        }                                                                      \
    }
#else
#define SFX_DOTS8_BLOCKS(BODY)
#endif

void SFX(iadsr__cos_pairs_fwd)(const REAL *const *v, int nv, const int *pa,
                               const int *pb, int np, int n, int d,
                               REAL *const *c)
{
    const REAL *r[IADSR__COS_MAX_V];
    double sq[IADSR__COS_MAX_V], pr[IADSR__COS_MAX_P];
    int i = 0;
    SFX_DOTS8_BLOCKS(SFX(cos_pairs_row_fwd)(pa, pb, np, sq, pr, c, i + l))
    for (; i < n; i++) {
        for (int k = 0; k < nv; k++)
            r[k] = v[k] + (size_t)i * (size_t)d;
        SFX(dots_multi)(r, nv, pa, pb, np, d, sq, pr);
        SFX(cos_pairs_row_fwd)(pa, pb, np, sq, pr, c, i);
    }
}

void SFX(iadsr__cos_pairs_bwd)(const REAL *const *v, int nv, const int *pa,
                               const int *pb, int np, int n, int d,
                               const REAL *const *dc, REAL *const *dv)
{
    const REAL *r[IADSR__COS_MAX_V];
    double sq[IADSR__COS_MAX_V], pr[IADSR__COS_MAX_P];
    int i = 0;
    SFX_DOTS8_BLOCKS(SFX(cos_pairs_row_bwd)(r, pa, pb, np, d, sq, pr, dc, dv,
                                            i + l))
    for (; i < n; i++) {
        for (int k = 0; k < nv; k++)
            r[k] = v[k] + (size_t)i * (size_t)d;
        SFX(dots_multi)(r, nv, pa, pb, np, d, sq, pr);
        SFX(cos_pairs_row_bwd)(r, pa, pb, np, d, sq, pr, dc, dv, i);
    }
}
#undef SFX_DOTS8_BLOCKS

/* One pair: cos(v[0], v[1]). */
static const int SFX(cos_one_a)[1] = {0}, SFX(cos_one_b)[1] = {1};

void SFX(iadsr__cos_rows_fwd)(const REAL *a, const REAL *b, int n, int d,
                              REAL *c)
{
    const REAL *v[2] = {a, b};
    REAL *const out[1] = {c};
    SFX(iadsr__cos_pairs_fwd)(v, 2, SFX(cos_one_a), SFX(cos_one_b), 1, n, d,
                              out);
}

void SFX(iadsr__cos_rows_bwd)(const REAL *a, const REAL *b, int n, int d,
                              const REAL *dc, REAL *da, REAL *db)
{
    const REAL *v[2] = {a, b};
    const REAL *const g[1] = {dc};
    REAL *const dv[2] = {da, db};
    SFX(iadsr__cos_pairs_bwd)(v, 2, SFX(cos_one_a), SFX(cos_one_b), 1, n, d,
                              g, dv);
}

/* ---- InfoNCE -------------------------------------------------------------- */

REAL SFX(iadsr__infonce_fwd)(const REAL *a, const REAL *b, int n, int d,
                             REAL tau, const int32_t *keys, REAL *p)
{
    if (n <= 0)
        return (REAL)0;
    double itau = 1.0 / (double)tau, total = 0;
    for (int i = 0; i < n; i++) {
        const REAL *ai = a + (size_t)i * (size_t)d;
        REAL *pi = p + (size_t)i * (size_t)n;
        double na = sqrt(SFX(dotd)(ai, ai, d));
        /* logits staged in p; the row maximum for stability */
        double mx = -HUGE_VAL;
        for (int j = 0; j < n; j++) {
            const REAL *bj = b + (size_t)j * (size_t)d;
            double nb = sqrt(SFX(dotd)(bj, bj, d));
            double z = (na > 0 && nb > 0)
                           ? SFX(dotd)(ai, bj, d) / (na * nb) * itau
                           : 0.0;
            pi[j] = (REAL)z;
            if (keys && j != i && keys[j] == keys[i])
                continue; /* a false negative: left out below */
            if ((double)pi[j] > mx)
                mx = (double)pi[j];
        }
        /* logsumexp from the staged (REAL-rounded) logits; z_ii is taken
         * from the same staged value so both terms see the same rounding */
        double zii = (double)pi[i];
        double sum = 0;
        for (int j = 0; j < n; j++) {
            double e = keys && j != i && keys[j] == keys[i]
                           ? 0.0
                           : exp((double)pi[j] - mx);
            pi[j] = (REAL)e;
            sum += e;
        }
        /* sum >= 1: the maximum contributes exp(0) (n >= 1 here) */
        /* cppcheck-suppress invalidFunctionArg */
        total += mx + log(sum) - zii;
        for (int j = 0; j < n; j++)
            pi[j] = (REAL)((double)pi[j] / sum);
    }
    return (REAL)(total / (double)n);
}

void SFX(iadsr__infonce_bwd)(const REAL *a, const REAL *b, int n, int d,
                             REAL tau, const REAL *p, REAL dloss, REAL *da,
                             REAL *db)
{
    if (n <= 0)
        return;
    /* dLoss/dz_ij = (p_ij - [i = j]) / n, dz/dcos = 1 / tau */
    double k = (double)dloss / ((double)n * (double)tau);
    for (int i = 0; i < n; i++) {
        size_t oi = (size_t)i * (size_t)d;
        double na = sqrt(SFX(dotd)(a + oi, a + oi, d));
        if (!(na > 0))
            continue;
        const REAL *pi = p + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++) {
            size_t oj = (size_t)j * (size_t)d;
            double nb = sqrt(SFX(dotd)(b + oj, b + oj, d));
            if (!(nb > 0))
                continue;
            double g = k * ((double)pi[j] - (i == j ? 1.0 : 0.0));
            SFX(cos_grad)(a + oi, b + oj, d, na, nb,
                          SFX(dotd)(a + oi, b + oj, d), g,
                          da ? da + oi : NULL, db ? db + oj : NULL);
        }
    }
}

/* ---- pooling over packed sequences ------------------------------------------ */

void SFX(iadsr__maxpool_fwd)(const REAL *h, int d, const int32_t *row_off,
                             int n_seq, REAL *out, int32_t *arg)
{
    for (int s = 0; s < n_seq; s++) {
        REAL *os = out + (size_t)s * (size_t)d;
        int32_t *as = arg + (size_t)s * (size_t)d;
        int32_t r0 = row_off[s], r1 = row_off[s + 1];
        for (int c = 0; c < d; c++) {
            if (r1 <= r0) {
                os[c] = (REAL)0;
                as[c] = -1;
                continue;
            }
            int32_t best = r0;
            REAL v = h[(size_t)r0 * (size_t)d + (size_t)c];
            for (int32_t r = r0 + 1; r < r1; r++) {
                REAL x = h[(size_t)r * (size_t)d + (size_t)c];
                if (x > v) { /* strict: the first maximum wins ties */
                    v = x;
                    best = r;
                }
            }
            os[c] = v;
            as[c] = best;
        }
    }
}

void SFX(iadsr__maxpool_bwd)(const REAL *dout, int d, const int32_t *arg,
                             int n_seq, REAL *dh)
{
    size_t n = (size_t)n_seq * (size_t)d;
    for (size_t i = 0; i < n; i++) {
        if (arg[i] < 0)
            continue;
        size_t c = i % (size_t)d;
        dh[(size_t)arg[i] * (size_t)d + c] += dout[i];
    }
}

void SFX(iadsr__gather_mean)(const REAL *S, int ld, int D,
                             const int32_t *items, const int32_t *row_off,
                             int n_seq, REAL *out)
{
    for (int s = 0; s < n_seq; s++) {
        REAL *os = out + (size_t)s * (size_t)D;
        int32_t r0 = row_off[s], r1 = row_off[s + 1];
        for (int c = 0; c < D; c++) {
            double acc = 0;
            for (int32_t r = r0; r < r1; r++)
                acc += (double)S[(size_t)items[r] * (size_t)ld + (size_t)c];
            os[c] = r1 > r0 ? (REAL)(acc / (double)(r1 - r0)) : (REAL)0;
        }
    }
}

void SFX(iadsr__seq_expand)(const REAL *src, int d, const int32_t *row_off,
                            int n_seq, REAL *dst)
{
    for (int s = 0; s < n_seq; s++)
        for (int32_t r = row_off[s]; r < row_off[s + 1]; r++)
            for (int c = 0; c < d; c++)
                dst[(size_t)r * (size_t)d + (size_t)c] =
                    src[(size_t)s * (size_t)d + (size_t)c];
}

void SFX(iadsr__seq_expand_bwd)(const REAL *ddst, int d,
                                const int32_t *row_off, int n_seq,
                                REAL *dsrc)
{
    for (int s = 0; s < n_seq; s++)
        for (int32_t r = row_off[s]; r < row_off[s + 1]; r++)
            for (int c = 0; c < d; c++)
                dsrc[(size_t)s * (size_t)d + (size_t)c] +=
                    ddst[(size_t)r * (size_t)d + (size_t)c];
}

/* ---- hard Gumbel-sigmoid gate ---------------------------------------------- */

void SFX(iadsr__gumbel_gate_fwd)(const REAL *s, const REAL *u, int n,
                                 REAL tau_g, REAL *y, REAL *m)
{
    for (int t = 0; t < n; t++) {
        double uu = (double)u[t];
        if (!(uu >= IADSR__GUMBEL_EPS)) /* also maps NaN to the bound */
            uu = IADSR__GUMBEL_EPS;
        if (uu > 1.0 - IADSR__GUMBEL_EPS)
            uu = 1.0 - IADSR__GUMBEL_EPS;
        double x = (double)s[t] - log(-log(uu));
        double v = x / (double)tau_g;
        /* stable logistic for either sign */
        double yy = v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
        y[t] = (REAL)yy;
        m[t] = x > 0 ? (REAL)1 : (REAL)0;
    }
}

void SFX(iadsr__gumbel_gate_bwd)(const REAL *dm, const REAL *y, int n,
                                 REAL tau_g, REAL *ds)
{
    for (int t = 0; t < n; t++) {
        double yy = (double)y[t];
        ds[t] += (REAL)((double)dm[t] * yy * (1.0 - yy) / (double)tau_g);
    }
}

/* ---- reconstruction ------------------------------------------------------------ */

REAL SFX(iadsr__recon_fwd)(const REAL *h, const REAL *m, int d,
                           const REAL *wd, const REAL *bd, const REAL *emb,
                           const int32_t *items, const int32_t *row_off,
                           int n_seq, REAL *mh, REAL *res)
{
    if (n_seq <= 0)
        return (REAL)0;
    int n_rows = row_off[n_seq];
    for (int r = 0; r < n_rows; r++)
        for (int c = 0; c < d; c++) {
            size_t i = (size_t)r * (size_t)d + (size_t)c;
            mh[i] = m[r] * h[i];
        }
    SFX(iadsr__linear_fwd)(mh, n_rows, d, wd, bd, d, res);
    double total = 0;
    for (int s = 0; s < n_seq; s++) {
        int32_t r0 = row_off[s], r1 = row_off[s + 1];
        if (r1 <= r0)
            continue;
        double part = 0;
        for (int32_t r = r0; r < r1; r++) {
            REAL *rr = res + (size_t)r * (size_t)d;
            const REAL *e = emb + (size_t)items[r] * (size_t)d;
            for (int c = 0; c < d; c++) {
                rr[c] -= e[c];
                part += (double)rr[c] * (double)rr[c];
            }
        }
        total += part / (double)(r1 - r0);
    }
    return (REAL)(total / (double)n_seq);
}

void SFX(iadsr__recon_bwd)(const REAL *h, const REAL *m, int d,
                           const REAL *wd, const int32_t *items,
                           const int32_t *row_off, int n_seq, REAL dloss,
                           const REAL *mh, REAL *res, REAL *tmp, REAL *dh,
                           REAL *dm, REAL *dwd, REAL *dbd, REAL *demb)
{
    if (n_seq <= 0)
        return;
    int n_rows = row_off[n_seq];
    /* res becomes dL/dr_t = 2 dloss / (n_seq T_s) (r_t - E[x_t]) */
    for (int s = 0; s < n_seq; s++) {
        int32_t r0 = row_off[s], r1 = row_off[s + 1];
        if (r1 <= r0)
            continue;
        double k = 2.0 * (double)dloss / ((double)n_seq * (double)(r1 - r0));
        for (int32_t r = r0; r < r1; r++) {
            REAL *rr = res + (size_t)r * (size_t)d;
            REAL *de = demb ? demb + (size_t)items[r] * (size_t)d : NULL;
            for (int c = 0; c < d; c++) {
                rr[c] = (REAL)(k * (double)rr[c]);
                if (de)
                    de[c] -= rr[c];
            }
        }
    }
    /* dWd += (m h)^T dR, dbd += colsum dR, tmp = dR Wd^T = dL/d(m h) */
    SFX(iadsr__linear_bwd)(mh, res, n_rows, d, wd, d, dwd, dbd, tmp, 0);
    for (int r = 0; r < n_rows; r++) {
        const REAL *tr = tmp + (size_t)r * (size_t)d;
        const REAL *hr = h + (size_t)r * (size_t)d;
        if (dm)
            dm[r] += (REAL)SFX(dotd)(tr, hr, d);
        if (dh && m[r] != (REAL)0) {
            REAL *dr = dh + (size_t)r * (size_t)d;
            for (int c = 0; c < d; c++)
                dr[c] += m[r] * tr[c];
        }
    }
}
