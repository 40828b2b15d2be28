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
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t u = iadsr__rng_u64(rng);
        m[i] = (u & 0xffffffffu) < thr ? (REAL)0 : keep;
        m[i + 1] = (u >> 32) < thr ? (REAL)0 : keep;
    }
    if (i < n)
        m[i] = (iadsr__rng_u64(rng) & 0xffffffffu) < thr ? (REAL)0 : keep;
}

/* y = x * m elementwise (y may alias x). */
static inline void SFX(mul)(REAL *y, const REAL *x, const REAL *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * m[i];
}
