/* libiadsr - .npy files (NumPy's array format) holding 2-D float arrays.
 * SPDX-License-Identifier: MIT
 *
 * Reader: the bytes are untrusted. The magic, the version and the header
 * length are checked against the bytes present; the header dictionary is
 * parsed by a small strict tokenizer for the Python literal numpy writes
 * ({'descr': '<f4', 'fortran_order': False, 'shape': (R, C), }: the three
 * keys in any order, single or double quotes, optional trailing comma,
 * spaces and tabs, padded with spaces and ending with '\n'), and the data
 * size implied by the shape (overflow-checked) must equal the bytes that
 * follow the header exactly. Syntax problems are IADSR_ERR_FORMAT; a
 * well-formed header describing something this reader does not handle
 * (another dtype, big-endian, Fortran order, not 2-D) is
 * IADSR_ERR_UNSUPPORTED. Every message starts with "npy: ".
 *
 * Writer: version 1.0, '<f4', C order, with the header numpy >= 1.24 writes
 * for the same array, so that the bytes equal np.save's.
 */
#include "io/npy.h"

#include "common/alloc.h"
#include "common/fileio.h"
#include "iadsr.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

/* Data are copied with memcpy and '=' (native) is read as little-endian:
 * both are only right on a little-endian host. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "npy.c assumes a little-endian host");
#endif

#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21 /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define NPY_MAX_DIMS 64      /* numpy 2's NPY_MAXDIMS */
#define NPY_DESCR_MAX 32     /* longest descr kept (for messages) */
#define NPY_KEY_MAX 32

static const uint8_t NPY_MAGIC[NPY_MAGIC_LEN] = {0x93, 'N', 'U',
                                                'M',  'P', 'Y'};

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- half precision ------------------------------------------------------ */

float iadsr__half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;

    if (exp == 0x1fu) {
        /* infinity or NaN: all-ones exponent, payload kept */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        /* normal: rebias the exponent from 15 to 127 */
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign; /* signed zero */
    } else {
        /* subnormal, mant * 2^-24: normalise so that bit 10 is set; every
         * half subnormal is a normal float */
        uint32_t e = 113; /* biased float exponent of 2^-14 */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- header parsing ------------------------------------------------------ */

typedef struct npy_hdr {
    int have_descr, have_fortran, have_shape;
    char descr[NPY_DESCR_MAX + 4]; /* NUL-terminated, "..." if cut */
    int fortran;
    int ndim;
    int64_t dims[2]; /* the first two dimensions */
} npy_hdr;

/* Bounded cursor over the header text (its final '\n' excluded). */
typedef struct cur {
    const char *p, *end;
} cur;

static void skip_ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int at(const cur *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

/* A printable rendering of the next few characters, for messages. */
static const char *near_text(const cur *c, char *buf, size_t cap)
{
    if (c->p >= c->end)
        return "the end of the header";
    size_t n = 0;
    buf[n++] = '\'';
    for (const char *q = c->p; q < c->end && n + 5 < cap && q < c->p + 12;
         q++)
        buf[n++] = *q; /* the header is printable ASCII (checked) */
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

static int syntax_err(const cur *c, const char *expected)
{
    char nb[24];
    return iadsr__err(IADSR_ERR_FORMAT, "npy: header: expected %s, found %s",
                      expected, near_text(c, nb, sizeof nb));
}

/* A quoted string: copied into @p dst (cut to cap - 4 characters with
 * "..." appended); *full_len receives its real length. */
static int parse_string(cur *c, char *dst, size_t cap, size_t *full_len,
                        const char *what)
{
    if (!at(c, '\'') && !at(c, '"'))
        return syntax_err(c, what);
    const char q = *c->p++;
    const char *s = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\')
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: escape sequences in strings are "
                              "not supported");
        c->p++;
    }
    if (c->p >= c->end)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header: unterminated string");
    size_t n = (size_t)(c->p - s);
    c->p++; /* closing quote */
    *full_len = n;
    if (n <= cap - 4) {
        memcpy(dst, s, n);
        dst[n] = '\0';
    } else {
        memcpy(dst, s, cap - 4);
        memcpy(dst + cap - 4, "...", 4);
    }
    return IADSR_OK;
}

static int is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

/* Python's True or False. */
static int parse_bool(cur *c, int *v)
{
    static const char t[] = "True", f[] = "False";
    size_t avail = (size_t)(c->end - c->p);
    const char *word = NULL;
    size_t n = 0;
    if (avail >= sizeof t - 1 && memcmp(c->p, t, sizeof t - 1) == 0) {
        word = t;
        n = sizeof t - 1;
    } else if (avail >= sizeof f - 1 && memcmp(c->p, f, sizeof f - 1) == 0) {
        word = f;
        n = sizeof f - 1;
    }
    if (!word || (n < avail && is_ident_char(c->p[n])))
        return syntax_err(c, "True or False for 'fortran_order'");
    c->p += n;
    *v = word == t;
    return IADSR_OK;
}

/* A non-negative decimal int literal (Python syntax: no leading zeros; the
 * 'L' suffix of Python 2 headers is accepted). */
static int parse_dim(cur *c, int64_t *v)
{
    if (at(c, '-'))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header: negative dimension in 'shape'");
    if (!(c->p < c->end && *c->p >= '0' && *c->p <= '9'))
        return syntax_err(c, "a dimension (decimal digits) in 'shape'");
    const char *s = c->p;
    uint64_t x = 0;
    int overflow = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10u)
            overflow = 1;
        else
            x = x * 10u + d;
        c->p++;
    }
    if (c->p - s > 1 && *s == '0')
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header: dimension with a leading zero in "
                          "'shape'");
    if (overflow)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header: dimension %.*s in 'shape' does not "
                          "fit in 64 bits",
                          (int)(c->p - s < 40 ? c->p - s : 40), s);
    if (at(c, 'L'))
        c->p++;
    if (c->p < c->end && is_ident_char(*c->p))
        return syntax_err(c, "',' or ')' after a dimension in 'shape'");
    *v = (int64_t)x;
    return IADSR_OK;
}

