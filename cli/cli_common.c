/* cli_common: the --config option, configuration and database helpers for subcommands. */
#include "cli_common.h"

#include <stdio.h>
#include <string.h>

#include "sm_db.h"

const sm_arg_opt sm_cli_config_opts[] = {SM_CLI_CONFIG_OPT, {0}};

int sm_cli_load_config(const sm_args *a, sm_config *cfg)
{
    sm_err err;
    if (sm_config_init(cfg, sm_args_get(a, "config"), &err) != SM_OK) {
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

int sm_cli_disconnect(const char *prog, PGconn **conn, sm_pgembed **pg)
{
    if (*conn)
        PQfinish(*conn);
    *conn = NULL;
    sm_err err;
    if (*pg && sm_pgembed_stop(pg, &err) != SM_OK) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    return 0;
}
