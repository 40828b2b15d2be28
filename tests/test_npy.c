/* Tests: .npy decoding and writing (npy.c), whole-file reads and atomic
 * writes (fileio.c).
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fileio.h"
#include "iadsr.h"
#include "testutil.h"
#include "iadsr.h"
#include "common/alloc.h"
#include "io/npy.h"

Suite *suite_npy(void);

/* ---- helpers ------------------------------------------------------------- */

static char *tmp_path(char *buf, size_t cap, const char *name)
{
    static int counter;
    snprintf(buf, cap, "%s/npy-%ld-%d-%s", tu_tmp_dir(), (long)getpid(),
             counter++, name);
    return buf;
}

static uint8_t *fixture(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/npy/%s", tu_data_dir(), name);
    return tu_read_file(path, len);
}

/* A .npy file (malloc'ed) with header text @p dict (without padding or
 * newline), padded with spaces to a 64-byte data offset as numpy does,
 * followed by @p data_bytes bytes 0, 1, 2, ... */
static uint8_t *make_npy(int major, const char *dict, size_t data_bytes,
                         size_t *len)
{
    const size_t pre = major == 1 ? 10 : 12;
    size_t text = strlen(dict);
    size_t hlen = text + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    size_t n = pre + hlen + data_bytes;
    uint8_t *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (uint8_t)hlen;
        b[9] = (uint8_t)(hlen >> 8);
    } else {
        for (int i = 0; i < 4; i++)
            b[8 + i] = (uint8_t)(hlen >> (8 * i));
    }
    memcpy(b + pre, dict, text);
    memset(b + pre + text, ' ', hlen - text - 1);
    b[pre + hlen - 1] = '\n';
    for (size_t i = 0; i < data_bytes; i++)
        b[pre + hlen + i] = (uint8_t)i;
    *len = n;
    return b;
}

static int decode_status(const uint8_t *b, size_t len)
{
    int64_t r = -1, c = -1;
    float out[64];
    int rc = iadsr_npy_decode(b, len, out, 64, &r, &c);
    if (rc != IADSR_OK) {
        ck_assert_int_eq(r, 0); /* reset on failure */
        ck_assert_int_eq(c, 0);
    }
    return rc;
}

/* Decode the file built from @p dict with @p data_bytes of data and expect
 * @p want, with @p needle in the message (when not NULL). */
static void expect_dict(int major, const char *dict, size_t data_bytes,
                        int want, const char *needle)
{
    size_t len;
    uint8_t *b = make_npy(major, dict, data_bytes, &len);
    iadsr_clear_error();
    int rc = decode_status(b, len);
    ck_assert_msg(rc == want, "%s: got %s, expected %s (%s)", dict,
                  iadsr_status_name(rc), iadsr_status_name(want),
                  iadsr_last_error());
    if (rc != IADSR_OK) {
        ck_assert_msg(strncmp(iadsr_last_error(), "npy: ", 5) == 0,
                      "message '%s' does not start with 'npy: '",
                      iadsr_last_error());
        if (needle)
            ck_assert_msg(strstr(iadsr_last_error(), needle) != NULL,
                          "%s: message '%s' lacks '%s'", dict,
                          iadsr_last_error(), needle);
    }
    free(b);
}

/* ---- half precision ------------------------------------------------------ */

/* Every binary16 value against an independent computation in double. */
START_TEST(test_half_all_values)
{
    int n_nan = 0, n_sub = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const int sign = (int)(h >> 15);
        const int e = (int)((h >> 10) & 31);
        const int m = (int)(h & 1023);
        const float got = iadsr__half_to_float((uint16_t)h);
        uint32_t gb;
        memcpy(&gb, &got, 4);
        ck_assert_int_eq((int)(gb >> 31), sign);
        if (e == 31 && m != 0) {
            ck_assert_msg(isnan(got), "0x%04x is not NaN", (unsigned)h);
            ck_assert_uint_eq(gb & 0x7fffffu, (uint32_t)m << 13);
            n_nan++;
            continue;
        }
        double want;
        if (e == 31)
            want = INFINITY;
        else if (e == 0)
            want = ldexp((double)m, -24);
        else
            want = ldexp((double)(1024 + m), e - 25);
        if (sign)
            want = -want;
        if (e == 0 && m != 0)
            n_sub++;
        ck_assert_msg((double)got == want, "0x%04x: %.17g, expected %.17g",
                      (unsigned)h, (double)got, want);
    }
    ck_assert_int_eq(n_nan, 2 * 1023);
    ck_assert_int_eq(n_sub, 2 * 1023);
    /* a few by value */
    ck_assert(iadsr__half_to_float(0x3c00) == 1.0f);
    ck_assert(iadsr__half_to_float(0x7bff) == 65504.0f);
    ck_assert(iadsr__half_to_float(0x0001) == 5.9604644775390625e-08f);
    ck_assert(iadsr__half_to_float(0x0400) == 6.103515625e-05f);
    ck_assert(iadsr__half_to_float(0x03ff) == 6.0975551605224609375e-05f);
    ck_assert(isinf(iadsr__half_to_float(0xfc00)) &&
              iadsr__half_to_float(0xfc00) < 0);
}
END_TEST

