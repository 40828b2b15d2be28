/* libiadsr - checkpoint reader (format specification: docs/FORMAT.md).
 * SPDX-License-Identifier: MIT
 *
 * The input is untrusted. Every count, length and offset is checked with
 * overflow-safe arithmetic against the bytes actually present, every
 * checksum and every weight is verified, and the hyper-parameters and the
 * tensor directory are cross-checked against each other, all before the
 * model is allocated. The validation order is the one documented in
 * FORMAT.md §8.
 *
 * Since format 1.2 a checkpoint may also carry the IADSR aligner and gate
 * (iadsr_checkpoint_load): their tensors follow the backbone's and go
 * through the same checks. Since 1.4 the model's external item ids may
 * follow (a u64 offsets and a u8 bytes tensor), validated in full.
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

/* iadsr_model_load() refuses files larger than this (docs/FORMAT.md). */
#define LOAD_MAX_BYTES ((uint64_t)16 << 30)

/* ---- little-endian decoding ---------------------------------------------- */

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t get_u64le(const uint8_t *p)
{
    return (uint64_t)get_u32le(p) | ((uint64_t)get_u32le(p + 4) << 32);
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case CK_T_I32: return "i32";
    case CK_T_U32: return "u32";
    case CK_T_I64: return "i64";
    case CK_T_U64: return "u64";
    case CK_T_F32: return "f32";
    case CK_T_STR: return "string";
    default: return "unknown";
    }
}

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

/* FORMAT: entry @p i of a section (@p what) runs past its end. */
static int past_end(const rd *r, const char *what, uint32_t i)
{
    return iadsr__err(IADSR_ERR_FORMAT,
                      "checkpoint: %s %u runs past data_offset %zu", what,
                      (unsigned)i, r->end);
}

/* The CRC-32C that closes the section [@p start, r->pos) (metadata or
 * directory): FORMAT when it runs past data_offset, CHECKSUM when it
 * differs. @p name and @p long_name name the section in the messages. */
static int check_section_crc(rd *r, size_t start, const char *name,
                             const char *long_name)
{
    size_t end = r->pos;
    uint32_t stored;
    if (!rd_u32(r, &stored))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %s checksum runs past data_offset",
                          name);
    uint32_t actual = iadsr__crc32c(0, r->b + start, end - start);
    if (stored != actual)
        return iadsr__err(IADSR_ERR_CHECKSUM,
                          "checkpoint: %s checksum mismatch (stored 0x%08x, "
                          "computed 0x%08x)",
                          long_name, (unsigned)stored, (unsigned)actual);
    return IADSR_OK;
}

typedef struct header {
    uint32_t major, minor, kind, required, optional;
    uint32_t n_kv, n_tensors, alignment;
    uint64_t data_offset, file_size;
} header;

