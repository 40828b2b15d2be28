/* libiadsr unit-test runner (Check). Each tests/test_<module>.c defines one
 * Suite *suite_<module>(void). Declarations are weak so that a suite still
 * under construction does not break the build; a missing suite is reported.
 * SPDX-License-Identifier: MIT
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#define SUITES(X)                                                              \
    X(common) X(params) X(dataset) X(sasrec) X(model) X(trainer) X(ctx)        \
    X(eval) X(checkpoint) X(threads) X(api_args) X(npy) X(semantic)            \
    X(wordvec_sif) X(gru4rec) X(caser) X(denoise_layers) X(denoise_heads)      \
    X(denoise_api) X(crashsafe) X(oom) X(checkpoint_malformed)

#define DECLARE(name) Suite *suite_##name(void) __attribute__((weak));
SUITES(DECLARE)
#undef DECLARE

int main(void)
{
    SRunner *sr = NULL;
    int missing = 0;
#define ADD(name)                                                              \
    if (suite_##name) {                                                        \
        if (!sr)                                                               \
            sr = srunner_create(suite_##name());                               \
        else                                                                   \
            srunner_add_suite(sr, suite_##name());                             \
    } else {                                                                   \
        fprintf(stderr, "check_main: suite '%s' not linked\n", #name);         \
        missing++;                                                             \
    }
    SUITES(ADD)
#undef ADD
    if (!sr)
        return EXIT_FAILURE;
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return (failed == 0 && missing == 0) ? EXIT_SUCCESS : EXIT_FAILURE;
}
