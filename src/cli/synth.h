/* libiadsr internal: deterministic synthetic interaction data with latent
 * interests (used by the `iadsr synth` command and by tests/benchmarks).
 * SPDX-License-Identifier: MIT
 *
 * Generative story (all decisions driven by the library RNG, integer
 * thresholds only, so the same seed gives the same bytes on every machine):
 * - items 1..n_items are split evenly over n_topics contiguous topics;
 * - each topic has a fixed item chain: a seeded random permutation of its
 *   items, closed into a cycle (successor of the last is the first);
 * - within a topic, popularity is Zipf-like: the topic's r-th item (in id
 *   order, r = 0, 1, ...) has integer weight floor(2^20 / (r + 1));
 * - every user has 1 or 2 preferred topics and a length uniform in
 *   [min_len, max_len]; the first item is drawn from a preferred topic;
 *   each next item is, with probability p_follow, the chain successor of
 *   the previous item; else with probability p_topic a popularity-weighted
 *   item of one of the user's preferred topics; else with probability
 *   p_popular an item of the global popularity ranking (Zipf-like over all
 *   items, in a seeded random order of ids: a few items that most users
 *   share, whatever their topics); else a uniformly random item (noise).
 * User u's sequence depends only on (seed, u, params), not on n_users.
 */
#ifndef IADSR_SYNTH_H
#define IADSR_SYNTH_H

#include <stdint.h>

typedef struct iadsr__synth_params {
    int64_t n_users;  /* 1..100000000; default 3000 */
    int32_t n_items;  /* n_topics..(2^31-2); default 600 */
    int32_t n_topics; /* 1..n_items; default 12 */
    int32_t min_len;  /* 1..max_len; default 5 */
    int32_t max_len;  /* min_len..1000000; default 30 */
    float p_follow;   /* [0,1]; default 0.55 */
    float p_topic;    /* [0,1], p_follow + p_topic <= 1; default 0.35 */
    uint64_t seed;    /* default 1 */
    float p_popular;  /* [0,1], p_follow + p_topic + p_popular <= 1;
                         default 0 (0 draws nothing more: the data of the
                         other options stays byte-identical) */
} iadsr__synth_params;

/* Fill @p p with the defaults (NULL is a no-op). */
void iadsr__synth_params_init(iadsr__synth_params *p);

/* Generate the sequences in CSR form: user u's items are
 * (*items_out)[(*offsets_out)[u] .. (*offsets_out)[u+1]), ids 1..n_items.
 * Arrays are allocated with iadsr__malloc; the caller frees them with
 * iadsr__free. On failure the out-params are set to NULL / 0.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG (bad params, with a message),
 * IADSR_ERR_NOMEM. */
int iadsr__synth_generate(const iadsr__synth_params *p, int32_t **items_out,
                          int64_t **offsets_out, int64_t *n_users_out);

#endif /* IADSR_SYNTH_H */
