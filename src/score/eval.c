/* Leave-one-out evaluation with full ranking (HR@K, NDCG@K, K = 5, 10, 20).
 * Users are split into contiguous ranges, one per worker thread, each with
 * its own context; per-user ranks are summed in user order afterwards, so
 * the result does not depend on the thread count.
 * SPDX-License-Identifier: MIT
 */
#include "score/ctx.h"
#include "score/eval.h"
#include "common/fork_join.h"
#include "common/params.h"
#include "common/alloc.h"
#include "common/error.h"
#include "data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int32_t iadsr__target_rank(float *sc, int32_t n_items, const int32_t *hist,
                           int32_t h, int32_t t, uint32_t flags)
{
    float st = sc[t];
    if (flags & IADSR_TOPK_EXCLUDE_HISTORY)
        for (int32_t q = 0; q < h; q++)
            sc[hist[q]] = -INFINITY;
    sc[t] = st;
    if (st != st)
        return n_items; /* a NaN score never counts as a hit */
    /* ties count against the target (pessimistic rank): a scorer that
     * gives every item the same score must not rank the target first */
    int32_t rank = 0;
    for (int32_t q = 1; q <= n_items; q++)
        rank += sc[q] >= st;
    return rank - 1; /* the target itself */
}

/* The model ranker: batches of users through one context per worker. */
static int model_ranks(void *arg, const iadsr_dataset *d,
                       const int64_t *users, int64_t begin, int64_t end,
                       int cut, uint32_t flags, int32_t *ranks)
{
    const iadsr_model *m = arg;
    iadsr_ctx *c = NULL;
    int32_t *buf = NULL;
    int64_t *off = NULL;
    int rc = iadsr_ctx_create(&c, m, NULL);
    if (rc)
        return rc;
    int L = c->shape.max_len, B = c->max_batch;
    int32_t n_items = c->m->hp.n_items;
    buf = iadsr__malloc((size_t)B * (size_t)L * sizeof(int32_t));
    off = iadsr__malloc(((size_t)B + 1) * sizeof(int64_t));
    if (!buf || !off) {
        rc = iadsr__err(IADSR_ERR_NOMEM, "evaluate: out of memory");
        goto done;
    }
    for (int64_t i0 = begin; i0 < end; i0 += B) {
        int64_t nb = end - i0 < B ? end - i0 : B;
        off[0] = 0;
        for (int64_t k = 0; k < nb; k++) {
            int32_t n = 0;
            const int32_t *s = iadsr_dataset_user_items(d, users[i0 + k], &n);
            int64_t h = n - cut; /* history length, >= 1 */
            const int32_t *hs = s;
            if (h > L) {
                hs += h - L;
                h = L;
            }
            memcpy(buf + off[k], hs, (size_t)h * sizeof(int32_t));
            off[k + 1] = off[k] + h;
        }
        iadsr__ctx_encode(c, buf, off, nb);
        iadsr__ctx_scores(c, nb, c->chunk, c->n_scores);
        for (int64_t k = 0; k < nb; k++) {
            int32_t n = 0;
            const int32_t *s = iadsr_dataset_user_items(d, users[i0 + k], &n);
            ranks[i0 + k] = iadsr__target_rank(c->chunk + k * c->n_scores,
                                               n_items, s, n - cut,
                                               s[n - cut], flags);
        }
    }
done:
    iadsr__free(buf);
    iadsr__free(off);
    iadsr_ctx_free(c);
    return rc;
}

typedef struct {
    iadsr__rank_fn fn;
    void *arg;
    const iadsr_dataset *d;
    const int64_t *users; /* eligible user rows */
    int64_t begin, end;   /* range in users[] */
    int cut;
    uint32_t flags;
    int32_t *ranks; /* per eligible user */
    int rc;
    char err[256];
} job;

static void run_job(void *arg)
{
    job *j = arg;
    j->rc = j->fn(j->arg, j->d, j->users, j->begin, j->end, j->cut,
                  j->flags, j->ranks);
    if (j->rc) /* the message lives in this thread's last error */
        snprintf(j->err, sizeof j->err, "%s", iadsr_last_error());
}

int iadsr__rank_users(const iadsr_dataset *d, int cut, uint32_t flags,
                      int n_threads, iadsr__rank_fn fn, void *arg,
                      const char *what, int64_t **users_out,
                      int32_t **ranks_out, int64_t *n_out)
{
    *users_out = NULL;
    *ranks_out = NULL;
    *n_out = 0;
    int64_t nu = d->n_users, ne = 0;
    int64_t *users = iadsr__malloc((size_t)(nu > 0 ? nu : 1) * sizeof(int64_t));
    if (!users)
        return iadsr__err(IADSR_ERR_NOMEM, "%s: out of memory", what);
    for (int64_t u = 0; u < nu; u++)
        if (d->offsets[u + 1] - d->offsets[u] >= cut + 1)
            users[ne++] = u;
    if (ne == 0) {
        iadsr__free(users);
        return iadsr__err(IADSR_ERR_STATE,
                          "%s: no user has at least %d items", what, cut + 1);
    }
    int32_t *ranks = iadsr__malloc((size_t)ne * sizeof(int32_t));
    int T = n_threads < 1 ? 1 : n_threads;
    if (T > ne)
        T = (int)ne;
    /* on the heap: hosts may call from threads with small stacks */
    job *jobs = iadsr__malloc((size_t)T * sizeof *jobs);
    int rc = IADSR_OK;
    if (!ranks || !jobs) {
        rc = iadsr__err(IADSR_ERR_NOMEM, "%s: out of memory", what);
        goto out;
    }
    for (int i = 0; i < T; i++) {
        jobs[i] = (job){fn,    arg,   d,     users, ne * i / T, ne * (i + 1) / T,
                        cut,   flags, ranks, 0,     {0}};
    }
    iadsr__fork_join(T, run_job, jobs, sizeof jobs[0]);
    for (int i = 0; i < T && rc == IADSR_OK; i++)
        if (jobs[i].rc)
            rc = iadsr__err(jobs[i].rc, "%s", jobs[i].err);
out:
    iadsr__free(jobs);
    if (rc) {
        iadsr__free(users);
        iadsr__free(ranks);
        return rc;
    }
    *users_out = users;
    *ranks_out = ranks;
    *n_out = ne;
    return IADSR_OK;
}

