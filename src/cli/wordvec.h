/* libiadsr - pretrained word vectors in text form (wordvec.c). Internal.
 * SPDX-License-Identifier: MIT
 *
 * Accepted format (GloVe / word2vec / fastText ".vec" text):
 *
 *   [<count> <dim>]            optional word2vec header: exactly two
 *                              non-negative integer tokens on line 1
 *   word v1 v2 ... vD          one word per line, D numbers
 *
 * Fields are separated by spaces or tabs (runs allowed, trailing ones
 * ignored); lines end with "\n" or "\r\n"; empty lines are skipped. D is the
 * header's, or else the number of numbers on the first vector line, and every
 * line must have exactly D numbers. Numbers are decimal ("-0.25", "3",
 * "1.5e-3"; no hex, no locale), rounded correctly to float32; "nan", "inf"
 * and values beyond the float range are rejected. A word that appears again
 * keeps its first vector; the repeats are counted. Words are stored as given
 * (any bytes except blanks and line ends, at most IADSR__WORDVEC_MAX_WORD
 * bytes).
 */
#ifndef IADSR_WORDVEC_H
#define IADSR_WORDVEC_H

#include <stddef.h>
#include <stdint.h>

#define IADSR__WORDVEC_MAX_WORD 1024     /* bytes per word */
#define IADSR__WORDVEC_MAX_DIM 1048576   /* as iadsr_semantic */
#define IADSR__WORDVEC_MAX_WORDS (INT32_MAX / 2)

/* One hash-table slot: the word's case-folded FNV-1a hash and its index + 1
 * (0 = empty slot). */
typedef struct iadsr__wordvec_slot {
    uint32_t hash;
    uint32_t idx1;
} iadsr__wordvec_slot;

typedef struct iadsr__wordvec {
    int32_t n_words;      /* distinct words stored */
    int32_t dim;          /* D */
    int64_t n_duplicates; /* lines whose word was already stored (skipped) */
    float *vecs;          /* n_words x dim, row i = word i (file order) */
    char *chars;          /* the words, each followed by a NUL */
    size_t *word_off;     /* n_words + 1 offsets into chars (word i spans
                             word_off[i] .. word_off[i+1] - 2) */
    iadsr__wordvec_slot *table; /* open addressing, linear probing */
    uint32_t table_mask;        /* capacity - 1 (capacity a power of two) */
} iadsr__wordvec;

/* Parse the @p len bytes at @p buf (not NUL-terminated, untrusted). @p name
 * names the source in messages ("NAME:LINE: ..."; NULL gives "<buffer>").
 * Returns IADSR_OK with a new table in *out (free with
 * iadsr__wordvec_free()), or, with *out NULL: IADSR_ERR_INVALID_ARG,
 * IADSR_ERR_FORMAT (bad header, token that is not a number, ragged line,
 * over-long word, no vectors), IADSR_ERR_NUMERIC (a NaN/Inf or out-of-range
 * value; the message names line and column), IADSR_ERR_OUT_OF_RANGE (more
 * than IADSR__WORDVEC_MAX_WORDS words or a D above IADSR__WORDVEC_MAX_DIM),
 * IADSR_ERR_NOMEM. */
int iadsr__wordvec_parse(const char *buf, size_t len, const char *name,
                         iadsr__wordvec **out);

/* Read and parse the file at @p path; errors as iadsr__wordvec_parse() plus
 * IADSR_ERR_IO. Messages name the path. */
int iadsr__wordvec_load(const char *path, iadsr__wordvec **out);

void iadsr__wordvec_free(iadsr__wordvec *wv); /* NULL is a no-op */

/* Index of the word whose bytes are exactly @p word[0..len), or -1. */
int32_t iadsr__wordvec_find(const iadsr__wordvec *wv, const char *word,
                            size_t len);

/* Index for a text token: the entry equal to the ASCII-lower-cased token if
 * there is one, else the earliest entry (file order) equal to the token up to
 * ASCII case, else -1. */
int32_t iadsr__wordvec_lookup(const iadsr__wordvec *wv, const char *tok,
                              size_t len);

/* Word @p i (NUL-terminated) and its length; its vector (dim floats). */
static inline const char *iadsr__wordvec_word(const iadsr__wordvec *wv,
                                              int32_t i, size_t *len)
{
    if (len)
        *len = wv->word_off[i + 1] - wv->word_off[i] - 1;
    return wv->chars + wv->word_off[i];
}

static inline const float *iadsr__wordvec_vec(const iadsr__wordvec *wv,
                                              int32_t i)
{
    return wv->vecs + (size_t)i * (size_t)wv->dim;
}

/* Locale-independent decimal to float32, correctly rounded (ties to even),
 * reading only p[0..end). The whole range must be one number:
 * [+-]digits[.digits][(e|E)[+-]digits] (digits on at least one side of the
 * point). Returns 0 and sets *out; 1 when the text is not such a number; 2
 * when it is NaN or infinite ("nan", "inf", "infinity" in any case, with an
 * optional sign) or rounds to infinity; *out is then +-INFINITY or NAN.
 * Values below the float range round to (signed) zero or a subnormal. */
int iadsr__parse_float(const char *p, const char *end, float *out);

#endif /* IADSR_WORDVEC_H */
