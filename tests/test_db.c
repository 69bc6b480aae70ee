/*
** The run store: schema creation and identity, migrations from version 0 and
** from every earlier version (rows kept), refusal of newer and foreign files,
** a run's full record round-tripping (NaN and ±inf metrics included), sticky
** transaction errors, 8 processes writing 400 runs at once, a writer killed
** with SIGKILL mid-transaction, and the CLI: runs, runs diff, show, and sql's
** refusal of every kind of write. The README's example queries are read from
** the README itself and run here, so they cannot drift from the schema.
**
** Processes are created with fork(); children never return into cmocka, they
** _exit with 0 for success. Nothing waits on time: the killed writer tells the
** parent through a pipe that it is inside its transaction.
*/
#include "sl_test.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_db.h"
#include "db.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

static const char SHA_A[] = "aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111";
static const char SHA_B[] = "bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222";
static const char SHA_C[] = "cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333";

/* A fresh path in the test directory (file removed if present). */
static char *fresh(const char *name)
{
    char *p = sl_test_path(name);
    const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char *q = sl_strfmt("%s%s", p, suffix[i]);
        unlink(q);
        free(q);
    }
    return p;
}

/* One integer from SQL on a raw connection. */
static int64_t q_int(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "q_int: %s: %s\n", sql, sqlite3_errmsg(h));
    assert_int_equal(rc, SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *q_text(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *s = sl_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return s;
}

static int64_t path_int(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    int64_t v = q_int(h, sql);
    sqlite3_close(h);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "raw_exec: %s\n", msg);
    sqlite3_free(msg);
    sqlite3_close(h);
    assert_int_equal(rc, SQLITE_OK);
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* Write one complete run; returns 0 or a status. Usable in children (no asserts). */
static int write_run(sl_db *db, const char *sha, int64_t seed, int n_series, int64_t *out_id)
{
    sl_err err = { 0 };
    char *argv[] = { "seqlab", "spectrum", "model.bin", "--seed", "7" };
    sl_run_spec spec = { .command = "spectrum", .argc = 5, .argv = argv, .model_path = "model.bin",
                         .model_sha256 = sha, .model_family = "lstm",
                         .model_config_json = "{\"hidden_size\":32,\"input_size\":8}", .model_params = 4480,
                         .has_seed = 1, .seed = seed };
    int64_t run;
    int rc = sl_db_run_begin(db, &spec, &run, &err);
    if (rc) { fprintf(stderr, "run_begin: %s\n", err.msg); return rc; }
    if ((rc = sl_db_begin(db, &err))) { fprintf(stderr, "begin: %s\n", err.msg); return rc; }
    sl_db_param(db, run, "rule", "zoh", &err);
    sl_db_paramf(db, run, "seed", &err, "%lld", (long long)seed);
    sl_db_paramf(db, run, "layers", &err, "%d", 2);
    for (int s = 0; s < 4; s++) sl_db_metric(db, run, "spectral_radius", s * 5, 0.5 + 0.01 * (double)seed + 0.1 * s, &err);
    sl_db_metric(db, run, "loss", 0, NAN, &err);
    for (int i = 0; i < n_series; i++) sl_db_series(db, run, "eigenvalues", i % 2, "lti", i / 2, 0.9 - 0.01 * i, 0.1 * i, &err);
    for (int i = 0; i < 5; i++) sl_db_curve(db, run, "barrier", i / 4.0, (double)(i * (4 - i)), &err);
    if ((rc = sl_db_commit(db, &err))) { fprintf(stderr, "commit: %s\n", err.msg); return rc; }
    if ((rc = sl_db_run_end(db, run, NULL, &err))) { fprintf(stderr, "run_end: %s\n", err.msg); return rc; }
    if (out_id) *out_id = run;
    return 0;
}

/* ------------------------------------------------------------ schema */

static void test_schema_create(void **state)
{
    (void)state;
    char *path = fresh("create.db");
    sl_err err = { 0 };
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    assert_int_equal(sl_db_schema_version(db), sl_db_schema_latest());
    assert_true(sl_db_schema_latest() >= 2);
    sqlite3 *h = sl_db_handle(db);
    assert_int_equal(q_int(h, "PRAGMA user_version"), sl_db_schema_latest());
    assert_int_equal(q_int(h, "PRAGMA application_id"), SL_DB_APPLICATION_ID);
    assert_int_equal(q_int(h, "PRAGMA foreign_keys"), 1);
    assert_int_equal(q_int(h, "PRAGMA synchronous"), 1);   /* NORMAL */
    char *jm = q_text(h, "PRAGMA journal_mode");
    assert_string_equal(jm, "wal");
    free(jm);
    /* Every table is STRICT; every documented table exists. */
    const char *tables[] = { "models", "runs", "params", "metrics", "series", "curves", "artifacts" };
    for (size_t i = 0; i < SL_ARRAY_LEN(tables); i++) {
        char *sql = sl_strfmt("SELECT strict FROM pragma_table_list WHERE name = '%s'", tables[i]);
        assert_int_equal(q_int(h, sql), 1);
        free(sql);
    }
    assert_int_equal(q_int(h, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN "
                              "('eigenvalues', 'singular_values')"), 2);
    sl_db_close(db);
    /* Opening again changes nothing. */
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    assert_int_equal(sl_db_schema_version(db), sl_db_schema_latest());
    sl_db_close(db);
    /* Read-only open of a missing file does not create it. */
    char *missing = fresh("missing.db");
    assert_int_not_equal(sl_db_open(missing, 1, &db, &err), 0);
    assert_null(db);
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0);
    free(missing);
    free(path);
}