static int check_header(const uint8_t *b, size_t len, header *h)
{
    if (len < sizeof iadsr__ck_signature ||
        memcmp(b, iadsr__ck_signature, sizeof iadsr__ck_signature) != 0) {
        if (len < sizeof iadsr__ck_signature &&
            memcmp(b, iadsr__ck_signature, len) == 0)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: truncated: %zu bytes, shorter "
                              "than the signature",
                              len);
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: bad signature (not a libiadsr "
                          "checkpoint, or mangled by a text-mode transfer)");
    }
    if (len < CK_HDR_OFF_MINOR + 4)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: truncated: %zu bytes, no version",
                          len);
    h->major = get_u32le(b + CK_HDR_OFF_MAJOR);
    h->minor = get_u32le(b + CK_HDR_OFF_MINOR);
    if (h->major != IADSR__FORMAT_MAJOR)
        return iadsr__err(IADSR_ERR_VERSION,
                          "checkpoint: format version %u.%u is not supported "
                          "(this library reads %d.x)",
                          (unsigned)h->major, (unsigned)h->minor,
                          IADSR__FORMAT_MAJOR);
    if (len < CK_HDR_SIZE)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: truncated: %zu bytes, the header alone "
                          "is %u",
                          len, CK_HDR_SIZE);
    uint32_t header_size = get_u32le(b + CK_HDR_OFF_HEADER_SIZE);
    if (header_size != CK_HDR_SIZE)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: header_size is %u, expected %u",
                          (unsigned)header_size, CK_HDR_SIZE);
    uint32_t stored = get_u32le(b + CK_HDR_OFF_CRC);
    uint32_t actual = iadsr__ck_header_crc(b);
    if (stored != actual)
        return iadsr__err(IADSR_ERR_CHECKSUM,
                          "checkpoint: header checksum mismatch (stored "
                          "0x%08x, computed 0x%08x)",
                          (unsigned)stored, (unsigned)actual);
    h->kind = get_u32le(b + CK_HDR_OFF_KIND);
    h->required = get_u32le(b + CK_HDR_OFF_REQUIRED);
    h->optional = get_u32le(b + CK_HDR_OFF_OPTIONAL);
    h->n_kv = get_u32le(b + CK_HDR_OFF_N_KV);
    h->n_tensors = get_u32le(b + CK_HDR_OFF_N_TENSORS);
    h->alignment = get_u32le(b + CK_HDR_OFF_ALIGNMENT);
    h->data_offset = get_u64le(b + CK_HDR_OFF_DATA_OFFSET);
    h->file_size = get_u64le(b + CK_HDR_OFF_FILE_SIZE);
    if (h->kind != CK_KIND_MODEL)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: kind %u is not supported (1 = model)",
                          (unsigned)h->kind);
    if (h->required & ~CK_REQUIRED_FLAGS_KNOWN)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: requires unknown features "
                          "(required_flags 0x%08x)",
                          (unsigned)(h->required & ~CK_REQUIRED_FLAGS_KNOWN));
    if (h->file_size != (uint64_t)len)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %s: the header says %llu bytes, got "
                          "%zu",
                          h->file_size > (uint64_t)len ? "truncated"
                                                        : "trailing bytes",
                          (unsigned long long)h->file_size, len);
    if (h->alignment < CK_ALIGN_MIN || h->alignment > CK_ALIGN_MAX ||
        (h->alignment & (h->alignment - 1)) != 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: alignment %u is not a power of two in "
                          "%u..%u",
                          (unsigned)h->alignment, CK_ALIGN_MIN, CK_ALIGN_MAX);
    if (h->n_kv > CK_MAX_KV)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: n_kv = %u exceeds %u",
                          (unsigned)h->n_kv, CK_MAX_KV);
    if (h->n_tensors > CK_MAX_TENSORS)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: n_tensors = %u exceeds %u",
                          (unsigned)h->n_tensors, CK_MAX_TENSORS);
    if (h->data_offset < CK_HDR_SIZE || h->data_offset > h->file_size ||
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
    if (*klen < 1 || *klen > CK_KEY_LEN_MAX)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: metadata entry %u: key length %u is "
                          "outside 1..%u",
                          (unsigned)i, (unsigned)*klen, CK_KEY_LEN_MAX);
    if (!rd_take(r, *klen, key) || !rd_u32(r, type))
        goto trunc;
    switch (*type) {
    case CK_T_I32:
    case CK_T_U32:
    case CK_T_F32:
        *vlen = 4;
        break;
    case CK_T_I64:
    case CK_T_U64:
        *vlen = 8;
        break;
    case CK_T_STR:
        if (!rd_u32(r, &slen))
            goto trunc;
        if (slen > CK_STR_LEN_MAX)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: metadata entry %u: string length "
                              "%u exceeds %u",
                              (unsigned)i, (unsigned)slen, CK_STR_LEN_MAX);
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
    return past_end(r, "metadata entry", i);
}

/* The aligner and gate settings of a 1.2 file, as stored (not validated),
 * and the model's 1.4 keys. */
typedef struct comp_meta {
    int has_aligner, has_gate;
    uint64_t id_bytes;       /* 0: no item ids */
    int32_t history_repeats; /* -1: no record */
    int32_t sem_dim;
    float align_tau;
    iadsr_denoise_params gp;
    iadsr__provenance aprov, gprov; /* format 1.3; known = 0 if absent */
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
                              iadsr__ck_keys[k].key, what);
    return IADSR_OK; /* not reached */
}

static float kv_f32(const kv_val *v, int k)
{
    return bits_f32((uint32_t)v[k].u);
}

/* A part's training record (format 1.3, keys @p k0 .. k0 + 2): all or
 * none, only beside the part's own keys (@p has_part), n_items >= 1 and a
 * backbone id >= 1 (ids this build lacks are kept: they match no model). */
static int parse_provenance(const kv_val *v, int k0, const char *what,
                            int has_part, iadsr__provenance *pv)
{
    int present, rc;
    if ((rc = component_keys(v, k0, k0 + 2, what, &present)) != IADSR_OK)
        return rc;
    if (!present)
        return IADSR_OK;
    if (!has_part)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: metadata key '%s' without the part "
                          "it describes",
                          iadsr__ck_keys[k0].key);
    pv->backbone = (int32_t)(uint32_t)v[k0].u;
    pv->n_items = (int32_t)(uint32_t)v[k0 + 1].u;
    pv->sem_fp = v[k0 + 2].u;
    if (pv->backbone < 1)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %s = %d is not a backbone id",
                          iadsr__ck_keys[k0].key, (int)pv->backbone);
    if (pv->n_items < 1)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: %s = %d, must be >= 1",
                          iadsr__ck_keys[k0 + 1].key, (int)pv->n_items);
    pv->known = 1;
    return IADSR_OK;
}

