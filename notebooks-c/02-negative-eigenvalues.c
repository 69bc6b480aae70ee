/*
** 02 — Negative eigenvalues unlock state tracking
**
** Question: can a diagonal (Mamba) or identity-minus-rank-1 (DeltaNet) linear
** RNN track the parity of a bit stream, and does it depend on whether its
** transition's eigenvalues may be negative?
**
** Reproduces in kind "Unlocking State-Tracking in Linear RNNs Through Negative
** Eigenvalues" (Grazzi, Siems, Zela, Franke, Hutter, Pontil; ICLR 2025): with
** eigenvalues in [0, 1] (Mamba's exp(dt A), DeltaNet's 1 - beta |k|^2 with beta
** in [0, 1]) running parity cannot be learnt in a way that generalises; with
** [-1, 1] (Mamba's 2 exp(dt A) - 1, DeltaNet's beta in [0, 2]) it can. Here:
** one block of each, trained on running parity at length 64, evaluated at 64
** and at 256; then the spectrum along one input shows where the transitions
** went (a trained [-1, 1] model flips its state with eigenvalues near -1 on a 1
** bit).
**
** Run:   make notebooks && build/notebooks/02-negative-eigenvalues [scale]
**        (scale 1 = the step counts of docs/mamba-parity.md and
**        docs/deltanet-parity.md: about four minutes on one core; 0.25 for a
**        quick look)
** Prints one line per model: eigenvalue range, accuracy at 64 and 256 (every
** step), and the smallest real eigenvalue seen along a test sequence.
** Seen here (scale 1, seed 0): mamba [0,1] 0.57 / 0.52, mamba [-1,1] 1.00 /
** 1.00, delta_net [0,1] 0.64 / 0.54, delta_net [-1,1] 1.00 / 1.00.
** Writes out/02-<family>-<range>.bin and out/02-spectra.png, and one
** `notebook` run per model into out/notebooks.db (SEQLAB_DB overrides).
*/
#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db.h"
#include "family.h"
#include "plot.h"
#include "spectrum.h"
#include "spectrum_plot.h"
#include "tasks.h"
#include "train.h"
#include "util.h"

/* ================================================================ the four models */

typedef struct setup {
    const char *family, *range, *model_json, *train_json;
    int64_t steps;
} setup;

static const setup setups[] = {
    { "mamba", "[0,1]", "{\"d_model\": 32, \"d_state\": 8, \"n_layer\": 1, \"eig_range\": \"[0,1]\"}",
      "{\"batch\": 32, \"lr\": 2e-3, \"eval_every\": 500}", 2000 },
    { "mamba", "[-1,1]", "{\"d_model\": 32, \"d_state\": 8, \"n_layer\": 1, \"eig_range\": \"[-1,1]\"}",
      "{\"batch\": 32, \"lr\": 2e-3, \"eval_every\": 500}", 2000 },
    { "delta_net", "[0,1]", "{\"hidden_size\": 32, \"num_heads\": 2, \"intermediate_size\": 64}",
      "{\"batch\": 32, \"lr\": 3e-3, \"warmup\": 100, \"eval_every\": 500}", 3000 },
    { "delta_net", "[-1,1]", "{\"hidden_size\": 32, \"num_heads\": 2, \"intermediate_size\": 64, \"allow_neg_eigval\": true}",
      "{\"batch\": 32, \"lr\": 3e-3, \"warmup\": 100, \"eval_every\": 500}", 3000 },
};
#define N_SETUPS (sizeof setups / sizeof setups[0])

typedef struct result {
    double acc64, acc256, min_re;
    sl_spec_row *rows;
    size_t n_rows;
} result;

static int die(const char *what, const sl_err *e)
{
    fprintf(stderr, "02-negative-eigenvalues: %s: %s\n", what, e->msg);
    return 1;
}

/* ================================================================ train, evaluate, look */

