/* Fuzz harness: the public API driven with random arguments.
 *
 * A hand-rolled byte reader (fuzz_common.h) turns the input into a short
 * program: first a tiny valid model (SASRec, GRU4Rec or Caser, d <= 8,
 * n_items <= 40, L <= 8; 6 bytes) and a context, then up to 16 operation
 * records [op][n][n argument bytes] (an operation reads zeros past its n
 * bytes, which mostly selects valid defaults). Arguments: ids negative, 0,
 * n_items + 1 or
 * huge; lengths 0..5000; capacities off by one; NaN/Inf floats; odd
 * dimensions, flags and struct_size values (smaller, larger with a zero or
 * non-zero tail, absurd). No training: trainers are created and freed.
 *
 * Oracle. For every call the harness lists the problems it has put into
 * the arguments, each with the status code(s) iadsr.h documents for it:
 *   - no problem: the call must succeed (IADSR_OK; NOMEM is tolerated);
 *   - problems: the call must fail with the code of one of them;
 *   - arguments whose outcome the header does not pin down: any
 *     documented status.
 * After every failure: *out is NULL, output buffers are byte-for-byte
 * untouched (API.md: "out-parameters are written only on success"), and
 * iadsr_last_error() is non-empty. OK is never returned for a capacity
 * that is too small. Results are checked where cheap: scores[0] is
 * -INFINITY, top-K lists are valid, sorted and really the best, batch rows
 * match single calls, cleaned sequences match their keep masks, metrics
 * are consistent, output structs are written only up to struct_size.
 * SPDX-License-Identifier: MIT
 */
#include "fuzz_common.h"

#define MAX_ID (INT32_MAX - 1)
#define MAX_OPS 16
#define PARAMS_MAX 4096u /* largest struct_size accepted (ABI.md) */

/* ---- the oracle ------------------------------------------------------------ */

typedef struct oracle {
    int n;         /* problems put into the arguments */
    int codes[32]; /* acceptable codes, two per problem */
    int unknown;   /* outcome not pinned down by the header */
} oracle;

static void of_init(oracle *o)
{
    memset(o, 0, sizeof *o);
}

/* A problem that must make the call fail with @p c1 or @p c2. */
static void of_bad2(oracle *o, int c1, int c2)
{
    if (o->n < 16) {
        o->codes[2 * o->n] = c1;
        o->codes[2 * o->n + 1] = c2;
    }
    o->n++;
}

static void of_bad(oracle *o, int code)
{
    of_bad2(o, code, code);
}

/* Check @p rc against the oracle; returns 1 when the call succeeded. */
static int of_check(const oracle *o, int rc)
{
    fz_check_status(rc);
    if (o->unknown)
        return rc == IADSR_OK;
    if (o->n == 0) {
        FZ_CHECK(rc == IADSR_OK || rc == IADSR_ERR_NOMEM);
        return rc == IADSR_OK;
    }
    if (rc == IADSR_OK)
        fprintf(stderr, "fuzz_api: OK, expected one of %d problems (first "
                        "%s)\n",
                o->n, iadsr_status_name(o->codes[0]));
    FZ_CHECK(rc != IADSR_OK);
    int hit = rc == IADSR_ERR_NOMEM;
    int n = o->n < 16 ? o->n : 16;
    for (int i = 0; i < 2 * n; i++)
        hit |= o->codes[i] == rc;
    if (!hit)
        fprintf(stderr, "fuzz_api: got %s, not one of the %d expected "
                        "codes (first %s)\n",
                iadsr_status_name(rc), o->n, iadsr_status_name(o->codes[0]));
    FZ_CHECK(hit);
    return 0;
}

/* ---- the program state ----------------------------------------------------- */

typedef struct state {
    fz_reader r;
    iadsr_model *m;   /* always valid */
    int m_moderate;   /* weights from the normal initialisation */
    iadsr_ctx *c;     /* always valid (bound to some model) */
    iadsr_semantic *sem;
    float *sem_data;  /* borrowed by sem when created with BORROW */
    int sem_moderate;
    iadsr_aligner *a;
    iadsr_gate *g;
    iadsr_denoiser *dn;
    int32_t dn_n_items; /* of the model the denoiser holds */
    iadsr_dataset *ds;
    /* host arrays lent with IADSR_FLAG_BORROW: a handle made from them may
     * outlive the state's reference (a denoiser holds the semantic
     * matrix), so they are freed only after every handle */
    void *lent[2 * MAX_OPS + 2];
    int n_lent;
} state;

static void lend(state *s, void *p)
{
    if (!p)
        return;
    if (s->n_lent < (int)(sizeof s->lent / sizeof s->lent[0]))
        s->lent[s->n_lent++] = p;
    else
        abort(); /* cannot happen: at most two per operation */
}

static void set_sem(state *s, iadsr_semantic *sem, float *data, int moderate)
{
    iadsr_semantic_free(s->sem);
    lend(s, data);
    s->sem = sem;
    s->sem_moderate = moderate;
}

static void set_ds(state *s, iadsr_dataset *ds, int32_t *items, int64_t *off)
{
    iadsr_dataset_free(s->ds);
    lend(s, items);
    lend(s, off);
    s->ds = ds;
}

/* ---- argument generators --------------------------------------------------- */

/* A struct of @p size bytes inside a zeroed 4 KiB + slack buffer, so that
 * any struct_size the library may honour stays inside the allocation. */
typedef struct pbuf {
    unsigned char b[PARAMS_MAX + 64];
} pbuf;

typedef struct ssz {
    uint32_t size; /* struct_size written */
    int tail;      /* a non-zero byte after the library's size */
} ssz;

/* struct_size: usually right, sometimes smaller, larger (zero or non-zero
 * tail) or absurd. */
static ssz gen_struct_size(fz_reader *r, uint32_t lib, uint32_t min)
{
    ssz z = {lib, 0};
    switch (fz_u8(r) % 16) {
    case 8: z.size = 0; break;
    case 9: z.size = min - 1; break;
    case 10: z.size = min; break;
    case 11: z.size = lib + 8; break;
    case 12: z.size = lib + 8; z.tail = 1; break;
    case 13: z.size = PARAMS_MAX + 1; break;
    case 14: z.size = 0xffffffffu; break;
    case 15: z.size = PARAMS_MAX; break;
    default: break;
    }
    return z;
}

/* Copy @p p (of the library's size @p lib) into @p pb with struct_size z:
 * the bytes beyond the caller's size revert to the defaults @p defs in the
 * returned effective copy @p eff (what the library should see). Returns
 * the oracle code for the size itself (0 when acceptable). */
static int place_params(pbuf *pb, const void *p, const void *defs,
                        void *eff, size_t lib, uint32_t min, ssz z)
{
    memset(pb->b, 0, sizeof pb->b);
    memcpy(pb->b, p, lib);
    memcpy(pb->b, &z.size, 4);
    if (z.tail && z.size > lib)
        pb->b[lib + (z.size - lib) / 2] = 1;
    memcpy(eff, defs, lib);
    memcpy(eff, p, z.size < lib ? z.size : lib);
    if (z.size < min || z.size > PARAMS_MAX)
        return IADSR_ERR_INVALID_ARG;
    if (z.tail && z.size > lib)
        return IADSR_ERR_UNSUPPORTED;
    return 0;
}

/* An item id: usually valid for @p n items, sometimes 0, negative, n + 1
 * or huge. */
static int32_t gen_id(fz_reader *r, int32_t n)
{
    static const int32_t bad[] = {0, -1, INT32_MIN, INT32_MAX, MAX_ID};
    uint8_t s = fz_u8(r);
    if (s < 232)
        return 1 + (int32_t)(s % (uint32_t)n);
    if (s < 240)
        return n;
    if (s < 248)
        return n + 1;
    return bad[s % 5];
}

/* A length: small, around L, or up to 5000; negative sometimes. */
static int32_t gen_len(fz_reader *r, int32_t L)
{
    switch (fz_u8(r) % 16) {
    case 0: return 0;
    case 1: return -1;
    case 2: return L;
    case 3: return L + 1;
    case 4: return 2 * L + 3;
    case 5: return 5000;
    case 6: return 64 + fz_u8(r);
    default: return 1 + (int32_t)(fz_u8(r) % 6);
    }
}

/* A sequence of @p n ids (n >= 0); *bad says whether one is out of range. */
static int32_t *gen_seq(fz_reader *r, int32_t n, int32_t n_items, int *bad)
{
    int32_t *s = fz_alloc((size_t)(n > 0 ? n : 0) * sizeof(int32_t));
    *bad = 0;
    for (int32_t i = 0; i < n; i++) {
        s[i] = gen_id(r, n_items);
        *bad |= s[i] < 1 || s[i] > n_items;
    }
    return s;
}

/* A capacity around @p need: exact, one short, one over, 0, negative. */
static int64_t gen_cap(fz_reader *r, int64_t need)
{
    switch (fz_u8(r) % 8) {
    case 0: return need - 1;
    case 1: return 0;
    case 2: return -1;
    case 3: return need + 1;
    case 4: return INT64_MIN;
    default: return need;
    }
}

/* A float buffer for a capacity: exact when it is large enough, else as
 * small as the (too small) capacity says, so that a write past it is an
 * ASan error. */
static float *cap_buffer(int64_t cap, int64_t need)
{
    int64_t n = cap >= need ? need : (cap > 0 ? cap : 0);
    float *b = fz_alloc((size_t)n * sizeof(float));
    fz_fill(b, (size_t)n * sizeof(float));
    return b;
}

static size_t cap_bytes(int64_t cap, int64_t need)
{
    int64_t n = cap >= need ? need : (cap > 0 ? cap : 0);
    return (size_t)n * sizeof(float);
}

/* Pick a value from a table, or keep @p def (half of the time). */
static int32_t pick_i32(fz_reader *r, int32_t def, const int32_t *t, int n)
{
    uint8_t s = fz_u8(r);
    return s < 128 ? def : t[s % n];
}

static float pick_f32(fz_reader *r, float def)
{
    return fz_bool(r) ? def : fz_f32(r);
}

/* ---- params and their documented rules ------------------------------------- */

