/* iadsr command-line tool: `iadsr import` (interaction logs to sequence
 * files; the logic is in import.c).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include "cli/import.h"
#include "common/alloc.h"
#include "common/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char import_help[] =
    "Usage: iadsr import --in LOG --out SEQ --vocab VOCAB.tsv [options]\n"
    "\n"
    "Turn an interaction log (one interaction per row: a user id, an item\n"
    "id, optionally a time and a rating) into a sequence file for train,\n"
    "eval and recommend, with dense ids, and a vocabulary mapping the\n"
    "dense ids back to the log's ids. Ids are arbitrary strings. Each\n"
    "user's rows are ordered by time (equal times keep the file order),\n"
    "then filtered in this order: --min-rating, --dedup, then the k-core\n"
    "(--user-core, --item-core) and --min-len together until nothing more\n"
    "changes. Users are numbered 1.. in order of their first row in LOG,\n"
    "items 1.. in order of first appearance in SEQ; the same log gives the\n"
    "same bytes whatever its format. All outputs are written atomically;\n"
    "a summary goes to standard error. See docs/IMPORT.md.\n"
    "\n"
    "Input:\n"
    "  --in LOG          the interaction log (required)\n"
    "  --format F        auto (default), csv, tsv, udata, ml-dat, inter or\n"
    "                    delim. auto decides from the name: .csv, .tsv,\n"
    "                    .inter, .dat (MovieLens '::' ratings.dat), .data\n"
    "                    (MovieLens u.data: tab, no header); else from the\n"
    "                    first line: '::' -> ml-dat, else the most frequent\n"
    "                    of tab (tsv, or inter with typed fields), ',' (csv),\n"
    "                    ';' and '|' (delim)\n"
    "  --delimiter STR   the delimiter of --format delim (or csv), one or\n"
    "                    more bytes; \\t is a tab\n"
    "  --header          the first line names the columns\n"
    "  --no-header       the first line is data\n"
    "                    (default: inter always has a header; so does any\n"
    "                    file when a column is given by name; udata and\n"
    "                    ml-dat have none; csv, tsv and delim have one when\n"
    "                    a field of the first line is a default column name\n"
    "                    below)\n"
    "  --user COL        the user id column: a header name or a 1-based\n"
    "                    position\n"
    "  --item COL        the item id column\n"
    "  --time COL        a numeric time column (integers or decimals, e.g.\n"
    "                    Unix seconds); 'none' keeps the file order\n"
    "  --rating COL      the rating column (read only with --min-rating)\n"
    "                    Defaults: udata, ml-dat: user 1, item 2, rating 3,\n"
    "                    time 4. With a header: the first present of\n"
    "                    user_id user userid uid reviewerid ... (user),\n"
    "                    item_id item itemid iid movieid ... (item),\n"
    "                    timestamp time ts unixreviewtime unix_time (time,\n"
    "                    else file order), rating score overall stars; else\n"
    "                    user 1, item 2 and the file order.\n"
    "  --skip-bad        skip malformed rows (too few fields, a time or\n"
    "                    rating that is not a number, a bad quote, an id\n"
    "                    with a tab or line break) and count them, instead\n"
    "                    of stopping at the first with its FILE:LINE\n";

/* In two parts: ISO C guarantees string literals of 4095 bytes only. */
static const char import_help2[] =
    "\n"
    "Filters:\n"
    "  --min-rating X    drop rows whose rating is below X\n"
    "  --dedup D         repeated (user, item) pairs: none (default: keep\n"
    "                    all), first or last (keep the one occurrence that\n"
    "                    is first / last in time order)\n"
    "  --user-core K     keep only users with >= K interactions and\n"
    "  --item-core K     items with >= K interactions, removed repeatedly\n"
    "                    until both hold (the k-core; 0 = off)\n"
    "  --min-len N       drop users with fewer than N interactions, inside\n"
    "                    the same loop (default 1; 3 gives every user a\n"
    "                    training item and the two held-out targets)\n"
    "\n"
    "Outputs:\n"
    "  --out SEQ         the sequence file, 'user item item ...' (required)\n"
    "  --vocab FILE      the vocabulary, tab-separated: a header line\n"
    "                    'kind<TAB>id<TAB>external', then one line per user\n"
    "                    ('user<TAB>1<TAB>alice') and per item\n"
    "                    ('item<TAB>1<TAB>B000123') (required)\n"
    "  --item-text TSV   item texts keyed by the log's item ids (a header\n"
    "                    line, the first column the item id) ...\n"
    "  --text-out TSV    ... rewritten with the dense ids (first column\n"
    "                    'item_id') for 'iadsr embed-text --items': one row\n"
    "                    per item of SEQ in id order, empty columns for an\n"
    "                    item without text; rows of items not in SEQ and\n"
    "                    repeated rows are skipped and counted\n"
    "  --json            print the summary as one JSON object on stdout\n"
    "  --quiet           no summary on standard error\n";

