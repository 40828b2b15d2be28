/* Tests: the Caser backbone. The double instantiation (_f64) of every layer
 * and of the whole encoder is checked against central finite differences,
 * and its forward pass against a direct transcription of the definition;
 * the float production path (_f32) against the double one; then the
 * backbone through the public API (training quality, checkpoints,
 * determinism, concurrent scoring).
 *
 * Set IADSR_TEST_VERBOSE=1 to print the largest errors of every check.
 * SPDX-License-Identifier: MIT
 */
#include "gradcheck.h"
#include "testutil.h"

#include <pthread.h>

#include "backbone/caser.h"
#include "backbone/encoder.h"
#include "backbone/sasrec.h" /* iadsr__ce_loss_* */

Suite *suite_caser(void);

/* ---- helpers ------------------------------------------------------------- */

/* max |a - b| / max |b| (purely relative, no floor) */
static double rel_diff_pure(const float *a, const double *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / mb;
}

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

static void fill_normal(double *a, size_t n, double mean, double sd,
                        iadsr__rng *r)
{
    for (size_t i = 0; i < n; i++)
        a[i] = mean + sd * iadsr__rng_normal(r);
}

/* ---- the test batch -------------------------------------------------------- */

/* Five sequences with l = 4: lengths 1, 2, 3 are shorter than the window,
 * 6 longer. Items 7 and 9 never appear as inputs (9 only as a target). */
#define NSEQ 5
#define MAXROWS 32
static const int seq_len[NSEQ] = {1, 3, 6, 4, 2};
static const int32_t seq_items[] = {4, /**/ 2, 5, 1, /**/ 3, 3, 8, 6, 2, 1,
                                    /**/ 1, 6, 8, 5, /**/ 8, 4};
static const int32_t seq_tgt[] = {9, /**/ 5, 1, 0, /**/ 3, 8, 6, 2, 1, 9,
                                  /**/ 6, 0, 5, 4, /**/ 4, 2};

/* Small shapes: (d, l, nh, nv); the second one takes the AVX-512 GEMM
 * tiles of the float path (n % 16 == 0). */
typedef struct cfg {
    int d, l, nh, nv;
} cfg;
static const cfg cfg_small = {6, 4, 3, 2};
static const cfg cfg_wide = {16, 3, 16, 2};

typedef struct enc_ctx {
    iadsr_model_params hp;
    iadsr__shape shape;
    iadsr__layout *lay;
    double *W, *G;
    iadsr__caser_w_f64 w, g;
    iadsr__caser_ws_f64 ws;
    iadsr__batch b;
    int32_t items[MAXROWS], pos[MAXROWS], off[NSEQ + 1], tgt[MAXROWS];
    iadsr__rng rng0; /* copied before every forward: identical masks */
    int use_rng;
    double scale;
    double *dh, *zbuf;
} enc_ctx;

static void batch_setup(enc_ctx *e)
{
    int L = e->hp.max_seq_len, row = 0;
    e->off[0] = 0;
    for (int s = 0; s < NSEQ; s++) {
        int n = seq_len[s];
        for (int i = 0; i < n; i++, row++) {
            e->items[row] = seq_items[row];
            e->tgt[row] = seq_tgt[row];
            e->pos[row] = L - n + i;
        }
        e->off[s + 1] = row;
    }
    ck_assert_uint_eq((size_t)row, sizeof seq_items / sizeof seq_items[0]);
    e->b.n_seq = NSEQ;
    e->b.n_rows = row;
    e->b.items = e->items;
    e->b.pos = e->pos;
    e->b.row_off = e->off;
}

static void enc_setup_c(enc_ctx *e, cfg c, float dropout, uint64_t seed)
{
    memset(e, 0, sizeof *e);
    iadsr_model_params_init(&e->hp);
    e->hp.backbone = IADSR_BACKBONE_CASER;
    e->hp.n_items = 9;
    e->hp.dim = c.d;
    e->hp.max_seq_len = 6;
    e->hp.caser_window = c.l;
    e->hp.caser_h_filters = c.nh;
    e->hp.caser_v_filters = c.nv;
    e->hp.dropout = dropout;
    TU_OK(iadsr__model_params_check(&e->hp));
    e->lay = calloc(1, sizeof *e->lay);
    ck_assert_ptr_nonnull(e->lay);
    TU_OK(iadsr__model_layout(&e->hp, e->lay));
    ck_assert_int_eq(e->lay->n_tensors, 1 + 2 * c.l + 4);
    iadsr__shape_from(&e->hp, &e->shape);
    batch_setup(e);

    size_t nf = e->lay->n_floats;
    e->W = dalloc(nf);
    e->G = dalloc(nf);
    iadsr__caser_bind_f64(e->lay, e->W, &e->shape, &e->w);
    iadsr__caser_bind_f64(e->lay, e->G, &e->shape, &e->g);
    iadsr__rng r;
    iadsr__rng_seed(&r, seed);
    /* biases of both signs: padding windows give relu(bias) > 0 for some
     * filters and 0 for others */
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        fill_normal(e->W + tt->offset, n, 0.0, tt->rows == 1 ? 0.3 : 0.5, &r);
    }
    /* exactly representable in float (the f32 comparisons) */
    for (size_t i = 0; i < nf; i++)
        e->W[i] = (double)(float)e->W[i];
    TU_OK(iadsr__caser_ws_init_f64(&e->ws, &e->shape, MAXROWS,
                                   e->shape.max_len, 1));
    iadsr__rng_seed(&e->rng0, seed ^ 0x5eedu);
    e->use_rng = 1;
    e->scale = 1.0 / (double)e->b.n_rows;
    e->dh = dalloc((size_t)MAXROWS * (size_t)c.d);
    e->zbuf = dalloc((size_t)MAXROWS * (size_t)e->hp.n_items);
}

static void enc_setup(enc_ctx *e, float dropout, uint64_t seed)
{
    enc_setup_c(e, cfg_small, dropout, seed);
}

static void enc_free(enc_ctx *e)
{
    iadsr__caser_ws_free_f64(&e->ws);
    free(e->lay), free(e->W), free(e->G), free(e->dh), free(e->zbuf);
}

static void enc_forward(enc_ctx *e)
{
    iadsr__rng r = e->rng0;
    iadsr__caser_forward_f64(&e->ws, &e->w, &e->b, e->use_rng ? &r : NULL);
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

/* Analytic gradient into e->G (zeroed first); with_ce_emb = 0 leaves out
 * the softmax part of the item-embedding gradient. */
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
    iadsr__caser_backward_f64(&e->ws, &e->w, &e->g, &e->b, e->dh);
    return e->scale * sum;
}