typedef struct model_args {
    pbuf pb;
    iadsr_model_params eff; /* what the library should see */
    int size_code;
    const iadsr_model_params *ptr;
} model_args;

static void gen_model_params(fz_reader *r, model_args *ma,
                             const iadsr_model_params *base)
{
    static const int32_t bb[] = {0, 1, 2, 3, 4, -1};
    static const int32_t items[] = {0, 1, 2, 7, 40, -1, INT32_MAX, INT32_MIN};
    static const int32_t dims[] = {0, 1, 2, 3, 4, 8, -1, 4097};
    static const int32_t lens[] = {0, 1, 2, 5, 8, -1, 4097};
    static const int32_t layers[] = {0, 1, 2, 17, -1};
    static const int32_t heads[] = {0, 1, 2, 3, 4, -1, 4097};
    static const int32_t ffn[] = {0, 1, 3, 16, -1, 65537};
    static const int32_t act[] = {0, 1, 2, 3, -1};
    static const int32_t flg[] = {0, 1, 2, (int32_t)0x80000000u};
    static const int32_t rsv[] = {0, 1};
    static const int32_t win[] = {0, 1, 3, 65, -1};
    static const int32_t filt[] = {0, 1, 2, 1025, -1};
    iadsr_model_params p = *base, defs;
    iadsr_model_params_init(&defs);
#define N(t) ((int)(sizeof(t) / sizeof((t)[0])))
    p.backbone = pick_i32(r, p.backbone, bb, N(bb));
    p.n_items = pick_i32(r, p.n_items, items, N(items));
    p.dim = pick_i32(r, p.dim, dims, N(dims));
    p.max_seq_len = pick_i32(r, p.max_seq_len, lens, N(lens));
    p.n_layers = pick_i32(r, p.n_layers, layers, N(layers));
    p.n_heads = pick_i32(r, p.n_heads, heads, N(heads));
    p.ffn_dim = pick_i32(r, p.ffn_dim, ffn, N(ffn));
    p.activation = pick_i32(r, p.activation, act, N(act));
    p.dropout = pick_f32(r, p.dropout);
    p.flags = (uint32_t)pick_i32(r, (int32_t)p.flags, flg, N(flg));
    p.reserved0 = (uint32_t)pick_i32(r, 0, rsv, N(rsv));
    if (fz_bool(r))
        p.seed = fz_u64(r);
    p.caser_window = pick_i32(r, p.caser_window, win, N(win));
    p.caser_h_filters = pick_i32(r, p.caser_h_filters, filt, N(filt));
    p.caser_v_filters = pick_i32(r, p.caser_v_filters, filt, N(filt));
    p.reserved1 = (uint32_t)pick_i32(r, 0, rsv, N(rsv));
    ssz z = gen_struct_size(r, sizeof p, 56);
    ma->size_code =
        place_params(&ma->pb, &p, &defs, &ma->eff, sizeof p, 56, z);
    ma->ptr = (const iadsr_model_params *)(const void *)ma->pb.b;
    /* a NULL params pointer now and then */
    if (fz_u8(r) == 0xff)
        ma->ptr = NULL;
}

/* The documented rules of iadsr_model_params (iadsr.h), applied to the
 * effective fields. Unknown flag bits and reserved words: INVALID_ARG or
 * UNSUPPORTED (the header says "UNSUPPORTED (... unknown flags or non-zero
 * unknown tail)" and "field out of bounds" for INVALID_ARG). */
static void model_rules(oracle *o, const iadsr_model_params *q)
{
    const int IA = IADSR_ERR_INVALID_ARG, US = IADSR_ERR_UNSUPPORTED;
    int bb = q->backbone == 0 ? IADSR_BACKBONE_SASREC : q->backbone;
    if (q->n_items < 1 || q->n_items > MAX_ID)
        of_bad(o, IA);
    if (bb < 1 || bb > 3)
        of_bad2(o, IA, US);
    if (q->dim < 1 || q->dim > 4096)
        of_bad(o, IA);
    if (q->max_seq_len < 1 || q->max_seq_len > 4096)
        of_bad(o, IA);
    if (q->flags & ~IADSR_MODEL_F_PRE_LN)
        of_bad2(o, US, IA);
    if (q->reserved0 || q->reserved1)
        of_bad2(o, IA, US);
    if (!(q->dropout >= 0.0f && q->dropout < 1.0f))
        of_bad(o, IA);
    if (bb == IADSR_BACKBONE_SASREC) {
        int32_t nl = q->n_layers ? q->n_layers : 2;
        int32_t ff = q->ffn_dim ? q->ffn_dim : 4 * q->dim;
        if (q->caser_window || q->caser_h_filters || q->caser_v_filters)
            of_bad(o, IA);
        if (nl < 1 || nl > 16)
            of_bad(o, IA);
        if (q->n_heads < 1 || q->n_heads > 4096 ||
            (q->dim >= 1 && q->dim % q->n_heads != 0))
            of_bad(o, IA);
        if ((q->ffn_dim != 0 && (ff < 1 || ff > 65536)) ||
            (q->ffn_dim == 0 && q->dim >= 1 && q->dim <= 4096 && ff > 65536))
            of_bad(o, IA);
        if (q->activation != 0 && q->activation != IADSR_ACT_GELU &&
            q->activation != IADSR_ACT_RELU)
            of_bad(o, IA);
    } else if (bb == IADSR_BACKBONE_GRU4REC || bb == IADSR_BACKBONE_CASER) {
        if ((q->n_heads != 0 && q->n_heads != 2) || q->ffn_dim != 0 ||
            (q->activation != 0 && q->activation != IADSR_ACT_GELU) ||
            (q->flags & IADSR_MODEL_F_PRE_LN))
            of_bad(o, IA);
        if (bb == IADSR_BACKBONE_GRU4REC) {
            int32_t nl = q->n_layers ? q->n_layers : 1;
            if (nl < 1 || nl > 16)
                of_bad(o, IA);
            if (q->caser_window || q->caser_h_filters || q->caser_v_filters)
                of_bad(o, IA);
        } else {
            int32_t w = q->caser_window ? q->caser_window : 5;
            int32_t h = q->caser_h_filters ? q->caser_h_filters : 16;
            int32_t v = q->caser_v_filters ? q->caser_v_filters : 4;
            if (q->n_layers != 0)
                of_bad(o, IA);
            if (w < 1 || w > 64 || h < 1 || h > 1024 || v < 1 || v > 1024)
                of_bad(o, IA);
        }
    }
}

typedef struct dn_args {
    pbuf pb;
    iadsr_denoise_params eff;
    int size_code;
    const iadsr_denoise_params *ptr;
} dn_args;

static void gen_denoise_params(fz_reader *r, dn_args *da)
{
    static const int32_t flg[] = {0, 1, 2, 3, 4, (int32_t)0x80000000u};
    static const int32_t pl[] = {0, 1, 2, -1};
    static const int32_t rsv[] = {0, 1};
    iadsr_denoise_params p, defs;
    iadsr_denoise_params_init(&p);
    iadsr_denoise_params_init(&defs);
    if (fz_bool(r)) {
        p.flags = (uint32_t)pick_i32(r, 0, flg, N(flg));
        p.lambda_align = pick_f32(r, p.lambda_align);
        p.lambda_recon = pick_f32(r, p.lambda_recon);
        p.tau_align = pick_f32(r, p.tau_align);
        p.tau_gumbel = pick_f32(r, p.tau_gumbel);
        p.theta = pick_f32(r, p.theta);
        p.max_drop = pick_f32(r, p.max_drop);
        p.protect_last = pick_i32(r, p.protect_last, pl, N(pl));
        p.reserved0 = (uint32_t)pick_i32(r, 0, rsv, N(rsv));
        if (fz_bool(r))
            p.seed = fz_u64(r);
    }
    ssz z = gen_struct_size(r, sizeof p, sizeof p);
    da->size_code =
        place_params(&da->pb, &p, &defs, &da->eff, sizeof p, sizeof p, z);
    da->ptr = (const iadsr_denoise_params *)(const void *)da->pb.b;
    if (fz_u8(r) == 0xff) {
        da->ptr = NULL;
        da->eff = defs;
        da->size_code = 0;
    }
}

/* iadsr_denoise_params as documented: flags IADSR_DENOISE_F_*, lambdas
 * >= 0, temperatures > 0, theta in [-3, 3], max_drop in [0, 1],
 * protect_last 0 or 1, reserved0 0. Values the header allows but the
 * library bounds (finite values above 1e6) leave the outcome open. */
static void denoise_rules(oracle *o, const dn_args *da)
{
    const int IA = IADSR_ERR_INVALID_ARG, US = IADSR_ERR_UNSUPPORTED;
    const iadsr_denoise_params *q = &da->eff;
    if (da->size_code) {
        of_bad(o, da->size_code);
        return; /* the fields are not looked at */
    }
    const uint32_t known = IADSR_DENOISE_F_COLLAB_ONLY |
                           IADSR_DENOISE_F_CARRY_MASKS |
                           IADSR_DENOISE_F_PAPER | IADSR_DENOISE_F_DETECT;
    if (q->flags & ~known)
        of_bad2(o, US, IA);
    else if ((q->flags & IADSR_DENOISE_F_DETECT) &&
             (q->flags & (IADSR_DENOISE_F_PAPER | IADSR_DENOISE_F_CARRY_MASKS)))
        of_bad(o, IA); /* the detector combines with neither */
    const float big = 1e6f;
    float nonneg[2] = {q->lambda_align, q->lambda_recon};
    for (int i = 0; i < 2; i++) {
        if (!(nonneg[i] >= 0.0f) || isinf(nonneg[i]))
            of_bad(o, IA);
        else if (nonneg[i] > big)
            o->unknown = 1;
    }
    float pos[2] = {q->tau_align, q->tau_gumbel};
    for (int i = 0; i < 2; i++) {
        if (!(pos[i] > 0.0f) || isinf(pos[i]))
            of_bad(o, IA);
        else if (pos[i] > big)
            o->unknown = 1;
    }
    if (!(q->theta >= -3.0f && q->theta <= 3.0f))
        of_bad(o, IA);
    if (!(q->max_drop >= 0.0f && q->max_drop <= 1.0f))
        of_bad(o, IA);
    if (q->protect_last != 0 && q->protect_last != 1)
        of_bad(o, IA);
    if (q->reserved0)
        of_bad2(o, IA, US);
}

