/* One Adam update over a slice of the parameters (adam.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ADAM_H
#define IADSR_ADAM_H

#include <stddef.h>

typedef struct iadsr__adam_coef {
    float b1, b2; /* decay rates of the two moments */
    float lr;     /* learning rate / (1 - b1^step) */
    float rc2;    /* 1 / sqrt(1 - b2^step) */
    float eps, wd; /* epsilon; L2 added to the gradient */
} iadsr__adam_coef;

/* For i < n, with gi = g[i] + wd w[i]:
 *   m[i] = b1 m[i] + (1 - b1) gi
 *   v[i] = b2 v[i] + (1 - b2) gi gi
 *   w[i] -= lr m[i] / (sqrt(v[i]) rc2 + eps)
 * (PyTorch's formulation, bias-corrected), each operation rounded on its
 * own (no fused multiply-add), so every element gets the same bits on
 * every path. The arrays do not overlap. */
void iadsr__adam(float *w, const float *g, float *m, float *v, size_t n,
                 const iadsr__adam_coef *c);

#endif
