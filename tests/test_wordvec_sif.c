/* Tests: word-vector parser (src/cli/wordvec.c), float parser, SIF embedder
 * (src/cli/sif.c).
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/alloc.h"
#include "cli/sif.h"
#include "testutil.h"
#include "cli/wordvec.h"

Suite *suite_wordvec_sif(void);

/* Parse a string literal (not NUL-terminated for the parser: the length
 * excludes the terminator). */
static int parse_str(const char *text, iadsr__wordvec **out)
{
    return iadsr__wordvec_parse(text, strlen(text), "t", out);
}

static iadsr__wordvec *parse_ok(const char *text)
{
    iadsr__wordvec *wv = NULL;
    TU_OK(parse_str(text, &wv));
    ck_assert_ptr_nonnull(wv);
    return wv;
}

static int32_t find(const iadsr__wordvec *wv, const char *w)
{
    return iadsr__wordvec_find(wv, w, strlen(w));
}

static int32_t lookup(const iadsr__wordvec *wv, const char *w)
{
    return iadsr__wordvec_lookup(wv, w, strlen(w));
}

/* ---- float parser ------------------------------------------------------------ */

static uint64_t xs_state;
static uint64_t xs(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 7;
    xs_state ^= xs_state << 17;
    return xs_state;
}

static int pf(const char *s, float *v)
{
    return iadsr__parse_float(s, s + strlen(s), v);
}

/* Bitwise agreement with strtof (the tests run in the "C" locale). */
static void check_like_strtof(const char *s)
{
    float mine, ref = strtof(s, NULL);
    int r = pf(s, &mine);
    if (isinf(ref)) {
        ck_assert_msg(r == 2, "'%s': rounds to infinity, got status %d", s,
                      r);
        return;
    }
    ck_assert_msg(r == 0, "'%s': status %d", s, r);
    ck_assert_msg(memcmp(&mine, &ref, sizeof mine) == 0,
                  "'%s': got %.9g, strtof gives %.9g", s, (double)mine,
                  (double)ref);
}

