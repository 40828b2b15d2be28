/* Inference contexts: per-thread scratch bound to an immutable model.
 * Every buffer is allocated at creation, so scoring never allocates.
 * SPDX-License-Identifier: MIT
 */
#include "score/ctx.h"

#include "common/params.h"
#include "math/kernels.h"
#include "math/xent.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/handle.h"
#include "math/blas.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void free_buffers(iadsr_ctx *c)
{
    IADSR__FREE_ALL(c->items, c->kept, c->pos, c->row_off, c->offs, c->fill,
                    c->excl, c->cand_ids, c->cand_s);
    IADSR__ALIGNED_FREE_ALL(c->hlast, c->scores, c->topk_keys, c->chunk,
                            c->zl, c->t16, c->t8, c->t8_scale);
    iadsr__encoder_destroy(&c->enc);
}

int iadsr_ctx_create(iadsr_ctx **out, const iadsr_model *m,
                     const iadsr_ctx_params *p)
{
    IADSR__OUT_CLEAR(out, "ctx_create");
    TRY(iadsr__check_handle(iadsr__model_ok(m), "ctx_create", "model"));
    iadsr_ctx_params cp;
    TRY(iadsr__ctx_params_get(&cp, p));
    iadsr_ctx *c = iadsr__calloc(1, sizeof *c);
    if (!c)
        return iadsr__err(IADSR_ERR_NOMEM, "ctx_create: out of memory");
    iadsr__shape_from(&m->hp, &c->shape);
    c->max_batch = cp.max_batch;
    int L = c->shape.max_len;
    int64_t rows = (int64_t)cp.max_batch * L;
    if (rows > 1 << 22) {
        /* keep a context's scratch bounded: fewer users per chunk */
        c->max_batch = (1 << 22) / L;
        if (c->max_batch < 1)
            c->max_batch = 1;
        rows = (int64_t)c->max_batch * L;
    }
    c->n_scores = (int64_t)m->hp.n_items + 1;
    int rc = iadsr__encoder_create(&c->enc, &m->hp, &m->layout, m->w, NULL,
                               (int)rows, L, 0);
    if (rc) {
        iadsr__free(c);
        return rc;
    }
    c->items = iadsr__malloc((size_t)rows * sizeof(int32_t));
    c->kept = iadsr__malloc((size_t)rows * sizeof(int32_t));
    c->pos = iadsr__malloc((size_t)rows * sizeof(int32_t));
    c->row_off = iadsr__malloc(((size_t)c->max_batch + 1) * sizeof(int32_t));
    /* rows rounded up to 8 for the packed-table kernel */
    size_t rows8 = ((size_t)c->max_batch + 7) / 8 * 8;
    c->hlast = iadsr__aligned_alloc(rows8 * (size_t)c->shape.d, sizeof(float));
    if (c->hlast)
        memset(c->hlast, 0, rows8 * (size_t)c->shape.d * sizeof(float));
    c->zl = m->et ? iadsr__aligned_alloc(rows8 * (size_t)m->ldt, sizeof(float))
                  : NULL;
    c->scores = iadsr__aligned_alloc((size_t)c->n_scores, sizeof(float));
    c->topk_keys = iadsr__aligned_alloc((size_t)c->n_scores, sizeof(float));
    c->chunk = iadsr__aligned_alloc((size_t)c->max_batch * (size_t)c->n_scores,
                                    sizeof(float));
    c->offs = iadsr__malloc(((size_t)c->max_batch + 1) * sizeof(int64_t));
    c->scan = m->et && iadsr__scan_ok();
    size_t words = ((size_t)m->hp.n_items + 63) / 64;
    if (c->scan) {
        c->fill = iadsr__malloc((size_t)c->max_batch * sizeof(int32_t));
        c->excl = iadsr__calloc(words, sizeof(uint64_t));
    }
    int f16 = (cp.flags & IADSR_CTX_F_FP16_SCAN) != 0;
    int i8 = (cp.flags & IADSR_CTX_F_INT8_SCAN) != 0;
    const char *which = f16 ? "IADSR_CTX_F_FP16_SCAN" : "IADSR_CTX_F_INT8_SCAN";
    if ((f16 || i8) && !c->scan) {
        int dim = c->shape.d; /* read before c is freed */
        free_buffers(c);
        iadsr__free(c);
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "ctx_create: %s needs the packed kernels (x86-64 "
                          "with AVX-512, dim a multiple of 16 up to 64; this "
                          "model has dim %d)",
                          which, dim);
    }
    if (f16)
        c->t16 = iadsr__aligned_alloc((size_t)c->shape.d * (size_t)m->ldt,
                                      sizeof(uint16_t));
    if (i8) {
        c->t8 = iadsr__aligned_alloc((size_t)c->shape.d * (size_t)m->ldt, 1);
        c->t8_scale = iadsr__aligned_alloc((size_t)m->ldt, sizeof(float));
    }
    if (f16 || i8) {
        c->cand_ids = iadsr__malloc((size_t)m->hp.n_items * sizeof(int32_t));
        c->cand_s = iadsr__malloc((size_t)m->hp.n_items * sizeof(float));
        c->e1 = m->w + iadsr__layout_find(&m->layout, "item_emb")->offset +
                c->shape.d;
    }
    if (!c->items || !c->kept || !c->pos || !c->row_off || !c->hlast ||
        !c->scores || !c->topk_keys || !c->chunk || !c->offs ||
        (m->et && !c->zl) || (c->scan && (!c->fill || !c->excl)) ||
        (f16 && !c->t16) || (i8 && (!c->t8 || !c->t8_scale)) ||
        ((f16 || i8) && (!c->cand_ids || !c->cand_s))) {
        free_buffers(c);
        iadsr__free(c);
        return iadsr__err(IADSR_ERR_NOMEM, "ctx_create: out of memory");
    }
    if ((f16 && iadsr__table_f16(m->et, c->shape.d, m->ldt, c->t16,
                                 &c->q_err, &c->q_abs) != 0) ||
        (i8 && iadsr__table_i8(m->et, c->shape.d, m->ldt, c->t8, c->t8_scale,
                               &c->q_err, &c->q_abs) != 0)) {
        free_buffers(c);
        iadsr__free(c);
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "ctx_create: %s: the item table has a value %s",
                          which, f16 ? "beyond the fp16 range (|x| > 65504)"
                                     : "that is not finite");
    }
    c->m = iadsr__model_ref(m);
    c->magic = IADSR__MAGIC_CTX;
    *out = c;
    return IADSR_OK;
}

