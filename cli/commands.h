/* commands: the subcommands of the `stepmark` program. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status: 0 success, 1 failure,
 * 2 bad usage or a rejected configuration. main.c lists them in an sm_args_group. */
#ifndef SM_CLI_COMMANDS_H
#define SM_CLI_COMMANDS_H

int sm_cli_up(int argc, char **argv); /* the old name of `pg serve` */
int sm_cli_pg(int argc, char **argv);
int sm_cli_migrate(int argc, char **argv);
int sm_cli_config(int argc, char **argv);
int sm_cli_teacher(int argc, char **argv);
int sm_cli_webhook(int argc, char **argv); /* cmd_webhook.c: outgoing webhooks */
int sm_cli_service(int argc, char **argv); /* cmd_service.c: HTTP API tokens */
int sm_cli_lti(int argc, char **argv);     /* cmd_lti.c: LTI 1.3 platforms, keys, LMS config */
/* broker client commands: cmd_submit.c, cmd_query.c, cmd_assignment.c, cmd_keygen.c */
int sm_cli_submit(int argc, char **argv);
int sm_cli_status(int argc, char **argv);
int sm_cli_result(int argc, char **argv);
int sm_cli_wait(int argc, char **argv);
int sm_cli_cancel(int argc, char **argv);
int sm_cli_list(int argc, char **argv);    /* cmd_list.c: LIST, an assignment's final grades */
int sm_cli_student(int argc, char **argv); /* cmd_student.c: students' feedback links */
int sm_cli_assignment(int argc, char **argv);
int sm_cli_course(int argc, char **argv);
int sm_cli_keygen(int argc, char **argv);
int sm_cli_similarity(int argc, char **argv); /* cmd_similarity.c: alike submissions */

#endif
