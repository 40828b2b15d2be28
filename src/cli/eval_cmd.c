/* iadsr command-line tool: `iadsr eval`, `recommend`, `info`, `popularity`.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "cli/dist.h"
#include "cli/vocab.h"

#include "iadsr.h"
#include "backbone/model.h" /* model provenance fields for `info` */
#include "backbone/encoder.h" /* backbone names and hyper-parameters */
#include "common/alloc.h"     /* iadsr__free of the driver's arrays */
#include "common/error.h"     /* iadsr__err: a worker's message */
#include "score/eval.h"       /* the ranking driver, for eval --semantic */

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
    "                  [--k LIST] [--per-user FILE [--vocab VOCAB.tsv]]\n"
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
    "log2(rank + 2), MRR = 1 / (rank + 1) (no cut-off), averaged over\n"
    "users. Item ids in FILE must not exceed the model's n_items.\n"
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
    "                       \"NDCG@20\":..,\"MRR\":..,\"exclude_history\":..}\n"
    "                      with --cold-max also \"cold_max\":N,\n"
    "                      \"n_users_cold\":.. (= users) and\n"
    "                      \"n_users_all\":.. (users with a target in\n"
    "                      FILE)\n"
    "  --k LIST            comma-separated cut-offs, each 1..n_items, at\n"
    "                      most 16 (e.g. 1,5,10,50; default 5,10,20): the\n"
    "                      table and the JSON hold HR@K and NDCG@K for each\n"
    "                      K given, in that order, then MRR:\n"
    "                      {..,\"HR@1\":..,\"NDCG@1\":..,\"MRR\":..,..}\n"
    "  --per-user FILE     write the rank of every evaluated user's target:\n"
    "                      a header line \"user_id<TAB>rank\", then\n"
    "                      \"USER_ID<TAB>RANK\" per user in file order (rank\n"
    "                      1-based: 1 = top), written atomically\n"
    "  --vocab VOCAB.tsv   with --per-user: write the users' external ids\n"
    "                      of the vocabulary of `iadsr import` instead of\n"
    "                      the dense ids; it must name every user of FILE\n";

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
                       cold_view *cv, iadsr_dataset **d, int64_t **ids_out)
{
    iadsr_dataset *ref = NULL, *sub = NULL;
    const iadsr_dataset *src;
    int64_t *counts = NULL, *offs = NULL;
    int32_t *items = NULL;
    int32_t n_items = iadsr_dataset_n_items(*d);
    int64_t n_users = iadsr_dataset_n_users(*d), total = 0, k = 0;
    int exit_code = CLI_RUNTIME;
    int rc;

    *ids_out = NULL;
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
    /* the subset's rows have no user ids of their own (--per-user) */
    *ids_out = malloc((size_t)cv->n_cold * sizeof **ids_out);
    if (!items || !*ids_out) {
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
        (*ids_out)[k] = iadsr_dataset_user_id(*d, u);
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
    if (exit_code != CLI_OK) {
        free(*ids_out);
        *ids_out = NULL;
    }
    free(counts);
    free(offs);
    free(items);
    iadsr_dataset_free(ref);
    return exit_code;
}

/* ---- metrics from the per-user ranks (eval, popularity), --per-user ---- */

#define EVAL_MAX_K 16

/* Parse --k: comma-separated integers >= 1, at most EVAL_MAX_K, no
 * repeats (each names a JSON key). The upper bound, n_items, is checked
 * once the model is loaded. Returns the count, or prints a usage error and
 * returns -1. */
static int parse_k_list(const char *cmd, const char *text, int64_t *ks)
{
    const char *p = text;
    int n = 0;
    for (;;) {
        int64_t v = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            if (v > (INT32_MAX - (*p - '0')) / 10) {
                cli_usage_error(cmd, "--k '%s': a cut-off is too large",
                                text);
                return -1;
            }
            v = v * 10 + (*p - '0');
            p++;
        }
        if (p == start || v < 1 || (*p != ',' && *p != '\0')) {
            cli_usage_error(cmd, "--k '%s': expected comma-separated "
                                 "integers >= 1, e.g. 5,10,20", text);
            return -1;
        }
        if (n == EVAL_MAX_K) {
            cli_usage_error(cmd, "--k '%s': at most %d cut-offs", text,
                            EVAL_MAX_K);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (ks[i] == v) {
                cli_usage_error(cmd, "--k '%s': %lld is given twice", text,
                                (long long)v);
                return -1;
            }
        ks[n++] = v;
        if (*p == '\0')
            return n;
        p++; /* the comma */
    }
}

/* HR@K and NDCG@K for each K and MRR, from 0-based ranks. */
typedef struct rank_metrics {
    int n_k;
    int64_t ks[EVAL_MAX_K];
    double hr[EVAL_MAX_K], nd[EVAL_MAX_K], mrr;
    int64_t n_users;
} rank_metrics;

/* The default cut-offs: K = 5, 10, 20. */
static void rank_metrics_init(rank_metrics *rm)
{
    memset(rm, 0, sizeof *rm);
    rm->n_k = 3;
    rm->ks[0] = 5;
    rm->ks[1] = 10;
    rm->ks[2] = 20;
}

/* Sums in user order, then scaled: by 1/n as the library does (eval: K = 5,
 * 10, 20 give the very numbers of iadsr_evaluate), or, with @p divide,
 * divided by n as popularity always has (its numbers of earlier versions,
 * to the last bit). MRR is scaled the same way. */
static void metrics_from_ranks(const int32_t *ranks, int64_t n, int divide,
                               rank_metrics *rm)
{
    double mrr = 0.0;
    for (int q = 0; q < rm->n_k; q++)
        rm->hr[q] = rm->nd[q] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        for (int q = 0; q < rm->n_k; q++)
            if (ranks[i] < rm->ks[q]) {
                rm->hr[q] += 1.0;
                rm->nd[q] += 1.0 / log2((double)ranks[i] + 2.0);
            }
        mrr += 1.0 / ((double)ranks[i] + 1.0);
    }
    if (divide && n > 0) {
        for (int q = 0; q < rm->n_k; q++) {
            rm->hr[q] /= (double)n;
            rm->nd[q] /= (double)n;
        }
        rm->mrr = mrr / (double)n;
    } else {
        double inv = n > 0 ? 1.0 / (double)n : 0.0;
        for (int q = 0; q < rm->n_k; q++) {
            rm->hr[q] *= inv;
            rm->nd[q] *= inv;
        }
        rm->mrr = mrr * inv;
    }
    rm->n_users = n;
}

