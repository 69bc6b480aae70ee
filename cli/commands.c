/*
** The dispatch table: every subcommand, in the order `seqlab help` lists them.
** A new subcommand is one file cli/cmd_<name>.c and one line here.
*/
#include <string.h>

#include "cli.h"

extern const sl_command sl_cmd_help, sl_cmd_info, sl_cmd_init, sl_cmd_run, sl_cmd_runs, sl_cmd_show, sl_cmd_sql,
    sl_cmd_spectrum, sl_cmd_timescales, sl_cmd_plot;
extern const sl_command sl_cmd_data, sl_cmd_train, sl_cmd_eval;

/* Model commands first, then the analyses, then the run store. */
static const sl_command *const commands[] = {
    &sl_cmd_info,
    &sl_cmd_init,
    &sl_cmd_run,
    &sl_cmd_spectrum,
    &sl_cmd_timescales,
    &sl_cmd_plot,
    &sl_cmd_runs,
    &sl_cmd_show,
    &sl_cmd_sql,
    &sl_cmd_help,
    &sl_cmd_data,
    &sl_cmd_train,
    &sl_cmd_eval,
};

const sl_command *const *sl_cli_commands(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

const sl_command *sl_cli_find(const char *name)
{
    size_t n;
    const sl_command *const *cmds = sl_cli_commands(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(cmds[i]->name, name) == 0) return cmds[i];
    return NULL;
}
