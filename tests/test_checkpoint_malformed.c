/* libiadsr unit tests: the malformed-checkpoint catalogue (docs/FORMAT.md).
 * SPDX-License-Identifier: MIT
 *
 * One systematic pass over what the format says a reader must reject:
 * every header field at and around its bounds, metadata entries and
 * hyper-parameter values at their bounds, directory shapes that contradict
 * the hyper-parameters (SASRec, GRU4Rec, Caser, aligner, gate), overlapping
 * and out-of-file tensor ranges, non-finite weights in every tensor, future
 * versions and feature bits, and every prefix truncation and every
 * single-byte flip of small reference files of formats 1.0, 1.1 and 1.2.
 *
 * Every case goes through iadsr_model_load_from_buffer() and
 * iadsr_checkpoint_load_from_buffer() (with and without the aligner and
 * gate outputs) and must give the specific status, NULL outputs, a
 * non-empty last error and no leaked block (iadsr__alloc_live()). Accepted
 * files must load the weights they hold.
 *
 * The expected status comes from the case, or from spec_status(): an
 * independent reader written from FORMAT.md §8 that validates everything
 * but metadata semantics (it only judges files whose metadata bytes are the
 * reference's). Explicit expectations are cross-checked against it.
 *
 * Each test prints one summary line per category and reference file to
 * stderr; all counters are local to the test (fork and no-fork agree).
 * In light mode (valgrind, IADSR_TEST_LIGHT) the cases skip the third call,
 * iadsr_checkpoint_load_from_buffer(m, NULL, NULL, ...), whose validation
 * path is the one of the (m, a, g) call; every case is still tried.
 */
#include <check.h>

#include "common/alloc.h"
#include "denoise/denoise.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "backbone/model.h"
#include "common/crc32c.h"
#include "testutil.h"
#include "bytes.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HDR 64u
#define CAT_MAX_T 256
#define CAT_MAX_KV 256

/* Header field offsets (FORMAT.md §3). */
#define H_MAJOR 8
#define H_MINOR 12
#define H_HSIZE 16
#define H_KIND 20
#define H_REQ 24
#define H_OPT 28
#define H_NKV 32
#define H_NT 36
#define H_ALIGN 40
#define H_DOFF 44
#define H_FSIZE 52
#define H_CRC 60

/* Positive pseudo-statuses (library codes are <= 0). */
#define ORACLE_UNKNOWN 1 /* spec_status(): metadata changed, cannot judge */
#define WANT_ORACLE 2    /* a case without its own expectation */

#define E_OK IADSR_OK
#define E_FMT IADSR_ERR_FORMAT
#define E_VER IADSR_ERR_VERSION
#define E_SUM IADSR_ERR_CHECKSUM
#define E_UNS IADSR_ERR_UNSUPPORTED
#define E_NUM IADSR_ERR_NUMERIC

/* ---- bytes -------------------------------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t crc_of(const void *p, size_t n)
{
    return iadsr__crc32c(0, p, n);
}

static uint32_t hdr_crc(const uint8_t *b)
{
    uint8_t h[HDR];
    memcpy(h, b, HDR);
    memset(h + H_CRC, 0, 4);
    return crc_of(h, HDR);
}

static void fix_hdr(uint8_t *b)
{
    wr32(b + H_CRC, hdr_crc(b));
}

static int align_up(uint64_t x, uint64_t a, uint64_t *out)
{
    if (x > UINT64_MAX - (a - 1))
        return 0;
    *out = (x + (a - 1)) & ~(a - 1);
    return 1;
}

/* An exact-size copy, so that ASan and valgrind catch reads past @p n. */
static uint8_t *dup_bytes(const uint8_t *b, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c);
    if (n)
        memcpy(c, b, n);
    return c;
}

/* One metadata entry with a raw key (any bytes) and value. */
static void kv_raw(bytes *s, const void *key, size_t klen, uint32_t type,
                   const void *val, size_t vlen)
{
    b_u32(s, (uint32_t)klen);
    b_put(s, key, klen);
    b_u32(s, type);
    b_put(s, val, vlen);
}

static void kv_num(bytes *s, const char *key, uint32_t type, uint64_t v)
{
    uint8_t t[8];
    size_t n = type == 3 || type == 4 ? 8 : 4;
    if (n == 8)
        wr64(t, v);
    else
        wr32(t, (uint32_t)v);
    kv_raw(s, key, strlen(key), type, t, n);
}

static void kv_str(bytes *s, const char *key, const void *v, size_t n)
{
    bytes t = {0};
    b_u32(&t, (uint32_t)n);
    b_put(&t, v, n);
    kv_raw(s, key, strlen(key), 6, t.p, t.len);
    free(t.p);
}

static char *tmp_path(char *buf, size_t cap, const char *name)
{
    static int counter;
    snprintf(buf, cap, "%s/catalogue-%ld-%d-%s", tu_tmp_dir(), (long)getpid(),
             counter++, name);
    return buf;
}

/* ---- reference files ---------------------------------------------------- */

typedef struct rtensor {
    char name[48];
    uint32_t n_dims;
    uint64_t rows, cols; /* [n] is [1, n] */
    uint64_t off, nbytes;
    uint32_t crc;
    size_t ent; /* directory entry: absolute offset */
} rtensor;

/* A valid checkpoint written by the library, with the map of where
 * everything is and the objects that were saved. */
typedef struct cref {
    char label[48];
    uint8_t *b;
    size_t len;
    uint32_t minor, required, n_kv, n_tensors, alignment;
    uint64_t data_offset;
    size_t kv_off[CAT_MAX_KV], kv_len[CAT_MAX_KV];
    size_t meta_end; /* offset of the metadata CRC */
    size_t dir_start, dir_crc_at, dir_end;
    rtensor t[CAT_MAX_T];
    iadsr_model *m;
    iadsr_aligner *a;
    iadsr_gate *g;
    int32_t backbone;
} cref;

enum {
    R10,            /* 1.0: SASRec */
    R11_PRELN,      /* 1.1: SASRec with IADSR_MODEL_F_PRE_LN */
    R11_GRU,        /* 1.1: GRU4Rec */
    R11_CASER,      /* 1.1: Caser */
    R12_FULL,       /* 1.2: SASRec + aligner + gate */
    R12_GRU_ALIGN,  /* 1.2: GRU4Rec + aligner */
    R12_CASER_GATE, /* 1.2: Caser + gate */
    R12_DET_GATE,   /* 1.2: SASRec + detector gate (IADSR_DENOISE_F_DETECT) */
    R_COUNT
};

/* Trusted parse of a valid file (asserts, no recovery). */
static void ref_parse(cref *r)
{
    const uint8_t *b = r->b;
    r->minor = rd32(b + H_MINOR);
    r->required = rd32(b + H_REQ);
    r->n_kv = rd32(b + H_NKV);
    r->n_tensors = rd32(b + H_NT);
    r->alignment = rd32(b + H_ALIGN);
    r->data_offset = rd64(b + H_DOFF);
    ck_assert_uint_le(r->n_kv, CAT_MAX_KV);
    ck_assert_uint_le(r->n_tensors, CAT_MAX_T);
    size_t p = HDR;
    for (uint32_t i = 0; i < r->n_kv; i++) {
        r->kv_off[i] = p;
        p += 4 + rd32(b + p);
        uint32_t type = rd32(b + p);
        p += 4;
        if (type == 3 || type == 4)
            p += 8;
        else if (type == 6)
            p += 4 + rd32(b + p);
        else
            p += 4;
        r->kv_len[i] = p - r->kv_off[i];
    }
    r->meta_end = p;
    p += 4;
    r->dir_start = p;
    for (uint32_t i = 0; i < r->n_tensors; i++) {
        rtensor *t = &r->t[i];
        t->ent = p;
        uint32_t nl = rd32(b + p);
        ck_assert_uint_lt(nl, sizeof t->name);
        memcpy(t->name, b + p + 4, nl);
        t->name[nl] = '\0';
        p += 4 + nl;
        ck_assert_uint_eq(rd32(b + p), 1); /* f32 */
        t->n_dims = rd32(b + p + 4);
        p += 8;
        if (t->n_dims == 1) {
            t->rows = 1;
            t->cols = rd64(b + p);
        } else {
            ck_assert_uint_eq(t->n_dims, 2);
            t->rows = rd64(b + p);
            t->cols = rd64(b + p + 8);
        }
        p += 8 * (size_t)t->n_dims;
        t->off = rd64(b + p);
        t->nbytes = rd64(b + p + 8);
        t->crc = rd32(b + p + 16);
        p += 20;
    }
    r->dir_crc_at = p;
    r->dir_end = p + 4;
    ck_assert_uint_le(r->dir_end, r->data_offset);
}

static int spec_status(const cref *r, const uint8_t *b, size_t len);

static cref *ref_make(int kind)
{
    static const char *const labels[R_COUNT] = {
        "format 1.0 SASRec",         "format 1.1 SASRec pre-LN",
        "format 1.1 GRU4Rec",        "format 1.1 Caser",
        "format 1.2 SASRec+aligner+gate", "format 1.2 GRU4Rec+aligner",
        "format 1.2 Caser+gate",     "format 1.2 SASRec+detector gate"};
    static const uint32_t minors[R_COUNT] = {0, 1, 1, 1, 2, 2, 2, 2};
    static const uint32_t reqs[R_COUNT] = {0, 1, 0, 0, 2, 2, 2, 2};
    cref *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    snprintf(r->label, sizeof r->label, "%s", labels[kind]);

    /* tiny models: every-byte loops stay cheap under valgrind */
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = 12;
    p.dim = 8;
    p.max_seq_len = 4;
    p.dropout = 0.25f;
    p.seed = 40 + (uint64_t)kind;
    if (kind == R11_GRU || kind == R12_GRU_ALIGN) {
        p.backbone = IADSR_BACKBONE_GRU4REC;
        p.n_layers = 1;
    } else if (kind == R11_CASER || kind == R12_CASER_GATE) {
        p.backbone = IADSR_BACKBONE_CASER;
        p.n_layers = 0;
        p.caser_window = 3;
        p.caser_h_filters = 2;
        p.caser_v_filters = 2;
    } else {
        p.backbone = IADSR_BACKBONE_SASREC;
        p.n_layers = 1;
        p.n_heads = 2;
        p.ffn_dim = 8;
        if (kind == R11_PRELN)
            p.flags = IADSR_MODEL_F_PRE_LN;
    }
    r->backbone = p.backbone;
    TU_OK(iadsr_model_create(&r->m, &p));

    /* settings off their defaults, so that every key carries information */
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_COLLAB_ONLY;
    dp.lambda_align = 0.5f;
    dp.lambda_recon = 2.0f;
    dp.tau_align = 0.2f;
    dp.tau_gumbel = 0.5f;
    dp.theta = 0.25f;
    dp.max_drop = 0.2f;
    dp.protect_last = 0;
    dp.seed = 11;
    if (kind == R12_FULL || kind == R12_GRU_ALIGN)
        TU_OK(iadsr_aligner_create(&r->a, 8, 3, &dp));
    if (kind == R12_DET_GATE)
        dp.flags |= IADSR_DENOISE_F_DETECT;
    if (kind == R12_FULL || kind == R12_CASER_GATE || kind == R12_DET_GATE) {
        TU_OK(iadsr_gate_create(&r->g, 8, &dp));
        for (int i = 0; i < 8; i++) /* not all zeros */
            r->g->bd[i] = 0.125f * (float)(i - 3);
        if (kind == R12_DET_GATE)
            for (int i = 0; i < IADSR__GATE_DET; i++)
                r->g->det[i] = 0.375f - 0.25f * (float)i;
    }
    if (r->a || r->g) {
        char path[512];
        tmp_path(path, sizeof path, "ref.iadsr");
        TU_OK(iadsr_checkpoint_save(r->m, r->a, r->g, path,
                                    IADSR_SAVE_NO_FSYNC));
        r->b = tu_read_file(path, &r->len);
        unlink(path);
    } else {
        r->b = tu_model_bytes(r->m, &r->len);
    }
    ref_parse(r);
    ck_assert_uint_eq(r->minor, minors[kind]);
    ck_assert_uint_eq(r->required, reqs[kind]);
    ck_assert_uint_eq(r->alignment, 64);
    ck_assert_int_eq(spec_status(r, r->b, r->len), IADSR_OK);
    return r;
}

static void ref_free(cref *r)
{
    iadsr_gate_free(r->g);
    iadsr_aligner_free(r->a);
    iadsr_model_free(r->m);
    free(r->b);
    free(r);
}

static int kv_index(const cref *r, const char *key)
{
    for (uint32_t i = 0; i < r->n_kv; i++) {
        uint32_t kl = rd32(r->b + r->kv_off[i]);
        if (kl == strlen(key) && memcmp(r->b + r->kv_off[i] + 4, key, kl) == 0)
            return (int)i;
    }
    return -1;
}

/* Key of entry @p i as a C string. */
static void kv_key(const cref *r, uint32_t i, char *out, size_t cap)
{
    uint32_t kl = rd32(r->b + r->kv_off[i]);
    snprintf(out, cap, "%.*s", (int)kl, (const char *)r->b + r->kv_off[i] + 4);
}

static uint32_t kv_type(const cref *r, uint32_t i)
{
    return rd32(r->b + r->kv_off[i] + 4 + rd32(r->b + r->kv_off[i]));
}

/* Absolute position of a field of directory entry @p i. */
enum { F_NAMELEN, F_NAME, F_DTYPE, F_NDIMS, F_DIM0, F_DIM1, F_OFF, F_NBYTES,
       F_CRC };

static size_t ent_at(const cref *r, uint32_t i, int f)
{
    const rtensor *t = &r->t[i];
    size_t nl = strlen(t->name), e = t->ent, off = e + 12 + nl + 8 * t->n_dims;
    switch (f) {
    case F_NAMELEN: return e;
    case F_NAME: return e + 4;
    case F_DTYPE: return e + 4 + nl;
    case F_NDIMS: return e + 8 + nl;
    case F_DIM0: return e + 12 + nl;
    case F_DIM1: return e + 20 + nl;
    case F_OFF: return off;
    case F_NBYTES: return off + 8;
    default: return off + 16;
    }
}

static void fix_meta(uint8_t *b, const cref *r)
{
    wr32(b + r->meta_end, crc_of(b + HDR, r->meta_end - HDR));
}

static void fix_dir(uint8_t *b, const cref *r)
{
    wr32(b + r->dir_crc_at,
          crc_of(b + r->dir_start, r->dir_crc_at - r->dir_start));
}

/* The CRC of tensor @p i recomputed over [off, off + nb) when that range is
 * inside the data section, so that only the range rules can object. */
