/* iadsr command-line tool: `iadsr denoise` and `iadsr pipeline` (IADSR,
 * docs/METHOD.md Stage 2).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "cli/dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shared: what cleaning changed                                            */
/* ------------------------------------------------------------------------ */

typedef struct clean_stats {
    int64_t n_users;
    int64_t items_in;      /* eligible positions (cleaned part) */
    int64_t items_dropped; /* of those, dropped */
    int64_t users_touched; /* users with at least one item dropped */
    /* against --labels (eligible positions only) */
    int64_t injected, tp, fp, fn;
} clean_stats;

/* Whether position j of a sequence of n items is cleaned under @p split. */
static int eligible(int32_t split, int32_t j, int32_t n)
{
    return split == IADSR_SPLIT_NONE || j < n - 2;
}

/* Count from @p keep (n_interactions bytes, dataset order) and, when not
 * NULL, the labels (same layout, 1 = injected). */
static void count_stats(const iadsr_dataset *d, int32_t split,
                        const uint8_t *keep, const uint8_t *lab,
                        clean_stats *st)
{
    int64_t pos = 0;
    memset(st, 0, sizeof *st);
    st->n_users = iadsr_dataset_n_users(d);
    for (int64_t u = 0; u < st->n_users; u++) {
        int32_t n = 0;
        int touched = 0;
        (void)iadsr_dataset_user_items(d, u, &n);
        for (int32_t j = 0; j < n; j++, pos++) {
            int dropped = !keep[pos];
            if (!eligible(split, j, n))
                continue;
            st->items_in++;
            st->items_dropped += dropped;
            touched |= dropped;
            if (lab) {
                st->injected += lab[pos];
                st->tp += dropped && lab[pos];
                st->fp += dropped && !lab[pos];
                st->fn += !dropped && lab[pos];
            }
        }
        st->users_touched += touched;
    }
}

static double ratio(int64_t num, int64_t den)
{
    return den > 0 ? (double)num / (double)den : (double)NAN;
}

/* ------------------------------------------------------------------------ */
/* denoise                                                                  */
/* ------------------------------------------------------------------------ */

