#!/bin/sh
# The MPI front end against one process (make check-mpi): bin/iadsr-mpi
# under `mpirun --oversubscribe -np N ... --distributed` must train the
# model one process of N x T threads trains (bit for bit for T = 1), and
# write the recommendations and cleaned sequences one process writes; a
# rank that fails, or a run without --distributed, ends every rank.
#
#   sh tests/mpi_test.sh bin/iadsr bin/iadsr-mpi
# SPDX-License-Identifier: MIT
set -u

MPI_BIN=${2:-bin/iadsr-mpi}
case $MPI_BIN in /*) ;; *) MPI_BIN=$PWD/$MPI_BIN ;; esac
command -v mpirun >/dev/null 2>&1 || {
    echo "mpi_test: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2
    exit 1
}
# the scratch directory, counters, ok and bad of the CLI tests
NAME=mpi_test
. "$(dirname "$0")/cli_harness.sh"
IADSR=$BIN
# CI runs as root in a container: allow it, keep to shared memory, and do
# without the cross-process copy that containers usually forbid
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN="timeout 300 mpirun --oversubscribe"

same() { # same FILE_A FILE_B WHAT
    if cmp -s "$1" "$2"; then ok; else bad "$3: $1 and $2 differ"; fi
}

"$IADSR" synth --out s.txt --users 600 --items 200 --seed 5 \
    --semantic-out sem.npy >/dev/null 2>&1 || { echo "mpi_test: synth failed" >&2; exit 1; }
TOPTS="--data s.txt --epochs 4 --patience 0 --quiet"

# 1. plain training: N ranks x 1 thread = one process x N threads, bit for bit
"$IADSR" train $TOPTS --out one2.iadsr --threads 2 2>/dev/null || bad "train --threads 2"
$MPIRUN -np 2 "$MPI_BIN" train $TOPTS --out two.iadsr --threads 1 --distributed \
    2>/dev/null || bad "mpirun -np 2 train"
same one2.iadsr two.iadsr "2 ranks vs 2 threads"
"$IADSR" train $TOPTS --out one3.iadsr --threads 3 2>/dev/null || bad "train --threads 3"
$MPIRUN -np 3 "$MPI_BIN" train $TOPTS --out three.iadsr --threads 1 --distributed \
    2>/dev/null || bad "mpirun -np 3 train"
# with 3 ranks MPI may group the ranks' partial sums otherwise than one
# process adds its 3 workers ((g0 + g1) + g2): equal within float rounding
# carried through the steps (docs/DISTRIBUTED.md); compared on the item
# tables and the user vectors, the served model
"$IADSR" export --model one3.iadsr --items-out i1.npy --data s.txt \
    --users-out u1.npy >/dev/null 2>&1 || bad "export one3"
"$IADSR" export --model three.iadsr --items-out i3.npy --data s.txt \
    --users-out u3.npy >/dev/null 2>&1 || bad "export three"
PY=/usr/bin/python3
if "$PY" -c 'import numpy' 2>/dev/null; then
    if "$PY" - <<'PYEOF'
import numpy as np, sys
for a, b in (("i1.npy", "i3.npy"), ("u1.npy", "u3.npy")):
    x, y = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    rel = np.abs(x - y).max() / np.abs(x).max()
    print("mpi_test: 3 ranks vs 3 threads, %s: max difference %.2g of the "
          "largest value" % (a[0] == "i" and "items" or "users", rel))
    if not rel < 1e-4:
        sys.exit(1)
PYEOF
    then ok; else bad "3 ranks vs 3 threads: beyond 1e-4"; fi
else
    skipped=$((skipped + 1))
fi

# 2. IADSR joint training (the detector gate, hold-out, back-off)
"$IADSR" train $TOPTS --semantic sem.npy --out onej.iadsr --threads 2 2>/dev/null ||
    bad "train --semantic --threads 2"
$MPIRUN -np 2 "$MPI_BIN" train $TOPTS --semantic sem.npy --out twoj.iadsr \
    --threads 1 --distributed 2>/dev/null || bad "mpirun -np 2 train --semantic"
same onej.iadsr twoj.iadsr "joint: 2 ranks vs 2 threads"

# 3. early stopping: every rank stops after the same epoch; rank 0 logs
E="--data s.txt --epochs 60 --patience 2 --lr 0.05 --quiet"
"$IADSR" train $E --out es1.iadsr --threads 2 --log es1.jsonl 2>/dev/null ||
    bad "train (early stopping)"
$MPIRUN -np 2 "$MPI_BIN" train $E --out es2.iadsr --threads 1 --distributed \
    --log es2.jsonl 2>/dev/null || bad "mpirun train (early stopping)"
same es1.iadsr es2.iadsr "early-stopped model"
e1=$(grep -c '"epoch"' es1.jsonl)
e2=$(grep -c '"epoch"' es2.jsonl)
if [ "$e1" = "$e2" ] && [ "$e1" -lt 60 ]; then ok; else bad "epochs $e1 vs $e2"; fi
# the curves: every epoch's validation NDCG@10, identical
v1=$(sed -n 's/.*"valid_ndcg10":\([^,]*\).*/\1/p' es1.jsonl)
v2=$(sed -n 's/.*"valid_ndcg10":\([^,]*\).*/\1/p' es2.jsonl)
if [ "$v1" = "$v2" ]; then ok; else bad "validation curves differ"; fi

