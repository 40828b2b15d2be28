/* Tests: the model handle (creation, initialisation, accessors, params
 * round trip, warm-started embeddings, bounds, reference counts, allocation
 * failures).
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/alloc.h"
#include "backbone/model.h"
#include "backbone/encoder.h"

#include <ctype.h>

Suite *suite_model(void);

/* A pointer that is not NULL and not a valid handle: constructors must
 * overwrite it with NULL on failure. */
#define NOT_NULL_MODEL ((iadsr_model *)(uintptr_t)0x1)
#define NOT_NULL_CTX ((iadsr_ctx *)(uintptr_t)0x1)

static iadsr_model_params small_params(int32_t n_items)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = n_items;
    p.dim = 16;
    p.max_seq_len = 10;
    p.n_layers = 2;
    p.n_heads = 2;
    return p;
}

static iadsr_model *make(const iadsr_model_params *p)
{
    iadsr_model *m = NOT_NULL_MODEL;
    int rc = iadsr_model_create(&m, p);
    ck_assert_msg(rc == IADSR_OK, "model_create: %s (%s)",
                  iadsr_status_name(rc), iadsr_last_error());
    ck_assert_ptr_nonnull(m);
    return m;
}

static const float *tensor(const iadsr_model *m, const char *name,
                           size_t *n_out)
{
    const iadsr__tensor *t = iadsr__layout_find(&m->layout, name);
    ck_assert_msg(t != NULL, "no tensor %s", name);
    if (n_out)
        *n_out = (size_t)t->rows * (size_t)t->cols;
    return m->w + t->offset;
}

/* ---- creation, accessors, initialisation ---------------------------------- */

START_TEST(test_create_defaults)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = 300;
    iadsr_model *m = make(&p);

    ck_assert_int_eq(iadsr_model_backbone(m), IADSR_BACKBONE_SASREC);
    ck_assert_int_eq(iadsr_model_n_items(m), 300);
    ck_assert_int_eq(iadsr_model_dim(m), 64);
    ck_assert_int_eq(iadsr_model_max_seq_len(m), 50);

    /* n_params = sum of the tensor sizes of the documented architecture */
    int64_t d = 64, f = 4 * 64, L = 50, n = 300, layers = 2;
    int64_t per_block = d * 3 * d + 3 * d /* qkv */ + d * d + d /* out */ +
                        2 * d /* ln1 */ + d * f + f + f * d + d /* ffn */ +
                        2 * d /* ln2 */;
    int64_t want = (n + 1) * d + L * d + 2 * d + layers * per_block;
    ck_assert_int_eq(iadsr_model_n_params(m), want);
    int64_t sum = 0;
    for (int i = 0; i < m->layout.n_tensors; i++)
        sum += m->layout.t[i].rows * m->layout.t[i].cols;
    ck_assert_int_eq(iadsr_model_n_params(m), sum);
    ck_assert_uint_gt(iadsr_model_memory_usage(m),
                      (size_t)iadsr_model_n_params(m) * sizeof(float));

    /* item embeddings: row 0 zero, others normal(0, 0.02) */
    const float *E = iadsr_model_item_embeddings(m);
    ck_assert_ptr_nonnull(E);
    ck_assert_ptr_eq(E, tensor(m, "item_emb", NULL));
    for (int c = 0; c < d; c++)
        ck_assert(E[c] == 0.0f);
    double s1 = 0, s2 = 0;
    size_t cnt = (size_t)(n * d);
    for (size_t i = (size_t)d; i < (size_t)((n + 1) * d); i++) {
        ck_assert(isfinite(E[i]));
        s1 += (double)E[i];
        s2 += (double)E[i] * (double)E[i];
    }
    double mean = s1 / (double)cnt;
    double sd = sqrt(s2 / (double)cnt - mean * mean);
    ck_assert_msg(fabs(sd - 0.02) < 0.2 * 0.02, "item_emb std %g", sd);
    ck_assert_msg(fabs(mean) < 0.002, "item_emb mean %g", mean);

    /* every tensor: gains 1, biases/shifts 0, matrices normal(0, 0.02) */
    for (int i = 0; i < m->layout.n_tensors; i++) {
        const iadsr__tensor *t = &m->layout.t[i];
        const float *w = m->w + t->offset;
        size_t nt = (size_t)t->rows * (size_t)t->cols;
        size_t len = strlen(t->name);
        if (len > 2 && strcmp(t->name + len - 2, ".g") == 0) {
            for (size_t j = 0; j < nt; j++)
                ck_assert_msg(w[j] == 1.0f, "%s[%zu] = %g", t->name, j,
                              (double)w[j]);
        } else if (t->rows == 1) {
            for (size_t j = 0; j < nt; j++)
                ck_assert_msg(w[j] == 0.0f, "%s[%zu] = %g", t->name, j,
                              (double)w[j]);
        } else {
            double a = 0, b = 0;
            for (size_t j = 0; j < nt; j++) {
                a += (double)w[j];
                b += (double)w[j] * (double)w[j];
            }
            double sdt = sqrt(b / (double)nt - (a / (double)nt) * (a / (double)nt));
            ck_assert_msg(fabs(sdt - 0.02) < 0.2 * 0.02, "%s: std %g",
                          t->name, sdt);
        }
    }
    ck_assert_int_eq(m->refcount, 1);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_accessors_null)
{
    ck_assert_int_eq(iadsr_model_backbone(NULL), 0);
    ck_assert_int_eq(iadsr_model_n_items(NULL), 0);
    ck_assert_int_eq(iadsr_model_dim(NULL), 0);
    ck_assert_int_eq(iadsr_model_max_seq_len(NULL), 0);
    ck_assert_int_eq(iadsr_model_n_params(NULL), 0);
    ck_assert_uint_eq(iadsr_model_memory_usage(NULL), 0);
    ck_assert_ptr_null(iadsr_model_item_embeddings(NULL));
    iadsr_model_free(NULL); /* no-op */
    iadsr_ctx_free(NULL);
}
END_TEST

