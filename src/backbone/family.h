/* libiadsr - what every backbone's layer family shares, for one real type
 * (REAL, SFX: math/real_f32.h): the head of its workspace, the
 * declarations of its common functions and the definitions of the
 * workspace ones. A <BB>_decl_template.h starts its workspace struct
 * SFX(iadsr__<BB>_ws) with IADSR__BACKBONE_WS_HEAD; and, after it and the
 * weight bindings SFX(iadsr__<BB>_w), writes IADSR__BACKBONE_DECLARE(BB);
 * the <BB>_template.h writes IADSR__BACKBONE_WS_DEFINE(BB, "what"); after
 * its static SFX(BB_ws_carve) (math/arena.h) and defines the others with
 * the signature macros IADSR__FAMILY_*. The encoder adapter
 * (IADSR__ENCODER_ADAPTER, encoder.h) calls exactly these functions.
 * SPDX-License-Identifier: MIT
 *
 *   bind(l, base, s, w)      point w into the buffer base (weights, or
 *                            gradients of the same layout) laid out by the
 *                            backbone's layout function for shape s.
 *   ws_init(ws, s, max_rows, max_len, training)
 *                            allocate the workspace for batches of up to
 *                            max_rows rows in which no sequence is longer
 *                            than max_len; training 0 keeps no masks and no
 *                            backward buffers. IADSR_OK or IADSR_ERR_NOMEM.
 *   ws_free(ws)              free it (harmless on a zeroed or freed one).
 *   forward(ws, w, b, rng)   every row of the batch: ws->out, n_rows x d.
 *                            With rng non-NULL, ws->training and dropout
 *                            > 0, dropout masks are drawn from rng; rng
 *                            NULL = inference.
 *   forward_last(ws, w, b)   inference: the output of the last row of
 *                            every sequence only, ws->out n_seq x d.
 *   backward(ws, w, g, b, dh) of the last forward: dh (n_rows x d) is
 *                            dLoss/dOutput and is clobbered; gradients
 *                            are ADDED to g (same layout as the weights).
 */
#ifndef IADSR_FAMILY_H
#define IADSR_FAMILY_H

#include "backbone/batch.h"
#include "backbone/layout.h"
#include "backbone/shape.h"
#include "common/rng.h"

#include <stddef.h>

/* A backbone lists a group of its tensors (a block, a layer) once, in
 * layout order, as X(field, name, rows, cols): the layout appends
 * "<group><i>.<name>" (iadsr__layout_add_member()), the weight binding
 * declares REAL *field with IADSR__W_FIELD and bind assigns the fields in
 * the same order with IADSR__W_BIND. */
#define IADSR__W_FIELD(field, name, rows, cols) REAL *field;
/* Needs `dst` (the group's bindings), `base` and `t` (the group's next
 * tensor) in scope. */
#define IADSR__W_BIND(field, name, rows, cols)                                 \
    dst->field = base + (t++)->offset;

/* The first members of every workspace struct. */
#define IADSR__BACKBONE_WS_HEAD                                                \
    iadsr__shape shape;                                                        \
    int max_rows, max_len; /* the batches it serves (both >= 1) */             \
    int training;   /* masks and backward buffers present */                  \
    int drew_masks; /* the last forward drew dropout masks */                  \
    void *block     /* the one allocation (math/arena.h) */

/* The signatures of the common functions, written once for the
 * declarations (IADSR__BACKBONE_DECLARE) and the definitions: a template
 * defines e.g. forward as IADSR__FAMILY_FORWARD(BB) { ... }, with the
 * parameter names of the list above. */
#define IADSR__FAMILY_BIND(BB)                                                 \
    void SFX(iadsr__##BB##_bind)(const iadsr__layout *l, REAL *base,           \
                                 const iadsr__shape *s,                        \
                                 SFX(iadsr__##BB##_w) *w)
#define IADSR__FAMILY_WS_INIT(BB)                                              \
    int SFX(iadsr__##BB##_ws_init)(SFX(iadsr__##BB##_ws) *ws,                  \
                                   const iadsr__shape *s, int max_rows,        \
                                   int max_len, int training)
#define IADSR__FAMILY_WS_FREE(BB)                                              \
    void SFX(iadsr__##BB##_ws_free)(SFX(iadsr__##BB##_ws) *ws)
#define IADSR__FAMILY_FORWARD(BB)                                              \
    void SFX(iadsr__##BB##_forward)(SFX(iadsr__##BB##_ws) *ws,                 \
                                    const SFX(iadsr__##BB##_w) *w,             \
                                    const iadsr__batch *b, iadsr__rng *rng)
#define IADSR__FAMILY_FORWARD_LAST(BB)                                         \
    void SFX(iadsr__##BB##_forward_last)(SFX(iadsr__##BB##_ws) *ws,            \
                                         const SFX(iadsr__##BB##_w) *w,        \
                                         const iadsr__batch *b)
#define IADSR__FAMILY_BACKWARD(BB)                                             \
    void SFX(iadsr__##BB##_backward)(SFX(iadsr__##BB##_ws) *ws,                \
                                     const SFX(iadsr__##BB##_w) *w,            \
                                     SFX(iadsr__##BB##_w) *g,                  \
                                     const iadsr__batch *b, REAL *dh)

#define IADSR__BACKBONE_DECLARE(BB)                                            \
    IADSR__FAMILY_BIND(BB);                                                    \
    IADSR__FAMILY_WS_INIT(BB);                                                 \
    IADSR__FAMILY_WS_FREE(BB);                                                 \
    IADSR__FAMILY_FORWARD(BB);                                                 \
    IADSR__FAMILY_FORWARD_LAST(BB);                                            \
    IADSR__FAMILY_BACKWARD(BB)

/* ws_init and ws_free: the head is set before the carve function
 * SFX(BB_ws_carve) sizes the buffers from it; @p what starts the
 * out-of-memory message. */
#define IADSR__BACKBONE_WS_DEFINE(BB, what)                                    \
    IADSR__FAMILY_WS_INIT(BB)                                                  \
    {                                                                          \
        memset(ws, 0, sizeof *ws);                                             \
        ws->shape = *s;                                                        \
        ws->max_rows = max_rows < 1 ? 1 : max_rows;                            \
        ws->max_len = max_len < 1 ? 1 : max_len;                               \
        ws->training = training;                                               \
        return iadsr__arena_alloc(&ws->block, SFX(BB##_ws_carve), ws, what);   \
    }                                                                          \
                                                                               \
    IADSR__FAMILY_WS_FREE(BB)                                                  \
    {                                                                          \
        if (ws)                                                                \
            iadsr__arena_release(ws, sizeof *ws, ws->block);                   \
    }                                                                          \
    _Static_assert(offsetof(SFX(iadsr__##BB##_ws), shape) == 0,                \
                   "the workspace starts with IADSR__BACKBONE_WS_HEAD")

#endif /* IADSR_FAMILY_H */
