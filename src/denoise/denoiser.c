/* libiadsr - the denoiser: the gate's inference rule on whole sequences
 * (one at a time or a dataset across threads).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/denoise.h"
#include "common/fork_join.h"
#include "backbone/encoder.h"
#include "common/params.h"
#include "denoise/heads.h"
#include "common/error.h"
#include "data/dataset.h"
#include "common/handle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dn_ok(const iadsr_denoiser *dn)
{
    return IADSR__HANDLE_IS(dn, IADSR__MAGIC_DENOISER);
}

static const char *backbone_name(int32_t b)
{
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(b);
    return ops ? ops->name : "unknown";
}

/* A trained part's record against the model and the semantic matrix
 * (@p fp: the matrix's fingerprint over the model's items, computed once
 * by the caller when *have_fp is 0). */
static int check_provenance(const char *w, const char *part,
                            const iadsr__provenance *pv, const iadsr_model *m,
                            const iadsr_semantic *sem, uint64_t *fp,
                            int *have_fp)
{
    if (!pv->known)
        return IADSR_OK;
    if (pv->backbone != m->hp.backbone || pv->n_items != m->hp.n_items)
        return iadsr__err(IADSR_ERR_MISMATCH,
                          "%s: the %s was trained with a %s backbone of %d "
                          "items, the model is a %s of %d items (pass "
                          "IADSR_DENOISER_ALLOW_MISMATCH to combine them "
                          "anyway)",
                          w, part, backbone_name(pv->backbone),
                          (int)pv->n_items, backbone_name(m->hp.backbone),
                          (int)m->hp.n_items);
    if (!*have_fp) {
        *fp = iadsr__semantic_fingerprint(sem, m->hp.n_items);
        *have_fp = 1;
    }
    if (pv->sem_fp != *fp)
        return iadsr__err(IADSR_ERR_MISMATCH,
                          "%s: the %s was trained with another semantic "
                          "matrix (the rows of items 1..%d differ: "
                          "fingerprint %016llx, this matrix %016llx; pass "
                          "IADSR_DENOISER_ALLOW_MISMATCH to combine them "
                          "anyway)",
                          w, part, (int)m->hp.n_items,
                          (unsigned long long)pv->sem_fp,
                          (unsigned long long)*fp);
    return IADSR_OK;
}

int iadsr_denoiser_create(iadsr_denoiser **out, const iadsr_model *m,
                          const iadsr_aligner *a, const iadsr_gate *g,
                          const iadsr_semantic *sem)
{
    return iadsr_denoiser_create_v2(out, m, a, g, sem, 0);
}

int iadsr_denoiser_create_v2(iadsr_denoiser **out, const iadsr_model *m,
                             const iadsr_aligner *a, const iadsr_gate *g,
                             const iadsr_semantic *sem, uint32_t flags)
{
    static const char w[] = "denoiser_create";
    IADSR__OUT_CLEAR(out, w);
    if (flags & ~(uint32_t)IADSR_DENOISER_ALLOW_MISMATCH)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: unknown flag bits 0x%x", w,
                          (unsigned)(flags &
                                     ~(uint32_t)IADSR_DENOISER_ALLOW_MISMATCH));
    TRY(iadsr__check_handle(iadsr__model_ok(m), w, "model"));
    TRY(iadsr__check_handle(iadsr__aligner_ok(a), w, "aligner"));
    TRY(iadsr__check_handle(iadsr__gate_ok(g), w, "gate"));
    TRY(iadsr__check_handle(iadsr__semantic_ok(sem), w, "semantic"));
    if (a->dim != m->hp.dim || g->dim != m->hp.dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "denoiser_create: model d = %d, aligner d = %d, "
                          "gate d = %d",
                          (int)m->hp.dim, (int)a->dim, (int)g->dim);
    if (a->sem_dim != sem->dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "denoiser_create: the aligner expects D = %d but "
                          "the semantic matrix has D = %d",
                          (int)a->sem_dim, (int)sem->dim);
    if (sem->n_items < m->hp.n_items)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "denoiser_create: the semantic matrix has %d items "
                          "but the model has %d",
                          (int)sem->n_items, (int)m->hp.n_items);
    if (!(flags & IADSR_DENOISER_ALLOW_MISMATCH)) {
        uint64_t fp = 0;
        int have_fp = 0;
        TRY(check_provenance(w, "aligner", &a->prov, m, sem, &fp, &have_fp));
        TRY(check_provenance(w, "gate", &g->prov, m, sem, &fp, &have_fp));
    }
    iadsr_denoiser *dn = iadsr__calloc(1, sizeof *dn);
    if (!dn)
        return iadsr__err(IADSR_ERR_NOMEM, "denoiser_create: out of memory");
    dn->magic = IADSR__MAGIC_DENOISER;
    dn->m = iadsr__model_ref(m);
    dn->a = iadsr__aligner_ref(a);
    dn->g = iadsr__gate_ref(g);
    dn->s = iadsr__semantic_ref(sem);
    *out = dn;
    return IADSR_OK;
}

