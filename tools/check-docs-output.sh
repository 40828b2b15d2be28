#!/bin/sh
# check-docs-output.sh HEADER DOCDIR
# Guard of `make docs`: Doxygen exiting 0 is not enough, since a header
# without a @file block yields no warning and no reference at all. After
# doxygen has run with docs/Doxyfile (HTML and XML into DOCDIR), check that
#   - DOCDIR/warnings.txt exists and is empty (no warning of any kind);
#   - DOCDIR/html/iadsr_8h.html, the header's page, exists;
#   - DOCDIR/xml/iadsr_8h.xml documents exactly the functions declared with
#     IADSR_API in HEADER, each with a non-empty description;
#   - the header's HTML page links every one of them.
# Lists what is wrong and exits 1; prints a summary and exits 0 otherwise.
# SPDX-License-Identifier: MIT
set -eu
LC_ALL=C
export LC_ALL
header=${1:-include/iadsr.h}
docdir=${2:-build/docs}
warnings=$docdir/warnings.txt
html=$docdir/html/iadsr_8h.html
xml=$docdir/xml/iadsr_8h.xml
tmp=${TMPDIR:-/tmp}/check-docs-output.$$
trap 'rm -f "$tmp".*' EXIT INT TERM
bad=0

fail() {
    echo "check-docs-output: $*" >&2
    bad=1
}

if [ ! -f "$warnings" ]; then
    fail "$warnings is missing (did doxygen run with docs/Doxyfile?)"
elif [ -s "$warnings" ]; then
    fail "doxygen wrote $(grep -c . "$warnings") warning line(s) to $warnings:"
    cat "$warnings" >&2
fi

# The IADSR_API functions of the header: the name is the last word before
# the first '(' of the declaration's first line (as check-doc-comments.sh).
awk '/^IADSR_API/ {
        name = $0; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
        print name
     }' "$header" | sort > "$tmp.declared"
n_declared=$(grep -c . "$tmp.declared" || true)
[ "$n_declared" -gt 0 ] || fail "no IADSR_API declaration found in $header"

[ -f "$html" ] || fail "$html is missing: Doxygen made no page for the header (no @file block?)"

if [ ! -f "$xml" ]; then
    fail "$xml is missing (GENERATE_XML = YES in docs/Doxyfile?)"
    : > "$tmp.documented"
else
    # One line per function member of the header: its name, then "doc"
    # when its brief or detailed description holds a paragraph.
    awk '
        /<memberdef kind="function"/ { in_fn = 1; name = ""; doc = 0; next }
        in_fn && /<name>/ {
            if (name == "") {
                name = $0; sub(/.*<name>/, "", name); sub(/<\/name>.*/, "", name)
            }
        }
        in_fn && /<(brief|detailed)description>/ { in_desc = 1 }
        in_fn && in_desc && /<para>/ { doc = 1 }
        in_fn && /<\/(brief|detailed)description>/ { in_desc = 0 }
        in_fn && /<\/memberdef>/ {
            print name, (doc ? "doc" : "undocumented"); in_fn = 0
        }' "$xml" | sort > "$tmp.members"
    awk '{ print $1 }' "$tmp.members" | sort -u > "$tmp.documented"
    awk '$2 != "doc" { print $1 }' "$tmp.members" > "$tmp.empty"
    if [ -s "$tmp.empty" ]; then
        fail "functions with an empty description in $xml:"
        sed 's/^/  /' "$tmp.empty" >&2
    fi
fi

comm -23 "$tmp.declared" "$tmp.documented" > "$tmp.missing"
comm -13 "$tmp.declared" "$tmp.documented" > "$tmp.extra"
if [ -s "$tmp.missing" ]; then
    fail "declared in $header but not in the generated reference:"
    sed 's/^/  /' "$tmp.missing" >&2
fi
if [ -s "$tmp.extra" ]; then
    fail "in the generated reference but not declared with IADSR_API:"
    sed 's/^/  /' "$tmp.extra" >&2
fi

if [ -f "$html" ]; then
    : > "$tmp.unlinked"
    while read -r name; do
        grep -q ">$name</a>" "$html" || echo "$name" >> "$tmp.unlinked"
    done < "$tmp.declared"
    if [ -s "$tmp.unlinked" ]; then
        fail "not listed on $html:"
        sed 's/^/  /' "$tmp.unlinked" >&2
    fi
fi

if [ "$bad" -ne 0 ]; then
    echo "check-docs-output: FAILED" >&2
    exit 1
fi
echo "check-docs-output: OK ($n_declared IADSR_API functions, each documented in the reference; no doxygen warnings)"
