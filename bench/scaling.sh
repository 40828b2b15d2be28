#!/bin/sh
# The scaling curve (issue 20, item 5): synthetic data of several sizes
# (users x items), each trained 2 epochs with SASRec (L 50, d 64, 2 blocks,
# the CLI defaults) on 2 threads, and scored by bench_scoring (batched
# top-10, 2 threads). Records the faster epoch's training seconds, the
# process's peak RSS (GNU time) and users/s, then bench/scaling_plot.py fits
# the growth exponents and draws docs/scaling.svg.
#
# Environment:
#   IADSR_SCALING_SIZES  "USERS:ITEMS ..." (default: 10k..100k users and
#                        items together in four steps, plus the two corners
#                        100k:10k and 10k:100k that separate the exponents)
#   IADSR_SCALING_EPOCHS epochs per size (default 2)
# Writes build/bench/scaling/scaling.tsv and the logs next to it.
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.." || exit 1
SIZES=${IADSR_SCALING_SIZES:-"10000:10000 21544:21544 46416:46416 100000:100000 100000:10000 10000:100000"}
EPOCHS=${IADSR_SCALING_EPOCHS:-2}
OUT=build/bench/scaling
CLI=bin/iadsr
SCORE=build/bench/bench_scoring
TIME=/usr/bin/time
[ -x "$CLI" ] || { echo "scaling: run 'make' first" >&2; exit 1; }
[ -x "$TIME" ] || { echo "scaling: needs GNU time (Debian package 'time')" >&2; exit 1; }
mkdir -p "$OUT" || exit 1
if [ ! -x "$SCORE" ]; then
    LP=$(sed -n 's/^Libs.private:[[:blank:]]*//p' lib/libiadsr.pc)
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Iinclude bench/bench_scoring.c \
        -o "$SCORE" lib/libiadsr.a $LP -lm -lpthread || exit 1
fi
TSV=$OUT/scaling.tsv
printf 'users\titems\tinteractions\tepoch_s\tpeak_rss_mib\tusers_per_s\tmodel_mib\n' > "$TSV.tmp"
for s in $SIZES; do
    u=${s%%:*}; i=${s##*:}
    d=$OUT/u${u}_i${i}.txt m=$OUT/u${u}_i${i}.iadsr l=$OUT/u${u}_i${i}
    topics=$((i / 100)); [ $topics -lt 12 ] && topics=12
    echo "== $u users x $i items"
    [ -f "$d" ] || "$CLI" synth --out "$d" --users "$u" --items "$i" --topics $topics \
        --min-len 5 --max-len 15 --seed 1 --quiet || exit 1
    OPENBLAS_NUM_THREADS=1 "$TIME" -v "$CLI" train --data "$d" --out "$m" --epochs "$EPOCHS" \
        --threads 2 --quiet --log "$l.jsonl" > "$l.train.log" 2>&1 ||
        { echo "scaling: training failed (see $l.train.log)" >&2; exit 1; }
    ep=$(sed -n 's/.*"epoch_seconds":\([0-9.]*\).*/\1/p' "$l.jsonl" | sort -g | head -n 1)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$l.train.log")
    n=$(awk '{ n += NF - 1 } END { print n }' "$d")
    OPENBLAS_NUM_THREADS=1 "$SCORE" "$m" "$d" throughput 2 2000 > "$l.score.log" 2>&1 ||
        { echo "scaling: scoring failed (see $l.score.log)" >&2; exit 1; }
    ups=$(sed -n 's/^RESULT throughput_users_per_s //p' "$l.score.log")
    mb=$("$CLI" info --model "$m" | sed -n 's/^memory: *\([0-9]*\) bytes.*/\1/p')
    printf '%s\t%s\t%s\t%s\t%.1f\t%s\t%.1f\n' "$u" "$i" "$n" "$ep" "$(echo "$rss" | awk '{ print $1 / 1024 }')" \
        "$ups" "$(echo "$mb" | awk '{ print $1 / 1048576 }')" >> "$TSV.tmp"
    tail -n 1 "$TSV.tmp"
done
mv -f "$TSV.tmp" "$TSV"
/usr/bin/python3 bench/scaling_plot.py "$TSV" docs/scaling.svg
