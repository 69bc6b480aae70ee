/*
** The run store seen from the command line: opening it for the query
** commands (runs, show, sql), printing sl_db_rows in the three formats, and
** the two calls every recording subcommand makes around its work:
**
**     cli_run r;
**     if ((rc = cli_run_start(c, opt_db, model, has_seed ? &seed : NULL, &r))) return rc;
**     ... work, writing results with sl_db_begin / sl_db_* / sl_db_commit on r.db ...
**     return cli_run_finish(c, &r, work_rc, &work_err);
**
** Like everything in cli/, these print their own error line and return an
** exit status (0, 1 or 2).
*/
#ifndef SL_CLI_DB_H
#define SL_CLI_DB_H

#include <stdint.h>

#include "cli.h"
#include "db.h"

struct sl_model;

/* Open an existing run store for reading (--db value, else $SEQLAB_DB, else
** ./seqlab.db). A missing file is an error (exit 2), never created. With
** strict_readonly the connection is SQLITE_OPEN_READONLY; otherwise it is
** opened for writing when the file is writable, so an older schema is
** upgraded, and read-only when it is not. */
int cli_db_open_existing(const sl_cli *c, const char *opt_db, int strict_readonly, sl_db **out);

/* Print rows as a table, CSV or JSON (an array of objects). SQL NULL is an
** empty cell, and null in JSON; numbers in numeric columns are JSON numbers
** ("inf", "-inf", "nan" stay strings). */
void cli_print_rows(const sl_db_rows *r, sl_outfmt fmt, FILE *out);

/* A run being recorded. */
typedef struct cli_run {
    sl_db  *db;
    int64_t id;
} cli_run;

/* Open (create on first use) the run store and insert this command's run as
** 'running': command name and full argv from c, the model's path, SHA-256,
** family, config and parameter count when model is not NULL, the seed when
** seed is not NULL. Returns 0 or an exit status after printing the error. */
int cli_run_start(const sl_cli *c, const char *opt_db, const struct sl_model *model, const int64_t *seed,
                  cli_run *r);

/* Mark the run 'ok' (work_rc == 0) or 'failed' with work_err's message, and
** close the store. Returns the command's exit status: sl_exit_status(work_rc),
** or 1 when the work succeeded but recording its end failed. Does not print
** the work's error (the caller does, as it would without a store). */
int cli_run_finish(const sl_cli *c, cli_run *r, int work_rc, const sl_err *work_err);

struct sl_spec_row;
/* "origin", "lti", or the step / sample index: the point column of eigenvalue rows. */
void cli_point_label(int64_t point, char *buf, size_t n);

/* Write eigenvalue rows (analysis/spectrum.h) into the series table, inside the
** open results transaction: names eigenvalues / eigenvalues_ct, with their
** multiplicity and block. continuous_too = 0 skips the continuous rows.
** Returns the sticky status. */
int cli_store_eigenvalues(sl_db *db, int64_t run, const struct sl_spec_row *rows, size_t n, int skip_continuous,
                          sl_err *err);

#endif
