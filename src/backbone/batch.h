/* The mini-batch every encoder, the Stage 2 heads and the scorers share:
 * packed variable-length sequences. Backbone-neutral on purpose, so that
 * code outside src/backbone/ needs no backbone's header.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_BATCH_H
#define IADSR_BATCH_H

#include <stdint.h>

/* A mini-batch of packed variable-length sequences: only real positions are
 * stored (no padding rows). Sequence s owns rows row_off[s]..row_off[s+1];
 * pos[r] is the position-embedding index of row r, i.e. the position the
 * item would have in a left-padded window of length L (L - n + i). */
typedef struct iadsr__batch {
    int n_seq;
    int n_rows;
    const int32_t *items;   /* n_rows item ids, 1..n_items */
    const int32_t *pos;     /* n_rows position indices, 0..L-1 */
    const int32_t *row_off; /* n_seq + 1 */
    /* NULL, or n_rows multipliers of the input item embeddings (IADSR's
     * mask carry-over; training forward/backward only) */
    const float *scale;
    /* NULL, or n_rows doubles the backward pass sets to dL/dscale[r] =
     * <dL/d(input row r), E[items[r]]> (with scale NULL as if every scale
     * were 1): the straight-through path of a mask on the inputs */
    double *dscale;
} iadsr__batch;

#endif
