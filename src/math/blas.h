/* libiadsr - the GEMM every layer uses (blas.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_BLAS_H
#define IADSR_BLAS_H

/* Row-major C = alpha * op(A) op(B) + beta * C. op(X) = X or X^T by the
 * trans flags. When beta == 0, C is overwritten (never read), so NaN garbage
 * in C cannot leak through a BLAS that multiplies it by zero. Dimensions are
 * checked by callers (all fit in int). */
void iadsr__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc);
/* The BLAS in use, for iadsr_build_info(). */
const char *iadsr__blas_info(void);

#endif /* IADSR_BLAS_H */
