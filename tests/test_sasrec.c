/* Tests: the SASRec layers (src/backbone/sasrec_template.h) and the math
 * kernels and cross-entropy rows under them (src/math). Every backward pass
 * of the double instantiation (_f64) is compared with central finite
 * differences of a scalar loss, for every input and parameter element; then
 * the float production path (_f32, vectorised kernels) is compared with the
 * double one.
 *
 * Set IADSR_TEST_VERBOSE=1 to print the largest errors of every check.
 * SPDX-License-Identifier: MIT
 */
#include <check.h>

#include "gradcheck.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iadsr.h"
#include "iadsr.h"
#include "common/params.h"
#include "common/rng.h"
#include "backbone/model.h"
#include "math/kernels.h"
#include "backbone/sasrec.h"
#include "math/xent.h"

Suite *suite_sasrec(void);

/* ---- helpers ------------------------------------------------------------- */

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_normal(double *a, size_t n, double mean, double sd,
                        iadsr__rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = mean + sd * iadsr__rng_normal(r);
}

static void fill_const(double *a, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        a[i] = v;
}

/* |a - b| <= tol for every element (accumulation semantics). */
static void check_close(const char *what, const double *a, const double *b,
                        size_t n, double tol)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol * (1 + fabs(b[i])),
                      "%s[%zu]: %.17g vs %.17g", what, i, a[i], b[i]);
}

/* ---- 1. LayerNorm ----------------------------------------------------------- */

typedef struct {
    int n, d;
    double *x, *g, *b, *y, *xhat, *rstd, *R;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    iadsr__layernorm_fwd_f64(c->x, c->n, c->d, c->g, c->b, c->y, c->xhat,
                             c->rstd);
    return dot(c->y, c->R, (size_t)c->n * (size_t)c->d);
}

START_TEST(test_layernorm_grad)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 101);
    ln_ctx c = {.n = 4, .d = 7};
    size_t nd = (size_t)c.n * (size_t)c.d;
    c.x = dalloc(nd);
    c.y = dalloc(nd);
    c.xhat = dalloc(nd);
    c.R = dalloc(nd);
    c.rstd = dalloc((size_t)c.n);
    c.g = dalloc((size_t)c.d);
    c.b = dalloc((size_t)c.d);
    fill_normal(c.x, nd, 0.0, 1.0, &r);
    for (int i = 0; i < c.d; i++) /* a row offset: the mean must cancel */
        c.x[i] += 3.0;
    fill_normal(c.g, (size_t)c.d, 1.0, 0.3, &r);
    fill_normal(c.b, (size_t)c.d, 0.0, 0.5, &r);
    fill_normal(c.R, nd, 0.0, 1.0, &r);

    /* forward against a direct computation */
    ln_loss(&c);
    for (int i = 0; i < c.n; i++) {
        const double *xr = c.x + (size_t)i * (size_t)c.d;
        double mu = 0, var = 0;
        for (int j = 0; j < c.d; j++)
            mu += xr[j];
        mu /= c.d;
        for (int j = 0; j < c.d; j++)
            var += (xr[j] - mu) * (xr[j] - mu);
        var /= c.d;
        for (int j = 0; j < c.d; j++) {
            double want = (xr[j] - mu) / sqrt(var + 1e-5) * c.g[j] + c.b[j];
            ck_assert_msg(fabs(c.y[(size_t)i * (size_t)c.d + (size_t)j] - want) <
                              1e-12,
                          "layernorm y[%d][%d]", i, j);
        }
    }

    double *dx = dalloc(nd), *dg = dalloc((size_t)c.d), *db = dalloc((size_t)c.d);
    double *fd = dalloc(nd);
    fill_const(dx, nd, NAN); /* dx is written, never read */
    iadsr__layernorm_bwd_f64(c.R, c.xhat, c.rstd, c.n, c.d, c.g, dg, db, dx);

    fd_grad(ln_loss, &c, c.x, nd, fd);
    check_grad("layernorm.x", dx, fd, nd);
    fd_grad(ln_loss, &c, c.g, (size_t)c.d, fd);
    check_grad("layernorm.gain", dg, fd, (size_t)c.d);
    fd_grad(ln_loss, &c, c.b, (size_t)c.d, fd);
    check_grad("layernorm.bias", db, fd, (size_t)c.d);

    /* dgain and dbias accumulate, dx is overwritten */
    double *dg2 = dalloc((size_t)c.d), *db2 = dalloc((size_t)c.d);
    double *dx2 = dalloc(nd), *want = dalloc((size_t)c.d);
    fill_const(dg2, (size_t)c.d, 0.75);
    fill_const(db2, (size_t)c.d, -1.25);
    fill_const(dx2, nd, 1e30);
    ln_loss(&c);
    iadsr__layernorm_bwd_f64(c.R, c.xhat, c.rstd, c.n, c.d, c.g, dg2, db2, dx2);
    for (int j = 0; j < c.d; j++)
        want[j] = dg[j] + 0.75;
    check_close("layernorm dgain accumulates", dg2, want, (size_t)c.d, 1e-13);
    for (int j = 0; j < c.d; j++)
        want[j] = db[j] - 1.25;
    check_close("layernorm dbias accumulates", db2, want, (size_t)c.d, 1e-13);
    check_close("layernorm dx overwritten", dx2, dx, nd, 0);

    free(c.x), free(c.y), free(c.xhat), free(c.R), free(c.rstd), free(c.g);
    free(c.b), free(dx), free(dg), free(db), free(fd), free(dg2), free(db2);
    free(dx2), free(want);
}
END_TEST

/* ---- 2. Linear ----------------------------------------------------------------- */

typedef struct {
    int n, in, out;
    double *x, *w, *b, *y, *R;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    iadsr__linear_fwd_f64(c->x, c->n, c->in, c->w, c->b, c->out, c->y);
    return dot(c->y, c->R, (size_t)c->n * (size_t)c->out);
}

START_TEST(test_linear_grad)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 202);
    lin_ctx c = {.n = 5, .in = 4, .out = 6};
    size_t nx = (size_t)c.n * (size_t)c.in, nw = (size_t)c.in * (size_t)c.out;
    size_t ny = (size_t)c.n * (size_t)c.out;
    c.x = dalloc(nx);
    c.w = dalloc(nw);
    c.b = dalloc((size_t)c.out);
    c.y = dalloc(ny);
    c.R = dalloc(ny);
    fill_normal(c.x, nx, 0, 1, &r);
    fill_normal(c.w, nw, 0, 0.5, &r);
    fill_normal(c.b, (size_t)c.out, 0, 0.5, &r);
    fill_normal(c.R, ny, 0, 1, &r);

    /* forward: y = x W + b, W is in x out row-major; without bias too */
    fill_const(c.y, ny, NAN);
    lin_loss(&c);
    double *y0 = dalloc(ny);
    iadsr__linear_fwd_f64(c.x, c.n, c.in, c.w, NULL, c.out, y0);
    for (int i = 0; i < c.n; i++)
        for (int o = 0; o < c.out; o++) {
            double s = 0;
            for (int k = 0; k < c.in; k++)
                s += c.x[i * c.in + k] * c.w[k * c.out + o];
            ck_assert(fabs(y0[i * c.out + o] - s) < 1e-12);
            ck_assert(fabs(c.y[i * c.out + o] - s - c.b[o]) < 1e-12);
        }

    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc((size_t)c.out);
    double *fd = dalloc(nx > nw ? nx : nw);
    fill_const(dx, nx, NAN); /* accumulate_dx = 0: overwritten, never read */
    iadsr__linear_bwd_f64(c.x, c.R, c.n, c.in, c.w, c.out, dw, db, dx, 0);
    fd_grad(lin_loss, &c, c.x, nx, fd);
    check_grad("linear.x (accumulate 0)", dx, fd, nx);
    fd_grad(lin_loss, &c, c.w, nw, fd);
    check_grad("linear.W", dw, fd, nw);
    fd_grad(lin_loss, &c, c.b, (size_t)c.out, fd);
    check_grad("linear.b", db, fd, (size_t)c.out);

    /* accumulate_dx = 1: dx += dY W^T; dW and db always accumulate */
    double *dx1 = dalloc(nx), *dw1 = dalloc(nw), *db1 = dalloc((size_t)c.out);
    double *want = dalloc(nx > nw ? nx : nw);
    fill_normal(dx1, nx, 0, 1, &r);
    fill_const(dw1, nw, 2.0);
    fill_const(db1, (size_t)c.out, -3.0);
    for (size_t i = 0; i < nx; i++)
        want[i] = dx1[i] + dx[i];
    iadsr__linear_bwd_f64(c.x, c.R, c.n, c.in, c.w, c.out, dw1, db1, dx1, 1);
    check_close("linear dx accumulates", dx1, want, nx, 1e-13);
    for (size_t i = 0; i < nw; i++)
        want[i] = dw[i] + 2.0;
    check_close("linear dW accumulates", dw1, want, nw, 1e-13);
    for (int i = 0; i < c.out; i++)
        want[i] = db[i] - 3.0;
    check_close("linear db accumulates", db1, want, (size_t)c.out, 1e-13);

    /* dbias and dx may be NULL */
    double *dw2 = dalloc(nw);
    iadsr__linear_bwd_f64(c.x, c.R, c.n, c.in, c.w, c.out, dw2, NULL, NULL, 0);
    check_close("linear dW without db/dx", dw2, dw, nw, 0);

    free(c.x), free(c.w), free(c.b), free(c.y), free(c.R), free(y0), free(dx);
    free(dw), free(db), free(fd), free(dx1), free(dw1), free(db1), free(want);
    free(dw2);
}
END_TEST

/* ---- 3. Activations -------------------------------------------------------------- */

typedef struct {
    int act;
    size_t n;
    double *x, *y, *R;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    iadsr__act_fwd_f64(c->act, c->x, c->n, c->y);
    return dot(c->y, c->R, c->n);
}

