/* Tests: src/common and the version: status codes, last-error message,
 * allocation hook, RNG, CRC-32C, version and clock utilities.
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "io/checkpoint_format.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/error.h"
#include "common/alloc.h"
#include "common/rng.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "math/blas.h"
#include "math/gemm_avx512.h"
#include "math/adam.h"
#include <stdlib.h>

/* The AVX-512 products go in blocks of K and over copied panels of B; each
 * element must still be one chain of fused multiply-adds over k in order,
 * bit for bit (what keeps checkpoints identical to the unblocked kernels):
 * K across two block edges, row strides of 256 and 1024 floats (the ones
 * the panels exist for), A read transposed or not, C read or not. */
START_TEST(test_sgemm_blocked_exact)
{
    if (!iadsr__gemm_avx512_ok())
        return; /* the BLAS computes these; test_sgemm_widths covers it */
    static const int ns[] = {32, 48, 256, 1024};
    static const int ks[] = {64, 256, 257, 700};
    iadsr__rng r;
    iadsr__rng_seed(&r, 321);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (int ta = 0; ta <= 1; ta++)
                for (int bz = 0; bz <= 1; bz++) {
                    int m = 19, n = ns[ni], k = ks[ki];
                    size_t na = (size_t)m * (size_t)k, nb = (size_t)k * (size_t)n,
                           nc = (size_t)m * (size_t)n;
                    float *a = malloc(sizeof(float) * na);
                    float *b = malloc(sizeof(float) * nb);
                    float *c = malloc(sizeof(float) * nc);
                    float *c0 = malloc(sizeof(float) * nc);
                    ck_assert(a && b && c && c0);
                    for (size_t i = 0; i < na; i++)
                        a[i] = (float)iadsr__rng_normal(&r);
                    for (size_t i = 0; i < nb; i++)
                        b[i] = (float)iadsr__rng_normal(&r);
                    for (size_t i = 0; i < nc; i++)
                        c[i] = c0[i] = bz ? NAN : (float)iadsr__rng_normal(&r);
                    iadsr__sgemm(ta, 0, m, n, k, 1.0f, a, ta ? m : k, b, n,
                                 bz ? 0.0f : 1.0f, c, n);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            float want = bz ? 0.0f : c0[i * n + j];
                            for (int p = 0; p < k; p++)
                                want = fmaf(ta ? a[p * m + i] : a[i * k + p],
                                            b[p * n + j], want);
                            ck_assert_msg(memcmp(&want, &c[i * n + j],
                                                 sizeof want) == 0,
                                          "n %d k %d trans_a %d beta %d: "
                                          "c[%d][%d] = %a, want %a",
                                          n, k, ta, !bz, i, j,
                                          (double)c[i * n + j], (double)want);
                        }
                    free(a), free(b), free(c), free(c0);
                }
}
END_TEST

/* The Adam update equals the plain loop of its definition bit for bit on
 * every path (16 lanes at a time where the CPU has AVX-512, then the
 * tail): lengths around the vector width, weight decay on and off, moments
 * and gradients over many magnitudes, zeros and a gradient of zero. */

