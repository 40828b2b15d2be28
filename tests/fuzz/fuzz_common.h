/* Helpers shared by the libiadsr fuzz harnesses (header-only; every
 * harness is one translation unit linked with the library objects and
 * either libFuzzer, AFL++ or tests/fuzz/replay.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FUZZ_COMMON_H
#define IADSR_FUZZ_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iadsr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed check prints where and why, then traps: libFuzzer and AFL++
 * both treat SIGILL as a crash, and the replay driver dies loudly. The
 * message goes to stderr unbuffered so it survives the trap. */
#define FZ_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz check failed: %s:%d: %s (last error: "     \
                            "'%s')\n",                                        \
                    __FILE__, __LINE__, #cond, iadsr_last_error());           \
            __builtin_trap();                                                 \
        }                                                                     \
    } while (0)

/* A non-NULL address that no constructor may leave behind on failure. */
static inline void *fz_sentinel(void)
{
    static char obj;
    return &obj;
}
#define FZ_SENTINEL fz_sentinel()

/* A documented status code (IADSR_OK or one of the 15 errors). */
static inline int fz_known_status(int rc)
{
    return rc <= IADSR_OK && rc >= IADSR_ERR_MISMATCH;
}

/* After a call: a failure must be a known code with a message, and the
 * status tables must describe it. Call iadsr_clear_error() before the
 * call so that a stale message cannot satisfy the check. */
static inline void fz_check_status(int rc)
{
    FZ_CHECK(fz_known_status(rc));
    if (rc != IADSR_OK) {
        const char *msg = iadsr_last_error();
        FZ_CHECK(msg != NULL && msg[0] != '\0');
    }
    FZ_CHECK(iadsr_strerror(rc) != NULL);
    FZ_CHECK(strcmp(iadsr_status_name(rc), "IADSR_UNKNOWN") != 0);
}

/* ---- "untouched" checks: fill outputs with a pattern, compare later ---- */

#define FZ_FILL 0xA5

static inline void fz_fill(void *p, size_t n)
{
    if (p && n)
        memset(p, FZ_FILL, n);
}

static inline int fz_untouched(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != FZ_FILL)
            return 0;
    return 1;
}

/* malloc that never returns NULL for n == 0 (the harness is not under
 * test; an allocation failure of its own aborts). */
static inline void *fz_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* ---- a small deterministic byte reader (no C++ FuzzedDataProvider) ---- */

typedef struct fz_reader {
    const uint8_t *p;
    size_t n;
} fz_reader;

static inline uint8_t fz_u8(fz_reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static inline uint16_t fz_u16(fz_reader *r)
{
    uint16_t lo = fz_u8(r);
    return (uint16_t)(lo | (uint16_t)fz_u8(r) << 8);
}

static inline uint32_t fz_u32(fz_reader *r)
{
    uint32_t lo = fz_u16(r);
    return lo | (uint32_t)fz_u16(r) << 16;
}

static inline uint64_t fz_u64(fz_reader *r)
{
    uint64_t lo = fz_u32(r);
    return lo | (uint64_t)fz_u32(r) << 32;
}

/* A value in 0..n-1 (n >= 1). */
static inline uint32_t fz_below(fz_reader *r, uint32_t n)
{
    if (n <= 256)
        return fz_u8(r) % n;
    return fz_u32(r) % n;
}

static inline int fz_bool(fz_reader *r)
{
    return fz_u8(r) & 1;
}

/* Pick one of @p n candidate values. */
#define FZ_PICK(r, arr) ((arr)[fz_below((r), sizeof(arr) / sizeof((arr)[0]))])

/* A float that is usually ordinary and sometimes NaN, +-Inf, a denormal,
 * a huge value or a signed zero. */
static inline float fz_f32(fz_reader *r)
{
    static const float special[] = {
        0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 1e-45f, -1e-45f, 1e-38f, 3.0f,
        -3.0f, 1e30f, -1e30f, 3.4028235e38f, -3.4028235e38f, 1e6f, 1.0001f,
    };
    uint8_t sel = fz_u8(r);
    if (sel < 16)
        return special[sel];
    if (sel == 16)
        return NAN;
    if (sel == 17)
        return INFINITY;
    if (sel == 18)
        return -INFINITY;
    if (sel < 64) {
        /* raw bits: anything IEEE can express */
        uint32_t u = fz_u32(r);
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    /* a small ordinary value in [-2, 2] */
    return ((float)fz_u16(r) / 65535.0f) * 4.0f - 2.0f;
}

/* Deterministic pseudo-random floats in [-1, 1) for matrices the harness
 * builds itself (semantic rows, embeddings). */
static inline float fz_hash_float(uint64_t i, uint64_t salt)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + salt;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (float)((double)(x >> 40) / (double)(1ull << 23)) - 1.0f;
}

#endif /* IADSR_FUZZ_COMMON_H */
