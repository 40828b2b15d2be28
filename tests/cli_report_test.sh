#!/bin/sh
# Tests of `iadsr report`: usage and runtime errors (exit codes, messages,
# nothing written), malformed training logs named by file and line, and
# the HTML itself for each combination of inputs: well formed (every tag
# closes, checked with Python's html.parser), self-contained (no script,
# no http:// or https:// or src= reference), the expected number of <svg>
# figures, finite numbers in the SVG attributes, escaped text, charts for
# one epoch, constant series, an empty log and an empty histogram.
# Usage (from the repository root):  sh tests/cli_report_test.sh bin/iadsr
# Scratch files go under ${IADSR_TEST_TMPDIR:-/tmp}. The HTML checks need
# /usr/bin/python3; without it they are skipped (said so).
# SPDX-License-Identifier: MIT

set -u

NAME=cli_report_test
. "$(dirname "$0")/cli_harness.sh"

PY=/usr/bin/python3
HAVE_PY=0
if [ -x "$PY" ]; then
    HAVE_PY=1
else
    echo "cli_report_test: $PY not found: the HTML checks are skipped"
fi

usage_case() { # DESC ARGS...: exit 2, no stdout, no report written
    d=$1
    shift
    rm -f u.html
    run "$BIN" "$@"
    expect_rc "usage: $d" 2
    expect_no_out "usage: $d"
    check "usage: $d: nothing written" test ! -e u.html
}
runtime_case() { # DESC ARGS...: exit 1, no stdout, no report written
    d=$1
    shift
    rm -f u.html
    run "$BIN" "$@"
    expect_rc "runtime: $d" 1
    expect_no_out "runtime: $d"
    check "runtime: $d: nothing written" test ! -e u.html
}

# The HTML checker: well formed, self-contained, N <svg> elements, SVG
# attributes finite, and each further argument found in the text.
cat >check_html.py <<'EOF'
import math, re, sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}
NUMERIC = {"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width",
           "height"}

class Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.text = [], [], {}, []
    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))
    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs(tag, attrs)
    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append("</%s> at %s closes %s" % (
                tag, self.getpos(), self.stack[-1] if self.stack else "nothing"))
            return
        self.stack.pop()
    def handle_data(self, data):
        self.text.append(data)
    def attrs(self, tag, attrs):
        for k, v in attrs:
            v = v or ""
            if re.search(r"nan|inf", v, re.I) and k in NUMERIC | {"points", "viewbox", "transform"}:
                self.errors.append("<%s %s=%r>" % (tag, k, v))
            if k in NUMERIC:
                try:
                    f = float(v)
                    assert math.isfinite(f)
                except Exception:
                    self.errors.append("<%s %s=%r> is not a finite number" % (tag, k, v))
            if k == "points":
                for pair in v.split():
                    xs = pair.split(",")
                    if len(xs) != 2 or not all(math.isfinite(float(z)) for z in xs):
                        self.errors.append("<%s points> bad pair %r" % (tag, pair))

path, n_svg = sys.argv[1], int(sys.argv[2])
raw = open(path, "rb").read()
src = raw.decode("utf-8")  # must be valid UTF-8
low = src.lower()
for bad in ("<script", "http://", "https://", "src=", "href=", "url(",
            "@import", "<link", "<iframe", "<img", "<object", "<embed",
            "javascript:"):
    assert bad not in low, "found %r" % bad
assert src.startswith("<!DOCTYPE html>"), src[:40]
p = Checker()
p.feed(src)
p.close()
assert not p.errors, p.errors[:5]
assert not p.stack, "unclosed: %s" % p.stack[:5]
for t in ("html", "head", "body", "style", "h1"):
    assert p.tags.get(t) == 1, (t, p.tags.get(t))
# the page's <title> and one per figure (its accessible name)
assert p.tags.get("title") == 1 + n_svg, ("title", p.tags.get("title"))
assert p.tags.get("svg", 0) == n_svg, ("svg", p.tags.get("svg", 0), n_svg)
assert p.tags.get("figure", 0) == n_svg, ("figure", p.tags.get("figure", 0))
assert p.tags.get("figcaption", 0) == n_svg
text = "".join(p.text)
for k in range(1, n_svg + 1):
    assert "Figure %d. " % k in text, "no caption of figure %d" % k