/* The vocabulary writer's input. */
static void write_vocab(iadsr__atomic_file *f, const void *ctx)
{
    const imp_result *r = ctx;
    char num[24];
    static const char head[] = "kind\tid\texternal\n";
    if (iadsr__atomic_put(f, head, sizeof head - 1) != 0)
        return;
    for (int64_t u = 0; u < r->n_users; u++) {
        size_t n, k = cli_put_u64(num, (uint64_t)u + 1u);
        const char *s = imp_user_ext(r, u, &n);
        (void)iadsr__atomic_put(f, "user\t", 5);
        (void)iadsr__atomic_put(f, num, k);
        (void)iadsr__atomic_put(f, "\t", 1);
        (void)iadsr__atomic_put(f, s, n);
        if (iadsr__atomic_put(f, "\n", 1) != 0)
            return;
    }
    for (int32_t i = 0; i < r->n_items; i++) {
        size_t n, k = cli_put_u64(num, (uint64_t)i + 1u);
        const char *s = imp_item_ext(r, i, &n);
        (void)iadsr__atomic_put(f, "item\t", 5);
        (void)iadsr__atomic_put(f, num, k);
        (void)iadsr__atomic_put(f, "\t", 1);
        (void)iadsr__atomic_put(f, s, n);
        if (iadsr__atomic_put(f, "\n", 1) != 0)
            return;
    }
}

static void write_seqs(iadsr__atomic_file *f, const void *ctx)
{
    const imp_result *r = ctx;
    for (int64_t u = 0; u < r->n_users; u++)
        if (cli_put_seq(f, (uint64_t)u + 1u, r->items + r->offsets[u],
                        r->offsets[u + 1] - r->offsets[u]) != 0)
            return;
}

typedef struct bytes_out {
    const char *p;
    size_t n;
} bytes_out;

static void write_bytes(iadsr__atomic_file *f, const void *ctx)
{
    const bytes_out *b = ctx;
    (void)iadsr__atomic_put(f, b->p, b->n);
}

static int report(const char *cmd, const imp_error *e)
{
    return e->code == IMP_ERR_USAGE ? cli_usage_error(cmd, "%s", e->msg)
                                    : cli_error(cmd, "%s", e->msg);
}

