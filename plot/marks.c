/*
** Marks: lines, scatter, histograms, heatmaps, bands, reference lines and
** circles, text. See plot.h for the public calls.
**
** Adding a mark copies its data and resolves every style default at once
** (the automatic colour is the axes' next tab10 colour, taken in call order),
** so a figure is fully described by the sequence of calls that built it.
** Histogram bins are the one thing computed later, at layout, because they
** depend on whether the x axis is logarithmic, which may be set afterwards.
**
** Drawing clips geometry to the data box (enlarged by a few points) in double
** precision before it reaches Cairo, whose fixed-point coordinates would
** overflow on points far outside fixed limits.
*/
#include "plot_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CLIP_SLOP 8.0   /* points beyond the box that still get drawn (line joins, markers) */

/* ================================================================ adding */
void pl_mark_free(pl_mark *m)
{
    free(m->x);
    free(m->y);
    free(m->y2);
    free(m->c);
    free(m->text);
    free(m->label);
    free(m->edges);
    free(m->counts);
    memset(m, 0, sizeof *m);
}

static double *dup_array(const double *a, size_t n)
{
    size_t bytes;
    if (sl_mul_size(n ? n : 1, sizeof(double), &bytes)) return NULL;
    double *d = malloc(bytes);
    if (d && a && n) memcpy(d, a, n * sizeof(double));
    return d;
}

static int bad_axes(sl_axes *ax) { return ax == NULL || ax->fig == NULL; }

static pl_mark *push_mark(sl_axes *ax)
{
    if (ax->nmarks == ax->cap) {
        size_t cap = ax->cap ? 2 * ax->cap : 8;
        pl_mark *m = realloc(ax->marks, cap * sizeof *m);
        if (!m) return NULL;
        ax->marks = m;
        ax->cap = cap;
    }
    pl_mark *m = &ax->marks[ax->nmarks];
    memset(m, 0, sizeof *m);
    return m;
}

/* Resolve st's defaults for a mark of kind k into m->st; copies the label. */
static int resolve_style(sl_axes *ax, pl_mark *m, const sl_style *st)
{
    sl_style s = st ? *st : (sl_style){0};
    int series = m->kind == PL_LINE || m->kind == PL_SCATTER || m->kind == PL_HIST || m->kind == PL_BAND;
    int ref = m->kind == PL_HLINE || m->kind == PL_VLINE || m->kind == PL_CIRCLE;
    if (!(s.linewidth >= 0) || !(s.markersize >= 0) || !(s.alpha >= 0) || !(s.fontsize >= 0) ||
        !isfinite(s.linewidth) || !isfinite(s.markersize) || !isfinite(s.fontsize))
        return pl_fail(ax->fig, SL_EINVAL, "plot: style has a negative or non-finite size");
    if (s.color.a <= 0 || !isfinite(s.color.a)) {
        if (series && !m->cmapped) s.color = sl_tab10(ax->color_next++);
        else if (ref) s.color = sl_rgb_hex(PL_REF_RGB);
        else s.color = sl_rgb_hex(PL_TEXT_RGB);
    }
    if (s.linewidth == 0) s.linewidth = ref ? 1.0 : 1.5;
    if (s.dash == SL_DASH_DEFAULT) s.dash = ref ? SL_DASH_DASHED : SL_DASH_SOLID;
    if (s.marker == SL_MARKER_DEFAULT) s.marker = m->kind == PL_SCATTER ? SL_MARKER_CIRCLE : SL_MARKER_NONE;
    if (s.markersize == 0) s.markersize = 5.0;
    if (s.alpha == 0 || s.alpha > 1) s.alpha = m->kind == PL_BAND ? 0.25 : 1.0;
    if (s.fontsize == 0) s.fontsize = PL_FONT_TEXT;
    if (s.label) {
        m->label = sl_strdup(s.label);
        if (!m->label) return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    }
    s.label = m->label;
    m->st = s;
    return SL_OK;
}

/* Commit m (already in ax->marks[nmarks]) or free it on failure. */
static int finish(sl_axes *ax, pl_mark *m, int rc)
{
    if (rc) {
        pl_mark_free(m);
        return rc;
    }
    ax->nmarks++;
    pl_invalidate(ax->fig);
    return SL_OK;
}

static int oom(sl_axes *ax, pl_mark *m)
{
    if (m) pl_mark_free(m);
    return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
}

static int xy_mark(sl_axes *ax, pl_kind kind, size_t n, const double *x, const double *y, const sl_style *st,
                   const char *what)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (n > 0 && !y) return pl_fail(ax->fig, SL_EINVAL, "plot: %s: y is NULL", what);
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = kind;
    m->n = n;
    m->x = dup_array(x, n);
    m->y = dup_array(y, n);
    if (!m->x || !m->y) return oom(ax, m);
    if (!x)
        for (size_t i = 0; i < n; i++) m->x[i] = (double)i;
    return finish(ax, m, resolve_style(ax, m, st));
}

int sl_axes_line(sl_axes *ax, size_t n, const double *x, const double *y, const sl_style *st)
{
    return xy_mark(ax, PL_LINE, n, x, y, st, "line");
}

int sl_axes_scatter(sl_axes *ax, size_t n, const double *x, const double *y, const sl_style *st)
{
    if (!bad_axes(ax) && n > 0 && !x) return pl_fail(ax->fig, SL_EINVAL, "plot: scatter: x is NULL");
    return xy_mark(ax, PL_SCATTER, n, x, y, st, "scatter");
}