static const char denoise_help[] =
    "Usage: iadsr denoise --model MODEL --semantic EMB.npy --data FILE\n"
    "                     --out CLEAN [options]\n"
    "\n"
    "Clean sequences with a model trained by 'iadsr train --semantic' (its\n"
    "backbone, aligner and denoising gate): every item of the cleaned part\n"
    "gets a score (cos(l, h_t) + cos(hbar, s_t) + cos(h_t, s_t), in [-3, 3])\n"
    "and is kept iff score > theta, with at most floor(max_drop * n) items\n"
    "of a sequence dropped (the lowest scores) and the most recent item kept\n"
    "unless --no-protect-last. CLEAN gets the kept items in the format of\n"
    "FILE (same users and order), written atomically; a summary goes to\n"
    "standard output: items in (those of the cleaned part), items dropped,\n"
    "users touched (with at least one item dropped).\n"
    "\n"
    "A detector gate (the default of 'iadsr train --semantic') scores with\n"
    "its trained detector's logit instead, and its theta comes from FILE\n"
    "itself: the\n"
    "noise rate is estimated without labels by comparing the scores of\n"
    "FILE's items with those of items inserted into it, on the users the\n"
    "training held out (about 1 in 16; on every user when the model was\n"
    "trained with --no-holdout), and theta drops the share of items the\n"
    "best expected F1 at that rate implies (printed on standard error;\n"
    "--theta overrides it; docs/METHOD.md).\n"
    "\n"
    "With --labels (from 'iadsr inject-noise', for FILE = its NOISY output)\n"
    "the drops are compared with the injected items over the cleaned part:\n"
    "precision = injected among dropped, recall = dropped among injected,\n"
    "F1 = their harmonic mean (n/a, or null in JSON, when undefined).\n"
    "\n"
    "Options:\n"
    "  --model MODEL         checkpoint with aligner and gate (required)\n"
    "  --semantic EMB.npy    semantic item vectors, as for training\n"
    "                        (required)\n"
    "  --semantic-rows R     padded (default) or dense ('items'): see\n"
    "                        'iadsr train --help'\n"
    "  --user-semantic U.npy one row per user of FILE (file order), when the\n"
    "                        model was trained with them\n"
    "  --data FILE           sequences to clean (required)\n"
    "  --out CLEAN           cleaned sequences to write (required)\n"
    "  --split loo|none      loo (default): clean only each user's training\n"
    "                        part (all but the last two items) and keep the\n"
    "                        last two, so CLEAN can be retrained and\n"
    "                        evaluated with the same protocol; none: clean\n"
    "                        whole sequences\n"
    "  --theta X             override the gate's threshold, in [-3, 3]\n"
    "  --max-drop X          override the drop cap, in [0, 1]\n"
    "  --no-protect-last     the most recent item may be dropped\n"
    "  --collab-only         score with the collaborative views only,\n"
    "                        3 cos(hbar, h_t) (the gate ablation), whatever\n"
    "                        the gate was trained with\n"
    "  --threads T           worker threads, 1..256 (default 1)\n"
    "  --allow-mismatch      use the model's aligner and gate even though\n"
    "                        they were trained with another backbone, item\n"
    "                        count or semantic matrix than the ones given\n"
    "                        (refused by default: the scores would be noise)\n"
    "  --labels LABELS       0/1 per item of FILE (1 = injected): print\n"
    "                        precision, recall and F1 of the drops\n"
    "  --json                print exactly one JSON object on one line:\n"
    "                        {\"split\":..,\"users\":..,\"items_in\":..,\n"
    "                         \"items_dropped\":..,\"users_touched\":..,\n"
    "                         \"theta\":..,\"max_drop\":..,\n"
    "                         \"protect_last\":..} and with --labels also\n"
    "                        \"injected\",\"true_positives\",\n"
    "                        \"false_positives\",\"false_negatives\",\n"
    "                        \"precision\",\"recall\",\"f1\"\n";

static const char denoise_help_dist[] =
    "  --distributed         split the users over MPI ranks: 'mpirun -np N\n"
    "                        iadsr-mpi denoise ... --distributed' ('make\n"
    "                        MPI=1'); every rank proposes theta from all of\n"
    "                        FILE (the same on every rank), cleans a block\n"
    "                        of users and sends its keep flags to rank 0,\n"
    "                        which writes CLEAN and the summary: the same\n"
    "                        bytes as one process writes\n";

static const char *const split_names[] = {"loo", "none", NULL};

static void print_denoise(const clean_stats *st, const char *split,
                          const iadsr_denoise_params *gp, int labels,
                          int json)
{
    double prec = ratio(st->tp, st->tp + st->fp);
    double rec = ratio(st->tp, st->tp + st->fn);
    double f1 = ratio(2 * st->tp, 2 * st->tp + st->fp + st->fn);
    if (json) {
        printf("{\"split\":\"%s\",\"users\":%lld,\"items_in\":%lld,"
               "\"items_dropped\":%lld,\"users_touched\":%lld",
               split, (long long)st->n_users, (long long)st->items_in,
               (long long)st->items_dropped, (long long)st->users_touched);
        cli_json_double("theta", (double)gp->theta);
        cli_json_double("max_drop", (double)gp->max_drop);
        printf(",\"protect_last\":%s", gp->protect_last ? "true" : "false");
        if (labels) {
            printf(",\"injected\":%lld,\"true_positives\":%lld,"
                   "\"false_positives\":%lld,\"false_negatives\":%lld",
                   (long long)st->injected, (long long)st->tp,
                   (long long)st->fp, (long long)st->fn);
            cli_json_double("precision", prec);
            cli_json_double("recall", rec);
            cli_json_double("f1", f1);
        }
        printf("}\n");
        return;
    }
    printf("split: %s   users: %lld   gate: theta %g, max_drop %g, "
           "protect_last %s\n",
           split, (long long)st->n_users, (double)gp->theta,
           (double)gp->max_drop, gp->protect_last ? "yes" : "no");
    printf("items in:       %lld%s\n", (long long)st->items_in,
           strcmp(split, "loo") == 0 ? " (training parts)" : "");
    printf("items dropped:  %lld (%.2f%%)\n", (long long)st->items_dropped,
           st->items_in > 0
               ? 100.0 * (double)st->items_dropped / (double)st->items_in
               : 0.0);
    printf("users touched:  %lld of %lld\n", (long long)st->users_touched,
           (long long)st->n_users);
    if (labels) {
        char p[16], r[16], f[16];
        cli_fmt_4f(p, sizeof p, prec, "n/a");
        cli_fmt_4f(r, sizeof r, rec, "n/a");
        cli_fmt_4f(f, sizeof f, f1, "n/a");
        printf("labels:         %lld injected; %lld dropped and injected, "
               "%lld dropped but clean, %lld injected but kept\n",
               (long long)st->injected, (long long)st->tp, (long long)st->fp,
               (long long)st->fn);
        printf("precision %s   recall %s   F1 %s\n", p, r, f);
    }
}

