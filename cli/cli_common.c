/* cli_common: option parsing, configuration and database helpers for subcommands. */
#include "cli_common.h"

#include <stdio.h>
#include <string.h>

#include "sm_db.h"

const char *sm_cli_opt(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return NULL;
}

int sm_cli_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int sm_cli_load_config(int argc, char **argv, sm_config *cfg)
{
    sm_err err;
    if (sm_config_init(cfg, sm_cli_opt(argc, argv, "--config"), &err) != SM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return SM_EXIT_CONFIG;
    }
    return 0;
}

int sm_cli_connect(const sm_config *cfg, PGconn **conn, sm_pgembed **pg)
{
    sm_err err;
    const char *url = cfg->database.url;
    *pg = NULL;
    *conn = NULL;
    if (!*url) {
        if (sm_pgembed_start(cfg->database.data_dir, pg, &err) != SM_OK) {
            fprintf(stderr, "stepmark: %s\n", err.msg);
            return 1;
        }
        url = sm_pgembed_url(*pg);
    }
    if (sm_db_connect(url, conn, &err) != SM_OK) {
        fprintf(stderr, "stepmark: %s\n", err.msg);
        if (*pg)
            sm_pgembed_stop(pg, &err);
        return 1;
    }
    return 0;
}