static void test_migrate_from_v0(void **state)
{
    (void)state;
    char *path = fresh("v0.db");
    sl_err err = { 0 };
    assert_int_equal(sl_db_create_at_version(path, 0, &err), 0);
    assert_int_equal(path_int(path, "PRAGMA user_version"), 0);
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    assert_int_equal(sl_db_schema_version(db), sl_db_schema_latest());
    assert_int_equal(write_run(db, SHA_A, 1, 4, NULL), 0);
    sl_db_close(db);
    free(path);
}

/* Rows of every table that exists at version v, written with plain SQL as a
** seqlab of that version would have. */
static void populate_raw(const char *path, int v)
{
    raw_exec(path,
             "INSERT INTO models(id, sha256, path, family, config, n_params, first_seen, last_seen) VALUES "
             "(1, 'aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111', '/m/a.bin', 'lstm', "
             "'{\"hidden_size\":4}', 100, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z');"
             "INSERT INTO runs(id, uuid, command, argv, model_id, status, started, ended, version, git_commit, host, pid, seed) VALUES "
             "(1, '00000000-0000-4000-8000-000000000001', 'spectrum', '[\"seqlab\",\"spectrum\"]', 1, 'ok', "
             "'2024-01-01T00:00:00.000Z', '2024-01-01T00:00:01.500Z', '0.0.1', 'abc', 'h', 1, 3),"
             "(2, '00000000-0000-4000-8000-000000000002', 'train', '[\"seqlab\",\"train\"]', NULL, 'running', "
             "'2024-01-02T00:00:00.000Z', NULL, '0.0.1', 'abc', 'h', 2, NULL);"
             "INSERT INTO params VALUES (1, 'rule', 'zoh'), (2, 'lr', '0.01');"
             "INSERT INTO metrics VALUES (1, 'spectral_radius', 10, 0.97, NULL), (1, 'loss', 0, NULL, 'nan'),"
             "(1, 'grad', 0, 9e999, 'inf');"
             "INSERT INTO series(run_id, name, layer, point, idx, re, im) VALUES (1, 'eigenvalues', 0, 'lti', 0, 0.9, 0.1), "
             "(1, 'eigenvalues', 0, 'lti', 1, 0.9, -0.1);"
             "INSERT INTO curves(run_id, name, x, y) VALUES (1, 'barrier', 0.0, 1.0), (1, 'barrier', 1.0, 2.0);");
    if (v >= 2)
        raw_exec(path, "INSERT INTO artifacts(run_id, path, media_type, sha256, bytes, created) VALUES "
                       "(1, '/f.png', 'image/png', 'cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333cccc3333', "
                       "12, '2024-01-01T00:00:01.000Z');");
}

