#!/usr/bin/python3
"""Does a detector score the data's own noise like the fresh items that
iadsr_denoiser_propose_theta inserts? Prints the mean, median and 10%
quantile of the gate's scores for the clean positions, the injected ones
(from the labels) and items drawn uniformly and inserted before 15% of
the scored positions (as the estimate does). When the injected noise
scores far above the fresh items the backbone has fitted it (it was a
next-item target), and the label-free noise rate comes out low.

Usage: score_shift.py MODEL SEMANTIC.npy NOISY.txt LABELS
SPDX-License-Identifier: MIT
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'bindings', 'python'))
import numpy as np  # noqa: E402
import iadsr  # noqa: E402
import tempfile  # noqa: E402


def scores(m, a, g, sem, path):
    d = iadsr.Dataset.load(path)
    dn = iadsr.Denoiser(m, a, g, sem)
    _, _, sc = dn.clean_dataset(d, return_details=True, n_threads=1)
    return np.asarray(sc, dtype=float)


def summary(v):
    return (f"{v.mean():.2f} (median {np.median(v):.2f}, "
            f"10% {np.quantile(v, 0.1):.2f})")


def main():
    ck, semf, dataf, labf = sys.argv[1:5]
    m, a, g = iadsr.load_checkpoint(ck)
    sem = iadsr.Semantic.load_npy(semf, row0_padding=True)
    with open(dataf, encoding='ascii') as f:
        seqs = [line.split() for line in f if line.strip()]
    with open(labf, encoding='ascii') as f:
        lab = np.array([int(t) for line in f for t in line.split()])
    n_items = max(int(x) for q in seqs for x in q[1:])
    sd = scores(m, a, g, sem, dataf)
    ok = ~np.isnan(sd)
    rng = np.random.default_rng(5)
    out, flag = [], []
    for q in seqs:
        items, row = q[1:], [q[0]]
        n = len(items)
        for i, x in enumerate(items):
            # the positions the estimate scores: not the first, not the
            # last two (validation and test)
            if 0 < i < n - 2 and rng.random() < 0.15:
                row.append(str(rng.integers(1, n_items + 1)))
                flag.append(1)
            row.append(x)
            flag.append(0)
        out.append(' '.join(row))
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as t:
        t.write('\n'.join(out) + '\n')
    try:
        sa = scores(m, a, g, sem, t.name)
    finally:
        os.unlink(t.name)
    fresh = sa[np.array(flag, dtype=bool)]
    fresh = fresh[~np.isnan(fresh)]
    y, s = lab[ok], sd[ok]
    print("clean items          ", summary(s[y == 0]))
    print("injected noise       ", summary(s[y == 1]))
    print("fresh inserted items ", summary(fresh))


if __name__ == '__main__':
    main()
