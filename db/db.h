/*
** The run store: every seqlab analysis recorded in one SQLite database.
**
** Lifecycle of a run, as an analysis sees it:
**
**     sl_db *db; int64_t run;
**     sl_run_spec spec = { .command = "spectrum", .argc = argc, .argv = argv,
**                          .model_path = m->path, .model_sha256 = m->sha256, ... };
**     if (sl_db_open(path, 0, &db, err)) return ...;            creates/upgrades
**     if (sl_db_run_begin(db, &spec, &run, err)) ...;             committed as 'running'
**     ... the work ...
**     sl_db_begin(db, err);                                        BEGIN IMMEDIATE
**     sl_db_param(db, run, "rule", "zoh", err);
**     sl_db_metric(db, run, "spectral_radius", 10, rho, err);
**     sl_db_series(db, run, "eigenvalues", layer, "lti", i, re, im, err);
**     sl_db_artifact(db, run, "out/spectrum.png", "image/png", err);
**     rc = sl_db_commit(db, err);                                  all rows or none
**     sl_db_run_end(db, run, rc ? err->msg : NULL, err2);          'ok' or 'failed'
**     sl_db_close(db);
**
** The run row is committed before the work starts, so a process that dies
** midway leaves it visible as 'running'; its results are written in one
** transaction, so they are all there or none are.
**
** Sticky errors. Inside a results transaction the first writer that fails
** poisons it: later writers return the same status without writing, and
** sl_db_commit rolls back and returns it. A loop may therefore write rows
** without checking each call and check sl_db_commit alone. Outside a
** transaction each writer is its own autocommit statement (slow for many rows).
**
** Non-finite values. SQLite stores NaN as NULL. Metrics keep an explicit flag
** (metrics.nonfinite is 'nan', 'inf', '-inf' or NULL), so NaN and ±inf
** round-trip through sl_db_run_get. In series and curves, ±inf are stored as
** IEEE infinities and NaN as NULL (writers always write every column, so a
** NULL there always means NaN).
**
** Adding a result table (later issues). Append a migration to the list in
** db/schema.c (next version number, SQL that creates the table, STRICT, with
** run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE), document it
** in the README's "Run store" section, and write rows through sl_db_stmt(),
** which hands out cached prepared statements and joins the sticky error:
**
**     sqlite3_stmt *st;
**     if (sl_db_stmt(db, "INSERT INTO timescales(run_id, layer, tau) VALUES (?,?,?)", &st, err)) ...
**     sqlite3_bind_int64(st, 1, run); ...
**     rc = sl_db_step(db, st, err);
**
** Ownership: sl_db_open's handle belongs to the caller (sl_db_close). Every
** record or row set returned here is the caller's, freed with its _free. A
** handle is used by one thread at a time; after fork() a child opens its own.
*/
#ifndef SL_DB_H
#define SL_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* PRAGMA application_id of a seqlab run store: 'SLAB'. */
#define SL_DB_APPLICATION_ID 0x534C4142
/* Busy timeout of every connection, milliseconds. */
#define SL_DB_BUSY_MS 30000

typedef struct sl_db sl_db;

/* ------------------------------------------------------------ open, schema */

/* Open the run store at path. readonly = 0: created if missing, pragmas set
** (foreign keys, busy timeout, WAL, synchronous=NORMAL) and the schema
** migrated to the latest version. readonly = 1: the file must exist; opened
** with SQLITE_OPEN_READONLY and never changed (an older schema is left as it
** is). Either way a database from a newer seqlab (user_version above
** sl_db_schema_latest()) is refused with SL_EUNSUP, and a file that is not a
** seqlab run store with SL_EFORMAT. */
int  sl_db_open(const char *path, int readonly, sl_db **out, sl_err *err);
/* Close (rolls back an open transaction). NULL is a no-op. */
void sl_db_close(sl_db *db);