/* The output of eval and popularity: the table with one column per K and
 * an MRR line, or the JSON object with HR@K and NDCG@K for each K, then
 * MRR. With the default K = 5, 10, 20 the table and the keys of earlier
 * versions, plus MRR. */
static void print_rank_metrics(const char *split, const rank_metrics *rm,
                               int excl, int json, const cold_view *cv,
                               const char *data_path)
{
    if (json) {
        char key[32];
        printf("{\"split\":\"%s\",\"users\":%lld", split,
               (long long)rm->n_users);
        for (int q = 0; q < rm->n_k; q++) {
            snprintf(key, sizeof key, "HR@%lld", (long long)rm->ks[q]);
            cli_json_double(key, rm->hr[q]);
        }
        for (int q = 0; q < rm->n_k; q++) {
            snprintf(key, sizeof key, "NDCG@%lld", (long long)rm->ks[q]);
            cli_json_double(key, rm->nd[q]);
        }
        cli_json_double("MRR", rm->mrr);
        printf(",\"exclude_history\":%s", excl ? "true" : "false");
        if (cv)
            printf(",\"cold_max\":%lld,\"n_users_cold\":%lld,"
                   "\"n_users_all\":%lld",
                   (long long)cv->max, (long long)cv->n_cold,
                   (long long)cv->n_all);
        printf("}\n");
        return;
    }
    if (cv)
        printf("cold view: %lld of %lld users (%.1f%%), %s target with at "
               "most %lld training interactions in %s\n",
               (long long)cv->n_cold, (long long)cv->n_all,
               100.0 * (double)cv->n_cold / (double)cv->n_all, split,
               (long long)cv->max, cv->ref ? cv->ref : data_path);
    printf("split: %s   users: %lld   exclude_history: %s\n", split,
           (long long)rm->n_users, excl ? "yes" : "no");
    printf("%-6s", "");
    for (int q = 0; q < rm->n_k; q++) {
        char col[32];
        snprintf(col, sizeof col, "@%lld", (long long)rm->ks[q]);
        printf(" %8s", col);
    }
    printf("\n%-6s", "HR");
    for (int q = 0; q < rm->n_k; q++)
        printf(" %8.4f", rm->hr[q]);
    printf("\n%-6s", "NDCG");
    for (int q = 0; q < rm->n_k; q++)
        printf(" %8.4f", rm->nd[q]);
    printf("\n%-6s %8.4f\n", "MRR", rm->mrr);
}

/* --per-user: "user_id<TAB>rank" lines, rank 1-based. */
typedef struct per_user_out {
    const iadsr_dataset *d;
    const int64_t *ids; /* user id per row of d, or NULL: d's own */
    const cli_vocab *voc; /* external user ids (--vocab), or NULL */
    const int64_t *users;
    const int32_t *ranks;
    int64_t n;
} per_user_out;

static void write_per_user(iadsr__atomic_file *f, const void *ctx)
{
    const per_user_out *o = ctx;
    static const char head[] = "user_id\trank\n";
    char buf[4096];
    size_t used = 0;
    if (iadsr__atomic_put(f, head, sizeof head - 1) != 0)
        return;
    for (int64_t i = 0; i < o->n; i++) {
        int64_t id = o->ids ? o->ids[o->users[i]]
                            : iadsr_dataset_user_id(o->d, o->users[i]);
        /* checked by cmd_eval: the vocabulary names every user */
        const char *ext = o->voc ? cli_vocab_user(o->voc, id) : NULL;
        size_t len = ext ? strlen(ext) : 0;
        /* the id, a tab, a number of at most 20 digits, a newline */
        if (used + len + 48 > sizeof buf) {
            if (iadsr__atomic_put(f, buf, used) != 0)
                return;
            used = 0;
        }
        if (len + 48 > sizeof buf) { /* a long id: written directly */
            if (iadsr__atomic_put(f, ext, len) != 0)
                return;
        } else if (ext) {
            memcpy(buf + used, ext, len);
            used += len;
        } else {
            used += cli_put_u64(buf + used, (uint64_t)id);
        }
        buf[used++] = '\t';
        used += cli_put_u64(buf + used, (uint64_t)o->ranks[i] + 1u);
        buf[used++] = '\n';
    }
    (void)iadsr__atomic_put(f, buf, used);
}

