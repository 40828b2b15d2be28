/* Tests: the GRU4Rec backbone. The double instantiation (_f64) of every
 * backward pass is compared with central finite differences of a scalar
 * loss (one GRU layer; the whole encoder with and without dropout), the
 * forward pass with a direct, sequence-by-sequence evaluation of PyTorch's
 * GRU equations, and the float production path (_f32) with the double one.
 * Then the backbone through the public API: model creation, training
 * against a popularity baseline, checkpoints, determinism, threads and
 * allocation failures.
 *
 * Set IADSR_TEST_VERBOSE=1 to print the largest errors of every check.
 * SPDX-License-Identifier: MIT
 */
#include "gradcheck.h"
#include "testutil.h"

#include "backbone/encoder.h"
#include "backbone/sasrec.h" /* iadsr__ce_loss_* */
#include "backbone/gru4rec.h"

#include <pthread.h>

Suite *suite_gru4rec(void);

/* ---- helpers ------------------------------------------------------------- */

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void fill_normal(double *a, size_t n, double sd, iadsr__rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = sd * iadsr__rng_normal(r);
}

static double sigm(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* A packed batch from sequence lengths; row_off gets n_seq + 1 entries. */
static int pack(const int *len, int n_seq, int L, int32_t *pos,
                int32_t *row_off)
{
    int row = 0;
    row_off[0] = 0;
    for (int s = 0; s < n_seq; s++) {
        for (int i = 0; i < len[s]; i++, row++)
            pos[row] = L - len[s] + i;
        row_off[s + 1] = row;
    }
    return row;
}

/* ---- 1. The time-major schedule ------------------------------------------ */

START_TEST(test_schedule)
{
    /* a zero-length sequence is allowed and skipped; ties keep batch order */
    static const int len[] = {3, 1, 5, 0, 2, 5, 3};
    enum { NS = 7, L = 6, NR = 19 };
    int32_t pos[NR], off[NS + 1], items[NR];
    int R = pack(len, NS, L, pos, off);
    ck_assert_int_eq(R, NR);
    for (int r = 0; r < R; r++)
        items[r] = 1;
    iadsr__batch b = {NS, R, items, pos, off, NULL, NULL};
    int32_t cnt[L + 1], koff[L + 1], tm_row[NR], row_tm[NR];
    int K = iadsr__gru4rec_schedule(&b, L, cnt, koff, tm_row, row_tm);
    ck_assert_int_eq(K, 5);
    /* step sizes: sequences longer than k */
    for (int k = 0; k < K; k++) {
        int n = 0;
        for (int s = 0; s < NS; s++)
            n += len[s] > k;
        ck_assert_int_eq(koff[k + 1] - koff[k], n);
    }
    ck_assert_int_eq(koff[K], R);
    /* a permutation and its inverse */
    int seen[NR] = {0};
    for (int t = 0; t < R; t++) {
        ck_assert(tm_row[t] >= 0 && tm_row[t] < R);
        seen[tm_row[t]]++;
        ck_assert_int_eq(row_tm[tm_row[t]], t);
    }
    for (int r = 0; r < R; r++)
        ck_assert_int_eq(seen[r], 1);
    /* every sequence keeps one rank; ranks follow length (longest first),
     * then batch order; step k holds row k of each sequence */
    static const int want_rank[] = {2, 5, 0, -1, 4, 1, 3};
    for (int s = 0; s < NS; s++)
        for (int k = 0; k < len[s]; k++) {
            int t = row_tm[off[s] + k];
            ck_assert_int_eq(t - koff[k], want_rank[s]);
        }
}
END_TEST

/* ---- 2. One GRU layer --------------------------------------------------- */

#define LAY_NSEQ 5
#define LAY_L 5
#define LAY_ROWS 16
static const int lay_len[LAY_NSEQ] = {3, 1, 5, 2, 5};

typedef struct {
    int d, K, R;
    int32_t koff[LAY_L + 1], cnt[LAY_L + 1], tm_row[LAY_ROWS],
        row_tm[LAY_ROWS], pos[LAY_ROWS], off[LAY_NSEQ + 1], items[LAY_ROWS];
    iadsr__batch b;
    double *x, *wih, *bih, *whh, *bhh, *g, *gh, *h, *W;
} lay_ctx;

static void lay_setup(lay_ctx *c, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->d = 4;
    c->R = pack(lay_len, LAY_NSEQ, LAY_L, c->pos, c->off);
    ck_assert_int_eq(c->R, LAY_ROWS);
    for (int r = 0; r < c->R; r++)
        c->items[r] = 1;
    iadsr__batch b = {LAY_NSEQ, c->R, c->items, c->pos, c->off, NULL, NULL};
    c->b = b;
    c->K = iadsr__gru4rec_schedule(&c->b, LAY_L, c->cnt, c->koff, c->tm_row,
                                   c->row_tm);
    size_t d = (size_t)c->d, R = (size_t)c->R;
    c->x = dalloc(R * d);
    c->wih = dalloc(d * 3 * d);
    c->whh = dalloc(d * 3 * d);
    c->bih = dalloc(3 * d);
    c->bhh = dalloc(3 * d);
    c->g = dalloc(R * 3 * d);
    c->gh = dalloc(R * 3 * d);
    c->h = dalloc(R * d);
    c->W = dalloc(R * d);
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    fill_normal(c->x, R * d, 1.0, &r);
    fill_normal(c->wih, d * 3 * d, 0.6, &r);
    fill_normal(c->whh, d * 3 * d, 0.6, &r);
    fill_normal(c->bih, 3 * d, 0.4, &r);
    fill_normal(c->bhh, 3 * d, 0.4, &r);
    fill_normal(c->W, R * d, 1.0, &r);
}

static void lay_free(lay_ctx *c)
{
    free(c->x), free(c->wih), free(c->whh), free(c->bih), free(c->bhh);
    free(c->g), free(c->gh), free(c->h), free(c->W);
}

static double lay_loss(void *p)
{
    lay_ctx *c = p;
    iadsr__gru_layer_w_f64 w = {c->wih, c->whh, c->bih, c->bhh};
    iadsr__gru_layer_fwd_f64(c->koff, c->K, c->d, c->x, &w, c->g, c->gh, c->h);
    return dot(c->h, c->W, (size_t)c->R * (size_t)c->d);
}

/* The GRU equations evaluated directly, one sequence at a time, in packed
 * row order: x (R x d packed), weights as in the layout; h0 = 0. */
static void ref_gru_layer(const iadsr__batch *b, int d, const double *x,
                          const double *wih, const double *bih,
                          const double *whh, const double *bhh, double *h)
{
    double hp[64], hn[64];
    ck_assert_int_le(d, 64);
    for (int s = 0; s < b->n_seq; s++) {
        for (int c = 0; c < d; c++)
            hp[c] = 0;
        for (int r = b->row_off[s]; r < b->row_off[s + 1]; r++) {
            const double *xr = x + (size_t)r * (size_t)d;
            for (int c = 0; c < d; c++) {
                double a[3], u[3];
                for (int q = 0; q < 3; q++) {
                    int col = q * d + c;
                    a[q] = bih[col];
                    u[q] = bhh[col];
                    for (int i = 0; i < d; i++) {
                        a[q] += xr[i] * wih[i * 3 * d + col];
                        u[q] += hp[i] * whh[i * 3 * d + col];
                    }
                }
                double rg = sigm(a[0] + u[0]), zg = sigm(a[1] + u[1]);
                double ng = tanh(a[2] + rg * u[2]);
                hn[c] = (1 - zg) * ng + zg * hp[c];
            }
            for (int c = 0; c < d; c++)
                h[(size_t)r * (size_t)d + (size_t)c] = hp[c] = hn[c];
        }
    }
}

START_TEST(test_layer_forward_reference)
{
    lay_ctx c;
    lay_setup(&c, 11);
    size_t d = (size_t)c.d, R = (size_t)c.R;
    /* x in packed order for the reference */
    double *xp = dalloc(R * d), *ref = dalloc(R * d);
    for (size_t t = 0; t < R; t++)
        memcpy(xp + (size_t)c.tm_row[t] * d, c.x + t * d, d * sizeof *xp);
    lay_loss(&c);
    ref_gru_layer(&c.b, c.d, xp, c.wih, c.bih, c.whh, c.bhh, ref);
    double worst = 0;
    for (size_t r = 0; r < R; r++)
        for (size_t k = 0; k < d; k++)
            worst = fmax(worst, fabs(c.h[(size_t)c.row_tm[r] * d + k] -
                                     ref[r * d + k]));
    ck_assert_msg(worst < 1e-13, "GRU layer vs direct equations: %.3g",
                  worst);
    /* the gates are stored as activations: r, z in (0, 1), n in (-1, 1) */
    for (size_t t = 0; t < R; t++)
        for (size_t k = 0; k < d; k++) {
            const double *gt = c.g + t * 3 * d;
            ck_assert(gt[k] > 0 && gt[k] < 1);
            ck_assert(gt[d + k] > 0 && gt[d + k] < 1);
            ck_assert(gt[2 * d + k] > -1 && gt[2 * d + k] < 1);
        }
    free(xp), free(ref);
    lay_free(&c);
}
END_TEST

START_TEST(test_layer_grad)
{
    lay_ctx c;
    lay_setup(&c, 22);
    size_t d = (size_t)c.d, R = (size_t)c.R, nw = d * 3 * d;
    double *dh = dalloc(R * d), *dx = dalloc(R * d), *dwih = dalloc(nw);
    double *dwhh = dalloc(nw), *dbih = dalloc(3 * d), *dbhh = dalloc(3 * d);
    double *dgi = dalloc(R * 3 * d), *dgh = dalloc(R * 3 * d);
    double *hp = dalloc(R * d), *wt = dalloc(nw), *fd = dalloc(R * 3 * d);
    lay_loss(&c);
    memcpy(dh, c.W, R * d * sizeof *dh);
    for (size_t i = 0; i < R * d; i++) /* dx is written, never read */
        dx[i] = NAN;
    iadsr__gru_layer_w_f64 w = {c.wih, c.whh, c.bih, c.bhh};
    iadsr__gru_layer_w_f64 dw = {dwih, dwhh, dbih, dbhh};
    iadsr__gru_layer_bwd_f64(c.koff, c.K, c.d, c.x, &w, c.g, c.gh, c.h, dh,
                             &dw, dx, dgi, dgh, hp, wt);
    fd_grad(lay_loss, &c, c.x, R * d, fd);
    check_grad("gru layer x", dx, fd, R * d);
    fd_grad(lay_loss, &c, c.wih, nw, fd);
    check_grad("gru layer w_ih", dwih, fd, nw);
    fd_grad(lay_loss, &c, c.bih, 3 * d, fd);
    check_grad("gru layer b_ih", dbih, fd, 3 * d);
    fd_grad(lay_loss, &c, c.whh, nw, fd);
    check_grad("gru layer w_hh", dwhh, fd, nw);
    fd_grad(lay_loss, &c, c.bhh, 3 * d, fd);
    check_grad("gru layer b_hh", dbhh, fd, 3 * d);

    /* weight gradients accumulate; dx may be NULL */
    double *dwhh2 = dalloc(nw), *dbih2 = dalloc(3 * d);
    for (size_t i = 0; i < nw; i++)
        dwhh2[i] = 0.5;
    for (size_t i = 0; i < 3 * d; i++)
        dbih2[i] = -1.5;
    double *junk = dalloc(nw);
    lay_loss(&c);
    memcpy(dh, c.W, R * d * sizeof *dh);
    iadsr__gru_layer_w_f64 dw2 = {junk, dwhh2, dbih2, junk};
    iadsr__gru_layer_bwd_f64(c.koff, c.K, c.d, c.x, &w, c.g, c.gh, c.h, dh,
                             &dw2, NULL, dgi, dgh, hp, wt);
    for (size_t i = 0; i < nw; i++)
        ck_assert(fabs(dwhh2[i] - 0.5 - dwhh[i]) < 1e-13 * (1 + fabs(dwhh[i])));
    for (size_t i = 0; i < 3 * d; i++)
        ck_assert(fabs(dbih2[i] + 1.5 - dbih[i]) < 1e-13 * (1 + fabs(dbih[i])));
    free(dh), free(dx), free(dwih), free(dwhh), free(dbih), free(dbhh);
    free(dgi), free(dgh), free(hp), free(wt), free(fd), free(dwhh2);
    free(dbih2), free(junk);
    lay_free(&c);
}
END_TEST

/* ---- 3. The whole encoder ------------------------------------------------- */

#define ENC_NSEQ 5
#define ENC_L 6
#define ENC_MAXROWS 32
#define ENC_ITEMS 9
static const int enc_len[ENC_NSEQ] = {1, 3, 5, 4, 2};
/* items 7 and 9 never appear as inputs (9 is only a target) */
static const int32_t enc_items[] = {4, /**/ 2, 5, 1, /**/ 3, 3, 8, 6, 2,
                                    /**/ 1, 6, 8, 5, /**/ 2, 4};
static const int32_t enc_tgt[] = {9, /**/ 5, 1, 0, /**/ 3, 8, 6, 2, 9,
                                  /**/ 6, 0, 5, 4, /**/ 4, 1};

typedef struct {
    iadsr_model_params hp;
    iadsr__shape shape;
    iadsr__layout *lay;
    double *W, *G;
    iadsr__gru4rec_w_f64 w, g;
    iadsr__gru4rec_ws_f64 ws;
    iadsr__batch b;
    int32_t items[ENC_MAXROWS], pos[ENC_MAXROWS], off[ENC_NSEQ + 1];
    int32_t tgt[ENC_MAXROWS];
    iadsr__rng rng0; /* copied before every forward: identical masks */
    int use_rng;
    double scale;
    double *dh, *zbuf;
} enc_ctx;

static void enc_setup(enc_ctx *e, float dropout, int n_layers, uint64_t seed)
{
    memset(e, 0, sizeof *e);
    iadsr_model_params_init(&e->hp);
    e->hp.backbone = IADSR_BACKBONE_GRU4REC;
    e->hp.n_items = ENC_ITEMS;
    e->hp.dim = 8;
    e->hp.n_layers = n_layers;
    e->hp.max_seq_len = ENC_L;
    e->hp.dropout = dropout;
    TU_OK(iadsr__model_params_check(&e->hp));
    e->lay = calloc(1, sizeof *e->lay);
    ck_assert_ptr_nonnull(e->lay);
    TU_OK(iadsr__model_layout(&e->hp, e->lay));
    ck_assert_int_eq(e->lay->n_tensors, 1 + 4 * n_layers);
    iadsr__shape_from(&e->hp, &e->shape);

    int R = pack(enc_len, ENC_NSEQ, ENC_L, e->pos, e->off);
    ck_assert_uint_eq((size_t)R, sizeof enc_items / sizeof enc_items[0]);
    memcpy(e->items, enc_items, sizeof enc_items);
    memcpy(e->tgt, enc_tgt, sizeof enc_tgt);
    e->b.n_seq = ENC_NSEQ;
    e->b.n_rows = R;
    e->b.items = e->items;
    e->b.pos = e->pos;
    e->b.row_off = e->off;

    size_t nf = e->lay->n_floats;
    e->W = dalloc(nf);
    e->G = dalloc(nf);
    iadsr__gru4rec_bind_f64(e->lay, e->W, &e->shape, &e->w);
    iadsr__gru4rec_bind_f64(e->lay, e->G, &e->shape, &e->g);
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        fill_normal(e->W + tt->offset, (size_t)tt->rows * (size_t)tt->cols,
                    0.4, &r);
    }
    /* the weights are exactly representable in float (f32 vs f64) */
    for (size_t i = 0; i < nf; i++)
        e->W[i] = (double)(float)e->W[i];
    TU_OK(iadsr__gru4rec_ws_init_f64(&e->ws, &e->shape, ENC_MAXROWS, ENC_L,
                                     1));
    iadsr__rng_seed(&e->rng0, seed ^ 0x5eedu);
    e->use_rng = 1;
    e->scale = 1.0 / (double)R;
    e->dh = dalloc((size_t)ENC_MAXROWS * (size_t)e->hp.dim);
    e->zbuf = dalloc((size_t)ENC_MAXROWS * (size_t)e->hp.n_items);
}