void iadsr_denoiser_free(iadsr_denoiser *dn)
{
    if (!dn_ok(dn))
        return;
    dn->magic = IADSR__MAGIC_DEAD;
    iadsr_model_free(dn->m);
    iadsr_aligner_free(dn->a);
    iadsr_gate_free(dn->g);
    iadsr__semantic_unref(dn->s);
    iadsr__free(dn);
}

/* ---- per-thread scratch for sequences of up to max_n items ----------------- */

typedef struct dn_ws {
    int max_n, max_rows, enc_live;
    iadsr__encoder enc;
    iadsr__heads_ws s2;
    int32_t *items, *pos, *row_off, *order;
    float *h, *score;
} dn_ws;

/* Windows for a sequence of n items and model length L: window k starts at
 * k * half and is at most L long; position t >= L reads window
 * (t - L) / half + 1, so it sees at least L - half earlier items. */
static int n_windows(int n, int L, int half)
{
    return n <= L ? 1 : (n - 1 - L) / half + 2;
}

static int window_rows(int n, int L)
{
    int half = L / 2 > 0 ? L / 2 : 1, K = n_windows(n, L, half), rows = 0;
    for (int k = 0; k < K; k++) {
        int s = k * half, e = s + L < n ? s + L : n;
        rows += e - s;
    }
    return rows;
}

static void ws_free(dn_ws *w)
{
    if (w->enc_live)
        iadsr__encoder_destroy(&w->enc);
    iadsr__heads_ws_free(&w->s2);
    IADSR__FREE_ALL(w->items, w->pos, w->row_off, w->order);
    IADSR__ALIGNED_FREE_ALL(w->h, w->score);
    memset(w, 0, sizeof *w);
}

static int ws_alloc(dn_ws *w, const iadsr_denoiser *dn, int max_n)
{
    memset(w, 0, sizeof *w);
    const iadsr_model *m = dn->m;
    int L = m->hp.max_seq_len, d = m->hp.dim;
    int half = L / 2 > 0 ? L / 2 : 1;
    w->max_n = max_n;
    w->max_rows = window_rows(max_n, L);
    int K = n_windows(max_n, L, half);
    int rc = iadsr__encoder_create(&w->enc, &m->hp, &m->layout, m->w, NULL,
                                   w->max_rows, max_n < L ? max_n : L, 0);
    if (rc)
        return rc;
    w->enc_live = 1;
    if ((rc = iadsr__heads_ws_alloc(&w->s2, max_n, 1, d, dn->a->sem_dim,
                                     0)) ||
        ((dn->g->p.flags & IADSR_DENOISE_F_DETECT) &&
         (rc = iadsr__heads_ws_ctx(&w->s2, m->hp.n_items)))) {
        ws_free(w);
        return rc;
    }
    w->items = iadsr__malloc((size_t)w->max_rows * sizeof(int32_t));
    w->pos = iadsr__malloc((size_t)w->max_rows * sizeof(int32_t));
    w->row_off = iadsr__malloc(((size_t)K + 1) * sizeof(int32_t));
    w->order = iadsr__malloc((size_t)max_n * sizeof(int32_t));
    w->h = iadsr__aligned_alloc((size_t)max_n * (size_t)d, sizeof(float));
    w->score = iadsr__aligned_alloc((size_t)max_n, sizeof(float));
    if (!w->items || !w->pos || !w->row_off || !w->order || !w->h ||
        !w->score) {
        ws_free(w);
        return iadsr__err(IADSR_ERR_NOMEM, "denoiser: out of memory");
    }
    return IADSR_OK;
}

/* Scores of the n items of seq (valid ids) into w->score, keep into keep;
 * returns the number kept. */
