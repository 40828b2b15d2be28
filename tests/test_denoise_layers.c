/* Tests: IADSR Stage 2 layers (src/denoise/layers_template.h). Every backward pass of
 * the double instantiation (_f64) is compared with central finite
 * differences of a scalar loss; forwards are compared with direct
 * computations written here; the float path (_f32) is compared with the
 * double one.
 *
 * Set IADSR_TEST_VERBOSE=1 to print the errors of every gradient check.
 * SPDX-License-Identifier: MIT
 */
#include <check.h>

#include "testpool.h"

#include "gradcheck.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "denoise/layers.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/rng.h"
#include "backbone/sasrec.h"

Suite *suite_denoise_layers(void);

#define TOL_F32 1e-4 /* float vs double: |f - d| <= TOL_F32 (1 + |d|) */

/* ---- helpers ------------------------------------------------------------- */


static void fill_normal(double *a, size_t n, double sd, iadsr__rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = sd * iadsr__rng_normal(r);
}

static double cos_ref(const double *a, const double *b, int d)
{
    double na = sqrt(dot(a, a, (size_t)d)), nb = sqrt(dot(b, b, (size_t)d));
    return (na > 0 && nb > 0) ? dot(a, b, (size_t)d) / (na * nb) : 0.0;
}

static float *to_f32(const double *a, size_t n)
{
    float *f = falloc(n);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)a[i];
    return f;
}

/* Analytic vs finite-difference gradient: per-element and norm-ratio
 * tolerances. A gradient that is identically zero is refused (it would
 * make the check vacuous). */
static void check_grad_nonzero(const char *what, const double *ga, const double *gfd,
                       size_t n)
{
    double nd = 0, na = 0, nf = 0, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(ga[i]) && isfinite(gfd[i]),
                      "%s[%zu]: non-finite gradient (analytic %g, fd %g)",
                      what, i, ga[i], gfd[i]);
        double e = fabs(ga[i] - gfd[i]);
        ck_assert_msg(e < TOL_ABS + TOL_REL * fabs(gfd[i]),
                      "%s[%zu]: analytic %.12g vs finite difference %.12g",
                      what, i, ga[i], gfd[i]);
        nd += e * e;
        na += ga[i] * ga[i];
        nf += gfd[i] * gfd[i];
        if (e > max_abs)
            max_abs = e;
    }
    double den = fmax(sqrt(na), sqrt(nf));
    ck_assert_msg(den > 1e-3, "%s: gradient is (nearly) zero: %g", what, den);
    double ratio = sqrt(nd) / den;
    ck_assert_msg(ratio < TOL_RATIO, "%s: norm ratio %.3g >= %.1g", what,
                  ratio, TOL_RATIO);
    if (verbose())
        fprintf(stderr, "  grad %-22s n=%-4zu |g|=%-9.3g max|err|=%-9.3g "
                        "ratio=%.3g\n",
                what, n, den, max_abs, ratio);
}

static void check_f32(const char *what, const float *f, const double *d,
                      size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)f[i] - d[i]) <= TOL_F32 * (1 + fabs(d[i])),
                      "%s[%zu]: float %.9g vs double %.9g", what, i,
                      (double)f[i], d[i]);
}

static void assert_zero_rows(const char *what, const double *g, int row,
                             int d)
{
    for (int c = 0; c < d; c++)
        ck_assert_msg(g[(size_t)row * (size_t)d + (size_t)c] == 0.0,
                      "%s: row %d col %d is %g, expected 0", what, row, c,
                      g[(size_t)row * (size_t)d + (size_t)c]);
}

/* ---- 1. row-wise cosine ------------------------------------------------------ */

typedef struct {
    int n, d;
    double *a, *b, *c, *R;
} cos_ctx;

static double cos_loss(void *p)
{
    cos_ctx *x = p;
    iadsr__cos_rows_fwd_f64(x->a, x->b, x->n, x->d, x->c);
    return dot(x->c, x->R, (size_t)x->n);
}

static void cos_setup(cos_ctx *x, int n, int d, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    size_t nd = (size_t)n * (size_t)d;
    x->n = n;
    x->d = d;
    x->a = dalloc(nd);
    x->b = dalloc(nd);
    x->c = dalloc((size_t)n);
    x->R = dalloc((size_t)n);
    fill_normal(x->a, nd, 1.0, &r);
    fill_normal(x->b, nd, 1.0, &r);
    fill_normal(x->R, (size_t)n, 1.0, &r);
}

START_TEST(test_cos_grad)
{
    cos_ctx x;
    cos_setup(&x, 5, 7, 11);
    size_t nd = 35;
    for (int k = 0; k < 7; k++) /* row 2: b = -3 a, cosine exactly -1 */
        x.b[14 + k] = -3.0 * x.a[14 + k];
    cos_loss(&x);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq_tol(x.c[i], cos_ref(x.a + i * 7, x.b + i * 7, 7),
                                1e-14);
    ck_assert_double_eq_tol(x.c[2], -1.0, 1e-14);

    double *da = dalloc(nd), *db = dalloc(nd), *fd = dalloc(nd);
    iadsr__cos_rows_bwd_f64(x.a, x.b, 5, 7, x.R, da, db);
    fd_grad(cos_loss, &x, x.a, nd, fd);
    check_grad_nonzero("cos.a", da, fd, nd);
    fd_grad(cos_loss, &x, x.b, nd, fd);
    check_grad_nonzero("cos.b", db, fd, nd);

    /* accumulation: a second call adds the same gradient again */
    double *da2 = dalloc(nd);
    memcpy(da2, da, nd * sizeof *da);
    iadsr__cos_rows_bwd_f64(x.a, x.b, 5, 7, x.R, da2, NULL);
    for (size_t i = 0; i < nd; i++)
        ck_assert_double_eq_tol(da2[i], 2 * da[i], 1e-15 * (1 + fabs(da[i])));
    pool_free();
}
END_TEST

