/* libiadsr - checkpoint files (format specification: docs/FORMAT.md).
 * SPDX-License-Identifier: MIT
 *
 * Writer: every field is encoded byte by byte in little-endian order (never a
 * struct written as such). Tensor checksums and the finite-weight check are
 * computed in a first pass, then the prelude (header, metadata, directory)
 * and the tensor data are streamed either into the caller's buffer or into a
 * temporary file that is renamed over the target (atomic save).
 *
 * Reader: the input is untrusted. Every count, length and offset is checked
 * with overflow-safe arithmetic against the bytes actually present, every
 * checksum and every weight is verified, and the hyper-parameters and the
 * tensor directory are cross-checked against each other, all before the model
 * is allocated. The validation order is the one documented in FORMAT.md.
 */
#include "format.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- format constants (docs/FORMAT.md) ----------------------------------- */

static const uint8_t SIGNATURE[8] = {0x89, 'I', 'A', 'D', 'S', 'R', '\r', '\n'};

#define HDR_SIZE 64u
#define HDR_OFF_MAJOR 8
#define HDR_OFF_MINOR 12
#define HDR_OFF_HEADER_SIZE 16
#define HDR_OFF_KIND 20
#define HDR_OFF_REQUIRED 24
#define HDR_OFF_OPTIONAL 28
#define HDR_OFF_N_KV 32
#define HDR_OFF_N_TENSORS 36
#define HDR_OFF_ALIGNMENT 40
#define HDR_OFF_DATA_OFFSET 44
#define HDR_OFF_FILE_SIZE 52
#define HDR_OFF_CRC 60

#define KIND_MODEL 1u
/* required_flags bit 0 (format 1.1): the file carries iadsr.model_flags
 * with non-zero IADSR_MODEL_F_* bits that change the architecture, so a
 * 1.0 reader must refuse it rather than misread the tensors. */
#define REQ_MODEL_FLAGS 1u
#define REQUIRED_FLAGS_KNOWN REQ_MODEL_FLAGS
#define MODEL_FLAGS_KNOWN IADSR_MODEL_F_PRE_LN
#define WRITE_ALIGNMENT 64u
#define ALIGN_MIN 8u
#define ALIGN_MAX 4096u
#define MAX_KV 256u
#define MAX_TENSORS 256u /* format limit; >= IADSR__MAX_TENSORS */
#define KEY_LEN_MAX 255u
#define STR_LEN_MAX 4096u
#define NAME_LEN_MAX 47u /* IADSR__TENSOR_NAME_MAX - 1 */
#define MAX_DIMS 2u

#define T_I32 1u
#define T_U32 2u
#define T_I64 3u
#define T_U64 4u
#define T_F32 5u
#define T_STR 6u

#define DTYPE_F32 1u

/* iadsr_model_load() refuses files larger than this (docs/FORMAT.md). */
#define LOAD_MAX_BYTES ((uint64_t)16 << 30)

#define CHUNK_FLOATS 1024
#define STAGE_BYTES ((size_t)1 << 20)

#if IADSR__MAX_TENSORS > 256
#error "the checkpoint format caps n_tensors at 256"
#endif
#if IADSR__TENSOR_NAME_MAX != 48
#error "tensor names are 1..47 bytes in the checkpoint format"
#endif