static void enc_free(enc_ctx *e)
{
    iadsr__gru4rec_ws_free_f64(&e->ws);
    free(e->lay), free(e->W), free(e->G), free(e->dh), free(e->zbuf);
}

static void enc_forward(enc_ctx *e)
{
    iadsr__rng r = e->rng0;
    iadsr__gru4rec_forward_f64(&e->ws, &e->w, &e->b, e->use_rng ? &r : NULL);
}

static double enc_loss(void *p)
{
    enc_ctx *e = p;
    enc_forward(e);
    return e->scale * iadsr__ce_loss_f64(e->ws.out, e->b.n_rows, e->shape.d,
                                         e->tgt, e->w.item_emb,
                                         e->shape.n_items, e->scale, NULL,
                                         NULL, e->zbuf, 4);
}

/* Analytic gradient into e->G (zeroed first). With with_ce_emb = 0 the
 * softmax part of the item-embedding gradient is left out. */
static double enc_grad(enc_ctx *e, int with_ce_emb)
{
    memset(e->G, 0, e->lay->n_floats * sizeof *e->G);
    enc_forward(e);
    size_t nh = (size_t)e->b.n_rows * (size_t)e->shape.d;
    memset(e->dh, 0, nh * sizeof *e->dh);
    double sum = iadsr__ce_loss_f64(e->ws.out, e->b.n_rows, e->shape.d,
                                    e->tgt, e->w.item_emb, e->shape.n_items,
                                    e->scale, e->dh,
                                    with_ce_emb ? e->g.item_emb : NULL,
                                    e->zbuf, 4);
    iadsr__gru4rec_backward_f64(&e->ws, &e->w, &e->g, &e->b, e->dh);
    return e->scale * sum;
}