for want in sys.argv[3:]:
    if want.startswith("!"):
        assert want[1:] not in text, "found %r" % want[1:]
    else:
        assert want in text, "missing %r" % want
EOF

# html_ok DESC FILE N_SVG [TEXT|!TEXT ...]: the checks above
html_ok() {
    d=$1
    shift
    if [ "$HAVE_PY" -eq 0 ]; then
        skipped=$((skipped + 1))
        return
    fi
    if "$PY" check_html.py "$@" >"$T/py" 2>&1; then ok; else bad "$d: $(tail -c 600 "$T/py" | tr '\n' ' ')"; fi
}

# ---------------------------------------------------------------- fixtures --
run "$BIN" synth --out d.txt --users 240 --items 90 --topics 5 --seed 3 \
    --semantic-out s.npy --quiet
expect_rc "synth" 0
run "$BIN" inject-noise --data d.txt --rate 0.2 --seed 1 --out nz.txt --labels nz.lab
expect_rc "inject-noise" 0
TARGS="--dim 16 --max-len 20 --seed 5 --quiet"
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out md.iadsr --semantic s.npy --gate detect \
    --epochs 3 --log md.jsonl $TARGS
expect_rc "train --gate detect --log" 0
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out mp.iadsr --semantic s.npy --gate paper --epochs 2 \
    --theta 0.5 --log mp.jsonl $TARGS
expect_rc "train with the paper's gate" 0
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out raw.bin --epochs 2 --log raw.jsonl $TARGS
expect_rc "train without IADSR" 0
# shellcheck disable=SC2086
run "$BIN" train --data nz.txt --out one.iadsr --semantic s.npy --gate detect \
    --epochs 1 --log one.jsonl $TARGS
expect_rc "train one epoch" 0

# ------------------------------------------------------------------ help --
run "$BIN" report --help
expect_rc "report --help" 0
expect_out "report --help" "Usage: iadsr report"
expect_out "report --help names --log" "--log FILE.jsonl"
run "$BIN" help report
expect_rc "iadsr help report" 0
run "$BIN" --help
expect_out "iadsr --help lists report" "  report "

# --------------------------------------------------------- usage errors --
usage_case "no options" report
usage_case "missing --model" report --out u.html
expect_err "missing --model names it" "missing required option --model"
expect_err "usage errors say 'iadsr: report:'" "iadsr: report: "
usage_case "missing --out" report --model md.iadsr
usage_case "--labels without --data" report --model md.iadsr --out u.html --labels nz.lab
expect_err "--labels without --data says so" "--labels needs --data"
usage_case "--data without --semantic" report --model md.iadsr --out u.html --data nz.txt
expect_err "--data without --semantic says so" "--data needs --semantic"
usage_case "--semantic without --data" report --model md.iadsr --out u.html --semantic s.npy
usage_case "--theta without --data" report --model md.iadsr --out u.html --theta 0.5
expect_err "--theta without --data says so" "--theta needs --data"
usage_case "--split without --data" report --model md.iadsr --out u.html --split none
usage_case "bad --split" report --model md.iadsr --out u.html --data nz.txt --semantic s.npy --split test
usage_case "--theta out of range" report --model md.iadsr --out u.html --data nz.txt --semantic s.npy --theta 7
usage_case "unknown option" report --model md.iadsr --out u.html --bogus
usage_case "an argument without --" report --model md.iadsr --out u.html extra
cp md.iadsr md_copy.iadsr
cp md.jsonl md_copy.jsonl
usage_case "--out over the model" report --model md_copy.iadsr --out md_copy.iadsr
expect_err "--out over the model names both" "same file"
usage_case "--out over the log" report --model md.iadsr --log md_copy.jsonl --out md_copy.jsonl
usage_case "--out over the data" report --model md.iadsr --data nz.txt --semantic s.npy --out nz.txt
check "refused outputs left the model alone" cmp md.iadsr md_copy.iadsr
check "refused outputs left the log alone" cmp md.jsonl md_copy.jsonl

