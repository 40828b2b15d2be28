/* Trainer: mini-batch Adam on the full-softmax next-item cross-entropy at
 * every real position, with early stopping on validation NDCG@10.
 *
 * Determinism: one RNG (seeded from the params) drives shuffling and hands
 * each worker its dropout stream in a fixed order, and every reduction runs
 * in a fixed order; the result is bitwise reproducible for the same seed,
 * n_threads, build and CPU instruction set (and, where the BLAS is used, the
 * same BLAS library and BLAS thread count). Different n_threads give
 * different (equally valid) dropout draws.
 * SPDX-License-Identifier: MIT
 */
#include "denoise/denoise.h"
#include "score/eval.h"
#include "common/params.h"
#include "backbone/encoder.h"
#include "denoise/heads.h"
#include "math/xent.h"
#include "data/dataset.h"
#include "common/error.h"
#include "math/kernels.h"
#include "math/adam.h"
#include "common/clock.h"
#include "common/fork_join.h"
#include "common/handle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CE_CHUNK 64 /* logit rows per chunk: the logits stay in L2/L3 */

/* Data-parallel training: each worker runs forward, loss and backward on a
 * contiguous share of the mini-batch's sequences with its own activations,
 * dropout stream and gradient buffer; the gradients are summed in worker
 * order. Results depend on the seed and the thread count only. */
#define IADSR__MAX_WORKERS 64

/* Distributed training (iadsr_train_params.allreduce): floats after the
 * gradient in worker 0's buffer, summed with it in one call: the step's
 * total loss, its auxiliary and detector parts, and spare room. */
#define DIST_TAIL 4

typedef struct worker {
    iadsr__encoder enc;    /* bound to the trainer's weights and g */
    float *g;              /* gradient buffer (layout of the weights) */
    float *dh;             /* max_rows x d */
    float *dh_aux;         /* joint: max_rows x d, the auxiliary part */
    float *lse;            /* detector: max_rows log-sum-exps of the CE */
    float *xscratch;       /* cross-entropy scratch */
    int32_t *row_off;      /* rebased row offsets of the share */
    int32_t *hist_first;   /* history penalty: first row of each row's sequence */
    iadsr__rng rng;
    iadsr__batch b;        /* the share of the current batch */
    const int32_t *tgt;
    /* joint training only */
    iadsr__heads_ws s2;
    const float **uvec;    /* max batch entries: user rows or NULL */
    const int64_t *uid;    /* dataset rows of the share's users */
    const int64_t *mpos;   /* per row: index of its input item in the data */
    const float *noise;    /* detector gate: per row, 1 = inserted */
    /* IADSR_DENOISE_F_CLEAN_SCORES: the detector's dropout-free pass */
    iadsr__heads_ws s3;    /* its features (s2 serves the training pass) */
    float *h1;             /* max_rows x d hidden states without dropout */
    float *z1;             /* max_rows detector logits from them */
    float *lse1;           /* max_rows log-sum-exps of their logits */
    float *mscale;         /* IADSR_DENOISE_F_INPUT_MASK: rows' input masks */
    double *dscale;        /* dL/dmask of every row (the backward pass) */
    double loss;           /* the share's total loss, summed over rows */
    double loss_aux;       /* of which the weighted alignment + recon */
    double loss_det;       /* of which the detector's */
    const struct iadsr_trainer *t;
} worker;

struct iadsr_trainer {
    uint32_t magic;
    iadsr_model *init;      /* reference: hyper-parameters and layout */
    iadsr_dataset *data;    /* reference */
    iadsr_train_params tp;
    iadsr__shape shape;
    size_t n_floats;
    float *w, *g, *m1, *m2, *best_w;
    const float *emb1;     /* item table rows 1..n_items inside w */
    size_t emb_off;        /* float offset of the item table */
    iadsr__rng rng;
    int n_workers;
    int n_workers_step; /* workers of the current step (reduce_and_adam) */
    worker wk[IADSR__MAX_WORKERS];
    int64_t step;
    int32_t epochs_done;
    int32_t best_epoch;
    double best_ndcg;
    int32_t since_best; /* validations without improvement */
    /* training sequences: users with at least one (input, target) pair */
    int64_t *users;
    int64_t n_users;
    int64_t n_positions; /* per epoch */
    /* the last epoch's loss terms per position (iadsr_progress_info) */
    double ep_aux, ep_det, last_aux, last_det;
    int max_rows;
    int max_len_rows; /* most rows one sequence contributes (<= max_len) */
    int32_t *b_items, *b_pos, *b_tgt, *b_off;
    float *et;
    int ldt, fast;
    int batch_rows; /* rows of the current mini-batch (loss scale) */
    int batch_seqs;
    int64_t *b_uid;  /* dataset rows of the batch's users */
    int64_t *b_mpos; /* data index of every batch row's input item */
    /* IADSR joint training (iadsr_trainer_create_joint), else joint = 0.
     * The aligner and decoder tensors are appended to the backbone's
     * layout, so Adam, early stopping and snapshots treat them alike. */
    int joint;
    iadsr_denoise_params dp;
    iadsr_semantic *sem, *usem; /* references */
    iadsr__layout lay;          /* backbone layout + align.* + gate.* */
    size_t off_w1, off_w2, off_wd, off_bd, off_det;
    /* the detector gate (IADSR_DENOISE_F_DETECT): items inserted on the fly */
    int detect;
    int clean_scores; /* IADSR_DENOISE_F_CLEAN_SCORES */
    int input_mask;   /* IADSR_DENOISE_F_INPUT_MASK */
    /* IADSR_DENOISE_F_BACKOFF: the loss weights are scaled by 10^-aux_stage */
    int backoff, aux_stage;
    float aux_scale;
    int64_t *pop_cum;  /* n_items + 1 cumulative training counts */
    float *b_noise;    /* per batch row: 1 = inserted */
    size_t model_floats;        /* the backbone's part of w */
    float *mask_prev, *mask_cur; /* carry-over: per data position, or NULL */
    float *b_scale;              /* carry-over: batch rows' input scales */
    /* iadsr_model_history_repeats of the snapshots: whether a training
     * part of t->users repeats an item (found by the first snapshot) */
    int repeats_known, repeats;
};

static int trainer_ok(const iadsr_trainer *t)
{
    return IADSR__HANDLE_IS(t, IADSR__MAGIC_TRAINER);
}

/* Training part of user u: the whole sequence (SPLIT_NONE) or all but the
 * last two items (LEAVE_ONE_OUT). Returns its length. */
static int64_t train_len(const iadsr_trainer *t, int64_t u)
{
    int64_t n = t->data->offsets[u + 1] - t->data->offsets[u];
    if (t->tp.split == IADSR_SPLIT_LEAVE_ONE_OUT)
        n -= 2;
    return n < 0 ? 0 : n;
}

static void free_all(iadsr_trainer *t)
{
    IADSR__ALIGNED_FREE_ALL(t->w, t->m1, t->m2, t->best_w, t->et);
    for (int i = 0; i < t->n_workers; i++) {
        worker *k = &t->wk[i];
        iadsr__encoder_destroy(&k->enc);
        iadsr__heads_ws_free(&k->s2);
        iadsr__heads_ws_free(&k->s3);
        IADSR__ALIGNED_FREE_ALL(k->g, k->dh, k->dh_aux, k->xscratch, k->lse,
                                k->h1, k->z1, k->lse1, k->mscale);
        iadsr__free(k->dscale);
        IADSR__FREE_ALL(k->row_off, k->hist_first, k->uvec);
    }
    iadsr__semantic_unref(t->sem);
    iadsr__semantic_unref(t->usem);
    IADSR__ALIGNED_FREE_ALL(t->mask_prev, t->mask_cur);
    IADSR__FREE_ALL(t->b_uid, t->b_mpos, t->b_scale, t->users, t->b_items,
                    t->b_pos, t->b_tgt, t->b_off, t->pop_cum, t->b_noise);
    iadsr_model_free(t->init);
    if (t->data)
        iadsr__dataset_unref(t->data);
}

static int init_heads_weights(iadsr_trainer *t);

/* What a trainer is made from; sem, usem and dp are NULL for a backbone
 * alone (dp then validated by the joint entry point). */
typedef struct trainer_inputs {
    const iadsr_model *init;
    const iadsr_dataset *train;
    const iadsr_train_params *p;
    const iadsr_semantic *sem, *usem;
    const iadsr_denoise_params *dp;
} trainer_inputs;

