/* Declarations of the GRU4Rec layers for one real type, declared for both
 * by gru4rec.h through math/real_declare.h. Template macros needed: REAL,
 * SFX. No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* Pointers into a weight (or gradient) buffer laid out by
 * gru4rec_layout() (gru4rec_f32.c). */
typedef struct SFX(iadsr__gru4rec_w) {
    REAL *item_emb;
    struct {
        REAL *w_ih, *w_hh, *b_ih, *b_hh;
    } lay[IADSR__MAX_LAYERS];
} SFX(iadsr__gru4rec_w);

/* Activations kept for the backward pass, plus backward scratch. One
 * workspace serves batches of up to max_rows rows in which no sequence is
 * longer than max_len. Every activation is stored in time-major order (see
 * iadsr__gru4rec_schedule()); only `out` is in packed row order. */
typedef struct SFX(iadsr__gru4rec_ws) {
    iadsr__shape shape;
    int max_rows, max_len;
    int training;   /* masks and per-layer activations present */
    int drew_masks; /* the last forward drew dropout masks */
    int n_steps;    /* steps of the last forward */
    int32_t *koff, *cnt;     /* max_len + 1 each */
    int32_t *tm_row, *row_tm; /* max_rows each */
    REAL *x0; /* R x d: the input embeddings, dropped out when training */
    REAL *m0; /* R x d: their dropout mask (training) */
    struct {
        REAL *g;  /* R x 3d: x W_ih + b_ih, then the gates r | z | n */
        REAL *gh; /* R x 3d: h_prev W_hh + b_hh */
        REAL *h;  /* R x d: the hidden states */
        REAL *m;  /* R x d: output dropout mask (training) */
        REAL *y;  /* R x d: h * m, the layer's output (training) */
    } l[IADSR__MAX_LAYERS]; /* inference: every layer shares l[0] */
    REAL *out; /* R x d: encoder output in packed row order */
    /* backward scratch */
    REAL *dy, *dh, *dgi, *dgh, *hp, *wt;
    void *block; /* the single allocation */
} SFX(iadsr__gru4rec_ws);

void SFX(iadsr__gru4rec_bind)(const iadsr__layout *l, REAL *base,
                              const iadsr__shape *s,
                              SFX(iadsr__gru4rec_w) *w);

int SFX(iadsr__gru4rec_ws_init)(SFX(iadsr__gru4rec_ws) *ws,
                                const iadsr__shape *s, int max_rows,
                                int max_len, int training);
void SFX(iadsr__gru4rec_ws_free)(SFX(iadsr__gru4rec_ws) *ws);

/* Forward pass over a batch. With @p rng non-NULL and ws->training,
 * dropout masks are drawn from it (input embeddings, then each layer's
 * output); with rng NULL dropout is off (inference). The output hidden
 * states are ws->out (n_rows x d, packed row order). */
void SFX(iadsr__gru4rec_forward)(SFX(iadsr__gru4rec_ws) *ws,
                                 const SFX(iadsr__gru4rec_w) *w,
                                 const iadsr__batch *b, iadsr__rng *rng);

/* Inference: the hidden state of the last row of each sequence, ws->out
 * (n_seq x d). No dropout. Every sequence must have at least one row. */
void SFX(iadsr__gru4rec_forward_last)(SFX(iadsr__gru4rec_ws) *ws,
                                      const SFX(iadsr__gru4rec_w) *w,
                                      const iadsr__batch *b);

/* Backward pass: @p dh (n_rows x d, packed) is dLoss/dOutput; gradients are
 * ADDED to @p g (same layout as the weights). @p dh is clobbered. */
void SFX(iadsr__gru4rec_backward)(SFX(iadsr__gru4rec_ws) *ws,
                                  const SFX(iadsr__gru4rec_w) *w,
                                  SFX(iadsr__gru4rec_w) *g,
                                  const iadsr__batch *b, REAL *dh);

/* One GRU layer over a time-major schedule (exposed for the per-layer
 * gradient checks). x: R x d input; w_ih, w_hh: d x 3d; b_ih, b_hh: 3d.
 * Writes g (R x 3d, the gates r | z | n), gh (R x 3d, h_prev W_hh + b_hh)
 * and h (R x d). R = koff[n_steps]. The initial hidden state is 0. */
void SFX(iadsr__gru_layer_fwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const REAL *w_ih,
                               const REAL *b_ih, const REAL *w_hh,
                               const REAL *b_hh, REAL *g, REAL *gh, REAL *h);

/* Its backward: @p dh (R x d) is dLoss/dh of every position and is
 * clobbered (it receives the recurrent gradient as well). Gradients of the
 * weights are ADDED to dw_ih, db_ih, dw_hh, db_hh; dx (R x d, may be NULL)
 * is overwritten with dLoss/dx. Scratch: dgi, dgh (R x 3d), hp (R x d),
 * wt (3d x d). */
void SFX(iadsr__gru_layer_bwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const REAL *w_ih,
                               const REAL *w_hh, const REAL *g,
                               const REAL *gh, const REAL *h, REAL *dh,
                               REAL *dw_ih, REAL *db_ih, REAL *dw_hh,
                               REAL *db_hh, REAL *dx, REAL *dgi, REAL *dgh,
                               REAL *hp, REAL *wt);