START_TEST(test_float_syntax)
{
    static const char *const good[] = {
        "0", "-0", "+1", "1.", ".5", "-.5e3", "1e5", "1E-5", "00012.5000",
        "1e+0", "0.000", "123456789012345678901234567890",
        "0.0000000000000000000000000000000000000000000000001", "3.4028235e38",
        "1.17549435e-38", "1.4e-45", "7e-46", "-0.038194", "2.2167"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        check_like_strtof(good[i]);
    float v;
    ck_assert_int_eq(pf("-0", &v), 0);
    ck_assert(v == 0.0f && signbit(v));
    ck_assert_int_eq(pf("0.25", &v), 0);
    ck_assert(v == 0.25f);
    ck_assert_int_eq(pf("1e-50", &v), 0); /* below the range: zero */
    ck_assert(v == 0.0f);

    static const char *const bad[] = {"",   "-",   "+",    ".",    "e5",
                                      "1e", "1e+", "0x10", "1.2.3", "1,5",
                                      "--1", "1e5.0", " 1", "1 ",  "abc",
                                      "nanx", "in",  "1e-", "1f",  "\xc2\xb9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(pf(bad[i], &v) == 1, "'%s' accepted", bad[i]);

    static const char *const nonfinite[] = {"nan",      "NaN",   "-nan",
                                            "inf",      "-Inf",  "INFINITY",
                                            "1e39",     "-1e999", "3.5e38",
                                            "3.40282357e38"};
    for (size_t i = 0; i < sizeof nonfinite / sizeof nonfinite[0]; i++)
        ck_assert_msg(pf(nonfinite[i], &v) == 2, "'%s' is finite?",
                      nonfinite[i]);
    /* reads nothing past the end: the range is a prefix of a longer text */
    const char *s = "1.5e3xyz";
    ck_assert_int_eq(iadsr__parse_float(s, s + 3, &v), 0);
    ck_assert(v == 1.5f);
    ck_assert_int_eq(iadsr__parse_float(s, s + 5, &v), 0); /* "1.5e3" */
    ck_assert(v == 1500.0f);
    ck_assert_int_eq(iadsr__parse_float(s, s + 6, &v), 1); /* "1.5e3x" */
}
END_TEST

START_TEST(test_float_random_vs_strtof)
{
    char buf[300];
    long n = tu_light() ? 20000 : 300000;
    xs_state = 0x9e3779b97f4a7c15ull;
    for (long i = 0; i < n; i++) {
        int len = 0;
        switch (xs() % 5) {
        case 0: { /* a random float printed with random precision */
            uint32_t b = (uint32_t)xs();
            float f;
            memcpy(&f, &b, sizeof f);
            if (!isfinite(f))
                continue;
            len = snprintf(buf, sizeof buf, "%.*g", (int)(xs() % 12) + 1,
                           (double)f);
            break;
        }
        case 1: { /* exact midpoints between adjacent floats (ties) and
                     numbers next to them */
            uint32_t b = (uint32_t)xs() & 0x7f7fffffu;
            float f, g;
            memcpy(&f, &b, sizeof f);
            g = nextafterf(f, INFINITY);
            if (!isfinite(g))
                continue;
            double mid = ((double)f + (double)g) / 2;
            len = snprintf(buf, sizeof buf, "%.*e",
                           (xs() % 3 == 0) ? 120 : (int)(8 + xs() % 20), mid);
            break;
        }
        case 2: { /* random digit strings with a random exponent */
            int nd = 1 + (int)(xs() % 40), pt = (int)(xs() % (uint64_t)(nd + 1));
            for (int k = 0; k < nd; k++) {
                if (k == pt)
                    buf[len++] = '.';
                buf[len++] = (char)('0' + xs() % 10);
            }
            if (xs() % 2)
                len += snprintf(buf + len, sizeof buf - (size_t)len, "e%d",
                                (int)(xs() % 100) - 55);
            buf[len] = '\0';
            break;
        }
        case 3: { /* GloVe-like values */
            len = snprintf(buf, sizeof buf, "%s0.%0*u", xs() % 2 ? "-" : "",
                           (int)(xs() % 4) + 3,
                           (unsigned)(xs() % 10000000));
            break;
        }
        default: { /* subnormals and the top of the range */
            double v = (xs() % 2)
                           ? ldexp((double)(xs() % 100000000) + 0.5,
                                   -(int)(150 + xs() % 30))
                           : 3.4028234663852886e38 *
                                 (1 + ((double)(xs() % 2000) - 1000) * 1e-9);
            len = snprintf(buf, sizeof buf, "%.*g", (int)(xs() % 30) + 1, v);
            break;
        }
        }
        (void)len;
        check_like_strtof(buf);
    }
}
END_TEST

/* ---- word vectors: valid input ------------------------------------------------- */

START_TEST(test_parse_glove)
{
    long live0 = iadsr__alloc_live();
    iadsr__wordvec *wv = parse_ok("the 0.5 -1 2.5e-1\ncat 1 2 3\n");
    ck_assert_int_eq(wv->n_words, 2);
    ck_assert_int_eq(wv->dim, 3);
    ck_assert_int_eq(wv->n_duplicates, 0);
    ck_assert_int_eq(find(wv, "the"), 0);
    ck_assert_int_eq(find(wv, "cat"), 1);
    ck_assert_int_eq(find(wv, "dog"), -1);
    ck_assert_int_eq(find(wv, "ca"), -1);
    const float *v = iadsr__wordvec_vec(wv, 0);
    ck_assert(v[0] == 0.5f && v[1] == -1.0f && v[2] == 0.25f);
    v = iadsr__wordvec_vec(wv, 1);
    ck_assert(v[0] == 1.0f && v[1] == 2.0f && v[2] == 3.0f);
    size_t len = 0;
    ck_assert_str_eq(iadsr__wordvec_word(wv, 1, &len), "cat");
    ck_assert_uint_eq(len, 3);
    iadsr__wordvec_free(wv);
    iadsr__wordvec_free(NULL);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

START_TEST(test_parse_word2vec_header)
{
    iadsr__wordvec *wv = parse_ok("2 3\nthe 0.5 -1 0.25\ncat 1 2 3\n");
    ck_assert_int_eq(wv->n_words, 2);
    ck_assert_int_eq(wv->dim, 3);
    ck_assert(iadsr__wordvec_vec(wv, 1)[2] == 3.0f);
    iadsr__wordvec_free(wv);

    /* the count must match */
    iadsr__wordvec *bad = TU_SENTINEL(iadsr__wordvec);
    TU_EXPECT_ERR(parse_str("3 3\nthe 0.5 -1 0.25\ncat 1 2 3\n", &bad),
                  IADSR_ERR_FORMAT);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "t:1:"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "announces 3"));

    /* repeated words count as lines of the header's count */
    wv = parse_ok("3 1\na 1\nb 2\na 3\n");
    ck_assert_int_eq(wv->n_words, 2);
    ck_assert_int_eq(wv->n_duplicates, 1);
    iadsr__wordvec_free(wv);

    /* one number per line after a first line of two integers: a header */
    wv = parse_ok("1 2\n7 0.5 0.25\n");
    ck_assert_int_eq(wv->n_words, 1);
    ck_assert_int_eq(wv->dim, 2);
    ck_assert_int_eq(find(wv, "7"), 0);
    iadsr__wordvec_free(wv);
    /* a first line with a non-integer second token is a vector */
    wv = parse_ok("7 0.5\n8 1\n");
    ck_assert_int_eq(wv->n_words, 2);
    ck_assert_int_eq(wv->dim, 1);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_parse_layout)
{
    /* CRLF, tabs, runs of blanks, trailing blanks, blank lines, leading
     * blanks, no final newline */
    iadsr__wordvec *wv =
        parse_ok("\r\n  a\t1  2 \r\n\n \t\nb 3\t\t4\t\r\nc 5 6");
    ck_assert_int_eq(wv->n_words, 3);
    ck_assert_int_eq(wv->dim, 2);
    ck_assert(iadsr__wordvec_vec(wv, 0)[1] == 2.0f);
    ck_assert(iadsr__wordvec_vec(wv, 1)[0] == 3.0f);
    ck_assert(iadsr__wordvec_vec(wv, 2)[1] == 6.0f);
    ck_assert_int_eq(find(wv, "c"), 2);
    iadsr__wordvec_free(wv);

    /* words are any non-blank bytes, stored as given */
    wv = parse_ok(", 1\n\xc3\xa9t\xc3\xa9 2\nNew-York 3\n");
    ck_assert_int_eq(find(wv, ","), 0);
    ck_assert_int_eq(find(wv, "\xc3\xa9t\xc3\xa9"), 1);
    ck_assert_int_eq(find(wv, "New-York"), 2);
    ck_assert_int_eq(find(wv, "new-york"), -1);
    ck_assert_int_eq(lookup(wv, "new-york"), 2);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_parse_duplicates_and_case)
{
    iadsr__wordvec *wv = parse_ok("apple 1 1\nApple 2 2\napple 3 3\n"
                                  "BANANA 4 4\nBanana 5 5\nCherry 6 6\n");
    ck_assert_int_eq(wv->n_words, 5);
    ck_assert_int_eq(wv->n_duplicates, 1);
    /* the first "apple" is kept */
    ck_assert_int_eq(find(wv, "apple"), 0);
    ck_assert(iadsr__wordvec_vec(wv, 0)[0] == 1.0f);
    ck_assert_int_eq(find(wv, "Apple"), 1);
    ck_assert_int_eq(find(wv, "APPLE"), -1);
    /* lookup: the exact lower-case entry wins over earlier variants... */
    ck_assert_int_eq(lookup(wv, "APPLE"), 0);
    ck_assert_int_eq(lookup(wv, "Apple"), 0);
    /* ...else the earliest case variant */
    ck_assert_int_eq(lookup(wv, "banana"), 2);
    ck_assert_int_eq(lookup(wv, "bAnAnA"), 2);
    ck_assert_int_eq(lookup(wv, "cherry"), 4);
    ck_assert_int_eq(lookup(wv, "cherr"), -1);
    ck_assert_int_eq(lookup(wv, ""), -1);
    iadsr__wordvec_free(wv);

    /* lower-case entry after its variants */
    wv = parse_ok("Kiwi 1\nKIWI 2\nkiwi 3\n");
    ck_assert_int_eq(lookup(wv, "KiWi"), 2);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_parse_many_words)
{
    /* enough words to grow every array and rehash the table */
    const int n = 5000;
    size_t cap = (size_t)n * 48, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    len += (size_t)snprintf(text, cap, "%d 3\n", n);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "w%d %d.5 -%d %de-3\n",
                                i, i, i % 97, i);
    iadsr__wordvec *wv = NULL;
    TU_OK(iadsr__wordvec_parse(text, len, "many", &wv));
    ck_assert_int_eq(wv->n_words, n);
    for (int i = 0; i < n; i += 7) {
        char w[32];
        snprintf(w, sizeof w, "W%d", i);
        int32_t k = lookup(wv, w);
        ck_assert_int_eq(k, i);
        const float *v = iadsr__wordvec_vec(wv, k);
        ck_assert(v[0] == (float)i + 0.5f);
        ck_assert(v[1] == -(float)(i % 97));
        char num[32];
        snprintf(num, sizeof num, "%de-3", i);
        ck_assert(v[2] == strtof(num, NULL));
    }
    ck_assert_int_eq(lookup(wv, "w5000"), -1);
    iadsr__wordvec_free(wv);
    free(text);
}
END_TEST

