#!/bin/sh
# check-doc-comments.sh HEADER
# Every IADSR_API declaration of the public header must be preceded directly
# (blank lines aside) by a Doxygen comment /** ... */, which is what the API
# reference (make docs) is generated from. Lists the undocumented ones.
# SPDX-License-Identifier: MIT
set -eu
header=${1:-include/iadsr.h}
awk -v file="$header" '
    # Inside a comment: remember whether it is a doc comment, and where it ends.
    in_c {
        if (index($0, "*/")) { in_c = 0; if (is_doc) doc_end = NR; last = NR }
        next
    }
    /^[ \t]*$/ { next }
    /^[ \t]*\/\*/ {
        is_doc = ($0 ~ /^[ \t]*\/\*\*[^\/]/ || $0 ~ /^[ \t]*\/\*\*$/)
        rest = substr($0, index($0, "/*") + 2)
        if (index(rest, "*/")) { if (is_doc) doc_end = NR; last = NR }
        else in_c = 1
        next
    }
    /^IADSR_API/ {
        n++
        if (doc_end != last || doc_end == 0) {
            name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
            printf "%s:%d: %s has no /** doc comment */ right above it\n", file, NR, name
            bad++
        }
    }
    # Any other code line (continuations of a declaration included).
    { last = NR }
    END {
        if (n == 0) { print "check-doc-comments: no IADSR_API declarations in " file; exit 1 }
        if (bad) { printf "check-doc-comments: FAILED, %d of %d IADSR_API declarations undocumented\n", bad, n; exit 1 }
        printf "check-doc-comments: OK (%d IADSR_API declarations, each with a doc comment)\n", n
    }' "$header"
