/* Tests: IADSR Stage 2 through the public API (include/iadsr.h, "IADSR:
 * aligner, denoising gate, joint training, cleaning") and the gate's
 * inference rule (iadsr__gate_decide): denoise params, aligner and gate
 * handles, the joint trainer, the denoiser (one sequence and whole
 * datasets), the pipeline, and allocation failures of every constructor.
 *
 * The planted-noise acceptance test trains jointly on synthetic users with
 * injected off-topic items, chooses theta on half of the users and requires
 * precision >= 0.6 and recall >= 0.5 of the drops on the other half. It is
 * skipped in light mode (sanitizers, valgrind) unless IADSR_TEST_PLANTED=1.
 *
 * Set IADSR_TEST_VERBOSE=1 to print measured figures.
 * SPDX-License-Identifier: MIT
 */
#include "testutil.h"

#include <stddef.h>
#include <unistd.h>

#include "denoise/denoise.h"
#include "backbone/encoder.h"
#include "common/params.h"
#include "data/dataset.h"
#include "data/semantic.h"
#include "denoise/heads.h"
#include "common/clock.h"

Suite *suite_denoise_api(void);

#define NI 60 /* items of the small synthetic data */
#define NT 6  /* its topics (10 items each) */
#define DS 12 /* semantic width D */

/* Cast a handle to another handle type (a "foreign" handle). */
#define AS(T, p) ((T *)(void *)(p))

/* ---- helpers -------------------------------------------------------------- */

/* Topic of an item in src/cli/synth.c: topic t holds the ids
 * t*n_items/n_topics + 1 .. (t+1)*n_items/n_topics. */
static int32_t topic_of(int32_t item, int32_t n_items, int32_t n_topics)
{
    for (int32_t t = 0; t < n_topics; t++)
        if ((int64_t)item <= (int64_t)(t + 1) * n_items / n_topics)
            return t;
    return n_topics - 1;
}

/* Item rows (malloc'ed, n_items x D): the unit direction of the item's
 * topic plus N(0, noise^2 / D) per coordinate. */
static float *topic_rows(int32_t n_items, int32_t n_topics, int D,
                         double noise, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    double *dir = calloc((size_t)n_topics * (size_t)D, sizeof(double));
    float *rows = malloc((size_t)n_items * (size_t)D * sizeof(float));
    ck_assert(dir && rows);
    for (int32_t t = 0; t < n_topics; t++) {
        double *v = dir + (size_t)t * D, nn = 0;
        for (int j = 0; j < D; j++) {
            v[j] = iadsr__rng_normal(&r);
            nn += v[j] * v[j];
        }
        for (int j = 0; j < D; j++)
            v[j] /= sqrt(nn);
    }
    for (int32_t i = 1; i <= n_items; i++) {
        const double *v = dir + (size_t)topic_of(i, n_items, n_topics) * D;
        float *o = rows + (size_t)(i - 1) * D;
        for (int j = 0; j < D; j++)
            o[j] = (float)(v[j] + noise / sqrt((double)D) *
                                      iadsr__rng_normal(&r));
    }
    free(dir);
    return rows;
}

static iadsr_semantic *sem_from(const float *rows, int32_t n, int D)
{
    iadsr_semantic *s = NULL;
    TU_OK(iadsr_semantic_create(&s, rows, n, D, D, IADSR_FLAG_COPY));
    return s;
}

static iadsr_semantic *topic_sem(int32_t n_items, int D, uint64_t seed)
{
    float *rows = topic_rows(n_items, n_items < NT ? n_items : NT, D, 0.2,
                             seed);
    iadsr_semantic *s = sem_from(rows, n_items, D);
    free(rows);
    return s;
}

/* n rows of N(0, 1) (user vectors). */
static iadsr_semantic *rand_sem(int32_t n, int D, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    float *rows = malloc((size_t)n * (size_t)D * sizeof(float));
    ck_assert_ptr_nonnull(rows);
    for (size_t i = 0; i < (size_t)n * (size_t)D; i++)
        rows[i] = (float)iadsr__rng_normal(&r);
    iadsr_semantic *s = sem_from(rows, n, D);
    free(rows);
    return s;
}

/* Users of the small synthetic data (fewer under valgrind). */
static int32_t n_users(void)
{
    return tu_light() ? 100 : 300;
}

static iadsr_dataset *small_data(void)
{
    return tu_synth(n_users(), NI, NT, 5, 20, 11);
}

/* The four backbone configurations: SASRec, pre-LN SASRec, GRU4Rec, Caser
 * (dim 16, L 10). */
static const char *const bb_name[4] = {"SASRec", "SASRec pre-LN", "GRU4Rec",
                                       "Caser"};

static void bb_params(iadsr_model_params *p, int which, int32_t n_items,
                      uint64_t seed)
{
    tu_model_params(p, n_items, seed);
    if (which == 1) {
        p->flags = IADSR_MODEL_F_PRE_LN;
    } else if (which >= 2) {
        iadsr_model_params_init(p);
        p->backbone = which == 2 ? IADSR_BACKBONE_GRU4REC
                                 : IADSR_BACKBONE_CASER;
        p->n_items = n_items;
        p->dim = 16;
        p->max_seq_len = 10;
        p->dropout = 0.1f;
        p->seed = seed;
        if (which == 3) {
            p->caser_window = 3;
            p->caser_h_filters = 8;
            p->caser_v_filters = 2;
        }
    }
}

static iadsr_model *bb_model(int which, int32_t n_items, uint64_t seed)
{
    iadsr_model_params p;
    bb_params(&p, which, n_items, seed);
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

static void joint_train_params(iadsr_train_params *tp, int n_threads)
{
    tu_train_params(tp);
    tp->split = IADSR_SPLIT_NONE;
    tp->n_threads = n_threads;
}

static size_t aligner_floats(const iadsr_aligner *a)
{
    return 2 * (size_t)a->dim * (size_t)a->sem_dim;
}

static size_t gate_floats(const iadsr_gate *g)
{
    return (size_t)g->dim * (size_t)g->dim + (size_t)g->dim;
}

/* A model, aligner, gate, semantic matrix and their denoiser. */
typedef struct fix {
    iadsr_model *m;
    iadsr_aligner *a;
    iadsr_gate *g;
    iadsr_semantic *sem;
    iadsr_denoiser *dn;
} fix;

static void fix_open(fix *f, int backbone, const iadsr_denoise_params *dp,
                     uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->m = bb_model(backbone, NI, seed);
    TU_OK(iadsr_aligner_create(&f->a, 16, DS, dp));
    TU_OK(iadsr_gate_create(&f->g, 16, dp));
    f->sem = topic_sem(NI, DS, seed + 1);
    TU_OK(iadsr_denoiser_create(&f->dn, f->m, f->a, f->g, f->sem));
}

/* Another denoiser on the same parts with the inference rule of @p dp. */
static iadsr_denoiser *fix_with(const fix *f, const iadsr_denoise_params *dp)
{
    iadsr_gate *g = NULL;
    TU_OK(iadsr_gate_with_params(&g, f->g, dp));
    iadsr_denoiser *dn = NULL;
    TU_OK(iadsr_denoiser_create(&dn, f->m, f->a, g, f->sem));
    iadsr_gate_free(g); /* the denoiser holds a reference */
    return dn;
}

static void fix_close(fix *f)
{
    iadsr_denoiser_free(f->dn);
    iadsr_model_free(f->m);
    iadsr_aligner_free(f->a);
    iadsr_gate_free(f->g);
    iadsr_semantic_free(f->sem);
    memset(f, 0, sizeof *f);
}

static void rand_seq(iadsr__rng *r, int32_t *seq, int n, int32_t n_items)
{
    for (int t = 0; t < n; t++)
        seq[t] = 1 + (int32_t)iadsr__rng_below(r, (uint64_t)n_items);
}

/* The documented inference rule holds for one clean() result: only scores
 * <= theta are dropped, never the protected last item, at most
 * floor(max_drop * n) and exactly that many when there are more
 * candidates, the lowest (score, position) first; cleaned = kept items. */
static void check_rule(const iadsr_denoise_params *p, const int32_t *seq,
                       int n, const uint8_t *keep, const float *score,
                       const int32_t *cleaned, int32_t n_kept,
                       const char *what)
{
    int cap = (int)floor((double)p->max_drop * n + 1e-6);
    int last = p->protect_last ? n - 1 : -1, kept = 0, dropped = 0, cand = 0;
    for (int t = 0; t < n; t++) {
        ck_assert_msg(isfinite(score[t]) && fabsf(score[t]) <= 3.0f + 1e-5f,
                      "%s: score[%d] = %g", what, t, (double)score[t]);
        ck_assert_msg(keep[t] == 0 || keep[t] == 1, "%s: keep[%d] = %d",
                      what, t, keep[t]);
        if (score[t] <= p->theta && t != last)
            cand++;
        if (keep[t]) {
            if (cleaned)
                ck_assert_msg(cleaned[kept] == seq[t],
                              "%s: cleaned[%d] = %d, expected seq[%d] = %d",
                              what, kept, cleaned[kept], t, seq[t]);
            kept++;
            continue;
        }
        dropped++;
        ck_assert_msg(t != last, "%s: the protected last item was dropped",
                      what);
        ck_assert_msg(score[t] <= p->theta,
                      "%s: position %d dropped with score %g > theta %g",
                      what, t, (double)score[t], (double)p->theta);
    }
    ck_assert_msg(kept == n_kept, "%s: n_kept %d, %d kept", what, n_kept,
                  kept);
    ck_assert_msg(dropped == (cand < cap ? cand : cap),
                  "%s: n %d, %d candidates, cap %d, %d dropped", what, n, cand,
                  cap, dropped);
    for (int t = 0; t < n; t++) {
        if (keep[t])
            continue;
        for (int u = 0; u < n; u++)
            if (keep[u] && u != last && score[u] <= p->theta)
                ck_assert_msg(score[t] < score[u] ||
                                  (t < u && score[t] == score[u]),
                              "%s: dropped %d (%g) but kept %d (%g)", what, t,
                              (double)score[t], u, (double)score[u]);
    }
}

/* ---- allocation failures ------------------------------------------------------- */

/* One operation under test: on success it releases what it made (so the
 * live count returns to its start), on failure it checks that its
 * out-parameters are NULL or untouched. */
typedef int (*oom_op)(void *ctx);

/* SQLite-style loop: fail allocation k (transient, then persistent) until
 * the operation completes without reaching k. Every injected failure must
 * give IADSR_ERR_NOMEM with a message and leak nothing. */
static void oom_loop(const char *what, oom_op op, void *ctx, long max_k)
{
    for (int persistent = 0; persistent <= 1; persistent++) {
        long k;
        for (k = 1; k < max_k; k++) {
            long live = iadsr__alloc_live();
            iadsr_clear_error();
            iadsr__alloc_fail_after(k, persistent);
            int rc = op(ctx);
            long made = iadsr__alloc_fail_after(0, 0);
            if (made < k) {
                ck_assert_msg(rc == IADSR_OK, "%s: k=%ld: %s (%s)", what, k,
                              iadsr_status_name(rc), iadsr_last_error());
                ck_assert_int_eq(iadsr__alloc_live(), live);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM,
                          "%s: k=%ld persistent=%d: got %s (%s)", what, k,
                          persistent, iadsr_status_name(rc),
                          iadsr_last_error());
            ck_assert_msg(iadsr_last_error()[0] != '\0',
                          "%s: k=%ld: no message", what, k);
            ck_assert_msg(iadsr__alloc_live() == live,
                          "%s: k=%ld persistent=%d: %ld blocks leaked", what,
                          k, persistent, iadsr__alloc_live() - live);
        }
        ck_assert_msg(k > 1 && k < max_k, "%s: loop ended at k=%ld", what, k);
    }
}

/* ---- 1. params ------------------------------------------------------------------- */

START_TEST(test_params_defaults)
{
    iadsr_denoise_params p;
    memset(&p, 0xab, sizeof p);
    iadsr_denoise_params_init(&p);
    iadsr_denoise_params_init(NULL);
    ck_assert_uint_eq(p.struct_size, sizeof p);
    ck_assert_uint_eq(p.flags, 0);
    ck_assert(p.lambda_align == 1.0f);
    ck_assert(p.lambda_recon == 1.0f);
    ck_assert(p.tau_align == 0.1f);
    ck_assert(p.tau_gumbel == 1.0f);
    ck_assert(p.theta == 0.0f);
    ck_assert(p.max_drop == 0.3f);
    ck_assert_int_eq(p.protect_last, 1);
    ck_assert_uint_eq(p.reserved0, 0);
    ck_assert_uint_eq(p.seed, 7);
    /* layout of the 0.3.0 struct */
    ck_assert_uint_eq(sizeof p, 48);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, flags), 4);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, lambda_align), 8);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, max_drop), 28);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, protect_last), 32);
    ck_assert_uint_eq(offsetof(iadsr_denoise_params, seed), 40);

    iadsr_denoise_params g;
    memset(&g, 0x55, sizeof g);
    TU_OK(iadsr__denoise_params_get(&g, NULL));
    ck_assert(memcmp(&g, &p, sizeof p) == 0);
    memset(&g, 0x55, sizeof g);
    TU_OK(iadsr__denoise_params_get(&g, &p));
    ck_assert(memcmp(&g, &p, sizeof p) == 0);
}
END_TEST

enum { F_I32, F_U32, F_F32 };

typedef struct bound_case {
    const char *field; /* also expected in the message */
    size_t off;
    int kind;
    double value;
    int expect;
} bound_case;

