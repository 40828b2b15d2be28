/* The backbone registry: the table of backbones, the lookups, and the
 * wrappers that dispatch through it. Each backbone's adapter of the encoder
 * interface lives in its own file.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/encoder.h"
#include "common/alloc.h"
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

/* The backbones, one line each: X(name) is iadsr__<name>_ops, defined in
 * the backbone's own file. The first is the default backbone
 * (IADSR_BACKBONE_DEFAULT). */
#define IADSR__BACKBONES(X)                                                    \
    X(sasrec)                                                                  \
    X(gru4rec)                                                                 \
    X(caser)

#define DECLARE(name) extern const iadsr__encoder_ops iadsr__##name##_ops;
IADSR__BACKBONES(DECLARE)
#undef DECLARE

#define ENTRY(name) &iadsr__##name##_ops,
static const iadsr__encoder_ops *const backbones[] = {IADSR__BACKBONES(ENTRY)};
#undef ENTRY

#define N_BACKBONES ((int)(sizeof backbones / sizeof backbones[0]))

int iadsr__encoder_count(void)
{
    return N_BACKBONES;
}

const iadsr__encoder_ops *iadsr__encoder_ops_at(int i)
{
    return i >= 0 && i < N_BACKBONES ? backbones[i] : NULL;
}

const iadsr__encoder_ops *iadsr__encoder_ops_for(int backbone)
{
    for (int i = 0; i < N_BACKBONES; i++)
        if (backbones[i]->backbone == backbone)
            return backbones[i];
    return NULL;
}

const iadsr__encoder_ops *iadsr__encoder_ops_by_name(const char *name)
{
    for (int i = 0; name && i < N_BACKBONES; i++)
        if (strcmp(backbones[i]->name, name) == 0)
            return backbones[i];
    return NULL;
}

int iadsr__encoder_create(iadsr__encoder *e, const iadsr_model_params *hp,
                          const iadsr__layout *l, const float *w, float *g,
                          int max_rows, int max_len, int training)
{
    memset(e, 0, sizeof *e);
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(hp->backbone);
    if (!ops)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "encoder: backbone %d is not available",
                          (int)hp->backbone);
    e->state = iadsr__calloc(1, ops->state_size);
    if (!e->state)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "encoder: cannot allocate the %s state", ops->name);
    e->ops = ops;
    int rc = ops->create(e, hp, l, w, g, max_rows, max_len, training);
    if (rc) {
        iadsr__free(e->state);
        e->state = NULL;
        e->ops = NULL;
    }
    return rc;
}

void iadsr__encoder_destroy(iadsr__encoder *e)
{
    if (e && e->ops) {
        e->ops->destroy(e);
        iadsr__free(e->state);
        e->state = NULL;
        e->ops = NULL;
    }
}
