/* Evaluation internals shared with the trainer.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_EVAL_H
#define IADSR_EVAL_H

#include "internal.h"

/* Rank of the held-out item for every user that has one (target TEST:
 * seq[-1] after seq[:-1]; VALID: seq[-2] after seq[:-2]). Allocates
 * *users_out (dataset rows) and *ranks_out, n_out entries each. */
int iadsr__evaluate_ranks(const iadsr_model *m, const iadsr_dataset *d,
                          int target, uint32_t flags, int n_threads,
                          int64_t **users_out, int32_t **ranks_out,
                          int64_t *n_out);
void iadsr__metrics_from_ranks(const int32_t *ranks, int64_t n,
                               iadsr_metrics *out);

#endif