/* The ranker of eval --semantic for the library's driver: the public
 * text-only scores, ranked as the library ranks them. */
static int semantic_rank_fn(void *arg, const iadsr_dataset *d,
                            const int64_t *users, int64_t begin, int64_t end,
                            int cut, uint32_t flags, int32_t *ranks)
{
    const iadsr_semantic *sem = arg;
    int32_t N = iadsr_semantic_n_items(sem);
    float *sc = malloc(((size_t)N + 1) * sizeof *sc);
    int rc = IADSR_OK;
    if (!sc) /* the driver reports this thread's last error */
        return iadsr__err(IADSR_ERR_NOMEM, "eval: out of memory for %ld "
                                           "scores", (long)N + 1);
    for (int64_t i = begin; i < end && rc == IADSR_OK; i++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, users[i], &n);
        int32_t h = n - cut; /* history length, >= 1 */
        rc = iadsr_semantic_scores(sem, s, h, sc, (int64_t)N + 1);
        if (rc == IADSR_OK)
            ranks[i] = iadsr__target_rank(sc, N, s, h, s[h], flags);
    }
    free(sc);
    return rc;
}

/* The per-user ranks of the model (or, when @p sem, of the text-only
 * recommender) into malloc'd *users / *ranks. Returns the library status
 * (last error set). */
static int eval_ranks(const iadsr_model *m, const iadsr_semantic *sem,
                      const iadsr_dataset *d, const iadsr_eval_params *ep,
                      int64_t **users, int32_t **ranks, int64_t *n)
{
    int rc;
    *users = NULL;
    *ranks = NULL;
    *n = 0;
    if (sem) {
        int64_t *u = NULL;
        int32_t *r = NULL;
        rc = iadsr__rank_users(d, ep->target == IADSR_EVAL_VALID ? 2 : 1,
                               ep->flags, ep->n_threads, semantic_rank_fn,
                               (void *)(uintptr_t)sem, "semantic_evaluate",
                               &u, &r, n);
        if (rc == IADSR_OK) {
            *users = malloc((size_t)*n * sizeof **users);
            *ranks = malloc((size_t)*n * sizeof **ranks);
            if (*users && *ranks) {
                memcpy(*users, u, (size_t)*n * sizeof **users);
                memcpy(*ranks, r, (size_t)*n * sizeof **ranks);
            } else {
                rc = IADSR_ERR_NOMEM;
            }
        }
        iadsr__free(u);
        iadsr__free(r);
    } else {
        int64_t need = 0;
        rc = iadsr_evaluate_ranks(m, d, ep, NULL, NULL, 0, &need);
        if (rc != IADSR_OK)
            return rc;
        *users = malloc((size_t)need * sizeof **users);
        *ranks = malloc((size_t)need * sizeof **ranks);
        rc = *users && *ranks
                 ? iadsr_evaluate_ranks(m, d, ep, *users, *ranks, need, n)
                 : IADSR_ERR_NOMEM;
    }
    if (rc != IADSR_OK) {
        free(*users);
        free(*ranks);
        *users = NULL;
        *ranks = NULL;
        *n = 0;
    }
    return rc;
}

/* eval and recommend --vocab: every user of @p d must have an external
 * id. Prints the error naming the first one missing and returns
 * CLI_RUNTIME, else CLI_OK. */
static int check_vocab_users(const char *cmd, const cli_vocab *voc,
                             const char *vocab_path, const iadsr_dataset *d,
                             const char *data_path)
{
    for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
        int64_t uid = iadsr_dataset_user_id(d, u);
        if (!cli_vocab_user(voc, uid))
            return cli_error(cmd, "%s: no user id %lld (a user of %s)",
                             vocab_path, (long long)uid, data_path);
    }
    return CLI_OK;
}

