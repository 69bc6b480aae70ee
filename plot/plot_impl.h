/*
** Internals shared by the files of plot/ (not a public header).
**
** Units are points throughout, with the origin at the figure's top left and
** y growing downwards (Cairo's convention); only the output surface scales
** points to pixels. Layout is computed on a private measuring context with
** unhinted font metrics, so text widths, and hence the whole layout, are the
** same for every output format and resolution.
**
** Life of a figure: sl_axes_* calls fill the axes with marks (copies of the
** data, defaults resolved at once); pl_layout works out limits, box sizes,
** ticks and margins; pl_draw_figure paints onto any Cairo context.
*/
#ifndef SL_PLOT_IMPL_H
#define SL_PLOT_IMPL_H

#include <cairo.h>

#include "plot.h"

/* ------------------------------------------------------------ look (points) */
#define PL_FONT_FAMILY  "DejaVu Sans"
#define PL_FONT_BASE    11.0
#define PL_FONT_TICK    (0.8 * PL_FONT_BASE)
#define PL_FONT_TITLE   (1.2 * PL_FONT_BASE)
#define PL_FONT_LEGEND  (0.9 * PL_FONT_BASE)
#define PL_FONT_TEXT    (0.9 * PL_FONT_BASE)
#define PL_ASCENT       0.76    /* of the em: cap height plus a little */
#define PL_DESCENT      0.24
#define PL_TICK_MAJOR   3.5
#define PL_TICK_MINOR   2.0
#define PL_TICK_PAD     3.5     /* tick end to label */
#define PL_LABEL_PAD    4.0     /* tick labels to axis label */
#define PL_TITLE_PAD    6.0
#define PL_OUTER_PAD    6.0     /* cell edge to anything drawn */
#define PL_SPINE_W      0.8
#define PL_CBAR_PAD     10.0
#define PL_CBAR_W       10.0
#define PL_MARGIN_FRAC  0.05    /* auto limits: data range plus 5% each side */
#define PL_TEXT_RGB     0x000000
#define PL_REF_RGB      0x808080

/* ------------------------------------------------------------ marks */
typedef enum pl_kind {
    PL_LINE, PL_SCATTER, PL_HIST, PL_HEATMAP, PL_BAND, PL_HLINE, PL_VLINE, PL_CIRCLE, PL_TEXT
} pl_kind;

typedef struct pl_mark {
    pl_kind   kind;
    size_t    n;
    double   *x, *y, *y2, *c;   /* owned copies; hist: x = values; band: y = lo, y2 = hi; heatmap: c */
    int       rows, cols, nbins;
    int       cmapped;          /* colours come from c through cmap */
    sl_cmap   cmap;
    double    vmin, vmax;       /* resolved colour range */
    double    px, py, r;        /* circle centre and radius; hline py; vline px; text position */
    char     *text;
    sl_anchor anchor;
    int       frac;             /* text position in axes fractions */
    sl_style  st;               /* every default resolved; st.label == label */
    char     *label;
    /* histogram bins, computed at layout (the x scale may change until then) */
    int       nb;
    double   *edges, *counts;
} pl_mark;

/* ------------------------------------------------------------ axes */
typedef struct pl_axis {
    double   fix_lo, fix_hi;    /* NaN: automatic */
    int      log, inverted;
    int      index_n;           /* > 0: integer ticks 0..index_n-1 (heatmap) */
    char    *label;
    /* layout */
    double   lo, hi;            /* limits in data units */
    sl_ticks ticks;
} pl_axis;

struct sl_axes {
    sl_figure    *fig;
    int           row, col;
    char         *title;
    pl_axis       x, y;
    int           equal, grid;
    int           off;          /* drawn as nothing (an unused cell of the grid) */
    sl_legend_loc legend;
    pl_mark      *marks;
    size_t        nmarks, cap;
    int           color_next;   /* next tab10 colour for an automatic series */
    int           cbar_mark;    /* mark whose colour scale the colourbar shows; -1: no colourbar */
    char         *cbar_label;
    /* layout */
    double        bx, by, bw, bh;   /* the data box */
    double        want[4];          /* margins it needs: left, right, top, bottom */
    sl_ticks      cbar_ticks;
};

