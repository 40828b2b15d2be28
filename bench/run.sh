#!/bin/sh
# libiadsr benchmark on Amazon Beauty: training speed and memory, test
# metrics, the PyTorch peer's epoch time, scoring latency and throughput.
# Run from anywhere (normally `make bench`); see bench/README.md.
#
# Environment:
#   IADSR_BEAUTY         sequence file (default ../shared/data/beauty/sequences.txt)
#   IADSR_BENCH_EPOCHS   maximum training epochs (default 200; 2-3 = quick smoke run)
#   IADSR_BENCH_USERS    users scored by the scoring benchmarks (default 2000)
#   IADSR_BENCH_MODEL    use this checkpoint and skip training
#   IADSR_BENCH_DROPOUT, IADSR_BENCH_LR, IADSR_BENCH_LABEL_SMOOTHING,
#   IADSR_BENCH_HISTORY_PENALTY
#                        training settings (default 0.5, 1e-3, 0, 0: the
#                        peer's); other values make the peer comparison one
#                        of different settings, and the report says so
#   IADSR_BENCH_PEER     PyTorch peer script (default ../shared/bench/torch_sasrec.py);
#                        "skip" skips it
#   IADSR_BENCH_PYTHON   interpreter for the peer (default /usr/bin/python3)
#   OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS  honoured as given (never set here,
#                        except OPENBLAS_NUM_THREADS for the scoring runs)
# Writes build/bench/latest.md and the raw logs next to it.
# SPDX-License-Identifier: MIT
set -u

cd "$(dirname "$0")/.." || exit 1
DATA=${IADSR_BEAUTY:-../shared/data/beauty/sequences.txt}
B_DROPOUT=${IADSR_BENCH_DROPOUT:-0.5}
B_LR=${IADSR_BENCH_LR:-1e-3}
B_SMOOTH=${IADSR_BENCH_LABEL_SMOOTHING:-0}
B_HIST=${IADSR_BENCH_HISTORY_PENALTY:-0}
B_SETTINGS="dropout $B_DROPOUT, Adam lr $B_LR, label smoothing $B_SMOOTH, history penalty $B_HIST"
EPOCHS=${IADSR_BENCH_EPOCHS:-200}
N_USERS=${IADSR_BENCH_USERS:-2000}
PEER=${IADSR_BENCH_PEER:-../shared/bench/torch_sasrec.py}
PYTHON=${IADSR_BENCH_PYTHON:-/usr/bin/python3}
CC=${CC:-cc}
OUT=build/bench
REPORT=$OUT/latest.md
CLI=bin/iadsr
TRAIN_THREADS=2
failed=""
train_load=n/a; peer_load=n/a; score_load=n/a

if [ ! -r "$DATA" ]; then
    echo "bench: SKIPPED: Beauty sequences not found at '$DATA'"
    echo "bench: set IADSR_BEAUTY=/path/to/sequences.txt to run the benchmark"
    exit 0
fi
case $EPOCHS in ''|*[!0-9]*|0) echo "bench: IADSR_BENCH_EPOCHS must be a positive integer (got '$EPOCHS')" >&2; exit 2 ;; esac
case $N_USERS in ''|*[!0-9]*|0) echo "bench: IADSR_BENCH_USERS must be a positive integer (got '$N_USERS')" >&2; exit 2 ;; esac
if [ ! -x "$CLI" ] || [ ! -f lib/libiadsr.a ] || [ ! -f lib/libiadsr.pc ]; then
    echo "bench: $CLI or lib/libiadsr.a missing: run 'make' first (or 'make bench')" >&2
    exit 1
fi
mkdir -p "$OUT" || exit 1

