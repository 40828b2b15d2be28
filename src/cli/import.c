/* iadsr command-line tool: interaction logs to sequence files (the logic
 * behind `iadsr import`, see import.h and docs/IMPORT.md).
 * SPDX-License-Identifier: MIT
 */
#include "cli/import.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

const char *const imp_format_names[] = {"auto",  "csv",    "tsv",  "udata",
                                        "ml-dat", "inter", "delim", NULL};
const char *const imp_dedup_names[] = {"none", "first", "last", NULL};

/* Distinct ids and rows are numbered with 32 bits; dense item ids must fit
 * the library's int32 ids (1..2^31 - 2). */
#define IMP_MAX_IDS ((uint32_t)INT32_MAX - 1u)
#define IMP_MAX_ROWS (UINT32_MAX - 1u)

void imp_config_init(imp_config *c)
{
    memset(c, 0, sizeof *c);
    c->format = IMP_FMT_AUTO;
    c->header = -1;
    c->dedup = IMP_DEDUP_NONE;
    c->min_len = 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(imp_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

static int oom(imp_error *err)
{
    return fail(err, IMP_ERR_RUNTIME, "out of memory");
}

/* A printable excerpt of @p n bytes at @p s (at most 40 characters; other
 * bytes as '?'), for messages about untrusted input. */
static const char *excerpt(char *buf, size_t cap, const char *s, size_t n)
{
    size_t o = 0, i = 0;
    for (; i < n && o + 4 < cap && o < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (i < n)
        for (int k = 0; k < 3 && o + 1 < cap; k++)
            buf[o++] = '.';
    buf[o] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* String table: open addressing, linear probing                            */
/* ------------------------------------------------------------------------ */

/* Any well-mixed hash will do: it decides only where an id is stored, never
 * the output order (entries are numbered by first insertion). */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9u;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x94d049bb133111ebu;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 32;
    return h;
}

static void strtab_free(imp_strtab *t)
{
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* The entry of @p s, or -1. */
static int64_t strtab_lookup(const imp_strtab *t, const char *s, size_t n)
{
    if (!t->n_slots)
        return -1;
    uint32_t mask = t->n_slots - 1u;
    uint32_t i = (uint32_t)hash_bytes(s, n) & mask;
    while (t->slot[i]) {
        uint32_t e = t->slot[i] - 1u;
        if (t->len[e] == n && memcmp(t->arena + t->off[e], s, n) == 0)
            return e;
        i = (i + 1u) & mask;
    }
    return -1;
}

static int strtab_rehash(imp_strtab *t, uint32_t n_slots)
{
    uint32_t *slot = calloc(n_slots, sizeof *slot);
    if (!slot)
        return -1;
    for (uint32_t e = 0; e < t->n; e++) {
        uint32_t i = (uint32_t)hash_bytes(t->arena + t->off[e], t->len[e]) &
                     (n_slots - 1u);
        while (slot[i])
            i = (i + 1u) & (n_slots - 1u);
        slot[i] = e + 1u;
    }
    free(t->slot);
    t->slot = slot;
    t->n_slots = n_slots;
    return 0;
}

/* The entry of @p s, inserted when new. Returns the entry, -1 when out of
 * memory, -2 when the table is full (IMP_MAX_IDS). */
static int64_t strtab_insert(imp_strtab *t, const char *s, size_t n)
{
    int64_t e = strtab_lookup(t, s, n);
    if (e >= 0)
        return e;
    if (t->n >= IMP_MAX_IDS)
        return -2;
    /* load factor at most 1/2 */
    if ((uint64_t)(t->n + 1u) * 2u > t->n_slots) {
        uint32_t ns = t->n_slots ? t->n_slots * 2u : 1024u;
        if (ns < t->n_slots || strtab_rehash(t, ns) != 0)
            return -1;
    }
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? (t->cap > UINT32_MAX / 2u ? UINT32_MAX
                                                          : t->cap * 2u)
                             : 1024u;
        size_t *no = realloc(t->off, (size_t)nc * sizeof *no);
        if (!no)
            return -1;
        t->off = no;
        uint32_t *nl = realloc(t->len, (size_t)nc * sizeof *nl);
        if (!nl)
            return -1;
        t->len = nl;
        t->cap = nc;
    }
    if (t->arena_cap - t->arena_len < n + 1) {
        size_t nc = t->arena_cap ? t->arena_cap : 1u << 16;
        while (nc - t->arena_len < n + 1) {
            if (nc > SIZE_MAX / 2)
                return -1;
            nc *= 2;
        }
        char *na = realloc(t->arena, nc);
        if (!na)
            return -1;
        t->arena = na;
        t->arena_cap = nc;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = '\0';
    t->off[t->n] = t->arena_len;
    t->len[t->n] = (uint32_t)n;
    t->arena_len += n + 1;
    uint32_t mask = t->n_slots - 1u;
    uint32_t i = (uint32_t)hash_bytes(s, n) & mask;
    while (t->slot[i])
        i = (i + 1u) & mask;
    t->slot[i] = t->n + 1u;
    return t->n++;
}

/* ------------------------------------------------------------------------ */
/* Record reader: physical lines of any length, records of fields           */
/* ------------------------------------------------------------------------ */

typedef struct reader {
    FILE *f;
    const char *path;
    char *line; /* getline's buffer; the current physical line */
    size_t line_cap;
    size_t line_len; /* without its line end */
    int pending;     /* line holds a physical line not consumed yet */
    int64_t line_no; /* physical lines read */
    int64_t rec_line; /* first physical line of the last record */
    /* the fields of the last record, each NUL-terminated in buf */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *fs, *fl; /* field start in buf, field length */
    size_t nf, fcap;
    int first_quoted; /* the first field was quoted (a blank record is not) */
    /* the syntax */
    const char *delim;
    size_t dlen;
    int quotes; /* RFC-4180 double quotes (csv) */
} reader;

/* The next physical line into r->line. Returns 1, 0 at the end, or -1
 * with @p err set (read error, NUL byte). */
static int next_line(reader *r, imp_error *err)
{
    if (r->pending) {
        r->pending = 0;
        return 1;
    }
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f) || errno == ENOMEM) {
            fail(err, IMP_ERR_RUNTIME, "%s: read error after line %lld: %s",
                 r->path, (long long)r->line_no,
                 errno ? strerror(errno) : "I/O error");
            return -1;
        }
        return 0;
    }
    r->line_no++;
    size_t len = (size_t)n;
    if (memchr(r->line, '\0', len)) {
        fail(err, IMP_ERR_RUNTIME,
             "%s:%lld: NUL byte in the input (a binary or compressed file? "
             "decompress it or convert it to text first)",
             r->path, (long long)r->line_no);
        return -1;
    }
    if (len && r->line[len - 1] == '\n')
        len--;
    if (len && r->line[len - 1] == '\r')
        len--;
    /* a UTF-8 byte order mark belongs to the file, not to the first field */
    if (r->line_no == 1 && len >= 3 && memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
        memmove(r->line, r->line + 3, len - 3);
        len -= 3;
    }
    r->line_len = len;
    return 1;
}

static int field_push(reader *r, size_t start, imp_error *err)
{
    if (r->nf == r->fcap) {
        size_t nc = r->fcap ? r->fcap * 2 : 16;
        size_t *a = realloc(r->fs, nc * sizeof *a);
        if (!a)
            return (oom(err), -1);
        r->fs = a;
        a = realloc(r->fl, nc * sizeof *a);
        if (!a)
            return (oom(err), -1);
        r->fl = a;
        r->fcap = nc;
    }
    r->fs[r->nf] = start;
    r->fl[r->nf] = r->buf_len - start;
    r->nf++;
    r->buf[r->buf_len++] = '\0';
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

enum { ST_START, ST_PLAIN, ST_QUOTED, ST_AFTER };

/* Read the next non-blank record. Returns 1 (fields in r), 0 at the end,
 * -2 for a malformed record (message in @p err, the record consumed), or
 * -1 (message in @p err: read error, NUL byte, out of memory). */
static int read_record(reader *r, imp_error *err)
{
    for (;;) {
        int rc = next_line(r, err);
        if (rc != 1)
            return rc; /* 0 or -1 */
        r->rec_line = r->line_no;
        r->buf_len = 0;
        r->nf = 0;
        r->first_quoted = 0;
        int state = ST_START, bad = 0;
        size_t start = 0;
        for (;;) {
            const char *p = r->line;
            size_t n = r->line_len;
            /* each byte yields at most one output byte plus a terminator */
            size_t need = r->buf_len + 2 * n + 4;
            if (need > r->buf_cap) {
                size_t nc = r->buf_cap ? r->buf_cap : 256;
                while (nc < need)
                    nc *= 2;
                char *nb = realloc(r->buf, nc);
                if (!nb)
                    return (oom(err), -1);
                r->buf = nb;
                r->buf_cap = nc;
            }
            for (size_t i = 0; i < n && !bad; i++) {
                char c = p[i];
                int at_delim = state != ST_QUOTED && n - i >= r->dlen &&
                               memcmp(p + i, r->delim, r->dlen) == 0;
                switch (state) {
                case ST_START:
                    if (at_delim) {
                        if (field_push(r, start, err) != 0)
                            return -1;
                        start = r->buf_len;
                        i += r->dlen - 1;
                    } else if (is_blank(c)) {
                        /* leading blanks are not part of the id */
                    } else if (r->quotes && c == '"') {
                        if (r->nf == 0)
                            r->first_quoted = 1;
                        state = ST_QUOTED;
                    } else {
                        r->buf[r->buf_len++] = c;
                        state = ST_PLAIN;
                    }
                    break;
                case ST_PLAIN:
                case ST_AFTER:
                    if (at_delim) {
                        if (state == ST_PLAIN)
                            while (r->buf_len > start &&
                                   is_blank(r->buf[r->buf_len - 1]))
                                r->buf_len--;
                        if (field_push(r, start, err) != 0)
                            return -1;
                        start = r->buf_len;
                        i += r->dlen - 1;
                        state = ST_START;
                    } else if (state == ST_PLAIN) {
                        r->buf[r->buf_len++] = c;
                    } else if (!is_blank(c)) {
                        char ex[64];
                        fail(err, IMP_ERR_RUNTIME,
                             "%s:%lld: field %zu: text after a closing quote "
                             "('%s'; write a quote inside a quoted field as "
                             "\"\")",
                             r->path, (long long)r->rec_line, r->nf + 1,
                             excerpt(ex, sizeof ex, p + i, n - i));
                        bad = 1;
                    }
                    break;
                default: /* ST_QUOTED */
                    if (c != '"') {
                        r->buf[r->buf_len++] = c;
                    } else if (i + 1 < n && p[i + 1] == '"') {
                        r->buf[r->buf_len++] = '"';
                        i++;
                    } else {
                        state = ST_AFTER;
                    }
                    break;
                }
            }
            if (bad)
                return -2;
            if (state != ST_QUOTED)
                break;
            /* a quoted field goes on over the line end */
            r->buf[r->buf_len++] = '\n';
            rc = next_line(r, err);
            if (rc == 0) {
                fail(err, IMP_ERR_RUNTIME,
                     "%s:%lld: field %zu: unterminated quote (the quoted "
                     "field opened here runs to the end of the file)",
                     r->path, (long long)r->rec_line, r->nf + 1);
                return -2;
            }
            if (rc != 1)
                return -1;
        }
        if (state == ST_PLAIN)
            while (r->buf_len > start && is_blank(r->buf[r->buf_len - 1]))
                r->buf_len--;
        if (field_push(r, start, err) != 0)
            return -1;
        if (r->nf == 1 && r->fl[0] == 0 && !r->first_quoted)
            continue; /* blank line */
        return 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Formats, header and columns                                              */
/* ------------------------------------------------------------------------ */

int imp_parse_delimiter(const char *s, char *out, size_t cap, imp_error *err)
{
    size_t o = 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '\\') {
            if (p[1] != 't' && p[1] != '\\') {
                fail(err, IMP_ERR_USAGE,
                     "--delimiter: unknown escape '\\%c' (only \\t and \\\\)",
                     p[1] ? p[1] : ' ');
                return -1;
            }
            c = p[1] == 't' ? '\t' : '\\';
            p++;
        }
        if (c == '\n' || c == '\r' || c == '"') {
            fail(err, IMP_ERR_USAGE, "--delimiter may not contain a line end "
                                     "or a double quote");
            return -1;
        }
        if (o + 1 >= cap) {
            fail(err, IMP_ERR_USAGE, "--delimiter: at most %zu bytes",
                 cap - 1);
            return -1;
        }
        out[o++] = c;
    }
    if (o == 0) {
        fail(err, IMP_ERR_USAGE, "--delimiter is empty");
        return -1;
    }
    out[o] = '\0';
    return 0;
}

static int ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && ieq(s + n - m, m, suffix);
}

/* Default column names, tried in this order (case-insensitive). */
static const char *const user_names[] = {
    "user_id", "user", "userid", "uid", "reviewerid", "customer_id",
    "customerid", "visitorid", "session_id", "sessionid", NULL};
static const char *const item_names[] = {
    "item_id", "item", "itemid", "iid", "movieid", "movie_id", "product_id",
    "productid", "asin", "business_id", "book_id", "track_id", NULL};
static const char *const time_names[] = {"timestamp", "time", "ts",
                                         "unixreviewtime", "unix_time", NULL};
static const char *const rating_names[] = {"rating", "score", "overall",
                                           "stars", NULL};

/* RecBole's field types, stripped from "name:type" header fields. */
static const char *const recbole_types[] = {"token", "token_seq", "float",
                                            "float_seq", NULL};

typedef struct header {
    int present;
    size_t n;
    char **name; /* malloc'd, typed suffixes stripped */
} header;

static void header_free(header *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->name[i]);
    free(h->name);
    memset(h, 0, sizeof *h);
}

