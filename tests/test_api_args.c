/* Tests: argument checking of every public function of include/iadsr.h:
 * NULL pointers, foreign handles (zeroed structs, handles of another type),
 * out-of-range ids, zero lengths, dimension mismatches and NaN in host
 * matrices give the documented code, set handle out-params to NULL and leave
 * a non-empty last error; accessors return 0/NULL for NULL; *_free(NULL) and
 * *_free(foreign) are no-ops. Checkpoint functions: NULL arguments only
 * (tests/test_checkpoint.c covers the rest).
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include "score/ctx.h"
#include "data/dataset.h"

Suite *suite_api_args(void);

#define NI 20
#define NS (NI + 1)

/* Zeroed memory standing in for a handle whose struct is private to its
 * module (the trainer); large and aligned enough for any handle. */
static _Alignas(64) unsigned char zero_block[8192];

typedef struct handles {
    iadsr_dataset *d;
    iadsr_model *m;
    iadsr_ctx *c;
    iadsr_trainer *t;
    /* foreign handles: zeroed structs of the right size */
    struct iadsr_dataset zd;
    struct iadsr_model zm;
    struct iadsr_ctx zc;
} handles;

static handles *open_handles(void)
{
    handles *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    static const int32_t items[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const int64_t offs[] = {0, 5, 12};
    h->d = tu_dataset(items, offs, 2, NI);
    h->m = tu_model(NI, 1);
    TU_OK(iadsr_ctx_create(&h->c, h->m, NULL));
    iadsr_train_params tp;
    tu_train_params(&tp);
    TU_OK(iadsr_trainer_create(&h->t, h->m, h->d, &tp));
    memset(zero_block, 0, sizeof zero_block);
    return h;
}

static void close_handles(handles *h)
{
    iadsr_trainer_free(h->t);
    iadsr_ctx_free(h->c);
    iadsr_model_free(h->m);
    iadsr_dataset_free(h->d);
    free(h);
}

/* Cast a handle to another handle type (a "foreign" handle). */
#define AS(T, p) ((T *)(void *)(p))

/* @p call must fail with @p code and set the model out-param m to NULL. */
#define M_FAIL(call, code)                                                    \
    do {                                                                      \
        m = TU_SENTINEL(iadsr_model);                                         \
        TU_EXPECT_ERR(call, code);                                            \
        ck_assert_ptr_null(m);                                                \
    } while (0)

/* ---- version, status codes, errors ---------------------------------------- */

START_TEST(test_version_status)
{
    ck_assert_int_eq(iadsr_version_number(), IADSR_VERSION_NUMBER);
    ck_assert_ptr_nonnull(iadsr_version_string());
    ck_assert_str_eq(iadsr_version_string(), IADSR_VERSION_STRING);
    ck_assert_ptr_nonnull(iadsr_build_info());
    ck_assert_int_gt((int)strlen(iadsr_build_info()), 0);
    ck_assert_int_gt(iadsr_format_version(), 0);
    for (int code = 0; code >= IADSR_ERR_MISMATCH; code--) {
        const char *name = iadsr_status_name(code);
        const char *text = iadsr_strerror(code);
        ck_assert_ptr_nonnull(name);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_gt((int)strlen(text), 0);
        ck_assert_msg(strncmp(name, "IADSR_", 6) == 0 &&
                          strcmp(name, "IADSR_UNKNOWN") != 0,
                      "code %d: name %s", code, name);
        for (int other = 0; other > code; other--)
            ck_assert_str_ne(name, iadsr_status_name(other));
    }
    ck_assert_str_eq(iadsr_status_name(IADSR_ERR_NUMERIC), "IADSR_ERR_NUMERIC");
    static const int unknown[] = {1, IADSR_ERR_MISMATCH - 1, -100,
                                  INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        ck_assert_str_eq(iadsr_status_name(unknown[i]), "IADSR_UNKNOWN");
        ck_assert_ptr_nonnull(iadsr_strerror(unknown[i]));
        ck_assert_int_gt((int)strlen(iadsr_strerror(unknown[i])), 0);
    }
    /* the last error: never NULL, cleared on request, kept by successes */
    iadsr_clear_error();
    ck_assert_ptr_nonnull(iadsr_last_error());
    ck_assert_str_eq(iadsr_last_error(), "");
    TU_EXPECT_ERR(iadsr_model_create(NULL, NULL), IADSR_ERR_INVALID_ARG);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", iadsr_last_error());
    ck_assert_int_eq(iadsr_version_number(), IADSR_VERSION_NUMBER);
    iadsr_model *m = tu_model(NI, 1);
    ck_assert_str_eq(iadsr_last_error(), msg);
    iadsr_model_free(m);
    iadsr_clear_error();
    ck_assert_str_eq(iadsr_last_error(), "");
}
END_TEST

START_TEST(test_params_init)
{
    /* NULL is a no-op */
    iadsr_model_params_init(NULL);
    iadsr_train_params_init(NULL);
    iadsr_ctx_params_init(NULL);
    iadsr_eval_params_init(NULL);
    iadsr_topk_params_init(NULL);
    iadsr_model_params mp;
    iadsr_train_params tp;
    iadsr_ctx_params cp;
    iadsr_eval_params ep;
    memset(&mp, 0xff, sizeof mp);
    memset(&tp, 0xff, sizeof tp);
    memset(&cp, 0xff, sizeof cp);
    memset(&ep, 0xff, sizeof ep);
    iadsr_model_params_init(&mp);
    iadsr_train_params_init(&tp);
    iadsr_ctx_params_init(&cp);
    iadsr_eval_params_init(&ep);
    ck_assert_uint_eq(mp.struct_size, sizeof mp);
    ck_assert_uint_eq(tp.struct_size, sizeof tp);
    ck_assert_uint_eq(cp.struct_size, sizeof cp);
    ck_assert_uint_eq(ep.struct_size, sizeof ep);
    ck_assert(mp.flags == 0 && mp.reserved0 == 0 && tp.flags == 0 &&
              tp.reserved0 == 0 && cp.flags == 0 && cp.reserved0 == 0 &&
              ep.flags == 0);
    iadsr_topk_params kp;
    memset(&kp, 0xff, sizeof kp);
    iadsr_topk_params_init(&kp);
    ck_assert_uint_eq(kp.struct_size, sizeof kp);
    ck_assert(kp.flags == 0 && kp.cold_item_scores == NULL &&
              kp.cold_user_vector == NULL && kp.allow_ids == NULL &&
              kp.deny_ids == NULL && kp.n_cold_item_scores == 0 &&
              kp.cold_user_vector_dim == 0 && kp.n_allow == 0 &&
              kp.n_deny == 0);
}
END_TEST

/* ---- datasets --------------------------------------------------------------- */

START_TEST(test_dataset_args)
{
    static const int32_t items[] = {1, 2, 3, 4, 5};
    static const int64_t offs[] = {0, 2, 5};
    iadsr_dataset *d = NULL;
#define DS_FAIL(call, code)                                                   \
    do {                                                                      \
        d = TU_SENTINEL(iadsr_dataset);                                       \
        TU_EXPECT_ERR(call, code);                                            \
        ck_assert_ptr_null(d);                                                \
    } while (0)
    TU_EXPECT_ERR(iadsr_dataset_create(NULL, items, offs, 2, 5, 0),
                  IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, NULL, offs, 2, 5, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, NULL, 2, 5, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, offs, 0, 5, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, offs, -1, 5, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, offs, 2, -1, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, offs, 2, 5, 2u),
            IADSR_ERR_INVALID_ARG);
    static const int64_t off1[] = {1, 2, 5}, dec[] = {0, 3, 2};
    DS_FAIL(iadsr_dataset_create(&d, items, off1, 2, 5, 0),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_create(&d, items, dec, 2, 5, 0),
            IADSR_ERR_INVALID_ARG);
    /* ids */
    static const int32_t bad[] = {0, -1, 6, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t it[5] = {1, 2, 3, 4, 5};
        it[3] = bad[i];
        DS_FAIL(iadsr_dataset_create(&d, it, offs, 2, 5, 0),
                IADSR_ERR_OUT_OF_RANGE);
        DS_FAIL(iadsr_dataset_create(&d, it, offs, 2, 5, IADSR_FLAG_BORROW),
                IADSR_ERR_OUT_OF_RANGE);
    }
    /* zero length: empty users are fine with a stated n_items ... */
    static const int64_t empty[] = {0, 0, 0};
    TU_OK(iadsr_dataset_create(&d, items, empty, 2, 5, 0));
    ck_assert_int_eq(iadsr_dataset_n_users(d), 2);
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), 0);
    int32_t n = 7;
    ck_assert_ptr_nonnull(iadsr_dataset_user_items(d, 1, &n));
    ck_assert_int_eq(n, 0);
    iadsr_dataset_free(d);
    /* ... but not with n_items = 0 ("largest id present") */
    DS_FAIL(iadsr_dataset_create(&d, items, empty, 2, 0, 0),
            IADSR_ERR_INVALID_ARG);

    /* text */
    TU_EXPECT_ERR(iadsr_dataset_parse_text(NULL, "1 2 3\n", 6, 0, NULL),
                  IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_parse_text(&d, NULL, 6, 0, NULL),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_parse_text(&d, "1 2 3\n", 6, -1, NULL),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_parse_text(&d, NULL, 0, 0, NULL), IADSR_ERR_FORMAT);
    DS_FAIL(iadsr_dataset_parse_text(&d, "1 2 3\n", 0, 0, "x"),
            IADSR_ERR_FORMAT);
    DS_FAIL(iadsr_dataset_parse_text(&d, "1 0 3\n", 6, 0, "x"),
            IADSR_ERR_OUT_OF_RANGE);
    DS_FAIL(iadsr_dataset_parse_text(&d, "1 2 9\n", 6, 5, "x"),
            IADSR_ERR_OUT_OF_RANGE);
    TU_OK(iadsr_dataset_parse_text(&d, "1 2 3\n", 6, 0, NULL));
    iadsr_dataset_free(d);
    TU_EXPECT_ERR(iadsr_dataset_load_text(NULL, "/nonexistent", 0),
                  IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_load_text(&d, NULL, 0), IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_dataset_load_text(&d, "/nonexistent/iadsr/data.txt", 0),
            IADSR_ERR_IO);
