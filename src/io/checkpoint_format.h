/* libiadsr - the checkpoint format (docs/FORMAT.md): the constants, the
 * metadata key table and the tensor records that the writer
 * (checkpoint_write.c) and the reader (checkpoint_read.c) share, and the
 * format version that iadsr_format_version() reports. Private to src/io.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FORMAT_H
#define IADSR_FORMAT_H

#include "backbone/model.h"
#include "iadsr.h"

#include <stdint.h>

#define IADSR__FORMAT_MAJOR 1
#define IADSR__FORMAT_MINOR 4

/* ---- header (docs/FORMAT.md §3) ---------------------------------------- */

/* The 8 signature bytes: 0x89 "IADSR" CR LF (catches text-mode transfers). */
extern const uint8_t iadsr__ck_signature[8];

#define CK_HDR_SIZE 64u
#define CK_HDR_OFF_MAJOR 8
#define CK_HDR_OFF_MINOR 12
#define CK_HDR_OFF_HEADER_SIZE 16
#define CK_HDR_OFF_KIND 20
#define CK_HDR_OFF_REQUIRED 24
#define CK_HDR_OFF_OPTIONAL 28
#define CK_HDR_OFF_N_KV 32
#define CK_HDR_OFF_N_TENSORS 36
#define CK_HDR_OFF_ALIGNMENT 40
#define CK_HDR_OFF_DATA_OFFSET 44
#define CK_HDR_OFF_FILE_SIZE 52
#define CK_HDR_OFF_CRC 60

#define CK_KIND_MODEL 1u
/* required_flags bit 0 (format 1.1): the file carries iadsr.model_flags
 * with non-zero IADSR_MODEL_F_* bits that change the architecture, so a
 * 1.0 reader must refuse it rather than misread the tensors. */
#define CK_REQ_MODEL_FLAGS 1u
/* required_flags bit 1 (format 1.2): the file carries an aligner and/or a
 * gate after the backbone. Older readers do not know the bit and refuse the
 * file (UNSUPPORTED) instead of tripping over the extra tensors. */
#define CK_REQ_DENOISER 2u
/* required_flags bit 2 (format 1.4): the file carries the items' external
 * ids, two tensors of other dtypes after the rest (u64 offsets, u8 bytes),
 * which older readers must refuse (UNSUPPORTED) rather than misread. */
#define CK_REQ_ITEM_IDS 4u
#define CK_REQUIRED_FLAGS_KNOWN                                                \
    (CK_REQ_MODEL_FLAGS | CK_REQ_DENOISER | CK_REQ_ITEM_IDS)
/* format_minor written: the oldest version that describes the file (the
 * reader accepts any minor). */
#define CK_MINOR_BASE 0u     /* the default backbone without flags: 1.0 */
#define CK_MINOR_MODEL 1u    /* model flags, other backbones: 1.1 */
#define CK_MINOR_DENOISER 2u /* aligner and/or gate: 1.2 */
#define CK_MINOR_PROVENANCE 3u /* a part's training record: 1.3 */
#define CK_MINOR_ITEMS 4u /* item ids or the history-repeat record: 1.4 */
#define CK_MODEL_FLAGS_KNOWN IADSR_MODEL_F_PRE_LN
#define CK_WRITE_ALIGNMENT 64u
#define CK_ALIGN_MIN 8u
#define CK_ALIGN_MAX 4096u
#define CK_MAX_KV 256u
#define CK_MAX_TENSORS 256u /* format limit; >= IADSR__MAX_TENSORS */
#define CK_KEY_LEN_MAX 255u
#define CK_SEM_DIM_MAX 1048576 /* iadsr_aligner_create() bound on D */
#define CK_STR_LEN_MAX 4096u
#define CK_NAME_LEN_MAX 47u /* IADSR__TENSOR_NAME_MAX - 1 */
#define CK_MAX_DIMS 2u

#define CK_T_I32 1u
#define CK_T_U32 2u
#define CK_T_I64 3u
#define CK_T_U64 4u
#define CK_T_F32 5u
#define CK_T_STR 6u

#define CK_DTYPE_F32 1u
#define CK_DTYPE_U8 2u  /* format 1.4: item_ids.bytes */
#define CK_DTYPE_U64 3u /* format 1.4: item_ids.offsets */

/* The two tensors of the item ids (format 1.4, docs/FORMAT.md §6.2). */
#define CK_IDS_OFFSETS_NAME "item_ids.offsets"
#define CK_IDS_BYTES_NAME "item_ids.bytes"

#if IADSR__MAX_TENSORS > 256
#error "the checkpoint format caps n_tensors at 256"
#endif
#if IADSR__TENSOR_NAME_MAX != 48
#error "tensor names are 1..47 bytes in the checkpoint format"
#endif

/* ---- metadata keys (docs/FORMAT.md §4) --------------------------------- */

