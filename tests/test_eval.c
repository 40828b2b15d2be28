/* Tests: leave-one-out evaluation (iadsr_evaluate) against a direct
 * computation from the scoring API, targets, history exclusion, thread-count
 * independence, eligibility, errors and allocation failures.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <stddef.h>

#include "score/eval.h"
#include "data/dataset.h"

Suite *suite_eval(void);

#define NI 60
#define NS (NI + 1)

/* Users of length 1..20 (some too short for a target), a model trained for
 * two epochs so that the metrics are far from zero. Fewer users in light
 * mode (valgrind). */
typedef struct fixture {
    iadsr_dataset *d;
    iadsr_model *init, *m;
} fixture;

static void fx_open(fixture *f)
{
    f->d = tu_synth(tu_light() ? 80 : 300, NI, 6, 1, 20, 17);
    f->init = tu_model(NI, 9);
    f->m = tu_trained(f->init, f->d, 2);
}

static void fx_close(fixture *f)
{
    iadsr_model_free(f->m);
    iadsr_model_free(f->init);
    iadsr_dataset_free(f->d);
}

static iadsr_metrics run_eval(const iadsr_model *m, const iadsr_dataset *d,
                              int target, uint32_t flags, int n_threads)
{
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.target = target;
    ep.flags = flags;
    ep.n_threads = n_threads;
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(m, d, &ep, &mt));
    ck_assert_uint_eq(mt.struct_size, sizeof mt);
    return mt;
}

/* Rank of target t: items other than t (and other than history items when
 * @p excl) with a score at least as large (ties count against t). */
static int64_t rank_of(const float *sc, int32_t t, const int32_t *hist,
                       int32_t h, int excl)
{
    int64_t rank = 0;
    for (int32_t q = 1; q <= NI; q++) {
        if (q == t || !(sc[q] >= sc[t]))
            continue;
        int in_hist = 0;
        for (int32_t i = 0; excl && i < h; i++)
            in_hist |= hist[i] == q;
        rank += !in_hist;
    }
    return rank;
}

/* Reference metrics from the public scoring API. cut = 1 (TEST) or 2
 * (VALID). batch = 0: one iadsr_ctx_score per user; batch = 1: a single
 * iadsr_ctx_score_batch over all eligible users, which runs the same
 * 64-user chunks as a one-thread iadsr_evaluate (bitwise equal scores). */
static iadsr_metrics ref_metrics(const iadsr_model *m, const iadsr_dataset *d,
                                 int cut, int excl, int batch)
{
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    int64_t nu = iadsr_dataset_n_users(d);
    tu_acc a;
    memset(&a, 0, sizeof a);
    int32_t *items = malloc((size_t)iadsr_dataset_n_interactions(d) *
                            sizeof *items);
    int64_t *offs = malloc(((size_t)nu + 1) * sizeof *offs);
    int64_t *who = malloc((size_t)nu * sizeof *who);
    ck_assert(items && offs && who);
    int64_t ne = 0;
    offs[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        if (n < cut + 1)
            continue;
        memcpy(items + offs[ne], s, (size_t)(n - cut) * sizeof *items);
        offs[ne + 1] = offs[ne] + (n - cut);
        who[ne++] = u;
    }
    float *sc = malloc((size_t)(ne > 0 ? ne : 1) * NS * sizeof *sc);
    ck_assert_ptr_nonnull(sc);
    if (batch && ne > 0)
        TU_OK(iadsr_ctx_score_batch(c, items, offs, ne, sc, ne * NS));
    for (int64_t e = 0; e < ne; e++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, who[e], &n);
        float *row = batch ? sc + e * NS : sc;
        if (!batch)
            TU_OK(iadsr_ctx_score(c, s, n - cut, row, NS));
        tu_acc_add(&a, rank_of(row, s[n - cut], s, n - cut, excl));
    }
    free(sc);
    free(items);
    free(offs);
    free(who);
    iadsr_ctx_free(c);
    iadsr_metrics mt;
    tu_acc_metrics(&a, &mt);
    return mt;
}

