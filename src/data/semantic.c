/* libiadsr - semantic item embeddings: an immutable n_items x D matrix of
 * host text embeddings and its .npy input/output. (The text-only
 * recommender that scores with it is src/score/text_recommender.c.)
 * SPDX-License-Identifier: MIT
 *
 * Creation validates every value (NaN/Inf are refused with the item and the
 * column), and precomputes each row's inverse L2 norm in double precision so
 * that scoring is one pass over the matrix.
 */
#include "data/semantic.h"

#include "common/error.h"
#include "common/handle.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SEM_MAX_ITEMS (INT32_MAX - 1) /* as datasets and models */
#define SEM_MAX_DIM 1048576
#define SEM_FLAGS (IADSR_FLAG_BORROW | IADSR_SEMANTIC_ROW0_PADDING)

/* ---- handle lifecycle ---------------------------------------------------- */

static void semantic_destroy(iadsr_semantic *s)
{
    iadsr__aligned_free(s->owned);
    iadsr__free(s->inv_norm);
    iadsr__free(s);
}

IADSR__HANDLE_LIFECYCLE(iadsr_semantic, semantic, IADSR__MAGIC_SEMANTIC,
                        semantic_destroy)

/* ---- creation ------------------------------------------------------------ */

/* Sum of squares of a row in double. Finite values cannot overflow it (at
 * most 2^20 * 2^256), so the result is finite exactly when every value
 * is. */
static double row_sumsq(const float *x, int32_t n)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        a0 += (double)x[j] * (double)x[j];
        a1 += (double)x[j + 1] * (double)x[j + 1];
        a2 += (double)x[j + 2] * (double)x[j + 2];
        a3 += (double)x[j + 3] * (double)x[j + 3];
    }
    for (; j < n; j++)
        a0 += (double)x[j] * (double)x[j];
    return (a0 + a1) + (a2 + a3);
}

static int nonfinite_err(const char *w, const float *row, int32_t dim,
                         int32_t item, int pad)
{
    int32_t c = 0;
    while (c < dim - 1 && isfinite(row[c]))
        c++;
    const float v = row[c];
    return iadsr__err(IADSR_ERR_NUMERIC,
                      "%s: item %d (row %lld), column %d is %s", w, (int)item,
                      (long long)item - 1 + pad, (int)c,
                      isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"));
}

int iadsr__semantic_check_shape(const char *w, int64_t n_rows, int64_t dim,
                                int pad, int code)
{
    if (dim < 1 || dim > SEM_MAX_DIM)
        return iadsr__err(code, "%s: dim = %lld is outside 1..%d", w,
                          (long long)dim, SEM_MAX_DIM);
    if (n_rows - pad < 1 || n_rows - pad > SEM_MAX_ITEMS)
        return iadsr__err(code,
                          "%s: %lld rows%s give %lld items; n_items must be "
                          "1..%d",
                          w, (long long)n_rows,
                          pad ? " (row 0 is padding)" : "",
                          (long long)(n_rows - pad), SEM_MAX_ITEMS);
    return IADSR_OK;
}

int iadsr__semantic_build(iadsr_semantic **out, const float *data,
                          int64_t n_rows, int32_t dim, int64_t ld,
                          uint32_t flags, void *owned, const char *w)
{
    const int pad = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    const int32_t n_items = (int32_t)(n_rows - pad);
    const float *first = data + (size_t)pad * (size_t)ld;
    int32_t n_zero = 0;
    float *copy = NULL;
    iadsr_semantic *s = NULL;
    int rc;

    double *inv = iadsr__calloc((size_t)n_items + 1, sizeof(double));
    if (!inv) {
        rc = iadsr__err(IADSR_ERR_NOMEM,
                        "%s: out of memory (%d inverse norms)", w,
                        (int)n_items);
        goto fail;
    }
    inv[0] = 0.0;
    for (int32_t i = 1; i <= n_items; i++) {
        const float *row = first + (size_t)(i - 1) * (size_t)ld;
        double ss = row_sumsq(row, dim);
        if (!isfinite(ss)) {
            rc = nonfinite_err(w, row, dim, i, pad);
            goto fail;
        }
        if (ss > 0.0) {
            inv[i] = 1.0 / sqrt(ss);
        } else {
            inv[i] = 0.0;
            n_zero++;
        }
    }

    if (!owned && !(flags & IADSR_FLAG_BORROW)) {
        copy = iadsr__aligned_alloc((size_t)n_items * (size_t)dim,
                                    sizeof(float));
        if (!copy) {
            rc = iadsr__err(IADSR_ERR_NOMEM,
                            "%s: out of memory copying %d x %d floats", w,
                            (int)n_items, (int)dim);
            goto fail;
        }
        const size_t rb = (size_t)dim * sizeof(float);
        if (ld == dim) {
            memcpy(copy, first, (size_t)n_items * rb);
        } else {
            for (int32_t i = 0; i < n_items; i++)
                memcpy(copy + (size_t)i * (size_t)dim,
                       first + (size_t)i * (size_t)ld, rb);
        }
        first = copy;
        ld = dim;
    }

    if (!IADSR__HANDLE_NEW(s, IADSR__MAGIC_SEMANTIC)) {
        rc = iadsr__err(IADSR_ERR_NOMEM, "%s: out of memory (%zu bytes)", w,
                        sizeof *s);
        goto fail;
    }
    s->n_items = n_items;
    s->dim = dim;
    s->n_zero_rows = n_zero;
    s->ld = ld;
    s->rows = first;
    s->inv_norm = inv;
    s->owned = copy ? (void *)copy : owned;
    *out = s;
    return IADSR_OK;

fail:
    iadsr__free(inv);
    iadsr__aligned_free(copy);
    iadsr__aligned_free(owned);
    return rc;
}

int iadsr_semantic_create(iadsr_semantic **out, const float *data,
                          int64_t n_rows, int32_t dim, int64_t ld,
                          uint32_t flags)
{
    static const char w[] = "semantic_create";

    IADSR__OUT_CLEAR(out, w);
    if (!data)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: data is NULL", w);
    TRY(iadsr__check_aligned(w, "data", data, sizeof(float)));
    if (flags & ~SEM_FLAGS)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags = 0x%x has unknown bits (expected "
                          "IADSR_FLAG_COPY or IADSR_FLAG_BORROW, optionally "
                          "with IADSR_SEMANTIC_ROW0_PADDING)",
                          w, (unsigned)flags);
    const int pad = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    int rc = iadsr__semantic_check_shape(w, n_rows, dim, pad, IADSR_ERR_INVALID_ARG);
    if (rc != IADSR_OK)
        return rc;
    if (ld < dim)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: ld = %lld is smaller than dim = %d", w,
                          (long long)ld, (int)dim);
    if ((rc = iadsr__check_matrix_span(w, n_rows, ld)) != IADSR_OK)
        return rc;
    return iadsr__semantic_build(out, data, n_rows, dim, ld, flags, NULL, w);
}

