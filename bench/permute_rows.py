#!/usr/bin/python3
"""The permuted-semantics control of bench/detector.sh (arm detect-perm):
write a copy of a padded semantic matrix (row i = item i, row 0 = padding)
whose item rows are permuted across items, so that each item carries
another item's text vector. Row 0 stays the padding row. The permutation
is one random cycle over rows 1..n-1 (seeded), so that no item keeps its
own row; the rows themselves, and hence every statistic of the matrix as a
set, are unchanged: only the item <-> text pairing is broken.

Usage: permute_rows.py SEM.npy OUT.npy [SEED]     (SEED default 1)
Written atomically (OUT.npy.tmp, then renamed). Needs numpy.
SPDX-License-Identifier: MIT
"""
import os
import sys

import numpy as np


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) == 4 else 1
    sem = np.load(src)
    if sem.ndim != 2 or sem.shape[0] < 3:
        sys.exit(f"permute_rows: {src}: need a 2-D matrix with at least "
                 f"two item rows, got shape {sem.shape}")
    n = sem.shape[0] - 1
    order = np.random.default_rng(seed).permutation(n) + 1
    src_row = np.empty(n + 1, dtype=np.int64)
    src_row[0] = 0
    # item order[i] gets the row of item order[i + 1]: one cycle
    src_row[order] = np.roll(order, -1)
    perm = sem[src_row]
    with open(out + ".tmp", "wb") as f:
        np.save(f, perm)
    os.replace(out + ".tmp", out)
    print(f"permute_rows: {n} item rows permuted (seed {seed}), row 0 kept",
          file=sys.stderr)


if __name__ == "__main__":
    main()
