/* libiadsr: deterministic synthetic interaction data (see synth.h).
 * SPDX-License-Identifier: MIT
 *
 * Determinism: only the library RNG (iadsr__rng_*) and integer arithmetic
 * drive decisions. Probabilities are turned once into integer thresholds on
 * a 2^24 scale (float -> double and multiplication by a power of two are
 * exact, truncation is exact), and each decision compares the top 24 bits
 * of one 64-bit draw with them. Popularity weights are integers.
 */
#include "cli/synth.h"

#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/rng.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define SYNTH_MAX_USERS INT64_C(100000000)
#define SYNTH_MAX_LEN 1000000
#define SYNTH_MAX_ITEMS INT32_C(2147483646)
#define SYNTH_PROB_BITS 24
#define SYNTH_PROB_ONE (UINT32_C(1) << SYNTH_PROB_BITS)
#define SYNTH_ZIPF_SCALE (UINT64_C(1) << 20)

static const iadsr__synth_params synth_defaults = {
    3000,  /* n_users */
    600,   /* n_items */
    12,    /* n_topics */
    5,     /* min_len */
    30,    /* max_len */
    0.55f, /* p_follow */
    0.35f, /* p_topic */
    1,     /* seed */
    0.0f   /* p_popular */
};

void iadsr__synth_params_init(iadsr__synth_params *p)
{
    if (p)
        *p = synth_defaults;
}

/* splitmix64 finaliser: decorrelates per-user seeds. */
static uint64_t synth_mix64(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t synth_user_seed(uint64_t seed, int64_t u)
{
    return synth_mix64(synth_mix64(seed ^ UINT64_C(0x7573657273656564)) +
                       (uint64_t)u);
}

/* Probability in [0,1] -> integer threshold in [0, 2^24]. */
static uint32_t synth_threshold(float p)
{
    return (uint32_t)((double)p * (double)SYNTH_PROB_ONE);
}

static uint32_t synth_draw24(iadsr__rng *r)
{
    return (uint32_t)(iadsr__rng_u64(r) >> (64 - SYNTH_PROB_BITS));
}

static int synth_check(const iadsr__synth_params *p)
{
    if (!p)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "synth: params is NULL");
    if (p->n_users < 1 || p->n_users > SYNTH_MAX_USERS)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: n_users %lld outside 1..%lld",
                          (long long)p->n_users, (long long)SYNTH_MAX_USERS);
    if (p->n_items < 1 || p->n_items > SYNTH_MAX_ITEMS)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: n_items %ld outside 1..%ld",
                          (long)p->n_items, (long)SYNTH_MAX_ITEMS);
    if (p->n_topics < 1 || p->n_topics > p->n_items)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: n_topics %ld outside 1..n_items (%ld)",
                          (long)p->n_topics, (long)p->n_items);
    if (p->min_len < 1 || p->min_len > SYNTH_MAX_LEN)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: min_len %ld outside 1..%ld",
                          (long)p->min_len, (long)SYNTH_MAX_LEN);
    if (p->max_len < p->min_len || p->max_len > SYNTH_MAX_LEN)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: max_len %ld outside min_len..%ld (%ld..%ld)",
                          (long)p->max_len, (long)SYNTH_MAX_LEN,
                          (long)p->min_len, (long)SYNTH_MAX_LEN);
    if (!isfinite(p->p_follow) || p->p_follow < 0.0f || p->p_follow > 1.0f)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: p_follow %g outside [0,1]",
                          (double)p->p_follow);
    if (!isfinite(p->p_topic) || p->p_topic < 0.0f || p->p_topic > 1.0f)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: p_topic %g outside [0,1]",
                          (double)p->p_topic);
    if (!isfinite(p->p_popular) || p->p_popular < 0.0f || p->p_popular > 1.0f)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: p_popular %g outside [0,1]",
                          (double)p->p_popular);
    if (synth_threshold(p->p_follow) + synth_threshold(p->p_topic) +
            synth_threshold(p->p_popular) >
        SYNTH_PROB_ONE)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: p_follow + p_topic + p_popular = %g "
                          "exceeds 1",
                          (double)p->p_follow + (double)p->p_topic +
                              (double)p->p_popular);
    if (synth_threshold(p->p_follow) + synth_threshold(p->p_topic) >
        SYNTH_PROB_ONE)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: p_follow + p_topic = %g exceeds 1",
                          (double)p->p_follow + (double)p->p_topic);
    return IADSR_OK;
}

/* Generation state shared by all users (read-only after setup). */
typedef struct synth_world {
    int32_t n_items;
    int32_t n_topics;
    int32_t *topic_start; /* n_topics + 1: topic t = ids topic_start[t]+1 ..
                             topic_start[t+1] */
    int32_t *succ;        /* n_items + 1: chain successor of each item */
    int32_t *topic_of;    /* n_items + 1 */
    uint64_t *zipf_cum;   /* max topic size: cumulative integer weights */
    uint64_t *pop_cum;    /* n_items cumulative weights of the global ranking,
                             or NULL when p_popular is 0 */
    int32_t *pop_item;    /* n_items: the item of each global rank */
} synth_world;