int iadsr__evaluate_ranks(const iadsr_model *m, const iadsr_dataset *d,
                          int target, uint32_t flags, int n_threads,
                          int64_t **users_out, int32_t **ranks_out,
                          int64_t *n_out)
{
    return iadsr__rank_users(d, target == IADSR_EVAL_VALID ? 2 : 1, flags,
                             n_threads, model_ranks,
                             (void *)(uintptr_t)m, "evaluate", users_out,
                             ranks_out, n_out);
}

void iadsr__metrics_from_ranks(const int32_t *ranks, int64_t n,
                               iadsr_metrics *out)
{
    double hr[3] = {0, 0, 0}, nd[3] = {0, 0, 0};
    static const int ks[3] = {5, 10, 20};
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            if (ranks[i] < ks[k]) {
                hr[k] += 1.0;
                nd[k] += 1.0 / log2((double)ranks[i] + 2.0);
            }
    double inv = n > 0 ? 1.0 / (double)n : 0.0;
    out->n_users = n;
    out->hr5 = hr[0] * inv;
    out->hr10 = hr[1] * inv;
    out->hr20 = hr[2] * inv;
    out->ndcg5 = nd[0] * inv;
    out->ndcg10 = nd[1] * inv;
    out->ndcg20 = nd[2] * inv;
}

int iadsr__metrics_out_check(iadsr_metrics *out, const char *what)
{
    return iadsr__output_copy(out, NULL, sizeof(iadsr_metrics),
                              IADSR__METRICS_SIZE_0_1, what);
}

int iadsr__metrics_out(iadsr_metrics *out, const int32_t *ranks, int64_t n,
                       const char *what)
{
    iadsr_metrics res;
    memset(&res, 0, sizeof res);
    iadsr__metrics_from_ranks(ranks, n, &res);
    res.struct_size = (uint32_t)sizeof res;
    return iadsr__output_copy(out, &res, sizeof res, IADSR__METRICS_SIZE_0_1,
                              what);
}

int iadsr_evaluate(const iadsr_model *m, const iadsr_dataset *d,
                   const iadsr_eval_params *p, iadsr_metrics *out)
{
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "evaluate: invalid model");
    if (!iadsr__dataset_ok(d))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "evaluate: invalid dataset");
    TRY(iadsr__metrics_out_check(out, "evaluate: out"));
    iadsr_eval_params ep;
    TRY(iadsr__eval_params_get(&ep, p));
    TRY(iadsr__dataset_fits(d, m->hp.n_items, "evaluate", "the model has"));
    int64_t *users = NULL, n = 0;
    int32_t *ranks = NULL;
    TRY(iadsr__evaluate_ranks(m, d, ep.target, ep.flags, ep.n_threads, &users,
                              &ranks, &n));
    int rc = iadsr__metrics_out(out, ranks, n, "evaluate: out");
    iadsr__free(users);
    iadsr__free(ranks);
    return rc;
}

int iadsr_evaluate_ranks(const iadsr_model *m, const iadsr_dataset *d,
                         const iadsr_eval_params *p, int64_t *users,
                         int32_t *ranks, int64_t capacity, int64_t *n_out)
{
    static const char *what = "evaluate_ranks";
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid model", what);
    if (!iadsr__dataset_ok(d))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid dataset", what);
    if (!n_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: n_out is NULL", what);
    if (capacity < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: capacity %lld < 0",
                          what, (long long)capacity);
    if (capacity > 0 && (!users || !ranks))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: users and ranks must not be NULL when "
                          "capacity > 0", what);
    iadsr_eval_params ep;
    TRY(iadsr__eval_params_get(&ep, p));
    TRY(iadsr__dataset_fits(d, m->hp.n_items, what, "the model has"));
    /* The size query counts the users with a target without scoring. */
    int cut = ep.target == IADSR_EVAL_VALID ? 2 : 1;
    int64_t need = 0;
    for (int64_t u = 0; u < d->n_users; u++)
        need += d->offsets[u + 1] - d->offsets[u] >= cut + 1;
    if (need == 0)
        return iadsr__err(IADSR_ERR_STATE,
                          "%s: no user has at least %d items", what, cut + 1);
    if (capacity == 0 && !users && !ranks) {
        *n_out = need;
        return IADSR_OK;
    }
    if (capacity < need) {
        *n_out = need;
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "%s: capacity %lld, %lld users have a target",
                          what, (long long)capacity, (long long)need);
    }
    int64_t *us = NULL, n = 0;
    int32_t *rs = NULL;
    TRY(iadsr__evaluate_ranks(m, d, ep.target, ep.flags, ep.n_threads, &us,
                              &rs, &n));
    if (n > capacity) { /* the count above and the ranking disagree */
        iadsr__free(us);
        iadsr__free(rs);
        return iadsr__err(IADSR_ERR_GENERIC,
                          "%s: %lld users ranked, %lld counted", what,
                          (long long)n, (long long)need);
    }
    memcpy(users, us, (size_t)n * sizeof *users);
    memcpy(ranks, rs, (size_t)n * sizeof *ranks);
    *n_out = n;
    iadsr__free(us);
    iadsr__free(rs);
    return IADSR_OK;
}
