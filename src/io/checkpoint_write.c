/* libiadsr - checkpoint writer (format specification: docs/FORMAT.md).
 * SPDX-License-Identifier: MIT
 *
 * Every field is encoded byte by byte in little-endian order (never a
 * struct written as such). Tensor checksums and the finite-weight check are
 * computed in a first pass, then the prelude (header, metadata, directory)
 * and the tensor data are streamed either into the caller's buffer or into
 * the atomic file writer of common/fileio.c (temporary file renamed over the
 * target).
 *
 * Since format 1.2 a checkpoint may also carry the IADSR aligner and gate
 * (iadsr_checkpoint_save): their tensors follow the backbone's. Since 1.4
 * the model's external item ids follow them (a u64 and a u8 tensor).
 */
#include "io/checkpoint_format.h"

#include "backbone/encoder.h"
#include "backbone/model.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/params.h"
#include "denoise/denoise.h"
#include "iadsr.h"

#include <math.h>
#include <string.h>

/* Floats encoded per step (checksums, output): a 4 KiB stack chunk. */
#define CHUNK_FLOATS 1024

/* ---- little-endian encoding ---------------------------------------------- */

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

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* What one checkpoint holds: a backbone and, since format 1.2, optionally
 * an aligner and a gate of the same width. */
typedef struct ck_src {
    const iadsr_model *m;
    const iadsr_aligner *a; /* NULL: none */
    const iadsr_gate *g;    /* NULL: none */
} ck_src;

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

static void w_named_key(wbuf *w, const char *key, uint32_t type)
{
    size_t n = strlen(key);
    w_u32(w, (uint32_t)n);
    w_bytes(w, key, n);
    w_u32(w, type);
}

