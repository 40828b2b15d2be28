/* iadsr command-line tool: shared helpers (not part of the library).
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLI_H
#define IADSR_CLI_H

#include "common/fileio.h"
#include "common/rng.h"
#include "iadsr.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes. */
#define CLI_OK 0
#define CLI_RUNTIME 1
#define CLI_USAGE 2
/* Ctrl-C (SIGINT) stopped a training: 128 + SIGINT, as shells report it, so
 * that `iadsr train ... && deploy` does not deploy a half-trained model
 * (train has still saved the best model so far). */
#define CLI_INTERRUPTED 130

/* Option kinds. */
enum {
    OPT_STR,  /* const char * */
    OPT_I64,  /* int64_t, range [ilo, ihi] */
    OPT_U64,  /* uint64_t, any non-negative value */
    OPT_DBL,  /* double, finite, range dlo..dhi (open ends by flags) */
    OPT_FLAG, /* int set to 1, takes no value */
    OPT_CHOICE /* int index into choices[], value must be one of them */
};

#define OPT_LO_OPEN 1  /* OPT_DBL: value must be > dlo */
#define OPT_HI_OPEN 2  /* OPT_DBL: value must be < dhi */
#define OPT_REQUIRED 4 /* the option must be given */
#define OPT_IN_FILE 8  /* OPT_STR: a file the command reads */
#define OPT_OUT_FILE 16 /* OPT_STR: a file the command writes */

typedef struct cli_opt {
    const char *name; /* long name without "--" */
    int kind;
    void *dst;
    int64_t ilo, ihi;
    double dlo, dhi;
    int flags;                  /* OPT_REQUIRED, OPT_LO_OPEN, OPT_HI_OPEN */
    const char *const *choices; /* NULL-terminated, for OPT_CHOICE */
    int seen;                   /* set by the parser */
} cli_opt;

/* cli_opt initialisers, one per kind; @p flags: OPT_* bits. */
#define CLI_STR(name, dst, flags)                                            \
    {name, OPT_STR, dst, 0, 0, 0.0, 0.0, flags, NULL, 0}
#define CLI_I64(name, dst, lo, hi, flags)                                    \
    {name, OPT_I64, dst, lo, hi, 0.0, 0.0, flags, NULL, 0}
#define CLI_U64(name, dst, flags)                                            \
    {name, OPT_U64, dst, 0, 0, 0.0, 0.0, flags, NULL, 0}
#define CLI_DBL(name, dst, lo, hi, flags)                                    \
    {name, OPT_DBL, dst, 0, 0, lo, hi, flags, NULL, 0}
#define CLI_FLAG(name, dst) {name, OPT_FLAG, dst, 0, 0, 0.0, 0.0, 0, NULL, 0}
#define CLI_CHOICE(name, dst, choices)                                       \
    {name, OPT_CHOICE, dst, 0, 0, 0.0, 0.0, 0, choices, 0}

/* What cli_start returns when the command should go on. */
#define CLI_CONTINUE (-1)

/* Parse argv[0..argc) (argv[0] is the first argument after the command
 * name) against @p opts. Returns CLI_CONTINUE on success; else the exit
 * code of the command: after --help/-h printed the texts @p help
 * (NULL-terminated, one after the other), CLI_OK or CLI_RUNTIME; after a
 * usage message naming @p cmd, CLI_USAGE. A file option written by the
 * command (OPT_OUT_FILE) that names the same file as another file option
 * (OPT_IN_FILE or OPT_OUT_FILE) is a usage error naming both: same device
 * and inode when both exist, else the same path once symbolic links and
 * the directory are resolved; character devices (/dev/null) may repeat. */
int cli_start(const char *cmd, int argc, char **argv, cli_opt *opts,
              size_t n_opts, const char *const *help);

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

/* Monotonic seconds. */
double cli_now(void);
/* Human duration: "7s", "10m05s", "2h03m04s"; "?" for negative/NaN. */
void cli_format_duration(double seconds, char *buf, size_t cap);

/* Flush stdout; on failure print an error for @p cmd and return
 * CLI_RUNTIME, else CLI_OK. */
int cli_finish_stdout(const char *cmd);

/* Print an iadsr_metrics (HR/NDCG at 5, 10, 20) in the table / JSON
 * layout of eval and popularity, without their MRR (iadsr_metrics does not
 * hold it): the test metrics of pipeline. eval and popularity print theirs
 * from the per-user ranks (eval_cmd.c), with MRR. */
void cli_print_metrics(const char *split, const iadsr_metrics *m,
                       int exclude_history, int json);

