/* Fuzz harness: the word-vector text reader (src/cli/wordvec.h), its float
 * parser, and SIF sentence embeddings (src/cli/sif.h). Internal APIs: the
 * harness links the library objects.
 *
 * The whole input is a word-vector text. Checks:
 * - iadsr__wordvec_parse(): a documented status, *out NULL on failure; on
 *   success every stored word is found at its own index, words hold no
 *   blank or line feed, vectors are finite, and iadsr__wordvec_lookup()
 *   agrees with a brute-force search written from its description;
 * - iadsr__parse_float() on the input's first blank-separated tokens,
 *   against glibc's correctly rounded strtof() (C locale), and against the
 *   grammar of wordvec.h;
 * - on success, a SIF embedding of two texts cut from the input: status
 *   OK, statistics consistent, rows finite when the vectors are moderate.
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_common.h"

#include "cli/sif.h"
#include "cli/wordvec.h"

#include <ctype.h>

/* ---- the float grammar of wordvec.h ------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [+-]digits[.digits][(e|E)[+-]digits], digits on at least one side. */
static int grammar_number(const char *p, const char *end)
{
    if (p < end && (*p == '+' || *p == '-'))
        p++;
    int nd = 0;
    while (p < end && is_digit(*p))
        p++, nd++;
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_digit(*p))
            p++, nd++;
    }
    if (nd == 0)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        int ne = 0;
        while (p < end && is_digit(*p))
            p++, ne++;
        if (ne == 0)
            return 0;
    }
    return p == end;
}

static int ieq(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(end - p) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)p[i]) != w[i])
            return 0;
    return 1;
}

/* "nan", "inf", "infinity" in any case with an optional sign. */
static int grammar_special(const char *p, const char *end)
{
    if (p < end && (*p == '+' || *p == '-'))
        p++;
    return ieq(p, end, "nan") || ieq(p, end, "inf") ||
           ieq(p, end, "infinity");
}

static void check_float_token(const char *t, const char *e)
{
    float f = 1.0f;
    int r = iadsr__parse_float(t, e, &f);
    FZ_CHECK(r == 0 || r == 1 || r == 2);
    int num = grammar_number(t, e), spec = grammar_special(t, e);
    if (!num && !spec) {
        FZ_CHECK(r == 1);
        return;
    }
    FZ_CHECK(r != 1);
    if (spec) {
        FZ_CHECK(r == 2 && !isfinite(f));
        return;
    }
    /* strtof on a terminated copy: correctly rounded, ties to even */
    size_t n = (size_t)(e - t);
    char *z = fz_alloc(n + 1);
    memcpy(z, t, n);
    z[n] = '\0';
    char *zend = NULL;
    float want = strtof(z, &zend);
    FZ_CHECK(zend == z + n);
    free(z);
    if (r == 2) {
        FZ_CHECK(isinf(want) && f == want);
        return;
    }
    FZ_CHECK(isfinite(f));
    FZ_CHECK(memcmp(&f, &want, sizeof f) == 0);
}

static int blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void check_floats(const char *p, const char *end)
{
    for (int k = 0; k < 64 && p < end; k++) {
        while (p < end && blank(*p))
            p++;
        const char *t = p;
        while (p < end && !blank(*p))
            p++;
        if (p > t)
            check_float_token(t, p);
    }
}

/* ---- lookup by brute force ----------------------------------------------- */

static unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* The entry equal to the lower-cased token, else the first entry equal up
 * to ASCII case, else -1. */
static int32_t brute_lookup(const iadsr__wordvec *wv, const char *tok,
                            size_t len)
{
    int32_t best = -1;
    for (int32_t i = 0; i < wv->n_words; i++) {
        size_t wl;
        const char *w = iadsr__wordvec_word(wv, i, &wl);
        if (wl != len)
            continue;
        int lower = 1, same = 1;
        for (size_t j = 0; j < len && same; j++) {
            unsigned char a = (unsigned char)w[j];
            unsigned char b = fold((unsigned char)tok[j]);
            same = fold(a) == b;
            lower &= a == b;
        }
        if (same && lower)
            return i;
        if (same && best < 0)
            best = i;
    }
    return best;
}

static void check_lookup(const iadsr__wordvec *wv, const char *tok,
                         size_t len)
{
    FZ_CHECK(iadsr__wordvec_lookup(wv, tok, len) ==
             brute_lookup(wv, tok, len));
}

/* ---- SIF --------------------------------------------------------------------- */

