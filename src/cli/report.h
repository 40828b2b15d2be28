/* iadsr command-line tool: the pieces of `iadsr report` that know nothing
 * of the library: a growing text buffer with HTML escaping, the reader of
 * `iadsr train --log` files (JSON lines) and the SVG charts (line charts,
 * a histogram). No global state: every function works on what it is
 * given.
 * SPDX-License-Identifier: MIT
 */
#ifndef IADSR_CLI_REPORT_H
#define IADSR_CLI_REPORT_H

#include <stddef.h>
#include <stdint.h>

/* ---- text buffer ---- */

/* A growing byte buffer; zero it before use. After an allocation failure
 * it keeps what it had, ignores later writes and sets @p failed. */
typedef struct rp_buf {
    char *p;
    size_t len, cap;
    int failed;
} rp_buf;

void rp_buf_free(rp_buf *b);
/* Append bytes as they are (markup the caller wrote). */
void rp_putn(rp_buf *b, const char *s, size_t n);
void rp_put(rp_buf *b, const char *s);
/* Append formatted markup (never for untrusted text: use rp_text). */
void rp_printf(rp_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Append @p s as HTML text or attribute value: & < > " ' escaped, bytes
 * that are not valid UTF-8 and control characters other than tab and
 * line feed replaced by U+FFFD. NULL appends nothing. */
void rp_text(rp_buf *b, const char *s);
/* A number for an SVG attribute: fixed 2 decimals, never NaN or inf
 * (non-finite values are written as 0, magnitudes clamped to 1e6). */
void rp_coord(rp_buf *b, double v);

/* ---- the training log (iadsr train --log) ---- */

/* One epoch line; NaN for null or absent numbers. */
typedef struct rp_epoch {
    int64_t epoch, max_epochs, best_epoch;
    double loss, loss_next, loss_aux, loss_detect;
    double valid_hr10, valid_ndcg10, best_ndcg10;
    double learning_rate, epoch_seconds, elapsed_seconds;
} rp_epoch;

typedef struct rp_log {
    rp_epoch *ep; /* the epoch lines in file order (epochs increase) */
    size_t n, cap;
    int has_summary; /* the last object ("summary": true) was read */
    char status[64]; /* summary fields; "" when absent */
    char model[512];
    int64_t epochs, best_epoch, parameters; /* -1 when absent */
    double best_valid_ndcg10, best_valid_hr10, seconds; /* NaN: null */
} rp_log;

/* Read @p path into @p log (zeroed first). Blank lines are skipped; every
 * other line must be one JSON object: an epoch ("epoch": N >= 1, numbers
 * or null for the other known keys, epochs increasing) or the summary
 * ("summary": true), after which only blank lines may follow. Unknown keys
 * are ignored. Returns 0, or -1 with a message in @p err ("PATH:LINE:
 * what is wrong", or "PATH: cannot open: ...") and @p log empty. */
int rp_log_read(const char *path, rp_log *log, char *err, size_t err_cap);
void rp_log_free(rp_log *log);

/* ---- charts (inline SVG) ---- */

/* A series of a line chart: points (x[i], y[i]), those with a non-finite
 * coordinate skipped. */
typedef struct rp_series {
    const char *name; /* legend text (escaped) */
    const double *x, *y;
    size_t n;
} rp_series;

typedef struct rp_line_chart {
    const char *label;            /* aria-label and <title> (escaped) */
    const char *x_label, *y_label; /* axis titles (escaped) */
    const rp_series *series;
    size_t n_series;
    int x_integer; /* x ticks on integers only (epochs) */
    int has_x_range; /* the x axis covers [x_lo, x_hi] too */
    double x_lo, x_hi;
    int y_unit;    /* y axis fixed to [0, 1] */
    int has_vline; /* a dashed vertical line at vline_x, with vline_text */
    double vline_x;
    const char *vline_text;
} rp_line_chart;

/* Append one <svg> element: axes with tick labels, axis titles, a legend
 * and one polyline (with point markers) per series. One x value, constant
 * series and series without any point are drawn sensibly ("no data"). */
void rp_line_chart_svg(rp_buf *b, const rp_line_chart *c);

typedef struct rp_histogram {
    const char *label;   /* aria-label and <title> */
    const char *x_label; /* axis title */
    const float *values; /* NaN entries are skipped */
    const uint8_t *mark; /* NULL, or 1 per value: drawn as a stacked part */
    const char *mark_name, *rest_name; /* legend names when mark != NULL */
    size_t n;
    int n_bins;         /* >= 1 */
    double theta;       /* the vertical line */
    const char *theta_text; /* written beside it */
} rp_histogram;

/* Append one <svg> element: bars of counts over the values' range (theta
 * included), a dashed vertical line at theta and its text. No values: the
 * axes and "no values". */
void rp_histogram_svg(rp_buf *b, const rp_histogram *h);

/* Precision and recall of the rule "drop iff value <= t" against @p lab
 * (1 = positive) over the values that are not NaN, at @p n_t thresholds
 * evenly spread from the smallest to the largest value (both included):
 * t[i], precision[i] (NaN when nothing is dropped), recall[i] (NaN when
 * there is no positive) and f1[i]. Returns the number of thresholds
 * written (0 when no value is finite), or -1 when out of memory. */
int rp_pr_sweep(const float *values, const uint8_t *lab, size_t n, int n_t,
                double *t, double *precision, double *recall, double *f1);

#endif /* IADSR_CLI_REPORT_H */
