/* iadsr command-line tool: option parsing, errors, output helpers.
 * SPDX-License-Identifier: MIT
 */
/* realpath(3) is XSI in glibc's headers */
#define _XOPEN_SOURCE 700
#include "cli/cli.h"
#include "common/alloc.h"
#include "data/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "iadsr: CMD: MSG" on stderr, without the line end. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 0)))
#endif
static void vreport(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "iadsr: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'iadsr %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_RUNTIME;
}

int cli_lib_error(const char *cmd, const char *what, const char *path, int rc)
{
    char msg[1024];
    const char *e = iadsr_last_error();
    /* Copy first: the message is only valid until the next library call. */
    snprintf(msg, sizeof msg, "%s", (e && *e) ? e : "");
    if (!msg[0])
        snprintf(msg, sizeof msg, "%s (%s)", iadsr_strerror(rc),
                 iadsr_status_name(rc));
    fprintf(stderr, "iadsr: %s: ", cmd);
    if (what)
        fprintf(stderr, "%s: ", what);
    if (path && !strstr(msg, path))
        fprintf(stderr, "%s: ", path);
    fprintf(stderr, "%s\n", msg);
    return CLI_RUNTIME;
}

/* Numbers must start with a digit or a sign (strtol/strtod would skip
 * leading blanks) and be consumed entirely. */
static int number_start_ok(const char *s)
{
    return s && ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' ||
                 *s == '.');
}

/* Parse all of @p s as a number of option kind @p kind (OPT_I64, OPT_U64
 * or OPT_DBL, finite) into @p out (int64_t, uint64_t or double). Returns
 * 0, or -1 with @p out untouched. */
static int parse_number(const char *s, int kind, void *out)
{
    char *end = NULL;
    long long i = 0;
    unsigned long long u = 0;
    double d = 0.0;
    if (!number_start_ok(s) || (kind == OPT_U64 && *s == '-'))
        return -1;
    errno = 0;
    if (kind == OPT_I64)
        i = strtoll(s, &end, 10);
    else if (kind == OPT_U64)
        u = strtoull(s, &end, 10);
    else
        d = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    if (kind == OPT_DBL && errno == ERANGE)
        return fabs(d) > 1.0 ? -3 : -2; /* overflow / underflow */
    if (errno != 0 || !isfinite(d))
        return -1;
    /* the library computes in float: a value below float's smallest normal
     * would arrive as a denormal or 0 */
    if (kind == OPT_DBL && d != 0.0 && fabs(d) < (double)FLT_MIN)
        return -2;
    if (kind == OPT_I64)
        *(int64_t *)out = (int64_t)i;
    else if (kind == OPT_U64)
        *(uint64_t *)out = (uint64_t)u;
    else
        *(double *)out = d;
    return 0;
}

static cli_opt *find_opt(cli_opt *opts, size_t n, const char *name,
                         size_t name_len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == name_len &&
            strncmp(opts[i].name, name, name_len) == 0)
            return &opts[i];
    return NULL;
}

