#!/usr/bin/python3
"""Fit growth exponents to bench/scaling.sh's table and draw it as SVG.

Usage: scaling_plot.py SCALING.tsv OUT.svg

For each measured quantity q (seconds per epoch, peak RSS, users/s, model
size) fits log q = a + b log(users) + c log(items) by least squares and
prints a markdown table of the points and the exponents b and c. The SVG
has one log-log panel per quantity against users x items, the points of the
joint diagonal joined by a line, the corners marked apart.
SPDX-License-Identifier: MIT
"""
import math
import sys

import numpy as np

COLS = [('epoch_s', 'train s/epoch'), ('peak_rss_mib', 'peak RSS MiB'),
        ('users_per_s', 'top-10 users/s'), ('model_mib', 'model MiB')]


def read(path):
    rows = []
    with open(path) as f:
        head = f.readline().split()
        for line in f:
            if line.strip():
                rows.append(dict(zip(head, map(float, line.split()))))
    return rows


def fit(rows, key):
    u = np.log([r['users'] for r in rows])
    i = np.log([r['items'] for r in rows])
    y = np.log([r[key] for r in rows])
    a = np.column_stack([np.ones_like(u), u, i])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef[1], coef[2]


def panel(x0, y0, w, h, rows, key, title):
    xs = [math.log10(r['users'] * r['items']) for r in rows]
    ys = [math.log10(r[key]) for r in rows]
    xl, xh = min(xs) - 0.2, max(xs) + 0.2
    yl, yh = min(ys) - 0.2, max(ys) + 0.2

    def px(x):
        return x0 + (x - xl) / (xh - xl) * w

    def py(y):
        return y0 + h - (y - yl) / (yh - yl) * h

    out = ['<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#888"/>'
           % (x0, y0, w, h),
           '<text x="%g" y="%g" font-size="13" text-anchor="middle">%s</text>'
           % (x0 + w / 2, y0 - 8, title)]
    for e in range(math.ceil(yl), math.floor(yh) + 1):
        out.append('<text x="%g" y="%g" font-size="10" text-anchor="end">1e%d</text>'
                   % (x0 - 4, py(e) + 3, e))
        out.append('<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#eee"/>'
                   % (x0, x0 + w, py(e), py(e)))
    for e in range(math.ceil(xl), math.floor(xh) + 1):
        out.append('<text x="%g" y="%g" font-size="10" text-anchor="middle">1e%d</text>'
                   % (px(e), y0 + h + 14, e))
    diag = [(x, y) for x, y, r in zip(xs, ys, rows) if r['users'] == r['items']]
    if len(diag) > 1:
        out.append('<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>'
                   % ' '.join('%g,%g' % (px(x), py(y)) for x, y in diag))
    for x, y, r in zip(xs, ys, rows):
        corner = r['users'] != r['items']
        out.append('<circle cx="%g" cy="%g" r="4" fill="%s"><title>%d users, %d items: %g</title></circle>'
                   % (px(x), py(y), '#d62728' if corner else '#1f77b4',
                      r['users'], r['items'], r[key]))
    out.append('<text x="%g" y="%g" font-size="10" text-anchor="middle">users x items</text>'
               % (x0 + w / 2, y0 + h + 28))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: scaling_plot.py SCALING.tsv OUT.svg')
    rows = read(sys.argv[1])
    if len(rows) < 3:
        sys.exit('scaling_plot: need at least 3 sizes')
    print('| users | items | interactions | train s/epoch | peak RSS MiB | top-10 users/s | model MiB |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for r in rows:
        print('| %d | %d | %d | %.2f | %.1f | %d | %.1f |' % (
            r['users'], r['items'], r['interactions'], r['epoch_s'],
            r['peak_rss_mib'], r['users_per_s'], r['model_mib']))
    print()
    print('| quantity | exponent in users | exponent in items |')
    print('| --- | ---: | ---: |')
    for key, name in COLS:
        b, c = fit(rows, key)
        print('| %s | %.2f | %.2f |' % (name, b, c))
    w, h, pad = 300, 200, 70
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">'
           % (2 * (w + pad) + pad, 2 * (h + pad) + 40),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="12">libiadsr scaling (bench/scaling.sh): blue = users and '
           'items grown together, red = the two corners</text>']
    for k, (key, name) in enumerate(COLS):
        x0 = pad + (k % 2) * (w + pad)
        y0 = 50 + (k // 2) * (h + pad)
        b, c = fit(rows, key)
        svg += panel(x0, y0, w, h, rows, key, '%s (users^%.2f items^%.2f)' % (name, b, c))
    svg.append('</svg>')
    with open(sys.argv[2] + '.tmp', 'w') as f:
        f.write('\n'.join(svg) + '\n')
    import os
    os.replace(sys.argv[2] + '.tmp', sys.argv[2])


if __name__ == '__main__':
    main()
