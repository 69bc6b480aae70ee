/*
** Axes: settings, limits, the data-to-page transform, tick selection with
** overlap checks, the margins an axes needs, and drawing of everything that
** is not a mark (spines, ticks, labels, title, legend, colourbar).
**
** Limits. Fixed sides stay as given; automatic ones are the data range plus
** 5% of it (in log10 units on a log axis), except at "sticky" edges such as
** a histogram's zero or a heatmap's border, which get no margin. Equal aspect
** widens the automatic axis (or, when both are fixed, narrows the box) so
** one data unit has the same length on both axes.
**
** Ticks. The target count follows the axis length (about one per 50 pt on x,
** 30 pt on y); if any two labels would overlap (x: their widths plus a gap;
** y: their heights) the target drops by one and the ticks are chosen again,
** down to two. Log axes thin their labelled decades the same way.
*/
#include "plot_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ================================================================ settings */
static int set_str(sl_axes *ax, char **dst, const char *s)
{
    if (!ax || !ax->fig) return SL_EINVAL;
    char *c = NULL;
    if (s && !(c = sl_strdup(s))) return pl_fail(ax->fig, SL_ENOMEM, "plot: out of memory");
    free(*dst);
    *dst = c;
    pl_invalidate(ax->fig);
    return SL_OK;
}

int sl_axes_title(sl_axes *ax, const char *t) { return ax ? set_str(ax, &ax->title, t) : SL_EINVAL; }
int sl_axes_xlabel(sl_axes *ax, const char *t) { return ax ? set_str(ax, &ax->x.label, t) : SL_EINVAL; }
int sl_axes_ylabel(sl_axes *ax, const char *t) { return ax ? set_str(ax, &ax->y.label, t) : SL_EINVAL; }

static int set_lim(sl_axes *ax, pl_axis *a, double lo, double hi, const char *name)
{
    if (isinf(lo) || isinf(hi) || (!isnan(lo) && !isnan(hi) && !(lo < hi)))
        return pl_fail(ax->fig, SL_EINVAL, "plot: %slim: need lo < hi (finite, or NaN for automatic), got %g, %g", name,
                       lo, hi);
    a->fix_lo = lo;
    a->fix_hi = hi;
    pl_invalidate(ax->fig);
    return SL_OK;
}

int sl_axes_xlim(sl_axes *ax, double lo, double hi) { return ax ? set_lim(ax, &ax->x, lo, hi, "x") : SL_EINVAL; }
int sl_axes_ylim(sl_axes *ax, double lo, double hi) { return ax ? set_lim(ax, &ax->y, lo, hi, "y") : SL_EINVAL; }

static int set_flag(sl_axes *ax, int *flag, int on)
{
    if (!ax) return SL_EINVAL;
    *flag = on != 0;
    pl_invalidate(ax->fig);
    return SL_OK;
}

int sl_axes_xlog(sl_axes *ax, int on) { return ax ? set_flag(ax, &ax->x.log, on) : SL_EINVAL; }
int sl_axes_ylog(sl_axes *ax, int on) { return ax ? set_flag(ax, &ax->y.log, on) : SL_EINVAL; }
int sl_axes_equal_aspect(sl_axes *ax, int on) { return ax ? set_flag(ax, &ax->equal, on) : SL_EINVAL; }
int sl_axes_grid(sl_axes *ax, int on) { return ax ? set_flag(ax, &ax->grid, on) : SL_EINVAL; }

int sl_axes_legend(sl_axes *ax, sl_legend_loc loc)
{
    if (!ax) return SL_EINVAL;
    if ((int)loc < 0 || loc > SL_LEGEND_LOWER_RIGHT) return pl_fail(ax->fig, SL_EINVAL, "plot: unknown legend place");
    ax->legend = loc;
    pl_invalidate(ax->fig);
    return SL_OK;
}

/* ================================================================ transform */
double pl_tx(const pl_axis *a, double v) { return a->log ? log10(v) : v; }
static double pl_itx(const pl_axis *a, double t) { return a->log ? pow(10.0, t) : t; }

/* Fraction of the way from lo to hi. */
static double axis_frac(const pl_axis *a, double v)
{
    double tlo = pl_tx(a, a->lo), thi = pl_tx(a, a->hi);
    return (pl_tx(a, v) - tlo) / (thi - tlo);
}

double pl_px(const sl_axes *ax, double x) { return ax->bx + axis_frac(&ax->x, x) * ax->bw; }

double pl_py(const sl_axes *ax, double y)
{
    double f = axis_frac(&ax->y, y);
    return ax->y.inverted ? ax->by + f * ax->bh : ax->by + (1 - f) * ax->bh;
}