static int32_t clean_one(const iadsr_denoiser *dn, dn_ws *w,
                         const int32_t *seq, int n, const float *uvec,
                         uint8_t *keep)
{
    const iadsr_model *m = dn->m;
    int L = m->hp.max_seq_len, d = m->hp.dim;
    int half = L / 2 > 0 ? L / 2 : 1, K = n_windows(n, L, half), r = 0;
    w->row_off[0] = 0;
    for (int k = 0; k < K; k++) {
        int s = k * half, e = s + L < n ? s + L : n;
        for (int t = s; t < e; t++) {
            w->items[r] = seq[t];
            w->pos[r] = L - (e - s) + (t - s); /* left-padded positions */
            r++;
        }
        w->row_off[k + 1] = r;
    }
    iadsr__batch b = {K, r, w->items, w->pos, w->row_off, NULL, NULL};
    const float *h = w->enc.ops->forward(&w->enc, &b, NULL);
    for (int t = 0; t < n; t++) {
        int k = t < L ? 0 : (t - L) / half + 1;
        int row = w->row_off[k] + (t - k * half);
        memcpy(w->h + (size_t)t * (size_t)d, h + (size_t)row * (size_t)d,
               (size_t)d * sizeof(float));
    }
    int32_t off1[2] = {0, n};
    iadsr__batch one = {1, n, seq, NULL, off1, NULL, NULL};
    /* inference: the loss weights play no part in the scores */
    iadsr__heads st = {.d = d,
                       .D = dn->a->sem_dim,
                       .sem = dn->s,
                       .w1 = dn->a->w1,
                       .w2 = dn->a->w2,
                       .wd = dn->g->wd,
                       .bd = dn->g->bd,
                       .tau_align = dn->a->tau_align,
                       .tau_gumbel = dn->g->p.tau_gumbel,
                       .flags = dn->g->p.flags,
                       .e1 = m->w +
                             iadsr__layout_find(&m->layout, "item_emb")->offset +
                             d,
                       .n_items = m->hp.n_items};
    const float *uv[1] = {uvec};
    if (dn->g->p.flags & IADSR_DENOISE_F_DETECT)
        iadsr__heads_detect(&st, &w->s2, w->h, &one, uv, dn->g->det,
                            w->score);
    else
        iadsr__heads_scores(&st, &w->s2, w->h, &one, uv, w->score);
    return iadsr__gate_decide(&dn->g->p, w->score, n, keep, w->order);
}

int iadsr_denoiser_clean(const iadsr_denoiser *dn, const int32_t *seq,
                         int32_t n, const float *user_vec, uint8_t *keep,
                         float *scores, int32_t *cleaned, int32_t *n_kept)
{
    TRY(iadsr__check_handle(dn_ok(dn), "denoiser_clean", "denoiser"));
    if (!seq)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "denoiser_clean: seq is NULL");
    if (n < 1)
        return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                          "denoiser_clean: n = %d, need at least 1 item",
                          (int)n);
    int32_t ni = dn->m->hp.n_items;
    for (int32_t t = 0; t < n; t++)
        if (seq[t] < 1 || seq[t] > ni)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "denoiser_clean: seq[%d] = %d is outside "
                              "1..%d",
                              (int)t, (int)seq[t], (int)ni);
    if (user_vec)
        for (int32_t c = 0; c < dn->a->sem_dim; c++)
            if (!isfinite(user_vec[c]))
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "denoiser_clean: user_vec[%d] is not "
                                  "finite",
                                  (int)c);
    dn_ws w;
    int rc = ws_alloc(&w, dn, n);
    if (rc)
        return rc;
    uint8_t *k = iadsr__malloc((size_t)n);
    if (!k) {
        ws_free(&w);
        return iadsr__err(IADSR_ERR_NOMEM, "denoiser_clean: out of memory");
    }
    int32_t kept = clean_one(dn, &w, seq, n, user_vec, k);
    /* outputs only now: nothing is written on failure; copy the cleaned
     * sequence before keep/scores in case the caller aliased seq */
    if (cleaned) {
        int32_t j = 0;
        for (int32_t t = 0; t < n; t++)
            if (k[t])
                cleaned[j++] = seq[t];
    }
    if (keep)
        memcpy(keep, k, (size_t)n);
    if (scores)
        memcpy(scores, w.score, (size_t)n * sizeof(float));
    if (n_kept)
        *n_kept = kept;
    iadsr__free(k);
    ws_free(&w);
    return IADSR_OK;
}

/* ---- datasets ------------------------------------------------------------------ */

typedef struct dn_job {
    const iadsr_denoiser *dn;
    const iadsr_dataset *d;
    const iadsr_semantic *usem;
    int loo;
    int64_t u0, u1;     /* users of this job */
    uint8_t *keep;      /* n_interactions */
    float *scores;      /* n_interactions or NULL */
    int max_n;
    int rc;
    char msg[256];
} dn_job;