# 4. recommend: the same bytes from 2 and 3 ranks as from one process
for fmt in "" "--json"; do
    "$IADSR" recommend --model two.iadsr --data s.txt --k 7 $fmt \
        >rec1.txt 2>/dev/null || bad "recommend $fmt"
    for n in 2 3; do
        $MPIRUN -np $n "$MPI_BIN" recommend --model two.iadsr --data s.txt \
            --k 7 $fmt --distributed >rec$n.txt 2>/dev/null ||
            bad "mpirun -np $n recommend $fmt"
        same rec1.txt rec$n.txt "recommend $fmt, $n ranks"
    done
done
# more ranks than users: empty blocks
head -2 s.txt >two_users.txt
"$IADSR" recommend --model two.iadsr --data two_users.txt --k 3 \
    >recs1.txt 2>/dev/null || bad "recommend (2 users)"
$MPIRUN -np 3 "$MPI_BIN" recommend --model two.iadsr --data two_users.txt \
    --k 3 --distributed >recs3.txt 2>/dev/null || bad "mpirun recommend (2 users)"
same recs1.txt recs3.txt "recommend, 3 ranks, 2 users"

# 5. denoise: the same cleaned file and summary
"$IADSR" denoise --model twoj.iadsr --semantic sem.npy --data s.txt \
    --out clean1.txt --json >sum1.json 2>/dev/null || bad "denoise"
$MPIRUN -np 2 "$MPI_BIN" denoise --model twoj.iadsr --semantic sem.npy \
    --data s.txt --out clean2.txt --json --distributed >sum2.json \
    2>/dev/null || bad "mpirun denoise"
same clean1.txt clean2.txt "denoise: cleaned file"
same sum1.json sum2.json "denoise: summary"
"$IADSR" denoise --model twoj.iadsr --semantic sem.npy --data s.txt \
    --theta 0.5 --out clean1t.txt >/dev/null 2>&1 || bad "denoise --theta"
$MPIRUN -np 3 "$MPI_BIN" denoise --model twoj.iadsr --semantic sem.npy \
    --data s.txt --theta 0.5 --out clean3t.txt --distributed >/dev/null \
    2>&1 || bad "mpirun -np 3 denoise --theta"
same clean1t.txt clean3t.txt "denoise --theta, 3 ranks"

# user rows (--user-semantic): each rank takes its block's rows
if "$PY" -c 'import numpy' 2>/dev/null; then
    "$PY" -c "
import numpy as np
n = sum(1 for l in open('s.txt') if l.strip())
d = np.load('sem.npy').shape[1]
np.save('usem.npy', np.random.default_rng(1).standard_normal((n, d)).astype(np.float32))"
    U="--model twoj.iadsr --semantic sem.npy --user-semantic usem.npy --data s.txt"
    "$IADSR" denoise $U --out cleanu1.txt >/dev/null 2>&1 || bad "denoise --user-semantic"
    $MPIRUN -np 3 "$MPI_BIN" denoise $U --out cleanu3.txt --distributed \
        >/dev/null 2>&1 || bad "mpirun denoise --user-semantic"
    same cleanu1.txt cleanu3.txt "denoise --user-semantic, 3 ranks"
