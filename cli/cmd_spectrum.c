/*
** seqlab spectrum MODEL: eigenvalues of every layer's transition, the main job.
**
** Prints one row per (distinct) eigenvalue, records the run (params, summary
** metrics, every eigenvalue as a row of the series table, the figure as an
** artifact) and draws the complex-plane figure. See analysis/spectrum.h for
** the points and the structure used.
*/
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_figure.h"
#include "plot.h"
#include "family.h"
#include "input.h"
#include "model.h"
#include "spectrum.h"
#include "spectrum_plot.h"
#include "util.h"

/* Parse "0,5,10-20" into a mask over T steps. */
static int parse_steps(const sl_cli *c, const char *s, int64_t T, unsigned char *mask)
{
    memset(mask, 0, (size_t)T);
    const char *p = s;
    while (*p) {
        char *end;
        long long a = strtoll(p, &end, 10), b;
        if (end == p) return cli_error(c, 2, "--steps: cannot read \"%s\" (a list like 0,5,10-20)", s);
        b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtoll(p, &end, 10);
            if (end == p) return cli_error(c, 2, "--steps: cannot read \"%s\" (a list like 0,5,10-20)", s);
        }
        if (a < 0 || b < a || b >= T)
            return cli_error(c, 2, "--steps: %lld-%lld is outside the input's steps 0..%lld", a, b, (long long)T - 1);
        for (long long t = a; t <= b; t++) mask[t] = 1;
        p = end;
        if (*p == ',') p++;
        else if (*p) return cli_error(c, 2, "--steps: unexpected \"%s\"", p);
    }
    return 0;
}

static void fmt_tau(double tau, char *buf, size_t n)
{
    if (isinf(tau)) snprintf(buf, n, "inf");
    else snprintf(buf, n, "%.10g", tau);
}

/* Rows are streamed (a random-point spectrum of a large selective model has
** millions of them): fixed-width columns for the table, RFC 4180 CSV, or a JSON
** array of objects. */
static void print_rows(const sl_spectrum *s, sl_outfmt fmt)
{
    static const char *const cols[] = { "layer", "point", "time", "index", "re", "im", "modulus", "angle",
                                        "timescale", "stability", "multiplicity", "block" };
    FILE *out = stdout;
    static char buf[1 << 16];
    setvbuf(out, buf, _IOFBF, sizeof buf);
    if (fmt == SL_FMT_CSV) {
        for (int i = 0; i < 12; i++) fprintf(out, i ? ",%s" : "%s", cols[i]);
        fputc('\n', out);
    } else if (fmt == SL_FMT_JSON) {
        fputs("[", out);
    } else {
        fprintf(out, "%5s  %-7s  %-10s  %6s  %24s  %24s  %23s  %24s  %14s  %-9s  %12s  %5s\n", cols[0], cols[1], cols[2],
                cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], cols[9], cols[10], cols[11]);
    }
    for (size_t i = 0; i < s->n_rows; i++) {
        const sl_spec_row *r = &s->rows[i];
        char pt[32], tau[64], blk[32] = "";
        cli_point_label(r->point, pt, sizeof pt);
        double mod = hypot(r->re, r->im);
        /* Continuous time: tau = -1/Re(lambda) in time units; discrete: -1/ln|lambda| steps. */
        double tv = r->continuous ? (r->re == 0 ? INFINITY : -1.0 / r->re) : sl_timescale(r->re, r->im);
        fmt_tau(tv, tau, sizeof tau);
        const char *stab = r->continuous ? (r->re < 0 ? "decaying" : r->re == 0 ? "marginal" : "growing")
                                         : (mod > 1.0 + 1e-12 ? "growing" : mod >= 1.0 - 1e-12 ? "marginal" : "decaying");
        if (r->block >= 0) snprintf(blk, sizeof blk, "%lld", (long long)r->block);
        const char *tm = r->continuous ? "continuous" : "discrete";
        if (fmt == SL_FMT_CSV) {
            fprintf(out, "%d,%s,%s,%lld,%.17g,%.17g,%.17g,%.17g,%s,%s,%lld,%s\n", r->layer, pt, tm, (long long)r->index,
                    r->re, r->im, mod, atan2(r->im, r->re), tau, stab, (long long)r->mult, blk);
        } else if (fmt == SL_FMT_JSON) {
            /* inf / nan are not JSON numbers: written as strings. */
            const int tnum = isfinite(tv);
            fprintf(out, "%s\n  {\"layer\": %d, \"point\": \"%s\", \"time\": \"%s\", \"index\": %lld, \"re\": %.17g, "
                    "\"im\": %.17g, \"modulus\": %.17g, \"angle\": %.17g, \"timescale\": %s%s%s, \"stability\": \"%s\", "
                    "\"multiplicity\": %lld, \"block\": %s}",
                    i ? "," : "", r->layer, pt, tm, (long long)r->index, r->re, r->im, mod, atan2(r->im, r->re),
                    tnum ? "" : "\"", tau, tnum ? "" : "\"", stab, (long long)r->mult, blk[0] ? blk : "null");
        } else {
            fprintf(out, "%5d  %-7s  %-10s  %6lld  %24.17g  %24.17g  %23.17g  %24.17g  %14s  %-9s  %12lld  %5s\n", r->layer,
                    pt, tm, (long long)r->index, r->re, r->im, mod, atan2(r->im, r->re), tau, stab,
                    (long long)r->mult, blk);
        }
    }
    if (fmt == SL_FMT_JSON) fputs(s->n_rows ? "\n]\n" : "]\n", out);
    fflush(out);
}