# ---------------------------------------------------------------------------
# Build the two C harnesses against the static library (public header only).
# ---------------------------------------------------------------------------
WARN="-Wall -Wextra -Wpedantic -Wshadow -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes -Wundef -Wpointer-arith -Wvla -Wformat=2 -Wwrite-strings -Wredundant-decls -Wdouble-promotion"
LIBS_PRIVATE=$(sed -n 's/^Libs.private:[[:blank:]]*//p' lib/libiadsr.pc)
# bench_floor calls cblas_sgemm itself: OpenBLAS's header directory
BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/x86_64-linux-gnu/openblas-pthread")
for h in bench_train bench_scoring bench_floor; do
    # shellcheck disable=SC2086  # word splitting of the flag lists is intended
    $CC -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g $WARN -Iinclude $BLAS_CFLAGS \
        "bench/$h.c" -o "$OUT/$h" lib/libiadsr.a $LIBS_PRIVATE -lm -lpthread ||
        { echo "bench: cannot build bench/$h.c" >&2; exit 1; }
done

# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------
res() { # res LOG KEY -> value of the last "RESULT KEY value" line
    sed -n "s/^RESULT $2 //p" "$1" 2>/dev/null | tail -n 1
}
val() { # val LOG KEY -> as res, "n/a" when missing
    v=$(res "$1" "$2"); echo "${v:-n/a}"
}
json() { # json FILE KEY -> value of "KEY": in a one-line JSON object, or n/a
    v=$(sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1" 2>/dev/null | head -n 1); echo "${v:-n/a}"
}
div() { # div A B -> A / B with 2 decimals, or n/a
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { num = "^[0-9]*[.]?[0-9]+$"
        if (a !~ num || b !~ num || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}
kb_to_mib() {
    awk -v k="${1:-}" 'BEGIN { if (k !~ /^[0-9]+$/) print "n/a"; else printf "%.1f\n", k / 1024 }'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }
step() { echo; echo "== $*  [load $(loadavg)]"; }
now() { date +%s; }

# ---------------------------------------------------------------------------
# Environment.
# ---------------------------------------------------------------------------
build_line=$($CLI --version 2>&1 | sed -n 's/^build: //p')
version_line=$($CLI --version 2>&1 | head -n 1)
cpu=$(sed -n 's/^model name[[:blank:]]*:[[:blank:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')
isa=""
for f in avx2 avx512f avx512bw avx512vl; do
    grep -qw "$f" /proc/cpuinfo 2>/dev/null && isa="$isa $f"
done
case $build_line in
    *OpenBLAS*) core=$(printf '%s\n' "$build_line" | sed -n 's/.*[[:blank:]]\([A-Za-z0-9_]*\)[[:blank:]]MAX_THREADS=.*/\1/p') ;;
    *) core="" ;;
esac
coretype=${OPENBLAS_CORETYPE:-unset (auto-detected)}
nthreads_env=${OPENBLAS_NUM_THREADS:-unset (OpenBLAS default: all cores)}
load=$(loadavg)
if command -v taskset >/dev/null 2>&1; then PIN="taskset -c 0"; else PIN=""; fi

echo "libiadsr benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  $version_line"
echo "  build: $build_line"
echo "  CPU: ${cpu:-?} ($ncpu online; ISA:${isa:- none of avx2/avx512 reported})"
echo "  OpenBLAS core in use: ${core:-n/a (not OpenBLAS)}; OPENBLAS_CORETYPE=$coretype"
echo "  OPENBLAS_NUM_THREADS=$nthreads_env; load average at start: $load"
echo "  data: $DATA; max epochs $EPOCHS; scoring users $N_USERS"
core_note=""
case $isa in
    *avx512f*)
        case $core in
            ''|SkylakeX|Cooperlake|SapphireRapids) ;;
            *) core_note="OpenBLAS runs its '$core' kernels although this CPU has AVX-512; see bench/README.md (OPENBLAS_CORETYPE)."
               echo "  note: $core_note" ;;
        esac ;;
esac
awk -v l="$load" 'BEGIN { split(l, a, " "); exit !(a[1] + 0 > 0.5) }' &&
    echo "  note: the machine is busy (load $load): timings will be noisy"

