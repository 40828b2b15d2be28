/* Shared helpers of the libiadsr unit tests (header-only: the Makefile
 * compiles tests/test_*.c only, so everything here is static inline).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_TESTUTIL_H
#define IADSR_TESTUTIL_H

#include <check.h>
#include <dirent.h>
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
#include "cli/synth.h"

/* ---- files ------------------------------------------------------------------ */

/* Fixtures: $IADSR_TEST_DATADIR, else tests/data (run from the top). */
static inline const char *tu_data_dir(void)
{
    const char *d = getenv("IADSR_TEST_DATADIR");
    return d && d[0] ? d : "tests/data";
}

/* Scratch files: $IADSR_TEST_TMPDIR, else /tmp. */
static inline const char *tu_tmp_dir(void)
{
    const char *d = getenv("IADSR_TEST_TMPDIR");
    return d && d[0] ? d : "/tmp";
}

/* The bytes of a file (malloc'ed, one spare byte; free() them). */
static inline uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline void tu_write_file(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- status assertions ---------------------------------------------------- */

/* @p call must succeed; on failure the message names the call and the
 * library's last error. */
#define TU_OK(call)                                                           \
    do {                                                                      \
        int tu_rc_ = (call);                                                  \
        ck_assert_msg(tu_rc_ == IADSR_OK, "%s failed: %s: %s", #call,         \
                      iadsr_status_name(tu_rc_), iadsr_last_error());         \
    } while (0)

/* @p call must fail with @p code and leave a non-empty last error. */
#define TU_EXPECT_ERR(call, code)                                             \
    do {                                                                      \
        iadsr_clear_error();                                                  \
        int tu_rc_ = (call);                                                  \
        int tu_want_ = (code);                                                \
        ck_assert_msg(tu_rc_ == tu_want_,                                     \
                      "%s: got %s (%d), expected %s; last error: '%s'",       \
                      #call, iadsr_status_name(tu_rc_), tu_rc_,               \
                      iadsr_status_name(tu_want_), iadsr_last_error());       \
        ck_assert_msg(iadsr_last_error()[0] != '\0',                          \
                      "%s: returned %s but the last error is empty", #call,   \
                      iadsr_status_name(tu_rc_));                             \
    } while (0)

/* A non-NULL pointer value that is never a real handle: handle
 * out-parameters are preset to it so that "set to NULL on failure" is
 * observable. */
static inline void *tu_sentinel(void)
{
    static char byte;
    return &byte;
}
#define TU_SENTINEL(T) ((T *)tu_sentinel())

/* Number of "BASE.tmp.*" files next to @p path: what an interrupted or
 * failed atomic save would leave behind. */
static inline int tu_count_temp_files(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char prefix[1024], dir[1024];
    int np = snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    int nd = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path)
                   : snprintf(dir, sizeof dir, ".");
    ck_assert_msg(np > 0 && (size_t)np < sizeof prefix && nd > 0 &&
                  (size_t)nd < sizeof dir, "path too long: %s", path);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* ---- environment ---------------------------------------------------------- */

/* Light mode: IADSR_TEST_LIGHT=1 (set it for slow runs), or running under
 * valgrind (its preload library is in LD_PRELOAD of the client). Heavy
 * loops shrink so that the sanitizer/valgrind targets stay fast. */
static inline int tu_light(void)
{
    const char *e = getenv("IADSR_TEST_LIGHT");
    if (e && e[0] && strcmp(e, "0") != 0)
        return 1;
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

/* IADSR_TEST_VERBOSE=1 prints a few measured figures (quality, epochs). */
#define TU_NOTE(...)                                                          \
    do {                                                                      \
        const char *tu_v_ = getenv("IADSR_TEST_VERBOSE");                     \
        if (tu_v_ && tu_v_[0] && strcmp(tu_v_, "0") != 0)                     \
            fprintf(stderr, __VA_ARGS__);                                     \
    } while (0)

/* ---- data and models ------------------------------------------------------ */

/* Synthetic dataset (src/cli/synth.h) with n_items declared items. */
static inline iadsr_dataset *tu_synth(int64_t n_users, int32_t n_items,
                                      int32_t n_topics, int32_t min_len,
                                      int32_t max_len, uint64_t seed)
{
    iadsr__synth_params sp;
    iadsr__synth_params_init(&sp);
    sp.n_users = n_users;
    sp.n_items = n_items;
    sp.n_topics = n_topics;
    sp.min_len = min_len;
    sp.max_len = max_len;
    sp.seed = seed;
    int32_t *items = NULL;
    int64_t *offs = NULL, nu = 0;
    TU_OK(iadsr__synth_generate(&sp, &items, &offs, &nu));
    ck_assert_int_eq(nu, n_users);
    iadsr_dataset *d = NULL;
    TU_OK(iadsr_dataset_create(&d, items, offs, nu, n_items, IADSR_FLAG_COPY));
    iadsr__free(items);
    iadsr__free(offs);
    return d;
}

/* Dataset from a literal CSR (copied). */
static inline iadsr_dataset *tu_dataset(const int32_t *items,
                                        const int64_t *offs, int64_t n_users,
                                        int32_t n_items)
{
    iadsr_dataset *d = NULL;
    TU_OK(iadsr_dataset_create(&d, items, offs, n_users, n_items,
                               IADSR_FLAG_COPY));
    return d;
}

/* The small model used by most tests: dim 16, L 10, 1 layer, 2 heads. */
static inline void tu_model_params(iadsr_model_params *p, int32_t n_items,
                                   uint64_t seed)
{
    iadsr_model_params_init(p);
    p->n_items = n_items;
    p->dim = 16;
    p->max_seq_len = 10;
    p->n_layers = 1;
    p->n_heads = 2;
    p->dropout = 0.1f;
    p->seed = seed;
}

static inline iadsr_model *tu_model(int32_t n_items, uint64_t seed)
{
    iadsr_model_params p;
    tu_model_params(&p, n_items, seed);
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

static inline void tu_train_params(iadsr_train_params *p)
{
    iadsr_train_params_init(p);
    p->learning_rate = 3e-3f;
    p->batch_size = 64;
    p->max_epochs = 5;
    p->patience = 0;
    p->seed = 1;
}

/* Train @p init for @p epochs epochs (SPLIT_NONE, run_epoch) and return the
 * snapshot. */
static inline iadsr_model *tu_trained(const iadsr_model *init,
                                      const iadsr_dataset *d, int epochs)
{
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_NONE;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, init, d, &tp));
    for (int e = 0; e < epochs; e++)
        TU_OK(iadsr_trainer_run_epoch(t, NULL));
    iadsr_model *m = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &m));
    iadsr_trainer_free(t);
    return m;
}