START_TEST(test_cos_zero_rows)
{
    cos_ctx x;
    cos_setup(&x, 4, 6, 12);
    size_t nd = 24;
    memset(x.a + 6, 0, 6 * sizeof(double));  /* row 1: a = 0 */
    memset(x.b + 18, 0, 6 * sizeof(double)); /* row 3: b = 0 */
    cos_loss(&x);
    ck_assert(x.c[1] == 0.0 && x.c[3] == 0.0);
    ck_assert(isfinite(x.c[0]) && isfinite(x.c[2]) && x.c[0] != 0.0);
    double *da = dalloc(nd), *db = dalloc(nd), *fd = dalloc(nd);
    iadsr__cos_rows_bwd_f64(x.a, x.b, 4, 6, x.R, da, db);
    for (size_t i = 0; i < nd; i++)
        ck_assert(isfinite(da[i]) && isfinite(db[i]));
    assert_zero_rows("cos.da", da, 1, 6);
    assert_zero_rows("cos.db", db, 1, 6);
    assert_zero_rows("cos.da", da, 3, 6);
    assert_zero_rows("cos.db", db, 3, 6);
    /* the other rows are unaffected: rows 0 and 2 still match fd */
    fd_grad(cos_loss, &x, x.a, 6, fd);
    check_grad_nonzero("cos.a row0", da, fd, 6);
    fd_grad(cos_loss, &x, x.b + 12, 6, fd);
    check_grad_nonzero("cos.b row2", db + 12, fd, 6);
    pool_free();
}
END_TEST

/* Several cosines at once equal the pairwise calls bit for bit, forward
 * and backward (gradients added per row in pair order into shared
 * outputs), with zero rows, a matrix used by several pairs, NULL outputs,
 * and odd widths; in both precisions. */
START_TEST(test_cos_pairs_match_rows)
{
    static const int ds[] = {1, 7, 64};
    static const int pa[6] = {0, 2, 1, 4, 0, 2}, pb[6] = {1, 3, 3, 3, 3, 1};
    iadsr__rng r;
    iadsr__rng_seed(&r, 91);
    for (size_t di = 0; di < sizeof ds / sizeof ds[0]; di++) {
        int n = 9, d = ds[di];
        size_t nd = (size_t)n * (size_t)d;
        double *vd[5];
        float *vf[5];
        for (int k = 0; k < 5; k++) {
            vd[k] = dalloc(nd);
            fill_normal(vd[k], nd, 1.0, &r);
            memset(vd[k] + (size_t)((k + 2) % n) * (size_t)d, 0,
                   (size_t)d * sizeof(double)); /* one zero row each */
            vf[k] = to_f32(vd[k], nd);
        }
        float *cf[6], *cf1[6], *dcf[6];
        double *cd[6], *cd1[6], *dcd[6];
        for (int k = 0; k < 6; k++) {
            cf[k] = to_f32(vd[0], (size_t)n);
            cf1[k] = to_f32(vd[0], (size_t)n);
            dcf[k] = to_f32(vd[1], (size_t)n); /* upstream gradients */
            cd[k] = dalloc((size_t)n);
            cd1[k] = dalloc((size_t)n);
            dcd[k] = dalloc((size_t)n);
            for (int i = 0; i < n; i++)
                dcd[k][i] = (double)dcf[k][i];
        }
        const float *cvf[5] = {vf[0], vf[1], vf[2], vf[3], vf[4]};
        const double *cvd[5] = {vd[0], vd[1], vd[2], vd[3], vd[4]};
        iadsr__cos_pairs_fwd_f32(cvf, 5, pa, pb, 6, n, d, cf);
        iadsr__cos_pairs_fwd_f64(cvd, 5, pa, pb, 6, n, d, cd);
        for (int k = 0; k < 6; k++) {
            iadsr__cos_rows_fwd_f32(vf[pa[k]], vf[pb[k]], n, d, cf1[k]);
            iadsr__cos_rows_fwd_f64(vd[pa[k]], vd[pb[k]], n, d, cd1[k]);
            ck_assert(memcmp(cf[k], cf1[k], (size_t)n * sizeof(float)) == 0);
            ck_assert(memcmp(cd[k], cd1[k], (size_t)n * sizeof(double)) == 0);
        }
        /* backward into matrices 0 and 3 (shared by several pairs) */
        float *gf[5] = {to_f32(vd[2], nd), NULL, NULL, to_f32(vd[4], nd), NULL};
        float *gf1[5] = {to_f32(vd[2], nd), NULL, NULL, to_f32(vd[4], nd), NULL};
        double *gd[5] = {dalloc(nd), NULL, NULL, dalloc(nd), NULL};
        double *gd1[5] = {dalloc(nd), NULL, NULL, dalloc(nd), NULL};
        const float *cdcf[6] = {dcf[0], dcf[1], dcf[2], dcf[3], dcf[4], dcf[5]};
        const double *cdcd[6] = {dcd[0], dcd[1], dcd[2], dcd[3], dcd[4], dcd[5]};
        iadsr__cos_pairs_bwd_f32(cvf, 5, pa, pb, 6, n, d, cdcf, gf);
        iadsr__cos_pairs_bwd_f64(cvd, 5, pa, pb, 6, n, d, cdcd, gd);
        for (int k = 0; k < 6; k++) {
            iadsr__cos_rows_bwd_f32(vf[pa[k]], vf[pb[k]], n, d, dcf[k],
                                    gf1[pa[k]], gf1[pb[k]]);
            iadsr__cos_rows_bwd_f64(vd[pa[k]], vd[pb[k]], n, d, dcd[k],
                                    gd1[pa[k]], gd1[pb[k]]);
        }
        for (int k = 0; k < 5; k += 3) {
            ck_assert(memcmp(gf[k], gf1[k], nd * sizeof(float)) == 0);
            ck_assert(memcmp(gd[k], gd1[k], nd * sizeof(double)) == 0);
        }
    }
    pool_free();
}
END_TEST

