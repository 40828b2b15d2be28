/* AVX-512 SGEMM for small transformer shapes (gemm_avx512.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_GEMM_AVX512_H
#define IADSR_GEMM_AVX512_H

/* Non-zero when the CPU (as seen at run time) has AVX-512F. */
int iadsr__gemm_avx512_ok(void);
/* C = op(A) B (beta 0) or C += op(A) B (beta 1), row-major, B not
 * transposed, alpha 1. Returns 0 without touching C when the shape is not
 * handled (n % 16 != 0, other beta, empty), 1 when done. The caller checks
 * iadsr__gemm_avx512_ok() first. */
int iadsr__gemm_avx512(int trans_a, int m, int n, int k, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);

#endif
