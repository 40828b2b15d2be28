/* iadsr command-line tool: `iadsr eval`, `recommend`, `info`, `popularity`.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include "iadsr.h"
#include "backbone/model.h" /* model provenance fields for `info` */
#include "backbone/encoder.h" /* backbone names and hyper-parameters */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const split_names[] = {"test", "valid", NULL};

/* ------------------------------------------------------------------------ */
/* eval                                                                     */
/* ------------------------------------------------------------------------ */

static const char eval_help[] =
    "Usage: iadsr eval --model MODEL --data FILE [--split test|valid]\n"
    "                  [--exclude-history] [--threads T] [--json]\n"
    "                  [--cold-max N [--cold-ref REF]]\n"
    "       iadsr eval --semantic EMB.npy\n"
    "                  [--semantic-rows padded|dense|items]\n"
    "                  --data FILE [same options]\n"
    "\n"
    "With --semantic the recommender is the text embedding alone: items are\n"
    "ranked by the cosine between their row and the mean row of the user's\n"
    "history (a baseline that shows how much signal the text carries).\n"
    "--semantic-rows: padded (default; row i = item i, row 0 unused, as\n"
    "written by `iadsr embed-text`) or dense (row i = item i + 1; 'items'\n"
    "is another name for it).\n"
    "\n"
    "Leave-one-out evaluation with full ranking over all items: for each\n"
    "user, history = sequence without the last item (test) or the last two\n"
    "(valid), target = the item after it. rank = the other items scoring\n"
    "at least as high as the target (ties count against it, so a scorer\n"
    "that gives many items one score gains nothing from it); HR@K =\n"
    "[rank < K], NDCG@K = [rank < K] /\n"
    "log2(rank + 2), averaged over users. Item ids in FILE must not exceed\n"
    "the model's n_items.\n"
    "\n"
    "Cold-item view (--cold-max N): only the users whose target item occurs\n"
    "at most N times in the training parts (each sequence without its last\n"
    "two items) of REF, or of FILE without --cold-ref, are evaluated; the\n"
    "metrics are those of a file holding just these users. REF has the\n"
    "format of FILE and the same users in the same line order (e.g. the\n"
    "original data of a cleaned FILE); only the item counts come from it.\n"
    "\n"
    "Options:\n"
    "  --model MODEL       checkpoint (this or --semantic is required)\n"
    "  --semantic EMB.npy  float32/float16 .npy text embedding per item\n"
    "  --data FILE         sequence file (required)\n"
    "  --split test|valid  target (default test)\n"
    "  --exclude-history   do not rank items of the user's history\n"
    "  --threads T         worker threads, 1..256 (default 1)\n"
    "  --cold-max N        evaluate only users whose target has at most N\n"
    "                      training interactions (N >= 0)\n"
    "  --cold-ref REF      count them in REF instead of FILE (needs\n"
    "                      --cold-max; same number of users as FILE)\n"
    "  --json              print exactly one JSON object on one line:\n"
    "                      {\"split\":..,\"users\":..,\"HR@5\":..,\"HR@10\":..,\n"
    "                       \"HR@20\":..,\"NDCG@5\":..,\"NDCG@10\":..,\n"
    "                       \"NDCG@20\":..,\"exclude_history\":..}\n"
    "                      with --cold-max also \"cold_max\":N,\n"
    "                      \"n_users_cold\":.. (= users) and\n"
    "                      \"n_users_all\":.. (users with a target in\n"
    "                      FILE)\n";

/* Load model then the dataset with the model's item count (ids above it
 * are reported with their line). */
