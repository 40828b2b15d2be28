/* Top-K selection: the plain heap over a score row, and the fused scans
 * that score the packed item table and select in one pass (the scores of
 * a whole batch never reach memory), in fp32 and over an fp16 copy of the
 * table with exact fp32 re-scoring of the candidates.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_SCAN_H
#define IADSR_SCAN_H

#include <stdint.h>

/* Best k items where s0[j - 1] is the score of item j (j = 1..n_items),
 * skipping -inf and NaN, best first, ties to the smaller id; padded with
 * -1 / -inf. */
void iadsr__topk(const float *s0, int32_t n_items, int32_t k,
                 int32_t *ids_out, float *s_out);

/* Whether the fused scans can run (AVX-512 built and present). They use
 * the packed table of iadsr__xent_transpose (tiles of 32 items). */
int iadsr__scan_ok(void);

/* One batch for the fused fp32 scan. h holds round8(n_users) rows of d
 * floats (rows past n_users are zero). User u's excluded ids are
 * hist[hoff[u] .. hoff[u + 1]) when hist is non-NULL; ids outside
 * 1..n_items in it are ignored. Results go to ids/keys (n_users x k,
 * k <= n_items) exactly as iadsr__topk() over the scores
 * iadsr__xent_logits() computes would give them. fill is n_users ints of
 * scratch. */
typedef struct {
    const float *h;
    int n_users, d;
    const float *et;
    int ldt;
    int32_t n_items, k;
    const int32_t *hist;
    const int64_t *hoff;
    int32_t *ids;
    float *keys;
    int32_t *fill;
} iadsr__scan_batch;

void iadsr__scan_topk_batch(const iadsr__scan_batch *s);

/* fp16 copy of a packed table (same tile layout, d x ldt halves) and the
 * two numbers its error bound needs: max_err = max |fp16(x) - x| and
 * max_abs = max(|x|, |fp16(x)|) over the table. Returns 0, or -1 when a
 * value is beyond the fp16 range or not finite (t16 is then undefined). */
int iadsr__table_f16(const float *et, int d, int ldt, uint16_t *t16,
                     float *max_err, float *max_abs);

/* int8 copy of a packed table with one scale per item (column):
 * x~ = scale[j] * q, q = round(x / scale[j]) in -127..127, scale[j] =
 * max_k |x_jk| / 127; same tile layout (d x ldt bytes), ldt scales, and
 * max_err = max |x~ - x|, max_abs = max(|x|, |x~|). Returns 0, or -1 when a
 * value is not finite. */
int iadsr__table_i8(const float *et, int d, int ldt, int8_t *t8, float *scale,
                    float *max_err, float *max_abs);

/* Single-user top-K through a reduced table (t16, or t8 with scale),
 * identical to the fp32 path: approximate scores select every item whose
 * fp32 score could reach the top k (a proven bound, see scan.c), and only
 * those are re-scored in fp32 from e1 (row-major n_items x d, item j at row
 * j - 1). excl is a bitmap of n_items bits (bit j - 1 = item j excluded) or
 * NULL. cand_ids / cand_s are n_items of scratch each. Returns 0, or -1
 * when the bound is not finite (h not finite or too large): use the fp32
 * path. */
typedef struct {
    const float *h;
    int d;
    const float *e1;
    const uint16_t *t16;
    const int8_t *t8;
    const float *scale;
    int ldt;
    float max_err, max_abs;
    int32_t n_items, k;
    const uint64_t *excl;
    int32_t *cand_ids;
    float *cand_s;
    int32_t *ids;
    float *keys;
} iadsr__scan_q;

int iadsr__scan_topk1_q(const iadsr__scan_q *s);

/* Single-user fused fp32 scan (same contract, no fp16 table). */
void iadsr__scan_topk1(const float *h, int d, const float *et, int ldt,
                       int32_t n_items, int32_t k, const uint64_t *excl,
                       int32_t *ids, float *keys);

#endif