/* ---- little-endian helpers ---------------------------------------------- */

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)((v >> 8) & 0xffu);
    p[2] = (uint8_t)((v >> 16) & 0xffu);
    p[3] = (uint8_t)((v >> 24) & 0xffu);
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    put_u32le(p, (uint32_t)(v & 0xffffffffu));
    put_u32le(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get_u64le(const uint8_t *p)
{
    return (uint64_t)get_u32le(p) | ((uint64_t)get_u32le(p + 4) << 32);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round @p x up to a multiple of the power of two @p a; 0 on overflow. */
static int align_up_u64(uint64_t x, uint64_t a, uint64_t *out)
{
    if (x > UINT64_MAX - (a - 1))
        return 0;
    *out = (x + (a - 1)) & ~(a - 1);
    return 1;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

/* CRC-32C of the 64 header bytes with the CRC field taken as zero. */
static uint32_t header_crc(const uint8_t *hdr)
{
    uint8_t tmp[HDR_SIZE];
    memcpy(tmp, hdr, HDR_SIZE);
    memset(tmp + HDR_OFF_CRC, 0, 4);
    return iadsr__crc32c(0, tmp, HDR_SIZE);
}

/* ---- metadata keys ------------------------------------------------------- */

enum {
    K_BACKBONE,
    K_N_ITEMS,
    K_DIM,
    K_MAX_SEQ_LEN,
    K_N_LAYERS,
    K_N_HEADS,
    K_FFN_DIM,
    K_ACTIVATION,
    K_DROPOUT,
    K_SEED,
    K_EPOCHS_TRAINED,
    K_BEST_VALID_NDCG10,
    K_LIBRARY_VERSION,
    /* format 1.1: written only when they apply */
    K_MODEL_FLAGS,   /* models with flags */
    K_CASER_WINDOW,  /* Caser models (then all three are required) */
    K_CASER_H,
    K_CASER_V,
    K_COUNT
};

typedef struct key_def {
    const char *key;
    uint32_t type;
    int required;
} key_def;

/* Written in this order; the reader accepts any order. */
static const key_def KEYS[K_COUNT] = {
    {"iadsr.backbone", T_I32, 1},
    {"iadsr.n_items", T_I32, 1},
    {"iadsr.dim", T_I32, 1},
    {"iadsr.max_seq_len", T_I32, 1},
    {"iadsr.n_layers", T_I32, 1},
    {"iadsr.n_heads", T_I32, 1},
    {"iadsr.ffn_dim", T_I32, 1},
    {"iadsr.activation", T_I32, 1},
    {"iadsr.dropout", T_F32, 1},
    {"iadsr.seed", T_U64, 1},
    {"iadsr.epochs_trained", T_I32, 0},
    {"iadsr.best_valid_ndcg10", T_F32, 0},
    {"iadsr.library_version", T_STR, 0},
    {"iadsr.model_flags", T_U32, 0},
    {"iadsr.caser_window", T_I32, 0},
    {"iadsr.caser_h_filters", T_I32, 0},
    {"iadsr.caser_v_filters", T_I32, 0},
};

/* Files of models that need nothing newer are written exactly as 1.0, so
 * that 0.1 readers keep loading them. */
static int needs_1_1(const iadsr_model_params *hp)
{
    return hp->flags != 0 || hp->backbone != IADSR_BACKBONE_SASREC;
}

static uint32_t n_keys_written(const iadsr_model_params *hp)
{
    uint32_t n = K_MODEL_FLAGS; /* the 1.0 keys */
    if (hp->flags)
        n += 1;
    if (hp->backbone == IADSR_BACKBONE_CASER)
        n += 3;
    return n;
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case T_I32: return "i32";
    case T_U32: return "u32";
    case T_I64: return "i64";
    case T_U64: return "u64";
    case T_F32: return "f32";
    case T_STR: return "string";
    default: return "unknown";
    }
}

/* ======================================================================== */
/* Writer                                                                   */
/* ======================================================================== */

/* Growable-free byte writer: with p == NULL it only counts. The prelude is
 * small and bounded (< 40 KiB), so no overflow is possible here. */
typedef struct wbuf {
    uint8_t *p;
    size_t len;
} wbuf;

static void w_bytes(wbuf *w, const void *src, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void w_u32(wbuf *w, uint32_t v)
{
    uint8_t b[4];
    put_u32le(b, v);
    w_bytes(w, b, 4);
}

static void w_u64(wbuf *w, uint64_t v)
{
    uint8_t b[8];
    put_u64le(b, v);
    w_bytes(w, b, 8);
}

static void w_key(wbuf *w, int k)
{
    size_t n = strlen(KEYS[k].key);
    w_u32(w, (uint32_t)n);
    w_bytes(w, KEYS[k].key, n);
    w_u32(w, KEYS[k].type);
}

static void w_kv_i32(wbuf *w, int k, int32_t v)
{
    w_key(w, k);
    w_u32(w, (uint32_t)v);
}

/* What the writer computes before emitting anything. */
typedef struct plan {
    int n_tensors;
    size_t meta_end;      /* offset of the metadata CRC */
    size_t dir_end;       /* end of the directory CRC */
    uint64_t data_offset; /* absolute */
    uint64_t file_size;
    uint64_t off[MAX_TENSORS];    /* relative to data_offset */
    uint64_t nbytes[MAX_TENSORS];
    uint32_t crc[MAX_TENSORS];
} plan;

/* Header + metadata + metadata CRC + directory + directory CRC + zero
 * padding up to data_offset. With w->p == NULL only the lengths are
 * computed (pl->meta_end, pl->dir_end). */
static void write_prelude(const iadsr_model *m, plan *pl, wbuf *w)
{
    const iadsr_model_params *hp = &m->hp;
    uint8_t hdr[HDR_SIZE];

    memset(hdr, 0, sizeof hdr);
    w->len = 0;
    w_bytes(w, hdr, HDR_SIZE); /* filled in at the end */

    /* metadata */
    w_kv_i32(w, K_BACKBONE, hp->backbone);
    w_kv_i32(w, K_N_ITEMS, hp->n_items);
    w_kv_i32(w, K_DIM, hp->dim);
    w_kv_i32(w, K_MAX_SEQ_LEN, hp->max_seq_len);
    w_kv_i32(w, K_N_LAYERS, hp->n_layers);
    w_kv_i32(w, K_N_HEADS, hp->n_heads);
    w_kv_i32(w, K_FFN_DIM, hp->ffn_dim);
    w_kv_i32(w, K_ACTIVATION, hp->activation);
    w_key(w, K_DROPOUT);
    w_u32(w, f32_bits(hp->dropout));
    w_key(w, K_SEED);
    w_u64(w, hp->seed);
    w_kv_i32(w, K_EPOCHS_TRAINED, m->epochs_trained);
    w_key(w, K_BEST_VALID_NDCG10);
    w_u32(w, f32_bits(m->best_valid_ndcg10));
    w_key(w, K_LIBRARY_VERSION);
    w_u32(w, (uint32_t)strlen(IADSR_VERSION_STRING));
    w_bytes(w, IADSR_VERSION_STRING, strlen(IADSR_VERSION_STRING));
    if (hp->flags) {
        w_key(w, K_MODEL_FLAGS);
        w_u32(w, hp->flags);
    }
    if (hp->backbone == IADSR_BACKBONE_CASER) {
        w_kv_i32(w, K_CASER_WINDOW, hp->caser_window);
        w_kv_i32(w, K_CASER_H, hp->caser_h_filters);
        w_kv_i32(w, K_CASER_V, hp->caser_v_filters);
    }
    pl->meta_end = w->len;
    w_u32(w, w->p ? iadsr__crc32c(0, w->p + HDR_SIZE, pl->meta_end - HDR_SIZE)
                  : 0);

    /* tensor directory */
    size_t dir_start = w->len;
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        size_t nl = strlen(t->name);
        w_u32(w, (uint32_t)nl);
        w_bytes(w, t->name, nl);
        w_u32(w, DTYPE_F32);
        if (t->rows == 1) {
            w_u32(w, 1);
            w_u64(w, (uint64_t)t->cols);
        } else {
            w_u32(w, 2);
            w_u64(w, (uint64_t)t->rows);
            w_u64(w, (uint64_t)t->cols);
        }
        w_u64(w, pl->off[i]);
        w_u64(w, pl->nbytes[i]);
        w_u32(w, pl->crc[i]);
    }
    size_t dir_crc_at = w->len;
    w_u32(w, w->p ? iadsr__crc32c(0, w->p + dir_start, dir_crc_at - dir_start)
                  : 0);
    pl->dir_end = w->len;

    if (!w->p)
        return;
    /* zero padding up to data_offset */
    memset(w->p + w->len, 0, (size_t)pl->data_offset - w->len);
    w->len = (size_t)pl->data_offset;

    /* header */
    memcpy(hdr, SIGNATURE, sizeof SIGNATURE);
    put_u32le(hdr + HDR_OFF_MAJOR, IADSR__FORMAT_MAJOR);
    /* A model without flags is written exactly as format 1.0, so that
     * 0.1 readers keep loading it. */
    put_u32le(hdr + HDR_OFF_MINOR, needs_1_1(hp) ? IADSR__FORMAT_MINOR : 0);
    put_u32le(hdr + HDR_OFF_HEADER_SIZE, HDR_SIZE);
    put_u32le(hdr + HDR_OFF_KIND, KIND_MODEL);
    put_u32le(hdr + HDR_OFF_REQUIRED, hp->flags ? REQ_MODEL_FLAGS : 0);
    put_u32le(hdr + HDR_OFF_OPTIONAL, 0);
    put_u32le(hdr + HDR_OFF_N_KV, n_keys_written(hp));
    put_u32le(hdr + HDR_OFF_N_TENSORS, (uint32_t)pl->n_tensors);
    put_u32le(hdr + HDR_OFF_ALIGNMENT, WRITE_ALIGNMENT);
    put_u64le(hdr + HDR_OFF_DATA_OFFSET, pl->data_offset);
    put_u64le(hdr + HDR_OFF_FILE_SIZE, pl->file_size);
    put_u32le(hdr + HDR_OFF_CRC, 0);
    put_u32le(hdr + HDR_OFF_CRC, header_crc(hdr));
    memcpy(w->p, hdr, HDR_SIZE);
}

/* Encode n floats as little-endian binary32. */
static void encode_f32(uint8_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_u32le(dst + 4 * i, f32_bits(src[i]));
}

/* Sizes and offsets of everything (no weights are read). */
static int plan_sizes(const iadsr_model *m, plan *pl)
{
    const iadsr__layout *l = &m->layout;
    if (l->n_tensors < 1 || l->n_tensors > (int)MAX_TENSORS)
        return iadsr__err(IADSR_ERR_GENERIC,
                          "checkpoint: model has %d tensors", l->n_tensors);
    pl->n_tensors = l->n_tensors;
    uint64_t pos = 0;
    for (int i = 0; i < l->n_tensors; i++) {
        const iadsr__tensor *t = &l->t[i];
        uint64_t n, nb;
        size_t nl = strnlen(t->name, sizeof t->name);
        if (nl < 1 || nl > NAME_LEN_MAX || t->rows < 1 || t->cols < 1 ||
            !mul_u64((uint64_t)t->rows, (uint64_t)t->cols, &n) ||
            !mul_u64(n, 4, &nb) || !align_up_u64(pos, WRITE_ALIGNMENT, &pos) ||
            pos > UINT64_MAX - nb)
            return iadsr__err(IADSR_ERR_GENERIC,
                              "checkpoint: model tensor %d has an invalid "
                              "name or shape",
                              i);
        pl->off[i] = pos;
        pl->nbytes[i] = nb;
        pl->crc[i] = 0;
        pos += nb;
    }
    wbuf w = {NULL, 0};
    write_prelude(m, pl, &w);
    uint64_t data_offset;
    if (!align_up_u64(pl->dir_end, WRITE_ALIGNMENT, &data_offset) ||
        data_offset > UINT64_MAX - pos ||
        data_offset + pos > (uint64_t)SIZE_MAX)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: model too large for this platform");
    pl->data_offset = data_offset;
    pl->file_size = data_offset + pos;
    return IADSR_OK;
}

/* First pass over the weights: refuse non-finite values, compute each
 * tensor's CRC-32C over its little-endian encoding. */
static int plan_checksums(const iadsr_model *m, plan *pl)
{
    uint8_t chunk[CHUNK_FLOATS * 4];
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        const float *w = m->w + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        uint32_t crc = 0;
        for (size_t j = 0; j < n; j++)
            if (!isfinite(w[j]))
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "checkpoint: cannot save: tensor '%s' "
                                  "element %zu (row %lld, column %lld) is "
                                  "%s",
                                  t->name, j, (long long)(j / (size_t)t->cols),
                                  (long long)(j % (size_t)t->cols),
                                  isnan(w[j]) ? "NaN" : "infinite");
        for (size_t j = 0; j < n; j += CHUNK_FLOATS) {
            size_t k = n - j < CHUNK_FLOATS ? n - j : CHUNK_FLOATS;
            encode_f32(chunk, w + j, k);
            crc = iadsr__crc32c(crc, chunk, 4 * k);
        }
        pl->crc[i] = crc;
    }
    return IADSR_OK;
}