START_TEST(test_seed)
{
    iadsr_model_params p = small_params(50);
    iadsr_model *a = make(&p), *b = make(&p);
    ck_assert_uint_eq(a->layout.n_floats, b->layout.n_floats);
    ck_assert(memcmp(a->w, b->w, a->layout.n_floats * sizeof(float)) == 0);
    p.seed = 43;
    iadsr_model *c = make(&p);
    ck_assert(memcmp(a->w, c->w, a->layout.n_floats * sizeof(float)) != 0);
    /* and not merely somewhere: the embeddings differ */
    ck_assert(memcmp(iadsr_model_item_embeddings(a) + 16,
                     iadsr_model_item_embeddings(c) + 16,
                     16 * sizeof(float)) != 0);
    iadsr_model_free(a);
    iadsr_model_free(b);
    iadsr_model_free(c);
}
END_TEST

/* ---- params round trip ----------------------------------------------------------- */

START_TEST(test_get_params)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.n_items = 77;
    p.dim = 24;
    p.n_heads = 3;
    p.max_seq_len = 7;
    p.n_layers = 3;
    p.dropout = 0.25f;
    p.seed = 1234567890123ull;
    p.backbone = IADSR_BACKBONE_DEFAULT;
    p.activation = IADSR_ACT_DEFAULT;
    p.ffn_dim = 0;
    iadsr_model *m = make(&p);

    iadsr_model_params q;
    memset(&q, 0xcd, sizeof q);
    q.struct_size = sizeof q;
    ck_assert_int_eq(iadsr_model_get_params(m, &q), IADSR_OK);
    ck_assert_uint_eq(q.struct_size, sizeof q);
    ck_assert_int_eq(q.backbone, IADSR_BACKBONE_SASREC); /* normalised */
    ck_assert_int_eq(q.n_items, 77);
    ck_assert_int_eq(q.dim, 24);
    ck_assert_int_eq(q.max_seq_len, 7);
    ck_assert_int_eq(q.n_layers, 3);
    ck_assert_int_eq(q.n_heads, 3);
    ck_assert_int_eq(q.ffn_dim, 96);                  /* 4 * dim */
    ck_assert_int_eq(q.activation, IADSR_ACT_GELU);   /* normalised */
    ck_assert(q.dropout == 0.25f);
    ck_assert_uint_eq(q.flags, 0);
    ck_assert_uint_eq(q.reserved0, 0);
    ck_assert(q.seed == 1234567890123ull);

    /* the returned params create an identical model */
    iadsr_model *m2 = make(&q);
    ck_assert_uint_eq(m2->layout.n_floats, m->layout.n_floats);
    ck_assert(memcmp(m2->w, m->w, m->layout.n_floats * sizeof(float)) == 0);
    iadsr_model_free(m2);

    /* struct_size smaller than v1 */
    static const uint32_t small[] = {0, 4, 48, 55};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        memset(&q, 0, sizeof q);
        q.struct_size = small[i];
        ck_assert_int_eq(iadsr_model_get_params(m, &q), IADSR_ERR_INVALID_ARG);
        ck_assert_str_ne(iadsr_last_error(), "");
    }
    /* the 0.1 struct (56 bytes, up to seed) still works both ways, and
     * nothing past it is written */
    {
        unsigned char raw[sizeof q];
        memset(raw, 0xab, sizeof raw);
        iadsr_model_params *o = (iadsr_model_params *)(void *)raw;
        o->struct_size = 56;
        ck_assert_int_eq(iadsr_model_get_params(m, o), IADSR_OK);
        ck_assert_int_eq(o->n_items, m->hp.n_items);
        ck_assert_uint_eq(o->seed, m->hp.seed);
        for (size_t i = 56; i < sizeof raw; i++)
            ck_assert_uint_eq(raw[i], 0xab);
        iadsr_model *m3 = make(o); /* the tail bytes are not read */
        ck_assert(memcmp(m3->w, m->w, m->layout.n_floats * sizeof(float)) ==
                  0);
        iadsr_model_free(m3);
    }
    /* a larger (newer) struct: the known part is filled */
    struct {
        iadsr_model_params p;
        uint8_t tail[8];
    } big;
    memset(&big, 0, sizeof big);
    big.p.struct_size = sizeof big;
    ck_assert_int_eq(iadsr_model_get_params(m, &big.p), IADSR_OK);
    ck_assert_int_eq(big.p.n_items, 77);
    ck_assert(big.p.seed == 1234567890123ull);

    iadsr_model_params_init(&q);
    ck_assert_int_eq(iadsr_model_get_params(NULL, &q), IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_model_get_params(m, NULL), IADSR_ERR_INVALID_ARG);
    iadsr_model_free(m);
}
END_TEST

/* ---- create_from_embeddings ------------------------------------------------------- */

