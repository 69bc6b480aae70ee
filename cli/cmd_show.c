/*
** seqlab show RUN: one run's full record — the run row, its model, params,
** metrics, artifacts and how many result rows it wrote to each result table.
**
** The record comes from sl_db_run_get; this file only lays it out: a readable
** report (long metric histories abbreviated unless --all), CSV in long form
** (section, key, step, value) or one JSON object.
*/
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_db.h"
#include "table.h"
#include "util.h"

/* Metrics with more steps than this are abbreviated in the table report. */
#define SHOW_MAX_STEPS 20

/* The command line as one string (arguments with spaces quoted). Caller frees. */
static char *argv_text(const sl_run_record *r)
{
    sl_buf b;
    sl_buf_init(&b);
    for (int i = 0; i < r->argc; i++) {
        if (i) sl_buf_puts(&b, " ");
        if (strpbrk(r->argv[i], " \t\"'") || !r->argv[i][0]) sl_buf_printf(&b, "'%s'", r->argv[i]);
        else sl_buf_puts(&b, r->argv[i]);
    }
    return sl_buf_take(&b);
}

/* A 'running' run recorded on this host whose process no longer exists. */
static int process_gone(const sl_run_record *r)
{
    char host[256];
    if (!r->status || strcmp(r->status, "running") != 0 || r->pid <= 0 || !r->host) return 0;
    if (gethostname(host, sizeof host) != 0 || strcmp(host, r->host) != 0) return 0;
    return kill((pid_t)r->pid, 0) != 0 && errno == ESRCH;
}

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *jnum(double v)
{
    if (isfinite(v)) return json_real(v);
    char b[32];
    sl_db_fmt_double(v, b);
    return json_string(b);
}

static void print_json(const sl_run_record *r)
{
    json_t *o = json_object(), *argv = json_array(), *params = json_object(), *metrics = json_array(),
           *arts = json_array(), *res = json_array();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "uuid", json_string(r->uuid));
    json_object_set_new(o, "command", jstr(r->command));
    for (int i = 0; i < r->argc; i++) json_array_append_new(argv, json_string(r->argv[i]));
    json_object_set_new(o, "argv", argv);
    json_object_set_new(o, "status", jstr(r->status));
    json_object_set_new(o, "started", jstr(r->started));
    json_object_set_new(o, "ended", jstr(r->ended));
    json_object_set_new(o, "error", jstr(r->error));
    json_object_set_new(o, "seed", r->has_seed ? json_integer(r->seed) : json_null());
    json_object_set_new(o, "host", jstr(r->host));
    json_object_set_new(o, "pid", r->pid >= 0 ? json_integer(r->pid) : json_null());
    json_object_set_new(o, "version", jstr(r->version));
    json_object_set_new(o, "git_commit", jstr(r->git_commit));
    if (r->has_model) {
        json_t *cfg = r->model_config ? json_loads(r->model_config, 0, NULL) : NULL;
        json_object_set_new(o, "model", json_pack("{s:s?, s:s?, s:s?, s:o, s:o}", "sha256", r->model_sha256, "path",
                                                  r->model_path, "family", r->model_family, "config",
                                                  cfg ? cfg : json_null(), "n_params",
                                                  r->model_params >= 0 ? json_integer(r->model_params) : json_null()));
    } else {
        json_object_set_new(o, "model", json_null());
    }
    for (size_t i = 0; i < r->n_params; i++) json_object_set_new(params, r->params[i].key, json_string(r->params[i].value));
    json_object_set_new(o, "params", params);
    for (size_t i = 0; i < r->n_metrics; i++)
        json_array_append_new(metrics, json_pack("{s:s, s:I, s:o}", "key", r->metrics[i].key, "step",
                                                 (json_int_t)r->metrics[i].step, "value", jnum(r->metrics[i].value)));
    json_object_set_new(o, "metrics", metrics);
    for (size_t i = 0; i < r->n_artifacts; i++) {
        const sl_db_artifact_row *a = &r->artifacts[i];
        json_array_append_new(arts, json_pack("{s:s, s:s, s:s, s:I, s:s}", "path", a->path, "media_type",
                                              a->media_type, "sha256", a->sha256, "bytes", (json_int_t)a->bytes,
                                              "created", a->created));
    }
    json_object_set_new(o, "artifacts", arts);
    for (size_t i = 0; i < r->n_results; i++)
        json_array_append_new(res, json_pack("{s:s, s:s, s:I}", "table", r->results[i].table, "name",
                                             r->results[i].name, "rows", (json_int_t)r->results[i].rows));
    json_object_set_new(o, "results", res);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

static void csv_add(sl_table *t, const char *section, const char *key, const char *step, const char *value)
{
    sl_table_row(t);
    sl_table_set(t, 0, section);
    sl_table_set(t, 1, key);
    sl_table_set(t, 2, step);
    sl_table_set(t, 3, value);
}