static int set_value(const char *cmd, cli_opt *o, const char *val)
{
    switch (o->kind) {
    case OPT_STR:
        if (!val[0])
            return cli_usage_error(cmd, "--%s needs a non-empty value",
                                   o->name);
        *(const char **)o->dst = val;
        return 0;
    case OPT_I64: {
        int64_t v;
        if (parse_number(val, OPT_I64, &v) != 0)
            return cli_usage_error(cmd, "--%s: '%s' is not an integer",
                                   o->name, val);
        if (v < o->ilo || v > o->ihi)
            return cli_usage_error(cmd, "--%s: %s is outside %lld..%lld",
                                   o->name, val, (long long)o->ilo,
                                   (long long)o->ihi);
        *(int64_t *)o->dst = v;
        return 0;
    }
    case OPT_U64: {
        uint64_t v;
        if (parse_number(val, OPT_U64, &v) != 0)
            return cli_usage_error(
                cmd, "--%s: '%s' is not a non-negative integer below 2^64",
                o->name, val);
        *(uint64_t *)o->dst = v;
        return 0;
    }
    case OPT_DBL: {
        double v;
        int bad;
        int pr = parse_number(val, OPT_DBL, &v);
        if (pr == -2)
            return cli_usage_error(cmd, "--%s: '%s' is too close to 0 to "
                                        "represent (it underflows); write 0 "
                                        "or a magnitude of at least %g",
                                   o->name, val, (double)FLT_MIN);
        if (pr == -3)
            return cli_usage_error(cmd, "--%s: '%s' is too large to "
                                        "represent (it overflows)",
                                   o->name, val);
        if (pr != 0)
            return cli_usage_error(cmd, "--%s: '%s' is not a finite number",
                                   o->name, val);
        bad = (o->flags & OPT_LO_OPEN) ? !(v > o->dlo) : !(v >= o->dlo);
        bad |= (o->flags & OPT_HI_OPEN) ? !(v < o->dhi) : !(v <= o->dhi);
        if (bad)
            return cli_usage_error(cmd, "--%s: %s is outside %s%g, %g%s",
                                   o->name, val,
                                   (o->flags & OPT_LO_OPEN) ? "(" : "[",
                                   o->dlo, o->dhi,
                                   (o->flags & OPT_HI_OPEN) ? ")" : "]");
        *(double *)o->dst = v;
        return 0;
    }
    case OPT_CHOICE:
        for (int i = 0; o->choices && o->choices[i]; i++)
            if (strcmp(o->choices[i], val) == 0) {
                *(int *)o->dst = i;
                return 0;
            }
        {
            char list[256] = "";
            size_t used = 0;
            for (int i = 0; o->choices && o->choices[i]; i++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s",
                                 i ? ", " : "", o->choices[i]);
                if (w < 0 || (size_t)w >= sizeof list - used)
                    break;
                used += (size_t)w;
            }
            return cli_usage_error(cmd, "--%s: '%s' is not one of: %s",
                                   o->name, val, list);
        }
    default:
        return cli_usage_error(cmd, "internal error: bad option kind");
    }
}

/* Returns 0 on success, 1 when --help/-h was given, CLI_USAGE after
 * printing a usage message naming @p cmd. */
static int parse_args(const char *cmd, int argc, char **argv, cli_opt *opts,
                     size_t n_opts)
{
    for (size_t i = 0; i < n_opts; i++)
        opts[i].seen = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *name, *eq, *val = NULL;
        size_t name_len;
        cli_opt *o;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        name = a + 2;
        eq = strchr(name, '=');
        name_len = eq ? (size_t)(eq - name) : strlen(name);
        o = find_opt(opts, n_opts, name, name_len);
        if (!o)
            return cli_usage_error(cmd, "unknown option '--%.*s'",
                                   (int)(name_len > 200 ? 200 : name_len),
                                   name);
        if (o->kind == OPT_FLAG) {
            if (eq)
                return cli_usage_error(cmd, "--%s takes no value", o->name);
            *(int *)o->dst = 1;
            o->seen = 1;
            continue;
        }
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "--%s needs a value", o->name);
            val = argv[++i];
        }
        if (set_value(cmd, o, val) != 0)
            return CLI_USAGE;
        o->seen = 1;
    }
    for (size_t i = 0; i < n_opts; i++)
        if ((opts[i].flags & OPT_REQUIRED) && !opts[i].seen)
            return cli_usage_error(cmd, "missing required option --%s",
                                   opts[i].name);
    return 0;
}

static char *dir_of(const char *path);

/* @p path as a file that may not exist yet: the links of its last
 * component followed, its directory made absolute (realpath), malloc'd;
 * NULL when out of memory. A directory that does not exist stays as
 * written (nothing can be created there anyway). */
static char *resolved_new_path(const char *path)
{
    char *target = NULL;
    int kind;
    if (iadsr__write_target(path, &target, &kind) != IADSR_OK) {
        iadsr_clear_error();
        target = NULL;
    }
    const char *t = target ? target : path;
    const char *slash = strrchr(t, '/');
    const char *base = slash ? slash + 1 : t;
    char *dir = dir_of(t), *out = NULL;
    char *real = dir ? realpath(dir, NULL) : NULL;
    const char *d = real ? real : dir;
    if (d && (out = malloc(strlen(d) + strlen(base) + 2)) != NULL)
        sprintf(out, "%s/%s", d, base);
    free(real);
    free(dir);
    iadsr__free(target);
    return out;
}

