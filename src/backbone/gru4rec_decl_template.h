/* Declarations of the GRU4Rec layers for one real type, declared for both
 * by gru4rec.h through math/real_declare.h. Template macros needed: REAL,
 * SFX. No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* Pointers into a weight (or gradient) buffer laid out by
 * gru4rec_layout() (gru4rec_f32.c): one GRU layer's w_ih, w_hh (d x 3d)
 * and b_ih, b_hh (3d), and the model's. */
typedef struct SFX(iadsr__gru_layer_w) {
    IADSR__GRU4REC_LAYER(IADSR__W_FIELD)
} SFX(iadsr__gru_layer_w);

typedef struct SFX(iadsr__gru4rec_w) {
    REAL *item_emb;
    SFX(iadsr__gru_layer_w) lay[IADSR__MAX_LAYERS];
} SFX(iadsr__gru4rec_w);

/* Activations kept for the backward pass, plus backward scratch. Every
 * activation is stored in time-major order (see iadsr__gru4rec_schedule());
 * only `out` is in packed row order. Inference keeps no per-layer
 * activations. */
typedef struct SFX(iadsr__gru4rec_ws) {
    IADSR__BACKBONE_WS_HEAD;
    int n_steps; /* steps of the last forward */
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
} SFX(iadsr__gru4rec_ws);

/* The family's functions (backbone/family.h). forward draws the
 * dropout masks of the input embeddings, then of each layer's output;
 * forward_last needs every sequence to have at least one row. */
IADSR__BACKBONE_DECLARE(gru4rec);

/* One GRU layer over a time-major schedule (exposed for the per-layer
 * gradient checks). x: R x d input, R = koff[n_steps]. Writes g (R x 3d,
 * the gates r | z | n), gh (R x 3d, h_prev W_hh + b_hh) and h (R x d). The
 * initial hidden state is 0. */
void SFX(iadsr__gru_layer_fwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const SFX(iadsr__gru_layer_w) *w,
                               REAL *g, REAL *gh, REAL *h);

/* Its backward: @p dh (R x d) is dLoss/dh of every position and is
 * clobbered (it receives the recurrent gradient as well). The gradients of
 * the weights are ADDED to dw's; dx (R x d, may be NULL) is overwritten
 * with dLoss/dx. Scratch: dgi, dgh (R x 3d), hp (R x d), wt (3d x d). */
void SFX(iadsr__gru_layer_bwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const SFX(iadsr__gru_layer_w) *w,
                               const REAL *g, const REAL *gh, const REAL *h,
                               REAL *dh, const SFX(iadsr__gru_layer_w) *dw,
                               REAL *dx, REAL *dgi, REAL *dgh, REAL *hp,
                               REAL *wt);
