/* libiadsr - the dataset handle: user sequences in CSR form (dataset.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_DATASET_H
#define IADSR_DATASET_H

#include "iadsr.h"

#include <stdint.h>

struct iadsr_dataset {
    uint32_t magic;
    int refcount; /* atomic (__atomic builtins) */
    int32_t n_items;
    int64_t n_users;
    const int32_t *items;   /* n_interactions ids, 1..n_items */
    const int64_t *offsets; /* n_users + 1 */
    const int64_t *user_ids;/* n_users, or NULL: row index is the id */
    void *owned_items;      /* freed with the dataset (NULL if borrowed) */
    void *owned_offsets;
    void *owned_user_ids;
};
iadsr_dataset *iadsr__dataset_ref(const iadsr_dataset *d);
void iadsr__dataset_unref(iadsr_dataset *d);
int iadsr__dataset_ok(const iadsr_dataset *d); /* magic check */
/* IADSR_OK when every item id of @p d is in 1..@p n_items, else
 * IADSR_ERR_DIM_MISMATCH "<what>: dataset has item ids up to X but <holder>
 * N items" (holder: e.g. "the model has"). */
int iadsr__dataset_fits(const iadsr_dataset *d, int32_t n_items,
                        const char *what, const char *holder);

#endif /* IADSR_DATASET_H */