static int trainer_new(iadsr_trainer **out, const trainer_inputs *in)
{
    const iadsr_model *init = in->init;
    const iadsr_dataset *train = in->train;
    const iadsr_semantic *sem = in->sem, *usem = in->usem;
    static const char w[] = "trainer_create";
    IADSR__OUT_CLEAR(out, w);
    TRY(iadsr__check_handle(iadsr__model_ok(init), w, "model"));
    TRY(iadsr__check_handle(iadsr__dataset_ok(train), w, "dataset"));
    iadsr_train_params tp;
    TRY(iadsr__train_params_get(&tp, in->p));
    TRY(iadsr__dataset_fits(train, init->hp.n_items, w, "the model has"));
    if (sem && sem->n_items < init->hp.n_items)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "trainer_create_joint: the semantic matrix has %d "
                          "items but the model has %d",
                          (int)sem->n_items, (int)init->hp.n_items);
    if (usem && (int64_t)usem->n_items < train->n_users)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "trainer_create_joint: user_sem has %d rows but the "
                          "dataset has %lld users",
                          (int)usem->n_items, (long long)train->n_users);
    if (usem && usem->dim != sem->dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "trainer_create_joint: user_sem has D = %d but the "
                          "item matrix has D = %d",
                          (int)usem->dim, (int)sem->dim);
    iadsr_trainer *t = iadsr__calloc(1, sizeof *t);
    if (!t)
        return iadsr__err(IADSR_ERR_NOMEM, "trainer_create: out of memory");
    t->init = iadsr__model_ref(init);
    t->data = iadsr__dataset_ref(train);
    t->tp = tp;
    iadsr__shape_from(&init->hp, &t->shape);
    t->lay = init->layout;
    t->model_floats = init->layout.n_floats;
    int rc;
    if (sem) {
        int d = t->shape.d, D = sem->dim;
        t->joint = 1;
        t->dp = *in->dp;
        t->sem = iadsr__semantic_ref(sem);
        t->usem = iadsr__semantic_ref(usem);
        if ((rc = iadsr__layout_add(&t->lay, "align.w1", D, d)) ||
            (rc = iadsr__layout_add(&t->lay, "align.w2", D, d)) ||
            (rc = iadsr__layout_add(&t->lay, "gate.wd", d, d)) ||
            (rc = iadsr__layout_add(&t->lay, "gate.bd", 1, d)) ||
            (rc = iadsr__layout_add(&t->lay, "gate.det", 1, IADSR__GATE_DET))) {
            free_all(t);
            iadsr__free(t);
            return rc;
        }
        t->off_w1 = iadsr__layout_find(&t->lay, "align.w1")->offset;
        t->off_w2 = iadsr__layout_find(&t->lay, "align.w2")->offset;
        t->off_wd = iadsr__layout_find(&t->lay, "gate.wd")->offset;
        t->off_bd = iadsr__layout_find(&t->lay, "gate.bd")->offset;
        t->off_det = iadsr__layout_find(&t->lay, "gate.det")->offset;
        t->detect = (t->dp.flags & IADSR_DENOISE_F_DETECT) != 0;
        t->clean_scores =
            t->detect && (t->dp.flags & IADSR_DENOISE_F_CLEAN_SCORES);
        t->input_mask =
            t->detect && (t->dp.flags & IADSR_DENOISE_F_INPUT_MASK);
        t->backoff = (t->dp.flags & IADSR_DENOISE_F_BACKOFF) != 0;
    }
    t->aux_scale = 1.0f;
    t->n_floats = t->lay.n_floats;
    t->best_ndcg = -1.0;
    iadsr__rng_seed(&t->rng, tp.seed);

    /* Users with >= 2 training items give (input, target) pairs. */
    int L = t->shape.max_len;
    int64_t nu = train->n_users;
    t->users = iadsr__malloc((size_t)nu * sizeof(int64_t));
    if (!t->users)
        goto nomem;
    int64_t longest = 0;
    /* IADSR_DENOISE_F_HOLDOUT: some users stay out of training so that
     * propose_theta can see the detector's scores on unfitted data */
    int holdout = 0;
    if (t->detect && (t->dp.flags & IADSR_DENOISE_F_HOLDOUT)) {
        int64_t trainable = 0;
        for (int64_t u = 0; u < nu; u++)
            trainable += train_len(t, u) >= 2;
        holdout = trainable >= IADSR__HOLDOUT_MIN_USERS;
    }
    for (int64_t u = 0; u < nu; u++) {
        int64_t n = train_len(t, u);
        if (holdout && n >= 2 &&
            iadsr__holdout_user(train->items + train->offsets[u],
                                train->offsets[u + 1] - train->offsets[u]))
            continue;
        if (n >= 2) {
            t->users[t->n_users++] = u;
            int64_t rows = n - 1 < L ? n - 1 : L;
            t->n_positions += rows;
            if (rows > longest)
                longest = rows;
        }
    }
    int B = tp.batch_size;
    if ((int64_t)B > t->n_users && t->n_users > 0)
        B = (int)t->n_users;
    t->max_rows = (int)((int64_t)B * (longest > 0 ? longest : 1));
    t->max_len_rows = (int)longest;
    size_t nf = t->n_floats;
    t->w = iadsr__aligned_alloc(nf, sizeof(float));
    t->m1 = iadsr__aligned_alloc(nf, sizeof(float));
    t->m2 = iadsr__aligned_alloc(nf, sizeof(float));
    t->best_w = iadsr__aligned_alloc(nf, sizeof(float));
    t->ldt = iadsr__xent_ldt(t->shape.n_items);
    t->fast = iadsr__xent_fast_ok(t->shape.d);
    t->n_workers = tp.n_threads > IADSR__MAX_WORKERS ? IADSR__MAX_WORKERS
                                                     : tp.n_threads;
    if (t->n_workers > B)
        t->n_workers = B;
    for (int i = 0; i < t->n_workers; i++) {
        worker *k = &t->wk[i];
        k->t = t;
        /* worker 0's buffer receives the step's sum; distributed, the
         * loss sums ride along after the gradient (one collective call) */
        k->g = iadsr__aligned_alloc(nf + (i == 0 ? DIST_TAIL : 0),
                                    sizeof(float));
        /* activations are touched only up to the rows a share really has,
         * so sizing every worker for the whole batch costs address space,
         * not memory */
        k->dh = iadsr__aligned_alloc((size_t)t->max_rows * (size_t)t->shape.d,
                                     sizeof(float));
        int hist = tp.history_penalty > 0.0f;
        k->xscratch = iadsr__aligned_alloc(
            iadsr__xent_scratch_floats(CE_CHUNK, t->ldt, t->shape.d,
                                       t->shape.n_items,
                                       hist ? (int)longest : 0),
            sizeof(float));
        k->row_off = iadsr__malloc(((size_t)B + 1) * sizeof(int32_t));
        if (hist)
            k->hist_first = iadsr__malloc((size_t)t->max_rows * sizeof(int32_t));
        if (!k->g || !k->dh || !k->xscratch || !k->row_off ||
            (hist && !k->hist_first))
            goto nomem;
        if (t->joint) {
            k->uvec = iadsr__calloc((size_t)B, sizeof *k->uvec);
            k->dh_aux = iadsr__aligned_alloc(
                (size_t)t->max_rows * (size_t)t->shape.d, sizeof(float));
            if (!k->uvec || !k->dh_aux)
                goto nomem;
            rc = iadsr__heads_ws_alloc(&k->s2, t->max_rows, B, t->shape.d,
                                        t->sem->dim, 1);
            if (!rc && t->detect &&
                !(k->lse = iadsr__aligned_alloc((size_t)t->max_rows,
                                                sizeof(float))))
                rc = iadsr__err(IADSR_ERR_NOMEM, "trainer: out of memory");
            if (!rc && t->clean_scores) {
                size_t mr = (size_t)t->max_rows;
                rc = iadsr__heads_ws_alloc(&k->s3, t->max_rows, B,
                                            t->shape.d, t->sem->dim, 1);
                if (!rc)
                    rc = iadsr__heads_ws_ctx(&k->s3, t->shape.n_items);
                k->h1 = iadsr__aligned_alloc(mr * (size_t)t->shape.d,
                                             sizeof(float));
                k->z1 = iadsr__aligned_alloc(mr, sizeof(float));
                k->lse1 = iadsr__aligned_alloc(mr, sizeof(float));
                k->mscale = iadsr__aligned_alloc(mr, sizeof(float));
                k->dscale = iadsr__malloc(mr * sizeof(double));
                if (!rc && (!k->h1 || !k->z1 || !k->lse1 || !k->mscale ||
                            !k->dscale))
                    rc = iadsr__err(IADSR_ERR_NOMEM,
                                    "trainer: out of memory");
            }
            if (rc) {
                free_all(t);
                iadsr__free(t);
                return rc;
            }
        }
        rc = iadsr__encoder_create(&k->enc, &init->hp, &init->layout, t->w,
                                   k->g, t->max_rows, (int)longest, 1);
        if (rc) {
            free_all(t);
            iadsr__free(t);
            return rc;
        }
    }
    t->g = t->wk[0].g; /* the summed gradient lands in worker 0's buffer */
    if (tp.allreduce && t->joint &&
        (t->dp.flags & IADSR_DENOISE_F_CARRY_MASKS)) {
        /* each rank would see only its own rows' masks */
        free_all(t);
        iadsr__free(t);
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "trainer_create_joint: IADSR_DENOISE_F_CARRY_MASKS "
                          "is not supported in distributed training "
                          "(iadsr_train_params.allreduce is set)");
    }
    t->et = t->fast ? iadsr__aligned_alloc((size_t)t->shape.d * (size_t)t->ldt,
                                           sizeof(float))
                    : NULL;
    t->b_items = iadsr__malloc((size_t)t->max_rows * sizeof(int32_t));
    t->b_pos = iadsr__malloc((size_t)t->max_rows * sizeof(int32_t));
    t->b_tgt = iadsr__malloc((size_t)t->max_rows * sizeof(int32_t));
    t->b_off = iadsr__malloc(((size_t)B + 1) * sizeof(int32_t));
    t->b_uid = iadsr__malloc((size_t)B * sizeof(int64_t));
    t->b_mpos = iadsr__malloc((size_t)t->max_rows * sizeof(int64_t));
    if (!t->w || !t->m1 || !t->m2 || !t->best_w || (t->fast && !t->et) ||
        !t->b_items || !t->b_pos || !t->b_tgt || !t->b_off || !t->b_uid ||
        !t->b_mpos)
        goto nomem;
    if (t->joint && (t->dp.flags & IADSR_DENOISE_F_CARRY_MASKS)) {
        size_t ni = (size_t)train->offsets[train->n_users];
        t->mask_prev = iadsr__aligned_alloc(ni, sizeof(float));
        t->mask_cur = iadsr__aligned_alloc(ni, sizeof(float));
        t->b_scale = iadsr__malloc((size_t)t->max_rows * sizeof(float));
        if (!t->mask_prev || !t->mask_cur || !t->b_scale)
            goto nomem;
        for (size_t i = 0; i < ni; i++)
            t->mask_prev[i] = t->mask_cur[i] = 1.0f;
    }
    if (t->detect) {
        /* popularity of the items in the training parts, for inserting
         * items in proportion to it */
        int32_t ni = t->shape.n_items;
        t->pop_cum = iadsr__calloc((size_t)ni + 1, sizeof(int64_t));
        t->b_noise = iadsr__malloc((size_t)t->max_rows * sizeof(float));
        if (!t->pop_cum || !t->b_noise)
            goto nomem;
        /* t->users is in file order; a trainable user missing from it
         * is held out, and counts as if it were not there */
        for (int64_t u = 0, k = 0; u < nu; u++) {
            const int32_t *s = train->items + train->offsets[u];
            int64_t n = train_len(t, u);
            if (n >= 2) {
                if (k < t->n_users && t->users[k] == u)
                    k++;
                else
                    continue;
            }
            for (int64_t i = 0; i < n; i++)
                t->pop_cum[s[i]]++;
        }
        for (int32_t i = 1; i <= ni; i++)
            t->pop_cum[i] += t->pop_cum[i - 1];
    }
    memset(t->w, 0, nf * sizeof(float));
    memcpy(t->w, init->w, t->model_floats * sizeof(float));
    if (t->joint && (rc = init_heads_weights(t)) != IADSR_OK) {
        free_all(t);
        iadsr__free(t);
        return rc;
    }
    memcpy(t->best_w, t->w, nf * sizeof(float));
    memset(t->m1, 0, nf * sizeof(float));
    memset(t->m2, 0, nf * sizeof(float));
    t->emb_off = iadsr__layout_find(&init->layout, "item_emb")->offset;
    t->emb1 = t->w + t->emb_off + t->shape.d;
    t->magic = IADSR__MAGIC_TRAINER;
    *out = t;
    return IADSR_OK;
