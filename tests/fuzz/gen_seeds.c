/* Seed corpus generator for the fuzz harnesses (make fuzz-seeds).
 *
 *   gen_seeds CORPUS_DIR [GOLDEN_DIR NPY_DIR]
 *
 * Writes small, deterministic seed files into CORPUS_DIR/<harness>/ (files
 * named gen-*; other files there are left alone):
 *   fuzz_checkpoint, fuzz_checkpoint_crcfix: tiny valid checkpoints of each
 *     backbone and of format 1.0 / 1.1 / 1.2 (with an aligner, a gate or
 *     both) / 1.3 (trained parts with their records) / 1.4 (a model's
 *     history-repeat record and item ids), a few broken ones,
 *     and copies of the golden files;
 *   fuzz_npy: valid and broken .npy files (versions 1-3, '<f4', '<f2',
 *     '=f4', big-endian, Fortran order, 1-D and 3-D, bad sizes, NaN) and
 *     copies of tests/data/npy;
 *   fuzz_text: sequence texts (first byte = harness flags);
 *   fuzz_wordvec: word-vector texts, with and without header;
 *   fuzz_api: byte programs from a fixed pseudo-random stream.
 * The checkpoint bytes include the library version string, so the files
 * change when the version does; that is harmless.
 * SPDX-License-Identifier: MIT
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iadsr.h"
#include "iadsr.h"
#include "common/alloc.h" /* iadsr__free */
#include "io/npy.h"      /* iadsr__npy_encode */

static const char *g_root;
static int g_count;

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s (%s)\n", what, strerror(errno),
            iadsr_last_error());
    exit(1);
}

static void ensure_dir(const char *h)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_root, h);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
}

static void write_seed(const char *h, const char *name, const void *b,
                       size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", g_root, h, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0)
        die(path);
    g_count++;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            uint8_t *q = realloc(b, cap * 2);
            if (!q) {
                free(b);
                b = NULL;
                break;
            }
            b = q;
            cap *= 2;
        }
    }
    fclose(f);
    *n = len;
    return b;
}

/* Copy every regular file of @p dir with suffix @p ext into h/gen-copy-*. */
static void copy_dir(const char *dir, const char *ext, const char *h)
{
    DIR *d = opendir(dir);
    if (!d)
        return; /* optional */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name), el = strlen(ext);
        if (nl <= el || strcmp(e->d_name + nl - el, ext) != 0)
            continue;
        char path[4096], name[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n = 0;
        uint8_t *b = read_all(path, &n);
        if (!b)
            die(path);
        snprintf(name, sizeof name, "gen-copy-%s", e->d_name);
        write_seed(h, name, b, n);
        free(b);
    }
    closedir(d);
}

/* ---- checkpoints ------------------------------------------------------------ */

static void save_model(const char *name, const iadsr_model *m)
{
    size_t need = 0;
    if (iadsr_model_save_to_buffer(m, NULL, 0, &need) != IADSR_OK)
        die("save_to_buffer");
    uint8_t *b = malloc(need);
    if (!b || iadsr_model_save_to_buffer(m, b, need, NULL) != IADSR_OK)
        die("save_to_buffer");
    write_seed("fuzz_checkpoint", name, b, need);
    write_seed("fuzz_checkpoint_crcfix", name, b, need);
    /* broken variants: truncated, bad signature, major 2 */
    if (strstr(name, "sasrec-1.0")) {
        char nm[256];
        snprintf(nm, sizeof nm, "%s.trunc", name);
        write_seed("fuzz_checkpoint", nm, b, need / 3);
        b[1] ^= 0x20;
        snprintf(nm, sizeof nm, "%s.magic", name);
        write_seed("fuzz_checkpoint", nm, b, need);
        b[1] ^= 0x20;
        b[8] = 2;
        snprintf(nm, sizeof nm, "%s.major2", name);
        write_seed("fuzz_checkpoint", nm, b, need);
        write_seed("fuzz_checkpoint_crcfix", nm, b, need);
    }
    free(b);
}

/* A checkpoint file with components (there is no buffer writer for 1.2). */
static void save_checkpoint(const char *name, const iadsr_model *m,
                            const iadsr_aligner *a, const iadsr_gate *g)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz_checkpoint/%s", g_root, name);
    if (iadsr_checkpoint_save(m, a, g, path, IADSR_SAVE_NO_FSYNC) != IADSR_OK)
        die(path);
    g_count++;
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    if (!b)
        die(path);
    write_seed("fuzz_checkpoint_crcfix", name, b, n);
    free(b);
}

