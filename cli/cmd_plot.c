/*
** seqlab plot RUN [-o FILE]: re-render the figure of a stored run from the run
** store alone, without recomputing (another format from the extension, another
** resolution with --dpi). Each analysis that stores results has a renderer
** here that reads its rows back and calls the same figure function the
** analysis used. The new figure is added to the run's artifacts.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_figure.h"
#include "plot.h"
#include "spectrum.h"
#include "spectrum_plot.h"
#include "train_plot.h"
#include "util.h"

/* Largest layer index in the run's series/timescales rows, + 1. */
static int count_layers(sqlite3 *h, int64_t run)
{
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_prepare_v2(h, "SELECT max(layer) FROM (SELECT layer FROM series WHERE run_id = ?1 "
                              "UNION ALL SELECT layer FROM timescales WHERE run_id = ?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, run);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) n = sqlite3_column_int(st, 0) + 1;
        sqlite3_finalize(st);
    }
    return n;
}

/* Eigenvalue rows of a run as sl_spec_row (points other than origin/lti are numbers). */
static int load_eigs(sqlite3 *h, int64_t run, sl_spec_row **out, size_t *n, sl_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT layer, point, name = 'eigenvalues_ct', idx, re, im, mult, block FROM series "
                              "WHERE run_id = ? AND name IN ('eigenvalues', 'eigenvalues_ct') ORDER BY rowid",
                           -1, &st, NULL) != SQLITE_OK)
        return sl_err_set(err, SL_EDB, "reading eigenvalues: %s", sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, run);
    size_t cap = 0;
    int rc = SL_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            sl_spec_row *r = realloc(*out, cap * sizeof *r);
            if (!r) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
            *out = r;
        }
        sl_spec_row *r = &(*out)[(*n)++];
        const char *pt = (const char *)sqlite3_column_text(st, 1);
        r->layer = sqlite3_column_int(st, 0);
        r->point = !pt ? 0 : !strcmp(pt, "origin") ? SL_POINT_ORIGIN : !strcmp(pt, "lti") ? SL_POINT_LTI : atoll(pt);
        r->continuous = sqlite3_column_int(st, 2);
        r->index = sqlite3_column_int64(st, 3);
        r->re = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
        r->im = sqlite3_column_type(st, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5);
        r->mult = sqlite3_column_int64(st, 6);
        r->block = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *stem_of(const sl_run_record *r, char *buf, size_t n)
{
    snprintf(buf, n, "%s", r->model_path ? cli_basename(r->model_path) : "run");
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
    return buf;
}

static const char *param(const sl_run_record *r, const char *key)
{
    for (size_t i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i].key, key)) return r->params[i].value;
    return NULL;
}

static int render_spectrum(sqlite3 *h, const sl_run_record *r, sl_figure **fig, sl_err *err)
{
    sl_spec_row *rows;
    size_t n;
    int rc = load_eigs(h, r->id, &rows, &n, err);
    if (rc) return rc;
    int L = count_layers(h, r->id);
    const char **kinds = calloc((size_t)(L ? L : 1), sizeof *kinds);
    for (int l = 0; kinds && l < L; l++) kinds[l] = r->model_family;
    char stem[256], title[512];
    const char *at = param(r, "at");
    snprintf(title, sizeof title, "%s: %s spectrum at %s", stem_of(r, stem, sizeof stem),
             r->model_family ? r->model_family : "model",
             !at ? "?" : !strcmp(at, "random") ? "random inputs" : !strcmp(at, "lti") ? "any point (LTI)" : at);
    char (*tb)[64] = calloc((size_t)(L ? L : 1), sizeof *tb);
    const char **titles = tb ? cli_layer_titles(L, kinds, tb) : NULL;
    rc = sl_spectrum_figure(rows, n, L, titles, title, fig, err);
    free(titles);
    free(tb);
    free(kinds);
    free(rows);
    return rc;
}

