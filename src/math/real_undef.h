/* libiadsr - ends a template instantiation: removes the names that
 * real_f32.h / real_f64.h define. No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */
#undef REAL
#undef SFX
#undef GEMM
#undef EXP
#undef LOG
#undef SQRT
#undef SIGMOID
#undef TANH
#undef XENT_ROWS
#undef GELU_FWD
#undef GELU_BWD
