/* Training cross-entropy over all items (xent.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_XENT_H
#define IADSR_XENT_H

#include "iadsr.h"

#define IADSR__XENT_MAX_THREADS 64

typedef struct iadsr__xent_args {
    const float *h;         /* n_rows x d hidden states */
    int n_rows, d;
    const int32_t *targets; /* n_rows, 1..n_items (0 = skip row) */
    const float *e1;        /* n_items x d: item table rows 1..n_items */
    const float *et;        /* packed transposed table (fast path only) */
    int n_items, ldt;
    int chunk;              /* rows per chunk (fast path: a multiple of 8) */
    int fast;               /* use the AVX-512 kernels (iadsr__xent_fast_ok) */
    float scale;            /* gradient scale, e.g. 1 / n_rows */
    float *dh;              /* n_rows x d, gradient ADDED; NULL = loss only */
    float *de1;             /* n_items x d, gradient ADDED; may be NULL */
    float smooth;           /* label smoothing in [0, 1); 0 = plain */
    float *lse;             /* NULL, or n_rows floats receiving each row's
                             * log-sum-exp of its logits (rows without a
                             * target too) */
    /* History penalty (0 = off, the two arrays may then be NULL): row r's
     * history is hist_items[hist_first[r] .. r] (the input items of its
     * sequence up to itself; indices on the same base as targets); the
     * loss gains hist_weight * -log(1 - p_c) for each distinct history
     * item c other than the target. At most hist_cap items per history. */
    float hist_weight;
    const int32_t *hist_items;
    const int32_t *hist_first;
    int hist_cap;
} iadsr__xent_args;

/* Non-zero when the AVX-512 kernels can serve width d on this CPU. */
int iadsr__xent_fast_ok(int d);
/* Leading dimension of the transposed table / logits (n padded). */
int iadsr__xent_ldt(int n_items);
/* et (d x ldt) = e1^T, padding columns zero. */
void iadsr__xent_transpose(const float *e1, int n_items, int d, float *et,
                           int ldt);
/* The same on up to n_threads threads (each writes its own tiles). */
void iadsr__xent_transpose_mt(const float *e1, int n_items, int d, float *et,
                              int ldt, int n_threads);
/* z (rows x ldt) = h (rows x d) . e1^T from the packed table; rows must be
 * a multiple of 8. Only valid when iadsr__xent_fast_ok(d). Column j holds
 * item j + 1; padding columns are 0. */
void iadsr__xent_logits(const float *h, int rows, int d, const float *et,
                        int ldt, float *z);
/* The same for a single row (z: ldt floats). */
void iadsr__xent_logits1(const float *h, int d, const float *et, int ldt,
                         float *z);
/* Floats of scratch needed per thread (hist_cap: the longest history the
 * history penalty will see, 0 without it). */
size_t iadsr__xent_scratch_floats(int chunk, int ldt, int d, int n_items,
                                  int hist_cap);
/* Summed loss over rows; scratch holds n_threads * scratch_floats. */
double iadsr__xent(const iadsr__xent_args *a, float *scratch, int n_threads);

#endif