/* The schema version this seqlab writes (the last migration's number). */
int  sl_db_schema_latest(void);
/* The schema version of the open database. */
int  sl_db_schema_version(const sl_db *db);
/* Create path (which must not exist) with the migrations up to version
** applied and nothing else: for tests and tools that need an older store. */
int  sl_db_create_at_version(const char *path, int version, sl_err *err);
/* The path the handle was opened with. */
const char *sl_db_path(const sl_db *db);
/* The underlying connection, for reading with the SQLite API directly. */
sqlite3 *sl_db_handle(sl_db *db);

/* ------------------------------------------------------------ run lifecycle */

/* What a run records when it starts. Only command is required. The model
** fields are optional (a run may have no model: NULL model_sha256); when
** present the model row is inserted, or updated with the path last seen.
** model_path is stored as an absolute path when it resolves. */
typedef struct sl_run_spec {
    const char *command;            /* "spectrum" */
    int         argc;               /* the full command line (argv[0] included) */
    char *const *argv;
    const char *model_path;
    const char *model_sha256;       /* 64 lowercase hex digits, or NULL: no model */
    const char *model_family;       /* "lstm", or NULL */
    const char *model_config_json;  /* a JSON object as text, or NULL */
    int64_t     model_params;       /* parameter count, < 0 unknown */
    int         has_seed;
    int64_t     seed;
} sl_run_spec;

/* Insert the run as 'running' and commit it at once. Records a fresh UUID,
** host, pid, seqlab version and git commit of the build, and the start time
** (ISO 8601 UTC with milliseconds). *run_id is the new runs.id. */
int  sl_db_run_begin(sl_db *db, const sl_run_spec *spec, int64_t *run_id, sl_err *err);
/* End the run: error NULL marks it 'ok', otherwise 'failed' with that message.
** An open results transaction is rolled back first (a failed analysis just
** calls this). Sets the end time. */
int  sl_db_run_end(sl_db *db, int64_t run_id, const char *error, sl_err *err);
/* The UUID of a run (buffer of 37 bytes). */
int  sl_db_run_uuid(sl_db *db, int64_t run_id, char uuid[37], sl_err *err);

/* ------------------------------------------------------------ results */

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK of the results transaction. Commit
** returns a sticky writer error (after rolling back) if there was one. */
int  sl_db_begin(sl_db *db, sl_err *err);
int  sl_db_commit(sl_db *db, sl_err *err);
void sl_db_rollback(sl_db *db);

