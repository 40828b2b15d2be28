#!/bin/sh
# IADSR on Amazon Beauty (issue: align, denoise, clean): for each backbone,
# the raw backbone against IADSR (train jointly, clean the training parts,
# retrain the backbone on the cleaned data), the ablations, robustness to
# injected noise, the cold-item view and the cost per epoch. The gate's
# threshold theta is chosen on VALIDATION NDCG@10 of the retrained backbone;
# the test split is evaluated once per arm, with the chosen theta.
#
# Needs the title embeddings of `make bench-semantic` (or set IADSR_SEMANTIC).
# Environment:
#   IADSR_BEAUTY_DIR   data directory (default ../shared/data/beauty)
#   IADSR_SEMANTIC     item embeddings, padded rows (default build/bench/beauty-sif.npy)
#   IADSR_BENCH_BACKBONES  default "sasrec gru4rec caser"
#   IADSR_BENCH_ARMS   default "main ablations noise" (main = raw + IADSR)
#   IADSR_BENCH_EPOCHS max epochs (default 60), patience 5
#   IADSR_BENCH_THETAS theta grid (default "1.0 1.25 1.5": on Beauty SASRec's
#                      gate they drop 3.5%, 10% and 16% of the training items)
#   IADSR_BENCH_RATES  injected-noise rates (default "0.1 0.2")
#   IADSR_BENCH_JOBS   training runs at once (default 2, one thread each)
#   IADSR_BENCH_GATE_THETAS  thetas at which the noise arms' gates are scored
#                      against the injected labels (denoise only, no retraining)
#   IADSR_BENCH_COST   0 skips the cost-per-epoch measurement
# The ablations clean at the theta that drops the same fraction of training
# items as the full gate at its chosen theta (found by bisection), so that
# the gates are compared at equal drop rates.
# Writes build/bench/iadsr/ (models, logs, JSON) and build/bench/iadsr.md.
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.." || exit 1
DIR=${IADSR_BEAUTY_DIR:-../shared/data/beauty}
DATA=$DIR/sequences.txt
SEM=${IADSR_SEMANTIC:-build/bench/beauty-sif.npy}
BACKBONES=${IADSR_BENCH_BACKBONES:-sasrec gru4rec caser}
ARMS=${IADSR_BENCH_ARMS:-main ablations noise}
EPOCHS=${IADSR_BENCH_EPOCHS:-60}
THETAS=${IADSR_BENCH_THETAS:-1.0 1.25 1.5}
RATES=${IADSR_BENCH_RATES:-0.1 0.2}
JOBS=${IADSR_BENCH_JOBS:-2}
GATE_THETAS=${IADSR_BENCH_GATE_THETAS:-0 0.25 0.5 0.75 1.0 1.25 1.5 1.75}
COST=${IADSR_BENCH_COST:-1}
CLI=bin/iadsr
OUT=build/bench/iadsr
REPORT=build/bench/iadsr.md
# the Stage 2 GEMMs run in OpenBLAS: one BLAS thread per training run
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS

[ -r "$DATA" ] || { echo "bench-iadsr: SKIPPED: $DATA not found"; exit 0; }
[ -r "$SEM" ] || { echo "bench-iadsr: SKIPPED: $SEM missing (run: make bench-semantic)"; exit 0; }
[ -x "$CLI" ] || { echo "bench-iadsr: run 'make' first" >&2; exit 1; }
mkdir -p "$OUT" || exit 1

opts() {
    case $1 in
    sasrec) echo "--dropout 0.2 --lr 0.001" ;;
    gru4rec) echo "--dropout 0.4 --lr 0.002" ;;
    caser) echo "--dropout 0.8 --lr 0.001" ;;
    esac
}
# IADSR loss weights: lambda_align and lambda_recon. At the METHOD.md default
# (1, 1) GRU4Rec and Caser collapse within two epochs on Beauty, and so does
# SASRec on the noisy data; 0.1 each trains in those cases.
lam() { case $1 in sasrec) echo 1 ;; *) echo 0.1 ;; esac; }
COMMON="--epochs $EPOCHS --patience 5 --threads 1 --seed 1"
json() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" | head -n 1; }
# best validation NDCG@10 and its epoch from a training log
best_valid() { sed -n 's/.*best valid NDCG@10 \([0-9.]*\).*@\([0-9]*\).*/\1 \2/p' "$1" | tail -n 1; }
# mean seconds per epoch (training part) from a training log
sec_epoch() { sed -n 's/.* \([0-9.]*\)s\/epoch .*/\1/p' "$1" | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }'; }

