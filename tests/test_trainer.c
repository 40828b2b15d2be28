/* Tests: trainer (argument checks, epochs, determinism, early stopping,
 * progress callback, snapshots, quality against a popularity baseline, warm
 * start, non-finite weights, allocation failures).
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"
#include "data/dataset.h"

Suite *suite_trainer(void);

#define NI 60 /* items of the small synthetic dataset */

static iadsr_dataset *small_data(void)
{
    return tu_synth(400, NI, 6, 5, 20, 11);
}

/* ---- argument checks ------------------------------------------------------ */

START_TEST(test_create_bad_args)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    iadsr_trainer *t = NULL;

    TU_EXPECT_ERR(iadsr_trainer_create(NULL, m, d, &tp), IADSR_ERR_INVALID_ARG);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, NULL, d, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, NULL, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);

    /* foreign handles: zeroed structs and handles of the other type */
    static struct iadsr_model zm;
    static struct iadsr_dataset zd;
    memset(&zm, 0, sizeof zm);
    memset(&zd, 0, sizeof zd);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, &zm, d, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, &zd, &tp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, (const iadsr_model *)(void *)d, d,
                                       &tp),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, (const iadsr_dataset *)(void *)m,
                                       &tp),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);

    /* dataset with more items than the model */
    iadsr_model *small = tu_model(NI - 1, 7);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, small, d, &tp),
                  IADSR_ERR_DIM_MISMATCH);
    ck_assert_ptr_null(t);
    iadsr_model_free(small);

    /* a model with more items than the dataset is fine */
    iadsr_model *big = tu_model(NI + 5, 7);
    TU_OK(iadsr_trainer_create(&t, big, d, &tp));
    ck_assert_ptr_nonnull(t);
    iadsr_trainer_free(t);
    iadsr_model_free(big);

    /* NULL params = defaults */
    t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, NULL));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 0);
    iadsr_trainer_free(t);

    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_create_bad_params)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    for (int i = 0;; i++) {
        iadsr_train_params p;
        tu_train_params(&p);
        int want = IADSR_ERR_INVALID_ARG;
        switch (i) {
        case 0: p.max_epochs = 0; break;
        case 1: p.max_epochs = 100001; break;
        case 2: p.batch_size = 0; break;
        case 3: p.batch_size = 65537; break;
        case 4: p.patience = -1; break;
        case 5: p.eval_every = 0; break;
        case 6: p.n_threads = 0; break;
        case 7: p.n_threads = 257; break;
        case 8: p.learning_rate = 0.0f; break;
        case 9: p.learning_rate = -1e-3f; break;
        case 10: p.learning_rate = NAN; break;
        case 11: p.learning_rate = INFINITY; break;
        case 12: p.adam_beta1 = 1.0f; break;
        case 13: p.adam_beta1 = -0.1f; break;
        case 14: p.adam_beta2 = 1.0f; break;
        case 15: p.adam_beta2 = NAN; break;
        case 16: p.adam_eps = 0.0f; break;
        case 17: p.weight_decay = -1.0f; break;
        case 18: p.weight_decay = NAN; break;
        case 19: p.split = 3; break;
        case 20: p.split = -1; break;
        case 21: p.flags = 1; want = IADSR_ERR_UNSUPPORTED; break;
        case 22: p.reserved0 = 1; break;
        case 23: p.struct_size = 0; break;
        case 24: p.struct_size = 64 - 4; break; /* below the 0.1 size */
        case 25: p.label_smoothing = 1.0f; break;
        case 26: p.label_smoothing = -0.5f; break;
        case 27: p.history_penalty = -1.0f; break;
        case 28: p.history_penalty = INFINITY; break;
        default: i = -1; break;
        }
        if (i < 0)
            break;
        iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
        iadsr_clear_error();
        int rc = iadsr_trainer_create(&t, m, d, &p);
        ck_assert_msg(rc == want, "case %d: got %s, expected %s (%s)", i,
                      iadsr_status_name(rc), iadsr_status_name(want),
                      iadsr_last_error());
        ck_assert_msg(iadsr_last_error()[0] != '\0', "case %d: no message", i);
        ck_assert_ptr_null(t);
    }

    /* a larger (newer) struct: zero tail accepted, non-zero tail refused */
    struct {
        iadsr_train_params p;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    tu_train_params(&big.p);
    big.p.struct_size = sizeof big;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &big.p));
    iadsr_trainer_free(t);
    big.extra = 1;
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, m, d, &big.p),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(t);

    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- no training positions ----------------------------------------------- */

