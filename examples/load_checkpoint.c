/* load_checkpoint: load WORKDIR/model.iadsr (written by train_and_score; if it
 * is missing, a fresh untrained model is saved there first), print its
 * hyper-parameters, round-trip it through an in-memory checkpoint and check
 * that both copies score a sequence identically.
 * Usage: load_checkpoint WORKDIR
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <iadsr.h>

/* On failure: print the call, the status name and the library's detail. */
#define TRY(name, call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s failed: %s: %s\n", name, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

int main(int argc, char **argv)
{
    iadsr_model *fresh = NULL, *model = NULL, *copy = NULL;
    iadsr_ctx *ctx_a = NULL, *ctx_b = NULL;
    iadsr_model_params p;
    unsigned char *buf = NULL;
    float *sa = NULL, *sb = NULL;
    size_t size = 0, written = 0;
    int32_t seq[] = {1, 2, 3, 4, 5, 6, 7}, n_seq = 7, n_items;
    struct stat st;
    char path[4096];
    int rc = 1;

    if (argc != 2) { fprintf(stderr, "usage: load_checkpoint WORKDIR\n"); return 2; }
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST) { perror(argv[1]); return 1; }
    if (snprintf(path, sizeof path, "%s/model.iadsr", argv[1]) >= (int)sizeof path) {
        fprintf(stderr, "WORKDIR is too long\n"); return 2;
    }
    if (stat(path, &st) != 0) { /* no checkpoint yet: save an untrained model */
        printf("%s not found; saving a fresh untrained model there\n", path);
        iadsr_model_params_init(&p);
        p.n_items = 120; p.dim = 16; p.max_seq_len = 10; p.n_layers = 1;
        TRY("iadsr_model_create", iadsr_model_create(&fresh, &p));
        TRY("iadsr_model_save", iadsr_model_save(fresh, path, 0));
    }

    TRY("iadsr_model_load", iadsr_model_load(&model, path, 0));
    if (stat(path, &st) != 0) { perror(path); goto done; }
    iadsr_model_params_init(&p); /* sets struct_size, which get_params needs */
    TRY("iadsr_model_get_params", iadsr_model_get_params(model, &p));
    printf("%s: backbone %d, n_items %d, dim %d, max_seq_len %d, layers %d, heads %d, "
           "ffn_dim %d, activation %d, dropout %.2f, seed %llu\n", path, (int)p.backbone,
           (int)p.n_items, (int)p.dim, (int)p.max_seq_len, (int)p.n_layers, (int)p.n_heads,
           (int)p.ffn_dim, (int)p.activation, (double)p.dropout, (unsigned long long)p.seed);
    printf("%lld parameters, %zu bytes in memory\n", (long long)iadsr_model_n_params(model),
           iadsr_model_memory_usage(model));

    /* Size query, then serialise into a buffer of exactly that size. */
    TRY("iadsr_model_save_to_buffer (size)", iadsr_model_save_to_buffer(model, NULL, 0, &size));
    if ((buf = malloc(size)) == NULL) { fprintf(stderr, "out of memory\n"); goto done; }
    TRY("iadsr_model_save_to_buffer", iadsr_model_save_to_buffer(model, buf, size, &written));
    TRY("iadsr_model_load_from_buffer", iadsr_model_load_from_buffer(&copy, buf, written, 0));
    printf("checkpoint: %zu bytes in memory, %lld bytes on disk\n", written,
           (long long)st.st_size);

    /* Both copies must give bit-identical scores (n_items + 1 floats each). */
    n_items = iadsr_model_n_items(model);
    for (int32_t i = 0; i < n_seq; i++) seq[i] = 1 + (seq[i] * 7919) % n_items;
    sa = malloc(((size_t)n_items + 1) * sizeof *sa);
    sb = malloc(((size_t)n_items + 1) * sizeof *sb);
    if (sa == NULL || sb == NULL) { fprintf(stderr, "out of memory\n"); goto done; }
    TRY("iadsr_ctx_create", iadsr_ctx_create(&ctx_a, model, NULL));
    TRY("iadsr_ctx_create", iadsr_ctx_create(&ctx_b, copy, NULL));
    TRY("iadsr_ctx_score", iadsr_ctx_score(ctx_a, seq, n_seq, sa, (int64_t)n_items + 1));
    TRY("iadsr_ctx_score", iadsr_ctx_score(ctx_b, seq, n_seq, sb, (int64_t)n_items + 1));
    if (memcmp(sa, sb, ((size_t)n_items + 1) * sizeof *sa) != 0) {
        fprintf(stderr, "scores differ after the buffer round trip\n");
        goto done;
    }
    printf("round trip OK: identical scores for all %d items (score of item %d: %.4f)\n",
           (int)n_items, (int)seq[0], (double)sa[seq[0]]);
    rc = 0;
done:
    iadsr_ctx_free(ctx_a);
    iadsr_ctx_free(ctx_b);
    iadsr_model_free(copy);
    iadsr_model_free(model);
    iadsr_model_free(fresh);
    free(sa);
    free(sb);
    free(buf);
    return rc;
}