/* --distributed: clean this rank's block of users and send the keep flags
 * to rank 0, which gets every rank's in @p keep (n_interactions bytes,
 * dataset order). Cleaning a user depends on nothing but that user, the
 * model and theta, so the flags are those of one process. */
static int clean_block(const char *cmd, const iadsr_denoiser *dn,
                       const iadsr_dataset *d, int32_t split,
                       const iadsr_semantic *usem, int64_t threads,
                       uint8_t *keep, int *synced)
{
    int64_t n_users = iadsr_dataset_n_users(d), u0, u1, len = 0;
    int32_t *items = NULL;
    int64_t *offs = NULL;
    float *rows = NULL;
    uint8_t *part = NULL;
    char *all = NULL;
    size_t all_len = 0;
    iadsr_dataset *sub = NULL, *sub_clean = NULL;
    iadsr_semantic *sub_sem = NULL;
    int failed = 0, exit_code = CLI_RUNTIME, rc;

    cli_dist_block(n_users, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int32_t n = 0;
        (void)iadsr_dataset_user_items(d, u, &n);
        len += n;
    }
    int64_t nb = u1 - u0;
    if (nb > 0) {
        int32_t D = usem ? iadsr_semantic_dim(usem) : 0;
        items = malloc((size_t)(len > 0 ? len : 1) * sizeof *items);
        offs = malloc((size_t)(nb + 1) * sizeof *offs);
        part = malloc((size_t)(len > 0 ? len : 1));
        rows = usem ? malloc((size_t)nb * (size_t)D * sizeof *rows) : NULL;
        failed = !items || !offs || !part || (usem && !rows);
        if (failed)
            cli_error(cmd, "out of memory for %lld users", (long long)nb);
        else
            offs[0] = 0;
        for (int64_t u = u0; !failed && u < u1; u++) {
            int32_t n = 0;
            const int32_t *it = iadsr_dataset_user_items(d, u, &n);
            if (n > 0)
                memcpy(items + offs[u - u0], it, (size_t)n * sizeof *items);
            offs[u - u0 + 1] = offs[u - u0] + n;
            if (usem)
                memcpy(rows + (size_t)(u - u0) * (size_t)D,
                       iadsr_semantic_row(usem, (int32_t)(u + 1)),
                       (size_t)D * sizeof *rows);
        }
        if (!failed) {
            rc = iadsr_dataset_create(&sub, items, offs, nb,
                                      iadsr_dataset_n_items(d),
                                      IADSR_FLAG_BORROW);
            if (rc == IADSR_OK && usem)
                rc = iadsr_semantic_create(&sub_sem, rows, (int32_t)nb, D, D,
                                           IADSR_FLAG_BORROW);
            if (rc == IADSR_OK)
                rc = iadsr_denoiser_clean_dataset(dn, sub, split, sub_sem,
                                                  (int32_t)threads,
                                                  &sub_clean, part, NULL);
            if (rc != IADSR_OK) {
                cli_lib_error(cmd, "cleaning failed", NULL, rc);
                failed = 1;
            }
        }
    }
    *synced = 1;
    if (cli_dist_any(failed)) {
        if (!failed)
            cli_error(cmd, "another rank failed (its message is above)");
        goto done;
    }
    if (cli_dist_gather(part, (size_t)len, &all, &all_len) != 0) {
        cli_error(cmd, "cannot gather the ranks' keep flags");
        goto done;
    }
    if (cli_dist_rank() == 0) {
        if ((int64_t)all_len != iadsr_dataset_n_interactions(d)) {
            cli_error(cmd, "internal error: %zu keep flags for %lld "
                           "interactions", all_len,
                      (long long)iadsr_dataset_n_interactions(d));
            goto done;
        }
        memcpy(keep, all, all_len);
    }
    exit_code = CLI_OK;
done:
    iadsr_dataset_free(sub_clean);
    iadsr_dataset_free(sub);
    iadsr_semantic_free(sub_sem);
    free(all);
    free(part);
    free(rows);
    free(offs);
    free(items);
    return exit_code;
}