static int header_take(header *h, const reader *r, imp_error *err)
{
    h->name = calloc(r->nf, sizeof *h->name);
    if (!h->name)
        return oom(err);
    h->n = r->nf;
    h->present = 1;
    for (size_t i = 0; i < r->nf; i++) {
        const char *s = r->buf + r->fs[i];
        size_t n = r->fl[i];
        const char *colon = memchr(s, ':', n);
        if (colon)
            for (int t = 0; recbole_types[t]; t++)
                if (ieq(colon + 1, n - (size_t)(colon + 1 - s),
                        recbole_types[t]))
                    n = (size_t)(colon - s);
        if (!(h->name[i] = malloc(n + 1)))
            return oom(err);
        memcpy(h->name[i], s, n);
        h->name[i][n] = '\0';
    }
    return IMP_OK;
}

/* "'a', 'b', ..." of the header, cut to fit @p cap. */
static const char *header_list(const header *h, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < h->n; i++) {
        char ex[64];
        int w = snprintf(buf + used, cap - used, "%s'%s'", i ? ", " : "",
                         excerpt(ex, sizeof ex, h->name[i],
                                 strlen(h->name[i])));
        if (w < 0 || (size_t)w >= cap - used) {
            if (cap > 5)
                snprintf(buf + (used < cap - 5 ? used : cap - 5),
                         cap - (used < cap - 5 ? used : cap - 5), ", ...");
            break;
        }
        used += (size_t)w;
    }
    return buf;
}

