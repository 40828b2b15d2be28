/* libiadsr internal declarations shared between modules. Not installed.
 * SPDX-License-Identifier: MIT
 *
 * Cross-file internals are named iadsr__* and are hidden from the shared
 * library by -fvisibility=hidden and the version script; the static library
 * still exposes them to the unit tests.
 */
#ifndef IADSR_INTERNAL_H
#define IADSR_INTERNAL_H

#include "iadsr.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define IADSR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IADSR_PRINTF(f, a)
#endif

/* ---- errors (error.c) --------------------------------------------------- */

/* Set the thread-local last-error message and return @p code. */
int iadsr__err(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);
/* Prefix the current message: "prefix: old message". Returns @p code. */
int iadsr__err_prefix(int code, const char *fmt, ...) IADSR_PRINTF(2, 3);

/* ---- memory (alloc.c) ---------------------------------------------------- */
/* All library allocations go through these so that tests can fail the k-th
 * allocation (iadsr__alloc_fail_after). Sizes are overflow-checked. */
void *iadsr__malloc(size_t size);
void *iadsr__calloc(size_t n, size_t size);
/* malloc of n*size bytes aligned to 64 bytes; NULL on overflow/failure. */
void *iadsr__aligned_alloc(size_t n, size_t size);
void iadsr__free(void *p);
void iadsr__aligned_free(void *p);
/* Test hook (thread-local): the k-th allocation from now (1-based) and all
 * later ones fail when persistent != 0, or only that one otherwise; k = 0
 * disables. Returns the number of allocations made since the last call. */
long iadsr__alloc_fail_after(long k, int persistent);

/* ---- params overlay (params.c) ------------------------------------------- */
/* Start from @p defaults (size @p lib_size) and overlay the caller's struct
 * @p user (its first uint32_t is struct_size). Returns IADSR_OK,
 * IADSR_ERR_INVALID_ARG (struct_size < min_size) or IADSR_ERR_UNSUPPORTED
 * (struct_size > lib_size with a non-zero tail). @p what names the struct in
 * messages. NULL @p user means defaults. */
int iadsr__params_overlay(void *dst, const void *defaults, size_t lib_size,
                          size_t min_size, const void *user, const char *what);
/* Validate a complete model params struct (bounds, backbone, flags) and
 * normalise defaults (backbone 0 -> SASREC, ffn_dim 0 -> 4*dim, activation 0
 * -> GELU). Returns IADSR_OK or an error with a message. */
int iadsr__model_params_check(iadsr_model_params *p);