nomem:
    free_all(t);
    iadsr__free(t);
    return iadsr__err(IADSR_ERR_NOMEM, "trainer_create: out of memory");
}

/* The aligner and decoder start as iadsr_aligner_create() and
 * iadsr_gate_create() would make them from the same params. */
int iadsr_trainer_create(iadsr_trainer **out, const iadsr_model *init,
                         const iadsr_dataset *train,
                         const iadsr_train_params *p)
{
    return trainer_new(out, &(trainer_inputs){init, train, p, NULL, NULL,
                                              NULL});
}

int iadsr_trainer_create_joint(iadsr_trainer **out, const iadsr_model *init,
                               const iadsr_dataset *train,
                               const iadsr_semantic *sem,
                               const iadsr_semantic *user_sem,
                               const iadsr_train_params *tp,
                               const iadsr_denoise_params *dp)
{
    static const char w[] = "trainer_create_joint";
    IADSR__OUT_CLEAR(out, w);
    TRY(iadsr__check_handle(iadsr__semantic_ok(sem), w, "semantic"));
    TRY(iadsr__check_handle(!user_sem || iadsr__semantic_ok(user_sem), w,
                            "user_sem"));
    iadsr_denoise_params d;
    TRY(iadsr__denoise_params_get(&d, dp));
    return trainer_new(out,
                       &(trainer_inputs){init, train, tp, sem, user_sem, &d});
}

static int init_heads_weights(iadsr_trainer *t)
{
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    int d = t->shape.d, D = t->sem->dim;
    int rc = iadsr_aligner_create(&a, d, D, &t->dp);
    if (!rc)
        rc = iadsr_gate_create(&g, d, &t->dp);
    if (!rc) {
        size_t nd = (size_t)D * (size_t)d;
        memcpy(t->w + t->off_w1, a->w1, nd * sizeof(float));
        memcpy(t->w + t->off_w2, a->w2, nd * sizeof(float));
        memcpy(t->w + t->off_wd, g->wd, (size_t)d * (size_t)d * sizeof(float));
        memcpy(t->w + t->off_bd, g->bd, (size_t)d * sizeof(float));
        /* the detector starts as the paper's rule on centred cosines:
         * every learned feature weight 1, no bias; the text consistency's
         * weight is not learned (0 until text_weight sets it) */
        float *det = t->w + t->off_det;
        for (int k = 0; k < IADSR__DET_FEATURES - 1; k++)
            det[iadsr__det_w(k)] = t->detect ? 1.0f : 0.0f;
    }
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    return rc;
}

void iadsr_trainer_free(iadsr_trainer *t)
{
    if (!trainer_ok(t))
        return;
    t->magic = IADSR__MAGIC_DEAD;
    free_all(t);
    iadsr__free(t);
}

int32_t iadsr_trainer_epochs_done(const iadsr_trainer *t)
{
    return trainer_ok(t) ? t->epochs_done : 0;
}

/* Build the batch of users perm[i0 .. i0+nb): inputs are the last L items of
 * train[0..n-2], targets the items that follow them. */
static iadsr__batch build_batch(iadsr_trainer *t, const int64_t *ids, int nb)
{
    int L = t->shape.max_len, r = 0;
    t->b_off[0] = 0;
    for (int k = 0; k < nb; k++) {
        int64_t u = ids[k];
        const int32_t *s = t->data->items + t->data->offsets[u];
        int64_t n = train_len(t, u);
        int64_t rows = n - 1 < L ? n - 1 : L;
        int64_t first = n - 1 - rows; /* index of the first input item */
        for (int64_t i = 0; i < rows; i++) {
            t->b_items[r] = s[first + i];
            t->b_tgt[r] = s[first + i + 1];
            t->b_pos[r] = (int32_t)(L - rows + i);
            t->b_mpos[r] = t->data->offsets[u] + first + i;
            r++;
        }
        t->b_uid[k] = u;
        t->b_off[k + 1] = r;
    }
    iadsr__batch b = {nb, r, t->b_items, t->b_pos, t->b_off, NULL, NULL};
    if (t->b_scale && t->epochs_done > 0) {
        /* from the second epoch: the previous epoch's gate decisions */
        for (int i = 0; i < r; i++)
            t->b_scale[i] = t->mask_prev[t->b_mpos[i]];
        b.scale = t->b_scale;
    }
    return b;
}

