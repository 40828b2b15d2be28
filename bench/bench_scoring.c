/* bench_scoring: inference speed of a trained model on real histories.
 *
 * Usage: bench_scoring MODEL DATA latency[-topk[-fp16|-int8]] [N_USERS]
 *        bench_scoring MODEL DATA throughput[-fp16|-int8] THREADS [N_USERS]
 *
 * N_USERS (default 2000) users of DATA, spread evenly over the file among
 * those with at least two items, are scored on their history seq[:-1] (the
 * leave-one-out test input).
 *
 * latency     one iadsr_ctx on the calling thread; iadsr_ctx_score() (all
 *             items) per user; 200 warm-up calls, then max(2000, N_USERS)
 *             timed calls; reports p50 / p90 / p99 / mean / min in us.
 * latency-topk  the same with iadsr_ctx_topk() (k = 10, history excluded):
 *             the single-user recommendation call.
 * -fp16, -int8  contexts made with IADSR_CTX_F_FP16_SCAN / _INT8_SCAN.
 *             Before timing, the top-10 ids and scores of every user of
 *             DATA with >= 2 items are compared with an fp32 context's: any
 *             difference fails.
 * throughput  THREADS threads, each with its own iadsr_ctx (max_batch 256)
 *             and its share of the users; iadsr_ctx_topk_batch() with k = 10
 *             and IADSR_TOPK_EXCLUDE_HISTORY in chunks of 256 users. One
 *             warm-up pass, then 3 timed runs of P passes each (P chosen so
 *             a run lasts about a second); reports users/s of every run and
 *             the median.
 *
 * BLAS threads follow the environment; bench/run.sh sets
 * OPENBLAS_NUM_THREADS for each measurement. Results are printed as
 * "RESULT <key> <value>" lines.
 * SPDX-License-Identifier: MIT
 */
#include <iadsr.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K 10
#define CHUNK 256
#define WARMUP_CALLS 200
#define MIN_TIMED_CALLS 2000
#define RUNS 3
#define MAX_THREADS 64

typedef struct {
    int32_t *items;   /* histories, CSR */
    int64_t *offsets; /* n + 1 */
    int64_t n;
} batch;

static uint32_t g_ctx_flags; /* the reduced-table flag of -fp16 / -int8 */
static int g_topk;           /* latency of iadsr_ctx_topk, not iadsr_ctx_score */

