/* libiadsr - version and build information.
 * SPDX-License-Identifier: MIT
 */
#include "io/checkpoint_format.h"
#include "iadsr.h"
#include "math/blas.h"

#include <pthread.h>
#include <stdio.h>

#ifdef __VERSION__
#define IADSR__COMPILER __VERSION__
#else
#define IADSR__COMPILER "unknown"
#endif

int iadsr_version_number(void)
{
    return IADSR_VERSION_NUMBER;
}

const char *iadsr_version_string(void)
{
    return IADSR_VERSION_STRING;
}

int iadsr_format_version(void)
{
    return IADSR__FORMAT_MAJOR * 100 + IADSR__FORMAT_MINOR;
}

/* Written once under pthread_once, read-only afterwards. */
static char build_info_buf[512];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void build_info_fill(void)
{
    const char *blas = iadsr__blas_info();
    if (!blas)
        blas = "unknown";
    snprintf(build_info_buf, sizeof build_info_buf,
             "libiadsr " IADSR_VERSION_STRING "; BLAS: %s; compiler: %s", blas,
             IADSR__COMPILER);
}

const char *iadsr_build_info(void)
{
    if (pthread_once(&build_info_once, build_info_fill) != 0)
        return "libiadsr " IADSR_VERSION_STRING "; BLAS: unknown; compiler: "
               IADSR__COMPILER;
    return build_info_buf;
}