double pl_snap(const pl_ctx *ctx, double v, double lw)
{
    if (ctx->scale <= 0) return v;
    double d = v * ctx->scale;
    long w = lround(lw * ctx->scale);
    if (w < 1) w = 1;
    d = (w % 2) ? floor(d) + 0.5 : round(d);
    return d / ctx->scale;
}

/* Line width rounded to whole device pixels when rasterising. */
static double hairline(const pl_ctx *ctx, double lw)
{
    if (ctx->scale <= 0) return lw;
    double w = round(lw * ctx->scale);
    if (w < 1) w = 1;
    return w / ctx->scale;
}

int sl_axes_data_to_device(sl_axes *ax, double x, double y, double dpi, double *px, double *py)
{
    if (!ax || !ax->fig || !px || !py) return SL_EINVAL;
    int rc = pl_layout(ax->fig);
    if (rc) return rc;
    if (dpi <= 0) dpi = 150;
    *px = pl_px(ax, x) * dpi / 72.0;
    *py = pl_py(ax, y) * dpi / 72.0;
    return SL_OK;
}

static const pl_mark *cbar_mark(const sl_axes *ax);

int sl_axes_get_limits(sl_axes *ax, sl_axis_id which, double *lo, double *hi)
{
    if (!ax || !ax->fig || !lo || !hi) return SL_EINVAL;
    int rc = pl_layout(ax->fig);
    if (rc) return rc;
    if (which == SL_AXIS_X) { *lo = ax->x.lo; *hi = ax->x.hi; }
    else if (which == SL_AXIS_Y) { *lo = ax->y.lo; *hi = ax->y.hi; }
    else if (which == SL_AXIS_COLORBAR && cbar_mark(ax)) { *lo = cbar_mark(ax)->vmin; *hi = cbar_mark(ax)->vmax; }
    else return SL_EINVAL;
    return SL_OK;
}

int sl_axes_get_ticks(sl_axes *ax, sl_axis_id which, sl_ticks *out)
{
    if (!ax || !ax->fig || !out) return SL_EINVAL;
    int rc = pl_layout(ax->fig);
    if (rc) return rc;
    if (which == SL_AXIS_X) *out = ax->x.ticks;
    else if (which == SL_AXIS_Y) *out = ax->y.ticks;
    else if (which == SL_AXIS_COLORBAR && cbar_mark(ax)) *out = ax->cbar_ticks;
    else return SL_EINVAL;
    return SL_OK;
}

/* ================================================================ limits */
static void axis_reset(sl_axes *ax, int which)
{
    pl_axis *a = which ? &ax->y : &ax->x;
    double lo = INFINITY, hi = -INFINITY;
    int slo = 0, shi = 0;
    for (size_t i = 0; i < ax->nmarks; i++) {
        double l, h;
        int sl, sh;
        if (!pl_mark_extent(ax, &ax->marks[i], which, &l, &h, &sl, &sh)) continue;
        if (l < lo) { lo = l; slo = sl; } else if (l == lo) slo |= sl;
        if (h > hi) { hi = h; shi = sh; } else if (h == hi) shi |= sh;
    }
    double tlo, thi;
    if (lo > hi) {                      /* no data */
        tlo = 0;
        thi = 1;
        slo = shi = 1;
    } else {
        tlo = pl_tx(a, lo);
        thi = pl_tx(a, hi);
        if (thi - tlo <= 1e-12 * fmax(fabs(tlo), fabs(thi))) {
            double d = a->log ? 0.5 : (tlo == 0 ? 0.5 : 0.1 * fabs(tlo));
            tlo -= d;
            thi += d;
            slo = shi = 0;
        }
        double span = thi - tlo;
        if (!slo) tlo -= PL_MARGIN_FRAC * span;
        if (!shi) thi += PL_MARGIN_FRAC * span;
    }
    double span = thi - tlo;
    int flo = isfinite(a->fix_lo) && (!a->log || a->fix_lo > 0);
    int fhi = isfinite(a->fix_hi) && (!a->log || a->fix_hi > 0);
    if (flo) tlo = pl_tx(a, a->fix_lo);
    if (fhi) thi = pl_tx(a, a->fix_hi);
    if (!(tlo < thi)) {                 /* a fixed side beyond the automatic other side */
        if (flo && !fhi) thi = tlo + span;
        else tlo = thi - span;
    }
    a->lo = pl_itx(a, tlo);
    a->hi = pl_itx(a, thi);
}

void pl_axes_reset(sl_axes *ax)
{
    axis_reset(ax, 0);
    axis_reset(ax, 1);
}

static int axis_auto(const pl_axis *a) { return isnan(a->fix_lo) && isnan(a->fix_hi); }

