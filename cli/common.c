/*
** Helpers shared by the subcommands: error lines, option parsing, formats,
** threads and the database path. See cli.h.
*/
#include "cli.h"
#include "kernels.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const sl_cli *c, int status, const char *fmt, ...)
{
    fprintf(stderr, "seqlab: ");
    if (c && c->cmd) fprintf(stderr, "%s: ", c->cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

int cli_fail(const sl_cli *c, const sl_err *e)
{
    cli_error(c, sl_exit_status(e->code), "%s", e->msg[0] ? e->msg : sl_strerror(e->code));
    return sl_exit_status(e->code);
}

int cli_getopt(const sl_cli *c, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    /* A leading ':' makes getopt report a missing value as ':' instead of '?';
    ** '+' stops at the first positional argument only if asked, so options may
    ** follow positional arguments (GNU style). */
    char so[128];
    snprintf(so, sizeof so, ":%s", shortopts);
    opterr = 0;
    int idx = -1;
    int ch = getopt_long(argc, argv, so, longopts, &idx);
    if (ch == '?') {
        if (optopt) cli_error(c, 2, "unknown option -%c (see seqlab help %s)", optopt, c->cmd);
        else cli_error(c, 2, "unknown option %s (see seqlab help %s)", argv[optind - 1], c->cmd);
        return CLI_OPT_ERR;
    }
    if (ch == ':') {
        const char *name = argv[optind - 1];
        cli_error(c, 2, "option %s needs a value", name);
        return CLI_OPT_ERR;
    }
    return ch;
}

int cli_parse_int(const sl_cli *c, const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0') return cli_error(c, 2, "%s: \"%s\" is not an integer", opt, s);
    if (v < lo || v > hi) return cli_error(c, 2, "%s: %lld is out of range [%lld, %lld]", opt, v, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_double(const sl_cli *c, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v)) return cli_error(c, 2, "%s: \"%s\" is not a finite number", opt, s);
    *out = v;
    return 0;
}

int cli_parse_format(const sl_cli *c, const char *s, sl_outfmt *out)
{
    if (strcmp(s, "table") == 0) *out = SL_FMT_TABLE;
    else if (strcmp(s, "csv") == 0) *out = SL_FMT_CSV;
    else if (strcmp(s, "json") == 0) *out = SL_FMT_JSON;
    else return cli_error(c, 2, "--format: unknown format \"%s\" (table, csv or json)", s);
    return 0;
}

void cli_set_threads(int n) { sl_set_threads(n); }

const char *cli_db_path(const char *opt_db)
{
    if (opt_db && *opt_db) return opt_db;
    const char *e = getenv("SEQLAB_DB");
    if (e && *e) return e;
    return "seqlab.db";
}

int cli_positional(const sl_cli *c, int argc, char **argv, int want, const char *what)
{
    int have = argc - optind;
    if (have < want) return cli_error(c, 2, "missing %s (see seqlab help %s)", what, c->cmd);
    if (have > want) return cli_error(c, 2, "unexpected argument \"%s\" (see seqlab help %s)", argv[optind + want], c->cmd);
    return 0;
}
