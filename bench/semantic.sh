#!/bin/sh
# Text-embedding benchmark on Amazon Beauty (issue: semantic item
# embeddings): time and coverage of `iadsr embed-text` over all titles, the
# text-only recommender against random and popularity baselines (METHOD.md
# protocol), and nearest-neighbour titles for a sanity check.
# Needs the word vectors: sh tools/fetch-word-vectors.sh (once).
# Environment: IADSR_BEAUTY_DIR (default ../shared/data/beauty),
#              IADSR_WORDVECS (default data/wink-sg-100d.txt).
# Writes build/bench/semantic.md.
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.." || exit 1
DIR=${IADSR_BEAUTY_DIR:-../shared/data/beauty}
VEC=${IADSR_WORDVECS:-data/wink-sg-100d.txt}
CLI=bin/iadsr
OUT=build/bench
EMB=$OUT/beauty-sif.npy
REPORT=$OUT/semantic.md
for f in "$DIR/items.tsv" "$DIR/sequences.txt"; do
    [ -r "$f" ] || { echo "bench-semantic: SKIPPED: $f not found"; exit 0; }
done
[ -r "$VEC" ] || { echo "bench-semantic: SKIPPED: $VEC missing (run: sh tools/fetch-word-vectors.sh)"; exit 0; }
[ -x "$CLI" ] || { echo "bench-semantic: run 'make' first" >&2; exit 1; }
mkdir -p "$OUT" || exit 1

# embed-text three times, median wall time (includes loading the vectors)
times=""
for i in 1 2 3; do
    t0=$(date +%s.%N)
    "$CLI" embed-text --items "$DIR/items.tsv" --text-col title --vectors "$VEC" \
        --out "$EMB" 2>"$OUT/embed.log" || { cat "$OUT/embed.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    times="$times $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
done
median=$(printf '%s\n' $times | sort -n | sed -n 2p)
coverage=$(sed -n 's/^iadsr: embed-text: \([0-9]* items with a non-zero vector.*\)$/\1/p' "$OUT/embed.log")

metric() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
run_eval() { # label, then CLI args
    label=$1; shift
    json=$("$CLI" "$@" --data "$DIR/sequences.txt" --json) || exit 1
    printf '| %s | %s | %s |\n' "$label" "$(echo "$json" | metric HR@10)" "$(echo "$json" | metric NDCG@10)"
}
n_items=$(tail -n +2 "$DIR/items.tsv" | wc -l)
# random ranking: expected HR@10 = 10/n, NDCG@10 = sum_{r<10} 1/log2(r+2) / n
rand=$(awk -v n="$n_items" 'BEGIN { s = 0; for (r = 0; r < 10; r++) s += log(2) / log(r + 2); printf "| random (expectation) | %.6f | %.6f |\n", 10 / n, s / n }')

{
    echo "# Text embeddings on Beauty ($(date -u +%Y-%m-%d))"
    echo
    echo "embed-text over $n_items titles: median $median s of 3 runs (load + embed + write)"
    echo
    echo "coverage: $coverage"
    echo
    echo "| recommender (test, full ranking) | HR@10 | NDCG@10 |"
    echo "| --- | ---: | ---: |"
    echo "$rand"
    run_eval "popularity" popularity
    run_eval "text only (SIF cosine)" eval --semantic "$EMB"
    run_eval "text only, history excluded" eval --semantic "$EMB" --exclude-history
    echo
    echo '```'
    /usr/bin/python3 bench/neighbours.py "$EMB" "$DIR/items.tsv" 2 4 5000
    echo '```'
} >"$REPORT"
cat "$REPORT"