#define DP(f) #f, offsetof(iadsr_denoise_params, f)
static const bound_case dn_cases[] = {
    {DP(flags), F_U32, 512, IADSR_ERR_UNSUPPORTED},
    {DP(flags), F_U32, 0x80000000u, IADSR_ERR_UNSUPPORTED},
    {DP(flags), F_U32, 1023, IADSR_ERR_UNSUPPORTED},
    {DP(flags), F_U32, 256, IADSR_ERR_INVALID_ARG}, /* the text: detector */
    {DP(flags), F_U32, 256 | 8, IADSR_OK},
    {DP(flags), F_U32, 256 | 8 | 1, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 128, IADSR_OK},     /* the back-off, any gate */
    {DP(flags), F_U32, 128 | 8 | 16, IADSR_OK},
    {DP(flags), F_U32, 128 | 4, IADSR_OK},
    {DP(flags), F_U32, 63, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 32, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 64, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 64 | 16, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 32 | 8, IADSR_OK},
    {DP(flags), F_U32, 64 | 8, IADSR_OK},
    {DP(flags), F_U32, 64 | 32 | 16 | 8 | 1, IADSR_OK},
    {DP(flags), F_U32, 64 | 8 | 2, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 16, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 16 | 1, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 16 | 8, IADSR_OK},
    {DP(flags), F_U32, 16 | 8 | 1, IADSR_OK},
    {DP(flags), F_U32, 16 | 8 | 4, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 8 | 4, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 8 | 2, IADSR_ERR_INVALID_ARG},
    {DP(flags), F_U32, 8 | 1, IADSR_OK},
    {DP(flags), F_U32, 3, IADSR_OK},
    {DP(flags), F_U32, 7, IADSR_OK},
    {DP(lambda_align), F_F32, -0.1, IADSR_ERR_INVALID_ARG},
    {DP(lambda_align), F_F32, -1e-30, IADSR_ERR_INVALID_ARG},
    {DP(lambda_align), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(lambda_align), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {DP(lambda_align), F_F32, 0.0, IADSR_OK},
    {DP(lambda_align), F_F32, 25.0, IADSR_OK},
    {DP(lambda_recon), F_F32, -2.0, IADSR_ERR_INVALID_ARG},
    {DP(lambda_recon), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(lambda_recon), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {DP(lambda_recon), F_F32, 0.0, IADSR_OK},
    {DP(tau_align), F_F32, 0.0, IADSR_ERR_INVALID_ARG},
    {DP(tau_align), F_F32, -0.1, IADSR_ERR_INVALID_ARG},
    {DP(tau_align), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(tau_align), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {DP(tau_align), F_F32, 1e-3, IADSR_OK},
    {DP(tau_gumbel), F_F32, 0.0, IADSR_ERR_INVALID_ARG},
    {DP(tau_gumbel), F_F32, -1.0, IADSR_ERR_INVALID_ARG},
    {DP(tau_gumbel), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(tau_gumbel), F_F32, (double)-INFINITY, IADSR_ERR_INVALID_ARG},
    {DP(tau_gumbel), F_F32, 0.25, IADSR_OK},
    {DP(theta), F_F32, -3.01, IADSR_ERR_INVALID_ARG},
    {DP(theta), F_F32, 3.01, IADSR_ERR_INVALID_ARG},
    {DP(theta), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(theta), F_F32, (double)INFINITY, IADSR_ERR_INVALID_ARG},
    {DP(theta), F_F32, -3.0, IADSR_OK},
    {DP(theta), F_F32, 3.0, IADSR_OK},
    {DP(max_drop), F_F32, -0.01, IADSR_ERR_INVALID_ARG},
    {DP(max_drop), F_F32, 1.01, IADSR_ERR_INVALID_ARG},
    {DP(max_drop), F_F32, (double)NAN, IADSR_ERR_INVALID_ARG},
    {DP(max_drop), F_F32, 0.0, IADSR_OK},
    {DP(max_drop), F_F32, 1.0, IADSR_OK},
    {DP(protect_last), F_I32, -1, IADSR_ERR_INVALID_ARG},
    {DP(protect_last), F_I32, 2, IADSR_ERR_INVALID_ARG},
    {DP(protect_last), F_I32, 0, IADSR_OK},
    {DP(reserved0), F_U32, 1, IADSR_ERR_INVALID_ARG},
    {DP(seed), F_U32, 0, IADSR_OK},
};

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

START_TEST(test_params_bounds)
{
    iadsr_model *m = tu_model(NI, 1);
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    for (size_t i = 0; i < sizeof dn_cases / sizeof dn_cases[0]; i++) {
        const bound_case *bc = &dn_cases[i];
        iadsr_denoise_params p, got;
        iadsr_denoise_params_init(&p);
        set_field(&p, bc);
        iadsr_clear_error();
        int rc = iadsr__denoise_params_get(&got, &p);
        ck_assert_msg(rc == bc->expect, "%s = %g: got %s, want %s (%s)",
                      bc->field, bc->value, iadsr_status_name(rc),
                      iadsr_status_name(bc->expect), iadsr_last_error());
        if (rc != IADSR_OK)
            ck_assert_msg(strstr(iadsr_last_error(), bc->field) != NULL,
                          "message '%s' does not name %s", iadsr_last_error(),
                          bc->field);
        /* every public function taking the params agrees */
        iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
        ck_assert_int_eq(iadsr_aligner_create(&a, 8, 5, &p), bc->expect);
        ck_assert(rc == IADSR_OK ? a != NULL : a == NULL);
        iadsr_gate *g = TU_SENTINEL(iadsr_gate);
        ck_assert_int_eq(iadsr_gate_create(&g, 8, &p), bc->expect);
        ck_assert(rc == IADSR_OK ? g != NULL : g == NULL);
        iadsr_gate *g2 = TU_SENTINEL(iadsr_gate);
        if (g) {
            ck_assert_int_eq(iadsr_gate_with_params(&g2, g, &p), bc->expect);
            iadsr_gate_free(g2);
        }
        iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
        ck_assert_int_eq(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp,
                                                    &p),
                         bc->expect);
        ck_assert(rc == IADSR_OK ? t != NULL : t == NULL);
        iadsr_trainer_free(t);
        iadsr_aligner_free(a);
        iadsr_gate_free(g);
    }
    /* the message carries the value */
    iadsr_denoise_params p, got;
    iadsr_denoise_params_init(&p);
    p.max_drop = 1.5f;
    TU_EXPECT_ERR(iadsr__denoise_params_get(&got, &p), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "max_drop = 1.5"));
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
    iadsr_model_free(m);
}
END_TEST

START_TEST(test_params_struct_size)
{
    iadsr_denoise_params p;
    iadsr_aligner *a = NULL;
    /* too small, zero, absurd */
    const uint32_t bad[] = {0, 4, (uint32_t)sizeof p - 8, 0xababababu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        iadsr_denoise_params_init(&p);
        p.struct_size = bad[i];
        a = TU_SENTINEL(iadsr_aligner);
        TU_EXPECT_ERR(iadsr_aligner_create(&a, 8, 5, &p),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(a);
        iadsr_gate *g = TU_SENTINEL(iadsr_gate);
        TU_EXPECT_ERR(iadsr_gate_create(&g, 8, &p), IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(g);
    }
    /* a larger (newer) struct: zero tail accepted, non-zero tail refused */
    struct {
        iadsr_denoise_params p;
        uint64_t extra[2];
    } big;
    memset(&big, 0, sizeof big);
    iadsr_denoise_params_init(&big.p);
    big.p.theta = 0.5f;
    big.p.struct_size = sizeof big;
    iadsr_gate *g = NULL;
    TU_OK(iadsr_gate_create(&g, 8, &big.p));
    iadsr_denoise_params out;
    out.struct_size = sizeof out;
    TU_OK(iadsr_gate_get_params(g, &out));
    ck_assert(out.theta == 0.5f);
    ck_assert_uint_eq(out.struct_size, sizeof out);
    iadsr_gate_free(g);
    big.extra[1] = 1;
    g = TU_SENTINEL(iadsr_gate);
    TU_EXPECT_ERR(iadsr_gate_create(&g, 8, &big.p), IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(g);
    a = TU_SENTINEL(iadsr_aligner);
    TU_EXPECT_ERR(iadsr_aligner_create(&a, 8, 5, &big.p),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(a);
}
END_TEST

/* ---- 2. aligner and gate handles ------------------------------------------------ */

START_TEST(test_aligner_create)
{
    iadsr_aligner *a = NULL;
    TU_EXPECT_ERR(iadsr_aligner_create(NULL, 8, 5, NULL),
                  IADSR_ERR_INVALID_ARG);
    const int32_t dims[][2] = {{0, 5},    {-1, 5},      {4097, 5},
                               {8, 0},    {8, -3},      {8, 1048577},
                               {INT32_MIN, 5}, {8, INT32_MAX}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        a = TU_SENTINEL(iadsr_aligner);
        TU_EXPECT_ERR(iadsr_aligner_create(&a, dims[i][0], dims[i][1], NULL),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(a);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "dim"));
    }
    /* the extreme accepted shapes */
    TU_OK(iadsr_aligner_create(&a, 1, 1, NULL));
    ck_assert_int_eq(iadsr_aligner_dim(a), 1);
    iadsr_aligner_free(a);
    TU_OK(iadsr_aligner_create(&a, 4096, 1, NULL));
    iadsr_aligner_free(a);
    TU_OK(iadsr_aligner_create(&a, 1, 1048576, NULL));
    ck_assert_int_eq(iadsr_aligner_semantic_dim(a), 1048576);
    iadsr_aligner_free(a);

    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.tau_align = 0.25f;
    TU_OK(iadsr_aligner_create(&a, 8, 5, &dp));
    ck_assert_int_eq(iadsr_aligner_dim(a), 8);
    ck_assert_int_eq(iadsr_aligner_semantic_dim(a), 5);
    ck_assert(a->tau_align == 0.25f);
    /* Xavier-uniform: inside +-sqrt(6 / (D + d)), spread out, W1 != W2 */
    double bound = sqrt(6.0 / 13.0), mx = 0;
    for (size_t i = 0; i < aligner_floats(a); i++) {
        ck_assert(isfinite(a->w[i]) && fabs(a->w[i]) <= bound);
        mx = fmax(mx, fabs(a->w[i]));
    }
    ck_assert(mx > 0.5 * bound);
    ck_assert(memcmp(a->w1, a->w2, 40 * sizeof(float)) != 0);
    /* the seed decides the weights */
    iadsr_aligner *b = NULL, *c = NULL;
    TU_OK(iadsr_aligner_create(&b, 8, 5, &dp));
    ck_assert(memcmp(a->w, b->w, aligner_floats(a) * sizeof(float)) == 0);
    dp.seed = 8;
    TU_OK(iadsr_aligner_create(&c, 8, 5, &dp));
    ck_assert(memcmp(a->w, c->w, aligner_floats(a) * sizeof(float)) != 0);
    iadsr_aligner_free(b);
    iadsr_aligner_free(c);

    /* project: out = W1 x or W2 x (x W orientation inside) */
    float x[5] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f}, out[8], keep[8];
    for (int which = 1; which <= 2; which++) {
        TU_OK(iadsr_aligner_project(a, which, x, out));
        const float *w = which == 1 ? a->w1 : a->w2;
        for (int k = 0; k < 8; k++) {
            double want = 0;
            for (int j = 0; j < 5; j++)
                want += (double)x[j] * (double)w[j * 8 + k];
            ck_assert_msg(fabs((double)out[k] - want) <= 1e-6,
                          "project %d: out[%d] = %g, expected %g", which, k,
                          (double)out[k], want);
        }
    }
    for (int k = 0; k < 8; k++)
        out[k] = keep[k] = -42.0f;
    TU_EXPECT_ERR(iadsr_aligner_project(a, 0, x, out), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_aligner_project(a, 3, x, out), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_aligner_project(a, -1, x, out), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_aligner_project(a, 1, NULL, out),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_aligner_project(a, 1, x, NULL),
                  IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_aligner_project(NULL, 1, x, out),
                  IADSR_ERR_INVALID_ARG);
    ck_assert(memcmp(out, keep, sizeof out) == 0);
    ck_assert_int_eq(iadsr_aligner_dim(NULL), 0);
    ck_assert_int_eq(iadsr_aligner_semantic_dim(NULL), 0);
    iadsr_aligner_free(a);
}
END_TEST

START_TEST(test_gate_create_and_params)
{
    iadsr_gate *g = NULL;
    TU_EXPECT_ERR(iadsr_gate_create(NULL, 8, NULL), IADSR_ERR_INVALID_ARG);
    const int32_t dims[] = {0, -1, 4097, INT32_MAX};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        g = TU_SENTINEL(iadsr_gate);
        TU_EXPECT_ERR(iadsr_gate_create(&g, dims[i], NULL),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(g);
    }
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.theta = 0.4f;
    dp.max_drop = 0.25f;
    dp.protect_last = 0;
    dp.tau_gumbel = 0.5f;
    dp.flags = IADSR_DENOISE_F_COLLAB_ONLY;
    dp.lambda_align = 2.0f;
    dp.lambda_recon = 0.5f;
    dp.tau_align = 0.2f;
    dp.seed = 11;
    TU_OK(iadsr_gate_create(&g, 8, &dp));
    ck_assert_int_eq(iadsr_gate_dim(g), 8);
    ck_assert_int_eq(iadsr_gate_dim(NULL), 0);
    /* decoder: Xavier Wd, zero bias */
    double bound = sqrt(6.0 / 16.0);
    for (int i = 0; i < 64; i++)
        ck_assert(fabs(g->wd[i]) <= bound);
    for (int i = 0; i < 8; i++)
        ck_assert(g->bd[i] == 0.0f);

    iadsr_denoise_params out;
    memset(&out, 0xcd, sizeof out);
    out.struct_size = sizeof out;
    TU_OK(iadsr_gate_get_params(g, &out));
    ck_assert(memcmp(&out, &dp, sizeof dp) == 0);
    TU_EXPECT_ERR(iadsr_gate_get_params(NULL, &out), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_gate_get_params(g, NULL), IADSR_ERR_INVALID_ARG);
    out.struct_size = sizeof out - 8;
    TU_EXPECT_ERR(iadsr_gate_get_params(g, &out), IADSR_ERR_INVALID_ARG);
    out.struct_size = 0;
    TU_EXPECT_ERR(iadsr_gate_get_params(g, &out), IADSR_ERR_INVALID_ARG);
    /* a larger caller struct keeps its struct_size (as every output
     * struct, docs/ABI.md); only the library's part is written */
    struct {
        iadsr_denoise_params p;
        uint32_t extra[4];
    } big;
    memset(&big, 0, sizeof big);
    big.p.struct_size = sizeof big;
    TU_OK(iadsr_gate_get_params(g, &big.p));
    ck_assert_uint_eq(big.p.struct_size, sizeof big);
    ck_assert(big.p.theta == 0.4f && big.extra[3] == 0);

    /* with_params: same decoder bytes, the new inference rule, the
     * training settings of the original */
    iadsr_denoise_params np;
    iadsr_denoise_params_init(&np);
    np.theta = -0.5f;
    np.max_drop = 0.6f;
    np.protect_last = 1;
    np.tau_gumbel = 2.0f;
    np.lambda_align = 5.0f;
    np.lambda_recon = 7.0f;
    np.tau_align = 0.9f;
    np.seed = 99;
    np.flags = IADSR_DENOISE_F_CARRY_MASKS;
    iadsr_gate *g2 = NULL;
    TU_OK(iadsr_gate_with_params(&g2, g, &np));
    ck_assert_ptr_ne(g2, g);
    ck_assert_int_eq(iadsr_gate_dim(g2), 8);
    ck_assert(memcmp(g2->w, g->w, gate_floats(g) * sizeof(float)) == 0);
    out.struct_size = sizeof out;
    TU_OK(iadsr_gate_get_params(g2, &out));
    ck_assert(out.theta == -0.5f && out.max_drop == 0.6f);
    ck_assert_int_eq(out.protect_last, 1);
    ck_assert(out.tau_gumbel == 2.0f);
    ck_assert(out.lambda_align == 2.0f && out.lambda_recon == 0.5f);
    ck_assert(out.tau_align == 0.2f);
    ck_assert_uint_eq(out.seed, 11);
    /* COLLAB_ONLY is part of the rule (from np: off), CARRY_MASKS of the
     * training (from g: off) */
    ck_assert_uint_eq(out.flags, 0);
    /* the original is unchanged */
    TU_OK(iadsr_gate_get_params(g, &out));
    ck_assert(memcmp(&out, &dp, sizeof dp) == 0);
    /* NULL params = the default rule */
    iadsr_gate *g3 = NULL;
    TU_OK(iadsr_gate_with_params(&g3, g2, NULL));
    TU_OK(iadsr_gate_get_params(g3, &out));
    ck_assert(out.theta == 0.0f && out.max_drop == 0.3f);
    ck_assert(out.lambda_align == 2.0f);
    ck_assert(memcmp(g3->w, g->w, gate_floats(g) * sizeof(float)) == 0);
    iadsr_gate_free(g2);
    iadsr_gate_free(g3);

    TU_EXPECT_ERR(iadsr_gate_with_params(NULL, g, &np),
                  IADSR_ERR_INVALID_ARG);
    g2 = TU_SENTINEL(iadsr_gate);
    TU_EXPECT_ERR(iadsr_gate_with_params(&g2, NULL, &np),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(g2);
    np.max_drop = 2.0f;
    g2 = TU_SENTINEL(iadsr_gate);
    TU_EXPECT_ERR(iadsr_gate_with_params(&g2, g, &np), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(g2);
    iadsr_gate_free(g);
}
END_TEST

START_TEST(test_free_and_foreign)
{
    long live = iadsr__alloc_live();
    iadsr_aligner_free(NULL);
    iadsr_gate_free(NULL);
    iadsr_denoiser_free(NULL);
    fix f;
    fix_open(&f, 0, NULL, 21);
    float x[DS] = {1}, out[16];
    int32_t seq[3] = {1, 2, 3};
    uint8_t keep[3];

    /* freed handles (dead magic) and zeroed structs are refused */
    struct iadsr_aligner da = *f.a, za;
    struct iadsr_gate dg = *f.g, zg;
    struct iadsr_denoiser dd = *f.dn, zd;
    da.magic = dg.magic = dd.magic = IADSR__MAGIC_DEAD;
    memset(&za, 0, sizeof za);
    memset(&zg, 0, sizeof zg);
    memset(&zd, 0, sizeof zd);
    const iadsr_aligner *bad_a[] = {&da, &za, AS(iadsr_aligner, f.g),
                                    AS(iadsr_aligner, f.m)};
    const iadsr_gate *bad_g[] = {&dg, &zg, AS(iadsr_gate, f.a),
                                 AS(iadsr_gate, f.sem)};
    const iadsr_denoiser *bad_d[] = {&dd, &zd, AS(iadsr_denoiser, f.a),
                                     AS(iadsr_denoiser, f.m)};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(iadsr_aligner_dim(bad_a[i]), 0);
        ck_assert_int_eq(iadsr_aligner_semantic_dim(bad_a[i]), 0);
        TU_EXPECT_ERR(iadsr_aligner_project(bad_a[i], 1, x, out),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_int_eq(iadsr_gate_dim(bad_g[i]), 0);
        iadsr_denoise_params p;
        p.struct_size = sizeof p;
        TU_EXPECT_ERR(iadsr_gate_get_params(bad_g[i], &p),
                      IADSR_ERR_INVALID_ARG);
        iadsr_gate *g2 = TU_SENTINEL(iadsr_gate);
        TU_EXPECT_ERR(iadsr_gate_with_params(&g2, bad_g[i], NULL),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(g2);
        iadsr_denoiser *dn = TU_SENTINEL(iadsr_denoiser);
        TU_EXPECT_ERR(iadsr_denoiser_create(&dn, f.m, bad_a[i], f.g, f.sem),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(dn);
        dn = TU_SENTINEL(iadsr_denoiser);
        TU_EXPECT_ERR(iadsr_denoiser_create(&dn, f.m, f.a, bad_g[i], f.sem),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(dn);
        TU_EXPECT_ERR(iadsr_denoiser_clean(bad_d[i], seq, 3, NULL, keep, NULL,
                                           NULL, NULL),
                      IADSR_ERR_INVALID_ARG);
        iadsr_dataset *o = TU_SENTINEL(iadsr_dataset);
        iadsr_dataset *d = small_data();
        TU_EXPECT_ERR(iadsr_denoiser_clean_dataset(bad_d[i], d, 0, NULL, 1,
                                                   &o, NULL, NULL),
                      IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(o);
        iadsr_dataset_free(d);
    }
    /* freeing a foreign handle is ignored (and frees nothing it points to) */
    iadsr_aligner_free(&da);
    iadsr_aligner_free(&za);
    iadsr_gate_free(&dg);
    iadsr_gate_free(&zg);
    iadsr_denoiser_free(&dd);
    iadsr_denoiser_free(&zd);
    iadsr_aligner_free(AS(iadsr_aligner, f.g));
    iadsr_gate_free(AS(iadsr_gate, f.a));
    iadsr_denoiser_free(AS(iadsr_denoiser, f.a));
    ck_assert_int_eq(iadsr_aligner_dim(f.a), 16);
    ck_assert_int_eq(iadsr_gate_dim(f.g), 16);

    /* the denoiser keeps its parts alive */
    iadsr_denoiser *dn = f.dn;
    f.dn = NULL;
    float s1[3], s2[3];
    TU_OK(iadsr_denoiser_clean(dn, seq, 3, NULL, keep, s1, NULL, NULL));
    fix_close(&f);
    TU_OK(iadsr_denoiser_clean(dn, seq, 3, NULL, keep, s2, NULL, NULL));
    ck_assert(memcmp(s1, s2, sizeof s1) == 0);
    iadsr_denoiser_free(dn);
    ck_assert_int_eq(iadsr__alloc_live(), live);
}
END_TEST

typedef struct handle_ctx {
    const iadsr_denoise_params *dp;
    const iadsr_gate *g;
    const iadsr_model *m;
    const iadsr_aligner *a;
    const iadsr_semantic *sem;
} handle_ctx;

static int op_aligner(void *ctx)
{
    handle_ctx *c = ctx;
    iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
    int rc = iadsr_aligner_create(&a, 16, DS, c->dp);
    if (rc) {
        ck_assert_ptr_null(a);
        return rc;
    }
    iadsr_aligner_free(a);
    return rc;
}

static int op_gate(void *ctx)
{
    handle_ctx *c = ctx;
    iadsr_gate *g = TU_SENTINEL(iadsr_gate);
    int rc = iadsr_gate_create(&g, 16, c->dp);
    if (rc) {
        ck_assert_ptr_null(g);
        return rc;
    }
    iadsr_gate_free(g);
    return rc;
}

static int op_gate_with(void *ctx)
{
    handle_ctx *c = ctx;
    iadsr_gate *g = TU_SENTINEL(iadsr_gate);
    int rc = iadsr_gate_with_params(&g, c->g, c->dp);
    if (rc) {
        ck_assert_ptr_null(g);
        return rc;
    }
    iadsr_gate_free(g);
    return rc;
}

static int op_denoiser(void *ctx)
{
    handle_ctx *c = ctx;
    iadsr_denoiser *dn = TU_SENTINEL(iadsr_denoiser);
    int rc = iadsr_denoiser_create(&dn, c->m, c->a, c->g, c->sem);
    if (rc) {
        ck_assert_ptr_null(dn);
        return rc;
    }
    iadsr_denoiser_free(dn);
    return rc;
}

START_TEST(test_handles_alloc_failures)
{
    fix f;
    fix_open(&f, 0, NULL, 23);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.theta = 1.0f;
    handle_ctx c = {&dp, f.g, f.m, f.a, f.sem};
    oom_loop("aligner_create", op_aligner, &c, 100);
    oom_loop("gate_create", op_gate, &c, 100);
    oom_loop("gate_with_params", op_gate_with, &c, 100);
    oom_loop("denoiser_create", op_denoiser, &c, 100);
    fix_close(&f);
}
END_TEST

/* ---- 3. the inference rule (iadsr__gate_decide) ------------------------------ */

static iadsr_denoise_params rule(float theta, float max_drop, int protect)
{
    iadsr_denoise_params p;
    iadsr_denoise_params_init(&p);
    p.theta = theta;
    p.max_drop = max_drop;
    p.protect_last = protect;
    return p;
}

static int32_t decide(const iadsr_denoise_params *p, const float *s, int n,
                      uint8_t *keep)
{
    int32_t *order = malloc((size_t)n * sizeof(int32_t));
    ck_assert_ptr_nonnull(order);
    memset(keep, 0xee, (size_t)n);
    int32_t kept = iadsr__gate_decide(p, s, n, keep, order);
    free(order);
    int32_t c = 0;
    for (int t = 0; t < n; t++) {
        ck_assert(keep[t] == 0 || keep[t] == 1);
        c += keep[t];
    }
    ck_assert_int_eq(c, kept);
    return kept;
}

static void expect_keep(const uint8_t *keep, const uint8_t *want, int n,
                        const char *what)
{
    for (int t = 0; t < n; t++)
        ck_assert_msg(keep[t] == want[t], "%s: keep[%d] = %d, expected %d",
                      what, t, keep[t], want[t]);
}

START_TEST(test_decide_theta)
{
    const float s[7] = {0.5f, 0.2f, -1.0f, 0.21f, 3.0f, -3.0f, 0.19f};
    uint8_t keep[7];
    iadsr_denoise_params p = rule(0.2f, 1.0f, 0);
    /* keep iff score > theta; a score equal to theta is dropped */
    ck_assert_int_eq(decide(&p, s, 7, keep), 3);
    const uint8_t w1[7] = {1, 0, 0, 1, 1, 0, 0};
    expect_keep(keep, w1, 7, "theta 0.2");
    p = rule(-3.0f, 1.0f, 0);
    ck_assert_int_eq(decide(&p, s, 7, keep), 6);
    ck_assert_int_eq(keep[5], 0);
    p = rule(3.0f, 1.0f, 0);
    ck_assert_int_eq(decide(&p, s, 7, keep), 0);
    /* protect_last keeps the last one whatever its score */
    p = rule(0.2f, 1.0f, 1);
    ck_assert_int_eq(decide(&p, s, 7, keep), 4);
    const uint8_t w2[7] = {1, 0, 0, 1, 1, 0, 1};
    expect_keep(keep, w2, 7, "protect_last");
}
END_TEST

START_TEST(test_decide_cap_and_ties)
{
    uint8_t keep[10];
    /* all candidates, distinct scores: floor(0.3 * 10) = 3 lowest go */
    const float s[10] = {0.9f, -0.5f, 0.1f, -2.0f, 0.4f,
                         -0.1f, 0.7f, 0.3f, -1.0f, 0.8f};
    iadsr_denoise_params p = rule(3.0f, 0.3f, 0);
    ck_assert_int_eq(decide(&p, s, 10, keep), 7);
    const uint8_t w1[10] = {1, 0, 1, 0, 1, 1, 1, 1, 0, 1};
    expect_keep(keep, w1, 10, "cap 3");
    /* fewer candidates than the cap: all of them */
    p = rule(-0.75f, 0.3f, 0);
    ck_assert_int_eq(decide(&p, s, 10, keep), 8);
    ck_assert(keep[3] == 0 && keep[8] == 0);
    /* ties drop the older position */
    const float eq[10] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
                          0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    p = rule(1.0f, 0.3f, 0);
    ck_assert_int_eq(decide(&p, eq, 10, keep), 7);
    const uint8_t w2[10] = {0, 0, 0, 1, 1, 1, 1, 1, 1, 1};
    expect_keep(keep, w2, 10, "all tied");
    const float mix[10] = {1, 0, 0, 0, 2, 0, 5, 6, 7, 8};
    p = rule(3.0f, 0.3f, 0);
    ck_assert_int_eq(decide(&p, mix, 10, keep), 7);
    const uint8_t w3[10] = {1, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    expect_keep(keep, w3, 10, "four tied lowest");
    /* protect_last with the lowest score last: the cap goes to the others */
    const float low_last[10] = {5, 4, 3, 2, 1, 0, -1, -2, -2.5f, -3};
    p = rule(3.0f, 0.3f, 1);
    ck_assert_int_eq(decide(&p, low_last, 10, keep), 7);
    const uint8_t w4[10] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1};
    expect_keep(keep, w4, 10, "protect_last under the cap");
    p = rule(3.0f, 0.3f, 0);
    decide(&p, low_last, 10, keep);
    const uint8_t w5[10] = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    expect_keep(keep, w5, 10, "last may go");
    /* max_drop 0 keeps everything, max_drop 1 allows all */
    p = rule(3.0f, 0.0f, 0);
    ck_assert_int_eq(decide(&p, s, 10, keep), 10);
    p = rule(3.0f, 1.0f, 0);
    ck_assert_int_eq(decide(&p, s, 10, keep), 0);
    p = rule(3.0f, 1.0f, 1);
    ck_assert_int_eq(decide(&p, s, 10, keep), 1);
    ck_assert_int_eq(keep[9], 1);
}
END_TEST

START_TEST(test_decide_single)
{
    const float lo = -2.0f, hi = 2.0f;
    uint8_t keep[1];
    iadsr_denoise_params p = rule(0.0f, 1.0f, 1);
    ck_assert_int_eq(decide(&p, &lo, 1, keep), 1); /* protected */
    p = rule(0.0f, 1.0f, 0);
    ck_assert_int_eq(decide(&p, &lo, 1, keep), 0);
    ck_assert_int_eq(decide(&p, &hi, 1, keep), 1);
    p = rule(0.0f, 0.5f, 0); /* floor(0.5 * 1) = 0 */
    ck_assert_int_eq(decide(&p, &lo, 1, keep), 1);
    p = rule(0.0f, 0.0f, 0);
    ck_assert_int_eq(decide(&p, &lo, 1, keep), 1);
}
END_TEST

/* iadsr.h: "never drop more than floor(max_drop * n)", with max_drop as
 * the user wrote it: 0.7 of 10 items is 7, not 6 (0.7f is a hair below
 * 0.7; the cap must not lose an item to that). */
START_TEST(test_decide_cap_decimal)
{
    char fails[512] = "";
    for (int k = 1; k <= 10; k++) {
        iadsr_denoise_params p = rule(3.0f, (float)k / 10.0f, 0);
        for (int n = 10; n <= 100; n += 10) {
            float *s = calloc((size_t)n, sizeof(float));
            uint8_t *keep = malloc((size_t)n);
            ck_assert(s && keep);
            int dropped = n - decide(&p, s, n, keep);
            free(s);
            free(keep);
            if (dropped != k * n / 10 && strlen(fails) < 400) {
                size_t len = strlen(fails);
                snprintf(fails + len, sizeof fails - len,
                         " max_drop %.1f n %d: %d;", (double)p.max_drop, n,
                         dropped);
            }
        }
    }
    ck_assert_msg(fails[0] == '\0', "cap below floor(max_drop * n):%s", fails);
}
END_TEST

static int cmp_pos(const void *a, const void *b, const float *s)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (s[x] != s[y])
        return s[x] < s[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static const float *sort_scores;
static int cmp_sorted(const void *a, const void *b)
{
    return cmp_pos(a, b, sort_scores);
}

START_TEST(test_decide_long)
{
    const int n = 10000;
    float *s = malloc((size_t)n * sizeof(float));
    uint8_t *keep = malloc((size_t)n);
    int32_t *cand = malloc((size_t)n * sizeof(int32_t));
    ck_assert(s && keep && cand);
    iadsr__rng r;
    iadsr__rng_seed(&r, 41);
    for (int t = 0; t < n; t++) /* coarse values: many ties */
        s[t] = (float)((int)iadsr__rng_below(&r, 601) - 300) / 100.0f;
    iadsr_denoise_params p = rule(0.5f, 0.3f, 1);
    double t0 = iadsr__now();
    int32_t kept = decide(&p, s, n, keep);
    /* the reference: sort the candidates by (score, position) */
    int nc = 0;
    for (int t = 0; t < n - 1; t++)
        if (s[t] <= 0.5f)
            cand[nc++] = t;
    sort_scores = s;
    qsort(cand, (size_t)nc, sizeof *cand, cmp_sorted);
    int cap = 3000;
    ck_assert_int_gt(nc, cap);
    ck_assert_int_eq(kept, n - cap);
    for (int i = 0; i < nc; i++)
        ck_assert_msg(keep[cand[i]] == (i >= cap),
                      "candidate %d (pos %d, score %g): keep %d", i, cand[i],
                      (double)s[cand[i]], keep[cand[i]]);
    ck_assert_int_eq(keep[n - 1], 1);
    /* all equal: the 3000 oldest go */
    for (int t = 0; t < n; t++)
        s[t] = -1.0f;
    ck_assert_int_eq(decide(&p, s, n, keep), n - cap);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(keep[t], t >= cap);
    /* descending scores (a heap's worst case for naive code) */
    for (int t = 0; t < n; t++)
        s[t] = 2.0f - 4.0f * (float)t / (float)n;
    p = rule(3.0f, 0.5f, 0);
    ck_assert_int_eq(decide(&p, s, n, keep), n - n / 2);
    for (int t = 0; t < n; t++)
        ck_assert_int_eq(keep[t], t < n / 2);
    /* Speed is a benchmark matter (bench/iadsr_cost.c), not a unit-test
     * assertion: under valgrind on a loaded machine this takes seconds. */
    TU_NOTE("gate_decide: 3 x 10000 positions in %.4f s\n",
            iadsr__now() - t0);
    free(s);
    free(keep);
    free(cand);
}
END_TEST

/* ---- 4. joint trainer -------------------------------------------------------------- */

START_TEST(test_joint_create_errors)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    iadsr_trainer *t = NULL;
#define J_FAIL(call, code)                                                    \
    do {                                                                      \
        t = TU_SENTINEL(iadsr_trainer);                                       \
        TU_EXPECT_ERR(call, code);                                            \
        ck_assert_ptr_null(t);                                                \
    } while (0)
    TU_EXPECT_ERR(iadsr_trainer_create_joint(NULL, m, d, sem, NULL, &tp,
                                             NULL),
                  IADSR_ERR_INVALID_ARG);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, NULL, NULL, &tp, NULL),
           IADSR_ERR_INVALID_ARG);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, AS(iadsr_semantic, m), NULL,
                                      &tp, NULL),
           IADSR_ERR_INVALID_ARG);
    J_FAIL(iadsr_trainer_create_joint(&t, NULL, d, sem, NULL, &tp, NULL),
           IADSR_ERR_INVALID_ARG);
    J_FAIL(iadsr_trainer_create_joint(&t, m, NULL, sem, NULL, &tp, NULL),
           IADSR_ERR_INVALID_ARG);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, sem, AS(iadsr_semantic, d),
                                      &tp, NULL),
           IADSR_ERR_INVALID_ARG);
    /* semantic rows for fewer items than the model */
    iadsr_semantic *few = topic_sem(NI - 1, DS, 3);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, few, NULL, &tp, NULL),
           IADSR_ERR_DIM_MISMATCH);
    iadsr_semantic *more = topic_sem(NI + 4, DS, 3);
    TU_OK(iadsr_trainer_create_joint(&t, m, d, more, NULL, &tp, NULL));
    iadsr_trainer_free(t);
    /* user rows: fewer than the users, or another D */
    iadsr_semantic *u_few = rand_sem(n_users() - 1, DS, 4);
    iadsr_semantic *u_d = rand_sem(n_users(), DS + 1, 4);
    iadsr_semantic *u_ok = rand_sem(n_users(), DS, 4);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, sem, u_few, &tp, NULL),
           IADSR_ERR_DIM_MISMATCH);
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, sem, u_d, &tp, NULL),
           IADSR_ERR_DIM_MISMATCH);
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, u_ok, &tp, NULL));
    iadsr_trainer_free(t);
    /* model with fewer items than the data */
    iadsr_model *small = tu_model(NI - 1, 7);
    J_FAIL(iadsr_trainer_create_joint(&t, small, d, sem, NULL, &tp, NULL),
           IADSR_ERR_DIM_MISMATCH);
    iadsr_model_free(small);
    /* bad params of either kind */
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.tau_gumbel = 0.0f;
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp),
           IADSR_ERR_INVALID_ARG);
    iadsr_train_params bad = tp;
    bad.batch_size = 0;
    J_FAIL(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &bad, NULL),
           IADSR_ERR_INVALID_ARG);
