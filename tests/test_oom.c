/* Tests: allocation failures of every public entry point that allocates.
 *
 * One table of cases (an entry point, possibly in several variants) and one
 * generic loop (SQLite style): a clean run counts the allocation attempts A
 * of the operation; then, transient and persistent, allocation k = 1..A is
 * failed in turn (iadsr__alloc_fail_after). Every injected failure must
 * return IADSR_ERR_NOMEM with a last-error message, set the out-pointers to
 * NULL, leave the caller's buffers and files alone where the header
 * promises it, and leak nothing (iadsr__alloc_live(), which is thread-local:
 * every case runs with n_threads = 1). k = A + 1 must then succeed.
 * Entry points that the header says never allocate are checked to make 0
 * attempts.
 *
 * Counters live in a shared anonymous mapping made when the suite is built,
 * so the last test prints correct totals with and without CK_FORK (forked
 * tests write into the same pages). The summary test also runs any case
 * that was not run before it (e.g. when CK_RUN_CASE selects only it).
 * IADSR_TEST_VERBOSE=1 prints one line per case.
 * SPDX-License-Identifier: MIT
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, mkdtemp */
#include "testutil.h"
#include "common/rng.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *suite_oom(void);

#define NI 24 /* items */
#define NU 30 /* users */
#define DIM 8 /* backbone width */
#define LEN 8 /* max_seq_len */
#define DS 8  /* semantic width D */
#define NS (NI + 1)

/* ---- fixture ------------------------------------------------------------ */

/* Everything the cases use, built with the hook disarmed. Tiny sizes: the
 * suite also runs under ASan and valgrind. */
typedef struct fix {
    int32_t *items; /* the dataset's CSR (malloc'ed) */
    int64_t offs[NU + 1];
    iadsr_dataset *data;
    iadsr_model *model[3]; /* SASRec, GRU4Rec, Caser */
    iadsr_model_params mp[3];
    float *emb;  /* (NI + 1) x DIM */
    float *rows; /* NI x DS semantic rows */
    iadsr_semantic *sem, *usem;
    iadsr_aligner *al;
    iadsr_gate *gate;
    iadsr_denoiser *dn;
    iadsr_gate *dgate;     /* a detector gate */
    iadsr_denoiser *ddn;   /* ... and its denoiser */
    iadsr_ctx *ctx[3]; /* one per model */
    iadsr_trainer *tr;  /* for snapshot; per-iteration ones for run_epoch */
    iadsr_trainer *jtr; /* joint, for snapshot_denoiser */
    char *text;
    size_t text_len;
    unsigned char *ckpt, *ckpt_full, *npy; /* file bytes (malloc'ed) */
    size_t ckpt_len, ckpt_full_len, npy_len;
    char dir[512];  /* inputs */
    char sdir[600]; /* save targets: holds only "target" */
    char text_path[600], ckpt_path[600], ckpt_full_path[600], npy_path[600];
    char target[700];
} fix;

static const char OLD_BYTES[] = "previous contents of the file\n";

static void fix_model_params(iadsr_model_params *p, int32_t backbone)
{
    iadsr_model_params_init(p);
    p->backbone = backbone;
    p->n_items = NI;
    p->dim = DIM;
    p->max_seq_len = LEN;
    p->dropout = 0.1f;
    p->seed = 5;
    if (backbone == IADSR_BACKBONE_CASER) {
        p->caser_window = 4;
        p->caser_h_filters = 2;
        p->caser_v_filters = 2;
    } else {
        p->n_layers = 1;
    }
}

static void fix_train_params(iadsr_train_params *tp, int32_t split,
                             int32_t epochs)
{
    iadsr_train_params_init(tp);
    tp->split = split;
    tp->max_epochs = epochs;
    tp->batch_size = 16; /* two mini-batches per epoch */
    tp->patience = 0;
    tp->n_threads = 1; /* the live count is thread-local */
    tp->learning_rate = 3e-3f;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    ck_assert(n > 0 && (size_t)n < cap);
}

