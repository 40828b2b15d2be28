/* Declarations of the affine layer for one real type, declared for both by
 * linear.h through math/real_declare.h. Template macros needed: REAL, SFX.
 * No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* y = x W (+ bias): x is n x in, W in x out, y n x out (row-major); bias
 * NULL = none. */
void SFX(iadsr__linear_fwd)(const REAL *x, int n, int in, const REAL *w,
                            const REAL *bias, int out, REAL *y);
/* dW += x^T dy, dbias += colsum(dy) (dbias may be NULL) and dx = dy W^T,
 * or dx += dy W^T with accumulate_dx (dx may be NULL). */
void SFX(iadsr__linear_bwd)(const REAL *x, const REAL *dy, int n, int in,
                            const REAL *w, int out, REAL *dw, REAL *dbias,
                            REAL *dx, int accumulate_dx);
/* iadsr__linear_bwd with scratch wt (in * out): dx = dy W^T then runs as a
 * plain product against an explicit transpose, which the small-shape
 * kernels serve. wt NULL = iadsr__linear_bwd. */
void SFX(iadsr__linear_bwd_wt)(const REAL *x, const REAL *dy, int n, int in,
                               const REAL *w, int out, REAL *dw, REAL *dbias,
                               REAL *dx, int accumulate_dx, REAL *wt);

/* The pieces of the backward passes, shared by the layer families:
 * sum[c] += the column sums of the n rows of y (w values at leading
 * dimension ld), row by row; and wt (cols x rows) = w^T of a row-major
 * rows x cols w. */
void SFX(iadsr__colsum_add)(const REAL *y, int n, int w, int ld, REAL *sum);
void SFX(iadsr__transpose)(const REAL *w, int rows, int cols, REAL *wt);
