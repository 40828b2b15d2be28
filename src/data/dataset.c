/* libiadsr - datasets: user sequences in CSR form, text parser.
 * SPDX-License-Identifier: MIT
 */
#include "common/fileio.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/handle.h"
#include "data/dataset.h"

#include <stdio.h>
#include <string.h>

/* Largest item id / n_items: n_items + 1 (score buffer length) fits int32,
 * and it matches the model's bound on n_items. */
#define DS_MAX_ITEM_ID (INT32_MAX - 1)
/* Largest n_users such that n_users + 1 offsets fit in memory arithmetic. */
#define DS_MAX_USERS ((int64_t)(PTRDIFF_MAX / (ptrdiff_t)sizeof(int64_t)) - 1)

/* ---- handle lifecycle -------------------------------------------------- */

static void dataset_destroy(iadsr_dataset *d)
{
    iadsr__free(d->owned_items);
    iadsr__free(d->owned_offsets);
    iadsr__free(d->owned_user_ids);
    iadsr__free(d);
}

IADSR__HANDLE_LIFECYCLE(iadsr_dataset, dataset, IADSR__MAGIC_DATASET,
                        dataset_destroy)

int iadsr__dataset_fits(const iadsr_dataset *d, int32_t n_items,
                        const char *what, const char *holder)
{
    if (d->n_items > n_items)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "%s: dataset has item ids up to %d but %s %d items",
                          what, (int)d->n_items, holder, (int)n_items);
    return IADSR_OK;
}

/* Allocate a handle that takes ownership of the given arrays (any of which
 * may be NULL). On failure the arrays are freed. */
static int dataset_new(iadsr_dataset **out, int32_t *items, int64_t *offsets,
                       int64_t *user_ids, int64_t n_users, int32_t n_items)
{
    iadsr_dataset *d;
    if (!IADSR__HANDLE_NEW(d, IADSR__MAGIC_DATASET)) {
        iadsr__free(items);
        iadsr__free(offsets);
        iadsr__free(user_ids);
        return iadsr__err(IADSR_ERR_NOMEM, "dataset: out of memory (%zu bytes)",
                          sizeof *d);
    }
    d->n_items = n_items;
    d->n_users = n_users;
    d->items = items;
    d->offsets = offsets;
    d->user_ids = user_ids;
    d->owned_items = items;
    d->owned_offsets = offsets;
    d->owned_user_ids = user_ids;
    *out = d;
    return IADSR_OK;
}

/* ---- iadsr_dataset_create ------------------------------------------------ */

/* Row u with offsets[u] <= i < offsets[u+1] (offsets validated, i < total). */
static int64_t user_of(const int64_t *offsets, int64_t n_users, int64_t i)
{
    int64_t lo = 0, hi = n_users - 1; /* smallest u with offsets[u+1] > i */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (offsets[mid + 1] > i)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int check_offsets(const int64_t *offsets, int64_t n_users)
{
    static const char w[] = "iadsr_dataset_create";
    if (offsets[0] != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: offsets[0] = %lld, must be 0", w,
                          (long long)offsets[0]);
    for (int64_t u = 0; u < n_users; u++) {
        int64_t a = offsets[u], b = offsets[u + 1];
        if (b < a)
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: offsets decrease at user %lld: offsets[%lld]"
                              " = %lld > offsets[%lld] = %lld",
                              w, (long long)u, (long long)u, (long long)a,
                              (long long)(u + 1), (long long)b);
        if (b - a > INT32_MAX)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s: user %lld has %lld items, more than %d", w,
                              (long long)u, (long long)(b - a), INT32_MAX);
    }
    if ((uint64_t)offsets[n_users] > (uint64_t)(PTRDIFF_MAX / 4))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: offsets[n_users] = %lld interactions is too "
                          "many",
                          w, (long long)offsets[n_users]);
    return IADSR_OK;
}

/* Validate every id against 1..limit (limit = n_items, or the maximum when
 * n_items is 0) and return the largest id in *max_out. */
