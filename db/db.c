/*
** The run store's write side: opening a connection, the run lifecycle and
** the writers of result rows. See db.h for the contract.
**
** Every connection gets the same setup, in this order: busy timeout (so every
** later statement waits for a lock instead of failing), foreign keys on, then
** journal_mode=WAL (readers never block the writer; a writer killed midway
** leaves only uncommitted WAL frames that the next opener ignores) and
** synchronous=NORMAL (durable across process crashes; a power loss may drop
** the last commits, never corrupt). A file that is not a run store, or is
** newer, is refused before WAL changes it. Then the schema is migrated
** (schema.c).
**
** Writes that take several statements (a run's model and run rows; a results
** transaction) run inside BEGIN IMMEDIATE: the write lock is taken up front,
** so two processes never both read and then both try to upgrade to writing,
** which in WAL mode fails at once (SQLITE_BUSY_SNAPSHOT) instead of waiting.
** Single statements (run end) are autocommit and wait through the busy
** timeout. Prepared statements are cached per connection by their SQL text.
*/
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db_int.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

int sl_db_fail(sl_db *db, int code, const char *what, sl_err *err)
{
    int ec = sqlite3_errcode(db->h);
    if (ec == SQLITE_NOTADB) code = SL_EFORMAT;
    if (ec == SQLITE_NOTADB)
        return sl_err_set(err, code, "%s: not a seqlab run store (%s)", db->path, sqlite3_errmsg(db->h));
    return sl_err_set(err, code, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

int sl_db_exec(sl_db *db, const char *sql, sl_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) return SL_OK;
    int code = (rc == SQLITE_NOTADB) ? SL_EFORMAT : SL_EDB;
    sl_err_set(err, code, "%s: %s", db->path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return code;
}

int sl_db_backoff(int attempt)
{
    /* 1, 2, 4, ... 32 ms, then 50 ms per attempt, plus up to 50% jitter so
    ** that processes that collided do not collide again. */
    long ms = attempt < 6 ? 1L << attempt : 50;
    long total = attempt < 6 ? (1L << attempt) - 1 : 63 + 50L * (attempt - 6);
    if (total >= SL_DB_BUSY_MS) return 0;
    static unsigned seed;
    if (!seed) seed = (unsigned)getpid() * 2654435761u + 1;
    seed = seed * 1103515245u + 12345u;
    long us = ms * 1000 + (long)((seed >> 8) % (unsigned)(ms * 500 + 1));
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
    return 1;
}

static int is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

int sl_db_begin_immediate(sl_db *db, sl_err *err)
{
    /* The busy handler waits for the lock; the backoff covers the cases
    ** where SQLite reports busy without calling it. */
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) return SL_OK;
        if (!is_busy(rc) || !sl_db_backoff(attempt))
            return sl_db_fail(db, SL_EDB, "starting a write transaction", err);
    }
}

int sl_db_identity(sl_db *db, int64_t *app_id, int64_t *version, int64_t *n_objects, sl_err *err)
{
    const char *sql = "SELECT (SELECT application_id FROM pragma_application_id()), "
                      "(SELECT user_version FROM pragma_user_version()), "
                      "(SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%')";
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                *app_id = sqlite3_column_int64(st, 0);
                *version = sqlite3_column_int64(st, 1);
                *n_objects = sqlite3_column_int64(st, 2);
            }
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW) return SL_OK;
        if (!is_busy(rc) || !sl_db_backoff(attempt)) return sl_db_fail(db, SL_EDB, "reading the schema version", err);
    }
}

char *sl_db_col_strdup(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) return NULL;
    const unsigned char *s = sqlite3_column_text(st, col);
    return sl_strdup(s ? (const char *)s : "");
}

double sl_db_metric_value(sqlite3_stmt *st, int value_col, int flag_col)
{
    const unsigned char *f = sqlite3_column_text(st, flag_col);
    if (f && strcmp((const char *)f, "nan") == 0) return NAN;
    if (f && strcmp((const char *)f, "inf") == 0) return INFINITY;
    if (f && strcmp((const char *)f, "-inf") == 0) return -INFINITY;
    if (sqlite3_column_type(st, value_col) == SQLITE_NULL) return NAN;
    return sqlite3_column_double(st, value_col);
}

/* ISO 8601 UTC with milliseconds: 2024-05-01T12:34:56.789Z */
static void iso_now(char buf[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char head[24];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 32, "%s.%03dZ", head, (int)(ts.tv_nsec / 1000000));
}