/* ---- fixtures written by numpy ------------------------------------------- */

/* tests/data/npy/f4.npy: np.save of ((np.arange(12).reshape(3, 4) - 5.5)
 * / 4) as float32 with a[1, 2] = 1e-3. */
static const float F4_WANT[12] = {-1.375f, -1.125f, -0.875f, -0.625f,
                                  -0.375f, -0.125f, 1e-3f,   0.375f,
                                  0.625f,  0.875f,  1.125f,  1.375f};

START_TEST(test_fixture_f4)
{
    size_t len;
    uint8_t *b = fixture("f4.npy", &len);
    int64_t r = 0, c = 0;
    /* shape only */
    ck_assert_int_eq(iadsr_npy_decode(b, len, NULL, 0, &r, &c), IADSR_OK);
    ck_assert_int_eq(r, 3);
    ck_assert_int_eq(c, 4);
    /* too small a buffer: the shape is still reported */
    float out[13];
    r = c = 0;
    iadsr_clear_error();
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 11, &r, &c),
                     IADSR_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(r, 3);
    ck_assert_int_eq(c, 4);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "11"));
    out[12] = 42.0f;
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 13, &r, &c), IADSR_OK);
    for (int i = 0; i < 12; i++)
        ck_assert_msg(out[i] == F4_WANT[i], "[%d] %g != %g", i,
                      (double)out[i], (double)F4_WANT[i]);
    ck_assert(out[12] == 42.0f); /* nothing written past n_rows * n_cols */
    free(b);
}
END_TEST

START_TEST(test_fixture_f2)
{
    /* np.float16 values and their exact float32 widening (numpy's own
     * astype(np.float32)); -1e-7 is the subnormal 0x8002. */
    static const float want[12] = {0.0f,
                                   -0.0f,
                                   1.0f,
                                   -2.5f,
                                   65504.0f,
                                   6.103515625e-05f,
                                   5.9604644775390625e-08f,
                                   INFINITY,
                                   -INFINITY,
                                   0.333251953125f,
                                   1024.0f,
                                   -1.1920928955078125e-07f};
    size_t len;
    uint8_t *b = fixture("f2.npy", &len);
    int64_t r = 0, c = 0;
    float out[12];
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 12, &r, &c), IADSR_OK);
    ck_assert_int_eq(r, 3);
    ck_assert_int_eq(c, 4);
    for (int i = 0; i < 12; i++) {
        uint32_t gb, wb;
        memcpy(&gb, &out[i], 4);
        memcpy(&wb, &want[i], 4);
        ck_assert_msg(gb == wb, "[%d] %.9g (0x%08x), expected %.9g (0x%08x)",
                      i, (double)out[i], gb, (double)want[i], wb);
    }
    free(b);
}
END_TEST

START_TEST(test_fixture_v2_v3)
{
    size_t len;
    uint8_t *b = fixture("v2.npy", &len);
    ck_assert_int_eq(b[6], 2);
    int64_t r = 0, c = 0;
    float out[4];
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 4, &r, &c), IADSR_OK);
    ck_assert_int_eq(r, 2);
    ck_assert_int_eq(c, 2);
    ck_assert(out[0] == 1.5f && out[1] == -2.0f && out[2] == 0.25f &&
              out[3] == 8.0f);
    /* version 3.0 has the layout of 2.0 (a UTF-8 header) */
    b[6] = 3;
    memset(out, 0, sizeof out);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 4, &r, &c), IADSR_OK);
    ck_assert(out[0] == 1.5f && out[3] == 8.0f);
    /* unknown versions */
    static const uint8_t bad[][2] = {{4, 0}, {0, 0}, {1, 1}, {2, 1}, {255, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b[6] = bad[i][0];
        b[7] = bad[i][1];
        iadsr_clear_error();
        ck_assert_int_eq(iadsr_npy_decode(b, len, out, 4, &r, &c),
                         IADSR_ERR_VERSION);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "version"));
    }
    free(b);
}
END_TEST

START_TEST(test_fixture_rejected)
{
    size_t len;
    int64_t r = 7, c = 7;
    float out[6];
    uint8_t *b = fixture("fortran.npy", &len);
    iadsr_clear_error();
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, &r, &c),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "fortran_order"));
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(c, 0);
    free(b);
    b = fixture("bigendian.npy", &len);
    iadsr_clear_error();
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, &r, &c),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "'>f4'"));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "big-endian"));
    free(b);
}
END_TEST

/* ---- writer -------------------------------------------------------------- */