/* Finite differences over every parameter of the layout. */
static void enc_check_all(enc_ctx *e, const char *tag)
{
    double loss = enc_grad(e, 1);
    ck_assert(isfinite(loss) && loss > 0);
    ck_assert_msg(loss == enc_loss(e), "%s: loss not reproducible", tag);
    size_t nf = e->lay->n_floats;
    double *fd = dalloc(nf);
    char *is_param = calloc(nf, 1);
    ck_assert_ptr_nonnull(is_param);
    double worst = 0;
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        memset(is_param + tt->offset, 1, n);
        fd_grad(enc_loss, e, e->W + tt->offset, n, fd + tt->offset);
        char what[96];
        snprintf(what, sizeof what, "%s %s", tag, tt->name);
        worst = fmax(worst, check_grad(what, e->G + tt->offset,
                                       fd + tt->offset, n));
        ck_assert_msg(norm2(e->G + tt->offset, n) > 0, "%s: zero gradient",
                      what);
    }
    for (size_t i = 0; i < nf; i++) /* alignment gaps stay untouched */
        if (!is_param[i])
            ck_assert(e->G[i] == 0.0);
    if (verbose())
        fprintf(stderr, "  %s: loss %.10g, worst tensor norm ratio %.3g\n",
                tag, loss, worst);
    free(fd);
    free(is_param);
}

/* A mask on the inputs (b.scale, rows dropped, halved, boosted): every
 * weight's gradient under it, and dL/dscale (b.dscale, the straight-through
 * path of the detector's input mask) against finite differences. */
static void enc_check_all_v(void *e, const char *tag)
{
    enc_check_all(e, tag);
}

static void enc_grad_v(void *e)
{
    enc_grad(e, 1);
}

