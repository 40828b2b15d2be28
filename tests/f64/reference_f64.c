/* The reference functions behind the double vocabulary (src/math/real_f64.h, declared in
 * src/math/reference_f64.h):
 * plain loops and exact libm, linked only into the test binary. The
 * gradient checks need exactness, not speed.
 * SPDX-License-Identifier: MIT
 */
#include "math/reference_f64.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

void iadsr__dgemm(int trans_a, int trans_b, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b,
                  int ldb, double beta, double *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    for (int i = 0; i < m; i++) {
        double *ci = c + (size_t)i * (size_t)ldc;
        for (int j = 0; j < n; j++)
            ci[j] = beta == 0.0 ? 0.0 : ci[j] * beta;
        for (int p = 0; p < k; p++) {
            double aip = alpha * (trans_a ? a[(size_t)p * (size_t)lda + (size_t)i]
                                          : a[(size_t)i * (size_t)lda + (size_t)p]);
            if (aip == 0.0)
                continue;
            for (int j = 0; j < n; j++)
                ci[j] += aip * (trans_b ? b[(size_t)j * (size_t)ldb + (size_t)p]
                                        : b[(size_t)p * (size_t)ldb + (size_t)j]);
        }
    }
}

/* Unvectorised versions of the f32 kernels of math/kernels.c. */
double iadsr__xent_rows_f64(double *z, int rows, int n, const int32_t *tg,
                            double scale, int grad)
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
        if (grad) {
            for (int j = 0; j < n; j++)
                zr[j] *= scale / sum;
            zr[t - 1] -= scale;
        }
    }
    return total;
}

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

void iadsr__gelu_fwd_f64(const double *x, size_t n, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * INV_SQRT2));
}

void iadsr__gelu_bwd_f64(const double *x, const double *dy, size_t n,
                         double *dx)
{
    for (size_t i = 0; i < n; i++) {
        double cdf = 0.5 * (1.0 + erf(x[i] * INV_SQRT2));
        double pdf = INV_SQRT_2PI * exp(-0.5 * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}