#undef DS_FAIL
}
END_TEST

START_TEST(test_dataset_accessors)
{
    handles *h = open_handles();
    const iadsr_dataset *foreign[] = {NULL, &h->zd,
                                      AS(const iadsr_dataset, h->m),
                                      AS(const iadsr_dataset, h->c),
                                      AS(const iadsr_dataset, zero_block)};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        const iadsr_dataset *d = foreign[i];
        ck_assert_int_eq(iadsr_dataset_n_users(d), 0);
        ck_assert_int_eq(iadsr_dataset_n_items(d), 0);
        ck_assert_int_eq(iadsr_dataset_n_interactions(d), 0);
        int32_t n = 99;
        ck_assert_ptr_null(iadsr_dataset_user_items(d, 0, &n));
        ck_assert_int_eq(n, 0);
        ck_assert_ptr_null(iadsr_dataset_user_items(d, 0, NULL));
        ck_assert_int_eq(iadsr_dataset_user_id(d, 0), -1);
    }
    /* out-of-range rows */
    int32_t n = 99;
    ck_assert_ptr_null(iadsr_dataset_user_items(h->d, -1, &n));
    ck_assert_int_eq(n, 0);
    n = 99;
    ck_assert_ptr_null(iadsr_dataset_user_items(h->d, 2, &n));
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(iadsr_dataset_user_items(h->d, INT64_MAX, NULL));
    ck_assert_int_eq(iadsr_dataset_user_id(h->d, -1), -1);
    ck_assert_int_eq(iadsr_dataset_user_id(h->d, 2), -1);
    ck_assert_int_eq(iadsr_dataset_user_id(h->d, 1), 1);
    const int32_t *s = iadsr_dataset_user_items(h->d, 1, &n);
    ck_assert(s && n == 7 && s[0] == 6);
    ck_assert_ptr_nonnull(iadsr_dataset_user_items(h->d, 1, NULL));
    /* free: NULL and foreign handles are ignored */
    iadsr_dataset_free(NULL);
    iadsr_dataset_free(&h->zd);
    iadsr_dataset_free(AS(iadsr_dataset, h->m));
    iadsr_dataset_free(AS(iadsr_dataset, zero_block));
    ck_assert_int_eq(iadsr_model_n_items(h->m), NI);
    close_handles(h);
}
END_TEST