/* One parameter: key -> value text (a key written twice keeps the last). */
int  sl_db_param(sl_db *db, int64_t run, const char *key, const char *value, sl_err *err);
int  sl_db_paramf(sl_db *db, int64_t run, const char *key, sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* One scalar metric at a step (use step 0 for a metric without steps); NaN
** and ±inf are kept. A (key, step) written twice keeps the last. */
int  sl_db_metric(sl_db *db, int64_t run, const char *key, int64_t step, double value, sl_err *err);
/* One complex value of a series: name ("eigenvalues", "singular_values"),
** layer (0-based), point (where it was taken: "lti", "origin", "t=12", "head3";
** "" when not applicable), idx its position in the series. */
int  sl_db_series(sl_db *db, int64_t run, const char *name, int64_t layer, const char *point, int64_t idx,
                  double re, double im, sl_err *err);
/* n values at once, idx 0..n-1; im may be NULL (all zero). */
int  sl_db_series_n(sl_db *db, int64_t run, const char *name, int64_t layer, const char *point, size_t n,
                    const double *re, const double *im, sl_err *err);
/* One point (x, y) of a named curve ("barrier", "loss"). */
int  sl_db_curve(sl_db *db, int64_t run, const char *name, double x, double y, sl_err *err);
int  sl_db_curve_n(sl_db *db, int64_t run, const char *name, size_t n, const double *x, const double *y,
                   sl_err *err);
/* An artifact file (a figure): its SHA-256 and size are computed now, so the
** file must exist. The path is stored absolute when it resolves. */
int  sl_db_artifact(sl_db *db, int64_t run, const char *path, const char *media_type, sl_err *err);

/* A cached prepared statement for sql (reset, bindings cleared), for writers
** of tables added later; valid until sl_db_close. Joins the sticky error. */
int  sl_db_stmt(sl_db *db, const char *sql, sqlite3_stmt **out, sl_err *err);
/* Step a write statement to completion and reset it; failure is sticky. */
int  sl_db_step(sl_db *db, sqlite3_stmt *st, sl_err *err);

/* ------------------------------------------------------------ queries */

/* A result set as text: cells[r * ncol + c] is NULL for SQL NULL. Numbers
** are formatted so they round-trip (shortest %.17g form; "inf", "-inf",
** "nan"); numeric[c] is 1 when every non-NULL value of column c is a number. */
typedef struct sl_db_rows {
    int     ncol;
    char  **names;
    int    *numeric;
    size_t  nrow, cap;
    char  **cells;
} sl_db_rows;
void sl_db_rows_free(sl_db_rows *r);

/* Format a double so it round-trips ("inf", "-inf", "nan" for non-finite). */
void sl_db_fmt_double(double v, char buf[32]);

/* Filters of sl_db_runs_list; NULL / 0 means no filter. model matches a
** model's SHA-256 prefix or its path last seen (as given, or resolved). */
typedef struct sl_runs_filter {
    const char *model;
    const char *command;
    const char *status;     /* running, ok, failed */
    int64_t     limit;      /* most recent first; 0 = all */
} sl_runs_filter;

/* Runs, most recent first: id, uuid, started, command, status, model
** (family and SHA-256 prefix), seed, seconds, error. */
int  sl_db_runs_list(sl_db *db, const sl_runs_filter *f, sl_db_rows **out, sl_err *err);

/* A run from what a user typed: its id, or its UUID or a unique prefix of it
** (4 characters at least). Digits are tried as an id first, then as a UUID
** prefix. Unknown or ambiguous: SL_EINVAL. */
int  sl_db_run_resolve(sl_db *db, const char *ref, int64_t *run_id, sl_err *err);

typedef struct sl_db_kv { char *key, *value; } sl_db_kv;
typedef struct sl_db_metric_row { char *key; int64_t step; double value; } sl_db_metric_row;
typedef struct sl_db_artifact_row {
    char   *path, *media_type, *created;
    char    sha256[65];
    int64_t bytes;
} sl_db_artifact_row;
typedef struct sl_db_result_count { char *table, *name; int64_t rows; } sl_db_result_count;

/* One run's full record. Strings are NULL when the column is NULL. */
typedef struct sl_run_record {
    int64_t id;
    char    uuid[37];
    char   *command;
    int     argc;
    char  **argv;
    char   *status, *started, *ended, *version, *git_commit, *host, *error;
    int64_t pid;
    int     has_seed;
    int64_t seed;
    int     has_model;
    char   *model_sha256, *model_path, *model_family, *model_config;
    int64_t model_params;       /* < 0 unknown */
    size_t  n_params;
    sl_db_kv *params;            /* by key */
    size_t  n_metrics;
    sl_db_metric_row *metrics;   /* by key, then step */
    size_t  n_artifacts;
    sl_db_artifact_row *artifacts;
    size_t  n_results;
    sl_db_result_count *results; /* rows per (table, name) in series and curves */
} sl_run_record;

int  sl_db_run_get(sl_db *db, int64_t run_id, sl_run_record **out, sl_err *err);
void sl_run_record_free(sl_run_record *r);

/* Params and metrics of two runs side by side (DVC's `exp diff`): kind (run,
** param, metric), key, step, a, b, change (b - a for finite metrics). Only
** differing rows unless all. Run fields compared: command, model, seed,
** status, version, git_commit. */
int  sl_db_runs_diff(sl_db *db, int64_t a, int64_t b, int all, sl_db_rows **out, sl_err *err);

/* Run one read-only SQL statement. The statement is refused (SL_EINVAL) unless
** it only reads: an authorizer denies every write, ATTACH/DETACH, temporary
** objects, transactions and writing pragmas, and sqlite3_stmt_readonly must
** agree. Syntax errors are SL_EINVAL; failures while stepping SL_EDB. */
int  sl_db_query(sl_db *db, const char *sql, sl_db_rows **out, sl_err *err);

#endif
