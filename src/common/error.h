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

#if defined(__GNUC__)
#define IADSR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IADSR_PRINTF(f, a)
#endif

/* Set the thread-local last-error message and return @p code. */
int iadsr__err(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);
/* Prefix the current message: "prefix: old message". Returns @p code. */
int iadsr__err_prefix(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);

#endif /* IADSR_ERROR_H */
