/* Float instantiation of the Caser layers (production path), the Caser
 * parameter layout and its adapter of the encoder interface.
 * SPDX-License-Identifier: MIT
 */
#include "backbone/caser.h"
#include "backbone/sasrec.h" /* iadsr__sasrec_params_unused */
#include "common/params.h"
#include "math/blas.h"
#include "common/rng.h"
#include "backbone/encoder.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "math/real_f32.h"
#include "backbone/caser_template.h"
#include "math/real_undef.h"

/* ---- hyper-parameters --------------------------------------------------- */

/* The public ABI layout of the Caser fields (params.c asserts the rest). */
_Static_assert(offsetof(iadsr_model_params, caser_window) == 56, "model");
_Static_assert(offsetof(iadsr_model_params, caser_h_filters) == 60, "model");
_Static_assert(offsetof(iadsr_model_params, caser_v_filters) == 64, "model");

/* In the order checkpoints write them. */
static const iadsr__hparam_desc caser_hparams[] = {
    {"iadsr.caser_window", "caser_window",
     offsetof(iadsr_model_params, caser_window), 5, 1, IADSR__CASER_MAX_L},
    {"iadsr.caser_h_filters", "caser_h_filters",
     offsetof(iadsr_model_params, caser_h_filters), 16, 1, 1024},
    {"iadsr.caser_v_filters", "caser_v_filters",
     offsetof(iadsr_model_params, caser_v_filters), 4, 1, 1024},
};

#define N_HPARAMS ((int)(sizeof caser_hparams / sizeof caser_hparams[0]))

static int caser_check_params(iadsr_model_params *p, const char *w)
{
    TRY(iadsr__sasrec_params_unused(p, w));
    if (p->n_layers != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.n_layers = %d: Caser has no layers to set "
                          "(leave it 0)",
                          w, (int)p->n_layers);
    TRY(iadsr__encoder_check_foreign(p, w));
    return iadsr__hparams_normalise(caser_hparams, N_HPARAMS, p, w);
}

static void caser_fill_shape(const iadsr_model_params *hp, iadsr__shape *s)
{
    s->caser_l = hp->caser_window;
    s->caser_nh = hp->caser_h_filters;
    s->caser_nv = hp->caser_v_filters;
}

/* ---- parameter layout and initialisation -------------------------------- */

static int caser_layout(const iadsr_model_params *hp, iadsr__layout *out)
{
    int64_t d = hp->dim, L = hp->caser_window, nh = hp->caser_h_filters;
    int64_t nv = hp->caser_v_filters;
    if (L < 1 || L > IADSR__CASER_MAX_L || nh < 1 || nv < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "caser: window %lld / filters %lld, %lld are not "
                          "normalised",
                          (long long)L, (long long)nh, (long long)nv);
    char name[IADSR__TENSOR_NAME_MAX];
    int rc = iadsr__layout_add(out, "item_emb", (int64_t)hp->n_items + 1, d);
    for (int64_t h = 1; h <= L && rc == IADSR_OK; h++) {
        snprintf(name, sizeof name, "caser.h%lld.w", (long long)h);
        rc = iadsr__layout_add(out, name, h * d, nh);
        snprintf(name, sizeof name, "caser.h%lld.b", (long long)h);
        rc = rc ? rc : iadsr__layout_add(out, name, 1, nh);
    }
    rc = rc ? rc : iadsr__layout_add(out, "caser.v.w", L, nv);
    rc = rc ? rc : iadsr__layout_add(out, "caser.v.b", 1, nv);
    rc = rc ? rc : iadsr__layout_add(out, "caser.fc.w", nv * d + L * nh, d);
    rc = rc ? rc : iadsr__layout_add(out, "caser.fc.b", 1, d);
    return rc;
}

double iadsr__caser_init_sd(const iadsr__tensor *t)
{
    /* Every Caser weight is [fan_in, fan_out]. Convolutions: PyTorch's
     * default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) has this variance. */
    if (strcmp(t->name, "caser.fc.w") == 0)
        return sqrt(2.0 / (double)(t->rows + t->cols));
    return 1.0 / sqrt(3.0 * (double)t->rows);
}

/* The convolutions and the fc layer: fan-scaled as in RecBole (0.02
 * through two layers would leave h ~ 1e-3), and drawn even when a weight
 * has a single row (window 1 or d 1). The rest as the PyTorch reference. */
static void caser_init_tensor(const iadsr__tensor *t, float *w,
                              iadsr__rng *rng)
{
    if (strncmp(t->name, "caser.", 6) == 0 &&
        iadsr__tensor_ends_with(t, ".w")) {
        size_t n = (size_t)t->rows * (size_t)t->cols;
        double sd = iadsr__caser_init_sd(t);
        for (size_t j = 0; j < n; j++)
            w[j] = (float)(sd * iadsr__rng_normal(rng));
    } else {
        iadsr__tensor_init_default(t, w, rng);
    }
}

/* ---- encoder adapter ---------------------------------------------------- */

IADSR__ENCODER_ADAPTER(caser);

const iadsr__encoder_ops iadsr__caser_ops = {
    IADSR__ENCODER_OPS(caser, IADSR_BACKBONE_CASER, "Caser"),
    .hparam_prefix = "caser_",
    .hparams = caser_hparams,
    .n_hparams = N_HPARAMS,
};