/* Finite differences over every tensor of the layout. */
static void enc_check_all(enc_ctx *e, const char *tag)
{
    double loss = enc_grad(e, 1);
    ck_assert(isfinite(loss) && loss > 0);
    ck_assert_msg(loss == enc_loss(e), "%s: loss not reproducible", tag);
    size_t nf = e->lay->n_floats;
    double *fd = dalloc(nf);
    char *is_param = calloc(nf, 1);
    ck_assert_ptr_nonnull(is_param);
    for (int t = 0; t < e->lay->n_tensors; t++) {
        const iadsr__tensor *tt = &e->lay->t[t];
        size_t n = (size_t)tt->rows * (size_t)tt->cols;
        memset(is_param + tt->offset, 1, n);
        fd_grad(enc_loss, e, e->W + tt->offset, n, fd + tt->offset);
        char what[96];
        snprintf(what, sizeof what, "%s %s", tag, tt->name);
        check_grad(what, e->G + tt->offset, fd + tt->offset, n);
        ck_assert_msg(dot(e->G + tt->offset, e->G + tt->offset, n) > 0,
                      "%s: zero gradient", what);
    }
    for (size_t i = 0; i < nf; i++) /* alignment gaps stay untouched */
        if (!is_param[i])
            ck_assert(e->G[i] == 0.0);
    if (verbose())
        fprintf(stderr, "  %s: loss %.10g\n", tag, loss);
    free(fd);
    free(is_param);
}

/* The definition, transcribed directly: output of row i of sequence q. */
static void ref_row(const enc_ctx *e, int q, int i, double *out)
{
    const iadsr__shape *s = &e->shape;
    int d = s->d, l = s->caser_l, nh = s->caser_nh, nv = s->caser_nv;
    int F = nv * d + l * nh;
    double X[64 * 16], z[512];
    ck_assert(l * d <= 64 * 16 && F <= 512);
    for (int j = 0; j < l; j++) {
        int p = i - (l - 1) + j;
        for (int c = 0; c < d; c++)
            X[j * d + c] =
                p < 0 ? 0.0
                      : e->w.item_emb[(size_t)e->items[e->off[q] + p] * d + c];
    }
    for (int f = 0; f < nv; f++)
        for (int c = 0; c < d; c++) {
            double v = e->w.vb[f];
            for (int j = 0; j < l; j++)
                v += e->w.vw[j * nv + f] * X[j * d + c];
            z[f * d + c] = v;
        }
    for (int h = 1; h <= l; h++)
        for (int f = 0; f < nh; f++) {
            double best = -INFINITY;
            for (int o = 0; o + h <= l; o++) {
                double v = e->w.hb[h - 1][f];
                for (int k = 0; k < h; k++)
                    for (int c = 0; c < d; c++)
                        v += X[(o + k) * d + c] *
                             e->w.hw[h - 1][(k * d + c) * nh + f];
                v = v > 0 ? v : 0;
                best = v > best ? v : best;
            }
            z[nv * d + (h - 1) * nh + f] = best;
        }
    for (int c = 0; c < d; c++) {
        double v = e->w.fcb[c];
        for (int k = 0; k < F; k++)
            v += z[k] * e->w.fcw[k * d + c];
        out[c] = v > 0 ? v : 0;
    }
}

/* ---- 1. layout ------------------------------------------------------------- */

START_TEST(test_layout)
{
    static const int windows[] = {1, 4, 64};
    for (int k = 0; k < 3; k++) {
        iadsr_model_params p;
        iadsr_model_params_init(&p);
        p.backbone = IADSR_BACKBONE_CASER;
        p.n_items = 30;
        p.dim = 8;
        p.caser_window = windows[k];
        p.caser_h_filters = 5;
        p.caser_v_filters = 3;
        TU_OK(iadsr__model_params_check(&p));
        iadsr__layout *lay = calloc(1, sizeof *lay);
        ck_assert_ptr_nonnull(lay);
        TU_OK(iadsr__model_layout(&p, lay));
        int l = windows[k];
        ck_assert_int_eq(lay->n_tensors, 1 + 2 * l + 4);
        ck_assert_str_eq(lay->t[0].name, "item_emb");
        ck_assert(lay->t[0].rows == 31 && lay->t[0].cols == 8);
        for (int h = 1; h <= l; h++) {
            char name[48];
            snprintf(name, sizeof name, "caser.h%d.w", h);
            ck_assert_str_eq(lay->t[2 * h - 1].name, name);
            ck_assert(lay->t[2 * h - 1].rows == h * 8 &&
                      lay->t[2 * h - 1].cols == 5);
            snprintf(name, sizeof name, "caser.h%d.b", h);
            ck_assert_str_eq(lay->t[2 * h].name, name);
            ck_assert(lay->t[2 * h].rows == 1 && lay->t[2 * h].cols == 5);
        }
        const iadsr__tensor *t = &lay->t[1 + 2 * l];
        ck_assert_str_eq(t[0].name, "caser.v.w");
        ck_assert(t[0].rows == l && t[0].cols == 3);
        ck_assert_str_eq(t[1].name, "caser.v.b");
        ck_assert(t[1].rows == 1 && t[1].cols == 3);
        ck_assert_str_eq(t[2].name, "caser.fc.w");
        ck_assert(t[2].rows == 3 * 8 + l * 5 && t[2].cols == 8);
        ck_assert_str_eq(t[3].name, "caser.fc.b");
        ck_assert(t[3].rows == 1 && t[3].cols == 8);
        /* 64-byte aligned, disjoint, in order */
        for (int i = 0; i < lay->n_tensors; i++) {
            ck_assert_uint_eq(lay->t[i].offset % 16, 0);
            size_t end = lay->t[i].offset +
                         (size_t)lay->t[i].rows * (size_t)lay->t[i].cols;
            ck_assert(end <= lay->n_floats);
            if (i + 1 < lay->n_tensors)
                ck_assert(end <= lay->t[i + 1].offset);
        }
        free(lay);
    }
    /* the encoder registry knows the backbone */
    const iadsr__encoder_ops *ops = iadsr__encoder_ops_for(IADSR_BACKBONE_CASER);
    ck_assert_ptr_nonnull(ops);
    ck_assert_int_eq(ops->backbone, IADSR_BACKBONE_CASER);
    ck_assert_str_eq(ops->name, "caser");
}
END_TEST

/* ---- 2. the forward pass against the definition ------------------------------ */

START_TEST(test_forward_definition)
{
    const cfg cs[2] = {cfg_small, cfg_wide};
    for (int k = 0; k < 2; k++) {
        enc_ctx e;
        enc_setup_c(&e, cs[k], 0.3f, 2020 + (uint64_t)k);
        e.use_rng = 0;
        enc_forward(&e);
        int d = e.shape.d;
        double want[64], worst = 0;
        for (int q = 0; q < NSEQ; q++)
            for (int i = 0; i < seq_len[q]; i++) {
                ref_row(&e, q, i, want);
                const double *got = e.ws.out + (size_t)(e.off[q] + i) * d;
                for (int c = 0; c < d; c++)
                    worst = fmax(worst, fabs(got[c] - want[c]));
            }
        ck_assert_msg(worst < 1e-12, "forward vs definition: %.3g", worst);
        /* not a degenerate comparison: the outputs are not all zero */
        double n2 = dot(e.ws.out, e.ws.out, (size_t)e.b.n_rows * (size_t)d);
        ck_assert(n2 > 0);
        enc_free(&e);
    }
}
END_TEST

