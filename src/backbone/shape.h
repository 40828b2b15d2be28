/* The shape of an encoder, shared by every backbone: the normalised model
 * hyper-parameters in the form the layers use.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_SHAPE_H
#define IADSR_SHAPE_H

#include "iadsr.h"
#include "common/params.h"
#include "backbone/model.h"

/* The bound of n_layers (SASRec blocks, GRU layers): fixed-size arrays of
 * per-layer pointers use it. */
#define IADSR__MAX_LAYERS 16

typedef struct iadsr__shape {
    int backbone; /* IADSR_BACKBONE_* (normalised, never DEFAULT) */
    int n_items, d, max_len;
    int n_layers; /* SASRec blocks or GRU layers */
    /* The backbones' own fields, set by their ops->fill_shape (0 for the
     * other backbones). SASRec: */
    int f, n_heads, act; /* act: IADSR_ACT_* */
    int pre_ln;          /* IADSR_MODEL_F_PRE_LN: pre-norm + final LayerNorm */
    /* Caser: */
    int caser_l, caser_nh, caser_nv;
    double dropout;
} iadsr__shape;

/* Fill @p s from normalised params (iadsr__model_params_check()): the
 * generic fields here, the backbone's own by its ops->fill_shape
 * (registry.c). */
void iadsr__shape_from(const iadsr_model_params *hp, iadsr__shape *s);

#endif