static int is_position(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* The first header column among @p names, or -1. */
static int find_default(const header *h, const char *const *names)
{
    for (int k = 0; names[k]; k++)
        for (size_t i = 0; i < h->n; i++)
            if (ieq(h->name[i], strlen(h->name[i]), names[k]))
                return (int)i;
    return -1;
}

/* A column of --OPT SPEC: a 1-based position or a header name (exact, else
 * the one case-insensitive match). *idx = 0-based index. */
static int resolve_col(const char *path, const char *opt, const char *spec,
                       const header *h, int *idx, imp_error *err)
{
    char list[700];
    if (is_position(spec)) {
        errno = 0;
        long v = strtol(spec, NULL, 10);
        if (v < 1 || v > 100000 || errno)
            return fail(err, IMP_ERR_USAGE,
                        "--%s %s: a column position is 1..100000", opt,
                        spec);
        if (h->present && (size_t)v > h->n)
            return fail(err, IMP_ERR_USAGE,
                        "--%s %s: the header of %s has %zu columns (%s)",
                        opt, spec, path, h->n,
                        header_list(h, list, sizeof list));
        *idx = (int)v - 1;
        return IMP_OK;
    }
    if (!h->present)
        return fail(err, IMP_ERR_USAGE,
                    "--%s '%s' names a column, but %s is read without a "
                    "header line (pass --header, or give a 1-based column "
                    "position)",
                    opt, spec, path);
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->name[i], spec) == 0) {
            *idx = (int)i;
            return IMP_OK;
        }
    int found = -1, many = 0;
    for (size_t i = 0; i < h->n; i++)
        if (ieq(h->name[i], strlen(h->name[i]), spec)) {
            many += found >= 0;
            if (found < 0)
                found = (int)i;
        }
    if (found >= 0 && !many) {
        *idx = found;
        return IMP_OK;
    }
    return fail(err, IMP_ERR_USAGE, "--%s: no column '%s' in the header of %s "
                                    "(columns: %s)",
                opt, spec, path, header_list(h, list, sizeof list));
}

/* The format @p path's name implies, or IMP_FMT_AUTO. */
static int format_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (ends_with_ci(base, ".csv"))
        return IMP_FMT_CSV;
    if (ends_with_ci(base, ".tsv"))
        return IMP_FMT_TSV;
    if (ends_with_ci(base, ".inter"))
        return IMP_FMT_INTER;
    if (ends_with_ci(base, ".dat"))
        return IMP_FMT_MLDAT;
    if (ends_with_ci(base, ".data"))
        return IMP_FMT_UDATA;
    return IMP_FMT_AUTO;
}

/* The format of a first line: "::" -> ml-dat, else the most frequent of
 * tab, ',', ';', '|' (a tab line with RecBole types -> inter). */
static int format_from_line(const char *s, size_t n, char *delim)
{
    static const char cand[] = {'\t', ',', ';', '|'};
    size_t count[4] = {0, 0, 0, 0}, best = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == ':' && s[i + 1] == ':')
            return IMP_FMT_MLDAT;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            count[k] += s[i] == cand[k];
    for (int k = 1; k < 4; k++)
        if (count[k] > count[best])
            best = (size_t)k;
    if (count[best] == 0)
        return IMP_FMT_AUTO;
    if (best == 0) {
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':')
                for (int t = 0; recbole_types[t]; t++) {
                    size_t m = strlen(recbole_types[t]);
                    if (n - i - 1 >= m &&
                        ieq(s + i + 1, m, recbole_types[t]) &&
                        (i + 1 + m == n || s[i + 1 + m] == '\t'))
                        return IMP_FMT_INTER;
                }
        return IMP_FMT_TSV;
    }
    if (best == 1)
        return IMP_FMT_CSV;
    delim[0] = cand[best];
    delim[1] = '\0';
    return IMP_FMT_DELIM;
}

/* ------------------------------------------------------------------------ */
/* Reading the rows                                                         */
/* ------------------------------------------------------------------------ */

/* Whether @p s could be a decimal number (strtod also takes hex, "inf",
 * "nan" and leading blanks, which a log's number never is). */
static int decimal_chars(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-' ||
              s[i] == '+' || s[i] == 'e' || s[i] == 'E'))
            return 0;
    return 1;
}

/* A time: integer part (floor) and fraction in [0, 1), so that integer
 * times of any size up to 2^63 compare exactly. Returns 0 or -1. */
static int parse_time(const char *s, size_t n, int64_t *ip, double *fp)
{
    size_t i = 0, digits = 0;
    int neg = 0;
    if (!decimal_chars(s, n))
        return -1;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i++;
    }
    uint64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        if (digits < 19)
            v = v * 10u + (uint64_t)(s[i] - '0');
    size_t dot = i, frac_digits = 0;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            frac_digits++;
    if (i == n && digits > 0 && digits <= 18) {
        double f = 0.0;
        if (frac_digits) {
            char *end = NULL;
            f = strtod(s + dot, &end);
            if (end != s + n || !(f >= 0.0 && f < 1.0))
                return -1;
        }
        int64_t iv = (int64_t)v;
        if (neg && f > 0.0) {
            iv = -iv - 1;
            f = 1.0 - f;
        } else if (neg) {
            iv = -iv;
        }
        *ip = iv;
        *fp = f;
        return 0;
    }
    /* exponents, ".5", very long integers: through strtod */
    char *end = NULL;
    double d = strtod(s, &end);
    if (end != s + n || !isfinite(d) || fabs(d) >= 9.0e18)
        return -1;
    double fl = floor(d);
    *ip = (int64_t)fl;
    *fp = d - fl;
    return 0;
}