struct sl_figure {
    double   w, h;
    int      rows, cols;
    sl_axes *axes;              /* rows * cols, row-major */
    char    *title;
    sl_err   err;               /* first error while building */
    int      laid_out;
};

/* Rendering context: a Cairo context in points, and how points map to
** device pixels when rasterising (scale > 0), for snapping hairlines. */
typedef struct pl_ctx {
    cairo_t *cr;
    double   scale;             /* device pixels per point; 0 for vector output */
} pl_ctx;

/* ------------------------------------------------------------ figure.c */
/* Record the first error in fig (sticky); returns code. */
int  pl_fail(sl_figure *fig, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int  pl_layout(sl_figure *fig);
void pl_invalidate(sl_figure *fig);

/* ------------------------------------------------------------ text.c */
typedef struct pl_text_ext {
    double width, ascent, descent;      /* points, ascent/descent positive */
} pl_text_ext;

/* A measuring context (1x1 surface, layout font options); NULL on failure. */
cairo_t *pl_measure_ctx(void);
void     pl_set_font(cairo_t *cr, int raster);
void     pl_text_measure(cairo_t *cr, const char *s, double size, pl_text_ext *ext);
/* Draw s with its anchor point at (x, y), rotated by angle (radians, counter-
** clockwise on the page: pi/2 reads bottom to top). */
void     pl_text_draw(cairo_t *cr, const char *s, double size, double x, double y, sl_anchor anchor,
                      double angle);
/* Copy of a tick label with '-' as U+2212 MINUS SIGN into out (n bytes). */
void     pl_minus(const char *in, char *out, size_t n);

/* ------------------------------------------------------------ axes.c */
double pl_tx(const pl_axis *a, double v);                /* axis transform: v or log10 v */
double pl_px(const sl_axes *ax, double x);               /* data x to page points */
double pl_py(const sl_axes *ax, double y);
void   pl_axes_reset(sl_axes *ax);                       /* limits from data and fixed values */
void   pl_axes_fit_box(sl_axes *ax, double x, double y, double w, double h);  /* box + equal aspect */
int    pl_axes_ticks(sl_axes *ax, cairo_t *mcr);         /* ticks for the current box */
void   pl_axes_margins(sl_axes *ax, cairo_t *mcr);       /* fills ax->want */
void   pl_axes_draw(sl_axes *ax, pl_ctx *ctx);
double pl_snap(const pl_ctx *ctx, double v, double lw);  /* hairline to the pixel grid */

/* ------------------------------------------------------------ marks.c */
void pl_mark_free(pl_mark *m);
int  pl_marks_prepare(sl_axes *ax);                      /* histogram bins; SL_ENOMEM */
/* Data extent of a mark on one axis (which: 0 x, 1 y); returns 0 when the
** mark has none there. sticky_lo/hi: the extent is a hard edge (no margin). */
int  pl_mark_extent(const sl_axes *ax, const pl_mark *m, int which, double *lo, double *hi, int *sticky_lo,
                    int *sticky_hi);
void pl_mark_draw(sl_axes *ax, const pl_mark *m, pl_ctx *ctx);
/* Legend handle of m in the box (x, y, w, h). */
void pl_mark_handle(const pl_mark *m, pl_ctx *ctx, double x, double y, double w, double h);
/* Add m's data points (page points) inside rect to *count, for legend placement. */
void pl_mark_count_inside(const sl_axes *ax, const pl_mark *m, double x0, double y0, double x1, double y1,
                          double *count);
void pl_set_rgba(cairo_t *cr, sl_rgba c, double alpha);
void pl_set_dash(cairo_t *cr, sl_dash dash, double lw);

#endif