/* ---- operations ------------------------------------------------------------ */

/* Tolerance of batch versus single scoring (other kernels, other sums). */
static int close_enough(float a, float b)
{
    if (a == b || (isnan(a) && isnan(b)))
        return 1;
    return fabsf(a - b) <= 1e-4f + 1e-3f * fabsf(b);
}

/* Scores of one valid sequence through the context (n_items + 1 floats). */
static float *ref_scores(iadsr_ctx *c, const int32_t *seq, int32_t n)
{
    const iadsr_model *cm = iadsr_ctx_model(c);
    int64_t ns = (int64_t)iadsr_model_n_items(cm) + 1;
    float *s = fz_alloc((size_t)ns * sizeof(float));
    iadsr_clear_error();
    int rc = iadsr_ctx_score(c, seq, n, s, ns);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    return s;
}

static void op_ctx_score(state *s)
{
    fz_reader *r = &s->r;
    iadsr_ctx *c = fz_u8(r) == 0xff ? NULL : s->c;
    const iadsr_model *cm = iadsr_ctx_model(s->c);
    const int32_t n = iadsr_model_n_items(cm);
    const int32_t L = iadsr_model_max_seq_len(cm);
    const int64_t need = (int64_t)n + 1;
    int32_t len = gen_len(r, L), bad_id = 0;
    int32_t *seq = gen_seq(r, len, n, &bad_id);
    int64_t cap = gen_cap(r, need);
    int null_out = fz_u8(r) == 0xff, null_seq = fz_u8(r) == 0xfe;
    float *out = cap_buffer(cap, need);
    size_t ob = cap_bytes(cap, need);

    oracle o;
    of_init(&o);
    if (!c || null_out || null_seq)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (len < 1)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (cap < need)
        of_bad(&o, IADSR_ERR_BUFFER_TOO_SMALL);
    if (bad_id)
        of_bad(&o, IADSR_ERR_OUT_OF_RANGE);
    iadsr_clear_error();
    int rc = iadsr_ctx_score(c, null_seq ? NULL : seq, len,
                             null_out ? NULL : out, cap);
    if (of_check(&o, rc)) {
        FZ_CHECK(out[0] == -INFINITY);
        if (s->m_moderate && iadsr_ctx_model(s->c) == s->m)
            for (int64_t i = 1; i < need; i++)
                FZ_CHECK(isfinite(out[i]));
        /* deterministic: the same call gives the same bits */
        float *again = ref_scores(s->c, seq, len);
        FZ_CHECK(memcmp(again, out, (size_t)need * sizeof(float)) == 0);
        free(again);
    } else {
        FZ_CHECK(fz_untouched(out, ob));
    }
    free(seq);
    free(out);
}

/* Top-K rows: valid distinct ids then -1 padding, best first, outside the
 * history when excluded; with @p ref (the sequence's scores, indexed by
 * id) the scores must match and no other candidate may beat the last. */
static void check_topk_row(const int32_t *ids, const float *ks, int32_t k,
                           int32_t n, const int32_t *seq, int32_t len,
                           uint32_t flags, const float *ref, int exact)
{
    int32_t got = 0;
    for (int32_t i = 0; i < k; i++) {
        if (ids[i] == -1) {
            if (ks)
                FZ_CHECK(ks[i] == -INFINITY);
            continue;
        }
        FZ_CHECK(got == i); /* padding only at the end */
        got++;
        FZ_CHECK(ids[i] >= 1 && ids[i] <= n);
        for (int32_t j = 0; j < i; j++)
            FZ_CHECK(ids[j] != ids[i]);
        if (flags & IADSR_TOPK_EXCLUDE_HISTORY)
            for (int32_t t = 0; t < len; t++)
                FZ_CHECK(seq[t] != ids[i]);
        if (ks) {
            FZ_CHECK(!isnan(ks[i]) && ks[i] != -INFINITY);
            FZ_CHECK(i == 0 || !(ks[i] > ks[i - 1]));
            if (ref)
                FZ_CHECK(exact ? ks[i] == ref[ids[i]]
                               : close_enough(ks[i], ref[ids[i]]));
        }
    }
    if (!ref || !exact || !ks)
        return;
    /* nothing left out beats the last one returned */
    unsigned char *in = calloc((size_t)n + 1, 1);
    if (!in)
        abort();
    for (int32_t i = 0; i < got; i++)
        in[ids[i]] = 1;
    if (flags & IADSR_TOPK_EXCLUDE_HISTORY)
        for (int32_t t = 0; t < len; t++)
            in[seq[t]] = 1;
    for (int32_t j = 1; j <= n; j++) {
        if (in[j] || isnan(ref[j]) || ref[j] == -INFINITY)
            continue;
        FZ_CHECK(got == k);          /* a candidate left: no padding */
        FZ_CHECK(!(ref[j] > ks[k - 1]));
    }
    free(in);
}

static void op_ctx_topk(state *s)
{
    fz_reader *r = &s->r;
    static const int32_t ks_bad[] = {0, -1, INT32_MIN, INT32_MAX};
    iadsr_ctx *c = fz_u8(r) == 0xff ? NULL : s->c;
    const iadsr_model *cm = iadsr_ctx_model(s->c);
    const int32_t n = iadsr_model_n_items(cm);
    const int32_t L = iadsr_model_max_seq_len(cm);
    int32_t len = gen_len(r, L), bad_id = 0;
    int32_t *seq = gen_seq(r, len, n, &bad_id);
    uint8_t ksel = fz_u8(r);
    int32_t k = ksel < 160   ? 1 + (int32_t)(ksel % (uint32_t)n)
                : ksel < 192 ? n
                : ksel < 224 ? n + 1
                             : ks_bad[ksel % 4];
    uint32_t flags = fz_u8(r) % 8 == 7 ? (uint32_t)1u << (fz_u8(r) % 32)
                                       : fz_u8(r) % 2;
    int null_ids = fz_u8(r) == 0xff, null_scores = fz_bool(r);
    size_t kk = k >= 1 && k <= n ? (size_t)k : 1;
    int32_t *ids = fz_alloc(kk * sizeof(int32_t));
    float *ks = fz_alloc(kk * sizeof(float));
    fz_fill(ids, kk * sizeof(int32_t));
    fz_fill(ks, kk * sizeof(float));

    oracle o;
    of_init(&o);
    if (!c || null_ids || len < 1)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (k < 1 || k > n)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (flags & ~IADSR_TOPK_EXCLUDE_HISTORY)
        of_bad2(&o, IADSR_ERR_UNSUPPORTED, IADSR_ERR_INVALID_ARG);
    if (bad_id)
        of_bad(&o, IADSR_ERR_OUT_OF_RANGE);
    iadsr_clear_error();
    int rc = iadsr_ctx_topk(c, seq, len, k, flags, null_ids ? NULL : ids,
                            null_scores ? NULL : ks);
    if (of_check(&o, rc)) {
        float *ref = ref_scores(s->c, seq, len);
        check_topk_row(ids, null_scores ? NULL : ks, k, n, seq, len, flags,
                       ref, 1);
        free(ref);
    } else {
        FZ_CHECK(fz_untouched(ids, kk * sizeof(int32_t)));
        FZ_CHECK(fz_untouched(ks, kk * sizeof(float)));
    }
    free(seq);
    free(ids);
    free(ks);
}

/* A CSR batch with its problems. */
typedef struct batch {
    int64_t n_users;
    int32_t *items;
    int64_t *off;   /* n_users + 1 entries (at least 1) */
    int bad_off;    /* offsets[0] != 0, an empty or decreasing row */
    int bad_id;
} batch;

static void gen_batch(fz_reader *r, int32_t n, int32_t L, batch *b,
                      int allow_empty)
{
    static const int64_t nus[] = {1, 2, 3, 9, 70, 0, -1};
    b->n_users = fz_u8(r) < 128 ? 1 + fz_u8(r) % 4 : nus[fz_u8(r) % 7];
    int64_t nu = b->n_users > 0 ? b->n_users : 0;
    b->off = fz_alloc(((size_t)nu + 1) * sizeof(int64_t));
    b->off[0] = 0;
    int64_t *lens = fz_alloc(((size_t)nu + 1) * sizeof(int64_t));
    int64_t total = 0;
    for (int64_t u = 0; u < nu; u++) {
        uint8_t l = fz_u8(r);
        lens[u] = l < 200 ? 1 + (int64_t)(l % (uint32_t)(L + 2))
                          : (l < 220 ? 0 : 2 * (int64_t)L);
        total += lens[u];
    }
    b->items = fz_alloc((size_t)total * sizeof(int32_t));
    b->bad_id = 0;
    for (int64_t i = 0; i < total; i++) {
        b->items[i] = gen_id(r, n);
        b->bad_id |= b->items[i] < 1 || b->items[i] > n;
    }
    b->bad_off = 0;
    for (int64_t u = 0; u < nu; u++) {
        b->off[u + 1] = b->off[u] + lens[u];
        if (lens[u] == 0 && !allow_empty)
            b->bad_off = 1;
    }
    /* occasionally break the offsets without leaving the arrays */
    uint8_t m = fz_u8(r);
    if (nu >= 1 && m == 0xff) {
        b->off[0] = 1;
        b->bad_off = 1;
    } else if (nu >= 2 && m == 0xfe && b->off[1] > 0) {
        b->off[1] = b->off[1] - 1;
        b->off[2] = b->off[1] - (b->off[1] > 0 ? 1 : 0);
        b->bad_off = 1;
    }
    free(lens);
}

static void free_batch(batch *b)
{
    free(b->items);
    free(b->off);
}

/* An item outside 1..n in a row that the checks reach before a bad
 * offset: with both kinds of problems either code may come first. */
static void batch_rules(oracle *o, const batch *b, int allow_empty)
{
    if (b->n_users < 1)
        of_bad(o, IADSR_ERR_INVALID_ARG);
    (void)allow_empty;
    if (b->bad_off)
        of_bad(o, IADSR_ERR_INVALID_ARG);
    if (b->bad_id)
        of_bad(o, IADSR_ERR_OUT_OF_RANGE);
}

