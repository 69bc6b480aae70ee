/*
** The spectrum and timescale figures: see spectrum_plot.h.
*/
#include "spectrum_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Points in one panel above which colour shows density instead of layer. */
#define DENSITY_POINTS 1500

/* log(1 + count of the 2-D bin holding each point), over a 64 x 64 grid. */
static void point_density(const double *x, const double *y, size_t n, double *c)
{
    enum { G = 64 };
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]); x1 = fmax(x1, x[i]);
        y0 = fmin(y0, y[i]); y1 = fmax(y1, y[i]);
    }
    double sx = x1 > x0 ? (G - 1e-9) / (x1 - x0) : 0, sy = y1 > y0 ? (G - 1e-9) / (y1 - y0) : 0;
    static int cnt[G * G];
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++) cnt[(int)((y[i] - y0) * sy) * G + (int)((x[i] - x0) * sx)]++;
    for (size_t i = 0; i < n; i++) c[i] = log10(1.0 + cnt[(int)((y[i] - y0) * sy) * G + (int)((x[i] - x0) * sx)]);
}

static void panel(sl_axes *ax, const sl_spec_row *rows, size_t n, int layer, int continuous, const char *name,
                  double *x, double *y, double *c)
{
    size_t k = 0;
    double radius = 0, maxre = -INFINITY;
    int64_t outside = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_spec_row *r = &rows[i];
        if (r->layer != layer || r->continuous != continuous) continue;
        x[k] = r->re;
        y[k] = r->im;
        k++;
        double m = hypot(r->re, r->im);
        radius = fmax(radius, m);
        maxre = fmax(maxre, r->re);
        total += r->mult;
        if (m > 1.0 + 1e-12) outside += r->mult;
    }
    char t[200];
    if (name) snprintf(t, sizeof t, "%s%s", name, continuous ? ", continuous time" : "");
    else snprintf(t, sizeof t, "layer %d%s", layer, continuous ? ", continuous time" : "");
    sl_axes_title(ax, t);
    const sl_style pts = { .color = sl_tab10(layer), .markersize = k > 400 ? 2.5 : 4.5, .alpha = k > 400 ? 0.6 : 0.9 };
    if (continuous) {
        sl_axes_vline(ax, 0.0, NULL);               /* the imaginary axis: the stability boundary */
        sl_axes_xlabel(ax, "Re \xce\xbb");
        sl_axes_ylabel(ax, "Im \xce\xbb");
    } else {
        sl_axes_circle(ax, 0, 0, 1, NULL);           /* the unit circle */
        sl_axes_equal_aspect(ax, 1);
        double R = fmax(1.15, 1.1 * radius);
        sl_axes_xlim(ax, -R, R);
        sl_axes_ylim(ax, -R, R);
        sl_axes_xlabel(ax, "Re \xce\xbb");
        sl_axes_ylabel(ax, "Im \xce\xbb");
    }
    if (k > DENSITY_POINTS) {
        point_density(x, y, k, c);
        sl_axes_scatter_c(ax, k, x, y, c, SL_CMAP_VIRIDIS, NAN, NAN, &pts);
        sl_axes_colorbar(ax, "log\xe2\x82\x81\xe2\x82\x80 (1 + points per bin)");
    } else {
        sl_axes_scatter(ax, k, x, y, &pts);
    }
    char note[160];
    if (continuous) snprintf(note, sizeof note, "max Re \xce\xbb = %.4g", maxre);
    else if (outside) snprintf(note, sizeof note, "\xcf\x81 = %.4g, %lld of %lld outside", radius, (long long)outside, (long long)total);
    else snprintf(note, sizeof note, "\xcf\x81 = %.4g", radius);
    sl_axes_text_frac(ax, 0.03, 0.97, note, SL_ANCHOR_NW, NULL);
}

