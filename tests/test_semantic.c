/* Tests: semantic item-embedding matrices (semantic.c): creation and
 * validation, .npy input/output, text-only scores and their evaluation,
 * arguments and allocation failures.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/semantic.h"
#include "common/clock.h"

Suite *suite_semantic(void);

/* ---- helpers ------------------------------------------------------------- */

static char *tmp_path(char *buf, size_t cap, const char *name)
{
    static int counter;
    snprintf(buf, cap, "%s/sem-%ld-%d-%s", tu_tmp_dir(), (long)getpid(),
             counter++, name);
    return buf;
}

/* Deterministic values in about [-1, 1). */
static float val(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*st >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* An n_rows x dim matrix with leading dimension ld (gap columns are NaN:
 * they must never be read). malloc'ed. */
static float *rand_matrix(int64_t n_rows, int32_t dim, int64_t ld,
                          uint64_t seed)
{
    float *m = malloc((size_t)(n_rows * ld) * sizeof(float));
    ck_assert_ptr_nonnull(m);
    uint64_t st = seed;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < ld; c++)
            m[r * ld + c] = c < dim ? val(&st) : NAN;
    return m;
}

/* Cosine of item rows with the history mean, in double: the reference for
 * iadsr_semantic_scores(). @p rows points at item 1's row. */
static double ref_cos(const float *rows, int32_t dim, int64_t ld,
                      const int32_t *seq, int32_t n, int32_t item)
{
    double dot = 0, nm = 0, nr = 0;
    for (int32_t c = 0; c < dim; c++) {
        double mean = 0;
        for (int32_t t = 0; t < n; t++)
            mean += rows[(size_t)(seq[t] - 1) * (size_t)ld + (size_t)c];
        mean /= n;
        double x = rows[(size_t)(item - 1) * (size_t)ld + (size_t)c];
        dot += x * mean;
        nm += mean * mean;
        nr += x * x;
    }
    if (nm == 0 || nr == 0)
        return 0;
    return dot / (sqrt(nm) * sqrt(nr));
}

/* ---- creation ------------------------------------------------------------ */

START_TEST(test_create_copy)
{
    long live0 = iadsr__alloc_live();
    /* 4 items x 3 dims, ld 5 */
    float m[20];
    for (int i = 0; i < 20; i++)
        m[i] = (i % 5) < 3 ? (float)(i + 1) : NAN;
    m[5] = m[6] = m[7] = 0.0f; /* item 2 has no text */
    iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
    TU_OK(iadsr_semantic_create(&s, m, 4, 3, 5, IADSR_FLAG_COPY));
    ck_assert(iadsr__semantic_ok(s));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 4);
    ck_assert_int_eq(iadsr_semantic_dim(s), 3);
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(s), 1);
    for (int32_t i = 1; i <= 4; i++) {
        const float *r = iadsr_semantic_row(s, i);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_ne(r, m + (i - 1) * 5); /* copied */
        for (int c = 0; c < 3; c++)
            ck_assert(r[c] == m[(i - 1) * 5 + c]);
    }
    /* packed: consecutive rows are dim floats apart */
    ck_assert_ptr_eq(iadsr_semantic_row(s, 2), iadsr_semantic_row(s, 1) + 3);
    ck_assert_ptr_null(iadsr_semantic_row(s, 0));
    ck_assert_ptr_null(iadsr_semantic_row(s, 5));
    ck_assert_ptr_null(iadsr_semantic_row(s, -1));
    /* inverse norms in double; 0 for the zero row and for entry 0 */
    ck_assert(s->inv_norm[0] == 0.0);
    ck_assert(s->inv_norm[2] == 0.0);
    ck_assert(fabs(s->inv_norm[1] - 1.0 / sqrt(1.0 + 4.0 + 9.0)) < 1e-15);
    /* the host may change its array after a copy */
    m[0] = 100.0f;
    ck_assert(iadsr_semantic_row(s, 1)[0] == 1.0f);

    /* references: the matrix lives until the last one goes */
    iadsr_semantic *r = iadsr__semantic_ref(s);
    ck_assert_ptr_eq(r, s);
    iadsr_semantic_free(s);
    ck_assert_int_eq(iadsr_semantic_n_items(r), 4);
    iadsr__semantic_unref(r);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    iadsr_semantic_free(NULL);
    iadsr__semantic_unref(NULL);
    ck_assert_ptr_null(iadsr__semantic_ref(NULL));
}
END_TEST