static void test_migrate_from_each_version(void **state)
{
    (void)state;
    const char *counts[] = { "SELECT count(*) FROM models", "SELECT count(*) FROM runs",
                             "SELECT count(*) FROM params", "SELECT count(*) FROM metrics",
                             "SELECT count(*) FROM series", "SELECT count(*) FROM curves" };
    const int64_t want[] = { 1, 2, 2, 3, 2, 2 };
    for (int v = 1; v < sl_db_schema_latest(); v++) {
        char name[32];
        snprintf(name, sizeof name, "v%d.db", v);
        char *path = fresh(name);
        sl_err err = { 0 };
        assert_int_equal(sl_db_create_at_version(path, v, &err), 0);
        assert_int_equal(path_int(path, "PRAGMA user_version"), v);
        populate_raw(path, v);
        /* A read-only open leaves an older store as it is. */
        sl_db *db = NULL;
        assert_int_equal(sl_db_open(path, 1, &db, &err), 0);
        assert_int_equal(sl_db_schema_version(db), v);
        sl_db_close(db);
        assert_int_equal(path_int(path, "PRAGMA user_version"), v);
        /* A writing open upgrades it. */
        assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
        assert_int_equal(sl_db_schema_version(db), sl_db_schema_latest());
        sqlite3 *h = sl_db_handle(db);
        for (size_t i = 0; i < SL_ARRAY_LEN(counts); i++) assert_int_equal(q_int(h, counts[i]), want[i]);
        assert_int_equal(q_int(h, "SELECT count(*) FROM artifacts"), v >= 2 ? 1 : 0);
        assert_int_equal(q_int(h, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
        /* The old run reads back whole, NaN and inf included. */
        sl_run_record *r = NULL;
        assert_int_equal(sl_db_run_get(db, 1, &r, &err), 0);
        assert_string_equal(r->status, "ok");
        assert_int_equal(r->n_metrics, 3);
        assert_true(isinf(r->metrics[0].value) && r->metrics[0].value > 0);   /* grad */
        assert_true(isnan(r->metrics[1].value));                              /* loss */
        assert_close(r->metrics[2].value, 0.97, 0, 0);
        sl_run_record_free(r);
        /* And the upgraded store takes new runs with every result kind. */
        int64_t id;
        assert_int_equal(write_run(db, SHA_A, 9, 6, &id), 0);
        assert_int_equal(id, 3);
        assert_int_equal(q_int(h, "SELECT count(*) FROM models"), 1);
        sl_db_close(db);
        free(path);
    }
}

static void test_refuse_newer_and_foreign(void **state)
{
    (void)state;
    sl_err err = { 0 };
    sl_db *db = NULL;
    char *path = fresh("newer.db");
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    sl_db_close(db);
    char *sql = sl_strfmt("PRAGMA user_version = %d", sl_db_schema_latest() + 1);
    raw_exec(path, sql);
    free(sql);
    assert_int_equal(sl_db_open(path, 0, &db, &err), SL_EUNSUP);
    assert_null(db);
    assert_true(contains(err.msg, "newer"));
    fprintf(stderr, "newer: %s\n", err.msg);
    assert_int_equal(sl_db_open(path, 1, &db, &err), SL_EUNSUP);
    assert_int_equal(path_int(path, "PRAGMA user_version"), sl_db_schema_latest() + 1);
    /* The CLI says so with exit status 2. */
    char *args = sl_strfmt("runs --db '%s'", path), *e = NULL;
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "newer"));
    free(e);
    free(args);
    free(path);

    /* Someone else's SQLite database. */
    path = fresh("foreign.db");
    raw_exec(path, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES ('keep me')");
    assert_int_equal(sl_db_open(path, 0, &db, &err), SL_EFORMAT);
    assert_true(contains(err.msg, "not a seqlab run store"));
    assert_int_equal(path_int(path, "SELECT count(*) FROM notes"), 1);
    {
        sqlite3 *h = NULL;
        assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
        char *jm = q_text(h, "PRAGMA journal_mode");
        assert_string_equal(jm, "delete");   /* untouched */
        free(jm);
        sqlite3_close(h);
    }
    free(path);
    path = fresh("other-app.db");
    raw_exec(path, "PRAGMA application_id = 42");
    assert_int_equal(sl_db_open(path, 0, &db, &err), SL_EFORMAT);
    free(path);
    /* Not SQLite at all. */
    path = fresh("text.db");
    FILE *fp = fopen(path, "w");
    fputs("this is not a database, it is a text file that is long enough to have a header\n", fp);
    fclose(fp);
    assert_int_equal(sl_db_open(path, 0, &db, &err), SL_EFORMAT);
    fprintf(stderr, "text: %s\n", err.msg);
    free(path);
}

/* ------------------------------------------------------------ records */

static void test_roundtrip(void **state)
{
    (void)state;
    char *path = fresh("roundtrip.db");
    char *fig = sl_test_path("fig.svg");
    FILE *fp = fopen(fig, "w");
    fputs("<svg/>\n", fp);
    fclose(fp);
    char hex[65];
    assert_int_equal(sl_sha256_file(fig, hex, NULL), 0);

    sl_err err = { 0 };
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    char *argv[] = { "seqlab", "spectrum", "my model.bin", "--note", "µ-law \"quoted\"" };
    sl_run_spec spec = { .command = "spectrum", .argc = 5, .argv = argv, .model_path = fig,
                         .model_sha256 = SHA_B, .model_family = "gru", .model_config_json = "{\"hidden_size\":16}",
                         .model_params = 1234, .has_seed = 1, .seed = -42 };
    int64_t run;
    assert_int_equal(sl_db_run_begin(db, &spec, &run, &err), 0);

    /* Visible as running before the results. */
    sl_run_record *r = NULL;
    assert_int_equal(sl_db_run_get(db, run, &r, &err), 0);
    assert_string_equal(r->status, "running");
    assert_null(r->ended);
    sl_run_record_free(r);

    assert_int_equal(sl_db_begin(db, &err), 0);
    assert_int_equal(sl_db_param(db, run, "rule", "bilinear", &err), 0);
    assert_int_equal(sl_db_param(db, run, "dt", "0.1", &err), 0);
    assert_int_equal(sl_db_param(db, run, "dt", "0.01", &err), 0);   /* last write wins */
    const double vals[] = { 0.5, NAN, INFINITY, -INFINITY, -0.0, 1e-300, 0.1 };
    for (int i = 0; i < 7; i++) assert_int_equal(sl_db_metric(db, run, "m", i, vals[i], &err), 0);
    assert_int_equal(sl_db_metric(db, run, "scalar", 0, 3.0, &err), 0);
    double re[3] = { 1.0, NAN, INFINITY }, im[3] = { 0.5, 0.0, -1.0 };
    assert_int_equal(sl_db_series_n(db, run, "eigenvalues", 1, "origin", 3, re, im, &err), 0);
    double x[3] = { 0, 0.5, 1 }, y[3] = { 1, NAN, 2 };
    assert_int_equal(sl_db_curve_n(db, run, "barrier", 3, x, y, &err), 0);
    assert_int_equal(sl_db_artifact(db, run, fig, "image/svg+xml", &err), 0);
    assert_int_equal(sl_db_commit(db, &err), 0);
    assert_int_equal(sl_db_run_end(db, run, NULL, &err), 0);

    assert_int_equal(sl_db_run_get(db, run, &r, &err), 0);
    assert_int_equal(r->id, run);
    assert_int_equal(strlen(r->uuid), 36);
    assert_int_equal(r->uuid[14], '4');
    assert_string_equal(r->command, "spectrum");
    assert_int_equal(r->argc, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(r->argv[i], argv[i]);
    assert_string_equal(r->status, "ok");
    assert_non_null(r->ended);
    assert_null(r->error);
    assert_int_equal(strlen(r->started), 24);   /* 2024-05-01T12:34:56.789Z */
    assert_int_equal(r->started[23], 'Z');
    assert_true(strcmp(r->ended, r->started) >= 0);
    assert_string_equal(r->version, SL_VERSION);
    assert_true(r->git_commit && r->git_commit[0]);   /* the library's build commit */
    assert_int_equal(r->pid, getpid());
    assert_true(r->has_seed);
    assert_int_equal(r->seed, -42);
    assert_true(r->has_model);
    assert_string_equal(r->model_sha256, SHA_B);
    assert_string_equal(r->model_family, "gru");
    assert_string_equal(r->model_config, "{\"hidden_size\":16}");
    assert_int_equal(r->model_params, 1234);
    assert_int_equal(r->model_path[0], '/');   /* stored absolute */
    assert_int_equal(r->n_params, 2);
    assert_string_equal(r->params[0].key, "dt");
    assert_string_equal(r->params[0].value, "0.01");
    assert_string_equal(r->params[1].key, "rule");
    assert_int_equal(r->n_metrics, 8);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(r->metrics[i].key, "m");
        assert_int_equal(r->metrics[i].step, i);
        if (isnan(vals[i])) assert_true(isnan(r->metrics[i].value));
        else assert_true(r->metrics[i].value == vals[i]);   /* exact, infinities included */
    }
    assert_int_equal(r->n_artifacts, 1);
    assert_string_equal(r->artifacts[0].sha256, hex);
    assert_int_equal(r->artifacts[0].bytes, 7);
    assert_string_equal(r->artifacts[0].media_type, "image/svg+xml");
    assert_int_equal(r->n_results, 2);
    assert_string_equal(r->results[0].table, "curves");
    assert_int_equal(r->results[0].rows, 3);
    assert_string_equal(r->results[1].name, "eigenvalues");
    assert_int_equal(r->results[1].rows, 3);
    sl_run_record_free(r);

    /* How they are stored: the flag column keeps NaN and infinities. */
    sqlite3 *h = sl_db_handle(db);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics WHERE nonfinite = 'nan' AND value IS NULL"), 1);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics WHERE nonfinite = 'inf' AND value > 1e308"), 1);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics WHERE nonfinite = '-inf' AND value < -1e308"), 1);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics WHERE nonfinite IS NULL"), 5);
    assert_int_equal(q_int(h, "SELECT count(*) FROM series WHERE re IS NULL"), 1);
    assert_int_equal(q_int(h, "SELECT count(*) FROM eigenvalues WHERE point = 'origin' AND layer = 1"), 3);

    /* A failed run keeps its error; its uncommitted results are rolled back. */
    sl_run_spec bare = { .command = "train", .argc = 0 };
    int64_t run2;
    assert_int_equal(sl_db_run_begin(db, &bare, &run2, &err), 0);
    assert_int_equal(sl_db_begin(db, &err), 0);
    assert_int_equal(sl_db_metric(db, run2, "loss", 1, 2.5, &err), 0);
    assert_int_equal(sl_db_run_end(db, run2, "loss diverged at step 12", &err), 0);
    assert_int_equal(sl_db_run_get(db, run2, &r, &err), 0);
    assert_string_equal(r->status, "failed");
    assert_string_equal(r->error, "loss diverged at step 12");
    assert_false(r->has_model);
    assert_false(r->has_seed);
    assert_int_equal(r->n_metrics, 0);
    assert_int_equal(r->argc, 0);
    sl_run_record_free(r);

    /* Resolve by id, UUID and UUID prefix; unknown and ambiguous refs. */
    char uuid[37];
    int64_t got;
    assert_int_equal(sl_db_run_uuid(db, run, uuid, &err), 0);
    assert_int_equal(sl_db_run_resolve(db, "1", &got, &err), 0);
    assert_int_equal(got, run);
    assert_int_equal(sl_db_run_resolve(db, uuid, &got, &err), 0);
    assert_int_equal(got, run);
    uuid[8] = '\0';
    assert_int_equal(sl_db_run_resolve(db, uuid, &got, &err), 0);
    assert_int_equal(got, run);
    /* A UUID prefix made of digits only is found when no id matches. */
    char *sql = sl_strfmt("UPDATE runs SET uuid = '12345678' || substr(uuid, 9) WHERE id = %lld", (long long)run2);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    free(sql);
    assert_int_equal(sl_db_run_resolve(db, "12345678", &got, &err), 0);
    assert_int_equal(got, run2);
    assert_int_equal(sl_db_run_resolve(db, "2", &got, &err), 0);   /* an id wins */
    assert_int_equal(got, run2);
    assert_int_equal(sl_db_run_resolve(db, "99", &got, &err), SL_EINVAL);
    assert_true(contains(err.msg, "no run 99"));
    assert_int_equal(sl_db_run_resolve(db, "zz", &got, &err), SL_EINVAL);
    assert_int_equal(sl_db_run_end(db, 99, NULL, &err), SL_EINVAL);

    /* Diff: params and metrics that differ. */
    sl_db_rows *d = NULL;
    assert_int_equal(sl_db_runs_diff(db, run, run2, 0, &d, &err), 0);
    assert_int_equal(d->ncol, 6);
    int saw_rule = 0, saw_cmd = 0;
    for (size_t i = 0; i < d->nrow; i++) {
        saw_rule |= strcmp(d->cells[i * 6 + 1], "rule") == 0 && d->cells[i * 6 + 4] == NULL;
        saw_cmd |= strcmp(d->cells[i * 6 + 1], "command") == 0;
    }
    assert_true(saw_rule && saw_cmd);
    sl_db_rows_free(d);
    assert_int_equal(sl_db_runs_diff(db, run, run, 0, &d, &err), 0);
    assert_int_equal(d->nrow, 0);   /* NaN equals NaN here */
    sl_db_rows_free(d);
    sl_db_close(db);
    free(fig);
    free(path);
}

