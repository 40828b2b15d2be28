/* iadsr command-line tool: `iadsr report`, one self-contained HTML file
 * (inline CSS and SVG) about a checkpoint, its training log and a
 * denoising of a data file.
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "cli/report.h"

#include "iadsr.h"
#include "backbone/encoder.h" /* backbone names */
#include "backbone/model.h"   /* training provenance (as `iadsr info`) */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char report_help[] =
    "Usage: iadsr report --model MODEL --out REPORT.html [--log FILE.jsonl]\n"
    "                    [--data FILE --semantic EMB.npy [--labels LABELS]\n"
    "                    [denoise options]] [--title TEXT]\n"
    "\n"
    "Write one self-contained HTML file (inline CSS and SVG figures; no\n"
    "script, no network, no external reference) for a person to look at a\n"
    "training run and a denoising:\n"
    "  - the checkpoint's hyper-parameters (backbone, dim, layers,\n"
    "    max_seq_len, n_items, epochs trained, best validation NDCG@10) and\n"
    "    its aligner and gate (the gate's flags, theta, max_drop);\n"
    "  - with --log (the file of 'iadsr train --log'): the training loss per\n"
    "    epoch (the total and each term present: loss_next, loss_aux,\n"
    "    loss_detect) and the validation NDCG@10 per epoch, as line charts\n"
    "    (null values skipped), and the fields of the summary line;\n"
    "  - with --data and --semantic (a model with aligner and gate): the\n"
    "    data cleaned as 'iadsr denoise' cleans it (same split, same theta:\n"
    "    the gate's, or for a detector gate the one it proposes from the\n"
    "    data, unless --theta), a histogram of the gate's scores of the\n"
    "    positions it may drop with theta and the share dropped, and a\n"
    "    before/after table (users, interactions, mean length, dropped,\n"
    "    users touched, and the model's test HR@10 / NDCG@10 on the raw and\n"
    "    on the cleaned histories, as 'iadsr eval');\n"
    "  - with --labels (from 'iadsr inject-noise', for FILE = its NOISY\n"
    "    output): precision and recall of dropping every position scored at\n"
    "    or below a threshold, over thresholds across the score range, and\n"
    "    the precision, recall and F1 of the drops made at theta.\n"
    "REPORT.html is written atomically; nothing goes to standard output.\n"
    "A malformed log line is an error naming the file and the line.\n"
    "\n"
    "Options:\n"
    "  --model MODEL         checkpoint (required)\n"
    "  --out REPORT.html     the report to write (required)\n"
    "  --title TEXT          the report's title (default: 'iadsr report:'\n"
    "                        and MODEL)\n"
    "  --log FILE.jsonl      training log of 'iadsr train --log'\n"
    "  --data FILE           sequences to clean (needs --semantic and a\n"
    "                        model trained with 'iadsr train --semantic')\n"
    "  --semantic EMB.npy    semantic item vectors, as for training\n"
    "  --semantic-rows R     padded (default) or dense ('items')\n"
    "  --user-semantic U.npy one row per user of FILE, when the model was\n"
    "                        trained with them\n"
    "  --labels LABELS       0/1 per item of FILE (1 = injected)\n"
    "  --split loo|none      as 'iadsr denoise' (default loo: only the\n"
    "                        training parts are cleaned)\n"
    "  --theta X             override the gate's threshold, in [-3, 3]\n"
    "  --max-drop X          override the drop cap, in [0, 1]\n"
    "  --no-protect-last     the most recent item may be dropped\n"
    "  --collab-only         score with the collaborative views only\n"
    "  --allow-mismatch      as 'iadsr denoise'\n"
    "  --threads T           worker threads for cleaning and evaluation,\n"
    "                        1..256 (default 1)\n";

static const char *const split_names[] = {"loo", "none", NULL};

/* ------------------------------------------------------------------------ */
/* The denoising                                                            */
/* ------------------------------------------------------------------------ */

typedef struct denoised {
    iadsr_dataset *d, *clean;
    iadsr_denoise_params gp; /* the rule the cleaning used */
    int theta_from;          /* 0: the gate's, 1: --theta, 2: proposed */
    double rate;             /* the estimated noise rate (proposed) */
    uint8_t *keep, *lab;     /* n_interactions; lab NULL without labels */
    float *scores;           /* n_interactions */
    /* the eligible positions (those the split lets the gate clean) */
    float *el_scores;
    uint8_t *el_lab; /* NULL without labels */
    size_t n_el;
    int64_t n_dropped, users_touched, tp, fp, fn, injected;
    int64_t users_in, users_out; /* users with at least one item */
    iadsr_metrics raw, cleaned;
    int raw_ok, cleaned_ok; /* 0: no user had a test target */
} denoised;

static void denoised_free(denoised *r)
{
    iadsr_dataset_free(r->clean);
    iadsr_dataset_free(r->d);
    free(r->keep);
    free(r->lab);
    free(r->scores);
    free(r->el_scores);
    free(r->el_lab);
    memset(r, 0, sizeof *r);
}

/* Test metrics of @p m on @p d into *out; *ok = 0 when no user has a test
 * target (not an error here: a cleaning may leave none). */