/* The colour range: [vmin, vmax] when given, else the data's; symmetric about
** 0 for the diverging map. */
static void color_range(const double *c, size_t n, sl_cmap cmap, double *vmin, double *vmax)
{
    if (!(isfinite(*vmin) && isfinite(*vmax) && *vmin < *vmax)) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (isfinite(c[i])) {
                lo = fmin(lo, c[i]);
                hi = fmax(hi, c[i]);
            }
        if (lo > hi) { lo = 0; hi = 1; }
        if (lo == hi) {
            double d = lo == 0 ? 1 : 0.1 * fabs(lo);
            lo -= d;
            hi += d;
        }
        *vmin = lo;
        *vmax = hi;
    }
    if (cmap == SL_CMAP_DIVERGING) {
        double a = fmax(fabs(*vmin), fabs(*vmax));
        *vmin = -a;
        *vmax = a;
    }
}

int sl_axes_scatter_c(sl_axes *ax, size_t n, const double *x, const double *y, const double *c, sl_cmap cmap,
                      double vmin, double vmax, const sl_style *st)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (n > 0 && (!x || !y || !c)) return pl_fail(ax->fig, SL_EINVAL, "plot: scatter: x, y or c is NULL");
    if (cmap != SL_CMAP_VIRIDIS && cmap != SL_CMAP_DIVERGING)
        return pl_fail(ax->fig, SL_EINVAL, "plot: scatter: unknown colormap %d", (int)cmap);
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = PL_SCATTER;
    m->n = n;
    m->x = dup_array(x, n);
    m->y = dup_array(y, n);
    m->c = dup_array(c, n);
    if (!m->x || !m->y || !m->c) return oom(ax, m);
    m->cmapped = 1;
    m->cmap = cmap;
    m->vmin = vmin;
    m->vmax = vmax;
    color_range(m->c, n, cmap, &m->vmin, &m->vmax);
    return finish(ax, m, resolve_style(ax, m, st));
}

int sl_axes_hist(sl_axes *ax, size_t n, const double *values, int nbins, const sl_style *st)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (n > 0 && !values) return pl_fail(ax->fig, SL_EINVAL, "plot: hist: values is NULL");
    if (nbins > 100000) return pl_fail(ax->fig, SL_EINVAL, "plot: hist: %d bins is too many", nbins);
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = PL_HIST;
    m->n = n;
    m->nbins = nbins;
    m->x = dup_array(values, n);
    if (!m->x) return oom(ax, m);
    return finish(ax, m, resolve_style(ax, m, st));
}

int sl_axes_heatmap(sl_axes *ax, int rows, int cols, const double *values, sl_cmap cmap, double vmin,
                    double vmax)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (rows < 1 || cols < 1 || rows > 32767 || cols > 32767)
        return pl_fail(ax->fig, SL_EINVAL, "plot: heatmap: %d x %d is not a matrix size in 1..32767", rows, cols);
    if (!values) return pl_fail(ax->fig, SL_EINVAL, "plot: heatmap: values is NULL");
    if (cmap != SL_CMAP_VIRIDIS && cmap != SL_CMAP_DIVERGING)
        return pl_fail(ax->fig, SL_EINVAL, "plot: heatmap: unknown colormap %d", (int)cmap);
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = PL_HEATMAP;
    m->rows = rows;
    m->cols = cols;
    m->n = (size_t)rows * (size_t)cols;
    m->c = dup_array(values, m->n);
    if (!m->c) return oom(ax, m);
    m->cmapped = 1;
    m->cmap = cmap;
    m->vmin = vmin;
    m->vmax = vmax;
    color_range(m->c, m->n, cmap, &m->vmin, &m->vmax);
    int rc = resolve_style(ax, m, NULL);
    if (rc == SL_OK) {
        ax->y.inverted = 1;
        ax->x.index_n = cols;
        ax->y.index_n = rows;
        ax->cbar_mark = (int)ax->nmarks;
    }
    return finish(ax, m, rc);
}

int sl_axes_colorbar(sl_axes *ax, const char *label)
{
    if (bad_axes(ax)) return SL_EINVAL;
    int idx = -1;
    for (size_t i = 0; i < ax->nmarks; i++)
        if (ax->marks[i].cmapped) idx = (int)i;
    if (idx < 0) return pl_fail(ax->fig, SL_EINVAL, "plot: colorbar: the axes has no heatmap or coloured scatter");
    char *l = NULL;
    if (label && !(l = sl_strdup(label))) return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    free(ax->cbar_label);
    ax->cbar_label = l;
    ax->cbar_mark = idx;
    pl_invalidate(ax->fig);
    return SL_OK;
}

int sl_axes_band(sl_axes *ax, size_t n, const double *x, const double *ylo, const double *yhi, const sl_style *st)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (n > 0 && (!x || !ylo || !yhi)) return pl_fail(ax->fig, SL_EINVAL, "plot: band: x, ylo or yhi is NULL");
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = PL_BAND;
    m->n = n;
    m->x = dup_array(x, n);
    m->y = dup_array(ylo, n);
    m->y2 = dup_array(yhi, n);
    if (!m->x || !m->y || !m->y2) return oom(ax, m);
    return finish(ax, m, resolve_style(ax, m, st));
}

