/* libiadsr - the text-only recommender: next-item scores from the cosine
 * between each item's semantic row and the mean of the history's rows, and
 * its leave-one-out evaluation (a baseline for the semantic view alone).
 * SPDX-License-Identifier: MIT
 *
 * Scoring never allocates: the history's mean is built block by block of
 * columns in a fixed stack buffer.
 */
#include "data/semantic.h"
#include "score/eval.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/params.h"
#include "data/dataset.h"
#include "math/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Columns per scoring block: the block of the history mean lives on the
 * stack (8 KiB of doubles; hosts may call from small-stack threads). */
#define SEM_BLOCK 1024

/* ---- scoring ------------------------------------------------------------- */

/* m[j] = sum over the history of row[c0 + j], j < nb, in double. */
static void sum_block(const iadsr_semantic *s, const int32_t *seq, int32_t n,
                      int32_t c0, int32_t nb, double *m)
{
    for (int32_t j = 0; j < nb; j++)
        m[j] = 0.0;
    for (int32_t t = 0; t < n; t++) {
        const float *r = iadsr__semantic_row(s, seq[t]) + c0;
        for (int32_t j = 0; j < nb; j++)
            m[j] += (double)r[j];
    }
}

/* IADSR_CLONES (kernels.h): the scoring loop gets AVX-512 or AVX2 where
 * the CPU has them. The eight accumulators are separate variables for the
 * compiler, so every clone adds in the same order and gives the same bits
 * (no FMA contraction in ISO C mode). */

/* For items 1..N (rows @p r, @p ld floats apart, from column c0 on): the
 * dot product with the nb doubles of @p m, times inv_norm[i], stored in
 * scores[i] or added to it. */
IADSR_CLONES
static void score_block(const float *r, size_t ld, int32_t N,
                        const double *m, int32_t nb, const double *inv_norm,
                        float *scores, int add)
{
    for (int32_t i = 1; i <= N; i++, r += ld) {
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        double a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0;
        int32_t j = 0;
        for (; j + 8 <= nb; j += 8) {
            a0 += (double)r[j] * m[j];
            a1 += (double)r[j + 1] * m[j + 1];
            a2 += (double)r[j + 2] * m[j + 2];
            a3 += (double)r[j + 3] * m[j + 3];
            a4 += (double)r[j + 4] * m[j + 4];
            a5 += (double)r[j + 5] * m[j + 5];
            a6 += (double)r[j + 6] * m[j + 6];
            a7 += (double)r[j + 7] * m[j + 7];
        }
        double t = 0.0;
        for (; j < nb; j++)
            t += (double)r[j] * m[j];
        const double dot =
            ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + t;
        const float v = (float)(dot * inv_norm[i]);
        scores[i] = add ? scores[i] + v : v;
    }
}

/* cos(row_i, mean) = dot(row_i, sum) / (||row_i|| ||sum||): the mean's
 * 1/n cancels. Pass 1 gets ||sum|| block by block; pass 2 adds each block's
 * share of every cosine (each share is at most 1 in magnitude, by
 * Cauchy-Schwarz, so float partial sums cannot overflow). With D <= the
 * block width the sum is computed once. */
static void text_scores(const iadsr_semantic *s, const int32_t *seq,
                            int32_t n, float *scores)
{
    const int32_t N = s->n_items, D = s->dim;
    double m[SEM_BLOCK];
    double ss = 0.0;

    for (int32_t c0 = 0; c0 < D; c0 += SEM_BLOCK) {
        const int32_t nb = D - c0 < SEM_BLOCK ? D - c0 : SEM_BLOCK;
        sum_block(s, seq, n, c0, nb, m);
        for (int32_t j = 0; j < nb; j++)
            ss += m[j] * m[j];
    }
    scores[0] = -INFINITY;
    if (!(ss > 0.0)) {
        /* a zero mean: cosine 0 with everything */
        for (int32_t i = 1; i <= N; i++)
            scores[i] = 0.0f;
        return;
    }
    const double inv_sum = 1.0 / sqrt(ss);
    for (int32_t c0 = 0; c0 < D; c0 += SEM_BLOCK) {
        const int32_t nb = D - c0 < SEM_BLOCK ? D - c0 : SEM_BLOCK;
        if (D > SEM_BLOCK)
            sum_block(s, seq, n, c0, nb, m);
        for (int32_t j = 0; j < nb; j++)
            m[j] *= inv_sum;
        score_block(s->rows + c0, (size_t)s->ld, N, m, nb, s->inv_norm,
                    scores, c0 > 0);
    }
}

int iadsr_semantic_scores(const iadsr_semantic *s, const int32_t *seq,
                          int32_t n, float *scores, int64_t capacity)
{
    static const char w[] = "semantic_scores";
    if (!iadsr__semantic_ok(s))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s", w,
                          s ? "not a semantic matrix handle"
                            : "the matrix is NULL");
    if (!seq || !scores)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s is NULL", w,
                          seq ? "scores" : "seq");
    if (n < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n must be >= 1 (got %d)", w, (int)n);
    if (capacity < (int64_t)s->n_items + 1)
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "%s: capacity %lld < n_items + 1 = %lld", w,
                          (long long)capacity, (long long)s->n_items + 1);
    for (int32_t i = 0; i < n; i++)
        if (seq[i] < 1 || seq[i] > s->n_items)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s: position %d: item id %d outside 1..%d", w,
                              (int)i, (int)seq[i], (int)s->n_items);
    text_scores(s, seq, n, scores);
    return IADSR_OK;
}

/* ---- evaluation ---------------------------------------------------------- */

/* The ranker of the text-only recommender for eval.c's driver. */
static int semantic_ranks(void *arg, const iadsr_dataset *d,
                          const int64_t *users, int64_t begin, int64_t end,
                          int cut, uint32_t flags, int32_t *ranks)
{
    const iadsr_semantic *sem = arg;
    const int32_t N = sem->n_items;
    float *sc = iadsr__malloc(((size_t)N + 1) * sizeof(float));
    if (!sc)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "semantic_evaluate: out of memory");
    for (int64_t i = begin; i < end; i++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, users[i], &n);
        const int32_t h = n - cut; /* history length, >= 1 */
        text_scores(sem, s, h, sc);
        ranks[i] = iadsr__target_rank(sc, N, s, h, s[h], flags);
    }
    iadsr__free(sc);
    return IADSR_OK;
}

int iadsr_semantic_evaluate(const iadsr_semantic *s, const iadsr_dataset *d,
                            const iadsr_eval_params *p, iadsr_metrics *out)
{
    static const char w[] = "semantic_evaluate";
    if (!iadsr__semantic_ok(s))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s", w,
                          s ? "not a semantic matrix handle"
                            : "the matrix is NULL");
    if (!iadsr__dataset_ok(d))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: invalid dataset", w);
    TRY(iadsr__metrics_out_check(out, "semantic_evaluate: out"));
    iadsr_eval_params ep;
    TRY(iadsr__eval_params_get(&ep, p));
    TRY(iadsr__dataset_fits(d, s->n_items, w, "the matrix covers"));
    int32_t *ranks = NULL;
    int64_t *users = NULL, n = 0;
    TRY(iadsr__rank_users(d, ep.target == IADSR_EVAL_VALID ? 2 : 1, ep.flags,
                          ep.n_threads, semantic_ranks, (void *)(uintptr_t)s,
                          w, &users, &ranks, &n));
    int rc = iadsr__metrics_out(out, ranks, n, "semantic_evaluate: out");
    iadsr__free(users);
    iadsr__free(ranks);
    return rc;
}
