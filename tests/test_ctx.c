/* Tests: inference contexts (score, score_batch, topk, topk_batch): agreement
 * between the entry points, truncation to max_seq_len, top-K order and
 * padding, history exclusion, errors, and no allocation while scoring.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

Suite *suite_ctx(void);

#define NI 60
#define SEQ_L 10 /* max_seq_len of tu_model() */
#define NS (NI + 1)

/* |a - b| small relative to the magnitude of the scores. */
static int close_scores(const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) {
            if (a[i] != b[i])
                return 0;
            continue;
        }
        double tol = 1e-5 * (1.0 + fabs((double)a[i]));
        if (!(fabs((double)a[i] - (double)b[i]) <= tol))
            return 0;
    }
    return 1;
}

/* Reference top-K: sort items by (score desc, id asc), skipping -inf, NaN
 * and (when @p hist) history items; pad with -1 / -inf. */
static void ref_topk(const float *sc, int32_t k, const int32_t *hist,
                     int n_hist, int32_t *ids, float *vals)
{
    tu_cand c[NS];
    int n = 0;
    for (int32_t j = 1; j <= NI; j++) {
        if (isnan(sc[j]) || sc[j] == -INFINITY)
            continue;
        int in_hist = 0;
        for (int i = 0; hist && i < n_hist; i++)
            in_hist |= hist[i] == j;
        if (in_hist)
            continue;
        c[n].s = sc[j];
        c[n].id = j;
        n++;
    }
    qsort(c, (size_t)n, sizeof c[0], tu_cand_cmp);
    for (int i = 0; i < k; i++) {
        ids[i] = i < n ? c[i].id : -1;
        vals[i] = i < n ? c[i].s : -INFINITY;
    }
}

static void assert_topk_eq(const int32_t *ids, const float *vals,
                           const int32_t *rids, const float *rvals, int k,
                           const char *what)
{
    for (int i = 0; i < k; i++) {
        ck_assert_msg(ids[i] == rids[i], "%s: position %d: id %d, expected %d",
                      what, i, (int)ids[i], (int)rids[i]);
        if (vals)
            ck_assert_msg(vals[i] == rvals[i],
                          "%s: position %d: score %g, expected %g", what, i,
                          (double)vals[i], (double)rvals[i]);
    }
}

/* ---- score ---------------------------------------------------------------- */

START_TEST(test_score_basics)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    ck_assert_ptr_eq(iadsr_ctx_model(c), m);
    float a[NS], b[NS], x[NS];
    int32_t s[7];
    tu_make_seq(s, 7, NI, 1);
    TU_OK(iadsr_ctx_score(c, s, 7, a, NS));
    ck_assert(a[0] == -INFINITY);
    for (int j = 1; j <= NI; j++)
        ck_assert_msg(isfinite(a[j]), "score[%d] = %g", j, (double)a[j]);
    /* no state carried between calls */
    int32_t o[3] = {5, 6, 7};
    TU_OK(iadsr_ctx_score(c, o, 3, x, NS));
    TU_OK(iadsr_ctx_score(c, s, 7, b, NS));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a + 1, x + 1, sizeof(float) * NI) != 0);
    /* a larger buffer: only n_items + 1 entries are written */
    float big[NS + 4];
    for (int i = 0; i < NS + 4; i++)
        big[i] = 42.0f;
    TU_OK(iadsr_ctx_score(c, s, 7, big, NS + 4));
    ck_assert(memcmp(big, a, sizeof a) == 0);
    for (int i = NS; i < NS + 4; i++)
        ck_assert(big[i] == 42.0f);
    /* a second context on the same model agrees */
    iadsr_ctx *c2 = tu_new_ctx(m, 5);
    TU_OK(iadsr_ctx_score(c2, s, 7, b, NS));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    iadsr_ctx_free(c2);
    /* length-1 sequences work */
    TU_OK(iadsr_ctx_score(c, s, 1, b, NS));
    ck_assert(b[0] == -INFINITY && isfinite(b[1]));
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

#define NB 20

/* Build a CSR batch of NB sequences of lengths 1..25. */
static void make_batch(int32_t *items, int64_t *offs, int *lens)
{
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        lens[u] = 1 + (u * 7) % 25;
        tu_make_seq(items + offs[u], lens[u], NI, 100u + (uint32_t)u);
        offs[u + 1] = offs[u] + lens[u];
    }
}

