/* iadsr command-line tool: runs spread over MPI ranks (`--distributed`,
 * docs/DISTRIBUTED.md). bin/iadsr is built with dist_none.c (a single
 * process; --distributed is refused); bin/iadsr-mpi (make MPI=1) with
 * dist_mpi.c, the only file that includes <mpi.h>: the library itself
 * never sees MPI, only the iadsr_allreduce_fn given to its trainer.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLI_DIST_H
#define IADSR_CLI_DIST_H

#include "iadsr.h"

#include <stddef.h>
#include <stdint.h>

/* Start and stop the transport (MPI_Init / MPI_Finalize); called by main()
 * around the command. cli_dist_init returns 0, or a CLI exit code. */
int cli_dist_init(int *argc, char ***argv);
void cli_dist_finish(void);

/* 1 when this binary can run distributed (bin/iadsr-mpi). */
int cli_dist_available(void);
/* This process's rank and the number of ranks (0 and 1 alone). */
int cli_dist_rank(void);
int cli_dist_size(void);

/* The library's collective (iadsr_allreduce_fn): a sum that leaves the
 * same bits on every rank (a reduce to rank 0, then a broadcast). */
int cli_dist_allreduce(void *buf, size_t count, int32_t type, void *user);

/* 1 on every rank when @p flag is non-zero on any rank. */
int cli_dist_any(int flag);

/* Concatenate every rank's @p len bytes at @p mine on rank 0, in rank
 * order: rank 0 gets a malloc'ed buffer in *all (free() it) and its
 * length in *all_len; the other ranks get NULL and 0. 0, or -1 when out
 * of memory or a rank's part exceeds what one MPI call moves (every rank
 * then gets -1). */
int cli_dist_gather(const void *mine, size_t len, char **all,
                    size_t *all_len);

/* Users [*u0, *u1) of n_users for this rank: contiguous blocks in rank
 * order, so concatenated outputs keep the file's order. */
void cli_dist_block(int64_t n_users, int64_t *u0, int64_t *u1);

#endif