START_TEST(test_create_padding_and_borrow)
{
    /* row 0 is padding: not validated (NaN there is fine), not counted */
    float m[4 * 2] = {NAN, INFINITY, 1, 2, 0, 0, 3, 4};
    long live0 = iadsr__alloc_live();
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 4, 2, 2,
                                IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 3);
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(s), 1);
    ck_assert(iadsr_semantic_row(s, 1)[0] == 1.0f);
    ck_assert(iadsr_semantic_row(s, 1)[1] == 2.0f);
    ck_assert(iadsr_semantic_row(s, 3)[1] == 4.0f);
    iadsr_semantic_free(s);

    /* borrowed: the rows are the host's memory */
    TU_OK(iadsr_semantic_create(&s, m + 2, 3, 2, 2, IADSR_FLAG_BORROW));
    ck_assert_ptr_eq(iadsr_semantic_row(s, 1), m + 2);
    ck_assert_ptr_eq(iadsr_semantic_row(s, 3), m + 6);
    ck_assert_ptr_null(s->owned);
    iadsr_semantic_free(s);
    TU_OK(iadsr_semantic_create(&s, m, 4, 2, 2,
                                IADSR_FLAG_BORROW |
                                    IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 3);
    ck_assert_ptr_eq(iadsr_semantic_row(s, 1), m + 2);
    ck_assert_ptr_eq(iadsr_semantic_row(s, 2), m + 4);
    iadsr_semantic_free(s);
    /* borrowed with a leading dimension: item i at data + (i - pad) * ld */
    float w[3 * 5];
    for (int i = 0; i < 15; i++)
        w[i] = (float)i;
    TU_OK(iadsr_semantic_create(&s, w, 3, 2, 5,
                                IADSR_FLAG_BORROW |
                                    IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 2);
    ck_assert_ptr_eq(iadsr_semantic_row(s, 2), w + 10);
    iadsr_semantic_free(s);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

START_TEST(test_create_nonfinite)
{
    float m[5 * 4];
    for (int i = 0; i < 20; i++)
        m[i] = (float)(i % 7) - 3.0f;
    iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
    m[2 * 4 + 2] = NAN; /* row 2, column 2 */
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 5, 4, 4, 0), IADSR_ERR_NUMERIC);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 3 (row 2), column 2 is NaN"));
    /* the same row with the padding layout is item 2 */
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 5, 4, 4,
                                        IADSR_SEMANTIC_ROW0_PADDING),
                  IADSR_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 2 (row 2), column 2 is NaN"));
    m[2 * 4 + 2] = 0.5f;
    m[4 * 4 + 3] = -INFINITY;
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 5, 4, 4, IADSR_FLAG_BORROW),
                  IADSR_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 5 (row 4), column 3 is -Inf"));
    m[4 * 4 + 3] = 1.0f;
    m[0] = INFINITY;
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 5, 4, 4, 0), IADSR_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 1 (row 0), column 0 is +Inf"));
    /* ... but row 0 is ignored with the padding layout */
    TU_OK(iadsr_semantic_create(&s, m, 5, 4, 4, IADSR_SEMANTIC_ROW0_PADDING));
    iadsr_semantic_free(s);
    /* extreme finite values are fine (no overflow in the checks) */
    m[0] = FLT_MAX;
    m[1] = -FLT_MAX;
    m[2] = 1e-45f; /* subnormal */
    TU_OK(iadsr_semantic_create(&s, m, 5, 4, 4, 0));
    ck_assert(s->inv_norm[1] > 0 && isfinite(s->inv_norm[1]));
    iadsr_semantic_free(s);
}
END_TEST

START_TEST(test_create_bad_args)
{
    float m[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
    ck_assert_int_eq(iadsr_semantic_create(NULL, m, 4, 2, 2, 0),
                     IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, NULL, 4, 2, 2, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 0, 2, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, -1, 2, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 1048577, 1048577, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 2, 1, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "ld"));
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 0, 2, 2, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, -4, 2, 2, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 1, 2, 2,
                                        IADSR_SEMANTIC_ROW0_PADDING),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "padding"));
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, (int64_t)INT32_MAX, 2, 2,
                                        IADSR_FLAG_BORROW),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 2, INT64_MAX,
                                        IADSR_FLAG_BORROW),
                  IADSR_ERR_INVALID_ARG);
    /* unknown flags: INVALID_ARG, as iadsr_dataset_create() */
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 2, 2, 4u),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "flags"));
    TU_EXPECT_ERR(iadsr_semantic_create(&s, m, 4, 2, 2, 0x80000000u),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);
    /* the smallest padded matrix: row 0 and one item */
    TU_OK(iadsr_semantic_create(&s, m, 2, 2, 2, IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 1);
    iadsr_semantic_free(s);
}
END_TEST

