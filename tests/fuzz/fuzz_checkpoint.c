/* Fuzz harness: checkpoint loaders (docs/FORMAT.md).
 *
 * The input is a checkpoint. It goes to iadsr_model_load_from_buffer() and
 * iadsr_checkpoint_load_from_buffer() (with and without the aligner and
 * gate outputs); all three must agree on the status, and after an error
 * every out-pointer must be NULL. A model that loads is exercised: scores
 * for valid and invalid ids (0, 1, n_items, n_items + 1), a too-small score
 * buffer, top-K, then save -> load -> save must give identical bytes and
 * identical scores. When the file holds an aligner and a gate, a denoiser
 * is built over a generated semantic matrix and cleans a sequence.
 *
 * fuzz_checkpoint_crcfix.c includes this file with FUZZ_CRCFIX defined:
 * the harness then rewrites file_size and every CRC-32C of the input before
 * loading, so that mutations reach the parser's later checks instead of
 * dying at a checksum.
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_common.h"
#include "../bytes.h"

#ifdef FUZZ_CRCFIX
#include "iadsr.h"
#include "common/crc32c.h" /* iadsr__crc32c */
#endif

/* ---- CRC fix-up (crcfix variant) ----------------------------------------- */

#ifdef FUZZ_CRCFIX
/* Bytes a metadata value of @p type occupies at @p p (0 = unknown type or
 * does not fit before @p lim). */
static size_t kv_value_size(const uint8_t *b, size_t p, size_t lim,
                            uint32_t type)
{
    switch (type) {
    case 1: case 2: case 5:
        return p + 4 <= lim ? 4 : 0;
    case 3: case 4:
        return p + 8 <= lim ? 8 : 0;
    case 6: {
        if (p + 4 > lim)
            return 0;
        uint64_t n = rd32(b + p);
        return n <= lim - p - 4 ? (size_t)(4 + n) : 0;
    }
    default:
        return 0;
    }
}

/* Rewrite file_size, the metadata, directory and tensor CRCs and finally
 * the header CRC, as far as the structure can be walked. Counts are capped
 * like the reader caps them; whatever cannot be walked is left alone. */
static void crcfix(uint8_t *b, size_t n)
{
    if (n < 64 || memcmp(b, "\x89IADSR\r\n", 8) != 0)
        return;
    wr64(b + 52, (uint64_t)n);
    uint32_t n_kv = rd32(b + 32), n_t = rd32(b + 36);
    uint64_t data_off = rd64(b + 44);
    size_t lim = data_off < n ? (size_t)data_off : n;
    size_t p = 64;
    int ok = n_kv <= 256;
    for (uint32_t i = 0; ok && i < n_kv; i++) {
        if (p + 4 > lim) {
            ok = 0;
            break;
        }
        uint32_t kl = rd32(b + p);
        if (kl > lim - p - 4 || p + 4 + kl + 4 > lim) {
            ok = 0;
            break;
        }
        p += 4 + kl;
        uint32_t type = rd32(b + p);
        p += 4;
        size_t vs = kv_value_size(b, p, lim, type);
        if (!vs) {
            ok = 0;
            break;
        }
        p += vs;
    }
    if (ok && p + 4 <= lim) {
        wr32(b + p, iadsr__crc32c(0, b + 64, p - 64));
        p += 4;
        size_t dir = p;
        ok = n_t <= 256;
        for (uint32_t i = 0; ok && i < n_t; i++) {
            if (p + 4 > lim) {
                ok = 0;
                break;
            }
            uint32_t nl = rd32(b + p);
            if (nl > 64 || p + 4 + nl + 8 > lim) {
                ok = 0;
                break;
            }
            p += 4 + nl + 4; /* name, dtype */
            uint32_t nd = rd32(b + p);
            p += 4;
            if (nd < 1 || nd > 2 || p + 8 * nd + 20 > lim) {
                ok = 0;
                break;
            }
            p += 8 * nd;
            uint64_t off = rd64(b + p), nb = rd64(b + p + 8);
            /* the tensor's own CRC, when its bytes are inside the input */
            if (data_off <= n && off <= n - data_off &&
                nb <= n - data_off - off)
                wr32(b + p + 16,
                     iadsr__crc32c(0, b + data_off + off, (size_t)nb));
            p += 20;
        }
        if (ok && p + 4 <= lim)
            wr32(b + p, iadsr__crc32c(0, b + dir, p - dir));
    }
    /* header CRC last: bytes 0..63 with the CRC field taken as zero */
    wr32(b + 60, 0);
    wr32(b + 60, iadsr__crc32c(0, b, 64));
}
#endif /* FUZZ_CRCFIX */

