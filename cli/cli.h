/*
** The seqlab command: shared declarations for the subcommands.
**
** Each subcommand lives in cli/cmd_<name>.c and exports one sl_command; the
** dispatch table in commands.c lists them. A subcommand returns the process
** exit status: 0 success, 1 the work failed, 2 bad usage or bad input
** (sl_exit_status maps library status codes). Only cli/ prints: results to
** stdout, diagnostics to stderr as one line "seqlab: CMD: message".
*/
#ifndef SL_CLI_H
#define SL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "err.h"

typedef struct sl_cli {
    const char *cmd;        /* subcommand being run ("info") */
    int         argc;       /* the whole command line, for the run store */
    char      **argv;
} sl_cli;

typedef struct sl_command {
    const char *name;
    int (*run)(sl_cli *cli, int argc, char **argv);   /* argv[0] is the command name */
    const char *summary;    /* one line for `seqlab help` */
    const char *help;       /* full usage and options for `seqlab help NAME` */
    void (*help_extra)(void);  /* prints generated help after `help` (e.g. per-family options), or NULL */
} sl_command;

const sl_command *sl_cli_find(const char *name);
const sl_command *const *sl_cli_commands(size_t *n);

/* Print "seqlab: CMD: message" to stderr and return status. */
int cli_error(const sl_cli *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Print e's message and return its exit status. */
int cli_fail(const sl_cli *c, const sl_err *e);

/* getopt_long with seqlab's error messages. Returns the option, -1 at the end,
** or CLI_OPT_ERR after printing "unknown option --x" / "option --x needs a
** value" (the caller returns 2). Resets getopt state on the first call for
** each argv (pass reset = 1 the first time). */
#define CLI_OPT_ERR (-2)
int cli_getopt(const sl_cli *c, int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Parse helpers: on bad input print an error naming the option and return 2. */
int cli_parse_int(const sl_cli *c, const char *opt, const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const sl_cli *c, const char *opt, const char *s, double *out);

/* Output formats (--format). */
typedef enum { SL_FMT_TABLE = 0, SL_FMT_CSV, SL_FMT_JSON } sl_outfmt;
int cli_parse_format(const sl_cli *c, const char *s, sl_outfmt *out);

/* Apply --threads N (OpenMP and OpenBLAS). */
void cli_set_threads(int n);

/* The database path: --db value, else $SEQLAB_DB, else ./seqlab.db. */
const char *cli_db_path(const char *opt_db);

/* Expect exactly `want` positional arguments after options; print a usage error
** naming what is missing or extra. Returns 0 or 2. */
int cli_positional(const sl_cli *c, int argc, char **argv, int want, const char *what);

#endif
