/* Double instantiation of the Caser layers, used only by the
 * finite-difference gradient checks in tests/test_caser.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/caser.h"

#include <stdint.h>

#include "math/real_f64.h"
#include "backbone/caser_template.h"
#include "math/real_undef.h"
