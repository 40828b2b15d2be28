/* Float instantiation of the affine layer (production path).
 * SPDX-License-Identifier: MIT
 */
#include "math/linear.h"
#include "math/blas.h"

#define REAL float
#define SFX(name) name##_f32
#define GEMM iadsr__sgemm
#include "math/linear_template.h"
