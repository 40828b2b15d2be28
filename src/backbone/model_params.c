/* libiadsr - the model's hyper-parameters (iadsr_model_params): defaults,
 * layout asserts and validation. The generic fields are checked here, the
 * backbone's own ones by its ops->check_params in the registry.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/encoder.h"
#include "common/error.h"
#include "common/params.h"
#include "iadsr.h"

#include <stddef.h>
#include <stdint.h>

/* The public layout (docs/ABI.md): fields are only ever appended; these
 * asserts catch any reordering, insertion or implicit padding. */
_Static_assert(sizeof(iadsr_model_params) == 72, "iadsr_model_params size");
/* the 0.1 layout ends after seed: callers built against it still work */
_Static_assert(IADSR__MODEL_PARAMS_SIZE_0_1 == 56u, "model 0.1 size");
_Static_assert(offsetof(iadsr_model_params, struct_size) == 0, "model");
_Static_assert(offsetof(iadsr_model_params, backbone) == 4, "model");
_Static_assert(offsetof(iadsr_model_params, n_items) == 8, "model");
_Static_assert(offsetof(iadsr_model_params, dim) == 12, "model");
_Static_assert(offsetof(iadsr_model_params, max_seq_len) == 16, "model");
_Static_assert(offsetof(iadsr_model_params, n_layers) == 20, "model");
_Static_assert(offsetof(iadsr_model_params, n_heads) == 24, "model");
_Static_assert(offsetof(iadsr_model_params, ffn_dim) == 28, "model");
_Static_assert(offsetof(iadsr_model_params, activation) == 32, "model");
_Static_assert(offsetof(iadsr_model_params, dropout) == 36, "model");
_Static_assert(offsetof(iadsr_model_params, flags) == 40, "model");
_Static_assert(offsetof(iadsr_model_params, reserved0) == 44, "model");
_Static_assert(offsetof(iadsr_model_params, seed) == 48, "model");
/* 56..67: backbone-specific fields, asserted next to their descriptions
 * in their backbone's file */
_Static_assert(offsetof(iadsr_model_params, reserved1) == 68, "model");


static const iadsr_model_params model_defaults = {
    .struct_size = sizeof(iadsr_model_params),
    .backbone = IADSR_BACKBONE_DEFAULT, /* the registry's first backbone */
    .n_items = 0, /* required */
    .dim = 64,
    .max_seq_len = 50,
    .n_layers = 0, /* the backbone's default */
    .n_heads = 2,
    .ffn_dim = 0, /* 4 * dim */
    .activation = IADSR_ACT_GELU,
    .dropout = 0.5f,
    .flags = 0,
    .reserved0 = 0,
    .seed = 42,
    /* the backbone-specific fields are 0: their backbone's defaults, set
     * by its check_params */
    .reserved1 = 0,
};

void iadsr_model_params_init(iadsr_model_params *p)
{
    if (p) {
        *p = model_defaults;
        p->backbone = iadsr__encoder_ops_at(0)->backbone;
    }
}

/* ---- model ------------------------------------------------------------------ */

int iadsr__model_params_check(iadsr_model_params *p)
{
    static const char w[] = "iadsr_model_params";

    if (!p)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s is NULL", w);
    if (p->n_items == 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.n_items = 0: the number of items is required "
                          "(1..2147483646)",
                          w);
    TRY(iadsr__check_i32(w, "n_items", p->n_items, 1, INT32_MAX - 1));

    if (p->backbone == IADSR_BACKBONE_DEFAULT)
        p->backbone = iadsr__encoder_ops_at(0)->backbone;
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(p->backbone);
    if (!ops)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.backbone = %d is not an IADSR_BACKBONE_* value",
                          w, (int)p->backbone);

    TRY(iadsr__check_i32(w, "dim", p->dim, 1, 4096));
    TRY(iadsr__check_i32(w, "max_seq_len", p->max_seq_len, 1, 4096));
    TRY(iadsr__check_flags(w, p->flags, IADSR_MODEL_F_PRE_LN));
    TRY(iadsr__check_reserved(w, "reserved0", p->reserved0));
    TRY(iadsr__check_reserved(w, "reserved1", p->reserved1));
    if (!(p->dropout >= 0.0f && p->dropout < 1.0f))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.dropout = %g is outside [0, 1)", w,
                          (double)p->dropout);
    return ops->check_params(p, w);
}

int iadsr__model_params_get(iadsr_model_params *dst,
                            const iadsr_model_params *user)
{
    TRY(iadsr__params_overlay(dst, &model_defaults, sizeof model_defaults,
                              IADSR__MODEL_PARAMS_SIZE_0_1, user,
                              "iadsr_model_params"));
    return iadsr__model_params_check(dst);
}