START_TEST(test_no_positions)
{
    /* leave-one-out keeps seq[:-2]; a pair needs >= 2 of those, so no user
     * with fewer than 4 items (and an empty user) gives a position */
    static const int32_t items[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const int64_t offs[] = {0, 1, 3, 3, 6, 9};
    iadsr_dataset *d = tu_dataset(items, offs, 5, 10);
    iadsr_model *m = tu_model(10, 3);
    iadsr_train_params tp;
    tu_train_params(&tp);
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    double loss = 123.0;
    TU_EXPECT_ERR(iadsr_trainer_run_epoch(t, &loss), IADSR_ERR_STATE);
    ck_assert(loss == 123.0);
    TU_EXPECT_ERR(iadsr_trainer_fit(t, NULL, NULL), IADSR_ERR_STATE);
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 0);
    /* a snapshot is still possible: the initial weights */
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    ck_assert(tu_same_weights(s, m));
    iadsr_model_free(s);
    iadsr_trainer_free(t);

    /* SPLIT_NONE: sequences of length 3 train, length 1 alone does not */
    tp.split = IADSR_SPLIT_NONE;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_run_epoch(t, &loss));
    ck_assert(isfinite(loss) && loss > 0.0);
    iadsr_trainer_free(t);

    static const int32_t one[] = {1, 2, 3};
    static const int64_t one_offs[] = {0, 1, 2, 3};
    iadsr_dataset *d1 = tu_dataset(one, one_offs, 3, 10);
    TU_OK(iadsr_trainer_create(&t, m, d1, &tp));
    TU_EXPECT_ERR(iadsr_trainer_run_epoch(t, NULL), IADSR_ERR_STATE);
    iadsr_trainer_free(t);

    iadsr_dataset_free(d1);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- training dynamics ---------------------------------------------------- */

START_TEST(test_loss_decreases)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    double loss[8];
    for (int e = 0; e < 8; e++) {
        TU_OK(iadsr_trainer_run_epoch(t, &loss[e]));
        ck_assert_int_eq(iadsr_trainer_epochs_done(t), e + 1);
        ck_assert(isfinite(loss[e]) && loss[e] > 0.0);
    }
    /* near-uniform predictions at the start: about log(n_items) */
    ck_assert_msg(loss[0] < log((double)NI) + 0.2, "first loss %g", loss[0]);
    for (int e = 1; e < 8; e++)
        ck_assert_msg(loss[e] < loss[0], "epoch %d loss %g >= first %g", e + 1,
                      loss[e], loss[0]);
    ck_assert_msg(loss[7] < loss[0] - 0.2, "losses %g -> %g", loss[0],
                  loss[7]);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Train from @p init with @p seed for @p epochs (run_epoch, or fit when
 * @p use_fit) and return the checkpoint bytes and the losses. */
static unsigned char *train_bytes(const iadsr_model *init,
                                  const iadsr_dataset *d, uint64_t seed,
                                  int epochs, int use_fit, double *losses,
                                  size_t *size)
{
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.seed = seed;
    tp.max_epochs = epochs;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, init, d, &tp));
    if (use_fit) {
        TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    } else {
        for (int e = 0; e < epochs; e++)
            TU_OK(iadsr_trainer_run_epoch(t, &losses[e]));
    }
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    unsigned char *b = tu_model_bytes(s, size);
    iadsr_model_free(s);
    iadsr_trainer_free(t);
    return b;
}

START_TEST(test_determinism)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    double la[3], lb[3], lc[3];
    size_t na, nb, nc;
    unsigned char *a = train_bytes(m, d, 5, 3, 0, la, &na);
    unsigned char *b = train_bytes(m, d, 5, 3, 0, lb, &nb);
    unsigned char *c = train_bytes(m, d, 6, 3, 0, lc, &nc);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "same seed, different snapshots");
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    ck_assert_uint_eq(na, nc);
    ck_assert_msg(memcmp(a, c, na) != 0, "different seed, same snapshot");
    ck_assert(memcmp(la, lc, sizeof la) != 0);
    free(a);
    free(b);
    free(c);

    /* through fit (validation between epochs must not perturb training) */
    a = train_bytes(m, d, 5, 3, 1, NULL, &na);
    b = train_bytes(m, d, 5, 3, 1, NULL, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "fit: same seed, different bytes");
    free(a);
    free(b);

    /* a different initial model gives a different result */
    iadsr_model *m2 = tu_model(NI, 8);
    a = train_bytes(m, d, 5, 2, 0, la, &na);
    b = train_bytes(m2, d, 5, 2, 0, lb, &nb);
    ck_assert(na == nb && memcmp(a, b, na) != 0);
    free(a);
    free(b);
    iadsr_model_free(m2);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Data-parallel training (n_threads > 1): bitwise reproducible for a given
 * thread count, including batches with fewer sequences than workers. */
