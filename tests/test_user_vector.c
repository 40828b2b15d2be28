/* Tests: user vectors (iadsr_ctx_user_vector, iadsr_ctx_user_vector_batch).
 * For every backbone the scores of iadsr_ctx_score() are the plain dot
 * products of the user vector with the item table rows (no bias term);
 * the batch form equals the single one; bad arguments give the codes of
 * iadsr_ctx_score() and leave the output untouched; no allocation.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include "score/ctx.h"

Suite *suite_user_vector(void);

#define NI 60
#define NS (NI + 1)
#define MAXD 32
#define NB 11 /* users of the batch tests (chunked by max_batch 4) */

/* Cast a handle to another handle type (a "foreign" handle). */
#define AS(T, p) ((T *)(void *)(p))

static _Alignas(64) unsigned char zero_block[8192];

/* The configurations: SASRec, pre-LN SASRec, GRU4Rec, Caser at dim 16
 * (the packed-table scoring kernel where AVX-512 is present), and SASRec
 * and Caser at dim 12 (always the BLAS path). */
#define N_CFG 6
static const char *const cfg_name[N_CFG] = {
    "SASRec", "SASRec pre-LN", "GRU4Rec", "Caser", "SASRec d=12",
    "Caser d=12"};

static iadsr_model *cfg_model(int which, uint64_t seed)
{
    iadsr_model_params p;
    tu_model_params(&p, NI, seed);
    if (which == 1)
        p.flags = IADSR_MODEL_F_PRE_LN;
    if (which == 4)
        p.dim = 12;
    if (which == 2 || which == 3 || which == 5) {
        iadsr_model_params_init(&p);
        p.backbone = which == 2 ? IADSR_BACKBONE_GRU4REC : IADSR_BACKBONE_CASER;
        p.n_items = NI;
        p.dim = which == 5 ? 12 : 16;
        p.max_seq_len = 10;
        p.dropout = 0.1f;
        p.seed = seed;
        if (which != 2) {
            p.caser_window = 3;
            p.caser_h_filters = 8;
            p.caser_v_filters = 2;
        }
    }
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

/* NB sequences of lengths 1..25 (some longer than max_seq_len 10). */
static void make_batch(int32_t *items, int64_t *offs, int *lens)
{
    offs[0] = 0;
    for (int u = 0; u < NB; u++) {
        lens[u] = 1 + (u * 7) % 25;
        tu_make_seq(items + offs[u], lens[u], NI, 100u + (uint32_t)u);
        offs[u + 1] = offs[u] + lens[u];
    }
}

/* score[i] == <h, E[i]> for every item, within 1e-5 relative; entry 0 is
 * -inf and row 0 of E zeros. Returns the largest relative difference. */
static double check_dot(const iadsr_model *m, const float *h,
                        const float *score, const char *what)
{
    int d = iadsr_model_dim(m);
    const float *E = iadsr_model_item_embeddings(m);
    ck_assert_ptr_nonnull(E);
    ck_assert(score[0] == -INFINITY);
    for (int k = 0; k < d; k++)
        ck_assert_msg(E[k] == 0.0f, "%s: padding row", what);
    double worst = 0.0;
    for (int i = 1; i <= NI; i++) {
        double dot = 0.0;
        for (int k = 0; k < d; k++)
            dot += (double)h[k] * (double)E[(size_t)i * (size_t)d + (size_t)k];
        double diff = fabs(dot - (double)score[i]);
        double rel = diff / (fabs(dot) > 1.0 ? fabs(dot) : 1.0);
        ck_assert_msg(rel <= 1e-5, "%s: item %d: score %.9g, <h, E[i]> %.9g",
                      what, i, (double)score[i], dot);
        if (rel > worst)
            worst = rel;
    }
    return worst;
}

/* ---- the formula ---------------------------------------------------------- */

START_TEST(test_score_is_dot_product)
{
    int which = _i;
    iadsr_model *m = cfg_model(which, 31 + (uint64_t)which);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    int d = iadsr_model_dim(m);
    ck_assert_int_le(d, MAXD);
    static const int lens[] = {1, 2, 5, 10, 17};
    double worst = 0.0;
    for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
        int32_t s[17];
        float h[MAXD], sc[NS];
        tu_make_seq(s, lens[t], NI, (uint32_t)(7 * t + 1));
        TU_OK(iadsr_ctx_user_vector(c, s, lens[t], h));
        TU_OK(iadsr_ctx_score(c, s, lens[t], sc, NS));
        double w = check_dot(m, h, sc, cfg_name[which]);
        if (w > worst)
            worst = w;
        /* the same vector again: the scratch is reused, not accumulated */
        float h2[MAXD];
        TU_OK(iadsr_ctx_user_vector(c, s, lens[t], h2));
        ck_assert(memcmp(h, h2, (size_t)d * sizeof(float)) == 0);
    }
    TU_NOTE("%s: largest relative difference %.3g\n", cfg_name[which], worst);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* A trained model (weights away from their initialisation, and the packed
 * table rebuilt by the snapshot) follows the same formula. */
START_TEST(test_trained_model)
{
    iadsr_dataset *data = tu_synth(200, NI, 6, 5, 20, 3);
    iadsr_model *init = cfg_model(_i == 0 ? 0 : 3, 5);
    iadsr_model *m = tu_trained(init, data, 2);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    for (int64_t u = 0; u < 20; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(data, u, &n);
        float h[MAXD], sc[NS];
        TU_OK(iadsr_ctx_user_vector(c, s, n, h));
        TU_OK(iadsr_ctx_score(c, s, n, sc, NS));
        check_dot(m, h, sc, _i == 0 ? "trained SASRec" : "trained Caser");
    }
    iadsr_ctx_free(c);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(data);
}
END_TEST

/* ---- batch ---------------------------------------------------------------- */

START_TEST(test_batch_equals_single)
{
    int which = _i;
    iadsr_model *m = cfg_model(which, 41 + (uint64_t)which);
    int d = iadsr_model_dim(m);
    int32_t items[NB * 25];
    int64_t offs[NB + 1];
    int lens[NB];
    make_batch(items, offs, lens);
    /* max_batch 4 chunks the batch; 0 = the default (one chunk) */
    static const int mb[] = {4, 0, 1};
    for (size_t b = 0; b < sizeof mb / sizeof mb[0]; b++) {
        iadsr_ctx *c = tu_new_ctx(m, mb[b]);
        float hb[NB * MAXD], h[MAXD];
        static float rows[NB * NS];
        TU_OK(iadsr_ctx_user_vector_batch(c, items, offs, NB, hb));
        TU_OK(iadsr_ctx_score_batch(c, items, offs, NB, rows, NB * NS));
        for (int u = 0; u < NB; u++) {
            TU_OK(iadsr_ctx_user_vector(c, items + offs[u], lens[u], h));
            for (int k = 0; k < d; k++) {
                double a = hb[u * d + k], e = h[k];
                ck_assert_msg(fabs(a - e) <= 1e-5 * (1.0 + fabs(e)),
                              "%s max_batch %d user %d [%d]: batch %.9g, "
                              "single %.9g",
                              cfg_name[which], mb[b], u, k, a, e);
            }
            check_dot(m, hb + u * d, rows + (size_t)u * NS, cfg_name[which]);
        }
        /* a sub-range through offsets that do not start at items[0] */
        float hs[3 * MAXD];
        int64_t sub[4] = {0, offs[6] - offs[5], offs[7] - offs[5],
                          offs[8] - offs[5]};
        TU_OK(iadsr_ctx_user_vector_batch(c, items + offs[5], sub, 3, hs));
        for (int k = 0; k < 3 * d; k++)
            ck_assert_msg(fabs(hs[k] - hb[5 * d + k]) <=
                              1e-5 * (1.0 + fabs(hb[5 * d + k])),
                          "%s: sub-batch [%d]", cfg_name[which], k);
        iadsr_ctx_free(c);
    }
    iadsr_model_free(m);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

#define POISON 12345.5f

static void poison(float *v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = POISON;
}

static void assert_untouched(const float *v, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(v[i] == POISON, "%s: out[%d] written", what, i);
}

/* The user-vector call and iadsr_ctx_score() with the same arguments must
 * fail with the same code, and out stays as it was. */
#define SAME_ERR(uv_call, score_call, code, out, n)                           \
    do {                                                                      \
        poison(out, n);                                                       \
        TU_EXPECT_ERR(uv_call, code);                                         \
        TU_EXPECT_ERR(score_call, code);                                      \
        assert_untouched(out, n, #uv_call);                                   \
    } while (0)

START_TEST(test_bad_args)
{
    iadsr_model *m = cfg_model(0, 51);
    iadsr_dataset *data = tu_synth(5, NI, 6, 3, 5, 1);
    iadsr_ctx *c = tu_new_ctx(m, 0);
    struct iadsr_ctx zc;
    memset(&zc, 0, sizeof zc);
    memset(zero_block, 0, sizeof zero_block);
    int d = iadsr_model_dim(m);
    int32_t s[3] = {1, 2, 3};
    int64_t offs[3] = {0, 1, 3};
    float h[2 * MAXD], sc[2 * NS];

    /* NULL and foreign contexts */
    iadsr_ctx *fc[] = {NULL, &zc, AS(iadsr_ctx, m), AS(iadsr_ctx, data),
                       AS(iadsr_ctx, zero_block)};
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++) {
        SAME_ERR(iadsr_ctx_user_vector(fc[i], s, 3, h),
                 iadsr_ctx_score(fc[i], s, 3, sc, NS), IADSR_ERR_INVALID_ARG,
                 h, d);
        SAME_ERR(iadsr_ctx_user_vector_batch(fc[i], s, offs, 2, h),
                 iadsr_ctx_score_batch(fc[i], s, offs, 2, sc, 2 * NS),
                 IADSR_ERR_INVALID_ARG, h, 2 * d);
    }
    /* NULL arrays */
    SAME_ERR(iadsr_ctx_user_vector(c, NULL, 3, h),
             iadsr_ctx_score(c, NULL, 3, sc, NS), IADSR_ERR_INVALID_ARG, h,
             d);
    TU_EXPECT_ERR(iadsr_ctx_user_vector(c, s, 3, NULL), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, NULL, NS), IADSR_ERR_INVALID_ARG);
    SAME_ERR(iadsr_ctx_user_vector_batch(c, NULL, offs, 2, h),
             iadsr_ctx_score_batch(c, NULL, offs, 2, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    SAME_ERR(iadsr_ctx_user_vector_batch(c, s, NULL, 2, h),
             iadsr_ctx_score_batch(c, s, NULL, 2, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    TU_EXPECT_ERR(iadsr_ctx_user_vector_batch(c, s, offs, 2, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 2, NULL, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    /* zero and negative lengths, empty sequences, bad offsets */
    SAME_ERR(iadsr_ctx_user_vector(c, s, 0, h),
             iadsr_ctx_score(c, s, 0, sc, NS), IADSR_ERR_INVALID_ARG, h, d);
    SAME_ERR(iadsr_ctx_user_vector(c, s, -1, h),
             iadsr_ctx_score(c, s, -1, sc, NS), IADSR_ERR_INVALID_ARG, h, d);
    SAME_ERR(iadsr_ctx_user_vector_batch(c, s, offs, 0, h),
             iadsr_ctx_score_batch(c, s, offs, 0, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    SAME_ERR(iadsr_ctx_user_vector_batch(c, s, offs, -1, h),
             iadsr_ctx_score_batch(c, s, offs, -1, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    static const int64_t empty_user[3] = {0, 0, 3};
    SAME_ERR(iadsr_ctx_user_vector_batch(c, s, empty_user, 2, h),
             iadsr_ctx_score_batch(c, s, empty_user, 2, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    static const int64_t bad_start[3] = {1, 2, 3};
    SAME_ERR(iadsr_ctx_user_vector_batch(c, s, bad_start, 2, h),
             iadsr_ctx_score_batch(c, s, bad_start, 2, sc, 2 * NS),
             IADSR_ERR_INVALID_ARG, h, 2 * d);
    /* ids 0, negative and above n_items, in the first or a later user */
    static const int32_t bad_ids[3][3] = {
        {1, 0, 3}, {1, NI + 1, 3}, {-2, 2, 3}};
    for (int b = 0; b < 3; b++) {
        SAME_ERR(iadsr_ctx_user_vector(c, bad_ids[b], 3, h),
                 iadsr_ctx_score(c, bad_ids[b], 3, sc, NS),
                 IADSR_ERR_OUT_OF_RANGE, h, d);
        SAME_ERR(iadsr_ctx_user_vector_batch(c, bad_ids[b], offs, 2, h),
                 iadsr_ctx_score_batch(c, bad_ids[b], offs, 2, sc, 2 * NS),
                 IADSR_ERR_OUT_OF_RANGE, h, 2 * d);
    }
    /* the context still works */
    TU_OK(iadsr_ctx_user_vector(c, s, 3, h));
    TU_OK(iadsr_ctx_user_vector_batch(c, s, offs, 2, h));
    iadsr_ctx_free(c);
    iadsr_dataset_free(data);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_no_alloc)
{
    iadsr_model *m = cfg_model(0, 61);
    iadsr_ctx *c = tu_new_ctx(m, 4);
    int32_t items[NB * 25];
    int64_t offs[NB + 1];
    int lens[NB];
    make_batch(items, offs, lens);
    float hb[NB * MAXD], h[MAXD];
    long live = iadsr__alloc_live();
    iadsr__alloc_fail_after(0, 0); /* reset the counter */
    iadsr__alloc_fail_after(1, 1); /* and fail every allocation */
    for (int u = 0; u < NB; u++)
        TU_OK(iadsr_ctx_user_vector(c, items + offs[u], lens[u], h));
    TU_OK(iadsr_ctx_user_vector_batch(c, items, offs, NB, hb));
    int32_t bad[2] = {1, 0};
    ck_assert_int_eq(iadsr_ctx_user_vector(c, bad, 2, h),
                     IADSR_ERR_OUT_OF_RANGE);
    long made = iadsr__alloc_fail_after(0, 0);
    ck_assert_msg(made == 0, "%ld allocations", made);
    ck_assert_int_eq(iadsr__alloc_live(), live);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

Suite *suite_user_vector(void)
{
    Suite *s = suite_create("user_vector");
    TCase *tc = tcase_create("formula");
    tcase_add_loop_test(tc, test_score_is_dot_product, 0, N_CFG);
    tcase_add_loop_test(tc, test_trained_model, 0, 2);
    tcase_add_loop_test(tc, test_batch_equals_single, 0, N_CFG);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_no_alloc);
    suite_add_tcase(s, tc);
    return s;
}
