/* serve_topk: a service that loads one model and serves top-K requests from
 * several worker threads sharing it, reporting requests/s and latency
 * percentiles. The model is WORKDIR/model.iadsr if it loads; otherwise a
 * small SASRec is trained on synthetic data and saved there. Finally it
 * serves a cold user, a history with an unknown id and an allow-listed page
 * with iadsr_ctx_topk_v2().
 * Usage: serve_topk WORKDIR [N_THREADS [N_REQUESTS]]   (defaults 4, 20000)
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <iadsr.h>

enum { N_USERS = 1200, TOPIC_SIZE = 20, N_ITEMS = 240, TRAIN_LEN = 30,
       DIM = 32, MAX_LEN = 20, EPOCHS = 20, K = 10, CHECK_EVERY = 97,
       MAX_THREADS = 256, MAX_REQ_LEN = 512 };
/* On failure: print the call, the status name and the library's detail. */
#define TRY(name, call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s failed: %s: %s\n", name, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

static uint64_t lcg_state = 777;
static uint32_t lcg_next(uint32_t n) /* deterministic integer in 0..n-1 */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((lcg_state >> 33) % n);
}

/* One user's history over items 1..n_items: items come in topics of
 * TOPIC_SIZE consecutive ids (fewer if the catalogue is small); the user
 * mostly walks a chain inside one of two topics and sometimes clicks
 * anything. Used for the training data and for the request log. */
static void make_history(int32_t *out, int32_t len, int32_t n_items)
{
    uint32_t size = n_items >= 2 * TOPIC_SIZE ? TOPIC_SIZE : (uint32_t)n_items;
    uint32_t n_topics = (uint32_t)n_items / size;
    uint32_t topic[2] = {lcg_next(n_topics), lcg_next(n_topics)};
    uint32_t t = topic[0], pos = lcg_next(size);
    for (int32_t i = 0; i < len; i++) {
        uint32_t r = lcg_next(100);
        if (r < 70) pos = (pos + 1) % size;
        else if (r < 90) { t = topic[lcg_next(2)]; pos = lcg_next(size); }
        out[i] = r < 90 ? (int32_t)(1 + t * size + pos)
                        : (int32_t)(1 + lcg_next((uint32_t)n_items));
    }
}

static const char *backbone_name(int32_t b)
{
    switch (b) {
    case IADSR_BACKBONE_SASREC: return "SASRec";
    case IADSR_BACKBONE_GRU4REC: return "GRU4Rec";
    case IADSR_BACKBONE_CASER: return "Caser";
    default: return "unknown";
    }
}

static int on_epoch(const iadsr_progress_info *info, void *user_data)
{
    (void)user_data;
    if (info->epoch % 5 != 0 && info->epoch != info->max_epochs)
        return 0; /* print every fifth epoch */
    printf("  epoch %d/%d  loss %.4f  valid NDCG@10 %.4f  (%.2fs)\n",
           (int)info->epoch, (int)info->max_epochs, info->loss,
           info->valid_ndcg10, info->epoch_seconds);
    return 0;
}

/* Train a small SASRec on synthetic data and save it atomically at @p path
 * (iadsr_model_save writes a temporary file and renames it, so a reader
 * never sees a half-written checkpoint). */
