#!/bin/sh
# The denoising gates on injected noise (issue 16), on generated data of the
# hard shape without noise of its own: for each noise kind (uniform and
# popularity-drawn, rate RATE) and seed, trains the raw backbone, IADSR with
# the paper's gate and IADSR with the detector gate (full and
# collaborative-only) on the noisy data, scores every gate against the
# labels with bench/gate_eval.py (PR-AUC over all thetas, F1 at the
# label-free theta and at 0), cleans with the detector at its label-free
# theta (`iadsr denoise` proposes it), retrains a raw backbone on the
# cleaned data and evaluates it on the cleaned histories. Nothing is chosen
# on test or on the labels.
#
#   sh bench/detector.sh [OUTDIR]             (default build/detector)
#
# Knobs (environment): IADSR (bin/iadsr), PY (/usr/bin/python3), SEEDS ("1"),
# JOBS (1), THREADS (2), USERS (1000), ITEMS (1500), RATE (0.2), KINDS
# ("uniform popularity"), LR (0.002), EPOCHS (200), PATIENCE (10).
# Resumable: work whose output exists is skipped. SPDX-License-Identifier: MIT
set -eu
OUT=${1:-build/detector}
IADSR=${IADSR:-bin/iadsr}
PY=${PY:-/usr/bin/python3}
SEEDS=${SEEDS:-1}
JOBS=${JOBS:-1}
THREADS=${THREADS:-2}
USERS=${USERS:-1000}
ITEMS=${ITEMS:-1500}
RATE=${RATE:-0.2}
KINDS=${KINDS:-"uniform popularity"}
LR=${LR:-0.002}
EPOCHS=${EPOCHS:-200}
PATIENCE=${PATIENCE:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ ! -f "$OUT/data.txt" ]; then
    "$IADSR" synth --out "$OUT/data.txt" --users "$USERS" --items "$ITEMS" \
        --topics 12 --min-len 80 --max-len 120 --p-follow 0.35 --p-topic 0.35 \
        --p-popular 0.3 --seed 11 --semantic-out "$OUT/sem.npy" \
        --semantic-dim 32 --semantic-noise 0.5 2>/dev/null
fi
COMMON="--dim 64 --max-len 50 --dropout 0.2 --lr $LR --epochs $EPOCHS --patience $PATIENCE --threads $THREADS --quiet"

arm_opts() {
    case $1 in
    raw) echo "" ;;
    paper) echo "--semantic $OUT/sem.npy" ;;
    detect) echo "--semantic $OUT/sem.npy --gate detect" ;;
    detect-collab) echo "--semantic $OUT/sem.npy --gate detect --collab-only" ;;
    esac
}

one() { # KIND ARM SEED
    base="$OUT/$1-$2-s$3"
    noisy="$OUT/$1.txt"
    [ -f "$base.done" ] && return 0
    # shellcheck disable=SC2046
    "$IADSR" train --data "$noisy" --out "$base.iadsr" --seed "$3" $COMMON $(arm_opts "$2") 2>"$base.log"
    "$IADSR" eval --model "$base.iadsr" --data "$noisy" --json >"$base.test"
    if [ "$2" != raw ]; then
        "$PY" "$HERE/gate_eval.py" "$base.iadsr" "$OUT/sem.npy" "$noisy" "$OUT/$1.lab" >"$base.gate"
    fi
    if [ "$2" = detect ]; then
        "$IADSR" denoise --model "$base.iadsr" --semantic "$OUT/sem.npy" --data "$noisy" \
            --out "$base.clean.txt" --labels "$OUT/$1.lab" --json >"$base.denoise" 2>>"$base.log"
        "$IADSR" train --data "$base.clean.txt" --out "$base.retrain.iadsr" --seed "$3" $COMMON 2>>"$base.log"
        "$IADSR" eval --model "$base.retrain.iadsr" --data "$base.clean.txt" --json >"$base.retrain.test"
    fi
    touch "$base.done"
}

n=0
for kind in $KINDS; do
    if [ ! -f "$OUT/$kind.lab" ]; then
        "$IADSR" inject-noise --data "$OUT/data.txt" --rate "$RATE" --seed 1 --dist "$kind" \
            --out "$OUT/$kind.txt" --labels "$OUT/$kind.lab" --quiet
    fi
    for s in $SEEDS; do
        for arm in raw paper detect detect-collab; do
            one "$kind" "$arm" "$s" &
            n=$((n + 1))
            if [ "$n" -ge "$JOBS" ]; then wait; n=0; fi
        done
    done
done
wait

ndcg10() { sed -n 's/.*"NDCG@10": *\([0-9.eE+-]*\).*/\1/p' "$1"; }
{
for kind in $KINDS; do
    for s in $SEEDS; do
        echo "== $kind noise, rate $RATE, seed $s"
        echo "raw backbone on the noisy data: test NDCG@10 $(ndcg10 "$OUT/$kind-raw-s$s.test")"
        for arm in paper detect detect-collab; do
            echo "-- $arm: joint backbone test NDCG@10 $(ndcg10 "$OUT/$kind-$arm-s$s.test")"
            sed 's/^/   /' "$OUT/$kind-$arm-s$s.gate"
        done
        echo "-- detect: clean at the label-free theta + retrain: test NDCG@10 $(ndcg10 "$OUT/$kind-detect-s$s.retrain.test")"
    done
done
} | tee "$OUT/summary.txt"