/* Whether two file options name the same file (cli_start's rule). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
               !S_ISCHR(sa.st_mode);
    if (ea || eb)
        return 0;
    char *ra = resolved_new_path(a), *rb = resolved_new_path(b);
    int same = ra && rb ? strcmp(ra, rb) == 0 : strcmp(a, b) == 0;
    free(ra);
    free(rb);
    return same;
}

static int check_file_options(const char *cmd, const cli_opt *opts,
                              size_t n_opts)
{
    const int file = OPT_IN_FILE | OPT_OUT_FILE;
    for (size_t i = 0; i < n_opts; i++) {
        if (!opts[i].seen || !(opts[i].flags & file))
            continue;
        for (size_t j = i + 1; j < n_opts; j++) {
            if (!opts[j].seen || !(opts[j].flags & file) ||
                !((opts[i].flags | opts[j].flags) & OPT_OUT_FILE))
                continue;
            const char *a = *(const char *const *)opts[i].dst;
            const char *b = *(const char *const *)opts[j].dst;
            if (a && b && same_file(a, b))
                return cli_usage_error(
                    cmd, "--%s and --%s name the same file ('%s'%s%s%s): %s",
                    opts[i].name, opts[j].name, a,
                    strcmp(a, b) ? " and '" : "", strcmp(a, b) ? b : "",
                    strcmp(a, b) ? "'" : "",
                    (opts[i].flags & opts[j].flags & OPT_OUT_FILE)
                        ? "one output would replace the other"
                        : "the output would replace an input");
        }
    }
    return CLI_OK;
}

int cli_start(const char *cmd, int argc, char **argv, cli_opt *opts,
              size_t n_opts, const char *const *help)
{
    int rc = parse_args(cmd, argc, argv, opts, n_opts);
    if (rc == 0 && check_file_options(cmd, opts, n_opts) != CLI_OK)
        return CLI_USAGE;
    if (rc != 1)
        return rc == 0 ? CLI_CONTINUE : rc;
    for (size_t i = 0; help[i]; i++)
        fputs(help[i], stdout);
    return cli_finish_stdout(cmd);
}

int cli_opt_seen(const cli_opt *opts, size_t n_opts, const char *name)
{
    for (size_t i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return opts[i].seen;
    return 0;
}

double cli_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_format_duration(double s, char *buf, size_t cap)
{
    long long t;
    if (!(s >= 0.0) || s > 1e9) {
        snprintf(buf, cap, "?");
        return;
    }
    t = (long long)(s + 0.5);
    if (t < 60)
        snprintf(buf, cap, "%llds", t);
    else if (t < 3600)
        snprintf(buf, cap, "%lldm%02llds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lldh%02lldm%02llds", t / 3600, (t / 60) % 60,
                 t % 60);
}

int cli_finish_stdout(const char *cmd)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_error(cmd, "cannot write to standard output: %s",
                         errno ? strerror(errno) : "I/O error");
    return CLI_OK;
}

void cli_json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    putc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putc('\\', f);
            putc(*p, f);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", (unsigned)*p);
        } else {
            putc(*p, f);
        }
    }
    putc('"', f);
}

void cli_json_double(const char *key, double v)
{
    if (isfinite(v))
        printf(",\"%s\":%.6f", key, v);
    else
        printf(",\"%s\":null", key);
}

void cli_fmt_4f(char *buf, size_t cap, double v, const char *nan_text)
{
    if (isnan(v))
        snprintf(buf, cap, "%s", nan_text);
    else
        snprintf(buf, cap, "%.4f", v);
}

void cli_json_metrics(const iadsr_metrics *m)
{
    cli_json_double("HR@5", m->hr5);
    cli_json_double("HR@10", m->hr10);
    cli_json_double("HR@20", m->hr20);
    cli_json_double("NDCG@5", m->ndcg5);
    cli_json_double("NDCG@10", m->ndcg10);
    cli_json_double("NDCG@20", m->ndcg20);
}

void cli_print_metrics(const char *split, const iadsr_metrics *m,
                       int exclude_history, int json)
{
    if (json) {
        printf("{\"split\":\"%s\",\"users\":%lld", split,
               (long long)m->n_users);
        cli_json_metrics(m);
        printf(",\"exclude_history\":%s}\n",
               exclude_history ? "true" : "false");
        return;
    }
    printf("split: %s   users: %lld   exclude_history: %s\n", split,
           (long long)m->n_users, exclude_history ? "yes" : "no");
    printf("%-6s %8s %8s %8s\n", "", "@5", "@10", "@20");
    printf("%-6s %8.4f %8.4f %8.4f\n", "HR", m->hr5, m->hr10, m->hr20);
    printf("%-6s %8.4f %8.4f %8.4f\n", "NDCG", m->ndcg5, m->ndcg10,
           m->ndcg20);
}

/* ------------------------------------------------------------------------ */
/* Output files                                                             */
/* ------------------------------------------------------------------------ */