static int train_model(iadsr_model **out, const char *path)
{
    static int32_t items[N_USERS * TRAIN_LEN];
    static int64_t offsets[N_USERS + 1];
    iadsr_dataset *data = NULL;
    iadsr_model *init = NULL;
    iadsr_trainer *trainer = NULL;
    iadsr_model_params mp;
    iadsr_train_params tp;
    int rc = 1;

    for (int u = 0; u < N_USERS; u++) {
        int32_t len = 6 + (int32_t)lcg_next(TRAIN_LEN - 5);
        make_history(items + offsets[u], len, N_ITEMS);
        offsets[u + 1] = offsets[u] + len;
    }
    TRY("iadsr_dataset_create", iadsr_dataset_create(&data, items, offsets,
                                N_USERS, N_ITEMS, IADSR_FLAG_BORROW));
    iadsr_model_params_init(&mp);
    mp.backbone = IADSR_BACKBONE_SASREC;
    mp.n_items = N_ITEMS; mp.dim = DIM; mp.max_seq_len = MAX_LEN;
    mp.dropout = 0.2f;
    TRY("iadsr_model_create", iadsr_model_create(&init, &mp));
    iadsr_train_params_init(&tp);
    tp.max_epochs = EPOCHS; tp.batch_size = 64; tp.learning_rate = 5e-3f;
    TRY("iadsr_trainer_create",
        iadsr_trainer_create(&trainer, init, data, &tp));
    TRY("iadsr_trainer_fit", iadsr_trainer_fit(trainer, on_epoch, NULL));
    TRY("iadsr_trainer_snapshot", iadsr_trainer_snapshot(trainer, out));
    TRY("iadsr_model_save", iadsr_model_save(*out, path, 0));
    printf("saved %s\n", path);
    rc = 0;
done:
    iadsr_trainer_free(trainer); /* it keeps the dataset alive until here */
    iadsr_model_free(init);
    iadsr_dataset_free(data);
    return rc;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* State shared by the workers. The request log, ids and latencies are
 * plain arrays: every request index is handed out exactly once by the
 * atomic counter, so each slot has a single writer, and main reads them
 * only after pthread_join. */
typedef struct server {
    const iadsr_model *model; /* read by workers only before the gate */
    const int32_t *items;     /* request log, CSR */
    const int64_t *offsets;
    int64_t n_req;
    int32_t k;
    int32_t *ids;             /* n_req * k: the answer to each request */
    int64_t *lat_ns;          /* n_req: latency of each request */
    atomic_llong next;        /* next request index to serve */
    atomic_int stop;          /* a worker failed: the others stop early */
    /* Start gate: workers create their context, then wait until main has
     * seen every context created (and freed its model reference). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, go, abort_run;
} server;

typedef struct worker {
    server *s;
    pthread_t tid;
    int status;         /* IADSR_OK or the first failing status */
    const char *call;   /* the failing call */
    char detail[256];   /* copy: iadsr_last_error() is thread-local */
    long long served;
} worker;

static void worker_fail(worker *w, const char *call, int st)
{
    w->status = st;
    w->call = call;
    snprintf(w->detail, sizeof w->detail, "%s", iadsr_last_error());
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    server *s = w->s;
    iadsr_ctx *ctx = NULL;
    int st, run;

    /* One context per thread: it holds the scoring scratch. */
    st = iadsr_ctx_create(&ctx, s->model, NULL);
    if (st != IADSR_OK) worker_fail(w, "iadsr_ctx_create", st);

    pthread_mutex_lock(&s->mu);
    s->ready++;
    pthread_cond_broadcast(&s->cv);
    while (!s->go) pthread_cond_wait(&s->cv, &s->mu);
    run = !s->abort_run;
    pthread_mutex_unlock(&s->mu);

    while (run && st == IADSR_OK && !atomic_load(&s->stop)) {
        long long i = atomic_fetch_add(&s->next, 1);
        if (i >= s->n_req) break;
        const int32_t *seq = s->items + s->offsets[i];
        int32_t n = (int32_t)(s->offsets[i + 1] - s->offsets[i]);
        int64_t t0 = now_ns();
        st = iadsr_ctx_topk(ctx, seq, n, s->k, IADSR_TOPK_EXCLUDE_HISTORY,
                            s->ids + i * s->k, NULL);
        s->lat_ns[i] = now_ns() - t0;
        if (st != IADSR_OK) {
            worker_fail(w, "iadsr_ctx_topk", st);
            atomic_store(&s->stop, 1);
        } else {
            w->served++;
        }
    }
    iadsr_ctx_free(ctx);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values, in microseconds. */
static double pct_us(const int64_t *sorted, int64_t n, int p)
{
    int64_t idx = (n * p + 99) / 100 - 1;
    if (idx < 0) idx = 0;
    return (double)sorted[idx] / 1e3;
}

/* Requests beyond a plain history, with one iadsr_topk_params each:
 * - a new user with no history gets the most popular items (the model has
 *   no popularity: the host passes item counts, here from its request log);
 * - a history holding an id the model does not know (an item added to the
 *   catalogue after training) is served without it instead of failing;
 * - a page that may only show some items (an allow-list: here the first
 *   topic, ids 1..TOPIC_SIZE) and never the one on screen (a deny-list). */
static int serve_requests(iadsr_ctx *ctx, const int32_t *items,
                          const int64_t *offsets, long n_req, int32_t k)
{
    int32_t n_items = iadsr_model_n_items(iadsr_ctx_model(ctx));
    int32_t top[K], plain[K], allow[TOPIC_SIZE], deny[1] = {1};
    int32_t n_found = 0, n_skipped = 0, n_allow = 0, seq[MAX_REQ_LEN + 1];
    float *pop = calloc((size_t)n_items + 1, sizeof *pop);
    iadsr_topk_params req;
    int rc = 1;

    if (!pop) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < offsets[n_req]; i++)
        pop[items[i]] += 1.0f;

    /* a cold user: the item counts, exactly */
    iadsr_topk_params_init(&req);
    req.cold_item_scores = pop;
    req.n_cold_item_scores = (int64_t)n_items + 1;
    float counts[K];
    TRY("iadsr_ctx_topk_v2 (cold user)",
        iadsr_ctx_topk_v2(ctx, NULL, 0, k, &req, top, counts, &n_found, NULL));
    printf("cold user (item counts as fallback): %d results, top %d (%.0f "
           "requests) %d (%.0f)\n", (int)n_found, (int)top[0],
           (double)counts[0], (int)top[k > 1 ? 1 : 0],
           (double)counts[k > 1 ? 1 : 0]);

    /* request 1 with an unknown id inserted before its last item */
    int32_t n = (int32_t)(offsets[2] - offsets[1]);
    memcpy(seq, items + offsets[1], (size_t)n * sizeof *seq);
    seq[n] = seq[n - 1];
    seq[n - 1] = n_items + 1000;
    iadsr_topk_params_init(&req);
    req.flags = IADSR_TOPK_EXCLUDE_HISTORY | IADSR_TOPK_SKIP_UNKNOWN;
    TRY("iadsr_ctx_topk_v2 (unknown id)",
        iadsr_ctx_topk_v2(ctx, seq, n + 1, k, &req, top, NULL, &n_found,
                          &n_skipped));
    TRY("iadsr_ctx_topk (check)",
        iadsr_ctx_topk(ctx, items + offsets[1], n, k,
                       IADSR_TOPK_EXCLUDE_HISTORY, plain, NULL));
    if (memcmp(top, plain, (size_t)k * sizeof *top) != 0) {
        fprintf(stderr, "the history with an unknown id was not served as "
                "the history without it\n");
        goto done;
    }
    printf("history with unknown id %d: %d id skipped, same top-%d as "
           "without it\n", (int)(n_items + 1000), (int)n_skipped, (int)k);

    /* request 0 on a page of the first topic, item 1 already on screen */
    for (int32_t j = 1; j <= TOPIC_SIZE && j <= n_items; j++)
        allow[n_allow++] = j;
    req.allow_ids = allow;
    req.n_allow = n_allow;
    req.deny_ids = deny;
    req.n_deny = 1;
    req.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    n = (int32_t)(offsets[1] - offsets[0]);
    TRY("iadsr_ctx_topk_v2 (allow-list)",
        iadsr_ctx_topk_v2(ctx, items, n, k, &req, top, NULL, &n_found, NULL));
    for (int32_t i = 0; i < n_found; i++)
        if (top[i] < 1 || top[i] > n_allow || top[i] == deny[0]) {
            fprintf(stderr, "item %d is outside the allow-list\n",
                    (int)top[i]);
            goto done;
        }
    printf("allow-list of items 1..%d minus item 1: %d results, first %d; "
           "the rest (if any) padded with -1\n", (int)n_allow, (int)n_found,
           (int)top[0]);
    rc = 0;
done:
    free(pop);
    return rc;
}

static long parse_arg(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s must be an integer in %ld..%ld\n", what, lo, hi);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    iadsr_model *model = NULL;
    iadsr_ctx *check_ctx = NULL;
    server s;
    worker *workers = NULL;
    int32_t *req_items = NULL, *ids = NULL, check_ids[K];
    int64_t *req_offsets = NULL, *lat = NULL;
    long n_threads = 4, n_req = 20000;
    int n_started = 0, sync_ok = 0, rc = 1;
    char path[4096];
    struct stat st;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: serve_topk WORKDIR [N_THREADS [N_REQUESTS]]\n");
        return 2;
    }
    if (argc > 2 && (n_threads = parse_arg(argv[2], 1, MAX_THREADS,
                                           "N_THREADS")) < 0)
        return 2;
    if (argc > 3 && (n_req = parse_arg(argv[3], 1, 10000000,
                                       "N_REQUESTS")) < 0)
        return 2;
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST) {
        perror(argv[1]);
        return 1;
    }
    if (snprintf(path, sizeof path, "%s/model.iadsr", argv[1])
        >= (int)sizeof path) {
        fprintf(stderr, "WORKDIR is too long\n");
        return 2;
    }
    if (getenv("OPENBLAS_NUM_THREADS") == NULL)
        printf("note: OPENBLAS_NUM_THREADS is unset; a host scoring from "
               "several threads should run OpenBLAS single-threaded "
               "(OPENBLAS_NUM_THREADS=1) and parallelise across contexts "
               "(docs/THREADS.md)\n");

    /* 1. The model: the saved one if it loads, else train one. */
    if (stat(path, &st) == 0) {
        int ls = iadsr_model_load(&model, path, 0);
        if (ls == IADSR_OK)
            printf("model: loaded %s\n", path);
        else
            printf("model: %s does not load (%s: %s); training a new one\n",
                   path, iadsr_status_name(ls), iadsr_last_error());
    } else {
        printf("model: %s not found; training a small SASRec\n", path);
    }
    if (model == NULL && train_model(&model, path) != 0)
        goto done;
    int32_t n_items = iadsr_model_n_items(model);
    int32_t max_len = iadsr_model_max_seq_len(model);
    int32_t k = n_items < K ? n_items : K;
    printf("model: %s, n_items %d, dim %d, max_seq_len %d, %lld parameters\n",
           backbone_name(iadsr_model_backbone(model)), (int)n_items,
           (int)iadsr_model_dim(model), (int)max_len,
           (long long)iadsr_model_n_params(model));

    /* 2. The request log: 80% of the histories fit the model's window, the
     * rest are up to twice as long (only the last max_seq_len count). */
    int32_t long_max = max_len * 2 < MAX_REQ_LEN ? max_len * 2 : MAX_REQ_LEN;
    int32_t short_max = max_len < long_max ? max_len : long_max;
    long n_long = 0;
    req_offsets = malloc(((size_t)n_req + 1) * sizeof *req_offsets);
    req_items = malloc((size_t)n_req * (size_t)long_max * sizeof *req_items);
    ids = malloc((size_t)n_req * (size_t)k * sizeof *ids);
    lat = malloc((size_t)n_req * sizeof *lat);
    workers = calloc((size_t)n_threads, sizeof *workers);
    if (!req_offsets || !req_items || !ids || !lat || !workers) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    lcg_state = 4242; /* the same log whether the model was loaded or not */
    req_offsets[0] = 0;
    for (long i = 0; i < n_req; i++) {
        int32_t len;
        if (lcg_next(5) != 0 || long_max == short_max)
            len = 1 + (int32_t)lcg_next((uint32_t)short_max);
        else
            len = short_max + 1
                  + (int32_t)lcg_next((uint32_t)(long_max - short_max));
        make_history(req_items + req_offsets[i], len, n_items);
        req_offsets[i + 1] = req_offsets[i] + len;
        n_long += len > max_len;
    }
    printf("request log: %ld histories, %lld items, %ld longer than "
           "max_seq_len\n", n_req, (long long)req_offsets[n_req], n_long);

    /* 3. Serve. */
    memset(&s, 0, sizeof s);
    s.model = model;
    s.items = req_items;
    s.offsets = req_offsets;
    s.n_req = n_req;
    s.k = k;
    s.ids = ids;
    s.lat_ns = lat;
    atomic_init(&s.next, 0);
    atomic_init(&s.stop, 0);
    if (pthread_mutex_init(&s.mu, NULL) != 0) {
        fprintf(stderr, "pthread_mutex_init failed\n");
        goto done;
    }
    if (pthread_cond_init(&s.cv, NULL) != 0) {
        fprintf(stderr, "pthread_cond_init failed\n");
        pthread_mutex_destroy(&s.mu);
        goto done;
    }
    sync_ok = 1;
    /* The checking context must exist before the model is released too. */
    TRY("iadsr_ctx_create", iadsr_ctx_create(&check_ctx, model, NULL));

    for (long t = 0; t < n_threads; t++) {
        workers[t].s = &s;
        int e = pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]);
        if (e != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(e));
            break;
        }
        n_started++;
    }
    pthread_mutex_lock(&s.mu);
    while (s.ready < n_started) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);

    /* Every context now holds its own reference to the model, so the
     * service can drop its handle: the weights stay alive until the last
     * context is freed (handles are reference counted, docs/THREADS.md). */
    iadsr_model_free(model);
    model = NULL;
    s.model = NULL;

    int64_t t_start = now_ns();
    pthread_mutex_lock(&s.mu);
    s.abort_run = n_started < n_threads;
    for (int t = 0; t < n_started; t++)
        if (workers[t].status != IADSR_OK) s.abort_run = 1;
    s.go = 1;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);

    int join_failed = 0;
    for (int t = 0; t < n_started; t++) {
        int e = pthread_join(workers[t].tid, NULL);
        if (e != 0) {
            fprintf(stderr, "pthread_join: %s\n", strerror(e));
            join_failed = 1;
        }
    }
    double wall = (double)(now_ns() - t_start) / 1e9;
    if (join_failed || n_started < n_threads) goto done;

    long long served = 0;
    for (int t = 0; t < n_started; t++) {
        if (workers[t].status != IADSR_OK) {
            fprintf(stderr, "worker %d: %s failed: %s: %s\n", t,
                    workers[t].call, iadsr_status_name(workers[t].status),
                    workers[t].detail);
            goto done;
        }
        served += workers[t].served;
    }
    if (served != n_req) {
        fprintf(stderr, "served %lld of %ld requests\n", served, n_req);
        goto done;
    }

    qsort(lat, (size_t)n_req, sizeof *lat, cmp_i64);
    printf("served %ld requests (top-%d, history excluded) on %ld thread%s "
           "in %.3f s: %.0f requests/s\n", n_req, (int)k, n_threads,
           n_threads == 1 ? "" : "s", wall, (double)n_req / wall);
    printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           pct_us(lat, n_req, 50), pct_us(lat, n_req, 90),
           pct_us(lat, n_req, 99), (double)lat[n_req - 1] / 1e3);
    printf("requests per thread:");
    for (int t = 0; t < n_started; t++) printf(" %lld", workers[t].served);
    printf("\n");

    /* 4. Correctness, not only speed: a sequential recomputation of a
     * sample on this thread must give the same ids. The model handle is
     * gone; check_ctx keeps the model alive. */
    long n_checked = 0;
    for (long i = 0; i < n_req; i += CHECK_EVERY) {
        int32_t n = (int32_t)(req_offsets[i + 1] - req_offsets[i]);
        TRY("iadsr_ctx_topk (check)",
            iadsr_ctx_topk(check_ctx, req_items + req_offsets[i], n, k,
                           IADSR_TOPK_EXCLUDE_HISTORY, check_ids, NULL));
        if (memcmp(check_ids, ids + i * k, (size_t)k * sizeof *ids) != 0) {
            fprintf(stderr, "request %ld: top-%d differs between the worker "
                    "and the sequential check\n", i, (int)k);
            goto done;
        }
        n_checked++;
    }
    printf("verified %ld sampled requests sequentially: identical top-%d "
           "ids (request 0 -> %d %d %d ...)\n", n_checked, (int)k,
           (int)ids[0], (int)ids[k > 1 ? 1 : 0], (int)ids[k > 2 ? 2 : 0]);

    /* 5. Requests a live service meets, through iadsr_ctx_topk_v2(). */
    if (serve_requests(check_ctx, req_items, req_offsets, n_req, k) != 0)
        goto done;
    rc = 0;
done:
    iadsr_ctx_free(check_ctx);
    iadsr_model_free(model);
    if (sync_ok) {
        pthread_cond_destroy(&s.cv);
        pthread_mutex_destroy(&s.mu);
    }
    free(workers);
    free(lat);
    free(ids);
    free(req_items);
    free(req_offsets);
    return rc;
}
