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
# ("uniform popularity"; "clean" adds the data without injected noise:
# every arm, clean + retrain, no labels to score), ARMS ("raw paper detect
# detect-collab"), LR (0.002), EPOCHS (200), PATIENCE (10). Another data
# set: DATA (a sequence file) with SEM (its semantic .npy, row 0 =
# padding) and OPTS (backbone options; default the hard shape's "--dim 64
# --max-len 50 --dropout 0.2 --lr $LR"). TLIMIT (seconds, default none)
# interrupts a training that runs longer, which then keeps its best epoch
# (the log says so): for machines that cap a command's time. GATE=0 and
# RETRAIN=0 skip the gate's scoring and clean + retrain (a later run
# without them does what is missing).
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
ARMS=${ARMS:-"raw paper detect detect-collab"}
LR=${LR:-0.002}
EPOCHS=${EPOCHS:-200}
PATIENCE=${PATIENCE:-10}
OPTS=${OPTS:-"--dim 64 --max-len 50 --dropout 0.2 --lr $LR"}
TLIMIT=${TLIMIT:-}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if [ -n "${DATA:-}" ]; then
    [ -n "${SEM:-}" ] || { echo "detector.sh: DATA needs SEM" >&2; exit 2; }
    [ -f "$OUT/data.txt" ] || cp "$DATA" "$OUT/data.txt"
    [ -f "$OUT/sem.npy" ] || cp "$SEM" "$OUT/sem.npy"
elif [ ! -f "$OUT/data.txt" ]; then
    "$IADSR" synth --out "$OUT/data.txt" --users "$USERS" --items "$ITEMS" \
        --topics 12 --min-len 80 --max-len 120 --p-follow 0.35 --p-topic 0.35 \
        --p-popular 0.3 --seed 11 --semantic-out "$OUT/sem.npy" \
        --semantic-dim 32 --semantic-noise 0.5 2>/dev/null
fi
COMMON="$OPTS --epochs $EPOCHS --patience $PATIENCE --threads $THREADS --quiet"

train() { # the training options; a time limit interrupts (best epoch kept)
    if [ -n "$TLIMIT" ]; then
        # --foreground: the signal reaches the trainer once (a second
        # Ctrl-C while saving would abort it)
        timeout --foreground -s INT "$TLIMIT" "$IADSR" train "$@" || [ $? -eq 124 ]
    else
        "$IADSR" train "$@"
    fi
}

arm_opts() {
    case $1 in
    raw) echo "" ;;
    paper) echo "--semantic $OUT/sem.npy --gate paper" ;;
    detect) echo "--semantic $OUT/sem.npy --gate detect" ;;
    detect-collab) echo "--semantic $OUT/sem.npy --gate detect --collab-only" ;;
    detect-clean) echo "--semantic $OUT/sem.npy --gate detect --clean-scores" ;;
    detect-mask) echo "--semantic $OUT/sem.npy --gate detect --input-mask" ;;
    esac
}

gate() { # KIND ARM SEED: the gate against the labels
    base="$OUT/$1-$2-s$3"
    [ "$2" = raw ] || [ "$1" = clean ] || [ -f "$base.gate" ] ||
        "$PY" "$HERE/gate_eval.py" "$base.iadsr" "$OUT/sem.npy" "$OUT/$1.txt" \
            "$OUT/$1.lab" >"$base.gate"
}

retrain() { # KIND ARM SEED: clean at the label-free theta, retrain raw
    base="$OUT/$1-$2-s$3"
    noisy="$OUT/$1.txt"
    [ "$1" = clean ] && noisy="$OUT/data.txt"
    [ -f "$base.retrain.test" ] && return 0
    lab=""
    [ "$1" = clean ] || lab="--labels $OUT/$1.lab"
    # shellcheck disable=SC2086
    "$IADSR" denoise --model "$base.iadsr" --semantic "$OUT/sem.npy" --data "$noisy" \
        --out "$base.clean.txt" $lab --json >"$base.denoise" 2>>"$base.log"
    train --data "$base.clean.txt" --out "$base.retrain.iadsr" --seed "$3" $COMMON 2>>"$base.log"
    "$IADSR" eval --model "$base.retrain.iadsr" --data "$base.clean.txt" --json >"$base.retrain.test"
}

one() { # KIND ARM SEED
    base="$OUT/$1-$2-s$3"
    noisy="$OUT/$1.txt"
    [ "$1" = clean ] && noisy="$OUT/data.txt"
    if [ ! -f "$base.test" ]; then
        # shellcheck disable=SC2046
        train --data "$noisy" --out "$base.iadsr" --seed "$3" $COMMON $(arm_opts "$2") 2>"$base.log"
        "$IADSR" eval --model "$base.iadsr" --data "$noisy" --json >"$base.test"
    fi
    [ "${GATE:-1}" = 1 ] && gate "$@"
    case $2 in detect | detect-clean | detect-mask)
        [ "${RETRAIN:-1}" = 1 ] && retrain "$@" ;;
    esac
    return 0
}

n=0
for kind in $KINDS; do
    if [ "$kind" != clean ] && [ ! -f "$OUT/$kind.lab" ]; then
        "$IADSR" inject-noise --data "$OUT/data.txt" --rate "$RATE" --seed 1 --dist "$kind" \
            --out "$OUT/$kind.txt" --labels "$OUT/$kind.lab" --quiet
    fi
    for s in $SEEDS; do
        for arm in $ARMS; do
            one "$kind" "$arm" "$s" &
            n=$((n + 1))
            if [ "$n" -ge "$JOBS" ]; then wait; n=0; fi
        done
    done
done
wait

ndcg10() { [ -f "$1" ] && sed -n 's/.*"NDCG@10": *\([0-9.eE+-]*\).*/\1/p' "$1"; }
{
for kind in $KINDS; do
    for s in $SEEDS; do
        echo "== $kind noise, rate $RATE, seed $s"
        for arm in $ARMS; do
            base="$OUT/$kind-$arm-s$s"
            [ -f "$base.test" ] || continue
            echo "-- $arm: backbone test NDCG@10 $(ndcg10 "$base.test")"
            [ -f "$base.gate" ] && sed 's/^/   /' "$base.gate"
            [ -f "$base.retrain.test" ] &&
                echo "   clean at the label-free theta + retrain: test NDCG@10 $(ndcg10 "$base.retrain.test")"
        done
    done
done
} | tee "$OUT/summary.txt"
