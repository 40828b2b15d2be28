/* iadsr command-line tool: the backbone and training options of train and
 * pipeline. Which backbones there are, the ranges and defaults of their
 * own hyper-parameters and which model options a backbone takes are the
 * registry's (backbone/encoder.h) and the library's params check's; the
 * CLI only names the options (cli_hparam_opts and the help text).
 * SPDX-License-Identifier: MIT
 */
#include "cli/cli.h"
#include "backbone/encoder.h" /* the backbone registry */
#include "common/params.h"    /* iadsr__model_params_check */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

const char cli_denoise_train_help[] =
    "  --lambda-align X      weight of the alignment loss, >= 0 (default 1)\n"
    "  --lambda-recon X      weight of the reconstruction loss, >= 0\n"
    "                        (default 1)\n"
    "  --tau-align X         InfoNCE temperature, > 0 (default 0.1)\n"
    "  --tau-gumbel X        Gumbel-sigmoid temperature, > 0 (default 1)\n"
    "  --collab-only         ablation: the gate scores with the\n"
    "                        collaborative views only\n"
    "  --carry-masks         from epoch 2 on, scale each training input by\n"
    "                        the gate's mask of the previous epoch\n"
    "  --paper-losses        the losses exactly as the paper states them\n"
    "                        (reconstruction into the backbone, same-item\n"
    "                        InfoNCE negatives); unstable off Beauty\n"
    "  --gate detect|paper   detect (the default): a detector trained on\n"
    "                        items inserted during training, keep iff its\n"
    "                        logit > theta (denoise proposes theta from the\n"
    "                        data); paper: the paper's rule, keep iff the\n"
    "                        sum of three cosines > theta (the default with\n"
    "                        --paper-losses or --carry-masks)\n"
    "  --no-holdout          with --gate detect: train on every user (by\n"
    "                        default about 1 in 16 stays out of training,\n"
    "                        so that the noise rate is estimated on scores\n"
    "                        the backbone never fitted)\n"
    "  --clean-scores        with --gate detect: the detector learns on the\n"
    "                        scores of a dropout-free pass, as inference\n"
    "                        computes them (one more forward pass a step)\n"
    "  --input-mask          with --gate detect (implies --clean-scores):\n"
    "                        each training input is masked by the gate's\n"
    "                        decision on it, so that what it drops changes\n"
    "                        the next-item loss, which trains the gate\n"
    "                        (straight-through, a keep-rate prior)\n"
    "  --text-feature        with --gate detect: add to the detector's logit\n"
    "                        the text consistency of each item (the cosine\n"
    "                        of its semantic row with the mean of its\n"
    "                        sequence's other rows), weighted after training\n"
    "                        so that it spreads as much as the logits\n"
    "  --backoff             (the default) when validation stalls (half the\n"
    "                        patience without a better NDCG@10), multiply\n"
    "                        the weight of both auxiliary losses on the\n"
    "                        backbone by 0.1, at most twice (0.01 in all),\n"
    "                        before patience ends the training (the aligner\n"
    "                        and gate keep the full weights); the best model\n"
    "                        is kept (at most --patience more epochs)\n"
    "  --no-backoff          keep the loss weights for the whole training\n"
    "  --theta X             inference: keep an item iff its score > X, in\n"
    "                        [-3, 3] (default 0)\n"
    "  --max-drop X          inference: drop at most floor(X * n) items of a\n"
    "                        sequence of n, in [0, 1] (default 0.3)\n"
    "  --no-protect-last     inference: the most recent item may be dropped\n";

