/* Fuzz harness: the .npy reader (iadsr_npy_decode) and the semantic matrix
 * built from it (iadsr_semantic_parse_npy).
 *
 * Checks: the status is documented; a header-only query and a full decode
 * agree; a capacity one float short is BUFFER_TOO_SMALL with the output
 * untouched; decoded values survive an in-memory round trip through the
 * writer (iadsr__npy_encode, the bytes iadsr_npy_save writes) bit for bit;
 * iadsr_semantic_parse_npy() succeeds exactly when the shape gives a matrix
 * and every value is finite, holds the decoded rows, counts zero rows, and
 * its text-only scores are cosines (finite, |s| <= 1).
 * No file I/O per input.
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_common.h"

#include "iadsr.h"
#include "common/alloc.h" /* iadsr__free for the writer's block */
#include "io/npy.h"

#define SEM_MAX_DIM 1048576
#define SEM_MAX_ITEMS (INT32_MAX - 1)

/* Round trip through the writer: same shape, same bits. With one leading
 * zero row (the ROW0_PADDING layout) the rest must be unchanged too. */
static void round_trip(const float *v, int64_t r, int64_t c, int lead)
{
    void *blob = NULL;
    size_t bl = 0;
    iadsr_clear_error();
    int rc = iadsr__npy_encode(v, r, c, c, lead, &blob, &bl, "fuzz");
    fz_check_status(rc);
    if (rc == IADSR_ERR_NOMEM)
        return;
    FZ_CHECK(rc == IADSR_OK && blob != NULL);
    FZ_CHECK(bl > 10);
    const size_t n = (size_t)r * (size_t)c;
    const size_t nl = (size_t)lead * (size_t)c;
    float *w = fz_alloc((n + nl) * sizeof(float));
    int64_t r2 = -1, c2 = -1;
    iadsr_clear_error();
    rc = iadsr_npy_decode(blob, bl, w, (int64_t)(n + nl), &r2, &c2);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK && r2 == r + lead && c2 == c);
    for (size_t i = 0; i < nl; i++)
        FZ_CHECK(w[i] == 0.0f && !signbit(w[i]));
    if (n)
        FZ_CHECK(memcmp(w + nl, v, n * sizeof(float)) == 0);
    free(w);
    iadsr__free(blob);
}

