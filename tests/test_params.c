/* Tests: params structs (defaults, size-aware overlay, bounds, layout).
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iadsr.h"
#include "iadsr.h"
#include "common/params.h"
#include "backbone/model.h"
#include "common/params.h"

Suite *suite_params(void);

/* ---- layout (duplicates the _Static_asserts of params.c at run time) ------ */

START_TEST(test_layout)
{
    ck_assert_uint_eq(sizeof(iadsr_model_params), 72);
    ck_assert_uint_eq(offsetof(iadsr_model_params, struct_size), 0);
    ck_assert_uint_eq(offsetof(iadsr_model_params, backbone), 4);
    ck_assert_uint_eq(offsetof(iadsr_model_params, n_items), 8);
    ck_assert_uint_eq(offsetof(iadsr_model_params, dim), 12);
    ck_assert_uint_eq(offsetof(iadsr_model_params, max_seq_len), 16);
    ck_assert_uint_eq(offsetof(iadsr_model_params, n_layers), 20);
    ck_assert_uint_eq(offsetof(iadsr_model_params, n_heads), 24);
    ck_assert_uint_eq(offsetof(iadsr_model_params, ffn_dim), 28);
    ck_assert_uint_eq(offsetof(iadsr_model_params, activation), 32);
    ck_assert_uint_eq(offsetof(iadsr_model_params, dropout), 36);
    ck_assert_uint_eq(offsetof(iadsr_model_params, flags), 40);
    ck_assert_uint_eq(offsetof(iadsr_model_params, reserved0), 44);
    ck_assert_uint_eq(offsetof(iadsr_model_params, seed), 48);
    ck_assert_uint_eq(offsetof(iadsr_model_params, caser_window), 56);
    ck_assert_uint_eq(offsetof(iadsr_model_params, caser_h_filters), 60);
    ck_assert_uint_eq(offsetof(iadsr_model_params, caser_v_filters), 64);
    ck_assert_uint_eq(offsetof(iadsr_model_params, reserved1), 68);

    ck_assert_uint_eq(sizeof(iadsr_train_params), 80 + 2 * sizeof(void *));
    ck_assert_uint_eq(offsetof(iadsr_train_params, split), 4);
    ck_assert_uint_eq(offsetof(iadsr_train_params, max_epochs), 8);
    ck_assert_uint_eq(offsetof(iadsr_train_params, batch_size), 12);
    ck_assert_uint_eq(offsetof(iadsr_train_params, patience), 16);
    ck_assert_uint_eq(offsetof(iadsr_train_params, eval_every), 20);
    ck_assert_uint_eq(offsetof(iadsr_train_params, n_threads), 24);
    ck_assert_uint_eq(offsetof(iadsr_train_params, learning_rate), 28);
    ck_assert_uint_eq(offsetof(iadsr_train_params, adam_beta1), 32);
    ck_assert_uint_eq(offsetof(iadsr_train_params, adam_beta2), 36);
    ck_assert_uint_eq(offsetof(iadsr_train_params, adam_eps), 40);
    ck_assert_uint_eq(offsetof(iadsr_train_params, weight_decay), 44);
    ck_assert_uint_eq(offsetof(iadsr_train_params, flags), 48);
    ck_assert_uint_eq(offsetof(iadsr_train_params, reserved0), 52);
    ck_assert_uint_eq(offsetof(iadsr_train_params, seed), 56);
    ck_assert_uint_eq(offsetof(iadsr_train_params, label_smoothing), 64);
    ck_assert_uint_eq(offsetof(iadsr_train_params, history_penalty), 68);
    /* since 0.4.0 */
    ck_assert_uint_eq(offsetof(iadsr_train_params, allreduce), 72);
    ck_assert_uint_eq(offsetof(iadsr_train_params, allreduce_user),
                      72 + sizeof(void *));
    ck_assert_uint_eq(offsetof(iadsr_train_params, rank),
                      72 + 2 * sizeof(void *));
    ck_assert_uint_eq(offsetof(iadsr_train_params, n_ranks),
                      76 + 2 * sizeof(void *));

    ck_assert_uint_eq(sizeof(iadsr_ctx_params), 16);
    ck_assert_uint_eq(offsetof(iadsr_ctx_params, max_batch), 4);
    ck_assert_uint_eq(offsetof(iadsr_ctx_params, flags), 8);
    ck_assert_uint_eq(offsetof(iadsr_ctx_params, reserved0), 12);

    ck_assert_uint_eq(sizeof(iadsr_eval_params), 16);
    ck_assert_uint_eq(offsetof(iadsr_eval_params, target), 4);
    ck_assert_uint_eq(offsetof(iadsr_eval_params, n_threads), 8);
    ck_assert_uint_eq(offsetof(iadsr_eval_params, flags), 12);

    ck_assert_uint_eq(sizeof(iadsr_metrics), 64);
    ck_assert_uint_eq(offsetof(iadsr_metrics, reserved0), 4);
    ck_assert_uint_eq(offsetof(iadsr_metrics, n_users), 8);
    ck_assert_uint_eq(offsetof(iadsr_metrics, hr5), 16);
    ck_assert_uint_eq(offsetof(iadsr_metrics, hr10), 24);
    ck_assert_uint_eq(offsetof(iadsr_metrics, hr20), 32);
    ck_assert_uint_eq(offsetof(iadsr_metrics, ndcg5), 40);
    ck_assert_uint_eq(offsetof(iadsr_metrics, ndcg10), 48);
    ck_assert_uint_eq(offsetof(iadsr_metrics, ndcg20), 56);

    ck_assert_uint_eq(sizeof(iadsr_progress_info), 104); /* 64 in 0.1 */
    ck_assert_uint_eq(offsetof(iadsr_progress_info, epoch), 4);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, max_epochs), 8);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, best_epoch), 12);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, loss), 16);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, valid_hr10), 24);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, valid_ndcg10), 32);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, best_ndcg10), 40);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, epoch_seconds), 48);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, elapsed_seconds), 56);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, loss_next), 64);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, loss_aux), 72);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, loss_detect), 80);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, learning_rate), 88);
    ck_assert_uint_eq(offsetof(iadsr_progress_info, aux_scale), 96);

    ck_assert_uint_eq(sizeof(iadsr_denoise_params), 48);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, flags), 4);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, lambda_align), 8);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, lambda_recon), 12);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, tau_align), 16);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, tau_gumbel), 20);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, theta), 24);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, max_drop), 28);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, protect_last), 32);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, reserved0), 36);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, seed), 40);

    ck_assert_uint_eq(sizeof(iadsr_pipeline_result), 120);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, iadsr_epochs), 4);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, retrain_epochs), 8);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, reserved0), 12);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, n_items_in), 16);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, n_items_dropped), 24);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, n_users_touched), 32);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, iadsr_seconds), 40);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, retrain_seconds), 48);
    ck_assert_uint_eq(offsetof(iadsr_pipeline_result, test), 56);
}
END_TEST

