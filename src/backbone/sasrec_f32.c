/* Float instantiation of the SASRec layers (production path).
 * SPDX-License-Identifier: MIT
 */
#include "backbone/sasrec.h"
#include "math/blas.h"

#include "math/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define REAL float
#define SFX(name) name##_f32
#define GEMM iadsr__sgemm
#define EXP iadsr__expf
#define XENT_ROWS(z, rows, n, tg, scale, grad) \
    iadsr__xent_rows(z, rows, n, tg, scale, 0.0f, grad)
#define GELU_FWD iadsr__gelu_fwd
#define GELU_BWD iadsr__gelu_bwd
#define LOG logf
#define SQRT sqrtf
#include "backbone/sasrec_template.h"