#undef J_FAIL
    /* NULL params = defaults */
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, NULL, NULL));
    iadsr_trainer_free(t);

    /* snapshot_denoiser: plain trainers have no aligner or gate */
    iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
    iadsr_gate *g = TU_SENTINEL(iadsr_gate);
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_EXPECT_ERR(iadsr_trainer_snapshot_denoiser(t, &a, &g),
                  IADSR_ERR_STATE);
    ck_assert(a == NULL && g == NULL);
    iadsr_trainer_free(t);
    a = TU_SENTINEL(iadsr_aligner);
    g = TU_SENTINEL(iadsr_gate);
    TU_EXPECT_ERR(iadsr_trainer_snapshot_denoiser(NULL, &a, &g),
                  IADSR_ERR_INVALID_ARG);
    ck_assert(a == NULL && g == NULL);
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, NULL));
    TU_OK(iadsr_trainer_snapshot_denoiser(t, NULL, NULL));
    TU_OK(iadsr_trainer_snapshot_denoiser(t, &a, NULL));
    ck_assert_ptr_nonnull(a);
    iadsr_aligner_free(a);
    TU_OK(iadsr_trainer_snapshot_denoiser(t, NULL, &g));
    ck_assert_ptr_nonnull(g);
    iadsr_gate_free(g);
    iadsr_trainer_free(t);

    iadsr_semantic_free(u_few);
    iadsr_semantic_free(u_d);
    iadsr_semantic_free(u_ok);
    iadsr_semantic_free(few);
    iadsr_semantic_free(more);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Before any epoch the trainer's aligner and gate are what
 * iadsr_aligner_create() and iadsr_gate_create() make from the params. */
START_TEST(test_joint_initial_snapshot)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.seed = 1234;
    dp.theta = -0.25f;
    dp.tau_align = 0.3f;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp));
    iadsr_aligner *a = NULL, *a0 = NULL;
    iadsr_gate *g = NULL, *g0 = NULL;
    TU_OK(iadsr_trainer_snapshot_denoiser(t, &a, &g));
    TU_OK(iadsr_aligner_create(&a0, 16, DS, &dp));
    TU_OK(iadsr_gate_create(&g0, 16, &dp));
    ck_assert(memcmp(a->w, a0->w, aligner_floats(a) * sizeof(float)) == 0);
    ck_assert(memcmp(g->w, g0->w, gate_floats(g) * sizeof(float)) == 0);
    ck_assert(a->tau_align == 0.3f);
    iadsr_denoise_params out;
    out.struct_size = sizeof out;
    TU_OK(iadsr_gate_get_params(g, &out));
    ck_assert(memcmp(&out, &dp, sizeof dp) == 0);
    /* training moves them; a second snapshot is a new handle */
    TU_OK(iadsr_trainer_run_epoch(t, NULL));
    iadsr_aligner *a1 = NULL;
    iadsr_gate *g1 = NULL;
    TU_OK(iadsr_trainer_snapshot_denoiser(t, &a1, &g1));
    ck_assert(memcmp(a1->w, a0->w, aligner_floats(a) * sizeof(float)) != 0);
    ck_assert(memcmp(g1->w, g0->w, gate_floats(g) * sizeof(float)) != 0);
    ck_assert(memcmp(a->w, a0->w, aligner_floats(a) * sizeof(float)) == 0);
    ck_assert(iadsr__aligner_finite(a1) && iadsr__gate_finite(g1));
    iadsr_aligner_free(a);
    iadsr_aligner_free(a0);
    iadsr_aligner_free(a1);
    iadsr_gate_free(g);
    iadsr_gate_free(g0);
    iadsr_gate_free(g1);
    iadsr_trainer_free(t);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

typedef struct joint_run {
    iadsr_model *m;
    iadsr_aligner *a;
    iadsr_gate *g;
    double loss[8];
} joint_run;

static void joint_train(const iadsr_model *init, const iadsr_dataset *d,
                        const iadsr_semantic *sem, const iadsr_semantic *usem,
                        const iadsr_train_params *tp,
                        const iadsr_denoise_params *dp, int epochs,
                        joint_run *out)
{
    ck_assert_int_le(epochs, 8);
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create_joint(&t, init, d, sem, usem, tp, dp));
    for (int e = 0; e < epochs; e++) {
        TU_OK(iadsr_trainer_run_epoch(t, &out->loss[e]));
        ck_assert_msg(isfinite(out->loss[e]) && out->loss[e] > 0,
                      "epoch %d: loss %g", e + 1, out->loss[e]);
    }
    TU_OK(iadsr_trainer_snapshot(t, &out->m));
    TU_OK(iadsr_trainer_snapshot_denoiser(t, &out->a, &out->g));
    iadsr_trainer_free(t);
}

static void joint_free(joint_run *r)
{
    iadsr_model_free(r->m);
    iadsr_aligner_free(r->a);
    iadsr_gate_free(r->g);
    memset(r, 0, sizeof *r);
}

static int same_denoiser(const joint_run *x, const joint_run *y)
{
    return tu_same_weights(x->m, y->m) &&
           memcmp(x->a->w, y->a->w, aligner_floats(x->a) * sizeof(float)) ==
               0 &&
           memcmp(x->g->w, y->g->w, gate_floats(x->g) * sizeof(float)) == 0;
}

START_TEST(test_joint_determinism)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    for (int threads = 1; threads <= 2; threads++) {
        iadsr_train_params tp;
        joint_train_params(&tp, threads);
        joint_run x, y;
        memset(&x, 0, sizeof x);
        memset(&y, 0, sizeof y);
        joint_train(m, d, sem, NULL, &tp, NULL, 2, &x);
        joint_train(m, d, sem, NULL, &tp, NULL, 2, &y);
        ck_assert_msg(same_denoiser(&x, &y),
                      "n_threads %d: two runs with the same seeds differ",
                      threads);
        ck_assert(x.loss[0] == y.loss[0] && x.loss[1] == y.loss[1]);
        /* another seed of the train params gives another run */
        tp.seed = 2;
        joint_run z;
        memset(&z, 0, sizeof z);
        joint_train(m, d, sem, NULL, &tp, NULL, 2, &z);
        ck_assert(!same_denoiser(&x, &z));
        joint_free(&x);
        joint_free(&y);
        joint_free(&z);
    }
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_joint_loss_decreases)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    joint_run x;
    memset(&x, 0, sizeof x);
    joint_train(m, d, sem, NULL, &tp, NULL, 6, &x);
    TU_NOTE("joint loss by epoch: %.4f %.4f %.4f %.4f %.4f %.4f\n",
            x.loss[0], x.loss[1], x.loss[2], x.loss[3], x.loss[4], x.loss[5]);
    ck_assert_msg(x.loss[5] < 0.9 * x.loss[0],
                  "loss %g after 6 epochs, %g after 1", x.loss[5], x.loss[0]);
    ck_assert(x.loss[2] < x.loss[0]);
    /* the alignment and reconstruction terms are part of the reported
     * loss: the same run with both weights 0 reports less */
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.lambda_align = dp.lambda_recon = 0.0f;
    joint_run z;
    memset(&z, 0, sizeof z);
    joint_train(m, d, sem, NULL, &tp, &dp, 1, &z);
    ck_assert_msg(z.loss[0] < x.loss[0], "loss %g without Stage 2, %g with",
                  z.loss[0], x.loss[0]);
    joint_free(&x);
    joint_free(&z);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* With both loss weights 0 the backbone trains exactly as a plain trainer
 * (the gate's uniforms are drawn after the dropout of the forward pass). */
START_TEST(test_joint_zero_weights_is_plain)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.lambda_align = dp.lambda_recon = 0.0f;
    joint_run x;
    memset(&x, 0, sizeof x);
    joint_train(m, d, sem, NULL, &tp, &dp, 2, &x);
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    double l0, l1;
    TU_OK(iadsr_trainer_run_epoch(t, &l0));
    TU_OK(iadsr_trainer_run_epoch(t, &l1));
    iadsr_model *p = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &p));
    iadsr_trainer_free(t);
    ck_assert(l0 == x.loss[0] && l1 == x.loss[1]);
    ck_assert_msg(tu_same_weights(p, x.m),
                  "joint training with zero weights changed the backbone");
    /* nothing moved the aligner or the decoder */
    iadsr_aligner *a0 = NULL;
    TU_OK(iadsr_aligner_create(&a0, 16, DS, &dp));
    ck_assert(memcmp(a0->w, x.a->w, aligner_floats(a0) * sizeof(float)) == 0);
    iadsr_aligner_free(a0);
    iadsr_model_free(p);
    joint_free(&x);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_joint_backbones)
{
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    for (int b = 0; b < 4; b++) {
        iadsr_model *m = bb_model(b, NI, 7);
        for (int collab = 0; collab <= !tu_light(); collab++) {
            iadsr_denoise_params dp;
            iadsr_denoise_params_init(&dp);
            dp.flags = collab ? IADSR_DENOISE_F_COLLAB_ONLY : 0u;
            joint_run x;
            memset(&x, 0, sizeof x);
            joint_train(m, d, sem, NULL, &tp, &dp, 2, &x);
            TU_NOTE("%s%s: joint loss %.4f -> %.4f\n", bb_name[b],
                    collab ? " (collab only)" : "", x.loss[0], x.loss[1]);
            ck_assert_msg(x.loss[1] < x.loss[0], "%s: loss %g -> %g",
                          bb_name[b], x.loss[0], x.loss[1]);
            ck_assert(iadsr__aligner_finite(x.a) && iadsr__gate_finite(x.g));
            ck_assert_int_eq(iadsr_model_backbone(x.m),
                             iadsr_model_backbone(m));
            iadsr_denoiser *dn = NULL;
            TU_OK(iadsr_denoiser_create(&dn, x.m, x.a, x.g, sem));
            int32_t n;
            const int32_t *s = iadsr_dataset_user_items(d, 5, &n);
            float sc[64];
            uint8_t keep[64];
            int32_t nk;
            ck_assert_int_le(n, 64);
            TU_OK(iadsr_denoiser_clean(dn, s, n, NULL, keep, sc, NULL, &nk));
            for (int i = 0; i < n; i++)
                ck_assert_msg(isfinite(sc[i]), "%s: score %d = %g",
                              bb_name[b], i, (double)sc[i]);
            iadsr_denoiser_free(dn);
            joint_free(&x);
        }
        iadsr_model_free(m);
    }
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* Joint training that diverges (absurd step size) stops with NUMERIC at
 * the first non-finite loss or gradient, for every backbone; the failing
 * step changes nothing, so the snapshots (backbone, aligner, gate) are
 * still the last finite ones, and no checkpoint of non-finite weights can
 * be written from them. */
START_TEST(test_joint_divergence)
{
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    tp.learning_rate = 1e30f;
    tp.batch_size = 1000; /* one step per epoch */
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    for (int b = 0; b < 4; b++) {
        iadsr_model *m = bb_model(b, NI, 7);
        iadsr_trainer *t = NULL;
        TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp));
        double loss = 0;
        int rc = IADSR_OK, epochs = 0;
        iadsr_model *s1 = NULL;
        iadsr_aligner *a1 = NULL;
        iadsr_gate *g1 = NULL;
        for (; epochs < 6; epochs++) {
            iadsr_model_free(s1);
            iadsr_aligner_free(a1);
            iadsr_gate_free(g1);
            TU_OK(iadsr_trainer_snapshot(t, &s1));
            TU_OK(iadsr_trainer_snapshot_denoiser(t, &a1, &g1));
            rc = iadsr_trainer_run_epoch(t, &loss);
            if (rc != IADSR_OK)
                break;
            ck_assert(isfinite(loss));
        }
        ck_assert_msg(rc == IADSR_ERR_NUMERIC, "%s: got %s after %d epochs",
                      bb_name[b], iadsr_status_name(rc), epochs);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "non-finite"));
        ck_assert_int_eq(iadsr_trainer_epochs_done(t), epochs);
        /* the failed step left the state as it was before it */
        iadsr_model *s2 = NULL;
        iadsr_aligner *a2 = NULL;
        iadsr_gate *g2 = NULL;
        TU_OK(iadsr_trainer_snapshot(t, &s2));
        TU_OK(iadsr_trainer_snapshot_denoiser(t, &a2, &g2));
        ck_assert_msg(tu_same_weights(s1, s2), "%s: backbone changed",
                      bb_name[b]);
        ck_assert(memcmp(a1->w, a2->w, aligner_floats(a1) * sizeof(float)) ==
                  0);
        ck_assert(memcmp(g1->w, g2->w, gate_floats(g1) * sizeof(float)) == 0);
        ck_assert(iadsr__aligner_finite(a2) && iadsr__gate_finite(g2));
        /* and fit reports the same, without training further */
        TU_EXPECT_ERR(iadsr_trainer_fit(t, NULL, NULL), IADSR_ERR_NUMERIC);
        ck_assert_int_eq(iadsr_trainer_epochs_done(t), epochs);
        iadsr_model_free(s1);
        iadsr_model_free(s2);
        iadsr_aligner_free(a1);
        iadsr_aligner_free(a2);
        iadsr_gate_free(g1);
        iadsr_gate_free(g2);
        iadsr_trainer_free(t);
        iadsr_model_free(m);
    }
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* User rows replace the mean of the item rows as the long-term semantic
 * interest: training runs and takes a different course. */
