/* thread_stress: N threads share one model and one denoiser and make
 * CALLS scoring calls each (top-K, full scores, cleaning) on a fixed set of
 * requests; every result must be bit-identical to the single-threaded
 * reference computed first. Built normally by `make stress` and with
 * ThreadSanitizer by `make tsan`.
 * Usage: thread_stress [N_THREADS [CALLS_PER_THREAD]]   (defaults 8, 11000:
 * one call in 20 cleans, so each thread makes over 10,000 scoring calls)
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iadsr.h"

enum { N_ITEMS = 300, DIM = 32, MAX_LEN = 20, SEM_D = 8, N_REQ = 512, K = 10,
       MAX_REQ = 2 * MAX_LEN };

static int32_t req_items[N_REQ][MAX_REQ];
static int32_t req_len[N_REQ];
/* the single-threaded reference */
static int32_t ref_topk[N_REQ][K];
static uint64_t ref_score_hash[N_REQ];
static uint8_t ref_keep[N_REQ][MAX_REQ];

static const iadsr_model *g_model;
static const iadsr_denoiser *g_dn;
static int g_calls;
static atomic_long n_topk, n_score, n_clean, n_mismatch, n_fail;

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* FNV-1a over the bits of the scores: any difference shows. */
static uint64_t hash_floats(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof *x; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

typedef struct work {
    iadsr_ctx *ctx;
    float *scores;
    int id;
} work;

/* One call of kind (r + i) % 20: 0 cleans, 1-2 score, the rest top-K. */
static int one_call(work *w, int r, int kind)
{
    int32_t ids[K];
    float vals[K];
    int32_t n = req_len[r];
    if (kind == 0) {
        uint8_t keep[MAX_REQ];
        if (iadsr_denoiser_clean(g_dn, req_items[r], n, NULL, keep, NULL, NULL,
                                 NULL) != IADSR_OK)
            return -1;
        atomic_fetch_add(&n_clean, 1);
        return memcmp(keep, ref_keep[r], (size_t)n) != 0;
    }
    if (kind <= 2) {
        if (iadsr_ctx_score(w->ctx, req_items[r], n, w->scores, N_ITEMS + 1) !=
            IADSR_OK)
            return -1;
        atomic_fetch_add(&n_score, 1);
        return hash_floats(w->scores, N_ITEMS + 1) != ref_score_hash[r];
    }
    if (iadsr_ctx_topk(w->ctx, req_items[r], n, K, IADSR_TOPK_EXCLUDE_HISTORY,
                       ids, vals) != IADSR_OK)
        return -1;
    atomic_fetch_add(&n_topk, 1);
    return memcmp(ids, ref_topk[r], sizeof ids) != 0;
}

static void *worker(void *arg)
{
    work *w = arg;
    for (int i = 0; i < g_calls; i++) {
        int r = (int)(((unsigned)w->id * 7919u + (unsigned)i * 31u) % N_REQ);
        int rc = one_call(w, r, (w->id + i) % 20);
        if (rc < 0) {
            atomic_fetch_add(&n_fail, 1);
            fprintf(stderr, "thread %d call %d: %s\n", w->id, i,
                    iadsr_last_error());
            break;
        }
        if (rc > 0)
            atomic_fetch_add(&n_mismatch, 1);
    }
    return NULL;
}

#define TRY(call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s: %s: %s\n", #call, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

int main(int argc, char **argv)
{
    int n_threads = argc > 1 ? atoi(argv[1]) : 8;
    g_calls = argc > 2 ? atoi(argv[2]) : 11000;
    if (n_threads < 1 || n_threads > 256 || g_calls < 1) {
        fprintf(stderr, "usage: thread_stress [N_THREADS [CALLS]]\n");
        return 2;
    }
    int status = 1;
    iadsr_model *m = NULL;
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    iadsr_semantic *sem = NULL;
    iadsr_denoiser *dn = NULL;
    iadsr_ctx *ref = NULL;
    work *w = calloc((size_t)n_threads, sizeof *w);
    pthread_t *tid = calloc((size_t)n_threads, sizeof *tid);
    float *semv = malloc(sizeof(float) * N_ITEMS * SEM_D);
    float *scores = malloc(sizeof(float) * (N_ITEMS + 1));
    if (!w || !tid || !semv || !scores) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    iadsr_model_params mp;
    iadsr_model_params_init(&mp);
    mp.n_items = N_ITEMS;
    mp.dim = DIM;
    mp.max_seq_len = MAX_LEN;
    TRY(iadsr_model_create(&m, &mp));
    for (int i = 0; i < N_ITEMS * SEM_D; i++)
        semv[i] = (float)next_u32(2001) / 1000.0f - 1.0f;
    TRY(iadsr_semantic_create(&sem, semv, N_ITEMS, SEM_D, SEM_D, 0));
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.theta = 0.01f; /* an untrained gate scores near 0: drop some */
    TRY(iadsr_aligner_create(&a, DIM, SEM_D, &dp));
    TRY(iadsr_gate_create(&g, DIM, &dp));
    TRY(iadsr_denoiser_create(&dn, m, a, g, sem));

    for (int r = 0; r < N_REQ; r++) {
        req_len[r] = 1 + (int32_t)next_u32(MAX_REQ);
        for (int32_t i = 0; i < req_len[r]; i++)
            req_items[r][i] = 1 + (int32_t)next_u32(N_ITEMS);
    }
    /* reference, one thread */
    TRY(iadsr_ctx_create(&ref, m, NULL));
    long dropped = 0;
    for (int r = 0; r < N_REQ; r++) {
        float vals[K];
        TRY(iadsr_ctx_topk(ref, req_items[r], req_len[r], K,
                           IADSR_TOPK_EXCLUDE_HISTORY, ref_topk[r], vals));
        TRY(iadsr_ctx_score(ref, req_items[r], req_len[r], scores,
                            N_ITEMS + 1));
        ref_score_hash[r] = hash_floats(scores, N_ITEMS + 1);
        TRY(iadsr_denoiser_clean(dn, req_items[r], req_len[r], NULL,
                                 ref_keep[r], NULL, NULL, NULL));
        for (int32_t i = 0; i < req_len[r]; i++)
            dropped += !ref_keep[r][i];
    }

    for (int t = 0; t < n_threads; t++) {
        w[t].id = t;
        w[t].scores = malloc(sizeof(float) * (N_ITEMS + 1));
        if (!w[t].scores) {
            fprintf(stderr, "out of memory\n");
            goto done;
        }
        TRY(iadsr_ctx_create(&w[t].ctx, m, NULL));
    }
    g_model = m;
    g_dn = dn;
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&tid[started], NULL, worker, &w[started]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            break;
        }
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (started < n_threads)
        goto done;

    long total = atomic_load(&n_topk) + atomic_load(&n_score) +
                 atomic_load(&n_clean);
    printf("thread-stress: %d threads x %d calls = %ld calls on one shared "
           "model (%s) and denoiser: top-K %ld, scores %ld, clean %ld; "
           "%ld mismatches vs single-thread, %ld failures (%ld of the "
           "reference items dropped)\n",
           n_threads, g_calls, total, "SASRec",
           atomic_load(&n_topk), atomic_load(&n_score),
           atomic_load(&n_clean), atomic_load(&n_mismatch),
           atomic_load(&n_fail), dropped);
    status = (atomic_load(&n_mismatch) == 0 && atomic_load(&n_fail) == 0 &&
              total == (long)n_threads * g_calls) ? 0 : 1;
done:
    if (w)
        for (int t = 0; t < n_threads; t++) {
            iadsr_ctx_free(w[t].ctx);
            free(w[t].scores);
        }
    iadsr_ctx_free(ref);
    iadsr_denoiser_free(dn);
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    free(w);
    free(tid);
    free(semv);
    free(scores);
    return status;
}