/* ---- word vectors: rejections ----------------------------------------------------- */

typedef struct bad_case {
    const char *text;
    int code;
    const char *msg; /* expected in the message */
} bad_case;

START_TEST(test_parse_reject)
{
    static char long_word[IADSR__WORDVEC_MAX_WORD + 16];
    memset(long_word, 'x', IADSR__WORDVEC_MAX_WORD + 1);
    memcpy(long_word + IADSR__WORDVEC_MAX_WORD + 1, " 1\n", 4);
    const bad_case cases[] = {
        {"a 1 2\nb 1\n", IADSR_ERR_FORMAT, "t:2: 1 number after the word, "
                                           "expected 2"},
        {"a 1 2\nb 1 2 3\n", IADSR_ERR_FORMAT, "t:2: 3 numbers"},
        {"a 1 x\n", IADSR_ERR_FORMAT, "t:1: token 'x'"},
        {"a 1 2\nb 1 2,\n", IADSR_ERR_FORMAT, "t:2: token '2,'"},
        {"a 0x1p3 2\n", IADSR_ERR_FORMAT, "t:1:"},
        {"a 1 nan\n", IADSR_ERR_NUMERIC, "t:1: value 2 of 'a'"},
        {"a 1 2\nb inf 2\n", IADSR_ERR_NUMERIC, "t:2:"},
        {"a 1 2\r\nb 1e39 2\r\n", IADSR_ERR_NUMERIC, "t:2:"},
        {"a 1 -Infinity\n", IADSR_ERR_NUMERIC, "t:1:"},
        {"2 3\na 1 2\n", IADSR_ERR_FORMAT, "t:2: 2 numbers after the word, "
                                           "expected 3"},
        {"1 2\na 1 2 3\n", IADSR_ERR_FORMAT, "t:2:"},
        {"", IADSR_ERR_FORMAT, "t: no word vectors"},
        {"\n\n \t \r\n", IADSR_ERR_FORMAT, "no word vectors"},
        {"5 3\n", IADSR_ERR_FORMAT, "no word vectors after the header"},
        {"0 3\n", IADSR_ERR_FORMAT, "no word vectors"},
        {"3 0\na\n", IADSR_ERR_FORMAT, "t:1:"},
        {"a\n", IADSR_ERR_FORMAT, "t:1: word without numbers"},
        {"a 1\nb\n", IADSR_ERR_FORMAT, "t:2: 0 numbers"},
        {"1 2000000\n", IADSR_ERR_OUT_OF_RANGE, "t:1:"},
        {"a 1\rb 2\n", IADSR_ERR_FORMAT, "t:1:"}, /* stray CR */
        {long_word, IADSR_ERR_FORMAT, "t:1: word 'xxxx"},
    };
    long live0 = iadsr__alloc_live();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        iadsr__wordvec *wv = TU_SENTINEL(iadsr__wordvec);
        iadsr_clear_error();
        int rc = parse_str(cases[i].text, &wv);
        ck_assert_msg(rc == cases[i].code, "case %zu: got %s (%s)", i,
                      iadsr_status_name(rc), iadsr_last_error());
        ck_assert_ptr_null(wv);
        ck_assert_msg(strstr(iadsr_last_error(), cases[i].msg) != NULL,
                      "case %zu: message '%s' lacks '%s'", i,
                      iadsr_last_error(), cases[i].msg);
        ck_assert_int_eq(iadsr__alloc_live(), live0);
    }
    iadsr__wordvec *wv = TU_SENTINEL(iadsr__wordvec);
    TU_EXPECT_ERR(iadsr__wordvec_parse(NULL, 3, "t", &wv),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(wv);
    TU_EXPECT_ERR(iadsr__wordvec_parse("a 1", 3, "t", NULL),
                  IADSR_ERR_INVALID_ARG);
    /* NULL, 0 is an empty buffer; NULL name gives "<buffer>" */
    TU_EXPECT_ERR(iadsr__wordvec_parse(NULL, 0, NULL, &wv), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "<buffer>"));
    /* lookups on NULL */
    ck_assert_int_eq(iadsr__wordvec_find(NULL, "a", 1), -1);
    ck_assert_int_eq(iadsr__wordvec_lookup(NULL, "a", 1), -1);
}
END_TEST