/* ---- accessors ----------------------------------------------------------- */

IADSR__HANDLE_GET(iadsr_semantic, semantic, int32_t, iadsr_semantic_n_items,
                  h->n_items)
IADSR__HANDLE_GET(iadsr_semantic, semantic, int32_t, iadsr_semantic_dim,
                  h->dim)
IADSR__HANDLE_GET(iadsr_semantic, semantic, int32_t,
                  iadsr_semantic_n_zero_rows, h->n_zero_rows)

const float *iadsr_semantic_row(const iadsr_semantic *s, int32_t item)
{
    if (!iadsr__semantic_ok(s) || item < 1 || item > s->n_items)
        return NULL;
    return iadsr__semantic_row(s, item);
}

/* splitmix64's finaliser: every input bit reaches every output bit */
static uint64_t fp_mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

uint64_t iadsr__semantic_fingerprint(const iadsr_semantic *s, int32_t n_items)
{
    uint64_t h = fp_mix(((uint64_t)(uint32_t)n_items << 32) |
                        (uint32_t)s->dim);
    for (int32_t i = 1; i <= n_items; i++) {
        const float *r = iadsr__semantic_row(s, i);
        /* two words per step keep the loop cheap (a 12k x 384 matrix
         * hashes in about a millisecond) */
        int32_t j = 0;
        for (; j + 1 < s->dim; j += 2) {
            uint32_t a, b;
            memcpy(&a, r + j, 4);
            memcpy(&b, r + j + 1, 4);
            a = a == 0x80000000u ? 0u : a;
            b = b == 0x80000000u ? 0u : b;
            h = (h ^ (((uint64_t)a << 32) | b)) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
        }
        if (j < s->dim) {
            uint32_t a;
            memcpy(&a, r + j, 4);
            a = a == 0x80000000u ? 0u : a;
            h = (h ^ a) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
        }
        h = (h ^ (uint64_t)(uint32_t)i) * 0xff51afd7ed558ccdull; /* row ends */
    }
    return fp_mix(h);
}

int iadsr_semantic_check(const iadsr_semantic *s, int32_t n_items,
                         int32_t dim)
{
    static const char w[] = "semantic_check";
    if (!iadsr__semantic_ok(s))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s", w,
                          s ? "not a semantic matrix handle"
                            : "the matrix is NULL");
    if (n_items < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_items = %d, must be > 0", w, (int)n_items);
    if (dim < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: dim = %d, must be >= 0 (0 = any)", w,
                          (int)dim);
    if (s->n_items != n_items)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "%s: the matrix has %d items, expected %d", w,
                          (int)s->n_items, (int)n_items);
    if (dim != 0 && s->dim != dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "%s: the matrix has dimension %d, expected %d", w,
                          (int)s->dim, (int)dim);
    return IADSR_OK;
}
