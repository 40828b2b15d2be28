/* Tests: serving top-K requests (iadsr_ctx_topk_v2, iadsr_ctx_topk_batch_v2,
 * iadsr_topk_params): defaults equal iadsr_ctx_topk(); cold users scored
 * from the host's item scores or user vector; unknown history ids skipped
 * and counted; allow- and deny-lists against a brute-force top-K over
 * iadsr_ctx_score(); ties and k beyond the candidates; the batch form and
 * its capacity; every invalid argument; no allocation; the 0.1 functions
 * unchanged.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include "score/ctx.h"

#include <stddef.h>

Suite *suite_serving(void);

#define NI 60
#define NS (NI + 1)
#define SEQ_L 10 /* max_seq_len of tu_model() */
#define DIM 16   /* dim of tu_model() */
#define NB 12    /* users of the batch tests */
#define KMAX (NI + 8)

/* Cast a handle to another handle type (a "foreign" handle). */
#define AS(T, p) ((T *)(void *)(p))

static _Alignas(64) unsigned char zero_block[8192];

/* ---- the reference ---------------------------------------------------------- */

static int in_list(int32_t id, const int32_t *l, int64_t n)
{
    for (int64_t i = 0; l && i < n; i++)
        if (l[i] == id)
            return 1;
    return 0;
}

/* Brute-force top-K over sc[1..NI] (scores indexed by id) under a request:
 * candidates are allowed (if an allow-list), not denied, not in @p hist
 * when the request excludes the history, with a score that is not -inf or
 * NaN; sorted by (score desc, id asc); padded with -1 / -inf. Returns the
 * number of results. */
static int ref_topk(const float *sc, int k, const iadsr_topk_params *r,
                    const int32_t *hist, int n_hist, int32_t *ids,
                    float *vals)
{
    tu_cand c[NS];
    int n = 0;
    for (int32_t j = 1; j <= NI; j++) {
        if (isnan(sc[j]) || sc[j] == -INFINITY)
            continue;
        if (r && r->allow_ids && !in_list(j, r->allow_ids, r->n_allow))
            continue;
        if (r && in_list(j, r->deny_ids, r->n_deny))
            continue;
        if (r && (r->flags & IADSR_TOPK_EXCLUDE_HISTORY) &&
            in_list(j, hist, n_hist))
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
    return n < k ? n : k;
}

static void assert_same(const int32_t *ids, const float *vals,
                        const int32_t *rids, const float *rvals, int k,
                        const char *what)
{
    for (int i = 0; i < k; i++) {
        ck_assert_msg(ids[i] == rids[i], "%s: position %d: id %d, expected %d",
                      what, i, (int)ids[i], (int)rids[i]);
        ck_assert_msg(memcmp(&vals[i], &rvals[i], sizeof(float)) == 0,
                      "%s: position %d: score %.9g, expected %.9g", what, i,
                      (double)vals[i], (double)rvals[i]);
    }
}

static int close_scores(const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) {
            if (a[i] != b[i])
                return 0;
            continue;
        }
        if (!(fabs((double)a[i] - (double)b[i]) <= 1e-5 * (1.0 + fabs(a[i]))))
            return 0;
    }
    return 1;
}

/* ---- layout and defaults ---------------------------------------------------- */

START_TEST(test_params_layout)
{
    ck_assert_uint_eq(sizeof(iadsr_topk_params), 72);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, flags), 4);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, cold_item_scores), 8);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, n_cold_item_scores), 16);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, cold_user_vector), 24);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, cold_user_vector_dim), 32);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, allow_ids), 40);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, n_allow), 48);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, deny_ids), 56);
    ck_assert_uint_eq(offsetof(iadsr_topk_params, n_deny), 64);
    ck_assert_uint_eq(IADSR_TOPK_SKIP_UNKNOWN, 2u);
    iadsr_topk_params_init(NULL);
    iadsr_topk_params p;
    memset(&p, 0xff, sizeof p);
    iadsr_topk_params_init(&p);
    ck_assert_uint_eq(p.struct_size, sizeof p);
    ck_assert(p.flags == 0 && p.cold_item_scores == NULL &&
              p.n_cold_item_scores == 0 && p.cold_user_vector == NULL &&
              p.cold_user_vector_dim == 0 && p.allow_ids == NULL &&
              p.n_allow == 0 && p.deny_ids == NULL && p.n_deny == 0);
}
END_TEST

/* No request = iadsr_ctx_topk(), bitwise, for both flags and every k; the
 * batch form = iadsr_ctx_topk_batch(). */