static void dn_job_run(void *arg)
{
    dn_job *j = arg;
    dn_ws w;
    j->rc = ws_alloc(&w, j->dn, j->max_n > 0 ? j->max_n : 1);
    if (j->rc) {
        snprintf(j->msg, sizeof j->msg, "%s", iadsr_last_error());
        return;
    }
    const iadsr_dataset *d = j->d;
    for (int64_t u = j->u0; u < j->u1; u++) {
        int64_t o = d->offsets[u], n = d->offsets[u + 1] - o;
        int64_t nc = j->loo ? n - 2 : n; /* the part that is cleaned */
        for (int64_t t = 0; t < n; t++) {
            j->keep[o + t] = 1;
            if (j->scores)
                j->scores[o + t] = NAN;
        }
        if (nc < 1)
            continue;
        const float *uv = j->usem ? iadsr__semantic_row(j->usem,
                                                        (int32_t)u + 1)
                                  : NULL;
        clean_one(j->dn, &w, d->items + o, (int)nc, uv, j->keep + o);
        if (j->scores)
            memcpy(j->scores + o, w.score, (size_t)nc * sizeof(float));
    }
    ws_free(&w);
}

int iadsr_denoiser_clean_dataset(const iadsr_denoiser *dn,
                                 const iadsr_dataset *d, int32_t split,
                                 const iadsr_semantic *user_sem,
                                 int32_t n_threads, iadsr_dataset **out,
                                 uint8_t *keep, float *scores)
{
    static const char w[] = "denoiser_clean_dataset";
    IADSR__OUT_CLEAR(out, w);
    TRY(iadsr__check_handle(dn_ok(dn), w, "denoiser"));
    TRY(iadsr__check_handle(iadsr__dataset_ok(d), w, "dataset"));
    if (split == IADSR_SPLIT_DEFAULT)
        split = IADSR_SPLIT_LEAVE_ONE_OUT;
    if (split != IADSR_SPLIT_LEAVE_ONE_OUT && split != IADSR_SPLIT_NONE)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "denoiser_clean_dataset: split = %d is not an "
                          "IADSR_SPLIT_* value",
                          (int)split);
    TRY(iadsr__check_arg_i32(w, "n_threads", n_threads, 1, 256));
    if (d->n_items > dn->m->hp.n_items)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "denoiser_clean_dataset: dataset has item ids up "
                          "to %d but the model has %d",
                          (int)d->n_items, (int)dn->m->hp.n_items);
    if (user_sem) {
        TRY(iadsr__check_handle(iadsr__semantic_ok(user_sem), w, "user_sem"));
        if ((int64_t)user_sem->n_items < d->n_users ||
            user_sem->dim != dn->a->sem_dim)
            return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                              "denoiser_clean_dataset: user_sem is %d x %d, "
                              "need at least %lld rows of D = %d",
                              (int)user_sem->n_items, (int)user_sem->dim,
                              (long long)d->n_users, (int)dn->a->sem_dim);
    }
    int64_t nu = d->n_users, ni = d->offsets[nu];
    int max_n = 1;
    for (int64_t u = 0; u < nu; u++) {
        int64_t n = d->offsets[u + 1] - d->offsets[u];
        if (n > INT32_MAX / 4)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "denoiser_clean_dataset: user %lld has %lld "
                              "items",
                              (long long)u, (long long)n);
        if (n > max_n)
            max_n = (int)n;
    }
    uint8_t *k = iadsr__malloc((size_t)(ni > 0 ? ni : 1));
    int32_t *items = iadsr__malloc((size_t)(ni > 0 ? ni : 1) * sizeof(int32_t));
    int64_t *offs = iadsr__malloc(((size_t)nu + 1) * sizeof(int64_t));
    int W = n_threads < nu ? n_threads : (int)(nu > 0 ? nu : 1);
    dn_job *jobs = iadsr__calloc((size_t)W, sizeof *jobs);
    int rc = IADSR_OK;
    if (!k || !items || !offs || !jobs) {
        rc = iadsr__err(IADSR_ERR_NOMEM,
                        "denoiser_clean_dataset: out of memory");
        goto done;
    }
    for (int i = 0; i < W; i++) {
        dn_job *j = &jobs[i];
        j->dn = dn;
        j->d = d;
        j->usem = user_sem;
        j->loo = split == IADSR_SPLIT_LEAVE_ONE_OUT;
        j->u0 = nu * i / W;
        j->u1 = nu * (i + 1) / W;
        j->keep = k;
        j->scores = scores;
        j->max_n = max_n;
    }
    iadsr__fork_join(W, dn_job_run, jobs, sizeof jobs[0]);
    for (int i = 0; i < W; i++)
        if (jobs[i].rc) {
            rc = iadsr__err(jobs[i].rc, "%s", jobs[i].msg);
            goto done;
        }
    offs[0] = 0;
    int64_t r = 0;
    for (int64_t u = 0; u < nu; u++) {
        for (int64_t t = d->offsets[u]; t < d->offsets[u + 1]; t++)
            if (k[t])
                items[r++] = d->items[t];
        offs[u + 1] = r;
    }
    rc = iadsr_dataset_create(out, items, offs, nu, d->n_items,
                              IADSR_FLAG_COPY);
    if (!rc && d->user_ids) {
        /* the users keep their ids (dataset_create cannot take them) */
        int64_t *ids = iadsr__malloc((size_t)nu * sizeof(int64_t));
        if (!ids) {
            iadsr_dataset_free(*out);
            *out = NULL;
            rc = iadsr__err(IADSR_ERR_NOMEM,
                            "denoiser_clean_dataset: out of memory");
            goto done;
        }
        memcpy(ids, d->user_ids, (size_t)nu * sizeof(int64_t));
        (*out)->user_ids = ids;
        (*out)->owned_user_ids = ids;
    }
    if (!rc && keep)
        memcpy(keep, k, (size_t)ni);