START_TEST(test_encoder_grad_input_scale)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 313);
    float sc[ENC_MAXROWS];
    double ds[ENC_MAXROWS];
    check_input_scale("encoder(scaled inputs, 2 layers, dropout 0.3)", &e, &e.b, 0.0f, sc, ds, enc_check_all_v,
                      enc_grad_v, enc_loss);
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_dropout)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 707);
    /* the masks really drop something: another rng state changes the loss */
    double l0 = enc_loss(&e);
    iadsr__rng keep = e.rng0;
    iadsr__rng_seed(&e.rng0, 1);
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 1;
    e.rng0 = keep;
    enc_check_all(&e, "gru4rec(2 layers, dropout 0.3)");
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_no_dropout)
{
    /* _i: the number of layers (1 = the default, 3) */
    enc_ctx e;
    enc_setup(&e, 0.0f, _i, 808 + (uint64_t)_i);
    char tag[64];
    snprintf(tag, sizeof tag, "gru4rec(%d layers, dropout 0)", _i);
    enc_check_all(&e, tag);
    /* with dropout 0 the rng is not used at all */
    double l0 = enc_loss(&e);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) == l0);
    enc_free(&e);
}
END_TEST

/* A training workspace whose shape has dropout > 0, run forward WITHOUT an
 * rng, must give the gradient of that dropout-free forward (the backward
 * must not apply masks this forward did not draw). */
START_TEST(test_encoder_grad_forward_without_rng)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 1212);
    e.use_rng = 1;
    enc_forward(&e); /* stale masks in the buffers */
    e.use_rng = 0;
    enc_grad(&e, 1);
    size_t nf = e.lay->n_floats;
    double *fd = dalloc(nf);
    fd_grad(enc_loss, &e, e.W, nf, fd);
    /* evaluated before asserting so that a failure does not leak under
     * CK_FORK=no (valgrind) */
    int bad = 0;
    for (size_t i = 0; i < nf; i++)
        bad += !(fabs(e.G[i] - fd[i]) < TOL_ABS + TOL_REL * fabs(fd[i]));
    free(fd);
    enc_free(&e);
    ck_assert_msg(bad == 0, "forward with rng NULL on a training workspace: "
                            "%d gradient elements wrong",
                  bad);
}
END_TEST

/* The encoder output against the GRU equations evaluated directly, with
 * the dropout masks the forward drew: x = E[item] * m0, each layer's output
 * y = h * m feeds the next layer and is the output of the top one, while
 * the recurrence carries the undropped h, from h = 0 at each first item. */
START_TEST(test_encoder_forward_reference)
{
    for (int use_rng = 0; use_rng < 2; use_rng++) {
        enc_ctx e;
        enc_setup(&e, 0.4f, 2, 1313);
        e.use_rng = use_rng;
        enc_forward(&e);
        int R = e.b.n_rows, d = e.shape.d;
        size_t sd = (size_t)d, Rd = (size_t)R * sd;
        double *x = dalloc(Rd), *h = dalloc(Rd);
        for (int r = 0; r < R; r++) {
            size_t t = (size_t)e.ws.row_tm[r];
            for (int c = 0; c < d; c++)
                x[(size_t)r * sd + (size_t)c] =
                    e.w.item_emb[(size_t)e.items[r] * sd + (size_t)c] *
                    (use_rng ? e.ws.m0[t * sd + (size_t)c] : 1.0);
        }
        for (int l = 0; l < e.shape.n_layers; l++) {
            ref_gru_layer(&e.b, d, x, e.w.lay[l].w_ih, e.w.lay[l].b_ih,
                          e.w.lay[l].w_hh, e.w.lay[l].b_hh, h);
            for (int r = 0; r < R; r++) {
                size_t t = (size_t)e.ws.row_tm[r];
                for (int c = 0; c < d; c++) {
                    double m = use_rng ? e.ws.l[l].m[t * sd + (size_t)c] : 1;
                    x[(size_t)r * sd + (size_t)c] =
                        h[(size_t)r * sd + (size_t)c] * m;
                }
            }
        }
        double worst = 0;
        int dropped = 0;
        for (size_t i = 0; i < Rd; i++) {
            worst = fmax(worst, fabs(e.ws.out[i] - x[i]));
            dropped += e.ws.out[i] == 0.0;
        }
        ck_assert_msg(worst < 1e-13, "rng %d: encoder vs equations %.3g",
                      use_rng, worst);
        /* output dropout: zeros exactly where the top mask dropped */
        if (use_rng)
            ck_assert_int_gt(dropped, 0);
        else
            ck_assert_int_eq(dropped, 0);
        free(x), free(h);
        enc_free(&e);
    }
}
END_TEST

/* The inference shortcut (last row of each sequence) equals the last rows
 * of the full forward pass, in double and in float. */
START_TEST(test_forward_last)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 4242);
    int d = e.shape.d, S = e.b.n_seq;
    size_t sd = (size_t)d;
    e.use_rng = 0;
    enc_forward(&e);
    double *full = dalloc((size_t)e.b.n_rows * sd);
    memcpy(full, e.ws.out, (size_t)e.b.n_rows * sd * sizeof *full);
    iadsr__gru4rec_ws_f64 wsl;
    TU_OK(iadsr__gru4rec_ws_init_f64(&wsl, &e.shape, ENC_MAXROWS, ENC_L, 0));
    iadsr__gru4rec_forward_last_f64(&wsl, &e.w, &e.b);
    for (int q = 0; q < S; q++)
        ck_assert_msg(memcmp(full + (size_t)(e.off[q + 1] - 1) * sd,
                             wsl.out + (size_t)q * sd, sd * sizeof(double)) ==
                          0,
                      "sequence %d: forward_last differs from forward", q);
    /* an inference workspace gives the same full forward */
    iadsr__gru4rec_forward_f64(&wsl, &e.w, &e.b, NULL);
    ck_assert(memcmp(wsl.out, full, (size_t)e.b.n_rows * sd *
                                        sizeof(double)) == 0);

    size_t nf = e.lay->n_floats;
    float *Wf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i];
    iadsr__gru4rec_w_f32 wf;
    iadsr__gru4rec_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__gru4rec_ws_f32 wsf;
    TU_OK(iadsr__gru4rec_ws_init_f32(&wsf, &e.shape, ENC_MAXROWS, ENC_L, 0));
    iadsr__gru4rec_forward_f32(&wsf, &wf, &e.b, NULL);
    float *ff = falloc((size_t)e.b.n_rows * sd);
    memcpy(ff, wsf.out, (size_t)e.b.n_rows * sd * sizeof *ff);
    iadsr__gru4rec_forward_last_f32(&wsf, &wf, &e.b);
    for (int q = 0; q < S; q++)
        ck_assert(memcmp(ff + (size_t)(e.off[q + 1] - 1) * sd,
                         wsf.out + (size_t)q * sd, sd * sizeof(float)) == 0);
    double r = rel_diff_f(ff, full, (size_t)e.b.n_rows * sd);
    ck_assert_msg(r < 1e-5, "f32 vs f64 forward: %.3g", r);
    iadsr__gru4rec_ws_free_f32(&wsf);
    iadsr__gru4rec_ws_free_f64(&wsl);
    free(Wf), free(ff), free(full);
    enc_free(&e);
}
END_TEST

