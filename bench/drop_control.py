#!/usr/bin/python3
"""Drop controls for clean + retrain (issue 16's protocol): from the noisy
data and the gate's cleaned output, write the same data cleaned by a rule
that knows nothing of the gate, dropping exactly as many items from each
user as the gate did, from the same part (everything but the last two
items, the validation and test targets; the most recent training item is
kept, as the gate keeps it):

  random      the items dropped are drawn uniformly (seeded)
  popularity  the least popular items of the user's training part go first
              (count over every training part of the noisy data; ties: the
              older position)

A retrain on the control's output shows how much of clean + retrain's
result the gate's choice of items explains, beyond dropping that many.

Usage: drop_control.py NOISY.txt CLEANED.txt random|popularity OUT.txt [SEED]
SPDX-License-Identifier: MIT
"""
import os
import random
import sys
from collections import Counter


def read_ints(path):
    with open(path, encoding="ascii") as f:
        return [[int(t) for t in line.split()] for line in f if line.strip()]


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    noisy, cleaned = read_ints(sys.argv[1]), read_ints(sys.argv[2])
    rule, out = sys.argv[3], sys.argv[4]
    seed = int(sys.argv[5]) if len(sys.argv) == 6 else 1
    if rule not in ("random", "popularity"):
        sys.exit("drop_control: the rule is random or popularity")
    if len(noisy) != len(cleaned):
        sys.exit("drop_control: the two files have different users")
    count = Counter()
    for line in noisy:
        items = line[1:]
        count.update(items[:-2] if len(items) > 2 else [])
    rng = random.Random(seed)
    total = 0
    with open(out + ".tmp", "w", encoding="ascii") as f:
        for a, b in zip(noisy, cleaned):
            if a[0] != b[0]:
                sys.exit(f"drop_control: user {a[0]} against {b[0]}")
            items = a[1:]
            k = len(items) - len(b[1:])
            part = len(items) - 2 if len(items) > 2 else 0
            cand = list(range(part - 1))  # the most recent training item stays
            if k < 0 or k > len(cand):
                sys.exit(f"drop_control: user {a[0]}: {k} drops do not fit")
            if rule == "random":
                drop = set(rng.sample(cand, k))
            else:
                cand.sort(key=lambda t: (count[items[t]], t))
                drop = set(cand[:k])
            total += k
            kept = [x for t, x in enumerate(items) if t not in drop]
            f.write(" ".join(str(x) for x in [a[0]] + kept) + "\n")
    os.replace(out + ".tmp", out)
    print(f"drop_control: {rule}: dropped {total} items from "
          f"{len(noisy)} users", file=sys.stderr)


if __name__ == "__main__":
    main()
