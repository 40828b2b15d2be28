/* Dropout masks, generic over REAL, shared by the backbone layers (each
 * backbone template includes it once per instantiation). Template macros
 * needed: REAL, SFX. No include guard on purpose: it is included once per
 * REAL by the including translation unit.
 * SPDX-License-Identifier: MIT
 */

/* Fill m with 0 (dropped) or 1/(1-p) (kept). Compare 32-bit uniforms with
 * an integer threshold, two per 64-bit draw, so that masks are identical on
 * every platform and for float and double. */
static inline void SFX(dropout_mask)(REAL *m, size_t n, double p,
                                     iadsr__rng *rng)
{
    REAL keep = (REAL)(1.0 / (1.0 - p));
    uint64_t thr = (uint64_t)(p * 4294967296.0);
    /* draws in blocks (the state in registers), then a compare loop the
     * compiler can vectorise: element 2j takes the low half of draw j,
     * element 2j + 1 the high half; an odd tail discards a high half */
    uint64_t u[128];
    uint32_t h[256];
    /* p is a float below 1 (the parameters are validated), so thr <
     * 2^32. The float case selects keep's bits with an integer mask: a
     * branch (what the compiler makes of "?:") mispredicts at every p-th
     * element, and this loop vectorises */
    uint32_t t32 = (uint32_t)thr, kb = 0;
    if (sizeof(REAL) == sizeof kb)
        memcpy(&kb, &keep, sizeof kb);
    for (size_t i = 0; i < n; i += 256) {
        size_t cnt = n - i < 256 ? n - i : 256, draws = (cnt + 1) / 2;
        iadsr__rng_fill(rng, u, draws);
        for (size_t j = 0; j < draws; j++) {
            h[2 * j] = (uint32_t)(u[j] & 0xffffffffu);
            h[2 * j + 1] = (uint32_t)(u[j] >> 32);
        }
        REAL *mi = m + i;
        if (sizeof(REAL) == sizeof kb) {
            for (size_t j = 0; j < cnt; j++) {
                uint32_t v = kb & (0u - (uint32_t)(h[j] >= t32));
                memcpy(mi + j, &v, sizeof v);
            }
        } else {
            for (size_t j = 0; j < cnt; j++)
                mi[j] = h[j] < t32 ? (REAL)0 : keep;
        }
    }
}

/* y = x * m elementwise (y may alias x). */
static inline void SFX(mul)(REAL *y, const REAL *x, const REAL *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * m[i];
}
