/* Double instantiation of the GRU4Rec layers, used only by the
 * finite-difference gradient checks in tests/test_gru4rec.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/gru4rec.h"

#include <math.h>
#include <stdint.h>

#include "math/real_f64.h"
#include "backbone/gru4rec_template.h"
#include "math/real_undef.h"