int sl_spectrum_figure(const sl_spec_row *rows, size_t n, int n_layers, const char *const *titles, const char *title,
                       sl_figure **out, sl_err *err)
{
    *out = NULL;
    /* Which (layer, continuous) panels have rows. */
    int *has = calloc((size_t)(2 * (n_layers > 0 ? n_layers : 1)), sizeof *has);
    if (!has) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (rows[i].layer >= 0 && rows[i].layer < n_layers) has[2 * rows[i].layer + (rows[i].continuous != 0)] = 1;
    int P = 0;
    for (int i = 0; i < 2 * n_layers; i++) P += has[i];
    if (P == 0) { free(has); return sl_err_set(err, SL_EINVAL, "no eigenvalues to plot"); }
    const int cols = P == 4 ? 2 : P < 3 ? P : 3, nrows = (P + cols - 1) / cols;
    /* Wide enough for the title (about 7 points per character at 13.2 pt). */
    double width = fmax(250.0 * cols, title ? 7.2 * (double)strlen(title) + 24.0 : 0.0);
    sl_figure *fig = sl_figure_new(width, 250.0 * nrows + (title ? 20 : 0), nrows, cols);
    double *x = malloc((n ? n : 1) * sizeof *x), *y = malloc((n ? n : 1) * sizeof *y), *c = malloc((n ? n : 1) * sizeof *c);
    if (!fig || !x || !y || !c) {
        sl_figure_free(fig);
        free(has); free(x); free(y); free(c);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if (title) sl_figure_title(fig, title);
    int p = 0;
    for (int l = 0; l < n_layers; l++)
        for (int ct = 0; ct < 2; ct++) {
            if (!has[2 * l + ct]) continue;
            panel(sl_figure_axes(fig, p / cols, p % cols), rows, n, l, ct, titles ? titles[l] : NULL, x, y, c);
            p++;
        }
    for (; p < nrows * cols; p++) sl_axes_off(sl_figure_axes(fig, p / cols, p % cols), 1);
    free(has); free(x); free(y); free(c);
    int rc = sl_figure_status(fig, err);
    if (rc) { sl_figure_free(fig); return rc; }
    *out = fig;
    return SL_OK;
}

int sl_timescales_figure(int n_layers, const char *const *titles, const double *const *mode, const size_t *n_mode,
                         const double *const *single, const size_t *n_single, const double *const *net,
                         const size_t *n_net, const char *title, sl_figure **out, sl_err *err)
{
    *out = NULL;
    if (n_layers <= 0) return sl_err_set(err, SL_EINVAL, "no layers to plot");
    const int cols = n_layers < 3 ? n_layers : 3, rows = (n_layers + cols - 1) / cols;
    double width = fmax(290.0 * cols, title ? 7.2 * (double)strlen(title) + 24.0 : 0.0);
    sl_figure *fig = sl_figure_new(width, 230.0 * rows + (title ? 20 : 0), rows, cols);
    if (!fig) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (title) sl_figure_title(fig, title);
    for (int l = 0; l < n_layers; l++) {
        sl_axes *ax = sl_figure_axes(fig, l / cols, l % cols);
        if (titles && titles[l]) sl_axes_title(ax, titles[l]);
        sl_axes_xlog(ax, 1);
        sl_axes_xlabel(ax, "timescale (steps)");
        sl_axes_ylabel(ax, "count");
        const struct { const double *v; size_t n; const char *label; int color; } sets[3] = {
            { mode ? mode[l] : NULL, n_mode ? n_mode[l] : 0, "modes (-1/ln|\xce\xbb|)", 0 },
            { single ? single[l] : NULL, n_single ? n_single[l] : 0, "single-unit \xcf\x84", 1 },
            { net ? net[l] : NULL, n_net ? n_net[l] : 0, "network-mediated", 2 },
        };
        for (int s = 0; s < 3; s++) {
            if (!sets[s].v || !sets[s].n) continue;
            /* Keep positive finite values (a histogram on a log axis). */
            double *v = malloc(sets[s].n * sizeof *v);
            size_t k = 0;
            for (size_t i = 0; v && i < sets[s].n; i++)
                if (isfinite(sets[s].v[i]) && sets[s].v[i] > 0) v[k++] = sets[s].v[i];
            if (k) sl_axes_hist(ax, k, v, 0, &(sl_style){ .color = sl_tab10(sets[s].color), .alpha = 0.55,
                                                          .label = sets[s].label });
            free(v);
        }
        sl_axes_legend(ax, SL_LEGEND_BEST);
    }
    for (int p = n_layers; p < rows * cols; p++) sl_axes_off(sl_figure_axes(fig, p / cols, p % cols), 1);
    int rc = sl_figure_status(fig, err);
    if (rc) { sl_figure_free(fig); return rc; }
    *out = fig;
    return SL_OK;
}
