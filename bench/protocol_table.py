#!/usr/bin/python3
"""Summary of bench/detector.sh: read every output present in OUTDIR and
print Markdown tables, per noise kind and rate (and the clean data), one
row per arm, of the mean +- sample std (n - 1) over seeds of

  backbone      test NDCG@10 of the arm trained on the (noisy) data
  PR-AUC, F1, best F1
                the gate against the labels (BASE.gate of gate_eval.py):
                PR-AUC of "low score = injected", F1 of the drops at the
                label-free theta (the proposed theta of a detector gate;
                theta 0 for the paper's gate, which proposes none) and the
                best F1 over every threshold (chosen on the labels: a
                ceiling, not a result)
  retrain       test NDCG@10 of the raw backbone retrained on the data
                cleaned at the label-free theta, on the cleaned histories
  controls      the same for the drop controls (bench/drop_control.py:
                random / least popular items at the gate's per-user counts)
  cross         the raw arm's model on this arm's cleaned histories, and
                this arm's retrained model on the uncleaned histories

and, paired by seed (the mean +- std of the per-seed differences), the
backbone and the retrain minus the raw arm's backbone of the same kind,
rate and seed, the retrain minus each control, and the share of the
NDCG@10 the noise took that clean + retrain recovers, (retrain - raw) /
(raw on the clean data - raw), when the clean kind was run for that seed.
A cell over fewer seeds than its row says so (n=k); "-" = no data.
The same goes to OUTDIR/summary.md. Standard library only.

Usage: protocol_table.py OUTDIR
SPDX-License-Identifier: MIT
"""
import json
import math
import os
import re
import statistics
import sys

NAME = re.compile(r'^(?P<kind>[a-z]+)(?:-(?P<rate>[0-9][0-9.]*))?-'
                  r'(?P<arm>[a-z][a-z0-9-]*?)-s(?P<seed>[0-9]+)\.'
                  r'(?P<what>test|gate|retrain\.test|retrain-on-noisy\.test|'
                  r'raw-on-clean\.test|ctl-random\.test|ctl-popularity\.test)$')
KEY = {'test': 'bb', 'retrain.test': 'rt', 'retrain-on-noisy.test': 'rt_noisy',
       'raw-on-clean.test': 'raw_clean', 'ctl-random.test': 'ctl_random',
       'ctl-popularity.test': 'ctl_pop'}
ARM_ORDER = ['raw', 'paper', 'detect', 'detect-collab', 'detect-clean',
             'detect-mask', 'detect-perm', 'detect-fixed', 'detect-text']
KIND_ORDER = ['clean', 'uniform', 'popularity']


def ndcg10(path):
    try:
        with open(path, encoding='utf-8') as f:
            v = json.load(f).get('NDCG@10')
        return float(v) if v is not None else None
    except (OSError, ValueError):
        return None


def parse_gate(path):
    out = {}
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    f1_zero = None
    for line in lines:
        m = re.match(r'scored .*PR-AUC ([0-9.]+)', line)
        if m:
            out['prauc'] = float(m.group(1))
        m = re.match(r'best F1 over all thresholds.*: ([0-9.]+) dropping', line)
        if m:
            out['bestf1'] = float(m.group(1))
        m = re.match(r'proposed: theta .*F1 ([0-9.]+) dropped', line)
        if m:
            out['f1'] = float(m.group(1))
        m = re.match(r'theta 0: theta .*F1 ([0-9.]+) dropped', line)
        if m:
            f1_zero = float(m.group(1))
    if 'f1' not in out and f1_zero is not None:
        out['f1'] = f1_zero  # the paper's gate: its label-free theta is 0
        out['f1_at_zero'] = True
    return out


def collect(outdir):
    runs = {}  # (kind, rate) -> arm -> seed -> {metric: value}
    for name in os.listdir(outdir):
        m = NAME.match(name)
        if not m:
            continue
        group = (m.group('kind'), m.group('rate'))
        cell = runs.setdefault(group, {}).setdefault(
            m.group('arm'), {}).setdefault(int(m.group('seed')), {})
        path = os.path.join(outdir, name)
        if m.group('what') == 'gate':
            cell.update(parse_gate(path))
        else:
            v = ndcg10(path)
            if v is not None:
                cell[KEY[m.group('what')]] = v
    return runs


def derive(runs):
    """Per-seed paired differences and the recovered share."""
    for (kind, rate), arms in runs.items():
        raw = arms.get('raw', {})
        clean_raw = runs.get(('clean', None), {}).get('raw', {})
        for arm, seeds in arms.items():
            for seed, c in seeds.items():
                r = raw.get(seed, {}).get('bb')
                if r is not None and arm != 'raw' and 'bb' in c:
                    c['d_bb'] = c['bb'] - r
                if r is not None and 'rt' in c:
                    c['d_rt'] = c['rt'] - r
                    rc = clean_raw.get(seed, {}).get('bb')
                    if kind != 'clean' and rc is not None and rc != r:
                        c['recovered'] = (c['rt'] - r) / (rc - r)
                for k in ('ctl_random', 'ctl_pop'):
                    if 'rt' in c and k in c:
                        c['d_' + k] = c['rt'] - c[k]