/* ---- defaults ------------------------------------------------------------------ */

START_TEST(test_defaults)
{
    iadsr_model_params m;
    iadsr_train_params t;
    iadsr_ctx_params c;
    iadsr_eval_params e;
    memset(&m, 0xab, sizeof m);
    memset(&t, 0xab, sizeof t);
    memset(&c, 0xab, sizeof c);
    memset(&e, 0xab, sizeof e);
    iadsr_model_params_init(&m);
    iadsr_train_params_init(&t);
    iadsr_ctx_params_init(&c);
    iadsr_eval_params_init(&e);
    iadsr_model_params_init(NULL);
    iadsr_train_params_init(NULL);
    iadsr_ctx_params_init(NULL);
    iadsr_eval_params_init(NULL);

    ck_assert_uint_eq(m.struct_size, sizeof m);
    ck_assert_int_eq(m.backbone, IADSR_BACKBONE_SASREC);
    ck_assert_int_eq(m.n_items, 0);
    ck_assert_int_eq(m.dim, 64);
    ck_assert_int_eq(m.max_seq_len, 50);
    ck_assert_int_eq(m.n_layers, 0); /* the backbone's default */
    ck_assert_int_eq(m.n_heads, 2);
    ck_assert_int_eq(m.ffn_dim, 0);
    ck_assert_int_eq(m.activation, IADSR_ACT_GELU);
    ck_assert(m.dropout == 0.5f);
    ck_assert_uint_eq(m.flags, 0);
    ck_assert_uint_eq(m.reserved0, 0);
    ck_assert_uint_eq(m.seed, 42);
    ck_assert_int_eq(m.caser_window, 0);
    ck_assert_int_eq(m.caser_h_filters, 0);
    ck_assert_int_eq(m.caser_v_filters, 0);
    ck_assert_uint_eq(m.reserved1, 0);

    ck_assert_uint_eq(t.struct_size, sizeof t);
    ck_assert_int_eq(t.split, IADSR_SPLIT_LEAVE_ONE_OUT);
    ck_assert_int_eq(t.max_epochs, 200);
    ck_assert_int_eq(t.batch_size, 256);
    ck_assert_int_eq(t.patience, 10);
    ck_assert_int_eq(t.eval_every, 1);
    ck_assert_int_eq(t.n_threads, 1);
    ck_assert(t.learning_rate == 1e-3f);
    ck_assert(t.adam_beta1 == 0.9f);
    ck_assert(t.adam_beta2 == 0.999f);
    ck_assert(t.adam_eps == 1e-8f);
    ck_assert(t.weight_decay == 0.0f);
    ck_assert_uint_eq(t.flags, 0);
    ck_assert_uint_eq(t.reserved0, 0);
    ck_assert_uint_eq(t.seed, 1);
    ck_assert(t.label_smoothing == 0.0f);
    ck_assert(t.history_penalty == 0.0f);
    ck_assert(t.allreduce == NULL);
    ck_assert(t.allreduce_user == NULL);
    ck_assert_int_eq(t.rank, 0);
    ck_assert_int_eq(t.n_ranks, 1);

    ck_assert_uint_eq(c.struct_size, sizeof c);
    ck_assert_int_eq(c.max_batch, 64);
    ck_assert_uint_eq(c.flags, 0);
    ck_assert_uint_eq(c.reserved0, 0);

    ck_assert_uint_eq(e.struct_size, sizeof e);
    ck_assert_int_eq(e.target, IADSR_EVAL_TEST);
    ck_assert_int_eq(e.n_threads, 1);
    ck_assert_uint_eq(e.flags, 0);

    /* the defaults pass validation (model needs n_items) */
    iadsr_train_params t2;
    iadsr_ctx_params c2;
    iadsr_eval_params e2;
    iadsr_model_params m2;
    ck_assert_int_eq(iadsr__train_params_get(&t2, &t), IADSR_OK);
    ck_assert_int_eq(memcmp(&t2, &t, sizeof t), 0);
    ck_assert_int_eq(iadsr__train_params_get(&t2, NULL), IADSR_OK);
    ck_assert_int_eq(memcmp(&t2, &t, sizeof t), 0);
    ck_assert_int_eq(iadsr__ctx_params_get(&c2, NULL), IADSR_OK);
    ck_assert_int_eq(memcmp(&c2, &c, sizeof c), 0);
    ck_assert_int_eq(iadsr__eval_params_get(&e2, NULL), IADSR_OK);
    ck_assert_int_eq(memcmp(&e2, &e, sizeof e), 0);
    ck_assert_int_eq(iadsr__model_params_get(&m2, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "n_items"));
    m.n_items = 100;
    ck_assert_int_eq(iadsr__model_params_get(&m2, &m), IADSR_OK);
    ck_assert_int_eq(m2.ffn_dim, 256);
    ck_assert_int_eq(m2.n_items, 100);
}
END_TEST

