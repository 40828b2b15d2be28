/* Tests: datasets (CSR create, text parser, file loading, OOM injection).
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "iadsr.h"
#include "iadsr.h"
#include "common/alloc.h"
#include "data/dataset.h"

Suite *suite_dataset(void);

/* ---- create from arrays ----------------------------------------------------- */

START_TEST(test_create_copy)
{
    int32_t items[] = {1, 2, 3, 4, 5, 2};
    int64_t offsets[] = {0, 3, 3, 6}; /* user 1 is empty */
    iadsr_dataset *d = NULL;
    long live0 = iadsr__alloc_live();

    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 3, 0,
                                          IADSR_FLAG_COPY),
                     IADSR_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert(iadsr__dataset_ok(d));
    ck_assert_int_eq(iadsr_dataset_n_users(d), 3);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 5); /* largest id */
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), 6);
    int32_t n = -1;
    const int32_t *s = iadsr_dataset_user_items(d, 0, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(s[0], 1);
    ck_assert_int_eq(s[2], 3);
    ck_assert_ptr_ne(s, items); /* copied */
    s = iadsr_dataset_user_items(d, 1, &n);
    ck_assert_int_eq(n, 0);
    s = iadsr_dataset_user_items(d, 2, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(s[2], 2);
    ck_assert_int_eq(iadsr_dataset_user_id(d, 2), 2);
    ck_assert_int_eq(iadsr_dataset_user_id(d, 3), -1);
    ck_assert_int_eq(iadsr_dataset_user_id(d, -1), -1);
    ck_assert_ptr_null(iadsr_dataset_user_items(d, 3, &n));
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(iadsr_dataset_user_items(d, -1, NULL));

    /* the host may change its arrays after a COPY */
    items[0] = 77;
    offsets[1] = 1;
    s = iadsr_dataset_user_items(d, 0, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(s[0], 1);

    /* refcount: the dataset lives until the last reference goes */
    iadsr_dataset *r = iadsr__dataset_ref(d);
    ck_assert_ptr_eq(r, d);
    iadsr_dataset_free(d);
    ck_assert_int_eq(iadsr_dataset_n_users(r), 3);
    iadsr__dataset_unref(r);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    iadsr_dataset_free(NULL);
    iadsr__dataset_unref(NULL);
    ck_assert_ptr_null(iadsr__dataset_ref(NULL));
}
END_TEST

START_TEST(test_create_borrow)
{
    int32_t items[] = {3, 1, 2};
    int64_t offsets[] = {0, 1, 3};
    iadsr_dataset *d = NULL;
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, 10,
                                          IADSR_FLAG_BORROW),
                     IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 10);
    int32_t n;
    const int32_t *s = iadsr_dataset_user_items(d, 1, &n);
    ck_assert_ptr_eq(s, items + 1); /* zero-copy */
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_null(d->owned_items);
    ck_assert_ptr_null(d->owned_offsets);
    items[1] = 9; /* visible through the borrowed view */
    ck_assert_int_eq(iadsr_dataset_user_items(d, 1, &n)[0], 9);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_create_all_empty)
{
    int32_t items[1] = {0};
    int64_t offsets[] = {0, 0, 0};
    iadsr_dataset *d = (iadsr_dataset *)(uintptr_t)1;
    /* no items at all and no n_items: nothing to size the dataset */
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(d);
    /* with n_items it is a valid (empty) dataset */
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, 4, 0),
                     IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), 0);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 4);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_create_bad_args)
{
    int32_t items[] = {1, 2, 3};
    int64_t offsets[] = {0, 2, 3};
    iadsr_dataset *d;

    ck_assert_int_eq(iadsr_dataset_create(NULL, items, offsets, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    d = (iadsr_dataset *)(uintptr_t)1;
    ck_assert_int_eq(iadsr_dataset_create(&d, NULL, offsets, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "items"));
    ck_assert_int_eq(iadsr_dataset_create(&d, items, NULL, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 0, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "n_users"));
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, -3, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, -1, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, INT32_MAX, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, 0, 2u),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "flags"));
    ck_assert_int_eq(iadsr_dataset_create(&d, items, offsets, 2, 0,
                                          0x80000001u),
                     IADSR_ERR_INVALID_ARG);

    int64_t off_bad0[] = {1, 2, 3};
    ck_assert_int_eq(iadsr_dataset_create(&d, items, off_bad0, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "offsets[0] = 1"));
    int64_t off_dec[] = {0, 3, 2};
    ck_assert_int_eq(iadsr_dataset_create(&d, items, off_dec, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "user 1"));
    int64_t off_neg[] = {0, -1, 3};
    ck_assert_int_eq(iadsr_dataset_create(&d, items, off_neg, 2, 0, 0),
                     IADSR_ERR_INVALID_ARG);

    int32_t with0[] = {1, 2, 0};
    ck_assert_int_eq(iadsr_dataset_create(&d, with0, offsets, 2, 0, 0),
                     IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(
        strstr(iadsr_last_error(), "user 1 position 0: item id 0"));
    int32_t neg[] = {1, -5, 2};
    ck_assert_int_eq(iadsr_dataset_create(&d, neg, offsets, 2, 0, 0),
                     IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(
        strstr(iadsr_last_error(), "user 0 position 1: item id -5"));
    int32_t big[] = {1, 2, 11};
    ck_assert_int_eq(iadsr_dataset_create(&d, big, offsets, 2, 10, 0),
                     IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(
        strstr(iadsr_last_error(), "user 1 position 0: item id 11"));
    int32_t huge[] = {1, INT32_MAX, 2};
    ck_assert_int_eq(iadsr_dataset_create(&d, huge, offsets, 2, 0, 0),
                     IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_null(d);

    /* accessors on NULL */
    ck_assert_int_eq(iadsr_dataset_n_users(NULL), 0);
    ck_assert_int_eq(iadsr_dataset_n_items(NULL), 0);
    ck_assert_int_eq(iadsr_dataset_n_interactions(NULL), 0);
    ck_assert_int_eq(iadsr_dataset_user_id(NULL, 0), -1);
    int32_t n = 5;
    ck_assert_ptr_null(iadsr_dataset_user_items(NULL, 0, &n));
    ck_assert_int_eq(n, 0);
    ck_assert(!iadsr__dataset_ok(NULL));
}
END_TEST

/* ---- parser -------------------------------------------------------------------- */

static iadsr_dataset *parse_ok(const char *text, int32_t n_items)
{
    iadsr_dataset *d = NULL;
    int rc = iadsr_dataset_parse_text(&d, text, strlen(text), n_items, "t");
    ck_assert_msg(rc == IADSR_OK, "parse failed: %s", iadsr_last_error());
    ck_assert_ptr_nonnull(d);
    return d;
}

static void check_seq(const iadsr_dataset *d, int64_t u, int64_t uid,
                      const int32_t *want, int32_t n_want)
{
    int32_t n;
    const int32_t *s = iadsr_dataset_user_items(d, u, &n);
    ck_assert_int_eq(iadsr_dataset_user_id(d, u), uid);
    ck_assert_int_eq(n, n_want);
    for (int32_t i = 0; i < n; i++)
        ck_assert_int_eq(s[i], want[i]);
}

START_TEST(test_parse_valid)
{
    iadsr_dataset *d = parse_ok("0 8498 10548 2330\n1 4684 5211\n"
                                "2 12097 10715 4801 10664\n",
                                0);
    ck_assert_int_eq(iadsr_dataset_n_users(d), 3);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 12097);
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), 9);
    check_seq(d, 0, 0, (const int32_t[]){8498, 10548, 2330}, 3);
    check_seq(d, 1, 1, (const int32_t[]){4684, 5211}, 2);
    check_seq(d, 2, 2, (const int32_t[]){12097, 10715, 4801, 10664}, 4);
    iadsr_dataset_free(d);

    /* file order kept, user ids arbitrary, no final newline, tabs */
    d = parse_ok("77\t5 6\n9223372036854775807 1 2 3\n5 4", 20);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 20);
    check_seq(d, 0, 77, (const int32_t[]){5, 6}, 2);
    check_seq(d, 1, INT64_MAX, (const int32_t[]){1, 2, 3}, 3);
    check_seq(d, 2, 5, (const int32_t[]){4}, 1);
    iadsr_dataset_free(d);

    /* largest item id */
    d = parse_ok("1 2147483646\n", 0);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 2147483646);
    iadsr_dataset_free(d);
}
END_TEST

