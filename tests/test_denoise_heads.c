/* Tests: IADSR Stage 2 on packed batches (src/denoise/heads.c). The float
 * production code is compared with references built in double from the
 * gradient-checked layers of denoise/layers.h (tests/test_denoise_layers.c): the InfoNCE
 * through GEMMs against the loop version, the noise scores against a direct
 * computation, and the whole training step (scores, Gumbel gate, alignment
 * and reconstruction losses, every gradient) against a double pipeline that
 * draws the same uniforms. A float finite-difference check of the
 * alignment loss is a second opinion.
 *
 * Set IADSR_TEST_VERBOSE=1 to print the measured errors.
 * SPDX-License-Identifier: MIT
 */
#include <check.h>

#include "testpool.h"

#include "gradcheck.h"
#include "testutil.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "denoise/layers.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/alloc.h"
#include "common/rng.h"
#include "data/semantic.h"
#include "denoise/heads.h"

Suite *suite_denoise_heads(void);

#define TOL_NCE 1e-4 /* float GEMM InfoNCE vs the double loop version */
#define TOL_S2 1e-3  /* float training step vs the double reference */

/* ---- helpers ------------------------------------------------------------- */


static void fill_f(float *a, size_t n, double sd, iadsr__rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(sd * iadsr__rng_normal(r));
}

static double *to_f64(const float *a, size_t n)
{
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = (double)a[i];
    return d;
}

static double cos_ref(const double *a, const double *b, int d)
{
    double na = sqrt(dot(a, a, (size_t)d)), nb = sqrt(dot(b, b, (size_t)d));
    return (na > 0 && nb > 0) ? dot(a, b, (size_t)d) / (na * nb) : 0.0;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* Float result against the double reference: every element within
 * tol * max(max |ref|, floor). Returns the relative error. */
static double check_close(const char *what, const float *f, const double *d,
                          size_t n, double tol, double floor)
{
    double scale = fmax(max_abs(d, n), floor), worst = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(f[i]), "%s[%zu] is not finite", what, i);
        double e = fabs((double)f[i] - d[i]);
        ck_assert_msg(e <= tol * scale,
                      "%s[%zu]: float %.9g vs double %.9g (scale %.3g)", what,
                      i, (double)f[i], d[i], scale);
        worst = fmax(worst, e / scale);
    }
    if (verbose())
        fprintf(stderr, "  %-22s n=%-5zu max|ref|=%-10.3g rel err=%.3g\n",
                what, n, max_abs(d, n), worst);
    return worst;
}

static void assert_all_zero(const char *what, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(f[i] == 0.0f, "%s[%zu] = %g, expected 0", what, i,
                      (double)f[i]);
}

/* Items 1..n_items with D-wide rows (packed, no padding row). */
static iadsr_semantic *make_sem(const float *rows, int n_items, int D)
{
    iadsr_semantic *s = NULL;
    int rc = iadsr_semantic_create(&s, rows, n_items, D, D, IADSR_FLAG_COPY);
    ck_assert_msg(rc == IADSR_OK, "semantic_create: %s", iadsr_last_error());
    return s;
}

/* ---- 1. InfoNCE through GEMMs ------------------------------------------------- */

/* Scratch of iadsr__infonce_gemm for n rows of d (from the pool). */
static iadsr__nce_scratch nce_scratch(int n, int d)
{
    size_t nd = (size_t)n * (size_t)d + 1;
    size_t nc = n < IADSR__NCE_CHUNK ? (size_t)n : IADSR__NCE_CHUNK;
    iadsr__nce_scratch s = {falloc(nd), falloc(nd), falloc(nd),
                            falloc(nc * (size_t)n + 1), falloc(nd),
                            falloc(nd)};
    return s;
}

/* One comparison of iadsr__infonce_gemm with the _f64 loop version on the
 * same (float-representable) inputs. */
static void nce_compare_keys(int n, int d, float tau, int zero_a, int zero_b,
                             const int32_t *keys, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    size_t nd = (size_t)n * (size_t)d;
    float *a = falloc(nd), *b = falloc(nd);
    fill_f(a, nd, 1.0, &r);
    fill_f(b, nd, 1.0, &r);
    for (size_t i = 0; i < nd; i++) /* positives correlated with queries */
        b[i] += 0.8f * a[i];
    if (zero_a >= 0)
        memset(a + (size_t)zero_a * (size_t)d, 0, (size_t)d * sizeof(float));
    if (zero_b >= 0)
        memset(b + (size_t)zero_b * (size_t)d, 0, (size_t)d * sizeof(float));
    double *ad = to_f64(a, nd), *bd = to_f64(b, nd);
    double *pd = dalloc((size_t)n * (size_t)n);
    double *dad = dalloc(nd), *dbd = dalloc(nd);
    const double dloss = 0.75;
    double L = iadsr__infonce_fwd_f64(ad, bd, n, d, (double)tau, keys, pd);
    iadsr__infonce_bwd_f64(ad, bd, n, d, (double)tau, pd, dloss, dad, dbd);

    iadsr__nce_scratch s = nce_scratch(n, d);
    float *da = falloc(nd), *db = falloc(nd);
    float Lf = iadsr__infonce_gemm(a, b, n, d, tau, keys, (float)dloss, &s,
                                   da, db);
    char what[64];
    snprintf(what, sizeof what, "nce n=%d tau=%g loss", n, (double)tau);
    check_close(what, &Lf, &L, 1, TOL_NCE, 1.0);
    snprintf(what, sizeof what, "nce n=%d tau=%g da", n, (double)tau);
    check_close(what, da, dad, nd, TOL_NCE, 1e-3);
    snprintf(what, sizeof what, "nce n=%d tau=%g db", n, (double)tau);
    check_close(what, db, dbd, nd, TOL_NCE, 1e-3);
    if (zero_a >= 0)
        assert_all_zero("nce da (zero row)", da + (size_t)zero_a * d,
                        (size_t)d);
    if (zero_b >= 0)
        assert_all_zero("nce db (zero row)", db + (size_t)zero_b * d,
                        (size_t)d);

    /* the gradients are added, either side may be skipped, and a skipped
     * side changes nothing on the other, bit for bit */
    float *da2 = falloc(nd);
    for (size_t i = 0; i < nd; i++)
        da2[i] = 1.0f;
    float L2 = iadsr__infonce_gemm(a, b, n, d, tau, keys, (float)dloss, &s,
                                   da2, NULL);
    ck_assert(L2 == Lf);
    for (size_t i = 0; i < nd; i++)
        ck_assert_msg(fabsf(da2[i] - 1.0f - da[i]) <= 1e-6f * (1 + fabsf(da[i])),
                      "nce: accumulation into da[%zu]: %g vs 1 + %g", i,
                      (double)da2[i], (double)da[i]);
    float *da3 = falloc(nd), *db2 = falloc(nd);
    iadsr__infonce_gemm(a, b, n, d, tau, keys, (float)dloss, &s, da3, NULL);
    iadsr__infonce_gemm(a, b, n, d, tau, keys, (float)dloss, &s, NULL, db2);
    for (size_t i = 0; i < nd; i++)
        ck_assert(da3[i] == da[i] && db2[i] == db[i]);
}

static void nce_compare(int n, int d, float tau, int zero_a, int zero_b,
                        uint64_t seed)
{
    nce_compare_keys(n, d, tau, zero_a, zero_b, NULL, seed);
}

