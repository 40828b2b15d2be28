#!/usr/bin/env python3
"""How much of a model's top-10 is the user's own history.

Usage: history_share.py SEQUENCES RECS

SEQUENCES is the sequence file the recommendations were made for (one user
per line: user_id item item ...); RECS is the output of
`iadsr recommend --model M --data SEQUENCES --k 10` (user_id item:score ...).
Prints, over the users of RECS, the share whose first recommendation is the
last item of their own sequence, the share whose first recommendation is any
item of it, and the mean number of its items among the ten. On data without
repeat interactions (Amazon Beauty) every such item is a wasted slot.
Standard library only.
SPDX-License-Identifier: MIT
"""
import sys


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    seqs = {}
    with open(argv[1]) as fh:
        for line in fh:
            tok = line.split()
            if tok:
                seqs[tok[0]] = tok[1:]
    users = top1_last = top1_hist = in_top = 0
    with open(argv[2]) as fh:
        for line in fh:
            tok = line.split()
            if not tok or tok[0] not in seqs:
                continue
            seq = seqs[tok[0]]
            recs = [t.split(':')[0] for t in tok[1:]]
            if not seq or not recs:
                continue
            hist = set(seq)
            users += 1
            top1_last += recs[0] == seq[-1]
            top1_hist += recs[0] in hist
            in_top += sum(r in hist for r in recs)
    if users == 0:
        sys.stderr.write('history_share: no user in common\n')
        return 1
    print('users %d  top-1 = last item %.3f  top-1 in history %.3f  '
          'history items in the top-%d %.2f' %
          (users, top1_last / users, top1_hist / users,
           max(len(recs), 1), in_top / users))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