static void fix_tensor(uint8_t *b, size_t len, const cref *r, uint32_t i,
                       uint64_t off, uint64_t nb)
{
    uint64_t data_len = len - r->data_offset;
    if (off <= data_len && nb <= data_len - off)
        wr32(b + ent_at(r, i, F_CRC),
              crc_of(b + r->data_offset + off, (size_t)nb));
}

/* ---- the spec oracle (FORMAT.md §8, written from the document) ---------- */

typedef struct cur {
    const uint8_t *b;
    size_t end, pos;
} cur;

static int cur_take(cur *c, uint64_t n)
{
    if (n > c->end - c->pos)
        return 0;
    c->pos += (size_t)n;
    return 1;
}

static int cur_u32(cur *c, uint32_t *v)
{
    if (!cur_take(c, 4))
        return 0;
    *v = rd32(c->b + c->pos - 4);
    return 1;
}

static int cur_u64(cur *c, uint64_t *v)
{
    if (!cur_take(c, 8))
        return 0;
    *v = rd64(c->b + c->pos - 8);
    return 1;
}

/* The status FORMAT.md promises for @p b, or ORACLE_UNKNOWN when the
 * metadata differs from the reference's (its semantics are not modelled:
 * with the reference's metadata the expected tensors are the reference's
 * and required_flags must be the reference's). */
static int spec_status(const cref *r, const uint8_t *b, size_t len)
{
    static const uint8_t sig[8] = {0x89, 'I', 'A', 'D', 'S', 'R', '\r', '\n'};
    /* steps 1-7: header */
    if (len < 8 || memcmp(b, sig, 8) != 0)
        return E_FMT;
    if (len < 16)
        return E_FMT;
    if (rd32(b + H_MAJOR) != 1)
        return E_VER;
    if (len < HDR || rd32(b + H_HSIZE) != HDR)
        return E_FMT;
    if (rd32(b + H_CRC) != hdr_crc(b))
        return E_SUM;
    uint32_t req = rd32(b + H_REQ);
    if (rd32(b + H_KIND) != 1 || (req & ~7u)) /* bits 0..2 known (1.4) */
        return E_UNS;
    if (rd64(b + H_FSIZE) != (uint64_t)len)
        return E_FMT;
    uint32_t al = rd32(b + H_ALIGN), n_kv = rd32(b + H_NKV);
    uint32_t n_t = rd32(b + H_NT);
    uint64_t dof = rd64(b + H_DOFF);
    if (al < 8 || al > 4096 || (al & (al - 1)) || n_kv > 256 || n_t > 256 ||
        dof < HDR || dof > len || dof % al)
        return E_FMT;

    /* step 8: metadata structure inside [64, data_offset), then its CRC */
    cur c = {b, (size_t)dof, HDR};
    for (uint32_t i = 0; i < n_kv; i++) {
        uint32_t kl, type, sl;
        uint64_t vl;
        if (!cur_u32(&c, &kl) || kl < 1 || kl > 255 || !cur_take(&c, kl) ||
            !cur_u32(&c, &type))
            return E_FMT;
        if (type == 1 || type == 2 || type == 5)
            vl = 4;
        else if (type == 3 || type == 4)
            vl = 8;
        else if (type == 6) {
            if (!cur_u32(&c, &sl) || sl > 4096)
                return E_FMT;
            vl = sl;
        } else
            return E_FMT;
        if (!cur_take(&c, vl))
            return E_FMT;
    }
    size_t meta_end = c.pos;
    uint32_t stored;
    if (!cur_u32(&c, &stored))
        return E_FMT;
    if (stored != crc_of(b + HDR, meta_end - HDR))
        return E_SUM;

    /* step 9 */
    if (n_kv != r->n_kv || meta_end != r->meta_end ||
        memcmp(b + HDR, r->b + HDR, meta_end - HDR) != 0)
        return ORACLE_UNKNOWN;
    if (req != r->required)
        return E_FMT;

    /* step 10: directory structure, CRC, data_offset, zero padding */
    size_t ds = c.pos;
    for (uint32_t i = 0; i < n_t; i++) {
        uint32_t nl, dt, nd;
        if (!cur_u32(&c, &nl) || nl < 1 || nl > 47 || !cur_take(&c, nl) ||
            !cur_u32(&c, &dt) || !cur_u32(&c, &nd) || nd < 1 || nd > 2 ||
            !cur_take(&c, 8 * (uint64_t)nd + 20))
            return E_FMT;
    }
    size_t de = c.pos;
    if (!cur_u32(&c, &stored))
        return E_FMT;
    if (stored != crc_of(b + ds, de - ds))
        return E_SUM;
    uint64_t want;
    if (!align_up(c.pos, al, &want) || want != dof)
        return E_FMT;
    for (size_t p = c.pos; p < dof; p++)
        if (b[p])
            return E_FMT;

    /* step 11: the directory against the tensors the keys imply */
    if (n_t != r->n_tensors)
        return E_FMT;
    uint64_t data_len = len - dof, prev = 0;
    uint64_t offs[CAT_MAX_T], nbs[CAT_MAX_T];
    uint32_t crcs[CAT_MAX_T];
    c.pos = ds;
    for (uint32_t i = 0; i < n_t; i++) {
        const rtensor *t = &r->t[i];
        uint32_t nl, dt, nd;
        uint64_t d[2] = {0, 0}, off, nb;
        cur_u32(&c, &nl);
        const uint8_t *name = b + c.pos;
        cur_take(&c, nl);
        cur_u32(&c, &dt);
        cur_u32(&c, &nd);
        for (uint32_t k = 0; k < nd; k++)
            cur_u64(&c, &d[k]);
        cur_u64(&c, &off);
        cur_u64(&c, &nb);
        cur_u32(&c, &crcs[i]);
        if (nl != strlen(t->name) || memcmp(name, t->name, nl) != 0 ||
            dt != 1)
            return E_FMT;
        uint64_t rows = nd == 1 ? 1 : d[0], cols = nd == 1 ? d[0] : d[1];
        if (rows != t->rows || cols != t->cols || nb != t->rows * t->cols * 4)
            return E_FMT;
        if (!align_up(prev, al, &want) || off != want)
            return E_FMT;
        if (off > data_len || nb > data_len - off)
            return E_FMT;
        for (uint64_t p = prev; p < off; p++)
            if (b[dof + p])
                return E_FMT;
        prev = off + nb;
        offs[i] = off;
        nbs[i] = nb;
    }
    if (prev != data_len)
        return E_FMT;

    /* step 12: every tensor CRC, then every value finite */
    for (uint32_t i = 0; i < n_t; i++)
        if (crc_of(b + dof + offs[i], (size_t)nbs[i]) != crcs[i])
            return E_SUM;
    for (uint32_t i = 0; i < n_t; i++)
        for (uint64_t j = 0; j < nbs[i] / 4; j++)
            if (!isfinite(u2f(rd32(b + dof + offs[i] + 4 * j))))
                return E_NUM;
    return E_OK;
}

/* ---- rebuilding files --------------------------------------------------- */

typedef struct tent {
    char name[300];
    uint32_t name_len;
    uint32_t dtype, n_dims;
    uint64_t dims[2];
    const uint8_t *data;
    size_t nbytes;
} tent;

/* The parts of a checkpoint; build_bytes() lays them out canonically and
 * computes every size, offset and CRC. */
typedef struct build {
    uint8_t hdr[HDR]; /* signature .. optional_flags are taken from here */
    uint32_t alignment;
    bytes meta;
    uint32_t n_kv;
    int n_t;
    tent t[CAT_MAX_T + 2];
} build;

/* The reference's parts, without metadata key @p skip (NULL: none). */
static build *build_ref(const cref *r, const char *skip)
{
    build *bd = calloc(1, sizeof *bd);
    ck_assert_ptr_nonnull(bd);
    memcpy(bd->hdr, r->b, HDR);
    bd->alignment = r->alignment;
    int skip_i = skip ? kv_index(r, skip) : -1;
    for (uint32_t i = 0; i < r->n_kv; i++)
        if ((int)i != skip_i) {
            b_put(&bd->meta, r->b + r->kv_off[i], r->kv_len[i]);
            bd->n_kv++;
        }
    for (uint32_t i = 0; i < r->n_tensors; i++) {
        const rtensor *t = &r->t[i];
        tent *e = &bd->t[bd->n_t++];
        snprintf(e->name, sizeof e->name, "%s", t->name);
        e->name_len = (uint32_t)strlen(t->name);
        e->dtype = 1;
        e->n_dims = t->n_dims;
        e->dims[0] = t->n_dims == 1 ? t->cols : t->rows;
        e->dims[1] = t->cols;
        e->data = r->b + r->data_offset + t->off;
        e->nbytes = (size_t)t->nbytes;
    }
    return bd;
}

static void build_free(build *bd)
{
    free(bd->meta.p);
    free(bd);
}

static uint8_t *build_bytes(const build *bd, size_t *out_len)
{
    bytes dir = {0};
    uint64_t pos = 0, al = bd->alignment, offs[CAT_MAX_T + 2];
    for (int i = 0; i < bd->n_t; i++) {
        const tent *e = &bd->t[i];
        ck_assert(align_up(pos, al, &offs[i]));
        pos = offs[i] + e->nbytes;
        b_u32(&dir, e->name_len);
        b_put(&dir, e->name, e->name_len);
        b_u32(&dir, e->dtype);
        b_u32(&dir, e->n_dims);
        for (uint32_t k = 0; k < e->n_dims && k < 2; k++)
            b_u64(&dir, e->dims[k]);
        b_u64(&dir, offs[i]);
        b_u64(&dir, e->nbytes);
        b_u32(&dir, crc_of(e->data, e->nbytes));
    }
    size_t dir_start = HDR + bd->meta.len + 4;
    size_t dir_end = dir_start + dir.len + 4;
    uint64_t dof;
    ck_assert(align_up(dir_end, al, &dof));
    size_t len = (size_t)(dof + pos);
    uint8_t *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, bd->hdr, HDR);
    wr32(b + H_NKV, bd->n_kv);
    wr32(b + H_NT, (uint32_t)bd->n_t);
    wr32(b + H_ALIGN, bd->alignment);
    wr64(b + H_DOFF, dof);
    wr64(b + H_FSIZE, len);
    if (bd->meta.len)
        memcpy(b + HDR, bd->meta.p, bd->meta.len);
    wr32(b + HDR + bd->meta.len, crc_of(b + HDR, bd->meta.len));
    if (dir.len)
        memcpy(b + dir_start, dir.p, dir.len);
    wr32(b + dir_start + dir.len, crc_of(b + dir_start, dir.len));
    for (int i = 0; i < bd->n_t; i++)
        if (bd->t[i].nbytes)
            memcpy(b + dof + offs[i], bd->t[i].data, bd->t[i].nbytes);
    fix_hdr(b);
    free(dir.p);
    *out_len = len;
    return b;
}

/* The reference with metadata key @p key replaced (or added) by a value. */
static uint8_t *with_key(const cref *r, const char *key, uint32_t type,
                         const void *val, size_t vlen, size_t *len)
{
    build *bd = build_ref(r, key);
    kv_raw(&bd->meta, key, strlen(key), type, val, vlen);
    bd->n_kv++;
    uint8_t *c = build_bytes(bd, len);
    build_free(bd);
    return c;
}

/* ---- tallies ------------------------------------------------------------ */

typedef struct tally {
    char what[160];
    int two_apis;    /* light mode (valgrind): skip the third loader */
    int must_reject; /* the oracle itself must not accept any case */
    long tried, rejected, valid, diff, wrong, leaks, failures;
    long by_code[16];
    char first[700];
} tally;

static void tally_init(tally *t, const char *fmt, ...) IADSR_PRINTF(2, 3);
static void tally_init(tally *t, const char *fmt, ...)
{
    memset(t, 0, sizeof *t);
    t->two_apis = tu_light();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->what, sizeof t->what, fmt, ap);
    va_end(ap);
}

static void tally_fail(tally *t, const char *fmt, ...) IADSR_PRINTF(2, 3);
static void tally_fail(tally *t, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->failures == 0)
        snprintf(t->first, sizeof t->first, "%.150s: %.540s", t->what, msg);
    if (t->failures < 5)
        fprintf(stderr, "catalogue FAIL: %s: %s\n", t->what, msg);
    t->failures++;
}

static const char *code_name(int rc)
{
    if (rc == IADSR_OK)
        return "OK";
    const char *s = iadsr_status_name(rc);
    return strncmp(s, "IADSR_ERR_", 10) == 0 ? s + 10 : s;
}

/* Print the category's summary line; failures are added to the test's. */
static void tally_done(tally *t, long *fails, char *first, size_t cap)
{
    char codes[256] = "";
    size_t n = 0;
    for (int c = 1; c < 16; c++)
        if (t->by_code[c] && n < sizeof codes)
            n += (size_t)snprintf(codes + n, sizeof codes - n, "%s%s %ld",
                                  n ? ", " : "", code_name(-c), t->by_code[c]);
    char valid[64] = "", failed[64] = "";
    if (t->valid)
        snprintf(valid, sizeof valid, ", %ld accepted as valid", t->valid);
    if (t->failures)
        snprintf(failed, sizeof failed, ", %ld FAILED (%ld wrong status)",
                 t->failures, t->wrong);
    fprintf(stderr,
            "catalogue: %s: %ld tried, %ld rejected (%s)%s, %ld "
            "accepted-and-different, %ld leaks%s\n",
            t->what, t->tried, t->rejected, n ? codes : "-", valid, t->diff,
            t->leaks, failed);
    if (t->failures && *fails == 0)
        snprintf(first, cap, "%s", t->first);
    *fails += t->failures;
}

/* ---- running a case ----------------------------------------------------- */

/* What an accepted file must load as: the reference's weights, except
 * element @p elem of tensor @p tensor (index in the reference) = @p bits. */
typedef struct okx {
    int tensor;
    size_t elem;
    uint32_t bits;
} okx;

static int is_component(const char *name)
{
    return strncmp(name, "align.", 6) == 0 || strncmp(name, "gate.", 5) == 0;
}

static const float *obj_tensor(const iadsr_model *m, const iadsr_aligner *a,
                               const iadsr_gate *g, const char *name)
{
    if (strncmp(name, "align.", 6) == 0)
        return !a ? NULL : strcmp(name, "align.w1") == 0 ? a->w1 : a->w2;
    if (strncmp(name, "gate.", 5) == 0)
        return !g                             ? NULL
               : strcmp(name, "gate.wd") == 0 ? g->wd
               : strcmp(name, "gate.bd") == 0 ? g->bd
               : strcmp(name, "gate.det") == 0 ? g->det
                                               : NULL;
    const iadsr__tensor *t = iadsr__layout_find(&m->layout, name);
    return t ? m->w + t->offset : NULL;
}