START_TEST(test_score_vs_batch)
{
    iadsr_model *m = tu_model(NI, 21);
    int32_t items[NB * 25];
    int64_t offs[NB + 1];
    int lens[NB];
    make_batch(items, offs, lens);
    static float rows[NB * NS], rows1[NB * NS], rows3[NB * NS];
    float one[NS];
    iadsr_ctx *c = tu_new_ctx(m, 0);
    TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, rows, NB * NS));
    int bitwise = 0;
    for (int u = 0; u < NB; u++) {
        TU_OK(iadsr_ctx_score(c, items + offs[u], lens[u], one, NS));
        ck_assert(rows[u * NS] == -INFINITY);
        ck_assert_msg(close_scores(one, rows + u * NS, NS),
                      "user %d: score and score_batch disagree", u);
        bitwise += memcmp(one, rows + u * NS, sizeof one) == 0;
    }
    TU_NOTE("ctx: %d of %d score_batch rows bitwise equal to score\n",
            bitwise, NB);
    /* max_batch 1: the batch path runs the single-sequence shapes */
    iadsr_ctx *c1 = tu_new_ctx(m, 1);
    TU_OK(iadsr_ctx_score_batch(c1, items, offs, NB, rows1, NB * NS));
    for (int u = 0; u < NB; u++) {
        TU_OK(iadsr_ctx_score(c, items + offs[u], lens[u], one, NS));
        ck_assert_msg(memcmp(one, rows1 + u * NS, sizeof one) == 0,
                      "user %d: max_batch 1 row differs from score", u);
    }
    /* chunking (max_batch 3 < NB) gives the same rows */
    iadsr_ctx *c3 = tu_new_ctx(m, 3);
    TU_OK(iadsr_ctx_score_batch(c3, items, offs, NB, rows3, NB * NS));
    ck_assert(close_scores(rows, rows3, NB * NS));
    /* offsets need not describe the whole items array: a sub-batch */
    int64_t sub_offs[4];
    for (int i = 0; i < 4; i++)
        sub_offs[i] = offs[5 + i] - offs[5];
    TU_OK(iadsr_ctx_score_batch(c, items + offs[5], sub_offs, 3, rows3,
                                3 * NS));
    ck_assert(close_scores(rows3, rows + 5 * NS, 3 * NS));
    iadsr_ctx_free(c3);
    iadsr_ctx_free(c1);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_truncation)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    ck_assert_int_eq(iadsr_model_max_seq_len(m), SEQ_L);
    int32_t s[25], t[25];
    tu_make_seq(s, 25, NI, 7);
    memcpy(t, s, sizeof s);
    for (int i = 0; i < 25 - SEQ_L; i++)
        t[i] = (t[i] % NI) + 1; /* a different prefix */
    float a[NS], b[NS], x[NS];
    TU_OK(iadsr_ctx_score(c, s, 25, a, NS));
    TU_OK(iadsr_ctx_score(c, s + 25 - SEQ_L, SEQ_L, b, NS));
    ck_assert_msg(memcmp(a, b, sizeof a) == 0,
                  "items before the last max_seq_len changed the scores");
    TU_OK(iadsr_ctx_score(c, t, 25, b, NS));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    /* ... but every one of the last SEQ_L items matters, even the oldest */
    t[25 - SEQ_L] = (t[25 - SEQ_L] % NI) + 1;
    TU_OK(iadsr_ctx_score(c, t, 25, x, NS));
    ck_assert(memcmp(a, x, sizeof a) != 0);
    /* and the last SEQ_L - 1 items alone give other scores */
    TU_OK(iadsr_ctx_score(c, s + 25 - SEQ_L + 1, SEQ_L - 1, x, NS));
    ck_assert(memcmp(a, x, sizeof a) != 0);

    /* same in the batch and top-K paths */
    int64_t offs[3] = {0, 25, 25 + SEQ_L};
    int32_t items[25 + SEQ_L];
    memcpy(items, s, sizeof s);
    memcpy(items + 25, s + 25 - SEQ_L, SEQ_L * sizeof(int32_t));
    static float rows[2 * NS];
    iadsr_ctx *c1 = tu_new_ctx(m, 1);
    TU_OK(iadsr_ctx_score_batch(c1, items, offs, 2, rows, 2 * NS));
    ck_assert(memcmp(rows, rows + NS, NS * sizeof(float)) == 0);
    ck_assert(memcmp(rows, a, sizeof a) == 0);
    int32_t i1[NI], i2[NI];
    float v1[NI], v2[NI];
    TU_OK(iadsr_ctx_topk(c, s, 25, NI, 0, i1, v1));
    TU_OK(iadsr_ctx_topk(c, s + 25 - SEQ_L, SEQ_L, NI, 0, i2, v2));
    ck_assert(memcmp(i1, i2, sizeof i1) == 0 && memcmp(v1, v2, sizeof v1) == 0);
    iadsr_ctx_free(c1);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- top-K ---------------------------------------------------------------- */