static void print_summary(const sl_spectrum *s, FILE *out)
{
    for (int k = 0; k < s->n_layers; k++) {
        const sl_spec_summary *S = &s->sum[k];
        char tmin[32], tmed[32], tmax[32];
        fmt_tau(S->tau_min, tmin, sizeof tmin);
        fmt_tau(S->tau_median, tmed, sizeof tmed);
        fmt_tau(S->tau_max, tmax, sizeof tmax);
        fprintf(out, "layer %d (%s, %s, %lld point%s): spectral radius %.6g", S->layer, S->kind, sl_at_name(s->at),
                (long long)S->n_points, S->n_points == 1 ? "" : "s", S->radius);
        if (S->n_points > 1) fprintf(out, " (min %.6g, median %.6g over points)", S->radius_min, S->radius_median);
        fprintf(out, "; %lld outside the unit circle, %lld with negative real part; timescale min %s, median %s, max %s",
                (long long)S->n_outside, (long long)S->n_negreal, tmin, tmed, tmax);
        if (S->has_ct) fprintf(out, "; continuous max Re %.6g", S->ct_max_real);
        fputc('\n', out);
    }
}

/* Everything a run records, in one transaction. */
static int store(cli_run *r, const sl_spectrum *s, const char *input, const char *steps, const sl_spectrum_opts *o,
                 const char *figure, sl_err *err)
{
    sl_db *db = r->db;
    int64_t run = r->id;
    sl_db_begin(db, err);
    sl_db_param(db, run, "at", sl_at_name(s->at), err);
    sl_db_paramf(db, run, "layer", err, "%d", o->layer);
    if (input) sl_db_param(db, run, "input", input, err);
    if (steps) sl_db_param(db, run, "steps", steps, err);
    if (s->at == SL_AT_RANDOM) {
        sl_db_paramf(db, run, "samples", err, "%lld", (long long)o->samples);
        sl_db_paramf(db, run, "warmup", err, "%lld", (long long)o->warmup);
        sl_db_paramf(db, run, "input_scale", err, "%.17g", o->input_scale);
        sl_db_paramf(db, run, "seed", err, "%llu", (unsigned long long)o->seed);
    }
    double radius = 0;
    for (int k = 0; k < s->n_layers; k++) {
        const sl_spec_summary *S = &s->sum[k];
        char key[64];
#define METRIC(name, v) (snprintf(key, sizeof key, "l%d.%s", S->layer, name), sl_db_metric(db, run, key, 0, (v), err))
        METRIC("spectral_radius", S->radius);
        METRIC("n_outside", (double)S->n_outside);
        METRIC("n_negative_real", (double)S->n_negreal);
        METRIC("n_eigenvalues", (double)S->n_eig);
        METRIC("timescale_min", S->tau_min);
        METRIC("timescale_median", S->tau_median);
        METRIC("timescale_max", S->tau_max);
        if (S->n_points > 1) {
            METRIC("spectral_radius_min", S->radius_min);
            METRIC("spectral_radius_median", S->radius_median);
            /* The radius at each point, with the point (step or sample) as the metric's step. */
            snprintf(key, sizeof key, "l%d.spectral_radius_at", S->layer);
            for (int64_t p = 0; p < S->n_points; p++) sl_db_metric(db, run, key, S->point_index[p], S->point_radius[p], err);
        }
        if (S->has_ct) METRIC("continuous_max_real", S->ct_max_real);
#undef METRIC
        radius = fmax(radius, S->radius);
    }
    sl_db_metric(db, run, "spectral_radius", 0, radius, err);
    if (!cli_store_eigenvalues(db, run, s->rows, s->n_rows, 0, err)) {
        if (s->vr) {
            /* Eigenvectors: series "eigvec:<row>" with the components as values. */
            for (size_t i = 0; i < s->n_rows; i++) {
                char name[48], pt[32];
                snprintf(name, sizeof name, "eigvec:%zu", i);
                cli_point_label(s->rows[i].point, pt, sizeof pt);
                sl_db_series_n(db, run, name, s->rows[i].layer, pt, (size_t)s->vec_dim, s->vr + i * (size_t)s->vec_dim,
                               s->vi + i * (size_t)s->vec_dim, err);
            }
        }
    }
    if (figure) sl_db_artifact(db, run, figure, cli_media_type(figure), err);
    return sl_db_commit(db, err);
}

