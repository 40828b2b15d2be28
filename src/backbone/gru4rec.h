/* GRU4Rec encoder: embedding -> n_layers GRU layers -> h_t, with
 * hand-written backward passes (BPTT), compiled twice from gru4rec_template.h:
 * in float for production (suffix _f32) and in double for the
 * finite-difference gradient checks (suffix _f64).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_GRU4REC_H
#define IADSR_GRU4REC_H

#include "iadsr.h"
#include "backbone/model.h"
#include "backbone/batch.h"
#include "backbone/family.h"
#include "backbone/shape.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/rng.h"
#include "math/linear.h" /* the transposes and column sums */

/* Parameter layout of a GRU4Rec model (normalised params; gru4rec_f32.c,
 * the encoder ops' layout): "item_emb" [n_items + 1, d] first, then per
 * layer l the tensors "gru<l>.<name>" below (backbone/family.h); the 3d
 * columns are the gates in PyTorch's order r | z | n. */
#define IADSR__GRU4REC_LAYER(X)                                                \
    X(w_ih, "w_ih", d, 3 * d)                                                  \
    X(w_hh, "w_hh", d, 3 * d)                                                  \
    X(b_ih, "b_ih", 1, 3 * d)                                                  \
    X(b_hh, "b_hh", 1, 3 * d)

/* The time-major schedule of a batch. The recurrence advances, at step k,
 * every sequence that has a k-th row, all together. Sequences are ranked
 * by length, longest first (ties in batch order), so that the sequences
 * active at step k are exactly ranks 0..n_k-1, and time-major position
 * koff[k] + j holds row k of the sequence of rank j: the previous hidden
 * states of step k are the first n_k rows of step k-1, one contiguous
 * block. tm_row[t] is the packed row at time-major position t and
 * row_tm[r] its inverse (both n_rows). @p cnt is scratch of max_len + 1
 * ints, koff receives n_steps + 1 offsets, max_len bounds every sequence
 * length. Returns n_steps (the longest sequence's length). */
int iadsr__gru4rec_schedule(const iadsr__batch *b, int max_len, int32_t *cnt,
                            int32_t *koff, int32_t *tm_row, int32_t *row_tm);

#define IADSR_DECL_TEMPLATE "backbone/gru4rec_decl_template.h"
#include "math/real_declare.h"

#endif