START_TEST(test_topk_matches_argsort)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    static const int ks[] = {1, 2, 5, 17, NI - 1, NI};
    for (uint32_t q = 0; q < 6; q++) {
        int n = 1 + (int)(q * 5) % 14;
        int32_t s[16];
        tu_make_seq(s, n, NI, 40u + q);
        float sc[NS];
        TU_OK(iadsr_ctx_score(c, s, n, sc, NS));
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int k = ks[ki];
            int32_t ids[NI], rids[NI], ids2[NI];
            float vals[NI], rvals[NI];
            TU_OK(iadsr_ctx_topk(c, s, n, k, 0, ids, vals));
            ref_topk(sc, k, NULL, 0, rids, rvals);
            assert_topk_eq(ids, vals, rids, rvals, k, "topk");
            /* scores_out may be NULL */
            TU_OK(iadsr_ctx_topk(c, s, n, k, 0, ids2, NULL));
            ck_assert(memcmp(ids, ids2, (size_t)k * sizeof(int32_t)) == 0);
        }
    }
    /* k == n_items returns a permutation of all items */
    int32_t s[3] = {1, 2, 3}, ids[NI];
    TU_OK(iadsr_ctx_topk(c, s, 3, NI, 0, ids, NULL));
    int seen[NS] = {0};
    for (int i = 0; i < NI; i++) {
        ck_assert(ids[i] >= 1 && ids[i] <= NI);
        ck_assert(!seen[ids[i]]);
        seen[ids[i]] = 1;
    }
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_topk_ties)
{
    /* items 10..29 get zero embeddings: their scores are exactly 0, a
     * 20-way tie that must come out in increasing id order */
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 3);
    iadsr_model *base = tu_model(NI, 3);
    const int d = 16;
    float *emb = malloc((size_t)NS * d * sizeof *emb);
    ck_assert_ptr_nonnull(emb);
    memcpy(emb, iadsr_model_item_embeddings(base), (size_t)NS * d * sizeof *emb);
    for (int r = 10; r < 30; r++)
        memset(emb + r * d, 0, d * sizeof *emb);
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create_from_embeddings(&m, &mp, emb, NS, d, d));
    free(emb);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t s[4] = {3, 40, 41, 12};
    float sc[NS];
    TU_OK(iadsr_ctx_score(c, s, 4, sc, NS));
    for (int j = 10; j < 30; j++)
        ck_assert(sc[j] == 0.0f);
    int32_t ids[NI], rids[NI];
    float vals[NI], rvals[NI];
    TU_OK(iadsr_ctx_topk(c, s, 4, NI, 0, ids, vals));
    ref_topk(sc, NI, NULL, 0, rids, rvals);
    assert_topk_eq(ids, vals, rids, rvals, NI, "ties");
    int run = 0;
    for (int i = 1; i < NI; i++)
        if (vals[i] == vals[i - 1]) {
            ck_assert_int_lt(ids[i - 1], ids[i]);
            run++;
        }
    ck_assert_int_ge(run, 19);
    /* a cut inside the tie keeps the smallest ids */
    int first = -1;
    for (int i = 0; i < NI && first < 0; i++)
        if (vals[i] == 0.0f)
            first = i;
    ck_assert_int_ge(first, 0);
    int k = first + 5;
    TU_OK(iadsr_ctx_topk(c, s, 4, k, 0, ids, vals));
    for (int i = first; i < k; i++)
        ck_assert_int_eq(ids[i], 10 + (i - first));
    /* with the history excluded, 12 leaves the tie and 13 moves up */
    TU_OK(iadsr_ctx_topk(c, s, 4, NI, IADSR_TOPK_EXCLUDE_HISTORY, ids, vals));
    first = -1;
    for (int i = 0; i < NI && first < 0; i++)
        if (vals[i] == 0.0f)
            first = i;
    ck_assert_int_ge(first, 0);
    static const int32_t want[] = {10, 11, 13, 14, 15};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ids[first + i], want[i]);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
    iadsr_model_free(base);
}
END_TEST

