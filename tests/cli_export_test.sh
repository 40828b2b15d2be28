#!/bin/sh
# Tests of `iadsr export`: the item table and the user vectors as .npy
# (shapes, padding row), their dot products against the scores and the
# ranking of `iadsr recommend --json` and the histories of eval, --json,
# and usage errors.
# Usage (from the repository root):  sh tests/cli_export_test.sh bin/iadsr
# Scratch files go under ${IADSR_TEST_TMPDIR:-/tmp}. The numeric checks need
# /usr/bin/python3 with numpy; without them they are skipped (said so).
# SPDX-License-Identifier: MIT

set -u

NAME=cli_export_test
. "$(dirname "$0")/cli_harness.sh"

PY=/usr/bin/python3
HAVE_NP=0
if [ -x "$PY" ] && "$PY" -c 'import numpy' >/dev/null 2>&1; then
    HAVE_NP=1
else
    echo "cli_export_test: $PY with numpy not found: the numeric checks are skipped"
fi

# pycheck DESC SCRIPT ARGS...: $PY -c SCRIPT ARGS must succeed (numpy)
pycheck() {
    d=$1
    s=$2
    shift 2
    if [ "$HAVE_NP" -eq 0 ]; then
        skipped=$((skipped + 1))
        return
    fi
    if "$PY" -c "$s" "$@" >"$T/py" 2>&1; then ok; else bad "$d: $(head -c 600 "$T/py" | tr '\n' ' ')"; fi
}
usage_case() { # DESC ARGS...: exit 2, no stdout
    d=$1
    shift
    run "$BIN" "$@"
    expect_rc "usage: $d" 2
    expect_no_out "usage: $d"
}

# ---------------------------------------------------------------- fixtures --
# --min-len 1: some users have no leave-one-out history
run "$BIN" synth --out d.txt --users 120 --items 50 --topics 5 --min-len 1 \
    --max-len 15 --seed 7 --quiet
expect_rc "synth" 0
run "$BIN" train --data d.txt --out m.bin --epochs 2 --dim 8 --max-len 10 --seed 3 --quiet
expect_rc "train" 0

# ------------------------------------------------------------------ help --
run "$BIN" export --help
expect_rc "export --help" 0
expect_out "export --help" "Usage: iadsr export"
expect_out "export --help states the formula" "score(u, i) = USERS[u] . ITEMS[i]"
expect_out "export --help says there is no bias" "no bias"
run "$BIN" --help
expect_out "iadsr --help lists export" "  export "

# --------------------------------------------------------- usage errors --
usage_case "no options" export
usage_case "without --items-out" export --model m.bin
expect_err "without --items-out names it" "--items-out"
usage_case "without --model" export --items-out i.npy
usage_case "--users-out without --data" export --model m.bin --items-out i.npy --users-out u.npy
expect_err "--users-out without --data says so" "--users-out needs --data"
usage_case "--data without --users-out" export --model m.bin --items-out i.npy --data d.txt
expect_err "--data without --users-out says so" "--data needs --users-out"
usage_case "--split without --data" export --model m.bin --items-out i.npy --split none
usage_case "bad --split" export --model m.bin --items-out i.npy --data d.txt --users-out u.npy --split test
usage_case "unknown option" export --model m.bin --items-out i.npy --bogus
cp m.bin m_copy.bin
cp d.txt d_copy.txt
usage_case "--items-out over the model" export --model m_copy.bin --items-out m_copy.bin
expect_err "--items-out over the model names both" "same file"
usage_case "--users-out over the data" export --model m.bin --items-out i.npy \
    --data d_copy.txt --users-out d_copy.txt
expect_err "--users-out over the data names both" "same file"
usage_case "--users-out over --items-out" export --model m.bin --items-out i.npy \
    --data d.txt --users-out i.npy
usage_case "--users-out over the model" export --model m_copy.bin --items-out i.npy \
    --data d.txt --users-out m_copy.bin
check "the refused outputs left the inputs alone" cmp m.bin m_copy.bin
check "the refused outputs left the data alone" cmp d.txt d_copy.txt
check "no output written on usage errors" test ! -e i.npy -a ! -e u.npy

# --------------------------------------------------------- runtime errors --
run "$BIN" export --model missing.bin --items-out i.npy
expect_rc "missing model" 1
check "missing model: nothing written" test ! -e i.npy
printf '1 1 2 999\n' >big.txt
run "$BIN" export --model m.bin --items-out i.npy --data big.txt --users-out u.npy
expect_rc "an id above the model's items" 1
check "an id above the model's items: nothing written" test ! -e i.npy -a ! -e u.npy