void iadsr_ctx_free(iadsr_ctx *c)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return;
    c->magic = IADSR__MAGIC_DEAD;
    free_buffers(c);
    iadsr_model_free(c->m);
    iadsr__free(c);
}

const iadsr_model *iadsr_ctx_model(const iadsr_ctx *c)
{
    return IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX) ? c->m : NULL;
}

static int check_seq(const iadsr_ctx *c, const int32_t *seq, int64_t n,
                     int64_t user)
{
    int32_t n_items = c->m->hp.n_items;
    for (int64_t i = 0; i < n; i++)
        if (seq[i] < 1 || seq[i] > n_items) {
            if (user >= 0)
                return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                                  "sequence %lld position %lld: item id %d "
                                  "outside 1..%d",
                                  (long long)user, (long long)i, (int)seq[i],
                                  (int)n_items);
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "position %lld: item id %d outside 1..%d",
                              (long long)i, (int)seq[i], (int)n_items);
        }
    return IADSR_OK;
}

int iadsr__ctx_check_batch(const iadsr_ctx *c, const int32_t *items,
                           const int64_t *offsets, int64_t n_users)
{
    if (!items || !offsets)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s is NULL",
                          items ? "offsets" : "items");
    if (n_users < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "n_users must be >= 1 (got %lld)",
                          (long long)n_users);
    if (offsets[0] != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "offsets[0] must be 0");
    for (int64_t u = 0; u < n_users; u++) {
        if (offsets[u + 1] <= offsets[u])
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "sequence %lld is empty or offsets decrease",
                              (long long)u);
        int rc = check_seq(c, items + offsets[u], offsets[u + 1] - offsets[u],
                           u);
        if (rc)
            return rc;
    }
    return IADSR_OK;
}

/* Pack up to max_batch sequences (their last L items), run the encoder and
 * gather each sequence's last hidden state into c->hlast. */
void iadsr__ctx_encode(iadsr_ctx *c, const int32_t *items,
                       const int64_t *offsets, int64_t n_users)
{
    int L = c->shape.max_len, d = c->shape.d;
    int r = 0;
    c->row_off[0] = 0;
    for (int64_t u = 0; u < n_users; u++) {
        int64_t n = offsets[u + 1] - offsets[u];
        const int32_t *s = items + offsets[u];
        if (n > L) {
            s += n - L;
            n = L;
        }
        for (int64_t i = 0; i < n; i++) {
            c->items[r] = s[i];
            c->pos[r] = (int32_t)(L - n + i);
            r++;
        }
        c->row_off[u + 1] = r;
    }
    iadsr__batch b = {(int)n_users, r, c->items, c->pos, c->row_off, NULL, NULL};
    const float *h = c->enc.ops->forward_last(&c->enc, &b);
    memcpy(c->hlast, h, (size_t)n_users * (size_t)d * sizeof(float));
}

