/* libiadsr - IADSR Stage 2 handles: aligner, gate and denoiser
 * (aligner.c, gate.c, denoiser.c). See docs METHOD.md, "Stage 2".
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_DENOISE_H
#define IADSR_DENOISE_H

#include "iadsr.h"
#include "common/rng.h"
#include "common/handle.h"


/* What a trained aligner or gate was trained with (issue 17, "mismatched
 * parts refused"): the backbone kind and item count of the model it was
 * trained beside, and the fingerprint of the semantic rows of those items
 * (iadsr__semantic_fingerprint). known = 0 for parts made with
 * iadsr_aligner_create / iadsr_gate_create or read from a file without the
 * record: nothing is checked for them. */
typedef struct iadsr__provenance {
    int known;
    int32_t backbone; /* IADSR_BACKBONE_* (never 0 when known) */
    int32_t n_items;
    uint64_t sem_fp;
} iadsr__provenance;

/* Projections in the x W orientation of iadsr__linear_fwd: s = x W1 with x
 * a D-row and W1 D x d (row-major), so the per-position projection of a
 * packed batch is one GEMM. Immutable once published. */
struct iadsr_aligner {
    uint32_t magic;
    int refcount; /* atomic */
    int32_t dim;     /* d */
    int32_t sem_dim; /* D */
    float tau_align;
    iadsr__provenance prov;
    float *w1; /* D x d, inside w */
    float *w2; /* D x d, inside w */
    float *w;  /* one 64-byte aligned block of 2 D d floats */
};

/* Weights of the trained detector (IADSR_DENOISE_F_DETECT): one per
 * centred feature (IADSR__DET_FEATURES of them: six cosines and two
 * likelihoods of the backbone, then the text consistency of
 * IADSR_DENOISE_F_TEXT; heads.h) and the bias, at the indices
 * iadsr__det_w(k) and IADSR__DET_BIAS; the rest is zero (room for later
 * features). The ninth feature came after the bias had its place, so its
 * weight sits after it: files written before it keep their meaning (their
 * weight there is 0). */
#define IADSR__DET_FEATURES 9
#define IADSR__DET_BIAS 8
#define IADSR__GATE_DET 16
_Static_assert(IADSR__DET_FEATURES + 1 <= IADSR__GATE_DET,
               "the detector's weights and bias fit the gate's block");
static inline int iadsr__det_w(int k)
{
    return k < IADSR__DET_BIAS ? k : k + 1;
}
/* Probability with which the detector's training inserts an item before
 * each real input; inserted rows are then IADSR__DET_TRAIN_RATE / (1 +
 * IADSR__DET_TRAIN_RATE) of all rows, the prior the detector's logits are
 * calibrated to (iadsr_denoiser_propose_theta). */
#define IADSR__DET_TRAIN_RATE 0.15

/* IADSR_DENOISE_F_HOLDOUT: one user in IADSR__HOLDOUT_MOD (by a hash of
 * the sequence's items) is kept out of joint training, when at least
 * IADSR__HOLDOUT_MIN_USERS users are trainable; propose_theta reads the
 * noise rate off them when they take at least IADSR__HOLDOUT_MIN_INSERTS
 * inserted scores, in as many passes of insertions as that needs (at most
 * IADSR__MPE_MAX_COPIES). */
#define IADSR__HOLDOUT_MOD 16
#define IADSR__HOLDOUT_MIN_USERS 64
#define IADSR__HOLDOUT_MIN_INSERTS 400

/* 1 if the user whose whole sequence is items[0..n) is held out. */
int iadsr__holdout_user(const int32_t *items, int64_t n);

/* propose_theta's inserted scores: the detector's scores of items inserted
 * into @p d as its training inserts them, sorted ascending into *fi (owned
 * by the caller, iadsr__free), *nins of them. Pass c draws from a seed of
 * its own (the first pass's does not depend on @p min_ins); passes repeat
 * until at least @p min_ins scores are collected, a pass inserts nothing,
 * or IADSR__MPE_MAX_COPIES passes ran. */
