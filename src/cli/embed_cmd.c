/* iadsr command-line tool: `iadsr embed-text` (SIF text embeddings).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include "common/alloc.h"
#include "common/fileio.h"
#include "iadsr.h"
#include "cli/sif.h"
#include "cli/wordvec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char embed_help[] =
    "Usage: iadsr embed-text --items ITEMS.tsv --text-col NAME[,NAME...]\n"
    "                        --vectors WORDVECS --out EMB.npy [options]\n"
    "\n"
    "Embed each item's text with pretrained word vectors (SIF: a weighted\n"
    "average of the word vectors, weight a / (a + p(w)) with p(w) the word's\n"
    "frequency in these texts, then the first principal component removed)\n"
    "and write an (n_items + 1) x D float32 .npy matrix whose row i is item\n"
    "i; row 0 is padding (zeros). Items absent from ITEMS.tsv, with an empty\n"
    "text or with no known word get a zero row. A summary goes to standard\n"
    "error. See docs/EMBEDDINGS.md.\n"
    "\n"
    "Options:\n"
    "  --items FILE      tab-separated, a header line naming the columns;\n"
    "                    the first column is the item id (1..n, any order,\n"
    "                    each at most once; n_items = largest id) (required)\n"
    "  --text-col NAMES  column(s) holding the text, comma-separated; several\n"
    "                    are joined with a space (required)\n"
    "  --vectors FILE    word vectors, GloVe text format ('word v1 ... vD'\n"
    "                    per line, optional word2vec 'count dim' header),\n"
    "                    e.g. from tools/fetch-word-vectors.sh (required)\n"
    "  --out FILE        .npy file to write, atomically (required)\n"
    "  --no-pc           keep the first principal component\n"
    "  --sparse-ids      accept ids that use a small part of the id space\n"
    "                    (a row is written for every id up to the largest;\n"
    "                    by default refused when the largest id is >= 10000\n"
    "                    and > 10x the number of items)\n"
    "  --sif-a A         SIF smoothing a, in (0, 1] (default 0.001)\n"
    "\n"
    "Text is lower-cased ASCII split on every byte that is not [a-z0-9]\n"
    "(bytes of UTF-8 characters split words).\n";

#define MAX_TEXT_COLS 64

/* The items file: joined text per item id. */
typedef struct items_table {
    int32_t n_items;      /* largest id */
    int64_t n_lines;      /* item lines */
    int32_t n_with_text;  /* items whose text columns are not all empty */
    const char **text;    /* n_items entries (id - 1); NULL = absent */
    char *arena;          /* the joined texts, NUL-terminated */
} items_table;

typedef struct item_rec {
    int32_t id;
    int64_t line;
    size_t off; /* into the arena */
} item_rec;

static void items_free(items_table *t)
{
    free(t->text);
    free(t->arena);
    memset(t, 0, sizeof *t);
}

/* Split a line [p, end) at tabs into at most @p cap fields; returns the
 * number of fields (which may exceed @p cap: only the first cap are set). */
static size_t split_tabs(const char *p, const char *end, const char **fs,
                         const char **fe, size_t cap)
{
    size_t n = 0;
    for (;;) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        const char *e = t ? t : end;
        if (n < cap) {
            fs[n] = p;
            fe[n] = e;
        }
        n++;
        if (!t)
            return n;
        p = t + 1;
    }
}