static int loaded_as_expected(const cref *r, const iadsr_model *m,
                              const iadsr_aligner *a, const iadsr_gate *g,
                              int want_comp, const okx *ox)
{
    if (!m || iadsr_model_backbone(m) != r->backbone ||
        iadsr_model_n_items(m) != iadsr_model_n_items(r->m) ||
        iadsr_model_dim(m) != iadsr_model_dim(r->m))
        return 0;
    if (want_comp && ((r->a != NULL) != (a != NULL) ||
                      (r->g != NULL) != (g != NULL)))
        return 0;
    for (uint32_t i = 0; i < r->n_tensors; i++) {
        const rtensor *t = &r->t[i];
        if (is_component(t->name) && !want_comp)
            continue;
        const float *x = obj_tensor(r->m, r->a, r->g, t->name);
        const float *y = obj_tensor(m, a, g, t->name);
        if (!x || !y)
            return 0;
        for (size_t j = 0; j < (size_t)(t->rows * t->cols); j++) {
            uint32_t ex = f2u(x[j]);
            if (ox && ox->tensor == (int)i && ox->elem == j)
                ex = ox->bits;
            if (f2u(y[j]) != ex)
                return 0;
        }
    }
    return 1;
}

enum { RES_REJECTED = 1, RES_SAME = 2, RES_DIFF = 4 };

/* Judge one call: status, outputs, message, leaks. Frees what it got. */
static int check_outcome(tally *ty, const cref *r, const char *label,
                         const char *api, int rc, int want, const char *msg,
                         const char *msg2, const okx *ox, iadsr_model *m,
                         iadsr_aligner *a, iadsr_gate *g, int want_comp,
                         long live0)
{
    char err[512];
    snprintf(err, sizeof err, "%s", iadsr_last_error());
    int res;
    if (rc != IADSR_OK) {
        res = RES_REJECTED;
        /* never free here: a non-NULL output may be our sentinel */
        if (m || a || g)
            tally_fail(ty, "%s: %s: %s but an output is not NULL", label, api,
                       code_name(rc));
        if (!err[0])
            tally_fail(ty, "%s: %s: %s with an empty last error", label, api,
                       code_name(rc));
        if (rc != want) {
            ty->wrong++;
            tally_fail(ty, "%s: %s returned %s, expected %s ('%s')", label,
                       api, code_name(rc), code_name(want), err);
        } else if ((msg && !strstr(err, msg)) || (msg2 && !strstr(err, msg2))) {
            tally_fail(ty, "%s: %s: message '%s' lacks '%s'", label, api, err,
                       msg && !strstr(err, msg) ? msg : msg2);
        }
    } else {
        int same = loaded_as_expected(r, m, a, g, want_comp, ox);
        res = same ? RES_SAME : RES_DIFF;
        if (want != IADSR_OK) {
            ty->wrong++;
            tally_fail(ty, "%s: %s accepted the file (%s weights), expected "
                       "%s",
                       label, api, same ? "expected" : "different",
                       code_name(want));
        } else if (!same) {
            tally_fail(ty, "%s: %s loaded other weights than the file holds",
                       label, api);
        }
        iadsr_gate_free(g);
        iadsr_aligner_free(a);
        iadsr_model_free(m);
    }
    long live = iadsr__alloc_live();
    if (live != live0) {
        ty->leaks++;
        tally_fail(ty, "%s: %s: %ld block(s) leaked", label, api, live - live0);
    }
    return res;
}

/* Resolve the expectation of a case: its own (cross-checked against the
 * oracle when the oracle can judge) or the oracle's. Returns 0 when there
 * is none. */
static int resolve_want(tally *ty, const cref *r, const char *label,
                        const uint8_t *b, size_t len, int *want)
{
    int o = spec_status(r, b, len);
    if (*want == WANT_ORACLE) {
        if (o == ORACLE_UNKNOWN) {
            tally_fail(ty, "%s: no expectation (changed metadata)", label);
            return 0;
        }
        *want = o;
        if (ty->must_reject && o == IADSR_OK)
            tally_fail(ty, "%s: the spec oracle accepts it", label);
    } else if (o != ORACLE_UNKNOWN && o != *want) {
        tally_fail(ty, "%s: the case expects %s, the spec oracle %s", label,
                   code_name(*want), code_name(o));
    }
    return 1;
}

static void tally_case(tally *ty, int res_all, int res_any, int rc0, int want)
{
    ty->tried++;
    if (res_all == RES_REJECTED) {
        ty->rejected++;
        ty->by_code[(-rc0) & 15]++;
    }
    if (res_all == RES_SAME && want == IADSR_OK)
        ty->valid++;
    if (res_any & RES_DIFF)
        ty->diff++;
}

/* One bad (or valid) input through the three buffer loaders. */
static void run_case(tally *ty, const cref *r, const char *label,
                     const uint8_t *b, size_t len, int want, const char *msg,
                     const okx *ox)
{
    static const char *const api[3] = {
        "model_load_from_buffer", "checkpoint_load_from_buffer(m, a, g)",
        "checkpoint_load_from_buffer(m, NULL, NULL)"};
    if (!resolve_want(ty, r, label, b, len, &want))
        return;
    int all = RES_REJECTED | RES_SAME | RES_DIFF, any = 0, rc0 = 0;
    for (int k = 0; k < (ty->two_apis ? 2 : 3); k++) {
        iadsr_model *m = TU_SENTINEL(iadsr_model);
        iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
        iadsr_gate *g = TU_SENTINEL(iadsr_gate);
        iadsr_clear_error();
        long live0 = iadsr__alloc_live();
        int rc;
        if (k == 0)
            rc = iadsr_model_load_from_buffer(&m, b, len, 0);
        else if (k == 1)
            rc = iadsr_checkpoint_load_from_buffer(&m, &a, &g, b, len, 0);
        else
            rc = iadsr_checkpoint_load_from_buffer(&m, NULL, NULL, b, len, 0);
        if (k != 1)
            a = NULL, g = NULL;
        if (k == 0)
            rc0 = rc;
        int res = check_outcome(ty, r, label, api[k], rc, want, msg, NULL, ox,
                                m, a, g, k == 1, live0);
        all &= res;
        any |= res;
    }
    tally_case(ty, all, any, rc0, want);
}

/* The same through a file: iadsr_model_load and iadsr_checkpoint_load; the
 * message must also name the path. */
static void run_file_case(tally *ty, const cref *r, const char *label,
                          const uint8_t *b, size_t len, int want,
                          const char *msg)
{
    static const char *const api[3] = {"model_load",
                                       "checkpoint_load(m, a, g)",
                                       "checkpoint_load(m, NULL, NULL)"};
    if (!resolve_want(ty, r, label, b, len, &want))
        return;
    char path[512];
    tmp_path(path, sizeof path, "case.iadsr");
    tu_write_file(path, b, len);
    int all = RES_REJECTED | RES_SAME | RES_DIFF, any = 0, rc0 = 0;
    for (int k = 0; k < 3; k++) {
        iadsr_model *m = TU_SENTINEL(iadsr_model);
        iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
        iadsr_gate *g = TU_SENTINEL(iadsr_gate);
        iadsr_clear_error();
        long live0 = iadsr__alloc_live();
        int rc;
        if (k == 0)
            rc = iadsr_model_load(&m, path, 0);
        else if (k == 1)
            rc = iadsr_checkpoint_load(&m, &a, &g, path, 0);
        else
            rc = iadsr_checkpoint_load(&m, NULL, NULL, path, 0);
        if (k != 1)
            a = NULL, g = NULL;
        if (k == 0)
            rc0 = rc;
        int res = check_outcome(ty, r, label, api[k], rc, want, msg, path,
                                NULL, m, a, g, k == 1, live0);
        all &= res;
        any |= res;
    }
    unlink(path);
    tally_case(ty, all, any, rc0, want);
}

/* Loops over the reference files; every test has this shape. */
#define FOR_EACH_REF(r)                                                       \
    for (int ref_k_ = 0; ref_k_ < R_COUNT; ref_k_++)                          \
        for (cref *r = ref_make(ref_k_); r; ref_free(r), r = NULL)

#define TEST_FAILS_DECL                                                       \
    long fails = 0;                                                           \
    char first[700] = ""
#define TEST_FAILS_CHECK                                                      \
    ck_assert_msg(fails == 0, "catalogue: %ld failure(s); first: %s", fails,  \
                  first)

/* ---- 1. header fields at their bounds ----------------------------------- */

static const char *hdr_field(size_t at)
{
    switch (at) {
    case H_MAJOR: return "format_major";
    case H_MINOR: return "format_minor";
    case H_HSIZE: return "header_size";
    case H_KIND: return "kind";
    case H_REQ: return "required_flags";
    case H_OPT: return "optional_flags";
    case H_NKV: return "n_kv";
    case H_NT: return "n_tensors";
    case H_ALIGN: return "alignment";
    case H_DOFF: return "data_offset";
    case H_FSIZE: return "file_size";
    default: return "header_crc32c";
    }
}

/* Header field @p at set to @p v (header CRC recomputed unless it is the
 * field). */
static void hdr_case(tally *ty, const cref *r, size_t at, uint64_t v,
                     int want, const char *msg)
{
    int wide = at == H_DOFF || at == H_FSIZE;
    uint8_t *c = dup_bytes(r->b, r->len);
    if (wide)
        wr64(c + at, v);
    else
        wr32(c + at, (uint32_t)v);
    if (at != H_CRC)
        fix_hdr(c);
    char label[128];
    snprintf(label, sizeof label, "%s = %llu (0x%llx)", hdr_field(at),
             (unsigned long long)v, (unsigned long long)v);
    run_case(ty, r, label, c, r->len, want, msg, NULL);
    free(c);
}

static void header_cases(tally *ty, const cref *r)
{
    char label[128];
    /* signature: every byte, then the text-mode "\r\n" -> "\n" */
    for (size_t i = 0; i < 8; i++) {
        uint8_t *c = dup_bytes(r->b, r->len);
        c[i] ^= 0xff;
        fix_hdr(c);
        snprintf(label, sizeof label, "signature byte %zu ^ 0xff", i);
        run_case(ty, r, label, c, r->len, E_FMT, "signature", NULL);
        free(c);
    }
    uint8_t *c = dup_bytes(r->b, r->len);
    memmove(c + 6, c + 7, r->len - 7);
    run_case(ty, r, "signature with \\r\\n -> \\n", c, r->len - 1, E_FMT,
             "signature", NULL);
    free(c);

    /* format_major: only 1 (bounds 1..1) */
    const uint64_t majors[] = {0, 1, 2, 3, 0xffffffffu};
    for (size_t i = 0; i < 5; i++)
        hdr_case(ty, r, H_MAJOR, majors[i], majors[i] == 1 ? E_OK : E_VER,
                 majors[i] == 1 ? NULL : "version");
    /* format_minor: any value */
    const uint64_t minors[] = {0, 1, 2, 3, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < 6; i++)
        hdr_case(ty, r, H_MINOR, minors[i], E_OK, NULL);
    /* header_size: only 64 */
    const uint64_t hs[] = {0, 63, 64, 65, 128, 0xffffffffu};
    for (size_t i = 0; i < 6; i++)
        hdr_case(ty, r, H_HSIZE, hs[i], hs[i] == 64 ? E_OK : E_FMT,
                 hs[i] == 64 ? NULL : "header_size");
    /* kind: only 1 */
    const uint64_t kinds[] = {0, 1, 2, 0xffffffffu};
    for (size_t i = 0; i < 4; i++)
        hdr_case(ty, r, H_KIND, kinds[i], kinds[i] == 1 ? E_OK : E_UNS,
                 kinds[i] == 1 ? NULL : "kind");
    /* required_flags: known bits 0..2 must agree with the keys (bit 2
     * with iadsr.item_id_bytes, 1.4); 8 is the first unknown value */
    for (uint64_t v = 0; v <= 3; v++)
        hdr_case(ty, r, H_REQ, v, v == r->required ? E_OK : E_FMT, NULL);
    hdr_case(ty, r, H_REQ, r->required | 4u, E_FMT, "item_id_bytes"); /* 1.4 */
    hdr_case(ty, r, H_REQ, 8, E_UNS, "required");
    hdr_case(ty, r, H_REQ, 0xffffffffu, E_UNS, "required");
    /* optional_flags: ignored */
    const uint64_t opts[] = {0, 1, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < 4; i++)
        hdr_case(ty, r, H_OPT, opts[i], E_OK, NULL);
    /* n_kv, n_tensors: 0..256, and the count must be the real one */
    const uint64_t kvs[] = {0, r->n_kv - 1, r->n_kv + 1, 256};
    for (size_t i = 0; i < 4; i++)
        hdr_case(ty, r, H_NKV, kvs[i], WANT_ORACLE, NULL);
    hdr_case(ty, r, H_NKV, 257, E_FMT, "n_kv");
    hdr_case(ty, r, H_NKV, 0xffffffffu, E_FMT, "n_kv");
    const uint64_t nts[] = {0, r->n_tensors - 1, r->n_tensors + 1, 256};
    for (size_t i = 0; i < 4; i++)
        hdr_case(ty, r, H_NT, nts[i], WANT_ORACLE, NULL);
    hdr_case(ty, r, H_NT, 257, E_FMT, "n_tensors");
    hdr_case(ty, r, H_NT, 0xffffffffu, E_FMT, "n_tensors");
    /* alignment: a power of two in 8..4096; valid values that disagree
     * with the layout are judged by the oracle */
    const uint64_t bad_al[] = {0, 1, 4, 7, 9, 63, 65, 4095, 4097, 8192,
                               0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad_al / sizeof bad_al[0]; i++)
        hdr_case(ty, r, H_ALIGN, bad_al[i], E_FMT, "alignment");
    const uint64_t ok_al[] = {8, 16, 32, 64, 128, 1024, 4096};
    for (size_t i = 0; i < sizeof ok_al / sizeof ok_al[0]; i++)
        hdr_case(ty, r, H_ALIGN, ok_al[i], WANT_ORACLE, NULL);
    /* data_offset: exactly align_up(dir_end, alignment) */
    uint64_t d = r->data_offset, L = r->len;
    const uint64_t dofs[] = {0, 1, 63, 64, d - 64, d - 8, d - 1, d + 1,
                             d + 8, d + 64, L, L + 1, UINT64_MAX - 63,
                             UINT64_MAX};
    for (size_t i = 0; i < sizeof dofs / sizeof dofs[0]; i++)
        hdr_case(ty, r, H_DOFF, dofs[i], WANT_ORACLE, NULL);
    /* file_size: exactly the length */
    const uint64_t fss[] = {0, 63, 64, L - 1, L + 1, 2 * L, UINT64_MAX};
    for (size_t i = 0; i < sizeof fss / sizeof fss[0]; i++)
        hdr_case(ty, r, H_FSIZE, fss[i], E_FMT, NULL);
    /* header_crc32c */
    uint32_t crc = rd32(r->b + H_CRC);
    const uint32_t crcs[] = {crc ^ 1u, crc ^ 0x80000000u, ~crc, 0u,
                             0xffffffffu};
    for (size_t i = 0; i < 5; i++)
        if (crcs[i] != crc)
            hdr_case(ty, r, H_CRC, crcs[i], E_SUM, "header checksum");

    /* valid alignments with the file laid out for them: accepted; 64
     * rebuilds the reference byte for byte (checks the builder) */
    const uint32_t lay[] = {8, 16, 32, 64, 128, 4096};
    for (size_t i = 0; i < sizeof lay / sizeof lay[0]; i++) {
        build *bd = build_ref(r, NULL);
        bd->alignment = lay[i];
        size_t len;
        uint8_t *b = build_bytes(bd, &len);
        if (lay[i] == 64)
            ck_assert(len == r->len && memcmp(b, r->b, len) == 0);
        snprintf(label, sizeof label, "laid out with alignment %u",
                 (unsigned)lay[i]);
        run_case(ty, r, label, b, len, E_OK, NULL, NULL);
        free(b);
        build_free(bd);
    }
    /* n_kv at its maximum with real entries (unknown host.* keys fill the
     * metadata), and one more */
    for (uint32_t total = 256; total <= 257; total++) {
        build *bd = build_ref(r, NULL);
        char key[32];
        for (uint32_t k = 0; bd->n_kv < total; k++) {
            snprintf(key, sizeof key, "host.fill.%u", (unsigned)k);
            kv_num(&bd->meta, key, 2, k);
            bd->n_kv++;
        }
        size_t len;
        uint8_t *b = build_bytes(bd, &len);
        snprintf(label, sizeof label, "n_kv = %u real entries",
                 (unsigned)total);
        run_case(ty, r, label, b, len, total == 256 ? E_OK : E_FMT,
                 total == 256 ? NULL : "n_kv", NULL);
        free(b);
        build_free(bd);
    }
}