# --------------------------------------------------------- runtime errors --
runtime_case "missing model" report --model missing.iadsr --out u.html
expect_err "missing model is named" "missing.iadsr"
runtime_case "--data on a model without a gate" report --model raw.bin --out u.html \
    --data nz.txt --semantic s.npy
expect_err "--data on a model without a gate says so" "has no aligner and gate"
runtime_case "missing log" report --model md.iadsr --log missing.jsonl --out u.html
expect_err "missing log is named" "missing.jsonl"
runtime_case "into a missing directory" report --model md.iadsr --out /nonexistent-dir-iadsr/r.html
runtime_case "labels of other data" report --model md.iadsr --out u.html --data d.txt \
    --semantic s.npy --labels nz.lab
expect_err "labels of other data: the file and line" "nz.lab:1:"
printf '1 1 2 999\n' >big.txt
runtime_case "an id above the model's items" report --model md.iadsr --out u.html \
    --data big.txt --semantic s.npy

# malformed logs: exit 1 with FILE:LINE, never a crash
bad_log() { # DESC LINE_NO FILE_CONTENT_COMMAND...
    d=$1
    ln=$2
    shift 2
    "$@" >bad.jsonl
    runtime_case "log: $d" report --model md.iadsr --log bad.jsonl --out u.html
    expect_err "log: $d: file and line named" "iadsr: report: bad.jsonl:$ln: "
    if [ "$rc" -gt 2 ]; then bad "log: $d: crashed (exit $rc)"; fi
}
first() { head -n 1 md.jsonl; }
bad_log "not JSON" 2 sh -c 'head -n 1 md.jsonl; echo "garbage"'
bad_log "a value missing" 2 sh -c 'head -n 1 md.jsonl; echo "{\"epoch\":2,\"loss\":}"'
bad_log "a truncated line" 3 sh -c 'head -n 2 md.jsonl; sed -n 3p md.jsonl | cut -c 1-40'
bad_log "a string for a number" 1 sh -c 'echo "{\"epoch\":1,\"loss\":\"high\"}"'
bad_log "a fractional epoch" 1 sh -c 'echo "{\"epoch\":1.5,\"loss\":1}"'
bad_log "epoch 0" 1 sh -c 'echo "{\"epoch\":0,\"loss\":1}"'
bad_log "epochs going back" 3 sh -c 'head -n 2 md.jsonl; head -n 1 md.jsonl'
bad_log "text after the object" 1 sh -c 'echo "{\"epoch\":1,\"loss\":1} x"'
bad_log "neither epoch nor summary" 2 sh -c 'head -n 1 md.jsonl; echo "{\"loss\":1}"'
bad_log "a line after the summary" 5 sh -c 'cat md.jsonl; echo "{\"epoch\":9,\"loss\":1}"'
bad_log "an array" 1 sh -c 'echo "[1, 2]"'
bad_log "a bad escape" 1 sh -c 'printf "{\"summary\":true,\"status\":\"a\\\\qb\"}\n"'
bad_log "a NaN" 1 sh -c 'echo "{\"epoch\":1,\"loss\":NaN}"'
bad_log "a huge number" 1 sh -c 'echo "{\"epoch\":1,\"loss\":1e999}"'
bad_log "deep nesting" 1 sh -c 'printf "{\"epoch\":1,\"x\":"; i=0; while [ $i -lt 200 ]; do printf "["; i=$((i + 1)); done; echo'
bad_log "a NUL byte" 1 sh -c 'printf "{\"epoch\":1,\"loss\":1\0}\n"'

# a failed run leaves an existing report alone
run "$BIN" report --model md.iadsr --out keep.html
expect_rc "report to keep" 0
cp keep.html keep_copy.html
sh -c 'head -n 1 md.jsonl; echo "garbage"' >bad.jsonl
run "$BIN" report --model md.iadsr --log bad.jsonl --out keep.html
expect_rc "a bad log over an existing report" 1
check "a failed run left the existing report alone" cmp keep.html keep_copy.html
check "no temporary files left" sh -c '! ls -a | grep -q "\.tmp"'

