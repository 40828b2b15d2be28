/* The backbone encoder interface. Everything outside a backbone (model,
 * trainer, contexts, evaluation, checkpoints) talks to backbones through
 * this table, so adding a backbone adds its own files and one line of the
 * registry (registry.c), not branches.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_ENCODER_H
#define IADSR_ENCODER_H

#include "iadsr.h"
#include "backbone/batch.h"
#include "backbone/layout.h"
#include "backbone/shape.h"
#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct iadsr__encoder iadsr__encoder;

/* One int32 hyper-parameter of iadsr_model_params that belongs to a single
 * backbone: 0 in the caller's struct means def; normalised values lie in
 * lo..hi. Checkpoints store it as metadata key `key` for that backbone
 * only. */
typedef struct iadsr__hparam_desc {
    const char *key;   /* checkpoint metadata key, "iadsr.<field>" */
    const char *field; /* the iadsr_model_params field, as messages name it */
    size_t offset;     /* offsetof(iadsr_model_params, field) */
    int32_t def, lo, hi;
} iadsr__hparam_desc;

typedef struct iadsr__encoder_ops {
    int backbone; /* IADSR_BACKBONE_* */
    const char *name; /* lower case, unique: the CLI's --backbone */
    const char *title; /* as messages write it, e.g. "GRU4Rec" */
    /* Validate and normalise the backbone's part of @p p; the generic
     * fields (n_items, dim, max_seq_len, flags, dropout, reserved) are
     * checked already. Sets the defaults of 0 fields, refuses fields that
     * do not apply (iadsr__encoder_check_foreign()); messages start with
     * @p what. IADSR_OK or IADSR_ERR_INVALID_ARG. */
    int (*check_params)(iadsr_model_params *p, const char *what);
    /* The backbone's own hyper-parameters beyond the format 1.0 fields
     * (n_hparams may be 0, hparams then NULL); every field name starts
     * with hparam_prefix, which messages write as "<prefix>*". */
    const char *hparam_prefix;
    const iadsr__hparam_desc *hparams;
    int n_hparams;
    /* Fill the backbone's own fields of @p s from normalised @p hp; the
     * generic ones are set already (iadsr__shape_from()). */
    void (*fill_shape)(const iadsr_model_params *hp, iadsr__shape *s);
    /* The parameter layout for normalised params @p hp, appended to the
     * zeroed @p l with iadsr__layout_add(); the order is the checkpoint's
     * and the tensor names are part of the format. */
    int (*layout)(const iadsr_model_params *hp, iadsr__layout *l);
    /* Initialise tensor @p t of a fresh model into @p w. Called for every
     * tensor in layout order with one generator seeded from hp->seed, so
     * the draws must stay in that order for models to stay reproducible;
     * tensors the backbone does not treat itself go to
     * iadsr__tensor_init_default(). Row 0 of "item_emb" (padding) is zeroed
     * afterwards by the model. */
    void (*init_tensor)(const iadsr__tensor *t, float *w, iadsr__rng *rng);
    /* Bytes of the backbone's own state (its weight bindings and
     * workspace), allocated zeroed as e->state before create and freed
     * after destroy. */
    size_t state_size;
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
    void *state; /* ops->state_size bytes, the backbone's */
};

/* The table of a (normalised) backbone, or NULL if not available. */
const iadsr__encoder_ops *iadsr__encoder_ops_for(int backbone);
/* The same into *@p ops, or IADSR_ERR_UNSUPPORTED "<what>: backbone N is
 * not available in this version" with *@p ops NULL. */
int iadsr__encoder_ops_get(int backbone, const char *what,
                           const iadsr__encoder_ops **ops);
/* The table of the backbone called @p name (ops->name), or NULL. */
const iadsr__encoder_ops *iadsr__encoder_ops_by_name(const char *name);
/* The registered backbones: i = 0..iadsr__encoder_count() - 1, the default
 * backbone (IADSR_BACKBONE_DEFAULT) first; NULL outside. */
int iadsr__encoder_count(void);
const iadsr__encoder_ops *iadsr__encoder_ops_at(int i);

/* Refuse, naming them, the hparams of every backbone other than
 * p->backbone that are not 0: "<what>: the <prefix>* fields apply to
 * <title> only" (IADSR_ERR_INVALID_ARG). */
int iadsr__encoder_check_foreign(const iadsr_model_params *p,
                                 const char *what);
/* Normalise the @p n hparams @p h of @p p: 0 becomes the default, then
 * every one is checked against lo..hi (messages as the generic bounds
 * checks). */
int iadsr__hparams_normalise(const iadsr__hparam_desc *h, int n,
                             iadsr_model_params *p, const char *what);