START_TEST(test_cat_header_fields)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "header fields at bounds (%s)", r->label);
        header_cases(&ty, r);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 2. metadata entries and hyper-parameter values at their bounds ----- */

static void meta_case(tally *ty, const cref *r, const char *key,
                      uint32_t type, uint64_t v, int want, const char *msg)
{
    uint8_t val[8];
    size_t vl = type == 3 || type == 4 ? 8 : 4;
    if (vl == 8)
        wr64(val, v);
    else
        wr32(val, (uint32_t)v);
    size_t len;
    uint8_t *c = with_key(r, key, type, val, vl, &len);
    char label[160];
    if (type == 1)
        snprintf(label, sizeof label, "%s = %d", key, (int)(int32_t)v);
    else if (type == 5)
        snprintf(label, sizeof label, "%s = %g (0x%08x)", key,
                 (double)u2f((uint32_t)v), (unsigned)v);
    else
        snprintf(label, sizeof label, "%s = %llu", key,
                 (unsigned long long)v);
    run_case(ty, r, label, c, len, want, msg, NULL);
    free(c);
}

#define I32(k, v, w, m)                                                       \
    meta_case(ty, r, "iadsr." k, 1, (uint64_t)(uint32_t)(int32_t)(v), w, m)
#define U32(k, v, w, m) meta_case(ty, r, "iadsr." k, 2, (uint32_t)(v), w, m)
#define FB(k, bits, w, m) meta_case(ty, r, "iadsr." k, 5, (bits), w, m)
#define U64(k, v, w, m) meta_case(ty, r, "iadsr." k, 4, (v), w, m)

#define NEXT_UP(x) f2u(nextafterf((x), INFINITY))
#define NEXT_DOWN(x) f2u(nextafterf((x), -INFINITY))

/* Every hyper-parameter and setting at min-1, min, max, max+1 (and a few
 * more): outside the bounds of iadsr.h is FORMAT naming the field (unknown
 * flag bits: UNSUPPORTED); inside them but implying other shapes is FORMAT
 * naming the first tensor (or the tensor count); otherwise accepted. */
static void value_cases(tally *ty, const cref *r)
{
    const int sas = r->backbone == IADSR_BACKBONE_SASREC;
    const int gru = r->backbone == IADSR_BACKBONE_GRU4REC;
    const int cas = r->backbone == IADSR_BACKBONE_CASER;
    const int pre = (r->required & 1u) != 0;

    I32("n_items", INT32_MIN, E_FMT, "n_items");
    I32("n_items", -1, E_FMT, "n_items");
    I32("n_items", 0, E_FMT, "n_items");
    I32("n_items", 1, E_FMT, "item_emb");
    I32("n_items", 11, E_FMT, "item_emb");
    I32("n_items", 13, E_FMT, "item_emb");
    I32("n_items", INT32_MAX - 1, E_FMT, "item_emb");
    I32("n_items", INT32_MAX, E_FMT, "n_items");

    I32("dim", -1, E_FMT, "dim");
    I32("dim", 0, E_FMT, "dim");
    I32("dim", 1, E_FMT, sas ? "n_heads" : "item_emb");
    I32("dim", 2, E_FMT, "item_emb");
    I32("dim", 4096, E_FMT, "item_emb");
    I32("dim", 4097, E_FMT, "dim");

    I32("max_seq_len", -1, E_FMT, "max_seq_len");
    I32("max_seq_len", 0, E_FMT, "max_seq_len");
    I32("max_seq_len", 1, sas ? E_FMT : E_OK, sas ? "pos_emb" : NULL);
    I32("max_seq_len", 3, sas ? E_FMT : E_OK, sas ? "pos_emb" : NULL);
    I32("max_seq_len", 5, sas ? E_FMT : E_OK, sas ? "pos_emb" : NULL);
    I32("max_seq_len", 4096, sas ? E_FMT : E_OK, sas ? "pos_emb" : NULL);
    I32("max_seq_len", 4097, E_FMT, "max_seq_len");

    /* n_layers 0 is the backbone's default (2 for SASRec, 1 for GRU4Rec);
     * Caser must have 0 */
    I32("n_layers", -1, E_FMT, "n_layers");
    I32("n_layers", 0, sas ? E_FMT : E_OK, sas ? "tensors" : NULL);
    I32("n_layers", 1, cas ? E_FMT : E_OK, cas ? "n_layers" : NULL);
    I32("n_layers", 2, E_FMT, cas ? "n_layers" : "tensors");
    I32("n_layers", 16, E_FMT, cas ? "n_layers" : "tensors");
    I32("n_layers", 17, E_FMT, "n_layers");

    if (sas) {
        const int32_t ok[] = {1, 2, 4, 8}, bad[] = {-1, 0, 3, 16, 4096, 4097};
        for (size_t i = 0; i < 4; i++)
            I32("n_heads", ok[i], E_OK, NULL);
        for (size_t i = 0; i < 6; i++)
            I32("n_heads", bad[i], E_FMT, "n_heads");
        I32("ffn_dim", -1, E_FMT, "ffn_dim");
        I32("ffn_dim", 0, E_FMT, "blk0.w1"); /* 4 * dim = 32, not 8 */
        I32("ffn_dim", 1, E_FMT, "blk0.w1");
        I32("ffn_dim", 8, E_OK, NULL);
        I32("ffn_dim", 65536, E_FMT, "blk0.w1");
        I32("ffn_dim", 65537, E_FMT, "ffn_dim");
        I32("activation", -1, E_FMT, "activation");
        I32("activation", 0, E_OK, NULL);
        I32("activation", 1, E_OK, NULL);
        I32("activation", 2, E_OK, NULL);
        I32("activation", 3, E_FMT, "activation");
    } else {
        /* SASRec-only fields: only their defaults */
        I32("n_heads", -1, E_FMT, "n_heads");
        I32("n_heads", 0, E_OK, NULL);
        I32("n_heads", 1, E_FMT, "n_heads");
        I32("n_heads", 2, E_OK, NULL);
        I32("n_heads", 3, E_FMT, "n_heads");
        I32("ffn_dim", -1, E_FMT, "ffn_dim");
        I32("ffn_dim", 0, E_OK, NULL);
        I32("ffn_dim", 1, E_FMT, "ffn_dim");
        I32("activation", -1, E_FMT, "activation");
        I32("activation", 0, E_OK, NULL);
        I32("activation", 1, E_OK, NULL);
        I32("activation", 2, E_FMT, "activation");
    }

    /* backbone: 0 is the default (SASRec); 4 is not defined */
    I32("backbone", -1, E_FMT, "backbone");
    I32("backbone", 0, sas ? E_OK : E_FMT, NULL);
    I32("backbone", 1, sas ? E_OK : E_FMT, NULL);
    I32("backbone", 2, gru ? E_OK : E_FMT, NULL);
    I32("backbone", 3, cas ? E_OK : E_FMT, NULL);
    I32("backbone", 4, E_FMT, "backbone");
    I32("backbone", INT32_MAX, E_FMT, "backbone");

    /* dropout in [0, 1) */
    FB("dropout", 0x80000000u, E_OK, NULL); /* -0 */
    FB("dropout", 0x80000001u, E_FMT, "dropout");
    FB("dropout", 0, E_OK, NULL);
    FB("dropout", NEXT_DOWN(1.0f), E_OK, NULL);
    FB("dropout", f2u(1.0f), E_FMT, "dropout");
    FB("dropout", 0x7fc00000u, E_FMT, "dropout");
    FB("dropout", 0x7f800000u, E_FMT, "dropout");
    FB("dropout", 0xff800000u, E_FMT, "dropout");

    U64("seed", 0, E_OK, NULL);
    U64("seed", UINT64_MAX, E_OK, NULL);
    I32("epochs_trained", INT32_MIN, E_FMT, "epochs_trained");
    I32("epochs_trained", -1, E_FMT, "epochs_trained");
    I32("epochs_trained", 0, E_OK, NULL);
    I32("epochs_trained", INT32_MAX, E_OK, NULL);
    const uint32_t ndcg[] = {0x7fc00000u, 0xffc00000u, 0x7f800000u,
                             0xff800000u, f2u(-1.0f), f2u(2.0f)};
    for (size_t i = 0; i < 6; i++)
        FB("best_valid_ndcg10", ndcg[i], E_OK, NULL);

    /* iadsr.model_flags: bit 0 of required_flags iff non-zero */
    U32("model_flags", 0, pre ? E_FMT : E_OK, pre ? "model_flags" : NULL);
    U32("model_flags", 1, pre ? E_OK : E_FMT, pre ? NULL : "model_flags");
    U32("model_flags", 2, E_UNS, "model_flags");
    U32("model_flags", 3, E_UNS, "model_flags");
    U32("model_flags", 0x80000000u, E_UNS, "model_flags");

    if (cas) {
        I32("caser_window", -1, E_FMT, "caser_window");
        I32("caser_window", 0, E_FMT, "tensors"); /* 0 means 5 */
        I32("caser_window", 1, E_FMT, "tensors");
        I32("caser_window", 2, E_FMT, "tensors");
        I32("caser_window", 3, E_OK, NULL);
        I32("caser_window", 4, E_FMT, "tensors");
        I32("caser_window", 64, E_FMT, "tensors");
        I32("caser_window", 65, E_FMT, "caser_window");
        const int32_t hv[] = {0, 1, 3, 1024};
        for (size_t i = 0; i < 4; i++) {
            I32("caser_h_filters", hv[i], E_FMT, "caser.h1.w");
            I32("caser_v_filters", hv[i], E_FMT, "caser.v.w");
        }
        I32("caser_h_filters", -1, E_FMT, "caser_h_filters");
        I32("caser_h_filters", 2, E_OK, NULL);
        I32("caser_h_filters", 1025, E_FMT, "caser_h_filters");
        I32("caser_v_filters", -1, E_FMT, "caser_v_filters");
        I32("caser_v_filters", 2, E_OK, NULL);
        I32("caser_v_filters", 1025, E_FMT, "caser_v_filters");
    } else {
        /* absent reads as 0 */
        I32("caser_window", 0, E_OK, NULL);
        I32("caser_window", 3, E_FMT, "Caser only");
        I32("caser_h_filters", 2, E_FMT, "Caser only");
        I32("caser_v_filters", 2, E_FMT, "Caser only");
    }

    if (r->a) {
        const int32_t sd[] = {1, 2, 4, 1048576};
        I32("align_sem_dim", INT32_MIN, E_FMT, "align_sem_dim");
        I32("align_sem_dim", -1, E_FMT, "align_sem_dim");
        I32("align_sem_dim", 0, E_FMT, "align_sem_dim");
        for (size_t i = 0; i < 4; i++)
            I32("align_sem_dim", sd[i], E_FMT, "align.w1");
        I32("align_sem_dim", 3, E_OK, NULL);
        I32("align_sem_dim", 1048577, E_FMT, "align_sem_dim");
        /* tau in (0, 1e6] */
        const uint32_t tok[] = {1u, f2u(0.1f), f2u(1e6f)};
        const uint32_t tbad[] = {f2u(-1.0f), 0x80000000u, 0u,
                                 NEXT_UP(1e6f), 0x7fc00000u, 0x7f800000u};
        for (size_t i = 0; i < 3; i++)
            FB("align_tau", tok[i], E_OK, NULL);
        for (size_t i = 0; i < 6; i++)
            FB("align_tau", tbad[i], E_FMT, "align_tau");
    }
    if (r->g) {
        /* the four known bits: the detector (8) is invalid with CARRY_MASKS
         * (2) or PAPER (4), and decides whether gate.det is in the file (a
         * file that gains or loses it by this edit is FORMAT, naming it);
         * bits 4 (hold-out), 5 (clean scores) and 6 (input mask) need bit
         * 3; bits 7 and above are unknown */
        int det = (r->g->p.flags & IADSR_DENOISE_F_DETECT) != 0;
        for (uint32_t f = 0; f <= 127; f++) {
            if ((f & 8u) && (f & 6u))
                U32("gate_flags", f, E_FMT, "IADSR_DENOISE_F_DETECT");
            else if ((f & 112u) && !(f & 8u))
                U32("gate_flags", f, E_FMT, "it needs IADSR_DENOISE_F_DETECT");
            else if (!(f & 8u) != !det)
                U32("gate_flags", f, E_FMT, "'gate.det'");
            else
                U32("gate_flags", f, E_OK, NULL);
        }
        U32("gate_flags", 128, E_UNS, "flags");
        U32("gate_flags", 128u | r->g->p.flags, E_UNS, "flags");
        U32("gate_flags", 0x80000000u, E_UNS, "flags");
        /* loss weights in [0, 1e6] */
        static const char *const lam[] = {"gate_lambda_align",
                                          "gate_lambda_recon"};
        for (int k = 0; k < 2; k++) {
            const char *field = lam[k] + 5;
            const uint32_t ok[] = {0x80000000u, 0u, f2u(1e6f)};
            const uint32_t bad[] = {0x80000001u, NEXT_UP(1e6f), 0x7fc00000u,
                                    0x7f800000u};
            char key[64];
            snprintf(key, sizeof key, "iadsr.%s", lam[k]);
            for (size_t i = 0; i < 3; i++)
                meta_case(ty, r, key, 5, ok[i], E_OK, NULL);
            for (size_t i = 0; i < 4; i++)
                meta_case(ty, r, key, 5, bad[i], E_FMT, field);
        }
        /* temperatures in (0, 1e6] */
        static const char *const tau[] = {"gate_tau_align",
                                          "gate_tau_gumbel"};
        for (int k = 0; k < 2; k++) {
            const char *field = tau[k] + 5;
            const uint32_t ok[] = {1u, f2u(1e6f)};
            const uint32_t bad[] = {f2u(-1.0f), 0u, NEXT_UP(1e6f),
                                    0x7fc00000u};
            char key[64];
            snprintf(key, sizeof key, "iadsr.%s", tau[k]);
            for (size_t i = 0; i < 2; i++)
                meta_case(ty, r, key, 5, ok[i], E_OK, NULL);
            for (size_t i = 0; i < 4; i++)
                meta_case(ty, r, key, 5, bad[i], E_FMT, field);
        }
        FB("gate_theta", NEXT_DOWN(-3.0f), E_FMT, "theta");
        FB("gate_theta", f2u(-3.0f), E_OK, NULL);
        FB("gate_theta", f2u(3.0f), E_OK, NULL);
        FB("gate_theta", NEXT_UP(3.0f), E_FMT, "theta");
        FB("gate_theta", 0x7fc00000u, E_FMT, "theta");
        FB("gate_max_drop", 0x80000001u, E_FMT, "max_drop");
        FB("gate_max_drop", 0u, E_OK, NULL);
        FB("gate_max_drop", f2u(1.0f), E_OK, NULL);
        FB("gate_max_drop", NEXT_UP(1.0f), E_FMT, "max_drop");
        FB("gate_max_drop", 0x7fc00000u, E_FMT, "max_drop");
        I32("gate_protect_last", INT32_MIN, E_FMT, "protect_last");
        I32("gate_protect_last", -1, E_FMT, "protect_last");
        I32("gate_protect_last", 0, E_OK, NULL);
        I32("gate_protect_last", 1, E_OK, NULL);
        I32("gate_protect_last", 2, E_FMT, "protect_last");
        U64("gate_seed", 0, E_OK, NULL);
        U64("gate_seed", UINT64_MAX, E_OK, NULL);
    }
}

