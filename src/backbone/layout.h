/* libiadsr - the parameter layout of a backbone: named tensors in one
 * weight buffer (layout.c), and the default weight initialisation the
 * backbones build theirs on.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_LAYOUT_H
#define IADSR_LAYOUT_H

#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>

#define IADSR__MAX_TENSORS 256 /* SASRec: 4 + 12 per block (16 max) + 2 */
#define IADSR__TENSOR_NAME_MAX 48

/* One named parameter tensor: a rows x cols row-major block of the model's
 * weight buffer starting at float index `offset` (64-byte aligned). */
typedef struct iadsr__tensor {
    char name[IADSR__TENSOR_NAME_MAX];
    size_t offset;
    int64_t rows, cols;
} iadsr__tensor;

typedef struct iadsr__layout {
    int n_tensors;
    iadsr__tensor t[IADSR__MAX_TENSORS];
    size_t n_floats; /* total, including alignment gaps */
} iadsr__layout;

/* Append tensor @p name (rows x cols) at the next 64-byte aligned offset;
 * used by every backbone's layout function. */
int iadsr__layout_add(iadsr__layout *l, const char *name, int64_t rows,
                      int64_t cols);
/* iadsr__layout_add() of the member @p name of group @p i:
 * "<group><i>.<name>", e.g. "blk0.wqkv". */
int iadsr__layout_add_member(iadsr__layout *l, const char *group, int i,
                             const char *name, int64_t rows, int64_t cols);
/* Find a tensor by name; NULL if absent. */
const iadsr__tensor *iadsr__layout_find(const iadsr__layout *l,
                                        const char *name);

/* Non-zero when the name of @p t ends with @p suffix: how the backbones'
 * init_tensor pick their tensors. */
int iadsr__tensor_ends_with(const iadsr__tensor *t, const char *suffix);

/* The default initialisation of tensor @p t into @p w (the PyTorch
 * reference): zero for single-row tensors (biases, LayerNorm shifts),
 * normal(0, 0.02) drawn from @p rng otherwise (matrices, embeddings). A
 * backbone's init_tensor calls it for every tensor it does not treat
 * itself. */
void iadsr__tensor_init_default(const iadsr__tensor *t, float *w,
                                iadsr__rng *rng);

#endif /* IADSR_LAYOUT_H */