static int parse_rating(const char *s, size_t n, double *out)
{
    char *end = NULL;
    if (!decimal_chars(s, n))
        return -1;
    double d = strtod(s, &end);
    if (end != s + n || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

typedef struct rows {
    uint32_t *user, *item;
    int64_t *ti;
    double *tf;
    size_t n, cap;
} rows;

static void rows_free(rows *r)
{
    free(r->user);
    free(r->item);
    free(r->ti);
    free(r->tf);
    memset(r, 0, sizeof *r);
}

static int rows_push(rows *r, uint32_t u, uint32_t it, int64_t ti, double tf,
                     int timed)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 4096;
        if (nc > IMP_MAX_ROWS)
            nc = IMP_MAX_ROWS;
        uint32_t *a = realloc(r->user, nc * sizeof *a);
        if (!a)
            return -1;
        r->user = a;
        a = realloc(r->item, nc * sizeof *a);
        if (!a)
            return -1;
        r->item = a;
        if (timed) {
            int64_t *t = realloc(r->ti, nc * sizeof *t);
            if (!t)
                return -1;
            r->ti = t;
            double *f = realloc(r->tf, nc * sizeof *f);
            if (!f)
                return -1;
            r->tf = f;
        }
        r->cap = nc;
    }
    r->user[r->n] = u;
    r->item[r->n] = it;
    if (timed) {
        r->ti[r->n] = ti;
        r->tf[r->n] = tf;
    }
    r->n++;
    return 0;
}

typedef struct cols {
    int user, item, time, rating; /* 0-based; -1 = not used */
    int need;                     /* fields a row must have */
} cols;

/* Check an external id field; returns NULL when fine, else the problem. */
static const char *id_problem(const char *s, size_t n)
{
    if (n == 0)
        return "is empty";
    if (n > UINT32_MAX)
        return "is longer than 4 GiB";
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
            return "contains a tab or a line break (the vocabulary file "
                   "could not hold it)";
    return NULL;
}

/* One data record into @p out. Returns IMP_OK, -2 for a malformed row
 * (message in @p err) or IMP_ERR_RUNTIME. */
static int take_row(const reader *r, const cols *c, const imp_config *cfg,
                    imp_result *res, rows *out, imp_error *err)
{
    char ex[64];
    if (r->nf < (size_t)c->need) {
        fail(err, IMP_ERR_RUNTIME,
             "%s:%lld: %zu field%s, expected at least %d (delimiter '%s')",
             r->path, (long long)r->rec_line, r->nf, r->nf == 1 ? "" : "s",
             c->need, r->delim[0] == '\t' ? "\\t" : r->delim);
        return -2;
    }
    const char *us = r->buf + r->fs[c->user], *is = r->buf + r->fs[c->item];
    size_t un = r->fl[c->user], in = r->fl[c->item];
    const char *why;
    if ((why = id_problem(us, un)) != NULL) {
        fail(err, IMP_ERR_RUNTIME, "%s:%lld: the user id (column %d) %s",
             r->path, (long long)r->rec_line, c->user + 1, why);
        return -2;
    }
    if ((why = id_problem(is, in)) != NULL) {
        fail(err, IMP_ERR_RUNTIME, "%s:%lld: the item id (column %d) %s",
             r->path, (long long)r->rec_line, c->item + 1, why);
        return -2;
    }
    int64_t ti = 0;
    double tf = 0.0, rating = 0.0;
    if (c->time >= 0 &&
        parse_time(r->buf + r->fs[c->time], r->fl[c->time], &ti, &tf) != 0) {
        fail(err, IMP_ERR_RUNTIME,
             "%s:%lld: time '%s' (column %d) is not a number (times must be "
             "integers or decimals, e.g. Unix seconds; --time none keeps the "
             "file order)",
             r->path, (long long)r->rec_line,
             excerpt(ex, sizeof ex, r->buf + r->fs[c->time], r->fl[c->time]),
             c->time + 1);
        return -2;
    }
    if (cfg->has_min_rating &&
        parse_rating(r->buf + r->fs[c->rating], r->fl[c->rating], &rating) !=
            0) {
        fail(err, IMP_ERR_RUNTIME,
             "%s:%lld: rating '%s' (column %d) is not a number", r->path,
             (long long)r->rec_line,
             excerpt(ex, sizeof ex, r->buf + r->fs[c->rating],
                     r->fl[c->rating]),
             c->rating + 1);
        return -2;
    }
    /* the user is registered even when the row is dropped below: users are
     * numbered in order of their first row in the file */
    int64_t ue = strtab_insert(&res->user_ids, us, un);
    int64_t ie = ue >= 0 ? strtab_insert(&res->item_ids, is, in) : ue;
    if (ue == -2 || ie == -2)
        return fail(err, IMP_ERR_RUNTIME,
                    "%s:%lld: more than %u distinct user or item ids",
                    r->path, (long long)r->rec_line, (unsigned)IMP_MAX_IDS);
    if (ue < 0 || ie < 0)
        return oom(err);
    if (cfg->has_min_rating && rating < cfg->min_rating) {
        res->st.min_rating_rows++;
        return IMP_OK;
    }
    if (out->n >= IMP_MAX_ROWS)
        return fail(err, IMP_ERR_RUNTIME, "%s:%lld: more than %u rows",
                    r->path, (long long)r->rec_line, (unsigned)IMP_MAX_ROWS);
    if (rows_push(out, (uint32_t)ue, (uint32_t)ie, ti, tf, c->time >= 0) != 0)
        return oom(err);
    return IMP_OK;
}

/* The format, delimiter and quoting of the run (the first line may be
 * sniffed: it stays pending in the reader). */
static int setup_format(const char *path, const imp_config *cfg, reader *rd,
                        imp_result *res, const char **how, imp_error *err)
{
    char given[16] = "", sniffed[2] = "";
    int fmt = cfg->format;
    if (cfg->delimiter &&
        imp_parse_delimiter(cfg->delimiter, given, sizeof given, err) != 0)
        return err->code;
    if (cfg->delimiter && fmt != IMP_FMT_AUTO && fmt != IMP_FMT_CSV &&
        fmt != IMP_FMT_DELIM)
        return fail(err, IMP_ERR_USAGE,
                    "--delimiter goes with --format delim or csv (the "
                    "delimiter of %s is fixed)",
                    imp_format_names[fmt]);
    if (fmt == IMP_FMT_DELIM && !cfg->delimiter)
        return fail(err, IMP_ERR_USAGE, "--format delim needs --delimiter");
    *how = "";
    if (fmt == IMP_FMT_AUTO) {
        fmt = format_from_name(path);
        *how = " (from the file name)";
        if (cfg->delimiter)
            fmt = fmt == IMP_FMT_CSV ? IMP_FMT_CSV : IMP_FMT_DELIM;
    }
    if (fmt == IMP_FMT_AUTO) {
        /* sniff the first non-blank line; it stays pending */
        int rc;
        for (;;) {
            rc = next_line(rd, err);
            if (rc != 1)
                break;
            size_t i = 0;
            while (i < rd->line_len && is_blank(rd->line[i]))
                i++;
            if (i < rd->line_len)
                break;
        }
        if (rc == 0)
            return fail(err, IMP_ERR_RUNTIME, "%s: no data rows (the file is "
                                              "empty)",
                        path);
        if (rc != 1)
            return IMP_ERR_RUNTIME;
        rd->pending = 1;
        fmt = format_from_line(rd->line, rd->line_len, sniffed);
        *how = " (from the first line)";
        if (fmt == IMP_FMT_AUTO)
            return fail(err, IMP_ERR_USAGE,
                        "cannot tell the format of %s from its name or its "
                        "first line (no tab, ',', ';', '|' or '::'): pass "
                        "--format",
                        path);
    }
    res->format = fmt;
    switch (fmt) {
    case IMP_FMT_CSV:
        strcpy(res->delim, given[0] ? given : ",");
        break;
    case IMP_FMT_MLDAT:
        strcpy(res->delim, "::");
        break;
    case IMP_FMT_DELIM:
        strcpy(res->delim, given[0] ? given : sniffed);
        break;
    default:
        strcpy(res->delim, "\t");
        break;
    }
    rd->delim = res->delim;
    rd->dlen = strlen(res->delim);
    rd->quotes = fmt == IMP_FMT_CSV;
    return IMP_OK;
}

