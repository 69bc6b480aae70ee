/*
** seqlab eval MODEL [--task T] [task options] [--lengths 16,64,256] [--data FILE]
**
** Accuracy of a trained model (one `seqlab train` wrote: readout and task in
** its metadata) on fresh sequences of its task at each test length: length
** generalisation. The task and its options come from the model's seqlab.task
** unless given; options given override the stored ones. With --data, the
** sequences of a data file instead (one row, its length). Prints one row per
** length (accuracy over every masked step, at the last masked step of each
** sequence, the loss), records the run (metrics and curves by length) and
** draws accuracy against length.
*/
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_figure.h"
#include "cli_keys.h"
#include "model.h"
#include "plot.h"
#include "table.h"
#include "tasks.h"
#include "train.h"
#include "train_plot.h"
#include "util.h"

enum { O_TASK = 1, O_LENGTHS, O_BATCH, O_SEED, O_DATA, O_FORMAT, O_OUT, O_NOPLOT, O_DPI, O_DB, O_THREADS, O_HELP };

typedef struct eval_ctx {
    const sl_cli *c;
    const char *task, *lengths, *data, *out, *db;
    long long batch, seed, threads;
    int has_seed, no_plot, help;
    double dpi;
    sl_outfmt fmt;
} eval_ctx;

static int on_fixed(void *vctx, int id, const char *val)
{
    eval_ctx *x = vctx;
    const sl_cli *c = x->c;
    switch (id) {
    case O_TASK: x->task = val; return 0;
    case O_LENGTHS: x->lengths = val; return 0;
    case O_BATCH: return cli_parse_int(c, "--batch", val, 1, 1LL << 24, &x->batch);
    case O_SEED: x->has_seed = 1; return cli_parse_int(c, "--seed", val, 0, 1LL << 53, &x->seed);
    case O_DATA: x->data = val; return 0;
    case O_FORMAT: return cli_parse_format(c, val, &x->fmt);
    case O_OUT: x->out = val; return 0;
    case O_NOPLOT: x->no_plot = 1; return 0;
    case O_DPI:
        if (cli_parse_double(c, "--dpi", val, &x->dpi) || x->dpi <= 0) return cli_error(c, 2, "--dpi must be positive");
        return 0;
    case O_DB: x->db = val; return 0;
    case O_THREADS: return cli_parse_int(c, "--threads", val, 1, 1024, &x->threads);
    case O_HELP: x->help = 1; return 0;
    }
    return 2;
}

/* Every task's keys, each name once (for options given without --task). */
static sl_config_key *union_keys(void)
{
    static const char *const names[] = { "parity", "dms", "copy", "selective_copy", "mqar", "modular", "regular" };
    size_t cap = 64, n = 0;
    sl_config_key *u = calloc(cap + 1, sizeof *u);
    if (!u) return NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        for (const sl_config_key *k = sl_task_keys(names[i]); k->name; k++) {
            int seen = 0;
            for (size_t j = 0; j < n && !seen; j++) seen = !strcmp(u[j].name, k->name);
            if (!seen && n < cap) u[n++] = *k;
        }
    return u;
}

static json_t *meta_json(const sl_model *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m->metadata, key));
    return s ? json_loads(s, 0, NULL) : NULL;
}