static int load_model_and_data(const char *cmd, const char *model_path,
                               const char *data_path, iadsr_model **m,
                               iadsr_dataset **d)
{
    if (cli_load_model(cmd, model_path, m) != CLI_OK)
        return CLI_RUNTIME;
    if (cli_load_data(cmd, data_path, iadsr_model_n_items(*m), d) != CLI_OK) {
        iadsr_model_free(*m);
        *m = NULL;
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

/* The target of a user for split index @p split (0 = test, 1 = valid), or
 * 0 when the sequence is too short to have one (iadsr_evaluate skips such
 * users). */
static int32_t eval_target(const int32_t *it, int32_t n, int split)
{
    int32_t n_hist = split == 0 ? n - 1 : n - 2;
    return (it && n_hist >= 1) ? it[n_hist] : 0;
}

/* The cold-item view of eval: which users are kept and how many had a
 * target at all. */
typedef struct cold_view {
    int64_t max;      /* --cold-max */
    const char *ref;  /* --cold-ref, or NULL: count in the data itself */
    int64_t n_all;    /* users of the data with a target */
    int64_t n_cold;   /* of them, users whose target is cold */
} cold_view;

/* Replace *@p d by the users whose target item occurs at most cv->max times
 * in the training parts (all but the last two items of each sequence) of
 * the reference data. A user's evaluation depends only on its own
 * sequence, so evaluating the subset gives the metrics of those users.
 * Returns CLI_OK, or prints and returns CLI_USAGE / CLI_RUNTIME (*d is
 * then unchanged). */
static int cold_select(const char *cmd, const char *data_path, int split,
                       cold_view *cv, iadsr_dataset **d)
{
    iadsr_dataset *ref = NULL, *sub = NULL;
    const iadsr_dataset *src;
    int64_t *counts = NULL, *offs = NULL;
    int32_t *items = NULL;
    int32_t n_items = iadsr_dataset_n_items(*d);
    int64_t n_users = iadsr_dataset_n_users(*d), total = 0, k = 0;
    int exit_code = CLI_RUNTIME;
    int rc;

    if (cv->ref) {
        /* ids above n_items cannot be a target, they are not counted */
        rc = iadsr_dataset_load_text(&ref, cv->ref, 0);
        if (rc != IADSR_OK)
            return cli_lib_error(cmd, "--cold-ref", cv->ref, rc);
        if (iadsr_dataset_n_users(ref) != n_users) {
            exit_code = cli_usage_error(
                cmd,
                "--cold-ref %s has %lld users, %s has %lld (users are "
                "matched by line order)",
                cv->ref, (long long)iadsr_dataset_n_users(ref), data_path,
                (long long)n_users);
            goto done;
        }
    }
    src = ref ? ref : *d;
    counts = calloc((size_t)n_items + 1, sizeof *counts);
    offs = malloc(((size_t)n_users + 1) * sizeof *offs);
    if (!counts || !offs) {
        cli_error(cmd, "out of memory for %ld items", (long)n_items);
        goto done;
    }
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(src, u, &n);
        for (int32_t j = 0; j + 2 < n; j++)
            if (it[j] <= n_items)
                counts[it[j]]++;
    }
    cv->n_all = 0;
    cv->n_cold = 0;
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(*d, u, &n);
        int32_t t = eval_target(it, n, split);
        if (t < 1)
            continue;
        cv->n_all++;
        if (counts[t] <= cv->max) {
            cv->n_cold++;
            total += n;
        }
    }
    if (cv->n_cold == 0) {
        cli_error(cmd,
                  "no user's %s target has at most %lld training "
                  "interactions in %s (%lld users with a target)",
                  split_names[split], (long long)cv->max,
                  cv->ref ? cv->ref : data_path, (long long)cv->n_all);
        goto done;
    }
    items = malloc((size_t)total * sizeof *items);
    if (!items) {
        cli_error(cmd, "out of memory for %lld interactions",
                  (long long)total);
        goto done;
    }
    offs[0] = 0;
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(*d, u, &n);
        int32_t t = eval_target(it, n, split);
        if (t < 1 || counts[t] > cv->max)
            continue;
        memcpy(items + offs[k], it, (size_t)n * sizeof *items);
        offs[k + 1] = offs[k] + n;
        k++;
    }
    rc = iadsr_dataset_create(&sub, items, offs, k, n_items,
                              IADSR_FLAG_COPY);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "cannot build the cold-user subset", NULL, rc);
        goto done;
    }
    iadsr_dataset_free(*d);
    *d = sub;
    exit_code = CLI_OK;

