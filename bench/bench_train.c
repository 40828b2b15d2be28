/* bench_train: train SASRec on a sequence file with the benchmark's target
 * configuration and report the time per epoch and the peak resident memory.
 *
 * Usage: bench_train DATA OUT_MODEL MAX_EPOCHS THREADS
 *                    [DROPOUT LR LABEL_SMOOTHING HISTORY_PENALTY]
 *
 * Configuration (the same as `iadsr train` with its defaults): L = 50,
 * d = 64, 2 blocks, 2 heads, GELU FFN 4d, dropout 0.5, Adam lr 1e-3,
 * batch 256, leave-one-out split, validation every epoch, patience 10,
 * library seeds; the four optional arguments replace dropout, lr,
 * label_smoothing (0) and history_penalty (0). THREADS is
 * iadsr_train_params.n_threads; BLAS threads follow the environment
 * (OPENBLAS_NUM_THREADS).
 *
 * Progress goes to stdout, one line per epoch. The summary ends with lines
 * "RESULT <key> <value>" that bench/run.sh collects. The peak resident set
 * size is VmHWM from /proc/self/status (Linux; "n/a" elsewhere).
 * SPDX-License-Identifier: MIT
 */
#include <iadsr.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RECORDED 100000

typedef struct {
    double *train_s; /* training part of each epoch */
    double *valid_s; /* validation part of each epoch */
    int n;
    double last_elapsed;
} epoch_log;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmHWM / VmRSS of this process in kB, -1 if unknown. */
static long proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double *tmp, m;
    if (n <= 0)
        return (double)NAN;
    tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp)
        return (double)NAN;
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    m = n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
    free(tmp);
    return m;
}

static int on_epoch(const iadsr_progress_info *info, void *user_data)
{
    epoch_log *log = user_data;
    double valid_s = info->elapsed_seconds - log->last_elapsed - info->epoch_seconds;
    log->last_elapsed = info->elapsed_seconds;
    if (log->n < MAX_RECORDED) {
        log->train_s[log->n] = info->epoch_seconds;
        log->valid_s[log->n] = valid_s > 0 ? valid_s : 0;
        log->n++;
    }
    printf("epoch %d/%d  loss %.4f  valid HR@10 %.4f NDCG@10 %.4f (best @%d)  "
           "train %.2fs  valid %.2fs  elapsed %.0fs\n",
           (int)info->epoch, (int)info->max_epochs, info->loss, info->valid_hr10,
           info->valid_ndcg10, (int)info->best_epoch, info->epoch_seconds,
           valid_s, info->elapsed_seconds);
    fflush(stdout);
    return 0;
}

