/* Caser layers, forward and backward, generic over REAL. Instantiated by
 * caser_f32.c and tests/f64/caser_f64.c (math/real_f32.h, real_f64.h).
 * Template macros needed: REAL, SFX, GEMM. No include guard on purpose.
 * The architecture is described in caser.h.
 *
 * Work sharing between rows: the height-h convolution at window offset s of
 * the row at position i sees the h items ending at position p = i - (l - h)
 * + s, i.e. exactly the last h rows of the image of the row at position p.
 * So every convolution is computed once per (end position, height): one GEMM
 * per height over all rows of the batch ([n_rows, h d] x [h d, nh], the A
 * operand read in place from the images with leading dimension l d), and
 * the max-pooling of a row gathers the l - h + 1 end positions of its
 * window. Windows that end before the sequence start see only zero vectors
 * and give relu(bias).
 *
 * SPDX-License-Identifier: MIT
 */

#include "math/arena.h"

#include <string.h>

IADSR__FAMILY_BIND(caser)
{
    /* The layout order is fixed by caser_layout() (caser_f32.c): item_emb,
     * then (w, b) per height, then the vertical and the fully-connected
     * layer. */
    int L = s->caser_l;
    memset(w, 0, sizeof *w);
    w->item_emb = base + l->t[0].offset;
    for (int h = 0; h < L; h++) {
        w->hw[h] = base + l->t[1 + 2 * h].offset;
        w->hb[h] = base + l->t[2 + 2 * h].offset;
    }
    w->vw = base + l->t[1 + 2 * L].offset;
    w->vb = base + l->t[2 + 2 * L].offset;
    w->fcw = base + l->t[3 + 2 * L].offset;
    w->fcb = base + l->t[4 + 2 * L].offset;
}

/* ---- workspace ---------------------------------------------------------- */

/* The buffers, in iadsr__arena_alloc()'s two passes. */
static void SFX(caser_ws_carve)(void *p, iadsr__arena *a)
{
    SFX(iadsr__caser_ws) *ws = p;
    const iadsr__shape *s = &ws->shape;
    size_t R = (size_t)ws->max_rows, d = (size_t)s->d;
    size_t l = (size_t)s->caser_l, nh = (size_t)s->caser_nh;
    size_t F = (size_t)s->caser_nv * d + l * nh;
    ws->x = IADSR__TAKE_R(a, R * l * d);
    ws->c = IADSR__TAKE_R(a, R * l * nh);
    ws->z = IADSR__TAKE_R(a, R * F);
    ws->out = IADSR__TAKE_R(a, R * d);
    if (!ws->training) {
        ws->arg = NULL;
        ws->mask = ws->zd = ws->dz = ws->dx = ws->dc = ws->wt = NULL;
        return;
    }
    ws->arg = iadsr__arena_take(a, R * l * nh, sizeof(int32_t));
    if (s->dropout > 0) {
        ws->mask = IADSR__TAKE_R(a, R * F);
        ws->zd = IADSR__TAKE_R(a, R * F);
    } else {
        ws->mask = ws->zd = NULL;
    }
    ws->dz = IADSR__TAKE_R(a, R * F);
    ws->dx = IADSR__TAKE_R(a, R * l * d);
    ws->dc = IADSR__TAKE_R(a, R * l * nh);
    /* transposed weights: fc (d x F) or one height (nh x h d) */
    ws->wt = IADSR__TAKE_R(a, d * (F > l * nh ? F : l * nh));
}

IADSR__BACKBONE_WS_DEFINE(caser, "caser");

/* ---- helpers -------------------------------------------------------------- */

#include "math/dropout_template.h"

/* y[r] = relu(y[r] + bias) for n rows of m values at leading dimension ld */
static void SFX(caser_bias_relu)(REAL *y, int n, int m, int ld,
                                 const REAL *bias)
{
    for (int r = 0; r < n; r++) {
        REAL *yr = y + (size_t)r * (size_t)ld;
        for (int c = 0; c < m; c++) {
            REAL v = yr[c] + bias[c];
            yr[c] = v > 0 ? v : (REAL)0;
        }
    }
}

/* ---- images ----------------------------------------------------------------- */

void SFX(iadsr__caser_image)(const iadsr__batch *b, int l, int d,
                             const REAL *emb, REAL *x)
{
    size_t ld = (size_t)l * (size_t)d, rowb = (size_t)d * sizeof(REAL);
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], n = b->row_off[q + 1] - r0;
        for (int i = 0; i < n; i++) {
            REAL *xr = x + (size_t)(r0 + i) * ld;
            for (int j = 0; j < l; j++) {
                int p = i - (l - 1) + j; /* position of window row j */
                if (p < 0) {
                    memset(xr + (size_t)j * (size_t)d, 0, rowb);
                } else {
                    REAL *dst = xr + (size_t)j * (size_t)d;
                    memcpy(dst, emb + (size_t)b->items[r0 + p] * (size_t)d,
                           rowb);
                    if (b->scale)
                        for (int c = 0; c < d; c++)
                            dst[c] *= (REAL)b->scale[r0 + p];
                }
            }
        }
    }
}