static void assert_metrics_eq(const iadsr_metrics *a, const iadsr_metrics *b,
                              double tol, const char *what)
{
    ck_assert_msg(a->n_users == b->n_users, "%s: n_users %lld vs %lld", what,
                  (long long)a->n_users, (long long)b->n_users);
    const double x[6] = {a->hr5, a->hr10, a->hr20,
                         a->ndcg5, a->ndcg10, a->ndcg20};
    const double y[6] = {b->hr5, b->hr10, b->hr20,
                         b->ndcg5, b->ndcg10, b->ndcg20};
    static const char *const names[6] = {"hr5", "hr10", "hr20",
                                         "ndcg5", "ndcg10", "ndcg20"};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(fabs(x[i] - y[i]) <= tol, "%s: %s %.17g vs %.17g",
                      what, names[i], x[i], y[i]);
}

static void assert_metrics_sane(const iadsr_metrics *mt)
{
    ck_assert(mt->hr5 >= 0.0 && mt->hr5 <= mt->hr10 && mt->hr10 <= mt->hr20 &&
              mt->hr20 <= 1.0);
    ck_assert(mt->ndcg5 >= 0.0 && mt->ndcg5 <= mt->ndcg10 &&
              mt->ndcg10 <= mt->ndcg20);
    ck_assert(mt->ndcg5 <= mt->hr5 && mt->ndcg10 <= mt->hr10 &&
              mt->ndcg20 <= mt->hr20);
}

/* ---- metrics against the direct computation ------------------------------- */

START_TEST(test_metrics_direct)
{
    fixture f;
    fx_open(&f);
    for (int target = IADSR_EVAL_TEST; target <= IADSR_EVAL_VALID; target++) {
        int cut = target == IADSR_EVAL_VALID ? 2 : 1;
        iadsr_metrics plain = run_eval(f.m, f.d, target, 0, 1);
        iadsr_metrics excl =
            run_eval(f.m, f.d, target, IADSR_TOPK_EXCLUDE_HISTORY, 1);
        assert_metrics_sane(&plain);
        assert_metrics_sane(&excl);
        ck_assert(plain.hr20 > 0.2); /* a trained model finds something */

        iadsr_metrics r = ref_metrics(f.m, f.d, cut, 0, 1);
        assert_metrics_eq(&plain, &r, 0.0, "plain vs score_batch");
        r = ref_metrics(f.m, f.d, cut, 1, 1);
        assert_metrics_eq(&excl, &r, 0.0, "exclude vs score_batch");
        /* one ctx_score per user: scores may differ in the last bits (other
         * GEMM shapes), which can only move near-ties */
        double tol = 2.0 / (double)plain.n_users;
        r = ref_metrics(f.m, f.d, cut, 0, 0);
        assert_metrics_eq(&plain, &r, tol, "plain vs score");
        r = ref_metrics(f.m, f.d, cut, 1, 0);
        assert_metrics_eq(&excl, &r, tol, "exclude vs score");

        /* excluding history can only improve ranks */
        ck_assert_int_eq(excl.n_users, plain.n_users);
        ck_assert(excl.hr5 >= plain.hr5 && excl.hr10 >= plain.hr10 &&
                  excl.hr20 >= plain.hr20);
        ck_assert(excl.ndcg5 >= plain.ndcg5 && excl.ndcg10 >= plain.ndcg10 &&
                  excl.ndcg20 >= plain.ndcg20);
        TU_NOTE("eval target %d: n %lld HR@10 %.4f NDCG@10 %.4f; excluding "
                "history HR@10 %.4f NDCG@10 %.4f\n",
                target, (long long)plain.n_users, plain.hr10, plain.ndcg10,
                excl.hr10, excl.ndcg10);
    }
    /* NULL params = defaults = TEST target, no flags, one thread */
    iadsr_metrics a = run_eval(f.m, f.d, IADSR_EVAL_TEST, 0, 1), b;
    memset(&b, 0, sizeof b);
    b.struct_size = sizeof b;
    TU_OK(iadsr_evaluate(f.m, f.d, NULL, &b));
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.target = 0; /* 0 = default */
    TU_OK(iadsr_evaluate(f.m, f.d, &ep, &b));
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    fx_close(&f);
}
END_TEST