/* The cleaned dataset of rank 0: @p d's items where @p keep is 1 (the
 * dataset iadsr_denoiser_clean_dataset() makes: same users, in order). */
static int kept_dataset(const char *cmd, const iadsr_dataset *d,
                        const uint8_t *keep, iadsr_dataset **clean)
{
    int64_t n_users = iadsr_dataset_n_users(d);
    int64_t n_int = iadsr_dataset_n_interactions(d), at = 0;
    int32_t *items = malloc((size_t)(n_int > 0 ? n_int : 1) * sizeof *items);
    int64_t *offs = malloc((size_t)(n_users + 1) * sizeof *offs);
    int exit_code = CLI_OK;
    if (!items || !offs) {
        exit_code = cli_error(cmd, "out of memory");
        goto done;
    }
    offs[0] = 0;
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(d, u, &n);
        int64_t m = offs[u];
        for (int32_t j = 0; j < n; j++, at++)
            if (keep[at])
                items[m++] = it[j];
        offs[u + 1] = m;
    }
    int rc = iadsr_dataset_create(clean, items, offs, n_users,
                                  iadsr_dataset_n_items(d), IADSR_FLAG_COPY);
    if (rc != IADSR_OK)
        exit_code = cli_lib_error(cmd, "cleaning failed", NULL, rc);
done:
    free(items);
    free(offs);
    return exit_code;
}

