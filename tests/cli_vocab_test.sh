#!/bin/sh
# Tests of `iadsr recommend --vocab` (external ids of `iadsr import`).
# Usage (from the repository root):  sh tests/cli_vocab_test.sh bin/iadsr
# Every input is generated here. Scratch files go under
# ${IADSR_TEST_TMPDIR:-/tmp}. The exact id checks parse the outputs with
# python3; without it they fall back to grep on a few known ids.
# SPDX-License-Identifier: MIT

set -u

NAME=cli_vocab_test
. "$(dirname "$0")/cli_harness.sh"

HAVE_PY=0
if [ -x /usr/bin/python3 ]; then
    PY=/usr/bin/python3
    HAVE_PY=1
elif command -v python3 >/dev/null 2>&1; then
    PY=python3
    HAVE_PY=1
fi

rec() { run "$BIN" recommend --model m.iadsr --data s.txt --k 5 "$@"; }

# ------------------------------------------------------------------ help --
run "$BIN" recommend --help
expect_rc "recommend --help" 0
check "recommend --help documents --vocab" grep -q -- "--vocab VOCAB.tsv" "$T/out"

# ------------------------------------------------- import -> train -------
# 30 users of 6 items over 15 items, as a CSV with string ids: users with
# a space, items with a space, a double quote, a backslash, a ':' and a
# control byte (0x01).
awk 'BEGIN {
        print "user_id,item_id,timestamp"
        for (u = 0; u < 30; u++)
            for (k = 0; k < 6; k++) {
                it = (u * 7 + k * 3) % 15
                name = "sku-" it
                if (it == 2) name = "\"big box\""
                if (it == 5) name = "\"say \"\"hi\"\"\""
                if (it == 7) name = "back\\slash"
                if (it == 9) name = "a:b"
                if (it == 11) name = "ctl" sprintf("%c", 1) "x"
                printf "\"user %d\",%s,%d\n", u, name, 1000 + k * 50
            }
    }' >in.csv
run "$BIN" import --in in.csv --out s.txt --vocab v.tsv --min-len 3 --quiet
expect_rc "import of the string-id CSV" 0
check "the vocabulary holds an id with a space" grep -q "$(printf 'item\t[0-9]*\tbig box')" v.tsv
check "the vocabulary holds an id with a double quote" grep -q "$(printf 'item\t[0-9]*\tsay "hi"')" v.tsv
run "$BIN" train --data s.txt --out m.iadsr --epochs 1 --dim 8 --quiet
expect_rc "train --epochs 1 --dim 8" 0

# ------------------------------------------------ without --vocab: as before
rec
expect_rc "recommend (dense ids)" 0
cp out dense.txt
check "plain dense output: user<TAB>item:score item:score ..." \
    sh -c "test \$(grep -c -E '^[0-9]+	[0-9]+:-?[0-9.]+( [0-9]+:-?[0-9.]+){4}\$' dense.txt) -eq 30"
rec --json
expect_rc "recommend --json (dense ids)" 0
cp out dense.json
check "JSON dense output: numeric ids" \
    sh -c "test \$(grep -c -E '^\\{\"user\":[0-9]+,\"items\":\\[[0-9]+(,[0-9]+){4}\\],\"scores\":' dense.json) -eq 30"

# -------------------------------------------------------- with --vocab ---
rec --vocab v.tsv --json
expect_rc "recommend --vocab --json" 0
cp out ext.json
rec --vocab v.tsv
expect_rc "recommend --vocab (plain)" 0
cp out ext.txt
check "recommend --vocab prints 30 users" sh -c "test \$(wc -l <ext.txt) -eq 30"
rec --vocab v.tsv --exclude-history --json --users 3
expect_rc "recommend --vocab --exclude-history --users 3" 0
check "--users 3 prints 3 users" sh -c "test \$(wc -l <'$T/out') -eq 3"

if [ "$HAVE_PY" -eq 1 ]; then
    cat >check.py <<'EOF'
import json, sys
voc = {"user": {}, "item": {}}
with open("v.tsv", "rb") as f:
    lines = f.read().split(b"\n")
assert lines[0] == b"kind\tid\texternal", lines[0]
for ln in lines[1:]:
    if not ln:
        continue
    kind, i, ext = ln.split(b"\t")
    voc[kind.decode()][int(i)] = ext.decode("utf-8")
items = set(voc["item"].values())
dense = [json.loads(l) for l in open("dense.json", encoding="utf-8")]
ext = [json.loads(l) for l in open("ext.json", encoding="utf-8")]
assert len(dense) == len(ext) == 30
for d, e in zip(dense, ext):
    assert isinstance(e["user"], str) and e["user"] == voc["user"][d["user"]], (d, e)
    assert all(isinstance(x, str) and x in items for x in e["items"]), e
    assert e["items"] == [voc["item"][i] for i in d["items"]], (d, e)
    assert e["scores"] == d["scores"]
