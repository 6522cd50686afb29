/* cmd_config: `stepmark config check [FILE]` validates a configuration file and prints the
 * effective settings' source; exits 2 with "file:line:column: message" when it is rejected. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

static const sm_args_spec check_spec = {
    "stepmark config check",
    "[FILE]",
    "Validates a configuration file (FILE, else --config, else $STEPMARK_CONFIG, else the\n"
    "defaults); prints \"file:line:column: message\" and exits 2 when it is rejected.",
    NULL,
    sm_cli_config_opts,
    0,
    1};

static int config_check(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&check_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    const char *path = a.npos ? a.pos[0] : sm_args_get(&a, "config");
    sm_config cfg;
    sm_err err;
    rc = 0;
    if (sm_config_init(&cfg, path, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        rc = SM_EXIT_CONFIG;
    } else {
        printf("%s: ok\n", cfg.path[0] ? cfg.path : "(defaults)");
    }
    sm_args_free(&a);
    return rc;
}

int sm_cli_config(int argc, char **argv)
{
    static const sm_args_cmd cmds[] = {
        {"check", config_check, "validate a configuration file"},
    };
    static const sm_args_group g = {"stepmark config", NULL, cmds, 1};
    return sm_args_dispatch(&g, argc, argv);
}