static void op_score_batch(state *s)
{
    fz_reader *r = &s->r;
    iadsr_ctx *c = fz_u8(r) == 0xff ? NULL : s->c;
    const iadsr_model *cm = iadsr_ctx_model(s->c);
    const int32_t n = iadsr_model_n_items(cm);
    const int32_t L = iadsr_model_max_seq_len(cm);
    batch b;
    gen_batch(r, n, L, &b, 0);
    const int64_t nu = b.n_users > 0 ? b.n_users : 0;
    const int64_t need = nu * ((int64_t)n + 1);
    int64_t cap = gen_cap(r, need);
    float *out = cap_buffer(cap, need);
    size_t ob = cap_bytes(cap, need);

    oracle o;
    of_init(&o);
    if (!c)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    batch_rules(&o, &b, 0);
    if (cap < need || (nu == 0 && cap < 0))
        of_bad(&o, IADSR_ERR_BUFFER_TOO_SMALL);
    iadsr_clear_error();
    int rc = iadsr_ctx_score_batch(c, b.items, b.off, b.n_users, out, cap);
    if (of_check(&o, rc)) {
        for (int64_t u = 0; u < nu; u++) {
            const float *row = out + u * ((int64_t)n + 1);
            FZ_CHECK(row[0] == -INFINITY);
            float *ref = ref_scores(s->c, b.items + b.off[u],
                                    (int32_t)(b.off[u + 1] - b.off[u]));
            for (int32_t j = 1; j <= n; j++)
                FZ_CHECK(close_enough(row[j], ref[j]));
            free(ref);
        }
    } else {
        FZ_CHECK(fz_untouched(out, ob));
    }
    free_batch(&b);
    free(out);
}

static void op_topk_batch(state *s)
{
    fz_reader *r = &s->r;
    iadsr_ctx *c = fz_u8(r) == 0xff ? NULL : s->c;
    const iadsr_model *cm = iadsr_ctx_model(s->c);
    const int32_t n = iadsr_model_n_items(cm);
    const int32_t L = iadsr_model_max_seq_len(cm);
    batch b;
    gen_batch(r, n, L, &b, 0);
    uint8_t ksel = fz_u8(r);
    int32_t k = ksel < 200 ? 1 + (int32_t)(ksel % (uint32_t)n)
                           : (ksel < 230 ? n + 1 : 0);
    uint32_t flags = fz_u8(r) % 4;
    int null_scores = fz_bool(r);
    const int64_t nu = b.n_users > 0 ? b.n_users : 0;
    size_t cells = (size_t)nu * (size_t)(k >= 1 && k <= n ? k : 0);
    int32_t *ids = fz_alloc(cells * sizeof(int32_t));
    float *ks = fz_alloc(cells * sizeof(float));
    fz_fill(ids, cells * sizeof(int32_t));
    fz_fill(ks, cells * sizeof(float));

    oracle o;
    of_init(&o);
    if (!c || k < 1 || k > n)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (flags & ~IADSR_TOPK_EXCLUDE_HISTORY)
        of_bad2(&o, IADSR_ERR_UNSUPPORTED, IADSR_ERR_INVALID_ARG);
    batch_rules(&o, &b, 0);
    iadsr_clear_error();
    int rc = iadsr_ctx_topk_batch(c, b.items, b.off, b.n_users, k, flags, ids,
                                  null_scores ? NULL : ks);
    if (of_check(&o, rc)) {
        for (int64_t u = 0; u < nu; u++) {
            const int32_t *seq = b.items + b.off[u];
            int32_t len = (int32_t)(b.off[u + 1] - b.off[u]);
            float *ref = ref_scores(s->c, seq, len);
            check_topk_row(ids + u * k, null_scores ? NULL : ks + u * k, k,
                           n, seq, len, flags, ref, 0);
            free(ref);
        }
    } else {
        FZ_CHECK(fz_untouched(ids, cells * sizeof(int32_t)));
        FZ_CHECK(fz_untouched(ks, cells * sizeof(float)));
    }
    free_batch(&b);
    free(ids);
    free(ks);
}

static void op_model_create(state *s)
{
    fz_reader *r = &s->r;
    iadsr_model_params base;
    iadsr_model_params_init(&base);
    base.n_items = iadsr_model_n_items(s->m);
    base.dim = 4;
    base.max_seq_len = 3;
    base.n_layers = 1;
    base.dropout = 0.0f;
    base.backbone = 1 + fz_u8(r) % 3;
    if (base.backbone != IADSR_BACKBONE_SASREC)
        base.n_layers = base.backbone == IADSR_BACKBONE_CASER ? 0 : 1;
    model_args ma;
    gen_model_params(r, &ma, &base);
    oracle o;
    of_init(&o);
    if (!ma.ptr)
        of_bad(&o, IADSR_ERR_INVALID_ARG); /* n_items is required */
    else if (ma.size_code)
        of_bad(&o, ma.size_code);
    else
        model_rules(&o, &ma.eff);
    int null_out = fz_u8(r) == 0xff;
    iadsr_model *m = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_model_create(null_out ? NULL : &m, ma.ptr);
    if (null_out) {
        fz_check_status(rc);
        FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
        return;
    }
    if (!of_check(&o, rc)) {
        FZ_CHECK(m == NULL);
        return;
    }
    /* what was asked for, and the same seed gives the same bytes */
    FZ_CHECK(iadsr_model_n_items(m) == ma.eff.n_items);
    FZ_CHECK(iadsr_model_dim(m) == ma.eff.dim);
    FZ_CHECK(iadsr_model_max_seq_len(m) == ma.eff.max_seq_len);
    iadsr_model *m2 = NULL;
    FZ_CHECK(iadsr_model_create(&m2, ma.ptr) == IADSR_OK);
    size_t n1 = 0, n2 = 0;
    FZ_CHECK(iadsr_model_save_to_buffer(m, NULL, 0, &n1) == IADSR_OK);
    FZ_CHECK(iadsr_model_save_to_buffer(m2, NULL, 0, &n2) == IADSR_OK);
    FZ_CHECK(n1 == n2);
    uint8_t *b1 = fz_alloc(n1), *b2 = fz_alloc(n2);
    FZ_CHECK(iadsr_model_save_to_buffer(m, b1, n1, NULL) == IADSR_OK);
    FZ_CHECK(iadsr_model_save_to_buffer(m2, b2, n2, NULL) == IADSR_OK);
    FZ_CHECK(memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    iadsr_model_free(m2);
    /* the new model becomes current; the context keeps the old one */
    iadsr_model_free(s->m);
    s->m = m;
    s->m_moderate = 1;
}

static void op_model_from_embeddings(state *s)
{
    fz_reader *r = &s->r;
    iadsr_model_params base;
    iadsr_model_params_init(&base);
    base.n_items = 1 + fz_u8(r) % 12;
    base.dim = 1 + fz_u8(r) % 4;
    base.max_seq_len = 1 + fz_u8(r) % 4;
    base.n_layers = 1;
    base.n_heads = 1;
    model_args ma;
    int fuzz_params = fz_u8(r) < 32;
    if (fuzz_params) {
        gen_model_params(r, &ma, &base);
    } else {
        memset(&ma, 0, sizeof ma);
        memcpy(ma.pb.b, &base, sizeof base);
        ma.eff = base;
        ma.ptr = (const iadsr_model_params *)(const void *)ma.pb.b;
    }
    const int32_t n = base.n_items, d = base.dim;
    static const int64_t drow[] = {0, -1, 1, 2};
    int64_t n_rows = fz_u8(r) < 192 ? (int64_t)n + 1
                                    : (int64_t)n + 1 - drow[fz_u8(r) % 4];
    int32_t dim = fz_u8(r) < 224 ? d : (fz_bool(r) ? d + 1 : 0);
    uint8_t lsel = fz_u8(r);
    int64_t ld = lsel < 192 ? dim : (lsel < 224 ? dim + 2 : dim - 1);
    int64_t rows = n_rows > 0 ? n_rows : 0;
    const int shape = rows > 0 && dim >= 1 && ld >= dim;
    size_t nf = shape ? (size_t)((rows - 1) * ld + dim) : 1;
    float *emb = fz_alloc(nf * sizeof(float));
    int moderate = 1;
    for (size_t i = 0; i < nf; i++)
        emb[i] = fz_hash_float(i, 5) * 0.1f;
    int n_special = fz_u8(r) % 3;
    for (int i = 0; i < n_special; i++) {
        size_t at = fz_u16(r) % nf;
        float v = fz_f32(r);
        emb[at] = v;
        if (!(fabsf(v) <= 10.0f))
            moderate = 0;
    }
    /* a NaN/Inf in rows 1.. (row 0, the padding, is ignored), after all
     * edits (a later one may overwrite an earlier one) */
    int bad_value = 0;
    if (shape)
        for (int64_t i = 1; i < rows; i++)
            for (int32_t j = 0; j < dim; j++)
                bad_value |= !isfinite(emb[i * ld + j]);
    int null_emb = fz_u8(r) == 0xff;

    oracle o;
    of_init(&o);
    if (!ma.ptr) {
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    } else if (ma.size_code) {
        of_bad(&o, ma.size_code);
    } else {
        model_rules(&o, &ma.eff);
        if (n_rows != (int64_t)ma.eff.n_items + 1 || dim != ma.eff.dim)
            of_bad2(&o, IADSR_ERR_DIM_MISMATCH, IADSR_ERR_INVALID_ARG);
    }
    if (null_emb)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (ld < dim)
        of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_DIM_MISMATCH);
    if (bad_value)
        of_bad(&o, IADSR_ERR_NUMERIC);
    /* fuzzed params with a matching shape may ask for large tables */
    if (fuzz_params && o.n == 0 &&
        ((int64_t)ma.eff.n_items > 64 || ma.eff.dim > 8))
        o.unknown = 1;
    if (fuzz_params && (ma.eff.n_items != n || ma.eff.dim != d))
        o.unknown = o.n == 0 ? 1 : o.unknown;

    iadsr_model *m = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_model_create_from_embeddings(&m, ma.ptr,
                                                null_emb ? NULL : emb, n_rows,
                                                dim, ld);
    if (of_check(&o, rc)) {
        const float *E = iadsr_model_item_embeddings(m);
        FZ_CHECK(E != NULL);
        for (int32_t j = 0; j < d; j++)
            FZ_CHECK(E[j] == 0.0f);
        for (int32_t i = 1; i <= n && !o.unknown; i++)
            FZ_CHECK(memcmp(E + (size_t)i * (size_t)d,
                            emb + (size_t)i * (size_t)ld,
                            (size_t)d * sizeof(float)) == 0);
        iadsr_model_free(s->m);
        s->m = m;
        s->m_moderate = moderate;
    } else {
        FZ_CHECK(m == NULL);
    }
    free(emb);
}

