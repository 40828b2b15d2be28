/* Double instantiation of the Caser layers, used only by the
 * finite-difference gradient checks in tests/test_caser.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/caser.h"
#include "dgemm.h"

#include <stdint.h>

#define REAL double
#define SFX(name) name##_f64
#define GEMM iadsr__dgemm
#include "backbone/caser_template.h"
