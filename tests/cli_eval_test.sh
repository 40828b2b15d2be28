#!/bin/sh
# Tests of the machine-readable outputs of the iadsr tool: eval --k, MRR and
# --per-user (metrics from the per-user ranks, checked against the
# library's own HR/NDCG), --per-user --vocab, popularity --k and MRR,
# info --json and recommend --json.
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

# ------------------------------------ default output: as before, plus MRR --
run "$BIN" eval --model m.bin --data d.txt --json
expect_rc "eval --json" 0
cp "$T/out" lib.json
pycheck "eval --json: its keys in order, MRR before exclude_history" '
import json, sys
o = json.load(open(sys.argv[1]))
assert list(o) == ["split", "users", "HR@5", "HR@10", "HR@20", "NDCG@5",
    "NDCG@10", "NDCG@20", "MRR", "exclude_history"], list(o)
assert isinstance(o["MRR"], float) and 0 < o["MRR"] <= 1
# every user ranked in the top 5 adds at least 1/5
assert o["MRR"] >= o["HR@5"] / 5
' lib.json
run "$BIN" eval --model m.bin --data d.txt
cp "$T/out" lib.txt
expect_out "eval table: an MRR line" "MRR "
pycheck "eval table: the JSON numbers to 4 decimals, MRR included" '
import json, sys
o = json.load(open(sys.argv[1]))
t = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2]).read().splitlines()[2:]}
assert sorted(t) == ["HR", "MRR", "NDCG"], t
for i, k in enumerate((5, 10, 20)):
    assert t["HR"][i] == "%.4f" % o["HR@%d" % k], (k, t)
    assert t["NDCG"][i] == "%.4f" % o["NDCG@%d" % k], (k, t)
assert t["MRR"] == ["%.4f" % o["MRR"]], t
' lib.json lib.txt
# HR/NDCG without --k = those of --k 5,10,20 (same text, same JSON)
run "$BIN" eval --model m.bin --data d.txt --k 5,10,20
check "eval table = eval --k 5,10,20 table" cmp -s "$T/out" lib.txt
run "$BIN" eval --model m.bin --data d.txt --k 5,10,20 --json
check "eval --json = eval --k 5,10,20 --json" cmp -s "$T/out" lib.json
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
mrr = sum(1 / r for r in ranks) / n
assert abs(mrr - o["MRR"]) < 1e-6, (mrr, o["MRR"])
' d.txt pu.tsv lib.json
cp pu.tsv pu1.tsv
run "$BIN" eval --model m.bin --data d.txt --per-user pu.tsv --threads 2
check "--per-user --threads 2: the same file" cmp -s pu.tsv pu1.tsv
check "--per-user leaves no temporary file" sh -c "! ls pu.tsv.tmp* 2>/dev/null | grep -q ."

# ------------------------------------------------------------- eval --k --
run "$BIN" eval --model m.bin --data d.txt --k 5,10,20 --json
expect_rc "eval --k 5,10,20 --json" 0
cp "$T/out" k.json
pycheck "--k 5,10,20: the keys and numbers of eval without --k" '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == "", "not exactly one line"
o = json.loads(lines[0])
lib = json.load(open(sys.argv[2]))
assert list(o) == list(lib), list(o)
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
expect_rc "eval --semantic --json" 0
cp "$T/out" sem.json
pycheck "eval --semantic --json: the keys of eval, MRR included" '
import json, sys
o = json.load(open(sys.argv[1]))
assert list(o) == ["split", "users", "HR@5", "HR@10", "HR@20", "NDCG@5",
    "NDCG@10", "NDCG@20", "MRR", "exclude_history"], list(o)
' sem.json
run "$BIN" eval --semantic s.npy --data d.txt
expect_out "eval --semantic table: an MRR line" "MRR "
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
run "$BIN" eval --semantic s.npy --data d.txt --per-user spu.tsv --json
expect_rc "eval --semantic --per-user" 0
check "eval --semantic --per-user writes the header" sh -c "head -n 1 spu.tsv | grep -qx 'user_id	rank'"
check "eval --semantic --per-user: the metrics of eval --semantic" cmp -s "$T/out" sem.json
pycheck "eval --semantic: MRR = mean of 1/rank of --per-user" '
import json, sys
o = json.load(open(sys.argv[1]))
ranks = [int(l.split("\t")[1]) for l in open(sys.argv[2]).read().split("\n")[1:-1]]
assert len(ranks) == o["users"]
mrr = sum(1 / r for r in ranks) / len(ranks)
assert abs(mrr - o["MRR"]) < 1e-6, (mrr, o["MRR"])
' sem.json spu.tsv