static int named(const char *spec)
{
    return spec && !is_position(spec) && strcmp(spec, "none") != 0;
}

/* Whether the first record looks like a header: one of its fields is a
 * default column name. */
static int looks_like_header(const reader *r)
{
    static const char *const *const lists[] = {user_names, item_names,
                                               time_names, rating_names};
    for (size_t i = 0; i < r->nf; i++) {
        const char *s = r->buf + r->fs[i];
        size_t n = r->fl[i];
        const char *colon = memchr(s, ':', n);
        if (colon)
            n = (size_t)(colon - s);
        for (int l = 0; l < 4; l++)
            for (int k = 0; lists[l][k]; k++)
                if (ieq(s, n, lists[l][k]))
                    return 1;
    }
    return 0;
}

/* Choose the columns (options, else the format's defaults). */
static int setup_columns(const char *path, const imp_config *cfg,
                         const header *h, const char *how, imp_result *res,
                         cols *c, imp_error *err)
{
    int rc;
    int fixed = res->format == IMP_FMT_UDATA || res->format == IMP_FMT_MLDAT;
    c->user = 0;
    c->item = 1;
    c->time = -1;
    c->rating = -1;
    if (fixed) {
        c->rating = 2;
        c->time = 3;
    } else if (h->present) {
        int u = find_default(h, user_names), i = find_default(h, item_names);
        c->user = u >= 0 ? u : 0;
        c->item = i >= 0 ? i : 1;
        c->time = find_default(h, time_names);
        c->rating = find_default(h, rating_names);
    }
    if (cfg->user_col &&
        (rc = resolve_col(path, "user", cfg->user_col, h, &c->user, err)) !=
            IMP_OK)
        return rc;
    if (cfg->item_col &&
        (rc = resolve_col(path, "item", cfg->item_col, h, &c->item, err)) !=
            IMP_OK)
        return rc;
    if (cfg->time_col && strcmp(cfg->time_col, "none") == 0)
        c->time = -1;
    else if (cfg->time_col &&
             (rc = resolve_col(path, "time", cfg->time_col, h, &c->time,
                               err)) != IMP_OK)
        return rc;
    if (cfg->rating_col &&
        (rc = resolve_col(path, "rating", cfg->rating_col, h, &c->rating,
                          err)) != IMP_OK)
        return rc;
    if (c->user == c->item)
        return fail(err, IMP_ERR_USAGE,
                    "the user and item columns are the same (column %d)",
                    c->user + 1);
    if (cfg->has_min_rating && c->rating < 0)
        return fail(err, IMP_ERR_USAGE,
                    "--min-rating needs a rating column: %s has none by "
                    "default, pass --rating COL",
                    path);
    c->need = c->user > c->item ? c->user : c->item;
    if (c->time > c->need)
        c->need = c->time;
    if (cfg->has_min_rating && c->rating > c->need)
        c->need = c->rating;
    c->need++;

    /* "format csv, header line, user: 'userId' (column 1), ..." for the
     * summary */
    char *p = res->columns;
    size_t cap = sizeof res->columns, used = 0;
    rc = snprintf(p, cap, "format %s%s, %s, ", imp_format_names[res->format],
                  how, h->present ? "header line" : "no header line");
    used = rc > 0 ? (size_t)rc : 0;
    const char *what[4] = {"user", "item", "time", "rating"};
    int idx[4] = {c->user, c->item, c->time,
                  cfg->has_min_rating ? c->rating : -1};
    for (int k = 0; k < 4 && used + 1 < cap; k++) {
        char ex[64];
        int w;
        if (idx[k] < 0)
            w = snprintf(p + used, cap - used, "%s%s: %s", k ? ", " : "",
                         what[k],
                         k == 2 ? "none (file order)" : "not used");
        else if (h->present && (size_t)idx[k] < h->n)
            w = snprintf(p + used, cap - used, "%s%s: '%s' (column %d)",
                         k ? ", " : "", what[k],
                         excerpt(ex, sizeof ex, h->name[idx[k]],
                                 strlen(h->name[idx[k]])),
                         idx[k] + 1);
        else
            w = snprintf(p + used, cap - used, "%s%s: column %d",
                         k ? ", " : "", what[k], idx[k] + 1);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return IMP_OK;
}

/* ------------------------------------------------------------------------ */
/* Ordering and filters                                                     */
/* ------------------------------------------------------------------------ */

/* qsort has no context argument: the times of the rows being sorted. */
static const int64_t *sort_ti;
static const double *sort_tf;

static int cmp_time(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_ti[x] != sort_ti[y])
        return sort_ti[x] < sort_ti[y] ? -1 : 1;
    if (sort_tf[x] != sort_tf[y])
        return sort_tf[x] < sort_tf[y] ? -1 : 1;
    return (x > y) - (x < y); /* file order: a stable sort */
}

/* The sequences in CSR form over table entries: user entry u's items are
 * item[off[u] .. off[u + 1]), oldest first. */
typedef struct seqs {
    int64_t *off; /* n_users + 1 */
    uint32_t *item;
    uint32_t n_users, n_items;
    int64_t n;
} seqs;

/* Group the rows by user (in order of the users' first rows), each
 * user's rows by time, stably. Frees @p rw. */