/* Format 1.2 keys: presence (all or none per component, in agreement with
 * required_flags bit 1) and raw values; the 1.3 training records. */
static int parse_components(const kv_val *v, const header *h, comp_meta *c)
{
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = component_keys(v, CK_K_ALIGN_SEM_DIM, CK_K_ALIGN_TAU, "aligner",
                             &c->has_aligner)) != IADSR_OK ||
        (rc = component_keys(v, CK_K_GATE_FLAGS, CK_K_GATE_SEED, "gate",
                             &c->has_gate)) != IADSR_OK)
        return rc;
    if (!(h->required & CK_REQ_DENOISER) != !(c->has_aligner || c->has_gate))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: the file %s aligner or gate keys but "
                          "required_flags is 0x%x",
                          c->has_aligner || c->has_gate ? "has" : "has no",
                          (unsigned)h->required);
    c->sem_dim = (int32_t)(uint32_t)v[CK_K_ALIGN_SEM_DIM].u;
    c->align_tau = kv_f32(v, CK_K_ALIGN_TAU);
    iadsr_denoise_params *gp = &c->gp;
    gp->struct_size = (uint32_t)sizeof *gp;
    gp->flags = (uint32_t)v[CK_K_GATE_FLAGS].u;
    gp->lambda_align = kv_f32(v, CK_K_GATE_LAMBDA_ALIGN);
    gp->lambda_recon = kv_f32(v, CK_K_GATE_LAMBDA_RECON);
    gp->tau_align = kv_f32(v, CK_K_GATE_TAU_ALIGN);
    gp->tau_gumbel = kv_f32(v, CK_K_GATE_TAU_GUMBEL);
    gp->theta = kv_f32(v, CK_K_GATE_THETA);
    gp->max_drop = kv_f32(v, CK_K_GATE_MAX_DROP);
    gp->protect_last = (int32_t)(uint32_t)v[CK_K_GATE_PROTECT_LAST].u;
    gp->reserved0 = 0;
    gp->seed = v[CK_K_GATE_SEED].u;
    if ((rc = parse_provenance(v, CK_K_ALIGN_TRAINED_BACKBONE,
                               "aligner record", c->has_aligner,
                               &c->aprov)) != IADSR_OK ||
        (rc = parse_provenance(v, CK_K_GATE_TRAINED_BACKBONE, "gate record",
                               c->has_gate, &c->gprov)) != IADSR_OK)
        return rc;
    /* format 1.4 */
    c->history_repeats = -1;
    if (v[CK_K_HISTORY_REPEATS].present) {
        int32_t hr = (int32_t)(uint32_t)v[CK_K_HISTORY_REPEATS].u;
        if (hr != 0 && hr != 1)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: iadsr.history_repeats = %d, must "
                              "be 0 or 1",
                              (int)hr);
        c->history_repeats = hr;
    }
    if (!(h->required & CK_REQ_ITEM_IDS) != !v[CK_K_ITEM_ID_BYTES].present)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: the file %s iadsr.item_id_bytes but "
                          "required_flags is 0x%x (bit 2 goes with the item "
                          "ids)",
                          v[CK_K_ITEM_ID_BYTES].present ? "has" : "has no",
                          (unsigned)h->required);
    c->id_bytes = v[CK_K_ITEM_ID_BYTES].present ? v[CK_K_ITEM_ID_BYTES].u : 0;
    if (v[CK_K_ITEM_ID_BYTES].present) {
        uint64_t n = (uint64_t)(uint32_t)v[CK_K_N_ITEMS].u, hi;
        /* n_items is validated later; here only its range as a count */
        if (n > (uint64_t)INT32_MAX)
            n = (uint64_t)INT32_MAX;
        hi = n * IADSR__ITEM_ID_MAX;
        if (c->id_bytes < (n ? n : 1) || c->id_bytes > hi)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: iadsr.item_id_bytes = %llu is "
                              "outside n_items..n_items * %d (%llu..%llu)",
                              (unsigned long long)c->id_bytes,
                              IADSR__ITEM_ID_MAX,
                              (unsigned long long)(n ? n : 1),
                              (unsigned long long)hi);
    }
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
        if (c->sem_dim < 1 || c->sem_dim > CK_SEM_DIM_MAX)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: iadsr.align_sem_dim = %d is "
                              "outside 1..%d",
                              (int)c->sem_dim, CK_SEM_DIM_MAX);
        iadsr_denoise_params ap;
        iadsr_denoise_params_init(&ap);
        ap.tau_align = c->align_tau;
        if (iadsr__denoise_params_get(&dp, &ap) != IADSR_OK)
            return iadsr__err_prefix(IADSR_ERR_FORMAT,
                                     "checkpoint: invalid aligner settings "
                                     "(iadsr.align_tau)");
    }
    if (c->has_gate) {
        /* the back-off describes a training, never a stored gate: a file
         * with the bit comes from a format this version does not know */
        if (c->gp.flags & IADSR_DENOISE_F_BACKOFF)
            return iadsr__err(IADSR_ERR_UNSUPPORTED,
                              "checkpoint: gate settings: iadsr.gate_flags = "
                              "0x%x has unknown bits 0x%x",
                              (unsigned)c->gp.flags,
                              (unsigned)IADSR_DENOISE_F_BACKOFF);
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

/* ---- backbone-specific keys ---------------------------------------------
 * Every backbone's own hyper-parameters (the registry's hparams tables,
 * format 1.1), one i32 key each. The keys of every backbone are read, so
 * that a key of another backbone reaches the parameter check (which refuses
 * it by name); those of the model's own backbone are required. */
#define CK_MAX_BACKBONE_KEYS 64

typedef struct bk_keys {
    int n;
    const iadsr__encoder_ops *ops[CK_MAX_BACKBONE_KEYS];
    const iadsr__hparam_desc *h[CK_MAX_BACKBONE_KEYS];
    int present[CK_MAX_BACKBONE_KEYS];
    int32_t v[CK_MAX_BACKBONE_KEYS];
} bk_keys;

static void bk_init(bk_keys *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < iadsr__encoder_count(); i++) {
        const iadsr__encoder_ops *ops = iadsr__encoder_ops_at(i);
        for (int k = 0; k < ops->n_hparams && b->n < CK_MAX_BACKBONE_KEYS;
             k++, b->n++) {
            b->ops[b->n] = ops;
            b->h[b->n] = &ops->hparams[k];
        }
    }
}