START_TEST(test_infonce_gemm_vs_loop)
{
    /* same-item keys (the per-position alignment's false negatives) */
    int32_t keys[200];
    for (int i = 0; i < 200; i++)
        keys[i] = (i * 7) % 5;
    nce_compare_keys(37, 16, 0.1f, -1, -1, keys, 106);
    nce_compare_keys(9, 8, 0.1f, 4, 7, keys, 107);
    nce_compare(6, 5, 0.1f, -1, -1, 101);
    nce_compare(6, 5, 1.0f, -1, -1, 102);
    nce_compare(37, 16, 0.1f, -1, -1, 103);
    nce_compare(9, 8, 0.1f, 4, 7, 104);  /* a zero query and a zero key */
    nce_compare(5, 3, 0.05f, 2, 2, 105); /* the same row zero on both sides */
    /* more rows than one chunk of logits: whole and ragged chunks, the
     * transposed product summed over them, keys across chunk edges */
    nce_compare(2 * IADSR__NCE_CHUNK, 32, 0.1f, 3, IADSR__NCE_CHUNK + 1, 108);
    nce_compare_keys(200, 48, 0.2f, 150, -1, keys, 109);
    nce_compare_keys(IADSR__NCE_CHUNK + 1, 64, 0.1f, -1, -1, keys, 110);
    pool_free();
}
END_TEST

START_TEST(test_infonce_gemm_edge)
{
    /* n = 1: the only key is the positive, loss 0 and no gradient */
    nce_compare(1, 4, 0.1f, -1, -1, 111);
    float a[4] = {1, 2, 3, 4}, b[4] = {-1, 0.5f, 2, 0};
    float da[4] = {0}, db[4] = {0};
    iadsr__nce_scratch s = nce_scratch(3, 4);
    float L = iadsr__infonce_gemm(a, b, 1, 4, 0.1f, NULL, 1.0f, &s, da, db);
    ck_assert_msg(fabsf(L) <= 1e-6f, "n = 1: loss %g", (double)L);
    ck_assert(s.p[0] == 1.0f); /* the probability of the positive */
    for (int i = 0; i < 4; i++)
        ck_assert(fabsf(da[i]) <= 1e-6f && fabsf(db[i]) <= 1e-6f);

    /* all rows zero: every logit is 0, the loss log n, no gradient */
    float z[12] = {0}, dz[12] = {0};
    L = iadsr__infonce_gemm(z, z, 3, 4, 0.1f, NULL, 1.0f, &s, dz, NULL);
    ck_assert(fabsf(L - logf(3.0f)) <= 1e-6f);
    for (int i = 0; i < 12; i++)
        ck_assert(dz[i] == 0.0f);

    /* n = 0: nothing read or written */
    da[0] = 7.0f;
    ck_assert(iadsr__infonce_gemm(a, b, 0, 4, 0.1f, NULL, 1.0f, &s, da,
                                  db) == 0.0f);
    ck_assert(da[0] == 7.0f);

    /* a tiny temperature does not overflow */
    float a3[6] = {1, 0, 0, 1, -1, 0}, b3[6] = {1, 0.1f, 0, 1, -1, 0.2f};
    float da3[6] = {0}, db3[6] = {0};
    L = iadsr__infonce_gemm(a3, b3, 3, 2, 1e-4f, NULL, 1.0f, &s, da3, db3);
    ck_assert_msg(isfinite(L) && L >= 0, "tau 1e-4: loss %g", (double)L);
    for (int i = 0; i < 9; i++)
        ck_assert(isfinite(s.p[i]) && s.p[i] >= 0 && s.p[i] <= 1);
    for (int i = 0; i < 6; i++)
        ck_assert(isfinite(da3[i]) && isfinite(db3[i]));
    pool_free();
}
END_TEST

/* ---- shared Stage 2 fixture ----------------------------------------------------- */

typedef struct s2_case {
    int d, D, n_items, R, S;
    const int32_t *items, *off;
    float *sem_rows; /* n_items x D (item i is row i - 1) */
    float *h;        /* R x d */
    float *w1, *w2;  /* D x d */
    float *wd, *bd;  /* d x d, d */
    float *emb;      /* (n_items + 1) x d, id-indexed */
    float *uvec;     /* S x D */
    int use_uvec[8]; /* per sequence: take its row of uvec */
    iadsr_semantic *sem;
} s2_case;

/* Four sequences of lengths 5, 1, 7, 4; item 3 repeats, item 11 appears
 * in two sequences. */
static const int32_t s2_items[] = {3, 7, 3, 12, 1,  /* seq 0 */
                                   9,                /* seq 1 */
                                   11, 2, 15, 3, 8, 6, 4, /* seq 2 */
                                   11, 13, 5, 10};   /* seq 3 */
static const int32_t s2_off[] = {0, 5, 6, 13, 17};
#define S2_R 17
#define S2_S 4
#define S2_NI 15

static void s2_setup(s2_case *c, uint64_t seed, int zero_item)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    memset(c, 0, sizeof *c);
    c->d = 8;
    c->D = 6;
    c->n_items = S2_NI;
    c->R = S2_R;
    c->S = S2_S;
    c->items = s2_items;
    c->off = s2_off;
    int d = c->d, D = c->D;
    c->sem_rows = falloc((size_t)S2_NI * D);
    c->h = falloc((size_t)S2_R * d);
    c->w1 = falloc((size_t)D * d);
    c->w2 = falloc((size_t)D * d);
    c->wd = falloc((size_t)d * d);
    c->bd = falloc((size_t)d);
    c->emb = falloc((size_t)(S2_NI + 1) * d);
    c->uvec = falloc((size_t)S2_S * D);
    fill_f(c->sem_rows, (size_t)S2_NI * D, 1.0, &r);
    fill_f(c->h, (size_t)S2_R * d, 1.0, &r);
    fill_f(c->w1, (size_t)D * d, 0.5, &r);
    fill_f(c->w2, (size_t)D * d, 0.5, &r);
    fill_f(c->wd, (size_t)d * d, 0.4, &r);
    fill_f(c->bd, (size_t)d, 0.2, &r);
    fill_f(c->emb, (size_t)(S2_NI + 1) * d, 0.5, &r);
    fill_f(c->uvec, (size_t)S2_S * D, 1.0, &r);
    memset(c->emb, 0, (size_t)d * sizeof(float)); /* padding row */
    if (zero_item > 0)
        memset(c->sem_rows + (size_t)(zero_item - 1) * D, 0,
               (size_t)D * sizeof(float));
    c->sem = make_sem(c->sem_rows, S2_NI, D);
}

static void s2_teardown(s2_case *c)
{
    iadsr_semantic_free(c->sem);
    c->sem = NULL;
    pool_free();
}

/* Test-only bit of s2_params' flags: the stable losses (paper = 0); without
 * it the cases check the paper's losses. */
#define S2_STABLE 0x80000000u

static iadsr__heads s2_params(const s2_case *c, float lam_a, float lam_r,
                               uint32_t flags)
{
    iadsr__heads st = {c->d,  c->D,  c->sem, c->w1,  c->w2,
                        c->wd, c->bd, 0.1f,   1.0f,  lam_a,
                        lam_r, flags & ~S2_STABLE, !(flags & S2_STABLE),
                        NULL, 0, NULL};
    return st;
}

static iadsr__batch s2_batch(const s2_case *c)
{
    iadsr__batch b = {.n_seq = c->S, .n_rows = c->R, .items = c->items,
                      .row_off = c->off};
    return b;
}

