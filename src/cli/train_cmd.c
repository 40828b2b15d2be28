/* iadsr command-line tool: `iadsr train`.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/vocab.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char train_help[] =
    "Usage: iadsr train --data FILE --out MODEL [options]\n"
    "       iadsr train --data FILE --out MODEL --semantic EMB.npy\n"
    "                   [IADSR options] [options]\n"
    "\n"
    "Train a next-item model on a sequence file with the leave-one-out split\n"
    "(last item = test, second-to-last = validation, the rest = training),\n"
    "early-stop on validation NDCG@10 and save the best model to MODEL\n"
    "(atomically). Progress goes to standard error, one line per epoch.\n"
    "Ctrl-C stops after the current epoch and saves the best model so far\n"
    "(press it twice to quit at once without saving).\n"
    "\n"
    "With --semantic, train IADSR instead (docs/METHOD.md, Stage 2): the\n"
    "backbone, the aligner (semantic -> collaborative projections) and the\n"
    "denoising gate are trained jointly on L = L_next + lambda_align L_align\n"
    "+ lambda_recon L_recon (the progress loss is this total), and MODEL\n"
    "holds all three (use it with 'iadsr denoise'; eval, recommend and info\n"
    "read its backbone).\n"
    "\n"
    "Options:\n"
    "  --data FILE       training sequences (required)\n"
    "  --out MODEL       checkpoint to write (required)\n"
    "  --vocab VOCAB.tsv the vocabulary of `iadsr import`: its item ids\n"
    "                    (which must name every item 1..n_items of FILE)\n"
    "                    are stored in MODEL, so that recommend and info\n"
    "                    print them without --vocab (its user part is not\n"
    "                    used)\n"
    "  --log FILE.jsonl  one JSON object per line: each epoch's \"epoch\",\n"
    "                    \"max_epochs\", \"loss\" and its terms \"loss_next\",\n"
    "                    \"loss_aux\", \"loss_detect\" (null when absent),\n"
    "                    \"valid_hr10\", \"valid_ndcg10\" (null when not\n"
    "                    validated), \"best_epoch\", \"best_ndcg10\",\n"
    "                    \"learning_rate\", \"aux_scale\" (the back-off\n"
    "                    factor of the loss weights; null outside joint\n"
    "                    training), \"epoch_seconds\",\n"
    "                    \"elapsed_seconds\" (the names of the Python\n"
    "                    binding's ProgressInfo), then a last object with\n"
    "                    \"summary\": true, \"status\" (done, interrupted,\n"
    "                    stopped or failed), \"epochs\", \"best_epoch\",\n"
    "                    \"best_valid_ndcg10\", \"best_valid_hr10\",\n"
    "                    \"model\", \"parameters\", \"seconds\". Written as\n"
    "                    training goes (flushed every epoch), not atomically\n"
    "  --distributed     data-parallel training over MPI ranks: run\n"
    "                    'mpirun -np N iadsr-mpi train ... --distributed'\n"
    "                    (iadsr-mpi is built by 'make MPI=1'). Every rank\n"
    "                    reads FILE and computes its share of each batch;\n"
    "                    the gradients are summed once per step; rank 0\n"
    "                    validates, prints, logs and saves MODEL. The same\n"
    "                    seed and --threads T on N ranks train as one\n"
    "                    process with N x T threads (docs/DISTRIBUTED.md).\n"
    "                    To stop all ranks after the current epoch and save,\n"
    "                    send SIGUSR1 to mpirun (it forwards it) or SIGINT\n"
    "                    to one rank; Ctrl-C on mpirun too, if the epoch\n"
    "                    ends before Open MPI's SIGKILL (mpirun --mca\n"
    "                    odls_base_sigkill_timeout SECONDS)\n";

static const char train_help_iadsr[] =
    "\n"
    "IADSR options (only with --semantic):\n"
    "  --semantic EMB.npy    semantic item vectors (float32/float16 .npy),\n"
    "                        at least the items of FILE\n"
    "  --semantic-rows R     padded (default: row i = item i, row 0 unused,\n"
    "                        as embed-text writes) or dense (row i = item\n"
    "                        i + 1; 'items' is another name for it)\n"
    "  --user-semantic U.npy one row per user of FILE (file order), same\n"
    "                        width as EMB.npy: the long-term semantic\n"
    "                        interest (default: the mean of the item rows)\n";

static volatile sig_atomic_t g_interrupted = 0;
static struct sigaction g_old_sa;
static int g_have_old_sa = 0;

static struct sigaction g_old_usr1, g_old_term;
static int g_have_old_usr1 = 0, g_have_old_term = 0;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1; /* SA_RESETHAND: a second Ctrl-C kills the process */
}