static void test_sticky_error(void **state)
{
    (void)state;
    char *path = fresh("sticky.db");
    sl_err err = { 0 };
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    sl_run_spec spec = { .command = "spectrum" };
    int64_t run;
    assert_int_equal(sl_db_run_begin(db, &spec, &run, &err), 0);
    assert_int_equal(sl_db_begin(db, &err), 0);
    assert_int_equal(sl_db_metric(db, run, "a", 0, 1.0, NULL), 0);
    /* A row for a run that does not exist violates the foreign key. */
    assert_int_equal(sl_db_series(db, run + 100, "eigenvalues", 0, "", 0, 1, 0, NULL), SL_EDB);
    assert_int_equal(sl_db_metric(db, run, "b", 0, 2.0, &err), SL_EDB);   /* poisoned */
    assert_true(contains(err.msg, "FOREIGN KEY"));
    assert_int_not_equal(sl_db_artifact(db, run, path, "x", NULL), 0);
    assert_int_equal(sl_db_commit(db, &err), SL_EDB);
    assert_int_equal(q_int(sl_db_handle(db), "SELECT count(*) FROM metrics"), 0);
    /* The handle is usable again afterwards. */
    assert_int_equal(sl_db_begin(db, &err), 0);
    assert_int_equal(sl_db_metric(db, run, "c", 0, 3.0, &err), 0);
    assert_int_equal(sl_db_commit(db, &err), 0);
    assert_int_equal(sl_db_artifact(db, run, "/nonexistent/fig.png", "image/png", &err), SL_EIO);
    assert_int_equal(sl_db_run_end(db, run, NULL, &err), 0);
    assert_int_equal(q_int(sl_db_handle(db), "SELECT count(*) FROM metrics"), 1);
    sl_db_close(db);
    free(path);
}