/* Serialised checkpoint bytes (malloc'ed by the test, free() them). */
static inline unsigned char *tu_model_bytes(const iadsr_model *m,
                                            size_t *size_out)
{
    size_t need = 0;
    TU_OK(iadsr_model_save_to_buffer(m, NULL, 0, &need));
    ck_assert_uint_gt(need, 0);
    unsigned char *buf = malloc(need);
    ck_assert_ptr_nonnull(buf);
    size_t need2 = 0;
    TU_OK(iadsr_model_save_to_buffer(m, buf, need, &need2));
    ck_assert_uint_eq(need, need2);
    *size_out = need;
    return buf;
}

/* Bitwise equality of two models' complete weight buffers. */
static inline int tu_same_weights(const iadsr_model *a, const iadsr_model *b)
{
    return a->layout.n_floats == b->layout.n_floats &&
           memcmp(a->w, b->w, a->layout.n_floats * sizeof(float)) == 0;
}

/* Full-ranking metrics from ranks, in user order (the header's rule). */
typedef struct tu_acc {
    int64_t n;
    double hr[3], nd[3];
} tu_acc;

static inline void tu_acc_add(tu_acc *a, int64_t rank)
{
    static const int ks[3] = {5, 10, 20};
    a->n++;
    for (int k = 0; k < 3; k++)
        if (rank < ks[k]) {
            a->hr[k] += 1.0;
            a->nd[k] += 1.0 / log2((double)rank + 2.0);
        }
}

static inline void tu_acc_metrics(const tu_acc *a, iadsr_metrics *out)
{
    double inv = a->n > 0 ? 1.0 / (double)a->n : 0.0;
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->n_users = a->n;
    out->hr5 = a->hr[0] * inv;
    out->hr10 = a->hr[1] * inv;
    out->hr20 = a->hr[2] * inv;
    out->ndcg5 = a->nd[0] * inv;
    out->ndcg10 = a->nd[1] * inv;
    out->ndcg20 = a->nd[2] * inv;
}

/* A deterministic pseudo-random sequence of length @p n (ids 1..n_items). */
static inline void tu_make_seq(int32_t *s, int n, int32_t n_items,
                               uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        s[i] = (int32_t)((x >> 8) % (uint32_t)n_items) + 1;
    }
}

/* A scoring context of @p m (max_batch > 0 overrides the default). */
static inline iadsr_ctx *tu_new_ctx(const iadsr_model *m, int max_batch)
{
    iadsr_ctx_params cp;
    iadsr_ctx_params_init(&cp);
    if (max_batch > 0)
        cp.max_batch = max_batch;
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, &cp));
    return c;
}

/* A candidate of the reference top-K, ordered by score descending, then
 * id ascending (the library's tie rule). */
typedef struct tu_cand {
    float s;
    int32_t id;
} tu_cand;

static inline int tu_cand_cmp(const void *pa, const void *pb)
{
    const tu_cand *a = pa, *b = pb;
    if (a->s > b->s)
        return -1;
    if (a->s < b->s)
        return 1;
    return (a->id > b->id) - (a->id < b->id);
}

#endif /* IADSR_TESTUTIL_H */