START_TEST(test_from_embeddings)
{
    iadsr_model_params p = small_params(20);
    const int d = 16;
    const int64_t rows = 21, ld = 19;
    float *emb = malloc((size_t)(rows * ld) * sizeof *emb);
    ck_assert_ptr_nonnull(emb);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < ld; c++)
            emb[r * ld + c] = c < d ? (float)(r * 100 + c) * 0.001f : NAN;
    /* row 0 (padding) is ignored even when it is garbage */
    for (int c = 0; c < d; c++)
        emb[c] = INFINITY;

    iadsr_model *m = NOT_NULL_MODEL;
    int rc = iadsr_model_create_from_embeddings(&m, &p, emb, rows, d, ld);
    ck_assert_msg(rc == IADSR_OK, "%s", iadsr_last_error());
    ck_assert_ptr_nonnull(m);
    const float *E = iadsr_model_item_embeddings(m);
    for (int c = 0; c < d; c++)
        ck_assert(E[c] == 0.0f);
    for (int64_t r = 1; r < rows; r++)
        for (int c = 0; c < d; c++)
            ck_assert_msg(E[r * d + c] == emb[r * ld + c], "row %lld col %d",
                          (long long)r, c);
    /* every other tensor is initialised exactly as iadsr_model_create() */
    iadsr_model *ref = make(&p);
    size_t off_pos = iadsr__layout_find(&m->layout, "pos_emb")->offset;
    ck_assert(memcmp(m->w + off_pos, ref->w + off_pos,
                     (m->layout.n_floats - off_pos) * sizeof(float)) == 0);
    ck_assert_int_eq(iadsr_model_n_params(m), iadsr_model_n_params(ref));
    iadsr_model_free(ref);
    iadsr_model_free(m);

    /* ld == dim works too */
    float *dense = calloc((size_t)(rows * d), sizeof *dense);
    ck_assert_ptr_nonnull(dense);
    for (int64_t i = d; i < rows * d; i++)
        dense[i] = (float)i;
    ck_assert_int_eq(
        iadsr_model_create_from_embeddings(&m, &p, dense, rows, d, d),
        IADSR_OK);
    ck_assert(memcmp(iadsr_model_item_embeddings(m) + d, dense + d,
                     (size_t)((rows - 1) * d) * sizeof(float)) == 0);
    iadsr_model_free(m);

    /* dimension mismatches */
    static const struct {
        int64_t rows;
        int32_t dim;
    } bad[] = {{20, 16}, {22, 16}, {0, 16}, {21, 15}, {21, 17}, {21, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = NOT_NULL_MODEL;
        rc = iadsr_model_create_from_embeddings(&m, &p, emb, bad[i].rows,
                                                bad[i].dim, ld);
        ck_assert_msg(rc == IADSR_ERR_DIM_MISMATCH, "%lld x %d: %s",
                      (long long)bad[i].rows, (int)bad[i].dim,
                      iadsr_status_name(rc));
        ck_assert_ptr_null(m);
        /* the message states the expected shape (read before the model it
         * comes from is freed: valgrind/ASan flag a use after free) */
        ck_assert_msg(strstr(iadsr_last_error(), "21 x 16") != NULL,
                      "message '%s' lacks the expected shape 21 x 16",
                      iadsr_last_error());
    }

    /* NaN / Inf: NUMERIC, the message names the row */
    static const float poison[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        int64_t r = 5 + 4 * k;
        float save = emb[r * ld + 3];
        emb[r * ld + 3] = poison[k];
        m = NOT_NULL_MODEL;
        rc = iadsr_model_create_from_embeddings(&m, &p, emb, rows, d, ld);
        ck_assert_int_eq(rc, IADSR_ERR_NUMERIC);
        ck_assert_ptr_null(m);
        char want[32];
        snprintf(want, sizeof want, "row %lld", (long long)r);
        ck_assert_msg(strstr(iadsr_last_error(), want) != NULL,
                      "message '%s' does not name %s", iadsr_last_error(),
                      want);
        emb[r * ld + 3] = save;
    }

    /* invalid arguments */
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, &p, emb, rows, d,
                                                        d - 1),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, &p, emb, rows, d,
                                                        0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, &p, NULL, rows, d,
                                                        ld),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, NULL, emb, rows,
                                                        d, ld),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(iadsr_model_create_from_embeddings(NULL, &p, emb, rows,
                                                        d, ld),
                     IADSR_ERR_INVALID_ARG);
    /* invalid params are reported as by iadsr_model_create() */
    iadsr_model_params q = p;
    q.n_heads = 5;
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, &q, emb, rows, d,
                                                        ld),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    q = p;
    q.flags = 4;
    ck_assert_int_eq(iadsr_model_create_from_embeddings(&m, &q, emb, rows, d,
                                                        ld),
                     IADSR_ERR_UNSUPPORTED);
    free(emb);
    free(dense);
}
END_TEST

/* ---- params bounds ------------------------------------------------------------------ */

typedef struct {
    const char *what;
    void (*set)(iadsr_model_params *p);
    int want;
} bound_case;

#define CASE(name, stmt, code)                                                \
    static void set_##name(iadsr_model_params *p) { stmt; }
