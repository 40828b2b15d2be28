/* libiadsr - params structs: defaults, size-aware overlay, validation.
 * SPDX-License-Identifier: MIT
 */
#include "common/params.h"
#include "iadsr.h"
#include "common/error.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- frozen layouts (ABI) -------------------------------------------------
 * New fields are only ever appended; these tables of (field, offset) catch
 * any accidental reordering, insertion or implicit padding.
 * tests/test_params.c checks the same numbers at run time. */
/* 72 bytes up to 0.3.0; since 0.4.0 two pointers and two int32 */
_Static_assert(sizeof(iadsr_train_params) == 80 + 2 * sizeof(void *),
               "iadsr_train_params size");
/* the 0.1 layout ends after seed: callers built against it still work */
#define TRAIN_PARAMS_SIZE_0_1 64u
#define IADSR__LAYOUT iadsr_train_params
IADSR__AT(struct_size, 0) IADSR__AT(split, 4) IADSR__AT(max_epochs, 8)
IADSR__AT(batch_size, 12) IADSR__AT(patience, 16) IADSR__AT(eval_every, 20)
IADSR__AT(n_threads, 24) IADSR__AT(learning_rate, 28)
IADSR__AT(adam_beta1, 32) IADSR__AT(adam_beta2, 36) IADSR__AT(adam_eps, 40)
IADSR__AT(weight_decay, 44) IADSR__AT(flags, 48) IADSR__AT(reserved0, 52)
IADSR__AT(seed, 56) IADSR__AT(label_smoothing, 64)
IADSR__AT(history_penalty, 68) IADSR__AT(allreduce, 72)
IADSR__AT(allreduce_user, 72 + sizeof(void *))
IADSR__AT(rank, 72 + 2 * sizeof(void *))
IADSR__AT(n_ranks, 76 + 2 * sizeof(void *))
#undef IADSR__LAYOUT

_Static_assert(sizeof(iadsr_ctx_params) == 16, "iadsr_ctx_params size");
#define IADSR__LAYOUT iadsr_ctx_params
IADSR__AT(max_batch, 4) IADSR__AT(flags, 8) IADSR__AT(reserved0, 12)
#undef IADSR__LAYOUT

_Static_assert(sizeof(iadsr_eval_params) == 16, "iadsr_eval_params size");
#define IADSR__LAYOUT iadsr_eval_params
IADSR__AT(target, 4) IADSR__AT(n_threads, 8) IADSR__AT(flags, 12)
#undef IADSR__LAYOUT

_Static_assert(sizeof(iadsr_metrics) == 64, "iadsr_metrics size");
#define IADSR__LAYOUT iadsr_metrics
IADSR__AT(reserved0, 4) IADSR__AT(n_users, 8) IADSR__AT(hr5, 16)
IADSR__AT(hr10, 24) IADSR__AT(hr20, 32) IADSR__AT(ndcg5, 40)
IADSR__AT(ndcg10, 48) IADSR__AT(ndcg20, 56)
#undef IADSR__LAYOUT

/* 4 x 4-byte fields then 6 doubles: 64 bytes, no padding (0.1); five more
 * doubles since 0.3.0: 104. */
_Static_assert(sizeof(iadsr_progress_info) == 104, "iadsr_progress_info size");
#define IADSR__LAYOUT iadsr_progress_info
IADSR__AT(epoch, 4) IADSR__AT(max_epochs, 8) IADSR__AT(best_epoch, 12)
IADSR__AT(loss, 16) IADSR__AT(valid_hr10, 24) IADSR__AT(valid_ndcg10, 32)
IADSR__AT(best_ndcg10, 40) IADSR__AT(epoch_seconds, 48)
IADSR__AT(elapsed_seconds, 56) IADSR__AT(loss_next, 64)
IADSR__AT(loss_aux, 72) IADSR__AT(loss_detect, 80)
IADSR__AT(learning_rate, 88) IADSR__AT(aux_scale, 96)
#undef IADSR__LAYOUT

/* Since 0.3.0: two uint32, six 4-byte fields, a reserved word, the seed. */
_Static_assert(sizeof(iadsr_denoise_params) == 48, "iadsr_denoise_params size");
#define IADSR__LAYOUT iadsr_denoise_params
IADSR__AT(flags, 4) IADSR__AT(lambda_align, 8) IADSR__AT(lambda_recon, 12)
IADSR__AT(tau_align, 16) IADSR__AT(tau_gumbel, 20) IADSR__AT(theta, 24)
IADSR__AT(max_drop, 28) IADSR__AT(protect_last, 32) IADSR__AT(reserved0, 36)
IADSR__AT(seed, 40)
#undef IADSR__LAYOUT