static int evaluate(const char *cmd, const iadsr_model *m,
                    const iadsr_dataset *d, int64_t threads, const char *what,
                    iadsr_metrics *out, int *ok)
{
    iadsr_eval_params ep;
    int rc;
    iadsr_eval_params_init(&ep);
    ep.n_threads = (int32_t)threads;
    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    rc = iadsr_evaluate(m, d, &ep, out);
    *ok = rc == IADSR_OK;
    if (rc == IADSR_OK || rc == IADSR_ERR_STATE) {
        iadsr_clear_error();
        return CLI_OK;
    }
    return cli_lib_error(cmd, what, NULL, rc);
}

/* Clean @p data_path with the checkpoint's parts as `iadsr denoise` does
 * and measure it. */
static int run_denoise(const char *cmd, cli_checkpoint *ck,
                       cli_semantic_in *si, const char *data_path,
                       const char *labels_path, int split, int allow_mismatch,
                       int64_t threads, const cli_opt *opts, size_t n_opts,
                       const cli_denoise_vals *dv, denoised *r)
{
    const int32_t lib_split =
        split == 0 ? IADSR_SPLIT_LEAVE_ONE_OUT : IADSR_SPLIT_NONE;
    iadsr_denoiser *dn = NULL;
    int64_t n_int, pos = 0;
    int exit_code = CLI_RUNTIME, rc;

    if (cli_load_semantic(cmd, si) != CLI_OK ||
        cli_load_data(cmd, data_path, iadsr_model_n_items(ck->model),
                      &r->d) != CLI_OK ||
        cli_load_user_semantic(cmd, si, iadsr_dataset_n_users(r->d)) !=
            CLI_OK)
        return CLI_RUNTIME;

    r->theta_from = cli_opt_seen(opts, n_opts, "theta") ? 1 : 0;
    if (cli_denoiser_setup(cmd, ck, si, r->d, lib_split, allow_mismatch,
                           threads, opts, n_opts, dv, &r->gp, &r->rate,
                           &dn) != CLI_OK)
        return CLI_RUNTIME;
    if (!isnan(r->rate))
        r->theta_from = 2;

    n_int = iadsr_dataset_n_interactions(r->d);
    r->keep = malloc((size_t)(n_int > 0 ? n_int : 1));
    r->scores = malloc((size_t)(n_int > 0 ? n_int : 1) * sizeof *r->scores);
    r->el_scores =
        malloc((size_t)(n_int > 0 ? n_int : 1) * sizeof *r->el_scores);
    if (labels_path) {
        r->lab = calloc((size_t)(n_int > 0 ? n_int : 1), 1);
        r->el_lab = malloc((size_t)(n_int > 0 ? n_int : 1));
    }
    if (!r->keep || !r->scores || !r->el_scores ||
        (labels_path && (!r->lab || !r->el_lab))) {
        cli_error(cmd, "out of memory for %lld interactions",
                  (long long)n_int);
        goto done;
    }
    /* a bad label file should fail before the work */
    if (labels_path &&
        cli_read_labels(cmd, labels_path, data_path, r->d, r->lab) != CLI_OK)
        goto done;

    rc = iadsr_denoiser_clean_dataset(dn, r->d, lib_split, si->users,
                                      (int32_t)threads, &r->clean, r->keep,
                                      r->scores);
    if (rc != IADSR_OK) {
        cli_lib_error(cmd, "cleaning failed", NULL, rc);
        goto done;
    }

    /* what changed, over the positions the split lets the gate clean */
    for (int64_t u = 0; u < iadsr_dataset_n_users(r->d); u++) {
        int32_t n = 0, n2 = 0;
        int touched = 0;
        (void)iadsr_dataset_user_items(r->d, u, &n);
        (void)iadsr_dataset_user_items(r->clean, u, &n2);
        r->users_in += n > 0;
        r->users_out += n2 > 0;
        for (int32_t j = 0; j < n; j++, pos++) {
            int dropped = !r->keep[pos];
            if (lib_split != IADSR_SPLIT_NONE && j >= n - 2)
                continue;
            r->el_scores[r->n_el] = r->scores[pos];
            if (r->lab) {
                int l = r->lab[pos];
                r->el_lab[r->n_el] = (uint8_t)l;
                r->injected += l;
                r->tp += dropped && l;
                r->fp += dropped && !l;
                r->fn += !dropped && l;
            }
            r->n_el++;
            r->n_dropped += dropped;
            touched |= dropped;
        }
        r->users_touched += touched;
    }

    if (evaluate(cmd, ck->model, r->d, threads,
                 "cannot evaluate the raw histories", &r->raw,
                 &r->raw_ok) != CLI_OK ||
        evaluate(cmd, ck->model, r->clean, threads,
                 "cannot evaluate the cleaned histories", &r->cleaned,
                 &r->cleaned_ok) != CLI_OK)
        goto done;
    exit_code = CLI_OK;
done:
    iadsr_denoiser_free(dn);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* The HTML                                                                 */
/* ------------------------------------------------------------------------ */

static const char report_css[] =
    "body{font-family:system-ui,'Segoe UI',Roboto,'Helvetica Neue',Arial,"
    "sans-serif;margin:0 auto;padding:20px 28px;color:#222;background:#fff;"
    "max-width:1140px;line-height:1.4}\n"
    "h1{font-size:24px;margin:0 0 4px}\n"
    "h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;"
    "padding-bottom:4px}\n"
    "p.meta,p.note{color:#666;font-size:13px;margin:4px 0}\n"
    "table{border-collapse:collapse;font-size:14px;margin:8px 0 16px}\n"
    "th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;"
    "vertical-align:top}\n"
    "th{background:#f4f4f4;font-weight:600}\n"
    "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr) "
    "max-content minmax(0,1fr);font-size:14px;margin:8px 0 16px;"
    "border:solid #ddd;border-width:1px 0 0 1px}\n"
    "dl.kv dt,dl.kv dd{margin:0;padding:4px 10px;border:solid #ddd;"
    "border-width:0 1px 1px 0;overflow-wrap:anywhere}\n"
    "dl.kv dt{background:#f4f4f4;font-weight:600}\n"
    ".row{display:flex;flex-wrap:wrap;gap:0 24px;align-items:flex-start}\n"
    ".row table{margin-top:12px}\n"
    "figure{margin:12px 0 22px}\n"
    "figcaption{font-size:13px;color:#444;margin-top:4px;max-width:680px}\n"
    "svg.chart{max-width:100%;height:auto;display:block;"
    "border:1px solid #eee}\n"
    "svg.chart text{font-family:sans-serif;font-size:12px;fill:#333}\n"
    "svg.chart .tick{font-size:11px;fill:#555}\n"
    "svg.chart .plot{fill:#fbfbfb;stroke:none}\n"
    "svg.chart .grid{stroke:#e6e6e6;stroke-width:1}\n"
    "svg.chart .axis{stroke:#444;stroke-width:1}\n"
    "svg.chart .grid,svg.chart .axis,svg.chart rect"
    "{shape-rendering:crispEdges}\n"
    "svg.chart .series{stroke-width:2;stroke-linejoin:round}\n"
    "svg.chart .vline{stroke:#000;stroke-width:1.5;stroke-dasharray:5 4}\n"
    "svg.chart .vtext{font-weight:bold;fill:#000}\n"
    "svg.chart .nodata{font-size:16px;fill:#999}\n";

/* What the page is made of. */
typedef struct page {
    const char *title, *model_path, *log_path, *data_path, *labels_path,
        *sem_path;
    const cli_checkpoint *ck;
    /* the gate's settings as stored (before --theta or a proposal) */
    iadsr_denoise_params stored;
    int have_stored;
    const rp_log *log;      /* NULL without --log */
    const denoised *dn;     /* NULL without --data */
    const char *split_name;
    int figures; /* figures so far (numbers the captions) */
} page;

/* @p v with @p dec decimals, "n/a" when not finite. */
static const char *fmt_num(char *buf, size_t cap, double v, int dec)
{
    if (!isfinite(v))
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.*f", dec, v);
    return buf;
}

static double ratio(int64_t num, int64_t den)
{
    return den > 0 ? (double)num / (double)den : (double)NAN;
}

/* <tr><th>key</th><td>value</td></tr>, both escaped. */
static void kv_row(rp_buf *b, const char *key, const char *value)
{
    rp_put(b, "<tr><th>");
    rp_text(b, key);
    rp_put(b, "</th><td>");
    rp_text(b, value);
    rp_put(b, "</td></tr>\n");
}

static void kv_row_i64(rp_buf *b, const char *key, int64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    kv_row(b, key, tmp);
}

/* <dt>key</dt><dd>value</dd>, both escaped (a grid of two pairs a row). */
static void kv_item(rp_buf *b, const char *key, const char *value)
{
    rp_put(b, "<dt>");
    rp_text(b, key);
    rp_put(b, "</dt><dd>");
    rp_text(b, value);
    rp_put(b, "</dd>\n");
}

static void kv_item_i64(rp_buf *b, const char *key, int64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    kv_item(b, key, tmp);
}

static void figure_open(rp_buf *b)
{
    rp_put(b, "<figure>\n");
}

static void figure_close(rp_buf *b, page *pg, const char *caption)
{
    pg->figures++;
    rp_printf(b, "<figcaption>Figure %d. ", pg->figures);
    rp_text(b, caption);
    rp_put(b, "</figcaption>\n</figure>\n");
}

static void gate_flag_names(char *buf, size_t cap, uint32_t fl)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {IADSR_DENOISE_F_COLLAB_ONLY, "collab-only"},
        {IADSR_DENOISE_F_CARRY_MASKS, "carry-masks"},
        {IADSR_DENOISE_F_PAPER, "paper-losses"},
        {IADSR_DENOISE_F_DETECT, "detect"},
        {IADSR_DENOISE_F_HOLDOUT, "holdout"},
        {IADSR_DENOISE_F_CLEAN_SCORES, "clean-scores"},
        {IADSR_DENOISE_F_INPUT_MASK, "input-mask"},
        {IADSR_DENOISE_F_TEXT, "text-feature"},
    };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int w;
        if (!(fl & names[i].bit))
            continue;
        w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
                     names[i].name);
        if (w < 0 || (size_t)w >= cap - used)
            return;
        used += (size_t)w;
    }
    if (!used)
        snprintf(buf, cap, "none");
}

