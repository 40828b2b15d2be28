/* iadsr command-line tool: `iadsr train`.
 * SPDX-License-Identifier: MIT
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char train_help[] =
    "Usage: iadsr train --data FILE --out MODEL [options]\n"
    "\n"
    "Train a next-item model on a sequence file with the leave-one-out split\n"
    "(last item = test, second-to-last = validation, the rest = training),\n"
    "early-stop on validation NDCG@10 and save the best model to MODEL\n"
    "(atomically). Progress goes to standard error, one line per epoch.\n"
    "Ctrl-C stops after the current epoch and saves the best model so far\n"
    "(press it twice to quit at once without saving).\n"
    "\n"
    "Options:\n"
    "  --data FILE       training sequences (required)\n"
    "  --out MODEL       checkpoint to write (required)\n"
    "  --backbone NAME   sasrec (default), gru4rec or caser\n"
    "  --epochs N        maximum epochs, 1..100000 (default 200)\n"
    "  --dim D           hidden width, 1..4096 (default 64)\n"
    "  --max-len L       items of history used, 1..4096 (default 50)\n"
    "  --layers N        SASRec blocks or GRU layers, 1..16 (default 2 for\n"
    "                    sasrec, 1 for gru4rec)\n"
    "  --heads H         SASRec attention heads, must divide --dim\n"
    "                    (default 2)\n"
    "  --pre-ln          pre-norm blocks and a final LayerNorm, as in the\n"
    "                    original SASRec (default: post-norm)\n"
    "  --caser-window N  Caser: items in the image, 1..64 (default 5)\n"
    "  --caser-h N       Caser: horizontal filters per height (default 16)\n"
    "  --caser-v N       Caser: vertical filters (default 4)\n"
    "  --dropout P       dropout rate in [0,1) (default 0.5)\n"
    "  --lr X            Adam learning rate, > 0 (default 0.001)\n"
    "  --weight-decay X  L2 added to gradients, >= 0 (default 0)\n"
    "  --batch B         users per mini-batch, 1..65536 (default 256)\n"
    "  --patience P      stop after P validations without improvement,\n"
    "                    0 = never (default 10)\n"
    "  --eval-every N    epochs between validations (default 1)\n"
    "  --seed S          seed of initialisation, shuffling and dropout\n"
    "                    (default: the library defaults)\n"
    "  --threads T       library worker threads, 1..256 (default 1); BLAS\n"
    "                    threads follow OPENBLAS_NUM_THREADS\n"
    "  --quiet           no per-epoch progress lines\n";

static const char *const backbone_names[] = {"sasrec", "gru4rec", "caser",
                                             NULL};
static const int32_t backbone_ids[] = {IADSR_BACKBONE_SASREC,
                                       IADSR_BACKBONE_GRU4REC,
                                       IADSR_BACKBONE_CASER};

static volatile sig_atomic_t g_interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1; /* SA_RESETHAND: a second Ctrl-C kills the process */
}

typedef struct train_state {
    int quiet;
    int32_t last_epoch;
    int32_t best_epoch;
    double best_ndcg10;
    double best_hr10;
    double elapsed;
} train_state;

static void fmt_metric(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.4f", v);
}

static int train_progress(const iadsr_progress_info *info, void *user_data)
{
    train_state *st = user_data;
    if (!info || !st)
        return g_interrupted ? 1 : 0;
    st->last_epoch = info->epoch;
    st->elapsed = info->elapsed_seconds;
    if (info->best_epoch > 0) {
        if (info->best_epoch == info->epoch && !isnan(info->valid_hr10))
            st->best_hr10 = info->valid_hr10;
        st->best_epoch = info->best_epoch;
        st->best_ndcg10 = info->best_ndcg10;
    }
    if (!st->quiet) {
        char hr[32], nd[32], best[32], el[32], eta[32];
        double per = info->epoch > 0 ? info->elapsed_seconds / info->epoch
                                     : 0.0;
        int32_t left = info->max_epochs - info->epoch;
        fmt_metric(hr, sizeof hr, info->valid_hr10);
        fmt_metric(nd, sizeof nd, info->valid_ndcg10);
        fmt_metric(best, sizeof best, info->best_ndcg10);
        cli_format_duration(info->elapsed_seconds, el, sizeof el);
        cli_format_duration(per * (left > 0 ? left : 0), eta, sizeof eta);
        fprintf(stderr,
                "epoch %d/%d  loss %.4f  valid HR@10 %s NDCG@10 %s "
                "(best %s @%d)  %.*fs/epoch  elapsed %s  ETA %s\n",
                (int)info->epoch, (int)info->max_epochs, info->loss, hr, nd,
                best, (int)info->best_epoch, per < 1.0 ? 2 : 1, per, el, eta);
    }
    if (g_interrupted) {
        fprintf(stderr, "iadsr: train: interrupted after epoch %d; saving "
                        "the best model so far\n", (int)info->epoch);
        return 1;
    }
    return 0;
}

