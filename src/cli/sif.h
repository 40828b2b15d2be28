/* libiadsr - SIF sentence embeddings from word vectors (sif.c). Internal.
 * SPDX-License-Identifier: MIT
 *
 * "Smooth inverse frequency" (Arora, Liang, Ma: A Simple but Tough-to-Beat
 * Baseline for Sentence Embeddings, ICLR 2017), as implemented here:
 *
 * 1. Tokens: the text's bytes with ASCII letters lower-cased; a token is a
 *    maximal run of [a-z0-9]. Every other byte separates tokens, including
 *    all bytes >= 0x80, so UTF-8 words are split at their non-ASCII letters
 *    ("naive" written with a diaeresis on the i gives "na" and "ve"), and
 *    non-ASCII letters are never lower-cased.
 *    Tokens are looked up with iadsr__wordvec_lookup() (the exact lower-case
 *    entry first, else a case variant).
 * 2. Word frequency p(w) = count of w / number of tokens, both counted over
 *    the texts being embedded (the item corpus itself, not an external one):
 *    every token counts in the denominator, known or not. The embedder thus
 *    needs nothing but the vectors, and a word frequent in this catalogue
 *    ("oz", "set") is down-weighted even when it is rare in general text.
 * 3. Sentence vector v_s = (1 / n_s) * sum over the n_s tokens of s that
 *    have a vector of a / (a + p(w)) * v_w (Algorithm 1 of the paper: the
 *    average of the weighted vectors, repeated tokens counted each time).
 *    Texts with no known token get an all-zero row.
 * 4. Unless disabled, the projection on the first principal component u of
 *    the matrix X of the non-zero sentence vectors (uncentred: the top right
 *    singular vector of X, i.e. the top eigenvector of X^T X) is removed:
 *    v_s -= (u . v_s) u. u is found by power iteration in double precision on
 *    X^T X applied as X^T (X v), from a fixed pseudo-random start vector, for
 *    at most IADSR__SIF_MAX_ITER iterations or until the change of the unit
 *    iterate is below 1e-10; it is computed from the float32 rows as stored.
 *    Zero rows stay exactly zero and take no part. With fewer than two
 *    non-zero rows nothing is removed (the only row would vanish).
 */
#ifndef IADSR_SIF_H
#define IADSR_SIF_H

#include "cli/wordvec.h"

#include <stdint.h>

#define IADSR__SIF_DEFAULT_A 1e-3
#define IADSR__SIF_MAX_ITER 500

typedef struct iadsr__sif_stats {
    int32_t n_texts;
    int32_t n_covered;  /* texts with at least one token that has a vector */
    int64_t n_tokens;   /* tokens in all texts */
    int64_t n_known;    /* of which have a vector */
    int32_t n_vocab;    /* distinct words with a vector seen in the texts */
    int pc_removed;     /* 1 if the principal component was removed */
    int pc_iterations;  /* power iterations run (0 if none) */
    double pc_sigma2;   /* top eigenvalue of X^T X (0 if none) */
} iadsr__sif_stats;

/* Embed @p n_texts NUL-terminated texts (a NULL entry is an empty text)
 * with the word vectors @p wv and SIF parameter @p a (> 0, finite; the paper
 * uses 1e-3). Row i of @p out (n_texts x wv->dim floats, row-major, packed)
 * receives text i's vector. @p remove_pc != 0 removes the first principal
 * component. @p pc_out, if non-NULL, receives the unit component u (dim
 * doubles; all zero when none was removed). @p st, if non-NULL, receives the
 * counts. Returns IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_NOMEM; on error
 * @p out is left in an unspecified state. */
int iadsr__sif_embed(const iadsr__wordvec *wv, const char *const *texts,
                     int32_t n_texts, double a, int remove_pc, float *out,
                     double *pc_out, iadsr__sif_stats *st);

#endif /* IADSR_SIF_H */