static int check_items(const int32_t *items, const int64_t *offsets,
                       int64_t n_users, int32_t n_items, int32_t *max_out)
{
    static const char w[] = "iadsr_dataset_create";
    const int64_t total = offsets[n_users];
    const int32_t limit = n_items > 0 ? n_items : DS_MAX_ITEM_ID;
    int32_t lo = INT32_MAX, hi = INT32_MIN;

    /* Flat pass (vectorisable); locate the culprit only on failure. */
    for (int64_t i = 0; i < total; i++) {
        int32_t v = items[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *max_out = total > 0 ? hi : 0;
    if (total == 0 || (lo >= 1 && hi <= limit))
        return IADSR_OK;

    for (int64_t i = 0; i < total; i++) {
        int32_t v = items[i];
        if (v >= 1 && v <= limit)
            continue;
        int64_t u = user_of(offsets, n_users, i);
        long long pos = (long long)(i - offsets[u]);
        if (v == 0)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s: user %lld position %lld: item id 0 is "
                              "reserved for padding (ids start at 1)",
                              w, (long long)u, pos);
        if (v < 0)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s: user %lld position %lld: item id %d is "
                              "negative",
                              w, (long long)u, pos, (int)v);
        if (n_items > 0)
            return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                              "%s: user %lld position %lld: item id %d "
                              "exceeds n_items = %d",
                              w, (long long)u, pos, (int)v, (int)n_items);
        return iadsr__err(IADSR_ERR_OUT_OF_RANGE,
                          "%s: user %lld position %lld: item id %d exceeds "
                          "the maximum %d",
                          w, (long long)u, pos, (int)v, DS_MAX_ITEM_ID);
    }
    return IADSR_OK; /* not reached */
}

int iadsr_dataset_create(iadsr_dataset **out, const int32_t *items,
                         const int64_t *offsets, int64_t n_users,
                         int32_t n_items, uint32_t flags)
{
    static const char w[] = "iadsr_dataset_create";
    int32_t max_id = 0;
    int rc;

    IADSR__OUT_CLEAR(out, w);
    if (!items)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: items is NULL", w);
    if (!offsets)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: offsets is NULL", w);
    TRY(iadsr__check_aligned(w, "items", items, sizeof(int32_t)));
    TRY(iadsr__check_aligned(w, "offsets", offsets, sizeof(int64_t)));
    if (n_users < 1 || n_users > DS_MAX_USERS)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_users = %lld, must be >= 1", w,
                          (long long)n_users);
    TRY(iadsr__check_arg_i32(w, "n_items", n_items, 0, DS_MAX_ITEM_ID));
    if (flags & ~IADSR_FLAG_BORROW)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags = 0x%x has unknown bits (expected "
                          "IADSR_FLAG_COPY or IADSR_FLAG_BORROW)",
                          w, (unsigned)flags);

    TRY(check_offsets(offsets, n_users));
    TRY(check_items(items, offsets, n_users, n_items, &max_id));
    if (n_items == 0) {
        if (max_id == 0)
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: n_items = 0 asks for the largest id "
                              "present, but every sequence is empty",
                              w);
        n_items = max_id;
    }

    const size_t n_inter = (size_t)offsets[n_users];
    const size_t n_off = (size_t)n_users + 1;
    if (flags & IADSR_FLAG_BORROW) {
        iadsr_dataset *d = NULL;
        rc = dataset_new(&d, NULL, NULL, NULL, n_users, n_items);
        if (rc != IADSR_OK)
            return rc;
        d->items = items;
        d->offsets = offsets;
        *out = d;
        return IADSR_OK;
    }

    int32_t *items_copy = iadsr__malloc(n_inter * sizeof(int32_t));
    int64_t *offsets_copy = iadsr__malloc(n_off * sizeof(int64_t));
    if (!items_copy || !offsets_copy) {
        iadsr__free(items_copy);
        iadsr__free(offsets_copy);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: out of memory copying %zu items and %zu "
                          "offsets",
                          w, n_inter, n_off);
    }
    if (n_inter > 0)
        memcpy(items_copy, items, n_inter * sizeof(int32_t));
    memcpy(offsets_copy, offsets, n_off * sizeof(int64_t));
    return dataset_new(out, items_copy, offsets_copy, NULL, n_users, n_items);
}

/* ---- text parser --------------------------------------------------------- */