# cold view: the kept users keep their own ids in --per-user
printf '10 1 2 3 4 5\n20 1 2 3 6 5\n30 1 2 7 8 9\n40 1 2 3 10 1\n50 5 2\n60 4\n' >cold.txt
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0 --per-user cpu.tsv --k 5 --json
expect_rc "eval --cold-max --per-user" 0
expect_out "eval --cold-max --k: cold fields kept" '"cold_max":0,"n_users_cold":3,"n_users_all":5}'
check "eval --cold-max --per-user: ids of the cold users" sh -c \
    "test \"\$(cut -f1 cpu.tsv | tr '\n' ' ')\" = 'user_id 10 20 30 '"
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0 --json --per-user cpu.tsv
expect_rc "eval --cold-max --json" 0
pycheck "eval --cold-max --json: MRR before the cold fields, from the ranks" '
import json, sys
o = json.load(open(sys.argv[1]))
assert list(o) == ["split", "users", "HR@5", "HR@10", "HR@20", "NDCG@5",
    "NDCG@10", "NDCG@20", "MRR", "exclude_history", "cold_max",
    "n_users_cold", "n_users_all"], list(o)
ranks = [int(l.split("\t")[1]) for l in open(sys.argv[2]).read().split("\n")[1:-1]]
assert len(ranks) == o["users"] == 3
assert abs(sum(1 / r for r in ranks) / 3 - o["MRR"]) < 1e-6, (ranks, o)
' "$T/out" cpu.tsv
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0
expect_out "eval --cold-max table: the cold view" "cold view: 3 of 5 users"
expect_out "eval --cold-max table: an MRR line" "MRR "

# ------------------------------------------------------ --per-user --vocab --
# string user ids through `iadsr import`: one with a space, one with a ':'
awk 'BEGIN {
        print "user_id,item_id,timestamp"
        for (u = 0; u < 40; u++)
            for (k = 0; k < 6; k++) {
                name = "u-" u
                if (u == 3) name = "\"user three\""
                if (u == 7) name = "a:b"
                printf "%s,sku-%d,%d\n", name, (u * 7 + k * 3) % 15, 1000 + k * 50
            }
    }' >log.csv
run "$BIN" import --in log.csv --out vs.txt --vocab v.tsv --quiet
expect_rc "import of a string-id log" 0
run "$BIN" train --data vs.txt --out vm.bin --epochs 1 --dim 8 --max-len 6 --seed 3 --quiet
expect_rc "train on the imported file" 0
run "$BIN" eval --model vm.bin --data vs.txt --per-user vdense.tsv --json
expect_rc "eval --per-user without --vocab" 0
cp "$T/out" vdense.json
run "$BIN" eval --model vm.bin --data vs.txt --per-user vext.tsv --vocab v.tsv --json
expect_rc "eval --per-user --vocab" 0
check "eval --per-user --vocab: the same metrics" cmp -s "$T/out" vdense.json
pycheck "eval --per-user --vocab: the external ids, the same ranks" '
import sys
voc = {}
for l in open(sys.argv[1]).read().split("\n")[1:]:
    if l:
        kind, i, ext = l.split("\t")
        if kind == "user":
            voc[i] = ext
dense = open(sys.argv[2]).read().split("\n")
ext = open(sys.argv[3]).read().split("\n")
assert ext[0] == "user_id\trank" and ext[-1] == "", ext[:2]
assert len(dense) == len(ext) == 42, len(ext)
for a, b in zip(dense[1:-1], ext[1:-1]):
    ua, ra = a.split("\t")
    ub, rb = b.split("\t")
    assert voc[ua] == ub and ra == rb, (a, b)