static int eval_run(sl_cli *c, int argc, char **argv)
{
    static const cli_fixed fixed[] = {
        { "task", 0, 1, O_TASK }, { "lengths", 0, 1, O_LENGTHS }, { "batch", 0, 1, O_BATCH }, { "seed", 0, 1, O_SEED },
        { "data", 0, 1, O_DATA }, { "format", 'f', 1, O_FORMAT }, { "output", 'o', 1, O_OUT },
        { "no-plot", 0, 0, O_NOPLOT }, { "dpi", 0, 1, O_DPI }, { "db", 0, 1, O_DB }, { "threads", 't', 1, O_THREADS },
        { "help", 'h', 0, O_HELP }, { 0, 0, 0, 0 },
    };
    eval_ctx x = { .c = c, .batch = 256, .dpi = 150 };
    const char *tname = cli_scan_opt(argc, argv, "task");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { printf("%s\n", sl_cli_find("eval")->help); return 0; }
    if (tname && !sl_task_known(tname)) return cli_error(c, 2, "unknown task \"%s\" (tasks: %s)", tname, sl_task_names());
    sl_config_key *ukeys = tname ? NULL : union_keys();
    json_t *topts = json_object();
    cli_keyset sets[1] = { { tname ? tname : "any task", tname ? sl_task_keys(tname) : ukeys, topts, NULL } };
    const char *pos[1];
    int npos = 0, rc = cli_parse_keyed(c, argc, argv, 1, fixed, on_fixed, &x, sets, 1, pos, &npos, 1);
    sl_err err = { 0 };
    sl_model *m = NULL;
    sl_task *task = NULL;
    sl_dataset data = { 0 };
    int have_data = 0, work = 0, started = 0;
    long long *lens = NULL;
    int nl = 0;
    double *L = NULL, *acc = NULL, *accl = NULL, *loss = NULL, *cnt = NULL;
    json_t *tcfg = NULL, *stored = NULL;
    char *fig_path = NULL;
    cli_run run = { 0 };
    sl_batch b = { 0 };
    gsl_rng *r = NULL;
    if (rc) goto out;
    if (npos != 1) { rc = cli_error(c, 2, "missing MODEL (see seqlab help eval)"); goto out; }
    if (x.data && (x.task || x.lengths || json_object_size(topts)))
        { rc = cli_error(c, 2, "--data evaluates on the file's sequences: no --task, task options or --lengths"); goto out; }
    if (x.threads) cli_set_threads((int)x.threads);
    const char *model_path = pos[0];
    sl_readout ro;
    if (sl_model_open(model_path, &m, &err) || sl_model_check_finite(m, &err) || sl_readout_from_model(&ro, m, &err)) {
        rc = cli_fail(c, &err);
        goto out;
    }
    double train_len = NAN;
    stored = meta_json(m, "seqlab.task");
    if (x.data) {
        if (sl_dataset_load(x.data, &data, &err)) { rc = cli_fail(c, &err); goto out; }
        have_data = 1;
        nl = 1;
        lens = malloc(sizeof *lens);
        if (!lens) { rc = cli_error(c, 1, "out of memory"); goto out; }
        lens[0] = data.T;
        if (data.F != ro.n_feat || data.K != ro.K) {
            rc = cli_error(c, 2, "%s: %lld features and %lld heads, the model takes %lld features and has %lld heads", x.data,
                           (long long)data.F, (long long)data.K, (long long)ro.n_feat, (long long)ro.K);
            goto out;
        }
    } else {
        const char *sname = json_string_value(json_object_get(stored, "task"));
        if (!tname && !sname) { rc = cli_error(c, 2, "%s has no seqlab.task: give --task", model_path); goto out; }
        tcfg = (tname && (!sname || strcmp(tname, sname))) ? json_object() : json_deep_copy(stored);
        json_object_set_new(tcfg, "task", json_string(tname ? tname : sname));
        json_object_update(tcfg, topts);
        if (sl_task_from_config(tcfg, &task, &err)) { rc = cli_fail(c, &err); goto out; }
        if (task->F != ro.n_feat || task->K != ro.K || (ro.loss == SL_LOSS_CE && task->C != ro.C)) {
            rc = cli_error(c, 2, "task %s has %lld features, %lld heads, %lld classes; the model takes %lld features and "
                           "has %lld heads of %lld classes", task->name, (long long)task->F, (long long)task->K,
                           (long long)task->C, (long long)ro.n_feat, (long long)ro.K, (long long)ro.C);
            goto out;
        }
        /* The training length, from the stored task. */
        sl_task *tt = NULL;
        if (stored && !sl_task_from_config(stored, &tt, NULL)) train_len = (double)sl_task_length(tt);
        sl_task_free(tt);
        if (x.lengths) {
            if ((rc = cli_parse_int_list(c, "--lengths", x.lengths, 1, 1LL << 24, &lens, &nl))) goto out;
        } else {
            const int64_t T0 = sl_task_length(task);
            nl = 4;
            lens = malloc(4 * sizeof *lens);
            if (!lens) { rc = cli_error(c, 1, "out of memory"); goto out; }
            for (int i = 0; i < 4; i++) lens[i] = T0 << i;
        }
    }
    int64_t seed64 = x.seed;
    if ((rc = cli_run_start(c, x.db, m, have_data ? NULL : &seed64, &run))) goto out;
    started = 1;
    L = calloc((size_t)nl, sizeof *L);
    acc = calloc((size_t)nl, sizeof *acc);
    accl = calloc((size_t)nl, sizeof *accl);
    loss = calloc((size_t)nl, sizeof *loss);
    cnt = calloc((size_t)nl, sizeof *cnt);
    r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!L || !acc || !accl || !loss || !cnt || !r) { work = sl_err_set(&err, SL_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < nl; i++) {
        sl_metrics mt;
        if (have_data) {
            work = sl_eval_batch(m, &ro, data.B, data.T, data.u, data.target, data.mask, &mt, &err);
        } else {
            gsl_rng_set(r, (unsigned long)((uint64_t)x.seed * 1000003u + (uint64_t)lens[i]));
            work = sl_task_batch(task, r, x.batch, lens[i], &b, &err);
            if (!work) work = sl_eval_batch(m, &ro, b.B, b.T, b.u, b.target, b.mask, &mt, &err);
        }
        if (work) goto done;
        L[i] = (double)lens[i];
        acc[i] = mt.acc;
        accl[i] = mt.last_acc;
        loss[i] = mt.loss;
        cnt[i] = mt.n;
    }
    const double chance = ro.loss == SL_LOSS_CE ? 1.0 / (double)ro.C : NAN;
    if (!x.no_plot) {
        fig_path = x.out ? sl_strdup(x.out) : cli_default_figure_path(x.db, model_path, "eval", ".png");
        char title[512], stem[256];
        snprintf(stem, sizeof stem, "%s", cli_basename(model_path));
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        snprintf(title, sizeof title, "%s on %s", stem, task ? task->name : cli_basename(x.data));
        sl_figure *fig = NULL;
        work = sl_eval_figure((sl_curve){ (size_t)nl, L, acc }, (sl_curve){ (size_t)nl, L, accl }, train_len, chance,
                              title, &fig, &err);
        if (!work) work = sl_figure_save(fig, fig_path, x.dpi, &err);
        sl_figure_free(fig);
        if (work) goto done;
    }
    sl_db *db = run.db;
    const int64_t id = run.id;
    sl_db_begin(db, &err);
    if (task) {
        const char *k;
        json_t *v;
        json_object_foreach(task->config, k, v) {
            char key[160];
            snprintf(key, sizeof key, "task.%s", k);
            char *s = json_is_string(v) ? sl_strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (s) sl_db_param(db, id, key, s, &err);
            free(s);
        }
        sl_db_param(db, id, "lengths", x.lengths ? x.lengths : "default", &err);
        sl_db_paramf(db, id, "batch", &err, "%lld", x.batch);
    }
    if (have_data) sl_db_param(db, id, "data", x.data, &err);
    if (isfinite(train_len)) sl_db_paramf(db, id, "train_length", &err, "%.0f", train_len);
    if (isfinite(chance)) sl_db_paramf(db, id, "chance", &err, "%.17g", chance);
    for (int i = 0; i < nl; i++) {
        sl_db_metric(db, id, "accuracy", lens[i], acc[i], &err);
        sl_db_metric(db, id, "accuracy_last", lens[i], accl[i], &err);
        sl_db_metric(db, id, "loss", lens[i], loss[i], &err);
    }
    sl_db_curve_n(db, id, "accuracy", (size_t)nl, L, acc, &err);
    sl_db_curve_n(db, id, "accuracy_last", (size_t)nl, L, accl, &err);
    sl_db_curve_n(db, id, "loss", (size_t)nl, L, loss, &err);
    if (fig_path) sl_db_artifact(db, id, fig_path, cli_media_type(fig_path), &err);
    if ((work = sl_db_commit(db, &err))) goto done;
    {
        const char *cols[] = { "length", "accuracy", "accuracy_last", "loss", "targets" };
        sl_table *tb = sl_table_new(5, cols);
        for (int k = 0; tb && k < 5; k++) sl_table_numeric(tb, k, 1);
        for (int i = 0; tb && i < nl; i++) {
            sl_table_row(tb);
            sl_table_setf(tb, 0, "%lld", lens[i]);
            sl_table_setf(tb, 1, "%.6f", acc[i]);
            sl_table_setf(tb, 2, "%.6f", accl[i]);
            sl_table_setf(tb, 3, "%.6g", loss[i]);
            sl_table_setf(tb, 4, "%.0f", cnt[i]);
        }
        if (tb) sl_table_print(tb, x.fmt, stdout);
        sl_table_free(tb);
    }
    if (fig_path) fprintf(stderr, "seqlab: eval: figure %s\n", fig_path);
done:
    if (work) cli_fail(c, &err);
    if (started) rc = cli_run_finish(c, &run, work, &err);
out:
    if (r) gsl_rng_free(r);
    sl_batch_free(&b);
    free(L); free(acc); free(accl); free(loss); free(cnt); free(lens);
    free(fig_path);
    free(ukeys);
    json_decref(topts);
    json_decref(tcfg);
    json_decref(stored);
    sl_task_free(task);
    if (have_data) sl_dataset_free(&data);
    sl_model_free(m);
    return rc;
}