/* Parse an exact-size heap copy, so that a read past len is caught by the
 * sanitizers; the result must be OK or a clean error. */
static void parse_copy_clean(const char *src, size_t len, int32_t max_words)
{
    char *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, src, len);
    long live0 = iadsr__alloc_live();
    iadsr__wordvec *wv = TU_SENTINEL(iadsr__wordvec);
    iadsr_clear_error();
    int rc = iadsr__wordvec_parse(copy, len, "cut", &wv);
    if (rc == IADSR_OK) {
        ck_assert_ptr_nonnull(wv);
        ck_assert_int_ge(wv->n_words, 1);
        ck_assert_int_le(wv->n_words, max_words);
        for (size_t k = 0; k < (size_t)wv->n_words * (size_t)wv->dim; k++)
            ck_assert(isfinite(wv->vecs[k]));
        for (int32_t k = 0; k < wv->n_words; k++) {
            size_t wl;
            const char *w = iadsr__wordvec_word(wv, k, &wl);
            ck_assert_int_eq(iadsr__wordvec_find(wv, w, wl), k);
        }
        iadsr__wordvec_free(wv);
    } else {
        ck_assert_msg(rc == IADSR_ERR_FORMAT || rc == IADSR_ERR_NUMERIC ||
                          rc == IADSR_ERR_OUT_OF_RANGE,
                      "len %zu: %s (%s)", len, iadsr_status_name(rc),
                      iadsr_last_error());
        ck_assert_ptr_null(wv);
        ck_assert(iadsr_last_error()[0] != '\0');
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "cut"));
    }
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    free(copy);
}