/* Every public function with NULL (or a foreign handle) fails cleanly. */
START_TEST(test_null_and_foreign)
{
    float sc[8];
    int32_t seq[1] = {1};
    iadsr_metrics met;
    memset(&met, 0, sizeof met);
    met.struct_size = sizeof met;
    iadsr_semantic *out = TU_SENTINEL(iadsr_semantic);
    int32_t items[] = {1, 2, 1};
    int64_t offs[] = {0, 3};
    iadsr_dataset *d = tu_dataset(items, offs, 1, 2);
    char path[512];
    tmp_path(path, sizeof path, "null.npy");

    ck_assert_int_eq(iadsr_semantic_n_items(NULL), 0);
    ck_assert_int_eq(iadsr_semantic_dim(NULL), 0);
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(NULL), 0);
    ck_assert_ptr_null(iadsr_semantic_row(NULL, 1));
    TU_EXPECT_ERR(iadsr_semantic_check(NULL, 3, 0), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_scores(NULL, seq, 1, sc, 8),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_evaluate(NULL, d, NULL, &met),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_save_npy(NULL, path, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_parse_npy(NULL, "x", 1, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_parse_npy(&out, NULL, 1, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(out);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(NULL, path, 0),
                  IADSR_ERR_INVALID_ARG);
    out = TU_SENTINEL(iadsr_semantic);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&out, NULL, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(out);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&out, "", 0),
                  IADSR_ERR_INVALID_ARG);

    float m[6] = {1, 0, 0, 1, 1, 1};
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 3, 2, 2, 0));
    TU_EXPECT_ERR(iadsr_semantic_scores(s, NULL, 1, sc, 8),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_scores(s, seq, 1, NULL, 8),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, NULL, NULL, &met),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    met.struct_size = 4;
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, NULL, &met),
                  IADSR_ERR_INVALID_ARG);
    met.struct_size = sizeof met;
    TU_EXPECT_ERR(iadsr_semantic_save_npy(s, NULL, 0), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_save_npy(s, "", 0), IADSR_ERR_INVALID_ARG);

    /* a foreign handle (wrong magic) is refused, never used or freed */
    iadsr_semantic fake = *s;
    fake.magic = 0x12345678u;
    TU_EXPECT_ERR(iadsr_semantic_check(&fake, 3, 0), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_scores(&fake, seq, 1, sc, 8),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_save_npy(&fake, path, 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_evaluate(&fake, d, NULL, &met),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_semantic_n_items(&fake), 0);
    ck_assert_ptr_null(iadsr_semantic_row(&fake, 1));
    iadsr_semantic_free(&fake); /* ignored */
    ck_assert_int_eq(access(path, F_OK), -1);
    iadsr_semantic_free(s);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- scores -------------------------------------------------------------- */

START_TEST(test_scores_reference)
{
    /* dims below, at and above the internal column block (1024) */
    static const struct {
        int32_t n_items, dim;
        int64_t extra_ld;
        uint32_t flags;
    } cases[] = {{200, 37, 0, 0},
                 {50, 1, 3, IADSR_FLAG_BORROW},
                 {64, 1024, 0, IADSR_SEMANTIC_ROW0_PADDING},
                 {40, 2500, 5, IADSR_FLAG_BORROW | IADSR_SEMANTIC_ROW0_PADDING},
                 {30, 4097, 0, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int32_t N = cases[k].n_items, D = cases[k].dim;
        const int64_t ld = D + cases[k].extra_ld;
        const int pad = (cases[k].flags & IADSR_SEMANTIC_ROW0_PADDING) != 0;
        float *m = rand_matrix(N + pad, D, ld, 1000 + k);
        for (int32_t c = 0; c < D; c++) /* item 5 has no text */
            m[(size_t)(4 + pad) * (size_t)ld + (size_t)c] = 0.0f;
        iadsr_semantic *s = NULL;
        TU_OK(iadsr_semantic_create(&s, m, N + pad, D, ld, cases[k].flags));
        ck_assert_int_eq(iadsr_semantic_n_zero_rows(s), 1);
        const float *rows = m + (size_t)pad * (size_t)ld;
        float *sc = malloc(((size_t)N + 1) * sizeof(float));
        ck_assert_ptr_nonnull(sc);
        uint64_t st = 77 + k;
        for (int trial = 0; trial < 6; trial++) {
            int32_t seq[9];
            int32_t n = 1 + trial % 9;
            for (int32_t t = 0; t < n; t++)
                seq[t] = 1 + (int32_t)((val(&st) + 1.0f) * 0.5f * (float)N) % N;
            if (trial == 2)
                seq[0] = 5; /* a zero row in the history */
            if (trial == 3)
                seq[n - 1] = seq[0]; /* repeats */
            TU_OK(iadsr_semantic_scores(s, seq, n, sc, N + 1));
            ck_assert(isinf(sc[0]) && sc[0] < 0);
            for (int32_t i = 1; i <= N; i++) {
                double want = ref_cos(rows, D, ld, seq, n, i);
                ck_assert_msg(fabs((double)sc[i] - want) <= 1e-5,
                              "case %zu trial %d item %d: %.9g vs %.9g", k,
                              trial, (int)i, (double)sc[i], want);
                ck_assert(sc[i] >= -1.0f - 1e-6f && sc[i] <= 1.0f + 1e-6f);
            }
            ck_assert(sc[5] == 0.0f); /* the zero row */
        }
        /* a history of one item: its own cosine is 1 */
        int32_t one = 7;
        TU_OK(iadsr_semantic_scores(s, &one, 1, sc, N + 1));
        ck_assert(fabsf(sc[7] - 1.0f) <= 1e-6f);
        free(sc);
        iadsr_semantic_free(s);
        free(m);
    }
}
END_TEST

START_TEST(test_scores_zero_rows_and_zero_mean)
{
    /* items: 1 = (1, 2), 2 = zero, 3 = (-1, -2), 4 = (3, 0), 5 = zero */
    const float m[10] = {1, 2, 0, 0, -1, -2, 3, 0, 0, 0};
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 5, 2, 2, 0));
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(s), 2);
    float sc[6];
    /* zero-row items score exactly 0, never NaN */
    int32_t h1[] = {4};
    TU_OK(iadsr_semantic_scores(s, h1, 1, sc, 6));
    ck_assert(sc[2] == 0.0f && sc[5] == 0.0f);
    ck_assert(fabsf(sc[4] - 1.0f) < 1e-6f);
    ck_assert(fabsf(sc[1] - (float)(1.0 / sqrt(5.0))) < 1e-6f);
    /* a history of zero rows only: every score is 0 */
    int32_t h2[] = {2, 5, 2};
    for (int i = 0; i < 6; i++)
        sc[i] = 42.0f;
    TU_OK(iadsr_semantic_scores(s, h2, 3, sc, 6));
    ck_assert(isinf(sc[0]) && sc[0] < 0);
    for (int i = 1; i <= 5; i++)
        ck_assert_msg(sc[i] == 0.0f, "item %d: %g", i, (double)sc[i]);
    /* rows that cancel: a zero mean, every score 0 */
    int32_t h3[] = {1, 3};
    TU_OK(iadsr_semantic_scores(s, h3, 2, sc, 6));
    for (int i = 1; i <= 5; i++)
        ck_assert(sc[i] == 0.0f);
    /* a zero row in the history only scales the mean */
    int32_t h4[] = {1, 2};
    TU_OK(iadsr_semantic_scores(s, h4, 2, sc, 6));
    ck_assert(fabsf(sc[1] - 1.0f) < 1e-6f);
    ck_assert(fabsf(sc[3] + 1.0f) < 1e-6f);
    iadsr_semantic_free(s);

    /* extreme magnitudes: finite, in [-1, 1] */
    const float x[6] = {FLT_MAX, FLT_MAX, 1e-45f, 1e-45f, -FLT_MAX, 1e-45f};
    TU_OK(iadsr_semantic_create(&s, x, 3, 2, 2, 0));
    int32_t h5[] = {1, 2, 3};
    TU_OK(iadsr_semantic_scores(s, h5, 3, sc, 4));
    for (int i = 1; i <= 3; i++)
        ck_assert_msg(isfinite(sc[i]) && fabsf(sc[i]) <= 1.0f + 1e-6f,
                      "item %d: %g", i, (double)sc[i]);
    ck_assert(fabsf(sc[2] - (float)(1.0 / sqrt(2.0))) < 1e-6f);
    iadsr_semantic_free(s);
}
END_TEST

