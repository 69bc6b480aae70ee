/*
** Private to db/: the connection handle shared by schema.c (migrations),
** db.c (open, run lifecycle, writers) and query.c (reads), and the few
** helpers they share. Nothing outside db/ includes this.
*/
#ifndef SL_DB_INT_H
#define SL_DB_INT_H

#include "db.h"

typedef struct sl_db_cached {
    char         *sql;
    sqlite3_stmt *st;
} sl_db_cached;

struct sl_db {
    sqlite3      *h;
    char         *path;
    int           readonly;
    int           version;      /* user_version after open */
    int           in_txn;       /* inside sl_db_begin .. commit/rollback */
    int           txn_status;   /* sticky writer error of the transaction (0 none) */
    char          txn_msg[SL_ERR_MSG_MAX];
    sl_db_cached *cache;
    size_t        n_cache, cap_cache;
};

/* Set err from the connection's last SQLite error: "what: sqlite message". */
int sl_db_fail(sl_db *db, int code, const char *what, sl_err *err);

/* Execute SQL text without results (may be several statements). */
int sl_db_exec(sl_db *db, const char *sql, sl_err *err);

/* After an SQLITE_BUSY that the busy handler did not wait out (SQLite
** returns it at once where waiting could deadlock, e.g. two connections
** switching a new file to WAL): sleep a little, growing with attempt, with
** jitter. Returns 0 once about SL_DB_BUSY_MS have been spent: give up. */
int sl_db_backoff(int attempt);

/* BEGIN IMMEDIATE with retries while another writer holds the lock longer
** than the busy timeout allows. */
int sl_db_begin_immediate(sl_db *db, sl_err *err);

/* Read application_id, user_version and the number of schema objects (other
** than SQLite's own) in one statement: one snapshot, since a migration
** commits all three at once and they must be read together. */
int sl_db_identity(sl_db *db, int64_t *app_id, int64_t *version, int64_t *n_objects, sl_err *err);

/* Bring the schema to sl_db_schema_latest() (schema.c); stop at target when
** target > 0 (tests). Refuses newer databases and foreign files. */
int sl_db_migrate(sl_db *db, int target, sl_err *err);

/* Before anything is changed: refuse a file that is not a run store (another
** application's database, tables without our application_id) or is newer. */
int sl_db_precheck(sl_db *db, sl_err *err);

/* Validate an open database's identity and version without changing it. */
int sl_db_check_version(sl_db *db, sl_err *err);

/* malloc'ed copy of a column's text, NULL for SQL NULL. */
char *sl_db_col_strdup(sqlite3_stmt *st, int col);

/* A double as stored in metrics: value column + nonfinite flag. */
double sl_db_metric_value(sqlite3_stmt *st, int value_col, int flag_col);

#endif
