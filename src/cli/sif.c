/* libiadsr - SIF sentence embeddings from word vectors (see sif.h).
 * SPDX-License-Identifier: MIT
 */
#include "cli/sif.h"

#include "common/alloc.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/rng.h"

#include <math.h>
#include <string.h>

/* Seed of the power iteration's start vector (any constant will do). */
#define SIF_PC_SEED 0x5349465043ull /* "SIFPC" */
#define SIF_PC_TOL 1e-10

static int is_token_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

/* The next token of the NUL-terminated text at *pos: returns its start and
 * sets *len, or returns NULL at the end. Advances *pos past the token. */
static const char *next_token(const char **pos, size_t *len)
{
    const unsigned char *p = (const unsigned char *)*pos;
    while (*p && !is_token_byte(*p))
        p++;
    if (!*p) {
        *pos = (const char *)p;
        return NULL;
    }
    const unsigned char *t = p;
    while (is_token_byte(*p))
        p++;
    *len = (size_t)(p - t);
    *pos = (const char *)p;
    return (const char *)t;
}

static int row_is_zero(const float *r, int32_t dim)
{
    for (int32_t j = 0; j < dim; j++)
        if (r[j] != 0.0f)
            return 0;
    return 1;
}

/* Top eigenvector of X^T X (X = the non-zero rows of @p out) into @p u by
 * power iteration; @p y is scratch (dim doubles). Returns the iterations
 * run, 0 if X^T X annihilated the iterate (u is then unusable). */
static int power_iteration(const float *out, int32_t n, int32_t dim,
                           const unsigned char *nonzero, double *u,
                           double *y, double *sigma2)
{
    iadsr__rng rng;
    double norm = 0.0;
    iadsr__rng_seed(&rng, SIF_PC_SEED);
    for (int32_t j = 0; j < dim; j++) {
        u[j] = iadsr__rng_normal(&rng);
        norm += u[j] * u[j];
    }
    norm = sqrt(norm);
    for (int32_t j = 0; j < dim; j++)
        u[j] /= norm;

    *sigma2 = 0.0;
    for (int it = 1; it <= IADSR__SIF_MAX_ITER; it++) {
        memset(y, 0, (size_t)dim * sizeof *y);
        for (int32_t i = 0; i < n; i++) {
            if (!nonzero[i])
                continue;
            const float *x = out + (size_t)i * (size_t)dim;
            double t = 0.0;
            for (int32_t j = 0; j < dim; j++)
                t += (double)x[j] * u[j];
            for (int32_t j = 0; j < dim; j++)
                y[j] += t * (double)x[j];
        }
        double yn = 0.0;
        for (int32_t j = 0; j < dim; j++)
            yn += y[j] * y[j];
        yn = sqrt(yn);
        if (!(yn > 0.0))
            return 0;
        double delta = 0.0;
        for (int32_t j = 0; j < dim; j++) {
            double v = y[j] / yn;
            double d = fabs(v - u[j]);
            delta = d > delta ? d : delta;
            u[j] = v;
        }
        *sigma2 = yn; /* ||X^T X u|| -> the top eigenvalue */
        if (delta < SIF_PC_TOL)
            return it;
    }
    return IADSR__SIF_MAX_ITER;
}