/* The directory part of @p path ("." or "/" when it has none); NULL when
 * out of memory. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(len + 2);
    if (!dir)
        return NULL;
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    return dir;
}

int cli_check_out_path(const char *cmd, const char *path)
{
    struct stat sb;
    char *target = NULL;
    int kind;

    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cli_error(cmd, "%s: is a directory", path);
    /* where the writer will write: the file a symbolic link points to; a
     * device or FIFO is written in place (its directory does not matter) */
    int rc = iadsr__write_target(path, &target, &kind);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, path, rc);
    if (kind == IADSR__TARGET_DIRECT) {
        /* O_NONBLOCK: a FIFO without a reader yet (ENXIO) is fine */
        int fd = open(target, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        int e = errno;
        iadsr__free(target);
        if (fd >= 0)
            close(fd);
        return fd >= 0 || e == ENXIO
                   ? CLI_OK
                   : cli_error(cmd, "%s: cannot write: %s", path, strerror(e));
    }
    iadsr__free(target);
    /* a trial of the writer's first step (its temporary file, removed at
     * once): the only test that sees read-only file systems, /proc and the
     * like before hours of training */
    iadsr__atomic_file f;
    rc = iadsr__atomic_begin(&f, path);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, path, rc);
    iadsr__atomic_abort(&f);
    return CLI_OK;
}

int cli_write_atomic(const char *cmd, const char *path, cli_writer_fn fn,
                     const void *ctx)
{
    iadsr__atomic_file f;
    int rc = iadsr__atomic_begin(&f, path);
    if (rc == IADSR_OK) {
        fn(&f, ctx);
        rc = iadsr__atomic_commit(&f, 0);
    }
    return rc == IADSR_OK ? CLI_OK : cli_lib_error(cmd, NULL, path, rc);
}

size_t cli_put_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    for (i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

int cli_put_seq(iadsr__atomic_file *f, uint64_t id, const int32_t *items,
                int64_t n)
{
    char buf[4096];
    size_t used = cli_put_u64(buf, id);
    for (int64_t j = 0; j < n; j++) {
        if (used > sizeof buf - 32) { /* room for " " + 20 digits + "\n" */
            (void)iadsr__atomic_put(f, buf, used);
            used = 0;
        }
        buf[used++] = ' ';
        used += cli_put_u64(buf + used, (uint64_t)items[j]);
    }
    buf[used++] = '\n';
    return iadsr__atomic_put(f, buf, used);
}

typedef struct dataset_out {
    const iadsr_dataset *d, *ids;
} dataset_out;

static void write_dataset_lines(iadsr__atomic_file *f, const void *ctx)
{
    const dataset_out *o = ctx;
    const iadsr_dataset *d = o->d;
    int64_t n_users = iadsr_dataset_n_users(d);
    for (int64_t u = 0; u < n_users; u++) {
        int32_t n = 0;
        const int32_t *it = iadsr_dataset_user_items(d, u, &n);
        if (!it || n < 1)
            continue;
        if (cli_put_seq(f, (uint64_t)iadsr_dataset_user_id(o->ids, u), it,
                        n) != 0)
            return;
    }
}

int cli_write_dataset(const char *cmd, const char *path,
                      const iadsr_dataset *d, const iadsr_dataset *ids)
{
    dataset_out o;
    o.d = d;
    o.ids = ids ? ids : d;
    if (ids && iadsr_dataset_n_users(ids) != iadsr_dataset_n_users(d))
        return cli_error(cmd, "%s: internal error: %lld users, %lld ids",
                         path, (long long)iadsr_dataset_n_users(d),
                         (long long)iadsr_dataset_n_users(ids));
    return cli_write_atomic(cmd, path, write_dataset_lines, &o);
}

/* ------------------------------------------------------------------------ */
/* Inputs                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct user_pos {
    int64_t id, u; /* user id, position in the file's order */
} user_pos;