void SFX(iadsr__caser_image_bwd)(const iadsr__batch *b, int l, int d,
                                 const REAL *emb, const REAL *dx, REAL *demb)
{
    size_t ld = (size_t)l * (size_t)d;
    if (b->dscale)
        for (int r = 0; r < b->n_rows; r++)
            b->dscale[r] = 0.0;
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], n = b->row_off[q + 1] - r0;
        for (int i = 0; i < n; i++) {
            const REAL *dr = dx + (size_t)(r0 + i) * ld;
            /* window rows before the sequence start are constants */
            for (int j = l - 1 - i > 0 ? l - 1 - i : 0; j < l; j++) {
                int p = i - (l - 1) + j;
                const REAL *src = dr + (size_t)j * (size_t)d;
                REAL *dst = demb + (size_t)b->items[r0 + p] * (size_t)d;
                REAL sc = b->scale ? (REAL)b->scale[r0 + p] : (REAL)1;
                for (int c = 0; c < d; c++)
                    dst[c] += sc * src[c];
                if (b->dscale) {
                    const REAL *ei = emb + (size_t)b->items[r0 + p] * (size_t)d;
                    REAL ds = 0;
                    for (int c = 0; c < d; c++)
                        ds += src[c] * ei[c];
                    b->dscale[r0 + p] += (double)ds;
                }
            }
        }
    }
}

/* ---- horizontal convolutions ---------------------------------------------------- */

void SFX(iadsr__caser_hconv_fwd)(const iadsr__batch *b, int l, int d, int nh,
                                 const REAL *x, REAL *const *hw,
                                 REAL *const *hb, REAL *c, int32_t *arg,
                                 REAL *out, int ldo)
{
    int R = b->n_rows, ld = l * d, lc = l * nh;
    for (int h = 1; h <= l; h++) {
        REAL *ch = c + (size_t)(h - 1) * (size_t)nh;
        GEMM(0, 0, R, nh, h * d, (REAL)1, x + (size_t)(l - h) * (size_t)d, ld,
             hw[h - 1], nh, (REAL)0, ch, lc);
        SFX(caser_bias_relu)(ch, R, nh, lc, hb[h - 1]);
    }
    /* max-pooling over the l - h + 1 offsets of every row's window */
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], n = b->row_off[q + 1] - r0;
        for (int i = 0; i < n; i++) {
            REAL *o = out + (size_t)(r0 + i) * (size_t)ldo;
            int32_t *a = arg ? arg + (size_t)(r0 + i) * (size_t)lc : NULL;
            for (int h = 1; h <= l; h++) {
                const REAL *bh = hb[h - 1];
                REAL *oh = o + (size_t)(h - 1) * (size_t)nh;
                int32_t *ah = a ? a + (size_t)(h - 1) * (size_t)nh : NULL;
                for (int s = 0; s <= l - h; s++) {
                    int p = i - (l - h) + s; /* end position of the window */
                    const REAL *v =
                        p >= 0 ? c + (size_t)(r0 + p) * (size_t)lc +
                                     (size_t)(h - 1) * (size_t)nh
                               : NULL;
                    for (int f = 0; f < nh; f++) {
                        REAL vf = v ? v[f] : (bh[f] > 0 ? bh[f] : (REAL)0);
                        if (s == 0 || vf > oh[f]) { /* ties: the first */
                            oh[f] = vf;
                            if (ah)
                                ah[f] = s;
                        }
                    }
                }
            }
        }
    }
}