/* ---- generic overlay ---------------------------------------------------------- */

/* A "v2" struct: a v1 caller knows struct_size, a, b only. */
typedef struct test_v2 {
    uint32_t struct_size;
    int32_t a;
    int32_t b;
    int32_t c_new;
} test_v2;

static const test_v2 v2_defaults = {sizeof(test_v2), 1, 2, 3};
#define V1_SIZE offsetof(test_v2, c_new)

START_TEST(test_overlay_sizes)
{
    test_v2 dst;
    unsigned char user[64];

    /* NULL user: defaults */
    memset(&dst, 0x55, sizeof dst);
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, NULL, "test"),
                     IADSR_OK);
    ck_assert_int_eq(memcmp(&dst, &v2_defaults, sizeof dst), 0);

    /* older (smaller) caller: its fields, defaults for the tail */
    test_v2 v1 = {(uint32_t)V1_SIZE, 10, 20, 99 /* not part of v1 */};
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, &v1, "test"),
                     IADSR_OK);
    ck_assert_uint_eq(dst.struct_size, sizeof dst);
    ck_assert_int_eq(dst.a, 10);
    ck_assert_int_eq(dst.b, 20);
    ck_assert_int_eq(dst.c_new, 3);

    /* same size */
    test_v2 same = {sizeof(test_v2), 10, 20, 30};
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, &same, "test"),
                     IADSR_OK);
    ck_assert_int_eq(dst.c_new, 30);

    /* too small */
    test_v2 tiny = {(uint32_t)V1_SIZE - 4, 10, 20, 30};
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, &tiny, "test"),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "test"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "struct_size 8"));
    tiny.struct_size = 0;
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, &tiny, "test"),
                     IADSR_ERR_INVALID_ARG);

    /* newer (larger) caller with zero tail: accepted */
    memset(user, 0, sizeof user);
    memcpy(user, &same, sizeof same);
    uint32_t big = 40;
    memcpy(user, &big, sizeof big);
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, user, "test"),
                     IADSR_OK);
    ck_assert_uint_eq(dst.struct_size, sizeof dst);
    ck_assert_int_eq(dst.c_new, 30);

    /* non-zero byte in the unknown tail: unsupported */
    user[39] = 1;
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, user, "test"),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "byte 39"));
    /* a non-zero byte beyond struct_size is not looked at */
    big = 39;
    memcpy(user, &big, sizeof big);
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, user, "test"),
                     IADSR_OK);

    /* absurd struct_size (uninitialised struct) */
    big = 0xabababab;
    memcpy(user, &big, sizeof big);
    ck_assert_int_eq(iadsr__params_overlay(&dst, &v2_defaults, sizeof dst,
                                           V1_SIZE, user, "test"),
                     IADSR_ERR_INVALID_ARG);
}
END_TEST