/* A sequence's output does not depend on the rest of the batch nor on the
 * position indices: each sequence alone (and each prefix alone: no padding
 * steps, h = 0 before the first item) gives exactly its rows of the batch. */
START_TEST(test_batch_independence)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, 2, 5151);
    e.use_rng = 0;
    enc_forward(&e);
    int d = e.shape.d, R = e.b.n_rows;
    size_t sd = (size_t)d;
    double *full = dalloc((size_t)R * sd);
    memcpy(full, e.ws.out, (size_t)R * sd * sizeof *full);
    for (int s = 0; s < ENC_NSEQ; s++)
        for (int n = 1; n <= enc_len[s]; n++) {
            int32_t items[ENC_L], pos[ENC_L], off[2] = {0, n};
            for (int i = 0; i < n; i++) {
                items[i] = e.items[e.off[s] + i];
                pos[i] = (int32_t)(i * 7 % ENC_L); /* any: ignored */
            }
            iadsr__batch one = {1, n, items, pos, off, NULL, NULL};
            iadsr__gru4rec_forward_f64(&e.ws, &e.w, &one, NULL);
            ck_assert_msg(memcmp(e.ws.out, full + (size_t)e.off[s] * sd,
                                 (size_t)n * sd * sizeof(double)) == 0,
                          "sequence %d prefix %d differs alone", s, n);
        }
    free(full);
    enc_free(&e);
}
END_TEST

/* The encoder is causal: changing the item at row j never changes the output
 * rows i < j of its sequence, nor other sequences (dropout masks fixed). */
START_TEST(test_encoder_causal)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 1111);
    int d = e.shape.d, R = e.b.n_rows;
    size_t nh = (size_t)R * (size_t)d;
    double *base = dalloc(nh);
    for (int use_rng = 0; use_rng < 2; use_rng++) {
        e.use_rng = use_rng;
        enc_forward(&e);
        memcpy(base, e.ws.out, nh * sizeof *base);
        for (int s = 0; s < ENC_NSEQ; s++)
            for (int j = e.off[s]; j < e.off[s + 1]; j++) {
                int32_t save = e.items[j];
                e.items[j] = save % ENC_ITEMS + 1;
                enc_forward(&e);
                const double *h = e.ws.out;
                for (int i = 0; i < R; i++) {
                    int eq = memcmp(h + (size_t)i * (size_t)d,
                                    base + (size_t)i * (size_t)d,
                                    (size_t)d * sizeof *h) == 0;
                    if (i < e.off[s] || i >= e.off[s + 1] || i < j)
                        ck_assert_msg(eq, "item of row %d changed row %d", j,
                                      i);
                    else if (!use_rng)
                        ck_assert_msg(!eq, "item of row %d: no effect on %d",
                                      j, i);
                }
                e.items[j] = save;
            }
    }
    free(base);
    enc_free(&e);
}
END_TEST

/* Inputs reach the item table only through the rows of the batch: other
 * rows get exactly zero gradient from the encoder; padding gets nothing. */
START_TEST(test_encoder_sparse_rows)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 1010);
    int d = e.shape.d, n_items = e.shape.n_items;
    int used[ENC_ITEMS + 1] = {0};
    for (int r = 0; r < e.b.n_rows; r++)
        used[e.items[r]] = 1;
    ck_assert(!used[0] && !used[7] && !used[9]);
    enc_grad(&e, 0);
    size_t off = e.lay->t[0].offset;
    for (int i = 0; i <= n_items; i++) {
        double nrm = norm2(e.G + off + (size_t)i * (size_t)d, (size_t)d);
        if (used[i])
            ck_assert_msg(nrm > 0, "item %d: no gradient", i);
        else
            ck_assert_msg(nrm == 0, "item %d: gradient %g", i, nrm);
    }
    enc_free(&e);
}
END_TEST

/* ---- 4. f32 vs f64 ----------------------------------------------------------- */

START_TEST(test_f32_vs_f64)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 2, 1414);
    size_t nf = e.lay->n_floats;
    int R = e.b.n_rows, d = e.shape.d, n_items = e.shape.n_items;
    size_t nh = (size_t)R * (size_t)d;
    float *Wf = falloc(nf), *Gf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i];
    iadsr__gru4rec_w_f32 wf, gf;
    iadsr__gru4rec_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__gru4rec_bind_f32(e.lay, Gf, &e.shape, &gf);
    iadsr__gru4rec_ws_f32 wst;
    TU_OK(iadsr__gru4rec_ws_init_f32(&wst, &e.shape, ENC_MAXROWS, ENC_L, 1));

    /* inference */
    e.use_rng = 0;
    enc_forward(&e);
    iadsr__gru4rec_forward_f32(&wst, &wf, &e.b, NULL);
    double r_inf = rel_diff_f(wst.out, e.ws.out, nh);
    ck_assert_msg(r_inf < 1e-5, "inference f32 vs f64: %.3g", r_inf);

    /* training with the same rng state: the same masks */
    e.use_rng = 1;
    enc_forward(&e);
    iadsr__rng r = e.rng0;
    iadsr__gru4rec_forward_f32(&wst, &wf, &e.b, &r);
    double r_tr = rel_diff_f(wst.out, e.ws.out, nh);
    ck_assert_msg(r_tr < 1e-5, "training f32 vs f64: %.3g", r_tr);

    /* a full training step: loss and every gradient tensor */
    double loss64 = enc_grad(&e, 1);
    float *dhf = falloc(nh), *zf = falloc((size_t)R * (size_t)n_items);
    r = e.rng0;
    iadsr__gru4rec_forward_f32(&wst, &wf, &e.b, &r);
    double loss32 = (double)(float)e.scale *
                    iadsr__ce_loss_f32(wst.out, R, d, e.tgt, wf.item_emb,
                                       n_items, (float)e.scale, dhf,
                                       gf.item_emb, zf, 4);
    iadsr__gru4rec_backward_f32(&wst, &wf, &gf, &e.b, dhf);
    ck_assert_msg(fabs(loss32 - loss64) < 1e-5 * fabs(loss64),
                  "loss f32 %.9g vs f64 %.9g", loss32, loss64);
    double worst = 0;
    for (int t = 0; t < e.lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e.lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            double a = (double)Gf[tt->offset + i], b = e.G[tt->offset + i];
            num += (a - b) * (a - b);
            den += b * b;
        }
        double rg = sqrt(num) / sqrt(den);
        ck_assert_msg(rg < 1e-4, "gradient %s: f32 vs f64 rel %.3g", tt->name,
                      rg);
        worst = fmax(worst, rg);
    }
    if (verbose())
        fprintf(stderr, "  gru4rec f32 vs f64: h inference %.3g, training "
                        "%.3g, worst gradient tensor %.3g\n",
                r_inf, r_tr, worst);
    iadsr__gru4rec_ws_free_f32(&wst);
    free(Wf), free(Gf), free(dhf), free(zf);
    enc_free(&e);
}
END_TEST