START_TEST(test_exclude_history)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    /* repeats, and history beyond the last SEQ_L items */
    int32_t s[15] = {50, 51, 52, 53, 54, 3, 3, 7, 12, 7, 40, 41, 3, 9, 9};
    const int n = 15, n_unique = 11;
    float sc[NS];
    TU_OK(iadsr_ctx_score(c, s, n, sc, NS));
    static const int ks[] = {1, 10, NI - n_unique, NI - n_unique + 1, NI};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        int k = ks[ki];
        int32_t ids[NI], rids[NI], ids2[NI];
        float vals[NI], rvals[NI];
        TU_OK(iadsr_ctx_topk(c, s, n, k, IADSR_TOPK_EXCLUDE_HISTORY, ids,
                             vals));
        ref_topk(sc, k, s, n, rids, rvals);
        assert_topk_eq(ids, vals, rids, rvals, k, "exclude");
        for (int i = 0; i < k; i++)
            for (int h = 0; h < n; h++)
                ck_assert_msg(ids[i] != s[h], "history item %d returned",
                              (int)s[h]);
        /* padding once the candidates run out */
        for (int i = NI - n_unique; i < k; i++) {
            ck_assert_int_eq(ids[i], -1);
            ck_assert(vals[i] == -INFINITY);
        }
        for (int i = 0; i < k && i < NI - n_unique; i++)
            ck_assert(ids[i] >= 1 && isfinite(vals[i]));
        TU_OK(iadsr_ctx_topk(c, s, n, k, IADSR_TOPK_EXCLUDE_HISTORY, ids2,
                             NULL));
        ck_assert(memcmp(ids, ids2, (size_t)k * sizeof(int32_t)) == 0);
    }
    /* without the flag history items may be returned: all NI come back */
    int32_t ids[NI];
    TU_OK(iadsr_ctx_topk(c, s, n, NI, 0, ids, NULL));
    for (int i = 0; i < NI; i++)
        ck_assert(ids[i] >= 1);
    /* a sequence of every item leaves nothing */
    int32_t all[NI];
    for (int i = 0; i < NI; i++)
        all[i] = NI - i;
    float vals[NI];
    TU_OK(iadsr_ctx_topk(c, all, NI, 3, IADSR_TOPK_EXCLUDE_HISTORY, ids, vals));
    for (int i = 0; i < 3; i++)
        ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_topk_batch)
{
    iadsr_model *m = tu_model(NI, 21);
    int32_t items[NB * 25];
    int64_t offs[NB + 1];
    int lens[NB];
    make_batch(items, offs, lens);
    static float rows[NB * NS];
    iadsr_ctx *c = tu_new_ctx(m, 0);
    iadsr_ctx *c3 = tu_new_ctx(m, 3);
    TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, rows, NB * NS));
    static const int ks[] = {1, 10, NI};
    for (int fl = 0; fl < 2; fl++) {
        uint32_t flags = fl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
        for (size_t ki = 0; ki < 3; ki++) {
            int k = ks[ki];
            static int32_t ids[NB * NI], ids3[NB * NI], idsn[NB * NI];
            static float vals[NB * NI], vals3[NB * NI];
            TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, k, flags, ids,
                                       vals));
            TU_OK(iadsr_ctx_topk_batch(c3, items, offs, NB, k, flags, ids3,
                                       vals3));
            TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, k, flags, idsn,
                                       NULL));
            ck_assert(memcmp(ids, idsn, (size_t)(NB * k) * sizeof(int32_t)) ==
                      0);
            for (int u = 0; u < NB; u++) {
                const int32_t *s = items + offs[u];
                int32_t rids[NI], one[NI];
                float rvals[NI], onev[NI];
                /* bitwise against the rows of score_batch */
                ref_topk(rows + u * NS, k, fl ? s : NULL, lens[u], rids,
                         rvals);
                assert_topk_eq(ids + u * k, vals + u * k, rids, rvals, k,
                               "topk_batch");
                /* and the single-sequence call */
                TU_OK(iadsr_ctx_topk(c, s, lens[u], k, flags, one, onev));
                ck_assert_msg(memcmp(one, ids + u * k,
                                     (size_t)k * sizeof(int32_t)) == 0,
                              "user %d k %d flags %u: topk != topk_batch", u,
                              k, (unsigned)flags);
                ck_assert(close_scores(onev, vals + u * k, k));
                ck_assert(memcmp(ids3 + u * k, ids + u * k,
                                 (size_t)k * sizeof(int32_t)) == 0);
            }
        }
    }
    iadsr_ctx_free(c3);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- errors ----------------------------------------------------------------- */