/* ---- output structs ------------------------------------------------------- */

/* iadsr__output_copy() with the struct of a later release (test_v2, 16
 * bytes) and callers built against the older (V1_SIZE, 12 bytes) and a
 * newer (24 bytes) header, inside canary-filled buffers. */
START_TEST(test_output_copy_sizes)
{
    static const test_v2 lib = {sizeof(test_v2), 10, 20, 30};
    union {
        test_v2 v;
        unsigned char b[64];
    } u, keep;
    const unsigned char canary = 0xc3;
    uint32_t size;

    /* the older caller after the struct grew: its prefix only */
    memset(u.b, canary, sizeof u.b);
    size = (uint32_t)V1_SIZE;
    memcpy(u.b, &size, sizeof size);
    ck_assert_int_eq(iadsr__output_copy(&u, &lib, sizeof lib, V1_SIZE, "t: out"),
                     IADSR_OK);
    ck_assert_uint_eq(u.v.struct_size, V1_SIZE); /* the caller's value */
    ck_assert_int_eq(u.v.a, 10);
    ck_assert_int_eq(u.v.b, 20);
    for (size_t i = V1_SIZE; i < sizeof u.b; i++)
        ck_assert_msg(u.b[i] == canary, "byte %zu past struct_size written", i);

    /* the same size as the library */
    memset(u.b, canary, sizeof u.b);
    size = sizeof(test_v2);
    memcpy(u.b, &size, sizeof size);
    ck_assert_int_eq(iadsr__output_copy(&u, &lib, sizeof lib, V1_SIZE, "t: out"),
                     IADSR_OK);
    ck_assert_int_eq(memcmp(&u.v, &lib, sizeof lib), 0);
    for (size_t i = sizeof(test_v2); i < sizeof u.b; i++)
        ck_assert_uint_eq(u.b[i], canary);

    /* a newer, larger caller: the known part, its tail untouched, its
     * struct_size kept; no upper bound (nothing beyond it is read) */
    static const uint32_t larger[] = {24, 4096, 0xffffffffu};
    for (size_t k = 0; k < sizeof larger / sizeof larger[0]; k++) {
        memset(u.b, canary, sizeof u.b);
        memcpy(u.b, &larger[k], sizeof larger[k]);
        ck_assert_int_eq(iadsr__output_copy(&u, &lib, sizeof lib, V1_SIZE,
                                            "t: out"),
                         IADSR_OK);
        ck_assert_uint_eq(u.v.struct_size, larger[k]);
        ck_assert_int_eq(u.v.c_new, 30);
        for (size_t i = sizeof(test_v2); i < sizeof u.b; i++)
            ck_assert_uint_eq(u.b[i], canary);
    }

    /* below the oldest size: refused, nothing written, a message */
    static const uint32_t small[] = {0, 4, V1_SIZE - 1};
    for (size_t k = 0; k < sizeof small / sizeof small[0]; k++) {
        memset(u.b, canary, sizeof u.b);
        memcpy(u.b, &small[k], sizeof small[k]);
        keep = u;
        iadsr_clear_error();
        ck_assert_int_eq(iadsr__output_copy(&u, &lib, sizeof lib, V1_SIZE,
                                            "t: out"),
                         IADSR_ERR_INVALID_ARG);
        ck_assert_int_eq(memcmp(u.b, keep.b, sizeof u.b), 0);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "t: out"));
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "struct_size"));
    }

    /* validation only (lib_value NULL): checks, writes nothing */
    memset(u.b, canary, sizeof u.b);
    size = (uint32_t)V1_SIZE;
    memcpy(u.b, &size, sizeof size);
    keep = u;
    ck_assert_int_eq(iadsr__output_copy(&u, NULL, sizeof lib, V1_SIZE, "t: out"),
                     IADSR_OK);
    ck_assert_int_eq(memcmp(u.b, keep.b, sizeof u.b), 0);
    size = 8;
    memcpy(u.b, &size, sizeof size);
    ck_assert_int_eq(iadsr__output_copy(&u, NULL, sizeof lib, V1_SIZE, "t: out"),
                     IADSR_ERR_INVALID_ARG);

    /* NULL output, and a bad internal call */
    iadsr_clear_error();
    ck_assert_int_eq(iadsr__output_copy(NULL, &lib, sizeof lib, V1_SIZE,
                                        "t: out"),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "t: out is NULL"));
    ck_assert_int_eq(iadsr__output_copy(&u, &lib, sizeof lib, sizeof lib + 4,
                                        "t: out"),
                     IADSR_ERR_GENERIC);
}
END_TEST