static void act_check(int act, const char *name)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 303 + (uint64_t)act);
    act_ctx c = {.act = act, .n = 64};
    c.x = dalloc(c.n);
    c.y = dalloc(c.n);
    c.R = dalloc(c.n);
    fill_normal(c.x, c.n, 0, 1.5, &r);
    fill_normal(c.R, c.n, 0, 1, &r);
    if (act == IADSR_ACT_RELU) /* keep the kink out of reach of eps */
        for (size_t i = 0; i < c.n; i++)
            if (fabs(c.x[i]) < 0.05)
                c.x[i] = c.x[i] < 0 ? -0.05 - c.x[i] : 0.05 + c.x[i];

    act_loss(&c);
    for (size_t i = 0; i < c.n; i++) {
        double x = c.x[i];
        double want = act == IADSR_ACT_RELU
                          ? (x > 0 ? x : 0)
                          : 0.5 * x * (1 + erf(x / sqrt(2.0)));
        ck_assert_msg(fabs(c.y[i] - want) < 1e-15 * (1 + fabs(want)),
                      "%s(%g) = %.17g, want %.17g", name, x, c.y[i], want);
    }
    double *dx = dalloc(c.n), *fd = dalloc(c.n);
    fill_const(dx, c.n, NAN);
    iadsr__act_bwd_f64(act, c.x, c.R, c.n, dx);
    fd_grad(act_loss, &c, c.x, c.n, fd);
    check_grad(name, dx, fd, c.n);

    /* in place (dx == dy), as the encoder calls it */
    double *io = dalloc(c.n);
    memcpy(io, c.R, c.n * sizeof *io);
    iadsr__act_bwd_f64(act, c.x, io, c.n, io);
    check_close("act_bwd in place", io, dx, c.n, 0);
    free(c.x), free(c.y), free(c.R), free(dx), free(fd), free(io);
}

START_TEST(test_act_gelu_grad)
{
    act_check(IADSR_ACT_GELU, "gelu.x");
}
END_TEST

START_TEST(test_act_relu_grad)
{
    act_check(IADSR_ACT_RELU, "relu.x");
}
END_TEST

/* ---- 4. Attention ------------------------------------------------------------------ */

#define ATT_NSEQ 3
static const int att_len[ATT_NSEQ] = {1, 3, 5};

typedef struct {
    iadsr__batch b;
    int32_t items[16], pos[16], off[ATT_NSEQ + 1];
    int d, heads;
    size_t n_att, nqkv, nctx;
    double *qkv, *p, *pm, *ctx, *R;
    const double *use_pm; /* NULL or pm */
} att_ctx;

static void att_setup(att_ctx *c, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    memset(c, 0, sizeof *c);
    c->d = 8;
    c->heads = 2;
    int row = 0, L = 5;
    c->off[0] = 0;
    c->n_att = 0;
    for (int s = 0; s < ATT_NSEQ; s++) {
        int n = att_len[s];
        for (int i = 0; i < n; i++) {
            c->items[row] = 1 + row;
            c->pos[row] = L - n + i;
            row++;
        }
        c->off[s + 1] = row;
        c->n_att += (size_t)n * (size_t)n * (size_t)c->heads;
    }
    c->b.n_seq = ATT_NSEQ;
    c->b.n_rows = row;
    c->b.items = c->items;
    c->b.pos = c->pos;
    c->b.row_off = c->off;
    c->nqkv = (size_t)row * 3 * (size_t)c->d;
    c->nctx = (size_t)row * (size_t)c->d;
    c->qkv = dalloc(c->nqkv);
    c->p = dalloc(c->n_att);
    c->pm = dalloc(c->n_att);
    c->ctx = dalloc(c->nctx);
    c->R = dalloc(c->nctx);
    fill_normal(c->qkv, c->nqkv, 0, 1, &r);
    fill_normal(c->R, c->nctx, 0, 1, &r);
    for (size_t i = 0; i < c->n_att; i++) /* dropout scales, p = 0.5 */
        c->pm[i] = (iadsr__rng_u64(&r) & 1) ? 2.0 : 0.0;
}

static void att_free(att_ctx *c)
{
    free(c->qkv), free(c->p), free(c->pm), free(c->ctx), free(c->R);
}

static double att_loss(void *p)
{
    att_ctx *c = p;
    iadsr__attention_fwd_f64(&c->b, c->d, c->heads, c->qkv, c->p, c->use_pm,
                             c->ctx, 0);
    return dot(c->ctx, c->R, c->nctx);
}

/* Direct computation of ctx row i of sequence s (head h) for comparison. */
static void att_reference(const att_ctx *c, const double *pm, double *ctx)
{
    int d = c->d, dh = d / c->heads;
    size_t ld = 3 * (size_t)d, att = 0;
    for (int s = 0; s < ATT_NSEQ; s++) {
        int r0 = c->off[s], n = c->off[s + 1] - r0;
        for (int h = 0; h < c->heads; h++) {
            for (int i = 0; i < n; i++) {
                double w[8], mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double sd = 0;
                    for (int k = 0; k < dh; k++)
                        sd += c->qkv[(size_t)(r0 + i) * ld + (size_t)(h * dh + k)] *
                              c->qkv[(size_t)(r0 + j) * ld + (size_t)(d + h * dh + k)];
                    w[j] = sd / sqrt((double)dh);
                    mx = fmax(mx, w[j]);
                }
                for (int j = 0; j <= i; j++)
                    sum += (w[j] = exp(w[j] - mx));
                for (int k = 0; k < dh; k++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++) {
                        double m = pm ? pm[att + (size_t)i * (size_t)n + (size_t)j] : 1;
                        o += w[j] / sum * m *
                             c->qkv[(size_t)(r0 + j) * ld + (size_t)(2 * d + h * dh + k)];
                    }
                    ctx[(size_t)(r0 + i) * (size_t)d + (size_t)(h * dh + k)] = o;
                }
            }
            att += (size_t)n * (size_t)n;
        }
    }
}

START_TEST(test_attention_grad)
{
    att_ctx c;
    att_setup(&c, 404);
    double *ref = dalloc(c.nctx), *dq = dalloc(c.nqkv), *fd = dalloc(c.nqkv);
    double *ctx2 = dalloc(c.nctx), *p2 = dalloc((size_t)25);
    for (int with_pm = 0; with_pm < 2; with_pm++) {
        c.use_pm = with_pm ? c.pm : NULL;
        att_loss(&c);
        att_reference(&c, c.use_pm, ref);
        check_close("attention ctx vs reference", c.ctx, ref, c.nctx, 1e-13);
        /* p rows are probabilities with the causal zeros */
        size_t a = 0;
        for (int s = 0; s < ATT_NSEQ; s++) {
            int n = att_len[s];
            for (int h = 0; h < c.heads; h++, a += (size_t)n * (size_t)n)
                for (int i = 0; i < n; i++) {
                    double sum = 0;
                    for (int j = 0; j < n; j++) {
                        double v = c.p[a + (size_t)i * (size_t)n + (size_t)j];
                        if (j > i)
                            ck_assert(v == 0.0);
                        sum += v;
                    }
                    ck_assert(fabs(sum - 1) < 1e-14);
                }
        }
        /* reuse_p (inference) gives the same context vectors */
        iadsr__attention_fwd_f64(&c.b, c.d, c.heads, c.qkv, p2, c.use_pm, ctx2,
                                 1);
        check_close("attention reuse_p", ctx2, c.ctx, c.nctx, 0);

        fill_const(dq, c.nqkv, NAN); /* dqkv is overwritten */
        att_loss(&c);
        iadsr__attention_bwd_f64(&c.b, c.d, c.heads, c.qkv, c.p, c.use_pm, c.R,
                                 dq);
        fd_grad(att_loss, &c, c.qkv, c.nqkv, fd);
        check_grad(with_pm ? "attention.qkv (pm)" : "attention.qkv", dq, fd,
                   c.nqkv);
    }
    free(ref), free(dq), free(fd), free(ctx2), free(p2);
    att_free(&c);
}
END_TEST

/* Changing q, k or v of row j never changes ctx rows i < j of the same
 * sequence, nor any row of another sequence. */
START_TEST(test_attention_causal)
{
    att_ctx c;
    att_setup(&c, 505);
    double *base = dalloc(c.nctx);
    int d = c.d;
    for (int with_pm = 0; with_pm < 2; with_pm++) {
        c.use_pm = with_pm ? c.pm : NULL;
        att_loss(&c);
        memcpy(base, c.ctx, c.nctx * sizeof *base);
        for (int s = 0; s < ATT_NSEQ; s++)
            for (int j = c.off[s]; j < c.off[s + 1]; j++)
                for (int part = 0; part < 3; part++) {
                    double *row = c.qkv + (size_t)j * 3 * (size_t)d +
                                  (size_t)part * (size_t)d;
                    double save[8];
                    memcpy(save, row, sizeof save);
                    for (int k = 0; k < d; k++)
                        row[k] += 0.7 + 0.1 * k;
                    att_loss(&c);
                    int changed = 0;
                    for (int i = 0; i < c.b.n_rows; i++) {
                        int same_seq = i >= c.off[s] && i < c.off[s + 1];
                        int eq = memcmp(c.ctx + (size_t)i * (size_t)d,
                                        base + (size_t)i * (size_t)d,
                                        (size_t)d * sizeof(double)) == 0;
                        if (!same_seq || i < j)
                            ck_assert_msg(eq,
                                          "pm %d: changing %c of row %d "
                                          "changed ctx row %d",
                                          with_pm, "qkv"[part], j, i);
                        else if (!eq)
                            changed = 1;
                    }
                    /* without dropout a change has an effect, except for
                     * q and k of a first row (a softmax over one key) when
                     * no later row reads them */
                    int inert = j == c.off[s] &&
                                (part == 0 || c.off[s + 1] - c.off[s] == 1);
                    if (!with_pm && !inert)
                        ck_assert_msg(changed, "row %d %c: no effect", j,
                                      "qkv"[part]);
                    memcpy(row, save, sizeof save);
                }
    }
    free(base);
    att_free(&c);
}
END_TEST

/* ---- 5. Cross-entropy ------------------------------------------------------------------ */

#define CE_ROWS 7
#define CE_D 5
#define CE_ITEMS 11

typedef struct {
    double h[CE_ROWS * CE_D], emb[(CE_ITEMS + 1) * CE_D];
    int32_t tg[CE_ROWS];
    double scale;
    double zbuf[CE_ROWS * CE_ITEMS];
    int chunk;
} ce_ctx;

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    return c->scale * iadsr__ce_loss_f64(c->h, CE_ROWS, CE_D, c->tg, c->emb,
                                         CE_ITEMS, c->scale, NULL, NULL,
                                         c->zbuf, c->chunk);
}