static void synth_world_free(synth_world *w)
{
    IADSR__FREE_ALL(w->topic_start, w->succ, w->topic_of, w->zipf_cum,
                    w->pop_cum, w->pop_item);
    w->topic_start = w->succ = w->topic_of = w->pop_item = NULL;
    w->zipf_cum = w->pop_cum = NULL;
}

/* The global popularity ranking: weights 2^20 / (rank + 1) over all items,
 * ranks given to ids by a seeded shuffle (so that popularity does not
 * follow the topics, which are contiguous ids). */
static int synth_popular_build(synth_world *w, const iadsr__synth_params *p)
{
    iadsr__rng rng;
    w->pop_cum = iadsr__malloc((size_t)p->n_items * sizeof(uint64_t));
    w->pop_item = iadsr__malloc((size_t)p->n_items * sizeof(int32_t));
    if (!w->pop_cum || !w->pop_item) {
        synth_world_free(w);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "synth: out of memory for %ld items",
                          (long)p->n_items);
    }
    uint64_t acc = 0;
    for (int32_t r = 0; r < p->n_items; r++) {
        uint64_t wt = SYNTH_ZIPF_SCALE / ((uint64_t)r + 1u);
        acc += wt ? wt : 1u;
        w->pop_cum[r] = acc;
        w->pop_item[r] = r + 1;
    }
    iadsr__rng_seed(&rng, synth_mix64(p->seed ^ UINT64_C(0x706f70756c6172)));
    for (int32_t i = p->n_items - 1; i > 0; i--) {
        int32_t j = (int32_t)iadsr__rng_below(&rng, (uint64_t)i + 1u);
        int32_t tmp = w->pop_item[i];
        w->pop_item[i] = w->pop_item[j];
        w->pop_item[j] = tmp;
    }
    return IADSR_OK;
}

static int synth_world_build(synth_world *w, const iadsr__synth_params *p)
{
    iadsr__rng rng;
    int32_t *perm = NULL;
    int32_t max_size = 0;
    size_t n1 = (size_t)p->n_items + 1u; /* n_items <= 2^31-2: no overflow */

    w->n_items = p->n_items;
    w->n_topics = p->n_topics;
    w->topic_start = iadsr__malloc(((size_t)p->n_topics + 1u) * sizeof(int32_t));
    w->succ = iadsr__calloc(n1, sizeof(int32_t));
    w->topic_of = iadsr__calloc(n1, sizeof(int32_t));
    perm = iadsr__malloc(n1 * sizeof(int32_t));
    if (!w->topic_start || !w->succ || !w->topic_of || !perm) {
        iadsr__free(perm);
        synth_world_free(w);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "synth: out of memory for %ld items",
                          (long)p->n_items);
    }
    for (int32_t t = 0; t <= p->n_topics; t++)
        w->topic_start[t] =
            (int32_t)((int64_t)t * p->n_items / p->n_topics);
    for (int32_t t = 0; t < p->n_topics; t++) {
        int32_t sz = w->topic_start[t + 1] - w->topic_start[t];
        if (sz > max_size)
            max_size = sz;
    }
    w->zipf_cum = iadsr__malloc((size_t)max_size * sizeof(uint64_t));
    if (!w->zipf_cum) {
        iadsr__free(perm);
        synth_world_free(w);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "synth: out of memory for %ld items",
                          (long)p->n_items);
    }
    {
        uint64_t acc = 0;
        for (int32_t r = 0; r < max_size; r++) {
            uint64_t wt = SYNTH_ZIPF_SCALE / ((uint64_t)r + 1u);
            acc += wt ? wt : 1u;
            w->zipf_cum[r] = acc;
        }
    }

    /* Chains: a seeded Fisher-Yates permutation within each topic, closed
     * into a cycle. */
    iadsr__rng_seed(&rng, synth_mix64(p->seed ^ UINT64_C(0x636861696e73)));
    for (int32_t t = 0; t < p->n_topics; t++) {
        int32_t lo = w->topic_start[t], hi = w->topic_start[t + 1];
        int32_t sz = hi - lo;
        int32_t *pp = perm + lo;
        for (int32_t i = 0; i < sz; i++)
            pp[i] = lo + 1 + i;
        for (int32_t i = sz - 1; i > 0; i--) {
            int32_t j = (int32_t)iadsr__rng_below(&rng, (uint64_t)i + 1u);
            int32_t tmp = pp[i];
            pp[i] = pp[j];
            pp[j] = tmp;
        }
        for (int32_t i = 0; i < sz; i++) {
            w->succ[pp[i]] = pp[(i + 1 < sz) ? i + 1 : 0];
            w->topic_of[pp[i]] = t;
        }
    }
    iadsr__free(perm);
    return p->p_popular > 0.0f ? synth_popular_build(w, p) : IADSR_OK;
}