enum {
    CK_K_BACKBONE,
    CK_K_N_ITEMS,
    CK_K_DIM,
    CK_K_MAX_SEQ_LEN,
    CK_K_N_LAYERS,
    CK_K_N_HEADS,
    CK_K_FFN_DIM,
    CK_K_ACTIVATION,
    CK_K_DROPOUT,
    CK_K_SEED,
    CK_K_EPOCHS_TRAINED,
    CK_K_BEST_VALID_NDCG10,
    CK_K_LIBRARY_VERSION,
    /* format 1.1: written only when they apply */
    CK_K_MODEL_FLAGS,   /* models with flags */
    /* here: the backbone's own keys (the registry's hparams tables,
     * format 1.1), written and read by the backbone-key code */
    /* format 1.2: the aligner (both keys) and the gate (all nine keys) */
    CK_K_ALIGN_SEM_DIM,
    CK_K_ALIGN_TAU,
    CK_K_GATE_FLAGS,
    CK_K_GATE_LAMBDA_ALIGN,
    CK_K_GATE_LAMBDA_RECON,
    CK_K_GATE_TAU_ALIGN,
    CK_K_GATE_TAU_GUMBEL,
    CK_K_GATE_THETA,
    CK_K_GATE_MAX_DROP,
    CK_K_GATE_PROTECT_LAST,
    CK_K_GATE_SEED,
    /* format 1.3: what a trained aligner / gate was trained with (three
     * keys each, all or none, only beside the component's own keys) */
    CK_K_ALIGN_TRAINED_BACKBONE,
    CK_K_ALIGN_TRAINED_N_ITEMS,
    CK_K_ALIGN_TRAINED_SEMANTIC,
    CK_K_GATE_TRAINED_BACKBONE,
    CK_K_GATE_TRAINED_N_ITEMS,
    CK_K_GATE_TRAINED_SEMANTIC,
    /* format 1.4: the model's item ids (their total bytes; with the two
     * item_ids.* tensors) and its history-repeat record, each optional */
    CK_K_ITEM_ID_BYTES,
    CK_K_HISTORY_REPEATS,
    CK_K_COUNT
};

typedef struct iadsr__ck_key {
    const char *key;
    uint32_t type;
    int required;
} iadsr__ck_key;

/* Indexed by CK_K_*; written in this order, read in any order. */
extern const iadsr__ck_key iadsr__ck_keys[CK_K_COUNT];

/* ---- tensors (docs/FORMAT.md §5, §6) ----------------------------------- */

/* One tensor of a checkpoint, in file order. */
typedef struct iadsr__ck_tensor {
    const char *name;
    int64_t rows, cols;
    const float *src; /* writer: the weights */
    float *dst;       /* reader: where to decode them; NULL = skip */
    uint32_t dtype;   /* 0 (= CK_DTYPE_F32), CK_DTYPE_U8 or CK_DTYPE_U64:
                         the latter two are the item ids' (their bytes
                         are produced and checked by their own code) */
} iadsr__ck_tensor;

/* Bytes per element of a tensor's dtype. */
static inline uint64_t ck_dtype_size(uint32_t dtype)
{
    return dtype == CK_DTYPE_U8 ? 1u : dtype == CK_DTYPE_U64 ? 8u : 4u;
}

/* The detector's tensor of a gate with IADSR_DENOISE_F_DETECT (§6.1). */
#define CK_GATE_DET_NAME "gate.det"

/* The tensors of a checkpoint in file order (docs/FORMAT.md §6): the
 * backbone's layout, then align.w1 and align.w2 (D x d) when @p sem_dim > 0,
 * then gate.wd (d x d) and gate.bd (d) when @p has_gate, then gate.det
 * (IADSR__GATE_DET) when @p has_gate and @p gate_flags has
 * IADSR_DENOISE_F_DETECT, then item_ids.offsets (u64, n_items + 1) and
 * item_ids.bytes (u8, @p id_bytes) when @p id_bytes > 0. UNSUPPORTED when
 * they would exceed CK_MAX_TENSORS. */
int iadsr__ck_list_tensors(const iadsr__layout *lay, int64_t d,
                           int64_t sem_dim, int has_gate, uint32_t gate_flags,
                           int64_t n_items, uint64_t id_bytes,
                           iadsr__ck_tensor *t, int *n);

/* CRC-32C of the 64 header bytes with the CRC field taken as zero. */
uint32_t iadsr__ck_header_crc(const uint8_t *hdr);

/* ---- overflow-checked sizes (both sides compute the layout) ------------ */

/* Round @p x up to a multiple of the power of two @p a; 0 on overflow. */
static inline int ck_align_up_u64(uint64_t x, uint64_t a, uint64_t *out)
{
    if (x > UINT64_MAX - (a - 1))
        return 0;
    *out = (x + (a - 1)) & ~(a - 1);
    return 1;
}

static inline int ck_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

#endif /* IADSR_FORMAT_H */