static int point_mark(sl_axes *ax, pl_kind kind, double x, double y, double r, const sl_style *st)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (!isfinite(x) || !isfinite(y) || !isfinite(r) || r < 0)
        return pl_fail(ax->fig, SL_EINVAL, "plot: reference line or circle at a non-finite place");
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = kind;
    m->px = x;
    m->py = y;
    m->r = r;
    return finish(ax, m, resolve_style(ax, m, st));
}

int sl_axes_hline(sl_axes *ax, double y, const sl_style *st) { return point_mark(ax, PL_HLINE, 0, y, 0, st); }
int sl_axes_vline(sl_axes *ax, double x, const sl_style *st) { return point_mark(ax, PL_VLINE, x, 0, 0, st); }

int sl_axes_circle(sl_axes *ax, double cx, double cy, double r, const sl_style *st)
{
    return point_mark(ax, PL_CIRCLE, cx, cy, r, st);
}

static int text_mark(sl_axes *ax, double x, double y, const char *text, sl_anchor anchor, const sl_style *st,
                     int frac)
{
    if (bad_axes(ax)) return SL_EINVAL;
    if (!text || !isfinite(x) || !isfinite(y) || (int)anchor < 0 || anchor > SL_ANCHOR_NW)
        return pl_fail(ax->fig, SL_EINVAL, "plot: text: NULL text, non-finite position or bad anchor");
    pl_mark *m = push_mark(ax);
    if (!m) return oom(ax, NULL);
    m->kind = PL_TEXT;
    m->px = x;
    m->py = y;
    m->anchor = anchor;
    m->frac = frac;
    m->text = sl_strdup(text);
    if (!m->text) return oom(ax, m);
    return finish(ax, m, resolve_style(ax, m, st));
}

int sl_axes_text(sl_axes *ax, double x, double y, const char *text, sl_anchor anchor, const sl_style *st)
{
    return text_mark(ax, x, y, text, anchor, st, 0);
}

int sl_axes_text_frac(sl_axes *ax, double fx, double fy, const char *text, sl_anchor anchor, const sl_style *st)
{
    return text_mark(ax, fx, fy, text, anchor, st, 1);
}

/* ================================================================ histogram bins */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's "auto": the larger of Sturges' and Freedman-Diaconis' bin counts. */
static int auto_bins(double *t, size_t n, double lo, double hi)
{
    int sturges = (int)ceil(log2((double)n)) + 1;
    qsort(t, n, sizeof *t, cmp_double);
    double q1 = t[(size_t)(0.25 * (double)(n - 1))], q3 = t[(size_t)(0.75 * (double)(n - 1))];
    double h = 2 * (q3 - q1) / cbrt((double)n);
    int fd = h > 0 ? (int)ceil((hi - lo) / h) : 1;
    int b = sturges > fd ? sturges : fd;
    if (b < 1) b = 1;
    if (b > 1000) b = 1000;
    return b;
}

static int hist_prepare(sl_axes *ax, pl_mark *m)
{
    int xlog = ax->x.log;
    free(m->edges);
    free(m->counts);
    m->edges = m->counts = NULL;
    m->nb = 0;
    double *t = dup_array(NULL, m->n);
    if (!t) return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    size_t k = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < m->n; i++) {
        double v = m->x[i];
        if (!isfinite(v) || (xlog && v <= 0)) continue;
        double tv = xlog ? log10(v) : v;
        t[k++] = tv;
        lo = fmin(lo, tv);
        hi = fmax(hi, tv);
    }
    if (k == 0) {
        free(t);
        return SL_OK;
    }
    if (lo == hi) {
        double d = xlog ? 0.5 : (lo == 0 ? 0.5 : 0.05 * fabs(lo));
        lo -= d;
        hi += d;
    }
    int nb = m->nbins > 0 ? m->nbins : auto_bins(t, k, lo, hi);
    m->edges = dup_array(NULL, (size_t)nb + 1);
    m->counts = calloc((size_t)nb, sizeof(double));
    if (!m->edges || !m->counts) {
        free(t);
        return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    }
    for (int i = 0; i <= nb; i++) {
        double e = i == nb ? hi : lo + (hi - lo) * i / nb;
        m->edges[i] = xlog ? pow(10.0, e) : e;
    }
    for (size_t i = 0; i < k; i++) {
        long b = (long)floor((t[i] - lo) / (hi - lo) * nb);
        if (b < 0) b = 0;
        if (b >= nb) b = nb - 1;    /* the last bin is closed on the right */
        m->counts[b] += 1;
    }
    m->nb = nb;
    free(t);
    return SL_OK;
}

int pl_marks_prepare(sl_axes *ax)
{
    for (size_t i = 0; i < ax->nmarks; i++)
        if (ax->marks[i].kind == PL_HIST) {
            int rc = hist_prepare(ax, &ax->marks[i]);
            if (rc) return rc;
        }
    return SL_OK;
}

/* ================================================================ extents */
static int ok_x(const sl_axes *ax, double v) { return isfinite(v) && (!ax->x.log || v > 0); }
static int ok_y(const sl_axes *ax, double v) { return isfinite(v) && (!ax->y.log || v > 0); }