void pl_axes_fit_box(sl_axes *ax, double x, double y, double w, double h)
{
    ax->bx = x;
    ax->by = y;
    ax->bw = w;
    ax->bh = h;
    if (!ax->equal || ax->x.log || ax->y.log) return;
    double sx = (ax->x.hi - ax->x.lo) / w, sy = (ax->y.hi - ax->y.lo) / h;   /* data units per point */
    if (sx < sy) {
        if (axis_auto(&ax->x)) {
            double c = (ax->x.lo + ax->x.hi) / 2, half = sy * w / 2;
            ax->x.lo = c - half;
            ax->x.hi = c + half;
        } else {
            double nw = (ax->x.hi - ax->x.lo) / sy;
            ax->bx += (w - nw) / 2;
            ax->bw = nw;
        }
    } else if (sy < sx) {
        if (axis_auto(&ax->y)) {
            double c = (ax->y.lo + ax->y.hi) / 2, half = sx * h / 2;
            ax->y.lo = c - half;
            ax->y.hi = c + half;
        } else {
            double nh = (ax->y.hi - ax->y.lo) / sx;
            ax->by += (h - nh) / 2;
            ax->bh = nh;
        }
    }
}

/* ================================================================ ticks */
static void tick_label_ext(cairo_t *mcr, const char *label, pl_text_ext *e)
{
    char buf[3 * SL_TICK_LABEL_MAX];
    pl_minus(label, buf, sizeof buf);
    pl_text_measure(mcr, buf, PL_FONT_TICK, e);
}

/* 1 when no two labels of t overlap on an axis of the given length. */
static int ticks_fit(const sl_ticks *t, double lo, double hi, int log, double length, int is_x, cairo_t *mcr)
{
    pl_axis a = {.log = log, .lo = lo, .hi = hi};
    double prev_pos = 0, prev_half = 0;
    for (int i = 0; i < t->n; i++) {
        pl_text_ext e;
        tick_label_ext(mcr, t->label[i], &e);
        double pos = axis_frac(&a, t->v[i]) * length;
        double half = is_x ? e.width / 2 + 0.25 * PL_FONT_TICK : (e.ascent + e.descent) / 2 + 0.75;
        if (i > 0 && fabs(pos - prev_pos) < prev_half + half) return 0;
        prev_pos = pos;
        prev_half = half;
    }
    return 1;
}

/* Keep the ticks inside [lo, hi] (up to rounding). */
static void keep_inside(sl_ticks *t, const double *v, int n, double lo, double hi)
{
    double a = fmin(lo, hi), b = fmax(lo, hi), eps = 1e-9 * (b - a);
    t->n = 0;
    for (int i = 0; i < n && t->n < SL_TICKS_MAX; i++)
        if (v[i] >= a - eps && v[i] <= b + eps) t->v[t->n++] = v[i];
}

static int linear_ticks(double lo, double hi, double m, int index_n, sl_ticks *t)
{
    double v[SL_TICKS_MAX];
    int n;
    if (index_n > 0) {
        /* integer positions only (matrix rows and columns) */
        double tmp[SL_TICKS_MAX];
        int k = index_n > 1 ? sl_ticks_extended(0, index_n - 1, m, 0, tmp, SL_TICKS_MAX) : 1;
        double step = k >= 2 ? tmp[1] - tmp[0] : 1;
        step = step < 1 ? 1 : round(step);
        n = 0;
        for (double x = 0; x <= index_n - 1 && n < SL_TICKS_MAX; x += step) v[n++] = x;
    } else {
        n = sl_ticks_extended(lo, hi, m, 0, v, SL_TICKS_MAX);
        if (n < 0) return n;
    }
    memset(t, 0, sizeof *t);
    keep_inside(t, v, n, lo, hi);
    return sl_ticks_format(t);
}

