/* libiadsr - the float vocabulary of the layer templates (production).
 * SPDX-License-Identifier: MIT
 *
 * The layers are written once, generic over a real type, in *_template.h
 * (definitions) and *_decl_template.h (declarations). A template is
 * instantiated by including this header (or real_f64.h), then the
 * template, then real_undef.h. Every name a template may use:
 *
 *   REAL                    the real type
 *   SFX(name)               name with the type's suffix (_f32 / _f64)
 *   GEMM                    row-major GEMM, iadsr__sgemm's contract
 *   EXP, LOG, SQRT          the elementary functions
 *   SIGMOID, TANH           the gate activations
 *   XENT_ROWS(z, rows, n, tg, scale, grad)
 *                           softmax cross-entropy rows (iadsr__xent_rows)
 *   GELU_FWD, GELU_BWD      GELU on a vector and its backward pass
 *
 * No include guard on purpose: real_undef.h removes the names again.
 */
#include "math/activation_f32.h"
#include "math/blas.h"
#include "math/kernels.h"

#include <math.h>

#define REAL float
#define SFX(name) name##_f32
#define GEMM iadsr__sgemm
#define EXP iadsr__expf
#define LOG logf
#define SQRT sqrtf
#define SIGMOID iadsr__sigmoidf
#define TANH iadsr__tanhf
#define XENT_ROWS(z, rows, n, tg, scale, grad)                                 \
    iadsr__xent_rows(z, rows, n, tg, scale, 0.0f, grad)
#define GELU_FWD iadsr__gelu_fwd
#define GELU_BWD iadsr__gelu_bwd