/* The sequences' long-term semantic vectors in double: the mean of the
 * item rows, or the given user vector. */
static double *ref_lsem(const s2_case *c)
{
    int D = c->D;
    double *ls = dalloc((size_t)c->S * D);
    for (int q = 0; q < c->S; q++) {
        double *o = ls + (size_t)q * D;
        if (c->use_uvec[q]) {
            for (int j = 0; j < D; j++)
                o[j] = (double)c->uvec[(size_t)q * D + j];
            continue;
        }
        int n = c->off[q + 1] - c->off[q];
        for (int t = c->off[q]; t < c->off[q + 1]; t++)
            for (int j = 0; j < D; j++)
                o[j] += (double)c->sem_rows[(size_t)(c->items[t] - 1) * D + j];
        for (int j = 0; j < D; j++)
            o[j] /= n > 0 ? n : 1;
    }
    return ls;
}

/* ---- 2. noise scores ------------------------------------------------------------------ */

/* Direct double computation of the score of every row. */
static void ref_scores(const s2_case *c, int collab, double *score)
{
    int d = c->d, D = c->D;
    double *ls = ref_lsem(c);
    for (int q = 0; q < c->S; q++) {
        double hbar[16], l[16];
        for (int k = 0; k < d; k++) {
            hbar[k] = -HUGE_VAL;
            for (int t = c->off[q]; t < c->off[q + 1]; t++)
                hbar[k] = fmax(hbar[k], (double)c->h[(size_t)t * d + k]);
            l[k] = 0;
            for (int j = 0; j < D; j++)
                l[k] += ls[(size_t)q * D + j] * (double)c->w2[(size_t)j * d + k];
        }
        for (int t = c->off[q]; t < c->off[q + 1]; t++) {
            double h[16], s[16];
            for (int k = 0; k < d; k++) {
                h[k] = (double)c->h[(size_t)t * d + k];
                s[k] = 0;
                for (int j = 0; j < D; j++)
                    s[k] += (double)c->sem_rows[(size_t)(c->items[t] - 1) * D + j] *
                            (double)c->w1[(size_t)j * d + k];
            }
            score[t] = collab ? 3.0 * cos_ref(hbar, h, d)
                              : cos_ref(l, h, d) + cos_ref(hbar, s, d) +
                                    cos_ref(h, s, d);
        }
    }
}

static void scores_compare(s2_case *c, int collab, const char *what)
{
    iadsr__heads_ws w;
    TU_OK(iadsr__heads_ws_alloc(&w, c->R, c->S, c->d, c->D, 0));
    iadsr__heads st =
        s2_params(c, 1.0f, 1.0f, collab ? IADSR_DENOISE_F_COLLAB_ONLY : 0u);
    iadsr__batch b = s2_batch(c);
    const float *uv[S2_S];
    for (int q = 0; q < c->S; q++)
        uv[q] = c->use_uvec[q] ? c->uvec + (size_t)q * c->D : NULL;
    float *score = falloc((size_t)c->R);
    for (int i = 0; i < c->R; i++)
        score[i] = NAN;
    iadsr__heads_scores(&st, &w, c->h, &b, uv, score);
    double *want = dalloc((size_t)c->R);
    ref_scores(c, collab, want);
    for (int t = 0; t < c->R; t++) {
        ck_assert_msg(isfinite(score[t]), "%s: score[%d] = %g", what, t,
                      (double)score[t]);
        ck_assert_msg(score[t] >= -3.0f - 1e-5f && score[t] <= 3.0f + 1e-5f,
                      "%s: score[%d] = %g outside [-3, 3]", what, t,
                      (double)score[t]);
        ck_assert_msg(fabs((double)score[t] - want[t]) <= 1e-5,
                      "%s: score[%d] = %.9g, expected %.9g", what, t,
                      (double)score[t], want[t]);
    }
    iadsr__heads_ws_free(&w);
}

START_TEST(test_scores)
{
    s2_case c;
    s2_setup(&c, 201, 0);
    scores_compare(&c, 0, "mean rows");
    /* a user vector for sequences 0 and 3 instead of the mean */
    c.use_uvec[0] = c.use_uvec[3] = 1;
    scores_compare(&c, 0, "user vectors");
    /* NULL uvec array = all means */
    iadsr__heads_ws w;
    TU_OK(iadsr__heads_ws_alloc(&w, c.R, c.S, c.d, c.D, 0));
    iadsr__heads st = s2_params(&c, 1, 1, 0);
    iadsr__batch b = s2_batch(&c);
    float a1[S2_R], a2[S2_R];
    const float *none[S2_S] = {NULL, NULL, NULL, NULL};
    iadsr__heads_scores(&st, &w, c.h, &b, NULL, a1);
    iadsr__heads_scores(&st, &w, c.h, &b, none, a2);
    ck_assert(memcmp(a1, a2, sizeof a1) == 0);
    iadsr__heads_ws_free(&w);
    s2_teardown(&c);
}
END_TEST

START_TEST(test_scores_collab_only)
{
    s2_case c;
    s2_setup(&c, 202, 0);
    scores_compare(&c, 1, "collab only");
    /* the semantic side is not used at all: garbage weights do not matter */
    for (int i = 0; i < c.D * c.d; i++)
        c.w1[i] = c.w2[i] = NAN;
    scores_compare(&c, 1, "collab only, NaN projections");
    s2_teardown(&c);
}
END_TEST

START_TEST(test_scores_zero_semantic_rows)
{
    s2_case c;
    s2_setup(&c, 203, 0);
    /* sequence 1 is the single item 9, sequence 3 is 11 13 5 10: make all
     * of their rows zero, and item 3 (repeated in sequence 0) too */
    static const int zero[] = {9, 11, 13, 5, 10, 3};
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        memset(c.sem_rows + (size_t)(zero[i] - 1) * c.D, 0,
               (size_t)c.D * sizeof(float));
    iadsr_semantic_free(c.sem);
    c.sem = make_sem(c.sem_rows, S2_NI, c.D);
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(c.sem), 6);
    scores_compare(&c, 0, "zero rows");
    /* a zero user vector as well */
    memset(c.uvec, 0, (size_t)c.D * sizeof(float));
    c.use_uvec[0] = 1;
    scores_compare(&c, 0, "zero rows and zero user vector");
    /* all-zero sequences: s = 0 and l = 0, only cos(hbar, s) = 0 etc. */
    iadsr__heads_ws w;
    TU_OK(iadsr__heads_ws_alloc(&w, c.R, c.S, c.d, c.D, 0));
    iadsr__heads st = s2_params(&c, 1, 1, 0);
    iadsr__batch b = s2_batch(&c);
    float sc[S2_R];
    iadsr__heads_scores(&st, &w, c.h, &b, NULL, sc);
    for (int t = s2_off[3]; t < s2_off[4]; t++)
        ck_assert_msg(sc[t] == 0.0f, "score[%d] = %g with no semantics", t,
                      (double)sc[t]);
    ck_assert(sc[s2_off[1]] == 0.0f);
    iadsr__heads_ws_free(&w);
    s2_teardown(&c);
}
END_TEST

/* ---- 3. the training step against a double reference ---------------------------- */

typedef struct ref_out {
    double loss;
    double *score, *m, *gmargin; /* R: score, mask, |score + g| */
    double *dh, *demb, *dw1, *dw2, *dwd, *dbd;
} ref_out;