static void w_key(wbuf *w, int k)
{
    w_named_key(w, iadsr__ck_keys[k].key, iadsr__ck_keys[k].type);
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

/* ---- backbone-specific keys ---------------------------------------------
 * The backbone's own hyper-parameters (format 1.1): one i32 key each, in
 * the order of its hparams table in the registry. */

static uint32_t n_backbone_keys(const iadsr_model_params *hp)
{
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(hp->backbone);
    return ops ? (uint32_t)ops->n_hparams : 0u;
}

static void write_backbone_keys(wbuf *w, const iadsr_model_params *hp)
{
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(hp->backbone);
    for (int k = 0; ops && k < ops->n_hparams; k++) {
        w_named_key(w, ops->hparams[k].key, CK_T_I32);
        w_u32(w, (uint32_t)iadsr__hparam_get(hp, &ops->hparams[k]));
    }
}

/* Files of models that need nothing newer are written exactly as 1.0, so
 * that 0.1 readers keep loading them. */
static int needs_1_1(const iadsr_model_params *hp)
{
    /* 1.0 described the default backbone only */
    return hp->flags != 0 ||
           iadsr__encoder_ops_for(hp->backbone) != iadsr__encoder_ops_at(0);
}

static uint32_t n_keys_written(const ck_src *src)
{
    const iadsr_model_params *hp = &src->m->hp;
    uint32_t n = CK_K_MODEL_FLAGS; /* the 1.0 keys */
    if (hp->flags)
        n += 1;
    n += n_backbone_keys(hp);
    if (src->a)
        n += CK_K_GATE_FLAGS - CK_K_ALIGN_SEM_DIM;
    if (src->g)
        n += CK_K_GATE_SEED + 1 - CK_K_GATE_FLAGS;
    if (src->a && src->a->prov.known)
        n += 3;
    if (src->g && src->g->prov.known)
        n += 3;
    if (src->m->ids)
        n += 1;
    if (src->m->history_repeats >= 0)
        n += 1;
    return n;
}

/* A part's training record (format 1.3): backbone, n_items, semantic
 * fingerprint from key @p k0 on; nothing for a part without one. */
static void write_provenance(wbuf *w, const iadsr__provenance *pv, int k0)
{
    if (!pv || !pv->known)
        return;
    w_kv_i32(w, k0, pv->backbone);
    w_kv_i32(w, k0 + 1, pv->n_items);
    w_key(w, k0 + 2);
    w_u64(w, pv->sem_fp);
}

/* What the writer computes before emitting anything. */
typedef struct plan {
    int n_tensors;
    iadsr__ck_tensor t[CK_MAX_TENSORS];
    size_t meta_end;      /* offset of the metadata CRC */
    size_t dir_end;       /* end of the directory CRC */
    uint64_t data_offset; /* absolute */
    uint64_t file_size;
    uint64_t off[CK_MAX_TENSORS];    /* relative to data_offset */
    uint64_t nbytes[CK_MAX_TENSORS];
    uint32_t crc[CK_MAX_TENSORS];
} plan;

/* Header + metadata + metadata CRC + directory + directory CRC + zero
 * padding up to data_offset. With w->p == NULL only the lengths are
 * computed (pl->meta_end, pl->dir_end). */
static void write_prelude(const ck_src *src, plan *pl, wbuf *w)
{
    const iadsr_model *m = src->m;
    const iadsr_model_params *hp = &m->hp;
    uint8_t hdr[CK_HDR_SIZE];

    memset(hdr, 0, sizeof hdr);
    w->len = 0;
    w_bytes(w, hdr, CK_HDR_SIZE); /* filled in at the end */

    /* metadata: the eight i32 hyper-parameters in key order */
    const int32_t shape[] = {hp->backbone,    hp->n_items,  hp->dim,
                             hp->max_seq_len, hp->n_layers, hp->n_heads,
                             hp->ffn_dim,     hp->activation};
    for (int k = CK_K_BACKBONE; k <= CK_K_ACTIVATION; k++)
        w_kv_i32(w, k, shape[k - CK_K_BACKBONE]);
    w_key(w, CK_K_DROPOUT);
    w_u32(w, f32_bits(hp->dropout));
    w_key(w, CK_K_SEED);
    w_u64(w, hp->seed);
    w_kv_i32(w, CK_K_EPOCHS_TRAINED, m->epochs_trained);
    w_key(w, CK_K_BEST_VALID_NDCG10);
    w_u32(w, f32_bits(m->best_valid_ndcg10));
    w_key(w, CK_K_LIBRARY_VERSION);
    w_u32(w, (uint32_t)strlen(IADSR_VERSION_STRING));
    w_bytes(w, IADSR_VERSION_STRING, strlen(IADSR_VERSION_STRING));
    if (hp->flags) {
        w_key(w, CK_K_MODEL_FLAGS);
        w_u32(w, hp->flags);
    }
    write_backbone_keys(w, hp);
    if (src->a) {
        w_kv_i32(w, CK_K_ALIGN_SEM_DIM, src->a->sem_dim);
        w_kv_f32(w, CK_K_ALIGN_TAU, src->a->tau_align);
    }
    if (src->g) {
        const iadsr_denoise_params *gp = &src->g->p;
        /* the six f32 settings in key order */
        const float gf[] = {gp->lambda_align, gp->lambda_recon,
                            gp->tau_align,    gp->tau_gumbel,
                            gp->theta,        gp->max_drop};
        w_key(w, CK_K_GATE_FLAGS);
        w_u32(w, gp->flags);
        for (int k = CK_K_GATE_LAMBDA_ALIGN; k <= CK_K_GATE_MAX_DROP; k++)
            w_kv_f32(w, k, gf[k - CK_K_GATE_LAMBDA_ALIGN]);
        w_kv_i32(w, CK_K_GATE_PROTECT_LAST, gp->protect_last);
        w_key(w, CK_K_GATE_SEED);
        w_u64(w, gp->seed);
    }
    write_provenance(w, src->a ? &src->a->prov : NULL,
                     CK_K_ALIGN_TRAINED_BACKBONE);
    write_provenance(w, src->g ? &src->g->prov : NULL,
                     CK_K_GATE_TRAINED_BACKBONE);
    if (m->ids) {
        w_key(w, CK_K_ITEM_ID_BYTES);
        w_u64(w, iadsr__item_ids_bytes(m->ids));
    }
    if (m->history_repeats >= 0)
        w_kv_i32(w, CK_K_HISTORY_REPEATS, m->history_repeats);
    pl->meta_end = w->len;
    w_u32(w, w->p ? iadsr__crc32c(0, w->p + CK_HDR_SIZE,
                                  pl->meta_end - CK_HDR_SIZE)
                  : 0);

    /* tensor directory */
    size_t dir_start = w->len;
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__ck_tensor *t = &pl->t[i];
        size_t nl = strlen(t->name);
        w_u32(w, (uint32_t)nl);
        w_bytes(w, t->name, nl);
        w_u32(w, t->dtype ? t->dtype : CK_DTYPE_F32);
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
    int provenance = (src->a && src->a->prov.known) ||
                     (src->g && src->g->prov.known);
    int items = m->ids != NULL || m->history_repeats >= 0;
    memcpy(hdr, iadsr__ck_signature, sizeof iadsr__ck_signature);
    put_u32le(hdr + CK_HDR_OFF_MAJOR, IADSR__FORMAT_MAJOR);
    /* A model without flags is written exactly as format 1.0, so that
     * 0.1 readers keep loading it. */
    put_u32le(hdr + CK_HDR_OFF_MINOR, items           ? CK_MINOR_ITEMS
                                   : provenance    ? CK_MINOR_PROVENANCE
                                   : denoiser      ? CK_MINOR_DENOISER
                                   : needs_1_1(hp) ? CK_MINOR_MODEL
                                                   : CK_MINOR_BASE);
    put_u32le(hdr + CK_HDR_OFF_HEADER_SIZE, CK_HDR_SIZE);
    put_u32le(hdr + CK_HDR_OFF_KIND, CK_KIND_MODEL);
    put_u32le(hdr + CK_HDR_OFF_REQUIRED, (hp->flags ? CK_REQ_MODEL_FLAGS : 0u) |
                                          (denoiser ? CK_REQ_DENOISER : 0u) |
                                          (m->ids ? CK_REQ_ITEM_IDS : 0u));
    put_u32le(hdr + CK_HDR_OFF_OPTIONAL, 0);
    put_u32le(hdr + CK_HDR_OFF_N_KV, n_keys_written(src));
    put_u32le(hdr + CK_HDR_OFF_N_TENSORS, (uint32_t)pl->n_tensors);
    put_u32le(hdr + CK_HDR_OFF_ALIGNMENT, CK_WRITE_ALIGNMENT);
    put_u64le(hdr + CK_HDR_OFF_DATA_OFFSET, pl->data_offset);
    put_u64le(hdr + CK_HDR_OFF_FILE_SIZE, pl->file_size);
    put_u32le(hdr + CK_HDR_OFF_CRC, 0);
    put_u32le(hdr + CK_HDR_OFF_CRC, iadsr__ck_header_crc(hdr));
    memcpy(w->p, hdr, CK_HDR_SIZE);
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
    int rc = iadsr__ck_list_tensors(l, m->hp.dim, src->a ? src->a->sem_dim : 0,
                          src->g != NULL, src->g ? src->g->p.flags : 0u,
                          m->hp.n_items, iadsr__item_ids_bytes(m->ids),
                          pl->t, &pl->n_tensors);
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
        if (src->g->p.flags & IADSR_DENOISE_F_DETECT)
            pl->t[k++].src = src->g->det;
    }
    uint64_t pos = 0;
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__ck_tensor *t = &pl->t[i];
        uint64_t n, nb;
        size_t nl = strnlen(t->name, CK_NAME_LEN_MAX + 1);
        if (nl < 1 || nl > CK_NAME_LEN_MAX || t->rows < 1 || t->cols < 1 ||
            !ck_mul_u64((uint64_t)t->rows, (uint64_t)t->cols, &n) ||
            !ck_mul_u64(n, ck_dtype_size(t->dtype), &nb) ||
            !ck_align_up_u64(pos, CK_WRITE_ALIGNMENT, &pos) ||
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
    if (!ck_align_up_u64(pl->dir_end, CK_WRITE_ALIGNMENT, &data_offset) ||
        data_offset > UINT64_MAX - pos ||
        data_offset + pos > (uint64_t)SIZE_MAX)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: model too large for this platform");
    pl->data_offset = data_offset;
    pl->file_size = data_offset + pos;
    return IADSR_OK;
}

/* NUMERIC naming the first non-finite weight of @p t, or IADSR_OK. */
static int check_finite(const iadsr__ck_tensor *t)
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

/* Bytes [@p at, @p at + @p n) of the encoding of the item-id tensor @p t
 * (format 1.4) of model @p m into @p dst: item_ids.offsets (u64 offsets of
 * each id in the concatenation, n_items + 1 of them) or item_ids.bytes
 * (the ids back to back). @p at and @p n are multiples of 8 for the
 * offsets. */
static void encode_ids(const iadsr_model *m, const iadsr__ck_tensor *t,
                       uint8_t *dst, size_t at, size_t n)
{
    const iadsr__item_ids *ids = m->ids;
    if (t->dtype == CK_DTYPE_U64) {
        for (size_t j = 0; j < n / 8; j++) {
            size_t i = at / 8 + j; /* the pool has a NUL after each id */
            put_u64le(dst + 8 * j, (uint64_t)(ids->pos[i] - i));
        }
        return;
    }
    /* bytes: skip the NULs of the pool; find the id holding byte at */
    size_t lo = 0, hi = (size_t)ids->n; /* id i starts at pos[i] - i */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ids->pos[mid] - mid <= at)
            lo = mid;
        else
            hi = mid;
    }
    size_t i = lo, off = at - (ids->pos[lo] - lo), k = 0;
    while (k < n) {
        size_t len = ids->pos[i + 1] - ids->pos[i] - 1;
        size_t take = len - off < n - k ? len - off : n - k;
        memcpy(dst + k, ids->pool + ids->pos[i] + off, take);
        k += take;
        off = 0;
        i++;
    }
}