START_TEST(test_defaults_equal_topk)
{
    iadsr_model *m = tu_model(NI, 21);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    static const int ks[] = {1, 7, NI - 1, NI};
    for (int fl = 0; fl < 2; fl++) {
        uint32_t flags = fl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
        r.flags = flags;
        for (uint32_t q = 0; q < 5; q++) {
            int32_t s[25];
            int n = 1 + (int)(q * 6) % 25;
            tu_make_seq(s, n, NI, 10u + q);
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int k = ks[ki];
                int32_t a[NI], b[NI], nf = -1, nsk = -1;
                float av[NI], bv[NI];
                TU_OK(iadsr_ctx_topk(c, s, n, k, flags, a, av));
                TU_OK(iadsr_ctx_topk_v2(c, s, n, k, fl ? &r : NULL, b, bv,
                                        &nf, &nsk));
                assert_same(b, bv, a, av, k, "v2 vs topk");
                ck_assert_int_eq(nsk, 0);
                int real = 0;
                while (real < k && a[real] != -1)
                    real++;
                ck_assert_int_eq(nf, real);
                /* scores_out and the counts may be NULL */
                TU_OK(iadsr_ctx_topk_v2(c, s, n, k, fl ? &r : NULL, b, NULL,
                                        NULL, NULL));
                ck_assert(memcmp(a, b, (size_t)k * sizeof(int32_t)) == 0);
            }
        }
        /* batch */
        int32_t items[NB * 25];
        int64_t offs[NB + 1];
        offs[0] = 0;
        for (int u = 0; u < NB; u++) {
            int len = 1 + (u * 7) % 25;
            tu_make_seq(items + offs[u], len, NI, 100u + (uint32_t)u);
            offs[u + 1] = offs[u] + len;
        }
        static int32_t ia[NB * 10], ib[NB * 10];
        static float va[NB * 10], vb[NB * 10];
        int32_t nf[NB];
        int64_t nsk[NB];
        iadsr_ctx *c3 = tu_new_ctx(m, 3);
        for (int which = 0; which < 2; which++) {
            iadsr_ctx *cc = which ? c3 : c;
            TU_OK(iadsr_ctx_topk_batch(cc, items, offs, NB, 10, flags, ia,
                                       va));
            TU_OK(iadsr_ctx_topk_batch_v2(cc, items, offs, NB, 10, &r, ib, vb,
                                          NB * 10, nf, nsk));
            assert_same(ib, vb, ia, va, NB * 10, "batch v2 vs topk_batch");
            for (int u = 0; u < NB; u++) {
                ck_assert_int_eq(nf[u], 10);
                ck_assert_int_eq(nsk[u], 0);
            }
        }
        iadsr_ctx_free(c3);
    }
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- cold users ------------------------------------------------------------- */

START_TEST(test_cold_item_scores)
{
    iadsr_model *m = tu_model(NI, 22);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    /* popularity counts with ties, an excluded (-inf) and a NaN item */
    float pop[NS];
    pop[0] = 12345.0f; /* ignored */
    for (int j = 1; j <= NI; j++)
        pop[j] = (float)((j * 37) % 11);
    pop[5] = -INFINITY;
    pop[6] = NAN;
    pop[7] = 1000.5f;
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.cold_item_scores = pop;
    r.n_cold_item_scores = NS;
    static const int ks[] = {1, 10, NI - 2, NI, NI + 5};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        int k = ks[ki];
        int32_t ids[KMAX], rids[KMAX], nf = -1, nsk = -1;
        float vals[KMAX], rvals[KMAX];
        TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, k, &r, ids, vals, &nf, &nsk));
        int want = ref_topk(pop, k, &r, NULL, 0, rids, rvals);
        assert_same(ids, vals, rids, rvals, k, "cold item scores");
        ck_assert_int_eq(nf, want);
        ck_assert_int_eq(nsk, 0);
        /* the scores are the host's values, exactly */
        for (int i = 0; i < nf; i++)
            ck_assert(memcmp(&vals[i], &pop[ids[i]], sizeof(float)) == 0);
        ck_assert_int_eq(ids[0], 7);
        /* NaN and -inf items are never candidates: NI - 2 results at most */
        ck_assert_int_eq(nf, k < NI - 2 ? k : NI - 2);
        for (int i = nf; i < k; i++)
            ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
    }
    /* a non-NULL seq with n_seq 0 is cold too, and the fallback is unused
     * for a warm history (the result is the plain top-K) */
    int32_t s[3] = {4, 9, 2}, a[10], b[10];
    float av[10], bv[10];
    TU_OK(iadsr_ctx_topk_v2(c, s, 0, 10, &r, a, av, NULL, NULL));
    ck_assert_int_eq(a[0], 7);
    TU_OK(iadsr_ctx_topk(c, s, 3, 10, 0, a, av));
    TU_OK(iadsr_ctx_topk_v2(c, s, 3, 10, &r, b, bv, NULL, NULL));
    assert_same(b, bv, a, av, 10, "warm user with a fallback");
    /* combined with filters */
    static const int32_t allow[] = {3, 7, 9, 1, 3, 22, 6, 5};
    static const int32_t deny[] = {7};
    r.allow_ids = allow;
    r.n_allow = 8;
    r.deny_ids = deny;
    r.n_deny = 1;
    int32_t ids[10], rids[10], nf = -1;
    float vals[10], rvals[10];
    TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, 10, &r, ids, vals, &nf, NULL));
    int want = ref_topk(pop, 10, &r, NULL, 0, rids, rvals);
    assert_same(ids, vals, rids, rvals, 10, "cold with filters");
    ck_assert_int_eq(nf, want);
    ck_assert_int_eq(nf, 4); /* 3, 9, 1, 22: 7 denied, 5 and 6 unrankable */
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* The host user vector: scored as iadsr_ctx_score() scores a history's h.
 * Run for the packed-table path (dim 16) and the BLAS path (dim 12) and
 * for the other backbones. */
