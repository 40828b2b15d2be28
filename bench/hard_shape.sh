#!/bin/sh
# Joint training on data of the "hard shape" (issue 16): long histories over
# a small, dense catalogue with popular items that most users share. Trains
# every arm for every seed with the same budget and options, evaluates the
# best-validation model on test, and prints mean and std per arm.
#
#   sh bench/hard_shape.sh [OUTDIR]          (default build/hard_shape)
#
# Knobs (environment): IADSR (the CLI, default bin/iadsr), SEEDS ("1 2 3"),
# JOBS (trainings at once, default 1), THREADS (per training, default 2),
# USERS (2000), ITEMS (1500), ARMS (default: raw joint joint-w0.1
# joint-align-only joint-recon-only), EPOCHS (200), PATIENCE (10), LR (0.001),
# MIX (the synth probabilities, default "--p-follow 0.25 --p-topic 0.25
# --p-popular 0.3": 20% uniform noise). The table also goes to OUTDIR/summary.txt.
# Every run skips work whose output exists, so a stopped run resumes.
# SPDX-License-Identifier: MIT
set -eu
OUT=${1:-build/hard_shape}
IADSR=${IADSR:-bin/iadsr}
SEEDS=${SEEDS:-"1 2 3"}
JOBS=${JOBS:-1}
THREADS=${THREADS:-2}
USERS=${USERS:-2000}
ITEMS=${ITEMS:-1500}
EPOCHS=${EPOCHS:-200}
LR=${LR:-0.001}
MIX=${MIX:-"--p-follow 0.25 --p-topic 0.25 --p-popular 0.3"}
PATIENCE=${PATIENCE:-10}
ARMS=${ARMS:-"raw joint joint-w0.1 joint-align-only joint-recon-only"}
mkdir -p "$OUT"

if [ ! -f "$OUT/data.txt" ]; then
    "$IADSR" synth --out "$OUT/data.txt" --users "$USERS" --items "$ITEMS" \
        --topics 12 --min-len 80 --max-len 120 $MIX --seed 11 \
        --semantic-out "$OUT/sem.npy" \
        --semantic-dim 32 --semantic-noise 0.5
fi

# The options every arm shares (the raw backbone gets the same regulariser
# options as the joint one).
COMMON="--dim 64 --max-len 50 --dropout 0.2 --lr $LR --epochs $EPOCHS --patience $PATIENCE --threads $THREADS --quiet"

arm_opts() {
    case $1 in
    raw) echo "" ;;
    joint) echo "--semantic $OUT/sem.npy --gate paper" ;;
    joint-w0.1) echo "--semantic $OUT/sem.npy --gate paper --lambda-align 0.1 --lambda-recon 0.1" ;;
    joint-align-only) echo "--semantic $OUT/sem.npy --gate paper --lambda-recon 0" ;;
    joint-recon-only) echo "--semantic $OUT/sem.npy --gate paper --lambda-align 0" ;;
    *) echo "hard_shape.sh: unknown arm $1" >&2; exit 2 ;;
    esac
}

run_one() { # ARM SEED
    m="$OUT/$1-s$2.iadsr"
    if [ ! -f "$m.test" ]; then
        # shellcheck disable=SC2046
        "$IADSR" train --data "$OUT/data.txt" --out "$m" --seed "$2" $COMMON $(arm_opts "$1") 2>"$m.log"
        "$IADSR" eval --model "$m" --data "$OUT/data.txt" --split valid --json >"$m.valid"
        "$IADSR" eval --model "$m" --data "$OUT/data.txt" --json >"$m.test.tmp"
        mv "$m.test.tmp" "$m.test"
    fi
}

n=0
for arm in $ARMS; do
    for s in $SEEDS; do
        run_one "$arm" "$s" &
        n=$((n + 1))
        if [ "$n" -ge "$JOBS" ]; then wait; n=0; fi
    done
done
wait

ndcg10() { sed -n 's/.*"NDCG@10": *\([0-9.eE+-]*\).*/\1/p' "$1"; }
{
printf '%-18s %-22s %-22s %s\n' arm 'valid NDCG@10' 'test NDCG@10' 'per seed (test)'
for arm in $ARMS; do
    v=""; t=""
    for s in $SEEDS; do
        v="$v $(ndcg10 "$OUT/$arm-s$s.iadsr.valid")"
        t="$t $(ndcg10 "$OUT/$arm-s$s.iadsr.test")"
    done
    stats() { echo "$1" | awk '{ for (i = 1; i <= NF; i++) { s += $i; q += $i * $i } m = s / NF; sd = NF > 1 ? sqrt((q - NF * m * m) / (NF - 1)) : 0; printf "%.4f +- %.4f", m, sd }'; }
    printf '%-18s %-22s %-22s %s\n' "$arm" "$(stats "$v")" "$(stats "$t")" "$t"
done
} | tee "$OUT/summary.txt"