/* @p s as a JSON string on @p f (NULL: null): quotes, backslashes and
 * control bytes escaped, other bytes as they are (ids and paths are UTF-8
 * or opaque). */
void cli_json_string(FILE *f, const char *s);
/* The JSON member ,"KEY":V (%.6f; null when not finite). */
void cli_json_double(const char *key, double v);
/* @p v with 4 decimals, or @p nan_text for NaN. */
void cli_fmt_4f(char *buf, size_t cap, double v, const char *nan_text);

/* JSON members for the six metrics, each preceded by a comma:
 * ,"HR@5":..,"HR@10":..,...,"NDCG@20":.. (null for NaN). */
void cli_json_metrics(const iadsr_metrics *m);

/* The id = row rule sizes a model (or matrix) by the largest item id, so a
 * stray large id in a small file plans gigabytes. Refuse when the ids in
 * use are a small part of the id space (the largest id is at least
 * CLI_SPARSE_MIN_ID and more than CLI_SPARSE_RATIO times the number of
 * distinct ids) unless @p allow (--sparse-ids); @p what names the rows
 * ("model rows", "matrix rows"). Prints the numbers and the ways out and
 * returns CLI_RUNTIME, else CLI_OK. */
#define CLI_SPARSE_MIN_ID 10000
#define CLI_SPARSE_RATIO 10
int cli_check_id_space(const char *cmd, const char *path, int64_t max_id,
                       int64_t distinct, int allow, const char *what);
/* The same for a dataset: its largest id against its distinct ids. */
int cli_check_data_ids(const char *cmd, const char *path,
                       const iadsr_dataset *d, int allow);
/* Refuse a training whose model, optimizer state and gradients would take
 * more than @p max_gib GiB (--max-memory; default CLI_MAX_MEMORY_GIB):
 * about (7 + n_threads) copies of the parameters. */
#define CLI_MAX_MEMORY_GIB 16.0
int cli_check_train_memory(const char *cmd, const iadsr_model_params *mp,
                           int64_t n_threads, double max_gib);

/* Fail early (before any long computation) when @p path cannot be
 * written: it is a directory or its directory is not writable. Prints the
 * error and returns CLI_RUNTIME, else CLI_OK. */
int cli_check_out_path(const char *cmd, const char *path);

/* Write @p path with the library's atomic writer (common/fileio.h: a
 * temporary file next to it, fsync, rename, fsync of the directory; the
 * mode of the file it replaces or 0644 & ~umask): @p fn streams the
 * content into @p f with iadsr__atomic_put (it may stop at the first
 * error put returns; commit reports it). Prints the error for @p cmd and
 * returns CLI_RUNTIME on failure (an existing file at @p path is then
 * untouched and no temporary file remains), else CLI_OK. */
typedef void (*cli_writer_fn)(iadsr__atomic_file *f, const void *ctx);
int cli_write_atomic(const char *cmd, const char *path, cli_writer_fn fn,
                     const void *ctx);

/* Append the line "ID ITEM ITEM ...\n" of one sequence (@p n items) to
 * @p f, the text format of iadsr_dataset_load_text(). Returns the file's
 * first write error (0 if none). */
int cli_put_seq(iadsr__atomic_file *f, uint64_t id, const int32_t *items,
                int64_t n);

/* Write a dataset in the text format of iadsr_dataset_load_text() ("user_id
 * item item ...", one user per line), atomically. The user ids are those
 * of @p ids (same users in the same order, e.g. the dataset @p d was
 * cleaned from) or, when NULL, of @p d. Users without items have no line
 * (the format has no empty lines). Prints the error and returns
 * CLI_RUNTIME on failure, else CLI_OK. */
int cli_write_dataset(const char *cmd, const char *path,
                      const iadsr_dataset *d, const iadsr_dataset *ids);
/* Decimal digits of @p v into @p buf (no terminator); returns the length
 * (at most 20). */
size_t cli_put_u64(char *buf, uint64_t v);

/* Load the sequences of @p path (iadsr_dataset_load_text(); @p n_items:
 * the largest id allowed, 0 = any) or the model of the checkpoint @p path.
 * Print the error and return CLI_RUNTIME, else CLI_OK. */
int cli_load_data(const char *cmd, const char *path, int32_t n_items,
                  iadsr_dataset **d);
int cli_load_model(const char *cmd, const char *path, iadsr_model **m);

/* The parts of a checkpoint (iadsr_checkpoint_load/_save): the backbone
 * and, from IADSR training, the aligner and the gate (else NULL). */