static int user_pos_cmp(const void *a, const void *b)
{
    const user_pos *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->u < y->u ? -1 : x->u > y->u;
}

static const char *ordinal_suffix(int64_t n)
{
    int64_t h = n % 100, t = n % 10;
    if (h >= 11 && h <= 13)
        return "th";
    return t == 1 ? "st" : t == 2 ? "nd" : t == 3 ? "rd" : "th";
}

/* A sequence file has one line per user: a user id on several lines is
 * almost always an interaction log read as sequences (MovieLens u.data:
 * "user item rating time" per line), which would otherwise train on
 * ratings and timestamps as item ids. Refused, naming the user and the
 * way out. */
static int check_user_lines(const char *cmd, const char *path,
                            const iadsr_dataset *d)
{
    int64_t n = d->n_users;
    if (n < 2)
        return CLI_OK;
    user_pos *p = malloc((size_t)n * sizeof *p);
    if (!p)
        return cli_error(cmd, "%s: out of memory checking the user ids",
                         path);
    for (int64_t u = 0; u < n; u++) {
        p[u].id = iadsr_dataset_user_id(d, u);
        p[u].u = u;
    }
    qsort(p, (size_t)n, sizeof *p, user_pos_cmp);
    int64_t dup = -1, first = 0, second = 0, lines = 0, dups = 0;
    for (int64_t i = 1; i < n; i++) {
        if (p[i].id != p[i - 1].id)
            continue;
        dups++;
        /* the repeated user that comes first in the file */
        int64_t j = i - 1;
        while (j > 0 && p[j - 1].id == p[i].id)
            j--;
        if (dup < 0 || p[j].u < first) {
            dup = p[i].id;
            first = p[j].u;
            second = p[j + 1].u;
        }
    }
    if (dup >= 0)
        for (int64_t i = 0; i < n; i++)
            lines += p[i].id == dup;
    free(p);
    if (dup < 0)
        return CLI_OK;
    /* short lines throughout: one interaction per line */
    int64_t longest = 0;
    for (int64_t u = 0; u < n; u++) {
        int64_t len = d->offsets[u + 1] - d->offsets[u];
        longest = len > longest ? len : longest;
    }
    cli_error(cmd,
              "%s: user %lld is on %lld lines (the %lld%s and %lld%s "
              "sequences of the file; %lld repeated line%s in all), but a "
              "sequence file has one line per user with all of the user's "
              "items in time order%s. Build one with 'iadsr import' (it "
              "reads interaction logs such as CSV, MovieLens and RecBole "
              "files)",
              path, (long long)dup, (long long)lines, (long long)(first + 1),
              ordinal_suffix(first + 1), (long long)(second + 1),
              ordinal_suffix(second + 1), (long long)dups,
              dups == 1 ? "" : "s",
              longest <= 3 ? "; every line holds at most 3 numbers after "
                             "the user, like one interaction per line "
                             "(user item rating time)"
                           : "");
    return CLI_RUNTIME;
}