/* ---- 3. per-layer gradients --------------------------------------------------- */

typedef struct hc_ctx {
    enc_ctx *e;
    int ldo;
    double *x, *out, *R;
} hc_ctx;

static double hc_loss(void *p)
{
    hc_ctx *h = p;
    const iadsr__shape *s = &h->e->shape;
    iadsr__caser_hconv_fwd_f64(&h->e->b, s->caser_l, s->d, s->caser_nh, h->x,
                               h->e->w.hw, h->e->w.hb, h->e->ws.c,
                               h->e->ws.arg, h->out, h->ldo);
    double sum = 0;
    for (int r = 0; r < h->e->b.n_rows; r++)
        sum += dot(h->out + (size_t)r * (size_t)h->ldo,
                   h->R + (size_t)r * (size_t)h->ldo,
                   (size_t)(s->caser_l * s->caser_nh));
    return sum;
}

START_TEST(test_hconv_grad)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, 3030);
    const iadsr__shape *s = &e.shape;
    int R = e.b.n_rows, l = s->caser_l, d = s->d, nh = s->caser_nh;
    hc_ctx h = {&e, l * nh + 2, NULL, NULL, NULL};
    size_t nx = (size_t)R * (size_t)(l * d), no = (size_t)R * (size_t)h.ldo;
    iadsr__rng r;
    iadsr__rng_seed(&r, 3031);
    h.x = dalloc(nx);
    h.out = dalloc(no);
    h.R = dalloc(no);
    fill_normal(h.x, nx, 0, 1, &r);
    fill_normal(h.R, no, 0, 1, &r);
    /* the padding slots of the images are zero, as the encoder builds them */
    iadsr__caser_image_f64(&e.b, l, d, e.w.item_emb, h.x);
    for (size_t i = 0; i < nx; i++)
        h.x[i] += h.x[i] != 0 ? 0.1 * iadsr__rng_normal(&r) : 0;
    hc_loss(&h);
    /* both kinds of maxima occur: a real window and a padding window with
     * a positive bias */
    int n_pad = 0, n_real = 0;
    for (int q = 0; q < NSEQ; q++)
        for (int i = 0; i < seq_len[q]; i++)
            for (int hh = 1; hh <= l; hh++)
                for (int f = 0; f < nh; f++) {
                    int a = e.ws.arg[(size_t)(e.off[q] + i) * (size_t)(l * nh) +
                                     (size_t)((hh - 1) * nh + f)];
                    ck_assert(a >= 0 && a <= l - hh);
                    /* ties go to the first offset: all padding windows
                     * tie (relu(bias)), and a zero maximum means all of
                     * the relu outputs are zero */
                    double v = h.out[(size_t)(e.off[q] + i) * (size_t)h.ldo +
                                     (size_t)((hh - 1) * nh + f)];
                    if (i - (l - hh) + a < 0 || v == 0.0)
                        ck_assert_int_eq(a, 0);
                    if (i - (l - hh) + a < 0)
                        n_pad += e.w.hb[hh - 1][f] > 0;
                    else
                        n_real++;
                }
    ck_assert(n_pad > 0 && n_real > 0);

    double *dx = dalloc(nx), *G = e.G, *fd = dalloc(e.lay->n_floats);
    double *dc = dalloc((size_t)R * (size_t)(l * nh));
    double *wt = dalloc((size_t)(l * d * nh));
    memset(G, 0, e.lay->n_floats * sizeof *G);
    for (size_t i = 0; i < nx; i++)
        dx[i] = 0.25; /* added to */
    iadsr__caser_hconv_bwd_f64(&e.b, l, d, nh, h.x, e.w.hw, e.w.hb, e.ws.c,
                               e.ws.arg, h.R, h.ldo, e.g.hw, e.g.hb, dc, wt,
                               dx);
    for (size_t i = 0; i < nx; i++)
        dx[i] -= 0.25;
    double *fdx = dalloc(nx);
    fd_grad(hc_loss, &h, h.x, nx, fdx);
    check_grad("hconv.x", dx, fdx, nx);
    for (int hh = 1; hh <= l; hh++) {
        char what[32];
        size_t nw = (size_t)(hh * d * nh);
        snprintf(what, sizeof what, "hconv.h%d.w", hh);
        fd_grad(hc_loss, &h, e.w.hw[hh - 1], nw, fd);
        check_grad(what, e.g.hw[hh - 1], fd, nw);
        snprintf(what, sizeof what, "hconv.h%d.b", hh);
        fd_grad(hc_loss, &h, e.w.hb[hh - 1], (size_t)nh, fd);
        check_grad(what, e.g.hb[hh - 1], fd, (size_t)nh);
    }
    free(h.x), free(h.out), free(h.R), free(dx), free(fd), free(dc), free(wt);
    free(fdx);
    enc_free(&e);
}
END_TEST

typedef struct vc_ctx {
    int n, l, d, nv, ldo;
    double *x, *wv, *bv, *out, *R;
} vc_ctx;

static double vc_loss(void *p)
{
    vc_ctx *v = p;
    iadsr__caser_vconv_fwd_f64(v->n, v->l, v->d, v->nv, v->x, v->wv, v->bv,
                               v->out, v->ldo);
    double sum = 0;
    for (int r = 0; r < v->n; r++)
        sum += dot(v->out + (size_t)r * (size_t)v->ldo,
                   v->R + (size_t)r * (size_t)v->ldo, (size_t)(v->nv * v->d));
    return sum;
}