/* A tuple of dimensions: (), (N,), (N, M), (N, M, ...) with an optional
 * trailing comma; (N) is an int, not a tuple. */
static int parse_shape(cur *c, npy_hdr *h)
{
    int rc;
    if (!at(c, '('))
        return syntax_err(c, "a tuple '(...)' for 'shape'");
    c->p++;
    h->ndim = 0;
    skip_ws(c);
    if (at(c, ')')) {
        c->p++;
        return IADSR_OK;
    }
    for (;;) {
        int64_t d = 0;
        if ((rc = parse_dim(c, &d)) != IADSR_OK)
            return rc;
        if (h->ndim >= NPY_MAX_DIMS)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: 'shape' has more than %d "
                              "dimensions",
                              NPY_MAX_DIMS);
        if (h->ndim < 2)
            h->dims[h->ndim] = d;
        h->ndim++;
        skip_ws(c);
        if (at(c, ')')) {
            if (h->ndim == 1)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "npy: header: 'shape' is (%lld), an int "
                                  "and not a tuple (a 1-tuple is written "
                                  "(%lld,))",
                                  (long long)h->dims[0],
                                  (long long)h->dims[0]);
            c->p++;
            return IADSR_OK;
        }
        if (!at(c, ','))
            return syntax_err(c, "',' or ')' in 'shape'");
        c->p++;
        skip_ws(c);
        if (at(c, ')')) {
            c->p++;
            return IADSR_OK;
        }
    }
}

enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE };

