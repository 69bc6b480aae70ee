/*
** plot/: a small plotting library on Cairo, for publication-quality figures.
**
** A figure is a grid of panels (axes), sized in points (1/72 inch). Each axes
** holds marks (lines, scatter, histograms, heatmaps, bands, reference lines
** and circles, text) that copy their data when added, so a caller may free its
** arrays at once. Nothing is drawn until sl_figure_save / sl_figure_write: the
** figure is a pure description, and rendering it is a pure function of that
** description. The same figure renders byte-identical PNG and SVG (and PDF)
** every time, which lets a run store hash its figures and lets `seqlab plot`
** re-render a stored run later from its data alone.
**
**   sl_figure *fig = sl_figure_new(360, 270, 1, 1);
**   sl_axes *ax = sl_figure_axes(fig, 0, 0);
**   sl_axes_line(ax, n, t, loss, &(sl_style){ .label = "train" });
**   sl_axes_line(ax, n, t, vloss, &(sl_style){ .label = "valid" });
**   sl_axes_xlabel(ax, "step"); sl_axes_ylabel(ax, "loss"); sl_axes_ylog(ax, 1);
**   int rc = sl_figure_save(fig, "loss.pdf", 0, &err);   // .png, .pdf or .svg
**   sl_figure_free(fig);
**
** Errors are sticky: every call returns a status (0 or negative SL_E*), and
** the first failure is also remembered by the figure and returned again, with
** its message, by sl_figure_save. So figure-building code may ignore the
** individual statuses and check only the save. The library never prints.
**
** Look: DejaVu Sans at 11 pt (tick labels 0.8x, titles 1.2x); ticks by
** Talbot-Lin-Hanrahan's extended Wilkinson algorithm on linear axes and at
** decades (minors 2..9) on log axes, thinned until no two labels overlap;
** tab10 colours for series, viridis for sequential data, a blue-white-red
** map centred on 0 for signed data; a legend only when an axes has two or
** more labelled series; a colourbar on every heatmap. Text may use "^{...}"
** and "_{...}" for super- and subscripts ("10^{-3}", "x_{t}"), UTF-8 otherwise.
*/
#ifndef SL_PLOT_H
#define SL_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* ================================================================ colours */
typedef struct sl_rgba {
    double r, g, b, a;          /* each in [0, 1] */
} sl_rgba;

typedef enum sl_cmap {
    SL_CMAP_VIRIDIS = 0,        /* sequential, perceptually uniform (256-entry table) */
    SL_CMAP_DIVERGING = 1       /* blue - white - red; its range is always made symmetric about 0 */
} sl_cmap;

/* Opaque colour from 0xRRGGBB. */
sl_rgba sl_rgb_hex(uint32_t rgb);
/* The i-th colour of matplotlib's tab10 cycle (i taken modulo 10). */
sl_rgba sl_tab10(int i);
/* Colour of cmap at t in [0, 1] (clamped); NaN gives transparent. */
sl_rgba sl_cmap_eval(sl_cmap cmap, double t);

/* ================================================================ ticks
** Pure functions: tick positions and their labels, testable on their own. */
#define SL_TICKS_MAX      64
#define SL_MINOR_MAX      512
#define SL_TICK_LABEL_MAX 32

typedef struct sl_ticks {
    int    n;                                   /* major (labelled) ticks */
    double v[SL_TICKS_MAX];
    char   label[SL_TICKS_MAX][SL_TICK_LABEL_MAX];
    int    exponent;    /* != 0: labels show v / 10^exponent, and "x10^{exponent}" goes at the axis end */
    int    nminor;
    double minor[SL_MINOR_MAX];
} sl_ticks;

/* Talbot, Lin and Hanrahan's extended Wilkinson labelling of [dmin, dmax]
** with about m ticks (weights 0.25, 0.2, 0.5, 0.05 for simplicity,
** coverage, density, legibility; Q = 1, 5, 2, 2.5, 4, 3), as R's
** labeling::extended. only_loose: the ticks must cover the range. Writes at
** most cap values to out; returns their count (>= 2), or SL_EINVAL for
** non-finite input, m < 2 or too small a cap. extended(8.1, 14.1, 4) gives
** 8 10 12 14. */
int sl_ticks_extended(double dmin, double dmax, double m, int only_loose, double *out, int cap);

/* Heckbert's "nice numbers" labelling (Graphics Gems, 1990), for comparison:
** heckbert(8.1, 14.1, 4) gives 5 10 15. Same return convention. */
int sl_ticks_heckbert(double dmin, double dmax, int m, double *out, int cap);

/* Log-axis ticks for 0 < lo < hi: majors at the decades inside [lo, hi]
** labelled "10^{k}", every k-th decade only when there are more than
** max_labels decades (the others become minor ticks), minors at 2..9 x 10^k
** otherwise. A range holding fewer than two decades gets extended-Wilkinson
** majors with plain labels instead. Fills t; returns SL_OK or SL_EINVAL. */
int sl_ticks_log(double lo, double hi, int max_labels, sl_ticks *t);