/* Index of the backbone key @p key (not terminated), or -1. */
static int bk_find(const bk_keys *b, const uint8_t *key, uint32_t klen)
{
    for (int j = 0; j < b->n; j++)
        if (strlen(b->h[j]->key) == klen &&
            memcmp(b->h[j]->key, key, klen) == 0)
            return j;
    return -1;
}

/* Store the keys read into @p hp (hp->backbone is set); FORMAT when a key
 * of the model's own backbone is missing. */
static int parse_backbone_keys(const bk_keys *b, iadsr_model_params *hp)
{
    const iadsr__encoder_ops *own = iadsr__encoder_ops_for(hp->backbone);
    for (int j = 0; j < b->n; j++) {
        if (b->present[j])
            iadsr__hparam_set(hp, b->h[j], b->v[j]);
        else if (b->ops[j] == own)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: metadata key '%s' is missing "
                              "(required for %s models)",
                              b->h[j]->key, own->title);
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
    if ((rc = check_section_crc(r, start, "metadata", "metadata")) !=
        IADSR_OK)
        return rc;

    /* second pass: semantics */
    kv_val v[CK_K_COUNT];
    memset(v, 0, sizeof v);
    bk_keys bk;
    bk_init(&bk);
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
        for (int k = 0; k < CK_K_COUNT; k++) {
            if (strlen(iadsr__ck_keys[k].key) != klen ||
                memcmp(iadsr__ck_keys[k].key, key, klen) != 0)
                continue;
            if (type != iadsr__ck_keys[k].type)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: metadata key '%s' has type "
                                  "%u (%s), expected %s",
                                  iadsr__ck_keys[k].key, (unsigned)type,
                                  type_name(type),
                                  type_name(iadsr__ck_keys[k].type));
            v[k].present = 1;
            v[k].type = type;
            if (type == CK_T_STR)
                v[k].u = 0; /* informational; content not interpreted */
            else
                v[k].u = vlen == 8 ? get_u64le(val) : get_u32le(val);
        }
        int j = bk_find(&bk, key, klen);
        if (j >= 0) {
            if (type != CK_T_I32)
                return iadsr__err(IADSR_ERR_FORMAT,
                                  "checkpoint: metadata key '%s' has type "
                                  "%u (%s), expected %s",
                                  bk.h[j]->key, (unsigned)type,
                                  type_name(type), type_name(CK_T_I32));
            bk.present[j] = 1;
            bk.v[j] = (int32_t)get_u32le(val);
        }
        /* unknown keys are skipped (forward compatibility) */
    }
    for (int k = 0; k < CK_K_COUNT; k++)
        if (iadsr__ck_keys[k].required && !v[k].present)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: required metadata key '%s' is "
                              "missing",
                              iadsr__ck_keys[k].key);

    memset(hp, 0, sizeof *hp);
    hp->struct_size = (uint32_t)sizeof *hp;
    hp->backbone = (int32_t)(uint32_t)v[CK_K_BACKBONE].u;
    hp->n_items = (int32_t)(uint32_t)v[CK_K_N_ITEMS].u;
    hp->dim = (int32_t)(uint32_t)v[CK_K_DIM].u;
    hp->max_seq_len = (int32_t)(uint32_t)v[CK_K_MAX_SEQ_LEN].u;
    hp->n_layers = (int32_t)(uint32_t)v[CK_K_N_LAYERS].u;
    hp->n_heads = (int32_t)(uint32_t)v[CK_K_N_HEADS].u;
    hp->ffn_dim = (int32_t)(uint32_t)v[CK_K_FFN_DIM].u;
    hp->activation = (int32_t)(uint32_t)v[CK_K_ACTIVATION].u;
    hp->dropout = bits_f32((uint32_t)v[CK_K_DROPOUT].u);
    hp->flags = 0;
    if (v[CK_K_MODEL_FLAGS].present) {
        uint32_t mf = (uint32_t)v[CK_K_MODEL_FLAGS].u;
        if (mf & ~(uint32_t)CK_MODEL_FLAGS_KNOWN)
            return iadsr__err(IADSR_ERR_UNSUPPORTED,
                              "checkpoint: iadsr.model_flags = 0x%x has "
                              "unknown bits 0x%x",
                              (unsigned)mf,
                              (unsigned)(mf & ~(uint32_t)CK_MODEL_FLAGS_KNOWN));
        hp->flags = mf;
    }
    /* the required bit and the key go together */
    if (!(h->required & CK_REQ_MODEL_FLAGS) != !hp->flags)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: iadsr.model_flags = 0x%x disagrees "
                          "with required_flags 0x%x",
                          (unsigned)hp->flags, (unsigned)h->required);
    hp->reserved0 = 0;
    hp->seed = v[CK_K_SEED].u;
    if ((rc = parse_backbone_keys(&bk, hp)) != IADSR_OK)
        return rc;

    *epochs = v[CK_K_EPOCHS_TRAINED].present
                  ? (int32_t)(uint32_t)v[CK_K_EPOCHS_TRAINED].u
                  : 0;
    if (*epochs < 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: iadsr.epochs_trained = %d is negative",
                          (int)*epochs);
    *best = v[CK_K_BEST_VALID_NDCG10].present
                ? bits_f32((uint32_t)v[CK_K_BEST_VALID_NDCG10].u)
                : NAN;
    return parse_components(v, h, comp);
}