START_TEST(test_multithreaded_training)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    static const int threads[] = {2, 3, 4};
    /* batch 133: the 400 users end with a batch of one sequence */
    static const int batches[] = {64, 133};
    double l1[3];
    {
        iadsr_train_params tp;
        tu_train_params(&tp);
        iadsr_trainer *t = NULL;
        TU_OK(iadsr_trainer_create(&t, m, d, &tp));
        for (int e = 0; e < 3; e++)
            TU_OK(iadsr_trainer_run_epoch(t, &l1[e]));
        iadsr_trainer_free(t);
    }
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++)
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            unsigned char *bytes[2];
            size_t n[2];
            double loss[2][3];
            for (int run = 0; run < 2; run++) {
                iadsr_train_params tp;
                tu_train_params(&tp);
                tp.n_threads = threads[ti];
                tp.batch_size = batches[bi];
                iadsr_trainer *t = NULL;
                TU_OK(iadsr_trainer_create(&t, m, d, &tp));
                for (int e = 0; e < 3; e++) {
                    TU_OK(iadsr_trainer_run_epoch(t, &loss[run][e]));
                    ck_assert(isfinite(loss[run][e]));
                }
                iadsr_model *snap = NULL;
                TU_OK(iadsr_trainer_snapshot(t, &snap));
                bytes[run] = tu_model_bytes(snap, &n[run]);
                iadsr_model_free(snap);
                iadsr_trainer_free(t);
            }
            ck_assert_msg(n[0] == n[1] && memcmp(bytes[0], bytes[1], n[0]) == 0,
                          "%d threads, batch %d: runs differ", threads[ti],
                          batches[bi]);
            ck_assert(memcmp(loss[0], loss[1], sizeof loss[0]) == 0);
            ck_assert_msg(loss[0][2] < loss[0][0], "%d threads: no progress",
                          threads[ti]);
            if (batches[bi] == 64)
                /* same data, other dropout streams: about the same loss */
                ck_assert_msg(fabs(loss[0][2] - l1[2]) < 0.1 * l1[2],
                              "%d threads: loss %g vs %g with one thread",
                              threads[ti], loss[0][2], l1[2]);
            free(bytes[0]);
            free(bytes[1]);
        }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* The trainer keeps its dataset alive, trains a private copy of the initial
 * model (which is not changed) and can outlive both. */
START_TEST(test_free_order)
{
    long live = iadsr__alloc_live();
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    size_t nf = m->layout.n_floats;
    float *w0 = malloc(nf * sizeof *w0);
    ck_assert_ptr_nonnull(w0);
    memcpy(w0, m->w, nf * sizeof *w0);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 2;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_run_epoch(t, NULL));
    ck_assert_msg(memcmp(w0, m->w, nf * sizeof *w0) == 0,
                  "training changed the initial model");
    iadsr_dataset_free(d);
    iadsr_model_free(m);
    free(w0);
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 2);
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    iadsr_trainer_free(t);
    ck_assert_int_eq(iadsr_model_n_items(s), NI);
    iadsr_model_free(s);
    ck_assert_int_eq(iadsr__alloc_live(), live);
}
END_TEST

/* ---- fit, progress, early stopping --------------------------------------- */

#define MAX_INFO 64
typedef struct rec {
    int n;
    iadsr_progress_info info[MAX_INFO];
    int abort_at; /* return non-zero after this epoch (0 = never) */
} rec;

static int record_cb(const iadsr_progress_info *info, void *user_data)
{
    rec *r = user_data;
    if (r->n < MAX_INFO)
        r->info[r->n++] = *info;
    return r->abort_at > 0 && info->epoch >= r->abort_at;
}

