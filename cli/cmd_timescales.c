/*
** seqlab timescales MODEL: how long each layer remembers — mode timescales
** from the spectrum, single-unit time constants, and network-mediated
** timescales fitted to each unit's autocorrelation under a drive (see
** analysis/timescales.h). Records the run (one row per unit in the
** timescales table, the eigenvalues the mode timescales come from, the
** autocorrelations as curves) and draws log-axis histograms per layer.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_figure.h"
#include "family.h"
#include "input.h"
#include "model.h"
#include "plot.h"
#include "spectrum.h"
#include "spectrum_plot.h"
#include "table.h"
#include "timescales.h"
#include "util.h"

static const char *status_name(int s)
{
    switch (s) {
    case 0: return "fitted";
    case 1: return "constant";
    case 2: return "no decay";
    default: return "fit failed";
    }
}

static void fmtd(char *buf, size_t n, double v)
{
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else snprintf(buf, n, "%.10g", v);
}

static void print_units(const sl_timescales *t, sl_outfmt fmt)
{
    const char *cols[] = { "layer", "unit", "tau_single", "tau_net", "amplitude", "r2", "lags", "status" };
    sl_table *tb = sl_table_new(8, cols);
    if (!tb) return;
    for (int i = 0; i < 7; i++) sl_table_numeric(tb, i, 1);
    for (size_t i = 0; i < t->n_units; i++) {
        const sl_unit_timescale *u = &t->units[i];
        char b[4][40];
        fmtd(b[0], 40, u->tau_single);
        fmtd(b[1], 40, u->tau_net);
        fmtd(b[2], 40, u->amplitude);
        fmtd(b[3], 40, u->r2);
        sl_table_row(tb);
        sl_table_setf(tb, 0, "%d", u->layer);
        sl_table_setf(tb, 1, "%lld", (long long)u->unit);
        for (int k = 0; k < 4; k++) sl_table_set(tb, 2 + k, b[k]);
        sl_table_setf(tb, 6, "%lld", (long long)u->lags);
        sl_table_set(tb, 7, status_name(u->status));
    }
    sl_table_print(tb, fmt, stdout);
    sl_table_free(tb);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, size_t n)
{
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Per-layer arrays of the three measures (modes expanded by multiplicity up
** to a cap, for the histograms and medians). */
typedef struct layer_sets {
    int L;
    double **mode, **single, **net;
    size_t *n_mode, *n_single, *n_net;
} layer_sets;

static void sets_free(layer_sets *s)
{
    for (int l = 0; l < s->L; l++) {
        if (s->mode) free(s->mode[l]);
        if (s->single) free(s->single[l]);
        if (s->net) free(s->net[l]);
    }
    free(s->mode); free(s->single); free(s->net);
    free(s->n_mode); free(s->n_single); free(s->n_net);
}

static int sets_build(int L, const sl_spectrum *sp, const sl_timescales *t, layer_sets *s)
{
    memset(s, 0, sizeof *s);
    s->L = L;
    s->mode = calloc((size_t)L, sizeof *s->mode);
    s->single = calloc((size_t)L, sizeof *s->single);
    s->net = calloc((size_t)L, sizeof *s->net);
    s->n_mode = calloc((size_t)L, sizeof *s->n_mode);
    s->n_single = calloc((size_t)L, sizeof *s->n_single);
    s->n_net = calloc((size_t)L, sizeof *s->n_net);
    if (!s->mode || !s->single || !s->net || !s->n_mode || !s->n_single || !s->n_net) return SL_ENOMEM;
    const int64_t cap = 64;   /* repeats of one eigenvalue drawn at most this often */
    for (int l = 0; l < L; l++) {
        size_t nm = 0, nu = 0;
        for (size_t i = 0; sp && i < sp->n_rows; i++)
            if (sp->rows[i].layer == l && !sp->rows[i].continuous) nm += (size_t)SL_MIN(sp->rows[i].mult, cap);
        for (size_t i = 0; i < t->n_units; i++) nu += t->units[i].layer == l;
        s->mode[l] = malloc((nm ? nm : 1) * sizeof **s->mode);
        s->single[l] = malloc((nu ? nu : 1) * sizeof **s->single);
        s->net[l] = malloc((nu ? nu : 1) * sizeof **s->net);
        if (!s->mode[l] || !s->single[l] || !s->net[l]) return SL_ENOMEM;
        for (size_t i = 0; sp && i < sp->n_rows; i++) {
            const sl_spec_row *r = &sp->rows[i];
            if (r->layer != l || r->continuous) continue;
            double tau = sl_timescale(r->re, r->im);
            for (int64_t k = 0; k < SL_MIN(r->mult, cap); k++) s->mode[l][s->n_mode[l]++] = tau;
        }
        for (size_t i = 0; i < t->n_units; i++) {
            if (t->units[i].layer != l) continue;
            s->single[l][s->n_single[l]++] = t->units[i].tau_single;
            if (t->units[i].status == 0) s->net[l][s->n_net[l]++] = t->units[i].tau_net;
        }
    }
    return SL_OK;
}

