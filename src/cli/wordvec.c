/* libiadsr - pretrained word vectors in text form (GloVe / word2vec).
 * SPDX-License-Identifier: MIT
 *
 * One pass over the buffer: each line's word goes into a character arena
 * and an open-addressing hash table (FNV-1a of the ASCII-case-folded bytes,
 * linear probing, load <= 1/2), its numbers straight into the next row of a
 * contiguous float32 matrix. Arrays grow geometrically; nothing is allocated
 * per line. Numbers go through a locale-independent parser: a float32 or
 * float64 fast path when the decimal fits one (exact by Clinger's argument),
 * otherwise an exact big-integer comparison against the rounding midpoints.
 */
#include "cli/wordvec.h"

#include "common/alloc.h"
#include "common/fileio.h"
#include "iadsr.h"
#include "common/error.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- float parsing --------------------------------------------------------- */

/* Exact powers of ten: float holds 10^0..10^10, double 10^0..10^22. */
static const float pow10_f[11] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                  1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
static const double pow10_d[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Significant digits kept for the exact path. Float midpoints have at most
 * 113 significant decimal digits, so truncating beyond 200 and appending a
 * non-zero digit (when a non-zero digit was dropped) cannot move the value
 * across a midpoint. */
#define PF_MAX_SIG 200
/* Big integers for the exact comparison: < 1100 bits are ever needed. */
#define PF_LIMBS 64

typedef struct pf_big {
    int n; /* limbs in use; value = sum l[i] * 2^(32 i) */
    uint32_t l[PF_LIMBS];
} pf_big;

static void big_set(pf_big *b, uint64_t v)
{
    b->n = 0;
    while (v) {
        b->l[b->n++] = (uint32_t)v;
        v >>= 32;
    }
}

static void big_mul_small(pf_big *b, uint32_t m)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t t = (uint64_t)b->l[i] * m + carry;
        b->l[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry && b->n < PF_LIMBS)
        b->l[b->n++] = (uint32_t)carry;
}

static void big_mul_pow10(pf_big *b, int k)
{
    while (k >= 9) {
        big_mul_small(b, 1000000000u);
        k -= 9;
    }
    if (k > 0)
        big_mul_small(b, (uint32_t)pow10_d[k]);
}

static void big_shl(pf_big *b, int bits)
{
    int words = bits / 32, r = bits % 32;
    if (b->n == 0)
        return;
    if (r) {
        uint32_t carry = 0;
        for (int i = 0; i < b->n; i++) {
            uint32_t v = b->l[i];
            b->l[i] = (v << r) | carry;
            carry = v >> (32 - r);
        }
        if (carry && b->n < PF_LIMBS)
            b->l[b->n++] = carry;
    }
    if (words) {
        if (b->n + words > PF_LIMBS)
            words = PF_LIMBS - b->n; /* not reached (sizes are bounded) */
        memmove(b->l + words, b->l, (size_t)b->n * sizeof b->l[0]);
        memset(b->l, 0, (size_t)words * sizeof b->l[0]);
        b->n += words;
    }
}

static void big_add_small(pf_big *b, uint32_t v)
{
    uint64_t carry = v;
    for (int i = 0; i < b->n && carry; i++) {
        uint64_t t = (uint64_t)b->l[i] + carry;
        b->l[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry && b->n < PF_LIMBS)
        b->l[b->n++] = (uint32_t)carry;
}

static int big_cmp(const pf_big *a, const pf_big *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->l[i] != b->l[i])
            return a->l[i] < b->l[i] ? -1 : 1;
    return 0;
}

/* Compare N * 10^e10 (N from the digit string) with A * 2^b2. */
static int cmp_dec_bin(const pf_big *n_dig, int e10, uint64_t a, int b2)
{
    pf_big l = *n_dig, r;
    big_set(&r, a);
    if (e10 >= 0)
        big_mul_pow10(&l, e10);
    else
        big_mul_pow10(&r, -e10);
    if (b2 >= 0)
        big_shl(&r, b2);
    else
        big_shl(&l, -b2);
    return big_cmp(&l, &r);
}