# run at most $JOBS commands at once in the background; drain waits for all
# (the PIDs are tracked here: `jobs` does not see them from a subshell)
PIDS=""
running() {
    n=0
    for p in $PIDS; do
        kill -0 "$p" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}
queue() {
    while [ "$(running)" -ge "$JOBS" ]; do
        sleep 2
    done
    "$@" &
    PIDS="$PIDS $!"
}
drain() {
    wait
    PIDS=""
}

# train NAME DATA BACKBONE [extra args]: skipped when the model exists
train() {
    name=$1 data=$2 bb=$3
    shift 3
    [ -f "$OUT/$name.iadsr" ] && return 0
    # shellcheck disable=SC2046,SC2086
    "$CLI" train --backbone "$bb" $(opts "$bb") $COMMON --data "$data" \
        --out "$OUT/$name.iadsr" "$@" 2>"$OUT/$name.log" ||
        { echo "bench-iadsr: training $name failed:" >&2; tail -n 3 "$OUT/$name.log" >&2; }
}
# evaluate NAME MODEL DATA: test metrics, all users and cold items
evaluate() {
    "$CLI" eval --model "$2" --data "$3" --json >"$OUT/$1.test.json" 2>&1
    "$CLI" eval --model "$2" --data "$3" --cold-max 5 --cold-ref "$DATA" --json \
        >"$OUT/$1.cold.json" 2>&1
}
# clean NAME MODEL DATA THETA [labels]: writes NAME.txt and NAME.json
clean() {
    lab=""
    [ -n "${5:-}" ] && lab="--labels $5"
    # shellcheck disable=SC2086
    "$CLI" denoise --model "$2" --semantic "$SEM" --data "$3" --theta "$4" \
        --out "$OUT/$1.txt" --threads 2 --json $lab >"$OUT/$1.json" 2>"$OUT/$1.err"
}

# match_theta MODEL DATA FRACTION: the theta at which MODEL's gate drops
# FRACTION of DATA's training items (the dropped fraction grows with theta;
# 16 bisection steps over the score range [-3, 3])
match_theta() {
    lo=-3 hi=3 i=0
    while [ $i -lt 16 ]; do
        mid=$(awk -v a="$lo" -v b="$hi" 'BEGIN { printf "%.4f", (a + b) / 2 }')
        "$CLI" denoise --model "$1" --semantic "$SEM" --data "$2" --theta "$mid" \
            --out "$OUT/.match.txt" --threads 2 --json >"$OUT/.match.json" 2>/dev/null ||
            return 1
        f=$(dropped "$OUT/.match.json" %.6f)
        if awk -v a="$f" -v b="$3" 'BEGIN { exit !(a < b) }'; then
            lo=$mid
        else
            hi=$mid
        fi
        i=$((i + 1))
    done
    rm -f "$OUT/.match.txt" "$OUT/.match.json"
    awk -v a="$lo" -v b="$hi" 'BEGIN { printf "%.3f", (a + b) / 2 }'
}

# iadsr_arm TAG DATA BACKBONE [train args]: joint training, the theta grid
# (clean + retrain each), theta chosen on validation; prints nothing, leaves
# TAG.theta with the chosen theta
iadsr_arm() {
    tag=$1 data=$2 bb=$3
    shift 3
    train "$tag-joint" "$data" "$bb" --semantic "$SEM" --gate paper "$@"
    [ -r "$OUT/$tag-joint.test.json" ] || evaluate "$tag-joint" "$OUT/$tag-joint.iadsr" "$data"
    if [ -n "${LABELS:-}" ]; then
        for th in $GATE_THETAS; do
            clean "$tag-gate-$th" "$OUT/$tag-joint.iadsr" "$data" "$th" "$LABELS"
        done
    fi
    for th in $THETAS; do
        clean "$tag-clean-$th" "$OUT/$tag-joint.iadsr" "$data" "$th" "${LABELS:-}"
        queue train "$tag-retrain-$th" "$OUT/$tag-clean-$th.txt" "$bb"
    done
    drain
    best=""
    bestv=-1
    for th in $THETAS; do
        v=$(best_valid "$OUT/$tag-retrain-$th.log" | cut -d' ' -f1)
        [ -n "$v" ] || continue
        if awk -v a="$v" -v b="$bestv" 'BEGIN { exit !(a > b) }'; then
            bestv=$v
            best=$th
        fi
    done
    echo "$best" >"$OUT/$tag.theta"
    [ -n "$best" ] && evaluate "$tag-iadsr" "$OUT/$tag-retrain-$best.iadsr" \
        "$OUT/$tag-clean-$best.txt"
}