/* Label t->v[0..t->n) with the fewest decimals that keep all labels distinct
** and equal to the values (to a small fraction of their spacing): "0" "0.5"
** "1" become "0.0" "0.5" "1.0". Values of magnitude >= 1e6 or < 1e-4 are
** written as mantissas with a common t->exponent. Uses '-' for minus.
** Returns SL_OK, or SL_EINVAL for a non-finite value or n out of range. */
int sl_ticks_format(sl_ticks *t);

/* ================================================================ styles */
typedef enum sl_dash {
    SL_DASH_DEFAULT = 0,        /* the mark's default: solid, dashed for reference lines and circles */
    SL_DASH_SOLID,
    SL_DASH_DASHED,
    SL_DASH_DOTTED,
    SL_DASH_DASHDOT
} sl_dash;

typedef enum sl_marker {
    SL_MARKER_DEFAULT = 0,      /* none on lines, circle on scatter */
    SL_MARKER_NONE,
    SL_MARKER_CIRCLE,
    SL_MARKER_SQUARE,
    SL_MARKER_TRIANGLE,
    SL_MARKER_DIAMOND,
    SL_MARKER_PLUS,
    SL_MARKER_CROSS
} sl_marker;

/* How a mark looks. Zero means "default" in every field, so a style is
** written as a compound literal naming only what differs:
**   &(sl_style){ .color = sl_tab10(3), .dash = SL_DASH_DASHED, .label = "fit" }
** A NULL style is all defaults. */
typedef struct sl_style {
    sl_rgba     color;          /* .a == 0: automatic (the axes' next tab10 colour for series,
                                   grey for reference lines and circles, black for text) */
    double      linewidth;      /* points; 0: 1.5 for lines, 1.0 for reference lines */
    sl_dash     dash;
    sl_marker   marker;
    double      markersize;     /* points (diameter); 0: 5 */
    double      alpha;          /* opacity in (0, 1]; 0: 1, or 0.25 for bands */
    double      fontsize;       /* text marks, points; 0: 9.9 (0.9 x base) */
    const char *label;          /* legend entry (copied); NULL: not in the legend */
} sl_style;

typedef enum sl_anchor {       /* which point of a text's box sits at its position */
    SL_ANCHOR_C = 0, SL_ANCHOR_N, SL_ANCHOR_NE, SL_ANCHOR_E, SL_ANCHOR_SE,
    SL_ANCHOR_S, SL_ANCHOR_SW, SL_ANCHOR_W, SL_ANCHOR_NW
} sl_anchor;

typedef enum sl_legend_loc {
    SL_LEGEND_BEST = 0,         /* the corner or edge centre covering the fewest data points */
    SL_LEGEND_NONE,
    SL_LEGEND_UPPER_RIGHT, SL_LEGEND_UPPER_LEFT, SL_LEGEND_LOWER_LEFT, SL_LEGEND_LOWER_RIGHT
} sl_legend_loc;

typedef enum sl_format {
    SL_FORMAT_PNG = 0,
    SL_FORMAT_PDF,
    SL_FORMAT_SVG
} sl_format;

/* ================================================================ figure */
typedef struct sl_figure sl_figure;
typedef struct sl_axes sl_axes;

/* A figure width_pt x height_pt points with a rows x cols grid of axes.
** NULL when out of memory or for sizes outside (0, 14400] or a grid outside
** 1..64 in either direction. */
sl_figure *sl_figure_new(double width_pt, double height_pt, int rows, int cols);
void       sl_figure_free(sl_figure *fig);

/* The axes in grid cell (row, col), counted from the top left; NULL when
** outside the grid. Every sl_axes_* call accepts NULL and returns SL_EINVAL. */
sl_axes   *sl_figure_axes(sl_figure *fig, int row, int col);

/* A title above all panels. */
int        sl_figure_title(sl_figure *fig, const char *title);

/* The first error recorded while building fig (SL_OK when none), copied to err. */
int        sl_figure_status(const sl_figure *fig, sl_err *err);

/* Format from a path's extension (.png, .pdf, .svg, any case); SL_EINVAL
** naming the extension otherwise. */
int        sl_format_from_path(const char *path, sl_format *fmt, sl_err *err);

/* Render to path, format chosen by its extension, through a temporary file
** beside it that is renamed into place (so readers never see half a figure).
** dpi applies to PNG only; <= 0 means 150. */
int        sl_figure_save(sl_figure *fig, const char *path, double dpi, sl_err *err);

/* Render to a byte stream: write() gets the bytes in order and returns 0, or
** nonzero to fail the render (SL_EIO). */
typedef int (*sl_write_fn)(void *closure, const unsigned char *data, size_t n);
int        sl_figure_write(sl_figure *fig, sl_format fmt, double dpi, sl_write_fn write, void *closure,
                           sl_err *err);

