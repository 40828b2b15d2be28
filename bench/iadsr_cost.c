/* Cost of IADSR joint training relative to the backbone alone: one epoch of
 * each in turn, in one process (so that machine noise hits both alike),
 * REPS times; prints the medians and the median of the per-pair ratios.
 * Usage: iadsr_cost DATA SEMANTIC.npy BACKBONE(1|2|3) [REPS
 *        [paper|detect|detect-all|detect-clean|detect-mask]]
 * (the gate: the paper's, the default; the detector with its hold-out of
 * about 1 user in 16, as `train --gate detect`; the detector trained on
 * every user, as `--no-holdout`; the detector with the hold-out and
 * dropout-free scores, as `--clean-scores`, or its input mask, as
 * `--input-mask`)
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iadsr.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s DATA SEMANTIC.npy BACKBONE [REPS "
                        "[paper|detect|detect-all|detect-clean|"
                        "detect-mask]]\n",
                argv[0]);
        return 2;
    }
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    if (reps < 1 || reps > 15)
        reps = 3;
    iadsr_dataset *d = NULL;
    iadsr_semantic *s = NULL;
    iadsr_model *m = NULL;
    iadsr_trainer *raw = NULL, *joint = NULL;
    iadsr_model_params mp;
    iadsr_train_params tp;
    iadsr_denoise_params dp;
    iadsr_model_params_init(&mp);
    iadsr_train_params_init(&tp);
    iadsr_denoise_params_init(&dp);
    const char *gate = argc > 5 ? argv[5] : "paper";
    int detect = strncmp(gate, "detect", 6) == 0;
    if (detect)
        dp.flags |= IADSR_DENOISE_F_DETECT;
    if (detect && strcmp(gate, "detect-all") != 0)
        dp.flags |= IADSR_DENOISE_F_HOLDOUT;
    if (strcmp(gate, "detect-clean") == 0)
        dp.flags |= IADSR_DENOISE_F_CLEAN_SCORES;
    if (strcmp(gate, "detect-mask") == 0)
        dp.flags |= IADSR_DENOISE_F_INPUT_MASK;
    int rc = iadsr_dataset_load_text(&d, argv[1], 0);
    if (!rc)
        rc = iadsr_semantic_load_npy(&s, argv[2], IADSR_SEMANTIC_ROW0_PADDING);
    if (!rc) {
        mp.backbone = atoi(argv[3]);
        mp.n_items = iadsr_dataset_n_items(d);
        mp.dropout = 0.2f;
        rc = iadsr_model_create(&m, &mp);
    }
    if (!rc)
        rc = iadsr_trainer_create(&raw, m, d, &tp);
    if (!rc)
        rc = iadsr_trainer_create_joint(&joint, m, d, s, NULL, &tp, &dp);
    double a[15], b[15], r[15], loss;
    for (int i = 0; !rc && i < reps; i++) {
        double t0 = now();
        rc = iadsr_trainer_run_epoch(raw, &loss);
        double t1 = now();
        if (!rc)
            rc = iadsr_trainer_run_epoch(joint, &loss);
        double t2 = now();
        a[i] = t1 - t0;
        b[i] = t2 - t1;
        r[i] = b[i] / a[i];
    }
    if (rc) {
        fprintf(stderr, "iadsr_cost: %s: %s\n", iadsr_status_name(rc),
                iadsr_last_error());
    } else {
        qsort(a, (size_t)reps, sizeof a[0], cmp);
        qsort(b, (size_t)reps, sizeof b[0], cmp);
        qsort(r, (size_t)reps, sizeof r[0], cmp);
        printf("backbone %d: raw %.2f s/epoch, IADSR (%s gate) %.2f s/epoch "
               "(medians of %d), ratio %.2f (min %.2f, max %.2f)\n",
               mp.backbone, a[reps / 2], gate, b[reps / 2], reps, r[reps / 2], r[0],
               r[reps - 1]);
    }
    iadsr_trainer_free(joint);
    iadsr_trainer_free(raw);
    iadsr_model_free(m);
    iadsr_semantic_free(s);
    iadsr_dataset_free(d);
    return rc ? 1 : 0;
}
