/*
** The run store's read side: listing runs, one run's full record, the diff of
** two runs, and arbitrary read-only SQL. See db.h for the contract.
**
** Results that go to the command line come back as sl_db_rows, a table of
** text cells (NULL for SQL NULL) whose numbers are already formatted so they
** round-trip; the CLI only lays them out. A run's record comes back as a
** struct (sl_run_record) so that tests and tools can compare fields.
**
** Read-only SQL is enforced three ways: the CLI opens the connection with
** SQLITE_OPEN_READONLY and query_only; while the user's statement is prepared
** an authorizer allows only reading (SELECT, reading columns, functions other
** than load_extension, recursive CTEs, pragmas that only report), so INSERT,
** UPDATE, DELETE, DROP, CREATE, ATTACH, DETACH, transactions and writing
** pragmas fail to prepare with a message naming what was refused; and
** sqlite3_stmt_readonly() must agree before the statement runs (it catches
** VACUUM INTO and anything the authorizer has no code for).
*/
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "util.h"

/* ------------------------------------------------------------ rows */

void sl_db_fmt_double(double v, char buf[32])
{
    if (isnan(v)) { snprintf(buf, 32, "nan"); return; }
    if (isinf(v)) { snprintf(buf, 32, v > 0 ? "inf" : "-inf"); return; }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void sl_db_rows_free(sl_db_rows *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nrow * (size_t)r->ncol; i++) free(r->cells[i]);
    for (int c = 0; r->names && c < r->ncol; c++) free(r->names[c]);
    free(r->cells);
    free(r->names);
    free(r->numeric);
    free(r);
}

static sl_db_rows *rows_new(int ncol, const char *const *names)
{
    sl_db_rows *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ncol = ncol;
    r->names = calloc((size_t)ncol + 1, sizeof *r->names);
    r->numeric = calloc((size_t)ncol + 1, sizeof *r->numeric);
    if (!r->names || !r->numeric) { sl_db_rows_free(r); return NULL; }
    for (int c = 0; c < ncol; c++) {
        r->names[c] = sl_strdup(names[c] ? names[c] : "");
        if (!r->names[c]) { sl_db_rows_free(r); return NULL; }
    }
    return r;
}

/* Append an empty row; returns its cells or NULL when out of memory. */
static char **rows_add(sl_db_rows *r)
{
    if (r->nrow == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 32, bytes;
        if (sl_mul_size(cap * (size_t)(r->ncol ? r->ncol : 1), sizeof *r->cells, &bytes)) return NULL;
        char **c = realloc(r->cells, bytes);
        if (!c) return NULL;
        r->cells = c;
        r->cap = cap;
    }
    char **row = r->cells + r->nrow * (size_t)r->ncol;
    memset(row, 0, (size_t)r->ncol * sizeof *row);
    r->nrow++;
    return row;
}

static char *fmt_i64(int64_t v) { return sl_strfmt("%lld", (long long)v); }

static char *fmt_dbl(double v)
{
    char b[32];
    sl_db_fmt_double(v, b);
    return sl_strdup(b);
}

/* Text of one column of the current row, formatted; NULL for SQL NULL.
** *oom is set when an allocation failed. */
static char *cell_text(sqlite3_stmt *st, int c, int *oom)
{
    char *s = NULL;
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL: return NULL;
    case SQLITE_INTEGER: s = fmt_i64(sqlite3_column_int64(st, c)); break;
    case SQLITE_FLOAT: s = fmt_dbl(sqlite3_column_double(st, c)); break;
    case SQLITE_BLOB: s = sl_strfmt("<blob, %d bytes>", sqlite3_column_bytes(st, c)); break;
    default: s = sl_db_col_strdup(st, c); break;
    }
    if (!s) *oom = 1;
    return s;
}