/* ---- exercising a loaded model ------------------------------------------- */

/* Scores of @p seq into @p s (n_items + 1 floats, exact allocation). */
static void score_ok(iadsr_ctx *c, const int32_t *seq, int32_t n, float *s,
                     int64_t cap)
{
    iadsr_clear_error();
    int rc = iadsr_ctx_score(c, seq, n, s, cap);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    FZ_CHECK(s[0] == -INFINITY);
}

static void score_bad(iadsr_ctx *c, const int32_t *seq, int32_t n, float *s,
                      int64_t cap, int want)
{
    fz_fill(s, (size_t)cap * sizeof(float));
    iadsr_clear_error();
    int rc = iadsr_ctx_score(c, seq, n, s, cap);
    fz_check_status(rc);
    FZ_CHECK(rc == want);
    FZ_CHECK(fz_untouched(s, (size_t)cap * sizeof(float)));
}

/* Scores, top-K and the error paths of one model; the scores of @p mix go
 * to @p mix_scores (n_items + 1 floats) for the round-trip comparison. */
static void exercise_scoring(const iadsr_model *m, const int32_t *mix,
                             int32_t n_mix, float *mix_scores)
{
    const int32_t n = iadsr_model_n_items(m);
    const int64_t ns = (int64_t)n + 1;
    iadsr_ctx *c = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_ctx_create(&c, m, NULL);
    fz_check_status(rc);
    if (rc != IADSR_OK) {
        FZ_CHECK(rc == IADSR_ERR_NOMEM && c == NULL);
        memset(mix_scores, 0, (size_t)ns * sizeof(float));
        return;
    }
    FZ_CHECK(iadsr_ctx_model(c) == m);
    float *s = fz_alloc((size_t)ns * sizeof(float));

    const int32_t one[1] = {1}, last[1] = {n};
    score_ok(c, one, 1, s, ns);
    score_ok(c, last, 1, s, ns);

    const int32_t zero[1] = {0}, past[1] = {n + 1};
    const int32_t tail_zero[2] = {1, 0}, tail_past[2] = {n, n + 1};
    score_bad(c, zero, 1, s, ns, IADSR_ERR_OUT_OF_RANGE);
    score_bad(c, past, 1, s, ns, IADSR_ERR_OUT_OF_RANGE);
    score_bad(c, tail_zero, 2, s, ns, IADSR_ERR_OUT_OF_RANGE);
    score_bad(c, tail_past, 2, s, ns, IADSR_ERR_OUT_OF_RANGE);
    score_bad(c, one, 0, s, ns, IADSR_ERR_INVALID_ARG);
    score_bad(c, one, 1, s, ns - 1, IADSR_ERR_BUFFER_TOO_SMALL);

    score_ok(c, mix, n_mix, mix_scores, ns);

    /* top-K of the same sequence: valid distinct ids outside the history,
     * best first, each with its score from ctx_score */
    int32_t k = n < 5 ? n : 5;
    int32_t ids[5];
    float ks[5];
    iadsr_clear_error();
    rc = iadsr_ctx_topk(c, mix, n_mix, k, IADSR_TOPK_EXCLUDE_HISTORY, ids,
                        ks);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    for (int32_t i = 0; i < k; i++) {
        if (ids[i] == -1) {
            FZ_CHECK(ks[i] == -INFINITY);
            continue;
        }
        FZ_CHECK(ids[i] >= 1 && ids[i] <= n);
        FZ_CHECK(i == 0 || ids[i - 1] != -1);
        for (int32_t j = 0; j < i; j++)
            FZ_CHECK(ids[j] != ids[i]);
        for (int32_t t = 0; t < n_mix; t++)
            FZ_CHECK(mix[t] != ids[i]);
        FZ_CHECK(ks[i] == mix_scores[ids[i]]);
        FZ_CHECK(i == 0 || !(ks[i] > ks[i - 1]));
    }
    iadsr_clear_error();
    rc = iadsr_ctx_topk(c, mix, n_mix, n + 1, 0, ids, ks);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
    free(s);
    iadsr_ctx_free(c);
}