/* The bytes np.save writes for the same array. */
START_TEST(test_save_matches_numpy)
{
    size_t want_len;
    uint8_t *want = fixture("f4.npy", &want_len);
    char path[512];
    tmp_path(path, sizeof path, "same.npy");
    ck_assert_int_eq(iadsr_npy_save(path, F4_WANT, 3, 4, 4,
                                     IADSR_SAVE_NO_FSYNC),
                     IADSR_OK);
    size_t len;
    uint8_t *got = tu_read_file(path, &len);
    ck_assert_uint_eq(len, want_len);
    ck_assert_int_eq(memcmp(got, want, len), 0);
    free(got);

    /* the same rows from a wider host matrix (ld 6), with fsync */
    float wide[18];
    for (int i = 0; i < 18; i++)
        wide[i] = NAN; /* the gap columns must never be written */
    for (int r = 0; r < 3; r++)
        memcpy(wide + r * 6, F4_WANT + r * 4, 4 * sizeof(float));
    ck_assert_int_eq(iadsr_npy_save(path, wide, 3, 4, 6, 0), IADSR_OK);
    ck_assert_int_eq(tu_count_temp_files(path), 0);
    got = tu_read_file(path, &len);
    ck_assert_uint_eq(len, want_len);
    ck_assert_int_eq(memcmp(got, want, len), 0);
    free(got);
    unlink(path);
    free(want);
}
END_TEST

/* Save then decode, over shapes whose header text lengths differ. */
START_TEST(test_roundtrip)
{
    static const int64_t shapes[][2] = {{1, 1},    {2, 3},  {5, 7}, {1000, 1},
                                        {1, 300},  {33, 2}, {0, 0}};
    char path[512];
    tmp_path(path, sizeof path, "rt.npy");
    for (int s = 0; shapes[s][1] != 0; s++) {
        const int64_t R = shapes[s][0], C = shapes[s][1], ld = C + s % 3;
        float *src = malloc((size_t)(R * ld) * sizeof(float));
        ck_assert_ptr_nonnull(src);
        for (int64_t i = 0; i < R * ld; i++)
            src[i] = (float)((i * 7919) % 1013) / 17.0f - 20.0f;
        src[0] = NAN; /* stored as is: validation is the consumer's */
        ck_assert_int_eq(iadsr_npy_save(path, src, R, C, ld,
                                        IADSR_SAVE_NO_FSYNC),
                         IADSR_OK);
        size_t len;
        uint8_t *b = tu_read_file(path, &len);
        /* header as numpy writes it: 64-byte aligned data, '\n' last */
        size_t off = 10 + ((size_t)b[8] | (size_t)b[9] << 8);
        ck_assert_uint_eq(off % 64, 0);
        ck_assert_int_eq(b[off - 1], '\n');
        ck_assert_uint_eq(len, off + (size_t)(R * C) * 4);
        char dict[128];
        snprintf(dict, sizeof dict,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': "
                 "(%lld, %lld), }",
                 (long long)R, (long long)C);
        ck_assert_int_eq(memcmp(b + 10, dict, strlen(dict)), 0);

        float *dst = malloc((size_t)(R * C) * sizeof(float));
        ck_assert_ptr_nonnull(dst);
        int64_t r = 0, c = 0;
        ck_assert_int_eq(iadsr_npy_decode(b, len, dst, R * C, &r, &c),
                         IADSR_OK);
        ck_assert_int_eq(r, R);
        ck_assert_int_eq(c, C);
        ck_assert(isnan(dst[0]));
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++)
                if (i + j > 0)
                    ck_assert(dst[i * C + j] == src[i * ld + j]);
        free(dst);
        free(b);
        free(src);
    }
    unlink(path);
}
END_TEST

/* ---- untrusted input ----------------------------------------------------- */

/* Every proper prefix of a valid file fails with FORMAT (and never reads
 * past the given length: the prefix is copied to a block of exactly that
 * size, so ASan/valgrind see any overread). */
START_TEST(test_every_truncation)
{
    static const char *const names[] = {"f4.npy", "f2.npy", "v2.npy"};
    for (int f = 0; f < 3; f++) {
        size_t len;
        uint8_t *b = fixture(names[f], &len);
        ck_assert_int_eq(decode_status(b, len), IADSR_OK);
        for (size_t n = 0; n < len; n++) {
            uint8_t *p = malloc(n ? n : 1);
            ck_assert_ptr_nonnull(p);
            memcpy(p, b, n);
            int rc = decode_status(p, n);
            ck_assert_msg(rc == IADSR_ERR_FORMAT,
                          "%s cut to %zu bytes: %s (%s)", names[f], n,
                          iadsr_status_name(rc), iadsr_last_error());
            free(p);
        }
        /* one byte more than the data is an error too */
        uint8_t *p = malloc(len + 1);
        ck_assert_ptr_nonnull(p);
        memcpy(p, b, len);
        p[len] = 0;
        ck_assert_int_eq(decode_status(p, len + 1), IADSR_ERR_FORMAT);
        free(p);
        free(b);
    }
}
END_TEST

#define D_OK "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