/* The whole Stage 2 training loss and its gradients in double, composed
 * from the _f64 layers with the weighting documented in src/denoise/heads.h. */
static void ref_train(const s2_case *c, const iadsr__heads *st,
                      const double *u, int batch_rows, int batch_seqs,
                      ref_out *o)
{
    int d = c->d, D = c->D, R = c->R, S = c->S, ni = c->n_items;
    int collab = (st->flags & IADSR_DENOISE_F_COLLAB_ONLY) != 0;
    size_t Rd = (size_t)R * d, Sd = (size_t)S * d;
    double *h = to_f64(c->h, Rd);
    double *W1 = to_f64(c->w1, (size_t)D * d), *W2 = to_f64(c->w2, (size_t)D * d);
    double *Wd = to_f64(c->wd, (size_t)d * d), *bd = to_f64(c->bd, (size_t)d);
    double *E = to_f64(c->emb, (size_t)(ni + 1) * d);
    /* id-indexed semantic table (row 0 unused) and the gathered rows */
    double *Sem = dalloc((size_t)(ni + 1) * D), *X = dalloc((size_t)R * D);
    for (int i = 1; i <= ni; i++)
        for (int j = 0; j < D; j++)
            Sem[(size_t)i * D + j] = (double)c->sem_rows[(size_t)(i - 1) * D + j];
    for (int t = 0; t < R; t++)
        memcpy(X + (size_t)t * D, Sem + (size_t)c->items[t] * D,
               (size_t)D * sizeof(double));
    double *s = dalloc(Rd), *ls = ref_lsem(c), *l = dalloc(Sd);
    iadsr__linear_fwd_f64(X, R, D, W1, NULL, d, s);
    iadsr__linear_fwd_f64(ls, S, D, W2, NULL, d, l);
    double *hbar = dalloc(Sd), *le = dalloc(Rd), *he = dalloc(Rd);
    int32_t *arg = ialloc(Sd);
    iadsr__maxpool_fwd_f64(h, d, c->off, S, hbar, arg);
    iadsr__seq_expand_f64(l, d, c->off, S, le);
    iadsr__seq_expand_f64(hbar, d, c->off, S, he);
    double *c1 = dalloc((size_t)R), *c2 = dalloc((size_t)R);
    double *c3 = dalloc((size_t)R);
    o->score = dalloc((size_t)R);
    if (collab) {
        iadsr__cos_rows_fwd_f64(he, h, R, d, c1);
        for (int t = 0; t < R; t++)
            o->score[t] = 3.0 * c1[t];
    } else {
        iadsr__cos_rows_fwd_f64(le, h, R, d, c1);
        iadsr__cos_rows_fwd_f64(he, s, R, d, c2);
        iadsr__cos_rows_fwd_f64(h, s, R, d, c3);
        for (int t = 0; t < R; t++)
            o->score[t] = c1[t] + c2[t] + c3[t];
    }
    double *y = dalloc((size_t)R);
    o->m = dalloc((size_t)R);
    o->gmargin = dalloc((size_t)R);
    iadsr__gumbel_gate_fwd_f64(o->score, u, R, (double)st->tau_gumbel, y, o->m);
    for (int t = 0; t < R; t++)
        o->gmargin[t] = fabs(o->score[t] - log(-log(u[t])));

    o->dh = dalloc(Rd);
    o->demb = dalloc((size_t)(ni + 1) * d);
    o->dw1 = dalloc((size_t)D * d);
    o->dw2 = dalloc((size_t)D * d);
    o->dwd = dalloc((size_t)d * d);
    o->dbd = dalloc((size_t)d);
    double *ds = dalloc(Rd), *dl = dalloc(Sd), *dhbar = dalloc(Sd);
    double *dle = dalloc(Rd), *dhe = dalloc(Rd), *dscore = dalloc((size_t)R);
    double *dm = dalloc((size_t)R);
    o->loss = 0;
    if (st->lambda_recon > 0 && !st->paper) {
        /* the stable form: per element, and only the decoder learns */
        double wt = (double)st->lambda_recon * S / batch_seqs / d;
        double *mh = dalloc(Rd), *res = dalloc(Rd), *tmp = dalloc(Rd);
        double Lr = iadsr__recon_fwd_f64(h, o->m, d, Wd, bd, E, c->items,
                                         c->off, S, mh, res);
        o->loss += wt * Lr;
        iadsr__recon_bwd_f64(h, o->m, d, Wd, c->items, c->off, S, wt, mh, res,
                             tmp, NULL, NULL, o->dwd, o->dbd, NULL);
    } else if (st->lambda_recon > 0) {
        double wt = (double)st->lambda_recon * S / batch_seqs;
        double *mh = dalloc(Rd), *res = dalloc(Rd), *tmp = dalloc(Rd);
        double Lr = iadsr__recon_fwd_f64(h, o->m, d, Wd, bd, E, c->items,
                                         c->off, S, mh, res);
        o->loss += wt * Lr;
        iadsr__recon_bwd_f64(h, o->m, d, Wd, c->items, c->off, S, wt, mh, res,
                             tmp, o->dh, dm, o->dwd, o->dbd, o->demb);
        iadsr__gumbel_gate_bwd_f64(dm, y, R, (double)st->tau_gumbel, dscore);
        if (collab) {
            double *dc = dalloc((size_t)R);
            for (int t = 0; t < R; t++)
                dc[t] = 3.0 * dscore[t];
            iadsr__cos_rows_bwd_f64(he, h, R, d, dc, dhe, o->dh);
        } else {
            iadsr__cos_rows_bwd_f64(le, h, R, d, dscore, dle, o->dh);
            iadsr__cos_rows_bwd_f64(he, s, R, d, dscore, dhe, ds);
            iadsr__cos_rows_bwd_f64(h, s, R, d, dscore, o->dh, ds);
        }
    }
    if (st->lambda_align > 0) {
        double *p = dalloc((size_t)R * R), *p2 = dalloc((size_t)S * S);
        double wa = (double)st->lambda_align * R / batch_rows;
        /* the stable form: the user pair weighs as one position, and rows
         * of the same item are no negatives */
        double wb = (double)st->lambda_align * S /
                    (st->paper ? batch_seqs : batch_rows);
        double tau = (double)st->tau_align;
        const int32_t *keys = st->paper ? NULL : c->items;
        o->loss += wa * iadsr__infonce_fwd_f64(h, s, R, d, tau, keys, p);
        iadsr__infonce_bwd_f64(h, s, R, d, tau, p, wa, o->dh, ds);
        o->loss += wb * iadsr__infonce_fwd_f64(hbar, l, S, d, tau, NULL, p2);
        iadsr__infonce_bwd_f64(hbar, l, S, d, tau, p2, wb, dhbar, dl);
    }
    iadsr__seq_expand_bwd_f64(dhe, d, c->off, S, dhbar);
    iadsr__maxpool_bwd_f64(dhbar, d, arg, S, o->dh);
    iadsr__seq_expand_bwd_f64(dle, d, c->off, S, dl);
    iadsr__linear_bwd_f64(ls, dl, S, D, W2, d, o->dw2, NULL, NULL, 0);
    iadsr__linear_bwd_f64(X, ds, R, D, W1, d, o->dw1, NULL, NULL, 0);
}

typedef struct f32_out {
    double loss;
    float *mask, *dh, *demb, *dw1, *dw2, *dwd, *dbd;
} f32_out;