void cli_sigint_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    g_interrupted = 0;
    g_have_old_sa = sigaction(SIGINT, &sa, &g_old_sa) == 0;
    /* mpirun forwards SIGUSR1 to every rank: a graceful stop there; on
     * Ctrl-C it sends SIGTERM, then SIGKILL after odls_base_sigkill_timeout
     * seconds (1 by default): a graceful stop too, if the epoch ends in
     * time */
    if (cli_dist_size() > 1) {
        g_have_old_usr1 = sigaction(SIGUSR1, &sa, &g_old_usr1) == 0;
        g_have_old_term = sigaction(SIGTERM, &sa, &g_old_term) == 0;
    }
}

void cli_sigint_restore(void)
{
    if (g_have_old_sa)
        sigaction(SIGINT, &g_old_sa, NULL);
    if (g_have_old_usr1)
        sigaction(SIGUSR1, &g_old_usr1, NULL);
    if (g_have_old_term)
        sigaction(SIGTERM, &g_old_term, NULL);
    g_have_old_sa = g_have_old_usr1 = g_have_old_term = 0;
}

int cli_interrupted(void)
{
    return g_interrupted != 0;
}

void cli_progress_init(cli_progress *p, const char *cmd, int quiet)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->interrupt_note = "";
    p->quiet = quiet;
    p->best_ndcg10 = (double)NAN;
    p->best_hr10 = (double)NAN;
}

/* "key":value with NaN as null (JSON has no NaN). */
static void log_num(FILE *f, const char *key, double v, int last)
{
    if (isnan(v) || isinf(v))
        fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
    else
        fprintf(f, "\"%s\":%.9g%s", key, v, last ? "" : ",");
}

static void log_epoch(cli_progress *st, const iadsr_progress_info *info)
{
    FILE *f = st->log;
    fprintf(f, "{\"epoch\":%d,\"max_epochs\":%d,", (int)info->epoch,
            (int)info->max_epochs);
    log_num(f, "loss", info->loss, 0);
    log_num(f, "loss_next", info->loss_next, 0);
    log_num(f, "loss_aux", info->loss_aux, 0);
    log_num(f, "loss_detect", info->loss_detect, 0);
    log_num(f, "valid_hr10", info->valid_hr10, 0);
    log_num(f, "valid_ndcg10", info->valid_ndcg10, 0);
    fprintf(f, "\"best_epoch\":%d,", (int)info->best_epoch);
    log_num(f, "best_ndcg10", info->best_ndcg10, 0);
    /* a float setting: its shortest form, not the double's digits */
    fprintf(f, "\"learning_rate\":%.7g,", info->learning_rate);
    if (info->struct_size >= offsetof(iadsr_progress_info, aux_scale) +
                                sizeof info->aux_scale &&
        !isnan(info->aux_scale))
        fprintf(f, "\"aux_scale\":%.7g,", info->aux_scale);
    else
        fputs("\"aux_scale\":null,", f);
    log_num(f, "epoch_seconds", info->epoch_seconds, 0);
    log_num(f, "elapsed_seconds", info->elapsed_seconds, 1);
    fputs("}\n", f);
    if (fflush(f) != 0 || ferror(f))
        st->log_failed = 1;
}