static void op_ctx_create(state *s)
{
    fz_reader *r = &s->r;
    static const int32_t mb[] = {0, 1, 2, 3, 64, 65537, -1, INT32_MIN};
    static const int32_t rsv[] = {0, 1, 0x40};
    iadsr_ctx_params p, defs;
    iadsr_ctx_params_init(&p);
    iadsr_ctx_params_init(&defs);
    p.max_batch = pick_i32(r, 1 + fz_u8(r) % 4, mb, N(mb));
    p.flags = (uint32_t)pick_i32(r, 0, rsv, N(rsv));
    p.reserved0 = (uint32_t)pick_i32(r, 0, rsv, N(rsv));
    ssz z = gen_struct_size(r, sizeof p, sizeof p);
    pbuf pb;
    iadsr_ctx_params eff;
    int sc = place_params(&pb, &p, &defs, &eff, sizeof p, sizeof p, z);
    int use_null = fz_u8(r) >= 240;
    oracle o;
    of_init(&o);
    if (!use_null) {
        if (sc) {
            of_bad(&o, sc);
        } else {
            if (eff.max_batch < 1 || eff.max_batch > 65536)
                of_bad(&o, IADSR_ERR_INVALID_ARG);
            if (eff.flags)
                of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
            if (eff.reserved0)
                of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
        }
    }
    iadsr_ctx *c = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_ctx_create(&c, s->m,
                              use_null ? NULL
                                       : (const iadsr_ctx_params *)(void *)pb.b);
    if (of_check(&o, rc)) {
        FZ_CHECK(iadsr_ctx_model(c) == s->m);
        iadsr_ctx_free(s->c);
        s->c = c;
    } else {
        FZ_CHECK(c == NULL);
    }
}

static void op_semantic(state *s)
{
    fz_reader *r = &s->r;
    const int32_t n = iadsr_model_n_items(s->m);
    static const int32_t dims[] = {1, 2, 3, 5, 0, -1, 1048577};
    uint8_t fsel = fz_u8(r);
    uint32_t flags = fsel < 160 ? 0u
                     : fsel < 200 ? IADSR_SEMANTIC_ROW0_PADDING
                     : fsel < 220 ? IADSR_FLAG_BORROW
                     : fsel < 240 ? IADSR_FLAG_BORROW | IADSR_SEMANTIC_ROW0_PADDING
                                  : (uint32_t)1u << (fz_u8(r) % 32);
    const int pad = (flags & IADSR_SEMANTIC_ROW0_PADDING) ? 1 : 0;
    static const int64_t drows[] = {0, 1, -1, 2, 0};
    int64_t n_rows = (int64_t)n + pad;
    if (fz_u8(r) >= 192)
        n_rows = fz_bool(r) ? n_rows + drows[fz_u8(r) % 5] : -(int64_t)n;
    int32_t dim = fz_u8(r) < 200 ? dims[fz_u8(r) % 4] : dims[fz_u8(r) % 7];
    uint8_t lsel = fz_u8(r);
    int64_t ld = lsel < 192 ? dim : (lsel < 224 ? (int64_t)dim + 3 : dim - 1);
    int null_data = fz_u8(r) == 0xff;

    int shape_ok = dim >= 1 && dim <= 1048576 && n_rows - pad >= 1 &&
                   n_rows - pad <= MAX_ID && ld >= dim;
    size_t nf = shape_ok ? (size_t)((n_rows - 1) * ld + dim) : 1;
    float *data = fz_alloc(nf * sizeof(float));
    for (size_t i = 0; i < nf; i++)
        data[i] = fz_hash_float(i, 9);
    /* zero rows ("no text") and special values */
    int bad_value = 0, moderate = 1;
    int n_edit = fz_u8(r) % 4;
    for (int i = 0; i < n_edit && shape_ok; i++) {
        int64_t row = fz_u8(r) % (n_rows > 0 ? n_rows : 1);
        if (fz_bool(r)) {
            memset(data + row * ld, 0, (size_t)dim * sizeof(float));
            continue;
        }
        int64_t col = fz_u8(r) % dim;
        float v = fz_f32(r);
        data[row * ld + col] = v;
        if (!(fabsf(v) <= 1e6f))
            moderate = 0;
    }
    /* after all edits: a NaN/Inf outside the padding row */
    for (int64_t i = pad; shape_ok && i < n_rows; i++)
        for (int32_t j = 0; j < dim; j++)
            bad_value |= !isfinite(data[i * ld + j]);

    oracle o;
    of_init(&o);
    if (null_data)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (flags & ~(uint32_t)(IADSR_FLAG_BORROW | IADSR_SEMANTIC_ROW0_PADDING))
        of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
    if (dim < 1 || dim > 1048576 || ld < dim || n_rows - pad < 1 ||
        n_rows - pad > MAX_ID)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (bad_value)
        of_bad(&o, IADSR_ERR_NUMERIC);
    iadsr_semantic *sem = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_semantic_create(&sem, null_data ? NULL : data, n_rows,
                                   dim, ld, flags);
    if (!of_check(&o, rc)) {
        FZ_CHECK(sem == NULL);
        free(data);
        return;
    }
    const int32_t ni = iadsr_semantic_n_items(sem);
    FZ_CHECK(ni == n_rows - pad && iadsr_semantic_dim(sem) == dim);
    int32_t zeros = 0;
    for (int32_t i = 1; i <= ni; i++) {
        const float *want = data + (size_t)(i - 1 + pad) * (size_t)ld;
        FZ_CHECK(memcmp(iadsr_semantic_row(sem, i), want,
                        (size_t)dim * sizeof(float)) == 0);
        int z = 1;
        for (int32_t j = 0; j < dim && z; j++)
            z = want[j] == 0.0f;
        zeros += z;
    }
    FZ_CHECK(iadsr_semantic_n_zero_rows(sem) == zeros);
    FZ_CHECK(iadsr_semantic_row(sem, 0) == NULL &&
             iadsr_semantic_row(sem, ni + 1) == NULL);

    /* check() against fuzzed expectations */
    static const int32_t cn[] = {0, -1, 1, 2};
    int32_t want_n = fz_bool(r) ? ni : ni + cn[fz_u8(r) % 4];
    int32_t want_d = fz_bool(r) ? dim : (int32_t)(fz_u8(r) % 4) - 1;
    of_init(&o);
    if (want_n < 1 || want_d < 0)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    else if (want_n != ni || (want_d != 0 && want_d != dim))
        of_bad(&o, IADSR_ERR_DIM_MISMATCH);
    iadsr_clear_error();
    of_check(&o, iadsr_semantic_check(sem, want_n, want_d));

    /* text-only scores */
    const int64_t need = (int64_t)ni + 1;
    int32_t len = gen_len(r, 4), bad_id = 0;
    int32_t *seq = gen_seq(r, len, ni, &bad_id);
    int64_t cap = gen_cap(r, need);
    float *out = cap_buffer(cap, need);
    of_init(&o);
    if (len < 1)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (cap < need)
        of_bad(&o, IADSR_ERR_BUFFER_TOO_SMALL);
    if (bad_id)
        of_bad(&o, IADSR_ERR_OUT_OF_RANGE);
    iadsr_clear_error();
    rc = iadsr_semantic_scores(sem, seq, len, out, cap);
    if (of_check(&o, rc)) {
        FZ_CHECK(out[0] == -INFINITY);
        for (int64_t i = 1; i < need; i++)
            FZ_CHECK(isfinite(out[i]) && fabsf(out[i]) <= 1.001f);
    } else {
        FZ_CHECK(fz_untouched(out, cap_bytes(cap, need)));
    }
    free(seq);
    free(out);
    if (flags & IADSR_FLAG_BORROW) {
        set_sem(s, sem, data, moderate);
    } else {
        free(data);
        set_sem(s, sem, NULL, moderate);
    }
}

static void op_aligner(state *s)
{
    fz_reader *r = &s->r;
    const int32_t d = iadsr_model_dim(s->m);
    const int32_t D = s->sem ? iadsr_semantic_dim(s->sem) : 3;
    static const int32_t bad_dims[] = {0, -1, 4097, INT32_MIN};
    uint8_t a = fz_u8(r), b = fz_u8(r);
    int32_t dim = a < 160 ? d : a < 200 ? d + 1 : bad_dims[a % 4];
    int32_t sd = b < 160 ? D : b < 200 ? 1 + b % 7 : bad_dims[b % 4];
    if (b >= 250)
        sd = 1048577;
    dn_args da;
    gen_denoise_params(r, &da);
    oracle o;
    of_init(&o);
    denoise_rules(&o, &da);
    if (dim < 1 || dim > 4096 || sd < 1 || sd > 1048576)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    iadsr_aligner *al = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_aligner_create(&al, dim, sd, da.ptr);
    if (!of_check(&o, rc)) {
        FZ_CHECK(al == NULL);
        return;
    }
    FZ_CHECK(iadsr_aligner_dim(al) == dim &&
             iadsr_aligner_semantic_dim(al) == sd);
    /* project */
    int32_t which = fz_u8(r) < 200 ? 1 + fz_u8(r) % 2 : (int32_t)fz_u8(r) % 5 - 1;
    float *x = fz_alloc((size_t)sd * sizeof(float));
    float *y = fz_alloc((size_t)dim * sizeof(float));
    int moderate = 1;
    for (int32_t j = 0; j < sd; j++) {
        x[j] = fz_bool(r) ? fz_hash_float((uint64_t)j, 1) : fz_f32(r);
        moderate &= fabsf(x[j]) <= 1e6f;
    }
    fz_fill(y, (size_t)dim * sizeof(float));
    int null_x = fz_u8(r) == 0xff;
    of_init(&o);
    if (which != 1 && which != 2)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (null_x)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    iadsr_clear_error();
    rc = iadsr_aligner_project(al, which, null_x ? NULL : x, y);
    if (of_check(&o, rc)) {
        if (moderate)
            for (int32_t j = 0; j < dim; j++)
                FZ_CHECK(isfinite(y[j]));
    } else {
        FZ_CHECK(fz_untouched(y, (size_t)dim * sizeof(float)));
    }
    free(x);
    free(y);
    iadsr_aligner_free(s->a);
    s->a = al;
}