START_TEST(test_vconv_grad)
{
    vc_ctx v = {5, 4, 3, 2, 2 * 3 + 1, NULL, NULL, NULL, NULL, NULL};
    iadsr__rng r;
    iadsr__rng_seed(&r, 4040);
    size_t nx = (size_t)(v.n * v.l * v.d), no = (size_t)(v.n * v.ldo);
    size_t nw = (size_t)(v.l * v.nv);
    v.x = dalloc(nx);
    v.wv = dalloc(nw);
    v.bv = dalloc((size_t)v.nv);
    v.out = dalloc(no);
    v.R = dalloc(no);
    fill_normal(v.x, nx, 0, 1, &r);
    fill_normal(v.wv, nw, 0, 1, &r);
    fill_normal(v.bv, (size_t)v.nv, 0, 1, &r);
    fill_normal(v.R, no, 0, 1, &r);
    vc_loss(&v);
    /* forward: out[f d + j] = sum_i wv[i nv + f] x[i d + j] + bv[f] */
    for (int q = 0; q < v.n; q++)
        for (int f = 0; f < v.nv; f++)
            for (int j = 0; j < v.d; j++) {
                double want = v.bv[f];
                for (int i = 0; i < v.l; i++)
                    want += v.wv[i * v.nv + f] * v.x[(q * v.l + i) * v.d + j];
                ck_assert(fabs(v.out[q * v.ldo + f * v.d + j] - want) < 1e-13);
            }
    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc((size_t)v.nv);
    double *fd = dalloc(nx);
    iadsr__caser_vconv_bwd_f64(v.n, v.l, v.d, v.nv, v.x, v.wv, v.R, v.ldo, dw,
                               db, dx);
    fd_grad(vc_loss, &v, v.x, nx, fd);
    check_grad("vconv.x", dx, fd, nx);
    fd_grad(vc_loss, &v, v.wv, nw, fd);
    check_grad("vconv.w", dw, fd, nw);
    fd_grad(vc_loss, &v, v.bv, (size_t)v.nv, fd);
    check_grad("vconv.b", db, fd, (size_t)v.nv);
    /* everything accumulates */
    double *dx2 = dalloc(nx), *dw2 = dalloc(nw), *db2 = dalloc((size_t)v.nv);
    memcpy(dx2, dx, nx * sizeof *dx);
    memcpy(dw2, dw, nw * sizeof *dw);
    memcpy(db2, db, (size_t)v.nv * sizeof *db);
    iadsr__caser_vconv_bwd_f64(v.n, v.l, v.d, v.nv, v.x, v.wv, v.R, v.ldo,
                               dw2, db2, dx2);
    for (size_t i = 0; i < nx; i++)
        ck_assert(fabs(dx2[i] - 2 * dx[i]) < 1e-12);
    for (size_t i = 0; i < nw; i++)
        ck_assert(fabs(dw2[i] - 2 * dw[i]) < 1e-12);
    for (int i = 0; i < v.nv; i++)
        ck_assert(fabs(db2[i] - 2 * db[i]) < 1e-12);
    free(v.x), free(v.wv), free(v.bv), free(v.out), free(v.R), free(dx);
    free(dw), free(db), free(fd), free(dx2), free(dw2), free(db2);
}
END_TEST

typedef struct im_ctx {
    enc_ctx *e;
    double *x, *R;
} im_ctx;

static double im_loss(void *p)
{
    im_ctx *m = p;
    const iadsr__shape *s = &m->e->shape;
    iadsr__caser_image_f64(&m->e->b, s->caser_l, s->d, m->e->w.item_emb, m->x);
    return dot(m->x, m->R,
               (size_t)m->e->b.n_rows * (size_t)(s->caser_l * s->d));
}

START_TEST(test_image_grad)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, 5050);
    int R = e.b.n_rows, l = e.shape.caser_l, d = e.shape.d;
    size_t nx = (size_t)R * (size_t)(l * d);
    size_t ne = (size_t)(e.hp.n_items + 1) * (size_t)d;
    im_ctx m = {&e, dalloc(nx), dalloc(nx)};
    iadsr__rng r;
    iadsr__rng_seed(&r, 5051);
    fill_normal(m.R, nx, 0, 1, &r);
    im_loss(&m);
    /* window rows before the sequence start are zero, the others copies */
    for (int q = 0; q < NSEQ; q++)
        for (int i = 0; i < seq_len[q]; i++)
            for (int j = 0; j < l; j++) {
                int p = i - (l - 1) + j;
                const double *xr = m.x + (size_t)(e.off[q] + i) * (size_t)(l * d) +
                                   (size_t)(j * d);
                for (int c = 0; c < d; c++)
                    ck_assert(xr[c] ==
                              (p < 0 ? 0.0
                                     : e.w.item_emb[(size_t)e.items[e.off[q] + p] *
                                                        (size_t)d +
                                                    (size_t)c]));
            }
    double *fd = dalloc(ne);
    memset(e.G, 0, e.lay->n_floats * sizeof *e.G);
    iadsr__caser_image_bwd_f64(&e.b, l, d, e.w.item_emb, m.R, e.g.item_emb);
    fd_grad(im_loss, &m, e.w.item_emb, ne, fd);
    check_grad("image.item_emb", e.g.item_emb, fd, ne);
    for (int c = 0; c < d; c++) /* padding row: nothing */
        ck_assert(e.g.item_emb[c] == 0.0);
    free(m.x), free(m.R), free(fd);
    enc_free(&e);
}
END_TEST

/* ---- 4. the whole encoder -------------------------------------------------------- */

START_TEST(test_encoder_grad_no_dropout)
{
    enc_ctx e;
    enc_setup(&e, 0.0f, 6060);
    enc_check_all(&e, "caser(dropout 0)");
    /* with dropout 0 the rng is not used at all */
    double l0 = enc_loss(&e);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) == l0);
    enc_free(&e);
    enc_setup_c(&e, cfg_wide, 0.0f, 6061);
    enc_check_all(&e, "caser(wide, dropout 0)");
    enc_free(&e);
}
END_TEST

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
    enc_setup(&e, 0.3f, 313);
    float sc[MAXROWS];
    double ds[MAXROWS];
    /* dropped rows at 0.25, not 0: a zeroed row equals the zero padding
     * of the image, and the max-pool over their tied windows has no
     * derivative there */
    check_input_scale("encoder(scaled inputs, dropout 0.3)", &e, &e.b, 0.25f, sc, ds, enc_check_all_v,
                      enc_grad_v, enc_loss);
    enc_free(&e);
}
END_TEST

START_TEST(test_encoder_grad_dropout)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 7070);
    /* the masks really drop something: another rng state changes the loss */
    double l0 = enc_loss(&e);
    iadsr__rng keep = e.rng0;
    iadsr__rng_seed(&e.rng0, 1);
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 0;
    ck_assert(enc_loss(&e) != l0);
    e.use_rng = 1;
    e.rng0 = keep;
    enc_loss(&e);
    ck_assert(e.ws.drew_masks);
    size_t nz = (size_t)e.b.n_rows *
                (size_t)(e.shape.caser_nv * e.shape.d +
                         e.shape.caser_l * e.shape.caser_nh);
    size_t dropped = 0;
    for (size_t i = 0; i < nz; i++) {
        ck_assert(e.ws.mask[i] == 0.0 || fabs(e.ws.mask[i] - 1 / 0.7) < 1e-6);
        dropped += e.ws.mask[i] == 0.0;
    }
    ck_assert(dropped > nz / 10 && dropped < nz / 2);
    enc_check_all(&e, "caser(dropout 0.3)");
    enc_free(&e);
}
END_TEST

/* A training workspace whose shape has dropout > 0, run forward WITHOUT an
 * rng, must give the gradient of that dropout-free forward. */
START_TEST(test_encoder_grad_forward_without_rng)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 8080);
    e.use_rng = 1;
    enc_forward(&e); /* stale masks in the buffers */
    e.use_rng = 0;
    enc_forward(&e);
    ck_assert(!e.ws.drew_masks);
    enc_check_all(&e, "caser(dropout 0.3, forward without rng)");
    enc_free(&e);
}
END_TEST

/* Row 0 of the item table (padding) is never read: windows before the
 * sequence start are zero vectors. It gets no gradient either. */