# ------------------------------------------------- reports and their figures --
run "$BIN" report --model md.iadsr --out m.html
expect_rc "model only" 0
expect_no_out "model only: nothing on stdout"
expect_err "model only: says what it wrote" "wrote m.html (0 figures"
html_ok "model only: 0 figures" m.html 0 "sasrec" "epochs trained" \
    "best validation NDCG@10" "gate flags" "detect, holdout" "max_seq_len" \
    "n_items" "iadsr report: md.iadsr" "!Training" "!Denoising"

run "$BIN" report --model raw.bin --out raw.html --log raw.jsonl
expect_rc "backbone model and its log" 0
html_ok "backbone model, log: 2 figures, no aux/detect terms" raw.html 2 \
    "loss (total)" "loss_next" "!loss_aux" "!loss_detect" "status" "done" \
    "aligner" "validation NDCG@10"

run "$BIN" report --model md.iadsr --out l.html --log md.jsonl
expect_rc "model and log" 0
html_ok "model, log: 2 figures with every loss term" l.html 2 \
    "loss (total)" "loss_next" "loss_aux" "loss_detect" "best epoch" \
    "Summary line of the log" "Training"

run "$BIN" report --model one.iadsr --out one.html --log one.jsonl
expect_rc "one epoch" 0
html_ok "one epoch: 2 figures" one.html 2 "1 epoch line and the summary"

# constant series, nulls, no validation on some epochs, no summary
cat >const.jsonl <<'EOF'
{"epoch":1,"max_epochs":4,"loss":2.5,"loss_next":2.5,"loss_aux":null,"loss_detect":null,"valid_hr10":null,"valid_ndcg10":null,"best_epoch":0,"best_ndcg10":null}

{"epoch":2,"max_epochs":4,"loss":2.5,"loss_next":2.5,"loss_aux":null,"loss_detect":null,"valid_hr10":0.1,"valid_ndcg10":0.05,"best_epoch":2,"best_ndcg10":0.05,"extra":{"nested":[1,2,{"a":null}]}}
{"epoch":3,"max_epochs":4,"loss":2.5,"loss_next":2.5,"loss_aux":null,"loss_detect":null,"valid_hr10":null,"valid_ndcg10":null,"best_epoch":2,"best_ndcg10":0.05}
{"epoch":4,"max_epochs":4,"loss":2.5,"loss_next":2.5,"loss_aux":null,"loss_detect":null,"valid_hr10":0.1,"valid_ndcg10":0.05,"best_epoch":2,"best_ndcg10":0.05}
EOF
run "$BIN" report --model md.iadsr --out c.html --log const.jsonl
expect_rc "constant series" 0
html_ok "constant series, nulls, no summary: 2 figures" c.html 2 \
    "no summary line" "!no data"

# zeros everywhere and a log of the summary only
printf '%s\n' '{"epoch":1,"loss":0,"loss_next":0,"valid_ndcg10":0}' >zero.jsonl
run "$BIN" report --model md.iadsr --out z.html --log zero.jsonl
expect_rc "zero series" 0
html_ok "zero series: 2 figures" z.html 2
printf '%s\n' '{"summary":true,"status":"failed","epochs":0,"best_epoch":0,"best_valid_ndcg10":null,"best_valid_hr10":null,"model":null,"parameters":0,"seconds":0.01}' >empty.jsonl
run "$BIN" report --model md.iadsr --out e.html --log empty.jsonl
expect_rc "a log without epochs" 0
html_ok "a log without epochs: 2 figures saying no data" e.html 2 "no data" "failed"
: >blank.jsonl
run "$BIN" report --model md.iadsr --out b.html --log blank.jsonl
expect_rc "an empty log file" 0
html_ok "an empty log file: 2 figures" b.html 2 "no data"

