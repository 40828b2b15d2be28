/* Tests: data-parallel training through a host-supplied collective
 * (iadsr_train_params.allreduce). Ranks are threads of this process and
 * the collective is an in-process sum over them in rank order, so the
 * library's contract is tested without MPI (tests/mpi/ runs the real
 * front end): n ranks of one thread take exactly the steps of one process
 * of n threads; every rank stops after the same epoch; a stop asked on any
 * rank, a broken collective and ranks that disagree end every rank with
 * the same error.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>

Suite *suite_distributed(void);

#define NI 60
#define MAXR 4

/* ---- an in-process collective ---------------------------------------------- */

typedef struct comm {
    int n;
    pthread_barrier_t bar;
    void *buf[MAXR];
    size_t count[MAXR];
    int32_t type[MAXR];
    int calls;      /* collective calls made by rank 0 */
    int fail_at;    /* every rank's call number fail_at fails (0: never) */
    int disagreed;  /* ranks called with other counts or types */
} comm;

typedef struct rank_state {
    comm *c;
    int rank, calls;
    /* the run */
    iadsr_train_params tp;
    const iadsr_model *init;
    const iadsr_dataset *data;
    const iadsr_semantic *sem;       /* joint training when set */
    iadsr_denoise_params dp;
    int stop_at_epoch;               /* progress callback stops here */
    int rc, epochs;
    uint64_t sum;
    iadsr_model *snap;
    double ndcg[32], loss[32];
    int n_info;
} rank_state;

static size_t type_size(int32_t type)
{
    return type == IADSR_TYPE_F64 ? sizeof(double) : sizeof(float);
}

/* Sum over the ranks in rank order, the same on every rank. */
static int fake_allreduce(void *buf, size_t count, int32_t type, void *user)
{
    rank_state *me = user;
    comm *c = me->c;
    me->calls++;
    if (me->rank == 0)
        c->calls = me->calls;
    if (c->fail_at && me->calls == c->fail_at)
        return -1;
    c->buf[me->rank] = buf;
    c->count[me->rank] = count;
    c->type[me->rank] = type;
    pthread_barrier_wait(&c->bar);
    for (int r = 1; r < c->n; r++)
        if (c->count[r] != c->count[0] || c->type[r] != c->type[0])
            c->disagreed = 1;
    size_t es = type_size(type);
    void *sum = malloc(count * es);
    ck_assert_ptr_nonnull(sum);
    memcpy(sum, c->buf[0], count * es);
    for (int r = 1; r < c->n && !c->disagreed; r++)
        for (size_t i = 0; i < count; i++) {
            if (type == IADSR_TYPE_F64)
                ((double *)sum)[i] += ((const double *)c->buf[r])[i];
            else
                ((float *)sum)[i] += ((const float *)c->buf[r])[i];
        }
    pthread_barrier_wait(&c->bar); /* everyone has read every buffer */
    memcpy(buf, sum, count * es);
    free(sum);
    pthread_barrier_wait(&c->bar); /* buffers are free for the next call */
    return 0;
}

static int progress(const iadsr_progress_info *info, void *user)
{
    rank_state *s = user;
    if (s->n_info < 32) {
        s->ndcg[s->n_info] = info->valid_ndcg10;
        s->loss[s->n_info] = info->loss;
        s->n_info++;
    }
    return s->stop_at_epoch && info->epoch == s->stop_at_epoch;
}

static void *rank_main(void *arg)
{
    rank_state *s = arg;
    iadsr_trainer *t = NULL;
    s->rc = s->sem ? iadsr_trainer_create_joint(&t, s->init, s->data, s->sem,
                                                NULL, &s->tp, &s->dp)
                   : iadsr_trainer_create(&t, s->init, s->data, &s->tp);
    if (s->rc == IADSR_OK) {
        s->rc = iadsr_trainer_fit(t, progress, s);
        s->epochs = iadsr_trainer_epochs_done(t);
        TU_OK(iadsr_trainer_checksum(t, &s->sum));
        if (s->rc == IADSR_OK)
            TU_OK(iadsr_trainer_snapshot(t, &s->snap));
    }
    iadsr_trainer_free(t);
    return NULL;
}