START_TEST(test_parse_crlf_comments_blank)
{
    iadsr_dataset *d = parse_ok("# header comment\r\n"
                                "\r\n"
                                "   \t \n"
                                "1 1 2 3\r\n"
                                "  # indented comment 0 x y\n"
                                "\n"
                                "  2   4\t5  \r\n"
                                "3 6\r",
                                0);
    ck_assert_int_eq(iadsr_dataset_n_users(d), 3);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 6);
    check_seq(d, 0, 1, (const int32_t[]){1, 2, 3}, 3);
    check_seq(d, 1, 2, (const int32_t[]){4, 5}, 2);
    check_seq(d, 2, 3, (const int32_t[]){6}, 1);
    iadsr_dataset_free(d);

    /* no NUL-termination assumed: the length bounds the parse */
    const char buf[] = {'1', ' ', '2', ' ', '3', '4', 'x'};
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, buf, 6, 0, NULL), IADSR_OK);
    check_seq(d, 0, 1, (const int32_t[]){2, 34}, 2);
    iadsr_dataset_free(d);
}
END_TEST

typedef struct bad_text {
    const char *text;
    int code;
    const char *msg; /* expected substring of the last error */
} bad_text;

static const bad_text bad_texts[] = {
    {"", IADSR_ERR_FORMAT, "t: no sequences"},
    {"\n\n  \n", IADSR_ERR_FORMAT, "t: no sequences"},
    {"# only\n# comments\n", IADSR_ERR_FORMAT, "t: no sequences"},
    {"1 2 3\n7\n", IADSR_ERR_FORMAT, "t:2: user 7 has no items"},
    {"1 2 3\n7   \r\n", IADSR_ERR_FORMAT, "t:2: user 7 has no items"},
    {"1 2\n\n1 0 3\n", IADSR_ERR_OUT_OF_RANGE,
     "t:3: item id 0 is reserved for padding (ids start at 1)"},
    {"1 2\n2 -3\n", IADSR_ERR_FORMAT, "t:2: token '-3' is not an item id"},
    {"1 2\n2 +3\n", IADSR_ERR_FORMAT, "t:2: token '+3'"},
    {"1 1.5\n", IADSR_ERR_FORMAT, "t:1: token '1.5'"},
    {"1 0x10\n", IADSR_ERR_FORMAT, "t:1: token '0x10'"},
    {"1 2 abc\n", IADSR_ERR_FORMAT, "t:1: token 'abc'"},
    {"1 2 # trailing comment\n", IADSR_ERR_FORMAT, "t:1: token '#'"},
    {"x1 2\n", IADSR_ERR_FORMAT, "t:1: token 'x1' is not a user id"},
    {"-1 2\n", IADSR_ERR_FORMAT, "t:1: token '-1' is not a user id"},
    {"1 2\n3 4\n5 2147483647\n", IADSR_ERR_OUT_OF_RANGE,
     "t:3: item id 2147483647 is too large"},
    {"1 99999999999999999999999\n", IADSR_ERR_OUT_OF_RANGE,
     "t:1: item id 99999999999999999999999 is too large"},
    {"9223372036854775808 1\n", IADSR_ERR_OUT_OF_RANGE,
     "t:1: user id 9223372036854775808 is too large"},
    {"99999999999999999999 1\n", IADSR_ERR_OUT_OF_RANGE, "t:1: user id"},
    {"1 2\r3 4\n", IADSR_ERR_FORMAT, "t:1: carriage return"},
    {"1 2\n2 3\v4\n", IADSR_ERR_FORMAT, "t:2: token '3?4'"},
};

