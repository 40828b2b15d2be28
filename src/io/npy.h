/* libiadsr - .npy encoding and decoding internals (npy.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_NPY_H
#define IADSR_NPY_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a .npy file (version 1.0, '<f4', C order) holding @p n_lead
 * zero rows followed by the @p n_rows rows of @p n_cols floats at
 * data + r * ld (data may be NULL when n_rows is 0). The header is the one
 * numpy >= 1.24 writes for the same array (keys in sorted order, spare room
 * for the first axis to grow, data offset a multiple of 64), so the bytes
 * equal np.save's. *out is a block from iadsr__malloc (free with
 * iadsr__free). @p what names the caller in messages.
 * Returns IADSR_OK, IADSR_ERR_INVALID_ARG (negative sizes, n_cols < 1,
 * ld < n_cols, a file size that does not fit in memory), IADSR_ERR_NOMEM. */
int iadsr__npy_encode(const float *data, int64_t n_rows, int64_t n_cols,
                      int64_t ld, int64_t n_lead, void **out, size_t *len,
                      const char *what);

/* Encode as iadsr__npy_encode and replace the file at @p path atomically
 * (iadsr__atomic_write; @p flags: 0 or IADSR_SAVE_NO_FSYNC). A write
 * failure's message is prefixed by @p what. */
int iadsr__npy_write(const char *path, const float *data, int64_t n_rows,
                     int64_t n_cols, int64_t ld, int64_t n_lead,
                     uint32_t flags, const char *what);

/* Half precision (IEEE binary16 bits) to float32, exactly: zeros, subnormals,
 * infinities and NaN (payload kept, sign kept) included. */
float iadsr__half_to_float(uint16_t h);

#endif /* IADSR_NPY_H */
