/* Tests: the fused top-K scans (score/scan.c) and the reduced-table scans
 * (IADSR_CTX_F_FP16_SCAN, IADSR_CTX_F_INT8_SCAN) give exactly what scoring every item and sorting
 * gives: the same ids and the same float scores, bit for bit, for single
 * and batched calls, every k, histories excluded or not, ties, item counts
 * that cross the scan's blocks and end in a partial tile, several dims.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

Suite *suite_scan(void);

#define N_USERS 37
#define MAX_K 300

/* A SASRec model with n_items items and dim d whose item table has ties:
 * rows 40..89 are copies of row 39 and rows 90..99 are zero. With big,
 * one entry is set to 70000 (beyond fp16). */
/* A random model's item table (n_items + 1 rows of d floats, malloc'd)
 * and its params, for the tests to edit before from_table(). */
static float *random_table(int32_t n_items, int d, uint64_t seed,
                           iadsr_model_params *mp)
{
    tu_model_params(mp, n_items, seed);
    mp->dim = d;
    iadsr_model *base = NULL;
    TU_OK(iadsr_model_create(&base, mp));
    size_t n = ((size_t)n_items + 1) * (size_t)d;
    float *emb = malloc(n * sizeof *emb);
    ck_assert_ptr_nonnull(emb);
    memcpy(emb, iadsr_model_item_embeddings(base), n * sizeof *emb);
    iadsr_model_free(base);
    return emb;
}

/* The model of @p mp with item table @p emb (freed here). */
static iadsr_model *from_table(const iadsr_model_params *mp, float *emb)
{
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create_from_embeddings(&m, mp, emb, mp->n_items + 1,
                                             mp->dim, mp->dim));
    free(emb);
    return m;
}

static iadsr_model *tie_model(int32_t n_items, int d, uint64_t seed, int big)
{
    iadsr_model_params mp;
    float *emb = random_table(n_items, d, seed, &mp);
    for (int r = 40; r < 90 && r <= n_items; r++)
        memcpy(emb + (size_t)r * d, emb + (size_t)39 * d, (size_t)d * sizeof *emb);
    for (int r = 90; r < 100 && r <= n_items; r++)
        memset(emb + (size_t)r * d, 0, (size_t)d * sizeof *emb);
    if (big)
        emb[(size_t)7 * d + 1] = 70000.0f;
    return from_table(&mp, emb);
}

static uint64_t next_u64(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return *st >> 17;
}

/* Histories: random ids, plus ids at the edges of the scan's blocks and
 * tiles (1, 2047..2050, n_items), and repeats. */
static void make_users(int32_t n_items, int32_t *items, int64_t *offs)
{
    uint64_t st = 12345;
    static const int32_t edge[] = {1, 2047, 2048, 2049, 2050, 40, 41, 95};
    offs[0] = 0;
    for (int u = 0; u < N_USERS; u++) {
        int len = 1 + (int)(next_u64(&st) % 25);
        int64_t o = offs[u];
        for (int i = 0; i < len; i++) {
            int32_t id = 1 + (int32_t)(next_u64(&st) % (uint64_t)n_items);
            if (i % 5 == 1)
                id = edge[(u + i) % 8];
            if (i % 7 == 3)
                id = n_items;
            if (id > n_items)
                id = n_items;
            items[o + i] = id;
        }
        offs[u + 1] = o + len;
    }
}

/* Reference from one score row (sc[j] = item j): sorted by (score desc,
 * id asc), -inf / NaN / excluded history skipped, padded with -1 / -inf. */
static void reference(const float *sc, int32_t n_items, const int32_t *seq,
                      int n, int32_t k, int excl, int32_t *ids, float *vals)
{
    tu_cand *cand = malloc((size_t)n_items * sizeof *cand);
    ck_assert_ptr_nonnull(cand);
    int m = 0;
    for (int32_t j = 1; j <= n_items; j++) {
        if (isnan(sc[j]) || sc[j] == -INFINITY)
            continue;
        int in = 0;
        for (int i = 0; excl && i < n; i++)
            in |= seq[i] == j;
        if (in)
            continue;
        cand[m].s = sc[j];
        cand[m].id = j;
        m++;
    }
    qsort(cand, (size_t)m, sizeof *cand, tu_cand_cmp);
    for (int32_t i = 0; i < k; i++) {
        ids[i] = i < m ? cand[i].id : -1;
        vals[i] = i < m ? cand[i].s : -INFINITY;
    }
    free(cand);
}

