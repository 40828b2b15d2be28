/* iadsr command-line tool: `iadsr inject-noise`.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char noise_help[] =
    "Usage: iadsr inject-noise --data FILE --rate P --seed S --out NOISY\n"
    "                          --labels LABELS [--dist D] [--quiet]\n"
    "\n"
    "Insert random items into the training part of every sequence, to\n"
    "measure how well a denoiser finds them ('iadsr denoise --labels').\n"
    "For a user with n items the training part is the first n - 2 (the last\n"
    "two, the validation and test targets, stay the last two); users with\n"
    "n < 3 are copied unchanged. The user gets k = floor(P * (n - 2) + U)\n"
    "items, U uniform in [0, 1) (so k is P * (n - 2) on average), each a\n"
    "uniformly random item id in 1..n_items (n_items = the largest id in\n"
    "FILE) that the user's original sequence does not contain (none when\n"
    "every id occurs in it), at uniformly random positions of the training\n"
    "part: anywhere before the second-to-last original item. With --dist\n"
    "popularity the injected id is drawn in proportion to its number of\n"
    "occurrences in FILE instead (still one the user does not have), as\n"
    "accidental clicks on what is shown most would be. The same FILE, P, S\n"
    "and D give the same bytes on every machine. Both files are written\n"
    "atomically; the number of injected items goes to standard error.\n"
    "\n"
    "NOISY has the format of FILE (one user per line, 'user_id item item\n"
    "...', same users in the same order).\n"
    "LABELS has one line per user, in the order of NOISY, with one label\n"
    "per item of the user's noisy sequence, separated by single spaces:\n"
    "1 = the item was injected, 0 = it was in FILE. E.g. the NOISY line\n"
    "'7 12 5 3 9' (user 7) with LABELS line '0 1 0 0' says that item 5 was\n"
    "injected.\n"
    "\n"
    "Options:\n"
    "  --data FILE      sequence file (required)\n"
    "  --rate P         injected items per training item, 0..10 (required;\n"
    "                   0 copies FILE)\n"
    "  --seed S         random seed, 0..2^64-1 (required)\n"
    "  --out NOISY      noisy sequence file to write (required)\n"
    "  --labels LABELS  label file to write (required)\n"
    "  --dist D         uniform (default) or popularity\n"
    "  --quiet          do not print the summary line\n";

/* The noisy data in CSR form (dataset user order). */
typedef struct noisy_data {
    const iadsr_dataset *src; /* for the user ids */
    int32_t *items;
    uint8_t *labels;
    int64_t *offsets; /* n_users + 1 */
    int64_t n_users;
    int64_t len, cap;
} noisy_data;

static int noisy_reserve(noisy_data *nd, int64_t extra)
{
    int64_t need = nd->len + extra, cap = nd->cap ? nd->cap : 1024;
    int32_t *it;
    uint8_t *lb;
    if (need <= nd->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    it = realloc(nd->items, (size_t)cap * sizeof *it);
    if (!it)
        return -1;
    nd->items = it;
    lb = realloc(nd->labels, (size_t)cap);
    if (!lb)
        return -1;
    nd->labels = lb;
    nd->cap = cap;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The (r+1)-th smallest id in 1.. that is not in sorted[0..m) (distinct,
 * ascending). The ids missing below sorted[j] number sorted[j] - 1 - j, a
 * non-decreasing sequence, so the answer is r + 1 + (the number of j with
 * sorted[j] - 1 - j <= r). */
static int32_t nth_missing(const int32_t *sorted, int32_t m, int64_t r)
{
    int32_t lo = 0, hi = m;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)sorted[mid] - 1 - mid <= r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int32_t)(r + 1 + lo);
}

static void write_noisy(iadsr__atomic_file *f, const void *ctx)
{
    const noisy_data *nd = ctx;
    for (int64_t u = 0; u < nd->n_users; u++)
        if (cli_put_seq(f, (uint64_t)iadsr_dataset_user_id(nd->src, u),
                        nd->items + nd->offsets[u],
                        nd->offsets[u + 1] - nd->offsets[u]) != 0)
            return;
}

