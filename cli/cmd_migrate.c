/* cmd_migrate: `stepmark migrate` applies pending schema migrations to the configured database
 * (safe to run twice, or from several processes at once). */
#include <stdio.h>

#include "cli_common.h"
#include "commands.h"
#include "sm_migrate.h"

static const sm_args_spec migrate_spec = {
    "stepmark migrate",
    NULL,
    "Applies pending migrations to database.url ($STEPMARK_DATABASE_URL), or to the\n"
    "private cluster in database.data_dir when no URL is set.",
    NULL,
    sm_cli_config_opts,
    0,
    0};

int sm_cli_migrate(int argc, char **argv)
{
    sm_args a;
    int rc = sm_args_parse(&migrate_spec, argc, argv, &a);
    if (rc != SM_ARGS_CONTINUE)
        return rc;
    sm_config cfg;
    rc = sm_cli_load_config(&a, &cfg);
    sm_args_free(&a);
    if (rc)
        return rc;
    PGconn *conn;
    sm_pgembed *pg;
    if (sm_cli_connect(&cfg, &conn, &pg))
        return 1;
    sm_err err;
    int applied = 0, version = 0;
    rc = 0;
    if (sm_migrate(conn, &applied, &err) != SM_OK ||
        sm_migrate_current(conn, &version, &err) != SM_OK) {
        fprintf(stderr, "stepmark migrate: %s\n", err.msg);
        rc = 1;
    } else {
        printf("applied %d migration%s; schema version %d\n", applied, applied == 1 ? "" : "s",
               version);
    }
    PQfinish(conn);
    if (pg && sm_pgembed_stop(&pg, &err) != SM_OK) {
        fprintf(stderr, "stepmark migrate: %s\n", err.msg);
        rc = 1;
    }
    return rc;
}