/* A random (version 4) UUID. */
static void uuid_v4(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < sizeof b) {   /* no entropy source: time, pid and address bits */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                     (uint64_t)(uintptr_t)&ts;
        for (size_t i = 0; i < sizeof b; i++) {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            b[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* path made absolute when it resolves; else a copy as given. Caller frees. */
static char *abs_path(const char *path)
{
    char *r = realpath(path, NULL);
    return r ? r : sl_strdup(path);
}

/* ------------------------------------------------------------ open / close */

static int set_pragma(sl_db *db, const char *sql, const char *want, sl_err *err)
{
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *v = sqlite3_column_text(st, 0);
                if (want && (!v || strcmp((const char *)v, want) != 0)) {
                    sl_err_set(err, SL_EDB, "%s: %s gave \"%s\", expected \"%s\"", db->path, sql,
                               v ? (const char *)v : "", want);
                    sqlite3_finalize(st);
                    return SL_EDB;
                }
            }
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE || rc == SQLITE_OK) return SL_OK;
        if (!is_busy(rc) || !sl_db_backoff(attempt)) return sl_db_fail(db, SL_EDB, sql, err);
    }
}

static int open_impl(const char *path, int readonly, int target, sl_db **out, sl_err *err)
{
    *out = NULL;
    if (!path || !*path) return sl_err_set(err, SL_EINVAL, "empty database path");
    struct stat sb;
    if (readonly && stat(path, &sb) != 0)
        return sl_err_set(err, SL_EIO, "%s: no run store there (%s)", path, strerror(errno));
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return sl_err_set(err, SL_EIO, "%s: is a directory, not a run store", path);

    sl_db *db = calloc(1, sizeof *db);
    if (!db) return sl_err_set(err, SL_ENOMEM, "out of memory");
    db->readonly = readonly;
    db->path = sl_strdup(path);
    if (!db->path) { free(db); return sl_err_set(err, SL_ENOMEM, "out of memory"); }

    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path, &db->h, flags, NULL);
    if (rc != SQLITE_OK) {
        if (db->h)
            rc = sl_err_set(err, SL_EIO, "%s: cannot open the run store: %s", path, sqlite3_errmsg(db->h));
        else
            rc = sl_err_set(err, SL_ENOMEM, "%s: cannot open the run store: out of memory", path);
        sl_db_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db->h, SL_DB_BUSY_MS);
    if ((rc = set_pragma(db, "PRAGMA foreign_keys = ON", NULL, err))) goto fail;
    if (!readonly) {
        /* Refuse someone else's database before switching it to WAL. */
        if ((rc = sl_db_precheck(db, err))) goto fail;
        if ((rc = set_pragma(db, "PRAGMA journal_mode = WAL", "wal", err))) goto fail;
        if ((rc = set_pragma(db, "PRAGMA synchronous = NORMAL", NULL, err))) goto fail;
        if ((rc = sl_db_migrate(db, target, err))) goto fail;
    } else {
        if ((rc = set_pragma(db, "PRAGMA query_only = ON", NULL, err))) goto fail;
        if ((rc = sl_db_check_version(db, err))) goto fail;
    }
    *out = db;
    return SL_OK;
fail:
    sl_db_close(db);
    return rc;
}

int sl_db_open(const char *path, int readonly, sl_db **out, sl_err *err)
{
    return open_impl(path, readonly, 0, out, err);
}

int sl_db_create_at_version(const char *path, int version, sl_err *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0) return sl_err_set(err, SL_EINVAL, "%s: already exists", path);
    if (version < 0 || version > sl_db_schema_latest())
        return sl_err_set(err, SL_EINVAL, "schema version %d is not between 0 and %d", version,
                          sl_db_schema_latest());
    sl_db *db = NULL;
    int rc;
    if (version == 0) {
        /* An empty SQLite file: what a first open finds. */
        sqlite3 *h = NULL;
        rc = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(h, "PRAGMA user_version = 0; VACUUM;", NULL, NULL, NULL);
        if (rc != SQLITE_OK) rc = sl_err_set(err, SL_EIO, "%s: %s", path, h ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close(h);
        return rc;
    }
    rc = open_impl(path, 0, version, &db, err);
    sl_db_close(db);
    return rc;
}

void sl_db_close(sl_db *db)
{
    if (!db) return;
    if (db->in_txn) sl_db_rollback(db);
    for (size_t i = 0; i < db->n_cache; i++) {
        sqlite3_finalize(db->cache[i].st);
        free(db->cache[i].sql);
    }
    free(db->cache);
    if (db->h) sqlite3_close(db->h);
    free(db->path);
    free(db);
}