#define N_CFG 4
static iadsr_model *cfg_model(int which, uint64_t seed)
{
    iadsr_model_params p;
    tu_model_params(&p, NI, seed);
    if (which == 1)
        p.dim = 12;
    if (which == 2 || which == 3) {
        iadsr_model_params_init(&p);
        p.backbone = which == 2 ? IADSR_BACKBONE_GRU4REC : IADSR_BACKBONE_CASER;
        p.n_items = NI;
        p.dim = which == 3 ? 12 : 16;
        p.max_seq_len = SEQ_L;
        p.seed = seed;
        if (which == 3) {
            p.caser_window = 3;
            p.caser_h_filters = 8;
            p.caser_v_filters = 2;
        }
    }
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

START_TEST(test_cold_user_vector)
{
    iadsr_model *m = cfg_model(_i, 30 + (uint64_t)_i);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int d = iadsr_model_dim(m);
    const float *E = iadsr_model_item_embeddings(m);
    float h[DIM];
    int32_t s[8];
    tu_make_seq(s, 8, NI, 3);
    TU_OK(iadsr_ctx_user_vector(c, s, 8, h));
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.cold_user_vector = h;
    r.cold_user_vector_dim = d;
    /* h of a history as the fallback: exactly that history's answer */
    int32_t ids[NI], wids[NI], rids[NI], nf = -1;
    float vals[NI], wvals[NI], rvals[NI], sc[NS];
    TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, NI, &r, ids, vals, &nf, NULL));
    TU_OK(iadsr_ctx_topk_v2(c, s, 8, NI, NULL, wids, wvals, NULL, NULL));
    assert_same(ids, vals, wids, wvals, NI, "cold h vs its history");
    ck_assert_int_eq(nf, NI);
    TU_OK(iadsr_ctx_score(c, s, 8, sc, NS));
    ref_topk(sc, NI, NULL, NULL, 0, rids, rvals);
    assert_same(ids, vals, rids, rvals, NI, "cold h vs iadsr_ctx_score");
    /* a unit vector e_t: the scores are column t of the item table,
     * exactly (every other product is zero) */
    float e[DIM];
    for (int t = 0; t < d; t += 5) {
        memset(e, 0, sizeof e);
        e[t] = 1.0f;
        r.cold_user_vector = e;
        TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, NI, &r, ids, vals, &nf, NULL));
        float col[NS];
        col[0] = -INFINITY;
        for (int j = 1; j <= NI; j++)
            col[j] = E[(size_t)j * (size_t)d + (size_t)t];
        ref_topk(col, NI, NULL, NULL, 0, rids, rvals);
        for (int i = 0; i < NI; i++) {
            ck_assert_msg(vals[i] == col[ids[i]],
                          "e_%d: item %d: score %.9g, E[i][t] %.9g", t,
                          (int)ids[i], (double)vals[i],
                          (double)col[ids[i]]);
            ck_assert_int_eq(ids[i], rids[i]);
        }
    }
    /* in a batch: cold rows equal the single answer; warm rows too */
    r.cold_user_vector = h;
    r.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    int32_t items[3 * 8];
    memcpy(items, s, sizeof s);
    tu_make_seq(items + 8, 5, NI, 77);
    int64_t offs[6] = {0, 0, 8, 8, 13, 13}; /* cold, s, cold, warm, cold */
    int32_t bids[5 * 10], one[10], bnf[5];
    float bvals[5 * 10], onev[10];
    iadsr_ctx *c2 = tu_new_ctx(m, 2);
    TU_OK(iadsr_ctx_topk_batch_v2(c2, items, offs, 5, 10, &r, bids, bvals, 50,
                                  bnf, NULL));
    TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, 10, &r, one, onev, NULL, NULL));
    for (int u = 0; u < 5; u += 2) {
        assert_same(bids + u * 10, bvals + u * 10, one, onev, 10,
                    "cold row of a batch");
        ck_assert_int_eq(bnf[u], 10);
    }
    for (int u = 1; u < 5; u += 2) {
        int n = (int)(offs[u + 1] - offs[u]);
        TU_OK(iadsr_ctx_topk_v2(c, items + offs[u], n, 10, &r, one, onev,
                                NULL, NULL));
        ck_assert(memcmp(one, bids + u * 10, sizeof one) == 0);
        ck_assert(close_scores(onev, bvals + u * 10, 10));
    }
    iadsr_ctx_free(c2);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- unknown ids ------------------------------------------------------------ */

