/* iadsr command-line tool: text buffer, training-log reader and SVG charts
 * of `iadsr report` (report.h).
 * SPDX-License-Identifier: MIT
 */
#include "cli/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Text buffer                                                              */
/* ------------------------------------------------------------------------ */

static int buf_reserve(rp_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (b->failed)
        return -1;
    if (extra > SIZE_MAX - b->len - 1) {
        b->failed = 1;
        return -1;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void rp_buf_free(rp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void rp_putn(rp_buf *b, const char *s, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void rp_put(rp_buf *b, const char *s)
{
    if (s)
        rp_putn(b, s, strlen(s));
}

void rp_printf(rp_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        rp_putn(b, small, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at @p s (of @p n bytes left), or 0
 * when it is not one (overlong forms, surrogates and values above
 * U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
        (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

void rp_text(rp_buf *b, const char *s)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s;
    size_t n, i = 0, run = 0;
    if (!s)
        return;
    n = strlen(s);
    while (i < n) {
        unsigned char c = p[i];
        const char *rep = NULL;
        size_t len = 1;
        if (c == '&')
            rep = "&amp;";
        else if (c == '<')
            rep = "&lt;";
        else if (c == '>')
            rep = "&gt;";
        else if (c == '"')
            rep = "&quot;";
        else if (c == '\'')
            rep = "&#39;";
        else if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
            rep = fffd;
        else if (c >= 0x80 && (len = utf8_len(p + i, n - i)) == 0) {
            rep = fffd;
            len = 1;
        }
        if (rep) {
            rp_putn(b, s + i - run, run);
            run = 0;
            rp_put(b, rep);
            i += len;
        } else {
            run += len;
            i += len;
        }
    }
    rp_putn(b, s + n - run, run);
}

void rp_coord(rp_buf *b, double v)
{
    char tmp[32];
    if (!isfinite(v))
        v = 0.0;
    if (v > 1e6)
        v = 1e6;
    if (v < -1e6)
        v = -1e6;
    snprintf(tmp, sizeof tmp, "%.2f", v);
    rp_put(b, strcmp(tmp, "-0.00") == 0 ? "0.00" : tmp);
}

/* ------------------------------------------------------------------------ */
/* JSON lines                                                               */
/* ------------------------------------------------------------------------ */

enum { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_OTHER };

typedef struct jval {
    int type;
    double num; /* JV_NUM; JV_BOOL: 0 or 1 */
    const char *str; /* JV_STR: decoded in place, NUL-terminated */
} jval;

/* A parse over one line (@p s of @p n bytes, modified in place by the
 * string decoding). */
typedef struct jparse {
    char *s;
    size_t i, n;
    char msg[160]; /* what is wrong, when a function returned -1 */
} jparse;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int jfail(jparse *p, const char *fmt, ...)
{
    va_list ap;
    int w;
    va_start(ap, fmt);
    w = vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    if (w >= 0 && (size_t)w < sizeof p->msg)
        snprintf(p->msg + w, sizeof p->msg - (size_t)w, " (column %zu)",
                 p->i + 1);
    return -1;
}

static void jws(jparse *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\r' || p->s[p->i] == '\n'))
        p->i++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The string at p->i (a '"'), decoded in place; *out points at it. */
static int jstring(jparse *p, const char **out)
{
    size_t r = p->i + 1;
    size_t w = r; /* decoded bytes never outrun the read ones */
    char *s = p->s;
    *out = s + w;
    while (r < p->n) {
        unsigned char c = (unsigned char)s[r];
        if (c == '"') {
            s[w] = '\0';
            p->i = r + 1;
            return 0;
        }
        if (c < 0x20) {
            p->i = r;
            return jfail(p, "a control character in a string");
        }
        if (c != '\\') {
            s[w++] = s[r++];
            continue;
        }
        if (r + 1 >= p->n)
            break;
        c = (unsigned char)s[r + 1];
        if (c == 'u') {
            unsigned cp, lo;
            if (r + 6 > p->n || hex4(s + r + 2, &cp) != 0) {
                p->i = r;
                return jfail(p, "a bad \\u escape");
            }
            r += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (r + 6 > p->n || s[r] != '\\' || s[r + 1] != 'u' ||
                    hex4(s + r + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    p->i = r;
                    return jfail(p, "a lone surrogate in a \\u escape");
                }
                r += 6;
                cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                p->i = r - 6;
                return jfail(p, "a lone surrogate in a \\u escape");
            }
            if (cp == 0) {
                p->i = r - 6;
                return jfail(p, "\\u0000 in a string");
            }
            if (cp < 0x80) {
                s[w++] = (char)cp;
            } else if (cp < 0x800) {
                s[w++] = (char)(0xC0 | (cp >> 6));
                s[w++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                s[w++] = (char)(0xE0 | (cp >> 12));
                s[w++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                s[w++] = (char)(0x80 | (cp & 0x3F));
            } else {
                s[w++] = (char)(0xF0 | (cp >> 18));
                s[w++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                s[w++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                s[w++] = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        }
        switch (c) {
        case '"': s[w++] = '"'; break;
        case '\\': s[w++] = '\\'; break;
        case '/': s[w++] = '/'; break;
        case 'b': s[w++] = '\b'; break;
        case 'f': s[w++] = '\f'; break;
        case 'n': s[w++] = '\n'; break;
        case 'r': s[w++] = '\r'; break;
        case 't': s[w++] = '\t'; break;
        default:
            p->i = r;
            return jfail(p, "a bad escape in a string");
        }
        r += 2;
    }
    p->i = r;
    return jfail(p, "a string without its closing quote");
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number in JSON's grammar, finite as a double. */
static int jnumber(jparse *p, double *out)
{
    size_t i = p->i, start = p->i;
    char tmp[64], *end = NULL;
    const char *s = p->s;
    if (i < p->n && s[i] == '-')
        i++;
    if (i < p->n && s[i] == '0')
        i++;
    else if (i < p->n && is_digit(s[i]))
        while (i < p->n && is_digit(s[i]))
            i++;
    else
        return jfail(p, "not a JSON value");
    if (i < p->n && s[i] == '.') {
        i++;
        if (i >= p->n || !is_digit(s[i]))
            return jfail(p, "a bad number");
        while (i < p->n && is_digit(s[i]))
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->n || !is_digit(s[i]))
            return jfail(p, "a bad number");
        while (i < p->n && is_digit(s[i]))
            i++;
    }
    if (i - start >= sizeof tmp)
        return jfail(p, "a number of more than %zu characters",
                     sizeof tmp - 1);
    memcpy(tmp, s + start, i - start);
    tmp[i - start] = '\0';
    errno = 0;
    *out = strtod(tmp, &end);
    if (!isfinite(*out) || (errno == ERANGE && fabs(*out) > 1.0))
        return jfail(p, "a number out of range");
    p->i = i;
    return 0;
}

static int jliteral(jparse *p, const char *word)
{
    size_t len = strlen(word);
    if (p->n - p->i < len || memcmp(p->s + p->i, word, len) != 0)
        return jfail(p, "not a JSON value");
    p->i += len;
    return 0;
}

static int jvalue(jparse *p, jval *v, int depth);

/* An object or array at p->i, checked and skipped. */
static int jcompound(jparse *p, int depth)
{
    char close = p->s[p->i] == '{' ? '}' : ']';
    int first = 1;
    jval v;
    if (depth > 32)
        return jfail(p, "values nested too deeply");
    p->i++;
    for (;;) {
        jws(p);
        if (p->i < p->n && p->s[p->i] == close && first) {
            p->i++;
            return 0;
        }
        if (close == '}') {
            const char *key;
            if (p->i >= p->n || p->s[p->i] != '"')
                return jfail(p, "expected a key");
            if (jstring(p, &key) != 0)
                return -1;
            jws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return jfail(p, "expected ':'");
            p->i++;
        }
        if (jvalue(p, &v, depth + 1) != 0)
            return -1;
        jws(p);
        first = 0;
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        return jfail(p, "expected ',' or '%c'", close);
    }
}

static int jvalue(jparse *p, jval *v, int depth)
{
    jws(p);
    v->type = JV_OTHER;
    v->num = 0.0;
    v->str = NULL;
    if (p->i >= p->n)
        return jfail(p, "a value is missing");
    switch (p->s[p->i]) {
    case '"':
        v->type = JV_STR;
        return jstring(p, &v->str);
    case '{':
    case '[':
        return jcompound(p, depth);
    case 't':
        v->type = JV_BOOL;
        v->num = 1.0;
        return jliteral(p, "true");
    case 'f':
        v->type = JV_BOOL;
        return jliteral(p, "false");
    case 'n':
        v->type = JV_NULL;
        return jliteral(p, "null");
    default:
        v->type = JV_NUM;
        return jnumber(p, &v->num);
    }
}

/* What one line holds. */
typedef struct line_rec {
    int has_epoch, summary;
    rp_epoch e;
    char status[64], model[512];
    int64_t epochs, best_epoch, parameters;
    double best_ndcg, best_hr, seconds;
} line_rec;

/* A number or null into *out (NaN for null). */
static int want_num(jparse *p, const char *key, const jval *v, double *out)
{
    if (v->type == JV_NULL) {
        *out = (double)NAN;
        return 0;
    }
    if (v->type != JV_NUM)
        return jfail(p, "\"%s\" is not a number or null", key);
    *out = v->num;
    return 0;
}

/* An integer in [lo, 1e12] into *out. */
static int want_int(jparse *p, const char *key, const jval *v, int64_t lo,
                    int64_t *out)
{
    if (v->type != JV_NUM || floor(v->num) != v->num || v->num < (double)lo ||
        v->num > 1e12)
        return jfail(p, "\"%s\" is not an integer of at least %lld", key,
                     (long long)lo);
    *out = (int64_t)v->num;
    return 0;
}

/* A string or null into @p dst (truncated to @p cap - 1 bytes at a
 * character boundary; "" for null). */
static int want_str(jparse *p, const char *key, const jval *v, char *dst,
                    size_t cap)
{
    size_t len;
    if (v->type == JV_NULL) {
        dst[0] = '\0';
        return 0;
    }
    if (v->type != JV_STR)
        return jfail(p, "\"%s\" is not a string or null", key);
    len = strlen(v->str);
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)v->str[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, v->str, len);
    dst[len] = '\0';
    return 0;
}

static int line_member(jparse *p, line_rec *r, const char *k, const jval *v)
{
    static const char *const keys[] = {
        "loss",         "loss_next",     "loss_aux",      "loss_detect",
        "valid_hr10",   "valid_ndcg10",  "best_ndcg10",   "learning_rate",
        "epoch_seconds", "elapsed_seconds"};
    double *const nums[] = {
        &r->e.loss,         &r->e.loss_next,     &r->e.loss_aux,
        &r->e.loss_detect,  &r->e.valid_hr10,    &r->e.valid_ndcg10,
        &r->e.best_ndcg10,  &r->e.learning_rate, &r->e.epoch_seconds,
        &r->e.elapsed_seconds};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(k, keys[i]) == 0)
            return want_num(p, k, v, nums[i]);
    if (strcmp(k, "epoch") == 0) {
        r->has_epoch = 1;
        return want_int(p, k, v, 1, &r->e.epoch);
    }
    if (strcmp(k, "max_epochs") == 0)
        return want_int(p, k, v, 0, &r->e.max_epochs);
    if (strcmp(k, "best_epoch") == 0) {
        if (want_int(p, k, v, 0, &r->e.best_epoch) != 0)
            return -1;
        r->best_epoch = r->e.best_epoch;
        return 0;
    }
    if (strcmp(k, "summary") == 0) {
        if (v->type != JV_BOOL)
            return jfail(p, "\"summary\" is not true or false");
        r->summary = v->num != 0.0;
        return 0;
    }
    if (strcmp(k, "status") == 0)
        return want_str(p, k, v, r->status, sizeof r->status);
    if (strcmp(k, "model") == 0)
        return want_str(p, k, v, r->model, sizeof r->model);
    if (strcmp(k, "epochs") == 0)
        return want_int(p, k, v, 0, &r->epochs);
    if (strcmp(k, "parameters") == 0)
        return want_int(p, k, v, 0, &r->parameters);
    if (strcmp(k, "best_valid_ndcg10") == 0)
        return want_num(p, k, v, &r->best_ndcg);
    if (strcmp(k, "best_valid_hr10") == 0)
        return want_num(p, k, v, &r->best_hr);
    if (strcmp(k, "seconds") == 0)
        return want_num(p, k, v, &r->seconds);
    return 0; /* another key: ignored */
}

/* Parse one non-blank line into @p r. */
static int parse_line(jparse *p, line_rec *r)
{
    const double nan = (double)NAN;
    int first = 1;
    memset(r, 0, sizeof *r);
    r->e.max_epochs = r->e.best_epoch = -1;
    r->e.loss = r->e.loss_next = r->e.loss_aux = r->e.loss_detect = nan;
    r->e.valid_hr10 = r->e.valid_ndcg10 = r->e.best_ndcg10 = nan;
    r->e.learning_rate = r->e.epoch_seconds = r->e.elapsed_seconds = nan;
    r->epochs = r->best_epoch = r->parameters = -1;
    r->best_ndcg = r->best_hr = r->seconds = nan;
    jws(p);
    if (p->i >= p->n || p->s[p->i] != '{')
        return jfail(p, "not a JSON object");
    p->i++;
    for (;;) {
        const char *key;
        jval v;
        jws(p);
        if (first && p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        if (p->i >= p->n || p->s[p->i] != '"')
            return jfail(p, "expected a key");
        if (jstring(p, &key) != 0)
            return -1;
        jws(p);
        if (p->i >= p->n || p->s[p->i] != ':')
            return jfail(p, "expected ':'");
        p->i++;
        if (jvalue(p, &v, 1) != 0 || line_member(p, r, key, &v) != 0)
            return -1;
        jws(p);
        first = 0;
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        return jfail(p, "expected ',' or '}'");
    }
    jws(p);
    if (p->i < p->n)
        return jfail(p, "text after the object");
    if (r->has_epoch && r->summary) {
        p->i = 0;
        return jfail(p, "both an epoch and the summary");
    }
    if (!r->has_epoch && !r->summary) {
        p->i = 0;
        return jfail(p, "neither an epoch (\"epoch\") nor the summary "
                        "(\"summary\": true)");
    }
    return 0;
}

void rp_log_free(rp_log *log)
{
    free(log->ep);
    memset(log, 0, sizeof *log);
}

static void log_empty(rp_log *log)
{
    memset(log, 0, sizeof *log);
    log->epochs = log->best_epoch = log->parameters = -1;
    log->best_valid_ndcg10 = log->best_valid_hr10 = log->seconds =
        (double)NAN;
}

int rp_log_read(const char *path, rp_log *log, char *err, size_t err_cap)
{
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long long ln = 0;
    int rc = -1;

    log_empty(log);
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_cap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        jparse p;
        line_rec r;
        size_t k;
        ln++;
        for (k = 0; k < (size_t)len; k++)
            if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r' &&
                line[k] != '\n')
                break;
        if (k == (size_t)len)
            continue; /* blank */
        if (log->has_summary) {
            snprintf(err, err_cap, "%s:%lld: a line after the summary "
                                   "line", path, ln);
            goto done;
        }
        memset(&p, 0, sizeof p);
        p.s = line;
        p.n = (size_t)len;
        if (parse_line(&p, &r) != 0) {
            snprintf(err, err_cap, "%s:%lld: %s", path, ln, p.msg);
            goto done;
        }
        if (r.summary) {
            log->has_summary = 1;
            memcpy(log->status, r.status, sizeof log->status);
            memcpy(log->model, r.model, sizeof log->model);
            log->epochs = r.epochs;
            log->best_epoch = r.best_epoch;
            log->parameters = r.parameters;
            log->best_valid_ndcg10 = r.best_ndcg;
            log->best_valid_hr10 = r.best_hr;
            log->seconds = r.seconds;
            continue;
        }
        if (log->n > 0 && r.e.epoch <= log->ep[log->n - 1].epoch) {
            snprintf(err, err_cap,
                     "%s:%lld: epoch %lld after epoch %lld (the epochs of a "
                     "log increase)",
                     path, ln, (long long)r.e.epoch,
                     (long long)log->ep[log->n - 1].epoch);
            goto done;
        }
        if (log->n == log->cap) {
            size_t nc = log->cap ? log->cap * 2 : 64;
            rp_epoch *ne = realloc(log->ep, nc * sizeof *ne);
            if (!ne) {
                snprintf(err, err_cap, "%s:%lld: out of memory", path, ln);
                goto done;
            }
            log->ep = ne;
            log->cap = nc;
        }
        log->ep[log->n++] = r.e;
    }
    if (ferror(f)) {
        snprintf(err, err_cap, "%s: read failed: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(line);
    fclose(f);
    if (rc != 0) {
        rp_log_free(log);
        log_empty(log);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Charts                                                                   */
/* ------------------------------------------------------------------------ */

/* Geometry of every chart: the drawing and its plot area. */
#define CH_W 680.0
#define CH_H 300.0
#define CH_L 72.0  /* left margin: tick labels and the y title */
#define CH_R 24.0
#define CH_T 40.0  /* top margin: the legend */
#define CH_B 54.0  /* bottom margin: tick labels and the x title */
#define PL_W (CH_W - CH_L - CH_R)
#define PL_H (CH_H - CH_T - CH_B)
/* values beyond this are drawn at it */
#define CH_CLAMP 1e15

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c",
                                      "#9467bd", "#ff7f0e", "#8c564b"};
#define N_PALETTE (sizeof palette / sizeof palette[0])

typedef struct axis {
    double lo, hi, step;
    int dec; /* decimals of the tick labels */
} axis;

static double clampv(double v)
{
    return v > CH_CLAMP ? CH_CLAMP : v < -CH_CLAMP ? -CH_CLAMP : v;
}

/* 1, 2 or 5 times a power of ten, near @p span / @p target. */
static double nice_step(double span, int target)
{
    double raw = span / target, mag, f;
    if (!(raw > 0.0) || !isfinite(raw))
        return 1.0;
    mag = pow(10.0, floor(log10(raw)));
    f = raw / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

/* An axis over [lo, hi] (the data's range) with about @p target ticks.
 * An empty range is widened around its value (to whole numbers with
 * @p integer; not below 0 when the data is not). */
static void axis_make(axis *a, double lo, double hi, int target, int integer)
{
    int nonneg;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi) {
        lo = 0.0;
        hi = 1.0;
    }
    nonneg = lo >= 0.0;
    if (hi - lo <= 1e-9 * fmax(1.0, fmax(fabs(lo), fabs(hi)))) {
        double pad = lo != 0.0 ? fabs(lo) * 0.1 : 1.0;
        if (integer && pad < 1.0)
            pad = 1.0;
        lo -= pad;
        hi += pad;
        if (nonneg && lo < 0.0)
            lo = 0.0;
    }
    a->step = nice_step(hi - lo, target);
    if (integer && a->step < 1.0)
        a->step = 1.0;
    a->lo = floor(lo / a->step + 1e-9) * a->step;
    a->hi = ceil(hi / a->step - 1e-9) * a->step;
    if (a->hi <= a->lo)
        a->hi = a->lo + a->step;
    a->dec = a->step >= 1.0 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
    if (a->dec > 8)
        a->dec = 8;
}

static void axis_unit(axis *a)
{
    a->lo = 0.0;
    a->hi = 1.0;
    a->step = 0.2;
    a->dec = 1;
}

static double px(const axis *a, double v)
{
    return CH_L + (clampv(v) - a->lo) / (a->hi - a->lo) * PL_W;
}

static double py(const axis *a, double v)
{
    return CH_T + PL_H - (clampv(v) - a->lo) / (a->hi - a->lo) * PL_H;
}

static void tick_label(char *buf, size_t cap, const axis *a, double v)
{
    if (fabs(v) < a->step * 1e-6)
        v = 0.0;
    if (fabs(v) >= 1e7)
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.*f", a->dec, v);
}

static void svg_open(rp_buf *b, const char *label)
{
    rp_printf(b, "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" "
                 "width=\"%.0f\" height=\"%.0f\" role=\"img\" "
                 "aria-label=\"",
              CH_W, CH_H, CH_W, CH_H);
    rp_text(b, label);
    rp_put(b, "\"><title>");
    rp_text(b, label);
    rp_put(b, "</title>\n");
}

/* <line x1 y1 x2 y2 and the rest of the attributes in @p attrs/>. */
static void svg_line(rp_buf *b, double x1, double y1, double x2, double y2,
                     const char *attrs)
{
    rp_put(b, "<line x1=\"");
    rp_coord(b, x1);
    rp_put(b, "\" y1=\"");
    rp_coord(b, y1);
    rp_put(b, "\" x2=\"");
    rp_coord(b, x2);
    rp_put(b, "\" y2=\"");
    rp_coord(b, y2);
    rp_printf(b, "\" %s/>\n", attrs);
}

/* <text x y @p attrs>escaped @p s</text>. */
static void svg_text(rp_buf *b, double x, double y, const char *attrs,
                     const char *s)
{
    rp_put(b, "<text x=\"");
    rp_coord(b, x);
    rp_put(b, "\" y=\"");
    rp_coord(b, y);
    rp_printf(b, "\" %s>", attrs);
    rp_text(b, s);
    rp_put(b, "</text>\n");
}

/* The plot area, grid lines, ticks with labels and the axis titles. */
static void svg_axes(rp_buf *b, const axis *ax, const axis *ay,
                     const char *x_label, const char *y_label)
{
    char lab[64];
    rp_put(b, "<rect class=\"plot\" x=\"");
    rp_coord(b, CH_L);
    rp_put(b, "\" y=\"");
    rp_coord(b, CH_T);
    rp_put(b, "\" width=\"");
    rp_coord(b, PL_W);
    rp_put(b, "\" height=\"");
    rp_coord(b, PL_H);
    rp_put(b, "\"/>\n");
    for (int k = 0; k <= 60; k++) {
        double v = ay->lo + k * ay->step, y;
        if (v > ay->hi + ay->step * 1e-6)
            break;
        y = py(ay, v);
        svg_line(b, CH_L, y, CH_L + PL_W, y, "class=\"grid\"");
        svg_line(b, CH_L - 5.0, y, CH_L, y, "class=\"axis\"");
        tick_label(lab, sizeof lab, ay, v);
        svg_text(b, CH_L - 8.0, y + 4.0, "class=\"tick\" text-anchor=\"end\"",
                 lab);
    }
    for (int k = 0; k <= 60; k++) {
        double v = ax->lo + k * ax->step, x;
        if (v > ax->hi + ax->step * 1e-6)
            break;
        x = px(ax, v);
        svg_line(b, x, CH_T, x, CH_T + PL_H, "class=\"grid\"");
        svg_line(b, x, CH_T + PL_H, x, CH_T + PL_H + 5.0, "class=\"axis\"");
        tick_label(lab, sizeof lab, ax, v);
        svg_text(b, x, CH_T + PL_H + 19.0,
                 "class=\"tick\" text-anchor=\"middle\"", lab);
    }
    svg_line(b, CH_L, CH_T + PL_H, CH_L + PL_W, CH_T + PL_H, "class=\"axis\"");
    svg_line(b, CH_L, CH_T, CH_L, CH_T + PL_H, "class=\"axis\"");
    svg_text(b, CH_L + PL_W / 2.0, CH_H - 10.0,
             "class=\"atitle\" text-anchor=\"middle\"", x_label);
    rp_put(b, "<text class=\"atitle\" text-anchor=\"middle\" transform=\""
              "translate(");
    rp_coord(b, 16.0);
    rp_put(b, " ");
    rp_coord(b, CH_T + PL_H / 2.0);
    rp_put(b, ") rotate(-90)\" x=\"0\" y=\"0\">");
    rp_text(b, y_label);
    rp_put(b, "</text>\n");
}

/* A legend entry at (*x, CH_T - 16): a swatch in @p color (a bar when
 * @p bar, else a line with a point) and the name; advances *x. */
static void svg_legend(rp_buf *b, double *x, const char *color,
                       const char *name, int bar)
{
    double y = CH_T - 16.0;
    if (bar) {
        rp_put(b, "<rect x=\"");
        rp_coord(b, *x);
        rp_put(b, "\" y=\"");
        rp_coord(b, y - 6.0);
        rp_printf(b, "\" width=\"14.00\" height=\"10.00\" fill=\"%s\"/>\n",
                  color);
    } else {
        char attrs[96];
        snprintf(attrs, sizeof attrs,
                 "stroke=\"%s\" stroke-width=\"2.00\"", color);
        svg_line(b, *x, y - 1.0, *x + 18.0, y - 1.0, attrs);
    }
    svg_text(b, *x + 22.0, y + 3.0, "class=\"legend\"", name);
    *x += 22.0 + 7.0 * (double)strlen(name ? name : "") + 18.0;
}

/* The dashed vertical line at @p x and @p text beside it (on the side
 * with room). */
static void svg_vline(rp_buf *b, const axis *ax, double x, const char *text)
{
    double X = px(ax, x);
    int right = X < CH_L + PL_W * 0.55;
    svg_line(b, X, CH_T, X, CH_T + PL_H, "class=\"vline\"");
    svg_text(b, right ? X + 6.0 : X - 6.0, CH_T + 16.0,
             right ? "class=\"vtext\" text-anchor=\"start\""
                   : "class=\"vtext\" text-anchor=\"end\"",
             text);
}

static void svg_no_data(rp_buf *b, const char *what)
{
    svg_text(b, CH_L + PL_W / 2.0, CH_T + PL_H / 2.0,
             "class=\"nodata\" text-anchor=\"middle\"", what);
}

void rp_line_chart_svg(rp_buf *b, const rp_line_chart *c)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY, lx = CH_L;
    size_t n_pts = 0;
    axis ax, ay;

    for (size_t s = 0; s < c->n_series; s++)
        for (size_t i = 0; i < c->series[s].n; i++) {
            double x = c->series[s].x[i], y = c->series[s].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            x = clampv(x);
            y = clampv(y);
            xmin = fmin(xmin, x);
            xmax = fmax(xmax, x);
            ymin = fmin(ymin, y);
            ymax = fmax(ymax, y);
            n_pts++;
        }
    if (c->has_x_range && isfinite(c->x_lo) && isfinite(c->x_hi)) {
        xmin = fmin(xmin, clampv(c->x_lo));
        xmax = fmax(xmax, clampv(c->x_hi));
    }
    if (c->has_vline && isfinite(c->vline_x)) {
        xmin = fmin(xmin, clampv(c->vline_x));
        xmax = fmax(xmax, clampv(c->vline_x));
    }
    axis_make(&ax, xmin, xmax, 8, c->x_integer);
    if (c->y_unit)
        axis_unit(&ay);
    else
        axis_make(&ay, ymin, ymax, 6, 0);

    svg_open(b, c->label);
    svg_axes(b, &ax, &ay, c->x_label, c->y_label);
    for (size_t s = 0; s < c->n_series; s++) {
        const rp_series *se = &c->series[s];
        const char *color = palette[s % N_PALETTE];
        size_t n_ok = 0;
        for (size_t i = 0; i < se->n; i++)
            n_ok += isfinite(se->x[i]) && isfinite(se->y[i]);
        if (n_ok >= 2) {
            int first = 1;
            rp_put(b, "<polyline class=\"series\" fill=\"none\" points=\"");
            for (size_t i = 0; i < se->n; i++) {
                if (!isfinite(se->x[i]) || !isfinite(se->y[i]))
                    continue;
                if (!first)
                    rp_put(b, " ");
                first = 0;
                rp_coord(b, px(&ax, se->x[i]));
                rp_put(b, ",");
                rp_coord(b, py(&ay, se->y[i]));
            }
            rp_printf(b, "\" stroke=\"%s\"/>\n", color);
        }
        if (n_ok <= 60) /* markers for the few points of a run's epochs */
            for (size_t i = 0; i < se->n; i++) {
                if (!isfinite(se->x[i]) || !isfinite(se->y[i]))
                    continue;
                rp_put(b, "<circle cx=\"");
                rp_coord(b, px(&ax, se->x[i]));
                rp_put(b, "\" cy=\"");
                rp_coord(b, py(&ay, se->y[i]));
                rp_printf(b, "\" r=\"%s\" fill=\"%s\"/>\n",
                          n_ok > 30 ? "2.00" : "3.00", color);
            }
        svg_legend(b, &lx, color, se->name, 0);
    }
    if (c->has_vline && isfinite(c->vline_x))
        svg_vline(b, &ax, c->vline_x, c->vline_text);
    if (n_pts == 0)
        svg_no_data(b, "no data");
    rp_put(b, "</svg>\n");
}

void rp_histogram_svg(rp_buf *b, const rp_histogram *h)
{
    const char *keep_color = "#1f77b4", *drop_color = "#d62728",
               *rest_color = "#9ecae1", *mark_color = "#d62728";
    int nb = h->n_bins >= 1 ? (h->n_bins <= 400 ? h->n_bins : 400) : 1;
    int64_t count[400], marked[400], maxc = 0;
    double lo = INFINITY, hi = -INFINITY, theta = h->theta, w, lx = CH_L;
    size_t n_ok = 0;
    axis ax, ay;

    if (!isfinite(theta))
        theta = 0.0;
    theta = clampv(theta);
    for (size_t i = 0; i < h->n; i++) {
        double v = (double)h->values[i];
        if (!isfinite(v))
            continue;
        v = clampv(v);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        n_ok++;
    }
    if (n_ok == 0) {
        lo = theta - 1.0;
        hi = theta + 1.0;
    }
    lo = fmin(lo, theta);
    hi = fmax(hi, theta);
    if (hi - lo <= 1e-9 * fmax(1.0, fmax(fabs(lo), fabs(hi)))) {
        lo -= 0.5;
        hi += 0.5;
    }
    w = (hi - lo) / nb;
    memset(count, 0, sizeof count);
    memset(marked, 0, sizeof marked);
    for (size_t i = 0; i < h->n; i++) {
        double v = (double)h->values[i];
        int k;
        if (!isfinite(v))
            continue;
        k = (int)((clampv(v) - lo) / w);
        k = k < 0 ? 0 : k >= nb ? nb - 1 : k;
        count[k]++;
        if (h->mark && h->mark[i])
            marked[k]++;
    }
    for (int k = 0; k < nb; k++)
        maxc = count[k] > maxc ? count[k] : maxc;
    axis_make(&ax, lo, hi, 8, 0);
    axis_make(&ay, 0.0, maxc > 0 ? (double)maxc : 1.0, 5, 1);

    svg_open(b, h->label);
    svg_axes(b, &ax, &ay, h->x_label, "positions");
    for (int k = 0; k < nb; k++) {
        double x0 = px(&ax, lo + k * w), x1 = px(&ax, lo + (k + 1) * w);
        double bw = x1 - x0 > 1.5 ? x1 - x0 - 1.0 : 0.5;
        int64_t parts[2];
        const char *colors[2];
        double base = 0.0;
        if (count[k] == 0)
            continue;
        if (h->mark) {
            parts[0] = count[k] - marked[k];
            parts[1] = marked[k];
            colors[0] = rest_color;
            colors[1] = mark_color;
        } else {
            parts[0] = count[k];
            parts[1] = 0;
            colors[0] = lo + (k + 0.5) * w <= theta ? drop_color : keep_color;
            colors[1] = mark_color;
        }
        for (int q = 0; q < 2; q++) {
            double y0, y1;
            if (parts[q] == 0)
                continue;
            y0 = py(&ay, base);
            y1 = py(&ay, base + (double)parts[q]);
            rp_put(b, "<rect x=\"");
            rp_coord(b, x0);
            rp_put(b, "\" y=\"");
            rp_coord(b, y1);
            rp_put(b, "\" width=\"");
            rp_coord(b, bw);
            rp_put(b, "\" height=\"");
            rp_coord(b, y0 - y1);
            rp_printf(b, "\" fill=\"%s\"/>\n", colors[q]);
            base += (double)parts[q];
        }
    }
    if (h->mark) {
        svg_legend(b, &lx, rest_color, h->rest_name, 1);
        svg_legend(b, &lx, mark_color, h->mark_name, 1);
    } else {
        svg_legend(b, &lx, drop_color, "at or below theta", 1);
        svg_legend(b, &lx, keep_color, "above theta", 1);
    }
    svg_vline(b, &ax, theta, h->theta_text);
    if (n_ok == 0)
        svg_no_data(b, "no values");
    rp_put(b, "</svg>\n");
}

/* ------------------------------------------------------------------------ */
/* Precision and recall over thresholds                                     */
/* ------------------------------------------------------------------------ */

typedef struct scored {
    float v;
    uint8_t lab;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    float x = ((const scored *)a)->v, y = ((const scored *)b)->v;
    return x < y ? -1 : x > y;
}

int rp_pr_sweep(const float *values, const uint8_t *lab, size_t n, int n_t,
                double *t, double *precision, double *recall, double *f1)
{
    scored *s;
    int64_t *cum, pos;
    size_t m = 0;
    double lo, hi;
    int out;

    if (n_t < 1)
        return 0;
    s = malloc((n ? n : 1) * sizeof *s);
    cum = malloc((n + 1) * sizeof *cum);
    if (!s || !cum) {
        free(s);
        free(cum);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (isfinite(values[i])) {
            s[m].v = values[i];
            s[m].lab = lab[i] ? 1 : 0;
            m++;
        }
    if (m == 0) {
        free(s);
        free(cum);
        return 0;
    }
    qsort(s, m, sizeof *s, scored_cmp);
    cum[0] = 0;
    for (size_t i = 0; i < m; i++)
        cum[i + 1] = cum[i] + s[i].lab;
    pos = cum[m];
    lo = (double)s[0].v;
    hi = (double)s[m - 1].v;
    out = hi > lo ? n_t : 1;
    for (int q = 0; q < out; q++) {
        double th = out == 1 ? hi : lo + (hi - lo) * q / (out - 1);
        size_t a = 0, z = m; /* first index with a value above th */
        int64_t tp, k;
        if (q == out - 1)
            th = hi; /* exactly: the last threshold drops everything */
        while (a < z) {
            size_t mid = a + (z - a) / 2;
            if ((double)s[mid].v <= th)
                a = mid + 1;
            else
                z = mid;
        }
        k = (int64_t)a;
        tp = cum[a];
        t[q] = th;
        precision[q] = k > 0 ? (double)tp / (double)k : (double)NAN;
        recall[q] = pos > 0 ? (double)tp / (double)pos : (double)NAN;
        f1[q] = k + pos > 0 ? 2.0 * (double)tp / (double)(k + pos)
                            : (double)NAN;
    }
    free(s);
    free(cum);
    return out;
}
