/*
** The plot/ gallery: one figure per kind of mark, each written as PNG, PDF
** and SVG, so that the look of seqlab's figures can be checked by eye.
**
**   make gallery                   # builds this and writes build/gallery/
**   build/gallery/render OUTDIR    # the same by hand
**
** The data are synthetic but shaped like what the analyses produce
** (eigenvalue spectra, timescales, singular values, training curves), from a
** fixed-seed generator, so the gallery is identical on every run.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* ------------------------------------------------------------ data */
static uint64_t rng_state = 42;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(void)
{
    double u = uniform(), v = uniform();
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

/* ------------------------------------------------------------ output */
static const char *outdir;
static int failures;

static void save_all(sl_figure *fig, const char *name)
{
    static const char *ext[] = {"png", "pdf", "svg"};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.%s", outdir, name, ext[i]);
        sl_err err = {0};
        if (sl_figure_save(fig, path, 150, &err)) {
            fprintf(stderr, "gallery: %s\n", err.msg);
            failures++;
        } else {
            printf("  %s\n", path);
        }
    }
    sl_figure_free(fig);
}

/* ------------------------------------------------------------ figures */
/* Lines: several series, so a legend. */
static void fig_lines(void)
{
    enum { N = 400 };
    double t[N], y[3][N];
    const double tau[3] = {5, 20, 80};
    for (int i = 0; i < N; i++) {
        t[i] = i * 0.25;
        for (int k = 0; k < 3; k++) y[k][i] = exp(-t[i] / tau[k]) * cos(2 * M_PI * t[i] / (8 + 4 * k));
    }
    sl_figure *fig = sl_figure_new(400, 260, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_line(ax, N, t, y[0], &(sl_style){.label = "\xcf\x84 = 5 steps"});
    sl_axes_line(ax, N, t, y[1], &(sl_style){.label = "\xcf\x84 = 20 steps"});
    sl_axes_line(ax, N, t, y[2], &(sl_style){.label = "\xcf\x84 = 80 steps", .dash = SL_DASH_DASHED});
    sl_axes_title(ax, "Impulse responses of three modes");
    sl_axes_xlabel(ax, "time (steps)");
    sl_axes_ylabel(ax, "response h_{t}");
    save_all(fig, "lines");
}

/* Scatter coloured through viridis, with its colourbar. */
static void fig_scatter(void)
{
    enum { N = 300 };
    double x[N], y[N], c[N];
    for (int i = 0; i < N; i++) {
        x[i] = normal();
        y[i] = 0.6 * x[i] + 0.8 * normal();
        c[i] = hypot(x[i], y[i]);
    }
    sl_figure *fig = sl_figure_new(360, 280, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_scatter_c(ax, N, x, y, c, SL_CMAP_VIRIDIS, NAN, NAN, &(sl_style){.alpha = 0.9});
    sl_axes_colorbar(ax, "distance from origin");
    sl_axes_title(ax, "Hidden state, two principal components");
    sl_axes_xlabel(ax, "PC 1");
    sl_axes_ylabel(ax, "PC 2");
    save_all(fig, "scatter");
}

/* Histograms: linear, and log-spaced bins on a log x axis. */
static void fig_hist(void)
{
    enum { N = 2000 };
    double *a = malloc(N * sizeof *a), *tau = malloc(N * sizeof *tau);
    for (int i = 0; i < N; i++) {
        a[i] = 0.2 * normal() + (i % 3 == 0 ? 1.0 : 0.0);
        tau[i] = exp(1.5 * normal() + 2.5);
    }
    sl_figure *fig = sl_figure_new(560, 240, 1, 2);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_hist(ax, N, a, 0, NULL);
    sl_axes_title(ax, "Pre-activations");
    sl_axes_xlabel(ax, "value");
    sl_axes_ylabel(ax, "count");
    ax = sl_figure_axes(fig, 0, 1);
    sl_axes_xlog(ax, 1);
    sl_axes_hist(ax, N, tau, 40, &(sl_style){.color = sl_tab10(1)});
    sl_axes_title(ax, "Timescales");
    sl_axes_xlabel(ax, "\xcf\x84 (steps)");
    sl_axes_ylabel(ax, "count");
    free(a);
    free(tau);
    save_all(fig, "hist");
}

/* Heatmaps: viridis for magnitudes, the diverging map for signed values. */
static void fig_heatmap(void)
{
    enum { R = 24, C = 32 };
    double *mag = malloc(R * C * sizeof *mag), *w = malloc(R * C * sizeof *w);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            mag[i * C + j] = exp(-0.5 * pow((i - 0.75 * j) / 4.0, 2)) + 0.15 * uniform();
            w[i * C + j] = sin(0.35 * i) * cos(0.2 * j) + 0.25 * normal();
        }
    sl_figure *fig = sl_figure_new(600, 250, 1, 2);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_heatmap(ax, R, C, mag, SL_CMAP_VIRIDIS, NAN, NAN);
    sl_axes_colorbar(ax, "|W_{ij}|");
    sl_axes_title(ax, "Attention weights");
    sl_axes_xlabel(ax, "key position");
    sl_axes_ylabel(ax, "query position");
    ax = sl_figure_axes(fig, 0, 1);
    sl_axes_heatmap(ax, R, C, w, SL_CMAP_DIVERGING, NAN, NAN);
    sl_axes_colorbar(ax, "W_{ij}");
    sl_axes_title(ax, "Recurrent weights (signed)");
    sl_axes_xlabel(ax, "from unit");
    sl_axes_ylabel(ax, "to unit");
    free(mag);
    free(w);
    save_all(fig, "heatmap");
}

/* Bands: min/max across seeds and a confidence band around the mean. */
static void fig_band(void)
{
    enum { N = 200, S = 8 };
    double t[N], mean[N], lo[N], hi[N], clo[N], chi[N];
    for (int i = 0; i < N; i++) {
        t[i] = 50.0 * i;
        double base = 2.0 * exp(-t[i] / 2500) + 0.3;
        double mn = INFINITY, mx = -INFINITY, sum = 0, sq = 0;
        for (int s = 0; s < S; s++) {
            double v = base * (1 + 0.08 * normal());
            mn = fmin(mn, v);
            mx = fmax(mx, v);
            sum += v;
            sq += v * v;
        }
        mean[i] = sum / S;
        double sd = sqrt(fmax(sq / S - mean[i] * mean[i], 0));
        lo[i] = mn;
        hi[i] = mx;
        clo[i] = mean[i] - 1.96 * sd / sqrt(S);
        chi[i] = mean[i] + 1.96 * sd / sqrt(S);
    }
    sl_figure *fig = sl_figure_new(400, 260, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_rgba c = sl_tab10(0);
    sl_axes_band(ax, N, t, lo, hi, &(sl_style){.color = c, .alpha = 0.15, .label = "min/max of 8 seeds"});
    sl_axes_band(ax, N, t, clo, chi, &(sl_style){.color = c, .alpha = 0.35, .label = "95% CI of the mean"});
    sl_axes_line(ax, N, t, mean, &(sl_style){.color = c, .label = "mean"});
    sl_axes_ylog(ax, 1);
    sl_axes_grid(ax, 1);
    sl_axes_title(ax, "Training loss");
    sl_axes_xlabel(ax, "step");
    sl_axes_ylabel(ax, "loss (nats)");
    save_all(fig, "band");
}

/* The complex plane of a discrete-time system: equal aspect, dashed unit
** circle, spectral radius noted. */
static void fig_spectrum(void)
{
    enum { N = 96 };
    double re[N], im[N], mod[N];
    int k = 0;
    while (k < N) {
        double r = 0.97 * pow(uniform(), 0.35), th = M_PI * uniform();
        if (k < 6) th = 0.0, r = 0.5 + 0.08 * k;     /* a few real eigenvalues */
        re[k] = r * cos(th);
        im[k] = r * sin(th);
        k++;
        if (th != 0 && k < N) {                       /* its conjugate */
            re[k] = re[k - 1];
            im[k] = -im[k - 1];
            k++;
        }
    }
    double rho = 0;
    for (int i = 0; i < N; i++) {
        mod[i] = hypot(re[i], im[i]);
        rho = fmax(rho, mod[i]);
    }
    sl_figure *fig = sl_figure_new(320, 300, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_circle(ax, 0, 0, 1, NULL);
    sl_axes_hline(ax, 0, &(sl_style){.dash = SL_DASH_SOLID, .linewidth = 0.6, .color = sl_rgb_hex(0xc0c0c0)});
    sl_axes_vline(ax, 0, &(sl_style){.dash = SL_DASH_SOLID, .linewidth = 0.6, .color = sl_rgb_hex(0xc0c0c0)});
    sl_axes_scatter(ax, N, re, im, &(sl_style){.markersize = 5, .alpha = 0.85});
    sl_axes_equal_aspect(ax, 1);
    char note[64];
    snprintf(note, sizeof note, "\xcf\x81(A) = %.3f", rho);
    sl_axes_text_frac(ax, 0.03, 0.97, note, SL_ANCHOR_NW, NULL);
    sl_axes_title(ax, "Eigenvalues of W_{hh}");
    sl_axes_xlabel(ax, "Re \xce\xbb");
    sl_axes_ylabel(ax, "Im \xce\xbb");
    save_all(fig, "spectrum");
}

/* Reference lines: a continuous-time spectrum with the imaginary axis, and a
** text annotation. */
static void fig_reflines(void)
{
    enum { N = 40 };
    double re[N], im[N];
    for (int i = 0; i < N; i += 2) {
        double a = -0.05 - 2.0 * pow(uniform(), 2), b = 6 * uniform();
        re[i] = re[i + 1] = a;
        im[i] = b;
        im[i + 1] = -b;
    }
    sl_figure *fig = sl_figure_new(360, 280, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_vline(ax, 0, &(sl_style){.label = "imaginary axis"});
    sl_axes_hline(ax, 0, &(sl_style){.dash = SL_DASH_DOTTED, .label = "real axis"});
    sl_axes_scatter(ax, N, re, im, &(sl_style){.marker = SL_MARKER_CROSS, .markersize = 6, .label = "eigenvalues"});
    sl_axes_xlim(ax, -2.5, 0.5);
    sl_axes_text(ax, -0.08, 0.25, "\xe2\x86\x90 stable", SL_ANCHOR_SE, &(sl_style){.fontsize = 9});
    sl_axes_title(ax, "Continuous-time spectrum (S4D)");
    sl_axes_xlabel(ax, "Re \xce\xbb (1/s)");
    sl_axes_ylabel(ax, "Im \xce\xbb (rad/s)");
    save_all(fig, "reflines");
}

/* Text annotations on a curve. */
static void fig_text(void)
{
    enum { N = 101 };
    double a[N], loss[N];
    for (int i = 0; i < N; i++) {
        a[i] = i / 100.0;
        loss[i] = 0.35 + 0.5 * sin(M_PI * a[i]) * sin(M_PI * a[i]) * (1 - 0.3 * a[i]);
    }
    int imax = 0;
    for (int i = 0; i < N; i++)
        if (loss[i] > loss[imax]) imax = i;
    sl_figure *fig = sl_figure_new(360, 240, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_line(ax, N, a, loss, NULL);
    double px[1] = {a[imax]}, py[1] = {loss[imax]};
    sl_axes_scatter(ax, 1, px, py, &(sl_style){.color = sl_tab10(3), .markersize = 7});
    char buf[64];
    snprintf(buf, sizeof buf, "barrier %.3f at \xce\xb1 = %.2f", loss[imax] - loss[0], a[imax]);
    sl_axes_text(ax, a[imax], loss[imax] + 0.02, buf, SL_ANCHOR_S, &(sl_style){.fontsize = 9});
    sl_axes_text(ax, 0.01, 0.33, "model A", SL_ANCHOR_NW, &(sl_style){.color = sl_rgb_hex(0x555555)});
    sl_axes_text(ax, 0.99, 0.33, "model B", SL_ANCHOR_NE, &(sl_style){.color = sl_rgb_hex(0x555555)});
    sl_axes_ylim(ax, 0.25, 0.85);
    sl_axes_title(ax, "Linear mode connectivity");
    sl_axes_xlabel(ax, "interpolation \xce\xb1");
    sl_axes_ylabel(ax, "test loss");
    save_all(fig, "text");
}

/* Several panels: shared layout, log axes, tiny and huge tick values. */
static void fig_panels(void)
{
    enum { N = 64 };
    double k[N], sv[N], sv2[N], t[N], lyap[N], tiny[N], huge[N];
    for (int i = 0; i < N; i++) {
        k[i] = i + 1;
        sv[i] = 30 * exp(-0.12 * i) + 0.05;
        sv2[i] = 12 * pow(i + 1.0, -1.2);
        t[i] = i * 10;
        lyap[i] = -0.02 - 0.3 * exp(-i / 12.0) + 0.01 * normal();
        tiny[i] = 1e-7 * (1 + sin(i / 6.0));
        huge[i] = 3e7 * (1 + 0.5 * cos(i / 9.0));
    }
    sl_figure *fig = sl_figure_new(560, 420, 2, 2);
    sl_figure_title(fig, "Layer 2 of a trained LSTM");
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_line(ax, N, k, sv, &(sl_style){.marker = SL_MARKER_CIRCLE, .markersize = 3.5, .label = "W_{hh}"});
    sl_axes_line(ax, N, k, sv2, &(sl_style){.marker = SL_MARKER_SQUARE, .markersize = 3.5, .label = "W_{ih}"});
    sl_axes_ylog(ax, 1);
    sl_axes_title(ax, "(a) singular values");
    sl_axes_xlabel(ax, "index k");
    sl_axes_ylabel(ax, "\xcf\x83_{k}");
    ax = sl_figure_axes(fig, 0, 1);
    sl_axes_line(ax, N, t, lyap, NULL);
    sl_axes_hline(ax, 0, NULL);
    sl_axes_title(ax, "(b) largest Lyapunov exponent");
    sl_axes_xlabel(ax, "iterations");
    sl_axes_ylabel(ax, "\xce\xbb_{1} (nats/step)");
    ax = sl_figure_axes(fig, 1, 0);
    sl_axes_line(ax, N, t, tiny, &(sl_style){.color = sl_tab10(2)});
    sl_axes_title(ax, "(c) gradient norm");
    sl_axes_xlabel(ax, "step");
    sl_axes_ylabel(ax, "\xe2\x80\x96g\xe2\x80\x96");
    ax = sl_figure_axes(fig, 1, 1);
    sl_axes_line(ax, N, t, huge, &(sl_style){.color = sl_tab10(4)});
    sl_axes_grid(ax, 1);
    sl_axes_title(ax, "(d) tokens per second");
    sl_axes_xlabel(ax, "step");
    sl_axes_ylabel(ax, "throughput");
    save_all(fig, "panels");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    fig_lines();
    fig_scatter();
    fig_hist();
    fig_heatmap();
    fig_band();
    fig_spectrum();
    fig_reflines();
    fig_text();
    fig_panels();
    if (failures) {
        fprintf(stderr, "gallery: %d figures failed\n", failures);
        return 1;
    }
    return 0;
}