_Static_assert(sizeof(iadsr_pipeline_result) == 120, "iadsr_pipeline_result size");
#define IADSR__LAYOUT iadsr_pipeline_result
IADSR__AT(iadsr_epochs, 4) IADSR__AT(retrain_epochs, 8)
IADSR__AT(reserved0, 12) IADSR__AT(n_items_in, 16)
IADSR__AT(n_items_dropped, 24) IADSR__AT(n_users_touched, 32)
IADSR__AT(iadsr_seconds, 40) IADSR__AT(retrain_seconds, 48)
IADSR__AT(test, 56)
#undef IADSR__LAYOUT
/* iadsr_metrics is embedded by value in iadsr_pipeline_result.test: its
 * 64-byte layout is frozen there (docs/ABI.md, "Embedded structs"), so the
 * pipeline result's layout never depends on a later iadsr_metrics. Any
 * field appended to iadsr_pipeline_result goes after test, at offset 120. */
_Static_assert(sizeof(((iadsr_pipeline_result *)0)->test) ==
                   IADSR__METRICS_SIZE_0_1,
               "pipeline: the embedded metrics keep the 0.1 size");
_Static_assert(offsetof(iadsr_pipeline_result, test) +
                       sizeof(((iadsr_pipeline_result *)0)->test) ==
                   IADSR__PIPELINE_RESULT_SIZE_0_3,
               "pipeline: test is the last field of the 0.3 layout");
/* No output struct has grown since its first release, so each oldest
 * accepted size is today's size; when one grows, its IADSR__*_SIZE_0_x
 * constant stays and only the sizeof assert above changes. */
_Static_assert(sizeof(iadsr_metrics) == IADSR__METRICS_SIZE_0_1, "metrics");
_Static_assert(sizeof(iadsr_denoise_params) == IADSR__DENOISE_PARAMS_SIZE_0_3,
               "denoise");
_Static_assert(sizeof(iadsr_pipeline_result) ==
                   IADSR__PIPELINE_RESULT_SIZE_0_3,
               "pipeline");

/* ---- defaults (the one place they live) ---------------------------------- */

static const iadsr_train_params train_defaults = {
    .struct_size = sizeof(iadsr_train_params),
    .split = IADSR_SPLIT_LEAVE_ONE_OUT,
    .max_epochs = 200,
    .batch_size = 256,
    .patience = 10,
    .eval_every = 1,
    .n_threads = 1,
    .learning_rate = 1e-3f,
    .adam_beta1 = 0.9f,
    .adam_beta2 = 0.999f,
    .adam_eps = 1e-8f,
    .weight_decay = 0.0f,
    .flags = 0,
    .reserved0 = 0,
    .seed = 1,
    .label_smoothing = 0.0f,
    .history_penalty = 0.0f,
    .allreduce = NULL,
    .allreduce_user = NULL,
    .rank = 0,
    .n_ranks = 1,
};

static const iadsr_denoise_params denoise_defaults = {
    .struct_size = sizeof(iadsr_denoise_params),
    .flags = 0,
    .lambda_align = 1.0f,
    .lambda_recon = 1.0f,
    .tau_align = 0.1f,
    .tau_gumbel = 1.0f,
    .theta = 0.0f,
    .max_drop = 0.3f,
    .protect_last = 1,
    .reserved0 = 0,
    .seed = 7,
};

static const iadsr_ctx_params ctx_defaults = {
    .struct_size = sizeof(iadsr_ctx_params),
    .max_batch = 64,
    .flags = 0,
    .reserved0 = 0,
};

static const iadsr_eval_params eval_defaults = {
    .struct_size = sizeof(iadsr_eval_params),
    .target = IADSR_EVAL_TEST,
    .n_threads = 1,
    .flags = 0,
};

/* The public iadsr_<name>_params_init(): the library defaults. */
#define PARAMS_INIT(name)                                                     \
    void iadsr_##name##_params_init(iadsr_##name##_params *p)                 \
    {                                                                         \
        if (p)                                                                \
            *p = name##_defaults;                                             \
    }
PARAMS_INIT(train)
PARAMS_INIT(denoise)
PARAMS_INIT(ctx)
PARAMS_INIT(eval)

/* ---- overlay ---------------------------------------------------------------- */

/* A struct_size above this is certainly garbage (an uninitialised struct);
 * refusing it avoids scanning far beyond the caller's object. */
#define PARAMS_MAX_STRUCT_SIZE 4096u

