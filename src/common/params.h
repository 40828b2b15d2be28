/* libiadsr - validated params structs (params.c).
 * SPDX-License-Identifier: MIT
 *
 * Each *_get() helper overlays the caller's struct (NULL = defaults) on the
 * library defaults with iadsr__params_overlay(), then validates every field
 * against the bounds documented in iadsr.h and normalises the 0 = default
 * values. On success @p dst is complete and its struct_size is the library's
 * sizeof. On failure the last error names the field and its value:
 * IADSR_ERR_INVALID_ARG (out of bounds, struct_size too small, reserved field
 * not zero) or IADSR_ERR_UNSUPPORTED (unknown flag bits, non-zero unknown
 * tail, backbone not available).
 */
#ifndef IADSR_PARAMS_H
#define IADSR_PARAMS_H

#include "iadsr.h"
#include "common/error.h" /* TRY */

#include <stddef.h>
#include <stdint.h>

/* Start from @p defaults (size @p lib_size) and overlay the caller's struct
 * @p user (its first uint32_t is struct_size). Returns IADSR_OK,
 * IADSR_ERR_INVALID_ARG (struct_size < min_size) or IADSR_ERR_UNSUPPORTED
 * (struct_size > lib_size with a non-zero tail). @p what names the struct in
 * messages. NULL @p user means defaults. */
int iadsr__params_overlay(void *dst, const void *defaults, size_t lib_size,
                          size_t min_size, const void *user, const char *what);
/* Oldest released size of each struct the library writes for the caller:
 * the smallest struct_size it accepts (docs/ABI.md). */
#define IADSR__MODEL_PARAMS_SIZE_0_1 56u     /* iadsr_model_params, 0.1.0 */
#define IADSR__METRICS_SIZE_0_1 64u          /* iadsr_metrics, 0.1.0 */
#define IADSR__DENOISE_PARAMS_SIZE_0_3 48u   /* iadsr_denoise_params, 0.3.0 */
#define IADSR__PIPELINE_RESULT_SIZE_0_3 120u /* iadsr_pipeline_result, 0.3.0 */

/* Write an output struct for a caller whose header may be older or newer
 * than the library. @p user_out's first uint32_t is the caller's
 * struct_size; it must be at least @p min_size (the struct's oldest released
 * size), otherwise IADSR_ERR_INVALID_ARG with a message naming @p what
 * (e.g. "evaluate: out") and nothing is written. With @p lib_value non-NULL,
 * min(struct_size, lib_size) bytes of it are copied to @p user_out, except
 * the struct_size field, which keeps the caller's value; bytes at or beyond
 * the caller's struct_size are never touched. With @p lib_value NULL the
 * call only validates (so that a long computation fails up front). A NULL
 * @p user_out is IADSR_ERR_INVALID_ARG. No upper bound applies: nothing is
 * read from the caller's struct beyond struct_size. */
int iadsr__output_copy(void *user_out, const void *lib_value, size_t lib_size,
                       size_t min_size, const char *what);
/* Validate a complete model params struct (backbone/model_params.c) (bounds, backbone, flags) and
 * normalise defaults (backbone 0 -> the registry's first backbone; the
 * backbone's own fields by its ops->check_params, e.g. ffn_dim 0 -> 4*dim).
 * Returns IADSR_OK or an error with a message. */
int iadsr__model_params_check(iadsr_model_params *p);

/* One entry of a public struct's compile-time layout table: with
 * IADSR__LAYOUT defined as the struct type, assert that @p field is at
 * offset @p off (docs/ABI.md: fields are only ever appended). */
#define IADSR__AT(field, off)                                                 \
    _Static_assert(offsetof(IADSR__LAYOUT, field) == (off),                   \
                   IADSR__STR(IADSR__LAYOUT) "." #field);
#define IADSR__STR(x) IADSR__STR_(x)
#define IADSR__STR_(x) #x

/* IADSR_OK, or IADSR_ERR_INVALID_ARG "<what>.<field> = v is outside
 * lo..hi" when v is not in lo..hi. */
int iadsr__check_i32(const char *what, const char *field, int32_t v,
                     int32_t lo, int32_t hi);
/* IADSR_OK, or IADSR_ERR_INVALID_ARG naming a reserved field that is not 0. */
int iadsr__check_reserved(const char *what, const char *field, uint32_t v);
/* IADSR_OK, or IADSR_ERR_UNSUPPORTED naming the bits of @p flags outside
 * @p known. */
int iadsr__check_flags(const char *what, uint32_t flags, uint32_t known);
/* IADSR_OK, or IADSR_ERR_INVALID_ARG "<what>.<field> = v is outside
 * [0, 1)" (NaN included). */
int iadsr__check_unit(const char *what, const char *field, float v);
/* An enumerated field: 0 (its default) becomes @p dflt; then IADSR_OK when
 * *v is @p a or @p b, otherwise IADSR_ERR_INVALID_ARG "<what>.<field> = v
 * is not <expected>". */
int iadsr__check_choice(const char *what, const char *field, int32_t *v,
                        int32_t dflt, int32_t a, int32_t b,
                        const char *expected);

/* split 0 -> LEAVE_ONE_OUT. */
int iadsr__train_params_get(iadsr_train_params *dst,
                            const iadsr_train_params *user);
/* All fields checked (bounds in iadsr.h). */
int iadsr__denoise_params_get(iadsr_denoise_params *dst,
                              const iadsr_denoise_params *user);
int iadsr__ctx_params_get(iadsr_ctx_params *dst, const iadsr_ctx_params *user);
/* target 0 -> IADSR_EVAL_TEST. */
int iadsr__eval_params_get(iadsr_eval_params *dst,
                           const iadsr_eval_params *user);
/* Overlay then iadsr__model_params_check(): n_items is required, so a NULL
 * @p user fails with IADSR_ERR_INVALID_ARG. */
int iadsr__model_params_get(iadsr_model_params *dst,
                            const iadsr_model_params *user);

#endif /* IADSR_PARAMS_H */