static void fix_init(fix *f)
{
    memset(f, 0, sizeof *f);
    iadsr__alloc_fail_after(0, 0);
    /* the dataset: synthetic users, lengths 4..12 (some longer than L) */
    iadsr__synth_params sp;
    iadsr__synth_params_init(&sp);
    sp.n_users = NU;
    sp.n_items = NI;
    sp.n_topics = 4;
    sp.min_len = 4;
    sp.max_len = 12;
    sp.seed = 3;
    int32_t *items = NULL;
    int64_t *offs = NULL, nu = 0;
    TU_OK(iadsr__synth_generate(&sp, &items, &offs, &nu));
    ck_assert_int_eq(nu, NU);
    f->items = malloc((size_t)offs[NU] * sizeof(int32_t));
    ck_assert_ptr_nonnull(f->items);
    memcpy(f->items, items, (size_t)offs[NU] * sizeof(int32_t));
    memcpy(f->offs, offs, sizeof f->offs);
    iadsr__free(items);
    iadsr__free(offs);
    TU_OK(iadsr_dataset_create(&f->data, f->items, f->offs, NU, NI,
                               IADSR_FLAG_COPY));

    static const int32_t bb[3] = {IADSR_BACKBONE_SASREC,
                                  IADSR_BACKBONE_GRU4REC,
                                  IADSR_BACKBONE_CASER};
    for (int i = 0; i < 3; i++) {
        fix_model_params(&f->mp[i], bb[i]);
        TU_OK(iadsr_model_create(&f->model[i], &f->mp[i]));
    }
    f->emb = malloc((size_t)NS * DIM * sizeof(float));
    f->rows = malloc((size_t)NI * DS * sizeof(float));
    ck_assert(f->emb && f->rows);
    memcpy(f->emb, iadsr_model_item_embeddings(f->model[0]),
           (size_t)NS * DIM * sizeof(float));
    iadsr__rng r;
    iadsr__rng_seed(&r, 9);
    for (int i = 0; i < NI * DS; i++)
        f->rows[i] = (float)iadsr__rng_normal(&r);
    TU_OK(iadsr_semantic_create(&f->sem, f->rows, NI, DS, DS,
                                IADSR_FLAG_COPY));
    /* user rows: the first NU * DS values of a longer draw */
    float urows[NU * DS];
    for (int i = 0; i < NU * DS; i++)
        urows[i] = (float)iadsr__rng_normal(&r);
    TU_OK(iadsr_semantic_create(&f->usem, urows, NU, DS, DS,
                                IADSR_FLAG_COPY));

    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    TU_OK(iadsr_aligner_create(&f->al, DIM, DS, &dp));
    TU_OK(iadsr_gate_create(&f->gate, DIM, &dp));
    TU_OK(iadsr_denoiser_create(&f->dn, f->model[0], f->al, f->gate,
                                f->sem));
    dp.flags = IADSR_DENOISE_F_DETECT;
    TU_OK(iadsr_gate_create(&f->dgate, DIM, &dp));
    TU_OK(iadsr_denoiser_create(&f->ddn, f->model[0], f->al, f->dgate,
                                f->sem));
    for (int i = 0; i < 3; i++)
        TU_OK(iadsr_ctx_create(&f->ctx[i], f->model[i], NULL));
    iadsr_train_params tp;
    fix_train_params(&tp, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
    TU_OK(iadsr_trainer_create(&f->tr, f->model[0], f->data, &tp));
    TU_OK(iadsr_trainer_create_joint(&f->jtr, f->model[0], f->data, f->sem,
                                     NULL, &tp, &dp));

    /* the text form of the dataset */
    size_t cap = 64 + (size_t)f->offs[NU] * 12 + NU * 24, n = 0;
    f->text = malloc(cap);
    ck_assert_ptr_nonnull(f->text);
    for (int u = 0; u < NU; u++) {
        n += (size_t)snprintf(f->text + n, cap - n, "%d", 100 + u);
        for (int64_t t = f->offs[u]; t < f->offs[u + 1]; t++)
            n += (size_t)snprintf(f->text + n, cap - n, " %d",
                                  (int)f->items[t]);
        n += (size_t)snprintf(f->text + n, cap - n, "\n");
        ck_assert_uint_lt(n, cap);
    }
    f->text_len = n;

    /* input files and their bytes */
    path_in(f->dir, sizeof f->dir, tu_tmp_dir(), "oom.XXXXXX");
    ck_assert_msg(mkdtemp(f->dir) != NULL, "mkdtemp %s", f->dir);
    path_in(f->sdir, sizeof f->sdir, f->dir, "save");
    ck_assert_int_eq(mkdir(f->sdir, 0700), 0);
    path_in(f->target, sizeof f->target, f->sdir, "target");
    path_in(f->text_path, sizeof f->text_path, f->dir, "data.txt");
    path_in(f->ckpt_path, sizeof f->ckpt_path, f->dir, "model.iadsr");
    path_in(f->ckpt_full_path, sizeof f->ckpt_full_path, f->dir,
            "full.iadsr");
    path_in(f->npy_path, sizeof f->npy_path, f->dir, "sem.npy");
    tu_write_file(f->text_path, f->text, f->text_len);
    TU_OK(iadsr_model_save(f->model[0], f->ckpt_path, IADSR_SAVE_NO_FSYNC));
    TU_OK(iadsr_checkpoint_save(f->model[0], f->al, f->gate,
                                f->ckpt_full_path, IADSR_SAVE_NO_FSYNC));
    TU_OK(iadsr_semantic_save_npy(f->sem, f->npy_path, IADSR_SAVE_NO_FSYNC));
    f->ckpt = tu_read_file(f->ckpt_path, &f->ckpt_len);
    f->ckpt_full = tu_read_file(f->ckpt_full_path, &f->ckpt_full_len);
    f->npy = tu_read_file(f->npy_path, &f->npy_len);
}

static void fix_free(fix *f)
{
    iadsr__alloc_fail_after(0, 0);
    iadsr_trainer_free(f->tr);
    iadsr_trainer_free(f->jtr);
    for (int i = 0; i < 3; i++)
        iadsr_ctx_free(f->ctx[i]);
    iadsr_denoiser_free(f->dn);
    iadsr_denoiser_free(f->ddn);
    iadsr_gate_free(f->dgate);
    iadsr_gate_free(f->gate);
    iadsr_aligner_free(f->al);
    iadsr_semantic_free(f->sem);
    iadsr_semantic_free(f->usem);
    for (int i = 0; i < 3; i++)
        iadsr_model_free(f->model[i]);
    iadsr_dataset_free(f->data);
    free(f->items);
    free(f->emb);
    free(f->rows);
    free(f->text);
    free(f->ckpt);
    free(f->ckpt_full);
    free(f->npy);
    /* the save directory may hold only the target */
    unlink(f->target);
    rmdir(f->sdir);
    unlink(f->text_path);
    unlink(f->ckpt_path);
    unlink(f->ckpt_full_path);
    unlink(f->npy_path);
    rmdir(f->dir);
}

/* ---- what an operation reports ------------------------------------------ */

/* A failed operation notes here what it found wrong besides the status:
 * an out-pointer that is not NULL, a caller buffer or file it changed. */
typedef struct chk {
    char what[160]; /* first problem; empty = none */
} chk;

#define CHK(c, cond, ...)                                                     \
    do {                                                                      \
        if (!(cond) && !(c)->what[0])                                         \
            snprintf((c)->what, sizeof (c)->what, __VA_ARGS__);               \
    } while (0)

#define SENT(T) TU_SENTINEL(T)

/* Non-zero if the file at @p path holds exactly @p len bytes @p b. */
static int file_is(const char *path, const void *b, size_t len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    unsigned char buf[sizeof OLD_BYTES + 8];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    return n == len && memcmp(buf, b, len) == 0;
}

/* Number of entries of @p dir other than "." and "..". */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Saves: a failed save leaves the previous target as it was, and no
 * temporary file behind. */
static void check_target(const fix *f, chk *c)
{
    CHK(c, file_is(f->target, OLD_BYTES, sizeof OLD_BYTES - 1),
        "the previous file at the target was changed");
    CHK(c, dir_entries(f->sdir) == 1, "%d entries left in the save directory",
        dir_entries(f->sdir));
}

static void pre_target(fix *f)
{
    tu_write_file(f->target, OLD_BYTES, sizeof OLD_BYTES - 1);
}

/* ---- the operations ----------------------------------------------------- */

typedef int (*op_fn)(fix *f, chk *c);

static int op_dataset_copy(fix *f, chk *c)
{
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_dataset_create(&d, f->items, f->offs, NU, NI,
                                  IADSR_FLAG_COPY);
    CHK(c, rc == IADSR_OK || d == NULL, "out is not NULL");
    if (!rc)
        iadsr_dataset_free(d);
    return rc;
}

static int op_dataset_borrow(fix *f, chk *c)
{
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_dataset_create(&d, f->items, f->offs, NU, 0,
                                  IADSR_FLAG_BORROW);
    CHK(c, rc == IADSR_OK || d == NULL, "out is not NULL");
    if (!rc)
        iadsr_dataset_free(d);
    return rc;
}

static int op_dataset_parse(fix *f, chk *c)
{
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_dataset_parse_text(&d, f->text, f->text_len, 0, "oom");
    CHK(c, rc == IADSR_OK || d == NULL, "out is not NULL");
    if (!rc)
        iadsr_dataset_free(d);
    return rc;
}

static int op_dataset_load(fix *f, chk *c)
{
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_dataset_load_text(&d, f->text_path, NI);
    CHK(c, rc == IADSR_OK || d == NULL, "out is not NULL");
    if (!rc)
        iadsr_dataset_free(d);
    return rc;
}

static int model_create_bb(fix *f, chk *c, int i)
{
    iadsr_model *m = SENT(iadsr_model);
    int rc = iadsr_model_create(&m, &f->mp[i]);
    CHK(c, rc == IADSR_OK || m == NULL, "out is not NULL");
    if (!rc)
        iadsr_model_free(m);
    return rc;
}

static int op_model_sasrec(fix *f, chk *c) { return model_create_bb(f, c, 0); }
static int op_model_gru4rec(fix *f, chk *c) { return model_create_bb(f, c, 1); }
static int op_model_caser(fix *f, chk *c) { return model_create_bb(f, c, 2); }

static int op_model_from_emb(fix *f, chk *c)
{
    iadsr_model *m = SENT(iadsr_model);
    int rc = iadsr_model_create_from_embeddings(&m, &f->mp[0], f->emb, NS,
                                                DIM, DIM);
    CHK(c, rc == IADSR_OK || m == NULL, "out is not NULL");
    if (!rc)
        iadsr_model_free(m);
    return rc;
}

static int op_model_get_params(fix *f, chk *c)
{
    (void)c;
    iadsr_model_params p;
    iadsr_model_params_init(&p);
    return iadsr_model_get_params(f->model[2], &p);
}

static int op_model_save(fix *f, chk *c)
{
    int rc = iadsr_model_save(f->model[0], f->target, IADSR_SAVE_NO_FSYNC);
    if (rc)
        check_target(f, c);
    return rc;
}

static int op_model_save_buffer(fix *f, chk *c)
{
    (void)c;
    unsigned char *buf = malloc(f->ckpt_len);
    ck_assert_ptr_nonnull(buf);
    size_t need = 0;
    int rc = iadsr_model_save_to_buffer(f->model[0], buf, f->ckpt_len, &need);
    if (!rc)
        ck_assert(need == f->ckpt_len && memcmp(buf, f->ckpt, need) == 0);
    free(buf);
    return rc;
}

static int op_model_load(fix *f, chk *c)
{
    iadsr_model *m = SENT(iadsr_model);
    int rc = iadsr_model_load(&m, f->ckpt_full_path, 0);
    CHK(c, rc == IADSR_OK || m == NULL, "out is not NULL");
    if (!rc)
        iadsr_model_free(m);
    return rc;
}

static int op_model_load_buffer(fix *f, chk *c)
{
    iadsr_model *m = SENT(iadsr_model);
    int rc = iadsr_model_load_from_buffer(&m, f->ckpt, f->ckpt_len, 0);
    CHK(c, rc == IADSR_OK || m == NULL, "out is not NULL");
    if (!rc)
        iadsr_model_free(m);
    return rc;
}

/* -- training -- */

static int trainer_create_bb(fix *f, chk *c, int i)
{
    iadsr_train_params tp;
    fix_train_params(&tp, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
    iadsr_trainer *t = SENT(iadsr_trainer);
    int rc = iadsr_trainer_create(&t, f->model[i], f->data, &tp);
    CHK(c, rc == IADSR_OK || t == NULL, "out is not NULL");
    if (!rc)
        iadsr_trainer_free(t);
    return rc;
}

static int op_trainer_sasrec(fix *f, chk *c)
{
    return trainer_create_bb(f, c, 0);
}
static int op_trainer_gru4rec(fix *f, chk *c)
{
    return trainer_create_bb(f, c, 1);
}
static int op_trainer_caser(fix *f, chk *c)
{
    return trainer_create_bb(f, c, 2);
}

static int joint_create(fix *f, chk *c, const iadsr_semantic *usem,
                        uint32_t dflags)
{
    iadsr_train_params tp;
    fix_train_params(&tp, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    dp.flags = dflags;
    iadsr_trainer *t = SENT(iadsr_trainer);
    int rc = iadsr_trainer_create_joint(&t, f->model[0], f->data, f->sem,
                                        usem, &tp, &dp);
    CHK(c, rc == IADSR_OK || t == NULL, "out is not NULL");
    if (!rc)
        iadsr_trainer_free(t);
    return rc;
}

static int op_joint(fix *f, chk *c) { return joint_create(f, c, NULL, 0); }
static int op_joint_usem(fix *f, chk *c)
{
    return joint_create(f, c, f->usem, 0);
}
static int op_joint_masks(fix *f, chk *c)
{
    return joint_create(f, c, NULL, IADSR_DENOISE_F_CARRY_MASKS);
}

/* run_epoch and fit mutate a trainer: a fresh one per iteration (made by
 * the pre hook, with the hook disarmed) in f->tr's place. */
static iadsr_trainer *g_iter_tr;

/* @p joint: 0 = iadsr_trainer_create() of model @p i, 1 = joint with the
 * default denoise params, 2 = joint with the carried masks and the
 * collaborative-only gate. */
static void pre_trainer(fix *f, int i, int joint, int32_t split,
                        int32_t epochs)
{
    iadsr_train_params tp;
    fix_train_params(&tp, split, epochs);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    if (joint == 2)
        dp.flags = IADSR_DENOISE_F_CARRY_MASKS | IADSR_DENOISE_F_COLLAB_ONLY;
    if (joint)
        TU_OK(iadsr_trainer_create_joint(&g_iter_tr, f->model[i], f->data,
                                         f->sem, NULL, &tp, &dp));
    else
        TU_OK(iadsr_trainer_create(&g_iter_tr, f->model[i], f->data, &tp));
}

static void pre_epoch(fix *f) { pre_trainer(f, 0, 0, IADSR_SPLIT_NONE, 1); }
static void pre_epoch_gru(fix *f) { pre_trainer(f, 1, 0, IADSR_SPLIT_NONE, 1); }
static void pre_epoch_caser(fix *f)
{
    pre_trainer(f, 2, 0, IADSR_SPLIT_NONE, 1);
}
static void pre_epoch_joint(fix *f)
{
    pre_trainer(f, 0, 1, IADSR_SPLIT_NONE, 1);
}
/* the second epoch is the first that applies carried masks */
static void pre_epoch2_masks(fix *f)
{
    pre_trainer(f, 0, 2, IADSR_SPLIT_NONE, 2);
    TU_OK(iadsr_trainer_run_epoch(g_iter_tr, NULL));
}
static void pre_fit(fix *f)
{
    pre_trainer(f, 0, 0, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
}
static void pre_fit_joint(fix *f)
{
    pre_trainer(f, 0, 1, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
}
static void pre_fit_masks(fix *f)
{
    pre_trainer(f, 0, 2, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
}

static void post_trainer(fix *f)
{
    (void)f;
    iadsr_trainer_free(g_iter_tr);
    g_iter_tr = NULL;
}

static int op_run_epoch(fix *f, chk *c)
{
    (void)f;
    double loss = -1.0;
    int rc = iadsr_trainer_run_epoch(g_iter_tr, &loss);
    CHK(c, rc == IADSR_OK || loss == -1.0, "loss_out written on failure");
    return rc;
}

static int op_fit(fix *f, chk *c)
{
    (void)f;
    (void)c;
    return iadsr_trainer_fit(g_iter_tr, NULL, NULL);
}

/* After a failure the trainer must still work (nothing it owns is
 * corrupted): an epoch, or the rest of the fit, must now succeed. */
static int after_run_epoch(fix *f)
{
    (void)f;
    double loss = NAN;
    int rc = iadsr_trainer_run_epoch(g_iter_tr, &loss);
    return rc == IADSR_OK && isfinite(loss) ? IADSR_OK
                                            : (rc ? rc : IADSR_ERR_NUMERIC);
}

static int after_fit(fix *f)
{
    (void)f;
    int rc = iadsr_trainer_fit(g_iter_tr, NULL, NULL);
    if (rc)
        return rc;
    iadsr_model *m = NULL;
    rc = iadsr_trainer_snapshot(g_iter_tr, &m);
    iadsr_model_free(m);
    return rc;
}

static int op_snapshot(fix *f, chk *c)
{
    iadsr_model *m = SENT(iadsr_model);
    int rc = iadsr_trainer_snapshot(f->tr, &m);
    CHK(c, rc == IADSR_OK || m == NULL, "out is not NULL");
    if (!rc)
        iadsr_model_free(m);
    return rc;
}

static int snap_den(fix *f, chk *c, int want_a, int want_g)
{
    iadsr_aligner *a = SENT(iadsr_aligner);
    iadsr_gate *g = SENT(iadsr_gate);
    int rc = iadsr_trainer_snapshot_denoiser(f->jtr, want_a ? &a : NULL,
                                             want_g ? &g : NULL);
    if (rc) {
        CHK(c, !want_a || a == NULL, "aligner is not NULL");
        CHK(c, !want_g || g == NULL, "gate is not NULL");
    } else {
        if (want_a)
            iadsr_aligner_free(a);
        if (want_g)
            iadsr_gate_free(g);
    }
    return rc;
}

static int op_snap_den(fix *f, chk *c) { return snap_den(f, c, 1, 1); }
static int op_snap_den_gate(fix *f, chk *c) { return snap_den(f, c, 0, 1); }

/* -- inference -- */

static int ctx_create_bb(fix *f, chk *c, int i)
{
    iadsr_ctx_params p;
    iadsr_ctx_params_init(&p);
    p.max_batch = 4;
    iadsr_ctx *x = SENT(iadsr_ctx);
    int rc = iadsr_ctx_create(&x, f->model[i], &p);
    CHK(c, rc == IADSR_OK || x == NULL, "out is not NULL");
    if (!rc)
        iadsr_ctx_free(x);
    return rc;
}

static int op_ctx_sasrec(fix *f, chk *c) { return ctx_create_bb(f, c, 0); }
static int op_ctx_gru4rec(fix *f, chk *c) { return ctx_create_bb(f, c, 1); }
static int op_ctx_caser(fix *f, chk *c) { return ctx_create_bb(f, c, 2); }

/* Scoring through the context of model @p i (all four calls, so that
 * each backbone's scoring path is covered): the header promises that
 * scoring never allocates. */
static int ctx_scoring(fix *f, int i, int which)
{
    static float sc[NU * NS];
    static int32_t ids[NU * NI];
    static float v[NU * NI];
    /* the longest user: more than L items */
    int64_t u = 0;
    for (int64_t w = 1; w < NU; w++)
        if (f->offs[w + 1] - f->offs[w] > f->offs[u + 1] - f->offs[u])
            u = w;
    const int32_t *seq = f->items + f->offs[u];
    int32_t n = (int32_t)(f->offs[u + 1] - f->offs[u]);
    switch (which) {
    case 0:
        return iadsr_ctx_score(f->ctx[i], seq, n, sc, NS);
    case 1:
        return iadsr_ctx_topk(f->ctx[i], seq, n, NI,
                              IADSR_TOPK_EXCLUDE_HISTORY, ids, v);
    case 2:
        return iadsr_ctx_score_batch(f->ctx[i], f->items, f->offs, NU, sc,
                                     NU * NS);
    default:
        return iadsr_ctx_topk_batch(f->ctx[i], f->items, f->offs, NU, NI,
                                    IADSR_TOPK_EXCLUDE_HISTORY, ids, v);
    }
}

#define CTX_OPS(name, i)                                                      \
    static int op_score_##name(fix *f, chk *c)                                \
    {                                                                         \
        (void)c;                                                              \
        return ctx_scoring(f, i, 0);                                          \
    }                                                                         \
    static int op_topk_##name(fix *f, chk *c)                                 \
    {                                                                         \
        (void)c;                                                              \
        return ctx_scoring(f, i, 1);                                          \
    }                                                                         \
    static int op_score_batch_##name(fix *f, chk *c)                          \
    {                                                                         \
        (void)c;                                                              \
        return ctx_scoring(f, i, 2);                                          \
    }                                                                         \
    static int op_topk_batch_##name(fix *f, chk *c)                           \
    {                                                                         \
        (void)c;                                                              \
        return ctx_scoring(f, i, 3);                                          \
    }
CTX_OPS(sasrec, 0)
CTX_OPS(gru4rec, 1)
CTX_OPS(caser, 2)

static int op_evaluate(fix *f, chk *c)
{
    (void)c;
    iadsr_eval_params p;
    iadsr_eval_params_init(&p);
    p.n_threads = 1;
    p.flags = IADSR_TOPK_EXCLUDE_HISTORY;
    iadsr_metrics m;
    m.struct_size = sizeof m;
    return iadsr_evaluate(f->model[0], f->data, &p, &m);
}

/* -- semantic matrices and .npy -- */

static int sem_create(fix *f, chk *c, uint32_t flags)
{
    iadsr_semantic *s = SENT(iadsr_semantic);
    int64_t n = NI;
    const float *data = f->rows;
    if (flags & IADSR_SEMANTIC_ROW0_PADDING) {
        n = NI - 1; /* row 0 is padding: items 1..NI-1 */
    }
    int rc = iadsr_semantic_create(&s, data, n, DS, DS, flags);
    CHK(c, rc == IADSR_OK || s == NULL, "out is not NULL");
    if (!rc)
        iadsr_semantic_free(s);
    return rc;
}

static int op_sem_copy(fix *f, chk *c)
{
    return sem_create(f, c, IADSR_FLAG_COPY);
}
static int op_sem_borrow(fix *f, chk *c)
{
    return sem_create(f, c, IADSR_FLAG_BORROW);
}
static int op_sem_pad(fix *f, chk *c)
{
    return sem_create(f, c, IADSR_SEMANTIC_ROW0_PADDING);
}

static int op_sem_parse(fix *f, chk *c)
{
    iadsr_semantic *s = SENT(iadsr_semantic);
    int rc = iadsr_semantic_parse_npy(&s, f->npy, f->npy_len, 0);
    CHK(c, rc == IADSR_OK || s == NULL, "out is not NULL");
    if (!rc)
        iadsr_semantic_free(s);
    return rc;
}

static int op_sem_load(fix *f, chk *c)
{
    iadsr_semantic *s = SENT(iadsr_semantic);
    int rc = iadsr_semantic_load_npy(&s, f->npy_path, 0);
    CHK(c, rc == IADSR_OK || s == NULL, "out is not NULL");
    if (!rc)
        iadsr_semantic_free(s);
    return rc;
}

static int op_sem_save(fix *f, chk *c)
{
    int rc = iadsr_semantic_save_npy(f->sem, f->target,
                                     IADSR_SAVE_NO_FSYNC |
                                         IADSR_SEMANTIC_ROW0_PADDING);
    if (rc)
        check_target(f, c);
    return rc;
}

static int op_sem_check(fix *f, chk *c)
{
    (void)c;
    return iadsr_semantic_check(f->sem, NI, DS);
}

static int op_sem_scores(fix *f, chk *c)
{
    (void)c;
    float sc[NS];
    return iadsr_semantic_scores(f->sem, f->items, (int32_t)f->offs[1], sc,
                                 NS);
}

static int op_sem_evaluate(fix *f, chk *c)
{
    (void)c;
    iadsr_eval_params p;
    iadsr_eval_params_init(&p);
    p.n_threads = 1;
    iadsr_metrics m;
    m.struct_size = sizeof m;
    return iadsr_semantic_evaluate(f->sem, f->data, &p, &m);
}

static int op_npy_decode(fix *f, chk *c)
{
    (void)c;
    float out[NI * DS];
    int64_t r = 0, k = 0;
    return iadsr_npy_decode(f->npy, f->npy_len, out, NI * DS, &r, &k);
}

static int op_npy_save(fix *f, chk *c)
{
    int rc = iadsr_npy_save(f->target, f->rows, NI, DS, DS,
                            IADSR_SAVE_NO_FSYNC);
    if (rc)
        check_target(f, c);
    return rc;
}

/* -- aligner, gate, denoiser -- */

static int op_aligner_create(fix *f, chk *c)
{
    (void)f;
    iadsr_aligner *a = SENT(iadsr_aligner);
    int rc = iadsr_aligner_create(&a, DIM, DS, NULL);
    CHK(c, rc == IADSR_OK || a == NULL, "out is not NULL");
    if (!rc)
        iadsr_aligner_free(a);
    return rc;
}

static int op_aligner_project(fix *f, chk *c)
{
    (void)c;
    float out[DIM];
    return iadsr_aligner_project(f->al, 2, f->rows, out);
}

static int op_gate_create(fix *f, chk *c)
{
    (void)f;
    iadsr_gate *g = SENT(iadsr_gate);
    int rc = iadsr_gate_create(&g, DIM, NULL);
    CHK(c, rc == IADSR_OK || g == NULL, "out is not NULL");
    if (!rc)
        iadsr_gate_free(g);
    return rc;
}

static int op_gate_with(fix *f, chk *c)
{
    iadsr_denoise_params p;
    iadsr_denoise_params_init(&p);
    p.theta = 0.5f;
    p.max_drop = 0.5f;
    iadsr_gate *g = SENT(iadsr_gate);
    int rc = iadsr_gate_with_params(&g, f->gate, &p);
    CHK(c, rc == IADSR_OK || g == NULL, "out is not NULL");
    if (!rc)
        iadsr_gate_free(g);
    return rc;
}

static int op_gate_get(fix *f, chk *c)
{
    (void)c;
    iadsr_denoise_params p;
    iadsr_denoise_params_init(&p);
    return iadsr_gate_get_params(f->gate, &p);
}

static int op_denoiser_create(fix *f, chk *c)
{
    iadsr_denoiser *dn = SENT(iadsr_denoiser);
    int rc = iadsr_denoiser_create(&dn, f->model[0], f->al, f->gate, f->sem);
    CHK(c, rc == IADSR_OK || dn == NULL, "out is not NULL");
    if (!rc)
        iadsr_denoiser_free(dn);
    return rc;
}

/* "Outputs are written only on success": every output is pre-filled with
 * a pattern that a failed call must leave as it was. */
static int denoiser_clean(fix *f, chk *c, int with_user)
{
    /* the longest user: longer than L, so windows are used */
    int64_t best = 0;
    for (int64_t u = 1; u < NU; u++)
        if (f->offs[u + 1] - f->offs[u] > f->offs[best + 1] - f->offs[best])
            best = u;
    const int32_t *seq = f->items + f->offs[best];
    int32_t n = (int32_t)(f->offs[best + 1] - f->offs[best]);
    uint8_t keep[64];
    float scores[64];
    int32_t cleaned[64], n_kept = -7;
    ck_assert_int_le(n, 64);
    memset(keep, 0xa5, sizeof keep);
    memset(scores, 0xa5, sizeof scores);
    memset(cleaned, 0xa5, sizeof cleaned);
    uint8_t pat[sizeof scores];
    memset(pat, 0xa5, sizeof pat);
    int rc = iadsr_denoiser_clean(f->dn, seq, n,
                                  with_user ? iadsr_semantic_row(f->usem, 1)
                                            : NULL,
                                  keep, scores, cleaned, &n_kept);
    if (rc) {
        CHK(c, memcmp(keep, pat, sizeof keep) == 0, "keep written");
        CHK(c, memcmp(scores, pat, sizeof scores) == 0, "scores written");
        CHK(c, memcmp(cleaned, pat, sizeof cleaned) == 0, "cleaned written");
        CHK(c, n_kept == -7, "n_kept written");
    }
    return rc;
}

static int op_clean(fix *f, chk *c) { return denoiser_clean(f, c, 0); }
static int op_clean_user(fix *f, chk *c) { return denoiser_clean(f, c, 1); }

static int clean_dataset(fix *f, chk *c, int32_t split,
                         const iadsr_semantic *usem)
{
    static uint8_t keep[NU * 16];
    static float scores[NU * 16];
    ck_assert_int_le(f->offs[NU], NU * 16);
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_denoiser_clean_dataset(f->dn, f->data, split, usem, 1, &d,
                                          keep, scores);
    CHK(c, rc == IADSR_OK || d == NULL, "out is not NULL");
    if (!rc)
        iadsr_dataset_free(d);
    return rc;
}

static int op_propose_theta(fix *f, chk *c)
{
    float th = 7.0f;
    double rate = -1.0;
    int rc = iadsr_denoiser_propose_theta(f->ddn, f->data,
                                          IADSR_SPLIT_LEAVE_ONE_OUT, NULL, 1,
                                          &th, &rate);
    CHK(c, rc == IADSR_OK || (th == 7.0f && rate == -1.0),
        "outputs written on failure");
    return rc;
}

static int op_clean_ds(fix *f, chk *c)
{
    return clean_dataset(f, c, IADSR_SPLIT_LEAVE_ONE_OUT, NULL);
}

static int op_clean_ds_none(fix *f, chk *c)
{
    return clean_dataset(f, c, IADSR_SPLIT_NONE, f->usem);
}

/* -- checkpoints with an aligner and a gate -- */

static int ckpt_save(fix *f, chk *c, int full)
{
    int rc = iadsr_checkpoint_save(f->model[0], full ? f->al : NULL,
                                   full ? f->gate : NULL, f->target,
                                   IADSR_SAVE_NO_FSYNC);
    if (rc)
        check_target(f, c);
    return rc;
}

static int op_ckpt_save(fix *f, chk *c) { return ckpt_save(f, c, 0); }
static int op_ckpt_save_full(fix *f, chk *c) { return ckpt_save(f, c, 1); }

/* Load with (@p want) or without the aligner and gate outputs, from the
 * file (@p buf 0) or from memory, of the full or the plain checkpoint. */
static int ckpt_load(fix *f, chk *c, int want, int buf, int full)
{
    iadsr_model *m = SENT(iadsr_model);
    iadsr_aligner *a = SENT(iadsr_aligner);
    iadsr_gate *g = SENT(iadsr_gate);
    int rc;
    if (buf)
        rc = iadsr_checkpoint_load_from_buffer(
            &m, want ? &a : NULL, want ? &g : NULL,
            full ? f->ckpt_full : f->ckpt,
            full ? f->ckpt_full_len : f->ckpt_len, 0);
    else
        rc = iadsr_checkpoint_load(&m, want ? &a : NULL, want ? &g : NULL,
                                   full ? f->ckpt_full_path : f->ckpt_path,
                                   0);
    if (rc) {
        CHK(c, m == NULL, "model is not NULL");
        CHK(c, !want || a == NULL, "aligner is not NULL");
        CHK(c, !want || g == NULL, "gate is not NULL");
        return rc;
    }
    ck_assert_ptr_nonnull(m);
    iadsr_model_free(m);
    if (want) {
        ck_assert(full ? a != NULL && g != NULL : a == NULL && g == NULL);
        iadsr_aligner_free(a);
        iadsr_gate_free(g);
    }
    return rc;
}

static int op_ckpt_load(fix *f, chk *c) { return ckpt_load(f, c, 1, 0, 1); }
static int op_ckpt_load_plain(fix *f, chk *c)
{
    return ckpt_load(f, c, 1, 0, 0);
}
static int op_ckpt_load_m(fix *f, chk *c) { return ckpt_load(f, c, 0, 0, 1); }
static int op_ckpt_buf(fix *f, chk *c) { return ckpt_load(f, c, 1, 1, 1); }
static int op_ckpt_buf_plain(fix *f, chk *c)
{
    return ckpt_load(f, c, 1, 1, 0);
}
static int op_ckpt_buf_m(fix *f, chk *c) { return ckpt_load(f, c, 0, 1, 1); }

static int op_pipeline(fix *f, chk *c)
{
    iadsr_train_params tp;
    fix_train_params(&tp, IADSR_SPLIT_LEAVE_ONE_OUT, 2);
    iadsr_pipeline_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    iadsr_model *m = SENT(iadsr_model);
    iadsr_dataset *d = SENT(iadsr_dataset);
    int rc = iadsr_pipeline(f->data, f->sem, &f->mp[0], &tp, NULL, NULL,
                            NULL, &res, &m, &d);
    if (rc) {
        CHK(c, m == NULL, "model_out is not NULL");
        CHK(c, d == NULL, "clean_out is not NULL");
        return rc;
    }
    iadsr_model_free(m);
    iadsr_dataset_free(d);
    return rc;
}

/* ---- the table ---------------------------------------------------------- */

#define F_NO_ALLOC 1u /* the header (or the brief) says: never allocates */
#define F_MUTATES 2u  /* changes the state of an input handle */

typedef struct oom_case {
    const char *entry;   /* the public function */
    const char *variant; /* what this row does differently */
    op_fn op;
    void (*pre)(fix *f);  /* per iteration, hook disarmed; may be NULL */
    void (*post)(fix *f); /* per iteration; may be NULL */
    int (*after_fail)(fix *f); /* must succeed after a failure; may be NULL */
    unsigned flags;
} oom_case;

static const oom_case cases[] = {
    {"iadsr_dataset_create", "copy", op_dataset_copy, 0, 0, 0, 0},
    {"iadsr_dataset_create", "borrow", op_dataset_borrow, 0, 0, 0, 0},
    {"iadsr_dataset_parse_text", "", op_dataset_parse, 0, 0, 0, 0},
    {"iadsr_dataset_load_text", "", op_dataset_load, 0, 0, 0, 0},
    {"iadsr_model_create", "SASRec", op_model_sasrec, 0, 0, 0, 0},
    {"iadsr_model_create", "GRU4Rec", op_model_gru4rec, 0, 0, 0, 0},
    {"iadsr_model_create", "Caser", op_model_caser, 0, 0, 0, 0},
    {"iadsr_model_create_from_embeddings", "", op_model_from_emb, 0, 0, 0, 0},
    {"iadsr_model_get_params", "", op_model_get_params, 0, 0, 0, F_NO_ALLOC},
    {"iadsr_model_save", "", op_model_save, pre_target, 0, 0, 0},
    {"iadsr_model_save_to_buffer", "", op_model_save_buffer, 0, 0, 0, 0},
    {"iadsr_model_load", "", op_model_load, 0, 0, 0, 0},
    {"iadsr_model_load_from_buffer", "", op_model_load_buffer, 0, 0, 0, 0},
    {"iadsr_trainer_create", "SASRec", op_trainer_sasrec, 0, 0, 0, 0},
    {"iadsr_trainer_create", "GRU4Rec", op_trainer_gru4rec, 0, 0, 0, 0},
    {"iadsr_trainer_create", "Caser", op_trainer_caser, 0, 0, 0, 0},
    {"iadsr_trainer_create_joint", "", op_joint, 0, 0, 0, 0},
    {"iadsr_trainer_create_joint", "user_sem", op_joint_usem, 0, 0, 0, 0},
    {"iadsr_trainer_create_joint", "masks", op_joint_masks, 0, 0, 0, 0},
    {"iadsr_trainer_run_epoch", "", op_run_epoch, pre_epoch, post_trainer,
     after_run_epoch, F_MUTATES},
    {"iadsr_trainer_run_epoch", "GRU4Rec", op_run_epoch, pre_epoch_gru,
     post_trainer, after_run_epoch, F_MUTATES},
    {"iadsr_trainer_run_epoch", "Caser", op_run_epoch, pre_epoch_caser,
     post_trainer, after_run_epoch, F_MUTATES},
    {"iadsr_trainer_run_epoch", "joint", op_run_epoch, pre_epoch_joint,
     post_trainer, after_run_epoch, F_MUTATES},
    {"iadsr_trainer_run_epoch", "joint, 2nd epoch, masks", op_run_epoch,
     pre_epoch2_masks, post_trainer, after_run_epoch, F_MUTATES},
    {"iadsr_trainer_fit", "", op_fit, pre_fit, post_trainer, after_fit,
     F_MUTATES},
    {"iadsr_trainer_fit", "joint", op_fit, pre_fit_joint, post_trainer,
     after_fit, F_MUTATES},
    {"iadsr_trainer_fit", "joint, masks", op_fit, pre_fit_masks,
     post_trainer, after_fit, F_MUTATES},
    {"iadsr_trainer_snapshot", "", op_snapshot, 0, 0, 0, 0},
    {"iadsr_trainer_snapshot_denoiser", "both", op_snap_den, 0, 0, 0, 0},
    {"iadsr_trainer_snapshot_denoiser", "gate only", op_snap_den_gate, 0, 0,
     0, 0},
    {"iadsr_ctx_create", "SASRec", op_ctx_sasrec, 0, 0, 0, 0},
    {"iadsr_ctx_create", "GRU4Rec", op_ctx_gru4rec, 0, 0, 0, 0},
    {"iadsr_ctx_create", "Caser", op_ctx_caser, 0, 0, 0, 0},
#define CTX_ROWS(name, label)                                                 \
    {"iadsr_ctx_score", label, op_score_##name, 0, 0, 0, F_NO_ALLOC},         \
    {"iadsr_ctx_topk", label, op_topk_##name, 0, 0, 0, F_NO_ALLOC},           \
    {"iadsr_ctx_score_batch", label, op_score_batch_##name, 0, 0, 0,          \
     F_NO_ALLOC},                                                             \
    {"iadsr_ctx_topk_batch", label, op_topk_batch_##name, 0, 0, 0,            \
     F_NO_ALLOC},
    CTX_ROWS(sasrec, "SASRec")
    CTX_ROWS(gru4rec, "GRU4Rec")
    CTX_ROWS(caser, "Caser")
    {"iadsr_evaluate", "", op_evaluate, 0, 0, 0, 0},
    {"iadsr_semantic_create", "copy", op_sem_copy, 0, 0, 0, 0},
    {"iadsr_semantic_create", "borrow", op_sem_borrow, 0, 0, 0, 0},
    {"iadsr_semantic_create", "row-0 padding", op_sem_pad, 0, 0, 0, 0},
    {"iadsr_semantic_parse_npy", "", op_sem_parse, 0, 0, 0, 0},
    {"iadsr_semantic_load_npy", "", op_sem_load, 0, 0, 0, 0},
    {"iadsr_semantic_save_npy", "", op_sem_save, pre_target, 0, 0, 0},
    {"iadsr_semantic_check", "", op_sem_check, 0, 0, 0, 0},
    {"iadsr_semantic_scores", "", op_sem_scores, 0, 0, 0, F_NO_ALLOC},
    {"iadsr_semantic_evaluate", "", op_sem_evaluate, 0, 0, 0, 0},
    {"iadsr_npy_decode", "", op_npy_decode, 0, 0, 0, 0},
    {"iadsr_npy_save", "", op_npy_save, pre_target, 0, 0, 0},
    {"iadsr_aligner_create", "", op_aligner_create, 0, 0, 0, 0},
    {"iadsr_aligner_project", "", op_aligner_project, 0, 0, 0, 0},
    {"iadsr_gate_create", "", op_gate_create, 0, 0, 0, 0},
    {"iadsr_gate_with_params", "", op_gate_with, 0, 0, 0, 0},
    {"iadsr_gate_get_params", "", op_gate_get, 0, 0, 0, 0},
    {"iadsr_denoiser_create", "", op_denoiser_create, 0, 0, 0, 0},
    {"iadsr_denoiser_clean", "", op_clean, 0, 0, 0, 0},
    {"iadsr_denoiser_clean", "user_vec", op_clean_user, 0, 0, 0, 0},
    {"iadsr_denoiser_clean_dataset", "leave-one-out", op_clean_ds, 0, 0, 0,
     0},
    {"iadsr_denoiser_clean_dataset", "none, user_sem", op_clean_ds_none, 0, 0,
     0, 0},
    {"iadsr_denoiser_propose_theta", "detector", op_propose_theta, 0, 0, 0, 0},
    {"iadsr_checkpoint_save", "model only", op_ckpt_save, pre_target, 0, 0,
     0},
    {"iadsr_checkpoint_save", "aligner + gate", op_ckpt_save_full,
     pre_target, 0, 0, 0},
    {"iadsr_checkpoint_load", "aligner + gate", op_ckpt_load, 0, 0, 0, 0},
    {"iadsr_checkpoint_load", "plain file", op_ckpt_load_plain, 0, 0, 0, 0},
    {"iadsr_checkpoint_load", "model only", op_ckpt_load_m, 0, 0, 0, 0},
    {"iadsr_checkpoint_load_from_buffer", "aligner + gate", op_ckpt_buf, 0,
     0, 0, 0},
    {"iadsr_checkpoint_load_from_buffer", "plain file", op_ckpt_buf_plain, 0,
     0, 0, 0},
    {"iadsr_checkpoint_load_from_buffer", "model only", op_ckpt_buf_m, 0, 0,
     0, 0},
    {"iadsr_pipeline", "", op_pipeline, 0, 0, 0, 0},
};

#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

/* ---- counters shared with forked tests ---------------------------------- */

typedef struct oom_stat {
    int started, finished;
    long allocs;    /* attempts of a clean run */
    long points[2]; /* failures injected: transient, persistent */
    long leaks;     /* injected failures after which blocks were live */
    long wrong;     /* wrong status codes */
    long other;     /* out-pointer, buffer, message, retry problems */
    int sampled;    /* 1 if k was sampled with a stride */
} oom_stat;

static oom_stat g_local[N_CASES]; /* fallback if mmap fails */
static oom_stat *g_stat = g_local;

/* Print the first few problems of a case, count them all. */
static void report(const oom_case *c, oom_stat *st, long k, int persistent,
                   const char *fmt, const char *detail)
{
    if (st->leaks + st->wrong + st->other <= 5)
        fprintf(stderr, "oom: %s%s%s%s: k=%ld %s: %s%s%s\n", c->entry,
                c->variant[0] ? " (" : "", c->variant,
                c->variant[0] ? ")" : "", k,
                persistent ? "persistent" : "transient", fmt,
                detail ? ": " : "", detail ? detail : "");
}

/* The k to inject, ascending: all of 1..A, or, for long operations (the
 * pipeline, fits; more than @p cap points), the first 50, the last 20 and
 * an even stride in between, so that the total time stays bounded (the
 * suite also runs under ASan and valgrind). Returns the count. */
static long pick_points(long A, long cap, long *ks)
{
    long n = 0;
    if (A <= cap) {
        for (long k = 1; k <= A; k++)
            ks[n++] = k;
        return n;
    }
    long head = 50, tail = 20, mid = cap - head - tail;
    for (long k = 1; k <= head; k++)
        ks[n++] = k;
    for (long i = 1; i <= mid; i++) {
        long k = head + (A - head - tail) * i / (mid + 1);
        if (k > ks[n - 1])
            ks[n++] = k;
    }
    for (long k = A - tail + 1; k <= A; k++)
        if (k > ks[n - 1])
            ks[n++] = k;
    return n;
}

/* One run of a case's operation: pre, arm(k), op, disarm, checks, post.
 * Returns the attempts made; *rc_out gets the status. */
static long run_once(const oom_case *c, oom_stat *st, fix *f, long k,
                     int persistent, int *rc_out)
{
    long live0 = iadsr__alloc_live();
    if (c->pre)
        c->pre(f);
    long live1 = iadsr__alloc_live();
    chk ck;
    memset(&ck, 0, sizeof ck);
    iadsr_clear_error();
    iadsr__alloc_fail_after(k, persistent);
    int rc = c->op(f, &ck);
    long made = iadsr__alloc_fail_after(0, 0);
    *rc_out = rc;
    int reached = k > 0 && made >= k, leaked = 0;
    if (reached) {
        /* the fault was reached */
        st->points[persistent]++;
        char detail[200];
        if (rc != IADSR_ERR_NOMEM) {
            st->wrong++;
            snprintf(detail, sizeof detail, "%s (%s)", iadsr_status_name(rc),
                     iadsr_last_error());
            report(c, st, k, persistent, "expected IADSR_ERR_NOMEM, got",
                   detail);
        }
        if (!iadsr_last_error()[0]) {
            st->other++;
            report(c, st, k, persistent, "empty last error", NULL);
        }
        if (ck.what[0]) {
            st->other++;
            report(c, st, k, persistent, ck.what, NULL);
        }
        if (!(c->flags & F_MUTATES) && iadsr__alloc_live() != live1) {
            leaked = 1;
            snprintf(detail, sizeof detail, "%ld blocks",
                     iadsr__alloc_live() - live1);
            report(c, st, k, persistent, "leaked", detail);
        }
        if (c->after_fail) {
            int rc2 = c->after_fail(f);
            if (rc2 != IADSR_OK) {
                st->other++;
                snprintf(detail, sizeof detail, "%s (%s)",
                         iadsr_status_name(rc2), iadsr_last_error());
                report(c, st, k, persistent,
                       "unusable after the failure: retry gave", detail);
            }
        }
    } else if (rc != IADSR_OK) {
        st->wrong++;
        report(c, st, k, persistent, "fault not reached but failed:",
               iadsr_last_error());
    }
    if (c->post)
        c->post(f);
    /* with the per-iteration handles gone, everything must be freed
     * (mutating ops are checked only here: a trainer may keep scratch) */
    if (!leaked && iadsr__alloc_live() != live0) {
        leaked = 1;
        report(c, st, k, persistent,
               reached ? "leaked (after the post hook)" : "leaked on success",
               NULL);
    }
    st->leaks += leaked;
    return made;
}

static void run_case(int i)
{
    const oom_case *c = &cases[i];
    oom_stat *st = &g_stat[i];
    memset(st, 0, sizeof *st);
    st->started = 1;
    fix f;
    fix_init(&f);
    int rc;
    long A = run_once(c, st, &f, 0, 0, &rc);
    ck_assert_msg(rc == IADSR_OK, "%s (%s): clean run failed: %s: %s",
                  c->entry, c->variant, iadsr_status_name(rc),
                  iadsr_last_error());
    if (c->flags & F_NO_ALLOC)
        ck_assert_msg(A == 0, "%s (%s) must not allocate, made %ld attempts",
                      c->entry, c->variant, A);
    long cap = tu_light() ? 150 : 600;
    long *ks = malloc((size_t)(A + 1) * sizeof *ks);
    ck_assert_ptr_nonnull(ks);
    long n = pick_points(A, cap, ks);
    st->sampled = n < A;
    ks[n++] = A + 1; /* must succeed: the fault is never reached */
    for (int persistent = 0; persistent <= 1; persistent++)
        for (long j = 0; j < n; j++) {
            long k = ks[j];
            long made = run_once(c, st, &f, k, persistent, &rc);
            if (k == A + 1)
                ck_assert_msg(made == A && rc == IADSR_OK,
                              "%s (%s): %ld attempts (%s) after %ld before",
                              c->entry, c->variant, made,
                              iadsr_status_name(rc), A);
        }
    free(ks);
    fix_free(&f);
    st->allocs = A;
    st->finished = 1;
    TU_NOTE("oom: %-35s %-24s %4ld allocations, %4ld + %4ld points%s\n",
            c->entry, c->variant, A, st->points[0], st->points[1],
            st->sampled ? " (sampled)" : "");
    ck_assert_msg(st->leaks == 0 && st->wrong == 0 && st->other == 0,
                  "%s (%s): %ld leaks, %ld wrong codes, %ld other problems "
                  "(details on stderr)",
                  c->entry, c->variant, st->leaks, st->wrong, st->other);
}

START_TEST(test_case)
{
    run_case(_i);
}
END_TEST

/* The totals. Runs itself every case not run before (CK_RUN_CASE may have
 * selected only this test); a case that started but did not finish crashed
 * or failed in its own test. */
START_TEST(test_summary)
{
    for (int i = 0; i < N_CASES; i++)
        if (!g_stat[i].started)
            run_case(i);
    long points = 0, leaks = 0, wrong = 0, other = 0;
    int entries = 0, unfinished = 0;
    char none[1024] = "";
    for (int i = 0; i < N_CASES; i++) {
        const oom_stat *st = &g_stat[i];
        points += st->points[0] + st->points[1];
        leaks += st->leaks;
        wrong += st->wrong;
        other += st->other;
        unfinished += !st->finished;
        /* an entry point counts once, however many variants it has; it
         * "does not allocate" if none of its variants did */
        int seen = 0, allocs = 0;
        for (int j = 0; j < N_CASES; j++)
            if (strcmp(cases[j].entry, cases[i].entry) == 0) {
                seen |= j < i;
                allocs |= g_stat[j].allocs != 0;
            }
        entries += !seen;
        if (st->finished && !allocs && !seen) {
            size_t len = strlen(none);
            snprintf(none + len, sizeof none - len, "%s%s", len ? ", " : "",
                     cases[i].entry);
        }
    }
    TU_NOTE("oom: no allocation: %s\n", none);
    fprintf(stderr,
            "oom: %d entry points, %ld allocation-failure points injected "
            "(transient + persistent), %ld leaks, %ld wrong codes\n",
            entries, points, leaks, wrong);
    if (other || unfinished)
        fprintf(stderr, "oom: %ld other problems, %d cases unfinished\n",
                other, unfinished);
    ck_assert_int_eq(unfinished, 0);
    ck_assert_int_eq(leaks + wrong + other, 0);
}
END_TEST

Suite *suite_oom(void)
{
    /* forked tests write their counters here, the summary reads them */
    void *p = mmap(NULL, sizeof g_local, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        memset(p, 0, sizeof g_local);
        g_stat = p;
    }
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("entry points");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_case, 0, N_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("summary");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_summary);
    suite_add_tcase(s, tc);
    return s;
}