int pl_mark_extent(const sl_axes *ax, const pl_mark *m, int which, double *lo, double *hi, int *sticky_lo,
                   int *sticky_hi)
{
    double l = INFINITY, h = -INFINITY;
    *sticky_lo = *sticky_hi = 0;
    switch (m->kind) {
    case PL_LINE:
    case PL_SCATTER:
        for (size_t i = 0; i < m->n; i++) {
            if (!ok_x(ax, m->x[i]) || !ok_y(ax, m->y[i])) continue;
            double v = which ? m->y[i] : m->x[i];
            l = fmin(l, v);
            h = fmax(h, v);
        }
        break;
    case PL_BAND:
        for (size_t i = 0; i < m->n; i++) {
            if (!ok_x(ax, m->x[i])) continue;
            if (which == 0) {
                if (ok_y(ax, m->y[i]) || ok_y(ax, m->y2[i])) { l = fmin(l, m->x[i]); h = fmax(h, m->x[i]); }
                continue;
            }
            if (ok_y(ax, m->y[i])) { l = fmin(l, m->y[i]); h = fmax(h, m->y[i]); }
            if (ok_y(ax, m->y2[i])) { l = fmin(l, m->y2[i]); h = fmax(h, m->y2[i]); }
        }
        break;
    case PL_HIST:
        if (m->nb == 0) return 0;
        if (which == 0) {
            l = m->edges[0];
            h = m->edges[m->nb];
        } else {
            for (int i = 0; i < m->nb; i++)
                if (ok_y(ax, m->counts[i])) { l = fmin(l, m->counts[i]); h = fmax(h, m->counts[i]); }
            if (!ax->y.log) { l = 0; *sticky_lo = 1; }
        }
        break;
    case PL_HEATMAP:
        l = -0.5;
        h = (which ? m->rows : m->cols) - 0.5;
        *sticky_lo = *sticky_hi = 1;
        break;
    case PL_HLINE:
        if (which == 0 || !ok_y(ax, m->py)) return 0;
        l = h = m->py;
        break;
    case PL_VLINE:
        if (which == 1 || !ok_x(ax, m->px)) return 0;
        l = h = m->px;
        break;
    case PL_CIRCLE: {
        double c = which ? m->py : m->px;
        l = c - m->r;
        h = c + m->r;
        if (which ? ax->y.log : ax->x.log) {
            if (h <= 0) return 0;
            if (l <= 0) l = h * 1e-3;
        }
        break;
    }
    case PL_TEXT:
        return 0;
    }
    if (!(l <= h)) return 0;
    *lo = l;
    *hi = h;
    return 1;
}

/* ================================================================ drawing helpers */
void pl_set_rgba(cairo_t *cr, sl_rgba c, double alpha)
{
    cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a * alpha);
}

void pl_set_dash(cairo_t *cr, sl_dash dash, double lw)
{
    /* matplotlib's patterns, in units of the line width (at least 1 pt) */
    static const double dashed[] = {3.7, 1.6}, dotted[] = {1, 1.65}, dashdot[] = {6.4, 1.6, 1, 1.6};
    const double *p = NULL;
    int n = 0;
    if (dash == SL_DASH_DASHED) { p = dashed; n = 2; }
    if (dash == SL_DASH_DOTTED) { p = dotted; n = 2; }
    if (dash == SL_DASH_DASHDOT) { p = dashdot; n = 4; }
    double s = lw < 1 ? 1 : lw, d[4];
    for (int i = 0; i < n; i++) d[i] = p[i] * s;
    cairo_set_dash(cr, d, n, 0);
}

typedef struct clip_rect {
    double x0, y0, x1, y1;
} clip_rect;

static clip_rect slop_rect(const sl_axes *ax)
{
    return (clip_rect){ax->bx - CLIP_SLOP, ax->by - CLIP_SLOP, ax->bx + ax->bw + CLIP_SLOP, ax->by + ax->bh + CLIP_SLOP};
}

/* Liang-Barsky: clip segment (x0,y0)-(x1,y1) to r; 0 when nothing is left. */
static int clip_segment(clip_rect r, double *x0, double *y0, double *x1, double *y1)
{
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - r.x0, r.x1 - *x0, *y0 - r.y0, r.y1 - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0) { if (t > t1) return 0; if (t > t0) t0 = t; }
        else          { if (t < t0) return 0; if (t < t1) t1 = t; }
    }
    double ax0 = *x0, ay0 = *y0;
    *x0 = ax0 + t0 * dx;
    *y0 = ay0 + t0 * dy;
    *x1 = ax0 + t1 * dx;
    *y1 = ay0 + t1 * dy;
    return 1;
}

/* Append the polyline (px[i], py[i]), i < n, to the path, broken at NaN and
** clipped to r. */
static void polyline_path(cairo_t *cr, const double *px, const double *py, size_t n, clip_rect r)
{
    int pen = 0;            /* the path's current point is the previous vertex */
    for (size_t i = 0; i < n; i++) {
        if (isnan(px[i]) || isnan(py[i])) { pen = 0; continue; }
        if (i == 0 || isnan(px[i - 1]) || isnan(py[i - 1])) {
            if (px[i] >= r.x0 && px[i] <= r.x1 && py[i] >= r.y0 && py[i] <= r.y1) {
                cairo_move_to(cr, px[i], py[i]);
                pen = 1;
            } else {
                pen = 0;
            }
            if (n == 1 && pen) cairo_line_to(cr, px[i], py[i]);
            continue;
        }
        double x0 = px[i - 1], y0 = py[i - 1], x1 = px[i], y1 = py[i];
        if (!clip_segment(r, &x0, &y0, &x1, &y1)) { pen = 0; continue; }
        if (!pen || x0 != px[i - 1] || y0 != py[i - 1]) cairo_move_to(cr, x0, y0);
        cairo_line_to(cr, x1, y1);
        pen = x1 == px[i] && y1 == py[i];
    }
}