int cli_progress_cb(const iadsr_progress_info *info, void *user_data)
{
    cli_progress *st = user_data;
    if (!info || !st)
        return g_interrupted ? 1 : 0;
    if (st->label[1] && st->phase == 0 && st->last_epoch > 0 &&
        info->epoch <= st->last_epoch) {
        /* the epoch count restarted: the second training began */
        st->phase = 1;
        st->best_epoch = 0;
        st->best_ndcg10 = (double)NAN;
        st->best_hr10 = (double)NAN;
    }
    st->last_epoch = info->epoch;
    st->elapsed = info->elapsed_seconds;
    if (st->log && !st->log_failed)
        log_epoch(st, info);
    if (info->best_epoch > 0) {
        if (info->best_epoch == info->epoch && !isnan(info->valid_hr10))
            st->best_hr10 = info->valid_hr10;
        st->best_epoch = info->best_epoch;
        st->best_ndcg10 = info->best_ndcg10;
    }
    if (!st->quiet) {
        char hr[32], nd[32], best[32], el[32], eta[32], aux[32] = "";
        double per = info->epoch > 0 ? info->elapsed_seconds / info->epoch
                                     : 0.0;
        int32_t left = info->max_epochs - info->epoch;
        const char *label = st->label[st->phase];
        cli_fmt_4f(hr, sizeof hr, info->valid_hr10, "-");
        cli_fmt_4f(nd, sizeof nd, info->valid_ndcg10, "-");
        cli_fmt_4f(best, sizeof best, info->best_ndcg10, "-");
        cli_format_duration(info->elapsed_seconds, el, sizeof el);
        cli_format_duration(per * (left > 0 ? left : 0), eta, sizeof eta);
        /* the loss weights once backed off (IADSR_DENOISE_F_BACKOFF) */
        if (info->struct_size >= offsetof(iadsr_progress_info, aux_scale) +
                                     sizeof info->aux_scale &&
            info->aux_scale < 1.0)
            snprintf(aux, sizeof aux, "  weights x%g", info->aux_scale);
        fprintf(stderr,
                "%s%sepoch %d/%d  loss %.4f  valid HR@10 %s NDCG@10 %s "
                "(best %s @%d)%s  %.*fs/epoch  elapsed %s  ETA %s\n",
                label ? label : "", label ? " " : "", (int)info->epoch,
                (int)info->max_epochs, info->loss, hr, nd, best,
                (int)info->best_epoch, aux, per < 1.0 ? 2 : 1, per, el, eta);
    }
    if (g_interrupted) {
        fprintf(stderr, "iadsr: %s: interrupted after epoch %d%s\n",
                st->cmd, (int)info->epoch, st->interrupt_note);
        return 1;
    }
    return 0;
}

/* Print the IADSR settings the trainer will use. */
static void print_denoise_params(const char *cmd,
                                 const iadsr_denoise_params *dp)
{
    fprintf(stderr,
            "iadsr: %s: IADSR: lambda_align %g, lambda_recon %g, tau_align "
            "%g, tau_gumbel %g%s%s%s%s%s%s%s%s; gate theta %g, max_drop %g, "
            "protect_last %s\n",
            cmd, (double)dp->lambda_align, (double)dp->lambda_recon,
            (double)dp->tau_align, (double)dp->tau_gumbel,
            (dp->flags & IADSR_DENOISE_F_COLLAB_ONLY) ? ", collab-only" : "",
            (dp->flags & IADSR_DENOISE_F_CARRY_MASKS) ? ", carry-masks" : "",
            (dp->flags & IADSR_DENOISE_F_PAPER) ? ", paper-losses" : "",
            (dp->flags & IADSR_DENOISE_F_DETECT) ? ", gate detect" : "",
            (dp->flags & IADSR_DENOISE_F_HOLDOUT) ? ", holdout 1/16" : "",
            (dp->flags & IADSR_DENOISE_F_INPUT_MASK)     ? ", input mask"
            : (dp->flags & IADSR_DENOISE_F_CLEAN_SCORES) ? ", clean scores"
                                                         : "",
            (dp->flags & IADSR_DENOISE_F_TEXT) ? ", text feature" : "",
            (dp->flags & IADSR_DENOISE_F_BACKOFF) ? ", backoff" : "",
            (double)dp->theta, (double)dp->max_drop,
            dp->protect_last ? "yes" : "no");
}

/* train --vocab: replace *@p m by a copy carrying the item ids of the
 * vocabulary at @p path (all of 1..n_items, else an error naming the first
 * missing id, as recommend --vocab does). */