static void section_model(rp_buf *b, const page *pg)
{
    const iadsr_model *m = pg->ck->model;
    iadsr_model_params p;
    const iadsr__encoder_ops *ops;
    char tmp[256], v[64];

    iadsr_model_params_init(&p);
    if (iadsr_model_get_params(m, &p) != IADSR_OK) {
        iadsr_clear_error();
        p.backbone = iadsr_model_backbone(m);
        p.n_items = iadsr_model_n_items(m);
        p.dim = iadsr_model_dim(m);
        p.max_seq_len = iadsr_model_max_seq_len(m);
        p.n_layers = p.n_heads = 0;
    }
    ops = iadsr__encoder_ops_for(p.backbone);
    rp_put(b, "<section id=\"model\">\n<h2>Model</h2>\n"
              "<dl class=\"kv\">\n");
    kv_item(b, "checkpoint", pg->model_path);
    kv_item(b, "backbone", ops ? ops->name : "unknown");
    kv_item_i64(b, "dim", p.dim);
    if (p.n_layers > 0)
        kv_item_i64(b, "layers", p.n_layers);
    if (p.n_heads > 0)
        kv_item_i64(b, "heads", p.n_heads);
    kv_item_i64(b, "max_seq_len", p.max_seq_len);
    kv_item_i64(b, "n_items", p.n_items);
    snprintf(tmp, sizeof tmp, "%g", (double)p.dropout);
    kv_item(b, "dropout (training)", tmp);
    kv_item_i64(b, "parameters", iadsr_model_n_params(m));
    kv_item_i64(b, "epochs trained", m->epochs_trained);
    kv_item(b, "best validation NDCG@10",
           isnan(m->best_valid_ndcg10)
               ? "unknown"
               : fmt_num(v, sizeof v, (double)m->best_valid_ndcg10, 4));
    if (pg->ck->aligner) {
        snprintf(tmp, sizeof tmp, "yes (semantic width %ld to dim %ld)",
                 (long)iadsr_aligner_semantic_dim(pg->ck->aligner),
                 (long)iadsr_aligner_dim(pg->ck->aligner));
        kv_item(b, "aligner", tmp);
    } else {
        kv_item(b, "aligner", "no");
    }
    if (pg->ck->gate) {
        const iadsr_denoise_params gp = pg->stored;
        if (pg->have_stored) {
            kv_item(b, "gate", (gp.flags & IADSR_DENOISE_F_DETECT)
                                  ? "yes: a trained detector"
                                  : "yes: the cosine-sum rule of the paper");
            gate_flag_names(tmp, sizeof tmp, gp.flags);
            kv_item(b, "gate flags", tmp);
            kv_item(b, "gate theta (stored)",
                   fmt_num(v, sizeof v, (double)gp.theta, 4));
            kv_item(b, "gate max_drop", fmt_num(v, sizeof v,
                                               (double)gp.max_drop, 3));
            kv_item(b, "gate protect_last", gp.protect_last ? "yes" : "no");
            snprintf(tmp, sizeof tmp,
                     "lambda_align %g, lambda_recon %g, tau_align %g, "
                     "tau_gumbel %g",
                     (double)gp.lambda_align, (double)gp.lambda_recon,
                     (double)gp.tau_align, (double)gp.tau_gumbel);
            kv_item(b, "trained with", tmp);
        } else {
            kv_item(b, "gate", "yes (its settings could not be read)");
        }
    } else {
        kv_item(b, "gate", "no");
    }
    rp_put(b, "</dl>\n</section>\n");
}