START_TEST(test_header_variants_accepted)
{
    /* what numpy writes and other valid spellings of the same dictionary */
    expect_dict(1, D_OK, 24, IADSR_OK, NULL);
    expect_dict(2, D_OK, 24, IADSR_OK, NULL);
    expect_dict(1, "{\"descr\": \"<f4\", \"fortran_order\": False, "
                   "\"shape\": (2, 3)}",
                24, IADSR_OK, NULL);
    expect_dict(1, "{'shape':(2,3),'descr':'<f4','fortran_order':False}", 24,
                IADSR_OK, NULL);
    expect_dict(1, " \t{ 'fortran_order' : False ,\t'shape' : ( 2 , 3 , ) ,"
                   " 'descr' : '=f4' , } \t",
                24, IADSR_OK, NULL);
    expect_dict(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3)}",
                12, IADSR_OK, NULL);
    expect_dict(1, "{'descr': '=f2', 'fortran_order': False, 'shape': (2L, "
                   "3L), }",
                12, IADSR_OK, NULL);
    /* zero-sized arrays are valid .npy files (consumers may refuse them) */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3)}",
                0, IADSR_OK, NULL);

    /* what is decoded from an accepted variant */
    size_t len;
    uint8_t *b = make_npy(1, "{'shape':(3,1),'descr':'<f2',"
                             "'fortran_order':False}",
                          6, &len);
    b[len - 6] = 0x00; /* 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800 */
    b[len - 5] = 0x3c;
    b[len - 4] = 0x00;
    b[len - 3] = 0xc0;
    b[len - 2] = 0x00;
    b[len - 1] = 0x38;
    float out[3];
    int64_t r, c;
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 3, &r, &c), IADSR_OK);
    ck_assert_int_eq(r, 3);
    ck_assert_int_eq(c, 1);
    ck_assert(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f);
    free(b);
}
END_TEST

START_TEST(test_header_rejected)
{
    const int F = IADSR_ERR_FORMAT, U = IADSR_ERR_UNSUPPORTED;
    /* data size: one byte short, one byte long, half of f4 */
    expect_dict(1, D_OK, 23, F, "needs 24 bytes");
    expect_dict(1, D_OK, 25, F, "needs 24 bytes");
    expect_dict(1, D_OK, 12, F, NULL);
    /* dimensions */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}",
                24, F, "negative");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, "
                   "99999999999999999999)}",
                24, F, "64 bits");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, "
                   "9223372036854775808)}",
                24, F, "64 bits");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                   "(4294967296, 4294967296)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': "
                   "(4611686018427387904, 2)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3)}",
                24, F, "leading zero");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6)}",
                24, F, "not a tuple");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (+2, 3)}",
                24, F, NULL);
    /* not 2-D */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, "
                   "1), }",
                24, U, "got 3-D");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
                24, U, "expected a 2-D array, got 1-D");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
                4, U, "got 0-D");
    /* dtypes */
    expect_dict(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, U, "'>f4'");
    expect_dict(1, "{'descr': '>f2', 'fortran_order': False, 'shape': (2, 3)}",
                12, U, "big-endian");
    expect_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}",
                48, U, "'<f8'");
    expect_dict(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3)}",
                24, U, "'<i4'");
    expect_dict(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, U, "'|f4'");
    expect_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3)}",
                6, U, "'|u1'");
    expect_dict(1, "{'descr': '<f4 ', 'fortran_order': False, 'shape': (2, "
                   "3)}",
                24, U, NULL);
    expect_dict(1, "{'descr': [('a', '<f4')], 'fortran_order': False, "
                   "'shape': (2, 3)}",
                24, U, "structured");
    expect_dict(1, "{'descr': 4, 'fortran_order': False, 'shape': (2, 3)}",
                24, F, NULL);
    /* fortran_order */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}",
                24, U, "fortran_order");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}",
                24, F, "True or False");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, "
                   "3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", 24,
                F, NULL);
    /* keys */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                   "'extra': 1}",
                24, F, "unknown key 'extra'");
    expect_dict(1, "{'descr': '<f4', 'shape': (2, 3)}", 24, F,
                "missing key 'fortran_order'");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False}", 24, F,
                "missing key 'shape'");
    expect_dict(1, "{}", 24, F, "missing key 'descr'");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                   "'descr': '<f4'}",
                24, F, "duplicate key 'descr'");
    expect_dict(1, "{'Descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, F, "unknown key");
    expect_dict(1, "{descr: '<f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, F, NULL);
    /* strings */
    expect_dict(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                   "'sha",
                24, F, "unterminated string");
    expect_dict(1, "{'descr\": '<f4', 'fortran_order': False, 'shape': (2, "
                   "3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2, "
                   "3)}",
                24, F, "escape");
    /* structure */
    expect_dict(1, "'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, F, NULL);
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)",
                24, F, NULL);
    expect_dict(1, D_OK " x", 24, F, "after the dictionary");
    expect_dict(1, D_OK "}", 24, F, NULL);
    expect_dict(1, "{'descr': '<f4',, 'fortran_order': False, 'shape': (2, "
                   "3)}",
                24, F, NULL);
    expect_dict(1, "{, 'descr': '<f4', 'fortran_order': False, 'shape': (2, "
                   "3)}",
                24, F, NULL);
    expect_dict(1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3)}",
                24, F, "':'");
    expect_dict(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}",
                24, F, NULL);
    expect_dict(1, "", 24, F, NULL);
    /* bytes that are not printable ASCII */
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                   "'\xc3\xa9': 1}",
                24, F, "not printable ASCII");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False,\n 'shape': (2, "
                   "3)}",
                24, F, "not printable ASCII");
    expect_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}"
                   "\r",
                24, F, "not printable ASCII");
}
END_TEST