static int parse_dict(cur *c, npy_hdr *h)
{
    static const char *const names[3] = {"descr", "fortran_order", "shape"};
    int rc;

    memset(h, 0, sizeof *h);
    skip_ws(c);
    if (!at(c, '{'))
        return syntax_err(c, "'{' at the start of the header");
    c->p++;
    for (;;) {
        skip_ws(c);
        if (at(c, '}'))
            break; /* empty dictionary or trailing comma */
        char key[NPY_KEY_MAX + 4];
        size_t klen;
        if ((rc = parse_string(c, key, sizeof key, &klen,
                               "a quoted key or '}'")) != IADSR_OK)
            return rc;
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (klen == strlen(names[i]) && strcmp(key, names[i]) == 0)
                k = i;
        if (k < 0)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: unknown key '%s' (expected "
                              "'descr', 'fortran_order' and 'shape')",
                              key);
        int *have = k == KEY_DESCR     ? &h->have_descr
                    : k == KEY_FORTRAN ? &h->have_fortran
                                       : &h->have_shape;
        if (*have)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: duplicate key '%s'", names[k]);
        *have = 1;
        skip_ws(c);
        if (!at(c, ':'))
            return syntax_err(c, "':' after a key");
        c->p++;
        skip_ws(c);
        if (k == KEY_DESCR) {
            size_t dlen;
            if (at(c, '['))
                return iadsr__err(IADSR_ERR_UNSUPPORTED,
                                  "npy: structured dtypes (a list 'descr') "
                                  "are not supported; expected '<f4' or "
                                  "'<f2'");
            if ((rc = parse_string(c, h->descr, sizeof h->descr, &dlen,
                                   "a quoted string for 'descr'")) !=
                IADSR_OK)
                return rc;
        } else if (k == KEY_FORTRAN) {
            if ((rc = parse_bool(c, &h->fortran)) != IADSR_OK)
                return rc;
        } else {
            if ((rc = parse_shape(c, h)) != IADSR_OK)
                return rc;
        }
        skip_ws(c);
        if (at(c, ',')) {
            c->p++;
            continue;
        }
        if (at(c, '}'))
            break;
        return syntax_err(c, "',' or '}' after a value");
    }
    c->p++; /* '}' */
    skip_ws(c);
    if (c->p != c->end)
        return syntax_err(c, "only spaces after the dictionary");
    for (int i = 0; i < 3; i++) {
        int have = i == KEY_DESCR     ? h->have_descr
                   : i == KEY_FORTRAN ? h->have_fortran
                                      : h->have_shape;
        if (!have)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: missing key '%s'", names[i]);
    }
    return IADSR_OK;
}

/* What a valid file holds. */
typedef struct npy_info {
    int64_t n_rows, n_cols;
    int half;          /* '<f2' rather than '<f4' */
    size_t data_off;   /* offset of the first data byte */
    size_t data_bytes; /* == len - data_off */
} npy_info;

static uint32_t get_u16le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int check_dtype(const npy_hdr *h, int *half)
{
    const char *d = h->descr;
    if (strcmp(d, "<f4") == 0 || strcmp(d, "=f4") == 0) {
        *half = 0;
        return IADSR_OK;
    }
    if (strcmp(d, "<f2") == 0 || strcmp(d, "=f2") == 0) {
        *half = 1;
        return IADSR_OK;
    }
    if (d[0] == '>' && (strcmp(d + 1, "f4") == 0 || strcmp(d + 1, "f2") == 0))
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "npy: dtype '%s' is big-endian; only little-endian "
                          "'<f4' and '<f2' are supported (numpy: "
                          "a.astype('<f4'))",
                          d);
    return iadsr__err(IADSR_ERR_UNSUPPORTED,
                      "npy: dtype '%s' is not supported (expected '<f4' or "
                      "'<f2')",
                      d);
}

