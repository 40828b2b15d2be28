/* libiadsr - the one whole-file reader and the one atomic file writer.
 * SPDX-License-Identifier: MIT
 *
 * Whole-file loads (checkpoints, datasets, .npy, word vectors, the CLI's
 * item lists) go through iadsr__read_file_ex, and every file written
 * (checkpoints, .npy, semantic matrices, the CLI's text outputs) through
 * the iadsr__atomic_* writer; the rules are in fileio.h.
 */
#include "common/fileio.h"

#include "common/alloc.h"
#include "common/error.h"
#include "iadsr.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* First read buffer for files whose size is not known (pipes, devices). */
#define READ_FIRST_CAP ((size_t)1 << 16)

/* errno text (XSI strerror_r: the library is compiled as POSIX, not GNU). */
const char *iadsr__errno_text(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "errno %d", e);
    return buf;
}

/* ---- reading ------------------------------------------------------------- */

static int read_io_err(const char *what, const char *act, const char *path,
                       int e)
{
    char eb[128];
    return iadsr__err(IADSR_ERR_IO, "%s: %s '%s': %s", what, act, path,
                      iadsr__errno_text(e, eb, sizeof eb));
}

int iadsr__read_file_ex(const char *path, const char *what, uint32_t flags,
                        uint64_t max_bytes, void **buf, size_t *len)
{
    if (!what)
        what = "read_file";
    if (!buf || !len)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: %s is NULL", what,
                          buf ? "len" : "buf");
    *buf = NULL;
    *len = 0;
    if (!path)
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is NULL", what);
    const int regular = (flags & IADSR__READ_REGULAR) != 0;

    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return read_io_err(what, "cannot open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return read_io_err(what, "cannot stat", path, e);
    }
    if (S_ISDIR(st.st_mode) || (regular && !S_ISREG(st.st_mode))) {
        close(fd);
        return iadsr__err(IADSR_ERR_IO, "%s: '%s' is %s", what, path,
                          S_ISDIR(st.st_mode) ? "a directory"
                                              : "not a regular file");
    }
    size_t cap = READ_FIRST_CAP;
    if (S_ISREG(st.st_mode)) {
        if (max_bytes && (uint64_t)st.st_size > max_bytes) {
            close(fd);
            return iadsr__err(IADSR_ERR_UNSUPPORTED,
                              "%s: '%s' is %lld bytes, over the limit of "
                              "%llu",
                              what, path, (long long)st.st_size,
                              (unsigned long long)max_bytes);
        }
        if (st.st_size < 0 ||
            (uint64_t)st.st_size >= (uint64_t)(PTRDIFF_MAX - 1)) {
            close(fd);
            /* a loader with a limit calls every file over it UNSUPPORTED */
            return iadsr__err(max_bytes ? IADSR_ERR_UNSUPPORTED
                                        : IADSR_ERR_IO,
                              "%s: '%s' is too large (%lld bytes)", what,
                              path, (long long)st.st_size);
        }
        /* one byte more than the size: the end of file is seen without
         * growing the block */
        cap = (size_t)st.st_size + 1;
    }
    uint8_t *b = iadsr__malloc(cap);
    if (!b) {
        close(fd);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "%s: cannot allocate %zu bytes to read '%s'", what,
                          cap, path);
    }
    size_t got = 0;
    int rc = IADSR_OK;
    for (;;) {
        if (got == cap) {
            /* the file is larger than announced (or not a regular file) */
            if (regular)
                break; /* it grew: reported below */
            if (cap > (size_t)PTRDIFF_MAX / 2) {
                rc = iadsr__err(IADSR_ERR_IO, "%s: '%s' is too large", what,
                                path);
                break;
            }
            uint8_t *nb = iadsr__realloc(b, cap * 2, 1);
            if (!nb) {
                rc = iadsr__err(IADSR_ERR_NOMEM,
                                "%s: cannot allocate %zu bytes to read '%s'",
                                what, cap * 2, path);
                break;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, b + got, cap - got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = read_io_err(what, "cannot read", path, errno);
            break;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    if (rc == IADSR_OK && regular && got != (size_t)st.st_size)
        rc = iadsr__err(IADSR_ERR_IO,
                        "%s: '%s' changed size while being read", what, path);
    close(fd); /* read-only: nothing can be lost here */
    if (rc != IADSR_OK) {
        iadsr__free(b);
        return rc;
    }
    *buf = b;
    *len = got;
    return IADSR_OK;
}

int iadsr__read_file(const char *path, const char *what, void **buf,
                     size_t *len)
{
    if (path && !path[0]) {
        if (buf)
            *buf = NULL;
        if (len)
            *len = 0;
        return iadsr__err(IADSR_ERR_INVALID_ARG, "%s: path is empty",
                          what ? what : "read_file");
    }
    return iadsr__read_file_ex(path, what, 0, 0, buf, len);
}

/* ---- atomic write -------------------------------------------------------- */

/* I/O fault injection for tests (fileio.h). Thread-local, so concurrent
 * tests and host threads never see each other's faults. */
static _Thread_local int tl_io_point;
static _Thread_local int tl_io_err;

void iadsr__io_fail_at(int point, int err)
{
    tl_io_point = point > 0 && point < IADSR__IO_FAIL_N_POINTS ? point : 0;
    tl_io_err = err > 0 ? err : EIO;
}

/* Non-zero (the errno to report) if the armed fault is at @p point. */
static int io_fault(int point)
{
    if (tl_io_point != point)
        return 0;
    tl_io_point = 0;
    return tl_io_err;
}

static int write_io_err(const char *act, const char *path, int e)
{
    char eb[128];
    return iadsr__err(IADSR_ERR_IO, "%s '%s': %s", act, path,
                      iadsr__errno_text(e, eb, sizeof eb));
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        /* at most 1 GiB per call: some systems refuse larger writes */
        size_t want = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t k = write(fd, p, want);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (k == 0)
            return ENOSPC; /* no progress: treat as a full device */
        p += (size_t)k;
        n -= (size_t)k;
    }
    return 0;
}

/* The process umask without changing it (umask() would, for a moment, for
 * every thread): Linux reports it in /proc/self/status ("Umask:\t0022").
 * Falls back to the usual 022 where that line is not available. */
static mode_t current_umask(void)
{
    static const char key[] = "\nUmask:";
    char buf[1024];
    size_t n = 0;
    int fd;
    do
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return 022;
    while (n < sizeof buf - 1) {
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';
    const char *p = strstr(buf, key);
    if (!p)
        return 022;
    p += sizeof key - 1;
    while (*p == ' ' || *p == '\t')
        p++;
    unsigned v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '7' && digits < 6) {
        v = v * 8u + (unsigned)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || (*p != '\n' && *p != '\0'))
        return 022;
    return (mode_t)(v & 0777);
}

/* fsync the directory that holds @p path, using @p scratch (at least as long
 * as @p path) for its name. Returns 0 or an errno value. */
static int fsync_parent_dir(const char *path, char *scratch)
{
    const char *slash = strrchr(path, '/');
    const char *dir = ".";
    if (slash == path) {
        dir = "/";
    } else if (slash) {
        size_t n = (size_t)(slash - path);
        memcpy(scratch, path, n);
        scratch[n] = '\0';
        dir = scratch;
    }
    int fd;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno;
    int e = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return e;
}

#define MAX_LINKS 40 /* as the kernel's own limit on a path's links */

/* Symbolic links are followed so that the file they point to is replaced,
 * not the link; renaming over a device node or FIFO would replace the node
 * or take a reader's pipe away, so those are written in place. Other lstat
 * errors leave the path to the later steps, which name them. */
int iadsr__write_target(const char *path, char **out, int *kind)
{
    char *p = iadsr__malloc(strlen(path) + 1);
    *out = NULL;
    if (!p)
        return iadsr__err(IADSR_ERR_NOMEM, "out of memory for '%s'", path);
    strcpy(p, path);
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(p, &st) != 0 || S_ISREG(st.st_mode)) {
            *kind = IADSR__TARGET_FILE;
            break;
        }
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            *kind = IADSR__TARGET_DIRECT;
            break;
        }
        if (!S_ISLNK(st.st_mode)) {
            int rc = iadsr__err(IADSR_ERR_IO, "cannot write '%s': %s", p,
                                S_ISDIR(st.st_mode)
                                    ? "it is a directory"
                                    : "it is a socket or block device, not "
                                      "a file this library writes");
            iadsr__free(p);
            return rc;
        }
        if (hops == MAX_LINKS) {
            int rc = iadsr__err(IADSR_ERR_IO, "cannot write '%s': more than "
                                "%d symbolic links", path, MAX_LINKS);
            iadsr__free(p);
            return rc;
        }
        size_t cap = (size_t)st.st_size + 1 > 256 ? (size_t)st.st_size + 1
                                                  : 256;
        char *lk = iadsr__malloc(cap + strlen(p) + 2);
        ssize_t n = lk ? readlink(p, lk, cap) : -1;
        if (!lk || n < 0 || (size_t)n >= cap) {
            int e = errno;
            iadsr__free(lk);
            iadsr__free(p);
            if (!lk)
                return iadsr__err(IADSR_ERR_NOMEM, "out of memory for '%s'",
                                  path);
            return write_io_err("cannot read the symbolic link", path,
                                n < 0 ? e : ENAMETOOLONG);
        }
        lk[n] = '\0';
        const char *slash = strrchr(p, '/');
        if (lk[0] != '/' && slash) {
            /* relative to the link's own directory */
            size_t dl = (size_t)(slash - p) + 1;
            memmove(lk + dl, lk, (size_t)n + 1);
            memcpy(lk, p, dl);
        }
        iadsr__free(p);
        p = lk;
    }
    *out = p;
    return IADSR_OK;
}