/* Where data point (x, y) of ax lands in a PNG rendered at dpi (<= 0: 150):
** pixel coordinates from the image's top left corner (pixel (i, j) covers
** [i, i+1) x [j, j+1)). Lays the figure out if needed. */
int        sl_axes_data_to_device(sl_axes *ax, double x, double y, double dpi, double *px, double *py);

/* After layout (done here if needed): the limits and ticks an axes ended up
** with, for tests and for callers that place things by hand. The colourbar's
** limits are its colour range; SL_EINVAL when the axes has no colourbar. */
typedef enum sl_axis_id {
    SL_AXIS_X = 0,
    SL_AXIS_Y,
    SL_AXIS_COLORBAR
} sl_axis_id;
int        sl_axes_get_limits(sl_axes *ax, sl_axis_id which, double *lo, double *hi);
int        sl_axes_get_ticks(sl_axes *ax, sl_axis_id which, sl_ticks *out);

/* ================================================================ axes */
int sl_axes_title(sl_axes *ax, const char *title);
int sl_axes_xlabel(sl_axes *ax, const char *label);    /* with units: "time (s)" */
int sl_axes_ylabel(sl_axes *ax, const char *label);
/* Fixed limits; NaN on either side leaves that side automatic (data range
** plus 5% margins, none beyond a histogram's zero or a heatmap's edge). */
int sl_axes_xlim(sl_axes *ax, double lo, double hi);
int sl_axes_ylim(sl_axes *ax, double lo, double hi);
int sl_axes_xlog(sl_axes *ax, int on);                 /* log10 scale; non-positive data is ignored */
int sl_axes_ylog(sl_axes *ax, int on);
int sl_axes_equal_aspect(sl_axes *ax, int on);         /* one data unit is as long on x as on y */
int sl_axes_grid(sl_axes *ax, int on);                 /* light grid at the major ticks */
int sl_axes_legend(sl_axes *ax, sl_legend_loc loc);    /* where; a legend needs >= 2 labelled series */
int sl_axes_off(sl_axes *ax, int off);                 /* draw nothing in this cell (unused panels of a grid) */

/* ================================================================ marks
** Arrays are copied. NaN and infinite values are skipped (a NaN breaks a
** line); on log axes so are non-positive ones. */

/* Polyline through (x[i], y[i]); x NULL means 0, 1, ..., n-1. */
int sl_axes_line(sl_axes *ax, size_t n, const double *x, const double *y, const sl_style *st);
/* One marker per point. */
int sl_axes_scatter(sl_axes *ax, size_t n, const double *x, const double *y, const sl_style *st);
/* One marker per point, coloured by c[i] through cmap over [vmin, vmax]
** (vmin >= vmax or NaN: the range of c). sl_axes_colorbar shows the scale. */
int sl_axes_scatter_c(sl_axes *ax, size_t n, const double *x, const double *y, const double *c, sl_cmap cmap,
                      double vmin, double vmax, const sl_style *st);
/* Histogram of n values in nbins bins (<= 0: automatic, numpy's "auto"
** rule). On a log x axis the bins are equal in log space. */
int sl_axes_hist(sl_axes *ax, size_t n, const double *values, int nbins, const sl_style *st);
/* rows x cols matrix (row-major) as coloured cells: cell (i, j) is centred
** on data point (x = j, y = i), row 0 at the top (the y axis is inverted);
** ticks fall on whole cells; a colourbar comes with it. vmin >= vmax or NaN:
** the data range. NaN cells are left blank. Heatmap axes should stay linear. */
int sl_axes_heatmap(sl_axes *ax, int rows, int cols, const double *values, sl_cmap cmap, double vmin,
                    double vmax);
/* Label the colourbar of the axes' last colour-mapped mark (heatmap or
** scatter_c), adding the colourbar for a scatter. SL_EINVAL when none. */
int sl_axes_colorbar(sl_axes *ax, const char *label);
/* Filled region between ylo[i] and yhi[i] (min/max, confidence bands). */
int sl_axes_band(sl_axes *ax, size_t n, const double *x, const double *ylo, const double *yhi,
                 const sl_style *st);
/* Reference lines across the whole axes: y = const, x = const. */
int sl_axes_hline(sl_axes *ax, double y, const sl_style *st);
int sl_axes_vline(sl_axes *ax, double x, const sl_style *st);
/* Circle of radius r about (cx, cy) in data units (the unit circle of an
** eigenvalue plot: sl_axes_circle(ax, 0, 0, 1, NULL), dashed grey). */
int sl_axes_circle(sl_axes *ax, double cx, double cy, double r, const sl_style *st);
/* Text at data point (x, y), anchored there at its anchor point. */
int sl_axes_text(sl_axes *ax, double x, double y, const char *text, sl_anchor anchor, const sl_style *st);
/* Text at a fraction of the axes box: (0, 0) bottom left, (1, 1) top right;
** e.g. (0.03, 0.97, SL_ANCHOR_NW) for a note such as the spectral radius. */
int sl_axes_text_frac(sl_axes *ax, double fx, double fy, const char *text, sl_anchor anchor,
                      const sl_style *st);

#endif
