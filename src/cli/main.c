/* iadsr command-line tool: entry point and dispatch.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "cli/dist.h"

#include <stdio.h>
#include <string.h>

static const char top_help[] =
    "Usage: iadsr <command> [options]\n"
    "\n"
    "Train, evaluate and serve next-item recommenders (SASRec, GRU4Rec\n"
    "or Caser backbone), and denoise their training sequences with IADSR\n"
    "(libiadsr).\n"
    "\n"
    "Commands:\n"
    "  import        turn an interaction log (CSV, TSV, MovieLens, RecBole)\n"
    "                into a sequence file with dense ids and a vocabulary\n"
    "  synth         write a synthetic interaction dataset\n"
    "  train         train a model on a sequence file and save it\n"
    "  eval          evaluate a model (leave-one-out, full ranking)\n"
    "  recommend     print the top-K next items for every user\n"
    "  info          print a model's hyper-parameters and size\n"
    "  popularity    evaluate the popularity baseline on a sequence file\n"
    "  embed-text    embed item texts with word vectors (SIF) into a .npy\n"
    "  export        write the item table and user vectors as .npy, for\n"
    "                serving (scores are their dot products)\n"
    "  inject-noise  insert random items into sequences, with labels\n"
    "  denoise       clean sequences with an IADSR model (train --semantic)\n"
    "  pipeline      train IADSR, clean, retrain and evaluate in one run\n"
    "  report        write an HTML report (model, training log, denoising)\n"
    "  help [cmd]    show help (same as 'iadsr <cmd> --help')\n"
    "\n"
    "Options:\n"
    "  --help        show this help\n"
    "  --version     print the library version and build information\n"
    "\n"
    "Sequence files: one user per line, 'user_id item item ...', items in\n"
    "time order, item ids from 1. Blank lines and '#' lines are skipped.\n"
    "\n"
    "Exit status: 0 success, 1 runtime error, 2 usage error, 130 stopped\n"
    "by Ctrl-C (SIGINT; train has still saved the best model so far,\n"
    "pipeline has written nothing).\n";

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
    {"synth", cmd_synth},         {"train", cmd_train},
    {"eval", cmd_eval},           {"recommend", cmd_recommend},
    {"info", cmd_info},           {"popularity", cmd_popularity},
    {"embed-text", cmd_embed_text}, {"inject-noise", cmd_inject_noise},
    {"denoise", cmd_denoise},       {"pipeline", cmd_pipeline},
    {"import", cmd_import},         {"export", cmd_export},
    {"report", cmd_report},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int print_version(void)
{
    int fv = iadsr_format_version();
    printf("iadsr %s (libiadsr %s, header %s, checkpoint format %d.%d)\n",
           iadsr_version_string(), iadsr_version_string(),
           IADSR_VERSION_STRING, fv / 100, fv % 100);
    printf("build: %s\n", iadsr_build_info());
    if (iadsr_version_number() != IADSR_VERSION_NUMBER)
        fprintf(stderr,
                "iadsr: warning: built against header %s but running "
                "library %s\n",
                IADSR_VERSION_STRING, iadsr_version_string());
    return cli_finish_stdout("version");
}

/* Under mpirun every rank runs the command; only the commands that split
 * their work, asked to with --distributed, make sense there. */
static int dist_refused(int argc, char **argv)
{
    static const char *const ok[] = {"train", "denoise", "recommend"};
    int known = 0, flag = 0;
    if (cli_dist_size() <= 1)
        return 0;
    for (size_t i = 0; argc > 1 && i < sizeof ok / sizeof ok[0]; i++)
        known |= strcmp(argv[1], ok[i]) == 0;
    for (int i = 2; i < argc; i++)
        flag |= strcmp(argv[i], "--distributed") == 0;
    if (known && flag)
        return 0;
    if (cli_dist_rank() == 0)
        fprintf(stderr, "iadsr: running as %d MPI ranks: only train, "
                        "denoise and recommend run distributed, with "
                        "--distributed\n",
                cli_dist_size());
    return 1;
}

static int run(int argc, char **argv)
{
    const command *c;
    if (dist_refused(argc, argv))
        return CLI_USAGE;
    if (argc < 2) {
        fputs(top_help, stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(top_help, stdout);
        return cli_finish_stdout("help");
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
        return print_version();
    if (strcmp(argv[1], "help") == 0) {
        char help_arg[] = "--help";
        char *hv[1];
        if (argc < 3) {
            fputs(top_help, stdout);
            return cli_finish_stdout("help");
        }
        c = find_command(argv[2]);
        if (!c) {
            fprintf(stderr, "iadsr: unknown command '%s'\n"
                            "Try 'iadsr --help'.\n", argv[2]);
            return CLI_USAGE;
        }
        hv[0] = help_arg;
        return c->fn(1, hv);
    }
    c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "iadsr: unknown command '%s'\nTry 'iadsr --help'.\n",
                argv[1]);
        return CLI_USAGE;
    }
    return c->fn(argc - 2, argv + 2);
}

int main(int argc, char **argv)
{
    if (cli_dist_init(&argc, &argv) != 0) {
        fputs("iadsr: cannot start MPI\n", stderr);
        return CLI_RUNTIME;
    }
    int rc = run(argc, argv);
    cli_dist_finish();
    return rc;
}