static int lower_eq(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return 0;
    }
    return 1;
}

/* Exact decimal -> float32 for the digits in [ds, de) (one '.' may appear
 * among them) times 10^exp10; the value is positive and non-zero. Returns 0,
 * or 2 when it rounds to infinity. */
static int parse_float_exact(const char *ds, const char *de, int64_t exp10,
                             float *out)
{
    pf_big n_dig; /* N: the significant digits */
    int n_sig = 0, sticky = 0, seen_point = 0, chunk_len = 0;
    int64_t e10 = exp10; /* value = N * 10^e10 */
    uint32_t chunk = 0;

    n_dig.n = 0;
    for (const char *p = ds; p < de; p++) {
        if (*p == '.') {
            seen_point = 1;
            continue;
        }
        uint32_t d = (uint32_t)(*p - '0');
        if (n_sig == 0 && d == 0) { /* leading zero */
            if (seen_point)
                e10--;
            continue;
        }
        if (n_sig < PF_MAX_SIG) {
            chunk = chunk * 10u + d;
            if (++chunk_len == 9) {
                big_mul_small(&n_dig, 1000000000u);
                big_add_small(&n_dig, chunk);
                chunk = 0;
                chunk_len = 0;
            }
            n_sig++;
            if (seen_point)
                e10--;
        } else {
            sticky |= d != 0;
            if (!seen_point)
                e10++;
        }
    }
    if (sticky) { /* append a non-zero digit: see PF_MAX_SIG */
        chunk = chunk * 10u + 1u;
        chunk_len++;
        e10--;
    }
    if (chunk_len > 0) {
        big_mul_pow10(&n_dig, chunk_len);
        big_add_small(&n_dig, chunk);
    }
    const int n_total = n_sig + sticky; /* digits of N */
    /* x = N * 10^e10 lies in [10^(pos-1), 10^pos). */
    const int64_t pos = e10 + n_total;
    if (pos > 39) {
        *out = INFINITY;
        return 2;
    }
    if (pos < -45) { /* x < 1e-46 < 2^-150: rounds to zero */
        *out = 0.0f;
        return 0;
    }

    /* Approximation from the leading 17 digits, good to a few float ulps
     * (the comparisons below correct it). */
    double approx = 0.0;
    int k = 0;
    for (const char *p = ds; p < de && k < 17; p++) {
        if (*p == '.' || (k == 0 && *p == '0'))
            continue;
        approx = approx * 10.0 + (double)(*p - '0');
        k++;
    }
    for (int64_t e = e10 + (n_total - k); e != 0;) {
        if (e > 0) {
            int s = e > 22 ? 22 : (int)e;
            approx *= pow10_d[s];
            e -= s;
        } else {
            int s = e < -22 ? 22 : (int)-e;
            approx /= pow10_d[s];
            e += s;
        }
    }
    /* Candidate s * 2^q, s < 2^24: normals have s >= 2^23, subnormals
     * q = -149; infinity is s = 2^23, q = 105 (2^128). */
    uint64_t s;
    int q;
    {
        float f = (float)approx;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        uint32_t ex = (bits >> 23) & 0xffu, mant = bits & 0x7fffffu;
        if (ex == 0xffu) {
            s = 1u << 23;
            q = 105;
        } else if (ex == 0) {
            s = mant;
            q = -149;
        } else {
            s = mant | (1u << 23);
            q = (int)ex - 150;
        }
    }
    /* Up while x is above the midpoint to the next float (ties to even). */
    for (int it = 0; it < 8 && q < 105; it++) {
        int c = cmp_dec_bin(&n_dig, (int)e10, 2 * s + 1, q - 1);
        if (c < 0 || (c == 0 && !(s & 1)))
            break;
        if (++s == (1u << 24)) {
            s = 1u << 23;
            q++;
        }
    }
    /* Down while x is below the midpoint to the previous float. */
    for (int it = 0; it < 8 && s > 0; it++) {
        const int binade_low = s == (1u << 23) && q > -149;
        int c = binade_low ? cmp_dec_bin(&n_dig, (int)e10, 4 * s - 1, q - 2)
                           : cmp_dec_bin(&n_dig, (int)e10, 2 * s - 1, q - 1);
        if (c > 0 || (c == 0 && !(s & 1)))
            break;
        if (binade_low) {
            s = (1u << 24) - 1;
            q--;
        } else {
            s--;
        }
    }
    if (q >= 105) {
        *out = INFINITY;
        return 2;
    }
    *out = ldexpf((float)s, q); /* exact: s < 2^24 and in range */
    return 0;
}