# ------------------------------------------------------------- the items --
run "$BIN" export --model m.bin --items-out items.npy
expect_rc "export items only" 0
expect_no_out "export prints nothing on stdout without --json"
expect_err "export summary" "items.npy (51 x 8 float32"
pycheck "items.npy: (n_items + 1) x d float32, row 0 zeros" '
import sys, numpy as np
E = np.load(sys.argv[1])
assert E.dtype == np.float32 and E.shape == (51, 8), (E.dtype, E.shape)
assert not E[0].any() and np.abs(E[1:]).sum(axis=1).min() > 0
' items.npy

# ----------------------------------------------- users, whole sequences --
run "$BIN" export --model m.bin --items-out items.npy --data d.txt --users-out users_all.npy --split none
expect_rc "export --split none" 0
run "$BIN" recommend --model m.bin --data d.txt --k 10 --users 25 --json
expect_rc "recommend --json" 0
cp "$T/out" rec.json
pycheck "USERS @ ITEMS.T reproduces recommend --json (top-10 items, scores)" '
import json, sys, numpy as np
E = np.load(sys.argv[1]); U = np.load(sys.argv[2])
recs = [json.loads(l) for l in open(sys.argv[3])]
lines = [l.split() for l in open(sys.argv[4]) if l.strip()]
assert U.dtype == np.float32 and U.shape == (len(lines), 8), U.shape
assert len(recs) == 25
for r, l in zip(recs, lines):
    assert r["user"] == int(l[0])
    u = lines.index(l)
    s = E[1:].astype(np.float64) @ U[u].astype(np.float64)  # item i at i - 1
    order = sorted(range(len(s)), key=lambda j: (-s[j], j))[:10]
    top = [j + 1 for j in order]
    # same items; a swap of two scores closer than the tolerance is rounding
    for a, b, sa in zip(top, r["items"], r["scores"]):
        assert a == b or abs(s[a - 1] - s[b - 1]) < 1e-4, (u, top, r["items"])
    for i, sc in zip(r["items"], r["scores"]):
        assert abs(s[i - 1] - sc) <= 1e-4 * max(1.0, abs(sc)), (u, i, s[i - 1], sc)
' items.npy users_all.npy rec.json d.txt

# ------------------------------------------- users, leave-one-out, --json --
run "$BIN" export --model m.bin --items-out items2.npy --data d.txt --users-out users.npy --json
expect_rc "export --json (split loo by default)" 0
cp "$T/out" export.json
pycheck "export --json: one object with paths, rows, dim and the formula" '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
o = json.loads(lines[0])
assert o["model"] == "m.bin" and o["items_out"] == "items2.npy", o
assert o["users_out"] == "users.npy" and o["split"] == "loo", o
assert o["items_rows"] == 51 and o["dim"] == 8 and o["users_rows"] == 120, o
n_short = sum(1 for l in open(sys.argv[2]) if len(l.split()) == 2)
assert n_short > 0 and o["users_without_history"] == n_short, (o, n_short)
assert "dot(USERS[u], ITEMS[i])" in o["formula"] and "no bias" in o["formula"], o
' export.json d.txt
check "the item table does not depend on --data" cmp items.npy items2.npy
# recommend on the histories eval uses (all but the last item)
awk 'NF > 2 { printf "%s", $1; for (i = 2; i < NF; i++) printf " %s", $i; print "" }' d.txt >hist.txt
run "$BIN" recommend --model m.bin --data hist.txt --k 5 --json
expect_rc "recommend on the loo histories" 0
cp "$T/out" rec_hist.json
pycheck "loo user vectors score the histories eval uses; short users are zero rows" '
import json, sys, numpy as np
E = np.load(sys.argv[1]); U = np.load(sys.argv[2])
recs = {r["user"]: r for r in map(json.loads, open(sys.argv[3]))}
lines = [l.split() for l in open(sys.argv[4]) if l.strip()]
assert U.shape == (len(lines), 8)
checked = 0
for u, l in enumerate(lines):
    if len(l) == 2:
        assert not U[u].any(), u
        continue
    r = recs[int(l[0])]
    s = E[1:].astype(np.float64) @ U[u].astype(np.float64)
    for i, sc in zip(r["items"], r["scores"]):
        assert abs(s[i - 1] - sc) <= 1e-4 * max(1.0, abs(sc)), (u, i, s[i - 1], sc)
    assert abs(max(s) - r["scores"][0]) <= 1e-4 * max(1.0, abs(max(s)))
    checked += 1
assert checked > 50, checked
' items2.npy users.npy rec_hist.json d.txt

# re-export over existing files: replaced atomically, no temporary left
run "$BIN" export --model m.bin --items-out items2.npy --data d.txt --users-out users.npy
expect_rc "export over existing files" 0
check "no temporary files left" sh -c '! ls | grep -q "\.tmp\."'

finish "no numpy"
