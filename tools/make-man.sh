#!/bin/sh
# make-man.sh: write the iadsr(1) manual page, in troff (-man), from the help
# texts of the command-line tool itself, so that the page never drifts from
# `iadsr --help` and `iadsr CMD --help`.
#
#   sh tools/make-man.sh BIN VERSION > iadsr.1
#
# The command list is read from the "Commands:" block of `BIN --help`; every
# command listed there must answer `BIN CMD --help` with status 0, else this
# script fails (and so does the build). The help texts follow one layout,
# which is all this script relies on:
#   Usage: iadsr ...          the synopsis (continuation lines indented)
#   prose paragraphs          filled; indented lines inside them kept as typed
#   Heading:                  a short line ending in ':' after a blank line,
#                             followed by a list of "  TAG   description"
#                             entries (continuation lines indented deeper)
# SPDX-License-Identifier: MIT
set -eu

if [ $# -ne 2 ]; then
    echo "usage: sh tools/make-man.sh BIN VERSION > iadsr.1" >&2
    exit 2
fi
bin=$1
version=$2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iadsr-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

"$bin" --help > "$tmp/top.txt"
commands=$(awk '/^Commands:$/ { on = 1; next }
                on && /^$/ { exit }
                on && /^  [a-z]/ { print $1 }' "$tmp/top.txt" | grep -v '^help$' || true)
if [ -z "$commands" ]; then
    echo "make-man.sh: no 'Commands:' list in '$bin --help'" >&2
    exit 1
fi
for c in $commands; do
    if ! "$bin" "$c" --help > "$tmp/cmd-$c.txt"; then
        echo "make-man.sh: '$bin $c --help' failed" >&2
        exit 1
    fi
done

# to_man MODE NAME < help text: the troff for one help text. MODE top: the
# tool's own help (sections DESCRIPTION, COMMANDS, OPTIONS, then one section
# per "Title: text" paragraph); MODE cmd: one subsection "iadsr NAME".
to_man() {
    awk -v mode="$1" -v name="$2" '
    function esc(s) {
        gsub(/\\/, "\\e", s)
        gsub(/-/, "\\-", s)
        gsub(/\047/, "\\(aq", s)
        gsub(/`/, "\\(ga", s)
        if (s ~ /^\./) s = "\\&" s
        # an abbreviation at the end of an input line is no sentence end
        if (s ~ /(e\.g|i\.e|etc|vs)\.$/) s = s "\\&"
        return s
    }
    # the entry tag of a list line: its words that start with "-" (and the
    # first word, a command name in the top list) in bold
    function tag(s,    n, w, i, out) {
        n = split(s, w, " ")
        out = ""
        for (i = 1; i <= n; i++) {
            if (i == 1 || w[i] ~ /^-/) out = out (i > 1 ? " " : "") "\\fB" esc(w[i]) "\\fR"
            else out = out " " esc(w[i])
        }
        return out
    }
    function end_literal() { if (literal) { print ".fi"; literal = 0 } }
    function indent_of(s) { match(s, /^ */); return RLENGTH }
    { line[++n] = $0 }
    END {
        state = "usage"; literal = 0; para = 0
        if (mode == "cmd") print ".SS \"iadsr " name "\""
        for (i = 1; i <= n; i++) {
            s = line[i]; prev = (i > 1) ? line[i - 1] : ""
            if (state == "usage") {
                if (s ~ /^Usage: /) {
                    if (mode == "cmd") print ".nf"
                    sub(/^Usage: /, "", s); usage_in = 7
                    if (mode == "cmd") print esc(s)
                    continue
                }
                if (s ~ /^ / && s !~ /^$/) {
                    if (mode == "cmd") { sub("^" sprintf("%" usage_in "s", ""), "", s); print esc(s) }
                    continue
                }
                if (mode == "cmd") print ".fi"
                state = "prose"
                if (mode == "top") print ".SH DESCRIPTION"
            }
            if (s ~ /^$/) { end_literal(); para = 0; continue }
            # a heading: starts a paragraph, short, ends in ":"
            if (prev ~ /^$/ && s ~ /^[A-Z][^.]*:$/ && length(s) < 60) {
                end_literal()
                title = s; sub(/:$/, "", title)
                if (mode == "top" && title == "Commands") print ".SH COMMANDS"
                else if (mode == "top" && title == "Options") print ".SH OPTIONS"
                else { print ".PP"; print "\\fB" esc(title) "\\fR" }
                state = "list"; para = 1
                continue
            }
            if (state == "list" && s ~ /^  [^ ]/) {
                end_literal()
                t = substr(s, 3); d = ""
                if (match(t, /   */)) { d = substr(t, RSTART + RLENGTH); t = substr(t, 1, RSTART - 1) }
                print ".TP"; print tag(t)
                if (d != "") print esc(d)
                continue
            }
            if (state == "list" && s ~ /^   /) {
                sub(/^ +/, "", s); print esc(s)
                continue
            }
            # prose
            state = "prose"
            if (s ~ /^ /) {
                if (!literal) { if (!para) print ".PP"; print ".nf"; literal = 1; para = 1 }
                print esc(s)
                continue
            }
            end_literal()
            if (!para) {
                if (mode == "top" && prev ~ /^$/ && match(s, /^[A-Z][a-z]*( [a-z]+)?: /)) {
                    title = substr(s, 1, RLENGTH - 2)
                    print ".SH " toupper(title)
                    s = substr(s, RLENGTH + 1)
                    s = toupper(substr(s, 1, 1)) substr(s, 2)
                } else {
                    print ".PP"
                }
                para = 1
            }
            print esc(s)
        }
        end_literal()
        if (state == "usage" && mode == "cmd") print ".fi"
    }'
}

title_version=$(printf '%s' "$version" | sed 's/-/\\-/g')
cat <<EOF
.\\" iadsr(1): generated by tools/make-man.sh from the help texts of
.\\" iadsr $version. Do not edit: change the help texts in src/cli/ instead.
.TH IADSR 1 "" "libiadsr $title_version" "User Commands"
.ad l
.nh
.SH NAME
iadsr \\- train, evaluate and serve sequential recommenders (SASRec, GRU4Rec, Caser) and denoise their training sequences with IADSR
.SH SYNOPSIS
.B iadsr
.I command
.RI [ options ]
.br
.B iadsr help
.RI [ command ]
.br
.B iadsr
.BR \\-\\-help " | " \\-\\-version
EOF
to_man top "" < "$tmp/top.txt"
cat <<'EOF'
.SH "COMMAND REFERENCE"
Each command's own help, as printed by
.BI "iadsr " command " \-\-help"\fR.
EOF
for c in $commands; do
    to_man cmd "$c" < "$tmp/cmd-$c.txt"
done
cat <<'EOF'
.SH ENVIRONMENT
.TP
.B OPENBLAS_NUM_THREADS
the number of threads OpenBLAS uses for matrix products, when the library
was built with OpenBLAS; the tool never changes it (the library's own
worker threads are set with
.BR \-\-threads ).
.SH "SEE ALSO"
.BR pkg-config (1);
the C library's header
.IR iadsr.h ;
.IR README.md ,
.I docs/BUILD.md
and
.I docs/METHOD.md
in the source distribution.
EOF