/* Encode the @p n bytes of tensor @p t from byte @p at on into @p dst. */
static void encode_chunk(const ck_src *src, const iadsr__ck_tensor *t,
                         uint8_t *dst, size_t at, size_t n)
{
    if (t->dtype == CK_DTYPE_U8 || t->dtype == CK_DTYPE_U64)
        encode_ids(src->m, t, dst, at, n);
    else
        encode_f32(dst, t->src + at / 4, n / 4);
}

/* First pass over the weights: refuse non-finite values, compute each
 * tensor's CRC-32C over its little-endian encoding. */
static int plan_checksums(const ck_src *src, plan *pl)
{
    uint8_t chunk[CHUNK_FLOATS * 8];
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__ck_tensor *t = &pl->t[i];
        size_t nb = (size_t)pl->nbytes[i];
        uint32_t crc = 0;
        int rc = t->dtype > CK_DTYPE_F32 ? IADSR_OK : check_finite(t);
        if (rc)
            return rc;
        for (size_t j = 0; j < nb; j += sizeof chunk) {
            size_t k = nb - j < sizeof chunk ? nb - j : sizeof chunk;
            encode_chunk(src, t, chunk, j, k);
            crc = iadsr__crc32c(crc, chunk, k);
        }
        pl->crc[i] = crc;
    }
    return IADSR_OK;
}

