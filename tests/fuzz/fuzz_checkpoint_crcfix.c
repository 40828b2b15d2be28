/* Fuzz harness: the checkpoint loaders with the checksums fixed up.
 *
 * Same checks as fuzz_checkpoint.c, but before loading the harness rewrites
 * the input's file_size field and every CRC-32C it can locate (header,
 * metadata, tensor directory, each tensor), so that mutated bytes reach the
 * metadata, directory and value checks instead of failing the checksum.
 * SPDX-License-Identifier: MIT
 */
#define FUZZ_CRCFIX 1
#include "fuzz_checkpoint.c"