START_TEST(test_parse_malformed)
{
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        const bad_text *bt = &bad_texts[i];
        iadsr_dataset *d = (iadsr_dataset *)(uintptr_t)1;
        iadsr_clear_error();
        int rc = iadsr_dataset_parse_text(&d, bt->text, strlen(bt->text), 0,
                                          "t");
        ck_assert_msg(rc == bt->code, "case %zu: got %s, want %s (%s)", i,
                      iadsr_status_name(rc), iadsr_status_name(bt->code),
                      iadsr_last_error());
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(iadsr_last_error(), bt->msg) != NULL,
                      "case %zu: message '%s' lacks '%s'", i,
                      iadsr_last_error(), bt->msg);
    }
}
END_TEST

START_TEST(test_parse_n_items_and_args)
{
    iadsr_dataset *d = (iadsr_dataset *)(uintptr_t)1;
    const char *t = "1 2 3\n2 4 11\n";
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, t, strlen(t), 10, "f.txt"),
                     IADSR_ERR_OUT_OF_RANGE);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(
        strstr(iadsr_last_error(), "f.txt:2: item id 11 exceeds n_items = 10"));
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, t, strlen(t), 11, "f.txt"),
                     IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 11);
    iadsr_dataset_free(d);

    /* default name */
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, "1 a", 3, 0, NULL),
                     IADSR_ERR_FORMAT);
    ck_assert(strncmp(iadsr_last_error(), "<buffer>:1: ", 12) == 0);

    ck_assert_int_eq(iadsr_dataset_parse_text(NULL, t, strlen(t), 0, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, NULL, 5, 0, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, NULL, 0, 0, NULL),
                     IADSR_ERR_FORMAT);
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, t, strlen(t), -1, NULL),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_parse_growth)
{
    /* many users and long lines force both arrays to grow */
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    int64_t total = 0;
    for (int u = 0; u < 3000; u++) {
        len += (size_t)snprintf(text + len, cap - len, "%d", u);
        int n = 1 + u % 97;
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, cap - len, " %d",
                                    1 + (u * 7 + i) % 9);
        text[len++] = '\n';
        total += n;
    }
    iadsr_dataset *d = NULL;
    long live0 = iadsr__alloc_live();
    ck_assert_int_eq(iadsr_dataset_parse_text(&d, text, len, 0, NULL),
                     IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_users(d), 3000);
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), total);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 9);
    int32_t n;
    const int32_t *s = iadsr_dataset_user_items(d, 2999, &n);
    ck_assert_int_eq(n, 1 + 2999 % 97);
    ck_assert_int_eq(s[n - 1], 1 + (2999 * 7 + n - 1) % 9);
    ck_assert_int_eq(iadsr_dataset_user_id(d, 1234), 1234);
    iadsr_dataset_free(d);
    ck_assert_int_eq(iadsr__alloc_live(), live0);
    free(text);
}
END_TEST