START_TEST(test_skip_unknown)
{
    iadsr_model *m = tu_model(NI, 23);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    static const int32_t bad[] = {0, -1, NI + 1, INT32_MAX, INT32_MIN};
    for (int fl = 0; fl < 2; fl++) {
        r.flags = IADSR_TOPK_SKIP_UNKNOWN |
                  (fl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u);
        for (uint32_t q = 0; q < 6; q++) {
            /* a clean history; then unknown ids spliced in, some inside the
             * last max_seq_len positions (they must not use up the window) */
            int32_t clean[20], dirty[40];
            int n = 3 + (int)(q * 3);
            tu_make_seq(clean, n, NI, 50u + q);
            int nd = 0, n_bad = 0;
            for (int i = 0; i < n; i++) {
                if ((i + (int)q) % 3 == 0)
                    dirty[nd++] = bad[(i + n_bad++) % 5];
                dirty[nd++] = clean[i];
            }
            dirty[nd++] = bad[q % 5];
            n_bad++;
            int32_t a[NI], b[NI], nfa = -1, nfb = -1, ska = -1, skb = -1;
            float av[NI], bv[NI];
            TU_OK(iadsr_ctx_topk_v2(c, clean, n, NI, &r, a, av, &nfa, &ska));
            TU_OK(iadsr_ctx_topk_v2(c, dirty, nd, NI, &r, b, bv, &nfb, &skb));
            assert_same(b, bv, a, av, NI, "skipped ids");
            ck_assert_int_eq(nfa, nfb);
            ck_assert_int_eq(ska, 0);
            ck_assert_int_eq(skb, n_bad);
            /* and the plain top-K of the clean history */
            int32_t p[NI];
            float pv[NI];
            TU_OK(iadsr_ctx_topk(c, clean, n, NI,
                                 fl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u, p, pv));
            assert_same(a, av, p, pv, NI, "clean v2 vs topk");
            /* without the flag the dirty history fails */
            iadsr_topk_params plain = r;
            plain.flags &= ~IADSR_TOPK_SKIP_UNKNOWN;
            TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, dirty, nd, NI, &plain, b, bv,
                                            NULL, NULL),
                          IADSR_ERR_OUT_OF_RANGE);
            ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "ctx_topk_v2"));
        }
    }
    /* a history of unknown ids only is a cold user */
    int32_t unk[3] = {0, NI + 3, -7}, ids[5], nf = -1, sk = -1;
    float vals[5];
    r.flags = IADSR_TOPK_SKIP_UNKNOWN;
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, unk, 3, 5, &r, ids, vals, &nf, &sk),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "cold-user fallback"));
    float pop[NS];
    for (int j = 0; j <= NI; j++)
        pop[j] = (float)j;
    r.cold_item_scores = pop;
    r.n_cold_item_scores = NS;
    TU_OK(iadsr_ctx_topk_v2(c, unk, 3, 5, &r, ids, vals, &nf, &sk));
    ck_assert_int_eq(sk, 3);
    ck_assert_int_eq(nf, 5);
    for (int i = 0; i < 5; i++)
        ck_assert(ids[i] == NI - i && vals[i] == (float)(NI - i));

    /* the batch: per-user counts, rows equal to the single calls */
    int32_t items[NB * 9];
    int64_t offs[NB + 1];
    int64_t want_skip[NB];
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        int len = u % 4 == 0 ? 0 : 1 + (u * 5) % 9;
        tu_make_seq(items + offs[u], len, NI, 200u + (uint32_t)u);
        want_skip[u] = 0;
        for (int i = 0; i < len; i++)
            if ((i + u) % 4 == 1) {
                items[offs[u] + i] = bad[(i + u) % 5];
                want_skip[u]++;
            }
        offs[u + 1] = offs[u] + len;
    }
    /* user 5: only unknown ids */
    for (int64_t i = offs[5]; i < offs[6]; i++)
        items[i] = 0;
    want_skip[5] = offs[6] - offs[5];
    ck_assert_int_gt(want_skip[5], 0);
    r.flags = IADSR_TOPK_SKIP_UNKNOWN | IADSR_TOPK_EXCLUDE_HISTORY;
    static int32_t bids[NB * 10];
    static float bvals[NB * 10];
    int32_t bnf[NB];
    int64_t bsk[NB];
    iadsr_ctx *c3 = tu_new_ctx(m, 3);
    TU_OK(iadsr_ctx_topk_batch_v2(c3, items, offs, NB, 10, &r, bids, bvals,
                                  NB * 10, bnf, bsk));
    for (int u = 0; u < NB; u++) {
        int32_t one[10], nf1 = -1, sk1 = -1;
        float onev[10];
        int len = (int)(offs[u + 1] - offs[u]);
        TU_OK(iadsr_ctx_topk_v2(c, items + offs[u], len, 10, &r, one, onev,
                                &nf1, &sk1));
        ck_assert_msg(memcmp(one, bids + u * 10, sizeof one) == 0,
                      "user %d: batch row differs", u);
        ck_assert(close_scores(onev, bvals + u * 10, 10));
        ck_assert_int_eq(bsk[u], want_skip[u]);
        ck_assert_int_eq(sk1, (int)want_skip[u]);
        ck_assert_int_eq(bnf[u], nf1);
    }
    iadsr_ctx_free(c3);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* ---- candidate filters ------------------------------------------------------ */