/* Rows taken 8 at a time (the AVX-512 path, where the CPU has it) give
 * what rows taken one at a time (the scalar loop) give, bit for bit,
 * forward and backward, for every tail length; the float forward is also
 * the double instantiation's value rounded once (both sum in double). */
START_TEST(test_cos_pairs_blocks_match_single_rows)
{
    static const int ds[] = {1, 7, 64};
    static const int pa[5] = {0, 1, 2, 4, 3}, pb[5] = {3, 2, 0, 1, 1};
    iadsr__rng r;
    iadsr__rng_seed(&r, 92);
    for (size_t di = 0; di < sizeof ds / sizeof ds[0]; di++) {
        static const int ns[] = {1, 7, 8, 9, 16, 23}; /* 0-2 blocks, tails 0-7 */
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            {
                int rows = ns[ni], d = ds[di];
                size_t nd = (size_t)rows * (size_t)d;
                double *vd[5];
                float *vf[5];
                for (int k = 0; k < 5; k++) {
                    vd[k] = dalloc(nd);
                    fill_normal(vd[k], nd, 1.0, &r);
                    memset(vd[k] + (size_t)(k % rows) * (size_t)d, 0,
                           (size_t)d * sizeof(double)); /* a zero row */
                    vf[k] = to_f32(vd[k], nd);
                    for (size_t j = 0; j < nd; j++) /* the same values */
                        vd[k][j] = (double)vf[k][j];
                }
                float *cf[5], *c1[5], *dc[5];
                double *cd[5];
                for (int k = 0; k < 5; k++) {
                    cf[k] = to_f32(vd[0], (size_t)rows);
                    c1[k] = to_f32(vd[1], (size_t)rows);
                    dc[k] = to_f32(vd[2], (size_t)rows);
                    cd[k] = dalloc((size_t)rows);
                }
                const float *cvf[5] = {vf[0], vf[1], vf[2], vf[3], vf[4]};
                const double *cvd[5] = {vd[0], vd[1], vd[2], vd[3], vd[4]};
                iadsr__cos_pairs_fwd_f32(cvf, 5, pa, pb, 5, rows, d, cf);
                iadsr__cos_pairs_fwd_f64(cvd, 5, pa, pb, 5, rows, d, cd);
                for (int i = 0; i < rows; i++) {
                    const float *vi[5];
                    float *ci[5];
                    for (int k = 0; k < 5; k++) {
                        vi[k] = vf[k] + (size_t)i * (size_t)d;
                        ci[k] = c1[k] + i;
                    }
                    iadsr__cos_pairs_fwd_f32(vi, 5, pa, pb, 5, 1, d, ci);
                }
                for (int k = 0; k < 5; k++) {
                    ck_assert(memcmp(cf[k], c1[k], (size_t)rows * sizeof(float)) == 0);
                    for (int i = 0; i < rows; i++)
                        ck_assert(cf[k][i] == (float)cd[k][i]);
                }
                /* backward into 1 and 3 (each in two pairs), not the rest */
                float *g[5] = {NULL, to_f32(vd[3], nd), NULL, to_f32(vd[4], nd), NULL};
                float *g1[5] = {NULL, to_f32(vd[3], nd), NULL, to_f32(vd[4], nd), NULL};
                const float *cdc[5] = {dc[0], dc[1], dc[2], dc[3], dc[4]};
                iadsr__cos_pairs_bwd_f32(cvf, 5, pa, pb, 5, rows, d, cdc, g);
                for (int i = 0; i < rows; i++) {
                    const float *vi[5], *dci[5];
                    float *gi[5] = {NULL, g1[1] + (size_t)i * (size_t)d, NULL,
                                    g1[3] + (size_t)i * (size_t)d, NULL};
                    for (int k = 0; k < 5; k++) {
                        vi[k] = vf[k] + (size_t)i * (size_t)d;
                        dci[k] = dc[k] + i;
                    }
                    iadsr__cos_pairs_bwd_f32(vi, 5, pa, pb, 5, 1, d, dci, gi);
                }
                ck_assert(memcmp(g[1], g1[1], nd * sizeof(float)) == 0);
                ck_assert(memcmp(g[3], g1[3], nd * sizeof(float)) == 0);
                pool_free();
            }
        }
    }
    pool_free();
}
END_TEST

/* ---- 2. InfoNCE ------------------------------------------------------------- */

typedef struct {
    int n, d;
    double tau;
    double *a, *b, *p;
    const int32_t *keys; /* NULL: every other row is a negative */
} nce_ctx;

static double nce_loss(void *q)
{
    nce_ctx *x = q;
    return iadsr__infonce_fwd_f64(x->a, x->b, x->n, x->d, x->tau, x->keys,
                                  x->p);
}

/* Straightforward reference: explicit logits, log of the plain sum. */
static double nce_ref_keys(const double *a, const double *b, int n, int d,
                           double tau, const int32_t *keys)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int j = 0; j < n; j++)
            if (!keys || j == i || keys[j] != keys[i])
                sum += exp(cos_ref(a + i * d, b + j * d, d) / tau);
        total += log(sum) - cos_ref(a + i * d, b + i * d, d) / tau;
    }
    return total / n;
}

static double nce_ref(const double *a, const double *b, int n, int d,
                      double tau)
{
    return nce_ref_keys(a, b, n, d, tau, NULL);
}

static void nce_setup(nce_ctx *x, int n, int d, double tau, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    size_t nd = (size_t)n * (size_t)d;
    x->n = n;
    x->d = d;
    x->tau = tau;
    x->a = dalloc(nd);
    x->b = dalloc(nd);
    x->p = dalloc((size_t)n * (size_t)n);
    x->keys = NULL;
    fill_normal(x->a, nd, 1.0, &r);
    fill_normal(x->b, nd, 1.0, &r);
    for (size_t i = 0; i < nd; i++) /* positives correlated with queries */
        x->b[i] += 0.7 * x->a[i];
}