static void section_training(rp_buf *b, page *pg)
{
    const rp_log *log = pg->log;
    static const char *const names[] = {"loss (total)", "loss_next",
                                        "loss_aux", "loss_detect"};
    static const char *const terms[] = {
        "the total", "the next-item loss",
        "the alignment and reconstruction losses, weighted",
        "the detector gate's loss"};
    int term_of[4] = {0, 0, 0, 0}; /* series -> index into terms */
    double *x = NULL, *y[5] = {NULL, NULL, NULL, NULL, NULL};
    rp_series se[4];
    size_t n_se = 0, n = log->n;
    char v[64], cap[512];
    int64_t best_epoch = -1;

    rp_put(b, "<section id=\"training\">\n<h2>Training</h2>\n"
              "<p class=\"note\">Log: ");
    rp_text(b, pg->log_path);
    rp_printf(b, " (%zu epoch line%s%s)</p>\n", n, n == 1 ? "" : "s",
              log->has_summary ? " and the summary" : ", no summary line");

    x = malloc((n ? n : 1) * sizeof *x);
    for (int k = 0; k < 5; k++)
        y[k] = malloc((n ? n : 1) * sizeof *y[k]);
    if (!x || !y[0] || !y[1] || !y[2] || !y[3] || !y[4]) {
        b->failed = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const rp_epoch *e = &log->ep[i];
        x[i] = (double)e->epoch;
        y[0][i] = e->loss;
        y[1][i] = e->loss_next;
        y[2][i] = e->loss_aux;
        y[3][i] = e->loss_detect;
        y[4][i] = e->valid_ndcg10;
        if (e->best_epoch > 0)
            best_epoch = e->best_epoch;
    }
    if (log->has_summary && log->best_epoch > 0)
        best_epoch = log->best_epoch;
    /* the total, and each term that has a value somewhere */
    for (int k = 0; k < 4; k++) {
        int present = 0;
        for (size_t i = 0; i < n && !present; i++)
            present = isfinite(y[k][i]);
        if (k > 0 && !present)
            continue;
        term_of[n_se] = k;
        se[n_se].name = names[k];
        se[n_se].x = x;
        se[n_se].y = y[k];
        se[n_se].n = n;
        n_se++;
    }
    {
        rp_line_chart c;
        memset(&c, 0, sizeof c);
        c.label = "Training loss per epoch";
        c.x_label = "epoch";
        c.y_label = "loss per position";
        c.series = se;
        c.n_series = n_se;
        c.x_integer = 1;
        if (n > 0) {
            c.has_x_range = 1;
            c.x_lo = x[0];
            c.x_hi = x[n - 1];
        }
        figure_open(b);
        rp_line_chart_svg(b, &c);
        snprintf(cap, sizeof cap,
                 "Training loss per epoch (per position): the total%s. "
                 "Null values are skipped.",
                 n_se > 1 ? " and the terms of it the log holds" : "");
        for (size_t k = 1; k < n_se; k++) {
            size_t used = strlen(cap);
            snprintf(cap + used, sizeof cap - used, " %s: %s.",
                     se[k].name, terms[term_of[k]]);
        }
        figure_close(b, pg, cap);
    }
    {
        rp_line_chart c;
        rp_series s1;
        char vt[96];
        s1.name = "validation NDCG@10";
        s1.x = x;
        s1.y = y[4];
        s1.n = n;
        memset(&c, 0, sizeof c);
        c.label = "Validation NDCG@10 per epoch";
        c.x_label = "epoch";
        c.y_label = "NDCG@10";
        c.series = &s1;
        c.n_series = 1;
        c.x_integer = 1;
        if (n > 0) {
            c.has_x_range = 1;
            c.x_lo = x[0];
            c.x_hi = x[n - 1];
        }
        if (best_epoch > 0) {
            c.has_vline = 1;
            c.vline_x = (double)best_epoch;
            snprintf(vt, sizeof vt, "best epoch %lld", (long long)best_epoch);
            c.vline_text = vt;
        }
        rp_put(b, "<div class=\"row\">\n");
        figure_open(b);
        rp_line_chart_svg(b, &c);
        figure_close(b, pg,
                     "Validation NDCG@10 per epoch (epochs without a "
                     "validation are skipped); the dashed line marks the "
                     "best epoch, whose weights the checkpoint keeps.");
    }
    if (log->has_summary) {
        rp_put(b, "<table class=\"kv\">\n<caption>Summary line of the "
                  "log</caption>\n");
        kv_row(b, "status", log->status[0] ? log->status : "n/a");
        if (log->epochs >= 0)
            kv_row_i64(b, "epochs", log->epochs);
        else
            kv_row(b, "epochs", "n/a");
        if (log->best_epoch > 0)
            kv_row_i64(b, "best epoch", log->best_epoch);
        else
            kv_row(b, "best epoch", "none");
        kv_row(b, "best validation NDCG@10",
               fmt_num(v, sizeof v, log->best_valid_ndcg10, 4));
        kv_row(b, "best validation HR@10",
               fmt_num(v, sizeof v, log->best_valid_hr10, 4));
        if (log->parameters >= 0)
            kv_row_i64(b, "parameters", log->parameters);
        kv_row(b, "seconds", fmt_num(v, sizeof v, log->seconds, 1));
        kv_row(b, "model", log->model[0] ? log->model : "n/a");
        rp_put(b, "</table>\n");
    } else {
        snprintf(cap, sizeof cap, "The log has no summary line: the "
                                  "training may still run, or was killed.");
        rp_put(b, "<p class=\"note\">");
        rp_text(b, cap);
        rp_put(b, "</p>\n");
    }
    rp_put(b, "</div>\n");
done:
    rp_put(b, "</section>\n");
    free(x);
    for (int k = 0; k < 5; k++)
        free(y[k]);
}