const char cli_train_opts_help[] =
    "  --backbone NAME   sasrec (default), gru4rec or caser\n"
    "  --epochs N        maximum epochs, 1..100000 (default 200)\n"
    "  --dim D           hidden width, 1..4096 (default 64)\n"
    "  --max-len L       items of history used, 1..4096 (default 50)\n"
    "  --layers N        SASRec blocks or GRU layers, 1..16 (default 2 for\n"
    "                    sasrec, 1 for gru4rec)\n"
    "  --heads H         SASRec attention heads, must divide --dim\n"
    "                    (default 2)\n"
    "  --pre-ln          pre-norm blocks and a final LayerNorm, as in the\n"
    "                    original SASRec (default: post-norm)\n"
    "  --caser-window N  Caser: items in the image, 1..64 (default 5)\n"
    "  --caser-h N       Caser: horizontal filters per height (default 16)\n"
    "  --caser-v N       Caser: vertical filters (default 4)\n"
    "  --dropout P       dropout rate in [0,1) (default 0.5)\n"
    "  --lr X            Adam learning rate, > 0 (default 0.001)\n"
    "  --weight-decay X  L2 added to gradients, >= 0 (default 0)\n"
    "  --label-smoothing X\n"
    "                    label smoothing of the cross-entropy, [0,1)\n"
    "                    (default 0)\n"
    "  --history-penalty X\n"
    "                    weight of the penalty on the probability of\n"
    "                    items already in the input (default 0; see\n"
    "                    iadsr_train_params.history_penalty)\n"
    "  --batch B         users per mini-batch, 1..65536 (default 256)\n"
    "  --patience P      stop after P validations without improvement,\n"
    "                    0 = never (default 10)\n"
    "  --eval-every N    epochs between validations (default 1)\n"
    "  --seed S          seed of initialisation, shuffling and dropout\n"
    "                    (default: the library defaults)\n"
    "  --sparse-ids      accept item ids that use a small part of the id\n"
    "                    space (the model has a row for every id up to the\n"
    "                    largest; by default refused when the largest id is\n"
    "                    >= 10000 and > 10x the number of distinct ids)\n"
    "  --max-memory G    refuse a training that would plan more than G GiB\n"
    "                    for weights, optimizer state and gradients\n"
    "                    (default 16)\n"
    "  --threads T       library worker threads, 1..256 (default 1); BLAS\n"
    "                    threads follow OPENBLAS_NUM_THREADS\n"
    "  --quiet           no per-epoch progress lines\n";

const cli_hparam_opt cli_hparam_opts[CLI_N_HPARAM_OPTS] = {
    {"caser-window", "caser_window"},
    {"caser-h", "caser_h_filters"},
    {"caser-v", "caser_v_filters"},
};

/* What a model option sets in iadsr_model_params: the int32 field at
 * offset to value, or (flag != 0) the flags bit flag. */
typedef struct model_set {
    size_t offset;
    int32_t value;
    uint32_t flag;
} model_set;

/* The model options of the shared fields of iadsr_model_params (those of
 * the backbones' own fields are cli_hparam_opts); whether a backbone uses
 * one is the params check's to say. */
static const struct {
    const char *name;
    model_set set; /* value unused */
} generic_fields[] = {
    {"dim", {offsetof(iadsr_model_params, dim), 0, 0}},
    {"max-len", {offsetof(iadsr_model_params, max_seq_len), 0, 0}},
    {"heads", {offsetof(iadsr_model_params, n_heads), 0, 0}},
    {"pre-ln", {0, 0, IADSR_MODEL_F_PRE_LN}},
    {"layers", {offsetof(iadsr_model_params, n_layers), 0, 0}},
};

/* The registry's hparam of field @p field, or NULL. */
static const iadsr__hparam_desc *find_hparam(const char *field)
{
    for (int i = 0; i < iadsr__encoder_count(); i++) {
        const iadsr__encoder_ops *ops = iadsr__encoder_ops_at(i);
        for (int k = 0; k < ops->n_hparams; k++)
            if (strcmp(ops->hparams[k].field, field) == 0)
                return &ops->hparams[k];
    }
    return NULL;
}

/* The registry's hparam of option @p o, or NULL. */
static const iadsr__hparam_desc *hparam_of(const cli_opt *o)
{
    for (int i = 0; i < CLI_N_HPARAM_OPTS; i++)
        if (strcmp(o->name, cli_hparam_opts[i].name) == 0)
            return find_hparam(cli_hparam_opts[i].field);
    return NULL;
}

/* What option @p o sets in the model params, with the value parsed into
 * it: 1, or 0 when it is no model option. */
static int model_field(const cli_opt *o, model_set *s)
{
    const iadsr__hparam_desc *h = hparam_of(o);
    int found = 0;
    for (size_t i = 0; i < sizeof generic_fields / sizeof generic_fields[0];
         i++)
        if (strcmp(o->name, generic_fields[i].name) == 0) {
            *s = generic_fields[i].set;
            found = 1;
        }
    if (h) {
        s->offset = h->offset;
        s->flag = 0;
        found = 1;
    }
    if (found && !s->flag)
        s->value = (int32_t)*(const int64_t *)o->dst; /* within ilo..ihi */
    return found;
}