/* Every row of a prepared statement (stepped to the end, not finalized). */
static int rows_from_stmt(sl_db *db, sqlite3_stmt *st, sl_db_rows **out, sl_err *err)
{
    int ncol = sqlite3_column_count(st);
    const char **names = calloc((size_t)ncol + 1, sizeof *names);
    if (!names) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int c = 0; c < ncol; c++) names[c] = sqlite3_column_name(st, c);
    sl_db_rows *r = rows_new(ncol, names);
    free(names);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    for (int c = 0; c < ncol; c++) r->numeric[c] = -1;   /* not known yet */
    int rc, oom = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **row = rows_add(r);
        if (!row) { oom = 1; break; }
        for (int c = 0; c < ncol; c++) {
            int t = sqlite3_column_type(st, c);
            if (t == SQLITE_TEXT || t == SQLITE_BLOB) r->numeric[c] = 0;
            else if (t != SQLITE_NULL && r->numeric[c] < 0) r->numeric[c] = 1;
            row[c] = cell_text(st, c, &oom);
        }
        if (oom) break;
    }
    if (oom) {
        sl_db_rows_free(r);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if (rc != SQLITE_DONE) {
        sl_db_rows_free(r);
        return sl_db_fail(db, SL_EDB, "query", err);
    }
    for (int c = 0; c < ncol; c++) {
        if (r->numeric[c] >= 0) continue;
        const char *dt = sqlite3_column_decltype(st, c);
        r->numeric[c] = dt && (strcmp(dt, "INTEGER") == 0 || strcmp(dt, "REAL") == 0);
    }
    *out = r;
    return SL_OK;
}

/* ------------------------------------------------------------ runs list */

static int is_hex(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) return 0;
    return 1;
}

int sl_db_runs_list(sl_db *db, const sl_runs_filter *f, sl_db_rows **out, sl_err *err)
{
    *out = NULL;
    static const sl_runs_filter none = { 0 };
    if (!f) f = &none;
    const char *sql =
        "SELECT r.id, r.uuid, r.started, r.command, r.status,\n"
        "       CASE WHEN m.id IS NULL THEN NULL\n"
        "            ELSE coalesce(m.family, '?') || ' ' || substr(m.sha256, 1, 12) END AS model,\n"
        "       r.seed,\n"
        "       round((julianday(r.ended) - julianday(r.started)) * 86400.0, 3) AS seconds,\n"
        "       r.error\n"
        "FROM runs r LEFT JOIN models m ON m.id = r.model_id\n"
        "WHERE (?1 = 0 OR substr(m.sha256, 1, length(?2)) = ?2 OR m.path = ?3 OR m.path = ?4)\n"
        "  AND (?5 IS NULL OR r.command = ?5)\n"
        "  AND (?6 IS NULL OR r.status = ?6)\n"
        "ORDER BY r.id DESC LIMIT ?7";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return sl_db_fail(db, SL_EDB, "listing runs", err);
    char *resolved = NULL, *hex = NULL;
    if (f->model && *f->model) {
        sqlite3_bind_int(st, 1, 1);
        if (strlen(f->model) >= 4 && is_hex(f->model)) {
            hex = sl_strdup(f->model);
            for (char *p = hex; p && *p; p++)
                if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
        }
        resolved = realpath(f->model, NULL);
        if (hex) sqlite3_bind_text(st, 2, hex, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_text(st, 2, "-", -1, SQLITE_STATIC);   /* never a SHA-256 prefix */
        sqlite3_bind_text(st, 3, f->model, -1, SQLITE_TRANSIENT);
        if (resolved) sqlite3_bind_text(st, 4, resolved, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_int(st, 1, 0);
    }
    if (f->command) sqlite3_bind_text(st, 5, f->command, -1, SQLITE_TRANSIENT);
    if (f->status) sqlite3_bind_text(st, 6, f->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, f->limit > 0 ? f->limit : -1);
    int rc = rows_from_stmt(db, st, out, err);
    sqlite3_finalize(st);
    free(resolved);
    free(hex);
    return rc;
}

/* ------------------------------------------------------------ resolve */

/* Runs matching one form of reference: 0, 1 or 2 (ambiguous). */
static int resolve_by(sl_db *db, const char *sql, const char *ref, int by_id, int64_t *run_id, sl_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        sl_db_fail(db, SL_EDB, "finding a run", err);
        return -1;
    }
    if (by_id) sqlite3_bind_int64(st, 1, strtoll(ref, NULL, 10));
    else sqlite3_bind_text(st, 1, ref, -1, SQLITE_TRANSIENT);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (n++ == 0) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) { sl_db_fail(db, SL_EDB, "finding a run", err); return -1; }
    return n;
}