/* A row of the before/after table: @p before and @p after as text. */
static void ba_row(rp_buf *b, const char *what, const char *before,
                   const char *after)
{
    rp_put(b, "<tr><th>");
    rp_text(b, what);
    rp_put(b, "</th><td class=\"num\">");
    rp_text(b, before);
    rp_put(b, "</td><td class=\"num\">");
    rp_text(b, after);
    rp_put(b, "</td></tr>\n");
}

static void section_denoising(rp_buf *b, page *pg)
{
    const denoised *r = pg->dn;
    char t1[128], t2[128], th[64], note[256];
    double share = ratio(r->n_dropped, (int64_t)r->n_el);
    int64_t n_in = iadsr_dataset_n_interactions(r->d);
    int64_t n_out = iadsr_dataset_n_interactions(r->clean);

    rp_put(b, "<section id=\"denoising\">\n<h2>Denoising</h2>\n<p>Data ");
    rp_text(b, pg->data_path);
    rp_put(b, ", semantic vectors ");
    rp_text(b, pg->sem_path);
    snprintf(note, sizeof note,
             ". Split %s: %s; %zu positions scored. Theta %s",
             pg->split_name,
             strcmp(pg->split_name, "loo") == 0
                 ? "each user's last two items are kept, the rest may be "
                   "dropped"
                 : "whole sequences are cleaned",
             r->n_el, fmt_num(th, sizeof th, (double)r->gp.theta, 4));
    rp_text(b, note);
    if (r->theta_from == 2)
        snprintf(note, sizeof note,
                 " proposed by the detector from the data, without labels "
                 "(estimated noise rate %.4f)",
                 r->rate);
    else if (r->theta_from == 1)
        snprintf(note, sizeof note, " given with --theta");
    else
        snprintf(note, sizeof note, " stored in the gate");
    rp_text(b, note);
    snprintf(note, sizeof note,
             "; at most %.3g of a sequence is dropped, the most recent item "
             "%s.",
             (double)r->gp.max_drop,
             r->gp.protect_last ? "is always kept" : "may be dropped");
    rp_text(b, note);
    rp_put(b, "</p>\n");

    {
        rp_histogram h;
        char tt[128], pct[32];
        memset(&h, 0, sizeof h);
        snprintf(tt, sizeof tt, "theta %.3f: %s dropped (%lld of %zu)",
                 (double)r->gp.theta,
                 isfinite(share) ? (snprintf(pct, sizeof pct, "%.1f%%",
                                             100.0 * share),
                                    pct)
                                 : "none",
                 (long long)r->n_dropped, r->n_el);
        h.label = "Gate scores of the positions it may drop";
        h.x_label = "gate score (kept iff above theta)";
        h.values = r->el_scores;
        h.n = r->n_el;
        h.n_bins = 40;
        h.theta = (double)r->gp.theta;
        h.theta_text = tt;
        if (r->el_lab) {
            h.mark = r->el_lab;
            h.mark_name = "injected (labels)";
            h.rest_name = "not injected";
        }
        rp_put(b, "<div class=\"row\">\n");
        figure_open(b);
        rp_histogram_svg(b, &h);
        figure_close(b, pg,
                     r->el_lab
                         ? "Gate scores of the positions it may drop, "
                           "stacked by the labels (injected items on top). "
                           "The gate keeps a position iff its score is "
                           "above theta (the dashed line), within the drop "
                           "cap; the share written beside it is the share "
                           "actually dropped."
                         : "Gate scores of the positions it may drop. The "
                           "gate keeps a position iff its score is above "
                           "theta (the dashed line), within the drop cap; "
                           "the share written beside it is the share "
                           "actually dropped.");
    }

    rp_put(b, "<table class=\"ba\">\n<caption>Before and after "
              "cleaning</caption>\n<tr><th></th><th class=\"num\">raw</th>"
              "<th class=\"num\">cleaned</th></tr>\n");
    snprintf(t1, sizeof t1, "%lld", (long long)r->users_in);
    snprintf(t2, sizeof t2, "%lld", (long long)r->users_out);
    ba_row(b, "users with items", t1, t2);
    snprintf(t1, sizeof t1, "%lld", (long long)n_in);
    snprintf(t2, sizeof t2, "%lld", (long long)n_out);
    ba_row(b, "interactions", t1, t2);
    fmt_num(t1, sizeof t1, ratio(n_in, r->users_in), 2);
    fmt_num(t2, sizeof t2, ratio(n_out, r->users_out), 2);
    ba_row(b, "mean sequence length", t1, t2);
    if (isfinite(share))
        snprintf(t2, sizeof t2, "%lld (%.2f%%)", (long long)r->n_dropped,
                 100.0 * share);
    else
        snprintf(t2, sizeof t2, "0 (no position scored)");
    ba_row(b, "interactions dropped", "", t2);
    snprintf(t2, sizeof t2, "%lld", (long long)r->users_touched);
    ba_row(b, "users touched", "", t2);
    ba_row(b, "test HR@10",
           r->raw_ok ? fmt_num(t1, sizeof t1, r->raw.hr10, 4) : "n/a",
           r->cleaned_ok ? fmt_num(t2, sizeof t2, r->cleaned.hr10, 4)
                         : "n/a");
    ba_row(b, "test NDCG@10",
           r->raw_ok ? fmt_num(t1, sizeof t1, r->raw.ndcg10, 4) : "n/a",
           r->cleaned_ok ? fmt_num(t2, sizeof t2, r->cleaned.ndcg10, 4)
                         : "n/a");
    snprintf(t1, sizeof t1, "%lld", (long long)(r->raw_ok ? r->raw.n_users
                                                          : 0));
    snprintf(t2, sizeof t2, "%lld",
             (long long)(r->cleaned_ok ? r->cleaned.n_users : 0));
    ba_row(b, "users evaluated", t1, t2);
    rp_put(b, "</table>\n</div>\n<p class=\"note\">The test metrics rank "
              "all items for each user's last item after the rest of the "
              "history (leave-one-out, full ranking, as 'iadsr eval'); the "
              "cleaned column scores the same model on the cleaned "
              "histories, without retraining.</p>\n</section>\n");
}