#define BOUND_CASES(X)                                                        \
    X(n_items_0, p->n_items = 0, IADSR_ERR_INVALID_ARG)                       \
    X(n_items_neg, p->n_items = -1, IADSR_ERR_INVALID_ARG)                    \
    X(n_items_max, p->n_items = INT32_MAX, IADSR_ERR_INVALID_ARG)             \
    X(n_items_min, p->n_items = INT32_MIN, IADSR_ERR_INVALID_ARG)             \
    X(dim_0, p->dim = 0, IADSR_ERR_INVALID_ARG)                               \
    X(dim_neg, p->dim = -8, IADSR_ERR_INVALID_ARG)                            \
    X(dim_4097, (p->dim = 4097, p->n_heads = 1), IADSR_ERR_INVALID_ARG)       \
    X(len_0, p->max_seq_len = 0, IADSR_ERR_INVALID_ARG)                       \
    X(len_neg, p->max_seq_len = -1, IADSR_ERR_INVALID_ARG)                    \
    X(len_4097, p->max_seq_len = 4097, IADSR_ERR_INVALID_ARG)                 \
    X(layers_17, p->n_layers = 17, IADSR_ERR_INVALID_ARG)                     \
    X(layers_neg, p->n_layers = -2, IADSR_ERR_INVALID_ARG)                    \
    X(heads_0, p->n_heads = 0, IADSR_ERR_INVALID_ARG)                         \
    X(heads_neg, p->n_heads = -2, IADSR_ERR_INVALID_ARG)                      \
    X(heads_nodiv, p->n_heads = 3, IADSR_ERR_INVALID_ARG)                     \
    X(heads_gt_dim, p->n_heads = 32, IADSR_ERR_INVALID_ARG)                   \
    X(heads_4097, p->n_heads = 4097, IADSR_ERR_INVALID_ARG)                   \
    X(ffn_neg, p->ffn_dim = -1, IADSR_ERR_INVALID_ARG)                        \
    X(ffn_big, p->ffn_dim = 65537, IADSR_ERR_INVALID_ARG)                     \
    X(act_3, p->activation = 3, IADSR_ERR_INVALID_ARG)                        \
    X(act_neg, p->activation = -1, IADSR_ERR_INVALID_ARG)                     \
    X(dropout_neg, p->dropout = -0.1f, IADSR_ERR_INVALID_ARG)                 \
    X(dropout_1, p->dropout = 1.0f, IADSR_ERR_INVALID_ARG)                    \
    X(dropout_nan, p->dropout = NAN, IADSR_ERR_INVALID_ARG)                   \
    X(dropout_inf, p->dropout = INFINITY, IADSR_ERR_INVALID_ARG)              \
    X(flags_3, p->flags = 3, IADSR_ERR_UNSUPPORTED)                           \
    X(flags_2, p->flags = 2, IADSR_ERR_UNSUPPORTED)                           \
    X(flags_high, p->flags = 0x80000000u, IADSR_ERR_UNSUPPORTED)              \
    X(reserved, p->reserved0 = 1, IADSR_ERR_INVALID_ARG)                      \
    X(gru4rec_heads, (p->backbone = IADSR_BACKBONE_GRU4REC, p->n_heads = 4), IADSR_ERR_INVALID_ARG) \
    X(caser_layers, (p->backbone = IADSR_BACKBONE_CASER, p->n_layers = 2), IADSR_ERR_INVALID_ARG) \
    X(backbone_4, p->backbone = 4, IADSR_ERR_INVALID_ARG)                     \
    X(backbone_neg, p->backbone = -1, IADSR_ERR_INVALID_ARG)                  \
    X(size_0, p->struct_size = 0, IADSR_ERR_INVALID_ARG)                      \
    X(size_4, p->struct_size = 4, IADSR_ERR_INVALID_ARG)                      \
    X(size_v1_minus, p->struct_size = 52, IADSR_ERR_INVALID_ARG)              \
    X(size_huge, p->struct_size = 1u << 20, IADSR_ERR_INVALID_ARG)
BOUND_CASES(CASE)
#undef CASE
#define ENTRY(name, stmt, code) {#name, set_##name, code},
static const bound_case bound_cases[] = {BOUND_CASES(ENTRY)};
#undef ENTRY

START_TEST(test_bounds)
{
    for (size_t i = 0; i < sizeof bound_cases / sizeof bound_cases[0]; i++) {
        iadsr_model_params p = small_params(10);
        bound_cases[i].set(&p);
        iadsr_clear_error();
        iadsr_model *m = NOT_NULL_MODEL;
        int rc = iadsr_model_create(&m, &p);
        ck_assert_msg(rc == bound_cases[i].want, "%s: got %s, want %s (%s)",
                      bound_cases[i].what, iadsr_status_name(rc),
                      iadsr_status_name(bound_cases[i].want),
                      iadsr_last_error());
        ck_assert_msg(m == NULL, "%s: out not NULL", bound_cases[i].what);
        ck_assert_msg(iadsr_last_error()[0] != '\0', "%s: no message",
                      bound_cases[i].what);
    }
}
END_TEST

/* The documented extremes that are cheap to allocate are accepted. */
START_TEST(test_bounds_accepted)
{
    static const struct {
        int32_t n_items, dim, len, layers, heads, ffn, act;
        float dropout;
    } ok[] = {
        {1, 1, 1, 1, 1, 0, IADSR_ACT_DEFAULT, 0.0f},
        {1, 1, 1, 1, 1, 65536, IADSR_ACT_RELU, 0.999f},
        {3, 8, 4096, 1, 8, 1, IADSR_ACT_GELU, 0.5f},
        {3, 4, 2, 16, 4, 4, IADSR_ACT_RELU, 0.0f},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        iadsr_model_params p;
        iadsr_model_params_init(&p);
        p.n_items = ok[i].n_items;
        p.dim = ok[i].dim;
        p.max_seq_len = ok[i].len;
        p.n_layers = ok[i].layers;
        p.n_heads = ok[i].heads;
        p.ffn_dim = ok[i].ffn;
        p.activation = ok[i].act;
        p.dropout = ok[i].dropout;
        iadsr_model *m = make(&p);
        ck_assert_int_eq(iadsr_model_n_items(m), ok[i].n_items);
        ck_assert_int_eq(iadsr_model_max_seq_len(m), ok[i].len);
        iadsr_model_params q;
        iadsr_model_params_init(&q);
        ck_assert_int_eq(iadsr_model_get_params(m, &q), IADSR_OK);
        ck_assert_int_eq(q.ffn_dim, ok[i].ffn ? ok[i].ffn : 4 * ok[i].dim);
        ck_assert_int_eq(q.n_layers, ok[i].layers);
        iadsr_model_free(m);
    }

    /* a newer caller's larger struct with a zero tail is accepted; a
     * non-zero tail is UNSUPPORTED */
    struct {
        iadsr_model_params p;
        uint8_t tail[16];
    } big;
    memset(&big, 0, sizeof big);
    big.p = small_params(10);
    big.p.struct_size = sizeof big;
    iadsr_model *m = make(&big.p);
    iadsr_model_free(m);
    big.tail[7] = 1;
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create(&m, &big.p), IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(m);

    /* NULL arguments */
    m = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_create(&m, NULL), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    iadsr_model_params p = small_params(10);
    ck_assert_int_eq(iadsr_model_create(NULL, &p), IADSR_ERR_INVALID_ARG);
}
END_TEST