/* ---- models ------------------------------------------------------------------ */

START_TEST(test_model_create_args)
{
    iadsr_model_params p;
    iadsr_model *m = NULL;
    tu_model_params(&p, NI, 1);
    TU_EXPECT_ERR(iadsr_model_create(NULL, &p), IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_create(&m, NULL), IADSR_ERR_INVALID_ARG);
    for (int i = 0; i < 20; i++) {
        tu_model_params(&p, NI, 1);
        int want = IADSR_ERR_INVALID_ARG;
        switch (i) {
        case 0: p.n_items = 0; break;
        case 1: p.n_items = -1; break;
        case 2: p.n_items = INT32_MAX; break;
        case 3: p.dim = 0; break;
        case 4: p.dim = 4097; break;
        case 5: p.max_seq_len = 0; break;
        case 6: p.n_layers = -1; break;
        case 7: p.n_layers = 17; break;
        case 8: p.n_heads = 3; break; /* does not divide 16 */
        case 9: p.n_heads = 0; break;
        case 10: p.dropout = 1.0f; break;
        case 11: p.dropout = NAN; break;
        case 12: p.dropout = -0.1f; break;
        case 13: p.activation = 3; break;
        case 14: p.backbone = 99; break;
        case 15: p.backbone = IADSR_BACKBONE_GRU4REC; p.ffn_dim = 8; break;
        case 16: p.backbone = IADSR_BACKBONE_CASER; p.caser_window = 65; break;
        case 17: p.flags = 4; want = IADSR_ERR_UNSUPPORTED; break;
        case 18: p.reserved0 = 1; break;
        default: p.struct_size = 0; break;
        }
        M_FAIL(iadsr_model_create(&m, &p), want);
    }
    struct {
        iadsr_model_params p;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    tu_model_params(&big.p, NI, 1);
    big.p.struct_size = sizeof big;
    big.extra = 1;
    M_FAIL(iadsr_model_create(&m, &big.p), IADSR_ERR_UNSUPPORTED);
    big.extra = 0;
    TU_OK(iadsr_model_create(&m, &big.p));
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_model_embeddings_args)
{
    iadsr_model_params p;
    tu_model_params(&p, NI, 1);
    const int d = 16;
    float emb[NS * 16];
    for (int i = 0; i < NS * d; i++)
        emb[i] = 0.01f * (float)((i * 37) % 101 - 50);
    iadsr_model *m = NULL;
    TU_EXPECT_ERR(iadsr_model_create_from_embeddings(NULL, &p, emb, NS, d, d),
                  IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_create_from_embeddings(&m, NULL, emb, NS, d, d),
           IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, NULL, NS, d, d),
           IADSR_ERR_INVALID_ARG);
    /* dimensions */
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NI, d, d),
           IADSR_ERR_DIM_MISMATCH);
    /* the message gives both shapes (read before anything is freed) */
    ck_assert_msg(strstr(iadsr_last_error(), "20 x 16") != NULL &&
                      strstr(iadsr_last_error(), "21 x 16") != NULL,
                  "message: '%s'", iadsr_last_error());
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS + 1, d, d),
           IADSR_ERR_DIM_MISMATCH);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, 0, d, d),
           IADSR_ERR_DIM_MISMATCH);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, -1, d, d),
           IADSR_ERR_DIM_MISMATCH);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d - 1, d),
           IADSR_ERR_DIM_MISMATCH);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, 0, d),
           IADSR_ERR_DIM_MISMATCH);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, d - 1),
           IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, 0),
           IADSR_ERR_INVALID_ARG);
    /* bad params are reported as for iadsr_model_create */
    p.n_heads = 5;
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, d),
           IADSR_ERR_INVALID_ARG);
    tu_model_params(&p, NI, 1);
    /* non-finite values: the message names the row */
    static const float nonfinite[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        float saved = emb[3 * d + 5];
        emb[3 * d + 5] = nonfinite[k];
        M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, d),
               IADSR_ERR_NUMERIC);
        ck_assert_msg(strstr(iadsr_last_error(), "row 3") != NULL,
                      "message '%s' does not name row 3", iadsr_last_error());
        emb[3 * d + 5] = saved;
    }
    emb[NI * d + d - 1] = NAN; /* last element of the last row */
    M_FAIL(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, d),
           IADSR_ERR_NUMERIC);
    emb[NI * d + d - 1] = 0.5f;
    /* row 0 (padding) is ignored, NaN or not */
    emb[0] = NAN;
    emb[d - 1] = INFINITY;
    TU_OK(iadsr_model_create_from_embeddings(&m, &p, emb, NS, d, d));
    const float *e = iadsr_model_item_embeddings(m);
    for (int c = 0; c < d; c++)
        ck_assert(e[c] == 0.0f);
    ck_assert(memcmp(e + d, emb + d, (size_t)NI * d * sizeof(float)) == 0);
    iadsr_model_free(m);
    /* NaN in the padding columns beyond dim (ld > dim) is ignored too */
    static float wide[NS * 20];
    for (int r = 0; r < NS; r++)
        for (int c = 0; c < 20; c++)
            wide[r * 20 + c] = c < d ? emb[r * d + c] : NAN;
    TU_OK(iadsr_model_create_from_embeddings(&m, &p, wide, NS, d, 20));
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_model_accessors)
{
    handles *h = open_handles();
    const iadsr_model *foreign[] = {NULL, &h->zm, AS(const iadsr_model, h->d),
                                    AS(const iadsr_model, h->c),
                                    AS(const iadsr_model, zero_block)};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        const iadsr_model *m = foreign[i];
        ck_assert_int_eq(iadsr_model_backbone(m), 0);
        ck_assert_int_eq(iadsr_model_n_items(m), 0);
        ck_assert_int_eq(iadsr_model_dim(m), 0);
        ck_assert_int_eq(iadsr_model_max_seq_len(m), 0);
        ck_assert_int_eq(iadsr_model_n_params(m), 0);
        ck_assert_uint_eq(iadsr_model_memory_usage(m), 0);
        ck_assert_ptr_null(iadsr_model_item_embeddings(m));
        iadsr_model_params p;
        iadsr_model_params_init(&p);
        TU_EXPECT_ERR(iadsr_model_get_params(m, &p), IADSR_ERR_INVALID_ARG);
    }
    /* the real one */
    ck_assert_int_eq(iadsr_model_backbone(h->m), IADSR_BACKBONE_SASREC);
    ck_assert_int_eq(iadsr_model_n_items(h->m), NI);
    ck_assert_int_eq(iadsr_model_dim(h->m), 16);
    ck_assert_int_eq(iadsr_model_max_seq_len(h->m), 10);
    ck_assert_int_gt(iadsr_model_n_params(h->m), (int64_t)NS * 16);
    ck_assert_uint_gt(iadsr_model_memory_usage(h->m),
                      (size_t)iadsr_model_n_params(h->m) * sizeof(float) - 1);
    /* get_params */
    TU_EXPECT_ERR(iadsr_model_get_params(h->m, NULL), IADSR_ERR_INVALID_ARG);
    iadsr_model_params p;
    memset(&p, 0, sizeof p);
    TU_EXPECT_ERR(iadsr_model_get_params(h->m, &p), IADSR_ERR_INVALID_ARG);
    p.struct_size = 8;
    TU_EXPECT_ERR(iadsr_model_get_params(h->m, &p), IADSR_ERR_INVALID_ARG);
    iadsr_model_params_init(&p);
    TU_OK(iadsr_model_get_params(h->m, &p));
    ck_assert_int_eq(p.n_items, NI);
    ck_assert_int_eq(p.ffn_dim, 64); /* normalised: 4 * dim */
    ck_assert_int_eq(p.activation, IADSR_ACT_GELU);
    /* free: NULL and foreign handles are ignored */
    iadsr_model_free(NULL);
    iadsr_model_free(&h->zm);
    iadsr_model_free(AS(iadsr_model, h->d));
    iadsr_model_free(AS(iadsr_model, h->c));
    iadsr_model_free(AS(iadsr_model, zero_block));
    ck_assert_int_eq(iadsr_dataset_n_users(h->d), 2);
    close_handles(h);
}
END_TEST