START_TEST(test_infonce_grad)
{
    static const double taus[] = {0.1, 1.0};
    for (int k = 0; k < 2; k++) {
        nce_ctx x;
        nce_setup(&x, 6, 5, taus[k], 21 + (uint64_t)k);
        size_t nd = 30;
        double L = nce_loss(&x);
        ck_assert_double_eq_tol(L, nce_ref(x.a, x.b, 6, 5, x.tau), 1e-12);
        for (int i = 0; i < 6; i++) { /* p rows are distributions */
            double s = 0;
            for (int j = 0; j < 6; j++)
                s += x.p[i * 6 + j];
            ck_assert_double_eq_tol(s, 1.0, 1e-14);
        }
        double *da = dalloc(nd), *db = dalloc(nd), *fd = dalloc(nd);
        iadsr__infonce_bwd_f64(x.a, x.b, 6, 5, x.tau, x.p, 0.75, da, db);
        for (size_t i = 0; i < nd; i++) { /* compare with 0.75 dL */
            da[i] /= 0.75;
            db[i] /= 0.75;
        }
        fd_grad(nce_loss, &x, x.a, nd, fd);
        check_grad_nonzero("infonce.a", da, fd, nd);
        fd_grad(nce_loss, &x, x.b, nd, fd);
        check_grad_nonzero("infonce.b", db, fd, nd);
        pool_free();
    }
}
END_TEST

/* Same-item rows are no negatives: they leave the softmax (probability
 * exactly 0) and get no gradient from that row; the gradient still matches
 * finite differences. */
START_TEST(test_infonce_same_key_masked)
{
    static const int32_t keys[7] = {4, 9, 4, 2, 9, 4, 1};
    nce_ctx x;
    nce_setup(&x, 7, 5, 0.1, 29);
    x.keys = keys;
    size_t nd = 35;
    double L = nce_loss(&x);
    ck_assert_double_eq_tol(L, nce_ref_keys(x.a, x.b, 7, 5, x.tau, keys),
                            1e-12);
    ck_assert(L < nce_ref(x.a, x.b, 7, 5, x.tau)); /* fewer negatives */
    for (int i = 0; i < 7; i++) {
        double s = 0;
        for (int j = 0; j < 7; j++) {
            if (j != i && keys[j] == keys[i])
                ck_assert(x.p[i * 7 + j] == 0.0);
            s += x.p[i * 7 + j];
        }
        ck_assert_double_eq_tol(s, 1.0, 1e-14);
    }
    double *da = dalloc(nd), *db = dalloc(nd), *fd = dalloc(nd);
    iadsr__infonce_bwd_f64(x.a, x.b, 7, 5, x.tau, x.p, 1.0, da, db);
    fd_grad(nce_loss, &x, x.a, nd, fd);
    check_grad_nonzero("infonce.a (keys)", da, fd, nd);
    fd_grad(nce_loss, &x, x.b, nd, fd);
    check_grad_nonzero("infonce.b (keys)", db, fd, nd);
    /* every key the same: each row has only its positive, loss 0 */
    static const int32_t same[7] = {3, 3, 3, 3, 3, 3, 3};
    x.keys = same;
    ck_assert_double_eq_tol(nce_loss(&x), 0.0, 1e-15);
    pool_free();
}
END_TEST

START_TEST(test_infonce_zero_rows_and_stability)
{
    nce_ctx x;
    nce_setup(&x, 5, 4, 0.1, 23);
    size_t nd = 20;
    memset(x.a + 16, 0, 4 * sizeof(double)); /* last query is zero */
    memset(x.b + 12, 0, 4 * sizeof(double)); /* key 3 is zero */
    double L = nce_loss(&x);
    ck_assert(isfinite(L));
    ck_assert_double_eq_tol(L, nce_ref(x.a, x.b, 5, 4, x.tau), 1e-12);
    double *da = dalloc(nd), *db = dalloc(nd), *fd = dalloc(nd);
    iadsr__infonce_bwd_f64(x.a, x.b, 5, 4, x.tau, x.p, 1.0, da, db);
    for (size_t i = 0; i < nd; i++)
        ck_assert(isfinite(da[i]) && isfinite(db[i]));
    assert_zero_rows("infonce.da", da, 4, 4);
    assert_zero_rows("infonce.db", db, 3, 4);
    /* rows 0..3 of a and rows 0..2 of b are smooth: fd there */
    fd_grad(nce_loss, &x, x.a, 16, fd);
    check_grad_nonzero("infonce.a (zero rows)", da, fd, 16);
    fd_grad(nce_loss, &x, x.b, 12, fd);
    check_grad_nonzero("infonce.b (zero rows)", db, fd, 12);

    /* a tiny temperature: logits of +-1e4 must not overflow */
    x.tau = 1e-4;
    L = nce_loss(&x);
    ck_assert_msg(isfinite(L) && L >= 0, "loss %g", L);
    for (size_t i = 0; i < 25; i++)
        ck_assert(isfinite(x.p[i]) && x.p[i] >= 0 && x.p[i] <= 1);
    ck_assert_double_eq(iadsr__infonce_fwd_f64(x.a, x.b, 0, 4, 0.1, NULL, x.p),
                        0.0);
    pool_free();
}
END_TEST

/* ---- 3. max-pool, mean-gather, expand ----------------------------------------- */

static const int32_t seq_off[] = {0, 3, 4, 4, 8}; /* lengths 3, 1, 0, 4 */
#define SEQ_N 4
#define SEQ_ROWS 8

typedef struct {
    int d;
    double *h, *out, *R;
    int32_t *arg;
} mp_ctx;

static double mp_loss(void *p)
{
    mp_ctx *x = p;
    iadsr__maxpool_fwd_f64(x->h, x->d, seq_off, SEQ_N, x->out, x->arg);
    return dot(x->out, x->R, (size_t)SEQ_N * (size_t)x->d);
}