/* get_params of a gate into an over-sized, pattern-filled struct: nothing
 * at or beyond the caller's struct_size may be written. */
static void gate_params_probe(fz_reader *r, const iadsr_gate *g,
                              iadsr_denoise_params *got)
{
    pbuf pb;
    ssz z = gen_struct_size(r, sizeof *got, sizeof *got);
    fz_fill(pb.b, sizeof pb.b);
    memcpy(pb.b, &z.size, 4);
    oracle o;
    of_init(&o);
    o.unknown = z.size != sizeof *got; /* the header says "must be set" */
    iadsr_clear_error();
    int rc = iadsr_gate_get_params(g, (iadsr_denoise_params *)(void *)pb.b);
    of_check(&o, rc);
    size_t from = z.size < sizeof pb.b ? z.size : sizeof pb.b;
    if (rc == IADSR_OK) {
        if (from > 4)
            FZ_CHECK(fz_untouched(pb.b + from, sizeof pb.b - from));
        if (z.size >= sizeof *got)
            memcpy(got, pb.b, sizeof *got);
    } else {
        FZ_CHECK(fz_untouched(pb.b + 4, sizeof pb.b - 4));
    }
}

static void op_gate(state *s)
{
    fz_reader *r = &s->r;
    const int32_t d = iadsr_model_dim(s->m);
    static const int32_t bad_dims[] = {0, -1, 4097, INT32_MIN};
    uint8_t a = fz_u8(r);
    int32_t dim = a < 180 ? d : a < 210 ? d + 1 : bad_dims[a % 4];
    dn_args da;
    gen_denoise_params(r, &da);
    oracle o;
    of_init(&o);
    denoise_rules(&o, &da);
    if (dim < 1 || dim > 4096)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    iadsr_gate *g = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_gate_create(&g, dim, da.ptr);
    if (!of_check(&o, rc)) {
        FZ_CHECK(g == NULL);
        return;
    }
    FZ_CHECK(iadsr_gate_dim(g) == dim);
    iadsr_denoise_params got;
    memset(&got, 0, sizeof got);
    gate_params_probe(r, g, &got);

    /* another inference rule on the same decoder */
    dn_args db;
    gen_denoise_params(r, &db);
    of_init(&o);
    denoise_rules(&o, &db);
    {
        /* a detector keeps the features it was trained on */
        iadsr_denoise_params p0;
        memset(&p0, 0, sizeof p0);
        p0.struct_size = sizeof p0;
        FZ_CHECK(iadsr_gate_get_params(g, &p0) == IADSR_OK);
        if (!db.size_code && (p0.flags & IADSR_DENOISE_F_DETECT) &&
            !(p0.flags & IADSR_DENOISE_F_COLLAB_ONLY) &&
            (db.eff.flags & IADSR_DENOISE_F_COLLAB_ONLY))
            of_bad(&o, IADSR_ERR_INVALID_ARG);
    }
    iadsr_gate *g2 = FZ_SENTINEL;
    iadsr_clear_error();
    rc = iadsr_gate_with_params(&g2, g, db.ptr);
    if (of_check(&o, rc)) {
        iadsr_denoise_params p1, p2;
        memset(&p1, 0, sizeof p1);
        memset(&p2, 0, sizeof p2);
        p1.struct_size = p2.struct_size = sizeof p1;
        FZ_CHECK(iadsr_gate_get_params(g, &p1) == IADSR_OK);
        FZ_CHECK(iadsr_gate_get_params(g2, &p2) == IADSR_OK);
        FZ_CHECK(iadsr_gate_dim(g2) == dim);
        FZ_CHECK(p2.theta == db.eff.theta && p2.max_drop == db.eff.max_drop &&
                 p2.protect_last == db.eff.protect_last &&
                 p2.tau_gumbel == db.eff.tau_gumbel);
        FZ_CHECK(p2.lambda_align == p1.lambda_align &&
                 p2.lambda_recon == p1.lambda_recon &&
                 p2.tau_align == p1.tau_align && p2.seed == p1.seed);
        iadsr_gate_free(g);
        g = g2;
    } else {
        FZ_CHECK(g2 == NULL);
    }
    iadsr_gate_free(s->g);
    s->g = g;
}

static void op_denoiser(state *s)
{
    fz_reader *r = &s->r;
    uint8_t nulls = fz_u8(r);
    const iadsr_model *m = (nulls & 0xf0) == 0xf0 ? NULL : s->m;
    oracle o;
    of_init(&o);
    if (!m || !s->a || !s->g || !s->sem) {
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    } else {
        int32_t d = iadsr_model_dim(m);
        if (iadsr_aligner_dim(s->a) != d || iadsr_gate_dim(s->g) != d ||
            iadsr_aligner_semantic_dim(s->a) != iadsr_semantic_dim(s->sem) ||
            iadsr_semantic_n_items(s->sem) < iadsr_model_n_items(m))
            of_bad(&o, IADSR_ERR_DIM_MISMATCH);
    }
    iadsr_denoiser *dn = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_denoiser_create(&dn, m, s->a, s->g, s->sem);
    if (!of_check(&o, rc)) {
        FZ_CHECK(dn == NULL);
        return;
    }
    iadsr_denoiser_free(s->dn);
    s->dn = dn;
    s->dn_n_items = iadsr_model_n_items(m);

    /* clean one sequence */
    const int32_t n = iadsr_model_n_items(s->m);
    const int32_t L = iadsr_model_max_seq_len(s->m);
    const int32_t D = iadsr_semantic_dim(s->sem);
    int32_t len = gen_len(r, L), bad_id = 0;
    if (len > 300)
        len = 300; /* scratch is per call: keep the exec short */
    int32_t *seq = gen_seq(r, len, n, &bad_id);
    size_t cells = (size_t)(len > 0 ? len : 0);
    uint8_t *keep = fz_alloc(cells);
    float *sc = fz_alloc(cells * sizeof(float));
    int32_t *cl = fz_alloc(cells * sizeof(int32_t));
    int32_t n_kept = 0;
    fz_fill(keep, cells);
    fz_fill(sc, cells * sizeof(float));
    fz_fill(cl, cells * sizeof(int32_t));
    fz_fill(&n_kept, sizeof n_kept);
    float *uv = NULL;
    int bad_uv = 0;
    if (fz_bool(r)) {
        uv = fz_alloc((size_t)D * sizeof(float));
        for (int32_t j = 0; j < D; j++) {
            uv[j] = fz_u8(r) < 240 ? fz_hash_float((uint64_t)j, 2) : fz_f32(r);
            bad_uv |= !isfinite(uv[j]);
        }
    }
    uint8_t outs = fz_u8(r); /* which outputs are NULL */
    of_init(&o);
    if (len < 1)
        of_bad2(&o, IADSR_ERR_OUT_OF_RANGE, IADSR_ERR_INVALID_ARG);
    if (bad_id)
        of_bad(&o, IADSR_ERR_OUT_OF_RANGE);
    if (bad_uv)
        of_bad(&o, IADSR_ERR_NUMERIC);
    iadsr_clear_error();
    rc = iadsr_denoiser_clean(dn, seq, len, uv, (outs & 1) ? NULL : keep,
                              (outs & 2) ? NULL : sc, (outs & 4) ? NULL : cl,
                              (outs & 8) ? NULL : &n_kept);
    if (of_check(&o, rc) && (outs & 15) == 0) {
        iadsr_denoise_params gp;
        memset(&gp, 0, sizeof gp);
        gp.struct_size = sizeof gp;
        FZ_CHECK(iadsr_gate_get_params(s->g, &gp) == IADSR_OK);
        int32_t kept = 0;
        for (int32_t t = 0; t < len; t++) {
            FZ_CHECK(keep[t] == 0 || keep[t] == 1);
            if (keep[t]) {
                FZ_CHECK(kept < n_kept && cl[kept] == seq[t]);
                kept++;
            } else {
                FZ_CHECK(sc[t] <= gp.theta);
            }
        }
        FZ_CHECK(kept == n_kept);
        double md = round((double)gp.max_drop * 1e6) / 1e6;
        FZ_CHECK(len - n_kept <= (int32_t)floor(md * (double)len + 1e-9));
        if (gp.protect_last)
            FZ_CHECK(keep[len - 1] == 1);
    } else if (rc != IADSR_OK) {
        FZ_CHECK(fz_untouched(keep, cells));
        FZ_CHECK(fz_untouched(sc, cells * sizeof(float)));
        FZ_CHECK(fz_untouched(cl, cells * sizeof(int32_t)));
        FZ_CHECK(fz_untouched(&n_kept, sizeof n_kept));
    }
    free(seq);
    free(keep);
    free(sc);
    free(cl);
    free(uv);
}