static void ce_setup(ce_ctx *c)
{
    static const int32_t tg[CE_ROWS] = {3, 0, 11, 1, 7, 0, 3};
    iadsr__rng r;
    iadsr__rng_seed(&r, 606);
    memset(c, 0, sizeof *c);
    fill_normal(c->h, sizeof c->h / sizeof c->h[0], 0, 1, &r);
    fill_normal(c->emb, sizeof c->emb / sizeof c->emb[0], 0, 0.7, &r);
    memcpy(c->tg, tg, sizeof tg);
    c->scale = 0.37;
    c->chunk = 3;
}

/* Direct sum over rows with a target of logsumexp(z) - z[target]. */
static double ce_direct(const ce_ctx *c)
{
    long double total = 0;
    for (int i = 0; i < CE_ROWS; i++) {
        if (c->tg[i] == 0)
            continue;
        long double z[CE_ITEMS], mx = -INFINITY, s = 0;
        for (int j = 0; j < CE_ITEMS; j++) {
            z[j] = 0;
            for (int k = 0; k < CE_D; k++)
                z[j] += (long double)c->h[i * CE_D + k] *
                        (long double)c->emb[(j + 1) * CE_D + k];
            if (z[j] > mx)
                mx = z[j];
        }
        for (int j = 0; j < CE_ITEMS; j++)
            s += expl(z[j] - mx);
        total += logl(s) + mx - z[c->tg[i] - 1];
    }
    return (double)total;
}

START_TEST(test_ce_grad)
{
    ce_ctx c;
    ce_setup(&c);
    size_t nh = CE_ROWS * CE_D, ne = (CE_ITEMS + 1) * CE_D;
    double *dh = dalloc(nh), *de = dalloc(ne), *fd = dalloc(ne);

    double sum = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, c.tg, c.emb, CE_ITEMS,
                                    c.scale, dh, de, c.zbuf, c.chunk);
    double want = ce_direct(&c);
    ck_assert_msg(fabs(sum - want) < 1e-13 * fabs(want), "ce %.17g vs %.17g",
                  sum, want);
    if (verbose())
        fprintf(stderr, "  ce loss %.17g direct %.17g |diff| %.3g\n", sum,
                want, fabs(sum - want));

    fd_grad(ce_loss, &c, c.h, nh, fd);
    check_grad("ce.h", dh, fd, nh);
    fd_grad(ce_loss, &c, c.emb, ne, fd);
    check_grad("ce.emb", de, fd, ne);
    for (int k = 0; k < CE_D; k++) { /* row 0 (padding) is not an item */
        ck_assert(de[k] == 0.0);
    }
    for (int i = 0; i < CE_ROWS; i++) /* target 0: no contribution */
        if (c.tg[i] == 0)
            for (int k = 0; k < CE_D; k++)
                ck_assert(dh[i * CE_D + k] == 0.0);

    /* dh and demb accumulate; each may be NULL; the loss does not depend
     * on whether gradients are wanted */
    double *dh2 = dalloc(nh), *de2 = dalloc(ne), *w = dalloc(ne);
    fill_const(dh2, nh, 0.5);
    fill_const(de2, ne, -0.25);
    double s2 = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, c.tg, c.emb, CE_ITEMS,
                                   c.scale, dh2, NULL, c.zbuf, c.chunk);
    ck_assert(s2 == sum);
    for (size_t i = 0; i < nh; i++)
        w[i] = dh[i] + 0.5;
    check_close("ce dh accumulates", dh2, w, nh, 1e-14);
    s2 = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, c.tg, c.emb, CE_ITEMS, c.scale,
                            NULL, de2, c.zbuf, c.chunk);
    ck_assert(s2 == sum);
    for (size_t i = 0; i < ne; i++)
        w[i] = de[i] - 0.25;
    check_close("ce demb accumulates", de2, w, ne, 1e-14);
    s2 = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, c.tg, c.emb, CE_ITEMS, c.scale,
                            NULL, NULL, c.zbuf, c.chunk);
    ck_assert(s2 == sum);

    /* all targets 0: zero loss, zero gradient */
    int32_t zero[CE_ROWS] = {0};
    memset(dh2, 0, nh * sizeof *dh2);
    memset(de2, 0, ne * sizeof *de2);
    s2 = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, zero, c.emb, CE_ITEMS, c.scale,
                            dh2, de2, c.zbuf, c.chunk);
    ck_assert(s2 == 0.0);
    ck_assert(norm2(dh2, nh) == 0.0 && norm2(de2, ne) == 0.0);

    /* huge logits stay finite and exact (max subtraction) */
    ce_ctx big = c;
    for (size_t i = 0; i < nh; i++)
        big.h[i] *= 300;
    s2 = iadsr__ce_loss_f64(big.h, CE_ROWS, CE_D, big.tg, big.emb, CE_ITEMS,
                            big.scale, NULL, NULL, big.zbuf, big.chunk);
    want = ce_direct(&big);
    ck_assert_msg(isfinite(s2) && fabs(s2 - want) < 1e-12 * fabs(want),
                  "big logits: %.17g vs %.17g", s2, want);
    free(dh), free(de), free(fd), free(dh2), free(de2), free(w);
}
END_TEST

START_TEST(test_ce_chunks)
{
    ce_ctx c;
    ce_setup(&c);
    size_t nh = CE_ROWS * CE_D, ne = (CE_ITEMS + 1) * CE_D;
    static const int chunks[] = {1, 2, CE_ROWS, CE_ROWS + 5};
    double *dh0 = dalloc(nh), *de0 = dalloc(ne), *dh = dalloc(nh),
           *de = dalloc(ne);
    double s0 = 0;
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        memset(dh, 0, nh * sizeof *dh);
        memset(de, 0, ne * sizeof *de);
        double s = iadsr__ce_loss_f64(c.h, CE_ROWS, CE_D, c.tg, c.emb,
                                      CE_ITEMS, c.scale, dh, de, c.zbuf,
                                      chunks[k]);
        if (k == 0) {
            s0 = s;
            memcpy(dh0, dh, nh * sizeof *dh);
            memcpy(de0, de, ne * sizeof *de);
            continue;
        }
        /* the per-chunk partial sums associate differently: a few ulp */
        ck_assert_msg(fabs(s - s0) <= 1e-15 * fabs(s0),
                      "chunk %d: loss %.17g vs %.17g", chunks[k], s, s0);
        ck_assert_msg(memcmp(dh, dh0, nh * sizeof *dh) == 0, "chunk %d: dh",
                      chunks[k]);
        ck_assert_msg(memcmp(de, de0, ne * sizeof *de) == 0, "chunk %d: demb",
                      chunks[k]);
    }

    /* float path: chunking changes nothing beyond BLAS rounding */
    float hf[CE_ROWS * CE_D], ef[(CE_ITEMS + 1) * CE_D];
    float zf[CE_ROWS * CE_ITEMS], dhf[CE_ROWS * CE_D], def[(CE_ITEMS + 1) * CE_D];
    for (size_t i = 0; i < nh; i++)
        hf[i] = (float)c.h[i];
    for (size_t i = 0; i < ne; i++)
        ef[i] = (float)c.emb[i];
    double sf0 = 0;
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        memset(dhf, 0, sizeof dhf);
        memset(def, 0, sizeof def);
        double s = iadsr__ce_loss_f32(hf, CE_ROWS, CE_D, c.tg, ef, CE_ITEMS,
                                      (float)c.scale, dhf, def, zf, chunks[k]);
        if (k == 0)
            sf0 = s;
        ck_assert(fabs(s - sf0) < 1e-6 * fabs(sf0));
        ck_assert_msg(fabs(s - s0) < 1e-5 * fabs(s0), "f32 %.9g vs f64 %.9g",
                      s, s0);
        for (size_t i = 0; i < nh; i++)
            ck_assert(fabs(dhf[i] - dh0[i]) < 1e-5);
        for (size_t i = 0; i < ne; i++)
            ck_assert(fabs(def[i] - de0[i]) < 1e-5);
    }
    free(dh0), free(de0), free(dh), free(de);
}
END_TEST

/* ---- 6. The whole encoder -------------------------------------------------------------- */

#define ENC_NSEQ 4
#define ENC_MAXROWS 32
static const int enc_len[ENC_NSEQ] = {1, 3, 5, 4};
/* items 7 and 9 never appear as inputs (9 is only a target) */
static const int32_t enc_items[] = {4, /**/ 2, 5, 1, /**/ 3, 3, 8, 6, 2,
                                    /**/ 1, 6, 8, 5};
static const int32_t enc_tgt[] = {9, /**/ 5, 1, 0, /**/ 3, 8, 6, 2, 9,
                                  /**/ 6, 0, 5, 4};

typedef struct {
    iadsr_model_params hp;
    iadsr__shape shape;
    iadsr__layout *lay;
    double *W, *G;
    iadsr__sasrec_w_f64 w, g;
    iadsr__sasrec_ws_f64 ws;
    iadsr__batch b;
    int32_t items[ENC_MAXROWS], pos[ENC_MAXROWS], off[ENC_NSEQ + 1];
    int32_t tgt[ENC_MAXROWS];
    iadsr__rng rng0; /* copied before every forward: identical masks */
    int use_rng;
    double scale;
    double *dh, *zbuf;
} enc_ctx;