const sl_command sl_cmd_eval = {
    .name = "eval",
    .run = eval_run,
    .summary = "accuracy of a trained model per test length (length generalisation)",
    .help =
        "usage: seqlab eval MODEL [--task T] [task options] [--lengths L1,L2,...] [--batch B] [--seed S]\n"
        "       seqlab eval MODEL --data data.safetensors\n\n"
        "Runs a model `seqlab train` wrote (its readout and task are in the metadata) on --batch fresh\n"
        "sequences of its task at each test length and reports, per length: accuracy over every step\n"
        "that has a target, accuracy at the last such step of each sequence (for running parity, the\n"
        "parity of the whole sequence), the loss, and the number of targets counted. The task and its\n"
        "options are the stored ones unless given (--task T with its options, or just options such as\n"
        "--n 7 that override stored ones). With --data, the sequences of a data file instead.\n\n"
        "Recorded: metrics accuracy, accuracy_last and loss with the test length as their step, the same\n"
        "as curves (x = length), the task options (task.*), and the figure (accuracy against length, the\n"
        "training length dashed, chance dotted).\n\n"
        "options:\n"
        "  --lengths L1,L2,...  test lengths (default: the training length times 1, 2, 4, 8)\n"
        "  --batch B            sequences per length (default 256)\n"
        "  --seed S             seed of the test sequences (default 0; each length draws its own)\n"
        "  --task T             evaluate on another task (with its options); see seqlab help data\n"
        "  --data FILE          evaluate on the sequences of a data file\n"
        "  -f, --format FMT     table (default), csv or json\n"
        "  -o, --output FILE    figure (.png, .pdf, .svg); default <model>-eval.png beside the database\n"
        "  --no-plot, --dpi N, --db PATH, -t/--threads N",
};
