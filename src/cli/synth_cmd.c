/* iadsr command-line tool: `iadsr synth`.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include "iadsr.h"
#include "common/alloc.h"
#include "data/dataset.h"
#include "cli/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char synth_help[] =
    "Usage: iadsr synth --out FILE [--users N] [--items M] [--topics T]\n"
    "                   [--min-len A] [--max-len B] [--seed S]\n"
    "                   [--p-follow P] [--p-topic P] [--p-popular P]\n"
    "                   [--quiet]\n"
    "                   [--semantic-out SEM.npy [--semantic-dim D]\n"
    "                    [--semantic-noise X]]\n"
    "\n"
    "Write a deterministic synthetic dataset with latent interests: items\n"
    "are split evenly over T topics, each topic has a fixed item chain. Each\n"
    "user has 1-2 preferred topics; the next item follows the chain of the\n"
    "previous one with probability p-follow, is a popular item of a\n"
    "preferred topic with probability p-topic, an item of the global\n"
    "popularity ranking with probability p-popular, and otherwise is\n"
    "uniform noise. Lines are 'user_id item item ...' with user ids 0..N-1 and item\n"
    "ids 1..M. The same options give the same bytes on every machine. The\n"
    "file is written atomically (temporary file + rename).\n"
    "\n"
    "Options:\n"
    "  --out FILE      output file (required)\n"
    "  --users N       number of users, 1..100000000 (default 3000)\n"
    "  --items M       number of items (default 600)\n"
    "  --topics T      number of topics, 1..M (default 12)\n"
    "  --min-len A     shortest sequence, >= 1 (default 5)\n"
    "  --max-len B     longest sequence, A..1000000 (default 30)\n"
    "  --seed S        random seed, 0..2^64-1 (default 1)\n"
    "  --p-follow P    probability of following the chain (default 0.55)\n"
    "  --p-topic P     probability of a preferred-topic item (default 0.35)\n"
    "  --p-popular P   probability of an item of one global popularity\n"
    "                  ranking shared by all users (Zipf-like over all\n"
    "                  items; default 0). p-follow + p-topic +\n"
    "                  p-popular <= 1. Long histories over a small,\n"
    "                  dense catalogue, e.g. --items 1500 --min-len 80\n"
    "                  --max-len 120 --p-follow 0.4 --p-topic 0.2\n"
    "                  --p-popular 0.3\n"
    "  --quiet         do not print the summary line\n"
    "  --semantic-out SEM.npy\n"
    "                  also write semantic item vectors (float32 .npy,\n"
    "                  (M + 1) x D, row i = item i, row 0 = zeros: the\n"
    "                  padded layout of 'iadsr embed-text'). Each topic gets\n"
    "                  a random Gaussian unit direction; item i's row is its\n"
    "                  topic's direction + X * Gaussian noise / sqrt(D).\n"
    "                  Deterministic for --seed.\n"
    "  --semantic-dim D    width D, 1..65536 (default 16)\n"
    "  --semantic-noise X  noise scale X, 0..1000 (default 0.3)\n";

typedef struct synth_out {
    const int32_t *items;
    const int64_t *offsets;
    int64_t n_users;
} synth_out;

static void write_lines(iadsr__atomic_file *f, const void *ctx)
{
    const synth_out *s = ctx;
    for (int64_t u = 0; u < s->n_users; u++)
        if (cli_put_seq(f, (uint64_t)u, s->items + s->offsets[u],
                        s->offsets[u + 1] - s->offsets[u]) != 0)
            return;
}

/* Semantic item vectors for the generated items: row i (i = 1..n_items)
 * = the unit Gaussian direction of item i's topic + noise * N(0, I) /
 * sqrt(D); row 0 = zeros (the padded layout of `iadsr embed-text`).
 * Returns NULL when out of memory. */
static float *semantic_rows(int32_t n_items, int32_t n_topics, int32_t dim,
                            double noise, uint64_t seed)
{
    const size_t d = (size_t)dim;
    float *rows = calloc(((size_t)n_items + 1u) * d, sizeof *rows);
    double *dir = malloc((size_t)n_topics * d * sizeof *dir);
    iadsr__rng rng;
    double scale = noise / sqrt((double)dim);

    if (!rows || !dir) {
        free(rows);
        free(dir);
        return NULL;
    }
    /* a stream of its own, so the sequences do not depend on it */
    iadsr__rng_seed(&rng, seed ^ UINT64_C(0x53454d414e544943));
    for (int32_t t = 0; t < n_topics; t++) {
        double *v = dir + (size_t)t * d, norm = 0.0;
        do {
            norm = 0.0;
            for (size_t j = 0; j < d; j++) {
                v[j] = cli_rng_normal(&rng);
                norm += v[j] * v[j];
            }
        } while (!(norm > 1e-12)); /* practically never loops */
        norm = sqrt(norm);
        for (size_t j = 0; j < d; j++)
            v[j] /= norm;
    }
    /* items 1..n_items are split evenly over the topics as src/synth.c
     * does: topic t holds ids t*n/T + 1 .. (t+1)*n/T */
    for (int32_t t = 0; t < n_topics; t++) {
        int32_t lo = (int32_t)((int64_t)t * n_items / n_topics);
        int32_t hi = (int32_t)((int64_t)(t + 1) * n_items / n_topics);
        const double *v = dir + (size_t)t * d;
        for (int32_t i = lo + 1; i <= hi; i++) {
            float *row = rows + (size_t)i * d;
            for (size_t j = 0; j < d; j++)
                row[j] = (float)(v[j] + scale * cli_rng_normal(&rng));
        }
    }
    free(dir);
    return rows;
}

