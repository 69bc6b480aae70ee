/*
** Tabular output: see table.h.
*/
#include "table.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct sl_table {
    int     ncol;
    char  **names;
    int    *numeric;
    size_t  nrow, cap;
    char  **cells;   /* nrow * ncol, NULL = empty */
};

sl_table *sl_table_new(int ncol, const char *const *names)
{
    sl_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ncol = ncol;
    t->names = calloc((size_t)ncol, sizeof *t->names);
    t->numeric = calloc((size_t)ncol, sizeof *t->numeric);
    if (!t->names || !t->numeric) { sl_table_free(t); return NULL; }
    for (int i = 0; i < ncol; i++) t->names[i] = sl_strdup(names[i]);
    return t;
}

void sl_table_free(sl_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nrow * (size_t)t->ncol; i++) free(t->cells[i]);
    for (int i = 0; t->names && i < t->ncol; i++) free(t->names[i]);
    free(t->cells);
    free(t->names);
    free(t->numeric);
    free(t);
}

void sl_table_numeric(sl_table *t, int col, int numeric) { if (col >= 0 && col < t->ncol) t->numeric[col] = numeric; }

int sl_table_row(sl_table *t)
{
    if (t->nrow == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **c = realloc(t->cells, cap * (size_t)t->ncol * sizeof *c);
        if (!c) return SL_ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    memset(t->cells + t->nrow * (size_t)t->ncol, 0, (size_t)t->ncol * sizeof *t->cells);
    t->nrow++;
    return SL_OK;
}

void sl_table_set(sl_table *t, int col, const char *s)
{
    if (!t->nrow || col < 0 || col >= t->ncol) return;
    char **cell = &t->cells[(t->nrow - 1) * (size_t)t->ncol + (size_t)col];
    free(*cell);
    *cell = sl_strdup(s ? s : "");
}

void sl_table_setf(sl_table *t, int col, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sl_table_set(t, col, buf);
}

size_t sl_table_nrows(const sl_table *t) { return t->nrow; }

static const char *cell(const sl_table *t, size_t r, int c)
{
    const char *s = t->cells[r * (size_t)t->ncol + (size_t)c];
    return s ? s : "";
}

static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, out); return; }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Display width in characters (UTF-8 continuation bytes do not count). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

void sl_table_print(const sl_table *t, sl_outfmt fmt, FILE *out)
{
    if (fmt == SL_FMT_CSV) {
        for (int c = 0; c < t->ncol; c++) { if (c) fputc(',', out); csv_field(out, t->names[c]); }
        fputc('\n', out);
        for (size_t r = 0; r < t->nrow; r++) {
            for (int c = 0; c < t->ncol; c++) { if (c) fputc(',', out); csv_field(out, cell(t, r, c)); }
            fputc('\n', out);
        }
        return;
    }
    if (fmt == SL_FMT_JSON) {
        json_t *arr = json_array();
        for (size_t r = 0; r < t->nrow; r++) {
            json_t *o = json_object();
            for (int c = 0; c < t->ncol; c++) {
                const char *s = cell(t, r, c);
                json_t *v = NULL;
                if (t->numeric[c] && *s) {
                    char *end;
                    double d = strtod(s, &end);
                    if (*end == '\0' && isfinite(d)) {
                        long long ll = strtoll(s, &end, 10);
                        v = (*end == '\0') ? json_integer(ll) : json_real(d);
                    }
                }
                if (!v) v = (t->numeric[c] && !*s) ? json_null() : json_string(s);
                json_object_set_new(o, t->names[c], v);
            }
            json_array_append_new(arr, o);
        }
        char *txt = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) { fputs(txt, out); fputc('\n', out); }
        free(txt);
        json_decref(arr);
        return;
    }
    size_t *w = calloc((size_t)t->ncol, sizeof *w);
    if (!w) return;
    for (int c = 0; c < t->ncol; c++) {
        w[c] = width(t->names[c]);
        for (size_t r = 0; r < t->nrow; r++) w[c] = SL_MAX(w[c], width(cell(t, r, c)));
    }
    for (int c = 0; c < t->ncol; c++) {
        size_t pad = w[c] - width(t->names[c]);
        if (t->numeric[c]) fprintf(out, "%s%*s%s", c ? "  " : "", (int)pad, "", t->names[c]);
        else fprintf(out, "%s%s%*s", c ? "  " : "", t->names[c], c == t->ncol - 1 ? 0 : (int)pad, "");
    }
    fputc('\n', out);
    for (size_t r = 0; r < t->nrow; r++) {
        for (int c = 0; c < t->ncol; c++) {
            const char *s = cell(t, r, c);
            size_t pad = w[c] - width(s);
            if (t->numeric[c]) fprintf(out, "%s%*s%s", c ? "  " : "", (int)pad, "", s);
            else fprintf(out, "%s%s%*s", c ? "  " : "", s, c == t->ncol - 1 ? 0 : (int)pad, "");
        }
        fputc('\n', out);
    }
    free(w);
}