/* Changes one rank's state before it starts (run_ranks_ex). */
typedef void (*rank_edit)(rank_state *s, int rank, void *arg);

/* Run @p n ranks (threads) from @p proto, which says everything but the
 * rank; with n == 1 and no collective, one ordinary process. Every rank's
 * collective call number @p fail_at fails (0: none); @p edit, if given,
 * changes each rank's state before it starts. */
static void run_ranks_ex(rank_state *st, int n, const rank_state *proto,
                         int use_collective, comm *c, int fail_at,
                         rank_edit edit, void *arg)
{
    pthread_t th[MAXR];
    memset(c, 0, sizeof *c);
    c->n = n;
    c->fail_at = fail_at;
    ck_assert_int_eq(pthread_barrier_init(&c->bar, NULL, (unsigned)n), 0);
    for (int r = 0; r < n; r++) {
        st[r] = *proto;
        st[r].c = c;
        st[r].rank = r;
        if (use_collective) {
            st[r].tp.allreduce = fake_allreduce;
            st[r].tp.allreduce_user = &st[r];
            st[r].tp.rank = r;
            st[r].tp.n_ranks = n;
        }
        if (edit)
            edit(&st[r], r, arg);
    }
    for (int r = 0; r < n; r++)
        ck_assert_int_eq(pthread_create(&th[r], NULL, rank_main, &st[r]), 0);
    for (int r = 0; r < n; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&c->bar);
    ck_assert_int_eq(c->disagreed, 0);
}

static void run_ranks(rank_state *st, int n, const rank_state *proto,
                      int use_collective, comm *c)
{
    run_ranks_ex(st, n, proto, use_collective, c, 0, NULL, NULL);
}

static void free_ranks(rank_state *st, int n)
{
    for (int r = 0; r < n; r++)
        iadsr_model_free(st[r].snap);
}

static iadsr_dataset *data(void)
{
    return tu_synth(tu_light() ? 120 : 300, NI, 6, 5, 20, 5);
}

static iadsr_semantic *sem_rows(uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    int D = 8;
    float *rows = malloc((size_t)NI * (size_t)D * sizeof(float));
    ck_assert_ptr_nonnull(rows);
    for (int i = 0; i < NI * D; i++)
        rows[i] = (float)iadsr__rng_normal(&r);
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, rows, NI, D, D, IADSR_FLAG_COPY));
    free(rows);
    return s;
}

static void proto_init(rank_state *p, const iadsr_model *m,
                       const iadsr_dataset *d, int epochs)
{
    memset(p, 0, sizeof *p);
    tu_train_params(&p->tp);
    p->tp.max_epochs = epochs;
    p->tp.batch_size = 32;
    p->tp.patience = 0;
    p->init = m;
    p->data = d;
    iadsr_denoise_params_init(&p->dp);
}

/* max |a - b| over the weights, relative to max |a| */
static double rel_diff(const iadsr_model *a, const iadsr_model *b)
{
    ck_assert_uint_eq(a->layout.n_floats, b->layout.n_floats);
    double md = 0, ma = 0;
    for (size_t i = 0; i < a->layout.n_floats; i++) {
        double x = fabs((double)a->w[i] - (double)b->w[i]);
        md = x > md ? x : md;
        ma = fabs((double)a->w[i]) > ma ? fabs((double)a->w[i]) : ma;
    }
    return md / ma;
}

/* ---- the same steps as one process --------------------------------------- */

/* R ranks of one thread against one process of R threads: the same shares,
 * dropout streams and sums (the collective adds in rank order, as one
 * process adds its workers), so every bit agrees, and the ranks agree. */