#define TRY(what, call)                                                        \
    do {                                                                       \
        int st_ = (call);                                                      \
        if (st_ != IADSR_OK) {                                                 \
            fprintf(stderr, "bench_train: %s failed: %s: %s\n", what,          \
                    iadsr_status_name(st_), iadsr_last_error());               \
            goto done;                                                         \
        }                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    iadsr_dataset *data = NULL;
    iadsr_model *init = NULL, *best = NULL;
    iadsr_trainer *tr = NULL;
    iadsr_model_params mp;
    iadsr_train_params tp;
    epoch_log log = {NULL, NULL, 0, 0.0};
    double t_load, t_fit, sum_train = 0, sum_valid = 0;
    long rss_data = -1;
    int rc = 1, max_epochs, threads;

    if (argc != 5 && argc != 9) {
        fprintf(stderr, "usage: bench_train DATA OUT_MODEL MAX_EPOCHS THREADS "
                        "[DROPOUT LR LABEL_SMOOTHING HISTORY_PENALTY]\n");
        return 2;
    }
    max_epochs = atoi(argv[3]);
    threads = atoi(argv[4]);
    if (max_epochs < 1 || threads < 1) {
        fprintf(stderr, "bench_train: MAX_EPOCHS and THREADS must be >= 1\n");
        return 2;
    }
    /* dropout, lr, label smoothing, history penalty */
    double set[4] = {0.5, 1e-3, 0.0, 0.0};
    for (int i = 0; argc == 9 && i < 4; i++) {
        char *end;
        set[i] = strtod(argv[5 + i], &end);
        if (*end || end == argv[5 + i]) {
            fprintf(stderr, "bench_train: '%s' is not a number (DROPOUT, LR, "
                            "LABEL_SMOOTHING and HISTORY_PENALTY are)\n",
                    argv[5 + i]);
            return 2;
        }
    }
    log.train_s = calloc(MAX_RECORDED, sizeof *log.train_s);
    log.valid_s = calloc(MAX_RECORDED, sizeof *log.valid_s);
    if (!log.train_s || !log.valid_s) {
        fprintf(stderr, "bench_train: out of memory\n");
        goto done;
    }

    t_load = now_s();
    TRY("iadsr_dataset_load_text", iadsr_dataset_load_text(&data, argv[1], 0));
    t_load = now_s() - t_load;
    rss_data = proc_status_kb("VmHWM");
    printf("data: %s: %lld users, %d items, %lld interactions (loaded in %.2fs)\n",
           argv[1], (long long)iadsr_dataset_n_users(data),
           (int)iadsr_dataset_n_items(data),
           (long long)iadsr_dataset_n_interactions(data), t_load);

    iadsr_model_params_init(&mp);
    mp.n_items = iadsr_dataset_n_items(data);
    mp.max_seq_len = 50;
    mp.dim = 64;
    mp.n_layers = 2;
    mp.n_heads = 2;
    mp.dropout = (float)set[0];
    TRY("iadsr_model_create", iadsr_model_create(&init, &mp));
    iadsr_train_params_init(&tp);
    tp.max_epochs = max_epochs;
    tp.batch_size = 256;
    tp.learning_rate = (float)set[1];
    tp.label_smoothing = (float)set[2];
    tp.history_penalty = (float)set[3];
    tp.patience = 10;
    tp.n_threads = threads;
    printf("model: sasrec L=%d d=%d blocks=%d heads=%d dropout=%.2f, %lld parameters; "
           "lr %g label smoothing %g history penalty %g batch %d "
           "patience %d threads %d max epochs %d\n",
           (int)mp.max_seq_len, (int)mp.dim, (int)mp.n_layers, (int)mp.n_heads,
           (double)mp.dropout, (long long)iadsr_model_n_params(init),
           (double)tp.learning_rate, (double)tp.label_smoothing,
           (double)tp.history_penalty, (int)tp.batch_size, (int)tp.patience,
           (int)tp.n_threads, (int)tp.max_epochs);
    fflush(stdout);
    TRY("iadsr_trainer_create", iadsr_trainer_create(&tr, init, data, &tp));

    t_fit = now_s();
    TRY("iadsr_trainer_fit", iadsr_trainer_fit(tr, on_epoch, &log));
    t_fit = now_s() - t_fit;
    TRY("iadsr_trainer_snapshot", iadsr_trainer_snapshot(tr, &best));
    TRY("iadsr_model_save", iadsr_model_save(best, argv[2], 0));

    for (int i = 0; i < log.n; i++) {
        sum_train += log.train_s[i];
        sum_valid += log.valid_s[i];
    }
    printf("RESULT epochs %d\n", (int)iadsr_trainer_epochs_done(tr));
    printf("RESULT epoch_train_s_median %.3f\n", median(log.train_s, log.n));
    printf("RESULT epoch_train_s_mean %.3f\n", log.n ? sum_train / log.n : (double)NAN);
    printf("RESULT epoch_valid_s_median %.3f\n", median(log.valid_s, log.n));
    printf("RESULT valid_s_total %.1f\n", sum_valid);
    printf("RESULT epoch_total_s_mean %.3f\n", log.n ? t_fit / log.n : (double)NAN);
    printf("RESULT fit_s %.1f\n", t_fit);
    printf("RESULT load_s %.3f\n", t_load);
    printf("RESULT rss_after_load_kb %ld\n", rss_data);
    printf("RESULT peak_rss_kb %ld\n", proc_status_kb("VmHWM"));
    printf("RESULT model_bytes %zu\n", iadsr_model_memory_usage(best));
    printf("RESULT n_params %lld\n", (long long)iadsr_model_n_params(best));
    printf("RESULT model %s\n", argv[2]);
    rc = 0;
done:
    iadsr_trainer_free(tr);
    iadsr_model_free(best);
    iadsr_model_free(init);
    iadsr_dataset_free(data);
    free(log.train_s);
    free(log.valid_s);
    return rc;
}
