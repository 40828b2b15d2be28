/* crash_save: kill -9 a process while it saves, many times, and check that
 * the target file always loads and is exactly the old or the new content.
 * A child process saves two different checkpoints over one path in a loop
 * (a plain model with iadsr_model_save, and a model with aligner and gate
 * with iadsr_checkpoint_save, both with fsync); the parent kills it after
 * a random delay, then loads the file.
 * Usage: crash_save DIR [KILLS]   (default 200)
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iadsr.h"

#define TRY(call) do { int st_ = (call); if (st_ != IADSR_OK) { \
    fprintf(stderr, "%s: %s: %s\n", #call, iadsr_status_name(st_), \
            iadsr_last_error()); goto done; } } while (0)

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *b = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 1 << 20;
            unsigned char *nb = realloc(b, nc);
            if (!nb) {
                free(b);
                fclose(f);
                return NULL;
            }
            b = nb;
            cap = nc;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    *len = n;
    return b;
}

/* Remove and count the temporary files a killed save left behind. */
static int sweep_temps(const char *dir, const char *base)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            n += unlink(p) == 0;
        }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: crash_save DIR [KILLS]\n");
        return 2;
    }
    const char *dir = argv[1];
    int kills = argc > 2 ? atoi(argv[2]) : 200;
    int status = 1;
    iadsr_model *ma = NULL, *mb = NULL, *back = NULL;
    iadsr_aligner *al = NULL, *al_back = NULL;
    iadsr_gate *gt = NULL, *gt_back = NULL;
    unsigned char *img_a = NULL, *img_b = NULL;
    size_t len_a = 0, len_b = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/crash-target.iadsr", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }

    /* Two checkpoints of a few MB, so that a save takes long enough to be
     * interrupted at every stage (writes, fsync, rename). */
    iadsr_model_params mp;
    iadsr_model_params_init(&mp);
    mp.n_items = 20000;
    mp.dim = 64;
    mp.seed = 1;
    TRY(iadsr_model_create(&ma, &mp));
    mp.seed = 2;
    TRY(iadsr_model_create(&mb, &mp));
    iadsr_denoise_params dp;
    iadsr_denoise_params_init(&dp);
    TRY(iadsr_aligner_create(&al, 64, 32, &dp));
    TRY(iadsr_gate_create(&gt, 64, &dp));
    /* the exact bytes of each version, as the save functions write them */
    TRY(iadsr_model_save(ma, path, 0));
    if (!(img_a = read_all(path, &len_a)))
        goto done;
    TRY(iadsr_checkpoint_save(mb, al, gt, path, 0));
    if (!(img_b = read_all(path, &len_b)))
        goto done;
    TRY(iadsr_model_save(ma, path, 0));

    srand(12345);
    int n_old = 0, n_new = 0, bad = 0, temps = 0, saves_total = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < kills; k++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            goto done;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            goto done;
        }
        if (pid == 0) {
            close(fds[0]);
            /* alternate the two versions until killed; report each save */
            for (unsigned i = 0;; i++) {
                int rc = (i & 1) ? iadsr_model_save(ma, path, 0)
                                 : iadsr_checkpoint_save(mb, al, gt, path, 0);
                if (rc != IADSR_OK)
                    _exit(3);
                char c = 1;
                if (write(fds[1], &c, 1) != 1)
                    _exit(4);
            }
        }
        close(fds[1]);
        /* 0-40 ms: lands anywhere in a save (one takes ~5-20 ms here) */
        struct timespec d = {0, (long)(rand() % 40000) * 1000L};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int wst = 0;
        waitpid(pid, &wst, 0);
        char buf[256];
        ssize_t r;
        while ((r = read(fds[0], buf, sizeof buf)) > 0)
            saves_total += (int)r;
        close(fds[0]);
        if (!WIFSIGNALED(wst)) {
            fprintf(stderr, "kill %d: the saving child exited by itself (%d)\n",
                    k, WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
            goto done;
        }

        size_t len = 0;
        unsigned char *got = read_all(path, &len);
        int ok_load =
            iadsr_checkpoint_load(&back, &al_back, &gt_back, path, 0) == IADSR_OK;
        int is_a = got && len == len_a && memcmp(got, img_a, len) == 0;
        int is_b = got && len == len_b && memcmp(got, img_b, len) == 0;
        if (!ok_load || !(is_a || is_b)) {
            bad++;
            fprintf(stderr, "kill %d: target %s (%zu bytes): %s\n", k,
                    ok_load ? "loads but is neither version" : "UNLOADABLE",
                    len, ok_load ? "" : iadsr_last_error());
        }
        n_old += is_a;
        n_new += is_b;
        iadsr_model_free(back);
        iadsr_aligner_free(al_back);
        iadsr_gate_free(gt_back);
        back = NULL;
        al_back = NULL;
        gt_back = NULL;
        free(got);
        temps += sweep_temps(dir, "crash-target.iadsr");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("crash-save: %d kills during saves (%d saves completed in between, "
           "%.1f s): %d unloadable or mixed files; the target held the plain "
           "model %d times and the model+aligner+gate %d times; %d temporary "
           "files left by killed saves were swept\n",
           kills, saves_total,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec),
           bad, n_old, n_new, temps);
    status = bad == 0 ? 0 : 1;
done:
    iadsr_model_free(ma);
    iadsr_model_free(mb);
    iadsr_aligner_free(al);
    iadsr_gate_free(gt);
    free(img_a);
    free(img_b);
    unlink(path);
    return status;
}
