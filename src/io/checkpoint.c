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
 *
 * Since format 1.2 a checkpoint may also carry the IADSR aligner and gate
 * (iadsr_checkpoint_save/load): their tensors follow the backbone's and go
 * through the same writer, reader and checks.
 */
#include "denoise/denoise.h"
#include "common/fileio.h"
#include "io/checkpoint_format.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/params.h"
#include "backbone/model.h"
#include "common/crc32c.h"
#include "common/params.h"

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
/* required_flags bit 1 (format 1.2): the file carries an aligner and/or a
 * gate after the backbone. Older readers do not know the bit and refuse the
 * file (UNSUPPORTED) instead of tripping over the extra tensors. */
#define REQ_DENOISER 2u
#define REQUIRED_FLAGS_KNOWN (REQ_MODEL_FLAGS | REQ_DENOISER)
/* format_minor written: the oldest version that describes the file (the
 * reader accepts any minor). */
#define MINOR_BASE 0u     /* SASRec without flags: 1.0 */
#define MINOR_MODEL 1u    /* model flags, GRU4Rec, Caser: 1.1 */
#define MINOR_DENOISER 2u /* aligner and/or gate: 1.2 */
#define MODEL_FLAGS_KNOWN IADSR_MODEL_F_PRE_LN
#define WRITE_ALIGNMENT 64u
#define ALIGN_MIN 8u
#define ALIGN_MAX 4096u
#define MAX_KV 256u
#define MAX_TENSORS 256u /* format limit; >= IADSR__MAX_TENSORS */
#define KEY_LEN_MAX 255u
#define SEM_DIM_MAX 1048576 /* iadsr_aligner_create() bound on D */
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
    /* format 1.2: the aligner (both keys) and the gate (all nine keys) */
    K_ALIGN_SEM_DIM,
    K_ALIGN_TAU,
    K_GATE_FLAGS,
    K_GATE_LAMBDA_ALIGN,
    K_GATE_LAMBDA_RECON,
    K_GATE_TAU_ALIGN,
    K_GATE_TAU_GUMBEL,
    K_GATE_THETA,
    K_GATE_MAX_DROP,
    K_GATE_PROTECT_LAST,
    K_GATE_SEED,
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
    {"iadsr.align_sem_dim", T_I32, 0},
    {"iadsr.align_tau", T_F32, 0},
    {"iadsr.gate_flags", T_U32, 0},
    {"iadsr.gate_lambda_align", T_F32, 0},
    {"iadsr.gate_lambda_recon", T_F32, 0},
    {"iadsr.gate_tau_align", T_F32, 0},
    {"iadsr.gate_tau_gumbel", T_F32, 0},
    {"iadsr.gate_theta", T_F32, 0},
    {"iadsr.gate_max_drop", T_F32, 0},
    {"iadsr.gate_protect_last", T_I32, 0},
    {"iadsr.gate_seed", T_U64, 0},
};

/* What one checkpoint holds: a backbone and, since format 1.2, optionally
 * an aligner and a gate of the same width. */
typedef struct ck_src {
    const iadsr_model *m;
    const iadsr_aligner *a; /* NULL: none */
    const iadsr_gate *g;    /* NULL: none */
} ck_src;

/* One tensor of a checkpoint, in file order. */
typedef struct ck_tensor {
    const char *name;
    int64_t rows, cols;
    const float *src; /* writer: the weights */
    float *dst;       /* reader: where to decode them; NULL = skip */
} ck_tensor;

/* The tensors of a checkpoint in file order (docs/FORMAT.md §6): the
 * backbone's layout, then align.w1 and align.w2 (D x d) when @p sem_dim > 0,
 * then gate.wd (d x d) and gate.bd (d) when @p has_gate. */