typedef struct cli_checkpoint {
    iadsr_model *model;
    iadsr_aligner *aligner;
    iadsr_gate *gate;
} cli_checkpoint;
void cli_checkpoint_free(cli_checkpoint *c);

/* Layout of semantic .npy rows (option --semantic-rows): index 0 =
 * "padded" (row i = item i, row 0 unused), 1 = "dense" (row i = item
 * i + 1), 2 = "items" (an alias of dense). */
extern const char *const cli_semantic_rows_names[];

/* The semantic inputs (--semantic, --semantic-rows and --user-semantic)
 * and the matrices loaded from them. Zero it before use. */
typedef struct cli_semantic_in {
    const char *path, *user_path;
    int rows; /* index into cli_semantic_rows_names */
    iadsr_semantic *items, *users;
} cli_semantic_in;
/* cli_opt entries of --semantic (@p flags: OPT_*) and --semantic-rows;
 * of --user-semantic. */
#define CLI_SEMANTIC_OPTS(s, flags)                                          \
    CLI_STR("semantic", &(s).path, (flags) | OPT_IN_FILE),                   \
    CLI_CHOICE("semantic-rows", &(s).rows, cli_semantic_rows_names)
#define CLI_USER_SEMANTIC_OPT(s)                                             \
    CLI_STR("user-semantic", &(s).user_path, OPT_IN_FILE)
/* Load the item matrix of --semantic with the layout of --semantic-rows.
 * Prints the error and returns CLI_RUNTIME, else CLI_OK. */
int cli_load_semantic(const char *cmd, cli_semantic_in *s);
/* Load the user rows of --user-semantic, if given (CLI_OK if not): an
 * n_users x D .npy, row u = the u-th user of the sequence file, D the
 * width of the item matrix. Checks both. */
int cli_load_user_semantic(const char *cmd, cli_semantic_in *s,
                           int64_t n_users);
void cli_semantic_in_free(cli_semantic_in *s);

/* Random numbers of the CLI's data (inject-noise, synth --semantic-out):
 * the library's xoshiro256** stream (iadsr__rng_seed, iadsr__rng_u64)
 * with the CLI's own derived draws, which differ from the library's ones
 * and are pinned by the outputs (same seed, same bytes on every machine). */
/* Uniform in [0, 1) with 53 random bits. */
double cli_rng_uniform(iadsr__rng *r);
/* Uniform in [0, n), unbiased; n >= 1 (n = 1 still takes a draw). */
uint64_t cli_rng_below(iadsr__rng *r, uint64_t n);
/* Standard normal (Box-Muller on 1 - u1 and u2). */
double cli_rng_normal(iadsr__rng *r);

/* ---- IADSR options shared by train --semantic, denoise and pipeline ---- */

/* Values of the IADSR options; only the options seen on the command line
 * are applied (the library defaults stay for the others). */
typedef struct cli_denoise_vals {
    double lambda_align, lambda_recon, tau_align, tau_gumbel;
    double theta, max_drop;
    int collab_only, carry_masks, paper_losses, no_protect_last, no_holdout;
    int clean_scores, input_mask, text_feature;
    int backoff, no_backoff; /* --backoff / --no-backoff */
    int gate; /* index into cli_gate_names */
    /* train and pipeline without --gate: the gate their defaults chose
     * (cli_denoise_apply then applies it as if given) */
    int gate_default;
} cli_denoise_vals;

/* Names of --gate: the paper's cosine-sum rule, the trained detector. */
extern const char *const cli_gate_names[];

/* cli_opt entries of the joint-training options and of the gate's
 * inference rule, for a cli_opt array initialiser; @p v is a
 * cli_denoise_vals. The ranges are those of iadsr_denoise_params. */
#define CLI_DENOISE_TRAIN_OPTS(v)                                            \
    CLI_DBL("lambda-align", &(v).lambda_align, 0.0, 1e6, 0),                 \
    CLI_DBL("lambda-recon", &(v).lambda_recon, 0.0, 1e6, 0),                 \
    CLI_DBL("tau-align", &(v).tau_align, 0.0, 1e6, OPT_LO_OPEN),             \
    CLI_DBL("tau-gumbel", &(v).tau_gumbel, 0.0, 1e6, OPT_LO_OPEN),           \
    CLI_FLAG("collab-only", &(v).collab_only),                               \
    CLI_FLAG("carry-masks", &(v).carry_masks),                               \
    CLI_FLAG("paper-losses", &(v).paper_losses),                             \
    CLI_CHOICE("gate", &(v).gate, cli_gate_names),                           \
    CLI_FLAG("no-holdout", &(v).no_holdout),                                 \
    CLI_FLAG("clean-scores", &(v).clean_scores),                             \
    CLI_FLAG("input-mask", &(v).input_mask),                                 \
    CLI_FLAG("text-feature", &(v).text_feature),                             \
    CLI_FLAG("backoff", &(v).backoff),                                       \
    CLI_FLAG("no-backoff", &(v).no_backoff)