static int attach_vocab(const char *cmd, const char *path, iadsr_model **m)
{
    cli_vocab *voc = NULL;
    iadsr_model *with = NULL;
    int32_t n = iadsr_model_n_items(*m);
    const char **ids = NULL;
    int exit_code = CLI_OK, rc;

    if (cli_vocab_load(cmd, path, &voc) != CLI_OK)
        return CLI_RUNTIME;
    int64_t miss = cli_vocab_first_missing_item(voc, n);
    if (miss) {
        exit_code = cli_error(cmd, "%s: no item id %lld (the vocabulary must "
                                   "name the model's items 1..%ld)",
                              path, (long long)miss, (long)n);
        goto done;
    }
    ids = malloc((size_t)n * sizeof *ids);
    if (!ids) {
        exit_code = cli_error(cmd, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++)
        ids[i] = cli_vocab_item(voc, i + 1);
    rc = iadsr_model_with_item_ids(&with, *m, ids, n);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "item ids", path, rc);
        goto done;
    }
    iadsr_model_free(*m);
    *m = with;
done:
    free(ids);
    cli_vocab_free(voc);
    return exit_code;
}

int cmd_train(int argc, char **argv)
{
    static const char *cmd = "train";
    const char *data = NULL, *out = NULL, *log_path = NULL, *vocab = NULL;
    int distributed = 0, synced = 0, rank = 0;
    cli_train_vals tv;
    const cli_semantic_in *si = &tv.sem;
    cli_opt opts[] = {
        CLI_STR("data", &data, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_STR("log", &log_path, OPT_OUT_FILE),
        CLI_STR("vocab", &vocab, OPT_IN_FILE),
        CLI_FLAG("distributed", &distributed),
        CLI_TRAIN_OPTS(tv),
        CLI_SEMANTIC_OPTS(tv.sem, 0),
        CLI_USER_SEMANTIC_OPT(tv.sem),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_dataset *ds = NULL;
    iadsr_model *init = NULL;
    cli_checkpoint best = {NULL, NULL, NULL};
    iadsr_trainer *tr = NULL;
    cli_train_params tp;
    cli_progress st;
    FILE *log = NULL;
    int fit_rc = IADSR_OK, rc, exit_code = CLI_OK;
    double t0;

    rc = cli_train_start(cmd, argc, argv, opts, n_opts, train_help,
                         train_help_iadsr, &tv, &tp);
    if (rc != CLI_CONTINUE)
        return rc;
    if (!si->path) {
        /* IADSR options without IADSR are a mistake, not a no-op */
        static const char *const more[] = {"semantic-rows", "user-semantic"};
        for (size_t i = 0; cli_denoise_opt_names[i]; i++)
            if (cli_opt_seen(opts, n_opts, cli_denoise_opt_names[i]))
                return cli_usage_error(cmd, "--%s needs --semantic",
                                       cli_denoise_opt_names[i]);
        for (size_t i = 0; i < 2; i++)
            if (cli_opt_seen(opts, n_opts, more[i]))
                return cli_usage_error(cmd, "--%s needs --semantic", more[i]);
    }

    if (distributed && !cli_dist_available())
        return cli_usage_error(cmd, "--distributed needs the MPI build: "
                                    "'make MPI=1', then 'mpirun -np N "
                                    "bin/iadsr-mpi train ... --distributed'");
    if (distributed) {
        rank = cli_dist_rank();
        tp.train.allreduce = cli_dist_allreduce;
        tp.train.rank = rank;
        tp.train.n_ranks = cli_dist_size();
        if (rank != 0) { /* rank 0 speaks, logs and saves */
            tv.quiet = 1;
            log_path = NULL;
        }
    }
    t0 = cli_now();
    cli_progress_init(&st, cmd, tv.quiet);
    /* failures go through done: distributed, the other ranks are told */
    if (rank == 0 && cli_check_out_path(cmd, out) != CLI_OK) {
        exit_code = CLI_RUNTIME;
        goto done;
    }
    if (log_path && !(log = fopen(log_path, "w"))) {
        exit_code = cli_error(cmd, "%s: cannot write the log: %s", log_path,
                              strerror(errno));
        goto done;
    }
    st.log = log;
    if (cli_load_data(cmd, data, 0, &ds) != CLI_OK) {
        exit_code = CLI_RUNTIME;
        goto done;
    }
    if (si->path && (cli_load_semantic(cmd, &tv.sem) != CLI_OK ||
                     cli_load_user_semantic(cmd, &tv.sem,
                                            iadsr_dataset_n_users(ds)) !=
                         CLI_OK)) {
        exit_code = CLI_RUNTIME;
        goto done;
    }

    tp.model.n_items = iadsr_dataset_n_items(ds);
    if (cli_check_data_ids(cmd, data, ds, tv.sparse_ids) != CLI_OK ||
        cli_check_train_memory(cmd, &tp.model, tv.threads, tv.max_memory) !=
            CLI_OK) {
        exit_code = CLI_RUNTIME;
        goto done;
    }
    rc = iadsr_model_create(&init, &tp.model);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create model", NULL, rc);
        goto done;
    }
    if (vocab && attach_vocab(cmd, vocab, &init) != CLI_OK) {
        exit_code = CLI_RUNTIME;
        goto done;
    }
    if (vocab && !tv.quiet)
        fprintf(stderr, "iadsr: train: the model carries the item ids of "
                        "%s\n",
                vocab);

    /* report the normalised values (0 = default resolved) */
    rc = iadsr_model_get_params(init, &tp.model);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot read model params", NULL, rc);
        goto done;
    }
    if (!tv.quiet) {
        fprintf(stderr,
                "iadsr: train: %lld users, %ld items, %lld interactions; "
                "%s dim %ld, %ld layers, %ld heads, max-len %ld, %lld "
                "parameters\n",
                (long long)iadsr_dataset_n_users(ds), (long)tp.model.n_items,
                (long long)iadsr_dataset_n_interactions(ds),
                tv.backbone_names[tv.backbone], (long)tp.model.dim,
                (long)tp.model.n_layers, (long)tp.model.n_heads,
                (long)tp.model.max_seq_len,
                (long long)iadsr_model_n_params(init));
        if (si->items)
            fprintf(stderr,
                    "iadsr: train: semantic %s: %ld items x %ld (%ld zero "
                    "rows)%s%s\n",
                    si->path, (long)iadsr_semantic_n_items(si->items),
                    (long)iadsr_semantic_dim(si->items),
                    (long)iadsr_semantic_n_zero_rows(si->items),
                    si->users ? "; user rows from " : "",
                    si->users ? si->user_path : "");
    }

    if (si->items) {
        if (!tv.quiet)
            print_denoise_params(cmd, &tp.iadsr);
        rc = iadsr_trainer_create_joint(&tr, init, ds, si->items, si->users,
                                        &tp.train, &tp.iadsr);
    } else {
        rc = iadsr_trainer_create(&tr, init, ds, &tp.train);
    }
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create trainer", NULL, rc);
        goto done;
    }
    iadsr_model_free(init);
    init = NULL;
    if (distributed) {
        /* every rank got here, or all stop: a rank that failed before
         * training must not leave the others waiting in a collective */
        synced = 1;
        if (cli_dist_any(0)) {
            exit_code = cli_error(cmd, "another rank failed before "
                                       "training (its message is above)");
            goto done;
        }
        if (rank == 0 && !tv.quiet)
            fprintf(stderr, "iadsr: train: distributed over %d ranks, %ld "
                            "threads each\n",
                    cli_dist_size(), (long)tp.train.n_threads);
    }

    st.interrupt_note = rank == 0 ? "; saving the best model so far" : "";
    cli_sigint_install();
    fit_rc = iadsr_trainer_fit(tr, cli_progress_cb, &st);
    cli_sigint_restore();

    if (fit_rc != IADSR_OK && fit_rc != IADSR_ERR_ABORTED) {
        exit_code = cli_lib_error(cmd, "training failed", NULL, fit_rc);
        if (st.best_epoch <= 0)
            goto done; /* nothing validated worth saving */
        fprintf(stderr, "iadsr: train: saving the best model so far "
                        "(epoch %d)\n", (int)st.best_epoch);
    } else if (fit_rc == IADSR_ERR_ABORTED && !cli_interrupted() &&
               rank == 0) {
        /* Only our callback aborts, and only when interrupted (on this
         * rank, or distributed, on another). */
        fprintf(stderr, "iadsr: train: training stopped early\n");
    }
    if (rank != 0) {
        if (exit_code == CLI_OK && cli_interrupted())
            exit_code = CLI_INTERRUPTED;
        goto done;
    }

    rc = iadsr_trainer_snapshot(tr, &best.model);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot snapshot the model", NULL, rc);
        goto done;
    }
    if (si->items) {
        rc = iadsr_trainer_snapshot_denoiser(tr, &best.aligner, &best.gate);
        if (rc != IADSR_OK) {
            exit_code = cli_lib_error(cmd, "cannot snapshot the aligner and "
                                           "gate", NULL, rc);
            goto done;
        }
        rc = iadsr_checkpoint_save(best.model, best.aligner, best.gate, out,
                                   0);
    } else {
        rc = iadsr_model_save(best.model, out, 0);
    }
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot save model", out, rc);
        goto done;
    }
    if (exit_code == CLI_OK && cli_interrupted())
        exit_code = CLI_INTERRUPTED; /* saved, but not trained to the end */
    {
        char el[32], bestbuf[64];
        cli_format_duration(cli_now() - t0, el, sizeof el);
        if (st.best_epoch > 0 && !isnan(st.best_ndcg10))
            snprintf(bestbuf, sizeof bestbuf, "NDCG@10 %.4f HR@10 %.4f @%d",
                     st.best_ndcg10, st.best_hr10, (int)st.best_epoch);
        else
            snprintf(bestbuf, sizeof bestbuf, "none");
        fprintf(stderr,
                "iadsr: train: %s after %d epochs in %s; best valid %s; "
                "saved %s (%lld parameters%s)\n",
                fit_rc == IADSR_OK      ? "done"
                : cli_interrupted() ? "interrupted"
                                    : "stopped",
                (int)iadsr_trainer_epochs_done(tr), el, bestbuf, out,
                (long long)iadsr_model_n_params(best.model),
                si->items ? ", with aligner and gate" : "");
    }

