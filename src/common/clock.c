/* libiadsr - the monotonic clock (training and pipeline timings).
 * SPDX-License-Identifier: MIT
 */
#include "common/clock.h"

#include <time.h>

double iadsr__now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
