/* SASRec encoder: layers with hand-written backward passes, compiled twice
 * from sasrec_impl.h: in float for production (suffix _f32) and in double
 * for the finite-difference gradient checks (suffix _f64).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_SASREC_H
#define IADSR_SASREC_H

#include "iadsr.h"
#include "backbone/shape.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/rng.h"

#define IADSR__MAX_LAYERS 16
#define IADSR__LN_EPS 1e-5

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
} iadsr__batch;


#define REAL float
#define SFX(name) name##_f32
#include "backbone/sasrec_decl_template.h"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_f64
#include "backbone/sasrec_decl_template.h"
#undef REAL
#undef SFX

#endif
