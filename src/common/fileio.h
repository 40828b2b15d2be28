/* libiadsr - whole-file reads and atomic file writes (fileio.c).
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

/* Replace the file at @p path atomically with the @p len bytes at @p buf: a
 * temporary file "PATH.tmp.XXXXXX" (mkstemp) in the same directory gets the
 * mode of the existing target, or 0644 & ~umask for a new file; it is
 * written, fsync'ed (unless IADSR_SAVE_NO_FSYNC is in @p flags), renamed
 * over @p path, and the directory is fsync'ed (same condition). On any
 * failure the temporary file is removed and an existing target is left
 * untouched, except when only the final fsync of the directory fails: the
 * new file is then in place and IADSR_ERR_IO is returned all the same.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG (NULL or empty path, NULL buf with
 * len > 0), IADSR_ERR_UNSUPPORTED (flag bits other than
 * IADSR_SAVE_NO_FSYNC), IADSR_ERR_IO (the message names the file),
 * IADSR_ERR_NOMEM. Callers prefix the message with their own name. */
int iadsr__atomic_write(const char *path, const void *buf, size_t len,
                        uint32_t flags);

/* The same atomic replacement, streamed: begin creates the temporary file
 * next to @p path (which must stay valid until commit or abort); put
 * appends bytes (the first write error is kept and reported by commit);
 * commit fsyncs (unless IADSR_SAVE_NO_FSYNC), closes, renames over @p path
 * and fsyncs the directory, or removes the temporary file on failure;
 * abort removes it. After a failed begin, or after commit, nothing is left
 * to release. Messages name the file; callers prefix their own name. */
typedef struct iadsr__atomic_file {
    int fd;
    char *tmp;
    const char *path;
    int err; /* first write error (errno value), 0 if none */
} iadsr__atomic_file;
int iadsr__atomic_begin(iadsr__atomic_file *f, const char *path);
void iadsr__atomic_put(iadsr__atomic_file *f, const void *p, size_t n);
int iadsr__atomic_commit(iadsr__atomic_file *f, uint32_t flags);
void iadsr__atomic_abort(iadsr__atomic_file *f);

/* Test hook (internal, thread-local like the allocation hook): make the
 * next iadsr__atomic_write on this thread fail at @p point with errno
 * @p err, as if the system call had failed there. IADSR__IO_FAIL_WRITE
 * writes half of the bytes first (a short write on a full disk). One-shot:
 * the hook disarms itself when it fires; point 0 disarms it. */
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