int sl_db_schema_version(const sl_db *db) { return db->version; }
const char *sl_db_path(const sl_db *db) { return db->path; }
sqlite3 *sl_db_handle(sl_db *db) { return db->h; }

/* ------------------------------------------------------------ statements */

/* The sticky error of the current transaction, if any. */
static int txn_poisoned(sl_db *db, sl_err *err)
{
    if (!db->in_txn || !db->txn_status) return SL_OK;
    return sl_err_set(err, db->txn_status, "%s", db->txn_msg);
}

/* Record a writer failure (rc, message in e) as the transaction's sticky error. */
static int txn_poison(sl_db *db, int rc, const sl_err *e, sl_err *err)
{
    if (db->in_txn && !db->txn_status) {
        db->txn_status = rc;
        snprintf(db->txn_msg, sizeof db->txn_msg, "%s", e->msg);
    }
    if (err && err != e) { err->code = rc; memcpy(err->msg, e->msg, sizeof err->msg); }
    return rc;
}

int sl_db_stmt(sl_db *db, const char *sql, sqlite3_stmt **out, sl_err *err)
{
    *out = NULL;
    int rc = txn_poisoned(db, err);
    if (rc) return rc;
    for (size_t i = 0; i < db->n_cache; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            sqlite3_reset(db->cache[i].st);
            sqlite3_clear_bindings(db->cache[i].st);
            *out = db->cache[i].st;
            return SL_OK;
        }
    }
    sl_err e = { 0 };
    if (db->n_cache == db->cap_cache) {
        size_t cap = db->cap_cache ? 2 * db->cap_cache : 16;
        sl_db_cached *c = realloc(db->cache, cap * sizeof *c);
        if (!c) return txn_poison(db, sl_err_set(&e, SL_ENOMEM, "out of memory"), &e, err);
        db->cache = c;
        db->cap_cache = cap;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return txn_poison(db, sl_db_fail(db, SL_EDB, "preparing a statement", &e), &e, err);
    char *copy = sl_strdup(sql);
    if (!copy) {
        sqlite3_finalize(st);
        return txn_poison(db, sl_err_set(&e, SL_ENOMEM, "out of memory"), &e, err);
    }
    db->cache[db->n_cache++] = (sl_db_cached){ copy, st };
    *out = st;
    return SL_OK;
}

int sl_db_step(sl_db *db, sqlite3_stmt *st, sl_err *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        sqlite3_reset(st);
        return SL_OK;
    }
    sl_err e = { 0 };
    sl_db_fail(db, SL_EDB, "writing", &e);
    sqlite3_reset(st);
    return txn_poison(db, SL_EDB, &e, err);
}

/* Bind a double; NaN becomes NULL (what SQLite would do anyway). */
static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

/* ------------------------------------------------------------ transactions */

int sl_db_begin(sl_db *db, sl_err *err)
{
    if (db->in_txn) return sl_err_set(err, SL_EINTERNAL, "%s: a results transaction is already open", db->path);
    int rc = sl_db_begin_immediate(db, err);
    if (rc) return rc;
    db->in_txn = 1;
    db->txn_status = 0;
    db->txn_msg[0] = '\0';
    return SL_OK;
}

int sl_db_commit(sl_db *db, sl_err *err)
{
    if (!db->in_txn) return sl_err_set(err, SL_EINTERNAL, "%s: commit without a transaction", db->path);
    if (db->txn_status) {
        int rc = sl_err_set(err, db->txn_status, "%s", db->txn_msg);
        sl_db_rollback(db);
        return rc;
    }
    int rc = sl_db_exec(db, "COMMIT", err);
    if (rc) {
        sl_db_rollback(db);
        return rc;
    }
    db->in_txn = 0;
    return SL_OK;
}

void sl_db_rollback(sl_db *db)
{
    if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    db->in_txn = 0;
    db->txn_status = 0;
    db->txn_msg[0] = '\0';
}

/* ------------------------------------------------------------ run lifecycle */

static int valid_sha256(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return 0;
    return n == 64;
}

/* The command line as a JSON array of strings (bytes that are not UTF-8
** become '?'). Caller frees. */
static char *argv_json(int argc, char *const *argv)
{
    json_t *a = json_array();
    if (!a) return NULL;
    for (int i = 0; i < argc && argv && argv[i]; i++) {
        json_t *s = json_string(argv[i]);
        if (!s) {
            char *c = sl_strdup(argv[i]);
            if (!c) { json_decref(a); return NULL; }
            for (char *p = c; *p; p++)
                if ((unsigned char)*p >= 0x80) *p = '?';
            s = json_string(c);
            free(c);
        }
        json_array_append_new(a, s ? s : json_string(""));
    }
    char *out = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return out;
}

