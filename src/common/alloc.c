/* libiadsr - allocation wrappers with an allocation-failure test hook.
 * SPDX-License-Identifier: MIT
 */
#include "common/alloc.h"
#include "common/error.h"

#include <stdint.h>
#include <stdlib.h>

#define IADSR__ALIGN 64

/* Test hook state: thread-local, so concurrent tests do not interfere. */
static _Thread_local long tl_count;   /* attempts since the last hook call */
static _Thread_local long tl_fail_at; /* 0 = disabled */
static _Thread_local int tl_persistent;
static _Thread_local long tl_live; /* allocated minus freed */

/* Count one allocation attempt; non-zero if it must fail. */
static int hook_should_fail(void)
{
    tl_count++;
    if (tl_fail_at <= 0)
        return 0;
    if (tl_count == tl_fail_at)
        return 1;
    return tl_persistent && tl_count > tl_fail_at;
}

long iadsr__alloc_fail_after(long k, int persistent)
{
    long made = tl_count;
    tl_count = 0;
    tl_fail_at = k > 0 ? k : 0;
    tl_persistent = persistent != 0;
    return made;
}

long iadsr__alloc_live(void)
{
    return tl_live;
}

/* n*size with overflow check; 0 becomes 1 so every block is unique. */
static int checked_bytes(size_t n, size_t size, size_t *bytes)
{
    if (size != 0 && n > SIZE_MAX / size)
        return 0;
    *bytes = n * size;
    if (*bytes == 0)
        *bytes = 1;
    return 1;
}

void *iadsr__malloc(size_t size)
{
    if (hook_should_fail())
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        tl_live++;
    return p;
}

void *iadsr__calloc(size_t n, size_t size)
{
    size_t bytes;
    if (hook_should_fail() || !checked_bytes(n, size, &bytes))
        return NULL;
    void *p = calloc(bytes, 1);
    if (p)
        tl_live++;
    return p;
}

void *iadsr__realloc(void *p, size_t n, size_t size)
{
    size_t bytes;
    if (hook_should_fail() || !checked_bytes(n, size, &bytes))
        return NULL;
    void *q = realloc(p, bytes);
    if (q && !p)
        tl_live++;
    return q;
}

void *iadsr__aligned_alloc(size_t n, size_t size)
{
    size_t bytes;
    void *p = NULL;
    if (hook_should_fail() || !checked_bytes(n, size, &bytes))
        return NULL;
    if (posix_memalign(&p, IADSR__ALIGN, bytes) != 0)
        return NULL;
    tl_live++;
    return p;
}

void iadsr__free(void *p)
{
    if (p) {
        tl_live--;
        free(p);
    }
}

void iadsr__aligned_free(void *p)
{
    /* posix_memalign blocks are released with free(). */
    iadsr__free(p);
}

int iadsr__check_matrix_span(const char *what, int64_t n_rows, int64_t ld)
{
    const uint64_t max_floats = (uint64_t)PTRDIFF_MAX / sizeof(float);
    if ((uint64_t)ld > max_floats ||
        (uint64_t)(n_rows - 1) > (max_floats - (uint64_t)ld) / (uint64_t)ld)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: %lld rows with ld = %lld exceed the address "
                          "space",
                          what, (long long)n_rows, (long long)ld);
    return IADSR_OK;
}

void iadsr__free_list(void *const *blocks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        iadsr__free(blocks[i]);
}

void iadsr__aligned_free_list(void *const *blocks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        iadsr__aligned_free(blocks[i]);
}
