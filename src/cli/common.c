/* iadsr command-line tool: option parsing, errors, output helpers.
 * SPDX-License-Identifier: MIT
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "iadsr: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'iadsr %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "iadsr: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
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

int cli_parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;
    if (!number_start_ok(s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    if (!number_start_ok(s) || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    char *end = NULL;
    double v;
    if (!number_start_ok(s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
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
        if (cli_parse_i64(val, &v) != 0)
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
        if (cli_parse_u64(val, &v) != 0)
            return cli_usage_error(
                cmd, "--%s: '%s' is not a non-negative integer below 2^64",
                o->name, val);
        *(uint64_t *)o->dst = v;
        return 0;
    }
    case OPT_DBL: {
        double v;
        int bad;
        if (cli_parse_double(val, &v) != 0)
            return cli_usage_error(cmd, "--%s: '%s' is not a finite number",
                                   o->name, val);
        bad = (o->dflags & OPT_LO_OPEN) ? !(v > o->dlo) : !(v >= o->dlo);
        bad |= (o->dflags & OPT_HI_OPEN) ? !(v < o->dhi) : !(v <= o->dhi);
        if (bad)
            return cli_usage_error(cmd, "--%s: %s is outside %s%g, %g%s",
                                   o->name, val,
                                   (o->dflags & OPT_LO_OPEN) ? "(" : "[",
                                   o->dlo, o->dhi,
                                   (o->dflags & OPT_HI_OPEN) ? ")" : "]");
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

int cli_parse(const char *cmd, int argc, char **argv, cli_opt *opts,
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
        if (opts[i].required && !opts[i].seen)
            return cli_usage_error(cmd, "missing required option --%s",
                                   opts[i].name);
    return 0;
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

static void json_num(const char *key, double v, int first)
{
    if (isfinite(v))
        printf("%s\"%s\":%.6f", first ? "" : ",", key, v);
    else
        printf("%s\"%s\":null", first ? "" : ",", key);
}

void cli_print_metrics(const char *split, const iadsr_metrics *m,
                       int exclude_history, int json)
{
    if (json) {
        printf("{\"split\":\"%s\",\"users\":%lld", split,
               (long long)m->n_users);
        json_num("HR@5", m->hr5, 0);
        json_num("HR@10", m->hr10, 0);
        json_num("HR@20", m->hr20, 0);
        json_num("NDCG@5", m->ndcg5, 0);
        json_num("NDCG@10", m->ndcg10, 0);
        json_num("NDCG@20", m->ndcg20, 0);
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