START_TEST(test_early_stopping)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.learning_rate = 1e-10f; /* validation cannot improve */
    tp.max_epochs = 40;
    tp.patience = 2;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    rec r;
    memset(&r, 0, sizeof r);
    TU_OK(iadsr_trainer_fit(t, record_cb, &r));
    int done = iadsr_trainer_epochs_done(t);
    TU_NOTE("trainer early stopping: stopped after %d epochs\n", done);
    ck_assert_msg(done >= 3 && done < tp.max_epochs, "epochs_done %d", done);
    ck_assert_int_eq(r.n, done);
    const iadsr_progress_info *last = &r.info[r.n - 1];
    ck_assert_int_eq(last->epoch, done);
    /* stopped after exactly `patience` validations without improvement */
    ck_assert_int_eq(last->best_epoch, done - tp.patience);
    for (int i = last->best_epoch; i < r.n; i++)
        ck_assert(r.info[i].valid_ndcg10 <= last->best_ndcg10);
    iadsr_trainer_free(t);

    /* patience 0 never stops early */
    tp.patience = 0;
    tp.max_epochs = 5;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 5);
    /* fit at max_epochs is a no-op */
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 5);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_progress_info)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 5;
    tp.eval_every = 2;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    rec r;
    memset(&r, 0, sizeof r);
    TU_OK(iadsr_trainer_fit(t, record_cb, &r));
    ck_assert_int_eq(r.n, 5);
    double prev_elapsed = 0.0, best = NAN;
    int best_epoch = 0;
    for (int i = 0; i < r.n; i++) {
        const iadsr_progress_info *p = &r.info[i];
        ck_assert_uint_eq(p->struct_size, sizeof(iadsr_progress_info));
        ck_assert_int_eq(p->epoch, i + 1);
        ck_assert_int_eq(p->max_epochs, 5);
        ck_assert(isfinite(p->loss) && p->loss > 0.0);
        /* a plain backbone has one loss term */
        ck_assert(p->loss_next == p->loss);
        ck_assert(isnan(p->loss_aux) && isnan(p->loss_detect));
        ck_assert(p->learning_rate == (double)tp.learning_rate);
        ck_assert(p->epoch_seconds >= 0.0);
        ck_assert(p->elapsed_seconds >= prev_elapsed);
        ck_assert(p->elapsed_seconds >= p->epoch_seconds);
        prev_elapsed = p->elapsed_seconds;
        if (p->epoch % 2 == 1 && p->epoch < 5) {
            /* not validated this epoch */
            ck_assert_msg(isnan(p->valid_hr10) && isnan(p->valid_ndcg10),
                          "epoch %d: %g %g", p->epoch, p->valid_hr10,
                          p->valid_ndcg10);
        } else if (p->epoch % 2 == 0) {
            ck_assert(p->valid_hr10 >= 0.0 && p->valid_hr10 <= 1.0);
            ck_assert(p->valid_ndcg10 >= 0.0 &&
                      p->valid_ndcg10 <= p->valid_hr10);
        }
        if (!isnan(p->valid_ndcg10) &&
            (best_epoch == 0 || p->valid_ndcg10 > best)) {
            best = p->valid_ndcg10;
            best_epoch = p->epoch;
        }
        ck_assert_int_eq(p->best_epoch, best_epoch);
        if (best_epoch == 0)
            ck_assert(isnan(p->best_ndcg10));
        else
            ck_assert(p->best_ndcg10 == best);
    }
    ck_assert_int_eq(r.info[0].best_epoch, 0);
    ck_assert_int_eq(r.info[1].best_epoch, 2);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_abort)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 4;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    rec r;
    memset(&r, 0, sizeof r);
    r.abort_at = 2;
    TU_EXPECT_ERR(iadsr_trainer_fit(t, record_cb, &r), IADSR_ERR_ABORTED);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 2);
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->epochs_trained, r.info[1].best_epoch);
    ck_assert(s->best_valid_ndcg10 == (float)r.info[1].best_ndcg10);
    iadsr_model_free(s);
    /* the trainer continues after an abort */
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 4);
    iadsr_trainer_free(t);

    /* abort before any validation: the snapshot is the current weights */
    tp.eval_every = 3;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    memset(&r, 0, sizeof r);
    r.abort_at = 1;
    TU_EXPECT_ERR(iadsr_trainer_fit(t, record_cb, &r), IADSR_ERR_ABORTED);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.info[0].best_epoch, 0);
    TU_OK(iadsr_trainer_snapshot(t, &s));
    ck_assert_int_eq(s->epochs_trained, 1);
    ck_assert(isnan(s->best_valid_ndcg10));
    ck_assert(!tu_same_weights(s, m));
    iadsr_model_free(s);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Weights after @p epochs plain epochs with the given params. */
static iadsr_model *replay(const iadsr_model *init, const iadsr_dataset *d,
                           const iadsr_train_params *tp, int epochs)
{
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, init, d, tp));
    for (int e = 0; e < epochs; e++)
        TU_OK(iadsr_trainer_run_epoch(t, NULL));
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    iadsr_trainer_free(t);
    return s;
}