static int spectrum_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "layer", required_argument, 0, 'l' }, { "at", required_argument, 0, 'a' },
        { "input", required_argument, 0, 'i' }, { "sequence", required_argument, 0, 'q' },
        { "steps", required_argument, 0, 's' }, { "samples", required_argument, 0, 'n' },
        { "seed", required_argument, 0, 'S' }, { "warmup", required_argument, 0, 'w' },
        { "input-scale", required_argument, 0, 'x' }, { "vectors", no_argument, 0, 'v' },
        { "format", required_argument, 0, 'f' }, { "output", required_argument, 0, 'o' },
        { "no-plot", no_argument, 0, 'P' }, { "dpi", required_argument, 0, 'D' },
        { "db", required_argument, 0, 'd' }, { "threads", required_argument, 0, 't' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    sl_spectrum_opts o = { .layer = -1, .at = SL_AT_AUTO, .samples = 64, .warmup = 16, .input_scale = 1.0 };
    const char *input = NULL, *steps = NULL, *figure = NULL, *db = NULL;
    sl_outfmt fmt = SL_FMT_TABLE;
    long long v, seq = 0, seed = 0;
    double dpi = 150;
    int ch, no_plot = 0, has_seed = 0;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "l:a:i:s:n:o:f:t:vh", opts)) != -1) {
        switch (ch) {
        case 'l': if (cli_parse_int(c, "--layer", optarg, 0, 1 << 20, &v)) return 2; o.layer = (int)v; break;
        case 'a':
            if (!strcmp(optarg, "origin")) o.at = SL_AT_ORIGIN;
            else if (!strcmp(optarg, "trajectory")) o.at = SL_AT_TRAJECTORY;
            else if (!strcmp(optarg, "random")) o.at = SL_AT_RANDOM;
            else if (!strcmp(optarg, "lti")) o.at = SL_AT_LTI;
            else return cli_error(c, 2, "--at: unknown point \"%s\" (origin, trajectory, random or lti)", optarg);
            break;
        case 'i': input = optarg; break;
        case 'q': if (cli_parse_int(c, "--sequence", optarg, 0, 1LL << 40, &seq)) return 2; break;
        case 's': steps = optarg; break;
        case 'n': if (cli_parse_int(c, "--samples", optarg, 1, 1 << 24, &v)) return 2; o.samples = v; break;
        case 'S': if (cli_parse_int(c, "--seed", optarg, 0, 1LL << 62, &seed)) return 2; has_seed = 1; break;
        case 'w': if (cli_parse_int(c, "--warmup", optarg, 0, 1 << 20, &v)) return 2; o.warmup = v; break;
        case 'x':
            if (cli_parse_double(c, "--input-scale", optarg, &o.input_scale)) return 2;
            if (o.input_scale <= 0) return cli_error(c, 2, "--input-scale must be positive");
            break;
        case 'v': o.vectors = 1; break;
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'o': figure = optarg; break;
        case 'P': no_plot = 1; break;
        case 'D': if (cli_parse_double(c, "--dpi", optarg, &dpi) || dpi <= 0) return cli_error(c, 2, "--dpi must be positive"); break;
        case 'd': db = optarg; break;
        case 't': if (cli_parse_int(c, "--threads", optarg, 1, 1024, &v)) return 2; cli_set_threads((int)v); break;
        case 'h': printf("%s\n", sl_cli_find("spectrum")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "MODEL")) return 2;
    if (o.at == SL_AT_TRAJECTORY && !input) return cli_error(c, 2, "--at trajectory needs --input u.safetensors");
    if (input && o.at != SL_AT_TRAJECTORY) return cli_error(c, 2, "--input is for --at trajectory");
    if (steps && o.at != SL_AT_TRAJECTORY) return cli_error(c, 2, "--steps is for --at trajectory");
    o.seed = (uint64_t)seed;
    const char *model_path = argv[optind];
    sl_err err = { 0 };
    sl_model *m = NULL;
    if (sl_model_open(model_path, &m, &err)) return cli_fail(c, &err);
    if (o.at == SL_AT_AUTO) o.at = sl_spectrum_default_at(m);
    if (has_seed && o.at != SL_AT_RANDOM) {
        sl_model_free(m);
        return cli_error(c, 2, "--seed is for --at random");
    }
    cli_run run;
    int64_t seed64 = seed;
    int rc = cli_run_start(c, db, m, o.at == SL_AT_RANDOM ? &seed64 : NULL, &run);
    if (rc) { sl_model_free(m); return rc; }
    /* From here on a failure is recorded in the run store as the run's error. */
    sl_input in = { 0 };
    double *u = NULL;
    int work = sl_model_check_finite(m, &err), usage = 0;
    unsigned char *mask = NULL;
    sl_spectrum s = { 0 };
    char *fig_path = NULL;
    if (work) goto done;
    if (o.at == SL_AT_TRAJECTORY) {
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
        u = malloc((size_t)(in.T * in.F) * sizeof *u);
        mask = malloc((size_t)in.T);
        if (!u || !mask) { work = sl_err_set(&err, SL_ENOMEM, "out of memory"); goto done; }
        for (int64_t i = 0; i < in.T * in.F; i++) u[i] = in.u[seq * in.T * in.F + i];
        if (steps && (usage = parse_steps(c, steps, in.T, mask))) {
            work = sl_err_set(&err, SL_EINVAL, "bad --steps");
            goto done;
        }
        o.input = u;
        o.T = in.T;
        o.steps = steps ? mask : NULL;
    }
    if ((work = sl_spectrum_run(m, &o, &s, &err))) goto done;
    if (!no_plot) {
        fig_path = figure ? sl_strdup(figure) : cli_default_figure_path(db, model_path, "spectrum", ".png");
        const char **kinds = calloc((size_t)m->n_layers, sizeof *kinds);
        for (int l = 0; kinds && l < m->n_layers; l++) kinds[l] = m->layers[l]->kind;
        char title[512], stem[256];
        snprintf(stem, sizeof stem, "%s", cli_basename(model_path));
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        snprintf(title, sizeof title, "%s: %s spectrum at %s", stem, m->fam->name,
                 s.at == SL_AT_RANDOM ? "random inputs" : s.at == SL_AT_LTI ? "any point (LTI)" : sl_at_name(s.at));
        sl_figure *fig = NULL;
        char (*tb)[64] = calloc((size_t)m->n_layers, sizeof *tb);
        const char **titles = tb ? cli_layer_titles(m->n_layers, kinds, tb) : NULL;
        work = sl_spectrum_figure(s.rows, s.n_rows, m->n_layers, titles, title, &fig, &err);
        free(titles);
        free(tb);
        if (!work) work = sl_figure_save(fig, fig_path, dpi, &err);
        sl_figure_free(fig);
        free(kinds);
        if (work) goto done;
    }
    if ((work = store(&run, &s, input, steps, &o, no_plot ? NULL : fig_path, &err))) goto done;
    if (fmt == SL_FMT_TABLE) print_summary(&s, stdout);
    else print_summary(&s, stderr);
    if (fmt == SL_FMT_TABLE) printf("\n");
    print_rows(&s, fmt);
    if (fig_path) fprintf(stderr, "seqlab: spectrum: figure %s\n", fig_path);
done:
    if (work && !usage) cli_fail(c, &err);
    rc = cli_run_finish(c, &run, work, &err);
    if (usage) rc = 2;
    sl_spectrum_free(&s);
    free(fig_path);
    free(u);
    free(mask);
    sl_input_free(&in);
    sl_model_free(m);
    return rc;
}

