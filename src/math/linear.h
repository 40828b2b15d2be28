/* libiadsr - the affine layer y = x W + b and its backward pass, shared by
 * the backbones and the Stage 2 heads. Compiled twice from
 * linear_template.h: in float for production (linear_f32.c, suffix _f32)
 * and in double for the finite-difference gradient checks (suffix _f64).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_LINEAR_H
#define IADSR_LINEAR_H

#define IADSR_DECL_TEMPLATE "math/linear_decl_template.h"
#include "math/real_declare.h"

#endif /* IADSR_LINEAR_H */