static iadsr_model *tiny_model(int32_t backbone, uint32_t flags)
{
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    p.backbone = backbone;
    p.n_items = 6;
    p.dim = 4;
    p.max_seq_len = 3;
    p.flags = flags;
    p.seed = 3;
    if (backbone == IADSR_BACKBONE_SASREC) {
        p.n_layers = 1;
        p.n_heads = 2;
        p.ffn_dim = 4;
    } else if (backbone == IADSR_BACKBONE_GRU4REC) {
        p.n_layers = 1;
    } else {
        p.caser_window = 2;
        p.caser_h_filters = 2;
        p.caser_v_filters = 1;
    }
    iadsr_model *m = NULL;
    if (iadsr_model_create(&m, &p) != IADSR_OK)
        die("model_create");
    return m;
}

static void gen_checkpoints(const char *golden)
{
    iadsr_model *sas = tiny_model(IADSR_BACKBONE_SASREC, 0);
    iadsr_model *pre = tiny_model(IADSR_BACKBONE_SASREC, IADSR_MODEL_F_PRE_LN);
    iadsr_model *gru = tiny_model(IADSR_BACKBONE_GRU4REC, 0);
    iadsr_model *cas = tiny_model(IADSR_BACKBONE_CASER, 0);
    save_model("gen-sasrec-1.0.iadsr", sas);
    save_model("gen-sasrec-preln-1.1.iadsr", pre);
    save_model("gen-gru4rec-1.1.iadsr", gru);
    save_model("gen-caser-1.1.iadsr", cas);

    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    iadsr_aligner *a1 = NULL, *a3 = NULL;
    iadsr_gate *g = NULL, *g2 = NULL;
    if (iadsr_aligner_create(&a3, 4, 3, &dp) != IADSR_OK ||
        iadsr_aligner_create(&a1, 4, 1, &dp) != IADSR_OK ||
        iadsr_gate_create(&g, 4, &dp) != IADSR_OK)
        die("aligner/gate");
    dp.theta = 0.5f;
    dp.max_drop = 0.5f;
    dp.protect_last = 0;
    dp.flags = IADSR_DENOISE_F_COLLAB_ONLY | IADSR_DENOISE_F_CARRY_MASKS;
    if (iadsr_gate_create(&g2, 4, &dp) != IADSR_OK)
        die("gate");
    save_checkpoint("gen-sasrec-denoiser-1.2.iadsr", sas, a3, g);
    save_checkpoint("gen-sasrec-aligner-1.2.iadsr", sas, a1, NULL);
    save_checkpoint("gen-sasrec-gate-1.2.iadsr", sas, NULL, g2);
    save_checkpoint("gen-gru4rec-denoiser-1.2.iadsr", gru, a1, g2);
    save_checkpoint("gen-caser-denoiser-1.2.iadsr", cas, a3, g);
    save_checkpoint("gen-preln-denoiser-1.2.iadsr", pre, a3, g2);

    /* format 1.3: parts with their training records, from one joint
     * epoch on a handful of sequences */
    static const int32_t items[] = {1, 2, 3, 4, 2, 5, 6, 1, 3, 4, 5, 6};
    static const int64_t offsets[] = {0, 4, 8, 12};
    static const float rows[] = {0.1f, 0.2f, -0.3f, 0.5f, 0.0f,  1.0f,
                                 -1.0f, 0.4f, 0.2f, 0.3f, -0.2f, 0.6f,
                                 0.9f, -0.1f, 0.0f, 0.2f, 0.7f,  -0.5f};
    iadsr_dataset *ds = NULL;
    iadsr_semantic *sem = NULL;
    iadsr_trainer *tr = NULL;
    iadsr_aligner *ta = NULL;
    iadsr_gate *tg = NULL;
    iadsr_train_params tp;
    iadsr_train_params_init(&tp);
    tp.split = IADSR_SPLIT_NONE;
    tp.batch_size = 3;
    iadsr_denoise_params_init(&dp);
    dp.flags = IADSR_DENOISE_F_DETECT;
    if (iadsr_dataset_create(&ds, items, offsets, 3, 6, IADSR_FLAG_COPY) !=
            IADSR_OK ||
        iadsr_semantic_create(&sem, rows, 6, 3, 3, IADSR_FLAG_COPY) !=
            IADSR_OK ||
        iadsr_trainer_create_joint(&tr, sas, ds, sem, NULL, &tp, &dp) !=
            IADSR_OK ||
        iadsr_trainer_run_epoch(tr, NULL) != IADSR_OK ||
        iadsr_trainer_snapshot_denoiser(tr, &ta, &tg) != IADSR_OK)
        die("joint epoch for the 1.3 seeds");
    save_checkpoint("gen-sasrec-records-1.3.iadsr", sas, ta, tg);
    save_checkpoint("gen-sasrec-aligner-record-1.3.iadsr", sas, ta, NULL);

    /* format 1.4: the snapshot of a trained model (history-repeat record:
     * the data above repeats no item within a sequence), the same with
     * item ids (one of each byte kind allowed: space, ':', UTF-8, a
     * control byte), and with the aligner and gate too */
    {
        static const char *const ids[] = {"sku-1", "big box", "a:b",
                                          "\xc3\xa9t\xc3\xa9", "ctl\x01x",
                                          "s\"q\\"};
        iadsr_model *snap = NULL, *named = NULL;
        if (iadsr_trainer_snapshot(tr, &snap) != IADSR_OK ||
            iadsr_model_n_items(snap) != 6 ||
            iadsr_model_with_item_ids(&named, snap, ids, 6) != IADSR_OK)
            die("1.4 seeds");
        save_model("gen-sasrec-history-1.4.iadsr", snap);
        save_model("gen-sasrec-item-ids-1.4.iadsr", named);
        save_checkpoint("gen-sasrec-item-ids-denoiser-1.4.iadsr", named, ta,
                        tg);
        iadsr_model_free(named);
        iadsr_model_free(snap);
    }
    iadsr_trainer_free(tr);
    iadsr_aligner_free(ta);
    iadsr_gate_free(tg);
    iadsr_semantic_free(sem);
    iadsr_dataset_free(ds);

    iadsr_aligner_free(a1);
    iadsr_aligner_free(a3);
    iadsr_gate_free(g);
    iadsr_gate_free(g2);
    iadsr_model_free(sas);
    iadsr_model_free(pre);
    iadsr_model_free(gru);
    iadsr_model_free(cas);

    if (golden) {
        copy_dir(golden, ".iadsr", "fuzz_checkpoint");
        copy_dir(golden, ".iadsr", "fuzz_checkpoint_crcfix");
    }
}