int cmd_eval(int argc, char **argv)
{
    static const char *cmd = "eval";
    const char *model_path = NULL, *data_path = NULL, *cold_ref = NULL;
    const char *k_list = NULL, *per_user = NULL, *vocab_path = NULL;
    cli_semantic_in si;
    int split = 0, excl = 0, json = 0;
    int64_t threads = 1, cold_max = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_IN_FILE),
        CLI_SEMANTIC_OPTS(si, 0),
        CLI_STR("data", &data_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_CHOICE("split", &split, split_names),
        CLI_FLAG("exclude-history", &excl),
        CLI_I64("threads", &threads, 1, 256, 0),
        CLI_I64("cold-max", &cold_max, 0, INT64_MAX, 0),
        CLI_STR("cold-ref", &cold_ref, OPT_IN_FILE),
        CLI_FLAG("json", &json),
        CLI_STR("k", &k_list, 0),
        CLI_STR("per-user", &per_user, OPT_OUT_FILE),
        CLI_STR("vocab", &vocab_path, OPT_IN_FILE),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_model *m = NULL;
    iadsr_dataset *d = NULL;
    cli_vocab *voc = NULL;
    iadsr_eval_params ep;
    cold_view cv = {0, NULL, 0, 0};
    rank_metrics rm;
    int64_t *cold_ids = NULL, *users = NULL, n_ranked = 0;
    int32_t *ranks = NULL, n_items;
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
    if (vocab_path && !per_user)
        return cli_usage_error(cmd, "--vocab needs --per-user (it names "
                                    "the users of that file)");
    cv.max = cold_max;
    cv.ref = cold_ref;
    rank_metrics_init(&rm);
    if (k_list && (rm.n_k = parse_k_list(cmd, k_list, rm.ks)) < 0)
        return CLI_USAGE;
    if (per_user && cli_check_out_path(cmd, per_user) != CLI_OK)
        return CLI_RUNTIME;
    iadsr_eval_params_init(&ep);
    ep.target = split == 0 ? IADSR_EVAL_TEST : IADSR_EVAL_VALID;
    ep.n_threads = (int32_t)threads;
    ep.flags = excl ? IADSR_TOPK_EXCLUDE_HISTORY : 0u;
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
    n_items = si.items ? iadsr_semantic_n_items(si.items)
                       : iadsr_model_n_items(m);
    for (int q = 0; k_list && q < rm.n_k; q++)
        if (rm.ks[q] > n_items) {
            exit_code = cli_usage_error(cmd, "--k %lld exceeds the %s's %ld "
                                             "items",
                                        (long long)rm.ks[q],
                                        si.items ? "matrix" : "model",
                                        (long)n_items);
            goto done;
        }
    if (vocab_path) {
        /* before the ranking: a gap is found in no time */
        exit_code = cli_vocab_load(cmd, vocab_path, &voc);
        if (exit_code == CLI_OK)
            exit_code = check_vocab_users(cmd, voc, vocab_path, d, data_path);
        if (exit_code != CLI_OK)
            goto done;
    }
    if (cold) {
        exit_code = cold_select(cmd, data_path, split, &cv, &d, &cold_ids);
        if (exit_code != CLI_OK)
            goto done;
    }
    /* Every output comes from the per-user ranks: HR and NDCG at 5, 10,
     * 20 are the numbers of iadsr_evaluate / iadsr_semantic_evaluate (the
     * same ranks, summed and scaled as the library does), and MRR comes
     * with them. */
    iadsr_clear_error(); /* a NOMEM of eval_ranks sets no message */
    rc = eval_ranks(m, si.items, d, &ep, &users, &ranks, &n_ranked);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, NULL, NULL, rc);
        goto done;
    }
    if (per_user) {
        per_user_out po = {d, cold_ids, voc, users, ranks, n_ranked};
        exit_code = cli_write_atomic(cmd, per_user, write_per_user, &po);
        if (exit_code != CLI_OK)
            goto done;
    }
    metrics_from_ranks(ranks, n_ranked, 0, &rm);
    print_rank_metrics(split_names[split], &rm, excl, json,
                       cold ? &cv : NULL, data_path);
    exit_code = cli_finish_stdout(cmd);

done:
    free(users);
    free(ranks);
    free(cold_ids);
    cli_vocab_free(voc);
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
    "                       [--exclude-history | --include-history]\n"
    "                       [--users N] [--json] [--vocab VOCAB.tsv]\n"
    "\n"
    "For every user of FILE (in file order), print the K best next items\n"
    "after the user's whole sequence, best first:\n"
    "  user_id<TAB>item:score item:score ...\n"
    "Fewer than K items are printed only when the user's history is\n"
    "excluded and leaves fewer candidates.\n"
    "\n"
    "A model trained with 'iadsr train --vocab' carries its items' external\n"
    "ids: they are printed instead of the dense ids (JSON strings with\n"
    "--json; in the plain output the fields separated by tabs, as below),\n"
    "no --vocab needed.\n"
    "\n"
    "History: by default each user's own items are excluded from the top-K\n"
    "when the model records that no training sequence repeated an item\n"
    "(purchases of distinct products, say), and kept otherwise (the data\n"
    "repeats items, or the model does not say: trained before this record\n"
    "existed). Standard error says which rule applied and why.\n"
    "\n"
    "Options:\n"
    "  --model MODEL       checkpoint (required)\n"
    "  --data FILE         sequence file (required)\n"
    "  --k K               items per user, 1..n_items (required)\n"
    "  --exclude-history   never recommend an item of the user's sequence\n"
    "  --include-history   recommend them too (no filtering)\n"
    "  --users N           only the first N users\n"
    "  --json              one JSON object per user and line instead:\n"
    "                      {\"user\":USER_ID,\"items\":[..],\"scores\":[..]}\n"
    "                      best first (empty lists for a user without\n"
    "                      items)\n"
    "  --vocab VOCAB.tsv   print the external ids of the vocabulary of\n"
    "                      `iadsr import` instead of the dense ids: JSON\n"
    "                      strings with --json; in the plain output the\n"
    "                      ids as they are and the fields separated by\n"
    "                      tabs (an id may hold spaces or ':'):\n"
    "                        user<TAB>item:score<TAB>item:score ...\n"
    "                      split each item:score at its last ':'. It must\n"
    "                      name every user of FILE, and every item of the\n"
    "                      model unless the model carries item ids (where\n"
    "                      both name an item, they must agree)\n"
    "  --distributed       split the users over MPI ranks: 'mpirun -np N\n"
    "                      iadsr-mpi recommend ... --distributed' ('make\n"
    "                      MPI=1'); each rank scores a contiguous block of\n"
    "                      users and rank 0 prints all of them, the same\n"
    "                      bytes as one process prints\n";