START_TEST(test_framing_rejected)
{
    size_t len;
    uint8_t *b = make_npy(1, D_OK, 24, &len);
    ck_assert_int_eq(decode_status(b, len), IADSR_OK);

    /* bad magic, byte by byte */
    for (int i = 0; i < 6; i++) {
        b[i] ^= 0x20;
        iadsr_clear_error();
        ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "magic"));
        b[i] ^= 0x20;
    }
    /* short inputs with a wrong magic say so (and read nothing beyond) */
    static const char *const shorts[] = {"\x93NUMPX\x01", "\x93NUMPYX",
                                         "AB", "\x92"};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(shorts[i]);
        uint8_t *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        memcpy(p, shorts[i], n);
        iadsr_clear_error();
        ck_assert_int_eq(decode_status(p, n), IADSR_ERR_FORMAT);
        ck_assert_msg(strstr(iadsr_last_error(), i == 1 ? "truncated"
                                                        : "magic") != NULL,
                      "%d: %s", i, iadsr_last_error());
        free(p);
    }
    /* the header length points past the end of the data, or leaves it
     * without its final newline */
    const uint8_t h0 = b[8], h1 = b[9];
    b[8] = 0xff;
    b[9] = 0xff;
    iadsr_clear_error();
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "past the end"));
    b[8] = (uint8_t)(len - 10 + 1);
    b[9] = (uint8_t)((len - 10 + 1) >> 8);
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    b[8] = 0;
    b[9] = 0;
    iadsr_clear_error();
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "empty header"));
    b[8] = (uint8_t)(h0 - 1); /* the header now ends with a space */
    b[9] = h1;
    iadsr_clear_error();
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "newline"));
    b[8] = h0;
    free(b);

    /* version 2.0 with a 32-bit length far past the end */
    b = make_npy(2, D_OK, 24, &len);
    ck_assert_int_eq(decode_status(b, len), IADSR_OK);
    b[11] = 0x80;
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    b[8] = b[9] = b[10] = b[11] = 0xff;
    ck_assert_int_eq(decode_status(b, len), IADSR_ERR_FORMAT);
    free(b);
}
END_TEST

START_TEST(test_decode_args)
{
    size_t len;
    uint8_t *b = make_npy(1, D_OK, 24, &len);
    int64_t r = 5, c = 5;
    float out[6];
    ck_assert_int_eq(iadsr_npy_decode(NULL, len, out, 6, &r, &c),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(iadsr_npy_decode(NULL, 0, NULL, 0, &r, &c),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, NULL, &c),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, &r, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, NULL, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, -1, &r, &c),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 5, &r, &c),
                     IADSR_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(r, 2);
    ck_assert_int_eq(c, 3);
    /* NULL out with a capacity: only the shape */
    ck_assert_int_eq(iadsr_npy_decode(b, len, NULL, 6, &r, &c), IADSR_OK);
    ck_assert_int_eq(iadsr_npy_decode(b, len, out, 6, &r, &c), IADSR_OK);
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)(4 * i) | (uint32_t)(4 * i + 1) << 8 |
                     (uint32_t)(4 * i + 2) << 16 |
                     (uint32_t)(4 * i + 3) << 24;
        float f;
        memcpy(&f, &u, 4);
        ck_assert(memcmp(&out[i], &f, 4) == 0); /* the stored bits */
    }
    /* an empty buffer is a (truncated) file, not an argument error */
    ck_assert_int_eq(iadsr_npy_decode(b, 0, out, 6, &r, &c), IADSR_ERR_FORMAT);
    free(b);
}
END_TEST