#define SB_EPOCHS 5
START_TEST(test_snapshot_best)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    /* far too large steps: validation bounces, so the best epoch is
     * usually not the last (2 of 5 in the OpenBLAS build) */
    tp.learning_rate = 0.3f;
    tp.max_epochs = SB_EPOCHS;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));

    /* before any epoch the snapshot is the initial model */
    iadsr_model *s0 = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s0));
    ck_assert(tu_same_weights(s0, m));
    ck_assert_int_eq(s0->epochs_trained, 0);
    iadsr_model_free(s0);

    rec r;
    memset(&r, 0, sizeof r);
    TU_OK(iadsr_trainer_fit(t, record_cb, &r));
    ck_assert_int_eq(r.n, SB_EPOCHS);
    int best = r.info[SB_EPOCHS - 1].best_epoch;
    TU_NOTE("trainer snapshot: best epoch %d of %d\n", best, SB_EPOCHS);
    double best_ndcg = r.info[SB_EPOCHS - 1].best_ndcg10;
    ck_assert(best >= 1 && best <= SB_EPOCHS);
    for (int i = 0; i < SB_EPOCHS; i++)
        ck_assert(r.info[i].valid_ndcg10 <= best_ndcg);
    ck_assert(r.info[best - 1].valid_ndcg10 == best_ndcg);

    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    ck_assert_int_eq(s->epochs_trained, best);
    ck_assert(s->best_valid_ndcg10 == (float)best_ndcg);
    /* two snapshots are equal and independent of the trainer */
    iadsr_model *s2 = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s2));
    ck_assert(s2 != s && tu_same_weights(s, s2));
    iadsr_model_free(s2);

    /* the same weights as training `best` epochs without validation */
    iadsr_model *ref = replay(m, d, &tp, best);
    ck_assert_msg(tu_same_weights(s, ref),
                  "snapshot is not the weights of best epoch %d", best);
    iadsr_model_free(ref);
    if (best < SB_EPOCHS) {
        ref = replay(m, d, &tp, SB_EPOCHS);
        ck_assert(!tu_same_weights(s, ref));
        iadsr_model_free(ref);
    }

    /* evaluating the snapshot reproduces the best validation NDCG@10 */
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.target = IADSR_EVAL_VALID;
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(s, d, &ep, &mt));
    ck_assert_msg(mt.ndcg10 == best_ndcg, "%.17g vs %.17g", mt.ndcg10,
                  best_ndcg);
    ck_assert(mt.hr10 == r.info[best - 1].valid_hr10);

    /* the snapshot outlives the trainer */
    iadsr_trainer_free(t);
    ck_assert_int_eq(iadsr_model_n_items(s), NI);
    iadsr_model_free(s);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_split_none)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_NONE;
    tp.max_epochs = 3;
    tp.patience = 1; /* ignored without validation */
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    rec r;
    memset(&r, 0, sizeof r);
    TU_OK(iadsr_trainer_fit(t, record_cb, &r));
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(isnan(r.info[i].valid_hr10));
        ck_assert(isnan(r.info[i].valid_ndcg10));
        ck_assert(isnan(r.info[i].best_ndcg10));
        ck_assert_int_eq(r.info[i].best_epoch, 0);
    }
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    ck_assert_int_eq(s->epochs_trained, 3);
    ck_assert(isnan(s->best_valid_ndcg10));
    iadsr_model *ref = replay(m, d, &tp, 3);
    ck_assert(tu_same_weights(s, ref));
    iadsr_model_free(ref);
    iadsr_model_free(s);
    iadsr_trainer_free(t);

    /* SPLIT_NONE trains on whole sequences: the loss differs from LOO */
    double l_none = 0, l_loo = 0;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_run_epoch(t, &l_none));
    iadsr_trainer_free(t);
    tp.split = IADSR_SPLIT_LEAVE_ONE_OUT;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_run_epoch(t, &l_loo));
    iadsr_trainer_free(t);
    ck_assert(l_none != l_loo);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- quality -------------------------------------------------------------- */

/* Popularity baseline on the TEST target: items scored by their count in
 * the training parts (seq[:-2]); rank = #items with a strictly larger
 * count than the target. */