START_TEST(test_joint_user_sem)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_semantic *usem = rand_sem(n_users(), DS, 5);
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    joint_run x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    joint_train(m, d, sem, usem, &tp, NULL, 1, &x);
    joint_train(m, d, sem, NULL, &tp, NULL, 1, &y);
    ck_assert(memcmp(x.a->w2, y.a->w2,
                     (size_t)16 * DS * sizeof(float)) != 0);
    joint_free(&x);
    joint_free(&y);
    iadsr_semantic_free(usem);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* iadsr.h, IADSR_DENOISE_F_CARRY_MASKS: "From the second epoch on,
 * multiply each training position's input embedding by the gate's mask for
 * it from the previous epoch". The first epoch is unchanged (all masks
 * start at 1); the second must differ, since the Gumbel gate drops some
 * positions in the first. */
START_TEST(test_joint_carry_masks)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    joint_run x1, y1, x2, y2;
    memset(&x1, 0, sizeof x1);
    memset(&y1, 0, sizeof y1);
    memset(&x2, 0, sizeof x2);
    memset(&y2, 0, sizeof y2);
    joint_train(m, d, sem, NULL, &tp, &dp, 1, &x1);
    joint_train(m, d, sem, NULL, &tp, &dp, 2, &x2);
    dp.flags = IADSR_DENOISE_F_CARRY_MASKS;
    joint_train(m, d, sem, NULL, &tp, &dp, 1, &y1);
    joint_train(m, d, sem, NULL, &tp, &dp, 2, &y2);
    ck_assert_msg(same_denoiser(&x1, &y1),
                  "CARRY_MASKS changed the first epoch");
    ck_assert_msg(!same_denoiser(&x2, &y2),
                  "CARRY_MASKS has no effect in the second epoch");
    joint_free(&x1);
    joint_free(&y1);
    joint_free(&x2);
    joint_free(&y2);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* The detector gate trains (its weights move from the start, the paper's
 * decoder does not), deterministically for any thread count, and the
 * denoiser scores with it. */
static int terms_cb(const iadsr_progress_info *info, void *user_data)
{
    iadsr_progress_info *last = user_data;
    *last = *info;
    return 0;
}

/* The progress report splits the joint loss by term: next-item, the
 * weighted alignment + reconstruction, the detector's; they add up to the
 * total. */
START_TEST(test_joint_progress_terms)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    for (int detect = 0; detect <= 1; detect++) {
        iadsr_denoise_params dp;
        iadsr_denoise_params_init(&dp);
        dp.flags = detect ? IADSR_DENOISE_F_DETECT : 0u;
        iadsr_train_params tp;
        joint_train_params(&tp, 2);
        tp.max_epochs = 2;
        iadsr_trainer *t = NULL;
        TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &dp));
        iadsr_progress_info last;
        memset(&last, 0, sizeof last);
        TU_OK(iadsr_trainer_fit(t, terms_cb, &last));
        ck_assert_int_eq(last.epoch, 2);
        ck_assert(isfinite(last.loss) && last.loss > 0);
        ck_assert(isfinite(last.loss_next) && last.loss_next > 0);
        ck_assert(isfinite(last.loss_aux) && last.loss_aux > 0);
        double sum = last.loss_next + last.loss_aux;
        if (detect) {
            ck_assert(isfinite(last.loss_detect) && last.loss_detect > 0);
            sum += last.loss_detect;
        } else {
            ck_assert(isnan(last.loss_detect));
        }
        ck_assert_msg(fabs(sum - last.loss) <= 1e-9 * last.loss,
                      "terms %.12g, total %.12g", sum, last.loss);
        ck_assert(last.learning_rate == (double)tp.learning_rate);
        iadsr_trainer_free(t);
    }
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Every epoch's progress report of a fit. */
typedef struct bo_log {
    iadsr_progress_info e[80];
    int n;
} bo_log;

static int bo_cb(const iadsr_progress_info *info, void *user_data)
{
    bo_log *l = user_data;
    if (l->n < 80)
        l->e[l->n++] = *info;
    return 0;
}

static void bo_fit(const iadsr_model *m, const iadsr_dataset *d,
                   const iadsr_semantic *sem, const iadsr_train_params *tp,
                   uint32_t flags, bo_log *l, iadsr_gate **gate)
{
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = flags;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create_joint(&t, m, d, sem, NULL, tp, &dp));
    memset(l, 0, sizeof *l);
    TU_OK(iadsr_trainer_fit(t, bo_cb, l));
    ck_assert_int_eq(iadsr_trainer_epochs_done(t), l->n);
    if (gate)
        TU_OK(iadsr_trainer_snapshot_denoiser(t, NULL, gate));
    iadsr_trainer_free(t);
}

/* IADSR_DENOISE_F_BACKOFF: the weights go 1 -> 0.1 -> 0.01 after stalls of
 * ceil(patience / 2) validations, then patience ends the fit; nothing
 * changes before the first back-off; the best validation is never worse
 * than without it; the gate does not keep the flag; patience 0 never backs
 * off; a raw trainer reports NaN. */
START_TEST(test_joint_backoff)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_LEAVE_ONE_OUT;
    tp.learning_rate = 1e-2f; /* stalls within a few epochs */
    tp.max_epochs = tu_light() ? 24 : 60;
    tp.patience = 3;
    static bo_log a, b;
    iadsr_gate *gate = NULL;
    bo_fit(m, d, sem, &tp, IADSR_DENOISE_F_DETECT, &a, NULL);
    bo_fit(m, d, sem, &tp, IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_BACKOFF,
           &b, &gate);
    for (int i = 0; i < a.n; i++)
        ck_assert(a.e[i].aux_scale == 1.0);
    /* replay the rule on b's validations */
    const double scale[3] = {1.0, (double)0.1f, (double)0.01f};
    int stage = 0, since = 0, first = -1, stopped = 0;
    double best = -1;
    for (int i = 0; i < b.n; i++) {
        ck_assert_uint_ge(b.e[i].struct_size, 104);
        ck_assert_msg(b.e[i].aux_scale == scale[stage],
                      "epoch %d: scale %g, stage %d", i + 1,
                      b.e[i].aux_scale, stage);
        ck_assert(!stopped);
        if (b.e[i].valid_ndcg10 > best) {
            best = b.e[i].valid_ndcg10;
            since = 0;
        } else if (stage < 2 && ++since >= 2) {
            if (first < 0)
                first = i;
            stage++;
            since = 0;
        } else if (stage == 2 && ++since >= 3) {
            stopped = 1;
        }
    }
    ck_assert_msg(stage == 2, "the data never stalled twice (%d epochs)",
                  b.n);
    ck_assert(stopped || b.n == tp.max_epochs);
    /* the same run up to the first back-off */
    ck_assert_int_ge(a.n, first + 1);
    for (int i = 0; i <= first; i++) {
        ck_assert(a.e[i].loss == b.e[i].loss);
        ck_assert(a.e[i].valid_ndcg10 == b.e[i].valid_ndcg10);
    }
    ck_assert(b.e[b.n - 1].best_ndcg10 >= a.e[a.n - 1].best_ndcg10);
    ck_assert_int_ge(b.n, a.n);
    /* and it acts from the epoch after the first stall */
    if (a.n > first + 1)
        ck_assert(a.e[first + 1].loss != b.e[first + 1].loss);
    /* the flag describes the training, not the gate */
    iadsr_denoise_params gp;
    iadsr_denoise_params_init(&gp);
    TU_OK(iadsr_gate_get_params(gate, &gp));
    ck_assert_uint_eq(gp.flags, IADSR_DENOISE_F_DETECT);
    iadsr_gate_free(gate);
    /* patience 0: never a stall */
    tp.patience = 0;
    tp.max_epochs = 6;
    bo_fit(m, d, sem, &tp, IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_BACKOFF,
           &b, NULL);
    ck_assert_int_eq(b.n, 6);
    for (int i = 0; i < b.n; i++)
        ck_assert(b.e[i].aux_scale == 1.0);
    /* a raw trainer has no auxiliary weights */
    iadsr_trainer *t = NULL;
    tp.max_epochs = 1;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    memset(&b, 0, sizeof b);
    TU_OK(iadsr_trainer_fit(t, bo_cb, &b));
    ck_assert_int_eq(b.n, 1);
    ck_assert(isnan(b.e[0].aux_scale));
    iadsr_trainer_free(t);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_joint_detect)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_DETECT;
    for (int threads = 1; threads <= 2; threads++) {
        iadsr_train_params tp;
        joint_train_params(&tp, threads);
        joint_run x, y;
        memset(&x, 0, sizeof x);
        memset(&y, 0, sizeof y);
        joint_train(m, d, sem, NULL, &tp, &dp, 2, &x);
        joint_train(m, d, sem, NULL, &tp, &dp, 2, &y);
        ck_assert(same_denoiser(&x, &y));
        ck_assert(memcmp(x.g->det, y.g->det, IADSR__GATE_DET * sizeof(float)) ==
                  0);
        iadsr_denoise_params gp;
        iadsr_denoise_params_init(&gp);
        TU_OK(iadsr_gate_get_params(x.g, &gp));
        ck_assert(gp.flags & IADSR_DENOISE_F_DETECT);
        /* the eight features' weights and the bias train; the text
         * consistency's (not asked for) and the spare slots stay 0 */
        int moved = 0, kt = IADSR__DET_FEATURES - 1;
        for (int k = 0; k < kt; k++)
            moved += x.g->det[iadsr__det_w(k)] != 1.0f;
        ck_assert_msg(moved > 0 && x.g->det[IADSR__DET_BIAS] != 0.0f,
                      "the detector did not train");
        ck_assert(x.g->det[iadsr__det_w(kt)] == 0.0f);
        for (int k = iadsr__det_w(kt) + 1; k < IADSR__GATE_DET; k++)
            ck_assert(x.g->det[k] == 0.0f);
        ck_assert(isfinite(x.loss[0]) && isfinite(x.loss[1]));
        /* the denoiser's scores are the detector's logits: finite, and
         * not all equal */
        iadsr_denoiser *dn = NULL;
        TU_OK(iadsr_denoiser_create(&dn, x.m, x.a, x.g, sem));
        int32_t seq[12];
        for (int t = 0; t < 12; t++)
            seq[t] = 1 + (t * 7) % NI;
        uint8_t keep[12];
        float sc[12];
        int32_t cl[12], nk = 0;
        TU_OK(iadsr_denoiser_clean(dn, seq, 12, NULL, keep, sc, cl, &nk));
        int differ = 0;
        for (int t = 0; t < 12; t++) {
            ck_assert(isfinite(sc[t]));
            differ += sc[t] != sc[0];
        }
        ck_assert(differ > 0 && nk >= 1 && keep[11] == 1);
        iadsr_denoiser_free(dn);
        joint_free(&x);
        joint_free(&y);
    }
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* The dataset of the users of @p d that IADSR_DENOISE_F_HOLDOUT does not
 * hold out (want 0) or of those it does (want 1); *n_sel receives their
 * count. */
static iadsr_dataset *holdout_part(const iadsr_dataset *d, int want,
                                   int64_t *n_sel)
{
    int64_t nu = d->n_users, k = 0, w = 0;
    int32_t *it = malloc((size_t)d->offsets[nu] * sizeof(int32_t) + 4);
    int64_t *off = malloc(((size_t)nu + 1) * sizeof(int64_t));
    ck_assert(it && off);
    off[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int64_t a = d->offsets[u], n = d->offsets[u + 1] - a;
        if (iadsr__holdout_user(d->items + a, n) != want)
            continue;
        memcpy(it + w, d->items + a, (size_t)n * sizeof(int32_t));
        w += n;
        off[++k] = w;
    }
    iadsr_dataset *out = NULL;
    TU_OK(iadsr_dataset_create(&out, it, off, k, d->n_items, IADSR_FLAG_COPY));
    free(it);
    free(off);
    *n_sel = k;
    return out;
}

/* The hold-out choice: about 1 in 16, by content alone (the same sequence
 * is chosen wherever it sits), deterministic. */
START_TEST(test_holdout_choice)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 91);
    int32_t seq[30];
    int n_ho = 0, n = 16000;
    for (int i = 0; i < n; i++) {
        int len = 1 + (int)iadsr__rng_below(&r, 30);
        for (int t = 0; t < len; t++)
            seq[t] = 1 + (int32_t)iadsr__rng_below(&r, 5000);
        int h = iadsr__holdout_user(seq, len);
        ck_assert(h == 0 || h == 1);
        ck_assert_int_eq(iadsr__holdout_user(seq, len), h);
        n_ho += h;
    }
    /* 1000 expected; 4 standard deviations either side */
    ck_assert_msg(n_ho > 880 && n_ho < 1120, "%d of %d held out", n_ho, n);
    /* consecutive ids and their orders do not line up with the modulus */
    int runs = 0;
    for (int32_t a = 1; a <= 1600; a++) {
        int32_t two[2] = {a, a + 1};
        runs += iadsr__holdout_user(two, 2);
    }
    ck_assert_msg(runs > 50 && runs < 150, "%d of 1600 pairs", runs);
}
END_TEST

/* IADSR_DENOISE_F_HOLDOUT: training with it is training without it on the
 * data minus the held-out users; with fewer than 64 trainable users nobody
 * is held out; the gate keeps the flag; it needs the detector. */
START_TEST(test_joint_holdout)
{
    iadsr_dataset *d = small_data();
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    int64_t n_kept = 0, n_ho = 0;
    iadsr_dataset *kept = holdout_part(d, 0, &n_kept);
    iadsr_dataset_free(holdout_part(d, 1, &n_ho));
    ck_assert_int_eq(n_kept + n_ho, iadsr_dataset_n_users(d));
    ck_assert_msg(n_ho > 0 && n_ho < iadsr_dataset_n_users(d) / 5,
                  "%lld held out", (long long)n_ho);
    iadsr_denoise_params ho, plain;
    iadsr_denoise_params_init(&ho);
    iadsr_denoise_params_init(&plain);
    ho.flags = IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_HOLDOUT;
    plain.flags = IADSR_DENOISE_F_DETECT;
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    joint_run x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    joint_train(m, d, sem, NULL, &tp, &ho, 2, &x);
    joint_train(m, kept, sem, NULL, &tp, &plain, 2, &y);
    ck_assert_msg(same_denoiser(&x, &y) &&
                      memcmp(x.g->det, y.g->det,
                             IADSR__GATE_DET * sizeof(float)) == 0,
                  "holding out differs from leaving the users out");
    iadsr_denoise_params gp;
    iadsr_denoise_params_init(&gp);
    TU_OK(iadsr_gate_get_params(x.g, &gp));
    ck_assert(gp.flags & IADSR_DENOISE_F_HOLDOUT);
    /* a rule change keeps it (it describes the training) */
    iadsr_denoise_params rule;
    iadsr_denoise_params_init(&rule);
    rule.flags = IADSR_DENOISE_F_DETECT;
    iadsr_gate *g2 = NULL;
    TU_OK(iadsr_gate_with_params(&g2, x.g, &rule));
    TU_OK(iadsr_gate_get_params(g2, &gp));
    ck_assert(gp.flags & IADSR_DENOISE_F_HOLDOUT);
    iadsr_gate_free(g2);
    joint_free(&x);
    joint_free(&y);

    /* 40 users: too few to hold any out */
    iadsr_dataset *few = NULL;
    TU_OK(iadsr_dataset_create(&few, d->items, d->offsets, 40, d->n_items,
                               IADSR_FLAG_COPY));
    joint_train(m, few, sem, NULL, &tp, &ho, 1, &x);
    joint_train(m, few, sem, NULL, &tp, &plain, 1, &y);
    ck_assert(same_denoiser(&x, &y));
    joint_free(&x);
    joint_free(&y);

    iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
    ho.flags = IADSR_DENOISE_F_HOLDOUT;
    TU_EXPECT_ERR(iadsr_trainer_create_joint(&t, m, d, sem, NULL, &tp, &ho),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    ck_assert(strstr(iadsr_last_error(), "IADSR_DENOISE_F_DETECT") != NULL);
    iadsr_dataset_free(few);
    iadsr_dataset_free(kept);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

typedef struct joint_ctx {
    const iadsr_model *m;
    const iadsr_dataset *d;
    const iadsr_semantic *sem, *usem;
    const iadsr_denoise_params *dp;
    iadsr_trainer *t;
} joint_ctx;

static int op_joint(void *ctx)
{
    joint_ctx *c = ctx;
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
    int rc = iadsr_trainer_create_joint(&t, c->m, c->d, c->sem, c->usem, &tp,
                                        c->dp);
    if (rc) {
        ck_assert_ptr_null(t);
        return rc;
    }
    iadsr_trainer_free(t);
    return rc;
}

static int op_snapshot_denoiser(void *ctx)
{
    joint_ctx *c = ctx;
    iadsr_aligner *a = TU_SENTINEL(iadsr_aligner);
    iadsr_gate *g = TU_SENTINEL(iadsr_gate);
    int rc = iadsr_trainer_snapshot_denoiser(c->t, &a, &g);
    if (rc) {
        ck_assert(a == NULL && g == NULL);
        return rc;
    }
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    return rc;
}

START_TEST(test_joint_alloc_failures)
{
    iadsr_dataset *d = tu_synth(40, NI, NT, 3, 12, 5);
    iadsr_model *m = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_semantic *usem = rand_sem(40, DS, 4);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_CARRY_MASKS;
    joint_ctx c = {m, d, sem, NULL, NULL, NULL};
    oom_loop("trainer_create_joint", op_joint, &c, 2000);
    c.usem = usem;
    c.dp = &dp;
    oom_loop("trainer_create_joint (user rows, carry masks)", op_joint, &c,
             2000);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    TU_OK(iadsr_trainer_create_joint(&c.t, m, d, sem, NULL, &tp, NULL));
    oom_loop("trainer_snapshot_denoiser", op_snapshot_denoiser, &c, 100);
    iadsr_trainer_free(c.t);
    /* with the text consistency the snapshot scores the training data
     * (IADSR_DENOISE_F_TEXT), with its own allocations; after an epoch
     * the detector's weights are those it learned */
    dp.flags = IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_TEXT;
    TU_OK(iadsr_trainer_create_joint(&c.t, m, d, sem, usem, &tp, &dp));
    double loss;
    TU_OK(iadsr_trainer_run_epoch(c.t, &loss));
    oom_loop("trainer_snapshot_denoiser (text)", op_snapshot_denoiser, &c,
             400);
    iadsr_trainer_free(c.t);
    iadsr_semantic_free(usem);
    iadsr_semantic_free(sem);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- 5. denoiser -------------------------------------------------------------------- */

START_TEST(test_denoiser_create_errors)
{
    fix f;
    fix_open(&f, 0, NULL, 31);
    iadsr_denoiser *dn = NULL;
#define D_FAIL(call, code)                                                    \
    do {                                                                      \
        dn = TU_SENTINEL(iadsr_denoiser);                                     \
        TU_EXPECT_ERR(call, code);                                            \
        ck_assert_ptr_null(dn);                                               \
    } while (0)
    TU_EXPECT_ERR(iadsr_denoiser_create(NULL, f.m, f.a, f.g, f.sem),
                  IADSR_ERR_INVALID_ARG);
    D_FAIL(iadsr_denoiser_create(&dn, NULL, f.a, f.g, f.sem),
           IADSR_ERR_INVALID_ARG);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, NULL, f.g, f.sem),
           IADSR_ERR_INVALID_ARG);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, f.a, NULL, f.sem),
           IADSR_ERR_INVALID_ARG);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, f.a, f.g, NULL),
           IADSR_ERR_INVALID_ARG);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, f.a, f.g, AS(iadsr_semantic, f.a)),
           IADSR_ERR_INVALID_ARG);
    /* widths: aligner d, gate d, semantic D */
    iadsr_aligner *a8 = NULL, *aD = NULL;
    iadsr_gate *g8 = NULL;
    TU_OK(iadsr_aligner_create(&a8, 8, DS, NULL));
    TU_OK(iadsr_aligner_create(&aD, 16, DS + 1, NULL));
    TU_OK(iadsr_gate_create(&g8, 8, NULL));
    D_FAIL(iadsr_denoiser_create(&dn, f.m, a8, f.g, f.sem),
           IADSR_ERR_DIM_MISMATCH);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, f.a, g8, f.sem),
           IADSR_ERR_DIM_MISMATCH);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, aD, f.g, f.sem),
           IADSR_ERR_DIM_MISMATCH);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "13"));
    /* semantic rows for fewer items than the model; more are fine */
    iadsr_semantic *few = topic_sem(NI - 1, DS, 3);
    D_FAIL(iadsr_denoiser_create(&dn, f.m, f.a, f.g, few),
           IADSR_ERR_DIM_MISMATCH);
    iadsr_semantic *more = topic_sem(NI + 3, DS, 3);
    TU_OK(iadsr_denoiser_create(&dn, f.m, f.a, f.g, more));
    iadsr_denoiser_free(dn);
