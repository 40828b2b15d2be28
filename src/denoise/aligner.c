/* libiadsr - the aligner handle: the projections W1, W2 from the host's
 * semantic space (D) into the backbone's space (d).
 * SPDX-License-Identifier: MIT
 */
#include "denoise/denoise.h"
#include "common/params.h"
#include "common/alloc.h"
#include "common/error.h"
#include "math/kernels.h"
#include "common/handle.h"

#include <math.h>
#include <string.h>

static void aligner_destroy(iadsr_aligner *a)
{
    iadsr__aligned_free(a->w);
    iadsr__free(a);
}

IADSR__HANDLE_LIFECYCLE(iadsr_aligner, aligner, IADSR__MAGIC_ALIGNER,
                        aligner_destroy)

void iadsr__xavier_fill(float *w, int64_t rows, int64_t cols,
                        iadsr__rng *rng)
{
    double a = sqrt(6.0 / (double)(rows + cols));
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(a * (2.0 * (double)iadsr__rng_float(rng) - 1.0));
}

int iadsr__denoise_create_check(const char *w, const iadsr_denoise_params *p,
                                iadsr_denoise_params *dp, int32_t dim)
{
    TRY(iadsr__denoise_params_get(dp, p));
    return iadsr__check_arg_i32(w, "dim", dim, 1, 4096);
}

int iadsr__aligner_alloc(iadsr_aligner **out, int32_t dim, int32_t sem_dim,
                         float tau_align)
{
    *out = NULL;
    iadsr_aligner *a;
    size_t n = (size_t)dim * (size_t)sem_dim;
    float *w = IADSR__HANDLE_NEW(a, IADSR__MAGIC_ALIGNER)
                   ? iadsr__aligned_alloc(2 * n, sizeof(float))
                   : NULL;
    if (!w) {
        iadsr__free(a);
        return iadsr__err(IADSR_ERR_NOMEM, "aligner: out of memory (d %d, "
                          "D %d)", (int)dim, (int)sem_dim);
    }
    memset(w, 0, 2 * n * sizeof(float));
    a->dim = dim;
    a->sem_dim = sem_dim;
    a->tau_align = tau_align;
    a->w = w;
    a->w1 = w;
    a->w2 = w + n;
    *out = a;
    return IADSR_OK;
}

int iadsr_aligner_create(iadsr_aligner **out, int32_t dim, int32_t sem_dim,
                         const iadsr_denoise_params *p)
{
    static const char w[] = "aligner_create";
    IADSR__OUT_CLEAR(out, w);
    iadsr_denoise_params dp;
    TRY(iadsr__denoise_create_check(w, p, &dp, dim));
    TRY(iadsr__check_arg_i32(w, "sem_dim", sem_dim, 1, 1048576));
    iadsr_aligner *a;
    TRY(iadsr__aligner_alloc(&a, dim, sem_dim, dp.tau_align));
    iadsr__rng rng;
    iadsr__rng_seed(&rng, dp.seed);
    iadsr__xavier_fill(a->w1, sem_dim, dim, &rng);
    iadsr__xavier_fill(a->w2, sem_dim, dim, &rng);
    *out = a;
    return IADSR_OK;
}

IADSR__HANDLE_GET(iadsr_aligner, aligner, int32_t, iadsr_aligner_dim, h->dim)
IADSR__HANDLE_GET(iadsr_aligner, aligner, int32_t, iadsr_aligner_semantic_dim,
                  h->sem_dim)

int iadsr__aligner_finite(const iadsr_aligner *a)
{
    size_t n = 2 * (size_t)a->dim * (size_t)a->sem_dim;
    return iadsr__all_finite(a->w, n) && isfinite(a->tau_align) &&
           a->tau_align > 0.0f;
}

int iadsr_aligner_project(const iadsr_aligner *a, int32_t which,
                          const float *x, float *out)
{
    TRY(iadsr__check_handle(iadsr__aligner_ok(a), "aligner_project",
                            "aligner"));
    if (which != 1 && which != 2)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "aligner_project: which = %d, must be 1 (W1) or "
                          "2 (W2)",
                          (int)which);
    if (!x || !out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "aligner_project: x or out is NULL");
    const float *w = which == 1 ? a->w1 : a->w2;
    int d = a->dim;
    /* accumulate in double: the result must not depend on D's size much */
    for (int c = 0; c < d; c++) {
        double acc = 0.0;
        for (int j = 0; j < a->sem_dim; j++)
            acc += (double)x[j] * (double)w[(size_t)j * (size_t)d + (size_t)c];
        out[c] = (float)acc;
    }
    return IADSR_OK;
}