static int run_one(const setup *su, double scale, sl_db *db, int argc, char **argv, result *res)
{
    sl_err err = { 0 };
    json_error_t je;
    json_t *fam_cfg = json_loads(su->model_json, 0, &je), *task_cfg = json_loads("{\"length\": 64}", 0, &je);
    json_t *train_cfg = json_loads(su->train_json, 0, &je);
    const int64_t steps = (int64_t)fmax(50, round(scale * (double)su->steps));
    json_object_set_new(train_cfg, "steps", json_integer(steps));
    sl_task *task = NULL;
    sl_trainer *tr = NULL;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    sl_batch b = { 0 };
    sl_train_opts o;
    int rc = 1;
    if (sl_task_new("parity", task_cfg, &task, &err)) { rc = die("task", &err); goto done; }
    if (sl_train_opts_from_json(train_cfg, &o, &err)) { rc = die("options", &err); goto done; }
    if (sl_trainer_new(sl_family_find(su->family), fam_cfg, task, NULL, &o, NULL, &tr, &err)) { rc = die("trainer", &err); goto done; }
    sl_train_step_info info;
    for (int64_t s = 0; s < steps; s++)
        if (sl_trainer_step(tr, &info, &err)) { rc = die("training step", &err); goto done; }

    /* Accuracy at the training length and at four times it, on fresh sequences. */
    gsl_rng_set(r, 12345);
    const int64_t lens[2] = { 64, 256 };
    double acc[2];
    for (int i = 0; i < 2; i++) {
        sl_metrics mt;
        if (sl_task_batch(task, r, 256, lens[i], &b, &err) ||
            sl_eval_batch(tr->m, &tr->ro, b.B, b.T, b.u, b.target, b.mask, &mt, &err)) { rc = die("evaluation", &err); goto done; }
        acc[i] = mt.acc;
    }
    res->acc64 = acc[0];
    res->acc256 = acc[1];

    /* The spectrum along one test sequence, through the trainer's input
    ** projection (encoder): the points the trained model really visits. */
    if (sl_task_batch(task, r, 1, 32, &b, &err)) { rc = die("sequence", &err); goto done; }
    const sl_model *m = tr->m;
    double *u = malloc((size_t)(32 * m->n_in) * sizeof *u);
    for (int64_t t = 0; t < 32; t++)
        for (int64_t j = 0; j < m->n_in; j++) {
            double v;
            if (tr->ro.we) {
                v = tr->ro.be ? tr->ro.be[j] : 0.0;
                for (int64_t f = 0; f < b.F; f++) v += (double)tr->ro.we[j * b.F + f] * b.u[t * b.F + f];
            } else {
                v = b.u[t * b.F + j];   /* no input projection: the model takes the task's features */
            }
            u[t * m->n_in + j] = v;
        }
    sl_spectrum sp;
    sl_spectrum_opts so = { .layer = -1, .at = SL_AT_TRAJECTORY, .input = u, .T = 32 };
    int srl = sl_spectrum_run(m, &so, &sp, &err);
    free(u);
    if (srl) { rc = die("spectrum", &err); goto done; }
    res->min_re = INFINITY;
    for (size_t i = 0; i < sp.n_rows; i++) res->min_re = fmin(res->min_re, sp.rows[i].re);
    res->rows = malloc(sp.n_rows * sizeof *res->rows);
    memcpy(res->rows, sp.rows, sp.n_rows * sizeof *res->rows);
    res->n_rows = sp.n_rows;
    sl_spectrum_free(&sp);

    /* ---------------------------------------------------------------- record */
    char path[256], hex[65];
    snprintf(path, sizeof path, "out/02-%s-%s.bin", su->family, su->range[1] == '-' ? "neg" : "pos");
    json_t *meta = sl_trainer_metadata(tr, train_cfg);
    if (sl_model_save(m, path, meta, &err)) { json_decref(meta); rc = die("save", &err); goto done; }
    json_decref(meta);
    if (sl_sha256_file(path, hex, &err)) { rc = die("hash", &err); goto done; }
    char *cfg = json_dumps(m->config, JSON_COMPACT | JSON_SORT_KEYS);
    sl_run_spec spec = { .command = "notebook", .argc = argc, .argv = argv, .model_path = path, .model_sha256 = hex,
                         .model_family = su->family, .model_config_json = cfg,
                         .model_params = sl_model_param_count(m), .has_seed = 1, .seed = 0 };
    int64_t run;
    int rrc = sl_db_run_begin(db, &spec, &run, &err);
    free(cfg);
    if (rrc) { rc = die("run store", &err); goto done; }
    sl_db_begin(db, &err);
    sl_db_param(db, run, "notebook", "02-negative-eigenvalues", &err);
    sl_db_param(db, run, "eig_range", su->range, &err);
    sl_db_paramf(db, run, "steps", &err, "%lld", (long long)steps);
    sl_db_metric(db, run, "accuracy", 64, res->acc64, &err);
    sl_db_metric(db, run, "accuracy", 256, res->acc256, &err);
    sl_db_metric(db, run, "min_real_eigenvalue", 0, res->min_re, &err);
    rc = sl_db_commit(db, &err);
    sl_db_run_end(db, run, rc ? err.msg : NULL, &err);
    if (rc) die("run store", &err);
done:
    sl_batch_free(&b);
    gsl_rng_free(r);
    sl_trainer_free(tr);
    sl_task_free(task);
    json_decref(fam_cfg);
    json_decref(task_cfg);
    json_decref(train_cfg);
    return rc;
}

