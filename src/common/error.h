/* libiadsr - the thread-local last-error message (error.c).
 * SPDX-License-Identifier: MIT
 *
 * Cross-file internals are named iadsr__* and are hidden from the shared
 * library by -fvisibility=hidden and the version script; the static library
 * still exposes them to the unit tests and the CLI.
 */
#ifndef IADSR_ERROR_H
#define IADSR_ERROR_H

#include "iadsr.h"

#include <stdint.h>

#if defined(__GNUC__)
#define IADSR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IADSR_PRINTF(f, a)
#endif

/* Set the thread-local last-error message and return @p code. */
int iadsr__err(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);
/* Prefix the current message: "prefix: old message". Returns @p code. */
int iadsr__err_prefix(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);
/* A message about line @p line of the text named @p name (a file name or a
 * caller's label): "<name>:<line>: <message>". Returns @p code. */
int iadsr__err_at(int code, const char *name, int64_t line, const char *fmt,
                  ...) IADSR_PRINTF(4, 5);

/* Return from the calling function with any status other than IADSR_OK. */
#define TRY(expr)                                                             \
    do {                                                                      \
        int rc_ = (expr);                                                     \
        if (rc_ != IADSR_OK)                                                  \
            return rc_;                                                       \
    } while (0)

/* ---- argument checks at API entry: one line a check, the library's
 * standard messages ---------------------------------------------------- */

/* Return IADSR_ERR_INVALID_ARG "<fn>: out is NULL" from the calling
 * function when the out-pointer @p out is NULL; otherwise clear *out, so
 * that every later failure leaves the caller's pointer NULL. */
#define IADSR__OUT_CLEAR(out, fn)                                             \
    do {                                                                      \
        if (!(out))                                                           \
            return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: out is NULL",       \
                              (fn));                                          \
        *(out) = NULL;                                                        \
    } while (0)

/* IADSR_OK when @p ok (the handle check's result), otherwise
 * IADSR_ERR_INVALID_ARG "<fn>: invalid <kind> handle". */
int iadsr__check_handle(int ok, const char *fn, const char *kind);
/* IADSR_OK, or IADSR_ERR_INVALID_ARG "<fn>: <arg> = v is outside lo..hi". */
int iadsr__check_arg_i32(const char *fn, const char *arg, int32_t v,
                         int32_t lo, int32_t hi);
/* IADSR_OK, or IADSR_ERR_INVALID_ARG "<fn>: <arg> is not aligned to
 * <align> bytes" (a host array of floats or integers read in place: a
 * misaligned one is undefined behaviour for the library's loads). */
int iadsr__check_aligned(const char *fn, const char *arg, const void *p,
                         size_t align);
/* The range check behind it and iadsr__check_i32 (params.h, a struct
 * field: "<what>.<field> = ..."): "<what><sep><name> = v is outside
 * lo..hi". */
int iadsr__check_range_i32(const char *what, const char *sep,
                           const char *name, int32_t v, int32_t lo, int32_t hi);

#endif /* IADSR_ERROR_H */