static int order_rows(rows *rw, uint32_t n_users, uint32_t n_items,
                      seqs *s, imp_error *err)
{
    size_t n = rw->n;
    uint32_t *perm = malloc((n ? n : 1) * sizeof *perm);
    s->off = calloc((size_t)n_users + 1, sizeof *s->off);
    if (!perm || !s->off) {
        free(perm);
        return oom(err);
    }
    s->n_users = n_users;
    s->n_items = n_items;
    s->n = (int64_t)n;
    for (size_t k = 0; k < n; k++)
        s->off[rw->user[k] + 1]++;
    for (uint32_t u = 0; u < n_users; u++)
        s->off[u + 1] += s->off[u];
    {
        int64_t *fill = malloc(((size_t)n_users + 1) * sizeof *fill);
        if (!fill) {
            free(perm);
            return oom(err);
        }
        memcpy(fill, s->off, ((size_t)n_users + 1) * sizeof *fill);
        for (size_t k = 0; k < n; k++)
            perm[fill[rw->user[k]]++] = (uint32_t)k;
        free(fill);
    }
    if (rw->ti) {
        sort_ti = rw->ti;
        sort_tf = rw->tf;
        for (uint32_t u = 0; u < n_users; u++) {
            uint32_t *p = perm + s->off[u];
            size_t m = (size_t)(s->off[u + 1] - s->off[u]), j = 1;
            /* logs are often sorted already */
            while (j < m && cmp_time(&p[j - 1], &p[j]) < 0)
                j++;
            if (j < m)
                qsort(p, m, sizeof *p, cmp_time);
        }
        sort_ti = NULL;
        sort_tf = NULL;
    }
    /* the items in place of the row numbers */
    for (size_t k = 0; k < n; k++)
        perm[k] = rw->item[perm[k]];
    s->item = perm;
    rows_free(rw);
    return IMP_OK;
}

/* Keep the first or the last occurrence of every (user, item) pair. */
static int dedup(seqs *s, int mode, int64_t *dropped, imp_error *err)
{
    const uint32_t gone = UINT32_MAX;
    uint32_t *stamp = calloc((size_t)s->n_items + 1, sizeof *stamp);
    if (!stamp)
        return oom(err);
    for (uint32_t u = 0; u < s->n_users; u++) {
        int64_t a = s->off[u], b = s->off[u + 1];
        if (mode == IMP_DEDUP_FIRST) {
            for (int64_t k = a; k < b; k++) {
                if (stamp[s->item[k]] == u + 1u)
                    s->item[k] = gone;
                else
                    stamp[s->item[k]] = u + 1u;
            }
        } else {
            for (int64_t k = b - 1; k >= a; k--) {
                if (stamp[s->item[k]] == u + 1u)
                    s->item[k] = gone;
                else
                    stamp[s->item[k]] = u + 1u;
            }
        }
    }
    free(stamp);
    /* compact */
    int64_t w = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        int64_t a = s->off[u], b = s->off[u + 1];
        s->off[u] = w;
        for (int64_t k = a; k < b; k++)
            if (s->item[k] != gone)
                s->item[w++] = s->item[k];
    }
    s->off[s->n_users] = w;
    *dropped = s->n - w;
    s->n = w;
    return IMP_OK;
}

/* State of the k-core peeling over the interactions of seqs. */
typedef struct core {
    uint8_t *alive;     /* per interaction */
    uint32_t *pos_user; /* interaction -> user */
    int64_t *ioff;      /* item CSR: n_items + 1 */
    uint32_t *ipos;     /* interactions of each item */
    int64_t *ucnt, *icnt;
    uint8_t *ugone, *igone;
    uint32_t *queue; /* users as u, items as n_users + i */
} core;

static void core_free(core *c)
{
    free(c->alive);
    free(c->pos_user);
    free(c->ioff);
    free(c->ipos);
    free(c->ucnt);
    free(c->icnt);
    free(c->ugone);
    free(c->igone);
    free(c->queue);
    memset(c, 0, sizeof *c);
}

static int core_init(core *c, const seqs *s, imp_error *err)
{
    size_t n = (size_t)s->n ? (size_t)s->n : 1;
    size_t nu = (size_t)s->n_users, ni = (size_t)s->n_items;
    memset(c, 0, sizeof *c);
    c->alive = malloc(n);
    c->pos_user = malloc(n * sizeof *c->pos_user);
    c->ioff = calloc(ni + 1, sizeof *c->ioff);
    c->ipos = malloc(n * sizeof *c->ipos);
    c->ucnt = calloc(nu + 1, sizeof *c->ucnt);
    c->icnt = calloc(ni + 1, sizeof *c->icnt);
    c->ugone = calloc(nu + 1, 1);
    c->igone = calloc(ni + 1, 1);
    c->queue = malloc((nu + ni + 1) * sizeof *c->queue);
    if (!c->alive || !c->pos_user || !c->ioff || !c->ipos || !c->ucnt ||
        !c->icnt || !c->ugone || !c->igone || !c->queue) {
        core_free(c);
        return oom(err);
    }
    memset(c->alive, 1, n);
    for (uint32_t u = 0; u < s->n_users; u++) {
        c->ucnt[u] = s->off[u + 1] - s->off[u];
        for (int64_t k = s->off[u]; k < s->off[u + 1]; k++) {
            c->pos_user[k] = u;
            c->ioff[s->item[k] + 1]++;
        }
    }
    for (size_t i = 0; i < ni; i++) {
        c->icnt[i] = c->ioff[i + 1];
        c->ioff[i + 1] += c->ioff[i];
    }
    int64_t *fill = malloc((ni + 1) * sizeof *fill);
    if (!fill) {
        core_free(c);
        return oom(err);
    }
    memcpy(fill, c->ioff, (ni + 1) * sizeof *fill);
    for (int64_t k = 0; k < s->n; k++)
        c->ipos[fill[s->item[k]]++] = (uint32_t)k;
    free(fill);
    return IMP_OK;
}

/* Peel users with fewer than @p uthr and items with fewer than @p ithr
 * live interactions until none is left (the result, the largest
 * sub-log where every user has >= uthr and every item >= ithr, does not
 * depend on the order of removal). Adds the users, items and
 * interactions it removed to the counters. */
static void core_peel(core *c, const seqs *s, int64_t uthr, int64_t ithr,
                      int64_t *users, int64_t *items, int64_t *inter)
{
    size_t qh = 0, qt = 0;
    uint32_t nu = s->n_users;
    for (uint32_t u = 0; u < nu; u++)
        if (!c->ugone[u] && c->ucnt[u] > 0 && c->ucnt[u] < uthr) {
            c->ugone[u] = 1;
            c->queue[qt++] = u;
        }
    for (uint32_t i = 0; i < s->n_items; i++)
        if (!c->igone[i] && c->icnt[i] > 0 && c->icnt[i] < ithr) {
            c->igone[i] = 1;
            c->queue[qt++] = nu + i;
        }
    while (qh < qt) {
        uint32_t x = c->queue[qh++];
        if (x < nu) {
            (*users)++;
            for (int64_t k = s->off[x]; k < s->off[x + 1]; k++) {
                if (!c->alive[k])
                    continue;
                uint32_t i = s->item[k];
                c->alive[k] = 0;
                (*inter)++;
                c->ucnt[x]--;
                if (--c->icnt[i] < ithr && !c->igone[i]) {
                    c->igone[i] = 1;
                    c->queue[qt++] = nu + i;
                }
            }
        } else {
            uint32_t i = x - nu;
            (*items)++;
            for (int64_t j = c->ioff[i]; j < c->ioff[i + 1]; j++) {
                uint32_t k = c->ipos[j];
                if (!c->alive[k])
                    continue;
                uint32_t u = c->pos_user[k];
                c->alive[k] = 0;
                (*inter)++;
                c->icnt[i]--;
                if (--c->ucnt[u] < uthr && !c->ugone[u]) {
                    c->ugone[u] = 1;
                    c->queue[qt++] = u;
                }
            }
        }
    }
}