START_TEST(test_maxpool_grad)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 31);
    mp_ctx x = {.d = 5};
    size_t nh = SEQ_ROWS * 5, no = SEQ_N * 5;
    x.h = dalloc(nh);
    x.out = dalloc(no);
    x.R = dalloc(no);
    x.arg = ialloc(no);
    fill_normal(x.h, nh, 1.0, &r);
    fill_normal(x.R, no, 1.0, &r);
    mp_loss(&x);
    for (int s = 0; s < SEQ_N; s++)
        for (int c = 0; c < 5; c++) {
            double want = -HUGE_VAL;
            for (int t = seq_off[s]; t < seq_off[s + 1]; t++)
                want = fmax(want, x.h[t * 5 + c]);
            if (seq_off[s + 1] == seq_off[s]) {
                ck_assert(x.out[s * 5 + c] == 0.0);
                ck_assert_int_eq(x.arg[s * 5 + c], -1);
            } else {
                ck_assert(x.out[s * 5 + c] == want);
                ck_assert(x.h[x.arg[s * 5 + c] * 5 + c] == want);
            }
        }
    double *dh = dalloc(nh), *fd = dalloc(nh);
    iadsr__maxpool_bwd_f64(x.R, 5, x.arg, SEQ_N, dh);
    fd_grad(mp_loss, &x, x.h, nh, fd);
    check_grad_nonzero("maxpool.h", dh, fd, nh);
    pool_free();
}
END_TEST

START_TEST(test_maxpool_ties)
{
    /* one sequence of 4 rows, d = 3; column 0 ties at rows 1 and 3,
     * column 1 is constant, column 2 ties at rows 0 and 2 */
    const double h[] = {0, 5, 9, 7, 5, 1, 2, 5, 9, 7, 5, 3};
    const int32_t off[] = {0, 4};
    double out[3], dout[3] = {1, 2, 3}, dh[12] = {0};
    int32_t arg[3];
    iadsr__maxpool_fwd_f64(h, 3, off, 1, out, arg);
    ck_assert_int_eq(arg[0], 1);
    ck_assert_int_eq(arg[1], 0);
    ck_assert_int_eq(arg[2], 0);
    ck_assert(out[0] == 7 && out[1] == 5 && out[2] == 9);
    iadsr__maxpool_bwd_f64(dout, 3, arg, 1, dh);
    const double want[] = {0, 2, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        ck_assert_msg(dh[i] == want[i], "dh[%d] = %g, expected %g", i, dh[i],
                      want[i]);
}
END_TEST

START_TEST(test_gather_mean_expand)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 41);
    const int n_items = 6, D = 3, ld = 5;
    const int32_t items[SEQ_ROWS] = {1, 4, 4, 6, 2, 3, 5, 1};
    double *S = dalloc((size_t)(n_items + 1) * ld);
    fill_normal(S, (size_t)(n_items + 1) * ld, 1.0, &r);
    double out[SEQ_N * 3];
    memset(out, 0xff, sizeof out); /* NaN garbage: must be overwritten */
    iadsr__gather_mean_f64(S, ld, D, items, seq_off, SEQ_N, out);
    for (int s = 0; s < SEQ_N; s++)
        for (int c = 0; c < D; c++) {
            double acc = 0;
            int n = seq_off[s + 1] - seq_off[s];
            for (int t = seq_off[s]; t < seq_off[s + 1]; t++)
                acc += S[items[t] * ld + c];
            double want = n ? acc / n : 0.0;
            ck_assert_double_eq_tol(out[s * D + c], want, 1e-15);
        }

    /* expand / expand_bwd are adjoint: <expand(x), y> = <x, expand^T(y)> */
    double src[SEQ_N * 3], dst[SEQ_ROWS * 3], y[SEQ_ROWS * 3];
    double back[SEQ_N * 3] = {0};
    fill_normal(src, SEQ_N * 3, 1.0, &r);
    fill_normal(y, SEQ_ROWS * 3, 1.0, &r);
    iadsr__seq_expand_f64(src, 3, seq_off, SEQ_N, dst);
    ck_assert(dst[5 * 3 + 1] == src[3 * 3 + 1]); /* row 5 is in sequence 3 */
    ck_assert(dst[3 * 3 + 2] == src[1 * 3 + 2]); /* row 3 is in sequence 1 */
    iadsr__seq_expand_bwd_f64(y, 3, seq_off, SEQ_N, back);
    ck_assert_double_eq_tol(dot(dst, y, SEQ_ROWS * 3),
                            dot(src, back, SEQ_N * 3), 1e-12);
    ck_assert(back[2 * 3] == 0.0); /* empty sequence gets nothing */
    pool_free();
}
END_TEST

/* ---- 6. hard Gumbel-sigmoid gate ------------------------------------------- */

typedef struct {
    int n;
    double tau;
    double *s, *u, *y, *m, *R;
} gate_ctx;

static double gate_y_loss(void *p)
{
    gate_ctx *x = p;
    iadsr__gumbel_gate_fwd_f64(x->s, x->u, x->n, x->tau, x->y, x->m);
    return dot(x->y, x->R, (size_t)x->n);
}