static void check_ranks_equal_threads(int R, int joint)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    iadsr_semantic *sem = joint ? sem_rows(9) : NULL;
    rank_state proto, one[1], st[MAXR];
    comm c;
    proto_init(&proto, m, d, 3);
    proto.sem = sem;
    if (joint)
        proto.dp.flags = IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_HOLDOUT |
                         IADSR_DENOISE_F_BACKOFF;

    proto.tp.n_threads = R;
    run_ranks(one, 1, &proto, 0, &c);
    TU_OK(one[0].rc);
    proto.tp.n_threads = 1;
    run_ranks(st, R, &proto, 1, &c);
    for (int r = 0; r < R; r++) {
        TU_OK(st[r].rc);
        ck_assert_int_eq(st[r].epochs, one[0].epochs);
        ck_assert_msg(st[r].sum == st[0].sum, "rank %d's state differs", r);
        ck_assert_msg(tu_same_weights(st[r].snap, one[0].snap),
                      "rank %d of %d differs from one process of %d threads",
                      r, R, R);
        ck_assert_int_eq(st[r].n_info, one[0].n_info);
        for (int e = 0; e < st[r].n_info; e++) {
            /* validation is rank 0's, sent as doubles: exact */
            ck_assert(st[r].ndcg[e] == one[0].ndcg[e]);
            /* the loss sums travel as floats */
            ck_assert(fabs(st[r].loss[e] - one[0].loss[e]) <=
                      1e-6 * fabs(one[0].loss[e]));
        }
    }
    ck_assert_uint_eq(st[0].sum, one[0].sum);
    free_ranks(st, R);
    free_ranks(one, 1);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}

START_TEST(test_two_ranks_equal_two_threads)
{
    check_ranks_equal_threads(2, 0);
}
END_TEST

START_TEST(test_three_ranks_equal_three_threads)
{
    check_ranks_equal_threads(3, 0);
}
END_TEST

START_TEST(test_joint_detector_two_ranks)
{
    check_ranks_equal_threads(2, 1);
}
END_TEST

/* The calls a training makes: one per step, two per epoch, two more. */
START_TEST(test_call_count)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, st[2];
    comm c;
    proto_init(&proto, m, d, 2);
    run_ranks(st, 2, &proto, 1, &c);
    TU_OK(st[0].rc);
    TU_OK(st[1].rc);
    /* training users: those with at least one (input, target) pair before
     * the validation item; batches of 32 */
    int64_t users = 0;
    for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
        int32_t n = 0;
        (void)iadsr_dataset_user_items(d, u, &n);
        users += n - 2 >= 2;
    }
    int steps = (int)((users + 31) / 32);
    ck_assert_int_eq(st[0].calls, 2 * steps + 2 * 2 + 2);
    ck_assert_int_eq(st[1].calls, st[0].calls);
    free_ranks(st, 2);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Two ranks of two threads: the ranks' partial sums are added in another
 * order than one process's four workers, so the weights agree to float
 * rounding carried through the steps; the ranks agree exactly. */
START_TEST(test_two_ranks_of_two_threads_close)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, one[1], st[2];
    comm c;
    proto_init(&proto, m, d, 3);
    proto.tp.n_threads = 4;
    run_ranks(one, 1, &proto, 0, &c);
    proto.tp.n_threads = 2;
    run_ranks(st, 2, &proto, 1, &c);
    TU_OK(st[0].rc);
    TU_OK(st[1].rc);
    ck_assert_uint_eq(st[0].sum, st[1].sum);
    ck_assert(tu_same_weights(st[0].snap, st[1].snap));
    double rd = rel_diff(one[0].snap, st[0].snap);
    TU_NOTE("2 ranks x 2 threads vs 1 x 4: max weight difference %.3g of "
           "the largest weight\n", rd);
    ck_assert_msg(rd < 1e-4, "relative difference %g", rd);
    free_ranks(st, 2);
    free_ranks(one, 1);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- stopping together ------------------------------------------------------ */

START_TEST(test_early_stopping_together)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, one[1], st[2];
    comm c;
    proto_init(&proto, m, d, 30);
    proto.tp.patience = 2;
    proto.tp.learning_rate = 3e-2f; /* over-fits fast, so it stops early */
    proto.tp.n_threads = 2;
    run_ranks(one, 1, &proto, 0, &c);
    TU_OK(one[0].rc);
    ck_assert_int_lt(one[0].epochs, 30);
    proto.tp.n_threads = 1;
    run_ranks(st, 2, &proto, 1, &c);
    for (int r = 0; r < 2; r++) {
        TU_OK(st[r].rc);
        ck_assert_int_eq(st[r].epochs, one[0].epochs);
        ck_assert(tu_same_weights(st[r].snap, one[0].snap)); /* best epoch */
    }
    free_ranks(st, 2);
    free_ranks(one, 1);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

