/* Declarations of the Caser layers for one real type, declared for both by
 * caser.h through math/real_declare.h. Template macros needed: REAL, SFX.
 * No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* Pointers into a weight (or gradient) buffer laid out by
 * caser_layout() (caser_f32.c). hw[h - 1] / hb[h - 1] belong to height h. */
typedef struct SFX(iadsr__caser_w) {
    REAL *item_emb;
    REAL *hw[IADSR__CASER_MAX_L], *hb[IADSR__CASER_MAX_L];
    REAL *vw, *vb;
    REAL *fcw, *fcb;
} SFX(iadsr__caser_w);

/* Activations kept for the backward pass, plus backward scratch. With
 * l = caser_window, F = nv d + l nh:
 *   x    R x l d   the images (window of every row)
 *   c    R x l nh  relu of the height-h convolution of the h items ENDING
 *                  at each row (column block h - 1); a pooled value of row
 *                  r is the max of these over the rows of its window
 *   arg  R x l nh  offset s (0..l-h) of the max of every pooled value
 *                  (training only; ties: the first offset)
 *   z    R x F     concat(out_v, out_h); zd = z * mask (training)
 *   out  R x d     the encoder output */
typedef struct SFX(iadsr__caser_ws) {
    IADSR__BACKBONE_WS_HEAD;
    REAL *x, *c, *z, *out;
    int32_t *arg;
    REAL *mask, *zd;
    /* backward scratch */
    REAL *dz, *dx, *dc, *wt;
} SFX(iadsr__caser_ws);

/* The family's functions (backbone/family.h). ws_init ignores
 * max_len: a row needs only its own window of caser_l items. forward draws
 * one dropout mask, on z; forward_last computes each sequence's last row
 * from that row's window alone. backward adds to the rows of
 * g->item_emb used as inputs as well. */
IADSR__BACKBONE_DECLARE(caser);

/* ---- individual layers (exposed for the per-layer gradient checks) ---- */

/* The images: x (n_rows x l d), row r = the embeddings of the l items
 * ending at row r of its sequence, zero before the sequence start. */
void SFX(iadsr__caser_image)(const iadsr__batch *b, int l, int d,
                             const REAL *emb, REAL *x);
/* Adds dx (n_rows x l d) back to the embedding rows of the items; sets
 * b->dscale (when not NULL) from emb, the table the image was made of. */
void SFX(iadsr__caser_image_bwd)(const iadsr__batch *b, int l, int d,
                                 const REAL *emb, const REAL *dx, REAL *demb);

/* Horizontal convolutions and max-pooling of every row of the batch.
 * x: images (n_rows x l d); c: n_rows x l nh, receives relu of the
 * convolutions by end row; arg: NULL or n_rows x l nh offsets of the
 * maxima; out: pooled values, row r at out + r * ldo (l nh values). Only
 * the last h window rows of row p's image feed the convolution ending at p;
 * windows entirely before the sequence start give relu(bias). */
void SFX(iadsr__caser_hconv_fwd)(const iadsr__batch *b, int l, int d, int nh,
                                 const REAL *x, REAL *const *hw,
                                 REAL *const *hb, REAL *c, int32_t *arg,
                                 REAL *out, int ldo);
/* Backward of hconv_fwd: dout (row r at dout + r * ldo) is dLoss/dout;
 * dhw/dhb and dx (n_rows x l d) are ADDED to. dc (n_rows x l nh) and wt
 * (l d nh) are scratch. */
void SFX(iadsr__caser_hconv_bwd)(const iadsr__batch *b, int l, int d, int nh,
                                 const REAL *x, REAL *const *hw,
                                 REAL *const *hb, const REAL *c,
                                 const int32_t *arg, const REAL *dout,
                                 int ldo, REAL *const *dhw, REAL *const *dhb,
                                 REAL *dc, REAL *wt, REAL *dx);

/* Vertical convolution of n images: out row r (at out + r * ldo) gets
 * nv * d values out[f d + j] = sum_i wv[i nv + f] x[r][i d + j] + bv[f]. */
void SFX(iadsr__caser_vconv_fwd)(int n, int l, int d, int nv, const REAL *x,
                                 const REAL *wv, const REAL *bv, REAL *out,
                                 int ldo);
/* Backward: dwv, dbv and dx (n x l d) are ADDED to. */
void SFX(iadsr__caser_vconv_bwd)(int n, int l, int d, int nv, const REAL *x,
                                 const REAL *wv, const REAL *dout, int ldo,
                                 REAL *dwv, REAL *dbv, REAL *dx);