done:
    free(counts);
    free(offs);
    free(items);
    iadsr_dataset_free(ref);
    return exit_code;
}

static void print_eval(const char *split, const iadsr_metrics *met, int excl,
                       int json, const cold_view *cv, const char *data_path)
{
    if (!cv) {
        cli_print_metrics(split, met, excl, json);
        return;
    }
    if (json) {
        printf("{\"split\":\"%s\",\"users\":%lld", split,
               (long long)met->n_users);
        cli_json_metrics(met);
        printf(",\"exclude_history\":%s,\"cold_max\":%lld,"
               "\"n_users_cold\":%lld,\"n_users_all\":%lld}\n",
               excl ? "true" : "false", (long long)cv->max,
               (long long)cv->n_cold, (long long)cv->n_all);
        return;
    }
    printf("cold view: %lld of %lld users (%.1f%%), %s target with at most "
           "%lld training interactions in %s\n",
           (long long)cv->n_cold, (long long)cv->n_all,
           100.0 * (double)cv->n_cold / (double)cv->n_all, split,
           (long long)cv->max, cv->ref ? cv->ref : data_path);
    cli_print_metrics(split, met, excl, 0);
}

int cmd_eval(int argc, char **argv)
{
    static const char *cmd = "eval";
    const char *model_path = NULL, *data_path = NULL, *cold_ref = NULL;
    cli_semantic_in si;
    int split = 0, excl = 0, json = 0;
    int64_t threads = 1, cold_max = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, 0),
        CLI_SEMANTIC_OPTS(si, 0),
        CLI_STR("data", &data_path, OPT_REQUIRED),
        CLI_CHOICE("split", &split, split_names),
        CLI_FLAG("exclude-history", &excl),
        CLI_I64("threads", &threads, 1, 256, 0),
        CLI_I64("cold-max", &cold_max, 0, INT64_MAX, 0),
        CLI_STR("cold-ref", &cold_ref, 0),
        CLI_FLAG("json", &json),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_model *m = NULL;
    iadsr_dataset *d = NULL;
    iadsr_eval_params ep;
    iadsr_metrics met;
    cold_view cv = {0, NULL, 0, 0};
    int cold, exit_code, rc;

    memset(&si, 0, sizeof si);
    rc = cli_start(cmd, argc, argv, opts, n_opts,
                   (const char *const[]){eval_help, NULL});
    if (rc != CLI_CONTINUE)
        return rc;
    if ((model_path == NULL) == (si.path == NULL))
        return cli_usage_error(cmd, "give exactly one of --model and "
                                    "--semantic");
    cold = cli_opt_seen(opts, n_opts, "cold-max");
    if (cold_ref && !cold)
        return cli_usage_error(cmd, "--cold-ref needs --cold-max");
    cv.max = cold_max;
    cv.ref = cold_ref;
    iadsr_eval_params_init(&ep);
    ep.target = split == 0 ? IADSR_EVAL_TEST : IADSR_EVAL_VALID;
    ep.n_threads = (int32_t)threads;
    ep.flags = excl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
    memset(&met, 0, sizeof met);
    met.struct_size = (uint32_t)sizeof met;
    if (si.path) {
        if (cli_load_semantic(cmd, &si) != CLI_OK)
            return CLI_RUNTIME;
        /* the data first, then the matrix against it: a matrix with too
         * few rows is the matrix's fault, not a line of the data */
        exit_code = cli_load_data(cmd, data_path, 0, &d);
        if (exit_code != CLI_OK)
            goto done;
        if (iadsr_dataset_n_items(d) > iadsr_semantic_n_items(si.items)) {
            exit_code = cli_error(
                cmd, "%s: rows for item ids 1..%ld, but %s uses item ids up "
                     "to %ld (a matrix made for another data set, or the "
                     "wrong --semantic-rows)",
                si.path, (long)iadsr_semantic_n_items(si.items), data_path,
                (long)iadsr_dataset_n_items(d));
            goto done;
        }
    } else if (load_model_and_data(cmd, model_path, data_path, &m, &d) !=
               CLI_OK) {
        return CLI_RUNTIME;
    }
    if (cold) {
        exit_code = cold_select(cmd, data_path, split, &cv, &d);
        if (exit_code != CLI_OK)
            goto done;
    }
    rc = si.items ? iadsr_semantic_evaluate(si.items, d, &ep, &met)
           : iadsr_evaluate(m, d, &ep, &met);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, NULL, NULL, rc);
        goto done;
    }
    print_eval(split_names[split], &met, excl, json, cold ? &cv : NULL,
               data_path);
    exit_code = cli_finish_stdout(cmd);

