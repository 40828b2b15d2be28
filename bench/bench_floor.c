/* bench_floor: what this machine could do at best, so that bench/run.sh
 * can report every timing also as a multiple of its floor.
 *
 * Usage: bench_floor DATA [MAX_LEN DIM N_LAYERS FFN_DIM]
 *        (defaults 50 64 2 256: the benchmark's SASRec)
 *
 * Measures, with the BLAS threads the environment gives (bench/run.sh runs
 * it under each OpenBLAS core type the CPU supports and keeps the best):
 *   sgemm_gflops   best of cblas_sgemm over three shapes: 1024^3, and the
 *                  two of the training cross-entropy (a 1024 x d block of
 *                  hidden states against the n_items x d table, and its
 *                  d x n_items gradient product);
 *   mem_read_gbs   streaming read of 512 MiB (the memory, not a cache);
 *   mem_copy_gbs   memcpy of 256 MiB (bytes read + bytes written);
 *   table_read_gbs streaming read of a buffer the size of the fp32 item
 *                  table, again and again (whatever cache holds it).
 * Counts, from DATA and the shape (the trainer's own rule: a user with a
 * training part of n >= 2 items gives min(n - 1, MAX_LEN) positions):
 *   positions      training positions per epoch;
 *   epoch_gflop    3 GEMM passes of the full-softmax cross-entropy
 *                  (logits, dH, dE: 2 x positions x n_items x d each) plus
 *                  the encoder (projections, feed-forward and causal
 *                  attention, forward once and backward twice);
 *   score_mflop    one scored user: the encoder forward over its history
 *                  (the mean over DATA, last MAX_LEN items, the last block
 *                  for the last row only) plus n_items x d multiply-adds;
 *   table_mib      the fp32 item table a single-user scan reads.
 * The floors themselves are computed by bench/run.sh from these numbers
 * (floor = FLOPs / the best sgemm rate). Output: "RESULT <key> <value>".
 * SPDX-License-Identifier: MIT
 */
#include <iadsr.h>

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *filled(size_t n, float v)
{
    float *p = malloc(n * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = v * (float)(1 + i % 13);
    return p;
}

/* Best of 5 runs (after one warm-up) of C = A op(B), in GFLOP/s. */
static double gemm_rate(int m, int n, int k, int trans_b)
{
    float *a = filled((size_t)m * (size_t)k, 1e-3f);
    float *b = filled((size_t)n * (size_t)k, 2e-3f);
    float *c = filled((size_t)m * (size_t)n, 0.0f);
    double best = 0.0;
    if (a && b && c)
        for (int r = 0; r < 6; r++) {
            double t = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                        m, n, k, 1.0f, a, k, b, trans_b ? k : n, 0.0f, c, n);
            t = now_s() - t;
            double g = 2.0 * m * n * k / t * 1e-9;
            if (r > 0 && g > best)
                best = g;
        }
    free(a);
    free(b);
    free(c);
    return best;
}

static double mem_read(size_t bytes, int reps)
{
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *p = malloc(bytes), acc = 0;
    double best = 0.0;
    if (!p)
        return 0.0;
    for (size_t i = 0; i < n; i++)
        p[i] = i;
    for (int r = 0; r < reps; r++) {
        double t = now_s();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        acc += s0 ^ s1 ^ s2 ^ s3;
        t = now_s() - t;
        if (bytes / t * 1e-9 > best)
            best = (double)bytes / t * 1e-9;
    }
    free(p);
    printf("(checksum %llu)\n", (unsigned long long)(acc & 1));
    return best;
}