#define RECOMMEND_CHUNK 256

/* Where recommend's printed ids come from: the vocabulary (users, and
 * items unless the model has ids) and the model's own item ids. */
typedef struct rec_names {
    const cli_vocab *voc;   /* NULL: dense user ids */
    const iadsr_model *m;   /* its item ids, when it has them */
    int model_ids;
} rec_names;

/* The external id of item @p id, or NULL for the dense one. */
static const char *rec_item(const rec_names *nm, int32_t id)
{
    if (nm->model_ids)
        return iadsr_model_item_id(nm->m, id);
    return nm->voc ? cli_vocab_item(nm->voc, id) : NULL;
}

/* recommend --json: {"user":ID,"items":[..],"scores":[..]} on one line;
 * @p ids / @p sc are NULL for a user without items. The -1 padding of
 * an excluded history is left out, as in the plain output. External ids
 * (checked to be there by cmd_recommend) are JSON strings. */
static void print_recommend_json(FILE *out, int64_t user,
                                 const int32_t *ids, const float *sc,
                                 int64_t k, const rec_names *nm)
{
    int first = 1;
    if (nm->voc) {
        fputs("{\"user\":", out);
        cli_json_string(out, cli_vocab_user(nm->voc, user));
        fputs(",\"items\":[", out);
    } else {
        fprintf(out, "{\"user\":%lld,\"items\":[", (long long)user);
    }
    for (int64_t j = 0; ids && j < k; j++) {
        if (ids[j] < 1)
            continue;
        if (rec_item(nm, ids[j])) {
            if (!first)
                fputc(',', out);
            cli_json_string(out, rec_item(nm, ids[j]));
        } else {
            fprintf(out, "%s%ld", first ? "" : ",", (long)ids[j]);
        }
        first = 0;
    }
    fprintf(out, "],\"scores\":[");
    first = 1;
    for (int64_t j = 0; ids && j < k; j++) {
        if (ids[j] < 1)
            continue;
        if (isfinite(sc[j]))
            fprintf(out, "%s%.9g", first ? "" : ",", (double)sc[j]);
        else
            fprintf(out, "%snull", first ? "" : ",");
        first = 0;
    }
    fprintf(out, "]}\n");
}