START_TEST(test_filters)
{
    iadsr_model *m = tu_model(NI, 24);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    /* unsorted, with duplicates, overlapping each other and the history */
    static const int32_t allow[] = {40, 3, 17, 3, 60, 1, 25, 9, 40, 33, 12,
                                    50, 8, 2};
    static const int32_t deny[] = {25, 2, 59, 25, 7};
    int32_t s[6] = {12, 9, 30, 44, 12, 5};
    float sc[NS];
    TU_OK(iadsr_ctx_score(c, s, 6, sc, NS));
    static const int ks[] = {1, 4, 10, 11, 12, NI, NI + 3};
    for (int variant = 0; variant < 6; variant++) {
        iadsr_topk_params r;
        iadsr_topk_params_init(&r);
        if (variant & 1) {
            r.allow_ids = allow;
            r.n_allow = (int64_t)(sizeof allow / sizeof allow[0]);
        }
        if (variant & 2) {
            r.deny_ids = deny;
            r.n_deny = (int64_t)(sizeof deny / sizeof deny[0]);
        }
        if (variant & 4)
            r.flags = IADSR_TOPK_EXCLUDE_HISTORY;
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int k = ks[ki];
            int32_t ids[KMAX], rids[KMAX], nf = -1;
            float vals[KMAX], rvals[KMAX];
            TU_OK(iadsr_ctx_topk_v2(c, s, 6, k, &r, ids, vals, &nf, NULL));
            int want = ref_topk(sc, k, &r, s, 6, rids, rvals);
            assert_same(ids, vals, rids, rvals, k, "filters");
            ck_assert_int_eq(nf, want);
            for (int i = 0; i < nf; i++) {
                if (r.allow_ids)
                    ck_assert(in_list(ids[i], allow, r.n_allow));
                if (r.deny_ids)
                    ck_assert(!in_list(ids[i], deny, r.n_deny));
                if (r.flags)
                    ck_assert(!in_list(ids[i], s, 6));
            }
            for (int i = nf; i < k; i++)
                ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
        }
    }
    /* the counts: 12 distinct ids allowed, 2 of them denied (25, 2) and 2
     * in the history (12, 9) */
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.allow_ids = allow;
    r.n_allow = (int64_t)(sizeof allow / sizeof allow[0]);
    r.deny_ids = deny;
    r.n_deny = (int64_t)(sizeof deny / sizeof deny[0]);
    r.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    int32_t ids[KMAX], nf = -1;
    float vals[KMAX];
    TU_OK(iadsr_ctx_topk_v2(c, s, 6, NI + 3, &r, ids, vals, &nf, NULL));
    ck_assert_int_eq(nf, 12 - 2 - 2);
    /* an empty allow-list (non-NULL, n_allow 0) leaves nothing */
    r.n_allow = 0;
    TU_OK(iadsr_ctx_topk_v2(c, s, 6, 5, &r, ids, vals, &nf, NULL));
    ck_assert_int_eq(nf, 0);
    for (int i = 0; i < 5; i++)
        ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
    /* a deny-list of every item leaves nothing either */
    int32_t all[NI];
    for (int i = 0; i < NI; i++)
        all[i] = NI - i;
    iadsr_topk_params_init(&r);
    r.deny_ids = all;
    r.n_deny = NI;
    TU_OK(iadsr_ctx_topk_v2(c, s, 6, 3, &r, ids, vals, &nf, NULL));
    ck_assert_int_eq(nf, 0);
    ck_assert(ids[0] == -1 && ids[2] == -1);

    /* the batch: every row is the single answer under the same request */
    iadsr_topk_params_init(&r);
    r.allow_ids = allow;
    r.n_allow = (int64_t)(sizeof allow / sizeof allow[0]);
    r.deny_ids = deny;
    r.n_deny = (int64_t)(sizeof deny / sizeof deny[0]);
    r.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    int32_t items[NB * 12];
    int64_t offs[NB + 1];
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        int len = 1 + (u * 5) % 12;
        tu_make_seq(items + offs[u], len, NI, 300u + (uint32_t)u);
        offs[u + 1] = offs[u] + len;
    }
    static int32_t bids[NB * 12];
    static float bvals[NB * 12];
    int32_t bnf[NB];
    for (int mb = 0; mb < 2; mb++) {
        iadsr_ctx *cb = tu_new_ctx(m, mb ? 5 : 0);
        TU_OK(iadsr_ctx_topk_batch_v2(cb, items, offs, NB, 12, &r, bids, bvals,
                                      NB * 12, bnf, NULL));
        for (int u = 0; u < NB; u++) {
            int32_t one[12], nf1 = -1;
            float onev[12];
            int len = (int)(offs[u + 1] - offs[u]);
            TU_OK(iadsr_ctx_topk_v2(c, items + offs[u], len, 12, &r, one, onev,
                                    &nf1, NULL));
            ck_assert_msg(memcmp(one, bids + u * 12, sizeof one) == 0,
                          "max_batch %d user %d: batch row differs",
                          mb ? 5 : 64, u);
            ck_assert(close_scores(onev, bvals + u * 12, 12));
            ck_assert_int_eq(bnf[u], nf1);
            ck_assert_int_le(nf1, 10);
        }
        iadsr_ctx_free(cb);
    }
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* Ties go to the smaller id, inside an allow-list too; k beyond n_items. */
START_TEST(test_ties_and_large_k)
{
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 3);
    iadsr_model *base = tu_model(NI, 3);
    float *emb = malloc((size_t)NS * DIM * sizeof *emb);
    ck_assert_ptr_nonnull(emb);
    memcpy(emb, iadsr_model_item_embeddings(base),
           (size_t)NS * DIM * sizeof *emb);
    for (int r = 10; r < 30; r++)
        memset(emb + r * DIM, 0, DIM * sizeof *emb); /* scores exactly 0 */
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create_from_embeddings(&m, &mp, emb, NS, DIM, DIM));
    free(emb);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t s[4] = {3, 40, 41, 12};
    /* allow only tied items, listed in decreasing order */
    int32_t allow[8] = {29, 25, 21, 17, 13, 12, 11, 10};
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.allow_ids = allow;
    r.n_allow = 8;
    r.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    int32_t ids[KMAX], nf = -1;
    float vals[KMAX];
    TU_OK(iadsr_ctx_topk_v2(c, s, 4, 10, &r, ids, vals, &nf, NULL));
    static const int32_t want[] = {10, 11, 13, 17, 21, 25, 29};
    ck_assert_int_eq(nf, 7); /* 12 is history */
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(ids[i], want[i]);
        ck_assert(vals[i] == 0.0f);
    }
    for (int i = 7; i < 10; i++)
        ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
    /* k > n_items: all NI items, then padding (iadsr_ctx_topk refuses) */
    TU_OK(iadsr_ctx_topk_v2(c, s, 4, NI + 8, NULL, ids, vals, &nf, NULL));
    ck_assert_int_eq(nf, NI);
    int seen[NS] = {0};
    for (int i = 0; i < NI; i++) {
        ck_assert(ids[i] >= 1 && ids[i] <= NI && !seen[ids[i]]);
        seen[ids[i]] = 1;
        if (i > 0)
            ck_assert(vals[i] < vals[i - 1] ||
                      (vals[i] == vals[i - 1] && ids[i] > ids[i - 1]));
    }
    for (int i = NI; i < NI + 8; i++)
        ck_assert(ids[i] == -1 && vals[i] == -INFINITY);
    /* and without scores_out (the context's heap keys hold n_items) */
    int32_t ids2[KMAX];
    TU_OK(iadsr_ctx_topk_v2(c, s, 4, NI + 8, NULL, ids2, NULL, &nf, NULL));
    ck_assert(memcmp(ids, ids2, sizeof ids) == 0);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 4, NI + 8, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
    iadsr_model_free(base);
}
END_TEST

/* ---- errors ----------------------------------------------------------------- */

