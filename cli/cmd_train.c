/*
** seqlab train --family F [model options] --task T [task options]
**              [training options] --steps K --seed S -o model.bin
**
**        seqlab train --resume model.ckpt-<step>.bin [--steps K] -o model.bin
**
** Trains a fresh model of family F with a readout on a synthetic task (or on
** a data file with --data) through analysis/train.h, and writes it
** atomically with seqlab.family, seqlab.config, seqlab.task and seqlab.train
** (every training option in effect) in its metadata. Checkpoints on request
** (--checkpoint-every K: model.ckpt-<step>.bin beside the output), a progress
** bar on a terminal, and the run recorded in the run store: every option as a
** parameter, loss and accuracy per step as metrics and curves, evaluations,
** the curriculum's N, the figure, the checkpoints, and the written model as
** the run's model. Same seed and thread count: a bit-identical model file.
**
** Checkpoints are resumable (sl_trainer_save_checkpoint): they also hold the
** AdamW moments (optim.m.* / optim.v.* tensors) and seqlab.train_state (step,
** generator states, curriculum N, --freeze list, --data path). --resume opens
** one, rebuilds the run from its metadata (family and seqlab.config, the task
** from seqlab.task or the data file, seqlab.train less the keys the trainer
** adds: heads, classes, steps_done, n_reached; the freeze list), builds the
** trainer as a fresh run would and overwrites its state from the checkpoint
** (sl_trainer_resume), then runs the same loop from step K+1. Only options
** that leave the run unchanged are accepted with it (--steps, -o, --threads,
** --db, --checkpoint-every, --log-every, --figure, --dpi, --no-plot, -q, and
** --data for a checkpoint trained on a data file); anything else is refused
** before the run starts. The final model carries no optimiser state (it is
** what a fresh run writes, byte for byte), so only checkpoints resume.
*/
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_figure.h"
#include "cli_keys.h"
#include "family.h"
#include "grad.h"
#include "kernels.h"
#include "model.h"
#include "plot.h"
#include "tasks.h"
#include "train.h"
#include "train_plot.h"
#include "util.h"

enum { O_FAMILY = 1, O_TASK, O_DATA, O_OUT, O_SEED, O_CKPT, O_DB, O_THREADS, O_NOPLOT, O_FIGURE, O_DPI, O_QUIET,
       O_FREEZE, O_LOG, O_RESUME, O_HELP };

#define MAX_FREEZE 16

typedef struct train_ctx {
    const sl_cli *c;
    const char *family, *task, *data, *out, *db, *figure, *resume;
    long long seed, ckpt, threads, log_every;
    double dpi;
    int no_plot, quiet, help;
    const char *freeze[MAX_FREEZE + 1];
    int nfreeze;
} train_ctx;

static int on_fixed(void *vctx, int id, const char *val)
{
    train_ctx *x = vctx;
    const sl_cli *c = x->c;
    switch (id) {
    case O_FAMILY: x->family = val; return 0;
    case O_TASK: x->task = val; return 0;
    case O_DATA: x->data = val; return 0;
    case O_OUT: x->out = val; return 0;
    case O_SEED: return cli_parse_int(c, "--seed", val, 0, (1LL << 53), &x->seed);
    case O_CKPT: return cli_parse_int(c, "--checkpoint-every", val, 1, 1LL << 40, &x->ckpt);
    case O_DB: x->db = val; return 0;
    case O_THREADS: return cli_parse_int(c, "--threads", val, 1, 1024, &x->threads);
    case O_NOPLOT: x->no_plot = 1; return 0;
    case O_FIGURE: x->figure = val; return 0;
    case O_DPI:
        if (cli_parse_double(c, "--dpi", val, &x->dpi) || x->dpi <= 0) return cli_error(c, 2, "--dpi must be positive");
        return 0;
    case O_QUIET: x->quiet = 1; return 0;
    case O_FREEZE:
        if (x->nfreeze >= MAX_FREEZE) return cli_error(c, 2, "--freeze: at most %d", MAX_FREEZE);
        x->freeze[x->nfreeze++] = val;
        return 0;
    case O_LOG: return cli_parse_int(c, "--log-every", val, 1, 1LL << 40, &x->log_every);
    case O_RESUME: x->resume = val; return 0;
    case O_HELP: x->help = 1; return 0;
    }
    return 2;
}