/* scores (rows x (n_items+1), leading dimension ld) = hlast . E^T */
void iadsr__ctx_scores(iadsr_ctx *c, int64_t n_users, float *scores,
                       int64_t ld)
{
    int d = c->shape.d, n = c->m->hp.n_items;
    const iadsr_model *m = c->m;
    if (m->et && n_users == 1) {
        iadsr__xent_logits1(c->hlast, d, m->et, m->ldt, c->zl);
        scores[0] = -INFINITY;
        memcpy(scores + 1, c->zl, (size_t)n * sizeof(float));
        return;
    }
    if (m->et) {
        /* several users: the packed-table kernel, then copy into place
         * (rows of the padding up to 8 are zero and ignored) */
        int rows8 = (int)((n_users + 7) / 8 * 8);
        memset(c->hlast + (size_t)n_users * (size_t)d, 0,
               (size_t)(rows8 - n_users) * (size_t)d * sizeof(float));
        iadsr__xent_logits(c->hlast, rows8, d, m->et, m->ldt, c->zl);
        for (int64_t u = 0; u < n_users; u++) {
            scores[u * ld] = -INFINITY;
            memcpy(scores + u * ld + 1, c->zl + (size_t)u * (size_t)m->ldt,
                   (size_t)n * sizeof(float));
        }
        return;
    }
    const float *E1 =
        m->w + iadsr__layout_find(&m->layout, "item_emb")->offset + d;
    iadsr__sgemm(0, 1, (int)n_users, n, d, 1.0f, c->hlast, d, E1, d, 0.0f,
                 scores + 1, (int)ld);
    for (int64_t u = 0; u < n_users; u++)
        scores[u * ld] = -INFINITY;
}

int iadsr_ctx_score(iadsr_ctx *c, const int32_t *seq, int32_t n_seq,
                    float *scores_out, int64_t scores_cap)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "ctx_score: invalid context");
    if (!seq || !scores_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "ctx_score: %s is NULL",
                          seq ? "scores_out" : "seq");
    if (n_seq < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_score: n_seq must be >= 1 (got %d)", (int)n_seq);
    if (scores_cap < c->n_scores)
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "ctx_score: scores_cap %lld < n_items + 1 = %lld",
                          (long long)scores_cap, (long long)c->n_scores);
    int rc = check_seq(c, seq, n_seq, -1);
    if (rc)
        return rc;
    int64_t off[2] = {0, n_seq};
    iadsr__ctx_encode(c, seq, off, 1);
    iadsr__ctx_scores(c, 1, scores_out, c->n_scores);
    return IADSR_OK;
}

int iadsr_ctx_score_batch(iadsr_ctx *c, const int32_t *items,
                          const int64_t *offsets, int64_t n_users,
                          float *scores_out, int64_t scores_cap)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_score_batch: invalid context");
    if (!scores_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_score_batch: scores_out is NULL");
    int rc = iadsr__ctx_check_batch(c, items, offsets, n_users);
    if (rc)
        return iadsr__err_prefix(rc, "ctx_score_batch");
    if (scores_cap / c->n_scores < n_users)
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "ctx_score_batch: scores_cap %lld < n_users * "
                          "(n_items + 1) = %lld * %lld",
                          (long long)scores_cap, (long long)n_users,
                          (long long)c->n_scores);
    for (int64_t u0 = 0; u0 < n_users; u0 += c->max_batch) {
        int64_t nb = n_users - u0 < c->max_batch ? n_users - u0 : c->max_batch;
        /* offsets of the chunk are relative to items + offsets[u0] */
        iadsr__ctx_encode_range(c, items, offsets + u0, nb);
        iadsr__ctx_scores(c, nb, scores_out + u0 * c->n_scores, c->n_scores);
    }
    return IADSR_OK;
}

void iadsr__ctx_encode_range(iadsr_ctx *c, const int32_t *items,
                             const int64_t *offsets, int64_t n_users)
{
    /* offsets[0] need not be 0: rebase into the context's own array */
    int64_t base = offsets[0];
    for (int64_t u = 0; u <= n_users; u++)
        c->offs[u] = offsets[u] - base;
    iadsr__ctx_encode(c, items + base, c->offs, n_users);
}

/* ---- user vectors ----------------------------------------------------------- */

/* The scores above are hlast . E^T with nothing added, so the last hidden
 * state itself is the user's side of that dot product. */
int iadsr_ctx_user_vector(iadsr_ctx *c, const int32_t *seq, int32_t n_seq,
                          float *out)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_user_vector: invalid context");
    if (!seq || !out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "ctx_user_vector: %s is NULL",
                          seq ? "out" : "seq");
    if (n_seq < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_user_vector: n_seq must be >= 1 (got %d)",
                          (int)n_seq);
    int rc = check_seq(c, seq, n_seq, -1);
    if (rc)
        return iadsr__err_prefix(rc, "ctx_user_vector");
    int64_t off[2] = {0, n_seq};
    iadsr__ctx_encode(c, seq, off, 1);
    memcpy(out, c->hlast, (size_t)c->shape.d * sizeof(float));
    return IADSR_OK;
}

