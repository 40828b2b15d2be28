/* load_checkpoint: load a checkpoint and inspect it. Prints the file's
 * format version and size, the backbone's hyper-parameters and sizes, and
 * the aligner and denoising gate when the file carries them; then
 * round-trips the backbone through an in-memory checkpoint, checks that both
 * copies score a sequence identically, and shows the error a truncated
 * checkpoint gives.
 * Usage: load_checkpoint WORKDIR [FILE]
 * FILE defaults to WORKDIR/iadsr.iadsr (written by denoise_sequences), else
 * WORKDIR/model.iadsr (train_and_score, serve_topk); if neither exists an
 * untrained checkpoint is saved as WORKDIR/untrained.iadsr and inspected
 * (a separate name, so that it is never served as a trained model).
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

static const char *backbone_name(int32_t b)
{
    switch (b) {
    case IADSR_BACKBONE_SASREC: return "SASRec";
    case IADSR_BACKBONE_GRU4REC: return "GRU4Rec";
    case IADSR_BACKBONE_CASER: return "Caser";
    default: return "unknown";
    }
}

static const char *activation_name(int32_t a)
{
    switch (a) {
    case 0: return "n/a";
    case IADSR_ACT_GELU: return "GELU";
    case IADSR_ACT_RELU: return "ReLU";
    default: return "unknown";
    }
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Format version from the 64-byte header (docs/FORMAT.md section 3): the
 * signature, then format_major and format_minor as little-endian u32. The
 * library validates the whole file; this only reads two fields for show. */
static int read_format_version(const char *path, unsigned *major,
                               unsigned *minor)
{
    static const unsigned char sig[8] = {0x89, 'I', 'A', 'D', 'S', 'R',
                                         '\r', '\n'};
    unsigned char h[16];
    FILE *f = fopen(path, "rb");
    size_t got = 0;
    if (f != NULL) {
        got = fread(h, 1, sizeof h, f);
        fclose(f);
    }
    if (got != sizeof h || memcmp(h, sig, sizeof sig) != 0) return -1;
    *major = h[8] | h[9] << 8 | (unsigned)h[10] << 16 | (unsigned)h[11] << 24;
    *minor = h[12] | h[13] << 8 | (unsigned)h[14] << 16 | (unsigned)h[15] << 24;
    return 0;
}

/* Save an untrained backbone with a fresh aligner and gate, so that the
 * example has every part to show even in an empty WORKDIR. */
