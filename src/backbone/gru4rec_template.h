/* GRU4Rec layers, forward and backward, generic over REAL. Instantiated by
 * gru4rec_f32.c and tests/f64/gru4rec_f64.c (math/real_f32.h, real_f64.h).
 * Template macros needed: REAL, SFX, GEMM, SIGMOID, TANH. No include guard
 * on purpose.
 *
 * The encoder: x_t = drop(E[item_t]); n_layers GRU layers (input and hidden
 * width d) with PyTorch's nn.GRU equations, gate order r, z, n:
 *   r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
 *   z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
 *   n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
 *   h' = (1 - z) * n + z * h
 * with dropout on each layer's output (what the next layer reads, and the
 * encoder output); the recurrence itself uses the undropped h. The hidden
 * state is 0 before the first real item of a sequence (no padding steps).
 *
 * Work is batched across sequences: x W_ih is one GEMM over all rows of a
 * layer, and step k of the recurrence advances every sequence with a k-th
 * row in one GEMM with W_hh. Activations live in the time-major order of
 * iadsr__gru4rec_schedule(), in which the previous hidden states of a step
 * are one contiguous block, so no gather or scatter is needed per step.
 *
 * SPDX-License-Identifier: MIT
 */

#include "math/arena.h"

#include <math.h>
#include <string.h>

IADSR__FAMILY_BIND(gru4rec)
{
    /* in the order of gru4rec_layout() (gru4rec_f32.c) */
    const iadsr__tensor *t = l->t;
    memset(w, 0, sizeof *w);
    w->item_emb = base + (t++)->offset;
    for (int i = 0; i < s->n_layers; i++) {
        SFX(iadsr__gru_layer_w) *dst = &w->lay[i];
        IADSR__GRU4REC_LAYER(IADSR__W_BIND)
    }
}

/* ---- workspace ---------------------------------------------------------- */

/* The buffers, in iadsr__arena_alloc()'s two passes. */
static void SFX(gru4rec_ws_carve)(void *p, iadsr__arena *a)
{
    SFX(iadsr__gru4rec_ws) *ws = p;
    const iadsr__shape *s = &ws->shape;
    size_t R = (size_t)ws->max_rows, d = (size_t)s->d;
    size_t L1 = (size_t)ws->max_len + 1;
    int tr = ws->training;
    ws->koff = iadsr__arena_take(a, L1, sizeof(int32_t));
    ws->cnt = iadsr__arena_take(a, L1, sizeof(int32_t));
    ws->tm_row = iadsr__arena_take(a, R, sizeof(int32_t));
    ws->row_tm = iadsr__arena_take(a, R, sizeof(int32_t));
    ws->x0 = IADSR__TAKE_R(a, R * d);
    ws->m0 = tr ? IADSR__TAKE_R(a, R * d) : NULL;
    for (int l = 0; l < s->n_layers; l++) {
        if (!tr && l > 0) {
            /* Inference keeps no activations for a backward pass: every
             * layer reuses one set of buffers (a layer reads its input only
             * in the first GEMM, so h may overwrite it afterwards). */
            ws->l[l] = ws->l[0];
            continue;
        }
        ws->l[l].g = IADSR__TAKE_R(a, R * 3 * d);
        ws->l[l].gh = IADSR__TAKE_R(a, R * 3 * d);
        ws->l[l].h = IADSR__TAKE_R(a, R * d);
        ws->l[l].m = tr ? IADSR__TAKE_R(a, R * d) : NULL;
        ws->l[l].y = tr ? IADSR__TAKE_R(a, R * d) : NULL;
    }
    ws->out = IADSR__TAKE_R(a, R * d);
    if (tr) {
        ws->dy = IADSR__TAKE_R(a, R * d);
        ws->dh = IADSR__TAKE_R(a, R * d);
        ws->dgi = IADSR__TAKE_R(a, R * 3 * d);
        ws->dgh = IADSR__TAKE_R(a, R * 3 * d);
        ws->hp = IADSR__TAKE_R(a, R * d);
        ws->wt = IADSR__TAKE_R(a, 3 * d * d);
    } else {
        ws->dy = ws->dh = ws->dgi = ws->dgh = ws->hp = ws->wt = NULL;
    }
}

IADSR__BACKBONE_WS_DEFINE(gru4rec, "GRU4Rec encoder");