/* A growable polygon, for clipping (which may add vertices). */
typedef struct poly {
    double *x, *y;
    size_t  n, cap;
} poly;

static int poly_push(poly *p, double x, double y)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        double *nx = realloc(p->x, cap * sizeof *nx);
        if (!nx) return -1;
        p->x = nx;
        double *ny = realloc(p->y, cap * sizeof *ny);
        if (!ny) return -1;
        p->y = ny;
        p->cap = cap;
    }
    p->x[p->n] = x;
    p->y[p->n++] = y;
    return 0;
}

/* Sutherland-Hodgman against one edge of the clip rectangle: keep x >= v
** (edge 0), x <= v (1), y >= v (2) or y <= v (3). */
static int clip_poly_edge(const poly *in, poly *out, int edge, double v)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        size_t j = (i + in->n - 1) % in->n;
        double ax = in->x[j], ay = in->y[j], bx = in->x[i], by = in->y[i];
        double da = edge == 0 ? ax - v : edge == 1 ? v - ax : edge == 2 ? ay - v : v - ay;
        double db = edge == 0 ? bx - v : edge == 1 ? v - bx : edge == 2 ? by - v : v - by;
        if ((da < 0) != (db < 0)) {
            double t = da / (da - db);
            if (poly_push(out, ax + t * (bx - ax), ay + t * (by - ay))) return -1;
        }
        if (db >= 0 && poly_push(out, bx, by)) return -1;
    }
    return 0;
}

/* Add the closed polygon (x, y), n vertices, clipped to r, to the path.
** SL_ENOMEM when scratch space runs out. */
static int polygon_path(cairo_t *cr, const double *x, const double *y, size_t n, clip_rect r)
{
    poly a = {0}, b = {0};
    int rc = SL_OK;
    for (size_t i = 0; i < n && !rc; i++)
        if (poly_push(&a, x[i], y[i])) rc = SL_ENOMEM;
    if (!rc && (clip_poly_edge(&a, &b, 0, r.x0) || clip_poly_edge(&b, &a, 1, r.x1) ||
                clip_poly_edge(&a, &b, 2, r.y0) || clip_poly_edge(&b, &a, 3, r.y1)))
        rc = SL_ENOMEM;
    if (!rc && a.n >= 3) {
        cairo_move_to(cr, a.x[0], a.y[0]);
        for (size_t i = 1; i < a.n; i++) cairo_line_to(cr, a.x[i], a.y[i]);
        cairo_close_path(cr);
    }
    free(a.x);
    free(a.y);
    free(b.x);
    free(b.y);
    return rc;
}

static void marker_path(cairo_t *cr, sl_marker mk, double x, double y, double d)
{
    double r = d / 2;
    switch (mk) {
    case SL_MARKER_SQUARE:
        cairo_rectangle(cr, x - 0.8 * r, y - 0.8 * r, 1.6 * r, 1.6 * r);
        break;
    case SL_MARKER_TRIANGLE:
        cairo_move_to(cr, x, y - 1.15 * r);
        cairo_line_to(cr, x + r, y + 0.58 * r);
        cairo_line_to(cr, x - r, y + 0.58 * r);
        cairo_close_path(cr);
        break;
    case SL_MARKER_DIAMOND:
        cairo_move_to(cr, x, y - 1.1 * r);
        cairo_line_to(cr, x + 0.75 * r, y);
        cairo_line_to(cr, x, y + 1.1 * r);
        cairo_line_to(cr, x - 0.75 * r, y);
        cairo_close_path(cr);
        break;
    case SL_MARKER_PLUS:
        cairo_move_to(cr, x - r, y);
        cairo_line_to(cr, x + r, y);
        cairo_move_to(cr, x, y - r);
        cairo_line_to(cr, x, y + r);
        break;
    case SL_MARKER_CROSS:
        cairo_move_to(cr, x - 0.8 * r, y - 0.8 * r);
        cairo_line_to(cr, x + 0.8 * r, y + 0.8 * r);
        cairo_move_to(cr, x - 0.8 * r, y + 0.8 * r);
        cairo_line_to(cr, x + 0.8 * r, y - 0.8 * r);
        break;
    default:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
        break;
    }
}

static void draw_marker(cairo_t *cr, sl_marker mk, double x, double y, double d, sl_rgba c, double alpha)
{
    pl_set_rgba(cr, c, alpha);
    marker_path(cr, mk, x, y, d);
    if (mk == SL_MARKER_PLUS || mk == SL_MARKER_CROSS) {
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_line_width(cr, d / 5 < 1 ? 1 : d / 5);
        cairo_stroke(cr);
    } else {
        cairo_fill(cr);
    }
}

static sl_rgba mark_color(const pl_mark *m, size_t i)
{
    if (!m->cmapped) return m->st.color;
    return sl_cmap_eval(m->cmap, (m->c[i] - m->vmin) / (m->vmax - m->vmin));
}

/* Page coordinates of a mark's points (NaN where not drawable); caller frees. */
static int page_points(const sl_axes *ax, const double *x, const double *y, size_t n, double **px, double **py)
{
    *px = dup_array(NULL, n);
    *py = dup_array(NULL, n);
    if (!*px || !*py) {
        free(*px);
        free(*py);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (ok_x(ax, x[i]) && ok_y(ax, y[i])) {
            (*px)[i] = pl_px(ax, x[i]);
            (*py)[i] = pl_py(ax, y[i]);
        } else {
            (*px)[i] = (*py)[i] = NAN;
        }
    }
    return SL_OK;
}

