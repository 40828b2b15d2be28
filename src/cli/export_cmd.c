/* iadsr command-line tool: `iadsr export` (the item table and user vectors
 * as .npy, for serving with an ANN index or another runtime).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const export_split_names[] = {"loo", "none", NULL};

/* The formula, as iadsr_ctx_user_vector() documents it; also in --json. */
#define EXPORT_FORMULA                                                       \
    "score(u, i) = dot(USERS[u], ITEMS[i]) for i = 1..n_items (no bias, no " \
    "normalisation); row 0 of ITEMS is padding, never a candidate"

static const char export_help[] =
    "Usage: iadsr export --model MODEL --items-out ITEMS.npy\n"
    "                    [--data FILE --users-out USERS.npy] [--split loo|none]\n"
    "                    [--json]\n"
    "\n"
    "Write what another runtime needs to serve the model's recommendations:\n"
    "the item table as an (n_items + 1) x d float32 .npy whose row i is item\n"
    "i (row 0: padding, zeros; the layout of embed-text), and, with --data,\n"
    "one user vector per user of FILE (in file order) as an n_users x d\n"
    "float32 .npy. The model's next-item scores are exactly the dot\n"
    "products, with no bias term:\n"
    "\n"
    "  score(u, i) = USERS[u] . ITEMS[i]    (i = 1..n_items)\n"
    "\n"
    "so USERS @ ITEMS.T gives the model's scores after each user's history\n"
    "(up to float rounding; with --split none those of 'iadsr recommend'),\n"
    "and a maximum-inner-product index over ITEMS[1:] serves them. Both\n"
    "files are written atomically; a summary goes to standard error.\n"
    "\n"
    "Options:\n"
    "  --model MODEL         checkpoint (required)\n"
    "  --items-out FILE      .npy of the item table (required)\n"
    "  --data FILE           sequence file whose users get a vector\n"
    "  --users-out FILE      .npy of the user vectors (required with --data)\n"
    "  --split loo|none      the history a user vector encodes: loo (default)\n"
    "                        all but the last item, the history 'eval' uses to\n"
    "                        predict the test item; none: the whole sequence,\n"
    "                        as 'recommend' uses. A user without a history\n"
    "                        (fewer than 2 items with loo, none with none)\n"
    "                        gets a zero row (all scores 0)\n"
    "  --json                print exactly one JSON object on one line:\n"
    "                        {\"model\":..,\"items_out\":..,\"items_rows\":..,\n"
    "                        \"dim\":..,\"users_out\":..|null,\"users_rows\":..,\n"
    "                        \"split\":..,\"users_without_history\":..,\n"
    "                        \"formula\":\"score(u, i) = dot(USERS[u], "
    "ITEMS[i]) ...\"}\n";

/* Users encoded per library call (their histories are copied into one
 * CSR buffer first). */
#define EXPORT_CHUNK 1024

/* The history of user @p u under @p split (1 = none): its items and their
 * number (0 when there is none). */
static const int32_t *user_history(const iadsr_dataset *d, int64_t u,
                                   int split, int32_t *n)
{
    int32_t len = 0;
    const int32_t *it = iadsr_dataset_user_items(d, u, &len);
    if (!it || len < 1) {
        *n = 0;
        return NULL;
    }
    *n = split == 1 ? len : len - 1;
    return *n > 0 ? it : NULL;
}

/* Fill @p out (n_users x d, zeroed) with the user vectors of @p d.
 * Returns CLI_OK, or prints the error and returns CLI_RUNTIME. */
static int user_vectors(const char *cmd, iadsr_ctx *ctx,
                        const iadsr_dataset *d, int split, int32_t dim,
                        float *out, int64_t *n_empty)
{
    int64_t n_users = iadsr_dataset_n_users(d);
    int32_t *seq = NULL;
    int64_t *offs = malloc((EXPORT_CHUNK + 1) * sizeof *offs);
    int64_t *rows = malloc(EXPORT_CHUNK * sizeof *rows);
    float *vec = malloc((size_t)EXPORT_CHUNK * (size_t)dim * sizeof *vec);
    size_t seq_cap = 0;
    int exit_code = CLI_RUNTIME;

    *n_empty = 0;
    if (!offs || !rows || !vec) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    for (int64_t u0 = 0; u0 < n_users; u0 += EXPORT_CHUNK) {
        int64_t u1 = u0 + EXPORT_CHUNK < n_users ? u0 + EXPORT_CHUNK : n_users;
        size_t total = 0;
        int64_t nb = 0; /* users of the chunk with a history */
        for (int64_t u = u0; u < u1; u++) {
            int32_t n;
            (void)user_history(d, u, split, &n);
            total += (size_t)n;
        }
        if (total > seq_cap) {
            int32_t *ns = realloc(seq, total * sizeof *seq);
            if (!ns) {
                cli_error(cmd, "out of memory");
                goto done;
            }
            seq = ns;
            seq_cap = total;
        }
        offs[0] = 0;
        for (int64_t u = u0; u < u1; u++) {
            int32_t n;
            const int32_t *h = user_history(d, u, split, &n);
            if (!h) {
                ++*n_empty; /* its row stays zero */
                continue;
            }
            memcpy(seq + offs[nb], h, (size_t)n * sizeof *seq);
            offs[nb + 1] = offs[nb] + n;
            rows[nb++] = u;
        }
        if (nb == 0)
            continue;
        int rc = iadsr_ctx_user_vector_batch(ctx, seq, offs, nb, vec);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, NULL, NULL, rc);
            goto done;
        }
        for (int64_t r = 0; r < nb; r++)
            memcpy(out + (size_t)rows[r] * (size_t)dim,
                   vec + (size_t)r * (size_t)dim, (size_t)dim * sizeof *vec);
    }
    exit_code = CLI_OK;

