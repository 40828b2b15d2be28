/* Model handle: hyper-parameters, parameter layout and weights. A model is
 * immutable once created; trainers publish new models via snapshots.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/caser.h"
#include "backbone/gru4rec.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/params.h"
#include "common/rng.h"
#include "common/handle.h"
#include "backbone/model.h"
#include "common/params.h"
#include "math/xent.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes */

int iadsr__layout_add(iadsr__layout *l, const char *name, int64_t rows,
                      int64_t cols)
{
    if (l->n_tensors >= IADSR__MAX_TENSORS)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model: too many tensors");
    iadsr__tensor *t = &l->t[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    size_t off = (l->n_floats + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    t->offset = off;
    /* rows*cols fits easily: n_items < 2^31, dims <= 65536 on 64-bit. */
    l->n_floats = off + (size_t)rows * (size_t)cols;
    return IADSR_OK;
}

static int sasrec_layout(const iadsr_model_params *hp, iadsr__layout *l)
{
    int64_t d = hp->dim, f = hp->ffn_dim;
    int rc = IADSR_OK;
    char name[IADSR__TENSOR_NAME_MAX];
    rc = rc ? rc : iadsr__layout_add(l, "item_emb", (int64_t)hp->n_items + 1, d);
    rc = rc ? rc : iadsr__layout_add(l, "pos_emb", hp->max_seq_len, d);
    rc = rc ? rc : iadsr__layout_add(l, "emb_ln.g", 1, d);
    rc = rc ? rc : iadsr__layout_add(l, "emb_ln.b", 1, d);
    for (int b = 0; b < hp->n_layers && rc == IADSR_OK; b++) {
        static const char *const names[] = {"wqkv", "bqkv", "wo",    "bo",
                                            "ln1.g", "ln1.b", "w1",   "b1",
                                            "w2",    "b2",    "ln2.g", "ln2.b"};
        const int64_t rows[] = {d, 1, d, 1, 1, 1, d, 1, f, 1, 1, 1};
        const int64_t cols[] = {3 * d, 3 * d, d, d, d, d, f, f, d, d, d, d};
        for (int i = 0; i < 12 && rc == IADSR_OK; i++) {
            snprintf(name, sizeof name, "blk%d.%s", b, names[i]);
            rc = iadsr__layout_add(l, name, rows[i], cols[i]);
        }
    }
    if (hp->flags & IADSR_MODEL_F_PRE_LN) {
        /* pre-norm blocks leave the residual stream unnormalised */
        rc = rc ? rc : iadsr__layout_add(l, "final_ln.g", 1, d);
        rc = rc ? rc : iadsr__layout_add(l, "final_ln.b", 1, d);
    }
    return rc;
}

int iadsr__model_layout(const iadsr_model_params *hp, iadsr__layout *out)
{
    if (!hp || !out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model layout: NULL argument");
    memset(out, 0, sizeof *out);
    switch (hp->backbone) {
    case IADSR_BACKBONE_SASREC:
        return sasrec_layout(hp, out);
    case IADSR_BACKBONE_GRU4REC:
        return iadsr__gru4rec_layout(hp, out);
    case IADSR_BACKBONE_CASER:
        return iadsr__caser_layout(hp, out);
    default:
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "model: backbone %d is not available in this version",
                          (int)hp->backbone);
    }
}

const iadsr__tensor *iadsr__layout_find(const iadsr__layout *l,
                                        const char *name)
{
    for (int i = 0; i < l->n_tensors; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

int iadsr__model_ok(const iadsr_model *m)
{
    return IADSR__HANDLE_IS(m, IADSR__MAGIC_MODEL);
}

iadsr_model *iadsr__model_ref(const iadsr_model *m)
{
    iadsr__handle_take(&m->refcount);
    return (iadsr_model *)(uintptr_t)m;
}

int iadsr__model_alloc(iadsr_model **out, const iadsr_model_params *p)
{
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model: out is NULL");
    *out = NULL;
    if (!p)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model: params are NULL");
    iadsr_model_params hp;
    int rc = iadsr__model_params_get(&hp, p);
    if (rc)
        return rc;
    if ((rc = iadsr__model_params_check(&hp)) != IADSR_OK)
        return rc;
    iadsr_model *m = iadsr__calloc(1, sizeof *m);
    if (!m)
        return iadsr__err(IADSR_ERR_NOMEM, "model: out of memory");
    m->hp = hp;
    if ((rc = iadsr__model_layout(&hp, &m->layout)) != IADSR_OK) {
        iadsr__free(m);
        return rc;
    }
    size_t n_floats = m->layout.n_floats;
    m->w = iadsr__aligned_alloc(n_floats, sizeof(float));
    if (!m->w) {
        iadsr__free(m);
        return iadsr__err(IADSR_ERR_NOMEM, "model: cannot allocate %zu weights",
                          n_floats);
    }
    memset(m->w, 0, m->layout.n_floats * sizeof(float));
    iadsr__handle_init(&m->magic, &m->refcount, IADSR__MAGIC_MODEL);
    m->epochs_trained = 0;
    m->best_valid_ndcg10 = NAN;
    *out = m;
    return IADSR_OK;
}

int iadsr__model_finalize(iadsr_model *m)
{
    int d = m->hp.dim;
    if (m->et || !iadsr__xent_fast_ok(d))
        return IADSR_OK;
    int ldt = iadsr__xent_ldt(m->hp.n_items);
    float *et = iadsr__aligned_alloc((size_t)d * (size_t)ldt, sizeof(float));
    if (!et)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "model: cannot allocate the packed item table");
    const iadsr__tensor *e = iadsr__layout_find(&m->layout, "item_emb");
    iadsr__xent_transpose(m->w + e->offset + d, m->hp.n_items, d, et, ldt);
    m->et = et;
    m->ldt = ldt;
    return IADSR_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* normal(0, 0.02) for weight matrices and embeddings, zero biases, unit
 * LayerNorm gains (the initialisation of the PyTorch reference). */
static void init_weights(iadsr_model *m)
{
    iadsr__rng rng;
    iadsr__rng_seed(&rng, m->hp.seed);
    for (int i = 0; i < m->layout.n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        float *w = m->w + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        if (ends_with(t->name, ".g")) {
            for (size_t j = 0; j < n; j++)
                w[j] = 1.0f;
        } else if (strncmp(t->name, "caser.", 6) == 0 &&
                   ends_with(t->name, ".w")) {
            /* Caser's convolutions and fc layer: fan-scaled as in RecBole
             * (0.02 through two layers would leave h ~ 1e-3), and drawn
             * even when a weight has a single row (window 1 or d 1). */
            double sd = iadsr__caser_init_sd(t);
            for (size_t j = 0; j < n; j++)
                w[j] = (float)(sd * iadsr__rng_normal(&rng));
        } else if (strncmp(t->name, "gru", 3) == 0 &&
                   (ends_with(t->name, ".w_ih") ||
                    ends_with(t->name, ".w_hh"))) {
            /* GRU4Rec's input and recurrent weights [d, 3d]: uniform
             * (-1/sqrt(d), 1/sqrt(d)) as PyTorch's nn.GRU (biases stay 0).
             * From normal(0, 0.02) the gates start nearly constant and
             * training sits on a long plateau (measured on synthetic data:
             * valid NDCG@10 0.14 vs 0.36 after 30 epochs at lr 1e-3). */
            double a = 1.0 / sqrt((double)t->rows);
            for (size_t j = 0; j < n; j++)
                w[j] = (float)(a * (2.0 * (double)iadsr__rng_float(&rng) - 1.0));
        } else if (t->rows == 1) {
            memset(w, 0, n * sizeof *w); /* biases and LayerNorm shifts */
        } else {
            for (size_t j = 0; j < n; j++)
                w[j] = (float)(0.02 * iadsr__rng_normal(&rng));
        }
    }
    const iadsr__tensor *e = iadsr__layout_find(&m->layout, "item_emb");
    if (e)
        memset(m->w + e->offset, 0, (size_t)e->cols * sizeof(float));
}

int iadsr_model_create(iadsr_model **out, const iadsr_model_params *p)
{
    int rc = iadsr__model_alloc(out, p);
    if (rc)
        return rc;
    init_weights(*out);
    if ((rc = iadsr__model_finalize(*out)) != IADSR_OK) {
        iadsr_model_free(*out);
        *out = NULL;
    }
    return rc;
}

int iadsr_model_create_from_embeddings(iadsr_model **out,
                                       const iadsr_model_params *p,
                                       const float *emb, int64_t n_rows,
                                       int32_t dim, int64_t ld)
{
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model: out is NULL");
    *out = NULL;
    if (!p || !emb)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model: %s is NULL", p ? "emb" : "params");
    iadsr_model *m = NULL;
    int rc = iadsr__model_alloc(&m, p);
    if (rc)
        return rc;
    const iadsr__tensor *e = iadsr__layout_find(&m->layout, "item_emb");
    if (n_rows != e->rows || dim != e->cols) {
        long long er = (long long)e->rows, ec = (long long)e->cols;
        iadsr_model_free(m); /* e points into m: read it first */
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "model: embedding matrix is %lld x %d, expected "
                          "%lld x %lld (n_items + 1 rows, row 0 = padding)",
                          (long long)n_rows, (int)dim, er, ec);
    }
    if (ld < dim) {
        iadsr_model_free(m);
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model: leading dimension %lld < dim %d",
                          (long long)ld, (int)dim);
    }
    for (int64_t r = 1; r < n_rows; r++)
        for (int32_t c = 0; c < dim; c++)
            if (!isfinite(emb[r * ld + c])) {
                iadsr_model_free(m);
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "model: embedding row %lld column %d is "
                                  "not finite",
                                  (long long)r, (int)c);
            }
    init_weights(m);
    float *dst = m->w + e->offset;
    for (int64_t r = 1; r < n_rows; r++)
        memcpy(dst + r * dim, emb + r * ld, (size_t)dim * sizeof(float));
    if ((rc = iadsr__model_finalize(m)) != IADSR_OK) {
        iadsr_model_free(m);
        return rc;
    }
    *out = m;
    return IADSR_OK;
}

void iadsr_model_free(iadsr_model *m)
{
    if (!iadsr__model_ok(m))
        return;
    if (!iadsr__handle_drop(&m->magic, &m->refcount))
        return;
    iadsr__aligned_free(m->w);
    iadsr__aligned_free(m->et);
    iadsr__free(m);
}

int iadsr_model_get_params(const iadsr_model *m, iadsr_model_params *out)
{
    if (!iadsr__model_ok(m) || !out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_get_params: %s",
                          out ? "invalid model handle" : "out is NULL");
    uint32_t size = out->struct_size;
    if (size < offsetof(iadsr_model_params, seed) + 8)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_get_params: struct_size %u too small",
                          (unsigned)size);
    size_t n = size < sizeof m->hp ? size : sizeof m->hp;
    memcpy(out, &m->hp, n);
    out->struct_size = size;
    return IADSR_OK;
}

