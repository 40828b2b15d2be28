/* libiadsr - declares a template family for both real types: define
 * IADSR_DECL_TEMPLATE as the "..." name of a *_decl_template.h, then
 * include this header; it declares the _f32 and the _f64 functions and
 * types of the family and undefines IADSR_DECL_TEMPLATE.
 * No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */
#include "math/real_f32.h"
#include IADSR_DECL_TEMPLATE
#include "math/real_undef.h"

#include "math/real_f64.h"
#include IADSR_DECL_TEMPLATE
#include "math/real_undef.h"

#undef IADSR_DECL_TEMPLATE