/* The batch of build_batch with items inserted before real inputs at
 * IADSR__DET_TRAIN_RATE (labelled in b_noise; their rows have no next-item
 * target, and the real row before one keeps its real target). Built from
 * the newest input backwards, so the window keeps the most recent rows and
 * never exceeds the longest real window. */
static iadsr__batch build_batch_detect(iadsr_trainer *t, const int64_t *ids,
                                       int nb)
{
    int L = t->shape.max_len, cap = t->max_len_rows, r = 0;
    t->b_off[0] = 0;
    for (int k = 0; k < nb; k++) {
        int64_t u = ids[k];
        const int32_t *s = t->data->items + t->data->offsets[u];
        int64_t n = train_len(t, u);
        int64_t rows = n - 1 < L ? n - 1 : L;
        int64_t first = n - 1 - rows;
        int r0 = r;
        for (int64_t i = rows - 1; i >= 0 && r - r0 < cap; i--) {
            t->b_items[r] = s[first + i];
            t->b_tgt[r] = s[first + i + 1];
            t->b_mpos[r] = t->data->offsets[u] + first + i;
            t->b_noise[r++] = 0.0f;
            if (r - r0 < cap &&
                iadsr__rng_float(&t->rng) < (float)IADSR__DET_TRAIN_RATE) {
                t->b_items[r] = iadsr__det_draw_item(&t->rng, t->pop_cum,
                                                     t->shape.n_items);
                t->b_tgt[r] = 0; /* never a next-item target */
                t->b_mpos[r] = -1;
                t->b_noise[r++] = 1.0f;
            }
        }
        /* oldest first */
        for (int a = r0, b = r - 1; a < b; a++, b--) {
            int32_t x = t->b_items[a];
            t->b_items[a] = t->b_items[b];
            t->b_items[b] = x;
            x = t->b_tgt[a];
            t->b_tgt[a] = t->b_tgt[b];
            t->b_tgt[b] = x;
            int64_t m = t->b_mpos[a];
            t->b_mpos[a] = t->b_mpos[b];
            t->b_mpos[b] = m;
            float f = t->b_noise[a];
            t->b_noise[a] = t->b_noise[b];
            t->b_noise[b] = f;
        }
        for (int j = r0; j < r; j++)
            t->b_pos[j] = L - (r - r0) + (j - r0);
        t->b_uid[k] = u;
        t->b_off[k + 1] = r;
    }
    iadsr__batch b = {nb, r, t->b_items, t->b_pos, t->b_off, NULL, NULL};
    return b;
}

/* The end of a step, split over the workers' threads by slices of the
 * parameters: sum the workers' gradients into t->g (in worker order, as
 * one thread would), check them, then Adam. Per element the arithmetic is
 * the serial loop's, so results do not depend on the split. */
typedef struct {
    iadsr_trainer *t;
    size_t j0, j1;
    int finite;
    iadsr__adam_coef adam;
} step_slice;

static void slice_reduce(void *arg)
{
    step_slice *sl = arg;
    iadsr_trainer *t = sl->t;
    size_t n = sl->j1 - sl->j0;
    float *g = t->g + sl->j0;
    for (int i = 1; i < t->n_workers_step; i++) {
        const float *gi = t->wk[i].g + sl->j0;
        for (size_t j = 0; j < n; j++)
            g[j] += gi[j];
    }
    /* distributed, only the sum over the ranks is checked (slice_finite) */
    if (!t->tp.allreduce)
        sl->finite = iadsr__all_finite(g, n);
}

static void slice_finite(void *arg)
{
    step_slice *sl = arg;
    sl->finite = iadsr__all_finite(sl->t->g + sl->j0, sl->j1 - sl->j0);
}

static void slice_adam(void *arg)
{
    const step_slice *sl = arg;
    iadsr_trainer *t = sl->t;
    size_t j = sl->j0;
    iadsr__adam(t->w + j, t->g + j, t->m1 + j, t->m2 + j, sl->j1 - j,
                &sl->adam);
}

/* How the end of a step went (reduce_and_adam). */
enum { STEP_OK = 0, STEP_NONFINITE_GRAD, STEP_NONFINITE_LOSS,
       STEP_COLLECTIVE };

/* Sum the W local workers' gradients (T threads, by slices), then, when
 * training is distributed, sum them over the ranks together with the loss
 * sums @p ls (total, auxiliary, detector; replaced by the global sums),
 * check them and apply Adam. Nothing is applied unless STEP_OK. */
static int reduce_and_adam(iadsr_trainer *t, int W, int T, double ls[3])
{
    step_slice sl[IADSR__MAX_WORKERS];
    size_t n = t->n_floats;
    if (W == 0) /* a rank with no share of a small batch adds zeros */
        memset(t->g, 0, n * sizeof(float));
    t->n_workers_step = W > 0 ? W : 1;
    for (int i = 0; i < T; i++) {
        /* slice edges on 16 floats: whole vectors per thread */
        size_t a = n * (size_t)i / (size_t)T / 16 * 16;
        size_t b = i == T - 1 ? n : n * (size_t)(i + 1) / (size_t)T / 16 * 16;
        sl[i] = (step_slice){.t = t, .j0 = a, .j1 = b, .finite = 1};
    }
    iadsr__fork_join(T, slice_reduce, sl, sizeof sl[0]);
    const iadsr_train_params *p = &t->tp;
    if (p->allreduce) {
        float *tail = t->g + n;
        for (int i = 0; i < DIST_TAIL; i++)
            tail[i] = i < 3 ? (float)ls[i] : 0.0f;
        if (p->allreduce(t->g, n + DIST_TAIL, IADSR_TYPE_F32,
                         p->allreduce_user) != 0)
            return STEP_COLLECTIVE;
        for (int i = 0; i < 3; i++)
            ls[i] = (double)tail[i];
        if (!isfinite(ls[0]))
            return STEP_NONFINITE_LOSS;
        iadsr__fork_join(T, slice_finite, sl, sizeof sl[0]);
    }
    for (int i = 0; i < T; i++)
        if (!sl[i].finite)
            return STEP_NONFINITE_GRAD;
    t->step++;
    float b1 = p->adam_beta1, b2 = p->adam_beta2;
    float c1 = (float)(1.0 - pow((double)b1, (double)t->step));
    float c2 = (float)(1.0 - pow((double)b2, (double)t->step));
    iadsr__adam_coef coef = {b1, b2, p->learning_rate / c1, 1.0f / sqrtf(c2),
                             p->adam_eps, p->weight_decay};
    for (int i = 0; i < T; i++)
        sl[i].adam = coef;
    iadsr__fork_join(T, slice_adam, sl, sizeof sl[0]);
    return STEP_OK;
}

/* Add the auxiliary losses' gradient on the hidden states to the next-item
 * one, its norm capped at IADSR__AUX_MAX_RATIO times the next-item
 * gradient's (per share; the paper's losses go in uncapped). The auxiliary
 * terms shape the representation but must never outweigh the task,
 * whatever the data's shape, the backbone or the loss weights: uncapped,
 * GRU4Rec and Caser collapse at the default weights on long sequences
 * (docs/RESULTS-HISTORY.md, "Joint training on data of another shape"). */
#define IADSR__AUX_MAX_RATIO 3.0
/* IADSR_DENOISE_F_BACKOFF: the auxiliary gradient into the backbone goes
 * 1 -> 0.1 -> 0.01 */
#define IADSR__BACKOFF_STAGES 2
static void aux_into_backbone(const iadsr_trainer *t, float *dh,
                              const float *aux, size_t n)
{
    double nt = 0, na = 0;
    for (size_t i = 0; i < n; i++) {
        nt += (double)dh[i] * (double)dh[i];
        na += (double)aux[i] * (double)aux[i];
    }
    const double cap = IADSR__AUX_MAX_RATIO;
    float k = 1.0f;
    if (!(t->dp.flags & IADSR_DENOISE_F_PAPER) && na > cap * cap * nt)
        k = (float)(cap * sqrt(nt / na));
    /* the back-off acts here only: the aligner keeps learning at full
     * weight and follows the backbone, so the detector's features stay
     * aligned (scaling the weights themselves cost the gate 0.02 of F1 on
     * planted noise; docs/RESULTS.md) */
    k *= t->aux_scale;
    for (size_t i = 0; i < n; i++)
        dh[i] += k * aux[i];
}

/* The cross-entropy over the catalogue of a step's rows with hidden states
 * @p h (no gradient outputs: the caller adds those it wants). */