START_TEST(test_checkpoint_null_args)
{
    handles *h = open_handles();
    iadsr_model *m = NULL;
    TU_EXPECT_ERR(iadsr_model_save(NULL, "/tmp/x.iadsr", IADSR_SAVE_NO_FSYNC),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_model_save(&h->zm, "/tmp/x.iadsr", 0),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_model_save(h->m, NULL, 0), IADSR_ERR_INVALID_ARG);
    size_t need = 0;
    TU_EXPECT_ERR(iadsr_model_save_to_buffer(NULL, NULL, 0, &need),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_model_save_to_buffer(AS(iadsr_model, h->d), NULL, 0,
                                             &need),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_model_save_to_buffer(h->m, NULL, 16, &need),
                  IADSR_ERR_INVALID_ARG);
    TU_OK(iadsr_model_save_to_buffer(h->m, NULL, 0, NULL)); /* size query */
    TU_OK(iadsr_model_save_to_buffer(h->m, NULL, 0, &need));
    ck_assert_uint_gt(need, 0);
    TU_EXPECT_ERR(iadsr_model_load(NULL, "/tmp/x.iadsr", 0),
                  IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_load(&m, NULL, 0), IADSR_ERR_INVALID_ARG);
    unsigned char buf[16] = {0};
    TU_EXPECT_ERR(iadsr_model_load_from_buffer(NULL, buf, sizeof buf, 0),
                  IADSR_ERR_INVALID_ARG);
    M_FAIL(iadsr_model_load_from_buffer(&m, NULL, 16, 0),
           IADSR_ERR_INVALID_ARG);
    close_handles(h);
}
END_TEST

