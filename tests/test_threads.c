/* Tests: concurrent use. One shared model scored from many threads (each with
 * its own context) gives exactly the single-thread results; the last error
 * is per thread; reference counts survive concurrent create/free; concurrent
 * evaluations and trainers agree with sequential ones.
 * IADSR_TEST_LIGHT=1 (or valgrind) shrinks the loops.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <pthread.h>

Suite *suite_threads(void);

#define NI 60
#define NS (NI + 1)
#define NSEQ 40   /* distinct input sequences */
#define NBATCH 10 /* distinct batches of BATCH_USERS sequences */
#define BATCH_USERS 4
#define K 10
#define MAX_THREADS 8

/* Inputs and the single-thread results every thread must reproduce. */
typedef struct expected {
    int32_t seq[NSEQ][25];
    int len[NSEQ];
    float score[NSEQ][NS];
    int32_t topk_ids[NSEQ][K];
    float topk_sc[NSEQ][K];
    int32_t b_items[NBATCH][BATCH_USERS * 25];
    int64_t b_offs[NBATCH][BATCH_USERS + 1];
    float batch[NBATCH][BATCH_USERS * NS];
    int32_t bt_ids[NBATCH][BATCH_USERS * K];
    float bt_sc[NBATCH][BATCH_USERS * K];
} expected;

static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

static uint32_t topk_flags(int i)
{
    return (i & 1) ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
}

static void build_expected(expected *e, const iadsr_model *m)
{
    uint32_t x = 2024;
    for (int i = 0; i < NSEQ; i++) {
        e->len[i] = 1 + (int)(lcg(&x) % 25);
        for (int j = 0; j < e->len[i]; j++)
            e->seq[i][j] = 1 + (int32_t)(lcg(&x) % NI);
    }
    for (int b = 0; b < NBATCH; b++) {
        e->b_offs[b][0] = 0;
        for (int u = 0; u < BATCH_USERS; u++) {
            int i = (b * BATCH_USERS + u * 3) % NSEQ;
            memcpy(&e->b_items[b][e->b_offs[b][u]], e->seq[i],
                   (size_t)e->len[i] * sizeof(int32_t));
            e->b_offs[b][u + 1] = e->b_offs[b][u] + e->len[i];
        }
    }
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    for (int i = 0; i < NSEQ; i++) {
        TU_OK(iadsr_ctx_score(c, e->seq[i], e->len[i], e->score[i], NS));
        TU_OK(iadsr_ctx_topk(c, e->seq[i], e->len[i], K, topk_flags(i),
                             e->topk_ids[i], e->topk_sc[i]));
    }
    for (int b = 0; b < NBATCH; b++) {
        TU_OK(iadsr_ctx_score_batch(c, e->b_items[b], e->b_offs[b],
                                    BATCH_USERS, e->batch[b],
                                    BATCH_USERS * NS));
        TU_OK(iadsr_ctx_topk_batch(c, e->b_items[b], e->b_offs[b],
                                   BATCH_USERS, K, topk_flags(b),
                                   e->bt_ids[b], e->bt_sc[b]));
    }
    iadsr_ctx_free(c);
}

typedef struct worker {
    pthread_t tid;
    int id;
    int n_calls;
    const iadsr_model *m;
    const expected *e;
    iadsr_ctx *c; /* created by the main thread when non-NULL */
    int failures;
    char first_failure[256];
} worker;

static void note_failure(worker *w, const char *what, int call, int rc)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure,
                 "call %d: %s (%s: %s)", call, what, iadsr_status_name(rc),
                 iadsr_last_error());
}