int iadsr_ctx_user_vector_batch(iadsr_ctx *c, const int32_t *items,
                                const int64_t *offsets, int64_t n_users,
                                float *out)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_user_vector_batch: invalid context");
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_user_vector_batch: out is NULL");
    /* everything is validated before the first row is written */
    int rc = iadsr__ctx_check_batch(c, items, offsets, n_users);
    if (rc)
        return iadsr__err_prefix(rc, "ctx_user_vector_batch");
    size_t d = (size_t)c->shape.d;
    for (int64_t u0 = 0; u0 < n_users; u0 += c->max_batch) {
        int64_t nb = n_users - u0 < c->max_batch ? n_users - u0 : c->max_batch;
        iadsr__ctx_encode_range(c, items, offsets + u0, nb);
        memcpy(out + (size_t)u0 * d, c->hlast, (size_t)nb * d * sizeof(float));
    }
    return IADSR_OK;
}

/* ---- top-K ------------------------------------------------------------------ */

static int topk_args(const iadsr_ctx *c, int32_t k, uint32_t flags,
                     const int32_t *ids_out, const char *fn)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid context", fn);
    if (!ids_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: ids_out is NULL", fn);
    if (k < 1 || k > c->m->hp.n_items)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: k must be in 1..%d (got %d)", fn,
                          (int)c->m->hp.n_items, (int)k);
    if (flags & ~IADSR_TOPK_EXCLUDE_HISTORY)
        return iadsr__err(IADSR_ERR_UNSUPPORTED, "%s: unknown flags 0x%x", fn,
                          (unsigned)flags);
    return IADSR_OK;
}

/* s0[j - 1] is the score of item j (clobbered by the exclusion). */
static void topk_one(iadsr_ctx *c, float *s0, const int32_t *seq, int64_t n,
                     int32_t k, uint32_t flags, int32_t *ids_out,
                     float *scores_out)
{
    if (flags & IADSR_TOPK_EXCLUDE_HISTORY)
        for (int64_t i = 0; i < n; i++)
            s0[seq[i] - 1] = -INFINITY;
    /* the heap keys need k floats: the caller's buffer or the context's */
    iadsr__topk(s0, c->m->hp.n_items, k, ids_out,
                scores_out ? scores_out : c->topk_keys);
}

int iadsr_ctx_topk(iadsr_ctx *c, const int32_t *seq, int32_t n_seq, int32_t k,
                   uint32_t flags, int32_t *ids_out, float *scores_out)
{
    int rc = topk_args(c, k, flags, ids_out, "ctx_topk");
    if (rc)
        return rc;
    if (!c->scan) {
        if ((rc = iadsr_ctx_score(c, seq, n_seq, c->scores, c->n_scores)))
            return iadsr__err_prefix(rc, "ctx_topk");
        topk_one(c, c->scores + 1, seq, n_seq, k, flags, ids_out, scores_out);
        return IADSR_OK;
    }
    /* the fused scan: as iadsr_ctx_score() then the selection, in one pass */
    if (!seq)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "ctx_topk: seq is NULL");
    if (n_seq < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "ctx_topk: n_seq must be >= 1 (got %d)", (int)n_seq);
    if ((rc = check_seq(c, seq, n_seq, -1)))
        return iadsr__err_prefix(rc, "ctx_topk");
    int64_t off[2] = {0, n_seq};
    iadsr__ctx_encode(c, seq, off, 1);
    int excl = (flags & IADSR_TOPK_EXCLUDE_HISTORY) != 0;
    if (excl)
        for (int32_t i = 0; i < n_seq; i++)
            c->excl[(seq[i] - 1) / 64] |= 1ull << ((seq[i] - 1) & 63);
    float *keys = scores_out ? scores_out : c->topk_keys;
    const iadsr_model *m = c->m;
    int done = 0;
    if (c->t16 || c->t8) {
        iadsr__scan_q s = {c->hlast, c->shape.d, c->e1, c->t16, c->t8,
                           c->t8_scale, m->ldt, c->q_err, c->q_abs,
                           m->hp.n_items, k, excl ? c->excl : NULL,
                           c->cand_ids, c->cand_s, ids_out, keys};
        done = iadsr__scan_topk1_q(&s) == 0;
    }
    if (!done)
        iadsr__scan_topk1(c->hlast, c->shape.d, m->et, m->ldt, m->hp.n_items,
                          k, excl ? c->excl : NULL, ids_out, keys);
    if (excl)
        for (int32_t i = 0; i < n_seq; i++)
            c->excl[(seq[i] - 1) / 64] = 0;
    return IADSR_OK;
}