static void enc_setup_f(enc_ctx *e, float dropout, int act, uint64_t seed,
                        uint32_t flags)
{
    memset(e, 0, sizeof *e);
    iadsr_model_params_init(&e->hp);
    e->hp.n_items = 9;
    e->hp.dim = 8;
    e->hp.n_heads = 2;
    e->hp.ffn_dim = 12;
    e->hp.n_layers = 2;
    e->hp.max_seq_len = 6;
    e->hp.dropout = dropout;
    e->hp.activation = act;
    e->hp.flags = flags;
    ck_assert_int_eq(iadsr__model_params_check(&e->hp), IADSR_OK);
    e->lay = calloc(1, sizeof *e->lay);
    ck_assert_ptr_nonnull(e->lay);
    ck_assert_int_eq(iadsr__model_layout(&e->hp, e->lay), IADSR_OK);
    ck_assert_int_eq(e->lay->n_tensors, 4 + 12 * e->hp.n_layers +
                                            (flags & IADSR_MODEL_F_PRE_LN ? 2 : 0));
    iadsr__shape_from(&e->hp, &e->shape);

    int L = e->hp.max_seq_len, row = 0;
    e->off[0] = 0;
    for (int s = 0; s < ENC_NSEQ; s++) {
        int n = enc_len[s];
        for (int i = 0; i < n; i++, row++) {
            e->items[row] = enc_items[row];
            e->tgt[row] = enc_tgt[row];
            e->pos[row] = L - n + i;
        }
        e->off[s + 1] = row;
    }
    ck_assert_uint_eq((size_t)row, sizeof enc_items / sizeof enc_items[0]);
    e->b.n_seq = ENC_NSEQ;
    e->b.n_rows = row;
    e->b.items = e->items;
    e->b.pos = e->pos;
    e->b.row_off = e->off;

    size_t nf = e->lay->n_floats;
    e->W = dalloc(nf);
    e->G = dalloc(nf);
    iadsr__sasrec_bind_f64(e->lay, e->W, &e->shape, &e->w);
    iadsr__sasrec_bind_f64(e->lay, e->G, &e->shape, &e->g);
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        size_t len = strlen(tt->name);
        int gain = len > 2 && strcmp(tt->name + len - 2, ".g") == 0;
        fill_normal(e->W + tt->offset, n, gain ? 1.0 : 0.0, gain ? 0.1 : 0.3,
                    &r);
    }
    /* the weights are exactly representable in float (section 7) */
    for (size_t i = 0; i < nf; i++)
        e->W[i] = (double)(float)e->W[i];
    ck_assert_int_eq(iadsr__sasrec_ws_init_f64(&e->ws, &e->shape, ENC_MAXROWS,
                                               e->shape.max_len, 1),
                     IADSR_OK);
    iadsr__rng_seed(&e->rng0, seed ^ 0x5eedu);
    e->use_rng = 1;
    e->scale = 1.0 / (double)row;
    e->dh = dalloc((size_t)ENC_MAXROWS * (size_t)e->hp.dim);
    e->zbuf = dalloc((size_t)ENC_MAXROWS * (size_t)e->hp.n_items);
}

static void enc_setup(enc_ctx *e, float dropout, int act, uint64_t seed)
{
    enc_setup_f(e, dropout, act, seed, 0);
}

static void enc_free(enc_ctx *e)
{
    iadsr__sasrec_ws_free_f64(&e->ws);
    free(e->lay), free(e->W), free(e->G), free(e->dh), free(e->zbuf);
}

static void enc_forward(enc_ctx *e)
{
    iadsr__rng r = e->rng0;
    iadsr__sasrec_forward_f64(&e->ws, &e->w, &e->b, e->use_rng ? &r : NULL);
}

static double enc_loss(void *p)
{
    enc_ctx *e = p;
    enc_forward(e);
    return e->scale *
           iadsr__ce_loss_f64(e->ws.out, e->b.n_rows,
                              e->shape.d, e->tgt, e->w.item_emb,
                              e->shape.n_items, e->scale, NULL, NULL, e->zbuf,
                              4);
}

/* Analytic gradient into e->G (zeroed first). With with_ce_emb = 0 the
 * softmax part of the item-embedding gradient is left out. */
static double enc_grad(enc_ctx *e, int with_ce_emb)
{
    memset(e->G, 0, e->lay->n_floats * sizeof *e->G);
    enc_forward(e);
    size_t nh = (size_t)e->b.n_rows * (size_t)e->shape.d;
    memset(e->dh, 0, nh * sizeof *e->dh);
    double sum = iadsr__ce_loss_f64(
        e->ws.out, e->b.n_rows, e->shape.d, e->tgt,
        e->w.item_emb, e->shape.n_items, e->scale, e->dh,
        with_ce_emb ? e->g.item_emb : NULL, e->zbuf, 4);
    iadsr__sasrec_backward_f64(&e->ws, &e->w, &e->g, &e->b, e->dh);
    return e->scale * sum;
}

/* Finite differences over every parameter of the layout. */
static void enc_check_all(enc_ctx *e, const char *tag)
{
    double loss = enc_grad(e, 1);
    ck_assert(isfinite(loss) && loss > 0);
    ck_assert_msg(fabs(loss - enc_loss(e)) == 0.0, "%s: loss not reproducible",
                  tag);
    size_t nf = e->lay->n_floats;
    double *fd = dalloc(nf);
    char *is_param = calloc(nf, 1);
    ck_assert_ptr_nonnull(is_param);
    double worst = 0;
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        memset(is_param + tt->offset, 1, n);
        fd_grad(enc_loss, e, e->W + tt->offset, n, fd + tt->offset);
        char what[96];
        snprintf(what, sizeof what, "%s %s", tag, tt->name);
        double ratio = check_grad(what, e->G + tt->offset, fd + tt->offset, n);
        worst = fmax(worst, ratio);
        ck_assert_msg(norm2(e->G + tt->offset, n) > 0, "%s: zero gradient",
                      what);
    }
    for (size_t i = 0; i < nf; i++) /* alignment gaps stay untouched */
        if (!is_param[i])
            ck_assert(e->G[i] == 0.0);
    if (verbose())
        fprintf(stderr, "  %s: loss %.10g, worst tensor norm ratio %.3g\n",
                tag, loss, worst);
    free(fd);
    free(is_param);
}

/* A mask on the inputs (b.scale, rows dropped, halved, boosted): every
 * weight's gradient under it, and dL/dscale (b.dscale, the straight-through
 * path of the detector's input mask) against finite differences. */
static void enc_check_all_v(void *e, const char *tag)
{
    enc_check_all(e, tag);
}

static void enc_grad_v(void *e)
{
    enc_grad(e, 1);
}

START_TEST(test_encoder_grad_input_scale)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_GELU, 313);
    float sc[ENC_MAXROWS];
    double ds[ENC_MAXROWS];
    check_input_scale("encoder(scaled inputs, dropout 0.3)", &e, &e.b, 0.0f, sc, ds, enc_check_all_v,
                      enc_grad_v, enc_loss);
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_dropout)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_GELU, 707);
    /* the masks really drop something: another rng state changes the loss */
    double l0 = enc_loss(&e);
    iadsr__rng keep = e.rng0;
    iadsr__rng_seed(&e.rng0, 1);
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 1;
    e.rng0 = keep;
    enc_check_all(&e, "encoder(gelu, dropout 0.3)");
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_no_dropout)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, IADSR_ACT_GELU, 808);
    enc_check_all(&e, "encoder(gelu, dropout 0)");
    /* with dropout 0 the rng is not used at all */
    double l0 = enc_loss(&e);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) == l0);
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_pre_ln)
{
    enc_ctx e;
    enc_setup_f(&e, 0.3f, IADSR_ACT_GELU, 717, IADSR_MODEL_F_PRE_LN);
    ck_assert_ptr_nonnull(iadsr__layout_find(e.lay, "final_ln.g"));
    enc_check_all(&e, "encoder(pre-LN, gelu, dropout 0.3)");
    enc_free(&e);
    enc_setup_f(&e, 0.0f, IADSR_ACT_RELU, 818, IADSR_MODEL_F_PRE_LN);
    enc_check_all(&e, "encoder(pre-LN, relu, dropout 0)");
    enc_free(&e);
}
END_TEST

/* Same weights, the other arrangement: a different function of them. */
START_TEST(test_encoder_pre_ln_differs)
{
    enc_ctx a, b;
    enc_setup_f(&a, 0.0f, IADSR_ACT_GELU, 919, 0);
    enc_setup_f(&b, 0.0f, IADSR_ACT_GELU, 919, IADSR_MODEL_F_PRE_LN);
    /* the shared tensors were drawn from the same stream first */
    ck_assert(memcmp(a.W, b.W, a.lay->n_floats * sizeof *a.W) == 0);
    ck_assert(enc_loss(&a) != enc_loss(&b));
    enc_free(&a);
    enc_free(&b);
}
END_TEST

START_TEST(test_encoder_grad_relu)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_RELU, 909);
    enc_check_all(&e, "encoder(relu, dropout 0.3)");
    enc_free(&e);
}
END_TEST

/* Inputs reach the item-embedding table only through the rows of the batch:
 * every other row gets exactly zero gradient from the encoder, and only the
 * softmax gradient in total. Unused positions get nothing. */
START_TEST(test_encoder_sparse_rows)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_GELU, 1010);
    int d = e.shape.d, n_items = e.shape.n_items, L = e.shape.max_len;
    int used_item[16] = {0}, used_pos[16] = {0};
    for (int r = 0; r < e.b.n_rows; r++) {
        used_item[e.items[r]] = 1;
        used_pos[e.pos[r]] = 1;
    }
    ck_assert(!used_item[0] && !used_item[7] && !used_item[9] && !used_pos[0]);

    size_t nf = e.lay->n_floats;
    double *enc_only = dalloc(nf), *ce_only = dalloc(nf);
    enc_grad(&e, 0);
    memcpy(enc_only, e.G, nf * sizeof *e.G);
    /* softmax part only: the same call without the backward pass */
    memset(e.G, 0, nf * sizeof *e.G);
    enc_forward(&e);
    iadsr__ce_loss_f64(e.ws.out, e.b.n_rows, d, e.tgt,
                       e.w.item_emb, n_items, e.scale, NULL, e.g.item_emb,
                       e.zbuf, 4);
    memcpy(ce_only, e.G, nf * sizeof *e.G);
    enc_grad(&e, 1);

    size_t off_e = e.lay->t[0].offset, off_p = e.lay->t[1].offset;
    for (int i = 0; i <= n_items; i++)
        for (int c = 0; c < d; c++) {
            size_t k = off_e + (size_t)i * (size_t)d + (size_t)c;
            if (!used_item[i]) {
                ck_assert_msg(enc_only[k] == 0.0, "item %d: encoder grad", i);
                ck_assert_msg(e.G[k] == ce_only[k], "item %d: total grad", i);
            } else {
                ck_assert_msg(enc_only[k] != 0.0, "item %d: no grad", i);
            }
            if (i == 0) /* padding: nothing at all */
                ck_assert(e.G[k] == 0.0 && ce_only[k] == 0.0);
            else
                ck_assert_msg(ce_only[k] != 0.0, "item %d: softmax grad", i);
        }
    for (int p = 0; p < L; p++)
        for (int c = 0; c < d; c++) {
            size_t k = off_p + (size_t)p * (size_t)d + (size_t)c;
            if (!used_pos[p])
                ck_assert_msg(e.G[k] == 0.0, "position %d: grad", p);
            else
                ck_assert(e.G[k] != 0.0);
        }
    free(enc_only), free(ce_only);
    enc_free(&e);
}
END_TEST

