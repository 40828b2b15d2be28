/* libiadsr - IADSR Stage 2 on a batch of packed sequences (heads.c): the
 * noise scores (training and inference share them), and for training the
 * alignment and reconstruction losses with their backward pass into the
 * backbone's hidden states, the item table, the aligner and the decoder.
 * Built from the layers of layers.h; see docs METHOD.md, "Stage 2".
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_HEADS_H
#define IADSR_HEADS_H

#include "denoise/layers.h"
#include "data/semantic.h"
#include "common/rng.h"
#include "denoise/denoise.h"

/* In-batch negatives of the per-position InfoNCE are the rows of one block
 * of at most this many consecutive rows: its three n x n x d products per
 * block cost n d per row, so the bound keeps the alignment's cost per
 * position fixed whatever the batch size and sequence length. 256 rows
 * (1024 until 0.4.0: half of the joint epoch's extra time; 256 trains
 * backbones and gates level over 3 seeds, docs/RESULTS.md, "InfoNCE blocks of 256 rows"). */
#define IADSR__NCE_BLOCK 256

/* What Stage 2 computes with; weights are borrowed (x W orientation). */
typedef struct iadsr__heads {
    int d, D;
    const iadsr_semantic *sem; /* item rows */
    const float *w1, *w2;      /* D x d */
    const float *wd, *bd;      /* d x d, d */
    float tau_align, tau_gumbel, lambda_align, lambda_recon;
    uint32_t flags;            /* IADSR_DENOISE_F_COLLAB_ONLY honoured */
    /* 1: the losses exactly as METHOD.md's Stage 2 (reconstruction into h
     * and through the gate, every other row a negative, the per-user
     * InfoNCE a mean over users); 0: the stable form (decoder-only
     * reconstruction, same-item rows no negatives, every auxiliary term
     * weighted per position) */
    int paper;
    /* The item table rows 1..n_items (n_items x d, row j is item j + 1),
     * for the detector's context likelihood (feature 7); NULL leaves that
     * feature 0. The workspace must have iadsr__heads_ws_ctx's scratch. */
    const float *e1;
    int n_items;
    /* NULL, or per row of the batch the log-sum-exp of h_r's logits over
     * the catalogue (the training's cross-entropy has them): the
     * likelihood features then need no logits of their own */
    const float *lse;
} iadsr__heads;

/* Rows of the n x n logits the InfoNCE takes at a time (its scratch p). */
#define IADSR__NCE_CHUNK 64

/* Scratch of iadsr__infonce_gemm for n rows: an, bn, bt, dan, dbn n x d
 * floats each, p min(n, IADSR__NCE_CHUNK) x n. */
typedef struct iadsr__nce_scratch {
    float *an, *bn, *bt, *p, *dan, *dbn;
} iadsr__nce_scratch;

/* Scratch for batches of up to max_rows rows and max_seq sequences. */
typedef struct iadsr__heads_ws {
    int max_rows, max_seq;
    float *xs;     /* PROJ_CHUNK x D gathered semantic rows */
    float *s;      /* rows x d: W1 S[x_t] */
    float *lsem;   /* seqs x D: long-term semantic input */
    float *l;      /* seqs x d: W2 lsem */
    float *hbar;   /* seqs x d */
    int32_t *arg;  /* seqs x d */
    float *lexp, *hexp; /* rows x d: l and hbar per row */
    float *c1, *c2, *c3, *score, *u, *y, *m; /* rows */
    float *mh, *res, *tmp; /* rows x d (recon) */
    float *ds, *dl, *dhbar, *dlexp, *dhexp; /* gradients */
    float *dc, *dscore, *dm;
    iadsr__nce_scratch nce; /* for blocks of up to IADSR__NCE_BLOCK rows */
    /* the detector (IADSR_DENOISE_F_DETECT) */
    float *u2;     /* rows x d: W2 S[x_t] */
    float *hbar2;  /* seqs x d: runner-up of the max-pool */
    float *hprev;  /* rows x d: h_{t-1}, zero on a sequence's first row */
    float *c4, *c5, *c6, *c7, *c8, *c9; /* rows */
    float *tsum;   /* D: a sequence's sum of normalised semantic rows */
    int32_t *nxt;  /* rows: the next item of the row's sequence, 0 = none */
    float *zl;     /* zl_rows x n_items logits (iadsr__heads_ws_ctx) */
    int zl_rows, zl_items;
    float *feat;   /* rows x IADSR__DET_FEATURES: centred features */
    float *dlogit, *du; /* rows; rows x d */
} iadsr__heads_ws;

int iadsr__heads_ws_alloc(iadsr__heads_ws *w, int max_rows, int max_seq,
                           int d, int D, int training);
void iadsr__heads_ws_free(iadsr__heads_ws *w);
/* Adds the scratch of the detector's context likelihood over @p n_items
 * items (a few rows of full-catalogue logits, at most about 4 MiB unless
 * one row needs more) to a workspace of iadsr__heads_ws_alloc. */
int iadsr__heads_ws_ctx(iadsr__heads_ws *w, int n_items);

/* Noise scores of every row of @p b (h: n_rows x d hidden states). @p uvec
 * is NULL or n_seq pointers: a non-NULL entry is that sequence's
 * long-term semantic D-vector, NULL means the mean of its item rows.
 * Leaves s, l, hbar, c1..c3 in @p w. Never fails. */
void iadsr__heads_scores(const iadsr__heads *st, iadsr__heads_ws *w,
                          const float *h, const iadsr__batch *b,
                          const float *const *uvec, float *score);