START_TEST(test_scores_args)
{
    const float m[6] = {1, 0, 0, 1, 1, 1};
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 3, 2, 2, 0));
    float sc[4] = {7, 7, 7, 7};
    int32_t seq[] = {1, 3};
    TU_EXPECT_ERR(iadsr_semantic_scores(s, seq, 0, sc, 4),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_scores(s, seq, -1, sc, 4),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_scores(s, seq, 2, sc, 3),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    int32_t bad0[] = {1, 0}, bad4[] = {4}, badn[] = {-2};
    TU_EXPECT_ERR(iadsr_semantic_scores(s, bad0, 2, sc, 4),
                  IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "position 1"));
    TU_EXPECT_ERR(iadsr_semantic_scores(s, bad4, 1, sc, 4),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_semantic_scores(s, badn, 1, sc, 4),
                  IADSR_ERR_OUT_OF_RANGE);
    for (int i = 0; i < 4; i++)
        ck_assert(sc[i] == 7.0f); /* untouched by failed calls */
    TU_OK(iadsr_semantic_scores(s, seq, 2, sc, 4));
    iadsr_semantic_free(s);
}
END_TEST

/* Scoring must not allocate, and be fast on the Beauty shape. */
START_TEST(test_scores_no_alloc_and_speed)
{
    const int32_t N = 12101, D = 100;
    float *m = rand_matrix(N, D, D, 5);
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, N, D, D, IADSR_FLAG_BORROW));
    float *sc = malloc(((size_t)N + 1) * sizeof(float));
    ck_assert_ptr_nonnull(sc);
    int32_t seq[50];
    for (int i = 0; i < 50; i++)
        seq[i] = 1 + (i * 241) % N;
    iadsr__alloc_fail_after(1, 1); /* any allocation would now fail */
    int rc = iadsr_semantic_scores(s, seq, 50, sc, N + 1);
    long made = iadsr__alloc_fail_after(0, 0);
    ck_assert_int_eq(rc, IADSR_OK);
    ck_assert_int_eq(made, 0);
    const int reps = tu_light() ? 2 : 50;
    double t0 = iadsr__now();
    for (int r = 0; r < reps; r++)
        TU_OK(iadsr_semantic_scores(s, seq, 50, sc, N + 1));
    double per = (iadsr__now() - t0) / reps;
    TU_NOTE("semantic_scores: %d items x %d dims, 50-item history: %.3f ms\n",
            (int)N, (int)D, per * 1e3);
    free(sc);
    iadsr_semantic_free(s);
    free(m);
}
END_TEST

/* ---- check --------------------------------------------------------------- */

START_TEST(test_check)
{
    float m[12];
    for (int i = 0; i < 12; i++)
        m[i] = (float)i;
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 4, 3, 3, 0));
    TU_OK(iadsr_semantic_check(s, 4, 3));
    TU_OK(iadsr_semantic_check(s, 4, 0));
    TU_EXPECT_ERR(iadsr_semantic_check(s, 5, 3), IADSR_ERR_DIM_MISMATCH);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "4 items"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "expected 5"));
    TU_EXPECT_ERR(iadsr_semantic_check(s, 3, 0), IADSR_ERR_DIM_MISMATCH);
    TU_EXPECT_ERR(iadsr_semantic_check(s, 4, 64), IADSR_ERR_DIM_MISMATCH);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "dimension 3"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "expected 64"));
    TU_EXPECT_ERR(iadsr_semantic_check(s, 0, 3), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_check(s, -4, 3), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_check(s, 4, -3), IADSR_ERR_INVALID_ARG);
    iadsr_semantic_free(s);
}
END_TEST

/* ---- .npy input and output ----------------------------------------------- */

static void same_rows(const iadsr_semantic *a, const iadsr_semantic *b)
{
    ck_assert_int_eq(iadsr_semantic_n_items(a), iadsr_semantic_n_items(b));
    ck_assert_int_eq(iadsr_semantic_dim(a), iadsr_semantic_dim(b));
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(a),
                     iadsr_semantic_n_zero_rows(b));
    for (int32_t i = 1; i <= iadsr_semantic_n_items(a); i++)
        ck_assert(memcmp(iadsr_semantic_row(a, i), iadsr_semantic_row(b, i),
                         (size_t)iadsr_semantic_dim(a) * sizeof(float)) == 0);
}