static iadsr__xent_args step_xent(const worker *k, const float *h,
                                  float scale)
{
    const iadsr_trainer *t = k->t;
    iadsr__xent_args xa = {.h = h,
                           .n_rows = k->b.n_rows,
                           .d = t->shape.d,
                           .targets = k->tgt,
                           .e1 = t->emb1,
                           .et = t->et,
                           .n_items = t->shape.n_items,
                           .ldt = t->ldt,
                           .chunk = CE_CHUNK,
                           .fast = t->fast,
                           .scale = scale};
    return xa;
}

/* The Stage 2 settings of a step (weights borrowed from the trainer). */
static iadsr__heads step_heads(const worker *k)
{
    const iadsr_trainer *t = k->t;
    iadsr__heads st = {.d = t->shape.d,
                       .D = t->sem->dim,
                       .sem = t->sem,
                       .w1 = t->w + t->off_w1,
                       .w2 = t->w + t->off_w2,
                       .wd = t->w + t->off_wd,
                       .bd = t->w + t->off_bd,
                       .tau_align = t->dp.tau_align,
                       .tau_gumbel = t->dp.tau_gumbel,
                       .lambda_align = t->dp.lambda_align,
                       /* the detector has no decoder to train */
                       .lambda_recon = t->detect ? 0.0f : t->dp.lambda_recon,
                       /* the text consistency is not learned (text_weight) */
                       .flags = t->dp.flags & ~IADSR_DENOISE_F_TEXT,
                       .paper = (t->dp.flags & IADSR_DENOISE_F_PAPER) != 0,
                       .e1 = t->emb1,
                       .n_items = t->shape.n_items,
                       .lse = k->lse};
    return st;
}