/* Choose ticks for axis a drawn length points long. */
static int choose_ticks(const pl_axis *a, double length, int is_x, cairo_t *mcr, sl_ticks *out)
{
    double lo = a->lo, hi = a->hi;
    if (a->log) {
        int maxl = (int)floor(length / (is_x ? 30.0 : 20.0));
        if (maxl < 2) maxl = 2;
        for (;; maxl--) {
            int rc = sl_ticks_log(fmin(lo, hi), fmax(lo, hi), maxl, out);
            if (rc) return rc;
            if (ticks_fit(out, lo, hi, 1, length, is_x, mcr)) return SL_OK;
            if (maxl <= 2) {
                /* even two labels collide on this short axis: keep one */
                int mid = out->n / 2;
                if (out->n > 1) {
                    out->v[0] = out->v[mid];
                    memcpy(out->label[0], out->label[mid], SL_TICK_LABEL_MAX);
                    out->n = 1;
                }
                return SL_OK;
            }
        }
    }
    double m0 = length / (is_x ? 50.0 : 30.0);
    if (m0 > 10) m0 = 10;
    if (m0 < 2) m0 = 2;
    /* fewer ticks until the labels fit; on a short axis the labelling may
    ** then hold a single tick inside the limits, so try more, denser ones */
    for (double m = m0; m >= 2; m -= 1) {
        int rc = linear_ticks(fmin(lo, hi), fmax(lo, hi), m, a->index_n, out);
        if (rc) return rc;
        if (out->n >= 2 && ticks_fit(out, lo, hi, 0, length, is_x, mcr)) return SL_OK;
    }
    for (double m = floor(m0) + 1; m <= 12; m += 1) {
        int rc = linear_ticks(fmin(lo, hi), fmax(lo, hi), m, a->index_n, out);
        if (rc) return rc;
        if (out->n >= 2 && ticks_fit(out, lo, hi, 0, length, is_x, mcr)) return SL_OK;
    }
    /* Extended Wilkinson favours covering the data, so on a short axis its
    ** sparse labellings lie partly outside; walk the nice steps upwards and
    ** take the first whose multiples inside the limits fit. */
    double a0 = fmin(lo, hi), a1 = fmax(lo, hi);
    static const double nice[] = {1, 2, 2.5, 5};
    for (int z = (int)floor(log10((a1 - a0) / 10)); z <= (int)ceil(log10(a1 - a0)); z++)
        for (int k = 0; k < 4; k++) {
            double step = nice[k] * pow(10.0, z);
            if (a->index_n > 0 && (step < 1 || step != floor(step))) continue;
            double first = ceil(a0 / step - 1e-9);
            double v[SL_TICKS_MAX];
            int n = 0;
            for (double i = first; i * step <= a1 * (1 + 1e-12) + 1e-12 * (a1 - a0) && n < SL_TICKS_MAX; i += 1)
                v[n++] = i * step;
            if (n < 2) continue;
            memset(out, 0, sizeof *out);
            keep_inside(out, v, n, a0, a1);
            int rc = sl_ticks_format(out);
            if (rc) return rc;
            if (out->n >= 2 && ticks_fit(out, lo, hi, 0, length, is_x, mcr)) return SL_OK;
        }
    /* no two labels fit (long labels on a very short axis): one tick, at
    ** the roundest number inside the limits */
    memset(out, 0, sizeof *out);
    for (int z = (int)ceil(log10(a1 - a0)) + 1; z >= (int)floor(log10(a1 - a0)) - 2 && out->n == 0; z--)
        for (int k = 0; k < 4 && out->n == 0; k++) {
            double step = nice[3 - k] * pow(10.0, z);
            double v = ceil(a0 / step - 1e-9) * step;
            if (v <= a1 + 1e-12 * (a1 - a0)) {
                out->n = 1;
                out->v[0] = v;
            }
        }
    return sl_ticks_format(out);
}

static const pl_mark *cbar_mark(const sl_axes *ax)
{
    return ax->cbar_mark >= 0 && (size_t)ax->cbar_mark < ax->nmarks ? &ax->marks[ax->cbar_mark] : NULL;
}

/* Ticks at the multiples of step inside a's limits; 0 when fewer than two. */
static int multiples(const pl_axis *a, double step, sl_ticks *t)
{
    double lo = fmin(a->lo, a->hi), hi = fmax(a->lo, a->hi);
    double v[SL_TICKS_MAX];
    int n = 0;
    for (double i = ceil(lo / step - 1e-9); i * step <= hi + 1e-9 * step && n < SL_TICKS_MAX; i += 1)
        v[n++] = i * step;
    if (n < 2) return 0;
    memset(t, 0, sizeof *t);
    keep_inside(t, v, n, lo, hi);
    return t->n >= 2 && sl_ticks_format(t) == SL_OK;
}

/* On equal-aspect axes one step serves both (the larger), so the grid of
** ticks is square, as the data are. */
static void same_step(sl_axes *ax, cairo_t *mcr)
{
    sl_ticks *tx = &ax->x.ticks, *ty = &ax->y.ticks;
    if (!ax->equal || ax->x.log || ax->y.log || ax->x.index_n || ax->y.index_n || tx->n < 2 || ty->n < 2) return;
    double sx = tx->v[1] - tx->v[0], sy = ty->v[1] - ty->v[0];
    if (fabs(sx - sy) <= 1e-9 * fmax(sx, sy)) return;
    double step = fmax(sx, sy);
    sl_ticks nx, ny;
    if (!multiples(&ax->x, step, &nx) || !multiples(&ax->y, step, &ny)) return;
    if (!ticks_fit(&nx, ax->x.lo, ax->x.hi, 0, ax->bw, 1, mcr) || !ticks_fit(&ny, ax->y.lo, ax->y.hi, 0, ax->bh, 0, mcr))
        return;
    *tx = nx;
    *ty = ny;
}

