/* libiadsr - the gate handle: the reconstruction decoder and the
 * deterministic inference rule (threshold, max_drop cap, protection of the
 * most recent item).
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

static void gate_destroy(iadsr_gate *g)
{
    iadsr__aligned_free(g->w);
    iadsr__free(g);
}

IADSR__HANDLE_LIFECYCLE(iadsr_gate, gate, IADSR__MAGIC_GATE, gate_destroy)

int iadsr__gate_alloc(iadsr_gate **out, int32_t dim,
                      const iadsr_denoise_params *p)
{
    *out = NULL;
    iadsr_gate *g;
    size_t n = iadsr__gate_floats(dim);
    float *w = IADSR__HANDLE_NEW(g, IADSR__MAGIC_GATE)
                   ? iadsr__aligned_alloc(n, sizeof(float))
                   : NULL;
    if (!w) {
        iadsr__free(g);
        return iadsr__err(IADSR_ERR_NOMEM, "gate: out of memory (d %d)",
                          (int)dim);
    }
    memset(w, 0, n * sizeof(float));
    g->dim = dim;
    g->p = *p;
    /* how the weights were scheduled in training is no property of a gate */
    g->p.flags &= ~IADSR_DENOISE_F_BACKOFF;
    g->w = w;
    g->wd = w;
    g->bd = w + (size_t)dim * (size_t)dim;
    g->det = g->bd + dim;
    *out = g;
    return IADSR_OK;
}

int iadsr_gate_create(iadsr_gate **out, int32_t dim,
                      const iadsr_denoise_params *p)
{
    static const char w[] = "gate_create";
    IADSR__OUT_CLEAR(out, w);
    iadsr_denoise_params dp;
    TRY(iadsr__denoise_create_check(w, p, &dp, dim));
    iadsr_gate *g;
    TRY(iadsr__gate_alloc(&g, dim, &dp));
    iadsr__rng rng;
    /* a stream distinct from the aligner's, which uses the same seed */
    iadsr__rng_seed(&rng, dp.seed ^ 0x9e3779b97f4a7c15ull);
    iadsr__xavier_fill(g->wd, dim, dim, &rng);
    *out = g;
    return IADSR_OK;
}

int iadsr_gate_with_params(iadsr_gate **out, const iadsr_gate *g,
                           const iadsr_denoise_params *p)
{
    static const char w[] = "gate_with_params";
    IADSR__OUT_CLEAR(out, w);
    TRY(iadsr__check_handle(iadsr__gate_ok(g), w, "gate"));
    iadsr_denoise_params dp;
    TRY(iadsr__denoise_params_get(&dp, p));
    /* keep what describes how the decoder was trained */
    dp.lambda_align = g->p.lambda_align;
    dp.lambda_recon = g->p.lambda_recon;
    dp.tau_align = g->p.tau_align;
    dp.seed = g->p.seed;
    uint32_t trained = IADSR_DENOISE_F_CARRY_MASKS | IADSR_DENOISE_F_PAPER |
                       IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_HOLDOUT |
                       IADSR_DENOISE_F_CLEAN_SCORES |
                       IADSR_DENOISE_F_INPUT_MASK | IADSR_DENOISE_F_TEXT;
    if (g->p.flags & IADSR_DENOISE_F_DETECT) {
        /* the detector's weights belong to the features it was trained on */
        if ((dp.flags & IADSR_DENOISE_F_COLLAB_ONLY) &&
            !(g->p.flags & IADSR_DENOISE_F_COLLAB_ONLY))
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: IADSR_DENOISE_F_COLLAB_ONLY: a detector "
                              "gate scores with the features it was trained "
                              "on; train one with the flag instead",
                              w);
        trained |= IADSR_DENOISE_F_COLLAB_ONLY;
    }
    dp.flags = (dp.flags & ~trained) | (g->p.flags & trained);
    iadsr_gate *n;
    TRY(iadsr__gate_alloc(&n, g->dim, &dp));
    memcpy(n->w, g->w, iadsr__gate_floats(g->dim) * sizeof(float));
    n->prov = g->prov;
    *out = n;
    return IADSR_OK;
}

IADSR__HANDLE_GET(iadsr_gate, gate, int32_t, iadsr_gate_dim, h->dim)

int iadsr_gate_get_params(const iadsr_gate *g, iadsr_denoise_params *out)
{
    TRY(iadsr__check_handle(iadsr__gate_ok(g), "gate_get_params", "gate"));
    /* up to the smaller of the caller's struct_size and sizeof g->p */
    return iadsr__output_copy(out, &g->p, sizeof g->p,
                              IADSR__DENOISE_PARAMS_SIZE_0_3,
                              "gate_get_params: out");
}

int iadsr__gate_finite(const iadsr_gate *g)
{
    return iadsr__all_finite(g->w, iadsr__gate_floats(g->dim));
}

/* (score, position) order: a before b */
static int before(const float *score, int32_t a, int32_t b)
{
    float sa = score[a], sb = score[b];
    return sa < sb || (sa == sb && a < b);
}

/* max-heap sift-down on order[0..n) by before() */
static void sift(const float *score, int32_t *order, int32_t n, int32_t i)
{
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(score, order[c], order[c + 1]))
            c++;
        if (!before(score, order[i], order[c]))
            return;
        int32_t tmp = order[i];
        order[i] = order[c];
        order[c] = tmp;
        i = c;
    }
}

int32_t iadsr__gate_decide(const iadsr_denoise_params *p, const float *score,
                           int32_t n, uint8_t *keep, int32_t *order)
{
    int32_t last = p->protect_last ? n - 1 : -1;
    int32_t cand = 0;
    for (int32_t t = 0; t < n; t++) {
        keep[t] = !(score[t] <= p->theta) || t == last;
        if (!keep[t])
            order[cand++] = t;
    }
    /* max_drop is read to 6 decimals, so that the float 0.7f (0.69999998...)
     * times 10 gives a cap of 7 as the caller means, not 6 */
    double md = round((double)p->max_drop * 1e6) / 1e6;
    int32_t cap = (int32_t)floor(md * (double)n + 1e-9);
    if (cand > cap) {
        /* drop only the cap lowest scores: heap-sort the candidates by
         * (score, position), so ties drop the older position and long
         * sequences stay O(n log n) */
        for (int32_t i = cand / 2 - 1; i >= 0; i--)
            sift(score, order, cand, i);
        for (int32_t e = cand - 1; e > 0; e--) {
            int32_t tmp = order[0];
            order[0] = order[e];
            order[e] = tmp;
            sift(score, order, e, 0);
        }
        for (int32_t i = cap; i < cand; i++)
            keep[order[i]] = 1;
        cand = cap;
    }
    return n - cand;
}

int iadsr__holdout_user(const int32_t *items, int64_t n)
{
    /* FNV-1a over the item ids' bytes, then a splitmix finish so the low
     * bits of consecutive ids do not line up with the modulus */
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)items[i];
        for (int b = 0; b < 4; b++) {
            h ^= (x >> (8 * b)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (h % IADSR__HOLDOUT_MOD) == 0;
}