static double popularity_ndcg10(const iadsr_dataset *d)
{
    int32_t n_items = iadsr_dataset_n_items(d);
    int64_t *cnt = calloc((size_t)n_items + 1, sizeof *cnt);
    ck_assert_ptr_nonnull(cnt);
    int64_t nu = iadsr_dataset_n_users(d);
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        for (int32_t i = 0; i + 2 < n; i++)
            cnt[s[i]]++;
    }
    tu_acc a;
    memset(&a, 0, sizeof a);
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        if (n < 2)
            continue;
        int64_t ct = cnt[s[n - 1]], rank = 0;
        for (int32_t q = 1; q <= n_items; q++)
            rank += cnt[q] > ct;
        tu_acc_add(&a, rank);
    }
    free(cnt);
    iadsr_metrics mt;
    tu_acc_metrics(&a, &mt);
    return mt.ndcg10;
}

/* The SASRec of the quality tests: 120 items, d 32, L 20, dropout 0.2. */
static iadsr_model *quality_model(void)
{
    iadsr_model_params mp;
    tu_model_params(&mp, 120, 5);
    mp.dim = 32;
    mp.max_seq_len = 20;
    mp.dropout = 0.2f;
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &mp));
    return m;
}

START_TEST(test_quality_vs_popularity)
{
    /* light mode (valgrind): less data and fewer epochs, same bar */
    int light = tu_light();
    iadsr_dataset *d = tu_synth(light ? 600 : 1500, 120, 10, 5, 30, 3);
    iadsr_model *m = quality_model();
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = light ? 8 : 15;
    tp.patience = 5;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(s, d, NULL, &mt));
    double pop = popularity_ndcg10(d);
    TU_NOTE("trainer quality: %d epochs (best %d), test NDCG@10 %.4f HR@10 "
            "%.4f, popularity NDCG@10 %.4f\n",
            (int)iadsr_trainer_epochs_done(t), (int)s->epochs_trained,
            mt.ndcg10, mt.hr10, pop);
    ck_assert_int_eq(mt.n_users, light ? 600 : 1500);
    ck_assert_msg(pop > 0.0, "popularity NDCG@10 %g", pop);
    ck_assert_msg(mt.ndcg10 >= 3.0 * pop,
                  "test NDCG@10 %.4f is not >= 3 x popularity %.4f",
                  mt.ndcg10, pop);
    ck_assert(mt.hr10 >= mt.ndcg10 && mt.hr20 >= mt.hr10 && mt.hr10 >= mt.hr5);
    iadsr_model_free(s);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- label smoothing and the history penalty ------------------------------ */

/* Mean softmax probability that the model puts on the items already in the
 * input (the training part of every sequence, which the synthetic data
 * never repeats as the next item). */
static double history_mass(const iadsr_model *m, const iadsr_dataset *d)
{
    int32_t n = iadsr_model_n_items(m);
    float *sc = malloc(((size_t)n + 1) * sizeof *sc);
    ck_assert_ptr_nonnull(sc);
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    double total = 0;
    int64_t users = 0;
    for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
        int32_t len = 0;
        const int32_t *it = iadsr_dataset_user_items(d, u, &len);
        if (len < 3)
            continue;
        TU_OK(iadsr_ctx_score(c, it, len - 2, sc, (int64_t)n + 1));
        double mx = -INFINITY, z = 0, h = 0;
        for (int32_t j = 1; j <= n; j++)
            mx = fmax(mx, (double)sc[j]);
        for (int32_t j = 1; j <= n; j++)
            z += exp((double)sc[j] - mx);
        for (int32_t j = 1; j <= n; j++) {
            int seen = 0;
            for (int32_t q = 0; q < len - 2; q++)
                seen |= it[q] == j;
            if (seen)
                h += exp((double)sc[j] - mx) / z;
        }
        total += h;
        users++;
    }
    iadsr_ctx_free(c);
    free(sc);
    return users ? total / (double)users : 0.0;
}

static iadsr_model *train_with(iadsr_dataset *d, float smooth, float hist,
                               int32_t epochs)
{
    iadsr_model *m = quality_model();
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = epochs;
    tp.patience = 0;
    tp.label_smoothing = smooth;
    tp.history_penalty = hist;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    return s;
}

