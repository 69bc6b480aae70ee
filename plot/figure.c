/*
** Figures: the grid of axes, layout, and output to PNG, PDF or SVG.
**
** Layout. The figure is cut into equal cells (below the figure title, if
** any). Each axes reports the margins its decorations need (tick labels,
** axis labels, title, colourbar); margins are then shared along rows and
** columns so panels line up, the boxes are fitted (equal aspect may change
** limits or shrink a box), ticks are chosen for the new box lengths, and the
** margins measured again. A few rounds settle it; after the second, margins
** only grow, so the loop always ends.
**
** Output. Every format is rendered into memory first and then handed over in
** one piece, so a failed render writes nothing. PNG goes through an RGB image
** surface scaled by dpi/72, PDF and SVG through their vector surfaces. The
** output is deterministic: the PDF gets a fixed creation date, and Cairo's
** SVG ids that come from process-wide counters ("surface12", "image7") are
** renumbered in order of appearance.
*/
#include "plot_impl.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* ================================================================ figure */
sl_figure *sl_figure_new(double width_pt, double height_pt, int rows, int cols)
{
    if (!(width_pt > 0 && width_pt <= 14400) || !(height_pt > 0 && height_pt <= 14400) || rows < 1 || cols < 1 ||
        rows > 64 || cols > 64)
        return NULL;
    sl_figure *fig = calloc(1, sizeof *fig);
    if (!fig) return NULL;
    fig->axes = calloc((size_t)rows * (size_t)cols, sizeof *fig->axes);
    if (!fig->axes) {
        free(fig);
        return NULL;
    }
    fig->w = width_pt;
    fig->h = height_pt;
    fig->rows = rows;
    fig->cols = cols;
    for (int i = 0; i < rows * cols; i++) {
        sl_axes *ax = &fig->axes[i];
        ax->fig = fig;
        ax->row = i / cols;
        ax->col = i % cols;
        ax->x.fix_lo = ax->x.fix_hi = ax->y.fix_lo = ax->y.fix_hi = NAN;
        ax->cbar_mark = -1;
    }
    return fig;
}

void sl_figure_free(sl_figure *fig)
{
    if (!fig) return;
    for (int i = 0; i < fig->rows * fig->cols; i++) {
        sl_axes *ax = &fig->axes[i];
        for (size_t k = 0; k < ax->nmarks; k++) pl_mark_free(&ax->marks[k]);
        free(ax->marks);
        free(ax->title);
        free(ax->x.label);
        free(ax->y.label);
        free(ax->cbar_label);
    }
    free(fig->axes);
    free(fig->title);
    free(fig);
}

sl_axes *sl_figure_axes(sl_figure *fig, int row, int col)
{
    if (!fig || row < 0 || col < 0 || row >= fig->rows || col >= fig->cols) return NULL;
    return &fig->axes[row * fig->cols + col];
}

int sl_figure_title(sl_figure *fig, const char *title)
{
    if (!fig) return SL_EINVAL;
    char *t = NULL;
    if (title && !(t = sl_strdup(title))) return pl_fail(fig, SL_ENOMEM, "plot: out of memory");
    free(fig->title);
    fig->title = t;
    pl_invalidate(fig);
    return SL_OK;
}