/* Printable excerpt of [p, end) for messages. */
static void excerpt(char *buf, size_t cap, const char *p, const char *end)
{
    size_t n = 0;
    while (p < end && n + 4 < cap && n < 40) {
        unsigned char c = (unsigned char)*p++;
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (p < end)
        for (int k = 0; k < 3 && n + 1 < cap; k++)
            buf[n++] = '.';
    buf[n] = '\0';
}

/* Parse the items file at @p path (bytes @p buf, @p len) for the text
 * columns @p cols. Prints the error and returns CLI_RUNTIME on failure. */
static int parse_items(const char *cmd, const char *path, const char *buf,
                       size_t len, char *const *cols, int n_cols,
                       int sparse_ok, items_table *t)
{
    const char *p = buf, *end = buf + len;
    const char **fs = NULL, **fe = NULL;
    item_rec *recs = NULL;
    size_t n_recs = 0, cap_recs = 0, arena_len = 0, arena_cap = 0;
    size_t n_fields = 0, col_idx[MAX_TEXT_COLS];
    char idcol[64], tok[64];
    int64_t line = 0;
    int32_t max_id = 0;
    int64_t *seen = NULL;
    int rc = CLI_RUNTIME;

    memset(t, 0, sizeof *t);
    /* header */
    while (p < end && n_fields == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p) { /* leading blank lines */
            p = nl ? nl + 1 : end;
            continue;
        }
        n_fields = split_tabs(p, le, NULL, NULL, 0);
        fs = malloc(n_fields * sizeof *fs);
        fe = malloc(n_fields * sizeof *fe);
        if (!fs || !fe) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        split_tabs(p, le, fs, fe, n_fields);
        for (int c = 0; c < n_cols; c++) {
            size_t k, cl = strlen(cols[c]);
            for (k = 0; k < n_fields; k++)
                if ((size_t)(fe[k] - fs[k]) == cl &&
                    memcmp(fs[k], cols[c], cl) == 0)
                    break;
            if (k == n_fields) {
                char names[512];
                size_t used = 0;
                names[0] = '\0';
                for (size_t j = 0; j < n_fields && used + 8 < sizeof names;
                     j++) {
                    int wr = snprintf(names + used, sizeof names - used,
                                      "%s'%.*s'", j ? ", " : "",
                                      (int)(fe[j] - fs[j] > 60
                                                ? 60
                                                : fe[j] - fs[j]),
                                      fs[j]);
                    if (wr < 0)
                        break;
                    used += (size_t)wr;
                    if (used >= sizeof names)
                        used = sizeof names - 1;
                }
                cli_error(cmd,
                          "%s:%lld: no column '%s' in the header (columns: "
                          "%s)",
                          path, (long long)line, cols[c], names);
                goto done;
            }
            col_idx[c] = k;
        }
        excerpt(idcol, sizeof idcol, fs[0], fe[0]);
        p = nl ? nl + 1 : end;
    }
    if (n_fields == 0) {
        cli_error(cmd, "%s: empty file (expected a header line naming the "
                       "columns, then one line per item)",
                  path);
        goto done;
    }

    /* item lines */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p) {
            p = nl ? nl + 1 : end;
            continue;
        }
        size_t nf = split_tabs(p, le, fs, fe, n_fields);
        if (nf != n_fields) {
            cli_error(cmd,
                      "%s:%lld: %zu tab-separated field%s, but the header "
                      "has %zu",
                      path, (long long)line, nf, nf == 1 ? "" : "s",
                      n_fields);
            goto done;
        }
        /* the id */
        int64_t id = 0;
        int ok = fs[0] < fe[0];
        for (const char *q = fs[0]; ok && q < fe[0]; q++) {
            if (*q < '0' || *q > '9')
                ok = 0;
            else if (id <= INT32_MAX) /* larger ids stay above the limit */
                id = id * 10 + (*q - '0');
        }
        if (!ok) {
            excerpt(tok, sizeof tok, fs[0], fe[0]);
            cli_error(cmd,
                      "%s:%lld: item id '%s' in column '%s' is not an "
                      "integer",
                      path, (long long)line, tok, idcol);
            goto done;
        }
        if (id < 1 || id > INT32_MAX - 1) {
            excerpt(tok, sizeof tok, fs[0], fe[0]);
            cli_error(cmd,
                      "%s:%lld: item id %s in column '%s' is outside "
                      "1..%d",
                      path, (long long)line, tok, idcol, INT32_MAX - 1);
            goto done;
        }
        /* the joined text */
        size_t need = 0;
        for (int c = 0; c < n_cols; c++)
            need += (size_t)(fe[col_idx[c]] - fs[col_idx[c]]) + 1;
        if (arena_len + need > arena_cap) {
            size_t nc = arena_cap ? arena_cap : len + 64;
            while (nc < arena_len + need)
                nc *= 2;
            char *na = realloc(t->arena, nc);
            if (!na) {
                cli_error(cmd, "out of memory");
                goto done;
            }
            t->arena = na;
            arena_cap = nc;
        }
        if (n_recs == cap_recs) {
            size_t nc = cap_recs ? cap_recs * 2 : 1024;
            item_rec *nr = realloc(recs, nc * sizeof *nr);
            if (!nr) {
                cli_error(cmd, "out of memory");
                goto done;
            }
            recs = nr;
            cap_recs = nc;
        }
        recs[n_recs].id = (int32_t)id;
        recs[n_recs].line = line;
        recs[n_recs].off = arena_len;
        n_recs++;
        int has_text = 0;
        for (int c = 0; c < n_cols; c++) {
            size_t k = col_idx[c], fl = (size_t)(fe[k] - fs[k]);
            if (c > 0)
                t->arena[arena_len++] = ' ';
            memcpy(t->arena + arena_len, fs[k], fl);
            arena_len += fl;
            has_text |= fl > 0;
        }
        t->arena[arena_len++] = '\0';
        if (has_text)
            t->n_with_text++;
        if ((int32_t)id > max_id)
            max_id = (int32_t)id;
        p = nl ? nl + 1 : end;
    }
    if (n_recs == 0) {
        cli_error(cmd, "%s: no items after the header", path);
        goto done;
    }

    /* a row per id up to the largest: not for a few stray large ids (the
     * count of lines bounds the distinct ids; repeats are refused below) */
    if (cli_check_id_space(cmd, path, max_id, (int64_t)n_recs, sparse_ok,
                           "matrix rows") != CLI_OK)
        goto done;
    /* scatter by id, refusing repeats */
    t->n_items = max_id;
    t->n_lines = (int64_t)n_recs;
    t->text = calloc((size_t)max_id, sizeof *t->text);
    seen = calloc((size_t)max_id, sizeof *seen);
    if (!t->text || !seen) {
        cli_error(cmd, "out of memory for %d items (largest id in %s)",
                  (int)max_id, path);
        goto done;
    }
    for (size_t r = 0; r < n_recs; r++) {
        int32_t i = recs[r].id - 1;
        if (seen[i]) {
            cli_error(cmd, "%s:%lld: item id %d already appeared on line "
                           "%lld",
                      path, (long long)recs[r].line, (int)recs[r].id,
                      (long long)seen[i]);
            goto done;
        }
        seen[i] = recs[r].line;
        t->text[i] = t->arena + recs[r].off;
    }
    rc = CLI_OK;