START_TEST(test_gumbel_gate)
{
    static const double taus[] = {1.0, 0.5};
    for (int k = 0; k < 2; k++) {
        iadsr__rng r;
        iadsr__rng_seed(&r, 51 + (uint64_t)k);
        gate_ctx x = {.n = 40, .tau = taus[k]};
        x.s = dalloc(40);
        x.u = dalloc(40);
        x.y = dalloc(40);
        x.m = dalloc(40);
        x.R = dalloc(40);
        fill_normal(x.s, 40, 1.5, &r);
        fill_normal(x.R, 40, 1.0, &r);
        for (int t = 0; t < 40; t++)
            x.u[t] = 0.01 + 0.98 * (double)iadsr__rng_float(&r);
        gate_y_loss(&x);
        int ones = 0;
        for (int t = 0; t < 40; t++) {
            double g = -log(-log(x.u[t]));
            double want_y = 1.0 / (1.0 + exp(-(x.s[t] + g) / x.tau));
            ck_assert_double_eq_tol(x.y[t], want_y, 1e-14);
            ck_assert_msg(x.m[t] == (x.s[t] + g > 0 ? 1.0 : 0.0),
                          "m[%d] = %g with s+g = %g", t, x.m[t], x.s[t] + g);
            ck_assert(x.m[t] == (x.y[t] > 0.5 ? 1.0 : 0.0));
            ones += x.m[t] == 1.0;
        }
        ck_assert(ones > 0 && ones < 40); /* both branches exercised */

        /* straight-through: ds = dm * y (1 - y) / tau, i.e. dy/ds */
        double *ds = dalloc(40), *fd = dalloc(40);
        iadsr__gumbel_gate_bwd_f64(x.R, x.y, 40, x.tau, ds);
        for (int t = 0; t < 40; t++)
            ck_assert_double_eq_tol(
                ds[t], x.R[t] * x.y[t] * (1 - x.y[t]) / x.tau, 1e-15);
        fd_grad(gate_y_loss, &x, x.s, 40, fd);
        check_grad_nonzero("gate.s (through y)", ds, fd, 40);
        pool_free();
    }

    /* uniforms at and beyond the bounds give finite outputs */
    const double s[4] = {0, 0, 0, 0}, u[4] = {0.0, 1.0, -0.5, 2.0};
    double y[4], m[4];
    iadsr__gumbel_gate_fwd_f64(s, u, 4, 1.0, y, m);
    for (int t = 0; t < 4; t++)
        ck_assert(isfinite(y[t]) && y[t] >= 0 && y[t] <= 1);
    ck_assert(m[0] == 0.0 && m[1] == 1.0 && m[2] == 0.0 && m[3] == 1.0);
    const float sf[2] = {0, 0}, uf[2] = {0.0f, 1.0f};
    float yf[2], mf[2];
    iadsr__gumbel_gate_fwd_f32(sf, uf, 2, 1.0f, yf, mf);
    ck_assert(isfinite(yf[0]) && isfinite(yf[1]));
    ck_assert(mf[0] == 0.0f && mf[1] == 1.0f);
}
END_TEST

/* ---- 7. reconstruction ------------------------------------------------------ */

typedef struct {
    int d, n_items;
    double *h, *m, *wd, *bd, *emb, *mh, *res;
    const int32_t *items;
} rec_ctx;

static const int32_t rec_off[] = {0, 2, 5, 6}; /* lengths 2, 3, 1 */
static const int32_t rec_items[] = {3, 1, 2, 3, 4, 1};
#define REC_SEQ 3
#define REC_ROWS 6

static double rec_loss(void *p)
{
    rec_ctx *x = p;
    return iadsr__recon_fwd_f64(x->h, x->m, x->d, x->wd, x->bd, x->emb,
                                x->items, rec_off, REC_SEQ, x->mh, x->res);
}

static void rec_setup(rec_ctx *x, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    x->d = 4;
    x->n_items = 4;
    size_t nh = REC_ROWS * 4;
    x->h = dalloc(nh);
    x->m = dalloc(REC_ROWS);
    x->wd = dalloc(16);
    x->bd = dalloc(4);
    x->emb = dalloc(5 * 4);
    x->mh = dalloc(nh);
    x->res = dalloc(nh);
    x->items = rec_items;
    fill_normal(x->h, nh, 1.0, &r);
    fill_normal(x->wd, 16, 0.5, &r);
    fill_normal(x->bd, 4, 0.5, &r);
    fill_normal(x->emb, 20, 1.0, &r);
    const double m[REC_ROWS] = {1, 0, 1, 1, 0, 1};
    memcpy(x->m, m, sizeof m);
}

START_TEST(test_recon_grad)
{
    rec_ctx x;
    rec_setup(&x, 61);
    size_t nh = REC_ROWS * 4;
    double L = rec_loss(&x);

    /* direct computation */
    double want = 0;
    for (int s = 0; s < REC_SEQ; s++) {
        double part = 0;
        for (int t = rec_off[s]; t < rec_off[s + 1]; t++)
            for (int o = 0; o < 4; o++) {
                double v = x.bd[o];
                for (int i = 0; i < 4; i++)
                    v += x.m[t] * x.h[t * 4 + i] * x.wd[i * 4 + o];
                v -= x.emb[rec_items[t] * 4 + o];
                part += v * v;
            }
        want += part / (rec_off[s + 1] - rec_off[s]);
    }
    ck_assert_double_eq_tol(L, want / REC_SEQ, 1e-12);

    double *dh = dalloc(nh), *dm = dalloc(REC_ROWS), *dwd = dalloc(16);
    double *dbd = dalloc(4), *demb = dalloc(20), *tmp = dalloc(nh);
    double *fd = dalloc(nh);
    iadsr__recon_bwd_f64(x.h, x.m, 4, x.wd, rec_items, rec_off, REC_SEQ, 1.0,
                         x.mh, x.res, tmp, dh, dm, dwd, dbd, demb);
    assert_zero_rows("recon.dh (m = 0)", dh, 1, 4);
    assert_zero_rows("recon.dh (m = 0)", dh, 4, 4);
    assert_zero_rows("recon.demb (item 0 unused)", demb, 0, 4);

    fd_grad(rec_loss, &x, x.h, nh, fd);
    check_grad_nonzero("recon.h", dh, fd, nh);
    /* L is smooth in a real-valued m: dm is dL/dm, also where m = 0 */
    fd_grad(rec_loss, &x, x.m, REC_ROWS, fd);
    check_grad_nonzero("recon.m", dm, fd, REC_ROWS);
    ck_assert(dm[1] != 0.0 && dm[4] != 0.0);
    fd_grad(rec_loss, &x, x.wd, 16, fd);
    check_grad_nonzero("recon.wd", dwd, fd, 16);
    fd_grad(rec_loss, &x, x.bd, 4, fd);
    check_grad_nonzero("recon.bd", dbd, fd, 4);
    fd_grad(rec_loss, &x, x.emb, 20, fd);
    check_grad_nonzero("recon.emb", demb, fd, 20);
    pool_free();
}
END_TEST

/* ---- composed: the noise score through all pieces --------------------------- */

