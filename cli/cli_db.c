/*
** The run store seen from the command line: see cli_db.h. The conversion of
** sl_db_rows into an sl_table is the only layout code here; the table module
** does the formatting.
*/
#include "cli_db.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "family.h"
#include "model.h"
#include "spectrum.h"
#include "table.h"

int cli_db_open_existing(const sl_cli *c, const char *opt_db, int strict_readonly, sl_db **out)
{
    *out = NULL;
    const char *path = cli_db_path(opt_db);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cli_error(c, 2, "%s: no run store there (%s); --db PATH or $SEQLAB_DB names another", path,
                         strerror(errno));
    int ro = strict_readonly || access(path, W_OK) != 0;
    sl_err err = { 0 };
    if (sl_db_open(path, ro, out, &err)) return cli_fail(c, &err);
    return 0;
}

/* JSON of a cell: null for SQL NULL, a number for a finite number in a
** numeric column, else a string ("inf", "nan" stay strings). */
static json_t *json_cell(const char *s, int numeric)
{
    if (!s) return json_null();
    if (numeric && *s) {
        char *end;
        long long ll = strtoll(s, &end, 10);
        if (*end == '\0') return json_integer(ll);
        double d = strtod(s, &end);
        if (*end == '\0' && isfinite(d)) return json_real(d);
    }
    return json_string(s);
}

void cli_print_rows(const sl_db_rows *r, sl_outfmt fmt, FILE *out)
{
    if (fmt == SL_FMT_JSON) {
        /* Written here rather than by sl_table, which has no NULL cells. */
        json_t *arr = json_array();
        for (size_t i = 0; i < r->nrow; i++) {
            json_t *o = json_object();
            for (int col = 0; col < r->ncol; col++)
                json_object_set_new(o, r->names[col], json_cell(r->cells[i * (size_t)r->ncol + (size_t)col], r->numeric[col]));
            json_array_append_new(arr, o);
        }
        char *txt = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) { fputs(txt, out); fputc('\n', out); }
        free(txt);
        json_decref(arr);
        return;
    }
    sl_table *t = sl_table_new(r->ncol, (const char *const *)r->names);
    if (!t) return;
    for (int col = 0; col < r->ncol; col++) sl_table_numeric(t, col, r->numeric[col]);
    for (size_t i = 0; i < r->nrow; i++) {
        if (sl_table_row(t)) break;
        for (int col = 0; col < r->ncol; col++) sl_table_set(t, col, r->cells[i * (size_t)r->ncol + (size_t)col]);
    }
    sl_table_print(t, fmt, out);
    sl_table_free(t);
}

int cli_run_start(const sl_cli *c, const char *opt_db, const struct sl_model *model, const int64_t *seed,
                  cli_run *r)
{
    r->db = NULL;
    r->id = 0;
    sl_err err = { 0 };
    if (sl_db_open(cli_db_path(opt_db), 0, &r->db, &err)) return cli_fail(c, &err);
    char *cfg = NULL;
    sl_run_spec spec = {
        .command = c->cmd ? c->cmd : "seqlab",
        .argc = c->argc,
        .argv = c->argv,
        .model_params = -1,
        .has_seed = seed != NULL,
        .seed = seed ? *seed : 0,
    };
    if (model) {
        cfg = model->config ? json_dumps(model->config, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        spec.model_path = model->path;
        spec.model_sha256 = model->sha256;
        spec.model_family = model->fam ? model->fam->name : NULL;
        spec.model_config_json = cfg;
        spec.model_params = sl_model_param_count(model);
    }
    int rc = sl_db_run_begin(r->db, &spec, &r->id, &err);
    free(cfg);
    if (rc) {
        sl_db_close(r->db);
        r->db = NULL;
        return cli_fail(c, &err);
    }
    return 0;
}

int cli_run_finish(const sl_cli *c, cli_run *r, int work_rc, const sl_err *work_err)
{
    int status = sl_exit_status(work_rc);
    if (!r->db) return status;
    const char *msg = NULL;
    if (work_rc) msg = (work_err && work_err->msg[0]) ? work_err->msg : sl_strerror(work_rc);
    sl_err err = { 0 };
    if (sl_db_run_end(r->db, r->id, msg, &err)) {
        cli_fail(c, &err);
        if (!status) status = 1;
    }
    sl_db_close(r->db);
    r->db = NULL;
    return status;
}

void cli_point_label(int64_t point, char *buf, size_t n)
{
    if (point == SL_POINT_ORIGIN) snprintf(buf, n, "origin");
    else if (point == SL_POINT_LTI) snprintf(buf, n, "lti");
    else snprintf(buf, n, "%lld", (long long)point);
}

int cli_store_eigenvalues(sl_db *db, int64_t run, const sl_spec_row *rows, size_t n, int skip_continuous, sl_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sl_db_stmt(db, "INSERT INTO series(run_id, name, layer, point, idx, re, im, mult, block) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, err);
    for (size_t i = 0; !rc && i < n; i++) {
        const sl_spec_row *row = &rows[i];
        if (skip_continuous && row->continuous) continue;
        char pt[32];
        cli_point_label(row->point, pt, sizeof pt);
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_text(st, 2, row->continuous ? "eigenvalues_ct" : "eigenvalues", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, row->layer);
        sqlite3_bind_text(st, 4, pt, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, row->index);
        if (isnan(row->re)) sqlite3_bind_null(st, 6); else sqlite3_bind_double(st, 6, row->re);
        if (isnan(row->im)) sqlite3_bind_null(st, 7); else sqlite3_bind_double(st, 7, row->im);
        sqlite3_bind_int64(st, 8, row->mult);
        if (row->block >= 0) sqlite3_bind_int64(st, 9, row->block); else sqlite3_bind_null(st, 9);
        rc = sl_db_step(db, st, err);
    }
    return rc;
}
