/* libiadsr - checkpoint format tables shared by the writer and the reader
 * (checkpoint_format.h).
 * SPDX-License-Identifier: MIT
 */
#include "io/checkpoint_format.h"

#include "common/crc32c.h"
#include "common/error.h"
#include "denoise/denoise.h"

#include <string.h>

const uint8_t iadsr__ck_signature[8] = {0x89, 'I',  'A',  'D',
                                        'S',  'R',  '\r', '\n'};

/* Written in this order; the reader accepts any order. */
const iadsr__ck_key iadsr__ck_keys[CK_K_COUNT] = {
    {"iadsr.backbone", CK_T_I32, 1},
    {"iadsr.n_items", CK_T_I32, 1},
    {"iadsr.dim", CK_T_I32, 1},
    {"iadsr.max_seq_len", CK_T_I32, 1},
    {"iadsr.n_layers", CK_T_I32, 1},
    {"iadsr.n_heads", CK_T_I32, 1},
    {"iadsr.ffn_dim", CK_T_I32, 1},
    {"iadsr.activation", CK_T_I32, 1},
    {"iadsr.dropout", CK_T_F32, 1},
    {"iadsr.seed", CK_T_U64, 1},
    {"iadsr.epochs_trained", CK_T_I32, 0},
    {"iadsr.best_valid_ndcg10", CK_T_F32, 0},
    {"iadsr.library_version", CK_T_STR, 0},
    {"iadsr.model_flags", CK_T_U32, 0},
    {"iadsr.align_sem_dim", CK_T_I32, 0},
    {"iadsr.align_tau", CK_T_F32, 0},
    {"iadsr.gate_flags", CK_T_U32, 0},
    {"iadsr.gate_lambda_align", CK_T_F32, 0},
    {"iadsr.gate_lambda_recon", CK_T_F32, 0},
    {"iadsr.gate_tau_align", CK_T_F32, 0},
    {"iadsr.gate_tau_gumbel", CK_T_F32, 0},
    {"iadsr.gate_theta", CK_T_F32, 0},
    {"iadsr.gate_max_drop", CK_T_F32, 0},
    {"iadsr.gate_protect_last", CK_T_I32, 0},
    {"iadsr.gate_seed", CK_T_U64, 0},
    {"iadsr.align_trained_backbone", CK_T_I32, 0},
    {"iadsr.align_trained_n_items", CK_T_I32, 0},
    {"iadsr.align_trained_semantic", CK_T_U64, 0},
    {"iadsr.gate_trained_backbone", CK_T_I32, 0},
    {"iadsr.gate_trained_n_items", CK_T_I32, 0},
    {"iadsr.gate_trained_semantic", CK_T_U64, 0},
    {"iadsr.item_id_bytes", CK_T_U64, 0},
    {"iadsr.history_repeats", CK_T_I32, 0},
};

int iadsr__ck_list_tensors(const iadsr__layout *lay, int64_t d,
                           int64_t sem_dim, int has_gate, uint32_t gate_flags,
                           int64_t n_items, uint64_t id_bytes,
                           iadsr__ck_tensor *t, int *n)
{
    int has_det = has_gate && (gate_flags & IADSR_DENOISE_F_DETECT);
    int extra = (sem_dim > 0 ? 2 : 0) + (has_gate ? 2 : 0) + (has_det ? 1 : 0) +
                (id_bytes > 0 ? 2 : 0);
    if (lay->n_tensors < 1 || lay->n_tensors > (int)CK_MAX_TENSORS - extra)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "checkpoint: %d backbone tensors and %d more exceed "
                          "the format's %u",
                          lay->n_tensors, extra, CK_MAX_TENSORS);
    int k = 0;
    for (int i = 0; i < lay->n_tensors; i++) {
        iadsr__ck_tensor e = {lay->t[i].name, lay->t[i].rows, lay->t[i].cols,
                              NULL, NULL, 0};
        t[k++] = e;
    }
    if (sem_dim > 0) {
        iadsr__ck_tensor w1 = {"align.w1", sem_dim, d, NULL, NULL, 0};
        iadsr__ck_tensor w2 = {"align.w2", sem_dim, d, NULL, NULL, 0};
        t[k++] = w1;
        t[k++] = w2;
    }
    if (has_gate) {
        iadsr__ck_tensor wd = {"gate.wd", d, d, NULL, NULL, 0};
        iadsr__ck_tensor bd = {"gate.bd", 1, d, NULL, NULL, 0};
        t[k++] = wd;
        t[k++] = bd;
    }
    if (has_det) {
        iadsr__ck_tensor det = {CK_GATE_DET_NAME, 1, IADSR__GATE_DET, NULL,
                                NULL, 0};
        t[k++] = det;
    }
    if (id_bytes > 0) {
        iadsr__ck_tensor off = {CK_IDS_OFFSETS_NAME, 1, n_items + 1, NULL, NULL,
                                CK_DTYPE_U64};
        iadsr__ck_tensor by = {CK_IDS_BYTES_NAME, 1, (int64_t)id_bytes, NULL,
                               NULL, CK_DTYPE_U8};
        t[k++] = off;
        t[k++] = by;
    }
    *n = k;
    return IADSR_OK;
}

uint32_t iadsr__ck_header_crc(const uint8_t *hdr)
{
    uint8_t tmp[CK_HDR_SIZE];
    memcpy(tmp, hdr, CK_HDR_SIZE);
    memset(tmp + CK_HDR_OFF_CRC, 0, 4);
    return iadsr__crc32c(0, tmp, CK_HDR_SIZE);
}