static void print_csv(const sl_run_record *r)
{
    static const char *const cols[] = { "section", "key", "step", "value" };
    sl_table *t = sl_table_new(4, cols);
    if (!t) return;
    char b[64], *cmd = argv_text(r);
    snprintf(b, sizeof b, "%lld", (long long)r->id);
    csv_add(t, "run", "id", NULL, b);
    csv_add(t, "run", "uuid", NULL, r->uuid);
    csv_add(t, "run", "command", NULL, r->command);
    csv_add(t, "run", "argv", NULL, cmd);
    csv_add(t, "run", "status", NULL, r->status);
    csv_add(t, "run", "started", NULL, r->started);
    csv_add(t, "run", "ended", NULL, r->ended);
    csv_add(t, "run", "error", NULL, r->error);
    if (r->has_seed) snprintf(b, sizeof b, "%lld", (long long)r->seed);
    csv_add(t, "run", "seed", NULL, r->has_seed ? b : NULL);
    csv_add(t, "run", "host", NULL, r->host);
    csv_add(t, "run", "version", NULL, r->version);
    csv_add(t, "run", "git_commit", NULL, r->git_commit);
    csv_add(t, "model", "sha256", NULL, r->model_sha256);
    csv_add(t, "model", "path", NULL, r->model_path);
    csv_add(t, "model", "family", NULL, r->model_family);
    csv_add(t, "model", "config", NULL, r->model_config);
    for (size_t i = 0; i < r->n_params; i++) csv_add(t, "param", r->params[i].key, NULL, r->params[i].value);
    for (size_t i = 0; i < r->n_metrics; i++) {
        char st[32], v[32];
        snprintf(st, sizeof st, "%lld", (long long)r->metrics[i].step);
        sl_db_fmt_double(r->metrics[i].value, v);
        csv_add(t, "metric", r->metrics[i].key, st, v);
    }
    for (size_t i = 0; i < r->n_artifacts; i++) {
        snprintf(b, sizeof b, "%s %lld %s", r->artifacts[i].media_type, (long long)r->artifacts[i].bytes,
                 r->artifacts[i].sha256);
        csv_add(t, "artifact", r->artifacts[i].path, NULL, b);
    }
    for (size_t i = 0; i < r->n_results; i++) {
        char key[512];
        snprintf(key, sizeof key, "%s.%s", r->results[i].table, r->results[i].name);
        snprintf(b, sizeof b, "%lld", (long long)r->results[i].rows);
        csv_add(t, "result", key, NULL, b);
    }
    sl_table_print(t, SL_FMT_CSV, stdout);
    sl_table_free(t);
    free(cmd);
}

