/* Float instantiation of the IADSR Stage 2 layers (production path).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/layers.h"

#define REAL float
#define SFX(name) name##_f32
#include "denoise/layers_template.h"