int cli_load_data(const char *cmd, const char *path, int32_t n_items,
                  iadsr_dataset **d)
{
    int rc = iadsr_dataset_load_text(d, path, n_items);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, path, rc);
    if (check_user_lines(cmd, path, *d) != CLI_OK) {
        iadsr_dataset_free(*d);
        *d = NULL;
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

int cli_check_id_space(const char *cmd, const char *path, int64_t max_id,
                       int64_t distinct, int allow, const char *what)
{
    if (allow || max_id < CLI_SPARSE_MIN_ID ||
        max_id <= CLI_SPARSE_RATIO * distinct)
        return CLI_OK;
    return cli_error(cmd,
                     "%s: item ids run up to %lld but only %lld distinct ids "
                     "are used: every id up to the largest gets one of the "
                     "%lld %s. Remap the ids to 1..%lld, or pass "
                     "--sparse-ids to accept the unused rows",
                     path, (long long)max_id, (long long)distinct,
                     (long long)max_id, what, (long long)distinct);
}

int cli_check_data_ids(const char *cmd, const char *path,
                       const iadsr_dataset *d, int allow)
{
    int64_t n = iadsr_dataset_n_items(d), distinct = 0;
    if (allow || n < CLI_SPARSE_MIN_ID)
        return CLI_OK;
    uint8_t *seen = calloc((size_t)n / 8 + 1, 1);
    if (!seen)
        return cli_error(cmd, "out of memory");
    const int32_t *it = d->items;
    for (int64_t i = 0, ni = d->offsets[d->n_users]; i < ni; i++) {
        uint8_t bit = (uint8_t)(1u << (it[i] & 7));
        if (!(seen[it[i] >> 3] & bit)) {
            seen[it[i] >> 3] |= bit;
            distinct++;
        }
    }
    free(seen);
    return cli_check_id_space(cmd, path, n, distinct, 0, "model rows");
}

int cli_check_train_memory(const char *cmd, const iadsr_model_params *mp,
                           int64_t n_threads, double max_gib)
{
    /* the item table dominates; positions and blocks are small beside it,
     * but counted for small catalogues */
    double d = mp->dim > 0 ? (double)mp->dim : 64.0;
    double rows = (double)mp->n_items + 1.0 + 4096.0;
    double params = rows * d + 16.0 * d * d;
    double copies = 7.0 + (double)n_threads; /* w, m1, m2, best, table^T, ... */
    double gib = params * 4.0 * copies / (1024.0 * 1024.0 * 1024.0);
    if (gib <= max_gib)
        return CLI_OK;
    return cli_error(cmd,
                     "a model of %lld items x d %d plans about %.1f GiB of "
                     "weights, optimizer state and gradients (%g "
                     "GiB allowed): remap the item ids to 1..n if most are "
                     "unused, lower --dim or --threads, or raise "
                     "--max-memory",
                     (long long)mp->n_items, (int)d, gib, max_gib);
}

int cli_load_model(const char *cmd, const char *path, iadsr_model **m)
{
    int rc = iadsr_model_load(m, path, 0);
    return rc == IADSR_OK ? CLI_OK
                          : cli_lib_error(cmd, "cannot load model", path, rc);
}

/* ------------------------------------------------------------------------ */
/* Semantic matrices                                                        */
/* ------------------------------------------------------------------------ */

const char *const cli_semantic_rows_names[] = {"padded", "dense", "items",
                                               NULL};

int cli_load_semantic(const char *cmd, cli_semantic_in *s)
{
    uint32_t fl = s->rows == 0 ? IADSR_SEMANTIC_ROW0_PADDING : 0u;
    int rc = iadsr_semantic_load_npy(&s->items, s->path, fl);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot load the semantic matrix", s->path,
                             rc);
    return CLI_OK;
}

int cli_load_user_semantic(const char *cmd, cli_semantic_in *s,
                           int64_t n_users)
{
    int32_t dim = s->items ? iadsr_semantic_dim(s->items) : 0;
    int rc;
    if (!s->user_path)
        return CLI_OK;
    /* dense: row u is the u-th user (the matrix API calls rows "items") */
    rc = iadsr_semantic_load_npy(&s->users, s->user_path, 0u);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot load the user semantic matrix",
                             s->user_path, rc);
    if ((int64_t)iadsr_semantic_n_items(s->users) != n_users ||
        (dim > 0 && iadsr_semantic_dim(s->users) != dim)) {
        cli_error(cmd,
                  "%s: %ld x %ld user matrix, expected %lld rows (one per "
                  "user of the sequence file, in file order) of width %ld",
                  s->user_path, (long)iadsr_semantic_n_items(s->users),
                  (long)iadsr_semantic_dim(s->users), (long long)n_users,
                  (long)(dim > 0 ? dim : iadsr_semantic_dim(s->users)));
        iadsr_semantic_free(s->users);
        s->users = NULL;
        return CLI_RUNTIME;
    }
    return CLI_OK;
}

void cli_checkpoint_free(cli_checkpoint *c)
{
    iadsr_gate_free(c->gate);
    iadsr_aligner_free(c->aligner);
    iadsr_model_free(c->model);
    memset(c, 0, sizeof *c);
}

