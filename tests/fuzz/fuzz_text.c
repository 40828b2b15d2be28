/* Fuzz harness: the sequence text parser (iadsr_dataset_parse_text).
 *
 * Byte 0 selects the call's arguments, the rest is the text:
 *   bits 0-1  n_items: 0 = "largest id present", 1 = 1 + bits 4-7 (1..16),
 *             2 = 2147483646 (the largest allowed), 3 = invalid (-1, or
 *             INT32_MAX with bit 4 set): INVALID_ARG expected
 *   bit 2     name NULL (messages then say "<buffer>") or "fuzz.txt"
 *   bit 3     an empty text is passed as NULL
 * Checks: a documented status; on failure *out is NULL and the message
 * starts with "NAME:LINE:" for errors that belong to a line; a reference
 * parser written here from the header's description must agree on the
 * status and, on success, on every user id and item; the dataset's
 * invariants (n_users >= 1, CSR offsets monotone, items in 1..n_items) and
 * iadsr_dataset_create() on the same arrays (copied and borrowed).
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_common.h"

#define MAX_ITEM_ID (INT32_MAX - 1)

/* ---- reference parser (independent of src/data/dataset.c) --------------------- */

typedef struct ref_ds {
    int rc;           /* IADSR_OK or the first error */
    long long line;   /* line of the error, 0 when it has none */
    int64_t n_users;
    int64_t *user_ids; /* n_users */
    int64_t *offsets;  /* n_users + 1 */
    int32_t *items;
    int64_t n_inter;
    int32_t max_id;
} ref_ds;

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

static int tok_end(char c)
{
    return blank(c) || c == '\n' || c == '\r';
}

/* A decimal token at p: its value, saturated at UINT64_MAX, in *v; the end
 * of the digits, or NULL when the token is not digits up to a separator. */
static const char *ref_number(const char *p, const char *end, uint64_t *v)
{
    const char *s = p;
    uint64_t x = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        p++;
    }
    if (p == s || (p < end && !tok_end(*p)))
        return NULL;
    *v = x;
    return p;
}

/* A line end at p (p < end, *p is '\n' or '\r'): bytes consumed, 0 for a
 * carriage return that is neither "\r\n" nor the last byte. */
static size_t ref_eol(const char *p, const char *end)
{
    if (*p == '\n')
        return 1;
    if (p + 1 == end)
        return 1;
    return p[1] == '\n' ? 2 : 0;
}

static void ref_parse(ref_ds *r, const char *p, size_t len, int32_t n_items)
{
    const char *end = p + len;
    memset(r, 0, sizeof *r);
    r->user_ids = fz_alloc((len / 2 + 1) * sizeof(int64_t));
    r->offsets = fz_alloc((len / 2 + 2) * sizeof(int64_t));
    r->items = fz_alloc((len / 2 + 1) * sizeof(int32_t));
    r->offsets[0] = 0;
    long long line = 0;
#define REF_FAIL(code)                                                        \
    do {                                                                      \
        r->rc = (code);                                                       \
        r->line = line;                                                       \
        return;                                                               \
    } while (0)
    while (p < end) {
        line++;
        while (p < end && blank(*p))
            p++;
        if (p == end)
            break;
        if (*p == '\n' || *p == '\r') {
            size_t k = ref_eol(p, end);
            if (!k)
                REF_FAIL(IADSR_ERR_FORMAT);
            p += k;
            continue;
        }
        if (*p == '#') {
            while (p < end && *p != '\n')
                p++;
            if (p < end)
                p++;
            continue;
        }
        uint64_t uid;
        p = ref_number(p, end, &uid);
        if (!p)
            REF_FAIL(IADSR_ERR_FORMAT);
        if (uid > (uint64_t)INT64_MAX)
            REF_FAIL(IADSR_ERR_OUT_OF_RANGE);
        int64_t first = r->n_inter;
        for (;;) {
            while (p < end && blank(*p))
                p++;
            if (p == end)
                break;
            if (*p == '\n' || *p == '\r') {
                size_t k = ref_eol(p, end);
                if (!k)
                    REF_FAIL(IADSR_ERR_FORMAT);
                p += k;
                break;
            }
            uint64_t v;
            p = ref_number(p, end, &v);
            if (!p)
                REF_FAIL(IADSR_ERR_FORMAT);
            if (v == 0 || v > MAX_ITEM_ID ||
                (n_items > 0 && v > (uint64_t)n_items))
                REF_FAIL(IADSR_ERR_OUT_OF_RANGE);
            r->items[r->n_inter++] = (int32_t)v;
            if ((int32_t)v > r->max_id)
                r->max_id = (int32_t)v;
        }
        if (r->n_inter == first)
            REF_FAIL(IADSR_ERR_FORMAT);
        r->user_ids[r->n_users++] = (int64_t)uid;
        r->offsets[r->n_users] = r->n_inter;
    }
    line = 0;
    if (r->n_users == 0)
        REF_FAIL(IADSR_ERR_FORMAT);
#undef REF_FAIL
}