int pl_axes_ticks(sl_axes *ax, cairo_t *mcr)
{
    int rc = choose_ticks(&ax->x, ax->bw, 1, mcr, &ax->x.ticks);
    if (!rc) rc = choose_ticks(&ax->y, ax->bh, 0, mcr, &ax->y.ticks);
    if (!rc) same_step(ax, mcr);
    const pl_mark *cm = cbar_mark(ax);
    if (!rc && cm) {
        pl_axis a = {.lo = cm->vmin, .hi = cm->vmax, .fix_lo = NAN, .fix_hi = NAN};
        rc = choose_ticks(&a, ax->bh, 0, mcr, &ax->cbar_ticks);
    }
    if (rc) return pl_fail(ax->fig, rc, "plot: cannot place ticks");
    return SL_OK;
}

/* ================================================================ margins */
static double line_h(double size) { return (PL_ASCENT + PL_DESCENT) * size; }

static void exponent_text(int e, char *buf, size_t n)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "\xc3\x97" "10^{%d}", e);   /* "×10^{e}" */
    pl_minus(tmp, buf, n);
}

typedef struct tick_dims {
    double max_w, max_h;            /* largest label */
    double first_over, last_over;   /* how far the first/last label sticks out past the axis ends */
} tick_dims;

static tick_dims measure_ticks(const sl_ticks *t, const pl_axis *a, double length, int is_x, cairo_t *mcr)
{
    tick_dims d = {0, 0, 0, 0};
    pl_axis geo = *a;
    for (int i = 0; i < t->n; i++) {
        pl_text_ext e;
        tick_label_ext(mcr, t->label[i], &e);
        d.max_w = fmax(d.max_w, e.width);
        d.max_h = fmax(d.max_h, e.ascent + e.descent);
        double pos = axis_frac(&geo, t->v[i]) * length;
        double half = is_x ? e.width / 2 : (e.ascent + e.descent) / 2;
        d.first_over = fmax(d.first_over, half - pos);
        d.last_over = fmax(d.last_over, pos + half - length);
    }
    if (t->n == 0) d.max_h = line_h(PL_FONT_TICK);
    return d;
}

static double cbar_block_width(const sl_axes *ax, cairo_t *mcr)
{
    if (!cbar_mark(ax)) return 0;
    double w = 0;
    for (int i = 0; i < ax->cbar_ticks.n; i++) {
        pl_text_ext e;
        tick_label_ext(mcr, ax->cbar_ticks.label[i], &e);
        w = fmax(w, e.width);
    }
    double b = PL_CBAR_PAD + PL_CBAR_W + PL_TICK_MAJOR + PL_TICK_PAD + w;
    if (ax->cbar_label) b += PL_LABEL_PAD + line_h(PL_FONT_BASE);
    return b;
}

void pl_axes_margins(sl_axes *ax, cairo_t *mcr)
{
    tick_dims xd = measure_ticks(&ax->x.ticks, &ax->x, ax->bw, 1, mcr);
    tick_dims yd = measure_ticks(&ax->y.ticks, &ax->y, ax->bh, 0, mcr);
    /* y positions count from the bottom unless the axis is inverted */
    double ytop_over = ax->y.inverted ? yd.first_over : yd.last_over;
    double ybot_over = ax->y.inverted ? yd.last_over : yd.first_over;

    double left = (ax->y.label ? line_h(PL_FONT_BASE) + PL_LABEL_PAD : 0) + yd.max_w + PL_TICK_PAD + PL_TICK_MAJOR;
    left = fmax(left, xd.first_over);
    double bottom = (ax->x.label ? line_h(PL_FONT_BASE) + PL_LABEL_PAD : 0) + xd.max_h + PL_TICK_PAD + PL_TICK_MAJOR;
    if (ax->x.ticks.exponent && !ax->x.label) bottom += line_h(PL_FONT_TICK) + 2;
    bottom = fmax(bottom, ybot_over);
    double top = ytop_over;
    if (ax->title) top = fmax(top, line_h(PL_FONT_TITLE) + PL_TITLE_PAD);
    if (ax->y.ticks.exponent || (cbar_mark(ax) && ax->cbar_ticks.exponent))
        top = fmax(top, line_h(PL_FONT_TICK) + 4);
    double right = fmax(xd.last_over, cbar_block_width(ax, mcr));
    ax->want[0] = PL_OUTER_PAD + left;
    ax->want[1] = PL_OUTER_PAD + right;
    ax->want[2] = PL_OUTER_PAD + top;
    ax->want[3] = PL_OUTER_PAD + bottom;
}