/* The encoder is causal: changing the item at row j never changes the output
 * rows i < j of its sequence, nor other sequences (dropout masks fixed). */
START_TEST(test_encoder_causal)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_GELU, 1111);
    int d = e.shape.d, R = e.b.n_rows;
    size_t nh = (size_t)R * (size_t)d;
    double *base = dalloc(nh);
    for (int use_rng = 0; use_rng < 2; use_rng++) {
        e.use_rng = use_rng;
        enc_forward(&e);
        memcpy(base, e.ws.out, nh * sizeof *base);
        for (int s = 0; s < ENC_NSEQ; s++)
            for (int j = e.off[s]; j < e.off[s + 1]; j++) {
                int32_t save = e.items[j];
                e.items[j] = save % 9 + 1;
                enc_forward(&e);
                const double *h = e.ws.out;
                for (int i = 0; i < R; i++) {
                    int eq = memcmp(h + (size_t)i * (size_t)d,
                                    base + (size_t)i * (size_t)d,
                                    (size_t)d * sizeof *h) == 0;
                    if (i < e.off[s] || i >= e.off[s + 1] || i < j)
                        ck_assert_msg(eq, "item of row %d changed row %d", j,
                                      i);
                    else if (i == j && !use_rng)
                        ck_assert_msg(!eq, "item of row %d: no effect", j);
                }
                e.items[j] = save;
            }
    }
    free(base);
    enc_free(&e);
}
END_TEST

/* A training workspace whose shape has dropout > 0, run forward WITHOUT an
 * rng (dropout off, as documented for rng == NULL), must give the gradient
 * of that dropout-free forward. (The backward pass must not apply masks
 * that this forward did not draw.) */
START_TEST(test_encoder_grad_forward_without_rng)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, IADSR_ACT_GELU, 1212);
    /* draw masks once so that the buffers hold defined (stale) values */
    e.use_rng = 1;
    enc_forward(&e);
    e.use_rng = 0;
    /* Same criteria as check_grad(), but evaluated before asserting so that
     * a failure does not leak under CK_FORK=no (valgrind). */
    enc_grad(&e, 1);
    size_t nf = e.lay->n_floats;
    double *fd = dalloc(nf);
    fd_grad(enc_loss, &e, e.W, nf, fd);
    double nd = 0, na = 0, nfd = 0, worst = 0;
    size_t worst_i = 0;
    int bad = 0;
    for (size_t i = 0; i < nf; i++) {
        double err = fabs(e.G[i] - fd[i]);
        nd += err * err;
        na += e.G[i] * e.G[i];
        nfd += fd[i] * fd[i];
        if (!(err < TOL_ABS + TOL_REL * fabs(fd[i])))
            bad++;
        if (!(err <= worst))
            worst = err, worst_i = i;
    }
    double ratio = sqrt(nd) / fmax(sqrt(na), sqrt(nfd));
    double ga = e.G[worst_i], gf = fd[worst_i];
    free(fd);
    enc_free(&e);
    ck_assert_msg(bad == 0 && ratio < TOL_RATIO,
                  "training workspace, dropout 0.3, forward with rng NULL: "
                  "%d of %zu gradient elements wrong, norm ratio %.3g, worst "
                  "at weight %zu: analytic %.9g vs finite difference %.9g "
                  "(backward applied dropout masks the forward did not draw)",
                  bad, nf, ratio, worst_i, ga, gf);
}
END_TEST

/* ---- 7. f32 vs f64 ---------------------------------------------------------------------- */

START_TEST(test_f32_vs_f64)
{
    static const int acts[] = {IADSR_ACT_GELU, IADSR_ACT_RELU,
                               IADSR_ACT_GELU};
    for (int ai = 0; ai < 3; ai++) {
        enc_ctx e;
        /* the third round: pre-norm blocks */
        enc_setup_f(&e, 0.3f, acts[ai], 1313 + (uint64_t)ai,
                    ai == 2 ? IADSR_MODEL_F_PRE_LN : 0);
        size_t nf = e.lay->n_floats;
        int R = e.b.n_rows, d = e.shape.d, n_items = e.shape.n_items;
        size_t nh = (size_t)R * (size_t)d;
        float *Wf = falloc(nf), *Gf = falloc(nf);
        for (size_t i = 0; i < nf; i++)
            Wf[i] = (float)e.W[i]; /* exact: W was rounded to float */
        iadsr__sasrec_w_f32 wf, gf;
        iadsr__sasrec_bind_f32(e.lay, Wf, &e.shape, &wf);
        iadsr__sasrec_bind_f32(e.lay, Gf, &e.shape, &gf);
        iadsr__sasrec_ws_f32 wsi, wst;
        ck_assert_int_eq(iadsr__sasrec_ws_init_f32(&wsi, &e.shape, ENC_MAXROWS,
                                                   e.shape.max_len, 0),
                         IADSR_OK);
        ck_assert_int_eq(iadsr__sasrec_ws_init_f32(&wst, &e.shape, ENC_MAXROWS,
                                                   e.shape.max_len, 1),
                         IADSR_OK);
        double *h64 = dalloc(nh);
        const float *hf;

        /* inference: no dropout */
        e.use_rng = 0;
        enc_forward(&e);
        memcpy(h64, e.ws.out, nh * sizeof *h64);
        iadsr__sasrec_forward_f32(&wsi, &wf, &e.b, NULL);
        hf = wsi.out;
        double r_inf = rel_diff_f(hf, h64, nh);
        ck_assert_msg(r_inf < 1e-4, "inference f32 vs f64: %.3g", r_inf);
        /* training workspace without rng: the same as inference */
        iadsr__sasrec_forward_f32(&wst, &wf, &e.b, NULL);
        ck_assert(memcmp(wst.out, hf, nh * sizeof *hf) == 0);

        /* training with the same rng state: the same dropout masks */
        e.use_rng = 1;
        enc_forward(&e);
        memcpy(h64, e.ws.out, nh * sizeof *h64);
        iadsr__rng r = e.rng0;
        iadsr__sasrec_forward_f32(&wst, &wf, &e.b, &r);
        hf = wst.out;
        double r_tr = rel_diff_f(hf, h64, nh);
        ck_assert_msg(r_tr < 1e-4, "training f32 vs f64: %.3g", r_tr);

        /* CE on identical inputs (f64 h rounded to float): kernels only */
        float *hq = falloc(nh), *zf = falloc((size_t)R * (size_t)n_items);
        double *hq64 = dalloc(nh);
        for (size_t i = 0; i < nh; i++) {
            hq[i] = (float)h64[i];
            hq64[i] = (double)hq[i];
        }
        double ce64 = iadsr__ce_loss_f64(hq64, R, d, e.tgt, e.w.item_emb,
                                         n_items, e.scale, NULL, NULL, e.zbuf,
                                         4);
        double ce32 = iadsr__ce_loss_f32(hq, R, d, e.tgt, wf.item_emb, n_items,
                                         (float)e.scale, NULL, NULL, zf, 4);
        double r_ce = fabs(ce32 - ce64) / fabs(ce64);
        ck_assert_msg(r_ce < 1e-5, "CE f32 %.9g vs f64 %.9g (rel %.3g)", ce32,
                      ce64, r_ce);

        /* full training step: loss and every gradient tensor */
        double loss64 = enc_grad(&e, 1);
        float *dhf = falloc(nh);
        r = e.rng0;
        iadsr__sasrec_forward_f32(&wst, &wf, &e.b, &r);
        double loss32 = (double)(float)e.scale *
                        iadsr__ce_loss_f32(wst.out, R, d,
                                           e.tgt, wf.item_emb, n_items,
                                           (float)e.scale, dhf, gf.item_emb,
                                           zf, 4);
        iadsr__sasrec_backward_f32(&wst, &wf, &gf, &e.b, dhf);
        double r_loss = fabs(loss32 - loss64) / fabs(loss64);
        ck_assert_msg(r_loss < 1e-5, "loss f32 %.9g vs f64 %.9g", loss32,
                      loss64);
        double r_grad = 0;
        for (int t = 0; t < e.lay->n_tensors; t++) {
            const iadsr__tensor *tt = &e.lay->t[t];
            size_t n = (size_t)tt->rows * (size_t)tt->cols;
            double num = 0, den = 0;
            for (size_t i = 0; i < n; i++) {
                double a = (double)Gf[tt->offset + i], b = e.G[tt->offset + i];
                num += (a - b) * (a - b);
                den += b * b;
            }
            double rg = sqrt(num) / sqrt(den);
            ck_assert_msg(rg < 1e-3, "gradient %s: f32 vs f64 rel %.3g",
                          tt->name, rg);
            r_grad = fmax(r_grad, rg);
        }
        if (verbose())
            fprintf(stderr,
                    "  f32 vs f64 (%s): h inference %.3g, h training %.3g, "
                    "CE %.3g, loss %.3g, worst gradient tensor %.3g\n",
                    ai == 2 ? "gelu, pre-LN" : ai ? "relu" : "gelu", r_inf,
                    r_tr, r_ce, r_loss, r_grad);
        iadsr__sasrec_ws_free_f32(&wsi);
        iadsr__sasrec_ws_free_f32(&wst);
        free(Wf), free(Gf), free(h64), free(hq), free(zf), free(hq64);
        free(dhf);
        enc_free(&e);
    }
}
END_TEST

/* The inference shortcut (final block for the last row of each sequence
 * only) must equal the last rows of the full forward pass. */
