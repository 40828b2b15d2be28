/* Double instantiation of the IADSR Stage 2 layers, used by the
 * finite-difference gradient checks in tests/test_denoise_layers.c.
 * SPDX-License-Identifier: MIT
 */
#include "denoise/layers.h"

#define REAL double
#define SFX(name) name##_f64
#include "denoise/layers_template.h"