#define CLI_DENOISE_RULE_OPTS(v)                                             \
    CLI_DBL("theta", &(v).theta, -3.0, 3.0, 0),                              \
    CLI_DBL("max-drop", &(v).max_drop, 0.0, 1.0, 0),                         \
    CLI_FLAG("no-protect-last", &(v).no_protect_last)

/* Names of all the options above (NULL-terminated), for "only with
 * --semantic" checks. */
extern const char *const cli_denoise_opt_names[];

/* Apply the options that were seen to @p dp (already initialised). */
void cli_denoise_apply(const cli_opt *opts, size_t n_opts,
                       const cli_denoise_vals *v, iadsr_denoise_params *dp);
/* Whether any option of cli_denoise_rule (theta, max-drop,
 * no-protect-last) was seen. */
int cli_denoise_rule_seen(const cli_opt *opts, size_t n_opts);

/* What `iadsr denoise` and `iadsr report` share (denoise_setup.c). */
/* Read LABELS (from `iadsr inject-noise`) into @p lab (n_interactions
 * bytes, dataset order): one line per user of @p d, one '0' or '1' per
 * item; errors name the file and line. CLI_OK or CLI_RUNTIME. */
int cli_read_labels(const char *cmd, const char *path, const char *data_path,
                    const iadsr_dataset *d, uint8_t *lab);
/* The denoiser of @p ck's parts for cleaning @p d: the gate's rule with the
 * rule options seen on the command line (ck->gate is replaced), and for a
 * detector gate without --theta the label-free theta proposed on @p d
 * (said on stderr; *rate gets the estimated noise rate, else NaN). *gp
 * receives the rule used. CLI_OK or CLI_RUNTIME (*dn NULL). */
int cli_denoiser_setup(const char *cmd, cli_checkpoint *ck,
                       const cli_semantic_in *si, const iadsr_dataset *d,
                       int32_t lib_split, int allow_mismatch, int64_t threads,
                       const cli_opt *opts, size_t n_opts,
                       const cli_denoise_vals *dv, iadsr_denoise_params *gp,
                       double *rate, iadsr_denoiser **dn);

/* ---- backbone and training options shared by train and pipeline ---- */

/* The options of the backbones' own hyper-parameters (the registry's
 * hparams tables, backbone/encoder.h): the CLI owns the option names
 * only; the range, the default and the backbone an option applies to
 * are the registry's (train_opts.c). */
typedef struct cli_hparam_opt {
    const char *name;  /* the option, without "--" */
    const char *field; /* its iadsr__hparam_desc.field */
} cli_hparam_opt;
#define CLI_N_HPARAM_OPTS 3
extern const cli_hparam_opt cli_hparam_opts[CLI_N_HPARAM_OPTS];

/* Room for the registered backbones' names (--backbone's choices). */
#define CLI_MAX_BACKBONES 16

typedef struct cli_train_vals {
    int backbone, quiet, pre_ln, sparse_ids;
    int64_t epochs, dim, max_len, layers, heads;
    double max_memory; /* GiB the training may plan (--max-memory) */
    int64_t hparam[CLI_N_HPARAM_OPTS]; /* the option cli_hparam_opts[i] */
    int64_t batch, patience, threads, eval_every;
    double dropout, lr, wd, smooth, hist;
    uint64_t seed;
    cli_denoise_vals iadsr; /* the IADSR options (CLI_DENOISE_*_OPTS) */
    cli_semantic_in sem;    /* the command's CLI_SEMANTIC_OPTS */
    /* the registry's backbones in its order (the default first),
     * NULL-terminated */
    const char *backbone_names[CLI_MAX_BACKBONES + 1];
} cli_train_vals;

/* The option of a backbone hyper-parameter; its range (0..0 here) is set
 * from the registry by cli_train_start. */
#define CLI_HPARAM_OPT(v, i)                                                 \
    CLI_I64(cli_hparam_opts[i].name, &(v).hparam[i], 0, 0, 0)

/* The model options first, in the order their "applies to" errors come;
 * one CLI_HPARAM_OPT per entry of cli_hparam_opts. */
