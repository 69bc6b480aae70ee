/*
** The analysis commands end to end: seqlab spectrum, timescales and plot on
** real model files, what they print, what they record in the run store, the
** figures they write, and their answers to bad input.
*/
#include "sl_test.h"

#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "safetensors.h"
#include "util.h"

static char *run(const char *fmt, const char *a, const char *b, int want)
{
    char args[2048], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, fmt, a, b);
    int st = sl_test_cli(args, &out, &err);
    if (st != want) fprintf(stderr, "seqlab %s -> %d (wanted %d)\nstdout: %s\nstderr: %s\n", args, st, want, out, err);
    assert_int_equal(st, want);
    free(err);
    return out;
}


static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

static void test_spectrum_lstm(void **state)
{
    (void)state;
    char *model = sl_test_path("lstm.bin"), *db = sl_test_path("s.db"), *fig = sl_test_path("spec.png");
    free(run("init --family lstm --input-size 3 --hidden-size 6 --num-layers 2 --seed 4 -o %s%s", model, "", 0));
    char args[1024];
    snprintf(args, sizeof args, "spectrum %s --format csv --db %s -o %%s", model, db);
    char *out = run(args, fig, "", 0);
    /* Exactly one header line, then one row per eigenvalue: 2 layers x 12. */
    assert_true(strncmp(out, "layer,point,time,index,re,im,modulus,angle,timescale,", 53) == 0);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1 + 2 * 12);
    free(out);
    assert_true(file_exists(fig));
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM eigenvalues"), 24);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE status = 'ok' AND command = 'spectrum'"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM artifacts WHERE media_type = 'image/png'"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics WHERE key = 'l1.spectral_radius' AND value > 0"), 1);
    /* The stored radius is the largest stored modulus. */
    assert_int_equal(sl_test_query_int(db, "SELECT abs((SELECT value FROM metrics WHERE key = 'spectral_radius') - "
                                   "(SELECT max(sqrt(modulus2)) FROM eigenvalues)) < 1e-12"), 1);
    /* JSON likewise: an array of 24 objects. */
    snprintf(args, sizeof args, "spectrum %s --format json --no-plot --db %s%%s%%s", model, db);
    out = run(args, "", "", 0);
    int objs = 0;
    for (char *p = out; *p; p++) objs += *p == '{';
    assert_int_equal(objs, 24);
    free(out);
    /* seqlab plot re-renders the stored run byte for byte. */
    char *fig2 = sl_test_path("again.png");
    snprintf(args, sizeof args, "plot 1 --db %s -o %%s%%s", db);
    free(run(args, fig2, "", 0));
    char h1[65], h2[65];
    sl_err e = { 0 };
    sl_sha256_file(fig, h1, &e);
    sl_sha256_file(fig2, h2, &e);
    assert_string_equal(h1, h2);
    char *svg = sl_test_path("again.svg");
    free(run(args, svg, "", 0));
    assert_true(file_exists(svg));
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM artifacts WHERE run_id = 1"), 3);
    free(model); free(db); free(fig); free(fig2); free(svg);
}

static void test_spectrum_trajectory_and_random(void **state)
{
    (void)state;
    char *model = sl_test_path("gru.bin"), *db = sl_test_path("t.db"), *in = sl_test_path("u.safetensors");
    free(run("init --family gru --input-size 2 --hidden-size 4 -o %s%s", model, "", 0));
    int64_t shp[3] = { 1, 10, 2 };
    float u[20];
    for (int i = 0; i < 20; i++) u[i] = (float)((i * 7) % 5) - 2.0f;
    sl_st_tensor t = { "u", SL_DT_F32, 3, shp, u };
    sl_err e = { 0 };
    assert_int_equal(sl_st_write(in, &t, 1, NULL, &e), SL_OK);
    char args[1024];
    snprintf(args, sizeof args, "spectrum %s --at trajectory --input %s --steps 0,3-5 --no-plot --format csv --db %s", model,
             in, db);
    char *out = run("%s%s", args, "", 0);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1 + 4 * 4);
    assert_non_null(strstr(out, "\n0,3,discrete,"));
    free(out);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics WHERE key = 'l0.spectral_radius_at'"), 4);
    snprintf(args, sizeof args, "spectrum %s --at random --samples 5 --seed 2 --no-plot --db %s", model, db);
    free(run("%s%s", args, "", 0));
    assert_int_equal(sl_test_query_int(db, "SELECT count(DISTINCT point) FROM eigenvalues WHERE run_id = 2"), 5);
    assert_int_equal(sl_test_query_int(db, "SELECT seed FROM runs WHERE id = 2"), 2);
    free(model); free(db); free(in);
}