/* Keys of an aligner (2) or gate (9) added to a file that lacks that
 * component, with required_flags bit 1 as it was and with it set. */
static void component_key_cases(tally *ty, const cref *r)
{
    for (int comp = 0; comp < 2; comp++) {
        if (comp == 0 ? r->a != NULL : r->g != NULL)
            continue;
        for (int set_bit = 0; set_bit < 2; set_bit++) {
            build *bd = build_ref(r, NULL);
            if (comp == 0) {
                kv_num(&bd->meta, "iadsr.align_sem_dim", 1, 3);
                kv_num(&bd->meta, "iadsr.align_tau", 5, f2u(0.1f));
                bd->n_kv += 2;
            } else {
                kv_num(&bd->meta, "iadsr.gate_flags", 2, 0);
                kv_num(&bd->meta, "iadsr.gate_lambda_align", 5, f2u(1.0f));
                kv_num(&bd->meta, "iadsr.gate_lambda_recon", 5, f2u(1.0f));
                kv_num(&bd->meta, "iadsr.gate_tau_align", 5, f2u(0.1f));
                kv_num(&bd->meta, "iadsr.gate_tau_gumbel", 5, f2u(1.0f));
                kv_num(&bd->meta, "iadsr.gate_theta", 5, f2u(0.0f));
                kv_num(&bd->meta, "iadsr.gate_max_drop", 5, f2u(0.3f));
                kv_num(&bd->meta, "iadsr.gate_protect_last", 1, 1);
                kv_num(&bd->meta, "iadsr.gate_seed", 4, 7);
                bd->n_kv += 9;
            }
            if (set_bit)
                wr32(bd->hdr + H_REQ, r->required | 2u);
            size_t len;
            uint8_t *b = build_bytes(bd, &len);
            int bit = (rd32(b + H_REQ) & 2u) != 0;
            char label[128];
            snprintf(label, sizeof label, "%s keys without its tensors, "
                     "required_flags 0x%x",
                     comp == 0 ? "aligner" : "gate", (unsigned)rd32(b + H_REQ));
            run_case(ty, r, label, b, len, E_FMT,
                     bit ? "tensors" : "required_flags", NULL);
            free(b);
            build_free(bd);
            if (r->required & 2u)
                break; /* the bit is already set */
        }
    }
    /* a present component's keys removed: its tensors are left over, or
     * nothing needs bit 1 any more */
    for (int comp = 0; comp < 2; comp++) {
        if (comp == 0 ? r->a == NULL : r->g == NULL)
            continue;
        build *bd = build_ref(r, NULL);
        free(bd->meta.p);
        memset(&bd->meta, 0, sizeof bd->meta);
        bd->n_kv = 0;
        char key[256];
        for (uint32_t i = 0; i < r->n_kv; i++) {
            kv_key(r, i, key, sizeof key);
            if (strncmp(key, comp == 0 ? "iadsr.align_" : "iadsr.gate_",
                        comp == 0 ? 12 : 11) == 0)
                continue;
            b_put(&bd->meta, r->b + r->kv_off[i], r->kv_len[i]);
            bd->n_kv++;
        }
        size_t len;
        uint8_t *b = build_bytes(bd, &len);
        int other = comp == 0 ? r->g != NULL : r->a != NULL;
        run_case(ty, r,
                 comp == 0 ? "aligner keys removed" : "gate keys removed", b,
                 len, E_FMT, other ? "tensors" : "required_flags", NULL);
        free(b);
        build_free(bd);
    }
    /* model flags on a file whose backbone layout then changes */
    if (!(r->required & 1u)) {
        build *bd = build_ref(r, NULL);
        kv_num(&bd->meta, "iadsr.model_flags", 2, IADSR_MODEL_F_PRE_LN);
        bd->n_kv++;
        wr32(bd->hdr + H_REQ, r->required | 1u);
        size_t len;
        uint8_t *b = build_bytes(bd, &len);
        run_case(ty, r, "model_flags = PRE_LN with required bit 0", b, len,
                 E_FMT,
                 r->backbone == IADSR_BACKBONE_SASREC ? "tensors" : "SASRec",
                 NULL);
        free(b);
        build_free(bd);
    }
}

/* Entry structure at bounds: key length, key bytes, type codes, string
 * length, duplicates, missing keys, wrong types, n_kv = 0. */
static void entry_cases(tally *ty, const cref *r)
{
    char label[400], key[300];
    size_t len;
    uint8_t *b;

    /* in place on the first entry (the metadata CRC recomputed) */
    const uint32_t kls[] = {0, 256, 0x10000, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        b = dup_bytes(r->b, r->len);
        wr32(b + HDR, kls[i]);
        fix_meta(b, r);
        snprintf(label, sizeof label, "entry 0 key_len = %u", (unsigned)kls[i]);
        run_case(ty, r, label, b, r->len, E_FMT, "key length", NULL);
        free(b);
    }
    for (int dk = -1; dk <= 1; dk += 2) {
        b = dup_bytes(r->b, r->len);
        wr32(b + HDR, rd32(b + HDR) + (uint32_t)dk);
        fix_meta(b, r);
        snprintf(label, sizeof label, "entry 0 key_len %+d", dk);
        run_case(ty, r, label, b, r->len, WANT_ORACLE, NULL, NULL);
        free(b);
    }
    size_t type_at = HDR + 4 + rd32(r->b + HDR);
    const uint32_t types[] = {0, 7, 8, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        b = dup_bytes(r->b, r->len);
        wr32(b + type_at, types[i]);
        fix_meta(b, r);
        snprintf(label, sizeof label, "entry 0 type = %u", (unsigned)types[i]);
        run_case(ty, r, label, b, r->len, E_FMT, "type", NULL);
        free(b);
    }
    int lv = kv_index(r, "iadsr.library_version");
    ck_assert_int_ge(lv, 0);
    size_t slen_at = r->kv_off[lv] + 4 + 21 + 4;
    const uint32_t sls[] = {4097, 0xffffffffu};
    for (size_t i = 0; i < 2; i++) {
        b = dup_bytes(r->b, r->len);
        wr32(b + slen_at, sls[i]);
        fix_meta(b, r);
        snprintf(label, sizeof label, "library_version length = %u",
                 (unsigned)sls[i]);
        run_case(ty, r, label, b, r->len, E_FMT, "string length", NULL);
        free(b);
    }
    b = dup_bytes(r->b, r->len);
    wr32(b + slen_at, 4096); /* in bounds, but runs past data_offset */
    fix_meta(b, r);
    run_case(ty, r, "library_version length = 4096 in place", b, r->len,
             E_FMT, "past", NULL);
    free(b);

    /* rebuilt: keys and strings at their length bounds */
    char big[4097];
    memset(big, '~', sizeof big);
    const size_t klens[] = {1, 255, 256};
    for (size_t i = 0; i < 3; i++) {
        build *bd = build_ref(r, NULL);
        memset(key, 'k', sizeof key);
        memcpy(key, "host.", klens[i] < 5 ? klens[i] : 5);
        uint8_t v[4] = {0};
        kv_raw(&bd->meta, key, klens[i], 2, v, 4);
        bd->n_kv++;
        b = build_bytes(bd, &len);
        snprintf(label, sizeof label, "unknown key of %zu bytes", klens[i]);
        run_case(ty, r, label, b, len, klens[i] <= 255 ? E_OK : E_FMT,
                 klens[i] <= 255 ? NULL : "key length", NULL);
        free(b);
        build_free(bd);
    }
    const size_t slens[] = {0, 4096, 4097};
    for (int which = 0; which < 2; which++)
        for (size_t i = 0; i < 3; i++) {
            const char *k = which ? "iadsr.library_version" : "host.text";
            build *bd = build_ref(r, which ? k : NULL);
            kv_str(&bd->meta, k, big, slens[i]);
            bd->n_kv++;
            b = build_bytes(bd, &len);
            snprintf(label, sizeof label, "%s of %zu bytes", k, slens[i]);
            run_case(ty, r, label, b, len, slens[i] <= 4096 ? E_OK : E_FMT,
                     slens[i] <= 4096 ? NULL : "string length", NULL);
            free(b);
            build_free(bd);
        }
    /* key bytes: printable ASCII without space, 0x21..0x7e */
    const uint8_t kb[] = {0x21, 0x7e, 0x20, 0x7f, 0x80, 0xff, 0x00, 0x0a};
    for (size_t i = 0; i < sizeof kb; i++) {
        build *bd = build_ref(r, NULL);
        uint8_t k[8] = {'h', 'o', 's', 't', '.', 'x', 'x', 'x'};
        k[6] = kb[i];
        uint8_t v[4] = {0};
        kv_raw(&bd->meta, k, 8, 2, v, 4);
        bd->n_kv++;
        b = build_bytes(bd, &len);
        int ok = kb[i] >= 0x21 && kb[i] <= 0x7e;
        snprintf(label, sizeof label, "key byte 0x%02x", (unsigned)kb[i]);
        run_case(ty, r, label, b, len, ok ? E_OK : E_FMT,
                 ok ? NULL : "printable", NULL);
        free(b);
        build_free(bd);
    }
    /* no keys at all */
    {
        build *bd = build_ref(r, NULL);
        free(bd->meta.p);
        memset(&bd->meta, 0, sizeof bd->meta);
        bd->n_kv = 0;
        b = build_bytes(bd, &len);
        run_case(ty, r, "n_kv = 0 (no metadata)", b, len, E_FMT,
                 "required metadata key", NULL);
        free(b);
        build_free(bd);
    }
    /* every key: missing, duplicated, with another type */
    for (uint32_t i = 0; i < r->n_kv; i++) {
        kv_key(r, i, key, sizeof key);
        int optional = strcmp(key, "iadsr.epochs_trained") == 0 ||
                       strcmp(key, "iadsr.best_valid_ndcg10") == 0 ||
                       strcmp(key, "iadsr.library_version") == 0;
        build *bd = build_ref(r, key);
        b = build_bytes(bd, &len);
        snprintf(label, sizeof label, "%s missing", key);
        run_case(ty, r, label, b, len, optional ? E_OK : E_FMT,
                 optional ? NULL : key, NULL);
        free(b);
        build_free(bd);

        bd = build_ref(r, NULL);
        b_put(&bd->meta, r->b + r->kv_off[i], r->kv_len[i]);
        bd->n_kv++;
        b = build_bytes(bd, &len);
        snprintf(label, sizeof label, "%s twice", key);
        run_case(ty, r, label, b, len, E_FMT, "twice", NULL);
        free(b);
        build_free(bd);

        uint32_t t = kv_type(r, i), nt;
        switch (t) {
        case 1: nt = 2; break;
        case 2: nt = 1; break;
        case 3: nt = 4; break;
        case 4: nt = 3; break;
        case 5: nt = 1; break;
        default: nt = 2; break;
        }
        uint8_t v[8] = {0};
        size_t vl = nt == 3 || nt == 4 ? 8 : 4;
        size_t old_vl = t == 3 || t == 4 ? 8 : t == 6 ? 0 : 4;
        if (old_vl == vl)
            memcpy(v, r->b + r->kv_off[i] + r->kv_len[i] - vl, vl);
        b = with_key(r, key, nt, v, vl, &len);
        snprintf(label, sizeof label, "%s with type %u instead of %u", key,
                 (unsigned)nt, (unsigned)t);
        run_case(ty, r, label, b, len, E_FMT, key, NULL);
        free(b);
    }
}

START_TEST(test_cat_metadata)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "metadata entries and values at bounds (%s)",
                   r->label);
        entry_cases(&ty, r);
        value_cases(&ty, r);
        component_key_cases(&ty, r);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 3. directory shapes against the hyper-parameters ------------------- */