int iadsr__sif_embed(const iadsr__wordvec *wv, const char *const *texts,
                     int32_t n_texts, double a, int remove_pc, float *out,
                     double *pc_out, iadsr__sif_stats *st)
{
    static const char w[] = "sif_embed";
    iadsr__sif_stats s;
    int64_t *counts = NULL;
    double *acc = NULL, *u = NULL;
    unsigned char *nonzero = NULL;
    int rc = IADSR_OK;

    if (!wv || wv->n_words < 1 || wv->dim < 1)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: no word vectors", w);
    if (n_texts < 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: n_texts = %d < 0", w,
                          (int)n_texts);
    if (n_texts > 0 && (!texts || !out))
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s is NULL", w,
                          texts ? "out" : "texts");
    if (!(a > 0.0) || !isfinite(a))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: a = %g, must be finite and > 0", w, a);

    const int32_t dim = wv->dim;
    memset(&s, 0, sizeof s);
    s.n_texts = n_texts;
    if (pc_out)
        memset(pc_out, 0, (size_t)dim * sizeof *pc_out);

    counts = iadsr__calloc((size_t)wv->n_words, sizeof *counts);
    acc = iadsr__malloc((size_t)dim * sizeof *acc);
    u = iadsr__malloc((size_t)dim * sizeof *u);
    nonzero = iadsr__calloc(n_texts > 0 ? (size_t)n_texts : 1, 1);
    if (!counts || !acc || !u || !nonzero) {
        rc = iadsr__err(IADSR_ERR_NOMEM,
                        "%s: out of memory (%d words, %d texts, D = %d)", w,
                        (int)wv->n_words, (int)n_texts, (int)dim);
        goto done;
    }

    /* pass 1: word counts over the texts themselves */
    for (int32_t i = 0; i < n_texts; i++) {
        const char *p = texts[i];
        const char *t;
        size_t len;
        if (!p)
            continue;
        while ((t = next_token(&p, &len)) != NULL) {
            int32_t k = iadsr__wordvec_lookup(wv, t, len);
            s.n_tokens++;
            if (k >= 0) {
                if (counts[k]++ == 0)
                    s.n_vocab++;
                s.n_known++;
            }
        }
    }

    /* pass 2: weighted averages, accumulated in double */
    int32_t n_nonzero = 0;
    const double inv_total = s.n_tokens > 0 ? 1.0 / (double)s.n_tokens : 0.0;
    for (int32_t i = 0; i < n_texts; i++) {
        float *row = out + (size_t)i * (size_t)dim;
        const char *p = texts[i];
        const char *t;
        size_t len;
        int64_t n_s = 0;
        memset(acc, 0, (size_t)dim * sizeof *acc);
        while (p && (t = next_token(&p, &len)) != NULL) {
            int32_t k = iadsr__wordvec_lookup(wv, t, len);
            if (k < 0)
                continue;
            const double pw = (double)counts[k] * inv_total;
            const double wgt = a / (a + pw);
            const float *v = iadsr__wordvec_vec(wv, k);
            for (int32_t j = 0; j < dim; j++)
                acc[j] += wgt * (double)v[j];
            n_s++;
        }
        if (n_s == 0) {
            memset(row, 0, (size_t)dim * sizeof *row);
            continue;
        }
        s.n_covered++;
        for (int32_t j = 0; j < dim; j++)
            row[j] = (float)(acc[j] / (double)n_s);
        if (!row_is_zero(row, dim)) {
            nonzero[i] = 1;
            n_nonzero++;
        }
    }

    /* remove the first principal component */
    if (remove_pc && n_nonzero >= 2) {
        double *y = acc; /* scratch */
        int it = power_iteration(out, n_texts, dim, nonzero, u, y,
                                 &s.pc_sigma2);
        if (it > 0) {
            for (int32_t i = 0; i < n_texts; i++) {
                if (!nonzero[i])
                    continue;
                float *x = out + (size_t)i * (size_t)dim;
                double t = 0.0;
                for (int32_t j = 0; j < dim; j++)
                    t += (double)x[j] * u[j];
                for (int32_t j = 0; j < dim; j++)
                    x[j] = (float)((double)x[j] - t * u[j]);
            }
            s.pc_removed = 1;
            s.pc_iterations = it;
            if (pc_out)
                memcpy(pc_out, u, (size_t)dim * sizeof *u);
        } else {
            s.pc_sigma2 = 0.0;
        }
    }

done:
    if (st)
        *st = s;
    iadsr__free(counts);
    iadsr__free(acc);
    iadsr__free(u);
    iadsr__free(nonzero);
    return rc;
}
