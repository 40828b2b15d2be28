/* SASRec encoder: layers with hand-written backward passes, compiled twice
 * from sasrec_template.h: in float for production (suffix _f32) and in double
 * for the finite-difference gradient checks (suffix _f64).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_SASREC_H
#define IADSR_SASREC_H

#include "iadsr.h"
#include "backbone/batch.h"
#include "backbone/family.h"
#include "backbone/shape.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/rng.h"
#include "math/linear.h" /* the attention and FFN projections */

#define IADSR__LN_EPS 1e-5

/* The tensors of block b, "blk<b>.<name>", in layout order (d = dim,
 * f = ffn_dim; backbone/family.h). */
#define IADSR__SASREC_BLOCK(X)                                                 \
    X(wqkv, "wqkv", d, 3 * d)                                                  \
    X(bqkv, "bqkv", 1, 3 * d)                                                  \
    X(wo, "wo", d, d)                                                          \
    X(bo, "bo", 1, d)                                                          \
    X(ln1_g, "ln1.g", 1, d)                                                    \
    X(ln1_b, "ln1.b", 1, d)                                                    \
    X(w1, "w1", d, f)                                                          \
    X(b1, "b1", 1, f)                                                          \
    X(w2, "w2", f, d)                                                          \
    X(b2, "b2", 1, d)                                                          \
    X(ln2_g, "ln2.g", 1, d)                                                    \
    X(ln2_b, "ln2.b", 1, d)

/* For the other backbones' check_params: n_heads, ffn_dim, activation and
 * IADSR_MODEL_F_PRE_LN apply to SASRec only. Refuses them unless unset (or
 * at their defaults), then normalises them to 0. IADSR_OK or
 * IADSR_ERR_INVALID_ARG naming p->backbone's title. */
int iadsr__sasrec_params_unused(iadsr_model_params *p, const char *what);

#define IADSR_DECL_TEMPLATE "backbone/sasrec_decl_template.h"
#include "math/real_declare.h"

#endif