int cmd_recommend(int argc, char **argv)
{
    static const char *cmd = "recommend";
    const char *model_path = NULL, *data_path = NULL, *vocab_path = NULL;
    int64_t k = 0, max_users = INT64_MAX;
    int excl = 0, incl = 0, json = 0, distributed = 0, synced = 0;
    FILE *out = stdout;
    char *mem = NULL, *all = NULL;
    size_t mem_len = 0, all_len = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED),
        CLI_STR("data", &data_path, OPT_REQUIRED),
        CLI_I64("k", &k, 1, INT32_MAX, OPT_REQUIRED),
        CLI_FLAG("exclude-history", &excl),
        CLI_FLAG("include-history", &incl),
        CLI_I64("users", &max_users, 1, INT64_MAX, 0),
        CLI_FLAG("json", &json),
        CLI_STR("vocab", &vocab_path, OPT_IN_FILE),
        CLI_FLAG("distributed", &distributed),
    };
    cli_vocab *voc = NULL;
    rec_names nm = {NULL, NULL, 0};
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
    if (excl && incl)
        return cli_usage_error(cmd, "--exclude-history and --include-history "
                                    "exclude each other");
    if (distributed && !cli_dist_available())
        return cli_usage_error(cmd, "--distributed needs the MPI build: "
                                    "'make MPI=1', then 'mpirun -np N "
                                    "bin/iadsr-mpi recommend ... "
                                    "--distributed'");
    if (load_model_and_data(cmd, model_path, data_path, &m, &d) != CLI_OK) {
        exit_code = CLI_RUNTIME;
        goto done;
    }
    nm.m = m;
    nm.model_ids = iadsr_model_item_id(m, 1) != NULL;
    if (k > iadsr_model_n_items(m)) {
        exit_code = cli_usage_error(cmd, "--k %lld exceeds the model's %ld "
                                         "items",
                                    (long long)k,
                                    (long)iadsr_model_n_items(m));
        goto done;
    }
    if (vocab_path) {
        int64_t miss;
        if (cli_vocab_load(cmd, vocab_path, &voc) != CLI_OK) {
            exit_code = CLI_RUNTIME;
            goto done;
        }
        /* Check up front: a gap found mid-output would leave a
         * half-written listing. */
        miss = nm.model_ids ? 0
                            : cli_vocab_first_missing_item(
                                  voc, iadsr_model_n_items(m));
        for (int32_t it = 1; nm.model_ids && it <= iadsr_model_n_items(m);
             it++) {
            const char *v = cli_vocab_item(voc, it);
            if (v && strcmp(v, iadsr_model_item_id(m, it)) != 0) {
                exit_code = cli_error(cmd, "%s: item %ld is '%s' but the "
                                           "model %s calls it '%s' (a "
                                           "vocabulary of other data?)",
                                      vocab_path, (long)it, v, model_path,
                                      iadsr_model_item_id(m, it));
                goto done;
            }
        }
        if (miss) {
            exit_code = cli_error(cmd, "%s: no item id %lld (the vocabulary "
                                       "must name the model's items 1..%ld)",
                                  vocab_path, (long long)miss,
                                  (long)iadsr_model_n_items(m));
            goto done;
        }
        exit_code = check_vocab_users(cmd, voc, vocab_path, d, data_path);
        if (exit_code != CLI_OK)
            goto done;
    }
    nm.voc = voc;
    if (!excl && !incl) {
        /* the default: the model's history-repeat record decides */
        int32_t rep = iadsr_model_history_repeats(m);
        excl = rep == 0;
        const char *why =
            rep == 0   ? "no training sequence of the model repeated an item"
            : rep == 1 ? "training sequences of the model repeated items"
                       : "the model does not record whether its training "
                         "data repeated items";
        if (!distributed || cli_dist_rank() == 0) /* said once */
            fprintf(stderr, "iadsr: %s: %s each user's history (%s; "
                            "--%s-history to choose)\n",
                    cmd, excl ? "excluding" : "including", why,
                    excl ? "include" : "exclude");
    }
    rc = iadsr_ctx_create(&ctx, m, NULL);
    if (rc != IADSR_OK) {
        exit_code = cli_lib_error(cmd, "cannot create context", NULL, rc);
        goto done;
    }
    n_users = iadsr_dataset_n_users(d);
    if (n_users > max_users)
        n_users = max_users;
    /* distributed: this rank's block of users, printed into memory and
     * sent to rank 0, which prints the blocks in rank order */
    int64_t u_begin = 0, u_end = n_users;
    if (distributed) {
        cli_dist_block(n_users, &u_begin, &u_end);
        out = open_memstream(&mem, &mem_len);
        if (!out) {
            out = stdout;
            exit_code = cli_error(cmd, "out of memory");
            goto done;
        }
    }
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
    for (int64_t u0 = u_begin; u0 < u_end; u0 += chunk) {
        int64_t u1 = u0 + chunk < u_end ? u0 + chunk : u_end;
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
            if (json) {
                const int32_t *ri = NULL;
                const float *rs = NULL;
                if (r < nb && rows[r] == u) {
                    ri = ids + r * k;
                    rs = scores + r * k;
                    r++;
                }
                print_recommend_json(out, iadsr_dataset_user_id(d, u), ri,
                                     rs, k, &nm);
                continue;
            }
            if (voc)
                fprintf(out, "%s\t",
                       cli_vocab_user(voc, iadsr_dataset_user_id(d, u)));
            else
                fprintf(out, "%lld\t", (long long)iadsr_dataset_user_id(d, u));
            if (r < nb && rows[r] == u) {
                const int32_t *ri = ids + r * k;
                const float *rs = scores + r * k;
                int first = 1;
                for (int64_t j = 0; j < k; j++) {
                    if (ri[j] < 1)
                        continue; /* -1 padding */
                    if (rec_item(&nm, ri[j])) /* tabs: an id may hold spaces */
                        fprintf(out, "%s%s:%.4f", first ? "" : "\t",
                               rec_item(&nm, ri[j]), (double)rs[j]);
                    else
                        fprintf(out, "%s%ld:%.4f", first ? "" : " ", (long)ri[j],
                               (double)rs[j]);
                    first = 0;
                }
                r++;
            }
            fputc('\n', out);
        }
        if (ferror(out))
            break;
    }
    if (distributed) {
        int failed = fclose(out) != 0;
        out = stdout;
        synced = 1;
        if (cli_dist_any(failed)) {
            exit_code = cli_error(cmd, "%s", failed ? "out of memory for the "
                                                      "output"
                                                    : "another rank failed");
            goto done;
        }
        if (cli_dist_gather(mem, mem_len, &all, &all_len) != 0) {
            exit_code = cli_error(cmd, "cannot gather the ranks' output "
                                       "(out of memory, or a part over "
                                       "2 GiB)");
            goto done;
        }
        if (all_len > 0)
            fwrite(all, 1, all_len, stdout);
    }
    exit_code = cli_finish_stdout(cmd);

done:
    if (distributed && !synced)
        (void)cli_dist_any(1); /* the others wait before the gather */
    if (out != stdout)
        fclose(out);
    free(mem);
    free(all);
    free(ids);
    free(scores);
    free(offs);
    free(rows);
    free(seq);
    iadsr_ctx_free(ctx);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
    cli_vocab_free(voc);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* info                                                                     */
/* ------------------------------------------------------------------------ */