START_TEST(test_overlay_public_structs)
{
    /* a larger train struct with a zero tail, as a newer header would give */
    unsigned char buf[sizeof(iadsr_train_params) + 16];
    iadsr_train_params t, got;
    memset(buf, 0, sizeof buf);
    iadsr_train_params_init(&t);
    t.batch_size = 32;
    t.struct_size = (uint32_t)sizeof buf;
    memcpy(buf, &t, sizeof t);
    ck_assert_int_eq(iadsr__train_params_get(&got, (void *)buf), IADSR_OK);
    ck_assert_int_eq(got.batch_size, 32);
    ck_assert_uint_eq(got.struct_size, sizeof got);
    buf[sizeof t + 3] = 7;
    ck_assert_int_eq(iadsr__train_params_get(&got, (void *)buf),
                     IADSR_ERR_UNSUPPORTED);

    /* the 0.1 layout (64 bytes, no label_smoothing / history_penalty):
     * accepted, and the fields it lacks take their defaults whatever the
     * bytes after it hold */
    iadsr_train_params_init(&t);
    t.struct_size = 64;
    t.batch_size = 48;
    t.label_smoothing = 0.5f;
    t.history_penalty = -3.0f; /* beyond the caller's struct: not read */
    ck_assert_int_eq(iadsr__train_params_get(&got, &t), IADSR_OK);
    ck_assert_int_eq(got.batch_size, 48);
    ck_assert(got.label_smoothing == 0.0f);
    ck_assert(got.history_penalty == 0.0f);

    /* smaller than the first published size: invalid */
    iadsr_train_params_init(&t);
    t.struct_size = 64 - 8;
    ck_assert_int_eq(iadsr__train_params_get(&got, &t), IADSR_ERR_INVALID_ARG);
    iadsr_ctx_params c;
    iadsr_ctx_params_init(&c);
    c.struct_size = 4;
    iadsr_ctx_params cg;
    ck_assert_int_eq(iadsr__ctx_params_get(&cg, &c), IADSR_ERR_INVALID_ARG);
    iadsr_eval_params e, eg;
    iadsr_eval_params_init(&e);
    e.struct_size = 0;
    ck_assert_int_eq(iadsr__eval_params_get(&eg, &e), IADSR_ERR_INVALID_ARG);
    iadsr_model_params m, mg;
    iadsr_model_params_init(&m);
    m.n_items = 10;
    m.struct_size = 48;
    ck_assert_int_eq(iadsr__model_params_get(&mg, &m), IADSR_ERR_INVALID_ARG);
}
END_TEST

/* ---- bounds -------------------------------------------------------------------- */

enum { F_I32, F_U32, F_F32 };

typedef struct bound_case {
    const char *field; /* also expected in the message */
    size_t off;
    int kind;
    double value;
    int expect;
} bound_case;

static void set_field(void *s, const bound_case *bc)
{
    unsigned char *p = (unsigned char *)s + bc->off;
    if (bc->kind == F_I32) {
        int32_t v = (int32_t)bc->value;
        memcpy(p, &v, sizeof v);
    } else if (bc->kind == F_U32) {
        uint32_t v = (uint32_t)bc->value;
        memcpy(p, &v, sizeof v);
    } else {
        float v = (float)bc->value;
        memcpy(p, &v, sizeof v);
    }
}

