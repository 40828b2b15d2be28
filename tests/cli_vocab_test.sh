#!/bin/sh
# Tests of `iadsr recommend --vocab` (external ids of `iadsr import`), of
# `iadsr train --vocab` (the ids stored in the model, printed by recommend
# and info without --vocab) and of recommend's default history rule.
# Usage (from the repository root):  sh tests/cli_vocab_test.sh bin/iadsr
# Every input is generated here. Scratch files go under
# ${IADSR_TEST_TMPDIR:-/tmp}. The exact id checks parse the outputs with
# python3; without it they fall back to grep on a few known ids.
# SPDX-License-Identifier: MIT

set -u

NAME=cli_vocab_test
ROOT=$(cd "$(dirname "$0")/.." && pwd)
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

# ------------------------------------- train --vocab: ids in the model ---
run "$BIN" train --help
check "train --help documents --vocab" grep -q -- "--vocab VOCAB.tsv" "$T/out"
run "$BIN" recommend --help
check "recommend --help documents --include-history" grep -q -- "--include-history" "$T/out"
run "$BIN" info --help
check "info --help documents history_repeats" grep -q "history_repeats" "$T/out"

run "$BIN" train --data s.txt --out mi.iadsr --epochs 1 --dim 8 --quiet --vocab v.tsv
expect_rc "train --vocab" 0
run "$BIN" recommend --model mi.iadsr --data s.txt --k 5 --json
expect_rc "recommend of a model with ids, no --vocab (JSON)" 0
cp out mi.json
expect_err "the default rule is said: no repeats, history excluded" "excluding each user's history (no training sequence"
run "$BIN" recommend --model mi.iadsr --data s.txt --k 5
expect_rc "recommend of a model with ids, no --vocab (plain)" 0
cp out mi.txt
run "$BIN" recommend --model mi.iadsr --data s.txt --k 5 --json --vocab v.tsv
expect_rc "recommend of a model with ids and --vocab" 0
check "model ids + --vocab: the output of --vocab alone" cmp -s out ext.json
if [ "$HAVE_PY" -eq 1 ]; then
    cat >check_mi.py <<'EOF'
import json
ext = [json.loads(l) for l in open("ext.json", encoding="utf-8")]
mi = [json.loads(l) for l in open("mi.json", encoding="utf-8")]
dense = [json.loads(l) for l in open("dense.json", encoding="utf-8")]
assert len(mi) == len(ext) == 30
for d, e, m in zip(dense, ext, mi):
    # users stay dense without --vocab, items come from the model
    assert m["user"] == d["user"] and isinstance(m["user"], int), m
    assert m["items"] == e["items"] and all(isinstance(x, str) for x in m["items"]), (m, e)
    assert m["scores"] == e["scores"]
plain = [l.rstrip("\n").split("\t") for l in open("mi.txt", encoding="utf-8")]
for m, p in zip(mi, plain):
    assert int(p[0]) == m["user"], p
    assert [f.rsplit(":", 1)[0] for f in p[1:]] == m["items"], (p, m)
EOF
    run "$PY" check_mi.py
    expect_rc "train --vocab -> recommend round-trips the external ids" 0
else
    check "model ids in the JSON" grep -q '"items":\["' mi.json
fi
# a vocabulary that disagrees with the model's ids
awk -F '\t' 'BEGIN { OFS = "\t" } $1 == "item" && $2 == 4 { $3 = $3 "-other" } { print }' v.tsv >other.tsv
run "$BIN" recommend --model mi.iadsr --data s.txt --k 5 --vocab other.tsv
expect_rc "vocabulary disagreeing with the model's ids" 1
expect_err "the disagreement names the item" "other.tsv: item 4 is"
expect_no_out "disagreement: nothing printed"
# with ids in the model, --vocab may lack items (users are what it maps)
grep -v "^item	3	" v.tsv >gap.tsv
run "$BIN" recommend --model mi.iadsr --data s.txt --k 5 --vocab gap.tsv --json
expect_rc "model ids + a vocabulary without item 3" 0
check "model ids + gappy vocabulary: same output" cmp -s out ext.json
# train --vocab refusals
run "$BIN" train --data s.txt --out bad.iadsr --epochs 1 --dim 8 --quiet --vocab noitem.tsv
expect_rc "train --vocab without the last item" 1
expect_err "train --vocab names the missing item" "noitem.tsv: no item id $last_item"
check "train --vocab refused: no model written" test ! -e bad.iadsr
awk -F '\t' 'BEGIN { OFS = "\t" } $1 == "item" && $2 == 5 { $3 = "sku-dup" } $1 == "item" && $2 == 6 { $3 = "sku-dup" } { print }' v.tsv >dupext.tsv
run "$BIN" train --data s.txt --out bad.iadsr --epochs 1 --dim 8 --quiet --vocab dupext.tsv
expect_rc "train --vocab with two items of one external id" 1
expect_err "duplicate external ids are named" "ids[5] (item 6) repeats ids[4] (item 5)"
run "$BIN" train --data s.txt --out bad.iadsr --epochs 1 --dim 8 --quiet --vocab does-not-exist.tsv
expect_rc "train --vocab of a missing file" 1