static const char info_help[] =
    "Usage: iadsr info --model MODEL [--json]\n"
    "\n"
    "Print a checkpoint's hyper-parameters, parameter count, memory use,\n"
    "epochs trained, best validation NDCG@10, whether its items carry\n"
    "external ids (train --vocab: their count and the first few) and\n"
    "whether its training sequences repeated an item (yes, no or unknown;\n"
    "recommend's default history rule follows it).\n"
    "\n"
    "Options:\n"
    "  --model MODEL  checkpoint (required)\n"
    "  --json         exactly one JSON object on one line instead: the\n"
    "                 fields above (best_valid_ndcg10 null when unknown,\n"
    "                 memory_bytes), \"aligner\":true|false and\n"
    "                 \"gate\":true|false; with a gate also gate_theta,\n"
    "                 gate_max_drop, gate_protect_last and gate_flags;\n"
    "                 \"item_ids\":N (0 without ids), \"item_ids_first\":\n"
    "                 [..] (up to 5 strings) and \"history_repeats\":\n"
    "                 true|false|null (null: unknown)\n";

/* The first ids info shows. */
#define INFO_IDS_SHOWN 5

/* Items with an external id: n_items, or 0 without ids. */
static int32_t n_item_ids(const iadsr_model *m)
{
    return iadsr_model_item_id(m, 1) ? iadsr_model_n_items(m) : 0;
}

/* info (text): the item ids and the history-repeat record. */
static void info_ids_text(const iadsr_model *m)
{
    int32_t n = n_item_ids(m), rep = iadsr_model_history_repeats(m);
    if (n == 0) {
        printf("item_ids:           none\n");
    } else {
        printf("item_ids:           %ld (", (long)n);
        for (int32_t i = 1; i <= n && i <= INFO_IDS_SHOWN; i++) {
            /* one line: control bytes shown as '?' */
            const char *id = iadsr_model_item_id(m, i);
            if (i > 1)
                fputs(", ", stdout);
            for (const char *c = id; *c; c++)
                putchar((unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c);
        }
        printf("%s)\n", n > INFO_IDS_SHOWN ? ", ..." : "");
    }
    printf("history_repeats:    %s\n",
           rep == 1 ? "yes" : rep == 0 ? "no" : "unknown");
}

/* info --json: the same members. */
static void info_ids_json(const iadsr_model *m)
{
    int32_t n = n_item_ids(m), rep = iadsr_model_history_repeats(m);
    printf(",\"item_ids\":%ld,\"item_ids_first\":[", (long)n);
    for (int32_t i = 1; i <= n && i <= INFO_IDS_SHOWN; i++) {
        if (i > 1)
            putchar(',');
        cli_json_string(stdout, iadsr_model_item_id(m, i));
    }
    printf("],\"history_repeats\":%s",
           rep == 1 ? "true" : rep == 0 ? "false" : "null");
}

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

/* A JSON string member ,"KEY":"V" (escaped by cli_json_string). */
static void json_str(const char *key, const char *v, int first)
{
    printf("%s\"%s\":", first ? "" : ",", key);
    cli_json_string(stdout, v);
}

/* info --json: the checkpoint with its aligner and gate, if any. */
static int info_json(const char *cmd, const char *path)
{
    cli_checkpoint ck = {NULL, NULL, NULL};
    iadsr_model_params p;
    iadsr_denoise_params gp;
    int rc = iadsr_checkpoint_load(&ck.model, &ck.aligner, &ck.gate, path, 0);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot load model", path, rc);
    iadsr_model_params_init(&p);
    rc = iadsr_model_get_params(ck.model, &p);
    if (rc == IADSR_OK && ck.gate) {
        iadsr_denoise_params_init(&gp);
        rc = iadsr_gate_get_params(ck.gate, &gp);
    }
    if (rc != IADSR_OK) {
        cli_checkpoint_free(&ck);
        return cli_lib_error(cmd, NULL, NULL, rc);
    }
    const iadsr_model *m = ck.model;
    putchar('{');
    json_str("model", path, 1);
    json_str("backbone", backbone_name(p.backbone), 0);
    printf(",\"n_items\":%ld,\"dim\":%ld,\"max_seq_len\":%ld",
           (long)p.n_items, (long)p.dim, (long)p.max_seq_len);
    /* as in the text: only the fields the backbone uses */
    if (p.n_layers != 0)
        printf(",\"n_layers\":%ld", (long)p.n_layers);
    if (p.n_heads != 0)
        printf(",\"n_heads\":%ld", (long)p.n_heads);
    if (p.ffn_dim != 0)
        printf(",\"ffn_dim\":%ld", (long)p.ffn_dim);
    if (p.activation != IADSR_ACT_DEFAULT)
        json_str("activation", activation_name(p.activation), 0);
    if (cli_backbone_takes_flags(p.backbone, IADSR_MODEL_F_PRE_LN))
        json_str("blocks",
                 (p.flags & IADSR_MODEL_F_PRE_LN) ? "pre-norm" : "post-norm",
                 0);
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(p.backbone);
    for (int k = 0; ops && k < ops->n_hparams; k++)
        printf(",\"%s\":%ld", ops->hparams[k].field,
               (long)iadsr__hparam_get(&p, &ops->hparams[k]));
    printf(",\"dropout\":%g,\"seed\":%llu,\"n_params\":%lld,"
           "\"memory_bytes\":%zu,\"epochs_trained\":%ld",
           (double)p.dropout, (unsigned long long)p.seed,
           (long long)iadsr_model_n_params(m), iadsr_model_memory_usage(m),
           (long)m->epochs_trained);
    if (isfinite(m->best_valid_ndcg10))
        printf(",\"best_valid_ndcg10\":%.6f", (double)m->best_valid_ndcg10);
    else
        printf(",\"best_valid_ndcg10\":null");
    printf(",\"aligner\":%s", ck.aligner ? "true" : "false");
    if (ck.aligner)
        printf(",\"aligner_semantic_dim\":%ld",
               (long)iadsr_aligner_semantic_dim(ck.aligner));
    printf(",\"gate\":%s", ck.gate ? "true" : "false");
    if (ck.gate)
        printf(",\"gate_theta\":%.6g,\"gate_max_drop\":%.6g,"
               "\"gate_protect_last\":%s,\"gate_flags\":%lu",
               (double)gp.theta, (double)gp.max_drop,
               gp.protect_last ? "true" : "false", (unsigned long)gp.flags);
    info_ids_json(m);
    printf("}\n");
    cli_checkpoint_free(&ck);
    return cli_finish_stdout(cmd);
}

int cmd_info(int argc, char **argv)
{
    static const char *cmd = "info";
    const char *model_path = NULL;
    int json = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED),
        CLI_FLAG("json", &json),
    };
    iadsr_model *m = NULL;
    iadsr_model_params p;
    size_t mem;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){info_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (json)
        return info_json(cmd, model_path);
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
    info_ids_text(m);
    iadsr_model_free(m);
    return cli_finish_stdout(cmd);
}