static void stop_on_rank1(rank_state *s, int rank, void *arg)
{
    (void)arg;
    s->stop_at_epoch = rank == 1 ? 2 : 0; /* only rank 1 asks to stop */
}

START_TEST(test_callback_stop_on_one_rank)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, st[3];
    comm c;
    proto_init(&proto, m, d, 6);
    run_ranks_ex(st, 3, &proto, 1, &c, 0, stop_on_rank1, NULL);
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(st[r].rc, IADSR_ERR_ABORTED);
        ck_assert_int_eq(st[r].epochs, 2);
        ck_assert_uint_eq(st[r].sum, st[0].sum);
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* A collective that fails on every rank (MPI with errors returned) ends
 * every rank's training with IADSR_ERR_ABORTED, at any call. */
START_TEST(test_collective_failure)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, st[2];
    comm c;
    proto_init(&proto, m, d, 2);
    int total = 0;
    run_ranks(st, 2, &proto, 1, &c);
    TU_OK(st[0].rc);
    total = st[0].calls;
    free_ranks(st, 2);
    int at[] = {1, 2, 3, total - 1, total};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        run_ranks_ex(st, 2, &proto, 1, &c, at[i], NULL, NULL);
        for (int r = 0; r < 2; r++) {
            ck_assert_int_eq(st[r].rc, IADSR_ERR_ABORTED);
            ck_assert_ptr_null(st[r].snap);
        }
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Ranks that start from other seeds, other data, other epoch limits (they
 * would wait in collectives the others never make), other learning rates
 * or the same rank number are refused together, before the first step. */
typedef struct disagree {
    int k;
    const iadsr_dataset *other;
} disagree;

/* Rank 1 differs from rank 0 in one way (the k-th). */
static void differ_on_rank1(rank_state *s, int rank, void *arg)
{
    const disagree *g = arg;
    if (rank != 1)
        return;
    if (g->k == 0)
        s->tp.seed = 2;
    else if (g->k == 1)
        s->data = g->other;
    else if (g->k == 2)
        s->tp.max_epochs = 3;
    else if (g->k == 3)
        s->tp.learning_rate *= 2.0f;
    else
        s->tp.rank = 0; /* two ranks 0 */
}

