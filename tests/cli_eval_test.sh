#!/bin/sh
# Tests of the machine-readable outputs of the iadsr tool: eval --k, MRR and
# --per-user (metrics from the per-user ranks, checked against the
# library's own HR/NDCG), info --json and recommend --json.
# Usage (from the repository root):  sh tests/cli_eval_test.sh bin/iadsr
# Scratch files go under ${IADSR_TEST_TMPDIR:-/tmp}. The checks of the JSON
# and of the numbers need python3; without it they are skipped.
# SPDX-License-Identifier: MIT

set -u

NAME=cli_eval_test
. "$(dirname "$0")/cli_harness.sh"

HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then HAVE_PY=1; fi

# pycheck DESC SCRIPT ARGS...: python3 -c SCRIPT ARGS must succeed
pycheck() {
    d=$1
    s=$2
    shift 2
    if [ "$HAVE_PY" -eq 0 ]; then
        skipped=$((skipped + 1))
        return
    fi
    if python3 -c "$s" "$@" >"$T/py" 2>&1; then ok; else bad "$d: $(head -c 600 "$T/py" | tr '\n' ' ')"; fi
}
usage_case() { # DESC ARGS...: exit 2, no stdout
    d=$1
    shift
    run "$BIN" "$@"
    expect_rc "usage: $d" 2
    expect_no_out "usage: $d"
}

# ---------------------------------------------------------------- fixtures --
run "$BIN" synth --out d.txt --users 200 --items 60 --topics 6 --min-len 1 \
    --max-len 15 --seed 4 --quiet --semantic-out s.npy --semantic-dim 8
expect_rc "synth" 0
run "$BIN" train --data d.txt --out m.bin --epochs 2 --dim 16 --max-len 10 --seed 3 --quiet
expect_rc "train" 0
run "$BIN" train --data d.txt --out mi.bin --epochs 1 --dim 16 --max-len 10 --seed 3 --quiet \
    --semantic s.npy
expect_rc "train --semantic" 0

# ------------------------------------------------------------ eval --help --
run "$BIN" eval --help
expect_out "eval --help documents --k" "--k LIST"
expect_out "eval --help documents --per-user" "--per-user FILE"
expect_out "eval --help documents MRR" "MRR"

# ------------------------------------------------------- eval usage errors --
usage_case "--k 0" eval --model m.bin --data d.txt --k 0
usage_case "--k empty" eval --model m.bin --data d.txt --k ''
usage_case "--k with an empty entry" eval --model m.bin --data d.txt --k 5,,10
usage_case "--k trailing comma" eval --model m.bin --data d.txt --k 5,
usage_case "--k negative" eval --model m.bin --data d.txt --k -5
usage_case "--k not a number" eval --model m.bin --data d.txt --k five
usage_case "--k repeated" eval --model m.bin --data d.txt --k 5,10,5
expect_err "--k repeated says which" "5 is given twice"
usage_case "--k 17 cut-offs" eval --model m.bin --data d.txt --k 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
expect_err "--k 17 cut-offs says the limit" "at most 16"
usage_case "--k above n_items" eval --model m.bin --data d.txt --k 10,61
expect_err "--k above n_items names both" "--k 61 exceeds the model's 60 items"
usage_case "--k huge" eval --model m.bin --data d.txt --k 99999999999
usage_case "--per-user over the data" eval --model m.bin --data d.txt --per-user d.txt
expect_err "--per-user over the data names both" "same file"
usage_case "--per-user over the model" eval --model m.bin --data d.txt --per-user m.bin
usage_case "--per-user without a value" eval --model m.bin --data d.txt --per-user
run "$BIN" eval --model m.bin --data d.txt --per-user "$T"
expect_rc "--per-user naming a directory" 1
expect_no_out "--per-user naming a directory prints no metrics"

# -------------------------------------------------- default output as before --
run "$BIN" eval --model m.bin --data d.txt --json
expect_rc "eval --json" 0
cp "$T/out" lib.json
pycheck "eval --json keeps its keys (no MRR without --k)" '
import json, sys
o = json.load(open(sys.argv[1]))
assert sorted(o) == sorted(["split", "users", "HR@5", "HR@10", "HR@20",
    "NDCG@5", "NDCG@10", "NDCG@20", "exclude_history"]), sorted(o)
' lib.json
run "$BIN" eval --model m.bin --data d.txt
cp "$T/out" lib.txt
run "$BIN" eval --model m.bin --data d.txt --per-user pu.tsv
expect_rc "eval --per-user" 0
check "eval --per-user: the table of the library's metrics" cmp -s "$T/out" lib.txt
run "$BIN" eval --model m.bin --data d.txt --per-user pu.tsv --json
check "eval --per-user --json: metrics from the ranks = the library's" cmp -s "$T/out" lib.json
check "--per-user: header line" sh -c "head -n 1 pu.tsv | grep -qx 'user_id	rank'"