static int list_tensors(const iadsr__layout *lay, int64_t d, int64_t sem_dim,
                        int has_gate, ck_tensor *t, int *n)
{
    int extra = (sem_dim > 0 ? 2 : 0) + (has_gate ? 2 : 0);
    if (lay->n_tensors < 1 || lay->n_tensors > (int)MAX_TENSORS - extra)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: %d backbone tensors and %d more exceed "
                          "the format's %u",
                          lay->n_tensors, extra, MAX_TENSORS);
    int k = 0;
    for (int i = 0; i < lay->n_tensors; i++) {
        ck_tensor e = {lay->t[i].name, lay->t[i].rows, lay->t[i].cols, NULL,
                       NULL};
        t[k++] = e;
    }
    if (sem_dim > 0) {
        ck_tensor w1 = {"align.w1", sem_dim, d, NULL, NULL};
        ck_tensor w2 = {"align.w2", sem_dim, d, NULL, NULL};
        t[k++] = w1;
        t[k++] = w2;
    }
    if (has_gate) {
        ck_tensor wd = {"gate.wd", d, d, NULL, NULL};
        ck_tensor bd = {"gate.bd", 1, d, NULL, NULL};
        t[k++] = wd;
        t[k++] = bd;
    }
    *n = k;
    return IADSR_OK;
}

/* Files of models that need nothing newer are written exactly as 1.0, so
 * that 0.1 readers keep loading them. */
static int needs_1_1(const iadsr_model_params *hp)
{
    return hp->flags != 0 || hp->backbone != IADSR_BACKBONE_SASREC;
}