/* A field of entry @p i patched in place (directory CRC recomputed). */
static void ent_case(tally *ty, const cref *r, uint32_t i, int f, int wide,
                     uint64_t v, int want, const char *msg, const char *what)
{
    uint8_t *b = dup_bytes(r->b, r->len);
    if (wide)
        wr64(b + ent_at(r, i, f), v);
    else
        wr32(b + ent_at(r, i, f), (uint32_t)v);
    fix_dir(b, r);
    char label[160];
    snprintf(label, sizeof label, "tensor %u '%s': %s", (unsigned)i,
             r->t[i].name, what);
    run_case(ty, r, label, b, r->len, want, msg, NULL);
    free(b);
}

static void shape_cases(tally *ty, const cref *r)
{
    char what[96], label[160];
    size_t len;
    uint8_t *b;
    for (uint32_t i = 0; i < r->n_tensors; i++) {
        const rtensor *t = &r->t[i];
        const char *nm = t->name;
        int two = t->n_dims == 2;
        /* dims: rows and cols off by one, zero, huge, transposed */
        int fc = two ? F_DIM1 : F_DIM0;
        const uint64_t cols[] = {t->cols + 1, t->cols - 1, 0,
                                 (uint64_t)1 << 62, UINT64_MAX};
        for (size_t k = 0; k < 5; k++) {
            snprintf(what, sizeof what, "cols = %llu",
                     (unsigned long long)cols[k]);
            ent_case(ty, r, i, fc, 1, cols[k], E_FMT, nm, what);
        }
        if (two) {
            const uint64_t rows[] = {t->rows + 1, t->rows - 1, 0,
                                     (uint64_t)1 << 62};
            for (size_t k = 0; k < 4; k++) {
                snprintf(what, sizeof what, "rows = %llu",
                         (unsigned long long)rows[k]);
                ent_case(ty, r, i, F_DIM0, 1, rows[k], E_FMT, nm, what);
            }
            if (t->rows != t->cols) {
                b = dup_bytes(r->b, r->len);
                wr64(b + ent_at(r, i, F_DIM0), t->cols);
                wr64(b + ent_at(r, i, F_DIM1), t->rows);
                fix_dir(b, r);
                snprintf(label, sizeof label, "tensor %u '%s' transposed",
                         (unsigned)i, nm);
                run_case(ty, r, label, b, r->len, E_FMT, nm, NULL);
                free(b);
            }
        }
        /* nbytes must be rows * cols * 4 */
        const uint64_t nbs[] = {t->nbytes + 4, t->nbytes - 4, 0,
                                t->nbytes + r->alignment, UINT64_MAX};
        for (size_t k = 0; k < 5; k++) {
            snprintf(what, sizeof what, "nbytes = %llu",
                     (unsigned long long)nbs[k]);
            ent_case(ty, r, i, F_NBYTES, 1, nbs[k], E_FMT, nm, what);
        }
        /* dtype must be 1 (f32) */
        const uint64_t dts[] = {0, 2, 3, 0xffffffffu};
        for (size_t k = 0; k < 4; k++) {
            snprintf(what, sizeof what, "dtype = %llu",
                     (unsigned long long)dts[k]);
            ent_case(ty, r, i, F_DTYPE, 0, dts[k], E_FMT, "dtype", what);
        }
        /* n_dims 1..2 and name_len 1..47 (structure); off by one shifts
         * the entry: the oracle judges */
        const uint64_t nds[] = {0, 3, 0xffffffffu};
        for (size_t k = 0; k < 3; k++) {
            snprintf(what, sizeof what, "n_dims = %llu",
                     (unsigned long long)nds[k]);
            ent_case(ty, r, i, F_NDIMS, 0, nds[k], E_FMT, "n_dims", what);
        }
        ent_case(ty, r, i, F_NDIMS, 0, two ? 1 : 2, WANT_ORACLE, NULL,
                 "n_dims flipped in place");
        const uint64_t nls[] = {0, 48, 0xffffffffu};
        for (size_t k = 0; k < 3; k++) {
            snprintf(what, sizeof what, "name_len = %llu",
                     (unsigned long long)nls[k]);
            ent_case(ty, r, i, F_NAMELEN, 0, nls[k], E_FMT, "name length",
                     what);
        }
        ent_case(ty, r, i, F_NAMELEN, 0, strlen(nm) + 1, WANT_ORACLE, NULL,
                 "name_len + 1");
        ent_case(ty, r, i, F_NAMELEN, 0, strlen(nm) - 1, WANT_ORACLE, NULL,
                 "name_len - 1");
        /* another name of the same length: first and last byte */
        for (int end = 0; end < 2; end++) {
            b = dup_bytes(r->b, r->len);
            b[ent_at(r, i, F_NAME) + (end ? strlen(nm) - 1 : 0)] ^= 0x01;
            fix_dir(b, r);
            snprintf(label, sizeof label, "tensor %u '%s': %s name byte "
                     "changed",
                     (unsigned)i, nm, end ? "last" : "first");
            run_case(ty, r, label, b, r->len, E_FMT, nm, NULL);
            free(b);
        }

        /* rebuilt with another number of dimensions: [n] == [1, n] */
        for (int v = 0; v < 2; v++) {
            build *bd = build_ref(r, NULL);
            tent *e = &bd->t[i];
            int want;
            if (!two) {
                e->n_dims = 2;
                e->dims[0] = v ? t->cols : 1; /* [n, 1] or [1, n] */
                e->dims[1] = v ? 1 : t->cols;
                want = v && t->cols != 1 ? E_FMT : E_OK;
                snprintf(label, sizeof label, "tensor %u '%s' as [%s]",
                         (unsigned)i, nm, v ? "n, 1" : "1, n");
            } else {
                e->n_dims = v ? 2 : 1;
                e->dims[0] = v ? 1 : t->rows * t->cols;
                e->dims[1] = t->rows * t->cols;
                want = E_FMT;
                snprintf(label, sizeof label, "tensor %u '%s' flattened %s",
                         (unsigned)i, nm, v ? "to [1, r*c]" : "to [r*c]");
            }
            b = build_bytes(bd, &len);
            run_case(ty, r, label, b, len, want, want ? nm : NULL, NULL);
            free(b);
            build_free(bd);
        }
        /* dropped; swapped with the next one */
        build *bd = build_ref(r, NULL);
        memmove(&bd->t[i], &bd->t[i + 1],
                (size_t)(bd->n_t - (int)i - 1) * sizeof bd->t[0]);
        bd->n_t--;
        b = build_bytes(bd, &len);
        snprintf(label, sizeof label, "tensor %u '%s' dropped", (unsigned)i,
                 nm);
        run_case(ty, r, label, b, len, E_FMT, "tensors", NULL);
        free(b);
        build_free(bd);
        if (i + 1 < r->n_tensors) {
            bd = build_ref(r, NULL);
            tent tmp = bd->t[i];
            bd->t[i] = bd->t[i + 1];
            bd->t[i + 1] = tmp;
            b = build_bytes(bd, &len);
            snprintf(label, sizeof label, "tensors %u and %u swapped",
                     (unsigned)i, (unsigned)i + 1);
            run_case(ty, r, label, b, len, E_FMT, nm, NULL);
            free(b);
            build_free(bd);
        }
    }
    /* one tensor too many: a copy of the last, or an unknown one */
    for (int v = 0; v < 2; v++) {
        build *bd = build_ref(r, NULL);
        bd->t[bd->n_t] = bd->t[bd->n_t - 1];
        if (v) {
            snprintf(bd->t[bd->n_t].name, sizeof bd->t[0].name, "extra.w");
            bd->t[bd->n_t].name_len = 7;
        }
        bd->n_t++;
        b = build_bytes(bd, &len);
        run_case(ty, r, v ? "an unknown extra tensor" : "last tensor twice",
                 b, len, E_FMT, "tensors", NULL);
        free(b);
        build_free(bd);
    }
}

START_TEST(test_cat_shapes)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "directory shapes vs hyper-parameters (%s, %u "
                   "tensors)",
                   r->label, (unsigned)r->n_tensors);
        shape_cases(&ty, r);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 4. overlapping and out-of-file tensor ranges ----------------------- */

static void range_case(tally *ty, const cref *r, uint32_t i, uint64_t off,
                       uint64_t nb, const char *what)
{
    uint8_t *b = dup_bytes(r->b, r->len);
    wr64(b + ent_at(r, i, F_OFF), off);
    wr64(b + ent_at(r, i, F_NBYTES), nb);
    fix_tensor(b, r->len, r, i, off, nb);
    fix_dir(b, r);
    char label[200];
    snprintf(label, sizeof label, "tensor %u '%s' %s (offset %llu, nbytes "
             "%llu)",
             (unsigned)i, r->t[i].name, what, (unsigned long long)off,
             (unsigned long long)nb);
    run_case(ty, r, label, b, r->len, E_FMT, r->t[i].name, NULL);
    free(b);
}

static void range_cases(tally *ty, const cref *r)
{
    uint64_t data_len = r->len - r->data_offset, al = r->alignment;
    char label[160];
    for (uint32_t i = 0; i < r->n_tensors; i++) {
        const rtensor *t = &r->t[i];
        uint64_t off = t->off, nb = t->nbytes;
        if (i > 0) {
            const rtensor *p = &r->t[i - 1];
            uint64_t prev_end = p->off + p->nbytes;
            range_case(ty, r, i, p->off, nb, "on the previous tensor");
            range_case(ty, r, i, prev_end - 4, nb, "overlapping the previous");
            if (prev_end >= al)
                range_case(ty, r, i, (prev_end - al) & ~(al - 1), nb,
                           "aligned inside the previous");
        }
        range_case(ty, r, i, off + al, nb, "after a hole");
        range_case(ty, r, i, off + 4, nb, "misaligned");
        range_case(ty, r, i, data_len, nb, "at the end of the file");
        range_case(ty, r, i, data_len - nb + 4, nb, "across the end");
        range_case(ty, r, i, (data_len + al) & ~(al - 1), nb,
                   "past the end");
        range_case(ty, r, i, UINT64_MAX - nb + 1, nb, "wrapping around");
        range_case(ty, r, i, UINT64_MAX - 3, nb, "at 2^64 - 4");
        range_case(ty, r, i, off, nb + al, "longer, into the next");
        range_case(ty, r, i, off, data_len - off + 4, "longer than the file");
        range_case(ty, r, i, off, UINT64_MAX, "of 2^64 - 1 bytes");
    }
    /* a header consistent with a shorter file: the tensors do not fit */
    const uint64_t last_nb = r->t[r->n_tensors - 1].nbytes;
    const uint64_t cuts[] = {4, last_nb, data_len};
    for (size_t k = 0; k < 3; k++) {
        size_t n = r->len - (size_t)cuts[k];
        uint8_t *b = dup_bytes(r->b, n);
        wr64(b + H_FSIZE, n);
        fix_hdr(b);
        snprintf(label, sizeof label, "file cut by %llu bytes, file_size "
                 "adjusted",
                 (unsigned long long)cuts[k]);
        run_case(ty, r, label, b, n, E_FMT, "past the end", NULL);
        free(b);
    }
    /* ... and with a longer file: bytes after the last tensor */
    const size_t extra[] = {1, 4, 64, 4096};
    for (size_t k = 0; k < 4; k++)
        for (int fill = 0; fill < 2; fill++) {
            size_t n = r->len + extra[k];
            uint8_t *b = malloc(n);
            ck_assert_ptr_nonnull(b);
            memcpy(b, r->b, r->len);
            memset(b + r->len, fill ? 0xa5 : 0, extra[k]);
            wr64(b + H_FSIZE, n);
            fix_hdr(b);
            snprintf(label, sizeof label, "%zu %s bytes after the last "
                     "tensor, file_size adjusted",
                     extra[k], fill ? "non-zero" : "zero");
            run_case(ty, r, label, b, n, E_FMT, "follow the last", NULL);
            free(b);
        }
    /* the data section moved: padding before it, or every tensor shifted
     * by one alignment unit (a hole before tensor 0) */
    for (int v = 0; v < 2; v++) {
        size_t n = r->len + (size_t)al;
        uint8_t *b = calloc(1, n);
        ck_assert_ptr_nonnull(b);
        memcpy(b, r->b, (size_t)r->data_offset);
        memcpy(b + r->data_offset + al, r->b + r->data_offset,
               (size_t)data_len);
        wr64(b + H_FSIZE, n);
        if (v == 0) {
            wr64(b + H_DOFF, r->data_offset + al);
        } else {
            for (uint32_t i = 0; i < r->n_tensors; i++)
                wr64(b + ent_at(r, i, F_OFF), r->t[i].off + al);
            fix_dir(b, r);
        }
        fix_hdr(b);
        run_case(ty, r,
                 v ? "every tensor shifted by the alignment"
                   : "data_offset one alignment unit late",
                 b, n, E_FMT, v ? r->t[0].name : "data_offset", NULL);
        free(b);
    }
}

START_TEST(test_cat_ranges)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "overlapping and out-of-file ranges (%s)", r->label);
        range_cases(&ty, r);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 5. non-finite (and finite special) weights in every tensor --------- */

START_TEST(test_cat_nonfinite)
{
    TEST_FAILS_DECL;
    /* NaN payloads of both signs, quiet and signalling, infinities */
    static const uint32_t bad[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u,
                                   0x7fffffffu, 0xffffffffu, 0x7f800000u,
                                   0xff800000u};
    /* finite extremes: denormals, -0, FLT_MIN, FLT_MAX */
    static const uint32_t good[] = {0x00000001u, 0x807fffffu, 0x80000000u,
                                    0x00800000u, 0x7f7fffffu, 0xff7fffffu};
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "non-finite and extreme weights in every tensor "
                   "(%s)",
                   r->label);
        char label[160], msg[96];
        for (uint32_t i = 0; i < r->n_tensors; i++) {
            const rtensor *t = &r->t[i];
            size_t n = (size_t)(t->rows * t->cols);
            const size_t pos[3] = {0, n / 2, n - 1};
            for (int p = 0; p < 3; p++) {
                if (p > 0 && pos[p] == pos[p - 1])
                    continue;
                size_t at = (size_t)r->data_offset + (size_t)t->off +
                            4 * pos[p];
                for (size_t k = 0; k < sizeof bad / sizeof bad[0] +
                                           sizeof good / sizeof good[0];
                     k++) {
                    int is_bad = k < sizeof bad / sizeof bad[0];
                    uint32_t v = is_bad ? bad[k]
                                        : good[k - sizeof bad / sizeof bad[0]];
                    uint8_t *b = dup_bytes(r->b, r->len);
                    wr32(b + at, v);
                    fix_tensor(b, r->len, r, i, t->off, t->nbytes);
                    fix_dir(b, r);
                    snprintf(label, sizeof label, "'%s' element %zu = 0x%08x",
                             t->name, pos[p], (unsigned)v);
                    snprintf(msg, sizeof msg, "tensor '%s' element %zu (",
                             t->name, pos[p]);
                    okx ox = {(int)i, pos[p], v};
                    run_case(&ty, r, label, b, r->len, is_bad ? E_NUM : E_OK,
                             is_bad ? msg : NULL, &ox);
                    free(b);
                }
            }
        }
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 6. future versions and features ------------------------------------ */

