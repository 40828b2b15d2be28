/* Vectorised float32 kernels (kernels.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_KERNELS_H
#define IADSR_KERNELS_H

#include <stddef.h>

/* Functions marked IADSR_CLONES are compiled for AVX-512, AVX2 and the
 * baseline, and glibc picks one at load time (GCC target_clones, ifunc).
 * Clang 14 does not emit the resolver for these, so clang builds use the
 * baseline ISA. The sanitizer builds do without: an instrumented resolver
 * runs during relocation, before the sanitizer runtime exists (TSan
 * crashes there). IADSR_NO_CLONES turns them off by hand. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&        \
    defined(__linux__) && !defined(__SANITIZE_ADDRESS__) &&                   \
    !defined(__SANITIZE_THREAD__) && !defined(IADSR_NO_CLONES)
#define IADSR_CLONES                                                          \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define IADSR_CLONES
#endif

#include <stdint.h>

/* Softmax cross-entropy of `rows` logit rows of length n (items 1..n in
 * columns 0..n-1). targets[i] in 1..n, others skip the row (zeroed).
 * With label smoothing `smooth` in [0, 1) the target distribution is
 * (1 - smooth) onehot + smooth / n. Returns the summed loss. With want_grad
 * the rows are replaced by scale * (softmax - target distribution). */
double iadsr__xent_rows(float *z, int rows, int n, const int32_t *targets,
                        float scale, float smooth, int want_grad);
/* Same with rows ld floats apart (columns n..ld-1 are left untouched). */
double iadsr__xent_rows_ld(float *z, int rows, int n, int ld,
                           const int32_t *targets, float scale, float smooth,
                           int want_grad);
/* The same, and when @p lse is not NULL, lse[i] = log sum_j exp z_ij of
 * every row, those without a target too (before any gradient). */
double iadsr__xent_rows_lse_ld(float *z, int rows, int n, int ld,
                               const int32_t *targets, float scale,
                               float smooth, int want_grad, float *lse);
/* The same with each row's maximum over its n logits given (rmax[i];
 * NULL: taken here), e.g. by the kernel that wrote the logits. With
 * ascale (not NULL) and want_grad, a row with a target is left as
 * exp(z - max) and its factor goes to ascale[i]: the caller finishes it
 * with iadsr__xent_row_finish(row, n, target, ascale[i], scale, smooth),
 * or the same arithmetic elsewhere (while the row is in cache). The rows'
 * losses are added to total and the sum returned (consecutive calls, each
 * passing on the last one's result, give the sum of one call over all
 * their rows). */
double iadsr__xent_rows_lse_max_ld(float *z, int rows, int n, int ld,
                                   const int32_t *targets, float scale,
                                   float smooth, int want_grad, float *lse,
                                   const float *rmax, float *ascale,
                                   double total);
/* The gradient row of a target row: z[j] = z[j] * a + shift for j < n,
 * then z[t - 1] -= target, with shift and target as below. */
void iadsr__xent_row_finish(float *z, int n, int32_t t, float a, float scale,
                            float smooth);
float iadsr__xent_grad_shift(float scale, float smooth, int n);
float iadsr__xent_grad_target(float scale, float smooth);
/* z[j] = z[j] * a + b for j < n. */
void iadsr__affine(float *z, size_t n, float a, float b);
void iadsr__gelu_fwd(const float *x, size_t n, float *y);
void iadsr__gelu_bwd(const float *x, const float *dy, size_t n, float *dx);
/* Non-zero if any of x[0..15] is strictly greater than thr. */
int iadsr__any_greater16(const float *x, float thr);
float iadsr__expf(float x); /* the kernels' exp, ~2 ulp */
float iadsr__erff(float x); /* the kernels' erf, |err| < 3e-7 */

/* Non-zero when x[0..n) holds no NaN or Inf. */
int iadsr__all_finite(const float *x, size_t n);

#endif