START_TEST(test_valid_ignores_last_item)
{
    fixture f;
    fx_open(&f);
    int64_t nu = iadsr_dataset_n_users(f.d);
    size_t ni = (size_t)iadsr_dataset_n_interactions(f.d);
    int32_t *chg = malloc(ni * sizeof *chg), *cut = malloc(ni * sizeof *cut);
    int64_t *oc = malloc(((size_t)nu + 1) * sizeof *oc);
    int64_t *ok = malloc(((size_t)nu + 1) * sizeof *ok);
    ck_assert(chg && cut && oc && ok);
    oc[0] = ok[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(f.d, u, &n);
        memcpy(chg + oc[u], s, (size_t)n * sizeof *chg);
        chg[oc[u] + n - 1] = (s[n - 1] % NI) + 1; /* another last item */
        oc[u + 1] = oc[u] + n;
        memcpy(cut + ok[u], s, (size_t)(n - 1) * sizeof *cut);
        ok[u + 1] = ok[u] + n - 1;
    }
    iadsr_dataset *dchg = tu_dataset(chg, oc, nu, NI);
    iadsr_dataset *dcut = tu_dataset(cut, ok, nu, NI);
    iadsr_metrics v = run_eval(f.m, f.d, IADSR_EVAL_VALID, 0, 1);
    iadsr_metrics t = run_eval(f.m, f.d, IADSR_EVAL_TEST, 0, 1);
    /* VALID never looks at the last item */
    iadsr_metrics vc = run_eval(f.m, dchg, IADSR_EVAL_VALID, 0, 1);
    ck_assert(memcmp(&v, &vc, sizeof v) == 0);
    /* ... but TEST does */
    iadsr_metrics tc = run_eval(f.m, dchg, IADSR_EVAL_TEST, 0, 1);
    ck_assert(memcmp(&t, &tc, sizeof t) != 0);
    /* VALID on seq == TEST on seq[:-1] */
    iadsr_metrics tcut = run_eval(f.m, dcut, IADSR_EVAL_TEST, 0, 1);
    assert_metrics_eq(&v, &tcut, 0.0, "VALID vs TEST on seq[:-1]");
    tcut = run_eval(f.m, dcut, IADSR_EVAL_TEST, IADSR_TOPK_EXCLUDE_HISTORY, 1);
    iadsr_metrics vx =
        run_eval(f.m, f.d, IADSR_EVAL_VALID, IADSR_TOPK_EXCLUDE_HISTORY, 1);
    assert_metrics_eq(&vx, &tcut, 0.0, "VALID vs TEST on seq[:-1], excl");
    iadsr_dataset_free(dchg);
    iadsr_dataset_free(dcut);
    free(chg);
    free(cut);
    free(oc);
    free(ok);
    fx_close(&f);
}
END_TEST

START_TEST(test_thread_count_invariance)
{
    fixture f;
    fx_open(&f);
    static const int threads[] = {2, 3, 4, 7, 256};
    size_t n_counts = tu_light() ? 2 : sizeof threads / sizeof threads[0];
    for (int target = IADSR_EVAL_TEST; target <= IADSR_EVAL_VALID; target++)
        for (int fl = 0; fl < 2; fl++) {
            uint32_t flags = fl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
            iadsr_metrics one = run_eval(f.m, f.d, target, flags, 1);
            for (size_t i = 0; i < n_counts; i++) {
                iadsr_metrics mt =
                    run_eval(f.m, f.d, target, flags, threads[i]);
                ck_assert_msg(memcmp(&one, &mt, sizeof mt) == 0,
                              "target %d flags %u: %d threads differ from 1 "
                              "(NDCG@10 %.17g vs %.17g, HR@10 %.17g vs "
                              "%.17g)",
                              target, (unsigned)flags, threads[i], mt.ndcg10,
                              one.ndcg10, mt.hr10, one.hr10);
            }
        }
    /* more threads than users */
    static const int32_t items[] = {1, 2, 3, 4, 5};
    static const int64_t offs[] = {0, 2, 5};
    iadsr_dataset *d = tu_dataset(items, offs, 2, NI);
    iadsr_metrics a = run_eval(f.m, d, IADSR_EVAL_TEST, 0, 1);
    iadsr_metrics b = run_eval(f.m, d, IADSR_EVAL_TEST, 0, 8);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    ck_assert_int_eq(a.n_users, 2);
    iadsr_dataset_free(d);
    fx_close(&f);
}
END_TEST