/* Output: the caller's memory, or a file descriptor through a staging
 * buffer. The first write error is kept in err (errno value). */
typedef struct sink {
    uint8_t *mem;
    int fd;
    uint8_t *stage;
    size_t staged;
    size_t pos;
    int err;
} sink;

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (k == 0)
            return ENOSPC; /* no progress: treat as a full device */
        p += (size_t)k;
        n -= (size_t)k;
    }
    return 0;
}

static void sink_flush(sink *s)
{
    if (!s->mem && s->staged && !s->err)
        s->err = write_all(s->fd, s->stage, s->staged);
    s->staged = 0;
}

static void sink_put(sink *s, const void *src, size_t n)
{
    const uint8_t *p = src;
    if (s->mem) {
        memcpy(s->mem + s->pos, p, n);
        s->pos += n;
        return;
    }
    while (n > 0 && !s->err) {
        size_t k = STAGE_BYTES - s->staged;
        if (k > n)
            k = n;
        memcpy(s->stage + s->staged, p, k);
        s->staged += k;
        s->pos += k;
        p += k;
        n -= k;
        if (s->staged == STAGE_BYTES)
            sink_flush(s);
    }
}

static void sink_zeros(sink *s, uint64_t n)
{
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        sink_put(s, zeros, k);
        n -= k;
    }
}