START_TEST(test_save_args)
{
    char path[512];
    tmp_path(path, sizeof path, "args.npy");
    const float m[6] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(iadsr_npy_save(NULL, m, 2, 3, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save("", m, 2, 3, 3, 0), IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, NULL, 2, 3, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, 0, 3, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, -1, 3, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, 2, 0, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, 2, 3, 2, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "ld"));
    ck_assert_int_eq(iadsr_npy_save(path, m, INT64_MAX, 3, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, 2, 3, INT64_MAX, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_npy_save(path, m, 2, 3, 3, 2u),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_int_eq(iadsr_npy_save(path, m, 2, 3, 3, 0x80000000u),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(tu_count_temp_files(path), 0);

    /* I/O: a missing directory, and a directory as the target */
    char dir[512], p2[600];
    tmp_path(dir, sizeof dir, "no-such-dir");
    snprintf(p2, sizeof p2, "%s/x.npy", dir);
    iadsr_clear_error();
    ck_assert_int_eq(iadsr_npy_save(p2, m, 2, 3, 3, 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "npy_save: "));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), p2));
    tmp_path(dir, sizeof dir, "a-dir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(iadsr_npy_save(dir, m, 2, 3, 3, IADSR_SAVE_NO_FSYNC),
                     IADSR_ERR_IO);
    ck_assert_int_eq(tu_count_temp_files(dir), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- fileio -------------------------------------------------------------- */

START_TEST(test_read_file)
{
    char path[512];
    tmp_path(path, sizeof path, "read.bin");
    void *b = (void *)(uintptr_t)1;
    size_t len = 99;
    long live0 = iadsr__alloc_live();

    /* missing: IO naming the caller, the path and the reason */
    iadsr_clear_error();
    ck_assert_int_eq(iadsr__read_file(path, "tester", &b, &len), IADSR_ERR_IO);
    ck_assert_ptr_null(b);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "tester: "));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), strerror(ENOENT)));
    /* a directory */
    ck_assert_int_eq(iadsr__read_file(tu_tmp_dir(), "tester", &b, &len),
                     IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "directory"));
    ck_assert_int_eq(iadsr__read_file(NULL, "tester", &b, &len),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr__read_file("", "tester", &b, &len),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr__read_file(path, "tester", NULL, &len),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr__read_file(path, "tester", &b, NULL),
                     IADSR_ERR_INVALID_ARG);

    /* empty, small, and larger than the first buffer of unknown-size
     * reads */
    static uint8_t big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    static const size_t sizes[] = {0, 1, 100, sizeof big};
    for (int k = 0; k < 4; k++) {
        tu_write_file(path, big, sizes[k]);
        ck_assert_int_eq(iadsr__read_file(path, "tester", &b, &len), IADSR_OK);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(len, sizes[k]);
        ck_assert_int_eq(memcmp(b, big, len), 0);
        iadsr__free(b);
    }
    /* not a regular file: read to its end */
    if (access("/dev/null", R_OK) == 0) {
        ck_assert_int_eq(iadsr__read_file("/dev/null", "tester", &b, &len),
                         IADSR_OK);
        ck_assert_uint_eq(len, 0);
        iadsr__free(b);
    }
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    unlink(path);
}
END_TEST

/* What the writer does with what sits at its path (fileio.h): a symbolic
 * link is followed and its target replaced (the link stays); a character
 * device or a FIFO is written in place (the node stays what it was); a
 * directory or a loop of links is refused. */