START_TEST(test_adam_matches_loop)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 77);
    static const size_t ns[] = {0, 1, 15, 16, 17, 33, 100, 1000};
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
        for (int wdi = 0; wdi <= 1; wdi++) {
            size_t n = ns[ni];
            size_t sz = (n ? n : 1) * sizeof(float);
            float *w = malloc(sz), *g = malloc(sz), *m = malloc(sz);
            float *v = malloc(sz), *w0 = malloc(sz), *m0 = malloc(sz);
            float *v0 = malloc(sz);
            ck_assert(w && g && m && v && w0 && m0 && v0);
            for (size_t i = 0; i < n; i++) {
                double s = ldexp(1.0, (int)iadsr__rng_below(&r, 40) - 30);
                w[i] = w0[i] = (float)iadsr__rng_normal(&r);
                g[i] = i % 7 == 3 ? 0.0f : (float)(s * iadsr__rng_normal(&r));
                m[i] = m0[i] = (float)(s * iadsr__rng_normal(&r));
                v[i] = v0[i] = i % 5 == 1 ? 0.0f
                                          : (float)(s * s * iadsr__rng_float(&r));
            }
            iadsr__adam_coef c = {0.9f, 0.999f, 1e-3f / 0.271f,
                                  1.0f / sqrtf(0.00599f), 1e-8f,
                                  wdi ? 0.01f : 0.0f};
            iadsr__adam(w, g, m, v, n, &c);
            for (size_t i = 0; i < n; i++) {
                float gi = g[i] + c.wd * w0[i];
                float mi = c.b1 * m0[i] + (1.0f - c.b1) * gi;
                float vi = c.b2 * v0[i] + (1.0f - c.b2) * gi * gi;
                float wi = w0[i] - c.lr * mi / (sqrtf(vi) * c.rc2 + c.eps);
                ck_assert_msg(memcmp(&wi, &w[i], sizeof wi) == 0 &&
                                  memcmp(&mi, &m[i], sizeof mi) == 0 &&
                                  memcmp(&vi, &v[i], sizeof vi) == 0,
                              "n %zu wd %d i %zu: w %a m %a v %a, want %a %a %a",
                              n, wdi, i, (double)w[i], (double)m[i],
                              (double)v[i], (double)wi, (double)mi, (double)vi);
            }
            free(w), free(g), free(m), free(v), free(w0), free(m0), free(v0);
        }
}
END_TEST

Suite *suite_common(void);

#define N_CODES 16 /* IADSR_OK .. IADSR_ERR_MISMATCH */

/* ---- status codes --------------------------------------------------------- */

START_TEST(test_status_names_and_texts)
{
    static const struct {
        int code;
        const char *name;
    } expect[N_CODES] = {
        {IADSR_OK, "IADSR_OK"},
        {IADSR_ERR_GENERIC, "IADSR_ERR_GENERIC"},
        {IADSR_ERR_NOMEM, "IADSR_ERR_NOMEM"},
        {IADSR_ERR_INVALID_ARG, "IADSR_ERR_INVALID_ARG"},
        {IADSR_ERR_OUT_OF_RANGE, "IADSR_ERR_OUT_OF_RANGE"},
        {IADSR_ERR_BUFFER_TOO_SMALL, "IADSR_ERR_BUFFER_TOO_SMALL"},
        {IADSR_ERR_IO, "IADSR_ERR_IO"},
        {IADSR_ERR_FORMAT, "IADSR_ERR_FORMAT"},
        {IADSR_ERR_VERSION, "IADSR_ERR_VERSION"},
        {IADSR_ERR_CHECKSUM, "IADSR_ERR_CHECKSUM"},
        {IADSR_ERR_STATE, "IADSR_ERR_STATE"},
        {IADSR_ERR_UNSUPPORTED, "IADSR_ERR_UNSUPPORTED"},
        {IADSR_ERR_NUMERIC, "IADSR_ERR_NUMERIC"},
        {IADSR_ERR_ABORTED, "IADSR_ERR_ABORTED"},
        {IADSR_ERR_DIM_MISMATCH, "IADSR_ERR_DIM_MISMATCH"},
        {IADSR_ERR_MISMATCH, "IADSR_ERR_MISMATCH"},
    };
    for (int i = 0; i < N_CODES; i++) {
        /* values are ABI: 0, -1, ..., -15 */
        ck_assert_int_eq(expect[i].code, -i);
        const char *name = iadsr_status_name(expect[i].code);
        const char *text = iadsr_strerror(expect[i].code);
        ck_assert_ptr_nonnull(name);
        ck_assert_ptr_nonnull(text);
        ck_assert_str_eq(name, expect[i].name);
        ck_assert_int_gt((int)strlen(text), 0);
        for (int j = 0; j < i; j++) {
            ck_assert_str_ne(name, iadsr_status_name(expect[j].code));
            ck_assert_str_ne(text, iadsr_strerror(expect[j].code));
        }
    }
}
END_TEST

START_TEST(test_status_unknown)
{
    static const int bad[] = {1, 2, 100, -16, -17, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_str_eq(iadsr_status_name(bad[i]), "IADSR_UNKNOWN");
        const char *text = iadsr_strerror(bad[i]);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_gt((int)strlen(text), 0);
        for (int c = 0; c < N_CODES; c++)
            ck_assert_str_ne(text, iadsr_strerror(-c));
    }
}
END_TEST