START_TEST(test_parse_truncations)
{
    static const char *const texts[] = {
        "4 3\r\nthe 0.418 0.24968 -0.41242\r\n, 0.013441 0.23682 -0.16899\r\n"
        "Of 0.70853 0.57088 -0.4716\r\nto 0.68047 -0.039263 0.30186e-2\r\n",
        "the -1.5e-3 2 3\n\nand .5 6. -7\ncat 1 2 3",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        const size_t len = strlen(texts[t]);
        /* every prefix */
        for (size_t k = 0; k <= len; k++)
            parse_copy_clean(texts[t], k, 4);
        /* every byte replaced by a few troublesome ones */
        static const char subst[] = {'\n', ' ', 'x', '\0', '-', 'e', '.',
                                     '9', '\r', '\t'};
        char *mut = malloc(len);
        ck_assert_ptr_nonnull(mut);
        for (size_t k = 0; k < len; k++) {
            for (size_t s = 0; s < sizeof subst; s++) {
                memcpy(mut, texts[t], len);
                mut[k] = subst[s];
                parse_copy_clean(mut, len, 8);
            }
        }
        free(mut);
    }
}
END_TEST

static const char *oom_text;
static size_t oom_len;

START_TEST(test_parse_oom)
{
    /* long enough for every array to grow and the table to rehash */
    const int n = 1500;
    size_t cap = (size_t)n * 40, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "w%d %d 0.5 -1\n", i,
                                i);
    oom_text = text;
    oom_len = len;
    for (int persistent = 0; persistent <= 1; persistent++) {
        for (long k = 1;; k++) {
            ck_assert_int_lt(k, 1000);
            long live0 = iadsr__alloc_live();
            iadsr__wordvec *wv = TU_SENTINEL(iadsr__wordvec);
            iadsr__alloc_fail_after(k, persistent);
            int rc = iadsr__wordvec_parse(oom_text, oom_len, "oom", &wv);
            long made = iadsr__alloc_fail_after(0, 0);
            if (made < k) {
                ck_assert_msg(rc == IADSR_OK, "k=%ld: %s", k,
                              iadsr_last_error());
                ck_assert_int_eq(wv->n_words, n);
                iadsr__wordvec_free(wv);
                ck_assert_int_eq(iadsr__alloc_live(), live0);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM,
                          "k=%ld persistent=%d: got %s (%s)", k, persistent,
                          iadsr_status_name(rc), iadsr_last_error());
            ck_assert_ptr_null(wv);
            ck_assert_int_eq(iadsr__alloc_live(), live0);
        }
    }
    free(text);
}
END_TEST

static void tmp_path(char *buf, size_t cap, const char *name)
{
    const char *d = getenv("IADSR_TEST_TMPDIR");
    snprintf(buf, cap, "%s/embed_%ld_%s", (d && d[0]) ? d : "/tmp",
             (long)getpid(), name);
}

START_TEST(test_load_file)
{
    char path[512];
    tmp_path(path, sizeof path, "vecs.txt");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("a 1 2\nb 3 4\nc 5\n", f);
    ck_assert_int_eq(fclose(f), 0);

    iadsr__wordvec *wv = TU_SENTINEL(iadsr__wordvec);
    TU_EXPECT_ERR(iadsr__wordvec_load(path, &wv), IADSR_ERR_FORMAT);
    ck_assert_ptr_null(wv);
    char want[600];
    snprintf(want, sizeof want, "%s:3:", path);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), want));

    f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("a 1 2\nb 3 4\n", f);
    ck_assert_int_eq(fclose(f), 0);
    TU_OK(iadsr__wordvec_load(path, &wv));
    ck_assert_int_eq(wv->n_words, 2);
    iadsr__wordvec_free(wv);

    unlink(path);
    wv = TU_SENTINEL(iadsr__wordvec);
    TU_EXPECT_ERR(iadsr__wordvec_load(path, &wv), IADSR_ERR_IO);
    ck_assert_ptr_null(wv);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    TU_EXPECT_ERR(iadsr__wordvec_load(path, NULL), IADSR_ERR_INVALID_ARG);
}
END_TEST