row() { # label tag-of-json-pair dropped
    t=$OUT/$2.test.json c=$OUT/$2.cold.json
    [ -r "$t" ] || { echo "| $1 | (missing) | | | | | | | | |"; return; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "$(json "$t" HR@5)" "$(json "$t" HR@10)" "$(json "$t" HR@20)" \
        "$(json "$t" NDCG@5)" "$(json "$t" NDCG@10)" "$(json "$t" NDCG@20)" \
        "$(json "$c" NDCG@10)" "${3:-}"
}
dropped() { # clean json [printf format] -> fraction dropped
    [ -r "$1" ] || return
    awk -v a="$(json "$1" items_dropped)" -v b="$(json "$1" items_in)" -v f="${2:-%.3f}" \
        'BEGIN { if (b > 0) printf f, a / b }'
}

{
    echo "# IADSR on Beauty ($(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Training: \`iadsr train $COMMON\` + per-backbone options; IADSR = train --semantic (lambda SASRec 1, 1; GRU4Rec, Caser and every noisy arm 0.1, 0.1), denoise at theta in {$THETAS} chosen on validation, retrain, test once."
    echo
} >"$REPORT"

for bb in $BACKBONES; do
    case " $ARMS " in *" main "*)
        queue train "$bb-raw" "$DATA" "$bb"
        queue train "$bb-joint" "$DATA" "$bb" --semantic "$SEM" --gate paper \
            --lambda-align "$(lam "$bb")" --lambda-recon "$(lam "$bb")"
        drain
        evaluate "$bb-raw" "$OUT/$bb-raw.iadsr" "$DATA"
        iadsr_arm "$bb" "$DATA" "$bb"
        ;;
    esac
    case " $ARMS " in *" ablations "*)
        th=$(cat "$OUT/$bb.theta" 2>/dev/null)
        frac=$(dropped "$OUT/$bb-clean-$th.json")
        [ -n "$frac" ] || { echo "bench-iadsr: $bb ablations need the main arm first" >&2; continue; }
        THETAS_SAVE=$THETAS
        la=$(lam "$bb")
        queue train "$bb-collab-joint" "$DATA" "$bb" --semantic "$SEM" --gate paper --collab-only \
            --lambda-align "$la" --lambda-recon "$la"
        queue train "$bb-noalign-joint" "$DATA" "$bb" --semantic "$SEM" --gate paper \
            --lambda-align 0 --lambda-recon "$la"
        drain
        queue train "$bb-norecon-joint" "$DATA" "$bb" --semantic "$SEM" --gate paper \
            --lambda-align "$la" --lambda-recon 0
        drain
        for ab in collab noalign norecon; do
            [ -f "$OUT/$bb-$ab-joint.iadsr" ] || continue
            THETAS=$(match_theta "$OUT/$bb-$ab-joint.iadsr" "$DATA" "$frac") || continue
            iadsr_arm "$bb-$ab" "$DATA" "$bb"
        done
        THETAS=$THETAS_SAVE
        ;;
    esac
    case " $ARMS " in *" noise "*)
        for rate in $RATES; do
            nd=$OUT/noisy-$rate.txt
            [ -f "$nd" ] || "$CLI" inject-noise --data "$DATA" --rate "$rate" --seed 11 \
                --out "$nd" --labels "$OUT/noisy-$rate.labels" --quiet
            queue train "$bb-noisy$rate-raw" "$nd" "$bb"
            queue train "$bb-noisy$rate-joint" "$nd" "$bb" --semantic "$SEM" --gate paper \
                --lambda-align 0.1 --lambda-recon 0.1
            drain
            evaluate "$bb-noisy$rate-raw" "$OUT/$bb-noisy$rate-raw.iadsr" "$nd"
            # theta chosen on this arm's own validation split
            LABELS=$OUT/noisy-$rate.labels iadsr_arm "$bb-noisy$rate" "$nd" "$bb"
        done
        ;;
    esac

    th=$(cat "$OUT/$bb.theta" 2>/dev/null)
    {
        echo "## $bb ($(opts "$bb")); theta chosen on validation: ${th:-n/a}"
        echo
        echo "| arm | HR@5 | HR@10 | HR@20 | NDCG@5 | NDCG@10 | NDCG@20 | cold NDCG@10 | dropped |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        row "raw" "$bb-raw"
        row "IADSR backbone (joint training, no cleaning)" "$bb-joint"
        row "IADSR (clean + retrain)" "$bb-iadsr" "$(dropped "$OUT/$bb-clean-$th.json")"
        for ab in collab noalign norecon; do
            t2=$(cat "$OUT/$bb-$ab.theta" 2>/dev/null)
            row "$ab: IADSR backbone" "$bb-$ab-joint"
            row "$ab: clean (theta $t2) + retrain" "$bb-$ab-iadsr" "$(dropped "$OUT/$bb-$ab-clean-$t2.json")"
        done
        for rate in $RATES; do
            t2=$(cat "$OUT/$bb-noisy$rate.theta" 2>/dev/null)
            j=$OUT/$bb-noisy$rate-clean-$t2.json
            row "noisy $rate: raw" "$bb-noisy$rate-raw"
            row "noisy $rate: IADSR backbone" "$bb-noisy$rate-joint"
            row "noisy $rate: IADSR clean (theta $t2) + retrain" "$bb-noisy$rate-iadsr" "$(dropped "$j")"
        done
        for rate in $RATES; do
            echo
            echo "Gate of the IADSR model trained on noisy $rate, against the injected labels:"
            echo
            echo "| theta | dropped | precision | recall | F1 |"
            echo "| ---: | ---: | ---: | ---: | ---: |"
            for t2 in $GATE_THETAS; do
                j=$OUT/$bb-noisy$rate-gate-$t2.json
                [ -r "$j" ] || continue
                echo "| $t2 | $(json "$j" items_dropped) | $(json "$j" precision) | $(json "$j" recall) | $(json "$j" f1) |"
            done
        done
        echo
        echo "Validation (best NDCG@10 @ epoch) and s/epoch:"
        echo
        for f in "$OUT/$bb"-*.log; do
            [ -r "$f" ] || continue
            echo "- $(basename "$f" .log): $(best_valid "$f"), $(sec_epoch "$f") s/epoch"
        done
        echo
    } >>"$REPORT"