#undef D_FAIL
    iadsr_semantic_free(few);
    iadsr_semantic_free(more);
    iadsr_aligner_free(a8);
    iadsr_aligner_free(aD);
    iadsr_gate_free(g8);
    fix_close(&f);
}
END_TEST

/* Trained parts remember the backbone, item count and semantic matrix they
 * were trained with; iadsr_denoiser_create refuses other combinations
 * (IADSR_ERR_MISMATCH, naming what differs) unless
 * IADSR_DENOISER_ALLOW_MISMATCH; parts without a record are not checked. */
START_TEST(test_denoiser_provenance)
{
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_model *init = tu_model(NI, 7);
    iadsr_train_params tp;
    joint_train_params(&tp, 1);
    joint_run r;
    memset(&r, 0, sizeof r);
    joint_train(init, d, sem, NULL, &tp, NULL, 1, &r);
    ck_assert_int_eq(r.a->prov.known, 1);
    ck_assert_int_eq(r.a->prov.backbone, IADSR_BACKBONE_SASREC);
    ck_assert_int_eq(r.a->prov.n_items, NI);
    ck_assert(r.a->prov.sem_fp == iadsr__semantic_fingerprint(sem, NI));
    ck_assert(memcmp(&r.a->prov, &r.g->prov, sizeof r.a->prov) == 0);
    iadsr_denoiser *dn = NULL;
    TU_OK(iadsr_denoiser_create(&dn, r.m, r.a, r.g, sem));
    iadsr_denoiser_free(dn);

    /* the same rows in a new handle, and with items appended: accepted */
    float *rows = malloc((size_t)(NI + 4) * DS * sizeof(float));
    ck_assert_ptr_nonnull(rows);
    for (int32_t i = 1; i <= NI; i++)
        memcpy(rows + (size_t)(i - 1) * DS, iadsr_semantic_row(sem, i),
               DS * sizeof(float));
    for (size_t j = (size_t)NI * DS; j < (size_t)(NI + 4) * DS; j++)
        rows[j] = 0.5f - (float)(j % 7) * 0.125f;
    iadsr_semantic *same = sem_from(rows, NI, DS);
    iadsr_semantic *longer = sem_from(rows, NI + 4, DS);
    TU_OK(iadsr_denoiser_create(&dn, r.m, r.a, r.g, same));
    iadsr_denoiser_free(dn);
    TU_OK(iadsr_denoiser_create(&dn, r.m, r.a, r.g, longer));
    iadsr_denoiser_free(dn);
    /* -0 for +0 is the same matrix */
    float *z = malloc((size_t)NI * DS * sizeof(float));
    ck_assert_ptr_nonnull(z);
    memcpy(z, rows, (size_t)NI * DS * sizeof(float));
    z[5] = 0.0f;
    iadsr_semantic *pz = sem_from(z, NI, DS);
    z[5] = -0.0f;
    iadsr_semantic *nz = sem_from(z, NI, DS);
    ck_assert(iadsr__semantic_fingerprint(pz, NI) ==
              iadsr__semantic_fingerprint(nz, NI));
    free(z);

#define M_FAIL(call, what)                                                    \
    do {                                                                      \
        dn = TU_SENTINEL(iadsr_denoiser);                                     \
        TU_EXPECT_ERR(call, IADSR_ERR_MISMATCH);                              \
        ck_assert_ptr_null(dn);                                               \
        ck_assert_msg(strstr(iadsr_last_error(), what) != NULL, "%s",        \
                      iadsr_last_error());                                    \
    } while (0)
    /* one value of one item's row changed (the first, the last item) */
    for (int k = 0; k < 2; k++) {
        size_t at = k ? (size_t)(NI - 1) * DS + DS - 1 : 0;
        float keep = rows[at];
        rows[at] = nextafterf(keep, 2.0f);
        iadsr_semantic *other = sem_from(rows, NI, DS);
        rows[at] = keep;
        M_FAIL(iadsr_denoiser_create(&dn, r.m, r.a, r.g, other),
               "another semantic matrix");
        TU_OK(iadsr_denoiser_create_v2(&dn, r.m, r.a, r.g, other,
                                       IADSR_DENOISER_ALLOW_MISMATCH));
        iadsr_denoiser_free(dn);
        iadsr_semantic_free(other);
    }
    /* a matrix made for another data set (more items, other rows) */
    iadsr_semantic *foreign = topic_sem(5 * NI, DS, 3);
    M_FAIL(iadsr_denoiser_create(&dn, r.m, r.a, r.g, foreign),
           "another semantic matrix");
    /* another backbone of the same width and items: GRU4Rec, Caser */
    for (int which = 2; which <= 3; which++) {
        iadsr_model *o = bb_model(which, NI, 5);
        M_FAIL(iadsr_denoiser_create(&dn, o, r.a, r.g, sem),
               which == 2 ? "the model is a gru4rec" : "the model is a caser");
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "sasrec"));
        TU_OK(iadsr_denoiser_create_v2(&dn, o, r.a, r.g, sem,
                                       IADSR_DENOISER_ALLOW_MISMATCH));
        iadsr_denoiser_free(dn);
        iadsr_model_free(o);
    }
    /* another item count (SASRec, semantic rows for all its items) */
    iadsr_model *more = tu_model(NI + 4, 7);
    M_FAIL(iadsr_denoiser_create(&dn, more, r.a, r.g, longer), "60 items");
    /* the gate alone mismatching is found too, and a gate with another
     * rule keeps its record */
    iadsr_gate *g2 = NULL;
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.theta = 0.5f;
    TU_OK(iadsr_gate_with_params(&g2, r.g, &dp));
    ck_assert(memcmp(&g2->prov, &r.g->prov, sizeof g2->prov) == 0);
    iadsr_aligner *fresh_a = NULL;
    iadsr_gate *fresh_g = NULL;
    TU_OK(iadsr_aligner_create(&fresh_a, 16, DS, NULL));
    TU_OK(iadsr_gate_create(&fresh_g, 16, NULL));
    ck_assert_int_eq(fresh_a->prov.known, 0);
    ck_assert_int_eq(fresh_g->prov.known, 0);
    M_FAIL(iadsr_denoiser_create(&dn, more, fresh_a, g2, longer), "gate");
    M_FAIL(iadsr_denoiser_create(&dn, more, r.a, fresh_g, longer), "aligner");
    /* parts without a record are not checked */
    TU_OK(iadsr_denoiser_create(&dn, more, fresh_a, fresh_g, longer));
    iadsr_denoiser_free(dn);
#undef M_FAIL
    /* unknown flags */
    dn = TU_SENTINEL(iadsr_denoiser);
    TU_EXPECT_ERR(iadsr_denoiser_create_v2(&dn, r.m, r.a, r.g, sem, 2u),
                  IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_null(dn);
    /* the record survives a checkpoint */
    char path[512];
    snprintf(path, sizeof path, "%s/denoise-prov-%ld.iadsr", tu_tmp_dir(),
             (long)getpid());
    TU_OK(iadsr_checkpoint_save(r.m, r.a, g2, path, IADSR_SAVE_NO_FSYNC));
    iadsr_model *m2 = NULL;
    iadsr_aligner *a2 = NULL;
    iadsr_gate *g3 = NULL;
    TU_OK(iadsr_checkpoint_load(&m2, &a2, &g3, path, 0));
    ck_assert(memcmp(&a2->prov, &r.a->prov, sizeof a2->prov) == 0);
    ck_assert(memcmp(&g3->prov, &r.g->prov, sizeof g3->prov) == 0);
    dn = TU_SENTINEL(iadsr_denoiser);
    TU_EXPECT_ERR(iadsr_denoiser_create(&dn, m2, a2, g3, foreign),
                  IADSR_ERR_MISMATCH);
    TU_OK(iadsr_denoiser_create(&dn, m2, a2, g3, same));
    iadsr_denoiser_free(dn);
    unlink(path);
    iadsr_model_free(m2);
    iadsr_aligner_free(a2);
    iadsr_gate_free(g3);
    iadsr_gate_free(g2);
    iadsr_aligner_free(fresh_a);
    iadsr_gate_free(fresh_g);
    iadsr_model_free(more);
    iadsr_semantic_free(foreign);
    iadsr_semantic_free(pz);
    iadsr_semantic_free(nz);
    iadsr_semantic_free(same);
    iadsr_semantic_free(longer);
    free(rows);
    joint_free(&r);
    iadsr_model_free(init);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* Output buffers preset to a pattern: failures must not touch them. */
typedef struct outs {
    uint8_t keep[40];
    float scores[40];
    int32_t cleaned[40];
    int32_t n_kept;
} outs;

static void outs_fill(outs *o)
{
    memset(o, 0xa5, sizeof *o);
}

static void outs_untouched(const outs *o, const char *what)
{
    outs ref;
    outs_fill(&ref);
    ck_assert_msg(memcmp(o, &ref, sizeof ref) == 0,
                  "%s: an output was written on failure", what);
}

START_TEST(test_clean_errors)
{
    fix f;
    fix_open(&f, 0, NULL, 33);
    int32_t seq[5] = {1, 2, 3, 4, 5};
    float uv[DS];
    for (int j = 0; j < DS; j++)
        uv[j] = 0.5f;
    outs o;
#define C_FAIL(call, code, what)                                              \
    do {                                                                      \
        outs_fill(&o);                                                        \
        TU_EXPECT_ERR(call, code);                                            \
        outs_untouched(&o, what);                                             \
    } while (0)
    C_FAIL(iadsr_denoiser_clean(NULL, seq, 5, NULL, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_INVALID_ARG, "NULL denoiser");
    C_FAIL(iadsr_denoiser_clean(f.dn, NULL, 5, NULL, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_INVALID_ARG, "NULL seq");
    C_FAIL(iadsr_denoiser_clean(f.dn, seq, 0, NULL, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_OUT_OF_RANGE, "n = 0");
    C_FAIL(iadsr_denoiser_clean(f.dn, seq, -3, NULL, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_OUT_OF_RANGE, "n = -3");
    const int32_t bad_ids[] = {0, -1, NI + 1, INT32_MAX};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        seq[3] = bad_ids[i];
        C_FAIL(iadsr_denoiser_clean(f.dn, seq, 5, NULL, o.keep, o.scores,
                                    o.cleaned, &o.n_kept),
               IADSR_ERR_OUT_OF_RANGE, "bad id");
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "seq[3]"));
    }
    seq[3] = 4;
    uv[3] = NAN;
    C_FAIL(iadsr_denoiser_clean(f.dn, seq, 5, uv, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_NUMERIC, "NaN user_vec");
    uv[3] = 0.5f;
    uv[DS - 1] = -INFINITY;
    C_FAIL(iadsr_denoiser_clean(f.dn, seq, 5, uv, o.keep, o.scores,
                                o.cleaned, &o.n_kept),
           IADSR_ERR_NUMERIC, "Inf user_vec");
    uv[DS - 1] = 0.5f;
#undef C_FAIL
    /* every output is optional */
    TU_OK(iadsr_denoiser_clean(f.dn, seq, 5, uv, NULL, NULL, NULL, NULL));
    /* the cleaned sequence may alias the input */
    int32_t copy[5];
    memcpy(copy, seq, sizeof seq);
    outs_fill(&o);
    TU_OK(iadsr_denoiser_clean(f.dn, seq, 5, NULL, o.keep, o.scores,
                               o.cleaned, &o.n_kept));
    TU_OK(iadsr_denoiser_clean(f.dn, copy, 5, NULL, NULL, NULL, copy, NULL));
    for (int i = 0; i < o.n_kept; i++)
        ck_assert_int_eq(copy[i], o.cleaned[i]);
    /* only n entries are written */
    for (int i = 5; i < 40; i++)
        ck_assert(o.keep[i] == 0xa5);
    fix_close(&f);
}
END_TEST

/* The rule holds on random weights for many random sequences, including
 * ones longer than the model's L, for several inference settings. */
START_TEST(test_clean_guards_random)
{
    const float thetas[] = {-3.0f, -0.2f, 0.0f, 0.3f, 3.0f};
    const float drops[] = {0.0f, 0.25f, 0.3f, 0.5f, 1.0f};
    for (int b = 0; b < 4; b++) {
        fix f;
        fix_open(&f, b, NULL, 41 + (uint64_t)b);
        iadsr__rng r;
        iadsr__rng_seed(&r, 77 + (uint64_t)b);
        /* all 50 settings, or a spread of 8 of them under valgrind */
        int L = f.m->hp.max_seq_len, checked = 0, step = tu_light() ? 7 : 1;
        for (int k = 0; k < 50; k += step) {
            iadsr_denoise_params dp;
            iadsr_denoise_params_init(&dp);
            dp.theta = thetas[k % 5];
            dp.max_drop = drops[(k / 5) % 5];
            dp.protect_last = (k / 25) % 2 == 0;
            iadsr_denoiser *dn = fix_with(&f, &dp);
            for (int rep = 0; rep < 3; rep++) {
                int32_t seq[40];
                int n = 1 + (int)iadsr__rng_below(&r, 3 * (uint64_t)L + 2);
                if (rep == 0)
                    n = 3 * L + 1;
                rand_seq(&r, seq, n, NI);
                outs o;
                outs_fill(&o);
                TU_OK(iadsr_denoiser_clean(dn, seq, n, NULL, o.keep,
                                           o.scores, o.cleaned, &o.n_kept));
                char what[96];
                snprintf(what, sizeof what, "%s theta %g max_drop %g "
                                            "protect %d n %d",
                         bb_name[b], (double)dp.theta, (double)dp.max_drop,
                         dp.protect_last, n);
                check_rule(&dp, seq, n, o.keep, o.scores, o.cleaned,
                           o.n_kept, what);
                checked++;
            }
            iadsr_denoiser_free(dn);
        }
        ck_assert_int_eq(checked, 3 * ((49 / step) + 1));
        fix_close(&f);
    }
}
END_TEST

/* Items without text (all-zero semantic rows) give finite scores; a
 * sequence of only such items has score 0 everywhere. */
START_TEST(test_clean_zero_semantic_rows)
{
    float *rows = topic_rows(NI, NT, DS, 0.2, 5);
    for (int i = 1; i <= 10; i++) /* topic 0 has no text */
        memset(rows + (size_t)(i - 1) * DS, 0, DS * sizeof(float));
    iadsr_semantic *sem = sem_from(rows, NI, DS);
    free(rows);
    ck_assert_int_eq(iadsr_semantic_n_zero_rows(sem), 10);
    for (int b = 0; b < 4; b++) {
        iadsr_model *m = bb_model(b, NI, 9);
        iadsr_aligner *a = NULL;
        iadsr_gate *g = NULL;
        iadsr_denoiser *dn = NULL;
        TU_OK(iadsr_aligner_create(&a, 16, DS, NULL));
        TU_OK(iadsr_gate_create(&g, 16, NULL));
        TU_OK(iadsr_denoiser_create(&dn, m, a, g, sem));
        int32_t zs[25], mixed[25];
        for (int t = 0; t < 25; t++) {
            zs[t] = 1 + t % 10;
            mixed[t] = t % 3 == 0 ? 1 + t % 10 : 11 + t;
        }
        outs o;
        iadsr_denoise_params dp;
        iadsr_denoise_params_init(&dp);
        for (int n = 1; n <= 25; n += 6) {
            TU_OK(iadsr_denoiser_clean(dn, zs, n, NULL, o.keep, o.scores,
                                       o.cleaned, &o.n_kept));
            for (int t = 0; t < n; t++)
                ck_assert_msg(o.scores[t] == 0.0f,
                              "%s: text-free score[%d] = %g", bb_name[b], t,
                              (double)o.scores[t]);
            check_rule(&dp, zs, n, o.keep, o.scores, o.cleaned, o.n_kept,
                       "zero rows");
            TU_OK(iadsr_denoiser_clean(dn, mixed, n, NULL, o.keep, o.scores,
                                       o.cleaned, &o.n_kept));
            check_rule(&dp, mixed, n, o.keep, o.scores, o.cleaned, o.n_kept,
                       "some zero rows");
        }
        /* a zero user vector is allowed too */
        float uv[DS] = {0};
        TU_OK(iadsr_denoiser_clean(dn, mixed, 25, uv, o.keep, o.scores,
                                   o.cleaned, &o.n_kept));
        check_rule(&dp, mixed, 25, o.keep, o.scores, o.cleaned, o.n_kept,
                   "zero user vector");
        iadsr_denoiser_free(dn);
        iadsr_aligner_free(a);
        iadsr_gate_free(g);
        iadsr_model_free(m);
    }
    iadsr_semantic_free(sem);
}
END_TEST

/* For n <= L the scores are iadsr__heads_scores on the encoder's output
 * for the left-padded sequence, and the keep mask is the gate's rule on
 * them. */
START_TEST(test_clean_matches_heads)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 51);
    for (int b = 0; b < 4; b++) {
        for (int collab = 0; collab <= 1; collab++) {
            iadsr_denoise_params dp;
            iadsr_denoise_params_init(&dp);
            dp.flags = collab ? IADSR_DENOISE_F_COLLAB_ONLY : 0u;
            dp.theta = 0.1f;
            dp.max_drop = 0.5f;
            fix f;
            fix_open(&f, b, &dp, 61 + (uint64_t)b);
            const iadsr_model *m = f.m;
            int L = m->hp.max_seq_len, d = m->hp.dim;
            float uv[DS];
            for (int j = 0; j < DS; j++)
                uv[j] = (float)iadsr__rng_normal(&r);
            const int lens[] = {1, 2, 4, 7, L};
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                int n = lens[li];
                int32_t seq[16], pos[16], off[2] = {0, n};
                rand_seq(&r, seq, n, NI);
                for (int t = 0; t < n; t++)
                    pos[t] = L - n + t;
                iadsr__encoder e;
                TU_OK(iadsr__encoder_create(&e, &m->hp, &m->layout, m->w,
                                            NULL, n, n, 0));
                iadsr__batch bt = {.n_seq = 1, .n_rows = n, .items = seq,
                                   .pos = pos, .row_off = off};
                const float *h = e.ops->forward(&e, &bt, NULL);
                iadsr__heads st = {d,
                                    f.a->sem_dim,
                                    f.sem,
                                    f.a->w1,
                                    f.a->w2,
                                    f.g->wd,
                                    f.g->bd,
                                    f.a->tau_align,
                                    f.g->p.tau_gumbel,
                                    0.0f,
                                    0.0f,
                                    f.g->p.flags,
                                    0,
                                    NULL,
                                    0,
                                    NULL};
                iadsr__heads_ws w;
                TU_OK(iadsr__heads_ws_alloc(&w, n, 1, d, DS, 0));
                iadsr__batch one = {.n_seq = 1, .n_rows = n, .items = seq,
                                    .row_off = off};
                for (int with_uv = 0; with_uv <= 1; with_uv++) {
                    const float *uvp[1] = {with_uv ? uv : NULL};
                    float want[16];
                    iadsr__heads_scores(&st, &w, h, &one, uvp, want);
                    uint8_t wkeep[16];
                    int32_t order[16];
                    int32_t wk = iadsr__gate_decide(&f.g->p, want, n, wkeep,
                                                    order);
                    outs o;
                    outs_fill(&o);
                    TU_OK(iadsr_denoiser_clean(f.dn, seq, n,
                                               with_uv ? uv : NULL, o.keep,
                                               o.scores, o.cleaned,
                                               &o.n_kept));
                    for (int t = 0; t < n; t++)
                        ck_assert_msg(fabsf(o.scores[t] - want[t]) <= 1e-6f,
                                      "%s%s n %d uv %d: score[%d] %.9g vs "
                                      "%.9g",
                                      bb_name[b], collab ? " collab" : "", n,
                                      with_uv, t, (double)o.scores[t],
                                      (double)want[t]);
                    ck_assert(memcmp(o.keep, wkeep, (size_t)n) == 0);
                    ck_assert_int_eq(o.n_kept, wk);
                }
                iadsr__heads_ws_free(&w);
                iadsr__encoder_destroy(&e);
            }
            fix_close(&f);
        }
    }
}
END_TEST

/* Sequences much longer than L are scored in overlapping windows: the
 * scores stay finite and the guards hold. */