/* ---- reference counts --------------------------------------------------------------- */

START_TEST(test_refcount_ctx_outlives_model)
{
    long live0 = iadsr__alloc_live();
    iadsr_model_params p = small_params(40);
    iadsr_model *m = make(&p);
    iadsr_ctx *c = NOT_NULL_CTX;
    ck_assert_int_eq(iadsr_ctx_create(&c, m, NULL), IADSR_OK);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_eq(iadsr_ctx_model(c), m);
    ck_assert_int_eq(m->refcount, 2);

    const int32_t seq[] = {3, 17, 40, 1, 9};
    float before[41], after[41];
    ck_assert_int_eq(iadsr_ctx_score(c, seq, 5, before, 41), IADSR_OK);
    ck_assert(isinf(before[0]) && before[0] < 0);

    iadsr_model_free(m); /* the context keeps the model alive */
    ck_assert_ptr_nonnull(iadsr_ctx_model(c));
    ck_assert_int_eq(iadsr_model_n_items(iadsr_ctx_model(c)), 40);
    memset(after, 0, sizeof after);
    ck_assert_int_eq(iadsr_ctx_score(c, seq, 5, after, 41), IADSR_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    for (int i = 1; i <= 40; i++)
        ck_assert(isfinite(after[i]));

    /* several contexts share one model */
    iadsr_ctx *c2 = NULL;
    ck_assert_int_eq(iadsr_ctx_create(&c2, iadsr_ctx_model(c), NULL),
                     IADSR_OK);
    iadsr_ctx_free(c);
    ck_assert_int_eq(iadsr_ctx_score(c2, seq, 5, after, 41), IADSR_OK);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    iadsr_ctx_free(c2);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

/* ---- allocation failures --------------------------------------------------------------- */

START_TEST(test_alloc_failures_model)
{
    iadsr_model_params p = small_params(30);
    iadsr_model *ref = make(&p);
    float emb[31 * 16];
    memset(emb, 0, sizeof emb);
    for (int i = 16; i < 31 * 16; i++)
        emb[i] = 0.01f * (float)(i % 7);
    for (int which = 0; which < 2; which++)
        for (int persistent = 0; persistent < 2; persistent++) {
            int done = 0;
            long k;
            for (k = 1; k < 200 && !done; k++) {
                long live = iadsr__alloc_live();
                iadsr_model *m = NOT_NULL_MODEL;
                iadsr__alloc_fail_after(k, persistent);
                int rc = which == 0
                             ? iadsr_model_create(&m, &p)
                             : iadsr_model_create_from_embeddings(
                                   &m, &p, emb, 31, 16, 16);
                long made = iadsr__alloc_fail_after(0, 0);
                if (rc == IADSR_OK) {
                    ck_assert_msg(made < k, "k %ld: success after a failure",
                                  k);
                    ck_assert_ptr_nonnull(m);
                    if (which == 0)
                        ck_assert(memcmp(m->w, ref->w,
                                         ref->layout.n_floats *
                                             sizeof(float)) == 0);
                    iadsr_model_free(m);
                    done = 1;
                } else {
                    ck_assert_msg(rc == IADSR_ERR_NOMEM,
                                  "which %d k %ld: %s (%s)", which, k,
                                  iadsr_status_name(rc), iadsr_last_error());
                    ck_assert_ptr_null(m);
                }
                ck_assert_int_eq(iadsr__alloc_live(), live);
            }
            ck_assert_msg(done, "which %d never succeeded", which);
            ck_assert_int_gt(k, 2); /* at least one failure was injected */
        }
    iadsr_model_free(ref);
}
END_TEST

START_TEST(test_alloc_failures_ctx)
{
    long live0 = iadsr__alloc_live();
    iadsr_model_params p = small_params(30);
    iadsr_model *m = make(&p);
    const int32_t seq[] = {1, 2, 3};
    float want[31], got[31];
    iadsr_ctx *c0 = NULL;
    ck_assert_int_eq(iadsr_ctx_create(&c0, m, NULL), IADSR_OK);
    ck_assert_int_eq(iadsr_ctx_score(c0, seq, 3, want, 31), IADSR_OK);
    iadsr_ctx_free(c0);
    for (int persistent = 0; persistent < 2; persistent++) {
        int done = 0, failures = 0;
        for (long k = 1; k < 200 && !done; k++) {
            long live = iadsr__alloc_live();
            iadsr_ctx *c = NOT_NULL_CTX;
            iadsr__alloc_fail_after(k, persistent);
            int rc = iadsr_ctx_create(&c, m, NULL);
            long made = iadsr__alloc_fail_after(0, 0);
            if (rc == IADSR_OK) {
                ck_assert(made < k);
                ck_assert_int_eq(m->refcount, 2);
                ck_assert_int_eq(iadsr_ctx_score(c, seq, 3, got, 31),
                                 IADSR_OK);
                ck_assert(memcmp(want, got, sizeof got) == 0);
                iadsr_ctx_free(c);
                done = 1;
            } else {
                failures++;
                ck_assert_msg(rc == IADSR_ERR_NOMEM, "k %ld: %s (%s)", k,
                              iadsr_status_name(rc), iadsr_last_error());
                ck_assert_ptr_null(c);
                /* a failed create holds no reference */
                ck_assert_int_eq(m->refcount, 1);
            }
            ck_assert_int_eq(iadsr__alloc_live(), live);
        }
        ck_assert(done);
        ck_assert_int_gt(failures, 1);
    }
    iadsr_model_free(m);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

/* ---- the backbone registry -------------------------------------------------- */

/* Every registered backbone is complete and consistent: what a new backbone
 * must provide, checked once for all. */
START_TEST(test_registry_complete)
{
    int n = iadsr__encoder_count();
    ck_assert_int_ge(n, 3);
    ck_assert_ptr_null(iadsr__encoder_ops_at(-1));
    ck_assert_ptr_null(iadsr__encoder_ops_at(n));
    ck_assert_ptr_null(iadsr__encoder_ops_for(IADSR_BACKBONE_DEFAULT));
    ck_assert_ptr_null(iadsr__encoder_ops_by_name("no-such-backbone"));
    ck_assert_ptr_null(iadsr__encoder_ops_by_name(NULL));
    /* the first is the default */
    iadsr_model_params d;
    iadsr_model_params_init(&d);
    ck_assert_int_eq(d.backbone, iadsr__encoder_ops_at(0)->backbone);

    for (int i = 0; i < n; i++) {
        const iadsr__encoder_ops *ops = iadsr__encoder_ops_at(i);
        ck_assert_ptr_nonnull(ops);
        ck_assert_int_ne(ops->backbone, IADSR_BACKBONE_DEFAULT);
        ck_assert(ops->name && ops->name[0] && ops->title && ops->title[0]);
        for (const char *c = ops->name; *c; c++)
            ck_assert_msg(islower((unsigned char)*c) ||
                              isdigit((unsigned char)*c),
                          "backbone name '%s'", ops->name);
        ck_assert_msg(ops->check_params && ops->fill_shape && ops->layout &&
                          ops->init_tensor && ops->create && ops->destroy &&
                          ops->forward && ops->forward_last && ops->backward,
                      "%s: incomplete ops", ops->name);
        ck_assert_uint_gt(ops->state_size, 0);
        /* lookups round-trip */
        ck_assert_ptr_eq(iadsr__encoder_ops_for(ops->backbone), ops);
        ck_assert_ptr_eq(iadsr__encoder_ops_by_name(ops->name), ops);
        for (int j = 0; j < i; j++) {
            const iadsr__encoder_ops *o = iadsr__encoder_ops_at(j);
            ck_assert_int_ne(o->backbone, ops->backbone);
            ck_assert_str_ne(o->name, ops->name);
            ck_assert_str_ne(o->title, ops->title);
        }
        /* hyper-parameters: keys "iadsr.<field>", unique, inside the
         * public struct, defaults within bounds */
        ck_assert_int_ge(ops->n_hparams, 0);
        if (ops->n_hparams > 0)
            ck_assert(ops->hparams && ops->hparam_prefix &&
                      ops->hparam_prefix[0]);
        for (int k = 0; k < ops->n_hparams; k++) {
            const iadsr__hparam_desc *h = &ops->hparams[k];
            char key[96];
            snprintf(key, sizeof key, "iadsr.%s", h->field);
            ck_assert_str_eq(h->key, key);
            ck_assert(strncmp(h->field, ops->hparam_prefix,
                              strlen(ops->hparam_prefix)) == 0);
            ck_assert_uint_le(h->offset + sizeof(int32_t),
                              sizeof(iadsr_model_params));
            ck_assert(h->lo <= h->def && h->def <= h->hi && h->def != 0);
            for (int j = 0; j <= i; j++) {
                const iadsr__encoder_ops *o = iadsr__encoder_ops_at(j);
                for (int q = 0; q < (j == i ? k : o->n_hparams); q++) {
                    ck_assert_str_ne(o->hparams[q].key, h->key);
                    ck_assert_uint_ne(o->hparams[q].offset, h->offset);
                }
            }
        }

        /* a model with the defaults: its hparams normalised to their
         * defaults, "item_emb" first (trainer, scorer and checkpoints rely
         * on it), the layout the one of ops->layout */
        iadsr_model_params p;
        iadsr_model_params_init(&p);
        p.backbone = ops->backbone;
        p.n_items = 20;
        p.dim = 8;
        p.max_seq_len = 6;
        iadsr_model *m = make(&p);
        iadsr_model_params q;
        iadsr_model_params_init(&q);
        ck_assert_int_eq(iadsr_model_get_params(m, &q), IADSR_OK);
        ck_assert_int_eq(q.backbone, ops->backbone);
        for (int k = 0; k < ops->n_hparams; k++)
            ck_assert_int_eq(iadsr__hparam_get(&q, &ops->hparams[k]),
                             ops->hparams[k].def);
        ck_assert_int_gt(m->layout.n_tensors, 0);
        ck_assert_str_eq(m->layout.t[0].name, "item_emb");
        iadsr__layout *l = calloc(1, sizeof *l);
        ck_assert_ptr_nonnull(l);
        ck_assert_int_eq(ops->layout(&q, l), IADSR_OK);
        ck_assert_int_eq(l->n_tensors, m->layout.n_tensors);
        ck_assert_uint_eq(l->n_floats, m->layout.n_floats);
        free(l);
        iadsr_model_free(m);

        /* another backbone's hyper-parameters are refused, naming it */
        for (int j = 0; j < n; j++) {
            const iadsr__encoder_ops *o = iadsr__encoder_ops_at(j);
            if (j == i || o->n_hparams == 0)
                continue;
            iadsr__hparam_set(&p, &o->hparams[0], o->hparams[0].def);
            m = NOT_NULL_MODEL;
            ck_assert_int_eq(iadsr_model_create(&m, &p),
                             IADSR_ERR_INVALID_ARG);
            ck_assert_ptr_null(m);
            ck_assert_msg(strstr(iadsr_last_error(), o->title) != NULL,
                          "%s with %s: %s", ops->name, o->hparams[0].field,
                          iadsr_last_error());
            iadsr__hparam_set(&p, &o->hparams[0], 0);
        }
    }
}
END_TEST

/* ---- external item ids and the history-repeat record (format 1.4) ------ */

/* "item-<i>" for item i; the caller frees with free_ids. */
static char **make_ids(int32_t n)
{
    char **ids = calloc((size_t)n, sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int32_t i = 0; i < n; i++) {
        ids[i] = malloc(32);
        ck_assert_ptr_nonnull(ids[i]);
        snprintf(ids[i], 32, "item-%d", (int)i + 1);
    }
    return ids;
}

static void free_ids(char **ids, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* with_item_ids fails with INVALID_ARG, *out NULL, and a message holding
 * @p needle. */
static void ids_refused(const iadsr_model *m, const char *const *ids,
                        int32_t n, const char *needle)
{
    iadsr_model *out = NOT_NULL_MODEL;
    int rc = iadsr_model_with_item_ids(&out, m, ids, n);
    ck_assert_msg(rc == IADSR_ERR_INVALID_ARG, "%s: got %s (%s)", needle,
                  iadsr_status_name(rc), iadsr_last_error());
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(iadsr_last_error(), needle) != NULL,
                  "message '%s' lacks '%s'", iadsr_last_error(), needle);
}

START_TEST(test_item_ids_api)
{
    iadsr_model_params p = small_params(40);
    iadsr_model *m = make(&p);
    char **ids = make_ids(40);
    const char *const *cids = (const char *const *)ids;
    long live = iadsr__alloc_live();

    /* no ids: accessors answer "none" */
    ck_assert_ptr_null(iadsr_model_item_id(m, 1));
    ck_assert_int_eq(iadsr_model_item_index(m, "item-1"), 0);
    ck_assert_int_eq(iadsr_model_history_repeats(m), -1);
    ck_assert_ptr_null(iadsr_model_item_id(NULL, 1));
    ck_assert_int_eq(iadsr_model_item_index(NULL, "x"), 0);
    ck_assert_int_eq(iadsr_model_history_repeats(NULL), -1);

    iadsr_model *w = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_with_item_ids(&w, m, cids, 40), IADSR_OK);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_ne(w, m);
    ck_assert_ptr_null(iadsr_model_item_id(m, 1)); /* m unchanged */
    for (int32_t i = 1; i <= 40; i++) {
        ck_assert_str_eq(iadsr_model_item_id(w, i), ids[i - 1]);
        ck_assert_int_eq(iadsr_model_item_index(w, ids[i - 1]), i);
    }
    ck_assert_ptr_null(iadsr_model_item_id(w, 0));
    ck_assert_ptr_null(iadsr_model_item_id(w, 41));
    ck_assert_ptr_null(iadsr_model_item_id(w, -1));
    ck_assert_int_eq(iadsr_model_item_index(w, "item-41"), 0);
    ck_assert_int_eq(iadsr_model_item_index(w, ""), 0);
    ck_assert_int_eq(iadsr_model_item_index(w, NULL), 0);
    ck_assert_int_eq(iadsr_model_history_repeats(w), -1);
    /* the weights are copied; the caller's strings are not kept */
    ck_assert_int_eq(memcmp(m->w, w->w, m->layout.n_floats * sizeof(float)),
                     0);
    ck_assert_uint_gt(iadsr_model_memory_usage(w),
                      iadsr_model_memory_usage(m));
    snprintf(ids[0], 32, "changed");
    ck_assert_str_eq(iadsr_model_item_id(w, 1), "item-1");
    snprintf(ids[0], 32, "item-1");

    /* ids of ids replaced; NULL/0 drops them and keeps the record */
    w->history_repeats = 1;
    iadsr_model *c = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_with_item_ids(&c, w, NULL, 0), IADSR_OK);
    ck_assert_ptr_null(iadsr_model_item_id(c, 1));
    ck_assert_int_eq(iadsr_model_history_repeats(c), 1);
    ck_assert_int_eq(c->epochs_trained, w->epochs_trained);
    iadsr_model_free(c);

    /* one id of every kind of byte but the four refused, and the limit */
    char big[1025];
    memset(big, 'x', 1024);
    big[1024] = '\0';
    const char *odd[40];
    for (int i = 0; i < 40; i++)
        odd[i] = ids[i];
    odd[3] = "with space";
    odd[4] = "\xc3\xa9t\xc3\xa9 \"q\" \\ :";
    odd[5] = "ctl\x01\x7f\xff";
    odd[6] = big;
    ck_assert_int_eq(iadsr_model_with_item_ids(&c, m, odd, 40), IADSR_OK);
    for (int32_t i = 1; i <= 40; i++) {
        ck_assert_str_eq(iadsr_model_item_id(c, i), odd[i - 1]);
        ck_assert_int_eq(iadsr_model_item_index(c, odd[i - 1]), i);
    }
    iadsr_model_free(c);

    /* refusals, each naming the index */
    ids_refused(m, cids, 39, "n_ids = 39");
    ids_refused(m, cids, 41, "n_ids = 41");
    ids_refused(m, NULL, 40, "ids is NULL");
    odd[6] = ids[6];
    big[1024] = 'x'; /* 1025 bytes, terminated below */
    char big2[1026];
    memcpy(big2, big, 1025);
    big2[1025] = '\0';
    const char *bad[40];
    struct {
        int at;
        const char *v;
        const char *needle;
    } cases[] = {
        {7, "", "ids[7] (item 8) is empty"},
        {8, big2, "ids[8] (item 9) is longer than 1024"},
        {9, "a\tb", "ids[9] (item 10) holds a TAB byte at offset 1"},
        {10, "a\r", "ids[10] (item 11) holds a CR"},
        {11, "\nb", "ids[11] (item 12) holds a LF byte at offset 0"},
        {12, "item-3", "ids[12] (item 13) repeats ids[2] (item 3)"},
        {39, "item-1", "ids[39] (item 40) repeats ids[0] (item 1)"},
        {13, NULL, "ids[13] is NULL"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int i = 0; i < 40; i++)
            bad[i] = ids[i];
        bad[cases[k].at] = cases[k].v;
        ids_refused(m, bad, 40, cases[k].needle);
    }
    /* bad handles */
    iadsr_model *o = NOT_NULL_MODEL;
    ck_assert_int_eq(iadsr_model_with_item_ids(&o, NULL, cids, 40),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(iadsr_model_with_item_ids(NULL, m, cids, 40),
                     IADSR_ERR_INVALID_ARG);

    /* allocation failures: nothing leaks, *out stays NULL */
    for (long k = 0;; k++) {
        iadsr__alloc_fail_after(k, 0);
        iadsr_model *f = NOT_NULL_MODEL;
        int rc = iadsr_model_with_item_ids(&f, m, cids, 40);
        iadsr__alloc_fail_after(-1, 0);
        if (rc == IADSR_OK) {
            ck_assert_str_eq(iadsr_model_item_id(f, 40), "item-40");
            iadsr_model_free(f);
            break;
        }
        ck_assert_int_eq(rc, IADSR_ERR_NOMEM);
        ck_assert_ptr_null(f);
        ck_assert_int_lt(k, 100);
    }
    iadsr_model_free(w);
    ck_assert_int_eq(iadsr__alloc_live(), live);
    free_ids(ids, 40);
    iadsr_model_free(m);
}
END_TEST

/* Trainer snapshots keep the initial model's ids and record whether a
 * training part repeats an item. */
static iadsr_model *trained(const iadsr_model *init, const int32_t *items,
                            const int64_t *offs, int64_t nu, int epochs)
{
    iadsr_dataset *d = NULL;
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offs, nu,
                                          iadsr_model_n_items(init),
                                          IADSR_FLAG_COPY),
                     IADSR_OK);
    iadsr_train_params tp;
    iadsr_train_params_init(&tp);
    tp.max_epochs = epochs > 0 ? epochs : 1;
    tp.batch_size = 4;
    iadsr_trainer *t = NULL;
    ck_assert_int_eq(iadsr_trainer_create(&t, init, d, &tp), IADSR_OK);
    for (int e = 0; e < epochs; e++)
        ck_assert_int_eq(iadsr_trainer_run_epoch(t, NULL), IADSR_OK);
    iadsr_model *s = NULL;
    ck_assert_int_eq(iadsr_trainer_snapshot(t, &s), IADSR_OK);
    iadsr_trainer_free(t);
    iadsr_dataset_free(d);
    return s;
}