static void share_user_vectors(worker *k)
{
    const iadsr_trainer *t = k->t;
    for (int q = 0; q < k->b.n_seq; q++)
        k->uvec[q] = t->usem ? iadsr__semantic_row(t->usem,
                                                   (int32_t)k->uid[q] + 1)
                             : NULL;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* IADSR_DENOISE_F_CLEAN_SCORES: the detector scores the share from the
 * backbone without dropout, the function inference computes (its own
 * full-catalogue likelihoods, *st1 without the training pass's
 * log-sum-exps); with IADSR_DENOISE_F_INPUT_MASK its decisions become the
 * training pass's input scales, whose gradient the backward pass returns. */
static void detector_pass(worker *k, iadsr__heads *st1)
{
    const iadsr_trainer *t = k->t;
    size_t nrd = (size_t)k->b.n_rows * (size_t)t->shape.d;
    const float *h0 = k->enc.ops->forward(&k->enc, &k->b, NULL);
    memcpy(k->h1, h0, nrd * sizeof(float));
    share_user_vectors(k);
    /* the likelihood features need each row's log-sum-exp over the
     * catalogue: the cross-entropy's vectorised forward gives them (no
     * gradient; the training pass's scratch is free until its own) */
    iadsr__xent_args xa = step_xent(k, k->h1, 1.0f);
    xa.lse = k->lse1;
    (void)iadsr__xent(&xa, k->xscratch, 1);
    *st1 = step_heads(k);
    st1->lse = k->lse1;
    iadsr__heads_detect(st1, &k->s3, k->h1, &k->b, k->uvec,
                        t->w + t->off_det, k->z1);
    if (t->input_mask) {
        /* keep iff logit > 0, and (like max_drop at inference) drop at most
         * as many rows as the share has inserted ones, the lowest first: an
         * uncalibrated detector early in training would otherwise mask
         * half the inputs (planted-noise test: F1 0.67 against 0.84) */
        int R = k->b.n_rows, cap = 0;
        for (int r = 0; r < R; r++)
            cap += k->noise[r] > 0.5f;
        float thr = -HUGE_VALF;
        if (cap > 0) {
            memcpy(k->mscale, k->z1, (size_t)R * sizeof(float));
            qsort(k->mscale, (size_t)R, sizeof(float), cmp_float);
            thr = k->mscale[cap - 1];
        }
        for (int r = 0; r < R; r++)
            k->mscale[r] = k->z1[r] > 0.0f || k->z1[r] > thr ? 1.0f : 0.0f;
        k->b.scale = k->mscale;
        k->b.dscale = k->dscale;
    }
}

/* The keep-rate prior of IADSR_DENOISE_F_INPUT_MASK: the mean keep
 * probability of the share's rows is held at the share of its rows that
 * are real, (R / batch_rows) (pbar - rho)^2; adds its gradient to
 * s3.dlogit and returns it. */
static double keep_rate_prior(worker *k, int batch_rows)
{
    int R = k->b.n_rows;
    double pbar = 0, rho = 0;
    for (int r = 0; r < R; r++) {
        pbar += 1.0 / (1.0 + exp(-(double)k->z1[r]));
        rho += 1.0 - (double)k->noise[r];
    }
    pbar /= R;
    rho /= R;
    double gap = pbar - rho;
    for (int r = 0; r < R; r++) {
        double p = 1.0 / (1.0 + exp(-(double)k->z1[r]));
        k->s3.dlogit[r] += (float)(2.0 * gap * p * (1.0 - p) / batch_rows);
    }
    return (double)R / (double)batch_rows * gap * gap;
}

static void worker_run(void *arg)
{
    worker *k = arg;
    const iadsr_trainer *t = k->t;
    int d = t->shape.d;
    memset(k->g, 0, t->n_floats * sizeof(float));
    k->loss = 0.0;
    k->loss_aux = 0.0;
    k->loss_det = 0.0;
    if (k->b.n_rows == 0)
        return;
    k->b.dscale = NULL;
    iadsr__heads st1;
    if (t->clean_scores)
        detector_pass(k, &st1);
    const float *h = k->enc.ops->forward(&k->enc, &k->b, &k->rng);
    memset(k->dh, 0, (size_t)k->b.n_rows * (size_t)d * sizeof(float));
    iadsr__xent_args xa = step_xent(k, h, 1.0f / (float)t->batch_rows);
    xa.dh = k->dh;
    xa.de1 = k->g + t->emb_off + d;
    xa.smooth = t->tp.label_smoothing;
    xa.lse = k->lse;
    if (k->hist_first) {
        for (int q = 0; q < k->b.n_seq; q++)
            for (int r = k->b.row_off[q]; r < k->b.row_off[q + 1]; r++)
                k->hist_first[r] = k->b.row_off[q];
        xa.hist_weight = t->tp.history_penalty;
        xa.hist_items = k->b.items;
        xa.hist_first = k->hist_first;
        xa.hist_cap = t->max_len_rows;
    }
    k->loss = iadsr__xent(&xa, k->xscratch, 1);
    if (t->joint && isfinite(k->loss)) {
        share_user_vectors(k);
        iadsr__heads st = step_heads(k);
        /* the reconstruction target E[x_t] is a constant (no gradient
         * into the item table): letting it move pulls the embedding of
         * every dropped item toward the decoder bias and collapses the
         * table (synthetic data, default backbone: valid NDCG@10 0.40 ->
         * 0.04) */
        size_t nrd = (size_t)k->b.n_rows * (size_t)d;
        memset(k->dh_aux, 0, nrd * sizeof(float));
        iadsr__heads_grads gr = {.dh = k->dh_aux,
                                 .demb = NULL,
                                 .dw1 = k->g + t->off_w1,
                                 .dw2 = k->g + t->off_w2,
                                 .dwd = k->g + t->off_wd,
                                 .dbd = k->g + t->off_bd};
        double l2 = iadsr__heads_train(&st, &k->s2, h, &k->b, k->uvec,
                                        t->w + t->emb_off, &k->rng,
                                        t->batch_rows, t->batch_seqs, &gr,
                                        NULL);
        if (t->mask_cur)
            for (int r = 0; r < k->b.n_rows; r++)
                t->mask_cur[k->mpos[r]] = k->s2.m[r];
        aux_into_backbone(t, k->dh, k->dh_aux, nrd);
        k->loss_aux = l2 * (double)t->batch_rows;
        if (t->clean_scores) {
            /* on the dropout-free scores; the gradient after the backward
             * pass, which the input mask's straight-through term needs */
            double ld = iadsr__heads_detect_loss(k->z1, k->noise,
                                                 k->b.n_rows, t->batch_rows,
                                                 k->s3.dlogit);
            if (t->input_mask)
                ld += keep_rate_prior(k, t->batch_rows);
            k->loss_det = ld * (double)t->batch_rows;
            l2 += ld;
        } else if (t->detect) {
            double ld = iadsr__heads_detect_train(
                &st, &k->s2, h, &k->b, k->uvec, t->w + t->off_det, k->noise,
                t->batch_rows, k->g + t->off_det, k->g + t->off_w1,
                k->g + t->off_w2);
            k->loss_det = ld * (double)t->batch_rows;
            l2 += ld;
        }
        /* report the total L per position, like the cross-entropy sum */
        k->loss += l2 * (double)t->batch_rows;
    }
    if (!isfinite(k->loss))
        return;
    k->enc.ops->backward(&k->enc, &k->b, k->dh);
    if (t->clean_scores) {
        if (t->input_mask) {
            /* straight-through: the hard mask's gradient dL/dm_t reaches
             * the logit as if m_t were sigmoid(logit_t) */
            for (int r = 0; r < k->b.n_rows; r++) {
                double p = 1.0 / (1.0 + exp(-(double)k->z1[r]));
                k->s3.dlogit[r] += (float)(k->dscale[r] * p * (1.0 - p));
            }
        }
        iadsr__heads_detect_backward(&st1, &k->s3, k->h1, &k->b, k->uvec,
                                     t->w + t->off_det, k->g + t->off_det,
                                     k->g + t->off_w1, k->g + t->off_w2);
    }
}

static int train_batch(iadsr_trainer *t, const int64_t *ids, int nb,
                       double *loss_sum)
{
    iadsr__batch b = t->detect ? build_batch_detect(t, ids, nb)
                               : build_batch(t, ids, nb);
    if (b.n_rows == 0)
        return IADSR_OK;
    int d = t->shape.d;
    t->batch_rows = b.n_rows;
    t->batch_seqs = nb;
    if (t->fast)
        iadsr__xent_transpose_mt(t->emb1, t->shape.n_items, d, t->et,
                                 t->ldt, t->n_workers);
    /* split the sequences into contiguous shares of about equal rows;
     * distributed, the global batch has n_ranks x n_workers shares and
     * this rank runs its n_workers of them. Every rank draws every share's
     * dropout seed, so all ranks' RNGs stay equal and the shares and
     * streams are those of one process with n_ranks x n_workers threads. */
    int R = t->tp.allreduce ? t->tp.n_ranks : 1;
    int S = R * t->n_workers < nb ? R * t->n_workers : nb;
    int lo = (t->tp.allreduce ? t->tp.rank : 0) * t->n_workers;
    int hi = lo + t->n_workers < S ? lo + t->n_workers : S;
    int W = hi > lo ? hi - lo : 0;
    int s0 = 0;
    for (int i = 0; i < S; i++) {
        int s1 = s0;
        int64_t goal = (int64_t)b.n_rows * (i + 1) / S;
        if (i == S - 1)
            s1 = nb;
        else
            while (s1 < nb - (S - 1 - i) && (b.row_off[s1 + 1] <= goal ||
                                             s1 == s0))
                s1++;
        /* one dropout stream per share, drawn from the trainer's RNG */
        uint64_t seed = iadsr__rng_u64(&t->rng);
        if (i >= lo && i < hi) {
            worker *k = &t->wk[i - lo];
            int r0 = b.row_off[s0];
            for (int q = s0; q <= s1; q++)
                k->row_off[q - s0] = b.row_off[q] - r0;
            k->b.n_seq = s1 - s0;
            k->b.n_rows = b.row_off[s1] - r0;
            k->b.items = b.items + r0;
            k->b.pos = b.pos + r0;
            k->b.row_off = k->row_off;
            k->b.scale = b.scale ? b.scale + r0 : NULL;
            k->tgt = t->b_tgt + r0;
            k->uid = t->b_uid + s0;
            k->mpos = t->b_mpos + r0;
            k->noise = t->b_noise ? t->b_noise + r0 : NULL;
            iadsr__rng_seed(&k->rng, seed);
        }
        s0 = s1;
    }
    if (W > 0)
        iadsr__fork_join(W, worker_run, t->wk, sizeof t->wk[0]);
    double ls[3] = {0.0, 0.0, 0.0};
    for (int i = 0; i < W; i++) {
        ls[0] += t->wk[i].loss;
        ls[1] += t->wk[i].loss_aux;
        ls[2] += t->wk[i].loss_det;
    }
    /* in one process a non-finite loss stops before the reduction;
     * distributed, every rank must take part in the step's collective
     * and learns it from the summed loss */
    int step = !t->tp.allreduce && !isfinite(ls[0])
                   ? STEP_NONFINITE_LOSS
                   : reduce_and_adam(t, W, t->tp.allreduce ? t->n_workers : W,
                                     ls);
    if (step == STEP_NONFINITE_LOSS)
        return iadsr__err(IADSR_ERR_NUMERIC,
                          "training: non-finite loss at step %lld",
                          (long long)t->step + 1);
    if (step == STEP_NONFINITE_GRAD)
        return iadsr__err(IADSR_ERR_NUMERIC,
                          "training: non-finite gradient at step %lld",
                          (long long)t->step + 1);
    if (step == STEP_COLLECTIVE)
        return iadsr__err(IADSR_ERR_ABORTED,
                          "training: the allreduce callback failed at step "
                          "%lld (rank %d of %d)",
                          (long long)t->step + 1, (int)t->tp.rank,
                          (int)t->tp.n_ranks);
    *loss_sum += ls[0];
    t->ep_aux += ls[1];
    t->ep_det += ls[2];
    return IADSR_OK;
}

int iadsr_trainer_run_epoch(iadsr_trainer *t, double *loss_out)
{
    TRY(iadsr__check_handle(trainer_ok(t), "trainer_run_epoch", "trainer"));
    if (t->n_users == 0)
        return iadsr__err(IADSR_ERR_STATE,
                          "trainer_run_epoch: no user has two training items");
    /* Fisher-Yates shuffle of the user order */
    for (int64_t i = t->n_users - 1; i > 0; i--) {
        int64_t j = (int64_t)iadsr__rng_below(&t->rng, (uint64_t)i + 1);
        int64_t tmp = t->users[i];
        t->users[i] = t->users[j];
        t->users[j] = tmp;
    }
    double loss_sum = 0;
    t->ep_aux = t->ep_det = 0.0;
    int B = t->tp.batch_size;
    for (int64_t i0 = 0; i0 < t->n_users; i0 += B) {
        int nb = (int)(t->n_users - i0 < B ? t->n_users - i0 : B);
        int rc = train_batch(t, t->users + i0, nb, &loss_sum);
        if (rc)
            return rc;
    }
    t->epochs_done++;
    if (t->mask_cur) {
        float *tmp = t->mask_prev;
        t->mask_prev = t->mask_cur;
        t->mask_cur = tmp;
    }
    t->last_aux = t->ep_aux / (double)t->n_positions;
    t->last_det = t->ep_det / (double)t->n_positions;
    if (loss_out)
        *loss_out = loss_sum / (double)t->n_positions;
    return IADSR_OK;
}

/* A model struct that borrows the trainer's working weights, used only for
 * the duration of one evaluation call; its refcount never reaches zero. */
static void weights_view(const iadsr_trainer *t, float *w, iadsr_model *view)
{
    memset(view, 0, sizeof *view);
    iadsr__handle_init(&view->magic, &view->refcount, IADSR__MAGIC_MODEL);
    view->hp = t->init->hp;
    view->layout = t->init->layout;
    view->w = w;
    view->best_valid_ndcg10 = NAN;
}

static int validate(iadsr_trainer *t, iadsr_metrics *res)
{
    iadsr_model *view = iadsr__malloc(sizeof *view);
    if (!view)
        return iadsr__err(IADSR_ERR_NOMEM, "validation: out of memory");
    weights_view(t, t->w, view);
    if (t->fast) {
        /* the packed table of the current weights (train_batch rebuilds
         * it before every step, so refresh it here) */
        iadsr__xent_transpose(t->w + t->init->layout.t[0].offset + t->shape.d,
                              t->shape.n_items, t->shape.d, t->et, t->ldt);
        view->et = t->et;
        view->ldt = t->ldt;
    }
    int64_t *users = NULL, n = 0;
    int32_t *ranks = NULL;
    int rc = iadsr__evaluate_ranks(view, t->data, IADSR_EVAL_VALID, 0,
                                   t->tp.n_threads, &users, &ranks, &n);
    iadsr__free(view);
    if (rc)
        return rc;
    memset(res, 0, sizeof *res);
    iadsr__metrics_from_ranks(ranks, n, res);
    iadsr__free(users);
    iadsr__free(ranks);
    return IADSR_OK;
}

/* FNV-1a over 32-bit words: checksums of the training state (memcpy:
 * the words may be floats or 64-bit integers) */
static uint64_t fnv_words(uint64_t h, const void *p, size_t n_words)
{
    const unsigned char *x = p;
    for (size_t i = 0; i < n_words; i++) {
        uint32_t v;
        memcpy(&v, x + 4 * i, 4);
        h ^= v;
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t state_checksum(const iadsr_trainer *t)
{
    uint64_t h = 0xcbf29ce484222325ull, step = (uint64_t)t->step;
    h = fnv_words(h, t->w, t->n_floats);
    h = fnv_words(h, t->m1, t->n_floats);
    h = fnv_words(h, t->m2, t->n_floats);
    return fnv_words(h, &step, 2);
}

int iadsr_trainer_checksum(const iadsr_trainer *t, uint64_t *out)
{
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "trainer_checksum: out is NULL");
    *out = 0;
    TRY(iadsr__check_handle(trainer_ok(t), "trainer_checksum", "trainer"));
    *out = state_checksum(t);
    return IADSR_OK;
}

/* Sum @p n doubles over the ranks (distributed training only). */
static int dist_sum(const iadsr_trainer *t, double *v, size_t n,
                    const char *what)
{
    if (t->tp.allreduce(v, n, IADSR_TYPE_F64, t->tp.allreduce_user) != 0)
        return iadsr__err(IADSR_ERR_ABORTED,
                          "trainer_fit: the allreduce callback failed (%s; "
                          "rank %d of %d)",
                          what, (int)t->tp.rank, (int)t->tp.n_ranks);
    return IADSR_OK;
}

/* Whether every rank holds the same state and settings: the checksum of
 * weights, moments and step, mixed with what must agree (the data's size,
 * every setting that steers the steps or the epochs' control flow: a rank
 * with another max_epochs or patience would wait in a collective the
 * others never make), is cut into 8-bit digits c; over R ranks
 * (sum c)^2 == R sum c^2 exactly when all are equal (Cauchy-Schwarz; the
 * sums stay below 2^53 for R up to 65536, so they are exact). */
static int ranks_agree(const iadsr_trainer *t, const char *when)
{
    const iadsr_train_params *p = &t->tp;
    int64_t cfg[12] = {t->n_users, t->n_positions, p->batch_size,
                       t->n_workers, p->n_ranks, (int64_t)p->seed,
                       t->joint, (int64_t)t->n_floats, p->max_epochs,
                       p->patience, p->eval_every, p->split};
    float fp[8] = {p->learning_rate, p->adam_beta1, p->adam_beta2,
                   p->adam_eps, p->weight_decay, p->label_smoothing,
                   p->history_penalty, 0.0f};
    uint32_t dflags = t->joint ? t->dp.flags : 0u;
    uint64_t h = fnv_words(state_checksum(t), cfg, 2 * 12);
    h = fnv_words(h, fp, 8);
    h = fnv_words(h, &dflags, 1);
    if (t->joint) /* the loss weights and temperatures */
        h = fnv_words(h, &t->dp.lambda_align, 4);
    /* and the ranks: each of 0..R-1 once (two ranks that both call
     * themselves 0 would compute the same shares twice and others never);
     * the sums of r and r^2 catch every duplicate of one rank */
    double v[18], R = (double)p->n_ranks;
    for (int k = 0; k < 8; k++) {
        double c = (double)((h >> (8 * k)) & 0xffu);
        v[k] = c;
        v[8 + k] = c * c;
    }
    v[16] = (double)p->rank;
    v[17] = (double)p->rank * (double)p->rank;
    TRY(dist_sum(t, v, 18, "comparing the ranks' states"));
    if (v[16] != R * (R - 1.0) / 2.0 ||
        v[17] != (R - 1.0) * R * (2.0 * R - 1.0) / 6.0)
        return iadsr__err(IADSR_ERR_MISMATCH,
                          "trainer_fit: the ranks are not 0..%d, each once "
                          "(this one says rank %d)",
                          (int)p->n_ranks - 1, (int)p->rank);
    for (int k = 0; k < 8; k++)
        if (v[k] * v[k] != (double)t->tp.n_ranks * v[8 + k])
            return iadsr__err(IADSR_ERR_MISMATCH,
                              "trainer_fit: the ranks' training states "
                              "differ at the %s of training (rank %d of "
                              "%d): every rank must start from the same "
                              "model, data, params and seed",
                              when, (int)t->tp.rank, (int)t->tp.n_ranks);
    return IADSR_OK;
}

/* Validation. Distributed, rank 0 validates and sends the outcome and the
 * metrics (v: outcome, HR@10, NDCG@10; doubles, so exact) to every rank,
 * which then all take the same early-stopping decisions. */
static int validate_all(iadsr_trainer *t, iadsr_metrics *res)
{
    if (!t->tp.allreduce)
        return validate(t, res);
    int rc = IADSR_OK;
    double v[3] = {0.0, 0.0, 0.0};
    memset(res, 0, sizeof *res);
    if (t->tp.rank == 0) {
        rc = validate(t, res);
        v[0] = rc == IADSR_OK ? 1.0 : rc == IADSR_ERR_STATE ? 2.0 : 3.0;
        v[1] = res->hr10;
        v[2] = res->ndcg10;
    }
    int rc2 = dist_sum(t, v, 3, "sending the validation result");
    if (rc2)
        return rc2;
    if (v[0] == 3.0)
        return t->tp.rank == 0
                   ? rc
                   : iadsr__err(IADSR_ERR_ABORTED,
                                "trainer_fit: validation failed on rank 0");
    if (v[0] == 2.0)
        return t->tp.rank == 0 ? rc
                               : iadsr__err(IADSR_ERR_STATE,
                                            "trainer_fit: no user to "
                                            "validate on (rank 0)");
    res->hr10 = v[1];
    res->ndcg10 = v[2];
    return IADSR_OK;
}

int iadsr_trainer_fit(iadsr_trainer *t, iadsr_progress_fn cb, void *user_data)
{
    TRY(iadsr__check_handle(trainer_ok(t), "trainer_fit", "trainer"));
    int validating = t->tp.split == IADSR_SPLIT_LEAVE_ONE_OUT;
    double t0 = iadsr__now();
    if (t->tp.allreduce)
        TRY(ranks_agree(t, "start"));
    while (t->epochs_done < t->tp.max_epochs) {
        double e0 = iadsr__now(), loss = 0;
        int rc = iadsr_trainer_run_epoch(t, &loss);
        if (rc)
            return rc;
        iadsr_progress_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        info.epoch = t->epochs_done;
        info.max_epochs = t->tp.max_epochs;
        info.loss = loss;
        info.loss_aux = t->joint ? t->last_aux : (double)NAN;
        info.loss_detect = t->detect ? t->last_det : (double)NAN;
        info.loss_next = loss - (t->joint ? t->last_aux : 0.0) -
                         (t->detect ? t->last_det : 0.0);
        info.learning_rate = (double)t->tp.learning_rate;
        info.aux_scale = t->joint ? (double)t->aux_scale : (double)NAN;
        info.epoch_seconds = iadsr__now() - e0;
        info.valid_hr10 = (double)NAN;
        info.valid_ndcg10 = (double)NAN;
        int stop = 0;
        if (validating && (t->epochs_done % t->tp.eval_every == 0 ||
                           t->epochs_done == t->tp.max_epochs)) {
            iadsr_metrics mres;
            rc = validate_all(t, &mres);
            if (rc == IADSR_ERR_STATE) {
                validating = 0; /* no user long enough: keep last weights */
            } else if (rc) {
                return rc;
            } else {
                info.valid_hr10 = mres.hr10;
                info.valid_ndcg10 = mres.ndcg10;
                if (mres.ndcg10 > t->best_ndcg) {
                    t->best_ndcg = mres.ndcg10;
                    t->best_epoch = t->epochs_done;
                    t->since_best = 0;
                    memcpy(t->best_w, t->w, t->n_floats * sizeof(float));
                } else {
                    int staged =
                        t->backoff && t->aux_stage < IADSR__BACKOFF_STAGES;
                    ++t->since_best;
                    if (t->tp.patience > 0 && staged &&
                        t->since_best >= (t->tp.patience + 1) / 2) {
                        /* a stall at these weights: lower them, go on */
                        t->aux_stage++;
                        t->aux_scale = t->aux_stage == 1 ? 0.1f : 0.01f;
                        t->since_best = 0;
                    } else if (t->tp.patience > 0 && !staged &&
                               t->since_best >= t->tp.patience) {
                        stop = 1;
                    }
                }
            }
        }
        info.best_epoch = t->best_epoch;
        info.best_ndcg10 = t->best_epoch > 0 ? t->best_ndcg : (double)NAN;
        info.elapsed_seconds = iadsr__now() - t0;
        int halt = cb && cb(&info, user_data) != 0;
        if (t->tp.allreduce) {
            /* any rank's callback stops every rank after this epoch */
            double vote = halt;
            TRY(dist_sum(t, &vote, 1, "the progress callbacks' votes"));
            halt = vote > 0.0;
        }
        if (halt)
            return iadsr__err(IADSR_ERR_ABORTED,
                              "trainer_fit: stopped by the progress callback "
                              "after epoch %d",
                              (int)t->epochs_done);
        if (stop)
            break;
    }
    if (t->tp.allreduce)
        TRY(ranks_agree(t, "end"));
    return IADSR_OK;
}

/* Whether the training part of a sequence the trainer trains on (its
 * users, holdout excluded) holds an item more than once: sets
 * t->repeats once, in one pass over the data with a per-item stamp. */
static int detect_repeats(iadsr_trainer *t)
{
    if (t->repeats_known)
        return IADSR_OK;
    int64_t *stamp =
        iadsr__calloc((size_t)t->shape.n_items + 1, sizeof *stamp);
    if (!stamp)
        return iadsr__err(IADSR_ERR_NOMEM, "trainer_snapshot: out of memory");
    int found = 0;
    for (int64_t k = 0; k < t->n_users && !found; k++) {
        int64_t u = t->users[k];
        const int32_t *it = t->data->items + t->data->offsets[u];
        int64_t n = train_len(t, u);
        for (int64_t j = 0; j < n; j++) {
            int32_t x = it[j];
            if (x < 1 || x > t->shape.n_items)
                continue; /* padding; the dataset check keeps ids in range */
            if (stamp[x] == k + 1) {
                found = 1;
                break;
            }
            stamp[x] = k + 1;
        }
    }
    iadsr__free(stamp);
    t->repeats = found;
    t->repeats_known = 1;
    return IADSR_OK;
}

int iadsr_trainer_snapshot(iadsr_trainer *t, iadsr_model **out)
{
    IADSR__OUT_CLEAR(out, "trainer_snapshot");
    TRY(iadsr__check_handle(trainer_ok(t), "trainer_snapshot", "trainer"));
    if (t->epochs_done > 0)
        TRY(detect_repeats(t));
    iadsr_model *m = NULL;
    TRY(iadsr__model_alloc(&m, &t->init->hp));
    int rc;
    int use_best = t->best_epoch > 0;
    memcpy(m->w, use_best ? t->best_w : t->w, t->model_floats * sizeof(float));
    m->epochs_trained = use_best ? t->best_epoch : t->epochs_done;
    m->best_valid_ndcg10 = use_best ? (float)t->best_ndcg : (float)NAN;
    /* what the weights were trained on: this trainer's data once it ran
     * an epoch, plus the initial model's repeats; else the initial
     * model's record */
    m->history_repeats = t->init->history_repeats;
    if (t->epochs_done > 0 && m->history_repeats != 1)
        m->history_repeats = t->repeats;
    if ((rc = iadsr__model_finalize(m)) != IADSR_OK) {
        iadsr_model_free(m);
        return rc;
    }
    /* the external ids of the initial model, shared (immutable) */
    m->ids = iadsr__item_ids_ref(t->init->ids);
    *out = m;
    return IADSR_OK;
}

/* IADSR_DENOISE_F_TEXT: the weight of the text consistency, set once the
 * detector is trained. The learned weights come from items inserted on the
 * fly, which the backbone never fitted, so its likelihood features tell
 * them apart and the text view adds little there; noise the backbone did
 * fit as next-item targets fools those features and not the text. So the
 * text is given the weight that makes both views count alike: the spread
 * (standard deviation) of the detector's logits over the training data's
 * scored positions divided by that of the text feature over the same
 * positions, i.e. their sum after scaling each to unit spread. Both are
 * read off two scoring passes of the data (text weight 0, then 1: the
 * feature is their difference). Deterministic for any thread count. */
static int text_weight(iadsr_trainer *t, iadsr_aligner *a, iadsr_gate *g)
{
    int wt = iadsr__det_w(IADSR__DET_FEATURES - 1);
    int64_t ni = t->data->offsets[t->data->n_users];
    iadsr_model *m = NULL;
    iadsr_denoiser *dn = NULL;
    iadsr_dataset *out = NULL;
    float *s = iadsr__malloc((size_t)(ni > 0 ? ni : 1) * 2 * sizeof(float));
    uint8_t *keep = iadsr__malloc((size_t)(ni > 0 ? ni : 1));
    int rc = s && keep ? IADSR_OK
                       : iadsr__err(IADSR_ERR_NOMEM, "trainer_snapshot_"
                                                     "denoiser: out of memory");
    if (!rc)
        rc = iadsr_trainer_snapshot(t, &m);
    if (!rc)
        rc = iadsr_denoiser_create(&dn, m, a, g, t->sem);
    for (int pass = 0; pass < 2 && !rc; pass++) {
        /* the denoiser reads the gate's weights at each call */
        g->det[wt] = (float)pass;
        rc = iadsr_denoiser_clean_dataset(dn, t->data, t->tp.split, t->usem,
                                          t->tp.n_threads, &out, keep,
                                          s + (size_t)pass * (size_t)ni);
        iadsr_dataset_free(out);
        out = NULL;
    }
    g->det[wt] = 0.0f;
    if (!rc) {
        double n = 0, m0 = 0, q0 = 0, m1 = 0, q1 = 0;
        for (int64_t i = 0; i < ni; i++) {
            double z = s[i], f = (double)s[ni + i] - z;
            if (z != z)
                continue; /* not scored (NaN) */
            n += 1;
            double d0 = z - m0, d1 = f - m1;
            m0 += d0 / n;
            m1 += d1 / n;
            q0 += d0 * (z - m0);
            q1 += d1 * (f - m1);
        }
        if (n > 1 && q1 > 0 && q0 > 0)
            g->det[wt] = (float)sqrt(q0 / q1);
    }
    iadsr_denoiser_free(dn);
    iadsr_model_free(m);
    iadsr__free(s);
    iadsr__free(keep);
    return rc;
}

int iadsr_trainer_snapshot_denoiser(iadsr_trainer *t, iadsr_aligner **aligner,
                                    iadsr_gate **gate)
{
    if (aligner)
        *aligner = NULL;
    if (gate)
        *gate = NULL;
    TRY(iadsr__check_handle(trainer_ok(t), "trainer_snapshot_denoiser",
                            "trainer"));
    if (!t->joint)
        return iadsr__err(IADSR_ERR_STATE,
                          "trainer_snapshot_denoiser: the trainer has no "
                          "aligner or gate (made by iadsr_trainer_create)");
    const float *w = t->best_epoch > 0 ? t->best_w : t->w;
    int d = t->shape.d, D = t->sem->dim;
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    int rc = IADSR_OK;
    /* the text weight scores the data, which needs the aligner even when
     * the caller does not ask for it */
    int text = gate && (t->dp.flags & IADSR_DENOISE_F_TEXT);
    if ((aligner || text) &&
        !(rc = iadsr__aligner_alloc(&a, d, D, t->dp.tau_align))) {
        size_t nd = (size_t)D * (size_t)d;
        memcpy(a->w1, w + t->off_w1, nd * sizeof(float));
        memcpy(a->w2, w + t->off_w2, nd * sizeof(float));
    }
    if (!rc && gate && !(rc = iadsr__gate_alloc(&g, d, &t->dp))) {
        memcpy(g->wd, w + t->off_wd, (size_t)d * (size_t)d * sizeof(float));
        memcpy(g->bd, w + t->off_bd, (size_t)d * sizeof(float));
        memcpy(g->det, w + t->off_det, IADSR__GATE_DET * sizeof(float));
    }
    if (rc) {
        iadsr_aligner_free(a);
        iadsr_gate_free(g);
        return rc;
    }
    /* what both parts were trained beside, so that a denoiser refuses
     * another backbone or semantic matrix (iadsr_denoiser_create) */
    iadsr__provenance pv = {1, t->init->hp.backbone, t->init->hp.n_items,
                            iadsr__semantic_fingerprint(
                                t->sem, t->init->hp.n_items)};
    if (a)
        a->prov = pv;
    if (g)
        g->prov = pv;
    if (text && (rc = text_weight(t, a, g))) {
        iadsr_aligner_free(a);
        iadsr_gate_free(g);
        return rc;
    }
    if (aligner)
        *aligner = a;
    else
        iadsr_aligner_free(a);
    if (gate)
        *gate = g;
    return IADSR_OK;
}
