/* Standalone replay driver for the fuzz harnesses (no libFuzzer needed).
 *
 *   replay [-n] [-v] FILE_OR_DIR...
 *
 * Feeds every regular file named on the command line, and every regular
 * file directly inside a named directory (names starting with '.' are
 * skipped, e.g. .gitkeep), to LLVMFuzzerTestOneInput(), in sorted order.
 * LLVMFuzzerInitialize() runs first when the harness defines it.
 *
 * Each input runs in a forked child, so one crashing input does not hide
 * the others and a leak (LeakSanitizer reports at the child's exit) is
 * counted against the input that caused it. -n runs everything in this
 * process instead (for gdb, or valgrind without --trace-children); the
 * first failure then ends the run. -v names each input before running it.
 * The last line is the summary:
 *
 *   replay: <harness>: N files, F failures
 *
 * The harness name is the basename of argv[0]. Exit status 0 iff F == 0.
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void list_add(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 64;
        char **q = realloc(l->v, nc * sizeof *q);
        if (!q) {
            perror("replay: realloc");
            exit(2);
        }
        l->v = q;
        l->cap = nc;
    }
    l->v[l->n] = strdup(s);
    if (!l->v[l->n]) {
        perror("replay: strdup");
        exit(2);
    }
    l->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files directly inside @p dir (sorted by the caller). */
static int add_dir(name_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(n);
        if (!path) {
            perror("replay: malloc");
            exit(2);
        }
        snprintf(path, n, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            list_add(l, path);
        free(path);
    }
    closedir(d);
    return 0;
}

/* The file's bytes in an exact-size allocation (so that an over-read by
 * the code under test hits the sanitizer's redzone). */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (n < cap)
            break;
        cap *= 2;
        uint8_t *q = realloc(b, cap);
        if (!q) {
            free(b);
            b = NULL;
            break;
        }
        b = q;
    }
    int err = ferror(f);
    fclose(f);
    if (!b || err) {
        free(b);
        return NULL;
    }
    uint8_t *exact = malloc(n ? n : 1);
    if (exact && n)
        memcpy(exact, b, n);
    free(b);
    *len = n;
    return exact;
}

static int run_one(const char *path)
{
    size_t len = 0;
    uint8_t *b = read_file(path, &len);
    if (!b) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(b, len);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    int fork_mode = 1, verbose = 0, bad_args = 0;
    name_list files = {NULL, 0, 0};

    const char *harness = strrchr(argv[0], '/');
    harness = harness ? harness + 1 : argv[0];
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-n") == 0) {
            fork_mode = 0;
            continue;
        }
        if (strcmp(a, "-v") == 0) {
            verbose = 1;
            continue;
        }
        struct stat st;
        if (stat(a, &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", a, strerror(errno));
            bad_args++;
        } else if (S_ISDIR(st.st_mode)) {
            size_t before = files.n;
            if (add_dir(&files, a) != 0)
                bad_args++;
            qsort(files.v + before, files.n - before, sizeof *files.v,
                  cmp_str);
        } else {
            list_add(&files, a);
        }
    }

    size_t failures = 0;
    for (size_t i = 0; i < files.n; i++) {
        const char *path = files.v[i];
        if (verbose)
            fprintf(stderr, "replay: %s: %s\n", harness, path);
        if (!fork_mode) {
            failures += (size_t)run_one(path);
            continue;
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("replay: fork");
            return 2;
        }
        if (pid == 0)
            exit(run_one(path)); /* exit(), not _exit(): LSan runs at exit */
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("replay: waitpid");
                return 2;
            }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            continue;
        failures++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "replay: %s: FAILED %s (signal %d)\n", harness,
                    path, WTERMSIG(status));
        else
            fprintf(stderr, "replay: %s: FAILED %s (exit status %d)\n",
                    harness, path, WEXITSTATUS(status));
    }

    printf("replay: %s: %zu files, %zu failures\n", harness, files.n,
           failures);
    for (size_t i = 0; i < files.n; i++)
        free(files.v[i]);
    free(files.v);
    return failures || bad_args ? 1 : 0;
}