START_TEST(test_history_penalty_lowers_history_mass)
{
    int light = tu_light();
    iadsr_dataset *d = tu_synth(light ? 600 : 800, 120, 10, 5, 30, 3);
    int32_t ep = light ? 6 : 8;
    iadsr_model *plain = train_with(d, 0.0f, 0.0f, ep);
    iadsr_model *pen = train_with(d, 0.0f, 4.0f, ep);
    iadsr_model *both = train_with(d, 0.1f, 4.0f, ep);
    double h0 = history_mass(plain, d), h1 = history_mass(pen, d),
           h2 = history_mass(both, d);
    TU_NOTE("history mass: plain %.4f, history_penalty 4 %.4f, + label "
            "smoothing 0.1 %.4f\n",
            h0, h1, h2);
    ck_assert_msg(h1 < 0.75 * h0, "history mass %.4f is not < 0.75 x %.4f",
                  h1, h0);
    ck_assert_msg(h2 < 0.75 * h0, "history mass %.4f is not < 0.75 x %.4f",
                  h2, h0);
    /* the penalty changes training, not the model format or scoring */
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(pen, d, NULL, &mt));
    ck_assert(mt.ndcg10 > 0.0);
    iadsr_model_free(plain);
    iadsr_model_free(pen);
    iadsr_model_free(both);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- warm start ----------------------------------------------------------- */

START_TEST(test_warm_start)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_model *trained = tu_trained(m, d, 3);
    const float *emb = iadsr_model_item_embeddings(trained);
    ck_assert_ptr_nonnull(emb);

    /* a padded copy (ld > dim) to exercise the leading dimension */
    int dim = 16, ld = 20;
    float *host = calloc((size_t)(NI + 1) * (size_t)ld, sizeof *host);
    ck_assert_ptr_nonnull(host);
    for (int r = 0; r <= NI; r++)
        memcpy(host + r * ld, emb + r * dim, (size_t)dim * sizeof(float));
    host[0] = NAN; /* row 0 (padding) is ignored */
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 99);
    iadsr_model *warm = NULL;
    TU_OK(iadsr_model_create_from_embeddings(&warm, &mp, host, NI + 1, dim,
                                             ld));
    free(host);
    const float *we = iadsr_model_item_embeddings(warm);
    for (int c = 0; c < dim; c++)
        ck_assert(we[c] == 0.0f);
    ck_assert(memcmp(we + dim, emb + dim, (size_t)NI * (size_t)dim *
                                              sizeof(float)) == 0);

    iadsr_train_params tp;
    tu_train_params(&tp);
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, warm, d, &tp));
    iadsr_model *s0 = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s0));
    ck_assert(tu_same_weights(s0, warm));
    iadsr_model_free(s0);
    double l[3];
    for (int e = 0; e < 3; e++) {
        TU_OK(iadsr_trainer_run_epoch(t, &l[e]));
        ck_assert(isfinite(l[e]));
    }
    ck_assert(l[2] < l[0]);
    iadsr_trainer_free(t);
    iadsr_model_free(warm);
    iadsr_model_free(trained);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- non-finite values ---------------------------------------------------- */

START_TEST(test_nan_weights)
{
    iadsr_dataset *d = small_data();
    static const char *const poke[] = {"item_emb", "emb_ln.g", "blk0.w1"};
    for (size_t kk = 0; kk < 2 * sizeof poke / sizeof poke[0]; kk++) {
        size_t k = kk % 3;
        int n_threads = kk < 3 ? 1 : 2;
        iadsr_model *m = tu_model(NI, 7);
        const iadsr__tensor *tn = iadsr__layout_find(&m->layout, poke[k]);
        ck_assert_ptr_nonnull(tn);
        /* row 3 of the embeddings (row 0 is padding), else the first */
        size_t at = tn->offset + (k == 0 ? 3 * (size_t)tn->cols + 1 : 0);
        m->w[at] = NAN;
        iadsr_train_params tp;
        tu_train_params(&tp);
        tp.n_threads = n_threads;
        iadsr_trainer *t = NULL;
        TU_OK(iadsr_trainer_create(&t, m, d, &tp));
        double loss = 7.0;
        TU_EXPECT_ERR(iadsr_trainer_run_epoch(t, &loss), IADSR_ERR_NUMERIC);
        ck_assert_int_eq(iadsr_trainer_epochs_done(t), 0);
        iadsr_model *s = NULL;
        TU_OK(iadsr_trainer_snapshot(t, &s));
        ck_assert_msg(tu_same_weights(s, m), "%s: weights changed", poke[k]);
        iadsr_model_free(s);
        TU_EXPECT_ERR(iadsr_trainer_fit(t, NULL, NULL), IADSR_ERR_NUMERIC);
        ck_assert_int_eq(iadsr_trainer_epochs_done(t), 0);
        iadsr_trainer_free(t);
        iadsr_model_free(m);
    }
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_divergence)
{
    /* one step per epoch (batch >= users) with an absurd step size: the
     * first step succeeds, the next forward pass overflows */
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.learning_rate = 1e30f;
    tp.batch_size = 1000;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    double loss = 0;
    TU_OK(iadsr_trainer_run_epoch(t, &loss));
    ck_assert(isfinite(loss));
    iadsr_model *s1 = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s1));
    ck_assert(!tu_same_weights(s1, m));
    int rc = IADSR_OK;
    for (int e = 0; e < 3 && rc == IADSR_OK; e++)
        rc = iadsr_trainer_run_epoch(t, &loss);
    ck_assert_msg(rc == IADSR_ERR_NUMERIC, "got %s", iadsr_status_name(rc));
    ck_assert(iadsr_last_error()[0] != '\0');
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), 1);
    iadsr_model *s2 = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s2));
    ck_assert_msg(tu_same_weights(s1, s2),
                  "the failing step changed the weights");
    iadsr_model_free(s1);
    iadsr_model_free(s2);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- allocation failures -------------------------------------------------- */