START_TEST(test_buffer_too_small)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t s[3] = {1, 2, 3};
    float sc[NS];
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, sc, NI), IADSR_ERR_BUFFER_TOO_SMALL);
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, sc, 0), IADSR_ERR_BUFFER_TOO_SMALL);
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, sc, -1),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    TU_OK(iadsr_ctx_score(c, s, 3, sc, NS));
    int64_t offs[3] = {0, 1, 3};
    static float rows[2 * NS];
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 2, rows, 2 * NS - 1),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 2, rows, NS),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    TU_OK(iadsr_ctx_score_batch(c, s, offs, 2, rows, 2 * NS));
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_out_of_range)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    static const int32_t bad[] = {0, NI + 1, -1, INT32_MIN, INT32_MAX};
    float sc[NS];
    static float rows[2 * NS];
    int32_t ids[2 * 5];
    float vals[2 * 5];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int at = 0; at < 3; at++) {
            int32_t s[3] = {4, 5, 6};
            s[at] = bad[i];
            TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, sc, NS),
                          IADSR_ERR_OUT_OF_RANGE);
            TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5, 0, ids, vals),
                          IADSR_ERR_OUT_OF_RANGE);
            TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5,
                                         IADSR_TOPK_EXCLUDE_HISTORY, ids,
                                         NULL),
                          IADSR_ERR_OUT_OF_RANGE);
            /* in the second user of a batch */
            int32_t items[4] = {7, 4, 5, 6};
            items[1 + at] = bad[i];
            int64_t offs[3] = {0, 1, 4};
            TU_EXPECT_ERR(iadsr_ctx_score_batch(c, items, offs, 2, rows,
                                                2 * NS),
                          IADSR_ERR_OUT_OF_RANGE);
            TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, items, offs, 2, 5, 0, ids,
                                               vals),
                          IADSR_ERR_OUT_OF_RANGE);
        }
    }
    /* the boundary ids are fine */
    int32_t s[2] = {1, NI};
    TU_OK(iadsr_ctx_score(c, s, 2, sc, NS));
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_bad_args)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t s[3] = {1, 2, 3}, ids[NI + 1];
    float sc[NS], vals[NI + 1];
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 0, sc, NS), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, -3, sc, NS), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 0, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, -1, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, NI + 1, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5, 2u, ids, vals),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 0, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    int64_t offs[3] = {0, 1, 3};
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 2, 5, 0x80u, ids, vals),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 2, NI + 1, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    /* empty sequences and bad offsets in batches */
    int64_t empty[3] = {0, 0, 3};
    int64_t dec[3] = {0, 2, 1};
    int64_t nz[3] = {1, 2, 3};
    static float rows[2 * NS];
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, empty, 2, rows, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, dec, 2, rows, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, nz, 2, rows, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 0, rows, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, empty, 2, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 0, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    /* ctx params */
    iadsr_ctx_params cp;
    iadsr_ctx *c2 = NULL;
    for (int i = 0; i < 6; i++) {
        iadsr_ctx_params_init(&cp);
        int want = IADSR_ERR_INVALID_ARG;
        switch (i) {
        case 0: cp.max_batch = 0; break;
        case 1: cp.max_batch = 65537; break;
        case 2: cp.max_batch = -5; break;
        case 3: cp.flags = 4; want = IADSR_ERR_UNSUPPORTED; break;
        case 4: cp.reserved0 = 2; break;
        default: cp.struct_size = 8; break;
        }
        c2 = TU_SENTINEL(iadsr_ctx);
        TU_EXPECT_ERR(iadsr_ctx_create(&c2, m, &cp), want);
        ck_assert_ptr_null(c2);
    }
    TU_OK(iadsr_ctx_create(&c2, m, NULL));
    iadsr_ctx_free(c2);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- memory --------------------------------------------------------------- */