int iadsr__params_overlay(void *dst, const void *defaults, size_t lib_size,
                          size_t min_size, const void *user, const char *what)
{
    uint32_t lib_size32 = (uint32_t)lib_size;
    uint32_t user_size;

    if (!what)
        what = "params";
    if (!dst || !defaults || lib_size < sizeof(uint32_t) ||
        lib_size > PARAMS_MAX_STRUCT_SIZE)
        return iadsr__err(IADSR_ERR_GENERIC,
                          "%s: internal error: bad params overlay call", what);
    if (min_size < sizeof(uint32_t))
        min_size = sizeof(uint32_t);

    memcpy(dst, defaults, lib_size);
    memcpy(dst, &lib_size32, sizeof lib_size32);
    if (!user)
        return IADSR_OK;

    memcpy(&user_size, user, sizeof user_size);
    if (user_size < min_size)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: struct_size %u is smaller than the minimum "
                          "%zu (initialise the struct with its _init() "
                          "function)",
                          what, (unsigned)user_size, min_size);
    if (user_size > lib_size) {
        if (user_size > PARAMS_MAX_STRUCT_SIZE)
            return iadsr__err(IADSR_ERR_INVALID_ARG,
                              "%s: struct_size %u is implausibly large "
                              "(uninitialised struct?)",
                              what, (unsigned)user_size);
        const unsigned char *bytes = (const unsigned char *)user;
        for (size_t i = lib_size; i < user_size; i++) {
            if (bytes[i] != 0)
                return iadsr__err(
                    IADSR_ERR_UNSUPPORTED,
                    "%s: struct_size %u is larger than this library's %zu "
                    "and byte %zu of the unknown tail is non-zero (a newer "
                    "field this version of libiadsr does not support)",
                    what, (unsigned)user_size, lib_size, i);
        }
    }
    memcpy(dst, user, user_size < lib_size ? user_size : lib_size);
    memcpy(dst, &lib_size32, sizeof lib_size32);
    return IADSR_OK;
}

/* ---- output structs --------------------------------------------------------- */

int iadsr__output_copy(void *user_out, const void *lib_value, size_t lib_size,
                       size_t min_size, const char *what)
{
    uint32_t user_size;

    if (!what)
        what = "output struct";
    if (lib_size < sizeof(uint32_t) || min_size < sizeof(uint32_t) ||
        min_size > lib_size)
        return iadsr__err(IADSR_ERR_GENERIC,
                          "%s: internal error: bad output copy call", what);
    if (!user_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s is NULL", what);
    memcpy(&user_size, user_out, sizeof user_size);
    if (user_size < min_size)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: struct_size %u is smaller than %zu, the "
                          "oldest size of this struct (set it to sizeof the "
                          "struct)",
                          what, (unsigned)user_size, min_size);
    if (lib_value) {
        size_t n = user_size < lib_size ? user_size : lib_size;
        /* everything after the caller's struct_size field */
        memcpy((unsigned char *)user_out + sizeof user_size,
               (const unsigned char *)lib_value + sizeof user_size,
               n - sizeof user_size);
    }
    return IADSR_OK;
}

/* ---- validation helpers --------------------------------------------------- */

int iadsr__check_i32(const char *what, const char *field, int32_t v,
                     int32_t lo, int32_t hi)
{
    return iadsr__check_range_i32(what, ".", field, v, lo, hi);
}

int iadsr__check_reserved(const char *what, const char *field, uint32_t v)
{
    if (v != 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.%s = %u, must be 0 (reserved)", what, field,
                          (unsigned)v);
    return IADSR_OK;
}

int iadsr__check_flags(const char *what, uint32_t flags, uint32_t known)
{
    if (flags & ~known)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "%s.flags = 0x%x has unknown bits 0x%x", what,
                          (unsigned)flags, (unsigned)(flags & ~known));
    return IADSR_OK;
}

int iadsr__check_unit(const char *what, const char *field, float v)
{
    if (!(v >= 0.0f && v < 1.0f))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.%s = %g is outside [0, 1)", what, field,
                          (double)v);
    return IADSR_OK;
}

int iadsr__check_choice(const char *what, const char *field, int32_t *v,
                        int32_t dflt, int32_t a, int32_t b,
                        const char *expected)
{
    if (*v == 0)
        *v = dflt;
    if (*v != a && *v != b)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s.%s = %d is not %s", what,
                          field, (int)*v, expected);
    return IADSR_OK;
}

/* IADSR_OK when @p v is finite and > 0 (or >= 0 with @p or_zero), else
 * IADSR_ERR_INVALID_ARG "<what>.<field> = v, must be finite and > 0". */
