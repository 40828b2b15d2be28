/* iadsr command-line tool: runs spread over MPI ranks (bin/iadsr-mpi,
 * make MPI=1). The only file of the project that includes <mpi.h>.
 * SPDX-License-Identifier: MIT
 */
#include "cli/dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank = 0, g_size = 1, g_started = 0;
/* IADSR_MPI_STATS=1: each rank reports its collectives at the end */
static long long g_calls = 0;
static double g_bytes = 0.0, g_seconds = 0.0;

int cli_dist_init(int *argc, char ***argv)
{
    if (MPI_Init(argc, argv) != MPI_SUCCESS)
        return 1;
    g_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void cli_dist_finish(void)
{
    const char *e = getenv("IADSR_MPI_STATS");
    if (g_started && e && e[0] && strcmp(e, "0") != 0 && g_calls > 0)
        fprintf(stderr, "iadsr-mpi: rank %d of %d: %lld allreduce calls, "
                        "%.1f MB summed, %.3f s in them\n",
                g_rank, g_size, g_calls, g_bytes / 1e6, g_seconds);
    if (g_started)
        MPI_Finalize();
    g_started = 0;
}

int cli_dist_available(void)
{
    return 1;
}

int cli_dist_rank(void)
{
    return g_rank;
}

int cli_dist_size(void)
{
    return g_size;
}

/* MPI counts are ints: a larger buffer goes in slices of this many. */
#define SLICE (1 << 28)

int cli_dist_allreduce(void *buf, size_t count, int32_t type, void *user)
{
    (void)user;
    MPI_Datatype t = type == IADSR_TYPE_F64 ? MPI_DOUBLE : MPI_FLOAT;
    size_t es = type == IADSR_TYPE_F64 ? sizeof(double) : sizeof(float);
    if (type != IADSR_TYPE_F32 && type != IADSR_TYPE_F64)
        return -1;
    double t0 = MPI_Wtime();
    /* reduce to rank 0, then broadcast: every rank gets rank 0's bits
     * (an all-reduce may round differently on different ranks) */
    for (size_t i = 0; i < count; i += SLICE) {
        int n = (int)(count - i < SLICE ? count - i : SLICE);
        char *p = (char *)buf + i * es;
        int rc = MPI_Reduce(g_rank == 0 ? MPI_IN_PLACE : p,
                            g_rank == 0 ? p : NULL, n, t, MPI_SUM, 0,
                            MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS)
            rc = MPI_Bcast(p, n, t, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return -1;
    }
    g_calls++;
    g_bytes += (double)count * (double)es;
    g_seconds += MPI_Wtime() - t0;
    return 0;
}

int cli_dist_any(int flag)
{
    int mine = flag != 0, any = 0;
    if (MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return 1;
    return any;
}

int cli_dist_gather(const void *mine, size_t len, char **all,
                    size_t *all_len)
{
    int ok = len <= (size_t)INT_MAX, n = (int)(ok ? len : 0);
    int *counts = NULL, *displs = NULL;
    *all = NULL;
    *all_len = 0;
    if (g_rank == 0) {
        counts = malloc((size_t)g_size * sizeof *counts);
        displs = malloc((size_t)g_size * sizeof *displs);
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    size_t total = 0;
    if (g_rank == 0) {
        ok = ok && counts && displs;
        for (int r = 0; ok && r < g_size; r++) {
            if (total + (size_t)counts[r] > (size_t)INT_MAX)
                ok = 0; /* displacements are ints too */
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        if (ok && !(*all = malloc(total ? total : 1)))
            ok = 0;
    }
    if (cli_dist_any(!ok)) {
        free(*all);
        *all = NULL;
        free(counts);
        free(displs);
        return -1;
    }
    MPI_Gatherv(mine, n, MPI_CHAR, *all, counts, displs, MPI_CHAR, 0,
                MPI_COMM_WORLD);
    free(counts);
    free(displs);
    *all_len = total;
    return 0;
}

void cli_dist_block(int64_t n_users, int64_t *u0, int64_t *u1)
{
    *u0 = n_users * g_rank / g_size;
    *u1 = n_users * (g_rank + 1) / g_size;
}