/* 32-bit FNV-1a of the host name: the temporary files say which host
 * wrote them, so that the sweep never judges another host's writer. */
uint32_t iadsr__host_tag(void)
{
    char name[256];
    uint32_t h = 2166136261u;
    if (gethostname(name, sizeof name) != 0)
        name[0] = '\0';
    name[sizeof name - 1] = '\0';
    for (const char *c = name; *c; c++) {
        h ^= (uint8_t)*c;
        h *= 16777619u;
    }
    return h;
}

/* Remove the temporary files that killed saves to @p target left behind:
 * "TARGET.tmp.<host>-<pid>.XXXXXX" of this host whose process no longer
 * exists (kill(pid, 0) fails with ESRCH), regular files only. A live
 * writer, another host's, this process's own, and any name of another
 * shape are left alone. Best effort: errors are ignored. */
static void sweep_stale(const char *target)
{
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t dl = slash ? (size_t)(slash - target) : 0;
    char dir[4096]; /* no allocation: a failed one would go unreported */
    if (dl >= sizeof dir)
        return;
    if (!slash)
        strcpy(dir, ".");
    else if (dl == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, target, dl);
        dir[dl] = '\0';
    }
    char prefix[320];
    int np = snprintf(prefix, sizeof prefix, "%s.tmp.%08x-", base,
                      (unsigned)iadsr__host_tag());
    DIR *d = (np > 0 && (size_t)np < sizeof prefix) ? opendir(dir) : NULL;
    if (!d)
        return;
    long self = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)np) != 0)
            continue;
        const char *p = e->d_name + np;
        char *end;
        errno = 0;
        long pid = strtol(p, &end, 10);
        if (errno || end == p || pid <= 0 || pid == self || *end != '.' ||
            strlen(end + 1) != 6)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or not ours to judge */
        int dfd = dirfd(d);
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            (void)unlinkat(dfd, e->d_name, 0);
    }
    closedir(d);
}