/* Validate everything but the values; fills @p info. */
static int parse_file(const uint8_t *b, size_t len, npy_info *info)
{
    const size_t nm = len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN;
    if (memcmp(b, NPY_MAGIC, nm) != 0)
        return iadsr__err(IADSR_ERR_FORMAT, "npy: not a .npy file (bad magic)");
    if (len < NPY_MAGIC_LEN + 2)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: truncated: %zu bytes, too short for the magic "
                          "and the version",
                          len);
    const unsigned major = b[6], minor = b[7];
    if (minor != 0 || major < 1 || major > 3)
        return iadsr__err(IADSR_ERR_VERSION,
                          "npy: format version %u.%u is not supported "
                          "(1.0, 2.0 and 3.0 are)",
                          major, minor);
    const size_t len_size = major == 1 ? 2 : 4;
    const size_t prefix = NPY_MAGIC_LEN + 2 + len_size;
    if (len < prefix)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: truncated: %zu bytes, the header length is "
                          "missing",
                          len);
    const uint32_t hlen = major == 1 ? get_u16le(b + 8) : get_u32le(b + 8);
    if (hlen == 0)
        return iadsr__err(IADSR_ERR_FORMAT, "npy: empty header");
    if ((uint64_t)hlen > (uint64_t)(len - prefix))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header length %lu runs past the end of the "
                          "data (%zu bytes in all)",
                          (unsigned long)hlen, len);
    const char *hs = (const char *)b + prefix;
    for (uint32_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)hs[i];
        int ok = (ch >= 0x20 && ch <= 0x7e) || ch == '\t' ||
                 (ch == '\n' && i + 1 == hlen);
        if (!ok)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "npy: header: byte 0x%02x at offset %lu is not "
                              "printable ASCII",
                              ch, (unsigned long)(prefix + i));
    }
    if (hs[hlen - 1] != '\n')
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: header does not end with a newline");

    npy_hdr h;
    cur c = {hs, hs + hlen - 1};
    int rc = parse_dict(&c, &h);
    if (rc != IADSR_OK)
        return rc;
    int half = 0;
    if ((rc = check_dtype(&h, &half)) != IADSR_OK)
        return rc;
    if (h.fortran)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "npy: fortran_order True (column-major) is not "
                          "supported; save a C-ordered array (numpy: "
                          "np.ascontiguousarray)");
    if (h.ndim != 2)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "npy: expected a 2-D array, got %d-D", h.ndim);

    const uint64_t rows = (uint64_t)h.dims[0], cols = (uint64_t)h.dims[1];
    const uint64_t isz = half ? 2u : 4u;
    const size_t off = prefix + hlen;
    const size_t have = len - off;
    if (cols != 0 && rows > (uint64_t)INT64_MAX / cols)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: shape (%llu, %llu) has more than 2^63 "
                          "elements",
                          (unsigned long long)rows, (unsigned long long)cols);
    const uint64_t n = rows * cols;
    if (n > (uint64_t)SIZE_MAX / isz)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: shape (%llu, %llu) of '%s' is larger than "
                          "the address space",
                          (unsigned long long)rows, (unsigned long long)cols,
                          h.descr);
    if (n * isz != (uint64_t)have)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "npy: shape (%llu, %llu) of '%s' needs %llu bytes "
                          "of data but %zu follow the header",
                          (unsigned long long)rows, (unsigned long long)cols,
                          h.descr, (unsigned long long)(n * isz), have);
    info->n_rows = (int64_t)rows;
    info->n_cols = (int64_t)cols;
    info->half = half;
    info->data_off = off;
    info->data_bytes = have;
    return IADSR_OK;
}

int iadsr_npy_decode(const void *buf, size_t len, float *out,
                     int64_t capacity, int64_t *n_rows, int64_t *n_cols)
{
    if (n_rows)
        *n_rows = 0;
    if (n_cols)
        *n_cols = 0;
    if (!n_rows || !n_cols)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "npy: %s is NULL",
                          n_rows ? "n_cols" : "n_rows");
    if (!buf)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "npy: buf is NULL");
    if (capacity < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "npy: capacity = %lld is negative",
                          (long long)capacity);
    if (!host_is_little_endian())
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "npy: only little-endian hosts are supported");

    npy_info info;
    memset(&info, 0, sizeof info);
    int rc = parse_file(buf, len, &info);
    if (rc != IADSR_OK)
        return rc;
    *n_rows = info.n_rows;
    *n_cols = info.n_cols;
    if (!out)
        return IADSR_OK;

    const uint64_t n = (uint64_t)info.n_rows * (uint64_t)info.n_cols;
    if (n > (uint64_t)capacity)
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "npy: the array has %lld x %lld = %llu floats but "
                          "the capacity is %lld",
                          (long long)info.n_rows, (long long)info.n_cols,
                          (unsigned long long)n, (long long)capacity);
    const uint8_t *src = (const uint8_t *)buf + info.data_off;
    if (!info.half) {
        if (n > 0)
            memcpy(out, src, info.data_bytes);
    } else {
        for (size_t i = 0; i < (size_t)n; i++)
            out[i] = iadsr__half_to_float((uint16_t)get_u16le(src + 2 * i));
    }
    return IADSR_OK;
}

/* ---- writer -------------------------------------------------------------- */

static void put_u16le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

