#!/usr/bin/python3
"""Score a trained gate against injected-noise labels, without choosing
anything on them: average precision (PR-AUC) of "low score = injected"
over every scored position, precision / recall / F1 of the drops at the
gate's label-free theta (iadsr_denoiser_propose_theta for a detector gate)
and at theta 0, with the gate's max_drop cap and protection of the most
recent item applied as in `iadsr denoise`.

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


def main():
    ck, semf, dataf, labf = sys.argv[1:5]
    m, a, g = iadsr.load_checkpoint(ck)
    sem = iadsr.Semantic.load_npy(semf, row0_padding=True)
    d = iadsr.Dataset.load(dataf)
    with open(labf, encoding='ascii') as f:
        lab = np.array([int(t) for line in f for t in line.split()],
                       dtype=np.int8)

    def run(gate):
        dn = iadsr.Denoiser(m, a, gate, sem)
        _, keep, sc = dn.clean_dataset(d, return_details=True, n_threads=2)
        return dn, np.asarray(keep, dtype=bool), np.asarray(sc, dtype=float)

    dn, keep, sc = run(g)
    ok = ~np.isnan(sc)
    s, y = sc[ok], lab[ok]
    order = np.argsort(s, kind='stable')
    yy = y[order]
    hits = np.cumsum(yy)
    ap = float((hits / np.arange(1, len(yy) + 1))[yy == 1].sum() /
               max(1, int(yy.sum())))
    print(f"scored {int(ok.sum())} injected {int(y.sum())} "
          f"(rate {y.mean():.3f}) PR-AUC {ap:.3f}")
    rows = []
    try:
        th, rate = dn.propose_theta(d, n_threads=2)
        rows.append(('proposed', th, rate))
    except iadsr.IadsrError:
        pass  # the paper's gate has no noise model
    rows.append(('theta 0', 0.0, None))
    for name, th, rate in rows:
        _, k2, _ = run(g.with_params(theta=float(th)))
        p, r, f, dr = prf(~k2[ok], y)
        extra = f" estimated rate {rate:.3f}" if rate is not None else ""
        print(f"{name}: theta {th:+.3f}{extra}: precision {p:.3f} "
              f"recall {r:.3f} F1 {f:.3f} dropped {dr}")


if __name__ == '__main__':
    main()