static void run_train(const s2_case *c, const iadsr__heads *st,
                      uint64_t rng_seed, int batch_rows, int batch_seqs,
                      f32_out *o)
{
    int d = c->d, D = c->D;
    iadsr__heads_ws w;
    TU_OK(iadsr__heads_ws_alloc(&w, c->R, c->S, d, D, 1));
    o->mask = falloc((size_t)c->R);
    o->dh = falloc((size_t)c->R * d);
    o->demb = falloc((size_t)(c->n_items + 1) * d);
    o->dw1 = falloc((size_t)D * d);
    o->dw2 = falloc((size_t)D * d);
    o->dwd = falloc((size_t)d * d);
    o->dbd = falloc((size_t)d);
    iadsr__heads_grads g = {o->dh, o->demb, o->dw1, o->dw2, o->dwd, o->dbd};
    const float *uv[S2_S];
    for (int q = 0; q < c->S; q++)
        uv[q] = c->use_uvec[q] ? c->uvec + (size_t)q * D : NULL;
    iadsr__batch b = s2_batch(c);
    iadsr__rng rng;
    iadsr__rng_seed(&rng, rng_seed);
    o->loss = iadsr__heads_train(st, &w, c->h, &b, uv, c->emb, &rng,
                                  batch_rows, batch_seqs, &g, o->mask);
    iadsr__heads_ws_free(&w);
}

/* The uniforms iadsr__heads_train draws: R floats, in row order, first. */
static double *draw_uniforms(int R, uint64_t rng_seed)
{
    iadsr__rng rng;
    iadsr__rng_seed(&rng, rng_seed);
    double *u = dalloc((size_t)R);
    for (int t = 0; t < R; t++)
        u[t] = (double)iadsr__rng_float(&rng);
    return u;
}

static void train_compare(s2_case *c, float lam_a, float lam_r,
                          uint32_t flags, int batch_rows, int batch_seqs,
                          uint64_t rng_seed, const char *what)
{
    int d = c->d, D = c->D, R = c->R;
    iadsr__heads st = s2_params(c, lam_a, lam_r, flags);
    double *u = draw_uniforms(R, rng_seed);
    ref_out ref;
    ref_train(c, &st, u, batch_rows, batch_seqs, &ref);
    /* the hard gate must not sit on its threshold (float and double would
     * legitimately disagree there), and both decisions must occur */
    int ones = 0;
    for (int t = 0; t < R; t++) {
        ck_assert_msg(ref.gmargin[t] > 1e-3,
                      "%s: row %d is on the gate threshold (%g): pick "
                      "another seed",
                      what, t, ref.gmargin[t]);
        ones += ref.m[t] == 1.0;
    }
    ck_assert_msg(ones > 0 && ones < R, "%s: the gate keeps %d of %d", what,
                  ones, R);
    f32_out f;
    run_train(c, &st, rng_seed, batch_rows, batch_seqs, &f);
    for (int t = 0; t < R; t++)
        ck_assert_msg(f.mask[t] == (float)ref.m[t],
                      "%s: mask[%d] = %g, reference %g", what, t,
                      (double)f.mask[t], ref.m[t]);
    char name[96];
    float lf = (float)f.loss;
    snprintf(name, sizeof name, "%s loss", what);
    check_close(name, &lf, &ref.loss, 1, TOL_S2, 1e-6);
    ck_assert_msg(ref.loss > 0, "%s: reference loss %g", what, ref.loss);
    struct {
        const char *n;
        const float *f;
        const double *r;
        size_t len;
    } g[] = {{"dh", f.dh, ref.dh, (size_t)R * d},
             {"demb", f.demb, ref.demb, (size_t)(c->n_items + 1) * d},
             {"dw1", f.dw1, ref.dw1, (size_t)D * d},
             {"dw2", f.dw2, ref.dw2, (size_t)D * d},
             {"dwd", f.dwd, ref.dwd, (size_t)d * d},
             {"dbd", f.dbd, ref.dbd, (size_t)d}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        snprintf(name, sizeof name, "%s %s", what, g[i].n);
        if (max_abs(g[i].r, g[i].len) == 0.0) {
            assert_all_zero(name, g[i].f, g[i].len); /* exactly nothing */
            continue;
        }
        check_close(name, g[i].f, g[i].r, g[i].len, TOL_S2, 0.0);
    }
    /* which gradients exist follows from the active terms */
    int recon = lam_r > 0, align = lam_a > 0;
    int collab = (flags & IADSR_DENOISE_F_COLLAB_ONLY) != 0;
    /* the stable reconstruction reaches the decoder only */
    int into = recon && !(flags & S2_STABLE);
    ck_assert((max_abs(ref.dh, (size_t)R * d) > 0) == (align || into));
    ck_assert((max_abs(ref.dwd, (size_t)d * d) > 0) == recon);
    ck_assert((max_abs(ref.demb, (size_t)(c->n_items + 1) * d) > 0) == into);
    ck_assert((max_abs(ref.dw1, (size_t)D * d) > 0) ==
              (align || (into && !collab)));
    ck_assert((max_abs(ref.dw2, (size_t)D * d) > 0) ==
              (align || (into && !collab)));
    /* the padding row of the item table never gets a gradient */
    assert_all_zero("demb row 0", f.demb, (size_t)d);
}

START_TEST(test_train_align_only)
{
    s2_case c;
    s2_setup(&c, 301, 0);
    train_compare(&c, 1.0f, 0.0f, 0, S2_R, S2_S, 3011, "align");
    /* the share of a larger batch: per-row and per-user weights differ */
    train_compare(&c, 0.7f, 0.0f, 0, 3 * S2_R, S2_S + 5, 3012,
                  "align, share");
    /* the stable form: same-item rows masked (item 3 twice in sequence 0),
     * the user pair weighted per position */
    train_compare(&c, 1.0f, 0.0f, S2_STABLE, S2_R, S2_S, 3013,
                  "align, stable");
    train_compare(&c, 0.7f, 0.0f, S2_STABLE, 3 * S2_R, S2_S + 5, 3014,
                  "align, stable, share");
    s2_teardown(&c);
}
END_TEST

START_TEST(test_train_recon_only)
{
    s2_case c;
    s2_setup(&c, 302, 0);
    train_compare(&c, 0.0f, 1.0f, 0, S2_R, S2_S, 3021, "recon");
    train_compare(&c, 0.0f, 2.5f, 0, 2 * S2_R, 2 * S2_S, 3022,
                  "recon, share");
    train_compare(&c, 0.0f, 1.0f, S2_STABLE, S2_R, S2_S, 3023,
                  "recon, stable");
    s2_teardown(&c);
}
END_TEST

START_TEST(test_train_both)
{
    s2_case c;
    s2_setup(&c, 303, 12); /* item 12 has an all-zero semantic row */
    train_compare(&c, 1.0f, 1.0f, 0, S2_R, S2_S, 3031, "both");
    c.use_uvec[1] = c.use_uvec[2] = 1;
    train_compare(&c, 0.5f, 2.0f, 0, S2_R + 9, S2_S + 2, 3032,
                  "both, user vectors");
    train_compare(&c, 0.5f, 2.0f, S2_STABLE, S2_R + 9, S2_S + 2, 3033,
                  "both, user vectors, stable");
    s2_teardown(&c);
}
END_TEST