START_TEST(test_padding_row_unused)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 9090);
    int d = e.shape.d;
    size_t nh = (size_t)e.b.n_rows * (size_t)d;
    double *base = dalloc(nh);
    enc_forward(&e);
    memcpy(base, e.ws.out, nh * sizeof *base);
    for (int c = 0; c < d; c++)
        e.w.item_emb[c] = 5.0 + c;
    enc_forward(&e);
    ck_assert(memcmp(base, e.ws.out, nh * sizeof *base) == 0);
    enc_grad(&e, 1);
    for (int c = 0; c < d; c++)
        ck_assert(e.g.item_emb[c] == 0.0);

    /* a first row depends on its own item only: the same item first in two
     * sequences of different lengths gives identical first rows */
    e.items[e.off[1]] = e.items[e.off[3]];
    e.use_rng = 0;
    enc_forward(&e);
    ck_assert(memcmp(e.ws.out + (size_t)e.off[1] * (size_t)d,
                     e.ws.out + (size_t)e.off[3] * (size_t)d,
                     (size_t)d * sizeof(double)) == 0);
    free(base);
    enc_free(&e);
}
END_TEST

/* Causality and locality: the item at row j never changes rows i < j of its
 * sequence, rows i >= j + l (outside their windows), nor other sequences. */
START_TEST(test_encoder_causal)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 1111);
    int d = e.shape.d, R = e.b.n_rows, l = e.shape.caser_l;
    size_t nh = (size_t)R * (size_t)d;
    double *base = dalloc(nh);
    for (int use_rng = 0; use_rng < 2; use_rng++) {
        e.use_rng = use_rng;
        enc_forward(&e);
        memcpy(base, e.ws.out, nh * sizeof *base);
        for (int s = 0; s < NSEQ; s++)
            for (int j = e.off[s]; j < e.off[s + 1]; j++) {
                int32_t save = e.items[j];
                e.items[j] = save % 9 + 1;
                enc_forward(&e);
                int changed = 0;
                for (int i = 0; i < R; i++) {
                    int eq = memcmp(e.ws.out + (size_t)i * (size_t)d,
                                    base + (size_t)i * (size_t)d,
                                    (size_t)d * sizeof(double)) == 0;
                    if (i < e.off[s] || i >= e.off[s + 1] || i < j ||
                        i >= j + l)
                        ck_assert_msg(eq, "item of row %d changed row %d", j,
                                      i);
                    else
                        changed += !eq;
                }
                if (!use_rng)
                    ck_assert_msg(changed > 0, "item of row %d: no effect", j);
                e.items[j] = save;
            }
    }
    free(base);
    enc_free(&e);
}
END_TEST

/* Items reach the table only through the windows: unused rows get exactly
 * zero encoder gradient. */
START_TEST(test_encoder_sparse_rows)
{
    enc_ctx e;
    enc_setup(&e, 0.3f, 1212);
    int d = e.shape.d, n_items = e.shape.n_items;
    int used[16] = {0};
    for (int r = 0; r < e.b.n_rows; r++)
        used[e.items[r]] = 1;
    ck_assert(!used[0] && !used[7] && !used[9]);
    enc_grad(&e, 0);
    for (int i = 0; i <= n_items; i++) {
        double n2 = dot(e.g.item_emb + (size_t)i * (size_t)d,
                        e.g.item_emb + (size_t)i * (size_t)d, (size_t)d);
        if (used[i])
            ck_assert_msg(n2 > 0, "item %d: no gradient", i);
        else
            ck_assert_msg(n2 == 0, "item %d: gradient %g", i, n2);
    }
    enc_free(&e);
}
END_TEST

/* ---- 5. f32 vs f64 ------------------------------------------------------------------ */

START_TEST(test_f32_vs_f64)
{
    const cfg cs[2] = {cfg_small, cfg_wide};
    enc_ctx e;
    enc_setup_c(&e, cs[_i], 0.3f, 1313 + (uint64_t)_i);
    size_t nf = e.lay->n_floats;
    int R = e.b.n_rows, d = e.shape.d, n_items = e.shape.n_items;
    size_t nh = (size_t)R * (size_t)d;
    float *Wf = falloc(nf), *Gf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i]; /* exact: W was rounded to float */
    iadsr__caser_w_f32 wf, gf;
    iadsr__caser_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__caser_bind_f32(e.lay, Gf, &e.shape, &gf);
    iadsr__caser_ws_f32 wsi, wst;
    TU_OK(iadsr__caser_ws_init_f32(&wsi, &e.shape, MAXROWS,
                                   e.shape.max_len, 0));
    TU_OK(iadsr__caser_ws_init_f32(&wst, &e.shape, MAXROWS,
                                   e.shape.max_len, 1));
    double *h64 = dalloc(nh);

    /* inference */
    e.use_rng = 0;
    enc_forward(&e);
    memcpy(h64, e.ws.out, nh * sizeof *h64);
    iadsr__caser_forward_f32(&wsi, &wf, &e.b, NULL);
    double r_inf = rel_diff_pure(wsi.out, h64, nh);
    ck_assert_msg(r_inf < 1e-5, "inference f32 vs f64: %.3g", r_inf);
    /* a training workspace without rng: the same as inference */
    iadsr__caser_forward_f32(&wst, &wf, &e.b, NULL);
    ck_assert(memcmp(wst.out, wsi.out, nh * sizeof(float)) == 0);

    /* training with the same rng state: the same masks */
    e.use_rng = 1;
    enc_forward(&e);
    memcpy(h64, e.ws.out, nh * sizeof *h64);
    iadsr__rng r = e.rng0;
    iadsr__caser_forward_f32(&wst, &wf, &e.b, &r);
    double r_tr = rel_diff_pure(wst.out, h64, nh);
    ck_assert_msg(r_tr < 1e-5, "training f32 vs f64: %.3g", r_tr);

    /* a full training step: loss and every gradient tensor */
    double loss64 = enc_grad(&e, 1);
    float *dhf = falloc(nh), *zf = falloc((size_t)R * (size_t)n_items);
    r = e.rng0;
    iadsr__caser_forward_f32(&wst, &wf, &e.b, &r);
    double loss32 = (double)(float)e.scale *
                    iadsr__ce_loss_f32(wst.out, R, d, e.tgt, wf.item_emb,
                                       n_items, (float)e.scale, dhf,
                                       gf.item_emb, zf, 4);
    iadsr__caser_backward_f32(&wst, &wf, &gf, &e.b, dhf);
    double r_loss = fabs(loss32 - loss64) / fabs(loss64);
    ck_assert_msg(r_loss < 1e-5, "loss f32 %.9g vs f64 %.9g", loss32, loss64);
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
        ck_assert_msg(den > 0, "gradient %s is zero", tt->name);
        double rg = sqrt(num / den);
        ck_assert_msg(rg < 1e-4, "gradient %s: f32 vs f64 rel %.3g",
                      tt->name, rg);
        worst = fmax(worst, rg);
    }
    if (verbose())
        fprintf(stderr, "  caser f32 vs f64 (d %d): h inference %.3g, "
                        "training %.3g, loss %.3g, worst gradient %.3g\n",
                d, r_inf, r_tr, r_loss, worst);
    iadsr__caser_ws_free_f32(&wsi);
    iadsr__caser_ws_free_f32(&wst);
    free(Wf), free(Gf), free(h64), free(dhf), free(zf);
    enc_free(&e);
}
END_TEST