static int store(cli_run *r, const sl_model *m, const sl_timescales_opts *o, const char *input, const sl_spectrum *sp,
                 const sl_timescales *t, const layer_sets *sets, const char *figure, sl_err *err)
{
    sl_db *db = r->db;
    const int64_t run = r->id;
    sl_db_begin(db, err);
    sl_db_param(db, run, "drive", input ? input : "white noise", err);
    sl_db_paramf(db, run, "steps", err, "%lld", (long long)o->T);
    if (!input) sl_db_paramf(db, run, "seed", err, "%llu", (unsigned long long)o->seed);
    sl_db_paramf(db, run, "layer", err, "%d", o->layer);
    sl_db_paramf(db, run, "max_lag", err, "%lld", (long long)t->max_lag);
    if (sp) sl_db_param(db, run, "modes_at", sl_at_name(sp->at), err);
    sqlite3_stmt *st = NULL;
    if (!sl_db_stmt(db, "INSERT INTO timescales(run_id, layer, unit, tau_single, tau_net, amplitude, r2, lags, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err)) {
        for (size_t i = 0; i < t->n_units; i++) {
            const sl_unit_timescale *u = &t->units[i];
            sqlite3_bind_int64(st, 1, run);
            sqlite3_bind_int64(st, 2, u->layer);
            sqlite3_bind_int64(st, 3, u->unit);
            const double vals[4] = { u->tau_single, u->tau_net, u->amplitude, u->r2 };
            for (int k = 0; k < 4; k++)
                if (isnan(vals[k])) sqlite3_bind_null(st, 4 + k);
                else sqlite3_bind_double(st, 4 + k, vals[k]);
            sqlite3_bind_int64(st, 8, u->lags);
            sqlite3_bind_text(st, 9, status_name(u->status), -1, SQLITE_STATIC);
            if (sl_db_step(db, st, err)) break;
            /* The autocorrelation this fit saw, as a curve per unit. */
            char name[64];
            snprintf(name, sizeof name, "acf/l%d/u%lld", u->layer, (long long)u->unit);
            double *x = malloc((size_t)(t->max_lag + 1) * sizeof *x);
            if (!x) { sl_err_set(err, SL_ENOMEM, "out of memory"); break; }
            for (int64_t k = 0; k <= t->max_lag; k++) x[k] = (double)k;
            sl_db_curve_n(db, run, name, (size_t)(t->max_lag + 1), x, t->acf + i * (size_t)(t->max_lag + 1), err);
            free(x);
        }
    }
    if (sp) cli_store_eigenvalues(db, run, sp->rows, sp->n_rows, 1, err);
    for (int l = 0; l < m->n_layers; l++) {
        if (o->layer >= 0 && l != o->layer) continue;
        char key[64];
        double *tmp = malloc((sets->n_mode[l] + sets->n_net[l] + sets->n_single[l] + 1) * sizeof *tmp);
        if (!tmp) return sl_err_set(err, SL_ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < sets->n_mode[l]; i++) if (sets->mode[l][i] >= 0) tmp[k++] = sets->mode[l][i];
        snprintf(key, sizeof key, "l%d.tau_mode_median", l);
        sl_db_metric(db, run, key, 0, median_of(tmp, k), err);
        memcpy(tmp, sets->net[l], sets->n_net[l] * sizeof *tmp);
        snprintf(key, sizeof key, "l%d.tau_net_median", l);
        sl_db_metric(db, run, key, 0, median_of(tmp, sets->n_net[l]), err);
        snprintf(key, sizeof key, "l%d.tau_net_max", l);
        sl_db_metric(db, run, key, 0, sets->n_net[l] ? tmp[sets->n_net[l] - 1] : NAN, err);
        memcpy(tmp, sets->single[l], sets->n_single[l] * sizeof *tmp);
        snprintf(key, sizeof key, "l%d.tau_single_median", l);
        sl_db_metric(db, run, key, 0, median_of(tmp, sets->n_single[l]), err);
        snprintf(key, sizeof key, "l%d.fitted_fraction", l);
        sl_db_metric(db, run, key, 0, sets->n_single[l] ? (double)sets->n_net[l] / (double)sets->n_single[l] : NAN, err);
        free(tmp);
    }
    if (figure) sl_db_artifact(db, run, figure, cli_media_type(figure), err);
    return sl_db_commit(db, err);
}

static int timescales_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "layer", required_argument, 0, 'l' }, { "input", required_argument, 0, 'i' },
        { "sequence", required_argument, 0, 'q' }, { "steps", required_argument, 0, 'T' },
        { "seed", required_argument, 0, 'S' }, { "burn-in", required_argument, 0, 'b' },
        { "max-lag", required_argument, 0, 'k' }, { "format", required_argument, 0, 'f' },
        { "output", required_argument, 0, 'o' }, { "no-plot", no_argument, 0, 'P' },
        { "dpi", required_argument, 0, 'D' }, { "db", required_argument, 0, 'd' },
        { "threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    sl_timescales_opts o = { .layer = -1, .T = 4096 };
    const char *input = NULL, *figure = NULL, *db = NULL;
    sl_outfmt fmt = SL_FMT_TABLE;
    long long v, seq = 0, seed = 0;
    double dpi = 150;
    int ch, no_plot = 0, has_steps = 0, has_seed = 0;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "l:i:o:f:t:h", opts)) != -1) {
        switch (ch) {
        case 'l': if (cli_parse_int(c, "--layer", optarg, 0, 1 << 20, &v)) return 2; o.layer = (int)v; break;
        case 'i': input = optarg; break;
        case 'q': if (cli_parse_int(c, "--sequence", optarg, 0, 1LL << 40, &seq)) return 2; break;
        case 'T': if (cli_parse_int(c, "--steps", optarg, 16, 1LL << 32, &v)) return 2; o.T = v; has_steps = 1; break;
        case 'S': if (cli_parse_int(c, "--seed", optarg, 0, 1LL << 62, &seed)) return 2; has_seed = 1; break;
        case 'b': if (cli_parse_int(c, "--burn-in", optarg, 1, 1LL << 32, &v)) return 2; o.burn_in = v; break;
        case 'k': if (cli_parse_int(c, "--max-lag", optarg, 2, 1LL << 20, &v)) return 2; o.max_lag = v; break;
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'o': figure = optarg; break;
        case 'P': no_plot = 1; break;
        case 'D': if (cli_parse_double(c, "--dpi", optarg, &dpi) || dpi <= 0) return cli_error(c, 2, "--dpi must be positive"); break;
        case 'd': db = optarg; break;
        case 't': if (cli_parse_int(c, "--threads", optarg, 1, 1024, &v)) return 2; cli_set_threads((int)v); break;
        case 'h': printf("%s\n", sl_cli_find("timescales")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "MODEL")) return 2;
    if (input && (has_steps || has_seed)) return cli_error(c, 2, "--steps and --seed set the white-noise drive; with --input the drive is the input");
    o.seed = (uint64_t)seed;
    const char *model_path = argv[optind];
    sl_err err = { 0 };
    sl_model *m = NULL;
    if (sl_model_open(model_path, &m, &err)) return cli_fail(c, &err);
    cli_run run;
    int64_t seed64 = seed;
    int rc = cli_run_start(c, db, m, input ? NULL : &seed64, &run);
    if (rc) { sl_model_free(m); return rc; }
    sl_input in = { 0 };
    float *drive = NULL;
    sl_spectrum sp = { 0 };
    sl_timescales t = { 0 };
    layer_sets sets = { 0 };
    char *fig_path = NULL;
    int work = sl_model_check_finite(m, &err), have_sp = 0;
    if (work) goto done;
    if (input) {
        if ((work = sl_input_load(input, "u", &in, &err))) goto done;
        if (in.F != m->n_in) {
            work = sl_err_set(&err, SL_EFORMAT, "%s: u has %lld features per step, the model takes %lld", input,
                              (long long)in.F, (long long)m->n_in);
            goto done;
        }
        if (seq >= in.B) {
            work = sl_err_set(&err, SL_EINVAL, "--sequence %lld: %s holds %lld sequence%s", seq, input, (long long)in.B,
                              in.B == 1 ? "" : "s");
            goto done;
        }
        drive = in.u + seq * in.T * in.F;
        o.input = drive;
        o.T = in.T;
    }
    if ((work = sl_timescales_run(m, &o, &t, &err))) goto done;
    /* Mode timescales from the spectrum at the model's default point. */
    sl_spectrum_opts so = { .layer = o.layer, .at = SL_AT_AUTO };
    if ((work = sl_spectrum_run(m, &so, &sp, &err))) goto done;
    have_sp = 1;
    if ((work = sets_build(m->n_layers, &sp, &t, &sets) ? sl_err_set(&err, SL_ENOMEM, "out of memory") : 0)) goto done;
    if (!no_plot) {
        fig_path = figure ? sl_strdup(figure) : cli_default_figure_path(db, model_path, "timescales", ".png");
        const char **kinds = calloc((size_t)m->n_layers, sizeof *kinds);
        for (int l = 0; kinds && l < m->n_layers; l++) kinds[l] = m->layers[l]->kind;
        char title[512], stem[256];
        snprintf(stem, sizeof stem, "%s", cli_basename(model_path));
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        snprintf(title, sizeof title, "%s: %s timescales", stem, m->fam->name);
        /* Only the layers analysed get panels. */
        int first = o.layer >= 0 ? o.layer : 0, nl = o.layer >= 0 ? 1 : m->n_layers;
        sl_figure *fig = NULL;
        /* Panel titles for the layers shown, "layer l (kind)". */
        char ttl[64][64];
        const char *titles[64];
        const char **all = cli_layer_titles(first + (nl) < 64 ? first + (nl) : 64, kinds, ttl);
        for (int q = 0; all && q < (nl) && first + q < 64; q++) titles[q] = all[first + q];
        free(all);
        work = sl_timescales_figure(nl, titles, (const double *const *)sets.mode + first, sets.n_mode + first,
                                    (const double *const *)sets.single + first, sets.n_single + first,
                                    (const double *const *)sets.net + first, sets.n_net + first, title, &fig, &err);
        if (!work) work = sl_figure_save(fig, fig_path, dpi, &err);
        sl_figure_free(fig);
        free(kinds);
        if (work) goto done;
    }
    if ((work = store(&run, m, &o, input, &sp, &t, &sets, no_plot ? NULL : fig_path, &err))) goto done;
    FILE *sumf = fmt == SL_FMT_TABLE ? stdout : stderr;
    for (int l = 0; l < m->n_layers; l++) {
        if (o.layer >= 0 && l != o.layer) continue;
        double *tmp = malloc((sets.n_mode[l] + sets.n_net[l] + sets.n_single[l] + 1) * sizeof *tmp);
        if (!tmp) break;
        size_t k = 0;
        for (size_t i = 0; i < sets.n_mode[l]; i++) if (sets.mode[l][i] >= 0) tmp[k++] = sets.mode[l][i];
        double mm = median_of(tmp, k);
        memcpy(tmp, sets.single[l], sets.n_single[l] * sizeof *tmp);
        double ms = median_of(tmp, sets.n_single[l]);
        memcpy(tmp, sets.net[l], sets.n_net[l] * sizeof *tmp);
        double mn = median_of(tmp, sets.n_net[l]);
        fprintf(sumf, "layer %d (%s): median timescale: modes %.4g, single-unit %.4g, network-mediated %.4g "
                "(%zu of %zu units fitted)\n", l, m->layers[l]->kind, mm, ms, mn, sets.n_net[l], sets.n_single[l]);
        free(tmp);
    }
    if (fmt == SL_FMT_TABLE) printf("\n");
    print_units(&t, fmt);
    if (fig_path) fprintf(stderr, "seqlab: timescales: figure %s\n", fig_path);
done:
    if (work) cli_fail(c, &err);
    rc = cli_run_finish(c, &run, work, &err);
    sets_free(&sets);
    if (have_sp) sl_spectrum_free(&sp);
    sl_timescales_free(&t);
    free(fig_path);
    sl_input_free(&in);
    sl_model_free(m);
    return rc;
}