static const char *const reserved_family[] = { "input_size", NULL };

static void train_help_extra(void)
{
    printf("\ntraining options:\n");
    cli_print_keys(sl_train_keys(), NULL);
    printf("\nmodel options (--family F; input_size is the task's feature count; families sized by d_model get an\n"
           "input projection encoder.* from the task's features):\n");
    for (size_t i = 0; i < sl_family_count(); i++) {
        const sl_family *f = sl_family_at(i);
        printf("  --family %s: %s\n", f->name, f->summary);
        cli_print_keys(f->keys, reserved_family);
    }
    printf("\ntask options (--task T; encodings in seqlab help data):\n");
    const char *names[] = { "parity", "dms", "copy", "selective_copy", "mqar", "modular", "regular" };
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        printf("  --task %s: %s\n", names[i], sl_task_summary(names[i]));
        cli_print_keys(sl_task_keys(names[i]), NULL);
    }
}

/* "dir/model.bin" -> "dir/model.ckpt-<step>.bin". Caller frees. */
static char *ckpt_path(const char *out, int64_t step)
{
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash + 1))
        return sl_strfmt("%.*s.ckpt-%lld%s", (int)(dot - out), out, (long long)step, dot);
    return sl_strfmt("%s.ckpt-%lld", out, (long long)step);
}

static void iso_now(char buf[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[24];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 32, "%s.%03dZ", b, (int)(ts.tv_nsec / 1000000));
}

/* The written model becomes the run's model (the run started before it existed). */
static int record_model(sl_db *db, int64_t run, const char *path, const sl_model *m, sl_err *err)
{
    char sha[65], now[32];
    int rc = sl_sha256_file(path, sha, err);
    if (rc) return rc;
    iso_now(now);
    char *abs = realpath(path, NULL), *cfg = json_dumps(m->config, JSON_COMPACT | JSON_SORT_KEYS);
    sqlite3_stmt *st;
    rc = sl_db_stmt(db,
                    "INSERT INTO models(sha256, path, family, config, n_params, first_seen, last_seen) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, "
                    "last_seen = excluded.last_seen, family = excluded.family, config = excluded.config, "
                    "n_params = excluded.n_params", &st, err);
    if (!rc) {
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, abs ? abs : path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, m->fam->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, cfg ? cfg : "{}", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, sl_model_param_count(m));
        sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
        rc = sl_db_step(db, st, err);
    }
    if (!rc && !(rc = sl_db_stmt(db, "UPDATE runs SET model_id = (SELECT id FROM models WHERE sha256 = ?1) WHERE id = ?2",
                                 &st, err))) {
        sqlite3_bind_text(st, 1, sha, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, run);
        rc = sl_db_step(db, st, err);
    }
    free(abs);
    free(cfg);
    return rc;
}

/* The shortest decimal that reads back as v. */
static void fmt_real(char buf[32], double v)
{
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, 32, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Every key of obj as a parameter "<prefix><key>". */
static void params_of(sl_db *db, int64_t run, const char *prefix, const json_t *obj, sl_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char key[256];
        snprintf(key, sizeof key, "%s%s", prefix, k);
        if (json_is_string(v)) sl_db_param(db, run, key, json_string_value(v), err);
        else if (json_is_integer(v)) sl_db_paramf(db, run, key, err, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) {
            char b[32];
            fmt_real(b, json_real_value(v));
            sl_db_param(db, run, key, b, err);
        }
        else if (json_is_boolean(v)) sl_db_param(db, run, key, json_is_true(v) ? "true" : "false", err);
        else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (s) sl_db_param(db, run, key, s, err);
            free(s);
        }
    }
}