int iadsr__parse_float(const char *p, const char *end, float *out)
{
    const char *s = p;
    int neg = 0;
    uint64_t m = 0;
    int n_sig = 0, trunc = 0, n_digits = 0;
    int64_t e10 = 0, ex = 0;

    *out = 0.0f;
    if (s < end && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (s == end)
        return 1;
    if (!((*s >= '0' && *s <= '9') || *s == '.')) {
        if (lower_eq(s, end, "nan")) {
            *out = NAN;
            return 2;
        }
        if (lower_eq(s, end, "inf") || lower_eq(s, end, "infinity")) {
            *out = neg ? -INFINITY : INFINITY;
            return 2;
        }
        return 1;
    }
    const char *ds = s;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        n_digits++;
        if (n_sig == 0 && d == 0)
            continue;
        if (n_sig < 19) {
            m = m * 10u + d;
            n_sig++;
        } else {
            trunc |= d != 0;
            e10++;
        }
    }
    if (s < end && *s == '.') {
        s++;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            unsigned d = (unsigned)(*s - '0');
            n_digits++;
            if (n_sig == 0 && d == 0) {
                e10--;
                continue;
            }
            if (n_sig < 19) {
                m = m * 10u + d;
                n_sig++;
                e10--;
            } else {
                trunc |= d != 0;
            }
        }
    }
    const char *de = s;
    if (n_digits == 0)
        return 1;
    if (s < end && (*s == 'e' || *s == 'E')) {
        int eneg = 0, edig = 0;
        s++;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            edig++;
            if (ex < 100000000)
                ex = ex * 10 + (*s - '0');
        }
        if (edig == 0)
            return 1;
        if (eneg)
            ex = -ex;
    }
    if (s != end)
        return 1;

    float r;
    if (m == 0) {
        r = 0.0f;
    } else {
        int64_t e = e10 + ex;
        int done = 0;
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
        if (!trunc && m <= (1u << 24) && e >= -10 && e <= 10) {
            r = (float)m;
            r = e < 0 ? r / pow10_f[-e] : r * pow10_f[e];
            done = 1;
        } else if (!trunc && m <= ((uint64_t)1 << 53) && e >= -22 &&
                   e <= 22) {
            double d = (double)m;
            d = e < 0 ? d / pow10_d[-e] : d * pow10_d[e];
            /* d (in float's normal range here) is the correctly rounded
             * double; rounding it again is exact unless it is a float
             * midpoint (low 29 mantissa bits = 1 followed by zeros). */
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            if ((bits & 0x1fffffffu) != 0x10000000u) {
                r = (float)d;
                done = 1;
            }
        }
#endif
        if (!done) {
            /* the digit string carries its own decimal point */
            if (parse_float_exact(ds, de, ex, &r) != 0) {
                *out = neg ? -INFINITY : INFINITY;
                return 2;
            }
        }
    }
    *out = neg ? -r : r;
    return 0;
}

/* ---- hashing ----------------------------------------------------------------- */

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static uint32_t hash_folded(const char *w, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= fold((unsigned char)w[i]);
        h *= 16777619u;
    }
    return h;
}

/* Insert word index @p idx with hash @p h (the table has a free slot). */
static void table_put(iadsr__wordvec_slot *t, uint32_t mask, uint32_t h,
                      uint32_t idx)
{
    uint32_t i = h & mask;
    while (t[i].idx1 != 0)
        i = (i + 1) & mask;
    t[i].hash = h;
    t[i].idx1 = idx + 1;
}

