/* libiadsr - a workspace arena: the many buffers of a layer workspace
 * carved, 64-byte aligned, out of one iadsr__aligned_alloc() block, so that
 * a workspace has one allocation, one error path and one free.
 * SPDX-License-Identifier: MIT
 *
 * A workspace writes one carve function that hands out every buffer with
 * iadsr__arena_take(); iadsr__arena_alloc() runs it twice, first to
 * measure (every take returns NULL), then over the block, so the sizes are
 * written once.
 */
#ifndef IADSR_ARENA_H
#define IADSR_ARENA_H

#include "iadsr.h"
#include "common/alloc.h"
#include "common/error.h"

#include <stddef.h>
#include <string.h>

typedef struct iadsr__arena {
    char *base; /* NULL while measuring */
    size_t used;
} iadsr__arena;

/* The next n elements of @p size bytes (rounded up to 64 bytes), or NULL
 * while measuring. */
static inline void *iadsr__arena_take(iadsr__arena *a, size_t n, size_t size)
{
    void *p = a->base ? (void *)(a->base + a->used) : NULL;
    a->used += (n * size + 63) / 64 * 64;
    return p;
}

/* n elements of the real type of a layer template (REAL, math/real_f32.h):
 * what the templates' carve functions take. */
#define IADSR__TAKE_R(a, n) iadsr__arena_take((a), (n), sizeof(REAL))

/* Measure with carve(ws, arena), allocate the block into *@p block, then
 * carve again to point ws's buffers into it. IADSR_OK, or IADSR_ERR_NOMEM
 * "<what>: cannot allocate N bytes of workspace" with *@p block untouched. */
static inline int iadsr__arena_alloc(void **block,
                                     void (*carve)(void *ws, iadsr__arena *a),
                                     void *ws, const char *what)
{
    iadsr__arena a = {NULL, 0};
    carve(ws, &a);
    char *p = iadsr__aligned_alloc(a.used, 1);
    if (!p)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes of workspace", what,
                          a.used);
    a.base = p;
    a.used = 0;
    carve(ws, &a);
    *block = p;
    return IADSR_OK;
}

/* Free @p block and zero the @p size bytes of its workspace @p ws, whose
 * buffers all pointed into it. */
static inline void iadsr__arena_release(void *ws, size_t size, void *block)
{
    iadsr__aligned_free(block);
    memset(ws, 0, size);
}

#endif /* IADSR_ARENA_H */