/* forward_last (the last row's window only) equals the last rows of the
 * full forward pass, in double exactly up to rounding and in float. */
START_TEST(test_forward_last)
{
    const cfg cs[2] = {cfg_small, cfg_wide};
    enc_ctx e;
    enc_setup_c(&e, cs[_i], 0.3f, 4242 + (uint64_t)_i);
    int d = e.shape.d, S = e.b.n_seq;
    e.use_rng = 0;
    enc_forward(&e);
    iadsr__caser_ws_f64 wsl;
    TU_OK(iadsr__caser_ws_init_f64(&wsl, &e.shape, MAXROWS,
                                   e.shape.max_len, 0));
    iadsr__caser_forward_last_f64(&wsl, &e.w, &e.b);
    double worst = 0;
    for (int q = 0; q < S; q++) {
        const double *a = e.ws.out + (size_t)(e.off[q + 1] - 1) * (size_t)d;
        for (int c = 0; c < d; c++)
            worst = fmax(worst, fabs(a[c] - wsl.out[(size_t)q * (size_t)d + c]));
    }
    ck_assert_msg(worst < 1e-12, "forward_last vs forward: %.3g", worst);

    size_t nf = e.lay->n_floats;
    float *Wf = falloc(nf);
    for (size_t i = 0; i < nf; i++)
        Wf[i] = (float)e.W[i];
    iadsr__caser_w_f32 wf;
    iadsr__caser_bind_f32(e.lay, Wf, &e.shape, &wf);
    iadsr__caser_ws_f32 wsf, wsa;
    TU_OK(iadsr__caser_ws_init_f32(&wsf, &e.shape, MAXROWS,
                                   e.shape.max_len, 0));
    TU_OK(iadsr__caser_ws_init_f32(&wsa, &e.shape, MAXROWS,
                                   e.shape.max_len, 0));
    iadsr__caser_forward_last_f32(&wsf, &wf, &e.b);
    double r = rel_diff_pure(wsf.out, wsl.out, (size_t)S * (size_t)d);
    ck_assert_msg(r < 1e-5, "forward_last f32 vs f64: %.3g", r);
    /* and against the float full forward */
    iadsr__caser_forward_f32(&wsa, &wf, &e.b, NULL);
    for (int q = 0; q < S; q++)
        for (int c = 0; c < d; c++) {
            float a = wsa.out[(size_t)(e.off[q + 1] - 1) * (size_t)d + c];
            float b = wsf.out[(size_t)q * (size_t)d + c];
            ck_assert_msg(fabsf(a - b) <= 1e-5f * (1 + fabsf(a)),
                          "sequence %d: %g vs %g", q, (double)a, (double)b);
        }
    iadsr__caser_ws_free_f32(&wsf);
    iadsr__caser_ws_free_f32(&wsa);
    iadsr__caser_ws_free_f64(&wsl);
    free(Wf);
    enc_free(&e);
}
END_TEST

START_TEST(test_ws_nomem)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.backbone = IADSR_BACKBONE_CASER;
    p.n_items = 20;
    TU_OK(iadsr__model_params_check(&p));
    iadsr__shape s;
    iadsr__shape_from(&p, &s);
    for (int training = 0; training < 2; training++) {
        iadsr__caser_ws_f32 ws;
        long live = iadsr__alloc_live();
        iadsr__alloc_fail_after(1, 0);
        iadsr_clear_error();
        int rc = iadsr__caser_ws_init_f32(&ws, &s, 100, s.max_len, training);
        iadsr__alloc_fail_after(0, 0);
        ck_assert_int_eq(rc, IADSR_ERR_NOMEM);
        ck_assert(strstr(iadsr_last_error(), "caser") != NULL);
        ck_assert_ptr_null(ws.block);
        ck_assert_int_eq(iadsr__alloc_live(), live);
        iadsr__caser_ws_free_f32(&ws); /* harmless */
        TU_OK(iadsr__caser_ws_init_f32(&ws, &s, 100, s.max_len, training));
        ck_assert_ptr_nonnull(ws.x);
        ck_assert(training ? ws.dz != NULL && ws.mask != NULL
                           : ws.dz == NULL && ws.arg == NULL);
        iadsr__caser_ws_free_f32(&ws);
        ck_assert_int_eq(iadsr__alloc_live(), live);
    }
}
END_TEST

/* ---- 6. through the public API ---------------------------------------------------------- */

#define NI 60

static void caser_params(iadsr_model_params *p, int32_t n_items,
                         uint64_t seed)
{
    iadsr_model_params_init(p);
    p->backbone = IADSR_BACKBONE_CASER;
    p->n_items = n_items;
    p->dim = 16;
    p->max_seq_len = 10;
    p->caser_window = 3;
    p->caser_h_filters = 8;
    p->caser_v_filters = 2;
    p->dropout = 0.2f;
    p->seed = seed;
}

static iadsr_model *caser_model(int32_t n_items, uint64_t seed)
{
    iadsr_model_params p;
    caser_params(&p, n_items, seed);
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    return m;
}

/* Train for @p epochs (SPLIT_NONE) with @p threads workers and @p seed. */
static iadsr_model *caser_trained(const iadsr_model *init,
                                  const iadsr_dataset *d, int epochs,
                                  int threads, uint64_t seed)
{
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.split = IADSR_SPLIT_NONE;
    tp.n_threads = threads;
    tp.seed = seed;
    iadsr_trainer *t = NULL;
    TU_OK(iadsr_trainer_create(&t, init, d, &tp));
    for (int e = 0; e < epochs; e++)
        TU_OK(iadsr_trainer_run_epoch(t, NULL));
    iadsr_model *m = NULL;
    TU_OK(iadsr_trainer_snapshot(t, &m));
    iadsr_trainer_free(t);
    return m;
}