int32_t iadsr__wordvec_find(const iadsr__wordvec *wv, const char *word,
                            size_t len)
{
    if (!wv || (!word && len > 0) || len > IADSR__WORDVEC_MAX_WORD)
        return -1;
    uint32_t h = hash_folded(word, len);
    for (uint32_t i = h & wv->table_mask;; i = (i + 1) & wv->table_mask) {
        const iadsr__wordvec_slot *sl = &wv->table[i];
        if (sl->idx1 == 0)
            return -1;
        if (sl->hash != h)
            continue;
        int32_t k = (int32_t)(sl->idx1 - 1);
        size_t wl;
        const char *w = iadsr__wordvec_word(wv, k, &wl);
        if (wl == len && memcmp(w, word, len) == 0)
            return k;
    }
}

int32_t iadsr__wordvec_lookup(const iadsr__wordvec *wv, const char *tok,
                              size_t len)
{
    if (!wv || (!tok && len > 0) || len > IADSR__WORDVEC_MAX_WORD)
        return -1;
    uint32_t h = hash_folded(tok, len);
    int32_t best = -1;
    for (uint32_t i = h & wv->table_mask;; i = (i + 1) & wv->table_mask) {
        const iadsr__wordvec_slot *sl = &wv->table[i];
        if (sl->idx1 == 0)
            return best;
        if (sl->hash != h)
            continue;
        int32_t k = (int32_t)(sl->idx1 - 1);
        size_t wl;
        const char *w = iadsr__wordvec_word(wv, k, &wl);
        if (wl != len)
            continue;
        int exact_lower = 1, same = 1;
        for (size_t j = 0; j < len && same; j++) {
            unsigned char a = (unsigned char)w[j];
            unsigned char b = fold((unsigned char)tok[j]);
            same = fold(a) == b;
            exact_lower &= a == b;
        }
        if (!same)
            continue;
        if (exact_lower)
            return k;
        if (best < 0 || k < best)
            best = k;
    }
}

/* ---- parser -------------------------------------------------------------- */

typedef struct wv_parser {
    const char *name;
    int64_t line;
    int32_t dim;          /* 0 until known */
    int64_t header_count; /* -1 without a header */
    int64_t n_lines;      /* vector lines (words + duplicates) */
    iadsr__wordvec *wv;
    size_t cap_rows;  /* rows allocated in wv->vecs */
    size_t cap_chars; /* bytes allocated in wv->chars */
    size_t n_chars;
    size_t cap_words; /* entries allocated in wv->word_off, minus one */
    uint32_t table_cap;
} wv_parser;

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The next blank-separated token of [*pp, end): returns its start and
 * sets *pp to its end (no token: both are the end of the blanks). */
static const char *next_token(const char **pp, const char *end)
{
    const char *p = *pp, *t;
    while (p < end && is_blank(*p))
        p++;
    t = p;
    while (p < end && !is_blank(*p))
        p++;
    *pp = p;
    return t;
}

/* Set the message "NAME:LINE: MSG" at the parser's line; returns @p code. */
static int wv_err(const wv_parser *ps, int code, const char *fmt, ...)
    IADSR_PRINTF(3, 4);
static int wv_err(const wv_parser *ps, int code, const char *fmt, ...)
{
    char msg[256]; /* the longest MSG holds two 35-byte excerpts */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return iadsr__err(code, "%s:%lld: %s", ps->name, (long long)ps->line,
                      msg);
}