/* ---- last error ----------------------------------------------------------- */

START_TEST(test_last_error_set_clear)
{
    iadsr_clear_error();
    ck_assert_ptr_nonnull(iadsr_last_error());
    ck_assert_str_eq(iadsr_last_error(), "");
    ck_assert_int_eq(iadsr__err(IADSR_ERR_FORMAT, "file %s:%d: bad", "a.txt",
                                12),
                     IADSR_ERR_FORMAT);
    ck_assert_str_eq(iadsr_last_error(), "file a.txt:12: bad");
    /* a successful call does not clear it */
    ck_assert_str_eq(iadsr_status_name(IADSR_OK), "IADSR_OK");
    ck_assert_str_eq(iadsr_last_error(), "file a.txt:12: bad");
    iadsr_clear_error();
    ck_assert_str_eq(iadsr_last_error(), "");
}
END_TEST

START_TEST(test_err_prefix)
{
    iadsr_clear_error();
    ck_assert_int_eq(iadsr__err(IADSR_ERR_IO, "inner %d", 5), IADSR_ERR_IO);
    ck_assert_int_eq(iadsr__err_prefix(IADSR_ERR_IO, "outer %s", "x"),
                     IADSR_ERR_IO);
    ck_assert_str_eq(iadsr_last_error(), "outer x: inner 5");
    ck_assert_int_eq(iadsr__err_prefix(IADSR_ERR_NOMEM, "top"),
                     IADSR_ERR_NOMEM);
    ck_assert_str_eq(iadsr_last_error(), "top: outer x: inner 5");
    /* the current message may be an argument of the next one */
    iadsr__err(IADSR_ERR_IO, "again: %s", iadsr_last_error());
    ck_assert_str_eq(iadsr_last_error(), "again: top: outer x: inner 5");
    /* prefix of an empty message is just the prefix */
    iadsr_clear_error();
    iadsr__err_prefix(IADSR_ERR_IO, "alone");
    ck_assert_str_eq(iadsr_last_error(), "alone");
}
END_TEST

START_TEST(test_err_truncation)
{
    static char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    iadsr__err(IADSR_ERR_GENERIC, "%s", big);
    ck_assert_uint_eq(strlen(iadsr_last_error()), 1023);
    /* prefix onto a full buffer: stays bounded and starts with the prefix */
    iadsr__err_prefix(IADSR_ERR_GENERIC, "pre");
    ck_assert_uint_eq(strlen(iadsr_last_error()), 1023);
    ck_assert(strncmp(iadsr_last_error(), "pre: aaa", 8) == 0);
    /* huge prefix */
    iadsr__err(IADSR_ERR_GENERIC, "old");
    iadsr__err_prefix(IADSR_ERR_GENERIC, "%s", big);
    ck_assert_uint_eq(strlen(iadsr_last_error()), 1023);
    iadsr_clear_error();
}
END_TEST

static void *thread_err_main(void *arg)
{
    int *ok = arg;
    /* a new thread starts with an empty message */
    *ok = strcmp(iadsr_last_error(), "") == 0;
    iadsr__err(IADSR_ERR_IO, "thread message");
    *ok = *ok && strcmp(iadsr_last_error(), "thread message") == 0;
    return NULL;
}

