/* libiadsr - identification of the public handles.
 * SPDX-License-Identifier: MIT
 *
 * Every handle starts with a magic word so that a foreign or freed pointer
 * is reported as IADSR_ERR_INVALID_ARG instead of being used.
 */
#ifndef IADSR_HANDLE_H
#define IADSR_HANDLE_H

#include "common/alloc.h"

#include <stdint.h>

#define IADSR__MAGIC_DATASET 0x49445354u /* "IDST" */
#define IADSR__MAGIC_MODEL 0x494d444cu   /* "IMDL" */
#define IADSR__MAGIC_TRAINER 0x49545252u /* "ITRR" */
#define IADSR__MAGIC_CTX 0x49435458u     /* "ICTX" */
#define IADSR__MAGIC_DEAD 0xdeadbeefu
#define IADSR__MAGIC_SEMANTIC 0x4953454du /* "ISEM" */
#define IADSR__MAGIC_ALIGNER 0x49414c4eu  /* "IALN" */
#define IADSR__MAGIC_GATE 0x49474154u     /* "IGAT" */
#define IADSR__MAGIC_DENOISER 0x49444e53u /* "IDNS" */

/* Non-zero when @p p is a live handle of the kind @p kind (NULL, a freed or
 * a foreign handle: 0). Every handle struct has a uint32_t `magic`. */
#define IADSR__HANDLE_IS(p, kind) ((p) != NULL && (p)->magic == (kind))

/* Shared, refcounted handles (datasets, models, semantic matrices, aligners,
 * gates) are logically immutable once published: only the refcount changes,
 * with atomic builtins, so any thread may take or drop a reference. */
static inline void iadsr__handle_init(uint32_t *magic, int *refcount,
                                      uint32_t kind)
{
    *magic = kind;
    *refcount = 1;
}

/* One more reference. The cast drops the const of the published handle: the
 * refcount is its only mutable field. */
static inline void iadsr__handle_take(const int *refcount)
{
    __atomic_add_fetch((int *)(uintptr_t)refcount, 1, __ATOMIC_RELAXED);
}

/* Drop one reference. Returns 1 when it was the last one: the handle is then
 * marked dead and the caller frees it; 0 otherwise. */
static inline int iadsr__handle_drop(uint32_t *magic, int *refcount)
{
    if (__atomic_sub_fetch(refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return 0;
    *magic = IADSR__MAGIC_DEAD;
    return 1;
}

/* Allocate the handle struct @p h points to, zeroed and live (magic
 * @p kind, one reference). Non-zero on success; 0 with @p h NULL when out of
 * memory. A handle that fails later in its construction is released with
 * iadsr__free, never published. */
#define IADSR__HANDLE_NEW(h, kind)                                            \
    (((h) = iadsr__calloc(1, sizeof *(h))) != NULL &&                         \
     (iadsr__handle_init(&(h)->magic, &(h)->refcount, (kind)), 1))

/* The lifecycle of the refcounted handle type @p T, named @p name (its
 * header declares the internal ones, iadsr.h the public free):
 *   int iadsr__<name>_ok(const T *)   a live handle of this kind
 *   T *iadsr__<name>_ref(const T *)   one more reference (NULL: NULL)
 *   void iadsr__<name>_unref(T *)     drop one (NULL: no-op); the last one
 *                                     calls destroy(T *), which frees the
 *                                     contents and the struct
 *   void iadsr_<name>_free(T *)       the public release: a foreign or
 *                                     already-freed pointer is ignored
 *                                     rather than freed */
#define IADSR__HANDLE_LIFECYCLE(T, name, kind, destroy)                       \
    int iadsr__##name##_ok(const T *h)                                        \
    {                                                                         \
        return IADSR__HANDLE_IS(h, kind);                                     \
    }                                                                         \
    T *iadsr__##name##_ref(const T *h)                                        \
    {                                                                         \
        if (h)                                                                \
            iadsr__handle_take(&h->refcount);                                 \
        return (T *)(uintptr_t)h;                                             \
    }                                                                         \
    void iadsr__##name##_unref(T *h)                                          \
    {                                                                         \
        if (h && iadsr__handle_drop(&h->magic, &h->refcount))                 \
            destroy(h);                                                       \
    }                                                                         \
    void iadsr_##name##_free(T *h)                                            \
    {                                                                         \
        if (iadsr__##name##_ok(h))                                            \
            iadsr__##name##_unref(h);                                         \
    }

/* A public accessor `R fn(const T *h)` of such a handle: @p expr of the
 * live handle h, 0 for NULL, a foreign or a freed handle (iadsr.h: "0 for
 * NULL"). */
#define IADSR__HANDLE_GET(T, name, R, fn, expr)                               \
    R fn(const T *h)                                                          \
    {                                                                         \
        return iadsr__##name##_ok(h) ? (expr) : 0;                            \
    }

#endif /* IADSR_HANDLE_H */