int iadsr_ctx_topk_batch(iadsr_ctx *c, const int32_t *items,
                         const int64_t *offsets, int64_t n_users, int32_t k,
                         uint32_t flags, int32_t *ids_out, float *scores_out)
{
    int rc = topk_args(c, k, flags, ids_out, "ctx_topk_batch");
    if (rc)
        return rc;
    if ((rc = iadsr__ctx_check_batch(c, items, offsets, n_users)))
        return iadsr__err_prefix(rc, "ctx_topk_batch");
    for (int64_t u0 = 0; u0 < n_users; u0 += c->max_batch) {
        int64_t nb = n_users - u0 < c->max_batch ? n_users - u0 : c->max_batch;
        iadsr__ctx_encode_range(c, items, offsets + u0, nb);
        if (c->scan) {
            /* scores and selection fused; rows up to a multiple of 8 zero */
            int d = c->shape.d, rows8 = (int)((nb + 7) / 8 * 8);
            memset(c->hlast + (size_t)nb * (size_t)d, 0,
                   (size_t)(rows8 - nb) * (size_t)d * sizeof(float));
            int excl = (flags & IADSR_TOPK_EXCLUDE_HISTORY) != 0;
            iadsr__scan_batch s = {
                c->hlast, (int)nb, d, c->m->et, c->m->ldt, c->m->hp.n_items, k,
                excl ? items : NULL, offsets + u0, ids_out + u0 * k,
                scores_out ? scores_out + u0 * k : c->chunk, c->fill};
            iadsr__scan_topk_batch(&s);
            continue;
        }
        /* score rows: the packed kernel's output is used in place */
        float *rows;
        int64_t ld;
        if (c->m->et) {
            int rows8 = (int)((nb + 7) / 8 * 8);
            int d = c->shape.d;
            memset(c->hlast + (size_t)nb * (size_t)d, 0,
                   (size_t)(rows8 - nb) * (size_t)d * sizeof(float));
            iadsr__xent_logits(c->hlast, rows8, d, c->m->et, c->m->ldt, c->zl);
            rows = c->zl;
            ld = c->m->ldt;
        } else {
            iadsr__ctx_scores(c, nb, c->chunk, c->n_scores);
            rows = c->chunk + 1;
            ld = c->n_scores;
        }
        for (int64_t u = 0; u < nb; u++) {
            const int32_t *s = items + offsets[u0 + u];
            topk_one(c, rows + u * ld, s,
                     offsets[u0 + u + 1] - offsets[u0 + u], k, flags,
                     ids_out + (u0 + u) * k,
                     scores_out ? scores_out + (u0 + u) * k : NULL);
        }
    }
    return IADSR_OK;
}

/* ---- top-K requests (iadsr_ctx_topk_v2, iadsr_ctx_topk_batch_v2) --------- */

#define TOPK_V2_FLAGS (IADSR_TOPK_EXCLUDE_HISTORY | IADSR_TOPK_SKIP_UNKNOWN)

/* The 0.3.0 layout (docs/ABI.md: fields are only ever appended). Pointers
 * make it 72 bytes on 64-bit targets; elsewhere only the size differs. */
#if UINTPTR_MAX > 0xffffffffu
_Static_assert(sizeof(iadsr_topk_params) == 72, "iadsr_topk_params size");
#define IADSR__LAYOUT iadsr_topk_params
IADSR__AT(struct_size, 0) IADSR__AT(flags, 4) IADSR__AT(cold_item_scores, 8)
IADSR__AT(n_cold_item_scores, 16) IADSR__AT(cold_user_vector, 24)
IADSR__AT(cold_user_vector_dim, 32) IADSR__AT(allow_ids, 40)
IADSR__AT(n_allow, 48) IADSR__AT(deny_ids, 56) IADSR__AT(n_deny, 64)
#undef IADSR__LAYOUT
#endif

static const iadsr_topk_params topk_defaults = {
    .struct_size = sizeof(iadsr_topk_params),
    .flags = 0,
    .cold_item_scores = NULL,
    .n_cold_item_scores = 0,
    .cold_user_vector = NULL,
    .cold_user_vector_dim = 0,
    .allow_ids = NULL,
    .n_allow = 0,
    .deny_ids = NULL,
    .n_deny = 0,
};

void iadsr_topk_params_init(iadsr_topk_params *p)
{
    if (p)
        *p = topk_defaults;
}

static int valid_id(int32_t id, int32_t n_items)
{
    return id >= 1 && id <= n_items;
}

/* An optional array and its count: count >= 0, NULL only with count 0. */
static int check_array(const char *w, const char *arr, const void *p,
                       const char *count, int64_t n)
{
    if (n < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s.%s = %lld is negative",
                          w, count, (long long)n);
    if (!p && n != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.%s is NULL but %s = %lld", w, arr, count,
                          (long long)n);
    return IADSR_OK;
}

static int check_id_list(const char *w, const char *arr, const int32_t *ids,
                         const char *count, int64_t n, int32_t n_items)
{
    TRY(check_array(w, arr, ids, count, n));
    for (int64_t i = 0; i < n; i++)
        if (!valid_id(ids[i], n_items))
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s.%s[%lld] = %d is outside 1..%d", w, arr,
                              (long long)i, (int)ids[i], (int)n_items);
    return IADSR_OK;
}

