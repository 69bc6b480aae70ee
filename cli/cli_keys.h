/*
** Options of commands that mix fixed options with typed key options from
** several tables (a family's config keys, a task's options, the training
** options): `seqlab train --family lstm --hidden-size 64 --task parity
** --length 32 --lr 3e-3 ...`. A key "hidden_size" is the option
** --hidden-size; an int/float/string key takes a value (next argument or
** after '='); a bool key is set by --name, cleared by --no-name, or given as
** --name=true/false. Values are parsed by the key's type into a JSON object
** per table, so each library validates its own options.
*/
#ifndef SL_CLI_KEYS_H
#define SL_CLI_KEYS_H

#include <jansson.h>

#include "cli.h"
#include "family.h"

typedef struct cli_fixed {
    const char *name;      /* long name without dashes ("output") */
    char        shortname; /* 'o', or 0 */
    int         has_arg;
    int         id;
} cli_fixed;

typedef struct cli_keyset {
    const char *what;               /* "family lstm", "task parity", "training": for errors and help */
    const sl_config_key *keys;      /* ends with {0} */
    json_t *obj;                    /* values go here */
    const char *const *reserved;    /* keys of this table the command sets itself (NULL-terminated), or NULL */
} cli_keyset;

/* Parse argv[first..argc). Fixed options call on_fixed(ctx, id, value) (value
** NULL without an argument), which returns 0 or an exit status. Other
** "--name" options are looked up in sets, in order. Arguments that are not
** options go to pos (at most npos_max; more is a usage error). Returns 0 or
** an exit status (2 after printing one line naming the option). */
int cli_parse_keyed(const sl_cli *c, int argc, char **argv, int first, const cli_fixed *fixed,
                    int (*on_fixed)(void *ctx, int id, const char *val), void *ctx, cli_keyset *sets, int nsets,
                    const char **pos, int *npos, int npos_max);

/* The value of option --name (given as "--name V" or "--name=V") in argv, or
** NULL: for finding --family or --task before the key tables are known. */
const char *cli_scan_opt(int argc, char **argv, const char *name);

/* Print the keys of a table as option help lines ("    --hidden-size  ..."). */
void cli_print_keys(const sl_config_key *keys, const char *const *skip);

/* Progress bar on stderr, only when stderr is a terminal (and not quiet). */
typedef struct cli_progress {
    int    on;
    double t0, last;
    int64_t total;
} cli_progress;
void cli_progress_start(cli_progress *p, int64_t total, int quiet);
/* Redraw at most every 0.1 s (always at done == total); text is appended. */
void cli_progress_update(cli_progress *p, int64_t done, const char *text);
void cli_progress_end(cli_progress *p);

/* A comma-separated list of positive integers ("16,64,256"); returns 0 or 2. */
int cli_parse_int_list(const sl_cli *c, const char *opt, const char *s, long long lo, long long hi, long long **out,
                       int *n);

#endif
