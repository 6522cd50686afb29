/* stepmark: the operator's and LMS integrator's command-line tool. This file only dispatches to
 * the subcommands listed in `commands`; each lives in its own cli/cmd_*.c and parses its own
 * options with sm_args (every one answers --help and --version). */
#include "commands.h"
#include "sm_args.h"

static const sm_args_cmd commands[] = {
    {"pg", sm_cli_pg, "pg start|stop|url|serve: the private PostgreSQL cluster"},
    {"up", sm_cli_up, NULL}, /* the old name of `pg serve` */
    {"migrate", sm_cli_migrate, "apply pending schema migrations"},
    {"config", sm_cli_config, "config check [FILE]: validate a configuration file"},
    {"teacher", sm_cli_teacher, "teacher add|rotate|revoke|list: reviewers and their tokens"},
    {"service", sm_cli_service, "service add|revoke|list: tokens for the HTTP API /api/v1"},
    {"webhook", sm_cli_webhook, "webhook add|list|remove|log: signed event deliveries to an LMS"},
    {"lti", sm_cli_lti, "lti platform|key|config: LTI 1.3 launches from Moodle or Canvas"},
    {"submit", sm_cli_submit, "submit FILE|FOLDER --course C --assignment A: send work to grade"},
    {"status", sm_cli_status, "status ID: the state of a submission"},
    {"result", sm_cli_result, "result ID [--json]: the grading of a submission"},
    {"wait", sm_cli_wait, "wait ID...: wait until submissions are graded"},
    {"cancel", sm_cli_cancel, "cancel ID: cancel a submission's grading"},
    {"list", sm_cli_list, "list --course C --assignment A: submissions and final grades"},
    {"student", sm_cli_student, "student link|rotate-key: students' signed feedback links"},
    {"assignment", sm_cli_assignment, "assignment create|update|show: manage assignments"},
    {"course", sm_cli_course, "course create --code C: create a course"},
    {"similarity", sm_cli_similarity, "similarity --course C --assignment A: alike submissions"},
    {"keygen", sm_cli_keygen, "keygen [--out BASE]: make a CURVE key pair"},
};

int main(int argc, char **argv)
{
    static const sm_args_group g = {
        "stepmark",
        "Commands that talk to the broker also take --endpoint EP, --timeout-ms MS\n"
        "and, with CURVE, --server-key Z85|FILE and --key-file FILE (this client's\n"
        "secret key; or $STEPMARK_CLIENT_SECRET_KEY_FILE, or the key itself in\n"
        "$STEPMARK_CLIENT_SECRET_KEY). The broker and workers are separate programs:\n"
        "stepmarkd and stepmark-worker.\n",
        commands, sizeof commands / sizeof commands[0]};
    return sm_args_dispatch(&g, argc, argv);
}
