# Shared set-up of the tests/cli_*_test.sh scripts, sourced by each with
#   NAME=cli_x_test; . "$(dirname "$0")/cli_harness.sh"
# while the script's own arguments ($1: the iadsr binary) are in place.
# It makes BIN absolute, moves into a fresh scratch directory $T (under
# ${IADSR_TEST_TMPDIR:-/tmp}, removed on exit), uses one BLAS thread (fast
# and deterministic), and defines the counters and check helpers below.
# SPDX-License-Identifier: MIT

BIN=${1:-bin/iadsr}
case $BIN in
/*) ;;
*) BIN=$(pwd)/$BIN ;;
esac
if [ ! -x "$BIN" ]; then
    echo "$NAME: $BIN is not an executable" >&2
    echo "$NAME: 0 passed, 1 failed"
    exit 1
fi

TMPBASE=${IADSR_TEST_TMPDIR:-/tmp}
T=$TMPBASE/iadsr_$NAME.$$
rm -rf "$T"
mkdir -p "$T" || { echo "$NAME: cannot create $T" >&2; exit 1; }
T=$(cd "$T" && pwd) || exit 1 # absolute: the tests run inside it
trap 'rm -rf "$T"' EXIT
trap 'rm -rf "$T"; exit 130' INT TERM
cd "$T" || exit 1

OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS

pass=0
fail=0
skipped=0
rc=0

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}
# run CMD...: stdout -> $T/out, stderr -> $T/err, exit status -> $rc
run() {
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
errtext() { head -c 600 "$T/err" | tr '\n' ' '; }
# expect_rc DESC CODE
expect_rc() {
    if [ "$rc" -eq "$2" ]; then ok; else bad "$1: exit $rc, expected $2; stderr: $(errtext)"; fi
}
# expect_err DESC STRING: stderr contains STRING (likewise expect_out)
expect_err() {
    if grep -F -e "$2" "$T/err" >/dev/null 2>&1; then ok; else bad "$1: stderr lacks '$2': $(errtext)"; fi
}
expect_out() {
    if grep -F -e "$2" "$T/out" >/dev/null 2>&1; then ok; else bad "$1: stdout lacks '$2'"; fi
}
expect_no_out() {
    if [ ! -s "$T/out" ]; then ok; else bad "$1: unexpected stdout: $(head -c 200 "$T/out")"; fi
}
# check DESC CMD...: CMD succeeds
check() {
    d=$1
    shift
    if "$@" >/dev/null 2>&1; then ok; else bad "$d"; fi
}
# finish WHY: the summary line (WHY says why checks were skipped), and the
# script's exit status
finish() {
    if [ "$skipped" -gt 0 ]; then
        echo "$NAME: $pass passed, $fail failed, $skipped skipped ($1)"
    else
        echo "$NAME: $pass passed, $fail failed"
    fi
    [ "$fail" -eq 0 ]
}