static void model_apply(iadsr_model_params *p, const model_set *s)
{
    if (s->flag)
        p->flags |= s->flag;
    else
        memcpy((char *)p + s->offset, &s->value, sizeof s->value);
}

/* Whether the library's params check accepts backbone @p backbone with
 * @p s applied to the defaults. */
static int check_accepts(int32_t backbone, const model_set *s)
{
    iadsr_model_params p;
    int ok;
    iadsr_model_params_init(&p);
    p.backbone = backbone;
    p.n_items = 1;
    model_apply(&p, s);
    ok = iadsr__model_params_check(&p) == IADSR_OK;
    iadsr_clear_error(); /* a refusal is the answer here, not an error */
    return ok;
}

int cli_backbone_takes_flags(int32_t backbone, uint32_t flags)
{
    const model_set s = {0, 0, flags};
    return check_accepts(backbone, &s);
}

/* Whether backbone @p backbone takes model option @p o (what it sets:
 * @p s): the params check accepts it alone at the low or the high end of
 * its range. Not at the library default, which the check lets pass for
 * a backbone without the field (n_heads = 2 without heads); the ends of
 * the ranges are no defaults. */
static int backbone_takes(int32_t backbone, const cli_opt *o, model_set s)
{
    if (s.flag)
        return check_accepts(backbone, &s);
    s.value = (int32_t)o->ilo;
    if (check_accepts(backbone, &s))
        return 1;
    s.value = (int32_t)o->ihi;
    return check_accepts(backbone, &s);
}

/* Refuse the model options that the chosen backbone @p ops does not take,
 * naming the one backbone that does, if there is one. */
static int check_model_opts(const char *cmd, const cli_opt *opts,
                            size_t n_opts, const iadsr__encoder_ops *ops)
{
    for (size_t i = 0; i < n_opts; i++) {
        const iadsr__encoder_ops *taker = NULL;
        int n_takers = 0;
        model_set s;
        if (!opts[i].seen || !model_field(&opts[i], &s) ||
            backbone_takes(ops->backbone, &opts[i], s))
            continue;
        for (int b = 0; b < iadsr__encoder_count(); b++)
            if (backbone_takes(iadsr__encoder_ops_at(b)->backbone, &opts[i],
                               s)) {
                taker = iadsr__encoder_ops_at(b);
                n_takers++;
            }
        if (n_takers == 1)
            return cli_usage_error(cmd, "--%s applies to %s only",
                                   opts[i].name, taker->name);
        return cli_usage_error(cmd, "--%s does not apply to %s",
                               opts[i].name, ops->name);
    }
    return CLI_OK;
}

/* --heads must divide --dim where the backbone has heads: said now
 * rather than by a failed model after loading the data. */
static int check_heads(const char *cmd, const cli_opt *opts, size_t n_opts,
                       const iadsr_model_params *mp)
{
    model_set s;
    for (size_t i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, "heads") == 0 &&
            model_field(&opts[i], &s) &&
            backbone_takes(mp->backbone, &opts[i], s) &&
            mp->dim % mp->n_heads != 0)
            return cli_usage_error(cmd,
                                   "--heads (%lld) must divide --dim (%lld)",
                                   (long long)mp->n_heads,
                                   (long long)mp->dim);
    return CLI_OK;
}

/* Defaults of the train options: the library's (iadsr_train_params_init,
 * iadsr_model_params_init), so that the two cannot drift apart; the model
 * options other than dropout are set only when given. */
static void train_vals_init(cli_train_vals *v)
{
    iadsr_train_params tp;
    iadsr_model_params mp;
    iadsr_train_params_init(&tp);
    iadsr_model_params_init(&mp);
    memset(v, 0, sizeof *v);
    v->epochs = tp.max_epochs;
    v->batch = tp.batch_size;
    v->patience = tp.patience;
    v->threads = tp.n_threads;
    v->eval_every = tp.eval_every;
    v->dropout = mp.dropout;
    v->lr = tp.learning_rate;
    v->max_memory = CLI_MAX_MEMORY_GIB;
    for (int i = 0; i < iadsr__encoder_count() && i < CLI_MAX_BACKBONES; i++)
        v->backbone_names[i] = iadsr__encoder_ops_at(i)->name;
}