/* ---- eligibility ---------------------------------------------------------- */

START_TEST(test_short_users_skipped)
{
    iadsr_model *m = tu_model(NI, 9);
    /* lengths 1, 2, 0, 3, 5, 1 */
    static const int32_t items[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const int64_t offs[] = {0, 1, 3, 3, 6, 11, 12};
    iadsr_dataset *d = tu_dataset(items, offs, 6, NI);
    iadsr_metrics t = run_eval(m, d, IADSR_EVAL_TEST, 0, 1);
    ck_assert_int_eq(t.n_users, 3);
    iadsr_metrics v = run_eval(m, d, IADSR_EVAL_VALID, 0, 1);
    ck_assert_int_eq(v.n_users, 2);
    iadsr_metrics r = ref_metrics(m, d, 1, 0, 0);
    ck_assert_int_eq(r.n_users, 3);
    assert_metrics_eq(&t, &r, 0.0, "short users");
    for (int n = 2; n <= 3; n++) {
        iadsr_metrics x = run_eval(m, d, IADSR_EVAL_TEST, 0, n);
        ck_assert(memcmp(&x, &t, sizeof x) == 0);
    }
    iadsr_dataset_free(d);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_no_eligible_users)
{
    iadsr_model *m = tu_model(NI, 9);
    iadsr_metrics mt, keep;
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    /* every user has one item (or none): no TEST target */
    static const int32_t one[] = {4, 5, 6};
    static const int64_t one_offs[] = {0, 1, 1, 2, 3};
    iadsr_dataset *d1 = tu_dataset(one, one_offs, 4, NI);
    memset(&mt, 0x5a, sizeof mt);
    mt.struct_size = sizeof mt;
    keep = mt;
    TU_EXPECT_ERR(iadsr_evaluate(m, d1, &ep, &mt), IADSR_ERR_STATE);
    ck_assert(memcmp(&mt, &keep, sizeof mt) == 0);
    ep.n_threads = 3;
    TU_EXPECT_ERR(iadsr_evaluate(m, d1, &ep, &mt), IADSR_ERR_STATE);
    /* two items each: TEST works, VALID has no target */
    static const int32_t two[] = {4, 5, 6, 7};
    static const int64_t two_offs[] = {0, 2, 4};
    iadsr_dataset *d2 = tu_dataset(two, two_offs, 2, NI);
    ep.target = IADSR_EVAL_VALID;
    TU_EXPECT_ERR(iadsr_evaluate(m, d2, &ep, &mt), IADSR_ERR_STATE);
    ck_assert(memcmp(&mt, &keep, sizeof mt) == 0);
    ep.target = IADSR_EVAL_TEST;
    TU_OK(iadsr_evaluate(m, d2, &ep, &mt));
    ck_assert_int_eq(mt.n_users, 2);
    iadsr_dataset_free(d1);
    iadsr_dataset_free(d2);
    iadsr_model_free(m);
}
END_TEST

/* ---- the output struct and arguments -------------------------------------- */

START_TEST(test_out_struct_size)
{
    fixture f;
    fx_open(&f);
    iadsr_metrics ref = run_eval(f.m, f.d, IADSR_EVAL_TEST, 0, 1);
    iadsr_metrics mt, keep;
    static const uint32_t small[] = {0, 4, 8, sizeof(iadsr_metrics) - 8,
                                     sizeof(iadsr_metrics) - 1};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        memset(&mt, 0x33, sizeof mt);
        mt.struct_size = small[i];
        keep = mt;
        TU_EXPECT_ERR(iadsr_evaluate(f.m, f.d, NULL, &mt),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_msg(memcmp(&mt, &keep, sizeof mt) == 0,
                      "struct_size %u: out modified on failure",
                      (unsigned)small[i]);
    }
    /* a larger (newer) struct: the known part is filled, the rest kept */
    struct {
        iadsr_metrics m;
        unsigned char tail[24];
    } big;
    memset(&big, 0x77, sizeof big);
    big.m.struct_size = sizeof big;
    TU_OK(iadsr_evaluate(f.m, f.d, NULL, &big.m));
    ck_assert_uint_eq(big.m.struct_size, sizeof big);
    big.m.struct_size = sizeof(iadsr_metrics);
    ck_assert(memcmp(&big.m, &ref, sizeof ref) == 0);
    for (size_t i = 0; i < sizeof big.tail; i++)
        ck_assert_uint_eq(big.tail[i], 0x77);
    TU_EXPECT_ERR(iadsr_evaluate(f.m, f.d, NULL, NULL), IADSR_ERR_INVALID_ARG);
    fx_close(&f);
}
END_TEST

/* ---- output structs of every size ------------------------------------------ */

/* What the output-struct probes call: a tiny synthetic dataset, an untrained
 * model, a random semantic matrix, a fresh gate, and pipeline settings of
 * one epoch. */
typedef struct out_fx {
    iadsr_dataset *d;
    iadsr_model *m;
    iadsr_semantic *sem;
    iadsr_gate *g;
    iadsr_model_params mp;
    iadsr_train_params tp;
} out_fx;

typedef int (*out_call)(const out_fx *f, void *out);

static int call_evaluate(const out_fx *f, void *out)
{
    return iadsr_evaluate(f->m, f->d, NULL, out);
}
static int call_semantic_evaluate(const out_fx *f, void *out)
{
    return iadsr_semantic_evaluate(f->sem, f->d, NULL, out);
}
static int call_pipeline(const out_fx *f, void *out)
{
    return iadsr_pipeline(f->d, f->sem, &f->mp, &f->tp, NULL, NULL, NULL, out,
                          NULL, NULL);
}
static int call_gate_get_params(const out_fx *f, void *out)
{
    return iadsr_gate_get_params(f->g, out);
}

#define OUT_CANARY 0xa5
typedef union out_buf {
    max_align_t align;
    unsigned char b[256];
} out_buf;

/* Call @p call with an output struct whose struct_size is @p size, at the
 * start of a canary-filled buffer. @p want IADSR_OK: the call succeeds,
 * struct_size keeps @p size and nothing at or beyond min(size, lib_size)
 * is written (@p got receives the buffer). Otherwise the call fails with
 * @p want and a message naming struct_size, and writes nothing at all. */
static void out_probe(const char *what, out_call call, const out_fx *f,
                      size_t lib_size, uint32_t size, int want, out_buf *got)
{
    out_buf u, keep;
    ck_assert(lib_size + 16 <= sizeof u.b);
    memset(u.b, OUT_CANARY, sizeof u.b);
    memcpy(u.b, &size, sizeof size);
    keep = u;
    iadsr_clear_error();
    int rc = call(f, u.b);
    ck_assert_msg(rc == want, "%s, struct_size %u: %s, expected %s (%s)", what,
                  (unsigned)size, iadsr_status_name(rc),
                  iadsr_status_name(want), iadsr_last_error());
    if (want != IADSR_OK) {
        ck_assert_msg(strstr(iadsr_last_error(), "struct_size") != NULL,
                      "%s, struct_size %u: message '%s'", what,
                      (unsigned)size, iadsr_last_error());
        ck_assert_msg(memcmp(u.b, keep.b, sizeof u.b) == 0,
                      "%s, struct_size %u: written although refused", what,
                      (unsigned)size);
        return;
    }
    uint32_t back;
    memcpy(&back, u.b, sizeof back);
    ck_assert_uint_eq(back, size);
    size_t written = size < lib_size ? size : lib_size;
    for (size_t i = written; i < sizeof u.b; i++)
        ck_assert_msg(u.b[i] == OUT_CANARY,
                      "%s, struct_size %u: byte %zu (past the %zu written) "
                      "changed",
                      what, (unsigned)size, i, written);
    if (got)
        *got = u;
}

/* The results of two successful probes agree on the first @p n bytes after
 * struct_size. */
static void out_same(const out_buf *a, const out_buf *b, size_t n)
{
    ck_assert(memcmp(a->b + 4, b->b + 4, n - 4) == 0);
}

START_TEST(test_output_structs)
{
    out_fx f;
    f.d = tu_synth(40, NI, 6, 3, 12, 23);
    f.m = tu_model(NI, 29);
    enum { D = 8 };
    float rows[NI * D];
    for (int i = 0; i < NI * D; i++)
        rows[i] = (float)((i * 37 % 17) - 8) / 8.0f;
    f.sem = NULL;
    TU_OK(iadsr_semantic_create(&f.sem, rows, NI, D, D, IADSR_FLAG_COPY));
    f.g = NULL;
    TU_OK(iadsr_gate_create(&f.g, 16, NULL));
    tu_model_params(&f.mp, NI, 31);
    tu_train_params(&f.tp);
    f.tp.max_epochs = 1;

    static const struct {
        const char *what;
        out_call call;
        size_t lib_size, oldest, last_field;
    } cases[] = {
        {"iadsr_evaluate", call_evaluate, sizeof(iadsr_metrics), 64,
         offsetof(iadsr_metrics, ndcg20)},
        {"iadsr_semantic_evaluate", call_semantic_evaluate,
         sizeof(iadsr_metrics), 64, offsetof(iadsr_metrics, ndcg20)},
        {"iadsr_pipeline", call_pipeline, sizeof(iadsr_pipeline_result), 120,
         offsetof(iadsr_pipeline_result, test)},
        {"iadsr_gate_get_params", call_gate_get_params,
         sizeof(iadsr_denoise_params), 48,
         offsetof(iadsr_denoise_params, seed)},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *w = cases[k].what;
        out_call call = cases[k].call;
        size_t lib = cases[k].lib_size, oldest = cases[k].oldest;
        /* no struct has grown since its first release (docs/ABI.md) */
        ck_assert_uint_eq(lib, oldest);
        /* an older caller: the oldest released size works and nothing
         * past it is written */
        out_buf at_oldest, larger;
        out_probe(w, call, &f, lib, (uint32_t)oldest, IADSR_OK, &at_oldest);
        /* a newer caller: its tail untouched, its struct_size kept, the
         * known part the same */
        out_probe(w, call, &f, lib, (uint32_t)lib + 16, IADSR_OK, &larger);
        if (call != call_pipeline) /* the wall times differ */
            out_same(&at_oldest, &larger, lib);
        /* smaller than the oldest size (the last field cut off, or one
         * byte short; no such struct was released): refused up front */
        out_probe(w, call, &f, lib, (uint32_t)cases[k].last_field,
                  IADSR_ERR_INVALID_ARG, NULL);
        out_probe(w, call, &f, lib, (uint32_t)oldest - 1,
                  IADSR_ERR_INVALID_ARG, NULL);
        out_probe(w, call, &f, lib, 0, IADSR_ERR_INVALID_ARG, NULL);
        if (call == call_pipeline) {
            iadsr_pipeline_result a, b;
            memcpy(&a, at_oldest.b, sizeof a);
            memcpy(&b, larger.b, sizeof b);
            /* the embedded metrics keep their 0.1 size */
            ck_assert_uint_eq(a.test.struct_size, 64);
            ck_assert_uint_eq(b.test.struct_size, 64);
            ck_assert_int_eq(a.test.n_users, iadsr_dataset_n_users(f.d));
            ck_assert_int_eq(a.iadsr_epochs, b.iadsr_epochs);
            ck_assert_int_eq(a.n_items_in, b.n_items_in);
            ck_assert_int_eq(a.n_items_dropped, b.n_items_dropped);
            ck_assert(memcmp(&a.test, &b.test, sizeof a.test) == 0);
        }
    }
    TU_EXPECT_ERR(iadsr_pipeline(f.d, f.sem, &f.mp, &f.tp, NULL, NULL, NULL,
                                 NULL, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    iadsr_gate_free(f.g);
    iadsr_semantic_free(f.sem);
    iadsr_model_free(f.m);
    iadsr_dataset_free(f.d);
}
END_TEST

START_TEST(test_eval_bad_args)
{
    fixture f;
    fx_open(&f);
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_EXPECT_ERR(iadsr_evaluate(NULL, f.d, NULL, &mt), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(f.m, NULL, NULL, &mt), IADSR_ERR_INVALID_ARG);
    static struct iadsr_model zm;
    static struct iadsr_dataset zd;
    memset(&zm, 0, sizeof zm);
    memset(&zd, 0, sizeof zd);
    TU_EXPECT_ERR(iadsr_evaluate(&zm, f.d, NULL, &mt), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(f.m, &zd, NULL, &mt), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate((const iadsr_model *)(void *)f.d, f.d, NULL,
                                 &mt),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(f.m, (const iadsr_dataset *)(void *)f.m,
                                 NULL, &mt),
                  IADSR_ERR_INVALID_ARG);
    /* more items in the dataset than in the model */
    iadsr_model *small = tu_model(NI - 1, 3);
    TU_EXPECT_ERR(iadsr_evaluate(small, f.d, NULL, &mt),
                  IADSR_ERR_DIM_MISMATCH);
    iadsr_model_free(small);
    /* params */
    for (int i = 0; i < 8; i++) {
        iadsr_eval_params ep;
        iadsr_eval_params_init(&ep);
        int want = IADSR_ERR_INVALID_ARG;
        switch (i) {
        case 0: ep.target = 3; break;
        case 1: ep.target = -1; break;
        case 2: ep.n_threads = 0; break;
        case 3: ep.n_threads = 257; break;
        case 4: ep.n_threads = -2; break;
        case 5: ep.flags = 2; want = IADSR_ERR_UNSUPPORTED; break;
        case 6: ep.struct_size = 0; break;
        default: ep.struct_size = 4; break;
        }
        TU_EXPECT_ERR(iadsr_evaluate(f.m, f.d, &ep, &mt), want);
    }
    struct {
        iadsr_eval_params p;
        uint32_t extra[2];
    } big;
    memset(&big, 0, sizeof big);
    iadsr_eval_params_init(&big.p);
    big.p.struct_size = sizeof big;
    TU_OK(iadsr_evaluate(f.m, f.d, &big.p, &mt));
    big.extra[1] = 9;
    TU_EXPECT_ERR(iadsr_evaluate(f.m, f.d, &big.p, &mt),
                  IADSR_ERR_UNSUPPORTED);
    fx_close(&f);
}
END_TEST

/* Ties count against the target: a scorer that gives every item one score
 * ranks every target last, not first. */
START_TEST(test_ties_pessimistic)
{
    float sc[7] = {0, 0.5f, 0.5f, 0.9f, 0.5f, 0.1f, 0.5f};
    const int32_t hist[2] = {2, 3};
    ck_assert_int_eq(iadsr__target_rank(sc, 6, hist, 2, 1, 0), 4);
    ck_assert_int_eq(iadsr__target_rank(sc, 6, hist, 2, 3, 0), 0);
    ck_assert_int_eq(iadsr__target_rank(sc, 6, hist, 2, 5, 0), 5);
    /* excluding history: items 2 and 3 no longer count */
    ck_assert_int_eq(iadsr__target_rank(sc, 6, hist, 2, 1,
                                        IADSR_TOPK_EXCLUDE_HISTORY),
                     2);
    /* an all-zero semantic matrix recommends nothing */
    iadsr_dataset *d = tu_synth(40, NI, 4, 5, 12, 3);
    float *zero = calloc((size_t)NI * 8, sizeof(float));
    ck_assert_ptr_nonnull(zero);
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, zero, NI, 8, 8, IADSR_FLAG_COPY));
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_semantic_evaluate(s, d, NULL, &mt));
    ck_assert_int_eq(mt.n_users, 40);
    ck_assert_msg(mt.hr20 == 0.0 && mt.ndcg20 == 0.0,
                  "an all-tied scorer: HR@20 %g", mt.hr20);
    iadsr_semantic_free(s);
    free(zero);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_metrics_from_ranks)
{
    static const int32_t ranks[] = {0, 4, 5, 9, 10, 19, 20, 59};
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    iadsr__metrics_from_ranks(ranks, 8, &mt);
    ck_assert_int_eq(mt.n_users, 8);
    double g0 = 1.0, g4 = 1.0 / log2(6.0), g5 = 1.0 / log2(7.0),
           g9 = 1.0 / log2(11.0), g10 = 1.0 / log2(12.0),
           g19 = 1.0 / log2(21.0);
    ck_assert(fabs(mt.hr5 - 2.0 / 8) < 1e-15);
    ck_assert(fabs(mt.hr10 - 4.0 / 8) < 1e-15);
    ck_assert(fabs(mt.hr20 - 6.0 / 8) < 1e-15);
    ck_assert(fabs(mt.ndcg5 - (g0 + g4) / 8) < 1e-15);
    ck_assert(fabs(mt.ndcg10 - (g0 + g4 + g5 + g9) / 8) < 1e-15);
    ck_assert(fabs(mt.ndcg20 - (g0 + g4 + g5 + g9 + g10 + g19) / 8) < 1e-15);
}
END_TEST