# --per-user: one line per user with a test target, in file order, ids and
# ranks in 1..n_items; HR/NDCG at 5, 10, 20 from the file = the library's.
pycheck "--per-user lines: users with a target, file order, 1-based ranks" '
import json, math, sys
data = [l.split() for l in open(sys.argv[1]) if l.strip()]
want = [int(f[0]) for f in data if len(f) - 1 >= 2]
lines = open(sys.argv[2]).read().split("\n")
assert lines[0] == "user_id\trank" and lines[-1] == "", lines[:2]
rows = [l.split("\t") for l in lines[1:-1]]
assert all(len(r) == 2 for r in rows)
ids = [int(r[0]) for r in rows]
ranks = [int(r[1]) for r in rows]
assert ids == want, (ids[:5], want[:5])
assert all(1 <= r <= 60 for r in ranks)
o = json.load(open(sys.argv[3]))
assert o["users"] == len(ranks)
n = len(ranks)
for k in (5, 10, 20):
    hr = sum(1 for r in ranks if r <= k) / n
    nd = sum(1 / math.log2(r + 1) for r in ranks if r <= k) / n
    assert abs(hr - o["HR@%d" % k]) < 1e-6, (k, hr, o)
    assert abs(nd - o["NDCG@%d" % k]) < 1e-6, (k, nd, o)
' d.txt pu.tsv lib.json
cp pu.tsv pu1.tsv
run "$BIN" eval --model m.bin --data d.txt --per-user pu.tsv --threads 2
check "--per-user --threads 2: the same file" cmp -s pu.tsv pu1.tsv
check "--per-user leaves no temporary file" sh -c "! ls pu.tsv.tmp* 2>/dev/null | grep -q ."

# ------------------------------------------------------------- eval --k --
run "$BIN" eval --model m.bin --data d.txt --k 5,10,20 --json
expect_rc "eval --k 5,10,20 --json" 0
cp "$T/out" k.json
pycheck "--k 5,10,20: HR/NDCG equal the library's, plus MRR" '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == "", "not exactly one line"
o = json.loads(lines[0])
lib = json.load(open(sys.argv[2]))
assert sorted(o) == sorted(list(lib) + ["MRR"]), sorted(o)
for k in lib:
    assert o[k] == lib[k], (k, o[k], lib[k])
assert isinstance(o["MRR"], float) and 0 < o["MRR"] <= 1
' k.json lib.json
run "$BIN" eval --model m.bin --data d.txt --k 1,3,60 --json --per-user pu.tsv
expect_rc "eval --k 1,3,60 --json" 0
pycheck "--k 1,3,60: keys in order, values from the per-user ranks, MRR" '
import json, math, sys
o = json.loads(open(sys.argv[1]).read())
assert list(o) == ["split", "users", "HR@1", "HR@3", "HR@60", "NDCG@1",
                   "NDCG@3", "NDCG@60", "MRR", "exclude_history"], list(o)
ranks = [int(l.split("\t")[1]) for l in open(sys.argv[2]).read().split("\n")[1:-1]]
n = len(ranks)
assert o["users"] == n
for k in (1, 3, 60):
    hr = sum(1 for r in ranks if r <= k) / n
    nd = sum(1 / math.log2(r + 1) for r in ranks if r <= k) / n
    assert abs(hr - o["HR@%d" % k]) < 1e-6, (k, hr, o)
    assert abs(nd - o["NDCG@%d" % k]) < 1e-6, (k, nd, o)
assert o["HR@60"] == 1.0
mrr = sum(1 / r for r in ranks) / n
assert abs(mrr - o["MRR"]) < 1e-6, (mrr, o["MRR"])
assert o["HR@1"] == o["NDCG@1"]
' "$T/out" pu.tsv
run "$BIN" eval --model m.bin --data d.txt --k 1,3,60
expect_rc "eval --k table" 0
expect_out "eval --k table: one column per K" "@1       @3      @60"
expect_out "eval --k table: MRR line" "MRR "
expect_out "eval --k table: HR line" "HR "
run "$BIN" eval --model m.bin --data d.txt --k 10 --split valid --exclude-history --json
expect_rc "eval --k --split valid --exclude-history" 0
expect_out "eval --k valid: split and flag kept" '"split":"valid"'
expect_out "eval --k valid: exclude_history" '"exclude_history":true}'
run "$BIN" eval --model m.bin --data d.txt --split valid --exclude-history --json
cp "$T/out" libv.json
run "$BIN" eval --model m.bin --data d.txt --k 5,10,20 --split valid --exclude-history --json
pycheck "--k valid/exclude = the library's" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
lib = json.load(open(sys.argv[2]))
for k in lib:
    assert o[k] == lib[k], (k, o[k], lib[k])
' "$T/out" libv.json

# ------------------------------------------------- --semantic and --cold-max --
run "$BIN" eval --semantic s.npy --data d.txt --json
cp "$T/out" sem.json
run "$BIN" eval --semantic s.npy --data d.txt --json --k 5,10,20 --threads 2
expect_rc "eval --semantic --k" 0
pycheck "eval --semantic --k 5,10,20 = iadsr_semantic_evaluate" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
lib = json.load(open(sys.argv[2]))
for k in lib:
    assert o[k] == lib[k], (k, o[k], lib[k])
