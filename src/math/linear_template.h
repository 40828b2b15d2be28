/* The affine layer, forward and backward, generic over REAL. Instantiated
 * by linear_f32.c and tests/f64/linear_f64.c (math/real_f32.h,
 * real_f64.h). Template macros needed: REAL, SFX, GEMM. No include guard on
 * purpose.
 * SPDX-License-Identifier: MIT
 */

#include <stddef.h>

void SFX(iadsr__linear_fwd)(const REAL *x, int n, int in, const REAL *w,
                            const REAL *bias, int out, REAL *y)
{
    GEMM(0, 0, n, out, in, (REAL)1, x, in, w, out, (REAL)0, y, out);
    if (bias)
        for (int r = 0; r < n; r++) {
            REAL *yr = y + (size_t)r * (size_t)out;
            for (int c = 0; c < out; c++)
                yr[c] += bias[c];
        }
}

void SFX(iadsr__linear_bwd)(const REAL *x, const REAL *dy, int n, int in,
                            const REAL *w, int out, REAL *dw, REAL *dbias,
                            REAL *dx, int accumulate_dx)
{
    SFX(iadsr__linear_bwd_wt)(x, dy, n, in, w, out, dw, dbias, dx,
                              accumulate_dx, NULL);
}

/* With wt (in * out scratch), dX = dY W^T runs as a plain product against
 * an explicit transpose, which the small-shape kernels serve. */
void SFX(iadsr__linear_bwd_wt)(const REAL *x, const REAL *dy, int n, int in,
                               const REAL *w, int out, REAL *dw, REAL *dbias,
                               REAL *dx, int accumulate_dx, REAL *wt)
{
    /* dW += X^T dY ; db += colsum(dY) ; dX (+)= dY W^T */
    GEMM(1, 0, in, out, n, (REAL)1, x, in, dy, out, (REAL)1, dw, out);
    if (dbias)
        SFX(iadsr__colsum_add)(dy, n, out, out, dbias);
    if (dx && wt) {
        SFX(iadsr__transpose)(w, in, out, wt);
        GEMM(0, 0, n, in, out, (REAL)1, dy, out, wt, in,
             accumulate_dx ? (REAL)1 : (REAL)0, dx, in);
    } else if (dx) {
        GEMM(0, 1, n, in, out, (REAL)1, dy, out, w, out,
             accumulate_dx ? (REAL)1 : (REAL)0, dx, in);
    }
}

void SFX(iadsr__colsum_add)(const REAL *y, int n, int w, int ld, REAL *sum)
{
    for (int r = 0; r < n; r++) {
        const REAL *yr = y + (size_t)r * (size_t)ld;
        for (int c = 0; c < w; c++)
            sum[c] += yr[c];
    }
}

void SFX(iadsr__transpose)(const REAL *w, int rows, int cols, REAL *wt)
{
    for (int i = 0; i < rows; i++)
        for (int o = 0; o < cols; o++)
            wt[(size_t)o * (size_t)rows + (size_t)i] =
                w[(size_t)i * (size_t)cols + (size_t)o];
}