static uint32_t n_keys_written(const ck_src *src)
{
    const iadsr_model_params *hp = &src->m->hp;
    uint32_t n = K_MODEL_FLAGS; /* the 1.0 keys */
    if (hp->flags)
        n += 1;
    if (hp->backbone == IADSR_BACKBONE_CASER)
        n += 3;
    if (src->a)
        n += K_GATE_FLAGS - K_ALIGN_SEM_DIM;
    if (src->g)
        n += K_COUNT - K_GATE_FLAGS;
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

static void w_kv_f32(wbuf *w, int k, float v)
{
    w_key(w, k);
    w_u32(w, f32_bits(v));
}

/* What the writer computes before emitting anything. */
typedef struct plan {
    int n_tensors;
    ck_tensor t[MAX_TENSORS];
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
static void write_prelude(const ck_src *src, plan *pl, wbuf *w)
{
    const iadsr_model *m = src->m;
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
    if (src->a) {
        w_kv_i32(w, K_ALIGN_SEM_DIM, src->a->sem_dim);
        w_kv_f32(w, K_ALIGN_TAU, src->a->tau_align);
    }
    if (src->g) {
        const iadsr_denoise_params *gp = &src->g->p;
        w_key(w, K_GATE_FLAGS);
        w_u32(w, gp->flags);
        w_kv_f32(w, K_GATE_LAMBDA_ALIGN, gp->lambda_align);
        w_kv_f32(w, K_GATE_LAMBDA_RECON, gp->lambda_recon);
        w_kv_f32(w, K_GATE_TAU_ALIGN, gp->tau_align);
        w_kv_f32(w, K_GATE_TAU_GUMBEL, gp->tau_gumbel);
        w_kv_f32(w, K_GATE_THETA, gp->theta);
        w_kv_f32(w, K_GATE_MAX_DROP, gp->max_drop);
        w_kv_i32(w, K_GATE_PROTECT_LAST, gp->protect_last);
        w_key(w, K_GATE_SEED);
        w_u64(w, gp->seed);
    }
    pl->meta_end = w->len;
    w_u32(w, w->p ? iadsr__crc32c(0, w->p + HDR_SIZE, pl->meta_end - HDR_SIZE)
                  : 0);

    /* tensor directory */
    size_t dir_start = w->len;
    for (int i = 0; i < pl->n_tensors; i++) {
        const ck_tensor *t = &pl->t[i];
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
    int denoiser = src->a != NULL || src->g != NULL;
    memcpy(hdr, SIGNATURE, sizeof SIGNATURE);
    put_u32le(hdr + HDR_OFF_MAJOR, IADSR__FORMAT_MAJOR);
    /* A model without flags is written exactly as format 1.0, so that
     * 0.1 readers keep loading it. */
    put_u32le(hdr + HDR_OFF_MINOR, denoiser        ? MINOR_DENOISER
                                   : needs_1_1(hp) ? MINOR_MODEL
                                                   : MINOR_BASE);
    put_u32le(hdr + HDR_OFF_HEADER_SIZE, HDR_SIZE);
    put_u32le(hdr + HDR_OFF_KIND, KIND_MODEL);
    put_u32le(hdr + HDR_OFF_REQUIRED, (hp->flags ? REQ_MODEL_FLAGS : 0u) |
                                          (denoiser ? REQ_DENOISER : 0u));
    put_u32le(hdr + HDR_OFF_OPTIONAL, 0);
    put_u32le(hdr + HDR_OFF_N_KV, n_keys_written(src));
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
static int plan_sizes(const ck_src *src, plan *pl)
{
    const iadsr_model *m = src->m;
    const iadsr__layout *l = &m->layout;
    int rc = list_tensors(l, m->hp.dim, src->a ? src->a->sem_dim : 0,
                          src->g != NULL, pl->t, &pl->n_tensors);
    if (rc)
        return rc;
    for (int i = 0; i < l->n_tensors; i++)
        pl->t[i].src = m->w + l->t[i].offset;
    int k = l->n_tensors;
    if (src->a) {
        pl->t[k++].src = src->a->w1;
        pl->t[k++].src = src->a->w2;
    }
    if (src->g) {
        pl->t[k++].src = src->g->wd;
        pl->t[k++].src = src->g->bd;
    }
    uint64_t pos = 0;
    for (int i = 0; i < pl->n_tensors; i++) {
        const ck_tensor *t = &pl->t[i];
        uint64_t n, nb;
        size_t nl = strnlen(t->name, NAME_LEN_MAX + 1);
        if (nl < 1 || nl > NAME_LEN_MAX || t->rows < 1 || t->cols < 1 ||
            !mul_u64((uint64_t)t->rows, (uint64_t)t->cols, &n) ||
            !mul_u64(n, 4, &nb) || !align_up_u64(pos, WRITE_ALIGNMENT, &pos) ||
            pos > UINT64_MAX - nb)
            return iadsr__err(IADSR_ERR_GENERIC,
                              "checkpoint: tensor %d ('%s') has an invalid "
                              "name or shape",
                              i, t->name);
        pl->off[i] = pos;
        pl->nbytes[i] = nb;
        pl->crc[i] = 0;
        pos += nb;
    }
    wbuf w = {NULL, 0};
    write_prelude(src, pl, &w);
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

/* NUMERIC naming the first non-finite weight of @p t, or IADSR_OK. */
static int check_finite(const ck_tensor *t)
{
    const float *w = t->src;
    size_t n = (size_t)t->rows * (size_t)t->cols;
    for (size_t j = 0; j < n; j++)
        if (!isfinite(w[j]))
            return iadsr__err(IADSR_ERR_NUMERIC,
                              "checkpoint: cannot save: tensor '%s' element "
                              "%zu (row %lld, column %lld) is %s",
                              t->name, j, (long long)(j / (size_t)t->cols),
                              (long long)(j % (size_t)t->cols),
                              isnan(w[j]) ? "NaN" : "infinite");
    return IADSR_OK;
}

/* First pass over the weights: refuse non-finite values, compute each
 * tensor's CRC-32C over its little-endian encoding. */
static int plan_checksums(plan *pl)
{
    uint8_t chunk[CHUNK_FLOATS * 4];
    for (int i = 0; i < pl->n_tensors; i++) {
        const ck_tensor *t = &pl->t[i];
        const float *w = t->src;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        uint32_t crc = 0;
        int rc = check_finite(t);
        if (rc)
            return rc;
        for (size_t j = 0; j < n; j += CHUNK_FLOATS) {
            size_t k = n - j < CHUNK_FLOATS ? n - j : CHUNK_FLOATS;
            encode_f32(chunk, w + j, k);
            crc = iadsr__crc32c(crc, chunk, 4 * k);
        }
        pl->crc[i] = crc;
    }
    return IADSR_OK;
}

/* Output: the caller's memory, or an atomic file through a staging
 * buffer (the file keeps the first write error; its commit reports it). */
typedef struct sink {
    uint8_t *mem;
    iadsr__atomic_file *file;
    uint8_t *stage;
    size_t staged;
    size_t pos;
} sink;

static void sink_flush(sink *s)
{
    if (!s->mem && s->staged)
        iadsr__atomic_put(s->file, s->stage, s->staged); /* no-op after an error */
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
    while (n > 0 && !(s->file && s->file->err)) {
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
static int emit(const ck_src *src, plan *pl, sink *s)
{
    wbuf w;
    w.p = iadsr__malloc((size_t)pl->data_offset);
    w.len = 0;
    if (!w.p)
        return iadsr__err(IADSR_ERR_NOMEM,
                          "checkpoint: out of memory (%zu bytes)",
                          (size_t)pl->data_offset);
    write_prelude(src, pl, &w);
    sink_put(s, w.p, w.len);
    iadsr__free(w.p);

    uint8_t chunk[CHUNK_FLOATS * 4];
    for (int i = 0; i < pl->n_tensors; i++) {
        const ck_tensor *t = &pl->t[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        sink_zeros(s, pl->data_offset + pl->off[i] - s->pos);
        for (size_t j = 0; j < n; j += CHUNK_FLOATS) {
            size_t k = n - j < CHUNK_FLOATS ? n - j : CHUNK_FLOATS;
            encode_f32(chunk, t->src + j, k);
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
    ck_src src = {m, NULL, NULL};
    plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan_sizes(&src, &pl);
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
    if ((rc = plan_checksums(&pl)) != IADSR_OK)
        return rc;
    sink s;
    memset(&s, 0, sizeof s);
    s.mem = buf;
    return emit(&src, &pl, &s);
}

/* ---- atomic file save ---------------------------------------------------- */

/* The atomic save of docs/FORMAT.md §10 for iadsr_model_save() and
 * iadsr_checkpoint_save() (@p fn names the caller in messages). The
 * handles in @p src are already checked. */
static int save_file(const ck_src *src, const char *path, uint32_t flags,
                     const char *fn)
{
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is %s", fn,
                          path ? "empty" : "NULL");
    if (flags & ~IADSR_SAVE_NO_FSYNC)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: unknown flag bits 0x%x", fn,
                          (unsigned)(flags & ~IADSR_SAVE_NO_FSYNC));

    plan pl;
    memset(&pl, 0, sizeof pl);
    int rc = plan_sizes(src, &pl);
    if (rc == IADSR_OK)
        rc = plan_checksums(&pl);
    if (rc)
        return rc;

    sink s;
    memset(&s, 0, sizeof s);
    s.stage = iadsr__malloc(STAGE_BYTES);
    if (!s.stage)
        return iadsr__err(IADSR_ERR_NOMEM, "%s: out of memory", fn);
    iadsr__atomic_file file;
    rc = iadsr__atomic_begin(&file, path);
    if (rc == IADSR_OK) {
        s.file = &file;
        rc = emit(src, &pl, &s);
        if (rc == IADSR_OK)
            rc = iadsr__atomic_commit(&file, flags);
        else
            iadsr__atomic_abort(&file);
    }
    iadsr__free(s.stage);
    return rc == IADSR_OK ? rc : iadsr__err_prefix(rc, "%s", fn);
}

int iadsr_model_save(const iadsr_model *m, const char *path, uint32_t flags)
{
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "model_save: %s",
                          m ? "not a model handle" : "model is NULL");
    ck_src src = {m, NULL, NULL};
    return save_file(&src, path, flags, "model_save");
}

int iadsr_checkpoint_save(const iadsr_model *m, const iadsr_aligner *a,
                          const iadsr_gate *g, const char *path,
                          uint32_t flags)
{
    if (!iadsr__model_ok(m))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "checkpoint_save: %s",
                          m ? "not a model handle" : "model is NULL");
    if (a && !iadsr__aligner_ok(a))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_save: not an aligner handle");
    if (g && !iadsr__gate_ok(g))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_save: not a gate handle");
    if (a && a->dim != m->hp.dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "checkpoint_save: the aligner's width d = %d "
                          "differs from the model's dim = %d",
                          (int)a->dim, (int)m->hp.dim);
    if (g && g->dim != m->hp.dim)
        return iadsr__err(IADSR_ERR_DIM_MISMATCH,
                          "checkpoint_save: the gate's width d = %d differs "
                          "from the model's dim = %d",
                          (int)g->dim, (int)m->hp.dim);
    /* the reader's bounds: never write a file that cannot be loaded */
    if (a && (a->sem_dim < 1 || a->sem_dim > SEM_DIM_MAX))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_save: the aligner's D = %d is outside "
                          "1..%d",
                          (int)a->sem_dim, SEM_DIM_MAX);
    if (a && !iadsr__aligner_finite(a)) {
        ck_tensor w[2] = {{"align.w1", a->sem_dim, a->dim, a->w1, NULL},
                          {"align.w2", a->sem_dim, a->dim, a->w2, NULL}};
        int rc = check_finite(&w[0]);
        if (rc == IADSR_OK)
            rc = check_finite(&w[1]);
        if (rc == IADSR_OK) /* the weights are fine: it is tau */
            rc = iadsr__err(IADSR_ERR_NUMERIC,
                            "checkpoint: cannot save: the aligner's "
                            "tau_align = %g is not a positive number",
                            (double)a->tau_align);
        return rc;
    }
    if (g) {
        iadsr_denoise_params dp;
        if (iadsr__denoise_params_get(&dp, &g->p) != IADSR_OK)
            return iadsr__err_prefix(IADSR_ERR_INVALID_ARG,
                                     "checkpoint_save: the gate's settings");
        if (!iadsr__gate_finite(g)) {
            ck_tensor w[2] = {{"gate.wd", g->dim, g->dim, g->wd, NULL},
                              {"gate.bd", 1, g->dim, g->bd, NULL}};
            int rc = check_finite(&w[0]);
            return rc ? rc : check_finite(&w[1]);
        }
    }
    ck_src src = {m, a, g};
    return save_file(&src, path, flags, "checkpoint_save");
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

/* The aligner and gate settings of a 1.2 file, as stored (not validated). */
typedef struct comp_meta {
    int has_aligner, has_gate;
    int32_t sem_dim;
    float align_tau;
    iadsr_denoise_params gp;
} comp_meta;

/* A component's keys [first, last] come all or none: sets *present, or
 * FORMAT naming the first missing key. */
static int component_keys(const kv_val *v, int first, int last,
                          const char *what, int *present)
{
    int n = 0;
    for (int k = first; k <= last; k++)
        n += v[k].present;
    *present = n > 0;
    if (n == 0 || n == last - first + 1)
        return IADSR_OK;
    for (int k = first; k <= last; k++)
        if (!v[k].present)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: metadata key '%s' is missing "
                              "(the file has other %s keys)",
                              KEYS[k].key, what);
    return IADSR_OK; /* not reached */
}

static float kv_f32(const kv_val *v, int k)
{
    return bits_f32((uint32_t)v[k].u);
}

/* Format 1.2 keys: presence (all or none per component, in agreement with
 * required_flags bit 1) and raw values. */
static int parse_components(const kv_val *v, const header *h, comp_meta *c)
{
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = component_keys(v, K_ALIGN_SEM_DIM, K_ALIGN_TAU, "aligner",
                             &c->has_aligner)) != IADSR_OK ||
        (rc = component_keys(v, K_GATE_FLAGS, K_GATE_SEED, "gate",
                             &c->has_gate)) != IADSR_OK)
        return rc;
    if (!(h->required & REQ_DENOISER) != !(c->has_aligner || c->has_gate))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: the file %s aligner or gate keys but "
                          "required_flags is 0x%x",
                          c->has_aligner || c->has_gate ? "has" : "has no",
                          (unsigned)h->required);
    c->sem_dim = (int32_t)(uint32_t)v[K_ALIGN_SEM_DIM].u;
    c->align_tau = kv_f32(v, K_ALIGN_TAU);
    iadsr_denoise_params *gp = &c->gp;
    gp->struct_size = (uint32_t)sizeof *gp;
    gp->flags = (uint32_t)v[K_GATE_FLAGS].u;
    gp->lambda_align = kv_f32(v, K_GATE_LAMBDA_ALIGN);
    gp->lambda_recon = kv_f32(v, K_GATE_LAMBDA_RECON);
    gp->tau_align = kv_f32(v, K_GATE_TAU_ALIGN);
    gp->tau_gumbel = kv_f32(v, K_GATE_TAU_GUMBEL);
    gp->theta = kv_f32(v, K_GATE_THETA);
    gp->max_drop = kv_f32(v, K_GATE_MAX_DROP);
    gp->protect_last = (int32_t)(uint32_t)v[K_GATE_PROTECT_LAST].u;
    gp->reserved0 = 0;
    gp->seed = v[K_GATE_SEED].u;
    return IADSR_OK;
}

/* The stored settings against the API's bounds (iadsr_aligner_create,
 * iadsr_gate_create): out of bounds is FORMAT, unknown gate flag bits are
 * UNSUPPORTED (they may be valid for a later release). On success
 * c->gp is the validated gate settings. */
static int check_components(comp_meta *c)
{
    iadsr_denoise_params dp;
    int rc;
    if (c->has_aligner) {
        if (c->sem_dim < 1 || c->sem_dim > SEM_DIM_MAX)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: iadsr.align_sem_dim = %d is "
                              "outside 1..%d",
                              (int)c->sem_dim, SEM_DIM_MAX);
        iadsr_denoise_params ap;
        iadsr_denoise_params_init(&ap);
        ap.tau_align = c->align_tau;
        if (iadsr__denoise_params_get(&dp, &ap) != IADSR_OK)
            return iadsr__err_prefix(IADSR_ERR_FORMAT,
                                     "checkpoint: invalid aligner settings "
                                     "(iadsr.align_tau)");
    }
    if (c->has_gate) {
        rc = iadsr__denoise_params_get(&dp, &c->gp);
        if (rc == IADSR_ERR_UNSUPPORTED)
            return iadsr__err_prefix(rc, "checkpoint: gate settings");
        if (rc)
            return iadsr__err_prefix(IADSR_ERR_FORMAT,
                                     "checkpoint: invalid gate settings");
        c->gp = dp;
    }
    return IADSR_OK;
}

/* Metadata: structure, CRC, then keys and values. Fills @p hp (not yet
 * validated), the provenance fields and the component settings. */
static int parse_metadata(rd *r, const header *h, iadsr_model_params *hp,
                          int32_t *epochs, float *best, comp_meta *comp)
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
    return parse_components(v, h, comp);
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
 * exactly the @p n_exp tensors of @p exp, in order; then ranges, padding,
 * checksums and finite weights. */
static int check_directory(rd *r, const header *h, const ck_tensor *exp,
                           int n_exp)
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

    if ((int64_t)h->n_tensors != (int64_t)n_exp)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: the directory lists %u tensors, the "
                          "hyper-parameters imply %d",
                          (unsigned)h->n_tensors, n_exp);

    /* second pass: every entry against the layout, ranges and padding */
    uint64_t data_len = h->file_size - h->data_offset;
    uint64_t prev_end = 0;
    rd s = {b, end, start};
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        const ck_tensor *t = &exp[i];
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
                              exp[i].name, (unsigned)e.crc,
                              (unsigned)crc);
    }
    s.pos = start;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        (void)read_dir_entry(&s, i, &e);
        const uint8_t *p = b + (size_t)(h->data_offset + e.offset);
        size_t n = (size_t)(e.nbytes / 4);
        int64_t cols = exp[i].cols;
        for (size_t j = 0; j < n; j++) {
            float f = bits_f32(get_u32le(p + 4 * j));
            if (!isfinite(f))
                return iadsr__err(IADSR_ERR_NUMERIC,
                                  "checkpoint: tensor '%s' element %zu (row "
                                  "%lld, column %lld) is %s",
                                  exp[i].name, j,
                                  (long long)(j / (size_t)cols),
                                  (long long)(j % (size_t)cols),
                                  isnan(f) ? "NaN" : "infinite");
        }
    }
    return IADSR_OK;
}