# ------------------------------------------------------------------ info --
run "$BIN" info --model mi.iadsr
expect_rc "info of a model with ids" 0
expect_out "info: the id count and the first ids" "item_ids:           15 ("
expect_out "info: the repeat record" "history_repeats:    no"
run "$BIN" info --model mi.iadsr --json
expect_rc "info --json of a model with ids" 0
expect_out "info --json: id count" '"item_ids":15,"item_ids_first":["'
expect_out "info --json: repeat record" '"history_repeats":false'
run "$BIN" info --model m.iadsr
expect_out "info of a model without ids" "item_ids:           none"
run "$BIN" info --model m.iadsr --json
expect_out "info --json of a model without ids" '"item_ids":0,"item_ids_first":[],"history_repeats":false'
run "$BIN" info --model "$ROOT/tests/data/golden/sasrec-format-1.0.iadsr"
expect_out "info of a 1.0 file: record unknown" "history_repeats:    unknown"
run "$BIN" info --model "$ROOT/tests/data/golden/sasrec-format-1.0.iadsr" --json
expect_out "info --json of a 1.0 file: record null" '"history_repeats":null'

# ------------------------------------------------ the default history rule
# sequences whose training parts (all but the last two items) repeat an
# item, and the same without repeats
awk 'BEGIN { for (u = 1; u <= 30; u++) { a = u % 10 + 1
        printf "%d %d %d %d %d %d %d\n", u, a, a + 1, a, a + 2, a + 3, a + 4 } }' >rep.txt
awk 'BEGIN { for (u = 1; u <= 30; u++) { a = u % 10 + 1
        printf "%d %d %d %d %d %d %d\n", u, a, a + 1, a + 5, a + 2, a + 3, a + 4 } }' >norep.txt
run "$BIN" train --data rep.txt --out rep.iadsr --epochs 1 --dim 8 --quiet
expect_rc "train on data with repeats" 0
run "$BIN" train --data norep.txt --out norep.iadsr --epochs 1 --dim 8 --quiet
expect_rc "train on data without repeats" 0
run "$BIN" info --model rep.iadsr
expect_out "info: repeats recorded" "history_repeats:    yes"
run "$BIN" info --model norep.iadsr
expect_out "info: no repeats recorded" "history_repeats:    no"

run "$BIN" recommend --model rep.iadsr --data rep.txt --k 8 --json
expect_rc "recommend, repeats: default" 0
expect_err "repeats: history included, and why" "including each user's history (training sequences of the model repeated items; --exclude-history to choose)"
cp out rep_default.json
run "$BIN" recommend --model rep.iadsr --data rep.txt --k 8 --json --include-history
check "repeats: the default is --include-history" cmp -s out rep_default.json
check "an explicit choice says nothing" sh -c "! grep -q 'history (' '$T/err'"
run "$BIN" recommend --model rep.iadsr --data rep.txt --k 8 --json --exclude-history
cp out rep_excl.json
check "repeats: --exclude-history differs from the default" sh -c "! cmp -s rep_excl.json rep_default.json"

run "$BIN" recommend --model norep.iadsr --data norep.txt --k 8 --json
expect_rc "recommend, no repeats: default" 0
expect_err "no repeats: history excluded, and why" "excluding each user's history (no training sequence of the model repeated an item; --include-history to choose)"
cp out norep_default.json
run "$BIN" recommend --model norep.iadsr --data norep.txt --k 8 --json --exclude-history
check "no repeats: the default is --exclude-history" cmp -s out norep_default.json
run "$BIN" recommend --model norep.iadsr --data norep.txt --k 8 --json --include-history
check "no repeats: --include-history differs from the default" sh -c "! cmp -s '$T/out' norep_default.json"
if [ "$HAVE_PY" -eq 1 ]; then
    cat >check_hist.py <<'EOF'
import json
seqs = {}
for l in open("norep.txt"):
    f = [int(x) for x in l.split()]
    seqs[f[0]] = set(f[1:])
for l in open("norep_default.json"):
    r = json.loads(l)
    assert not (set(r["items"]) & seqs[r["user"]]), r
EOF
    run "$PY" check_hist.py
    expect_rc "no repeats: the default top-K holds no history item" 0
fi
run "$BIN" recommend --model norep.iadsr --data norep.txt --k 8 --exclude-history --include-history
expect_rc "--exclude-history with --include-history" 2
expect_err "the conflict is named" "exclude each other"

# a model without the record (format 1.0): history kept, and why
awk 'BEGIN { for (u = 1; u <= 5; u++) printf "%d %d %d %d\n", u, u, u + 1, u + 2 }' >g.txt
run "$BIN" recommend --model "$ROOT/tests/data/golden/sasrec-format-1.0.iadsr" --data g.txt --k 3
expect_rc "recommend with a 1.0 model" 0
expect_err "no record: history included, and why" "including each user's history (the model does not record"

finish "python3 missing"
