/*
** Text for plot/: measuring and drawing strings with a tiny markup for
** super- and subscripts ("10^{-3}", "h_{t}") through Cairo's toy font API and
** DejaVu Sans.
**
** Metrics are unhinted (CAIRO_HINT_METRICS_OFF) everywhere, so a string is
** exactly as wide on a 1x1 measuring surface as in a PNG at any dpi, a PDF or
** an SVG, and layout done once serves every format. Vertical extents use
** fixed fractions of the em (PL_ASCENT, PL_DESCENT) rather than the ink of
** each string, so labels of one axis share a baseline whatever their glyphs.
*/
#include "plot_impl.h"

#include <math.h>
#include <string.h>

#define SCRIPT_SCALE 0.7
#define SUP_RISE     0.42   /* of the base size */
#define SUB_DROP     0.18
#define MAX_SEGS     32
#define SEG_BUF      512

typedef struct seg {
    const char *s;
    size_t      n;
    double      scale, rise;    /* rise: baseline shift upwards, in units of the base size */
} seg;

static int parse(const char *s, seg *out)
{
    int n = 0;
    while (*s && n < MAX_SEGS) {
        if ((s[0] == '^' || s[0] == '_') && s[1] == '{') {
            const char *end = strchr(s + 2, '}');
            size_t len = end ? (size_t)(end - (s + 2)) : strlen(s + 2);
            if (len) out[n++] = (seg){s + 2, len, SCRIPT_SCALE, s[0] == '^' ? SUP_RISE : -SUB_DROP};
            s += 2 + len + (end ? 1 : 0);
            continue;
        }
        const char *p = s;
        while (*p && !((p[0] == '^' || p[0] == '_') && p[1] == '{')) p++;
        /* the last segment takes whatever is left */
        if (n == MAX_SEGS - 1) p = s + strlen(s);
        out[n++] = (seg){s, (size_t)(p - s), 1.0, 0.0};
        s = p;
    }
    return n;
}

static void seg_copy(const seg *g, char *buf)
{
    size_t n = g->n < SEG_BUF - 1 ? g->n : SEG_BUF - 1;
    /* never cut a UTF-8 sequence in half */
    while (n > 0 && n < g->n && ((unsigned char)g->s[n] & 0xC0) == 0x80) n--;
    memcpy(buf, g->s, n);
    buf[n] = '\0';
}

cairo_t *pl_measure_ctx(void)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    cairo_t *cr = cairo_create(s);
    cairo_surface_destroy(s);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(cr);
        return NULL;
    }
    pl_set_font(cr, 0);
    return cr;
}

void pl_set_font(cairo_t *cr, int raster)
{
    cairo_select_font_face(cr, PL_FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, raster ? CAIRO_HINT_STYLE_SLIGHT : CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
}

void pl_text_measure(cairo_t *cr, const char *s, double size, pl_text_ext *ext)
{
    ext->width = 0;
    ext->ascent = PL_ASCENT * size;
    ext->descent = PL_DESCENT * size;
    if (!s) return;
    seg segs[MAX_SEGS];
    int n = parse(s, segs);
    char buf[SEG_BUF];
    for (int i = 0; i < n; i++) {
        double sz = size * segs[i].scale;
        seg_copy(&segs[i], buf);
        cairo_set_font_size(cr, sz);
        cairo_text_extents_t te;
        cairo_text_extents(cr, buf, &te);
        ext->width += te.x_advance;
        ext->ascent = fmax(ext->ascent, segs[i].rise * size + PL_ASCENT * sz);
        ext->descent = fmax(ext->descent, PL_DESCENT * sz - segs[i].rise * size);
    }
}

void pl_text_draw(cairo_t *cr, const char *s, double size, double x, double y, sl_anchor anchor, double angle)
{
    if (!s || !*s) return;
    pl_text_ext e;
    pl_text_measure(cr, s, size, &e);
    double dx, dy;      /* from the anchor point to the start of the baseline */
    switch (anchor) {
    case SL_ANCHOR_W: case SL_ANCHOR_NW: case SL_ANCHOR_SW: dx = 0; break;
    case SL_ANCHOR_E: case SL_ANCHOR_NE: case SL_ANCHOR_SE: dx = -e.width; break;
    default: dx = -e.width / 2; break;
    }
    switch (anchor) {
    case SL_ANCHOR_N: case SL_ANCHOR_NE: case SL_ANCHOR_NW: dy = e.ascent; break;
    case SL_ANCHOR_S: case SL_ANCHOR_SE: case SL_ANCHOR_SW: dy = -e.descent; break;
    default: dy = (e.ascent - e.descent) / 2; break;
    }
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, -angle);
    seg segs[MAX_SEGS];
    int n = parse(s, segs);
    char buf[SEG_BUF];
    double pen = dx;
    for (int i = 0; i < n; i++) {
        double sz = size * segs[i].scale;
        seg_copy(&segs[i], buf);
        cairo_set_font_size(cr, sz);
        cairo_move_to(cr, pen, dy - segs[i].rise * size);
        cairo_show_text(cr, buf);
        cairo_text_extents_t te;
        cairo_text_extents(cr, buf, &te);
        pen += te.x_advance;
    }
    cairo_new_path(cr);
    cairo_restore(cr);
}

void pl_minus(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (; *in && k + 1 < n; in++) {
        if (*in == '-') {
            if (k + 4 > n) break;
            memcpy(out + k, "\xe2\x88\x92", 3);
            k += 3;
        } else {
            out[k++] = *in;
        }
    }
    out[k] = '\0';
}