typedef struct dir_entry {
    const uint8_t *name;
    uint32_t name_len;
    uint32_t dtype, n_dims;
    uint64_t dims[CK_MAX_DIMS];
    uint64_t offset, nbytes;
    uint32_t crc;
} dir_entry;

static int read_dir_entry(rd *r, uint32_t i, dir_entry *e)
{
    if (!rd_u32(r, &e->name_len))
        goto trunc;
    if (e->name_len < 1 || e->name_len > CK_NAME_LEN_MAX)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor %u: name length %u is outside "
                          "1..%u",
                          (unsigned)i, (unsigned)e->name_len, CK_NAME_LEN_MAX);
    if (!rd_take(r, e->name_len, &e->name) || !rd_u32(r, &e->dtype) ||
        !rd_u32(r, &e->n_dims))
        goto trunc;
    if (e->n_dims < 1 || e->n_dims > CK_MAX_DIMS)
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
    return past_end(r, "tensor directory entry", i);
}

/* Non-zero when tensor @p i of the directory starting at @p start (@p end:
 * its end; entries already proven well-formed) is named @p name. */
static int dir_name_is(const uint8_t *b, size_t start, size_t end, uint32_t i,
                       const char *name)
{
    rd s = {b, end, start};
    dir_entry e;
    memset(&e, 0, sizeof e);
    for (uint32_t k = 0;; k++) {
        if (read_dir_entry(&s, k, &e) != IADSR_OK)
            return 0;
        if (k == i)
            return strlen(name) == e.name_len &&
                   memcmp(name, e.name, e.name_len) == 0;
    }
}

/* The directory lists @p n_dir tensors, the keys imply the @p n_exp of
 * @p exp: FORMAT, naming gate.det when the difference is the detector's
 * tensor (expected by iadsr.gate_flags but not the last listed, or listed
 * last but not expected after gate.bd). */