/* ---- files --------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_load_text)
{
    char dir[] = "/tmp/iadsr_ds_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/seq.txt", dir);
    write_file(path, "# users\r\n10 1 2\r\n11 3\r\n");

    iadsr_dataset *d = NULL;
    ck_assert_int_eq(iadsr_dataset_load_text(&d, path, 0), IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_users(d), 2);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 3);
    ck_assert_int_eq(iadsr_dataset_user_id(d, 1), 11);
    iadsr_dataset_free(d);

    /* parse errors name the file and the line */
    write_file(path, "10 1 2\n11 3 q\n");
    d = (iadsr_dataset *)(uintptr_t)1;
    ck_assert_int_eq(iadsr_dataset_load_text(&d, path, 0), IADSR_ERR_FORMAT);
    ck_assert_ptr_null(d);
    char want[300];
    snprintf(want, sizeof want, "%s:2: token 'q'", path);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), want));

    /* empty file */
    write_file(path, "");
    ck_assert_int_eq(iadsr_dataset_load_text(&d, path, 0), IADSR_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), "no sequences"));

    /* directory and missing file are I/O errors naming the path */
    ck_assert_int_eq(iadsr_dataset_load_text(&d, dir, 0), IADSR_ERR_IO);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), dir));
    unlink(path);
    ck_assert_int_eq(iadsr_dataset_load_text(&d, path, 0), IADSR_ERR_IO);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), path));
    ck_assert_ptr_nonnull(strstr(iadsr_last_error(), strerror(ENOENT)));
    rmdir(dir);

    ck_assert_int_eq(iadsr_dataset_load_text(NULL, path, 0),
                     IADSR_ERR_INVALID_ARG);
    ck_assert_int_eq(iadsr_dataset_load_text(&d, NULL, 0),
                     IADSR_ERR_INVALID_ARG);
}
END_TEST