typedef struct parser {
    const char *name;
    int64_t line;
    int32_t n_items; /* 0 = largest id present */
    int32_t max_id;
    int32_t *items;
    size_t n_inter, cap_items;
    int64_t *offsets; /* cap_users + 1 */
    int64_t *user_ids;
    size_t n_users, cap_users;
} parser;

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_token_end(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A printable excerpt of the token at p (at most 32 characters). */
static void token_excerpt(char *buf, size_t cap, const char *p,
                          const char *end)
{
    size_t n = 0;
    while (p < end && !is_token_end(*p) && n + 1 < cap) {
        unsigned char c = (unsigned char)*p++;
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        if (n == 32 && p < end && !is_token_end(*p)) {
            if (n + 4 <= cap - 1) {
                memcpy(buf + n, "...", 3);
                n += 3;
            }
            break;
        }
    }
    buf[n] = '\0';
}

/* Scan decimal digits. *overflow is set when the value reaches 10^19 or
 * more (exact up to that, which covers INT64_MAX). */
static const char *scan_digits(const char *p, const char *end, uint64_t *val,
                               int *overflow)
{
    uint64_t v = 0;
    int ovf = 0;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c < '0' || c > '9')
            break;
        unsigned d = (unsigned)(c - '0');
        if (v >= 1000000000000000000ull)
            ovf = 1;
        else
            v = v * 10u + d;
        p++;
    }
    *val = v;
    *overflow = ovf;
    return p;
}

/* Next capacity >= need (geometric growth) such that (cap + extra) * elem
 * bytes fit in a size_t; 0 on overflow. */
static int next_cap(size_t cap, size_t need, size_t elem, size_t extra,
                    size_t *out)
{
    const size_t max = SIZE_MAX / elem - extra;
    size_t nc = cap ? cap : 16;
    while (nc < need)
        nc = nc <= max / 2 ? nc * 2 : need;
    if (nc > max)
        return 0;
    *out = nc;
    return 1;
}

static int parse_nomem(const parser *ps)
{
    return iadsr__err_at(IADSR_ERR_NOMEM, ps->name, ps->line,
                         "out of memory (%zu items, %zu users so far)",
                         ps->n_inter, ps->n_users);
}

/* Handle a '\r' at p: only "\r\n" or a final '\r' are line ends. Returns the
 * number of bytes consumed, or 0 for a stray carriage return. */
static size_t cr_length(const char *p, const char *end)
{
    if (p + 1 == end)
        return 1;
    return p[1] == '\n' ? 2 : 0;
}

/* Skip blanks, then step over a line end if one follows. Returns 0 at a
 * token, 1 after a line end, 2 at the end of the buffer, or a FORMAT error
 * for a stray carriage return. */
static int skip_to_token(const parser *ps, const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && is_blank(*p))
        p++;
    *pp = p;
    if (p == end)
        return 2;
    if (*p == '\n') {
        *pp = p + 1;
        return 1;
    }
    if (*p != '\r')
        return 0;
    size_t k = cr_length(p, end);
    if (k == 0)
        return iadsr__err_at(IADSR_ERR_FORMAT, ps->name, ps->line,
                             "carriage return not followed by a line feed");
    *pp = p + k;
    return 1;
}

/* The decimal id at *pp, at most @p max, *pp moved past it. Otherwise a
 * FORMAT error (not an id: "token 'x' is not <article> <what>") or an
 * OUT_OF_RANGE one ("<what> x is too large"). */
static int read_id(const parser *ps, const char **pp, const char *end,
                   uint64_t max, const char *article, const char *what,
                   uint64_t *v)
{
    const char *start = *pp;
    int ovf;
    const char *p = scan_digits(start, end, v, &ovf);
    int not_id = p == start || (p < end && !is_token_end(*p));
    if (not_id || ovf || *v > max) {
        char tok[40];
        token_excerpt(tok, sizeof tok, start, end);
        if (not_id)
            return iadsr__err_at(IADSR_ERR_FORMAT, ps->name, ps->line,
                                 "token '%s' is not %s %s (decimal digits "
                                 "expected)",
                                 tok, article, what);
        return iadsr__err_at(IADSR_ERR_OUT_OF_RANGE, ps->name, ps->line,
                             "%s %s is too large (maximum %llu)", what, tok,
                             (unsigned long long)max);
    }
    *pp = p;
    return IADSR_OK;
}

