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

/* For the other backbones' check_params: n_heads, ffn_dim, activation and
 * IADSR_MODEL_F_PRE_LN apply to SASRec only. Refuses them unless unset (or
 * at their defaults), then normalises them to 0. IADSR_OK or
 * IADSR_ERR_INVALID_ARG naming p->backbone's title. */
int iadsr__sasrec_params_unused(iadsr_model_params *p, const char *what);

#define IADSR_DECL_TEMPLATE "backbone/sasrec_decl_template.h"
#include "math/real_declare.h"

#endif
