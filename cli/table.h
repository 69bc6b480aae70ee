/*
** Tabular output in the three formats every command offers: an aligned table
** for people, CSV (RFC 4180: one header line, then one line per row) and JSON
** (an array of objects). Cells are strings; columns marked numeric are written
** as JSON numbers when they parse as finite numbers ("inf"/"nan" stay strings)
** and right-aligned in tables.
*/
#ifndef SL_TABLE_H
#define SL_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "cli.h"

typedef struct sl_table sl_table;

sl_table *sl_table_new(int ncol, const char *const *names);
void sl_table_free(sl_table *t);
void sl_table_numeric(sl_table *t, int col, int numeric);
/* Start a new row; then set its cells (missing cells print empty). */
int  sl_table_row(sl_table *t);
void sl_table_set(sl_table *t, int col, const char *s);
void sl_table_setf(sl_table *t, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t sl_table_nrows(const sl_table *t);
void sl_table_print(const sl_table *t, sl_outfmt fmt, FILE *out);

#endif