# ---------------------------------------------------------------------------
# 0. The floor: this machine's best SGEMM rate (OpenBLAS under every core
#    type the CPU can run, the best kept), memory bandwidth, and the FLOPs
#    an epoch and a scored user need (bench/bench_floor.c).
# ---------------------------------------------------------------------------
FLOOR_LOG=$OUT/floor.log
: > "$FLOOR_LOG"
cores="auto"
case $isa in *avx2*) cores="$cores Haswell" ;; esac
case $isa in *avx512f*) cores="$cores SkylakeX Cooperlake SapphireRapids" ;; esac
best_rate=""; best_core=""
for ct in $cores; do
    step "floor: OPENBLAS_CORETYPE=$ct OPENBLAS_NUM_THREADS=$TRAIN_THREADS bench_floor"
    log=$OUT/floor_$ct.log
    if [ "$ct" = auto ]; then
        OPENBLAS_NUM_THREADS=$TRAIN_THREADS "$OUT/bench_floor" "$DATA" > "$log" 2>&1
    else
        OPENBLAS_CORETYPE=$ct OPENBLAS_NUM_THREADS=$TRAIN_THREADS "$OUT/bench_floor" "$DATA" > "$log" 2>&1
    fi
    cat "$log" >> "$FLOOR_LOG"
    r=$(res "$log" sgemm_gflops)
    grep '^sgemm' "$log"
    if [ -n "$r" ] && awk -v a="$r" -v b="${best_rate:-0}" 'BEGIN { exit !(a + 0 > b + 0) }'; then
        best_rate=$r; best_core=$ct
    fi
done
rate1=""
if [ -n "$best_core" ]; then
    step "floor, one thread: OPENBLAS_CORETYPE=$best_core OPENBLAS_NUM_THREADS=1"
    if [ "$best_core" = auto ]; then
        OPENBLAS_NUM_THREADS=1 "$OUT/bench_floor" "$DATA" > "$OUT/floor_1t.log" 2>&1
    else
        OPENBLAS_CORETYPE=$best_core OPENBLAS_NUM_THREADS=1 "$OUT/bench_floor" "$DATA" > "$OUT/floor_1t.log" 2>&1
    fi
    rate1=$(res "$OUT/floor_1t.log" sgemm_gflops)
    echo "best: $best_rate GFLOP/s on $TRAIN_THREADS threads ($best_core), $rate1 on one"
else
    echo "bench: the floor could not be measured (see $FLOOR_LOG)" >&2
    failed="$failed floor"
fi
FL=$OUT/floor_1t.log
epoch_gflop=$(val "$FL" epoch_gflop); score_mflop=$(val "$FL" score_mflop)
table_mib=$(val "$FL" table_mib); mem_read=$(val "$FL" mem_read_gbs)
table_read=$(val "$FL" table_read_gbs)
# floors: seconds per epoch, users/s on TRAIN_THREADS threads, one user's us
epoch_floor=$(awk -v f="$epoch_gflop" -v r="${best_rate:-}" 'BEGIN { if (r + 0 > 0 && f + 0 > 0) printf "%.2f", f / r; else print "n/a" }')
users_floor=$(awk -v f="$score_mflop" -v r="${best_rate:-}" 'BEGIN { if (r + 0 > 0 && f + 0 > 0) printf "%.0f", r * 1e3 / f; else print "n/a" }')
# one user on one thread: the FLOPs at the 1-thread rate, or one read of
# the table at the rate a table-sized buffer is read again and again
# (from whichever cache holds it), if that is slower
lat_floor=$(awk -v f="$score_mflop" -v r="${rate1:-}" -v t="$table_mib" -v bw="$table_read" 'BEGIN {
    if (!(r + 0 > 0 && f + 0 > 0)) { print "n/a"; exit }
    c = f / r * 1e3; m = (bw + 0 > 0) ? t * 1.048576 / bw * 1e3 : 0
    printf "%.1f", (c > m ? c : m) }')

# ---------------------------------------------------------------------------
# 1. Training (C harness linking the library) and test evaluation (CLI).
# ---------------------------------------------------------------------------
MODEL=${IADSR_BENCH_MODEL:-$OUT/beauty.iadsr}
TRAIN_LOG=$OUT/train.log
if [ -n "${IADSR_BENCH_MODEL:-}" ]; then
    step "training skipped: using IADSR_BENCH_MODEL=$MODEL"
    : > "$TRAIN_LOG"