/* The detector's logits (IADSR_DENOISE_F_DETECT; keep t iff logit >
 * theta) of every row of @p b from its features, all cosines: (1) the
 * long-term semantic interest without item t against h_t, (2) the max-pool
 * of the other rows' h against s_t, (3) h_t against s_t, (4) the context
 * h_{t-1} against s_t, (5) the semantic long-term view without t against
 * s_t, (6) the other rows' max-pool against h_t, and (7) the context
 * likelihood: log p(x_t | h_{t-1}), the backbone's full-catalogue softmax
 * at the position before t (st->e1; 0 without it), and (8) what x_t adds
 * to predicting the next item: log p(x_{t+1} | h_t) - log p(x_{t+1} |
 * h_{t-1}) (st->e1), and with IADSR_DENOISE_F_TEXT (9) the text
 * consistency: the cosine of x_t's semantic row with the mean of the other
 * rows of its sequence (every row normalised; a user vector as given), in
 * the semantic space itself (0 without the flag); each centred on its
 * sequence's mean (so one theta means the same for every history length;
 * (4) and (7) have no value on a sequence's first row, (8) none on its
 * first or last), then logit =
 * det[IADSR__DET_BIAS] + sum_k det[iadsr__det_w(k)] f_k. With
 * IADSR_DENOISE_F_COLLAB_ONLY (1) compares the other rows' max-pool with
 * h_t, (4) h_{t-1} with h_t, (7) and (8) are as above, and the others
 * are 0.
 * A user vector in @p uvec is the long-term view as given (it cannot leave
 * t out). Never fails. */
void iadsr__heads_detect(const iadsr__heads *st, iadsr__heads_ws *w,
                         const float *h, const iadsr__batch *b,
                         const float *const *uvec, const float *det,
                         float *logit);

/* Training step of the detector on one share: logits as above, the
 * logistic loss against @p noise (per row: 1 = inserted, 0 = real; the
 * detector's target is keep = 1 - noise), weighted 1 / @p batch_rows, and
 * its gradient into @p ddet (IADSR__GATE_DET floats) and, unless
 * collaborative-only, @p dw1 and @p dw2 (D x d; either may be NULL). No
 * gradient reaches h or the item table. Returns the weighted loss. */
double iadsr__heads_detect_train(const iadsr__heads *st, iadsr__heads_ws *w,
                                 const float *h, const iadsr__batch *b,
                                 const float *const *uvec, const float *det,
                                 const float *noise, int batch_rows,
                                 float *ddet, float *dw1, float *dw2);

/* The detector's logistic loss of @p n_rows logits against @p noise (per
 * row: 1 = inserted; the target is keep = 1 - noise), weighted
 * 1 / @p batch_rows; sets @p dlogit to its gradient. Returns the loss. */
double iadsr__heads_detect_loss(const float *logit, const float *noise,
                                int n_rows, int batch_rows, float *dlogit);

/* The backward half of iadsr__heads_detect_train: adds to @p ddet, @p dw1
 * and @p dw2 (either may be NULL) the gradients of the loss whose
 * dL/dlogit the caller has put in w->dlogit, for the logits that
 * iadsr__heads_detect last computed in @p w from the same st, h, b, uvec
 * and det (the workspace must not have been used in between). */
void iadsr__heads_detect_backward(const iadsr__heads *st, iadsr__heads_ws *w,
                                  const float *h, const iadsr__batch *b,
                                  const float *const *uvec, const float *det,
                                  float *ddet, float *dw1, float *dw2);

/* Gradient targets of iadsr__heads_train: dh and dwd are required, the
 * others may be NULL (skipped). */
typedef struct iadsr__heads_grads {
    float *dh;   /* n_rows x d, added to */
    float *demb; /* item table rows (id-indexed, row 0 = padding) */
    float *dw1, *dw2, *dwd, *dbd;
} iadsr__heads_grads;

/* Training step on one share: scores, Gumbel gate (uniforms from @p rng),
 * losses and their backward pass. The losses are weighted so that summing
 * over the shares of a mini-batch gives means over the mini-batch:
 * per-position terms by 1 / @p batch_rows; the per-user InfoNCE by
 * 1 / @p batch_seqs with st->paper (the METHOD.md mean over users), else by
 * 1 / @p batch_rows (each user's pair weighs as one position); the
 * reconstruction per user by 1 / @p batch_seqs (and per element unless
 * st->paper).
 * @p emb: the item table (id-indexed). @p mask_out: NULL or n_rows floats
 * receiving the gate's hard decisions. Returns the weighted loss
 * lambda_align L_align + lambda_recon L_recon of the share. */
double iadsr__heads_train(const iadsr__heads *st, iadsr__heads_ws *w,
                           const float *h, const iadsr__batch *b,
                           const float *const *uvec, const float *emb,
                           iadsr__rng *rng, int batch_rows, int batch_seqs,
                           const iadsr__heads_grads *g, float *mask_out);

/* InfoNCE of iadsr__infonce_fwd_f32 through GEMMs, forward and backward in
 * one pass (the loop versions are the reference of the tests): a, b n x d;
 * keys NULL or n ids (same-id keys are not negatives). Adds dloss times
 * the gradients to da and db (either may be NULL) and returns the loss. */
float iadsr__infonce_gemm(const float *a, const float *b, int n, int d,
                          float tau, const int32_t *keys, float dloss,
                          const iadsr__nce_scratch *s, float *da, float *db);

#endif /* IADSR_STAGE2_H */