/* ---- trainers ------------------------------------------------------------------ */

START_TEST(test_trainer_args)
{
    handles *h = open_handles();
    iadsr_trainer *t = NULL;
    TU_EXPECT_ERR(iadsr_trainer_create(NULL, h->m, h->d, NULL),
                  IADSR_ERR_INVALID_ARG);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, NULL, h->d, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, h->m, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, &h->zm, h->d, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, h->m, &h->zd, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    t = TU_SENTINEL(iadsr_trainer);
    TU_EXPECT_ERR(iadsr_trainer_create(&t, AS(const iadsr_model, h->t), h->d,
                                       NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);

    iadsr_trainer *foreign[] = {NULL, AS(iadsr_trainer, zero_block),
                                AS(iadsr_trainer, h->m),
                                AS(iadsr_trainer, h->c),
                                AS(iadsr_trainer, h->d)};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        iadsr_trainer *f = foreign[i];
        double loss = 5.0;
        TU_EXPECT_ERR(iadsr_trainer_run_epoch(f, &loss),
                      IADSR_ERR_INVALID_ARG);
        ck_assert(loss == 5.0);
        TU_EXPECT_ERR(iadsr_trainer_fit(f, NULL, NULL), IADSR_ERR_INVALID_ARG);
        iadsr_model *m = TU_SENTINEL(iadsr_model);
        TU_EXPECT_ERR(iadsr_trainer_snapshot(f, &m), IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(m);
        ck_assert_int_eq(iadsr_trainer_epochs_done(f), 0);
        iadsr_trainer_free(f); /* ignored */
    }
    TU_EXPECT_ERR(iadsr_trainer_snapshot(h->t, NULL), IADSR_ERR_INVALID_ARG);
    /* the real trainer still works after all that */
    TU_OK(iadsr_trainer_run_epoch(h->t, NULL));
    ck_assert_int_eq(iadsr_trainer_epochs_done(h->t), 1);
    ck_assert_int_eq(iadsr_model_n_items(h->m), NI);
    close_handles(h);
}
END_TEST

/* ---- contexts ------------------------------------------------------------------ */

START_TEST(test_ctx_create_args)
{
    handles *h = open_handles();
    iadsr_ctx *c = NULL;
    TU_EXPECT_ERR(iadsr_ctx_create(NULL, h->m, NULL), IADSR_ERR_INVALID_ARG);
    const iadsr_model *foreign[] = {NULL, &h->zm, AS(const iadsr_model, h->d),
                                    AS(const iadsr_model, h->c),
                                    AS(const iadsr_model, h->t),
                                    AS(const iadsr_model, zero_block)};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        c = TU_SENTINEL(iadsr_ctx);
        TU_EXPECT_ERR(iadsr_ctx_create(&c, foreign[i], NULL),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(c);
    }
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    cp.max_batch = 0;
    c = TU_SENTINEL(iadsr_ctx);
    TU_EXPECT_ERR(iadsr_ctx_create(&c, h->m, &cp), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(c);
    /* accessors and free */
    const iadsr_ctx *fc[] = {NULL, &h->zc, AS(const iadsr_ctx, h->m),
                             AS(const iadsr_ctx, h->d),
                             AS(const iadsr_ctx, zero_block)};
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++)
        ck_assert_ptr_null(iadsr_ctx_model(fc[i]));
    ck_assert_ptr_eq(iadsr_ctx_model(h->c), h->m);
    iadsr_ctx_free(NULL);
    iadsr_ctx_free(&h->zc);
    iadsr_ctx_free(AS(iadsr_ctx, h->m));
    iadsr_ctx_free(AS(iadsr_ctx, h->d));
    iadsr_ctx_free(AS(iadsr_ctx, zero_block));
    ck_assert_int_eq(iadsr_model_n_items(h->m), NI);
    close_handles(h);
}
END_TEST

START_TEST(test_ctx_scoring_args)
{
    handles *h = open_handles();
    iadsr_ctx *c = h->c;
    int32_t s[3] = {1, 2, 3};
    int64_t offs[3] = {0, 1, 3};
    float sc[2 * NS], vals[2 * 5];
    int32_t ids[2 * 5];
    /* NULL and foreign contexts */
    iadsr_ctx *fc[] = {NULL, &h->zc, AS(iadsr_ctx, h->m), AS(iadsr_ctx, h->d),
                       AS(iadsr_ctx, h->t), AS(iadsr_ctx, zero_block)};
    for (size_t i = 0; i < sizeof fc / sizeof fc[0]; i++) {
        TU_EXPECT_ERR(iadsr_ctx_score(fc[i], s, 3, sc, NS),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_score_batch(fc[i], s, offs, 2, sc, 2 * NS),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_topk(fc[i], s, 3, 5, 0, ids, vals),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_topk_batch(fc[i], s, offs, 2, 5, 0, ids, vals),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_topk_v2(fc[i], s, 3, 5, NULL, ids, vals, NULL,
                                        NULL),
                      IADSR_ERR_INVALID_ARG);
        TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(fc[i], s, offs, 2, 5, NULL, ids,
                                              vals, 10, NULL, NULL),
                      IADSR_ERR_INVALID_ARG);
    }
    /* NULL buffers */
    TU_EXPECT_ERR(iadsr_ctx_score(c, NULL, 3, sc, NS), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, NULL, NS), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, NULL, offs, 2, sc, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, NULL, 2, sc, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 2, NULL, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, NULL, 3, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5, 0, NULL, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, NULL, offs, 2, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, NULL, 2, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 2, 5, 0, NULL, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, NULL, 3, 5, NULL, ids, vals, NULL,
                                    NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, NULL, NULL, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, NULL, offs, 2, 5, NULL, ids,
                                          vals, 10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, NULL, 2, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 5, NULL, NULL, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    /* zero lengths */
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 0, sc, NS), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 0, sc, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, -1, sc, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 0, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 0, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 0, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, offs, 2, 0, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    static const int64_t empty_user[3] = {0, 0, 3};
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, empty_user, 2, sc, 2 * NS),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, s, empty_user, 2, 5, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    /* v2: an empty history needs a cold-user fallback; negative lengths */
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 0, 5, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, -1, 5, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 0, NULL, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, empty_user, 2, 5, NULL, ids,
                                          vals, 10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 0, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, -1, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    /* out-of-range ids */
    int32_t bad[3] = {1, NI + 1, 3};
    TU_EXPECT_ERR(iadsr_ctx_score(c, bad, 3, sc, NS), IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, bad, offs, 2, sc, 2 * NS),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, bad, 3, 5, 0, ids, vals),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch(c, bad, offs, 2, 5, 0, ids, vals),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, bad, 3, 5, NULL, ids, vals, NULL,
                                    NULL),
                  IADSR_ERR_OUT_OF_RANGE);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, bad, offs, 2, 5, NULL, ids, vals,
                                          10, NULL, NULL),
                  IADSR_ERR_OUT_OF_RANGE);
    iadsr_topk_params kp;
    iadsr_topk_params_init(&kp);
    kp.allow_ids = bad;
    kp.n_allow = 3;
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, &kp, ids, vals, NULL, NULL),
                  IADSR_ERR_OUT_OF_RANGE);
    kp.struct_size = 0;
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, &kp, ids, vals, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    /* capacities and k */
    TU_EXPECT_ERR(iadsr_ctx_score(c, s, 3, sc, NI), IADSR_ERR_BUFFER_TOO_SMALL);
    TU_EXPECT_ERR(iadsr_ctx_score_batch(c, s, offs, 2, sc, 2 * NS - 1),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, NI + 1, 0, ids, vals),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_ctx_topk(c, s, 3, 5, 4u, ids, vals),
                  IADSR_ERR_UNSUPPORTED);
    TU_EXPECT_ERR(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 5, NULL, ids, vals,
                                          9, NULL, NULL),
                  IADSR_ERR_BUFFER_TOO_SMALL);
    iadsr_topk_params_init(&kp);
    kp.flags = 4u;
    TU_EXPECT_ERR(iadsr_ctx_topk_v2(c, s, 3, 5, &kp, ids, vals, NULL, NULL),
                  IADSR_ERR_UNSUPPORTED);
    /* and the context still works */
    TU_OK(iadsr_ctx_score(c, s, 3, sc, NS));
    TU_OK(iadsr_ctx_topk_batch(c, s, offs, 2, 5, 0, ids, NULL));
    TU_OK(iadsr_ctx_topk_v2(c, s, 3, 5, NULL, ids, vals, NULL, NULL));
    TU_OK(iadsr_ctx_topk_batch_v2(c, s, offs, 2, 5, NULL, ids, NULL, 10, NULL,
                                  NULL));
    close_handles(h);
}
END_TEST