/* ---- elementary helpers --------------------------------------------------- */

/* One position: gt holds x W_ih + b_ih (r | z | n) and receives the gate
 * activations, gr = h_prev W_hh + b_hh, hp = h_prev (NULL: 0), ht = h'.
 * Branch-free loops (SIGMOID and TANH inline in the float build) so that
 * the compiler vectorises them; the four rows never overlap (gt, gr and
 * ht are rows of g, gh and h; hp is a row of h of the previous step). */
static void SFX(gru_gates)(REAL *restrict gt, const REAL *restrict gr,
                           const REAL *restrict hp, REAL *restrict ht, int d)
{
    REAL *gz = gt + d, *gn = gt + 2 * d;
    const REAL *rz = gr + d, *rn = gr + 2 * d;
    for (int c = 0; c < d; c++) {
        REAL r = SIGMOID(gt[c] + gr[c]);
        REAL z = SIGMOID(gz[c] + rz[c]);
        REAL nn = TANH(gn[c] + r * rn[c]);
        gt[c] = r;
        gz[c] = z;
        gn[c] = nn;
        ht[c] = nn - z * nn; /* (1 - z) n; + z h_prev below */
    }
    if (hp)
        for (int c = 0; c < d; c++)
            ht[c] += gz[c] * hp[c];
}

/* Every one of the n rows of y (width w) = bias. */
static void SFX(gru_bias_rows)(REAL *y, int n, int w, const REAL *bias)
{
    for (int r = 0; r < n; r++)
        memcpy(y + (size_t)r * (size_t)w, bias, (size_t)w * sizeof(REAL));
}

#include "math/dropout_template.h"

/* ---- one GRU layer ---------------------------------------------------------- */

void SFX(iadsr__gru_layer_fwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const SFX(iadsr__gru_layer_w) *w,
                               REAL *g, REAL *gh, REAL *h)
{
    int R = koff[n_steps], d3 = 3 * d;
    size_t sd = (size_t)d, sd3 = (size_t)d3;
    if (R == 0)
        return;
    /* input projections of every row at once; x is not read after this,
     * so it may alias h (inference) */
    SFX(gru_bias_rows)(g, R, d3, w->b_ih);
    GEMM(0, 0, R, d3, d, (REAL)1, x, d, w->w_ih, d3, (REAL)1, g, d3);
    for (int k = 0; k < n_steps; k++) {
        int t0 = koff[k], n = koff[k + 1] - t0;
        REAL *ghk = gh + (size_t)t0 * sd3;
        /* the previous states of the n active sequences: the first n rows
         * of step k - 1 (none at step 0: the initial state is 0) */
        const REAL *hp = k ? h + (size_t)koff[k - 1] * sd : NULL;
        SFX(gru_bias_rows)(ghk, n, d3, w->b_hh);
        if (hp)
            GEMM(0, 0, n, d3, d, (REAL)1, hp, d, w->w_hh, d3, (REAL)1, ghk,
                 d3);
        for (int j = 0; j < n; j++)
            SFX(gru_gates)(g + (size_t)(t0 + j) * sd3, ghk + (size_t)j * sd3,
                           hp ? hp + (size_t)j * sd : NULL,
                           h + (size_t)(t0 + j) * sd, d);
    }
}

