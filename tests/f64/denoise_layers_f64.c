/* Double instantiation of the IADSR Stage 2 layers, used by the
 * finite-difference gradient checks in tests/test_denoise_layers.c.
 * SPDX-License-Identifier: MIT
 */
#include "denoise/layers.h"

#include "math/real_f64.h"
#include "denoise/layers_template.h"
#include "math/real_undef.h"