/* Bit-for-bit equality of ids and scores. */
static void same(const int32_t *a, const float *sa, const int32_t *b,
                 const float *sb, int32_t k, const char *what, int u)
{
    for (int32_t i = 0; i < k; i++) {
        ck_assert_msg(a[i] == b[i], "%s user %d rank %d: id %d vs %d", what, u,
                      (int)i, (int)a[i], (int)b[i]);
        ck_assert_msg(memcmp(&sa[i], &sb[i], sizeof(float)) == 0,
                      "%s user %d rank %d: score %.9g vs %.9g", what, u,
                      (int)i, (double)sa[i], (double)sb[i]);
    }
}

/* Every entry point against the reference, fp32 and (when the machine can)
 * fp16 contexts. */
static void check_model(int32_t n_items, int d, uint64_t seed)
{
    iadsr_model *m = tie_model(n_items, d, seed, 0);
    int32_t *items = malloc(N_USERS * 25 * sizeof *items);
    int64_t offs[N_USERS + 1];
    ck_assert_ptr_nonnull(items);
    make_users(n_items, items, offs);
    iadsr_ctx *c32 = tu_new_ctx(m, 16); /* 37 users: 3 chunks, last partial */
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.max_batch = 16;
    cp.flags = IADSR_CTX_F_FP16_SCAN;
    iadsr_ctx *c16 = NULL, *c8 = NULL;
    int rc = iadsr_ctx_create(&c16, m, &cp);
    cp.flags = IADSR_CTX_F_INT8_SCAN;
    int rc8 = iadsr_ctx_create(&c8, m, &cp);
    ck_assert_int_eq(rc8, rc); /* both need the packed kernels, nothing else */
    /* without the packed kernels the flag is refused, and says why */
    if (rc != IADSR_OK) {
        ck_assert_int_eq(rc, IADSR_ERR_UNSUPPORTED);
        ck_assert_ptr_null(c16);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "AVX-512"));
    }
    /* every user's scores, single (iadsr_ctx_score) and batched
     * (iadsr_ctx_score_batch, which off the packed kernels may round
     * differently): the references of the single and batched top-K */
    size_t ns = (size_t)n_items + 1;
    float *sc1 = malloc(N_USERS * ns * sizeof *sc1);
    float *scb = malloc(N_USERS * ns * sizeof *scb);
    ck_assert(sc1 && scb);
    for (int u = 0; u < N_USERS; u++)
        TU_OK(iadsr_ctx_score(c32, items + offs[u], (int)(offs[u + 1] - offs[u]),
                              sc1 + (size_t)u * ns, (int64_t)ns));
    TU_OK(iadsr_ctx_score_batch(c32, items, offs, N_USERS, scb,
                                (int64_t)(N_USERS * ns)));
    /* light mode (valgrind, sanitizers): fewer k, the same edges */
    static const int32_t ks_all[] = {1, 7, 10, 32, 33, 100, MAX_K};
    static const int32_t ks_light[] = {1, 33, MAX_K};
    const int32_t *ks = tu_light() ? ks_light : ks_all;
    size_t n_ks = tu_light() ? 3 : sizeof ks_all / sizeof ks_all[0];
    int32_t *rid = malloc(N_USERS * MAX_K * sizeof *rid);
    int32_t *bid = malloc(N_USERS * MAX_K * sizeof *bid);
    float *rv = malloc(N_USERS * MAX_K * sizeof *rv);
    float *bv = malloc(N_USERS * MAX_K * sizeof *bv);
    int32_t id1[MAX_K];
    float v1[MAX_K];
    ck_assert(rid && bid && rv && bv);
    for (size_t ki = 0; ki < n_ks; ki++) {
        int32_t k = ks[ki] < n_items ? ks[ki] : n_items;
        for (int excl = 0; excl <= 1; excl++) {
            uint32_t fl = excl ? IADSR_TOPK_EXCLUDE_HISTORY : 0;
            for (int u = 0; u < N_USERS; u++) {
                const int32_t *s = items + offs[u];
                int n = (int)(offs[u + 1] - offs[u]);
                reference(sc1 + (size_t)u * ns, n_items, s, n, k, excl,
                          rid + u * k, rv + u * k);
                TU_OK(iadsr_ctx_topk(c32, s, n, k, fl, id1, v1));
                same(rid + u * k, rv + u * k, id1, v1, k, "fp32 single", u);
                if (c16) {
                    TU_OK(iadsr_ctx_topk(c16, s, n, k, fl, id1, v1));
                    same(rid + u * k, rv + u * k, id1, v1, k, "fp16 single", u);
                    TU_OK(iadsr_ctx_topk(c8, s, n, k, fl, id1, v1));
                    same(rid + u * k, rv + u * k, id1, v1, k, "int8 single", u);
                }
            }
            if (!c16) /* off the packed kernels batches may round differently */
                for (int u = 0; u < N_USERS; u++)
                    reference(scb + (size_t)u * ns, n_items, items + offs[u],
                              (int)(offs[u + 1] - offs[u]), k, excl,
                              rid + u * k, rv + u * k);
            TU_OK(iadsr_ctx_topk_batch(c32, items, offs, N_USERS, k, fl, bid, bv));
            for (int u = 0; u < N_USERS; u++)
                same(rid + u * k, rv + u * k, bid + u * k, bv + u * k, k,
                     "fp32 batch", u);
            /* without scores_out the ids are the same */
            TU_OK(iadsr_ctx_topk_batch(c32, items, offs, N_USERS, k, fl, bid, NULL));
            ck_assert(memcmp(bid, rid, (size_t)N_USERS * (size_t)k * sizeof *bid) == 0);
            if (c16) {
                TU_OK(iadsr_ctx_topk_batch(c16, items, offs, N_USERS, k, fl, bid, bv));
                for (int u = 0; u < N_USERS; u++)
                    same(rid + u * k, rv + u * k, bid + u * k, bv + u * k, k,
                         "fp16 batch", u);
                TU_OK(iadsr_ctx_topk_batch(c8, items, offs, N_USERS, k, fl, bid, bv));
                for (int u = 0; u < N_USERS; u++)
                    same(rid + u * k, rv + u * k, bid + u * k, bv + u * k, k,
                         "int8 batch", u);
            }
        }
    }
    free(sc1);
    free(scb);
    free(rid);
    free(bid);
    free(rv);
    free(bv);
    free(items);
    iadsr_ctx_free(c8);
    iadsr_ctx_free(c16);
    iadsr_ctx_free(c32);
    iadsr_model_free(m);
}

