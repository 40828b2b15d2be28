#!/usr/bin/python3
"""Score a trained gate against injected-noise labels, without choosing
anything on them: average precision (PR-AUC) of "low score = injected"
over every scored position, precision / recall / F1 of the drops at the
gate's label-free theta (iadsr_denoiser_propose_theta for a detector gate)
and at theta 0, with the gate's max_drop cap and protection of the most
recent item applied as in `iadsr denoise`, and for reference the best F1
over every global threshold chosen on the labels (the ceiling of any
operating point, not a result), and the PR-AUC on the users a hold-out
detector never trained on against the others'. Beside the gate, three
label-free rules are scored over the same positions: popularity (the
item's count in the noisy data), text (cosine of the item's semantic row
with the mean of the other rows of its sequence) and both (the sum of the
two ranks); for each, PR-AUC and the F1 of dropping as many positions as
the gate dropped at its label-free theta (the same budget; nothing chosen
on the labels). Cold items: the real (uninjected) positions of the items in
the bottom fifth of the catalogue by count, and the share of them dropped
when the gate drops as many positions as were injected (one budget for
every gate, so gates compare at an equal drop rate).

Usage: gate_eval.py MODEL SEMANTIC.npy NOISY.txt LABELS
(MODEL from `iadsr train --semantic`, NOISY and LABELS from `iadsr
inject-noise`, SEMANTIC with row 0 = padding.) Needs numpy and the library
built (bindings/python).  SPDX-License-Identifier: MIT
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'bindings', 'python'))
import numpy as np  # noqa: E402
import iadsr  # noqa: E402


def prf(drop, y):
    tp = int((drop & (y == 1)).sum())
    dr = int(drop.sum())
    pl = int((y == 1).sum())
    p = tp / dr if dr else 0.0
    r = tp / pl if pl else 0.0
    return p, r, (2 * p * r / (p + r) if tp else 0.0), dr


def average_precision(score, y):
    """PR-AUC of "low score = injected"."""
    order = np.argsort(score, kind='stable')
    yy = y[order]
    hits = np.cumsum(yy)
    return float((hits / np.arange(1, len(yy) + 1))[yy == 1].sum() /
                 max(1, int(yy.sum())))


def read_seqs(dataf):
    """Every user's items, in file order."""
    seqs = []
    with open(dataf, encoding='ascii') as f:
        for line in f:
            t = line.split()
            if t:
                seqs.append(np.array([int(x) for x in t[1:]], dtype=np.int64))
    return seqs


def rule_scores(seqs, semf):
    """Popularity, text and both scores of every position of the sequences
    @p seqs (read_seqs; flattened in file order; high = looks real)."""
    allit = np.concatenate(seqs)
    count = np.bincount(allit)
    sem = np.load(semf).astype(np.float64)
    semn = sem / np.maximum(np.linalg.norm(sem, axis=1, keepdims=True), 1e-12)
    pop = np.log1p(count[allit].astype(np.float64))
    text = np.empty(len(allit))
    at = 0
    for q in seqs:
        x = semn[q]
        tot = x.sum(axis=0)
        n = len(q)
        if n < 2:
            text[at:at + n] = 0.0
        else:
            rest = (tot[None, :] - x) / (n - 1)
            rn = np.maximum(np.linalg.norm(rest, axis=1), 1e-12)
            text[at:at + n] = (x * rest).sum(axis=1) / rn
        at += n
    return pop, text, count[allit], count[1:][count[1:] > 0]


_M64 = (1 << 64) - 1


def holdout_user(items):
    """The trainer's hold-out choice for one whole sequence (the C
    iadsr__holdout_user in src/denoise/gate.c: FNV-1a over the ids' four
    little-endian bytes, a splitmix finish, modulo 16)."""
    h = 0xcbf29ce484222325
    for x in items:
        for b in range(4):
            h ^= (x >> (8 * b)) & 0xff
            h = (h * 0x100000001b3) & _M64
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & _M64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & _M64
    h ^= h >> 31
    return h % 16 == 0


def rank01(v):
    r = np.empty(len(v))
    r[np.argsort(v, kind='stable')] = np.arange(len(v))
    return r / max(1, len(v) - 1)