int iadsr__npy_encode(const float *data, int64_t n_rows, int64_t n_cols,
                      int64_t ld, int64_t n_lead, void **out, size_t *len,
                      const char *what)
{
    *out = NULL;
    *len = 0;
    if (n_rows < 0 || n_lead < 0 || n_cols < 1 || ld < n_cols ||
        (n_rows > 0 && !data))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: bad matrix: %lld rows (+ %lld zero rows) of "
                          "%lld columns, ld %lld, data %s",
                          what, (long long)n_rows, (long long)n_lead,
                          (long long)n_cols, (long long)ld,
                          data ? "set" : "NULL");
    if (n_rows > INT64_MAX - n_lead)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: too many rows", what);
    const int64_t total = n_rows + n_lead;

    char dict[128];
    int dn = snprintf(dict, sizeof dict,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': "
                      "(%lld, %lld), }",
                      (long long)total, (long long)n_cols);
    if (dn < 0 || (size_t)dn >= sizeof dict)
        return iadsr__err(IADSR_ERR_GENERIC, "%s: header formatting failed",
                          what);
    char rowbuf[24];
    int rn = snprintf(rowbuf, sizeof rowbuf, "%lld", (long long)total);
    size_t growth = rn > 0 && rn < NPY_GROWTH_DIGITS
                        ? (size_t)(NPY_GROWTH_DIGITS - rn)
                        : 0;
    /* numpy: hlen = text + '\n'; pad = 64 - (10 + hlen) % 64 (1..64) */
    size_t text = (size_t)dn + growth;
    size_t hlen = text + 1;
    size_t pad = NPY_ALIGN - (NPY_MAGIC_LEN + 2 + 2 + hlen) % NPY_ALIGN;
    size_t off = NPY_MAGIC_LEN + 2 + 2 + hlen + pad;

    if ((uint64_t)total > (uint64_t)(SIZE_MAX - off) / 4u / (uint64_t)n_cols ||
        (uint64_t)total > (uint64_t)PTRDIFF_MAX / 4u / (uint64_t)n_cols)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: %lld x %lld floats do not fit in memory", what,
                          (long long)total, (long long)n_cols);
    const size_t row_bytes = (size_t)n_cols * sizeof(float);
    const size_t size = off + (size_t)total * row_bytes;
    uint8_t *b = iadsr__malloc(size);
    if (!b)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes for the file", what,
                          size);

    memcpy(b, NPY_MAGIC, NPY_MAGIC_LEN);
    b[6] = 1;
    b[7] = 0;
    put_u16le(b + 8, (uint32_t)(hlen + pad));
    memcpy(b + 10, dict, (size_t)dn);
    memset(b + 10 + dn, ' ', growth + pad);
    b[off - 1] = '\n';
    uint8_t *p = b + off;
    if (n_lead > 0) {
        memset(p, 0, (size_t)n_lead * row_bytes);
        p += (size_t)n_lead * row_bytes;
    }
    if (ld == n_cols) {
        if (n_rows > 0)
            memcpy(p, data, (size_t)n_rows * row_bytes);
    } else {
        for (int64_t r = 0; r < n_rows; r++, p += row_bytes)
            memcpy(p, data + (size_t)r * (size_t)ld, row_bytes);
    }
    *out = b;
    *len = size;
    return IADSR_OK;
}

int iadsr__npy_write(const char *path, const float *data, int64_t n_rows,
                     int64_t n_cols, int64_t ld, int64_t n_lead,
                     uint32_t flags, const char *what)
{
    void *b = NULL;
    size_t len = 0;
    TRY(iadsr__npy_encode(data, n_rows, n_cols, ld, n_lead, &b, &len, what));
    int rc = iadsr__atomic_write(path, b, len, flags);
    iadsr__free(b);
    if (rc != IADSR_OK)
        return iadsr__err_prefix(rc, "%s", what);
    return IADSR_OK;
}

int iadsr_npy_save(const char *path, const float *data, int64_t n_rows,
                   int64_t n_cols, int64_t ld, uint32_t flags)
{
    static const char w[] = "npy_save";
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is %s", w,
                          path ? "empty" : "NULL");
    if (!data)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: data is NULL", w);
    if (n_rows < 1 || n_cols < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: shape (%lld, %lld): both must be >= 1", w,
                          (long long)n_rows, (long long)n_cols);
    if (ld < n_cols)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: ld = %lld is smaller than n_cols = %lld", w,
                          (long long)ld, (long long)n_cols);
    if (flags & ~IADSR_SAVE_NO_FSYNC)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: unknown flag bits 0x%x", w,
                          (unsigned)(flags & ~IADSR_SAVE_NO_FSYNC));
    TRY(iadsr__check_matrix_span(w, n_rows, ld));
    return iadsr__npy_write(path, data, n_rows, n_cols, ld, 0, flags, w);
}
