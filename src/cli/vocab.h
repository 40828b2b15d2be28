/* iadsr command-line tool: the vocabulary TSV of `iadsr import` (dense ids
 * back to the log's own ids), for the commands that print ids.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLI_VOCAB_H
#define IADSR_CLI_VOCAB_H

#include <stdint.h>
#include <stdio.h>

/* The file format (docs/IMPORT.md): the header "kind<TAB>id<TAB>external",
 * then one line "user|item<TAB>ID<TAB>EXTERNAL" per id, ID decimal
 * 1..2^31-1, EXTERNAL non-empty bytes without tab, CR, LF or NUL; LF or
 * CRLF line ends; lines in any order. */
typedef struct cli_vocab cli_vocab;

/* Read @p path. On a malformed line (wrong column count, unknown kind,
 * bad or duplicate id, empty external id) or a read error prints
 * "iadsr: CMD: FILE:LINE: ..." (or "FILE: ...") and returns CLI_RUNTIME
 * with *out NULL; else CLI_OK. */
int cli_vocab_load(const char *cmd, const char *path, cli_vocab **out);

/* The external id of dense user / item @p id, or NULL when the vocabulary
 * has none. */
const char *cli_vocab_user(const cli_vocab *v, int64_t id);
const char *cli_vocab_item(const cli_vocab *v, int64_t id);

/* The first item id of 1..@p n_items the vocabulary lacks, or 0 when it
 * has them all. */
int64_t cli_vocab_first_missing_item(const cli_vocab *v, int64_t n_items);

void cli_vocab_free(cli_vocab *v);


#endif /* IADSR_CLI_VOCAB_H */