done:
    iadsr_model_free(m);
    cli_semantic_in_free(&si);
    iadsr_dataset_free(d);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* recommend                                                                */
/* ------------------------------------------------------------------------ */

static const char recommend_help[] =
    "Usage: iadsr recommend --model MODEL --data FILE --k K\n"
    "                       [--exclude-history] [--users N]\n"
    "\n"
    "For every user of FILE (in file order), print the K best next items\n"
    "after the user's whole sequence, best first:\n"
    "  user_id<TAB>item:score item:score ...\n"
    "Fewer than K items are printed only when --exclude-history leaves\n"
    "fewer candidates.\n"
    "\n"
    "Options:\n"
    "  --model MODEL       checkpoint (required)\n"
    "  --data FILE         sequence file (required)\n"
    "  --k K               items per user, 1..n_items (required)\n"
    "  --exclude-history   never recommend an item of the user's sequence\n"
    "  --users N           only the first N users\n";

#define RECOMMEND_CHUNK 256

int cmd_recommend(int argc, char **argv)
{
    static const char *cmd = "recommend";
    const char *model_path = NULL, *data_path = NULL;
    int64_t k = 0, max_users = INT64_MAX;
    int excl = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED),
        CLI_STR("data", &data_path, OPT_REQUIRED),
        CLI_I64("k", &k, 1, INT32_MAX, OPT_REQUIRED),
        CLI_FLAG("exclude-history", &excl),
        CLI_I64("users", &max_users, 1, INT64_MAX, 0),
    };
    iadsr_model *m = NULL;
    iadsr_dataset *d = NULL;
    iadsr_ctx *ctx = NULL;
    int32_t *ids = NULL, *seq = NULL;
    float *scores = NULL;
    int64_t *offs = NULL, *rows = NULL;
    size_t seq_cap = 0;
    int64_t n_users, chunk;
    int exit_code = CLI_OK;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){recommend_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (load_model_and_data(cmd, model_path, data_path, &m, &d) != CLI_OK)
        return CLI_RUNTIME;
    if (k > iadsr_model_n_items(m)) {
        exit_code = cli_usage_error(cmd, "--k %lld exceeds the model's %ld "
                                         "items",
                                    (long long)k,
                                    (long)iadsr_model_n_items(m));
        goto done;
    }
    rc = iadsr_ctx_create(&ctx, m, NULL);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create context", NULL, rc);
        goto done;
    }
    n_users = iadsr_dataset_n_users(d);
    if (n_users > max_users)
        n_users = max_users;
    /* Keep the per-chunk output buffers below ~64 MiB for huge K. */
    chunk = RECOMMEND_CHUNK;
    while (chunk > 1 && (uint64_t)chunk * (uint64_t)k > (UINT64_C(1) << 23))
        chunk /= 2;
    ids = malloc((size_t)chunk * (size_t)k * sizeof *ids);
    scores = malloc((size_t)chunk * (size_t)k * sizeof *scores);
    offs = malloc(((size_t)chunk + 1) * sizeof *offs);
    rows = malloc((size_t)chunk * sizeof *rows);
    if (!ids || !scores || !offs || !rows) {
        exit_code = cli_error(cmd, "out of memory for K = %lld", (long long)k);
        goto done;
    }
    for (int64_t u0 = 0; u0 < n_users; u0 += chunk) {
        int64_t u1 = u0 + chunk < n_users ? u0 + chunk : n_users;
        int64_t nb = 0; /* non-empty users in this chunk */
        size_t total = 0;
        for (int64_t u = u0; u < u1; u++) {
            int32_t n = 0;
            (void)iadsr_dataset_user_items(d, u, &n);
            total += (size_t)(n > 0 ? n : 0);
        }
        if (total > seq_cap) {
            int32_t *ns = realloc(seq, total * sizeof *seq);
            if (!ns) {
                exit_code = cli_error(cmd, "out of memory");
                goto done;
            }
            seq = ns;
            seq_cap = total;
        }
        offs[0] = 0;
        for (int64_t u = u0; u < u1; u++) {
            int32_t n = 0;
            const int32_t *it = iadsr_dataset_user_items(d, u, &n);
            if (!it || n <= 0)
                continue;
            memcpy(seq + offs[nb], it, (size_t)n * sizeof *seq);
            offs[nb + 1] = offs[nb] + n;
            rows[nb++] = u;
        }
        if (nb > 0) {
            rc = iadsr_ctx_topk_batch(ctx, seq, offs, nb, (int32_t)k,
                                      excl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u,
                                      ids, scores);
            if (rc != IADSR_OK) {
                exit_code = cli_lib_error(cmd, NULL, NULL, rc);
                goto done;
            }
        }
        for (int64_t u = u0, r = 0; u < u1; u++) {
            printf("%lld\t", (long long)iadsr_dataset_user_id(d, u));
            if (r < nb && rows[r] == u) {
                const int32_t *ri = ids + r * k;
                const float *rs = scores + r * k;
                int first = 1;
                for (int64_t j = 0; j < k; j++) {
                    if (ri[j] < 1)
                        continue; /* -1 padding */
                    printf("%s%ld:%.4f", first ? "" : " ", (long)ri[j],
                           (double)rs[j]);
                    first = 0;
                }
                r++;
            }
            putchar('\n');
        }
        if (ferror(stdout))
            break;
    }
    exit_code = cli_finish_stdout(cmd);