void SFX(iadsr__gru_layer_bwd)(const int32_t *koff, int n_steps, int d,
                               const REAL *x, const SFX(iadsr__gru_layer_w) *w,
                               const REAL *g, const REAL *gh, const REAL *h,
                               REAL *dh, const SFX(iadsr__gru_layer_w) *dw,
                               REAL *dx, REAL *dgi, REAL *dgh, REAL *hp,
                               REAL *wt)
{
    int R = koff[n_steps], d3 = 3 * d;
    size_t sd = (size_t)d, sd3 = (size_t)d3;
    if (R == 0)
        return;
    /* BPTT, the last step first: when step k is reached, dh of its rows
     * holds the output gradient plus everything step k + 1 sent back. */
    SFX(iadsr__transpose)(w->w_hh, d, d3, wt);
    for (int k = n_steps - 1; k >= 0; k--) {
        int t0 = koff[k], n = koff[k + 1] - t0;
        const REAL *hpk = k ? h + (size_t)koff[k - 1] * sd : NULL;
        REAL *dhp = k ? dh + (size_t)koff[k - 1] * sd : NULL;
        for (int j = 0; j < n; j++) {
            size_t t = (size_t)(t0 + j);
            const REAL *gt = g + t * sd3, *ght = gh + t * sd3;
            const REAL *dht = dh + t * sd;
            REAL *dgit = dgi + t * sd3, *dght = dgh + t * sd3;
            for (int c = 0; c < d; c++) {
                REAL r = gt[c], z = gt[d + c], nn = gt[2 * d + c];
                REAL hv = hpk ? hpk[(size_t)j * sd + (size_t)c] : (REAL)0;
                REAL dv = dht[c];
                /* h' = n + z (h - n) */
                REAL dan = dv * ((REAL)1 - z) * ((REAL)1 - nn * nn);
                REAL daz = dv * (hv - nn) * z * ((REAL)1 - z);
                /* n = tanh(a_in + r * ghn) */
                REAL dar = dan * ght[2 * d + c] * r * ((REAL)1 - r);
                dgit[c] = dar;
                dgit[d + c] = daz;
                dgit[2 * d + c] = dan;
                dght[c] = dar;
                dght[d + c] = daz;
                dght[2 * d + c] = dan * r;
                if (dhp)
                    dhp[(size_t)j * sd + (size_t)c] += dv * z;
            }
        }
        /* dh_prev += dgh W_hh^T */
        if (dhp)
            GEMM(0, 0, n, d, d3, (REAL)1, dgh + (size_t)t0 * sd3, d3, wt, d,
                 (REAL)1, dhp, d);
    }
    /* the weights, in one product each over every position */
    SFX(iadsr__colsum_add)(dgi, R, d3, d3, dw->b_ih);
    SFX(iadsr__colsum_add)(dgh, R, d3, d3, dw->b_hh);
    GEMM(1, 0, d, d3, R, (REAL)1, x, d, dgi, d3, (REAL)1, dw->w_ih, d3);
    if (n_steps > 1) {
        /* the previous state of every position from step 1 on, aligned
         * with dgh (step 0 had none: W_hh did not act there) */
        for (int k = 1; k < n_steps; k++)
            memcpy(hp + (size_t)koff[k] * sd, h + (size_t)koff[k - 1] * sd,
                   (size_t)(koff[k + 1] - koff[k]) * sd * sizeof(REAL));
        int r1 = koff[1];
        GEMM(1, 0, d, d3, R - r1, (REAL)1, hp + (size_t)r1 * sd, d,
             dgh + (size_t)r1 * sd3, d3, (REAL)1, dw->w_hh, d3);
    }
    if (dx) {
        SFX(iadsr__transpose)(w->w_ih, d, d3, wt);
        GEMM(0, 0, R, d, d3, (REAL)1, dgi, d3, wt, d, (REAL)0, dx, d);
    }
}

/* ---- encoder ---------------------------------------------------------------- */

/* What layer l reads: the (dropped-out) embeddings, or the output of the
 * layer below (dropped out when masks were drawn). */
static const REAL *SFX(gru_layer_input)(const SFX(iadsr__gru4rec_ws) *ws,
                                        int l)
{
    if (l == 0)
        return ws->x0;
    return ws->drew_masks ? ws->l[l - 1].y : ws->l[l - 1].h;
}

/* The top layer's output in time-major order. */
static const REAL *SFX(gru_top)(const SFX(iadsr__gru4rec_ws) *ws)
{
    int top = ws->shape.n_layers - 1;
    return ws->drew_masks ? ws->l[top].y : ws->l[top].h;
}