START_TEST(test_batch_capacity)
{
    iadsr_model *m = tu_model(NI, 25);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int32_t items[5] = {1, 2, 3, 4, 5};
    int64_t offs[4] = {0, 2, 2, 5};
    int32_t ids[15];
    float vals[15];
    float pop[NS] = {0};
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.cold_item_scores = pop;
    r.n_cold_item_scores = NS;
    static const int64_t caps[] = {14, 5, 0, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, items, offs, 3, 5, &r, ids,
                                              vals, caps[i], NULL, NULL),
                      IADSR_ERR_BUFFER_TOO_SMALL);
        ck_assert_msg(strstr(iadsr_last_error(),
                             "n_users * k = 3 * 5 = 15") != NULL,
                      "message: %s", iadsr_last_error());
    }
    /* n_users * k beyond int64 */
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, items, offs, INT64_MAX / 2, 5,
                                          &r, ids, vals, INT64_MAX, NULL,
                                          NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "overflows"));
    TU_OK(iadsr_ctx_topk_batch_v2(c, items, offs, 3, 5, &r, ids, vals, 15,
                                  NULL, NULL));
    TU_OK(iadsr_ctx_topk_batch_v2(c, items, offs, 3, 5, &r, ids, NULL, 15,
                                  NULL, NULL));
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

#define POISON_ID 777
static void poison(int32_t *ids, float *vals, int n)
{
    for (int i = 0; i < n; i++) {
        ids[i] = POISON_ID;
        vals[i] = 5.5f;
    }
}

static void untouched(const int32_t *ids, const float *vals, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(ids[i] == POISON_ID && vals[i] == 5.5f,
                      "output %d written by a failed call", i);
}

/* A request error: both entry points, the same code, a message naming the
 * request field, outputs untouched. */
#define REQ_ERR(req, code, needle)                                            \
    do {                                                                      \
        poison(ids, vals, 10);                                                \
        nf = -5;                                                              \
        TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, (req), ids, vals, &nf,    \
                                        NULL),                                \
                      code);                                                  \
        ck_assert_msg(strstr(iadsr_last_error(), (needle)) != NULL,           \
                      "'%s' not in '%s'", (needle), iadsr_last_error());      \
        TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 5, (req), ids,   \
                                              vals, 10, bnf, NULL),           \
                      code);                                                  \
        ck_assert_msg(strstr(iadsr_last_error(), (needle)) != NULL,           \
                      "batch: '%s' not in '%s'", (needle),                    \
                      iadsr_last_error());                                    \
        untouched(ids, vals, 10);                                             \
        ck_assert_int_eq(nf, -5);                                             \
    } while (0)

