/* libiadsr - the model handle: hyper-parameters, the parameter layout of
 * its backbone and the weights (model.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_MODEL_H
#define IADSR_MODEL_H

#include "iadsr.h"
#include "backbone/layout.h"

#include <stddef.h>
#include <stdint.h>

/* The external ids of a model's items (iadsr_model_with_item_ids, format
 * 1.4): immutable once built and shared, refcounted, by the models that
 * carry them (a trainer's snapshots share those of its initial model). */
typedef struct iadsr__item_ids {
    int refcount; /* atomic */
    int32_t n;    /* = n_items of the models carrying it */
    char *pool;   /* the ids in item order, each NUL-terminated */
    size_t *pos;  /* n + 1: id of item i at pool + pos[i - 1]; pos[n] is
                     the pool's size */
    int32_t *slot; /* open-addressing hash table: item or 0 = empty */
    size_t mask;   /* table size - 1 (a power of two >= 2n) */
} iadsr__item_ids;

/* Byte rules of an external id (iadsr.h, docs/FORMAT.md §4.6). */
#define IADSR__ITEM_ID_MAX 1024

/* Why a list of ids was refused (iadsr__item_ids_new). */
enum {
    IADSR__IDS_OK,
    IADSR__IDS_EMPTY,     /* id of index is empty */
    IADSR__IDS_TOO_LONG,  /* longer than IADSR__ITEM_ID_MAX (other: length) */
    IADSR__IDS_BAD_BYTE,  /* NUL/TAB/CR/LF at byte other (value: byte) */
    IADSR__IDS_DUPLICATE, /* same id as index other (earlier) */
    IADSR__IDS_NOMEM
};
typedef struct iadsr__ids_fault {
    int kind;
    int32_t index; /* 0-based index of the offending id */
    int64_t other;
    int byte;
} iadsr__ids_fault;

/* The bytes of id @p i (0-based) and their count. */
typedef const uint8_t *(*iadsr__id_get_fn)(const void *ctx, int32_t i,
                                           size_t *len);

/* Build the table of the @p n ids that @p get returns (checked: the byte
 * rules and distinctness). Returns IADSR_OK, or with *out NULL and @p f
 * filled: IADSR_ERR_INVALID_ARG (the caller words the message) or
 * IADSR_ERR_NOMEM (set). No error message is set for a fault. */
int iadsr__item_ids_new(iadsr__item_ids **out, int32_t n, iadsr__id_get_fn get,
                        const void *ctx, iadsr__ids_fault *f);
iadsr__item_ids *iadsr__item_ids_ref(const iadsr__item_ids *ids);
void iadsr__item_ids_unref(iadsr__item_ids *ids);
/* Sum of the ids' lengths (their bytes without terminators). */
uint64_t iadsr__item_ids_bytes(const iadsr__item_ids *ids);
/* Item of id @p s (@p len bytes), 0 when unknown. */
int32_t iadsr__item_ids_find(const iadsr__item_ids *ids, const char *s,
                             size_t len);

struct iadsr_model {
    uint32_t magic;
    int refcount; /* atomic */
    iadsr_model_params hp; /* validated and normalised */
    iadsr__layout layout;
    float *w; /* layout.n_floats floats, 64-byte aligned; gaps are zero */
    /* Item table transposed and packed for the AVX-512 scoring kernels
     * (xent.c layout), or NULL when they are not used on this CPU. Built by
     * iadsr__model_finalize() once the weights are final. */
    float *et;
    int ldt;
    /* training provenance, stored in checkpoints (informational) */
    int32_t epochs_trained;
    float best_valid_ndcg10; /* NaN if unknown */
    /* format 1.4: whether some training sequence held an item twice
     * (1, 0; -1 unknown), and the items' external ids (NULL: none) */
    int32_t history_repeats;
    iadsr__item_ids *ids;
};

/* The parameter layout of the backbone of normalised params @p hp (its
 * ops->layout). Returns IADSR_OK or IADSR_ERR_UNSUPPORTED /
 * IADSR_ERR_INVALID_ARG. */
int iadsr__model_layout(const iadsr_model_params *hp, iadsr__layout *out);
/* Allocate a model with zeroed weights for params @p p (validated and
 * normalised here). Does not initialise weights. */
int iadsr__model_alloc(iadsr_model **out, const iadsr_model_params *p);
/* Derived read-only data (the packed item table) from final weights; call
 * once after filling m->w and before publishing the model. */
int iadsr__model_finalize(iadsr_model *m);
iadsr_model *iadsr__model_ref(const iadsr_model *m);
int iadsr__model_ok(const iadsr_model *m);

#endif /* IADSR_MODEL_H */