static double mem_copy(size_t bytes)
{
    char *a = malloc(bytes), *b = malloc(bytes);
    double best = 0.0;
    if (a && b) {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        for (int r = 0; r < 4; r++) {
            double t = now_s();
            memcpy(b, a, bytes);
            t = now_s() - t;
            if (2.0 * (double)bytes / t * 1e-9 > best)
                best = 2.0 * (double)bytes / t * 1e-9;
        }
    }
    free(a);
    free(b);
    return best;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 6) {
        fprintf(stderr, "usage: bench_floor DATA [MAX_LEN DIM N_LAYERS FFN_DIM]\n");
        return 2;
    }
    int L = argc == 6 ? atoi(argv[2]) : 50, d = argc == 6 ? atoi(argv[3]) : 64;
    int layers = argc == 6 ? atoi(argv[4]) : 2, ffn = argc == 6 ? atoi(argv[5]) : 256;
    if (L < 1 || d < 1 || layers < 1 || ffn < 1) {
        fprintf(stderr, "bench_floor: the shape must be positive\n");
        return 2;
    }
    iadsr_dataset *ds = NULL;
    if (iadsr_dataset_load_text(&ds, argv[1], 0) != IADSR_OK) {
        fprintf(stderr, "bench_floor: %s: %s\n", argv[1], iadsr_last_error());
        return 1;
    }
    int32_t n_items = iadsr_dataset_n_items(ds);
    int64_t n_users = iadsr_dataset_n_users(ds);
    /* per position and layer: Q, K, V, O projections and the feed-forward */
    double proj = 2.0 * (4.0 * d * d + 2.0 * d * ffn);
    double positions = 0, attn_pairs = 0, score_rows = 0, score_pairs = 0;
    int64_t scored = 0;
    for (int64_t u = 0; u < n_users; u++) {
        int32_t len;
        iadsr_dataset_user_items(ds, u, &len);
        int64_t n = (int64_t)len - 2; /* the training part (leave-one-out) */
        if (n >= 2) {
            double rows = n - 1 < L ? (double)(n - 1) : (double)L;
            positions += rows;
            attn_pairs += rows * (rows + 1) / 2; /* causal: row i sees i + 1 */
        }
        if (len >= 2) { /* scored on its history seq[:-1] */
            double rows = len - 1 < L ? (double)(len - 1) : (double)L;
            score_rows += rows;
            score_pairs += rows; /* the last block: the last row only */
            scored++;
        }
    }
    iadsr_dataset_free(ds);
    double attn = 2.0 * 2.0 * d; /* QK^T and AV per attended pair */
    double enc_fwd = layers * (positions * proj + attn_pairs * attn);
    double xent = 3.0 * 2.0 * positions * n_items * d;
    double epoch = xent + 3.0 * enc_fwd;
    double mean_rows = scored ? score_rows / (double)scored : 0.0;
    double mean_pairs = scored ? score_pairs / (double)scored : 0.0;
    /* all layers but the last over every row; the last computes K and V
     * for every row, everything else for the last row only */
    double score_enc = (layers - 1) * (mean_rows * proj + mean_rows * (mean_rows + 1) / 2 * attn) +
                       mean_rows * 2.0 * (2.0 * d * d) + 2.0 * (2.0 * d * d + 2.0 * d * ffn) +
                       mean_pairs * attn;
    double score = score_enc + 2.0 * n_items * d;

    double g1 = gemm_rate(1024, 1024, 1024, 0);
    double g2 = gemm_rate(1024, n_items, d, 1);
    double g3 = gemm_rate(d, n_items, 1024, 0);
    double g = g1 > g2 ? g1 : g2;
    g = g > g3 ? g : g3;
    printf("sgemm GFLOP/s: 1024^3 %.1f, 1024 x %d x %d %.1f, %d x %d x 1024 %.1f\n", g1,
           (int)n_items, d, g2, d, (int)n_items, g3);
    printf("RESULT sgemm_gflops %.1f\n", g);
    printf("RESULT mem_read_gbs %.1f\n", mem_read((size_t)512 << 20, 4));
    printf("RESULT table_read_gbs %.1f\n", mem_read((size_t)n_items * (size_t)d * 4, 200));
    printf("RESULT mem_copy_gbs %.1f\n", mem_copy((size_t)256 << 20));
    printf("RESULT n_items %d\n", (int)n_items);
    printf("RESULT positions %.0f\n", positions);
    printf("RESULT epoch_gflop %.2f\n", epoch * 1e-9);
    printf("RESULT epoch_xent_gflop %.2f\n", xent * 1e-9);
    printf("RESULT score_mean_rows %.2f\n", mean_rows);
    printf("RESULT score_mflop %.3f\n", score * 1e-6);
    printf("RESULT table_mib %.2f\n", (double)n_items * d * 4.0 / 1048576.0);
    return 0;
}