/* Fail early (before hours of training) if MODEL cannot be written. */
static int check_out_path(const char *cmd, const char *path)
{
    struct stat sb;
    size_t plen = strlen(path);
    char *dir;
    const char *slash = strrchr(path, '/');
    int ok;

    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cli_error(cmd, "%s: is a directory", path);
    dir = malloc(plen + 2);
    if (!dir)
        return cli_error(cmd, "out of memory");
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    ok = access(dir, W_OK | X_OK) == 0;
    if (!ok) {
        int e = errno;
        cli_error(cmd, "%s: cannot write to directory '%s': %s", path, dir,
                  strerror(e));
        free(dir);
        return CLI_RUNTIME;
    }
    free(dir);
    return CLI_OK;
}

int cmd_train(int argc, char **argv)
{
    static const char *cmd = "train";
    const char *data = NULL, *out = NULL;
    int backbone = 0, quiet = 0, pre_ln = 0;
    int64_t epochs = 200, dim = 64, max_len = 50, layers = 0, heads = 2;
    int64_t caser_l = 0, caser_h = 0, caser_v = 0;
    int64_t batch = 256, patience = 10, threads = 1, eval_every = 1;
    double dropout = 0.5, lr = 1e-3, wd = 0.0;
    uint64_t seed = 0;
    cli_opt opts[] = {
        {"data", OPT_STR, &data, 0, 0, 0, 0, 0, NULL, 1, 0},
        {"out", OPT_STR, &out, 0, 0, 0, 0, 0, NULL, 1, 0},
        {"backbone", OPT_CHOICE, &backbone, 0, 0, 0, 0, 0, backbone_names, 0,
         0},
        {"epochs", OPT_I64, &epochs, 1, 100000, 0, 0, 0, NULL, 0, 0},
        {"dim", OPT_I64, &dim, 1, 4096, 0, 0, 0, NULL, 0, 0},
        {"max-len", OPT_I64, &max_len, 1, 4096, 0, 0, 0, NULL, 0, 0},
        {"layers", OPT_I64, &layers, 1, 16, 0, 0, 0, NULL, 0, 0},
        {"heads", OPT_I64, &heads, 1, 4096, 0, 0, 0, NULL, 0, 0},
        {"dropout", OPT_DBL, &dropout, 0, 0, 0.0, 1.0, OPT_HI_OPEN, NULL, 0,
         0},
        {"lr", OPT_DBL, &lr, 0, 0, 0.0, 1e6, OPT_LO_OPEN, NULL, 0, 0},
        {"weight-decay", OPT_DBL, &wd, 0, 0, 0.0, 1e6, 0, NULL, 0, 0},
        {"batch", OPT_I64, &batch, 1, 65536, 0, 0, 0, NULL, 0, 0},
        {"patience", OPT_I64, &patience, 0, 100000, 0, 0, 0, NULL, 0, 0},
        {"eval-every", OPT_I64, &eval_every, 1, 100000, 0, 0, 0, NULL, 0, 0},
        {"seed", OPT_U64, &seed, 0, 0, 0, 0, 0, NULL, 0, 0},
        {"threads", OPT_I64, &threads, 1, 256, 0, 0, 0, NULL, 0, 0},
        {"quiet", OPT_FLAG, &quiet, 0, 0, 0, 0, 0, NULL, 0, 0},
        {"pre-ln", OPT_FLAG, &pre_ln, 0, 0, 0, 0, 0, NULL, 0, 0},
        {"caser-window", OPT_I64, &caser_l, 1, 64, 0, 0, 0, NULL, 0, 0},
        {"caser-h", OPT_I64, &caser_h, 1, 1024, 0, 0, 0, NULL, 0, 0},
        {"caser-v", OPT_I64, &caser_v, 1, 1024, 0, 0, 0, NULL, 0, 0},
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_dataset *ds = NULL;
    iadsr_model *init = NULL, *best = NULL;
    iadsr_trainer *tr = NULL;
    iadsr_model_params mp;
    iadsr_train_params tp;
    train_state st;
    struct sigaction sa, old_sa;
    int have_old_sa = 0, seed_given, fit_rc, exit_code = CLI_OK;
    double t0;
    int rc = cli_parse(cmd, argc, argv, opts, n_opts);

    if (rc == 1) {
        fputs(train_help, stdout);
        return cli_finish_stdout(cmd);
    }
    if (rc != 0)
        return rc;
    {
        /* options of one backbone given for another: say so up front */
        int is_sasrec = backbone_ids[backbone] == IADSR_BACKBONE_SASREC;
        int is_caser = backbone_ids[backbone] == IADSR_BACKBONE_CASER;
        static const char *const sasrec_only[] = {"heads", "pre-ln"};
        static const char *const caser_only[] = {"caser-window", "caser-h",
                                                 "caser-v"};
        for (size_t i = 0; i < 2; i++)
            if (!is_sasrec && cli_opt_seen(opts, n_opts, sasrec_only[i]))
                return cli_usage_error(cmd, "--%s applies to sasrec only",
                                       sasrec_only[i]);
        for (size_t i = 0; i < 3; i++)
            if (!is_caser && cli_opt_seen(opts, n_opts, caser_only[i]))
                return cli_usage_error(cmd, "--%s applies to caser only",
                                       caser_only[i]);
        if (is_caser && cli_opt_seen(opts, n_opts, "layers"))
            return cli_usage_error(cmd, "--layers does not apply to caser");
        if (is_sasrec && dim % heads != 0)
            return cli_usage_error(cmd,
                                   "--heads (%lld) must divide --dim (%lld)",
                                   (long long)heads, (long long)dim);
    }
    seed_given = cli_opt_seen(opts, n_opts, "seed");

    if (check_out_path(cmd, out) != CLI_OK)
        return CLI_RUNTIME;
    t0 = cli_now();
    rc = iadsr_dataset_load_text(&ds, data, 0);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, data, rc);

    iadsr_model_params_init(&mp);
    mp.backbone = backbone_ids[backbone];
    mp.n_items = iadsr_dataset_n_items(ds);
    mp.dim = (int32_t)dim;
    mp.max_seq_len = (int32_t)max_len;
    mp.n_layers = (int32_t)layers;
    if (backbone_ids[backbone] == IADSR_BACKBONE_SASREC)
        mp.n_heads = (int32_t)heads;
    mp.caser_window = (int32_t)caser_l;
    mp.caser_h_filters = (int32_t)caser_h;
    mp.caser_v_filters = (int32_t)caser_v;
    mp.dropout = (float)dropout;
    if (pre_ln)
        mp.flags |= IADSR_MODEL_F_PRE_LN;
    if (seed_given)
        mp.seed = seed;
    rc = iadsr_model_create(&init, &mp);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create model", NULL, rc);
        goto done;
    }

    /* report the normalised values (0 = default resolved) */
    if (iadsr_model_get_params(init, &mp) != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot read model params", NULL, rc);
        goto done;
    }
    if (!quiet)
        fprintf(stderr,
                "iadsr: train: %lld users, %ld items, %lld interactions; "
                "%s dim %ld, %ld layers, %ld heads, max-len %ld, %lld "
                "parameters\n",
                (long long)iadsr_dataset_n_users(ds), (long)mp.n_items,
                (long long)iadsr_dataset_n_interactions(ds),
                backbone_names[backbone], (long)mp.dim, (long)mp.n_layers,
                (long)mp.n_heads, (long)mp.max_seq_len,
                (long long)iadsr_model_n_params(init));

    iadsr_train_params_init(&tp);
    tp.split = IADSR_SPLIT_LEAVE_ONE_OUT;
    tp.max_epochs = (int32_t)epochs;
    tp.batch_size = (int32_t)batch;
    tp.patience = (int32_t)patience;
    tp.eval_every = (int32_t)eval_every;
    tp.n_threads = (int32_t)threads;
    tp.learning_rate = (float)lr;
    tp.weight_decay = (float)wd;
    if (seed_given)
        tp.seed = seed;
    rc = iadsr_trainer_create(&tr, init, ds, &tp);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create trainer", NULL, rc);
        goto done;
    }
    iadsr_model_free(init);
    init = NULL;

    memset(&st, 0, sizeof st);
    st.quiet = quiet;
    st.best_ndcg10 = (double)NAN;
    st.best_hr10 = (double)NAN;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    g_interrupted = 0;
    if (sigaction(SIGINT, &sa, &old_sa) == 0)
        have_old_sa = 1;

    fit_rc = iadsr_trainer_fit(tr, train_progress, &st);

    if (have_old_sa)
        sigaction(SIGINT, &old_sa, NULL);

    if (fit_rc != IADSR_OK && fit_rc != IADSR_ERR_ABORTED) {
        exit_code = cli_lib_error(cmd, "training failed", NULL, fit_rc);
        if (st.best_epoch <= 0)
            goto done; /* nothing validated worth saving */
        fprintf(stderr, "iadsr: train: saving the best model so far "
                        "(epoch %d)\n", (int)st.best_epoch);
    } else if (fit_rc == IADSR_ERR_ABORTED && !g_interrupted) {
        /* Only our callback aborts, and only when interrupted. */
        fprintf(stderr, "iadsr: train: training stopped early\n");
    }

    rc = iadsr_trainer_snapshot(tr, &best);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot snapshot the model", NULL, rc);
        goto done;
    }
    rc = iadsr_model_save(best, out, 0);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot save model", out, rc);
        goto done;
    }
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
                "saved %s (%lld parameters)\n",
                fit_rc == IADSR_OK ? "done" : "stopped",
                (int)iadsr_trainer_epochs_done(tr), el, bestbuf, out,
                (long long)iadsr_model_n_params(best));
    }

done:
    iadsr_model_free(best);
    iadsr_trainer_free(tr);
    iadsr_model_free(init);
    iadsr_dataset_free(ds);
    return exit_code;
}