static int count_mismatch(const uint8_t *b, size_t start, size_t end,
                          uint32_t n_dir, const iadsr__ck_tensor *exp,
                          int n_exp)
{
    int want_ids = n_exp > 1 && strcmp(exp[n_exp - 1].name,
                                       CK_IDS_BYTES_NAME) == 0;
    if (want_ids && (int64_t)n_dir == (int64_t)n_exp - 2)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensors '%s' and '%s' are missing: "
                          "the file has iadsr.item_id_bytes but the "
                          "directory lists %u tensors, not %d",
                          CK_IDS_OFFSETS_NAME, CK_IDS_BYTES_NAME,
                          (unsigned)n_dir, n_exp);
    if (!want_ids && n_dir >= 2 &&
        (int64_t)n_dir == (int64_t)n_exp + 2 &&
        dir_name_is(b, start, end, n_dir - 1, CK_IDS_BYTES_NAME))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s' is present but the file "
                          "has no iadsr.item_id_bytes: the directory lists "
                          "%u tensors, the hyper-parameters imply %d",
                          CK_IDS_BYTES_NAME, (unsigned)n_dir, n_exp);
    int want_det = n_exp > 0 && strcmp(exp[n_exp - 1].name,
                                       CK_GATE_DET_NAME) == 0;
    int plain_gate =
        n_exp > 0 && strcmp(exp[n_exp - 1].name, "gate.bd") == 0;
    if (want_det && (int64_t)n_dir == (int64_t)n_exp - 1 &&
        (n_dir == 0 || !dir_name_is(b, start, end, n_dir - 1,
                                    CK_GATE_DET_NAME)))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s' is missing: "
                          "iadsr.gate_flags has the detector bit "
                          "(IADSR_DENOISE_F_DETECT) but the directory lists "
                          "%u tensors, not %d",
                          CK_GATE_DET_NAME, (unsigned)n_dir, n_exp);
    if (plain_gate && (int64_t)n_dir == (int64_t)n_exp + 1 &&
        dir_name_is(b, start, end, n_dir - 1, CK_GATE_DET_NAME))
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s' is present but "
                          "iadsr.gate_flags lacks the detector bit "
                          "(IADSR_DENOISE_F_DETECT): the directory lists %u "
                          "tensors, the hyper-parameters imply %d",
                          CK_GATE_DET_NAME, (unsigned)n_dir, n_exp);
    return iadsr__err(IADSR_ERR_FORMAT,
                      "checkpoint: the directory lists %u tensors, the "
                      "hyper-parameters imply %d",
                      (unsigned)n_dir, n_exp);
}

/* Everything after the hyper-parameters are known: the directory must list
 * exactly the @p n_exp tensors of @p exp, in order; then ranges, padding,
 * checksums and finite weights. */
static int check_directory(rd *r, const header *h, const iadsr__ck_tensor *exp,
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
    if ((rc = check_section_crc(r, start, "directory", "tensor directory")) !=
        IADSR_OK)
        return rc;

    uint64_t want = 0;
    if (!ck_align_up_u64(r->pos, h->alignment, &want) || want != h->data_offset)
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
        return count_mismatch(b, start, end, h->n_tensors, exp, n_exp);

    /* second pass: every entry against the layout, ranges and padding */
    uint64_t data_len = h->file_size - h->data_offset;
    uint64_t prev_end = 0;
    rd s = {b, end, start};
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        const iadsr__ck_tensor *t = &exp[i];
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
        uint32_t want_dtype = t->dtype ? t->dtype : CK_DTYPE_F32;
        if (e.dtype != want_dtype)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': dtype %u is not %s "
                              "(%u)",
                              t->name, (unsigned)e.dtype,
                              want_dtype == CK_DTYPE_U8    ? "u8"
                              : want_dtype == CK_DTYPE_U64 ? "u64"
                                                           : "f32",
                              (unsigned)want_dtype);
        uint64_t rows = e.n_dims == 1 ? 1 : e.dims[0];
        uint64_t cols = e.n_dims == 1 ? e.dims[0] : e.dims[1];
        if (rows != (uint64_t)t->rows || cols != (uint64_t)t->cols)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s' is %llu x %llu, the "
                              "hyper-parameters imply %lld x %lld",
                              t->name, (unsigned long long)rows,
                              (unsigned long long)cols, (long long)t->rows,
                              (long long)t->cols);
        uint64_t n, nb, es = ck_dtype_size(want_dtype);
        if (!ck_mul_u64(rows, cols, &n) || !ck_mul_u64(n, es, &nb) ||
            nb != e.nbytes)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': nbytes %llu, expected "
                              "%llu x %llu x %llu",
                              t->name, (unsigned long long)e.nbytes,
                              (unsigned long long)rows,
                              (unsigned long long)cols,
                              (unsigned long long)es);
        uint64_t want_off = 0;
        if (!ck_align_up_u64(prev_end, h->alignment, &want_off) ||
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
        if (exp[i].dtype > CK_DTYPE_F32)
            continue; /* the item ids: check_item_ids() */
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

/* ---- item ids (format 1.4) ---------------------------------------------- */

/* Where the two item-id tensors of a validated file are. */
typedef struct ids_src {
    const uint8_t *off;   /* item_ids.offsets: n_items + 1 u64 */
    const uint8_t *bytes; /* item_ids.bytes */
    uint64_t n_bytes;
} ids_src;

/* Absolute position of tensor @p i (directory proven well-formed). */
static const uint8_t *tensor_data(const header *h, const uint8_t *b,
                                  const iadsr__ck_tensor *exp, int i)
{
    uint64_t pos = 0;
    for (int k = 0; k <= i; k++) {
        ck_align_up_u64(pos, h->alignment, &pos);
        if (k == i)
            break;
        pos += ck_dtype_size(exp[k].dtype) * (uint64_t)exp[k].rows *
               (uint64_t)exp[k].cols;
    }
    return b + (size_t)h->data_offset + (size_t)pos;
}

/* The offsets of the item ids (directory, shapes and CRCs already
 * proven): offsets[0] = 0, each id 1..IADSR__ITEM_ID_MAX bytes (so the
 * offsets increase), offsets[n_items] = iadsr.item_id_bytes. The bytes and
 * the distinctness are checked when the table is built (load_item_ids). */
static int check_item_ids(const header *h, const uint8_t *b,
                          const iadsr__ck_tensor *exp, int n_exp,
                          int32_t n_items, uint64_t id_bytes, ids_src *out)
{
    const uint8_t *off = tensor_data(h, b, exp, n_exp - 2);
    uint64_t prev = get_u64le(off);
    if (prev != 0)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s' element 0 is %llu, must "
                          "be 0",
                          CK_IDS_OFFSETS_NAME, (unsigned long long)prev);
    for (int32_t i = 1; i <= n_items; i++) {
        uint64_t o = get_u64le(off + 8 * (size_t)i);
        if (o < prev || o > id_bytes)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s' element %d is %llu: "
                              "the offsets must increase from 0 to "
                              "iadsr.item_id_bytes = %llu (element %d is "
                              "%llu)",
                              CK_IDS_OFFSETS_NAME, (int)i,
                              (unsigned long long)o,
                              (unsigned long long)id_bytes, (int)i - 1,
                              (unsigned long long)prev);
        if (o == prev)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': the id of item %d "
                              "is empty (elements %d and %d are both %llu)",
                              CK_IDS_OFFSETS_NAME, (int)i, (int)i - 1, (int)i,
                              (unsigned long long)o);
        if (o - prev > IADSR__ITEM_ID_MAX)
            return iadsr__err(IADSR_ERR_FORMAT,
                              "checkpoint: tensor '%s': the id of item %d "
                              "is %llu bytes long, more than %d",
                              CK_IDS_OFFSETS_NAME, (int)i,
                              (unsigned long long)(o - prev),
                              IADSR__ITEM_ID_MAX);
        prev = o;
    }
    if (prev != id_bytes)
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s' ends at %llu, "
                          "iadsr.item_id_bytes is %llu",
                          CK_IDS_OFFSETS_NAME, (unsigned long long)prev,
                          (unsigned long long)id_bytes);
    out->off = off;
    out->bytes = tensor_data(h, b, exp, n_exp - 1);
    out->n_bytes = id_bytes;
    return IADSR_OK;
}

