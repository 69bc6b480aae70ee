/*
** seqlab runs [filters]: the runs in the store, most recent first.
** seqlab runs diff A B: two runs' params and metrics side by side.
**
** Both read the store through db/query.c and print sl_db_rows; "diff" is a
** sub-subcommand recognised before option parsing so that `runs diff` has
** its own options.
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"

static int runs_help(void)
{
    printf("%s\n", sl_cli_find("runs")->help);
    return 0;
}

/* Shorten long cells for the aligned table: UUIDs to 8 characters, errors to
** one line of 60 characters. */
static void shorten_for_table(sl_db_rows *r)
{
    for (int col = 0; col < r->ncol; col++) {
        int is_uuid = strcmp(r->names[col], "uuid") == 0, is_err = strcmp(r->names[col], "error") == 0;
        if (!is_uuid && !is_err) continue;
        for (size_t i = 0; i < r->nrow; i++) {
            char *s = r->cells[i * (size_t)r->ncol + (size_t)col];
            if (!s) continue;
            if (is_uuid && strlen(s) > 8) s[8] = '\0';
            if (is_err) {
                s[strcspn(s, "\n")] = '\0';
                if (strlen(s) > 60) strcpy(s + 57, "...");
            }
        }
    }
}

static int diff_run(sl_cli *c, int argc, char **argv)
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
        case 'h': return runs_help();
        default: return 2;
        }
    }
    if (cli_positional(c, argc, argv, 2, "runs to compare (seqlab runs diff A B)")) return 2;
    sl_db *db;
    int rc = cli_db_open_existing(c, opt_db, 0, &db);
    if (rc) return rc;
    sl_err err = { 0 };
    int64_t a, b;
    sl_db_rows *rows = NULL;
    if (sl_db_run_resolve(db, argv[optind], &a, &err) || sl_db_run_resolve(db, argv[optind + 1], &b, &err) ||
        sl_db_runs_diff(db, a, b, all, &rows, &err)) {
        sl_db_close(db);
        return cli_fail(c, &err);
    }
    if (fmt == SL_FMT_TABLE) {
        char ua[37] = "", ub[37] = "";
        sl_db_run_uuid(db, a, ua, NULL);
        sl_db_run_uuid(db, b, ub, NULL);
        printf("a = run %lld (%.8s), b = run %lld (%.8s)\n", (long long)a, ua, (long long)b, ub);
        if (rows->nrow == 0) printf("no differences in params or metrics\n");
        else { printf("\n"); cli_print_rows(rows, fmt, stdout); }
    } else {
        cli_print_rows(rows, fmt, stdout);
    }
    sl_db_rows_free(rows);
    sl_db_close(db);
    return 0;
}

static int runs_run(sl_cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "diff") == 0) return diff_run(c, argc - 1, argv + 1);
    static const struct option opts[] = {
        { "db", required_argument, 0, 'd' },
        { "model", required_argument, 0, 'm' },
        { "command", required_argument, 0, 'c' },
        { "status", required_argument, 0, 's' },
        { "limit", required_argument, 0, 'n' },
        { "format", required_argument, 0, 'f' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *opt_db = NULL;
    sl_outfmt fmt = SL_FMT_TABLE;
    sl_runs_filter f = { .limit = 50 };
    long long v;
    int ch;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "d:m:c:s:n:f:h", opts)) != -1) {
        switch (ch) {
        case 'd': opt_db = optarg; break;
        case 'm': f.model = optarg; break;
        case 'c': f.command = optarg; break;
        case 's':
            if (strcmp(optarg, "running") && strcmp(optarg, "ok") && strcmp(optarg, "failed"))
                return cli_error(c, 2, "--status: unknown status \"%s\" (running, ok or failed)", optarg);
            f.status = optarg;
            break;
        case 'n':
            if (cli_parse_int(c, "--limit", optarg, 0, INT64_MAX, &v)) return 2;
            f.limit = v;
            break;
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'h': return runs_help();
        default: return 2;
        }
    }
    if (optind < argc)
        return cli_error(c, 2, "unexpected argument \"%s\" (see seqlab help runs)", argv[optind]);
    sl_db *db;
    int rc = cli_db_open_existing(c, opt_db, 0, &db);
    if (rc) return rc;
    sl_err err = { 0 };
    sl_db_rows *rows = NULL;
    if (sl_db_runs_list(db, &f, &rows, &err)) {
        sl_db_close(db);
        return cli_fail(c, &err);
    }
    if (fmt == SL_FMT_TABLE) shorten_for_table(rows);
    cli_print_rows(rows, fmt, stdout);
    sl_db_rows_free(rows);
    sl_db_close(db);
    return 0;
}

const sl_command sl_cmd_runs = {
    .name = "runs",
    .run = runs_run,
    .summary = "list recorded runs; `runs diff A B` compares two",
    .help = "usage: seqlab runs [--model SHA|PATH] [--command C] [--status S] [--limit N] [--format FMT] [--db PATH]\n"
            "       seqlab runs diff A B [--all] [--format FMT] [--db PATH]\n\n"
            "Lists the runs in the run store, most recent first: id, UUID, start time (UTC), command, status,\n"
            "model (family and SHA-256 prefix), seed, duration in seconds and error. A run that is still going,\n"
            "or whose process was killed, shows as running.\n\n"
            "`runs diff A B` prints the params and metrics of runs A and B side by side (a, b, and b - a for\n"
            "metrics), with the command, model, seed, status, version and git commit; only what differs\n"
            "unless --all. A and B are run ids or UUIDs (a unique prefix of 4 characters or more).\n\n"
            "options:\n"
            "  -m, --model SHA|PATH  runs of the model with this SHA-256 (or prefix, 4 hex digits or more) or\n"
            "                        whose file was last seen at PATH\n"
            "  -c, --command C       runs of this command (spectrum, train, ...)\n"
            "  -s, --status S        running, ok or failed\n"
            "  -n, --limit N         at most N runs (default 50; 0 lists every run)\n"
            "  -a, --all             (diff) also list params and metrics that are equal\n"
            "  -f, --format FMT      table (default), csv or json (full UUIDs and errors)\n"
            "  -d, --db PATH         run store (default $SEQLAB_DB, else ./seqlab.db); it must exist\n",
};