START_TEST(test_clean_long_sequences)
{
    fix f;
    fix_open(&f, 0, NULL, 71);
    int L = f.m->hp.max_seq_len;
    int ns[] = {L + 1, 3 * L + 1, 10 * L + 3, 500};
    iadsr__rng r;
    iadsr__rng_seed(&r, 72);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int n = ns[i];
        int32_t *seq = malloc((size_t)n * sizeof(int32_t));
        int32_t *cl = malloc((size_t)n * sizeof(int32_t));
        uint8_t *keep = malloc((size_t)n);
        float *sc = malloc((size_t)n * sizeof(float));
        ck_assert(seq && cl && keep && sc);
        rand_seq(&r, seq, n, NI);
        int32_t nk = -1;
        TU_OK(iadsr_denoiser_clean(f.dn, seq, n, NULL, keep, sc, cl, &nk));
        char what[32];
        snprintf(what, sizeof what, "n = %d", n);
        check_rule(&dp, seq, n, keep, sc, cl, nk, what);
        free(seq);
        free(cl);
        free(keep);
        free(sc);
    }
    fix_close(&f);
}
END_TEST

/* A dataset with user ids, lengths 1..35 (some above L = 10). */
static iadsr_dataset *id_dataset(int n_users, uint64_t seed)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    size_t cap = (size_t)n_users * 40 * 4 + 64, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int u = 0; u < n_users; u++) {
        int n = u < 5 ? u + 1 : 1 + (int)iadsr__rng_below(&r, 35);
        len += (size_t)snprintf(text + len, cap - len, "%d", 1000 + 7 * u);
        for (int t = 0; t < n; t++)
            len += (size_t)snprintf(text + len, cap - len, " %d",
                                    1 + (int)iadsr__rng_below(&r, NI));
        text[len++] = '\n';
    }
    iadsr_dataset *d = NULL;
    TU_OK(iadsr_dataset_parse_text(&d, text, len, NI, "ids"));
    free(text);
    return d;
}

/* The label-free theta: only for a detector, deterministic, independent of
 * the thread count, bounded, and clear errors. */
START_TEST(test_propose_theta)
{
    fix f;
    fix_open(&f, 0, NULL, 41);
    iadsr_dataset *d = id_dataset(60, 42);
    float th = 7;
    double rate = -1;
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 1, &th,
                                               &rate), IADSR_ERR_UNSUPPORTED);
    ck_assert(th == 7 && rate == -1); /* outputs untouched on failure */
    fix_close(&f);

    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_DETECT;
    dp.max_drop = 0.25f;
    fix_open(&f, 0, &dp, 43);
    for (int k = 0; k < IADSR__DET_FEATURES; k++)
        f.g->det[k] = 1.0f; /* the detector as training starts it */
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 1, NULL,
                                               NULL), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(NULL, d, 0, NULL, 1, &th,
                                               NULL), IADSR_ERR_INVALID_ARG);
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 0, &th,
                                               NULL), IADSR_ERR_INVALID_ARG);
    ck_assert(strstr(iadsr_last_error(), "propose_theta") != NULL);
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(f.dn, d, 99, NULL, 1, &th,
                                               NULL), IADSR_ERR_INVALID_ARG);
    TU_OK(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 1, &th, &rate));
    ck_assert(th >= -3.0f && th <= 3.0f);
    ck_assert_msg(rate >= 1e-4 && rate <= 0.25 + 1e-9, "rate %g", rate);
    float th2 = 0;
    double rate2 = 0;
    TU_OK(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 3, &th2, &rate2));
    ck_assert(th2 == th && rate2 == rate);
    TU_OK(iadsr_denoiser_propose_theta(f.dn, d, IADSR_SPLIT_NONE, NULL, 2,
                                       &th2, NULL));
    ck_assert(th2 >= -3.0f && th2 <= 3.0f);
    iadsr_dataset_free(d);
    /* nothing to score: every sequence is only its last two items */
    const int32_t it[6] = {1, 2, 3, 4, 5, 6};
    const int64_t off[4] = {0, 2, 4, 6};
    TU_OK(iadsr_dataset_create(&d, it, off, 3, NI, IADSR_FLAG_COPY));
    TU_EXPECT_ERR(iadsr_denoiser_propose_theta(f.dn, d, 0, NULL, 1, &th,
                                               NULL), IADSR_ERR_STATE);
    iadsr_dataset_free(d);
    fix_close(&f);
}
END_TEST

typedef struct clean_res {
    iadsr_dataset *out;
    uint8_t *keep;
    float *scores;
} clean_res;

static void clean_ds(const iadsr_denoiser *dn, const iadsr_dataset *d,
                     int32_t split, const iadsr_semantic *usem, int threads,
                     clean_res *res)
{
    int64_t ni = iadsr_dataset_n_interactions(d);
    res->keep = malloc((size_t)ni);
    res->scores = malloc((size_t)ni * sizeof(float));
    ck_assert(res->keep && res->scores);
    memset(res->keep, 0xee, (size_t)ni);
    res->out = NULL;
    TU_OK(iadsr_denoiser_clean_dataset(dn, d, split, usem, threads,
                                       &res->out, res->keep, res->scores));
    ck_assert_ptr_nonnull(res->out);
}

static void clean_res_free(clean_res *r)
{
    iadsr_dataset_free(r->out);
    free(r->keep);
    free(r->scores);
}

/* The sorted v[0..nv) is a sub-multiset of the sorted w[0..nw). */
static int sorted_within(const float *v, int64_t nv, const float *w,
                         int64_t nw)
{
    int64_t j = 0;
    for (int64_t i = 0; i < nv; i++) {
        while (j < nw && w[j] < v[i])
            j++;
        if (j == nw || w[j] != v[i])
            return 0;
        j++;
    }
    return 1;
}

/* propose_theta's inserted scores come in more passes when one pass gives
 * fewer than asked (a small hold-out of short sequences), the first pass
 * unchanged; a hold-out too small for one pass is no longer replaced by
 * every user's (fitted) scores. */
START_TEST(test_inserted_score_passes)
{
    iadsr_dataset *td = small_data();
    iadsr_model *m0 = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_HOLDOUT;
    dp.max_drop = 0.6f; /* room for the rate bound to be below the cap */
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    joint_run x;
    memset(&x, 0, sizeof x);
    joint_train(m0, td, sem, NULL, &tp, &dp, 2, &x);
    iadsr_denoiser *dn = NULL;
    TU_OK(iadsr_denoiser_create(&dn, x.m, x.a, x.g, sem));

    /* 200 users of 5-8 items: a few dozen insertion points a pass */
    iadsr_dataset *d = tu_synth(200, NI, NT, 5, 8, 46);
    float *f1 = NULL, *fm = NULL, *fm2 = NULL;
    int64_t n1 = 0, nm = 0, nm2 = 0;
    TU_OK(iadsr__det_inserted_scores(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL,
                                     2, 0, &f1, &n1));
    ck_assert_msg(n1 > 0 && n1 < IADSR__HOLDOUT_MIN_INSERTS &&
                      n1 * IADSR__MPE_MAX_COPIES >=
                          2 * IADSR__HOLDOUT_MIN_INSERTS,
                  "one pass inserts %lld", (long long)n1);
    TU_OK(iadsr__det_inserted_scores(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL,
                                     2, IADSR__HOLDOUT_MIN_INSERTS, &fm,
                                     &nm));
    ck_assert_msg(nm >= IADSR__HOLDOUT_MIN_INSERTS &&
                      nm < IADSR__HOLDOUT_MIN_INSERTS + 2 * n1,
                  "%lld scores (one pass %lld)", (long long)nm,
                  (long long)n1);
    for (int64_t i = 1; i < nm; i++)
        ck_assert(fm[i - 1] <= fm[i]);
    ck_assert(sorted_within(f1, n1, fm, nm));
    /* the same on another run and thread count */
    TU_OK(iadsr__det_inserted_scores(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL,
                                     3, IADSR__HOLDOUT_MIN_INSERTS, &fm2,
                                     &nm2));
    ck_assert(nm2 == nm && memcmp(fm, fm2, (size_t)nm * sizeof(float)) == 0);
    /* every allocation fails in turn: NOMEM and nothing leaked */
    for (long k = 1; k < 2000 && !tu_light(); k++) {
        long live0 = iadsr__alloc_live();
        float *f7 = NULL;
        int64_t n7 = -1;
        iadsr__alloc_fail_after(k, 0);
        int rc = iadsr__det_inserted_scores(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT,
                                            NULL, 1,
                                            IADSR__HOLDOUT_MIN_INSERTS, &f7,
                                            &n7);
        long made = iadsr__alloc_fail_after(0, 0);
        if (made < k) {
            TU_OK(rc);
            ck_assert(n7 == nm && memcmp(f7, fm, (size_t)nm * 4) == 0);
            iadsr__free(f7);
            break;
        }
        ck_assert_msg(rc == IADSR_ERR_NOMEM, "k %ld: %s", k,
                      iadsr_status_name(rc));
        ck_assert(f7 == NULL && n7 == 0);
        ck_assert_int_eq(iadsr__alloc_live(), live0);
    }
    iadsr__free(f1);
    iadsr__free(fm);
    iadsr__free(fm2);
    iadsr_dataset_free(d);

    /* sequences of three items leave no insertion point: one pass, none */
    {
        int32_t it[3 * 40];
        int64_t of[41];
        for (int u = 0; u < 40; u++) {
            of[u] = 3 * u;
            for (int j = 0; j < 3; j++)
                it[3 * u + j] = 1 + (u * 7 + j * 13) % NI;
        }
        of[40] = 120;
        d = tu_dataset(it, of, 40, NI);
        TU_OK(iadsr__det_inserted_scores(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT,
                                         NULL, 1, IADSR__HOLDOUT_MIN_INSERTS,
                                         &fm, &nm));
        ck_assert(nm == 0 && fm != NULL);
        iadsr__free(fm);
        iadsr_dataset_free(d);
    }

    /* through the API: 1200 users of 5-8 items hold out about 75, too few
     * insertion points for one pass; the proposal reads them, not every
     * user (the plain proposal on the whole data) */
    d = tu_synth(1200, NI, NT, 5, 8, 45);
    /* the same weights without the flag (gate_with_params would keep the
     * flags the gate was trained with) */
    iadsr_gate *gp = NULL;
    iadsr_denoise_params pp = dp;
    pp.flags &= ~IADSR_DENOISE_F_HOLDOUT;
    TU_OK(iadsr_gate_create(&gp, x.g->dim, &pp));
    memcpy(gp->w, x.g->w, iadsr__gate_floats(x.g->dim) * sizeof(float));
    iadsr_denoiser *dnp = NULL;
    TU_OK(iadsr_denoiser_create(&dnp, x.m, x.a, gp, sem));
    int64_t n_ho = 0;
    iadsr_dataset *sub = holdout_part(d, 1, &n_ho);
    TU_OK(iadsr__det_inserted_scores(dn, sub, IADSR_SPLIT_LEAVE_ONE_OUT, NULL,
                                     1, 0, &f1, &n1));
    ck_assert_msg(n1 < IADSR__HOLDOUT_MIN_INSERTS,
                  "%lld held-out users take %lld inserts in one pass",
                  (long long)n_ho, (long long)n1);
    iadsr__free(f1);
    float th_h, th_p;
    double r_h, r_p;
    TU_OK(iadsr_denoiser_propose_theta(dn, d, 0, NULL, 2, &th_h, &r_h));
    TU_OK(iadsr_denoiser_propose_theta(dnp, d, 0, NULL, 2, &th_p, &r_p));
    TU_NOTE("small hold-out (%lld users, %lld inserts a pass): rate %.4f "
            "theta %.4f; every user: rate %.4f theta %.4f\n",
            (long long)n_ho, (long long)n1, r_h, (double)th_h, r_p,
            (double)th_p);
    ck_assert(r_h > 0.0 && r_h <= (double)dp.max_drop);
    ck_assert_msg(r_h != r_p || th_h != th_p,
                  "the hold-out proposal is every user's");
    iadsr_dataset_free(sub);
    iadsr_dataset_free(d);
    iadsr_denoiser_free(dnp);
    iadsr_gate_free(gp);
    iadsr_denoiser_free(dn);
    joint_free(&x);
    iadsr_semantic_free(sem);
    iadsr_model_free(m0);
    iadsr_dataset_free(td);
}
END_TEST

/* With IADSR_DENOISE_F_HOLDOUT the rate is read off the held-out users
 * alone (exactly what a gate without the flag proposes for them as a data
 * set of their own) and theta drops the same share of the other users'
 * positions; with too few users it is the plain proposal. */
START_TEST(test_propose_theta_holdout)
{
    /* a detector trained briefly (with the hold-out), and its twin gate
     * without the flag */
    iadsr_dataset *td = small_data();
    iadsr_model *m0 = tu_model(NI, 7);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_denoise_params dp, dh;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_DETECT;
    dp.max_drop = 0.6f; /* room for the rate bound to be below the cap */
    dh = dp;
    dh.flags |= IADSR_DENOISE_F_HOLDOUT;
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    joint_run x;
    memset(&x, 0, sizeof x);
    joint_train(m0, td, sem, NULL, &tp, &dh, 2, &x);
    iadsr_gate *gp = NULL, *gh = NULL;
    TU_OK(iadsr_gate_create(&gp, x.g->dim, &dp));
    memcpy(gp->w, x.g->w, iadsr__gate_floats(x.g->dim) * sizeof(float));
    TU_OK(iadsr_gate_with_params(&gh, x.g, &dh));
    iadsr_denoiser *dnp = NULL, *dnh = NULL;
    TU_OK(iadsr_denoiser_create(&dnp, x.m, x.a, gp, sem));
    TU_OK(iadsr_denoiser_create(&dnh, x.m, x.a, gh, sem));
    float tp_, th_;
    double rp, rh;
    /* 60 users: no hold-out */
    iadsr_dataset *d = id_dataset(60, 42);
    TU_OK(iadsr_denoiser_propose_theta(dnp, d, 0, NULL, 1, &tp_, &rp));
    TU_OK(iadsr_denoiser_propose_theta(dnh, d, 0, NULL, 1, &th_, &rh));
    ck_assert(tp_ == th_ && rp == rh);
    iadsr_dataset_free(d);

    /* more users of the training data's kind, enough to hold some out */
    /* 5000 users even under valgrind: fewer leave the held-out users too
     * few inserted scores, and the proposal falls back to every user */
    d = tu_synth(5000, NI, NT, 5, 20, 44);
    int64_t n_ho = 0;
    iadsr_dataset *sub = holdout_part(d, 1, &n_ho);
    TU_OK(iadsr_denoiser_propose_theta(dnh, d, 0, NULL, 2, &th_, &rh));
    float th3;
    double rh3;
    TU_OK(iadsr_denoiser_propose_theta(dnh, d, 0, NULL, 3, &th3, &rh3));
    ck_assert(th3 == th_ && rh3 == rh);
    TU_OK(iadsr_denoiser_propose_theta(dnp, sub, 0, NULL, 1, &tp_, &rp));
    ck_assert_msg(rh == rp, "rate %g, held-out users alone %g", rh, rp);
    /* the shares at or below the two thresholds */
    clean_res a, b;
    clean_ds(dnh, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &a);
    clean_ds(dnp, sub, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &b);
    int64_t below = 0, n = 0, below_h = 0, n_h = 0;
    for (int64_t u = 0; u < d->n_users; u++) {
        int64_t o = d->offsets[u], len = d->offsets[u + 1] - o;
        if (iadsr__holdout_user(d->items + o, len))
            continue;
        for (int64_t i = o; i < o + len; i++)
            if (!isnan(a.scores[i])) {
                n++;
                below += a.scores[i] <= th_;
            }
    }
    for (int64_t i = 0; i < sub->offsets[sub->n_users]; i++)
        if (!isnan(b.scores[i])) {
            n_h++;
            below_h += b.scores[i] <= tp_;
        }
    ck_assert(n > 0 && n_h > 0 && n_ho > 0);
    double q = (double)below / (double)n, qh = (double)below_h / (double)n_h;
    TU_NOTE("hold-out proposal: %lld held-out users, rate %.3f, shares "
            "%.4f / %.4f\n", (long long)n_ho, rh, q, qh);
    ck_assert_msg(fabs(q - qh) <= 2.0 / (double)n + 1e-12,
                  "drop share %.5f, held-out users' %.5f", q, qh);
    clean_res_free(&a);
    clean_res_free(&b);
    /* every allocation of the hold-out path fails in turn: NOMEM, nothing
     * leaked, the outputs untouched (too slow under valgrind) */
    for (long k = 1; k < 400 && !tu_light(); k++) {
        long live0 = iadsr__alloc_live();
        float t7 = 7.0f;
        double r7 = -1.0;
        iadsr__alloc_fail_after(k, 0);
        int rc = iadsr_denoiser_propose_theta(dnh, d, 0, NULL, 2, &t7, &r7);
        long made = iadsr__alloc_fail_after(0, 0);
        ck_assert_int_eq(iadsr__alloc_live(), live0);
        if (made < k) {
            TU_OK(rc);
            ck_assert(t7 == th_ && r7 == rh);
            break;
        }
        ck_assert_msg(rc == IADSR_ERR_NOMEM, "k %ld: %s", k,
                      iadsr_status_name(rc));
        ck_assert(t7 == 7.0f && r7 == -1.0);
    }
    iadsr_dataset_free(sub);
    iadsr_dataset_free(d);
    iadsr_denoiser_free(dnp);
    iadsr_denoiser_free(dnh);
    iadsr_gate_free(gp);
    iadsr_gate_free(gh);
    joint_free(&x);
    iadsr_semantic_free(sem);
    iadsr_model_free(m0);
    iadsr_dataset_free(td);
}
END_TEST

/* Every user of @p res matches clean() on its cleaned part. */
static void check_dataset(const iadsr_denoiser *dn, const iadsr_dataset *d,
                          int loo, const iadsr_semantic *usem,
                          const clean_res *res)
{
    ck_assert_int_eq(iadsr_dataset_n_users(res->out), iadsr_dataset_n_users(d));
    ck_assert_int_eq(iadsr_dataset_n_items(res->out), iadsr_dataset_n_items(d));
    int64_t o = 0, total_kept = 0;
    for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
        int32_t n, nc;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        const int32_t *c = iadsr_dataset_user_items(res->out, u, &nc);
        ck_assert_int_eq(iadsr_dataset_user_id(res->out, u),
                         iadsr_dataset_user_id(d, u));
        int part = loo ? n - 2 : n;
        if (part >= 1) {
            outs x;
            outs_fill(&x);
            const float *uv = usem ? iadsr_semantic_row(usem, (int32_t)u + 1)
                                   : NULL;
            TU_OK(iadsr_denoiser_clean(dn, s, part, uv, x.keep, x.scores,
                                       x.cleaned, &x.n_kept));
            ck_assert_msg(memcmp(x.keep, res->keep + o, (size_t)part) == 0,
                          "user %lld: keep differs from clean()",
                          (long long)u);
            ck_assert_msg(memcmp(x.scores, res->scores + o,
                                 (size_t)part * sizeof(float)) == 0,
                          "user %lld: scores differ from clean()",
                          (long long)u);
        }
        /* the part not cleaned: kept, no score */
        for (int t = part > 0 ? part : 0; t < n; t++) {
            ck_assert_msg(res->keep[o + t] == 1,
                          "user %lld pos %d (not cleaned) dropped",
                          (long long)u, t);
            ck_assert_msg(isnan(res->scores[o + t]),
                          "user %lld pos %d (not cleaned) has score %g",
                          (long long)u, t, (double)res->scores[o + t]);
        }
        /* the output holds the kept items in order */
        int j = 0;
        for (int t = 0; t < n; t++)
            if (res->keep[o + t]) {
                ck_assert_int_lt(j, nc);
                ck_assert_int_eq(c[j], s[t]);
                j++;
            }
        ck_assert_int_eq(j, nc);
        if (loo && n >= 2) /* the evaluation items survive */
            ck_assert(nc >= 2 && c[nc - 1] == s[n - 1] &&
                      c[nc - 2] == s[n - 2]);
        total_kept += nc;
        o += n;
    }
    ck_assert_int_eq(o, iadsr_dataset_n_interactions(d));
    ck_assert_int_eq(total_kept, iadsr_dataset_n_interactions(res->out));
}

