#!/bin/sh
# Renders `iadsr report` pages in headless Chromium: the DOM Chromium
# builds (--dump-dom) must hold every figure (<svg> elements and their
# captions), and a screenshot (--window-size=1200,2400) must be a non-empty
# PNG of that size. Network access is blocked for the browser (the page
# must not need any).
# Usage (from the repository root):
#   sh tests/report_render_test.sh [BIN] [--demo] [--png PATH]
#   BIN      the iadsr binary (default bin/iadsr)
#   --demo   the data of `make demo` (3,000 users, 600 items, 20% noise,
#            the demo's IADSR training) instead of a small run
#   --png P  copy the screenshot of the full report to P (docs/report.png
#            is made with --demo); it must stay under 300,000 bytes
# Chromium: $CHROMIUM, else chromium, chromium-browser or google-chrome on
# the PATH; without one the script fails (apt-get install chromium).
# SPDX-License-Identifier: MIT

set -u

NAME=report_render_test
BIN_ARG=bin/iadsr
DEMO=0
PNG_OUT=
while [ $# -gt 0 ]; do
    case $1 in
    --demo) DEMO=1 ;;
    --png)
        [ $# -ge 2 ] || { echo "$NAME: --png needs a path" >&2; exit 2; }
        PNG_OUT=$2
        shift
        ;;
    -*) echo "$NAME: unknown option $1" >&2; exit 2 ;;
    *) BIN_ARG=$1 ;;
    esac
    shift