int cmd_denoise(int argc, char **argv)
{
    static const char *cmd = "denoise";
    const char *model_path = NULL, *data_path = NULL, *out = NULL;
    const char *labels_path = NULL;
    cli_semantic_in si;
    int split = 0, json = 0, allow_mismatch = 0, distributed = 0, synced = 0;
    int64_t threads = 1;
    cli_denoise_vals dv;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_SEMANTIC_OPTS(si, OPT_REQUIRED),
        CLI_USER_SEMANTIC_OPT(si),
        CLI_STR("data", &data_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_CHOICE("split", &split, split_names),
        CLI_DENOISE_RULE_OPTS(dv),
        CLI_FLAG("collab-only", &dv.collab_only),
        CLI_I64("threads", &threads, 1, 256, 0),
        CLI_FLAG("allow-mismatch", &allow_mismatch),
        CLI_STR("labels", &labels_path, OPT_IN_FILE),
        CLI_FLAG("json", &json),
        CLI_FLAG("distributed", &distributed),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    int32_t lib_split;
    double rate;
    cli_checkpoint ck = {NULL, NULL, NULL};
    iadsr_dataset *d = NULL, *clean = NULL;
    iadsr_denoiser *dn = NULL;
    iadsr_denoise_params gp;
    uint8_t *keep = NULL, *lab = NULL;
    int64_t n_int;
    clean_stats st;
    double t0;
    int exit_code = CLI_RUNTIME;
    int rc;

    memset(&dv, 0, sizeof dv);
    memset(&si, 0, sizeof si);
    rc = cli_start(cmd, argc, argv, opts, n_opts,
                   (const char *const[]){denoise_help, denoise_help_dist,
                                         NULL});
    if (rc != CLI_CONTINUE)
        return rc;
    lib_split = split == 0 ? IADSR_SPLIT_LEAVE_ONE_OUT : IADSR_SPLIT_NONE;
    if (distributed && !cli_dist_available())
        return cli_usage_error(cmd, "--distributed needs the MPI build: "
                                    "'make MPI=1', then 'mpirun -np N "
                                    "bin/iadsr-mpi denoise ... "
                                    "--distributed'");
    if (cli_check_out_path(cmd, out) != CLI_OK)
        goto done;

    t0 = cli_now();
    rc = iadsr_checkpoint_load(&ck.model, &ck.aligner, &ck.gate, model_path,
                               0);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "cannot load model", model_path, rc);
        goto done;
    }
    if (!ck.aligner || !ck.gate) {
        cli_error(cmd, "%s: the checkpoint has no %s (a backbone-only "
                       "model); train one with 'iadsr train --semantic'",
                  model_path,
                  !ck.aligner && !ck.gate ? "aligner and gate"
                  : !ck.aligner           ? "aligner"
                                          : "gate");
        goto done;
    }
    if (cli_load_semantic(cmd, &si) != CLI_OK)
        goto done;
    if (cli_load_data(cmd, data_path, iadsr_model_n_items(ck.model), &d) != CLI_OK)
        goto done;
    if (cli_load_user_semantic(cmd, &si, iadsr_dataset_n_users(d)) != CLI_OK)
        goto done;

    if (cli_denoiser_setup(cmd, &ck, &si, d, lib_split, allow_mismatch,
                           threads, opts, n_opts, &dv, &gp, &rate,
                           &dn) != CLI_OK)
        goto done;

    n_int = iadsr_dataset_n_interactions(d);
    keep = malloc((size_t)(n_int > 0 ? n_int : 1));
    if (labels_path)
        lab = calloc((size_t)(n_int > 0 ? n_int : 1), 1);
    if (!keep || (labels_path && !lab)) {
        cli_error(cmd, "out of memory for %lld interactions",
                  (long long)n_int);
        goto done;
    }
    /* a bad label file should fail before the work */
    if (labels_path &&
        cli_read_labels(cmd, labels_path, data_path, d, lab) != CLI_OK)
        goto done;

    if (distributed) {
        if (clean_block(cmd, dn, d, lib_split, si.users, threads, keep,
                        &synced) != CLI_OK)
            goto done;
        if (cli_dist_rank() != 0) { /* rank 0 writes and reports */
            exit_code = CLI_OK;
            goto done;
        }
        if (kept_dataset(cmd, d, keep, &clean) != CLI_OK)
            goto done;
    } else {
        rc = iadsr_denoiser_clean_dataset(dn, d, lib_split, si.users,
                                          (int32_t)threads, &clean, keep,
                                          NULL);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, "cleaning failed", NULL, rc);
            goto done;
        }
    }
    if (cli_write_dataset(cmd, out, clean, d) != CLI_OK)
        goto done;
    count_stats(d, lib_split, keep, lab, &st);
    {
        int64_t lost = 0;
        for (int64_t u = 0; u < iadsr_dataset_n_users(clean); u++) {
            int32_t n = 0;
            (void)iadsr_dataset_user_items(clean, u, &n);
            lost += n < 1;
        }
        if (lost > 0)
            fprintf(stderr, "iadsr: denoise: %lld users lost every item "
                            "and have no line in %s\n",
                    (long long)lost, out);
    }
    print_denoise(&st, split_names[split], &gp, labels_path != NULL, json);
    fprintf(stderr, "iadsr: denoise: wrote %s (%lld of %lld interactions "
                    "kept) in %.2fs\n",
            out, (long long)iadsr_dataset_n_interactions(clean),
            (long long)n_int, cli_now() - t0);
    exit_code = cli_finish_stdout(cmd);