static int render_timescales(sqlite3 *h, const sl_run_record *r, sl_figure **fig, sl_err *err)
{
    sl_spec_row *rows;
    size_t n;
    int rc = load_eigs(h, r->id, &rows, &n, err);
    if (rc) return rc;
    int L = count_layers(h, r->id);
    double **mode = calloc((size_t)L + 1, sizeof *mode), **single = calloc((size_t)L + 1, sizeof *single),
           **net = calloc((size_t)L + 1, sizeof *net);
    size_t *nm = calloc((size_t)L + 1, sizeof *nm), *ns = calloc((size_t)L + 1, sizeof *ns), *nn = calloc((size_t)L + 1, sizeof *nn);
    const char **kinds = calloc((size_t)L + 1, sizeof *kinds);
    sqlite3_stmt *st = NULL;
    if (!mode || !single || !net || !nm || !ns || !nn || !kinds) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    for (int l = 0; l < L; l++) {
        kinds[l] = r->model_family;
        mode[l] = malloc((n + 1) * 64 * sizeof **mode);
        if (!mode[l]) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].continuous || rows[i].layer >= L) continue;
        double tau = sl_timescale(rows[i].re, rows[i].im);
        for (int64_t k = 0; k < SL_MIN(rows[i].mult, 64); k++) mode[rows[i].layer][nm[rows[i].layer]++] = tau;
    }
    if (sqlite3_prepare_v2(h, "SELECT layer, tau_single, tau_net, status FROM timescales WHERE run_id = ? ORDER BY layer, unit",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sl_err_set(err, SL_EDB, "reading timescales: %s", sqlite3_errmsg(h));
        goto done;
    }
    sqlite3_bind_int64(st, 1, r->id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int l = sqlite3_column_int(st, 0);
        if (l < 0 || l >= L) continue;
        double *a = realloc(single[l], (ns[l] + 1) * sizeof *a);
        if (!a) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
        single[l] = a;
        single[l][ns[l]++] = sqlite3_column_double(st, 1);
        if (!strcmp((const char *)sqlite3_column_text(st, 3), "fitted")) {
            double *b = realloc(net[l], (nn[l] + 1) * sizeof *b);
            if (!b) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); goto done; }
            net[l] = b;
            net[l][nn[l]++] = sqlite3_column_double(st, 2);
        }
    }
    /* Layers analysed: those with unit rows. */
    int first = 0;
    while (first < L && !ns[first]) first++;
    int last = L - 1;
    while (last > first && !ns[last]) last--;
    char stem[256], title[512];
    snprintf(title, sizeof title, "%s: %s timescales", stem_of(r, stem, sizeof stem), r->model_family ? r->model_family : "model");
    if (first >= L) { rc = sl_err_set(err, SL_EINVAL, "run %lld stores no timescales", (long long)r->id); goto done; }
    /* Panel titles for the layers shown, "layer l (kind)". */
    char ttl[64][64];
    const char *titles[64];
    const char **all = cli_layer_titles(first + (last - first + 1) < 64 ? first + (last - first + 1) : 64, kinds, ttl);
    for (int q = 0; all && q < (last - first + 1) && first + q < 64; q++) titles[q] = all[first + q];
    free(all);
    rc = sl_timescales_figure(last - first + 1, titles, (const double *const *)mode + first, nm + first,
                              (const double *const *)single + first, ns + first, (const double *const *)net + first,
                              nn + first, title, fig, err);
done:
    sqlite3_finalize(st);
    for (int l = 0; l < L; l++) {
        if (mode) free(mode[l]);
        if (single) free(single[l]);
        if (net) free(net[l]);
    }
    free(mode); free(single); free(net); free(nm); free(ns); free(nn); free(kinds);
    free(rows);
    return rc;
}

/* Curve `name` of a run (x and y malloc'ed; n = 0 when absent). */
static int load_curve(sqlite3 *h, int64_t run, const char *name, double **x, double **y, size_t *n, sl_err *err)
{
    *x = *y = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT x, y FROM curves WHERE run_id = ? AND name = ? ORDER BY rowid", -1, &st, NULL) != SQLITE_OK)
        return sl_err_set(err, SL_EDB, "reading curve %s: %s", name, sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc = SL_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            double *a = realloc(*x, cap * sizeof *a), *b = a ? realloc(*y, cap * sizeof *b) : NULL;
            if (a) *x = a;
            if (b) *y = b;
            if (!a || !b) { rc = sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
        }
        (*x)[*n] = sqlite3_column_type(st, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 0);
        (*y)[*n] = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1);
        (*n)++;
    }
    sqlite3_finalize(st);
    return rc;
}

static double param_double(const sl_run_record *r, const char *key)
{
    const char *v = param(r, key);
    return v ? atof(v) : NAN;
}

static int render_train(sqlite3 *h, const sl_run_record *r, sl_figure **fig, sl_err *err)
{
    const char *names[4] = { "loss", "accuracy", "eval_accuracy", "n" };
    double *x[4] = { 0 }, *y[4] = { 0 };
    size_t n[4] = { 0 };
    int rc = SL_OK;
    for (int i = 0; i < 4 && !rc; i++) rc = load_curve(h, r->id, names[i], &x[i], &y[i], &n[i], err);
    if (!rc && !n[0]) rc = sl_err_set(err, SL_EINVAL, "run %lld stores no loss curve", (long long)r->id);
    if (!rc) {
        char stem[256], title[512];
        const char *task = param(r, "task"), *data = param(r, "data");
        snprintf(title, sizeof title, "%s: %s on %s", stem_of(r, stem, sizeof stem), r->model_family ? r->model_family : "model",
                 task && *task ? task : data ? cli_basename(data) : "?");
        rc = sl_train_figure((sl_curve){ n[0], x[0], y[0] }, (sl_curve){ n[1], x[1], y[1] }, (sl_curve){ n[2], x[2], y[2] },
                             (sl_curve){ n[3], x[3], y[3] }, param_double(r, "chance"), title, fig, err);
    }
    for (int i = 0; i < 4; i++) { free(x[i]); free(y[i]); }
    return rc;
}