assert "MRR" in o
' "$T/out" sem.json
run "$BIN" eval --semantic s.npy --data d.txt --per-user spu.tsv
expect_rc "eval --semantic --per-user" 0
check "eval --semantic --per-user writes the header" sh -c "head -n 1 spu.tsv | grep -qx 'user_id	rank'"

# cold view: the kept users keep their own ids in --per-user
printf '10 1 2 3 4 5\n20 1 2 3 6 5\n30 1 2 7 8 9\n40 1 2 3 10 1\n50 5 2\n60 4\n' >cold.txt
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0 --per-user cpu.tsv --k 5 --json
expect_rc "eval --cold-max --per-user" 0
expect_out "eval --cold-max --k: cold fields kept" '"cold_max":0,"n_users_cold":3,"n_users_all":5}'
check "eval --cold-max --per-user: ids of the cold users" sh -c \
    "test \"\$(cut -f1 cpu.tsv | tr '\n' ' ')\" = 'user_id 10 20 30 '"

# --------------------------------------------------------------- info --json --
run "$BIN" info --model m.bin --json
expect_rc "info --json" 0
cp "$T/out" info.json
pycheck "info --json: one object with the fields of info" '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == "", "not exactly one line"
o = json.loads(lines[0])
for k in ("backbone", "n_items", "dim", "max_seq_len", "n_layers", "n_heads",
          "ffn_dim", "activation", "dropout", "seed", "n_params",
          "memory_bytes", "epochs_trained", "best_valid_ndcg10", "aligner",
          "gate"):
    assert k in o, k
assert o["backbone"] == "sasrec" and o["n_items"] == 60 and o["dim"] == 16
assert o["max_seq_len"] == 10 and o["epochs_trained"] == 2
assert isinstance(o["best_valid_ndcg10"], float)
assert o["aligner"] is False and o["gate"] is False
assert not any(k.startswith("gate_") for k in o)
' "$T/out"
run "$BIN" info --model m.bin
pycheck "info --json agrees with the text" '
import json, sys
o = json.load(open(sys.argv[1]))
txt = dict(l.split(":", 1) for l in open(sys.argv[2]).read().splitlines())
txt = {k.strip(): v.strip() for k, v in txt.items()}
for k in ("n_items", "dim", "max_seq_len", "n_params", "epochs_trained",
          "seed"):
    assert str(o[k]) == txt[k], (k, o[k], txt[k])
assert txt["memory"].startswith(str(o["memory_bytes"]) + " bytes")
assert abs(float(txt["best_valid_ndcg10"]) - o["best_valid_ndcg10"]) < 1e-6
' info.json "$T/out"
run "$BIN" info --model mi.bin --json
expect_rc "info --json of an IADSR checkpoint" 0
pycheck "info --json: aligner and gate with the gate's rule" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["aligner"] is True and o["gate"] is True, o
assert o["gate_theta"] == 0 and abs(o["gate_max_drop"] - 0.3) < 1e-6, o
assert o["gate_protect_last"] is True and isinstance(o["gate_flags"], int)
' "$T/out"
printf 'not a checkpoint\n' >bad.bin
run "$BIN" info --model bad.bin --json
expect_rc "info --json on a non-checkpoint" 1
expect_err "info --json on a non-checkpoint names it" "bad.bin"
expect_no_out "info --json on a non-checkpoint prints nothing"

# ---------------------------------------------------------- recommend --json --
run "$BIN" recommend --model m.bin --data d.txt --k 4 --users 30
expect_rc "recommend" 0
cp "$T/out" rec.txt
run "$BIN" recommend --model m.bin --data d.txt --k 4 --users 30 --json
expect_rc "recommend --json" 0
pycheck "recommend --json: one object per user, the plain output's items" '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
plain = open(sys.argv[2]).read().splitlines()
assert len(objs) == len(plain) == 30
for o, p in zip(objs, plain):
    assert sorted(o) == ["items", "scores", "user"], sorted(o)
    uid, rest = p.split("\t")
    assert o["user"] == int(uid)
    pairs = [x.split(":") for x in rest.split()]
    assert o["items"] == [int(a) for a, _ in pairs], (o, p)
    assert len(o["scores"]) == len(o["items"]) == 4
    assert all(abs(s - float(b)) < 6e-5 for s, (_, b) in zip(o["scores"], pairs))
    assert o["scores"] == sorted(o["scores"], reverse=True)
' "$T/out" rec.txt
run "$BIN" recommend --model m.bin --data d.txt --k 60 --users 3 --json --exclude-history
expect_rc "recommend --json --exclude-history" 0
pycheck "recommend --json --exclude-history: no history item, no padding" '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
seqs = [l.split() for l in open(sys.argv[2]).read().splitlines()[:3]]
for o, s in zip(objs, seqs):
    hist = set(int(x) for x in s[1:])
    assert not hist & set(o["items"])
    assert len(o["items"]) == 60 - len(hist) == len(o["scores"])
    assert all(i >= 1 for i in o["items"])
' "$T/out" d.txt

finish "python3 missing"