/* ------------------------------------------------------------ processes */

#define N_PROC 8
#define N_RUNS 50

static void test_concurrent_writers(void **state)
{
    (void)state;
    char *path = fresh("concurrent.db");
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t pids[N_PROC];
    for (int p = 0; p < N_PROC; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            /* Child: wait for the gate so that all start together, then
            ** create/open the store and write N_RUNS complete runs. */
            close(gate[1]);
            char c;
            while (read(gate[0], &c, 1) > 0) {}
            sl_err err = { 0 };
            sl_db *db = NULL;
            if (sl_db_open(path, 0, &db, &err)) { fprintf(stderr, "child open: %s\n", err.msg); _exit(1); }
            for (int r = 0; r < N_RUNS; r++)
                if (write_run(db, (r % 2) ? SHA_A : SHA_B, p * 1000 + r, 10, NULL)) _exit(2);
            sl_db_close(db);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);   /* open the gate */
    for (int p = 0; p < N_PROC; p++) {
        int st = 0;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char *ok = q_text(h, "PRAGMA integrity_check");
    assert_string_equal(ok, "ok");
    free(ok);
    const int n = N_PROC * N_RUNS;
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs"), n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs WHERE status = 'ok' AND ended IS NOT NULL"), n);
    assert_int_equal(q_int(h, "SELECT count(DISTINCT uuid) FROM runs"), n);
    assert_int_equal(q_int(h, "SELECT count(DISTINCT seed) FROM runs"), n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM models"), 2);
    assert_int_equal(q_int(h, "SELECT count(*) FROM params"), 3 * n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics"), 5 * n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics WHERE nonfinite = 'nan'"), n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM series"), 10 * n);
    assert_int_equal(q_int(h, "SELECT count(*) FROM curves"), 5 * n);
    /* Every run has all its rows, not just the totals. */
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs r WHERE (SELECT count(*) FROM series s WHERE s.run_id = r.id) != 10"
                              " OR (SELECT count(*) FROM metrics m WHERE m.run_id = r.id) != 5"), 0);
    sqlite3_close(h);
    free(path);
}

/* Many processes opening a store that does not exist yet: all create or
** migrate it together (switching a new file to WAL is where SQLite reports
** busy without waiting), 20 times over. */
static void test_concurrent_create(void **state)
{
    (void)state;
    for (int it = 0; it < 20; it++) {
        char name[32];
        snprintf(name, sizeof name, "create%d.db", it);
        char *path = fresh(name);
        int gate[2];
        assert_int_equal(pipe(gate), 0);
        pid_t pids[16];
        for (int p = 0; p < 16; p++) {
            pids[p] = fork();
            assert_true(pids[p] >= 0);
            if (pids[p] == 0) {
                close(gate[1]);
                char c;
                while (read(gate[0], &c, 1) > 0) {}
                sl_err err = { 0 };
                sl_db *db = NULL;
                sl_run_spec spec = { .command = "x" };
                int64_t run;
                if (sl_db_open(path, 0, &db, &err) || sl_db_run_begin(db, &spec, &run, &err) ||
                    sl_db_run_end(db, run, NULL, &err)) {
                    fprintf(stderr, "child: %s\n", err.msg);
                    _exit(1);
                }
                sl_db_close(db);
                _exit(0);
            }
        }
        close(gate[0]);
        close(gate[1]);
        for (int p = 0; p < 16; p++) {
            int st = 0;
            assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        assert_int_equal(path_int(path, "SELECT count(*) FROM runs WHERE status = 'ok'"), 16);
        assert_int_equal(path_int(path, "PRAGMA user_version"), sl_db_schema_latest());
        free(path);
    }
}

static void test_killed_writer(void **state)
{
    (void)state;
    char *path = fresh("killed.db");
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        sl_err err = { 0 };
        sl_db *db = NULL;
        if (sl_db_open(path, 0, &db, &err)) _exit(1);
        for (int r = 0; r < 3; r++)
            if (write_run(db, SHA_A, r, 20, NULL)) _exit(2);
        sl_run_spec spec = { .command = "spectrum", .model_sha256 = SHA_B, .model_path = "b.bin" };
        int64_t run;
        if (sl_db_run_begin(db, &spec, &run, &err) || sl_db_begin(db, &err)) _exit(3);
        sl_db_param(db, run, "rule", "zoh", &err);
        /* Enough rows that pages spill into the WAL before the commit. */
        for (int64_t i = 0; i < 50000; i++) sl_db_series(db, run, "eigenvalues", 0, "lti", i, 0.5, 0.5, &err);
        if (err.code) _exit(4);
        if (write(ready[1], "x", 1) != 1) _exit(5);
        /* Keep writing until killed (bounded, then wait). */
        for (int64_t i = 50000; i < 5000000; i++) sl_db_series(db, run, "eigenvalues", 0, "lti", i, 0.5, 0.5, &err);
        for (;;) pause();
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    sl_err err = { 0 };
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    sqlite3 *h = sl_db_handle(db);
    char *ok = q_text(h, "PRAGMA integrity_check");
    assert_string_equal(ok, "ok");
    free(ok);
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs"), 4);
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs WHERE id <= 3 AND status = 'ok'"), 3);
    assert_int_equal(q_int(h, "SELECT count(*) FROM runs WHERE id = 4 AND status = 'running' AND ended IS NULL"), 1);
    assert_int_equal(q_int(h, "SELECT count(*) FROM series WHERE run_id = 4"), 0);
    assert_int_equal(q_int(h, "SELECT count(*) FROM params WHERE run_id = 4"), 0);
    assert_int_equal(q_int(h, "SELECT count(*) FROM series"), 3 * 20);
    assert_int_equal(q_int(h, "SELECT count(*) FROM metrics"), 3 * 5);
    assert_int_equal(q_int(h, "SELECT count(*) FROM models"), 2);
    sl_db_close(db);

    /* The CLI shows it as running, and its process as gone. */
    char *args = sl_strfmt("runs --db '%s' --status running --format csv", path), *out = NULL;
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, ",running,"));
    free(out);
    free(args);
    args = sl_strfmt("show 4 --db '%s'", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "process is gone"));
    free(out);
    free(args);
    free(path);
}