static int render_eval(sqlite3 *h, const sl_run_record *r, sl_figure **fig, sl_err *err)
{
    double *x[2] = { 0 }, *y[2] = { 0 };
    size_t n[2] = { 0 };
    int rc = load_curve(h, r->id, "accuracy", &x[0], &y[0], &n[0], err);
    if (!rc) rc = load_curve(h, r->id, "accuracy_last", &x[1], &y[1], &n[1], err);
    if (!rc && !n[0]) rc = sl_err_set(err, SL_EINVAL, "run %lld stores no accuracy curve", (long long)r->id);
    if (!rc) {
        char stem[256], title[512];
        const char *task = param(r, "task.task"), *data = param(r, "data");
        snprintf(title, sizeof title, "%s on %s", stem_of(r, stem, sizeof stem), task ? task : data ? cli_basename(data) : "?");
        rc = sl_eval_figure((sl_curve){ n[0], x[0], y[0] }, (sl_curve){ n[1], x[1], y[1] }, param_double(r, "train_length"),
                            param_double(r, "chance"), title, fig, err);
    }
    for (int i = 0; i < 2; i++) { free(x[i]); free(y[i]); }
    return rc;
}

/* Renderers by command name. */
static const struct {
    const char *command;
    int (*render)(sqlite3 *h, const sl_run_record *r, sl_figure **fig, sl_err *err);
} renderers[] = {
    { "spectrum", render_spectrum },
    { "timescales", render_timescales },
    { "train", render_train },
    { "eval", render_eval },
};

static int plot_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "dpi", required_argument, 0, 'D' },
        { "db", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    const char *out = NULL, *dbp = NULL;
    double dpi = 150;
    int ch;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "o:h", opts)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'D': if (cli_parse_double(c, "--dpi", optarg, &dpi) || dpi <= 0) return cli_error(c, 2, "--dpi must be positive"); break;
        case 'd': dbp = optarg; break;
        case 'h': printf("%s\n", sl_cli_find("plot")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "RUN (a run id or UUID prefix)")) return 2;
    sl_db *db;
    int rc = cli_db_open_existing(c, dbp, 0, &db);
    if (rc) return rc;
    sl_err err = { 0 };
    int64_t id;
    sl_run_record *r = NULL;
    sl_figure *fig = NULL;
    char *path = NULL;
    if (sl_db_run_resolve(db, argv[optind], &id, &err) || sl_db_run_get(db, id, &r, &err)) { rc = cli_fail(c, &err); goto done; }
    int (*render)(sqlite3 *, const sl_run_record *, sl_figure **, sl_err *) = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(renderers); i++)
        if (!strcmp(renderers[i].command, r->command)) render = renderers[i].render;
    if (!render) {
        rc = cli_error(c, 2, "run %lld (%s) has no figure to draw (figures exist for: spectrum, timescales, train, eval)",
                       (long long)id, r->command);
        goto done;
    }
    if (strcmp(r->status, "ok") != 0) {
        rc = cli_error(c, 2, "run %lld is %s, not ok: it stored no complete results", (long long)id, r->status);
        goto done;
    }
    if (out) {
        path = sl_strdup(out);
    } else {
        char suffix[64];
        snprintf(suffix, sizeof suffix, "%s-run%lld", r->command, (long long)id);
        path = cli_default_figure_path(dbp, r->model_path ? r->model_path : "run", suffix, ".png");
    }
    if ((rc = render(sl_db_handle(db), r, &fig, &err)) || (rc = sl_figure_save(fig, path, dpi, &err))) {
        rc = cli_fail(c, &err);
        goto done;
    }
    if (sl_db_artifact(db, id, path, cli_media_type(path), &err)) { rc = cli_fail(c, &err); goto done; }
    printf("%s\n", path);
done:
    sl_figure_free(fig);
    free(path);
    sl_run_record_free(r);
    sl_db_close(db);
    return rc;
}

const sl_command sl_cmd_plot = {
    .name = "plot",
    .run = plot_run,
    .summary = "re-render the figure of a stored run from the run store",
    .help = "usage: seqlab plot RUN [-o FILE] [--dpi N] [--db PATH]\n\n"
            "Draws the figure of run RUN (an id or a UUID prefix) again from its stored rows, without\n"
            "recomputing: another format from the extension (.png, .pdf, .svg), another resolution with\n"
            "--dpi. Works for every analysis that stores results (spectrum, timescales, train, eval). The figure is added\n"
            "to the run's artifacts; its path is printed.\n\n"
            "options:\n"
            "  -o, --output FILE  where to write (default <model>-<command>-run<id>.png beside the database)\n"
            "      --dpi N        PNG resolution (default 150)\n"
            "      --db PATH      run store (default $SEQLAB_DB, else ./seqlab.db)\n",
};
