#!/bin/sh
# The pip package of the Python binding (bindings/python), installed and
# tested outside the source tree:
#   1. a fresh venv (python3 -m venv --system-site-packages, for numpy,
#      setuptools and wheel of the system), pip install --no-build-isolation
#      --no-deps ./bindings/python (which runs `make shared` in the
#      repository and bundles lib/libiadsr.so.<VERSION>);
#   2. from a directory outside the tree, with no IADSR_LIBRARY and no
#      PYTHONPATH: iadsr.__file__ and the library the process mapped must be
#      inside the venv and bindings/python must not be on sys.path; then the
#      test files of tests/python run against the installed package
#      (IADSR_TEST_INSTALLED=1), with numpy and again with
#      IADSR_PY_NO_NUMPY=1;
#   3. pip wheel --no-build-isolation --no-deps: exactly one wheel,
#      iadsr-<VERSION>-py3-none-<platform>.whl (VERSION from the library);
#   4. a second fresh venv (plain: no system packages) installs the wheel
#      and runs a smoke script (model, one epoch on a tiny dataset,
#      recommend), then pip uninstall must remove the bundled library too.
# Offline: nothing is fetched (PIP_NO_INDEX=1). Needs python3-venv,
# python3-pip, python3-setuptools, python3-wheel (and python3-numpy for
# the numpy half of the tests). Prints one summary line last; any failure
# exits 1.
#
# usage: sh tests/python/check_package.sh [REPO]   (default: this checkout)
#        PYTHON=/usr/bin/python3 (default when it exists), KEEP=1 keeps the
#        temporary directory.
# SPDX-License-Identifier: MIT

here=$(cd "$(dirname "$0")" && pwd) || exit 1
REPO=$(cd "${1:-$here/../..}" && pwd) || { echo "check_package: FAILED: no repository at ${1:-$here/../..}" >&2; exit 1; }
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
unset IADSR_LIBRARY PYTHONPATH PYTHONHOME IADSR_PY_NO_NUMPY
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

T=$(mktemp -d "${TMPDIR:-/tmp}/iadsr-package.XXXXXX") || exit 1
T=$(cd "$T" && pwd -P)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "check_package: kept $T"; else rm -rf "$T"; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "check_package: FAILED: $*" >&2
    echo "check_package: FAILED: $*"
    exit 1
}
step() { printf '\n== check_package: %s\n' "$*"; }