int sl_db_run_resolve(sl_db *db, const char *ref, int64_t *run_id, sl_err *err)
{
    *run_id = 0;
    if (!ref || !*ref) return sl_err_set(err, SL_EINVAL, "empty run reference");
    int digits = 1, uuidish = strlen(ref) >= 4;
    for (const char *p = ref; *p; p++) {
        digits &= (*p >= '0' && *p <= '9');
        uuidish &= is_hex((char[]){ *p, 0 }) || *p == '-';
    }
    /* An id first; digits that are no run's id may still begin a UUID. */
    if (digits && strlen(ref) <= 18) {
        int n = resolve_by(db, "SELECT id FROM runs WHERE id = ?1", ref, 1, run_id, err);
        if (n < 0) return SL_EDB;
        if (n == 1) return SL_OK;
    }
    if (!uuidish) {
        if (digits) return sl_err_set(err, SL_EINVAL, "%s: no run %s", db->path, ref);
        return sl_err_set(err, SL_EINVAL, "\"%s\" is not a run id or UUID (prefix of 4 characters at least)", ref);
    }
    int n = resolve_by(db, "SELECT id FROM runs WHERE substr(uuid, 1, length(?1)) = lower(?1) LIMIT 2", ref, 0,
                       run_id, err);
    if (n < 0) return SL_EDB;
    if (n == 0) return sl_err_set(err, SL_EINVAL, "%s: no run %s", db->path, ref);
    if (n > 1) return sl_err_set(err, SL_EINVAL, "%s: run UUID prefix %s is ambiguous", db->path, ref);
    return SL_OK;
}

/* ------------------------------------------------------------ one run */

void sl_run_record_free(sl_run_record *r)
{
    if (!r) return;
    free(r->command);
    for (int i = 0; i < r->argc; i++) free(r->argv[i]);
    free(r->argv);
    free(r->status); free(r->started); free(r->ended); free(r->version);
    free(r->git_commit); free(r->host); free(r->error);
    free(r->model_sha256); free(r->model_path); free(r->model_family); free(r->model_config);
    for (size_t i = 0; i < r->n_params; i++) { free(r->params[i].key); free(r->params[i].value); }
    free(r->params);
    for (size_t i = 0; i < r->n_metrics; i++) free(r->metrics[i].key);
    free(r->metrics);
    for (size_t i = 0; i < r->n_artifacts; i++) {
        free(r->artifacts[i].path); free(r->artifacts[i].media_type); free(r->artifacts[i].created);
    }
    free(r->artifacts);
    for (size_t i = 0; i < r->n_results; i++) { free(r->results[i].table); free(r->results[i].name); }
    free(r->results);
    free(r);
}

/* Grow *arr (elements of size sz) to hold n + 1; 0 or -1. */
static int grow(void **arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap) return 0;
    size_t c = *cap ? 2 * *cap : 16, bytes;
    if (sl_mul_size(c, sz, &bytes)) return -1;
    void *p = realloc(*arr, bytes);
    if (!p) return -1;
    memset((char *)p + *cap * sz, 0, (c - *cap) * sz);
    *arr = p;
    *cap = c;
    return 0;
}

/* runs.argv (a JSON array of strings, as db.c writes it) into r->argv. */
static int argv_from_json(sl_run_record *r, const char *js)
{
    if (!js) return 0;
    json_t *a = json_loads(js, 0, NULL);
    if (!json_is_array(a)) { json_decref(a); return 0; }   /* not ours: leave argv empty */
    size_t n = json_array_size(a);
    r->argv = calloc(n + 1, sizeof *r->argv);
    if (!r->argv) { json_decref(a); return -1; }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        r->argv[r->argc] = sl_strdup(s ? s : "");
        if (!r->argv[r->argc]) { json_decref(a); return -1; }
        r->argc++;
    }
    json_decref(a);
    return 0;
}