START_TEST(test_last_error_thread_local)
{
    pthread_t th;
    int ok = 0;
    iadsr__err(IADSR_ERR_FORMAT, "main message");
    ck_assert_int_eq(pthread_create(&th, NULL, thread_err_main, &ok), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(ok, 1);
    ck_assert_str_eq(iadsr_last_error(), "main message");
    iadsr_clear_error();
}
END_TEST

/* ---- allocation hook ------------------------------------------------------ */

START_TEST(test_alloc_fail_kth)
{
    long live0 = iadsr__alloc_live();
    void *a, *b, *c;

    iadsr__alloc_fail_after(0, 0);
    iadsr__alloc_fail_after(2, 0); /* transient */
    a = iadsr__malloc(8);
    b = iadsr__malloc(8);
    c = iadsr__malloc(8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(iadsr__alloc_fail_after(0, 0), 3);
    iadsr__free(a);
    iadsr__free(c);

    iadsr__alloc_fail_after(2, 1); /* persistent */
    a = iadsr__malloc(8);
    b = iadsr__calloc(2, 8);
    c = iadsr__aligned_alloc(2, 8);
    void *d = iadsr__realloc(NULL, 2, 8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(iadsr__alloc_fail_after(0, 0), 4);
    iadsr__free(a);

    /* k = 0 disables; every attempt counts */
    a = iadsr__malloc(1);
    b = iadsr__calloc(1, 1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(iadsr__alloc_fail_after(0, 0), 2);
    iadsr__free(a);
    iadsr__free(b);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

START_TEST(test_alloc_sizes)
{
    long live0 = iadsr__alloc_live();
    /* malloc(0): unique non-NULL blocks */
    void *z1 = iadsr__malloc(0), *z2 = iadsr__malloc(0);
    ck_assert_ptr_nonnull(z1);
    ck_assert_ptr_nonnull(z2);
    ck_assert_ptr_ne(z1, z2);
    void *z3 = iadsr__calloc(0, 4);
    ck_assert_ptr_nonnull(z3);
    /* overflow */
    ck_assert_ptr_null(iadsr__calloc(SIZE_MAX / 2, 3));
    ck_assert_ptr_null(iadsr__aligned_alloc(SIZE_MAX / 4, 8));
    ck_assert_ptr_null(iadsr__realloc(NULL, SIZE_MAX, 2));
    /* calloc zeroes */
    unsigned char *cz = iadsr__calloc(100, 3);
    ck_assert_ptr_nonnull(cz);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(cz[i], 0);
    /* alignment */
    for (size_t n = 1; n < 300; n += 37) {
        float *f = iadsr__aligned_alloc(n, sizeof(float));
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq((uintptr_t)f % 64u, 0);
        f[n - 1] = 1.0f;
        iadsr__aligned_free(f);
    }
    void *a0 = iadsr__aligned_alloc(0, 4);
    ck_assert_ptr_nonnull(a0);
    iadsr__aligned_free(a0);
    /* realloc keeps contents; failure leaves the block untouched */
    int *r = iadsr__realloc(NULL, 4, sizeof(int));
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 4; i++)
        r[i] = i + 10;
    iadsr__alloc_fail_after(1, 0);
    ck_assert_ptr_null(iadsr__realloc(r, 1000, sizeof(int)));
    iadsr__alloc_fail_after(0, 0);
    int *r2 = iadsr__realloc(r, 1000, sizeof(int));
    ck_assert_ptr_nonnull(r2);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r2[i], i + 10);
    iadsr__free(r2);
    iadsr__free(cz);
    iadsr__free(z1);
    iadsr__free(z2);
    iadsr__free(z3);
    iadsr__free(NULL);
    iadsr__aligned_free(NULL);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
}
END_TEST

/* ---- RNG -------------------------------------------------------------------- */

START_TEST(test_rng_determinism)
{
    iadsr__rng a, b, c;
    iadsr__rng_seed(&a, 12345);
    iadsr__rng_seed(&b, 12345);
    iadsr__rng_seed(&c, 12346);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = iadsr__rng_u64(&a), y = iadsr__rng_u64(&b);
        ck_assert_uint_eq(x, y);
        differ += x != iadsr__rng_u64(&c);
    }
    ck_assert_int_gt(differ, 990);
    /* seed 0 is fine (splitmix64 expands it) */
    iadsr__rng_seed(&a, 0);
    ck_assert(a.s[0] | a.s[1] | a.s[2] | a.s[3]);
    ck_assert_uint_ne(iadsr__rng_u64(&a), iadsr__rng_u64(&a));
}
END_TEST

/* A block of draws with the state in registers is the same stream as one
 * call per draw, and leaves the generator where those calls would. */
START_TEST(test_rng_fill_matches_draws)
{
    static const size_t ns[] = {0, 1, 2, 7, 128, 301};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        iadsr__rng a, b;
        iadsr__rng_seed(&a, 2024 + k);
        iadsr__rng_seed(&b, 2024 + k);
        uint64_t buf[301];
        iadsr__rng_fill(&a, buf, ns[k]);
        for (size_t i = 0; i < ns[k]; i++)
            ck_assert_uint_eq(buf[i], iadsr__rng_u64(&b));
        for (int i = 0; i < 4; i++)
            ck_assert_uint_eq(a.s[i], b.s[i]);
        ck_assert_uint_eq(iadsr__rng_u64(&a), iadsr__rng_u64(&b));
    }
}
END_TEST

START_TEST(test_rng_below_range)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 7);
    ck_assert_uint_eq(iadsr__rng_below(&r, 1), 0);
    ck_assert_uint_eq(iadsr__rng_below(&r, 0), 0);
    /* chi-square on 10 buckets; 99.9% quantile with 9 dof is 27.9 */
    enum { N = 100000, K = 10 };
    long counts[K] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t v = iadsr__rng_below(&r, K);
        ck_assert_uint_lt(v, K);
        counts[v]++;
    }
    double chi2 = 0.0;
    for (int k = 0; k < K; k++) {
        double d = (double)counts[k] - N / (double)K;
        chi2 += d * d / (N / (double)K);
    }
    ck_assert_double_lt(chi2, 27.9);
    /* large n near 2^63 + 1 (worst case for naive modulo) stays in range */
    uint64_t big = (UINT64_C(1) << 63) + 1;
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(iadsr__rng_below(&r, big), big);
}
END_TEST