START_TEST(test_forward_last)
{
    enc_ctx e;
    /* _i = 0: post-norm, 1: pre-norm (the loop variable of the tcase) */
    enc_setup_f(&e, 0.3f, IADSR_ACT_GELU, 4242 + (uint64_t)_i,
                _i ? IADSR_MODEL_F_PRE_LN : 0);
    int d = e.shape.d, S = e.b.n_seq;
    e.use_rng = 0;
    enc_forward(&e);
    const double *full = e.ws.out;
    iadsr__sasrec_ws_f64 wsl;
    ck_assert_int_eq(iadsr__sasrec_ws_init_f64(&wsl, &e.shape, ENC_MAXROWS,
                                               e.shape.max_len, 0),
                     IADSR_OK);
    iadsr__sasrec_forward_last_f64(&wsl, &e.w, &e.b);
    const double *last = wsl.out;
    double worst = 0;
    for (int q = 0; q < S; q++) {
        const double *a = full + (size_t)(e.off[q + 1] - 1) * (size_t)d;
        for (int c = 0; c < d; c++)
            worst = fmax(worst, fabs(a[c] - last[(size_t)q * (size_t)d + c]));
    }
    ck_assert_msg(worst < 1e-12, "forward_last vs forward: %.3g", worst);

    /* and the float path against the double one */
    size_t nf = e.lay->n_floats;
    float *Wf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i];
    iadsr__sasrec_w_f32 wf;
    iadsr__sasrec_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__sasrec_ws_f32 wsf;
    ck_assert_int_eq(iadsr__sasrec_ws_init_f32(&wsf, &e.shape, ENC_MAXROWS,
                                               e.shape.max_len, 0),
                     IADSR_OK);
    iadsr__sasrec_forward_last_f32(&wsf, &wf, &e.b);
    const float *lf = wsf.out;
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)S * (size_t)d; i++) {
        num += ((double)lf[i] - last[i]) * ((double)lf[i] - last[i]);
        den += last[i] * last[i];
    }
    ck_assert_msg(sqrt(num / den) < 1e-4, "forward_last f32 vs f64: %.3g",
                  sqrt(num / den));
    iadsr__sasrec_ws_free_f32(&wsf);
    iadsr__sasrec_ws_free_f64(&wsl);
    free(Wf);
    enc_free(&e);
}
END_TEST

START_TEST(test_f32_act)
{
    enum { N = 4001 };
    float *x = falloc(N), *y = falloc(N), *dx = falloc(N), *dy = falloc(N);
    double *xd = dalloc(N), *yd = dalloc(N), *dxd = dalloc(N), *dyd = dalloc(N);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(-10.0 + 20.0 * i / (N - 1));
        xd[i] = (double)x[i];
        dy[i] = (float)(1.0 + 0.001 * i);
        dyd[i] = (double)dy[i];
    }
    double ef = 0, eb = 0;
    for (int act = IADSR_ACT_GELU; act <= IADSR_ACT_RELU; act++) {
        iadsr__act_fwd_f32(act, x, N, y);
        iadsr__act_fwd_f64(act, xd, N, yd);
        iadsr__act_bwd_f32(act, x, dy, N, dx);
        iadsr__act_bwd_f64(act, xd, dyd, N, dxd);
        for (int i = 0; i < N; i++) {
            double e1 = fabs((double)y[i] - yd[i]);
            double e2 = fabs((double)dx[i] - dxd[i]);
            ck_assert_msg(e1 < 1e-6 * (1 + fabs(yd[i])),
                          "act %d fwd x=%g: %.9g vs %.9g", act, xd[i],
                          (double)y[i], yd[i]);
            ck_assert_msg(e2 < 1e-6 * (1 + fabs(dxd[i])),
                          "act %d bwd x=%g: %.9g vs %.9g", act, xd[i],
                          (double)dx[i], dxd[i]);
            ef = fmax(ef, e1 / (1 + fabs(yd[i])));
            eb = fmax(eb, e2 / (1 + fabs(dxd[i])));
        }
    }
    if (verbose())
        fprintf(stderr, "  f32 activations: fwd err %.3g, bwd err %.3g\n", ef,
                eb);
    free(x), free(y), free(dx), free(dy), free(xd), free(yd), free(dxd);
    free(dyd);
}
END_TEST

/* ---- 8. Kernels ------------------------------------------------------------------------- */

START_TEST(test_kernel_expf)
{
    /* a dense grid over [-87, 88] plus every float in a band around 0 */
    double worst = 0, worst_x = 0;
    const long n = 400000;
    for (long i = 0; i <= n; i++) {
        float x = (float)(-87.0 + 175.0 * (double)i / (double)n);
        double want = exp((double)x);
        double rel = fabs((double)iadsr__expf(x) - want) / want;
        if (rel > worst)
            worst = rel, worst_x = x;
    }
    for (long i = -20000; i <= 20000; i++) {
        float x = (float)(1e-3 * (double)i / 20000.0);
        double want = exp((double)x);
        double rel = fabs((double)iadsr__expf(x) - want) / want;
        if (rel > worst)
            worst = rel, worst_x = x;
    }
    static const float special[] = {-87.0f, 88.0f, 0.0f, -0.0f, 1.0f, -1.0f,
                                    0.693147182f, -0.693147182f, 87.5f,
                                    -86.99f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        double want = exp((double)special[i]);
        double rel = fabs((double)iadsr__expf(special[i]) - want) / want;
        if (rel > worst)
            worst = rel, worst_x = special[i];
    }
    ck_assert_msg(worst < 5e-7, "iadsr__expf: max rel err %.3g at x = %.9g",
                  worst, worst_x);
    ck_assert(iadsr__expf(0.0f) == 1.0f);
    /* outside the range: clamped, never inf/NaN/0 */
    ck_assert(isfinite(iadsr__expf(100.0f)) && iadsr__expf(100.0f) > 1e38f);
    ck_assert(iadsr__expf(-1000.0f) > 0.0f && iadsr__expf(-1000.0f) < 1e-37f);
    if (verbose())
        fprintf(stderr, "  iadsr__expf: max rel err %.3g at %.9g\n", worst,
                worst_x);
}
END_TEST

/* The packed item table holds e1^T tile by tile (element (k, j) of tile
 * j / 32 at k * 32 + j % 32) and zero past the last item, whatever the
 * path (16 x 16 blocks in registers for full tiles when d is a multiple
 * of 16, element-wise otherwise) and however many threads split it. */
START_TEST(test_xent_transpose_layout)
{
    static const int ns[] = {1, 15, 31, 32, 33, 64, 100, 1000};
    static const int ds[] = {8, 16, 24, 48, 64, 80};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t di = 0; di < sizeof ds / sizeof ds[0]; di++) {
            int n = ns[ni], d = ds[di], ldt = iadsr__xent_ldt(n);
            float *e = falloc((size_t)n * (size_t)d);
            float *et = falloc((size_t)ldt * (size_t)d);
            for (int i = 0; i < n * d; i++)
                e[i] = (float)(i + 1);
            for (int th = 0; th <= 5; th++) {
                for (int i = 0; i < ldt * d; i++)
                    et[i] = -1.0f; /* every element must be written */
                if (th == 0)
                    iadsr__xent_transpose(e, n, d, et, ldt);
                else
                    iadsr__xent_transpose_mt(e, n, d, et, ldt, th);
                for (int j = 0; j < ldt; j++)
                    for (int k = 0; k < d; k++) {
                        float want = j < n ? e[(size_t)j * (size_t)d + (size_t)k]
                                           : 0.0f;
                        ck_assert(et[(size_t)(j / 32) * 32 * (size_t)d +
                                     (size_t)k * 32 + (size_t)(j % 32)] == want);
                    }
            }
            free(e);
            free(et);
        }
}
END_TEST

/* The softmax pass's exp(z - max) and its sum are those of iadsr__expf
 * element by element with 16 lane sums added in order, bit for bit, on
 * whichever path the CPU takes (the AVX-512 one is written out by hand):
 * row lengths around the vector width and a catalogue's, arguments below
 * the lower clamp and, with a given maximum below the true one, above the
 * upper one. Observed through the rows left as exp(z - max) and their
 * factor 1 / sum (ascale, scale 1). */
START_TEST(test_kernel_exp_pass_exact)
{
    static const int ns[] = {1, 15, 16, 17, 100, 12102};
    iadsr__rng r;
    iadsr__rng_seed(&r, 4242);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int shifted = 0; shifted <= 1; shifted++) {
            int n = ns[ni];
            float *z = malloc(sizeof(float) * (size_t)n);
            float *e = malloc(sizeof(float) * (size_t)n);
            ck_assert(z && e);
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                z[j] = (float)(40.0 * iadsr__rng_normal(&r));
                if (j % 11 == 5)
                    z[j] = -300.0f; /* far below the lower clamp */
                mx = z[j] > mx ? z[j] : mx;
            }
            /* a given maximum 120 below the true one: arguments above 88 */
            float gm = shifted ? mx - 120.0f : mx;
            float s[16] = {0};
            for (int j = 0; j < n; j++) {
                e[j] = iadsr__expf(z[j] - gm);
                s[j % 16] += e[j];
            }
            float sum = 0.0f;
            for (int l = 0; l < 16; l++)
                sum += s[l];
            int32_t t = 1;
            float as = 0.0f;
            iadsr__xent_rows_lse_max_ld(z, 1, n, n, &t, 1.0f, 0.0f, 1, NULL,
                                        &gm, &as, 0.0);
            for (int j = 0; j < n; j++)
                ck_assert_msg(memcmp(&z[j], &e[j], sizeof e[j]) == 0,
                              "n %d shifted %d: exp[%d] = %a, want %a", n,
                              shifted, j, (double)z[j], (double)e[j]);
            float want = 1.0f / sum;
            ck_assert_msg(memcmp(&as, &want, sizeof as) == 0,
                          "n %d shifted %d: 1/sum %a, want %a", n, shifted,
                          (double)as, (double)want);
            free(z), free(e);
        }
}
END_TEST

START_TEST(test_kernel_erff)
{
    double worst = 0, worst_x = 0;
    const long n = 200000;
    for (long i = 0; i <= n; i++) {
        float x = (float)(-8.0 + 16.0 * (double)i / (double)n);
        double e = fabs((double)iadsr__erff(x) - erf((double)x));
        if (e > worst)
            worst = e, worst_x = x;
    }
    ck_assert_msg(worst < 3e-7, "iadsr__erff: max abs err %.3g at x = %.9g",
                  worst, worst_x);
    ck_assert(iadsr__erff(0.0f) == 0.0f);
    ck_assert(iadsr__erff(-2.0f) == -iadsr__erff(2.0f));
    ck_assert(fabsf(iadsr__erff(30.0f) - 1.0f) < 1e-6f);
    if (verbose())
        fprintf(stderr, "  iadsr__erff: max abs err %.3g at %.9g\n", worst,
                worst_x);
}
END_TEST