/* ================================================================ drawing marks */
static void draw_line(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    double *px, *py;
    if (page_points(ax, m->x, m->y, m->n, &px, &py)) {
        pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
        return;
    }
    clip_rect r = slop_rect(ax);
    cairo_new_path(cr);
    polyline_path(cr, px, py, m->n, r);
    pl_set_rgba(cr, m->st.color, m->st.alpha);
    cairo_set_line_width(cr, m->st.linewidth);
    pl_set_dash(cr, m->st.dash, m->st.linewidth);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, m->st.dash == SL_DASH_SOLID ? CAIRO_LINE_CAP_ROUND : CAIRO_LINE_CAP_BUTT);
    cairo_stroke(cr);
    if (m->st.marker != SL_MARKER_NONE)
        for (size_t i = 0; i < m->n; i++)
            if (!isnan(px[i]) && px[i] >= r.x0 && px[i] <= r.x1 && py[i] >= r.y0 && py[i] <= r.y1)
                draw_marker(cr, m->st.marker, px[i], py[i], m->st.markersize, m->st.color, m->st.alpha);
    free(px);
    free(py);
}

static void draw_scatter(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    clip_rect r = slop_rect(ax);
    for (size_t i = 0; i < m->n; i++) {
        if (!ok_x(ax, m->x[i]) || !ok_y(ax, m->y[i])) continue;
        if (m->cmapped && !isfinite(m->c[i])) continue;
        double x = pl_px(ax, m->x[i]), y = pl_py(ax, m->y[i]);
        if (x < r.x0 || x > r.x1 || y < r.y0 || y > r.y1) continue;
        draw_marker(cr, m->st.marker, x, y, m->st.markersize, mark_color(m, i), m->st.alpha);
    }
}

static void draw_hist(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    if (m->nb == 0) return;
    /* one outline for all bars, so adjacent bars show no seams */
    size_t nv = 2 * (size_t)m->nb + 2;
    double *buf = dup_array(NULL, 2 * nv);
    if (!buf) {
        pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
        return;
    }
    double *vx = buf, *vy = buf + nv;
    double base = ax->y.log ? fmin(ax->y.lo, ax->y.hi) : 0;
    double yb = pl_py(ax, base);
    size_t k = 0;
    vx[k] = pl_px(ax, m->edges[0]);
    vy[k++] = yb;
    for (int i = 0; i < m->nb; i++) {
        double c = m->counts[i];
        double yc = (ax->y.log && c <= 0) ? yb : pl_py(ax, c);
        vx[k] = pl_px(ax, m->edges[i]);
        vy[k++] = yc;
        vx[k] = pl_px(ax, m->edges[i + 1]);
        vy[k++] = yc;
    }
    vx[k] = pl_px(ax, m->edges[m->nb]);
    vy[k++] = yb;
    cairo_new_path(cr);
    if (polygon_path(cr, vx, vy, k, slop_rect(ax))) pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    pl_set_rgba(cr, m->st.color, m->st.alpha);
    cairo_fill(cr);
    free(buf);
}

static void draw_band(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    double *buf = dup_array(NULL, 2 * (2 * m->n));
    if (!buf) {
        pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
        return;
    }
    double *vx = buf, *vy = buf + 2 * m->n;
    cairo_new_path(cr);
    /* one polygon per run of drawable points */
    size_t i = 0;
    while (i < m->n) {
        while (i < m->n && !(ok_x(ax, m->x[i]) && ok_y(ax, m->y[i]) && ok_y(ax, m->y2[i]))) i++;
        size_t a = i;
        while (i < m->n && ok_x(ax, m->x[i]) && ok_y(ax, m->y[i]) && ok_y(ax, m->y2[i])) i++;
        size_t len = i - a;
        if (len < 2) continue;
        for (size_t j = 0; j < len; j++) {
            vx[j] = pl_px(ax, m->x[a + j]);
            vy[j] = pl_py(ax, m->y2[a + j]);
            vx[2 * len - 1 - j] = vx[j];
            vy[2 * len - 1 - j] = pl_py(ax, m->y[a + j]);
        }
        if (polygon_path(cr, vx, vy, 2 * len, slop_rect(ax))) {
            pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
            break;
        }
    }
    pl_set_rgba(cr, m->st.color, m->st.alpha);
    cairo_set_fill_rule(cr, CAIRO_FILL_RULE_WINDING);
    cairo_fill(cr);
    free(buf);
}

static void stroke_style(cairo_t *cr, const pl_mark *m, double lw)
{
    pl_set_rgba(cr, m->st.color, m->st.alpha);
    cairo_set_line_width(cr, lw);
    pl_set_dash(cr, m->st.dash, m->st.linewidth);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_stroke(cr);
}

static void draw_refline(sl_axes *ax, const pl_mark *m, pl_ctx *ctx)
{
    cairo_t *cr = ctx->cr;
    double lw = m->st.linewidth;
    if (m->kind == PL_HLINE) {
        if (!ok_y(ax, m->py)) return;
        double y = pl_snap(ctx, pl_py(ax, m->py), lw);
        if (y < ax->by - CLIP_SLOP || y > ax->by + ax->bh + CLIP_SLOP) return;
        cairo_move_to(cr, ax->bx, y);
        cairo_line_to(cr, ax->bx + ax->bw, y);
    } else {
        if (!ok_x(ax, m->px)) return;
        double x = pl_snap(ctx, pl_px(ax, m->px), lw);
        if (x < ax->bx - CLIP_SLOP || x > ax->bx + ax->bw + CLIP_SLOP) return;
        cairo_move_to(cr, x, ax->by + ax->bh);
        cairo_line_to(cr, x, ax->by);
    }
    stroke_style(cr, m, lw);
}