/* ------------------------------------------------------------ CLI */

/* A store with 3 LSTM runs (seeds 1..3) on one model, one failed run, and
** a run on a second model. Returns its path. */
static char *populated(const char *name)
{
    char *path = fresh(name);
    sl_err err = { 0 };
    sl_db *db = NULL;
    assert_int_equal(sl_db_open(path, 0, &db, &err), 0);
    for (int s = 1; s <= 3; s++) assert_int_equal(write_run(db, SHA_A, s, 8, NULL), 0);
    sl_run_spec spec = { .command = "train", .model_sha256 = SHA_B, .model_path = "/models/b.bin",
                         .model_family = "gru", .has_seed = 1, .seed = 5 };
    int64_t run;
    assert_int_equal(sl_db_run_begin(db, &spec, &run, &err), 0);
    assert_int_equal(sl_db_begin(db, &err), 0);
    for (int e = 0; e < 30; e++) sl_db_metric(db, run, "loss", e, e < 29 ? 1.0 / (e + 1) : INFINITY, &err);
    sl_db_metric(db, run, "spectral_radius", 10, 1.25, &err);
    assert_int_equal(sl_db_commit(db, &err), 0);
    assert_int_equal(sl_db_run_end(db, run, "loss diverged", &err), 0);
    /* A finished LSTM training run with held-out accuracy every 100 steps. */
    sl_run_spec tspec = { .command = "train", .model_sha256 = SHA_C, .model_path = "/models/c.bin",
                          .model_family = "lstm", .has_seed = 1, .seed = 9 };
    assert_int_equal(sl_db_run_begin(db, &tspec, &run, &err), 0);
    assert_int_equal(sl_db_begin(db, &err), 0);
    const double acc[] = { 0.61, 0.83, 0.995, 1.0, 1.0 };
    for (int i = 0; i < 5; i++) sl_db_metric(db, run, "eval_accuracy", 100 * (i + 1), acc[i], &err);
    assert_int_equal(sl_db_commit(db, &err), 0);
    assert_int_equal(sl_db_run_end(db, run, NULL, &err), 0);
    sl_db_close(db);
    return path;
}