int pl_fail(sl_figure *fig, int code, const char *fmt, ...)
{
    if (fig && fig->err.code == SL_OK) {
        fig->err.code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fig->err.msg, sizeof fig->err.msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sl_figure_status(const sl_figure *fig, sl_err *err)
{
    if (!fig) return sl_err_set(err, SL_EINVAL, "plot: no figure");
    if (fig->err.code == SL_OK) return SL_OK;
    return sl_err_set(err, fig->err.code, "%s", fig->err.msg);
}

void pl_invalidate(sl_figure *fig)
{
    if (fig) fig->laid_out = 0;
}

/* ================================================================ layout */
static double title_band(const sl_figure *fig)
{
    return fig->title ? (PL_ASCENT + PL_DESCENT) * PL_FONT_TITLE + 2 * PL_OUTER_PAD : 0;
}

int pl_layout(sl_figure *fig)
{
    if (fig->laid_out) return SL_OK;
    if (fig->err.code) return fig->err.code;
    cairo_t *mcr = pl_measure_ctx();
    if (!mcr) return pl_fail(fig, SL_ENOMEM, "plot: cannot create a Cairo context");
    int n = fig->rows * fig->cols, rc = SL_OK;
    double band = title_band(fig);
    double cw = fig->w / fig->cols, ch = (fig->h - band) / fig->rows;
    double *colm = calloc((size_t)fig->cols * 2 + (size_t)fig->rows * 2, sizeof(double));
    if (!colm) {
        cairo_destroy(mcr);
        return pl_fail(fig, SL_ENOMEM, "plot: out of memory");
    }
    double *left = colm, *right = colm + fig->cols, *top = right + fig->cols, *bottom = top + fig->rows;

    for (int i = 0; i < n && !rc; i++) {
        sl_axes *ax = &fig->axes[i];
        rc = pl_marks_prepare(ax);
        if (rc) break;
        pl_axes_reset(ax);
        /* first guess: the box is most of the cell */
        pl_axes_fit_box(ax, ax->col * cw + 0.15 * cw, band + ax->row * ch + 0.1 * ch, 0.75 * cw, 0.75 * ch);
        rc = pl_axes_ticks(ax, mcr);
        if (!rc) pl_axes_margins(ax, mcr);
    }
    for (int round = 0; round < 8 && !rc; round++) {
        double old[4] = {0};
        int changed = 0;
        for (int c = 0; c < fig->cols; c++) left[c] = right[c] = 0;
        for (int r = 0; r < fig->rows; r++) top[r] = bottom[r] = 0;
        for (int i = 0; i < n; i++) {
            sl_axes *ax = &fig->axes[i];
            left[ax->col] = fmax(left[ax->col], ax->want[0]);
            right[ax->col] = fmax(right[ax->col], ax->want[1]);
            top[ax->row] = fmax(top[ax->row], ax->want[2]);
            bottom[ax->row] = fmax(bottom[ax->row], ax->want[3]);
        }
        for (int i = 0; i < n && !rc; i++) {
            sl_axes *ax = &fig->axes[i];
            double x = ax->col * cw + left[ax->col], y = band + ax->row * ch + top[ax->row];
            double w = cw - left[ax->col] - right[ax->col], h = ch - top[ax->row] - bottom[ax->row];
            /* a figure too small for its labels still gets a visible box */
            if (w < 10) { x -= (10 - w) / 2; w = 10; }
            if (h < 10) { y -= (10 - h) / 2; h = 10; }
            pl_axes_reset(ax);
            pl_axes_fit_box(ax, x, y, w, h);
            rc = pl_axes_ticks(ax, mcr);
            if (rc) break;
            memcpy(old, ax->want, sizeof old);
            pl_axes_margins(ax, mcr);
            for (int k = 0; k < 4; k++) {
                if (round >= 2) ax->want[k] = fmax(ax->want[k], old[k]);
                if (fabs(ax->want[k] - old[k]) > 0.01) changed = 1;
            }
        }
        if (!changed) break;
    }
    free(colm);
    cairo_destroy(mcr);
    if (!rc) fig->laid_out = 1;
    return rc;
}

/* ================================================================ drawing */
static void draw_figure(sl_figure *fig, pl_ctx *ctx)
{
    cairo_t *cr = ctx->cr;
    pl_set_font(cr, ctx->scale > 0);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    if (fig->title) {
        cairo_set_source_rgb(cr, 0, 0, 0);
        pl_text_draw(cr, fig->title, PL_FONT_TITLE, fig->w / 2, PL_OUTER_PAD, SL_ANCHOR_N, 0);
    }
    for (int i = 0; i < fig->rows * fig->cols; i++) pl_axes_draw(&fig->axes[i], ctx);
}

/* ------------------------------------------------------------ byte buffer */
typedef struct bbuf {
    unsigned char *p;
    size_t         n, cap;
    int            oom;
} bbuf;

static int bbuf_put(bbuf *b, const void *data, size_t n)
{
    if (b->oom) return -1;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

static cairo_status_t cairo_to_bbuf(void *closure, const unsigned char *data, unsigned int n)
{
    return bbuf_put(closure, data, n) ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

/* ------------------------------------------------------------ SVG ids
** Rewrite id="<name><digits>" and its references "#<name><digits>" followed
** by '"' or ')' so that each name's numbers count 1, 2, ... in order of
** first appearance. Base64 image data contains neither '"' nor '#', so only
** markup is touched. */
typedef struct idmap {
    char name[16];
    long old, new_;
} idmap;

static int svg_renumber(const bbuf *in, bbuf *out)
{
    idmap *map = NULL;
    size_t nmap = 0, cap = 0;
    const unsigned char *s = in->p;
    size_t n = in->n, i = 0;
    int rc = 0;
    while (i < n && !rc) {
        int is_id = i + 4 <= n && memcmp(s + i, "id=\"", 4) == 0;
        int is_ref = s[i] == '#';
        size_t start = i + (is_id ? 4 : 1);
        size_t j = start;
        while ((is_id || is_ref) && j < n && j - start < 15 && isalpha(s[j])) j++;
        size_t k = j;
        while ((is_id || is_ref) && k < n && isdigit(s[k]) && k - j < 12) k++;
        if (!(is_id || is_ref) || j == start || k == j || k >= n || !(s[k] == '"' || s[k] == ')')) {
            if (bbuf_put(out, s + i, 1)) rc = -1;
            i++;
            continue;
        }
        char name[16];
        memcpy(name, s + start, j - start);
        name[j - start] = '\0';
        char num[16];
        memcpy(num, s + j, k - j);
        num[k - j] = '\0';
        long old = strtol(num, NULL, 10), nw = 0, count = 0;
        for (size_t m = 0; m < nmap; m++)
            if (strcmp(map[m].name, name) == 0) {
                count++;
                if (map[m].old == old) nw = map[m].new_;
            }
        if (!nw) {
            if (nmap == cap) {
                cap = cap ? 2 * cap : 64;
                idmap *t = realloc(map, cap * sizeof *t);
                if (!t) { rc = -1; break; }
                map = t;
            }
            nw = count + 1;
            snprintf(map[nmap].name, sizeof map[nmap].name, "%s", name);
            map[nmap].old = old;
            map[nmap].new_ = nw;
            nmap++;
        }
        char rep[64];
        int len = snprintf(rep, sizeof rep, "%.*s%s%ld", (int)(start - i), (const char *)s + i, name, nw);
        if (bbuf_put(out, rep, (size_t)len)) rc = -1;
        i = k;
    }
    free(map);
    return rc;
}

/* ------------------------------------------------------------ render */
static int render(sl_figure *fig, sl_format fmt, double dpi, bbuf *out, sl_err *err)
{
    int rc = pl_layout(fig);
    if (rc) return sl_figure_status(fig, err);
    cairo_surface_t *s = NULL;
    double scale = 0;
    bbuf raw = {0};
    if (fmt == SL_FORMAT_PNG) {
        scale = dpi / 72.0;
        double pw = ceil(fig->w * scale - 1e-6), ph = ceil(fig->h * scale - 1e-6);
        if (pw > 32767 || ph > 32767)
            return sl_err_set(err, SL_EINVAL, "plot: %.0f x %.0f pixels is too large for a PNG (dpi %g)", pw, ph, dpi);
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)pw, (int)ph);
    } else if (fmt == SL_FORMAT_PDF) {
        s = cairo_pdf_surface_create_for_stream(cairo_to_bbuf, out, fig->w, fig->h);
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, "2000-01-01T00:00:00Z");
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "seqlab");
        if (fig->title) cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, fig->title);
    } else {
        s = cairo_svg_surface_create_for_stream(cairo_to_bbuf, &raw, fig->w, fig->h);
        cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PT);
    }
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return sl_err_set(err, SL_ENOMEM, "plot: cannot create a Cairo surface");
    }
    cairo_t *cr = cairo_create(s);
    if (scale > 0) cairo_scale(cr, scale, scale);
    pl_ctx ctx = {cr, scale};
    draw_figure(fig, &ctx);
    cairo_status_t cst = cairo_status(cr);
    cairo_destroy(cr);
    if (fmt == SL_FORMAT_PNG && cst == CAIRO_STATUS_SUCCESS)
        cst = cairo_surface_write_to_png_stream(s, cairo_to_bbuf, out);
    cairo_surface_finish(s);
    if (cst == CAIRO_STATUS_SUCCESS) cst = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (fmt == SL_FORMAT_SVG && cst == CAIRO_STATUS_SUCCESS && svg_renumber(&raw, out)) cst = CAIRO_STATUS_NO_MEMORY;
    free(raw.p);
    if (fig->err.code) return sl_figure_status(fig, err);
    if (cst != CAIRO_STATUS_SUCCESS || out->oom)
        return sl_err_set(err, cst == CAIRO_STATUS_NO_MEMORY || out->oom ? SL_ENOMEM : SL_EINTERNAL,
                          "plot: rendering failed: %s", cairo_status_to_string(cst));
    return SL_OK;
}

