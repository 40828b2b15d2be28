/* Float instantiation of the IADSR Stage 2 layers (production path).
 * SPDX-License-Identifier: MIT
 */
#include "align.h"

#define REAL float
#define SFX(name) name##_f32
#include "align_impl.h"