/* Scratch of the reader: the backbone's layout and the expected tensors. */
typedef struct expect {
    iadsr__layout lay;
    ck_tensor t[MAX_TENSORS];
    int n;
} expect;

/* Validate the whole input (docs/FORMAT.md §8), then build the model and,
 * when @p aout / @p gout are not NULL, the aligner and gate the file holds
 * (NULL when it has none). Nothing is published on failure. */
static int load_buffer(iadsr_model **out, iadsr_aligner **aout,
                       iadsr_gate **gout, const uint8_t *b, size_t len)
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
    comp_meta comp;
    if ((rc = parse_metadata(&r, &h, &hp, &epochs, &best, &comp)) !=
        IADSR_OK)
        return rc;
    rc = iadsr__model_params_check(&hp);
    if (rc == IADSR_ERR_UNSUPPORTED) /* e.g. a backbone of a later release */
        return iadsr__err_prefix(rc, "checkpoint");
    if (rc)
        return iadsr__err_prefix(IADSR_ERR_FORMAT,
                                 "checkpoint: invalid hyper-parameters");
    if ((rc = check_components(&comp)) != IADSR_OK)
        return rc;

    expect *ex = iadsr__malloc(sizeof *ex);
    if (!ex)
        return iadsr__err(IADSR_ERR_NOMEM, "checkpoint: out of memory");
    iadsr__layout *lay = &ex->lay;
    rc = iadsr__model_layout(&hp, lay);
    if (rc) {
        rc = rc == IADSR_ERR_UNSUPPORTED || rc == IADSR_ERR_NOMEM
                 ? iadsr__err_prefix(rc, "checkpoint")
                 : iadsr__err_prefix(IADSR_ERR_FORMAT,
                                     "checkpoint: invalid hyper-parameters");
        goto done;
    }
    rc = list_tensors(lay, hp.dim, comp.has_aligner ? comp.sem_dim : 0,
                      comp.has_gate, ex->t, &ex->n);
    if (rc) {
        /* more tensors than a file may list: it cannot be valid */
        rc = iadsr__err_prefix(IADSR_ERR_FORMAT, "invalid file");
        goto done;
    }
    if ((rc = check_directory(&r, &h, ex->t, ex->n)) != IADSR_OK)
        goto done;

    /* Everything is proven: allocate and copy. */
    iadsr_model *m = NULL;
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    if ((rc = iadsr__model_alloc(&m, &hp)) != IADSR_OK)
        goto done;
    if (m->layout.n_tensors != lay->n_tensors ||
        m->layout.n_floats != lay->n_floats) {
        iadsr_model_free(m);
        rc = iadsr__err(IADSR_ERR_GENERIC,
                        "checkpoint: model layout changed between calls");
        goto done;
    }
    if (aout && comp.has_aligner &&
        (rc = iadsr__aligner_alloc(&a, hp.dim, comp.sem_dim,
                                   comp.align_tau)) != IADSR_OK) {
        iadsr_model_free(m);
        goto done;
    }
    if (gout && comp.has_gate &&
        (rc = iadsr__gate_alloc(&g, hp.dim, &comp.gp)) != IADSR_OK) {
        iadsr_aligner_free(a);
        iadsr_model_free(m);
        goto done;
    }
    /* destinations in file order; components not wanted are skipped */
    for (int i = 0; i < lay->n_tensors; i++)
        ex->t[i].dst = m->w + m->layout.t[i].offset;
    int k = lay->n_tensors;
    if (comp.has_aligner) {
        ex->t[k++].dst = a ? a->w1 : NULL;
        ex->t[k++].dst = a ? a->w2 : NULL;
    }
    if (comp.has_gate) {
        ex->t[k++].dst = g ? g->wd : NULL;
        ex->t[k++].dst = g ? g->bd : NULL;
    }
    const uint8_t *data = b + (size_t)h.data_offset;
    uint64_t pos = 0;
    for (int i = 0; i < ex->n; i++) {
        const ck_tensor *t = &ex->t[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        align_up_u64(pos, h.alignment, &pos);
        const uint8_t *src = data + (size_t)pos;
        if (t->dst)
            for (size_t j = 0; j < n; j++)
                t->dst[j] = bits_f32(get_u32le(src + 4 * j));
        pos += 4 * (uint64_t)n;
    }
    m->epochs_trained = epochs;
    m->best_valid_ndcg10 = best;
    if ((rc = iadsr__model_finalize(m)) != IADSR_OK) {
        iadsr_gate_free(g);
        iadsr_aligner_free(a);
        iadsr_model_free(m);
        goto done;
    }
    *out = m;
    if (aout)
        *aout = a;
    if (gout)
        *gout = g;
    rc = IADSR_OK;
done:
    iadsr__free(ex);
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
    return load_buffer(out, NULL, NULL, buf, len);
}

