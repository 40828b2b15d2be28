/* Tests: the public per-user ranks (iadsr_evaluate_ranks) against
 * iadsr_evaluate, the size query, a too-small buffer, bad arguments and
 * thread-count independence.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <math.h>
#include <stddef.h>

#include "data/dataset.h"

Suite *suite_eval_ranks(void);

#define NI 60

typedef struct fixture {
    iadsr_dataset *d;
    iadsr_model *init, *m;
} fixture;

/* Users of length 1..20 (some too short for either target), a model trained
 * for one epoch so that ranks spread over the whole range. */
static void fx_open(fixture *f)
{
    f->d = tu_synth(tu_light() ? 60 : 200, NI, 6, 1, 20, 23);
    f->init = tu_model(NI, 5);
    f->m = tu_trained(f->init, f->d, 1);
}

static void fx_close(fixture *f)
{
    iadsr_model_free(f->m);
    iadsr_model_free(f->init);
    iadsr_dataset_free(f->d);
}

static void params(iadsr_eval_params *ep, int target, uint32_t flags,
                   int n_threads)
{
    iadsr_eval_params_init(ep);
    ep->target = target;
    ep->flags = flags;
    ep->n_threads = n_threads;
}

/* The ranks of @p ep, after a size query; *n receives their count. */
static void get_ranks(const fixture *f, const iadsr_eval_params *ep,
                      int64_t **users, int32_t **ranks, int64_t *n)
{
    int64_t need = -1;
    TU_OK(iadsr_evaluate_ranks(f->m, f->d, ep, NULL, NULL, 0, &need));
    ck_assert_int_gt(need, 0);
    *users = malloc((size_t)need * sizeof **users);
    *ranks = malloc((size_t)need * sizeof **ranks);
    ck_assert(*users && *ranks);
    *n = -1;
    TU_OK(iadsr_evaluate_ranks(f->m, f->d, ep, *users, *ranks, need, n));
    ck_assert_int_eq(*n, need);
}

/* HR@K and NDCG@K of iadsr_evaluate recomputed from the ranks, for both
 * targets and both history modes; the users are those with a target, in
 * row order. */
START_TEST(test_ranks_match_evaluate)
{
    fixture f;
    fx_open(&f);
    static const int targets[2] = {IADSR_EVAL_TEST, IADSR_EVAL_VALID};
    for (int t = 0; t < 2; t++)
        for (uint32_t flags = 0; flags <= IADSR_TOPK_EXCLUDE_HISTORY;
             flags++) {
            iadsr_eval_params ep;
            params(&ep, targets[t], flags, 1);
            iadsr_metrics mt;
            memset(&mt, 0, sizeof mt);
            mt.struct_size = sizeof mt;
            TU_OK(iadsr_evaluate(f.m, f.d, &ep, &mt));
            int64_t *users = NULL, n = 0;
            int32_t *ranks = NULL;
            get_ranks(&f, &ep, &users, &ranks, &n);
            ck_assert_int_eq(n, mt.n_users);
            int cut = targets[t] == IADSR_EVAL_VALID ? 2 : 1;
            int64_t e = 0;
            for (int64_t u = 0; u < iadsr_dataset_n_users(f.d); u++) {
                int32_t len = 0;
                (void)iadsr_dataset_user_items(f.d, u, &len);
                if (len >= cut + 1) {
                    ck_assert_int_lt(e, n);
                    ck_assert_int_eq(users[e], u);
                    e++;
                }
            }
            ck_assert_int_eq(e, n);
            static const int ks[3] = {5, 10, 20};
            double hr[3] = {0, 0, 0}, nd[3] = {0, 0, 0};
            for (int64_t i = 0; i < n; i++) {
                ck_assert_int_ge(ranks[i], 0);
                ck_assert_int_lt(ranks[i], NI);
                for (int k = 0; k < 3; k++)
                    if (ranks[i] < ks[k]) {
                        hr[k] += 1.0;
                        nd[k] += 1.0 / log2((double)ranks[i] + 2.0);
                    }
            }
            const double want_hr[3] = {mt.hr5, mt.hr10, mt.hr20};
            const double want_nd[3] = {mt.ndcg5, mt.ndcg10, mt.ndcg20};
            for (int k = 0; k < 3; k++) {
                ck_assert_double_eq_tol(hr[k] / (double)n, want_hr[k], 1e-12);
                ck_assert_double_eq_tol(nd[k] / (double)n, want_nd[k], 1e-12);
            }
            free(users);
            free(ranks);
        }
    fx_close(&f);
}
END_TEST

/* One and two worker threads give the same ranks. */
START_TEST(test_ranks_thread_invariance)
{
    fixture f;
    fx_open(&f);
    for (int target = IADSR_EVAL_TEST; target <= IADSR_EVAL_VALID; target++) {
        iadsr_eval_params e1, e2;
        params(&e1, target, 0, 1);
        params(&e2, target, 0, 2);
        int64_t *u1 = NULL, *u2 = NULL, n1 = 0, n2 = 0;
        int32_t *r1 = NULL, *r2 = NULL;
        get_ranks(&f, &e1, &u1, &r1, &n1);
        get_ranks(&f, &e2, &u2, &r2, &n2);
        ck_assert_int_eq(n1, n2);
        ck_assert_mem_eq(u1, u2, (size_t)n1 * sizeof *u1);
        ck_assert_mem_eq(r1, r2, (size_t)n1 * sizeof *r1);
        free(u1);
        free(u2);
        free(r1);
        free(r2);
    }
    fx_close(&f);
}
END_TEST