/* Emit the whole checkpoint (plan complete, checksums computed). */
static int emit(const iadsr_model *m, plan *pl, sink *s)
{
    wbuf w;
    w.p = iadsr__malloc((size_t)pl->data_offset);
    w.len = 0;
    if (!w.p)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "checkpoint: out of memory (%zu bytes)",
                          (size_t)pl->data_offset);
    write_prelude(m, pl, &w);
    sink_put(s, w.p, w.len);
    iadsr__free(w.p);

    uint8_t chunk[CHUNK_FLOATS * 4];
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        const float *src = m->w + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        sink_zeros(s, pl->data_offset + pl->off[i] - s->pos);
        for (size_t j = 0; j < n; j += CHUNK_FLOATS) {
            size_t k = n - j < CHUNK_FLOATS ? n - j : CHUNK_FLOATS;
            encode_f32(chunk, src + j, k);
            sink_put(s, chunk, 4 * k);
        }
    }
    sink_flush(s);
    return IADSR_OK;
}

int iadsr_model_save_to_buffer(const iadsr_model *m, void *buf, size_t cap,
                               size_t *needed)
{
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_save_to_buffer: %s",
                          m ? "not a model handle" : "model is NULL");
    if (!buf && cap != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_save_to_buffer: buf is NULL but cap = %zu",
                          cap);
    plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan_sizes(m, &pl);
    if (rc)
        return rc;
    size_t size = (size_t)pl.file_size;
    if (needed)
        *needed = size;
    if (!buf)
        return IADSR_OK; /* size query */
    if (cap < size)
        return iadsr__err(IADSR_ERR_BUFFER_TOO_SMALL,
                          "model_save_to_buffer: the checkpoint needs %zu "
                          "bytes, the buffer holds %zu",
                          size, cap);
    if ((rc = plan_checksums(m, &pl)) != IADSR_OK)
        return rc;
    sink s;
    memset(&s, 0, sizeof s);
    s.mem = buf;
    s.fd = -1;
    return emit(m, &pl, &s);
}

/* ---- atomic file save ---------------------------------------------------- */

/* errno text (XSI strerror_r: this file is compiled as POSIX, not GNU). */
static const char *errno_text(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "errno %d", e);
    return buf;
}

static int io_err(const char *what, const char *path, int e)
{
    char eb[128];
    return iadsr__err(IADSR_ERR_IO, "model_save: %s '%s': %s", what, path,
                      errno_text(e, eb, sizeof eb));
}

/* fsync the directory that holds @p path. Returns 0 or an errno value. */
static int fsync_parent_dir(const char *path, char *scratch)
{
    const char *slash = strrchr(path, '/');
    const char *dir = ".";
    if (slash == path) {
        dir = "/";
    } else if (slash) {
        size_t n = (size_t)(slash - path);
        memcpy(scratch, path, n);
        scratch[n] = '\0';
        dir = scratch;
    }
    int fd;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno;
    int e = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return e;
}

int iadsr_model_save(const iadsr_model *m, const char *path, uint32_t flags)
{
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_save: %s",
                          m ? "not a model handle" : "model is NULL");
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_save: path is %s",
                          path ? "empty" : "NULL");
    if (flags & ~IADSR_SAVE_NO_FSYNC)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "model_save: unknown flag bits 0x%x",
                          (unsigned)(flags & ~IADSR_SAVE_NO_FSYNC));

    plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan_sizes(m, &pl);
    if (rc == IADSR_OK)
        rc = plan_checksums(m, &pl);
    if (rc)
        return rc;

    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    if (plen > SIZE_MAX - sizeof suffix)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_save: path too long");
    char *tmp = iadsr__malloc(plen + sizeof suffix);
    if (!tmp)
        return iadsr__err(IADSR_ERR_NOMEM, "model_save: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    sink s;
    memset(&s, 0, sizeof s);
    s.stage = iadsr__malloc(STAGE_BYTES);
    if (!s.stage) {
        iadsr__free(tmp);
        return iadsr__err(IADSR_ERR_NOMEM, "model_save: out of memory");
    }

    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = io_err("cannot create a temporary file next to", path, errno);
        goto out;
    }
    /* POSIX 2008 has no mkostemp: narrow the window in which a concurrent
     * fork+exec of the host could inherit the descriptor. */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* mkstemp creates the file 0600: give it the mode of the file it
     * replaces, or 0644 for a new file. */
    {
        struct stat st;
        mode_t mode = 0644;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            mode = st.st_mode & 07777;
        if (fchmod(fd, mode) != 0) {
            rc = io_err("cannot set the mode of", tmp, errno);
            close(fd);
            goto fail_unlink;
        }
    }

    s.fd = fd;
    rc = emit(m, &pl, &s);
    if (rc) {
        close(fd);
        goto fail_unlink;
    }
    if (s.err) {
        rc = io_err("cannot write", tmp, s.err);
        close(fd);
        goto fail_unlink;
    }
    if (!(flags & IADSR_SAVE_NO_FSYNC) && fsync(fd) != 0) {
        rc = io_err("cannot fsync", tmp, errno);
        close(fd);
        goto fail_unlink;
    }
    if (close(fd) != 0) {
        /* On Linux the descriptor is released even when close fails. */
        rc = io_err("cannot close", tmp, errno);
        goto fail_unlink;
    }
    if (rename(tmp, path) != 0) {
        rc = io_err("cannot rename the temporary file to", path, errno);
        goto fail_unlink;
    }
    if (!(flags & IADSR_SAVE_NO_FSYNC)) {
        /* tmp is at least as long as the directory name: reuse it. */
        int e = fsync_parent_dir(path, tmp);
        if (e) {
            /* The new file is in place but its directory entry may not be
             * durable; report it (never retry an fsync). */
            rc = io_err("saved, but cannot fsync the directory of", path, e);
            goto out;
        }
    }
    rc = IADSR_OK;
    goto out;

fail_unlink:
    unlink(tmp);
out:
    iadsr__free(s.stage);
    iadsr__free(tmp);
    return rc;
}

/* ======================================================================== */
/* Reader                                                                   */
/* ======================================================================== */

/* Bounded cursor over [0, end) of the input. */
typedef struct rd {
    const uint8_t *b;
    size_t end;
    size_t pos;
} rd;

static int rd_take(rd *r, size_t n, const uint8_t **p)
{
    if (n > r->end - r->pos)
        return 0;
    *p = r->b + r->pos;
    r->pos += n;
    return 1;
}