done
if [ -n "$PNG_OUT" ]; then
    case $PNG_OUT in
    /*) ;;
    *) PNG_OUT=$(pwd)/$PNG_OUT ;;
    esac
fi

CHROME=${CHROMIUM:-}
if [ -z "$CHROME" ]; then
    for c in chromium chromium-browser google-chrome; do
        if command -v "$c" >/dev/null 2>&1; then
            CHROME=$(command -v "$c")
            break
        fi
    done
fi
if [ -z "$CHROME" ] || ! command -v "$CHROME" >/dev/null 2>&1; then
    echo "$NAME: headless Chromium is needed and was not found (set CHROMIUM," >&2
    echo "$NAME: or install it: apt-get install -y --no-install-recommends chromium)" >&2
    echo "$NAME: 0 passed, 1 failed"
    exit 1
fi
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
    echo "$NAME: $PY is needed to read the dumped DOM and the PNG header" >&2
    echo "$NAME: 0 passed, 1 failed"
    exit 1
fi

set -- "$BIN_ARG"
. "$(dirname "$0")/cli_harness.sh"

TIMEOUT=
if command -v timeout >/dev/null 2>&1; then
    TIMEOUT="timeout 180"
fi
# chrome ARGS...: headless, no sandbox (root in a container), no GPU, no
# network, a throw-away profile; stdout -> $T/out, stderr -> $T/err
chrome() {
    # shellcheck disable=SC2086
    run $TIMEOUT "$CHROME" --headless --no-sandbox --disable-gpu \
        --disable-dev-shm-usage --no-first-run --no-default-browser-check \
        --disable-extensions --hide-scrollbars --mute-audio \
        --host-resolver-rules='MAP * ~NOTFOUND' --proxy-server='127.0.0.1:9' \
        --user-data-dir="$T/profile" "$@"
}

# dom_ok DESC DOM N_SVG [TEXT...]: the DOM Chromium built holds N_SVG
# <svg> elements inside <figure>s with the captions "Figure 1." .. "Figure
# N_SVG.", drawn content (paths, lines or rects) in each, and each TEXT
cat >dom_check.py <<'EOF'
import sys
from html.parser import HTMLParser

class Dom(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.svg = self.fig = 0
        self.in_svg = self.in_cap = 0
        self.shapes = []
        self.caps = []
        self.text = []
    def handle_starttag(self, tag, attrs):
        self.visit(tag, True)
    def handle_startendtag(self, tag, attrs):
        self.visit(tag, False)
    def visit(self, tag, opens):
        if tag == "svg":
            self.svg += 1
            self.shapes.append(0)
            self.in_svg += opens
        elif tag == "figure":
            self.fig += 1
        elif tag == "figcaption":
            self.in_cap += opens
            self.caps.append("")
        elif self.in_svg and tag in ("line", "rect", "polyline", "circle", "text"):
            self.shapes[-1] += 1
    def handle_endtag(self, tag):
        if tag == "svg":
            self.in_svg -= 1
        elif tag == "figcaption":
            self.in_cap -= 1
    def handle_data(self, d):
        self.text.append(d)
        if self.in_cap:
            self.caps[-1] += d

dom_path, n = sys.argv[1], int(sys.argv[2])
src = open(dom_path, encoding="utf-8").read()
assert "<body" in src, "no body in the dumped DOM"
p = Dom()
p.feed(src)
assert p.svg == n, "%d <svg> in the DOM, expected %d" % (p.svg, n)
assert p.fig == n, "%d <figure> in the DOM, expected %d" % (p.fig, n)
assert len(p.caps) == n, p.caps
for k, cap in enumerate(p.caps, 1):
    assert cap.startswith("Figure %d. " % k), cap[:60]
for k, s in enumerate(p.shapes, 1):
    assert s >= 10, "figure %d has only %d shapes" % (k, s)
text = "".join(p.text)
for want in sys.argv[3:]:
    assert want in text, "missing %r" % want
print("%d figures: %s" % (n, " | ".join(c.split(":")[0][:50] for c in p.caps)))
EOF
dom_ok() {
    d=$1
    shift
    if "$PY" dom_check.py "$@" >"$T/py" 2>&1; then
        ok
        echo "$NAME: $d: $(head -n 1 "$T/py")"
    else
        bad "$d: $(tail -c 600 "$T/py" | tr '\n' ' ')"
    fi
}
# png_ok DESC FILE W H: a PNG of W x H pixels, more than 5 KB
cat >png_check.py <<'EOF'
import os, struct, sys
path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert data[12:16] == b"IHDR"
W, H = struct.unpack(">II", data[16:24])
assert (W, H) == (w, h), (W, H)
assert len(data) > 5000, "only %d bytes" % len(data)
print("%dx%d, %d bytes" % (W, H, len(data)))
EOF
png_ok() {
    if "$PY" png_check.py "$2" "$3" "$4" >"$T/py" 2>&1; then
        ok
        echo "$NAME: $1: $(head -n 1 "$T/py")"
    else
        bad "$1: $(tail -c 600 "$T/py" | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------- the run --
if [ "$DEMO" -eq 1 ]; then
    SYNTH="--users 3000 --items 600 --seed 7"
    TRAIN="--epochs 10 --dim 32 --max-len 20 --dropout 0.2 --lr 0.003 --threads 2 --seed 1"
    WHAT="the make demo data"
else
    SYNTH="--users 400 --items 150 --topics 6 --seed 7"
    TRAIN="--epochs 4 --dim 16 --max-len 20 --seed 1"
    WHAT="a small synthetic run"
fi
# shellcheck disable=SC2086
run "$BIN" synth --out synth.txt --semantic-out sem.npy $SYNTH --quiet
expect_rc "synth" 0
run "$BIN" inject-noise --data synth.txt --rate 0.2 --seed 7 --out noisy.txt --labels noisy.labels
expect_rc "inject-noise" 0
# shellcheck disable=SC2086
run "$BIN" train --data noisy.txt --out iadsr.iadsr --semantic sem.npy --gate detect \
    --log run.jsonl --quiet $TRAIN
expect_rc "train IADSR with the detector gate" 0
run "$BIN" report --model iadsr.iadsr --log run.jsonl --data noisy.txt --semantic sem.npy \
    --labels noisy.labels --threads 2 --out report.html \
    --title "IADSR on synthetic data: 20% injected noise"
expect_rc "report with every input" 0
run "$BIN" report --model iadsr.iadsr --log run.jsonl --out small.html
expect_rc "report of the model and its log" 0

# ------------------------------------------------------------- rendering --
chrome --dump-dom "file://$T/report.html"
expect_rc "chromium --dump-dom" 0
cp "$T/out" dom.html
dom_ok "full report ($WHAT)" dom.html 4 \
    "IADSR on synthetic data: 20% injected noise" "Training loss per epoch" \
    "Validation NDCG@10 per epoch" "Gate scores of the positions" \
    "Precision and recall" "Before and after cleaning" "theta"
chrome --dump-dom "file://$T/small.html"
expect_rc "chromium --dump-dom (model and log)" 0
cp "$T/out" dom_small.html
dom_ok "model and log" dom_small.html 2 "Summary line of the log"

chrome --screenshot="$T/report.png" --window-size=1200,2400 "file://$T/report.html"
expect_rc "chromium --screenshot" 0
png_ok "screenshot" report.png 1200 2400

if [ -n "$PNG_OUT" ] && [ -s report.png ]; then
    size=$(wc -c <report.png)
    if [ "$size" -lt 300000 ]; then
        if cp report.png "$PNG_OUT"; then ok; else bad "cannot write $PNG_OUT"; fi
        echo "$NAME: wrote $PNG_OUT ($size bytes)"
    else
        bad "the screenshot has $size bytes, over 300,000: not copied to $PNG_OUT"
    fi
fi

finish ""