static int check_request(const iadsr_ctx *c, const iadsr_topk_params *r,
                         const char *w)
{
    int32_t n_items = c->m->hp.n_items;
    int d = c->shape.d;
    TRY(iadsr__check_flags(w, r->flags, TOPK_V2_FLAGS));
    TRY(check_array(w, "cold_item_scores", r->cold_item_scores,
                    "n_cold_item_scores", r->n_cold_item_scores));
    TRY(check_array(w, "cold_user_vector", r->cold_user_vector,
                    "cold_user_vector_dim", r->cold_user_vector_dim));
    if (r->cold_item_scores && r->cold_user_vector)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: cold_item_scores and cold_user_vector are "
                          "both set (give at most one cold-user fallback)",
                          w);
    if (r->cold_item_scores && r->n_cold_item_scores != c->n_scores)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "%s.n_cold_item_scores = %lld, expected n_items + "
                          "1 = %lld (one score per item id, entry 0 "
                          "ignored)",
                          w, (long long)r->n_cold_item_scores,
                          (long long)c->n_scores);
    if (r->cold_user_vector) {
        if (r->cold_user_vector_dim != d)
            return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                              "%s.cold_user_vector_dim = %lld, expected the "
                              "model's dim %d",
                              w, (long long)r->cold_user_vector_dim, d);
        for (int i = 0; i < d; i++)
            if (!isfinite(r->cold_user_vector[i]))
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "%s.cold_user_vector[%d] = %g is not "
                                  "finite",
                                  w, i, (double)r->cold_user_vector[i]);
    }
    TRY(check_id_list(w, "allow_ids", r->allow_ids, "n_allow", r->n_allow,
                      n_items));
    TRY(check_id_list(w, "deny_ids", r->deny_ids, "n_deny", r->n_deny,
                      n_items));
    return IADSR_OK;
}

/* The caller's request over the defaults, validated; errors are prefixed
 * with @p fn. */
static int topk_request_get(const iadsr_ctx *c, iadsr_topk_params *r,
                            const iadsr_topk_params *p, const char *fn)
{
    static const char w[] = "iadsr_topk_params";
    int rc = iadsr__params_overlay(r, &topk_defaults, sizeof topk_defaults,
                                   sizeof topk_defaults, p, w);
    if (rc == IADSR_OK)
        rc = check_request(c, r, w);
    return rc == IADSR_OK ? IADSR_OK : iadsr__err_prefix(rc, "%s", fn);
}

static int has_fallback(const iadsr_topk_params *r)
{
    return r->cold_item_scores != NULL || r->cold_user_vector != NULL;
}

static int topk_v2_args(const iadsr_ctx *c, int32_t k, const int32_t *ids_out,
                        const char *fn)
{
    if (!IADSR__HANDLE_IS(c, IADSR__MAGIC_CTX))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid context", fn);
    if (!ids_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: ids_out is NULL", fn);
    if (k < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: k must be >= 1 (got %d)",
                          fn, (int)k);
    return IADSR_OK;
}

/* Validate one history against the request; *n_valid_out receives the
 * number of ids in 1..n_items (all of them without SKIP_UNKNOWN). */
static int scan_history(const iadsr_ctx *c, const iadsr_topk_params *r,
                        const int32_t *seq, int64_t n, int64_t user,
                        int64_t *n_valid_out)
{
    int32_t n_items = c->m->hp.n_items;
    int64_t n_valid = n;
    if (r->flags & IADSR_TOPK_SKIP_UNKNOWN) {
        n_valid = 0;
        for (int64_t i = 0; i < n; i++)
            n_valid += valid_id(seq[i], n_items);
    } else {
        TRY(check_seq(c, seq, n, user));
    }
    if (n_valid == 0 && !has_fallback(r)) {
        char who[48] = "the history";
        if (user >= 0)
            snprintf(who, sizeof who, "sequence %lld", (long long)user);
        if (n == 0)
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s is empty and the request has no cold-user "
                              "fallback (cold_item_scores or "
                              "cold_user_vector)",
                              who);
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s is empty once its %lld unknown ids are "
                          "skipped, and the request has no cold-user "
                          "fallback (cold_item_scores or cold_user_vector)",
                          who, (long long)n);
    }
    *n_valid_out = n_valid;
    return IADSR_OK;
}

/* Copy the last L valid ids of @p seq, in order, to @p dst; their count. */
static int32_t pack_last_valid(const int32_t *seq, int64_t n, int32_t n_items,
                               int L, int32_t *dst)
{
    int32_t m = 0;
    int64_t i = n;
    while (i > 0 && m < L)
        m += valid_id(seq[--i], n_items);
    int32_t j = 0;
    for (; i < n; i++)
        if (valid_id(seq[i], n_items))
            dst[j++] = seq[i];
    return m;
}