/* ---- allocation failures -------------------------------------------------- */

START_TEST(test_eval_alloc_failures)
{
    fixture f;
    fx_open(&f);
    for (int nt = 1; nt <= 2; nt++)
        for (int persistent = 1; persistent >= 0; persistent--) {
            iadsr_metrics ref = run_eval(f.m, f.d, IADSR_EVAL_TEST, 0, nt);
            iadsr_eval_params ep;
            iadsr_eval_params_init(&ep);
            ep.n_threads = nt;
            long k;
            for (k = 1; k < 1000; k++) {
                long live = iadsr__alloc_live();
                iadsr_metrics mt, keep;
                memset(&mt, 0x11, sizeof mt);
                mt.struct_size = sizeof mt;
                keep = mt;
                iadsr__alloc_fail_after(k, persistent);
                int rc = iadsr_evaluate(f.m, f.d, &ep, &mt);
                iadsr__alloc_fail_after(0, 0);
                ck_assert_msg(iadsr__alloc_live() == live,
                              "threads %d k=%ld: %ld leaked", nt, k,
                              iadsr__alloc_live() - live);
                if (rc == IADSR_OK) {
                    ck_assert(memcmp(&mt, &ref, sizeof mt) == 0);
                    break;
                }
                ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                              iadsr_status_name(rc));
                ck_assert(iadsr_last_error()[0] != '\0');
                ck_assert(memcmp(&mt, &keep, sizeof mt) == 0);
            }
            ck_assert(k > 1 && k < 1000);
        }
    fx_close(&f);
}
END_TEST

Suite *suite_eval(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_metrics_direct);
    tcase_add_test(tc, test_valid_ignores_last_item);
    tcase_add_test(tc, test_thread_count_invariance);
    tcase_add_test(tc, test_metrics_from_ranks);
    tcase_add_test(tc, test_ties_pessimistic);
    suite_add_tcase(s, tc);

    tc = tcase_create("users");
    tcase_add_test(tc, test_short_users_skipped);
    tcase_add_test(tc, test_no_eligible_users);
    suite_add_tcase(s, tc);

    tc = tcase_create("args");
    tcase_add_test(tc, test_out_struct_size);
    tcase_add_test(tc, test_output_structs);
    tcase_add_test(tc, test_eval_bad_args);
    tcase_add_test(tc, test_eval_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