else
    skipped=$((skipped + 1))
fi

# 6. one rank fails before training: every rank ends (no hang), non-zero
$MPIRUN -np 1 "$MPI_BIN" train $TOPTS --out f.iadsr --distributed : \
    -np 1 "$MPI_BIN" train --data missing.txt --epochs 4 --out f.iadsr \
    --distributed >/dev/null 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ ! -e f.iadsr ]; then ok; else
    bad "a failing rank: exit $rc (124 = hung)"; fi
$MPIRUN -np 1 "$MPI_BIN" recommend --model two.iadsr --data s.txt --k 3 \
    --distributed : -np 1 "$MPI_BIN" recommend --model missing.iadsr \
    --data s.txt --k 3 --distributed >/dev/null 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then ok; else
    bad "recommend with a failing rank: exit $rc"; fi

# 7. several ranks without --distributed, or a command that does not
#    split its work: refused with a usage error
$MPIRUN -np 2 "$MPI_BIN" train $TOPTS --out x.iadsr >/dev/null 2>err.txt
rc=$?
if [ $rc -eq 2 ] && grep -q "with --distributed" err.txt && [ ! -e x.iadsr ]; then
    ok; else bad "no --distributed: exit $rc"; fi
$MPIRUN -np 2 "$MPI_BIN" eval --model two.iadsr --data s.txt --distributed \
    >/dev/null 2>&1
rc=$?
if [ $rc -eq 2 ]; then ok; else bad "eval --distributed: exit $rc"; fi
# the plain binary has no MPI
"$IADSR" train $TOPTS --out x.iadsr --distributed >/dev/null 2>err.txt
rc=$?
if [ $rc -eq 2 ] && grep -q "make MPI=1" err.txt; then ok; else
    bad "bin/iadsr --distributed: exit $rc"; fi
# one rank of the MPI binary is an ordinary run
$MPIRUN -np 1 "$MPI_BIN" train $TOPTS --out one_rank.iadsr --threads 2 \
    --distributed 2>/dev/null || bad "mpirun -np 1"
same one2.iadsr one_rank.iadsr "1 rank x 2 threads vs 2 threads"

# A training of many epochs under mpirun (extra mpirun options first),
# sent signal $1 once epoch 2 is logged: every rank must stop after an
# epoch and rank 0 save the best model so far.
graceful_stop() {
    sig=$1
    shift
    rm -f sig.iadsr sig.jsonl
    mpirun --oversubscribe "$@" -np 2 "$MPI_BIN" train --data s.txt \
        --epochs 100000 --patience 0 --out sig.iadsr --log sig.jsonl \
        --distributed >/dev/null 2>sig.err &
    pid=$!
    n=0
    while [ $n -lt 600 ] && ! grep -q '"epoch":2,' sig.jsonl 2>/dev/null; do
        sleep 0.1
        n=$((n + 1))
    done
    kill -"$sig" $pid 2>/dev/null
    n=0
    while kill -0 $pid 2>/dev/null && [ $n -lt 600 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    if kill -0 $pid 2>/dev/null; then
        kill -9 $pid
        bad "SIG$sig: mpirun still running"
    else
        wait $pid
        if [ -s sig.iadsr ] && grep -q '"status":"interrupted"' sig.jsonl; then
            ok
        else
            bad "SIG$sig to mpirun: no model saved or no summary"
            cat sig.err >&2
        fi
    fi
}

# 8. SIGUSR1 to mpirun (it forwards it to every rank)
graceful_stop USR1
# 9. Ctrl-C (SIGINT) to mpirun: Open MPI sends the ranks SIGTERM, then
#    SIGKILL odls_base_sigkill_timeout seconds later; the ranks stop after
#    the epoch on SIGTERM and rank 0 saves, if that fits in the timeout
graceful_stop INT --mca odls_base_sigkill_timeout 5

finish "no numpy for /usr/bin/python3"
