/* Double instantiation of the SASRec layers, used only by the
 * finite-difference gradient checks in tests/test_sasrec.c.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/sasrec.h"

#include <math.h>
#include <stdint.h>

#include "math/real_f64.h"
#include "backbone/sasrec_template.h"
#include "math/real_undef.h"