static void semantic(const uint8_t *buf, size_t size, int rc_dec,
                     const float *v, int64_t r, int64_t c, uint32_t flags)
{
    const int pad = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    iadsr_semantic *s = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_semantic_parse_npy(&s, buf, size, flags);
    fz_check_status(rc);
    if (rc != IADSR_OK)
        FZ_CHECK(s == NULL);
    if (rc_dec != IADSR_OK) {
        FZ_CHECK(rc == rc_dec);
        return;
    }
    int shape_ok = c >= 1 && c <= SEM_MAX_DIM && r - pad >= 1 &&
                   r - pad <= SEM_MAX_ITEMS;
    if (!shape_ok) {
        FZ_CHECK(rc == IADSR_ERR_FORMAT);
        return;
    }
    const size_t n = (size_t)r * (size_t)c;
    size_t first_bad = n;
    for (size_t i = (size_t)pad * (size_t)c; i < n && first_bad == n; i++)
        if (!isfinite(v[i]))
            first_bad = i;
    if (first_bad < n) {
        FZ_CHECK(rc == IADSR_ERR_NUMERIC);
        return;
    }
    if (rc == IADSR_ERR_NOMEM)
        return;
    FZ_CHECK(rc == IADSR_OK);

    const int32_t ni = iadsr_semantic_n_items(s), D = iadsr_semantic_dim(s);
    FZ_CHECK(ni == r - pad && D == c);
    int32_t zero_rows = 0;
    for (int32_t i = 1; i <= ni; i++) {
        const float *row = iadsr_semantic_row(s, i);
        const float *want = v + (size_t)(i - 1 + pad) * (size_t)c;
        FZ_CHECK(row != NULL);
        FZ_CHECK(memcmp(row, want, (size_t)c * sizeof(float)) == 0);
        int z = 1;
        for (int32_t j = 0; j < D && z; j++)
            z = want[j] == 0.0f;
        zero_rows += z;
    }
    FZ_CHECK(iadsr_semantic_n_zero_rows(s) == zero_rows);
    FZ_CHECK(iadsr_semantic_row(s, 0) == NULL);
    FZ_CHECK(iadsr_semantic_row(s, ni + 1) == NULL);

    iadsr_clear_error();
    FZ_CHECK(iadsr_semantic_check(s, ni, D) == IADSR_OK);
    FZ_CHECK(iadsr_semantic_check(s, ni, 0) == IADSR_OK);
    FZ_CHECK(iadsr_semantic_check(s, ni + (ni < INT32_MAX ? 1 : -1), 0) ==
             IADSR_ERR_DIM_MISMATCH);
    FZ_CHECK(iadsr_semantic_check(s, 0, 0) == IADSR_ERR_INVALID_ARG);

    /* text-only scores: cosines */
    const int64_t cap = (int64_t)ni + 1;
    float *sc = fz_alloc((size_t)cap * sizeof(float));
    int32_t seq[3] = {1, ni, (ni + 1) / 2};
    iadsr_clear_error();
    rc = iadsr_semantic_scores(s, seq, 3, sc, cap);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    FZ_CHECK(sc[0] == -INFINITY);
    for (int64_t i = 1; i < cap; i++)
        FZ_CHECK(isfinite(sc[i]) && fabsf(sc[i]) <= 1.001f);

    fz_fill(sc, (size_t)cap * sizeof(float));
    iadsr_clear_error();
    rc = iadsr_semantic_scores(s, seq, 3, sc, cap - 1);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_BUFFER_TOO_SMALL);
    seq[2] = ni + 1;
    iadsr_clear_error();
    rc = iadsr_semantic_scores(s, seq, 3, sc, cap);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_OUT_OF_RANGE);
    FZ_CHECK(fz_untouched(sc, (size_t)cap * sizeof(float)));
    free(sc);
    iadsr_semantic_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fz_alloc(size);
    if (size)
        memcpy(buf, data, size);

    int64_t r = -1, c = -1;
    iadsr_clear_error();
    int rc = iadsr_npy_decode(buf, size, NULL, 0, &r, &c);
    fz_check_status(rc);
    FZ_CHECK(rc != IADSR_ERR_INVALID_ARG && rc != IADSR_ERR_BUFFER_TOO_SMALL);
    float *v = NULL;
    if (rc != IADSR_OK) {
        FZ_CHECK(r == 0 && c == 0);
    } else {
        FZ_CHECK(r >= 0 && c >= 0);
        /* the data follow the header in the input: n * 2 <= size */
        FZ_CHECK(c == 0 || (uint64_t)r <= size / (uint64_t)c);
        const size_t n = (size_t)r * (size_t)c;
        v = fz_alloc(n * sizeof(float));
        int64_t r2 = -1, c2 = -1;
        iadsr_clear_error();
        int rc2 = iadsr_npy_decode(buf, size, v, (int64_t)n, &r2, &c2);
        fz_check_status(rc2);
        FZ_CHECK(rc2 == IADSR_OK && r2 == r && c2 == c);
        if (n > 0) {
            float *w = fz_alloc(n * sizeof(float));
            fz_fill(w, n * sizeof(float));
            iadsr_clear_error();
            rc2 = iadsr_npy_decode(buf, size, w, (int64_t)n - 1, &r2, &c2);
            fz_check_status(rc2);
            FZ_CHECK(rc2 == IADSR_ERR_BUFFER_TOO_SMALL);
            FZ_CHECK(r2 == r && c2 == c);
            FZ_CHECK(fz_untouched(w, n * sizeof(float)));
            free(w);
        }
        iadsr_clear_error();
        rc2 = iadsr_npy_decode(buf, size, v, -1, &r2, &c2);
        FZ_CHECK(rc2 == IADSR_ERR_INVALID_ARG);
        if (c >= 1) {
            round_trip(v, r, c, 0);
            if (n <= 4096)
                round_trip(v, r, c, 1);
        }
    }
    semantic(buf, size, rc, v, r, c, 0);
    semantic(buf, size, rc, v, r, c, IADSR_SEMANTIC_ROW0_PADDING);

    free(v);
    free(buf);
    return 0;
}