int sl_db_run_get(sl_db *db, int64_t run_id, sl_run_record **out, sl_err *err)
{
    *out = NULL;
    sl_run_record *r = calloc(1, sizeof *r);
    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    sqlite3_stmt *st = NULL;
    int rc = SL_OK, src;
    size_t cap;
    const char *what = "reading the run";
    const char *q_run =
        "SELECT r.id, r.uuid, r.command, r.argv, r.status, r.started, r.ended, r.version, r.git_commit, r.host,\n"
        "       r.pid, r.seed, r.error, m.sha256, m.path, m.family, m.config, m.n_params\n"
        "FROM runs r LEFT JOIN models m ON m.id = r.model_id WHERE r.id = ?1";
    if (sqlite3_prepare_v2(db->h, q_run, -1, &st, NULL) != SQLITE_OK) goto dberr;
    sqlite3_bind_int64(st, 1, run_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = sl_err_set(err, SL_EINVAL, "%s: no run %lld", db->path, (long long)run_id);
        goto out;
    }
    if (src != SQLITE_ROW) goto dberr;
    r->id = sqlite3_column_int64(st, 0);
    snprintf(r->uuid, sizeof r->uuid, "%s", (const char *)sqlite3_column_text(st, 1));
    r->command = sl_db_col_strdup(st, 2);
    char *argv = sl_db_col_strdup(st, 3);
    int bad = argv_from_json(r, argv);
    free(argv);
    r->status = sl_db_col_strdup(st, 4);
    r->started = sl_db_col_strdup(st, 5);
    r->ended = sl_db_col_strdup(st, 6);
    r->version = sl_db_col_strdup(st, 7);
    r->git_commit = sl_db_col_strdup(st, 8);
    r->host = sl_db_col_strdup(st, 9);
    r->pid = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 10);
    r->has_seed = sqlite3_column_type(st, 11) != SQLITE_NULL;
    r->seed = sqlite3_column_int64(st, 11);
    r->error = sl_db_col_strdup(st, 12);
    r->has_model = sqlite3_column_type(st, 13) != SQLITE_NULL;
    r->model_sha256 = sl_db_col_strdup(st, 13);
    r->model_path = sl_db_col_strdup(st, 14);
    r->model_family = sl_db_col_strdup(st, 15);
    r->model_config = sl_db_col_strdup(st, 16);
    r->model_params = sqlite3_column_type(st, 17) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 17);
    if (bad || !r->command || !r->status || !r->started) goto oom;
    sqlite3_finalize(st);
    st = NULL;

    what = "reading params";
    if (sqlite3_prepare_v2(db->h, "SELECT key, value FROM params WHERE run_id = ?1 ORDER BY key", -1, &st, NULL))
        goto dberr;
    sqlite3_bind_int64(st, 1, run_id);
    cap = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&r->params, r->n_params, &cap, sizeof *r->params)) goto oom;
        sl_db_kv *kv = &r->params[r->n_params++];
        kv->key = sl_db_col_strdup(st, 0);
        kv->value = sl_db_col_strdup(st, 1);
        if (!kv->key || !kv->value) goto oom;
    }
    if (src != SQLITE_DONE) goto dberr;
    sqlite3_finalize(st);
    st = NULL;

    what = "reading metrics";
    if (sqlite3_prepare_v2(db->h, "SELECT key, step, value, nonfinite FROM metrics WHERE run_id = ?1 ORDER BY key, step",
                           -1, &st, NULL))
        goto dberr;
    sqlite3_bind_int64(st, 1, run_id);
    cap = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&r->metrics, r->n_metrics, &cap, sizeof *r->metrics)) goto oom;
        sl_db_metric_row *m = &r->metrics[r->n_metrics++];
        m->key = sl_db_col_strdup(st, 0);
        m->step = sqlite3_column_int64(st, 1);
        m->value = sl_db_metric_value(st, 2, 3);
        if (!m->key) goto oom;
    }
    if (src != SQLITE_DONE) goto dberr;
    sqlite3_finalize(st);
    st = NULL;

    what = "reading artifacts";
    if (sqlite3_prepare_v2(db->h,
                           "SELECT path, media_type, sha256, bytes, created FROM artifacts WHERE run_id = ?1 ORDER BY id",
                           -1, &st, NULL))
        goto dberr;
    sqlite3_bind_int64(st, 1, run_id);
    cap = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&r->artifacts, r->n_artifacts, &cap, sizeof *r->artifacts)) goto oom;
        sl_db_artifact_row *a = &r->artifacts[r->n_artifacts++];
        a->path = sl_db_col_strdup(st, 0);
        a->media_type = sl_db_col_strdup(st, 1);
        snprintf(a->sha256, sizeof a->sha256, "%s", (const char *)sqlite3_column_text(st, 2));
        a->bytes = sqlite3_column_int64(st, 3);
        a->created = sl_db_col_strdup(st, 4);
        if (!a->path || !a->media_type || !a->created) goto oom;
    }
    if (src != SQLITE_DONE) goto dberr;
    sqlite3_finalize(st);
    st = NULL;

    what = "counting results";
    if (sqlite3_prepare_v2(db->h,
                           "SELECT 'series', name, count(*) FROM series WHERE run_id = ?1 GROUP BY name\n"
                           "UNION ALL\n"
                           "SELECT 'curves', name, count(*) FROM curves WHERE run_id = ?1 GROUP BY name\n"
                           "ORDER BY 1, 2",
                           -1, &st, NULL))
        goto dberr;
    sqlite3_bind_int64(st, 1, run_id);
    cap = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&r->results, r->n_results, &cap, sizeof *r->results)) goto oom;
        sl_db_result_count *c = &r->results[r->n_results++];
        c->table = sl_db_col_strdup(st, 0);
        c->name = sl_db_col_strdup(st, 1);
        c->rows = sqlite3_column_int64(st, 2);
        if (!c->table || !c->name) goto oom;
    }
    if (src != SQLITE_DONE) goto dberr;
    goto out;