int iadsr_checkpoint_load_from_buffer(iadsr_model **m,
                                      iadsr_aligner **aligner,
                                      iadsr_gate **gate, const void *buf,
                                      size_t len, uint32_t flags)
{
    if (aligner)
        *aligner = NULL;
    if (gate)
        *gate = NULL;
    if (!m)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_load_from_buffer: m is NULL");
    *m = NULL;
    if (!buf)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_load_from_buffer: buf is NULL");
    if (flags != 0)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint_load_from_buffer: unknown flag bits "
                          "0x%x",
                          (unsigned)flags);
    return load_buffer(m, aligner, gate, buf, len);
}

static int load_io_err(const char *fn, const char *what, const char *path,
                       int e)
{
    char eb[128];
    return iadsr__err(IADSR_ERR_IO, "%s: %s '%s': %s", fn, what, path,
                      iadsr__errno_text(e, eb, sizeof eb));
}

/* Read @p path whole (regular file, at most 16 GiB, no concurrent change of
 * size) and load it; @p fn names the caller in messages. Arguments are
 * already checked and the outputs cleared. */
static int load_file(iadsr_model **out, iadsr_aligner **aout,
                     iadsr_gate **gout, const char *path, const char *fn)
{
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return load_io_err(fn, "cannot open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return load_io_err(fn, "cannot stat", path, e);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return iadsr__err(IADSR_ERR_IO, "%s: '%s' is not a regular file", fn,
                          path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > LOAD_MAX_BYTES ||
        (uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: '%s' is %lld bytes; checkpoints are limited "
                          "to 16 GiB",
                          fn, path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = iadsr__malloc(size);
    if (!buf) {
        close(fd);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes for '%s'", fn, size,
                          path);
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
        rc = load_io_err(fn, "cannot read", path, e);
    } else if (got != size) {
        rc = iadsr__err(IADSR_ERR_IO, "%s: '%s' changed size while being read",
                        fn, path);
    } else {
        rc = load_buffer(out, aout, gout, buf, size);
        if (rc)
            iadsr__err_prefix(rc, "%s", path);
    }
    iadsr__free(buf);
    return rc;
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
    return load_file(out, NULL, NULL, path, "model_load");
}

int iadsr_checkpoint_load(iadsr_model **m, iadsr_aligner **aligner,
                          iadsr_gate **gate, const char *path, uint32_t flags)
{
    if (aligner)
        *aligner = NULL;
    if (gate)
        *gate = NULL;
    if (!m)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "checkpoint_load: m is NULL");
    *m = NULL;
    if (!path)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_load: path is NULL");
    if (flags != 0)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint_load: unknown flag bits 0x%x",
                          (unsigned)flags);
    return load_file(m, aligner, gate, path, "checkpoint_load");
}