const sl_command sl_cmd_timescales = {
    .name = "timescales",
    .run = timescales_run,
    .summary = "mode, single-unit and network-mediated timescales of every layer",
    .help =
        "usage: seqlab timescales MODEL [--layer L] [--input u.safetensors | --steps T --seed S] [options]\n\n"
        "Three measures of how long each layer remembers (after Khajehabdollahi et al., \"Emergent\n"
        "mechanisms for long timescales depend on training curriculum and affect performance in memory\n"
        "tasks\", ICLR 2024):\n"
        "  modes             -1/ln|lambda| of the transition's eigenvalues (the spectrum at the model's\n"
        "                    default point: lti for time-invariant layers, else the origin)\n"
        "  single-unit       each output unit's own time constant: the leaky RNN's tau, else 1\n"
        "  network-mediated  each output unit's autocorrelation under a drive, fitted with\n"
        "                    AC(k) = a exp(-k/tau) (GSL nonlinear least squares) over the lags where it\n"
        "                    stays above 0.05; the fit's R^2 and the lags used are reported\n\n"
        "options:\n"
        "  -l, --layer L        only layer L\n"
        "  -i, --input FILE     drive with tensor u of FILE (sequence --sequence B, default 0)\n"
        "      --steps T        white-noise drive of T steps, N(0, 1) features (default 4096)\n"
        "      --seed S         seed of the white noise (default 0)\n"
        "      --burn-in N      steps dropped before measuring (default min(T/10, 200))\n"
        "      --max-lag K      autocorrelation lags computed (default 100, at most a quarter of the steps)\n"
        "  -f, --format FMT     table (default), csv or json: one row per unit (layer, unit, tau_single,\n"
        "                       tau_net, amplitude, r2, lags, status)\n"
        "  -o, --output FILE    figure (.png, .pdf, .svg); default <model>-timescales.png beside the database\n"
        "      --no-plot, --dpi N, --db PATH, -t/--threads N\n\n"
        "Recorded: one row per unit in the timescales table, each unit's autocorrelation as curve\n"
        "acf/l<k>/u<j>, the eigenvalues behind the mode timescales, metrics l<k>.tau_mode_median,\n"
        "l<k>.tau_single_median, l<k>.tau_net_median, l<k>.tau_net_max, l<k>.fitted_fraction, and the figure.",
};
