/* libiadsr - the one whole-file reader and the one atomic file writer
 * (fileio.c), used by the library and the command-line tool.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FILEIO_H
#define IADSR_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* The text of errno value @p e in @p buf (n bytes), for I/O messages. */
const char *iadsr__errno_text(int e, char *buf, size_t n);

/* Read the whole file at @p path into a block from iadsr__malloc (free it
 * with iadsr__free; it is never NULL on success, even for an empty file).
 * Regular files, pipes and character devices are read to their end;
 * directories are refused. @p what names the caller in messages
 * ("WHAT: cannot open 'PATH': reason"). On failure *buf is NULL and *len 0.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG (NULL or empty path, NULL buf or
 * len), IADSR_ERR_IO (the message names the path), IADSR_ERR_NOMEM. */
int iadsr__read_file(const char *path, const char *what, void **buf,
                     size_t *len);

/* The one whole-file reader behind iadsr__read_file, for loaders with
 * stricter rules. @p flags: IADSR__READ_REGULAR refuses anything but a
 * regular file (IADSR_ERR_IO) and a file whose size changes while it is
 * read (IADSR_ERR_IO: the bytes would mix two versions). A file larger than
 * @p max_bytes (0: no limit but the address space) is
 * IADSR_ERR_UNSUPPORTED. An empty path is passed to open() (IADSR_ERR_IO);
 * a NULL path, buf or len is IADSR_ERR_INVALID_ARG. */
#define IADSR__READ_REGULAR 1u
int iadsr__read_file_ex(const char *path, const char *what, uint32_t flags,
                        uint64_t max_bytes, void **buf, size_t *len);

/* ---- the one atomic writer ------------------------------------------------
 * Every file the library and the command-line tool write replaces its
 * target atomically, by these rules:
 *   - the target is what the path names after following symbolic links
 *     (relative ones from the link's directory): the file a link points to
 *     is replaced and the link stays; a missing or regular target is
 *     replaced atomically as below; a character device or FIFO (/dev/null,
 *     a named pipe) is opened and written in place, without a temporary
 *     file, fsync or rename (a rename would replace the device node, or
 *     take the pipe from its reader); a directory, socket or block device
 *     is refused (IADSR_ERR_IO);
 *   - a temporary file "TARGET.tmp.XXXXXX" (mkstemp, close-on-exec) is
 *     created in the target's directory, so that the rename never crosses
 *     file systems;
 *   - it gets the permission bits of the regular file it replaces, or
 *     0644 & ~umask for a new file (the umask is read, never changed: a
 *     umask() round trip would race with other threads);
 *   - commit writes out what is staged, fsyncs the file (unless
 *     IADSR_SAVE_NO_FSYNC), closes it (checked), renames it over the target
 *     and fsyncs the
 *     directory (unless IADSR_SAVE_NO_FSYNC); an fsync is never retried;
 *   - any failure before the rename removes the temporary file and leaves
 *     an existing target untouched; if only the directory fsync fails, the
 *     new file is in place and IADSR_ERR_IO is returned all the same (it
 *     may not survive a power loss).
 * Messages name the file; callers prefix their own name. */

/* Temporary files are named "TARGET.tmp.<host>-<pid>.XXXXXX" (<host>: 8 hex
 * digits of iadsr__host_tag(), a hash of the host name; <pid>: the writer's
 * process id). Before creating one, the writer removes the regular files of
 * that shape next to the same target whose host is this one and whose
 * process is gone (kill(pid, 0) fails with ESRCH): what killed saves left.
 * Files of another host, of a live process or of this process, and names
 * of any other shape are never touched. */
uint32_t iadsr__host_tag(void);

/* The target of a write to @p path by the rules above: *out receives the
 * path with the symbolic links of its last component followed (malloc'd,
 * free with iadsr__free), *kind IADSR__TARGET_FILE (missing or regular:
 * replaced atomically) or IADSR__TARGET_DIRECT (a character device or
 * FIFO: written in place). A directory, socket or block device, or a
 * chain of more than 40 links, is IADSR_ERR_IO naming the path. */
enum { IADSR__TARGET_FILE, IADSR__TARGET_DIRECT };
int iadsr__write_target(const char *path, char **out, int *kind);

/* Replace the file at @p path atomically with the @p len bytes at @p buf.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG (NULL or empty path, NULL buf with
 * len > 0), IADSR_ERR_UNSUPPORTED (flag bits other than
 * IADSR_SAVE_NO_FSYNC), IADSR_ERR_IO, IADSR_ERR_NOMEM. */
int iadsr__atomic_write(const char *path, const void *buf, size_t len,
                        uint32_t flags);

/* The same, streamed: begin creates the temporary file next to @p path
 * (which must stay valid until commit or abort) with a staging buffer of
 * IADSR__ATOMIC_STAGE bytes; put appends bytes (staged, written in full
 * buffers); commit writes what is left and finishes as above; abort
 * removes the temporary file. The first write error is kept: put returns
 * it (0 if none) and becomes a no-op, commit reports it. After a failed
 * begin, after commit or after abort nothing is left to release. */
#define IADSR__ATOMIC_STAGE ((size_t)1 << 20)
typedef struct iadsr__atomic_file {
    int fd;
    char *tmp;  /* temporary file name; the staging buffer follows it */
    char *path; /* the resolved target (symbolic links followed) */
    int direct; /* a character device or FIFO, written in place */
    int err;        /* first write error (errno value), 0 if none */
    uint8_t *stage; /* IADSR__ATOMIC_STAGE bytes; NULL: unbuffered */
    size_t staged;
} iadsr__atomic_file;
int iadsr__atomic_begin(iadsr__atomic_file *f, const char *path);
int iadsr__atomic_put(iadsr__atomic_file *f, const void *p, size_t n);
int iadsr__atomic_commit(iadsr__atomic_file *f, uint32_t flags);
void iadsr__atomic_abort(iadsr__atomic_file *f);

/* Test hook (internal, thread-local like the allocation hook): make the
 * next atomic write on this thread fail at @p point with errno @p err, as
 * if the system call had failed there. IADSR__IO_FAIL_WRITE writes half of
 * the bytes of the next write to the temporary file first (a short write
 * on a full disk). One-shot: the hook disarms itself when it fires; point
 * 0 disarms it. */
enum {
    IADSR__IO_FAIL_NONE = 0,
    IADSR__IO_FAIL_MKSTEMP,
    IADSR__IO_FAIL_WRITE,
    IADSR__IO_FAIL_FSYNC,
    IADSR__IO_FAIL_CLOSE,
    IADSR__IO_FAIL_RENAME,
    IADSR__IO_FAIL_DIRSYNC,
    IADSR__IO_FAIL_N_POINTS
};
void iadsr__io_fail_at(int point, int err);

#endif /* IADSR_FILEIO_H */