/* ---- evaluation ------------------------------------------------------------- */

START_TEST(test_evaluate_args)
{
    handles *h = open_handles();
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_EXPECT_ERR(iadsr_evaluate(NULL, h->d, NULL, &mt), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(h->m, NULL, NULL, &mt), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(h->m, h->d, NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(&h->zm, h->d, NULL, &mt),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(h->m, &h->zd, NULL, &mt),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(AS(const iadsr_model, h->c), h->d, NULL, &mt),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_evaluate(h->m, AS(const iadsr_dataset, h->t), NULL,
                                 &mt),
                  IADSR_ERR_INVALID_ARG);
    mt.struct_size = 0;
    TU_EXPECT_ERR(iadsr_evaluate(h->m, h->d, NULL, &mt), IADSR_ERR_INVALID_ARG);
    mt.struct_size = sizeof mt;
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.n_threads = 0;
    TU_EXPECT_ERR(iadsr_evaluate(h->m, h->d, &ep, &mt), IADSR_ERR_INVALID_ARG);
    /* dimension mismatch: a model with fewer items than the dataset */
    iadsr_model *small = tu_model(NI - 10, 1);
    TU_EXPECT_ERR(iadsr_evaluate(small, h->d, NULL, &mt),
                  IADSR_ERR_DIM_MISMATCH);
    iadsr_model_free(small);
    TU_OK(iadsr_evaluate(h->m, h->d, NULL, &mt));
    ck_assert_int_eq(mt.n_users, 2);
    close_handles(h);
}
END_TEST

Suite *suite_api_args(void)
{
    Suite *s = suite_create("api_args");
    TCase *tc = tcase_create("general");
    tcase_add_test(tc, test_version_status);
    tcase_add_test(tc, test_params_init);
    suite_add_tcase(s, tc);

    tc = tcase_create("dataset");
    tcase_add_test(tc, test_dataset_args);
    tcase_add_test(tc, test_dataset_accessors);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_add_test(tc, test_model_create_args);
    tcase_add_test(tc, test_model_embeddings_args);
    tcase_add_test(tc, test_model_accessors);
    tcase_add_test(tc, test_checkpoint_null_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("trainer_ctx_eval");
    tcase_add_test(tc, test_trainer_args);
    tcase_add_test(tc, test_ctx_create_args);
    tcase_add_test(tc, test_ctx_scoring_args);
    tcase_add_test(tc, test_evaluate_args);
    suite_add_tcase(s, tc);
    return s;
}