done:
    if (distributed && !synced)
        (void)cli_dist_any(1); /* tell the ranks waiting before training */
    if (log) {
        if (!st.log_failed) {
            /* the run's outcome, also when it failed before training */
            fprintf(log, "{\"summary\":true,\"status\":\"%s\",",
                    exit_code == CLI_INTERRUPTED ? "interrupted"
                    : exit_code != CLI_OK        ? "failed"
                    : fit_rc == IADSR_OK         ? "done"
                                                 : "stopped");
            fprintf(log, "\"epochs\":%d,\"best_epoch\":%d,",
                    tr ? (int)iadsr_trainer_epochs_done(tr) : 0,
                    (int)st.best_epoch);
            log_num(log, "best_valid_ndcg10",
                    st.best_epoch > 0 ? st.best_ndcg10 : (double)NAN, 0);
            log_num(log, "best_valid_hr10",
                    st.best_epoch > 0 ? st.best_hr10 : (double)NAN, 0);
            fputs("\"model\":", log);
            cli_json_string(log, exit_code == CLI_OK ||
                                            exit_code == CLI_INTERRUPTED
                                        ? out
                                        : NULL);
            fprintf(log, ",\"parameters\":%lld,",
                    best.model ? (long long)iadsr_model_n_params(best.model)
                               : 0LL);
            log_num(log, "seconds", cli_now() - t0, 1);
            fputs("}\n", log);
        }
        if (fclose(log) != 0 || st.log_failed) {
            cli_error(cmd, "%s: writing the log failed", log_path);
            if (exit_code == CLI_OK)
                exit_code = CLI_RUNTIME;
        }
    }
    cli_checkpoint_free(&best);
    iadsr_trainer_free(tr);
    iadsr_model_free(init);
    cli_semantic_in_free(&tv.sem);
    iadsr_dataset_free(ds);
    return exit_code;
}