/* ------------------------------------------------------------------------ */
/* popularity baseline                                                      */
/* ------------------------------------------------------------------------ */

static const char popularity_help[] =
    "Usage: iadsr popularity --data FILE [--split test|valid]\n"
    "                        [--exclude-history] [--k LIST] [--json]\n"
    "\n"
    "Evaluate the popularity baseline: an item's score is its number of\n"
    "occurrences in the training part of all sequences (each sequence\n"
    "without its last two items). Same protocol, metrics (HR@K, NDCG@K,\n"
    "MRR) and output format as 'iadsr eval' (full ranking, rank = the other\n"
    "items scoring at least as high as the target: ties count against it).\n"
    "\n"
    "Options:\n"
    "  --data FILE         sequence file (required)\n"
    "  --split test|valid  target (default test)\n"
    "  --exclude-history   do not rank items of the user's history\n"
    "  --k LIST            comma-separated cut-offs, each 1..n_items (the\n"
    "                      largest item id of FILE), at most 16 (default\n"
    "                      5,10,20)\n"
    "  --json              one JSON object on one line, the keys of 'eval\n"
    "                      --json': {\"split\":..,\"users\":..,\"HR@5\":..,..,\n"
    "                       \"NDCG@20\":..,\"MRR\":..,\"exclude_history\":..}\n";

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
    const char *data_path = NULL, *k_list = NULL;
    int split = 0, excl = 0, json = 0;
    cli_opt opts[] = {
        CLI_STR("data", &data_path, OPT_REQUIRED),
        CLI_CHOICE("split", &split, split_names),
        CLI_FLAG("exclude-history", &excl),
        CLI_STR("k", &k_list, 0),
        CLI_FLAG("json", &json),
    };
    iadsr_dataset *d = NULL;
    pop_counts pc = {NULL, NULL, 0};
    int64_t *sorted = NULL;
    int32_t *hist = NULL, *ranks = NULL;
    int64_t n_users, n_train = 0, evaluated = 0;
    int32_t max_len = 0;
    rank_metrics rm;
    int exit_code = CLI_OK;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){popularity_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    rank_metrics_init(&rm);
    if (k_list && (rm.n_k = parse_k_list(cmd, k_list, rm.ks)) < 0)
        return CLI_USAGE;
    if (cli_load_data(cmd, data_path, 0, &d) != CLI_OK)
        return CLI_RUNTIME;
    for (int q = 0; k_list && q < rm.n_k; q++)
        if (rm.ks[q] > iadsr_dataset_n_items(d)) {
            exit_code = cli_usage_error(cmd, "--k %lld exceeds the %ld items "
                                             "of %s",
                                        (long long)rm.ks[q],
                                        (long)iadsr_dataset_n_items(d),
                                        data_path);
            goto done;
        }
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
    ranks = malloc((size_t)(n_users > 0 ? n_users : 1) * sizeof *ranks);
    if (!pc.ids || !pc.counts || !sorted || !hist || !ranks) {
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
        ranks[evaluated++] = (int32_t)rank; /* < n_items */
    }
    if (evaluated == 0) {
        exit_code = cli_error(cmd, "%s: no user has a %s target (sequences "
                                   "too short)",
                              data_path, split_names[split]);
        goto done;
    }
    /* divided by the user count: the numbers of earlier versions */
    metrics_from_ranks(ranks, evaluated, 1, &rm);
    print_rank_metrics(split_names[split], &rm, excl, json, NULL, data_path);
    exit_code = cli_finish_stdout(cmd);

done:
    free(ranks);
    free(pc.ids);
    free(pc.counts);
    free(sorted);
    free(hist);
    iadsr_dataset_free(d);
    return exit_code;
}