START_TEST(test_clean_dataset)
{
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.theta = 0.2f; /* random weights: drop a fair share */
    dp.max_drop = 0.5f;
    fix f;
    fix_open(&f, 0, &dp, 81);
    iadsr_dataset *d = id_dataset(60, 82);
    int64_t dropped = 0;
    for (int split = 0; split <= 2; split++) {
        int loo = split != IADSR_SPLIT_NONE;
        clean_res r1, r3;
        clean_ds(f.dn, d, split, NULL, 1, &r1);
        clean_ds(f.dn, d, split, NULL, 3, &r3);
        check_dataset(f.dn, d, loo, NULL, &r1);
        int64_t ni = iadsr_dataset_n_interactions(d);
        ck_assert_msg(memcmp(r1.keep, r3.keep, (size_t)ni) == 0,
                      "split %d: keep differs between 1 and 3 threads", split);
        ck_assert_msg(memcmp(r1.scores, r3.scores,
                             (size_t)ni * sizeof(float)) == 0,
                      "split %d: scores differ between 1 and 3 threads",
                      split);
        ck_assert_int_eq(iadsr_dataset_n_interactions(r3.out),
                         iadsr_dataset_n_interactions(r1.out));
        dropped += ni - iadsr_dataset_n_interactions(r1.out);
        clean_res_free(&r1);
        clean_res_free(&r3);
    }
    ck_assert_int_gt(dropped, 0); /* the test saw drops */
    /* user rows instead of the mean of the item rows */
    iadsr_semantic *usem = rand_sem(60, DS, 83);
    clean_res ru, rn;
    clean_ds(f.dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, usem, 2, &ru);
    check_dataset(f.dn, d, 1, usem, &ru);
    clean_ds(f.dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &rn);
    int64_t ni = iadsr_dataset_n_interactions(d);
    ck_assert(memcmp(ru.scores, rn.scores, (size_t)ni * sizeof(float)) != 0);
    clean_res_free(&ru);
    clean_res_free(&rn);
    /* keep and scores are optional; more threads than users is fine */
    iadsr_dataset *out = NULL;
    TU_OK(iadsr_denoiser_clean_dataset(f.dn, d, 0, NULL, 256, &out, NULL,
                                       NULL));
    iadsr_dataset_free(out);
    /* a dataset from arrays: user ids are the row numbers */
    iadsr_dataset *sd = small_data();
    clean_res rs;
    clean_ds(f.dn, sd, 0, NULL, 2, &rs);
    check_dataset(f.dn, sd, 1, NULL, &rs);
    clean_res_free(&rs);
    iadsr_dataset_free(sd);
    iadsr_semantic_free(usem);
    iadsr_dataset_free(d);
    fix_close(&f);
}
END_TEST

START_TEST(test_clean_dataset_errors)
{
    fix f;
    fix_open(&f, 0, NULL, 91);
    iadsr_dataset *d = id_dataset(20, 92);
    int64_t ni = iadsr_dataset_n_interactions(d);
    uint8_t *keep = malloc((size_t)ni), *k0 = malloc((size_t)ni);
    float *sc = malloc((size_t)ni * sizeof(float));
    float *s0 = malloc((size_t)ni * sizeof(float));
    ck_assert(keep && k0 && sc && s0);
    memset(keep, 0x5a, (size_t)ni);
    memset(k0, 0x5a, (size_t)ni);
    memset(sc, 0x5a, (size_t)ni * sizeof(float));
    memset(s0, 0x5a, (size_t)ni * sizeof(float));
    iadsr_dataset *out = NULL;
#define DS_FAIL(call, code)                                                   \
    do {                                                                      \
        out = TU_SENTINEL(iadsr_dataset);                                     \
        TU_EXPECT_ERR(call, code);                                            \
        ck_assert_ptr_null(out);                                              \
        ck_assert(memcmp(keep, k0, (size_t)ni) == 0);                         \
        ck_assert(memcmp(sc, s0, (size_t)ni * sizeof(float)) == 0);           \
    } while (0)
    TU_EXPECT_ERR(iadsr_denoiser_clean_dataset(f.dn, d, 0, NULL, 1, NULL,
                                               keep, sc),
                  IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(NULL, d, 0, NULL, 1, &out, keep, sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, NULL, 0, NULL, 1, &out, keep,
                                         sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, AS(iadsr_dataset, f.m), 0,
                                         NULL, 1, &out, keep, sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 3, NULL, 1, &out, keep, sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, -1, NULL, 1, &out, keep,
                                         sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 0, NULL, 0, &out, keep, sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 0, NULL, 257, &out, keep,
                                         sc),
            IADSR_ERR_INVALID_ARG);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 0, AS(iadsr_semantic, d), 1,
                                         &out, keep, sc),
            IADSR_ERR_INVALID_ARG);
    iadsr_semantic *u_few = rand_sem(19, DS, 1), *u_d = rand_sem(20, DS + 2, 1);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 0, u_few, 1, &out, keep,
                                         sc),
            IADSR_ERR_DIM_MISMATCH);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, d, 0, u_d, 1, &out, keep, sc),
            IADSR_ERR_DIM_MISMATCH);
    /* items the model does not know */
    static const int32_t big_items[] = {1, 2, NI + 5};
    static const int64_t big_offs[] = {0, 3};
    iadsr_dataset *big = tu_dataset(big_items, big_offs, 1, NI + 5);
    DS_FAIL(iadsr_denoiser_clean_dataset(f.dn, big, 0, NULL, 1, &out, keep,
                                         sc),
            IADSR_ERR_DIM_MISMATCH);
#undef DS_FAIL
    iadsr_dataset_free(big);
    iadsr_semantic_free(u_few);
    iadsr_semantic_free(u_d);
    free(keep);
    free(k0);
    free(sc);
    free(s0);
    iadsr_dataset_free(d);
    fix_close(&f);
}
END_TEST

typedef struct dn_ctx {
    const iadsr_denoiser *dn;
    const iadsr_dataset *d;
    const int32_t *seq;
    int n;
} dn_ctx;

static int op_clean(void *ctx)
{
    dn_ctx *c = ctx;
    outs o;
    outs_fill(&o);
    int rc = iadsr_denoiser_clean(c->dn, c->seq, c->n, NULL, o.keep, o.scores,
                                  o.cleaned, &o.n_kept);
    if (rc)
        outs_untouched(&o, "clean under allocation failure");
    return rc;
}

static int op_clean_dataset(void *ctx)
{
    dn_ctx *c = ctx;
    int64_t ni = iadsr_dataset_n_interactions(c->d);
    static uint8_t keep[4096];
    ck_assert_int_le(ni, 4096);
    memset(keep, 0x77, (size_t)ni);
    iadsr_dataset *out = TU_SENTINEL(iadsr_dataset);
    int rc = iadsr_denoiser_clean_dataset(c->dn, c->d, 0, NULL, 1, &out, keep,
                                          NULL);
    if (rc) {
        ck_assert_ptr_null(out);
        for (int64_t i = 0; i < ni; i++)
            ck_assert(keep[i] == 0x77);
        return rc;
    }
    iadsr_dataset_free(out);
    return rc;
}

START_TEST(test_clean_alloc_failures)
{
    for (int b = 0; b < 4; b += 2) { /* SASRec and GRU4Rec encoders */
        fix f;
        fix_open(&f, b, NULL, 95);
        int32_t seq[35];
        iadsr__rng r;
        iadsr__rng_seed(&r, 96);
        rand_seq(&r, seq, 35, NI);
        dn_ctx c = {f.dn, NULL, seq, 35};
        oom_loop("denoiser_clean (windows)", op_clean, &c, 500);
        c.n = 6;
        oom_loop("denoiser_clean", op_clean, &c, 500);
        iadsr_dataset *d = id_dataset(12, 97);
        c.d = d;
        oom_loop("denoiser_clean_dataset", op_clean_dataset, &c, 500);
        iadsr_dataset_free(d);
        fix_close(&f);
    }
}
END_TEST

/* ---- 6. pipeline ------------------------------------------------------------------------ */

static int count_cb(const iadsr_progress_info *info, void *user_data)
{
    int *n = user_data;
    ck_assert(isfinite(info->loss));
    (*n)++;
    return 0;
}