static int parse_body(parser *ps, const char *p, const char *end)
{
    while (p < end) {
        ps->line++;
        int at = skip_to_token(ps, &p, end);
        if (at < 0)
            return at;
        if (at == 2)
            break;
        if (at == 1)
            continue;
        if (*p == '#') {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
            continue;
        }

        /* user id */
        uint64_t uid;
        int rc = read_id(ps, &p, end, (uint64_t)INT64_MAX, "a", "user id", &uid);
        if (rc != IADSR_OK)
            return rc;

        /* items */
        const size_t first = ps->n_inter;
        for (;;) {
            int at_end = skip_to_token(ps, &p, end);
            if (at_end < 0)
                return at_end;
            if (at_end)
                break;
            uint64_t v;
            rc = read_id(ps, &p, end, (uint64_t)DS_MAX_ITEM_ID, "an", "item id",
                         &v);
            if (rc != IADSR_OK)
                return rc;
            if (v == 0)
                return iadsr__err_at(IADSR_ERR_OUT_OF_RANGE, ps->name,
                                     ps->line, "item id 0 is reserved for "
                                     "padding (ids start at 1)");
            if (ps->n_items > 0 && v > (uint64_t)ps->n_items)
                return iadsr__err_at(IADSR_ERR_OUT_OF_RANGE, ps->name,
                                     ps->line, "item id %lld exceeds "
                                     "n_items = %d",
                                     (long long)v, (int)ps->n_items);
            if (ps->n_inter == ps->cap_items) {
                size_t nc;
                int32_t *q;
                if (!next_cap(ps->cap_items, ps->n_inter + 1, sizeof *q, 0,
                              &nc) ||
                    !(q = iadsr__realloc(ps->items, nc, sizeof *q)))
                    return parse_nomem(ps);
                ps->items = q;
                ps->cap_items = nc;
            }
            ps->items[ps->n_inter++] = (int32_t)v;
            if ((int32_t)v > ps->max_id)
                ps->max_id = (int32_t)v;
        }

        if (ps->n_inter == first)
            return iadsr__err_at(IADSR_ERR_FORMAT, ps->name, ps->line,
                                 "user %llu has no items",
                                 (unsigned long long)uid);
        if (ps->n_inter - first > (size_t)INT32_MAX)
            return iadsr__err_at(IADSR_ERR_OUT_OF_RANGE, ps->name, ps->line,
                                 "user %llu has %zu items, more than %d",
                                 (unsigned long long)uid, ps->n_inter - first,
                                 INT32_MAX);
        if (ps->n_users == ps->cap_users) {
            size_t nc;
            int64_t *o, *q;
            if (!next_cap(ps->cap_users, ps->n_users + 1, sizeof *o, 1, &nc))
                return parse_nomem(ps);
            /* offsets has one more slot than user_ids */
            if (!(o = iadsr__realloc(ps->offsets, nc + 1, sizeof *o)))
                return parse_nomem(ps);
            ps->offsets = o;
            if (!(q = iadsr__realloc(ps->user_ids, nc, sizeof *q)))
                return parse_nomem(ps);
            ps->user_ids = q;
            ps->cap_users = nc;
        }
        ps->user_ids[ps->n_users] = (int64_t)uid;
        ps->n_users++;
        ps->offsets[ps->n_users] = (int64_t)ps->n_inter;
    }
    return IADSR_OK;
}

/* Give back over-allocated capacity (a failure is reported as NOMEM so that
 * every failed allocation surfaces as IADSR_ERR_NOMEM). */
static int shrink(void **arr, size_t n, size_t cap, size_t elem)
{
    if (cap - n <= n / 8 + 16)
        return 1;
    void *q = iadsr__realloc(*arr, n, elem);
    if (!q)
        return 0;
    *arr = q;
    return 1;
}