START_TEST(test_rng_float_normal)
{
    iadsr__rng r;
    iadsr__rng_seed(&r, 99);
    double sum = 0.0;
    for (int i = 0; i < 100000; i++) {
        float f = iadsr__rng_float(&r);
        ck_assert(f >= 0.0f && f < 1.0f);
        sum += (double)f;
    }
    ck_assert_double_eq_tol(sum / 100000.0, 0.5, 0.01);
    /* the largest 24-bit value maps below 1 */
    ck_assert((float)((UINT64_C(1) << 24) - 1) * 0x1.0p-24f < 1.0f);

    double m = 0.0, m2 = 0.0;
    enum { N = 200000 };
    for (int i = 0; i < N; i++) {
        double z = iadsr__rng_normal(&r);
        ck_assert(isfinite(z));
        m += z;
        m2 += z * z;
    }
    m /= N;
    m2 = m2 / N - m * m;
    ck_assert_double_eq_tol(m, 0.0, 0.01);
    ck_assert_double_eq_tol(m2, 1.0, 0.02);
}
END_TEST

/* ---- CRC-32C ---------------------------------------------------------------- */

static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p,
                               size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    }
    return ~crc;
}

START_TEST(test_crc32c)
{
    ck_assert_uint_eq(iadsr__crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(iadsr__crc32c(0, "", 0), 0);
    ck_assert_uint_eq(iadsr__crc32c(0x1234u, NULL, 0), 0x1234u);
    /* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA, of 0xFF -> 0x62A8AB43 */
    unsigned char z[32];
    memset(z, 0, sizeof z);
    ck_assert_uint_eq(iadsr__crc32c(0, z, 32), 0x8A9136AAu);
    memset(z, 0xff, sizeof z);
    ck_assert_uint_eq(iadsr__crc32c(0, z, 32), 0x62A8AB43u);

    /* every length and alignment against the bitwise reference, and
     * chaining */
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131u + 7u);
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n + off <= 200; n++) {
            uint32_t want = crc32c_bitwise(0, buf + off, n);
            ck_assert_uint_eq(iadsr__crc32c(0, buf + off, n), want);
            size_t h = n / 3;
            uint32_t c = iadsr__crc32c(0, buf + off, h);
            ck_assert_uint_eq(iadsr__crc32c(c, buf + off + h, n - h), want);
        }
    }
}
END_TEST

/* ---- version, clock ---------------------------------------------------------- */

