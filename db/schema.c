/*
** The run store's schema, as an ordered list of migrations.
**
** The schema version lives in PRAGMA user_version and the file is marked as
** ours with PRAGMA application_id (SL_DB_APPLICATION_ID). Migration N takes a
** database at version N-1 to version N; a database is brought up to date by
** applying every migration above its version, in order, inside one BEGIN
** IMMEDIATE transaction that also sets user_version, so a crash or an error
** leaves it exactly as it was, and concurrent openers serialize on the write
** lock (each re-reads the version once it holds the lock, so only the first
** one migrates). A database whose version is above the last migration was
** written by a newer seqlab and is refused; a file with tables but without
** our application_id is not a run store and is refused too.
**
** To add a table: append a migration with the next number. Never edit a
** migration that has shipped: databases in the wild are at its version.
** Every table is STRICT; result tables reference runs(id) ON DELETE CASCADE.
** The README's "Run store" section documents the resulting schema.
*/
#include <stdio.h>
#include <string.h>

#include "db_int.h"
#include "util.h"

typedef struct sl_db_migration {
    int         version;
    const char *name;
    const char *sql;
} sl_db_migration;

static const sl_db_migration migrations[] = {
    { 1, "models, runs, params, metrics, series, curves",
      "CREATE TABLE models (\n"
      "  id         INTEGER PRIMARY KEY,\n"
      "  sha256     TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),\n"
      "  path       TEXT NOT NULL,\n"
      "  family     TEXT,\n"
      "  config     TEXT CHECK (config IS NULL OR json_valid(config)),\n"
      "  n_params   INTEGER,\n"
      "  first_seen TEXT NOT NULL,\n"
      "  last_seen  TEXT NOT NULL\n"
      ") STRICT;\n"
      "CREATE TABLE runs (\n"
      "  id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
      "  uuid       TEXT NOT NULL UNIQUE,\n"
      "  command    TEXT NOT NULL,\n"
      "  argv       TEXT NOT NULL CHECK (json_valid(argv)),\n"
      "  model_id   INTEGER REFERENCES models(id),\n"
      "  status     TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),\n"
      "  started    TEXT NOT NULL,\n"
      "  ended      TEXT,\n"
      "  version    TEXT NOT NULL,\n"
      "  git_commit TEXT NOT NULL,\n"
      "  host       TEXT NOT NULL,\n"
      "  pid        INTEGER,\n"
      "  seed       INTEGER,\n"
      "  error      TEXT\n"
      ") STRICT;\n"
      "CREATE TABLE params (\n"
      "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  key    TEXT NOT NULL,\n"
      "  value  TEXT NOT NULL,\n"
      "  PRIMARY KEY (run_id, key)\n"
      ") STRICT;\n"
      "CREATE TABLE metrics (\n"
      "  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  key       TEXT NOT NULL,\n"
      "  step      INTEGER NOT NULL DEFAULT 0,\n"
      "  value     REAL,\n"
      "  nonfinite TEXT CHECK (nonfinite IN ('nan', 'inf', '-inf')),\n"
      "  PRIMARY KEY (run_id, key, step),\n"
      "  CHECK ((value IS NULL) = (nonfinite IS 'nan'))\n"
      ") STRICT;\n"
      "CREATE TABLE series (\n"
      "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  name   TEXT NOT NULL,\n"
      "  layer  INTEGER NOT NULL,\n"
      "  point  TEXT NOT NULL DEFAULT '',\n"
      "  idx    INTEGER NOT NULL,\n"
      "  re     REAL,\n"
      "  im     REAL\n"
      ") STRICT;\n"
      "CREATE TABLE curves (\n"
      "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  name   TEXT NOT NULL,\n"
      "  x      REAL,\n"
      "  y      REAL\n"
      ") STRICT;\n" },
    { 2, "artifacts, indexes, eigenvalues and singular_values views",
      "CREATE TABLE artifacts (\n"
      "  id         INTEGER PRIMARY KEY,\n"
      "  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  path       TEXT NOT NULL,\n"
      "  media_type TEXT NOT NULL,\n"
      "  sha256     TEXT NOT NULL CHECK (length(sha256) = 64),\n"
      "  bytes      INTEGER NOT NULL CHECK (bytes >= 0),\n"
      "  created    TEXT NOT NULL\n"
      ") STRICT;\n"
      "CREATE INDEX artifacts_run ON artifacts(run_id);\n"
      "CREATE INDEX runs_model ON runs(model_id);\n"
      "CREATE INDEX runs_command ON runs(command, status);\n"
      "CREATE INDEX metrics_key ON metrics(key, step);\n"
      "CREATE INDEX series_run ON series(run_id, name, layer, point);\n"
      "CREATE INDEX curves_run ON curves(run_id, name);\n"
      "CREATE VIEW eigenvalues AS\n"
      "  SELECT run_id, layer, point, idx, re, im FROM series WHERE name = 'eigenvalues';\n"
      "CREATE VIEW singular_values AS\n"
      "  SELECT run_id, layer, point, idx, re AS value FROM series WHERE name = 'singular_values';\n" },
    { 3, "series multiplicity and block; eigenvalue views with them",
      "ALTER TABLE series ADD COLUMN mult INTEGER NOT NULL DEFAULT 1;\n"
      "ALTER TABLE series ADD COLUMN block INTEGER;\n"
      "DROP VIEW eigenvalues;\n"
      "CREATE VIEW eigenvalues AS\n"
      "  SELECT run_id, layer, point, idx, re, im, mult AS multiplicity, block, re * re + im * im AS modulus2\n"
      "  FROM series WHERE name = 'eigenvalues';\n"
      "CREATE VIEW eigenvalues_ct AS\n"
      "  SELECT run_id, layer, point, idx, re, im, mult AS multiplicity, block\n"
      "  FROM series WHERE name = 'eigenvalues_ct';\n" },
    { 4, "timescales of units",
      "CREATE TABLE timescales (\n"
      "  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
      "  layer      INTEGER NOT NULL,\n"
      "  unit       INTEGER NOT NULL,\n"
      "  tau_single REAL,\n"
      "  tau_net    REAL,\n"
      "  amplitude  REAL,\n"
      "  r2         REAL,\n"
      "  lags       INTEGER NOT NULL,\n"
      "  status     TEXT NOT NULL CHECK (status IN ('fitted', 'constant', 'no decay', 'fit failed')),\n"
      "  PRIMARY KEY (run_id, layer, unit)\n"
      ") STRICT;\n" },
};