static int check_finite_min(const char *what, const char *field, float v,
                            int or_zero)
{
    if (!(or_zero ? v >= 0.0f : v > 0.0f) || !isfinite(v))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.%s = %g, must be finite and %s 0", what, field,
                          (double)v, or_zero ? ">=" : ">");
    return IADSR_OK;
}

/* ---- train ------------------------------------------------------------------ */

static int train_check(iadsr_train_params *p)
{
    static const char w[] = "iadsr_train_params";

    TRY(iadsr__check_choice(w, "split", &p->split, IADSR_SPLIT_LEAVE_ONE_OUT,
                            IADSR_SPLIT_LEAVE_ONE_OUT, IADSR_SPLIT_NONE,
                            "an IADSR_SPLIT_* value (0, 1 or 2)"));
    TRY(iadsr__check_i32(w, "max_epochs", p->max_epochs, 1, 100000));
    TRY(iadsr__check_i32(w, "batch_size", p->batch_size, 1, 65536));
    TRY(iadsr__check_i32(w, "patience", p->patience, 0, INT32_MAX));
    TRY(iadsr__check_i32(w, "eval_every", p->eval_every, 1, INT32_MAX));
    TRY(iadsr__check_i32(w, "n_threads", p->n_threads, 1, 256));
    TRY(check_finite_min(w, "learning_rate", p->learning_rate, 0));
    TRY(iadsr__check_unit(w, "adam_beta1", p->adam_beta1));
    TRY(iadsr__check_unit(w, "adam_beta2", p->adam_beta2));
    TRY(check_finite_min(w, "adam_eps", p->adam_eps, 0));
    TRY(check_finite_min(w, "weight_decay", p->weight_decay, 1));
    TRY(iadsr__check_flags(w, p->flags, 0));
    TRY(iadsr__check_reserved(w, "reserved0", p->reserved0));
    TRY(iadsr__check_unit(w, "label_smoothing", p->label_smoothing));
    TRY(check_finite_min(w, "history_penalty", p->history_penalty, 1));
    TRY(iadsr__check_i32(w, "n_ranks", p->n_ranks, 1, 65536));
    TRY(iadsr__check_i32(w, "rank", p->rank, 0, p->n_ranks - 1));
    if (p->n_ranks > 1 && !p->allreduce)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.n_ranks = %d needs an allreduce callback "
                          "(%s.allreduce is NULL)",
                          w, (int)p->n_ranks, w);
    return IADSR_OK;
}

int iadsr__train_params_get(iadsr_train_params *dst,
                            const iadsr_train_params *user)
{
    TRY(iadsr__params_overlay(dst, &train_defaults, sizeof train_defaults,
                              TRAIN_PARAMS_SIZE_0_1, user,
                              "iadsr_train_params"));
    return train_check(dst);
}

/* ---- denoise ---------------------------------------------------------------- */

static int check_f32(const char *what, const char *field, float v, float lo,
                     float hi, int open_lo)
{
    if (!isfinite(v) || v < lo || v > hi || (open_lo && v == lo))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.%s = %g is outside %s%g, %g]", what, field,
                          (double)v, open_lo ? "(" : "[", (double)lo,
                          (double)hi);
    return IADSR_OK;
}

