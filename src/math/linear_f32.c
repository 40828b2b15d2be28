/* Float instantiation of the affine layer (production path).
 * SPDX-License-Identifier: MIT
 */
#include "math/linear.h"
#include "math/blas.h"

#include "math/real_f32.h"
#include "math/linear_template.h"
#include "math/real_undef.h"