START_TEST(test_pipeline_small)
{
    iadsr_dataset *d = tu_synth(200, NI, NT, 5, 20, 3);
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 5);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.max_epochs = 3;
    tp.n_threads = 2;
    iadsr_pipeline_result res;
    memset(&res, 0xab, sizeof res);
    res.struct_size = sizeof res;
    iadsr_model *model = NULL;
    iadsr_dataset *clean = NULL;
    int calls = 0;
    TU_OK(iadsr_pipeline(d, sem, &mp, &tp, NULL, count_cb, &calls, &res,
                         &model, &clean));
    ck_assert_ptr_nonnull(model);
    ck_assert_ptr_nonnull(clean);
    ck_assert_uint_eq(res.struct_size, sizeof res);
    ck_assert_int_eq(calls, 6); /* both trainings report every epoch */
    ck_assert(res.iadsr_epochs >= 1 && res.iadsr_epochs <= 3);
    ck_assert(res.retrain_epochs >= 1 && res.retrain_epochs <= 3);
    ck_assert_int_eq(iadsr_model_n_items(model), NI);
    /* counts: the training parts, the drops, the users touched */
    int64_t in = 0, bound = 0, touched = 0;
    for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
        int32_t n, nc;
        iadsr_dataset_user_items(d, u, &n);
        iadsr_dataset_user_items(clean, u, &nc);
        int part = n - 2 > 0 ? n - 2 : 0;
        in += part;
        bound += (int64_t)floor(0.3 * part + 1e-6);
        ck_assert_int_le(n - nc, (int)floor(0.3 * part + 1e-6));
        touched += nc < n;
    }
    ck_assert_int_eq(res.n_items_in, in);
    ck_assert(res.n_items_dropped >= 0 && res.n_items_dropped <= bound);
    ck_assert_int_eq(res.n_items_dropped,
                     iadsr_dataset_n_interactions(d) -
                         iadsr_dataset_n_interactions(clean));
    ck_assert_int_eq(res.n_users_touched, touched);
    ck_assert(res.iadsr_seconds >= 0 && res.retrain_seconds >= 0);
    const double m[6] = {res.test.hr5,   res.test.hr10,  res.test.hr20,
                         res.test.ndcg5, res.test.ndcg10, res.test.ndcg20};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(isfinite(m[i]) && m[i] >= 0 && m[i] <= 1,
                      "metric %d = %g", i, m[i]);
    ck_assert(res.test.hr5 <= res.test.hr10 && res.test.hr10 <= res.test.hr20);
    ck_assert_int_eq(res.test.n_users, iadsr_dataset_n_users(d));
    TU_NOTE("pipeline: %lld of %lld dropped, %lld users; HR@10 %.4f\n",
            (long long)res.n_items_dropped, (long long)res.n_items_in,
            (long long)res.n_users_touched, res.test.hr10);
    iadsr_model_free(model);
    iadsr_dataset_free(clean);

    /* bad result struct or split: nothing returned */
    model = TU_SENTINEL(iadsr_model);
    clean = TU_SENTINEL(iadsr_dataset);
    res.struct_size = sizeof res - 8;
    TU_EXPECT_ERR(iadsr_pipeline(d, sem, &mp, &tp, NULL, NULL, NULL, &res,
                                 &model, &clean),
                  IADSR_ERR_INVALID_ARG);
    ck_assert(model == NULL && clean == NULL);
    TU_EXPECT_ERR(iadsr_pipeline(d, sem, &mp, &tp, NULL, NULL, NULL, NULL,
                                 &model, &clean),
                  IADSR_ERR_INVALID_ARG);
    res.struct_size = sizeof res;
    tp.split = IADSR_SPLIT_NONE;
    model = TU_SENTINEL(iadsr_model);
    TU_EXPECT_ERR(iadsr_pipeline(d, sem, &mp, &tp, NULL, NULL, NULL, &res,
                                 &model, NULL),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(model);
    tp.split = IADSR_SPLIT_LEAVE_ONE_OUT;
    TU_EXPECT_ERR(iadsr_pipeline(d, NULL, &mp, &tp, NULL, NULL, NULL, &res,
                                 NULL, NULL),
                  IADSR_ERR_INVALID_ARG);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* max |a - b| / max(1, max |b|) over n floats */
static double max_rel_gap(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - (double)b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

/* A joint trainer with the flags @p flags is refused (INVALID_ARG, no
 * trainer) with a message naming @p why. */
static void expect_joint_refused(const iadsr_model *m, const iadsr_dataset *d,
                                 const iadsr_semantic *sem,
                                 const iadsr_train_params *tp, uint32_t flags,
                                 const char *why)
{
    iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = flags;
    TU_EXPECT_ERR(iadsr_trainer_create_joint(&t, m, d, sem, NULL, tp, &dp),
                  IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(iadsr_last_error(), why) != NULL,
                  "flags 0x%x: '%s' does not say '%s'", (unsigned)flags,
                  iadsr_last_error(), why);
}

/* IADSR_DENOISE_F_CLEAN_SCORES and IADSR_DENOISE_F_INPUT_MASK: they need
 * the detector; the mask implies the clean scores; the gate keeps both.
 * With dropout 0 the dropout-free pass sees the training pass's own
 * states, so the clean scores train exactly what the plain detector
 * trains; with dropout they train another detector. The input mask changes
 * the training (dropped inputs change the next-item loss). */
START_TEST(test_joint_clean_scores_and_input_mask)
{
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    iadsr_model *m = tu_model(NI, 7);
    const uint32_t alone[] = {IADSR_DENOISE_F_CLEAN_SCORES,
                              IADSR_DENOISE_F_INPUT_MASK};
    for (int k = 0; k < 2; k++) {
        expect_joint_refused(m, d, sem, &tp, alone[k],
                             k ? "IADSR_DENOISE_F_INPUT_MASK"
                               : "IADSR_DENOISE_F_CLEAN_SCORES");
        ck_assert(strstr(iadsr_last_error(), "needs IADSR_DENOISE_F_DETECT"));
    }
    iadsr_model_free(m);

    /* dropout 0: the plain detector and the clean scores agree */
    iadsr_model_params mp;
    tu_model_params(&mp, NI, 7);
    mp.dropout = 0.0f;
    iadsr_model *m0 = NULL;
    TU_OK(iadsr_model_create(&m0, &mp));
    iadsr_denoise_params plain, clean, mask;
    iadsr_denoise_params_init(&plain);
    plain.flags = IADSR_DENOISE_F_DETECT;
    clean = plain;
    clean.flags |= IADSR_DENOISE_F_CLEAN_SCORES;
    mask = plain;
    mask.flags |= IADSR_DENOISE_F_INPUT_MASK;
    joint_run x, y, z;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    memset(&z, 0, sizeof z);
    joint_train(m0, d, sem, NULL, &tp, &plain, 2, &x);
    joint_train(m0, d, sem, NULL, &tp, &clean, 2, &y);
    double gm = max_rel_gap(x.m->w, y.m->w, x.m->layout.n_floats);
    double gd = max_rel_gap(x.g->det, y.g->det, IADSR__GATE_DET);
    TU_NOTE("dropout 0, clean scores vs plain detector: weights %.3g, "
            "detector %.3g\n", gm, gd);
    /* the same states, the same log-sum-exps (both from the cross-entropy
     * kernels): bit for bit */
    ck_assert_msg(same_denoiser(&x, &y) &&
                      memcmp(x.g->det, y.g->det,
                             IADSR__GATE_DET * sizeof(float)) == 0,
                  "weights %g, detector %g apart", gm, gd);
    iadsr_denoise_params gp;
    iadsr_denoise_params_init(&gp);
    TU_OK(iadsr_gate_get_params(y.g, &gp));
    ck_assert_uint_eq(gp.flags, clean.flags);
    joint_free(&x);
    joint_free(&y);
    iadsr_model_free(m0);

    /* dropout 0.1: another detector; the mask another backbone */
    m = tu_model(NI, 7);
    joint_train(m, d, sem, NULL, &tp, &plain, 2, &x);
    joint_train(m, d, sem, NULL, &tp, &clean, 2, &y);
    joint_train(m, d, sem, NULL, &tp, &mask, 2, &z);
    ck_assert(memcmp(x.g->det, y.g->det, IADSR__GATE_DET * sizeof(float)));
    ck_assert(!tu_same_weights(y.m, z.m));
    for (int e = 0; e < 2; e++)
        ck_assert(isfinite(z.loss[e]));
    TU_OK(iadsr_gate_get_params(z.g, &gp));
    ck_assert_uint_eq(gp.flags, IADSR_DENOISE_F_DETECT |
                                    IADSR_DENOISE_F_CLEAN_SCORES |
                                    IADSR_DENOISE_F_INPUT_MASK);
    /* a rule change keeps them (they describe the training) */
    iadsr_denoise_params rule;
    iadsr_denoise_params_init(&rule);
    rule.flags = IADSR_DENOISE_F_DETECT;
    rule.theta = 0.5f;
    iadsr_gate *g2 = NULL;
    TU_OK(iadsr_gate_with_params(&g2, z.g, &rule));
    TU_OK(iadsr_gate_get_params(g2, &gp));
    ck_assert_uint_eq(gp.flags & (IADSR_DENOISE_F_CLEAN_SCORES |
                                  IADSR_DENOISE_F_INPUT_MASK),
                      IADSR_DENOISE_F_CLEAN_SCORES |
                          IADSR_DENOISE_F_INPUT_MASK);
    iadsr_gate_free(g2);
    joint_free(&x);
    joint_free(&y);
    joint_free(&z);
    iadsr_model_free(m);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* IADSR_DENOISE_F_TEXT: only with the detector and its semantic view. The
 * training is the plain detector's, bit for bit; the snapshot then sets
 * the text consistency's weight to the spread of the logits over that of
 * the feature on the training data (0 without the flag, so a detector
 * without it scores as before the feature); the feature reaches the
 * scores; the flag survives a rule change and a checkpoint, and the
 * reloaded gate scores bit for bit. */
START_TEST(test_joint_text_feature)
{
    iadsr_dataset *d = small_data();
    iadsr_semantic *sem = topic_sem(NI, DS, 3);
    iadsr_train_params tp;
    joint_train_params(&tp, 2);
    iadsr_model *m = tu_model(NI, 7);
    const uint32_t bad[] = {IADSR_DENOISE_F_TEXT,
                            IADSR_DENOISE_F_TEXT | IADSR_DENOISE_F_DETECT |
                                IADSR_DENOISE_F_COLLAB_ONLY,
                            IADSR_DENOISE_F_TEXT | IADSR_DENOISE_F_PAPER};
    for (int k = 0; k < 3; k++) {
        expect_joint_refused(m, d, sem, &tp, bad[k], "IADSR_DENOISE_F_TEXT");
        iadsr_denoise_params dp;
        iadsr_denoise_params_init(&dp);
        dp.flags = bad[k];
        iadsr_gate *g = TU_SENTINEL(iadsr_gate);
        TU_EXPECT_ERR(iadsr_gate_create(&g, 8, &dp), IADSR_ERR_INVALID_ARG);
        ck_assert_ptr_null(g);
    }
    iadsr_denoise_params plain, text;
    iadsr_denoise_params_init(&plain);
    plain.flags = IADSR_DENOISE_F_DETECT;
    text = plain;
    text.flags |= IADSR_DENOISE_F_TEXT;
    joint_run x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    joint_train(m, d, sem, NULL, &tp, &plain, 2, &x);
    joint_train(m, d, sem, NULL, &tp, &text, 2, &y);
    const int wt = iadsr__det_w(IADSR__DET_FEATURES - 1);
    ck_assert(x.g->det[wt] == 0.0f);
    ck_assert(y.g->det[wt] > 0.0f && y.g->det[wt] != 1.0f);
    ck_assert(tu_same_weights(x.m, y.m));
    ck_assert(memcmp(x.a->w, y.a->w, aligner_floats(x.a) * sizeof(float)) ==
              0);
    const float tw = y.g->det[wt]; /* all else as the plain detector's */
    y.g->det[wt] = 0.0f;
    ck_assert(memcmp(x.g->w, y.g->w, gate_floats(x.g) * sizeof(float)) == 0);
    y.g->det[wt] = tw;
    iadsr_denoise_params gp;
    iadsr_denoise_params_init(&gp);
    TU_OK(iadsr_gate_get_params(y.g, &gp));
    ck_assert_uint_eq(gp.flags, text.flags);
    /* the feature reaches the scores: the same gate with its weight at 0
     * scores otherwise */
    iadsr_denoise_params rule;
    iadsr_denoise_params_init(&rule);
    rule.flags = IADSR_DENOISE_F_DETECT;
    rule.theta = 0.25f;
    iadsr_gate *g2 = NULL, *g0 = NULL;
    TU_OK(iadsr_gate_with_params(&g2, y.g, &rule));
    TU_OK(iadsr_gate_get_params(g2, &gp));
    ck_assert_uint_eq(gp.flags, text.flags);
    TU_OK(iadsr_gate_with_params(&g0, y.g, NULL));
    g0->det[wt] = 0.0f;
    iadsr_denoiser *dn = NULL, *dn0 = NULL;
    TU_OK(iadsr_denoiser_create(&dn, y.m, y.a, y.g, sem));
    TU_OK(iadsr_denoiser_create(&dn0, y.m, y.a, g0, sem));
    clean_res r1, r0, r2, rf;
    clean_ds(dn, d, IADSR_SPLIT_NONE, NULL, 2, &r1);
    clean_ds(dn0, d, IADSR_SPLIT_NONE, NULL, 2, &r0);
    int64_t ni = iadsr_dataset_n_interactions(d), differ = 0;
    for (int64_t i = 0; i < ni; i++)
        differ += r1.scores[i] != r0.scores[i];
    ck_assert_msg(differ > ni / 2, "%lld of %lld scores moved",
                  (long long)differ, (long long)ni);
    /* the weight is the ratio of the spreads over the scored training
     * positions (the training split) */
    g0->det[wt] = 1.0f;
    clean_ds(dn0, d, tp.split, NULL, 2, &rf);
    g0->det[wt] = 0.0f;
    clean_res_free(&r0);
    clean_ds(dn0, d, tp.split, NULL, 2, &r0);
    double n = 0, s0 = 0, q0 = 0, s1 = 0, q1 = 0;
    for (int64_t i = 0; i < ni; i++) {
        if (isnan(r0.scores[i]))
            continue;
        double z = r0.scores[i], f = (double)rf.scores[i] - z;
        n += 1;
        s0 += z;
        q0 += z * z;
        s1 += f;
        q1 += f * f;
    }
    double want = sqrt((q0 - s0 * s0 / n) / (q1 - s1 * s1 / n));
    ck_assert_msg(fabs(want - (double)tw) <= 1e-4 * want,
                  "text weight %g, want %g", (double)tw, want);
    clean_res_free(&rf);
    /* a checkpoint keeps the flag and the weight: the same scores */
    char path[512];
    snprintf(path, sizeof path, "%s/text-feature-%ld.iadsr", tu_tmp_dir(),
             (long)getpid());
    TU_OK(iadsr_checkpoint_save(y.m, y.a, y.g, path, IADSR_SAVE_NO_FSYNC));
    iadsr_model *m2 = NULL;
    iadsr_aligner *a2 = NULL;
    iadsr_gate *g3 = NULL;
    TU_OK(iadsr_checkpoint_load(&m2, &a2, &g3, path, 0));
    unlink(path);
    TU_OK(iadsr_gate_get_params(g3, &gp));
    ck_assert_uint_eq(gp.flags, text.flags);
    iadsr_denoiser *dn2 = NULL;
    TU_OK(iadsr_denoiser_create(&dn2, m2, a2, g3, sem));
    clean_ds(dn2, d, IADSR_SPLIT_NONE, NULL, 2, &r2);
    ck_assert(memcmp(r1.scores, r2.scores, (size_t)ni * sizeof(float)) == 0);
    clean_res_free(&r0);
    clean_res_free(&r1);
    clean_res_free(&r2);
    iadsr_denoiser_free(dn);
    iadsr_denoiser_free(dn0);
    iadsr_denoiser_free(dn2);
    iadsr_model_free(m2);
    iadsr_aligner_free(a2);
    iadsr_gate_free(g3);
    iadsr_gate_free(g2);
    iadsr_gate_free(g0);
    joint_free(&x);
    joint_free(&y);
    iadsr_model_free(m);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- 7. planted noise ----------------------------------------------------------------- */

/* Trains a model for ~10 s: skipped in light mode (sanitizers, valgrind)
 * unless IADSR_TEST_PLANTED=1 asks for it. */
static int planted_enabled(void)
{
    const char *e = getenv("IADSR_TEST_PLANTED");
    return !tu_light() || (e && strcmp(e, "1") == 0);
}

/* Synthetic users over PT topics without the generator's own noise; into
 * the training part of every sequence go items of a topic the user never
 * touches (their semantic rows say so). The gate, trained jointly, must
 * find them: precision >= 0.6 and recall >= 0.5 of its drops. */
/* The probability that a planted position scores below a clean one (ties
 * count half): 0.5 = no separation, 1 = perfect. Positions without a score
 * (NaN) are left out. */
typedef struct lab_score {
    float s;
    uint8_t noise;
} lab_score;

static int cmp_lab(const void *a, const void *b)
{
    float x = ((const lab_score *)a)->s, y = ((const lab_score *)b)->s;
    return (x > y) - (x < y);
}

static double score_auc(const float *score, const uint8_t *noise, int64_t n)
{
    lab_score *v = malloc((size_t)n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    int64_t m = 0, n_noise = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(score[i])) {
            v[m].s = score[i];
            v[m].noise = noise[i];
            n_noise += noise[i];
            m++;
        }
    qsort(v, (size_t)m, sizeof *v, cmp_lab);
    /* for each noise position: clean positions above it, ties half */
    double pairs = 0;
    int64_t clean_seen = 0;
    for (int64_t i = 0; i < m;) {
        int64_t j = i, nz = 0, cl = 0;
        while (j < m && v[j].s == v[i].s) {
            nz += v[j].noise;
            cl += !v[j].noise;
            j++;
        }
        int64_t clean_above = (m - n_noise) - clean_seen - cl;
        pairs += (double)nz * ((double)clean_above + 0.5 * (double)cl);
        clean_seen += cl;
        i = j;
    }
    free(v);
    double total = (double)n_noise * (double)(m - n_noise);
    return total > 0 ? pairs / total : 0.5;
}

#define PNI 200
#define PNT 10
#define PD 16

/* Precision and recall of the drops (keep[i] == 0) against the planted
 * labels over the odd users; returns the F1. */
static double odd_users_f1(const uint8_t *keep, const uint8_t *planted,
                           const int64_t *offs, int64_t nu, double *p,
                           double *r)
{
    int64_t tp = 0, dr = 0, pl = 0;
    for (int64_t u = 1; u < nu; u += 2)
        for (int64_t i = offs[u]; i < offs[u + 1]; i++) {
            dr += !keep[i];
            tp += !keep[i] && planted[i];
            pl += planted[i];
        }
    *p = dr ? (double)tp / (double)dr : 0;
    *r = pl ? (double)tp / (double)pl : 0;
    return *p + *r > 0 ? 2 * *p * *r / (*p + *r) : 0;
}

/* Train IADSR (gate flags @p flags) on planted topic-out noise, choose theta
 * on the even users and judge on the odd ones; returns precision and
 * recall there, and (theta0_f1) the F1 at theta 0. */
static void planted_noise_run(uint32_t flags, double *precision_out,
                              double *recall_out, double *theta0_f1,
                              double *proposed_f1, double *rate_out)
{
    iadsr__synth_params sp;
    iadsr__synth_params_init(&sp);
    sp.n_users = 1000;
    sp.n_items = PNI;
    sp.n_topics = PNT;
    sp.min_len = 10;
    sp.max_len = 24;
    sp.p_follow = 0.5f;
    sp.p_topic = 0.5f; /* no uniform noise of its own */
    sp.seed = 17;
    int32_t *items = NULL;
    int64_t *offs = NULL, nu = 0;
    TU_OK(iadsr__synth_generate(&sp, &items, &offs, &nu));
    /* inject about 15% of the training part, never the last two */
    iadsr__rng r;
    iadsr__rng_seed(&r, 18);
    int64_t cap = offs[nu] * 2 + 16;
    int32_t *ni_items = malloc((size_t)cap * sizeof(int32_t));
    uint8_t *planted = calloc((size_t)cap, 1);
    int64_t *ni_offs = malloc(((size_t)nu + 1) * sizeof(int64_t));
    ck_assert(ni_items && planted && ni_offs);
    int64_t w = 0, n_planted = 0;
    ni_offs[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        const int32_t *s = items + offs[u];
        int n = (int)(offs[u + 1] - offs[u]), part = n - 2;
        int used[PNT] = {0}, absent[PNT] = {0}, na = 0;
        for (int t = 0; t < n; t++)
            used[topic_of(s[t], PNI, PNT)] = 1;
        for (int k = 0; k < PNT; k++)
            if (!used[k])
                absent[na++] = k;
        ck_assert_int_gt(na, 0);
        int nt = absent[iadsr__rng_below(&r, (uint64_t)na)];
        int k_noise = (int)lround(0.15 * part);
        if (k_noise < 1)
            k_noise = 1;
        /* noise before original position p with probability k / part */
        int left = k_noise;
        for (int t = 0; t < n; t++) {
            if (t < part && left > 0 &&
                (int)iadsr__rng_below(&r, (uint64_t)(part - t)) < left) {
                int32_t lo = nt * PNI / PNT + 1, hi = (nt + 1) * PNI / PNT;
                ni_items[w] = lo + (int32_t)iadsr__rng_below(
                                       &r, (uint64_t)(hi - lo + 1));
                planted[w++] = 1;
                n_planted++;
                left--;
            }
            ni_items[w++] = s[t];
        }
        ni_offs[u + 1] = w;
    }
    iadsr__free(items);
    iadsr__free(offs);
    iadsr_dataset *d = NULL;
    TU_OK(iadsr_dataset_create(&d, ni_items, ni_offs, nu, PNI,
                               IADSR_FLAG_COPY));
    float *rows = topic_rows(PNI, PNT, PD, 0.2, 19);
    iadsr_semantic *sem = sem_from(rows, PNI, PD);
    free(rows);

    iadsr_model_params mp;
    iadsr_model_params_init(&mp);
    mp.n_items = PNI;
    mp.dim = 32;
    mp.max_seq_len = 20;
    mp.n_layers = 1;
    mp.n_heads = 2;
    mp.dropout = 0.2f;
    mp.seed = 5;
    iadsr_train_params tp;
    iadsr_train_params_init(&tp);
    tp.learning_rate = 3e-3f;
    tp.batch_size = 128;
    tp.max_epochs = 30;
    tp.patience = 5;
    tp.n_threads = 2;
    iadsr_model *init = NULL, *m = NULL;
    TU_OK(iadsr_model_create(&init, &mp));
    iadsr_trainer *t = NULL;
    double t0 = iadsr__now();
    iadsr_denoise_params dpp;
    iadsr_denoise_params_init(&dpp);
    dpp.flags = flags;
    TU_OK(iadsr_trainer_create_joint(&t, init, d, sem, NULL, &tp, &dpp));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &m));
    TU_OK(iadsr_trainer_snapshot_denoiser(t, &a, &g));
    iadsr_trainer_free(t);
    iadsr_denoiser *dn = NULL;
    TU_OK(iadsr_denoiser_create(&dn, m, a, g, sem));
    /* theta is chosen on the even users (the most precise one with recall
     * >= 0.6 against the planted labels, as a host would pick it on
     * validation data) and judged on the odd users only */
    clean_res res;
    clean_ds(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &res);
    {   /* F1 at theta 0 (the default rule), odd users */
        double p0, r0;
        *theta0_f1 = odd_users_f1(res.keep, planted, ni_offs, nu, &p0, &r0);
        TU_NOTE("planted noise (flags %u), theta 0: precision %.3f recall "
                "%.3f F1 %.3f\n", (unsigned)flags, p0, r0, *theta0_f1);
    }
    *proposed_f1 = *rate_out = -1;
    if (flags & IADSR_DENOISE_F_DETECT) {
        /* the label-free theta, judged on the odd users */
        float th = 0;
        TU_OK(iadsr_denoiser_propose_theta(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT,
                                           NULL, 2, &th, rate_out));
        iadsr_denoise_params pp;
        iadsr_denoise_params_init(&pp);
        pp.theta = th;
        iadsr_gate *gt = NULL;
        iadsr_denoiser *dt = NULL;
        TU_OK(iadsr_gate_with_params(&gt, g, &pp));
        TU_OK(iadsr_denoiser_create(&dt, m, a, gt, sem));
        clean_res rp;
        clean_ds(dt, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &rp);
        double pq, rq;
        *proposed_f1 = odd_users_f1(rp.keep, planted, ni_offs, nu, &pq, &rq);
        TU_NOTE("planted noise, proposed theta %.3f (noise rate %.3f, "
                "planted %.3f of the scored part): precision %.3f recall "
                "%.3f F1 %.3f\n", (double)th, *rate_out,
                (double)n_planted / (double)(w - 2 * nu), pq, rq,
                *proposed_f1);
        clean_res_free(&rp);
        iadsr_denoiser_free(dt);
        iadsr_gate_free(gt);
    }
    double best_p = -1, theta = 0;
    for (int k = -60; k <= 60; k++) {
        double th = 0.05 * k;
        int64_t tpk = 0, dr = 0, pl = 0;
        for (int64_t u = 0; u < nu; u += 2)
            for (int64_t i = ni_offs[u]; i < ni_offs[u + 1]; i++) {
                if (isnan(res.scores[i]))
                    continue;
                int drop = !(res.scores[i] > th);
                dr += drop;
                tpk += drop && planted[i];
                pl += planted[i];
            }
        double pr = dr ? (double)tpk / (double)dr : 0;
        double rc = pl ? (double)tpk / (double)pl : 0;
        /* the most precise theta that still finds 60% of the noise */
        if (rc >= 0.6 && pr > best_p) {
            best_p = pr;
            theta = th;
        }
    }
    clean_res_free(&res);
    iadsr_denoise_params gp;
    iadsr_denoise_params_init(&gp);
    gp.theta = (float)theta;
    iadsr_gate *g2 = NULL;
    iadsr_denoiser *dn2 = NULL;
    TU_OK(iadsr_gate_with_params(&g2, g, &gp));
    TU_OK(iadsr_denoiser_create(&dn2, m, a, g2, sem));
    clean_ds(dn2, d, IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 2, &res);
    double secs = iadsr__now() - t0;
    int64_t tp_n = 0, dropped = 0, n_noise = 0, n_clean = 0, n_odd = 0;
    double s_noise = 0, s_clean = 0;
    for (int64_t u = 1; u < nu; u += 2)
        for (int64_t i = ni_offs[u]; i < ni_offs[u + 1]; i++) {
            n_odd += planted[i];
            if (!isnan(res.scores[i])) {
                if (planted[i]) {
                    s_noise += res.scores[i];
                    n_noise++;
                } else {
                    s_clean += res.scores[i];
                    n_clean++;
                }
            }
            if (!res.keep[i]) {
                dropped++;
                tp_n += planted[i];
            }
        }
    double auc = score_auc(res.scores, planted, w);
    double precision = dropped > 0 ? (double)tp_n / (double)dropped : 0.0;
    double recall = n_odd ? (double)tp_n / (double)n_odd : 0.0;
    TU_NOTE("planted noise (odd users, theta %.2f chosen on the even "
                "ones): precision %.3f recall %.3f (%lld dropped, %lld of "
                "%lld planted found); mean score noise %.3f, clean %.3f, "
                "P(noise scores below clean) %.3f; %.1f s, best epoch %d\n",
            theta, precision, recall, (long long)dropped, (long long)tp_n,
            (long long)n_odd, n_noise ? s_noise / (double)n_noise : 0.0,
            n_clean ? s_clean / (double)n_clean : 0.0, auc, secs,
            (int)m->epochs_trained);
    iadsr_denoiser_free(dn2);
    iadsr_gate_free(g2);
    clean_res_free(&res);
    iadsr_denoiser_free(dn);
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(d);
    free(ni_items);
    free(planted);
    free(ni_offs);
    *precision_out = precision;
    *recall_out = recall;
}

START_TEST(test_planted_noise)
{
    double precision, recall, f1_0, f1_p, rate;
    planted_noise_run(0, &precision, &recall, &f1_0, &f1_p, &rate);
    ck_assert_msg(precision >= 0.6 && recall >= 0.5,
                  "planted noise: precision %.3f (need 0.6), recall %.3f "
                  "(need 0.5)",
                  precision, recall);
}
END_TEST

/* The trained detector finds the planted items at its default theta 0,
 * without a theta chosen on labels. */
START_TEST(test_planted_noise_detect)
{
    double precision, recall, f1_0, f1_p, rate;
    planted_noise_run(IADSR_DENOISE_F_DETECT, &precision, &recall, &f1_0,
                      &f1_p, &rate);
    ck_assert_msg(f1_0 >= 0.6,
                  "planted noise, detector: F1 at theta 0 %.3f (need 0.6); "
                  "at the chosen theta precision %.3f recall %.3f",
                  f1_0, precision, recall);
    /* about 15% of the training parts are planted */
    ck_assert_msg(rate > 0.07 && rate < 0.25 && f1_p >= 0.6,
                  "planted noise, detector: proposed theta gives F1 %.3f "
                  "(need 0.6) at an estimated noise rate %.3f",
                  f1_p, rate);
}
END_TEST

/* Planted noise with gate flags @p flags: the label-free proposal reads a
 * rate in (0.07, 0.3) (about 15% of the training parts are planted) and
 * its theta gives F1 >= @p f1_min. */
static void expect_planted_proposal(uint32_t flags, const char *what,
                                    double f1_min)
{
    double precision, recall, f1_0, f1_p, rate;
    planted_noise_run(flags, &precision, &recall, &f1_0, &f1_p, &rate);
    ck_assert_msg(rate > 0.07 && rate < 0.3 && f1_p >= f1_min,
                  "planted noise, %s: proposed theta gives F1 %.3f "
                  "(need %.1f) at an estimated noise rate %.3f",
                  what, f1_p, f1_min, rate);
}

/* The planted noise end to end with the hold-out (the CLI's default): its
 * held-out users (about 60, some 12 insertion points each) take fewer than
 * IADSR__HOLDOUT_MIN_INSERTS inserted items in one pass, so propose_theta
 * takes more passes over them. This small, briefly trained model fits its
 * noise too little for the old fallback to every user to fail here (it
 * did on generated 5-12-item data trained to convergence: 0.002 for a true
 * 0.166, docs/RESULTS.md); test_inserted_score_passes is the regression
 * test of the passes. */
START_TEST(test_planted_noise_holdout)
{
    expect_planted_proposal(IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_HOLDOUT,
                            "hold-out", 0.5);
}
END_TEST

/* The detector trained under its own input mask (straight-through, keep
 * prior) still finds the planted items at the label-free theta, if less
 * well than without the mask (measured: F1 0.67 against 0.84, the rate
 * read 0.28 for 0.13; docs/RESULTS.md). */
START_TEST(test_planted_noise_input_mask)
{
    expect_planted_proposal(IADSR_DENOISE_F_DETECT | IADSR_DENOISE_F_INPUT_MASK,
                            "input mask", 0.6);
}
END_TEST

Suite *suite_denoise_api(void)
{
    Suite *s = suite_create("denoise_api");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, test_params_defaults);
    tcase_add_test(tc, test_params_bounds);
    tcase_add_test(tc, test_params_struct_size);
    suite_add_tcase(s, tc);
    tc = tcase_create("handles");
    tcase_add_test(tc, test_aligner_create);
    tcase_add_test(tc, test_gate_create_and_params);
    tcase_add_test(tc, test_free_and_foreign);
    tcase_add_test(tc, test_handles_alloc_failures);
    suite_add_tcase(s, tc);
    tc = tcase_create("decide");
    tcase_add_test(tc, test_decide_theta);
    tcase_add_test(tc, test_decide_cap_and_ties);
    tcase_add_test(tc, test_decide_single);
    tcase_add_test(tc, test_decide_cap_decimal);
    tcase_add_test(tc, test_decide_long);
    suite_add_tcase(s, tc);
    tc = tcase_create("joint");
    tcase_add_test(tc, test_joint_create_errors);
    tcase_add_test(tc, test_joint_initial_snapshot);
    tcase_add_test(tc, test_joint_determinism);
    tcase_add_test(tc, test_joint_loss_decreases);
    tcase_add_test(tc, test_joint_zero_weights_is_plain);
    tcase_add_test(tc, test_joint_backbones);
    tcase_add_test(tc, test_joint_divergence);
    tcase_add_test(tc, test_joint_user_sem);
    tcase_add_test(tc, test_joint_carry_masks);
    tcase_add_test(tc, test_joint_detect);
    tcase_add_test(tc, test_joint_progress_terms);
    tcase_add_test(tc, test_joint_backoff);
    tcase_add_test(tc, test_holdout_choice);
    tcase_add_test(tc, test_joint_holdout);
    tcase_add_test(tc, test_joint_clean_scores_and_input_mask);
    tcase_add_test(tc, test_joint_text_feature);
    tcase_add_test(tc, test_joint_alloc_failures);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    tc = tcase_create("denoiser");
    tcase_add_test(tc, test_denoiser_create_errors);
    tcase_add_test(tc, test_denoiser_provenance);
    tcase_add_test(tc, test_clean_errors);
    tcase_add_test(tc, test_clean_guards_random);
    tcase_add_test(tc, test_clean_zero_semantic_rows);
    tcase_add_test(tc, test_clean_matches_heads);
    tcase_add_test(tc, test_clean_long_sequences);
    tcase_add_test(tc, test_clean_dataset);
    tcase_add_test(tc, test_clean_dataset_errors);
    tcase_add_test(tc, test_clean_alloc_failures);
    tcase_add_test(tc, test_propose_theta);
    tcase_add_test(tc, test_inserted_score_passes);
    tcase_add_test(tc, test_propose_theta_holdout);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    tc = tcase_create("pipeline");
    tcase_add_test(tc, test_pipeline_small);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    if (planted_enabled()) {
        tc = tcase_create("planted");
        tcase_add_test(tc, test_planted_noise);
        tcase_add_test(tc, test_planted_noise_detect);
        tcase_add_test(tc, test_planted_noise_input_mask);
        tcase_add_test(tc, test_planted_noise_holdout);
        tcase_set_timeout(tc, 300);
        suite_add_tcase(s, tc);
    }
    return s;
}
