/* commands: the subcommands of the stepmark-engine tool. Each lives in its own cmd_*.c, takes
 * the arguments after its name (argv[0] is the subcommand name) and returns the process exit
 * status: 0 success, 1 failure, 2 bad usage or configuration. To add one, write cmd_x.c,
 * declare it here and add a row to the table in main.c. */
#ifndef SM_ENGINE_COMMANDS_H
#define SM_ENGINE_COMMANDS_H

int sm_cmd_tokenize(int argc, char **argv);
int sm_cmd_detokenize(int argc, char **argv);
int sm_cmd_tokbench(int argc, char **argv);
int sm_cmd_chat(int argc, char **argv);
int sm_cmd_run(int argc, char **argv);
int sm_cmd_logits(int argc, char **argv);
int sm_cmd_info(int argc, char **argv);
int sm_cmd_bench(int argc, char **argv);
int sm_cmd_attnbench(int argc, char **argv);
int sm_cmd_membw(int argc, char **argv);
int sm_cmd_serve(int argc, char **argv);

#endif