/* Rank drawn from the first @p n cumulative weights @p cum. */
static int32_t synth_draw_rank(const uint64_t *cum, int32_t n, iadsr__rng *r)
{
    uint64_t x = iadsr__rng_below(r, cum[n - 1]);
    int32_t a = 0, b = n - 1; /* smallest k with cum[k] > x */
    while (a < b) {
        int32_t mid = a + (b - a) / 2;
        if (cum[mid] > x)
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

/* Popularity-weighted item of topic @p t. */
static int32_t synth_topic_item(const synth_world *w, iadsr__rng *r, int32_t t)
{
    int32_t lo = w->topic_start[t];
    int32_t sz = w->topic_start[t + 1] - lo;
    return lo + 1 + synth_draw_rank(w->zipf_cum, sz, r);
}

static int32_t synth_user_len(const iadsr__synth_params *p, iadsr__rng *r)
{
    uint64_t span = (uint64_t)(p->max_len - p->min_len) + 1u;
    return p->min_len + (int32_t)iadsr__rng_below(r, span);
}

/* Writes exactly synth_user_len() items (same seed, same first draw). */
static void synth_user(const synth_world *w, const iadsr__synth_params *p,
                       int64_t u, int32_t *out)
{
    iadsr__rng r;
    int32_t topics[2];
    int n_pref = 1;
    uint32_t thr_follow = synth_threshold(p->p_follow);
    uint32_t thr_topic = thr_follow + synth_threshold(p->p_topic);
    uint32_t thr_popular = thr_topic + synth_threshold(p->p_popular);
    int32_t len;

    iadsr__rng_seed(&r, synth_user_seed(p->seed, u));
    len = synth_user_len(p, &r);
    topics[0] = (int32_t)iadsr__rng_below(&r, (uint64_t)w->n_topics);
    topics[1] = topics[0];
    if (w->n_topics >= 2 && iadsr__rng_below(&r, 2) == 1) {
        n_pref = 2;
        topics[1] = (int32_t)(((uint64_t)topics[0] + 1u +
                               iadsr__rng_below(&r, (uint64_t)w->n_topics - 1u)) %
                              (uint64_t)w->n_topics);
    }
    out[0] = synth_topic_item(w, &r, topics[iadsr__rng_below(&r, (uint64_t)n_pref)]);
    for (int32_t i = 1; i < len; i++) {
        uint32_t x = synth_draw24(&r);
        if (x < thr_follow)
            out[i] = w->succ[out[i - 1]];
        else if (x < thr_topic)
            out[i] = synth_topic_item(
                w, &r, topics[iadsr__rng_below(&r, (uint64_t)n_pref)]);
        else if (x < thr_popular)
            out[i] = w->pop_item[synth_draw_rank(w->pop_cum, w->n_items, &r)];
        else
            out[i] = 1 + (int32_t)iadsr__rng_below(&r, (uint64_t)w->n_items);
    }
}

int iadsr__synth_generate(const iadsr__synth_params *p, int32_t **items_out,
                          int64_t **offsets_out, int64_t *n_users_out)
{
    synth_world w = {0, 0, NULL, NULL, NULL, NULL, NULL, NULL};
    int64_t *offsets = NULL;
    int32_t *items = NULL;
    int64_t total = 0;
    int rc;

    if (items_out)
        *items_out = NULL;
    if (offsets_out)
        *offsets_out = NULL;
    if (n_users_out)
        *n_users_out = 0;
    if (!items_out || !offsets_out || !n_users_out)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "synth: an output pointer is NULL");
    rc = synth_check(p);
    if (rc != IADSR_OK)
        return rc;

    /* n_users <= 1e8, so (n_users + 1) * 8 fits size_t on 32-bit too. */
    offsets = iadsr__malloc(((size_t)p->n_users + 1u) * sizeof(int64_t));
    if (!offsets)
        return iadsr__err(IADSR_ERR_NOMEM, "synth: out of memory for %lld users",
                          (long long)p->n_users);
    offsets[0] = 0;
    for (int64_t u = 0; u < p->n_users; u++) {
        iadsr__rng r;
        iadsr__rng_seed(&r, synth_user_seed(p->seed, u));
        total += synth_user_len(p, &r); /* <= 1e8 * 1e6: fits int64 */
        offsets[u + 1] = total;
    }
    if ((uint64_t)total > (uint64_t)(SIZE_MAX / sizeof(int32_t))) {
        iadsr__free(offsets);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "synth: %lld interactions do not fit in memory",
                          (long long)total);
    }
    items = iadsr__malloc((size_t)total * sizeof(int32_t));
    if (!items) {
        iadsr__free(offsets);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "synth: out of memory for %lld interactions",
                          (long long)total);
    }
    rc = synth_world_build(&w, p);
    if (rc != IADSR_OK) {
        iadsr__free(items);
        iadsr__free(offsets);
        return rc;
    }
    for (int64_t u = 0; u < p->n_users; u++)
        synth_user(&w, p, u, items + offsets[u]);
    synth_world_free(&w);

    *items_out = items;
    *offsets_out = offsets;
    *n_users_out = p->n_users;
    return IADSR_OK;
}