static int save_untrained(const char *path)
{
    iadsr_model *m = NULL;
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    iadsr_model_params p;
    int rc = 1;

    iadsr_model_params_init(&p);
    p.n_items = 120; p.dim = 16; p.max_seq_len = 10; p.n_layers = 1;
    TRY("iadsr_model_create", iadsr_model_create(&m, &p));
    TRY("iadsr_aligner_create", iadsr_aligner_create(&a, p.dim, 24, NULL));
    TRY("iadsr_gate_create", iadsr_gate_create(&g, p.dim, NULL));
    TRY("iadsr_checkpoint_save", iadsr_checkpoint_save(m, a, g, path, 0));
    rc = 0;
done:
    iadsr_gate_free(g);
    iadsr_aligner_free(a);
    iadsr_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    iadsr_model *model = NULL, *copy = NULL, *bad = NULL;
    iadsr_aligner *aligner = NULL;
    iadsr_gate *gate = NULL;
    iadsr_ctx *ctx_a = NULL, *ctx_b = NULL;
    iadsr_model_params p;
    iadsr_denoise_params dp;
    unsigned char *buf = NULL;
    float *sa = NULL, *sb = NULL;
    size_t size = 0, written = 0;
    int32_t seq[] = {1, 2, 3, 4, 5, 6, 7}, n_seq = 7, n_items;
    unsigned fmt_major, fmt_minor;
    struct stat st;
    char path[4096];
    int n, rc = 1;

    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: load_checkpoint WORKDIR [FILE]\n");
        return 2;
    }
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST) {
        perror(argv[1]);
        return 1;
    }
    if (argc == 3) {
        n = snprintf(path, sizeof path, "%s", argv[2]);
    } else {
        n = snprintf(path, sizeof path, "%s/iadsr.iadsr", argv[1]);
        if (n < (int)sizeof path && !file_exists(path))
            n = snprintf(path, sizeof path, "%s/model.iadsr", argv[1]);
        if (n < (int)sizeof path && !file_exists(path)) {
            n = snprintf(path, sizeof path, "%s/untrained.iadsr", argv[1]);
            if (n < (int)sizeof path) {
                printf("no checkpoint in %s; saving an untrained one as %s\n",
                       argv[1], path);
                if (save_untrained(path) != 0) return 1;
            }
        }
    }
    if (n >= (int)sizeof path) {
        fprintf(stderr, "path is too long\n");
        return 2;
    }

    /* The aligner and gate come back only when the file has them; a plain
     * model checkpoint leaves both NULL. */
    TRY("iadsr_checkpoint_load",
        iadsr_checkpoint_load(&model, &aligner, &gate, path, 0));
    if (stat(path, &st) != 0) { perror(path); goto done; }
    printf("%s: %lld bytes", path, (long long)st.st_size);
    if (read_format_version(path, &fmt_major, &fmt_minor) == 0)
        printf(", format %u.%u (this library reads up to %d.%d)", fmt_major,
               fmt_minor, iadsr_format_version() / 100,
               iadsr_format_version() % 100);
    printf("\n");

    iadsr_model_params_init(&p); /* sets struct_size, which get_params needs */
    TRY("iadsr_model_get_params", iadsr_model_get_params(model, &p));
    printf("backbone %s (%d)\n", backbone_name(p.backbone), (int)p.backbone);
    printf("  n_items %d, dim %d, max_seq_len %d, n_layers %d\n",
           (int)p.n_items, (int)p.dim, (int)p.max_seq_len, (int)p.n_layers);
    printf("  n_heads %d, ffn_dim %d, activation %s, flags 0x%x%s\n",
           (int)p.n_heads, (int)p.ffn_dim, activation_name(p.activation),
           (unsigned)p.flags,
           (p.flags & IADSR_MODEL_F_PRE_LN) ? " (pre-LN)" : "");
    printf("  dropout %.2f, seed %llu\n", (double)p.dropout,
           (unsigned long long)p.seed);
    printf("  caser_window %d, caser_h_filters %d, caser_v_filters %d\n",
           (int)p.caser_window, (int)p.caser_h_filters,
           (int)p.caser_v_filters);
    printf("  model: n_items %d, dim %d, max_seq_len %d, %lld parameters, "
           "%zu bytes in memory\n", (int)iadsr_model_n_items(model),
           (int)iadsr_model_dim(model), (int)iadsr_model_max_seq_len(model),
           (long long)iadsr_model_n_params(model),
           iadsr_model_memory_usage(model));

    if (aligner != NULL)
        printf("aligner: present, dim %d, semantic dim %d\n",
               (int)iadsr_aligner_dim(aligner),
               (int)iadsr_aligner_semantic_dim(aligner));
    else
        printf("aligner: absent\n");
    if (gate != NULL) {
        iadsr_denoise_params_init(&dp); /* sets the struct_size it needs */
        TRY("iadsr_gate_get_params", iadsr_gate_get_params(gate, &dp));
        printf("gate: present, dim %d\n", (int)iadsr_gate_dim(gate));
        printf("  theta %.3f, max_drop %.3f, protect_last %d, flags 0x%x%s%s\n",
               (double)dp.theta, (double)dp.max_drop, (int)dp.protect_last,
               (unsigned)dp.flags,
               (dp.flags & IADSR_DENOISE_F_COLLAB_ONLY) ? " COLLAB_ONLY" : "",
               (dp.flags & IADSR_DENOISE_F_CARRY_MASKS) ? " CARRY_MASKS" : "");
        printf("  trained with lambda_align %.3f, lambda_recon %.3f, "
               "tau_align %.3f, tau_gumbel %.3f, seed %llu\n",
               (double)dp.lambda_align, (double)dp.lambda_recon,
               (double)dp.tau_align, (double)dp.tau_gumbel,
               (unsigned long long)dp.seed);
    } else {
        printf("gate: absent\n");
    }

    /* Size query (NULL, 0), then serialise into a buffer of exactly that
     * size. Only the backbone goes into the buffer. */
    TRY("iadsr_model_save_to_buffer (size)",
        iadsr_model_save_to_buffer(model, NULL, 0, &size));
    if ((buf = malloc(size)) == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    TRY("iadsr_model_save_to_buffer",
        iadsr_model_save_to_buffer(model, buf, size, &written));
    TRY("iadsr_model_load_from_buffer",
        iadsr_model_load_from_buffer(&copy, buf, written, 0));
    printf("in-memory checkpoint of the backbone: %zu bytes\n", written);

    /* Both copies must give bit-identical scores (n_items + 1 floats each). */
    n_items = iadsr_model_n_items(model);
    for (int32_t i = 0; i < n_seq; i++) seq[i] = 1 + (seq[i] * 7919) % n_items;
    sa = malloc(((size_t)n_items + 1) * sizeof *sa);
    sb = malloc(((size_t)n_items + 1) * sizeof *sb);
    if (sa == NULL || sb == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    TRY("iadsr_ctx_create", iadsr_ctx_create(&ctx_a, model, NULL));
    TRY("iadsr_ctx_create", iadsr_ctx_create(&ctx_b, copy, NULL));
    TRY("iadsr_ctx_score",
        iadsr_ctx_score(ctx_a, seq, n_seq, sa, (int64_t)n_items + 1));
    TRY("iadsr_ctx_score",
        iadsr_ctx_score(ctx_b, seq, n_seq, sb, (int64_t)n_items + 1));
    if (memcmp(sa, sb, ((size_t)n_items + 1) * sizeof *sa) != 0) {
        fprintf(stderr, "scores differ after the buffer round trip\n");
        goto done;
    }
    printf("round trip OK: identical scores for all %d items (score of "
           "item %d: %.4f)\n", (int)n_items, (int)seq[0], (double)sa[seq[0]]);

    /* A deliberate error: a checkpoint cut short must be refused (the
     * header records the file size), never half-loaded. */
    printf("expected failure: loading the first %zu of %zu bytes -> ",
           written / 2, written);
    int ls = iadsr_model_load_from_buffer(&bad, buf, written / 2, 0);
    if (ls == IADSR_OK) {
        printf("\n");
        fprintf(stderr, "a truncated checkpoint was accepted\n");
        goto done;
    }
    printf("%s: %s\n", iadsr_status_name(ls), iadsr_last_error());
    rc = 0;
done:
    iadsr_ctx_free(ctx_a);
    iadsr_ctx_free(ctx_b);
    iadsr_model_free(bad);
    iadsr_model_free(copy);
    iadsr_gate_free(gate);
    iadsr_aligner_free(aligner);
    iadsr_model_free(model);
    free(sa);
    free(sb);
    free(buf);
    return rc;
}