/* Top-K of one score row under the request. row[j - 1] is the score of
 * item j (clobbered); @p mask is n_items floats of scratch for the
 * allow-list. Exclusion of the history ignores ids outside 1..n_items.
 * Returns the number of results; the rest of the k entries is padding. */
static int32_t finish_row(iadsr_ctx *c, const iadsr_topk_params *r,
                          float *row, float *mask, const int32_t *hist,
                          int64_t n_hist, int32_t k, int32_t *ids_out,
                          float *scores_out)
{
    int32_t n_items = c->m->hp.n_items;
    float *s0 = row;
    if (r->allow_ids) {
        for (int32_t j = 0; j < n_items; j++)
            mask[j] = -INFINITY;
        for (int64_t i = 0; i < r->n_allow; i++)
            mask[r->allow_ids[i] - 1] = row[r->allow_ids[i] - 1];
        s0 = mask;
    }
    for (int64_t i = 0; i < r->n_deny; i++)
        s0[r->deny_ids[i] - 1] = -INFINITY;
    if (r->flags & IADSR_TOPK_EXCLUDE_HISTORY)
        for (int64_t i = 0; i < n_hist; i++)
            if (valid_id(hist[i], n_items))
                s0[hist[i] - 1] = -INFINITY;
    /* at most n_items can rank: the heap (and the context's keys, n_items
     * + 1 floats) never needs more */
    int32_t kk = k < n_items ? k : n_items;
    iadsr__topk(s0, n_items, kk, ids_out, scores_out ? scores_out
                                                     : c->topk_keys);
    int32_t n_found = 0;
    while (n_found < kk && ids_out[n_found] != -1)
        n_found++;
    for (int32_t i = kk; i < k; i++) {
        ids_out[i] = -1;
        if (scores_out)
            scores_out[i] = -INFINITY;
    }
    return n_found;
}

/* The answer for an empty history, from the request's fallback. Uses the
 * context's hlast, zl, scores and chunk. */
static int32_t cold_row(iadsr_ctx *c, const iadsr_topk_params *r, int32_t k,
                        int32_t *ids_out, float *scores_out)
{
    if (r->cold_item_scores) {
        memcpy(c->scores + 1, r->cold_item_scores + 1,
               (size_t)c->m->hp.n_items * sizeof(float));
    } else {
        /* as iadsr_ctx_score() scores the h it encodes */
        memcpy(c->hlast, r->cold_user_vector,
               (size_t)c->shape.d * sizeof(float));
        iadsr__ctx_scores(c, 1, c->scores, c->n_scores);
    }
    return finish_row(c, r, c->scores + 1, c->chunk + 1, NULL, 0, k, ids_out,
                      scores_out);
}

