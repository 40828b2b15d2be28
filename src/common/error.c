/* libiadsr - status codes and the thread-local last-error message.
 * SPDX-License-Identifier: MIT
 */
#include "iadsr.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERR_BUF_SIZE 1024

/* The only per-thread mutable state of the library. */
static _Thread_local char tl_last_error[ERR_BUF_SIZE];

typedef struct status_desc {
    const char *name;
    const char *text;
} status_desc;

/* Indexed by -status; the values are ABI and never change. */
static const status_desc status_table[] = {
    {"IADSR_OK", "success"},
    {"IADSR_ERR_GENERIC", "unexpected internal failure"},
    {"IADSR_ERR_NOMEM", "memory allocation failed"},
    {"IADSR_ERR_INVALID_ARG", "invalid argument"},
    {"IADSR_ERR_OUT_OF_RANGE", "value out of range"},
    {"IADSR_ERR_BUFFER_TOO_SMALL", "caller buffer too small"},
    {"IADSR_ERR_IO", "input/output error"},
    {"IADSR_ERR_FORMAT", "malformed file, text or checkpoint"},
    {"IADSR_ERR_VERSION", "unsupported format version"},
    {"IADSR_ERR_CHECKSUM", "checksum mismatch"},
    {"IADSR_ERR_STATE", "call not valid in this state"},
    {"IADSR_ERR_UNSUPPORTED", "feature or flag not supported"},
    {"IADSR_ERR_NUMERIC", "non-finite value or numerical divergence"},
    {"IADSR_ERR_ABORTED", "aborted by a callback"},
    {"IADSR_ERR_DIM_MISMATCH", "dimensions do not agree"},
    {"IADSR_ERR_MISMATCH", "parts trained with other parts"},
};

#define N_STATUS ((int)(sizeof status_table / sizeof status_table[0]))

static const status_desc *status_lookup(int status)
{
    if (status > 0 || status <= -N_STATUS)
        return NULL;
    return &status_table[-status];
}

const char *iadsr_strerror(int status)
{
    const status_desc *d = status_lookup(status);
    return d ? d->text : "unknown status code";
}

const char *iadsr_status_name(int status)
{
    const status_desc *d = status_lookup(status);
    return d ? d->name : "IADSR_UNKNOWN";
}

const char *iadsr_last_error(void)
{
    return tl_last_error;
}

void iadsr_clear_error(void)
{
    tl_last_error[0] = '\0';
}

/* Format into a local buffer first: an argument may be iadsr_last_error()
 * itself, and vsnprintf must not overlap. */
static void IADSR_PRINTF(1, 0) set_message(const char *fmt, va_list ap)
{
    char msg[ERR_BUF_SIZE];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        msg[0] = '\0';
    memcpy(tl_last_error, msg, strlen(msg) + 1);
}

int iadsr__err(int code, const char *fmt, ...)
{
    if (!fmt) {
        tl_last_error[0] = '\0';
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    return code;
}

int iadsr__err_at(int code, const char *name, int64_t line, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    /* the same bytes as "%s:%lld: " fmt formatted in one go, truncation
     * included: the message only ever loses its tail */
    return iadsr__err(code, "%s:%lld: %s", name, (long long)line,
                      tl_last_error);
}

int iadsr__err_prefix(int code, const char *fmt, ...)
{
    char prefix[ERR_BUF_SIZE];
    char old[ERR_BUF_SIZE];

    if (!fmt)
        return code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0)
        return code;

    /* Work on copies so that source and destination never overlap. */
    memcpy(old, tl_last_error, sizeof old);
    old[sizeof old - 1] = '\0';

    size_t plen = strlen(prefix);
    size_t olen = strlen(old);
    size_t cap = sizeof tl_last_error - 1; /* room for the terminator */
    size_t pos = 0;

    size_t take = plen < cap ? plen : cap;
    memcpy(tl_last_error, prefix, take);
    pos = take;
    if (olen > 0) {
        static const char sep[] = ": ";
        for (size_t i = 0; i < sizeof sep - 1 && pos < cap; i++)
            tl_last_error[pos++] = sep[i];
        take = olen < cap - pos ? olen : cap - pos;
        memcpy(tl_last_error + pos, old, take);
        pos += take;
    }
    tl_last_error[pos] = '\0';
    return code;
}

int iadsr__check_handle(int ok, const char *fn, const char *kind)
{
    if (ok)
        return IADSR_OK;
    return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid %s handle", fn,
                      kind);
}

int iadsr__check_range_i32(const char *what, const char *sep,
                           const char *name, int32_t v, int32_t lo, int32_t hi)
{
    if (v < lo || v > hi)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s%s%s = %d is outside %d..%d", what, sep, name,
                          (int)v, (int)lo, (int)hi);
    return IADSR_OK;
}

int iadsr__check_aligned(const char *fn, const char *arg, const void *p,
                         size_t align)
{
    if ((uintptr_t)p % align == 0)
        return IADSR_OK;
    return iadsr__err(IADSR_ERR_INVALID_ARG,
                      "%s: %s (%p) is not aligned to %zu bytes", fn, arg,
                      p, align);
}

int iadsr__check_arg_i32(const char *fn, const char *arg, int32_t v,
                         int32_t lo, int32_t hi)
{
    return iadsr__check_range_i32(fn, ": ", arg, v, lo, hi);
}