static void print_report(const sl_run_record *r, int all)
{
    char *cmd = argv_text(r);
    printf("run         %lld\n", (long long)r->id);
    printf("uuid        %s\n", r->uuid);
    printf("command     %s\n", r->command);
    printf("argv        %s\n", cmd ? cmd : "");
    printf("status      %s%s\n", r->status, process_gone(r) ? " (its process is gone: killed or crashed)" : "");
    printf("started     %s\n", r->started);
    if (r->ended) printf("ended       %s\n", r->ended);
    if (r->error) printf("error       %s\n", r->error);
    if (r->has_seed) printf("seed        %lld\n", (long long)r->seed);
    if (r->has_model) {
        printf("model       %s %s\n", r->model_family ? r->model_family : "?", r->model_sha256);
        printf("model path  %s\n", r->model_path ? r->model_path : "");
        if (r->model_params >= 0) printf("model size  %lld parameters\n", (long long)r->model_params);
        if (r->model_config) printf("config      %s\n", r->model_config);
    }
    printf("host        %s (pid %lld)\n", r->host ? r->host : "", (long long)r->pid);
    printf("seqlab      %s (commit %s)\n", r->version ? r->version : "", r->git_commit ? r->git_commit : "");
    free(cmd);

    if (r->n_params) {
        static const char *const cols[] = { "param", "value" };
        sl_table *t = sl_table_new(2, cols);
        for (size_t i = 0; t && i < r->n_params; i++) {
            sl_table_row(t);
            sl_table_set(t, 0, r->params[i].key);
            sl_table_set(t, 1, r->params[i].value);
        }
        printf("\n");
        if (t) sl_table_print(t, SL_FMT_TABLE, stdout);
        sl_table_free(t);
    }
    if (r->n_metrics) {
        static const char *const cols[] = { "metric", "step", "value" };
        sl_table *t = sl_table_new(3, cols);
        if (t) { sl_table_numeric(t, 1, 1); sl_table_numeric(t, 2, 1); }
        for (size_t i = 0; t && i < r->n_metrics;) {
            size_t j = i;
            while (j < r->n_metrics && strcmp(r->metrics[j].key, r->metrics[i].key) == 0) j++;
            size_t n = j - i;
            for (size_t k = i; k < j; k++) {
                if (!all && n > SHOW_MAX_STEPS && k == i + SHOW_MAX_STEPS / 2) {
                    sl_table_row(t);
                    sl_table_set(t, 0, r->metrics[k].key);
                    sl_table_setf(t, 2, "... %zu more (--all)", n - SHOW_MAX_STEPS);
                    k = j - SHOW_MAX_STEPS / 2 - 1;
                    continue;
                }
                char v[32];
                sl_db_fmt_double(r->metrics[k].value, v);
                sl_table_row(t);
                sl_table_set(t, 0, r->metrics[k].key);
                sl_table_setf(t, 1, "%lld", (long long)r->metrics[k].step);
                sl_table_set(t, 2, v);
            }
            i = j;
        }
        printf("\n");
        if (t) sl_table_print(t, SL_FMT_TABLE, stdout);
        sl_table_free(t);
    }
    if (r->n_artifacts) {
        static const char *const cols[] = { "artifact", "media_type", "bytes", "sha256" };
        sl_table *t = sl_table_new(4, cols);
        if (t) sl_table_numeric(t, 2, 1);
        for (size_t i = 0; t && i < r->n_artifacts; i++) {
            sl_table_row(t);
            sl_table_set(t, 0, r->artifacts[i].path);
            sl_table_set(t, 1, r->artifacts[i].media_type);
            sl_table_setf(t, 2, "%lld", (long long)r->artifacts[i].bytes);
            sl_table_set(t, 3, r->artifacts[i].sha256);
        }
        printf("\n");
        if (t) sl_table_print(t, SL_FMT_TABLE, stdout);
        sl_table_free(t);
    }
    if (r->n_results) {
        static const char *const cols[] = { "table", "name", "rows" };
        sl_table *t = sl_table_new(3, cols);
        if (t) sl_table_numeric(t, 2, 1);
        for (size_t i = 0; t && i < r->n_results; i++) {
            sl_table_row(t);
            sl_table_set(t, 0, r->results[i].table);
            sl_table_set(t, 1, r->results[i].name);
            sl_table_setf(t, 2, "%lld", (long long)r->results[i].rows);
        }
        printf("\n");
        if (t) sl_table_print(t, SL_FMT_TABLE, stdout);
        sl_table_free(t);
    }
}

static int show_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, 0, 'd' },
        { "format", required_argument, 0, 'f' },
        { "all", no_argument, 0, 'a' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *opt_db = NULL;
    sl_outfmt fmt = SL_FMT_TABLE;
    int all = 0, ch;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "d:f:ah", opts)) != -1) {
        switch (ch) {
        case 'd': opt_db = optarg; break;
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'a': all = 1; break;
        case 'h': printf("%s\n", sl_cli_find("show")->help); return 0;
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 1, "RUN (a run id or UUID)")) return 2;
    sl_db *db;
    int rc = cli_db_open_existing(c, opt_db, 0, &db);
    if (rc) return rc;
    sl_err err = { 0 };
    int64_t id;
    sl_run_record *r = NULL;
    if (sl_db_run_resolve(db, argv[optind], &id, &err) || sl_db_run_get(db, id, &r, &err)) {
        sl_db_close(db);
        return cli_fail(c, &err);
    }
    if (fmt == SL_FMT_JSON) print_json(r);
    else if (fmt == SL_FMT_CSV) print_csv(r);
    else print_report(r, all);
    sl_run_record_free(r);
    sl_db_close(db);
    return 0;
}

const sl_command sl_cmd_show = {
    .name = "show",
    .run = show_run,
    .summary = "show one recorded run: command, model, params, metrics, artifacts, results",
    .help = "usage: seqlab show RUN [--all] [--format FMT] [--db PATH]\n\n"
            "RUN is a run id (as `seqlab runs` lists) or a UUID, or a unique prefix of one (4 characters or\n"
            "more). Prints the run (command line, status, times, error, seed, host, seqlab version and\n"
            "commit), its model (SHA-256, path last seen, family, config, size), its params, its metrics\n"
            "(NaN and infinities shown as nan, inf, -inf), its artifacts (path, media type, bytes, SHA-256)\n"
            "and how many rows it wrote to each result table (series, curves). A run shown as running\n"
            "whose process on this host no longer exists is marked as such.\n\n"
            "options:\n"
            "  -a, --all          every step of every metric (the table abbreviates metrics with more than\n"
            "                     20 steps)\n"
            "  -f, --format FMT   table (default), csv (section,key,step,value) or json\n"
            "  -d, --db PATH      run store (default $SEQLAB_DB, else ./seqlab.db); it must exist\n",
};