done:
    iadsr__free(k);
    iadsr__free(items);
    iadsr__free(offs);
    iadsr__free(jobs);
    return rc;
}

/* The scores of every position of @p d (NaN where not scored), as
 * iadsr_denoiser_clean_dataset() computes them. */
static int all_scores(const iadsr_denoiser *dn, const iadsr_dataset *d,
                      int32_t split, const iadsr_semantic *user_sem,
                      int32_t n_threads, float **out)
{
    int64_t ni = d->offsets[d->n_users];
    float *sc = iadsr__malloc((size_t)(ni > 0 ? ni : 1) * sizeof(float));
    *out = NULL;
    if (!sc)
        return iadsr__err(IADSR_ERR_NOMEM, "denoiser_propose_theta: out of "
                                           "memory");
    iadsr_dataset *cleaned = NULL;
    int rc = iadsr_denoiser_clean_dataset(dn, d, split, user_sem, n_threads,
                                          &cleaned, NULL, sc);
    iadsr_dataset_free(cleaned);
    if (rc) {
        iadsr__free(sc);
        return rc;
    }
    *out = sc;
    return IADSR_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The scored (non-NaN) entries of sc[0..n) whose flag equals @p want
 * (every one when @p flags is NULL), sorted ascending into a new array. */
static int sorted_where(const float *sc, int64_t n, const uint8_t *flags,
                        int want, float **out, int64_t *n_out)
{
    float *v = iadsr__malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    *out = NULL;
    *n_out = 0;
    if (!v)
        return iadsr__err(IADSR_ERR_NOMEM, "denoiser_propose_theta: out of "
                                           "memory");
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(sc[i]) && (!flags || (flags[i] != 0) == want))
            v[k++] = sc[i];
    qsort(v, (size_t)k, sizeof *v, cmp_float);
    *out = v;
    *n_out = k;
    return IADSR_OK;
}

/* Share of the sorted v[0..n) at or below t. */
static double cdf_at(const float *v, int64_t n, float t)
{
    int64_t lo = 0, hi = n; /* the first index with v > t */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n > 0 ? (double)lo / (double)n : 0.0;
}

int32_t iadsr__det_draw_item(iadsr__rng *rng, const int64_t *cum,
                             int32_t n_items)
{
    int64_t total = cum[n_items];
    if (iadsr__rng_below(rng, 2) == 0 || total <= 0)
        return 1 + (int32_t)iadsr__rng_below(rng, (uint64_t)n_items);
    return iadsr__cum_pick(cum, n_items,
                           (int64_t)iadsr__rng_below(rng, (uint64_t)total));
}

/* @p d with items inserted before its scored positions as the detector's
 * training inserts them (rate IADSR__DET_TRAIN_RATE, uniform or popular
 * with equal chance, drawn from @p seed); @p ins receives 1 per inserted
 * position (dataset order of the result). */