/* Printable excerpt of [p, end) (at most 32 characters). */
static void excerpt(char *buf, size_t cap, const char *p, const char *end)
{
    size_t n = 0;
    while (p < end && n + 4 < cap && n < 32) {
        unsigned char c = (unsigned char)*p++;
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (p < end && n + 4 <= cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

static int wv_nomem(const wv_parser *ps)
{
    return wv_err(ps, IADSR_ERR_NOMEM,
                  "out of memory (%lld words of dimension %d so far)",
                  (long long)(ps->wv ? ps->wv->n_words : 0), (int)ps->dim);
}

/* Grow to at least @p need elements (geometric); 0 on overflow/failure. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem,
                size_t extra)
{
    size_t nc = *cap ? *cap : 16;
    const size_t max = SIZE_MAX / elem - extra;
    if (need <= *cap)
        return 1;
    while (nc < need)
        nc = nc <= max / 2 ? nc * 2 : need;
    if (nc > max || need > max)
        return 0;
    void *q = iadsr__realloc(*arr, nc + extra, elem);
    if (!q)
        return 0;
    *arr = q;
    *cap = nc;
    return 1;
}

static int table_grow(wv_parser *ps)
{
    iadsr__wordvec *wv = ps->wv;
    uint32_t nc = ps->table_cap ? ps->table_cap * 2 : 1024;
    iadsr__wordvec_slot *t = iadsr__calloc(nc, sizeof *t);
    if (!t)
        return 0;
    for (int32_t k = 0; k < wv->n_words; k++) {
        size_t wl;
        const char *w = iadsr__wordvec_word(wv, k, &wl);
        table_put(t, nc - 1, hash_folded(w, wl), (uint32_t)k);
    }
    iadsr__free(wv->table);
    wv->table = t;
    wv->table_mask = nc - 1;
    ps->table_cap = nc;
    return 1;
}

/* Count the blank-separated tokens of [p, end). */
static int64_t count_tokens(const char *p, const char *end)
{
    int64_t n = 0;
    for (;;) {
        const char *t = next_token(&p, end);
        if (t == p)
            return n;
        n++;
    }
}

/* Parse a non-negative decimal integer token [p, end); -1 if it is not one
 * (or above 2^62). */
static int64_t int_token(const char *p, const char *end)
{
    int64_t v = 0;
    if (p == end)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || v > ((int64_t)1 << 62) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* The word2vec header "count dim" on line 1, if it is one. Returns 1 (it
 * is: counts set), 0 (it is not), or an error code. */
static int parse_header(wv_parser *ps, const char *p, const char *end)
{
    const char *t1 = next_token(&p, end), *t1e = p;
    const char *t2 = next_token(&p, end), *t2e = p;
    if (next_token(&p, end) != end || t2 == t2e)
        return 0; /* not two tokens */
    int64_t count = int_token(t1, t1e), dim = int_token(t2, t2e);
    if (count < 0 || dim < 0)
        return 0;
    /* ps->line is 1 */
    if (dim < 1)
        return wv_err(ps, IADSR_ERR_FORMAT,
                      "header '%lld %lld' gives dimension 0", (long long)count,
                      (long long)dim);
    if (dim > IADSR__WORDVEC_MAX_DIM)
        return wv_err(ps, IADSR_ERR_OUT_OF_RANGE,
                      "header dimension %lld exceeds the maximum %d",
                      (long long)dim, IADSR__WORDVEC_MAX_DIM);
    ps->header_count = count;
    ps->dim = (int32_t)dim;
    return 1;
}

/* First allocation once D is known. @p line_bytes is the length of the
 * first vector line (0 if unknown); @p rest the bytes left. */
static int first_alloc(wv_parser *ps, size_t line_bytes, size_t rest)
{
    iadsr__wordvec *wv = ps->wv;
    size_t est;
    /* a vector line takes >= 2 bytes per number plus the word */
    size_t bound = rest / (2u * (size_t)ps->dim + 1u) + 1u;
    if (ps->header_count >= 0)
        est = (uint64_t)ps->header_count < bound ? (size_t)ps->header_count
                                                  : bound;
    else
        est = line_bytes ? rest / line_bytes + rest / line_bytes / 8u : bound;
    if (est < 16)
        est = 16;
    if (est > bound + 16)
        est = bound + 16;
    if (!grow((void **)&wv->vecs, &ps->cap_rows, est,
              (size_t)ps->dim * sizeof(float), 0) ||
        !grow((void **)&wv->word_off, &ps->cap_words, est, sizeof(size_t),
              1) ||
        !grow((void **)&wv->chars, &ps->cap_chars, est * 8u, 1, 0))
        return wv_nomem(ps);
    wv->word_off[0] = 0;
    while ((size_t)ps->table_cap < 2 * est &&
           ps->table_cap < (1u << 31))
        if (!table_grow(ps))
            return wv_nomem(ps);
    return IADSR_OK;
}

static int ragged(const wv_parser *ps, int64_t got)
{
    return wv_err(ps, IADSR_ERR_FORMAT,
                  "%lld number%s after the word, expected %d",
                  (long long)got, got == 1 ? "" : "s", (int)ps->dim);
}

/* One vector line [p, end) with blanks already skipped at its start. */
static int parse_vector_line(wv_parser *ps, const char *p, const char *end,
                             const char *buf_end)
{
    iadsr__wordvec *wv = ps->wv;
    char tok[48];
    const char *w = next_token(&p, end);
    size_t wlen = (size_t)(p - w);
    if (wlen > IADSR__WORDVEC_MAX_WORD) {
        excerpt(tok, sizeof tok, w, p);
        return wv_err(ps, IADSR_ERR_FORMAT, "word '%s' is longer than %d bytes",
                      tok, IADSR__WORDVEC_MAX_WORD);
    }
    if (ps->dim == 0) {
        int64_t n = count_tokens(p, end);
        if (n == 0)
            return wv_err(ps, IADSR_ERR_FORMAT,
                          "word without numbers (expected 'word v1 v2 ... "
                          "vD')");
        if (n > IADSR__WORDVEC_MAX_DIM)
            return wv_err(ps, IADSR_ERR_OUT_OF_RANGE,
                          "%lld numbers, more than the maximum dimension %d",
                          (long long)n, IADSR__WORDVEC_MAX_DIM);
        ps->dim = (int32_t)n;
    }
    if (ps->cap_rows == 0) {
        int rc = first_alloc(ps, (size_t)(end - w) + 1,
                             (size_t)(buf_end - w));
        if (rc != IADSR_OK)
            return rc;
    }
    if ((size_t)wv->n_words >= ps->cap_rows &&
        !grow((void **)&wv->vecs, &ps->cap_rows, (size_t)wv->n_words + 1,
              (size_t)ps->dim * sizeof(float), 0))
        return wv_nomem(ps);

    float *row = wv->vecs + (size_t)wv->n_words * (size_t)ps->dim;
    int64_t got = 0;
    const int32_t dim = ps->dim;
    for (;;) {
        const char *t = next_token(&p, end);
        if (t == p)
            break;
        if (got >= dim) {
            got += count_tokens(p, end) + 1;
            return ragged(ps, got);
        }
        float v;
        int r = iadsr__parse_float(t, p, &v);
        if (r != 0) {
            excerpt(tok, sizeof tok, t, p);
            if (r == 2) {
                char wb[48];
                excerpt(wb, sizeof wb, w, w + wlen);
                return wv_err(ps, IADSR_ERR_NUMERIC,
                              "value %lld of '%s' is '%s', not a finite "
                              "float",
                              (long long)got + 1, wb, tok);
            }
            return wv_err(ps, IADSR_ERR_FORMAT,
                          "token '%s' (value %lld) is not a number", tok,
                          (long long)got + 1);
        }
        row[got++] = v;
    }
    if (got != dim)
        return ragged(ps, got);
    ps->n_lines++;

    /* the word: keep the first occurrence */
    if (iadsr__wordvec_find(wv, w, wlen) >= 0) {
        wv->n_duplicates++;
        return IADSR_OK;
    }
    if (wv->n_words >= IADSR__WORDVEC_MAX_WORDS)
        return wv_err(ps, IADSR_ERR_OUT_OF_RANGE, "more than %d words",
                      IADSR__WORDVEC_MAX_WORDS);
    if (!grow((void **)&wv->chars, &ps->cap_chars, ps->n_chars + wlen + 1, 1,
              0) ||
        !grow((void **)&wv->word_off, &ps->cap_words,
              (size_t)wv->n_words + 1, sizeof(size_t), 1))
        return wv_nomem(ps);
    if ((uint64_t)(wv->n_words + 1) * 2u > ps->table_cap && !table_grow(ps))
        return wv_nomem(ps);
    memcpy(wv->chars + ps->n_chars, w, wlen);
    wv->chars[ps->n_chars + wlen] = '\0';
    ps->n_chars += wlen + 1;
    wv->word_off[wv->n_words + 1] = ps->n_chars;
    table_put(wv->table, wv->table_mask, hash_folded(w, wlen),
              (uint32_t)wv->n_words);
    wv->n_words++;
    return IADSR_OK;
}

static int parse_all(wv_parser *ps, const char *p, const char *end)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *next = nl ? nl + 1 : end;
        int rc;
        ps->line++;
        if (le > p && le[-1] == '\r')
            le--;
        while (p < le && is_blank(*p))
            p++;
        if (p < le) {
            if (ps->line == 1) {
                rc = parse_header(ps, p, le);
                if (rc < 0)
                    return rc;
                if (rc == 1) {
                    p = next;
                    continue;
                }
            }
            rc = parse_vector_line(ps, p, le, end);
            if (rc != IADSR_OK)
                return rc;
        }
        p = next;
    }
    return IADSR_OK;
}

void iadsr__wordvec_free(iadsr__wordvec *wv)
{
    if (!wv)
        return;
    iadsr__free(wv->vecs);
    iadsr__free(wv->chars);
    iadsr__free(wv->word_off);
    iadsr__free(wv->table);
    iadsr__free(wv);
}

int iadsr__wordvec_parse(const char *buf, size_t len, const char *name,
                         iadsr__wordvec **out)
{
    wv_parser ps;
    int rc;

    if (!name)
        name = "<buffer>";
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "wordvec_parse: out is NULL");
    *out = NULL;
    if (!buf && len > 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "wordvec_parse: buf is NULL but len = %zu", len);
    memset(&ps, 0, sizeof ps);
    ps.name = name;
    ps.header_count = -1;
    ps.wv = iadsr__calloc(1, sizeof *ps.wv);
    if (!ps.wv)
        return wv_nomem(&ps);

    rc = parse_all(&ps, buf, buf + len);
    if (rc != IADSR_OK)
        goto fail;
    if (ps.wv->n_words == 0) {
        rc = iadsr__err(IADSR_ERR_FORMAT, "%s: no word vectors%s", name,
                        ps.header_count >= 0 ? " after the header" : "");
        goto fail;
    }
    if (ps.header_count >= 0 && ps.header_count != ps.n_lines) {
        rc = iadsr__err(IADSR_ERR_FORMAT,
                        "%s:1: the header announces %lld vectors but the "
                        "file has %lld",
                        name, (long long)ps.header_count,
                        (long long)ps.n_lines);
        goto fail;
    }
    ps.wv->dim = ps.dim;
    /* give back spare rows when they are many (a failure is NOMEM, so that
     * every failed allocation surfaces as such) */
    if (ps.cap_rows - (size_t)ps.wv->n_words > (size_t)ps.wv->n_words / 8) {
        void *q = iadsr__realloc(ps.wv->vecs, (size_t)ps.wv->n_words,
                                 (size_t)ps.dim * sizeof(float));
        if (!q) {
            rc = wv_nomem(&ps);
            goto fail;
        }
        ps.wv->vecs = q;
    }
    *out = ps.wv;
    return IADSR_OK;

fail:
    iadsr__wordvec_free(ps.wv);
    return rc;
}

int iadsr__wordvec_load(const char *path, iadsr__wordvec **out)
{
    void *buf = NULL;
    size_t len = 0;
    int rc;
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "wordvec_load: out is NULL");
    *out = NULL;
    rc = iadsr__read_file(path, "word vectors", &buf, &len);
    if (rc != IADSR_OK)
        return rc;
    rc = iadsr__wordvec_parse(buf, len, path, out);
    iadsr__free(buf);
    return rc;
}