int iadsr__denoise_params_get(iadsr_denoise_params *dst,
                              const iadsr_denoise_params *user)
{
    static const char w[] = "iadsr_denoise_params";
    TRY(iadsr__params_overlay(dst, &denoise_defaults, sizeof denoise_defaults,
                              sizeof denoise_defaults, user, w));
    TRY(iadsr__check_flags(w, dst->flags,
                    IADSR_DENOISE_F_COLLAB_ONLY | IADSR_DENOISE_F_CARRY_MASKS |
                        IADSR_DENOISE_F_PAPER | IADSR_DENOISE_F_DETECT |
                        IADSR_DENOISE_F_HOLDOUT |
                        IADSR_DENOISE_F_CLEAN_SCORES |
                        IADSR_DENOISE_F_INPUT_MASK |
                        IADSR_DENOISE_F_BACKOFF | IADSR_DENOISE_F_TEXT));
    if ((dst->flags & IADSR_DENOISE_F_TEXT) &&
        (!(dst->flags & IADSR_DENOISE_F_DETECT) ||
         (dst->flags & IADSR_DENOISE_F_COLLAB_ONLY)))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags: IADSR_DENOISE_F_TEXT is a feature of "
                          "the detector gate's semantic view; it needs "
                          "IADSR_DENOISE_F_DETECT and not "
                          "IADSR_DENOISE_F_COLLAB_ONLY",
                          w);
    if ((dst->flags & (IADSR_DENOISE_F_CLEAN_SCORES |
                       IADSR_DENOISE_F_INPUT_MASK)) &&
        !(dst->flags & IADSR_DENOISE_F_DETECT))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags: IADSR_DENOISE_F_%s trains the detector "
                          "gate; it needs IADSR_DENOISE_F_DETECT",
                          w,
                          (dst->flags & IADSR_DENOISE_F_INPUT_MASK)
                              ? "INPUT_MASK"
                              : "CLEAN_SCORES");
    /* the input mask is decided on the dropout-free scores */
    if (dst->flags & IADSR_DENOISE_F_INPUT_MASK)
        dst->flags |= IADSR_DENOISE_F_CLEAN_SCORES;
    if ((dst->flags & IADSR_DENOISE_F_HOLDOUT) &&
        !(dst->flags & IADSR_DENOISE_F_DETECT))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags: IADSR_DENOISE_F_HOLDOUT holds users out "
                          "for the detector gate's noise rate; it needs "
                          "IADSR_DENOISE_F_DETECT",
                          w);
    if ((dst->flags & IADSR_DENOISE_F_DETECT) &&
        (dst->flags & (IADSR_DENOISE_F_PAPER | IADSR_DENOISE_F_CARRY_MASKS)))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s: flags: the detector gate (IADSR_DENOISE_F_DETECT) "
                          "cannot be combined with IADSR_DENOISE_F_PAPER or "
                          "IADSR_DENOISE_F_CARRY_MASKS",
                          w);
    TRY(check_f32(w, "lambda_align", dst->lambda_align, 0.0f, 1e6f, 0));
    TRY(check_f32(w, "lambda_recon", dst->lambda_recon, 0.0f, 1e6f, 0));
    TRY(check_f32(w, "tau_align", dst->tau_align, 0.0f, 1e6f, 1));
    TRY(check_f32(w, "tau_gumbel", dst->tau_gumbel, 0.0f, 1e6f, 1));
    TRY(check_f32(w, "theta", dst->theta, -3.0f, 3.0f, 0));
    TRY(check_f32(w, "max_drop", dst->max_drop, 0.0f, 1.0f, 0));
    TRY(iadsr__check_i32(w, "protect_last", dst->protect_last, 0, 1));
    TRY(iadsr__check_reserved(w, "reserved0", dst->reserved0));
    return IADSR_OK;
}

/* ---- ctx -------------------------------------------------------------------- */

int iadsr__ctx_params_get(iadsr_ctx_params *dst, const iadsr_ctx_params *user)
{
    static const char w[] = "iadsr_ctx_params";
    TRY(iadsr__params_overlay(dst, &ctx_defaults, sizeof ctx_defaults,
                              sizeof ctx_defaults, user, w));
    TRY(iadsr__check_i32(w, "max_batch", dst->max_batch, 1, 65536));
    TRY(iadsr__check_flags(w, dst->flags,
                           IADSR_CTX_F_FP16_SCAN | IADSR_CTX_F_INT8_SCAN));
    if ((dst->flags & IADSR_CTX_F_FP16_SCAN) &&
        (dst->flags & IADSR_CTX_F_INT8_SCAN))
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "%s.flags: IADSR_CTX_F_FP16_SCAN and "
                          "IADSR_CTX_F_INT8_SCAN are both set (give at most "
                          "one reduced table)",
                          w);
    TRY(iadsr__check_reserved(w, "reserved0", dst->reserved0));
    return IADSR_OK;
}

/* ---- eval ------------------------------------------------------------------- */

int iadsr__eval_params_get(iadsr_eval_params *dst,
                           const iadsr_eval_params *user)
{
    static const char w[] = "iadsr_eval_params";
    TRY(iadsr__params_overlay(dst, &eval_defaults, sizeof eval_defaults,
                              sizeof eval_defaults, user, w));
    TRY(iadsr__check_choice(w, "target", &dst->target, IADSR_EVAL_TEST,
                            IADSR_EVAL_TEST, IADSR_EVAL_VALID,
                            "IADSR_EVAL_TEST (1) or IADSR_EVAL_VALID (2)"));
    TRY(iadsr__check_i32(w, "n_threads", dst->n_threads, 1, 256));
    TRY(iadsr__check_flags(w, dst->flags, IADSR_TOPK_EXCLUDE_HISTORY));
    return IADSR_OK;
}