done:
    free(fs);
    free(fe);
    free(recs);
    free(seen);
    if (rc != CLI_OK)
        items_free(t);
    return rc;
}

/* Split "a,b,c" into at most MAX_TEXT_COLS names (in a copy of the string:
 * *store, to be freed). Returns the count, or -1 after a usage message. */
static int split_cols(const char *cmd, const char *spec, char **store,
                      char **cols)
{
    size_t n = strlen(spec);
    char *s = malloc(n + 1);
    int k = 0;
    *store = s;
    if (!s) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    memcpy(s, spec, n + 1);
    for (char *p = s;;) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (!*p) {
            cli_usage_error(cmd, "--text-col '%s' has an empty column name",
                            spec);
            return -1;
        }
        if (k == MAX_TEXT_COLS) {
            cli_usage_error(cmd, "--text-col: more than %d columns",
                            MAX_TEXT_COLS);
            return -1;
        }
        cols[k++] = p;
        if (!c)
            break;
        p = c + 1;
    }
    return k;
}

static double pct(double num, double den)
{
    return den > 0.0 ? 100.0 * num / den : 0.0;
}

int cmd_embed_text(int argc, char **argv)
{
    static const char *cmd = "embed-text";
    const char *items_path = NULL, *text_col = NULL, *vec_path = NULL;
    const char *out_path = NULL;
    int no_pc = 0, sparse_ids = 0, n_cols, exit_code = CLI_RUNTIME;
    double sif_a = IADSR__SIF_DEFAULT_A;
    cli_opt opts[] = {
        CLI_STR("items", &items_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("text-col", &text_col, OPT_REQUIRED),
        CLI_STR("vectors", &vec_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("out", &out_path, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_FLAG("no-pc", &no_pc),
        CLI_FLAG("sparse-ids", &sparse_ids),
        CLI_DBL("sif-a", &sif_a, 0.0, 1.0, OPT_LO_OPEN),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    char *cols[MAX_TEXT_COLS], *col_store = NULL;
    void *ibuf = NULL;
    size_t ilen = 0;
    items_table items;
    iadsr__wordvec *wv = NULL;
    iadsr_semantic *sem = NULL;
    iadsr__sif_stats st;
    float *emb = NULL;
    double t0, t_items, t_vec, t_embed, t_write;
    int rc = cli_start(cmd, argc, argv, opts, n_opts,
                       (const char *const[]){embed_help, NULL});

    memset(&items, 0, sizeof items);
    if (rc != CLI_CONTINUE)
        return rc;
    n_cols = split_cols(cmd, text_col, &col_store, cols);
    if (n_cols < 0) {
        int code = col_store ? CLI_USAGE : CLI_RUNTIME;
        free(col_store);
        return code;
    }
    /* fail before loading the vectors */
    if (cli_check_out_path(cmd, out_path) != CLI_OK)
        goto done;

    /* the items */
    t0 = cli_now();
    rc = iadsr__read_file(items_path, "items", &ibuf, &ilen);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, NULL, items_path, rc);
        goto done;
    }
    if (parse_items(cmd, items_path, ibuf, ilen, cols, n_cols, sparse_ids,
                    &items) != CLI_OK)
        goto done;
    iadsr__free(ibuf);
    ibuf = NULL;
    t_items = cli_now() - t0;

    /* the word vectors */
    t0 = cli_now();
    rc = iadsr__wordvec_load(vec_path, &wv);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, NULL, vec_path, rc);
        goto done;
    }
    t_vec = cli_now() - t0;

    /* embed: row 0 is padding, row i is item i */
    const int32_t dim = wv->dim;
    const size_t n_rows = (size_t)items.n_items + 1;
    if (n_rows > SIZE_MAX / sizeof(float) / (size_t)dim ||
        !(emb = calloc(n_rows * (size_t)dim, sizeof *emb))) {
        cli_error(cmd, "out of memory for a %zu x %d matrix", n_rows,
                  (int)dim);
        goto done;
    }
    t0 = cli_now();
    rc = iadsr__sif_embed(wv, items.text, items.n_items, sif_a, !no_pc,
                          emb + dim, NULL, &st);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "embedding failed", NULL, rc);
        goto done;
    }
    t_embed = cli_now() - t0;

    /* write */
    t0 = cli_now();
    rc = iadsr_semantic_create(&sem, emb, (int64_t)n_rows, dim, dim,
                               IADSR_FLAG_BORROW |
                                   IADSR_SEMANTIC_ROW0_PADDING);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "invalid embedding matrix", NULL, rc);
        goto done;
    }
    rc = iadsr_semantic_save_npy(sem, out_path, IADSR_SEMANTIC_ROW0_PADDING);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "cannot write", out_path, rc);
        goto done;
    }
    t_write = cli_now() - t0;

    {
        const int32_t n = items.n_items;
        const int32_t n_nonzero = n - iadsr_semantic_n_zero_rows(sem);
        fprintf(stderr,
                "iadsr: embed-text: %d items (%lld lines, %d with text) "
                "from %s; %d words of dimension %d from %s",
                (int)n, (long long)items.n_lines, (int)items.n_with_text,
                items_path, (int)wv->n_words, (int)dim, vec_path);
        if (wv->n_duplicates > 0)
            fprintf(stderr, " (%lld repeated words skipped)",
                    (long long)wv->n_duplicates);
        fprintf(stderr,
                "\niadsr: embed-text: %d items with a non-zero vector "
                "(%.2f%% of all, %.2f%% of those with text); tokens known "
                "%.2f%% (%lld of %lld); vocabulary %d words (%d used)\n",
                (int)n_nonzero, pct(n_nonzero, n),
                pct(n_nonzero, items.n_with_text),
                pct((double)st.n_known, (double)st.n_tokens),
                (long long)st.n_known, (long long)st.n_tokens,
                (int)wv->n_words, (int)st.n_vocab);
        if (st.pc_removed)
            fprintf(stderr,
                    "iadsr: embed-text: first principal component removed "
                    "(SIF a = %g, %d power iterations)\n",
                    sif_a, st.pc_iterations);
        else
            fprintf(stderr,
                    "iadsr: embed-text: principal component kept (SIF a = "
                    "%g%s)\n",
                    sif_a, no_pc ? ", --no-pc" : ", fewer than 2 non-zero rows");
        fprintf(stderr,
                "iadsr: embed-text: load %.2fs (items %.2fs, vectors %.2fs), "
                "embed %.2fs, write %.2fs; wrote %s (%lld x %d float32, row "
                "0 = padding)\n",
                t_items + t_vec, t_items, t_vec, t_embed, t_write, out_path,
                (long long)n_rows, (int)dim);
    }
    exit_code = CLI_OK;

done:
    iadsr_semantic_free(sem);
    free(emb);
    iadsr__wordvec_free(wv);
    items_free(&items);
    iadsr__free(ibuf);
    free(col_store);
    return exit_code;
}