START_TEST(test_scan_exact_d16) { check_model(3000, 16, 1); }
END_TEST

START_TEST(test_scan_exact_d64) { check_model(2100, 64, 2); }
END_TEST

START_TEST(test_scan_exact_small) { check_model(97, 32, 3); }
END_TEST

/* Items that fp16 cannot tell apart: rows 200..279 are row 199 plus one
 * fp32 ulp in one coordinate (their fp16 copies are equal, their fp32
 * scores differ in the last bits), row 5 holds values near fp16's largest
 * and smallest, row 6 subnormals. The fp16 scan must still return the fp32
 * answer: every near-tie is a candidate and the re-scoring separates
 * them. */
START_TEST(test_scan_fp16_near_ties)
{
    const int32_t n_items = 700;
    const int d = 32;
    iadsr_model_params mp;
    float *emb = random_table(n_items, d, 9, &mp);
    for (int r = 200; r < 280; r++) {
        memcpy(emb + (size_t)r * d, emb + (size_t)199 * d, (size_t)d * sizeof *emb);
        float *x = emb + (size_t)r * d + (r % d);
        for (int t = 0; t < (r - 199) % 4 + 1; t++)
            *x = nextafterf(*x, (r & 1) ? INFINITY : -INFINITY);
    }
    for (int k = 0; k < d; k++) {
        emb[(size_t)5 * d + (size_t)k] = (k & 1) ? 65000.0f : 1e-7f;
        emb[(size_t)6 * d + (size_t)k] = (k & 1) ? -3e-8f : 2e-45f;
    }
    iadsr_model *m = from_table(&mp, emb);
    iadsr_ctx *c32 = tu_new_ctx(m, 0);
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.flags = IADSR_CTX_F_FP16_SCAN;
    iadsr_ctx *c16 = NULL, *c8 = NULL;
    if (iadsr_ctx_create(&c16, m, &cp) != IADSR_OK) { /* no AVX-512 here */
        iadsr_ctx_free(c32);
        iadsr_model_free(m);
        return;
    }
    cp.flags = IADSR_CTX_F_INT8_SCAN;
    TU_OK(iadsr_ctx_create(&c8, m, &cp));
    int32_t seq[6], a[100], b[100];
    float sa[100], sb[100];
    int in_play = 0; /* answers holding two or more near-ties */
    for (int u = 0; u < 60; u++) {
        tu_make_seq(seq, 6, n_items, (uint32_t)u + 1);
        if (u % 3 == 0)
            seq[5] = 200 + u; /* the near-ties' neighbourhood is in play */
        if (u % 5 == 0)
            seq[2] = 5;
        for (int excl = 0; excl <= 1; excl++) {
            uint32_t fl = excl ? IADSR_TOPK_EXCLUDE_HISTORY : 0;
            TU_OK(iadsr_ctx_topk(c32, seq, 6, 100, fl, a, sa));
            TU_OK(iadsr_ctx_topk(c16, seq, 6, 100, fl, b, sb));
            same(a, sa, b, sb, 100, "near ties fp16", u);
            TU_OK(iadsr_ctx_topk(c8, seq, 6, 100, fl, b, sb));
            same(a, sa, b, sb, 100, "near ties int8", u);
            int ties = 0;
            for (int i = 0; i < 100; i++)
                ties += a[i] >= 199 && a[i] < 280;
            in_play += ties >= 2;
        }
    }
    ck_assert_int_gt(in_play, 0);
    iadsr_ctx_free(c8);
    iadsr_ctx_free(c16);
    iadsr_ctx_free(c32);
    iadsr_model_free(m);
}
END_TEST