# denoising
run "$BIN" report --model md.iadsr --out dn.html --data nz.txt --semantic s.npy
expect_rc "model and data" 0
expect_no_out "model and data: nothing on stdout"
expect_err "model and data: the proposed theta" "estimated noise rate"
html_ok "model, data: 1 figure" dn.html 1 "Before and after cleaning" \
    "interactions dropped" "users touched" "mean sequence length" \
    "test NDCG@10" "test HR@10" "proposed by the detector" "!Against the injected labels"
# the numbers are those of iadsr denoise and iadsr eval
run "$BIN" denoise --model md.iadsr --semantic s.npy --data nz.txt --out clean.txt --json
expect_rc "denoise for comparison" 0
cp "$T/out" denoise.json
run "$BIN" eval --model md.iadsr --data nz.txt --json
cp "$T/out" eval_raw.json
run "$BIN" eval --model md.iadsr --data clean.txt --json
cp "$T/out" eval_clean.json
if [ "$HAVE_PY" -eq 1 ]; then
    if "$PY" - dn.html denoise.json eval_raw.json eval_clean.json >"$T/py" 2>&1 <<'EOF'
import json, sys
html = open(sys.argv[1]).read()
dn = json.load(open(sys.argv[2]))
raw = json.load(open(sys.argv[3])); cl = json.load(open(sys.argv[4]))
want = "<td class=\"num\">%d (%.2f%%)</td>" % (dn["items_dropped"], 100.0 * dn["items_dropped"] / dn["items_in"])
assert want in html, want
assert "<th>users touched</th><td class=\"num\"></td><td class=\"num\">%d</td>" % dn["users_touched"] in html
assert "Theta %.4f" % dn["theta"] in html, dn["theta"]
row = "<th>test NDCG@10</th><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>" % (raw["NDCG@10"], cl["NDCG@10"])
assert row in html, row
row = "<th>test HR@10</th><td class=\"num\">%.4f</td><td class=\"num\">%.4f</td>" % (raw["HR@10"], cl["HR@10"])
assert row in html, row
EOF
    then ok; else bad "report's numbers = denoise's and eval's: $(tail -c 600 "$T/py" | tr '\n' ' ')"; fi
else
    skipped=$((skipped + 1))
fi

run "$BIN" report --model md.iadsr --out dl.html --data nz.txt --semantic s.npy --labels nz.lab
expect_rc "model, data, labels" 0
html_ok "model, data, labels: 2 figures" dl.html 2 "Against the injected labels" \
    "precision" "recall" "F1" "true pos." "injected (labels)"
run "$BIN" denoise --model md.iadsr --semantic s.npy --data nz.txt --out clean.txt \
    --labels nz.lab --json
cp "$T/out" denoise_lab.json
if [ "$HAVE_PY" -eq 1 ]; then
    if "$PY" - dl.html denoise_lab.json >"$T/py" 2>&1 <<'EOF'
import json, sys
html = open(sys.argv[1]).read()
dn = json.load(open(sys.argv[2]))
for k, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
    row = "<tr><th>%s</th><td>%.4f</td></tr>" % (name, dn[k])
    assert row in html, row
assert "<tr><th>injected</th><td>%d</td></tr>" % dn["injected"] in html
EOF
    then ok; else bad "report's precision/recall/F1 = denoise's: $(tail -c 600 "$T/py" | tr '\n' ' ')"; fi
else
    skipped=$((skipped + 1))
fi

run "$BIN" report --model md.iadsr --out all.html --log md.jsonl --data nz.txt \
    --semantic s.npy --labels nz.lab
expect_rc "everything" 0
expect_err "everything: 4 figures" "(4 figures"
html_ok "model, log, data, labels: 4 figures" all.html 4 "Training" "Denoising" \
    "Against the injected labels"
run "$BIN" report --model md.iadsr --out all2.html --log md.jsonl --data nz.txt \
    --semantic s.npy --labels nz.lab --threads 2
expect_rc "everything, 2 threads" 0
check "the report does not depend on the thread count" cmp all.html all2.html
run "$BIN" report --model md.iadsr --out all2.html --log md.jsonl --data nz.txt \
    --semantic s.npy --labels nz.lab