/* Curves kept while training. */
typedef struct curves {
    size_t n, ne, nn;
    double *step, *loss, *acc;
    double *estep, *eloss, *eacc, *elast;
    double *nstep, *nval;
} curves;

static void curves_free(curves *cv)
{
    free(cv->step); free(cv->loss); free(cv->acc);
    free(cv->estep); free(cv->eloss); free(cv->eacc); free(cv->elast);
    free(cv->nstep); free(cv->nval);
}

static int train_run(sl_cli *c, int argc, char **argv)
{
    static const cli_fixed fixed[] = {
        { "family", 0, 1, O_FAMILY }, { "task", 0, 1, O_TASK }, { "data", 0, 1, O_DATA }, { "output", 'o', 1, O_OUT },
        { "seed", 0, 1, O_SEED }, { "checkpoint-every", 0, 1, O_CKPT }, { "db", 0, 1, O_DB },
        { "threads", 't', 1, O_THREADS }, { "no-plot", 0, 0, O_NOPLOT }, { "figure", 0, 1, O_FIGURE },
        { "dpi", 0, 1, O_DPI }, { "quiet", 'q', 0, O_QUIET }, { "freeze", 0, 1, O_FREEZE },
        { "log-every", 0, 1, O_LOG }, { "resume", 0, 1, O_RESUME }, { "help", 'h', 0, O_HELP }, { 0, 0, 0, 0 },
    };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s\n", sl_cli_find("train")->help);
            train_help_extra();
            return 0;
        }
    train_ctx x = { .c = c, .dpi = 150, .log_every = 1 };
    const char *fam_name = cli_scan_opt(argc, argv, "family"), *task_name = cli_scan_opt(argc, argv, "task");
    /* --resume: family, task and training options come from the checkpoint. */
    const char *resume = cli_scan_opt(argc, argv, "resume");
    sl_model *ck = NULL;
    json_t *ck_state = NULL, *ck_task = NULL;
    const sl_family *fam;
    if (resume) {
        sl_err e0 = { 0 };
        if (sl_model_open(resume, &ck, &e0)) return cli_fail(c, &e0);
        if (sl_checkpoint_state(ck, &ck_state, &e0)) { sl_model_free(ck); return cli_fail(c, &e0); }
        const char *ts = json_string_value(json_object_get(ck->metadata, "seqlab.task"));
        if (json_is_null(json_object_get(ck_state, "data")) || !json_object_get(ck_state, "data")) {
            ck_task = ts ? json_loads(ts, JSON_REJECT_DUPLICATES, NULL) : NULL;
            task_name = json_string_value(json_object_get(ck_task, "task"));
            if (!task_name || !sl_task_known(task_name)) {
                json_decref(ck_task); json_decref(ck_state); sl_model_free(ck);
                return cli_error(c, 2, "%s: seqlab.task does not name a known task", resume);
            }
        } else {
            task_name = NULL;
        }
        fam = ck->fam;
    } else {
        if (!fam_name) return cli_error(c, 2, "missing --family (one of: %s)", sl_family_names());
        fam = sl_family_find(fam_name);
        if (!fam) return cli_error(c, 2, "unknown family \"%s\" (known families: %s)", fam_name, sl_family_names());
    }
    if (task_name && !sl_task_known(task_name))
        return cli_error(c, 2, "unknown task \"%s\" (tasks: %s)", task_name, sl_task_names());
    json_t *fcfg = json_object(), *tcfg = json_object(), *rcfg = json_object();
    char fwhat[64], twhat[64];
    snprintf(fwhat, sizeof fwhat, "family %s", fam->name);
    snprintf(twhat, sizeof twhat, "task %s", task_name ? task_name : "(none)");
    cli_keyset sets[3] = {
        { "training", sl_train_keys(), rcfg, NULL },
        { fwhat, fam->keys, fcfg, reserved_family },
        { twhat, task_name ? sl_task_keys(task_name) : NULL, tcfg, NULL },
    };
    const char *pos[1];
    int npos, rc = cli_parse_keyed(c, argc, argv, 1, fixed, on_fixed, &x, sets, task_name ? 3 : 2, pos, &npos, 0);
    sl_err err = { 0 };
    sl_task *task = NULL;
    sl_dataset data = { 0 };
    int have_data = 0;
    sl_trainer *tr = NULL;
    sl_train_opts o;
    cli_run run = { 0 };
    int work = 0, started = 0;
    curves cv = { 0 };
    char **ckpts = NULL;
    size_t nckpt = 0;
    char *fig_path = NULL;
    json_t *meta = NULL;
    int64_t start = 0;
    char ck_sha[65] = "";
    const char *data_path = NULL;
    if (rc) goto out;
    if (!x.out) { rc = cli_error(c, 2, "missing -o FILE (where to write the model)"); goto out; }
    if (resume) {
        /* Only options that do not change the run may come with --resume. */
        const char *bad = x.family ? "--family" : x.task ? "--task" : cli_scan_opt(argc, argv, "seed") ? "--seed"
                        : x.nfreeze ? "--freeze" : NULL;
        if (!bad && json_object_size(fcfg)) bad = "a model option";
        if (!bad && json_object_size(tcfg)) bad = "a task option";
        if (!bad && x.data && task_name) bad = "--data";
        const char *k;
        json_t *v;
        json_object_foreach(rcfg, k, v) if (!bad && strcmp(k, "steps")) bad = "a training option other than --steps";
        if (bad) {
            rc = cli_error(c, 2, "--resume takes the family, model, task and training options from %s; %s would change "
                           "the run (only --steps, -o, --threads, --db, --checkpoint-every, --log-every, --figure, "
                           "--dpi, --no-plot, -q may be given)", resume, bad);
            goto out;
        }
        json_t *tj = json_loads(json_string_value(json_object_get(ck->metadata, "seqlab.train")) ?
                                json_string_value(json_object_get(ck->metadata, "seqlab.train")) : "null",
                                JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(tj)) {
            json_decref(tj);
            rc = cli_error(c, 2, "%s: seqlab.train is missing or not a JSON object", resume);
            goto out;
        }
        const char *drop[] = { "heads", "classes", "steps_done", "n_reached" };
        for (size_t i = 0; i < SL_ARRAY_LEN(drop); i++) json_object_del(tj, drop[i]);
        json_t *steps = json_object_get(rcfg, "steps");
        if (steps) json_object_set(tj, "steps", steps);
        json_decref(rcfg);
        rcfg = tj;
        json_decref(fcfg);
        fcfg = json_deep_copy(ck->config);
        json_object_del(fcfg, "input_size");
        json_t *fz = json_object_get(ck_state, "freeze");
        size_t i;
        json_t *f;
        json_array_foreach(fz, i, f) {
            if (!json_is_string(f) || x.nfreeze >= MAX_FREEZE) {
                rc = cli_error(c, 2, "%s: seqlab.train_state has a bad freeze list", resume);
                goto out;
            }
            x.freeze[x.nfreeze++] = json_string_value(f);
        }
        if (!task_name && !x.data) x.data = json_string_value(json_object_get(ck_state, "data"));
        if (!task_name && !x.data) { rc = cli_error(c, 2, "%s: seqlab.train_state names no data file", resume); goto out; }
        if (sl_sha256_file(resume, ck_sha, &err)) { rc = cli_fail(c, &err); goto out; }
        start = json_integer_value(json_object_get(ck_state, "step"));
    } else if (!x.task == !x.data) {
        rc = cli_error(c, 2, "give --task T or --data FILE (one of them)");
        goto out;
    }
    if (x.threads) cli_set_threads((int)x.threads);
    if (resume && task_name) {
        if (sl_task_from_config(ck_task, &task, &err)) { rc = cli_fail(c, &err); goto out; }
    } else if (x.task) {
        if (sl_task_new(x.task, tcfg, &task, &err)) { rc = cli_fail(c, &err); goto out; }
    } else {
        if (sl_dataset_load(x.data, &data, &err)) { rc = cli_fail(c, &err); goto out; }
        have_data = 1;
        data_path = x.data;
    }
    if (!resume) json_object_set_new(rcfg, "seed", json_integer(x.seed));
    if (sl_train_opts_from_json(rcfg, &o, &err)) { rc = cli_fail(c, &err); goto out; }
    if (resume) {
        x.seed = (long long)o.seed;
        if (start >= o.steps) {
            rc = cli_error(c, 2, "%s is at step %lld: --steps must be larger (is %lld)", resume, (long long)start,
                           (long long)o.steps);
            goto out;
        }
    }
    int64_t seed64 = x.seed;
    if ((rc = cli_run_start(c, x.db, NULL, &seed64, &run))) goto out;
    started = 1;
    if ((work = sl_trainer_new(fam, fcfg, task, have_data ? &data : NULL, &o, x.freeze, &tr, &err))) goto done;
    if (resume && (work = sl_trainer_resume(tr, ck, &err))) goto done;
    const int64_t todo = o.steps - start; /* steps this run does */
    cv.step = malloc((size_t)todo * sizeof(double));
    cv.loss = malloc((size_t)todo * sizeof(double));
    cv.acc = malloc((size_t)todo * sizeof(double));
    size_t ecap = (size_t)(o.eval_every ? todo / o.eval_every : 0) + 2;
    cv.estep = malloc(ecap * sizeof(double));
    cv.eloss = malloc(ecap * sizeof(double));
    cv.eacc = malloc(ecap * sizeof(double));
    cv.elast = malloc(ecap * sizeof(double));
    cv.nstep = malloc((ecap + 1) * sizeof(double));
    cv.nval = malloc((ecap + 1) * sizeof(double));
    ckpts = calloc((size_t)(x.ckpt ? todo / x.ckpt : 0) + 1, sizeof *ckpts);
    if (!cv.step || !cv.loss || !cv.acc || !cv.estep || !cv.eloss || !cv.eacc || !cv.elast || !cv.nstep || !cv.nval || !ckpts) {
        work = sl_err_set(&err, SL_ENOMEM, "out of memory");
        goto done;
    }
    if (o.curriculum) { cv.nstep[0] = (double)start; cv.nval[0] = (double)tr->n_cur; cv.nn = 1; }
    cli_progress p;
    cli_progress_start(&p, o.steps, x.quiet);
    const double t0 = sl_now();
    sl_train_step_info info = { 0 };
    double last_eval = NAN, last_eval_last = NAN;
    for (int64_t s = start; s < o.steps; s++) {
        if ((work = sl_trainer_step(tr, &info, &err))) break;
        cv.step[cv.n] = (double)info.step;
        cv.loss[cv.n] = info.loss;
        cv.acc[cv.n] = info.acc;
        cv.n++;
        if (info.evaluated && cv.ne < ecap) {
            cv.estep[cv.ne] = (double)info.step;
            cv.eloss[cv.ne] = info.eval.loss;
            cv.eacc[cv.ne] = info.eval.acc;
            cv.elast[cv.ne] = info.eval.last_acc;
            cv.ne++;
            last_eval = info.eval.acc;
            last_eval_last = info.eval.last_acc;
            if (o.curriculum && cv.nn < ecap + 1) {
                cv.nstep[cv.nn] = (double)info.step;
                cv.nval[cv.nn] = (double)info.n;
                cv.nn++;
            }
        }
        if (x.ckpt && info.step % x.ckpt == 0 && info.step < o.steps) {
            char *cp = ckpt_path(x.out, info.step);
            if (!cp) { work = sl_err_set(&err, SL_ENOMEM, "out of memory"); break; }
            work = sl_trainer_save_checkpoint(tr, cp, rcfg, x.freeze, data_path, &err);
            if (work) { free(cp); break; }
            ckpts[nckpt++] = cp;
        }
        char txt[160];
        double el = sl_now() - t0;
        int k = snprintf(txt, sizeof txt, "loss %.4f acc %5.1f%%", info.loss, 100.0 * info.acc);
        if (isfinite(last_eval)) k += snprintf(txt + k, sizeof txt - (size_t)k, " eval %5.1f%%", 100.0 * last_eval);
        if (o.curriculum) k += snprintf(txt + k, sizeof txt - (size_t)k, " N=%lld", (long long)info.n);
        snprintf(txt + k, sizeof txt - (size_t)k, " %.0f seq/s", el > 0 ? (double)(info.step - start) * (double)o.batch / el : 0.0);
        cli_progress_update(&p, info.step, txt);
    }
    cli_progress_end(&p);
    const double seconds = sl_now() - t0;
    if (work) goto done;
    /* The model, atomically, with everything needed to evaluate or retrain it. */
    meta = sl_trainer_metadata(tr, rcfg);
    if (!meta) { work = sl_err_set(&err, SL_ENOMEM, "out of memory"); goto done; }
    if ((work = sl_model_save(tr->m, x.out, meta, &err))) goto done;
    /* The figure. */
    const double chance = tr->ro.loss == SL_LOSS_CE ? 1.0 / (double)tr->ro.C : NAN;
    if (!x.no_plot) {
        fig_path = x.figure ? sl_strdup(x.figure) : cli_default_figure_path(x.db, x.out, "train", ".png");
        char title[512], stem[256];
        snprintf(stem, sizeof stem, "%s", cli_basename(x.out));
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        snprintf(title, sizeof title, "%s: %s on %s", stem, fam->name, task ? task->name : cli_basename(x.data));
        /* (seqlab plot rebuilds this title from the run: keep the two in step) */
        sl_figure *fig = NULL;
        work = sl_train_figure((sl_curve){ cv.n, cv.step, cv.loss }, (sl_curve){ cv.n, cv.step, cv.acc },
                               (sl_curve){ cv.ne, cv.estep, cv.eacc }, (sl_curve){ cv.nn, cv.nstep, cv.nval }, chance,
                               title, &fig, &err);
        if (!work) work = sl_figure_save(fig, fig_path, x.dpi, &err);
        sl_figure_free(fig);
        if (work) goto done;
    }
    /* The run's record. */
    sl_db *db = run.db;
    const int64_t id = run.id;
    sl_db_begin(db, &err);
    sl_db_param(db, id, "family", fam->name, &err);
    sl_db_param(db, id, "task", task ? task->name : "", &err);
    if (have_data) sl_db_param(db, id, "data", x.data, &err);
    if (resume) {
        char *abs = realpath(resume, NULL);
        sl_db_param(db, id, "resumed_from", abs ? abs : resume, &err);
        sl_db_param(db, id, "resumed_from_sha256", ck_sha, &err);
        sl_db_paramf(db, id, "resumed_step", &err, "%lld", (long long)start);
        free(abs);
    }
    sl_db_param(db, id, "output", x.out, &err);
    sl_db_paramf(db, id, "threads", &err, "%d", sl_get_threads());
    if (isfinite(chance)) sl_db_paramf(db, id, "chance", &err, "%.17g", chance);
    if (x.ckpt) sl_db_paramf(db, id, "checkpoint_every", &err, "%lld", x.ckpt);
    for (int i = 0; i < x.nfreeze; i++) sl_db_param(db, id, "freeze", x.freeze[i], &err);
    params_of(db, id, "", rcfg, &err);
    params_of(db, id, "model.", tr->m->config, &err);
    if (task) params_of(db, id, "task.", task->config, &err);
    for (size_t i = 0; i < cv.n; i++) {
        if ((int64_t)cv.step[i] % x.log_every && i + 1 != cv.n) continue;
        sl_db_metric(db, id, "loss", (int64_t)cv.step[i], cv.loss[i], &err);
        sl_db_metric(db, id, "accuracy", (int64_t)cv.step[i], cv.acc[i], &err);
    }
    for (size_t i = 0; i < cv.ne; i++) {
        sl_db_metric(db, id, "eval_loss", (int64_t)cv.estep[i], cv.eloss[i], &err);
        sl_db_metric(db, id, "eval_accuracy", (int64_t)cv.estep[i], cv.eacc[i], &err);
        sl_db_metric(db, id, "eval_accuracy_last", (int64_t)cv.estep[i], cv.elast[i], &err);
    }
    for (size_t i = 0; i < cv.nn; i++) sl_db_metric(db, id, "n", (int64_t)cv.nstep[i], cv.nval[i], &err);
    sl_db_metric(db, id, "seconds", 0, seconds, &err);
    sl_db_metric(db, id, "sequences_per_second", 0,
                 seconds > 0 ? (double)(o.steps - start) * (double)o.batch / seconds : NAN, &err);
    sl_db_curve_n(db, id, "loss", cv.n, cv.step, cv.loss, &err);
    sl_db_curve_n(db, id, "accuracy", cv.n, cv.step, cv.acc, &err);
    sl_db_curve_n(db, id, "eval_loss", cv.ne, cv.estep, cv.eloss, &err);
    sl_db_curve_n(db, id, "eval_accuracy", cv.ne, cv.estep, cv.eacc, &err);
    sl_db_curve_n(db, id, "eval_accuracy_last", cv.ne, cv.estep, cv.elast, &err);
    if (cv.nn) sl_db_curve_n(db, id, "n", cv.nn, cv.nstep, cv.nval, &err);
    if (fig_path) sl_db_artifact(db, id, fig_path, cli_media_type(fig_path), &err);
    for (size_t i = 0; i < nckpt; i++) sl_db_artifact(db, id, ckpts[i], "application/octet-stream", &err);
    record_model(db, id, x.out, tr->m, &err);
    if ((work = sl_db_commit(db, &err))) goto done;
    printf("wrote %s: %s + %s readout (%lld head%s, %lld class%s); %lld steps of %lld sequences in %.1f s "
           "(%.0f sequences/s)",
           x.out, tr->m->summary, tr->ro.kind == SL_READOUT_MLP ? "MLP" : "linear", (long long)tr->ro.K,
           tr->ro.K == 1 ? "" : "s", (long long)tr->ro.C, tr->ro.C == 1 ? "" : "es", (long long)(o.steps - start),
           (long long)o.batch, seconds, seconds > 0 ? (double)(o.steps - start) * (double)o.batch / seconds : 0.0);
    if (resume) printf(", resumed from %s at step %lld", resume, (long long)start);
    printf("\n");
    printf("final: loss %.6g, accuracy %.2f%% (training batch)", info.loss, 100.0 * info.acc);
    if (isfinite(last_eval))
        printf(", evaluation %.2f%% (every step), %.2f%% (last step)", 100.0 * last_eval, 100.0 * last_eval_last);
    if (o.curriculum) printf(", curriculum N = %lld", (long long)info.n);
    printf("\n");
    if (fig_path) fprintf(stderr, "seqlab: train: figure %s\n", fig_path);