static void test_cli_runs_show_diff(void **state)
{
    (void)state;
    char *path = populated("cli.db");
    char *args, *out = NULL, *e = NULL;

    args = sl_strfmt("runs --db '%s'", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "spectrum") && contains(out, "train") && contains(out, "failed"));
    assert_true(contains(out, "lstm aaaa1111aaaa"));
    free(out); free(args);

    /* $SEQLAB_DB is honoured. */
    {
        char *cmd = sl_strfmt("SEQLAB_DB='%s' '%s' runs --format csv --limit 2", path,
                              getenv("SL_BIN") ? getenv("SL_BIN") : "build/seqlab");
        FILE *p = popen(cmd, "r");
        char buf[4096] = "";
        size_t n = fread(buf, 1, sizeof buf - 1, p);
        buf[n] = '\0';
        assert_int_equal(pclose(p), 0);
        int lines = 0;
        for (char *q = buf; *q; q++) lines += *q == '\n';
        assert_int_equal(lines, 3);   /* header + 2 */
        assert_true(contains(buf, "id,uuid,started,command,status,model,seed,seconds,error"));
        free(cmd);
    }

    args = sl_strfmt("runs --db '%s' --model aaaa1111 --format json", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "\"command\": \"spectrum\"") && !contains(out, "\"train\""));
    free(out); free(args);
    args = sl_strfmt("runs --db '%s' --model /models/b.bin --format csv", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "train") && !contains(out, "spectrum"));
    free(out); free(args);
    args = sl_strfmt("runs --db '%s' --status failed --command train --format csv", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "loss diverged"));
    free(out); free(args);

    /* show: by id, with params, metrics (inf as inf) and results. */
    args = sl_strfmt("show 4 --db '%s'", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "failed") && contains(out, "loss diverged") && contains(out, "inf"));
    assert_true(contains(out, "more (--all)"));
    free(out); free(args);
    args = sl_strfmt("show 1 --db '%s' --format json", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "\"value\": \"nan\"") && contains(out, "\"rule\": \"zoh\""));
    assert_true(contains(out, "\"eigenvalues\""));
    free(out); free(args);
    args = sl_strfmt("show 1 --db '%s' --format csv", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "metric,loss,0,nan"));
    free(out); free(args);

    /* Unknown run, bad usage: exit 2 with one line. */
    args = sl_strfmt("show 42 --db '%s'", path);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "no run 42"));
    free(e); free(args);
    args = sl_strfmt("runs --db '%s' --status done", path);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "--status"));
    free(e); free(args);
    assert_int_equal(sl_test_cli("runs --bogus", NULL, NULL), 2);
    assert_int_equal(sl_test_cli("show", NULL, NULL), 2);
    args = sl_strfmt("runs diff 1 --db '%s'", path);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 2);
    free(args);
    char *missing = fresh("nothing-here.db");
    args = sl_strfmt("runs --db '%s'", missing);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "no run store"));
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0);
    free(e); free(args); free(missing);

    /* diff */
    args = sl_strfmt("runs diff 1 2 --db '%s' --format csv", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "run,seed,,1,2,"));
    assert_true(contains(out, "param,seed,,1,2,"));
    assert_true(contains(out, "metric,spectral_radius,0,0.51,0.52,"));
    assert_false(contains(out, "param,rule"));
    free(out); free(args);
    args = sl_strfmt("runs diff 1 2 --all --db '%s'", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "rule") && contains(out, "a = run 1"));
    free(out); free(args);

    /* help documents every option */
    assert_int_equal(sl_test_cli("help runs", &out, NULL), 0);
    const char *opts[] = { "--model", "--command", "--status", "--limit", "--format", "--db", "--all", "diff" };
    for (size_t i = 0; i < SL_ARRAY_LEN(opts); i++) assert_true(contains(out, opts[i]));
    free(out);
    assert_int_equal(sl_test_cli("help show", &out, NULL), 0);
    assert_true(contains(out, "--all") && contains(out, "--format") && contains(out, "--db"));
    free(out);
    assert_int_equal(sl_test_cli("help sql", &out, NULL), 0);
    assert_true(contains(out, "--format") && contains(out, "--db") && contains(out, "read-only"));
    free(out);
    free(path);
}

static void test_cli_sql(void **state)
{
    (void)state;
    char *path = populated("sql.db");
    char *args, *out = NULL, *e = NULL;
    int64_t runs_before = path_int(path, "SELECT count(*) FROM runs");

    args = sl_strfmt("sql --db '%s' \"SELECT id, seed, status FROM runs ORDER BY id\"", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "failed"));
    free(out); free(args);
    args = sl_strfmt("sql --db '%s' --format csv \"SELECT key, step, value, nonfinite FROM metrics "
                     "WHERE run_id = 4 AND step = 29\"", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_string_equal(out, "key,step,value,nonfinite\nloss,29,inf,inf\n");
    free(out); free(args);
    args = sl_strfmt("sql --db '%s' --format json \"SELECT 1 AS one, 0.1 AS tenth, NULL AS missing, 'x' AS s\"", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "\"one\": 1") && contains(out, "\"tenth\": 0.1") && contains(out, "\"s\": \"x\"") &&
                contains(out, "\"missing\": null"));
    free(out); free(args);
    args = sl_strfmt("sql --db '%s' \"PRAGMA table_info(runs)\"", path);
    assert_int_equal(sl_test_cli(args, &out, NULL), 0);
    assert_true(contains(out, "git_commit"));
    free(out); free(args);

    /* Writes of every kind are refused with exit 2, and nothing changes. */
    char *other = sl_test_path("other.db");
    const char *bad[] = {
        "INSERT INTO runs(uuid, command, argv, started, version, git_commit, host) VALUES ('u', 'c', '[]', 's', 'v', 'g', 'h')",
        "UPDATE runs SET status = 'ok'",
        "DELETE FROM runs",
        "DROP TABLE params",
        "DROP VIEW eigenvalues",
        "CREATE TABLE t(x)",
        "CREATE TEMP TABLE t(x)",
        "ALTER TABLE runs ADD COLUMN x",
        "PRAGMA user_version = 99",
        "PRAGMA journal_mode = DELETE",
        "VACUUM",
        "REINDEX",
        "BEGIN",
        "SELECT 1; DELETE FROM runs",
        "WITH x AS (SELECT 1) DELETE FROM params",
        "REPLACE INTO params VALUES (1, 'a', 'b')",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        args = sl_strfmt("sql --db '%s' \"%s\"", path, bad[i]);
        int rc = sl_test_cli(args, &out, &e);
        fprintf(stderr, "sql %s -> %d: %s", bad[i], rc, e ? e : "");
        assert_int_equal(rc, 2);
        assert_true(contains(e, "refused") || contains(e, "one statement"));
        assert_string_equal(out, "");
        free(out); free(e); free(args);
    }
    args = sl_strfmt("sql --db '%s' \"ATTACH DATABASE '%s' AS o\"", path, other);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "ATTACH") && contains(e, "refused"));
    free(e); free(args);
    args = sl_strfmt("sql --db '%s' \"VACUUM INTO '%s'\"", path, other);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    free(e); free(args);
    struct stat sb;
    assert_int_not_equal(stat(other, &sb), 0);   /* neither created a file */
    free(other);
    assert_int_equal(path_int(path, "SELECT count(*) FROM runs"), runs_before);
    assert_int_equal(path_int(path, "SELECT count(*) FROM params"), 9);
    assert_int_equal(path_int(path, "PRAGMA user_version"), sl_db_schema_latest());

    /* Syntax errors and empty queries are bad input; a missing store too. */
    args = sl_strfmt("sql --db '%s' \"SELEC 1\"", path);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 2);
    free(args);
    args = sl_strfmt("sql --db '%s' \"  \"", path);
    assert_int_equal(sl_test_cli(args, NULL, NULL), 2);
    free(args);
    assert_int_equal(sl_test_cli("sql", NULL, NULL), 2);
    char *missing = fresh("no-store.db");
    args = sl_strfmt("sql --db '%s' \"SELECT 1\"", missing);
    assert_int_equal(sl_test_cli(args, NULL, &e), 2);
    assert_true(contains(e, "no run store"));
    assert_int_not_equal(stat(missing, &sb), 0);
    free(e); free(args); free(missing);
    free(path);
}

