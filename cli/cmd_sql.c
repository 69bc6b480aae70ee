/*
** seqlab sql "SELECT ...": one read-only SQL statement against the run store,
** printed as a table, CSV or JSON.
**
** The store is opened with SQLITE_OPEN_READONLY (and never created); on top of
** that sl_db_query refuses any statement that would write, attach, or change
** settings, so INSERT, UPDATE, DELETE, DROP, ATTACH and friends exit with
** status 2 and a message naming what was refused.
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_db.h"
#include "util.h"

static int sql_run(sl_cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, 0, 'd' },
        { "format", required_argument, 0, 'f' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *opt_db = NULL;
    sl_outfmt fmt = SL_FMT_TABLE;
    int ch;
    optind = 0;
    while ((ch = cli_getopt(c, argc, argv, "d:f:h", opts)) != -1) {
        switch (ch) {
        case 'd': opt_db = optarg; break;
        case 'f': if (cli_parse_format(c, optarg, &fmt)) return 2; break;
        case 'h': printf("%s\n", sl_cli_find("sql")->help); return 0;
        default: return 2;
        }
    }
    if (optind >= argc) return cli_error(c, 2, "missing the SQL statement (see seqlab help sql)");
    /* Several words are one statement: `seqlab sql SELECT count\(\*\) FROM runs`. */
    sl_buf q;
    sl_buf_init(&q);
    for (int i = optind; i < argc; i++) {
        if (i > optind) sl_buf_puts(&q, " ");
        sl_buf_puts(&q, argv[i]);
    }
    if (q.oom) { sl_buf_free(&q); return cli_error(c, 1, "out of memory"); }
    sl_db *db;
    int rc = cli_db_open_existing(c, opt_db, 1, &db);
    if (rc) { sl_buf_free(&q); return rc; }
    sl_err err = { 0 };
    sl_db_rows *rows = NULL;
    rc = sl_db_query(db, q.s, &rows, &err);
    sl_buf_free(&q);
    if (rc) {
        sl_db_close(db);
        return cli_fail(c, &err);
    }
    cli_print_rows(rows, fmt, stdout);
    sl_db_rows_free(rows);
    sl_db_close(db);
    return 0;
}

const sl_command sl_cmd_sql = {
    .name = "sql",
    .run = sql_run,
    .summary = "run a read-only SQL query on the run store",
    .help = "usage: seqlab sql [--format FMT] [--db PATH] \"SELECT ...\"\n\n"
            "Runs one SQL statement against the run store and prints its rows. The store is opened\n"
            "read-only: statements that write or change it (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER,\n"
            "ATTACH, DETACH, VACUUM, transactions, pragmas that set a value) are refused with exit status 2.\n"
            "SELECT, WITH, EXPLAIN and pragmas that only report (table_info, integrity_check, ...) run.\n"
            "Quote the statement for the shell; several arguments are joined with spaces.\n\n"
            "The tables (models, runs, params, metrics, series, curves, artifacts, timescales, and the views\n"
            "eigenvalues, eigenvalues_ct and singular_values) are documented in the README, section \"Run\n"
            "store\". Real numbers print so that they read back exactly; SQL NULL prints as an empty cell\n"
            "(null in JSON). SQLite cannot store NaN: metrics.nonfinite says 'nan', 'inf' or '-inf', and a\n"
            "NULL in series or curves values is a NaN.\n\n"
            "options:\n"
            "  -f, --format FMT   table (default), csv or json\n"
            "  -d, --db PATH      run store (default $SEQLAB_DB, else ./seqlab.db); it must exist\n",
};