assert "user three" in [l.split("\t")[0] for l in ext[1:-1]]
assert "a:b" in [l.split("\t")[0] for l in ext[1:-1]]
' v.tsv vdense.tsv vext.tsv
check "eval --per-user --vocab names a user with a space" grep -q "$(printf '^user three	[0-9]')" vext.tsv
# a user missing from the vocabulary: exit 1 naming it, nothing written
MISS=$(awk -F '\t' '$1 == "user" && $3 == "a:b" { print $2 }' v.tsv)
grep -v "$(printf '^user	%s	' "$MISS")" v.tsv >v_miss.tsv
cp vext.tsv vext_before.tsv
run "$BIN" eval --model vm.bin --data vs.txt --per-user vext.tsv --vocab v_miss.tsv
expect_rc "eval --vocab missing a user" 1
expect_err "eval --vocab missing a user names it" "v_miss.tsv: no user id $MISS (a user of vs.txt)"
expect_no_out "eval --vocab missing a user prints no metrics"
check "eval --vocab missing a user leaves --per-user as it was" cmp -s vext.tsv vext_before.tsv
# synth ids start at 0, which no vocabulary names
run "$BIN" eval --model m.bin --data d.txt --per-user pu0.tsv --vocab v.tsv
expect_rc "eval --vocab of other data" 1
expect_err "eval --vocab of other data names the user" "no user id 0"
check "eval --vocab of other data writes no --per-user" test ! -e pu0.tsv
usage_case "--vocab without --per-user" eval --model vm.bin --data vs.txt --vocab v.tsv
expect_err "--vocab without --per-user says so" "--vocab needs --per-user"
run "$BIN" eval --model vm.bin --data vs.txt --per-user vx.tsv --vocab missing.tsv
expect_rc "eval --vocab with a missing file" 1
expect_err "eval --vocab with a missing file names it" "missing.tsv"
usage_case "--per-user over the vocabulary" eval --model vm.bin --data vs.txt --per-user v.tsv --vocab v.tsv
# --cold-max: the kept users' external ids (14 of 40 at 10)
run "$BIN" eval --model vm.bin --data vs.txt --per-user vcold.tsv --vocab v.tsv --cold-max 10
expect_rc "eval --cold-max --per-user --vocab" 0
pycheck "eval --cold-max --per-user --vocab: lines of the full file" '
import sys
full = set(open(sys.argv[1]).read().split("\n")[1:-1])
cold = open(sys.argv[2]).read().split("\n")[1:-1]
assert 0 < len(cold) < len(full) and set(cold) <= full, cold[:3]
' vext.tsv vcold.tsv

# ------------------------------------------------------- popularity --k, MRR --
run "$BIN" popularity --help
expect_out "popularity --help documents --k" "--k LIST"
expect_out "popularity --help documents MRR" "MRR"
usage_case "popularity --k 0" popularity --data d.txt --k 0
usage_case "popularity --k repeated" popularity --data d.txt --k 5,5
usage_case "popularity --k above n_items" popularity --data d.txt --k 10,61
expect_err "popularity --k above n_items names both" "--k 61 exceeds the 60 items of d.txt"
run "$BIN" popularity --data d.txt --json
expect_rc "popularity --json" 0
cp "$T/out" pop.json
run "$BIN" popularity --data d.txt --json --k 5,10,20
check "popularity --k 5,10,20 = popularity" cmp -s "$T/out" pop.json
run "$BIN" popularity --data d.txt
cp "$T/out" pop.txt
expect_out "popularity table: an MRR line" "MRR "
run "$BIN" popularity --data d.txt --k 5,10,20
check "popularity --k 5,10,20 table = popularity table" cmp -s "$T/out" pop.txt
# counts over the training parts (all but the last two items): item 1 -> 3,
# item 2 -> 2, item 3 -> 1; test targets 3, 1, 2 rank 2, 0, 1
printf '0 1 2 9 3\n1 1 2 9 1\n2 1 3 9 2\n' >popk.txt
run "$BIN" popularity --data popk.txt --json --k 1,2,9
expect_rc "popularity --k 1,2,9 --json" 0
pycheck "popularity --k: keys in order, known answer, MRR" '
import json, math, sys
o = json.loads(open(sys.argv[1]).read())
assert list(o) == ["split", "users", "HR@1", "HR@2", "HR@9", "NDCG@1",
    "NDCG@2", "NDCG@9", "MRR", "exclude_history"], list(o)
assert o["users"] == 3
assert abs(o["HR@1"] - 1 / 3) < 1e-6 and abs(o["HR@2"] - 2 / 3) < 1e-6
assert o["HR@9"] == 1.0 and abs(o["NDCG@1"] - 1 / 3) < 1e-6
assert abs(o["NDCG@2"] - (1 + 1 / math.log2(3)) / 3) < 1e-6, o
assert abs(o["MRR"] - (1 + 1 / 2 + 1 / 3) / 3) < 1e-6, o
' "$T/out"
run "$BIN" popularity --data popk.txt --k 1,2,9
expect_out "popularity --k table: one column per K" "@1       @2       @9"
expect_out "popularity --k table: MRR" "MRR      0.6111"
# history excluded: user 0 (target 3) loses items 1 and 2 -> rank 0
run "$BIN" popularity --data popk.txt --json --exclude-history --k 1
pycheck "popularity --k --exclude-history: known answer" '
import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["HR@1"] == 1.0 and o["MRR"] == 1.0 and o["exclude_history"] is True, o
' "$T/out"

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