static void section_labels(rp_buf *b, page *pg)
{
    const denoised *r = pg->dn;
    enum { N_T = 101 };
    double t[N_T], pr[N_T], rc[N_T], f1[N_T];
    int n_t;
    char v[64], tt[128];
    double prec = ratio(r->tp, r->tp + r->fp);
    double rec = ratio(r->tp, r->tp + r->fn);
    double f = ratio(2 * r->tp, 2 * r->tp + r->fp + r->fn);

    rp_put(b, "<section id=\"labels\">\n<h2>Against the injected "
              "labels</h2>\n<p>Labels ");
    rp_text(b, pg->labels_path);
    rp_printf(b, ": %lld of the %zu scored positions are injected.</p>\n",
              (long long)r->injected, r->n_el);
    n_t = rp_pr_sweep(r->el_scores, r->el_lab, r->n_el, N_T, t, pr, rc, f1);
    if (n_t < 0) {
        b->failed = 1;
        n_t = 0;
    }
    {
        rp_series se[3];
        rp_line_chart c;
        se[0].name = "precision";
        se[0].y = pr;
        se[1].name = "recall";
        se[1].y = rc;
        se[2].name = "F1";
        se[2].y = f1;
        for (int k = 0; k < 3; k++) {
            se[k].x = t;
            se[k].n = (size_t)n_t;
        }
        memset(&c, 0, sizeof c);
        c.label = "Precision and recall against the threshold";
        c.x_label = "threshold (drop iff score at or below it)";
        c.y_label = "precision / recall";
        c.series = se;
        c.n_series = 3;
        c.y_unit = 1;
        c.has_vline = 1;
        c.vline_x = (double)r->gp.theta;
        snprintf(tt, sizeof tt, "theta %.3f", (double)r->gp.theta);
        c.vline_text = tt;
        rp_put(b, "<div class=\"row\">\n");
        figure_open(b);
        rp_line_chart_svg(b, &c);
        figure_close(b, pg,
                     "Precision and recall of dropping every scored "
                     "position at or below a threshold, against the "
                     "injected labels, over thresholds across the range of "
                     "the scores (without the drop cap and the "
                     "protection of the last item; precision is undefined, "
                     "and skipped, where nothing is dropped). The dashed "
                     "line is the theta used.");
    }
    rp_put(b, "<table class=\"kv\">\n<caption>The drops made at "
              "theta</caption>\n");
    kv_row(b, "theta", fmt_num(v, sizeof v, (double)r->gp.theta, 4));
    kv_row_i64(b, "injected", r->injected);
    kv_row_i64(b, "dropped, injected (true pos.)", r->tp);
    kv_row_i64(b, "dropped, not injected (false pos.)", r->fp);
    kv_row_i64(b, "kept, injected (false neg.)", r->fn);
    kv_row(b, "precision", fmt_num(v, sizeof v, prec, 4));
    kv_row(b, "recall", fmt_num(v, sizeof v, rec, 4));
    kv_row(b, "F1", fmt_num(v, sizeof v, f, 4));
    rp_put(b, "</table>\n</div>\n</section>\n");
}