#define IADSR__MPE_MAX_COPIES 16
int iadsr__det_inserted_scores(const iadsr_denoiser *dn,
                               const iadsr_dataset *d, int32_t split,
                               const iadsr_semantic *user_sem,
                               int32_t n_threads, int64_t min_ins, float **fi,
                               int64_t *nins);

/* Decoder r = x Wd + bd (Wd d x d, x W orientation), the detector's
 * weights, and the settings the gate was trained with / applies at
 * inference (validated). */
struct iadsr_gate {
    uint32_t magic;
    int refcount; /* atomic */
    int32_t dim;
    iadsr_denoise_params p;
    iadsr__provenance prov;
    float *wd;  /* d x d, inside w */
    float *bd;  /* d, inside w */
    float *det; /* IADSR__GATE_DET, inside w */
    float *w;   /* one 64-byte aligned block of iadsr__gate_floats(d) */
};

/* An item as the detector's training inserts it: uniform over 1..n_items or
 * in proportion to the counts whose running sums are cum[0..n_items] (cum[0]
 * = 0), with equal chance, so that flagging rare items alone cannot win.
 * The training and iadsr_denoiser_propose_theta draw alike. */
int32_t iadsr__det_draw_item(iadsr__rng *rng, const int64_t *cum,
                             int32_t n_items);

/* Floats of a gate's weight block: Wd, bd, the detector. */
static inline size_t iadsr__gate_floats(int32_t dim)
{
    return (size_t)dim * (size_t)dim + (size_t)dim + IADSR__GATE_DET;
}

struct iadsr_denoiser {
    uint32_t magic;
    iadsr_model *m;    /* references held */
    iadsr_aligner *a;
    iadsr_gate *g;
    iadsr_semantic *s;
};

/* The arguments every Stage 2 handle is created from: the params @p p
 * validated into @p dp, and the backbone's d (@p dim: 1..4096, the model's
 * bound). @p w names the caller in messages. */
int iadsr__denoise_create_check(const char *w, const iadsr_denoise_params *p,
                                iadsr_denoise_params *dp, int32_t dim);
/* Allocate with zeroed weights; @p dim and @p sem_dim are not checked
 * beyond overflow. */
int iadsr__aligner_alloc(iadsr_aligner **out, int32_t dim, int32_t sem_dim,
                         float tau_align);
/* @p p must already be validated (iadsr__denoise_params_get). */
int iadsr__gate_alloc(iadsr_gate **out, int32_t dim,
                      const iadsr_denoise_params *p);
/* Lifecycle (IADSR__HANDLE_LIFECYCLE): magic check, one more reference
 * (NULL for NULL), release of one (NULL is a no-op). */
int iadsr__aligner_ok(const iadsr_aligner *a);
iadsr_aligner *iadsr__aligner_ref(const iadsr_aligner *a);
void iadsr__aligner_unref(iadsr_aligner *a);
int iadsr__gate_ok(const iadsr_gate *g);
iadsr_gate *iadsr__gate_ref(const iadsr_gate *g);
void iadsr__gate_unref(iadsr_gate *g);
/* Non-zero when every weight is finite. */
int iadsr__aligner_finite(const iadsr_aligner *a);
int iadsr__gate_finite(const iadsr_gate *g);

/* Xavier-uniform fill of an rows x cols matrix: U(-a, a), a = sqrt(6 /
 * (rows + cols)). */
void iadsr__xavier_fill(float *w, int64_t rows, int64_t cols,
                        iadsr__rng *rng);

/* The inference rule on n scores (n >= 1): keep[t] = score > theta, at most
 * floor(max_drop * n) dropped (lowest scores first, ties drop the older
 * position), the last one kept when protect_last. @p order is n ints of
 * scratch. Returns the number kept. */
int32_t iadsr__gate_decide(const iadsr_denoise_params *p, const float *score,
                           int32_t n, uint8_t *keep, int32_t *order);

#endif /* IADSR_DENOISE_H */