START_TEST(test_atomic_targets)
{
    char dir[512], real[600], sub[600], link[600], rel[600], p[700];
    tmp_path(dir, sizeof dir, "targets");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(real, sizeof real, "%s/sub/real.bin", dir);
    ck_assert_int_eq(iadsr__atomic_write(real, "old", 3, 0), IADSR_OK);
    ck_assert_int_eq(chmod(real, 0600), 0);
    /* a relative link in another directory: resolved from the link's own */
    snprintf(link, sizeof link, "%s/link.bin", dir);
    ck_assert_int_eq(symlink("sub/real.bin", link), 0);
    ck_assert_int_eq(iadsr__atomic_write(link, "new!", 4, 0), IADSR_OK);
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(stat(real, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0600); /* the target's mode */
    size_t len;
    uint8_t *b = tu_read_file(real, &len);
    ck_assert(len == 4 && memcmp(b, "new!", 4) == 0);
    free(b);
    ck_assert_int_eq(tu_count_temp_files(real), 0);
    ck_assert_int_eq(tu_count_temp_files(link), 0);
    /* a link to a link, and a dangling one: the file is created there */
    snprintf(rel, sizeof rel, "%s/link2.bin", dir);
    ck_assert_int_eq(symlink("link.bin", rel), 0);
    ck_assert_int_eq(iadsr__atomic_write(rel, "2", 1, 0), IADSR_OK);
    b = tu_read_file(real, &len);
    ck_assert(len == 1 && b[0] == '2');
    free(b);
    snprintf(p, sizeof p, "%s/dangling.bin", dir);
    ck_assert_int_eq(symlink("sub/made.bin", p), 0);
    ck_assert_int_eq(iadsr__atomic_write(p, "m", 1, 0), IADSR_OK);
    snprintf(p, sizeof p, "%s/sub/made.bin", dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISREG(st.st_mode) && st.st_size == 1);
    /* a loop of links */
    snprintf(p, sizeof p, "%s/loop", dir);
    ck_assert_int_eq(symlink("loop", p), 0);
    ck_assert_int_eq(iadsr__atomic_write(p, "x", 1, 0), IADSR_ERR_IO);
    ck_assert(strstr(iadsr_last_error(), "symbolic links") != NULL);
    /* a directory */
    ck_assert_int_eq(iadsr__atomic_write(sub, "x", 1, 0), IADSR_ERR_IO);
    ck_assert(strstr(iadsr_last_error(), "directory") != NULL);
    /* a FIFO: written in place; it stays a FIFO and the reader gets it all */
    snprintf(p, sizeof p, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    int rd = open(p, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(rd, 0);
    ck_assert_int_eq(iadsr__atomic_write(p, "through", 7, 0), IADSR_OK);
    char got[16] = {0};
    ck_assert_int_eq((int)read(rd, got, sizeof got), 7);
    ck_assert_str_eq(got, "through");
    close(rd);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(tu_count_temp_files(p), 0);
    /* a character device (the streamed writer too) */
    if (access("/dev/null", W_OK) == 0) {
        struct stat before;
        ck_assert_int_eq(stat("/dev/null", &before), 0);
        ck_assert_int_eq(iadsr__atomic_write("/dev/null", "x", 1, 0), IADSR_OK);
        iadsr__atomic_file f;
        ck_assert_int_eq(iadsr__atomic_begin(&f, "/dev/null"), IADSR_OK);
        ck_assert_int_eq(iadsr__atomic_put(&f, "abc", 3), 0);
        ck_assert_int_eq(iadsr__atomic_commit(&f, 0), IADSR_OK);
        ck_assert_int_eq(iadsr__atomic_begin(&f, "/dev/null"), IADSR_OK);
        iadsr__atomic_abort(&f);
        ck_assert_int_eq(stat("/dev/null", &st), 0);
        ck_assert(S_ISCHR(st.st_mode) && st.st_rdev == before.st_rdev &&
                  st.st_ino == before.st_ino);
    }
    ck_assert_int_eq(tu_count_temp_files("/dev/null"), 0);
}
END_TEST

/* Temporary files of killed saves are swept by the next save to the same
 * target, and only those: this host's, of a process that is gone. */
START_TEST(test_atomic_sweep)
{
    char path[512], name[700];
    tmp_path(path, sizeof path, "sweep.bin");
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    unsigned tag = (unsigned)iadsr__host_tag();
    struct {
        unsigned tag;
        long pid;
        const char *rand;
        int gone_after;
    } c[] = {
        {tag, (long)child, "a1b2c3", 1},    /* this host, process gone */
        {tag, (long)child, "zzzzzz", 1},    /* another of the same */
        {tag, (long)getppid(), "a1b2c3", 0}, /* a live process */
        {tag, (long)getpid(), "a1b2c3", 0},  /* this process */
        {tag ^ 1u, (long)child, "a1b2c3", 0}, /* another host */
        {tag, (long)child, "a1b2c", 0},     /* not our shape */
    };
    int n = (int)(sizeof c / sizeof c[0]);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.tmp.%08x-%ld.%s", path, c[i].tag,
                 c[i].pid, c[i].rand);
        tu_write_file(name, "junk", 4);
    }
    /* a directory of the shape is not a file to remove */
    snprintf(name, sizeof name, "%s.tmp.%08x-%ld.dirdir", path, tag,
             (long)child);
    ck_assert_int_eq(mkdir(name, 0755), 0);
    ck_assert_int_eq(iadsr__atomic_write(path, "new", 3, 0), IADSR_OK);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.tmp.%08x-%ld.%s", path, c[i].tag,
                 c[i].pid, c[i].rand);
        ck_assert_msg((access(name, F_OK) != 0) == c[i].gone_after,
                      "case %d: %s %s", i, name,
                      c[i].gone_after ? "left" : "removed");
        unlink(name);
    }
    snprintf(name, sizeof name, "%s.tmp.%08x-%ld.dirdir", path, tag,
             (long)child);
    ck_assert_int_eq(rmdir(name), 0);
    ck_assert_int_eq(tu_count_temp_files(path), 0);
    unlink(path);
}
END_TEST