START_TEST(test_api_model)
{
    iadsr_model_params p;
    caser_params(&p, NI, 3);
    p.caser_window = 0; /* defaults: 5, 16, 4 */
    p.caser_h_filters = 0;
    p.caser_v_filters = 0;
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &p));
    ck_assert_int_eq(iadsr_model_backbone(m), IADSR_BACKBONE_CASER);
    iadsr_model_params got;
    memset(&got, 0, sizeof got);
    got.struct_size = sizeof got;
    TU_OK(iadsr_model_get_params(m, &got));
    ck_assert_int_eq(got.caser_window, 5);
    ck_assert_int_eq(got.caser_h_filters, 16);
    ck_assert_int_eq(got.caser_v_filters, 4);
    ck_assert_int_eq(got.n_layers, 0);
    ck_assert_int_eq(got.n_heads, 0);
    int64_t d = 16, l = 5, nh = 16, nv = 4, want = (NI + 1) * d;
    for (int64_t h = 1; h <= l; h++)
        want += h * d * nh + nh;
    want += l * nv + nv + (nv * d + l * nh) * d + d;
    ck_assert_int_eq(iadsr_model_n_params(m), want);

    /* initialisation: zero biases and padding row, fan-scaled weights */
    const iadsr__layout *lay = &m->layout;
    for (int i = 0; i < lay->n_tensors; i++) {
        const iadsr__tensor *t = &lay->t[i];
        const float *w = m->w + t->offset;
        size_t n = (size_t)t->rows * (size_t)t->cols;
        double s2 = 0;
        for (size_t j = 0; j < n; j++)
            s2 += (double)w[j] * (double)w[j];
        if (t->rows == 1) {
            ck_assert_msg(s2 == 0, "%s is not zero", t->name);
            continue;
        }
        double sd = sqrt(s2 / (double)n);
        double want_sd = i == 0 ? 0.02 : iadsr__caser_init_sd(t);
        ck_assert_msg(fabs(sd - want_sd) < 0.25 * want_sd,
                      "%s: sd %g, want %g", t->name, sd, want_sd);
    }
    for (int c = 0; c < 16; c++)
        ck_assert(iadsr_model_item_embeddings(m)[c] == 0.0f);
    ck_assert(fabs(iadsr__caser_init_sd(iadsr__layout_find(lay, "caser.fc.w")) -
                   sqrt(2.0 / (double)(nv * d + l * nh + d))) < 1e-12);
    ck_assert(fabs(iadsr__caser_init_sd(iadsr__layout_find(lay, "caser.h2.w")) -
                   1.0 / sqrt(3.0 * 2 * 16)) < 1e-12);
    iadsr_model_free(m);

    /* Caser takes no layers; the window is bounded */
    caser_params(&p, NI, 3);
    p.n_layers = 1;
    m = TU_SENTINEL(iadsr_model);
    TU_EXPECT_ERR(iadsr_model_create(&m, &p), IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(m);
    caser_params(&p, NI, 3);
    p.caser_window = IADSR__CASER_MAX_L + 1;
    TU_EXPECT_ERR(iadsr_model_create(&m, &p), IADSR_ERR_INVALID_ARG);

    /* a window of 1 (single-row weights are still drawn) and the largest */
    caser_params(&p, NI, 3);
    p.caser_window = 1;
    p.dim = 1;
    TU_OK(iadsr_model_create(&m, &p));
    const iadsr__tensor *t = iadsr__layout_find(&m->layout, "caser.h1.w");
    ck_assert(t && t->rows == 1 && m->w[t->offset] != 0.0f);
    iadsr_model_free(m);
    caser_params(&p, NI, 3);
    p.caser_window = IADSR__CASER_MAX_L;
    TU_OK(iadsr_model_create(&m, &p));
    ck_assert_int_eq(m->layout.n_tensors, 1 + 2 * IADSR__CASER_MAX_L + 4);
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    int32_t seq[3] = {1, 2, 3};
    float sc[NI + 1];
    TU_OK(iadsr_ctx_score(c, seq, 3, sc, NI + 1));
    ck_assert(isinf(sc[0]) && sc[0] < 0 && isfinite(sc[1]));
    iadsr_ctx_free(c);
    iadsr_model_free(m);
}
END_TEST

/* Popularity baseline on the TEST target (as tests/test_trainer.c). */
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
    int light = tu_light();
    iadsr_dataset *d = tu_synth(light ? 600 : 1000, 120, 10, 5, 30, 3);
    iadsr_model_params mp;
    caser_params(&mp, 120, 5);
    mp.dim = 32;
    mp.max_seq_len = 20;
    mp.caser_window = 0; /* the defaults: l 5, nh 16, nv 4 */
    mp.caser_h_filters = 0;
    mp.caser_v_filters = 0;
    iadsr_model *m = NULL;
    TU_OK(iadsr_model_create(&m, &mp));
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.learning_rate = 5e-3f;
    tp.max_epochs = light ? 8 : 10;
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
    TU_NOTE("caser quality: %d epochs (best %d), test NDCG@10 %.4f HR@10 "
            "%.4f, popularity NDCG@10 %.4f\n",
            (int)iadsr_trainer_epochs_done(t), (int)s->epochs_trained,
            mt.ndcg10, mt.hr10, pop);
    ck_assert_int_eq(iadsr_model_backbone(s), IADSR_BACKBONE_CASER);
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

/* Sequences of every length from 1 to past the window and max_seq_len. */
#define NTEST 12
static void test_sequences(int32_t seq[NTEST][16], int len[NTEST])
{
    uint32_t x = 77;
    for (int i = 0; i < NTEST; i++) {
        len[i] = 1 + i + (i > 8 ? 4 : 0);
        for (int j = 0; j < len[i]; j++) {
            x = x * 1664525u + 1013904223u;
            seq[i][j] = 1 + (int32_t)((x >> 8) % NI);
        }
    }
}

START_TEST(test_checkpoint_roundtrip)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 9);
    iadsr_model *init = caser_model(NI, 4);
    iadsr_model *m = caser_trained(init, d, 2, 1, 1);
    size_t n = 0;
    unsigned char *buf = tu_model_bytes(m, &n);
    iadsr_model *back = NULL;
    TU_OK(iadsr_model_load_from_buffer(&back, buf, n, 0));
    ck_assert_int_eq(iadsr_model_backbone(back), IADSR_BACKBONE_CASER);
    ck_assert(tu_same_weights(m, back));
    iadsr_model_params pa, pb;
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    pa.struct_size = pb.struct_size = sizeof pa;
    TU_OK(iadsr_model_get_params(m, &pa));
    TU_OK(iadsr_model_get_params(back, &pb));
    ck_assert(memcmp(&pa, &pb, sizeof pa) == 0);
    ck_assert_int_eq(pb.caser_window, 3);

    int32_t seq[NTEST][16];
    int len[NTEST];
    test_sequences(seq, len);
    iadsr_ctx *ca = NULL, *cb = NULL;
    TU_OK(iadsr_ctx_create(&ca, m, NULL));
    TU_OK(iadsr_ctx_create(&cb, back, NULL));
    float sa[NI + 1], sb[NI + 1];
    for (int i = 0; i < NTEST; i++) {
        TU_OK(iadsr_ctx_score(ca, seq[i], len[i], sa, NI + 1));
        TU_OK(iadsr_ctx_score(cb, seq[i], len[i], sb, NI + 1));
        ck_assert_msg(memcmp(sa, sb, sizeof sa) == 0, "sequence %d", i);
    }
    /* and training moved the model away from its initialisation */
    TU_OK(iadsr_ctx_score(ca, seq[3], len[3], sa, NI + 1));
    iadsr_ctx *ci = NULL;
    TU_OK(iadsr_ctx_create(&ci, init, NULL));
    TU_OK(iadsr_ctx_score(ci, seq[3], len[3], sb, NI + 1));
    ck_assert(memcmp(sa, sb, sizeof sa) != 0);
    iadsr_ctx_free(ci);
    iadsr_ctx_free(ca);
    iadsr_ctx_free(cb);
    free(buf);
    iadsr_model_free(back);
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_determinism)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 9);
    iadsr_model *init = caser_model(NI, 4);
    iadsr_model *a = caser_trained(init, d, 2, 2, 1);
    iadsr_model *b = caser_trained(init, d, 2, 2, 1);
    iadsr_model *c = caser_trained(init, d, 2, 2, 2);
    ck_assert_msg(tu_same_weights(a, b), "same seed and threads, different "
                                         "weights");
    ck_assert_msg(!tu_same_weights(a, c), "different seed, same weights");
    ck_assert(!tu_same_weights(a, init));
    iadsr_model_free(a);
    iadsr_model_free(b);
    iadsr_model_free(c);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

