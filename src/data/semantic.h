/* libiadsr - semantic item-embedding matrices (semantic.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_SEMANTIC_H
#define IADSR_SEMANTIC_H

#include "iadsr.h"
#include "common/alloc.h"
#include "common/handle.h"


/* Immutable once created (only the reference count changes). Every value is
 * finite. Item i (1..n_items) is the row rows + (i - 1) * ld, whatever the
 * layout of the host's matrix (the padding row of
 * IADSR_SEMANTIC_ROW0_PADDING is skipped when @c rows is set). */
struct iadsr_semantic {
    uint32_t magic;
    int refcount; /* atomic (__atomic builtins) */
    int32_t n_items;
    int32_t dim;
    int32_t n_zero_rows; /* items whose row is all zeros */
    int64_t ld;          /* floats from one item's row to the next */
    const float *rows;   /* item 1's row */
    /* n_items + 1 entries indexed by item id: 1 / ||row|| computed in double,
     * 0 for a zero row and for entry 0. Double, not float: rows whose norm is
     * outside float's range (below 2^-126 or above 2^128) still get an exact
     * finite inverse, so cosines never become Inf or NaN. */
    double *inv_norm;
    void *owned; /* freed with the handle (iadsr__aligned_free); NULL when
                    the host's memory is borrowed */
};

/* A new reference (NULL for NULL); the handle lives until the last one is
 * released with iadsr__semantic_unref(). */
iadsr_semantic *iadsr__semantic_ref(const iadsr_semantic *s);
/* Release one reference (NULL is a no-op). */
void iadsr__semantic_unref(iadsr_semantic *s);
/* Non-zero for a live semantic handle (magic check). */
int iadsr__semantic_ok(const iadsr_semantic *s);

/* Item @p item's row (1 <= item <= n_items, not checked). */
static inline const float *iadsr__semantic_row(const iadsr_semantic *s,
                                               int32_t item)
{
    return s->rows + (size_t)(item - 1) * (size_t)s->ld;
}

/* A 64-bit fingerprint of items 1..@p n_items (<= s->n_items) and the width:
 * what an aligner or gate records of the matrix it was trained with, so that
 * a matrix made for other items is refused later (iadsr_denoiser_create).
 * Any change of a value changes it with near certainty; -0 counts as +0.
 * Rows past @p n_items are not read: items appended to the catalogue
 * after training keep the fingerprint. */
uint64_t iadsr__semantic_fingerprint(const iadsr_semantic *s, int32_t n_items);

/* The shape checks of iadsr_semantic_create(), with @p code for the
 * problems that come from the data rather than from the caller (@p pad: row
 * 0 is padding). */
int iadsr__semantic_check_shape(const char *w, int64_t n_rows, int64_t dim,
                                int pad, int code);

/* Build a handle over a matrix whose shape is already checked: validate
 * every value, compute the inverse norms, copy the rows unless the data is
 * borrowed or @p owned is given. @p owned (the block holding @p data, from
 * iadsr__aligned_alloc, or NULL) is taken over, and freed on failure. */
int iadsr__semantic_build(iadsr_semantic **out, const float *data,
                          int64_t n_rows, int32_t dim, int64_t ld,
                          uint32_t flags, void *owned, const char *w);

#endif /* IADSR_SEMANTIC_H */
