/* iadsr command-line tool: what `iadsr denoise` and `iadsr report` share
 * to clean a data set with a checkpoint's parts: the label file of
 * `iadsr inject-noise`, and the denoiser with the rule asked for (a
 * detector's theta proposed from the data unless --theta is given).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int cli_read_labels(const char *cmd, const char *path, const char *data_path,
                    const iadsr_dataset *d, uint8_t *lab)
{
    const int64_t n_users = iadsr_dataset_n_users(d);
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t u = 0, pos = 0;
    long long ln = 0;
    int exit_code = CLI_RUNTIME;

    if (!f) {
        int e = errno;
        return cli_error(cmd, "%s: cannot open: %s", path, strerror(e));
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        int32_t n = 0, cnt = 0;
        ln++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (u >= n_users) {
            cli_error(cmd, "%s:%lld: more lines than the %lld users of %s",
                      path, ln, (long long)n_users, data_path);
            goto done;
        }
        (void)iadsr_dataset_user_items(d, u, &n);
        for (ssize_t i = 0; i < len;) {
            ssize_t t0;
            if (is_blank(line[i])) {
                i++;
                continue;
            }
            t0 = i;
            while (i < len && !is_blank(line[i]))
                i++;
            if (i - t0 != 1 || (line[t0] != '0' && line[t0] != '1')) {
                cli_error(cmd, "%s:%lld: label '%.*s' is not 0 or 1", path,
                          ln, (int)(i - t0 > 40 ? 40 : i - t0), line + t0);
                goto done;
            }
            if (cnt < n)
                lab[pos + cnt] = (uint8_t)(line[t0] - '0');
            cnt++;
        }
        if (cnt != n) {
            cli_error(cmd,
                      "%s:%lld: %ld labels for the %ld items of user %lld "
                      "(line %lld of the users of %s)",
                      path, ln, (long)cnt, (long)n,
                      (long long)iadsr_dataset_user_id(d, u), (long long)u + 1,
                      data_path);
            goto done;
        }
        pos += n;
        u++;
    }
    if (ferror(f)) {
        int e = errno;
        cli_error(cmd, "%s: read failed: %s", path, strerror(e));
        goto done;
    }
    if (u != n_users) {
        cli_error(cmd, "%s: %lld lines for the %lld users of %s", path,
                  (long long)u, (long long)n_users, data_path);
        goto done;
    }
    exit_code = CLI_OK;
done:
    free(line);
    fclose(f);
    return exit_code;
}

/* A gate with the weights of *g and the rule @p gp replaces *g. */
static int set_rule(const char *cmd, iadsr_gate **g,
                    const iadsr_denoise_params *gp, const char *what)
{
    iadsr_gate *g2 = NULL;
    int rc = iadsr_gate_with_params(&g2, *g, gp);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, what, NULL, rc);
    iadsr_gate_free(*g);
    *g = g2;
    return CLI_OK;
}

static int make_denoiser(const char *cmd, const cli_checkpoint *ck,
                         const cli_semantic_in *si, uint32_t flags,
                         iadsr_denoiser **dn)
{
    int rc = iadsr_denoiser_create_v2(dn, ck->model, ck->aligner, ck->gate,
                                      si->items, flags);
    if (rc == IADSR_OK)
        return CLI_OK;
    cli_lib_error(cmd, "cannot create the denoiser", NULL, rc);
    if (rc == IADSR_ERR_MISMATCH)
        fprintf(stderr, "iadsr: %s: (give the semantic matrix the model was "
                        "trained with, or --allow-mismatch to combine them "
                        "anyway)\n",
                cmd);
    return CLI_RUNTIME;
}

int cli_denoiser_setup(const char *cmd, cli_checkpoint *ck,
                       const cli_semantic_in *si, const iadsr_dataset *d,
                       int32_t lib_split, int allow_mismatch, int64_t threads,
                       const cli_opt *opts, size_t n_opts,
                       const cli_denoise_vals *dv, iadsr_denoise_params *gp,
                       double *rate, iadsr_denoiser **dn)
{
    const uint32_t flags = allow_mismatch ? IADSR_DENOISER_ALLOW_MISMATCH
                                          : 0u;
    int rc;
    *dn = NULL;
    *rate = (double)NAN;
    /* the inference rule: the trained gate's, or the one asked for */
    iadsr_denoise_params_init(gp);
    rc = iadsr_gate_get_params(ck->gate, gp);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot read the gate's settings", NULL,
                             rc);
    if (cli_denoise_rule_seen(opts, n_opts)) {
        cli_denoise_apply(opts, n_opts, dv, gp);
        if (set_rule(cmd, &ck->gate, gp, "cannot set the gate's rule"))
            return CLI_RUNTIME;
    }
    if (make_denoiser(cmd, ck, si, flags, dn) != CLI_OK)
        return CLI_RUNTIME;
    if (!(gp->flags & IADSR_DENOISE_F_DETECT) ||
        cli_opt_seen(opts, n_opts, "theta"))
        return CLI_OK;
    /* a detector's threshold comes from the data, without labels */
    float th = 0;
    rc = iadsr_denoiser_propose_theta(*dn, d, lib_split, si->users,
                                      (int32_t)threads, &th, rate);
    iadsr_denoiser_free(*dn);
    *dn = NULL;
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot propose theta", NULL, rc);
    gp->theta = th;
    if (set_rule(cmd, &ck->gate, gp, "cannot propose theta") ||
        make_denoiser(cmd, ck, si, flags, dn) != CLI_OK)
        return CLI_RUNTIME;
    fprintf(stderr, "iadsr: %s: detector gate: estimated noise rate %.4f, "
                    "theta %.4f (from the data; --theta overrides)\n",
            cmd, *rate, (double)th);
    return CLI_OK;
}