/* ---- .npy -------------------------------------------------------------------- */

/* A .npy file: magic, version, header length (2 bytes for 1.x, 4 for
 * 2.x/3.x), the dictionary padded with spaces to a multiple of 64 and
 * ended by '\n', then @p nd data bytes. */
static void npy_raw(const char *name, int major, const char *dict,
                    const void *data, size_t nd)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = pre + dl + 1;
    total = (total + 63) / 64 * 64;
    size_t hl = total - pre;
    uint8_t *b = calloc(total + nd + 1, 1);
    if (!b)
        die("calloc");
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (uint8_t)hl;
        b[9] = (uint8_t)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            b[8 + i] = (uint8_t)(hl >> (8 * i));
    }
    memset(b + pre, ' ', hl);
    memcpy(b + pre, dict, dl);
    b[total - 1] = '\n';
    if (nd)
        memcpy(b + total, data, nd);
    write_seed("fuzz_npy", name, b, total + nd);
    free(b);
}

static void npy_encoded(const char *name, const float *v, int64_t r,
                        int64_t c, int64_t lead)
{
    void *blob = NULL;
    size_t n = 0;
    if (iadsr__npy_encode(v, r, c, c, lead, &blob, &n, "gen_seeds") !=
        IADSR_OK)
        die("npy_encode");
    write_seed("fuzz_npy", name, blob, n);
    iadsr__free(blob);
}