int sl_format_from_path(const char *path, sl_format *fmt, sl_err *err)
{
    if (!path || !fmt) return sl_err_set(err, SL_EINVAL, "plot: no path");
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot && strcasecmp(dot, ".png") == 0) *fmt = SL_FORMAT_PNG;
    else if (dot && strcasecmp(dot, ".pdf") == 0) *fmt = SL_FORMAT_PDF;
    else if (dot && strcasecmp(dot, ".svg") == 0) *fmt = SL_FORMAT_SVG;
    else if (dot)
        return sl_err_set(err, SL_EINVAL, "%s: unknown figure format '%s' (use .png, .pdf or .svg)", path, dot);
    else return sl_err_set(err, SL_EINVAL, "%s: no file extension to choose the figure format (.png, .pdf, .svg)", path);
    return SL_OK;
}

int sl_figure_write(sl_figure *fig, sl_format fmt, double dpi, sl_write_fn write, void *closure, sl_err *err)
{
    if (!fig || !write) return sl_err_set(err, SL_EINVAL, "plot: no figure or writer");
    if (fmt != SL_FORMAT_PNG && fmt != SL_FORMAT_PDF && fmt != SL_FORMAT_SVG)
        return sl_err_set(err, SL_EINVAL, "plot: unknown format %d", (int)fmt);
    if (!(dpi > 0)) dpi = 150;
    if (dpi > 2400) return sl_err_set(err, SL_EINVAL, "plot: dpi %g is out of range (up to 2400)", dpi);
    bbuf b = {0};
    int rc = render(fig, fmt, dpi, &b, err);
    if (rc == SL_OK && write(closure, b.p, b.n) != 0) rc = sl_err_set(err, SL_EIO, "plot: writing the figure failed");
    free(b.p);
    return rc;
}

static int write_file(void *closure, const unsigned char *data, size_t n)
{
    return fwrite(data, 1, n, closure) == n ? 0 : -1;
}

int sl_figure_save(sl_figure *fig, const char *path, double dpi, sl_err *err)
{
    if (!fig) return sl_err_set(err, SL_EINVAL, "plot: no figure");
    sl_format fmt;
    int rc = sl_format_from_path(path, &fmt, err);
    if (rc) return rc;
    sl_afile f;
    rc = sl_afile_open(&f, path, err);
    if (rc) return rc;
    rc = sl_figure_write(fig, fmt, dpi, write_file, f.fp, err);
    if (rc) {
        sl_afile_abort(&f);
        if (rc == SL_EIO) sl_err_set(err, SL_EIO, "%s: write failed", path);
        return rc;
    }
    return sl_afile_commit(&f, err);
}