/* The serialised bytes of @p m (malloc'ed) after checking the size query
 * and the too-small-buffer contract. */
static uint8_t *save_bytes(const iadsr_model *m, size_t *len)
{
    size_t need = 0;
    iadsr_clear_error();
    int rc = iadsr_model_save_to_buffer(m, NULL, 0, &need);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK && need >= 64);
    uint8_t *b = fz_alloc(need);
    size_t need2 = 0;
    fz_fill(b, need);
    iadsr_clear_error();
    rc = iadsr_model_save_to_buffer(m, b, need - 1, &need2);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_BUFFER_TOO_SMALL && need2 == need);
    FZ_CHECK(fz_untouched(b, need));
    iadsr_clear_error();
    rc = iadsr_model_save_to_buffer(m, NULL, 1, NULL);
    FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
    rc = iadsr_model_save_to_buffer(m, b, need, &need2);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK && need2 == need);
    *len = need;
    return b;
}

/* A sequence of @p k valid ids mixing the ends of the range. */
static void make_mix(int32_t n, int32_t k, int32_t *seq)
{
    for (int32_t i = 0; i < k; i++)
        seq[i] = i == 0   ? n
                 : i == 1 ? 1
                          : (int32_t)(((int64_t)i * 7919) % n) + 1;
}