/* ---- SIF ----------------------------------------------------------------------- */

static const char sif_vocab[] = "red 1 0 0\ngreen 0 1 0\nblue 0 0 2\n";

/* Tokens: "red green" | "red red blue" | "purple" | - | - | "green blue 42"
 * = 9 tokens, 7 known; counts red 3, green 2, blue 2. */
static const char *const sif_texts[6] = {"Red green", "red, RED & blue!",
                                         "purple?", "", NULL,
                                         "green-blue 42"};

/* The weighted means computed by hand for parameter a. */
static void sif_expected(double a, double want[6][3])
{
    const double wr = a / (a + 3.0 / 9.0), wg = a / (a + 2.0 / 9.0),
                 wb = a / (a + 2.0 / 9.0);
    memset(want, 0, 6 * sizeof want[0]);
    want[0][0] = wr / 2;
    want[0][1] = wg / 2;
    want[1][0] = 2 * wr / 3;
    want[1][2] = 2 * wb / 3; /* blue = (0, 0, 2) */
    want[5][1] = wg / 2;
    want[5][2] = wb; /* 2 * wb / 2 */
}

START_TEST(test_sif_weighted_means)
{
    iadsr__wordvec *wv = parse_ok(sif_vocab);
    float out[6 * 3];
    double want[6][3], pc[3] = {7, 7, 7};
    iadsr__sif_stats st;
    long live0 = iadsr__alloc_live();
    const double as[] = {0.1, 1e-3, 1.0};
    for (size_t ai = 0; ai < 3; ai++) {
        memset(out, 0xff, sizeof out); /* NaN garbage */
        TU_OK(iadsr__sif_embed(wv, sif_texts, 6, as[ai], 0, out, pc, &st));
        sif_expected(as[ai], want);
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 3; j++)
                ck_assert_msg(fabs((double)out[i * 3 + j] - want[i][j]) <=
                                  1e-7 * fabs(want[i][j]) + 1e-12,
                              "a=%g row %d col %d: %.9g, expected %.9g",
                              as[ai], i, j, (double)out[i * 3 + j],
                              want[i][j]);
        ck_assert_int_eq(st.n_texts, 6);
        ck_assert_int_eq(st.n_covered, 3);
        ck_assert_int_eq(st.n_tokens, 9);
        ck_assert_int_eq(st.n_known, 7);
        ck_assert_int_eq(st.n_vocab, 3);
        ck_assert_int_eq(st.pc_removed, 0);
        ck_assert(pc[0] == 0.0 && pc[1] == 0.0 && pc[2] == 0.0);
    }
    /* rows without a known token are exactly zero (+0.0, no NaN) */
    for (int i = 2; i <= 4; i++)
        for (int j = 0; j < 3; j++) {
            ck_assert(out[i * 3 + j] == 0.0f);
            ck_assert(!signbit(out[i * 3 + j]));
        }
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    iadsr__wordvec_free(wv);
}
END_TEST

/* Cyclic Jacobi on a symmetric 3x3 matrix: the unit eigenvector of the
 * largest eigenvalue (an independent reference for the power iteration). */
