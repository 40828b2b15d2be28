/* iadsr command-line tool: the vocabulary TSV of `iadsr import` (see
 * vocab.h and docs/IMPORT.md).
 * SPDX-License-Identifier: MIT
 */
#include "cli/vocab.h"

#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

enum { VOC_USER, VOC_ITEM, VOC_KINDS };
static const char *const kind_names[VOC_KINDS] = {"user", "item"};

/* Dense ids of the import fit 32 bits (item ids are int32 everywhere). */
#define VOC_MAX_ID INT32_MAX

struct cli_vocab {
    char *pool;              /* the external ids, each NUL-terminated */
    size_t *off[VOC_KINDS];  /* [id - 1] = offset in pool + 1; 0 = none */
    int64_t n[VOC_KINDS];    /* length of off[]: the largest id */
};

/* One line of the file, kept until the tables can be sized. */
typedef struct voc_entry {
    int64_t id;
    size_t off;
    uint64_t line;
    int kind;
} voc_entry;

typedef struct voc_reader {
    const char *cmd, *path;
    voc_entry *e;
    size_t n_e, cap_e;
    char *pool;
    size_t n_pool, cap_pool;
} voc_reader;

/* Grow *@p p (elements of @p size) to hold @p need; 0 on success. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t nc = *cap ? *cap : 64;
    void *np;
    if (need <= *cap)
        return 0;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / size)
            return -1;
        nc *= 2;
    }
    np = realloc(*p, nc * size);
    if (!np)
        return -1;
    *p = np;
    *cap = nc;
    return 0;
}

/* Decimal 1..VOC_MAX_ID, digits only; else -1. */
static int64_t parse_id(const char *s, size_t n)
{
    int64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > VOC_MAX_ID)
            return -1;
    }
    return v >= 1 ? v : -1;
}

/* Parse data line @p ln (@p n bytes, line end removed) into an entry;
 * prints the error and returns CLI_RUNTIME when malformed. */
static int parse_line(voc_reader *r, char *ln, size_t n, uint64_t line_no)
{
    char *t1 = memchr(ln, '\t', n), *t2, *ext;
    size_t klen, ilen, elen;
    int kind = -1;
    int64_t id;
    voc_entry *e;

    t2 = t1 ? memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - ln)) : NULL;
    if (!t1 || !t2 || memchr(t2 + 1, '\t', n - (size_t)(t2 + 1 - ln)))
        return cli_error(r->cmd, "%s:%llu: expected 3 tab-separated columns "
                                 "(kind, id, external)",
                         r->path, (unsigned long long)line_no);
    klen = (size_t)(t1 - ln);
    ilen = (size_t)(t2 - t1 - 1);
    ext = t2 + 1;
    elen = n - (size_t)(ext - ln);
    for (int k = 0; k < VOC_KINDS; k++)
        if (klen == strlen(kind_names[k]) &&
            memcmp(ln, kind_names[k], klen) == 0)
            kind = k;
    if (kind < 0)
        return cli_error(r->cmd, "%s:%llu: unknown kind '%.*s' (user or "
                                 "item)",
                         r->path, (unsigned long long)line_no,
                         klen > 40 ? 40 : (int)klen, ln);
    id = parse_id(t1 + 1, ilen);
    if (id < 0)
        return cli_error(r->cmd, "%s:%llu: bad %s id '%.*s' (a number "
                                 "1..%ld)",
                         r->path, (unsigned long long)line_no,
                         kind_names[kind], ilen > 40 ? 40 : (int)ilen, t1 + 1,
                         (long)VOC_MAX_ID);
    if (elen == 0)
        return cli_error(r->cmd, "%s:%llu: empty external id", r->path,
                         (unsigned long long)line_no);
    if (grow((void **)&r->e, &r->cap_e, r->n_e + 1, sizeof *r->e) != 0 ||
        elen >= SIZE_MAX - r->n_pool ||
        grow((void **)&r->pool, &r->cap_pool, r->n_pool + elen + 1, 1) != 0)
        return cli_error(r->cmd, "%s: out of memory", r->path);
    memcpy(r->pool + r->n_pool, ext, elen);
    r->pool[r->n_pool + elen] = '\0';
    e = &r->e[r->n_e++];
    e->id = id;
    e->off = r->n_pool;
    e->line = line_no;
    e->kind = kind;
    r->n_pool += elen + 1;
    return CLI_OK;
}