static void draw_circle(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    /* a fine polygon in data space, so it is right on any scale; it starts
    ** at angle 0, (cx + r, cy), where the dash pattern begins */
    enum { N = 720 };
    double px[N + 1], py[N + 1];
    for (int i = 0; i <= N; i++) {
        double a = 2 * M_PI * i / N;
        double x = m->px + m->r * cos(a), y = m->py + m->r * sin(a);
        if (i == N) { x = m->px + m->r; y = m->py; }
        if (ok_x(ax, x) && ok_y(ax, y)) {
            px[i] = pl_px(ax, x);
            py[i] = pl_py(ax, y);
        } else {
            px[i] = py[i] = NAN;
        }
    }
    cairo_new_path(cr);
    polyline_path(cr, px, py, N + 1, slop_rect(ax));
    stroke_style(cr, m, m->st.linewidth);
}

static void draw_heatmap(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    /* Cells become an image, enlarged k times by repetition so that viewers
    ** that smooth images (some PDF readers, browsers showing SVG) keep the
    ** cell edges sharp; Cairo draws it with nearest-neighbour filtering. */
    int big = m->rows > m->cols ? m->rows : m->cols;
    int k = (int)ceil(1024.0 / big);
    while (k > 1 && (double)m->rows * m->cols * k * k > 4e6) k--;
    if (k < 1) k = 1;
    int w = m->cols * k, h = m->rows * k;
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        pl_fail(ax->fig, SL_ENOMEM, "plot: heatmap: cannot make a %d x %d image", w, h);
        return;
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int i = 0; i < m->rows; i++)
        for (int j = 0; j < m->cols; j++) {
            double v = m->c[(size_t)i * m->cols + j];
            uint32_t px = 0;        /* transparent for NaN */
            if (isfinite(v)) {
                sl_rgba c = sl_cmap_eval(m->cmap, (v - m->vmin) / (m->vmax - m->vmin));
                px = 0xff000000u | (uint32_t)lround(c.r * 255) << 16 | (uint32_t)lround(c.g * 255) << 8 |
                     (uint32_t)lround(c.b * 255);
            }
            for (int a = 0; a < k; a++) {
                uint32_t *row = (uint32_t *)(void *)(data + (size_t)(i * k + a) * stride);
                for (int b = 0; b < k; b++) row[j * k + b] = px;
            }
        }
    cairo_surface_mark_dirty(img);

    /* image corners on the page: cell (0, 0) spans [-0.5, 0.5] on both axes */
    double x0 = pl_px(ax, -0.5), x1 = pl_px(ax, m->cols - 0.5);
    double y0 = pl_py(ax, -0.5), y1 = pl_py(ax, m->rows - 0.5);
    clip_rect r = slop_rect(ax);
    double rx0 = fmax(fmin(x0, x1), r.x0), rx1 = fmin(fmax(x0, x1), r.x1);
    double ry0 = fmax(fmin(y0, y1), r.y0), ry1 = fmin(fmax(y0, y1), r.y1);
    if (rx0 < rx1 && ry0 < ry1 && x1 != x0 && y1 != y0) {
        cairo_save(cr);
        cairo_pattern_t *pat = cairo_pattern_create_for_surface(img);
        cairo_matrix_t mx;     /* page -> image pixels */
        cairo_matrix_init(&mx, w / (x1 - x0), 0, 0, h / (y1 - y0), -x0 * w / (x1 - x0), -y0 * h / (y1 - y0));
        cairo_pattern_set_matrix(pat, &mx);
        cairo_pattern_set_filter(pat, CAIRO_FILTER_NEAREST);
        cairo_pattern_set_extend(pat, CAIRO_EXTEND_PAD);
        cairo_set_source(cr, pat);
        cairo_rectangle(cr, rx0, ry0, rx1 - rx0, ry1 - ry0);
        cairo_fill(cr);
        cairo_pattern_destroy(pat);
        cairo_restore(cr);
    }
    cairo_surface_destroy(img);
}

static void draw_text(sl_axes *ax, const pl_mark *m, cairo_t *cr)
{
    double x, y;
    if (m->frac) {
        x = ax->bx + m->px * ax->bw;
        y = ax->by + (1 - m->py) * ax->bh;
    } else {
        if (!ok_x(ax, m->px) || !ok_y(ax, m->py)) return;
        x = pl_px(ax, m->px);
        y = pl_py(ax, m->py);
        if (fabs(x) > 1e6 || fabs(y) > 1e6) return;
    }
    pl_set_rgba(cr, m->st.color, m->st.alpha);
    pl_text_draw(cr, m->text, m->st.fontsize, x, y, m->anchor, 0);
}