/* The float gates saturate on huge pre-activations (h stays in [-1, 1],
 * finite) and let a NaN through (so the trainer's checks see it), without
 * touching other sequences. */
START_TEST(test_f32_saturation_and_nan)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, 1, 1515);
    size_t nf = e.lay->n_floats, sd = (size_t)e.shape.d;
    int R = e.b.n_rows;
    float *Wf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i] * 1e6f; /* pre-activations ~1e6 */
    iadsr__gru4rec_w_f32 wf;
    iadsr__gru4rec_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__gru4rec_ws_f32 ws;
    TU_OK(iadsr__gru4rec_ws_init_f32(&ws, &e.shape, ENC_MAXROWS, ENC_L, 0));
    iadsr__gru4rec_forward_f32(&ws, &wf, &e.b, NULL);
    for (size_t i = 0; i < (size_t)R * sd; i++)
        ck_assert_msg(isfinite(ws.out[i]) && fabsf(ws.out[i]) <= 1.0f,
                      "h[%zu] = %g", i, (double)ws.out[i]);
    /* NaN in the embedding of item 3 (rows 4 and 5 of sequence 2) */
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i];
    Wf[e.lay->t[0].offset + 3 * sd + 1] = NAN;
    iadsr__gru4rec_forward_f32(&ws, &wf, &e.b, NULL);
    for (int r = 0; r < R; r++) {
        int nan_row = 0;
        for (size_t c = 0; c < sd; c++)
            nan_row |= isnan(ws.out[(size_t)r * sd + c]);
        int want = r >= 4 && r < e.off[3]; /* from row 4 to the end of seq 2 */
        ck_assert_msg(nan_row == want, "row %d: NaN %d, expected %d", r,
                      nan_row, want);
    }
    iadsr__gru4rec_ws_free_f32(&ws);
    free(Wf);
    enc_free(&e);
}
END_TEST

/* ---- 5. Through the public API -------------------------------------------- */

#define NI 60
#define NS (NI + 1)

static void gru_params(iadsr_model_params *p, int32_t n_items, uint64_t seed)
{
    iadsr_model_params_init(p);
    p->backbone = IADSR_BACKBONE_GRU4REC;
    p->n_items = n_items;
    p->dim = 16;
    p->max_seq_len = 10;
    p->dropout = 0.1f;
    p->seed = seed;
}

static iadsr_model *gru_model(int32_t n_items, uint64_t seed)
{
    iadsr_model_params p;
    gru_params(&p, n_items, seed);
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

START_TEST(test_model_create)
{
    iadsr_model_params p;
    gru_params(&p, NI, 3);
    p.n_layers = 0; /* the default: one layer */
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    ck_assert_int_eq(iadsr_model_backbone(m), IADSR_BACKBONE_GRU4REC);
    const iadsr__encoder_ops *ops =
        iadsr__encoder_ops_for(IADSR_BACKBONE_GRU4REC);
    ck_assert_ptr_nonnull(ops);
    ck_assert_int_eq(ops->backbone, IADSR_BACKBONE_GRU4REC);
    ck_assert_str_eq(ops->name, "gru4rec");
    iadsr_model_params q;
    iadsr_model_params_init(&q);
    TU_OK(iadsr_model_get_params(m, &q));
    ck_assert_int_eq(q.n_layers, 1);
    ck_assert(q.n_heads == 0 && q.ffn_dim == 0 && q.activation == 0);
    ck_assert(q.caser_window == 0 && q.caser_h_filters == 0);
    int64_t d = 16;
    ck_assert_int_eq(iadsr_model_n_params(m),
                     (NI + 1) * d + 2 * d * 3 * d + 2 * 3 * d);
    const iadsr__layout *l = &m->layout;
    ck_assert_int_eq(l->n_tensors, 5);
    static const char *const names[] = {"item_emb", "gru0.w_ih", "gru0.w_hh",
                                        "gru0.b_ih", "gru0.b_hh"};
    static const int64_t rows[] = {NI + 1, 16, 16, 1, 1};
    static const int64_t cols[] = {16, 48, 48, 48, 48};
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(l->t[i].name, names[i]);
        ck_assert_int_eq(l->t[i].rows, rows[i]);
        ck_assert_int_eq(l->t[i].cols, cols[i]);
        ck_assert_uint_eq(l->t[i].offset % 16, 0);
    }
    /* initialisation: padding row 0, item rows normal(0, 0.02), GRU
     * matrices uniform(-1/sqrt(d), 1/sqrt(d)) (PyTorch), biases 0 */
    const float *w = m->w;
    for (int c = 0; c < 16; c++)
        ck_assert(w[c] == 0.0f);
    for (int i = 1; i < 3; i++) {
        const float *t = w + l->t[i].offset;
        size_t n = (size_t)(l->t[i].rows * l->t[i].cols);
        double mx = 0, mean = 0;
        for (size_t j = 0; j < n; j++) {
            mx = fmax(mx, fabs((double)t[j]));
            mean += (double)t[j] / (double)n;
        }
        ck_assert_msg(mx <= 0.25 && mx > 0.2, "%s: max |w| %g", names[i], mx);
        ck_assert(fabs(mean) < 0.02);
    }
    for (int i = 3; i < 5; i++)
        for (int j = 0; j < 48; j++)
            ck_assert(w[l->t[i].offset + (size_t)j] == 0.0f);
    iadsr_model_free(m);

    /* three layers; SASRec-only fields are refused */
    gru_params(&p, NI, 3);
    p.n_layers = 3;
    TU_OK(iadsr_model_create(&m, &p));
    ck_assert_int_eq(m->layout.n_tensors, 13);
    ck_assert_str_eq(m->layout.t[12].name, "gru2.b_hh");
    iadsr_model_free(m);
    gru_params(&p, NI, 3);
    p.ffn_dim = 32;
    m = TU_SENTINEL(iadsr_model);
    TU_EXPECT_ERR(iadsr_model_create(&m, &p), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    /* the smallest width works */
    gru_params(&p, NI, 3);
    p.dim = 1;
    TU_OK(iadsr_model_create(&m, &p));
    ck_assert(m->w[m->layout.t[1].offset] != 0.0f);
    iadsr_model_free(m);
}
END_TEST

/* Scores through a context are h_last . E[i] with h_last from the double
 * encoder on the last L items; a longer history is truncated to them. */
START_TEST(test_ctx_scores)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 5);
    iadsr_model *init = gru_model(NI, 4);
    iadsr_model *m = tu_trained(init, d, 1);
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    int L = m->hp.max_seq_len, dim = m->hp.dim;
    int32_t seq[25];
    for (int i = 0; i < 25; i++)
        seq[i] = 1 + (i * 7) % NI;
    float sc[NS], sc2[NS];
    TU_OK(iadsr_ctx_score(c, seq, 25, sc, NS));
    /* scoring never allocates: every allocation fails meanwhile */
    iadsr__alloc_fail_after(0, 0);
    iadsr__alloc_fail_after(1, 1);
    int rc = iadsr_ctx_score(c, seq + 25 - L, L, sc2, NS);
    long made = iadsr__alloc_fail_after(0, 0);
    TU_OK(rc);
    ck_assert_int_eq(made, 0);
    ck_assert(memcmp(sc, sc2, sizeof sc) == 0);
    ck_assert(isinf(sc[0]) && sc[0] < 0);

    iadsr__shape sh;
    iadsr__shape_from(&m->hp, &sh);
    size_t nf = m->layout.n_floats;
    double *W = dalloc(nf);
    for (size_t i = 0; i < nf; i++)
        W[i] = (double)m->w[i];
    iadsr__gru4rec_w_f64 w;
    iadsr__gru4rec_bind_f64(&m->layout, W, &sh, &w);
    iadsr__gru4rec_ws_f64 ws;
    TU_OK(iadsr__gru4rec_ws_init_f64(&ws, &sh, L, L, 0));
    int32_t pos[64], off[2] = {0, L};
    for (int i = 0; i < L; i++)
        pos[i] = i;
    iadsr__batch b = {1, L, seq + 25 - L, pos, off, NULL, NULL};
    iadsr__gru4rec_forward_last_f64(&ws, &w, &b);
    double worst = 0, mx = 0;
    for (int i = 1; i <= NI; i++) {
        double want = dot(ws.out, w.item_emb + (size_t)i * (size_t)dim,
                          (size_t)dim);
        worst = fmax(worst, fabs((double)sc[i] - want));
        mx = fmax(mx, fabs(want));
    }
    ck_assert_msg(worst <= 1e-5 * fmax(mx, 1e-3), "ctx scores vs double "
                  "encoder: %.3g (max |score| %.3g)", worst, mx);
    iadsr__gru4rec_ws_free_f64(&ws);
    free(W);
    iadsr_ctx_free(c);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