/* ================================================================ drawing */
static void set_black(cairo_t *cr) { cairo_set_source_rgb(cr, 0, 0, 0); }

static void draw_tick_label(cairo_t *cr, const char *label, double x, double y, sl_anchor anchor)
{
    char buf[3 * SL_TICK_LABEL_MAX];
    pl_minus(label, buf, sizeof buf);
    pl_text_draw(cr, buf, PL_FONT_TICK, x, y, anchor, 0);
}

static void draw_grid(sl_axes *ax, pl_ctx *ctx)
{
    cairo_t *cr = ctx->cr;
    double lw = hairline(ctx, 0.6);
    cairo_save(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_source_rgb(cr, 0xb0 / 255.0, 0xb0 / 255.0, 0xb0 / 255.0);
    for (int i = 0; i < ax->x.ticks.n; i++) {
        double x = pl_snap(ctx, pl_px(ax, ax->x.ticks.v[i]), lw);
        cairo_move_to(cr, x, ax->by);
        cairo_line_to(cr, x, ax->by + ax->bh);
    }
    for (int i = 0; i < ax->y.ticks.n; i++) {
        double y = pl_snap(ctx, pl_py(ax, ax->y.ticks.v[i]), lw);
        cairo_move_to(cr, ax->bx, y);
        cairo_line_to(cr, ax->bx + ax->bw, y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

static void draw_spines_ticks(sl_axes *ax, pl_ctx *ctx)
{
    cairo_t *cr = ctx->cr;
    double lw = hairline(ctx, PL_SPINE_W), mlw = hairline(ctx, 0.6);
    double x0 = pl_snap(ctx, ax->bx, lw), x1 = pl_snap(ctx, ax->bx + ax->bw, lw);
    double y0 = pl_snap(ctx, ax->by, lw), y1 = pl_snap(ctx, ax->by + ax->bh, lw);
    cairo_save(cr);
    set_black(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
    cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
    cairo_stroke(cr);

    /* major ticks, outwards on the bottom and left */
    for (int i = 0; i < ax->x.ticks.n; i++) {
        double x = pl_snap(ctx, pl_px(ax, ax->x.ticks.v[i]), lw);
        cairo_move_to(cr, x, y1);
        cairo_line_to(cr, x, y1 + PL_TICK_MAJOR);
    }
    for (int i = 0; i < ax->y.ticks.n; i++) {
        double y = pl_snap(ctx, pl_py(ax, ax->y.ticks.v[i]), lw);
        cairo_move_to(cr, x0, y);
        cairo_line_to(cr, x0 - PL_TICK_MAJOR, y);
    }
    cairo_stroke(cr);
    cairo_set_line_width(cr, mlw);
    for (int i = 0; i < ax->x.ticks.nminor; i++) {
        double x = pl_snap(ctx, pl_px(ax, ax->x.ticks.minor[i]), mlw);
        if (x < ax->bx - 0.01 || x > ax->bx + ax->bw + 0.01) continue;
        cairo_move_to(cr, x, y1);
        cairo_line_to(cr, x, y1 + PL_TICK_MINOR);
    }
    for (int i = 0; i < ax->y.ticks.nminor; i++) {
        double y = pl_snap(ctx, pl_py(ax, ax->y.ticks.minor[i]), mlw);
        if (y < ax->by - 0.01 || y > ax->by + ax->bh + 0.01) continue;
        cairo_move_to(cr, x0, y);
        cairo_line_to(cr, x0 - PL_TICK_MINOR, y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

static void draw_labels(sl_axes *ax, pl_ctx *ctx, cairo_t *mcr)
{
    cairo_t *cr = ctx->cr;
    tick_dims xd = measure_ticks(&ax->x.ticks, &ax->x, ax->bw, 1, mcr);
    tick_dims yd = measure_ticks(&ax->y.ticks, &ax->y, ax->bh, 0, mcr);
    double bottom = ax->by + ax->bh, left = ax->bx;
    cairo_save(cr);
    set_black(cr);
    for (int i = 0; i < ax->x.ticks.n; i++)
        draw_tick_label(cr, ax->x.ticks.label[i], pl_px(ax, ax->x.ticks.v[i]), bottom + PL_TICK_MAJOR + PL_TICK_PAD,
                        SL_ANCHOR_N);
    for (int i = 0; i < ax->y.ticks.n; i++)
        draw_tick_label(cr, ax->y.ticks.label[i], left - PL_TICK_MAJOR - PL_TICK_PAD, pl_py(ax, ax->y.ticks.v[i]),
                        SL_ANCHOR_E);
    char buf[64];
    double xlab_y = bottom + PL_TICK_MAJOR + PL_TICK_PAD + xd.max_h + PL_LABEL_PAD;
    if (ax->x.ticks.exponent) {
        exponent_text(ax->x.ticks.exponent, buf, sizeof buf);
        pl_text_draw(cr, buf, PL_FONT_TICK, ax->bx + ax->bw, bottom + PL_TICK_MAJOR + PL_TICK_PAD + xd.max_h + 2,
                     SL_ANCHOR_NE, 0);
    }
    if (ax->y.ticks.exponent) {
        exponent_text(ax->y.ticks.exponent, buf, sizeof buf);
        pl_text_draw(cr, buf, PL_FONT_TICK, ax->bx, ax->by - 4, SL_ANCHOR_SW, 0);
    }
    if (ax->x.label) pl_text_draw(cr, ax->x.label, PL_FONT_BASE, ax->bx + ax->bw / 2, xlab_y, SL_ANCHOR_N, 0);
    if (ax->y.label)
        pl_text_draw(cr, ax->y.label, PL_FONT_BASE, left - PL_TICK_MAJOR - PL_TICK_PAD - yd.max_w - PL_LABEL_PAD,
                     ax->by + ax->bh / 2, SL_ANCHOR_S, M_PI / 2);
    if (ax->title) pl_text_draw(cr, ax->title, PL_FONT_TITLE, ax->bx + ax->bw / 2, ax->by - PL_TITLE_PAD, SL_ANCHOR_S, 0);
    cairo_restore(cr);
}

static void draw_colorbar(sl_axes *ax, pl_ctx *ctx, cairo_t *mcr)
{
    const pl_mark *cm = cbar_mark(ax);
    if (!cm) return;
    cairo_t *cr = ctx->cr;
    double lw = hairline(ctx, PL_SPINE_W);
    double x0 = ax->bx + ax->bw + PL_CBAR_PAD, y0 = ax->by, h = ax->bh;
    double sx0 = pl_snap(ctx, x0, lw), sx1 = pl_snap(ctx, x0 + PL_CBAR_W, lw);
    double sy0 = pl_snap(ctx, y0, lw), sy1 = pl_snap(ctx, y0 + h, lw);
    cairo_save(cr);
    cairo_pattern_t *g = cairo_pattern_create_linear(0, sy1, 0, sy0);
    for (int i = 0; i < 256; i++) {
        sl_rgba c = sl_cmap_eval(cm->cmap, (i + 0.5) / 256.0);
        cairo_pattern_add_color_stop_rgb(g, i / 255.0, c.r, c.g, c.b);
    }
    cairo_set_source(cr, g);
    cairo_rectangle(cr, sx0, sy0, sx1 - sx0, sy1 - sy0);
    cairo_fill(cr);
    cairo_pattern_destroy(g);

    set_black(cr);
    cairo_set_line_width(cr, lw);
    cairo_rectangle(cr, sx0, sy0, sx1 - sx0, sy1 - sy0);
    cairo_stroke(cr);
    const sl_ticks *t = &ax->cbar_ticks;
    double wmax = 0;
    for (int i = 0; i < t->n; i++) {
        double y = y0 + h - (t->v[i] - cm->vmin) / (cm->vmax - cm->vmin) * h;
        double ys = pl_snap(ctx, y, lw);
        cairo_move_to(cr, sx1, ys);
        cairo_line_to(cr, sx1 + PL_TICK_MAJOR, ys);
        cairo_stroke(cr);
        draw_tick_label(cr, t->label[i], sx1 + PL_TICK_MAJOR + PL_TICK_PAD, y, SL_ANCHOR_W);
        pl_text_ext e;
        tick_label_ext(mcr, t->label[i], &e);
        wmax = fmax(wmax, e.width);
    }
    char buf[64];
    if (t->exponent) {
        exponent_text(t->exponent, buf, sizeof buf);
        pl_text_draw(cr, buf, PL_FONT_TICK, x0, y0 - 4, SL_ANCHOR_SW, 0);
    }
    if (ax->cbar_label)
        pl_text_draw(cr, ax->cbar_label, PL_FONT_BASE, sx1 + PL_TICK_MAJOR + PL_TICK_PAD + wmax + PL_LABEL_PAD,
                     y0 + h / 2, SL_ANCHOR_N, M_PI / 2);
    cairo_restore(cr);
}

/* ------------------------------------------------------------ legend */
static void draw_legend(sl_axes *ax, pl_ctx *ctx, cairo_t *mcr)
{
    if (ax->legend == SL_LEGEND_NONE) return;
    int n = 0;
    double tw = 0;
    for (size_t i = 0; i < ax->nmarks; i++)
        if (ax->marks[i].label && ax->marks[i].kind != PL_TEXT && ax->marks[i].kind != PL_HEATMAP) {
            pl_text_ext e;
            pl_text_measure(mcr, ax->marks[i].label, PL_FONT_LEGEND, &e);
            tw = fmax(tw, e.width);
            n++;
        }
    if (n < 2) return;      /* a legend only says something with several series */
    const double fs = PL_FONT_LEGEND, pad = 0.4 * fs, hl = 2.0 * fs, hp = 0.8 * fs, rowh = line_h(fs),
                 sp = 0.5 * fs, inset = 0.5 * fs;
    double w = 2 * pad + hl + hp + tw, h = 2 * pad + n * rowh + (n - 1) * sp;

    /* candidate places, in matplotlib's order of preference */
    double L = ax->bx + inset, R = ax->bx + ax->bw - inset - w, C = ax->bx + (ax->bw - w) / 2;
    double T = ax->by + inset, B = ax->by + ax->bh - inset - h, M = ax->by + (ax->bh - h) / 2;
    double cand[8][2] = {{R, T}, {L, T}, {L, B}, {R, B}, {R, M}, {L, M}, {C, B}, {C, T}};
    int nc = 8, best = 0;
    if (ax->legend == SL_LEGEND_UPPER_RIGHT) best = 0;
    else if (ax->legend == SL_LEGEND_UPPER_LEFT) best = 1;
    else if (ax->legend == SL_LEGEND_LOWER_LEFT) best = 2;
    else if (ax->legend == SL_LEGEND_LOWER_RIGHT) best = 3;
    else {
        double best_count = INFINITY;
        for (int c = 0; c < nc; c++) {
            double count = 0;
            for (size_t i = 0; i < ax->nmarks; i++)
                pl_mark_count_inside(ax, &ax->marks[i], cand[c][0], cand[c][1], cand[c][0] + w, cand[c][1] + h, &count);
            if (count < best_count) {
                best_count = count;
                best = c;
            }
        }
    }
    double x = cand[best][0], y = cand[best][1];
    cairo_t *cr = ctx->cr;
    cairo_save(cr);
    /* frame: rounded, white at 80%, light grey edge */
    double r = 0.2 * fs, lw = hairline(ctx, 0.8);
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + w - r, y + r, r, -M_PI / 2, 0);
    cairo_arc(cr, x + w - r, y + h - r, r, 0, M_PI / 2);
    cairo_arc(cr, x + r, y + h - r, r, M_PI / 2, M_PI);
    cairo_arc(cr, x + r, y + r, r, M_PI, 3 * M_PI / 2);
    cairo_close_path(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, lw);
    cairo_stroke(cr);
    int row = 0;
    for (size_t i = 0; i < ax->nmarks; i++) {
        const pl_mark *m = &ax->marks[i];
        if (!m->label || m->kind == PL_TEXT || m->kind == PL_HEATMAP) continue;
        double ry = y + pad + row * (rowh + sp);
        pl_mark_handle(m, ctx, x + pad, ry, hl, rowh);
        set_black(cr);
        pl_text_draw(cr, m->label, fs, x + pad + hl + hp, ry + rowh / 2, SL_ANCHOR_W, 0);
        row++;
    }
    cairo_restore(cr);
}

void pl_axes_draw(sl_axes *ax, pl_ctx *ctx)
{
    if (ax->off) return;
    cairo_t *cr = ctx->cr;
    cairo_t *mcr = pl_measure_ctx();
    if (!mcr) {
        pl_fail(ax->fig, SL_ENOMEM, "plot: cannot create a Cairo context");
        return;
    }
    if (ax->grid) draw_grid(ax, ctx);
    cairo_save(cr);
    cairo_rectangle(cr, ax->bx, ax->by, ax->bw, ax->bh);
    cairo_clip(cr);
    for (size_t i = 0; i < ax->nmarks; i++)
        if (ax->marks[i].kind != PL_TEXT) pl_mark_draw(ax, &ax->marks[i], ctx);
    cairo_restore(cr);
    for (size_t i = 0; i < ax->nmarks; i++)
        if (ax->marks[i].kind == PL_TEXT) pl_mark_draw(ax, &ax->marks[i], ctx);
    draw_spines_ticks(ax, ctx);
    draw_labels(ax, ctx, mcr);
    draw_legend(ax, ctx, mcr);
    draw_colorbar(ax, ctx, mcr);
    cairo_destroy(mcr);
}

int sl_axes_off(sl_axes *ax, int off)
{
    if (!ax) return SL_EINVAL;
    ax->off = off != 0;
    return SL_OK;
}
