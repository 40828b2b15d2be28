/* Caser encoder (Tang & Wang, WSDM 2018, as in RecBole's implementation
 * with the output tied to the item table): layers with hand-written
 * backward passes, compiled twice from caser_template.h: in float for
 * production (suffix _f32) and in double for the finite-difference
 * gradient checks (suffix _f64).
 *
 * For every position t of a sequence the image X is the l x d matrix of the
 * embeddings of the last l = caser_window items ending at t (row 0 = the
 * oldest; positions before the start of the sequence are zero vectors, not
 * item_emb[0]). Embeddings are not dropped.
 *   horizontal: for every height h = 1..l, nh filters of size h x d with a
 *     bias, relu, max-pooled over the l - h + 1 offsets -> l * nh values
 *     (ordered by height, then filter);
 *   vertical: nv filters of size l x 1 with a bias per filter and no
 *     activation: out_v[f, :] = sum_i wv[i, f] X[i, :] + bv[f] -> nv * d
 *     values (ordered by filter, then column);
 *   z = drop(concat(out_v, out_h)), h_t = relu(z W + b).
 *
 * The per-user embedding of the paper is deliberately NOT implemented: it
 * is optional there and off by default in this project, and a model with
 * it could not serve users it was not trained on.
 *
 * Tensors, in layout order (the names are part of the checkpoint format):
 *   "item_emb"        [n_items + 1, d]   (first: the trainer and the packed
 *                                          score table use it)
 *   "caser.h<h>.w"    [h * d, nh]  h = 1..l: row k * d + c multiplies
 *                                  X[s + k, c] of the window at offset s
 *   "caser.h<h>.b"    [1, nh]
 *   "caser.v.w"       [l, nv]      row i = the weights of window row i
 *   "caser.v.b"       [1, nv]
 *   "caser.fc.w"      [nv * d + l * nh, d]
 *   "caser.fc.b"      [1, d]
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CASER_H
#define IADSR_CASER_H

#include "iadsr.h"
#include "backbone/model.h"
#include "backbone/batch.h"
#include "backbone/family.h"
#include "backbone/shape.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/rng.h"
#include "math/linear.h" /* the transposes and column sums */

#define IADSR__CASER_MAX_L 64 /* the bound of caser_window (caser_f32.c) */

/* The parameter layout of a (normalised) Caser model (caser_f32.c, the
 * encoder ops' layout) has 1 + 2 l + 4 tensors in the order above. */

/* Standard deviation of the normal initialisation of a Caser weight matrix
 * ("caser.*.w"): fan-in scaled for the convolutions (the variance of
 * PyTorch's default Conv2d initialisation, which RecBole keeps) and Xavier
 * for the fully-connected layer (RecBole's xavier_normal_). */
double iadsr__caser_init_sd(const iadsr__tensor *t);

#define IADSR_DECL_TEMPLATE "backbone/caser_decl_template.h"
#include "math/real_declare.h"

#endif