START_TEST(test_atomic_write)
{
    char path[512];
    tmp_path(path, sizeof path, "atomic.bin");
    struct stat st;

    /* a new file: 0644 less the umask */
    mode_t old = umask(027);
    ck_assert_int_eq(iadsr__atomic_write(path, "abc", 3, 0), IADSR_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0640);
    unlink(path);
    umask(022);
    ck_assert_int_eq(iadsr__atomic_write(path, "abc", 3, 0), IADSR_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0644);
    umask(old);

    /* an existing file keeps its mode and gets the new bytes */
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(iadsr__atomic_write(path, "hello", 5,
                                         IADSR_SAVE_NO_FSYNC),
                     IADSR_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)(st.st_mode & 0777), 0600);
    size_t len;
    uint8_t *b = tu_read_file(path, &len);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(b, "hello", 5), 0);
    free(b);
    /* zero bytes */
    ck_assert_int_eq(iadsr__atomic_write(path, NULL, 0, 0), IADSR_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)st.st_size, 0);

    /* failures leave the old file and no temporary file */
    ck_assert_int_eq(iadsr__atomic_write(path, "zz", 2, 0), IADSR_OK);
    ck_assert_int_eq(iadsr__atomic_write(path, "xyz", 3, 4u),
                     IADSR_ERR_UNSUPPORTED);
    ck_assert_int_eq(iadsr__atomic_write(path, NULL, 3, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr__atomic_write(NULL, "x", 1, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr__atomic_write("", "x", 1, 0),
                     IADSR_ERR_INVALID_ARG);
    for (long k = 1; k <= 2; k++) {
        long live0 = iadsr__alloc_live();
        iadsr__alloc_fail_after(k, 0);
        int rc = iadsr__atomic_write(path, "xyz", 3, 0);
        long made = iadsr__alloc_fail_after(0, 0);
        if (made < k) {
            ck_assert_int_eq(rc, IADSR_OK);
            ck_assert_int_eq(iadsr__atomic_write(path, "zz", 2, 0), IADSR_OK);
        } else {
            ck_assert_int_eq(rc, IADSR_ERR_NOMEM);
        }
        ck_assert_int_eq(iadsr__alloc_live(), live0);
    }
    b = tu_read_file(path, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(b, "zz", 2), 0);
    free(b);
    ck_assert_int_eq(tu_count_temp_files(path), 0);

    /* a read-only directory: mkstemp fails, the old file survives */
    char dir[512], p2[600];
    tmp_path(dir, sizeof dir, "ro-dir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(p2, sizeof p2, "%s/f.bin", dir);
    ck_assert_int_eq(iadsr__atomic_write(p2, "old", 3, 0), IADSR_OK);
    ck_assert_int_eq(chmod(dir, 0555), 0);
    int rc = iadsr__atomic_write(p2, "new!", 4, 0);
    if (geteuid() != 0) { /* root ignores the directory's mode */
        ck_assert_int_eq(rc, IADSR_ERR_IO);
        ck_assert_ptr_nonnull(strstr(iadsr_last_error(), p2));
        b = tu_read_file(p2, &len);
        ck_assert_uint_eq(len, 3);
        free(b);
    } else {
        ck_assert_int_eq(rc, IADSR_OK);
    }
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(tu_count_temp_files(p2), 0);
    unlink(p2);
    ck_assert_int_eq(rmdir(dir), 0);

    /* the target is a directory: refused before any temporary file */
    tmp_path(dir, sizeof dir, "target-dir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    iadsr_clear_error();
    ck_assert_int_eq(iadsr__atomic_write(dir, "x", 1, 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "directory"));
    ck_assert_int_eq(tu_count_temp_files(dir), 0);
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(rmdir(dir), 0);

    /* a path without a directory part (fsync of ".") */
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tu_tmp_dir()), 0);
    char name[64];
    snprintf(name, sizeof name, "npy-rel-%ld.bin", (long)getpid());
    ck_assert_int_eq(iadsr__atomic_write(name, "rel", 3, 0), IADSR_OK);
    b = tu_read_file(name, &len);
    ck_assert_uint_eq(len, 3);
    free(b);
    unlink(name);
    ck_assert_int_eq(chdir(cwd), 0);
    unlink(path);
}
END_TEST

/* Every allocation of npy_save fails in turn: NOMEM, no leak, no temporary
 * file, the previous file intact. */
START_TEST(test_save_alloc_failures)
{
    char path[512];
    tmp_path(path, sizeof path, "oom.npy");
    const float old[2] = {9, 9};
    ck_assert_int_eq(iadsr_npy_save(path, old, 1, 2, 2, IADSR_SAVE_NO_FSYNC),
                     IADSR_OK);
    size_t old_len;
    uint8_t *old_bytes = tu_read_file(path, &old_len);
    int done = 0;
    for (long k = 1; k < 50 && !done; k++) {
        long live0 = iadsr__alloc_live();
        iadsr__alloc_fail_after(k, 0);
        int rc = iadsr_npy_save(path, F4_WANT, 3, 4, 4, IADSR_SAVE_NO_FSYNC);
        long made = iadsr__alloc_fail_after(0, 0);
        ck_assert_int_eq(iadsr__alloc_live(), live0);
        ck_assert_int_eq(tu_count_temp_files(path), 0);
        if (made < k) {
            ck_assert_int_eq(rc, IADSR_OK);
            done = 1;
            break;
        }
        ck_assert_msg(rc == IADSR_ERR_NOMEM, "k %ld: %s (%s)", k,
                      iadsr_status_name(rc), iadsr_last_error());
        size_t len;
        uint8_t *b = tu_read_file(path, &len);
        ck_assert_uint_eq(len, old_len);
        ck_assert_int_eq(memcmp(b, old_bytes, len), 0);
        free(b);
    }
    ck_assert(done);
    free(old_bytes);
    unlink(path);
}
END_TEST

Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, test_half_all_values);
    tcase_add_test(tc, test_fixture_f4);
    tcase_add_test(tc, test_fixture_f2);
    tcase_add_test(tc, test_fixture_v2_v3);
    tcase_add_test(tc, test_fixture_rejected);
    tcase_add_test(tc, test_every_truncation);
    tcase_add_test(tc, test_header_variants_accepted);
    tcase_add_test(tc, test_header_rejected);
    tcase_add_test(tc, test_framing_rejected);
    tcase_add_test(tc, test_decode_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("write");
    tcase_add_test(tc, test_save_matches_numpy);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_save_args);
    tcase_add_test(tc, test_save_alloc_failures);
    suite_add_tcase(s, tc);

    tc = tcase_create("fileio");
    tcase_add_test(tc, test_read_file);
    tcase_add_test(tc, test_atomic_write);
    tcase_add_test(tc, test_atomic_targets);
    tcase_add_test(tc, test_atomic_sweep);
    suite_add_tcase(s, tc);
    return s;
}