def cell(seeds, key, digits, nrow, signed=False):
    v = [c[key] for c in seeds.values() if key in c and math.isfinite(c[key])]
    if not v:
        return '-'
    fmt = ('{:+.%df}' if signed else '{:.%df}') % digits
    s = fmt.format(statistics.mean(v))
    if len(v) > 1:
        s += (' +- {:.%df}' % digits).format(statistics.stdev(v))
    if len(v) != nrow:
        s += f' (n={len(v)})'
    return s


def table(header, rows):
    out = ['| ' + ' | '.join(header) + ' |',
           '|' + '|'.join(' --- ' for _ in header) + '|']
    out += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return out


def order(seq, ref):
    return sorted(seq, key=lambda x: (ref.index(x) if x in ref else len(ref), x))


def rate_key(r):
    try:
        return float(r)
    except (TypeError, ValueError):
        return -1.0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    runs = collect(outdir)
    derive(runs)
    lines = [f'# Denoising protocol: {outdir}', '',
             'Test NDCG@10 and gate scores, mean +- sample std over seeds; '
             '"diff" columns: mean +- std of the per-seed differences '
             '(paired by seed); (n=k): fewer seeds than the row; '
             '-: no data.', '']
    kinds = order({k for k, _ in runs}, KIND_ORDER)
    paper_zero = False
    for kind in kinds:
        for rate in sorted({r for k, r in runs if k == kind}, key=rate_key):
            arms = runs[(kind, rate)]
            if kind == 'clean':
                title = 'clean data (no injected noise)'
            else:
                title = f'{kind} noise, rate {rate if rate else "?"}'
            lines += [f'## {title}', '']
            rows, rows2 = [], []
            for arm in order(arms, ARM_ORDER):
                seeds = arms[arm]
                nrow = sum(1 for c in seeds.values() if 'bb' in c)
                if any(c.get('f1_at_zero') for c in seeds.values()):
                    paper_zero = True
                rows.append([
                    arm, ' '.join(str(s) for s in sorted(seeds)),
                    cell(seeds, 'bb', 4, nrow),
                    cell(seeds, 'd_bb', 4, nrow, True),
                    cell(seeds, 'prauc', 3, nrow),
                    cell(seeds, 'f1', 3, nrow),
                    cell(seeds, 'bestf1', 3, nrow),
                    cell(seeds, 'rt', 4, nrow),
                    cell(seeds, 'd_rt', 4, nrow, True),
                    cell(seeds, 'recovered', 2, nrow)])
                r2 = [cell(seeds, k, 4, nrow, k.startswith('d_'))
                      for k in ('ctl_random', 'ctl_pop', 'd_ctl_random',
                                'd_ctl_pop', 'raw_clean', 'rt_noisy')]
                if any(x != '-' for x in r2):
                    rows2.append([arm] + r2)
            lines += table(['arm', 'seeds', 'backbone', 'diff vs raw',
                            'PR-AUC', 'F1 label-free', 'best F1 (ceiling)',
                            'retrain', 'retrain diff vs raw', 'recovered'],
                           rows)
            lines.append('')
            if rows2:
                lines += table(['arm', 'random ctl retrain',
                                'popularity ctl retrain',
                                'retrain diff vs random',
                                'retrain diff vs popularity',
                                'raw model on cleaned',
                                'retrain on noisy'], rows2)
                lines.append('')
    if not runs:
        lines += ['(no outputs of bench/detector.sh found)', '']
    lines += ['backbone: the arm trained and evaluated on the data of the '
              'section; retrain: a raw backbone retrained on the data '
              'cleaned at the label-free theta, evaluated on the cleaned '
              'histories; recovered: (retrain - raw) / (raw on the clean '
              'data - raw), per seed; the controls drop as many items per '
              'user as the gate (at random, least popular first) and are '
              'retrained and evaluated the same way; raw model on cleaned: '
              'the raw arm\'s model on this arm\'s cleaned histories; '
              'retrain on noisy: the retrained model on the uncleaned '
              'histories.']
    if paper_zero:
        lines += ['', 'F1 label-free of a gate without a proposed theta '
                  '(the paper\'s): at theta 0.']
    text = '\n'.join(lines) + '\n'
    sys.stdout.write(text)
    with open(os.path.join(outdir, 'summary.md.tmp'), 'w',
              encoding='utf-8') as f:
        f.write(text)
    os.replace(os.path.join(outdir, 'summary.md.tmp'),
               os.path.join(outdir, 'summary.md'))


if __name__ == '__main__':
    main()