START_TEST(test_npy_roundtrip)
{
    const int32_t N = 9, D = 5;
    float *m = rand_matrix(N, D, D + 2, 3);
    for (int c = 0; c < D; c++)
        m[(D + 2) * 3 + c] = 0.0f; /* item 4 */
    iadsr_semantic *s = NULL, *l = NULL;
    TU_OK(iadsr_semantic_create(&s, m, N, D, D + 2, IADSR_FLAG_BORROW));
    char path[512];
    tmp_path(path, sizeof path, "rt.npy");
    long live0 = iadsr__alloc_live();

    /* without padding: n_items rows, row r = item r + 1 */
    TU_OK(iadsr_semantic_save_npy(s, path, 0));
    ck_assert_int_eq(tu_count_temp_files(path), 0);
    size_t len;
    uint8_t *b = tu_read_file(path, &len);
    int64_t r = 0, c = 0;
    TU_OK(iadsr_npy_decode(b, len, NULL, 0, &r, &c));
    ck_assert_int_eq(r, N);
    ck_assert_int_eq(c, D);
    TU_OK(iadsr_semantic_parse_npy(&l, b, len, 0));
    same_rows(s, l);
    iadsr_semantic_free(l);
    TU_OK(iadsr_semantic_load_npy(&l, path, 0));
    same_rows(s, l);
    ck_assert_ptr_ne(iadsr_semantic_row(l, 1), iadsr_semantic_row(s, 1));
    iadsr_semantic_free(l);
    /* the same file read with the padding layout: row 0 is dropped */
    TU_OK(iadsr_semantic_load_npy(&l, path, IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(l), N - 1);
    ck_assert(memcmp(iadsr_semantic_row(l, 1), iadsr_semantic_row(s, 2),
                     D * sizeof(float)) == 0);
    iadsr_semantic_free(l);
    free(b);

    /* with padding: a zero row 0, then the items */
    TU_OK(iadsr_semantic_save_npy(s, path, IADSR_SEMANTIC_ROW0_PADDING |
                                               IADSR_SAVE_NO_FSYNC));
    b = tu_read_file(path, &len);
    float *all = malloc((size_t)(N + 1) * D * sizeof(float));
    ck_assert_ptr_nonnull(all);
    TU_OK(iadsr_npy_decode(b, len, all, (N + 1) * D, &r, &c));
    ck_assert_int_eq(r, N + 1);
    ck_assert_int_eq(c, D);
    for (int j = 0; j < D; j++) {
        ck_assert(all[j] == 0.0f);
        ck_assert(!signbit(all[j]));
    }
    ck_assert(memcmp(all + D, iadsr_semantic_row(s, 1), D * sizeof(float)) ==
              0);
    free(all);
    free(b);
    TU_OK(iadsr_semantic_load_npy(&l, path, IADSR_SEMANTIC_ROW0_PADDING));
    same_rows(s, l);
    /* and back again: the bytes are stable */
    char path2[512];
    tmp_path(path2, sizeof path2, "rt2.npy");
    TU_OK(iadsr_semantic_save_npy(l, path2, IADSR_SEMANTIC_ROW0_PADDING));
    size_t l1, l2;
    uint8_t *b1 = tu_read_file(path, &l1), *b2 = tu_read_file(path2, &l2);
    ck_assert_uint_eq(l1, l2);
    ck_assert_int_eq(memcmp(b1, b2, l1), 0);
    free(b1);
    free(b2);
    iadsr_semantic_free(l);
    ck_assert_int_eq(iadsr__alloc_live(), live0);

    /* a failed save leaves the old file */
    TU_EXPECT_ERR(iadsr_semantic_save_npy(s, path, 0x100u),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_semantic_save_npy(s, path, IADSR_FLAG_BORROW << 2),
                  IADSR_ERR_UNSUPPORTED);
    b1 = tu_read_file(path, &l1);
    ck_assert_uint_eq(l1, len);
    free(b1);
    unlink(path);
    unlink(path2);
    iadsr_semantic_free(s);
    free(m);
}
END_TEST

START_TEST(test_npy_fixtures)
{
    char path[1024];
    iadsr_semantic *s = NULL;
    snprintf(path, sizeof path, "%s/npy/f4.npy", tu_data_dir());
    TU_OK(iadsr_semantic_load_npy(&s, path, 0));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 3);
    ck_assert_int_eq(iadsr_semantic_dim(s), 4);
    ck_assert(iadsr_semantic_row(s, 2)[2] == 1e-3f);
    ck_assert(iadsr_semantic_row(s, 3)[3] == 1.375f);
    iadsr_semantic_free(s);
    TU_OK(iadsr_semantic_load_npy(&s, path, IADSR_SEMANTIC_ROW0_PADDING));
    ck_assert_int_eq(iadsr_semantic_n_items(s), 2);
    ck_assert(iadsr_semantic_row(s, 1)[2] == 1e-3f);
    iadsr_semantic_free(s);
    snprintf(path, sizeof path, "%s/npy/v2.npy", tu_data_dir());
    TU_OK(iadsr_semantic_load_npy(&s, path, 0));
    ck_assert(iadsr_semantic_row(s, 2)[1] == 8.0f);
    iadsr_semantic_free(s);

    /* f2.npy holds +-Inf: NUMERIC naming the item, prefixed by the path */
    snprintf(path, sizeof path, "%s/npy/f2.npy", tu_data_dir());
    s = TU_SENTINEL(iadsr_semantic);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0), IADSR_ERR_NUMERIC);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 2 (row 1), column 3 is +Inf"));
    snprintf(path, sizeof path, "%s/npy/fortran.npy", tu_data_dir());
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "npy: "));
    snprintf(path, sizeof path, "%s/npy/bigendian.npy", tu_data_dir());
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0),
                  IADSR_ERR_UNSUPPORTED);
}
END_TEST