done:
    free(seq);
    free(offs);
    free(rows);
    free(vec);
    return exit_code;
}

int cmd_export(int argc, char **argv)
{
    static const char *cmd = "export";
    const char *model_path = NULL, *items_out = NULL, *data_path = NULL;
    const char *users_out = NULL;
    int split = 0, json = 0;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("items-out", &items_out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_STR("data", &data_path, OPT_IN_FILE),
        CLI_STR("users-out", &users_out, OPT_OUT_FILE),
        CLI_CHOICE("split", &split, export_split_names),
        CLI_FLAG("json", &json),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr_model *m = NULL;
    iadsr_dataset *d = NULL;
    iadsr_ctx *ctx = NULL;
    float *users = NULL;
    int64_t n_users = 0, n_empty = 0;
    int exit_code = CLI_RUNTIME;
    int rc = cli_start(cmd, argc, argv, opts, n_opts,
                       (const char *const[]){export_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (!data_path != !users_out)
        return cli_usage_error(cmd, "%s needs %s", data_path ? "--data"
                                                             : "--users-out",
                               data_path ? "--users-out" : "--data");
    if (cli_opt_seen(opts, n_opts, "split") && !data_path)
        return cli_usage_error(cmd, "--split only applies with --data");
    /* fail before the work */
    if (cli_check_out_path(cmd, items_out) != CLI_OK ||
        (users_out && cli_check_out_path(cmd, users_out) != CLI_OK))
        return CLI_RUNTIME;
    if (cli_load_model(cmd, model_path, &m) != CLI_OK)
        return CLI_RUNTIME;
    const int32_t n_items = iadsr_model_n_items(m);
    const int32_t dim = iadsr_model_dim(m);

    /* the user vectors first: nothing is written when they fail */
    if (data_path) {
        if (cli_load_data(cmd, data_path, n_items, &d) != CLI_OK)
            goto done;
        n_users = iadsr_dataset_n_users(d);
        if (n_users < 1) {
            cli_error(cmd, "%s: no users", data_path);
            goto done;
        }
        if ((uint64_t)n_users > SIZE_MAX / sizeof *users / (size_t)dim ||
            !(users = calloc((size_t)n_users * (size_t)dim, sizeof *users))) {
            cli_error(cmd, "out of memory for a %lld x %d matrix",
                      (long long)n_users, (int)dim);
            goto done;
        }
        rc = iadsr_ctx_create(&ctx, m, NULL);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, "cannot create context", NULL, rc);
            goto done;
        }
        if (user_vectors(cmd, ctx, d, split, dim, users, &n_empty) != CLI_OK)
            goto done;
    }

    /* the item table as the model holds it: row i = item i, row 0 zeros */
    rc = iadsr_npy_save(items_out, iadsr_model_item_embeddings(m),
                        (int64_t)n_items + 1, dim, dim, 0u);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "cannot write", items_out, rc);
        goto done;
    }
    if (users) {
        rc = iadsr_npy_save(users_out, users, n_users, dim, dim, 0u);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, "cannot write", users_out, rc);
            goto done;
        }
    }

    fprintf(stderr,
            "iadsr: export: wrote %s (%lld x %d float32, row i = item i, "
            "row 0 = padding)\n",
            items_out, (long long)n_items + 1, (int)dim);
    if (users) {
        fprintf(stderr,
                "iadsr: export: wrote %s (%lld x %d float32, one row per "
                "user of %s, split %s)",
                users_out, (long long)n_users, (int)dim, data_path,
                export_split_names[split]);
        if (n_empty > 0)
            fprintf(stderr, "; %lld user%s without a history got a zero row",
                    (long long)n_empty, n_empty == 1 ? "" : "s");
        fputc('\n', stderr);
    }
    fprintf(stderr, "iadsr: export: " EXPORT_FORMULA "\n");
    exit_code = CLI_OK;
    if (json) {
        fputs("{\"model\":", stdout);
        cli_json_string(stdout, model_path);
        fputs(",\"items_out\":", stdout);
        cli_json_string(stdout, items_out);
        printf(",\"items_rows\":%lld,\"dim\":%d,\"users_out\":",
               (long long)n_items + 1, (int)dim);
        cli_json_string(stdout, users_out);
        printf(",\"users_rows\":%lld,\"split\":", (long long)n_users);
        cli_json_string(stdout, data_path ? export_split_names[split] : NULL);
        printf(",\"users_without_history\":%lld,\"formula\":",
               (long long)n_empty);
        cli_json_string(stdout, EXPORT_FORMULA);
        fputs("}\n", stdout);
        exit_code = cli_finish_stdout(cmd);
    }

done:
    free(users);
    iadsr_ctx_free(ctx);
    iadsr_dataset_free(d);
    iadsr_model_free(m);
    return exit_code;
}