int iadsr_dataset_parse_text(iadsr_dataset **out, const char *text,
                             size_t len, int32_t n_items, const char *name)
{
    static const char w[] = "iadsr_dataset_parse_text";
    parser ps;
    int rc;

    if (!name)
        name = "<buffer>";
    IADSR__OUT_CLEAR(out, w);
    if (!text && len > 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: text is NULL but len = %zu", w, len);
    TRY(iadsr__check_arg_i32(w, "n_items", n_items, 0, DS_MAX_ITEM_ID));

    memset(&ps, 0, sizeof ps);
    ps.name = name;
    ps.n_items = n_items;
    if (len == 0)
        return iadsr__err(IADSR_ERR_FORMAT, "%s: no sequences", name);

    /* Initial guesses from the size (ids are >= 2 bytes with a separator,
     * lines typically >= 32 bytes); both arrays grow when needed. */
    ps.cap_items = len / 4 + 16;
    ps.cap_users = len / 32 + 16;
    ps.items = iadsr__malloc(ps.cap_items * sizeof(int32_t));
    ps.offsets = iadsr__malloc((ps.cap_users + 1) * sizeof(int64_t));
    ps.user_ids = iadsr__malloc(ps.cap_users * sizeof(int64_t));
    if (!ps.items || !ps.offsets || !ps.user_ids) {
        rc = parse_nomem(&ps);
        goto fail;
    }
    ps.offsets[0] = 0;

    rc = parse_body(&ps, text, text + len);
    if (rc != IADSR_OK)
        goto fail;
    if (ps.n_users == 0) {
        rc = iadsr__err(IADSR_ERR_FORMAT, "%s: no sequences", name);
        goto fail;
    }
    if (!shrink((void **)&ps.items, ps.n_inter, ps.cap_items,
                sizeof(int32_t)) ||
        !shrink((void **)&ps.offsets, ps.n_users + 1, ps.cap_users + 1,
                sizeof(int64_t)) ||
        !shrink((void **)&ps.user_ids, ps.n_users, ps.cap_users,
                sizeof(int64_t))) {
        rc = parse_nomem(&ps);
        goto fail;
    }
    return dataset_new(out, ps.items, ps.offsets, ps.user_ids,
                       (int64_t)ps.n_users,
                       n_items > 0 ? n_items : ps.max_id);

fail:
    iadsr__free(ps.items);
    iadsr__free(ps.offsets);
    iadsr__free(ps.user_ids);
    return rc;
}

/* ---- file loading ------------------------------------------------------- */

int iadsr_dataset_load_text(iadsr_dataset **out, const char *path,
                            int32_t n_items)
{
    static const char w[] = "iadsr_dataset_load_text";

    IADSR__OUT_CLEAR(out, w);
    if (!path)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is NULL", w);
    /* pipes and devices are read to their end, like regular files */
    void *buf = NULL;
    size_t len = 0;
    int rc = iadsr__read_file_ex(path, w, 0, 0, &buf, &len);
    if (rc != IADSR_OK)
        return rc;
    rc = iadsr_dataset_parse_text(out, buf, len, n_items, path);
    iadsr__free(buf);
    return rc;
}

/* ---- accessors ----------------------------------------------------------- */

IADSR__HANDLE_GET(iadsr_dataset, dataset, int64_t, iadsr_dataset_n_users,
                  h->n_users)
IADSR__HANDLE_GET(iadsr_dataset, dataset, int32_t, iadsr_dataset_n_items,
                  h->n_items)
IADSR__HANDLE_GET(iadsr_dataset, dataset, int64_t,
                  iadsr_dataset_n_interactions, h->offsets[h->n_users])

const int32_t *iadsr_dataset_user_items(const iadsr_dataset *d, int64_t u,
                                        int32_t *n_out)
{
    if (!iadsr__dataset_ok(d) || u < 0 || u >= d->n_users) {
        if (n_out)
            *n_out = 0;
        return NULL;
    }
    if (n_out)
        *n_out = (int32_t)(d->offsets[u + 1] - d->offsets[u]);
    return d->items + d->offsets[u];
}

int64_t iadsr_dataset_user_id(const iadsr_dataset *d, int64_t u)
{
    if (!iadsr__dataset_ok(d) || u < 0 || u >= d->n_users)
        return -1;
    return d->user_ids ? d->user_ids[u] : u;
}