/* Apply the k-core and --min-len, then drop what they removed from @p s.
 * Returns the longest sequence before --min-len in @p longest. */
static int filter_core(seqs *s, const imp_config *cfg, imp_stats *st,
                       int64_t *longest, imp_error *err)
{
    int64_t uthr = cfg->user_core > 1 ? cfg->user_core : 1;
    int64_t ithr = cfg->item_core > 1 ? cfg->item_core : 1;
    int64_t lthr = cfg->min_len > uthr ? cfg->min_len : uthr;
    core c;
    *longest = 0;
    if (uthr <= 1 && ithr <= 1 && lthr <= 1) {
        for (uint32_t u = 0; u < s->n_users; u++)
            if (s->off[u + 1] - s->off[u] > *longest)
                *longest = s->off[u + 1] - s->off[u];
        return IMP_OK;
    }
    int rc = core_init(&c, s, err);
    if (rc != IMP_OK)
        return rc;
    core_peel(&c, s, uthr, ithr, &st->kcore_users, &st->kcore_items,
              &st->kcore_rows);
    for (uint32_t u = 0; u < s->n_users; u++)
        if (c.ucnt[u] > *longest)
            *longest = c.ucnt[u];
    if (lthr > uthr)
        core_peel(&c, s, lthr, ithr, &st->min_len_users, &st->min_len_items,
                  &st->min_len_rows);
    int64_t w = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        int64_t a = s->off[u], b = s->off[u + 1];
        s->off[u] = w;
        for (int64_t k = a; k < b; k++)
            if (c.alive[k])
                s->item[w++] = s->item[k];
    }
    s->off[s->n_users] = w;
    s->n = w;
    core_free(&c);
    return IMP_OK;
}

/* Dense ids: users in order of their first row in the file, items in
 * order of first appearance in the output. */
static int number(seqs *s, imp_result *res, imp_error *err)
{
    uint32_t nu = 0, ni = 0;
    for (uint32_t u = 0; u < s->n_users; u++)
        nu += s->off[u + 1] > s->off[u];
    res->offsets = malloc(((size_t)nu + 1) * sizeof *res->offsets);
    res->items = malloc(((size_t)s->n ? (size_t)s->n : 1) *
                        sizeof *res->items);
    res->user_entry = malloc(((size_t)nu ? nu : 1) * sizeof *res->user_entry);
    res->item_dense = calloc((size_t)s->n_items + 1, sizeof *res->item_dense);
    res->item_entry = malloc(((size_t)s->n_items + 1) *
                             sizeof *res->item_entry);
    if (!res->offsets || !res->items || !res->user_entry ||
        !res->item_dense || !res->item_entry)
        return oom(err);
    int64_t w = 0;
    uint32_t du = 0;
    res->offsets[0] = 0;
    for (uint32_t u = 0; u < s->n_users; u++) {
        if (s->off[u + 1] == s->off[u])
            continue;
        res->user_entry[du++] = u;
        for (int64_t k = s->off[u]; k < s->off[u + 1]; k++) {
            uint32_t i = s->item[k];
            if (!res->item_dense[i]) {
                res->item_entry[ni] = i;
                res->item_dense[i] = (int32_t)++ni;
            }
            res->items[w++] = res->item_dense[i];
        }
        res->offsets[du] = w;
    }
    res->n_users = du;
    res->n_items = (int32_t)ni;
    res->st.n_users = du;
    res->st.n_items = ni;
    res->st.n_rows = w;
    return IMP_OK;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

static void reader_free(reader *r)
{
    free(r->line);
    free(r->buf);
    free(r->fs);
    free(r->fl);
    if (r->f)
        fclose(r->f);
    memset(r, 0, sizeof *r);
}

/* Read every row of the file into @p rw. */
static int read_all(const char *path, const imp_config *cfg, reader *rd,
                    imp_result *res, rows *rw, imp_error *err)
{
    header h;
    cols c;
    const char *how = "";
    int rc;
    memset(&h, 0, sizeof h);
    rc = setup_format(path, cfg, rd, res, &how, err);
    if (rc != IMP_OK)
        return rc;
    int hdr = cfg->header;
    if (hdr < 0) {
        /* naming a column only makes sense with a header */
        if (res->format == IMP_FMT_INTER || named(cfg->user_col) ||
            named(cfg->item_col) || named(cfg->time_col) ||
            named(cfg->rating_col))
            hdr = 1;
        else if (res->format == IMP_FMT_UDATA || res->format == IMP_FMT_MLDAT)
            hdr = 0;
    }
    int have = read_record(rd, err);
    if (have == 0)
        return fail(err, IMP_ERR_RUNTIME, "%s: no data rows (the file is "
                                          "empty)",
                    path);
    if (have == -1 || (have == -2 && hdr == 1))
        return IMP_ERR_RUNTIME; /* I/O, or the header itself is malformed */
    if (have == 1 && hdr < 0)
        hdr = looks_like_header(rd);
    if (have == 1 && hdr == 1) {
        if ((rc = header_take(&h, rd, err)) != IMP_OK)
            goto done;
        have = read_record(rd, err);
    }
    res->header = hdr == 1;
    if ((rc = setup_columns(path, cfg, &h, how, res, &c, err)) != IMP_OK)
        goto done;
    for (; have != 0; have = read_record(rd, err)) {
        if (have == -1) {
            rc = IMP_ERR_RUNTIME;
            goto done;
        }
        res->st.rows_read++;
        if (have == 1) {
            int tr = take_row(rd, &c, cfg, res, rw, err);
            if (tr == IMP_OK)
                continue;
            if (tr != -2) {
                rc = tr;
                goto done;
            }
        }
        /* a malformed row */
        if (!cfg->skip_bad) {
            size_t used = strlen(err->msg);
            snprintf(err->msg + used, sizeof err->msg - used,
                     " (--skip-bad skips such rows)");
            rc = err->code = IMP_ERR_RUNTIME;
            goto done;
        }
        if (!res->st.bad_rows++) {
            res->st.first_bad_line = rd->rec_line;
            snprintf(res->st.first_bad, sizeof res->st.first_bad, "%s",
                     err->msg);
        }
    }
    rc = IMP_OK;
    if (res->st.rows_read == 0)
        rc = fail(err, IMP_ERR_RUNTIME, "%s: no data rows (%s)", path,
                  res->header ? "only a header line" : "only blank lines");
done:
    header_free(&h);
    return rc;
}

int imp_run(const char *path, const imp_config *cfg, imp_result *res,
            imp_error *err)
{
    reader rd;
    rows rw;
    seqs s;
    int rc;
    memset(res, 0, sizeof *res);
    memset(&rd, 0, sizeof rd);
    memset(&rw, 0, sizeof rw);
    memset(&s, 0, sizeof s);
    err->code = IMP_OK;
    err->msg[0] = '\0';

    rd.path = path;
    rd.f = fopen(path, "rb");
    if (!rd.f)
        return fail(err, IMP_ERR_RUNTIME, "cannot open '%s': %s", path,
                    strerror(errno));
    rc = read_all(path, cfg, &rd, res, &rw, err);
    reader_free(&rd);
    if (rc != IMP_OK) {
        rows_free(&rw);
        return rc;
    }
    res->st.users_seen = res->user_ids.n;
    res->st.items_seen = res->item_ids.n;
    int64_t valid = res->st.rows_read - res->st.bad_rows;
    if (valid == 0) {
        rows_free(&rw);
        return fail(err, IMP_ERR_RUNTIME,
                    "%s: all %lld rows are malformed (skipped by "
                    "--skip-bad; the first: %s)",
                    path, (long long)res->st.rows_read, res->st.first_bad);
    }
    if (rw.n == 0) {
        rows_free(&rw);
        return fail(err, IMP_ERR_RUNTIME,
                    "--min-rating %g removed every row (%lld rows below it)",
                    cfg->min_rating, (long long)res->st.min_rating_rows);
    }
    rc = order_rows(&rw, res->user_ids.n, res->item_ids.n, &s, err);
    if (rc == IMP_OK && cfg->dedup != IMP_DEDUP_NONE)
        rc = dedup(&s, cfg->dedup, &res->st.dedup_rows, err);
    if (rc == IMP_OK) {
        for (uint32_t u = 0; u < s.n_users; u++)
            res->st.empty_users += s.off[u + 1] == s.off[u];
        int64_t longest = 0;
        rc = filter_core(&s, cfg, &res->st, &longest, err);
        if (rc == IMP_OK && s.n == 0) {
            if (res->st.min_len_rows == 0)
                rc = fail(err, IMP_ERR_RUNTIME,
                          "--user-core %lld / --item-core %lld removed every "
                          "interaction: no part of the log has every user "
                          "with >= %lld and every item with >= %lld "
                          "interactions (lower them)",
                          (long long)cfg->user_core,
                          (long long)cfg->item_core,
                          (long long)cfg->user_core,
                          (long long)cfg->item_core);
            else
                rc = fail(err, IMP_ERR_RUNTIME,
                          "--min-len %lld removed every user (the longest "
                          "sequence left has %lld interactions)",
                          (long long)cfg->min_len, (long long)longest);
        }
    }
    if (rc == IMP_OK)
        rc = number(&s, res, err);
    rows_free(&rw);
    free(s.off);
    free(s.item);
    return rc;
}

void imp_result_free(imp_result *res)
{
    free(res->offsets);
    free(res->items);
    free(res->user_entry);
    free(res->item_entry);
    free(res->item_dense);
    strtab_free(&res->user_ids);
    strtab_free(&res->item_ids);
    memset(res, 0, sizeof *res);
}

const char *imp_user_ext(const imp_result *res, int64_t u, size_t *len)
{
    uint32_t e = res->user_entry[u];
    *len = res->user_ids.len[e];
    return res->user_ids.arena + res->user_ids.off[e];
}

const char *imp_item_ext(const imp_result *res, int32_t i, size_t *len)
{
    uint32_t e = res->item_entry[i];
    *len = res->item_ids.len[e];
    return res->item_ids.arena + res->item_ids.off[e];
}

int32_t imp_item_dense(const imp_result *res, const char *s, size_t n)
{
    int64_t e = strtab_lookup(&res->item_ids, s, n);
    return e < 0 ? 0 : res->item_dense[e];
}

/* ------------------------------------------------------------------------ */
/* Item text re-keying                                                      */
/* ------------------------------------------------------------------------ */

typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf;

static int obuf_put(obuf *o, const char *s, size_t n)
{
    if (o->cap - o->len < n) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc - o->len < n) {
            if (nc > SIZE_MAX / 2)
                return -1;
            nc *= 2;
        }
        char *np = realloc(o->p, nc);
        if (!np)
            return -1;
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return 0;
}

