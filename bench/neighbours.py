#!/usr/bin/env python3
"""Nearest-neighbour titles in a semantic matrix (sanity check for embed-text).

Usage: neighbours.py EMB.npy ITEMS.tsv ITEM_ID [ITEM_ID ...]
EMB.npy is (n_items + 1) x D float32 with row 0 = padding, as `iadsr
embed-text` writes it. Standard library only (no numpy needed).
SPDX-License-Identifier: MIT
"""
import ast
import math
import struct
import sys


def load_npy(path):
    with open(path, 'rb') as f:
        b = f.read()
    if b[:6] != b'\x93NUMPY':
        sys.exit('%s: not a .npy file' % path)
    if b[6] == 1:
        (hl,), off = struct.unpack('<H', b[8:10]), 10
    else:
        (hl,), off = struct.unpack('<I', b[8:12]), 12
    h = ast.literal_eval(b[off:off + hl].decode('latin1'))
    if h['descr'] != '<f4' or h['fortran_order'] or len(h['shape']) != 2:
        sys.exit('%s: expected a 2-D little-endian float32 array' % path)
    n, d = h['shape']
    data = struct.unpack('<%df' % (n * d), b[off + hl:off + hl + 4 * n * d])
    return [data[i * d:(i + 1) * d] for i in range(n)]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rows = load_npy(sys.argv[1])
    titles = {}
    with open(sys.argv[2], encoding='utf-8') as f:
        next(f)
        for line in f:
            cols = line.rstrip('\n').split('\t')
            titles[int(cols[0])] = cols[-1]
    norms = [math.sqrt(sum(x * x for x in r)) for r in rows]
    for q in map(int, sys.argv[3:]):
        print('#%d %s' % (q, titles.get(q, '?')))
        if norms[q] == 0:
            print('    (zero row: no known word in the title)')
            continue
        sims = []
        for i in range(1, len(rows)):
            if i != q and norms[i] > 0:
                dot = sum(a * b for a, b in zip(rows[q], rows[i]))
                sims.append((dot / (norms[q] * norms[i]), i))
        sims.sort(reverse=True)
        for s, i in sims[:5]:
            print('    %.3f  #%d %s' % (s, i, titles.get(i, '?')))


if __name__ == '__main__':
    main()