START_TEST(test_bad_args)
{
    iadsr_model *m = tu_model(NI, 26);
    iadsr_dataset *data = tu_synth(5, NI, 6, 3, 5, 1);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    struct iadsr_ctx zc;
    memset(&zc, 0, sizeof zc);
    memset(zero_block, 0, sizeof zero_block);
    int32_t s[3] = {1, 2, 3}, ids[10], nf = -5, bnf[2];
    int64_t offs[3] = {0, 1, 3};
    float vals[10];
    iadsr_topk_params r;

    /* contexts */
    iadsr_ctx *fc[] = {NULL, &zc, AS(iadsr_ctx, m), AS(iadsr_ctx, data),
                       AS(iadsr_ctx, zero_block)};
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++) {
        TU_EXPECT_ERR(iadsr_ctx_topk_v2(fc[i], s, 3, 5, NULL, ids, vals, NULL,
                                        NULL),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(fc[i], s, offs, 2, 5, NULL, ids,
                                              vals, 10, NULL, NULL),
                      IADSR_ERR_INVALID_ARG);
    }
    /* NULL pointers, negative and zero counts */
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, NULL, NULL, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "ids_out is NULL"));
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, NULL, 3, 5, NULL, ids, vals, NULL,
                                    NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "seq is NULL"));
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, -1, 5, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "n_seq must be >= 0"));
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 0, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, -2, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "k must be >= 1"));
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, NULL, 0, 5, NULL, ids, vals, NULL,
                                    NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "is empty"));
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 5, NULL, NULL, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, NULL, offs, 2, 5, NULL, ids,
                                          vals, 10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "items is NULL"));
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, NULL, 2, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 0, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, -3, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 0, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    static const int64_t nz[3] = {1, 2, 3}, dec[3] = {0, 2, 1},
                         empty[3] = {0, 0, 3};
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, nz, 2, 5, NULL, ids, vals, 10,
                                          NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, dec, 2, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "offsets decrease"));
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, empty, 2, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "sequence 0 is empty"));
    /* history ids without SKIP_UNKNOWN, in the second user of a batch */
    int32_t badh[3] = {1, 2, NI + 1};
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, badh, 3, 5, NULL, ids, vals, NULL,
                                    NULL),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, badh, offs, 2, 5, NULL, ids,
                                          vals, 10, NULL, NULL),
                  IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "sequence 1"));

    /* the request struct: struct_size */
    static const uint32_t small[] = {0, 4, 8, 71, 5000, UINT32_MAX};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        iadsr_topk_params_init(&r);
        r.struct_size = small[i];
        REQ_ERR(&r, IADSR_ERR_INVALID_ARG, "struct_size");
    }
    /* a newer, larger struct: zero tail accepted, non-zero refused */
    struct {
        iadsr_topk_params p;
        uint64_t newer[2];
    } big;
    memset(&big, 0, sizeof big);
    iadsr_topk_params_init(&big.p);
    big.p.struct_size = sizeof big;
    TU_OK(iadsr_ctx_topk_v2(c, s, 3, 5, &big.p, ids, vals, &nf, NULL));
    big.newer[1] = 1;
    REQ_ERR(&big.p, IADSR_ERR_UNSUPPORTED, "non-zero");
    /* flags */
    iadsr_topk_params_init(&r);
    r.flags = 4u;
    REQ_ERR(&r, IADSR_ERR_UNSUPPORTED, "flags");
    r.flags = 0x80000001u;
    REQ_ERR(&r, IADSR_ERR_UNSUPPORTED, "flags");
    /* negative counts, NULL arrays with counts */
    float pop[NS], h[DIM];
    for (int j = 0; j <= NI; j++)
        pop[j] = (float)j;
    for (int j = 0; j < DIM; j++)
        h[j] = 0.25f * (float)j;
    int32_t allow[3] = {1, 2, 3};
    for (int f = 0; f < 4; f++) {
        static const char *const names[] = {"n_cold_item_scores",
                                            "cold_user_vector_dim",
                                            "n_allow", "n_deny"};
        for (int null = 0; null < 2; null++) {
            iadsr_topk_params_init(&r);
            int64_t v = null ? 3 : -1;
            switch (f) {
            case 0:
                r.cold_item_scores = null ? NULL : pop;
                r.n_cold_item_scores = v;
                break;
            case 1:
                r.cold_user_vector = null ? NULL : h;
                r.cold_user_vector_dim = v;
                break;
            case 2:
                r.allow_ids = null ? NULL : allow;
                r.n_allow = v;
                break;
            default:
                r.deny_ids = null ? NULL : allow;
                r.n_deny = v;
                break;
            }
            REQ_ERR(&r, IADSR_ERR_INVALID_ARG, names[f]);
        }
    }
    /* both fallbacks */
    iadsr_topk_params_init(&r);
    r.cold_item_scores = pop;
    r.n_cold_item_scores = NS;
    r.cold_user_vector = h;
    r.cold_user_vector_dim = DIM;
    REQ_ERR(&r, IADSR_ERR_INVALID_ARG, "at most one");
    /* lengths of the fallbacks */
    static const int64_t bad_ns[] = {NI, NS + 1, 1};
    for (int i = 0; i < 3; i++) {
        iadsr_topk_params_init(&r);
        r.cold_item_scores = pop;
        r.n_cold_item_scores = bad_ns[i];
        REQ_ERR(&r, IADSR_ERR_DIM_MISMATCH, "n_items + 1");
    }
    static const int64_t bad_d[] = {DIM - 1, DIM + 1, 1};
    for (int i = 0; i < 3; i++) {
        iadsr_topk_params_init(&r);
        r.cold_user_vector = h;
        r.cold_user_vector_dim = bad_d[i];
        REQ_ERR(&r, IADSR_ERR_DIM_MISMATCH, "cold_user_vector_dim");
    }
    /* a non-finite user vector */
    static const float nonfinite[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        float hv[DIM];
        memcpy(hv, h, sizeof hv);
        hv[DIM - 1 - i] = nonfinite[i];
        iadsr_topk_params_init(&r);
        r.cold_user_vector = hv;
        r.cold_user_vector_dim = DIM;
        REQ_ERR(&r, IADSR_ERR_NUMERIC, "not finite");
    }
    /* out-of-range filter ids, anywhere in the list */
    static const int32_t bad_ids[] = {0, -1, NI + 1, INT32_MIN, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        int32_t l[4] = {5, 6, 7, 8};
        l[i % 4] = bad_ids[i];
        iadsr_topk_params_init(&r);
        r.allow_ids = l;
        r.n_allow = 4;
        REQ_ERR(&r, IADSR_ERR_OUT_OF_RANGE, "allow_ids[");
        iadsr_topk_params_init(&r);
        r.deny_ids = l;
        r.n_deny = 4;
        REQ_ERR(&r, IADSR_ERR_OUT_OF_RANGE, "deny_ids[");
    }
    /* the request is validated even where it is not used (warm users) */
    iadsr_topk_params_init(&r);
    r.cold_user_vector = h;
    r.cold_user_vector_dim = DIM + 3;
    REQ_ERR(&r, IADSR_ERR_DIM_MISMATCH, "cold_user_vector_dim");
    /* the context still works */
    TU_OK(iadsr_ctx_topk_v2(c, s, 3, 5, NULL, ids, vals, &nf, NULL));
    ck_assert_int_eq(nf, 5);
    iadsr_ctx_free(c);
    iadsr_dataset_free(data);
    iadsr_model_free(m);
}
END_TEST

/* ---- the 0.1 functions, and memory ----------------------------------------- */

