#!/usr/bin/python3
"""Reference detectors for injected noise, to read the gate's F1 against.

Scores every training-part position (the most recent training item is
protected, as by the gate) of a file written by `iadsr inject-noise` with
three label-free rules and reports, for each, precision / recall / F1 of
"dropped" against the injected labels at a sweep of drop counts, and the
best F1 of the sweep (an optimistic figure: the sweep sees the labels).

  text        cosine of the item's semantic row to the mean of the user's
              other training items' rows (leave-one-out), low = noise
  popularity  log count of the item in all training parts, low = noise
  both        the sum of the two, each divided by its standard deviation

Usage: noise_baselines.py NOISY.txt LABELS SEMANTIC.npy
(SEMANTIC.npy: n_items + 1 rows, row 0 = padding, as `iadsr embed-text`
writes it.) Needs numpy.  SPDX-License-Identifier: MIT
"""
import sys
from collections import Counter

import numpy as np


def read_ints(path):
    with open(path, encoding="ascii") as f:
        return [[int(t) for t in line.split()] for line in f if line.strip()]


def sweep(score, label, n_noise):
    order = np.argsort(score, kind="stable")
    hits = np.cumsum(label[order])
    rows = []
    for k in range(5000, len(order) + 1, 5000):
        tp = int(hits[k - 1])
        p, r = tp / k, tp / n_noise
        f1 = 2 * p * r / (p + r) if tp else 0.0
        rows.append((k, p, r, f1))
    return rows


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    seqs = [row[1:] for row in read_ints(argv[1])]
    labels = read_ints(argv[2])
    if len(labels) != len(seqs):
        sys.exit("noise_baselines: %d sequences but %d label lines"
                 % (len(seqs), len(labels)))
    sem = np.load(argv[3]).astype(np.float64)
    norm = np.linalg.norm(sem, axis=1, keepdims=True)
    unit = np.divide(sem, norm, out=np.zeros_like(sem), where=norm > 0)

    count = Counter()
    for s in seqs:
        count.update(s[:-2])

    text, pop, label = [], [], []
    for s, lab in zip(seqs, labels):
        train = s[:-2]
        if len(train) < 2:
            continue
        rows = unit[train]
        total = rows.sum(axis=0)
        for t in range(len(train) - 1):  # the most recent item is protected
            rest = total - rows[t]
            n = np.linalg.norm(rest)
            text.append(float(rows[t] @ rest / n) if n > 0 else 0.0)
            pop.append(np.log(count[train[t]]))
            label.append(lab[t])
    text, pop = np.array(text), np.array(pop)
    label = np.array(label, dtype=np.int64)
    n_noise = int(label.sum())
    print("positions scored: %d, injected among them: %d (%.1f%%)"
          % (len(label), n_noise, 100.0 * n_noise / len(label)))
    both = pop / pop.std() + text / text.std()
    print("| rule | best F1 | dropped | precision | recall |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, score in (("text", text), ("popularity", pop), ("both", both)):
        k, p, r, f1 = max(sweep(score, label, n_noise), key=lambda x: x[3])
        print("| %s | %.3f | %d | %.3f | %.3f |" % (name, f1, k, p, r))


if __name__ == "__main__":
    main(sys.argv)