dberr:
    rc = sl_db_fail(db, SL_EDB, what, err);
    goto out;
oom:
    rc = sl_err_set(err, SL_ENOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    if (rc) sl_run_record_free(r);
    else *out = r;
    return rc;
}

/* ------------------------------------------------------------ diff */

static int streq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static int metric_eq(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Add a diff row; a / b / change are taken over (may be NULL). */
static int diff_row(sl_db_rows *r, int all, const char *kind, const char *key, const int64_t *step, char *a,
                    char *b, char *change, int same)
{
    if (same && !all) { free(a); free(b); free(change); return 0; }
    char **row = rows_add(r);
    if (!row) { free(a); free(b); free(change); return -1; }
    row[0] = sl_strdup(kind);
    row[1] = sl_strdup(key);
    row[2] = step ? fmt_i64(*step) : NULL;
    row[3] = a;
    row[4] = b;
    row[5] = change;
    return (!row[0] || !row[1] || (step && !row[2])) ? -1 : 0;
}

static int diff_field(sl_db_rows *r, int all, const char *key, const char *a, const char *b)
{
    return diff_row(r, all, "run", key, NULL, a ? sl_strdup(a) : NULL, b ? sl_strdup(b) : NULL, NULL, streq(a, b));
}

static char *seed_text(const sl_run_record *x) { return x->has_seed ? fmt_i64(x->seed) : NULL; }

int sl_db_runs_diff(sl_db *db, int64_t a, int64_t b, int all, sl_db_rows **out, sl_err *err)
{
    *out = NULL;
    sl_run_record *ra = NULL, *rb = NULL;
    int rc = sl_db_run_get(db, a, &ra, err);
    if (!rc) rc = sl_db_run_get(db, b, &rb, err);
    if (rc) { sl_run_record_free(ra); return rc; }
    static const char *const names[] = { "kind", "key", "step", "a", "b", "change" };
    sl_db_rows *r = rows_new(6, names);
    if (!r) goto oom;
    r->numeric[2] = r->numeric[5] = 1;
    char *sa = seed_text(ra), *sb = seed_text(rb);
    int bad = diff_field(r, all, "command", ra->command, rb->command) ||
              diff_field(r, all, "model", ra->model_sha256, rb->model_sha256) ||
              diff_field(r, all, "seed", sa, sb) ||
              diff_field(r, all, "status", ra->status, rb->status) ||
              diff_field(r, all, "version", ra->version, rb->version) ||
              diff_field(r, all, "git_commit", ra->git_commit, rb->git_commit);
    free(sa);
    free(sb);
    if (bad) goto oom;

    /* Merge-join the params (both sorted by key). */
    size_t i = 0, j = 0;
    while (i < ra->n_params || j < rb->n_params) {
        int c = i == ra->n_params ? 1 : j == rb->n_params ? -1 : strcmp(ra->params[i].key, rb->params[j].key);
        const char *key = c <= 0 ? ra->params[i].key : rb->params[j].key;
        const char *va = c <= 0 ? ra->params[i].value : NULL, *vb = c >= 0 ? rb->params[j].value : NULL;
        if (diff_row(r, all, "param", key, NULL, va ? sl_strdup(va) : NULL, vb ? sl_strdup(vb) : NULL, NULL,
                     c == 0 && streq(va, vb)))
            goto oom;
        if (c <= 0) i++;
        if (c >= 0) j++;
    }
    /* And the metrics (sorted by key, step). */
    i = j = 0;
    while (i < ra->n_metrics || j < rb->n_metrics) {
        int c;
        if (i == ra->n_metrics) c = 1;
        else if (j == rb->n_metrics) c = -1;
        else {
            c = strcmp(ra->metrics[i].key, rb->metrics[j].key);
            if (!c) c = (ra->metrics[i].step > rb->metrics[j].step) - (ra->metrics[i].step < rb->metrics[j].step);
        }
        const sl_db_metric_row *ma = c <= 0 ? &ra->metrics[i] : NULL, *mb = c >= 0 ? &rb->metrics[j] : NULL;
        char *change = NULL;
        if (ma && mb && isfinite(ma->value) && isfinite(mb->value)) change = fmt_dbl(mb->value - ma->value);
        if (diff_row(r, all, "metric", ma ? ma->key : mb->key, ma ? &ma->step : &mb->step,
                     ma ? fmt_dbl(ma->value) : NULL, mb ? fmt_dbl(mb->value) : NULL, change,
                     ma && mb && metric_eq(ma->value, mb->value)))
            goto oom;
        if (c <= 0) i++;
        if (c >= 0) j++;
    }
    sl_run_record_free(ra);
    sl_run_record_free(rb);
    *out = r;
    return SL_OK;
oom:
    sl_run_record_free(ra);
    sl_run_record_free(rb);
    sl_db_rows_free(r);
    return sl_err_set(err, SL_ENOMEM, "out of memory");
}

/* ------------------------------------------------------------ read-only SQL */

typedef struct sql_guard {
    int  denied;
    int  internal;      /* the denial recorded was SQLite's own schema table */
    char what[160];
} sql_guard;

/* Pragmas that only report, whatever their argument. */
static const char *const report_pragmas[] = {
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check", "compile_options", "function_list", "pragma_list",
    "module_list", "collation_list", "database_list", "page_count", "freelist_count", "data_version",
};
/* Pragmas that report without an argument and write with one. */
static const char *const value_pragmas[] = {
    "user_version", "application_id", "journal_mode", "page_size", "schema_version", "foreign_keys",
    "encoding", "auto_vacuum", "synchronous", "busy_timeout", "query_only",
};

static const char *action_name(int code)
{
    switch (code) {
    case SQLITE_INSERT: return "INSERT";
    case SQLITE_UPDATE: return "UPDATE";
    case SQLITE_DELETE: return "DELETE";
    case SQLITE_ATTACH: return "ATTACH";
    case SQLITE_DETACH: return "DETACH";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_REINDEX: return "REINDEX";
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_TRANSACTION: return "a transaction statement";
    case SQLITE_SAVEPOINT: return "SAVEPOINT";
    case SQLITE_PRAGMA: return "PRAGMA";
    case SQLITE_FUNCTION: return "the function";
    case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
    case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
    case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: return "DROP TABLE";
    case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER";
    case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW";
    case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: return "CREATE INDEX";
    case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: return "CREATE TABLE";
    case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TRIGGER";
    case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: return "CREATE VIEW";
    default: return "the statement";
    }
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (sqlite3_stricmp(s, list[i]) == 0) return 1;
    return 0;
}

static int sql_authorizer(void *ctx, int code, const char *a1, const char *a2, const char *db, const char *trig)
{
    sql_guard *g = ctx;
    (void)db;
    (void)trig;
    switch (code) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        if (a2 && sqlite3_stricmp(a2, "load_extension") != 0 && sqlite3_stricmp(a2, "fts3_tokenizer") != 0)
            return SQLITE_OK;
        break;
    case SQLITE_PRAGMA:
        if (in_list(a1, report_pragmas, SL_ARRAY_LEN(report_pragmas))) return SQLITE_OK;
        if (!a2 && in_list(a1, value_pragmas, SL_ARRAY_LEN(value_pragmas))) return SQLITE_OK;
        break;
    default:
        break;
    }
    /* DROP TABLE first deletes from sqlite_master: prefer naming the DROP. */
    int internal = a1 && (sqlite3_stricmp(a1, "sqlite_master") == 0 || sqlite3_stricmp(a1, "sqlite_temp_master") == 0);
    if (!g->denied || (g->internal && !internal)) {
        g->denied = code;
        g->internal = internal;
        if (code == SQLITE_PRAGMA || code == SQLITE_FUNCTION)
            snprintf(g->what, sizeof g->what, "%s %s", action_name(code), code == SQLITE_PRAGMA ? a1 : a2);
        else if (a1 && (code == SQLITE_INSERT || code == SQLITE_UPDATE || code == SQLITE_DELETE ||
                        (code >= SQLITE_CREATE_INDEX && code <= SQLITE_DROP_VIEW)))
            snprintf(g->what, sizeof g->what, "%s (%s)", action_name(code), a1);
        else
            snprintf(g->what, sizeof g->what, "%s", action_name(code));
    }
    return SQLITE_DENY;
}