static void SFX(gru_forward_impl)(SFX(iadsr__gru4rec_ws) *ws,
                                  const SFX(iadsr__gru4rec_w) *w,
                                  const iadsr__batch *b, iadsr__rng *rng)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d;
    size_t sd = (size_t)d, Rd = (size_t)R * sd;
    int drop = ws->training && rng != NULL && s->dropout > 0;
    ws->drew_masks = drop; /* backward applies exactly the masks drawn here */
    int K = iadsr__gru4rec_schedule(b, ws->max_len, ws->cnt, ws->koff,
                                    ws->tm_row, ws->row_tm);
    ws->n_steps = K;
    for (int t = 0; t < R; t++) {
        memcpy(ws->x0 + (size_t)t * sd,
               w->item_emb + (size_t)b->items[ws->tm_row[t]] * sd,
               sd * sizeof(REAL));
        if (b->scale) {
            REAL sc = (REAL)b->scale[ws->tm_row[t]];
            for (size_t c = 0; c < sd; c++)
                ws->x0[(size_t)t * sd + c] *= sc;
        }
    }
    if (drop) {
        SFX(dropout_mask)(ws->m0, Rd, s->dropout, rng);
        SFX(mul)(ws->x0, ws->x0, ws->m0, Rd);
    }
    for (int l = 0; l < s->n_layers; l++) {
        SFX(iadsr__gru_layer_fwd)(ws->koff, K, d, SFX(gru_layer_input)(ws, l),
                                  &w->lay[l], ws->l[l].g, ws->l[l].gh,
                                  ws->l[l].h);
        if (drop) {
            SFX(dropout_mask)(ws->l[l].m, Rd, s->dropout, rng);
            SFX(mul)(ws->l[l].y, ws->l[l].h, ws->l[l].m, Rd);
        }
    }
}

IADSR__FAMILY_FORWARD(gru4rec)
{
    size_t sd = (size_t)ws->shape.d;
    SFX(gru_forward_impl)(ws, w, b, rng);
    const REAL *top = SFX(gru_top)(ws);
    for (int t = 0; t < b->n_rows; t++)
        memcpy(ws->out + (size_t)ws->tm_row[t] * sd, top + (size_t)t * sd,
               sd * sizeof(REAL));
}

IADSR__FAMILY_FORWARD_LAST(gru4rec)
{
    size_t sd = (size_t)ws->shape.d;
    SFX(gru_forward_impl)(ws, w, b, NULL);
    const REAL *top = SFX(gru_top)(ws);
    for (int q = 0; q < b->n_seq; q++) {
        REAL *o = ws->out + (size_t)q * sd;
        if (b->row_off[q + 1] > b->row_off[q]) {
            int t = ws->row_tm[b->row_off[q + 1] - 1];
            memcpy(o, top + (size_t)t * sd, sd * sizeof(REAL));
        } else {
            memset(o, 0, sd * sizeof(REAL)); /* not a valid input */
        }
    }
}

IADSR__FAMILY_BACKWARD(gru4rec)
{
    const iadsr__shape *s = &ws->shape;
    int R = b->n_rows, d = s->d, K = ws->n_steps;
    size_t sd = (size_t)d, Rd = (size_t)R * sd;
    int drop = ws->drew_masks; /* masks were drawn in forward */
    /* dy: dLoss/d(output of the current layer), time-major */
    for (int t = 0; t < R; t++)
        memcpy(ws->dy + (size_t)t * sd, dh + (size_t)ws->tm_row[t] * sd,
               sd * sizeof(REAL));
    for (int l = s->n_layers - 1; l >= 0; l--) {
        if (drop)
            SFX(mul)(ws->dh, ws->dy, ws->l[l].m, Rd);
        else
            memcpy(ws->dh, ws->dy, Rd * sizeof(REAL));
        /* dy becomes dLoss/d(input of layer l) = output of layer l - 1 */
        SFX(iadsr__gru_layer_bwd)(ws->koff, K, d, SFX(gru_layer_input)(ws, l),
                                  &w->lay[l], ws->l[l].g, ws->l[l].gh,
                                  ws->l[l].h, ws->dh, &g->lay[l], ws->dy,
                                  ws->dgi, ws->dgh, ws->hp, ws->wt);
    }
    /* x0 = drop(E[item]) */
    if (drop)
        SFX(mul)(ws->dy, ws->dy, ws->m0, Rd);
    for (int t = 0; t < R; t++) {
        const REAL *de = ws->dy + (size_t)t * sd;
        REAL *ge = g->item_emb + (size_t)b->items[ws->tm_row[t]] * sd;
        REAL sc = b->scale ? (REAL)b->scale[ws->tm_row[t]] : (REAL)1;
        for (int c = 0; c < d; c++)
            ge[c] += sc * de[c];
        if (b->dscale) {
            const REAL *ei = w->item_emb + (size_t)b->items[ws->tm_row[t]] * sd;
            REAL ds = 0;
            for (int c = 0; c < d; c++)
                ds += de[c] * ei[c];
            b->dscale[ws->tm_row[t]] = (double)ds;
        }
    }
}