/* NDCG@10 of ranking by training-part popularity (test targets). */
static double popularity_ndcg10(const iadsr_dataset *d)
{
    int32_t n_items = iadsr_dataset_n_items(d);
    int64_t *cnt = calloc((size_t)n_items + 1, sizeof *cnt);
    ck_assert_ptr_nonnull(cnt);
    int64_t nu = iadsr_dataset_n_users(d);
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        for (int32_t i = 0; i + 2 < n; i++)
            cnt[s[i]]++;
    }
    tu_acc a;
    memset(&a, 0, sizeof a);
    for (int64_t u = 0; u < nu; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        if (n < 2)
            continue;
        int64_t ct = cnt[s[n - 1]], rank = 0;
        for (int32_t q = 1; q <= n_items; q++)
            rank += cnt[q] > ct;
        tu_acc_add(&a, rank);
    }
    free(cnt);
    iadsr_metrics mt;
    tu_acc_metrics(&a, &mt);
    return mt.ndcg10;
}

START_TEST(test_quality_vs_popularity)
{
    /* light mode (valgrind): less data and fewer epochs, same bar */
    int light = tu_light();
    iadsr_dataset *d = tu_synth(light ? 600 : 1500, 120, 10, 5, 30, 3);
    iadsr_model_params mp;
    gru_params(&mp, 120, 5);
    mp.dim = 32;
    mp.max_seq_len = 20;
    mp.dropout = 0.2f;
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &mp));
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.learning_rate = 1e-2f;
    tp.max_epochs = light ? 8 : 15;
    tp.patience = 5;
    tp.n_threads = 2;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, m, d, &tp));
    TU_OK(iadsr_trainer_fit(t, NULL, NULL));
    iadsr_model *s = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &s));
    iadsr_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.struct_size = sizeof mt;
    TU_OK(iadsr_evaluate(s, d, NULL, &mt));
    double pop = popularity_ndcg10(d);
    TU_NOTE("gru4rec quality: %d epochs (best %d), test NDCG@10 %.4f HR@10 "
            "%.4f, popularity NDCG@10 %.4f\n",
            (int)iadsr_trainer_epochs_done(t), (int)s->epochs_trained,
            mt.ndcg10, mt.hr10, pop);
    ck_assert_msg(pop > 0.0, "popularity NDCG@10 %g", pop);
    ck_assert_msg(mt.ndcg10 >= 3.0 * pop,
                  "test NDCG@10 %.4f is not >= 3 x popularity %.4f",
                  mt.ndcg10, pop);
    ck_assert(mt.hr10 >= mt.ndcg10 && mt.hr20 >= mt.hr10 && mt.hr10 >= mt.hr5);
    iadsr_model_free(s);
    iadsr_trainer_free(t);
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

/* Save to a buffer and load back: same parameters, same weights, same
 * scores bit for bit. */
START_TEST(test_checkpoint_roundtrip)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 9);
    iadsr_model_params p;
    gru_params(&p, NI, 8);
    p.n_layers = 2;
    iadsr_model *init = NULL;
    TU_OK(iadsr_model_create(&init, &p));
    iadsr_model *m = tu_trained(init, d, 1);
    size_t size = 0;
    unsigned char *buf = tu_model_bytes(m, &size);
    iadsr_model *back = NULL;
    TU_OK(iadsr_model_load_from_buffer(&back, buf, size, 0));
    ck_assert_int_eq(iadsr_model_backbone(back), IADSR_BACKBONE_GRU4REC);
    ck_assert(memcmp(&back->hp, &m->hp, sizeof m->hp) == 0);
    ck_assert(tu_same_weights(m, back));
    iadsr_ctx *c1 = NULL, *c2 = NULL;
    TU_OK(iadsr_ctx_create(&c1, m, NULL));
    TU_OK(iadsr_ctx_create(&c2, back, NULL));
    for (int64_t u = 0; u < 20; u++) {
        int32_t n = 0;
        const int32_t *s = iadsr_dataset_user_items(d, u, &n);
        float a[NS], b[NS];
        TU_OK(iadsr_ctx_score(c1, s, n, a, NS));
        TU_OK(iadsr_ctx_score(c2, s, n, b, NS));
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "user %lld", (long long)u);
    }
    /* the bytes of the loaded model are the same bytes */
    size_t size2 = 0;
    unsigned char *buf2 = tu_model_bytes(back, &size2);
    ck_assert_uint_eq(size, size2);
    ck_assert(memcmp(buf, buf2, size) == 0);
    free(buf), free(buf2);
    iadsr_ctx_free(c1);
    iadsr_ctx_free(c2);
    iadsr_model_free(back);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