static int rd_u32(rd *r, uint32_t *v)
{
    const uint8_t *p;
    if (!rd_take(r, 4, &p))
        return 0;
    *v = get_u32le(p);
    return 1;
}

static int rd_u64(rd *r, uint64_t *v)
{
    const uint8_t *p;
    if (!rd_take(r, 8, &p))
        return 0;
    *v = get_u64le(p);
    return 1;
}

static int printable_ascii(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

typedef struct header {
    uint32_t major, minor, kind, required, optional;
    uint32_t n_kv, n_tensors, alignment;
    uint64_t data_offset, file_size;
} header;

static int check_header(const uint8_t *b, size_t len, header *h)
{
    if (len < sizeof SIGNATURE ||
        memcmp(b, SIGNATURE, sizeof SIGNATURE) != 0) {
        if (len < sizeof SIGNATURE &&
            memcmp(b, SIGNATURE, len) == 0)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: truncated: %zu bytes, shorter "
                              "than the signature",
                              len);
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: bad signature (not a libiadsr "
                          "checkpoint, or mangled by a text-mode transfer)");
    }
    if (len < HDR_OFF_MINOR + 4)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: truncated: %zu bytes, no version",
                          len);
    h->major = get_u32le(b + HDR_OFF_MAJOR);
    h->minor = get_u32le(b + HDR_OFF_MINOR);
    if (h->major != IADSR__FORMAT_MAJOR)
        return iadsr__err(IADSR_ERR_VERSION,
                          "checkpoint: format version %u.%u is not supported "
                          "(this library reads %d.x)",
                          (unsigned)h->major, (unsigned)h->minor,
                          IADSR__FORMAT_MAJOR);
    if (len < HDR_SIZE)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: truncated: %zu bytes, the header alone "
                          "is %u",
                          len, HDR_SIZE);
    uint32_t header_size = get_u32le(b + HDR_OFF_HEADER_SIZE);
    if (header_size != HDR_SIZE)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: header_size is %u, expected %u",
                          (unsigned)header_size, HDR_SIZE);
    uint32_t stored = get_u32le(b + HDR_OFF_CRC);
    uint32_t actual = header_crc(b);
    if (stored != actual)
        return iadsr__err(IADSR_ERR_CHECKSUM,
                          "checkpoint: header checksum mismatch (stored "
                          "0x%08x, computed 0x%08x)",
                          (unsigned)stored, (unsigned)actual);
    h->kind = get_u32le(b + HDR_OFF_KIND);
    h->required = get_u32le(b + HDR_OFF_REQUIRED);
    h->optional = get_u32le(b + HDR_OFF_OPTIONAL);
    h->n_kv = get_u32le(b + HDR_OFF_N_KV);
    h->n_tensors = get_u32le(b + HDR_OFF_N_TENSORS);
    h->alignment = get_u32le(b + HDR_OFF_ALIGNMENT);
    h->data_offset = get_u64le(b + HDR_OFF_DATA_OFFSET);
    h->file_size = get_u64le(b + HDR_OFF_FILE_SIZE);
    if (h->kind != KIND_MODEL)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: kind %u is not supported (1 = model)",
                          (unsigned)h->kind);
    if (h->required & ~REQUIRED_FLAGS_KNOWN)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: requires unknown features "
                          "(required_flags 0x%08x)",
                          (unsigned)(h->required & ~REQUIRED_FLAGS_KNOWN));
    if (h->file_size != (uint64_t)len)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %s: the header says %llu bytes, got "
                          "%zu",
                          h->file_size > (uint64_t)len ? "truncated"
                                                        : "trailing bytes",
                          (unsigned long long)h->file_size, len);
    if (h->alignment < ALIGN_MIN || h->alignment > ALIGN_MAX ||
        (h->alignment & (h->alignment - 1)) != 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: alignment %u is not a power of two in "
                          "%u..%u",
                          (unsigned)h->alignment, ALIGN_MIN, ALIGN_MAX);
    if (h->n_kv > MAX_KV)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: n_kv = %u exceeds %u",
                          (unsigned)h->n_kv, MAX_KV);
    if (h->n_tensors > MAX_TENSORS)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: n_tensors = %u exceeds %u",
                          (unsigned)h->n_tensors, MAX_TENSORS);
    if (h->data_offset < HDR_SIZE || h->data_offset > h->file_size ||
        h->data_offset % h->alignment != 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: data_offset %llu is not a multiple of "
                          "the alignment inside the file (%llu bytes)",
                          (unsigned long long)h->data_offset,
                          (unsigned long long)h->file_size);
    return IADSR_OK;
}

/* A parsed metadata value. */
typedef struct kv_val {
    int present;
    uint32_t type;
    uint64_t u; /* integers and f32 bits, zero-extended */
} kv_val;

/* Skip over one KV entry (structure only). On success the key, its length,
 * the type and the value's position and length are set. */
static int read_kv(rd *r, uint32_t i, const uint8_t **key, uint32_t *klen,
                   uint32_t *type, const uint8_t **val, uint32_t *vlen)
{
    uint32_t slen;
    if (!rd_u32(r, klen))
        goto trunc;
    if (*klen < 1 || *klen > KEY_LEN_MAX)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: metadata entry %u: key length %u is "
                          "outside 1..%u",
                          (unsigned)i, (unsigned)*klen, KEY_LEN_MAX);
    if (!rd_take(r, *klen, key) || !rd_u32(r, type))
        goto trunc;
    switch (*type) {
    case T_I32:
    case T_U32:
    case T_F32:
        *vlen = 4;
        break;
    case T_I64:
    case T_U64:
        *vlen = 8;
        break;
    case T_STR:
        if (!rd_u32(r, &slen))
            goto trunc;
        if (slen > STR_LEN_MAX)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: metadata entry %u: string length "
                              "%u exceeds %u",
                              (unsigned)i, (unsigned)slen, STR_LEN_MAX);
        *vlen = slen;
        break;
    default:
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: metadata entry %u: unknown value type "
                          "%u",
                          (unsigned)i, (unsigned)*type);
    }
    if (!rd_take(r, *vlen, val))
        goto trunc;
    return IADSR_OK;
