/*
** seqlab: look inside sequence models. Dispatches `seqlab COMMAND ...` to the
** subcommand table (commands.c). Exit status: 0 ok, 1 failed work, 2 bad usage
** or bad input.
*/
#include <gsl/gsl_errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
    /* GSL's default handler aborts; every GSL call's status is checked instead. */
    gsl_set_error_handler_off();
    /* A reader that goes away (`seqlab spectrum ... | head`) must not kill the
    ** process between storing a run's results and marking the run finished:
    ** writes to the closed pipe fail with EPIPE instead, and the run ends. */
    signal(SIGPIPE, SIG_IGN);
    sl_cli cli = { .cmd = NULL, .argc = argc, .argv = argv };
    if (argc < 2) {
        const sl_command *h = sl_cli_find("help");
        char *hargv[] = { "help", NULL };
        cli.cmd = "help";
        h->run(&cli, 1, hargv);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("seqlab %s (commit %s)\n", SL_VERSION, SL_GIT_COMMIT);
        return 0;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    const sl_command *cmd = sl_cli_find(name);
    if (!cmd) return cli_error(&cli, 2, "unknown command \"%s\" (see seqlab help)", name);
    cli.cmd = cmd->name;
    return cmd->run(&cli, argc - 1, argv + 1);
}
