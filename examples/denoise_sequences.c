/* denoise_sequences: train IADSR (backbone + aligner + gate) on synthetic
 * sequences with planted off-topic clicks, save and reload it as one
 * checkpoint, then clean sequences from two threads sharing one denoiser.
 *                                         Usage: denoise_sequences WORKDIR
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <iadsr.h>

enum { N_USERS = 800, N_TOPICS = 8, TOPIC_SIZE = 25, N_ITEMS = 200,
       MAX_LEN = 24, D = 16 };
/* On failure: print the call, the status name and the library's detail. */
#define TRY(name, call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s failed: %s: %s\n", name, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

static uint64_t lcg_state = 2024;
static uint32_t lcg_next(uint32_t n) /* deterministic integer in 0..n-1 */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((lcg_state >> 33) % n);
}
static double lcg_gauss(void) /* rough N(0,1): sum of 12 uniforms - 6 */
{
    double s = 0;
    for (int i = 0; i < 12; i++)
        s += lcg_next(1u << 20) / (double)(1u << 20);
    return s - 6.0;
}

/* Items 1 + t*TOPIC_SIZE .. (t+1)*TOPIC_SIZE form topic t. Each user walks
 * one topic's chain; about one item in eight is a planted click on another
 * topic (never among the last two items, the validation/test targets). */
static int32_t items[N_USERS * MAX_LEN];
static uint8_t planted[N_USERS * MAX_LEN];
static int64_t offsets[N_USERS + 1];
static float sem_rows[(N_ITEMS + 1) * D]; /* row i = item i, row 0 padding */

static void make_data(void)
{
    float dir[N_TOPICS][D];
    for (int t = 0; t < N_TOPICS; t++) {
        double n2 = 0;
        for (int c = 0; c < D; c++) {
            dir[t][c] = (float)lcg_gauss();
            n2 += (double)dir[t][c] * (double)dir[t][c];
        }
        for (int c = 0; c < D; c++)
            dir[t][c] /= (float)sqrt(n2);
    }
    for (int i = 1; i <= N_ITEMS; i++)
        for (int c = 0; c < D; c++) /* the item's text: its topic + noise */
            sem_rows[i * D + c] = dir[(i - 1) / TOPIC_SIZE][c] +
                                  0.2f * (float)lcg_gauss() / 4.0f;
    int64_t k = 0;
    for (int u = 0; u < N_USERS; u++) {
        uint32_t t = lcg_next(N_TOPICS), pos = lcg_next(TOPIC_SIZE);
        uint32_t len = 10 + lcg_next(MAX_LEN - 9);
        offsets[u] = k;
        for (uint32_t i = 0; i < len; i++) {
            int plant = i + 2 < len && i > 0 && lcg_next(8) == 0;
            if (plant) {
                uint32_t other = (t + 1 + lcg_next(N_TOPICS - 1)) % N_TOPICS;
                items[k] = (int32_t)(other * TOPIC_SIZE + 1 + lcg_next(TOPIC_SIZE));
            } else {
                pos = lcg_next(10) < 8 ? (pos + 1) % TOPIC_SIZE : lcg_next(TOPIC_SIZE);
                items[k] = (int32_t)(t * TOPIC_SIZE + 1 + pos);
            }
            planted[k++] = (uint8_t)plant;
        }
    }
    offsets[N_USERS] = k;
}

/* Each thread cleans every other user's training part with the shared
 * denoiser and counts what it dropped. */
typedef struct job {
    const iadsr_denoiser *dn;
    int first;
    long dropped, hits, status;
} job;

