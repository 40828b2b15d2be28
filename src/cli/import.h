/* iadsr command-line tool: interaction logs to sequence files (the logic
 * behind `iadsr import`; reading, ordering, filtering, dense ids).
 * SPDX-License-Identifier: MIT
 *
 * Kept free of the CLI's printing helpers so that it can be linked into
 * tests: every function reports its failure as a code and a message in an
 * imp_error, never on a stream. docs/IMPORT.md is the user's reference.
 */
#ifndef IADSR_CLI_IMPORT_H
#define IADSR_CLI_IMPORT_H

#include <stddef.h>
#include <stdint.h>

/* Return codes: the CLI's exit codes (cli.h) for the same cases. */
#define IMP_OK 0
#define IMP_ERR_RUNTIME 1 /* bad input, I/O, out of memory */
#define IMP_ERR_USAGE 2   /* options that do not fit the file */

/* Input formats, in the order of imp_format_names. */
enum {
    IMP_FMT_AUTO,
    IMP_FMT_CSV,   /* ',' with RFC-4180 quoting; header detected */
    IMP_FMT_TSV,   /* tab; header detected */
    IMP_FMT_UDATA, /* MovieLens u.data: tab, no header, user item rating time */
    IMP_FMT_MLDAT, /* MovieLens ratings.dat: '::', no header, same columns */
    IMP_FMT_INTER, /* RecBole atomic .inter: tab, typed header */
    IMP_FMT_DELIM  /* imp_config.delimiter; header detected */
};
extern const char *const imp_format_names[]; /* NULL-terminated */

enum { IMP_DEDUP_NONE, IMP_DEDUP_FIRST, IMP_DEDUP_LAST };
extern const char *const imp_dedup_names[]; /* NULL-terminated */

typedef struct imp_config {
    int format;            /* IMP_FMT_* */
    const char *delimiter; /* NULL: the format's; "\t" escapes allowed */
    int header;            /* -1 detect, 0 no header line, 1 header line */
    /* columns: a header name or a 1-based position; NULL = the format's
     * default; time_col "none" = file order */
    const char *user_col, *item_col, *time_col, *rating_col;
    int has_min_rating;
    double min_rating;
    int dedup;         /* IMP_DEDUP_* */
    int64_t user_core; /* 0 = off */
    int64_t item_core; /* 0 = off */
    int64_t min_len;   /* >= 1 */
    int skip_bad;      /* malformed rows are counted, not fatal */
} imp_config;

/* Defaults: auto format, detected header, no filter, min_len 1. */
void imp_config_init(imp_config *c);

typedef struct imp_error {
    int code;       /* IMP_ERR_* */
    char msg[1536]; /* one line, no "iadsr: import: " prefix */
} imp_error;

typedef struct imp_stats {
    int64_t rows_read;       /* data records (header and blank lines not) */
    int64_t bad_rows;        /* malformed rows skipped (--skip-bad) */
    int64_t min_rating_rows; /* rows below --min-rating */
    int64_t dedup_rows;      /* repeated (user, item) pairs dropped */
    int64_t empty_users;     /* users all of whose rows were dropped above */
    int64_t kcore_users, kcore_items, kcore_rows; /* removed by the k-core */
    /* removed by --min-len (items: left without interactions) */
    int64_t min_len_users, min_len_items, min_len_rows;
    int64_t users_seen, items_seen;      /* distinct ids in valid rows */
    int64_t n_users, n_items, n_rows;    /* written */
    int64_t first_bad_line;              /* 0 when no bad row */
    char first_bad[1536];                /* its message */
} imp_stats;

/* Distinct external ids, numbered 0.. in order of first insertion. */
typedef struct imp_strtab {
    char *arena;
    size_t arena_len, arena_cap;
    size_t *off;    /* entry -> offset in arena (NUL-terminated copy) */
    uint32_t *len;  /* entry -> length in bytes */
    uint32_t *slot; /* open addressing: entry + 1, 0 = empty */
    uint32_t n, cap, n_slots;
} imp_strtab;

/* What an import produced. */
typedef struct imp_result {
    imp_stats st;
    int format;           /* the format used (never IMP_FMT_AUTO) */
    char delim[16];       /* the delimiter used, as given */
    int header;           /* whether a header line was read */
    char columns[512];    /* "format csv, ..., user: 'userId' (column 1),
                           * ..." for messages */
    int64_t n_users;      /* sequences, 1..n_users */
    int32_t n_items;      /* dense item ids 1..n_items */
    int64_t *offsets;     /* n_users + 1 */
    int32_t *items;       /* dense ids, offsets[n_users] of them */
    uint32_t *user_entry; /* dense user u (0-based) -> users entry */
    uint32_t *item_entry; /* dense item i (0-based) -> items entry */
    int32_t *item_dense;  /* items entry -> dense id, 0 = not written */
    imp_strtab user_ids, item_ids; /* external ids, by first row */
} imp_result;

/* Read the log at @p path with @p cfg, order, filter and number it into
 * @p res (zeroed first; free it with imp_result_free whatever the
 * return). Returns IMP_OK or the code in @p err. */
int imp_run(const char *path, const imp_config *cfg, imp_result *res,
            imp_error *err);
void imp_result_free(imp_result *res);

/* External id of dense user @p u (0-based) / dense item @p i (0-based). */
const char *imp_user_ext(const imp_result *res, int64_t u, size_t *len);
const char *imp_item_ext(const imp_result *res, int32_t i, size_t *len);
/* Dense id (1-based) of the external item id @p s (@p n bytes), 0 when it
 * is not in the output. */
int32_t imp_item_dense(const imp_result *res, const char *s, size_t n);

/* What imp_rekey_text did with the rows of the text file. */
typedef struct imp_text_stats {
    int64_t written;  /* rows re-keyed */
    int64_t unknown;  /* rows of items not in the output, skipped */
    int64_t repeated; /* later rows of an item already written, skipped */
    int64_t empty;    /* items of the output without a row: empty text */
} imp_text_stats;

/* Re-key an item text TSV (@p len bytes at @p buf, named @p name in
 * messages) to the dense ids: the header's first column becomes
 * "item_id"; then one row per dense id 1..n_items, in id order: the first
 * row of TEXT whose first column (the external item id, surrounding
 * blanks trimmed) is that item with its first column replaced by the id,
 * or the id and empty columns for an item without a row. *out (malloc'd,
 * free()) receives the text. */
int imp_rekey_text(const char *buf, size_t len, const char *name,
                   const imp_result *res, char **out, size_t *out_len,
                   imp_text_stats *ts, imp_error *err);

/* Turn the escapes "\t", "\\" of a --delimiter value into bytes, into
 * @p out (cap bytes, NUL-terminated). Returns 0, or -1 with @p err set
 * (empty, too long, a quote, a line end or an unknown escape). */
int imp_parse_delimiter(const char *s, char *out, size_t cap,
                        imp_error *err);

#endif /* IADSR_CLI_IMPORT_H */