int sl_db_run_begin(sl_db *db, const sl_run_spec *spec, int64_t *run_id, sl_err *err)
{
    *run_id = 0;
    if (db->readonly) return sl_err_set(err, SL_EINVAL, "%s: opened read-only", db->path);
    if (db->in_txn) return sl_err_set(err, SL_EINTERNAL, "%s: run begin inside a results transaction", db->path);
    if (!spec || !spec->command || !*spec->command) return sl_err_set(err, SL_EINVAL, "run without a command");
    if (spec->model_sha256 && !valid_sha256(spec->model_sha256))
        return sl_err_set(err, SL_EINVAL, "model SHA-256 \"%s\" is not 64 lowercase hex digits", spec->model_sha256);

    char now[32], uuid[37], host[256];
    iso_now(now);
    uuid_v4(uuid);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    char *argv = argv_json(spec->argc, spec->argv);
    char *mpath = spec->model_sha256 ? abs_path(spec->model_path ? spec->model_path : "") : NULL;
    if (!argv || (spec->model_sha256 && !mpath)) {
        free(argv);
        free(mpath);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }

    sqlite3_stmt *st = NULL;
    int64_t model_id = 0;
    int rc = sl_db_begin_immediate(db, err);
    if (rc) goto out;
    if (spec->model_sha256) {
        const char *up =
            "INSERT INTO models(sha256, path, family, config, n_params, first_seen, last_seen) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) "
            "ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, last_seen = excluded.last_seen, "
            "family = coalesce(excluded.family, family), config = coalesce(excluded.config, config), "
            "n_params = coalesce(excluded.n_params, n_params)";
        if ((rc = sl_db_stmt(db, up, &st, err))) goto fail;
        bind_text(st, 1, spec->model_sha256);
        bind_text(st, 2, mpath);
        bind_text(st, 3, spec->model_family);
        bind_text(st, 4, spec->model_config_json);
        if (spec->model_params >= 0) sqlite3_bind_int64(st, 5, spec->model_params);
        bind_text(st, 6, now);
        if ((rc = sl_db_step(db, st, err))) goto fail;
        if ((rc = sl_db_stmt(db, "SELECT id FROM models WHERE sha256 = ?1", &st, err))) goto fail;
        bind_text(st, 1, spec->model_sha256);
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = sl_db_fail(db, SL_EDB, "finding the model row", err);
            goto fail;
        }
        model_id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    const char *ins = "INSERT INTO runs(uuid, command, argv, model_id, status, started, version, git_commit, host, "
                      "pid, seed) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?10)";
    if ((rc = sl_db_stmt(db, ins, &st, err))) goto fail;
    bind_text(st, 1, uuid);
    bind_text(st, 2, spec->command);
    bind_text(st, 3, argv);
    if (model_id) sqlite3_bind_int64(st, 4, model_id);
    bind_text(st, 5, now);
    bind_text(st, 6, SL_VERSION);
    bind_text(st, 7, SL_GIT_COMMIT);
    bind_text(st, 8, host);
    sqlite3_bind_int64(st, 9, (int64_t)getpid());
    if (spec->has_seed) sqlite3_bind_int64(st, 10, spec->seed);
    if ((rc = sl_db_step(db, st, err))) goto fail;
    *run_id = sqlite3_last_insert_rowid(db->h);
    if ((rc = sl_db_exec(db, "COMMIT", err))) goto fail;
    goto out;
fail:
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    *run_id = 0;
out:
    free(argv);
    free(mpath);
    return rc;
}

int sl_db_run_end(sl_db *db, int64_t run_id, const char *error, sl_err *err)
{
    if (db->in_txn) sl_db_rollback(db);
    char now[32];
    iso_now(now);
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db, "UPDATE runs SET status = ?1, ended = ?2, error = ?3 WHERE id = ?4", &st, err);
    if (rc) return rc;
    bind_text(st, 1, error ? "failed" : "ok");
    bind_text(st, 2, now);
    bind_text(st, 3, error ? (*error ? error : "failed") : NULL);
    sqlite3_bind_int64(st, 4, run_id);
    if ((rc = sl_db_step(db, st, err))) return rc;
    if (sqlite3_changes(db->h) != 1) return sl_err_set(err, SL_EINVAL, "%s: no run %lld", db->path, (long long)run_id);
    return SL_OK;
}