/* begin, with a staging buffer of @p stage bytes (0: unbuffered, for
 * callers that put everything at once). The name and the buffer share one
 * block, so a failed allocation leaves nothing on disk. */
static int atomic_open(iadsr__atomic_file *f, const char *path, size_t stage)
{
    /* ".tmp.<host>-<pid>.XXXXXX": who wrote it, for the sweep */
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".tmp.%08x-%ld.XXXXXX",
             (unsigned)iadsr__host_tag(), (long)getpid());
    f->fd = -1;
    f->tmp = NULL;
    f->path = NULL;
    f->direct = 0;
    f->err = 0;
    f->stage = NULL;
    f->staged = 0;
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "path is %s",
                          path ? "empty" : "NULL");
    char *target = NULL;
    int kind;
    TRY(iadsr__write_target(path, &target, &kind));
    size_t plen = strlen(target);
    size_t slen = strlen(suffix) + 1;
    if (plen > SIZE_MAX - slen - stage) {
        iadsr__free(target);
        return iadsr__err(IADSR_ERR_INVALID_ARG, "path too long");
    }
    char *tmp = iadsr__malloc(plen + slen + stage);
    if (!tmp) {
        iadsr__free(target);
        return iadsr__err(IADSR_ERR_NOMEM,
                          "out of memory for the temporary file of '%s'",
                          path);
    }
    memcpy(tmp, target, plen);
    memcpy(tmp + plen, suffix, slen);
    f->path = target;
    if (kind == IADSR__TARGET_DIRECT) {
        int fd;
        do
            fd = open(target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            int rc = write_io_err("cannot open", target, errno);
            iadsr__free(tmp);
            iadsr__free(target);
            f->path = NULL;
            return rc;
        }
        f->fd = fd;
        f->tmp = tmp; /* holds the staging buffer; no file of that name */
        f->direct = 1;
        if (stage)
            f->stage = (uint8_t *)tmp + plen + slen;
        return IADSR_OK;
    }

    sweep_stale(target);
    int e;
    int fd = (e = io_fault(IADSR__IO_FAIL_MKSTEMP)) ? (errno = e, -1)
                                                   : mkstemp(tmp);
    if (fd < 0) {
        int rc = write_io_err("cannot create a temporary file next to",
                              target, errno);
        iadsr__free(tmp);
        iadsr__free(target);
        f->path = NULL;
        return rc;
    }
    /* POSIX 2008 has no mkostemp: narrow the window in which a concurrent
     * fork+exec of the host could inherit the descriptor. */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* mkstemp creates the file 0600: give it the mode of the file it
     * replaces, or what open(path, O_CREAT, 0644) would have given. */
    struct stat st;
    mode_t mode;
    if (stat(target, &st) == 0 && S_ISREG(st.st_mode))
        mode = st.st_mode & 07777;
    else
        mode = (mode_t)0644 & ~current_umask();
    if (fchmod(fd, mode) != 0) {
        int rc = write_io_err("cannot set the mode of", tmp, errno);
        close(fd);
        unlink(tmp);
        iadsr__free(tmp);
        iadsr__free(target);
        f->path = NULL;
        return rc;
    }
    f->fd = fd;
    f->tmp = tmp;
    if (stage)
        f->stage = (uint8_t *)tmp + plen + slen;
    return IADSR_OK;
}