check "the same inputs give the same bytes" cmp all.html all2.html

run "$BIN" report --model md.iadsr --out ld.html --log md.jsonl --data nz.txt --semantic s.npy
expect_rc "model, log, data" 0
html_ok "model, log, data: 3 figures" ld.html 3

run "$BIN" report --model md.iadsr --out th.html --data nz.txt --semantic s.npy \
    --theta 0.25 --split none --max-drop 0.5
expect_rc "--theta, --split none, --max-drop" 0
check "--theta: nothing proposed" sh -c '! grep -q "estimated noise rate" "$0"' "$T/err"
html_ok "--theta: 1 figure, the theta given" th.html 1 "given with --theta" \
    "Theta 0.2500" "Split none" "at most 0.5 of a sequence"

run "$BIN" info --model md.iadsr --json
cp "$T/out" info.json
if [ "$HAVE_PY" -eq 1 ]; then
    if "$PY" - th.html info.json >"$T/py" 2>&1 <<'EOF'
import json, sys
html = open(sys.argv[1]).read()
info = json.load(open(sys.argv[2]))
row = "<dt>gate theta (stored)</dt><dd>%.4f</dd>" % info["gate_theta"]
assert row in html, row
assert "<dt>epochs trained</dt><dd>%d</dd>" % info["epochs_trained"] in html
assert "<dt>n_items</dt><dd>%d</dd>" % info["n_items"] in html
assert "<dt>best validation NDCG@10</dt><dd>%.4f</dd>" % info["best_valid_ndcg10"] in html
EOF
    then ok; else bad "the model table shows the stored gate (info --json): $(tail -c 600 "$T/py" | tr '\n' ' ')"; fi
else
    skipped=$((skipped + 1))
fi

run "$BIN" report --model mp.iadsr --out mp.html --data nz.txt --semantic s.npy --log mp.jsonl
expect_rc "the paper's gate" 0
html_ok "the paper's gate: the stored theta" mp.html 3 "stored in the gate" \
    "the cosine-sum rule of the paper" "Theta 0.5000"

# an empty histogram: no position can be dropped (sequences of 2 items)
printf '1 3 4\n2 5 6\n3 7 8\n' >short.txt
run "$BIN" report --model md.iadsr --out eh.html --data short.txt --semantic s.npy --theta 0.5
expect_rc "no position to score" 0
html_ok "an empty histogram" eh.html 1 "no values" "0 positions scored" \
    "0 (no position scored)"
printf '0 0\n0 0\n0 0\n' >short.lab
run "$BIN" report --model md.iadsr --out ehl.html --data short.txt --semantic s.npy \
    --theta 0.5 --labels short.lab
expect_rc "no position to score, with labels" 0
html_ok "an empty histogram and sweep" ehl.html 2 "no values" "no data"

# --------------------------------------------------------------- escaping --
run "$BIN" report --model md.iadsr --out t.html --title 'A <b>&amp;</b> "q" '"'s'"
expect_rc "a title to escape" 0
html_ok "the title is text" t.html 0 'A <b>&amp;</b> "q" '"'s'"
check "the title is escaped in the source" grep -q \
    '<h1>A &lt;b&gt;&amp;amp;&lt;/b&gt; &quot;q&quot; &#39;s&#39;</h1>' t.html
check "no raw <b> from the title" sh -c '! grep -q "<b>" t.html'
run "$BIN" report --model md.iadsr --out t2.html --title "$(printf 'bad\377byte\001x')"
expect_rc "a title with invalid UTF-8" 0
html_ok "invalid UTF-8 replaced" t2.html 0 "$(printf 'bad\357\277\275byte\357\277\275x')"
mkdir -p 'dir <&>'
cp md.iadsr 'dir <&>/m "1".iadsr'
run "$BIN" report --model 'dir <&>/m "1".iadsr' --out p.html
expect_rc "a model path to escape" 0
html_ok "the model path is text" p.html 0 'dir <&>/m "1".iadsr'

check "no temporary files left" sh -c '! ls -a | grep -q "\.tmp"'

finish "no python3"