done
# cost per epoch, IADSR vs the backbone alone, side by side in one process
LIBS_PRIVATE=$(sed -n 's/^Libs.private:[[:blank:]]*//p' lib/libiadsr.pc)
if [ "$COST" != 0 ] && ${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude bench/iadsr_cost.c \
    -o "$OUT/iadsr_cost" lib/libiadsr.a $LIBS_PRIVATE -lm -lpthread; then
    {
        echo "## Cost per epoch (one thread, medians of 3 alternating epoch pairs)"
        echo
        for b in $BACKBONES; do
            case $b in sasrec) n=1 ;; gru4rec) n=2 ;; caser) n=3 ;; esac
            echo "- $b: $("$OUT/iadsr_cost" "$DATA" "$SEM" "$n" 3)"
        done
    } >>"$REPORT"
fi
# label-free reference detectors for the injected items (text, popularity)
PY=${PYTHON:-/usr/bin/python3}
if "$PY" -c 'import numpy' 2>/dev/null; then
    for rate in $RATES; do
        [ -r "$OUT/noisy-$rate.labels" ] || continue
        {
            echo
            echo "## Reference detectors, noisy $rate (bench/noise_baselines.py)"
            echo
            "$PY" bench/noise_baselines.py "$OUT/noisy-$rate.txt" \
                "$OUT/noisy-$rate.labels" "$SEM"
        } >>"$REPORT"
    done
fi
echo "bench-iadsr: wrote $REPORT"
