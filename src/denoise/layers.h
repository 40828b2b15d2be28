/* IADSR Stage 2 building blocks (alignment and denoising layers) with
 * hand-written backward passes, compiled twice from layers_template.h: in float
 * for production (suffix _f32) and in double for the finite-difference
 * gradient checks (suffix _f64). See docs METHOD.md, "Stage 2".
 *
 * All layers are pure functions over caller buffers: no allocation, no
 * global state, no failure. Rows are d-vectors stored row-major. Every
 * backward function ADDS its gradients to the output buffers (the caller
 * zeroes them), so a tensor used by several layers accumulates naturally.
 * Reductions are accumulated in double in both instantiations.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ALIGN_H
#define IADSR_ALIGN_H

#include "iadsr.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/rng.h"
#include "backbone/batch.h"
#include "math/linear.h" /* the projections */

/* Uniforms given to the Gumbel gate are clamped to [EPS, 1 - EPS]. */
#define IADSR__GUMBEL_EPS 1e-12

/* iadsr__cos_pairs_*: at most this many matrices and pairs. */
#define IADSR__COS_MAX_V 6
#define IADSR__COS_MAX_P 8

#define IADSR_DECL_TEMPLATE "denoise/layers_decl_template.h"
#include "math/real_declare.h"

#endif
