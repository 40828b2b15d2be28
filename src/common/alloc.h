/* libiadsr - allocation wrappers with an allocation-failure test hook
 * (alloc.c).
 * SPDX-License-Identifier: MIT
 *
 * All library allocations go through these so that tests can fail the k-th
 * allocation (iadsr__alloc_fail_after). Sizes are overflow-checked.
 */
#ifndef IADSR_ALLOC_H
#define IADSR_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *iadsr__malloc(size_t size);
void *iadsr__calloc(size_t n, size_t size);
/* malloc of n*size bytes aligned to 64 bytes; NULL on overflow/failure. */
void *iadsr__aligned_alloc(size_t n, size_t size);
void iadsr__free(void *p);
void iadsr__aligned_free(void *p);

/* Free every block of a list (from iadsr__malloc/_calloc, resp.
 * iadsr__aligned_alloc; NULL entries are skipped): the cleanup of a struct
 * that owns many buffers, one statement per kind of block. */
void iadsr__free_list(void *const *blocks, size_t n);
void iadsr__aligned_free_list(void *const *blocks, size_t n);
#define IADSR__FREE_ALL(...)                                                   \
    iadsr__free_list((void *[]){__VA_ARGS__},                                  \
                     sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))
#define IADSR__ALIGNED_FREE_ALL(...)                                           \
    iadsr__aligned_free_list((void *[]){__VA_ARGS__},                          \
                             sizeof((void *[]){__VA_ARGS__}) / sizeof(void *))

/* Resize a block from iadsr__malloc/iadsr__calloc (or allocate when @p p is
 * NULL) to n*size bytes (overflow-checked; 0 is treated as 1). On failure
 * returns NULL and @p p is left untouched and still owned by the caller.
 * Counts as one allocation attempt for iadsr__alloc_fail_after(). */
void *iadsr__realloc(void *p, size_t n, size_t size);

/* Test hook (thread-local): the k-th allocation from now (1-based) and all
 * later ones fail when persistent != 0, or only that one otherwise; k = 0
 * disables. Returns the number of allocations made since the last call. */
long iadsr__alloc_fail_after(long k, int persistent);

/* Test hook (thread-local): blocks allocated minus blocks freed by the
 * calling thread since it started (including aligned blocks). Meaningful
 * when a test allocates and frees on one thread. */
long iadsr__alloc_live(void);

/* A host's row-major float matrix of @p n_rows rows (>= 1) with leading
 * dimension @p ld must be addressable: (n_rows - 1) * ld + ld floats fit in
 * PTRDIFF_MAX bytes. Returns IADSR_OK or IADSR_ERR_INVALID_ARG with a
 * message prefixed by @p what. */
int iadsr__check_matrix_span(const char *what, int64_t n_rows, int64_t ld);

#endif /* IADSR_ALLOC_H */
