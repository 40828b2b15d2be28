/* libiadsr - the model handle: hyper-parameters, the parameter layout of
 * its backbone and the weights (model.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_MODEL_H
#define IADSR_MODEL_H

#include "iadsr.h"
#include "backbone/layout.h"

#include <stddef.h>
#include <stdint.h>

struct iadsr_model {
    uint32_t magic;
    int refcount; /* atomic */
    iadsr_model_params hp; /* validated and normalised */
    iadsr__layout layout;
    float *w; /* layout.n_floats floats, 64-byte aligned; gaps are zero */
    /* Item table transposed and packed for the AVX-512 scoring kernels
     * (xent.c layout), or NULL when they are not used on this CPU. Built by
     * iadsr__model_finalize() once the weights are final. */
    float *et;
    int ldt;
    /* training provenance, stored in checkpoints (informational) */
    int32_t epochs_trained;
    float best_valid_ndcg10; /* NaN if unknown */
};

/* The parameter layout of the backbone of normalised params @p hp (its
 * ops->layout). Returns IADSR_OK or IADSR_ERR_UNSUPPORTED /
 * IADSR_ERR_INVALID_ARG. */
int iadsr__model_layout(const iadsr_model_params *hp, iadsr__layout *out);
/* Allocate a model with zeroed weights for params @p p (validated and
 * normalised here). Does not initialise weights. */
int iadsr__model_alloc(iadsr_model **out, const iadsr_model_params *p);
/* Derived read-only data (the packed item table) from final weights; call
 * once after filling m->w and before publishing the model. */
int iadsr__model_finalize(iadsr_model *m);
iadsr_model *iadsr__model_ref(const iadsr_model *m);
int iadsr__model_ok(const iadsr_model *m);

#endif /* IADSR_MODEL_H */
