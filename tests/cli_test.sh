#!/bin/sh
# Tests of the iadsr command-line tool (and of the synthetic data generator).
# Usage (from the repository root):  sh tests/cli_test.sh bin/iadsr
# Scratch files go under ${IADSR_TEST_TMPDIR:-/tmp}. Set IADSR_CLI_TEST_SLOW=1
# to also check that a trained model clearly beats the popularity baseline
# on the default synthetic dataset (takes a few minutes).
# SPDX-License-Identifier: MIT

set -u

NAME=cli_test
. "$(dirname "$0")/cli_harness.sh"

HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then HAVE_PY=1; fi

expect_fail() {
    if [ "$rc" -ne 0 ]; then ok; else bad "$1: exit 0, expected failure"; fi
}

# ---------------------------------------------------------------- basics --
run "$BIN" --version
expect_rc "--version" 0
expect_out "--version prints the version" "iadsr"
expect_out "--version prints the build info" "build:"
run "$BIN" --help
expect_rc "--help" 0
expect_out "--help lists commands" "recommend"
for c in synth train eval recommend info popularity; do
    run "$BIN" "$c" --help
    expect_rc "$c --help" 0
    expect_out "$c --help" "Usage: iadsr $c"
done
run "$BIN" help train
expect_rc "help train" 0
expect_out "help train" "Usage: iadsr train"

# ------------------------------------------------------------ usage errors --
usage_case() { # DESC ARGS...: expects exit 2 and no stdout
    d=$1
    shift
    run "$BIN" "$@"
    expect_rc "usage: $d" 2
    expect_no_out "usage: $d"
}
printf '0 1 2 3\n1 2 3 4\n' >tiny.txt
usage_case "no arguments"
usage_case "unknown command" frobnicate
usage_case "unknown flag" train --data tiny.txt --out m.bin --bogus 1
usage_case "missing --out" train --data tiny.txt
usage_case "missing --data" train --out m.bin
usage_case "missing flag value" train --data tiny.txt --out
usage_case "positional argument" train tiny.txt --out m.bin
usage_case "non-numeric --epochs" train --data tiny.txt --out m.bin --epochs 1x
usage_case "empty --epochs" train --data tiny.txt --out m.bin --epochs ''
usage_case "--lr that underflows" train --data tiny.txt --out m.bin --lr 1e-320
expect_err "--lr that underflows says so" "underflows"
usage_case "--lr below float's range" train --data tiny.txt --out m.bin --lr 1e-40
expect_err "--lr below float's range says so" "underflows"
usage_case "--theta that overflows" denoise --model m.bin --data tiny.txt --out o.txt --theta 1e400
expect_err "--theta that overflows says so" "overflows"
usage_case "--rate that underflows" inject-noise --data tiny.txt --rate 1e-320 --seed 1 --out o.txt --labels o.lab
expect_err "--rate that underflows says so" "underflows"
usage_case "--lr nan" train --data tiny.txt --out m.bin --lr nan
expect_err "--lr nan is not a number" "not a finite number"
usage_case "blank-prefixed --epochs" train --data tiny.txt --out m.bin --epochs ' 3'
usage_case "zero --epochs" train --data tiny.txt --out m.bin --epochs 0
usage_case "huge --dim" train --data tiny.txt --out m.bin --dim 99999999999999999999
usage_case "--dropout 1.5" train --data tiny.txt --out m.bin --dropout 1.5
usage_case "--dropout nan" train --data tiny.txt --out m.bin --dropout nan
usage_case "--lr 0" train --data tiny.txt --out m.bin --lr 0
usage_case "--label-smoothing 1" train --data tiny.txt --out m.bin --label-smoothing 1
usage_case "negative --history-penalty" train --data tiny.txt --out m.bin --history-penalty -0.5
usage_case "--heads not dividing --dim" train --data tiny.txt --out m.bin --dim 10 --heads 3
usage_case "unknown backbone" train --data tiny.txt --out m.bin --backbone lstm
usage_case "negative --users" synth --out s.txt --users -5
usage_case "negative --seed" synth --out s.txt --seed -1
usage_case "--min-len > --max-len" synth --out s.txt --min-len 9 --max-len 3
usage_case "--topics > --items" synth --out s.txt --items 5 --topics 6
usage_case "bad --split" eval --model m.bin --data tiny.txt --split train
usage_case "flag with a value" eval --model m.bin --data tiny.txt --json=1
usage_case "--k 0" recommend --model m.bin --data tiny.txt --k 0
usage_case "missing --k" recommend --model m.bin --data tiny.txt
usage_case "--threads 0" eval --model m.bin --data tiny.txt --threads 0
usage_case "info without --model" info
check "usage errors leave no synth output" test ! -e s.txt