int sl_db_run_uuid(sl_db *db, int64_t run_id, char uuid[37], sl_err *err)
{
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db, "SELECT uuid FROM runs WHERE id = ?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) snprintf(uuid, 37, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return SL_OK;
    if (rc == SQLITE_DONE) return sl_err_set(err, SL_EINVAL, "%s: no run %lld", db->path, (long long)run_id);
    return sl_db_fail(db, SL_EDB, "reading a run", err);
}

/* ------------------------------------------------------------ writers */

int sl_db_param(sl_db *db, int64_t run, const char *key, const char *value, sl_err *err)
{
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db,
                        "INSERT INTO params(run_id, key, value) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value",
                        &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, key);
    bind_text(st, 3, value ? value : "");
    return sl_db_step(db, st, err);
}

int sl_db_paramf(sl_db *db, int64_t run, const char *key, sl_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[1024], *big = NULL;
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf) {
        big = malloc((size_t)n + 1);
        if (!big) {
            sl_err e = { 0 };
            return txn_poison(db, sl_err_set(&e, SL_ENOMEM, "out of memory"), &e, err);
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    int rc = sl_db_param(db, run, key, big ? big : buf, err);
    free(big);
    return rc;
}

int sl_db_metric(sl_db *db, int64_t run, const char *key, int64_t step, double value, sl_err *err)
{
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db,
                        "INSERT INTO metrics(run_id, key, step, value, nonfinite) VALUES (?1, ?2, ?3, ?4, ?5) "
                        "ON CONFLICT(run_id, key, step) DO UPDATE SET value = excluded.value, "
                        "nonfinite = excluded.nonfinite",
                        &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, key);
    sqlite3_bind_int64(st, 3, step);
    bind_real(st, 4, value);
    bind_text(st, 5, isnan(value) ? "nan" : isinf(value) ? (value > 0 ? "inf" : "-inf") : NULL);
    return sl_db_step(db, st, err);
}

static const char *SERIES_SQL =
    "INSERT INTO series(run_id, name, layer, point, idx, re, im) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

int sl_db_series(sl_db *db, int64_t run, const char *name, int64_t layer, const char *point, int64_t idx,
                 double re, double im, sl_err *err)
{
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db, SERIES_SQL, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, layer);
    bind_text(st, 4, point ? point : "");
    sqlite3_bind_int64(st, 5, idx);
    bind_real(st, 6, re);
    bind_real(st, 7, im);
    return sl_db_step(db, st, err);
}

int sl_db_series_n(sl_db *db, int64_t run, const char *name, int64_t layer, const char *point, size_t n,
                   const double *re, const double *im, sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = sl_db_series(db, run, name, layer, point, (int64_t)i, re[i], im ? im[i] : 0.0, err);
        if (rc) return rc;
    }
    return SL_OK;
}

int sl_db_curve(sl_db *db, int64_t run, const char *name, double x, double y, sl_err *err)
{
    sqlite3_stmt *st;
    int rc = sl_db_stmt(db, "INSERT INTO curves(run_id, name, x, y) VALUES (?1, ?2, ?3, ?4)", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run);
    bind_text(st, 2, name);
    bind_real(st, 3, x);
    bind_real(st, 4, y);
    return sl_db_step(db, st, err);
}

int sl_db_curve_n(sl_db *db, int64_t run, const char *name, size_t n, const double *x, const double *y,
                  sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = sl_db_curve(db, run, name, x[i], y[i], err);
        if (rc) return rc;
    }
    return SL_OK;
}

int sl_db_artifact(sl_db *db, int64_t run, const char *path, const char *media_type, sl_err *err)
{
    int rc = txn_poisoned(db, err);
    if (rc) return rc;
    sl_err e = { 0 };
    char hex[65];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        sl_err_set(&e, SL_EIO, "artifact %s: %s", path, strerror(errno));
        return txn_poison(db, e.code, &e, err);
    }
    if ((rc = sl_sha256_file(path, hex, &e))) {
        sl_err_prefix(&e, "artifact");
        return txn_poison(db, rc, &e, err);
    }
    char *apath = abs_path(path);
    if (!apath) return txn_poison(db, sl_err_set(&e, SL_ENOMEM, "out of memory"), &e, err);
    char now[32];
    iso_now(now);
    sqlite3_stmt *st;
    rc = sl_db_stmt(db,
                    "INSERT INTO artifacts(run_id, path, media_type, sha256, bytes, created) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    &st, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, run);
        bind_text(st, 2, apath);
        bind_text(st, 3, media_type ? media_type : "application/octet-stream");
        bind_text(st, 4, hex);
        sqlite3_bind_int64(st, 5, (int64_t)sb.st_size);
        bind_text(st, 6, now);
        rc = sl_db_step(db, st, err);
    }
    free(apath);
    return rc;
}
