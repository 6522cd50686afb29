/* cmd_client: what the broker-facing subcommands (submit, status, result, wait, cancel,
 * assignment, course) share: their options, opening a client of the broker from the
 * configuration and those options, printing JSON, and reading YAML or JSON files into JSON
 * values. */
#ifndef SM_CLI_CMD_CLIENT_H
#define SM_CLI_CMD_CLIENT_H

#include <jansson.h>

#include "sm_args.h"
#include "sm_client.h"
#include "sm_config.h"

/* The options of every broker-facing command: --config FILE, --endpoint EP, --server-key
 * Z85|FILE, --key-file SECRET_FILE (or $STEPMARK_CLIENT_SECRET_KEY_FILE, or the key itself in
 * $STEPMARK_CLIENT_SECRET_KEY; a secret on the command line, `--key`, is refused),
 * --timeout-ms MS. For a spec's `more` table. */
extern const sm_arg_opt sm_cli_client_opts[];

/* The default wait for each reply, and the attempts after a timeout: a broker that does not
 * answer is reported after (1 + SM_CLI_RETRIES) * SM_CLI_TIMEOUT_MS. */
#define SM_CLI_TIMEOUT_MS 3000
#define SM_CLI_RETRIES 1

/* Opens a client of the broker from the configuration and the options above. Returns 0, or
 * the exit status (message printed). */
int sm_cli_client_open(const sm_args *a, sm_config *cfg, sm_client **out);

/* Prints a JSON value indented on stdout. */
void sm_cli_print_json(const json_t *j);

/* Reads a YAML or JSON file into a JSON value (mappings become objects, sequences arrays,
 * plain scalars that read as numbers, booleans or null become those). NULL + message on
 * error. */
json_t *sm_cli_read_data(const char *path, char *msg, size_t msg_size);

/* Reads a whole text file (NUL-terminated; NULL on error with a message printed). */
char *sm_cli_read_text(const char *path, size_t *len);

/* Prints "stepmark CMD: message (CODE)" for a failed call and returns the exit status 1. */
int sm_cli_fail(const char *cmd, const sm_err *err);

#endif