START_TEST(test_npy_errors)
{
    char path[512];
    iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
    tmp_path(path, sizeof path, "missing.npy");
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0), IADSR_ERR_IO);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), strerror(ENOENT)));
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, tu_tmp_dir(), 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), tu_tmp_dir()));

    /* a file that is not .npy: FORMAT, with the path */
    tmp_path(path, sizeof path, "junk.npy");
    tu_write_file(path, "1 2 3\n", 6);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "magic"));
    tu_write_file(path, "", 0);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0), IADSR_ERR_FORMAT);

    /* shapes that are valid .npy but no semantic matrix */
    const float one[3] = {1, 2, 3};
    ck_assert_int_eq(iadsr_npy_save(path, one, 1, 3, 3, IADSR_SAVE_NO_FSYNC),
                     IADSR_OK);
    TU_OK(iadsr_semantic_load_npy(&s, path, 0));
    iadsr_semantic_free(s);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path,
                                          IADSR_SEMANTIC_ROW0_PADDING),
                  IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "0 items"));
    static const char zero_rows[] =
        "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, "
        "'shape': (0, 3), }";
    uint8_t buf[128];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, zero_rows, sizeof zero_rows - 1);
    buf[127] = '\n';
    int64_t r = -1, c = -1;
    TU_OK(iadsr_npy_decode(buf, sizeof buf, NULL, 0, &r, &c));
    ck_assert_int_eq(r, 0);
    TU_EXPECT_ERR(iadsr_semantic_parse_npy(&s, buf, sizeof buf, 0),
                  IADSR_ERR_FORMAT);

    /* flags */
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, IADSR_FLAG_BORROW),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_semantic_parse_npy(&s, buf, sizeof buf, 8u),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(s);
    unlink(path);

    /* a NaN stored in a .npy is refused by the matrix, with the item */
    const float nan_row[6] = {1, 2, 3, 4, NAN, 6};
    ck_assert_int_eq(iadsr_npy_save(path, nan_row, 2, 3, 3, 0), IADSR_OK);
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path, 0), IADSR_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 2 (row 1), column 1 is NaN"));
    TU_EXPECT_ERR(iadsr_semantic_load_npy(&s, path,
                                          IADSR_SEMANTIC_ROW0_PADDING),
                  IADSR_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(),
                                 "item 1 (row 1), column 1 is NaN"));
    unlink(path);

    /* saving into a missing directory: IO naming the file */
    float m[2] = {1, 2};
    TU_OK(iadsr_semantic_create(&s, m, 1, 2, 2, 0));
    char dir[512], p2[600];
    tmp_path(dir, sizeof dir, "no-dir");
    snprintf(p2, sizeof p2, "%s/x.npy", dir);
    TU_EXPECT_ERR(iadsr_semantic_save_npy(s, p2, 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "semantic_save_npy"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), p2));
    iadsr_semantic_free(s);
}
END_TEST

/* A host array read in place must be aligned to its element type (an FFI
 * host can pass any address; a misaligned load is undefined behaviour). */