trunc:
    return iadsr__err(IADSR_ERR_FORMAT,
                      "checkpoint: metadata entry %u runs past data_offset "
                      "%zu",
                      (unsigned)i, r->end);
}

/* Metadata: structure, CRC, then keys and values. Fills @p hp (not yet
 * validated) and the provenance fields. */
static int parse_metadata(rd *r, const header *h, iadsr_model_params *hp,
                          int32_t *epochs, float *best)
{
    const uint8_t *key, *val;
    uint32_t klen, type, vlen;
    size_t start = r->pos;
    int rc;

    for (uint32_t i = 0; i < h->n_kv; i++)
        if ((rc = read_kv(r, i, &key, &klen, &type, &val, &vlen)) != IADSR_OK)
            return rc;
    size_t end = r->pos;
    uint32_t stored;
    if (!rd_u32(r, &stored))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: metadata checksum runs past "
                          "data_offset");
    uint32_t actual = iadsr__crc32c(0, r->b + start, end - start);
    if (stored != actual)
        return iadsr__err(IADSR_ERR_CHECKSUM,
                          "checkpoint: metadata checksum mismatch (stored "
                          "0x%08x, computed 0x%08x)",
                          (unsigned)stored, (unsigned)actual);

    /* second pass: semantics */
    kv_val v[K_COUNT];
    memset(v, 0, sizeof v);
    rd s = {r->b, end, start};
    for (uint32_t i = 0; i < h->n_kv; i++) {
        size_t key_pos;
        if ((rc = read_kv(&s, i, &key, &klen, &type, &val, &vlen)) !=
            IADSR_OK)
            return rc; /* cannot happen: same bytes as the first pass */
        key_pos = (size_t)(key - r->b);
        if (!printable_ascii(key, klen))
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: metadata entry %u: key is not "
                              "printable ASCII",
                              (unsigned)i);
        /* duplicates: compare with every earlier key (n_kv <= 256) */
        rd d = {r->b, key_pos, start};
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *k2, *v2;
            uint32_t kl2, t2, vl2;
            if ((rc = read_kv(&d, j, &k2, &kl2, &t2, &v2, &vl2)) != IADSR_OK)
                return rc;
            if (kl2 == klen && memcmp(k2, key, klen) == 0)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: metadata key '%.*s' appears "
                                  "twice (entries %u and %u)",
                                  (int)klen, (const char *)key, (unsigned)j,
                                  (unsigned)i);
        }
        for (int k = 0; k < K_COUNT; k++) {
            if (strlen(KEYS[k].key) != klen ||
                memcmp(KEYS[k].key, key, klen) != 0)
                continue;
            if (type != KEYS[k].type)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: metadata key '%s' has type "
                                  "%u (%s), expected %s",
                                  KEYS[k].key, (unsigned)type,
                                  type_name(type), type_name(KEYS[k].type));
            v[k].present = 1;
            v[k].type = type;
            if (type == T_STR)
                v[k].u = 0; /* informational; content not interpreted */
            else
                v[k].u = vlen == 8 ? get_u64le(val) : get_u32le(val);
        }
        /* unknown keys are skipped (forward compatibility) */
    }
    for (int k = 0; k < K_COUNT; k++)
        if (KEYS[k].required && !v[k].present)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: required metadata key '%s' is "
                              "missing",
                              KEYS[k].key);

    memset(hp, 0, sizeof *hp);
    hp->struct_size = (uint32_t)sizeof *hp;
    hp->backbone = (int32_t)(uint32_t)v[K_BACKBONE].u;
    hp->n_items = (int32_t)(uint32_t)v[K_N_ITEMS].u;
    hp->dim = (int32_t)(uint32_t)v[K_DIM].u;
    hp->max_seq_len = (int32_t)(uint32_t)v[K_MAX_SEQ_LEN].u;
    hp->n_layers = (int32_t)(uint32_t)v[K_N_LAYERS].u;
    hp->n_heads = (int32_t)(uint32_t)v[K_N_HEADS].u;
    hp->ffn_dim = (int32_t)(uint32_t)v[K_FFN_DIM].u;
    hp->activation = (int32_t)(uint32_t)v[K_ACTIVATION].u;
    hp->dropout = bits_f32((uint32_t)v[K_DROPOUT].u);
    hp->flags = 0;
    if (v[K_MODEL_FLAGS].present) {
        uint32_t mf = (uint32_t)v[K_MODEL_FLAGS].u;
        if (mf & ~(uint32_t)MODEL_FLAGS_KNOWN)
            return iadsr__err(IADSR_ERR_UNSUPPORTED,
                              "checkpoint: iadsr.model_flags = 0x%x has "
                              "unknown bits 0x%x",
                              (unsigned)mf,
                              (unsigned)(mf & ~(uint32_t)MODEL_FLAGS_KNOWN));
        hp->flags = mf;
    }
    /* the required bit and the key go together */
    if (!(h->required & REQ_MODEL_FLAGS) != !hp->flags)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: iadsr.model_flags = 0x%x disagrees "
                          "with required_flags 0x%x",
                          (unsigned)hp->flags, (unsigned)h->required);
    hp->reserved0 = 0;
    hp->seed = v[K_SEED].u;
    if (hp->backbone == IADSR_BACKBONE_CASER)
        for (int k = K_CASER_WINDOW; k <= K_CASER_V; k++)
            if (!v[k].present)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: metadata key '%s' is missing "
                                  "(required for Caser models)",
                                  KEYS[k].key);
    hp->caser_window = (int32_t)(uint32_t)v[K_CASER_WINDOW].u;
    hp->caser_h_filters = (int32_t)(uint32_t)v[K_CASER_H].u;
    hp->caser_v_filters = (int32_t)(uint32_t)v[K_CASER_V].u;

    *epochs = v[K_EPOCHS_TRAINED].present
                  ? (int32_t)(uint32_t)v[K_EPOCHS_TRAINED].u
                  : 0;
    if (*epochs < 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: iadsr.epochs_trained = %d is negative",
                          (int)*epochs);
    *best = v[K_BEST_VALID_NDCG10].present
                ? bits_f32((uint32_t)v[K_BEST_VALID_NDCG10].u)
                : NAN;
    return IADSR_OK;
}

