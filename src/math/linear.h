/* libiadsr - the affine layer y = x W + b and its backward pass, shared by
 * the backbones and the Stage 2 heads. Compiled twice from
 * linear_template.h: in float for production (linear_f32.c, suffix _f32)
 * and in double for the finite-difference gradient checks (suffix _f64).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_LINEAR_H
#define IADSR_LINEAR_H

#define REAL float
#define SFX(name) name##_f32
#include "math/linear_decl_template.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_f64
#include "math/linear_decl_template.h"
#undef REAL
#undef SFX

#endif /* IADSR_LINEAR_H */