START_TEST(test_train_collab_only)
{
    s2_case c;
    s2_setup(&c, 304, 0);
    train_compare(&c, 1.0f, 1.0f, IADSR_DENOISE_F_COLLAB_ONLY, S2_R, S2_S,
                  3041, "collab");
    train_compare(&c, 0.0f, 1.0f, IADSR_DENOISE_F_COLLAB_ONLY, S2_R, S2_S,
                  3042, "collab, recon only");
    train_compare(&c, 1.0f, 0.0f, IADSR_DENOISE_F_COLLAB_ONLY, S2_R, S2_S,
                  3043, "collab, align only");
    s2_teardown(&c);
}
END_TEST

/* The step consumes exactly R uniforms of the rng, whatever else it does,
 * and leaves the gradients it does not own alone when they are NULL. */
START_TEST(test_train_rng_and_null_grads)
{
    s2_case c;
    s2_setup(&c, 305, 0);
    iadsr__heads st = s2_params(&c, 1.0f, 1.0f, 0);
    int d = c.d, D = c.D;
    iadsr__heads_ws w;
    TU_OK(iadsr__heads_ws_alloc(&w, c.R, c.S, d, D, 1));
    iadsr__batch b = s2_batch(&c);
    float *dh = falloc((size_t)c.R * d), *dh2 = falloc((size_t)c.R * d);
    float *dwd = falloc((size_t)d * d), *dbd = falloc((size_t)d);
    float *demb = falloc((size_t)(S2_NI + 1) * d);
    float *dw1 = falloc((size_t)D * d), *dw2 = falloc((size_t)D * d);
    iadsr__heads_grads g = {dh, demb, dw1, dw2, dwd, dbd};
    iadsr__rng r1, r2;
    iadsr__rng_seed(&r1, 77);
    iadsr__rng_seed(&r2, 77);
    double l1 = iadsr__heads_train(&st, &w, c.h, &b, NULL, c.emb, &r1, c.R,
                                    c.S, &g, NULL);
    for (int t = 0; t < c.R; t++)
        (void)iadsr__rng_float(&r2);
    ck_assert_msg(iadsr__rng_u64(&r1) == iadsr__rng_u64(&r2),
                  "heads_train did not consume exactly R uniforms");
    /* the optional targets: same dh and loss without them */
    float *dwd2 = falloc((size_t)d * d);
    iadsr__heads_grads g2 = {dh2, NULL, NULL, NULL, dwd2, NULL};
    iadsr__rng_seed(&r1, 77);
    double l2 = iadsr__heads_train(&st, &w, c.h, &b, NULL, c.emb, &r1, c.R,
                                    c.S, &g2, NULL);
    ck_assert(l1 == l2);
    ck_assert(memcmp(dh, dh2, (size_t)c.R * d * sizeof(float)) == 0);
    ck_assert(memcmp(dwd, dwd2, (size_t)d * d * sizeof(float)) == 0);
    /* gradients are added: a second step on the same buffers doubles them */
    iadsr__rng_seed(&r1, 77);
    (void)iadsr__heads_train(&st, &w, c.h, &b, NULL, c.emb, &r1, c.R, c.S,
                              &g, NULL);
    for (int i = 0; i < c.R * d; i++)
        ck_assert(fabsf(dh[i] - 2 * dh2[i]) <= 1e-6f * (1 + fabsf(dh[i])));
    /* an empty share: no loss, nothing drawn */
    iadsr__batch e = {.items = c.items, .row_off = s2_off};
    iadsr__rng_seed(&r1, 78);
    iadsr__rng_seed(&r2, 78);
    ck_assert(iadsr__heads_train(&st, &w, c.h, &e, NULL, c.emb, &r1, c.R,
                                  c.S, &g, NULL) == 0.0);
    ck_assert(iadsr__rng_u64(&r1) == iadsr__rng_u64(&r2));
    iadsr__heads_ws_free(&w);
    s2_teardown(&c);
}
END_TEST

/* ---- 4. finite differences in float (second opinion) ---------------------------- */

typedef struct fd_ctx {
    s2_case *c;
    iadsr__heads st;
    iadsr__heads_ws w;
    float *dh, *dw1, *dw2, *dwd;
    float *sdh, *sdw1, *sdw2; /* scratch targets of the perturbed calls */
} fd_ctx;

static double fd_loss(fd_ctx *x, int grads)
{
    s2_case *c = x->c;
    iadsr__batch b = s2_batch(c);
    iadsr__rng r;
    iadsr__rng_seed(&r, 5);
    iadsr__heads_grads g = {x->dh, NULL, x->dw1, x->dw2, x->dwd, NULL};
    if (grads) {
        memset(x->dh, 0, (size_t)c->R * c->d * sizeof(float));
        memset(x->dw1, 0, (size_t)c->D * c->d * sizeof(float));
        memset(x->dw2, 0, (size_t)c->D * c->d * sizeof(float));
    }
    iadsr__heads_grads scratch = {x->sdh, NULL, x->sdw1, x->sdw2, x->dwd,
                                   NULL};
    return iadsr__heads_train(&x->st, &x->w, c->h, &b, NULL, c->emb, &r,
                               c->R, c->S, grads ? &g : &scratch, NULL);
}

static void fd_check(const char *what, fd_ctx *x, float *param, float analytic)
{
    const float eps = 1e-2f;
    float v = *param;
    *param = v + eps;
    double lp = fd_loss(x, 0);
    *param = v - eps;
    double lm = fd_loss(x, 0);
    *param = v;
    double fd = (lp - lm) / (2.0 * (double)eps);
    double err = fabs(fd - (double)analytic);
    if (verbose())
        fprintf(stderr, "  fd %-10s analytic %-12.6g fd %-12.6g err %.3g\n",
                what, (double)analytic, fd, err);
    ck_assert_msg(err <= 0.03 * fabs(fd) + 2e-3,
                  "%s: analytic %.6g vs finite difference %.6g", what,
                  (double)analytic, fd);
}

/* the logit of item under h[row], in double */
static double ref_z(const s2_case *c, int row, int32_t item)
{
    double z = 0;
    for (int k = 0; k < c->d; k++)
        z += (double)c->h[(size_t)row * c->d + k] *
             (double)c->emb[(size_t)item * c->d + k];
    return z;
}

/* log p(item | h[row]) under the softmax over the item table, in double */
static double ref_logp(const s2_case *c, int row, int32_t item)
{
    int d = c->d;
    double z[S2_NI + 1], mx = -HUGE_VAL, sum = 0;
    for (int j = 1; j <= c->n_items; j++) {
        z[j] = 0;
        for (int k = 0; k < d; k++)
            z[j] += (double)c->h[(size_t)row * d + k] *
                    (double)c->emb[(size_t)j * d + k];
        mx = z[j] > mx ? z[j] : mx;
    }
    for (int j = 1; j <= c->n_items; j++)
        sum += exp(z[j] - mx);
    return z[item] - mx - log(sum);
}

/* The detector's loss against finite differences (float, loss summed in
 * double): the weights, W1 and W2, with a user vector on one sequence and
 * a one-row sequence (no leave-one-out view). */
typedef struct det_ctx {
    s2_case *c;
    iadsr__heads st;
    iadsr__heads_ws w;
    float det[IADSR__GATE_DET];
    float noise[S2_R];
    float *ddet, *dw1, *dw2, *sdet, *sdw1, *sdw2;
    const float *uv[S2_S];
} det_ctx;