static void *clean_half(void *arg)
{
    job *j = arg;
    uint8_t keep[MAX_LEN];
    for (int u = j->first; u < N_USERS; u += 2) {
        int64_t o = offsets[u];
        int32_t n = (int32_t)(offsets[u + 1] - o) - 2; /* training part */
        int st = iadsr_denoiser_clean(j->dn, items + o, n, NULL, keep, NULL,
                                      NULL, NULL);
        if (st != IADSR_OK) {
            j->status = st;
            return NULL;
        }
        for (int32_t t = 0; t < n; t++)
            if (!keep[t]) {
                j->dropped++;
                j->hits += planted[o + t];
            }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WORKDIR\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/iadsr.iadsr", argv[1]);
    int rc = 1;
    iadsr_dataset *data = NULL;
    iadsr_semantic *sem = NULL;
    iadsr_model *init = NULL, *m = NULL, *m2 = NULL;
    iadsr_trainer *t = NULL;
    iadsr_aligner *a = NULL, *a2 = NULL;
    iadsr_gate *g = NULL, *g2 = NULL, *tuned = NULL;
    iadsr_denoiser *dn = NULL;

    make_data();
    TRY("dataset_create", iadsr_dataset_create(&data, items, offsets, N_USERS,
                                               N_ITEMS, IADSR_FLAG_BORROW));
    TRY("semantic_create",
        iadsr_semantic_create(&sem, sem_rows, N_ITEMS + 1, D, D,
                              IADSR_FLAG_BORROW | IADSR_SEMANTIC_ROW0_PADDING));

    iadsr_model_params mp;
    iadsr_model_params_init(&mp);
    mp.n_items = N_ITEMS;
    mp.dim = 32;
    mp.max_seq_len = MAX_LEN;
    mp.dropout = 0.2f;
    iadsr_train_params tp;
    iadsr_train_params_init(&tp);
    tp.max_epochs = 25;
    tp.learning_rate = 3e-3f;
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp); /* METHOD.md defaults: lambdas 1, tau 0.1 */
    TRY("model_create", iadsr_model_create(&init, &mp));
    TRY("trainer_create_joint",
        iadsr_trainer_create_joint(&t, init, data, sem, NULL, &tp, &dp));
    TRY("trainer_fit", iadsr_trainer_fit(t, NULL, NULL));
    TRY("trainer_snapshot", iadsr_trainer_snapshot(t, &m));
    TRY("trainer_snapshot_denoiser", iadsr_trainer_snapshot_denoiser(t, &a, &g));

    /* one file holds all three; reading it back gives equal components */
    TRY("checkpoint_save", iadsr_checkpoint_save(m, a, g, path, 0));
    TRY("checkpoint_load", iadsr_checkpoint_load(&m2, &a2, &g2, path, 0));
    if (!a2 || !g2) {
        fprintf(stderr, "checkpoint without aligner or gate\n");
        goto done;
    }
    printf("saved and reloaded %s (backbone d %d, semantic D %d)\n", path,
           (int)iadsr_model_dim(m2), (int)iadsr_aligner_semantic_dim(a2));

    /* The default threshold (0) keeps nearly everything: the scores of a
     * trained gate sit above 0. A host picks theta on validation data; here
     * 1.3, the value the project's demo chose. */
    iadsr_denoise_params rule;
    iadsr_denoise_params_init(&rule);
    rule.theta = 1.3f;
    TRY("gate_with_params", iadsr_gate_with_params(&tuned, g2, &rule));
    TRY("denoiser_create", iadsr_denoiser_create(&dn, m2, a2, tuned, sem));

    /* one user, in detail */
    int32_t n = (int32_t)(offsets[1] - offsets[0]) - 2, n_kept = 0;
    uint8_t keep[MAX_LEN];
    float score[MAX_LEN];
    int32_t cleaned[MAX_LEN];
    TRY("denoiser_clean", iadsr_denoiser_clean(dn, items, n, NULL, keep, score,
                                               cleaned, &n_kept));
    printf("user 0: %d of %d items kept\n  item  topic  planted  score  kept\n",
           (int)n_kept, (int)n);
    for (int32_t i = 0; i < n; i++)
        printf("  %4d  %5d  %7s  %5.2f  %4s\n", (int)items[i],
               (int)((items[i] - 1) / TOPIC_SIZE), planted[i] ? "yes" : "",
               (double)score[i], keep[i] ? "yes" : "no");

    /* two threads, one denoiser */
    job jobs[2] = {{dn, 0, 0, 0, 0}, {dn, 1, 0, 0, 0}};
    pthread_t tid;
    if (pthread_create(&tid, NULL, clean_half, &jobs[1]) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        goto done;
    }
    clean_half(&jobs[0]);
    pthread_join(tid, NULL);
    if (jobs[0].status || jobs[1].status) {
        fprintf(stderr, "denoiser_clean failed in a thread: %s\n",
                iadsr_status_name((int)(jobs[0].status ? jobs[0].status
                                                        : jobs[1].status)));
        goto done;
    }
    long n_planted = 0;
    for (int u = 0; u < N_USERS; u++)
        for (int64_t i = offsets[u]; i < offsets[u + 1]; i++)
            n_planted += planted[i];
    long dropped = jobs[0].dropped + jobs[1].dropped;
    long hits = jobs[0].hits + jobs[1].hits;
    printf("all users (2 threads): dropped %ld items, %ld of them planted "
           "(precision %.2f), %ld of %ld planted found (recall %.2f)\n",
           dropped, hits, dropped ? (double)hits / (double)dropped : 0.0, hits,
           n_planted, n_planted ? (double)hits / (double)n_planted : 0.0);
    rc = 0;
done:
    iadsr_denoiser_free(dn);
    iadsr_gate_free(tuned);
    iadsr_gate_free(g2);
    iadsr_gate_free(g);
    iadsr_aligner_free(a2);
    iadsr_aligner_free(a);
    iadsr_model_free(m2);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_trainer_free(t);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(data);
    return rc;
}
