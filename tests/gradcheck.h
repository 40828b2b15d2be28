/* Finite-difference gradient checking shared by the layer suites
 * (test_sasrec, test_gru4rec, test_caser, test_denoise_layers): central differences
 * in double precision and the tolerance rule every backward pass is held to.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_TEST_GRADCHECK_H
#define IADSR_TEST_GRADCHECK_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/batch.h"

#define FD_EPS 1e-6
#define TOL_RATIO 1e-6 /* ||g_a - g_fd|| / max(||g_a||, ||g_fd||) */
#define TOL_ABS 1e-6   /* per element: |g_a - g_fd| < TOL_ABS + TOL_REL|g| */
#define TOL_REL 1e-5

typedef double (*loss_fn)(void *ctx);

/* IADSR_TEST_VERBOSE=1 prints the error figures of every check. */
static inline int verbose(void)
{
    const char *v = getenv("IADSR_TEST_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

static inline double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline double norm2(const double *a, size_t n)
{
    return sqrt(dot(a, a, n));
}

/* Central differences of f with respect to x[0..n) into g. */
static inline void fd_grad(loss_fn f, void *ctx, double *x, size_t n,
                           double *g)
{
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + FD_EPS;
        double lp = f(ctx);
        x[i] = x0 - FD_EPS;
        double lm = f(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * FD_EPS);
    }
}

/* Every element within TOL_ABS + TOL_REL |g_fd| and the norm ratio below
 * TOL_RATIO; returns the ratio. */
static inline double check_grad(const char *what, const double *ga,
                                const double *gfd, size_t n)
{
    double nd = 0, na = 0, nf = 0, max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(ga[i]) && isfinite(gfd[i]),
                      "%s[%zu]: non-finite gradient (analytic %g, fd %g)",
                      what, i, ga[i], gfd[i]);
        double e = fabs(ga[i] - gfd[i]);
        ck_assert_msg(e < TOL_ABS + TOL_REL * fabs(gfd[i]),
                      "%s[%zu]: analytic %.12g vs finite difference %.12g "
                      "(|err| %.3g)",
                      what, i, ga[i], gfd[i], e);
        nd += e * e;
        na += ga[i] * ga[i];
        nf += gfd[i] * gfd[i];
        if (e > max_abs)
            max_abs = e;
        if (fabs(gfd[i]) > 1e-3 && e / fabs(gfd[i]) > max_rel)
            max_rel = e / fabs(gfd[i]);
    }
    double den = fmax(sqrt(na), sqrt(nf));
    double ratio = den > 0 ? sqrt(nd) / den : 0.0;
    ck_assert_msg(ratio < TOL_RATIO, "%s: norm ratio %.3g >= %.1g", what,
                  ratio, TOL_RATIO);
    if (verbose())
        fprintf(stderr,
                "  grad %-28s n=%-5zu |g|=%-9.3g max|err|=%-9.3g "
                "max rel=%-9.3g ratio=%.3g\n",
                what, n, den, max_abs, max_rel, ratio);
    return ratio;
}

/* The gradient of f with respect to float inputs s[0..n) (a batch's input
 * scales) against @p ga: central differences with the step 2^-20, which
 * every scale of the tests (dyadic, in [0, 2]) plus or minus the step
 * represents exactly in float, so the differences are as exact as
 * fd_grad's. Held to check_grad's rule; returns its ratio. */
static inline double check_grad_float_inputs(const char *what, loss_fn f,
                                             void *ctx, float *s,
                                             const double *ga, size_t n)
{
    const float h = 0x1p-20f;
    double *fd = malloc((n ? n : 1) * sizeof *fd);
    ck_assert_ptr_nonnull(fd);
    for (size_t i = 0; i < n; i++) {
        float s0 = s[i];
        ck_assert(s0 + h - h == s0 && (s0 + h) - (s0 - h) == 2 * h);
        s[i] = s0 + h;
        double lp = f(ctx);
        s[i] = s0 - h;
        double lm = f(ctx);
        s[i] = s0;
        fd[i] = (lp - lm) / (2.0 * (double)h);
    }
    double r = check_grad(what, ga, fd, n);
    free(fd);
    return r;
}

/* Input scales of the scale tests: kept, dropped, halved, boosted rows
 * (@p dropped is the value of a dropped row: 0, or another where an encoder
 * has no derivative at 0) */
static inline float test_input_scale(int r, float dropped)
{
    static const float pattern[] = {1.0f, 0.0f, 0.5f, 1.25f, 0.75f, 1.0f};
    return r % 6 == 1 ? dropped : pattern[r % 6];
}

/* The encoder test of a mask on the inputs (the batch's scale and dscale),
 * shared by the backbone suites: with the rows of @p b scaled by
 * test_input_scale(), @p check_all checks every weight's gradient, @p grad
 * fills b->dscale, which must match finite differences over the scales;
 * scales of 1 must give the unmasked loss bit for bit. @p sc, @p ds: room
 * for b->n_rows. */
static inline void check_input_scale(const char *tag, void *ctx,
                                     iadsr__batch *b, float dropped,
                                     float *sc, double *ds,
                                     void (*check_all)(void *, const char *),
                                     void (*grad)(void *), loss_fn loss)
{
    int R = b->n_rows;
    char what[128];
    for (int r = 0; r < R; r++) {
        sc[r] = test_input_scale(r, dropped);
        ds[r] = NAN;
    }
    b->scale = sc;
    b->dscale = ds;
    check_all(ctx, tag);
    grad(ctx);
    b->dscale = NULL; /* the finite differences need no backward pass */
    snprintf(what, sizeof what, "%s dL/dscale", tag);
    check_grad_float_inputs(what, loss, ctx, sc, ds, (size_t)R);
    ck_assert(norm2(ds, (size_t)R) > 0);
    for (int r = 0; r < R; r++)
        sc[r] = 1.0f;
    double with_ones = loss(ctx);
    b->scale = NULL;
    ck_assert(loss(ctx) == with_ones);
}

/* max |a - b| / max(1, max |b|): float results against the double ones */
static inline double rel_diff_f(const float *a, const double *b, size_t n)
{
    double md = 0, mb = 1;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / mb;
}

#endif