/* Amazon Beauty, when present next to the project (never copied into it). */
START_TEST(test_load_beauty)
{
    const char *env = getenv("IADSR_DATA_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/sequences.txt",
             env ? env : "../shared/data/beauty");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "test_load_beauty: %s not found, skipped\n", path);
        return;
    }
    iadsr_dataset *d = NULL;
    ck_assert_int_eq(iadsr_dataset_load_text(&d, path, 0), IADSR_OK);
    ck_assert_int_eq(iadsr_dataset_n_users(d), 22363);
    ck_assert_int_eq(iadsr_dataset_n_items(d), 12101);
    ck_assert_int_eq(iadsr_dataset_n_interactions(d), 198502);
    ck_assert_int_eq(iadsr_dataset_user_id(d, 22362), 22362);
    int32_t n;
    const int32_t *s = iadsr_dataset_user_items(d, 0, &n);
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(s[0], 8498);
    ck_assert_int_eq(s[5], 8757);
    iadsr_dataset_free(d);
}
END_TEST

/* ---- allocation-failure injection ---------------------------------------------- */

typedef int (*ds_op)(iadsr_dataset **out, const void *arg);

static int op_parse(iadsr_dataset **out, const void *arg)
{
    const char *t = arg;
    return iadsr_dataset_parse_text(out, t, strlen(t), 0, "oom");
}

static int op_create_copy(iadsr_dataset **out, const void *arg)
{
    static const int64_t offsets[] = {0, 2, 2, 5};
    return iadsr_dataset_create(out, arg, offsets, 3, 0, IADSR_FLAG_COPY);
}

static int op_create_borrow(iadsr_dataset **out, const void *arg)
{
    static const int64_t offsets[] = {0, 2, 2, 5};
    return iadsr_dataset_create(out, arg, offsets, 3, 9, IADSR_FLAG_BORROW);
}

static const char *load_path;
static int op_load(iadsr_dataset **out, const void *arg)
{
    (void)arg;
    return iadsr_dataset_load_text(out, load_path, 0);
}

/* SQLite-style loop: fail allocation k (transient, then persistent) until
 * the operation completes without reaching k. Every injected failure must
 * give IADSR_ERR_NOMEM, a NULL handle and no leak. */
static void oom_loop(ds_op op, const void *arg)
{
    for (int persistent = 0; persistent <= 1; persistent++) {
        for (long k = 1;; k++) {
            ck_assert_int_lt(k, 10000);
            long live0 = iadsr__alloc_live();
            iadsr_dataset *d = (iadsr_dataset *)(uintptr_t)1;
            iadsr__alloc_fail_after(k, persistent);
            int rc = op(&d, arg);
            long made = iadsr__alloc_fail_after(0, 0);
            if (made < k) {
                ck_assert_msg(rc == IADSR_OK, "k=%ld: %s", k,
                              iadsr_last_error());
                ck_assert_ptr_nonnull(d);
                iadsr_dataset_free(d);
                ck_assert_int_eq(iadsr__alloc_live(), live0);
                break;
            }
            ck_assert_msg(rc == IADSR_ERR_NOMEM,
                          "k=%ld persistent=%d: got %s (%s)", k, persistent,
                          iadsr_status_name(rc), iadsr_last_error());
            ck_assert_ptr_null(d);
            ck_assert_int_eq(iadsr__alloc_live(), live0);
        }
    }
}

START_TEST(test_oom_parse_create)
{
    /* long enough to make the arrays grow and shrink */
    static char text[20000];
    size_t len = 0;
    for (int u = 0; u < 300; u++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "%d 1 2 3 4 5 6 7 8 9 1 2 3 4 5 6 7 8\n", u);
    oom_loop(op_parse, text);
    oom_loop(op_parse, "1 2\n");
    static const int32_t items[] = {1, 2, 3, 4, 5};
    oom_loop(op_create_copy, items);
    oom_loop(op_create_borrow, items);

    char path[] = "/tmp/iadsr_oom_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    load_path = path;
    oom_loop(op_load, NULL);
    unlink(path);
}
END_TEST

Suite *suite_dataset(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("create");
    tcase_add_test(tc, test_create_copy);
    tcase_add_test(tc, test_create_borrow);
    tcase_add_test(tc, test_create_all_empty);
    tcase_add_test(tc, test_create_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_parse_crlf_comments_blank);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_parse_n_items_and_args);
    tcase_add_test(tc, test_parse_growth);
    tcase_add_test(tc, test_load_text);
    tcase_add_test(tc, test_load_beauty);
    tcase_add_test(tc, test_oom_parse_create);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