static void write_labels(iadsr__atomic_file *f, const void *ctx)
{
    const noisy_data *nd = ctx;
    char buf[1 << 16];
    size_t used = 0;
    for (int64_t u = 0; u < nd->n_users; u++) {
        for (int64_t j = nd->offsets[u]; j < nd->offsets[u + 1]; j++) {
            if (used > sizeof buf - 8) {
                if (iadsr__atomic_put(f, buf, used) != 0)
                    return;
                used = 0;
            }
            if (j > nd->offsets[u])
                buf[used++] = ' ';
            buf[used++] = nd->labels[j] ? '1' : '0';
        }
        buf[used++] = '\n';
    }
    (void)iadsr__atomic_put(f, buf, used);
}

/* Build the noisy sequences. Returns CLI_OK or prints an error. */
/* Draw an id in proportion to its count (cum: n_items + 1 cumulative
 * counts) that is not in sorted[0..m); after 64 draws that all hit the
 * user's own items, a uniform one of the n_cand missing ids. */
static int32_t draw_popular(iadsr__rng *rng, const int64_t *cum,
                            int32_t n_items, const int32_t *sorted, int32_t m,
                            int64_t n_cand)
{
    for (int tries = 0; tries < 64 && cum[n_items] > 0; tries++) {
        int32_t id = iadsr__cum_pick(
            cum, n_items, (int64_t)cli_rng_below(rng, (uint64_t)cum[n_items]));
        if (!bsearch(&id, sorted, (size_t)m, sizeof *sorted, cmp_i32))
            return id;
    }
    return nth_missing(sorted, m,
                       (int64_t)cli_rng_below(rng, (uint64_t)n_cand));
}

static int inject(const char *cmd, const iadsr_dataset *d, double rate,
                  uint64_t seed, const int64_t *pop_cum, noisy_data *nd,
                  int64_t *n_injected, int64_t *n_users_hit)
{
    const int32_t n_items = iadsr_dataset_n_items(d);
    int32_t *sorted = NULL;
    int32_t sorted_cap = 0;
    iadsr__rng rng;

    nd->src = d;
    nd->n_users = iadsr_dataset_n_users(d);
    nd->offsets = malloc(((size_t)nd->n_users + 1u) * sizeof *nd->offsets);
    if (!nd->offsets)
        return cli_error(cmd, "out of memory");
    nd->offsets[0] = 0;
    *n_injected = 0;
    *n_users_hit = 0;
    iadsr__rng_seed(&rng, seed);

    for (int64_t u = 0; u < nd->n_users; u++) {
        int32_t n = 0, m = 0;
        const int32_t *it = iadsr_dataset_user_items(d, u, &n);
        int64_t n_train, k = 0, total, need, n_cand;
        int32_t next_orig = 0;

        if (n < 3) {
            /* no training part: copied unchanged, no random draw */
            if (noisy_reserve(nd, n) != 0)
                goto oom;
            memcpy(nd->items + nd->len, it, (size_t)n * sizeof *it);
            memset(nd->labels + nd->len, 0, (size_t)n);
            nd->len += n;
            nd->offsets[u + 1] = nd->len;
            continue;
        }
        n_train = n - 2;
        /* E[k] = rate * n_train exactly */
        k = (int64_t)floor(rate * (double)n_train + cli_rng_uniform(&rng));

        /* the user's distinct items, sorted, define the candidates */
        if (n > sorted_cap) {
            int32_t *ns = realloc(sorted, (size_t)n * sizeof *ns);
            if (!ns)
                goto oom;
            sorted = ns;
            sorted_cap = n;
        }
        memcpy(sorted, it, (size_t)n * sizeof *it);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_i32);
        for (int32_t j = 0; j < n; j++)
            if (m == 0 || sorted[m - 1] != sorted[j])
                sorted[m++] = sorted[j];
        n_cand = (int64_t)n_items - m;
        if (n_cand <= 0)
            k = 0; /* every id occurs in the sequence */
        if ((int64_t)n + k > INT32_MAX) {
            free(sorted);
            return cli_error(cmd, "user %lld: %lld items with the noise "
                                  "exceed 2^31 - 1",
                             (long long)iadsr_dataset_user_id(d, u),
                             (long long)n + k);
        }
        if (noisy_reserve(nd, n + k) != 0)
            goto oom;

        /* choose which k of the n_train + k training slots are injected,
         * every subset equally likely (selection sampling) */
        total = n_train + k;
        need = k;
        for (int64_t p = 0; p < total; p++) {
            int64_t at = nd->len++;
            if (need > 0 &&
                (int64_t)cli_rng_below(&rng, (uint64_t)(total - p)) < need) {
                if (pop_cum) {
                    nd->items[at] = draw_popular(&rng, pop_cum, n_items,
                                                 sorted, m, n_cand);
                } else {
                    int64_t r = (int64_t)cli_rng_below(&rng, (uint64_t)n_cand);
                    nd->items[at] = nth_missing(sorted, m, r);
                }
                nd->labels[at] = 1;
                need--;
            } else {
                nd->items[at] = it[next_orig++];
                nd->labels[at] = 0;
            }
        }
        /* the validation and test items stay last */
        for (int32_t j = n - 2; j < n; j++) {
            nd->items[nd->len] = it[j];
            nd->labels[nd->len++] = 0;
        }
        nd->offsets[u + 1] = nd->len;
        *n_injected += k;
        if (k > 0)
            (*n_users_hit)++;
    }
    free(sorted);
    return CLI_OK;