START_TEST(test_misaligned_host_arrays)
{
    _Alignas(8) unsigned char buf[128];
    memset(buf, 0, sizeof buf);
    float rows[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    memcpy(buf + 1, rows, sizeof rows);
    iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
    for (uint32_t fl = 0; fl <= 1; fl++) {
        TU_EXPECT_ERR(iadsr_semantic_create(&s, (const float *)(const void *)(buf + 1), 4, 2, 2,
                                            fl ? IADSR_FLAG_BORROW : 0),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(s);
        ck_assert(strstr(iadsr_last_error(), "aligned") != NULL);
    }
    const int32_t it[3] = {1, 2, 3};
    const int64_t off[2] = {0, 3};
    _Alignas(8) unsigned char ib[64], ob[64];
    memcpy(ib + 2, it, sizeof it);
    memcpy(ob + 4, off, sizeof off);
    iadsr_dataset *d = TU_SENTINEL(iadsr_dataset);
    TU_EXPECT_ERR(iadsr_dataset_create(&d, (const int32_t *)(const void *)(ib + 2), off, 1, 5, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(d);
    TU_EXPECT_ERR(iadsr_dataset_create(&d, it, (const int64_t *)(const void *)(ob + 4), 1, 5, 0),
                  IADSR_ERR_INVALID_ARG);
    ck_assert(strstr(iadsr_last_error(), "offsets") != NULL);
    TU_OK(iadsr_dataset_create(&d, it, off, 1, 5, 0));
    iadsr_dataset_free(d);
}
END_TEST

/* ---- evaluation ---------------------------------------------------------- */

/* Items in 2-D: 1 = (1, 0), 2 = (0, 1), 3 = (1, 1), 4 = (1, -1),
 * 5 = zero (no text), 6 = (2, 0.1). */
static iadsr_semantic *hand_matrix(void)
{
    static const float m[12] = {1, 0, 0, 1, 1, 1, 1, -1, 0, 0, 2, 0.1f};
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, 6, 2, 2, IADSR_FLAG_BORROW));
    return s;
}

static void expect_metrics(const iadsr_metrics *got, const int32_t *ranks,
                           int n)
{
    tu_acc a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < n; i++)
        tu_acc_add(&a, ranks[i]);
    iadsr_metrics want;
    tu_acc_metrics(&a, &want);
    ck_assert_int_eq(got->n_users, want.n_users);
    ck_assert(got->hr5 == want.hr5 && got->hr10 == want.hr10 &&
              got->hr20 == want.hr20);
    ck_assert_msg(got->ndcg5 == want.ndcg5 && got->ndcg10 == want.ndcg10 &&
                      got->ndcg20 == want.ndcg20,
                  "ndcg10 %.17g, expected %.17g", got->ndcg10, want.ndcg10);
}

START_TEST(test_evaluate_by_hand)
{
    iadsr_semantic *s = hand_matrix();
    /* Ties count against the target.
     * A: [1, 3]     test: history [1] -> mean (1, 0); target 3 scores
     *               0.7071; above it: item 1 (1) and 6 (0.99875); item 4
     *               ties (counted): rank 3; without history: rank 2.
     * B: [2, 2, 5]  test: history [2, 2] -> (0, 1); target 5 (zero row)
     *               scores 0; above: 2, 3, 6, and item 1 ties at 0:
     *               rank 4; without history 3.
     *               valid: history [2], target 2 scores 1: rank 0.
     * C: [4]        no target: skipped.
     * D: [6, 4, 1]  test: history [6, 4] -> (3, -0.9); target 1 scores
     *               0.958, the best: rank 0 either way. valid: history
     *               [6], target 4 scores 0.671; above: 1, 3, 6: rank 3;
     *               without history (6): rank 2. */
    const int32_t items[] = {1, 3, 2, 2, 5, 4, 6, 4, 1};
    const int64_t offs[] = {0, 2, 5, 6, 9};
    iadsr_dataset *d = tu_dataset(items, offs, 4, 6);
    iadsr_eval_params ep;
    iadsr_metrics met;
    memset(&met, 0, sizeof met);
    met.struct_size = sizeof met;

    TU_OK(iadsr_semantic_evaluate(s, d, NULL, &met));
    const int32_t r_test[] = {3, 4, 0};
    expect_metrics(&met, r_test, 3);
    ck_assert(fabs(met.ndcg10 - (1.0 / log2(5.0) + 1.0 / log2(6.0) + 1.0) /
                                    3.0) < 1e-15);
    ck_assert(met.hr5 == 1.0);

    iadsr_eval_params_init(&ep);
    ep.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    TU_OK(iadsr_semantic_evaluate(s, d, &ep, &met));
    const int32_t r_test_x[] = {2, 3, 0};
    expect_metrics(&met, r_test_x, 3);

    iadsr_eval_params_init(&ep);
    ep.target = IADSR_EVAL_VALID;
    TU_OK(iadsr_semantic_evaluate(s, d, &ep, &met));
    const int32_t r_valid[] = {0, 3};
    expect_metrics(&met, r_valid, 2);
    ep.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    ep.n_threads = 2;
    TU_OK(iadsr_semantic_evaluate(s, d, &ep, &met));
    const int32_t r_valid_x[] = {0, 2};
    expect_metrics(&met, r_valid_x, 2);

    /* bad params and struct sizes */
    iadsr_eval_params_init(&ep);
    ep.target = 3;
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, &ep, &met),
                  IADSR_ERR_INVALID_ARG);
    iadsr_eval_params_init(&ep);
    ep.flags = 8u;
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, &ep, &met),
                  IADSR_ERR_UNSUPPORTED);
    iadsr_eval_params_init(&ep);
    ep.n_threads = 0;
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, &ep, &met),
                  IADSR_ERR_INVALID_ARG);
    iadsr_dataset_free(d);

    /* the matrix must cover every item of the dataset */
    const int32_t big[] = {1, 7, 2};
    const int64_t boffs[] = {0, 3};
    d = tu_dataset(big, boffs, 1, 7);
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, NULL, &met),
                  IADSR_ERR_DIM_MISMATCH);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "7"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "6 items"));
    iadsr_dataset_free(d);
    /* ... but may cover more (here 6 items for a dataset of 4) */
    const int32_t small[] = {1, 4};
    const int64_t soffs[] = {0, 2};
    d = tu_dataset(small, soffs, 1, 4);
    TU_OK(iadsr_semantic_evaluate(s, d, NULL, &met));
    ck_assert_int_eq(met.n_users, 1);
    /* no user has a target: STATE */
    iadsr_eval_params_init(&ep);
    ep.target = IADSR_EVAL_VALID;
    TU_EXPECT_ERR(iadsr_semantic_evaluate(s, d, &ep, &met), IADSR_ERR_STATE);
    iadsr_dataset_free(d);
    iadsr_semantic_free(s);
}
END_TEST

/* Evaluation equals the ranks computed from iadsr_semantic_scores() with the
 * header's rule, for every target, flag and thread count. */
START_TEST(test_evaluate_matches_scores)
{
    const int32_t N = 60, D = 8;
    iadsr_dataset *d = tu_synth(120, N, 4, 1, 12, 9);
    float *m = rand_matrix(N, D, D, 11);
    for (int c = 0; c < D; c++)
        m[2 * D + c] = 0.0f; /* item 3: ties at 0 with the zero mean */
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, m, N, D, D, 0));
    float sc[61];
    for (int target = 1; target <= 2; target++) {
        for (uint32_t flags = 0; flags <= 1; flags++) {
            tu_acc a;
            memset(&a, 0, sizeof a);
            const int cut = target == IADSR_EVAL_VALID ? 2 : 1;
            for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
                int32_t n = 0;
                const int32_t *q = iadsr_dataset_user_items(d, u, &n);
                if (n < cut + 1)
                    continue;
                const int32_t h = n - cut, t = q[h];
                TU_OK(iadsr_semantic_scores(s, q, h, sc, N + 1));
                int64_t rank = 0;
                for (int32_t i = 1; i <= N; i++) {
                    if (i == t || !(sc[i] >= sc[t]))
                        continue;
                    int in_hist = 0;
                    for (int32_t k = 0; k < h; k++)
                        in_hist |= q[k] == i;
                    if (!(flags && in_hist))
                        rank++;
                }
                tu_acc_add(&a, rank);
            }
            iadsr_metrics want;
            tu_acc_metrics(&a, &want);
            for (int threads = 1; threads <= 3; threads++) {
                iadsr_eval_params ep;
                iadsr_eval_params_init(&ep);
                ep.target = target;
                ep.flags = flags;
                ep.n_threads = threads;
                iadsr_metrics met;
                memset(&met, 0, sizeof met);
                met.struct_size = sizeof met;
                TU_OK(iadsr_semantic_evaluate(s, d, &ep, &met));
                ck_assert_int_eq(met.n_users, want.n_users);
                ck_assert(met.hr10 == want.hr10 && met.hr20 == want.hr20 &&
                          met.hr5 == want.hr5);
                ck_assert(met.ndcg10 == want.ndcg10 &&
                          met.ndcg20 == want.ndcg20 &&
                          met.ndcg5 == want.ndcg5);
            }
        }
    }
    iadsr_semantic_free(s);
    iadsr_dataset_free(d);
    free(m);
}
END_TEST

