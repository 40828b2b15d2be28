/* The backbone registry: the table of backbones, the lookups, and the
 * wrappers that dispatch through it. Each backbone's adapter of the encoder
 * interface lives in its own file.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/encoder.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/params.h"

#include <string.h>

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

int iadsr__encoder_ops_get(int backbone, const char *what,
                           const iadsr__encoder_ops **ops)
{
    *ops = iadsr__encoder_ops_for(backbone);
    if (!*ops)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: backbone %d is not available in this version",
                          what, backbone);
    return IADSR_OK;
}

const iadsr__encoder_ops *iadsr__encoder_ops_by_name(const char *name)
{
    for (int i = 0; name && i < N_BACKBONES; i++)
        if (strcmp(backbones[i]->name, name) == 0)
            return backbones[i];
    return NULL;
}

void iadsr__shape_from(const iadsr_model_params *hp, iadsr__shape *s)
{
    memset(s, 0, sizeof *s);
    s->backbone = hp->backbone;
    s->n_items = hp->n_items;
    s->d = hp->dim;
    s->max_len = hp->max_seq_len;
    s->n_layers = hp->n_layers;
    s->dropout = (double)hp->dropout;
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(hp->backbone);
    if (ops)
        ops->fill_shape(hp, s);
}

int iadsr__encoder_check_foreign(const iadsr_model_params *p,
                                 const char *what)
{
    for (int i = 0; i < N_BACKBONES; i++) {
        const iadsr__encoder_ops *ops = backbones[i];
        if (ops->backbone == p->backbone)
            continue;
        for (int k = 0; k < ops->n_hparams; k++)
            if (iadsr__hparam_get(p, &ops->hparams[k]) != 0)
                return iadsr__err(IADSR_ERR_INVALID_ARG,
                                  "%s: the %s* fields apply to %s only", what,
                                  ops->hparam_prefix, ops->title);
    }
    return IADSR_OK;
}

int iadsr__hparams_normalise(const iadsr__hparam_desc *h, int n,
                             iadsr_model_params *p, const char *what)
{
    for (int k = 0; k < n; k++)
        if (iadsr__hparam_get(p, &h[k]) == 0)
            iadsr__hparam_set(p, &h[k], h[k].def);
    for (int k = 0; k < n; k++) {
        int rc = iadsr__check_i32(what, h[k].field, iadsr__hparam_get(p, &h[k]),
                                  h[k].lo, h[k].hi);
        if (rc)
            return rc;
    }
    return IADSR_OK;
}

int iadsr__encoder_create(iadsr__encoder *e, const iadsr_model_params *hp,
                          const iadsr__layout *l, const float *w, float *g,
                          int max_rows, int max_len, int training)
{
    memset(e, 0, sizeof *e);
    const iadsr__encoder_ops *ops;
    TRY(iadsr__encoder_ops_get(hp->backbone, "encoder", &ops));
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