else
    step "train: $OUT/bench_train $DATA $MODEL $EPOCHS $TRAIN_THREADS $B_DROPOUT $B_LR $B_SMOOTH $B_HIST (L=50 d=64 2 blocks 2 heads batch 256 patience 10)"
    train_load=$(loadavg)
    t0=$(now)
    # Shown live; success = the harness printed its summary (no pipefail in sh).
    "$OUT/bench_train" "$DATA" "$MODEL" "$EPOCHS" "$TRAIN_THREADS" \
        "$B_DROPOUT" "$B_LR" "$B_SMOOTH" "$B_HIST" 2>&1 | tee "$TRAIN_LOG"
    if [ -z "$(res "$TRAIN_LOG" model)" ]; then
        echo "bench: training FAILED (see $TRAIN_LOG)" >&2
        failed="$failed train"
        rm -f "$MODEL" # never score a stale model
    fi
    echo "(wall $(($(now) - t0))s)"
fi

EVAL_JSON=$OUT/eval_test.json
: > "$EVAL_JSON"
if [ -f "$MODEL" ]; then
    step "$CLI eval --model $MODEL --data $DATA --json --threads $TRAIN_THREADS"
    if "$CLI" eval --model "$MODEL" --data "$DATA" --json --threads "$TRAIN_THREADS" > "$EVAL_JSON"; then
        cat "$EVAL_JSON"
    else
        echo "bench: evaluation FAILED" >&2
        failed="$failed eval"
    fi
fi

# ---------------------------------------------------------------------------
# 2. PyTorch peer: one epoch, two threads.
# ---------------------------------------------------------------------------
PEER_LOG=$OUT/peer.log
: > "$PEER_LOG"
peer_s=""
peer_note=""
peer_rss_kb=""
if [ "$PEER" = skip ]; then
    peer_note="skipped (IADSR_BENCH_PEER=skip)"
elif [ ! -r "$PEER" ]; then
    peer_note="skipped: peer script $PEER not found"
elif ! "$PYTHON" -c 'import torch' > /dev/null 2>&1; then
    peer_note="skipped: $PYTHON cannot import torch (Debian: apt-get install python3-torch)"
else
    step "peer: $PYTHON $PEER $DATA 1 2"
    peer_load=$(loadavg)
    t0=$(now)
    if [ -x /usr/bin/time ]; then
        # GNU time reports the peer's peak RSS (Debian package "time")
        /usr/bin/time -v "$PYTHON" "$PEER" "$DATA" 1 2 2>&1 | tee "$PEER_LOG"
        peer_rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$PEER_LOG" | head -n 1)
    else
        "$PYTHON" "$PEER" "$DATA" 1 2 2>&1 | tee "$PEER_LOG"
    fi
    peer_s=$(sed -n 's/^epoch 0 loss [^ ]* time \([0-9.]*\)s.*/\1/p' "$PEER_LOG" | head -n 1)
    if [ -z "$peer_s" ]; then
        peer_note="FAILED: no 'epoch 0 loss ... time Xs' line (see $PEER_LOG)"
        failed="$failed peer"
    fi
    echo "(wall $(($(now) - t0))s)"
fi
[ -n "$peer_note" ] && echo "peer: $peer_note"

