/* Evaluation internals shared with the trainer.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_EVAL_H
#define IADSR_EVAL_H

#include "iadsr.h"

/* Rank of the held-out item for every user that has one (target TEST:
 * seq[-1] after seq[:-1]; VALID: seq[-2] after seq[:-2]). Allocates
 * *users_out (dataset rows) and *ranks_out, n_out entries each. */
int iadsr__evaluate_ranks(const iadsr_model *m, const iadsr_dataset *d,
                          int target, uint32_t flags, int n_threads,
                          int64_t **users_out, int32_t **ranks_out,
                          int64_t *n_out);
void iadsr__metrics_from_ranks(const int32_t *ranks, int64_t n,
                               iadsr_metrics *out);
/* The caller's @p out checked up front (its struct_size), so that a bad one
 * fails before any work; @p what names it in messages. */
int iadsr__metrics_out_check(iadsr_metrics *out, const char *what);
/* The metrics of @p n ranks written to the caller's @p out, up to the
 * smaller of its struct_size and the library's size. */
int iadsr__metrics_out(iadsr_metrics *out, const int32_t *ranks, int64_t n,
                       const char *what);

/* The driver shared by every recommender that is evaluated (models, the
 * text-only scorer): picks the users with a target, splits them into
 * contiguous ranges, one per worker thread, and lets @p fn write the rank of
 * users[i] into ranks[i] for i in [begin, end). @p cut is 1 (test target)
 * or 2 (validation target). fn returns a status and sets the last error;
 * it runs on worker threads, so it must only touch its own range. Results
 * do not depend on the thread count. Allocates *users_out and *ranks_out. */
typedef int (*iadsr__rank_fn)(void *arg, const iadsr_dataset *d,
                              const int64_t *users, int64_t begin,
                              int64_t end, int cut, uint32_t flags,
                              int32_t *ranks);
int iadsr__rank_users(const iadsr_dataset *d, int cut, uint32_t flags,
                      int n_threads, iadsr__rank_fn fn, void *arg,
                      const char *what, int64_t **users_out,
                      int32_t **ranks_out, int64_t *n_out);

/* Rank of target @p t among scores sc[1..n_items]: the other items scoring
 * at least as high (ties count against the target); with IADSR_TOPK_EXCLUDE_HISTORY the @p h history items are set
 * to -INFINITY first (sc is modified) but the target stays a candidate. A
 * NaN target score ranks last. */
int32_t iadsr__target_rank(float *sc, int32_t n_items, const int32_t *hist,
                           int32_t h, int32_t t, uint32_t flags);

#endif