static void op_clean_dataset(state *s)
{
    fz_reader *r = &s->r;
    if (!s->dn || !s->ds)
        return;
    static const int32_t splits[] = {0, 1, 2, 3, -1};
    static const int32_t thr[] = {1, 1, 2, 0, -1, 257};
    int32_t split = splits[fz_u8(r) % 5];
    int32_t nt = thr[fz_u8(r) % 6];
    const iadsr_semantic *us = fz_u8(r) >= 224 ? s->sem : NULL;
    int want_keep = fz_bool(r), want_scores = fz_bool(r);
    const int64_t ni = iadsr_dataset_n_interactions(s->ds);
    const int64_t nu = iadsr_dataset_n_users(s->ds);
    uint8_t *keep = fz_alloc((size_t)ni);
    float *sc = fz_alloc((size_t)ni * sizeof(float));
    fz_fill(keep, (size_t)ni);
    fz_fill(sc, (size_t)ni * sizeof(float));
    oracle o;
    of_init(&o);
    if (split < 0 || split > IADSR_SPLIT_NONE)
        of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
    /* thread counts: the header gives no range; user rows must match */
    if (nt != 1 && nt != 2)
        o.unknown = 1;
    if (us)
        o.unknown = 1;
    if (iadsr_dataset_n_items(s->ds) > s->dn_n_items)
        of_bad2(&o, IADSR_ERR_DIM_MISMATCH, IADSR_ERR_OUT_OF_RANGE);
    iadsr_dataset *out = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_denoiser_clean_dataset(s->dn, s->ds, split, us, nt, &out,
                                          want_keep ? keep : NULL,
                                          want_scores ? sc : NULL);
    if (of_check(&o, rc)) {
        FZ_CHECK(iadsr_dataset_n_users(out) == nu);
        for (int64_t u = 0; u < nu; u++) {
            int32_t n0 = 0, n1 = 0;
            const int32_t *a = iadsr_dataset_user_items(s->ds, u, &n0);
            const int32_t *b = iadsr_dataset_user_items(out, u, &n1);
            FZ_CHECK(n1 <= n0);
            /* b is a subsequence of a; the last two stay with LOO */
            int32_t j = 0;
            for (int32_t i = 0; i < n0 && j < n1; i++)
                if (a[i] == b[j])
                    j++;
            FZ_CHECK(j == n1);
            if (split != IADSR_SPLIT_NONE && n0 >= 2 && n1 >= 2)
                FZ_CHECK(b[n1 - 1] == a[n0 - 1] && b[n1 - 2] == a[n0 - 2]);
        }
        if (want_keep) {
            int64_t kept = 0;
            for (int64_t i = 0; i < ni; i++) {
                FZ_CHECK(keep[i] == 0 || keep[i] == 1);
                kept += keep[i];
            }
            FZ_CHECK(kept == iadsr_dataset_n_interactions(out));
        }
        iadsr_dataset_free(out);
    } else {
        FZ_CHECK(out == NULL);
        FZ_CHECK(fz_untouched(keep, (size_t)ni));
        FZ_CHECK(fz_untouched(sc, (size_t)ni * sizeof(float)));
    }
    free(keep);
    free(sc);
}

static void op_dataset_create(state *s)
{
    fz_reader *r = &s->r;
    const int32_t n = iadsr_model_n_items(s->m);
    batch b;
    gen_batch(r, n, 4, &b, 1);
    static const int32_t nis[] = {0, 0, 1, 2, -1, INT32_MAX, MAX_ID};
    uint8_t nsel = fz_u8(r);
    int32_t n_items = nsel < 128 ? n : nis[nsel % 7];
    uint8_t fsel = fz_u8(r);
    uint32_t flags = fsel < 160 ? IADSR_FLAG_COPY
                     : fsel < 240 ? IADSR_FLAG_BORROW
                                  : (uint32_t)1u << (fsel % 32);
    int null_items = fz_u8(r) == 0xff;
    const int64_t nu = b.n_users > 0 ? b.n_users : 0;
    /* ids against this call's n_items (0 = the largest present) */
    int bad_id = 0, any = 0;
    int32_t limit = n_items > 0 ? n_items : MAX_ID;
    int off_ok = b.off[0] == 0;
    for (int64_t u = 0; u < nu && off_ok; u++)
        off_ok = b.off[u + 1] >= b.off[u];
    if (off_ok)
        for (int64_t i = 0; i < b.off[nu]; i++) {
            bad_id |= b.items[i] < 1 || b.items[i] > limit;
            any = 1;
        }
    oracle o;
    of_init(&o);
    if (null_items || nu < 1 || !off_ok)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (n_items < 0 || n_items > MAX_ID)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    if (flags & ~IADSR_FLAG_BORROW)
        of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
    if (bad_id)
        of_bad(&o, IADSR_ERR_OUT_OF_RANGE);
    if (n_items == 0 && !any)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    iadsr_dataset *d = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_dataset_create(&d, null_items ? NULL : b.items, b.off,
                                  b.n_users, n_items, flags);
    if (!of_check(&o, rc)) {
        FZ_CHECK(d == NULL);
        free_batch(&b);
        return;
    }
    FZ_CHECK(iadsr_dataset_n_users(d) == nu);
    FZ_CHECK(iadsr_dataset_n_interactions(d) == b.off[nu]);
    int32_t max_id = 0;
    for (int64_t u = 0; u < nu; u++) {
        int32_t len = -1;
        const int32_t *it = iadsr_dataset_user_items(d, u, &len);
        FZ_CHECK(len == b.off[u + 1] - b.off[u]);
        FZ_CHECK(len == 0 ||
                 memcmp(it, b.items + b.off[u], (size_t)len * 4) == 0);
        for (int32_t i = 0; i < len; i++)
            max_id = it[i] > max_id ? it[i] : max_id;
        FZ_CHECK(iadsr_dataset_user_id(d, u) == u);
    }
    FZ_CHECK(iadsr_dataset_n_items(d) == (n_items ? n_items : max_id));
    if (flags & IADSR_FLAG_BORROW) {
        set_ds(s, d, b.items, b.off);
    } else {
        set_ds(s, d, NULL, NULL);
        free_batch(&b);
    }
}

static void check_metrics(const iadsr_metrics *m)
{
    const double v[6] = {m->hr5, m->hr10, m->hr20,
                         m->ndcg5, m->ndcg10, m->ndcg20};
    for (int i = 0; i < 6; i++)
        FZ_CHECK(v[i] >= 0.0 && v[i] <= 1.0);
    FZ_CHECK(m->hr5 <= m->hr10 && m->hr10 <= m->hr20);
    FZ_CHECK(m->ndcg5 <= m->ndcg10 && m->ndcg10 <= m->ndcg20);
    FZ_CHECK(m->ndcg5 <= m->hr5 + 1e-12 && m->ndcg10 <= m->hr10 + 1e-12 &&
             m->ndcg20 <= m->hr20 + 1e-12);
    FZ_CHECK(m->n_users >= 1 && m->reserved0 == 0);
}

static void op_evaluate(state *s)
{
    fz_reader *r = &s->r;
    if (!s->ds)
        return;
    static const int32_t tg[] = {0, 1, 2, 3, -1};
    static const int32_t thr[] = {1, 1, 2, 0, 257};
    static const int32_t flg[] = {0, 1, 2};
    iadsr_eval_params p, defs;
    iadsr_eval_params_init(&p);
    iadsr_eval_params_init(&defs);
    p.target = tg[fz_u8(r) % 5];
    p.n_threads = thr[fz_u8(r) % 5];
    p.flags = (uint32_t)flg[fz_u8(r) % 3];
    ssz z = gen_struct_size(r, sizeof p, sizeof p);
    pbuf pb;
    iadsr_eval_params eff;
    int sc = place_params(&pb, &p, &defs, &eff, sizeof p, sizeof p, z);
    uint32_t msize = fz_u8(r) < 224 ? (uint32_t)sizeof(iadsr_metrics)
                                    : (fz_bool(r) ? 8u : 80u);
    int use_sem = s->sem && fz_bool(r);

    /* who has a target */
    int cut = eff.target == IADSR_EVAL_VALID ? 2 : 1;
    int64_t with_target = 0;
    const int64_t nu = iadsr_dataset_n_users(s->ds);
    for (int64_t u = 0; u < nu; u++) {
        int32_t len = 0;
        iadsr_dataset_user_items(s->ds, u, &len);
        with_target += len >= cut + 1;
    }
    oracle o;
    of_init(&o);
    if (sc) {
        of_bad(&o, sc);
    } else {
        if (eff.target != 0 && eff.target != IADSR_EVAL_TEST &&
            eff.target != IADSR_EVAL_VALID)
            of_bad(&o, IADSR_ERR_INVALID_ARG);
        if (eff.n_threads < 1 || eff.n_threads > 256)
            of_bad(&o, IADSR_ERR_INVALID_ARG);
        if (eff.flags & ~IADSR_TOPK_EXCLUDE_HISTORY)
            of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
    }
    if (msize < sizeof(iadsr_metrics))
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    int32_t have = use_sem ? iadsr_semantic_n_items(s->sem)
                           : iadsr_model_n_items(s->m);
    if (iadsr_dataset_n_items(s->ds) > have)
        of_bad(&o, IADSR_ERR_DIM_MISMATCH);
    if (o.n == 0 && with_target == 0)
        of_bad(&o, IADSR_ERR_STATE);
    if (o.n > 0 && with_target == 0)
        of_bad(&o, IADSR_ERR_STATE); /* either may be found first */

    unsigned char mb[sizeof(iadsr_metrics) + 32];
    fz_fill(mb, sizeof mb);
    memcpy(mb, &msize, 4);
    iadsr_clear_error();
    const iadsr_eval_params *pp = (const iadsr_eval_params *)(void *)pb.b;
    int rc = use_sem
                 ? iadsr_semantic_evaluate(s->sem, s->ds, pp,
                                           (iadsr_metrics *)(void *)mb)
                 : iadsr_evaluate(s->m, s->ds, pp,
                                  (iadsr_metrics *)(void *)mb);
    if (of_check(&o, rc)) {
        iadsr_metrics m;
        memcpy(&m, mb, sizeof m);
        FZ_CHECK(m.struct_size == msize);
        FZ_CHECK(m.n_users == with_target);
        check_metrics(&m);
        FZ_CHECK(fz_untouched(mb + sizeof m, sizeof mb - sizeof m));
    } else {
        FZ_CHECK(fz_untouched(mb + 4, sizeof mb - 4));
    }
}

