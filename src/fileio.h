/* libiadsr - whole-file reads and atomic file writes (fileio.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_FILEIO_H
#define IADSR_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Read the whole file at @p path into a block from iadsr__malloc (free it
 * with iadsr__free; it is never NULL on success, even for an empty file).
 * Regular files, pipes and character devices are read to their end;
 * directories are refused. @p what names the caller in messages
 * ("WHAT: cannot open 'PATH': reason"). On failure *buf is NULL and *len 0.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG, IADSR_ERR_IO (the message names
 * the path), IADSR_ERR_NOMEM. */
int iadsr__read_file(const char *path, const char *what, void **buf,
                     size_t *len);

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

#endif /* IADSR_FILEIO_H */