static int augment(const iadsr_dataset *d, int32_t split, uint64_t seed,
                   iadsr_dataset **out, uint8_t **ins)
{
    int64_t nu = d->n_users, ni = d->offsets[nu];
    int32_t n_items = d->n_items;
    size_t cap = (size_t)ni * 2 + 1;
    int32_t *items = iadsr__malloc(cap * sizeof(int32_t));
    int64_t *offs = iadsr__malloc(((size_t)nu + 1) * sizeof(int64_t));
    int64_t *cum = iadsr__calloc((size_t)n_items + 1, sizeof(int64_t));
    uint8_t *flag = iadsr__calloc(cap, 1);
    int rc = IADSR_OK;
    if (!items || !offs || !cum || !flag) {
        rc = iadsr__err(IADSR_ERR_NOMEM,
                        "denoiser_propose_theta: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < ni; i++)
        cum[d->items[i]]++;
    for (int32_t i = 1; i <= n_items; i++)
        cum[i] += cum[i - 1];
    iadsr__rng rng;
    iadsr__rng_seed(&rng, seed);
    int64_t w = 0;
    offs[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int64_t a = d->offsets[u], b = d->offsets[u + 1], n = b - a;
        int64_t part = split == IADSR_SPLIT_NONE ? n : (n >= 3 ? n - 2 : 0);
        for (int64_t i = a; i < b; i++) {
            if (i - a < part && i - a > 0 &&
                iadsr__rng_float(&rng) < (float)IADSR__DET_TRAIN_RATE) {
                int32_t x = iadsr__det_draw_item(&rng, cum, n_items);
                flag[w] = 1;
                items[w++] = x;
            }
            items[w++] = d->items[i];
        }
        offs[u + 1] = w;
    }
    rc = iadsr_dataset_create(out, items, offs, nu, n_items, IADSR_FLAG_COPY);
done:
    iadsr__free(items);
    iadsr__free(offs);
    iadsr__free(cum);
    if (rc == IADSR_OK) {
        *ins = flag;
    } else {
        iadsr__free(flag);
        *ins = NULL;
    }
    return rc;
}

#define IADSR__MPE_QUANTILE 0.1
#define IADSR__MPE_MIN_BELOW 200

/* Mixture-proportion estimation: the detector's scores on the data mix
 * those of clean items and of noise, F_d = (1 - rate) F_clean + rate
 * F_noise. Items inserted as in training show F_noise (the detector's
 * premise), so rate <= F_d(t) / F_ins(t) for every t; the estimate is the
 * smallest ratio over the thresholds where F_ins(t) >= IADSR__MPE_QUANTILE
 * with at least IADSR__MPE_MIN_BELOW inserted scores below (a ratio over
 * few scores is noise), kept within [1e-4, hi]. The expected F1 of "drop
 * iff score <= t" is then 2 rate F_ins(t) / (rate + F_d(t)), and *th is the
 * t that maximises it. fd[0..nd) and fi[0..nins) are sorted, both
 * non-empty. */
static void mpe_theta(const float *fd, int64_t nd, const float *fi,
                      int64_t nins, double hi, double *rate_out, float *th)
{
    double lo = 1e-4;
    if (hi < lo)
        hi = lo;
    double rate = 1.0;
    /* the thresholds from the q-quantile of the inserted scores up: low
     * ones see little of the clean items (a tighter bound), but need
     * enough inserted scores below them for a steady ratio */
    int64_t k0 = (int64_t)(IADSR__MPE_QUANTILE * (double)nins);
    if (k0 < IADSR__MPE_MIN_BELOW)
        k0 = IADSR__MPE_MIN_BELOW < nins ? IADSR__MPE_MIN_BELOW : nins - 1;
    for (int64_t k = k0; k < nins; k++) {
        float t = fi[k];
        double r = cdf_at(fd, nd, t) / cdf_at(fi, nins, t);
        if (r < rate)
            rate = r;
    }
    rate = rate < lo ? lo : rate > hi ? hi : rate;
    double best = -1;
    *th = fd[0];
    for (int64_t k = 0; k < nd; k++) {
        if (k + 1 < nd && fd[k + 1] == fd[k])
            continue; /* the last of equal scores: F_d counts them all */
        double f = 2.0 * rate * cdf_at(fi, nins, fd[k]) /
                   (rate + (double)(k + 1) / (double)nd);
        if (f > best) {
            best = f;
            *th = fd[k];
        }
    }
    *rate_out = rate;
}

/* The held-out users of @p d (IADSR_DENOISE_F_HOLDOUT, chosen as the
 * trainer chose them) as a dataset of their own, with their user_sem rows
 * when there are any; *hu receives one byte per user of @p d (1 = held
 * out). *sub is NULL when no user is held out. */
static int holdout_subset(const iadsr_dataset *d,
                          const iadsr_semantic *user_sem, uint8_t **hu,
                          iadsr_dataset **sub, iadsr_semantic **sub_sem)
{
    int64_t nu = d->n_users, n_ho = 0, n_it = 0;
    uint8_t *h = iadsr__calloc((size_t)(nu > 0 ? nu : 1), 1);
    int32_t *items = NULL;
    int64_t *offs = NULL;
    float *rows = NULL;
    int rc = IADSR_OK;
    *hu = NULL;
    *sub = NULL;
    *sub_sem = NULL;
    if (!h)
        goto nomem;
    for (int64_t u = 0; u < nu; u++) {
        int64_t a = d->offsets[u], n = d->offsets[u + 1] - a;
        h[u] = (uint8_t)iadsr__holdout_user(d->items + a, n);
        if (h[u]) {
            n_ho++;
            n_it += n;
        }
    }
    *hu = h;
    if (n_ho == 0)
        return IADSR_OK;
    items = iadsr__malloc((size_t)(n_it > 0 ? n_it : 1) * sizeof(int32_t));
    offs = iadsr__malloc(((size_t)n_ho + 1) * sizeof(int64_t));
    size_t D = user_sem ? (size_t)user_sem->dim : 0;
    if (user_sem)
        rows = iadsr__malloc((size_t)n_ho * D * sizeof(float));
    if (!items || !offs || (user_sem && !rows))
        goto nomem;
    int64_t w = 0, q = 0;
    offs[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        if (!h[u])
            continue;
        for (int64_t i = d->offsets[u]; i < d->offsets[u + 1]; i++)
            items[w++] = d->items[i];
        if (rows)
            memcpy(rows + (size_t)q * D,
                   iadsr__semantic_row(user_sem, (int32_t)u + 1),
                   D * sizeof(float));
        offs[++q] = w;
    }
    rc = iadsr_dataset_create(sub, items, offs, n_ho, d->n_items,
                              IADSR_FLAG_COPY);
    if (!rc && rows)
        rc = iadsr_semantic_create(sub_sem, rows, n_ho, (int32_t)D,
                                   (int64_t)D, IADSR_FLAG_COPY);
    goto done;
nomem:
    rc = iadsr__err(IADSR_ERR_NOMEM, "denoiser_propose_theta: out of memory");
done:
    iadsr__free(items);
    iadsr__free(offs);
    iadsr__free(rows);
    if (rc) {
        iadsr_dataset_free(*sub);
        *sub = NULL;
        iadsr__free(h);
        *hu = NULL;
    }
    return rc;
}

/* A small hold-out of short sequences carries too few insertion points for
 * one pass (generated data of 5-12 items per user: about 370 inserted
 * scores), and the fallback to every user reads the rate off fitted data
 * (0.002 for a true 0.166 there): so passes repeat. */
int iadsr__det_inserted_scores(const iadsr_denoiser *dn,
                               const iadsr_dataset *d, int32_t split,
                               const iadsr_semantic *user_sem,
                               int32_t n_threads, int64_t min_ins, float **fi,
                               int64_t *nins)
{
    float *all = NULL;
    int64_t n_all = 0;
    int rc = IADSR_OK;
    *fi = NULL;
    *nins = 0;
    for (int c = 0; c < IADSR__MPE_MAX_COPIES && !rc; c++) {
        iadsr_dataset *aug = NULL;
        uint8_t *ins = NULL;
        float *sc = NULL;
        int64_t nv = 0;
        rc = augment(d, split, 0x1adc5eedull + (uint64_t)c, &aug, &ins);
        if (!rc)
            rc = all_scores(dn, aug, split, user_sem, n_threads, &sc);
        if (!rc) {
            /* this pass's inserted scores, appended (sorted once below) */
            int64_t na = aug->offsets[aug->n_users];
            for (int64_t i = 0; i < na; i++)
                nv += ins[i] && !isnan(sc[i]);
            float *grown = nv > 0 ? iadsr__realloc(all, (size_t)(n_all + nv),
                                                   sizeof(float))
                                  : NULL;
            if (nv > 0 && !grown) {
                rc = iadsr__err(IADSR_ERR_NOMEM,
                                "denoiser_propose_theta: out of memory");
            } else if (nv > 0) {
                all = grown;
                for (int64_t i = 0; i < na; i++)
                    if (ins[i] && !isnan(sc[i]))
                        all[n_all++] = sc[i];
            }
        }
        iadsr__free(sc);
        iadsr__free(ins);
        iadsr_dataset_free(aug);
        /* nothing to insert before: more passes would find nothing too */
        if (nv == 0 || n_all >= min_ins)
            break;
    }
    if (rc) {
        iadsr__free(all);
        return rc;
    }
    if (!all && !(all = iadsr__malloc(sizeof(float))))
        return iadsr__err(IADSR_ERR_NOMEM,
                          "denoiser_propose_theta: out of memory");
    qsort(all, (size_t)n_all, sizeof *all, cmp_float);
    *fi = all;
    *nins = n_all;
    return IADSR_OK;
}

int iadsr_denoiser_propose_theta(const iadsr_denoiser *dn,
                                 const iadsr_dataset *d, int32_t split,
                                 const iadsr_semantic *user_sem,
                                 int32_t n_threads, float *theta,
                                 double *noise_rate)
{
    static const char w[] = "denoiser_propose_theta";
    TRY(iadsr__check_handle(dn_ok(dn), w, "denoiser"));
    if (!theta)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: theta is NULL", w);
    if (!(dn->g->p.flags & IADSR_DENOISE_F_DETECT))
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: the gate is not a detector "
                          "(IADSR_DENOISE_F_DETECT): the paper's score has "
                          "no noise model to read a rate from",
                          w);
    TRY(iadsr__check_handle(iadsr__dataset_ok(d), w, "dataset"));
    TRY(iadsr__check_arg_i32(w, "n_threads", n_threads, 1, 256));
    if (split == IADSR_SPLIT_DEFAULT)
        split = IADSR_SPLIT_LEAVE_ONE_OUT;
    if (split != IADSR_SPLIT_LEAVE_ONE_OUT && split != IADSR_SPLIT_NONE)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: split = %d is not an IADSR_SPLIT_* value", w,
                          (int)split);
    float *sc = NULL, *fd = NULL, *fi = NULL, *ft = NULL;
    int64_t ni = d->offsets[d->n_users], nd = 0, nins = 0, nt = 0;
    uint8_t *hu = NULL, *hpos = NULL;
    iadsr_dataset *sub = NULL;
    iadsr_semantic *sub_sem = NULL;
    double hi = (double)dn->g->p.max_drop, rate = 0;
    float th = 0;
    int rc = all_scores(dn, d, split, user_sem, n_threads, &sc);
    if (rc)
        goto done;
    if ((dn->g->p.flags & IADSR_DENOISE_F_HOLDOUT) &&
        d->n_users >= IADSR__HOLDOUT_MIN_USERS) {
        /* the users the trainer held out: the detector's scores on data
         * the backbone never fitted (on its training data the noise was
         * fitted as next-item targets and scores like clean items) */
        rc = holdout_subset(d, user_sem, &hu, &sub, &sub_sem);
        if (!rc && sub)
            rc = iadsr__det_inserted_scores(dn, sub, split, sub_sem,
                                            n_threads,
                                            IADSR__HOLDOUT_MIN_INSERTS, &fi,
                                            &nins);
        if (rc)
            goto done;
        if (nins >= IADSR__HOLDOUT_MIN_INSERTS) {
            hpos = iadsr__malloc((size_t)(ni > 0 ? ni : 1));
            if (!hpos) {
                rc = iadsr__err(IADSR_ERR_NOMEM, "%s: out of memory", w);
                goto done;
            }
            for (int64_t u = 0; u < d->n_users; u++)
                memset(hpos + d->offsets[u], hu[u],
                       (size_t)(d->offsets[u + 1] - d->offsets[u]));
            rc = sorted_where(sc, ni, hpos, 1, &fd, &nd);
            if (!rc)
                rc = sorted_where(sc, ni, hpos, 0, &ft, &nt);
            if (rc)
                goto done;
        } else {
            iadsr__free(fi);
            fi = NULL;
            nins = 0;
        }
    }
    if (!fd) {
        /* every user: the estimate for data the model did not train on */
        rc = sorted_where(sc, ni, NULL, 1, &fd, &nd);
        if (!rc)
            rc = iadsr__det_inserted_scores(dn, d, split, user_sem,
                                            n_threads, 0, &fi, &nins);
        if (rc)
            goto done;
    }
    if (nd == 0 || nins == 0) {
        rc = iadsr__err(IADSR_ERR_STATE,
                        "%s: the dataset has no scored position to insert "
                        "items before (sequences too short for the split)",
                        w);
        goto done;
    }
    mpe_theta(fd, nd, fi, nins, hi, &rate, &th);
    if (ft && nt > 0) {
        /* the other users' score at the held-out users' drop share: the
         * backbone fitted them, so their scores sit higher, noise most */
        double q = cdf_at(fd, nd, th);
        int64_t k = (int64_t)ceil(q * (double)nt) - 1;
        th = k < 0 ? ft[0] - 1.0f : ft[k < nt ? k : nt - 1];
    }
    *theta = th < -3.0f ? -3.0f : th > 3.0f ? 3.0f : th;
    if (noise_rate)
        *noise_rate = rate;
done:
    iadsr__free(sc);
    iadsr__free(fd);
    iadsr__free(fi);
    iadsr__free(ft);
    iadsr__free(hu);
    iadsr__free(hpos);
    iadsr_dataset_free(sub);
    iadsr_semantic_free(sub_sem);
    return rc;
}