void cli_semantic_in_free(cli_semantic_in *s)
{
    iadsr_semantic_free(s->users);
    iadsr_semantic_free(s->items);
    s->users = s->items = NULL;
}

/* ------------------------------------------------------------------------ */
/* Random draws on the library's generator                                  */
/* ------------------------------------------------------------------------ */

double cli_rng_uniform(iadsr__rng *r)
{
    return (double)(iadsr__rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t cli_rng_below(iadsr__rng *r, uint64_t n)
{
    /* iadsr__rng_below returns 0 for n = 1 without a draw; the CLI's stream
     * has always drawn there */
    if (n <= 1) {
        (void)iadsr__rng_u64(r);
        return 0;
    }
    return iadsr__rng_below(r, n);
}

double cli_rng_normal(iadsr__rng *r)
{
    /* 1 - u is in (0, 1], so the log is finite (the library's normal maps
     * the draw to (0, 1] differently) */
    double u1 = 1.0 - cli_rng_uniform(r);
    double u2 = cli_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------------ */
/* IADSR options                                                            */
/* ------------------------------------------------------------------------ */

const char *const cli_denoise_opt_names[] = {
    "lambda-align", "lambda-recon", "tau-align", "tau-gumbel", "collab-only",
    "carry-masks", "paper-losses", "gate", "no-holdout", "clean-scores",
    "input-mask", "text-feature", "backoff", "no-backoff", "theta",
    "max-drop",
    "no-protect-last", NULL};

/* Whether joint training backs its loss weights off on a stall unless
 * --backoff / --no-backoff says otherwise: on, since it kept every
 * backbone at or above its raw twin where the fixed weights did not
 * (docs/RESULTS-HISTORY.md, "The back-off of the loss weights"). */
const int cli_backoff_default = 1;

const char *const cli_gate_names[] = {"paper", "detect", NULL};

void cli_denoise_apply(const cli_opt *opts, size_t n_opts,
                       const cli_denoise_vals *v, iadsr_denoise_params *dp)
{
    if (cli_opt_seen(opts, n_opts, "lambda-align"))
        dp->lambda_align = (float)v->lambda_align;
    if (cli_opt_seen(opts, n_opts, "lambda-recon"))
        dp->lambda_recon = (float)v->lambda_recon;
    if (cli_opt_seen(opts, n_opts, "tau-align"))
        dp->tau_align = (float)v->tau_align;
    if (cli_opt_seen(opts, n_opts, "tau-gumbel"))
        dp->tau_gumbel = (float)v->tau_gumbel;
    if (v->collab_only)
        dp->flags |= IADSR_DENOISE_F_COLLAB_ONLY;
    if (v->carry_masks)
        dp->flags |= IADSR_DENOISE_F_CARRY_MASKS;
    if (v->paper_losses)
        dp->flags |= IADSR_DENOISE_F_PAPER;
    if ((cli_opt_seen(opts, n_opts, "gate") || v->gate_default) &&
        v->gate == 1) {
        dp->flags |= IADSR_DENOISE_F_DETECT;
        if (!v->no_holdout)
            dp->flags |= IADSR_DENOISE_F_HOLDOUT;
        if (v->clean_scores)
            dp->flags |= IADSR_DENOISE_F_CLEAN_SCORES;
        if (v->input_mask)
            dp->flags |= IADSR_DENOISE_F_INPUT_MASK |
                         IADSR_DENOISE_F_CLEAN_SCORES;
        if (v->text_feature)
            dp->flags |= IADSR_DENOISE_F_TEXT;
    }
    if (v->backoff || (cli_backoff_default && !v->no_backoff))
        dp->flags |= IADSR_DENOISE_F_BACKOFF;
    if (cli_opt_seen(opts, n_opts, "theta"))
        dp->theta = (float)v->theta;
    if (cli_opt_seen(opts, n_opts, "max-drop"))
        dp->max_drop = (float)v->max_drop;
    if (v->no_protect_last)
        dp->protect_last = 0;
}

int cli_denoise_rule_seen(const cli_opt *opts, size_t n_opts)
{
    return cli_opt_seen(opts, n_opts, "theta") ||
           cli_opt_seen(opts, n_opts, "max-drop") ||
           cli_opt_seen(opts, n_opts, "no-protect-last") ||
           cli_opt_seen(opts, n_opts, "collab-only");
}