START_TEST(test_kernel_xent_rows)
{
    static const int widths[] = {1, 5, 16, 17, 33, 1000};
    iadsr__rng r;
    iadsr__rng_seed(&r, 1414);
    double worst_l = 0, worst_g = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        int n = widths[wi], rows = 6;
        size_t nz = (size_t)rows * (size_t)n;
        float *z = falloc(nz), *z0 = falloc(nz);
        int32_t tg[6];
        for (int i = 0; i < rows; i++) {
            double spread = i == 4 ? 40.0 : 3.0; /* one very peaked row */
            for (int j = 0; j < n; j++)
                z0[(size_t)i * (size_t)n + (size_t)j] =
                    (float)(spread * iadsr__rng_normal(&r) + (i == 5 ? 50 : 0));
            tg[i] = 1 + (int32_t)iadsr__rng_below(&r, (uint64_t)n);
        }
        tg[2] = 0; /* skipped */
        const float scale = 0.125f;
        for (int mode = 0; mode < 4; mode++) {
            int want_grad = mode & 1;
            float smooth = mode >= 2 ? 0.1f : 0.0f;
            memcpy(z, z0, nz * sizeof *z);
            double loss = iadsr__xent_rows(z, rows, n, tg, scale, smooth,
                                           want_grad);
            double ref = 0;
            for (int i = 0; i < rows; i++) {
                const float *zr = z0 + (size_t)i * (size_t)n;
                if (tg[i] == 0) {
                    for (int j = 0; j < n; j++)
                        ck_assert(z[(size_t)i * (size_t)n + (size_t)j] == 0.0f);
                    continue;
                }
                double mx = -INFINITY, s = 0;
                for (int j = 0; j < n; j++)
                    mx = fmax(mx, (double)zr[j]);
                for (int j = 0; j < n; j++)
                    s += exp((double)zr[j] - mx);
                double zmean = 0;
                for (int j = 0; j < n; j++)
                    zmean += (double)zr[j] / n;
                double sm = (double)smooth;
                double li = log(s) + mx - (1 - sm) * (double)zr[tg[i] - 1] -
                            sm * zmean;
                ref += li;
                if (!want_grad)
                    continue;
                for (int j = 0; j < n; j++) {
                    double q = sm / n + (j == tg[i] - 1 ? 1.0 - sm : 0.0);
                    double g = (double)scale * (exp((double)zr[j] - mx) / s - q);
                    double got = (double)z[(size_t)i * (size_t)n + (size_t)j];
                    double e = fabs(got - g);
                    ck_assert_msg(e < 1e-6 * (double)scale,
                                  "n %d row %d col %d: grad %.9g vs %.9g", n,
                                  i, j, got, g);
                    worst_g = fmax(worst_g, e / (double)scale);
                }
            }
            double el = fabs(loss - ref) / fmax(1.0, fabs(ref));
            ck_assert_msg(el < 1e-6, "n %d: loss %.9g vs %.9g", n, loss, ref);
            worst_l = fmax(worst_l, el);
        }
        free(z), free(z0);
    }
    if (verbose())
        fprintf(stderr,
                "  iadsr__xent_rows: loss rel err %.3g, grad abs err/scale "
                "%.3g\n",
                worst_l, worst_g);
}
END_TEST

/* Reference of iadsr__xent's summed loss in double: cross-entropy against
 * (1 - smooth) onehot + smooth / n, plus w * -log(1 - p_c) for every
 * distinct item c of items[first[r] .. r] other than the target. */
static double ref_train_loss(const double *h, const double *e, int R, int d,
                             int n, const int32_t *tg, const int32_t *items,
                             const int32_t *first, double smooth, double w)
{
    double total = 0;
    double *z = dalloc((size_t)n);
    for (int r = 0; r < R; r++) {
        if (tg[r] < 1 || tg[r] > n)
            continue;
        double mx = -INFINITY, s = 0, zmean = 0;
        for (int j = 0; j < n; j++) {
            z[j] = 0;
            for (int k = 0; k < d; k++)
                z[j] += h[(size_t)r * (size_t)d + (size_t)k] *
                        e[(size_t)j * (size_t)d + (size_t)k];
            mx = fmax(mx, z[j]);
            zmean += z[j] / n;
        }
        for (int j = 0; j < n; j++)
            s += exp(z[j] - mx);
        double lse = log(s) + mx;
        total += lse - (1 - smooth) * z[tg[r] - 1] - smooth * zmean;
        for (int q = first[r]; q <= r; q++) {
            int32_t c = items[q];
            int dup = 0;
            for (int u = first[r]; u < q; u++)
                dup |= items[u] == c;
            if (c == tg[r] || dup)
                continue;
            total -= w * log1p(-exp(z[c - 1] - lse));
        }
    }
    free(z);
    return total;
}

/* Label smoothing and the history penalty through the training
 * cross-entropy (both the BLAS path and, where the CPU has it, the AVX-512
 * path): the gradients with respect to the hidden states and the item
 * table match central differences of the double reference. */
START_TEST(test_xent_smoothing_history_grad)
{
    enum { R = 10, D = 64, N = 45, CH = 8 };
    /* two sequences: rows 0-5 and 6-9; a repeated input item (row 4), an
     * input item that is also a later target (row 2 -> target of row 7 is
     * not in its history, target of row 3 is item 9 = input of row 1), and
     * one row without a target */
    static const int32_t items[R] = {5, 9, 12, 30, 5, 41, 7, 8, 7, 44};
    static const int32_t tg[R] = {9, 12, 30, 9, 41, 0, 8, 7, 44, 3};
    static const int32_t first[R] = {0, 0, 0, 0, 0, 0, 6, 6, 6, 6};
    const float scale = 0.25f;
    iadsr__rng rng;
    iadsr__rng_seed(&rng, 77);
    double *hd = dalloc(R * D), *ed = dalloc(N * D);
    float *h = falloc(R * D), *e = falloc(N * D);
    for (int i = 0; i < R * D; i++)
        hd[i] = 0.3 * iadsr__rng_normal(&rng);
    for (int i = 0; i < N * D; i++)
        ed[i] = 0.3 * iadsr__rng_normal(&rng);
    /* make the history items likely, so the penalty matters */
    for (int k = 0; k < D; k++) {
        ed[4 * D + k] += 0.5 * hd[4 * D + k];
        ed[11 * D + k] += 0.5 * hd[3 * D + k];
    }
    for (int i = 0; i < R * D; i++)
        h[i] = (float)hd[i], hd[i] = (double)h[i];
    for (int i = 0; i < N * D; i++)
        e[i] = (float)ed[i], ed[i] = (double)e[i];
    int ldt = iadsr__xent_ldt(N);
    float *et = falloc((size_t)ldt * D);
    iadsr__xent_transpose(e, N, D, et, ldt);
    float *scr = falloc(iadsr__xent_scratch_floats(CH, ldt, D, N, R));
    static const double settings[][2] = {{0.0, 0.0}, {0.1, 0.0}, {0.0, 2.0},
                                         {0.2, 1.5}};
    double worst = 0;
    for (int fast = 0; fast <= iadsr__xent_fast_ok(D); fast++) {
        for (size_t si = 0; si < sizeof settings / sizeof settings[0]; si++) {
            double sm = settings[si][0], w = settings[si][1];
            float *dh = falloc(R * D), *de = falloc(N * D);
            float lse[R];
            for (int r = 0; r < R; r++)
                lse[r] = NAN;
            iadsr__xent_args a = {.h = h, .n_rows = R, .d = D, .targets = tg,
                                  .e1 = e, .et = et, .n_items = N,
                                  .ldt = ldt, .chunk = CH, .fast = fast,
                                  .scale = scale, .dh = dh, .de1 = de,
                                  .smooth = (float)sm,
                                  .hist_weight = (float)w,
                                  .hist_items = items, .hist_first = first,
                                  .hist_cap = R, .lse = lse};
            double loss = iadsr__xent(&a, scr, 1);
            /* every row's log-sum-exp, the row without a target too */
            for (int r = 0; r < R; r++) {
                double z[N], mx = -HUGE_VAL, sum = 0;
                for (int j = 0; j < N; j++) {
                    z[j] = 0;
                    for (int k = 0; k < D; k++)
                        z[j] += hd[r * D + k] * ed[j * D + k];
                    mx = fmax(mx, z[j]);
                }
                for (int j = 0; j < N; j++)
                    sum += exp(z[j] - mx);
                ck_assert_msg(fabs((double)lse[r] - (mx + log(sum))) < 1e-4,
                              "fast %d: lse[%d] %g vs %g", fast, r,
                              (double)lse[r], mx + log(sum));
            }
            double ref = ref_train_loss(hd, ed, R, D, N, tg, items, first,
                                        sm, w);
            ck_assert_msg(fabs(loss - ref) < 1e-4 * fmax(1.0, fabs(ref)),
                          "fast %d smooth %g w %g: loss %.9g vs %.9g", fast,
                          sm, w, loss, ref);
            const double eps = 1e-6;
            double gmax = 0, err = 0;
            for (int which = 0; which < 2; which++) {
                double *x = which ? ed : hd;
                const float *g = which ? de : dh;
                int cnt = which ? N * D : R * D;
                for (int i = 0; i < cnt; i++) {
                    double x0 = x[i];
                    x[i] = x0 + eps;
                    double lp = ref_train_loss(hd, ed, R, D, N, tg, items,
                                               first, sm, w);
                    x[i] = x0 - eps;
                    double lm = ref_train_loss(hd, ed, R, D, N, tg, items,
                                               first, sm, w);
                    x[i] = x0;
                    double fd = (double)scale * (lp - lm) / (2 * eps);
                    gmax = fmax(gmax, fabs(fd));
                    err = fmax(err, fabs(fd - (double)g[i]));
                }
            }
            ck_assert_msg(err < 1e-4 * gmax,
                          "fast %d smooth %g w %g: grad err %.3g (max %.3g)",
                          fast, sm, w, err, gmax);
            worst = fmax(worst, err / gmax);
            free(dh), free(de);
        }
    }
    if (verbose())
        fprintf(stderr, "  xent smoothing/history: max grad rel err %.3g\n",
                worst);
    free(hd), free(ed), free(h), free(e), free(et), free(scr);
}
END_TEST

