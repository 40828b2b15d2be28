/* libiadsr - the double vocabulary of the layer templates: the reference
 * instantiation that the finite-difference gradient checks compare with.
 * SPDX-License-Identifier: MIT
 *
 * The same names as real_f32.h (which lists them and the instantiation
 * rule), with exact libm functions and the reference kernels of
 * reference_f64.h, which only the test binary links; the library proper
 * declares but never calls an _f64 layer.
 *
 * No include guard on purpose: real_undef.h removes the names again.
 */
#include "math/reference_f64.h"

#include <math.h>

#define REAL double
#define SFX(name) name##_f64
#define GEMM iadsr__dgemm
#define EXP exp
#define LOG log
#define SQRT sqrt
#define SIGMOID(x) (1.0 / (1.0 + exp(-(x))))
#define TANH tanh
#define XENT_ROWS iadsr__xent_rows_f64
#define GELU_FWD iadsr__gelu_fwd_f64
#define GELU_BWD iadsr__gelu_bwd_f64
