#!/bin/sh
# check-symbols.sh LIB HEADER LIST [--update]
#
# The exported-symbol guard of libiadsr, run after every link of the shared
# library and by `make symbols-check`. It fails when:
#   - LIB exports anything but iadsr_* functions (no iadsr__* internals, no
#     third-party symbols) and the IADSR_x.y version nodes;
#   - an exported symbol is not declared in HEADER, or an IADSR_API function
#     of HEADER is not exported (missing from src/libiadsr.map);
#   - the exported set, with each symbol's version node, differs from the
#     committed LIST (tests/abi/libiadsr.symbols). Adding to the ABI is a
#     deliberate act: rerun with --update (`make symbols-update`) and commit
#     the list together with the map and the header.
# SPDX-License-Identifier: MIT
set -eu

lib=$1 header=$2 list=$3 mode=${4:-check}
nm=${NM:-nm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iadsr-syms.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# "name@@NODE" for functions and data, "NODE" for the version nodes.
"$nm" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' |
    LC_ALL=C sort -u > "$tmp/now"
if [ ! -s "$tmp/now" ]; then
    echo "check-symbols: $lib exports no symbols" >&2
    exit 1
fi

fail=0
bad=$(grep -v -E '^(iadsr_[a-z0-9][a-z0-9_]*@@IADSR_[0-9]+\.[0-9]+|IADSR_[0-9]+\.[0-9]+)$' "$tmp/now" || true)
if [ -n "$bad" ]; then
    echo "check-symbols: FAILED, exported outside the iadsr_ namespace, internal (iadsr__*) or unversioned:" >&2
    printf '    %s\n' $bad >&2
    fail=1
fi

sed -n 's/@@.*//p' "$tmp/now" > "$tmp/names"
sed -n 's/^IADSR_API[^(]*[ *]\(iadsr_[a-z0-9_]*\)(.*/\1/p' "$header" |
    LC_ALL=C sort -u > "$tmp/declared"
undecl=$(LC_ALL=C comm -23 "$tmp/names" "$tmp/declared")
if [ -n "$undecl" ]; then
    echo "check-symbols: FAILED, exported but not declared IADSR_API in $header:" >&2
    printf '    %s\n' $undecl >&2
    fail=1
fi
missing=$(LC_ALL=C comm -13 "$tmp/names" "$tmp/declared")
if [ -n "$missing" ]; then
    echo "check-symbols: FAILED, declared in $header but not exported (add them to src/libiadsr.map):" >&2
    printf '    %s\n' $missing >&2
    fail=1
fi
[ "$fail" -eq 0 ] || exit 1

if [ "$mode" = "--update" ]; then
    {
        echo "# Exported symbols of libiadsr with their version nodes (nm -D)."
        echo "# Compared on every build by tools/check-symbols.sh; regenerate"
        echo "# only for a deliberate ABI addition: make symbols-update."
        cat "$tmp/now"
    } > "$list.tmp" && mv "$list.tmp" "$list"
    echo "check-symbols: wrote $list ($(grep -c . "$tmp/names") functions)"
    exit 0
fi

if [ ! -f "$list" ]; then
    echo "check-symbols: FAILED, no committed symbol list $list (make symbols-update)" >&2
    exit 1
fi
grep -v '^#' "$list" | LC_ALL=C sort -u > "$tmp/want"
if ! cmp -s "$tmp/want" "$tmp/now"; then
    echo "check-symbols: FAILED, the exported symbols differ from $list:" >&2
    LC_ALL=C comm -23 "$tmp/want" "$tmp/now" | sed 's/^/    removed: /' >&2
    LC_ALL=C comm -13 "$tmp/want" "$tmp/now" | sed 's/^/    added:   /' >&2
    echo "  Removing or moving a symbol breaks the ABI. For a deliberate addition run" >&2
    echo "  'make symbols-update' and commit $list with the header and src/libiadsr.map." >&2
    exit 1
fi
echo "check-symbols: OK ($(grep -c . "$tmp/names") functions, all iadsr_*, versioned, as in $list)"