static void version_cases(tally *ty, const cref *r)
{
    char label[160];
    size_t len;
    uint8_t *b;
    /* another major: VERSION, even when nothing else is readable */
    const uint32_t majors[] = {0, 2, 3, 0x10000u, 0xffffffffu};
    for (size_t i = 0; i < 5; i++) {
        hdr_case(ty, r, H_MAJOR, majors[i], E_VER, "version");
        /* a 2.x header of another size, its CRC unknown */
        b = dup_bytes(r->b, r->len);
        wr32(b + H_MAJOR, majors[i]);
        wr32(b + H_HSIZE, 128);
        memset(b + 20, 0xa5, 44);
        snprintf(label, sizeof label, "major %u with a foreign header",
                 (unsigned)majors[i]);
        run_case(ty, r, label, b, r->len, E_VER, "version", NULL);
        free(b);
        for (size_t n = 16; n <= 64; n += 48) {
            b = dup_bytes(r->b, n);
            wr32(b + H_MAJOR, majors[i]);
            snprintf(label, sizeof label, "major %u in %zu bytes",
                     (unsigned)majors[i], n);
            run_case(ty, r, label, b, n, E_VER, "version", NULL);
            free(b);
        }
    }
    /* too short to hold the major: FORMAT whatever it says */
    for (size_t n = 12; n < 16; n++) {
        b = dup_bytes(r->b, n);
        wr32(b + H_MAJOR, 2);
        snprintf(label, sizeof label, "major 2 in %zu bytes", n);
        run_case(ty, r, label, b, n, E_FMT, "truncated", NULL);
        free(b);
    }
    /* a newer minor of major 1 loads */
    const uint32_t minors[] = {3, 4, 99, 0xffffu, 0xffffffffu};
    for (size_t i = 0; i < 5; i++)
        hdr_case(ty, r, H_MINOR, minors[i], E_OK, NULL);
    /* required features of later versions: every unknown bit */
    for (int bit = 3; bit < 32; bit++)
        hdr_case(ty, r, H_REQ, r->required | (1u << bit), E_UNS, "required");
    /* bit 2 (1.4, item ids) is known: without iadsr.item_id_bytes the
     * header contradicts the metadata */
    hdr_case(ty, r, H_REQ, r->required | 4u, E_FMT, "iadsr.item_id_bytes");
    /* other kinds of file */
    const uint32_t kinds[] = {2, 3, 0x100u};
    for (size_t i = 0; i < 3; i++)
        hdr_case(ty, r, H_KIND, kinds[i], E_UNS, "kind");
    /* keys of later versions are skipped, whatever their (known) type */
    const uint8_t val[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (uint32_t type = 1; type <= 6; type++) {
        char key[64];
        snprintf(key, sizeof key, "iadsr.future_key_%u", (unsigned)type);
        if (type == 6) {
            build *bd = build_ref(r, NULL);
            kv_str(&bd->meta, key, "later", 5);
            bd->n_kv++;
            b = build_bytes(bd, &len);
            build_free(bd);
        } else {
            b = with_key(r, key, type, val, type == 3 || type == 4 ? 8 : 4,
                         &len);
        }
        snprintf(label, sizeof label, "unknown key of type %u", (unsigned)type);
        run_case(ty, r, label, b, len, E_OK, NULL, NULL);
        free(b);
    }
    /* ... but not a type code of a later version (its size is unknown) */
    const uint32_t types[] = {0, 7, 16, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        b = with_key(r, "iadsr.future_key", types[i], val, 4, &len);
        snprintf(label, sizeof label, "unknown key with type code %u",
                 (unsigned)types[i]);
        run_case(ty, r, label, b, len, E_FMT, "type", NULL);
        free(b);
    }
    /* flags of later versions */
    for (uint32_t bit = 1; bit < 32; bit += 15) {
        uint32_t mf = (r->required & 1u) | (1u << bit);
        meta_case(ty, r, "iadsr.model_flags", 2, mf, E_UNS, "model_flags");
    }
    if (r->g) {
        /* bits 3 (the detector) to 6 (how it was trained) are known:
         * 7..31 */
        for (uint32_t bit = 7; bit < 32; bit += 24)
            meta_case(ty, r, "iadsr.gate_flags", 2, 1u << bit, E_UNS, "flags");
        /* the detector bit gained (or lost) by a metadata edit: gate.det
         * is missing (or left over) */
        meta_case(ty, r, "iadsr.gate_flags", 2,
                  r->g->p.flags ^ IADSR_DENOISE_F_DETECT, E_FMT, "'gate.det'");
    }
    /* a dtype of a later version without a required bit, and the item
     * ids' dtypes (1.4) on weight tensors */
    const uint32_t ends[2] = {0, r->n_tensors - 1};
    for (int k = 0; k < 2; k++) {
        ent_case(ty, r, ends[k], F_DTYPE, 0, 2, E_FMT, "dtype",
                 "dtype 2 (u8) on a weight tensor");
        ent_case(ty, r, ends[k], F_DTYPE, 0, 3, E_FMT, "dtype",
                 "dtype 3 (u64) on a weight tensor");
        ent_case(ty, r, ends[k], F_DTYPE, 0, 4, E_FMT, "dtype",
                 "dtype 4 (a later dtype)");
    }
    /* a backbone number not defined in this version */
    meta_case(ty, r, "iadsr.backbone", 1, 4, E_FMT, "backbone");
}

START_TEST(test_cat_versions)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "future versions and features (%s)", r->label);
        version_cases(&ty, r);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 7. every prefix truncation ----------------------------------------- */

START_TEST(test_cat_truncations)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "prefix truncations (%s, %zu bytes)", r->label,
                   r->len);
        char label[64];
        for (size_t n = 0; n < r->len; n++) {
            uint8_t *b = dup_bytes(r->b, n);
            snprintf(label, sizeof label, "prefix of %zu bytes", n);
            run_case(&ty, r, label, b, n, E_FMT, NULL, NULL);
            free(b);
        }
        /* and the other way: trailing bytes */
        const size_t extra[] = {1, 8, 64};
        for (size_t k = 0; k < 3; k++) {
            uint8_t *b = calloc(1, r->len + extra[k]);
            ck_assert_ptr_nonnull(b);
            memcpy(b, r->b, r->len);
            snprintf(label, sizeof label, "%zu trailing bytes", extra[k]);
            run_case(&ty, r, label, b, r->len + extra[k], E_FMT, "trailing",
                     NULL);
            free(b);
        }
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 8. every single-byte flip ------------------------------------------ */

/* Every byte is covered by a CRC or a must-be-zero rule (FORMAT.md §7), so
 * every flip must be rejected; the oracle gives the specific status. */
START_TEST(test_cat_byte_flips)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "byte flips (%s, %zu bytes)", r->label, r->len);
        ty.must_reject = 1;
        uint8_t *b = dup_bytes(r->b, r->len);
        char label[64];
        for (size_t i = 0; i < r->len; i++) {
            b[i] ^= 0xff;
            snprintf(label, sizeof label, "byte %zu ^ 0xff", i);
            run_case(&ty, r, label, b, r->len, WANT_ORACLE, NULL, NULL);
            b[i] ^= 0xff;
        }
        free(b);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- 9. a sample through the file loaders ------------------------------- */

START_TEST(test_cat_file_path)
{
    TEST_FAILS_DECL;
    FOR_EACH_REF(r)
    {
        tally ty;
        tally_init(&ty, "file loaders, sample of every status (%s)",
                   r->label);
        uint32_t last = r->n_tensors - 1;
        size_t len = r->len, l2;
        uint8_t *b;

        run_file_case(&ty, r, "the reference", r->b, len, E_OK, NULL);
        run_file_case(&ty, r, "empty file", r->b, 0, E_FMT, NULL);

        b = dup_bytes(r->b, len);
        b[1] = 'i';
        run_file_case(&ty, r, "signature", b, len, E_FMT, "signature");
        memcpy(b, r->b, len);
        wr32(b + H_MAJOR, 2);
        fix_hdr(b);
        run_file_case(&ty, r, "major 2", b, len, E_VER, "version");
        memcpy(b, r->b, len);
        b[H_CRC] ^= 1;
        run_file_case(&ty, r, "header CRC", b, len, E_SUM, "header checksum");
        memcpy(b, r->b, len);
        wr32(b + H_KIND, 2);
        fix_hdr(b);
        run_file_case(&ty, r, "kind 2", b, len, E_UNS, "kind");
        memcpy(b, r->b, len);
        wr32(b + H_REQ, r->required | 0x20u);
        fix_hdr(b);
        run_file_case(&ty, r, "required bit 5", b, len, E_UNS, "required");
        memcpy(b, r->b, len);
        b[r->meta_end - 1] ^= 0x10;
        run_file_case(&ty, r, "metadata CRC", b, len, E_SUM, "metadata");
        memcpy(b, r->b, len);
        b[r->dir_crc_at - 1] ^= 0x10;
        run_file_case(&ty, r, "directory CRC", b, len, E_SUM, "directory");
        memcpy(b, r->b, len);
        b[len - 1] ^= 0x40;
        run_file_case(&ty, r, "last tensor data", b, len, E_SUM,
                      r->t[last].name);
        memcpy(b, r->b, len);
        wr32(b + r->data_offset + r->t[last].off, 0x7fc00000u);
        fix_tensor(b, len, r, last, r->t[last].off, r->t[last].nbytes);
        fix_dir(b, r);
        run_file_case(&ty, r, "NaN weight", b, len, E_NUM, r->t[last].name);
        memcpy(b, r->b, len);
        wr64(b + ent_at(r, 0, F_OFF), r->alignment);
        fix_dir(b, r);
        run_file_case(&ty, r, "tensor 0 offset", b, len, E_FMT,
                      r->t[0].name);
        run_file_case(&ty, r, "truncated by one byte", r->b, len - 1, E_FMT,
                      "truncated");
        free(b);

        uint8_t v[4];
        wr32(v, 13);
        b = with_key(r, "iadsr.n_items", 1, v, 4, &l2);
        run_file_case(&ty, r, "n_items 13", b, l2, E_FMT, "item_emb");
        free(b);
        wr32(v, 0);
        b = with_key(r, "iadsr.dim", 1, v, 4, &l2);
        run_file_case(&ty, r, "dim 0", b, l2, E_FMT, "dim");
        free(b);
        tally_done(&ty, &fails, first, sizeof first);
    }
    TEST_FAILS_CHECK;
}
END_TEST

/* ---- format 1.4: the item ids and the history-repeat record ------------
 * Files are built here from FORMAT.md §4.6 and §6.2: the bytes of a small
 * model written by the library without ids (1.0), plus the 1.4 keys after
 * its keys and the two item_ids tensors after its tensors, with every
 * size, offset and CRC recomputed; each field can be set to a wrong value.
 * The valid file must equal the library's own bytes for the same ids. */

#define IDS_N 4

typedef struct idspec {
    int key;             /* write iadsr.item_id_bytes */
    uint32_t key_type;   /* 4 (u64) */
    uint64_t key_val;
    int req_bit;         /* required_flags bit 2 */
    uint32_t req_extra;  /* more required bits */
    int tensors;         /* 0: none, 1: both, 2: offsets only */
    uint32_t off_dtype, raw_dtype;
    uint64_t off_n;      /* elements of item_ids.offsets */
    uint64_t off[16];
    const char *raw;     /* item_ids.bytes */
    uint64_t raw_n;
    int rep;             /* write iadsr.history_repeats */
    uint32_t rep_type;
    uint32_t rep_val;
    int bad_crc;         /* corrupt the bytes tensor's CRC */
} idspec;

/* "a", "bb", "ccc", "dd": offsets 0 1 3 6 8 */
static void idspec_valid(idspec *sp)
{
    static const uint64_t off[IDS_N + 1] = {0, 1, 3, 6, 8};
    memset(sp, 0, sizeof *sp);
    sp->key = 1;
    sp->key_type = 4;
    sp->key_val = 8;
    sp->req_bit = 1;
    sp->tensors = 1;
    sp->off_dtype = 3;
    sp->raw_dtype = 2;
    sp->off_n = IDS_N + 1;
    memcpy(sp->off, off, sizeof off);
    sp->raw = "abbcccdd";
    sp->raw_n = 8;
    sp->rep_type = 1;
}

static iadsr_model *ids_base_model(void)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = IDS_N;
    p.dim = 4;
    p.max_seq_len = 3;
    p.n_layers = 1;
    p.n_heads = 1;
    iadsr_model *m = NULL;
    ck_assert_int_eq(iadsr_model_create(&m, &p), IADSR_OK);
    return m;
}

static void ids_tensor(bytes *dir, bytes *data, const char *name,
                       uint32_t dtype, uint64_t n, const void *raw, size_t nb,
                       int bad_crc)
{
    while (data->len % 64)
        b_put(data, "", 1);
    size_t off = data->len;
    b_put(data, raw, nb);
    b_u32(dir, (uint32_t)strlen(name));
    b_put(dir, name, strlen(name));
    b_u32(dir, dtype);
    b_u32(dir, 1);
    b_u64(dir, n);
    b_u64(dir, off);
    b_u64(dir, nb);
    b_u32(dir, crc_of(data->p + off, nb) ^ (bad_crc ? 1u : 0u));
}