/* ---- random numbers (rng.c) ---------------------------------------------- */
typedef struct iadsr__rng {
    uint64_t s[4];
} iadsr__rng;
void iadsr__rng_seed(iadsr__rng *r, uint64_t seed);
uint64_t iadsr__rng_u64(iadsr__rng *r);
/* Uniform in [0, n), n >= 1, unbiased. */
uint64_t iadsr__rng_below(iadsr__rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float iadsr__rng_float(iadsr__rng *r);
/* Standard normal (Box-Muller, double precision). */
double iadsr__rng_normal(iadsr__rng *r);

/* ---- handle identification ----------------------------------------------- */
/* Every handle starts with a magic word so that a foreign or freed pointer
 * is reported as IADSR_ERR_INVALID_ARG instead of being used. */
#define IADSR__MAGIC_DATASET 0x49445354u /* "IDST" */
#define IADSR__MAGIC_MODEL 0x494d444cu   /* "IMDL" */
#define IADSR__MAGIC_TRAINER 0x49545252u /* "ITRR" */
#define IADSR__MAGIC_CTX 0x49435458u     /* "ICTX" */
#define IADSR__MAGIC_DEAD 0xdeadbeefu

/* ---- datasets (dataset.c) ------------------------------------------------ */
struct iadsr_dataset {
    uint32_t magic;
    int refcount; /* atomic (__atomic builtins) */
    int32_t n_items;
    int64_t n_users;
    const int32_t *items;   /* n_interactions ids, 1..n_items */
    const int64_t *offsets; /* n_users + 1 */
    const int64_t *user_ids;/* n_users, or NULL: row index is the id */
    void *owned_items;      /* freed with the dataset (NULL if borrowed) */
    void *owned_offsets;
    void *owned_user_ids;
};
iadsr_dataset *iadsr__dataset_ref(const iadsr_dataset *d);
void iadsr__dataset_unref(iadsr_dataset *d);
int iadsr__dataset_ok(const iadsr_dataset *d); /* magic check */

/* ---- models (model.c) ---------------------------------------------------- */
#define IADSR__MAX_TENSORS 256 /* SASRec: 4 + 12 per block (16 max) + 2 */
#define IADSR__TENSOR_NAME_MAX 48

/* One named parameter tensor: a rows x cols row-major block of the model's
 * weight buffer starting at float index `offset` (64-byte aligned). */
typedef struct iadsr__tensor {
    char name[IADSR__TENSOR_NAME_MAX];
    size_t offset;
    int64_t rows, cols;
} iadsr__tensor;

typedef struct iadsr__layout {
    int n_tensors;
    iadsr__tensor t[IADSR__MAX_TENSORS];
    size_t n_floats; /* total, including alignment gaps */
} iadsr__layout;

struct iadsr_model {
    uint32_t magic;
    int refcount; /* atomic */
    iadsr_model_params hp; /* validated and normalised */
    iadsr__layout layout;
    float *w; /* layout.n_floats floats, 64-byte aligned; gaps are zero */
    /* Item table transposed and packed for the AVX-512 scoring kernels
     * (xent.c layout), or NULL when they are not used on this CPU. Built by
     * iadsr__model_finalize() once the weights are final. */
    float *et;
    int ldt;
    /* training provenance, stored in checkpoints (informational) */
    int32_t epochs_trained;
    float best_valid_ndcg10; /* NaN if unknown */
};

/* The parameter layout of a backbone for normalised params @p hp.
 * Returns IADSR_OK or IADSR_ERR_UNSUPPORTED / IADSR_ERR_INVALID_ARG. */
int iadsr__model_layout(const iadsr_model_params *hp, iadsr__layout *out);
/* Allocate a model with zeroed weights for params @p p (validated and
 * normalised here). Does not initialise weights. */
int iadsr__model_alloc(iadsr_model **out, const iadsr_model_params *p);
/* Derived read-only data (the packed item table) from final weights; call
 * once after filling m->w and before publishing the model. */
int iadsr__model_finalize(iadsr_model *m);
/* Find a tensor by name; NULL if absent. */
/* Append tensor @p name (rows x cols) at the next 64-byte aligned offset;
 * used by every backbone's layout function. */
int iadsr__layout_add(iadsr__layout *l, const char *name, int64_t rows,
                      int64_t cols);
const iadsr__tensor *iadsr__layout_find(const iadsr__layout *l,
                                        const char *name);
iadsr_model *iadsr__model_ref(const iadsr_model *m);
int iadsr__model_ok(const iadsr_model *m);

/* ---- BLAS wrapper (blas.c) ----------------------------------------------- */
/* Row-major C = alpha * op(A) op(B) + beta * C. op(X) = X or X^T by the
 * trans flags. When beta == 0, C is overwritten (never read), so NaN garbage
 * in C cannot leak through a BLAS that multiplies it by zero. Dimensions are
 * checked by callers (all fit in int). */
void iadsr__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc);
/* Double-precision reference GEMM with the same contract (used by the
 * gradient checks). */
void iadsr__dgemm(int trans_a, int trans_b, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b,
                  int ldb, double beta, double *c, int ldc);
const char *iadsr__blas_info(void);

/* ---- misc ---------------------------------------------------------------- */
double iadsr__now(void); /* monotonic seconds */
/* Non-zero when x[0..n) holds no NaN or Inf. */
int iadsr__all_finite(const float *x, size_t n);
/* CRC-32C (Castagnoli) of a buffer, continuing from @p crc (start with 0). */
uint32_t iadsr__crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* IADSR_INTERNAL_H */