START_TEST(test_alloc_failures_create)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    for (int pass = 0; pass < 4; pass++) {
        int persistent = pass % 2;
        tp.n_threads = pass < 2 ? 1 : 3;
        long k;
        for (k = 1; k < 1000; k++) {
            long live = iadsr__alloc_live();
            iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
            iadsr__alloc_fail_after(k, persistent);
            int rc = iadsr_trainer_create(&t, m, d, &tp);
            iadsr__alloc_fail_after(0, 0);
            if (rc == IADSR_OK) {
                ck_assert_ptr_nonnull(t);
                TU_OK(iadsr_trainer_run_epoch(t, NULL));
                iadsr_trainer_free(t);
                ck_assert_int_eq(iadsr__alloc_live(), live);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                          iadsr_status_name(rc));
            ck_assert(iadsr_last_error()[0] != '\0');
            ck_assert_ptr_null(t);
            ck_assert_msg(iadsr__alloc_live() == live, "k=%ld: %ld leaked", k,
                          iadsr__alloc_live() - live);
        }
        ck_assert(k > 1 && k < 1000);
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_alloc_failures_fit)
{
    /* validation allocates (evaluation contexts): failures surface as
     * NOMEM from fit, without leaks, and the trainer stays usable */
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 1;
    long k;
    for (k = 1; k < 1000; k++) {
        long live = iadsr__alloc_live();
        iadsr_trainer *t = NULL;
        TU_OK(iadsr_trainer_create(&t, m, d, &tp));
        iadsr__alloc_fail_after(k, 1);
        int rc = iadsr_trainer_fit(t, NULL, NULL);
        iadsr__alloc_fail_after(0, 0);
        if (rc == IADSR_ERR_NOMEM) {
            ck_assert(iadsr_last_error()[0] != '\0');
            iadsr_model *s = NULL;
            TU_OK(iadsr_trainer_snapshot(t, &s));
            iadsr_model_free(s);
        }
        iadsr_trainer_free(t);
        ck_assert_msg(iadsr__alloc_live() == live, "k=%ld: %ld leaked", k,
                      iadsr__alloc_live() - live);
        if (rc == IADSR_OK)
            break;
        ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                      iadsr_status_name(rc));
    }
    ck_assert(k > 1 && k < 1000);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_trainer(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("args");
    tcase_add_test(tc, test_create_bad_args);
    tcase_add_test(tc, test_create_bad_params);
    tcase_add_test(tc, test_no_positions);
    suite_add_tcase(s, tc);

    tc = tcase_create("train");
    tcase_add_test(tc, test_loss_decreases);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_multithreaded_training);
    tcase_add_test(tc, test_free_order);
    tcase_add_test(tc, test_early_stopping);
    tcase_add_test(tc, test_progress_info);
    tcase_add_test(tc, test_abort);
    tcase_add_test(tc, test_snapshot_best);
    tcase_add_test(tc, test_split_none);
    tcase_add_test(tc, test_warm_start);
    suite_add_tcase(s, tc);

    tc = tcase_create("quality");
    tcase_add_test(tc, test_quality_vs_popularity);
    tcase_add_test(tc, test_history_penalty_lowers_history_mass);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_test(tc, test_nan_weights);
    tcase_add_test(tc, test_divergence);
    tcase_add_test(tc, test_alloc_failures_create);
    tcase_add_test(tc, test_alloc_failures_fit);
    suite_add_tcase(s, tc);
    return s;
}