static void exercise_denoiser(const iadsr_model *m, const iadsr_aligner *a,
                              const iadsr_gate *g)
{
    const int32_t n = iadsr_model_n_items(m), d = iadsr_model_dim(m);
    const int32_t L = iadsr_model_max_seq_len(m);
    FZ_CHECK(iadsr_aligner_dim(a) == d && iadsr_gate_dim(g) == d);
    const int32_t D = iadsr_aligner_semantic_dim(a);
    FZ_CHECK(D >= 1);

    iadsr_denoise_params gp;
    memset(&gp, 0, sizeof gp);
    gp.struct_size = sizeof gp;
    iadsr_clear_error();
    int rc = iadsr_gate_get_params(g, &gp);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    FZ_CHECK(gp.theta >= -3.0f && gp.theta <= 3.0f);
    FZ_CHECK(gp.max_drop >= 0.0f && gp.max_drop <= 1.0f);

    /* project a vector (cheap, exercises the stored weights) */
    float *x = fz_alloc((size_t)D * sizeof(float));
    float *px = fz_alloc((size_t)d * sizeof(float));
    for (int32_t j = 0; j < D; j++)
        x[j] = fz_hash_float((uint64_t)j, 11);
    iadsr_clear_error();
    rc = iadsr_aligner_project(a, 2, x, px);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    free(px);

    /* keep the per-input work bounded */
    if ((int64_t)n * D > (1 << 16)) {
        free(x);
        return;
    }
    float *rows = fz_alloc((size_t)n * (size_t)D * sizeof(float));
    for (size_t i = 0; i < (size_t)n * (size_t)D; i++)
        rows[i] = fz_hash_float(i, 3);
    if (n >= 2) /* item 2 has no text: a zero row */
        memset(rows + D, 0, (size_t)D * sizeof(float));
    iadsr_semantic *sem = FZ_SENTINEL;
    iadsr_clear_error();
    rc = iadsr_semantic_create(&sem, rows, n, D, D, IADSR_FLAG_COPY);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    free(rows);

    iadsr_denoiser *dn = FZ_SENTINEL;
    iadsr_clear_error();
    rc = iadsr_denoiser_create(&dn, m, a, g, sem);
    fz_check_status(rc);
    /* these rows are not the ones trained parts remember (format 1.3
     * records): refused, and accepted with the override */
    FZ_CHECK(rc == IADSR_OK || rc == IADSR_ERR_MISMATCH);
    if (rc == IADSR_ERR_MISMATCH) {
        FZ_CHECK(dn == NULL);
        dn = FZ_SENTINEL;
        iadsr_clear_error();
        rc = iadsr_denoiser_create_v2(&dn, m, a, g, sem,
                                      IADSR_DENOISER_ALLOW_MISMATCH);
        fz_check_status(rc);
        FZ_CHECK(rc == IADSR_OK);
    }

    /* long enough to need the overlapping windows */
    int32_t k = 2 * L + 3 < 40 ? 2 * L + 3 : 40;
    int32_t *seq = fz_alloc((size_t)k * sizeof(int32_t));
    int32_t *cleaned = fz_alloc((size_t)k * sizeof(int32_t));
    uint8_t *keep = fz_alloc((size_t)k);
    float *sc = fz_alloc((size_t)k * sizeof(float));
    make_mix(n, k, seq);
    int32_t n_kept = -1;
    iadsr_clear_error();
    rc = iadsr_denoiser_clean(dn, seq, k, NULL, keep, sc, cleaned, &n_kept);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    int32_t sum = 0;
    for (int32_t t = 0; t < k; t++) {
        FZ_CHECK(keep[t] == 0 || keep[t] == 1);
        if (keep[t]) {
            FZ_CHECK(sum < n_kept && cleaned[sum] == seq[t]);
            sum++;
        } else {
            FZ_CHECK(sc[t] <= gp.theta); /* only low scores are dropped */
        }
        if (sc[t] > gp.theta)
            FZ_CHECK(keep[t]);
    }
    FZ_CHECK(sum == n_kept);
    double md = round((double)gp.max_drop * 1e6) / 1e6;
    FZ_CHECK(k - n_kept <= (int32_t)floor(md * (double)k + 1e-9));
    if (gp.protect_last)
        FZ_CHECK(keep[k - 1] == 1);

    /* with a user vector, then the error paths: outputs untouched */
    iadsr_clear_error();
    rc = iadsr_denoiser_clean(dn, seq, k, x, NULL, NULL, NULL, &n_kept);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    fz_fill(keep, (size_t)k);
    fz_fill(sc, (size_t)k * sizeof(float));
    fz_fill(cleaned, (size_t)k * sizeof(int32_t));
    fz_fill(&n_kept, sizeof n_kept);
    seq[k / 2] = n + 1;
    iadsr_clear_error();
    rc = iadsr_denoiser_clean(dn, seq, k, NULL, keep, sc, cleaned, &n_kept);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_OUT_OF_RANGE);
    seq[k / 2] = 1;
    x[D - 1] = NAN;
    iadsr_clear_error();
    rc = iadsr_denoiser_clean(dn, seq, k, x, keep, sc, cleaned, &n_kept);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_NUMERIC);
    FZ_CHECK(fz_untouched(keep, (size_t)k));
    FZ_CHECK(fz_untouched(sc, (size_t)k * sizeof(float)));
    FZ_CHECK(fz_untouched(cleaned, (size_t)k * sizeof(int32_t)));
    FZ_CHECK(fz_untouched(&n_kept, sizeof n_kept));

    free(x);
    free(seq);
    free(cleaned);
    free(keep);
    free(sc);
    iadsr_denoiser_free(dn);
    iadsr_semantic_free(sem);
}