typedef struct {
    const iadsr_model *model;
    const batch *b;
    int64_t first, last; /* users [first, last) */
    int passes;
    pthread_barrier_t *start;
    int status;
    char msg[512];
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fail(const char *what, int st)
{
    fprintf(stderr, "bench_scoring: %s failed: %s: %s\n", what,
            iadsr_status_name(st), iadsr_last_error());
}

/* Evenly spread users with >= 2 items; history = all items but the last. */
static int pick_users(const iadsr_dataset *d, int64_t want, batch *b)
{
    int64_t n_users = iadsr_dataset_n_users(d), eligible = 0, total = 0, k = 0;
    int32_t len;
    for (int64_t u = 0; u < n_users; u++) {
        iadsr_dataset_user_items(d, u, &len);
        eligible += len >= 2;
    }
    if (eligible == 0)
        return -1;
    if (want > eligible)
        want = eligible;
    b->offsets = calloc((size_t)want + 1, sizeof *b->offsets);
    b->items = malloc((size_t)iadsr_dataset_n_interactions(d) * sizeof *b->items);
    if (!b->offsets || !b->items)
        return -1;
    for (int64_t u = 0, seen = 0; u < n_users && k < want; u++) {
        const int32_t *it = iadsr_dataset_user_items(d, u, &len);
        if (len < 2)
            continue;
        /* take user number floor(j * eligible / want) for j = 0..want-1 */
        if (seen++ != k * eligible / want)
            continue;
        memcpy(b->items + total, it, (size_t)(len - 1) * sizeof *it);
        total += len - 1;
        b->offsets[++k] = total;
    }
    b->n = k;
    return 0;
}

static int run_latency(const iadsr_model *m, const batch *b)
{
    int32_t n_items = iadsr_model_n_items(m);
    int64_t cap = (int64_t)n_items + 1;
    int64_t calls = b->n > MIN_TIMED_CALLS ? b->n : MIN_TIMED_CALLS;
    float *scores = malloc((size_t)cap * sizeof *scores);
    double *lat = malloc((size_t)calls * sizeof *lat), sum = 0;
    iadsr_ctx *ctx = NULL;
    int st, rc = 1;
    if (!scores || !lat) {
        fprintf(stderr, "bench_scoring: out of memory\n");
        goto done;
    }
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.flags = g_ctx_flags;
    if ((st = iadsr_ctx_create(&ctx, m, &cp)) != IADSR_OK) {
        fail("iadsr_ctx_create", st);
        goto done;
    }
    for (int64_t i = 0; i < WARMUP_CALLS + calls; i++) {
        int64_t u = i % b->n;
        const int32_t *seq = b->items + b->offsets[u];
        int32_t n_seq = (int32_t)(b->offsets[u + 1] - b->offsets[u]);
        int32_t ids[K];
        double t0 = now_s();
        st = g_topk ? iadsr_ctx_topk(ctx, seq, n_seq, K, IADSR_TOPK_EXCLUDE_HISTORY,
                                     ids, scores)
                    : iadsr_ctx_score(ctx, seq, n_seq, scores, cap);
        double dt = now_s() - t0;
        if (st != IADSR_OK) {
            fail("iadsr_ctx_score", st);
            goto done;
        }
        if (i >= WARMUP_CALLS)
            lat[i - WARMUP_CALLS] = dt * 1e6;
    }
    for (int64_t i = 0; i < calls; i++)
        sum += lat[i];
    qsort(lat, (size_t)calls, sizeof *lat, cmp_double);
    printf("latency: %lld timed calls of %s over %d items%s "
           "(after %d warm-up calls)\n", (long long)calls,
           g_topk ? "iadsr_ctx_topk (k = 10, history excluded)" : "iadsr_ctx_score",
           (int)n_items, g_ctx_flags == IADSR_CTX_F_FP16_SCAN   ? ", fp16 scan"
           : g_ctx_flags == IADSR_CTX_F_INT8_SCAN ? ", int8 scan"
                                                  : "", WARMUP_CALLS);
    printf("RESULT latency_calls %lld\n", (long long)calls);
    printf("RESULT latency_p50_us %.1f\n", lat[calls / 2]);
    printf("RESULT latency_p90_us %.1f\n", lat[calls * 90 / 100]);
    printf("RESULT latency_p99_us %.1f\n", lat[calls * 99 / 100]);
    printf("RESULT latency_mean_us %.1f\n", sum / (double)calls);
    printf("RESULT latency_min_us %.1f\n", lat[0]);
    rc = 0;
done:
    iadsr_ctx_free(ctx);
    free(scores);
    free(lat);
    return rc;
}

static void *work(void *arg)
{
    worker *w = arg;
    iadsr_ctx *ctx = NULL;
    iadsr_ctx_params cp;
    int32_t ids[CHUNK * K];
    int64_t off[CHUNK + 1];
    iadsr_ctx_params_init(&cp);
    cp.max_batch = CHUNK;
    cp.flags = g_ctx_flags;
    w->status = iadsr_ctx_create(&ctx, w->model, &cp);
    if (w->status != IADSR_OK)
        snprintf(w->msg, sizeof w->msg, "iadsr_ctx_create: %s", iadsr_last_error());
    pthread_barrier_wait(w->start);
    for (int p = 0; p < w->passes && w->status == IADSR_OK; p++) {
        for (int64_t u = w->first; u < w->last; u += CHUNK) {
            int64_t n = w->last - u < CHUNK ? w->last - u : CHUNK;
            for (int64_t i = 0; i <= n; i++)
                off[i] = w->b->offsets[u + i] - w->b->offsets[u];
            w->status = iadsr_ctx_topk_batch(ctx, w->b->items + w->b->offsets[u], off, n,
                                             K, IADSR_TOPK_EXCLUDE_HISTORY, ids, NULL);
            if (w->status != IADSR_OK) {
                snprintf(w->msg, sizeof w->msg, "iadsr_ctx_topk_batch: %s",
                         iadsr_last_error());
                break;
            }
        }
    }
    iadsr_ctx_free(ctx);
    return NULL;
}

/* One run of `passes` passes over all users with n_threads threads; returns
 * the wall time in seconds (from the common start to the last join) or -1. */
static double timed_run(const iadsr_model *m, const batch *b, int n_threads, int passes)
{
    worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    pthread_barrier_t start;
    double t0, t1;
    int ok = 1, started = 0;
    if (pthread_barrier_init(&start, NULL, (unsigned)n_threads + 1) != 0)
        return -1;
    for (int i = 0; i < n_threads; i++) {
        w[i] = (worker){m, b, b->n * i / n_threads, b->n * (i + 1) / n_threads,
                        passes, &start, IADSR_OK, ""};
        if (pthread_create(&th[i], NULL, work, &w[i]) != 0) {
            fprintf(stderr, "bench_scoring: pthread_create failed\n");
            exit(1); /* the barrier would never open */
        }
        started++;
    }
    pthread_barrier_wait(&start); /* all contexts exist: start the clock */
    t0 = now_s();
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    t1 = now_s();
    pthread_barrier_destroy(&start);
    for (int i = 0; i < n_threads; i++) {
        if (w[i].status != IADSR_OK) {
            fprintf(stderr, "bench_scoring: thread %d: %s: %s\n", i,
                    iadsr_status_name(w[i].status), w[i].msg);
            ok = 0;
        }
    }
    return ok ? t1 - t0 : -1;
}

/* The batched top-K of the first user must equal the single-user top-K. */
static int check_consistency(const iadsr_model *m, const batch *b)
{
    iadsr_ctx *ctx = NULL;
    int32_t a[K], c[K];
    int64_t off[2] = {0, b->offsets[1]};
    int st, rc = 1;
    if ((st = iadsr_ctx_create(&ctx, m, NULL)) != IADSR_OK) {
        fail("iadsr_ctx_create", st);
        return 1;
    }
    if ((st = iadsr_ctx_topk(ctx, b->items, (int32_t)b->offsets[1], K,
                             IADSR_TOPK_EXCLUDE_HISTORY, a, NULL)) != IADSR_OK) {
        fail("iadsr_ctx_topk", st);
    } else if ((st = iadsr_ctx_topk_batch(ctx, b->items, off, 1, K,
                                          IADSR_TOPK_EXCLUDE_HISTORY, c, NULL)) != IADSR_OK) {
        fail("iadsr_ctx_topk_batch", st);
    } else if (memcmp(a, c, sizeof a) != 0) {
        fprintf(stderr, "bench_scoring: batched and single top-%d differ\n", K);
    } else {
        rc = 0;
    }
    iadsr_ctx_free(ctx);
    return rc;
}

/* Every user of @p all: the reduced-table context's top-K must equal the
 * fp32 context's, ids and scores bit for bit. */
static int check_reduced_identical(const iadsr_model *m, const batch *all)
{
    iadsr_ctx *c32 = NULL, *c16 = NULL;
    iadsr_ctx_params cp;
    int32_t a[K], c[K];
    float sa[K], sc[K];
    int64_t bad = 0;
    int st;
    iadsr_ctx_params_init(&cp);
    cp.max_batch = CHUNK;
    if ((st = iadsr_ctx_create(&c32, m, &cp)) != IADSR_OK) {
        fail("iadsr_ctx_create", st);
        return 1;
    }
    cp.flags = g_ctx_flags;
    if ((st = iadsr_ctx_create(&c16, m, &cp)) != IADSR_OK) {
        fail("iadsr_ctx_create (reduced table)", st);
        iadsr_ctx_free(c32);
        return 1;
    }
    for (int64_t u = 0; u < all->n; u++) {
        const int32_t *seq = all->items + all->offsets[u];
        int32_t n = (int32_t)(all->offsets[u + 1] - all->offsets[u]);
        if (iadsr_ctx_topk(c32, seq, n, K, IADSR_TOPK_EXCLUDE_HISTORY, a, sa) != IADSR_OK ||
            iadsr_ctx_topk(c16, seq, n, K, IADSR_TOPK_EXCLUDE_HISTORY, c, sc) != IADSR_OK) {
            fprintf(stderr, "bench_scoring: iadsr_ctx_topk failed: %s\n", iadsr_last_error());
            bad++;
            break;
        }
        bad += memcmp(a, c, sizeof a) != 0 || memcmp(sa, sc, sizeof sa) != 0;
    }
    /* and the batched calls, in chunks of CHUNK users */
    for (int64_t u0 = 0; u0 < all->n && !bad; u0 += CHUNK) {
        int64_t n = all->n - u0 < CHUNK ? all->n - u0 : CHUNK;
        int64_t off[CHUNK + 1];
        int32_t ia[CHUNK * K], ic[CHUNK * K];
        float fa[CHUNK * K], fc[CHUNK * K];
        for (int64_t i = 0; i <= n; i++)
            off[i] = all->offsets[u0 + i] - all->offsets[u0];
        const int32_t *it = all->items + all->offsets[u0];
        if (iadsr_ctx_topk_batch(c32, it, off, n, K, IADSR_TOPK_EXCLUDE_HISTORY, ia, fa) != IADSR_OK ||
            iadsr_ctx_topk_batch(c16, it, off, n, K, IADSR_TOPK_EXCLUDE_HISTORY, ic, fc) != IADSR_OK) {
            fprintf(stderr, "bench_scoring: iadsr_ctx_topk_batch failed: %s\n", iadsr_last_error());
            bad++;
            break;
        }
        for (int64_t i = 0; i < n; i++)
            bad += memcmp(ia + i * K, ic + i * K, sizeof a) != 0 ||
                   memcmp(fa + i * K, fc + i * K, sizeof sa) != 0;
    }
    printf("%s scan: top-%d of %lld users identical to fp32 (single and batched): %s (%lld differ)\n",
           g_ctx_flags == IADSR_CTX_F_INT8_SCAN ? "int8" : "fp16", K,
           (long long)all->n, bad ? "NO" : "yes", (long long)bad);
    printf("RESULT reduced_users_checked %lld\n", (long long)all->n);
    printf("RESULT reduced_users_differing %lld\n", (long long)bad);
    iadsr_ctx_free(c16);
    iadsr_ctx_free(c32);
    return bad != 0;
}

static int run_throughput(const iadsr_model *m, const batch *b, int n_threads)
{
    double t, runs[RUNS], sorted[RUNS];
    int passes;
    if (check_consistency(m, b) != 0)
        return 1;
    t = timed_run(m, b, n_threads, 1); /* warm-up and calibration */
    if (t < 0)
        return 1;
    passes = (int)ceil(1.0 / (t > 1e-6 ? t : 1e-6));
    if (passes < 1)
        passes = 1;
    if (passes > 1000)
        passes = 1000;
    printf("throughput: %d thread(s), top-%d of %lld users in chunks of %d, "
           "%d pass(es) per run\n", n_threads, K, (long long)b->n, CHUNK, passes);
    for (int r = 0; r < RUNS; r++) {
        t = timed_run(m, b, n_threads, passes);
        if (t < 0)
            return 1;
        runs[r] = (double)b->n * passes / t;
        printf("  run %d: %.0f users/s (%.3fs)\n", r + 1, runs[r], t);
    }
    memcpy(sorted, runs, sizeof runs);
    qsort(sorted, RUNS, sizeof *sorted, cmp_double);
    printf("RESULT throughput_threads %d\n", n_threads);
    printf("RESULT throughput_users_per_s %.0f\n", sorted[RUNS / 2]);
    printf("RESULT throughput_runs %.0f %.0f %.0f\n", runs[0], runs[1], runs[2]);
    return 0;
}

int main(int argc, char **argv)
{
    iadsr_model *m = NULL;
    iadsr_dataset *d = NULL;
    batch b = {NULL, NULL, 0};
    int64_t want = 2000;
    int threads = 0, throughput, st, rc = 1;
    const char *nu = NULL;

    const char *mode = argc >= 4 ? argv[3] : "";
    int latency = strcmp(mode, "latency") == 0 || strcmp(mode, "latency-topk") == 0 ||
                  strcmp(mode, "latency-topk-fp16") == 0 ||
                  strcmp(mode, "latency-topk-int8") == 0;
    throughput = argc >= 5 && (strcmp(mode, "throughput") == 0 ||
                               strcmp(mode, "throughput-fp16") == 0 ||
                               strcmp(mode, "throughput-int8") == 0);
    g_topk = strncmp(mode, "latency-topk", 12) == 0;
    g_ctx_flags = strstr(mode, "-fp16")   ? IADSR_CTX_F_FP16_SCAN
                  : strstr(mode, "-int8") ? IADSR_CTX_F_INT8_SCAN
                                          : 0;
    if (throughput) {
        threads = atoi(argv[4]);
        nu = argc == 6 ? argv[5] : NULL;
    } else if (latency) {
        nu = argc == 5 ? argv[4] : NULL;
    }
    if ((!throughput && !latency) ||
        argc > (throughput ? 6 : 5) || (throughput && (threads < 1 || threads > MAX_THREADS))) {
        fprintf(stderr, "usage: bench_scoring MODEL DATA latency[-topk[-fp16|-int8]] [N_USERS]\n"
                        "       bench_scoring MODEL DATA throughput[-fp16|-int8] THREADS(1..%d) "
                        "[N_USERS]\n", MAX_THREADS);
        return 2;
    }
    if (nu && (want = atoll(nu)) < 1) {
        fprintf(stderr, "bench_scoring: N_USERS must be >= 1\n");
        return 2;
    }
    if ((st = iadsr_model_load(&m, argv[1], 0)) != IADSR_OK) {
        fail("iadsr_model_load", st);
        goto done;
    }
    if ((st = iadsr_dataset_load_text(&d, argv[2], iadsr_model_n_items(m))) != IADSR_OK) {
        fail("iadsr_dataset_load_text", st);
        goto done;
    }
    if (pick_users(d, want, &b) != 0) {
        fprintf(stderr, "bench_scoring: no usable users in %s (or out of memory)\n", argv[2]);
        goto done;
    }
    printf("model %s: %d items, dim %d, max_seq_len %d; %lld users, mean history %.2f\n",
           argv[1], (int)iadsr_model_n_items(m), (int)iadsr_model_dim(m),
           (int)iadsr_model_max_seq_len(m), (long long)b.n,
           (double)b.offsets[b.n] / (double)b.n);
    if (g_ctx_flags) {
        batch all = {NULL, NULL, 0};
        int bad = pick_users(d, iadsr_dataset_n_users(d), &all) != 0 ||
                  check_reduced_identical(m, &all) != 0;
        free(all.items);
        free(all.offsets);
        if (bad)
            goto done;
    }
    rc = throughput ? run_throughput(m, &b, threads) : run_latency(m, &b);
done:
    free(b.items);
    free(b.offsets);
    iadsr_dataset_free(d);
    iadsr_model_free(m);
    return rc;
}
