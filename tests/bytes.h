/* Little-endian field access for tests and fuzz harnesses that build or
 * patch checkpoint files byte by byte (docs/FORMAT.md: all integers are
 * little-endian). Plain C, no test framework.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_TESTS_BYTES_H
#define IADSR_TESTS_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Growable byte string for crafted files (test code: out of memory aborts). */
typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static inline void b_put(bytes *s, const void *src, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->p = realloc(s->p, s->cap);
        if (!s->p)
            abort();
    }
    if (n)
        memcpy(s->p + s->len, src, n);
    s->len += n;
}

static inline void b_u32(bytes *s, uint32_t v)
{
    uint8_t t[4];
    wr32(t, v);
    b_put(s, t, 4);
}

static inline void b_u64(bytes *s, uint64_t v)
{
    uint8_t t[8];
    wr64(t, v);
    b_put(s, t, 8);
}

#endif /* IADSR_TESTS_BYTES_H */