static double top_eigvec3(double c_in[3][3], double u[3])
{
    double a[3][3], v[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    memcpy(a, c_in, sizeof a);
    for (int sweep = 0; sweep < 60; sweep++) {
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (fabs(a[p][q]) < 1e-300)
                    continue;
                double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double t = (theta >= 0 ? 1.0 : -1.0) /
                           (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 3; k++) { /* A J */
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) { /* J^T A */
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
    }
    int best = 0;
    for (int k = 1; k < 3; k++)
        if (a[k][k] > a[best][best])
            best = k;
    for (int k = 0; k < 3; k++)
        u[k] = v[k][best];
    /* self-check of the reference: C u = lambda u */
    double lambda = a[best][best];
    for (int i = 0; i < 3; i++) {
        double cu = 0;
        for (int k = 0; k < 3; k++)
            cu += c_in[i][k] * u[k];
        ck_assert_msg(fabs(cu - lambda * u[i]) < 1e-12,
                      "Jacobi reference failed");
    }
    return lambda;
}

START_TEST(test_sif_remove_pc)
{
    iadsr__wordvec *wv = parse_ok(sif_vocab);
    float x[6 * 3], out[6 * 3];
    double pc[3], u[3], c[3][3] = {{0}};
    iadsr__sif_stats st;
    const double a = 0.1;

    TU_OK(iadsr__sif_embed(wv, sif_texts, 6, a, 0, x, NULL, NULL));
    TU_OK(iadsr__sif_embed(wv, sif_texts, 6, a, 1, out, pc, &st));
    ck_assert_int_eq(st.pc_removed, 1);
    ck_assert_int_gt(st.pc_iterations, 0);
    ck_assert_int_lt(st.pc_iterations, IADSR__SIF_MAX_ITER);
    ck_assert_int_eq(st.n_covered, 3);

    /* reference in double: C = X^T X of the (float) weighted means */
    for (int i = 0; i < 6; i++)
        for (int p = 0; p < 3; p++)
            for (int q = 0; q < 3; q++)
                c[p][q] += (double)x[i * 3 + p] * (double)x[i * 3 + q];
    double lambda = top_eigvec3(c, u);
    ck_assert_double_eq_tol(st.pc_sigma2, lambda, 1e-9);
    /* the component found is +-u */
    double dot = pc[0] * u[0] + pc[1] * u[1] + pc[2] * u[2];
    ck_assert_double_eq_tol(fabs(dot), 1.0, 1e-9);
    for (int i = 0; i < 6; i++) {
        double t = 0, r = 0, nrm = 0;
        for (int j = 0; j < 3; j++)
            t += (double)x[i * 3 + j] * u[j];
        for (int j = 0; j < 3; j++) {
            double want = (double)x[i * 3 + j] - t * u[j];
            ck_assert_msg(fabs((double)out[i * 3 + j] - want) < 1e-7,
                          "row %d col %d: %.9g, expected %.9g", i, j,
                          (double)out[i * 3 + j], want);
            ck_assert(isfinite(out[i * 3 + j]));
            r += (double)out[i * 3 + j] * u[j];
            nrm += (double)x[i * 3 + j] * (double)x[i * 3 + j];
        }
        /* orthogonal to the component */
        ck_assert_msg(fabs(r) <= 1e-6 * sqrt(nrm) + 1e-12,
                      "row %d: projection %.3g", i, r);
    }
    for (int i = 2; i <= 4; i++) /* zero rows stay exactly zero */
        for (int j = 0; j < 3; j++)
            ck_assert(out[i * 3 + j] == 0.0f);

    /* deterministic: a second run is bitwise identical */
    float again[6 * 3];
    TU_OK(iadsr__sif_embed(wv, sif_texts, 6, a, 1, again, NULL, NULL));
    ck_assert(memcmp(out, again, sizeof out) == 0);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_sif_degenerate)
{
    iadsr__wordvec *wv = parse_ok(sif_vocab);
    iadsr__sif_stats st;
    double pc[3];
    float out[4 * 3];

    /* nothing known: all rows zero, no component, no NaN */
    const char *const unknown[4] = {"purple", "", "!!", NULL};
    memset(out, 0xff, sizeof out);
    TU_OK(iadsr__sif_embed(wv, unknown, 4, 1e-3, 1, out, pc, &st));
    for (int k = 0; k < 12; k++)
        ck_assert(out[k] == 0.0f);
    ck_assert_int_eq(st.n_covered, 0);
    ck_assert_int_eq(st.n_tokens, 1);
    ck_assert_int_eq(st.n_known, 0);
    ck_assert_int_eq(st.pc_removed, 0);

    /* one covered text: the component is not removed (the row would
     * vanish) */
    const char *const one[2] = {"red blue", "nothing"};
    TU_OK(iadsr__sif_embed(wv, one, 2, 1.0, 1, out, NULL, &st));
    ck_assert_int_eq(st.pc_removed, 0);
    ck_assert_int_eq(st.n_covered, 1);
    /* p = 1/3 each (3 tokens), weight 1 / (1 + 1/3) = 0.75 */
    ck_assert_double_eq_tol(out[0], 0.75 / 2, 1e-7);
    ck_assert(out[1] == 0.0f);
    ck_assert_double_eq_tol(out[2], 0.75 * 2 / 2, 1e-7);
    ck_assert(out[3] == 0.0f && out[4] == 0.0f && out[5] == 0.0f);

    /* identical texts: rank one, everything projects out to ~0 */
    const char *const same[3] = {"red green", "RED GREEN", "red, green"};
    TU_OK(iadsr__sif_embed(wv, same, 3, 1e-3, 1, out, NULL, &st));
    ck_assert_int_eq(st.pc_removed, 1);
    for (int k = 0; k < 9; k++) {
        ck_assert(isfinite(out[k]));
        ck_assert(fabs(out[k]) < 1e-7);
    }

    /* no texts at all */
    TU_OK(iadsr__sif_embed(wv, NULL, 0, 1e-3, 1, NULL, NULL, &st));
    ck_assert_int_eq(st.n_texts, 0);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_sif_tokens)
{
    /* ASCII letters are lower-cased; every other byte (punctuation, UTF-8
     * bytes) separates tokens */
    iadsr__wordvec *wv = parse_ok("na 1 0\nve 0 1\ncaf 1 1\nber 2 2\n"
                                  "x2 3 3\n");
    const char *const texts[3] = {"na\xc3\xafve CAF\xc3\xa9",
                                  "\303\234ber-X2_x3", "n\xc3\xa4 ve"};
    float out[3 * 2];
    iadsr__sif_stats st;
    TU_OK(iadsr__sif_embed(wv, texts, 3, 1e-3, 0, out, NULL, &st));
    /* na ve caf | ber x2 x3 | n ve */
    ck_assert_int_eq(st.n_tokens, 8);
    ck_assert_int_eq(st.n_known, 6);
    ck_assert_int_eq(st.n_covered, 3);
    ck_assert_int_eq(st.n_vocab, 5);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_sif_args)
{
    iadsr__wordvec *wv = parse_ok(sif_vocab);
    const char *const t[1] = {"red"};
    float out[3];
    TU_EXPECT_ERR(iadsr__sif_embed(NULL, t, 1, 1e-3, 1, out, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr__sif_embed(wv, t, -1, 1e-3, 1, out, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr__sif_embed(wv, NULL, 1, 1e-3, 1, out, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr__sif_embed(wv, t, 1, 1e-3, 1, NULL, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    const double bad_a[] = {0.0, -1.0, (double)NAN, (double)INFINITY};
    for (size_t i = 0; i < 4; i++)
        TU_EXPECT_ERR(iadsr__sif_embed(wv, t, 1, bad_a[i], 1, out, NULL,
                                       NULL),
                      IADSR_ERR_INVALID_ARG);
    iadsr__wordvec_free(wv);
}
END_TEST

START_TEST(test_sif_oom)
{
    iadsr__wordvec *wv = parse_ok(sif_vocab);
    float ref[6 * 3], out[6 * 3];
    TU_OK(iadsr__sif_embed(wv, sif_texts, 6, 1e-3, 1, ref, NULL, NULL));
    for (int persistent = 0; persistent <= 1; persistent++) {
        for (long k = 1;; k++) {
            ck_assert_int_lt(k, 100);
            long live0 = iadsr__alloc_live();
            iadsr__alloc_fail_after(k, persistent);
            int rc = iadsr__sif_embed(wv, sif_texts, 6, 1e-3, 1, out, NULL,
                                      NULL);
            long made = iadsr__alloc_fail_after(0, 0);
            ck_assert_int_eq(iadsr__alloc_live(), live0);
            if (made < k) {
                TU_OK(rc);
                ck_assert(memcmp(out, ref, sizeof out) == 0);
                break;
            }
            ck_assert_int_eq(rc, IADSR_ERR_NOMEM);
        }
    }
    iadsr__wordvec_free(wv);
}
END_TEST

Suite *suite_wordvec_sif(void)
{
    Suite *s = suite_create("wordvec_sif");
    TCase *tc = tcase_create("float");
    tcase_add_test(tc, test_float_syntax);
    tcase_add_test(tc, test_float_random_vs_strtof);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("wordvec");
    tcase_add_test(tc, test_parse_glove);
    tcase_add_test(tc, test_parse_word2vec_header);
    tcase_add_test(tc, test_parse_layout);
    tcase_add_test(tc, test_parse_duplicates_and_case);
    tcase_add_test(tc, test_parse_many_words);
    tcase_add_test(tc, test_parse_reject);
    tcase_add_test(tc, test_parse_truncations);
    tcase_add_test(tc, test_parse_oom);
    tcase_add_test(tc, test_load_file);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("sif");
    tcase_add_test(tc, test_sif_weighted_means);
    tcase_add_test(tc, test_sif_remove_pc);
    tcase_add_test(tc, test_sif_degenerate);
    tcase_add_test(tc, test_sif_tokens);
    tcase_add_test(tc, test_sif_args);
    tcase_add_test(tc, test_sif_oom);
    suite_add_tcase(s, tc);
    return s;
}