int imp_rekey_text(const char *buf, size_t len, const char *name,
                   const imp_result *res, char **out, size_t *out_len,
                   imp_text_stats *ts, imp_error *err)
{
    obuf o = {NULL, 0, 0};
    const char *p = buf, *end = buf + len;
    const char *head = NULL;
    size_t head_len = 0, n_tabs = 0;
    /* per dense id: the first row's text after the id (from its tab) */
    const char **rest = calloc((size_t)res->n_items + 1, sizeof *rest);
    size_t *rest_len = calloc((size_t)res->n_items + 1, sizeof *rest_len);
    uint8_t *have = calloc((size_t)res->n_items + 1, 1);
    int rc = IMP_OK;
    *out = NULL;
    *out_len = 0;
    memset(ts, 0, sizeof *ts);
    if (!rest || !rest_len || !have) {
        rc = oom(err);
        goto done;
    }
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    if (memchr(p, '\0', (size_t)(end - p))) {
        rc = fail(err, IMP_ERR_RUNTIME,
                  "%s: NUL byte in the input (expected a tab-separated text "
                  "file)",
                  name);
        goto done;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *next = nl ? nl + 1 : end;
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll == 0) { /* blank line */
            p = next;
            continue;
        }
        const char *le = p + ll;
        const char *tab = memchr(p, '\t', ll);
        if (!head) {
            head = tab ? tab : le;
            head_len = (size_t)(le - head);
            for (const char *q = head; q < le; q++)
                n_tabs += *q == '\t';
            p = next;
            continue;
        }
        const char *fe = tab ? tab : le;
        const char *fs = p;
        while (fs < fe && *fs == ' ')
            fs++;
        while (fe > fs && fe[-1] == ' ')
            fe--;
        int32_t d = imp_item_dense(res, fs, (size_t)(fe - fs));
        if (d == 0) {
            ts->unknown++;
        } else if (have[d]) {
            ts->repeated++;
        } else {
            have[d] = 1;
            rest[d] = tab ? tab : le;
            rest_len[d] = (size_t)(le - rest[d]);
            ts->written++;
        }
        p = next;
    }
    if (!head) {
        rc = fail(err, IMP_ERR_RUNTIME,
                  "%s: empty file (expected a header line whose first column "
                  "is the item id, then one line per item)",
                  name);
        goto done;
    }
    /* one row per dense id, in id order: embed-text then writes a row for
     * every item of the sequence file */
    if (obuf_put(&o, "item_id", 7) != 0 || obuf_put(&o, head, head_len) != 0 ||
        obuf_put(&o, "\n", 1) != 0) {
        rc = oom(err);
        goto done;
    }
    for (int32_t d = 1; d <= res->n_items; d++) {
        char num[24];
        int nn = snprintf(num, sizeof num, "%ld", (long)d);
        int bad = obuf_put(&o, num, (size_t)nn) != 0;
        if (have[d]) {
            bad |= obuf_put(&o, rest[d], rest_len[d]) != 0;
        } else {
            ts->empty++;
            for (size_t k = 0; k < n_tabs && !bad; k++)
                bad |= obuf_put(&o, "\t", 1) != 0;
        }
        bad |= obuf_put(&o, "\n", 1) != 0;
        if (bad) {
            rc = oom(err);
            goto done;
        }
    }
    *out = o.p;
    *out_len = o.len;
    o.p = NULL;
done:
    free(o.p);
    free(rest);
    free(rest_len);
    free(have);
    return rc;
}