int32_t iadsr_model_backbone(const iadsr_model *m)
{
    return iadsr__model_ok(m) ? m->hp.backbone : 0;
}
int32_t iadsr_model_n_items(const iadsr_model *m)
{
    return iadsr__model_ok(m) ? m->hp.n_items : 0;
}
int32_t iadsr_model_dim(const iadsr_model *m)
{
    return iadsr__model_ok(m) ? m->hp.dim : 0;
}
int32_t iadsr_model_max_seq_len(const iadsr_model *m)
{
    return iadsr__model_ok(m) ? m->hp.max_seq_len : 0;
}
int64_t iadsr_model_n_params(const iadsr_model *m)
{
    if (!iadsr__model_ok(m))
        return 0;
    int64_t n = 0;
    for (int i = 0; i < m->layout.n_tensors; i++)
        n += m->layout.t[i].rows * m->layout.t[i].cols;
    return n;
}
size_t iadsr_model_memory_usage(const iadsr_model *m)
{
    if (!iadsr__model_ok(m))
        return 0;
    size_t et = m->et ? (size_t)m->hp.dim * (size_t)m->ldt * sizeof(float) : 0;
    return sizeof *m + m->layout.n_floats * sizeof(float) + et;
}
const float *iadsr_model_item_embeddings(const iadsr_model *m)
{
    if (!iadsr__model_ok(m))
        return NULL;
    const iadsr__tensor *e = iadsr__layout_find(&m->layout, "item_emb");
    return e ? m->w + e->offset : NULL;
}
