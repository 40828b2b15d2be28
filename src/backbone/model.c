/* Model handle: hyper-parameters, parameter layout and weights. A model is
 * immutable once created; trainers publish new models via snapshots.
 * SPDX-License-Identifier: MIT
 */
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/params.h"
#include "common/rng.h"
#include "common/handle.h"
#include "backbone/model.h"
#include "backbone/encoder.h"
#include "math/xent.h"

#include <math.h>
#include <string.h>

int iadsr__model_layout(const iadsr_model_params *hp, iadsr__layout *out)
{
    if (!hp || !out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model layout: NULL argument");
    memset(out, 0, sizeof *out);
    const iadsr__encoder_ops *ops;
    TRY(iadsr__encoder_ops_get(hp->backbone, "model", &ops));
    return ops->layout(hp, out);
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
    m->history_repeats = -1;
    m->ids = NULL;
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

/* Every tensor as its backbone says (ops->init_tensor), in layout order
 * from one generator: the order of the draws is part of reproducibility. */
static void init_weights(iadsr_model *m)
{
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(m->hp.backbone);
    iadsr__rng rng;
    iadsr__rng_seed(&rng, m->hp.seed);
    for (int i = 0; i < m->layout.n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        ops->init_tensor(t, m->w + t->offset, &rng);
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
    iadsr__item_ids_unref(m->ids);
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
    size_t ids = 0;
    if (m->ids) /* shared with other models, counted by each */
        ids = sizeof *m->ids + m->ids->pos[m->ids->n] +
              ((size_t)m->ids->n + 1) * sizeof(size_t) +
              (m->ids->mask + 1) * sizeof(int32_t);
    return sizeof *m + m->layout.n_floats * sizeof(float) + et + ids;
}
const float *iadsr_model_item_embeddings(const iadsr_model *m)
{
    if (!iadsr__model_ok(m))
        return NULL;
    const iadsr__tensor *e = iadsr__layout_find(&m->layout, "item_emb");
    return e ? m->w + e->offset : NULL;
}

/* ---- external item ids (format 1.4) ------------------------------------- */

/* FNV-1a, 64 bits. */
static uint64_t id_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static size_t id_len(const iadsr__item_ids *ids, int32_t item)
{
    return ids->pos[item] - ids->pos[item - 1] - 1;
}

iadsr__item_ids *iadsr__item_ids_ref(const iadsr__item_ids *ids)
{
    if (ids)
        iadsr__handle_take(&ids->refcount);
    return (iadsr__item_ids *)(uintptr_t)ids;
}

void iadsr__item_ids_unref(iadsr__item_ids *ids)
{
    if (!ids || __atomic_sub_fetch(&ids->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    IADSR__FREE_ALL(ids->pool, ids->pos, ids->slot);
    iadsr__free(ids);
}

uint64_t iadsr__item_ids_bytes(const iadsr__item_ids *ids)
{
    return ids ? (uint64_t)(ids->pos[ids->n] - (size_t)ids->n) : 0;
}

int32_t iadsr__item_ids_find(const iadsr__item_ids *ids, const char *s,
                             size_t len)
{
    if (!ids || !s)
        return 0;
    for (size_t h = (size_t)id_hash(s, len) & ids->mask;;
         h = (h + 1) & ids->mask) {
        int32_t it = ids->slot[h];
        if (it == 0)
            return 0;
        if (id_len(ids, it) == len &&
            memcmp(ids->pool + ids->pos[it - 1], s, len) == 0)
            return it;
    }
}

int iadsr__item_ids_new(iadsr__item_ids **out, int32_t n, iadsr__id_get_fn get,
                        const void *ctx, iadsr__ids_fault *f)
{
    memset(f, 0, sizeof *f);
    *out = NULL;
    /* first pass: lengths and bytes, before anything is allocated */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const uint8_t *p = get(ctx, i, &len);
        f->index = i;
        if (len == 0) {
            f->kind = IADSR__IDS_EMPTY;
            return IADSR_ERR_INVALID_ARG;
        }
        if (len > IADSR__ITEM_ID_MAX) {
            f->kind = IADSR__IDS_TOO_LONG;
            f->other = (int64_t)len;
            return IADSR_ERR_INVALID_ARG;
        }
        for (size_t j = 0; j < len; j++)
            if (p[j] == 0 || p[j] == '\t' || p[j] == '\r' || p[j] == '\n') {
                f->kind = IADSR__IDS_BAD_BYTE;
                f->other = (int64_t)j;
                f->byte = p[j];
                return IADSR_ERR_INVALID_ARG;
            }
        total += len + 1; /* n <= 2^31, len <= 1024: no overflow */
    }
    f->index = 0;
    size_t cap = 16;
    while (cap < 2 * (size_t)n)
        cap *= 2;
    iadsr__item_ids *ids = iadsr__calloc(1, sizeof *ids);
    if (ids) {
        ids->pool = iadsr__malloc(total);
        ids->pos = iadsr__malloc(((size_t)n + 1) * sizeof *ids->pos);
        ids->slot = iadsr__calloc(cap, sizeof *ids->slot);
    }
    if (!ids || !ids->pool || !ids->pos || !ids->slot) {
        if (ids)
            IADSR__FREE_ALL(ids->pool, ids->pos, ids->slot);
        iadsr__free(ids);
        f->kind = IADSR__IDS_NOMEM;
        return iadsr__err(IADSR_ERR_NOMEM,
                          "item ids: out of memory (%zu bytes of ids)", total);
    }
    ids->refcount = 1;
    ids->n = n;
    ids->mask = cap - 1;
    size_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const uint8_t *p = get(ctx, i, &len);
        ids->pos[i] = at;
        memcpy(ids->pool + at, p, len);
        ids->pool[at + len] = '\0';
        at += len + 1;
        ids->pos[i + 1] = at;
        size_t h = (size_t)id_hash(ids->pool + ids->pos[i], len) & ids->mask;
        for (;; h = (h + 1) & ids->mask) {
            int32_t it = ids->slot[h];
            if (it == 0) {
                ids->slot[h] = i + 1;
                break;
            }
            if (id_len(ids, it) == len &&
                memcmp(ids->pool + ids->pos[it - 1], p, len) == 0) {
                f->kind = IADSR__IDS_DUPLICATE;
                f->index = i;
                f->other = it - 1;
                iadsr__item_ids_unref(ids);
                return IADSR_ERR_INVALID_ARG;
            }
        }
    }
    *out = ids;
    return IADSR_OK;
}

/* The host's array of C strings (iadsr_model_with_item_ids). */
typedef struct cstr_ids {
    const char *const *s;
} cstr_ids;

static const uint8_t *cstr_get(const void *ctx, int32_t i, size_t *len)
{
    const char *s = ((const cstr_ids *)ctx)->s[i];
    /* one byte past the limit is enough to refuse the id */
    *len = strnlen(s, IADSR__ITEM_ID_MAX + 1);
    return (const uint8_t *)s;
}

/* A copy of @p m (weights, provenance) carrying @p ids (a reference is
 * taken; NULL: none). */
static int model_copy(iadsr_model **out, const iadsr_model *m,
                      iadsr__item_ids *ids)
{
    iadsr_model *c = NULL;
    int rc = iadsr__model_alloc(&c, &m->hp);
    if (rc)
        return rc;
    memcpy(c->w, m->w, m->layout.n_floats * sizeof(float));
    c->epochs_trained = m->epochs_trained;
    c->best_valid_ndcg10 = m->best_valid_ndcg10;
    c->history_repeats = m->history_repeats;
    if ((rc = iadsr__model_finalize(c)) != IADSR_OK) {
        iadsr_model_free(c);
        return rc;
    }
    c->ids = iadsr__item_ids_ref(ids);
    *out = c;
    return IADSR_OK;
}

int iadsr_model_with_item_ids(iadsr_model **out, const iadsr_model *m,
                              const char *const *ids, int32_t n_ids)
{
    static const char fn[] = "model_with_item_ids";
    IADSR__OUT_CLEAR(out, fn);
    TRY(iadsr__check_handle(iadsr__model_ok(m), fn, "model"));
    if (!ids && n_ids == 0)
        return model_copy(out, m, NULL);
    if (!ids)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: ids is NULL but n_ids = %d (NULL goes with "
                          "0: a copy without ids)",
                          fn, (int)n_ids);
    if (n_ids != m->hp.n_items)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_ids = %d, the model has %d items (one id "
                          "per item, ids[i - 1] for item i)",
                          fn, (int)n_ids, (int)m->hp.n_items);
    for (int32_t i = 0; i < n_ids; i++)
        if (!ids[i])
            return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: ids[%d] is NULL",
                              fn, (int)i);
    cstr_ids ctx = {ids};
    iadsr__item_ids *t = NULL;
    iadsr__ids_fault f;
    int rc = iadsr__item_ids_new(&t, n_ids, cstr_get, &ctx, &f);
    switch (f.kind) {
    case IADSR__IDS_OK:
        break;
    case IADSR__IDS_EMPTY:
        return iadsr__err(rc, "%s: ids[%d] (item %d) is empty", fn,
                          (int)f.index, (int)f.index + 1);
    case IADSR__IDS_TOO_LONG:
        return iadsr__err(rc, "%s: ids[%d] (item %d) is longer than %d bytes",
                          fn, (int)f.index, (int)f.index + 1,
                          IADSR__ITEM_ID_MAX);
    case IADSR__IDS_BAD_BYTE:
        return iadsr__err(rc, "%s: ids[%d] (item %d) holds a %s byte at "
                              "offset %lld (ids may not hold NUL, TAB, CR "
                              "or LF)",
                          fn, (int)f.index, (int)f.index + 1,
                          f.byte == 0      ? "NUL"
                          : f.byte == '\t' ? "TAB"
                          : f.byte == '\r' ? "CR"
                                           : "LF",
                          (long long)f.other);
    case IADSR__IDS_DUPLICATE:
        return iadsr__err(rc, "%s: ids[%d] (item %d) repeats ids[%lld] "
                              "(item %lld): ids must be distinct",
                          fn, (int)f.index, (int)f.index + 1,
                          (long long)f.other, (long long)f.other + 1);
    default:
        return rc; /* NOMEM, message set */
    }
    rc = model_copy(out, m, t);
    iadsr__item_ids_unref(t);
    return rc;
}

const char *iadsr_model_item_id(const iadsr_model *m, int32_t item)
{
    if (!iadsr__model_ok(m) || !m->ids || item < 1 || item > m->ids->n)
        return NULL;
    return m->ids->pool + m->ids->pos[item - 1];
}

int32_t iadsr_model_item_index(const iadsr_model *m, const char *ext_id)
{
    if (!iadsr__model_ok(m) || !m->ids || !ext_id)
        return 0;
    size_t len = strnlen(ext_id, IADSR__ITEM_ID_MAX + 1);
    if (len > IADSR__ITEM_ID_MAX)
        return 0;
    return iadsr__item_ids_find(m->ids, ext_id, len);
}

int32_t iadsr_model_history_repeats(const iadsr_model *m)
{
    return iadsr__model_ok(m) ? m->history_repeats : -1;
}