static void gen_npy(const char *npydir)
{
    float v[24];
    for (int i = 0; i < 24; i++)
        v[i] = (float)(i % 7) * 0.25f - 0.5f;
    npy_encoded("gen-f4-2x3.npy", v, 2, 3, 0);
    npy_encoded("gen-f4-1x1.npy", v + 3, 1, 1, 0);
    npy_encoded("gen-f4-4x1-pad.npy", v, 4, 1, 1);
    npy_encoded("gen-f4-0x2.npy", v, 0, 2, 0);
    float z[12] = {1, 2, 3, 0, 0, 0, -1, 0.5f, 2, 0, 0, 0};
    npy_encoded("gen-f4-zero-rows.npy", z, 4, 3, 0);

    const char *f4 = "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (2, 3), }";
    npy_raw("gen-v2.npy", 2, f4, v, 24);
    npy_raw("gen-v3.npy", 3, f4, v, 24);
    npy_raw("gen-v4.npy", 4, f4, v, 24);
    npy_raw("gen-native.npy", 1,
            "{'descr': '=f4', 'fortran_order': False, 'shape': (2, 3), }", v,
            24);
    npy_raw("gen-dq-reordered.npy", 1,
            "{\"shape\": (3, 2), \"descr\": \"<f4\", \"fortran_order\": "
            "False}",
            v, 24);
    uint16_t half[6] = {0x3c00, 0xbc00, 0x7bff, 0x0001, 0x7c00, 0x7e00};
    npy_raw("gen-f2.npy", 1,
            "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }",
            half, sizeof half);
    npy_raw("gen-be.npy", 1,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", v,
            24);
    npy_raw("gen-f8.npy", 1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }", v,
            24);
    npy_raw("gen-fortran.npy", 1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", v,
            24);
    npy_raw("gen-1d.npy", 1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", v,
            24);
    npy_raw("gen-3d.npy", 1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
            v, 24);
    npy_raw("gen-short-data.npy", 1, f4, v, 20);
    npy_raw("gen-long-data.npy", 1, f4, v, 28);
    npy_raw("gen-overflow.npy", 1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(4611686018427387904, 4611686018427387904), }",
            NULL, 0);
    npy_raw("gen-zero-cols.npy", 1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': "
            "(123456789, 0), }",
            NULL, 0);
    npy_raw("gen-missing-key.npy", 1,
            "{'descr': '<f4', 'shape': (2, 3), }", v, 24);
    npy_raw("gen-dup-key.npy", 1,
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
            "'shape': (2, 3), }",
            v, 24);
    float bad[6] = {1, 2, 3, 4, 5, 6};
    uint32_t nan_bits = 0x7fc00001u, inf_bits = 0x7f800000u;
    memcpy(&bad[1], &nan_bits, 4);
    memcpy(&bad[5], &inf_bits, 4);
    npy_raw("gen-nan.npy", 1, f4, bad, 24);
    const uint8_t junk[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0xff};
    write_seed("fuzz_npy", "gen-hlen-past-end.npy", junk, sizeof junk);
    write_seed("fuzz_npy", "gen-empty.npy", "", 0);
    if (npydir)
        copy_dir(npydir, ".npy", "fuzz_npy");
}

/* ---- texts -------------------------------------------------------------------- */

static void text_seed_n(const char *name, uint8_t flags, const char *text,
                        size_t n)
{
    uint8_t *b = malloc(n + 1);
    if (!b)
        die("malloc");
    b[0] = flags;
    memcpy(b + 1, text, n);
    write_seed("fuzz_text", name, b, n + 1);
    free(b);
}

/* literals may hold NUL bytes: their length comes from sizeof */
#define text_seed(name, flags, lit) \
    text_seed_n(name, flags, lit, sizeof(lit) - 1)

static void gen_text(void)
{
    text_seed("gen-basic", 0, "1 1 2 3\n2 2 3\n3 4 1 2 5\n");
    text_seed("gen-crlf-tabs", 0, "10\t3 4\r\n11  5\t\t6 \r\n\r\n12 1");
    text_seed("gen-comments", 4, "# header\n\n   \n1 1\n  # indented\n2 2 2\n");
    text_seed("gen-nitems-small", 1 | (7 << 4), "1 1 2 8\n2 3\n");
    text_seed("gen-nitems-max", 2, "1 2147483646 1\n");
    text_seed("gen-nitems-bad", 3, "1 1\n");
    text_seed("gen-big-user", 0, "9223372036854775807 1\n");
    text_seed("gen-user-overflow", 0, "9223372036854775808 1\n");
    text_seed("gen-item-overflow", 0, "1 2147483647\n");
    text_seed("gen-leading-zeros", 0, "0001 00000000000000000000000007\n");
    text_seed("gen-item-zero", 0, "1 1 0 2\n");
    text_seed("gen-bad-token", 0, "1 1 x2\n");
    text_seed("gen-sign", 0, "1 +1\n");
    text_seed("gen-stray-cr", 0, "1 1\r2\n");
    text_seed("gen-final-cr", 0, "1 1 2\r");
    text_seed("gen-user-only", 0, "1 1\n2\n");
    text_seed("gen-empty", 0, "");
    text_seed("gen-empty-null", 8, "");
    text_seed("gen-only-comment", 0, "# nothing\n");
    text_seed("gen-nul", 0, "1 1\0002 3\n");
    text_seed("gen-many", 0,
              "1 1 2 3 4 5 6 7 8 9 10\n2 10 9 8 7 6 5 4 3 2 1\n"
              "3 5 5 5 5\n4 1\n5 2 2\n6 3 1 4 1 5 9 2 6\n");
}