/* The size query scores nothing and writes only *n_out; a capacity one
 * short is BUFFER_TOO_SMALL with *n_out set and the buffers untouched. */
START_TEST(test_ranks_buffers)
{
    fixture f;
    fx_open(&f);
    int64_t need = -1;
    TU_OK(iadsr_evaluate_ranks(f.m, f.d, NULL, NULL, NULL, 0, &need));
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(f.m, f.d, NULL, &mt));
    ck_assert_int_eq(need, mt.n_users);

    int64_t *users = malloc((size_t)need * sizeof *users);
    int32_t *ranks = malloc((size_t)need * sizeof *ranks);
    ck_assert(users && ranks);
    memset(users, 0xab, (size_t)need * sizeof *users);
    memset(ranks, 0xcd, (size_t)need * sizeof *ranks);
    int64_t n = -1;
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, users, ranks,
                                       need - 1, &n),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(n, need);
    /* capacity 0 with buffers is a capacity, not a size query */
    n = -1;
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, users, ranks, 0, &n),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(n, need);
    for (int64_t i = 0; i < need; i++) {
        ck_assert_uint_eq((uint64_t)users[i], UINT64_C(0xabababababababab));
        ck_assert_uint_eq((uint32_t)ranks[i], 0xcdcdcdcdu);
    }
    /* a larger capacity is fine; entries past n stay as they were */
    int64_t *ub = malloc((size_t)(need + 3) * sizeof *ub);
    int32_t *rb = malloc((size_t)(need + 3) * sizeof *rb);
    ck_assert(ub && rb);
    memset(ub, 0xab, (size_t)(need + 3) * sizeof *ub);
    memset(rb, 0xcd, (size_t)(need + 3) * sizeof *rb);
    TU_OK(iadsr_evaluate_ranks(f.m, f.d, NULL, ub, rb, need + 3, &n));
    ck_assert_int_eq(n, need);
    ck_assert_uint_eq((uint32_t)rb[need], 0xcdcdcdcdu);
    ck_assert_uint_eq((uint64_t)ub[need], UINT64_C(0xabababababababab));
    free(ub);
    free(rb);
    free(users);
    free(ranks);
    fx_close(&f);
}
END_TEST

START_TEST(test_ranks_bad_args)
{
    fixture f;
    fx_open(&f);
    int64_t users[4] = {0};
    int32_t ranks[4] = {0};
    int64_t n = -7;
    static struct iadsr_model zm;
    static struct iadsr_dataset zd;
    memset(&zm, 0, sizeof zm);
    memset(&zd, 0, sizeof zd);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(NULL, f.d, NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, NULL, NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(&zm, f.d, NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, &zd, NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks((const iadsr_model *)(void *)f.d, f.d,
                                       NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m,
                                       (const iadsr_dataset *)(void *)f.m,
                                       NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(n, -7); /* not written on failure */
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, NULL, NULL, 0, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, users, ranks, -1, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, NULL, ranks, 4, &n),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, NULL, users, NULL, 4, &n),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(n, -7);
    iadsr_eval_params ep;
    params(&ep, 3, 0, 1);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, &ep, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    params(&ep, IADSR_EVAL_TEST, 0, 0);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, &ep, NULL, NULL, 0, &n),
                  IADSR_ERR_INVALID_ARG);
    params(&ep, IADSR_EVAL_TEST, 2, 1);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(f.m, f.d, &ep, NULL, NULL, 0, &n),
                  IADSR_ERR_UNSUPPORTED);
    /* more items in the dataset than in the model */
    iadsr_model *small = tu_model(NI - 1, 3);
    TU_EXPECT_ERR(iadsr_evaluate_ranks(small, f.d, NULL, NULL, NULL, 0, &n),
                  IADSR_ERR_DIM_MISMATCH);
    iadsr_model_free(small);
    ck_assert_int_eq(n, -7);
    fx_close(&f);
}
END_TEST

/* No user long enough for the target: STATE, as iadsr_evaluate. */
START_TEST(test_ranks_no_target)
{
    static const int32_t items[] = {1, 2, 3, 4};
    static const int64_t offs[] = {0, 2, 4};
    iadsr_dataset *d = NULL;
    TU_OK(iadsr_dataset_create(&d, items, offs, 2, NI, IADSR_FLAG_COPY));
    iadsr_model *m = tu_model(NI, 4);
    iadsr_eval_params ep;
    params(&ep, IADSR_EVAL_VALID, 0, 1);
    int64_t n = -7;
    TU_EXPECT_ERR(iadsr_evaluate_ranks(m, d, &ep, NULL, NULL, 0, &n),
                  IADSR_ERR_STATE);
    ck_assert_int_eq(n, -7);
    params(&ep, IADSR_EVAL_TEST, 0, 1);
    int64_t users[2];
    int32_t ranks[2];
    TU_OK(iadsr_evaluate_ranks(m, d, &ep, users, ranks, 2, &n));
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(users[0], 0);
    ck_assert_int_eq(users[1], 1);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_eval_ranks(void)
{
    Suite *s = suite_create("eval_ranks");
    TCase *tc = tcase_create("ranks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ranks_match_evaluate);
    tcase_add_test(tc, test_ranks_thread_invariance);
    tcase_add_test(tc, test_ranks_buffers);
    tcase_add_test(tc, test_ranks_bad_args);
    tcase_add_test(tc, test_ranks_no_target);
    suite_add_tcase(s, tc);
    return s;
}