void SFX(iadsr__caser_hconv_bwd)(const iadsr__batch *b, int l, int d, int nh,
                                 const REAL *x, REAL *const *hw,
                                 REAL *const *hb, const REAL *c,
                                 const int32_t *arg, const REAL *dout,
                                 int ldo, REAL *const *dhw, REAL *const *dhb,
                                 REAL *dc, REAL *wt, REAL *dx)
{
    int R = b->n_rows, ld = l * d, lc = l * nh;
    size_t nc = (size_t)R * (size_t)lc;
    memset(dc, 0, nc * sizeof(REAL));
    /* route every pooled gradient to its argmax end position */
    for (int q = 0; q < b->n_seq; q++) {
        int r0 = b->row_off[q], n = b->row_off[q + 1] - r0;
        for (int i = 0; i < n; i++) {
            const REAL *g = dout + (size_t)(r0 + i) * (size_t)ldo;
            const int32_t *a = arg + (size_t)(r0 + i) * (size_t)lc;
            for (int h = 1; h <= l; h++) {
                size_t k0 = (size_t)(h - 1) * (size_t)nh;
                for (int f = 0; f < nh; f++) {
                    int p = i - (l - h) + a[k0 + (size_t)f];
                    if (p >= 0)
                        dc[(size_t)(r0 + p) * (size_t)lc + k0 + (size_t)f] +=
                            g[k0 + (size_t)f];
                    else if (hb[h - 1][f] > 0) /* relu(bias) window */
                        dhb[h - 1][f] += g[k0 + (size_t)f];
                }
            }
        }
    }
    for (size_t k = 0; k < nc; k++) /* relu: c is its output */
        if (!(c[k] > 0))
            dc[k] = 0;
    for (int h = 1; h <= l; h++) {
        const REAL *dch = dc + (size_t)(h - 1) * (size_t)nh;
        const REAL *xh = x + (size_t)(l - h) * (size_t)d;
        int K = h * d;
        /* dW += X_h^T dC ; db += colsum(dC) ; dX_h += dC W^T */
        GEMM(1, 0, K, nh, R, (REAL)1, xh, ld, dch, lc, (REAL)1, dhw[h - 1],
             nh);
        SFX(iadsr__colsum_add)(dch, R, nh, lc, dhb[h - 1]);
        SFX(iadsr__transpose)(hw[h - 1], K, nh, wt);
        GEMM(0, 0, R, K, nh, (REAL)1, dch, lc, wt, K, (REAL)1,
             dx + (size_t)(l - h) * (size_t)d, ld);
    }
}

/* ---- vertical convolution --------------------------------------------------------- */

void SFX(iadsr__caser_vconv_fwd)(int n, int l, int d, int nv, const REAL *x,
                                 const REAL *wv, const REAL *bv, REAL *out,
                                 int ldo)
{
    size_t ld = (size_t)l * (size_t)d;
    for (int r = 0; r < n; r++) {
        const REAL *xr = x + (size_t)r * ld;
        REAL *o = out + (size_t)r * (size_t)ldo;
        for (int f = 0; f < nv; f++) {
            REAL *of = o + (size_t)f * (size_t)d;
            for (int j = 0; j < d; j++)
                of[j] = bv[f];
            for (int i = 0; i < l; i++) {
                REAL wif = wv[(size_t)i * (size_t)nv + (size_t)f];
                const REAL *xi = xr + (size_t)i * (size_t)d;
                for (int j = 0; j < d; j++)
                    of[j] += wif * xi[j];
            }
        }
    }
}

void SFX(iadsr__caser_vconv_bwd)(int n, int l, int d, int nv, const REAL *x,
                                 const REAL *wv, const REAL *dout, int ldo,
                                 REAL *dwv, REAL *dbv, REAL *dx)
{
    size_t ld = (size_t)l * (size_t)d;
    for (int r = 0; r < n; r++) {
        const REAL *xr = x + (size_t)r * ld;
        REAL *dxr = dx + (size_t)r * ld;
        const REAL *g = dout + (size_t)r * (size_t)ldo;
        for (int f = 0; f < nv; f++) {
            const REAL *gf = g + (size_t)f * (size_t)d;
            REAL sb = 0;
            for (int j = 0; j < d; j++)
                sb += gf[j];
            dbv[f] += sb;
            for (int i = 0; i < l; i++) {
                const REAL *xi = xr + (size_t)i * (size_t)d;
                REAL *dxi = dxr + (size_t)i * (size_t)d;
                REAL wif = wv[(size_t)i * (size_t)nv + (size_t)f], sw = 0;
                for (int j = 0; j < d; j++) {
                    sw += gf[j] * xi[j];
                    dxi[j] += wif * gf[j];
                }
                dwv[(size_t)i * (size_t)nv + (size_t)f] += sw;
            }
        }
    }
}

/* ---- encoder ------------------------------------------------------------------------ */

/* out (n x d) = relu(zin W + b) */
static void SFX(caser_fc_fwd)(const iadsr__shape *s, const SFX(iadsr__caser_w) *w,
                              const REAL *zin, int n, REAL *out)
{
    int d = s->d, F = s->caser_nv * s->d + s->caser_l * s->caser_nh;
    GEMM(0, 0, n, d, F, (REAL)1, zin, F, w->fcw, d, (REAL)0, out, d);
    SFX(caser_bias_relu)(out, n, d, d, w->fcb);
}