static void train_fill(const cli_opt *opts, size_t n_opts,
                       const cli_train_vals *v, cli_train_params *p)
{
    iadsr_model_params *mp = &p->model;
    iadsr_train_params *tp = &p->train;
    int seed_given = cli_opt_seen(opts, n_opts, "seed");

    iadsr_model_params_init(mp);
    mp->backbone = iadsr__encoder_ops_at(v->backbone)->backbone;
    for (size_t i = 0; i < n_opts; i++) {
        model_set s;
        if (opts[i].seen && model_field(&opts[i], &s))
            model_apply(mp, &s);
    }
    mp->dropout = (float)v->dropout;
    if (seed_given)
        mp->seed = v->seed;

    iadsr_train_params_init(tp);
    tp->split = IADSR_SPLIT_LEAVE_ONE_OUT;
    tp->max_epochs = (int32_t)v->epochs;
    tp->batch_size = (int32_t)v->batch;
    tp->patience = (int32_t)v->patience;
    tp->eval_every = (int32_t)v->eval_every;
    tp->n_threads = (int32_t)v->threads;
    tp->learning_rate = (float)v->lr;
    tp->weight_decay = (float)v->wd;
    tp->label_smoothing = (float)v->smooth;
    tp->history_penalty = (float)v->hist;
    if (seed_given)
        tp->seed = v->seed;

    iadsr_denoise_params_init(&p->iadsr);
    cli_denoise_apply(opts, n_opts, &v->iadsr, &p->iadsr);
    if (seed_given)
        p->iadsr.seed = v->seed; /* one seed for the whole model */
}

int cli_train_start(const char *cmd, int argc, char **argv, cli_opt *opts,
                    size_t n_opts, const char *head, const char *iadsr_head,
                    cli_train_vals *v, cli_train_params *p)
{
    const char *const help[] = {head, cli_train_opts_help, iadsr_head,
                                cli_denoise_train_help, NULL};
    int rc;

    train_vals_init(v);
    for (size_t i = 0; i < n_opts; i++) {
        const iadsr__hparam_desc *h = hparam_of(&opts[i]);
        if (h) {
            opts[i].ilo = h->lo;
            opts[i].ihi = h->hi;
        }
    }
    rc = cli_start(cmd, argc, argv, opts, n_opts, help);
    if (rc != CLI_CONTINUE)
        return rc;
    if (check_model_opts(cmd, opts, n_opts,
                         iadsr__encoder_ops_at(v->backbone)) != CLI_OK)
        return CLI_USAGE;
    /* the detector gate unless --gate says otherwise; the paper's losses
     * and mask carry-over belong to the paper's gate */
    if (!cli_opt_seen(opts, n_opts, "gate")) {
        v->iadsr.gate = v->iadsr.paper_losses || v->iadsr.carry_masks ? 0 : 1;
        v->iadsr.gate_default = 1;
    }
    train_fill(opts, n_opts, v, p);
    if (v->iadsr.no_holdout && !(p->iadsr.flags & IADSR_DENOISE_F_DETECT))
        return cli_usage_error(cmd, "--no-holdout needs --gate detect");
    if ((v->iadsr.clean_scores || v->iadsr.input_mask) &&
        !(p->iadsr.flags & IADSR_DENOISE_F_DETECT))
        return cli_usage_error(cmd, "--%s needs --gate detect",
                               v->iadsr.input_mask ? "input-mask"
                                                   : "clean-scores");
    if (v->iadsr.text_feature && (!(p->iadsr.flags & IADSR_DENOISE_F_DETECT) ||
                                  (p->iadsr.flags & IADSR_DENOISE_F_COLLAB_ONLY)))
        return cli_usage_error(cmd, "--text-feature needs --gate detect "
                                    "without --collab-only");
    if (v->iadsr.backoff && v->iadsr.no_backoff)
        return cli_usage_error(cmd, "--backoff and --no-backoff exclude "
                                    "each other");
    if (check_heads(cmd, opts, n_opts, &p->model) != CLI_OK)
        return CLI_USAGE;
    return CLI_CONTINUE;
}
