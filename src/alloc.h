/* libiadsr - allocation helpers beyond internal.h (alloc.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ALLOC_H
#define IADSR_ALLOC_H

#include <stddef.h>

/* Resize a block from iadsr__malloc/iadsr__calloc (or allocate when @p p is
 * NULL) to n*size bytes (overflow-checked; 0 is treated as 1). On failure
 * returns NULL and @p p is left untouched and still owned by the caller.
 * Counts as one allocation attempt for iadsr__alloc_fail_after(). */
void *iadsr__realloc(void *p, size_t n, size_t size);

/* Test hook (thread-local): blocks allocated minus blocks freed by the
 * calling thread since it started (including aligned blocks). Meaningful
 * when a test allocates and frees on one thread. */
long iadsr__alloc_live(void);

#endif /* IADSR_ALLOC_H */