static const uint8_t *file_id_get(const void *ctx, int32_t i, size_t *len)
{
    const ids_src *s = ctx;
    uint64_t a = get_u64le(s->off + 8 * (size_t)i);
    uint64_t z = get_u64le(s->off + 8 * ((size_t)i + 1));
    *len = (size_t)(z - a);
    return s->bytes + (size_t)a;
}

/* Build the table of the file's ids: FORMAT for a forbidden byte or a
 * duplicate, naming the tensor, the items and the byte. */
static int load_item_ids(iadsr__item_ids **out, int32_t n_items,
                         const ids_src *s)
{
    iadsr__ids_fault f;
    int rc = iadsr__item_ids_new(out, n_items, file_id_get, s, &f);
    switch (f.kind) {
    case IADSR__IDS_OK:
        return rc;
    case IADSR__IDS_BAD_BYTE:
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s': the id of item %d holds "
                          "a %s byte at offset %lld (ids may not hold NUL, "
                          "TAB, CR or LF)",
                          CK_IDS_BYTES_NAME, (int)f.index + 1,
                          f.byte == 0      ? "NUL"
                          : f.byte == '\t' ? "TAB"
                          : f.byte == '\r' ? "CR"
                                           : "LF",
                          (long long)f.other);
    case IADSR__IDS_DUPLICATE:
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s': item %d has the same id "
                          "as item %lld (ids must be distinct)",
                          CK_IDS_BYTES_NAME, (int)f.index + 1,
                          (long long)f.other + 1);
    case IADSR__IDS_NOMEM:
        return rc;
    default: /* lengths were checked with the offsets */
        return iadsr__err(IADSR_ERR_FORMAT,
                          "checkpoint: tensor '%s': invalid id of item %d",
                          CK_IDS_OFFSETS_NAME, (int)f.index + 1);
    }
}