static void build_page(rp_buf *b, page *pg)
{
    rp_put(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
              "<meta charset=\"utf-8\"/>\n"
              "<meta name=\"viewport\" content=\"width=device-width, "
              "initial-scale=1\"/>\n<title>");
    rp_text(b, pg->title);
    rp_put(b, "</title>\n<style>\n");
    rp_put(b, report_css);
    rp_put(b, "</style>\n</head>\n<body>\n<header>\n<h1>");
    rp_text(b, pg->title);
    rp_put(b, "</h1>\n<p class=\"meta\">Written by iadsr ");
    rp_text(b, iadsr_version_string());
    rp_put(b, " from ");
    rp_text(b, pg->model_path);
    if (pg->log_path) {
        rp_put(b, ", ");
        rp_text(b, pg->log_path);
    }
    if (pg->data_path) {
        rp_put(b, ", ");
        rp_text(b, pg->data_path);
    }
    if (pg->labels_path) {
        rp_put(b, ", ");
        rp_text(b, pg->labels_path);
    }
    rp_put(b, ".</p>\n</header>\n<main>\n");
    section_model(b, pg);
    if (pg->log)
        section_training(b, pg);
    if (pg->dn)
        section_denoising(b, pg);
    if (pg->dn && pg->dn->el_lab)
        section_labels(b, pg);
    rp_put(b, "</main>\n</body>\n</html>\n");
}