static void exercise(const iadsr_model *m, const iadsr_model *m_plain,
                     const iadsr_aligner *a, const iadsr_gate *g)
{
    const int32_t n = iadsr_model_n_items(m);
    const int32_t L = iadsr_model_max_seq_len(m);
    FZ_CHECK(n >= 1 && iadsr_model_dim(m) >= 1 && L >= 1);
    FZ_CHECK(iadsr_model_backbone(m) >= IADSR_BACKBONE_SASREC &&
             iadsr_model_backbone(m) <= IADSR_BACKBONE_CASER);
    FZ_CHECK(iadsr_model_n_params(m) > 0);
    FZ_CHECK(iadsr_model_item_embeddings(m) != NULL);

    const int64_t ns = (int64_t)n + 1;
    int32_t n_mix = L + 2 < 12 ? L + 2 : 12;
    int32_t *mix = fz_alloc((size_t)n_mix * sizeof(int32_t));
    make_mix(n, n_mix, mix);
    float *s1 = fz_alloc((size_t)ns * sizeof(float));
    float *s2 = fz_alloc((size_t)ns * sizeof(float));
    exercise_scoring(m, mix, n_mix, s1);

    /* the model loader and the checkpoint loader give the same backbone */
    size_t len1 = 0, len0 = 0, len2 = 0;
    uint8_t *b1 = save_bytes(m, &len1);
    uint8_t *b0 = save_bytes(m_plain, &len0);
    FZ_CHECK(len0 == len1 && memcmp(b0, b1, len1) == 0);
    free(b0);

    /* save -> load -> save: same bytes, same scores, same parameters */
    iadsr_model *m2 = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_model_load_from_buffer(&m2, b1, len1, 0);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    uint8_t *b2 = save_bytes(m2, &len2);
    FZ_CHECK(len2 == len1 && memcmp(b1, b2, len1) == 0);
    exercise_scoring(m2, mix, n_mix, s2);
    FZ_CHECK(memcmp(s1, s2, (size_t)ns * sizeof(float)) == 0);
    iadsr_model_params p1, p2;
    iadsr_model_params_init(&p1);
    iadsr_model_params_init(&p2);
    FZ_CHECK(iadsr_model_get_params(m, &p1) == IADSR_OK);
    FZ_CHECK(iadsr_model_get_params(m2, &p2) == IADSR_OK);
    FZ_CHECK(memcmp(&p1, &p2, sizeof p1) == 0);

    if (a && g)
        exercise_denoiser(m, a, g);

    free(b1);
    free(b2);
    free(mix);
    free(s1);
    free(s2);
    iadsr_model_free(m2);
}

/* ---- entry point ----------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size private copy: over-reads hit the sanitizer's redzone,
     * and the crcfix variant may rewrite it */
    uint8_t *buf = fz_alloc(size);
    if (size)
        memcpy(buf, data, size);
#ifdef FUZZ_CRCFIX
    crcfix(buf, size);
#endif

    iadsr_model *m = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_model_load_from_buffer(&m, buf, size, 0);
    fz_check_status(rc);
    if (rc != IADSR_OK)
        FZ_CHECK(m == NULL);
    /* the statuses FORMAT.md lists for a loader reading memory */
    FZ_CHECK(rc == IADSR_OK || rc == IADSR_ERR_FORMAT ||
             rc == IADSR_ERR_VERSION || rc == IADSR_ERR_CHECKSUM ||
             rc == IADSR_ERR_UNSUPPORTED || rc == IADSR_ERR_NUMERIC ||
             rc == IADSR_ERR_NOMEM);

    iadsr_model *cm = FZ_SENTINEL;
    iadsr_aligner *a = FZ_SENTINEL;
    iadsr_gate *g = FZ_SENTINEL;
    iadsr_clear_error();
    int rc2 = iadsr_checkpoint_load_from_buffer(&cm, &a, &g, buf, size, 0);
    fz_check_status(rc2);
    FZ_CHECK(rc2 == rc);
    if (rc2 != IADSR_OK)
        FZ_CHECK(cm == NULL && a == NULL && g == NULL);
    else
        FZ_CHECK(cm != NULL && a != FZ_SENTINEL && g != FZ_SENTINEL);

    /* components not wanted: validated, not returned */
    iadsr_model *cm2 = FZ_SENTINEL;
    iadsr_clear_error();
    int rc3 = iadsr_checkpoint_load_from_buffer(&cm2, NULL, NULL, buf, size,
                                                0);
    fz_check_status(rc3);
    FZ_CHECK(rc3 == rc);
    if (rc3 != IADSR_OK)
        FZ_CHECK(cm2 == NULL);
    iadsr_model_free(cm2);

    /* reserved flags: never OK, nothing returned */
    iadsr_model *fm = FZ_SENTINEL;
    iadsr_clear_error();
    int rcf = iadsr_model_load_from_buffer(&fm, buf, size,
                                           1u << (size % 32));
    fz_check_status(rcf);
    FZ_CHECK(rcf == IADSR_ERR_UNSUPPORTED && fm == NULL);

    if (rc == IADSR_OK)
        exercise(cm, m, a, g);

    iadsr_model_free(m);
    iadsr_model_free(cm);
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    free(buf);
    return 0;
}