static void *score_worker(void *arg)
{
    worker *w = arg;
    const expected *e = w->e;
    iadsr_ctx *c = w->c;
    if (!c && iadsr_ctx_create(&c, w->m, NULL) != IADSR_OK) {
        note_failure(w, "ctx_create failed", -1, IADSR_ERR_GENERIC);
        return NULL;
    }
    float sc[NS];
    float rows[BATCH_USERS * NS];
    int32_t ids[BATCH_USERS * K];
    float vals[BATCH_USERS * K];
    for (int call = 0; call < w->n_calls; call++) {
        int i = (call * 7 + w->id * 13) % NSEQ;
        int b = (call * 3 + w->id) % NBATCH;
        int rc;
        switch ((call + w->id) % 4) {
        case 0:
            rc = iadsr_ctx_score(c, e->seq[i], e->len[i], sc, NS);
            if (rc || memcmp(sc, e->score[i], sizeof sc) != 0)
                note_failure(w, "score differs", call, rc);
            break;
        case 1:
            rc = iadsr_ctx_topk(c, e->seq[i], e->len[i], K, topk_flags(i),
                                ids, vals);
            if (rc || memcmp(ids, e->topk_ids[i], K * sizeof(int32_t)) != 0 ||
                memcmp(vals, e->topk_sc[i], K * sizeof(float)) != 0)
                note_failure(w, "topk differs", call, rc);
            break;
        case 2:
            rc = iadsr_ctx_score_batch(c, e->b_items[b], e->b_offs[b],
                                       BATCH_USERS, rows, BATCH_USERS * NS);
            if (rc || memcmp(rows, e->batch[b], sizeof rows) != 0)
                note_failure(w, "score_batch differs", call, rc);
            break;
        default:
            rc = iadsr_ctx_topk_batch(c, e->b_items[b], e->b_offs[b],
                                      BATCH_USERS, K, topk_flags(b), ids,
                                      vals);
            if (rc || memcmp(ids, e->bt_ids[b], sizeof ids) != 0 ||
                memcmp(vals, e->bt_sc[b], sizeof vals) != 0)
                note_failure(w, "topk_batch differs", call, rc);
            break;
        }
    }
    iadsr_ctx_free(c);
    return NULL;
}

static void run_workers(worker *w, int n)
{
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(pthread_create(&w[t].tid, NULL, score_worker, &w[t]),
                         0);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(pthread_join(w[t].tid, NULL), 0);
    for (int t = 0; t < n; t++)
        ck_assert_msg(w[t].failures == 0, "thread %d: %d failures, first: %s",
                      t, w[t].failures, w[t].first_failure);
}