START_TEST(test_history_repeats_and_snapshot_ids)
{
    iadsr_model_params p = small_params(12);
    iadsr_model *m = make(&p);
    char **ids = make_ids(12);
    iadsr_model *w = NULL;
    ck_assert_int_eq(iadsr_model_with_item_ids(
                         &w, m, (const char *const *)ids, 12),
                     IADSR_OK);
    /* leave-one-out: the training part is all but the last two items */
    static const int32_t none[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1,
                                   10, 11, 12, 2, 3, 4};
    /* user 0's last two items repeat item 1 and 9: not training items */
    static const int64_t none_off[] = {0, 10, 16};
    static const int32_t some[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                   11, 12, 11, 2, 3, 4};
    static const int64_t some_off[] = {0, 10, 16};

    iadsr_model *s0 = trained(w, none, none_off, 2, 0);
    ck_assert_int_eq(iadsr_model_history_repeats(s0), -1); /* no epoch */
    ck_assert_str_eq(iadsr_model_item_id(s0, 12), "item-12");
    iadsr_model *s1 = trained(w, none, none_off, 2, 1);
    ck_assert_int_eq(iadsr_model_history_repeats(s1), 0);
    ck_assert_str_eq(iadsr_model_item_id(s1, 7), "item-7");
    ck_assert_int_eq(iadsr_model_item_index(s1, "item-7"), 7);
    iadsr_model *s2 = trained(m, some, some_off, 2, 1);
    ck_assert_int_eq(iadsr_model_history_repeats(s2), 1);
    ck_assert_ptr_null(iadsr_model_item_id(s2, 1));
    /* a model trained on repeats keeps 1 when trained on more data */
    iadsr_model *s3 = trained(s2, none, none_off, 2, 1);
    ck_assert_int_eq(iadsr_model_history_repeats(s3), 1);
    /* the snapshots outlive the trainer and the model they came from */
    iadsr_model_free(w);
    ck_assert_str_eq(iadsr_model_item_id(s1, 3), "item-3");
    iadsr_model_free(s0);
    iadsr_model_free(s1);
    iadsr_model_free(s2);
    iadsr_model_free(s3);
    free_ids(ids, 12);
    iadsr_model_free(m);
}
END_TEST

Suite *suite_model(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_create_defaults);
    tcase_add_test(tc, test_item_ids_api);
    tcase_add_test(tc, test_history_repeats_and_snapshot_ids);
    tcase_add_test(tc, test_accessors_null);
    tcase_add_test(tc, test_seed);
    tcase_add_test(tc, test_get_params);
    tcase_add_test(tc, test_from_embeddings);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_bounds_accepted);
    tcase_add_test(tc, test_refcount_ctx_outlives_model);
    tcase_add_test(tc, test_alloc_failures_model);
    tcase_add_test(tc, test_alloc_failures_ctx);
    tcase_add_test(tc, test_registry_complete);
    suite_add_tcase(s, tc);
    return s;
}