typedef struct score_job {
    pthread_t tid;
    const iadsr_model *m;
    int id, rounds, mismatches, errors;
    const int32_t (*seq)[16];
    const int *len;
    const float (*want)[NI + 1];
} score_job;

static void *score_main(void *arg)
{
    score_job *j = arg;
    iadsr_ctx *c = NULL;
    if (iadsr_ctx_create(&c, j->m, NULL) != IADSR_OK) {
        j->errors++;
        return NULL;
    }
    float sc[NI + 1];
    for (int r = 0; r < j->rounds; r++)
        for (int k = 0; k < NTEST; k++) {
            int i = (k * 5 + j->id * 7 + r) % NTEST;
            if (iadsr_ctx_score(c, j->seq[i], j->len[i], sc, NI + 1) !=
                IADSR_OK)
                j->errors++;
            else if (memcmp(sc, j->want[i], sizeof sc) != 0)
                j->mismatches++;
        }
    iadsr_ctx_free(c);
    return NULL;
}

START_TEST(test_threads_scoring)
{
    iadsr_dataset *d = tu_synth(200, NI, 6, 5, 20, 9);
    iadsr_model *init = caser_model(NI, 4);
    iadsr_model *m = caser_trained(init, d, 1, 1, 1);
    int32_t seq[NTEST][16];
    int len[NTEST];
    float want[NTEST][NI + 1];
    test_sequences(seq, len);
    iadsr_ctx *c = NULL;
    TU_OK(iadsr_ctx_create(&c, m, NULL));
    for (int i = 0; i < NTEST; i++)
        TU_OK(iadsr_ctx_score(c, seq[i], len[i], want[i], NI + 1));
    /* the batched path (forward_last over several sequences) agrees */
    int32_t items[NTEST * 16];
    int64_t offs[NTEST + 1];
    offs[0] = 0;
    for (int i = 0; i < NTEST; i++) {
        memcpy(items + offs[i], seq[i], (size_t)len[i] * sizeof(int32_t));
        offs[i + 1] = offs[i] + len[i];
    }
    float *batch = falloc((size_t)NTEST * (NI + 1));
    TU_OK(iadsr_ctx_score_batch(c, items, offs, NTEST, batch,
                                (int64_t)NTEST * (NI + 1)));
    for (int i = 0; i < NTEST; i++)
        for (int k = 1; k <= NI; k++) {
            float a = batch[i * (NI + 1) + k], b = want[i][k];
            ck_assert_msg(fabsf(a - b) <= 1e-5f * (1 + fabsf(b)),
                          "sequence %d item %d: batch %g vs single %g", i, k,
                          (double)a, (double)b);
        }
    free(batch);
    iadsr_ctx_free(c);

    int n_threads = tu_light() ? 2 : 4;
    score_job jobs[4];
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < n_threads; t++) {
        jobs[t].m = m;
        jobs[t].id = t;
        jobs[t].rounds = tu_light() ? 2 : 20;
        jobs[t].seq = (const int32_t(*)[16])seq;
        jobs[t].len = len;
        jobs[t].want = (const float(*)[NI + 1])want;
        ck_assert_int_eq(pthread_create(&jobs[t].tid, NULL, score_main,
                                        &jobs[t]),
                         0);
    }
    for (int t = 0; t < n_threads; t++) {
        pthread_join(jobs[t].tid, NULL);
        ck_assert_msg(jobs[t].errors == 0 && jobs[t].mismatches == 0,
                      "thread %d: %d errors, %d mismatches", t, jobs[t].errors,
                      jobs[t].mismatches);
    }
    iadsr_model_free(m);
    iadsr_model_free(init);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_alloc_failures)
{
    /* contexts and trainers of a Caser model: NOMEM without leaks */
    iadsr_dataset *d = tu_synth(50, NI, 6, 5, 12, 9);
    iadsr_model *m = caser_model(NI, 4);
    iadsr_train_params tp;
    tu_train_params(&tp);
    tp.n_threads = 2;
    for (int what = 0; what < 2; what++) {
        long k;
        for (k = 1; k < 1000; k++) {
            long live = iadsr__alloc_live();
            iadsr__alloc_fail_after(k, 1);
            int rc;
            if (what == 0) {
                iadsr_ctx *c = TU_SENTINEL(iadsr_ctx);
                rc = iadsr_ctx_create(&c, m, NULL);
                iadsr__alloc_fail_after(0, 0);
                if (rc != IADSR_OK)
                    ck_assert_ptr_null(c);
                iadsr_ctx_free(c);
            } else {
                iadsr_trainer *t = TU_SENTINEL(iadsr_trainer);
                rc = iadsr_trainer_create(&t, m, d, &tp);
                iadsr__alloc_fail_after(0, 0);
                if (rc == IADSR_OK)
                    TU_OK(iadsr_trainer_run_epoch(t, NULL));
                else
                    ck_assert_ptr_null(t);
                iadsr_trainer_free(t);
            }
            ck_assert_msg(iadsr__alloc_live() == live, "k=%ld: %ld leaked", k,
                          iadsr__alloc_live() - live);
            if (rc == IADSR_OK)
                break;
            ck_assert_msg(rc == IADSR_ERR_NOMEM, "k=%ld: %s", k,
                          iadsr_status_name(rc));
        }
        ck_assert(k > 1 && k < 1000);
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
}
END_TEST

Suite *suite_caser(void)
{
    Suite *s = suite_create("caser");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_forward_definition);
    tcase_add_test(tc, test_hconv_grad);
    tcase_add_test(tc, test_vconv_grad);
    tcase_add_test(tc, test_image_grad);
    tcase_add_test(tc, test_encoder_grad_no_dropout);
    tcase_add_test(tc, test_encoder_grad_dropout);
    tcase_add_test(tc, test_encoder_grad_input_scale);
    tcase_add_test(tc, test_encoder_grad_forward_without_rng);
    tcase_add_test(tc, test_padding_row_unused);
    tcase_add_test(tc, test_encoder_causal);
    tcase_add_test(tc, test_encoder_sparse_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("float32");
    tcase_add_loop_test(tc, test_f32_vs_f64, 0, 2);
    tcase_add_loop_test(tc, test_forward_last, 0, 2);
    tcase_add_test(tc, test_ws_nomem);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, test_api_model);
    tcase_add_test(tc, test_quality_vs_popularity);
    tcase_add_test(tc, test_checkpoint_roundtrip);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_threads_scoring);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}