static void check_sif(const iadsr__wordvec *wv, const uint8_t *data,
                      size_t size)
{
    float vmax = 0.0f;
    const size_t nv = (size_t)wv->n_words * (size_t)wv->dim;
    for (size_t i = 0; i < nv; i++)
        vmax = fabsf(wv->vecs[i]) > vmax ? fabsf(wv->vecs[i]) : vmax;

    /* two texts: the two halves of the input (a NUL inside ends one) */
    char *t0 = fz_alloc(size / 2 + 1), *t1 = fz_alloc(size - size / 2 + 1);
    memcpy(t0, data, size / 2);
    t0[size / 2] = '\0';
    memcpy(t1, data + size / 2, size - size / 2);
    t1[size - size / 2] = '\0';
    const char *texts[3] = {t0, t1, NULL};
    const int32_t dim = wv->dim;
    float *out = fz_alloc(3 * (size_t)dim * sizeof(float));
    double *pc = fz_alloc((size_t)dim * sizeof(double));
    iadsr__sif_stats st;
    memset(&st, 0xff, sizeof st);
    iadsr_clear_error();
    int rc = iadsr__sif_embed(wv, texts, 3, IADSR__SIF_DEFAULT_A, 1, out, pc,
                              &st);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK || rc == IADSR_ERR_NOMEM);
    if (rc == IADSR_OK) {
        FZ_CHECK(st.n_texts == 3);
        FZ_CHECK(st.n_covered >= 0 && st.n_covered <= 2);
        FZ_CHECK(st.n_known >= 0 && st.n_known <= st.n_tokens);
        FZ_CHECK(st.n_vocab >= 0 && st.n_vocab <= wv->n_words &&
                 st.n_vocab <= st.n_known);
        FZ_CHECK(st.pc_removed == 0 || st.pc_removed == 1);
        for (int32_t j = 0; j < dim; j++)
            FZ_CHECK(out[2 * (size_t)dim + (size_t)j] == 0.0f);
        /* with |v| <= 1e30 no sum of weighted averages can overflow */
        if (vmax <= 1e30f) {
            for (size_t i = 0; i < 3 * (size_t)dim; i++)
                FZ_CHECK(isfinite(out[i]));
            for (int32_t j = 0; j < dim; j++)
                FZ_CHECK(isfinite(pc[j]));
        }
    }
    /* argument errors */
    iadsr_clear_error();
    rc = iadsr__sif_embed(wv, texts, 3, NAN, 1, out, NULL, NULL);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
    iadsr_clear_error();
    rc = iadsr__sif_embed(wv, texts, -1, 1e-3, 1, out, NULL, NULL);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
    free(t0);
    free(t1);
    free(out);
    free(pc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fz_alloc(size);
    if (size)
        memcpy(buf, data, size);

    check_floats(buf, buf + size);

    iadsr__wordvec *wv = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr__wordvec_parse(buf, size, (size & 1) ? NULL : "fuzz.vec",
                                  &wv);
    fz_check_status(rc);
    if (rc != IADSR_OK) {
        FZ_CHECK(wv == NULL);
        FZ_CHECK(rc != IADSR_ERR_INVALID_ARG);
        free(buf);
        return 0;
    }
    FZ_CHECK(wv != NULL && wv->n_words >= 1 && wv->dim >= 1);
    FZ_CHECK(wv->n_words <= IADSR__WORDVEC_MAX_WORDS &&
             wv->dim <= IADSR__WORDVEC_MAX_DIM && wv->n_duplicates >= 0);
    for (int32_t i = 0; i < wv->n_words; i++) {
        size_t wl;
        const char *w = iadsr__wordvec_word(wv, i, &wl);
        FZ_CHECK(wl >= 1 && wl <= IADSR__WORDVEC_MAX_WORD);
        FZ_CHECK(w[wl] == '\0');
        for (size_t j = 0; j < wl; j++)
            FZ_CHECK(w[j] != ' ' && w[j] != '\t' && w[j] != '\n');
        FZ_CHECK(iadsr__wordvec_find(wv, w, wl) == i);
        const float *v = iadsr__wordvec_vec(wv, i);
        for (int32_t j = 0; j < wv->dim; j++)
            FZ_CHECK(isfinite(v[j]));
    }
    FZ_CHECK(iadsr__wordvec_find(wv, "", 0) == -1);

    /* lookups: each word, case variants, and slices of the input */
    if (wv->n_words <= 256) {
        for (int32_t i = 0; i < wv->n_words; i++) {
            size_t wl;
            const char *w = iadsr__wordvec_word(wv, i, &wl);
            char *up = fz_alloc(wl), *lo = fz_alloc(wl);
            for (size_t j = 0; j < wl; j++) {
                up[j] = (char)toupper((unsigned char)w[j]);
                lo[j] = (char)fold((unsigned char)w[j]);
            }
            check_lookup(wv, w, wl);
            check_lookup(wv, up, wl);
            check_lookup(wv, lo, wl);
            free(up);
            free(lo);
        }
        for (size_t s = 0; s < size && s < 64; s += 7)
            for (size_t l = 1; l <= 9 && s + l <= size; l += 4)
                check_lookup(wv, buf + s, l);
    }
    if (wv->dim <= 4096)
        check_sif(wv, data, size);

    iadsr__wordvec_free(wv);
    free(buf);
    return 0;
}