void pl_mark_draw(sl_axes *ax, const pl_mark *m, pl_ctx *ctx)
{
    cairo_t *cr = ctx->cr;
    cairo_save(cr);
    cairo_new_path(cr);
    switch (m->kind) {
    case PL_LINE: draw_line(ax, m, cr); break;
    case PL_SCATTER: draw_scatter(ax, m, cr); break;
    case PL_HIST: draw_hist(ax, m, cr); break;
    case PL_HEATMAP: draw_heatmap(ax, m, cr); break;
    case PL_BAND: draw_band(ax, m, cr); break;
    case PL_HLINE:
    case PL_VLINE: draw_refline(ax, m, ctx); break;
    case PL_CIRCLE: draw_circle(ax, m, cr); break;
    case PL_TEXT: draw_text(ax, m, cr); break;
    }
    cairo_restore(cr);
}

/* ================================================================ legend support */
void pl_mark_handle(const pl_mark *m, pl_ctx *ctx, double x, double y, double w, double h)
{
    cairo_t *cr = ctx->cr;
    cairo_save(cr);
    cairo_new_path(cr);
    double ym = y + h / 2;
    switch (m->kind) {
    case PL_SCATTER: {
        sl_rgba c = m->cmapped ? sl_cmap_eval(m->cmap, 0.5) : m->st.color;
        draw_marker(cr, m->st.marker, x + w / 2, ym, m->st.markersize, c, m->st.alpha);
        break;
    }
    case PL_HIST:
    case PL_BAND:
        cairo_rectangle(cr, x, y + 0.15 * h, w, 0.7 * h);
        pl_set_rgba(cr, m->st.color, m->kind == PL_BAND ? fmax(m->st.alpha, 0.25) : m->st.alpha);
        cairo_fill(cr);
        break;
    case PL_LINE:
    case PL_HLINE:
    case PL_VLINE:
    case PL_CIRCLE:
        cairo_move_to(cr, x, ym);
        cairo_line_to(cr, x + w, ym);
        stroke_style(cr, m, m->st.linewidth);
        if (m->kind == PL_LINE && m->st.marker != SL_MARKER_NONE)
            draw_marker(cr, m->st.marker, x + w / 2, ym, m->st.markersize, m->st.color, m->st.alpha);
        break;
    default:
        break;
    }
    cairo_restore(cr);
}

static void count_point(double x, double y, double x0, double y0, double x1, double y1, double *count)
{
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1) *count += 1;
}

/* Points along a segment every few points, so long segments count too. */
static void count_segment(double ax0, double ay0, double ax1, double ay1, double x0, double y0, double x1, double y1,
                          double *count)
{
    if (isnan(ax0) || isnan(ax1) || isnan(ay0) || isnan(ay1)) return;
    if ((ax0 < x0 && ax1 < x0) || (ax0 > x1 && ax1 > x1) || (ay0 < y0 && ay1 < y0) || (ay0 > y1 && ay1 > y1)) return;
    double len = hypot(ax1 - ax0, ay1 - ay0);
    int n = (int)fmin(ceil(len / 4.0), 2000);
    for (int i = 1; i <= n; i++) {
        double t = (double)i / n;
        count_point(ax0 + t * (ax1 - ax0), ay0 + t * (ay1 - ay0), x0, y0, x1, y1, count);
    }
}

void pl_mark_count_inside(const sl_axes *ax, const pl_mark *m, double x0, double y0, double x1, double y1,
                          double *count)
{
    switch (m->kind) {
    case PL_LINE:
    case PL_SCATTER:
    case PL_BAND: {
        double prev[3][2] = {{NAN, NAN}, {NAN, NAN}, {NAN, NAN}};
        for (size_t i = 0; i < m->n; i++) {
            const double *ys[2] = {m->y, m->y2};
            for (int s = 0; s < (m->kind == PL_BAND ? 2 : 1); s++) {
                double px = NAN, py = NAN;
                if (ok_x(ax, m->x[i]) && ok_y(ax, ys[s][i])) {
                    px = pl_px(ax, m->x[i]);
                    py = pl_py(ax, ys[s][i]);
                    count_point(px, py, x0, y0, x1, y1, count);
                }
                if (m->kind != PL_SCATTER) count_segment(prev[s][0], prev[s][1], px, py, x0, y0, x1, y1, count);
                prev[s][0] = px;
                prev[s][1] = py;
            }
        }
        break;
    }
    case PL_HIST:
        for (int i = 0; i < m->nb; i++) {
            if (ax->y.log && m->counts[i] <= 0) continue;
            double yc = pl_py(ax, m->counts[i]);
            count_segment(pl_px(ax, m->edges[i]), yc, pl_px(ax, m->edges[i + 1]), yc, x0, y0, x1, y1, count);
            /* a bar under the legend is worse than a line: count its area */
            double bx0 = fmax(pl_px(ax, m->edges[i]), x0), bx1 = fmin(pl_px(ax, m->edges[i + 1]), x1);
            double by0 = fmax(yc, y0), by1 = y1;
            if (bx0 < bx1 && by0 < by1) *count += (bx1 - bx0) * (by1 - by0) / 16.0;
        }
        break;
    case PL_CIRCLE: {
        double px0 = NAN, py0 = NAN;
        for (int i = 0; i <= 90; i++) {
            double a = 2 * M_PI * i / 90;
            double x = m->px + m->r * cos(a), y = m->py + m->r * sin(a);
            double px = NAN, py = NAN;
            if (ok_x(ax, x) && ok_y(ax, y)) { px = pl_px(ax, x); py = pl_py(ax, y); }
            count_segment(px0, py0, px, py, x0, y0, x1, y1, count);
            px0 = px;
            py0 = py;
        }
        break;
    }
    default:
        break;
    }
}