static int only_space_or_comments(const char *s)
{
    while (*s) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ';') s++;
        else if (s[0] == '-' && s[1] == '-') { while (*s && *s != '\n') s++; }
        else if (s[0] == '/' && s[1] == '*') {
            const char *e = strstr(s + 2, "*/");
            if (!e) return 1;
            s = e + 2;
        } else return 0;
    }
    return 1;
}

/* The first n words of a statement ("DROP TABLE params"), for messages. */
static void lead_words(const char *sql, int n, char *buf, size_t size)
{
    const char *p = sql;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    const char *start = p;
    for (int w = 0; w < n && *p && *p != '(' && *p != ';'; w++) {
        if (w) while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        while (*p && !strchr(" \t\n\r(;", *p)) p++;
    }
    snprintf(buf, size, "%.*s", (int)SL_MIN((size_t)(p - start), size - 1), start);
}

int sl_db_query(sl_db *db, const char *sql, sl_db_rows **out, sl_err *err)
{
    *out = NULL;
    if (!sql || only_space_or_comments(sql)) return sl_err_set(err, SL_EINVAL, "empty query");
    sql_guard g = { 0 };
    sqlite3_set_authorizer(db->h, sql_authorizer, &g);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int prc = sqlite3_prepare_v2(db->h, sql, -1, &st, &tail);
    int rc = SL_OK;
    if (prc != SQLITE_OK) {
        if (g.denied && g.internal) {
            /* CREATE / DROP show up as writes to sqlite_master: name the statement. */
            char lead[64];
            lead_words(sql, 3, lead, sizeof lead);
            rc = sl_err_set(err, SL_EINVAL, "%s is refused: the run store is opened read-only for queries", lead);
        } else if (g.denied)
            rc = sl_err_set(err, SL_EINVAL, "%s is refused: the run store is opened read-only for queries", g.what);
        else
            rc = sl_err_set(err, SL_EINVAL, "%s", sqlite3_errmsg(db->h));
        goto out;
    }
    if (!st) { rc = sl_err_set(err, SL_EINVAL, "empty query"); goto out; }
    if (tail && !only_space_or_comments(tail)) {
        rc = sl_err_set(err, SL_EINVAL, "one statement at a time (found more after \"%.*s\")",
                        (int)SL_MIN((size_t)(tail - sql), 60), sql);
        goto out;
    }
    if (!sqlite3_stmt_readonly(st)) {
        char lead[64];
        lead_words(sql, 2, lead, sizeof lead);
        rc = sl_err_set(err, SL_EINVAL, "%s writes and is refused: the run store is opened read-only for queries",
                        lead);
        goto out;
    }
    rc = rows_from_stmt(db, st, out, err);
out:
    sqlite3_finalize(st);
    sqlite3_set_authorizer(db->h, NULL, NULL);
    return rc;
}