#define CLI_TRAIN_OPTS(v)                                                    \
    CLI_CHOICE("backbone", &(v).backbone, (v).backbone_names),               \
    CLI_I64("dim", &(v).dim, 1, 4096, 0),                                    \
    CLI_I64("max-len", &(v).max_len, 1, 4096, 0),                            \
    CLI_I64("heads", &(v).heads, 1, 4096, 0),                                \
    CLI_FLAG("pre-ln", &(v).pre_ln),                                         \
    CLI_HPARAM_OPT(v, 0), CLI_HPARAM_OPT(v, 1), CLI_HPARAM_OPT(v, 2),        \
    CLI_I64("layers", &(v).layers, 1, 16, 0),                                \
    CLI_I64("epochs", &(v).epochs, 1, 100000, 0),                            \
    CLI_DBL("dropout", &(v).dropout, 0.0, 1.0, OPT_HI_OPEN),                 \
    CLI_DBL("lr", &(v).lr, 0.0, 1e6, OPT_LO_OPEN),                           \
    CLI_DBL("weight-decay", &(v).wd, 0.0, 1e6, 0),                           \
    CLI_DBL("label-smoothing", &(v).smooth, 0.0, 1.0, OPT_HI_OPEN),          \
    CLI_DBL("history-penalty", &(v).hist, 0.0, 1e6, 0),                      \
    CLI_I64("batch", &(v).batch, 1, 65536, 0),                               \
    CLI_I64("patience", &(v).patience, 0, 100000, 0),                        \
    CLI_I64("eval-every", &(v).eval_every, 1, 100000, 0),                    \
    CLI_U64("seed", &(v).seed, 0),                                           \
    CLI_I64("threads", &(v).threads, 1, 256, 0),                             \
    CLI_FLAG("quiet", &(v).quiet),                                           \
    CLI_FLAG("sparse-ids", &(v).sparse_ids),                                 \
    CLI_DBL("max-memory", &(v).max_memory, 0.0, 1e6, OPT_LO_OPEN),           \
    CLI_DENOISE_TRAIN_OPTS((v).iadsr), CLI_DENOISE_RULE_OPTS((v).iadsr)

/* The params of a training run from the train options (split
 * leave-one-out); model.n_items is the caller's to set. */
typedef struct cli_train_params {
    iadsr_model_params model;
    iadsr_train_params train;
    iadsr_denoise_params iadsr; /* of train --semantic and pipeline */
} cli_train_params;

/* cli_start for the commands with the train options (train, pipeline):
 * sets the defaults of @p v, parses, answers --help with @p head, the
 * train options, @p iadsr_head and the IADSR options, refuses model
 * options the chosen backbone does not take (usage error) and fills
 * @p p. */
int cli_train_start(const char *cmd, int argc, char **argv, cli_opt *opts,
                    size_t n_opts, const char *head, const char *iadsr_head,
                    cli_train_vals *v, cli_train_params *p);
/* The help text of the train options and of the IADSR options (shared by
 * train and pipeline). */
extern const char cli_train_opts_help[];
extern const char cli_denoise_train_help[];

/* Whether the library's params check accepts backbone @p backbone with
 * the flags @p flags set and the rest at their defaults, i.e. whether the
 * backbone has what they switch on. */
int cli_backbone_takes_flags(int32_t backbone, uint32_t flags);

/* Progress printing of a training run ("epoch E/N  loss ..."), with
 * Ctrl-C handling: the callback stops the run after the current epoch
 * when SIGINT arrived (a second Ctrl-C kills the process). */
typedef struct cli_progress {
    const char *cmd;            /* for the "interrupted" note */
    const char *interrupt_note; /* appended to it, e.g. "; saving ..." */
    /* NULL, or the line prefixes of two trainings reported one after the
     * other (the pipeline); the epoch count restarting marks the second */
    const char *label[2];
    int quiet;
    int phase; /* 0 or 1: which of the two trainings */
    int32_t last_epoch;
    int32_t best_epoch;
    double best_ndcg10;
    double best_hr10;
    double elapsed;
    /* train --log: one JSON object per epoch, or NULL; a write error is
     * remembered (log_failed) and reported once after training */
    FILE *log;
    int log_failed;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *cmd, int quiet);
int cli_progress_cb(const iadsr_progress_info *info, void *user_data);
/* Install / restore the SIGINT handler around a training run. */
void cli_sigint_install(void);
void cli_sigint_restore(void);
int cli_interrupted(void);

/* Subcommands: argv[0] is the first argument after the command name. */
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_popularity(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);
int cmd_denoise(int argc, char **argv);
int cmd_inject_noise(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif /* IADSR_CLI_H */