/* Scratch of the reader: the backbone's layout and the expected tensors. */
typedef struct expect {
    iadsr__layout lay;
    iadsr__ck_tensor t[CK_MAX_TENSORS];
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
    rd r = {b, (size_t)h.data_offset, CK_HDR_SIZE};
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
    rc = iadsr__ck_list_tensors(lay, hp.dim,
                                comp.has_aligner ? comp.sem_dim : 0,
                                comp.has_gate, comp.gp.flags, hp.n_items,
                                comp.id_bytes, ex->t, &ex->n);
    if (rc) {
        /* more tensors than a file may list: it cannot be valid */
        rc = iadsr__err_prefix(IADSR_ERR_FORMAT, "invalid file");
        goto done;
    }
    if ((rc = check_directory(&r, &h, ex->t, ex->n)) != IADSR_OK)
        goto done;
    ids_src idsrc = {NULL, NULL, 0};
    if (comp.id_bytes > 0 &&
        (rc = check_item_ids(&h, b, ex->t, ex->n, hp.n_items, comp.id_bytes,
                             &idsrc)) != IADSR_OK)
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
    if (comp.id_bytes > 0 &&
        (rc = load_item_ids(&m->ids, hp.n_items, &idsrc)) != IADSR_OK) {
        iadsr_gate_free(g);
        iadsr_aligner_free(a);
        iadsr_model_free(m);
        goto done;
    }
    m->history_repeats = comp.history_repeats;
    if (a)
        a->prov = comp.aprov;
    if (g)
        g->prov = comp.gprov;
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
        if (comp.gp.flags & IADSR_DENOISE_F_DETECT)
            ex->t[k++].dst = g ? g->det : NULL;
    }
    const uint8_t *data = b + (size_t)h.data_offset;
    uint64_t pos = 0;
    for (int i = 0; i < ex->n; i++) {
        const iadsr__ck_tensor *t = &ex->t[i];
        size_t n = (size_t)t->rows * (size_t)t->cols;
        ck_align_up_u64(pos, h.alignment, &pos);
        const uint8_t *src = data + (size_t)pos;
        if (t->dst)
            for (size_t j = 0; j < n; j++)
                t->dst[j] = bits_f32(get_u32le(src + 4 * j));
        pos += ck_dtype_size(t->dtype) * (uint64_t)n;
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

/* The checks every loader makes first: outputs cleared (also on
 * failure), then the NULL checks and the flags, in the messages of @p fn
 * (@p out_name and @p src_name name its arguments). */
static int load_args(const char *fn, iadsr_model **out, const char *out_name,
                     iadsr_aligner **aout, iadsr_gate **gout, const void *src,
                     const char *src_name, uint32_t flags)
{
    if (aout)
        *aout = NULL;
    if (gout)
        *gout = NULL;
    if (!out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                          out_name);
    *out = NULL;
    if (!src)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                          src_name);
    if (flags != 0)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s: unknown flag bits 0x%x", fn, (unsigned)flags);
    return IADSR_OK;
}

int iadsr_model_load_from_buffer(iadsr_model **out, const void *buf,
                                 size_t len, uint32_t flags)
{
    int rc = load_args("model_load_from_buffer", out, "out", NULL, NULL, buf,
                       "buf", flags);
    return rc ? rc : load_buffer(out, NULL, NULL, buf, len);
}

int iadsr_checkpoint_load_from_buffer(iadsr_model **m,
                                      iadsr_aligner **aligner,
                                      iadsr_gate **gate, const void *buf,
                                      size_t len, uint32_t flags)
{
    int rc = load_args("checkpoint_load_from_buffer", m, "m", aligner, gate,
                       buf, "buf", flags);
    return rc ? rc : load_buffer(m, aligner, gate, buf, len);
}

/* Read @p path whole with the rules of docs/FORMAT.md §10 (a regular file
 * of at most 16 GiB that does not change size while it is read) and load
 * it; @p fn names the caller in messages. */
static int load_file(iadsr_model **out, iadsr_aligner **aout,
                     iadsr_gate **gout, const char *path, const char *fn)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = iadsr__read_file_ex(path, fn, IADSR__READ_REGULAR,
                                 LOAD_MAX_BYTES, &buf, &len);
    if (rc)
        return rc;
    rc = load_buffer(out, aout, gout, buf, len);
    if (rc)
        iadsr__err_prefix(rc, "%s", path);
    iadsr__free(buf);
    return rc;
}

int iadsr_model_load(iadsr_model **out, const char *path, uint32_t flags)
{
    int rc = load_args("model_load", out, "out", NULL, NULL, path, "path",
                       flags);
    return rc ? rc : load_file(out, NULL, NULL, path, "model_load");
}

int iadsr_checkpoint_load(iadsr_model **m, iadsr_aligner **aligner,
                          iadsr_gate **gate, const char *path, uint32_t flags)
{
    int rc = load_args("checkpoint_load", m, "m", aligner, gate, path, "path",
                       flags);
    return rc ? rc : load_file(m, aligner, gate, path, "checkpoint_load");
}