done:
    if (distributed && !synced)
        (void)cli_dist_any(1); /* the others wait before the gather */
    free(keep);
    free(lab);
    iadsr_dataset_free(clean);
    iadsr_denoiser_free(dn);
    iadsr_dataset_free(d);
    cli_semantic_in_free(&si);
    cli_checkpoint_free(&ck);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* pipeline                                                                 */
/* ------------------------------------------------------------------------ */

static const char pipeline_help[] =
    "Usage: iadsr pipeline --data FILE --semantic EMB.npy [options]\n"
    "\n"
    "The IADSR pipeline in one run: train IADSR (backbone + aligner + gate,\n"
    "as 'iadsr train --semantic') on FILE with the leave-one-out split,\n"
    "clean every user's training part with the gate (the last two items\n"
    "stay; the detector gate, the default, at the theta it proposes for\n"
    "FILE), retrain a fresh backbone with the same settings and seeds on\n"
    "the cleaned data, and evaluate it on the test items (full ranking, as\n"
    "'iadsr eval'). Progress of both trainings goes to standard error\n"
    "(lines 'iadsr epoch ...' then 'retrain epoch ...'); the result goes to\n"
    "standard output: items in / dropped / users touched, the seconds of\n"
    "both trainings and the test HR and NDCG at 5, 10 and 20. Ctrl-C stops\n"
    "the run (nothing is written).\n"
    "\n"
    "Options:\n"
    "  --data FILE           sequences (required)\n"
    "  --semantic EMB.npy    semantic item vectors (required)\n"
    "  --semantic-rows R     padded (default) or dense ('items'): see\n"
    "                        'iadsr train --help'\n"
    "  --out-model M         save the retrained backbone\n"
    "  --out-clean CLEAN     write the cleaned sequences (format of FILE)\n"
    "  --json                print exactly one JSON object on one line: the\n"
    "                        keys of 'iadsr eval --json' (split, users,\n"
    "                        HR@5 .. NDCG@20, exclude_history) and\n"
    "                        items_in, items_dropped, users_touched,\n"
    "                        iadsr_epochs, retrain_epochs (the epochs of\n"
    "                        the models kept), iadsr_seconds,\n"
    "                        retrain_seconds\n"
    "\n"
    "Training options (as 'iadsr train'):\n";

static const char pipeline_help_iadsr[] = "\nIADSR options:\n";

static void print_pipeline(const iadsr_pipeline_result *r, int64_t n_users,
                           int json)
{
    if (json) {
        printf("{\"split\":\"test\",\"users\":%lld",
               (long long)r->test.n_users);
        cli_json_metrics(&r->test);
        printf(",\"exclude_history\":false,\"items_in\":%lld,"
               "\"items_dropped\":%lld,\"users_touched\":%lld,"
               "\"iadsr_epochs\":%ld,\"retrain_epochs\":%ld",
               (long long)r->n_items_in, (long long)r->n_items_dropped,
               (long long)r->n_users_touched, (long)r->iadsr_epochs,
               (long)r->retrain_epochs);
        cli_json_double("iadsr_seconds", r->iadsr_seconds);
        cli_json_double("retrain_seconds", r->retrain_seconds);
        printf("}\n");
        return;
    }
    printf("IADSR:          model of epoch %ld, trained in %.2fs\n",
           (long)r->iadsr_epochs, r->iadsr_seconds);
    printf("items in:       %lld (training parts)\n",
           (long long)r->n_items_in);
    printf("items dropped:  %lld (%.2f%%)\n", (long long)r->n_items_dropped,
           r->n_items_in > 0 ? 100.0 * (double)r->n_items_dropped /
                                   (double)r->n_items_in
                             : 0.0);
    printf("users touched:  %lld of %lld\n", (long long)r->n_users_touched,
           (long long)n_users);
    printf("retrain:        model of epoch %ld, trained in %.2fs\n",
           (long)r->retrain_epochs, r->retrain_seconds);
    cli_print_metrics("test", &r->test, 0, 0);
}