static void gen_wordvec(void)
{
    static const struct {
        const char *name, *text;
    } seeds[] = {
        {"gen-header", "3 2\nthe 0.1 0.2\ncat -1 2e-3\nsat 4 5\n"},
        {"gen-noheader", "the 0.1 0.2 0.3\ncat -1 2e-3 4\n"},
        {"gen-case", "The 1 0\nthe 0 1\nTHE 1 1\nCat 2 2\n"},
        {"gen-dup", "a 1 2\nb 3 4\na 5 6\n"},
        {"gen-crlf", "x 1.5 2.5\r\ny -0.5 .5\r\n\r\nz 5. 1e3\r\n"},
        {"gen-tabs", "  w1\t1\t2  \n\tw2 3 4\t\n"},
        {"gen-floats", "f 1e-46 3.4028235e38 3.4028236e38 -0 0.1 "
                       "1.00000005960464477539 7.006492e-46\n"},
        {"gen-nan", "n nan 1\n"},
        {"gen-inf", "i 1 -Infinity\n"},
        {"gen-hex", "h 0x1p3 1\n"},
        {"gen-ragged", "a 1 2\nb 1\n"},
        {"gen-header-mismatch", "5 2\na 1 2\n"},
        {"gen-header-dim0", "1 0\na\n"},
        {"gen-word-only", "lonely\n"},
        {"gen-utf8", "na\xc3\xafve 1 2\ncaf\xc3\xa9 3 4\nnaive 5 6\n"},
        {"gen-digits", "42 1 2\n7 3 4\nabc123 5 6\n"},
        {"gen-exp", "e 1e 2\n"},
        {"gen-big-exp", "e 1e99999999999 1e-99999999999\n"},
        {"gen-many-digits",
         "m 0.000000000000000000000000000000000000000000001401298464324817"
         "07051 123456789012345678901234567890\n"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        write_seed("fuzz_wordvec", seeds[i].name, seeds[i].text,
                   strlen(seeds[i].text));
}

/* ---- API programs ------------------------------------------------------------- */

static uint64_t sm_state = 0x1adbeefull;

static uint64_t splitmix(void)
{
    uint64_t z = (sm_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Operation numbers of fuzz_api.c's OPS table. */
enum {
    OP_SCORE, OP_TOPK, OP_SCORE_BATCH, OP_TOPK_BATCH, OP_MODEL_CREATE,
    OP_CTX_CREATE, OP_SEMANTIC, OP_ALIGNER, OP_GATE, OP_DENOISER,
    OP_DATASET, OP_EVALUATE, OP_SAVE, OP_FROM_EMB, OP_TRAINER, OP_MISC,
    OP_FREE, OP_CLEAN_DATASET, N_OPS
};

typedef struct prog {
    uint8_t b[2048];
    size_t n;
} prog;

static void prog_header(prog *p, uint8_t backbone, uint8_t n_items,
                        uint8_t dim, uint8_t L, uint8_t shape)
{
    uint8_t h[6] = {backbone, n_items, dim, L, shape, 1};
    memcpy(p->b, h, 6);
    p->n = 6;
}

/* One record: op, argument length, arguments (random when @p args is
 * NULL and n > 0). */
static void prog_op(prog *p, int op, const uint8_t *args, size_t n)
{
    p->b[p->n++] = (uint8_t)op;
    p->b[p->n++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        p->b[p->n++] = args ? args[i] : (uint8_t)splitmix();
}

static void gen_api(void)
{
    prog p;
    char name[64];
    /* each operation with default (zero) arguments, then random ones */
    for (int op = 0; op < N_OPS; op++) {
        prog_header(&p, (uint8_t)op, 9, 2, 4, 0);
        prog_op(&p, op, NULL, 0);
        snprintf(name, sizeof name, "gen-op%02d-zero", op);
        write_seed("fuzz_api", name, p.b, p.n);
        for (int v = 0; v < 2; v++) {
            prog_header(&p, (uint8_t)splitmix(), (uint8_t)splitmix(),
                        (uint8_t)splitmix(), (uint8_t)splitmix(),
                        (uint8_t)splitmix());
            prog_op(&p, op, NULL, 16 + splitmix() % 48);
            snprintf(name, sizeof name, "gen-op%02d-%d", op, v);
            write_seed("fuzz_api", name, p.b, p.n);
        }
    }
    /* the denoising chain with default arguments: semantic matrix,
     * aligner, gate, denoiser, dataset, clean, evaluate; per backbone */
    static const int chain[] = {OP_SEMANTIC, OP_ALIGNER,  OP_GATE,
                                OP_DENOISER, OP_DATASET,  OP_CLEAN_DATASET,
                                OP_EVALUATE, OP_FREE,     OP_DENOISER,
                                OP_TRAINER,  OP_SAVE,     OP_MISC};
    for (int bb = 0; bb < 3; bb++) {
        prog_header(&p, (uint8_t)bb, 11, (uint8_t)(bb + 1), 3, 0x15);
        for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++)
            prog_op(&p, chain[i], NULL, 0);
        snprintf(name, sizeof name, "gen-chain-%d", bb);
        write_seed("fuzz_api", name, p.b, p.n);
    }
    /* the same chain with a dataset of longer rows and a clean of a
     * sequence: dataset args pick 3 users of length up to L + 2 */
    static const uint8_t ds_args[] = {0, 2, 5, 4, 3, 1, 2, 3, 4, 5, 6,
                                      7, 8, 9, 10, 11, 1, 2, 3, 4, 5};
    static const uint8_t dn_args[] = {0, 7, 3, 1, 2, 3, 4, 5, 6, 7, 8,
                                      9, 0, 0};
    prog_header(&p, 0, 11, 2, 3, 0);
    prog_op(&p, OP_SEMANTIC, NULL, 0);
    prog_op(&p, OP_ALIGNER, NULL, 0);
    prog_op(&p, OP_GATE, NULL, 0);
    prog_op(&p, OP_DENOISER, dn_args, sizeof dn_args);
    prog_op(&p, OP_DATASET, ds_args, sizeof ds_args);
    prog_op(&p, OP_CLEAN_DATASET, NULL, 0);
    prog_op(&p, OP_EVALUATE, NULL, 0);
    prog_op(&p, OP_TOPK_BATCH, ds_args, sizeof ds_args);
    prog_op(&p, OP_SCORE_BATCH, ds_args, sizeof ds_args);
    write_seed("fuzz_api", "gen-chain-args", p.b, p.n);
    /* longer random programs */
    for (int k = 0; k < 12; k++) {
        prog_header(&p, (uint8_t)splitmix(), (uint8_t)splitmix(),
                    (uint8_t)splitmix(), (uint8_t)splitmix(),
                    (uint8_t)splitmix());
        for (int i = 0; i < 10; i++)
            prog_op(&p, (int)(splitmix() % N_OPS), NULL,
                    splitmix() % 64);
        snprintf(name, sizeof name, "gen-prog-%02d", k);
        write_seed("fuzz_api", name, p.b, p.n);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_seeds CORPUS_DIR [GOLDEN_DIR NPY_DIR]\n");
        return 2;
    }
    g_root = argv[1];
    if (mkdir(g_root, 0755) != 0 && errno != EEXIST)
        die(g_root);
    const char *hs[] = {"fuzz_checkpoint", "fuzz_checkpoint_crcfix",
                        "fuzz_npy",        "fuzz_text",
                        "fuzz_wordvec",    "fuzz_api"};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        ensure_dir(hs[i]);
    gen_checkpoints(argc > 2 ? argv[2] : NULL);
    gen_npy(argc > 3 ? argv[3] : NULL);
    gen_text();
    gen_wordvec();
    gen_api();
    printf("gen_seeds: %d files written under %s\n", g_count, g_root);
    return 0;
}