done:
    free(ids);
    free(scores);
    free(offs);
    free(rows);
    free(seq);
    iadsr_ctx_free(ctx);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* info                                                                     */
/* ------------------------------------------------------------------------ */

static const char info_help[] =
    "Usage: iadsr info --model MODEL\n"
    "\n"
    "Print a checkpoint's hyper-parameters, parameter count, memory use,\n"
    "epochs trained and best validation NDCG@10.\n";

static const char *backbone_name(int32_t b)
{
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(b);
    return ops ? ops->name : "unknown";
}

static const char *activation_name(int32_t a)
{
    switch (a) {
    case IADSR_ACT_GELU:
        return "gelu";
    case IADSR_ACT_RELU:
        return "relu";
    default:
        return "default";
    }
}

int cmd_info(int argc, char **argv)
{
    static const char *cmd = "info";
    const char *model_path = NULL;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED),
    };
    iadsr_model *m = NULL;
    iadsr_model_params p;
    size_t mem;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){info_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_load_model(cmd, model_path, &m) != CLI_OK)
        return CLI_RUNTIME;
    iadsr_model_params_init(&p);
    rc = iadsr_model_get_params(m, &p);
    if (rc != IADSR_OK) {
        iadsr_model_free(m);
        return cli_lib_error(cmd, NULL, NULL, rc);
    }
    mem = iadsr_model_memory_usage(m);
    printf("model:              %s\n", model_path);
    printf("backbone:           %s\n", backbone_name(p.backbone));
    printf("n_items:            %ld\n", (long)p.n_items);
    printf("dim:                %ld\n", (long)p.dim);
    printf("max_seq_len:        %ld\n", (long)p.max_seq_len);
    /* normalised: 0 for the fields the backbone does not use */
    if (p.n_layers != 0)
        printf("n_layers:           %ld\n", (long)p.n_layers);
    if (p.n_heads != 0)
        printf("n_heads:            %ld\n", (long)p.n_heads);
    if (p.ffn_dim != 0)
        printf("ffn_dim:            %ld\n", (long)p.ffn_dim);
    if (p.activation != IADSR_ACT_DEFAULT)
        printf("activation:         %s\n", activation_name(p.activation));
    if (cli_backbone_takes_flags(p.backbone, IADSR_MODEL_F_PRE_LN))
        printf("blocks:             %s\n",
               (p.flags & IADSR_MODEL_F_PRE_LN) ? "pre-norm" : "post-norm");
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(p.backbone);
    for (int k = 0; ops && k < ops->n_hparams; k++) {
        char label[64];
        snprintf(label, sizeof label, "%s:", ops->hparams[k].field);
        printf("%-20s%ld\n", label,
               (long)iadsr__hparam_get(&p, &ops->hparams[k]));
    }
    printf("dropout:            %g\n", (double)p.dropout);
    printf("seed:               %llu\n", (unsigned long long)p.seed);
    printf("n_params:           %lld\n", (long long)iadsr_model_n_params(m));
    printf("memory:             %zu bytes (%.2f MiB)\n", mem,
           (double)mem / (1024.0 * 1024.0));
    printf("epochs_trained:     %ld\n", (long)m->epochs_trained);
    if (isnan(m->best_valid_ndcg10))
        printf("best_valid_ndcg10:  unknown\n");
    else
        printf("best_valid_ndcg10:  %.6f\n", (double)m->best_valid_ndcg10);
    iadsr_model_free(m);
    return cli_finish_stdout(cmd);
}