#define TP(f) #f, offsetof(iadsr_train_params, f)
static const bound_case train_cases[] = {
    {TP(split), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {TP(split), F_I32, 3, IADSR_ERR_INVALID_ARG},
    {TP(split), F_I32, 2, IADSR_OK},
    {TP(max_epochs), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {TP(max_epochs), F_I32, 100001, IADSR_ERR_INVALID_ARG},
    {TP(max_epochs), F_I32, 100000, IADSR_OK},
    {TP(batch_size), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {TP(batch_size), F_I32, 65537, IADSR_ERR_INVALID_ARG},
    {TP(batch_size), F_I32, 65536, IADSR_OK},
    {TP(patience), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {TP(patience), F_I32, 0, IADSR_OK},
    {TP(eval_every), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {TP(n_threads), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {TP(n_threads), F_I32, 257, IADSR_ERR_INVALID_ARG},
    {TP(n_threads), F_I32, 256, IADSR_OK},
    {TP(learning_rate), F_F32, 0.0, IADSR_ERR_INVALID_ARG},
    {TP(learning_rate), F_F32, -1e-3, IADSR_ERR_INVALID_ARG},
    {TP(learning_rate), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {TP(learning_rate), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {TP(adam_beta1), F_F32, 1.0, IADSR_ERR_INVALID_ARG},
    {TP(adam_beta1), F_F32, -0.1, IADSR_ERR_INVALID_ARG},
    {TP(adam_beta1), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {TP(adam_beta1), F_F32, 0.0, IADSR_OK},
    {TP(adam_beta2), F_F32, 1.0, IADSR_ERR_INVALID_ARG},
    {TP(adam_eps), F_F32, 0.0, IADSR_ERR_INVALID_ARG},
    {TP(adam_eps), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {TP(weight_decay), F_F32, -1.0, IADSR_ERR_INVALID_ARG},
    {TP(weight_decay), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {TP(weight_decay), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {TP(weight_decay), F_F32, 0.01, IADSR_OK},
    {TP(flags), F_U32, 1, IADSR_ERR_UNSUPPORTED},
    {TP(reserved0), F_U32, 1, IADSR_ERR_INVALID_ARG},
    {TP(label_smoothing), F_F32, -0.1, IADSR_ERR_INVALID_ARG},
    {TP(label_smoothing), F_F32, 1.0, IADSR_ERR_INVALID_ARG},
    {TP(label_smoothing), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {TP(label_smoothing), F_F32, 0.1, IADSR_OK},
    {TP(history_penalty), F_F32, -1.0, IADSR_ERR_INVALID_ARG},
    {TP(history_penalty), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {TP(history_penalty), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {TP(history_penalty), F_F32, 2.0, IADSR_OK},
};

#define CP(f) #f, offsetof(iadsr_ctx_params, f)
static const bound_case ctx_cases[] = {
    {CP(max_batch), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {CP(max_batch), F_I32, -5, IADSR_ERR_INVALID_ARG},
    {CP(max_batch), F_I32, 65537, IADSR_ERR_INVALID_ARG},
    {CP(max_batch), F_I32, 65536, IADSR_OK},
    {CP(max_batch), F_I32, 1, IADSR_OK},
    {CP(flags), F_U32, 1, IADSR_OK}, /* IADSR_CTX_F_FP16_SCAN */
    {CP(flags), F_U32, 2, IADSR_OK}, /* IADSR_CTX_F_INT8_SCAN */
    {CP(flags), F_U32, 3, IADSR_ERR_INVALID_ARG}, /* both */
    {CP(flags), F_U32, 4, IADSR_ERR_UNSUPPORTED},
    {CP(reserved0), F_U32, 1, IADSR_ERR_INVALID_ARG},
};

#define EP(f) #f, offsetof(iadsr_eval_params, f)
static const bound_case eval_cases[] = {
    {EP(target), F_I32, 3, IADSR_ERR_INVALID_ARG},
    {EP(target), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {EP(target), F_I32, 2, IADSR_OK},
    {EP(n_threads), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {EP(n_threads), F_I32, 257, IADSR_ERR_INVALID_ARG},
    {EP(flags), F_U32, 1, IADSR_OK},
    {EP(flags), F_U32, 2, IADSR_ERR_UNSUPPORTED},
    {EP(flags), F_U32, 3, IADSR_ERR_UNSUPPORTED},
};

#define MP(f) #f, offsetof(iadsr_model_params, f)
static const bound_case model_cases[] = {
    {MP(n_items), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {MP(n_items), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {MP(n_items), F_I32, 2147483647.0, IADSR_ERR_INVALID_ARG},
    {MP(n_items), F_I32, 2147483646.0, IADSR_OK},
    {MP(backbone), F_I32, 2, IADSR_OK},
    {MP(backbone), F_I32, 3, IADSR_OK},
    {MP(backbone), F_I32, 4, IADSR_ERR_INVALID_ARG},
    {MP(backbone), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {MP(dim), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {MP(dim), F_I32, 4097, IADSR_ERR_INVALID_ARG},
    {MP(dim), F_I32, 4096, IADSR_OK},
    {MP(max_seq_len), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {MP(max_seq_len), F_I32, 4097, IADSR_ERR_INVALID_ARG},
    {MP(n_layers), F_I32, 0, IADSR_OK}, /* the backbone's default */
    {MP(n_layers), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {MP(n_layers), F_I32, 17, IADSR_ERR_INVALID_ARG},
    {MP(n_layers), F_I32, 16, IADSR_OK},
    {MP(n_heads), F_I32, 0, IADSR_ERR_INVALID_ARG},
    {MP(n_heads), F_I32, 3, IADSR_ERR_INVALID_ARG}, /* 64 % 3 != 0 */
    {MP(n_heads), F_I32, 64, IADSR_OK},
    {MP(ffn_dim), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {MP(ffn_dim), F_I32, 65537, IADSR_ERR_INVALID_ARG},
    {MP(ffn_dim), F_I32, 65536, IADSR_OK},
    {MP(activation), F_I32, 3, IADSR_ERR_INVALID_ARG},
    {MP(activation), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {MP(activation), F_I32, 2, IADSR_OK},
    {MP(dropout), F_F32, 1.0, IADSR_ERR_INVALID_ARG},
    {MP(dropout), F_F32, -0.1, IADSR_ERR_INVALID_ARG},
    {MP(dropout), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {MP(dropout), F_F32, 0.0, IADSR_OK},
    {MP(flags), F_U32, 1, IADSR_OK}, /* IADSR_MODEL_F_PRE_LN */
    {MP(flags), F_U32, 2, IADSR_ERR_UNSUPPORTED},
    {MP(reserved0), F_U32, 1, IADSR_ERR_INVALID_ARG},
};

static void check_message(const bound_case *bc, int rc)
{
    if (rc == IADSR_OK)
        return;
    ck_assert_msg(strstr(iadsr_last_error(), bc->field) != NULL,
                  "message '%s' does not name field %s", iadsr_last_error(),
                  bc->field);
}

START_TEST(test_train_bounds)
{
    for (size_t i = 0; i < sizeof train_cases / sizeof train_cases[0]; i++) {
        const bound_case *bc = &train_cases[i];
        iadsr_train_params p, got;
        iadsr_train_params_init(&p);
        set_field(&p, bc);
        int rc = iadsr__train_params_get(&got, &p);
        ck_assert_msg(rc == bc->expect, "train %s = %g: got %s, want %s",
                      bc->field, bc->value, iadsr_status_name(rc),
                      iadsr_status_name(bc->expect));
        check_message(bc, rc);
    }
    /* the message carries the value */
    iadsr_train_params p, got;
    iadsr_train_params_init(&p);
    p.batch_size = 70000;
    ck_assert_int_eq(iadsr__train_params_get(&got, &p), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "batch_size = 70000"));
    /* split 0 -> LEAVE_ONE_OUT */
    iadsr_train_params_init(&p);
    p.split = 0;
    ck_assert_int_eq(iadsr__train_params_get(&got, &p), IADSR_OK);
    ck_assert_int_eq(got.split, IADSR_SPLIT_LEAVE_ONE_OUT);
    ck_assert_int_eq(iadsr__train_params_get(NULL, &p), IADSR_ERR_GENERIC);
}
END_TEST

START_TEST(test_ctx_eval_bounds)
{
    for (size_t i = 0; i < sizeof ctx_cases / sizeof ctx_cases[0]; i++) {
        const bound_case *bc = &ctx_cases[i];
        iadsr_ctx_params p, got;
        iadsr_ctx_params_init(&p);
        set_field(&p, bc);
        int rc = iadsr__ctx_params_get(&got, &p);
        ck_assert_msg(rc == bc->expect, "ctx %s = %g: got %s", bc->field,
                      bc->value, iadsr_status_name(rc));
        check_message(bc, rc);
    }
    for (size_t i = 0; i < sizeof eval_cases / sizeof eval_cases[0]; i++) {
        const bound_case *bc = &eval_cases[i];
        iadsr_eval_params p, got;
        iadsr_eval_params_init(&p);
        set_field(&p, bc);
        int rc = iadsr__eval_params_get(&got, &p);
        ck_assert_msg(rc == bc->expect, "eval %s = %g: got %s", bc->field,
                      bc->value, iadsr_status_name(rc));
        check_message(bc, rc);
    }
    iadsr_eval_params e, eg;
    iadsr_eval_params_init(&e);
    e.target = 0;
    ck_assert_int_eq(iadsr__eval_params_get(&eg, &e), IADSR_OK);
    ck_assert_int_eq(eg.target, IADSR_EVAL_TEST);
}
END_TEST

START_TEST(test_model_bounds)
{
    for (size_t i = 0; i < sizeof model_cases / sizeof model_cases[0]; i++) {
        const bound_case *bc = &model_cases[i];
        iadsr_model_params p, got;
        iadsr_model_params_init(&p);
        p.n_items = 1000;
        set_field(&p, bc);
        int rc = iadsr__model_params_get(&got, &p);
        ck_assert_msg(rc == bc->expect, "model %s = %g: got %s (%s)",
                      bc->field, bc->value, iadsr_status_name(rc),
                      iadsr_last_error());
        check_message(bc, rc);
        /* iadsr__model_params_check agrees on a complete struct */
        ck_assert_int_eq(iadsr__model_params_check(&p), bc->expect);
    }
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = 5;
    p.backbone = IADSR_BACKBONE_GRU4REC;
    ck_assert_int_eq(iadsr__model_params_check(&p), IADSR_OK);
    /* SASRec-only fields normalised away, one GRU layer by default */
    ck_assert_int_eq(p.n_layers, 1);
    ck_assert_int_eq(p.n_heads, 0);
    ck_assert_int_eq(p.ffn_dim, 0);
    ck_assert_int_eq(p.activation, 0);
    ck_assert_int_eq(iadsr__model_params_check(&p), IADSR_OK); /* idempotent */
    iadsr_model_params_init(&p);
    p.n_items = 5;
    p.backbone = IADSR_BACKBONE_CASER;
    ck_assert_int_eq(iadsr__model_params_check(&p), IADSR_OK);
    ck_assert_int_eq(p.n_layers, 0);
    ck_assert_int_eq(p.caser_window, 5);
    ck_assert_int_eq(p.caser_h_filters, 16);
    ck_assert_int_eq(p.caser_v_filters, 4);
    ck_assert_int_eq(iadsr__model_params_check(&p), IADSR_OK);
    /* fields of another backbone are refused, naming them */
    static const struct {
        int32_t backbone;
        int field; /* 0 ffn, 1 heads, 2 relu, 3 pre-LN, 4 caser, 5 layers */
    } bad[] = {{IADSR_BACKBONE_GRU4REC, 0}, {IADSR_BACKBONE_GRU4REC, 1},
               {IADSR_BACKBONE_GRU4REC, 2}, {IADSR_BACKBONE_GRU4REC, 3},
               {IADSR_BACKBONE_GRU4REC, 4}, {IADSR_BACKBONE_CASER, 0},
               {IADSR_BACKBONE_CASER, 3},   {IADSR_BACKBONE_CASER, 5},
               {IADSR_BACKBONE_SASREC, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        iadsr_model_params_init(&p);
        p.n_items = 5;
        p.backbone = bad[i].backbone;
        switch (bad[i].field) {
        case 0: p.ffn_dim = 64; break;
        case 1: p.n_heads = 4; break;
        case 2: p.activation = IADSR_ACT_RELU; break;
        case 3: p.flags = IADSR_MODEL_F_PRE_LN; break;
        case 4: p.caser_window = 3; break;
        default: p.n_layers = 2; break;
        }
        ck_assert_msg(iadsr__model_params_check(&p) == IADSR_ERR_INVALID_ARG,
                      "case %zu accepted", i);
        ck_assert_str_ne(iadsr_last_error(), "");
    }
    /* normalisation of the 0 = default values */
    iadsr_model_params_init(&p);
    p.n_items = 5;
    p.backbone = 0;
    p.activation = 0;
    p.ffn_dim = 0;
    p.dim = 32;
    p.n_heads = 4;
    ck_assert_int_eq(iadsr__model_params_check(&p), IADSR_OK);
    ck_assert_int_eq(p.backbone, IADSR_BACKBONE_SASREC);
    ck_assert_int_eq(p.activation, IADSR_ACT_GELU);
    ck_assert_int_eq(p.ffn_dim, 128);
    ck_assert_int_eq(iadsr__model_params_check(NULL), IADSR_ERR_INVALID_ARG);
}
END_TEST

Suite *suite_params(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_overlay_sizes);
    tcase_add_test(tc, test_output_copy_sizes);
    tcase_add_test(tc, test_overlay_public_structs);
    tcase_add_test(tc, test_train_bounds);
    tcase_add_test(tc, test_ctx_eval_bounds);
    tcase_add_test(tc, test_model_bounds);
    suite_add_tcase(s, tc);
    return s;
}