# ------------------------------------------------------------- generator --
run "$BIN" synth --out a1.txt --seed 7
expect_rc "synth default params" 0
run "$BIN" synth --out a2.txt --seed 7 --quiet
expect_rc "synth same seed" 0
check "synth: same seed gives identical files" cmp -s a1.txt a2.txt
run "$BIN" synth --out a3.txt --seed 8 --quiet
check "synth: different seed gives a different file" sh -c '! cmp -s a1.txt a3.txt'
check "synth: no temporary files left" sh -c '! ls | grep -F .tmp. >/dev/null'
check "synth: 3000 users by default" test "$(wc -l <a1.txt | tr -d ' ')" -eq 3000
# user ids 0..N-1 in order, lengths in [min,max], items in 1..M
synth_shape() { # FILE USERS ITEMS MIN MAX
    awk -v n="$2" -v m="$3" -v a="$4" -v b="$5" '
        { if ($1 != NR - 1) exit 1
          if (NF - 1 < a || NF - 1 > b) exit 1
          for (i = 2; i <= NF; i++) if ($i !~ /^[0-9]+$/ || $i < 1 || $i > m) exit 1 }
        END { if (NR != n) exit 1 }' "$1"
}
check "synth: default shape (3000 users, 600 items, len 5..30)" synth_shape a1.txt 3000 600 5 30
run "$BIN" synth --out b.txt --users 50 --items 40 --topics 4 --min-len 3 --max-len 6 --seed 3 --quiet
expect_rc "synth custom params" 0
check "synth: custom shape" synth_shape b.txt 50 40 3 6
# every item id is used somewhere in a large enough sample (noise is uniform)
check "synth: all items occur" sh -c "awk '{for(i=2;i<=NF;i++) s[\$i]=1} END{n=0; for(k in s) n++; exit !(n==600)}' a1.txt"
# chain structure: the most frequent successor of an item explains a large
# share of transitions (p_follow = 0.55 by default)
check "synth: sequences follow item chains" sh -c "awk '
    { for (i = 3; i <= NF; i++) { c[\$(i-1) \" \" \$i]++; tot[\$(i-1)]++ } }
    END { for (k in c) { split(k, p, \" \"); if (c[k] > best[p[1]]) best[p[1]] = c[k] }
          s = 0; t = 0; for (x in tot) { s += best[x]; t += tot[x] }
          exit !(s / t > 0.45) }' a1.txt"
# golden checksum: the same seed gives the same bytes on every machine
run "$BIN" synth --out g.txt --users 20 --items 30 --topics 3 --seed 42 --quiet
GOLD=$(cksum <g.txt | awk '{print $1 " " $2}')
GOLD_EXPECTED="2408403827 931"
if [ "$GOLD" = "$GOLD_EXPECTED" ]; then ok; else bad "synth: golden checksum $GOLD, expected $GOLD_EXPECTED"; fi
# --p-popular: one global ranking shared by all users. Its top item is in
# most users' histories (without it, the busiest item reaches few users).
top_user_share() { # FILE: share of users holding the most widespread item
    awk '{ delete seen; for (i = 2; i <= NF; i++) if (!seen[$i]++) n[$i]++; u++ }
         END { m = 0; for (k in n) if (n[k] > m) m = n[k]; printf "%.3f\n", m / u }' "$1"
}
run "$BIN" synth --out pop.txt --users 300 --items 400 --min-len 40 --max-len 60 --p-follow 0.4 --p-topic 0.2 --p-popular 0.3 --seed 5 --quiet
expect_rc "synth --p-popular" 0
run "$BIN" synth --out nopop.txt --users 300 --items 400 --min-len 40 --max-len 60 --seed 5 --quiet
check "synth --p-popular: the top item reaches most users" awk -v s="$(top_user_share pop.txt)" 'BEGIN { exit !(s > 0.8) }'
check "synth without --p-popular: the top item reaches few users" awk -v s="$(top_user_share nopop.txt)" 'BEGIN { exit !(s < 0.5) }'
usage_case "--p-follow + --p-topic + --p-popular > 1" synth --out s.txt --p-popular 0.2
run "$BIN" synth --out /nonexistent-dir-iadsr/x.txt --quiet
expect_rc "synth into a missing directory" 1
expect_err "synth into a missing directory names the file" "/nonexistent-dir-iadsr/x.txt"
mkdir adir
run "$BIN" synth --out adir --quiet
expect_rc "synth onto a directory" 1

# --------------------------------------------------------- bad data files --
printf '0 1 2 3\n1 4 x 5\n' >bad_token.txt
printf '0 1 2 3\n1 4 5 6\n2 7 0 8\n' >bad_zero.txt
: >empty.txt
bad_data() { # FILE LINE(or -) CMD...
    f=$1
    l=$2
    shift 2
    run "$@"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then ok; else bad "bad data $f ($1 $2): exit $rc, expected 1"; fi
    expect_err "bad data $f: message names the file" "$f"
    if [ "$l" != - ]; then expect_err "bad data $f: message names the line" "$f:$l"; fi
    expect_no_out "bad data $f"
}
for c in train popularity; do
    if [ "$c" = train ]; then extra="--out m_bad.bin --epochs 1"; else extra=""; fi
    # shellcheck disable=SC2086
    bad_data bad_token.txt 2 "$BIN" $c --data bad_token.txt $extra
    # shellcheck disable=SC2086
    bad_data bad_zero.txt 3 "$BIN" $c --data bad_zero.txt $extra
    # shellcheck disable=SC2086
    bad_data empty.txt - "$BIN" $c --data empty.txt $extra
    # shellcheck disable=SC2086
    bad_data missing.txt - "$BIN" $c --data missing.txt $extra
    # shellcheck disable=SC2086
    bad_data adir - "$BIN" $c --data adir $extra
done
check "failed train wrote no model" test ! -e m_bad.bin
run "$BIN" train --data tiny.txt --out /nonexistent-dir-iadsr/m.bin
expect_rc "train into a missing directory" 1
expect_err "train into a missing directory names it" "/nonexistent-dir-iadsr"
printf 'not a checkpoint\n' >notmodel.bin
run "$BIN" info --model notmodel.bin
expect_rc "info on a non-checkpoint" 1
expect_err "info on a non-checkpoint names the file" "notmodel.bin"
run "$BIN" eval --model missing.bin --data tiny.txt
expect_rc "eval with a missing model" 1
expect_err "eval with a missing model names it" "missing.bin"
: >empty.bin
run "$BIN" recommend --model empty.bin --data tiny.txt --k 1
expect_rc "recommend with an empty model file" 1

# ------------------------------------------------------------ end to end --
run "$BIN" synth --out d.txt --users 300 --items 80 --seed 11 --quiet
expect_rc "e2e: synth" 0
run "$BIN" train --data d.txt --out m.bin --epochs 3 --dim 16 --max-len 10 --seed 5
expect_rc "e2e: train" 0
check "e2e: model written" test -s m.bin
expect_err "e2e: progress line for epoch 1" "epoch 1/3  loss "
expect_err "e2e: progress line for epoch 3" "epoch 3/3  loss "
expect_err "e2e: progress shows validation" "valid HR@10 "
expect_err "e2e: progress shows the ETA" "ETA "
expect_no_out "e2e: train prints nothing on stdout"
check "e2e: no temporary files left by the save" sh -c '! ls | grep -v "^m.bin$" | grep -F m.bin >/dev/null'
run "$BIN" train --data d.txt --out m2.bin --epochs 3 --dim 16 --max-len 10 --seed 5 --quiet
check "e2e: same seed gives an identical checkpoint (1 BLAS thread)" cmp -s m.bin m2.bin
rm -f m2.bin
run "$BIN" train --data d.txt --out m3.bin --epochs 3 --dim 16 --max-len 10 --seed 5 --quiet \
    --label-smoothing 0.1 --history-penalty 2
expect_rc "e2e: train --label-smoothing --history-penalty" 0
check "e2e: the two training options change the model" sh -c '! cmp -s m.bin m3.bin'
rm -f m3.bin
run "$BIN" train --data d.txt --out mq.bin --epochs 1 --dim 8 --heads 1 --layers 1 --max-len 5 --quiet
expect_rc "e2e: train --quiet" 0
check "e2e: --quiet has no epoch lines" sh -c "! grep -F 'epoch 1/1' '$T/err'"

run "$BIN" info --model m.bin
expect_rc "e2e: info" 0
expect_out "e2e: info n_params" "n_params:"
expect_out "e2e: info dim" "dim:                16"
expect_out "e2e: info max_seq_len" "max_seq_len:        10"
expect_out "e2e: info epochs" "epochs_trained:"
expect_out "e2e: info best NDCG" "best_valid_ndcg10:"

json_check() { # FILE SPLIT EXCL(true/false)
    if [ "$HAVE_PY" -eq 1 ]; then
        python3 -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == "", "not exactly one line"
o = json.loads(lines[0])
assert isinstance(o, dict)
need = ["split", "users", "HR@5", "HR@10", "HR@20",
        "NDCG@5", "NDCG@10", "NDCG@20", "MRR", "exclude_history"]
assert list(o) == need, list(o)
assert o["split"] == sys.argv[2]
assert o["exclude_history"] is (sys.argv[3] == "true")
assert isinstance(o["users"], int) and o["users"] > 0
for k in need[2:9]:
    assert isinstance(o[k], float) and 0.0 <= o[k] <= 1.0, k
assert o["HR@5"] <= o["HR@10"] <= o["HR@20"]
assert o["NDCG@5"] <= o["NDCG@10"] <= o["NDCG@20"]
' "$1" "$2" "$3"
    else
        [ "$(wc -l <"$1" | tr -d ' ')" -eq 1 ] || return 1
        for k in '"split":"'"$2"'"' '"users":' '"HR@5":' '"HR@10":' '"HR@20":' \
            '"NDCG@5":' '"NDCG@10":' '"NDCG@20":' '"MRR":' '"exclude_history":'"$3"; do
            grep -F -e "$k" "$1" >/dev/null || return 1
        done
        grep '^{.*}$' "$1" >/dev/null
    fi
}
run "$BIN" eval --model m.bin --data d.txt --json
expect_rc "e2e: eval --json" 0
check "e2e: eval --json is one JSON object with all keys" json_check "$T/out" test false
cp "$T/out" eval1.json
run "$BIN" eval --model m.bin --data d.txt --json --threads 2
check "e2e: eval --threads 2 gives the same metrics" cmp -s "$T/out" eval1.json
run "$BIN" eval --model m.bin --data d.txt --json --split valid --exclude-history
expect_rc "e2e: eval --split valid --exclude-history" 0
check "e2e: eval valid/exclude JSON" json_check "$T/out" valid true
run "$BIN" eval --model m.bin --data d.txt
expect_rc "e2e: eval table" 0
expect_out "e2e: eval table HR" "HR"
expect_out "e2e: eval table NDCG" "NDCG"
expect_out "e2e: eval table users" "users: 300"
# eval --cold-max: hand-made data, training parts = all but the last two.
# Counts in cold.txt: 1:4 2:4 3:3 7:1. Test targets: users 1-3 -> 5, 5, 9
# (count 0), 4 -> 1 and 5 -> 2 (count 4); user 6 has no target.
printf '1 1 2 3 4 5\n2 1 2 3 6 5\n3 1 2 7 8 9\n4 1 2 3 10 1\n5 5 2\n6 4\n' >cold.txt
# same users; counts 5:3, 1:2, 2:2, 3:2, 9:2: the cold users at N=2 are 3-5
printf '1 5 5 5 4 5\n2 1 2 3 6 5\n3 1 2 7 8 9\n4 9 9 3 10 1\n5 5 2\n6 4\n' >cold_ref.txt
sed -n 1,3p cold.txt >cold_a.txt
sed -n 3,5p cold.txt >cold_b.txt
head -n 5 cold_ref.txt >cold_ref5.txt
# strip the cold fields: what remains must equal evaluating the subset file
cold_strip() { sed 's/,"cold_max":.*}$/}/' "$T/out" >"$1"; }
usage_case "eval --cold-max -1" eval --model m.bin --data cold.txt --cold-max -1
usage_case "eval --cold-ref without --cold-max" eval --model m.bin --data cold.txt --cold-ref cold_ref.txt
usage_case "eval --cold-ref without a value" eval --model m.bin --data cold.txt --cold-max 0 --cold-ref
usage_case "eval --cold-ref with another user count" eval --model m.bin --data cold.txt --cold-max 0 --cold-ref cold_ref5.txt
expect_err "eval --cold-ref user mismatch gives both counts" "cold_ref5.txt has 5 users, cold.txt has 6"
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0 --cold-ref missing.txt
expect_rc "eval --cold-ref with a missing file" 1
expect_err "eval --cold-ref with a missing file names it" "missing.txt"
run "$BIN" eval --model m.bin --data cold.txt --cold-max 3 --json
expect_rc "eval --cold-max 3" 0
expect_out "eval --cold-max 3 keeps the 3 cold users" '"cold_max":3,"n_users_cold":3,"n_users_all":5}'
cold_strip cold3.json
run "$BIN" eval --model m.bin --data cold_a.txt --json
check "eval --cold-max 3 = eval of just those users" cmp -s "$T/out" cold3.json
run "$BIN" eval --model m.bin --data cold.txt --cold-max 4 --json
expect_out "eval --cold-max 4 keeps every user with a target" '"users":5,'
run "$BIN" eval --model m.bin --data cold.txt --cold-max 2 --cold-ref cold_ref.txt --json --exclude-history
expect_out "eval --cold-ref changes the counts" '"n_users_cold":3,'
cold_strip coldr.json
run "$BIN" eval --model m.bin --data cold_b.txt --json --exclude-history
check "eval --cold-ref selects users 3-5" cmp -s "$T/out" coldr.json
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0 --split valid --json
expect_out "eval --cold-max --split valid: 4 targets 4, 6, 8, 10, all cold" '"users":4,'
expect_out "eval --cold-max --split valid: 4 users with a target" '"n_users_all":4}'
run "$BIN" eval --model m.bin --data cold.txt --cold-max 0
expect_rc "eval --cold-max text" 0
expect_out "eval --cold-max text says how many users" "cold view: 3 of 5 users"
expect_out "eval --cold-max text has the metrics" "users: 3"
run "$BIN" eval --model m.bin --data cold.txt --cold-max 1 --cold-ref cold_ref.txt
expect_rc "eval --cold-max with no cold user" 1
expect_err "eval --cold-max with no cold user says so" "no user's test target has at most 1"
expect_no_out "eval --cold-max with no cold user prints no metrics"
run "$BIN" popularity --data d.txt --json
expect_rc "e2e: popularity --json" 0
check "e2e: popularity JSON" json_check "$T/out" test false
run "$BIN" popularity --data d.txt --json --exclude-history --split valid
check "e2e: popularity valid/exclude JSON" json_check "$T/out" valid true
run "$BIN" popularity --data d.txt
expect_rc "e2e: popularity table" 0
expect_out "e2e: popularity table" "NDCG"

# popularity baseline on a hand-checked file: counts over the training parts
# (all but the last two items): item 1 -> 3, item 2 -> 2, item 3 -> 1.
printf '0 1 2 9 3\n1 1 2 9 1\n2 1 3 9 2\n' >pop.txt
run "$BIN" popularity --data pop.txt --json
# targets 3 (rank 2), 1 (rank 0), 2 (rank 1): HR@5 = 1, NDCG@5 = (1/2 + 1 + 1/log2(3)) / 3
if [ "$HAVE_PY" -eq 1 ]; then
    check "popularity: known answer" python3 -c '
import json, math, sys
o = json.load(open(sys.argv[1]))
want = (1 / math.log2(4) + 1 + 1 / math.log2(3)) / 3
assert o["users"] == 3 and o["HR@5"] == 1.0
assert abs(o["NDCG@5"] - want) < 1e-6, (o["NDCG@5"], want)
' "$T/out"
else
    expect_out "popularity: known answer" '"NDCG@5":0.710309'
fi
run "$BIN" popularity --data pop.txt --json --exclude-history
# with history excluded: user 0 target 3, items 1 and 2 are history -> rank 0
if [ "$HAVE_PY" -eq 1 ]; then
    check "popularity: known answer with --exclude-history" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["users"] == 3 and o["NDCG@5"] == 1.0 and o["HR@5"] == 1.0, o
' "$T/out"
else
    expect_out "popularity: known answer with --exclude-history" '"NDCG@5":1.000000'
fi

rec_check() { # OUTFILE DATAFILE K USERS EXCL(0/1)
    awk -v k="$3" -v nu="$4" -v excl="$5" '
        NR == FNR { for (i = 2; i <= NF; i++) seen[$1 " " $i] = 1; uid[FNR] = $1; next }
        {
            n++
            if (index($0, "\t") == 0) { print "no tab: " $0; exit 1 }
            if ($1 != uid[n]) { print "user order: " $1; exit 1 }
            if (NF - 1 != k) { print "not k items: " $0; exit 1 }
            prev = ""
            for (i = 2; i <= NF; i++) {
                if ($i !~ /^[0-9]+:-?[0-9]+\.[0-9][0-9][0-9][0-9]$/) { print "token: " $i; exit 1 }
                split($i, p, ":")
                if (excl && ((($1 " " p[1]) in seen))) { print "history item: " $1 " " p[1]; exit 1 }
                if (prev != "" && p[2] + 0 > prev + 0) { print "not sorted: " $0; exit 1 }
                if (dup[n " " p[1]]++) { print "duplicate: " $0; exit 1 }
                prev = p[2]
            }
        }
        END { if (n != nu) { print "users: " n; exit 1 } }' "$2" "$1"
}
run "$BIN" recommend --model m.bin --data d.txt --k 5
expect_rc "e2e: recommend" 0
check "e2e: recommend prints k ids per line for every user" rec_check "$T/out" d.txt 5 300 0
cp "$T/out" rec1.txt
run "$BIN" recommend --model m.bin --data d.txt --k 5
check "e2e: recommend is deterministic" cmp -s "$T/out" rec1.txt
run "$BIN" recommend --model m.bin --data d.txt --k 5 --exclude-history
expect_rc "e2e: recommend --exclude-history" 0
check "e2e: --exclude-history never returns a history item" rec_check "$T/out" d.txt 5 300 1
run "$BIN" recommend --model m.bin --data d.txt --k 20 --exclude-history --users 7
expect_rc "e2e: recommend --users 7" 0
check "e2e: --users 7 prints 7 users, none from their history" rec_check "$T/out" d.txt 20 7 1
run "$BIN" recommend --model m.bin --data d.txt --k 81
expect_rc "e2e: recommend --k above n_items" 2
printf '0 1 2 3\n1 2 81 4\n' >big_id.txt
run "$BIN" eval --model m.bin --data big_id.txt
expect_rc "e2e: eval with an item id above the model's n_items" 1
expect_err "e2e: eval with an id above n_items names file and line" "big_id.txt:2"

# ----------------------------------------------------- interrupt (SIGINT) --
# sigint_after_epoch1 PID ERRFILE: once ERRFILE shows the first epoch (or
# the process is gone, or 120 s passed), send SIGINT to PID
sigint_after_epoch1() {
    i=0
    while [ $i -lt 120 ] && ! grep -F 'epoch 1/' "$2" >/dev/null 2>&1 && kill -0 "$1" 2>/dev/null; do
        sleep 1
        i=$((i + 1))
    done
    kill -INT "$1" 2>/dev/null
}
"$BIN" train --data d.txt --out mi.bin --epochs 100000 --patience 0 --dim 8 --heads 1 \
    --layers 1 --max-len 5 >"$T/int_out" 2>"$T/int_err" &
pid=$!
sigint_after_epoch1 $pid "$T/int_err"
i=0
while [ $i -lt 120 ] && kill -0 $pid 2>/dev/null; do
    sleep 1
    i=$((i + 1))
done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid 2>/dev/null
    bad "SIGINT: train did not stop within 120 s"
fi
wait $pid
irc=$?
if [ "$irc" -eq 130 ]; then ok; else bad "SIGINT: train exit $irc, expected 130; stderr: $(tail -c 300 "$T/int_err")"; fi
check "SIGINT: best model saved" test -s mi.bin
check "SIGINT: note printed" grep -F "interrupted" "$T/int_err"
run "$BIN" info --model mi.bin
expect_rc "SIGINT: saved model loads" 0

# ---------------------------------------- optional: model beats popularity --
if [ "${IADSR_CLI_TEST_SLOW:-0}" = 1 ]; then
    run "$BIN" synth --out big.txt --seed 1 --quiet
    run "$BIN" train --data big.txt --out big.bin --epochs 15 --dim 32 --max-len 20 \
        --dropout 0.2 --lr 0.003 --patience 5 --quiet
    expect_rc "slow: train on the default synthetic data" 0
    run "$BIN" eval --model big.bin --data big.txt --json
    cp "$T/out" big_model.json
    run "$BIN" popularity --data big.txt --json
    cp "$T/out" big_pop.json
    if [ "$HAVE_PY" -eq 1 ]; then
        check "slow: model NDCG@10 >= 2 x popularity" python3 -c '
import json, sys
m = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
print("model", m["NDCG@10"], "popularity", p["NDCG@10"])
assert m["NDCG@10"] >= 2 * p["NDCG@10"]
' big_model.json big_pop.json
    fi
fi

# ------------------------------------------------------------- embed-text --
run "$BIN" embed-text --help
expect_rc "embed-text --help" 0
expect_out "embed-text --help" "Usage: iadsr embed-text"
printf 'red 1 0 0 0\ngreen 0 1 0 0\nblue 0 0 1 0\nlarge 0 0 0 1\nsmall 0 0 0 -1\nzed 1 1 1 1\n' >vecs.txt
printf '6 4\nred 1 0 0 0\ngreen 0 1 0 0\nblue 0 0 1 0\nlarge 0 0 0 1\nsmall 0 0 0 -1\nzed 1 1 1 1\n' >vecs_w2v.txt
# ids in any order; item 4 is absent, item 5 has an empty title, item 6's
# title has no known word
printf 'item_id\tasin\ttitle\tbrand\n3\tB3\tRed Large\tAcme\n1\tB1\tGreen small\tAcme\n5\tB5\t\tAcme\n2\tB2\tBLUE, large!\tZed\n6\tB6\tpurple\tZed\n' >items.tsv
# npy_rows FILE ROWS COLS NONZERO(comma list of row ids): shape, dtype, row 0
# and every row not listed all zero, the listed rows non-zero and finite
npy_rows() {
    if [ "$HAVE_PY" -eq 1 ]; then
        python3 -c '
import ast, math, struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:6] == b"\x93NUMPY" and b[6] == 1, "magic/version"
hl = struct.unpack("<H", b[8:10])[0]
h = ast.literal_eval(b[10:10 + hl].decode("latin1"))
n, d = int(sys.argv[2]), int(sys.argv[3])
assert h == {"descr": "<f4", "fortran_order": False, "shape": (n, d)}, h
assert (10 + hl) % 64 == 0 and len(b) == 10 + hl + 4 * n * d, "size"
v = struct.unpack("<%df" % (n * d), b[10 + hl:])
nz = set(int(x) for x in sys.argv[4].split(",") if x)
for i in range(n):
    row = v[i * d:(i + 1) * d]
    assert all(math.isfinite(x) for x in row), ("non-finite", i)
    assert any(x != 0 for x in row) == (i in nz), ("row", i, row)
' "$@"
    else
        [ "$(od -An -c -N 6 "$1" | tr -d ' ')" = '223NUMPY' ] &&
            [ "$(wc -c <"$1" | tr -d ' ')" -eq $((128 + 4 * $2 * $3)) ]
    fi
}
run "$BIN" embed-text --items items.tsv --text-col title --vectors vecs.txt --out e1.npy
expect_rc "embed-text" 0
expect_no_out "embed-text prints nothing on stdout"
check "embed-text: 7 x 4 .npy, rows 1-3 non-zero, 0 and 4-6 zero" npy_rows e1.npy 7 4 1,2,3
expect_err "embed-text: summary counts items" "6 items (5 lines, 4 with text)"
expect_err "embed-text: summary counts non-zero rows" "3 items with a non-zero vector"
expect_err "embed-text: summary gives token coverage" "tokens known 85.71% (6 of 7)"
expect_err "embed-text: summary gives the vocabulary" "vocabulary 6 words"
run "$BIN" embed-text --items items.tsv --text-col title --vectors vecs_w2v.txt --out e2.npy
check "embed-text: word2vec header gives the same matrix" cmp -s e1.npy e2.npy
run "$BIN" embed-text --items items.tsv --text-col title,brand --vectors vecs.txt --out e3.npy
expect_rc "embed-text with two text columns" 0
check "embed-text: two columns joined (item 6 gets its brand)" npy_rows e3.npy 7 4 1,2,3,6
run "$BIN" embed-text --items items.tsv --text-col title --vectors vecs.txt --out e4.npy --no-pc --sif-a 0.5
expect_rc "embed-text --no-pc --sif-a" 0
expect_err "embed-text --no-pc says so" "--no-pc"
if [ "$HAVE_PY" -eq 1 ]; then
    # 7 title tokens: red 1, large 2, green 1, small 1, blue 1, purple 1 (unknown)
    check "embed-text --no-pc: SIF weighted means" python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
v = struct.unpack("<28f", b[-112:])
a = 0.5
w1, w2 = a / (a + 1 / 7), a / (a + 2 / 7)
want = {1: (0, w1 / 2, 0, -w1 / 2), 2: (0, 0, w1 / 2, w2 / 2), 3: (w1 / 2, 0, 0, w2 / 2)}
for i, row in want.items():
    got = v[4 * i:4 * i + 4]
    assert all(abs(g - x) < 1e-6 for g, x in zip(got, row)), (i, got, row)
' e4.npy
fi
# bad items files name the file and the line
printf 'item_id\ttitle\n1\tred\nx7\tgreen\n' >items_badid.tsv
printf 'item_id\ttitle\n1\tred\n0\tgreen\n' >items_zero.tsv
printf 'item_id\ttitle\n1\tred\n1\tgreen\n' >items_dup.tsv
printf 'item_id\ttitle\n1\tred\n2\tgreen\tlarge\n' >items_fields.tsv
for f in items_badid.tsv:3 items_zero.tsv:3 items_dup.tsv:3 items_fields.tsv:3; do
    file=${f%:*}
    run "$BIN" embed-text --items "$file" --text-col title --vectors vecs.txt --out bad.npy
    expect_rc "embed-text on $file" 1
    expect_err "embed-text on $file names file and line" "$f"
    case $file in
    items_dup.tsv) expect_err "embed-text: a repeated id names the first line" "already appeared on line 2" ;;
    esac
done
run "$BIN" embed-text --items items_badid.tsv --text-col title --vectors vecs.txt --out bad.npy
expect_err "embed-text: a bad id names the id column" "column 'item_id'"
run "$BIN" embed-text --items items.tsv --text-col nosuch --vectors vecs.txt --out bad.npy
expect_rc "embed-text with an unknown column" 1
expect_err "embed-text with an unknown column names it" "no column 'nosuch'"
run "$BIN" embed-text --items items.tsv --text-col title --vectors missing_vecs.txt --out bad.npy
expect_rc "embed-text with a missing --vectors file" 1
expect_err "embed-text with a missing --vectors file names it" "missing_vecs.txt"
printf 'red 1 0 0 0\ngreen 0 1 0\n' >vecs_bad.txt
run "$BIN" embed-text --items items.tsv --text-col title --vectors vecs_bad.txt --out bad.npy
expect_rc "embed-text with a ragged vectors file" 1
expect_err "embed-text with a ragged vectors file names file and line" "vecs_bad.txt:2"
run "$BIN" embed-text --items missing_items.tsv --text-col title --vectors vecs.txt --out bad.npy
expect_rc "embed-text with a missing --items file" 1
expect_err "embed-text with a missing --items file names it" "missing_items.tsv"
run "$BIN" embed-text --items items.tsv --text-col title --vectors vecs.txt --out /nonexistent-dir-iadsr/e.npy
expect_rc "embed-text into a missing directory" 1
check "failed embed-text runs wrote nothing" test ! -e bad.npy
usage_case "embed-text without --vectors" embed-text --items items.tsv --text-col title --out e.npy
usage_case "embed-text --sif-a 0" embed-text --items items.tsv --text-col title --vectors vecs.txt --out e.npy --sif-a 0
usage_case "embed-text empty column name" embed-text --items items.tsv --text-col title, --vectors vecs.txt --out e.npy

# -------------------------------------------------- the other backbones --
# GRU4Rec, Caser and pre-norm SASRec through train/info/eval/recommend, on
# the end-to-end data (d.txt: 300 users, 80 items)
for bb in "gru4rec" "caser" "sasrec --pre-ln"; do
    name=$(echo "$bb" | tr -d ' -')
    # shellcheck disable=SC2086
    run "$BIN" train --backbone $bb --data d.txt --out "m_$name.bin" --epochs 2 --dim 16 --max-len 10 --seed 5 --quiet
    expect_rc "train --backbone $bb" 0
    check "train --backbone $bb wrote a model" test -s "m_$name.bin"
    # shellcheck disable=SC2086
    run "$BIN" train --backbone $bb --data d.txt --out "m2_$name.bin" --epochs 2 --dim 16 --max-len 10 --seed 5 --quiet
    check "$bb: same seed gives an identical checkpoint" cmp -s "m_$name.bin" "m2_$name.bin"
    run "$BIN" eval --model "m_$name.bin" --data d.txt --json
    expect_rc "eval of a $bb model" 0
    expect_out "eval of a $bb model counts the users" '"users":300'
    run "$BIN" recommend --model "m_$name.bin" --data d.txt --k 3 --users 2
    expect_rc "recommend with a $bb model" 0
    check "recommend with a $bb model: 2 lines" sh -c "[ \$(wc -l <'$T/out') -eq 2 ]"
done
run "$BIN" info --model m_gru4rec.bin
expect_out "info: gru4rec backbone" "backbone:           gru4rec"
expect_out "info: gru4rec has one layer by default" "n_layers:           1"
check "info: gru4rec prints no SASRec fields" sh -c "! grep -q n_heads '$T/out'"
run "$BIN" info --model m_caser.bin
expect_out "info: caser backbone" "backbone:           caser"
expect_out "info: caser window" "caser_window:       5"
expect_out "info: caser filters" "caser_h_filters:    16"
check "info: caser prints no n_layers" sh -c "! grep -q n_layers '$T/out'"
run "$BIN" info --model m_sasrecpreln.bin
expect_out "info: pre-norm SASRec says so" "blocks:             pre-norm"
run "$BIN" train --backbone caser --caser-window 3 --caser-h 4 --caser-v 2 --data d.txt --out m_c3.bin --epochs 1 --dim 8 --max-len 6 --quiet
expect_rc "train caser with its options" 0
run "$BIN" info --model m_c3.bin
expect_out "info: caser window 3" "caser_window:       3"
usage_case "--heads with gru4rec" train --backbone gru4rec --heads 4 --data d.txt --out x.bin
usage_case "--pre-ln with caser" train --backbone caser --pre-ln --data d.txt --out x.bin
usage_case "--caser-window with sasrec" train --caser-window 3 --data d.txt --out x.bin
usage_case "--layers with caser" train --backbone caser --layers 2 --data d.txt --out x.bin
usage_case "--caser-window 0" train --backbone caser --caser-window 0 --data d.txt --out x.bin
check "refused backbone options wrote no model" test ! -e x.bin

# ------------------------------------------------------- eval --semantic --
# the text-only recommender on the embed-text output (items 1..6)
printf '10 1 2 3 1\n11 3 3 2 2\n12 2 1 6 3\n' >sem_seq.txt
run "$BIN" eval --semantic e1.npy --data sem_seq.txt --json
expect_rc "eval --semantic --json" 0
expect_out "eval --semantic counts the users" '"users":3'
expect_out "eval --semantic gives NDCG@10" '"NDCG@10":'
# 6 items: every target is in the top 10
expect_out "eval --semantic: HR@10 is 1 with 6 items" '"HR@10":1.000000'
run "$BIN" eval --semantic e1.npy --semantic-rows dense --data sem_seq.txt --json
expect_rc "eval --semantic --semantic-rows dense" 0
printf '10 1 2 7\n' >sem_seq_big.txt
run "$BIN" eval --semantic e1.npy --data sem_seq_big.txt
expect_rc "eval --semantic with an id above the matrix" 1
expect_err "eval --semantic with an id above the matrix blames the matrix" "e1.npy: rows for item ids 1..6, but sem_seq_big.txt uses item ids up to 7"
run "$BIN" eval --semantic missing.npy --data sem_seq.txt
expect_rc "eval --semantic with a missing file" 1
expect_err "eval --semantic with a missing file names it" "missing.npy"
printf 'not a npy file at all' >bad.npy.txt
run "$BIN" eval --semantic bad.npy.txt --data sem_seq.txt
expect_rc "eval --semantic with a malformed file" 1
expect_err "eval --semantic with a malformed file says why" "bad magic"
# --cold-max with the text scorer: counts 1:2 2:2 3:2, targets 1, 5, 3
printf '10 1 2 3 1\n11 3 3 2 5\n12 2 1 6 3\n' >sem_cold.txt
sed -n 2p sem_cold.txt >sem_cold1.txt
run "$BIN" eval --semantic e1.npy --data sem_cold.txt --cold-max 0 --json
expect_rc "eval --semantic --cold-max" 0
expect_out "eval --semantic --cold-max keeps user 11" '"n_users_cold":1,"n_users_all":3}'
sed 's/,"cold_max":.*}$/}/' "$T/out" >semcold.json
run "$BIN" eval --semantic e1.npy --data sem_cold1.txt --json
check "eval --semantic --cold-max = eval of user 11 alone" cmp -s "$T/out" semcold.json
usage_case "eval with neither --model nor --semantic" eval --data sem_seq.txt
usage_case "eval with both --model and --semantic" eval --model m.iadsr --semantic e1.npy --data sem_seq.txt

# ------------------------------------------------------------------ IADSR --
# synth --semantic-out, inject-noise, train --semantic, denoise, pipeline
for c in inject-noise denoise pipeline; do
    run "$BIN" "$c" --help
    expect_rc "$c --help" 0
    expect_out "$c --help" "Usage: iadsr $c"
done
run "$BIN" help inject-noise
expect_out "inject-noise --help documents the label format" "LABELS has one line per user"
run "$BIN" train --help
expect_out "train --help documents --semantic" "--semantic EMB.npy"
expect_out "train --help documents --lambda-align" "--lambda-align X"
run "$BIN" --help
expect_out "--help lists denoise" "denoise"

# usage errors (exit 2, nothing on stdout, nothing written)
for o in "--theta 0.5" "--max-drop 0.1" "--no-protect-last" "--lambda-align 2" \
    "--lambda-recon 2" "--tau-align 0.5" "--tau-gumbel 0.5" "--collab-only" \
    "--carry-masks" "--paper-losses" "--semantic-rows dense" "--user-semantic u.npy"; do
    # shellcheck disable=SC2086
    usage_case "train $o without --semantic" train --data d.txt --out x.bin $o
    expect_err "train $o without --semantic says why" "needs --semantic"
done
usage_case "train --semantic --lambda-align -1" train --data d.txt --out x.bin --semantic s.npy --lambda-align -1
usage_case "train --semantic --tau-align 0" train --data d.txt --out x.bin --semantic s.npy --tau-align 0
usage_case "train --semantic --tau-gumbel 0" train --data d.txt --out x.bin --semantic s.npy --tau-gumbel 0
usage_case "train --semantic --theta 3.5" train --data d.txt --out x.bin --semantic s.npy --theta 3.5
usage_case "train --semantic --max-drop 1.5" train --data d.txt --out x.bin --semantic s.npy --max-drop 1.5
usage_case "train --semantic --semantic-rows bogus" train --data d.txt --out x.bin --semantic s.npy --semantic-rows bogus
usage_case "train --semantic --heads 3 --dim 16" train --data d.txt --out x.bin --semantic s.npy --heads 3 --dim 16
usage_case "inject-noise without --rate" inject-noise --data d.txt --seed 1 --out x.txt --labels x.lab
usage_case "inject-noise without --seed" inject-noise --data d.txt --rate 0.1 --out x.txt --labels x.lab
usage_case "inject-noise without --labels" inject-noise --data d.txt --rate 0.1 --seed 1 --out x.txt
usage_case "inject-noise without --out" inject-noise --data d.txt --rate 0.1 --seed 1 --labels x.lab
usage_case "inject-noise --rate -0.1" inject-noise --data d.txt --rate -0.1 --seed 1 --out x.txt --labels x.lab
usage_case "inject-noise --rate 10.5" inject-noise --data d.txt --rate 10.5 --seed 1 --out x.txt --labels x.lab
usage_case "inject-noise --rate nan" inject-noise --data d.txt --rate nan --seed 1 --out x.txt --labels x.lab
usage_case "inject-noise --rate 0.1x" inject-noise --data d.txt --rate 0.1x --seed 1 --out x.txt --labels x.lab
usage_case "inject-noise --seed -1" inject-noise --data d.txt --rate 0.1 --seed -1 --out x.txt --labels x.lab
usage_case "inject-noise --out = --labels" inject-noise --data d.txt --rate 0.1 --seed 1 --out x.txt --labels x.txt
usage_case "denoise without --model" denoise --semantic s.npy --data d.txt --out x.txt
usage_case "denoise without --semantic" denoise --model m.bin --data d.txt --out x.txt
usage_case "denoise without --out" denoise --model m.bin --semantic s.npy --data d.txt
usage_case "denoise --split test" denoise --model m.bin --semantic s.npy --data d.txt --out x.txt --split test
usage_case "denoise --theta -4" denoise --model m.bin --semantic s.npy --data d.txt --out x.txt --theta -4
usage_case "denoise --max-drop -0.1" denoise --model m.bin --semantic s.npy --data d.txt --out x.txt --max-drop -0.1
usage_case "denoise --threads 0" denoise --model m.bin --semantic s.npy --data d.txt --out x.txt --threads 0
usage_case "denoise --lambda-align (a training option)" denoise --model m.bin --semantic s.npy --data d.txt --out x.txt --lambda-align 1
usage_case "pipeline without --semantic" pipeline --data d.txt
usage_case "pipeline without --data" pipeline --semantic s.npy
usage_case "pipeline --heads with gru4rec" pipeline --data d.txt --semantic s.npy --backbone gru4rec --heads 2
usage_case "pipeline --epochs 0" pipeline --data d.txt --semantic s.npy --epochs 0
usage_case "pipeline --out-model = --out-clean" pipeline --data d.txt --semantic s.npy --out-model x.txt --out-clean x.txt
usage_case "synth --semantic-dim without --semantic-out" synth --out x.txt --semantic-dim 8
usage_case "synth --semantic-noise without --semantic-out" synth --out x.txt --semantic-noise 0.1
usage_case "synth --semantic-dim 0" synth --out x.txt --semantic-out x.npy --semantic-dim 0
usage_case "synth --semantic-noise -1" synth --out x.txt --semantic-out x.npy --semantic-noise -1
usage_case "synth --semantic-out = --out" synth --out x.txt --semantic-out x.txt
check "IADSR usage errors wrote nothing" sh -c '! ls x.* >/dev/null 2>&1'

# synth --semantic-out: padded (M + 1) x D rows, deterministic, and the
# sequences do not change
run "$BIN" synth --out n0.txt --users 300 --items 80 --seed 11 --semantic-out s.npy --quiet
expect_rc "synth --semantic-out" 0
check "synth --semantic-out leaves the sequences unchanged" cmp -s n0.txt d.txt
ALL80=$(seq -s, 1 80)
check "synth --semantic-out: 81 x 16, row 0 zero, rows 1-80 non-zero" npy_rows s.npy 81 16 "$ALL80"
run "$BIN" synth --out n0b.txt --users 300 --items 80 --seed 11 --semantic-out s2.npy --quiet
check "synth --semantic-out: same seed gives the same bytes" cmp -s s.npy s2.npy
run "$BIN" synth --out n0b.txt --users 300 --items 80 --seed 12 --semantic-out s2.npy --quiet
check "synth --semantic-out: another seed gives other vectors" sh -c '! cmp -s s.npy s2.npy'
run "$BIN" synth --out n0b.txt --users 30 --items 40 --topics 4 --seed 3 --semantic-out s3.npy --semantic-dim 8 --semantic-noise 0.1
expect_rc "synth --semantic-dim 8 --semantic-noise 0.1" 0
expect_err "synth --semantic-out summary" "41 x 8 semantic item vectors"
check "synth --semantic-dim 8: 41 x 8" npy_rows s3.npy 41 8 "$(seq -s, 1 40)"
if [ "$HAVE_PY" -eq 1 ]; then
    # 4 topics of 10 contiguous items: rows are near-unit, same-topic
    # cosines high, cross-topic cosines lower on average
    check "synth --semantic-out: items cluster by topic" python3 -c '
import math, struct, sys
b = open(sys.argv[1], "rb").read()
hl = struct.unpack("<H", b[8:10])[0]
v = struct.unpack("<328f", b[10 + hl:])
rows = [v[8 * i:8 * i + 8] for i in range(41)]
def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
topic = lambda i: (i - 1) // 10
same = [cos(rows[i], rows[j]) for i in range(1, 41) for j in range(i + 1, 41) if topic(i) == topic(j)]
diff = [cos(rows[i], rows[j]) for i in range(1, 41) for j in range(i + 1, 41) if topic(i) != topic(j)]
assert min(same) > 0.9, min(same)
assert sum(diff) / len(diff) < 0.5, sum(diff) / len(diff)
assert all(0.8 < math.sqrt(sum(x * x for x in rows[i])) < 1.2 for i in range(1, 41))
' s3.npy
fi

# inject-noise
run "$BIN" inject-noise --data d.txt --rate 0.3 --seed 4 --out nz.txt --labels nz.lab
expect_rc "inject-noise" 0
expect_no_out "inject-noise prints nothing on stdout"
expect_err "inject-noise reports the injected items" "injected "
NINJ=$(sed -n 's/.*injected \([0-9]*\) items.*/\1/p' "$T/err")
NONES=$(tr ' ' '\n' <nz.lab | grep -c '^1$')
if [ -n "$NINJ" ] && [ "$NINJ" -eq "$NONES" ]; then ok; else bad "inject-noise: reported '$NINJ' injected, labels have $NONES"; fi
check "inject-noise: no temporary files left" sh -c '! ls | grep -F .tmp. >/dev/null'
# E[k] = rate * (n - 2): within 15% over ~5000 training items
check "inject-noise: about rate x training items injected" awk -v k="$NONES" \
    '{ if (NF > 3) t += NF - 3 } END { e = 0.3 * t; exit !(k > 0.85 * e && k < 1.15 * e) }' d.txt
run "$BIN" inject-noise --data d.txt --rate 0.3 --seed 4 --out nz2.txt --labels nz2.lab
check "inject-noise: same seed gives the same NOISY bytes" cmp -s nz.txt nz2.txt
check "inject-noise: same seed gives the same LABELS bytes" cmp -s nz.lab nz2.lab
run "$BIN" inject-noise --data d.txt --rate 0.3 --seed 5 --out nz3.txt --labels nz3.lab --quiet
check "inject-noise: another seed gives another file" sh -c '! cmp -s nz.txt nz3.txt'
expect_no_out "inject-noise --quiet is quiet"
run "$BIN" inject-noise --data d.txt --rate 0 --seed 4 --out nz0.txt --labels nz0.lab
expect_rc "inject-noise --rate 0" 0
check "inject-noise --rate 0: output identical to the input" cmp -s nz0.txt d.txt
check "inject-noise --rate 0: all labels 0" sh -c '! grep -q 1 nz0.lab'
expect_err "inject-noise --rate 0 injects nothing" "injected 0 items"
# label format: one line per user, one 0/1 per noisy item, single spaces
lab_format() { # NOISY LABELS
    awk 'NR == FNR { n[FNR] = NF - 1; users = FNR; next }
        { if ($0 !~ /^[01]( [01])*$/) exit 1
          if (NF != n[FNR]) exit 1; lines = FNR }
        END { exit !(lines == users) }' "$1" "$2"
}
check "inject-noise: label file format" lab_format nz.txt nz.lab
# ORIG NOISY LABELS: same users in order; removing the labelled items gives
# the original sequence back (so the last two stay the last two and the
# originals keep their order); injected items are never in the user's
# original sequence; every label of the last two items is 0
noise_ok() {
    awk 'FILENAME == ARGV[1] { orig[FNR] = $0; next }
        FILENAME == ARGV[2] { noisy[FNR] = $0; next }
        {
            no = split(orig[FNR], o, " "); nn = split(noisy[FNR], x, " ")
            if (o[1] != x[1]) { print "user id " FNR; exit 1 }
            if (NF != nn - 1) { print "labels " FNR; exit 1 }
            delete has; for (i = 2; i <= no; i++) has[o[i]] = 1
            s = o[1]
            for (i = 1; i <= NF; i++) {
                if ($i == 1) {
                    if (x[i + 1] in has) { print "injected item in the sequence " FNR; exit 1 }
                    if (i > NF - 2) { print "injected after the training part " FNR; exit 1 }
                } else s = s " " x[i + 1]
            }
            if (s != orig[FNR]) { print "originals changed " FNR; exit 1 }
            if (no > 3 && (x[nn - 1] != o[no - 1] || x[nn] != o[no])) { print "last two " FNR; exit 1 }
        }' "$1" "$2" "$3"
}
check "inject-noise: originals kept in order, last two untouched, injected items new" noise_ok d.txt nz.txt nz.lab
# --dist popularity: still consistent, and the injected items are more
# popular in d.txt than the uniformly drawn ones (mean occurrence count)
run "$BIN" inject-noise --data d.txt --rate 0.3 --seed 4 --dist popularity --out nzp.txt --labels nzp.lab
expect_rc "inject-noise --dist popularity" 0
expect_err "inject-noise --dist popularity says so" "popularity"
check "inject-noise --dist popularity: consistent" noise_ok d.txt nzp.txt nzp.lab
inj_pop() { # ORIG NOISY LABELS: mean count in ORIG of the injected items
    awk 'FILENAME == ARGV[1] { for (i = 2; i <= NF; i++) c[$i]++; next }
        FILENAME == ARGV[2] { line[FNR] = $0; next }
        { split(line[FNR], x, " "); for (i = 1; i <= NF; i++) if ($i == 1) { s += c[x[i + 1]]; n++ } }
        END { printf "%.3f\n", n ? s / n : 0 }' "$1" "$2" "$3"
}
PU=$(inj_pop d.txt nz.txt nz.lab)
PP=$(inj_pop d.txt nzp.txt nzp.lab)
check "inject-noise --dist popularity draws popular items ($PP vs uniform $PU)" awk -v p="$PP" -v u="$PU" 'BEGIN { exit !(p > 1.05 * u) }'
usage_case "inject-noise --dist bogus" inject-noise --data d.txt --rate 0.1 --seed 1 --out x.txt --labels x.lab --dist bogus
run "$BIN" inject-noise --data d.txt --rate 10 --seed 2 --out nz10.txt --labels nz10.lab --quiet
expect_rc "inject-noise --rate 10" 0
check "inject-noise --rate 10: still consistent" noise_ok d.txt nz10.txt nz10.lab
# short users are copied; a user holding every item id gets nothing
printf '5 1 2\n6 3\n7 1 2 3 4 1\n8 1 1 2 2 1\n' >short.txt
run "$BIN" inject-noise --data short.txt --rate 5 --seed 1 --out short_n.txt --labels short_n.lab
expect_rc "inject-noise on short users" 0
check "inject-noise: users with n < 3 copied, full users unchanged" awk \
    'NR <= 3 { if ($0 != ($1 == 5 ? "5 1 2" : $1 == 6 ? "6 3" : "7 1 2 3 4 1")) exit 1 }
     NR == 4 { if (NF <= 6) exit 1 } END { exit !(NR == 4) }' short_n.txt
check "inject-noise: short users consistent" noise_ok short.txt short_n.txt short_n.lab
check "inject-noise: only 3 and 4 are injected for user 8" awk \
    'NR == 4 { for (i = 2; i <= NF; i++) if ($i != 1 && $i != 2 && $i != 3 && $i != 4) exit 1 }' short_n.txt
run "$BIN" inject-noise --data missing.txt --rate 0.1 --seed 1 --out x.txt --labels x.lab
expect_rc "inject-noise with a missing file" 1
expect_err "inject-noise with a missing file names it" "missing.txt"
bad_data bad_token.txt 2 "$BIN" inject-noise --data bad_token.txt --rate 0.1 --seed 1 --out x.txt --labels x.lab
run "$BIN" inject-noise --data d.txt --rate 0.1 --seed 1 --out /nonexistent-dir-iadsr/x.txt --labels x.lab
expect_rc "inject-noise into a missing directory" 1
check "failed inject-noise runs wrote nothing" sh -c '! ls x.* >/dev/null 2>&1'

# train --semantic on the noisy data
IARGS="--epochs 3 --dim 16 --max-len 20 --seed 5"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mi.iadsr --semantic s.npy --gate paper $IARGS
expect_rc "train --semantic" 0
expect_err "train --semantic: progress line" "epoch 1/3  loss "
expect_err "train --semantic: says what it trains" "IADSR: lambda_align 1"
expect_err "train --semantic: saved with aligner and gate" "with aligner and gate"
expect_no_out "train --semantic prints nothing on stdout"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mi2.iadsr --semantic s.npy --gate paper $IARGS --quiet
check "train --semantic: same seed gives an identical checkpoint" cmp -s mi.iadsr mi2.iadsr
run "$BIN" info --model mi.iadsr
expect_rc "info reads an IADSR checkpoint" 0
run "$BIN" eval --model mi.iadsr --data nz.txt --json
expect_rc "eval reads an IADSR checkpoint's backbone" 0
check "eval of an IADSR backbone: JSON" json_check "$T/out" test false
# every IADSR option, dense rows, a gate rule stored in the checkpoint
run "$BIN" train --data nz.txt --out mo.iadsr --semantic s.npy --semantic-rows items \
    --lambda-align 0.5 --lambda-recon 0.5 --tau-align 0.2 --tau-gumbel 0.5 \
    --collab-only --carry-masks --theta 0.25 --max-drop 0.2 --no-protect-last \
    --epochs 2 --dim 8 --heads 1 --max-len 10 --quiet
expect_rc "train --semantic with every IADSR option" 0
run "$BIN" denoise --model mo.iadsr --semantic s.npy --semantic-rows dense --data nz.txt --out co.txt --json
expect_rc "denoise with the stored rule" 0
expect_out "denoise uses the trained theta" '"theta":0.250000'
expect_out "denoise uses the trained max_drop" '"max_drop":0.200000'
expect_out "denoise uses the trained protect_last" '"protect_last":false'
# the detector gate: trained from inserted items, theta proposed from the data
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out md.iadsr --semantic s.npy --gate detect $IARGS
expect_rc "train --gate detect" 0
expect_err "train --gate detect says so" "gate detect"
expect_err "train --gate detect holds users out by default" "holdout 1/16"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mdn.iadsr --semantic s.npy --gate detect --no-holdout $IARGS
expect_rc "train --gate detect --no-holdout" 0
check "train --no-holdout: nobody held out" sh -c '! grep -q "holdout" "$0"' "$T/err"
usage_case "train --no-holdout with --gate paper" train --data nz.txt --out x.bin --semantic s.npy --gate paper --no-holdout
# the detector is the default gate; the paper's losses bring the paper's gate
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mdd.iadsr --semantic s.npy $IARGS
expect_rc "train --semantic (default gate)" 0
expect_err "train --semantic trains the detector gate by default" "gate detect, holdout 1/16"
expect_err "train --semantic backs the loss weights off by default" ", backoff;"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mdb.iadsr --semantic s.npy --no-backoff $IARGS
expect_rc "train --semantic --no-backoff" 0
check "train --no-backoff: fixed weights" sh -c '! grep -q "backoff" "$0"' "$T/err"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mdp.iadsr --semantic s.npy --paper-losses $IARGS
expect_rc "train --semantic --paper-losses" 0
check "train --paper-losses trains the paper's gate" sh -c '! grep -q "gate detect" "$0"' "$T/err"
run "$BIN" train --data nz.txt --out mdc.iadsr --semantic s.npy --gate detect --clean-scores $IARGS
expect_rc "train --gate detect --clean-scores" 0
expect_err "train --clean-scores says so" "clean scores"
run "$BIN" train --data nz.txt --out mdm.iadsr --semantic s.npy --gate detect --input-mask $IARGS
expect_rc "train --gate detect --input-mask" 0
expect_err "train --input-mask says so" "input mask"
run "$BIN" denoise --model mdm.iadsr --semantic s.npy --data nz.txt --out mdm.txt
expect_rc "denoise with a detector trained under its input mask" 0
run "$BIN" train --data nz.txt --out mdt.iadsr --semantic s.npy --text-feature $IARGS
expect_rc "train --semantic --text-feature" 0
expect_err "train --text-feature says so" "text feature"
run "$BIN" denoise --model mdt.iadsr --semantic s.npy --data nz.txt --out mdt.txt
expect_rc "denoise with a detector that reads the text consistency" 0
run "$BIN" report --model mdt.iadsr --out mdt.html
expect_rc "report on a detector with the text feature" 0
check "report names the text feature" grep -q "text-feature" mdt.html
usage_case "train --text-feature with --gate paper" train --data nz.txt --out x.bin --semantic s.npy --gate paper --text-feature
usage_case "train --text-feature with --collab-only" train --data nz.txt --out x.bin --semantic s.npy --collab-only --text-feature
usage_case "train --text-feature without --semantic" train --data nz.txt --out x.bin --text-feature
usage_case "train --backoff --no-backoff" train --data nz.txt --out x.bin --semantic s.npy --backoff --no-backoff
usage_case "train --backoff without --semantic" train --data nz.txt --out x.bin --backoff
usage_case "train --clean-scores with --gate paper" train --data nz.txt --out x.bin --semantic s.npy --gate paper --clean-scores
usage_case "train --input-mask with --gate paper" train --data nz.txt --out x.bin --semantic s.npy --gate paper --input-mask
run "$BIN" denoise --model md.iadsr --semantic s.npy --data nz.txt --out cd.txt --labels nz.lab --json
expect_rc "denoise with a detector gate" 0
expect_err "denoise proposes the detector's theta" "detector gate: estimated noise rate"
expect_out "denoise with a detector gate: F1 against the labels" '"f1":' 
run "$BIN" denoise --model md.iadsr --semantic s.npy --data nz.txt --out cd2.txt --theta 0.5 --json
expect_out "denoise --theta overrides the proposal" '"theta":0.500000'
check "denoise --theta: no proposal" sh -c '! grep -q "estimated noise rate" "$0"' "$T/err"
run "$BIN" denoise --model md.iadsr --semantic s.npy --data nz.txt --out cd3.txt --collab-only
expect_rc "denoise --collab-only on a full detector" 1
expect_err "denoise --collab-only on a full detector says why" "features it was trained on"
usage_case "pipeline --gate detect --theta" pipeline --data nz.txt --semantic s.npy --gate detect --theta 0.5
usage_case "train --gate bogus" train --data nz.txt --out x.bin --semantic s.npy --gate bogus
run "$BIN" synth --out x_small.txt --users 10 --items 40 --seed 1 --semantic-out small.npy --quiet
run "$BIN" train --data nz.txt --out x.bin --semantic small.npy --epochs 1 --dim 8 --quiet
expect_rc "train --semantic with too few semantic rows" 1
run "$BIN" train --data nz.txt --out x.bin --semantic missing.npy --epochs 1 --dim 8 --quiet
expect_rc "train --semantic with a missing file" 1
expect_err "train --semantic with a missing file names it" "missing.npy"
run "$BIN" train --data nz.txt --out x.bin --semantic s.npy --user-semantic s.npy --epochs 1 --dim 8 --quiet
expect_rc "train --user-semantic with the wrong row count" 1
expect_err "train --user-semantic with the wrong row count says so" "expected 300 rows"
check "failed train --semantic runs wrote nothing" sh -c '! ls x.bin >/dev/null 2>&1'
if [ "$HAVE_PY" -eq 1 ]; then
    # one 16-wide row per user
    python3 -c '
import struct, sys
n, d = 300, 16
h = "{'"'"'descr'"'"': '"'"'<f4'"'"', '"'"'fortran_order'"'"': False, '"'"'shape'"'"': (%d, %d), }" % (n, d)
h = h + " " * (63 - (10 + len(h)) % 64) + "\n"
v = [((u * 7 + j * 3) % 11 - 5) / 5.0 for u in range(n) for j in range(d)]
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<%df" % (n * d), *v))
' users.npy
    run "$BIN" train --data nz.txt --out mu.iadsr --semantic s.npy --user-semantic users.npy --epochs 1 --dim 8 --heads 1 --max-len 10 --quiet
    expect_rc "train --user-semantic" 0
    run "$BIN" denoise --model mu.iadsr --semantic s.npy --user-semantic users.npy --data nz.txt --out cu.txt
    expect_rc "denoise --user-semantic" 0
fi

# denoise
run "$BIN" denoise --model m.bin --semantic s.npy --data nz.txt --out x.txt
expect_rc "denoise with a backbone-only checkpoint" 1
expect_err "denoise with a backbone-only checkpoint says why" "no aligner and gate"
expect_no_out "denoise with a backbone-only checkpoint"
run "$BIN" denoise --model missing.bin --semantic s.npy --data nz.txt --out x.txt
expect_rc "denoise with a missing model" 1
expect_err "denoise with a missing model names it" "missing.bin"
run "$BIN" denoise --model mi.iadsr --semantic missing.npy --data nz.txt --out x.txt
expect_rc "denoise with a missing semantic file" 1
expect_err "denoise with a missing semantic file names it" "missing.npy"
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data missing.txt --out x.txt
expect_rc "denoise with a missing data file" 1
expect_err "denoise with a missing data file names it" "missing.txt"
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data big_id.txt --out x.txt
expect_rc "denoise with an id above the model's items" 1
expect_err "denoise with an id above the model's items names file and line" "big_id.txt:2"
run "$BIN" denoise --model mi.iadsr --semantic small.npy --data nz.txt --out x.txt
expect_rc "denoise with too few semantic rows" 1
# a matrix of the same shape made for other data (issue 17: mismatched parts)
run "$BIN" denoise --model mi.iadsr --semantic s2.npy --data nz.txt --out x.txt
expect_rc "denoise with another semantic matrix than the training's" 1
expect_err "denoise with another semantic matrix says so" "trained with another semantic matrix"
expect_err "denoise with another semantic matrix names the way out" "--allow-mismatch"
check "denoise with another semantic matrix wrote nothing" sh -c '! ls x.txt >/dev/null 2>&1'
run "$BIN" denoise --model mi.iadsr --semantic s2.npy --data nz.txt --out x.txt --allow-mismatch
expect_rc "denoise --allow-mismatch combines them anyway" 0
rm -f x.txt
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out x.txt --labels missing.lab
expect_rc "denoise with a missing label file" 1
expect_err "denoise with a missing label file names it" "missing.lab"
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out x.txt --labels nz3.lab
expect_rc "denoise with labels of another noisy file" 1
expect_err "denoise with labels of another file names file and line" "nz3.lab:"
sed '2s/0/2/' nz.lab >bad1.lab
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out x.txt --labels bad1.lab
expect_rc "denoise with a label that is not 0/1" 1
expect_err "denoise with a bad label names file and line" "bad1.lab:2: label '2'"
sed '$d' nz.lab >bad2.lab
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out x.txt --labels bad2.lab
expect_rc "denoise with a label line missing" 1
expect_err "denoise with a label line missing says so" "299 lines for the 300 users"
{ cat nz.lab; echo 0; } >bad3.lab
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out x.txt --labels bad3.lab
expect_rc "denoise with a label line too many" 1
expect_err "denoise with a label line too many names it" "bad3.lab:301"
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out /nonexistent-dir-iadsr/x.txt
expect_rc "denoise into a missing directory" 1
check "failed denoise runs wrote nothing" sh -c '! ls x.* >/dev/null 2>&1'

run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl.txt
expect_rc "denoise" 0
expect_out "denoise: items in" "items in:"
expect_out "denoise: items dropped" "items dropped:"
expect_out "denoise: users touched" "users touched:"
check "denoise: no temporary files left" sh -c '! ls | grep -F .tmp. >/dev/null'
# CLEAN: same users in order, each line a subsequence of the input line with
# the same last two items; DROPPED = the items removed
clean_ok() { # INPUT CLEAN SPLIT(loo/none)
    awk -v mode="$3" 'NR == FNR { in_[FNR] = $0; n = FNR; next }
        {
            ni = split(in_[FNR], a, " "); nc = split($0, c, " ")
            if (a[1] != c[1]) exit 1
            j = 2
            for (i = 2; i <= ni && j <= nc; i++) if (a[i] == c[j]) j++
            if (j <= nc) exit 1
            if (mode == "loo" && ni > 3 && (a[ni] != c[nc] || a[ni - 1] != c[nc - 1])) exit 1
            dropped += ni - nc
        }
        END { if (FNR != n) exit 1; print dropped }' "$1" "$2"
}
check "denoise: CLEAN is a per-user subsequence keeping the last two" clean_ok nz.txt cl.txt loo
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl.txt --json
expect_rc "denoise --json" 0
NTRAIN=$(awk '{ if (NF > 3) t += NF - 3 } END { print t }' nz.txt)
NDROP=$(clean_ok nz.txt cl.txt loo)
if [ "$HAVE_PY" -eq 1 ]; then
    check "denoise --json: one object with the counts" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == ""
o = json.loads(lines[0])
need = ["split", "users", "items_in", "items_dropped", "users_touched",
        "theta", "max_drop", "protect_last"]
assert sorted(o) == sorted(need), sorted(o)
assert o["split"] == "loo" and o["users"] == 300
assert o["items_in"] == int(sys.argv[2]), (o["items_in"], sys.argv[2])
assert o["items_dropped"] == int(sys.argv[3])
assert 0 <= o["users_touched"] <= min(300, o["items_dropped"])
assert o["theta"] == 0.0 and o["max_drop"] == 0.3 and o["protect_last"] is True
' "$T/out" "$NTRAIN" "$NDROP"
fi
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl2.txt --threads 2
check "denoise --threads 2 gives the same CLEAN" cmp -s cl.txt cl2.txt
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl0.txt --max-drop 0
check "denoise --max-drop 0: CLEAN identical to the input" cmp -s cl0.txt nz.txt
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl3.txt --theta 3 --max-drop 0.5 --json
# no score exceeds 3: the cap alone decides, floor(0.5 * (n - 2)) per user
WANT=$(awk '{ n = NF - 1; if (n >= 3) s += int(0.5 * (n - 2)) } END { print s }' nz.txt)
expect_out "denoise --theta 3 --max-drop 0.5 drops exactly the cap" "\"items_dropped\":$WANT,"
check "denoise --theta 3: CLEAN consistent" clean_ok nz.txt cl3.txt loo
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl4.txt --split none --theta 3 --max-drop 0.5 --no-protect-last --json
WANT=$(awk '{ s += int(0.5 * (NF - 1)) } END { print s }' nz.txt)
ALLN=$(awk '{ s += NF - 1 } END { print s }' nz.txt)
expect_out "denoise --split none cleans whole sequences" "\"items_in\":$ALLN,"
expect_out "denoise --split none drops the cap of whole sequences" "\"items_dropped\":$WANT,"
expect_out "denoise --no-protect-last is reported" '"protect_last":false'
check "denoise --split none: CLEAN consistent" clean_ok nz.txt cl4.txt none
# the collaborative-only rule scores differently from the full one: with the
# same cap-bound theta the two choose different items
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl5.txt --theta 3 --max-drop 0.5 --collab-only
expect_rc "denoise --collab-only" 0
check "denoise --collab-only: CLEAN consistent" clean_ok nz.txt cl5.txt loo
check "denoise --collab-only drops other items than the full score" sh -c '! cmp -s cl3.txt cl5.txt'

# labels: precision, recall and F1 of the drops against the injected items
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl.txt --labels nz.lab
expect_rc "denoise --labels" 0
expect_out "denoise --labels prints precision" "precision "
expect_out "denoise --labels prints F1" "F1 "
expect_out "denoise --labels counts the injected items" "$NONES injected"
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl.txt --labels nz.lab --json
expect_rc "denoise --labels --json" 0
if [ "$HAVE_PY" -eq 1 ]; then
    check "denoise --labels --json: metrics consistent" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
tp, fp, fn = o["true_positives"], o["false_positives"], o["false_negatives"]
assert o["injected"] == int(sys.argv[2]) == tp + fn
assert tp + fp == o["items_dropped"]
for k in ("precision", "recall", "f1"):
    assert o[k] is None or 0.0 <= o[k] <= 1.0, k
if tp + fp:
    assert abs(o["precision"] - tp / (tp + fp)) < 1e-6
assert abs(o["recall"] - tp / (tp + fn)) < 1e-6
if tp + fp + fn:
    assert abs(o["f1"] - 2 * tp / (2 * tp + fp + fn)) < 1e-6
' "$T/out" "$NONES"
else
    expect_out "denoise --labels --json has f1" '"f1":'
fi
# no drop at all: precision undefined (null), recall 0
run "$BIN" denoise --model mi.iadsr --semantic s.npy --data nz.txt --out cl0.txt --labels nz.lab --max-drop 0 --json
expect_out "denoise without drops: precision is null" '"precision":null'
expect_out "denoise without drops: recall is 0" '"recall":0.000000'

# pipeline
# shellcheck disable=SC2086
run "$BIN" pipeline --data nz.txt --semantic s.npy --epochs 2 --dim 16 --max-len 20 --seed 5 \
    --out-model mp.bin --out-clean cp.txt
expect_rc "pipeline" 0
expect_out "pipeline: items dropped" "items dropped:"
expect_out "pipeline: users touched" "users touched:"
expect_out "pipeline: test NDCG" "NDCG"
expect_err "pipeline: IADSR progress" "iadsr epoch 1/2  loss "
expect_err "pipeline: retrain progress" "retrain epoch 1/2  loss "
check "pipeline --out-clean: consistent CLEAN" clean_ok nz.txt cp.txt loo
run "$BIN" eval --model mp.bin --data cp.txt --json
expect_rc "pipeline --out-model: the retrained backbone evaluates" 0
cp "$T/out" pe.json
# shellcheck disable=SC2086
run "$BIN" pipeline --data nz.txt --semantic s.npy --epochs 2 --dim 16 --max-len 20 --seed 5 --json --quiet
expect_rc "pipeline --json" 0
if [ "$HAVE_PY" -eq 1 ]; then
    check "pipeline --json: one object, eval's keys and the counts" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert len(lines) == 2 and lines[1] == ""
o = json.loads(lines[0])
need = ["split", "users", "HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10",
        "NDCG@20", "exclude_history", "items_in", "items_dropped",
        "users_touched", "iadsr_epochs", "retrain_epochs", "iadsr_seconds",
        "retrain_seconds"]
assert sorted(o) == sorted(need), sorted(o)
assert o["items_in"] == int(sys.argv[3]) and o["users"] == 300
assert 0 <= o["items_dropped"] <= o["items_in"]
assert 1 <= o["iadsr_epochs"] <= 2 and 1 <= o["retrain_epochs"] <= 2
e = json.load(open(sys.argv[2]))
# the same run evaluates the same model on the same cleaned histories
assert abs(e["NDCG@10"] - o["NDCG@10"]) < 1e-6, (e, o)
' "$T/out" pe.json "$NTRAIN"
fi
run "$BIN" pipeline --data nz.txt --semantic missing.npy --epochs 1
expect_rc "pipeline with a missing semantic file" 1
expect_err "pipeline with a missing semantic file names it" "missing.npy"

# pipeline stopped by Ctrl-C: exit 130, nothing written
"$BIN" pipeline --data nz.txt --semantic s.npy --epochs 100000 --patience 0 --dim 8 --heads 1 \
    --layers 1 --max-len 5 --out-model pint.bin >"$T/pint_out" 2>"$T/pint_err" &
pid=$!
sigint_after_epoch1 $pid "$T/pint_err"
wait $pid
irc=$?
if [ "$irc" -eq 130 ]; then ok; else bad "SIGINT: pipeline exit $irc, expected 130; stderr: $(tail -c 300 "$T/pint_err")"; fi
check "SIGINT: pipeline wrote nothing" test ! -e pint.bin

# ------------------------------------ what the writers do at the output --
# (issue 17) a symbolic link is followed (its target replaced, the link
# kept), a FIFO and a character device are written in place, a directory is
# refused; one output never names an input or another output.
run "$BIN" synth --out w_base.txt --users 20 --items 40 --seed 3 --quiet
mkdir -p wsub
printf 'old\n' >wsub/target.txt
ln -s wsub/target.txt w_link.txt
run "$BIN" synth --out w_link.txt --users 20 --items 40 --seed 3 --quiet
expect_rc "synth --out through a symbolic link" 0
check "the link stays a link" test -L w_link.txt
check "its target gets the output" cmp -s w_base.txt wsub/target.txt
ln -s wsub/made.txt w_dangling.txt
run "$BIN" synth --out w_dangling.txt --users 20 --items 40 --seed 3 --quiet
expect_rc "synth --out through a dangling link" 0
check "the dangling link's target is created" cmp -s w_base.txt wsub/made.txt
run "$BIN" synth --out /dev/null --users 20 --items 40 --seed 3 --quiet
expect_rc "synth --out /dev/null" 0
check "/dev/null is still a character device" test -c /dev/null
if mkfifo w_fifo 2>/dev/null; then
    (cat w_fifo >w_fifo.got) &
    run "$BIN" synth --out w_fifo --users 20 --items 40 --seed 3 --quiet
    wait
    expect_rc "synth --out FIFO" 0
    check "the FIFO stays a FIFO" test -p w_fifo
    check "the reader of the FIFO gets the output" cmp -s w_base.txt w_fifo.got
fi
run "$BIN" synth --out wsub --users 20 --items 40 --seed 3 --quiet
expect_rc "synth --out a directory" 1
expect_err "synth --out a directory says so" "directory"
if [ -f /proc/version ]; then
    run "$BIN" train --data w_base.txt --out /proc/version --epochs 1
    expect_rc "train --out /proc/version fails" 1
    check "train --out /proc/version fails before training" sh -c '! grep -q "epoch 1/" "$0"' "$T/err"
fi
run "$BIN" synth --out w_s10.txt --users 10 --items 40 --seed 1 --semantic-out w_s10.npy --quiet
run "$BIN" eval --semantic w_s10.npy --data n0.txt
expect_rc "eval --semantic with a matrix of too few rows" 1
expect_err "eval --semantic: the matrix is blamed, not the data" "w_s10.npy: rows for item ids 1..40"
# train --log: one JSON object per epoch, then a summary
run "$BIN" train --data w_base.txt --out w_log.bin --epochs 3 --dim 8 --quiet --log w_log.jsonl
expect_rc "train --log" 0
check "train --log: one line per epoch and a summary" sh -c '[ "$(wc -l <"$0")" -eq 4 ]' w_log.jsonl
if [ "$HAVE_PY" -eq 1 ]; then
    check "train --log: every line is JSON with the documented keys" python3 -c '
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ep, summ = rows[:-1], rows[-1]
keys = {"epoch", "max_epochs", "loss", "loss_next", "loss_aux", "loss_detect",
        "valid_hr10", "valid_ndcg10", "best_epoch", "best_ndcg10",
        "learning_rate", "aux_scale", "epoch_seconds", "elapsed_seconds"}
assert [r["epoch"] for r in ep] == [1, 2, 3], ep
for r in ep:
    assert set(r) == keys, sorted(r)
    assert r["loss_aux"] is None and r["loss_detect"] is None
    assert r["aux_scale"] is None
    assert abs(r["loss_next"] - r["loss"]) <= 1e-6 * r["loss"]
    assert r["learning_rate"] == 0.001 and r["valid_ndcg10"] >= 0
assert summ["summary"] is True and summ["status"] == "done", summ
assert summ["epochs"] == 3 and summ["model"] == "w_log.bin" and summ["parameters"] > 0
assert summ["best_valid_ndcg10"] == max(r["valid_ndcg10"] for r in ep)
' w_log.jsonl
    run "$BIN" train --data nz.txt --out w_log2.bin --semantic s.npy --gate detect --epochs 2 --dim 8 --quiet --log w_log2.jsonl
    check "train --log with a detector: the terms add up to the loss" python3 -c '
import json, sys
for r in [json.loads(l) for l in open(sys.argv[1])][:-1]:
    t = r["loss_next"] + r["loss_aux"] + r["loss_detect"]
    assert abs(t - r["loss"]) <= 1e-6 * r["loss"], r
    assert r["aux_scale"] == 1, r
' w_log2.jsonl
    # --backoff with patience 1: the weights go down by 10x after each
    # validation without a better NDCG@10, twice, then patience ends it
    run "$BIN" train --data nz.txt --out w_log4.bin --semantic s.npy --backoff --patience 1 --lr 0.02 --epochs 60 --dim 8 --log w_log4.jsonl
    expect_rc "train --backoff" 0
    expect_err "train --backoff says so" ", backoff;"
    check "train --backoff: the log shows the factors, the stop follows the rule" python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ep, summ = rows[:-1], rows[-1]
sc = [r["aux_scale"] for r in ep]
assert sc[0] == 1 and sc == sorted(sc, reverse=True), sc
assert all(abs(x - y) < 1e-7 for x, y in zip(sorted(set(sc), reverse=True), (1, 0.1, 0.01))), sc
assert len(ep) == 60 or len(set(sc)) == 3, sc
assert summ["best_valid_ndcg10"] == max(r["valid_ndcg10"] for r in ep)
' w_log4.jsonl
    if grep -q '"aux_scale":0.1,' w_log4.jsonl; then
        expect_err "train --backoff: the progress line shows the factor" "weights x0.1"
    fi
fi
usage_case "train --log = --out" train --data w_base.txt --out w_log.bin --log ./w_log.bin
run "$BIN" train --data w_base.txt --out w_log3.bin --epochs 1 --log nodir/x.jsonl
expect_rc "train --log in a missing directory" 1
expect_err "train --log in a missing directory names it" "nodir/x.jsonl"
check "train --log failing wrote no model" test ! -e w_log3.bin
printf '5 1 2\n5 3 4\n' >w_log_dup.txt
run "$BIN" train --data w_log_dup.txt --out w_log3.bin --epochs 1 --log w_log3.jsonl
check "train --log on bad data: the summary says failed" grep -q '"status":"failed"' w_log3.jsonl

# an interaction log read as sequences (MovieLens u.data: user item rating
# time per line): the repeated users give it away, every command refuses it
printf '196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n22\t377\t1\t878887116\n' >w_udata.txt
for c in popularity train; do
    case $c in
        train) run "$BIN" train --data w_udata.txt --out w_ud.bin --epochs 1 ;;
        *) run "$BIN" $c --data w_udata.txt ;;
    esac
    expect_rc "$c on an interaction log: refused" 1
    expect_err "$c on an interaction log: names the repeated user" "user 196 is on 2 lines (the 1st and 3rd sequences"
    expect_err "$c on an interaction log: says what it looks like" "one interaction per line"
    expect_err "$c on an interaction log: points to import" "iadsr import"
    expect_no_out "$c on an interaction log prints no metrics"
done
check "train on an interaction log wrote nothing" test ! -e w_ud.bin
printf '7 1 2 3 4 5\n8 2 3\n7 6 7 8 9 10\n' >w_dupuser.txt
run "$BIN" train --data w_dupuser.txt --out w_ud.bin --epochs 1
expect_rc "train with a user on two lines" 1
expect_err "train with a user on two lines says so" "user 7 is on 2 lines"
check "a user on two long lines is not called an interaction log" sh -c '! grep -q "one interaction per line" "$0"' "$T/err"
# a stray large id in a small file: refused with the numbers and the ways out
printf '1 5 99999999\n2 5 7\n' >w_bigid.txt
run "$BIN" train --data w_bigid.txt --out w_bigid.bin --epochs 1
expect_rc "train: ids far beyond the ids in use" 1
expect_err "train: the sparse-id error gives the numbers" "run up to 99999999 but only 3 distinct"
expect_err "train: the sparse-id error names the way out" "--sparse-ids"
run "$BIN" train --data w_bigid.txt --out w_bigid.bin --epochs 1 --sparse-ids
expect_rc "train --sparse-ids: then the planned memory is refused" 1
expect_err "train: the memory error names the limit" "--max-memory"
run "$BIN" pipeline --data w_bigid.txt --semantic w_s10.npy --epochs 1
expect_rc "pipeline: ids far beyond the ids in use" 1
expect_err "pipeline: the sparse-id error" "distinct ids"
run "$BIN" train --data w_base.txt --out w_mm.bin --epochs 1 --max-memory 0.001 --quiet
expect_rc "train --max-memory below a small model" 1
run "$BIN" train --data w_base.txt --out w_mm.bin --epochs 1 --max-memory 1 --quiet
expect_rc "train --max-memory above a small model" 0
printf 'id\ttitle\n1\tred shoe\n50000000\tblue hat\n' >w_items.tsv
printf 'red 0.1 0.2\nshoe 0.3 0.1\nblue 0.2 0.2\nhat 0.1 0.3\n' >w_vec.txt
run "$BIN" embed-text --items w_items.tsv --text-col title --vectors w_vec.txt --out w_e.npy
expect_rc "embed-text: ids far beyond the items" 1
expect_err "embed-text: the sparse-id error" "run up to 50000000 but only 2 distinct"
check "embed-text: nothing written" test ! -e w_e.npy
cp w_base.txt w_in.txt
usage_case "inject-noise --out and --labels one file by two names" \
    inject-noise --data w_in.txt --rate 0.2 --seed 1 --out w_a.txt --labels ./w_a.txt
expect_err "the same-file error names both options" "--out and --labels"
usage_case "synth --out and --semantic-out one file by two names" \
    synth --out w_b.txt --semantic-out ./wsub/../w_b.txt --users 3 --items 40
usage_case "train --out over its --data" train --data w_in.txt --out ./w_in.txt --epochs 1
usage_case "train --out over its --data through a link" train --data w_link.txt --out wsub/target.txt --epochs 1
usage_case "inject-noise --out over its --data" \
    inject-noise --data w_in.txt --rate 0.2 --seed 1 --out w_in.txt --labels w_l.txt
usage_case "inject-noise --labels over its --data" \
    inject-noise --data w_in.txt --rate 0.2 --seed 1 --out w_o.txt --labels ./w_in.txt
usage_case "denoise --out over its --data" \
    denoise --model md.iadsr --semantic s.npy --data nz.txt --out ./nz.txt
usage_case "denoise --out over its --model" \
    denoise --model md.iadsr --semantic s.npy --data nz.txt --out md.iadsr
usage_case "denoise --out over its --semantic" \
    denoise --model md.iadsr --semantic s.npy --data nz.txt --out ./s.npy
usage_case "pipeline --out-model and --out-clean one file" \
    pipeline --data nz.txt --semantic s.npy --out-model w_c --out-clean ./w_c
usage_case "pipeline --out-clean over its --data" \
    pipeline --data nz.txt --semantic s.npy --out-clean ./nz.txt
usage_case "embed-text --out over its --vectors" \
    embed-text --items w_in.txt --text-col 2 --vectors w_in.txt --out ./w_in.txt
check "nothing was replaced by the refused commands" cmp -s w_base.txt w_in.txt
run "$BIN" inject-noise --data w_in.txt --rate 0.2 --seed 1 --out /dev/null --labels /dev/null --quiet
expect_rc "inject-noise: /dev/null for both outputs" 0

# end to end on synthetic data: how well the gate finds injected items
run "$BIN" synth --out e2e.txt --users 600 --items 120 --seed 21 --semantic-out e2e.npy --quiet
run "$BIN" inject-noise --data e2e.txt --rate 0.2 --seed 9 --out e2e_n.txt --labels e2e_n.lab --quiet
run "$BIN" train --data e2e_n.txt --out e2e.iadsr --semantic e2e.npy --epochs 8 --dim 32 \
    --max-len 20 --dropout 0.2 --lr 0.003 --seed 1 --quiet
expect_rc "IADSR end to end: train --semantic" 0
run "$BIN" denoise --model e2e.iadsr --semantic e2e.npy --data e2e_n.txt --out e2e_c.txt --labels e2e_n.lab
expect_rc "IADSR end to end: denoise --labels" 0
echo "cli_test: IADSR end to end on synth data (600 users, rate 0.2, 8 epochs):" \
    "$(grep '^precision' "$T/out")"

finish ""
