/* iadsr command-line tool: the single-process stand-in for dist_mpi.c
 * (bin/iadsr). Every rank query answers "one process"; the collective
 * sums over that one process, i.e. leaves the buffer as it is.
 * SPDX-License-Identifier: MIT
 */
#include "cli/dist.h"

#include <stdlib.h>
#include <string.h>

int cli_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

void cli_dist_finish(void) {}

int cli_dist_available(void)
{
    return 0;
}

int cli_dist_rank(void)
{
    return 0;
}

int cli_dist_size(void)
{
    return 1;
}

int cli_dist_allreduce(void *buf, size_t count, int32_t type, void *user)
{
    (void)buf;
    (void)count;
    (void)type;
    (void)user;
    return 0;
}

int cli_dist_any(int flag)
{
    return flag != 0;
}

int cli_dist_gather(const void *mine, size_t len, char **all,
                    size_t *all_len)
{
    *all = malloc(len ? len : 1);
    *all_len = 0;
    if (!*all)
        return -1;
    if (len)
        memcpy(*all, mine, len);
    *all_len = len;
    return 0;
}

void cli_dist_block(int64_t n_users, int64_t *u0, int64_t *u1)
{
    *u0 = 0;
    *u1 = n_users;
}
