/* Crash safety of every file the library writes: an injected failure at
 * each step of the atomic write (mkstemp, a short write, fsync, close,
 * rename, the directory fsync) leaves the previous file byte-identical and
 * no temporary file behind, for the model, the one-file checkpoint and the
 * .npy writers. (The kill -9 loop is tests/stress/crash_save.c.)
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "testutil.h"
#include "common/fileio.h"

Suite *suite_crashsafe(void);

static const char *const point_name[IADSR__IO_FAIL_N_POINTS] = {
    "none", "mkstemp", "write", "fsync", "close", "rename", "dirsync"};

enum { W_MODEL, W_CHECKPOINT, W_NPY, W_SEMANTIC, N_WRITERS };

typedef struct fixture {
    iadsr_model *m_old, *m_new;
    iadsr_aligner *a;
    iadsr_gate *g;
    iadsr_semantic *s_old, *s_new;
    float npy_old[6 * 4], npy_new[6 * 4];
} fixture;

static void fixture_make(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->m_old = tu_model(30, 1);
    f->m_new = tu_model(30, 2);
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    ck_assert_int_eq(iadsr_aligner_create(&f->a, iadsr_model_dim(f->m_new),
                                          4, &dp), IADSR_OK);
    ck_assert_int_eq(iadsr_gate_create(&f->g, iadsr_model_dim(f->m_new), &dp),
                     IADSR_OK);
    for (int i = 0; i < 24; i++) {
        f->npy_old[i] = (float)i;
        f->npy_new[i] = (float)(100 - i);
    }
    ck_assert_int_eq(iadsr_semantic_create(&f->s_old, f->npy_old, 6, 4, 4, 0),
                     IADSR_OK);
    ck_assert_int_eq(iadsr_semantic_create(&f->s_new, f->npy_new, 6, 4, 4, 0),
                     IADSR_OK);
}

static void fixture_free(fixture *f)
{
    iadsr_model_free(f->m_old);
    iadsr_model_free(f->m_new);
    iadsr_aligner_free(f->a);
    iadsr_gate_free(f->g);
    iadsr_semantic_free(f->s_old);
    iadsr_semantic_free(f->s_new);
}

/* Write the "old" (@p new_ == 0) or "new" content with writer @p w. */
static int write_with(const fixture *f, int w, int new_, const char *path,
                      uint32_t flags)
{
    switch (w) {
    case W_MODEL:
        return iadsr_model_save(new_ ? f->m_new : f->m_old, path, flags);
    case W_CHECKPOINT:
        return new_ ? iadsr_checkpoint_save(f->m_new, f->a, f->g, path, flags)
                    : iadsr_checkpoint_save(f->m_old, NULL, NULL, path, flags);
    case W_NPY:
        return iadsr_npy_save(path, new_ ? f->npy_new : f->npy_old, 6, 4, 4,
                              flags);
    default:
        return iadsr_semantic_save_npy(new_ ? f->s_new : f->s_old, path,
                                       flags);
    }
}

START_TEST(test_injected_failures_keep_the_old_file)
{
    fixture f;
    fixture_make(&f);
    static const char *const wname[N_WRITERS] = {"model_save",
        "checkpoint_save", "npy_save", "semantic_save_npy"};
    int cases = 0;
    for (int w = 0; w < N_WRITERS; w++) {
        char path[600];
        snprintf(path, sizeof path, "%s/crashsafe-%d-%ld.bin", tu_tmp_dir(), w,
                 (long)getpid());
        /* the new content, for the one case where it must be in place */
        ck_assert_int_eq(write_with(&f, w, 1, path, 0), IADSR_OK);
        size_t new_len;
        uint8_t *new_bytes = tu_read_file(path, &new_len);
        for (int pt = 1; pt < IADSR__IO_FAIL_N_POINTS; pt++) {
            for (int fsync_on = 0; fsync_on < 2; fsync_on++) {
                uint32_t flags = fsync_on ? 0 : IADSR_SAVE_NO_FSYNC;
                if (!fsync_on && (pt == IADSR__IO_FAIL_FSYNC ||
                                  pt == IADSR__IO_FAIL_DIRSYNC))
                    continue; /* those steps do not run without fsync */
                ck_assert_int_eq(write_with(&f, w, 0, path, 0), IADSR_OK);
                size_t old_len;
                uint8_t *old_bytes = tu_read_file(path, &old_len);
                iadsr__io_fail_at(pt, ENOSPC);
                iadsr_clear_error();
                int rc = write_with(&f, w, 1, path, flags);
                iadsr__io_fail_at(IADSR__IO_FAIL_NONE, 0);
                ck_assert_msg(rc == IADSR_ERR_IO, "%s, fault at %s: got %s",
                              wname[w], point_name[pt],
                              iadsr_status_name(rc));
                ck_assert_msg(strstr(iadsr_last_error(), "No space") != NULL,
                              "%s/%s: message '%s' lacks the cause", wname[w],
                              point_name[pt], iadsr_last_error());
                ck_assert_int_eq(tu_count_temp_files(path), 0);
                size_t got_len;
                uint8_t *got = tu_read_file(path, &got_len);
                if (pt == IADSR__IO_FAIL_DIRSYNC) {
                    /* renamed already: the new file is complete */
                    ck_assert(got_len == new_len &&
                              memcmp(got, new_bytes, new_len) == 0);
                } else {
                    ck_assert_msg(got_len == old_len &&
                                  memcmp(got, old_bytes, old_len) == 0,
                                  "%s, fault at %s: the old file changed",
                                  wname[w], point_name[pt]);
                }
                free(got);
                free(old_bytes);
                cases++;
            }
        }
        /* the hook is one-shot: the next save goes through */
        ck_assert_int_eq(write_with(&f, w, 1, path, 0), IADSR_OK);
        size_t len;
        uint8_t *b = tu_read_file(path, &len);
        ck_assert(len == new_len && memcmp(b, new_bytes, len) == 0);
        free(b);
        free(new_bytes);
        unlink(path);
    }
    ck_assert_int_eq(cases, N_WRITERS * 10); /* 6 points with fsync, 4 without */
    fixture_free(&f);
}
END_TEST

/* A fault armed on one thread never fires on another. */
static void *save_on_thread(void *arg)
{
    const fixture *f = arg;
    char path[600];
    snprintf(path, sizeof path, "%s/crashsafe-thread-%ld.iadsr", tu_tmp_dir(),
             (long)getpid());
    intptr_t rc = write_with(f, W_MODEL, 1, path, IADSR_SAVE_NO_FSYNC);
    unlink(path);
    return (void *)rc;
}

START_TEST(test_fault_is_thread_local)
{
    fixture f;
    fixture_make(&f);
    iadsr__io_fail_at(IADSR__IO_FAIL_WRITE, EIO);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, save_on_thread, &f), 0);
    void *ret = NULL;
    ck_assert_int_eq(pthread_join(th, &ret), 0);
    ck_assert_int_eq((int)(intptr_t)ret, IADSR_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/crashsafe-local-%ld.iadsr", tu_tmp_dir(),
             (long)getpid());
    ck_assert_int_eq(write_with(&f, W_MODEL, 1, path, 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "Input/output error"));
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing was left */
    fixture_free(&f);
}
END_TEST

Suite *suite_crashsafe(void)
{
    Suite *s = suite_create("crashsafe");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_injected_failures_keep_the_old_file);
    tcase_add_test(tc, test_fault_is_thread_local);
    suite_add_tcase(s, tc);
    return s;
}