/* Size the tables by the largest ids and fill them in file order. */
static int build(voc_reader *r, cli_vocab *v)
{
    int64_t count[VOC_KINDS] = {0, 0};
    const voc_entry *maxe[VOC_KINDS] = {NULL, NULL};

    for (size_t i = 0; i < r->n_e; i++) {
        const voc_entry *e = &r->e[i];
        count[e->kind]++;
        if (!maxe[e->kind] || e->id > maxe[e->kind]->id)
            maxe[e->kind] = e;
    }
    for (int k = 0; k < VOC_KINDS; k++) {
        if (!maxe[k])
            continue;
        /* The table is sized by the largest id: a stray huge id in a
         * small file would plan gigabytes, and a vocabulary of the
         * import has dense ids 1..n. */
        if (maxe[k]->id > 2 * count[k] + 1024)
            return cli_error(r->cmd, "%s:%llu: %s id %lld is far beyond "
                                     "the %lld %s ids of the file (ids are "
                                     "dense, 1..n)",
                             r->path, (unsigned long long)maxe[k]->line,
                             kind_names[k], (long long)maxe[k]->id,
                             (long long)count[k], kind_names[k]);
        v->n[k] = maxe[k]->id;
        v->off[k] = calloc((size_t)v->n[k], sizeof *v->off[k]);
        if (!v->off[k])
            return cli_error(r->cmd, "%s: out of memory", r->path);
    }
    for (size_t i = 0; i < r->n_e; i++) {
        const voc_entry *e = &r->e[i];
        size_t *slot = &v->off[e->kind][e->id - 1];
        if (*slot) {
            uint64_t first = 0; /* the earlier line, found only on error */
            for (size_t j = 0; j < i && !first; j++)
                if (r->e[j].kind == e->kind && r->e[j].id == e->id)
                    first = r->e[j].line;
            return cli_error(r->cmd, "%s:%llu: duplicate %s id %lld (also "
                                     "on line %llu)",
                             r->path, (unsigned long long)e->line,
                             kind_names[e->kind], (long long)e->id,
                             (unsigned long long)first);
        }
        *slot = e->off + 1;
    }
    return CLI_OK;
}

int cli_vocab_load(const char *cmd, const char *path, cli_vocab **out)
{
    static const char header[] = "kind\tid\texternal";
    voc_reader r = {cmd, path, NULL, 0, 0, NULL, 0, 0};
    cli_vocab *v = NULL;
    char *ln = NULL;
    size_t ln_cap = 0;
    uint64_t line_no = 0;
    ssize_t got;
    int rc = CLI_RUNTIME;
    FILE *f;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f)
        return cli_error(cmd, "%s: %s", path, strerror(errno));
    while ((got = getline(&ln, &ln_cap, f)) >= 0) {
        size_t n = (size_t)got;
        line_no++;
        if (n > 0 && ln[n - 1] == '\n')
            n--;
        if (n > 0 && ln[n - 1] == '\r')
            n--;
        if (memchr(ln, '\0', n) || memchr(ln, '\r', n)) {
            cli_error(cmd, "%s:%llu: NUL byte or stray CR in the line", path,
                      (unsigned long long)line_no);
            goto done;
        }
        if (line_no == 1) {
            if (n != sizeof header - 1 || memcmp(ln, header, n) != 0) {
                cli_error(cmd, "%s:1: expected the header "
                               "kind<TAB>id<TAB>external (the vocabulary "
                               "of iadsr import)",
                          path);
                goto done;
            }
            continue;
        }
        if (parse_line(&r, ln, n, line_no) != CLI_OK)
            goto done;
    }
    if (ferror(f)) {
        cli_error(cmd, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    if (line_no == 0) {
        cli_error(cmd, "%s: empty file (expected the header "
                       "kind<TAB>id<TAB>external)",
                  path);
        goto done;
    }
    v = calloc(1, sizeof *v);
    if (!v) {
        cli_error(cmd, "%s: out of memory", path);
        goto done;
    }
    if (build(&r, v) != CLI_OK)
        goto done;
    v->pool = r.pool;
    r.pool = NULL;
    *out = v;
    v = NULL;
    rc = CLI_OK;
done:
    cli_vocab_free(v);
    free(r.e);
    free(r.pool);
    free(ln);
    fclose(f);
    return rc;
}

static const char *lookup(const cli_vocab *v, int k, int64_t id)
{
    if (!v || id < 1 || id > v->n[k] || !v->off[k][id - 1])
        return NULL;
    return v->pool + v->off[k][id - 1] - 1;
}

const char *cli_vocab_user(const cli_vocab *v, int64_t id)
{
    return lookup(v, VOC_USER, id);
}

const char *cli_vocab_item(const cli_vocab *v, int64_t id)
{
    return lookup(v, VOC_ITEM, id);
}

int64_t cli_vocab_first_missing_item(const cli_vocab *v, int64_t n_items)
{
    for (int64_t id = 1; id <= n_items; id++)
        if (!lookup(v, VOC_ITEM, id))
            return id;
    return 0;
}

void cli_vocab_free(cli_vocab *v)
{
    if (!v)
        return;
    for (int k = 0; k < VOC_KINDS; k++)
        free(v->off[k]);
    free(v->pool);
    free(v);
}