static void ref_free(ref_ds *r)
{
    free(r->user_ids);
    free(r->offsets);
    free(r->items);
}

/* ---- checks on a parsed dataset ------------------------------------------ */

static void check_dataset(const iadsr_dataset *d, const ref_ds *r,
                          int32_t n_items)
{
    const int64_t nu = iadsr_dataset_n_users(d);
    const int32_t ni = iadsr_dataset_n_items(d);
    FZ_CHECK(nu >= 1 && nu == r->n_users);
    FZ_CHECK(ni == (n_items > 0 ? n_items : r->max_id));
    FZ_CHECK(iadsr_dataset_n_interactions(d) == r->n_inter);

    /* rebuild the CSR arrays from the per-user views */
    int64_t *off = fz_alloc(((size_t)nu + 1) * sizeof(int64_t));
    int32_t *items = fz_alloc((size_t)r->n_inter * sizeof(int32_t));
    off[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = -1;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        FZ_CHECK(s != NULL && n >= 1);
        FZ_CHECK(off[u] + n == r->offsets[u + 1]);
        for (int32_t i = 0; i < n; i++) {
            FZ_CHECK(s[i] >= 1 && s[i] <= ni);
            FZ_CHECK(s[i] == r->items[off[u] + i]);
        }
        memcpy(items + off[u], s, (size_t)n * sizeof(int32_t));
        off[u + 1] = off[u] + n;
        FZ_CHECK(iadsr_dataset_user_id(d, u) == r->user_ids[u]);
    }
    int32_t n_out = 7;
    FZ_CHECK(iadsr_dataset_user_items(d, nu, &n_out) == NULL && n_out == 0);
    FZ_CHECK(iadsr_dataset_user_items(d, -1, &n_out) == NULL && n_out == 0);
    FZ_CHECK(iadsr_dataset_user_id(d, nu) == -1);
    FZ_CHECK(iadsr_dataset_user_id(d, -1) == -1);

    /* the same arrays through the array constructor, copied and borrowed */
    for (uint32_t flags = 0; flags <= IADSR_FLAG_BORROW; flags++) {
        iadsr_dataset *d2 = FZ_SENTINEL;
        iadsr_clear_error();
        int rc = iadsr_dataset_create(&d2, items, off, nu, ni, flags);
        fz_check_status(rc);
        FZ_CHECK(rc == IADSR_OK);
        FZ_CHECK(iadsr_dataset_n_users(d2) == nu &&
                 iadsr_dataset_n_items(d2) == ni &&
                 iadsr_dataset_n_interactions(d2) == r->n_inter);
        iadsr_dataset_free(d2);
    }
    /* n_items one below the largest id is refused */
    if (r->max_id >= 2) {
        iadsr_dataset *d3 = FZ_SENTINEL;
        iadsr_clear_error();
        int rc = iadsr_dataset_create(&d3, items, off, nu, r->max_id - 1, 0);
        fz_check_status(rc);
        FZ_CHECK(rc == IADSR_ERR_OUT_OF_RANGE && d3 == NULL);
    }
    free(off);
    free(items);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t f = data[0];
    int32_t n_items;
    int invalid = 0;
    switch (f & 3) {
    case 0: n_items = 0; break;
    case 1: n_items = 1 + (f >> 4); break;
    case 2: n_items = MAX_ITEM_ID; break;
    default:
        n_items = (f & 16) ? INT32_MAX : -1;
        invalid = 1;
        break;
    }
    const char *name = (f & 4) ? NULL : "fuzz.txt";
    const size_t len = size - 1;
    char *text = NULL;
    if (len > 0 || !(f & 8)) {
        text = fz_alloc(len); /* exact size: no terminator to lean on */
        memcpy(text, data + 1, len);
    }

    iadsr_dataset *d = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_dataset_parse_text(&d, text, len, n_items, name);
    fz_check_status(rc);
    if (rc != IADSR_OK)
        FZ_CHECK(d == NULL);
    if (invalid) {
        FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
        free(text);
        return 0;
    }

    ref_ds r;
    ref_parse(&r, text ? text : "", len, n_items);
    if (rc != IADSR_ERR_NOMEM)
        FZ_CHECK(rc == r.rc);
    if (rc != IADSR_OK && rc == r.rc) {
        /* "NAME:LINE: ..." for line errors, "NAME: ..." otherwise */
        char want[64];
        if (r.line > 0)
            snprintf(want, sizeof want, "%s:%lld: ",
                     name ? name : "<buffer>", r.line);
        else
            snprintf(want, sizeof want, "%s: ", name ? name : "<buffer>");
        FZ_CHECK(strncmp(iadsr_last_error(), want, strlen(want)) == 0);
    }
    if (rc == IADSR_OK)
        check_dataset(d, &r, n_items);

    ref_free(&r);
    iadsr_dataset_free(d);
    free(text);
    return 0;
}