START_TEST(test_ranks_disagree)
{
    iadsr_dataset *d = data();
    iadsr_dataset *d2 = tu_synth(tu_light() ? 121 : 301, NI, 6, 5, 20, 5);
    iadsr_model *m = tu_model(NI, 3);
    rank_state proto, st[2];
    proto_init(&proto, m, d, 2);
    for (int k = 0; k < 5; k++) {
        comm c;
        disagree g = {k, d2};
        run_ranks_ex(st, 2, &proto, 1, &c, 0, differ_on_rank1, &g);
        for (int r = 0; r < 2; r++) {
            ck_assert_int_eq(st[r].rc, IADSR_ERR_MISMATCH);
            ck_assert_int_eq(st[r].epochs, 0);
            ck_assert_int_eq(st[r].calls, 1);
        }
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
    iadsr_dataset_free(d2);
}
END_TEST

/* ---- params ------------------------------------------------------------------- */

static int never_called(void *buf, size_t count, int32_t type, void *user)
{
    (void)buf;
    (void)count;
    (void)type;
    (void)user;
    ck_abort_msg("the collective was called");
    return -1;
}

START_TEST(test_params_checked)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    iadsr_train_params tp;
    iadsr_trainer *t = NULL;

    tu_train_params(&tp);
    tp.n_ranks = 2;
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert(strstr(iadsr_last_error(), "allreduce") != NULL);
    tp.allreduce = never_called;
    tp.rank = 2;
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert(strstr(iadsr_last_error(), "rank") != NULL);
    tp.rank = -1;
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &tp), IADSR_ERR_INVALID_ARG);
    tp.rank = 0;
    tp.n_ranks = 0;
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &tp), IADSR_ERR_INVALID_ARG);
    tp.n_ranks = 65537;
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);

    /* carried gate masks would differ between ranks */
    iadsr_semantic *sem = sem_rows(4);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_CARRY_MASKS;
    tp.n_ranks = 2;
    TU_EXPECT_ERR(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(t);
    tp.allreduce = NULL;
    tp.n_ranks = 1;
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp));
    iadsr_trainer_free(t);
    t = NULL;

    /* the pipeline trains twice and cleans in between: not distributed */
    tp.allreduce = never_called;
    tp.n_ranks = 2;
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 3);
    iadsr_pipeline_result pr;
    memset(&pr, 0, sizeof pr);
    pr.struct_size = sizeof pr;
    TU_EXPECT_ERR(iadsr_pipeline(d, sem, &mp, &tp, NULL, NULL, NULL, &pr,
                                 NULL, NULL),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert(strstr(iadsr_last_error(), "allreduce") != NULL);

    /* a caller built against 0.3 (72-byte struct) trains alone */
    iadsr_train_params old;
    tu_train_params(&old);
    old.struct_size = 72;
    old.max_epochs = 1;
    old.allreduce = never_called; /* beyond its struct: never read */
    old.n_ranks = 7;
    TU_OK(iadsr_trainer_create(&t, m, d, &old));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    uint64_t s1 = 0, s2 = 1;
    TU_OK(iadsr_trainer_checksum(t, &s1));
    TU_OK(iadsr_trainer_checksum(t, &s2));
    ck_assert_uint_eq(s1, s2);
    TU_EXPECT_ERR(iadsr_trainer_checksum(t, NULL), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_trainer_checksum(NULL, &s1), IADSR_ERR_INVALID_ARG);
    ck_assert_uint_eq(s1, 0);
    TU_EXPECT_ERR(iadsr_trainer_checksum((const iadsr_trainer *)(void *)m,
                                         &s2),
                  IADSR_ERR_INVALID_ARG);
    iadsr_trainer_free(t);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* The checksum follows the state: equal for equal steps, different after
 * one more epoch. */
START_TEST(test_checksum_tracks_state)
{
    iadsr_dataset *d = data();
    iadsr_model *m = tu_model(NI, 3);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_NONE;
    iadsr_trainer *a = NULL, *b = NULL;
    TU_OK(iadsr_trainer_create(&a, m, d, &tp));
    TU_OK(iadsr_trainer_create(&b, m, d, &tp));
    uint64_t sa = 0, sb = 0;
    TU_OK(iadsr_trainer_checksum(a, &sa));
    TU_OK(iadsr_trainer_checksum(b, &sb));
    ck_assert_uint_eq(sa, sb);
    TU_OK(iadsr_trainer_run_epoch(a, NULL));
    TU_OK(iadsr_trainer_checksum(a, &sa));
    ck_assert_uint_ne(sa, sb);
    TU_OK(iadsr_trainer_run_epoch(b, NULL));
    TU_OK(iadsr_trainer_checksum(b, &sb));
    ck_assert_uint_eq(sa, sb);
    iadsr_trainer_free(a);
    iadsr_trainer_free(b);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_distributed(void)
{
    Suite *s = suite_create("distributed");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_two_ranks_equal_two_threads);
    tcase_add_test(tc, test_three_ranks_equal_three_threads);
    tcase_add_test(tc, test_joint_detector_two_ranks);
    tcase_add_test(tc, test_call_count);
    tcase_add_test(tc, test_two_ranks_of_two_threads_close);
    tcase_add_test(tc, test_early_stopping_together);
    tcase_add_test(tc, test_callback_stop_on_one_rank);
    tcase_add_test(tc, test_collective_failure);
    tcase_add_test(tc, test_ranks_disagree);
    tcase_add_test(tc, test_params_checked);
    tcase_add_test(tc, test_checksum_tracks_state);
    suite_add_tcase(s, tc);
    return s;
}