case "$T/" in "$REPO"/*) fail "the temporary directory $T is inside the repository";; esac
[ -f "$REPO/bindings/python/pyproject.toml" ] || fail "$REPO/bindings/python/pyproject.toml not found"
mkdir -p "$T/run1" "$T/run2" "$T/wheels" || fail "mkdir in $T"

# The installed module, the library it loaded (as mapped in the process)
# and sys.path, checked against a venv: ARGV venv repo.
cat > "$T/where.py" <<'EOF'
import os, sys
venv, repo = (os.path.realpath(a) for a in sys.argv[1:3])
bindings = os.path.join(repo, 'bindings', 'python')
bad = [p for p in sys.path if os.path.realpath(p or '.') == bindings]
assert not bad, 'bindings/python is on sys.path: %r' % (sys.path,)
import iadsr
def inside(p):
    return os.path.realpath(p).startswith(venv + os.sep)
assert inside(iadsr.__file__), 'iadsr.__file__ %s is not in %s' % (iadsr.__file__, venv)
assert inside(iadsr.LIBRARY_PATH), 'iadsr.LIBRARY_PATH %s is not in %s' % (iadsr.LIBRARY_PATH, venv)
with open('/proc/self/maps') as fh:
    mapped = sorted({l.split(None, 5)[5].strip() for l in fh
                     if len(l.split(None, 5)) == 6 and 'libiadsr' in l})
assert mapped and all(inside(m) for m in mapped), 'mapped: %r' % mapped
print('iadsr %s from %s, library %s (version %s)'
      % (iadsr.version(), iadsr.__file__, mapped[0], iadsr.version()))
EOF

# The tests of tests/python against the installed package; writes
# "run skipped" to ARGV[3].
cat > "$T/run_tests.py" <<'EOF'
import os, runpy, sys, unittest
venv, repo, counts = sys.argv[1:4]
sys.argv[1:] = [venv, repo]
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'where.py'))
suite = unittest.defaultTestLoader.discover(os.path.join(repo, 'tests', 'python'))
res = unittest.TextTestRunner(verbosity=1).run(suite)
with open(counts, 'w') as fh:
    fh.write('%d %d\n' % (res.testsRun, len(res.skipped)))
sys.exit(0 if res.wasSuccessful() and res.testsRun > 0 else 1)
EOF

cat > "$T/smoke.py" <<'EOF'
import random, iadsr
rng = random.Random(7)
n_items = 30
seqs = [[rng.randrange(1, n_items + 1) for _ in range(rng.randrange(4, 10))]
        for _ in range(60)]
ds = iadsr.Dataset.from_sequences(seqs, n_items=n_items)
model = iadsr.Model.create(n_items, backbone='sasrec', dim=16, max_seq_len=12)
with iadsr.Trainer(ds, model, max_epochs=1, seed=1) as tr:
    assert tr.fit(callback=lambda info: print('epoch', info.epoch, 'loss %.4f' % info.loss))
    assert tr.epochs_done == 1
    best = tr.snapshot()
ids, scores = best.context().topk(seqs[0], 5, exclude_history=True)
ids = list(ids)
assert len(ids) == 5 and all(1 <= i <= n_items and i not in seqs[0] for i in ids), ids
print('smoke: recommend', ids, 'HR@10 %.3f' % best.evaluate(ds)['HR@10'])
EOF

step "venv 1 ($PYTHON -m venv --system-site-packages)"
"$PYTHON" -m venv --system-site-packages "$T/venv1" \
    || fail "$PYTHON -m venv (apt-get install python3-venv)"
V1=$T/venv1/bin/python
"$V1" -m pip --version || fail "no pip in the venv (apt-get install python3-pip)"
"$V1" -c 'import setuptools, wheel' \
    || fail "setuptools and wheel are needed (apt-get install python3-setuptools python3-wheel)"

step "pip install --no-build-isolation --no-deps $REPO/bindings/python"
(cd "$T/run1" && "$V1" -m pip install --no-build-isolation --no-deps "$REPO/bindings/python") \
    || fail "pip install of bindings/python"

step "the installed package, from $T/run1"
(cd "$T/run1" && "$V1" "$T/where.py" "$T/venv1" "$REPO") \
    || fail "the installed iadsr is not the venv's"
ver=$(cd "$T/run1" && "$V1" -c 'import iadsr; print(iadsr.version())') || fail "iadsr.version()"
dist_ver=$(cd "$T/run1" && "$V1" -c 'from importlib.metadata import version; print(version("iadsr"))') \
    || fail "importlib.metadata.version('iadsr')"
[ "$ver" = "$dist_ver" ] || fail "package version $dist_ver differs from the library's $ver"

step "tests/python against the installed package (numpy: $("$V1" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo absent))"
(cd "$T/run1" && IADSR_TEST_INSTALLED=1 IADSR_TEST_REPO="$REPO" \
    "$V1" "$T/run_tests.py" "$T/venv1" "$REPO" "$T/counts1") \
    || fail "tests/python against the installed package"
step "the same without numpy (IADSR_PY_NO_NUMPY=1)"
(cd "$T/run1" && IADSR_TEST_INSTALLED=1 IADSR_TEST_REPO="$REPO" IADSR_PY_NO_NUMPY=1 \
    "$V1" "$T/run_tests.py" "$T/venv1" "$REPO" "$T/counts2") \
    || fail "tests/python against the installed package, IADSR_PY_NO_NUMPY=1"

step "pip wheel --no-build-isolation --no-deps $REPO/bindings/python"
(cd "$T/run1" && "$V1" -m pip wheel --no-build-isolation --no-deps "$REPO/bindings/python" -w "$T/wheels") \
    || fail "pip wheel"
n=0
for f in "$T"/wheels/*; do [ -e "$f" ] && n=$((n + 1)) && whl=${f##*/}; done
[ "$n" -eq 1 ] || fail "expected one wheel in $T/wheels, found $n"
case "$whl" in
    "iadsr-$ver-py3-none-any.whl") fail "$whl is tagged as pure Python (it carries libiadsr.so)";;
    "iadsr-$ver-py3-none-linux_"*.whl) ;;
    *) fail "unexpected wheel name $whl (want iadsr-$ver-py3-none-linux_<arch>.whl)";;
esac
echo "wheel: $whl ($(wc -c < "$T/wheels/$whl") bytes)"

step "venv 2 (plain, no system packages): pip install $whl"
"$PYTHON" -m venv "$T/venv2" || fail "$PYTHON -m venv (second venv)"
V2=$T/venv2/bin/python
(cd "$T/run2" && "$V2" -m pip install --no-deps "$T/wheels/$whl") || fail "pip install of the wheel"
(cd "$T/run2" && "$V2" "$T/where.py" "$T/venv2" "$REPO") || fail "the wheel's iadsr is not the venv's"
(cd "$T/run2" && "$V2" "$T/smoke.py") || fail "the smoke script with the wheel"
(cd "$T/run2" && "$V2" -m pip uninstall -y iadsr) || fail "pip uninstall iadsr"
left=$(cd "$T/venv2" && find . -name 'iadsr*' -o -name 'libiadsr*' | head -n 5)
[ -z "$left" ] || fail "pip uninstall left $left in venv 2"

read -r run1 skip1 < "$T/counts1" || fail "no test counts"
read -r run2 skip2 < "$T/counts2" || fail "no test counts"
echo "check_package: OK: iadsr $ver installed from bindings/python passed tests/python outside the tree ($run1 tests, $skip1 skipped; without numpy $run2, $skip2 skipped); $whl installed in a fresh venv, trained and recommended, uninstalled cleanly"
