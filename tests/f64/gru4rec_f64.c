/* Double instantiation of the GRU4Rec layers, used only by the
 * finite-difference gradient checks in tests/test_gru4rec.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/gru4rec.h"
#include "dgemm.h"

#include <math.h>
#include <stdint.h>

#define REAL double
#define SFX(name) name##_f64
#define GEMM iadsr__dgemm
#define SIGMOID(x) (1.0 / (1.0 + exp(-(x))))
#define TANH tanh
#include "backbone/gru4rec_template.h"
