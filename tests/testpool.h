/* Test helper: buffers registered in a per-file pool and released together
 * by pool_free() at the end of a test (so early ck_assert exits in a forked
 * test do not matter and the non-forked runs stay leak-free).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_TESTPOOL_H
#define IADSR_TESTPOOL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#define TESTPOOL_MAX 256

static void *pool[TESTPOOL_MAX];
static int n_pool;

static void *palloc(size_t n, size_t size)
{
    ck_assert_int_lt(n_pool, TESTPOOL_MAX);
    void *p = calloc(n ? n : 1, size);
    ck_assert_ptr_nonnull(p);
    pool[n_pool++] = p;
    return p;
}

static inline double *dalloc(size_t n) { return palloc(n, sizeof(double)); }
static inline float *falloc(size_t n) { return palloc(n, sizeof(float)); }
static inline int32_t *ialloc(size_t n) { return palloc(n, sizeof(int32_t)); }

static void pool_free(void)
{
    while (n_pool > 0)
        free(pool[--n_pool]);
}

#endif