typedef struct {
    int d, D, ld, n_items;
    const int32_t *items;
    double *h, *S, *W1, *W2, *R;
    /* activations */
    double *X, *s, *mS, *l, *hbar, *Le, *He, *c1, *c2, *c3;
    int32_t *arg;
} cmp_ctx;

static const int32_t cmp_items[SEQ_ROWS] = {2, 5, 1, 3, 4, 4, 6, 2};
/* the composed test uses sequences without an empty one */
static const int32_t cmp_off[] = {0, 3, 4, 8};
#define CMP_SEQ 3

static double cmp_loss(void *p)
{
    cmp_ctx *x = p;
    int d = x->d, D = x->D;
    for (int t = 0; t < SEQ_ROWS; t++)
        for (int c = 0; c < D; c++)
            x->X[t * D + c] = x->S[x->items[t] * x->ld + c];
    iadsr__linear_fwd_f64(x->X, SEQ_ROWS, D, x->W1, NULL, d, x->s);
    iadsr__gather_mean_f64(x->S, x->ld, D, x->items, cmp_off, CMP_SEQ, x->mS);
    iadsr__linear_fwd_f64(x->mS, CMP_SEQ, D, x->W2, NULL, d, x->l);
    iadsr__maxpool_fwd_f64(x->h, d, cmp_off, CMP_SEQ, x->hbar, x->arg);
    iadsr__seq_expand_f64(x->l, d, cmp_off, CMP_SEQ, x->Le);
    iadsr__seq_expand_f64(x->hbar, d, cmp_off, CMP_SEQ, x->He);
    iadsr__cos_rows_fwd_f64(x->Le, x->h, SEQ_ROWS, d, x->c1);
    iadsr__cos_rows_fwd_f64(x->He, x->s, SEQ_ROWS, d, x->c2);
    iadsr__cos_rows_fwd_f64(x->h, x->s, SEQ_ROWS, d, x->c3);
    double f = 0;
    for (int t = 0; t < SEQ_ROWS; t++) {
        double score = x->c1[t] + x->c2[t] + x->c3[t];
        ck_assert(score >= -3 - 1e-12 && score <= 3 + 1e-12);
        f += x->R[t] * score;
    }
    return f;
}

START_TEST(test_composed_score_grad)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 71);
    cmp_ctx x = {.d = 4, .D = 6, .ld = 7, .n_items = 6, .items = cmp_items};
    int d = 4, D = 6;
    size_t nh = SEQ_ROWS * 4;
    x.h = dalloc(nh);
    x.S = dalloc(7 * 7);
    x.W1 = dalloc(24);
    x.W2 = dalloc(24);
    x.R = dalloc(SEQ_ROWS);
    x.X = dalloc(SEQ_ROWS * 6);
    x.s = dalloc(nh);
    x.mS = dalloc(CMP_SEQ * 6);
    x.l = dalloc(CMP_SEQ * 4);
    x.hbar = dalloc(CMP_SEQ * 4);
    x.Le = dalloc(nh);
    x.He = dalloc(nh);
    x.c1 = dalloc(SEQ_ROWS);
    x.c2 = dalloc(SEQ_ROWS);
    x.c3 = dalloc(SEQ_ROWS);
    x.arg = ialloc(CMP_SEQ * 4);
    fill_normal(x.h, nh, 1.0, &r);
    fill_normal(x.S, 49, 1.0, &r);
    fill_normal(x.W1, 24, 0.5, &r);
    fill_normal(x.W2, 24, 0.5, &r);
    fill_normal(x.R, SEQ_ROWS, 1.0, &r);
    cmp_loss(&x);

    /* backward through all pieces */
    double *dh = dalloc(nh), *ds = dalloc(nh), *dLe = dalloc(nh);
    double *dHe = dalloc(nh), *dl = dalloc(CMP_SEQ * 4);
    double *dhbar = dalloc(CMP_SEQ * 4), *dW1 = dalloc(24), *dW2 = dalloc(24);
    double *fd = dalloc(nh);
    iadsr__cos_rows_bwd_f64(x.Le, x.h, SEQ_ROWS, d, x.R, dLe, dh);
    iadsr__cos_rows_bwd_f64(x.He, x.s, SEQ_ROWS, d, x.R, dHe, ds);
    iadsr__cos_rows_bwd_f64(x.h, x.s, SEQ_ROWS, d, x.R, dh, ds);
    iadsr__seq_expand_bwd_f64(dLe, d, cmp_off, CMP_SEQ, dl);
    iadsr__seq_expand_bwd_f64(dHe, d, cmp_off, CMP_SEQ, dhbar);
    iadsr__maxpool_bwd_f64(dhbar, d, x.arg, CMP_SEQ, dh);
    iadsr__linear_bwd_f64(x.X, ds, SEQ_ROWS, D, x.W1, d, dW1, NULL, NULL, 0);
    iadsr__linear_bwd_f64(x.mS, dl, CMP_SEQ, D, x.W2, d, dW2, NULL, NULL, 0);

    fd_grad(cmp_loss, &x, x.h, nh, fd);
    check_grad_nonzero("score.h", dh, fd, nh);
    fd_grad(cmp_loss, &x, x.W1, 24, fd);
    check_grad_nonzero("score.W1", dW1, fd, 24);
    fd_grad(cmp_loss, &x, x.W2, 24, fd);
    check_grad_nonzero("score.W2", dW2, fd, 24);
    pool_free();
}
END_TEST

/* ---- float vs double ----------------------------------------------------------- */

