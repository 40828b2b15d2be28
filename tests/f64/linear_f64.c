/* Double instantiation of the affine layer, used only by the
 * finite-difference gradient checks (tests/test_sasrec.c,
 * test_denoise_layers.c, test_denoise_heads.c) and the other f64
 * instantiations.
 * SPDX-License-Identifier: MIT
 */
#include "math/linear.h"

#include "math/real_f64.h"
#include "math/linear_template.h"
#include "math/real_undef.h"
