/* stepmark: the operator's and LMS integrator's command-line tool. This file only dispatches to
 * the subcommands listed in `commands`; each lives in its own cli/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const sm_cli_command commands[] = {
    {"up", sm_cli_up, "start the private PostgreSQL, apply migrations, serve until Ctrl-C"},
    {"pg", sm_cli_pg, "pg start|stop|url --data DIR: manage a private PostgreSQL cluster"},
    {"migrate", sm_cli_migrate, "apply pending schema migrations"},
    {"config", sm_cli_config, "config check [FILE]: validate a configuration file"},
    {"teacher", sm_cli_teacher, "teacher add|rotate|revoke|list: reviewers and their tokens"},
    {"submit", sm_cli_submit, "submit FILE|FOLDER --course C --assignment A: send work to grade"},
    {"status", sm_cli_status, "status ID: the state of a submission"},
    {"result", sm_cli_result, "result ID [--json]: the grading of a submission"},
    {"wait", sm_cli_wait, "wait ID...: wait until submissions are graded"},
    {"cancel", sm_cli_cancel, "cancel ID: cancel a submission's grading"},
    {"assignment", sm_cli_assignment, "assignment create|update|show: manage assignments"},
    {"course", sm_cli_course, "course create --code C: create a course"},
    {"keygen", sm_cli_keygen, "keygen [--out BASE]: make a CURVE key pair"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: stepmark COMMAND [options]   (stepmark COMMAND --help for details)\n\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nCommands that talk to the broker also take --endpoint EP, --timeout-ms MS\n"
                 "and, with CURVE, --server-key Z85|FILE and --key-file FILE (this client's\n"
                 "secret key; or $STEPMARK_CLIENT_SECRET_KEY_FILE, or the key itself in\n"
                 "$STEPMARK_CLIENT_SECRET_KEY).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "stepmark: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
