/*
** Tests for plot/: tick algorithms against known answers (the extended
** Wilkinson answers are those of R's labeling::extended), label formatting,
** colormaps, and rendering checked on pixels: a line, a heatmap's corner
** cells and the unit circle land where the axes transform says, in the
** expected colours. PDF output must convert with pdftoppm into a non-blank
** image, SVG must parse with xmllint, and the same figure must render to the
** same bytes twice.
*/
#include "sl_test.h"

#include <cairo.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "plot.h"

/* ================================================================ helpers */
static void expect_ticks(double lo, double hi, double m, int loose, const double *want, int nwant)
{
    double got[SL_TICKS_MAX];
    int n = sl_ticks_extended(lo, hi, m, loose, got, SL_TICKS_MAX);
    if (n != nwant) {
        fprintf(stderr, "extended(%g, %g, %g): %d ticks, want %d:", lo, hi, m, n, nwant);
        for (int i = 0; i < n; i++) fprintf(stderr, " %.12g", got[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, nwant);
    double scale = fmax(fabs(lo), fabs(hi));
    for (int i = 0; i < n; i++) assert_close(got[i], want[i], 1e-12, 1e-12 * scale);
}

static void expect_labels(const double *v, int n, int exponent, const char *const *want)
{
    sl_ticks t;
    memset(&t, 0, sizeof t);
    t.n = n;
    memcpy(t.v, v, (size_t)n * sizeof *v);
    assert_int_equal(sl_ticks_format(&t), SL_OK);
    for (int i = 0; i < n; i++) {
        if (strcmp(t.label[i], want[i]) != 0)
            fprintf(stderr, "label %d of %g: got '%s', want '%s'\n", i, v[i], t.label[i], want[i]);
        assert_string_equal(t.label[i], want[i]);
    }
    assert_int_equal(t.exponent, exponent);
}

typedef struct membuf {
    unsigned char *p;
    size_t         n, cap, pos;
} membuf;

static int mem_write(void *closure, const unsigned char *data, size_t n)
{
    membuf *b = closure;
    if (b->n + n > b->cap) {
        size_t cap = (b->n + n) * 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

static cairo_status_t mem_read(void *closure, unsigned char *data, unsigned int n)
{
    membuf *b = closure;
    if (b->pos + n > b->n) return CAIRO_STATUS_READ_ERROR;
    memcpy(data, b->p + b->pos, n);
    b->pos += n;
    return CAIRO_STATUS_SUCCESS;
}

static membuf render(sl_figure *fig, sl_format fmt, double dpi)
{
    membuf b = {0};
    sl_err err = {0};
    int rc = sl_figure_write(fig, fmt, dpi, mem_write, &b, &err);
    if (rc) fprintf(stderr, "render: %s\n", err.msg);
    assert_int_equal(rc, SL_OK);
    assert_true(b.n > 0);
    return b;
}

static cairo_surface_t *render_png(sl_figure *fig, double dpi)
{
    membuf b = render(fig, SL_FORMAT_PNG, dpi);
    cairo_surface_t *s = cairo_image_surface_create_from_png_stream(mem_read, &b);
    free(b.p);
    assert_int_equal(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    return s;
}

typedef struct rgb {
    int r, g, b;
} rgb;

static rgb pixel(cairo_surface_t *s, double px, double py)
{
    int x = (int)floor(px), y = (int)floor(py);
    cairo_surface_flush(s);
    assert_true(x >= 0 && y >= 0 && x < cairo_image_surface_get_width(s) && y < cairo_image_surface_get_height(s));
    const unsigned char *row = cairo_image_surface_get_data(s) + (size_t)y * cairo_image_surface_get_stride(s);
    uint32_t v = ((const uint32_t *)(const void *)row)[x];
    return (rgb){(int)(v >> 16 & 0xff), (int)(v >> 8 & 0xff), (int)(v & 0xff)};
}

static int near_rgb(rgb p, sl_rgba c, int tol)
{
    return abs(p.r - (int)lround(c.r * 255)) <= tol && abs(p.g - (int)lround(c.g * 255)) <= tol &&
           abs(p.b - (int)lround(c.b * 255)) <= tol;
}

static int is_white(rgb p) { return p.r == 255 && p.g == 255 && p.b == 255; }

/* Any pixel within d of (px, py) near colour c. */
static int any_near(cairo_surface_t *s, double px, double py, int d, sl_rgba c, int tol)
{
    for (int dy = -d; dy <= d; dy++)
        for (int dx = -d; dx <= d; dx++)
            if (near_rgb(pixel(s, px + dx, py + dy), c, tol)) return 1;
    return 0;
}

/* ================================================================ ticks */
static void test_extended_known(void **state)
{
    (void)state;
    expect_ticks(8.1, 14.1, 4, 0, (double[]){8, 10, 12, 14}, 4);
    expect_ticks(0, 1, 5, 0, (double[]){0, 0.25, 0.5, 0.75, 1}, 5);
    expect_ticks(-1, 1, 5, 0, (double[]){-1, -0.5, 0, 0.5, 1}, 5);
    expect_ticks(-3.7, 12.2, 5, 0, (double[]){-4, 0, 4, 8, 12}, 5);
    expect_ticks(-153.2, -41.9, 4, 0, (double[]){-160, -120, -80, -40}, 4);
    expect_ticks(-0.013, 0.027, 6, 0, (double[]){-0.01, 0, 0.01, 0.02, 0.03}, 5);
    expect_ticks(0.5, 99.5, 7, 0, (double[]){0, 20, 40, 60, 80, 100}, 6);
    expect_ticks(0.0, 0.3, 4, 0, (double[]){0, 0.1, 0.2, 0.3}, 4);
    /* tiny */
    expect_ticks(1e-9, 3.3e-9, 5, 0, (double[]){1e-9, 1.5e-9, 2e-9, 2.5e-9, 3e-9, 3.5e-9}, 6);
    expect_ticks(2.3e-7, 2.31e-7, 4, 0, (double[]){2.3e-7, 2.305e-7, 2.31e-7}, 3);
    /* huge */
    expect_ticks(0, 1e12, 5, 0, (double[]){0, 2.5e11, 5e11, 7.5e11, 1e12}, 5);
    expect_ticks(1234567, 1298765, 5, 0, (double[]){1.24e6, 1.26e6, 1.28e6, 1.3e6}, 4);
    expect_ticks(-1e6, 5e5, 5, 0, (double[]){-1e6, -5e5, 0, 5e5}, 4);
    /* non-integer m, loose labelling, reversed arguments */
    expect_ticks(1.35073e7, 4.64997e7, 3.9375, 0, (double[]){1.5e7, 2.5e7, 3.5e7, 4.5e7}, 4);
    expect_ticks(8.1, 14.1, 4, 1, (double[]){7.5, 10, 12.5, 15}, 4);
    expect_ticks(14.1, 8.1, 4, 0, (double[]){8, 10, 12, 14}, 4);
}

static void test_extended_bad(void **state)
{
    (void)state;
    double v[8];
    assert_int_equal(sl_ticks_extended(NAN, 1, 5, 0, v, 8), SL_EINVAL);
    assert_int_equal(sl_ticks_extended(0, INFINITY, 5, 0, v, 8), SL_EINVAL);
    assert_int_equal(sl_ticks_extended(0, 1, 1, 0, v, 8), SL_EINVAL);
    assert_int_equal(sl_ticks_extended(0, 1, 5, 0, v, 1), SL_EINVAL);
    /* a zero-width range gives m copies of the value, as the reference does */
    assert_int_equal(sl_ticks_extended(3, 3, 3, 0, v, 8), 3);
    assert_close(v[2], 3, 0, 0);
}

/* Over many random ranges and scales: evenly spaced, at least two, and the
** labelling spans a good part of the data. */
static void test_extended_properties(void **state)
{
    (void)state;
    uint64_t seed = 7;
    for (int i = 0; i < 2000; i++) {
        double scale = pow(10, sl_test_uniform(&seed, -12, 12));
        double a = sl_test_uniform(&seed, -100, 400) * scale, b = sl_test_uniform(&seed, -100, 400) * scale;
        double m = sl_test_uniform(&seed, 2, 10);
        if (a == b) continue;
        double v[SL_TICKS_MAX];
        int n = sl_ticks_extended(a, b, m, 0, v, SL_TICKS_MAX);
        assert_true(n >= 2);
        double step = v[1] - v[0];
        assert_true(step > 0);
        for (int k = 2; k < n; k++) assert_close(v[k] - v[k - 1], step, 1e-6, 0);
        double lo = fmin(a, b), hi = fmax(a, b);
        assert_true(v[n - 1] - v[0] >= 0.5 * (hi - lo));
        assert_true(v[0] <= lo + 0.5 * (hi - lo) && v[n - 1] >= hi - 0.5 * (hi - lo));
    }
}

static void test_heckbert(void **state)
{
    (void)state;
    double v[16];
    assert_int_equal(sl_ticks_heckbert(8.1, 14.1, 4, v, 16), 3);
    assert_close(v[0], 5, 0, 1e-12);
    assert_close(v[1], 10, 0, 1e-12);
    assert_close(v[2], 15, 0, 1e-12);
    assert_int_equal(sl_ticks_heckbert(0, 1, 5, v, 16), 6);   /* nice step 0.2: 0 0.2 ... 1 */
    assert_close(v[1], 0.2, 1e-12, 0);
    assert_close(v[5], 1, 1e-12, 0);
}

static void test_log_ticks(void **state)
{
    (void)state;
    sl_ticks t;
    /* 0.05 .. 2e4: every decade labelled, minors at 2..9 */
    assert_int_equal(sl_ticks_log(0.05, 2e4, 10, &t), SL_OK);
    assert_int_equal(t.n, 6);
    const char *want[] = {"10^{-1}", "10^{0}", "10^{1}", "10^{2}", "10^{3}", "10^{4}"};
    for (int i = 0; i < 6; i++) {
        assert_close(t.v[i], pow(10, i - 1), 1e-12, 0);
        assert_string_equal(t.label[i], want[i]);
    }
    /* minors: 0.05..0.09 (5), 8 per full decade x 5, 2e4 (1) */
    assert_int_equal(t.nminor, 5 + 8 * 5 + 1);
    int has_02 = 0, has_3000 = 0;
    for (int i = 0; i < t.nminor; i++) {
        has_02 |= fabs(t.minor[i] - 0.2) < 1e-12;
        has_3000 |= fabs(t.minor[i] - 3000) < 1e-9;
        assert_true(t.minor[i] >= 0.05 * (1 - 1e-9) && t.minor[i] <= 2e4 * (1 + 1e-9));
    }
    assert_true(has_02 && has_3000);

    /* 25 decades, at most 5 labels: every 5th decade, 10^0 among them */
    assert_int_equal(sl_ticks_log(1e-12, 1e12, 5, &t), SL_OK);
    assert_true(t.n >= 2 && t.n <= 5);
    int has_one = 0;
    for (int i = 0; i < t.n; i++) has_one |= t.v[i] == 1.0;
    assert_true(has_one);
    assert_string_equal(t.label[0], "10^{-10}");
    assert_close(t.v[1] / t.v[0], 1e5, 1e-9, 0);
    assert_int_equal(t.nminor, 25 - t.n);     /* the other decades, no 2..9 */

    /* less than two decades: 1-2-3-5 multiples, plain labels */
    assert_int_equal(sl_ticks_log(0.28, 3.2, 8, &t), SL_OK);
    const char *want2[] = {"0.3", "0.5", "1", "2", "3"};
    assert_int_equal(t.n, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(t.label[i], want2[i]);
    assert_true(t.nminor > 0);

    assert_int_equal(sl_ticks_log(0, 10, 5, &t), SL_EINVAL);
    assert_int_equal(sl_ticks_log(10, 1, 5, &t), SL_EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    expect_labels((double[]){0, 0.5, 1}, 3, 0, (const char *[]){"0.0", "0.5", "1.0"});
    expect_labels((double[]){0, 0.25, 0.5, 0.75, 1}, 5, 0, (const char *[]){"0.00", "0.25", "0.50", "0.75", "1.00"});
    expect_labels((double[]){-1, -0.5, 0, 0.5, 1}, 5, 0, (const char *[]){"-1.0", "-0.5", "0.0", "0.5", "1.0"});
    expect_labels((double[]){0, 20, 40, 60}, 4, 0, (const char *[]){"0", "20", "40", "60"});
    expect_labels((double[]){-160, -120, -80, -40}, 4, 0, (const char *[]){"-160", "-120", "-80", "-40"});
    /* rounding noise: 0.1 + 0.2 and 3 * 0.1 - 0.3 */
    expect_labels((double[]){0.3 - 3 * 0.1, 0.1 + 0.2, 0.6}, 3, 0, (const char *[]){"0.0", "0.3", "0.6"});
    expect_labels((double[]){-1e-17, 0.1, 0.2}, 3, 0, (const char *[]){"0.0", "0.1", "0.2"});
    expect_labels((double[]){99000, 100000}, 2, 0, (const char *[]){"99000", "100000"});
    /* huge and tiny get a common exponent */
    expect_labels((double[]){0, 2.5e11, 5e11, 7.5e11, 1e12}, 5, 12,
                  (const char *[]){"0.00", "0.25", "0.50", "0.75", "1.00"});
    expect_labels((double[]){1.24e6, 1.26e6, 1.28e6, 1.3e6}, 4, 6, (const char *[]){"1.24", "1.26", "1.28", "1.30"});
    expect_labels((double[]){1e-9, 1.5e-9, 2e-9}, 3, -9, (const char *[]){"1.0", "1.5", "2.0"});
    expect_labels((double[]){-2e-5, 0, 2e-5}, 3, -5, (const char *[]){"-2", "0", "2"});
    expect_labels((double[]){2.3e-7, 2.305e-7, 2.31e-7}, 3, -7, (const char *[]){"2.300", "2.305", "2.310"});
    expect_labels((double[]){0.0001, 0.0002}, 2, 0, (const char *[]){"0.0001", "0.0002"});
    /* a single value */
    expect_labels((double[]){3.25}, 1, 0, (const char *[]){"3.25"});

    sl_ticks t = {.n = 1, .v = {NAN}};
    assert_int_equal(sl_ticks_format(&t), SL_EINVAL);
}

/* ================================================================ colours */
static void test_colormaps(void **state)
{
    (void)state;
    sl_rgba c = sl_cmap_eval(SL_CMAP_VIRIDIS, 0);
    assert_close(c.r, 0.267004, 0, 1e-6);
    assert_close(c.g, 0.004874, 0, 1e-6);
    assert_close(c.b, 0.329415, 0, 1e-6);
    c = sl_cmap_eval(SL_CMAP_VIRIDIS, 1);
    assert_close(c.r, 0.993248, 0, 1e-6);
    assert_close(c.g, 0.906157, 0, 1e-6);
    assert_close(c.b, 0.143936, 0, 1e-6);
    c = sl_cmap_eval(SL_CMAP_VIRIDIS, 0.5);     /* matplotlib: viridis(0.5) */
    assert_close(c.r, 0.127568, 0, 1e-6);
    assert_close(c.g, 0.566949, 0, 1e-6);
    assert_close(c.b, 0.550556, 0, 1e-6);
    c = sl_cmap_eval(SL_CMAP_VIRIDIS, 7);       /* clamped */
    assert_close(c.r, 0.993248, 0, 1e-6);
    assert_close(sl_cmap_eval(SL_CMAP_VIRIDIS, NAN).a, 0, 0, 0);

    c = sl_cmap_eval(SL_CMAP_DIVERGING, 0.5);   /* white-ish centre */
    assert_true(c.r > 0.95 && c.g > 0.95 && c.b > 0.95);
    c = sl_cmap_eval(SL_CMAP_DIVERGING, 0);     /* blue end */
    assert_true(c.b > c.r + 0.2);
    c = sl_cmap_eval(SL_CMAP_DIVERGING, 1);     /* red end */
    assert_true(c.r > c.b + 0.2);

    c = sl_tab10(0);
    assert_int_equal((int)lround(c.r * 255), 0x1f);
    assert_int_equal((int)lround(c.g * 255), 0x77);
    assert_int_equal((int)lround(c.b * 255), 0xb4);
    assert_close(sl_tab10(10).r, sl_tab10(0).r, 0, 0);
    assert_close(sl_tab10(-1).r, sl_tab10(9).r, 0, 0);
}

/* ================================================================ rendering */
static void test_red_line_pixels(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(300, 300, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_rgba red = {1, 0, 0, 1};
    double x[2] = {0, 1}, y[2] = {0, 1};
    assert_int_equal(sl_axes_line(ax, 2, x, y, &(sl_style){.color = red, .linewidth = 2}), SL_OK);
    sl_axes_xlim(ax, 0, 1);
    sl_axes_ylim(ax, 0, 1);
    const double dpi = 150;
    cairo_surface_t *s = render_png(fig, dpi);
    assert_int_equal(cairo_image_surface_get_width(s), 625);
    double pts[][2] = {{0.1, 0.1}, {0.25, 0.25}, {0.5, 0.5}, {0.75, 0.75}, {0.9, 0.9}};
    for (int i = 0; i < 5; i++) {
        double px, py;
        assert_int_equal(sl_axes_data_to_device(ax, pts[i][0], pts[i][1], dpi, &px, &py), SL_OK);
        rgb p = pixel(s, px, py);
        if (!near_rgb(p, red, 40)) fprintf(stderr, "(%g, %g) -> pixel (%g, %g) = %d %d %d\n", pts[i][0], pts[i][1], px, py, p.r, p.g, p.b);
        assert_true(near_rgb(p, red, 40));
    }
    /* off the line: white */
    double px, py;
    sl_axes_data_to_device(ax, 0.5, 0.2, dpi, &px, &py);
    assert_true(is_white(pixel(s, px, py)));
    sl_axes_data_to_device(ax, 0.2, 0.5, dpi, &px, &py);
    assert_true(is_white(pixel(s, px, py)));
    /* the diagonal goes up to the right: (0,0) is below and left of (1,1) */
    double x0, y0, x1, y1;
    sl_axes_data_to_device(ax, 0, 0, dpi, &x0, &y0);
    sl_axes_data_to_device(ax, 1, 1, dpi, &x1, &y1);
    assert_true(x1 > x0 + 300 && y0 > y1 + 300);
    /* at 72 dpi everything is in points, half as far apart as at 144 */
    double a0, b0, a1, b1;
    sl_axes_data_to_device(ax, 0, 0, 72, &a0, &b0);
    sl_axes_data_to_device(ax, 0, 0, 144, &a1, &b1);
    assert_close(a1, 2 * a0, 1e-12, 1e-9);
    assert_close(b1, 2 * b0, 1e-12, 1e-9);
    cairo_surface_destroy(s);
    sl_figure_free(fig);
}

static void heatmap_corners(sl_cmap cmap, const double *vals, int rows, int cols)
{
    sl_figure *fig = sl_figure_new(360, 260, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    assert_int_equal(sl_axes_heatmap(ax, rows, cols, vals, cmap, NAN, NAN), SL_OK);
    const double dpi = 100;
    cairo_surface_t *s = render_png(fig, dpi);
    /* cell (0, 0) holds the minimum, cell (rows-1, cols-1) the maximum */
    double px, py;
    assert_int_equal(sl_axes_data_to_device(ax, 0, 0, dpi, &px, &py), SL_OK);
    rgb p = pixel(s, px, py);
    if (!near_rgb(p, sl_cmap_eval(cmap, 0), 2)) fprintf(stderr, "corner (0,0): %d %d %d\n", p.r, p.g, p.b);
    assert_true(near_rgb(p, sl_cmap_eval(cmap, 0), 2));
    assert_int_equal(sl_axes_data_to_device(ax, cols - 1, rows - 1, dpi, &px, &py), SL_OK);
    p = pixel(s, px, py);
    if (!near_rgb(p, sl_cmap_eval(cmap, 1), 2)) fprintf(stderr, "corner (r,c): %d %d %d\n", p.r, p.g, p.b);
    assert_true(near_rgb(p, sl_cmap_eval(cmap, 1), 2));
    /* row 0 is at the top */
    double x0, y0, x1, y1;
    sl_axes_data_to_device(ax, 0, 0, dpi, &x0, &y0);
    sl_axes_data_to_device(ax, 0, rows - 1, dpi, &x1, &y1);
    assert_true(y0 < y1);
    /* a colourbar comes with it */
    double lo, hi;
    assert_int_equal(sl_axes_get_limits(ax, SL_AXIS_COLORBAR, &lo, &hi), SL_OK);
    sl_ticks t;
    assert_int_equal(sl_axes_get_ticks(ax, SL_AXIS_COLORBAR, &t), SL_OK);
    assert_true(t.n >= 2);
    cairo_surface_destroy(s);
    sl_figure_free(fig);
}

static void test_heatmap_corners(void **state)
{
    (void)state;
    double v[3 * 4];
    for (int i = 0; i < 12; i++) v[i] = i;
    heatmap_corners(SL_CMAP_VIRIDIS, v, 3, 4);
    /* signed data: the diverging map's range is symmetric, so use -a .. a */
    double w[5 * 5];
    for (int i = 0; i < 25; i++) w[i] = (i - 12) / 6.0;
    heatmap_corners(SL_CMAP_DIVERGING, w, 5, 5);

    /* the diverging range is centred on 0 even for lopsided data */
    sl_figure *fig = sl_figure_new(200, 200, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    double u[4] = {-1, 0, 1, 3};
    sl_axes_heatmap(ax, 2, 2, u, SL_CMAP_DIVERGING, NAN, NAN);
    double lo, hi;
    assert_int_equal(sl_axes_get_limits(ax, SL_AXIS_COLORBAR, &lo, &hi), SL_OK);
    assert_close(lo, -3, 0, 0);
    assert_close(hi, 3, 0, 0);
    sl_figure_free(fig);
}

static void test_unit_circle(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(300, 260, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_rgba red = {0.9, 0, 0, 1};
    /* the default look: dashed grey; its dash pattern starts at (1, 0) */
    assert_int_equal(sl_axes_circle(ax, 0, 0, 1, &(sl_style){.color = red}), SL_OK);
    sl_axes_equal_aspect(ax, 1);
    const double dpi = 150;
    cairo_surface_t *s = render_png(fig, dpi);
    double px, py;
    assert_int_equal(sl_axes_data_to_device(ax, 1, 0, dpi, &px, &py), SL_OK);
    assert_true(any_near(s, px, py, 1, red, 60));
    assert_int_equal(sl_axes_data_to_device(ax, 0, 0, dpi, &px, &py), SL_OK);
    assert_true(is_white(pixel(s, px, py)));
    /* equal aspect: one unit is as long on x as on y */
    double x0, y0, x1, y1, x2, y2;
    sl_axes_data_to_device(ax, 0, 0, dpi, &x0, &y0);
    sl_axes_data_to_device(ax, 1, 0, dpi, &x1, &y1);
    sl_axes_data_to_device(ax, 0, 1, dpi, &x2, &y2);
    assert_close(x1 - x0, y0 - y2, 1e-9, 1e-6);
    /* the whole circle is inside the limits */
    double lo, hi;
    sl_axes_get_limits(ax, SL_AXIS_X, &lo, &hi);
    assert_true(lo < -1 && hi > 1);
    sl_axes_get_limits(ax, SL_AXIS_Y, &lo, &hi);
    assert_true(lo < -1 && hi > 1);
    cairo_surface_destroy(s);
    sl_figure_free(fig);

    /* a solid circle passes through all four axis points */
    fig = sl_figure_new(300, 300, 1, 1);
    ax = sl_figure_axes(fig, 0, 0);
    sl_axes_circle(ax, 0, 0, 1, &(sl_style){.color = red, .dash = SL_DASH_SOLID, .linewidth = 1.5});
    sl_axes_equal_aspect(ax, 1);
    s = render_png(fig, dpi);
    double pts[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
    for (int i = 0; i < 4; i++) {
        sl_axes_data_to_device(ax, pts[i][0], pts[i][1], dpi, &px, &py);
        assert_true(any_near(s, px, py, 1, red, 60));
    }
    cairo_surface_destroy(s);
    sl_figure_free(fig);
}

/* A figure with one of everything, for the format and determinism tests. */
static sl_figure *everything(void)
{
    enum { N = 50 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *lo = malloc(N * sizeof *lo),
           *hi = malloc(N * sizeof *hi), m[12];
    for (int i = 0; i < N; i++) {
        x[i] = i * 0.1;
        y[i] = sin(x[i]);
        lo[i] = y[i] - 0.2;
        hi[i] = y[i] + 0.2;
    }
    for (int i = 0; i < 12; i++) m[i] = cos(i);
    sl_figure *fig = sl_figure_new(500, 400, 2, 2);
    sl_figure_title(fig, "Everything");
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_axes_band(ax, N, x, lo, hi, &(sl_style){.label = "band"});
    sl_axes_line(ax, N, x, y, &(sl_style){.label = "sin"});
    sl_axes_hline(ax, 0, NULL);
    sl_axes_text(ax, 1, 1, "peak", SL_ANCHOR_S, NULL);
    sl_axes_xlabel(ax, "x (s)");
    sl_axes_ylabel(ax, "y_{t}");
    ax = sl_figure_axes(fig, 0, 1);
    sl_axes_heatmap(ax, 3, 4, m, SL_CMAP_DIVERGING, NAN, NAN);
    sl_axes_colorbar(ax, "w");
    ax = sl_figure_axes(fig, 1, 0);
    sl_axes_scatter_c(ax, N, y, x, x, SL_CMAP_VIRIDIS, NAN, NAN, NULL);
    sl_axes_colorbar(ax, "t");
    sl_axes_circle(ax, 0, 0, 1, NULL);
    sl_axes_equal_aspect(ax, 1);
    sl_axes_text_frac(ax, 0.03, 0.97, "\xcf\x81 = 0.99", SL_ANCHOR_NW, NULL);
    ax = sl_figure_axes(fig, 1, 1);
    for (int i = 0; i < N; i++) x[i] = exp(0.2 * i);
    sl_axes_hist(ax, N, x, 10, NULL);
    sl_axes_xlog(ax, 1);
    sl_axes_title(ax, "log-x histogram");
    /* the figure keeps copies: the caller's arrays may go now */
    free(x);
    free(y);
    free(lo);
    free(hi);
    return fig;
}

static void test_deterministic(void **state)
{
    (void)state;
    for (int f = 0; f < 3; f++) {
        sl_figure *a = everything(), *b = everything();
        membuf ra = render(a, (sl_format)f, 150), rb = render(b, (sl_format)f, 150);
        membuf ra2 = render(a, (sl_format)f, 150);
        if (ra.n != rb.n || memcmp(ra.p, rb.p, ra.n) != 0) fprintf(stderr, "format %d differs between renders\n", f);
        assert_true(ra.n == rb.n && memcmp(ra.p, rb.p, ra.n) == 0);
        assert_true(ra.n == ra2.n && memcmp(ra.p, ra2.p, ra.n) == 0);
        free(ra.p);
        free(rb.p);
        free(ra2.p);
        sl_figure_free(a);
        sl_figure_free(b);
    }
}

static int run_quiet(const char *cmd)
{
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

static int have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return run_quiet(cmd) == 0;
}

static void test_pdf_converts(void **state)
{
    (void)state;
    if (!have_tool("pdftoppm")) {
        fprintf(stderr, "SKIP: pdftoppm not installed (make deps installs poppler-utils)\n");
        skip();
    }
    sl_figure *fig = everything();
    char *pdf = sl_test_path("everything.pdf"), *png = sl_test_path("everything-pdf");
    sl_err err = {0};
    assert_int_equal(sl_figure_save(fig, pdf, 0, &err), SL_OK);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "pdftoppm -png -r 40 -singlefile '%s' '%s' 2>/dev/null", pdf, png);
    assert_int_equal(run_quiet(cmd), 0);
    char *pngfile = sl_test_path("everything-pdf.png");
    cairo_surface_t *s = cairo_image_surface_create_from_png(pngfile);
    assert_int_equal(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    /* 500 x 400 pt at 40 dpi */
    assert_true(abs(w - (int)lround(500 * 40 / 72.0)) <= 1);
    assert_true(abs(h - (int)lround(400 * 40 / 72.0)) <= 1);
    long dark = 0, coloured = 0;
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++) {
            rgb p = pixel(s, xx, yy);
            if (p.r + p.g + p.b < 300) dark++;
            if (abs(p.r - p.g) > 40 || abs(p.g - p.b) > 40) coloured++;
        }
    fprintf(stderr, "pdf at 40 dpi: %dx%d, %ld dark and %ld coloured pixels\n", w, h, dark, coloured);
    assert_true(dark > 500);
    assert_true(coloured > 2000);
    cairo_surface_destroy(s);
    free(pngfile);
    free(pdf);
    free(png);
    sl_figure_free(fig);
}

static void test_svg_parses(void **state)
{
    (void)state;
    if (!have_tool("xmllint")) {
        fprintf(stderr, "SKIP: xmllint not installed (make deps installs libxml2-utils)\n");
        skip();
    }
    sl_figure *fig = everything();
    char *svg = sl_test_path("everything.svg");
    sl_err err = {0};
    assert_int_equal(sl_figure_save(fig, svg, 0, &err), SL_OK);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", svg);
    assert_int_equal(run_quiet(cmd), 0);
    /* sized in points */
    FILE *fp = fopen(svg, "r");
    assert_non_null(fp);
    char head[512] = {0};
    size_t n = fread(head, 1, sizeof head - 1, fp);
    fclose(fp);
    assert_true(n > 0);
    assert_non_null(strstr(head, "width=\"500pt\""));
    free(svg);
    sl_figure_free(fig);
}

static void test_png_file_and_dpi(void **state)
{
    (void)state;
    sl_figure *fig = everything();
    char *p1 = sl_test_path("a.png"), *p2 = sl_test_path("b.PNG");
    sl_err err = {0};
    assert_int_equal(sl_figure_save(fig, p1, 0, &err), SL_OK);    /* default 150 dpi */
    assert_int_equal(sl_figure_save(fig, p2, 72, &err), SL_OK);
    cairo_surface_t *a = cairo_image_surface_create_from_png(p1), *b = cairo_image_surface_create_from_png(p2);
    assert_int_equal(cairo_image_surface_get_width(a), (int)ceil(500 * 150 / 72.0 - 1e-6));
    assert_int_equal(cairo_image_surface_get_width(b), 500);
    assert_int_equal(cairo_image_surface_get_height(b), 400);
    cairo_surface_destroy(a);
    cairo_surface_destroy(b);
    /* nothing left behind: no temporary files beside the figures */
    DIR *d = opendir(sl_test_tmpdir());
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
    free(p1);
    free(p2);
    sl_figure_free(fig);
}

static void test_save_errors(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(100, 100, 1, 1);
    sl_err err = {0};
    char *p = sl_test_path("fig.jpg");
    assert_int_equal(sl_figure_save(fig, p, 0, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, ".jpg"));
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);
    free(p);
    assert_int_equal(sl_figure_save(fig, "noextension", 0, &err), SL_EINVAL);
    assert_int_equal(sl_figure_save(fig, "/nonexistent-dir-seqlab/x.png", 0, &err), SL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir-seqlab/x.png"));
    sl_format f;
    assert_int_equal(sl_format_from_path("a.b/c.Svg", &f, NULL), SL_OK);
    assert_int_equal(f, SL_FORMAT_SVG);
    assert_int_equal(sl_format_from_path("dir.png/c", &f, NULL), SL_EINVAL);
    assert_int_equal(sl_figure_write(fig, SL_FORMAT_PNG, 1e6, mem_write, &(membuf){0}, &err), SL_EINVAL);
    sl_figure_free(fig);

    assert_null(sl_figure_new(0, 100, 1, 1));
    assert_null(sl_figure_new(100, 100, 0, 1));
    assert_null(sl_figure_new(100, NAN, 1, 1));
}

static void test_sticky_errors(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(200, 150, 1, 2);
    assert_null(sl_figure_axes(fig, 1, 0));
    assert_null(sl_figure_axes(fig, 0, 2));
    /* NULL axes are refused, not dereferenced */
    assert_int_equal(sl_axes_line(NULL, 0, NULL, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_axes_title(NULL, "x"), SL_EINVAL);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_err err = {0};
    assert_int_equal(sl_figure_status(fig, &err), SL_OK);
    assert_int_equal(sl_axes_xlim(ax, 2, 1), SL_EINVAL);
    assert_int_equal(sl_axes_colorbar(ax, "none"), SL_EINVAL);     /* second error: first one kept */
    assert_int_equal(sl_figure_status(fig, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "xlim"));
    char *p = sl_test_path("sticky.png");
    assert_int_equal(sl_figure_save(fig, p, 0, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "xlim"));
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);
    free(p);
    sl_figure_free(fig);
    sl_figure_free(NULL);
}

/* Tick labels of an axes never overlap, even when long labels meet a short axis. */
static double label_width_estimate(const char *s)
{
    /* DejaVu Sans advances: digits 0.636 em, '.' 0.318, minus sign 0.838 */
    double w = 0;
    for (; *s; s++) w += *s == '.' ? 0.318 : *s == '-' ? 0.838 : 0.636;
    return w * 0.8 * 11;
}

static void test_labels_do_not_overlap(void **state)
{
    (void)state;
    uint64_t seed = 3;
    for (int trial = 0; trial < 1000; trial++) {
        double w = sl_test_uniform(&seed, 80, 500), h = sl_test_uniform(&seed, 60, 400);
        double scale = pow(10, sl_test_uniform(&seed, -9, 9));
        double off = sl_test_uniform(&seed, -5, 5) * scale;
        double x[2] = {off - 1.234 * scale, off + 3.21 * scale}, y[2] = {-scale * 0.777, scale * 12.3};
        sl_figure *fig = sl_figure_new(w, h, 1, 1);
        sl_axes *ax = sl_figure_axes(fig, 0, 0);
        if (trial % 3 == 1) {
            y[0] = scale * 1e-3;
            sl_axes_ylog(ax, 1);
        }
        sl_axes_line(ax, 2, x, y, NULL);
        for (int which = 0; which < 2; which++) {
            sl_ticks t;
            assert_int_equal(sl_axes_get_ticks(ax, (sl_axis_id)which, &t), SL_OK);
            /* two labels at least, unless the axis is too short for two */
            double lo, hi, p0, q0, p1, q1;
            sl_axes_get_limits(ax, (sl_axis_id)which, &lo, &hi);
            sl_axes_data_to_device(ax, which ? 0 : lo, which ? lo : 1, 72, &p0, &q0);
            sl_axes_data_to_device(ax, which ? 0 : hi, which ? hi : 1, 72, &p1, &q1);
            double length = which ? fabs(q1 - q0) : fabs(p1 - p0);
            if (t.n < 2 && length >= 160)
                fprintf(stderr, "trial %d axis %d: %d ticks on [%.17g, %.17g], %g pt long\n", trial, which, t.n, lo, hi,
                        length);
            assert_true(t.n >= 1);
            assert_true(t.n >= 2 || length < 160);
            for (int i = 1; i < t.n; i++) {
                double a0, b0, a1, b1;
                sl_axes_data_to_device(ax, which ? 0 : t.v[i - 1], which ? t.v[i - 1] : 1, 72, &a0, &b0);
                sl_axes_data_to_device(ax, which ? 0 : t.v[i], which ? t.v[i] : 1, 72, &a1, &b1);
                if (which == 0) {
                    double need = (label_width_estimate(t.label[i - 1]) + label_width_estimate(t.label[i])) / 2;
                    if (!(fabs(a1 - a0) >= need)) fprintf(stderr, "x labels '%s' '%s' overlap (%g < %g)\n", t.label[i - 1], t.label[i], fabs(a1 - a0), need);
                    assert_true(fabs(a1 - a0) >= need);
                } else {
                    if (!(fabs(b1 - b0) >= 0.8 * 11 * 1.0))
                        fprintf(stderr, "trial %d: y labels '%s' '%s' overlap (%g pt apart), axis %g pt\n", trial,
                                t.label[i - 1], t.label[i], fabs(b1 - b0), length);
                    assert_true(fabs(b1 - b0) >= 0.8 * 11 * 1.0);
                }
            }
        }
        sl_figure_free(fig);
    }
}

static void test_legend_only_with_several(void **state)
{
    (void)state;
    double x[3] = {0, 1, 2}, y[3] = {0, 1, 0}, y2[3] = {1, 0, 1};
    /* one labelled series: drawing a legend or not makes no difference */
    sl_figure *a = sl_figure_new(200, 150, 1, 1), *b = sl_figure_new(200, 150, 1, 1);
    sl_axes_line(sl_figure_axes(a, 0, 0), 3, x, y, &(sl_style){.label = "only"});
    sl_axes_line(sl_figure_axes(b, 0, 0), 3, x, y, &(sl_style){.label = "only"});
    sl_axes_legend(sl_figure_axes(b, 0, 0), SL_LEGEND_NONE);
    membuf ra = render(a, SL_FORMAT_PNG, 72), rb = render(b, SL_FORMAT_PNG, 72);
    assert_true(ra.n == rb.n && memcmp(ra.p, rb.p, ra.n) == 0);
    free(ra.p);
    free(rb.p);
    /* two: the legend appears */
    sl_axes_line(sl_figure_axes(a, 0, 0), 3, x, y2, &(sl_style){.label = "other"});
    sl_axes_line(sl_figure_axes(b, 0, 0), 3, x, y2, &(sl_style){.label = "other"});
    ra = render(a, SL_FORMAT_PNG, 72);
    rb = render(b, SL_FORMAT_PNG, 72);
    assert_false(ra.n == rb.n && memcmp(ra.p, rb.p, ra.n) == 0);
    free(ra.p);
    free(rb.p);
    sl_figure_free(a);
    sl_figure_free(b);
}

static void test_limits(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(300, 200, 1, 3);
    /* automatic: data range plus 5% */
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    double x[3] = {0, 5, 10}, y[3] = {1, 3, 2};
    sl_axes_line(ax, 3, x, y, NULL);
    double lo, hi;
    assert_int_equal(sl_axes_get_limits(ax, SL_AXIS_X, &lo, &hi), SL_OK);
    assert_close(lo, -0.5, 1e-12, 1e-12);
    assert_close(hi, 10.5, 1e-12, 1e-12);
    /* a histogram sits on zero: no margin below it */
    ax = sl_figure_axes(fig, 0, 1);
    double v[6] = {1, 2, 2, 3, 3, 3};
    sl_axes_hist(ax, 6, v, 3, NULL);
    sl_axes_get_limits(ax, SL_AXIS_Y, &lo, &hi);
    assert_close(lo, 0, 0, 0);
    assert_close(hi, 3.15, 1e-12, 0);
    /* log axis: margins in decades; fixed side kept; non-positive data ignored */
    ax = sl_figure_axes(fig, 0, 2);
    double lx[4] = {1, 2, 3, 4}, ly[4] = {-1, 1e-2, 1, 1e2};
    sl_axes_line(ax, 4, lx, ly, NULL);
    sl_axes_ylog(ax, 1);
    sl_axes_xlim(ax, 0, NAN);
    sl_axes_get_limits(ax, SL_AXIS_Y, &lo, &hi);
    assert_close(log10(lo), -2.2, 1e-12, 1e-12);
    assert_close(log10(hi), 2.2, 1e-12, 1e-12);
    sl_axes_get_limits(ax, SL_AXIS_X, &lo, &hi);
    assert_close(lo, 0, 0, 0);
    assert_close(hi, 4.1, 1e-12, 0);
    sl_ticks t;
    sl_axes_get_ticks(ax, SL_AXIS_Y, &t);
    assert_true(t.n >= 2);
    for (int i = 0; i < t.n; i++) assert_close(log10(t.v[i]), round(log10(t.v[i])), 0, 1e-12);
    sl_figure_free(fig);
}

/* On a log x axis the bins are equal in log10: 1, 10, 100, 1000 in three
** bins give counts 1, 1, 2 (linear bins would give 3, 0, 1). */
static void test_log_hist(void **state)
{
    (void)state;
    sl_figure *fig = sl_figure_new(300, 200, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    double v[4] = {1, 10, 100, 1000};
    sl_rgba c = sl_tab10(0);
    sl_axes_hist(ax, 4, v, 3, NULL);
    sl_axes_xlog(ax, 1);    /* after the hist: bins are made at layout */
    const double dpi = 100;
    cairo_surface_t *s = render_png(fig, dpi);
    double probes[][3] = {{3, 0.5, 1}, {3, 1.5, 0}, {30, 0.5, 1}, {30, 1.5, 0}, {300, 1.5, 1}, {300, 2.05, 0}};
    for (int i = 0; i < 6; i++) {
        double px, py;
        sl_axes_data_to_device(ax, probes[i][0], probes[i][1], dpi, &px, &py);
        rgb p = pixel(s, px, py);
        int bar = near_rgb(p, c, 3);
        if (bar != (int)probes[i][2]) fprintf(stderr, "hist at (%g, %g): %d %d %d\n", probes[i][0], probes[i][1], p.r, p.g, p.b);
        assert_int_equal(bar, (int)probes[i][2]);
    }
    double lo, hi;
    sl_axes_get_limits(ax, SL_AXIS_X, &lo, &hi);
    assert_close(log10(lo), -0.15, 1e-9, 1e-9);  /* edges 1 and 1000 plus 5% of 3 decades */
    assert_close(log10(hi), 3.15, 1e-9, 1e-9);
    cairo_surface_destroy(s);
    sl_figure_free(fig);
}

/* Geometry far outside fixed limits, crossing them back and forth: clipped
** before Cairo sees it (clipping adds vertices; ASan checks the buffers). */
static void test_clipping(void **state)
{
    (void)state;
    enum { N = 501 };
    double x[N], lo[N], hi[N];
    for (int i = 0; i < N; i++) {
        x[i] = i;
        hi[i] = (i % 2 ? 1e12 : -3) + 2;
        lo[i] = (i % 3 ? -1e12 : 0.5) - 2;
    }
    sl_figure *fig = sl_figure_new(300, 200, 1, 1);
    sl_axes *ax = sl_figure_axes(fig, 0, 0);
    sl_rgba c = {0, 0.5, 0, 1};
    sl_axes_band(ax, N, x, lo, hi, &(sl_style){.color = c, .alpha = 1});
    sl_axes_line(ax, N, x, hi, NULL);
    sl_axes_hist(ax, N, hi, 7, NULL);
    sl_axes_xlim(ax, 100, 200);
    sl_axes_ylim(ax, -1, 1);
    cairo_surface_t *s = render_png(fig, 100);
    double px, py;
    sl_axes_data_to_device(ax, 150.5, -0.5, 100, &px, &py);    /* covered by the band, below the bars */
    assert_true(near_rgb(pixel(s, px, py), c, 60));
    cairo_surface_destroy(s);
    sl_figure_free(fig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extended_known),
        cmocka_unit_test(test_extended_bad),
        cmocka_unit_test(test_extended_properties),
        cmocka_unit_test(test_heckbert),
        cmocka_unit_test(test_log_ticks),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_colormaps),
        cmocka_unit_test(test_red_line_pixels),
        cmocka_unit_test(test_heatmap_corners),
        cmocka_unit_test(test_unit_circle),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_pdf_converts),
        cmocka_unit_test(test_svg_parses),
        cmocka_unit_test(test_png_file_and_dpi),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_sticky_errors),
        cmocka_unit_test(test_labels_do_not_overlap),
        cmocka_unit_test(test_legend_only_with_several),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_log_hist),
        cmocka_unit_test(test_clipping),
    };
    return cmocka_run_group_tests_name("plot", tests, NULL, NULL);
}