START_TEST(test_f32_vs_f64)
{
    /* cosine */
    cos_ctx c;
    cos_setup(&c, 5, 7, 81);
    cos_loss(&c);
    double *da = dalloc(35), *db = dalloc(35);
    iadsr__cos_rows_bwd_f64(c.a, c.b, 5, 7, c.R, da, db);
    float *af = to_f32(c.a, 35), *bf = to_f32(c.b, 35), *Rf = to_f32(c.R, 5);
    float *cf = falloc(5), *daf = falloc(35), *dbf = falloc(35);
    iadsr__cos_rows_fwd_f32(af, bf, 5, 7, cf);
    iadsr__cos_rows_bwd_f32(af, bf, 5, 7, Rf, daf, dbf);
    check_f32("cos", cf, c.c, 5);
    check_f32("cos.da", daf, da, 35);
    check_f32("cos.db", dbf, db, 35);

    /* InfoNCE */
    nce_ctx x;
    nce_setup(&x, 6, 5, 0.1, 82);
    double L = nce_loss(&x);
    double *na = dalloc(30), *nb = dalloc(30);
    iadsr__infonce_bwd_f64(x.a, x.b, 6, 5, 0.1, x.p, 1.0, na, nb);
    float *xaf = to_f32(x.a, 30), *xbf = to_f32(x.b, 30), *pf = falloc(36);
    float *naf = falloc(30), *nbf = falloc(30);
    float Lf = iadsr__infonce_fwd_f32(xaf, xbf, 6, 5, 0.1f, NULL, pf);
    iadsr__infonce_bwd_f32(xaf, xbf, 6, 5, 0.1f, pf, 1.0f, naf, nbf);
    check_f32("infonce.loss", &Lf, &L, 1);
    check_f32("infonce.p", pf, x.p, 36);
    check_f32("infonce.da", naf, na, 30);
    check_f32("infonce.db", nbf, nb, 30);

    /* max-pool (exact: selection only) */
    iadsr__rng r;
    iadsr__rng_seed(&r, 83);
    double *h = dalloc(SEQ_ROWS * 3), *o = dalloc(SEQ_N * 3);
    int32_t *arg = ialloc(SEQ_N * 3), *argf = ialloc(SEQ_N * 3);
    fill_normal(h, SEQ_ROWS * 3, 1.0, &r);
    float *hf = to_f32(h, SEQ_ROWS * 3), *of = falloc(SEQ_N * 3);
    iadsr__maxpool_fwd_f64(h, 3, seq_off, SEQ_N, o, arg);
    iadsr__maxpool_fwd_f32(hf, 3, seq_off, SEQ_N, of, argf);
    check_f32("maxpool", of, o, SEQ_N * 3);
    for (int i = 0; i < SEQ_N * 3; i++)
        ck_assert_int_eq(arg[i], argf[i]);

    /* gate */
    double s[16], u[16], y[16], m[16];
    float sf[16], uf[16], yf[16], mf[16];
    for (int t = 0; t < 16; t++) {
        s[t] = iadsr__rng_normal(&r);
        uf[t] = 0.05f + 0.9f * iadsr__rng_float(&r);
        u[t] = (double)uf[t];
        sf[t] = (float)s[t];
        s[t] = (double)sf[t];
    }
    iadsr__gumbel_gate_fwd_f64(s, u, 16, 1.0, y, m);
    iadsr__gumbel_gate_fwd_f32(sf, uf, 16, 1.0f, yf, mf);
    check_f32("gate.y", yf, y, 16);
    check_f32("gate.m", mf, m, 16);

    /* reconstruction */
    rec_ctx q;
    rec_setup(&q, 84);
    double RL = rec_loss(&q);
    size_t nh = REC_ROWS * 4;
    double *dh = dalloc(nh), *dm = dalloc(REC_ROWS), *dwd = dalloc(16);
    double *dbd = dalloc(4), *demb = dalloc(20), *tmp = dalloc(nh);
    iadsr__recon_bwd_f64(q.h, q.m, 4, q.wd, rec_items, rec_off, REC_SEQ, 1.0,
                         q.mh, q.res, tmp, dh, dm, dwd, dbd, demb);
    float *qh = to_f32(q.h, nh), *qm = to_f32(q.m, REC_ROWS);
    float *qwd = to_f32(q.wd, 16), *qbd = to_f32(q.bd, 4);
    float *qemb = to_f32(q.emb, 20), *qmh = falloc(nh), *qres = falloc(nh);
    float *ftmp = falloc(nh), *fdh = falloc(nh), *fdm = falloc(REC_ROWS);
    float *fdwd = falloc(16), *fdbd = falloc(4), *fdemb = falloc(20);
    float RLf = iadsr__recon_fwd_f32(qh, qm, 4, qwd, qbd, qemb, rec_items,
                                     rec_off, REC_SEQ, qmh, qres);
    iadsr__recon_bwd_f32(qh, qm, 4, qwd, rec_items, rec_off, REC_SEQ, 1.0f,
                         qmh, qres, ftmp, fdh, fdm, fdwd, fdbd, fdemb);
    check_f32("recon.loss", &RLf, &RL, 1);
    check_f32("recon.dh", fdh, dh, nh);
    check_f32("recon.dm", fdm, dm, REC_ROWS);
    check_f32("recon.dwd", fdwd, dwd, 16);
    check_f32("recon.dbd", fdbd, dbd, 4);
    check_f32("recon.demb", fdemb, demb, 20);
    pool_free();
}
END_TEST

Suite *suite_denoise_layers(void)
{
    Suite *s = suite_create("denoise_layers");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, test_cos_grad);
    tcase_add_test(tc, test_cos_zero_rows);
    tcase_add_test(tc, test_cos_pairs_match_rows);
    tcase_add_test(tc, test_cos_pairs_blocks_match_single_rows);
    tcase_add_test(tc, test_infonce_grad);
    tcase_add_test(tc, test_infonce_same_key_masked);
    tcase_add_test(tc, test_infonce_zero_rows_and_stability);
    tcase_add_test(tc, test_maxpool_grad);
    tcase_add_test(tc, test_maxpool_ties);
    tcase_add_test(tc, test_gather_mean_expand);
    tcase_add_test(tc, test_gumbel_gate);
    tcase_add_test(tc, test_recon_grad);
    tcase_add_test(tc, test_composed_score_grad);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("float32");
    tcase_add_test(tk, test_f32_vs_f64);
    suite_add_tcase(s, tk);
    return s;
}