static double det_loss(det_ctx *x, int grads)
{
    s2_case *c = x->c;
    iadsr__batch b = s2_batch(c);
    if (grads) {
        memset(x->ddet, 0, IADSR__GATE_DET * sizeof(float));
        memset(x->dw1, 0, (size_t)c->D * c->d * sizeof(float));
        memset(x->dw2, 0, (size_t)c->D * c->d * sizeof(float));
    }
    return iadsr__heads_detect_train(&x->st, &x->w, c->h, &b, x->uv, x->det,
                                     x->noise, c->R, grads ? x->ddet : x->sdet,
                                     grads ? x->dw1 : x->sdw1,
                                     grads ? x->dw2 : x->sdw2);
}

static void det_fd(const char *what, det_ctx *x, float *param, float analytic)
{
    const float eps = 1e-2f;
    float v = *param;
    *param = v + eps;
    double lp = det_loss(x, 0);
    *param = v - eps;
    double lm = det_loss(x, 0);
    *param = v;
    double fd = (lp - lm) / (2.0 * (double)eps);
    ck_assert_msg(fabs(fd - (double)analytic) <= 0.03 * fabs(fd) + 2e-4,
                  "detector %s: analytic %.6g vs finite difference %.6g", what,
                  (double)analytic, fd);
}

/* Feature (9) of row r before centring, in double: the cosine of its
 * normalised semantic row with the sum of the sequence's other normalised
 * rows, or with the user vector when given. */
static double ref_text(const s2_case *c, int q, int r, const float *uv)
{
    const int D = c->D;
    double sum[16] = {0}, x[16], nx = 0;
    ck_assert_int_le(D, 16);
    const float *xr = c->sem_rows + (size_t)(c->items[r] - 1) * D;
    for (int k = 0; k < D; k++)
        nx += (double)xr[k] * xr[k];
    for (int k = 0; k < D; k++)
        x[k] = xr[k] / sqrt(nx);
    if (uv) {
        for (int k = 0; k < D; k++)
            sum[k] = uv[k];
    } else {
        for (int j = c->off[q]; j < c->off[q + 1]; j++) {
            if (j == r)
                continue;
            const float *y = c->sem_rows + (size_t)(c->items[j] - 1) * D;
            double ny = 0;
            for (int k = 0; k < D; k++)
                ny += (double)y[k] * y[k];
            for (int k = 0; k < D; k++)
                sum[k] += y[k] / sqrt(ny);
        }
    }
    double dot = 0, ns = 0;
    for (int k = 0; k < D; k++) {
        dot += x[k] * sum[k];
        ns += sum[k] * sum[k];
    }
    return ns > 1e-12 ? dot / sqrt(ns) : 0.0;
}

START_TEST(test_detect_finite_differences)
{
    /* mode 0: the full detector, 1: collaborative-only, 2: with the text
     * consistency (IADSR_DENOISE_F_TEXT) */
    for (int mode = 0; mode <= 2; mode++) {
        int collab = mode == 1, text = mode == 2;
        s2_case c;
        s2_setup(&c, 411 + (uint64_t)mode, 0);
        det_ctx x;
        memset(&x, 0, sizeof x);
        x.c = &c;
        x.st = s2_params(&c, 0.0f, 0.0f,
                         collab ? IADSR_DENOISE_F_COLLAB_ONLY
                         : text ? IADSR_DENOISE_F_TEXT
                                : 0);
        int d = c.d, D = c.D;
        /* the likelihood features read the item table rows 1..n */
        x.st.e1 = c.emb + d;
        x.st.n_items = c.n_items;
        TU_OK(iadsr__heads_ws_alloc(&x.w, c.R, c.S, d, D, 1));
        TU_OK(iadsr__heads_ws_ctx(&x.w, c.n_items));
        /* det[8] is the bias, det[9] the text consistency's weight */
        static const float det0[IADSR__GATE_DET] = {
            0.8f, -0.5f, 1.2f, 0.7f, 0.6f, -0.9f, 0.4f, -0.3f, 0.3f, 1.1f};
        memcpy(x.det, det0, sizeof det0);
        x.noise[2] = x.noise[8] = x.noise[14] = 1.0f;
        x.uv[3] = c.uvec + (size_t)3 * D; /* a host's user vector */
        x.ddet = falloc(IADSR__GATE_DET);
        x.sdet = falloc(IADSR__GATE_DET);
        x.dw1 = falloc((size_t)D * d);
        x.dw2 = falloc((size_t)D * d);
        x.sdw1 = falloc((size_t)D * d);
        x.sdw2 = falloc((size_t)D * d);
        double L = det_loss(&x, 1);
        ck_assert(isfinite(L) && L > 0);
        /* the full detector trains the projections, the collaborative one
         * only its weights */
        float g1 = 0, g2 = 0;
        for (int i = 0; i < D * d; i++) {
            g1 = fmaxf(g1, fabsf(x.dw1[i]));
            g2 = fmaxf(g2, fabsf(x.dw2[i]));
        }
        ck_assert_msg(collab ? (g1 == 0 && g2 == 0) : (g1 > 1e-6f && g2 > 1e-6f),
                      "detector (collab %d): max |dW1| %g, |dW2| %g", collab,
                      (double)g1, (double)g2);
        /* the logits are those of iadsr__heads_detect, and each feature is
         * centred on its sequence */
        float logit[S2_R];
        iadsr__batch b = s2_batch(&c);
        iadsr__heads_detect(&x.st, &x.w, c.h, &b, x.uv, x.det, logit);
        for (int q = 0; q < c.S; q++)
            for (int k = 0; k < IADSR__DET_FEATURES; k++) {
                double m = 0;
                for (int r = c.off[q]; r < c.off[q + 1]; r++)
                    m += x.w.feat[(size_t)r * IADSR__DET_FEATURES + k];
                ck_assert_msg(fabs(m) < 1e-5, "feature %d of sequence %d "
                              "sums to %g", k, q, m);
            }
        /* the two likelihood features against a double reference */
        for (int q = 0; q < c.S; q++) {
            int r0 = c.off[q], r1 = c.off[q + 1];
            double lp7[S2_R], lp8[S2_R], m7 = 0, m8 = 0;
            for (int r = r0; r < r1; r++)
                lp7[r] = r > r0 ? ref_logp(&c, r - 1, c.items[r]) : 0.0;
            for (int r = r0 + 1; r < r1 - 1; r++)
                lp8[r] = lp7[r + 1] - ref_logp(&c, r - 1, c.items[r + 1]);
            for (int r = r0 + 1; r < r1; r++)
                m7 += lp7[r] / (double)(r1 - r0 - 1);
            for (int r = r0 + 1; r < r1 - 1; r++)
                m8 += lp8[r] / (double)(r1 - r0 - 2);
            for (int r = r0; r < r1; r++) {
                double w7 = r > r0 ? lp7[r] - m7 : 0.0;
                double w8 = r > r0 && r < r1 - 1 ? lp8[r] - m8 : 0.0;
                const float *f = x.w.feat + (size_t)r * IADSR__DET_FEATURES;
                ck_assert_msg(fabs(f[6] - w7) < 1e-4 && fabs(f[7] - w8) < 1e-4,
                              "row %d: likelihood features %g %g, want %g %g",
                              r, (double)f[6], (double)f[7], w7, w8);
            }
        }
        /* the text consistency against a double reference, 0 without its
         * flag (its weight then has no gradient) */
        for (int q = 0; q < c.S; q++) {
            int r0 = c.off[q], r1 = c.off[q + 1];
            const float *uv = x.uv[q];
            double t[S2_R], m9 = 0;
            for (int r = r0; r < r1; r++) {
                t[r] = text && (uv || r1 - r0 > 1) ? ref_text(&c, q, r, uv)
                                                   : 0.0;
                m9 += t[r] / (double)(r1 - r0);
            }
            for (int r = r0; r < r1; r++) {
                float f9 = x.w.feat[(size_t)r * IADSR__DET_FEATURES + 8];
                ck_assert_msg(fabs(f9 - (t[r] - m9)) < 1e-5,
                              "mode %d row %d: text feature %g, want %g", mode,
                              r, (double)f9, t[r] - m9);
                if (text && r1 - r0 > 2)
                    ck_assert(f9 != 0.0f); /* not vacuous */
            }
        }
        if (!text)
            ck_assert(x.ddet[iadsr__det_w(8)] == 0.0f);
        /* with the rows' log-sum-exps given (the training's path), the
         * same features and logits without logits of their own */
        {
            float lse[S2_R], logit2[S2_R], feat1[S2_R * IADSR__DET_FEATURES];
            memcpy(feat1, x.w.feat, sizeof feat1);
            for (int r = 0; r < c.R; r++)
                lse[r] = (float)(-ref_logp(&c, r, 1) + ref_z(&c, r, 1));
            x.st.lse = lse;
            iadsr__heads_detect(&x.st, &x.w, c.h, &b, x.uv, x.det, logit2);
            x.st.lse = NULL;
            for (int i = 0; i < c.R * IADSR__DET_FEATURES; i++)
                ck_assert_msg(fabsf(feat1[i] - x.w.feat[i]) < 1e-4f,
                              "feature %d of row %d: %g with lse, %g without",
                              i % IADSR__DET_FEATURES, i / IADSR__DET_FEATURES,
                              (double)x.w.feat[i], (double)feat1[i]);
            for (int r = 0; r < c.R; r++)
                ck_assert(fabsf(logit[r] - logit2[r]) < 1e-3f);
        }
        char what[32];
        for (int k = 0; k <= IADSR__DET_FEATURES; k++) {
            snprintf(what, sizeof what, "det[%d]", k);
            det_fd(what, &x, &x.det[k], x.ddet[k]);
        }
        for (int k = IADSR__DET_FEATURES + 1; k < IADSR__GATE_DET; k++)
            ck_assert(x.ddet[k] == 0.0f); /* spare slots stay untouched */
        static const int w_idx[] = {0, 5, 13, 22, 31, 47};
        for (size_t i = 0; i < sizeof w_idx / sizeof w_idx[0]; i++) {
            int k = w_idx[i];
            snprintf(what, sizeof what, "W1[%d]", k);
            det_fd(what, &x, &c.w1[k], x.dw1[k]);
            snprintf(what, sizeof what, "W2[%d]", k);
            det_fd(what, &x, &c.w2[k], x.dw2[k]);
            if (collab) /* the collaborative features need no projection */
                ck_assert(x.dw1[k] == 0.0f && x.dw2[k] == 0.0f);
        }
        iadsr__heads_ws_free(&x.w);
        s2_teardown(&c);
    }
}
END_TEST