done:
    if (work) cli_fail(c, &err);
    if (started) rc = cli_run_finish(c, &run, work, &err);
out:
    for (size_t i = 0; i < nckpt; i++) free(ckpts[i]);
    free(ckpts);
    curves_free(&cv);
    free(fig_path);
    json_decref(meta);
    sl_trainer_free(tr);
    sl_task_free(task);
    if (have_data) sl_dataset_free(&data);
    json_decref(fcfg);
    json_decref(tcfg);
    json_decref(rcfg);
    json_decref(ck_task);
    json_decref(ck_state);
    sl_model_free(ck);
    return rc;
}

const sl_command sl_cmd_train = {
    .name = "train",
    .run = train_run,
    .summary = "train a model on a synthetic task (or a data file) and record the run",
    .help_extra = train_help_extra,
    .help =
        "usage: seqlab train --family F [model options] --task T [task options] [training options]\n"
        "                    [--steps K] [--seed S] -o model.bin\n"
        "       seqlab train --family F [model options] --data data.safetensors [training options] -o model.bin\n"
        "       seqlab train --resume model.ckpt-<step>.bin [--steps K] -o model.bin\n\n"
        "Trains a fresh model of family F (initialised as `seqlab init` does, input size = the task's\n"
        "features) plus a readout to the task's outputs, with exact gradients (backpropagation through\n"
        "time), AdamW, gradient clipping, warm-up and cosine decay, optional annealed gradient noise and\n"
        "the curricula of \"Emergent mechanisms for long timescales depend on training curriculum...\"\n"
        "(--curriculum single|multi, for parity and dms: N starts at --n-start and grows by one when the\n"
        "evaluation accuracy passes --threshold; single trains one head on the current N, multi one head\n"
        "per N' <= N at once). Families with gradients: rnn (with --leaky: tau trained too, kept >= 1),\n"
        "lstm, gru, lru, s4d, mamba (both --eig-range), delta_net (with or without --allow-neg-eigval),\n"
        "gla. Families sized by their own width (--d-model; --hidden-size for delta_net and gla) get an\n"
        "input projection from the task's features, encoder.weight [width, F] and encoder.bias, trained\n"
        "with the rest and applied by seqlab eval.\n\n"
        "The model is written atomically with seqlab.family, seqlab.config, seqlab.task (the task's\n"
        "options; N where a curriculum ended) and seqlab.train (every training option, the readout, heads,\n"
        "classes, loss, steps done) in its metadata; the readout's tensors are readout.weight and\n"
        "readout.bias (MLP: readout.0.*, readout.2.*), the encoder's encoder.*. `seqlab eval` reads them\n"
        "back. The same seed and --threads give a bit-identical file.\n\n"
        "Recorded in the run store: every option as a parameter (model.*, task.* for the model and task\n"
        "options), metrics loss and accuracy per step (training batch), eval_loss, eval_accuracy and\n"
        "eval_accuracy_last at each evaluation, n (curriculum), seconds and sequences_per_second; the same\n"
        "as curves; the figure and the checkpoints as artifacts; the written model as the run's model.\n\n"
        "options:\n"
        "  --family F             model family (required)\n"
        "  --task T               synthetic task (see seqlab help data), or\n"
        "  --data FILE            train on the sequences of a data file (u, target, mask), B at a time\n"
        "  --seed S               seed of the initialisation, the batches and the noise (default 0)\n"
        "  -o, --output FILE      where to write the model (required)\n"
        "  --checkpoint-every K   also write the model every K steps as <output stem>.ckpt-<step><ext>\n"
        "                         (model.bin -> model.ckpt-500.bin), resumable: with the AdamW moments as\n"
        "                         optim.m.<name> / optim.v.<name> and seqlab.train_state (step, generator\n"
        "                         states, curriculum N, frozen tensors, data file) in the metadata\n"
        "  --resume CKPT          continue the run of a checkpoint to its --steps (or --steps K, larger than\n"
        "                         the checkpoint's step; the cosine schedule then spans K). Family, model,\n"
        "                         task and training options come from the checkpoint; only --steps, -o,\n"
        "                         --threads, --db, --checkpoint-every, --log-every, --figure, --dpi,\n"
        "                         --no-plot, -q (and --data for a data-file run) may be given, anything\n"
        "                         else exits 2, as does a file without trainer state (a final model, an\n"
        "                         older checkpoint). Same --threads: the same file as the uninterrupted\n"
        "                         run. Recorded with params resumed_from, resumed_from_sha256,\n"
        "                         resumed_step; metrics from the checkpoint's step + 1\n"
        "  --freeze NAME          do not train tensors whose name ends with NAME (e.g. tau); repeatable\n"
        "  --log-every K          record loss and accuracy metrics every K steps (default 1; the curves\n"
        "                         always hold every step)\n"
        "  --figure FILE          the training figure (.png, .pdf, .svg); default <model>-train.png beside\n"
        "                         the database\n"
        "  --no-plot, --dpi N, --db PATH, -t/--threads N\n"
        "  -q, --quiet            no progress bar (there is none unless stderr is a terminal)",
};