int cmd_synth(int argc, char **argv)
{
    static const char *cmd = "synth";
    const char *out = NULL;
    int64_t users = 3000, items = 600, topics = 12, min_len = 5, max_len = 30;
    uint64_t seed = 1;
    double p_follow = 0.55, p_topic = 0.35, p_popular = 0.0;
    int quiet = 0;
    const char *sem_out = NULL;
    int64_t sem_dim = 16;
    double sem_noise = 0.3;
    cli_opt opts[] = {
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_I64("users", &users, 1, 100000000, 0),
        CLI_I64("items", &items, 1, INT32_MAX - 1, 0),
        CLI_I64("topics", &topics, 1, INT32_MAX - 1, 0),
        CLI_I64("min-len", &min_len, 1, 1000000, 0),
        CLI_I64("max-len", &max_len, 1, 1000000, 0),
        CLI_U64("seed", &seed, 0),
        CLI_DBL("p-follow", &p_follow, 0.0, 1.0, 0),
        CLI_DBL("p-topic", &p_topic, 0.0, 1.0, 0),
        CLI_DBL("p-popular", &p_popular, 0.0, 1.0, 0),
        CLI_FLAG("quiet", &quiet),
        CLI_STR("semantic-out", &sem_out, OPT_OUT_FILE),
        CLI_I64("semantic-dim", &sem_dim, 1, 65536, 0),
        CLI_DBL("semantic-noise", &sem_noise, 0.0, 1000.0, 0),
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    iadsr__synth_params sp;
    synth_out so;
    int32_t *it = NULL;
    int64_t *off = NULL;
    int64_t n_users = 0;
    float *sem = NULL;
    int rc = cli_start(cmd, argc, argv, opts, n_opts,
                       (const char *const[]){synth_help, NULL});

    if (rc != CLI_CONTINUE)
        return rc;
    if (topics > items)
        return cli_usage_error(cmd, "--topics (%lld) exceeds --items (%lld)",
                               (long long)topics, (long long)items);
    if (min_len > max_len)
        return cli_usage_error(cmd, "--min-len (%lld) exceeds --max-len (%lld)",
                               (long long)min_len, (long long)max_len);
    if (p_follow + p_topic > 1.0)
        return cli_usage_error(cmd, "--p-follow + --p-topic exceeds 1");
    if (p_follow + p_topic + p_popular > 1.0)
        return cli_usage_error(cmd, "--p-follow + --p-topic + --p-popular "
                                    "exceeds 1");
    if (!sem_out && (cli_opt_seen(opts, n_opts, "semantic-dim") ||
                     cli_opt_seen(opts, n_opts, "semantic-noise")))
        return cli_usage_error(cmd, "--semantic-dim and --semantic-noise "
                                    "need --semantic-out");
    if (sem_out) {
        if ((uint64_t)(items + 1) * (uint64_t)sem_dim > (UINT64_C(1) << 31))
            return cli_usage_error(cmd, "--semantic-out: %lld x %lld floats "
                                        "is too large",
                                   (long long)(items + 1), (long long)sem_dim);
        /* before writing anything */
        if (cli_check_out_path(cmd, sem_out) != CLI_OK)
            return CLI_RUNTIME;
    }

    iadsr__synth_params_init(&sp);
    sp.n_users = users;
    sp.n_items = (int32_t)items;
    sp.n_topics = (int32_t)topics;
    sp.min_len = (int32_t)min_len;
    sp.max_len = (int32_t)max_len;
    sp.p_follow = (float)p_follow;
    sp.p_topic = (float)p_topic;
    sp.p_popular = (float)p_popular;
    sp.seed = seed;
    rc = iadsr__synth_generate(&sp, &it, &off, &n_users);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, NULL, rc);
    so.items = it;
    so.offsets = off;
    so.n_users = n_users;
    if (cli_write_atomic(cmd, out, write_lines, &so) != CLI_OK) {
        iadsr__free(it);
        iadsr__free(off);
        return CLI_RUNTIME;
    }
    if (!quiet)
        fprintf(stderr,
                "iadsr: synth: wrote %lld users, %lld interactions, %lld "
                "items to %s\n",
                (long long)n_users, (long long)off[n_users], (long long)items,
                out);
    iadsr__free(it);
    iadsr__free(off);
    if (!sem_out)
        return CLI_OK;

    sem = semantic_rows((int32_t)items, (int32_t)topics, (int32_t)sem_dim,
                        sem_noise, seed);
    if (!sem)
        return cli_error(cmd, "out of memory for a %lld x %lld matrix",
                         (long long)(items + 1), (long long)sem_dim);
    rc = iadsr_npy_save(sem_out, sem, items + 1, sem_dim, sem_dim, 0u);
    free(sem);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot write", sem_out, rc);
    if (!quiet)
        fprintf(stderr,
                "iadsr: synth: wrote %lld x %lld semantic item vectors "
                "(row 0 = padding, %lld topics, noise %g) to %s\n",
                (long long)(items + 1), (long long)sem_dim, (long long)topics,
                sem_noise, sem_out);
    return CLI_OK;
}