START_TEST(test_no_alloc_when_scoring)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 4); /* batches of NB are chunked */
    int32_t items[NB * 25];
    int64_t offs[NB + 1];
    int lens[NB];
    make_batch(items, offs, lens);
    static float rows[NB * NS];
    static int32_t ids[NB * NI];
    static float vals[NB * NI];
    float sc[NS];
    long live = iadsr__alloc_live();
    iadsr__alloc_fail_after(0, 0); /* reset the counter */
    iadsr__alloc_fail_after(1, 1); /* and fail every allocation */
    for (int rep = 0; rep < 3; rep++) {
        for (int u = 0; u < NB; u++) {
            const int32_t *s = items + offs[u];
            TU_OK(iadsr_ctx_score(c, s, lens[u], sc, NS));
            TU_OK(iadsr_ctx_topk(c, s, lens[u], 10, 0, ids, vals));
            TU_OK(iadsr_ctx_topk(c, s, lens[u], NI,
                                 IADSR_TOPK_EXCLUDE_HISTORY, ids, NULL));
        }
        TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, rows, NB * NS));
        TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, 7, 0, ids, vals));
        TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, NI,
                                   IADSR_TOPK_EXCLUDE_HISTORY, ids, NULL));
        /* error paths do not allocate either */
        int32_t bad[2] = {1, 0};
        ck_assert_int_eq(iadsr_ctx_score(c, bad, 2, sc, NS),
                         IADSR_ERR_OUT_OF_RANGE);
    }
    long made = iadsr__alloc_fail_after(0, 0);
    ck_assert_msg(made == 0, "%ld allocations while scoring", made);
    ck_assert_int_eq(iadsr__alloc_live(), live);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_free_order)
{
    long live = iadsr__alloc_live();
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t s[3] = {1, 2, 3};
    float a[NS], b[NS];
    TU_OK(iadsr_ctx_score(c, s, 3, a, NS));
    iadsr_model_free(m); /* the context keeps the model alive */
    const iadsr_model *cm = iadsr_ctx_model(c);
    ck_assert_ptr_eq(cm, m);
    ck_assert_int_eq(iadsr_model_n_items(cm), NI);
    TU_OK(iadsr_ctx_score(c, s, 3, b, NS));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    /* a second context from the borrowed model */
    iadsr_ctx *c2 = tu_new_ctx(cm, 0);
    iadsr_ctx_free(c);
    TU_OK(iadsr_ctx_score(c2, s, 3, b, NS));
    ck_assert(memcmp(a, b, sizeof a) == 0);
    iadsr_ctx_free(c2);
    ck_assert_int_eq(iadsr__alloc_live(), live);
}
END_TEST

START_TEST(test_create_alloc_failures)
{
    iadsr_model *m = tu_model(NI, 21);
    for (int persistent = 1; persistent >= 0; persistent--) {
        long k;
        for (k = 1; k < 1000; k++) {
            long live = iadsr__alloc_live();
            iadsr_ctx *c = TU_SENTINEL(iadsr_ctx);
            iadsr__alloc_fail_after(k, persistent);
            int rc = iadsr_ctx_create(&c, m, NULL);
            iadsr__alloc_fail_after(0, 0);
            if (rc == IADSR_OK) {
                int32_t s[2] = {1, 2};
                float sc[NS];
                TU_OK(iadsr_ctx_score(c, s, 2, sc, NS));
                iadsr_ctx_free(c);
                ck_assert_int_eq(iadsr__alloc_live(), live);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                          iadsr_status_name(rc));
            ck_assert(iadsr_last_error()[0] != '\0');
            ck_assert_ptr_null(c);
            ck_assert_msg(iadsr__alloc_live() == live, "k=%ld: %ld leaked", k,
                          iadsr__alloc_live() - live);
        }
        ck_assert(k > 1 && k < 1000);
    }
    iadsr_model_free(m);
}
END_TEST

Suite *suite_ctx(void)
{
    Suite *s = suite_create("ctx");
    TCase *tc = tcase_create("score");
    tcase_add_test(tc, test_score_basics);
    tcase_add_test(tc, test_score_vs_batch);
    tcase_add_test(tc, test_truncation);
    suite_add_tcase(s, tc);

    tc = tcase_create("topk");
    tcase_add_test(tc, test_topk_matches_argsort);
    tcase_add_test(tc, test_topk_ties);
    tcase_add_test(tc, test_exclude_history);
    tcase_add_test(tc, test_topk_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_buffer_too_small);
    tcase_add_test(tc, test_out_of_range);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_test(tc, test_no_alloc_when_scoring);
    tcase_add_test(tc, test_free_order);
    tcase_add_test(tc, test_create_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
