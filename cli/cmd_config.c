/* cmd_config: `stepmark config check [FILE]` validates a configuration file and prints the
 * effective settings' source; exits 2 with "file:line:column: message" when it is rejected. */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

int sm_cli_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0 || sm_cli_flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: stepmark config check [FILE]\n");
        return 2;
    }
    const char *path = argc >= 3 && argv[2][0] != '-' ? argv[2] : sm_cli_opt(argc, argv, "--config");
    sm_config cfg;
    sm_err err;
    if (sm_config_init(&cfg, path, &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return SM_EXIT_CONFIG;
    }
    printf("%s: ok\n", cfg.path[0] ? cfg.path : "(defaults)");
    return 0;
}
