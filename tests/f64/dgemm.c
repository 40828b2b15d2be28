/* Double-precision reference GEMM (see dgemm.h). A plain i-p-j loop: the
 * gradient checks need exactness, not speed.
 * SPDX-License-Identifier: MIT
 */
#include "dgemm.h"

#include <stddef.h>

void iadsr__dgemm(int trans_a, int trans_b, int m, int n, int k,
                  double alpha, const double *a, int lda, const double *b,
                  int ldb, double beta, double *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    for (int i = 0; i < m; i++) {
        double *ci = c + (size_t)i * (size_t)ldc;
        for (int j = 0; j < n; j++)
            ci[j] = beta == 0.0 ? 0.0 : ci[j] * beta;
        for (int p = 0; p < k; p++) {
            double aip = alpha * (trans_a ? a[(size_t)p * (size_t)lda + (size_t)i]
                                          : a[(size_t)i * (size_t)lda + (size_t)p]);
            if (aip == 0.0)
                continue;
            for (int j = 0; j < n; j++)
                ci[j] += aip * (trans_b ? b[(size_t)j * (size_t)ldb + (size_t)p]
                                        : b[(size_t)p * (size_t)ldb + (size_t)j]);
        }
    }
}