int iadsr_ctx_topk_v2(iadsr_ctx *c, const int32_t *seq, int32_t n_seq,
                      int32_t k, const iadsr_topk_params *p, int32_t *ids_out,
                      float *scores_out, int32_t *n_found_out,
                      int32_t *n_skipped_out)
{
    static const char fn[] = "ctx_topk_v2";
    iadsr_topk_params r;
    TRY(topk_v2_args(c, k, ids_out, fn));
    if (n_seq < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_seq must be >= 0 (got %d)", fn, (int)n_seq);
    if (!seq && n_seq > 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: seq is NULL but n_seq = %d", fn, (int)n_seq);
    TRY(topk_request_get(c, &r, p, fn));
    int64_t n_valid = 0;
    int rc = scan_history(c, &r, seq, n_seq, -1, &n_valid);
    if (rc)
        return iadsr__err_prefix(rc, "%s", fn);
    int32_t n_found;
    if (n_valid == 0) {
        n_found = cold_row(c, &r, k, ids_out, scores_out);
    } else {
        /* the ids iadsr_ctx_score() would encode for the history without
         * its unknown ids: the last max_seq_len of them */
        int64_t off[2] = {0, 0};
        off[1] = pack_last_valid(seq, n_seq, c->m->hp.n_items,
                                 c->shape.max_len, c->kept);
        iadsr__ctx_encode(c, c->kept, off, 1);
        iadsr__ctx_scores(c, 1, c->scores, c->n_scores);
        n_found = finish_row(c, &r, c->scores + 1, c->chunk + 1, seq, n_seq,
                             k, ids_out, scores_out);
    }
    if (n_found_out)
        *n_found_out = n_found;
    if (n_skipped_out)
        *n_skipped_out = (int32_t)(n_seq - n_valid);
    return IADSR_OK;
}

int iadsr_ctx_topk_batch_v2(iadsr_ctx *c, const int32_t *items,
                            const int64_t *offsets, int64_t n_users,
                            int32_t k, const iadsr_topk_params *p,
                            int32_t *ids_out, float *scores_out,
                            int64_t out_cap, int32_t *n_found_out,
                            int64_t *n_skipped_out)
{
    static const char fn[] = "ctx_topk_batch_v2";
    iadsr_topk_params r;
    TRY(topk_v2_args(c, k, ids_out, fn));
    if (!offsets)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: offsets is NULL", fn);
    if (n_users < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_users must be >= 1 (got %lld)", fn,
                          (long long)n_users);
    if (out_cap < 0 || out_cap / n_users < k) {
        if (n_users > INT64_MAX / k)
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: n_users * k = %lld * %d overflows", fn,
                              (long long)n_users, (int)k);
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "%s: out_cap %lld is too small: ids_out and "
                          "scores_out need n_users * k = %lld * %d = %lld "
                          "entries",
                          fn, (long long)out_cap, (long long)n_users, (int)k,
                          (long long)(n_users * k));
    }
    if (offsets[0] != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: offsets[0] must be 0",
                          fn);
    for (int64_t u = 0; u < n_users; u++)
        if (offsets[u + 1] < offsets[u])
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: offsets decrease at sequence %lld", fn,
                              (long long)u);
    if (!items && offsets[n_users] > 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: items is NULL but offsets[n_users] = %lld", fn,
                          (long long)offsets[n_users]);
    TRY(topk_request_get(c, &r, p, fn));
    /* everything is validated before the first row is written */
    int64_t first_cold = -1;
    for (int64_t u = 0; u < n_users; u++) {
        int64_t n_valid = 0;
        int rc = scan_history(c, &r, items ? items + offsets[u] : NULL,
                              offsets[u + 1] - offsets[u], u, &n_valid);
        if (rc)
            return iadsr__err_prefix(rc, "%s", fn);
        if (n_valid == 0 && first_cold < 0)
            first_cold = u;
    }
    int32_t n_items = c->m->hp.n_items;
    int L = c->shape.max_len, d = c->shape.d;
    /* every cold user gets the same row: compute it once */
    int32_t cold_found = 0;
    if (first_cold >= 0)
        cold_found = cold_row(c, &r, k, ids_out + first_cold * k,
                              scores_out ? scores_out + first_cold * k : NULL);
    for (int64_t u0 = 0; u0 < n_users; u0 += c->max_batch) {
        int64_t nb = n_users - u0 < c->max_batch ? n_users - u0 : c->max_batch;
        /* pack the warm users of the chunk (last L valid ids each) */
        int64_t nw = 0;
        c->offs[0] = 0;
        for (int64_t u = u0; u < u0 + nb; u++) {
            int64_t n = offsets[u + 1] - offsets[u];
            if (n == 0)
                continue;
            int32_t m = pack_last_valid(items + offsets[u], n, n_items, L,
                                        c->kept + c->offs[nw]);
            if (m > 0) {
                c->offs[nw + 1] = c->offs[nw] + m;
                nw++;
            }
        }
        float *rows = NULL;
        int64_t ld = 0;
        if (nw > 0) {
            iadsr__ctx_encode(c, c->kept, c->offs, nw);
            /* as iadsr_ctx_topk_batch(): the packed kernel's rows in place */
            if (c->m->et) {
                int rows8 = (int)((nw + 7) / 8 * 8);
                memset(c->hlast + (size_t)nw * (size_t)d, 0,
                       (size_t)(rows8 - nw) * (size_t)d * sizeof(float));
                iadsr__xent_logits(c->hlast, rows8, d, c->m->et, c->m->ldt,
                                   c->zl);
                rows = c->zl;
                ld = c->m->ldt;
            } else {
                iadsr__ctx_scores(c, nw, c->chunk, c->n_scores);
                rows = c->chunk + 1;
                ld = c->n_scores;
            }
        }
        int64_t w = 0;
        for (int64_t u = u0; u < u0 + nb; u++) {
            const int32_t *s = items ? items + offsets[u] : NULL;
            int64_t n = offsets[u + 1] - offsets[u];
            int64_t n_valid = n;
            if (n > 0 && (r.flags & IADSR_TOPK_SKIP_UNKNOWN)) {
                n_valid = 0;
                for (int64_t i = 0; i < n; i++)
                    n_valid += valid_id(s[i], n_items);
            }
            int32_t n_found = cold_found;
            if (n_valid > 0) {
                n_found = finish_row(c, &r, rows + w * ld, c->scores + 1, s,
                                     n, k, ids_out + u * k,
                                     scores_out ? scores_out + u * k : NULL);
                w++;
            } else if (u != first_cold) {
                memcpy(ids_out + u * k, ids_out + first_cold * k,
                       (size_t)k * sizeof(int32_t));
                if (scores_out)
                    memcpy(scores_out + u * k, scores_out + first_cold * k,
                           (size_t)k * sizeof(float));
            }
            if (n_found_out)
                n_found_out[u] = n_found;
            if (n_skipped_out)
                n_skipped_out[u] = n - n_valid;
        }
    }
    return IADSR_OK;
}