const sl_command sl_cmd_spectrum = {
    .name = "spectrum",
    .run = spectrum_run,
    .summary = "eigenvalues of every layer's transition: table, run store rows, figure",
    .help =
        "usage: seqlab spectrum MODEL [--layer L] [--at origin|trajectory|random|lti] [options]\n\n"
        "The eigenvalues of each layer's transition A_t at a point. Structure is used first: diagonal\n"
        "transitions read off their entries, DeltaNet-type transitions use the closed form, block-diagonal\n"
        "ones are solved per block, only dense A goes to LAPACK. Repeats the structure implies (the value\n"
        "side of a matrix state, channels sharing one block) are one row with a multiplicity.\n\n"
        "points:\n"
        "  --at origin         state 0, input 0 (default for nonlinear families, and for RetNet and\n"
        "                      linear attention, whose A is the same at every point)\n"
        "  --at lti            time-invariant families: exact, discrete (A) and continuous (A_ct) both\n"
        "                      (default when every layer is time-invariant)\n"
        "  --at trajectory     along --input u.safetensors (sequence --sequence B, default 0), at every\n"
        "                      step or at --steps LIST (e.g. 0,5,10-20); the spread of the spectral\n"
        "                      radius over the steps is reported\n"
        "  --at random         --samples N (default 64) random inputs: each a random prefix of --warmup W\n"
        "                      steps (default 16) then one step; features ~ N(0, --input-scale^2), or\n"
        "                      embeddings of random tokens for models with an embedding; --seed S\n"
        "                      (default for selective families: Mamba, GLA, DeltaNet, ..., whose\n"
        "                      zero-input spectrum is degenerate)\n\n"
        "output:\n"
        "  table (default), --format csv (one header line, one row per eigenvalue) or --format json, with\n"
        "  columns layer, point, time (discrete|continuous), index, re, im, modulus, angle, timescale\n"
        "  (-1/ln|lambda| steps; inf for |lambda| = 1; negative and 'growing' for |lambda| > 1;\n"
        "  -1/Re(lambda) time units for continuous rows), stability, multiplicity, block.\n"
        "  A per-layer summary (spectral radius, count outside the unit circle, count with negative real\n"
        "  part, min/median/max timescale) precedes the table, or goes to stderr for csv and json.\n\n"
        "options:\n"
        "  -l, --layer L        only layer L (0-based)\n"
        "  -v, --vectors        also compute eigenvectors (stored as series eigvec:<row>)\n"
        "  -o, --output FILE    figure (.png, .pdf, .svg); default <model>-spectrum.png beside the database\n"
        "      --no-plot        no figure\n"
        "      --dpi N          PNG resolution (default 150)\n"
        "      --db PATH        run store (default $SEQLAB_DB, else ./seqlab.db)\n"
        "  -t, --threads N      threads\n\n"
        "Recorded: the run with its params, metrics l<k>.spectral_radius, l<k>.n_outside,\n"
        "l<k>.n_negative_real, l<k>.timescale_{min,median,max} (and l<k>.spectral_radius_at per point),\n"
        "every eigenvalue in the series table (view eigenvalues; continuous ones as eigenvalues_ct), and\n"
        "the figure as an artifact.",
};
