/* Backbone registry and the SASRec adapter of the encoder interface.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/encoder.h"
#include "common/rng.h"
#include "common/error.h"

#include <string.h>

void iadsr__shape_from(const iadsr_model_params *hp, iadsr__shape *s)
{
    memset(s, 0, sizeof *s);
    s->backbone = hp->backbone;
    s->n_items = hp->n_items;
    s->d = hp->dim;
    s->max_len = hp->max_seq_len;
    s->n_layers = hp->n_layers;
    s->f = hp->ffn_dim;
    s->n_heads = hp->n_heads;
    s->act = hp->activation;
    s->pre_ln = (hp->flags & IADSR_MODEL_F_PRE_LN) != 0;
    s->caser_l = hp->caser_window;
    s->caser_nh = hp->caser_h_filters;
    s->caser_nv = hp->caser_v_filters;
    s->dropout = (double)hp->dropout;
}

static int sasrec_create(iadsr__encoder *e, const iadsr_model_params *hp,
                         const iadsr__layout *l, const float *w, float *g,
                         int max_rows, int max_len, int training)
{
    iadsr__shape_from(hp, &e->shape);
    /* the binding is read-only for w; the cast only reuses one struct type
     * for weights and gradients */
    iadsr__sasrec_bind_f32(l, (float *)(uintptr_t)w, &e->shape, &e->u.sasrec.w);
    if (g)
        iadsr__sasrec_bind_f32(l, g, &e->shape, &e->u.sasrec.g);
    else
        memset(&e->u.sasrec.g, 0, sizeof e->u.sasrec.g);
    /* attention probabilities: training keeps every (sequence, head) block
     * for the backward pass; inference reuses one L x L block */
    size_t max_att = training ? (size_t)max_rows * (size_t)max_len *
                                    (size_t)e->shape.n_heads
                              : (size_t)max_len * (size_t)max_len;
    return iadsr__sasrec_ws_init_f32(&e->u.sasrec.ws, &e->shape, max_rows,
                                     max_att, training);
}

static void sasrec_destroy(iadsr__encoder *e)
{
    iadsr__sasrec_ws_free_f32(&e->u.sasrec.ws);
}

static const float *sasrec_forward(iadsr__encoder *e, const iadsr__batch *b,
                                   iadsr__rng *rng)
{
    iadsr__sasrec_forward_f32(&e->u.sasrec.ws, &e->u.sasrec.w, b, rng);
    return e->u.sasrec.ws.out;
}

static const float *sasrec_forward_last(iadsr__encoder *e,
                                        const iadsr__batch *b)
{
    iadsr__sasrec_forward_last_f32(&e->u.sasrec.ws, &e->u.sasrec.w, b);
    return e->u.sasrec.ws.out;
}

static void sasrec_backward(iadsr__encoder *e, const iadsr__batch *b,
                            float *dh)
{
    iadsr__sasrec_backward_f32(&e->u.sasrec.ws, &e->u.sasrec.w,
                               &e->u.sasrec.g, b, dh);
}

static const iadsr__encoder_ops sasrec_ops = {
    IADSR_BACKBONE_SASREC, "sasrec", sasrec_create, sasrec_destroy,
    sasrec_forward,        sasrec_forward_last, sasrec_backward};

extern const iadsr__encoder_ops iadsr__gru4rec_ops; /* gru4rec_f32.c */
extern const iadsr__encoder_ops iadsr__caser_ops;   /* caser_f32.c */

const iadsr__encoder_ops *iadsr__encoder_ops_for(int backbone)
{
    switch (backbone) {
    case IADSR_BACKBONE_SASREC:
        return &sasrec_ops;
    case IADSR_BACKBONE_GRU4REC:
        return &iadsr__gru4rec_ops;
    case IADSR_BACKBONE_CASER:
        return &iadsr__caser_ops;
    default:
        return NULL;
    }
}

int iadsr__encoder_create(iadsr__encoder *e, const iadsr_model_params *hp,
                          const iadsr__layout *l, const float *w, float *g,
                          int max_rows, int max_len, int training)
{
    memset(e, 0, sizeof *e);
    e->ops = iadsr__encoder_ops_for(hp->backbone);
    if (!e->ops)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "encoder: backbone %d is not available",
                          (int)hp->backbone);
    int rc = e->ops->create(e, hp, l, w, g, max_rows, max_len, training);
    if (rc)
        e->ops = NULL;
    return rc;
}

void iadsr__encoder_destroy(iadsr__encoder *e)
{
    if (e && e->ops) {
        e->ops->destroy(e);
        e->ops = NULL;
    }
}
