/* libiadsr - the paper's pipeline in one call: train IADSR, clean the
 * training parts, retrain the backbone on the cleaned data, evaluate.
 * SPDX-License-Identifier: MIT
 */
#include "denoise/denoise.h"
#include "common/params.h"
#include "common/clock.h"
#include "common/error.h"
#include "backbone/model.h"
#include "data/dataset.h"
#include "common/alloc.h"

#include <string.h>

static int fit(iadsr_trainer *t, iadsr_progress_fn cb, void *ud,
               iadsr_model **m, double *secs)
{
    double t0 = iadsr__now();
    int rc = iadsr_trainer_fit(t, cb, ud);
    if (!rc)
        rc = iadsr_trainer_snapshot(t, m);
    *secs = iadsr__now() - t0;
    return rc;
}

int iadsr_pipeline(const iadsr_dataset *d, const iadsr_semantic *sem,
                   const iadsr_model_params *mp, const iadsr_train_params *tp,
                   const iadsr_denoise_params *dp, iadsr_progress_fn cb,
                   void *user_data, iadsr_pipeline_result *res,
                   iadsr_model **model_out, iadsr_dataset **clean_out)
{
    if (model_out)
        *model_out = NULL;
    if (clean_out)
        *clean_out = NULL;
    /* checked up front: a bad struct_size fails before any training */
    TRY(iadsr__output_copy(res, NULL, sizeof *res,
                           IADSR__PIPELINE_RESULT_SIZE_0_3, "pipeline: res"));
    iadsr_train_params t;
    TRY(iadsr__train_params_get(&t, tp));
    if (t.split != IADSR_SPLIT_LEAVE_ONE_OUT)
        return iadsr__err(IADSR_ERR_INVALID_ARG,
                          "pipeline: the train params' split must be "
                          "LEAVE_ONE_OUT (the pipeline evaluates on the last "
                          "items)");
    if (t.allreduce)
        return iadsr__err(IADSR_ERR_UNSUPPORTED,
                          "pipeline: distributed training (the train "
                          "params' allreduce) is not supported here; run "
                          "the trainings and iadsr_denoiser_clean_dataset() "
                          "step by step");
    iadsr_model *init = NULL, *joint = NULL, *init2 = NULL, *final = NULL;
    iadsr_trainer *tr = NULL;
    iadsr_aligner *a = NULL;
    iadsr_gate *g = NULL;
    iadsr_denoiser *dn = NULL;
    iadsr_dataset *clean = NULL;
    uint8_t *keep = NULL;
    iadsr_pipeline_result r;
    int rc;
    memset(&r, 0, sizeof r);
    r.struct_size = (uint32_t)sizeof r;

    if ((rc = iadsr_model_create(&init, mp)) ||
        (rc = iadsr_trainer_create_joint(&tr, init, d, sem, NULL, &t, dp)) ||
        (rc = fit(tr, cb, user_data, &joint, &r.iadsr_seconds)) ||
        (rc = iadsr_trainer_snapshot_denoiser(tr, &a, &g)))
        goto done;
    r.iadsr_epochs = joint->epochs_trained;
    iadsr_trainer_free(tr);
    tr = NULL;
    if ((rc = iadsr_denoiser_create(&dn, joint, a, g, sem)))
        goto done;
    if (g->p.flags & IADSR_DENOISE_F_DETECT) {
        /* a detector cleans at the threshold it proposes for the data */
        iadsr_denoise_params gp = g->p;
        iadsr_gate *g2 = NULL;
        if ((rc = iadsr_denoiser_propose_theta(dn, d,
                                               IADSR_SPLIT_LEAVE_ONE_OUT, NULL,
                                               t.n_threads, &gp.theta, NULL)) ||
            (rc = iadsr_gate_with_params(&g2, g, &gp)))
            goto done;
        iadsr_denoiser_free(dn);
        dn = NULL;
        iadsr_gate_free(g);
        g = g2;
        if ((rc = iadsr_denoiser_create(&dn, joint, a, g, sem)))
            goto done;
    }
    int64_t ni = d->offsets[d->n_users];
    keep = iadsr__malloc((size_t)(ni > 0 ? ni : 1));
    if (!keep) {
        rc = iadsr__err(IADSR_ERR_NOMEM, "pipeline: out of memory");
        goto done;
    }
    if ((rc = iadsr_denoiser_clean_dataset(dn, d, IADSR_SPLIT_LEAVE_ONE_OUT,
                                           NULL, t.n_threads, &clean, keep,
                                           NULL)))
        goto done;
    for (int64_t u = 0; u < d->n_users; u++) {
        int64_t o = d->offsets[u], n = d->offsets[u + 1] - o - 2, drop = 0;
        for (int64_t i = 0; i < n; i++)
            drop += !keep[o + i];
        r.n_items_in += n > 0 ? n : 0;
        r.n_items_dropped += drop;
        r.n_users_touched += drop > 0;
    }
    /* the same initial weights and seeds as the IADSR run's backbone */
    if ((rc = iadsr_model_create(&init2, mp)) ||
        (rc = iadsr_trainer_create(&tr, init2, clean, &t)) ||
        (rc = fit(tr, cb, user_data, &final, &r.retrain_seconds)))
        goto done;
    r.retrain_epochs = final->epochs_trained;
    iadsr_eval_params ep;
    iadsr_eval_params_init(&ep);
    ep.n_threads = t.n_threads;
    /* The embedded size, not sizeof(iadsr_metrics): test's layout is frozen
     * at the 0.1 size inside iadsr_pipeline_result (docs/ABI.md), so
     * iadsr_evaluate() never writes past it, whatever iadsr_metrics
     * becomes; the caller reads this value back in res->test.struct_size. */
    r.test.struct_size = (uint32_t)sizeof r.test;
    if ((rc = iadsr_evaluate(final, clean, &ep, &r.test)))
        goto done;
    /* up to the smaller of the caller's struct_size and sizeof r */
    if ((rc = iadsr__output_copy(res, &r, sizeof r,
                                 IADSR__PIPELINE_RESULT_SIZE_0_3,
                                 "pipeline: res")))
        goto done;
    if (model_out) {
        *model_out = final;
        final = NULL;
    }
    if (clean_out) {
        *clean_out = clean;
        clean = NULL;
    }
done:
    iadsr_trainer_free(tr);
    iadsr_model_free(init);
    iadsr_model_free(init2);
    iadsr_model_free(joint);
    iadsr_model_free(final);
    iadsr_aligner_free(a);
    iadsr_gate_free(g);
    iadsr_denoiser_free(dn);
    iadsr_dataset_free(clean);
    iadsr__free(keep);
    return rc;
}