/* ------------------------------------------------------------------------ */
/* popularity baseline                                                      */
/* ------------------------------------------------------------------------ */

static const char popularity_help[] =
    "Usage: iadsr popularity --data FILE [--split test|valid]\n"
    "                        [--exclude-history] [--json]\n"
    "\n"
    "Evaluate the popularity baseline: an item's score is its number of\n"
    "occurrences in the training part of all sequences (each sequence\n"
    "without its last two items). Same protocol, metrics and output format\n"
    "as 'iadsr eval' (full ranking, rank = the other items scoring at least\n"
    "as high as the target: ties count against it).\n"
    "\n"
    "Options:\n"
    "  --data FILE         sequence file (required)\n"
    "  --split test|valid  target (default test)\n"
    "  --exclude-history   do not rank items of the user's history\n"
    "  --json              one JSON object on one line (see 'eval --help')\n";

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

static int cmp_i32_asc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Number of entries > c in @p sorted (descending, n entries). */
/* Entries of the descending @p sorted[0..n) that are >= c. */
static int64_t count_at_least(const int64_t *sorted, int64_t n, int64_t c)
{
    int64_t lo = 0, hi = n; /* first index with sorted[i] < c */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] >= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Item counts as parallel arrays sorted by id (only items that occur), so
 * memory follows the number of interactions, not the largest id. */
typedef struct pop_counts {
    int32_t *ids;
    int64_t *counts;
    int64_t n;
} pop_counts;

static int64_t pop_count_of(const pop_counts *pc, int32_t id)
{
    int64_t lo = 0, hi = pc->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (pc->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < pc->n && pc->ids[lo] == id) ? pc->counts[lo] : 0;
}