int iadsr__atomic_begin(iadsr__atomic_file *f, const char *path)
{
    return atomic_open(f, path, IADSR__ATOMIC_STAGE);
}

/* write(2) [p, p + n) to the temporary file, keeping the first error. */
static void put_direct(iadsr__atomic_file *f, const void *p, size_t n)
{
    if (f->err || n == 0)
        return;
    int e = io_fault(IADSR__IO_FAIL_WRITE);
    if (e)
        (void)write_all(f->fd, p, n / 2); /* a short write, then ENOSPC */
    else
        e = write_all(f->fd, p, n);
    f->err = e;
}

int iadsr__atomic_put(iadsr__atomic_file *f, const void *p, size_t n)
{
    const uint8_t *src = p;
    if (!f->stage) {
        put_direct(f, src, n);
        return f->err;
    }
    while (n > 0 && !f->err) {
        size_t k = IADSR__ATOMIC_STAGE - f->staged;
        if (k > n)
            k = n;
        memcpy(f->stage + f->staged, src, k);
        f->staged += k;
        src += k;
        n -= k;
        if (f->staged == IADSR__ATOMIC_STAGE) {
            put_direct(f, f->stage, f->staged);
            f->staged = 0;
        }
    }
    return f->err;
}

void iadsr__atomic_abort(iadsr__atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp) {
        if (!f->direct)
            unlink(f->tmp);
        iadsr__free(f->tmp);
    }
    iadsr__free(f->path);
    f->fd = -1;
    f->tmp = NULL;
    f->path = NULL;
    f->stage = NULL;
    f->staged = 0;
}