/* The fast kernel takes each row's maximum over the real items only: the
 * packed table's padding columns (45 items in two tiles of 32) hold logit
 * 0, which would be the maximum of rows whose logits are all near -200,
 * and exp(z - 0) would underflow to a zero sum (lse = -inf). */
START_TEST(test_xent_row_max_skips_padding)
{
    enum { R = 8, D = 64, N = 45, CH = 8 };
    int32_t tg[R] = {1, 45, 7, 0, 33, 32, 13, 2};
    float *h = falloc(R * D), *e = falloc(N * D);
    iadsr__rng rng;
    iadsr__rng_seed(&rng, 5);
    const float u = sqrtf(20.0f / D); /* |u|^2 = 20 */
    for (int r = 0; r < R; r++)
        for (int k = 0; k < D; k++)
            h[r * D + k] = 10.0f * u + 0.05f * (float)iadsr__rng_normal(&rng);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < D; k++)
            e[j * D + k] = -u + 0.05f * (float)iadsr__rng_normal(&rng);
    int ldt = iadsr__xent_ldt(N);
    float *et = falloc((size_t)ldt * D);
    iadsr__xent_transpose(e, N, D, et, ldt);
    float *scr = falloc(iadsr__xent_scratch_floats(CH, ldt, D, N, 0));
    for (int fast = 0; fast <= iadsr__xent_fast_ok(D); fast++) {
        float *dh = falloc(R * D), *de = falloc(N * D);
        float lse[R];
        iadsr__xent_args a = {.h = h, .n_rows = R, .d = D, .targets = tg,
                              .e1 = e, .et = et, .n_items = N, .ldt = ldt,
                              .chunk = CH, .fast = fast, .scale = 1.0f,
                              .dh = dh, .de1 = de, .lse = lse};
        double loss = iadsr__xent(&a, scr, 1);
        ck_assert_msg(isfinite(loss), "fast %d: loss %g", fast, loss);
        for (int r = 0; r < R; r++) {
            double z[N], mx = -HUGE_VAL, sum = 0;
            for (int j = 0; j < N; j++) {
                z[j] = 0;
                for (int k = 0; k < D; k++)
                    z[j] += (double)h[r * D + k] * (double)e[j * D + k];
                mx = fmax(mx, z[j]);
            }
            ck_assert_msg(mx < -100, "row %d: max logit %g", r, mx);
            for (int j = 0; j < N; j++)
                sum += exp(z[j] - mx);
            ck_assert_msg(fabs((double)lse[r] - (mx + log(sum))) < 1e-3,
                          "fast %d: lse[%d] %g vs %g", fast, r,
                          (double)lse[r], mx + log(sum));
        }
        free(dh);
        free(de);
    }
    free(h);
    free(e);
    free(et);
    free(scr);
}
END_TEST

/* Rows without a target (the detector's inserted items) have no gradient:
 * the AVX-512 path skips them in its two gradient products. Many such rows
 * at every place in a chunk (so the chunk's head keeps 0-3 spare target
 * rows and its tail 0-3 rows), several chunk sizes: every row's
 * log-sum-exp, the loss and both gradients agree with the BLAS path, and
 * the dH rows of rows without a target are left exactly as they were.
 * With and without the history penalty (without it the fast path finishes
 * the gradient rows inside its dH kernel, block by block), for a
 * catalogue of one and of three item blocks of that kernel (512 items),
 * at d = 32 and 64 (where that kernel groups rows by 6). */
static void check_rows_without_target(int N, int D, float hist_weight)
{
    enum { R = 61 };
    /* the fast path takes chunks of a multiple of 8 rows; the row counts
     * leave the last chunk 1-4 rows over a multiple of 4 */
    static const int chunks[] = {8, 16, 64};
    iadsr__rng rng;
    iadsr__rng_seed(&rng, 91);
    float *h = falloc((size_t)R * D), *e = falloc((size_t)N * D);
    int32_t tg[R], items[R], first[R];
    for (int i = 0; i < R * D; i++)
        h[i] = 0.4f * (float)iadsr__rng_normal(&rng);
    for (int i = 0; i < N * D; i++)
        e[i] = 0.4f * (float)iadsr__rng_normal(&rng);
    for (int r = 0; r < R; r++) {
        /* runs of target-less rows of length 1-3, and every third row */
        int none = (r % 3 == 1) || (r >= 20 && r < 23) || (r >= 40 && r < 42);
        tg[r] = none ? 0 : 1 + (int32_t)iadsr__rng_below(&rng, (uint64_t)N);
        items[r] = 1 + (int32_t)iadsr__rng_below(&rng, (uint64_t)N);
        first[r] = r < 30 ? 0 : 30;
    }
    tg[0] = N; /* the last item, in the last (partial) block */
    int ldt = iadsr__xent_ldt(N);
    float *et = falloc((size_t)ldt * D);
    iadsr__xent_transpose(e, N, D, et, ldt);
    int fast_ok = iadsr__xent_fast_ok(D);
    for (int nr = R - 3; nr <= R; nr++)
    for (size_t ci = 0; ci < sizeof chunks / sizeof chunks[0]; ci++) {
        int CH = chunks[ci];
        float *scr = falloc(iadsr__xent_scratch_floats(CH, ldt, D, N, R));
        float *dh[2], *de[2], lse[2][R];
        double loss[2] = {0, 0};
        for (int fast = 0; fast <= fast_ok; fast++) {
            dh[fast] = falloc((size_t)R * D);
            de[fast] = falloc((size_t)N * D);
            for (int i = 0; i < R * D; i++) /* dH is added to */
                dh[fast][i] = (float)(i % 7) - 3.0f;
            iadsr__xent_args a = {.h = h, .n_rows = nr, .d = D, .targets = tg,
                                  .e1 = e, .et = et, .n_items = N,
                                  .ldt = ldt, .chunk = CH, .fast = fast,
                                  .scale = 0.05f, .dh = dh[fast],
                                  .de1 = de[fast], .smooth = 0.1f,
                                  .hist_weight = hist_weight,
                                  .hist_items = items, .hist_first = first,
                                  .hist_cap = R, .lse = lse[fast]};
            loss[fast] = iadsr__xent(&a, scr, 1);
            for (int r = 0; r < R; r++)
                if (tg[r] == 0 || r >= nr)
                    for (int k = 0; k < D; k++)
                        ck_assert_msg(dh[fast][r * D + k] ==
                                          (float)((r * D + k) % 7) - 3.0f,
                                      "N %d rows %d chunk %d fast %d: row %d "
                                      "without a target got a gradient",
                                      N, nr, CH, fast, r);
        }
        if (fast_ok) {
            ck_assert_msg(fabs(loss[1] - loss[0]) < 1e-5 * fabs(loss[0]),
                          "N %d rows %d chunk %d: loss %.9g vs %.9g", N, nr,
                          CH, loss[1], loss[0]);
            for (int r = 0; r < nr; r++)
                ck_assert(fabsf(lse[1][r] - lse[0][r]) < 1e-5f);
            for (int i = 0; i < R * D; i++)
                ck_assert_msg(fabsf(dh[1][i] - dh[0][i]) < 1e-5f,
                              "N %d w %g rows %d chunk %d: dh[%d] %g vs %g",
                              N, (double)hist_weight, nr, CH, i,
                              (double)dh[1][i], (double)dh[0][i]);
            for (int i = 0; i < N * D; i++)
                ck_assert_msg(fabsf(de[1][i] - de[0][i]) < 1e-5f,
                              "N %d w %g rows %d chunk %d: de[%d] %g vs %g",
                              N, (double)hist_weight, nr, CH, i,
                              (double)de[1][i], (double)de[0][i]);
        }
        for (int fast = 0; fast <= fast_ok; fast++)
            free(dh[fast]), free(de[fast]);
        free(scr);
    }
    free(h), free(e), free(et);
}

START_TEST(test_xent_rows_without_target)
{
    check_rows_without_target(70, 32, 0.5f);
    check_rows_without_target(70, 32, 0.0f);
    check_rows_without_target(1100, 32, 0.0f);
    /* d = 64: the dH kernel takes rows 6 at a time, then 4 */
    check_rows_without_target(1100, 64, 0.0f);
    check_rows_without_target(70, 64, 0.5f);
    /* catalogues smaller than a vector and than an item tile */
    check_rows_without_target(5, 64, 0.0f);
    check_rows_without_target(17, 16, 0.0f);
}
END_TEST

Suite *suite_sasrec(void)
{
    Suite *s = suite_create("sasrec");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, test_layernorm_grad);
    tcase_add_test(tc, test_linear_grad);
    tcase_add_test(tc, test_act_gelu_grad);
    tcase_add_test(tc, test_act_relu_grad);
    tcase_add_test(tc, test_attention_grad);
    tcase_add_test(tc, test_attention_causal);
    tcase_add_test(tc, test_ce_grad);
    tcase_add_test(tc, test_ce_chunks);
    tcase_add_test(tc, test_encoder_grad_dropout);
    tcase_add_test(tc, test_encoder_grad_input_scale);
    tcase_add_test(tc, test_encoder_grad_no_dropout);
    tcase_add_test(tc, test_encoder_grad_relu);
    tcase_add_test(tc, test_encoder_grad_pre_ln);
    tcase_add_test(tc, test_encoder_pre_ln_differs);
    tcase_add_test(tc, test_encoder_sparse_rows);
    tcase_add_test(tc, test_encoder_causal);
    tcase_add_test(tc, test_encoder_grad_forward_without_rng);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("float32");
    tcase_add_test(tk, test_f32_vs_f64);
    tcase_add_loop_test(tk, test_forward_last, 0, 2);
    tcase_add_test(tk, test_f32_act);
    tcase_add_test(tk, test_kernel_expf);
    tcase_add_test(tk, test_kernel_erff);
    tcase_add_test(tk, test_kernel_exp_pass_exact);
    tcase_add_test(tk, test_xent_transpose_layout);
    tcase_add_test(tk, test_kernel_xent_rows);
    tcase_add_test(tk, test_xent_smoothing_history_grad);
    tcase_add_test(tk, test_xent_rows_without_target);
    tcase_add_test(tk, test_xent_row_max_skips_padding);
    suite_add_tcase(s, tk);
    return s;
}