/* Dims the packed kernels do not take: the fused scans are not used and
 * the fp16 flag is refused; the fp32 calls still match the reference. */
START_TEST(test_scan_other_dim)
{
    check_model(300, 24, 4);
    iadsr_model *m = tie_model(300, 24, 4, 0);
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.flags = IADSR_CTX_F_FP16_SCAN;
    iadsr_ctx *c = tu_sentinel();
    ck_assert_int_eq(iadsr_ctx_create(&c, m, &cp), IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "dim 24"));
    iadsr_model_free(m);
}
END_TEST

/* A table value beyond the fp16 range: the flag is refused (nothing is
 * approximated silently); fp32 contexts are unaffected. */
START_TEST(test_scan_fp16_range)
{
    ck_assert_uint_eq(IADSR_CTX_F_FP16_SCAN, 1u); /* ABI: values never change */
    ck_assert_uint_eq(IADSR_CTX_F_INT8_SCAN, 2u);
    iadsr_model *m = tie_model(500, 16, 5, 1);
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.flags = IADSR_CTX_F_FP16_SCAN;
    iadsr_ctx *c = tu_sentinel();
    ck_assert_int_eq(iadsr_ctx_create(&c, m, &cp), IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(c);
    const char *msg = iadsr_last_error();
    ck_assert_msg(strstr(msg, "65504") || strstr(msg, "AVX-512"), "%s", msg);
    iadsr_ctx *c32 = tu_new_ctx(m, 0);
    int32_t s[3] = {7, 8, 9}, ids[5], ids8[5];
    float v[5], v8[5];
    TU_OK(iadsr_ctx_topk(c32, s, 3, 5, 0, ids, v));
    ck_assert_int_ge(ids[0], 1);
    /* the int8 table has no range limit: accepted, and exact */
    cp.flags = IADSR_CTX_F_INT8_SCAN;
    iadsr_ctx *c8 = NULL;
    if (iadsr_ctx_create(&c8, m, &cp) == IADSR_OK) {
        TU_OK(iadsr_ctx_topk(c8, s, 3, 5, 0, ids8, v8));
        same(ids, v, ids8, v8, 5, "int8, big value", 0);
        iadsr_ctx_free(c8);
    }
    /* one reduced table at most */
    cp.flags = IADSR_CTX_F_FP16_SCAN | IADSR_CTX_F_INT8_SCAN;
    c8 = tu_sentinel();
    ck_assert_int_eq(iadsr_ctx_create(&c8, m, &cp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(c8);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "both"));
    iadsr_ctx_free(c32);
    iadsr_model_free(m);
}
END_TEST

Suite *suite_scan(void)
{
    Suite *s = suite_create("scan");
    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scan_exact_d16);
    tcase_add_test(tc, test_scan_exact_d64);
    tcase_add_test(tc, test_scan_exact_small);
    tcase_add_test(tc, test_scan_fp16_near_ties);
    tcase_add_test(tc, test_scan_other_dim);
    tcase_add_test(tc, test_scan_fp16_range);
    suite_add_tcase(s, tc);
    return s;
}
