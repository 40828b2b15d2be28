/* Float instantiation of the SASRec layers (production path), the SASRec
 * parameter layout and initialisation, and its adapter of the encoder
 * interface.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/sasrec.h"
#include "backbone/encoder.h"
#include "common/params.h"
#include "math/blas.h"

#include "math/kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math/real_f32.h"
#include "backbone/sasrec_template.h"
#include "math/real_undef.h"

/* ---- hyper-parameters --------------------------------------------------- */

static int sasrec_check_params(iadsr_model_params *p, const char *w)
{
    TRY(iadsr__encoder_check_foreign(p, w));
    if (p->n_layers == 0)
        p->n_layers = 2;
    TRY(iadsr__check_i32(w, "n_layers", p->n_layers, 1, IADSR__MAX_LAYERS));
    TRY(iadsr__check_i32(w, "n_heads", p->n_heads, 1, 4096));
    if (p->dim % p->n_heads != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.n_heads = %d does not divide dim = %d", w,
                          (int)p->n_heads, (int)p->dim);
    if (p->ffn_dim == 0)
        p->ffn_dim = 4 * p->dim; /* dim <= 4096: no overflow */
    TRY(iadsr__check_i32(w, "ffn_dim", p->ffn_dim, 1, 65536));
    if (p->activation == IADSR_ACT_DEFAULT)
        p->activation = IADSR_ACT_GELU;
    /* the activations are numbered GELU (1), RELU (2) */
    return iadsr__check_i32(w, "activation", p->activation, IADSR_ACT_GELU,
                            IADSR_ACT_RELU);
}

int iadsr__sasrec_params_unused(iadsr_model_params *p, const char *what)
{
    if ((p->n_heads != 0 && p->n_heads != 2) || p->ffn_dim != 0 ||
        (p->activation != IADSR_ACT_DEFAULT &&
         p->activation != IADSR_ACT_GELU) ||
        (p->flags & IADSR_MODEL_F_PRE_LN)) {
        const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(p->backbone);
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: n_heads, ffn_dim, activation and "
                          "IADSR_MODEL_F_PRE_LN apply to SASRec only; leave "
                          "them at their defaults for %s",
                          what, ops ? ops->title : "this backbone");
    }
    p->n_heads = p->ffn_dim = p->activation = 0;
    return IADSR_OK;
}

static void sasrec_fill_shape(const iadsr_model_params *hp, iadsr__shape *s)
{
    s->f = hp->ffn_dim;
    s->n_heads = hp->n_heads;
    s->act = hp->activation;
    s->pre_ln = (hp->flags & IADSR_MODEL_F_PRE_LN) != 0;
}

/* ---- parameter layout and initialisation -------------------------------- */

static int sasrec_layout(const iadsr_model_params *hp, iadsr__layout *l)
{
    int64_t d = hp->dim, f = hp->ffn_dim;
    int rc = IADSR_OK;
    rc = rc ? rc : iadsr__layout_add(l, "item_emb", (int64_t)hp->n_items + 1, d);
    rc = rc ? rc : iadsr__layout_add(l, "pos_emb", hp->max_seq_len, d);
    rc = rc ? rc : iadsr__layout_add(l, "emb_ln.g", 1, d);
    rc = rc ? rc : iadsr__layout_add(l, "emb_ln.b", 1, d);
    for (int b = 0; b < hp->n_layers && rc == IADSR_OK; b++) {
#define ADD(field, name, rows, cols)                                           \
    rc = rc ? rc : iadsr__layout_add_member(l, "blk", b, name, rows, cols);
        IADSR__SASREC_BLOCK(ADD)
#undef ADD
    }
    if (hp->flags & IADSR_MODEL_F_PRE_LN) {
        /* pre-norm blocks leave the residual stream unnormalised */
        rc = rc ? rc : iadsr__layout_add(l, "final_ln.g", 1, d);
        rc = rc ? rc : iadsr__layout_add(l, "final_ln.b", 1, d);
    }
    return rc;
}

/* Unit LayerNorm gains; the rest as the PyTorch reference. */
static void sasrec_init_tensor(const iadsr__tensor *t, float *w,
                               iadsr__rng *rng)
{
    if (iadsr__tensor_ends_with(t, ".g")) {
        size_t n = (size_t)t->rows * (size_t)t->cols;
        for (size_t j = 0; j < n; j++)
            w[j] = 1.0f;
    } else {
        iadsr__tensor_init_default(t, w, rng);
    }
}

/* ---- encoder adapter ---------------------------------------------------- */

IADSR__ENCODER_ADAPTER(sasrec);

const iadsr__encoder_ops iadsr__sasrec_ops = {
    IADSR__ENCODER_OPS(sasrec, IADSR_BACKBONE_SASREC, "SASRec"),
};
