/*
** seqlab help [COMMAND]: the list of commands, or one command's full usage.
*/
#include <stdio.h>

#include "cli.h"
#include "family.h"

static int help_run(sl_cli *c, int argc, char **argv)
{
    if (argc > 2) return cli_error(c, 2, "usage: seqlab help [COMMAND]");
    if (argc == 2) {
        const sl_command *cmd = sl_cli_find(argv[1]);
        if (!cmd) return cli_error(c, 2, "unknown command \"%s\" (see seqlab help)", argv[1]);
        printf("%s\n", cmd->help);
        if (cmd->help_extra) cmd->help_extra();
        return 0;
    }
    size_t n;
    const sl_command *const *cmds = sl_cli_commands(&n);
    printf("seqlab %s: look inside sequence models\n\n"
           "usage: seqlab COMMAND [options] ARGS\n\ncommands:\n", SL_VERSION);
    for (size_t i = 0; i < n; i++) printf("  %-12s %s\n", cmds[i]->name, cmds[i]->summary);
    printf("\nfamilies: %s\n"
           "\n`seqlab help COMMAND` documents every option of COMMAND; `seqlab --version` prints the version.\n"
           "Exit status: 0 ok, 1 the work failed, 2 bad usage or bad input.\n",
           sl_family_names());
    return 0;
}

const sl_command sl_cmd_help = {
    .name = "help",
    .run = help_run,
    .summary = "list the commands, or document one (seqlab help COMMAND)",
    .help = "usage: seqlab help [COMMAND]\n\n"
            "Without COMMAND, list every command and family; with it, print that command's usage and options.",
};