int iadsr__atomic_commit(iadsr__atomic_file *f, uint32_t flags)
{
    int rc, e;
    put_direct(f, f->stage, f->staged); /* what is still staged */
    f->staged = 0;
    if (f->err) {
        rc = write_io_err("cannot write", f->direct ? f->path : f->tmp,
                          f->err);
        goto fail;
    }
    if (f->direct) {
        /* a device or FIFO: written in place, nothing to sync or rename */
        int closed = close(f->fd);
        f->fd = -1;
        rc = closed == 0 ? IADSR_OK
                         : write_io_err("cannot close", f->path, errno);
        goto fail; /* releases the names; no file to remove */
    }
    if (!(flags & IADSR_SAVE_NO_FSYNC) &&
        ((e = io_fault(IADSR__IO_FAIL_FSYNC)) ? (errno = e, 1)
                                               : fsync(f->fd) != 0)) {
        rc = write_io_err("cannot fsync", f->tmp, errno);
        goto fail;
    }
    e = io_fault(IADSR__IO_FAIL_CLOSE);
    int closed = close(f->fd);
    f->fd = -1; /* on Linux the descriptor is released even when close fails */
    if (e || closed != 0) {
        rc = write_io_err("cannot close", f->tmp, e ? e : errno);
        goto fail;
    }
    if ((e = io_fault(IADSR__IO_FAIL_RENAME)) ? (errno = e, 1)
                                              : rename(f->tmp, f->path) != 0) {
        rc = write_io_err("cannot rename the temporary file to", f->path,
                          errno);
        goto fail;
    }
    rc = IADSR_OK;
    if (!(flags & IADSR_SAVE_NO_FSYNC)) {
        /* tmp is at least as long as the directory name: reuse it. */
        e = io_fault(IADSR__IO_FAIL_DIRSYNC);
        if (!e)
            e = fsync_parent_dir(f->path, f->tmp);
        if (e) {
            /* The new file is in place but its directory entry may not be
             * durable; report it (never retry an fsync). */
            rc = write_io_err("saved, but cannot fsync the directory of",
                              f->path, e);
        }
    }
    iadsr__free(f->tmp);
    iadsr__free(f->path);
    f->tmp = NULL;
    f->path = NULL;
    f->stage = NULL;
    return rc;

fail:
    iadsr__atomic_abort(f);
    return rc;
}

int iadsr__atomic_write(const char *path, const void *buf, size_t len,
                        uint32_t flags)
{
    if (!path || !path[0])
        return iadsr__err(IADSR_ERR_INVALID_ARG, "path is %s",
                          path ? "empty" : "NULL");
    if (!buf && len > 0)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "buffer is NULL but len = %zu", len);
    if (flags & ~IADSR_SAVE_NO_FSYNC)
        return iadsr__err(IADSR_ERR_UNSUPPORTED, "unknown flag bits 0x%x",
                          (unsigned)(flags & ~IADSR_SAVE_NO_FSYNC));
    iadsr__atomic_file f;
    int rc = atomic_open(&f, path, 0); /* one put: nothing to stage */
    if (rc != IADSR_OK)
        return rc;
    (void)iadsr__atomic_put(&f, buf, len);
    return iadsr__atomic_commit(&f, flags);
}
