/* Float instantiation of the IADSR Stage 2 layers (production path).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/layers.h"

#include "math/real_f32.h"
#include "denoise/layers_template.h"
#include "math/real_undef.h"
