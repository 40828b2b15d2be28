/* iadsr command-line tool: shared helpers (not part of the library).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLI_H
#define IADSR_CLI_H

#include "iadsr.h"

#include <stddef.h>
#include <stdint.h>

/* Exit codes. */
#define CLI_OK 0
#define CLI_RUNTIME 1
#define CLI_USAGE 2

/* Option kinds. */
enum {
    OPT_STR,  /* const char * */
    OPT_I64,  /* int64_t, range [ilo, ihi] */
    OPT_U64,  /* uint64_t, any non-negative value */
    OPT_DBL,  /* double, finite, range dlo..dhi (open ends by flags) */
    OPT_FLAG, /* int set to 1, takes no value */
    OPT_CHOICE /* int index into choices[], value must be one of them */
};

#define OPT_LO_OPEN 1 /* OPT_DBL: value must be > dlo */
#define OPT_HI_OPEN 2 /* OPT_DBL: value must be < dhi */

typedef struct cli_opt {
    const char *name; /* long name without "--" */
    int kind;
    void *dst;
    int64_t ilo, ihi;
    double dlo, dhi;
    int dflags;
    const char *const *choices; /* NULL-terminated, for OPT_CHOICE */
    int required;
    int seen; /* set by the parser */
} cli_opt;

/* Parse argv[0..argc) (argv[0] is the first argument after the command
 * name) against @p opts. Returns 0 on success, 1 when --help/-h was given,
 * CLI_USAGE after printing a usage message naming @p cmd. */
int cli_parse(const char *cmd, int argc, char **argv, cli_opt *opts,
              size_t n_opts);

/* Whether option @p name was given on the command line. */
int cli_opt_seen(const cli_opt *opts, size_t n_opts, const char *name);

/* Print "iadsr: CMD: MSG\nTry 'iadsr CMD --help'." and return CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Print "iadsr: CMD: <last error or strerror(rc)>" and return CLI_RUNTIME.
 * When @p path is non-NULL and the library message does not mention it, the
 * message is prefixed with "PATH: ". When @p what is non-NULL it is printed
 * before the library message ("iadsr: CMD: WHAT: ..."). */
int cli_lib_error(const char *cmd, const char *what, const char *path, int rc);

/* Print "iadsr: CMD: MSG" to stderr and return CLI_RUNTIME. */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Strict number parsing (whole string, no leading blanks, range). Return 0
 * on success, -1 on failure. */
int cli_parse_i64(const char *s, int64_t *out);
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out);

/* Monotonic seconds. */
double cli_now(void);
/* Human duration: "7s", "10m05s", "2h03m04s"; "?" for negative/NaN. */
void cli_format_duration(double seconds, char *buf, size_t cap);

/* Flush stdout; on failure print an error for @p cmd and return
 * CLI_RUNTIME, else CLI_OK. */
int cli_finish_stdout(const char *cmd);

/* Print metrics as the eval/popularity commands do. */
void cli_print_metrics(const char *split, const iadsr_metrics *m,
                       int exclude_history, int json);

/* Subcommands: argv[0] is the first argument after the command name. */
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_popularity(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);

#endif /* IADSR_CLI_H */