static uint8_t *ids_build(const idspec *sp, size_t *out_len)
{
    iadsr_model *m = ids_base_model();
    size_t blen = 0;
    ck_assert_int_eq(iadsr_model_save_to_buffer(m, NULL, 0, &blen), IADSR_OK);
    uint8_t *base = malloc(blen);
    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(iadsr_model_save_to_buffer(m, base, blen, &blen),
                     IADSR_OK);
    iadsr_model_free(m);
    uint32_t n_kv = rd32(base + H_NKV), n_t = rd32(base + H_NT);
    size_t doff = (size_t)rd64(base + H_DOFF), p = HDR;
    for (uint32_t i = 0; i < n_kv; i++) {
        uint32_t kl = rd32(base + p), t;
        p += 4 + kl;
        t = rd32(base + p);
        p += 4;
        p += t == 3 || t == 4 ? 8 : t == 6 ? 4 + rd32(base + p) : 4;
    }
    bytes kv = {0}, dir = {0}, data = {0};
    b_put(&kv, base + HDR, p - HDR);
    p += 4; /* metadata CRC */
    size_t d0 = p;
    for (uint32_t i = 0; i < n_t; i++) {
        uint32_t nl = rd32(base + p);
        p += 4 + nl + 4;
        p += 4 + 8 * (size_t)rd32(base + p) + 20;
    }
    b_put(&dir, base + d0, p - d0);
    b_put(&data, base + doff, blen - doff);
    if (sp->key)
        kv_num(&kv, "iadsr.item_id_bytes", sp->key_type, sp->key_val),
            n_kv++;
    if (sp->rep)
        kv_num(&kv, "iadsr.history_repeats", sp->rep_type, sp->rep_val),
            n_kv++;
    if (sp->tensors) {
        uint8_t ob[16 * 8];
        for (uint64_t i = 0; i < sp->off_n; i++)
            wr64(ob + 8 * i, sp->off[i]);
        /* a wrong dtype keeps the declared element count: nbytes follows
         * the dtype written */
        uint64_t es = sp->off_dtype == 3 ? 8 : sp->off_dtype == 2 ? 1 : 4;
        ids_tensor(&dir, &data, "item_ids.offsets", sp->off_dtype, sp->off_n,
                   ob, (size_t)(sp->off_n * es), 0);
        n_t++;
        if (sp->tensors == 1) {
            uint64_t rs = sp->raw_dtype == 2 ? 1 : sp->raw_dtype == 3 ? 8 : 4;
            bytes rb = {0};
            b_put(&rb, sp->raw, (size_t)sp->raw_n);
            while (rb.len < sp->raw_n * rs)
                b_put(&rb, "", 1);
            ids_tensor(&dir, &data, "item_ids.bytes", sp->raw_dtype,
                       sp->raw_n, rb.p, (size_t)(sp->raw_n * rs),
                       sp->bad_crc);
            free(rb.p);
            n_t++;
        }
    }
    size_t dir_end = HDR + kv.len + 4 + dir.len + 4;
    size_t data_offset = (dir_end + 63) / 64 * 64;
    size_t len = data_offset + data.len;
    uint8_t *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, base, HDR);
    wr32(b + H_MINOR, sp->key || sp->rep || sp->tensors ? 4 : 0);
    wr32(b + H_REQ, (sp->req_bit ? 4u : 0u) | sp->req_extra);
    wr32(b + H_NKV, n_kv);
    wr32(b + H_NT, n_t);
    wr64(b + H_DOFF, data_offset);
    wr64(b + H_FSIZE, len);
    memcpy(b + HDR, kv.p, kv.len);
    wr32(b + HDR + kv.len, crc_of(kv.p, kv.len));
    memcpy(b + HDR + kv.len + 4, dir.p, dir.len);
    wr32(b + HDR + kv.len + 4 + dir.len, crc_of(dir.p, dir.len));
    memcpy(b + data_offset, data.p, data.len);
    fix_hdr(b);
    free(kv.p);
    free(dir.p);
    free(data.p);
    free(base);
    *out_len = len;
    return b;
}

/* Load @p sp's file through both loaders: @p want (and a message holding
 * @p needle), NULL outputs on failure, no leaked block. Returns the number
 * of failed expectations (printed). */
static int ids_case(const char *label, const idspec *sp, int want,
                    const char *needle)
{
    size_t len;
    uint8_t *b = ids_build(sp, &len);
    int fails = 0;
    for (int via = 0; via < 2; via++) {
        long live = iadsr__alloc_live();
        iadsr_model *m = (iadsr_model *)(uintptr_t)0x1;
        iadsr_aligner *a = (iadsr_aligner *)(uintptr_t)0x1;
        iadsr_gate *g = (iadsr_gate *)(uintptr_t)0x1;
        int rc = via == 0
                     ? iadsr_model_load_from_buffer(&m, b, len, 0)
                     : iadsr_checkpoint_load_from_buffer(&m, &a, &g, b, len,
                                                         0);
        char err[1024];
        snprintf(err, sizeof err, "%s", iadsr_last_error());
        if (rc != want) {
            fprintf(stderr, "ids case '%s' (loader %d): %s, expected %s (%s)\n",
                    label, via, iadsr_status_name(rc), iadsr_status_name(want),
                    err);
            fails++;
        } else if (rc != IADSR_OK && needle && !strstr(err, needle)) {
            fprintf(stderr, "ids case '%s': message '%s' lacks '%s'\n", label,
                    err, needle);
            fails++;
        }
        if (rc != IADSR_OK) {
            if (m != NULL || (via == 1 && (a != NULL || g != NULL))) {
                fprintf(stderr, "ids case '%s': outputs not NULL\n", label);
                fails++;
            }
        } else {
            if (sp->tensors == 1 && strcmp(sp->raw, "abbcccdd") == 0 &&
                (iadsr_model_item_index(m, "ccc") != 3 ||
                 strcmp(iadsr_model_item_id(m, 4), "dd") != 0)) {
                fprintf(stderr, "ids case '%s': wrong ids loaded\n", label);
                fails++;
            }
            iadsr_model_free(m);
            if (via == 1) {
                iadsr_aligner_free(a);
                iadsr_gate_free(g);
            }
        }
        if (iadsr__alloc_live() != live) {
            fprintf(stderr, "ids case '%s': %ld blocks leaked\n", label,
                    iadsr__alloc_live() - live);
            fails++;
        }
    }
    free(b);
    return fails;
}

START_TEST(test_cat_item_ids)
{
    idspec sp;
    int fails = 0, n = 0;

    /* the valid file is the library's, byte for byte */
    idspec_valid(&sp);
    size_t len;
    uint8_t *b = ids_build(&sp, &len);
    {
        static const char *const ids[IDS_N] = {"a", "bb", "ccc", "dd"};
        iadsr_model *m = ids_base_model(), *w = NULL;
        ck_assert_int_eq(iadsr_model_with_item_ids(&w, m, ids, IDS_N),
                         IADSR_OK);
        size_t wl = 0;
        ck_assert_int_eq(iadsr_model_save_to_buffer(w, NULL, 0, &wl),
                         IADSR_OK);
        ck_assert_uint_eq(wl, len);
        uint8_t *wb = malloc(wl);
        ck_assert_int_eq(iadsr_model_save_to_buffer(w, wb, wl, &wl), IADSR_OK);
        ck_assert_int_eq(memcmp(wb, b, len), 0);
        free(wb);
        iadsr_model_free(w);
        iadsr_model_free(m);
    }
    /* every truncation and single-byte change of it is refused */
    for (size_t k = 0; k < len; k++) {
        uint8_t *t = dup_bytes(b, k);
        iadsr_model *m = NULL;
        ck_assert_int_eq(iadsr_model_load_from_buffer(&m, t, k, 0),
                         IADSR_ERR_FORMAT);
        free(t);
        b[k] ^= 0x41;
        int rc = iadsr_model_load_from_buffer(&m, b, len, 0);
        ck_assert_msg(rc != IADSR_OK, "byte %zu changed: accepted", k);
        b[k] ^= 0x41;
    }
    free(b);

#define CASE(label, want, needle)                                            \
    do {                                                                     \
        fails += ids_case(label, &sp, want, needle);                         \
        n++;                                                                 \
        idspec_valid(&sp);                                                   \
    } while (0)

    idspec_valid(&sp);
    CASE("valid", IADSR_OK, NULL);
    sp.rep = 1;
    CASE("valid with history_repeats 0", IADSR_OK, NULL);
    sp.rep = 1;
    sp.rep_val = 1;
    CASE("valid with history_repeats 1", IADSR_OK, NULL);
    memset(&sp, 0, sizeof sp);
    sp.rep = 1;
    sp.rep_type = 1;
    CASE("history_repeats without ids", IADSR_OK, NULL);
    /* the history record */
    sp.rep = 1;
    sp.rep_val = 2;
    CASE("history_repeats 2", IADSR_ERR_FORMAT, "iadsr.history_repeats = 2");
    sp.rep = 1;
    sp.rep_val = 0xffffffffu;
    CASE("history_repeats -1", IADSR_ERR_FORMAT, "iadsr.history_repeats = -1");
    sp.rep = 1;
    sp.rep_type = 2;
    CASE("history_repeats as u32", IADSR_ERR_FORMAT, "iadsr.history_repeats");
    /* the key, the required bit and the tensors go together */
    sp.req_bit = 0;
    CASE("ids without required bit 2", IADSR_ERR_FORMAT,
         "iadsr.item_id_bytes");
    sp.key = 0;
    CASE("bit 2 without iadsr.item_id_bytes", IADSR_ERR_FORMAT,
         "iadsr.item_id_bytes");
    sp.key = 0;
    sp.req_bit = 0;
    CASE("tensors without key and bit", IADSR_ERR_FORMAT, "item_ids.bytes");
    sp.tensors = 0;
    CASE("key and bit without tensors", IADSR_ERR_FORMAT, "item_ids.offsets");
    sp.tensors = 2;
    CASE("offsets without bytes", IADSR_ERR_FORMAT, NULL);
    sp.key_type = 1;
    CASE("item_id_bytes as i32", IADSR_ERR_FORMAT, "iadsr.item_id_bytes");
    sp.key_val = 3;
    sp.raw_n = 3;
    CASE("item_id_bytes < n_items", IADSR_ERR_FORMAT,
         "iadsr.item_id_bytes = 3");
    sp.key_val = (uint64_t)IDS_N * 1024 + 1;
    CASE("item_id_bytes > n_items * 1024", IADSR_ERR_FORMAT,
         "iadsr.item_id_bytes = 4097");
    sp.req_extra = 8;
    CASE("unknown required bit 3", IADSR_ERR_UNSUPPORTED, "required_flags");
    /* the tensors' directory entries */
    sp.off_dtype = 1;
    CASE("offsets as f32", IADSR_ERR_FORMAT, "item_ids.offsets");
    sp.raw_dtype = 3;
    CASE("bytes as u64", IADSR_ERR_FORMAT, "item_ids.bytes");
    sp.off_n = IDS_N;
    CASE("n_items offsets (count != n_items)", IADSR_ERR_FORMAT,
         "item_ids.offsets");
    sp.off_n = IDS_N + 2;
    sp.off[IDS_N + 1] = 8;
    CASE("n_items + 2 offsets", IADSR_ERR_FORMAT, "item_ids.offsets");
    sp.raw_n = 7;
    CASE("bytes shorter than item_id_bytes", IADSR_ERR_FORMAT,
         "item_ids.bytes");
    sp.bad_crc = 1;
    CASE("bytes CRC", IADSR_ERR_CHECKSUM, "item_ids.bytes");
    /* the offsets' values */
    sp.off[0] = 1;
    CASE("offsets[0] != 0", IADSR_ERR_FORMAT, "item_ids.offsets' element 0");
    sp.off[2] = 0;
    CASE("decreasing offsets", IADSR_ERR_FORMAT,
         "item_ids.offsets' element 2 is 0");
    sp.off[2] = 1;
    CASE("empty id", IADSR_ERR_FORMAT, "the id of item 2 is empty");
    sp.off[3] = 9;
    CASE("offset past item_id_bytes", IADSR_ERR_FORMAT,
         "item_ids.offsets' element 3 is 9");
    sp.off[4] = 7;
    CASE("last offset != item_id_bytes", IADSR_ERR_FORMAT, "ends at 7");
    sp.off[4] = UINT64_MAX;
    CASE("huge offset", IADSR_ERR_FORMAT, "item_ids.offsets");
    /* ids of more than 1024 bytes */
    {
        static char big[1026 + 3];
        memset(big, 'q', sizeof big);
        sp.off_n = 3;
        memset(sp.off, 0, sizeof sp.off);
        /* two items: rebuild with n_items = 4 needs 5 offsets */
        sp.off_n = IDS_N + 1;
        sp.off[1] = 1025;
        sp.off[2] = 1026;
        sp.off[3] = 1027;
        sp.off[4] = 1028;
        sp.raw = big;
        sp.raw_n = 1028;
        sp.key_val = 1028;
        CASE("id of 1025 bytes", IADSR_ERR_FORMAT,
             "the id of item 1 is 1025 bytes long");
        sp.off[1] = 1024;
        sp.off[2] = 1025;
        sp.off[3] = 1026;
        sp.off[4] = 1027;
        sp.raw = big;
        sp.raw_n = 1027;
        sp.key_val = 1027;
        /* 'q' * 1024, 'q', 'q', 'q': items 2..4 are all "q" */
        CASE("id of 1024 bytes, then duplicates", IADSR_ERR_FORMAT,
             "item 3 has the same id as item 2");
    }
    /* the bytes */
    sp.raw = "abbc\0cdd";
    CASE("NUL byte", IADSR_ERR_FORMAT, "item 3 holds a NUL byte at offset 1");
    sp.raw = "abbcc\tdd";
    CASE("TAB byte", IADSR_ERR_FORMAT, "item 3 holds a TAB byte at offset 2");
    sp.raw = "\rbbcccdd";
    CASE("CR byte", IADSR_ERR_FORMAT, "item 1 holds a CR byte");
    sp.raw = "abbcccd\n";
    CASE("LF byte", IADSR_ERR_FORMAT, "item 4 holds a LF byte at offset 1");
    sp.raw = "abbcccbb";
    CASE("duplicate ids", IADSR_ERR_FORMAT,
         "item 4 has the same id as item 2");
    sp.raw = "a\x01\xff" "ccc\x7f" "d";
    CASE("control and high bytes are kept", IADSR_OK, NULL);
#undef CASE
    fprintf(stderr, "checkpoint_malformed: item ids: %d cases, %d failed\n",
            n, fails);
    ck_assert_int_eq(fails, 0);
}
END_TEST

Suite *suite_checkpoint_malformed(void)
{
    Suite *s = suite_create("checkpoint_malformed");
    TCase *tc = tcase_create("malformed checkpoints");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_cat_header_fields);
    tcase_add_test(tc, test_cat_metadata);
    tcase_add_test(tc, test_cat_shapes);
    tcase_add_test(tc, test_cat_ranges);
    tcase_add_test(tc, test_cat_nonfinite);
    tcase_add_test(tc, test_cat_versions);
    tcase_add_test(tc, test_cat_truncations);
    tcase_add_test(tc, test_cat_byte_flips);
    tcase_add_test(tc, test_cat_file_path);
    tcase_add_test(tc, test_cat_item_ids);
    suite_add_tcase(s, tc);
    return s;
}
