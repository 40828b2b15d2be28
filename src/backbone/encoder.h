/* The backbone encoder interface. Everything outside a backbone (trainer,
 * contexts, evaluation, checkpoints) talks to encoders through this table,
 * so adding a backbone (GRU4Rec, Caser) adds an entry, not branches.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ENCODER_H
#define IADSR_ENCODER_H

#include "backbone/caser.h"
#include "backbone/gru4rec.h"
#include "backbone/sasrec.h"
#include "common/rng.h"

typedef struct iadsr__encoder iadsr__encoder;

typedef struct iadsr__encoder_ops {
    int backbone; /* IADSR_BACKBONE_* */
    const char *name;
    /* Bind to weights w (and gradient buffer g, may be NULL when not
     * training) laid out by iadsr__model_layout(), and allocate activations
     * for batches of up to max_rows rows in which no sequence is longer
     * than max_len. */
    int (*create)(iadsr__encoder *e, const iadsr_model_params *hp,
                  const iadsr__layout *l, const float *w, float *g,
                  int max_rows, int max_len, int training);
    void (*destroy)(iadsr__encoder *e);
    /* Hidden state of every row of the batch (n_rows x dim), valid until
     * the next call. rng NULL = inference (no dropout). */
    const float *(*forward)(iadsr__encoder *e, const iadsr__batch *b,
                            iadsr__rng *rng);
    /* Inference: the hidden state of the LAST row of each sequence only
     * (n_seq x dim), valid until the next call. */
    const float *(*forward_last)(iadsr__encoder *e, const iadsr__batch *b);
    /* Add the gradients of the weights given dLoss/dH (clobbered) to g. */
    void (*backward)(iadsr__encoder *e, const iadsr__batch *b, float *dh);
} iadsr__encoder_ops;

struct iadsr__encoder {
    const iadsr__encoder_ops *ops;
    iadsr__shape shape;
    /* backbone state; a union keeps the handle a single allocation */
    union {
        struct {
            iadsr__sasrec_w_f32 w, g;
            iadsr__sasrec_ws_f32 ws;
        } sasrec;
        struct {
            iadsr__gru4rec_w_f32 w, g;
            iadsr__gru4rec_ws_f32 ws;
        } gru4rec;
        struct {
            iadsr__caser_w_f32 w, g;
            iadsr__caser_ws_f32 ws;
        } caser;
    } u;
};

/* The table of a (normalised) backbone, or NULL if not available. */
const iadsr__encoder_ops *iadsr__encoder_ops_for(int backbone);

/* Convenience wrappers. */
int iadsr__encoder_create(iadsr__encoder *e, const iadsr_model_params *hp,
                          const iadsr__layout *l, const float *w, float *g,
                          int max_rows, int max_len, int training);
void iadsr__encoder_destroy(iadsr__encoder *e);

#endif
