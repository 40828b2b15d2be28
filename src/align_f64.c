/* Double instantiation of the IADSR Stage 2 layers, used by the
 * finite-difference gradient checks in tests/test_align.c.
 * SPDX-License-Identifier: MIT
 */
#include "align.h"

#define REAL double
#define SFX(name) name##_f64
#include "align_impl.h"