static iadsr_model *train_with(const iadsr_model *init, const iadsr_dataset *d,
                               int n_threads, uint64_t seed)
{
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_NONE;
    tp.n_threads = n_threads;
    tp.seed = seed;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, init, d, &tp));
    for (int e = 0; e < 2; e++)
        TU_OK(iadsr_trainer_run_epoch(t, NULL));
    iadsr_model *m = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &m));
    iadsr_trainer_free(t);
    return m;
}

/* Same seed and thread count: bitwise identical weights; another seed
 * (other shuffles and dropout draws) gives other weights. */
START_TEST(test_determinism)
{
    iadsr_dataset *d = tu_synth(300, NI, 6, 3, 20, 13);
    iadsr_model_params p;
    gru_params(&p, NI, 21);
    p.n_layers = 2;
    p.dropout = 0.3f;
    iadsr_model *init = NULL;
    TU_OK(iadsr_model_create(&init, &p));
    iadsr_model *a = train_with(init, d, 2, 5);
    iadsr_model *b = train_with(init, d, 2, 5);
    iadsr_model *c = train_with(init, d, 2, 6);
    ck_assert(tu_same_weights(a, b));
    ck_assert(!tu_same_weights(a, c));
    ck_assert(!tu_same_weights(a, init));
    iadsr_model_free(a);
    iadsr_model_free(b);
    iadsr_model_free(c);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

/* Several threads, each with its own context on one shared model, score
 * exactly as one thread does. */
#define TH_SEQ 24
#define TH_THREADS 4

typedef struct {
    pthread_t tid;
    const iadsr_model *m;
    const int32_t (*seq)[30];
    const int *len;
    const float (*want)[NS];
    int id, failures;
} th_worker;

static void *th_main(void *arg)
{
    th_worker *w = arg;
    iadsr_ctx *c = NULL;
    if (iadsr_ctx_create(&c, w->m, NULL) != IADSR_OK) {
        w->failures = -1;
        return NULL;
    }
    float sc[NS];
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < TH_SEQ; i++) {
            int q = (i * 5 + w->id * 7 + rep) % TH_SEQ;
            if (iadsr_ctx_score(c, w->seq[q], w->len[q], sc, NS) != IADSR_OK ||
                memcmp(sc, w->want[q], sizeof sc) != 0)
                w->failures++;
        }
    iadsr_ctx_free(c);
    return NULL;
}

START_TEST(test_threads_scoring)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 17);
    iadsr_model_params p;
    gru_params(&p, NI, 31);
    p.n_layers = 2;
    iadsr_model *init = NULL;
    TU_OK(iadsr_model_create(&init, &p));
    iadsr_model *m = tu_trained(init, d, 1);
    static int32_t seq[TH_SEQ][30];
    static float want[TH_SEQ][NS];
    int len[TH_SEQ];
    uint32_t x = 77;
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    for (int i = 0; i < TH_SEQ; i++) {
        len[i] = 1 + i % 30;
        for (int j = 0; j < len[i]; j++) {
            x = x * 1664525u + 1013904223u;
            seq[i][j] = 1 + (int32_t)((x >> 8) % NI);
        }
        TU_OK(iadsr_ctx_score(c, seq[i], len[i], want[i], NS));
    }
    iadsr_ctx_free(c);
    th_worker w[TH_THREADS];
    memset(w, 0, sizeof w);
    for (int t = 0; t < TH_THREADS; t++) {
        w[t].m = m;
        w[t].seq = (const int32_t(*)[30])seq;
        w[t].len = len;
        w[t].want = (const float(*)[NS])want;
        w[t].id = t;
        ck_assert_int_eq(pthread_create(&w[t].tid, NULL, th_main, &w[t]), 0);
    }
    for (int t = 0; t < TH_THREADS; t++)
        ck_assert_int_eq(pthread_join(w[t].tid, NULL), 0);
    for (int t = 0; t < TH_THREADS; t++)
        ck_assert_msg(w[t].failures == 0, "thread %d: %d failures", t,
                      w[t].failures);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

/* Every allocation of a GRU4Rec context and trainer may fail: the call
 * reports NOMEM and leaks nothing. */
START_TEST(test_alloc_failures)
{
    iadsr_dataset *d = tu_synth(50, NI, 6, 5, 20, 19);
    iadsr_model *m = gru_model(NI, 41);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.n_threads = 2;
    for (int what = 0; what < 2; what++) {
        long k;
        for (k = 1; k < 1000; k++) {
            long live = iadsr__alloc_live();
            iadsr_ctx *c = TU_SENTINEL(iadsr_ctx);
            iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
            iadsr__alloc_fail_after(k, 1);
            int rc = what ? iadsr_trainer_create(&t, m, d, &tp)
                          : iadsr_ctx_create(&c, m, NULL);
            iadsr__alloc_fail_after(0, 0);
            if (rc == IADSR_OK) {
                iadsr_ctx_free(what ? NULL : c);
                iadsr_trainer_free(what ? t : NULL);
                ck_assert_int_eq(iadsr__alloc_live(), live);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                          iadsr_status_name(rc));
            ck_assert(iadsr_last_error()[0] != '\0');
            ck_assert_ptr_null(what ? (void *)t : (void *)c);
            ck_assert_msg(iadsr__alloc_live() == live, "k=%ld: %ld leaked", k,
                          iadsr__alloc_live() - live);
        }
        ck_assert(k > 1 && k < 1000);
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_gru4rec(void)
{
    Suite *s = suite_create("gru4rec");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_layer_forward_reference);
    tcase_add_test(tc, test_layer_grad);
    tcase_add_test(tc, test_encoder_grad_dropout);
    tcase_add_test(tc, test_encoder_grad_input_scale);
    tcase_add_loop_test(tc, test_encoder_grad_no_dropout, 1, 4);
    tcase_add_test(tc, test_encoder_grad_forward_without_rng);
    tcase_add_test(tc, test_encoder_forward_reference);
    tcase_add_test(tc, test_forward_last);
    tcase_add_test(tc, test_batch_independence);
    tcase_add_test(tc, test_encoder_causal);
    tcase_add_test(tc, test_encoder_sparse_rows);
    tcase_add_test(tc, test_f32_vs_f64);
    tcase_add_test(tc, test_f32_saturation_and_nan);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("api");
    tcase_add_test(ta, test_model_create);
    tcase_add_test(ta, test_ctx_scores);
    tcase_add_test(ta, test_quality_vs_popularity);
    tcase_add_test(ta, test_checkpoint_roundtrip);
    tcase_add_test(ta, test_determinism);
    tcase_add_test(ta, test_threads_scoring);
    tcase_add_test(ta, test_alloc_failures);
    suite_add_tcase(s, ta);
    return s;
}
