/* The parameter layout helpers and the default weight initialisation.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/layout.h"
#include "common/error.h"
#include "iadsr.h"

#include <stdio.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes */

int iadsr__layout_add(iadsr__layout *l, const char *name, int64_t rows,
                      int64_t cols)
{
    if (l->n_tensors >= IADSR__MAX_TENSORS)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model: too many tensors");
    iadsr__tensor *t = &l->t[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    size_t off = (l->n_floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    t->offset = off;
    /* rows*cols fits easily: n_items < 2^31, dims <= 65536 on 64-bit. */
    l->n_floats = off + (size_t)rows * (size_t)cols;
    return IADSR_OK;
}

int iadsr__layout_add_member(iadsr__layout *l, const char *group, int i,
                             const char *name, int64_t rows, int64_t cols)
{
    char full[IADSR__TENSOR_NAME_MAX];
    snprintf(full, sizeof full, "%s%d.%s", group, i, name);
    return iadsr__layout_add(l, full, rows, cols);
}

const iadsr__tensor *iadsr__layout_find(const iadsr__layout *l,
                                        const char *name)
{
    for (int i = 0; i < l->n_tensors; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

int iadsr__tensor_ends_with(const iadsr__tensor *t, const char *suffix)
{
    size_t a = strlen(t->name), b = strlen(suffix);
    return a >= b && strcmp(t->name + a - b, suffix) == 0;
}

void iadsr__tensor_init_default(const iadsr__tensor *t, float *w,
                                iadsr__rng *rng)
{
    size_t n = (size_t)t->rows * (size_t)t->cols;
    if (t->rows == 1) {
        memset(w, 0, n * sizeof *w); /* biases and LayerNorm shifts */
    } else {
        for (size_t j = 0; j < n; j++)
            w[j] = (float)(0.02 * iadsr__rng_normal(rng));
    }
}
