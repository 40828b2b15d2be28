/* Inference context internals, shared by ctx.c and eval.c.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CTX_H
#define IADSR_CTX_H

#include "backbone/encoder.h"
#include "score/scan.h"

struct iadsr_ctx {
    uint32_t magic;
    iadsr_model *m; /* reference held */
    iadsr__shape shape;
    iadsr__encoder enc; /* inference encoder bound to the model's weights */
    int max_batch;
    int64_t n_scores;   /* n_items + 1 */
    int32_t *items;     /* max_batch * L packed ids */
    int32_t *kept;      /* max_batch * L: the histories of a top-K v2 chunk,
                           unknown ids removed, last L valid ids each */
    int32_t *pos;       /* max_batch * L positions */
    int32_t *row_off;   /* max_batch + 1 */
    int64_t *offs;      /* max_batch + 1, rebased CSR offsets */
    float *hlast;       /* round8(max_batch) x d last hidden states */
    float *scores;      /* n_scores, single-sequence scores */
    float *topk_keys;   /* n_scores, heap keys when the caller gives none */
    float *chunk;       /* max_batch x n_scores, batched scores */
    float *zl;          /* round8(max_batch) x model ldt, or NULL */
    int scan;           /* the fused top-K scans run (packed table, AVX-512) */
    int32_t *fill;      /* max_batch heap sizes of the batch scan */
    uint64_t *excl;     /* n_items bits, column j = item j + 1 excluded */
    uint16_t *t16;      /* IADSR_CTX_F_FP16_SCAN: fp16 table, else NULL */
    int8_t *t8;         /* IADSR_CTX_F_INT8_SCAN: int8 table, else NULL */
    float *t8_scale;    /* and its per-item scales (ldt) */
    float q_err, q_abs; /* the reduced table's error-bound inputs (scan.h) */
    const float *e1;    /* row-major item table (re-scoring), item 1 first */
    int32_t *cand_ids;  /* n_items candidates of the reduced scans */
    float *cand_s;
};

/* Validate a CSR batch against the context's model. */
int iadsr__ctx_check_batch(const iadsr_ctx *c, const int32_t *items,
                           const int64_t *offsets, int64_t n_users);
/* Encode n_users <= max_batch sequences (zero-based offsets) into hlast. */
void iadsr__ctx_encode(iadsr_ctx *c, const int32_t *items,
                       const int64_t *offsets, int64_t n_users);
/* Same for a sub-range whose offsets need not start at 0. */
void iadsr__ctx_encode_range(iadsr_ctx *c, const int32_t *items,
                             const int64_t *offsets, int64_t n_users);
/* scores (n_users rows, leading dimension ld) from hlast; column 0 = -inf. */
void iadsr__ctx_scores(iadsr_ctx *c, int64_t n_users, float *scores,
                       int64_t ld);

#endif