START_TEST(test_shared_model_scoring)
{
    iadsr_dataset *d = tu_synth(300, NI, 6, 5, 20, 5);
    iadsr_model *init = tu_model(NI, 4);
    iadsr_model *m = tu_trained(init, d, 1);
    expected *e = calloc(1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    build_expected(e, m);
    int light = tu_light();
    int n_threads = light ? 3 : MAX_THREADS;
    int n_calls = light ? 40 : 300;
    worker w[MAX_THREADS];
    memset(w, 0, sizeof w);
    for (int t = 0; t < n_threads; t++) {
        w[t].id = t;
        w[t].n_calls = n_calls;
        w[t].m = m;
        w[t].e = e;
    }
    run_workers(w, n_threads);

    /* contexts created on this thread and used (then freed) on others */
    memset(w, 0, sizeof w);
    for (int t = 0; t < n_threads; t++) {
        w[t].id = t + 100;
        w[t].n_calls = n_calls / 4;
        w[t].m = m;
        w[t].e = e;
        TU_OK(iadsr_ctx_create(&w[t].c, m, NULL));
    }
    run_workers(w, n_threads);
    free(e);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- last error is per thread --------------------------------------------- */

typedef struct err_arg {
    pthread_t tid;
    int id;
    const iadsr_model *m;
    pthread_barrier_t *bar;
    int ok;
    char got[256];
} err_arg;

static void *error_worker(void *arg)
{
    err_arg *a = arg;
    iadsr_ctx *c = NULL;
    int made = iadsr_ctx_create(&c, a->m, NULL) == IADSR_OK;
    /* a distinct bad id per thread, so the messages differ */
    int32_t s[2] = {1, NI + 1 + a->id};
    float sc[NS];
    int rc = made ? iadsr_ctx_score(c, s, 2, sc, NS) : IADSR_ERR_GENERIC;
    pthread_barrier_wait(a->bar); /* every thread has set its error */
    if (a->id == 0)
        iadsr_clear_error(); /* clears only this thread's message */
    pthread_barrier_wait(a->bar);
    /* successful calls on other threads happen meanwhile */
    int32_t ok[2] = {1, 2};
    if (made && iadsr_ctx_score(c, ok, 2, sc, NS) != IADSR_OK)
        rc = IADSR_ERR_GENERIC;
    pthread_barrier_wait(a->bar);
    snprintf(a->got, sizeof a->got, "%s", iadsr_last_error());
    char want[32];
    snprintf(want, sizeof want, "%d", NI + 1 + a->id);
    if (a->id == 0)
        a->ok = rc == IADSR_ERR_OUT_OF_RANGE && a->got[0] == '\0';
    else
        a->ok = rc == IADSR_ERR_OUT_OF_RANGE && strstr(a->got, want) != NULL;
    iadsr_ctx_free(c);
    return NULL;
}

START_TEST(test_last_error_per_thread)
{
    iadsr_model *m = tu_model(NI, 4);
    /* this thread's own message must survive the others' errors */
    TU_EXPECT_ERR(iadsr_evaluate(NULL, NULL, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    char mine[1024];
    snprintf(mine, sizeof mine, "%s", iadsr_last_error());
    enum { N = 6 };
    pthread_barrier_t bar;
    ck_assert_int_eq(pthread_barrier_init(&bar, NULL, N), 0);
    err_arg a[N];
    memset(a, 0, sizeof a);
    for (int t = 0; t < N; t++) {
        a[t].id = t;
        a[t].m = m;
        a[t].bar = &bar;
        ck_assert_int_eq(pthread_create(&a[t].tid, NULL, error_worker, &a[t]),
                         0);
    }
    for (int t = 0; t < N; t++)
        pthread_join(a[t].tid, NULL);
    pthread_barrier_destroy(&bar);
    for (int t = 0; t < N; t++)
        ck_assert_msg(a[t].ok, "thread %d: last error '%s'", t, a[t].got);
    ck_assert_str_eq(iadsr_last_error(), mine);
    iadsr_model_free(m);
}
END_TEST

/* ---- reference counts under concurrency ----------------------------------- */

typedef struct churn_arg {
    pthread_t tid;
    iadsr_ctx *c; /* keeps the model alive; freed by the thread */
    int rounds;
    int bad;
} churn_arg;

static void *churn_worker(void *arg)
{
    churn_arg *a = arg;
    const iadsr_model *m = iadsr_ctx_model(a->c);
    int32_t s[3] = {3, 4, 5};
    float ref[NS], sc[NS];
    if (iadsr_ctx_score(a->c, s, 3, ref, NS) != IADSR_OK)
        a->bad++;
    for (int r = 0; r < a->rounds; r++) {
        iadsr_ctx *c = NULL;
        if (iadsr_ctx_create(&c, m, NULL) != IADSR_OK) {
            a->bad++;
            continue;
        }
        if (iadsr_ctx_score(c, s, 3, sc, NS) != IADSR_OK ||
            memcmp(sc, ref, sizeof sc) != 0)
            a->bad++;
        iadsr_ctx_free(c);
    }
    iadsr_ctx_free(a->c); /* the last one frees the model */
    return NULL;
}

START_TEST(test_refcount_churn)
{
    iadsr_model *m = tu_model(NI, 4);
    int n = tu_light() ? 3 : MAX_THREADS;
    churn_arg a[MAX_THREADS];
    memset(a, 0, sizeof a);
    for (int t = 0; t < n; t++) {
        a[t].rounds = tu_light() ? 10 : 100;
        TU_OK(iadsr_ctx_create(&a[t].c, m, NULL));
    }
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(pthread_create(&a[t].tid, NULL, churn_worker, &a[t]),
                         0);
    iadsr_model_free(m); /* while the workers run */
    for (int t = 0; t < n; t++)
        pthread_join(a[t].tid, NULL);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(a[t].bad, 0);
    /* valgrind / ASan report a leak or double free if the count is off */
}
END_TEST

/* ---- concurrent evaluation and training ----------------------------------- */

typedef struct eval_arg {
    pthread_t tid;
    const iadsr_model *m;
    const iadsr_dataset *d;
    int n_threads;
    int rc;
    iadsr_metrics mt;
} eval_arg;

static void *eval_worker(void *arg)
{
    eval_arg *a = arg;
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.n_threads = a->n_threads;
    ep.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    memset(&a->mt, 0, sizeof a->mt);
    a->mt.struct_size = sizeof a->mt;
    a->rc = iadsr_evaluate(a->m, a->d, &ep, &a->mt);
    return NULL;
}

START_TEST(test_concurrent_evaluate)
{
    iadsr_dataset *d = tu_synth(tu_light() ? 60 : 300, NI, 6, 2, 20, 8);
    iadsr_model *init = tu_model(NI, 4);
    iadsr_model *m = tu_trained(init, d, 1);
    eval_arg ref;
    memset(&ref, 0, sizeof ref);
    ref.m = m;
    ref.d = d;
    ref.n_threads = 1;
    eval_worker(&ref);
    TU_OK(ref.rc);
    enum { N = 4 };
    eval_arg a[N];
    memset(a, 0, sizeof a);
    for (int t = 0; t < N; t++) {
        a[t].m = m;
        a[t].d = d;
        a[t].n_threads = 1 + t % 2;
        ck_assert_int_eq(pthread_create(&a[t].tid, NULL, eval_worker, &a[t]),
                         0);
    }
    for (int t = 0; t < N; t++)
        pthread_join(a[t].tid, NULL);
    for (int t = 0; t < N; t++) {
        TU_OK(a[t].rc);
        ck_assert_msg(memcmp(&a[t].mt, &ref.mt, sizeof ref.mt) == 0,
                      "thread %d: metrics differ", t);
    }
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

typedef struct train_arg {
    pthread_t tid;
    const iadsr_model *init;
    const iadsr_dataset *d;
    iadsr_trainer *t; /* created on the main thread */
    int rc;
    iadsr_model *out;
} train_arg;

static void *train_worker(void *arg)
{
    train_arg *a = arg;
    a->rc = iadsr_trainer_fit(a->t, NULL, NULL);
    if (a->rc == IADSR_OK)
        a->rc = iadsr_trainer_snapshot(a->t, &a->out);
    iadsr_trainer_free(a->t);
    return NULL;
}

START_TEST(test_concurrent_trainers)
{
    /* trainers created here, trained on other threads concurrently, give
     * the same snapshot as a trainer run here */
    iadsr_dataset *d = tu_synth(tu_light() ? 60 : 200, NI, 6, 4, 15, 6);
    iadsr_model *init = tu_model(NI, 4);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 2;
    enum { N = 3 };
    train_arg a[N + 1];
    memset(a, 0, sizeof a);
    for (int t = 0; t <= N; t++)
        TU_OK(iadsr_trainer_create(&a[t].t, init, d, &tp));
    train_worker(&a[N]); /* reference, on this thread */
    TU_OK(a[N].rc);
    for (int t = 0; t < N; t++)
        ck_assert_int_eq(pthread_create(&a[t].tid, NULL, train_worker, &a[t]),
                         0);
    for (int t = 0; t < N; t++)
        pthread_join(a[t].tid, NULL);
    size_t nr = 0;
    unsigned char *rb = tu_model_bytes(a[N].out, &nr);
    for (int t = 0; t < N; t++) {
        TU_OK(a[t].rc);
        size_t n = 0;
        unsigned char *b = tu_model_bytes(a[t].out, &n);
        ck_assert_msg(n == nr && memcmp(b, rb, n) == 0,
                      "trainer on thread %d differs", t);
        free(b);
        iadsr_model_free(a[t].out);
    }
    free(rb);
    iadsr_model_free(a[N].out);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_threads(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_add_test(tc, test_shared_model_scoring);
    tcase_add_test(tc, test_last_error_per_thread);
    tcase_add_test(tc, test_refcount_churn);
    tcase_add_test(tc, test_concurrent_evaluate);
    tcase_add_test(tc, test_concurrent_trainers);
    suite_add_tcase(s, tc);
    return s;
}
