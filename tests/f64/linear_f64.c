/* Double instantiation of the affine layer, used only by the
 * finite-difference gradient checks (tests/test_layers.c, test_align.c,
 * test_stage2.c) and the other f64 instantiations.
 * SPDX-License-Identifier: MIT
 */
#include "math/linear.h"
#include "dgemm.h"

#define REAL double
#define SFX(name) name##_f64
#define GEMM iadsr__dgemm
#include "math/linear_template.h"