int cmd_pipeline(int argc, char **argv)
{
    static const char *cmd = "pipeline";
    const char *data_path = NULL, *out_model = NULL, *out_clean = NULL;
    int json = 0;
    cli_train_vals tv;
    cli_opt opts[] = {
        CLI_STR("data", &data_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_SEMANTIC_OPTS(tv.sem, OPT_REQUIRED),
        CLI_STR("out-model", &out_model, OPT_OUT_FILE),
        CLI_STR("out-clean", &out_clean, OPT_OUT_FILE),
        CLI_FLAG("json", &json),
        CLI_TRAIN_OPTS(tv),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_dataset *d = NULL, *clean = NULL;
    iadsr_model *model = NULL;
    cli_train_params tp;
    iadsr_pipeline_result res;
    cli_progress st;
    int exit_code = CLI_RUNTIME;
    int rc;

    rc = cli_train_start(cmd, argc, argv, opts, n_opts, pipeline_help,
                         pipeline_help_iadsr, &tv, &tp);
    if (rc != CLI_CONTINUE)
        return rc;
    if ((tp.iadsr.flags & IADSR_DENOISE_F_DETECT) &&
        cli_opt_seen(opts, n_opts, "theta"))
        return cli_usage_error(cmd, "--theta with --gate detect: the pipeline "
                                    "cleans at the theta the detector proposes "
                                    "for the data; to choose one, run 'iadsr "
                                    "train' and 'iadsr denoise --theta'");
    if ((out_model && cli_check_out_path(cmd, out_model) != CLI_OK) ||
        (out_clean && cli_check_out_path(cmd, out_clean) != CLI_OK))
        return CLI_RUNTIME;

    if (cli_load_data(cmd, data_path, 0, &d) != CLI_OK)
        return CLI_RUNTIME;
    if (cli_load_semantic(cmd, &tv.sem) != CLI_OK)
        goto done;
    tp.model.n_items = iadsr_dataset_n_items(d);
    if (cli_check_data_ids(cmd, data_path, d, tv.sparse_ids) != CLI_OK ||
        cli_check_train_memory(cmd, &tp.model, tv.threads, tv.max_memory) !=
            CLI_OK)
        goto done;
    if (!tv.quiet)
        fprintf(stderr,
                "iadsr: pipeline: %lld users, %ld items, %lld interactions; "
                "semantic %s: %ld items x %ld\n",
                (long long)iadsr_dataset_n_users(d),
                (long)iadsr_dataset_n_items(d),
                (long long)iadsr_dataset_n_interactions(d), tv.sem.path,
                (long)iadsr_semantic_n_items(tv.sem.items),
                (long)iadsr_semantic_dim(tv.sem.items));

    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;
    cli_progress_init(&st, cmd, tv.quiet);
    st.label[0] = "iadsr";
    st.label[1] = "retrain";
    cli_sigint_install();
    rc = iadsr_pipeline(d, tv.sem.items, &tp.model, &tp.train, &tp.iadsr,
                        cli_progress_cb, &st, &res,
                        out_model ? &model : NULL,
                        out_clean ? &clean : NULL);
    cli_sigint_restore();
    if (rc == IADSR_ERR_ABORTED && cli_interrupted()) {
        cli_error(cmd, "interrupted; nothing written");
        exit_code = CLI_INTERRUPTED;
        goto done;
    }
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, NULL, NULL, rc);
        goto done;
    }
    if (out_model) {
        rc = iadsr_model_save(model, out_model, 0);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, "cannot save model", out_model, rc);
            goto done;
        }
    }
    if (out_clean && cli_write_dataset(cmd, out_clean, clean, d) != CLI_OK)
        goto done;
    print_pipeline(&res, iadsr_dataset_n_users(d), json);
    exit_code = cli_finish_stdout(cmd);

done:
    iadsr_model_free(model);
    iadsr_dataset_free(clean);
    cli_semantic_in_free(&tv.sem);
    iadsr_dataset_free(d);
    return exit_code;
}