/* ================================================================ main */

int main(int argc, char **argv)
{
    const double scale = argc > 1 ? atof(argv[1]) : 1.0;
    mkdir("out", 0755);
    const char *dbp = getenv("SEQLAB_DB") ? getenv("SEQLAB_DB") : "out/notebooks.db";
    sl_db *db;
    sl_err err = { 0 };
    if (sl_db_open(dbp, 0, &db, &err)) return die(dbp, &err);
    result res[N_SETUPS] = { 0 };
    printf("family     eigenvalues  acc @64  acc @256  min Re(lambda) along a sequence\n");
    for (size_t k = 0; k < N_SETUPS; k++) {
        if (run_one(&setups[k], scale, db, argc, argv, &res[k])) { sl_db_close(db); return 1; }
        printf("%-10s %-11s  %7.3f  %8.3f  %+.4f\n", setups[k].family, setups[k].range, res[k].acc64, res[k].acc256,
               res[k].min_re);
        fflush(stdout);
    }
    sl_db_close(db);

    /* All four spectra side by side: layer index k stands for model k. */
    size_t total = 0;
    for (size_t k = 0; k < N_SETUPS; k++) total += res[k].n_rows;
    sl_spec_row *all = malloc(total * sizeof *all);
    const char *kinds[N_SETUPS];
    char names[N_SETUPS][48];
    size_t n = 0;
    for (size_t k = 0; k < N_SETUPS; k++) {
        for (size_t i = 0; i < res[k].n_rows; i++) {
            all[n] = res[k].rows[i];
            all[n++].layer = (int)k;
        }
        snprintf(names[k], sizeof names[k], "%s %s", setups[k].family, setups[k].range);
        kinds[k] = names[k];
        free(res[k].rows);
    }
    sl_figure *fig;
    if (sl_spectrum_figure(all, n, (int)N_SETUPS, kinds, "trained on parity: eigenvalues along a test sequence", &fig, &err) ||
        sl_figure_save(fig, "out/02-spectra.png", 150, &err))
        return die("figure", &err);
    sl_figure_free(fig);
    free(all);
    printf("figure out/02-spectra.png; runs in %s (SELECT * FROM runs WHERE command = 'notebook')\n", dbp);
    return 0;
}