# ---------------------------------------------------------------------------
# 3. Scoring: latency on one pinned thread, batched throughput.
# ---------------------------------------------------------------------------
LAT_LOG=$OUT/latency.log
LATK_LOG=$OUT/latency_topk.log
LATK16_LOG=$OUT/latency_topk_fp16.log
LATK8_LOG=$OUT/latency_topk_int8.log
THR2F16_LOG=$OUT/throughput_2x1_fp16.log
THR2_LOG=$OUT/throughput_2x1.log
THR1_LOG=$OUT/throughput_1x2.log
THR11_LOG=$OUT/throughput_1x1.log
: > "$LAT_LOG"; : > "$THR2_LOG"; : > "$THR1_LOG"; : > "$THR11_LOG"
: > "$LATK_LOG"; : > "$LATK16_LOG"; : > "$LATK8_LOG"; : > "$THR2F16_LOG"
if [ -f "$MODEL" ]; then
    score_load=$(loadavg)
    step "latency: OPENBLAS_NUM_THREADS=1 ${PIN:+$PIN }bench_scoring latency $N_USERS"
    # shellcheck disable=SC2086  # $PIN is empty or "taskset -c 0"
    OPENBLAS_NUM_THREADS=1 $PIN "$OUT/bench_scoring" "$MODEL" "$DATA" latency "$N_USERS" > "$LAT_LOG" 2>&1 ||
        failed="$failed latency"
    cat "$LAT_LOG"
    # the recommendation call, fp32 then the fp16 and int8 scans, side by side
    for mode in latency-topk latency-topk-fp16 latency-topk-int8; do
        log=$LATK_LOG
        [ $mode = latency-topk-fp16 ] && log=$LATK16_LOG
        [ $mode = latency-topk-int8 ] && log=$LATK8_LOG
        step "latency: OPENBLAS_NUM_THREADS=1 ${PIN:+$PIN }bench_scoring $mode $N_USERS"
        # shellcheck disable=SC2086
        OPENBLAS_NUM_THREADS=1 $PIN "$OUT/bench_scoring" "$MODEL" "$DATA" $mode "$N_USERS" > "$log" 2>&1 ||
            failed="$failed $mode"
        cat "$log"
    done
    step "throughput: OPENBLAS_NUM_THREADS=1, 2 threads x 1 ctx each, fp16 scan contexts"
    OPENBLAS_NUM_THREADS=1 "$OUT/bench_scoring" "$MODEL" "$DATA" throughput-fp16 2 "$N_USERS" > "$THR2F16_LOG" 2>&1 ||
        failed="$failed throughput-2x1-fp16"
    cat "$THR2F16_LOG"
    step "throughput: OPENBLAS_NUM_THREADS=1, 2 threads x 1 ctx each"
    OPENBLAS_NUM_THREADS=1 "$OUT/bench_scoring" "$MODEL" "$DATA" throughput 2 "$N_USERS" > "$THR2_LOG" 2>&1 ||
        failed="$failed throughput-2x1"
    cat "$THR2_LOG"
    step "throughput: OPENBLAS_NUM_THREADS=2, 1 thread"
    OPENBLAS_NUM_THREADS=2 "$OUT/bench_scoring" "$MODEL" "$DATA" throughput 1 "$N_USERS" > "$THR1_LOG" 2>&1 ||
        failed="$failed throughput-1x2"
    cat "$THR1_LOG"
    step "throughput: OPENBLAS_NUM_THREADS=1, 1 thread (reference)"
    OPENBLAS_NUM_THREADS=1 "$OUT/bench_scoring" "$MODEL" "$DATA" throughput 1 "$N_USERS" > "$THR11_LOG" 2>&1 ||
        failed="$failed throughput-1x1"
    cat "$THR11_LOG"
else
    echo "bench: no model at $MODEL: scoring benchmarks skipped" >&2
fi

# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------
ep_med=$(val "$TRAIN_LOG" epoch_train_s_median)
mode="full run (max $EPOCHS epochs)"
[ "$EPOCHS" -lt 200 ] && mode="QUICK MODE (IADSR_BENCH_EPOCHS=$EPOCHS): metrics are not converged"
[ -n "${IADSR_BENCH_MODEL:-}" ] && mode="pre-trained model $MODEL (training not run)"
{
    echo "# libiadsr benchmark: Amazon Beauty"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $mode."
    echo
    echo "- $version_line"
    echo "- build: $build_line"
    echo "- CPU: ${cpu:-?}, $ncpu online CPUs, ISA:${isa:- n/a}; load average at start: $load"
    echo "- OpenBLAS core in use: **${core:-n/a}**; OPENBLAS_CORETYPE=$coretype; OPENBLAS_NUM_THREADS=$nthreads_env (training, eval, peer)"
    if [ -n "$core_note" ]; then echo "- note: $core_note"; fi
    echo "- data: \`$DATA\`"
    echo
    echo "## The floor (bench/bench_floor.c)"
    echo
    echo "Best SGEMM rate of this machine: **${best_rate:-n/a} GFLOP/s** on $TRAIN_THREADS threads (OpenBLAS core ${best_core:-n/a}; tried: $cores), ${rate1:-n/a} GFLOP/s on one; memory read $mem_read GB/s, copy $(val "$FL" mem_copy_gbs) GB/s; a table-sized buffer is read at $table_read GB/s."
    echo "An epoch needs $epoch_gflop GFLOP ($(val "$FL" epoch_xent_gflop) in the three cross-entropy GEMM passes, $(val "$FL" positions) positions x $(val "$FL" n_items) items); a scored user $score_mflop MFLOP (mean history $(val "$FL" score_mean_rows) rows); the fp32 item table is $table_mib MiB."
    echo
    echo "| what | measured | floor | multiple of the floor | peer | peer / libiadsr |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| train s/epoch (median), $TRAIN_THREADS threads | ${ep_med:-n/a} | $epoch_floor | $(div "${ep_med:-}" "$epoch_floor")x | ${peer_s:-n/a} | $(div "${peer_s:-}" "${ep_med:-}")x |"
    echo "| batched top-10 users/s, 2 threads | $(val "$THR2_LOG" throughput_users_per_s) | $users_floor | $(div "$users_floor" "$(val "$THR2_LOG" throughput_users_per_s)")x | | |"
    echo "| top-10 latency p50 us, 1 thread (fp32) | $(val "$LATK_LOG" latency_p50_us) | $lat_floor | $(div "$(val "$LATK_LOG" latency_p50_us)" "$lat_floor")x | | |"
    echo "| top-10 latency p50 us, 1 thread (fp16 scan) | $(val "$LATK16_LOG" latency_p50_us) | | | | |"
    echo "| top-10 latency p50 us, 1 thread (int8 scan) | $(val "$LATK8_LOG" latency_p50_us) | | | | |"
    echo
    echo "Floors: FLOPs / the best SGEMM rate (latency: the larger of that at the one-thread rate and one read of the fp32 table at the table-sized read rate; the fp16 scan reads half of it). Absolute seconds differ between machines; the multiples should not."
    echo
    echo "## Training (bench/bench_train.c: L=50, d=64, 2 blocks, 2 heads, $B_SETTINGS, batch 256, $TRAIN_THREADS library threads, patience 10)"
    if [ "$B_SETTINGS" != "dropout 0.5, Adam lr 1e-3, label smoothing 0, history penalty 0" ]; then
        echo
        echo "Note: these settings differ from the PyTorch peer's (dropout 0.5, lr 1e-3, plain cross-entropy); the speed ratio below compares different settings."
    fi
    echo
    echo "| epochs run | median train s/epoch | mean train s/epoch | median validation s/epoch | fit wall s | peak RSS (VmHWM) MiB |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| $(val "$TRAIN_LOG" epochs) | ${ep_med:-n/a} | $(val "$TRAIN_LOG" epoch_train_s_mean) | $(val "$TRAIN_LOG" epoch_valid_s_median) | $(val "$TRAIN_LOG" fit_s) | $(kb_to_mib "$(val "$TRAIN_LOG" peak_rss_kb)") |"
    echo
    echo "## Test metrics (\`$CLI eval --json\`, full ranking, leave-one-out)"
    echo
    echo "| users | HR@5 | HR@10 | HR@20 | NDCG@5 | NDCG@10 | NDCG@20 |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    echo "| $(json "$EVAL_JSON" users) | $(json "$EVAL_JSON" HR@5) | **$(json "$EVAL_JSON" HR@10)** | $(json "$EVAL_JSON" HR@20) | $(json "$EVAL_JSON" NDCG@5) | **$(json "$EVAL_JSON" NDCG@10)** | $(json "$EVAL_JSON" NDCG@20) |"
    echo
    echo "Raw: \`$(cat "$EVAL_JSON" 2>/dev/null)\`"
    echo
    echo "## PyTorch peer (\`torch_sasrec.py DATA 1 2\`: one epoch, 2 threads)"
    echo
    if [ -n "$peer_s" ]; then
        echo "| peer s/epoch | libiadsr median train s/epoch | speed-up (peer / libiadsr) |"
        echo "| ---: | ---: | ---: |"
        echo "| $peer_s | ${ep_med:-n/a} | **$(div "$peer_s" "$ep_med")x** |"
        echo
        echo "Peer after its epoch: \`$(grep '^test ' "$PEER_LOG" | tail -n 1)\`"
        if [ -n "$peer_rss_kb" ]; then
            echo
            echo "Peer peak RSS (GNU time, whole process incl. one epoch and the test evaluation): $((peer_rss_kb / 1024)) MiB"
        fi
    else
        echo "Peer: $peer_note"
    fi
    echo
    echo "## Scoring ($N_USERS users, history = seq[:-1]; bench/bench_scoring.c)"
    echo
    echo "| measurement | result |"
    echo "| --- | ---: |"
    echo "| iadsr_ctx_score latency, 1 thread${PIN:+ (pinned: $PIN)}, OPENBLAS_NUM_THREADS=1: p50 / p90 / p99 / mean us | $(val "$LAT_LOG" latency_p50_us) / $(val "$LAT_LOG" latency_p90_us) / $(val "$LAT_LOG" latency_p99_us) / $(val "$LAT_LOG" latency_mean_us) |"
    echo "| iadsr_ctx_topk (k = 10, history excluded) latency, 1 thread, fp32: p50 / p90 / p99 / mean us | $(val "$LATK_LOG" latency_p50_us) / $(val "$LATK_LOG" latency_p90_us) / $(val "$LATK_LOG" latency_p99_us) / $(val "$LATK_LOG" latency_mean_us) |"
    echo "| the same with IADSR_CTX_F_FP16_SCAN: p50 / p90 / p99 / mean us | $(val "$LATK16_LOG" latency_p50_us) / $(val "$LATK16_LOG" latency_p90_us) / $(val "$LATK16_LOG" latency_p99_us) / $(val "$LATK16_LOG" latency_mean_us) |"
    echo "| the same with IADSR_CTX_F_INT8_SCAN: p50 / p90 / p99 / mean us | $(val "$LATK8_LOG" latency_p50_us) / $(val "$LATK8_LOG" latency_p90_us) / $(val "$LATK8_LOG" latency_p99_us) / $(val "$LATK8_LOG" latency_mean_us) |"
    echo "| fp16 scan p50 / fp32 p50; int8 scan p50 / fp32 p50 | **$(div "$(val "$LATK16_LOG" latency_p50_us)" "$(val "$LATK_LOG" latency_p50_us)")**; **$(div "$(val "$LATK8_LOG" latency_p50_us)" "$(val "$LATK_LOG" latency_p50_us)")** |"
    echo "| users of DATA whose top-10 (ids and scores) differs from fp32: fp16; int8 | $(val "$LATK16_LOG" reduced_users_differing) of $(val "$LATK16_LOG" reduced_users_checked); $(val "$LATK8_LOG" reduced_users_differing) of $(val "$LATK8_LOG" reduced_users_checked) |"
    echo "| top-10 batched (256/call), 2 threads x own ctx, OPENBLAS_NUM_THREADS=1: users/s (median of 3) | **$(val "$THR2_LOG" throughput_users_per_s)** |"
    echo "| the same with fp16-scan contexts (batches keep the fp32 scan) | $(val "$THR2F16_LOG" throughput_users_per_s) |"
    echo "| top-10 batched, 1 thread, OPENBLAS_NUM_THREADS=2: users/s | $(val "$THR1_LOG" throughput_users_per_s) |"
    echo "| top-10 batched, 1 thread, OPENBLAS_NUM_THREADS=1: users/s | $(val "$THR11_LOG" throughput_users_per_s) |"
    echo
    echo "Logs: \`$OUT/*.log\`."
    echo "Load average: $train_load before training, $peer_load before the peer, $score_load before scoring, $(loadavg) at the end."
    if [ -n "$failed" ]; then echo; echo "FAILED steps:$failed"; fi
} > "$REPORT.tmp" && mv -f "$REPORT.tmp" "$REPORT"

echo
echo "==================== $REPORT ===================="
cat "$REPORT"
if [ -n "$failed" ]; then
    echo "bench: FAILED steps:$failed" >&2
    exit 1
fi
exit 0