static void put_page(iadsr__atomic_file *f, const void *ctx)
{
    const rp_buf *b = ctx;
    (void)iadsr__atomic_put(f, b->p, b->len);
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */
/* ------------------------------------------------------------------------ */

int cmd_report(int argc, char **argv)
{
    static const char *cmd = "report";
    const char *model_path = NULL, *log_path = NULL, *data_path = NULL;
    const char *labels_path = NULL, *out = NULL, *title = NULL;
    cli_semantic_in si;
    int split = 0, allow_mismatch = 0;
    int64_t threads = 1;
    cli_denoise_vals dv;
    cli_opt opts[] = {
        CLI_STR("model", &model_path, OPT_REQUIRED | OPT_IN_FILE),
        CLI_STR("out", &out, OPT_REQUIRED | OPT_OUT_FILE),
        CLI_STR("title", &title, 0),
        CLI_STR("log", &log_path, OPT_IN_FILE),
        CLI_STR("data", &data_path, OPT_IN_FILE),
        CLI_SEMANTIC_OPTS(si, 0),
        CLI_USER_SEMANTIC_OPT(si),
        CLI_STR("labels", &labels_path, OPT_IN_FILE),
        CLI_CHOICE("split", &split, split_names),
        CLI_DENOISE_RULE_OPTS(dv),
        CLI_FLAG("collab-only", &dv.collab_only),
        CLI_I64("threads", &threads, 1, 256, 0),
        CLI_FLAG("allow-mismatch", &allow_mismatch),
    };
    static const char *const data_only[] = {
        "semantic-rows", "user-semantic", "split",          "theta",
        "max-drop",      "no-protect-last", "collab-only", "threads",
        "allow-mismatch", NULL};
    const size_t n_opts = sizeof opts / sizeof opts[0];
    cli_checkpoint ck = {NULL, NULL, NULL};
    rp_log log;
    int have_log = 0;
    denoised dn;
    rp_buf b;
    page pg;
    char err[1024], *default_title = NULL;
    int exit_code = CLI_RUNTIME, rc;

    memset(&dv, 0, sizeof dv);
    memset(&si, 0, sizeof si);
    memset(&dn, 0, sizeof dn);
    memset(&b, 0, sizeof b);
    memset(&log, 0, sizeof log);
    rc = cli_start(cmd, argc, argv, opts, n_opts,
                   (const char *const[]){report_help, NULL});
    if (rc != CLI_CONTINUE)
        return rc;
    if (data_path && !si.path)
        return cli_usage_error(cmd, "--data needs --semantic (the semantic "
                                    "item vectors the model was trained "
                                    "with)");
    if (si.path && !data_path)
        return cli_usage_error(cmd, "--semantic needs --data");
    if (labels_path && !data_path)
        return cli_usage_error(cmd, "--labels needs --data (and "
                                    "--semantic)");
    if (!data_path)
        for (size_t i = 0; data_only[i]; i++)
            if (cli_opt_seen(opts, n_opts, data_only[i]))
                return cli_usage_error(cmd, "--%s needs --data",
                                       data_only[i]);
    if (cli_check_out_path(cmd, out) != CLI_OK)
        return CLI_RUNTIME;

    rc = iadsr_checkpoint_load(&ck.model, &ck.aligner, &ck.gate, model_path,
                               0);
    if (rc != IADSR_OK)
        return cli_lib_error(cmd, "cannot load model", model_path, rc);
    if (data_path && (!ck.aligner || !ck.gate)) {
        cli_error(cmd, "%s: the checkpoint has no %s (a backbone-only "
                       "model), so --data cannot be denoised; train one "
                       "with 'iadsr train --semantic'",
                  model_path,
                  !ck.aligner && !ck.gate ? "aligner and gate"
                  : !ck.aligner           ? "aligner"
                                          : "gate");
        goto done;
    }
    memset(&pg, 0, sizeof pg);
    iadsr_denoise_params_init(&pg.stored);
    if (ck.gate) {
        pg.have_stored = iadsr_gate_get_params(ck.gate, &pg.stored) ==
                         IADSR_OK;
        iadsr_clear_error();
    }
    if (log_path) {
        if (rp_log_read(log_path, &log, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            goto done;
        }
        have_log = 1;
    }
    if (data_path &&
        run_denoise(cmd, &ck, &si, data_path, labels_path, split,
                    allow_mismatch, threads, opts, n_opts, &dv,
                    &dn) != CLI_OK)
        goto done;

    if (!title) {
        default_title = malloc(strlen(model_path) + 32);
        if (!default_title) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        sprintf(default_title, "iadsr report: %s", model_path);
    }
    pg.title = title ? title : default_title;
    pg.model_path = model_path;
    pg.log_path = log_path;
    pg.data_path = data_path;
    pg.labels_path = labels_path;
    pg.sem_path = si.path;
    pg.ck = &ck;
    pg.log = have_log ? &log : NULL;
    pg.dn = data_path ? &dn : NULL;
    pg.split_name = split_names[split];
    build_page(&b, &pg);
    if (b.failed) {
        cli_error(cmd, "out of memory writing the report");
        goto done;
    }
    if (cli_write_atomic(cmd, out, put_page, &b) != CLI_OK)
        goto done;
    fprintf(stderr, "iadsr: report: wrote %s (%d figure%s, %zu bytes)\n",
            out, pg.figures, pg.figures == 1 ? "" : "s", b.len);
    exit_code = CLI_OK;
done:
    free(default_title);
    rp_buf_free(&b);
    rp_log_free(&log);
    denoised_free(&dn);
    cli_semantic_in_free(&si);
    cli_checkpoint_free(&ck);
    return exit_code;
}
