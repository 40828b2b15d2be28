/* libiadsr - the reference kernels of the double vocabulary (real_f64.h):
 * defined in tests/f64/reference_f64.c and linked only into the test
 * binary, where the finite-difference gradient checks use them.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_REFERENCE_F64_H
#define IADSR_REFERENCE_F64_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* iadsr__sgemm's contract in double. */
void iadsr__dgemm(int trans_a, int trans_b, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b,
                  int ldb, double beta, double *c, int ldc);
/* Softmax cross-entropy rows: z (rows x n logits) becomes the gradient
 * scale * (softmax - onehot(tg)) with @p grad; rows whose target is outside
 * 1..n are zeroed. Returns the summed loss. */
double iadsr__xent_rows_f64(double *z, int rows, int n, const int32_t *tg,
                            double scale, int grad);
/* Exact (erf) GELU and its backward pass. */
void iadsr__gelu_fwd_f64(const double *x, size_t n, double *y);
void iadsr__gelu_bwd_f64(const double *x, const double *dy, size_t n,
                         double *dx);

#endif /* IADSR_REFERENCE_F64_H */
