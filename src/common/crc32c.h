/* libiadsr - CRC-32C (crc32c.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CRC32C_H
#define IADSR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of a buffer, continuing from @p crc (start with 0). */
uint32_t iadsr__crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* IADSR_CRC32C_H */
