/* Declarations of the SASRec layers for one real type, declared for both by
 * sasrec.h through math/real_declare.h. Template macros needed: REAL, SFX.
 * No include guard on purpose.
 * SPDX-License-Identifier: MIT
 */

/* Pointers into a weight (or gradient) buffer laid out by
 * sasrec_layout() (sasrec_f32.c). */
typedef struct SFX(iadsr__sasrec_blk_w) {
    IADSR__SASREC_BLOCK(IADSR__W_FIELD)
} SFX(iadsr__sasrec_blk_w);

typedef struct SFX(iadsr__sasrec_w) {
    REAL *item_emb, *pos_emb, *eln_g, *eln_b;
    SFX(iadsr__sasrec_blk_w) blk[IADSR__MAX_LAYERS];
    REAL *fln_g, *fln_b; /* final LayerNorm (pre-norm models only) */
} SFX(iadsr__sasrec_w);

/* Activations kept for the backward pass, plus backward scratch. The
 * attention probabilities p hold max_rows * max_len * n_heads entries when
 * training (every sequence and head: n^2 each), max_len^2 otherwise (one
 * block, reused). */
typedef struct SFX(iadsr__sasrec_ws) {
    IADSR__BACKBONE_WS_HEAD;
    REAL *e, *xhat0, *rstd0, *m0;
    REAL *x[IADSR__MAX_LAYERS + 1]; /* x[0] block-0 input, x[L] last block */
    /* Pre-norm models only: a1/a2 are the LN1/LN2 outputs that feed the
     * attention and the FFN; xhatf/rstdf belong to the final LayerNorm. */
    struct {
        REAL *qkv, *p, *pm, *ctx, *ma, *y1hat, *rstd1, *x1;
        REAL *h1, *g, *mf, *gd, *mo, *y2hat, *rstd2, *a1, *a2;
    } b[IADSR__MAX_LAYERS];
    REAL *xhatf, *rstdf;
    REAL *out; /* encoder output: x[L], or the final LayerNorm of it */
    /* backward scratch */
    REAL *dx, *dx1, *dqkv, *dctx, *dh, *tmp, *wt;
} SFX(iadsr__sasrec_ws);

/* The family's functions (backbone/family.h). forward_last computes the
 * final block for the last row of every sequence only. */
IADSR__BACKBONE_DECLARE(sasrec);

/* Full-softmax cross-entropy of next-item targets over items 1..n_items
 * with logits h_r . E[i]. Processes rows in chunks of @p chunk using the
 * scratch @p zbuf (chunk x n_items). Returns the SUM of the per-row losses;
 * when dh/demb are non-NULL, adds scale * dLoss/dh and scale * dLoss/dE
 * (scale is typically 1/total rows). Rows with target 0 are skipped. */
double SFX(iadsr__ce_loss)(const REAL *h, int n_rows, int d,
                           const int32_t *targets, const REAL *emb,
                           int n_items, REAL scale, REAL *dh, REAL *demb,
                           REAL *zbuf, int chunk);

/* Individual layers (exposed for the per-layer gradient checks). */
void SFX(iadsr__layernorm_fwd)(const REAL *x, int n, int d, const REAL *g,
                               const REAL *bias, REAL *y, REAL *xhat,
                               REAL *rstd);
void SFX(iadsr__layernorm_bwd)(const REAL *dy, const REAL *xhat,
                               const REAL *rstd, int n, int d, const REAL *g,
                               REAL *dg, REAL *dbias, REAL *dx);
void SFX(iadsr__act_fwd)(int act, const REAL *x, size_t n, REAL *y);
void SFX(iadsr__act_bwd)(int act, const REAL *x, const REAL *dy, size_t n,
                         REAL *dx);
/* Causal multi-head attention over packed sequences. qkv: n_rows x 3d
 * (q | k | v), ctx: n_rows x d. p receives the softmax probabilities and
 * pm (may be NULL = no dropout) holds dropout scales, both in the packed
 * attention order (per sequence, per head, n x n row-major). With reuse_p
 * every (sequence, head) overwrites the same n x n block of p (inference). */
void SFX(iadsr__attention_fwd)(const iadsr__batch *b, int d, int n_heads,
                               const REAL *qkv, REAL *p, const REAL *pm,
                               REAL *ctx, int reuse_p);
void SFX(iadsr__attention_bwd)(const iadsr__batch *b, int d, int n_heads,
                               const REAL *qkv, const REAL *p,
                               const REAL *pm, const REAL *dctx, REAL *dqkv);
