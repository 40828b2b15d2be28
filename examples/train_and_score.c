/* train_and_score: build a synthetic dataset in memory, train a small SASRec
 * model, evaluate it, print the top-5 next items for one user and save the
 * model to WORKDIR/model.iadsr.       Usage: train_and_score WORKDIR
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <iadsr.h>

enum { N_USERS = 600, N_TOPICS = 6, TOPIC_SIZE = 20, N_ITEMS = 120, MAX_LEN = 20 };
/* On failure: print the call, the status name and the library's detail. */
#define TRY(name, call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s failed: %s: %s\n", name, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

static uint64_t lcg_state = 12345;
static uint32_t lcg_next(uint32_t n) /* deterministic integer in 0..n-1 */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((lcg_state >> 33) % n);
}

/* Items 1 + t*TOPIC_SIZE .. (t+1)*TOPIC_SIZE belong to topic t and form a
 * chain. A user has two topics and mostly walks along a chain (70%),
 * sometimes jumps within their topics (20%), else clicks anything (10%). */
static int32_t items[N_USERS * MAX_LEN];
static int64_t offsets[N_USERS + 1];

static void make_data(void)
{
    for (int u = 0; u < N_USERS; u++) {
        uint32_t topic[2] = {lcg_next(N_TOPICS), lcg_next(N_TOPICS)};
        uint32_t len = 6 + lcg_next(MAX_LEN - 5), pos = lcg_next(TOPIC_SIZE);
        uint32_t t = topic[0];
        for (uint32_t i = 0; i < len; i++) {
            uint32_t r = lcg_next(100);
            if (r < 70) pos = (pos + 1) % TOPIC_SIZE;
            else if (r < 90) { t = topic[lcg_next(2)]; pos = lcg_next(TOPIC_SIZE); }
            items[offsets[u] + i] = r < 90 ? (int32_t)(1 + t * TOPIC_SIZE + pos)
                                           : (int32_t)(1 + lcg_next(N_ITEMS));
        }
        offsets[u + 1] = offsets[u] + len;
    }
}

static int on_epoch(const iadsr_progress_info *info, void *user_data)
{
    (void)user_data;
    printf("  epoch %d/%d  loss %.4f  valid NDCG@10 %.4f  (%.3fs)\n", (int)info->epoch,
           (int)info->max_epochs, info->loss, info->valid_ndcg10, info->epoch_seconds);
    return 0; /* non-zero would stop training */
}

int main(int argc, char **argv)
{
    iadsr_dataset *data = NULL;
    iadsr_model *init = NULL, *model = NULL;
    iadsr_trainer *trainer = NULL;
    iadsr_ctx *ctx = NULL;
    iadsr_model_params mp;
    iadsr_train_params tp;
    iadsr_metrics m = {.struct_size = sizeof m};
    int32_t n_seq = 0, ids[5];
    float scores[5];
    const int32_t *seq;
    char path[4096];
    int rc = 1;

    if (argc != 2) { fprintf(stderr, "usage: train_and_score WORKDIR\n"); return 2; }
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST) { perror(argv[1]); return 1; }
    if (snprintf(path, sizeof path, "%s/model.iadsr", argv[1]) >= (int)sizeof path) {
        fprintf(stderr, "WORKDIR is too long\n"); return 2;
    }
    /* While the major version is 0, every minor release may change the ABI. */
    printf("libiadsr %s (header %s)\n", iadsr_version_string(), IADSR_VERSION_STRING);
    if (iadsr_version_number() / 100 != IADSR_VERSION_NUMBER / 100) {
        fprintf(stderr, "header %d / library %d mismatch\n", IADSR_VERSION_NUMBER,
                iadsr_version_number());
        return 1;
    }

    make_data();
    TRY("iadsr_dataset_create",
        iadsr_dataset_create(&data, items, offsets, N_USERS, N_ITEMS, IADSR_FLAG_COPY));
    printf("dataset: %lld users, %lld interactions\n", (long long)iadsr_dataset_n_users(data),
           (long long)iadsr_dataset_n_interactions(data));
    iadsr_model_params_init(&mp);
    mp.n_items = N_ITEMS; mp.dim = 16; mp.max_seq_len = 10; mp.n_layers = 1; mp.dropout = 0.2f;
    TRY("iadsr_model_create", iadsr_model_create(&init, &mp));
    iadsr_train_params_init(&tp);
    tp.max_epochs = 10; tp.batch_size = 64; tp.learning_rate = 5e-3f;
    TRY("iadsr_trainer_create", iadsr_trainer_create(&trainer, init, data, &tp));
    TRY("iadsr_trainer_fit", iadsr_trainer_fit(trainer, on_epoch, NULL));
    TRY("iadsr_trainer_snapshot", iadsr_trainer_snapshot(trainer, &model));
    TRY("iadsr_evaluate", iadsr_evaluate(model, data, NULL, &m));
    printf("test, %lld users: HR@5/10/20 %.4f %.4f %.4f  NDCG@5/10/20 %.4f %.4f %.4f\n",
           (long long)m.n_users, m.hr5, m.hr10, m.hr20, m.ndcg5, m.ndcg10, m.ndcg20);
    seq = iadsr_dataset_user_items(data, 0, &n_seq);
    TRY("iadsr_ctx_create", iadsr_ctx_create(&ctx, model, NULL));
    TRY("iadsr_ctx_topk",
        iadsr_ctx_topk(ctx, seq, n_seq, 5, IADSR_TOPK_EXCLUDE_HISTORY, ids, scores));
    printf("user 0 history:");
    for (int32_t i = 0; i < n_seq; i++) printf(" %d", (int)seq[i]);
    printf("\ntop-5 next items (not in the history):");
    for (int i = 0; i < 5; i++) printf(" %d (%.3f)", (int)ids[i], (double)scores[i]);
    printf("\n");
    TRY("iadsr_model_save", iadsr_model_save(model, path, 0));
    printf("saved %s (%lld parameters)\n", path, (long long)iadsr_model_n_params(model));
    rc = 0;
done:
    iadsr_ctx_free(ctx);
    iadsr_trainer_free(trainer);
    iadsr_model_free(model);
    iadsr_model_free(init);
    iadsr_dataset_free(data);
    return rc;
}