oom:
    free(sorted);
    return cli_error(cmd, "out of memory");
}

int cmd_inject_noise(int argc, char **argv)
{
    static const char *cmd = "inject-noise";
    const char *data = NULL, *out = NULL, *labels = NULL;
    double rate = 0.0;
    uint64_t seed = 0;
    int quiet = 0, dist = 0;
    static const char *const dist_names[] = {"uniform", "popularity", NULL};
    int64_t *pop_cum = NULL;
    cli_opt opts[] = {
        CLI_STR("data", &data, OPT_REQUIRED | OPT_IN_FILE),
        CLI_DBL("rate", &rate, 0.0, 10.0, OPT_REQUIRED),
        CLI_U64("seed", &seed, OPT_REQUIRED),
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_STR("labels", &labels, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_FLAG("quiet", &quiet),
        CLI_CHOICE("dist", &dist, dist_names),
    };
    iadsr_dataset *d = NULL;
    noisy_data nd;
    int64_t n_injected = 0, n_hit = 0;
    int exit_code = CLI_RUNTIME;
    int rc = cli_start(cmd, argc, argv, opts, sizeof opts / sizeof opts[0],
                       (const char *const[]){noise_help, NULL});

    memset(&nd, 0, sizeof nd);
    if (rc != CLI_CONTINUE)
        return rc;
    if (cli_check_out_path(cmd, out) != CLI_OK ||
        cli_check_out_path(cmd, labels) != CLI_OK)
        return CLI_RUNTIME;
    if (cli_load_data(cmd, data, 0, &d) != CLI_OK)
        return CLI_RUNTIME;
    if (dist == 1) {
        int32_t ni = iadsr_dataset_n_items(d);
        pop_cum = calloc((size_t)ni + 1, sizeof *pop_cum);
        if (!pop_cum) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        for (int64_t u = 0; u < iadsr_dataset_n_users(d); u++) {
            int32_t n = 0;
            const int32_t *it = iadsr_dataset_user_items(d, u, &n);
            for (int32_t j = 0; j < n; j++)
                pop_cum[it[j]]++;
        }
        for (int32_t i = 1; i <= ni; i++)
            pop_cum[i] += pop_cum[i - 1];
    }
    if (inject(cmd, d, rate, seed, pop_cum, &nd, &n_injected, &n_hit) !=
        CLI_OK)
        goto done;
    if (cli_write_atomic(cmd, out, write_noisy, &nd) != CLI_OK ||
        cli_write_atomic(cmd, labels, write_labels, &nd) != CLI_OK)
        goto done;
    if (!quiet)
        fprintf(stderr,
                "iadsr: inject-noise: injected %lld items into %lld of %lld "
                "users (rate %g, %s, seed %llu); wrote %s and %s\n",
                (long long)n_injected, (long long)n_hit,
                (long long)nd.n_users, rate, dist_names[dist],
                (unsigned long long)seed, out, labels);
    exit_code = CLI_OK;

done:
    free(nd.items);
    free(nd.labels);
    free(nd.offsets);
    free(pop_cum);
    iadsr_dataset_free(d);
    return exit_code;
}