def main():
    ck, semf, dataf, labf = sys.argv[1:5]
    m, a, g = iadsr.load_checkpoint(ck)
    sem = iadsr.Semantic.load_npy(semf, row0_padding=True)
    d = iadsr.Dataset.load(dataf)
    with open(labf, encoding='ascii') as f:
        lab = np.array([int(t) for line in f for t in line.split()],
                       dtype=np.int8)
    seqs = read_seqs(dataf)

    def run(gate):
        dn = iadsr.Denoiser(m, a, gate, sem)
        _, keep, sc = dn.clean_dataset(d, return_details=True, n_threads=2)
        return dn, np.asarray(keep, dtype=bool), np.asarray(sc, dtype=float)

    dn, keep, sc = run(g)
    ok = ~np.isnan(sc)
    s, y = sc[ok], lab[ok]
    ap = average_precision(s, y)
    print(f"scored {int(ok.sum())} injected {int(y.sum())} "
          f"(rate {y.mean():.3f}) PR-AUC {ap:.3f}")
    # the users a hold-out detector never trained on against the others:
    # how much fitting a user's noise as next-item targets hides it
    ho = np.concatenate([np.full(len(q), holdout_user(q.tolist()))
                         for q in seqs])[ok]
    if ho.any() and (~ho).any() and y[ho].any() and y[~ho].any():
        print(f"users held out of training: {int(ho.sum())} positions, "
              f"PR-AUC {average_precision(s[ho], y[ho]):.3f}; trained users: "
              f"{int((~ho).sum())} positions, PR-AUC "
              f"{average_precision(s[~ho], y[~ho]):.3f}")
    # the ceiling of any operating point: the best F1 over every global
    # threshold, chosen on the labels (no cap; for reference, not a result)
    yy = y[np.argsort(s, kind='stable')]
    hits = np.cumsum(yy)
    k = np.arange(1, len(yy) + 1)
    f1 = np.where(hits > 0, 2 * hits / (k + max(1, int(y.sum()))), 0.0)
    kb = int(np.argmax(f1))
    print(f"best F1 over all thresholds (chosen on the labels, a ceiling): "
          f"{f1[kb]:.3f} dropping {kb + 1}")
    rows = []
    try:
        th, rate = dn.propose_theta(d, n_threads=2)
        rows.append(('proposed', th, rate))
    except iadsr.IadsrError:
        pass  # the paper's gate has no noise model
    rows.append(('theta 0', 0.0, None))
    budget = None
    for name, th, rate in rows:
        _, k2, _ = run(g.with_params(theta=float(th)))
        p, r, f, dr = prf(~k2[ok], y)
        if budget is None:
            budget = dr
        extra = f" estimated rate {rate:.3f}" if rate is not None else ""
        print(f"{name}: theta {th:+.3f}{extra}: precision {p:.3f} "
              f"recall {r:.3f} F1 {f:.3f} dropped {dr}")
    pop, text, cnt_pos, item_cnt = rule_scores(seqs, semf)
    if len(pop) != len(sc):
        sys.exit("gate_eval: the data and the scores disagree in length")
    pop, text, cnt_pos = pop[ok], text[ok], cnt_pos[ok]
    # cold items: the bottom fifth of the items present, by count
    item_cnt = np.sort(item_cnt)
    cut = item_cnt[max(0, int(0.2 * len(item_cnt)) - 1)]
    cold = (cnt_pos <= cut) & (y == 0)
    warm = (cnt_pos > cut) & (y == 0)
    nb = int(y.sum())
    drop = np.zeros(len(s), dtype=bool)
    drop[np.argsort(s, kind='stable')[:nb]] = True
    print(f"cold items (count <= {int(cut)}): dropping {nb} (as many as "
          f"injected): {drop[cold].mean() if cold.any() else 0:.3f} of "
          f"{int(cold.sum())} real cold positions, "
          f"{drop[warm].mean() if warm.any() else 0:.3f} of the other real "
          f"positions")
    for name, v in (('popularity', pop), ('text', text),
                    ('both', rank01(pop) + rank01(text))):
        drop = np.zeros(len(v), dtype=bool)
        drop[np.argsort(v, kind='stable')[:budget]] = True
        p, r, f, dr = prf(drop, y)
        print(f"rule {name}: PR-AUC {average_precision(v, y):.3f}; "
              f"dropping the gate's {dr}: precision {p:.3f} recall {r:.3f} "
              f"F1 {f:.3f}")


if __name__ == '__main__':
    main()