/* The helpers a recording subcommand uses: start, then finish ok or failed. */
static void test_cli_run_helpers(void **state)
{
    (void)state;
    char *path = fresh("helpers.db");
    char *argv[] = { "seqlab", "train", "--epochs", "3" };
    sl_cli c = { .cmd = "train", .argc = 4, .argv = argv };
    cli_run r;
    int64_t seed = 11;
    assert_int_equal(cli_run_start(&c, path, NULL, &seed, &r), 0);
    assert_non_null(r.db);
    assert_int_equal(sl_db_begin(r.db, NULL), 0);
    assert_int_equal(sl_db_metric(r.db, r.id, "loss", 1, 0.5, NULL), 0);
    assert_int_equal(sl_db_commit(r.db, NULL), 0);
    assert_int_equal(cli_run_finish(&c, &r, 0, NULL), 0);
    assert_null(r.db);
    sl_err werr = { 0 };
    sl_err_set(&werr, SL_ENUMERIC, "loss is NaN at step 3");
    assert_int_equal(cli_run_start(&c, path, NULL, NULL, &r), 0);
    assert_int_equal(cli_run_finish(&c, &r, werr.code, &werr), 1);

    sl_db *db = NULL;
    sl_run_record *rec = NULL;
    assert_int_equal(sl_db_open(path, 1, &db, NULL), 0);
    assert_int_equal(sl_db_run_get(db, 1, &rec, NULL), 0);
    assert_string_equal(rec->command, "train");
    assert_int_equal(rec->argc, 4);
    assert_string_equal(rec->argv[2], "--epochs");
    assert_string_equal(rec->status, "ok");
    assert_true(rec->has_seed && rec->seed == 11);
    assert_int_equal(rec->n_metrics, 1);
    sl_run_record_free(rec);
    assert_int_equal(sl_db_run_get(db, 2, &rec, NULL), 0);
    assert_string_equal(rec->status, "failed");
    assert_string_equal(rec->error, "loss is NaN at step 3");
    assert_false(rec->has_seed);
    sl_run_record_free(rec);
    sl_db_close(db);
    free(path);
}

/* The ```sql blocks of the README's "## Run store" section. */
static int readme_queries(char ***out)
{
    FILE *fp = fopen("README.md", "r");
    assert_non_null(fp);
    char line[4096];
    int in_section = 0, in_sql = 0, n = 0;
    char **qs = NULL;
    sl_buf cur;
    sl_buf_init(&cur);
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "## ", 3) == 0) in_section = strncmp(line, "## Run store", 12) == 0;
        if (!in_section) continue;
        if (!in_sql && strncmp(line, "```sql", 6) == 0) { in_sql = 1; sl_buf_init(&cur); continue; }
        if (in_sql && strncmp(line, "```", 3) == 0) {
            in_sql = 0;
            qs = realloc(qs, (size_t)(n + 1) * sizeof *qs);
            qs[n++] = sl_buf_take(&cur);
            continue;
        }
        if (in_sql) sl_buf_puts(&cur, line);
    }
    fclose(fp);
    *out = qs;
    return n;
}

static void test_readme_queries(void **state)
{
    (void)state;
    char *path = populated("readme.db");
    char **qs = NULL;
    int n = readme_queries(&qs);
    assert_true(n >= 3);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "query%d.sql", i);
        char *qf = sl_test_path(name);
        FILE *fp = fopen(qf, "w");
        fputs(qs[i], fp);
        fclose(fp);
        char *args = sl_strfmt("sql --db '%s' --format csv \"$(cat '%s')\"", path, qf), *out = NULL, *e = NULL;
        int rc = sl_test_cli(args, &out, &e);
        fprintf(stderr, "README query %d:\n%s-> %d\n%s%s", i + 1, qs[i], rc, out ? out : "", e ? e : "");
        assert_int_equal(rc, 0);
        int lines = 0;
        for (char *q = out; *q; q++) lines += *q == '\n';
        assert_true(lines >= 2);   /* a header and at least one row */
        free(out); free(e); free(args); free(qf); free(qs[i]);
    }
    free(qs);
    free(path);
    /* The README states the current schema version. */
    FILE *fp = fopen("README.md", "r");
    static char buf[1 << 18];
    size_t len = fread(buf, 1, sizeof buf - 1, fp);
    buf[len] = '\0';
    fclose(fp);
    char want[64];
    snprintf(want, sizeof want, "(currently %d)", sl_db_schema_latest());
    assert_true(contains(buf, want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_create),
        cmocka_unit_test(test_migrate_from_v0),
        cmocka_unit_test(test_migrate_from_each_version),
        cmocka_unit_test(test_refuse_newer_and_foreign),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_concurrent_create),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_cli_runs_show_diff),
        cmocka_unit_test(test_cli_sql),
        cmocka_unit_test(test_cli_run_helpers),
        cmocka_unit_test(test_readme_queries),
    };
    return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