/* ---- allocation failures ------------------------------------------------- */

enum { OP_COPY, OP_BORROW, OP_PAD, OP_PARSE, OP_LOAD, OP_SAVE, OP_EVAL,
       OP_COUNT };

/* Fail allocation k (transient, then persistent) of each operation until
 * it completes without reaching k: every injected failure gives NOMEM, a
 * NULL handle, no leak and no temporary file. */
START_TEST(test_alloc_failures)
{
    const int32_t N = 7, D = 3;
    float *m = rand_matrix(N + 1, D, D, 21);
    iadsr_semantic *src = NULL;
    TU_OK(iadsr_semantic_create(&src, m, N + 1, D, D,
                                IADSR_SEMANTIC_ROW0_PADDING));
    char path[512], spath[512];
    tmp_path(path, sizeof path, "oom.npy");
    tmp_path(spath, sizeof spath, "oom-save.npy");
    TU_OK(iadsr_semantic_save_npy(src, path, IADSR_SEMANTIC_ROW0_PADDING));
    size_t len;
    uint8_t *bytes = tu_read_file(path, &len);
    const int32_t items[] = {1, 2, 3, 4, 5, 6, 7, 1};
    const int64_t offs[] = {0, 3, 8};
    iadsr_dataset *d = tu_dataset(items, offs, 2, N);

    for (int op = 0; op < OP_COUNT; op++) {
        for (int persistent = 0; persistent <= 1; persistent++) {
            int done = 0;
            for (long k = 1; k < 100 && !done; k++) {
                long live0 = iadsr__alloc_live();
                iadsr_semantic *s = TU_SENTINEL(iadsr_semantic);
                iadsr_metrics met;
                memset(&met, 0, sizeof met);
                met.struct_size = sizeof met;
                int rc;
                iadsr__alloc_fail_after(k, persistent);
                switch (op) {
                case OP_COPY:
                    rc = iadsr_semantic_create(&s, m + D, N, D, D, 0);
                    break;
                case OP_BORROW:
                    rc = iadsr_semantic_create(&s, m + D, N, D, D,
                                               IADSR_FLAG_BORROW);
                    break;
                case OP_PAD:
                    rc = iadsr_semantic_create(&s, m, N + 1, D, D,
                                               IADSR_SEMANTIC_ROW0_PADDING);
                    break;
                case OP_PARSE:
                    rc = iadsr_semantic_parse_npy(&s, bytes, len,
                                                  IADSR_SEMANTIC_ROW0_PADDING);
                    break;
                case OP_LOAD:
                    rc = iadsr_semantic_load_npy(&s, path,
                                                 IADSR_SEMANTIC_ROW0_PADDING);
                    break;
                case OP_SAVE:
                    s = NULL;
                    rc = iadsr_semantic_save_npy(src, spath,
                                                 IADSR_SAVE_NO_FSYNC);
                    break;
                default:
                    s = NULL;
                    rc = iadsr_semantic_evaluate(src, d, NULL, &met);
                    break;
                }
                long made = iadsr__alloc_fail_after(0, 0);
                if (made < k) {
                    ck_assert_msg(rc == IADSR_OK, "op %d k %ld: %s (%s)", op,
                                  k, iadsr_status_name(rc),
                                  iadsr_last_error());
                    if (op <= OP_LOAD) {
                        same_rows(src, s);
                        iadsr_semantic_free(s);
                    }
                    if (op == OP_EVAL)
                        ck_assert_int_eq(met.n_users, 2);
                    done = 1;
                } else {
                    ck_assert_msg(rc == IADSR_ERR_NOMEM,
                                  "op %d k %ld persistent %d: %s (%s)", op, k,
                                  persistent, iadsr_status_name(rc),
                                  iadsr_last_error());
                    ck_assert_ptr_null(s);
                }
                ck_assert_int_eq(iadsr__alloc_live(), live0);
                ck_assert_int_eq(tu_count_temp_files(spath), 0);
            }
            ck_assert_msg(done, "op %d never succeeded", op);
        }
    }
    iadsr_dataset_free(d);
    iadsr_semantic_free(src);
    free(bytes);
    free(m);
    unlink(path);
    unlink(spath);
}
END_TEST

Suite *suite_semantic(void)
{
    Suite *s = suite_create("semantic");
    TCase *tc = tcase_create("create");
    tcase_add_test(tc, test_create_copy);
    tcase_add_test(tc, test_misaligned_host_arrays);
    tcase_add_test(tc, test_create_padding_and_borrow);
    tcase_add_test(tc, test_create_nonfinite);
    tcase_add_test(tc, test_create_bad_args);
    tcase_add_test(tc, test_null_and_foreign);
    tcase_add_test(tc, test_check);
    suite_add_tcase(s, tc);

    tc = tcase_create("scores");
    tcase_add_test(tc, test_scores_reference);
    tcase_add_test(tc, test_scores_zero_rows_and_zero_mean);
    tcase_add_test(tc, test_scores_args);
    tcase_add_test(tc, test_scores_no_alloc_and_speed);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("npy");
    tcase_add_test(tc, test_npy_roundtrip);
    tcase_add_test(tc, test_npy_fixtures);
    tcase_add_test(tc, test_npy_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("evaluate");
    tcase_add_test(tc, test_evaluate_by_hand);
    tcase_add_test(tc, test_evaluate_matches_scores);
    tcase_add_test(tc, test_alloc_failures);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
