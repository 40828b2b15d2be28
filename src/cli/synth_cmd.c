/* iadsr command-line tool: `iadsr synth`.
 * SPDX-License-Identifier: MIT
 */
#include "cli.h"

#include "internal.h"
#include "synth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char synth_help[] =
    "Usage: iadsr synth --out FILE [--users N] [--items M] [--topics T]\n"
    "                   [--min-len A] [--max-len B] [--seed S]\n"
    "                   [--p-follow P] [--p-topic P] [--quiet]\n"
    "\n"
    "Write a deterministic synthetic dataset with latent interests: items\n"
    "are split evenly over T topics, each topic has a fixed item chain. Each\n"
    "user has 1-2 preferred topics; the next item follows the chain of the\n"
    "previous one with probability p-follow, is a popular item of a\n"
    "preferred topic with probability p-topic, and otherwise is uniform\n"
    "noise. Lines are 'user_id item item ...' with user ids 0..N-1 and item\n"
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
    "  --quiet         do not print the summary line\n";

typedef struct synth_out {
    const int32_t *items;
    const int64_t *offsets;
    int64_t n_users;
} synth_out;

/* Decimal digits of v into buf (no terminator); returns the length. */
static size_t put_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    for (i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static int write_lines(FILE *f, const synth_out *s)
{
    char buf[1 << 16];
    size_t used = 0;
    for (int64_t u = 0; u < s->n_users; u++) {
        used += put_u64(buf + used, (uint64_t)u);
        for (int64_t j = s->offsets[u]; j < s->offsets[u + 1]; j++) {
            if (used > sizeof buf - 32) {
                if (fwrite(buf, 1, used, f) != used)
                    return -1;
                used = 0;
            }
            buf[used++] = ' ';
            used += put_u64(buf + used, (uint64_t)s->items[j]);
        }
        buf[used++] = '\n';
        if (used > sizeof buf - 64) {
            if (fwrite(buf, 1, used, f) != used)
                return -1;
            used = 0;
        }
    }
    if (used && fwrite(buf, 1, used, f) != used)
        return -1;
    return 0;
}

/* Write atomically: temp file in the same directory, fsync, rename, fsync
 * of the directory. Returns 0 or -1 with errno set and *what describing the
 * failing step. */
static int write_atomic(const char *path, const synth_out *s,
                        const char **what)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dir = malloc(plen + 2);
    FILE *f = NULL;
    int fd = -1, saved;
    mode_t um;

    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        *what = "out of memory";
        errno = ENOMEM;
        return -1;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    {
        const char *slash = strrchr(path, '/');
        if (!slash) {
            strcpy(dir, ".");
        } else if (slash == path) {
            strcpy(dir, "/");
        } else {
            memcpy(dir, path, (size_t)(slash - path));
            dir[slash - path] = '\0';
        }
    }
    *what = "cannot create temporary file";
    fd = mkstemp(tmp);
    if (fd < 0)
        goto fail_nofile;
    um = umask(0);
    umask(um);
    (void)fchmod(fd, (mode_t)(0666 & ~um));
    f = fdopen(fd, "w");
    if (!f) {
        saved = errno;
        close(fd);
        errno = saved;
        goto fail;
    }
    *what = "write failed";
    if (write_lines(f, s) != 0 || fflush(f) != 0)
        goto fail;
    *what = "fsync failed";
    if (fsync(fileno(f)) != 0)
        goto fail;
    *what = "close failed";
    {
        int rc = fclose(f);
        f = NULL;
        if (rc != 0)
            goto fail;
    }
    *what = "rename failed";
    if (rename(tmp, path) != 0)
        goto fail;
    /* Durability of the rename; failure here is not fatal for a dataset. */
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(tmp);
    free(dir);
    return 0;

fail:
    saved = errno;
    if (f)
        fclose(f);
    unlink(tmp);
    errno = saved;
fail_nofile:
    free(tmp);
    free(dir);
    return -1;
}

int cmd_synth(int argc, char **argv)
{
    static const char *cmd = "synth";
    const char *out = NULL;
    int64_t users = 3000, items = 600, topics = 12, min_len = 5, max_len = 30;
    uint64_t seed = 1;
    double p_follow = 0.55, p_topic = 0.35;
    int quiet = 0;
    cli_opt opts[] = {
        {"out", OPT_STR, &out, 0, 0, 0, 0, 0, NULL, 1, 0},
        {"users", OPT_I64, &users, 1, 100000000, 0, 0, 0, NULL, 0, 0},
        {"items", OPT_I64, &items, 1, INT32_MAX - 1, 0, 0, 0, NULL, 0, 0},
        {"topics", OPT_I64, &topics, 1, INT32_MAX - 1, 0, 0, 0, NULL, 0, 0},
        {"min-len", OPT_I64, &min_len, 1, 1000000, 0, 0, 0, NULL, 0, 0},
        {"max-len", OPT_I64, &max_len, 1, 1000000, 0, 0, 0, NULL, 0, 0},
        {"seed", OPT_U64, &seed, 0, 0, 0, 0, 0, NULL, 0, 0},
        {"p-follow", OPT_DBL, &p_follow, 0, 0, 0.0, 1.0, 0, NULL, 0, 0},
        {"p-topic", OPT_DBL, &p_topic, 0, 0, 0.0, 1.0, 0, NULL, 0, 0},
        {"quiet", OPT_FLAG, &quiet, 0, 0, 0, 0, 0, NULL, 0, 0},
    };
    iadsr__synth_params sp;
    synth_out so;
    int32_t *it = NULL;
    int64_t *off = NULL;
    int64_t n_users = 0;
    const char *what = "";
    int rc = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);

    if (rc == 1) {
        fputs(synth_help, stdout);
        return cli_finish_stdout(cmd);
    }
    if (rc != 0)
        return rc;
    if (topics > items)
        return cli_usage_error(cmd, "--topics (%lld) exceeds --items (%lld)",
                               (long long)topics, (long long)items);
    if (min_len > max_len)
        return cli_usage_error(cmd, "--min-len (%lld) exceeds --max-len (%lld)",
                               (long long)min_len, (long long)max_len);
    if (p_follow + p_topic > 1.0)
        return cli_usage_error(cmd, "--p-follow + --p-topic exceeds 1");

    iadsr__synth_params_init(&sp);
    sp.n_users = users;
    sp.n_items = (int32_t)items;
    sp.n_topics = (int32_t)topics;
    sp.min_len = (int32_t)min_len;
    sp.max_len = (int32_t)max_len;
    sp.p_follow = (float)p_follow;
    sp.p_topic = (float)p_topic;
    sp.seed = seed;
    rc = iadsr__synth_generate(&sp, &it, &off, &n_users);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, NULL, NULL, rc);
    so.items = it;
    so.offsets = off;
    so.n_users = n_users;
    if (write_atomic(out, &so, &what) != 0) {
        int e = errno;
        iadsr__free(it);
        iadsr__free(off);
        return cli_error(cmd, "%s: %s: %s", out, what, strerror(e));
    }
    if (!quiet)
        fprintf(stderr,
                "iadsr: synth: wrote %lld users, %lld interactions, %lld "
                "items to %s\n",
                (long long)n_users, (long long)off[n_users], (long long)items,
                out);
    iadsr__free(it);
    iadsr__free(off);
    return CLI_OK;
}
