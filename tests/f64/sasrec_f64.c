/* Double instantiation of the SASRec layers, used only by the
 * finite-difference gradient checks in tests/test_sasrec.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/sasrec.h"
#include "dgemm.h"

#include <math.h>
#include <stdint.h>

/* Reference (unvectorised, exact libm) versions of the f32 kernels. */
static double xent_rows_f64(double *z, int rows, int n, const int32_t *tg,
                            double scale, int want_grad)
{
    double total = 0;
    for (int i = 0; i < rows; i++) {
        double *zr = z + (size_t)i * (size_t)n;
        int32_t t = tg[i];
        if (t <= 0 || t > n) {
            for (int j = 0; j < n; j++)
                zr[j] = 0;
            continue;
        }
        double mx = zr[0], zt = zr[t - 1], sum = 0;
        for (int j = 1; j < n; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        for (int j = 0; j < n; j++) {
            zr[j] = exp(zr[j] - mx);
            sum += zr[j];
        }
        /* sum >= 1: the largest logit contributes exp(0) */
        // cppcheck-suppress invalidFunctionArg
        total += log(sum) + mx - zt;
        if (want_grad) {
            for (int j = 0; j < n; j++)
                zr[j] *= scale / sum;
            zr[t - 1] -= scale;
        }
    }
    return total;
}

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

static void gelu_fwd_f64(const double *x, size_t n, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * INV_SQRT2));
}

static void gelu_bwd_f64(const double *x, const double *dy, size_t n,
                         double *dx)
{
    for (size_t i = 0; i < n; i++) {
        double cdf = 0.5 * (1.0 + erf(x[i] * INV_SQRT2));
        double pdf = INV_SQRT_2PI * exp(-0.5 * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

#define XENT_ROWS xent_rows_f64
#define GELU_FWD gelu_fwd_f64
#define GELU_BWD gelu_bwd_f64
#define REAL double
#define SFX(name) name##_f64
#define GEMM iadsr__dgemm
#define EXP exp
#define LOG log
#define SQRT sqrt
#include "backbone/sasrec_template.h"