typedef struct dir_entry {
    const uint8_t *name;
    uint32_t name_len;
    uint32_t dtype, n_dims;
    uint64_t dims[MAX_DIMS];
    uint64_t offset, nbytes;
    uint32_t crc;
} dir_entry;

static int read_dir_entry(rd *r, uint32_t i, dir_entry *e)
{
    if (!rd_u32(r, &e->name_len))
        goto trunc;
    if (e->name_len < 1 || e->name_len > NAME_LEN_MAX)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor %u: name length %u is outside "
                          "1..%u",
                          (unsigned)i, (unsigned)e->name_len, NAME_LEN_MAX);
    if (!rd_take(r, e->name_len, &e->name) || !rd_u32(r, &e->dtype) ||
        !rd_u32(r, &e->n_dims))
        goto trunc;
    if (e->n_dims < 1 || e->n_dims > MAX_DIMS)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor %u: n_dims %u is not 1 or 2",
                          (unsigned)i, (unsigned)e->n_dims);
    for (uint32_t d = 0; d < e->n_dims; d++)
        if (!rd_u64(r, &e->dims[d]))
            goto trunc;
    if (!rd_u64(r, &e->offset) || !rd_u64(r, &e->nbytes) ||
        !rd_u32(r, &e->crc))
        goto trunc;
    return IADSR_OK;
trunc:
    return iadsr__err(IADSR_ERR_FORMAT,
                      "checkpoint: tensor directory entry %u runs past "
                      "data_offset %zu",
                      (unsigned)i, r->end);
}

/* Everything after the hyper-parameters are known: the directory must list
 * exactly the tensors of @p lay, in order; then ranges, padding, checksums
 * and finite weights. */
static int check_directory(rd *r, const header *h, const iadsr__layout *lay)
{
    const uint8_t *b = r->b;
    size_t start = r->pos;
    dir_entry e;
    int rc;

    for (uint32_t i = 0; i < h->n_tensors; i++)
        if ((rc = read_dir_entry(r, i, &e)) != IADSR_OK)
            return rc;
    size_t end = r->pos;
    uint32_t stored;
    if (!rd_u32(r, &stored))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: directory checksum runs past "
                          "data_offset");
    uint32_t actual = iadsr__crc32c(0, b + start, end - start);
    if (stored != actual)
        return iadsr__err(IADSR_ERR_CHECKSUM,
                          "checkpoint: tensor directory checksum mismatch "
                          "(stored 0x%08x, computed 0x%08x)",
                          (unsigned)stored, (unsigned)actual);

    uint64_t want = 0;
    if (!align_up_u64(r->pos, h->alignment, &want) || want != h->data_offset)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: data_offset is %llu but the directory "
                          "ends at %zu (expected %llu)",
                          (unsigned long long)h->data_offset, r->pos,
                          (unsigned long long)want);
    for (size_t p = r->pos; p < (size_t)h->data_offset; p++)
        if (b[p] != 0)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: non-zero padding byte at offset "
                              "%zu",
                              p);

    if ((int64_t)h->n_tensors != (int64_t)lay->n_tensors)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: the directory lists %u tensors, the "
                          "hyper-parameters imply %d",
                          (unsigned)h->n_tensors, lay->n_tensors);

    /* second pass: every entry against the layout, ranges and padding */
    uint64_t data_len = h->file_size - h->data_offset;
    uint64_t prev_end = 0;
    rd s = {b, end, start};
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        const iadsr__tensor *t = &lay->t[i];
        if ((rc = read_dir_entry(&s, i, &e)) != IADSR_OK)
            return rc;
        if (strlen(t->name) != e.name_len ||
            memcmp(t->name, e.name, e.name_len) != 0)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor %u is '%.*s', expected "
                              "'%s'",
                              (unsigned)i, (int)e.name_len,
                              printable_ascii(e.name, e.name_len)
                                  ? (const char *)e.name
                                  : "<binary>",
                              t->name);
        if (e.dtype != DTYPE_F32)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': dtype %u is not f32 "
                              "(1)",
                              t->name, (unsigned)e.dtype);
        uint64_t rows = e.n_dims == 1 ? 1 : e.dims[0];
        uint64_t cols = e.n_dims == 1 ? e.dims[0] : e.dims[1];
        if (rows != (uint64_t)t->rows || cols != (uint64_t)t->cols)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s' is %llu x %llu, the "
                              "hyper-parameters imply %lld x %lld",
                              t->name, (unsigned long long)rows,
                              (unsigned long long)cols, (long long)t->rows,
                              (long long)t->cols);
        uint64_t n, nb;
        if (!mul_u64(rows, cols, &n) || !mul_u64(n, 4, &nb) || nb != e.nbytes)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': nbytes %llu, expected "
                              "%llu x %llu x 4",
                              t->name, (unsigned long long)e.nbytes,
                              (unsigned long long)rows,
                              (unsigned long long)cols);
        uint64_t want_off = 0;
        if (!align_up_u64(prev_end, h->alignment, &want_off) ||
            e.offset != want_off)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': offset %llu, expected "
                              "%llu (next aligned position)",
                              t->name, (unsigned long long)e.offset,
                              (unsigned long long)want_off);
        if (e.offset > data_len || e.nbytes > data_len - e.offset)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s' (offset %llu, %llu "
                              "bytes) extends past the end of the file",
                              t->name, (unsigned long long)e.offset,
                              (unsigned long long)e.nbytes);
        const uint8_t *base = b + (size_t)h->data_offset;
        for (uint64_t p = prev_end; p < e.offset; p++)
            if (base[p] != 0)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: non-zero padding byte at "
                                  "offset %llu",
                                  (unsigned long long)(h->data_offset + p));
        prev_end = e.offset + e.nbytes;
    }
    if (prev_end != data_len)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %llu bytes follow the last tensor",
                          (unsigned long long)(data_len - prev_end));

    /* third pass: checksums (before looking at any value), then values */
    s.pos = start;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        (void)read_dir_entry(&s, i, &e);
        const uint8_t *p = b + (size_t)(h->data_offset + e.offset);
        uint32_t crc = iadsr__crc32c(0, p, (size_t)e.nbytes);
        if (crc != e.crc)
            return iadsr__err(IADSR_ERR_CHECKSUM,
                              "checkpoint: tensor '%s': checksum mismatch "
                              "(stored 0x%08x, computed 0x%08x)",
                              lay->t[i].name, (unsigned)e.crc,
                              (unsigned)crc);
    }
    s.pos = start;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        (void)read_dir_entry(&s, i, &e);
        const uint8_t *p = b + (size_t)(h->data_offset + e.offset);
        size_t n = (size_t)(e.nbytes / 4);
        int64_t cols = lay->t[i].cols;
        for (size_t j = 0; j < n; j++) {
            float f = bits_f32(get_u32le(p + 4 * j));
            if (!isfinite(f))
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "checkpoint: tensor '%s' element %zu (row "
                                  "%lld, column %lld) is %s",
                                  lay->t[i].name, j,
                                  (long long)(j / (size_t)cols),
                                  (long long)(j % (size_t)cols),
                                  isnan(f) ? "NaN" : "infinite");
        }
    }
    return IADSR_OK;
}