seen = {x for e in ext for x in e["items"]}
# plain: user<TAB>item:score<TAB>..., each field split at its last ':'
rows = [l.rstrip("\n").split(" ") for l in open("dense.txt", encoding="utf-8")]
plain = [l.rstrip("\n").split("\t") for l in open("ext.txt", encoding="utf-8")]
for d, p in zip(rows, plain):
    du, first = d[0].split("\t")
    d = [first] + d[1:]
    assert p[0] == voc["user"][int(du)], (d, p)
    assert len(p) == 1 + len(d), (d, p)
    for dv, pv in zip(d, p[1:]):
        di, ds = dv.split(":")
        pi, ps = pv.rsplit(":", 1)
        assert pi == voc["item"][int(di)] and ps == ds, (dv, pv)
print(sorted(seen & {"big box", 'say "hi"', "back\\slash", "a:b", "ctl\x01x"}))
EOF
    run "$PY" check.py
    expect_rc "external ids are exactly the vocabulary's, in JSON and plain" 0
else
    echo "cli_vocab_test: python3 not found; grep checks only"
    check "JSON user ids are external" grep -q '^{"user":"user 0","items":\["' ext.json
    check "plain user ids are external" grep -q "^user 0	" ext.txt
    check "no dense ids left in the JSON" sh -c "! grep -q '\"items\":\\[[0-9]' ext.json"
fi
check "JSON escapes the quote" sh -c "grep -F 'say \\\"hi\\\"' ext.json || ! grep -q 'say \"hi\"' v.tsv"
check "JSON escapes the control byte" sh -c "grep -F 'ctl\\u0001x' ext.json || ! grep -q ctl v.tsv"

# --------------------------------------------------------------- errors --
n_items=$(grep -c '^item	' v.tsv)
last_item=$(grep '^item	' v.tsv | tail -n 1 | cut -f 2)
grep -v "^item	$last_item	" v.tsv >noitem.tsv
rec --vocab noitem.tsv
expect_rc "vocabulary without the last item" 1
expect_err "missing item names the file and the id" "noitem.tsv: no item id $last_item"
expect_no_out "missing item: nothing printed"
grep -v "^item	3	" v.tsv >gap.tsv
rec --vocab gap.tsv --json
expect_rc "vocabulary with a gap" 1
expect_err "gap: first missing id" "gap.tsv: no item id 3"
grep -v "^user	2	" v.tsv >nouser.tsv
rec --vocab nouser.tsv
expect_rc "vocabulary without user 2" 1
expect_err "missing user names the file and the id" "nouser.tsv: no user id 2"
expect_no_out "missing user: nothing printed"

# badline FILE LINE CONTENT DESC: the vocabulary with line LINE replaced
badline() {
    awk -v n="$2" -v s="$3" 'NR == n { print s; next } { print }' v.tsv >"$1"
    rec --vocab "$1"
    expect_rc "$4" 1
    expect_err "$4: FILE:LINE" "$1:$2:"
    expect_no_out "$4: nothing printed"
}
badline cols.tsv 5 "$(printf 'user\t4')" "two columns"
badline cols4.tsv 6 "$(printf 'user\t5\tx\ty')" "four columns"
badline kind.tsv 7 "$(printf 'users\t6\tx')" "unknown kind"
badline num.tsv 8 "$(printf 'user\t7a\tx')" "non-numeric id"
badline zero.tsv 9 "$(printf 'user\t0\tx')" "id 0"
badline dup.tsv 10 "$(printf 'user\t1\tdup')" "duplicate user id"
badline empty.tsv 11 "$(printf 'user\t10\t')" "empty external id"
badline huge.tsv 12 "$(printf 'item\t99999999\tfar')" "id far beyond the file"
badline header.tsv 1 "$(printf 'kind\tid')" "bad header"
rec --vocab dup.tsv
expect_err "duplicate is named with the first line" "dup.tsv:10: duplicate user id 1 (also on line 2)"
rec --vocab does-not-exist.tsv
expect_rc "missing vocabulary file" 1
expect_err "missing vocabulary file named" "does-not-exist.tsv"
# CRLF line ends are read
sed 's/$/\r/' v.tsv >crlf.tsv
rec --vocab crlf.tsv --json
expect_rc "CRLF vocabulary" 0
check "CRLF vocabulary: same output" cmp -s out ext.json
# lines in any order
{ head -n 1 v.tsv; tail -n +2 v.tsv | sort -r; } >shuf.tsv
rec --vocab shuf.tsv --json
check "vocabulary lines in any order: same output" cmp -s out ext.json

finish "python3 missing"