static inline int32_t iadsr__hparam_get(const iadsr_model_params *p,
                                        const iadsr__hparam_desc *h)
{
    int32_t v;
    memcpy(&v, (const char *)p + h->offset, sizeof v);
    return v;
}

static inline void iadsr__hparam_set(iadsr_model_params *p,
                                     const iadsr__hparam_desc *h, int32_t v)
{
    memcpy((char *)p + h->offset, &v, sizeof v);
}

/* Look the backbone of @p hp up, allocate e->state and run ops->create;
 * on failure @p e is left zeroed. Destroy is a no-op on a zeroed or
 * destroyed encoder. */
int iadsr__encoder_create(iadsr__encoder *e, const iadsr_model_params *hp,
                          const iadsr__layout *l, const float *w, float *g,
                          int max_rows, int max_len, int training);
void iadsr__encoder_destroy(iadsr__encoder *e);

/* ---- the adapter of a backbone's float layers ------------------------------
 * A backbone whose layer family has the common functions
 * (backbone/family.h) gets its adapter of this interface from
 * IADSR__ENCODER_ADAPTER(BB);, which defines the state struct BB_state and
 * the static BB_create, BB_destroy, BB_forward, BB_forward_last and
 * BB_backward; its ops table then lists
 * IADSR__ENCODER_OPS(BB, IADSR_BACKBONE_X, "Title"), which names these and
 * the backbone's own BB_check_params, BB_fill_shape, BB_layout and
 * BB_init_tensor. */

#define IADSR__ENCODER_ADAPTER(BB)                                             \
    typedef struct BB##_state {                                                \
        iadsr__##BB##_w_f32 w, g;                                              \
        iadsr__##BB##_ws_f32 ws;                                               \
    } BB##_state;                                                              \
                                                                               \
    static int BB##_create(iadsr__encoder *e, const iadsr_model_params *hp,    \
                           const iadsr__layout *l, const float *w, float *g,   \
                           int max_rows, int max_len, int training)            \
    {                                                                          \
        BB##_state *st = e->state;                                             \
        iadsr__shape_from(hp, &e->shape);                                      \
        /* the binding is read-only for w; the cast only reuses one struct     \
         * type for weights and gradients */                                   \
        iadsr__##BB##_bind_f32(l, (float *)(uintptr_t)w, &e->shape, &st->w);   \
        if (g) /* else st->g stays zeroed: inference */                        \
            iadsr__##BB##_bind_f32(l, g, &e->shape, &st->g);                   \
        return iadsr__##BB##_ws_init_f32(&st->ws, &e->shape, max_rows,         \
                                         max_len, training);                   \
    }                                                                          \
                                                                               \
    static void BB##_destroy(iadsr__encoder *e)                                \
    {                                                                          \
        BB##_state *st = e->state;                                             \
        iadsr__##BB##_ws_free_f32(&st->ws);                                    \
    }                                                                          \
                                                                               \
    static const float *BB##_forward(iadsr__encoder *e, const iadsr__batch *b, \
                                     iadsr__rng *rng)                          \
    {                                                                          \
        BB##_state *st = e->state;                                             \
        iadsr__##BB##_forward_f32(&st->ws, &st->w, b, rng);                    \
        return st->ws.out;                                                     \
    }                                                                          \
                                                                               \
    static const float *BB##_forward_last(iadsr__encoder *e,                   \
                                          const iadsr__batch *b)               \
    {                                                                          \
        BB##_state *st = e->state;                                             \
        iadsr__##BB##_forward_last_f32(&st->ws, &st->w, b);                    \
        return st->ws.out;                                                     \
    }                                                                          \
                                                                               \
    static void BB##_backward(iadsr__encoder *e, const iadsr__batch *b,        \
                              float *dh)                                       \
    {                                                                          \
        BB##_state *st = e->state;                                             \
        iadsr__##BB##_backward_f32(&st->ws, &st->w, &st->g, b, dh);            \
    }                                                                          \
                                                                               \
    extern const iadsr__encoder_ops iadsr__##BB##_ops

#define IADSR__ENCODER_OPS(BB, ID, TITLE)                                      \
    .backbone = (ID), .name = #BB, .title = (TITLE),                           \
    .check_params = BB##_check_params, .fill_shape = BB##_fill_shape,          \
    .layout = BB##_layout, .init_tensor = BB##_init_tensor,                    \
    .state_size = sizeof(BB##_state), .create = BB##_create,                   \
    .destroy = BB##_destroy, .forward = BB##_forward,                          \
    .forward_last = BB##_forward_last, .backward = BB##_backward

#endif