IADSR__FAMILY_FORWARD(caser)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d, l = s->caser_l, nh = s->caser_nh;
    int nv = s->caser_nv, F = nv * d + l * nh;
    int drop = ws->training && rng != NULL && s->dropout > 0;
    ws->drew_masks = drop; /* backward applies exactly the masks drawn here */
    SFX(iadsr__caser_image)(b, l, d, w->item_emb, ws->x);
    SFX(iadsr__caser_vconv_fwd)(R, l, d, nv, ws->x, w->vw, w->vb, ws->z, F);
    SFX(iadsr__caser_hconv_fwd)(b, l, d, nh, ws->x, w->hw, w->hb, ws->c,
                                ws->arg, ws->z + (size_t)nv * (size_t)d, F);
    const REAL *zin = ws->z;
    if (drop) {
        size_t n = (size_t)R * (size_t)F;
        SFX(dropout_mask)(ws->mask, n, s->dropout, rng);
        for (size_t i = 0; i < n; i++)
            ws->zd[i] = ws->z[i] * ws->mask[i];
        zin = ws->zd;
    }
    SFX(caser_fc_fwd)(s, w, zin, R, ws->out);
}

IADSR__FAMILY_FORWARD_LAST(caser)
{
    const iadsr__shape *s = &ws->shape;
    int S = b->n_seq, d = s->d, l = s->caser_l, nh = s->caser_nh;
    int nv = s->caser_nv, F = nv * d + l * nh, ld = l * d;
    size_t rowb = (size_t)d * sizeof(REAL);
    /* the image of the last row of every sequence: x row q */
    for (int q = 0; q < S; q++) {
        int r0 = b->row_off[q], i = b->row_off[q + 1] - r0 - 1;
        REAL *xq = ws->x + (size_t)q * (size_t)ld;
        for (int j = 0; j < l; j++) {
            int p = i - (l - 1) + j;
            if (p < 0)
                memset(xq + (size_t)j * (size_t)d, 0, rowb);
            else
                memcpy(xq + (size_t)j * (size_t)d,
                       w->item_emb + (size_t)b->items[r0 + p] * (size_t)d,
                       rowb);
        }
    }
    SFX(iadsr__caser_vconv_fwd)(S, l, d, nv, ws->x, w->vw, w->vb, ws->z, F);
    /* every offset of every height straight from that image (windows
     * before the start are zeros here, which gives relu(bias) exactly) */
    REAL *tmp = ws->c; /* S x nh */
    for (int h = 1; h <= l; h++) {
        for (int o = 0; o <= l - h; o++) {
            GEMM(0, 0, S, nh, h * d, (REAL)1, ws->x + (size_t)o * (size_t)d,
                 ld, w->hw[h - 1], nh, (REAL)0, tmp, nh);
            SFX(caser_bias_relu)(tmp, S, nh, nh, w->hb[h - 1]);
            for (int q = 0; q < S; q++) {
                REAL *oh = ws->z + (size_t)q * (size_t)F + (size_t)nv * (size_t)d +
                           (size_t)(h - 1) * (size_t)nh;
                const REAL *tq = tmp + (size_t)q * (size_t)nh;
                for (int f = 0; f < nh; f++)
                    if (o == 0 || tq[f] > oh[f])
                        oh[f] = tq[f];
            }
        }
    }
    SFX(caser_fc_fwd)(s, w, ws->z, S, ws->out);
}

IADSR__FAMILY_BACKWARD(caser)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d, l = s->caser_l, nh = s->caser_nh;
    int nv = s->caser_nv, F = nv * d + l * nh;
    size_t Rd = (size_t)R * (size_t)d, RF = (size_t)R * (size_t)F;
    int drop = ws->drew_masks; /* masks were drawn in forward */
    /* h = relu(zin W + b) */
    for (size_t i = 0; i < Rd; i++)
        if (!(ws->out[i] > 0))
            dh[i] = 0;
    const REAL *zin = drop ? ws->zd : ws->z;
    GEMM(1, 0, F, d, R, (REAL)1, zin, F, dh, d, (REAL)1, g->fcw, d);
    SFX(iadsr__colsum_add)(dh, R, d, d, g->fcb);
    SFX(iadsr__transpose)(w->fcw, F, d, ws->wt);
    GEMM(0, 0, R, F, d, (REAL)1, dh, d, ws->wt, F, (REAL)0, ws->dz, F);
    if (drop)
        for (size_t i = 0; i < RF; i++)
            ws->dz[i] *= ws->mask[i];
    /* z = concat(out_v, out_h), both functions of the images */
    memset(ws->dx, 0, (size_t)R * (size_t)l * (size_t)d * sizeof(REAL));
    SFX(iadsr__caser_vconv_bwd)(R, l, d, nv, ws->x, w->vw, ws->dz, F, g->vw,
                                g->vb, ws->dx);
    SFX(iadsr__caser_hconv_bwd)(b, l, d, nh, ws->x, w->hw, w->hb, ws->c,
                                ws->arg, ws->dz + (size_t)nv * (size_t)d, F,
                                g->hw, g->hb, ws->dc, ws->wt, ws->dx);
    SFX(iadsr__caser_image_bwd)(b, l, d, w->item_emb, ws->dx, g->item_emb);
}