/* Output: the caller's memory, or the atomic file writer (which stages
 * the bytes and keeps the first write error; its commit reports it). */
typedef struct sink {
    uint8_t *mem;
    iadsr__atomic_file *file;
    size_t pos;
} sink;

static void sink_put(sink *s, const void *src, size_t n)
{
    if (s->mem)
        memcpy(s->mem + s->pos, src, n);
    else
        (void)iadsr__atomic_put(s->file, src, n);
    s->pos += n;
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

    uint8_t chunk[CHUNK_FLOATS * 8];
    for (int i = 0; i < pl->n_tensors; i++) {
        const iadsr__ck_tensor *t = &pl->t[i];
        size_t nb = (size_t)pl->nbytes[i];
        if (s->file && s->file->err)
            break; /* the commit reports it; encoding more is wasted */
        sink_zeros(s, pl->data_offset + pl->off[i] - s->pos);
        for (size_t j = 0; j < nb; j += sizeof chunk) {
            size_t k = nb - j < sizeof chunk ? nb - j : sizeof chunk;
            encode_chunk(src, t, chunk, j, k);
            sink_put(s, chunk, k);
        }
    }
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
    if ((rc = plan_checksums(&src, &pl)) != IADSR_OK)
        return rc;
    sink s = {buf, NULL, 0};
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
        rc = plan_checksums(src, &pl);
    if (rc)
        return rc;

    iadsr__atomic_file file;
    rc = iadsr__atomic_begin(&file, path);
    if (rc == IADSR_OK) {
        sink s = {NULL, &file, 0};
        rc = emit(src, &pl, &s);
        if (rc == IADSR_OK)
            rc = iadsr__atomic_commit(&file, flags);
        else
            iadsr__atomic_abort(&file);
    }
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
    if (a && (a->sem_dim < 1 || a->sem_dim > CK_SEM_DIM_MAX))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "checkpoint_save: the aligner's D = %d is outside "
                          "1..%d",
                          (int)a->sem_dim, CK_SEM_DIM_MAX);
    if (a && !iadsr__aligner_finite(a)) {
        iadsr__ck_tensor w[2] = {{"align.w1", a->sem_dim, a->dim, a->w1, NULL, 0},
                          {"align.w2", a->sem_dim, a->dim, a->w2, NULL, 0}};
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
            /* the tensors written: the detector's only with the flag */
            iadsr__ck_tensor w[3] = {
                {"gate.wd", g->dim, g->dim, g->wd, NULL, 0},
                {"gate.bd", 1, g->dim, g->bd, NULL, 0},
                {CK_GATE_DET_NAME, 1, IADSR__GATE_DET, g->det, NULL, 0}};
            int nw = g->p.flags & IADSR_DENOISE_F_DETECT ? 3 : 2;
            for (int i = 0; i < nw; i++) {
                int rc = check_finite(&w[i]);
                if (rc)
                    return rc;
            }
            /* else: non-finite detector weights of a gate without the
             * flag, which are unused and not written */
        }
    }
    ck_src src = {m, a, g};
    return save_file(&src, path, flags, "checkpoint_save");
}