START_TEST(test_existing_untouched)
{
    iadsr_model *m = tu_model(NI, 27);
    iadsr_ctx *c = tu_new_ctx(m, 4);
    int32_t items[NB * 9];
    int64_t offs[NB + 1];
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        int len = 1 + (u * 4) % 9;
        tu_make_seq(items + offs[u], len, NI, 400u + (uint32_t)u);
        offs[u + 1] = offs[u] + len;
    }
    static float sc0[NB * NS], sc1[NB * NS];
    static int32_t t0[NB * 10], t1[NB * 10];
    static float v0[NB * 10], v1[NB * 10];
    TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, sc0, NB * NS));
    TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, 10,
                               IADSR_TOPK_EXCLUDE_HISTORY, t0, v0));
    /* exercise every v2 path on the same context */
    float pop[NS];
    for (int j = 0; j <= NI; j++)
        pop[j] = (float)(j % 7);
    int32_t allow[5] = {9, 1, 4, 50, 33};
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.flags = IADSR_TOPK_SKIP_UNKNOWN | IADSR_TOPK_EXCLUDE_HISTORY;
    r.cold_item_scores = pop;
    r.n_cold_item_scores = NS;
    r.allow_ids = allow;
    r.n_allow = 5;
    int32_t ids[NB * 10];
    float vals[NB * 10];
    int32_t mix[4] = {0, 3, NI + 9, 4};
    TU_OK(iadsr_ctx_topk_v2(c, mix, 4, 10, &r, ids, vals, NULL, NULL));
    TU_OK(iadsr_ctx_topk_v2(c, NULL, 0, 10, &r, ids, vals, NULL, NULL));
    TU_OK(iadsr_ctx_topk_batch_v2(c, items, offs, NB, 10, &r, ids, vals,
                                  NB * 10, NULL, NULL));
    /* the 0.1 calls give the same bits as before */
    TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, sc1, NB * NS));
    TU_OK(iadsr_ctx_topk_batch(c, items, offs, NB, 10,
                               IADSR_TOPK_EXCLUDE_HISTORY, t1, v1));
    ck_assert(memcmp(sc0, sc1, sizeof sc0) == 0);
    ck_assert(memcmp(t0, t1, sizeof t0) == 0);
    ck_assert(memcmp(v0, v1, sizeof v0) == 0);
    /* ... and still refuse what only v2 accepts */
    int32_t s[3] = {1, 2, 3};
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5, IADSR_TOPK_SKIP_UNKNOWN, ids,
                                 vals),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, items, offs, NB, 5,
                                       IADSR_TOPK_SKIP_UNKNOWN, ids, vals),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 0, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    int32_t bad[2] = {1, 0};
    TU_EXPECT_ERR(iadsr_ctx_topk(c, bad, 2, 5, 0, ids, vals),
                  IADSR_ERR_OUT_OF_RANGE);
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.flags = IADSR_TOPK_SKIP_UNKNOWN;
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    iadsr_dataset *d = tu_dataset(items, offs, NB, NI);
    TU_EXPECT_ERR(iadsr_evaluate(m, d, &ep, &mt), IADSR_ERR_UNSUPPORTED);
    iadsr_dataset_free(d);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_no_alloc)
{
    iadsr_model *m = tu_model(NI, 28);
    iadsr_ctx *c = tu_new_ctx(m, 4);
    int32_t items[NB * 9];
    int64_t offs[NB + 1];
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        int len = u % 3 == 0 ? 0 : 1 + (u * 4) % 9;
        tu_make_seq(items + offs[u], len, NI, 500u + (uint32_t)u);
        if (len > 1)
            items[offs[u]] = -4;
        offs[u + 1] = offs[u] + len;
    }
    float h[DIM];
    for (int j = 0; j < DIM; j++)
        h[j] = 0.1f * (float)(j - 4);
    float pop[NS];
    for (int j = 0; j <= NI; j++)
        pop[j] = (float)(j % 5);
    int32_t allow[6] = {9, 1, 4, 50, 33, 9}, deny[2] = {4, 12};
    iadsr_topk_params r;
    iadsr_topk_params_init(&r);
    r.flags = IADSR_TOPK_SKIP_UNKNOWN | IADSR_TOPK_EXCLUDE_HISTORY;
    r.allow_ids = allow;
    r.n_allow = 6;
    r.deny_ids = deny;
    r.n_deny = 2;
    static int32_t ids[NB * KMAX];
    static float vals[NB * KMAX];
    int32_t nf[NB];
    int64_t sk[NB];
    long live = iadsr__alloc_live();
    iadsr__alloc_fail_after(0, 0); /* reset the counter */
    iadsr__alloc_fail_after(1, 1); /* and fail every allocation */
    for (int fb = 0; fb < 2; fb++) {
        r.cold_item_scores = fb ? NULL : pop;
        r.n_cold_item_scores = fb ? 0 : NS;
        r.cold_user_vector = fb ? h : NULL;
        r.cold_user_vector_dim = fb ? DIM : 0;
        for (int u = 0; u < NB; u++)
            TU_OK(iadsr_ctx_topk_v2(c, items + offs[u],
                                    (int32_t)(offs[u + 1] - offs[u]), KMAX,
                                    &r, ids, NULL, nf, NULL));
        TU_OK(iadsr_ctx_topk_batch_v2(c, items, offs, NB, 7, &r, ids, vals,
                                      NB * KMAX, nf, sk));
        TU_OK(iadsr_ctx_topk_batch_v2(c, items, offs, NB, KMAX, &r, ids,
                                      NULL, NB * KMAX, NULL, NULL));
        ck_assert_int_eq(iadsr_ctx_topk_v2(c, NULL, 0, 5, NULL, ids, vals,
                                           NULL, NULL),
                         IADSR_ERR_INVALID_ARG);
    }
    long made = iadsr__alloc_fail_after(0, 0);
    ck_assert_msg(made == 0, "%ld allocations while serving", made);
    ck_assert_int_eq(iadsr__alloc_live(), live);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

Suite *suite_serving(void)
{
    Suite *s = suite_create("serving");
    TCase *tc = tcase_create("request");
    tcase_add_test(tc, test_params_layout);
    tcase_add_test(tc, test_defaults_equal_topk);
    tcase_add_test(tc, test_cold_item_scores);
    tcase_add_loop_test(tc, test_cold_user_vector, 0, N_CFG);
    tcase_add_test(tc, test_skip_unknown);
    tcase_add_test(tc, test_filters);
    tcase_add_test(tc, test_ties_and_large_k);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_batch_capacity);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("compat");
    tcase_add_test(tc, test_existing_untouched);
    tcase_add_test(tc, test_no_alloc);
    suite_add_tcase(s, tc);
    return s;
}