static void op_save_buffer(state *s)
{
    fz_reader *r = &s->r;
    size_t need = 0;
    iadsr_clear_error();
    FZ_CHECK(iadsr_model_save_to_buffer(s->m, NULL, 0, &need) == IADSR_OK);
    FZ_CHECK(need >= 64);
    static const int64_t dcap[] = {-1, 0, 1, -64, 0};
    uint8_t sel = fz_u8(r);
    size_t cap = sel < 64 ? 0 : (size_t)((int64_t)need + dcap[sel % 5]);
    int null_buf = sel < 32 || (sel < 64 && fz_bool(r));
    int null_needed = fz_u8(r) >= 224;
    uint8_t *b = fz_alloc(cap);
    fz_fill(b, cap);
    size_t got = 0xdead;
    oracle o;
    of_init(&o);
    if (null_buf && cap != 0)
        of_bad(&o, IADSR_ERR_INVALID_ARG);
    else if (!null_buf && cap < need)
        of_bad(&o, IADSR_ERR_BUFFER_TOO_SMALL);
    if (null_buf && sel < 32)
        cap = 0; /* the size query */
    iadsr_clear_error();
    int rc = iadsr_model_save_to_buffer(s->m, null_buf ? NULL : b, cap,
                                        null_needed ? NULL : &got);
    if (of_check(&o, rc)) {
        if (!null_needed)
            FZ_CHECK(got == need);
        if (!null_buf) {
            /* round trip */
            iadsr_model *m2 = FZ_SENTINEL;
            FZ_CHECK(iadsr_model_load_from_buffer(&m2, b, need, 0) ==
                     IADSR_OK);
            FZ_CHECK(iadsr_model_n_items(m2) == iadsr_model_n_items(s->m));
            iadsr_model_free(m2);
            FZ_CHECK(cap == need || fz_untouched(b + need, cap - need));
        }
    } else {
        FZ_CHECK(fz_untouched(b, cap));
        if (rc == IADSR_ERR_BUFFER_TOO_SMALL && !null_needed)
            FZ_CHECK(got == need);
    }
    free(b);
}

static void op_trainer(state *s)
{
    fz_reader *r = &s->r;
    if (!s->ds)
        return;
    static const int32_t splits[] = {0, 1, 2, 3};
    static const int32_t thr[] = {1, 2, 0, 257};
    iadsr_train_params p;
    iadsr_train_params_init(&p);
    p.split = splits[fz_u8(r) % 4];
    p.n_threads = thr[fz_u8(r) % 4];
    p.batch_size = 1 + fz_u8(r) % 4;
    p.learning_rate = pick_f32(r, p.learning_rate);
    p.adam_beta1 = pick_f32(r, p.adam_beta1);
    p.weight_decay = pick_f32(r, p.weight_decay);
    p.label_smoothing = pick_f32(r, p.label_smoothing);
    p.history_penalty = pick_f32(r, p.history_penalty);
    iadsr_trainer *t = FZ_SENTINEL;
    oracle o;
    of_init(&o);
    /* the trainer's own rules are not re-derived here, only the dataset
     * against the model */
    if (iadsr_dataset_n_items(s->ds) > iadsr_model_n_items(s->m))
        of_bad(&o, IADSR_ERR_DIM_MISMATCH);
    else
        o.unknown = 1;
    int use_p = fz_bool(r);
    if (use_p && o.n) /* with bad settings too, either may come first */
        of_bad2(&o, IADSR_ERR_INVALID_ARG, IADSR_ERR_UNSUPPORTED);
    iadsr_clear_error();
    int rc = iadsr_trainer_create(&t, s->m, s->ds, use_p ? &p : NULL);
    if (of_check(&o, rc)) {
        FZ_CHECK(iadsr_trainer_epochs_done(t) == 0);
        iadsr_trainer_free(t);
    } else {
        FZ_CHECK(t == NULL);
    }
}

static void op_misc(state *s)
{
    fz_reader *r = &s->r;
    int code = (int)fz_u32(r);
    if (fz_bool(r))
        code = (int)(fz_u8(r) % 20) - 16;
    FZ_CHECK(iadsr_strerror(code) != NULL);
    const char *nm = iadsr_status_name(code);
    FZ_CHECK(nm != NULL);
    FZ_CHECK((strcmp(nm, "IADSR_UNKNOWN") != 0) == fz_known_status(code));

    /* NULL handles: zero answers and INVALID_ARG */
    FZ_CHECK(iadsr_model_n_items(NULL) == 0 && iadsr_model_dim(NULL) == 0 &&
             iadsr_dataset_n_users(NULL) == 0 && iadsr_ctx_model(NULL) ==
             NULL && iadsr_semantic_row(NULL, 1) == NULL &&
             iadsr_gate_dim(NULL) == 0 && iadsr_aligner_dim(NULL) == 0);
    iadsr_ctx *c = FZ_SENTINEL;
    iadsr_clear_error();
    int rc = iadsr_ctx_create(&c, NULL, NULL);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_ERR_INVALID_ARG && c == NULL);

    /* model_get_params: nothing beyond the caller's struct_size */
    pbuf pb;
    ssz z = gen_struct_size(r, sizeof(iadsr_model_params), 56);
    fz_fill(pb.b, sizeof pb.b);
    memcpy(pb.b, &z.size, 4);
    iadsr_clear_error();
    rc = iadsr_model_get_params(s->m, (iadsr_model_params *)(void *)pb.b);
    fz_check_status(rc);
    if (z.size < 56)
        FZ_CHECK(rc == IADSR_ERR_INVALID_ARG);
    if (rc == IADSR_OK) {
        size_t from = z.size < sizeof pb.b ? z.size : sizeof pb.b;
        FZ_CHECK(fz_untouched(pb.b + from, sizeof pb.b - from));
        iadsr_model_params q;
        memcpy(&q, pb.b, sizeof q < from ? sizeof q : from);
        FZ_CHECK(q.n_items == iadsr_model_n_items(s->m));
    } else {
        FZ_CHECK(fz_untouched(pb.b + 4, sizeof pb.b - 4));
    }
    FZ_CHECK(iadsr_version_number() == IADSR_VERSION_NUMBER);
    FZ_CHECK(iadsr_format_version() >= 100);
}

/* Free one handle out of order: dependants keep what they need. */
static void op_free(state *s)
{
    switch (fz_u8(&s->r) % 6) {
    case 0: set_sem(s, NULL, NULL, 1); break;
    case 1: iadsr_aligner_free(s->a); s->a = NULL; break;
    case 2: iadsr_gate_free(s->g); s->g = NULL; break;
    case 3: iadsr_denoiser_free(s->dn); s->dn = NULL; break;
    case 4: set_ds(s, NULL, NULL, NULL); break;
    default: {
        /* replace the model; the context stays bound to the old one */
        iadsr_model_params p;
        iadsr_model_params_init(&p);
        p.n_items = 3;
        p.dim = 2;
        p.max_seq_len = 2;
        p.n_layers = 1;
        p.n_heads = 1;
        iadsr_model *m = NULL;
        FZ_CHECK(iadsr_model_create(&m, &p) == IADSR_OK);
        iadsr_model_free(s->m);
        s->m = m;
        s->m_moderate = 1;
        break;
    }
    }
}

typedef void (*op_fn)(state *);

static const op_fn OPS[] = {
    op_ctx_score,     op_ctx_topk,   op_score_batch, op_topk_batch,
    op_model_create,  op_ctx_create, op_semantic,    op_aligner,
    op_gate,          op_denoiser,   op_dataset_create,
    op_evaluate,      op_save_buffer, op_model_from_embeddings,
    op_trainer,       op_misc,       op_free,        op_clean_dataset,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    state s;
    memset(&s, 0, sizeof s);
    s.r.p = data;
    s.r.n = size;
    fz_reader *r = &s.r;

    /* a tiny valid model and a context */
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.backbone = 1 + fz_u8(r) % 3;
    p.n_items = 1 + fz_u8(r) % 40;
    static const int32_t dims[] = {1, 2, 4, 8};
    p.dim = dims[fz_u8(r) % 4];
    p.max_seq_len = 1 + fz_u8(r) % 8;
    p.dropout = 0.0f;
    uint8_t shape = fz_u8(r);
    if (p.backbone == IADSR_BACKBONE_SASREC) {
        p.n_layers = 1;
        p.n_heads = (p.dim % 2 == 0 && (shape & 1)) ? 2 : 1;
        p.flags = (shape & 2) ? IADSR_MODEL_F_PRE_LN : 0;
        p.activation = (shape & 4) ? IADSR_ACT_RELU : IADSR_ACT_GELU;
    } else if (p.backbone == IADSR_BACKBONE_GRU4REC) {
        p.n_layers = 1 + (shape & 1);
    } else {
        p.n_layers = 0;
        p.caser_window = 1 + shape % 4;
        p.caser_h_filters = 1 + (shape >> 2) % 3;
        p.caser_v_filters = 1 + (shape >> 4) % 2;
    }
    p.seed = fz_u8(r);
    iadsr_clear_error();
    int rc = iadsr_model_create(&s.m, &p);
    fz_check_status(rc);
    FZ_CHECK(rc == IADSR_OK);
    s.m_moderate = 1;
    rc = iadsr_ctx_create(&s.c, s.m, NULL);
    FZ_CHECK(rc == IADSR_OK);

    /* operation records: [op][n][n argument bytes]. Each operation reads
     * only its own bytes (zeros past them), so a mutation of one
     * argument does not shift the operations after it. */
    for (int i = 0; i < MAX_OPS && r->n > 0; i++) {
        uint8_t op = fz_u8(r);
        size_t n = fz_u8(r);
        if (n > r->n)
            n = r->n;
        fz_reader whole = *r;
        s.r.n = n;
        OPS[op % (sizeof OPS / sizeof OPS[0])](&s);
        s.r.p = whole.p + n;
        s.r.n = whole.n - n;
    }

    /* handles in an order that frees what others depend on first (they
     * are reference-counted), then the lent host arrays */
    iadsr_model_free(s.m);
    iadsr_ctx_free(s.c);
    iadsr_semantic_free(s.sem);
    iadsr_aligner_free(s.a);
    iadsr_gate_free(s.g);
    iadsr_dataset_free(s.ds);
    iadsr_denoiser_free(s.dn);
    for (int i = 0; i < s.n_lent; i++)
        free(s.lent[i]);
    return 0;
}