int cmd_import(int argc, char **argv)
{
    static const char *cmd = "import";
    const char *in = NULL, *out = NULL, *vocab = NULL, *text_in = NULL,
               *text_out = NULL;
    int header = 0, no_header = 0, json = 0, quiet = 0;
    imp_config cfg;
    imp_config_init(&cfg);
    cli_opt opts[] = {
        CLI_STR("in", &in, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_STR("vocab", &vocab, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_CHOICE("format", &cfg.format, imp_format_names),
        CLI_STR("delimiter", &cfg.delimiter, 0),
        CLI_FLAG("header", &header),
        CLI_FLAG("no-header", &no_header),
        CLI_STR("user", &cfg.user_col, 0),
        CLI_STR("item", &cfg.item_col, 0),
        CLI_STR("time", &cfg.time_col, 0),
        CLI_STR("rating", &cfg.rating_col, 0),
        CLI_DBL("min-rating", &cfg.min_rating, -1e300, 1e300, 0),
        CLI_CHOICE("dedup", &cfg.dedup, imp_dedup_names),
        CLI_I64("user-core", &cfg.user_core, 0, INT32_MAX, 0),
        CLI_I64("item-core", &cfg.item_core, 0, INT32_MAX, 0),
        CLI_I64("min-len", &cfg.min_len, 1, INT32_MAX, 0),
        CLI_FLAG("skip-bad", &cfg.skip_bad),
        CLI_STR("item-text", &text_in, OPT_IN_FILE),
        CLI_STR("text-out", &text_out, OPT_OUT_FILE),
        CLI_FLAG("json", &json),
        CLI_FLAG("quiet", &quiet),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    imp_result res;
    imp_error err;
    char *text = NULL;
    void *tbuf = NULL;
    size_t text_len = 0, tlen = 0;
    imp_text_stats ts;
    int exit_code = CLI_RUNTIME;
    memset(&ts, 0, sizeof ts);
    int rc = cli_start(cmd, argc, argv, opts, n_opts,
                       (const char *const[]){import_help, import_help2, NULL});
    if (rc != CLI_CONTINUE)
        return rc;
    if (header && no_header)
        return cli_usage_error(cmd, "--header and --no-header exclude each "
                                    "other");
    if (!text_in != !text_out)
        return cli_usage_error(cmd, "--item-text and --text-out go together");
    cfg.header = header ? 1 : no_header ? 0 : -1;
    cfg.has_min_rating = cli_opt_seen(opts, n_opts, "min-rating");
    if (cli_check_out_path(cmd, out) != CLI_OK ||
        cli_check_out_path(cmd, vocab) != CLI_OK ||
        (text_out && cli_check_out_path(cmd, text_out) != CLI_OK))
        return CLI_RUNTIME;

    double t0 = cli_now();
    rc = imp_run(in, &cfg, &res, &err);
    if (rc != IMP_OK) {
        if (res.columns[0] && !quiet)
            fprintf(stderr, "iadsr: import: %s: %s\n", in, res.columns);
        report(cmd, &err);
        exit_code = rc == IMP_ERR_USAGE ? CLI_USAGE : CLI_RUNTIME;
        goto done;
    }
    if (text_in) {
        rc = iadsr__read_file(text_in, "item text", &tbuf, &tlen);
        if (rc != IADSR_OK) {
            cli_lib_error(cmd, NULL, text_in, rc);
            goto done;
        }
        if (imp_rekey_text(tbuf, tlen, text_in, &res, &text, &text_len, &ts,
                           &err) != IMP_OK) {
            report(cmd, &err);
            goto done;
        }
    }
    if (cli_write_atomic(cmd, out, write_seqs, &res) != CLI_OK ||
        cli_write_atomic(cmd, vocab, write_vocab, &res) != CLI_OK)
        goto done;
    if (text_out) {
        bytes_out b = {text, text_len};
        if (cli_write_atomic(cmd, text_out, write_bytes, &b) != CLI_OK)
            goto done;
    }

    const imp_stats *st = &res.st;
    double density = (double)st->n_rows /
                     ((double)st->n_users * (double)st->n_items);
    if (!quiet) {
        fprintf(stderr, "iadsr: import: %s: %s\n", in, res.columns);
        fprintf(stderr,
                "iadsr: import: rows read %lld (bad rows skipped %lld); "
                "dropped: %lld below --min-rating, %lld repeated pairs "
                "(--dedup %s)",
                (long long)st->rows_read, (long long)st->bad_rows,
                (long long)st->min_rating_rows, (long long)st->dedup_rows,
                imp_dedup_names[cfg.dedup]);
        if (st->empty_users)
            fprintf(stderr, ", %lld users left without rows",
                    (long long)st->empty_users);
        fprintf(stderr, "\n");
        if (st->bad_rows)
            fprintf(stderr, "iadsr: import: first bad row: %s\n",
                    st->first_bad);
        fprintf(stderr,
                "iadsr: import: k-core (--user-core %lld, --item-core %lld) "
                "removed %lld users, %lld items, %lld interactions; "
                "--min-len %lld removed %lld users, %lld items, %lld "
                "interactions\n",
                (long long)cfg.user_core, (long long)cfg.item_core,
                (long long)st->kcore_users, (long long)st->kcore_items,
                (long long)st->kcore_rows, (long long)cfg.min_len,
                (long long)st->min_len_users, (long long)st->min_len_items,
                (long long)st->min_len_rows);
        fprintf(stderr,
                "iadsr: import: wrote %lld users, %lld items, %lld "
                "interactions (of %lld users and %lld items seen; density "
                "%.6f) to %s, vocabulary %s (%.2fs)\n",
                (long long)st->n_users, (long long)st->n_items,
                (long long)st->n_rows, (long long)st->users_seen,
                (long long)st->items_seen, density, out, vocab,
                cli_now() - t0);
        if (text_out)
            fprintf(stderr,
                    "iadsr: import: item texts to %s: %lld rows re-keyed, "
                    "%lld skipped (item not in the output), %lld skipped "
                    "(item repeated), %lld items without a row (written "
                    "with empty text)\n",
                    text_out, (long long)ts.written, (long long)ts.unknown,
                    (long long)ts.repeated, (long long)ts.empty);
    }
    if (json) {
        printf("{\"format\":\"%s\",\"header\":%s,\"users\":%lld,"
               "\"items\":%lld,\"interactions\":%lld,\"rows_read\":%lld,"
               "\"bad_rows\":%lld,\"min_rating_dropped\":%lld,"
               "\"dedup_dropped\":%lld,\"empty_users\":%lld,"
               "\"kcore_users_removed\":%lld,\"kcore_items_removed\":%lld,"
               "\"kcore_interactions_removed\":%lld,"
               "\"min_len_users_removed\":%lld,"
               "\"min_len_items_removed\":%lld,"
               "\"min_len_interactions_removed\":%lld,"
               "\"users_seen\":%lld,\"items_seen\":%lld",
               imp_format_names[res.format], res.header ? "true" : "false",
               (long long)st->n_users, (long long)st->n_items,
               (long long)st->n_rows, (long long)st->rows_read,
               (long long)st->bad_rows, (long long)st->min_rating_rows,
               (long long)st->dedup_rows, (long long)st->empty_users,
               (long long)st->kcore_users, (long long)st->kcore_items,
               (long long)st->kcore_rows, (long long)st->min_len_users,
               (long long)st->min_len_items, (long long)st->min_len_rows,
               (long long)st->users_seen, (long long)st->items_seen);
        printf(",\"density\":%.9g", density);
        if (text_out)
            printf(",\"text_rows_written\":%lld,\"text_rows_unknown\":%lld,"
                   "\"text_rows_repeated\":%lld,\"text_items_empty\":%lld",
                   (long long)ts.written, (long long)ts.unknown,
                   (long long)ts.repeated, (long long)ts.empty);
        printf("}\n");
        if (cli_finish_stdout(cmd) != CLI_OK)
            goto done;
    }
    exit_code = CLI_OK;

done:
    free(text);
    iadsr__free(tbuf);
    imp_result_free(&res);
    return exit_code;
}