static int load_buffer(iadsr_model **out, const uint8_t *b, size_t len)
{
    header h;
    memset(&h, 0, sizeof h);
    int rc = check_header(b, len, &h);
    if (rc)
        return rc;

    /* metadata and directory live in [64, data_offset) */
    rd r = {b, (size_t)h.data_offset, HDR_SIZE};
    iadsr_model_params hp;
    int32_t epochs = 0;
    float best = NAN;
    if ((rc = parse_metadata(&r, &h, &hp, &epochs, &best)) != IADSR_OK)
        return rc;
    rc = iadsr__model_params_check(&hp);
    if (rc == IADSR_ERR_UNSUPPORTED) /* e.g. a backbone of a later release */
        return iadsr__err_prefix(rc, "checkpoint");
    if (rc)
        return iadsr__err_prefix(IADSR_ERR_FORMAT,
                                 "checkpoint: invalid hyper-parameters");

    iadsr__layout *lay = iadsr__malloc(sizeof *lay);
    if (!lay)
        return iadsr__err(IADSR_ERR_NOMEM, "checkpoint: out of memory");
    rc = iadsr__model_layout(&hp, lay);
    if (rc) {
        rc = rc == IADSR_ERR_UNSUPPORTED || rc == IADSR_ERR_NOMEM
                 ? iadsr__err_prefix(rc, "checkpoint")
                 : iadsr__err_prefix(IADSR_ERR_FORMAT,
                                     "checkpoint: invalid hyper-parameters");
        goto done;
    }
    if ((rc = check_directory(&r, &h, lay)) != IADSR_OK)
        goto done;

    /* Everything is proven: allocate and copy. */
    iadsr_model *m = NULL;
    if ((rc = iadsr__model_alloc(&m, &hp)) != IADSR_OK)
        goto done;
    if (m->layout.n_tensors != lay->n_tensors ||
        m->layout.n_floats != lay->n_floats) {
        iadsr_model_free(m);
        rc = iadsr__err(IADSR_ERR_GENERIC,
                        "checkpoint: model layout changed between calls");
        goto done;
    }
    const uint8_t *data = b + (size_t)h.data_offset;
    uint64_t pos = 0;
    for (int i = 0; i < m->layout.n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        float *dst = m->w + t->offset;
        align_up_u64(pos, h.alignment, &pos);
        const uint8_t *src = data + (size_t)pos;
        for (size_t j = 0; j < n; j++)
            dst[j] = bits_f32(get_u32le(src + 4 * j));
        pos += 4 * (uint64_t)n;
    }
    m->epochs_trained = epochs;
    m->best_valid_ndcg10 = best;
    if ((rc = iadsr__model_finalize(m)) != IADSR_OK) {
        iadsr_model_free(m);
        goto done;
    }
    *out = m;
    rc = IADSR_OK;
done:
    iadsr__free(lay);
    return rc;
}

int iadsr_model_load_from_buffer(iadsr_model **out, const void *buf,
                                 size_t len, uint32_t flags)
{
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_load_from_buffer: out is NULL");
    *out = NULL;
    if (!buf)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "model_load_from_buffer: buf is NULL");
    if (flags != 0)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "model_load_from_buffer: unknown flag bits 0x%x",
                          (unsigned)flags);
    return load_buffer(out, buf, len);
}

static int load_io_err(const char *what, const char *path, int e)
{
    char eb[128];
    return iadsr__err(IADSR_ERR_IO, "model_load: %s '%s': %s", what, path,
                      errno_text(e, eb, sizeof eb));
}

int iadsr_model_load(iadsr_model **out, const char *path, uint32_t flags)
{
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_load: out is NULL");
    *out = NULL;
    if (!path)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_load: path is NULL");
    if (flags != 0)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "model_load: unknown flag bits 0x%x",
                          (unsigned)flags);

    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return load_io_err("cannot open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return load_io_err("cannot stat", path, e);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return iadsr__err(IADSR_ERR_IO, "model_load: '%s' is not a regular "
                                        "file",
                          path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > LOAD_MAX_BYTES ||
        (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "model_load: '%s' is %lld bytes; checkpoints are "
                          "limited to 16 GiB",
                          path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = iadsr__malloc(size);
    if (!buf) {
        close(fd);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "model_load: cannot allocate %zu bytes for '%s'",
                          size, path);
    }
    size_t got = 0;
    int e = 0;
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    if (!e && got == size) {
        /* the file must not have grown either */
        uint8_t extra;
        ssize_t k;
        do
            k = read(fd, &extra, 1);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            e = errno;
        else if (k > 0)
            got = size + 1;
    }
    close(fd);
    int rc;
    if (e) {
        rc = load_io_err("cannot read", path, e);
    } else if (got != size) {
        rc = iadsr__err(IADSR_ERR_IO,
                        "model_load: '%s' changed size while being read",
                        path);
    } else {
        rc = load_buffer(out, buf, size);
        if (rc)
            iadsr__err_prefix(rc, "%s", path);
    }
    iadsr__free(buf);
    return rc;
}
