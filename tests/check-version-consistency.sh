#!/bin/sh
# Check that every place that states the libiadsr version agrees:
#   - include/iadsr.h: IADSR_VERSION_MAJOR/MINOR/PATCH and IADSR_VERSION_STRING
#   - the Makefile: `make -s print-version` and `make -s print-soversion`
#   - libiadsr.pc.in takes its Version from the Makefile (@VERSION@)
#   - CHANGELOG.md: the top released entry, "## [X.Y.Z] - YYYY-MM-DD"
#     (an "## [Unreleased]" heading above it is allowed and skipped)
# Run from anywhere; exits non-zero with a message on the first mismatch.
# Usage: sh tests/check-version-consistency.sh   (or: make version-check)
# SPDX-License-Identifier: MIT
set -eu

cd "$(dirname "$0")/.."
MAKE_CMD=${MAKE:-make}
header=include/iadsr.h
status=0

fail() {
    echo "check-version-consistency: $*" >&2
    status=1
}

macro() {
    sed -n "s/^#[[:blank:]]*define[[:blank:]]\{1,\}IADSR_VERSION_$1[[:blank:]]\{1,\}\([0-9]\{1,\}\)[[:blank:]]*\$/\1/p" "$header"
}

[ -f "$header" ] || { echo "check-version-consistency: $header not found" >&2; exit 1; }

major=$(macro MAJOR)
minor=$(macro MINOR)
patch=$(macro PATCH)
for part in "MAJOR:$major" "MINOR:$minor" "PATCH:$patch"; do
    case ${part#*:} in
        ''|*[!0-9]*) echo "check-version-consistency: cannot parse IADSR_VERSION_${part%%:*} in $header" >&2; exit 1 ;;
    esac
done
version="$major.$minor.$patch"

# IADSR_VERSION_STRING
vstring=$(sed -n 's/^#[[:blank:]]*define[[:blank:]]\{1,\}IADSR_VERSION_STRING[[:blank:]]\{1,\}"\([^"]*\)".*/\1/p' "$header")
if [ "$vstring" != "$version" ]; then
    fail "IADSR_VERSION_STRING is \"$vstring\" but the MAJOR/MINOR/PATCH macros say $version"
fi

# IADSR_VERSION_NUMBER must be defined from the three macros (checked by
# compiling, so the arithmetic is the compiler's, not ours).
if command -v "${CC:-cc}" >/dev/null 2>&1; then
    tmp=${TMPDIR:-/tmp}/iadsr-vc.$$
    mkdir -p "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    expected=$((major * 10000 + minor * 100 + patch))
    printf '#include "iadsr.h"\n#if IADSR_VERSION_NUMBER != %s\n#error IADSR_VERSION_NUMBER mismatch\n#endif\n' \
        "$expected" > "$tmp/vn.c"
    if ! "${CC:-cc}" -Iinclude -fsyntax-only "$tmp/vn.c" 2>"$tmp/err"; then
        fail "IADSR_VERSION_NUMBER does not equal MAJOR*10000+MINOR*100+PATCH = $expected"
        cat "$tmp/err" >&2
    fi
fi

# Makefile
mk_version=$($MAKE_CMD -s --no-print-directory print-version 2>/dev/null) || mk_version="(make print-version failed)"
if [ "$mk_version" != "$version" ]; then
    fail "Makefile version is '$mk_version' but $header says $version"
fi
if [ "$major" = 0 ]; then
    expected_so="0.$minor"
else
    expected_so="$major"
fi
mk_so=$($MAKE_CMD -s --no-print-directory print-soversion 2>/dev/null) || mk_so="(make print-soversion failed)"
if [ "$mk_so" != "$expected_so" ]; then
    fail "Makefile SOVERSION is '$mk_so' but version $version implies $expected_so"
fi

# pkg-config template
if ! grep -q '^Version: @VERSION@$' libiadsr.pc.in; then
    fail "libiadsr.pc.in must contain 'Version: @VERSION@' (filled in by the Makefile)"
fi

# CHANGELOG.md top released entry
if [ ! -f CHANGELOG.md ]; then
    fail "CHANGELOG.md not found"
else
    top=$(grep -E '^## \[' CHANGELOG.md | grep -viE '^## \[unreleased\]' | head -n 1 || true)
    if [ -z "$top" ]; then
        fail "CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' entry"
    else
        cl_version=$(printf '%s\n' "$top" | sed -n 's/^## \[\([^]]*\)\].*/\1/p')
        if [ "$cl_version" != "$version" ]; then
            fail "CHANGELOG.md top entry is [$cl_version] but $header says $version"
        fi
        if ! printf '%s\n' "$top" | grep -Eq '^## \[[^]]+\] - [^ ]'; then
            fail "CHANGELOG.md top entry '$top' is not of the form '## [$version] - <date>'"
        fi
    fi
fi

if [ "$status" -eq 0 ]; then
    echo "check-version-consistency: OK ($version, SOVERSION $expected_so)"
fi
exit "$status"
