#!/bin/sh
# Per-backbone benchmark on Amazon Beauty: for SASRec, GRU4Rec and Caser,
# train with the CLI (the configuration chosen on validation, README),
# report seconds per epoch (mean over the run, validation included), peak RSS while training,
# test HR/NDCG@10 and single-user scoring latency on one pinned core.
# Environment:
#   IADSR_BEAUTY          sequence file (default ../shared/data/beauty/sequences.txt)
#   IADSR_BENCH_EPOCHS    maximum epochs (default 200; 3 = timing-only run)
#   IADSR_BENCH_BACKBONES subset, e.g. "gru4rec caser" (default: all three)
#   IADSR_BENCH_USERS     users for the latency run (default 2000)
# Writes build/bench/backbones.md and the logs next to it.
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.." || exit 1
DATA=${IADSR_BEAUTY:-../shared/data/beauty/sequences.txt}
EPOCHS=${IADSR_BENCH_EPOCHS:-200}
BACKBONES=${IADSR_BENCH_BACKBONES:-sasrec gru4rec caser}
N_USERS=${IADSR_BENCH_USERS:-2000}
CLI=bin/iadsr
OUT=build/bench
REPORT=$OUT/backbones.md
[ -r "$DATA" ] || { echo "bench-backbones: SKIPPED: $DATA not found"; exit 0; }
[ -x "$CLI" ] && [ -f lib/libiadsr.a ] || { echo "bench-backbones: run 'make' first" >&2; exit 1; }
mkdir -p "$OUT" || exit 1
LIBS_PRIVATE=$(sed -n 's/^Libs.private:[[:blank:]]*//p' lib/libiadsr.pc)
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude bench/bench_scoring.c \
    -o "$OUT/bench_scoring" lib/libiadsr.a $LIBS_PRIVATE -lm -lpthread || exit 1
if command -v taskset >/dev/null 2>&1; then PIN="taskset -c 0"; else PIN=""; fi
TIME=""
[ -x /usr/bin/time ] && TIME="/usr/bin/time -v"

# The configurations selected on validation NDCG@10 (README, "Backbones").
config() {
    case $1 in
    sasrec) echo "--dropout 0.2 --lr 0.0003" ;;
    gru4rec) echo "--dropout 0.4 --lr 0.002" ;;
    caser) echo "--dropout 0.8 --lr 0.001" ;;
    esac
}
json() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" | head -n 1; }
res() { sed -n "s/^RESULT $2 //p" "$1" | tail -n 1; }

{
    echo "# Backbones on Beauty ($(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Training: \`iadsr train --threads 2 --seed 1\`, max $EPOCHS epochs, patience 10; latency: one user, all items, one pinned core."
    echo
    echo "| backbone | options | epochs (best) | s/epoch (mean, incl. validation) | peak RSS MiB | test HR@10 | test NDCG@10 | latency p50 / p99 us |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$REPORT"
for b in $BACKBONES; do
    opts=$(config "$b")
    [ -n "$opts" ] || { echo "bench-backbones: unknown backbone '$b'" >&2; exit 2; }
    model=$OUT/beauty-$b.iadsr
    log=$OUT/train-$b.log
    echo "== $b: train $opts"
    # shellcheck disable=SC2086
    $TIME "$CLI" train --backbone "$b" $opts --data "$DATA" --out "$model" \
        --epochs "$EPOCHS" --threads 2 --seed 1 2>"$log" || { tail -n 5 "$log" >&2; exit 1; }
    tail -n 1 "$log"
    # the progress lines carry the running mean (training + validation)
    spe=$(sed -n 's/.*  \([0-9.]*\)s\/epoch .*/\1/p' "$log" | tail -n 1)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$log" |
        awk '{ printf "%.0f", $1 / 1024 }')
    best=$(sed -n 's/.*best valid NDCG@10 [0-9.]* HR@10 [0-9.]* @\([0-9]*\).*/\1/p' "$log")
    done_ep=$(sed -n 's/.*done after \([0-9]*\) epochs.*/\1/p' "$log")
    "$CLI" eval --model "$model" --data "$DATA" --json --threads 2 >"$OUT/eval-$b.json" || exit 1
    # shellcheck disable=SC2086
    OPENBLAS_NUM_THREADS=1 $PIN "$OUT/bench_scoring" "$model" "$DATA" latency "$N_USERS" \
        >"$OUT/latency-$b.log" 2>&1 || exit 1
    printf '| %s | `%s` | %s (%s) | %s | %s | %s | %s | %s / %s |\n' "$b" "$opts" \
        "${done_ep:-?}" "${best:-?}" "$spe" "${rss:-n/a}" \
        "$(json "$OUT/eval-$b.json" HR@10)" "$(json "$OUT/eval-$b.json" NDCG@10)" \
        "$(res "$OUT/latency-$b.log" latency_p50_us)" "$(res "$OUT/latency-$b.log" latency_p99_us)" >>"$REPORT"
done
cat "$REPORT"