#define N_MIGRATIONS SL_ARRAY_LEN(migrations)

int sl_db_schema_latest(void) { return migrations[N_MIGRATIONS - 1].version; }

/* Refuse a file that is not ours or is newer than this code. */
static int check_identity(sl_db *db, int64_t app_id, int64_t version, sl_err *err)
{
    if (app_id != 0 && app_id != SL_DB_APPLICATION_ID)
        return sl_err_set(err, SL_EFORMAT, "%s: not a seqlab run store (application_id 0x%08llx)", db->path,
                          (unsigned long long)app_id);
    if (version > sl_db_schema_latest())
        return sl_err_set(err, SL_EUNSUP,
                          "%s: run store schema version %lld is newer than this seqlab (%s) understands (%d); "
                          "use a newer seqlab",
                          db->path, (long long)version, SL_VERSION, sl_db_schema_latest());
    if (app_id == 0 && version != 0)
        return sl_err_set(err, SL_EFORMAT, "%s: not a seqlab run store (user_version %lld without seqlab's application_id)",
                          db->path, (long long)version);
    if (version < 0) return sl_err_set(err, SL_EFORMAT, "%s: bad schema version %lld", db->path, (long long)version);
    return SL_OK;
}

/* check_identity, plus: a file without any seqlab marks must be empty. */
static int check_file(sl_db *db, int64_t app_id, int64_t version, int64_t n_objects, sl_err *err)
{
    int rc = check_identity(db, app_id, version, err);
    if (!rc && version == 0 && app_id == 0 && n_objects > 0)
        rc = sl_err_set(err, SL_EFORMAT, "%s: not a seqlab run store (it has tables but no seqlab schema)", db->path);
    return rc;
}

int sl_db_check_version(sl_db *db, sl_err *err)
{
    int64_t app_id, version, n;
    int rc = sl_db_identity(db, &app_id, &version, &n, err);
    if (rc) return rc;
    if ((rc = check_identity(db, app_id, version, err))) return rc;
    if (version == 0) return sl_err_set(err, SL_EFORMAT, "%s: not a seqlab run store (no schema)", db->path);
    db->version = (int)version;
    return SL_OK;
}

int sl_db_precheck(sl_db *db, sl_err *err)
{
    int64_t app_id, version, n;
    int rc = sl_db_identity(db, &app_id, &version, &n, err);
    if (rc) return rc;
    return check_file(db, app_id, version, n, err);
}

int sl_db_migrate(sl_db *db, int target, sl_err *err)
{
    int latest = target > 0 ? target : sl_db_schema_latest();
    int64_t app_id, version, n;
    int rc = sl_db_identity(db, &app_id, &version, &n, err);
    if (rc) return rc;
    if ((rc = check_file(db, app_id, version, n, err))) return rc;
    if (version >= latest) {
        db->version = (int)version;
        return SL_OK;
    }

    /* Take the write lock, then look again: another process may have
    ** migrated while we waited. */
    if ((rc = sl_db_begin_immediate(db, err))) return rc;
    if ((rc = sl_db_identity(db, &app_id, &version, &n, err))) goto fail;
    if ((rc = check_file(db, app_id, version, n, err))) goto fail;
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        const sl_db_migration *m = &migrations[i];
        if (m->version <= version || m->version > latest) continue;
        if ((rc = sl_db_exec(db, m->sql, err))) {
            sl_err_prefix(err, "migrating to schema version %d (%s)", m->version, m->name);
            goto fail;
        }
    }
    if (version < latest) {
        char sql[128];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;", SL_DB_APPLICATION_ID,
                 latest);
        if ((rc = sl_db_exec(db, sql, err))) goto fail;
        version = latest;
    }
    if ((rc = sl_db_exec(db, "COMMIT", err))) goto fail;
    db->version = (int)version;
    return SL_OK;
fail:
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