START_TEST(test_version)
{
    ck_assert_int_eq(iadsr_version_number(), IADSR_VERSION_NUMBER);
    ck_assert_int_eq(iadsr_version_number(), 400);
    ck_assert_str_eq(iadsr_version_string(), IADSR_VERSION_STRING);
    ck_assert(IADSR_VERSION_AT_LEAST(0, 1, 0));
    ck_assert(IADSR_VERSION_AT_LEAST(0, 2, 0));
    ck_assert(IADSR_VERSION_AT_LEAST(0, 3, 0));
    ck_assert(IADSR_VERSION_AT_LEAST(0, 4, 0));
    ck_assert(!IADSR_VERSION_AT_LEAST(0, 4, 1));
    ck_assert_int_eq(iadsr_format_version(),
                     IADSR__FORMAT_MAJOR * 100 + IADSR__FORMAT_MINOR);
    ck_assert_int_eq(iadsr_format_version(), 104);
    const char *bi = iadsr_build_info();
    ck_assert_ptr_nonnull(bi);
    ck_assert(strncmp(bi, "libiadsr 0.4.0; BLAS: ", 22) == 0);
    ck_assert_ptr_nonnull(strstr(bi, "; compiler: "));
    ck_assert_ptr_eq(iadsr_build_info(), bi);
}
END_TEST

START_TEST(test_now)
{
    double t0 = iadsr__now();
    ck_assert(t0 > 0.0);
    double t1 = t0;
    for (int i = 0; i < 1000; i++) {
        double t = iadsr__now();
        ck_assert(t >= t1);
        t1 = t;
    }
}
END_TEST

/* ---- the GEMM wrapper ------------------------------------------------------- */

/* iadsr__sgemm against a double reference on widths on and off the
 * 16-column tiles (whatever path serves them: tiles + a tail loop, a BLAS,
 * or the reference kernels), both A orientations, beta 0 and 1. */
START_TEST(test_sgemm_widths)
{
    static const int widths[] = {1, 15, 16, 17, 33, 48, 100, 1000};
    iadsr__rng r;
    iadsr__rng_seed(&r, 123);
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int ta = 0; ta <= 1; ta++)
            for (int bz = 0; bz <= 1; bz++) {
                int m = 37, n = widths[wi], k = 64;
                float *a = malloc(sizeof(float) * (size_t)m * (size_t)k);
                float *b = malloc(sizeof(float) * (size_t)k * (size_t)n);
                float *c = malloc(sizeof(float) * (size_t)m * (size_t)n);
                float *c0 = malloc(sizeof(float) * (size_t)m * (size_t)n);
                ck_assert(a && b && c && c0);
                for (int i = 0; i < m * k; i++)
                    a[i] = (float)iadsr__rng_normal(&r);
                for (int i = 0; i < k * n; i++)
                    b[i] = (float)iadsr__rng_normal(&r);
                for (int i = 0; i < m * n; i++)
                    c[i] = c0[i] = bz ? NAN : (float)iadsr__rng_normal(&r);
                /* A is m x k, or k x m read transposed */
                iadsr__sgemm(ta, 0, m, n, k, 1.0f, a, ta ? m : k, b, n,
                             bz ? 0.0f : 1.0f, c, n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double want = bz ? 0.0 : (double)c0[i * n + j];
                        for (int p = 0; p < k; p++)
                            want += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                                    (double)b[p * n + j];
                        ck_assert_msg(fabs((double)c[i * n + j] - want) < 1e-3,
                                      "n %d trans_a %d beta %d: c[%d][%d] = "
                                      "%g, want %g",
                                      n, ta, !bz, i, j, (double)c[i * n + j],
                                      want);
                    }
                free(a), free(b), free(c), free(c0);
            }
}
END_TEST

Suite *suite_common(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, test_status_names_and_texts);
    tcase_add_test(tc, test_sgemm_widths);
    tcase_add_test(tc, test_sgemm_blocked_exact);
    tcase_add_test(tc, test_adam_matches_loop);
    tcase_add_test(tc, test_status_unknown);
    tcase_add_test(tc, test_last_error_set_clear);
    tcase_add_test(tc, test_err_prefix);
    tcase_add_test(tc, test_err_truncation);
    tcase_add_test(tc, test_last_error_thread_local);
    suite_add_tcase(s, tc);

    tc = tcase_create("alloc");
    tcase_add_test(tc, test_alloc_fail_kth);
    tcase_add_test(tc, test_alloc_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("util");
    tcase_add_test(tc, test_rng_determinism);
    tcase_add_test(tc, test_rng_fill_matches_draws);
    tcase_add_test(tc, test_rng_below_range);
    tcase_add_test(tc, test_rng_float_normal);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_now);
    suite_add_tcase(s, tc);
    return s;
}