START_TEST(test_train_finite_differences)
{
    s2_case c;
    s2_setup(&c, 401, 0);
    fd_ctx x;
    x.c = &c;
    x.st = s2_params(&c, 1.0f, 0.0f, 0);
    int d = c.d, D = c.D;
    TU_OK(iadsr__heads_ws_alloc(&x.w, c.R, c.S, d, D, 1));
    x.dh = falloc((size_t)c.R * d);
    x.dw1 = falloc((size_t)D * d);
    x.dw2 = falloc((size_t)D * d);
    x.dwd = falloc((size_t)d * d);
    x.sdh = falloc((size_t)c.R * d);
    x.sdw1 = falloc((size_t)D * d);
    x.sdw2 = falloc((size_t)D * d);
    fd_loss(&x, 1);
    static const int w_idx[] = {0, 5, 13, 22, 31, 47};
    char what[32];
    for (size_t i = 0; i < sizeof w_idx / sizeof w_idx[0]; i++) {
        int k = w_idx[i];
        snprintf(what, sizeof what, "W1[%d]", k);
        fd_check(what, &x, &c.w1[k], x.dw1[k]);
        snprintf(what, sizeof what, "W2[%d]", k);
        fd_check(what, &x, &c.w2[k], x.dw2[k]);
    }
    /* entries of h away from the max-pool's kinks: not a column maximum of
     * their sequence and not within 2 eps of it */
    int checked = 0;
    for (int q = 0; q < c.S && checked < 8; q++)
        for (int t = c.off[q]; t < c.off[q + 1] && checked < 8; t++)
            for (int k = (t * 3) % d; k < d && checked < 8; k += 3) {
                float mx = -INFINITY;
                for (int r = c.off[q]; r < c.off[q + 1]; r++)
                    if (r != t)
                        mx = fmaxf(mx, c.h[(size_t)r * d + k]);
                if (!(c.h[(size_t)t * d + k] < mx - 0.05f))
                    continue;
                snprintf(what, sizeof what, "h[%d,%d]", t, k);
                fd_check(what, &x, &c.h[(size_t)t * d + k],
                         x.dh[(size_t)t * d + k]);
                checked++;
            }
    ck_assert_int_ge(checked, 6);
    iadsr__heads_ws_free(&x.w);
    s2_teardown(&c);
}
END_TEST

/* ---- 5. workspace ---------------------------------------------------------------- */

START_TEST(test_ws_alloc_failures)
{
    for (int training = 0; training <= 1; training++) {
        long k;
        for (k = 1; k < 200; k++) {
            long live = iadsr__alloc_live();
            iadsr__heads_ws w;
            iadsr__alloc_fail_after(k, 0);
            int rc = iadsr__heads_ws_alloc(&w, 40, 6, 8, 5, training);
            long made = iadsr__alloc_fail_after(0, 0);
            if (made < k) {
                ck_assert_int_eq(rc, IADSR_OK);
                iadsr__heads_ws_free(&w);
                ck_assert_int_eq(iadsr__alloc_live(), live);
                break;
            }
            ck_assert_int_eq(rc, IADSR_ERR_NOMEM);
            ck_assert_int_eq(iadsr__alloc_live(), live);
        }
        ck_assert(k > 1 && k < 200);
    }
}
END_TEST

Suite *suite_denoise_heads(void)
{
    Suite *s = suite_create("denoise_heads");
    TCase *tc = tcase_create("infonce");
    tcase_add_test(tc, test_infonce_gemm_vs_loop);
    tcase_add_test(tc, test_infonce_gemm_edge);
    suite_add_tcase(s, tc);
    tc = tcase_create("scores");
    tcase_add_test(tc, test_scores);
    tcase_add_test(tc, test_scores_collab_only);
    tcase_add_test(tc, test_scores_zero_semantic_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("train");
    tcase_add_test(tc, test_train_align_only);
    tcase_add_test(tc, test_train_recon_only);
    tcase_add_test(tc, test_train_both);
    tcase_add_test(tc, test_train_collab_only);
    tcase_add_test(tc, test_train_rng_and_null_grads);
    tcase_add_test(tc, test_train_finite_differences);
    tcase_add_test(tc, test_detect_finite_differences);
    tcase_add_test(tc, test_ws_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
