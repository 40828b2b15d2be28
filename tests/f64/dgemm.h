/* Double-precision reference GEMM for the finite-difference gradient checks
 * (tests/f64/dgemm.c); the same contract as iadsr__sgemm in math/blas.h.
 * Linked only into the test binary.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_TEST_DGEMM_H
#define IADSR_TEST_DGEMM_H

void iadsr__dgemm(int trans_a, int trans_b, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b,
                  int ldb, double beta, double *c, int ldc);

#endif /* IADSR_TEST_DGEMM_H */