int cmd_popularity(int argc, char **argv)
{
    static const char *cmd = "popularity";
    const char *data_path = NULL;
    int split = 0, excl = 0, json = 0;
    cli_opt opts[] = {
        CLI_STR("data", &data_path, OPT_REQUIRED),
        CLI_CHOICE("split", &split, split_names),
        CLI_FLAG("exclude-history", &excl),
        CLI_FLAG("json", &json),
    };
    iadsr_dataset *d = NULL;
    pop_counts pc = {NULL, NULL, 0};
    int64_t *sorted = NULL;
    int32_t *hist = NULL;
    int64_t n_users, n_train = 0, evaluated = 0;
    int32_t max_len = 0;
    double hr[3] = {0, 0, 0}, nd[3] = {0, 0, 0};
    static const int64_t ks[3] = {5, 10, 20};
    iadsr_metrics met;
    int exit_code = CLI_OK;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){popularity_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_load_data(cmd, data_path, 0, &d) != CLI_OK)
        return CLI_RUNTIME;
    n_users = iadsr_dataset_n_users(d);
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        (void)iadsr_dataset_user_items(d, u, &n);
        if (n > 2)
            n_train += n - 2;
        if (n > max_len)
            max_len = n;
    }
    /* Training parts (all but the last two items), sorted, run-length
     * encoded into (id, count). */
    pc.ids = malloc((size_t)(n_train > 0 ? n_train : 1) * sizeof *pc.ids);
    pc.counts = malloc((size_t)(n_train > 0 ? n_train : 1) * sizeof *pc.counts);
    sorted = malloc((size_t)(n_train > 0 ? n_train : 1) * sizeof *sorted);
    hist = malloc((size_t)(max_len > 0 ? max_len : 1) * sizeof *hist);
    if (!pc.ids || !pc.counts || !sorted || !hist) {
        exit_code = cli_error(cmd, "out of memory for %lld interactions",
                              (long long)n_train);
        goto done;
    }
    {
        int64_t k = 0, w = 0;
        for (int64_t u = 0; u < n_users; u++) {
            int32_t n = 0;
            const int32_t *it = iadsr_dataset_user_items(d, u, &n);
            for (int32_t j = 0; j + 2 < n; j++)
                pc.ids[k++] = it[j];
        }
        qsort(pc.ids, (size_t)k, sizeof *pc.ids, cmp_i32_asc);
        for (int64_t i = 0; i < k; i++) {
            if (w > 0 && pc.ids[w - 1] == pc.ids[i]) {
                pc.counts[w - 1]++;
            } else {
                pc.ids[w] = pc.ids[i];
                pc.counts[w] = 1;
                w++;
            }
        }
        pc.n = w;
    }
    /* Items with count 0 are not in pc: they tie only with a target of
     * count 0. */
    memcpy(sorted, pc.counts, (size_t)pc.n * sizeof *sorted);
    qsort(sorted, (size_t)pc.n, sizeof *sorted, cmp_i64_desc);

    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(d, u, &n);
        int32_t n_hist = split == 0 ? n - 1 : n - 2;
        int32_t target;
        int64_t rank, ct;
        if (!it || n_hist < 1)
            continue; /* no target: skipped, as iadsr_evaluate does */
        target = it[n_hist];
        ct = pop_count_of(&pc, target);
        /* the other items counted at least as often (ties against the
         * target, as iadsr eval): with count 0, every other item */
        rank = ct > 0 ? count_at_least(sorted, pc.n, ct) - 1
                      : (int64_t)iadsr_dataset_n_items(d) - 1;
        if (excl) {
            /* distinct history items other than the target */
            memcpy(hist, it, (size_t)n_hist * sizeof *hist);
            qsort(hist, (size_t)n_hist, sizeof *hist, cmp_i32_asc);
            for (int32_t j = 0; j < n_hist; j++) {
                if ((j > 0 && hist[j] == hist[j - 1]) || hist[j] == target)
                    continue;
                if (pop_count_of(&pc, hist[j]) >= ct)
                    rank--;
            }
        }
        evaluated++;
        for (int q = 0; q < 3; q++)
            if (rank < ks[q]) {
                hr[q] += 1.0;
                nd[q] += 1.0 / log2((double)rank + 2.0);
            }
    }
    if (evaluated == 0) {
        exit_code = cli_error(cmd, "%s: no user has a %s target (sequences "
                                   "too short)",
                              data_path, split_names[split]);
        goto done;
    }
    memset(&met, 0, sizeof met);
    met.struct_size = (uint32_t)sizeof met;
    met.n_users = evaluated;
    met.hr5 = hr[0] / (double)evaluated;
    met.hr10 = hr[1] / (double)evaluated;
    met.hr20 = hr[2] / (double)evaluated;
    met.ndcg5 = nd[0] / (double)evaluated;
    met.ndcg10 = nd[1] / (double)evaluated;
    met.ndcg20 = nd[2] / (double)evaluated;
    cli_print_metrics(split_names[split], &met, excl, json);
    exit_code = cli_finish_stdout(cmd);

done:
    free(pc.ids);
    free(pc.counts);
    free(sorted);
    free(hist);
    iadsr_dataset_free(d);
    return exit_code;
}