static void test_spectrum_bad_input(void **state)
{
    (void)state;
    char *model = sl_test_path("bad.bin"), *db = sl_test_path("bad.db"), *in = sl_test_path("bad_u.safetensors");
    char args[1024], *errs = NULL;
    free(run("init --family rnn --input-size 2 --hidden-size 3 -o %s%s", model, "", 0));
    /* A missing model: exit 2, one line, and no database is created. */
    snprintf(args, sizeof args, "spectrum /no/such/model.bin --db %s", db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "/no/such/model.bin"));
    free(errs);
    assert_false(file_exists(db));
    /* An unknown layer: exit 2 and a failed run, nothing else. */
    snprintf(args, sizeof args, "spectrum %s --layer 5 --db %s", model, db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "no layer 5"));
    free(errs);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE status = 'failed' AND error LIKE '%no layer 5%'"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM series"), 0);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM metrics"), 0);
    /* A malformed input tensor (wrong rank). */
    int64_t shp[1] = { 4 };
    float u[4] = { 0 };
    sl_st_tensor t = { "u", SL_DT_F32, 1, shp, u };
    sl_err e = { 0 };
    assert_int_equal(sl_st_write(in, &t, 1, NULL, &e), SL_OK);
    snprintf(args, sizeof args, "spectrum %s --at trajectory --input %s --db %s", model, in, db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "dimensions"));
    free(errs);
    /* NaN weights. */
    sl_stfile *f;
    assert_int_equal(sl_stfile_open(model, &f, &e), SL_OK);
    sl_stfile_close(f);
    char *nanm = sl_test_path("nan.bin");
    int64_t s2[2] = { 3, 2 }, s3[2] = { 3, 3 };
    float wih[6] = { 0, 1, NAN, 0, 0, 0 }, whh[9] = { 0 };
    sl_st_tensor ts[2] = { { "weight_ih_l0", SL_DT_F32, 2, s2, wih }, { "weight_hh_l0", SL_DT_F32, 2, s3, whh } };
    json_t *meta = json_pack("{s:s, s:s}", "seqlab.family", "rnn", "seqlab.config", "{\"nonlinearity\": \"tanh\"}");
    assert_int_equal(sl_st_write(nanm, ts, 2, meta, &e), SL_OK);
    json_decref(meta);
    snprintf(args, sizeof args, "spectrum %s --db %s", nanm, db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "weight_ih_l0 has a non-finite value"));
    free(errs);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE status = 'ok'"), 0);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM series"), 0);
    /* Usage errors. */
    snprintf(args, sizeof args, "spectrum %s --at sideways --db %s", model, db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "sideways"));
    free(errs);
    snprintf(args, sizeof args, "spectrum %s --at trajectory --db %s", model, db);
    assert_int_equal(sl_test_cli(args, NULL, &errs), 2);
    assert_non_null(strstr(errs, "--input"));
    free(errs);
    free(model); free(db); free(in); free(nanm);
}

static void test_timescales_command(void **state)
{
    (void)state;
    char *model = sl_test_path("leaky.bin"), *db = sl_test_path("ts.db"), *fig = sl_test_path("ts.svg");
    free(run("init --family rnn --leaky --tau 6 --input-size 2 --hidden-size 5 --seed 1 -o %s%s", model, "", 0));
    char args[1024];
    snprintf(args, sizeof args, "timescales %s --steps 6000 --seed 3 --format csv --db %s -o %%s", model, db);
    char *out = run(args, fig, "", 0);
    assert_true(strncmp(out, "layer,unit,tau_single,tau_net,amplitude,r2,lags,status\n", 55) == 0);
    assert_non_null(strstr(out, "\n0,4,6,"));
    free(out);
    assert_true(file_exists(fig));
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM timescales WHERE tau_single = 6"), 5);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM timescales WHERE status = 'fitted' AND tau_net > 1"), 5);
    assert_int_equal(sl_test_query_int(db, "SELECT count(DISTINCT name) FROM curves WHERE name LIKE 'acf/l0/u%'"), 5);
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM eigenvalues"), 5);
    char *fig2 = sl_test_path("ts2.svg");
    snprintf(args, sizeof args, "plot 1 --db %s -o %%s%%s", db);
    free(run(args, fig2, "", 0));
    char h1[65], h2[65];
    sl_err e = { 0 };
    sl_sha256_file(fig, h1, &e);
    sl_sha256_file(fig2, h2, &e);
    assert_string_equal(h1, h2);
    free(model); free(db); free(fig); free(fig2);
}

/* stdout closed by its reader (`seqlab spectrum ... | head`): the process is
** not killed between storing the results and marking the run finished; the
** run ends ok. The pipe's read end is closed before seqlab starts, and the
** output (128 eigenvalue rows) is larger than stdio's buffer, so the first
** write already meets the closed pipe. */
static void test_closed_stdout(void **state)
{
    (void)state;
    char *model = sl_test_path("pipe.bin"), *db = sl_test_path("pipe.db");
    free(run("init --family lstm --input-size 3 --hidden-size 64 --seed 2 -o %s%s", model, "", 0));
    const char *bin = getenv("SL_BIN") ? getenv("SL_BIN") : "build/seqlab";
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(p[1], 1);
        close(p[1]);
        execl(bin, "seqlab", "spectrum", model, "--format", "csv", "--no-plot", "--db", db, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) fprintf(stderr, "seqlab killed by signal %d\n", WTERMSIG(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(sl_test_query_int(db, "SELECT count(*) FROM runs WHERE status = 'ok' AND command = 'spectrum'"), 1);
    assert_int_equal(sl_test_query_int(db, "SELECT sum(multiplicity) FROM eigenvalues"), 128);
    free(model); free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spectrum_lstm),
        cmocka_unit_test(test_spectrum_trajectory_and_random),
        cmocka_unit_test(test_spectrum_bad_input),
        cmocka_unit_test(test_timescales_command),
        cmocka_unit_test(test_closed_stdout),
    };
    return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
